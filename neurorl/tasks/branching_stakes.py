"""Branching with stakes: one task that separates DRA, max-ent RL and Q-learning (docs/tasks.md, "Choosing a design").

Why this task
-------------
On a one-state bandit a max-ent (soft Q) agent *is* a Q-learner (``tau = 1 / beta``): no bandit can tell them apart.
On the equal-value branching task (:mod:`neurorl.tasks.branching`) the max-ent agent prefers the branch with more
paths onward, but every choice has equal value, so a DRA agent -- whose signature is where it spends memory
precision -- behaves like a noisy Q-learner. On the frequency x stakes memory task DRA shows itself, but every choice
is one step, so max-ent and Q-learning coincide again. This task interleaves the two signatures:

* **Entropy preference** (max-ent vs the rest). Root episodes start in state 0: action 0 leads to state 1, which has a
  single move onward, action 1 to state 2, which offers two moves; every move out of states 1 and 2 ends the
  episode with a reward of mean ``mean_branch``. Both branches have the same true value: Q-learning and DRA are
  indifferent at the root, a max-ent agent prefers the wide branch (``P ~ 1 / (1 + 2^-gamma)`` at any temperature).
* **Frequency at equal stakes** (DRA vs the rest). Other episodes start directly in one of two two-armed bandit
  states, 3 (frequent, probability ``p_frequent``) and 4 (rare, ``p_rare``), each with a better (action 0, mean
  ``mean_high``) and a worse option (action 1, ``mean_low``). DRA buys memory precision where it is used: its
  memories of the frequent state's options become sharper, so it chooses the better option there more reliably than
  in the rare state at the same value difference; a softmax agent (Q-learning, max-ent) has one temperature for both.

Rewards are centred on 0 (docs/tasks.md explains why) and of a size DRA's default memory SDs suit (docs/agents.md,
"Reward scale"):
means 0 (branches, no noise by default) and +2 / -2 (bandit options, SD 1).

Structure
---------
States 0-5, two actions, one value-table item per (state, action). Edges: 0 -a0-> 1, 0 -a1-> 2; state 1 has one
move (action 0), state 2 two; states 1-4 end the episode (terminal state 5, never shown). Every move is one trial
row (the forced move at state 1 included, with policy 1). Each episode starts in state 3 with probability
``p_frequent``, in state 4 with ``p_rare`` and at the root otherwise.

Covariates: ``episode`` (0-based episode counter).
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["BranchingStakes", "SUCCESSOR", "TERMINAL"]

TERMINAL = 5
#: successor[s, a]; -1 where the action is unavailable
SUCCESSOR = np.array([[1, 2], [5, -1], [5, 5], [5, 5], [5, 5], [-1, -1]], dtype=np.int64)


def _number(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
        raise ValueError(f"branching_stakes: {name} must be a finite number, got {v!r}")
    return float(v)


@register_task
class BranchingStakes(Task):
    """Branching with stakes (see the module docstring).

    Parameters
    ----------
    mean_branch : float, default 0
        Reward mean of every move out of states 1 and 2.
    mean_high, mean_low : float, default 2, -2
        Reward means of the better (action 0) and worse (action 1) option in states 3 and 4.
    reward_sd : float, default 1
        SD of the Gaussian rewards of the bandit states 3 and 4 (>= 0).
    branch_sd : float, default 0
        SD of the rewards out of states 1 and 2 (>= 0). At 0 the two branches are worth exactly the same, so a
        true-value learner's root values do not drift apart with reward noise and its root choices stay at 1/2.
    p_frequent, p_rare : float, default 0.45, 0.15
        Probability that an episode starts in state 3 / state 4 (else at the root).
    """

    name = "branching_stakes"
    covariates = {"episode": ()}
    episodic = True
    default_n_trials = 600
    terminal = TERMINAL

    def __init__(self, *, mean_branch: float = 0.0, mean_high: float = 2.0, mean_low: float = -2.0,
                 reward_sd: float = 1.0, branch_sd: float = 0.0, p_frequent: float = 0.45, p_rare: float = 0.15):
        vals = {n: _number(n, v) for n, v in (("mean_branch", mean_branch), ("mean_high", mean_high),
                                               ("mean_low", mean_low), ("reward_sd", reward_sd),
                                               ("branch_sd", branch_sd),
                                               ("p_frequent", p_frequent), ("p_rare", p_rare))}
        for k in ("reward_sd", "branch_sd"):
            if vals[k] < 0:
                raise ValueError(f"branching_stakes: {k} must be >= 0, got {vals[k]}")
        if not (vals["p_frequent"] >= 0 and vals["p_rare"] >= 0 and vals["p_frequent"] + vals["p_rare"] < 1):
            raise ValueError(f"branching_stakes: p_frequent and p_rare must be >= 0 with a sum below 1 (root "
                             f"episodes are needed), got {p_frequent}, {p_rare}")
        super().__init__(**vals)
        available = SUCCESSOR >= 0
        available[TERMINAL, 0] = True  # EnvSpec needs one available action per state; never shown
        item = np.arange(12).reshape(6, 2)
        self._env = EnvSpec(6, 2, 12, item, available, np.full((6, 2), np.nan))
        self.successor = SUCCESSOR.copy()
        self.available = available.copy()
        self.reward_mean = np.zeros((6, 2))
        self.reward_mean[1:3, :] = vals["mean_branch"]
        self.reward_mean[3:5, 0] = vals["mean_high"]
        self.reward_mean[3:5, 1] = vals["mean_low"]
        self._start_p = np.array([1.0 - vals["p_frequent"] - vals["p_rare"], vals["p_frequent"], vals["p_rare"]])

    def _start(self, n, rng):
        return np.array([0, 3, 4], np.int64)[rng.choice(3, size=n, p=self._start_p)]

    def reset(self, n, rng):
        return {"s": self._start(n, rng), "episode": np.zeros(n, np.int64)}

    def observe(self, ts):
        return ts["s"].copy()

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        s = ts["s"]
        nxt = SUCCESSOR[s, action]
        done = nxt == TERMINAL
        sd = np.where(s >= 3, self.options["reward_sd"], self.options["branch_sd"])
        noise = rng.standard_normal(s.shape) * sd
        reward = np.where(done, self.reward_mean[s, action] + noise, 0.0)
        out = {"reward": reward.astype(float), "next_state": nxt.astype(np.int64), "done": done,
               "episode": ts["episode"].copy()}
        ts = {"s": np.where(done, self._start(s.size, rng), nxt).astype(np.int64),
              "episode": ts["episode"] + done.astype(np.int64)}
        return ts, out
