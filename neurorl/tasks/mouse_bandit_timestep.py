"""Mouse two-armed bandit, time-step variant (Beron et al. 2022; tasks.md §1 "Time-step variant").

After q-rnn ``tasks/beron2022.py`` ``Beron2022`` and ``tasks/trial.py`` [S as summarised in
tasks.md §1]. Every time step is one trial row; a *task trial* spans several rows.

States: 0 during the inter-trial interval (ITI), 1 from go onset until the task trial ends.
Actions: 0 left, 1 right, and (``include_null_action``) 2 null / wait.

A task trial runs as follows. A step counter starts at -1 and the ITI value is
``iti = G - 1 + iti_min`` with ``G ~ Geometric(iti_p)`` on {1, 2, ...}; rows with counter
``< iti`` are ITI rows, so every task trial has ``G + iti_min >= 1`` ITI rows (mean
``1 / iti_p + iti_min``). Then:

* ITI row: a non-null action *aborts* the trial with reward ``abort_penalty`` when that is
  non-zero (it must then be negative and the null action must exist); otherwise actions in
  the ITI are ignored (reward 0) and the ITI runs on.
* Go period (state 1): the decision is the first non-null action. It pays 1 with probability
  ``p_rew_max`` if it is the hidden high port and ``1 - p_rew_max`` otherwise; the reward is
  delivered ``reward_delay`` rows after the decision row (on the decision row itself when 0),
  and the trial ends on the delivery row. Null actions before the decision pay 0 and wait.
* Timeout: if the first ``max_trial_length`` go-period rows all hold the null action, the
  trial ends on the last of them with reward 0.

When a task trial ends (reward delivery, timeout or abort) the next row starts a new task trial
(new ITI) and the high port flips with probability ``p_switch``. The initial high port is
Bernoulli(0.5).

Rows: ``done`` is True on the row that ends a task trial (nothing is bootstrapped across a
trial boundary, so a TD agent's go-period values estimate the coming reward as in the
trial-level bandit); ``next_state`` is always the state of the next row. The session never
terminates (``episodic = False``).

Covariates: ``high_port`` (hidden high port on the row), ``trial_number`` (0-based task-trial
counter, aborted and timed-out trials included), ``phase`` (0 ITI, 1 go period before the
decision, 2 waiting for a delayed reward after the decision), ``decision`` (bool: this row's
action is the task trial's decision).

Assumptions and remaining ambiguities
-------------------------------------
[A] Timeout rule: the undecided go period lasts at most ``max_trial_length`` rows (the
    reference's "> max_trial_length steps after go onset" leaves an off-by-one open).
    Without the null action every go-onset action is a decision, so no timeout occurs.
[A] Actions during the reward delay are ignored; the timeout does not apply once decided.
[A] Aborts and timeouts count as task trials: they advance ``trial_number`` and allow a block
    switch (q-rnn draws a new trial, and a switch, at every trial start).
[A] ``jitter`` (default 0 in the reference) is not implemented: the delay is exactly
    ``reward_delay``. The observation wrappers (previous reward / action inputs) belong to
    the agents, not to this task.
[A] ``default_n_trials`` = 600 rows, about 200 task trials at the default ITI (3 rows each).
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["MouseBanditTimestep", "ITI", "GO", "DELAY"]

#: phase codes of the ``phase`` covariate
ITI, GO, DELAY = 0, 1, 2


def _is_int(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, np.integer))


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and bool(np.isfinite(v))


@register_task
class MouseBanditTimestep(Task):
    """Time-step variant of the Beron et al. (2022) mouse bandit (tasks.md §1).

    Parameters
    ----------
    p_rew_max : float, default 0.8
        Reward probability of the high port (in [0.5, 1]).
    p_switch : float, default 0.02
        Probability that the high port flips after each task trial.
    iti_min : int, default 0
        Minimum ITI value; ITI rows per trial = Geometric(iti_p) + iti_min.
    iti_p : float, default 0.5
        Success probability of the geometric ITI draw, in (0, 1].
    reward_delay : int, default 0
        Rows between the decision and reward delivery.
    max_trial_length : int, default 10
        Maximum number of undecided go-period rows before a timeout.
    include_null_action : bool, default False
        Add action 2, "null / wait".
    abort_penalty : float, default 0.0
        Reward of a non-null action in the ITI, which then ends the trial; must be <= 0, and
        non-zero only with the null action. 0: ITI actions are ignored.

    Notes
    -----
    See the module docstring for the exact rules, rows and covariates.
    """

    name = "mouse_bandit_timestep"
    covariates = {"high_port": (), "trial_number": (), "phase": (), "decision": ()}
    episodic = False
    default_n_trials = 600

    def __init__(self, *, p_rew_max: float = 0.8, p_switch: float = 0.02, iti_min: int = 0, iti_p: float = 0.5,
                 reward_delay: int = 0, max_trial_length: int = 10, include_null_action: bool = False,
                 abort_penalty: float = 0.0):
        where = "mouse_bandit_timestep"
        if not _is_number(p_rew_max) or not 0.5 <= p_rew_max <= 1.0:
            raise ValueError(f"{where}: p_rew_max must be in [0.5, 1], got {p_rew_max!r}")
        if not _is_number(p_switch) or not 0.0 <= p_switch <= 1.0:
            raise ValueError(f"{where}: p_switch must be in [0, 1], got {p_switch!r}")
        if not _is_int(iti_min) or iti_min < 0:
            raise ValueError(f"{where}: iti_min must be an int >= 0, got {iti_min!r}")
        if not _is_number(iti_p) or not 0.0 < iti_p <= 1.0:
            raise ValueError(f"{where}: iti_p must be in (0, 1], got {iti_p!r}")
        if not _is_int(reward_delay) or reward_delay < 0:
            raise ValueError(f"{where}: reward_delay must be an int >= 0, got {reward_delay!r}")
        if not _is_int(max_trial_length) or max_trial_length < 1:
            raise ValueError(f"{where}: max_trial_length must be an int >= 1, got {max_trial_length!r}")
        if not isinstance(include_null_action, (bool, np.bool_)):
            raise ValueError(f"{where}: include_null_action must be True or False, got {include_null_action!r}")
        if not _is_number(abort_penalty) or abort_penalty > 0:
            raise ValueError(f"{where}: abort_penalty must be a finite number <= 0, got {abort_penalty!r}")
        if abort_penalty != 0 and not include_null_action:
            raise ValueError(f"{where}: a non-zero abort_penalty ({abort_penalty}) needs include_null_action=True "
                             "(without a null action every ITI step would abort)")
        super().__init__(p_rew_max=float(p_rew_max), p_switch=float(p_switch), iti_min=int(iti_min),
                         iti_p=float(iti_p), reward_delay=int(reward_delay), max_trial_length=int(max_trial_length),
                         include_null_action=bool(include_null_action), abort_penalty=float(abort_penalty))
        self._env = EnvSpec.default(2, 3 if include_null_action else 2)

    @property
    def null_action(self) -> int | None:
        """The null / wait action's index (2) with ``include_null_action``, else None."""
        return 2 if self.options["include_null_action"] else None

    # ------------------------------------------------------------------ helpers
    def _draw_iti(self, n, rng) -> np.ndarray:
        """ITI values ``Geometric(iti_p) - 1 + iti_min`` (the counter starts at -1)."""
        return rng.geometric(self.options["iti_p"], size=n).astype(np.int64) - 1 + self.options["iti_min"]

    def reset(self, n, rng):
        return {
            "z": (rng.random(n) < 0.5).astype(np.int64),
            "trial": np.zeros(n, np.int64),
            "t": np.full(n, -1, np.int64),
            "iti": self._draw_iti(n, rng),
            "decided": np.zeros(n, bool),
            "delay_left": np.zeros(n, np.int64),
            "pending": np.zeros(n, float),
        }

    def observe(self, ts):
        return (ts["t"] >= ts["iti"]).astype(np.int64)

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        o = self.options
        n = action.shape[0]
        z, t, iti, decided = ts["z"], ts["t"], ts["iti"], ts["decided"]
        # draws made on every row, so that streams stay aligned across subjects and rows
        u_reward = rng.random(n)
        u_switch = rng.random(n)
        new_iti = self._draw_iti(n, rng)

        in_iti = t < iti
        phase = np.where(in_iti, ITI, np.where(decided, DELAY, GO))
        null = (action == 2) if o["include_null_action"] else np.zeros(n, bool)

        # ITI: abort on a non-null action when the penalty is non-zero
        abort = in_iti & ~null & (o["abort_penalty"] != 0)
        # go period: the first non-null action is the decision
        decision = (phase == GO) & ~null
        p = np.where(action == z, o["p_rew_max"], 1.0 - o["p_rew_max"])
        paid = (u_reward < p).astype(float)
        go_rows = t - iti + 1  # go-period rows so far, this one included
        timeout = (phase == GO) & null & (go_rows >= o["max_trial_length"])
        # reward delivery: on the decision row (no delay) or when the delay runs out
        delay_left = np.where(decision, o["reward_delay"], ts["delay_left"] - (phase == DELAY))
        pending = np.where(decision, paid, ts["pending"])
        deliver = (decision | (phase == DELAY)) & (delay_left == 0)

        reward = np.where(abort, o["abort_penalty"], np.where(deliver, pending, 0.0))
        end = abort | timeout | deliver
        switch = end & (u_switch < o["p_switch"])
        new = {
            "z": np.where(switch, 1 - z, z).astype(np.int64),
            "trial": ts["trial"] + end.astype(np.int64),
            "t": np.where(end, -1, t + 1).astype(np.int64),
            "iti": np.where(end, new_iti, iti).astype(np.int64),
            "decided": np.where(end, False, decided | decision),
            "delay_left": np.where(end, 0, delay_left).astype(np.int64),
            "pending": np.where(end, 0.0, pending),
        }
        out = {
            "reward": reward.astype(float),
            "next_state": self.observe(new),
            "done": end.astype(bool),
            "high_port": z.copy(),
            "trial_number": ts["trial"].copy(),
            "phase": phase.astype(np.int64),
            "decision": decision,
        }
        return new, out
