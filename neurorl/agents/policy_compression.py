"""Policy compression (Lai & Gershman 2021 chapter; 2024 PLoS Comput Biol 20:e1012057; agents.md §4).

The agent maximises reward subject to a bound on the policy complexity
``I(S; A)``; the optimum is ``pi(a|s) ∝ P(a) exp(beta Q(s, a))`` with the action
marginal ``P(a) = sum_s P(s) pi(a|s)`` [S].

Online actor-critic (2024 variant) [S: lucylai96/simplepolicies ``actor_critic_lik_rt.m``]
-------------------------------------------------------------------------------------------
* ``pi(a|s) ∝ exp(beta theta(s, a) + log P(a))``;
* ``cost_t = log pi(a_t|s_t) - log P(a_t)``;
* ``delta_t = beta r_t - cost_t - V(s_t)``; ``V(s_t) += alpha_v delta_t``;
* ``theta(s_t, .) += alpha_theta delta_t beta (onehot(a_t) - pi(.|s_t))``;
* ``P <- P + alpha_p (pi(.|s_t) - P)``, renormalised;
* adaptive ``beta`` (option ``adaptive``), clipped to ``beta_bounds = [0.1, 30]``:
  ``"capacity"``: ``ebar += alpha_avg (cost - ebar)`` then
  ``beta += alpha_beta (C - ebar)``; ``"value"``: ``rbar += alpha_avg (r - rbar)``
  then ``beta += alpha_beta (v_star - rbar)`` (the running average is updated
  before ``beta``, as in the authors' code [S]); ``alpha_avg = 0.01`` [S].
  Fixed and adaptive variants share one code path; with ``adaptive=None`` the
  running average and ``beta`` are simply carried unchanged.

Assumptions ([A], chosen here)
------------------------------
* The marginal ``P`` is over action labels, shared by all states and starts
  uniform. Where some actions are unavailable, the default policy of a state
  is ``P`` renormalised over its available actions, ``pi0(a|s) = P(a) /
  sum_avail P``; it replaces ``P(a)`` in the policy (no change there), in the
  cost and in ``v_soft``. With every action available this is the published
  rule. ``log P`` is floored at ``log(1e-300)`` so a marginal that decays
  to 0 stays finite.
* Known (shown) values (``EnvSpec.known_value``) enter as fixed preferences,
  ``theta = known value``, and are never updated (as Q-learning uses them as
  action values).
* The critic is the published one-step critic (no bootstrapping from the next
  state): in multi-step tasks the agent learns from immediate rewards only.
* Initial running averages: ``ebar0 = 0`` (a uniform start has zero cost; the
  authors initialise it with the empirical I(S;A) of the first 10 trials) and
  ``rbar0 = 0`` (the authors use the mean of the task's reward table);
  both are options.
* Defaults (simulation starting points, not fitted values): ``beta = 5``
  (within the authors' fitted range [1, 30]); ``alpha_v = alpha_theta =
  alpha_p = 0.1``; ``C = 0.5`` nats; ``alpha_beta = 0.1``; ``v_star = 0.5``.

Decision-only marginal (option ``null_action``; agents.md §4 open point)
-----------------------------------------------------------------------
On tasks with a null / wait action (``mouse_bandit_timestep`` with ``include_null_action=True``,
action 2), ``null_action=k`` computes the marginal over the *choice* actions only:

* ``P`` lives on the choice actions (``P(k) = 0``; uniform over the others at the start);
* ``pi(a|s) ∝ pi0(a|s) exp(beta theta(s, a))`` with ``pi0(a|s) = P(a) / sum_avail-choice P`` on
  choice actions and ``pi0(k|s) = 1`` [D]: the conditional policy over choices,
  ``pi_c(a) = pi(a) / (1 - pi(k))``, is then ``∝ P(a) exp(beta theta(s, a))`` -- the compression
  optimum of ``beta E_pi_c[theta] - KL(pi_c || P)`` --, and the wait-or-act decision is left
  uncompressed (its odds are ``exp(beta theta(k)) : sum_c pi0(c) exp(beta theta(c))``);
* ``cost_t = log pi_c(a_t) - log P(a_t)`` on rows whose action is a choice, 0 on null rows (the
  penalty is skipped on wait steps);
* ``P <- P + alpha_p (pi_c - P)`` (renormalised) only on rows whose action is a choice.

A row counts as a choice whenever its action is not the null action (the agent does not see the
task's ``decision`` covariate; on the time-step task with ``abort_penalty = 0`` a non-null action in
the ITI is ignored by the task but is still a choice for the agent). Without ``null_action`` the rule
is the published one (the marginal over all actions; with a wait action the wait mass enters ``P``).

Latents
-------
``policy``, ``marginal`` (``P`` before the trial's update), ``cost``, ``rpe``
(``delta``), ``v`` -- the critic ``V(s)``, in the units of ``beta r - cost``
(Lai & Gershman's, not ``sum pi q``) --, ``theta`` (= ``q`` = ``q_soft``; known
values where known), ``beta`` (the value used on the trial), ``entropy``,
``chosen_value`` (``theta(s, a_t)``) and ``v_soft = tau log sum_a pi0(a|s)
exp(theta(s, a) / tau)`` with ``tau = 1 / beta``: the soft value with a default
policy (agents.md §2), equal to ``sum pi theta - tau KL(pi || pi0)``.

Also here: :func:`blahut_arimoto` (the optimal policy of a known ``Q`` at a given
``beta``, [S: sjgershm/reward-complexity ``blahut_arimoto.m``]) and
:func:`reward_complexity_curve`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np

from .._lazy import scipy_special as _sp
from ..params import Param
from ..schema import ACTION, STATE
from .base import VALUE_LATENTS, Agent, register_agent, take
from .choice_marginal import (
    choice_conditional,
    choice_mask,
    default_policy,
    initial_marginal,
    update_choice_marginal,
)

__all__ = ["PolicyCompression", "blahut_arimoto", "reward_complexity_curve", "BlahutArimotoResult"]

_ADAPTIVE = (None, "capacity", "value")


@register_agent
class PolicyCompression(Agent):
    """Lai & Gershman's capacity-limited actor-critic with a learnt action marginal.

    Options
    -------
    adaptive : {None, "capacity", "value"}, default None
        Fixed ``beta``, or ``beta`` adapted toward a cost (capacity ``C``) or
        reward-rate (``v_star``) target; ``beta`` is then the initial value.
    beta_bounds : (float, float), default (0.1, 30)
        Clip of the adapted ``beta`` (unused when fixed).
    alpha_avg : float, default 0.01
        Rate of the running average of cost (capacity) or reward (value).
    ebar0, rbar0 : float, default 0
        Initial running averages of cost and reward.
    null_action : int, optional
        Index of a null / wait action: the marginal, the cost and the marginal's update then use the
        choice actions only (module docstring, "Decision-only marginal").
    """

    name = "policy_compression"
    family = "policy_compression"
    latent_dims = {**VALUE_LATENTS, "marginal": ("action",), "cost": (), "theta": ("action",), "beta": ()}
    # beta -> 0: pi = pi0 = P, which starts uniform and then stays uniform
    null_policy_params = {"beta": 1e-12}

    def __init__(self, *, adaptive=None, beta_bounds=(0.1, 30.0), alpha_avg=0.01, ebar0=0.0, rbar0=0.0,
                 null_action=None, fixed=None):
        if null_action is not None and (isinstance(null_action, bool) or not isinstance(null_action, (int, np.integer))
                                        or null_action < 0):
            raise ValueError(f"policy_compression: null_action must be None or an action index >= 0, "
                             f"got {null_action!r}")
        if adaptive not in _ADAPTIVE:
            raise ValueError(f"policy_compression: adaptive must be one of {_ADAPTIVE}, got {adaptive!r}")
        lo, hi = (float(b) for b in beta_bounds)
        if not 0.0 <= lo < hi:
            raise ValueError(f"policy_compression: beta_bounds must satisfy 0 <= lower < upper, got {beta_bounds!r}")
        if not 0.0 < alpha_avg <= 1.0:
            raise ValueError(f"policy_compression: alpha_avg must be in (0, 1], got {alpha_avg}")
        extra = {} if null_action is None else {"null_action": int(null_action)}
        super().__init__(fixed=fixed, adaptive=adaptive, beta_bounds=(lo, hi), alpha_avg=float(alpha_avg),
                         ebar0=float(ebar0), rbar0=float(rbar0), **extra)

    def param_spec(self):
        spec = [
            Param("beta", 0.0, float("inf"), 5.0, doc="inverse temperature (initial value if adaptive)"),
            Param("alpha_v", 0.0, 1.0, 0.1, doc="critic learning rate"),
            Param("alpha_theta", 0.0, 1.0, 0.1, doc="actor learning rate"),
            Param("alpha_p", 0.0, 1.0, 0.1, doc="learning rate of the action marginal"),
        ]
        adaptive = self.options["adaptive"]
        if adaptive is not None:
            spec.append(Param("alpha_beta", 0.0, 1.0, 0.1, doc="learning rate of beta"))
        if adaptive == "capacity":
            spec.append(Param("C", 0.0, float("inf"), 0.5, doc="capacity target of the average cost (nats)"))
        if adaptive == "value":
            spec.append(Param("v_star", -float("inf"), float("inf"), 0.5, doc="target average reward"))
        return spec

    def check_env(self, env):
        k = self.options.get("null_action")
        if k is not None and not k < env.n_actions:
            raise ValueError(f"{self.name}: null_action={k} but the task has {env.n_actions} actions "
                             f"(on mouse_bandit_timestep the wait action 2 needs include_null_action=True)")
        if k is not None and env.n_actions < 3:
            raise ValueError(f"{self.name}: null_action needs at least two choice actions besides it; the task has "
                             f"{env.n_actions} actions")

    def _choice_mask(self):
        """Float (A,) 1 on choice actions, 0 on the null action (None without ``null_action``)."""
        return choice_mask(self.env.n_actions, self.options.get("null_action"))

    def init(self, p, env, n, ops):
        o = self.options
        avg0 = o["ebar0"] if o["adaptive"] == "capacity" else o["rbar0"]
        P0 = initial_marginal(env.n_actions, o.get("null_action"))
        return {
            "theta": ops.zeros((n, env.n_items)),
            "V": ops.zeros((n, env.n_states)),
            "P": ops.zeros((n, env.n_actions)) + ops.asarray(P0),
            "beta": p["beta"] * 1.0,
            "avg": ops.zeros((n,)) + avg0,
        }

    def _default_policy(self, P, avail, ops):
        """``log pi0(a|s)``: log of ``P`` renormalised over the available (choice) actions; 0 for the null action
        (:func:`neurorl.agents.choice_marginal.default_policy`)."""
        return default_policy(P, avail, self._choice_mask(), ops)

    def decide(self, p, s, obs, ops):
        avail = obs["avail"]
        theta = ops.where(obs["known"], obs["known_value"], ops.gather(s["theta"], obs["items"]))
        beta = s["beta"]
        log_pi0 = self._default_policy(s["P"], avail, ops)
        logits = ops.where(avail, beta[:, None] * theta + log_pi0, -1e30)
        log_z = ops.logsumexp(logits, axis=-1)
        logp = ops.where(avail, logits - log_z[:, None], -1e30)
        policy = ops.where(avail, ops.exp(logp), 0.0)
        tau = 1.0 / beta
        return {
            "q": theta, "q_soft": theta, "theta": theta, "policy": policy, "log_policy": logp,
            "entropy": ops.entropy(policy), "v": ops.gather(s["V"], obs["state"]), "v_soft": tau * log_z,
            "marginal": s["P"], "beta": beta, "log_pi0": log_pi0,
        }

    def learn(self, p, s, obs, dec, ops):
        o = self.options
        A = self.env.n_actions
        a1h = ops.onehot(obs["choice"], A)
        beta = s["beta"]
        r = obs["reward"]
        mask = self._choice_mask()
        pi_c, act = choice_conditional(dec["policy"], mask, ops)
        if mask is None:
            cost = take(dec["log_policy"], a1h, ops) - take(dec["log_pi0"], a1h, ops)
            is_choice = 1.0
        else:
            is_choice = ops.sum(a1h * ops.asarray(mask)[None], axis=-1)  # 1 if the action is a choice
            cost = is_choice * (take(dec["log_policy"], a1h, ops) - ops.log(act) - take(dec["log_pi0"], a1h, ops))
        delta = beta * r - cost - dec["v"]
        V = ops.scatter_add(s["V"], obs["state"], p["alpha_v"] * delta)
        learnt = ops.where(obs["avail"], 1.0, 0.0) * (1.0 - ops.where(obs["known"], 1.0, 0.0))
        step = (p["alpha_theta"] * delta * beta)[:, None] * (a1h - dec["policy"]) * learnt
        theta = s["theta"]
        for a in range(A):
            theta = ops.scatter_add(theta, obs["items"][:, a], step[:, a])
        P = update_choice_marginal(s["P"], pi_c, p["alpha_p"], is_choice, ops)
        if o["adaptive"] is None:
            avg, new_beta = s["avg"], beta
        else:
            x, target = (cost, p["C"]) if o["adaptive"] == "capacity" else (r, p["v_star"])
            avg = s["avg"] + o["alpha_avg"] * (x - s["avg"])
            lo, hi = o["beta_bounds"]
            new_beta = ops.clip(beta + p["alpha_beta"] * (target - avg), lo, hi)
        new = {"theta": theta, "V": V, "P": P, "beta": new_beta, "avg": avg}
        return new, {"rpe": delta, "cost": cost, "chosen_value": take(dec["theta"], a1h, ops)}


# ---------------------------------------------------------------- Blahut-Arimoto
class BlahutArimotoResult(NamedTuple):
    """Result of :func:`blahut_arimoto`."""

    policy: np.ndarray  #: (S, A) optimal pi(a|s) ∝ P(a) exp(beta Q(s, a))
    marginal: np.ndarray  #: (A,) the marginal P in the fixed-point equation
    information: float  #: I(S; A) in nats, beta V - sum_s p(s) log Z(s)
    value: float  #: V = sum_s p(s) sum_a pi(a|s) Q(s, a)
    n_iter: int  #: iterations run
    converged: bool = True  #: whether the marginal settled (changed by at most ``tol``) within ``max_iter``


def _check_q_p(Q, p_state):
    Q = np.asarray(Q, dtype=float)
    if Q.ndim != 2 or Q.shape[0] < 1 or Q.shape[1] < 1 or not np.all(np.isfinite(Q)):
        raise ValueError(f"blahut_arimoto: Q must be a finite (n_states, n_actions) array, got shape {Q.shape}")
    p = np.asarray(p_state, dtype=float)
    if p.shape != (Q.shape[0],):
        raise ValueError(f"blahut_arimoto: p_state has shape {p.shape}; expected ({Q.shape[0]},) to match Q")
    if np.any(p < 0) or not np.isfinite(p).all() or not np.isclose(p.sum(), 1.0, atol=1e-8):
        raise ValueError(f"blahut_arimoto: p_state must be non-negative and sum to 1, got sum {p.sum()}")
    return Q, p


def blahut_arimoto(Q, p_state, beta, max_iter: int = 100_000, tol: float = 1e-10) -> BlahutArimotoResult:
    """Optimal capacity-limited policy of known action values (agents.md §4).

    Starting from a uniform marginal, iterate ``pi(a|s) ∝ P(a) exp(beta Q(s,
    a))`` and ``P <- sum_s p(s) pi(.|s)`` until no entry of the marginal ``P``
    changes by more than ``tol`` (the fixed point), or ``max_iter``
    iterations have run -- then a ``RuntimeWarning`` says so and
    ``converged`` is False. (sjgershm/reward-complexity ``blahut_arimoto.m``
    [S] stops when the value changes by less than 1e-3 or after 50
    iterations, which can be far from the fixed point for small ``beta``.)
    The returned policy is computed from the returned marginal, and
    ``I = beta V - sum_s p(s) log Z(s)``, ``Z(s) = sum_a P(a) exp(beta Q(s, a))``,
    which is ``sum_s p(s) sum_a pi log(pi / P)``; at convergence
    ``P = sum_s p(s) pi(.|s)`` and ``I`` is the mutual information ``I(S; A)``.

    Parameters
    ----------
    Q : array (n_states, n_actions)
    p_state : array (n_states,)
        State distribution (sums to 1).
    beta : float
        Inverse temperature (>= 0); ``1 / beta`` is the slope ``dV/dI``.
    max_iter : int
    tol : float

    Returns
    -------
    BlahutArimotoResult
        ``(policy, marginal, information, value, n_iter)``.
    """
    Q, p = _check_q_p(Q, p_state)
    beta = float(beta)
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"blahut_arimoto: beta must be finite and >= 0, got {beta}")
    if int(max_iter) < 1:
        raise ValueError(f"blahut_arimoto: max_iter must be >= 1, got {max_iter}")
    n_actions = Q.shape[1]
    log_marg = np.full(n_actions, -np.log(n_actions))
    it = 0
    converged = False
    change = np.inf
    for it in range(1, int(max_iter) + 1):
        F = beta * Q + log_marg
        log_pi = F - _sp.logsumexp(F, axis=1, keepdims=True)
        pi = np.exp(log_pi)
        old = np.exp(log_marg)
        with np.errstate(divide="ignore"):
            log_marg = np.log(p @ pi)
        change = float(np.max(np.abs(np.exp(log_marg) - old)))
        if change <= tol:
            converged = True
            break
    if not converged:
        warnings.warn(f"blahut_arimoto: beta = {beta:g}: the marginal still changed by {change:.3g} > tol = {tol:g} "
                      f"after max_iter = {max_iter} iterations; the policy is not the optimum -- increase max_iter",
                      RuntimeWarning, stacklevel=2)
    F = beta * Q + log_marg
    log_z = _sp.logsumexp(F, axis=1)
    pi = np.exp(F - log_z[:, None])
    v = float(np.sum(p[:, None] * pi * Q))
    info = float(beta * v - np.sum(p * log_z))
    return BlahutArimotoResult(pi, np.exp(log_marg), info, v, it, converged)


def reward_complexity_curve(Q, p_state, betas=None, *, max_iter: int = 100_000, tol: float = 1e-10):
    """The reward-complexity frontier: :func:`blahut_arimoto` over a grid of ``beta``.

    Parameters
    ----------
    Q, p_state : see :func:`blahut_arimoto`
    betas : array_like, optional
        Default: 30 values in ``[0.1, 15]`` (agents.md §4 [S]).

    Returns
    -------
    xarray.Dataset
        On dim ``beta``: ``information`` (I(S;A), nats), ``value`` (V),
        ``policy`` (beta, state_id, action) and ``marginal`` (beta, action).
    """
    import xarray as xr

    Q, p = _check_q_p(Q, p_state)
    betas = np.linspace(0.1, 15.0, 30) if betas is None else np.atleast_1d(np.asarray(betas, dtype=float))
    res = [blahut_arimoto(Q, p, b, max_iter=max_iter, tol=tol) for b in betas]
    return xr.Dataset(
        {
            "information": ("beta", np.array([r.information for r in res])),
            "value": ("beta", np.array([r.value for r in res])),
            "policy": (("beta", STATE, ACTION), np.stack([r.policy for r in res])),
            "marginal": (("beta", ACTION), np.stack([r.marginal for r in res])),
        },
        coords={"beta": betas, STATE: np.arange(Q.shape[0]), ACTION: np.arange(Q.shape[1])},
        attrs={"max_iter": int(max_iter), "tol": float(tol)},
    )
