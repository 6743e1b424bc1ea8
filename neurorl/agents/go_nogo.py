"""Go/no-go family of hBayesDM: ``gng_m1`` ... ``gng_m4`` (agents.md §7).

Guitart-Masip et al. 2012 (NeuroImage) and Cavanagh et al. 2013 (J Neurosci),
as implemented in hBayesDM's ``gng_m1..m4.stan`` [S]. Per cue ``s`` (all
values start at 0) with outcome ``o`` (reward, -1/0/+1 in the task):

* ``W_go(s) = Q_go(s) + b + pi * SV(s)``, ``W_nogo(s) = Q_nogo(s)``;
* ``P(go) = sigmoid(W_go - W_nogo) (1 - xi) + xi / 2``;
* the emitted response ``x`` is updated, ``Q_x(s) += eps (rho o - Q_x(s))``;
* every trial ``SV(s) += eps (rho o - SV(s))``.

Models: ``gng_m1`` (xi, eps, rho); ``gng_m2`` adds the go bias ``b``;
``gng_m3`` adds the Pavlovian weight ``pi``; ``gng_m4`` splits ``rho`` into
``rho_rew`` and ``rho_pun``. The four are subclasses sharing one rule; a model
lacking ``b`` or ``pi`` uses 0 for it.

Actions: 0 = no-go, 1 = go (hBayesDM ``pressed``). States are the cues; the
rule works for any number of cues (4 in the task). Value tables: ``Q`` is
indexed by the task's items (``EnvSpec.item[s, a]``, so ``Q[item[s, 0]]`` is
``Q_nogo(s)``), ``SV`` by state.

Assumptions and choices
-----------------------
[S] ``gng_m4`` uses ``rho_rew`` when ``o >= 0`` and ``rho_pun`` when ``o < 0``
    (hBayesDM ``if (outcome[i, t] >= 0)``), for both the SV and the Q update.
    Since ``rho * 0 = 0`` the choice at ``o = 0`` is immaterial: the split is by
    the sign of the outcome, i.e. by the cue's valence only through its outcomes.
[A] ``sv`` is tracked in every model (also m1/m2, where it does not enter the
    policy and hBayesDM does not compute it), so the latent exists throughout.
[A] Shared latents: ``q = (Q_nogo, Q_go)`` of the shown cue; ``q_soft = (W_nogo,
    W_go)``, the action weights whose softmax at unit temperature is the
    pre-lapse policy; the effective temperature is 1 (``rho`` already scales the
    outcomes), so ``v_soft = sum(pi W) + H(pi)``, which equals
    ``logsumexp(W)`` when ``xi = 0``. ``policy`` includes the lapse.
    ``rpe = rho_o o - Q_x(s)`` (instrumental error of the emitted response);
    ``rpe_sv = rho_o o - SV(s)`` (Pavlovian error); ``chosen_value = Q_x(s)``.
[A] Simulation is restricted to the ``go_nogo`` task (``tasks``); replay and
    fitting accept any data with two actions.
[A] Defaults (simulation starting points, not priors): xi 0.05, eps 0.2, rho 3,
    rho_rew 3, rho_pun 3, b 0.5, pi 0.5. hBayesDM's priors (Phi_approx for xi and
    eps, exp for the rho's, identity for b, pi) are not reproduced; the default
    priors are the package's weak normals on the unconstrained scale.

hBayesDM parameter names map as ``ep -> eps``, ``rhoRew -> rho_rew``,
``rhoPun -> rho_pun`` (:data:`HBAYESDM_NAMES`).
"""

from __future__ import annotations

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take, with_lapse

__all__ = ["GoNoGoM1", "GoNoGoM2", "GoNoGoM3", "GoNoGoM4", "HBAYESDM_NAMES"]

INF = float("inf")

#: hBayesDM parameter name -> neurorl parameter name
HBAYESDM_NAMES = {"xi": "xi", "ep": "eps", "rho": "rho", "b": "b", "pi": "pi", "rhoRew": "rho_rew",
                  "rhoPun": "rho_pun"}


