"""Iowa gambling task models of hBayesDM: ``igt_pvl_delta``, ``igt_pvl_decay``, ``igt_vpp``, ``igt_orl``.

As in hBayesDM's ``igt_*.stan`` [S]; all values start at 0. The outcome ``x``
is the trial's reward: hBayesDM's net outcome ``(gain - |loss|) / payscale``
(payscale 100 by default), which is all these models read -- so the IGT needs
no second outcome column: :func:`neurorl.formats.hbayesdm_rl.igt` computes the
reward from the ``gain`` and ``loss`` columns and keeps both as covariates.

Prospect utility (PVL models, VPP): ``u = x^alpha`` if ``x >= 0``, else
``-lambda (-x)^alpha``; choice ``P(d) = softmax(theta V)`` with the
consistency ``theta = 3^cons - 1``.

``igt_pvl_delta`` (Ahn, Busemeyer & Wagenmakers 2008, Cogn Sci 32:1376)
    ``V = ev``; ``ev[d] += A (u - ev[d])``.
``igt_pvl_decay`` (Ahn et al. 2014, Front Psychol 5:849)
    ``V = ev``; ``ev *= A`` (every deck), then ``ev[d] += u``.
``igt_vpp`` (Worthy, Pang & Byrne 2013, Front Psychol 4:640)
    ``pers *= K``; ``pers[d] += epP`` if ``x >= 0`` else ``epN``;
    ``ev[d] += A (u - ev[d])``; ``V = w ev + (1 - w) pers``.
``igt_orl`` (Haines, Vassileva & Ahn 2018, Cogn Sci 42:2534)
    ``P(d) = softmax(ev + betaF ef + betaP pers)`` (no temperature);
    ``PEval = x - ev[d]``, ``PEfreq = sign(x) - ef[d]``, fictitious
    ``PEfreq_fic = -sign(x) / (C - 1) - ef`` for the other decks (``C`` decks;
    hBayesDM writes ``/ 3`` for its four). With ``x >= 0`` the chosen deck
    learns at ``Arew`` and the others' frequencies at ``Apun``; with ``x < 0``
    the other way round. Then ``pers[d] = 1`` and ``pers /= 1 + (3^K - 1)``.

Assumptions and choices
-----------------------
[S] Names and bounds are hBayesDM's: ``A`` (0, 1), ``alpha`` (0, 2), ``cons``
    (0, 5), ``lambda`` (0, 10), ``epP``/``epN`` real, ``K`` (0, 1) in VPP and
    (0, 5) in ORL, ``w`` (0, 1), ``Arew``/``Apun`` (0, 1), ``betaF``/``betaP`` real.
[A] The models need a single state (one cue, the decks are the actions);
    any number of decks >= 2.
[A] ``x^alpha`` at ``x = 0`` is 0 (with a finite derivative in ``alpha``).
[A] Shared latents: ``q`` is the valuation whose softmax (at ``theta``, or at
    1 for ORL) is the policy -- ``ev`` for PVL, ``V`` for VPP, the utility
    ``ev + betaF ef + betaP pers`` for ORL; ``q_soft = q``, ``tau = 1 /
    theta`` (1 for ORL). ``rpe = u - ev[d]`` (PVL-delta, VPP), ``u`` (PVL-decay,
    whose update adds the utility), ``PEval`` (ORL); ``chosen_value =
    ev[d]``. Model latents: ``utility`` (u; ORL: x), ``ev``, and ``pers``
    (VPP, ORL), ``ef`` (ORL), all per deck before the update.
[A] Defaults (simulation starting points): A 0.3, alpha 0.5, cons 1, lambda 1,
    epP 0, epN 0, K 0.5, w 0.5, Arew 0.3, Apun 0.3, K_orl 1, betaF 1, betaP 1.
"""

from __future__ import annotations

import math
from typing import ClassVar

from ..params import Param
from ._hbayesdm import PHI, REAL_CAUCHY1
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take

__all__ = ["IGTPVLDelta", "IGTPVLDecay", "IGTVPP", "IGTORL", "prospect_utility"]

INF = float("inf")
LOG3 = math.log(3.0)


