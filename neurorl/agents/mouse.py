"""Mouse two-armed bandit agents of Beron et al. 2022 (PNAS 119:e2113961119; agents.md §9).

Three agents for single-state, two-port tasks (``mouse_bandit``), after
celiaberon/2ABT_behavior_models [S]. ``c̄ = 2c - 1`` codes the choice as
-1 (port 0) / +1 (port 1); ``c̄_{t-1} = 0`` before the first choice.

``rflr`` -- recursively formulated logistic regression (alpha, beta, tau)
    ``phi_t = gamma phi_{t-1} + beta r_t c̄_t``, ``gamma = exp(-1/tau)``, with
    ``phi = 0`` before any trial (so ``phi_0 = beta r_0 c̄_0``);
    ``P(c_t = 1) = sigmoid(phi_{t-1} + alpha c̄_{t-1})``.
``fq_learning`` -- forgetting Q-learning (alpha, k, T)
    chosen ``Q(c) += k (r - Q(c))``, other ``Q <- (1 - k) Q``;
    ``P(c_t = 1) = sigmoid((Q_1 - Q_0) / T + alpha c̄_{t-1})``.
``ideal_observer`` -- Bayesian belief ``b = P(port 1 is the high port)`` (T)
    [S: mobeets/q-rnn ``belief_step_beron2022``]: ``lik1 = p`` if the choice
    equals the (binary) reward else ``1 - p``, ``lik0 = 1 - lik1``;
    ``b <- b lik1 / (b lik1 + (1 - b) lik0)``;
    ``b <- (1 - p_switch) b + p_switch (1 - b)``; ``b = 0.5`` before any trial;
    ``P(c = 1) = sigmoid(logit(b) / T)``.

Equivalence [S; D]. ``Delta = Q_1 - Q_0`` of F-Q obeys
``Delta_t = (1 - k) Delta_{t-1} + k r_t c̄_t``, so ``phi = Delta / T`` when
``k = 1 - exp(-1/tau)`` and ``T = (1 - exp(-1/tau)) / beta`` (same alpha):
the two agents give identical choice probabilities (:func:`rflr_to_fq`).

Assumptions and choices
-----------------------
[A] RFLR has no action values of its own. It carries the per-port reward
    history ``h_c <- gamma h_c + beta r 1[c chosen]`` (so ``phi = h_1 - h_0``
    exactly follows the recursion above) and reports ``q = T h`` with
    ``T = (1 - gamma) / beta``: these are the values of the equivalent F-Q agent
    (``q_c <- (1 - k) q_c + k r 1[c chosen]``), so ``q``, ``dq``, ``rpe = r -
    q(c)``, ``chosen_value`` and the effective temperature ``T`` coincide with
    F-Q's under the mapping.
[A] Shared soft latents: no agent here has a soft critic, so ``q_soft = q``
    with effective temperature ``T`` (the stickiness bonus is not a value).
    ``phi`` is the value part of the logit (``dq / T``) in RFLR and F-Q alike.
[A] Ideal observer: ``q(c)`` is the expected reward of port ``c`` under the
    belief, ``q_1 = b p + (1 - b)(1 - p)``, ``q_0 = (1 - b) p + b (1 - p)``;
    ``rpe = r - q(c)``; ``belief`` = b before the trial's outcome. A reward
    counts as a success when ``r > 0``. The temperature ``T`` enters as
    ``sigmoid(logit(b) / T)`` (T = 1 is probability matching, T -> 0 greedy).
    Options ``p`` (0.8) and ``p_switch`` (0.02) are the task's, assumed known.
[A] All three need exactly two actions and one state (check_env).
[S] RFLR defaults (alpha, beta, tau) = (0.78, 2.05, 1.43), the 80-20 fit of
    celiaberon/Transformers_for_Modeling_Decision_Sequences ``three_domains.ini``;
    F-Q defaults are their image under the mapping (k = 0.503, T = 0.245);
    ideal-observer T = 1 [A].
[A] Missed (invalid) trials leave phi, Q, the belief and the previous choice
    unchanged (``Agent.step``).
"""

from __future__ import annotations

import numpy as np

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take

__all__ = ["RFLR", "FQLearning", "IdealObserver", "rflr_to_fq"]

INF = float("inf")
_LATENTS = {**VALUE_LATENTS, "dq": (), "phi": (), "prev_choice": ()}


