"""The decision-only action marginal: one definition for the tabular and the deep agents (agents.md §4).

On tasks with a null / wait action (``mouse_bandit_timestep`` with ``include_null_action=True``: action 2),
a marginal-policy penalty computed over *all* actions lets the wait action take marginal mass (a running
marginal such as [0.36, 0.36, 0.28]) and charges the agent for waiting as if waiting were a choice. The
decision-only marginal restricts the idea to the choice actions:

* the marginal ``P`` lives on the choice actions: ``P(null) = 0``, uniform over the choices at the start
  (:func:`initial_marginal`);
* the *default policy* of a state (:func:`default_policy`) is ``P`` renormalised over the available choice
  actions, and 1 on the null action (its log is 0): the null action's odds against acting are not compressed;
* the *conditional choice policy* (:func:`choice_conditional`) is ``pi_c(a) = pi(a) / (1 - pi(null))`` on
  choice actions and 0 on the null action;
* on a decision (a row whose action is a choice) the cost is ``log pi_c(a) - log P(a)`` and the marginal moves
  toward ``pi_c``: ``P <- P + alpha (pi_c - P)`` (:func:`update_choice_marginal`); other rows pay no cost and
  leave ``P`` unchanged.

Users: :class:`~neurorl.agents.policy_compression.PolicyCompression` (option ``null_action``; through the
``ops`` layer, so simulate, replay, the JAX likelihood and PyMC share it) and the DRQN's marginal-policy KL
penalty (:mod:`neurorl.agents.deep.drqn`, ``kl_decision_only`` on a task with a null action; numpy ops).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LOG_FLOOR", "choice_conditional", "choice_mask", "default_policy", "initial_marginal",
           "update_choice_marginal"]

#: floor under probabilities before a log, so a marginal that decays to 0 stays finite
LOG_FLOOR = 1e-300


def choice_mask(n_actions: int, null_action: int | None) -> np.ndarray | None:
    """Float ``(n_actions,)``: 1 on choice actions, 0 on the null action; None without a null action."""
    if null_action is None:
        return None
    k = int(null_action)
    if not 0 <= k < n_actions:
        raise ValueError(f"choice_mask: null_action={k} is not an action of a task with {n_actions} actions")
    if n_actions < 3:
        raise ValueError(f"choice_mask: a null action needs at least two choice actions besides it; the task has "
                         f"{n_actions} actions")
    m = np.ones(n_actions)
    m[k] = 0.0
    return m


def initial_marginal(n_actions: int, null_action: int | None) -> np.ndarray:
    """Uniform over the choice actions (over all actions without a null action)."""
    mask = choice_mask(n_actions, null_action)
    if mask is None:
        return np.full(n_actions, 1.0 / n_actions)
    return mask / mask.sum()


def default_policy(P, avail, mask, ops, *, log: bool = True):
    """The default policy ``pi0(a|s)`` of the marginal ``P`` (``(n, A)``) in states with available actions ``avail``.

    ``P`` renormalised over the available (choice) actions; with a ``mask`` (:func:`choice_mask`) the null action
    gets ``pi0 = 1`` (log 0). Returns ``log pi0`` (``log=True``; unavailable actions: ``log(floor)``) or ``pi0``.
    """
    if mask is None:
        Pm = ops.where(avail, ops.maximum(P, LOG_FLOOR), 0.0)
        lp = ops.log(ops.maximum(Pm, LOG_FLOOR)) - ops.log(ops.sum(Pm, axis=-1, keepdims=True))
    else:
        choice = avail & (ops.asarray(mask) > 0)[None]
        Pm = ops.where(choice, ops.maximum(P, LOG_FLOOR), 0.0)
        # a state where only the null action is available: keep the log-normaliser finite
        norm = ops.maximum(ops.sum(Pm, axis=-1, keepdims=True), LOG_FLOOR)
        lp = ops.log(ops.maximum(Pm, LOG_FLOOR)) - ops.log(norm)
        lp = ops.where(ops.asarray(mask) > 0, lp, 0.0)
    return lp if log else ops.where(avail, ops.exp(lp), 0.0)


def choice_conditional(policy, mask, ops):
    """``(pi_c, act)``: the policy conditional on acting, ``pi_c = pi * mask / act``, and ``act = 1 - pi(null)``
    (floored). Without a mask: ``(policy, 1)``."""
    if mask is None:
        return policy, 1.0
    m = ops.asarray(mask)[None]
    act = ops.maximum(ops.sum(policy * m, axis=-1), LOG_FLOOR)
    return policy * m / act[:, None], act


def update_choice_marginal(P, pi_c, alpha, apply, ops):
    """``P + alpha apply (pi_c - P)``, renormalised; ``alpha`` and ``apply`` broadcast over rows ``(n,)``."""
    P = P + (alpha * apply)[:, None] * (pi_c - P)
    return P / ops.sum(P, axis=-1, keepdims=True)
