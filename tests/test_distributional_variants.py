"""Distributional TD: random / user-given asymmetries, the quantile (sign-only) variant, and the
reversal-point and response-slope helpers (agents.md §6).

Expected values are derived independently: expectiles by root finding (scipy brentq) on the defining
equation, quantiles from the cumulative distribution, and noiseless synthetic responses with known
reversal points and slopes.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq

import neurorl as nr
from neurorl.agents.distributional import expectile, quantile, random_taus, response_slopes, reversal_points

MAGS = np.array([0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0])
PROBS = np.array([0.067, 0.090, 0.148, 0.154, 0.313, 0.151, 0.077])
P = PROBS / PROBS.sum()


def _expectile(tau):
    f = lambda z: tau * np.sum(P * np.maximum(MAGS - z, 0.0)) - (1 - tau) * np.sum(P * np.maximum(z - MAGS, 0.0))
    return brentq(f, MAGS.min(), MAGS.max(), xtol=1e-13)


def _quantile(tau):
    return MAGS[np.searchsorted(np.cumsum(P), tau)]


@pytest.mark.parametrize("tau", [0.03, 0.2, 0.5, 0.77, 0.99])
def test_expectile_and_quantile_helpers(tau):
    assert expectile(MAGS, PROBS, tau) == pytest.approx(_expectile(tau), abs=1e-10)
    assert quantile(MAGS, PROBS, tau) == _quantile(tau)
    # tau = 1/2: the expectile is the mean
    assert expectile(MAGS, PROBS, 0.5) == pytest.approx(float(np.sum(P * MAGS)), abs=1e-12)


def test_random_and_user_asymmetries():
    a = nr.make_agent("distributional_td", n_channels=12, taus="random", tau_seed=3)
    b = nr.make_agent("distributional_td", n_channels=12, taus="random", tau_seed=3)
    np.testing.assert_array_equal(a.tau_channels, b.tau_channels)
    np.testing.assert_array_equal(a.tau_channels, random_taus(12, 3))
    # U(0.001, 0.02) rates give asymmetries inside (0.001/0.021, 0.02/0.021), in no particular order
    assert np.all((a.tau_channels > 0.001 / 0.021) & (a.tau_channels < 0.02 / 0.021))
    assert not np.all(np.diff(a.tau_channels) > 0)
    u = nr.make_agent("distributional_td", taus=[0.2, 0.9, 0.5])
    np.testing.assert_array_equal(u.tau_channels, [0.2, 0.9, 0.5])
    assert u.options["n_channels"] == 3
    # alpha's bound keeps every rate below 1 for the most extreme level
    (pa,) = [p for p in u.params if p.name == "alpha"]
    assert pa.upper == pytest.approx(np.sqrt(0.1 / 0.9))
    with pytest.raises(ValueError, match="tau"):
        nr.make_agent("distributional_td", taus=[0.2, 1.0])
    with pytest.raises(ValueError, match="variant"):
        nr.make_agent("distributional_td", variant="median")


def _run(agent, T, alpha, n=20, rng=0):
    return nr.simulate(agent, "variable_magnitude", n_subjects=n, n_trials=T, rng=rng, params={"alpha": alpha})


def test_random_asymmetries_converge_to_expectiles_and_reversal_points_recover_them():
    agent = nr.make_agent("distributional_td", n_channels=6, taus="random", tau_seed=1)
    T = 4000
    sim = _run(agent, T, 0.01)
    true = np.array([_expectile(t) for t in agent.tau_channels])
    per_subject = sim.latents["expectiles"].values[:, T // 2:, :].mean(axis=1)
    mean, se = per_subject.mean(0), per_subject.std(0, ddof=1) / np.sqrt(per_subject.shape[0])
    assert np.all(np.abs(mean - true) < 4 * se + 0.01 * np.abs(true)), (mean, true)
    # reversal points of the channel errors (pooled second halves) = the expectiles; their order = the taus' order
    r = sim.trials["reward"].values[:, T // 2:].ravel()
    rpe = sim.latents["rpe_channels"].values[:, T // 2:, :].reshape(-1, 6)
    rev = reversal_points(r, rpe, method="interpolate")
    np.testing.assert_allclose(rev, true, rtol=0.03, atol=0.05)
    np.testing.assert_array_equal(np.argsort(rev), np.argsort(agent.tau_channels))
    # slopes of the channel updates (Z_{t+1} - Z_t) around the reversal points estimate alpha+- and the asymmetry
    Z = sim.latents["expectiles"].values
    upd = (Z[:, T // 2 + 1:, :] - Z[:, T // 2:-1, :]).reshape(-1, 6)
    r1 = sim.trials["reward"].values[:, T // 2:-1].ravel()
    sl = response_slopes(r1, upd, reversal_points(r1, upd))
    np.testing.assert_allclose(sl["asymmetry"], agent.tau_channels, atol=0.03)
    a_pos = 0.01 * np.sqrt(agent.tau_channels / (1 - agent.tau_channels))
    np.testing.assert_allclose(sl["slope_pos"], a_pos, rtol=0.1)


def test_quantile_variant_converges_to_quantiles():
    taus = [0.1, 0.25, 0.4, 0.6, 0.85, 0.95]  # away from the CDF steps (0.067, 0.157, 0.305, 0.459, 0.772, 0.923)
    agent = nr.make_agent("distributional_td", taus=taus, variant="quantile")
    T, alpha = 3000, 0.1
    sim = _run(agent, T, alpha, n=8)
    true = np.array([_quantile(t) for t in taus])
    z = sim.latents["expectiles"].values[:, T // 2:, :]
    mean = z.mean(axis=(0, 1))
    step = alpha * np.maximum(np.sqrt(np.array(taus) / (1 - np.array(taus))), np.sqrt((1 - np.array(taus)) / taus))
    # a sign-only walk stays within a few steps of its atom (stationary oscillation, not O(alpha) relative bias)
    assert np.all(np.abs(mean - true) < 5 * step), (mean, true, step)
    # the expectile variant with the same levels is elsewhere (it is not a quantile)
    ex = _run(nr.make_agent("distributional_td", taus=taus), T, alpha, n=8)
    ex_mean = ex.latents["expectiles"].values[:, T // 2:, :].mean(axis=(0, 1))
    assert np.max(np.abs(ex_mean - true)) > 1.0


def test_quantile_variant_replay_and_compiled_likelihood():
    from graph_check import assert_compiled_matches_replay

    agent = nr.make_agent("distributional_td", taus="random", n_channels=4, variant="quantile")
    sim = nr.simulate(agent, "mouse_bandit", n_subjects=2, n_trials=70, rng=5, params={"alpha": 0.1})
    lat = nr.replay(agent, sim.trials, sim.params)
    np.testing.assert_array_equal(lat["policy"].values, sim.latents["policy"].values)
    assert_compiled_matches_replay(agent, sim)


def test_reversal_and_slopes_on_noiseless_asymmetric_responses():
    """Known reversal points and rates: the kink fit is exact where interpolation is biased."""
    rng = np.random.default_rng(0)
    r = rng.choice(MAGS, size=2000, p=P)
    z = np.array([0.8, 3.0, 7.5])
    a_pos, a_neg = np.array([0.02, 0.05, 0.1]), np.array([0.08, 0.05, 0.01])
    x = r[:, None] - z[None]
    y = np.where(x > 0, a_pos, a_neg) * x
    rev = reversal_points(r, y)
    np.testing.assert_allclose(rev, z, atol=1e-6)
    interp = reversal_points(r, y, method="interpolate")
    assert abs(interp[0] - z[0]) > 1e-3  # asymmetric slopes bias the interpolation
    np.testing.assert_allclose(interp[1], z[1], atol=1e-9)  # symmetric: exact
    sl = response_slopes(r, y, rev)
    np.testing.assert_allclose(sl["slope_pos"], a_pos, rtol=1e-5)
    np.testing.assert_allclose(sl["slope_neg"], a_neg, rtol=1e-5)
    np.testing.assert_allclose(sl["asymmetry"], a_pos / (a_pos + a_neg), rtol=1e-5)
    # a response that never changes sign has no reversal point
    assert np.isnan(reversal_points(r, np.abs(y[:, 0]) + 1.0)[0])