def rflr_to_fq(alpha: float, beta: float, tau: float) -> dict:
    """F-Q parameters equivalent to RFLR ``(alpha, beta, tau)`` (agents.md §9).

    Returns
    -------
    dict
        ``{"alpha": alpha, "k": 1 - exp(-1/tau), "T": (1 - exp(-1/tau)) / beta}``.
    """
    k = -np.expm1(-1.0 / np.asarray(tau, float))
    return {"alpha": alpha, "k": k, "T": k / np.asarray(beta, float)}


_RFLR_DEFAULT = (0.78, 2.05, 1.43)
_FQ_DEFAULT = rflr_to_fq(*_RFLR_DEFAULT)


class _TwoPort(Agent):
    """Shared checks and helpers of the two-port agents (not registered)."""

    family = "mouse_bandit"

    def check_env(self, env):
        if env.n_actions != 2:
            raise ValueError(f"{self.name}: needs exactly 2 actions (two ports); the task has {env.n_actions}")
        if env.n_states != 1:
            raise ValueError(f"{self.name}: needs a single-state task (two-port bandit); the task has "
                             f"{env.n_states} states")

    @staticmethod
    def _prev(s, ops):
        """(c̄_{t-1} in {-1, 0, +1}, previous choice index or -1)."""
        prev = s["prev"]
        cbar = prev[:, 1] - prev[:, 0]
        return cbar, prev[:, 1] - (1.0 - prev[:, 0] - prev[:, 1])

    @staticmethod
    def _policy(logit1, obs, ops):
        logits = ops.stack([0.0 * logit1, logit1], axis=-1)
        return softmax_policy(logits, obs["avail"], ops)


@register_agent
class RFLR(_TwoPort):
    """Recursively formulated logistic regression (Beron et al. 2022); see the module docstring.

    Parameters
    ----------
    fixed : dict, optional
        Parameters held constant.
    """

    name = "rflr"
    latent_dims = dict(_LATENTS)
    null_policy_params = {"beta": 1e-12, "alpha": 0.0}

    def __init__(self, *, fixed=None):
        super().__init__(fixed=fixed)

    def param_spec(self):
        a, b, t = _RFLR_DEFAULT
        return [Param("alpha", -INF, INF, a, doc="stickiness (logit weight of the previous choice)"),
                Param("beta", 0.0, INF, b, doc="weight of reward evidence"),
                Param("tau", 0.0, INF, t, doc="evidence time constant (trials)")]

    def init(self, p, env, n, ops):
        return {"h": ops.zeros((n, 2)), "prev": ops.zeros((n, 2))}

    def decide(self, p, s, obs, ops):
        h = s["h"]
        phi = h[:, 1] - h[:, 0]
        cbar, prev_choice = self._prev(s, ops)
        policy, logp = self._policy(phi + p["alpha"] * cbar, obs, ops)
        temp = -(ops.exp(-1.0 / p["tau"]) - 1.0) / p["beta"]  # T = (1 - gamma) / beta
        q = temp[:, None] * h
        out = shared_latents(q, policy, temp, ops)
        out.update(policy=policy, log_policy=logp, phi=phi, dq=q[:, 1] - q[:, 0], prev_choice=prev_choice)
        return out

    def learn(self, p, s, obs, dec, ops):
        a1h = ops.onehot(obs["choice"], 2)
        r = obs["reward"]
        gamma = ops.exp(-1.0 / p["tau"])
        h = gamma[:, None] * s["h"] + (p["beta"] * r)[:, None] * a1h
        qc = take(dec["q"], a1h, ops)
        return {"h": h, "prev": a1h}, {"rpe": r - qc, "chosen_value": qc}


