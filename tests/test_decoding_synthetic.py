"""Synthetic populations with ground truth (decoding.md §7): structure, drift, and recovery by OLS and GLM."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.decoding import align, design_matrix, ols, poisson_glm, synthetic_population


@pytest.fixture(scope="module")
def sim():
    return nr.simulate("q_learning", "mouse_bandit", n_subjects=2, n_trials=400, rng=11)


def test_groups_weights_and_standardised_latents(sim):
    neural, truth = synthetic_population(sim, encode={"v": 0.4, ("q", 1): 0.2}, n_units=11, n_time=6,
                                         subject=1, rng=0)
    assert neural.dims == ("trial", "unit", "time") and neural.name == "counts"
    np.testing.assert_array_equal(neural.trial.values, sim.trials["trial_index"].sel(subject=1).values)
    assert neural.group.values.tolist() == ["v"] * 3 + ["q[1]"] * 3 + ["untuned"] * 5  # 11 // 3 = 3 per tuned group
    w = truth["weight"].values
    np.testing.assert_array_equal(np.abs(w[:3, 0]), 0.4)
    np.testing.assert_array_equal(np.abs(w[3:6, 1]), 0.2)
    assert (w[:3, 1] == 0).all() and (w[3:6, 0] == 0).all() and (w[6:] == 0).all()
    v = sim.latents["v"].sel(subject=1).values
    np.testing.assert_allclose(truth["z"].sel(latent="v").values, (v - v.mean()) / v.std(), rtol=1e-12)
    q1 = sim.latents["q"].sel(subject=1, action=1).values
    np.testing.assert_allclose(truth["z"].sel(latent="q[1]").values, (q1 - q1.mean()) / q1.std(), rtol=1e-12)
    assert float(truth["kernel"].max()) == pytest.approx(1.0, abs=0.05)
    again, _ = synthetic_population(sim, encode={"v": 0.4, ("q", 1): 0.2}, n_units=11, n_time=6, subject=1, rng=0)
    np.testing.assert_array_equal(again.values, neural.values)


def test_gaussian_population_is_the_stated_generator(sim):
    """Noise-free Gaussian units: rate = baseline + w * g(b) * z(i) + drift(i), exactly."""
    neural, truth = synthetic_population(sim, encode={"rpe": 1.5}, n_units=4, n_time=5, kind="gaussian",
                                         noise_sd=0.0, drift=0.7, drift_rho=0.9, baseline=2.0, rng=1)
    z = truth["z"].sel(latent="rpe").values
    g = truth["kernel"].values
    d = truth["drift"].values
    w = truth["weight"].sel(latent="rpe").values
    expected = 2.0 + w[None, :, None] * g[None, None, :] * z[:, None, None] + d[:, :, None]
    np.testing.assert_allclose(neural.values, expected, rtol=1e-12)
    assert neural.group.values.tolist() == ["rpe", "rpe", "untuned", "untuned"]


def test_drift_is_a_stationary_ar1(sim):
    _, truth = synthetic_population(sim, encode={"v": 0.1}, n_units=200, n_time=2, drift=0.5, drift_rho=0.8, rng=2)
    d = truth["drift"].values  # (trial, unit)
    assert d.std() == pytest.approx(0.5, rel=0.05)
    lag1 = np.sum(d[1:] * d[:-1]) / np.sum(d[:-1] ** 2)
    assert lag1 == pytest.approx(0.8, abs=0.02)
    _, shared = synthetic_population(sim, encode={"v": 0.1}, n_units=5, n_time=2, drift=0.5, shared_drift=1.0,
                                     rng=3)
    sd = shared["drift"].values
    np.testing.assert_allclose(sd, sd[:, :1].repeat(5, axis=1))


def test_ols_recovers_the_encoded_latent_gaussian(sim):
    neural, truth = synthetic_population(sim, encode={"v": 1.0, "rpe": 1.0}, n_units=30, n_time=8, kind="gaussian",
                                         noise_sd=1.0, rng=4)
    _, table = align(neural, sim)
    fit = ols(design_matrix(table, ["v", "rpe"]), neural)
    for name in ("v", "rpe"):
        beta = fit["beta"].sel(regressor=name)
        true = truth["weight"].sel(latent=name) * truth["kernel"]  # (unit, time): standardised columns = z
        se = fit["se"].sel(regressor=name)
        assert float(np.abs((beta - true) / se).max()) < 5.0
        assert np.corrcoef(beta.values.ravel(), true.values.ravel())[0, 1] > 0.95
        peak = int(np.argmax(truth["kernel"].values))
        tuned = truth["group"] == name
        assert float(np.abs(fit["t"].sel(regressor=name).isel(time=peak)[tuned]).min()) > 8.0
    null_t = fit["t"].sel(regressor=["v", "rpe"]).where(truth["group"] == "untuned", drop=True)
    assert float((np.abs(null_t) > 1.96).mean()) < 0.15  # ~5% expected without drift


def test_ols_and_glm_recover_the_encoded_latent_poisson(sim):
    neural, truth = synthetic_population(sim, encode={"v": 0.5}, n_units=20, n_time=7, kind="poisson",
                                         baseline=40.0, bin_width_s=0.05, rng=5)
    _, table = align(neural, sim)
    X = design_matrix(table, ["v", "rpe"])
    fit = ols(X, neural)
    peak = int(np.argmax(truth["kernel"].values))
    tuned = (truth["group"] == "v").values
    t_peak = fit["t"].sel(regressor="v").isel(time=peak).values
    assert np.abs(t_peak[tuned]).min() > 5.0
    assert np.abs(t_peak[~tuned]).max() < 4.0
    w = truth["weight"].sel(latent="v").values
    assert np.corrcoef(fit["beta"].sel(regressor="v").isel(time=peak).values, w)[0, 1] > 0.9
    glm = poisson_glm(X, neural.isel(time=[peak]), cv=None)
    coef = glm["coef"].sel(regressor="v").isel(time=0).values  # log-rate per SD: the generating weight
    tol = 4.5 / np.sqrt(400 * 40.0 * 0.05)  # 4.5 SE of a log-rate coefficient at ~2 spikes per bin
    np.testing.assert_allclose(coef[tuned], w[tuned] * truth["kernel"].values[peak], atol=tol)
    np.testing.assert_allclose(coef[~tuned], 0.0, atol=tol)
    np.testing.assert_allclose(glm["coef"].sel(regressor="intercept").values, np.log(40.0), atol=tol)


def test_errors(sim):
    with pytest.raises(ValueError, match="no variable 'nope'"):
        synthetic_population(sim, encode={"nope": 1.0})
    with pytest.raises(ValueError, match="kind"):
        synthetic_population(sim, encode={"v": 1.0}, kind="gamma")
    with pytest.raises(ValueError, match="subject 9"):
        synthetic_population(sim, encode={"v": 1.0}, subject=9)
    with pytest.raises(ValueError, match="cannot hold"):
        synthetic_population(sim, encode={"v": 1.0, "rpe": 1.0}, n_units=2)
