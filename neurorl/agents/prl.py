"""Probabilistic reversal learning models of hBayesDM (agents.md, "hBayesDM reinforcement-learning catalogue").

One rule, six registered models, as in hBayesDM's ``prl_*.stan`` [S]. Two
options; values ``ev`` start at 0; the outcome ``r`` is the trial's reward
(hBayesDM uses ``sign(outcome)``, so +1 / -1; the reader in
:mod:`neurorl.formats.hbayesdm_rl` applies that sign).

``prl_rp`` (den Ouden et al. 2013, Neuron 80:1090)
    ``P(a) = softmax(beta ev)``; ``PE = r - ev[a]``;
    ``ev[a] += (Arew if r > 0 else Apun) PE``.
``prl_fictitious`` (Glascher, Hampton & O'Doherty 2009, Cereb Cortex 19:483)
    ``P(option 1) = 1 / (1 + exp(beta (alpha - (ev[1] - ev[2]))))``;
    ``PE = r - ev[a]``, ``PEnc = -r - ev[other]``; both values move at ``eta``.
``prl_fictitious_rp``
    as ``prl_fictitious`` with ``eta_pos`` where ``PE >= 0`` and ``eta_neg``
    otherwise (both updates use the rate chosen by the sign of ``PE``).
``prl_fictitious_woa``, ``prl_fictitious_rp_woa``
    the same without the indecision point (``alpha = 0``).
``prl_ewa`` (den Ouden et al. 2013; Camerer & Ho 1999)
    ``P(a) = softmax(beta ev)``; ``ew' = rho ew[a] + 1``;
    ``ev[a] = (phi ew[a] ev[a] + r) / ew'`` (``ew`` starts at 0).

Actions: 0 = hBayesDM's choice 1, 1 = choice 2. The indecision point
``alpha`` is hBayesDM's: a positive ``alpha`` favours option 2 (action 1).

Multiple blocks (hBayesDM ``prl_*_multipleB``) are per-block resets. They
need no covariate: each block is a state whose two options are their own rows
of the value table (``EnvSpec.item[b] = (2b, 2b + 1)``), so every block starts
from values 0 and never touches another block's values -- exactly hBayesDM's
re-initialisation of ``ev`` (and ``ew``) at each block.
:func:`neurorl.formats.hbayesdm_rl.prl_multiple_blocks` builds that layout.

Assumptions and choices
-----------------------
[S] Bounds and names are hBayesDM's: rates in (0, 1), ``beta`` in (0, 10),
    ``alpha`` real.
[A] Shared latents: ``q = ev`` of the two shown options; ``q_soft`` the logits
    divided by ``beta`` (``ev - (alpha, 0)`` for the fictitious models), so
    ``v_soft = logsumexp(beta q_soft) / beta`` with ``tau = 1 / beta``.
    ``rpe = PE``, ``chosen_value = ev[a]``; the fictitious models add
    ``rpe_nc = PEnc``, EWA adds ``ew`` (per action, before the update).
[A] Runs on every task with two actions (simulation on ``reversal_learning``);
    values are indexed by ``EnvSpec.item``.
[A] Defaults (simulation starting points): rates 0.3, ``beta`` 3, ``alpha`` 0,
    ``phi`` 0.5, ``rho`` 0.5.
"""

from __future__ import annotations

from typing import ClassVar

from ..params import Param
from ._hbayesdm import PHI, REAL_CAUCHY1
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take

__all__ = ["PRLRewardPunishment", "PRLFictitious", "PRLFictitiousRP", "PRLFictitiousWOA", "PRLFictitiousRPWOA",
           "PRLEWA"]

INF = float("inf")
BETA10 = Param("beta", 0.0, 10.0, 3.0, doc="inverse temperature (hBayesDM bound 10)")