class _GoNoGo(Agent):
    """Shared rule of the go/no-go models (not registered itself; see the subclasses).

    Parameters
    ----------
    fixed : dict, optional
        Parameters held constant (see :class:`~neurorl.agents.base.Agent`).
    """

    family = "go_nogo"
    tasks = ("go_nogo",)
    latent_dims = {**VALUE_LATENTS, "q_go": (), "q_nogo": (), "w_go": (), "w_nogo": (), "sv": (), "rpe_sv": ()}
    null_policy_params = {"rho": 1e-12, "rho_rew": 1e-12, "rho_pun": 1e-12, "b": 0.0, "pi": 0.0}
    #: model structure (set by the subclasses)
    go_bias: bool = False
    pavlovian: bool = False
    split_rho: bool = False

    def __init__(self, *, fixed=None):
        super().__init__(fixed=fixed)

    def param_spec(self):
        spec = [
            Param("xi", 0.0, 1.0, 0.05, prior_loc=-3.0, doc="lapse (irreducible noise)"),
            Param("eps", 0.0, 1.0, 0.2, doc="learning rate"),
        ]
        if self.split_rho:
            spec += [Param("rho_rew", 0.0, INF, 3.0, doc="outcome sensitivity for o >= 0"),
                     Param("rho_pun", 0.0, INF, 3.0, doc="outcome sensitivity for o < 0")]
        else:
            spec.append(Param("rho", 0.0, INF, 3.0, doc="outcome sensitivity"))
        if self.go_bias:
            spec.append(Param("b", -INF, INF, 0.5, doc="go bias"))
        if self.pavlovian:
            spec.append(Param("pi", -INF, INF, 0.5, doc="Pavlovian weight of the cue value SV on go"))
        return spec

    def check_env(self, env):
        if env.n_actions != 2:
            raise ValueError(
                f"{self.name}: go/no-go models need exactly 2 actions (0 = no-go, 1 = go); "
                f"the task has {env.n_actions}"
            )

    def init(self, p, env, n, ops):
        return {"Q": ops.zeros((n, env.n_items)), "SV": ops.zeros((n, env.n_states))}

    def decide(self, p, s, obs, ops):
        q = ops.gather(s["Q"], obs["items"])  # (n, 2): (Q_nogo, Q_go)
        sv = ops.gather(s["SV"], obs["state"])
        q_nogo, q_go = q[:, 0], q[:, 1]
        w_go = q_go
        if self.go_bias:
            w_go = w_go + p["b"]
        if self.pavlovian:
            w_go = w_go + p["pi"] * sv
        w_nogo = q_nogo
        w = ops.stack([w_nogo, w_go], axis=-1)
        pre, _ = softmax_policy(w, obs["avail"], ops)  # sigmoid(W_go - W_nogo) on action 1
        policy, logp = with_lapse(pre, obs["avail"], p["xi"], ops)
        out = shared_latents(q, policy, 1.0, ops, q_soft=w)
        out.update(policy=policy, log_policy=logp, q_go=q_go, q_nogo=q_nogo, w_go=w_go, w_nogo=w_nogo, sv=sv)
        return out

    def learn(self, p, s, obs, dec, ops):
        o = obs["reward"]
        rho = ops.where(o >= 0, p["rho_rew"], p["rho_pun"]) if self.split_rho else p["rho"]
        target = rho * o
        a1h = ops.onehot(obs["choice"], 2)
        qx = take(dec["q"], a1h, ops)
        delta = target - qx
        delta_sv = target - dec["sv"]
        eps = p["eps"]
        new = {
            "Q": ops.scatter_add(s["Q"], obs["chosen_item"], eps * delta),
            "SV": ops.scatter_add(s["SV"], obs["state"], eps * delta_sv),
        }
        return new, {"rpe": delta, "rpe_sv": delta_sv, "chosen_value": qx}


@register_agent
class GoNoGoM1(_GoNoGo):
    """hBayesDM ``gng_m1``: Rescorla-Wagner + lapse; parameters xi, eps, rho."""

    name = "gng_m1"


@register_agent
class GoNoGoM2(_GoNoGo):
    """hBayesDM ``gng_m2``: ``gng_m1`` + go bias ``b``."""

    name = "gng_m2"
    go_bias = True


@register_agent
class GoNoGoM3(_GoNoGo):
    """hBayesDM ``gng_m3``: ``gng_m2`` + Pavlovian weight ``pi`` on the cue value SV."""

    name = "gng_m3"
    go_bias = True
    pavlovian = True


@register_agent
class GoNoGoM4(_GoNoGo):
    """hBayesDM ``gng_m4``: ``gng_m3`` with ``rho`` split into ``rho_rew`` (o >= 0) and ``rho_pun`` (o < 0)."""

    name = "gng_m4"
    go_bias = True
    pavlovian = True
    split_rho = True
