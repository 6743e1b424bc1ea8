"""Two-step task (Daw et al. 2011; tasks.md §7).

Each episode is two trial rows. Stage 1, state 0: two actions; action 0 leads to state 1 with
probability ``p_common`` (common transition) and to state 2 otherwise, action 1 to state 2
commonly and to state 1 rarely. Stage 2, state 1 or 2: two actions, each paying 1 with its own
probability. The four second-stage reward probabilities drift as independent Gaussian random
walks (SD ``drift_sd`` = 0.025) reflected at ``bounds`` = (0.25, 0.75) [A: Daw et al. 2011, as
summarised in tasks.md §7]. 201 episodes = 402 rows by default.

Rows. Stage-1 row: reward 0, ``done`` False, ``next_state`` the stage-2 state reached. Stage-2
row: reward ~ Bernoulli(p), ``done`` True, ``next_state`` 0 (the next episode's first state; the
value is irrelevant because nothing is bootstrapped after ``done``).

Covariates (all per row, dims ``()``):

``stage``
    1 or 2.
``common``
    The episode's transition was the common one (the same on both rows).
``episode``
    0-based episode counter.
``reward_prob``
    Probability that this row's outcome is 1 given its state and action: 0 on stage-1 rows
    (stage 1 never pays), the chosen option's current probability on stage-2 rows. No NaN.
``p_reward_1_0``, ``p_reward_1_1``, ``p_reward_2_0``, ``p_reward_2_1``
    The four reward probabilities in force during the row's episode (state, action), the same on
    both rows of an episode.

Assumptions
-----------
[A] Initial reward probabilities are drawn independently from U(lower, upper) per subject unless
    ``initial_probs`` fixes them.
[A] One drift step per episode, applied after the stage-2 outcome: p <- reflect(p + N(0, sd^2)),
    reflecting at the bounds as a mirror (repeatedly, so any step size stays inside).
[A] hBayesDM's level2_choice 1-4 corresponds to ``2 * (state - 1) + action + 1`` here.
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["TwoStep", "reflect"]

P_NAMES = ("p_reward_1_0", "p_reward_1_1", "p_reward_2_0", "p_reward_2_1")


def reflect(x, lower: float, upper: float) -> np.ndarray:
    """Fold ``x`` into ``[lower, upper]`` by mirror reflection at the bounds.

    ``upper + d`` maps to ``upper - d`` and ``lower - d`` to ``lower + d``; excursions longer than
    the interval are folded repeatedly (period ``2 * (upper - lower)``).
    """
    x = np.asarray(x, float)
    width = upper - lower
    y = np.mod(x - lower, 2.0 * width)
    return lower + np.where(y > width, 2.0 * width - y, y)


def _is_number(v) -> bool:
    return not isinstance(v, bool) and isinstance(v, (int, float, np.integer, np.floating)) and bool(np.isfinite(v))


@register_task
class TwoStep(Task):
    """Daw et al. (2011) two-step task with drifting reward probabilities.

    Parameters
    ----------
    p_common : float, default 0.7
        Probability of the common transition (action 0 -> state 1, action 1 -> state 2).
    drift_sd : float, default 0.025
        SD of the Gaussian random-walk step of each reward probability per episode.
    bounds : tuple of float, default (0.25, 0.75)
        Reflecting bounds of the reward probabilities (within [0, 1]).
    initial_probs : tuple of 4 floats, optional
        Starting probabilities in the order (state 1 action 0, state 1 action 1, state 2
        action 0, state 2 action 1), inside ``bounds``. Default: U(bounds) per subject.

    Notes
    -----
    See the module docstring for the rows and covariates.
    """

    name = "two_step"
    covariates = {"stage": (), "common": (), "episode": (), "reward_prob": (), **{k: () for k in P_NAMES}}
    episodic = True
    default_n_trials = 402

    def __init__(self, *, p_common: float = 0.7, drift_sd: float = 0.025, bounds=(0.25, 0.75),
                 initial_probs=None):
        if not _is_number(p_common) or not 0.0 <= p_common <= 1.0:
            raise ValueError(f"two_step: p_common must be in [0, 1], got {p_common!r}")
        if not _is_number(drift_sd) or drift_sd < 0:
            raise ValueError(f"two_step: drift_sd must be a finite number >= 0, got {drift_sd!r}")
        try:
            lo, hi = (float(b) for b in bounds)
        except (TypeError, ValueError):
            raise ValueError(f"two_step: bounds must be two numbers (lower, upper), got {bounds!r}") from None
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(f"two_step: bounds must satisfy 0 <= lower < upper <= 1, got {bounds!r}")
        if initial_probs is not None:
            try:
                init = tuple(float(p) for p in np.asarray(initial_probs, float).ravel())
            except (TypeError, ValueError):
                raise ValueError(f"two_step: initial_probs must be 4 numbers, got {initial_probs!r}") from None
            if len(init) != 4:
                raise ValueError(f"two_step: initial_probs must have 4 values "
                                 f"(state 1 a0, state 1 a1, state 2 a0, state 2 a1), got {len(init)}")
            if not all(lo <= p <= hi for p in init):
                raise ValueError(f"two_step: initial_probs {init} must lie inside bounds ({lo}, {hi})")
            initial_probs = init
        super().__init__(p_common=float(p_common), drift_sd=float(drift_sd), bounds=(lo, hi),
                         initial_probs=initial_probs)
        self._env = EnvSpec.default(3, 2)

    def reset(self, n, rng):
        lo, hi = self.options["bounds"]
        init = self.options["initial_probs"]
        if init is None:
            p = rng.uniform(lo, hi, size=(n, 4))
        else:
            p = np.broadcast_to(np.asarray(init, float), (n, 4)).copy()
        return {"s": np.zeros(n, np.int64), "p": p, "common": np.zeros(n, bool), "episode": np.zeros(n, np.int64)}

    def observe(self, ts):
        return ts["s"].copy()

    def row_outcome(self, ts, p, action, rng):
        """One row's outcome given the reward probabilities ``p`` (n, 4), without drifting them.

        Returns ``(out, next_ts)``; ``next_ts`` holds ``s``, ``common`` and ``episode``. Shared by
        :meth:`step` and by predictive checks that replay recorded probabilities.
        """
        n = action.shape[0]
        s = ts["s"]
        stage1 = s == 0
        # stage 1: transition (one uniform per subject every row keeps the draws aligned)
        common = rng.random(n) < self.options["p_common"]
        reached = np.where(common, action + 1, 2 - action)
        # stage 2: outcome
        col = np.clip(2 * (s - 1) + action, 0, 3)
        p_chosen = p[np.arange(n), col]
        paid = (rng.random(n) < p_chosen).astype(float)
        common = np.where(stage1, common, ts["common"])
        out = {
            "reward": np.where(stage1, 0.0, paid),
            "next_state": np.where(stage1, reached, 0).astype(np.int64),
            "done": ~stage1,
            "stage": np.where(stage1, 1, 2).astype(np.int64),
            "common": common.copy(),
            "episode": ts["episode"].copy(),
            "reward_prob": np.where(stage1, 0.0, p_chosen),
            **{k: p[:, j].copy() for j, k in enumerate(P_NAMES)},
        }
        next_ts = {"s": np.where(stage1, reached, 0).astype(np.int64), "common": common,
                   "episode": ts["episode"] + (~stage1).astype(np.int64)}
        return out, next_ts

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        p = ts["p"]
        stage1 = ts["s"] == 0
        out, next_ts = self.row_outcome(ts, p, action, rng)
        lo, hi = self.options["bounds"]
        drifted = reflect(p + self.options["drift_sd"] * rng.standard_normal(p.shape), lo, hi)
        return {**next_ts, "p": np.where(stage1[:, None], p, drifted)}, out
