"""Mouse two-armed bandit with Markov block switches (Beron et al. 2022; tasks.md §1)."""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import OneStateTask, register_task


@register_task
class MouseBandit(OneStateTask):
    """Trial-level two-armed bandit with hidden high port and Markov switches.

    The hidden high port ``z`` starts at Bernoulli(0.5) and flips after each
    trial with probability ``p_switch`` (geometric blocks, mean 1/p_switch).
    Choosing the high port pays 1 with probability ``p_high``, the other port
    with ``1 - p_high``. Actions: 0 left, 1 right. One state.

    Parameters
    ----------
    p_high : float, default 0.8
        Reward probability of the high port (0.9, 0.8, 0.7 in the data).
    p_switch : float, default 0.02
        Per-trial block-switch probability (assumed Markov, tasks.md §1 [A]).

    Notes
    -----
    Covariates: ``high_port`` (z before the trial), ``block_trial`` (trials
    since the last switch, 0 on the first trial of a block).
    """

    name = "mouse_bandit"
    covariates = {"high_port": (), "block_trial": ()}
    default_n_trials = 800

    def __init__(self, *, p_high: float = 0.8, p_switch: float = 0.02):
        if not 0.5 <= p_high <= 1.0:
            raise ValueError(f"mouse_bandit: p_high must be in [0.5, 1], got {p_high}")
        if not 0.0 <= p_switch <= 1.0:
            raise ValueError(f"mouse_bandit: p_switch must be in [0, 1], got {p_switch}")
        super().__init__(p_high=float(p_high), p_switch=float(p_switch))
        self._env = EnvSpec.default(1, 2)

    def reset(self, n, rng):
        return {"z": (rng.random(n) < 0.5).astype(np.int64), "block_trial": np.zeros(n, np.int64)}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        z = ts["z"]
        p = np.where(action == z, self.options["p_high"], 1.0 - self.options["p_high"])
        reward = (rng.random(n) < p).astype(float)
        switch = rng.random(n) < self.options["p_switch"]
        out = {"reward": reward, "next_state": np.zeros(n, np.int64), "done": np.ones(n, bool),
               "high_port": z.copy(), "block_trial": ts["block_trial"].copy()}
        ts = {"z": np.where(switch, 1 - z, z), "block_trial": np.where(switch, 0, ts["block_trial"] + 1)}
        return ts, out
