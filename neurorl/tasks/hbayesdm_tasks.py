"""Tasks of hBayesDM's learning models: reversal learning, Iowa gambling, probabilistic selection, gain/loss bandit.

``reversal_learning``
    Two options; the correct one pays +1 with probability ``p_reward`` and -1
    otherwise, the other pays +1 with ``1 - p_reward`` (den Ouden et al. 2013,
    Neuron 80:1090: 70/30). The contingencies reverse after ``criterion``
    consecutive correct choices. Covariates: ``correct`` (the correct option)
    and ``reversals`` (reversals so far).
``iowa_gambling``
    Four decks (A-D) with the payoffs of Bechara et al. (1994), Cognition
    50:7, drawn independently each trial: A and B win 100, C and D win 50;
    A loses 250 with probability 0.5, B 1250 with 0.1, C 50 with 0.5, D 250
    with 0.1 (so A and B lose 25 per card on average, C and D gain 25). The
    reward is hBayesDM's ``(gain - |loss|) / payscale``; the covariates
    ``gain`` and ``loss`` keep the raw amounts (loss <= 0).
``probabilistic_selection``
    Training phase of Frank et al. (2004, 2007): the pairs AB, CD, EF (states
    0-2, each pair's options are items (0, 1), (2, 3), (4, 5)) in random order;
    options A-F pay 1 with probabilities 0.8, 0.2, 0.7, 0.3, 0.6, 0.4, else 0.
``bandit4arm``
    Four arms, each with its own probability of a gain and, independently, of
    a loss on every trial (Seymour, Daw, Roiser, Dayan & Dolan 2012, J Neurosci
    32:5833; hBayesDM's ``bandit4arm_*`` models). Choosing arm ``a`` gives
    ``gain = gain_size`` with probability ``p_gain[a]`` (else 0) and
    ``loss = -loss_size`` with probability ``p_loss[a]`` (else 0); the reward is
    their sum and ``loss`` is the second outcome channel of the trials
    (:mod:`neurorl.schema`), which the gain/loss learners read. After each
    trial every probability takes a Gaussian step of sd ``sd`` and is
    reflected into ``bounds`` (``sd = 0``: fixed probabilities). Covariates:
    ``gain``, ``loss``, and ``p_gain``, ``p_loss`` (per arm, on the trial).

Assumptions ([A], chosen here)
------------------------------
* Decks pay with fixed probabilities, not from Bechara's fixed card sequence;
  every trial is its own episode (``done = True``).
* ``bandit4arm``: the walk's step sd (0.025), bounds (0.25, 0.75) and the
  unit magnitudes are ours (those of ``restless_bernoulli``), not values
  taken from Seymour et al.; initial probabilities are uniform within the
  bounds, independently per subject, arm and outcome, unless ``p_gain`` /
  ``p_loss`` fix them.
* ``reversal_learning`` starts with option 0 correct; the criterion counts
  the correct choices since the last reversal.
"""

from __future__ import annotations

import numpy as np

from ..schema import EnvSpec
from .base import OneStateTask, Task, register_task

__all__ = ["ReversalLearning", "IowaGambling", "ProbabilisticSelection", "GainLossBandit", "IGT_GAIN", "IGT_LOSS", "IGT_P_LOSS",
           "PST_P_REWARD"]

#: win per card of decks A-D (Bechara et al. 1994)
IGT_GAIN = (100.0, 100.0, 50.0, 50.0)
#: loss when a deck loses, and the probability that it does
IGT_LOSS = (-250.0, -1250.0, -50.0, -250.0)
IGT_P_LOSS = (0.5, 0.1, 0.5, 0.1)
#: reward probability of options A-F (Frank et al. 2004)
PST_P_REWARD = (0.8, 0.2, 0.7, 0.3, 0.6, 0.4)


def _out(n, reward, **cov):
    return {"reward": reward, "next_state": np.zeros(n, np.int64), "done": np.ones(n, bool), **cov}


@register_task
class ReversalLearning(OneStateTask):
    """Two-option probabilistic reversal learning with a performance criterion (see the module docstring).

    Parameters
    ----------
    p_reward : float, default 0.7
        Probability that the correct option pays +1 (in [0.5, 1]).
    criterion : int, default 10
        Consecutive correct choices that trigger a reversal (>= 1).
    """

    name = "reversal_learning"
    covariates = {"correct": (), "reversals": ()}
    default_n_trials = 100

    def __init__(self, *, p_reward: float = 0.7, criterion: int = 10):
        p_reward = float(p_reward)
        if not 0.5 <= p_reward <= 1.0:
            raise ValueError(f"reversal_learning: p_reward must be in [0.5, 1], got {p_reward}")
        if isinstance(criterion, bool) or int(criterion) != criterion or criterion < 1:
            raise ValueError(f"reversal_learning: criterion must be an integer >= 1, got {criterion!r}")
        super().__init__(p_reward=p_reward, criterion=int(criterion))
        self._env = EnvSpec.default(1, 2)

    def reset(self, n, rng):
        z = np.zeros(n, np.int64)
        return {"correct": z, "streak": z.copy(), "reversals": z.copy()}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        right = action == ts["correct"]
        p = self.options["p_reward"]
        win = rng.random(n) < np.where(right, p, 1.0 - p)
        reward = np.where(win, 1.0, -1.0)
        streak = np.where(right, ts["streak"] + 1, 0)
        flip = streak >= self.options["criterion"]
        new = {"correct": np.where(flip, 1 - ts["correct"], ts["correct"]), "streak": np.where(flip, 0, streak),
               "reversals": ts["reversals"] + flip}
        return new, _out(n, reward, correct=ts["correct"].copy(), reversals=ts["reversals"].copy())


