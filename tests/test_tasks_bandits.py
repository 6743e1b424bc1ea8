"""Tests of the bandit tasks (tasks.md §2, §10): distributions checked against the spec.

Tolerances are derived from the sampling error of each statistic (binomial or
multinomial standard errors, normal-theory SEs of variances and slopes) and set
at 5 SE unless stated otherwise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import neurorl as nr
from neurorl.tasks.bandits import reflect

Z = 5.0  # tolerance in standard errors


def _run(task, n, T, rng, policy=None):
    """Step a task for T trials with uniformly random (or given) actions; stack outputs as (T, n)."""
    ts = task.reset(n, rng)
    outs = {}
    for t in range(T):
        a = rng.integers(0, task.env.n_actions, n) if policy is None else policy(t, n)
        outs.setdefault("action", []).append(a)
        outs.setdefault("state", []).append(task.observe(ts))
        ts, out = task.step(ts, a, rng)
        for k, v in out.items():
            outs.setdefault(k, []).append(np.asarray(v))
    return {k: np.stack(v) for k, v in outs.items()}


# ---------------------------------------------------------------- bandit
def test_bandit_defaults():
    task = nr.make_task("bandit")
    assert task.env.n_states == 1 and task.env.n_actions == 2
    assert task.generative_params() == {"task": "bandit", "n_arms": 2, "p": (0.5, 0.5)}


def test_bandit_reward_rates_match_p():
    p = (0.2, 0.7, 0.95)
    task = nr.make_task("bandit", p=np.array(p))
    assert task.options["n_arms"] == 3 and task.options["p"] == p
    rng = np.random.default_rng(0)
    out = _run(task, 3000, 4, rng)
    for i, pi in enumerate(p):
        r = out["reward"][out["action"] == i]
        se = math.sqrt(pi * (1 - pi) / r.size)
        assert abs(r.mean() - pi) < Z * se, (i, r.mean(), pi)
    assert set(np.unique(out["reward"])) <= {0.0, 1.0}
    assert np.all(out["next_state"] == 0) and np.all(out["done"])


@pytest.mark.parametrize("kwargs,match", [
    ({"p": (0.5, 0.5, 0.5), "n_arms": 2}, "one value per arm"),
    ({"p": (0.5, 1.2)}, r"p\[1\] must be in \[0, 1\]"),
    ({"n_arms": 1}, "n_arms must be an integer >= 2"),
    ({"n_arms": 2.5}, "n_arms must be an integer"),
])
def test_bandit_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nr.make_task("bandit", **kwargs)


# ---------------------------------------------------------------- restless Gaussian
def test_restless_bandit_walk_matches_ar1():
    """OLS of mu_{t+1} on mu_t recovers lam, (1 - lam) theta and sigma_d; initial means are stationary."""
    task = nr.make_task("restless_bandit")
    lam, theta, sd = 0.9836, 50.0, 2.8
    stat_sd = sd / math.sqrt(1 - lam**2)  # stationary SD, about 15.5
    assert task.env.n_actions == 4 and task.default_n_trials == 300
    rng = np.random.default_rng(1)
    n, T = 1000, 40
    out = _run(task, n, T, rng)
    mu = out["mean"]  # (T, n, 4)
    assert mu.shape == (T, n, 4)
    # stationary start: N(theta, stat_sd^2) per arm
    m0 = mu[0].ravel()
    assert abs(m0.mean() - theta) < Z * stat_sd / math.sqrt(m0.size)
    assert abs(m0.std() / stat_sd - 1) < Z * math.sqrt(1 / (2 * m0.size))
    # AR(1) regression
    x, y = mu[:-1].ravel(), mu[1:].ravel()
    xc = x - x.mean()
    slope = (xc * (y - y.mean())).sum() / (xc**2).sum()
    intercept = y.mean() - slope * x.mean()
    resid = y - (intercept + slope * x)
    se_slope = sd / math.sqrt((xc**2).sum())
    assert abs(slope - lam) < Z * se_slope
    # intercept = (1 - lam) theta: SE of the fitted value at x = theta is about sd / sqrt(N)
    assert abs(intercept + slope * theta - theta) < Z * sd / math.sqrt(x.size)
    assert abs(resid.std() / sd - 1) < Z * math.sqrt(1 / (2 * x.size))


def test_restless_bandit_payoffs():
    """Payoffs are integers, N(mu_chosen, 4^2) before rounding (variance 16 + 1/12 after)."""
    task = nr.make_task("restless_bandit")
    rng = np.random.default_rng(2)
    out = _run(task, 2000, 10, rng)
    r = out["reward"].ravel()
    assert np.all(r == np.round(r))
    chosen_mu = np.take_along_axis(out["mean"], out["action"][..., None], -1)[..., 0].ravel()
    e = r - chosen_mu
    var = 16.0 + 1.0 / 12.0  # rounding error ~ U(-1/2, 1/2), independent of the Gaussian noise
    assert abs(e.mean()) < Z * math.sqrt(var / e.size)
    assert abs(e.var() / var - 1) < Z * math.sqrt(2 / e.size)


def test_restless_bandit_fixed_start_and_no_noise():
    """With sigma_d = 0 the means decay deterministically: mu_t = theta + lam^t (mu0 - theta)."""
    mu0 = (10.0, 50.0, 70.0, 90.0)
    task = nr.make_task("restless_bandit", mu0=mu0, sigma_d=0.0, sigma_o=0.0, rounded=False)
    out = _run(task, 3, 25, np.random.default_rng(3))
    t = np.arange(25)[:, None, None]
    expected = 50.0 + 0.9836**t * (np.array(mu0) - 50.0)
    np.testing.assert_allclose(out["mean"], np.broadcast_to(expected, out["mean"].shape), rtol=1e-12)
    chosen = np.take_along_axis(out["mean"], out["action"][..., None], -1)[..., 0]
    np.testing.assert_allclose(out["reward"], chosen, rtol=1e-12)


@pytest.mark.parametrize("kwargs,match", [
    ({"lam": 1.0}, r"lam must be in \[0, 1\)"),
    ({"sigma_d": -1.0}, "sigma_d must be non-negative"),
    ({"mu0": (1.0, 2.0)}, "one value per arm"),
    ({"rounded": "yes"}, "rounded must be True or False"),
])
def test_restless_bandit_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nr.make_task("restless_bandit", **kwargs)


def test_restless_bandit_simulated_trials_carry_means():
    sim = nr.simulate("q_learning", "restless_bandit", n_subjects=2, n_trials=15, rng=4)
    assert sim.trials["mean"].dims == ("subject", "trial", "action")
    chosen = sim.trials["mean"].values[np.arange(2)[:, None], np.arange(15), sim.trials["choice"].values]
    assert np.all(np.abs(sim.trials["reward"].values - chosen) < 4 * 8)  # within 8 SD of the payoff noise


# ---------------------------------------------------------------- restless Bernoulli
def test_reflect_by_hand():
    np.testing.assert_allclose(reflect(np.array([0.8, 0.2, 0.5, 1.3, 0.75, 0.25]), 0.25, 0.75),
                               [0.7, 0.3, 0.5, 0.3, 0.75, 0.25], atol=1e-12)


def test_restless_bernoulli_walk():
    """Bounds hold, interior steps have SD 0.025, and the uniform start stays uniform (stationary)."""
    task = nr.make_task("restless_bernoulli")
    assert task.generative_params() == {"task": "restless_bernoulli", "n_arms": 2, "sd": 0.025,
                                        "bounds": (0.25, 0.75), "p0": None}
    rng = np.random.default_rng(5)
    n, T = 2000, 30
    out = _run(task, n, T, rng)
    p = out["reward_prob"]
    assert np.all((p >= 0.25) & (p <= 0.75))
    x, y = p[:-1].ravel(), p[1:].ravel()
    inner = (x > 0.25 + 6 * 0.025) & (x < 0.75 - 6 * 0.025)  # reflection impossible within 6 SD
    d = (y - x)[inner]
    assert abs(d.mean()) < Z * 0.025 / math.sqrt(d.size)
    assert abs(d.std() / 0.025 - 1) < Z * math.sqrt(1 / (2 * d.size))
    last = p[-1].ravel()  # uniform on [0.25, 0.75]: mean 0.5, variance 0.5^2 / 12
    var = 0.25 / 12
    assert abs(last.mean() - 0.5) < Z * math.sqrt(var / last.size)
    # SE of a sample variance of a uniform: sqrt((mu4 - var^2) / N), mu4 = w^4 / 80
    assert abs(last.var() - var) < Z * math.sqrt((0.5**4 / 80 - var**2) / last.size)
    # reward frequency matches the chosen arm's probability
    pc = np.take_along_axis(p, out["action"][..., None], -1)[..., 0]
    r = out["reward"]
    assert abs(r.mean() - pc.mean()) < Z * math.sqrt((pc * (1 - pc)).sum()) / r.size


def test_restless_bernoulli_fixed_start():
    out = _run(nr.make_task("restless_bernoulli", n_arms=3, p0=(0.3, 0.5, 0.7), sd=0.0), 4, 5,
               np.random.default_rng(6))
    np.testing.assert_array_equal(out["reward_prob"], np.broadcast_to([0.3, 0.5, 0.7], (5, 4, 3)))


@pytest.mark.parametrize("kwargs,match", [
    ({"bounds": (0.8, 0.2)}, "bounds must be"),
    ({"bounds": (0.1, 1.5)}, "bounds must be"),
    ({"p0": (0.1, 0.5)}, "p0 must lie within bounds"),
    ({"sd": float("nan")}, "sd must be non-negative"),
])
def test_restless_bernoulli_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nr.make_task("restless_bernoulli", **kwargs)


# ---------------------------------------------------------------- variable magnitude
MAGS = np.array([0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0])
PROBS = np.array([0.067, 0.090, 0.148, 0.154, 0.313, 0.151, 0.077])


def test_variable_magnitude_distribution():
    task = nr.make_task("variable_magnitude")
    assert (task.env.n_states, task.env.n_actions) == (1, 1)
    rng = np.random.default_rng(7)
    out = _run(task, 5000, 4, rng)
    r = out["reward"].ravel()
    np.testing.assert_array_equal(r, out["magnitude"].ravel())
    freq = np.array([(r == m).mean() for m in MAGS])
    assert freq.sum() == pytest.approx(1.0)
    se = np.sqrt(PROBS * (1 - PROBS) / r.size)
    assert np.all(np.abs(freq - PROBS) < Z * se), freq


def test_variable_magnitude_utility_by_hand():
    # u(r) = f_max / (1 + sqrt(sigma / r)) for r > 0
    task = nr.make_task("variable_magnitude", utility=True)
    out = _run(task, 3000, 2, np.random.default_rng(8))
    expected = {20.0: 10 / (1 + math.sqrt(10)), 5.0: 10 / (1 + math.sqrt(40)), 0.1: 10 / (1 + math.sqrt(2000))}
    for m, u in expected.items():
        sel = out["magnitude"] == m
        assert sel.any()
        np.testing.assert_allclose(out["reward"][sel], u, rtol=1e-12)
    u_all = 10 / (1 + np.sqrt(200 / MAGS))
    mean = (PROBS * u_all).sum()
    sd = math.sqrt((PROBS * (u_all - mean) ** 2).sum())
    assert abs(out["reward"].mean() - mean) < Z * sd / math.sqrt(out["reward"].size)


@pytest.mark.parametrize("kwargs,match", [
    ({"utility": 1}, "utility must be True or False"),
    ({"sigma": 0.0}, "sigma must be positive"),
    ({"f_max": -2.0}, "f_max must be positive"),
])
def test_variable_magnitude_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nr.make_task("variable_magnitude", **kwargs)


@pytest.mark.parametrize("name,kwargs", [
    ("bandit", {"p": [0.1, 0.2, 0.3]}),
    ("restless_bandit", {"mu0": np.array([1.0, 2.0, 3.0, 4.0]), "sigma_d": 1}),
    ("restless_bernoulli", {"bounds": [0.1, 0.9], "p0": np.array([0.2, 0.8])}),
    ("variable_magnitude", {"utility": True, "sigma": 100}),
])
def test_generative_params_rebuild_non_default(name, kwargs):
    gp = nr.make_task(name, **kwargs).generative_params()
    rebuilt = nr.make_task(name, **{k: v for k, v in gp.items() if k != "task"})
    assert rebuilt.generative_params() == gp
    assert all(not isinstance(v, np.ndarray) for v in gp.values())
