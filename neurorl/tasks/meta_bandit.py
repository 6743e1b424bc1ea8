"""Meta-RL bandit episodes of Wang et al. (2018) (tasks.md §2, "Wang et al. 2018 episodes").

After the reproductions awjuliani/Meta-RL and MichaelGoodale/prefrontal-cortex-as-meta-rl
``meta_rl/tasks.py`` [S as summarised in tasks.md §2]: a two-armed Bernoulli bandit played in
episodes of ``episode_length`` (100) trials; every episode draws new reward probabilities, so a
learner must adapt *within* an episode. A recurrent meta-learner (deep.md §4) resets its state
between episodes and, once trained, adapts with frozen weights.

One state (0), two actions (0 left, 1 right). ``done`` is True on the last trial of each episode
(the task is ``episodic``); the next trial starts a new episode with new probabilities.
``next_state`` is always 0.

Probability draws, once per episode, for each subject independently:

* ``dependent=True`` (default): ``p_L ~ U(0, 1)``, ``p_R = 1 - p_L``;
* ``dependent=False``: ``p_L, p_R ~ U(0, 1)`` independently ("independent arms");
* ``prob_sets`` given (e.g. :data:`WANG_FIXED_SETS` = ((0.9, 0.1), (0.75, 0.25), (0.6, 0.4))):
  one pair drawn uniformly from the sets, assigned to (left, right) in a random order.

Covariates (per trial row):

``episode``
    0-based episode counter of the subject.
``trial_in_episode``
    0-based position of the trial within its episode.
``p`` (dims ``action``)
    The reward probability of each arm during the trial's episode.

Assumptions ([A], chosen here)
------------------------------
[A] With ``prob_sets`` the pair's orientation is random (each order with probability 1/2), so the
    better arm is equally often left and right; ``dependent`` must then stay True (the published
    fixed sets are dependent pairs; an explicit ``dependent=False`` with sets is an error rather
    than silently ignored).
[A] The Tsutsui et al. (2016) "Simulation 1" variant (baited arms, variable episode lengths) is not
    implemented here.
[A] The random draws are made on every row (reward uniform, a new probability pair, a side flip),
    whether or not an episode ends, so that streams stay aligned across subjects.
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import OneStateTask, register_task

__all__ = ["WangBandit", "WANG_FIXED_SETS"]

#: the fixed probability sets of the reproductions, tasks.md §2 [S]
WANG_FIXED_SETS = ((0.9, 0.1), (0.75, 0.25), (0.6, 0.4))


def _check_sets(prob_sets) -> tuple[tuple[float, float], ...]:
    try:
        arr = np.asarray(prob_sets, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"wang_bandit: prob_sets must be a sequence of (p_left, p_right) pairs, "
                         f"got {prob_sets!r}") from None
    if arr.ndim != 2 or arr.shape[1] != 2 or arr.shape[0] < 1:
        raise ValueError(f"wang_bandit: prob_sets must be a sequence of (p_left, p_right) pairs, got shape "
                         f"{arr.shape}")
    if not np.all(np.isfinite(arr)) or np.any((arr < 0) | (arr > 1)):
        i = int(np.argwhere(~np.isfinite(arr) | (arr < 0) | (arr > 1))[0, 0])
        raise ValueError(f"wang_bandit: prob_sets[{i}] = {tuple(arr[i])} must hold probabilities in [0, 1]")
    return tuple((float(a), float(b)) for a, b in arr)


@register_task
class WangBandit(OneStateTask):
    """Two-armed bandit in episodes with new reward probabilities each (Wang et al. 2018; tasks.md §2).

    Parameters
    ----------
    episode_length : int, default 100
        Trials per episode.
    dependent : bool, default True
        ``p_R = 1 - p_L`` (True) or independent uniform arms (False).
    prob_sets : sequence of (float, float), optional
        Fixed probability pairs; each episode uses one, drawn uniformly, in a random orientation.
        ``WANG_FIXED_SETS`` gives the published 0.9/0.1, 0.75/0.25, 0.6/0.4 sets.

    Notes
    -----
    See the module docstring for rows, covariates and assumptions.
    """

    name = "wang_bandit"
    covariates = {"episode": (), "trial_in_episode": (), "p": ("action",)}
    episodic = True
    default_n_trials = 500

    def __init__(self, *, episode_length: int = 100, dependent: bool = True, prob_sets=None):
        if isinstance(episode_length, bool) or not isinstance(episode_length, (int, np.integer)) \
                or episode_length < 1:
            raise ValueError(f"wang_bandit: episode_length must be an integer >= 1, got {episode_length!r}")
        if not isinstance(dependent, (bool, np.bool_)):
            raise ValueError(f"wang_bandit: dependent must be True or False, got {dependent!r}")
        if prob_sets is not None:
            prob_sets = _check_sets(prob_sets)
            if not dependent:
                raise ValueError("wang_bandit: prob_sets fixes the pairs; dependent=False cannot be combined with it")
        super().__init__(episode_length=int(episode_length), dependent=bool(dependent), prob_sets=prob_sets)
        self._env = EnvSpec.default(1, 2)
        self._sets = None if prob_sets is None else np.asarray(prob_sets, float)

    def _draw_p(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """Reward probabilities ``(n, 2)`` of new episodes (three draws per subject, always)."""
        u = rng.random((n, 2))
        flip = rng.random(n) < 0.5
        if self._sets is not None:
            k = np.minimum((u[:, 0] * len(self._sets)).astype(np.int64), len(self._sets) - 1)
            pair = self._sets[k]
            return np.where(flip[:, None], pair[:, ::-1], pair)
        if self.options["dependent"]:
            return np.stack([u[:, 0], 1.0 - u[:, 0]], axis=1)
        return u

    def reset(self, n, rng):
        return {"p": self._draw_p(n, rng), "episode": np.zeros(n, np.int64), "t": np.zeros(n, np.int64)}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        p = ts["p"]
        reward = (rng.random(n) < p[np.arange(n), action]).astype(float)
        new_p = self._draw_p(n, rng)
        done = ts["t"] + 1 >= self.options["episode_length"]
        out = {"reward": reward, "next_state": np.zeros(n, np.int64), "done": done,
               "episode": ts["episode"].copy(), "trial_in_episode": ts["t"].copy(), "p": p.copy()}
        ts = {"p": np.where(done[:, None], new_p, p), "episode": ts["episode"] + done.astype(np.int64),
              "t": np.where(done, 0, ts["t"] + 1)}
        return ts, out
