"""Stationary, restless and distributional bandits (tasks.md §2 and §10).

Four registered tasks, each with one state (a single cue) and one decision per
trial; every trial ends its episode (``done = True``, ``next_state = 0``).

``bandit``
    Stationary N-armed Bernoulli bandit (NeuroGym ``Bandit``, tasks.md §2 [S]).
``restless_bandit``
    Gaussian restless 4-armed bandit of Daw et al. (2006), tasks.md §2.
``restless_bernoulli``
    Bernoulli arms whose reward probabilities follow reflected Gaussian random
    walks, tasks.md §2 (state SD and bounds as in §7).
``variable_magnitude``
    Dabney et al. (2020) variable-magnitude reward task, tasks.md §10 [S].

Assumptions ([A], chosen here)
------------------------------
* ``restless_bandit``: each arm's initial mean is drawn independently from the
  walk's stationary distribution ``N(theta, sigma_d^2 / (1 - lam^2))`` (SD about
  15.5 at the defaults), unless ``mu0`` fixes it. Payoffs are
  ``round(N(mu_i, sigma_o^2))`` (NumPy's round-half-to-even) and are *not*
  clipped to the 1-100 range of the original experiment's display. The means
  of trial ``t`` pay on trial ``t``; they then drift once for trial ``t + 1``.
  Each subject gets its own independent walks.
* ``restless_bernoulli``: initial probabilities are drawn uniformly within the
  bounds (the stationary distribution of a reflected random walk) unless
  ``p0`` fixes them. A step that leaves ``[lower, upper]`` is reflected back
  exactly (folding repeatedly for steps wider than the interval). Default
  ``n_arms = 2``.
* ``variable_magnitude``: one cue and a single action (``n_actions = 1``); the
  reward of every trial is an independent draw of the magnitude. With
  ``utility=True`` the reward is ``u(r) = f_max sign(r)|r|^0.5 / (|r|^0.5 +
  sigma^0.5)``; by default (``utility=False``) it is the raw magnitude (µl).
"""

from __future__ import annotations

import math

import numpy as np

from ..schema import EnvSpec
from .base import OneStateTask, register_task

__all__ = ["Bandit", "RestlessBandit", "RestlessBernoulli", "VariableMagnitude", "reflect", "dabney_utility",
           "DABNEY_MAGNITUDES", "DABNEY_PROBS"]

#: reward magnitudes (µl) of Dabney et al. (2020), tasks.md §10 [S]
DABNEY_MAGNITUDES = (0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0)
#: their probabilities, taken from the original authors' code [S]
DABNEY_PROBS = (0.067, 0.090, 0.148, 0.154, 0.313, 0.151, 0.077)


def _one_state_step_out(n: int) -> dict:
    return {"next_state": np.zeros(n, np.int64), "done": np.ones(n, bool)}


def _check_prob(name: str, where: str, value: float) -> float:
    value = float(value)
    if not (0.0 <= value <= 1.0):
        raise ValueError(f"{where}: {name} must be in [0, 1], got {value}")
    return value


def _check_positive(name: str, where: str, value, *, allow_zero: bool = False) -> float:
    value = float(value)
    ok = value >= 0 if allow_zero else value > 0
    if not (ok and math.isfinite(value)):
        raise ValueError(f"{where}: {name} must be {'non-negative' if allow_zero else 'positive'} and finite, "
                         f"got {value}")
    return value


def _check_n_arms(where: str, n_arms) -> int:
    if isinstance(n_arms, bool) or not isinstance(n_arms, (int, np.integer)) or n_arms < 2:
        raise ValueError(f"{where}: n_arms must be an integer >= 2, got {n_arms!r}")
    return int(n_arms)


def _arm_tuple(name: str, where: str, values, n_arms: int) -> tuple[float, ...]:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1 or arr.shape[0] != n_arms:
        raise ValueError(f"{where}: {name} must have one value per arm (n_arms={n_arms}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: {name} must be finite, got {tuple(arr.tolist())}")
    return tuple(float(x) for x in arr)


def reflect(x: np.ndarray, lower: float, upper: float) -> np.ndarray:
    """Reflect ``x`` into ``[lower, upper]`` at both bounds (folding as often as needed).

    A point ``d`` above ``upper`` maps to ``upper - d``; one ``d`` below
    ``lower`` to ``lower + d``; steps wider than the interval fold repeatedly.
    """
    w = upper - lower
    y = np.mod(np.asarray(x, float) - lower, 2.0 * w)
    return lower + np.where(y > w, 2.0 * w - y, y)


def dabney_utility(r, f_max: float = 10.0, sigma: float = 200.0) -> np.ndarray:
    """``u(r) = f_max sign(r) |r|^0.5 / (|r|^0.5 + sigma^0.5)`` (tasks.md §10)."""
    r = np.asarray(r, float)
    a = np.sqrt(np.abs(r))
    return f_max * np.sign(r) * a / (a + np.sqrt(sigma))


