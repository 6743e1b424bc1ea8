"""Frequency x stakes memory 2AFC with precision probes (tasks.md §3).

Options and values [S: nisheetpatel/DRA_vs_maxEntRL ``tasks.py``]
-----------------------------------------------------------------
Twelve learnt options ``o = 3g + j`` in four sets ``g = 0..3``. Means: sets 0 and
2 -> (14, 10, 6) (high stakes, spacing 4); sets 1 and 3 -> (11, 10, 9) (low
stakes, spacing 1). Choosing an option pays its mean plus ``N(0, reward_sd^2)``
noise (``reward_sd = 1``). Sets 0 and 1 are frequent, 2 and 3 rare.

States (``n_states = 36``, ``n_actions = 2``)
---------------------------------------------
* Choice states ``s = 0..11``: the two members of set ``s // 3`` other than
  option ``s``: ``s mod 3 = 0 -> (s+1, s+2)``; ``1 -> (s-1, s+1)``;
  ``2 -> (s-2, s-1)``. Action 0 picks the first, action 1 the second.
* Probe states ``12 + o``: action 0 = option ``o``, action 1 = a sure amount
  ``mu_o + sure_delta``; probe states ``24 + o``: sure amount ``mu_o - sure_delta``
  (``sure_delta = 4``). The sure amount is shown, known and paid exactly.

Value-table items (``n_items = 13``): ``item[s, a]`` is the option index
(0..11) for learnt options, so an option's value is shared by every pair and
probe it appears in; item 12 is a dummy row for every sure amount, whose value
is given by ``known_value[s, 1]`` (NaN elsewhere) and never learnt.

Trial schedule (simulation) -- choices made here [A]
----------------------------------------------------
* Regular trials draw the set with P = (0.4, 0.4, 0.1, 0.1) (states 0-5 four
  times as frequent as 6-11 [D]) and then a uniform choice state within it.
* Probes follow the "MDP variant" of tasks.md §3: after a regular trial in set
  ``g``, the next trial is a probe with probability ``probe_prob[0]`` (0.15,
  frequent sets) or ``probe_prob[1]`` (0.6, rare sets); the probed option is
  one of the two options just shown, with equal probability, and the sure
  amount is ``+sure_delta`` or ``-sure_delta`` with equal probability. A probe
  is always followed by a regular trial (probes never chain). The first trial
  is regular, and no probe occurs at a trial index below ``probes_from``
  (a training phase without probes; default 0). This replaces the original
  code's fixed insertion schedule (tasks.md §3 notes its state/option
  conflation) by a Markov rule with the stated probabilities.
* Every trial is its own episode (``done = True``); ``next_state`` is the
  state shown on the following trial.

Covariates (describe the trial's own state): ``set`` (0..3), ``frequent``
(set 0 or 1), ``high_stakes`` (set 0 or 2), ``probe`` (probe trial),
``option`` (probed option, -1 on regular trials), ``sure_offset`` (+4 / -4 on
probes, 0 on regular trials).
"""

from __future__ import annotations

import math

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["Memory2AFC", "OPTION_MEANS", "SET_PROBS", "N_OPTIONS", "SURE_ITEM", "pair_options"]

N_OPTIONS = 12
#: item index of the (known, never learnt) sure amount on probe trials
SURE_ITEM = 12
#: true mean of each option o = 3g + j
OPTION_MEANS = (14.0, 10.0, 6.0, 11.0, 10.0, 9.0, 14.0, 10.0, 6.0, 11.0, 10.0, 9.0)
#: probability of each set on a regular trial [D]
SET_PROBS = (0.4, 0.4, 0.1, 0.1)


def pair_options(s: int) -> tuple[int, int]:
    """The two options (first, second) shown in choice state ``s`` (0..11), tasks.md §3."""
    if not 0 <= s < N_OPTIONS:
        raise ValueError(f"memory_2afc: choice state must be in [0, 12), got {s}")
    r = s % 3
    return {0: (s + 1, s + 2), 1: (s - 1, s + 1), 2: (s - 2, s - 1)}[r]


def _build_env(sure_delta: float) -> EnvSpec:
    n_states, n_actions = 3 * N_OPTIONS, 2
    item = np.zeros((n_states, n_actions), np.int64)
    known = np.full((n_states, n_actions), np.nan)
    for s in range(N_OPTIONS):
        item[s] = pair_options(s)
    for o in range(N_OPTIONS):
        for k, sign in ((1, +1.0), (2, -1.0)):
            s = k * N_OPTIONS + o
            item[s] = (o, SURE_ITEM)
            known[s, 1] = OPTION_MEANS[o] + sign * sure_delta
    return EnvSpec(n_states, n_actions, N_OPTIONS + 1, item, np.ones((n_states, n_actions), bool), known)


