"""Meta-RL two-step task of Wang et al. (2018) (tasks.md §7, "Meta-RL / NeuroGym variant").

The Daw et al. (2011) two-step structure of :class:`~neurorl.tasks.two_step.TwoStep` (stage 1 in
state 0, two actions; action 0 leads to state 1 with probability ``p_common``, action 1 to
state 2 likewise; two rows per two-step trial) with the reward schedule of the meta-RL
reproductions [S: BKHMSI/Meta-RL-TwoStep-Task ``tasks/two_step.py``, ``configs/two_step.yaml``;
NeuroGym ``dawtwostep.py``]: one second-stage state pays with probability ``reward_prob`` (0.9)
and the other with ``1 - reward_prob`` (0.1); which one is the good state swaps with probability
``switch_prob`` (0.025) before each trial. Defaults: ``p_common`` 0.8; 100 two-step trials
(200 rows) make one meta-RL episode (``default_n_trials`` = 200).

The second-stage reward depends on the state only: both second-stage actions pay with the
state's probability (in the reproductions the agent takes no second-stage decision; here the
row is kept, as in NeuroGym's two steps per trial, so that rows, covariates and
:func:`neurorl.behaviour.two_step_stay` are those of ``two_step``).

Rows and covariates: as ``two_step`` (``stage``, ``common``, ``episode``, ``reward_prob``,
``p_reward_1_0`` ... ``p_reward_2_1``; the two probabilities of a state are equal), plus
``good_state`` (1 or 2, the state paying ``reward_prob`` during the row's trial).

Assumptions
-----------
[A] The good state of each subject is drawn uniformly from {1, 2} at ``reset`` (BKHMSI: at
    random per episode).
[A] The possible swap is applied after the stage-2 outcome (i.e. before the next trial's
    stage 1); a uniform is drawn on every row so that random streams stay aligned across
    subjects.
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task
from .two_step import TwoStep, _is_number

__all__ = ["WangTwoStep"]


@register_task
class WangTwoStep(TwoStep):
    """Two-step task with switching 0.9/0.1 second-stage rewards (Wang et al. 2018).

    Parameters
    ----------
    p_common : float, default 0.8
        Probability of the common transition (action 0 -> state 1, action 1 -> state 2).
    reward_prob : float, default 0.9
        Reward probability of the good second-stage state; the other state pays
        ``1 - reward_prob``.
    switch_prob : float, default 0.025
        Probability that the good state swaps before each two-step trial.

    Notes
    -----
    See the module docstring.
    """

    name = "wang_two_step"
    covariates = {**TwoStep.covariates, "good_state": ()}
    episodic = True
    default_n_trials = 200

    def __init__(self, *, p_common: float = 0.8, reward_prob: float = 0.9, switch_prob: float = 0.025):
        for k, v in (("p_common", p_common), ("reward_prob", reward_prob), ("switch_prob", switch_prob)):
            if not _is_number(v) or not 0.0 <= v <= 1.0:
                raise ValueError(f"wang_two_step: {k} must be a number in [0, 1], got {v!r}")
        Task.__init__(self, p_common=float(p_common), reward_prob=float(reward_prob),
                      switch_prob=float(switch_prob))
        self._env = EnvSpec.default(3, 2)

    def _probs(self, good: np.ndarray) -> np.ndarray:
        hi = self.options["reward_prob"]
        p1 = np.where(good == 1, hi, 1.0 - hi)
        p2 = 1.0 - p1
        return np.stack([p1, p1, p2, p2], axis=1)

    def reset(self, n, rng):
        good = rng.integers(1, 3, size=n).astype(np.int64)
        return {"s": np.zeros(n, np.int64), "p": self._probs(good), "good": good, "common": np.zeros(n, bool),
                "episode": np.zeros(n, np.int64)}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        stage1 = ts["s"] == 0
        out, next_ts = self.row_outcome(ts, ts["p"], action, rng)
        out["good_state"] = ts["good"].copy()
        swap = (rng.random(action.shape[0]) < self.options["switch_prob"]) & ~stage1
        good = np.where(swap, 3 - ts["good"], ts["good"])
        return {**next_ts, "p": self._probs(good), "good": good}, out