def prospect_utility(x, alpha, lam, ops):
    """``x^alpha`` for ``x >= 0``, ``-lam (-x)^alpha`` otherwise (0 at ``x = 0``, finite derivatives)."""
    mag = ops.abs(x)
    pos = mag > 0
    powered = ops.where(pos, ops.exp(alpha * ops.log(ops.where(pos, mag, 1.0))), 0.0)
    return ops.where(x >= 0, powered, -lam * powered)


class _IGT(Agent):
    """Shared machinery of the IGT models (not registered; see the subclasses).

    Parameters
    ----------
    fixed : dict, optional
        Parameters held constant (see :class:`~neurorl.agents.base.Agent`).
    """

    family = "igt"
    tasks = ("iowa_gambling", "bandit")
    latent_dims = {**VALUE_LATENTS, "utility": (), "ev": ("action",)}
    null_policy_params = {"cons": 1e-12}
    hbayesdm_priors: ClassVar[dict] = {}

    def __init__(self, *, fixed=None):
        super().__init__(fixed=fixed)

    def _pvl_params(self):
        return [Param("A", 0.0, 1.0, 0.3, doc="learning rate (delta) / decay (decay model)"),
                Param("alpha", 0.0, 2.0, 0.5, doc="outcome sensitivity (utility shape)"),
                Param("cons", 0.0, 5.0, 1.0, doc="response consistency, theta = 3^cons - 1"),
                Param("lambda", 0.0, 10.0, 1.0, doc="loss aversion")]

    def check_env(self, env):
        if env.n_states != 1 or env.n_actions < 2:
            raise ValueError(f"{self.name}: IGT models need one state (the decks are the actions) and at least "
                             f"2 decks; the task has {env.n_states} states and {env.n_actions} actions")

    def init(self, p, env, n, ops):
        z = ops.zeros((n, env.n_actions))
        return {"ev": z, "pers": z, "ef": z}

    def _theta(self, p, ops):
        return ops.expm1(p["cons"] * LOG3)

    def _choose(self, q, tau_inv, obs, ops, extra):
        policy, logp = softmax_policy(tau_inv[:, None] * q, obs["avail"], ops)
        out = shared_latents(q, policy, 1.0 / tau_inv, ops)
        out.update(policy=policy, log_policy=logp, **extra)
        return out


@register_agent
class IGTPVLDelta(_IGT):
    """hBayesDM ``igt_pvl_delta``: prospect valence learning with the delta rule (A, alpha, cons, lambda)."""

    name = "igt_pvl_delta"
    hbayesdm_priors = {"A": PHI, "alpha": PHI, "cons": PHI, "lambda": PHI}
    decay: ClassVar[bool] = False

    def param_spec(self):
        return self._pvl_params()

    def decide(self, p, s, obs, ops):
        return self._choose(s["ev"], self._theta(p, ops), obs, ops, {"ev": s["ev"]})

    def learn(self, p, s, obs, dec, ops):
        a1h = ops.onehot(obs["choice"], self.env.n_actions)
        u = prospect_utility(obs["reward"], p["alpha"], p["lambda"], ops)
        eva = take(s["ev"], a1h, ops)
        if self.decay:
            ev = p["A"][:, None] * s["ev"] + a1h * u[:, None]
            pe = u
        else:
            pe = u - eva
            ev = s["ev"] + a1h * (p["A"] * pe)[:, None]
        return {**s, "ev": ev}, {"rpe": pe, "chosen_value": eva, "utility": u}


@register_agent
class IGTPVLDecay(IGTPVLDelta):
    """hBayesDM ``igt_pvl_decay``: prospect valence learning with the decay-reinforcement rule."""

    name = "igt_pvl_decay"
    decay = True