@register_task
class Bandit(OneStateTask):
    """Stationary N-armed Bernoulli bandit (NeuroGym ``Bandit``; tasks.md §2).

    One state; arm ``i`` pays 1 with probability ``p[i]``, else 0.

    Parameters
    ----------
    n_arms : int, optional
        Number of arms (>= 2). Default: ``len(p)`` if ``p`` is given, else 2.
    p : sequence of float, optional
        Reward probability of each arm, each in [0, 1]. Default: 0.5 for every arm.
    """

    name = "bandit"
    covariates: dict = {}
    default_n_trials = 200

    def __init__(self, *, n_arms: int | None = None, p=None):
        if n_arms is None:
            n_arms = 2 if p is None else len(np.atleast_1d(np.asarray(p)))
        n_arms = _check_n_arms("bandit", n_arms)
        p = (0.5,) * n_arms if p is None else _arm_tuple("p", "bandit", p, n_arms)
        for i, pi in enumerate(p):
            _check_prob(f"p[{i}]", "bandit", pi)
        super().__init__(n_arms=n_arms, p=p)
        self._env = EnvSpec.default(1, n_arms)
        self._p = np.asarray(p)

    def reset(self, n, rng):
        return {"n": np.zeros(n, np.int64)}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        reward = (rng.random(n) < self._p[action]).astype(float)
        return {"n": ts["n"]}, {"reward": reward, **_one_state_step_out(n)}


@register_task
class RestlessBandit(OneStateTask):
    """Gaussian restless bandit (Daw et al. 2006, Nature; tasks.md §2).

    Arm means follow decaying Gaussian random walks
    ``mu_{i,t+1} = lam mu_{i,t} + (1 - lam) theta + nu``, ``nu ~ N(0, sigma_d^2)``;
    choosing arm ``i`` on trial ``t`` pays ``round(N(mu_{i,t}, sigma_o^2))``.

    Parameters
    ----------
    n_arms : int, default 4
    lam : float, default 0.9836
        Decay, in [0, 1).
    theta : float, default 50
        Decay centre.
    sigma_d : float, default 2.8
        Diffusion SD of the means.
    sigma_o : float, default 4
        Payoff (observation) SD.
    mu0 : sequence of float, optional
        Initial means, one per arm. Default: drawn independently per subject
        and arm from the stationary ``N(theta, sigma_d^2 / (1 - lam^2))`` [A].
    rounded : bool, default True
        Round payoffs to integers (points), as in the experiment.

    Notes
    -----
    Covariate ``mean`` (dims ``action``): the arms' means on the trial.
    """

    name = "restless_bandit"
    covariates = {"mean": ("action",)}
    default_n_trials = 300

    def __init__(self, *, n_arms: int = 4, lam: float = 0.9836, theta: float = 50.0, sigma_d: float = 2.8,
                 sigma_o: float = 4.0, mu0=None, rounded: bool = True):
        where = "restless_bandit"
        n_arms = _check_n_arms(where, n_arms)
        lam = float(lam)
        if not 0.0 <= lam < 1.0:
            raise ValueError(f"{where}: lam must be in [0, 1), got {lam}")
        theta = float(theta)
        if not math.isfinite(theta):
            raise ValueError(f"{where}: theta must be finite, got {theta}")
        sigma_d = _check_positive("sigma_d", where, sigma_d, allow_zero=True)
        sigma_o = _check_positive("sigma_o", where, sigma_o, allow_zero=True)
        if mu0 is not None:
            mu0 = _arm_tuple("mu0", where, mu0, n_arms)
        if not isinstance(rounded, (bool, np.bool_)):
            raise ValueError(f"{where}: rounded must be True or False, got {rounded!r}")
        super().__init__(n_arms=n_arms, lam=lam, theta=theta, sigma_d=sigma_d, sigma_o=sigma_o, mu0=mu0,
                         rounded=bool(rounded))
        self._env = EnvSpec.default(1, n_arms)

    @property
    def stationary_sd(self) -> float:
        """SD of the walk's stationary distribution, ``sigma_d / sqrt(1 - lam^2)``."""
        o = self.options
        return o["sigma_d"] / math.sqrt(1.0 - o["lam"] ** 2)

    def reset(self, n, rng):
        o = self.options
        if o["mu0"] is None:
            mu = o["theta"] + self.stationary_sd * rng.standard_normal((n, o["n_arms"]))
        else:
            mu = np.broadcast_to(np.asarray(o["mu0"]), (n, o["n_arms"])).copy()
        return {"mu": mu}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        o = self.options
        mu = ts["mu"]
        n = action.shape[0]
        payoff = mu[np.arange(n), action] + o["sigma_o"] * rng.standard_normal(n)
        if o["rounded"]:
            payoff = np.round(payoff)
        new_mu = o["lam"] * mu + (1.0 - o["lam"]) * o["theta"] + o["sigma_d"] * rng.standard_normal(mu.shape)
        out = {"reward": payoff, **_one_state_step_out(n), "mean": mu.copy()}
        return {"mu": new_mu}, out