@register_agent
class FQLearning(_TwoPort):
    """Forgetting Q-learning with stickiness (Beron et al. 2022 F-Q); see the module docstring.

    Parameters
    ----------
    fixed : dict, optional
        Parameters held constant.
    """

    name = "fq_learning"
    latent_dims = dict(_LATENTS)
    null_policy_params = {"T": 1e12, "alpha": 0.0}

    def __init__(self, *, fixed=None):
        super().__init__(fixed=fixed)

    def param_spec(self):
        return [Param("alpha", -INF, INF, _FQ_DEFAULT["alpha"], doc="stickiness (logit weight of the previous choice)"),
                Param("k", 0.0, 1.0, float(_FQ_DEFAULT["k"]), doc="learning and forgetting rate"),
                Param("T", 0.0, INF, float(_FQ_DEFAULT["T"]), doc="temperature")]

    def init(self, p, env, n, ops):
        return {"Q": ops.zeros((n, 2)), "prev": ops.zeros((n, 2))}

    def decide(self, p, s, obs, ops):
        q = s["Q"]
        dq = q[:, 1] - q[:, 0]
        phi = dq / p["T"]
        cbar, prev_choice = self._prev(s, ops)
        policy, logp = self._policy(phi + p["alpha"] * cbar, obs, ops)
        out = shared_latents(q, policy, p["T"], ops)
        out.update(policy=policy, log_policy=logp, phi=phi, dq=dq, prev_choice=prev_choice)
        return out

    def learn(self, p, s, obs, dec, ops):
        a1h = ops.onehot(obs["choice"], 2)
        r = obs["reward"]
        k = p["k"][:, None]
        qc = take(s["Q"], a1h, ops)
        Q = (1.0 - k) * s["Q"] + k * r[:, None] * a1h  # chosen: Q += k(r - Q); other: (1 - k) Q
        return {"Q": Q, "prev": a1h}, {"rpe": r - qc, "chosen_value": qc}


@register_agent
class IdealObserver(_TwoPort):
    """Bayesian ideal observer of the hidden high port with a softmax on its log-odds.

    Parameters
    ----------
    p : float, default 0.8
        Reward probability of the high port (known to the observer), in (0, 1).
    p_switch : float, default 0.02
        Per-trial switch probability of the high port (known), in [0, 1].
    b0 : float, default 0.5
        Belief that port 1 is high before the first trial, in (0, 1).
    fixed : dict, optional
        Parameters held constant.
    """

    name = "ideal_observer"
    latent_dims = {**VALUE_LATENTS, "dq": (), "belief": (), "prev_choice": ()}
    null_policy_params = {"T": 1e12}

    def __init__(self, *, p=0.8, p_switch=0.02, b0=0.5, fixed=None):
        p, p_switch, b0 = float(p), float(p_switch), float(b0)
        if not 0.0 < p < 1.0:
            raise ValueError(f"ideal_observer: p must be in (0, 1), got {p}")
        if not 0.0 <= p_switch <= 1.0:
            raise ValueError(f"ideal_observer: p_switch must be in [0, 1], got {p_switch}")
        if not 0.0 < b0 < 1.0:
            raise ValueError(f"ideal_observer: b0 must be in (0, 1), got {b0}")
        super().__init__(fixed=fixed, p=p, p_switch=p_switch, b0=b0)

    def param_spec(self):
        return [Param("T", 0.0, INF, 1.0, doc="temperature on the belief log-odds")]

    def init(self, p, env, n, ops):
        return {"b": ops.zeros((n,)) + self.options["b0"], "prev": ops.zeros((n, 2))}

    def decide(self, p, s, obs, ops):
        b, ph = s["b"], self.options["p"]
        tiny = 1e-300
        log_odds = ops.log(ops.maximum(b, tiny)) - ops.log(ops.maximum(1.0 - b, tiny))
        policy, logp = self._policy(log_odds / p["T"], obs, ops)
        q = ops.stack([(1.0 - b) * ph + b * (1.0 - ph), b * ph + (1.0 - b) * (1.0 - ph)], axis=-1)
        _, prev_choice = self._prev(s, ops)
        out = shared_latents(q, policy, p["T"], ops)
        out.update(policy=policy, log_policy=logp, belief=b, dq=q[:, 1] - q[:, 0], prev_choice=prev_choice)
        return out

    def learn(self, p, s, obs, dec, ops):
        o = self.options
        a1h = ops.onehot(obs["choice"], 2)
        a = a1h[:, 1]
        r = obs["reward"]
        rw = ops.where(r > 0, 1.0, 0.0)
        match = a * rw + (1.0 - a) * (1.0 - rw)  # 1 if choice == reward
        lik1 = match * o["p"] + (1.0 - match) * (1.0 - o["p"])
        lik0 = 1.0 - lik1
        b = s["b"]
        post = b * lik1 / (b * lik1 + (1.0 - b) * lik0)
        b_new = (1.0 - o["p_switch"]) * post + o["p_switch"] * (1.0 - post)
        qc = take(dec["q"], a1h, ops)
        return {"b": b_new, "prev": a1h}, {"rpe": r - qc, "chosen_value": qc}

