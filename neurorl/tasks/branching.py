"""Equal-value branching task after Ziebart et al. (2008) (tasks.md §5).

Structure [S: nisheetpatel/DRA_vs_maxEntRL ``tasks.py`` ZiebartTask]: states 0-5, deterministic
edges 0->1, 0->2, 1->3, 2->3, 2->4, 3->5, 4->5. States 0 and 2 offer a choice between their two
successors (action 0 leads to the successor with the smaller index); states 1, 3 and 4 have a
single move (action 0). State 5 is terminal: entering it pays ``reward`` (default 1) and ends the
episode, which restarts at state 0. Every path 0 -> 5 has three moves and the same return, so a
true-value agent is indifferent at both choices, while a maximum-entropy (soft) agent prefers
0->2 with probability 1 / (1 + 2^-gamma) at any temperature [D] (gamma = 0.98 in the source).

Assumptions
-----------
[A] Every move is one trial row (also the forced moves at 1, 3, 4, where the policy is
    trivially 1 on action 0). State 5 is never shown on a trial: the row that enters it has
    ``next_state = 5`` and ``done = True``; the next row is state 0 of a new episode.
[A] In the :class:`~neurorl.schema.EnvSpec`, action 1 is unavailable in states 1, 3, 4 and 5
    (state 5 keeps action 0 "available" only because every state needs one).
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["Branching", "SUCCESSOR", "TERMINAL"]

#: successor[s, a]; -1 where the action is unavailable (state 5 is terminal)
SUCCESSOR = np.array([[1, 2], [3, -1], [3, 4], [5, -1], [5, -1], [-1, -1]], dtype=np.int64)
TERMINAL = 5


@register_task
class Branching(Task):
    """Equal-value branching task (tasks.md §5).

    Parameters
    ----------
    reward : float, default 1.0
        Reward on entering the terminal state 5 (all other moves pay 0).

    Attributes
    ----------
    successor : ndarray of int, shape (6, 2)
        State reached by each action; -1 where the action is unavailable.
    reward_table : ndarray of float, shape (6, 2)
        Reward of each move (0 where unavailable).
    available : ndarray of bool, shape (6, 2)
        Same as ``env.available``.
    terminal : int
        The terminal state (5).
    gamma : float
        Discount factor of the source (0.98), for analyses and tests.

    Notes
    -----
    Covariate ``episode``: 0-based episode counter of each subject.
    """

    name = "branching"
    covariates = {"episode": ()}
    episodic = True
    default_n_trials = 300
    gamma = 0.98
    terminal = TERMINAL

    def __init__(self, *, reward: float = 1.0):
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.integer, np.floating)) \
                or not np.isfinite(reward):
            raise ValueError(f"branching: reward must be a finite number, got {reward!r}")
        super().__init__(reward=float(reward))
        available = SUCCESSOR >= 0
        available[TERMINAL, 0] = True  # EnvSpec needs one available action per state; never shown
        item = np.arange(12).reshape(6, 2)
        self._env = EnvSpec(6, 2, 12, item, available, np.full((6, 2), np.nan))
        self.successor = SUCCESSOR.copy()
        self.available = available.copy()
        self.reward_table = np.where(SUCCESSOR == TERMINAL, float(reward), 0.0)

    def reset(self, n, rng):
        return {"s": np.zeros(n, np.int64), "episode": np.zeros(n, np.int64)}

    def observe(self, ts):
        return ts["s"].copy()

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        s = ts["s"]
        nxt = SUCCESSOR[s, action]
        done = nxt == TERMINAL
        out = {"reward": self.reward_table[s, action].astype(float), "next_state": nxt.astype(np.int64),
               "done": done, "episode": ts["episode"].copy()}
        ts = {"s": np.where(done, 0, nxt).astype(np.int64), "episode": ts["episode"] + done.astype(np.int64)}
        return ts, out