@register_task
class RestlessBernoulli(OneStateTask):
    """Bernoulli arms with reflected Gaussian random-walk probabilities (tasks.md §2, §7).

    After each trial every arm's probability moves by ``N(0, sd^2)`` and is
    reflected into ``[lower, upper]``; choosing arm ``i`` pays 1 with
    probability ``p_i`` of that trial.

    Parameters
    ----------
    n_arms : int, default 2
    sd : float, default 0.025
        SD of the per-trial step.
    bounds : (float, float), default (0.25, 0.75)
        Reflecting bounds, ``0 <= lower < upper <= 1``.
    p0 : sequence of float, optional
        Initial probabilities (within the bounds). Default: uniform within the
        bounds, independently per subject and arm [A].

    Notes
    -----
    Covariate ``reward_prob`` (dims ``action``): the arms' probabilities on the trial.
    """

    name = "restless_bernoulli"
    covariates = {"reward_prob": ("action",)}
    default_n_trials = 200

    def __init__(self, *, n_arms: int = 2, sd: float = 0.025, bounds=(0.25, 0.75), p0=None):
        where = "restless_bernoulli"
        n_arms = _check_n_arms(where, n_arms)
        sd = _check_positive("sd", where, sd, allow_zero=True)
        b = np.asarray(bounds, dtype=float)
        if b.shape != (2,) or not (0.0 <= b[0] < b[1] <= 1.0):
            raise ValueError(f"{where}: bounds must be (lower, upper) with 0 <= lower < upper <= 1, got {bounds!r}")
        lower, upper = float(b[0]), float(b[1])
        if p0 is not None:
            p0 = _arm_tuple("p0", where, p0, n_arms)
            if any(not lower <= x <= upper for x in p0):
                raise ValueError(f"{where}: p0 must lie within bounds [{lower}, {upper}], got {p0}")
        super().__init__(n_arms=n_arms, sd=sd, bounds=(lower, upper), p0=p0)
        self._env = EnvSpec.default(1, n_arms)

    def reset(self, n, rng):
        o = self.options
        lower, upper = o["bounds"]
        if o["p0"] is None:
            p = lower + (upper - lower) * rng.random((n, o["n_arms"]))
        else:
            p = np.broadcast_to(np.asarray(o["p0"]), (n, o["n_arms"])).copy()
        return {"p": p}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        o = self.options
        p = ts["p"]
        n = action.shape[0]
        reward = (rng.random(n) < p[np.arange(n), action]).astype(float)
        new_p = reflect(p + o["sd"] * rng.standard_normal(p.shape), *o["bounds"])
        out = {"reward": reward, **_one_state_step_out(n), "reward_prob": p.copy()}
        return {"p": new_p}, out


@register_task
class VariableMagnitude(OneStateTask):
    """Variable-magnitude reward task (Dabney et al. 2020; tasks.md §10).

    One cue, one action (``n_actions = 1``); each trial delivers a magnitude
    drawn from :data:`DABNEY_MAGNITUDES` with :data:`DABNEY_PROBS`.

    Parameters
    ----------
    utility : bool, default False
        Deliver ``u(r) = f_max sign(r)|r|^0.5/(|r|^0.5 + sigma^0.5)`` instead of ``r``.
    f_max : float, default 10
    sigma : float, default 200

    Notes
    -----
    Covariate ``magnitude``: the raw magnitude (µl) delivered on the trial.
    """

    name = "variable_magnitude"
    covariates = {"magnitude": ()}
    default_n_trials = 500

    def __init__(self, *, utility: bool = False, f_max: float = 10.0, sigma: float = 200.0):
        where = "variable_magnitude"
        if not isinstance(utility, (bool, np.bool_)):
            raise ValueError(f"{where}: utility must be True or False, got {utility!r}")
        f_max = _check_positive("f_max", where, f_max)
        sigma = _check_positive("sigma", where, sigma)
        super().__init__(utility=bool(utility), f_max=f_max, sigma=sigma)
        self._env = EnvSpec.default(1, 1)
        self._mags = np.asarray(DABNEY_MAGNITUDES)
        self._cdf = np.cumsum(DABNEY_PROBS) / np.sum(DABNEY_PROBS)

    def reset(self, n, rng):
        return {"n": np.zeros(n, np.int64)}

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        k = np.minimum(np.searchsorted(self._cdf, rng.random(n), side="right"), self._mags.size - 1)
        mag = self._mags[k]
        o = self.options
        reward = dabney_utility(mag, o["f_max"], o["sigma"]) if o["utility"] else mag.copy()
        return {"n": ts["n"]}, {"reward": reward, **_one_state_step_out(n), "magnitude": mag}
