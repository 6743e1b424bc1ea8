"""Four-cue go/no-go task (Guitart-Masip et al. 2012, NeuroImage; tasks.md §8).

States (cues) 0..3: 0 go-to-win, 1 go-to-avoid-losing, 2 no-go-to-win,
3 no-go-to-avoid-losing. Actions: 0 = no-go, 1 = go (hBayesDM ``keyPressed``).
The correct response (go for cues 0-1, no-go for cues 2-3) yields the
favourable outcome with probability ``p_correct`` (0.8 [A]); the incorrect one
with ``1 - p_correct``. Win cues pay +1 (favourable) or 0; avoid cues pay 0
(favourable) or -1.

Assumptions ([A], chosen here)
------------------------------
* Cue order: consecutive blocks of four trials, each a fresh uniform random
  permutation of the four cues, so every cue appears equally often in every
  block of four (60 of each in the default 240 trials, as in hBayesDM's example
  data). Subjects get independent orders.
* Every trial is its own episode (``done = True``); ``next_state`` is the cue
  of the following trial.
* The cue numbering here is fixed; for hBayesDM data (cues 1-4) the mapping
  must be inferred from outcome signs (tasks.md §8), not assumed to match.

Covariates: ``go_cue`` (go is the correct response), ``win_cue`` (outcomes are
+1/0 rather than 0/-1).
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import Task, register_task

__all__ = ["GoNoGo", "GO_CUE", "WIN_CUE", "CUE_NAMES"]

CUE_NAMES = ("go_to_win", "go_to_avoid", "nogo_to_win", "nogo_to_avoid")
#: go is the correct response for this cue
GO_CUE = (True, True, False, False)
#: outcomes are +1 / 0 (win) rather than 0 / -1 (avoid losing)
WIN_CUE = (True, False, True, False)


@register_task
class GoNoGo(Task):
    """Orthogonalised go/no-go task with four cues (see the module docstring).

    Parameters
    ----------
    p_correct : float, default 0.8
        Probability of the favourable outcome after the correct response
        (``1 - p_correct`` after the incorrect one); in [0, 1].
    """

    name = "go_nogo"
    covariates = {"go_cue": (), "win_cue": ()}
    default_n_trials = 240

    def __init__(self, *, p_correct: float = 0.8):
        p_correct = float(p_correct)
        if not 0.0 <= p_correct <= 1.0:
            raise ValueError(f"go_nogo: p_correct must be in [0, 1], got {p_correct}")
        super().__init__(p_correct=p_correct)
        self._env = EnvSpec.default(4, 2)
        self._go = np.asarray(GO_CUE)
        self._win = np.asarray(WIN_CUE)

    @staticmethod
    def _block(n, rng):
        return np.argsort(rng.random((n, 4)), axis=1).astype(np.int64)

    def reset(self, n, rng):
        return {"block": self._block(n, rng), "pos": np.zeros(n, np.int64)}

    def observe(self, ts):
        return ts["block"][np.arange(ts["block"].shape[0]), ts["pos"]]

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        cue = self.observe(ts)
        go_cue, win_cue = self._go[cue], self._win[cue]
        correct = (action == 1) == go_cue
        p = self.options["p_correct"]
        favourable = rng.random(n) < np.where(correct, p, 1.0 - p)
        reward = np.where(win_cue, np.where(favourable, 1.0, 0.0), np.where(favourable, 0.0, -1.0))
        pos = ts["pos"] + 1
        wrap = pos == 4
        block = np.where(wrap[:, None], self._block(n, rng), ts["block"])
        ts = {"block": block, "pos": np.where(wrap, 0, pos)}
        out = {"reward": reward, "next_state": self.observe(ts), "done": np.ones(n, bool),
               "go_cue": go_cue, "win_cue": win_cue}
        return ts, out