@register_agent
class IGTVPP(_IGT):
    """hBayesDM ``igt_vpp``: value-plus-perseverance (A, alpha, cons, lambda, epP, epN, K, w)."""

    name = "igt_vpp"
    latent_dims = {**_IGT.latent_dims, "pers": ("action",)}
    null_policy_params = {"cons": 1e-12}
    hbayesdm_priors = {"A": PHI, "alpha": PHI, "cons": PHI, "lambda": PHI, "epP": REAL_CAUCHY1,
                       "epN": REAL_CAUCHY1, "K": PHI, "w": PHI}

    def param_spec(self):
        return self._pvl_params() + [
            Param("epP", -INF, INF, 0.0, doc="perseverance impact of a gain (x >= 0)"),
            Param("epN", -INF, INF, 0.0, doc="perseverance impact of a loss (x < 0)"),
            Param("K", 0.0, 1.0, 0.5, doc="perseverance decay"),
            Param("w", 0.0, 1.0, 0.5, doc="weight of the expected value against perseverance"),
        ]

    def decide(self, p, s, obs, ops):
        w = p["w"][:, None]
        V = w * s["ev"] + (1.0 - w) * s["pers"]
        return self._choose(V, self._theta(p, ops), obs, ops, {"ev": s["ev"], "pers": s["pers"]})

    def learn(self, p, s, obs, dec, ops):
        a1h = ops.onehot(obs["choice"], self.env.n_actions)
        x = obs["reward"]
        u = prospect_utility(x, p["alpha"], p["lambda"], ops)
        pers = p["K"][:, None] * s["pers"] + a1h * ops.where(x >= 0, p["epP"], p["epN"])[:, None]
        eva = take(s["ev"], a1h, ops)
        pe = u - eva
        ev = s["ev"] + a1h * (p["A"] * pe)[:, None]
        return {**s, "ev": ev, "pers": pers}, {"rpe": pe, "chosen_value": eva, "utility": u}


@register_agent
class IGTORL(_IGT):
    """hBayesDM ``igt_orl``: outcome-representation learning (Arew, Apun, K, betaF, betaP)."""

    name = "igt_orl"
    latent_dims = {**_IGT.latent_dims, "pers": ("action",), "ef": ("action",)}
    #: no temperature: the policy is uniform when nothing is learnt and neither bonus counts
    null_policy_params = {"Arew": 1e-12, "Apun": 1e-12, "betaF": 0.0, "betaP": 0.0}
    hbayesdm_priors = {"Arew": PHI, "Apun": PHI, "K": PHI, "betaF": REAL_CAUCHY1, "betaP": REAL_CAUCHY1}

    def param_spec(self):
        return [Param("Arew", 0.0, 1.0, 0.3, doc="reward learning rate"),
                Param("Apun", 0.0, 1.0, 0.3, doc="punishment learning rate"),
                Param("K", 0.0, 5.0, 1.0, doc="perseverance decay, pers /= 3^K"),
                Param("betaF", -INF, INF, 1.0, doc="weight of the win frequency"),
                Param("betaP", -INF, INF, 1.0, doc="weight of perseverance")]

    def decide(self, p, s, obs, ops):
        util = s["ev"] + p["betaF"][:, None] * s["ef"] + p["betaP"][:, None] * s["pers"]
        one = 0.0 * p["Arew"] + 1.0
        return self._choose(util, one, obs, ops, {"ev": s["ev"], "ef": s["ef"], "pers": s["pers"]})

    def learn(self, p, s, obs, dec, ops):
        A = self.env.n_actions
        a1h = ops.onehot(obs["choice"], A)
        x = obs["reward"]
        sgn = ops.sign(x)
        ev, ef = s["ev"], s["ef"]
        eva, efa = take(ev, a1h, ops), take(ef, a1h, ops)
        pe_val = x - eva
        pe_freq = sgn - efa
        pe_fic = -sgn[:, None] / (A - 1) - ef
        gain = x >= 0
        a_chosen = ops.where(gain, p["Arew"], p["Apun"])
        a_other = ops.where(gain, p["Apun"], p["Arew"])
        ef = (1.0 - a1h) * (ef + a_other[:, None] * pe_fic) + a1h * (efa + a_chosen * pe_freq)[:, None]
        ev = ev + a1h * (a_chosen * pe_val)[:, None]
        k_tr = ops.expm1(p["K"] * LOG3)
        pers = ((1.0 - a1h) * s["pers"] + a1h) / (1.0 + k_tr)[:, None]
        return {"ev": ev, "ef": ef, "pers": pers}, {"rpe": pe_val, "chosen_value": eva, "utility": x}
