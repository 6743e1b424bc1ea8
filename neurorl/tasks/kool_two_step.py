"""Kool et al. deterministic two-step task with stakes (Kool, Cushman & Gershman 2016, PLoS Comput Biol 12:e1005090;
Kool, Gershman & Cushman 2017, Psychol Sci 28:1321).

Each episode is two trial rows. Stage 1: one of two start states (0 or 1, drawn uniformly each episode), each with
two actions; action ``a`` leads *deterministically* to second-stage state ``2 + a`` from both start states, so the
start states share their model-based values (the same transitions) but not their model-free values (different
stimuli). Stage 2, state 2 or 3: by default no choice (one available action, 0: the forced second stage of Kool et
al. 2016); with ``second_stage_choice=True`` two actions, each with its own reward. Rewards are points that drift as
independent Gaussian random walks (SD ``drift_sd`` = 2) reflected at ``bounds`` = (0, 9), rounded to integers
[A: Kool et al. 2016, "novel paradigm"]. Each episode's stakes are ``stakes[1]`` (= 5, high) with probability
``p_high_stakes`` (0.5) and ``stakes[0]`` (= 1) otherwise, announced before stage 1 [A: Kool et al. 2017].

Rows. Stage-1 row: reward 0, ``done`` False, ``next_state`` the second-stage state. Stage-2 row: reward = the points
of the chosen option (not multiplied by the stakes: the stakes are a covariate, so models decide whether they scale
learning or arbitration), ``done`` True, ``next_state`` 0 (irrelevant: nothing is bootstrapped after ``done``).

Covariates (per row): ``stage`` (1/2), ``episode`` (0-based), ``start_state`` (0/1, the episode's start state on
both rows), ``stakes`` (1 or 5), ``high_stakes`` (0/1 float, for ``covariates={"w": ["high_stakes"]}``: the
model-based weight depending on stakes), ``points`` (the chosen option's current points on stage-2 rows, 0 on
stage-1 rows).

Assumptions [A]
---------------
* [A] Initial points are drawn uniformly from the integers in ``bounds`` per option and subject.
* [A] One drift step per episode, after the stage-2 outcome, mirror-reflected at the bounds, then rounded.
* [A] The mapping "action a -> state 2 + a" in both start states is a labelling: in the experiment the two start
  states show different stimuli, and the one in each start state that leads to planet X is called action 0 here.
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task
from .two_step import _is_number, reflect

__all__ = ["KoolTwoStep"]


@register_task
class KoolTwoStep(Task):
    """Kool et al. deterministic two-step task with two start states and stakes (module docstring).

    Parameters
    ----------
    second_stage_choice : bool, default False
        Two options in each second-stage state (else one: a forced second stage).
    drift_sd : float, default 2.0
        SD of each option's points random walk per episode.
    bounds : tuple of float, default (0, 9)
        Reflecting bounds of the points.
    p_high_stakes : float, default 0.5
        Probability of a high-stakes episode.
    stakes : tuple of 2 numbers, default (1, 5)
        Low and high stakes multipliers (recorded in the ``stakes`` covariate).
    integer_rewards : bool, default True
        Round the points to integers (as in the experiment).
    """

    name = "kool_two_step"
    covariates = {"stage": (), "episode": (), "start_state": (), "stakes": (), "high_stakes": (), "points": ()}
    episodic = True
    default_n_trials = 400

    def __init__(self, *, second_stage_choice: bool = False, drift_sd: float = 2.0, bounds=(0.0, 9.0),
                 p_high_stakes: float = 0.5, stakes=(1.0, 5.0), integer_rewards: bool = True):
        if not _is_number(drift_sd) or drift_sd < 0:
            raise ValueError(f"kool_two_step: drift_sd must be a finite number >= 0, got {drift_sd!r}")
        try:
            lo, hi = (float(b) for b in bounds)
            s_lo, s_hi = (float(s) for s in stakes)
        except (TypeError, ValueError):
            raise ValueError(f"kool_two_step: bounds and stakes must be two numbers each, got {bounds!r}, "
                             f"{stakes!r}") from None
        if not lo < hi:
            raise ValueError(f"kool_two_step: bounds must satisfy lower < upper, got {bounds!r}")
        if not _is_number(p_high_stakes) or not 0.0 <= p_high_stakes <= 1.0:
            raise ValueError(f"kool_two_step: p_high_stakes must be in [0, 1], got {p_high_stakes!r}")
        super().__init__(second_stage_choice=bool(second_stage_choice), drift_sd=float(drift_sd), bounds=(lo, hi),
                         p_high_stakes=float(p_high_stakes), stakes=(s_lo, s_hi),
                         integer_rewards=bool(integer_rewards))
        avail = np.ones((4, 2), bool)
        if not second_stage_choice:
            avail[2:, 1] = False
        base = EnvSpec.default(4, 2)
        self._env = EnvSpec(4, 2, base.n_items, base.item, avail, base.known_value)

    @property
    def n_options(self) -> int:
        return 4 if self.options["second_stage_choice"] else 2

    def _round(self, x):
        return np.round(x) if self.options["integer_rewards"] else x

    def _episode(self, n, rng):
        return rng.integers(0, 2, n).astype(np.int64), rng.random(n) < self.options["p_high_stakes"]

    def reset(self, n, rng):
        lo, hi = self.options["bounds"]
        pts = rng.uniform(lo, hi, size=(n, self.n_options))
        start, high = self._episode(n, rng)
        return {"s": start, "points": self._round(pts), "start": start, "high": high,
                "episode": np.zeros(n, np.int64)}

    def observe(self, ts):
        return ts["s"].copy()

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        s = ts["s"]
        stage1 = s < 2
        reached = 2 + action
        col = (2 * (s - 2) + action) if self.options["second_stage_choice"] else (s - 2)
        pts = ts["points"][np.arange(n), np.clip(col, 0, self.n_options - 1)]
        s_lo, s_hi = self.options["stakes"]
        out = {
            "reward": np.where(stage1, 0.0, pts),
            "next_state": np.where(stage1, reached, 0).astype(np.int64),
            "done": ~stage1,
            "stage": np.where(stage1, 1, 2).astype(np.int64),
            "episode": ts["episode"].copy(),
            "start_state": ts["start"].copy(),
            "stakes": np.where(ts["high"], s_hi, s_lo),
            "high_stakes": ts["high"].astype(float),
            "points": np.where(stage1, 0.0, pts),
        }
        lo, hi = self.options["bounds"]
        drifted = self._round(reflect(ts["points"] + self.options["drift_sd"] * rng.standard_normal(
            ts["points"].shape), lo, hi))
        new_start, new_high = self._episode(n, rng)
        nxt = {
            "s": np.where(stage1, reached, new_start).astype(np.int64),
            "points": np.where(stage1[:, None], ts["points"], drifted),
            "start": np.where(stage1, ts["start"], new_start),
            "high": np.where(stage1, ts["high"], new_high),
            "episode": ts["episode"] + (~stage1).astype(np.int64),
        }
        return nxt, out