class _PRL(Agent):
    """Shared rule of the reversal-learning models (not registered; see the subclasses).

    Parameters
    ----------
    fixed : dict, optional
        Parameters held constant (see :class:`~neurorl.agents.base.Agent`).
    """

    family = "prl"
    tasks = ("reversal_learning", "bandit")
    latent_dims = VALUE_LATENTS
    null_policy_params = {"beta": 1e-12}
    #: model structure (set by the subclasses): "rp", "fictitious" or "ewa"
    rule: ClassVar[str] = "rp"
    split_rates: ClassVar[bool] = False
    indecision: ClassVar[bool] = False
    hbayesdm_priors: ClassVar[dict] = {}

    def __init__(self, *, fixed=None):
        super().__init__(fixed=fixed)

    def param_spec(self):
        rate = Param("eta", 0.0, 1.0, 0.3, doc="learning rate")
        if self.rule == "rp":
            spec = [rate.with_(name="Apun", doc="punishment learning rate (r <= 0)"),
                    rate.with_(name="Arew", doc="reward learning rate (r > 0)")]
        elif self.rule == "ewa":
            spec = [Param("phi", 0.0, 1.0, 0.5, doc="decay of past attractions"),
                    Param("rho", 0.0, 1.0, 0.5, doc="decay of the experience weight")]
        elif self.split_rates:
            spec = [rate.with_(name="eta_pos", doc="learning rate where PE >= 0"),
                    rate.with_(name="eta_neg", doc="learning rate where PE < 0")]
        else:
            spec = [rate]
        if self.indecision:
            spec.append(Param("alpha", -INF, INF, 0.0, doc="indecision point (favours option 2 when positive)"))
        return spec + [BETA10]

    def check_env(self, env):
        if env.n_actions != 2:
            raise ValueError(f"{self.name}: reversal-learning models need exactly 2 actions (hBayesDM choices 1 "
                             f"and 2); the task has {env.n_actions}")

    def init(self, p, env, n, ops):
        return {"ev": ops.zeros((n, env.n_items)), "ew": ops.zeros((n, env.n_items))}

    def decide(self, p, s, obs, ops):
        q = ops.gather(s["ev"], obs["items"])
        beta = p["beta"][:, None]
        if self.indecision:
            q_soft = q - p["alpha"][:, None] * ops.asarray([1.0, 0.0])
        else:
            q_soft = q
        policy, logp = softmax_policy(beta * q_soft, obs["avail"], ops)
        out = shared_latents(q, policy, 1.0 / p["beta"], ops, q_soft=q_soft)
        out.update(policy=policy, log_policy=logp, ew=ops.gather(s["ew"], obs["items"]))
        return out

    def learn(self, p, s, obs, dec, ops):
        r = obs["reward"]
        a1h = ops.onehot(obs["choice"], 2)
        qa = take(dec["q"], a1h, ops)
        qo = take(dec["q"], 1.0 - a1h, ops)
        pe = r - qa
        pe_nc = -r - qo
        ev, ew = s["ev"], s["ew"]
        chosen = obs["chosen_item"]
        if self.rule == "rp":
            ev = ops.scatter_add(ev, chosen, ops.where(r > 0, p["Arew"], p["Apun"]) * pe)
        elif self.rule == "fictitious":
            eta = ops.where(pe >= 0, p["eta_pos"], p["eta_neg"]) if self.split_rates else p["eta"]
            other = ops.sum(ops.where(a1h > 0, 0, obs["items"]), axis=-1)
            ev = ops.scatter_add(ops.scatter_add(ev, chosen, eta * pe), other, eta * pe_nc)
        else:  # ewa
            ew_a = take(dec["ew"], a1h, ops)
            ew_new = p["rho"] * ew_a + 1.0
            ev_new = (p["phi"] * ew_a * qa + r) / ew_new
            ev = ops.scatter_add(ev, chosen, ev_new - qa)
            ew = ops.scatter_add(ew, chosen, ew_new - ew_a)
        return {"ev": ev, "ew": ew}, {"rpe": pe, "chosen_value": qa, "rpe_nc": pe_nc}


@register_agent
class PRLRewardPunishment(_PRL):
    """hBayesDM ``prl_rp``: separate reward (``Arew``) and punishment (``Apun``) learning rates."""

    name = "prl_rp"
    rule = "rp"
    hbayesdm_priors = {"Apun": PHI, "Arew": PHI, "beta": PHI}


@register_agent
class PRLFictitious(_PRL):
    """hBayesDM ``prl_fictitious``: fictitious update of the unchosen option, indecision point ``alpha``."""

    name = "prl_fictitious"
    latent_dims = {**VALUE_LATENTS, "rpe_nc": ()}
    rule = "fictitious"
    indecision = True
    hbayesdm_priors = {"eta": PHI, "alpha": REAL_CAUCHY1, "beta": PHI}


@register_agent
class PRLFictitiousRP(_PRL):
    """hBayesDM ``prl_fictitious_rp``: ``prl_fictitious`` with ``eta_pos`` / ``eta_neg`` by the sign of PE."""

    name = "prl_fictitious_rp"
    latent_dims = {**VALUE_LATENTS, "rpe_nc": ()}
    rule = "fictitious"
    split_rates = True
    indecision = True
    hbayesdm_priors = {"eta_pos": PHI, "eta_neg": PHI, "alpha": REAL_CAUCHY1, "beta": PHI}


@register_agent
class PRLFictitiousWOA(_PRL):
    """hBayesDM ``prl_fictitious_woa``: ``prl_fictitious`` without the indecision point."""

    name = "prl_fictitious_woa"
    latent_dims = {**VALUE_LATENTS, "rpe_nc": ()}
    rule = "fictitious"
    hbayesdm_priors = {"eta": PHI, "beta": PHI}


@register_agent
class PRLFictitiousRPWOA(_PRL):
    """hBayesDM ``prl_fictitious_rp_woa``: ``prl_fictitious_rp`` without the indecision point."""

    name = "prl_fictitious_rp_woa"
    latent_dims = {**VALUE_LATENTS, "rpe_nc": ()}
    rule = "fictitious"
    split_rates = True
    hbayesdm_priors = {"eta_pos": PHI, "eta_neg": PHI, "beta": PHI}


@register_agent
class PRLEWA(_PRL):
    """hBayesDM ``prl_ewa``: experience-weighted attraction (``phi``, ``rho``, ``beta``)."""

    name = "prl_ewa"
    latent_dims = {**VALUE_LATENTS, "ew": ("action",)}
    rule = "ewa"
    hbayesdm_priors = {"phi": PHI, "rho": PHI, "beta": PHI}