@register_task
class IowaGambling(OneStateTask):
    """Iowa gambling task with Bechara et al.'s (1994) deck payoffs (see the module docstring).

    Parameters
    ----------
    payscale : float, default 100
        Divisor of the net outcome (hBayesDM's ``payscale``).
    """

    name = "iowa_gambling"
    covariates = {"gain": (), "loss": ()}
    default_n_trials = 100

    def __init__(self, *, payscale: float = 100.0):
        payscale = float(payscale)
        if not (payscale > 0 and np.isfinite(payscale)):
            raise ValueError(f"iowa_gambling: payscale must be positive and finite, got {payscale}")
        super().__init__(payscale=payscale)
        self._env = EnvSpec.default(1, 4)

    def reset(self, n, rng):
        return {"n": np.zeros(n, np.int64)}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        gain = np.asarray(IGT_GAIN)[action]
        loses = rng.random(n) < np.asarray(IGT_P_LOSS)[action]
        loss = np.where(loses, np.asarray(IGT_LOSS)[action], 0.0)
        reward = (gain - np.abs(loss)) / self.options["payscale"]
        return ts, _out(n, reward, gain=gain, loss=loss)


@register_task
class ProbabilisticSelection(Task):
    """Training phase of the probabilistic selection task (pairs AB, CD, EF; see the module docstring)."""

    name = "probabilistic_selection"
    covariates = {}
    default_n_trials = 120

    def __init__(self):
        super().__init__()
        item = np.arange(6).reshape(3, 2)
        self._env = EnvSpec(3, 2, 6, item, np.ones((3, 2), bool), np.full((3, 2), np.nan))

    def reset(self, n, rng):
        return {"pair": rng.integers(0, 3, n)}

    def observe(self, ts):
        return ts["pair"].astype(np.int64)

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        option = self._env.item[ts["pair"], action]
        reward = (rng.random(n) < np.asarray(PST_P_REWARD)[option]).astype(float)
        nxt = {"pair": rng.integers(0, 3, n)}
        return nxt, {"reward": reward, "next_state": nxt["pair"].astype(np.int64), "done": np.ones(n, bool)}


@register_task
class GainLossBandit(OneStateTask):
    """Four-armed bandit with separate gain and loss outcomes (Seymour et al. 2012; see the module docstring).

    Parameters
    ----------
    n_arms : int, default 4
    gain_size, loss_size : float, default 1
        Magnitudes of a gain and of a loss (a loss is recorded as ``-loss_size``).
    sd : float, default 0.025
        SD of each probability's per-trial Gaussian step (0: fixed probabilities).
    bounds : (float, float), default (0.25, 0.75)
        Reflecting bounds of the probabilities, ``0 <= lower < upper <= 1``.
    p_gain, p_loss : sequence of float, optional
        Initial probabilities per arm (within the bounds). Default: uniform within the bounds [A].
    """

    name = "bandit4arm"
    covariates = {"gain": (), "loss": (), "p_gain": ("action",), "p_loss": ("action",)}
    default_n_trials = 200

    def __init__(self, *, n_arms: int = 4, gain_size: float = 1.0, loss_size: float = 1.0, sd: float = 0.025,
                 bounds=(0.25, 0.75), p_gain=None, p_loss=None):
        from .bandits import _arm_tuple, _check_n_arms, _check_positive

        where = "bandit4arm"
        n_arms = _check_n_arms(where, n_arms)
        gain_size = _check_positive("gain_size", where, gain_size)
        loss_size = _check_positive("loss_size", where, loss_size)
        sd = _check_positive("sd", where, sd, allow_zero=True)
        b = np.asarray(bounds, dtype=float)
        if b.shape != (2,) or not (0.0 <= b[0] < b[1] <= 1.0):
            raise ValueError(f"{where}: bounds must be (lower, upper) with 0 <= lower < upper <= 1, got {bounds!r}")
        lower, upper = float(b[0]), float(b[1])
        fixed = {}
        for nm, v in (("p_gain", p_gain), ("p_loss", p_loss)):
            if v is not None:
                v = _arm_tuple(nm, where, v, n_arms)
                if any(not lower <= x <= upper for x in v):
                    raise ValueError(f"{where}: {nm} must lie within bounds [{lower}, {upper}], got {v}")
            fixed[nm] = v
        super().__init__(n_arms=n_arms, gain_size=gain_size, loss_size=loss_size, sd=sd, bounds=(lower, upper),
                         **fixed)
        self._env = EnvSpec.default(1, n_arms)

    def reset(self, n, rng):
        o = self.options
        lower, upper = o["bounds"]
        ts = {}
        for nm in ("p_gain", "p_loss"):
            if o[nm] is None:
                ts[nm] = lower + (upper - lower) * rng.random((n, o["n_arms"]))
            else:
                ts[nm] = np.broadcast_to(np.asarray(o[nm]), (n, o["n_arms"])).copy()
        return ts

    def step(self, ts, action, rng):
        from .bandits import reflect

        action = self.check_action(ts, action)
        o = self.options
        n = action.shape[0]
        rows = np.arange(n)
        gain = np.where(rng.random(n) < ts["p_gain"][rows, action], o["gain_size"], 0.0)
        loss = np.where(rng.random(n) < ts["p_loss"][rows, action], -o["loss_size"], 0.0)
        new = {k: reflect(v + o["sd"] * rng.standard_normal(v.shape), *o["bounds"]) for k, v in ts.items()}
        return new, _out(n, gain + loss, gain=gain, loss=loss, p_gain=ts["p_gain"].copy(),
                         p_loss=ts["p_loss"].copy())