@register_task
class Memory2AFC(Task):
    """Frequency x stakes two-alternative memory task with precision probes.

    See the module docstring for the states, items and schedule.

    Parameters
    ----------
    probe_prob : (float, float), default (0.15, 0.6)
        Probability that a probe follows a regular trial of a frequent / rare set.
    probes_from : int, default 0
        Trial index before which no probe occurs.
    sure_delta : float, default 4
        Offset of the sure amount from the probed option's mean (> 0).
    reward_sd : float, default 1
        SD of the Gaussian noise on learnt options' rewards (>= 0).
    """

    name = "memory_2afc"
    covariates = {"set": (), "frequent": (), "high_stakes": (), "probe": (), "option": (), "sure_offset": ()}
    default_n_trials = 300

    def __init__(self, *, probe_prob=(0.15, 0.6), probes_from: int = 0, sure_delta: float = 4.0,
                 reward_sd: float = 1.0):
        where = "memory_2afc"
        pp = np.asarray(probe_prob, dtype=float)
        if pp.shape != (2,) or not np.all((pp >= 0) & (pp <= 1)):
            raise ValueError(f"{where}: probe_prob must be (frequent, rare), each in [0, 1], got {probe_prob!r}")
        if isinstance(probes_from, bool) or not isinstance(probes_from, (int, np.integer)) or probes_from < 0:
            raise ValueError(f"{where}: probes_from must be a non-negative integer, got {probes_from!r}")
        sure_delta = float(sure_delta)
        if not (sure_delta > 0 and math.isfinite(sure_delta)):
            raise ValueError(f"{where}: sure_delta must be positive and finite, got {sure_delta}")
        reward_sd = float(reward_sd)
        if not (reward_sd >= 0 and math.isfinite(reward_sd)):
            raise ValueError(f"{where}: reward_sd must be non-negative and finite, got {reward_sd}")
        super().__init__(probe_prob=(float(pp[0]), float(pp[1])), probes_from=int(probes_from),
                         sure_delta=sure_delta, reward_sd=reward_sd)
        self._env = _build_env(sure_delta)
        self._means = np.asarray(OPTION_MEANS)
        self._set_cdf = np.cumsum(SET_PROBS)

    # -- schedule -------------------------------------------------------------------
    def _regular_states(self, n, rng):
        g = np.minimum(np.searchsorted(self._set_cdf, rng.random(n) * self._set_cdf[-1], side="right"), 3)
        return 3 * g + rng.integers(0, 3, n)

    def reset(self, n, rng):
        return {"state": self._regular_states(n, rng), "t": np.zeros(n, np.int64)}

    def observe(self, ts):
        return ts["state"].copy()

    @staticmethod
    def describe_states(state) -> dict:
        """Covariates of states (any shape): set, frequent, high_stakes, probe, option, sure_offset.

        ``sure_offset`` is the sign (+1 / -1 / 0); multiply by ``sure_delta``.
        """
        state = np.asarray(state)
        probe = state >= N_OPTIONS
        option = np.where(probe, state % N_OPTIONS, -1)
        g = np.where(probe, option // 3, state // 3)
        sign = np.where(state >= 2 * N_OPTIONS, -1, np.where(probe, 1, 0))
        return {"set": g.astype(np.int64), "frequent": g < 2, "high_stakes": g % 2 == 0, "probe": probe,
                "option": option.astype(np.int64), "sure_offset": sign}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        o = self.options
        state = ts["state"]
        n = state.shape[0]
        env = self._env
        chosen = env.item[state, action]
        noise = o["reward_sd"] * rng.standard_normal(n)
        sure = env.known_value[state, action]
        reward = np.where(chosen == SURE_ITEM, np.nan_to_num(sure), self._means[np.minimum(chosen, N_OPTIONS - 1)]
                          + noise)
        cov = self.describe_states(state)
        cov["sure_offset"] = cov["sure_offset"] * o["sure_delta"]

        # next trial: a probe of one of the two options just shown, or a regular trial
        t_next = ts["t"] + 1
        p_probe = np.where(cov["frequent"], o["probe_prob"][0], o["probe_prob"][1])
        u_probe, u_which, u_sign = rng.random(n), rng.random(n), rng.random(n)
        go_probe = (~cov["probe"]) & (t_next >= o["probes_from"]) & (u_probe < p_probe)
        shown = env.item[np.where(cov["probe"], 0, state)]  # rows of choice states (dummy on probes)
        probed = np.where(u_which < 0.5, shown[:, 0], shown[:, 1])
        probe_state = np.where(u_sign < 0.5, N_OPTIONS, 2 * N_OPTIONS) + probed
        regular = self._regular_states(n, rng)
        next_state = np.where(go_probe, probe_state, regular).astype(np.int64)
        out = {"reward": reward, "next_state": next_state.copy(), "done": np.ones(n, bool), **cov}
        return {"state": next_state, "t": t_next}, out
