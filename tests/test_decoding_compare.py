"""Latent comparison (decoding.md §6) and decoding plots (neurorl.plotting.decoding)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import neurorl as nr  # noqa: E402
from neurorl.decoding import synthetic_population  # noqa: E402
from neurorl.decoding.compare import compare_latents, cv_r2_designs  # noqa: E402
from neurorl.decoding.cv import BlockedKFold  # noqa: E402
from neurorl.decoding.decoders import decode, temporal_generalization  # noqa: E402
from neurorl.decoding.nulls import cluster_mass, pseudosession_latents  # noqa: E402
from neurorl.plotting.decoding import (  # noqa: E402
    plot_temporal_generalization, plot_time_course, plot_unit_comparison,
)

PARAMS = {"alpha": 0.3, "beta": 3.0}


def _hand_cv_r2(X, y, folds):
    """Plain loop: least squares per training fold, pooled out-of-fold R²."""
    y = np.asarray(y, float)
    pred = np.empty_like(y)
    for tr, te in folds:
        w, *_ = np.linalg.lstsq(X[tr], y[tr], rcond=None)
        pred[te] = X[te] @ w
    return 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)


def test_cv_r2_designs_matches_plain_loop():
    rng = np.random.default_rng(0)
    n = 90
    D = np.stack([np.c_[np.ones(n), rng.normal(size=(n, 2))] for _ in range(3)])
    Y = rng.normal(size=(n, 4)) + D[0, :, 1:2]
    folds = list(BlockedKFold(3, gap=2).split(np.zeros(n)))
    got = cv_r2_designs(D, Y, folds)
    for k in range(3):
        for j in range(4):
            assert got[k, j] == pytest.approx(_hand_cv_r2(D[k], Y[:, j], folds), rel=1e-10)


@pytest.fixture(scope="module")
def session():
    rng = np.random.default_rng(5)
    T = 400
    sim = nr.simulate("q_learning", "mouse_bandit", n_trials=T, params=PARAMS, rng=rng)
    # units tuned to v (30) and drift-only units (30)
    neural, truth = synthetic_population(sim.latents, encode={"v": 0.4}, n_units=60, n_time=6, drift=0.3, rng=rng)
    null = pseudosession_latents("q_learning", "mouse_bandit", PARAMS, n=60, n_trials=T, rng=rng)
    return sim, neural, truth, null


def test_compare_latents_scores_are_paired_hand_cv_r2(session):
    sim, neural, truth, _ = session
    lat = sim.latents.isel(subject=0)
    cv = BlockedKFold(4)
    res = compare_latents(neural, lat, ("v", "rpe"), cv=cv)
    Y = neural.sum("time").values
    folds = list(cv.split(Y))
    for c in ("v", "rpe"):
        x = lat[c].values
        X = np.c_[np.ones(x.size), (x - x.mean()) / x.std()]
        for u in (0, 31, 59):
            assert float(res["score"].sel(candidate=c, unit=u)) == pytest.approx(_hand_cv_r2(X, Y[:, u], folds),
                                                                                 rel=1e-9)
    np.testing.assert_allclose(res["difference"].sel(pair="v-rpe").values,
                               (res["score"].sel(candidate="v") - res["score"].sel(candidate="rpe")).values)
    r = np.corrcoef(lat["v"], lat["rpe"])[0, 1]
    assert float(res["correlation"].sel(candidate="v", candidate_b="rpe")) == pytest.approx(r)
    np.testing.assert_allclose(res["vif"].values, 1 / (1 - r**2))
    assert "p" not in res  # no null given


def test_compare_latents_recovers_ground_truth_with_calibrated_null(session):
    sim, neural, truth, null = session
    res = compare_latents(neural, sim.latents, ("v", "rpe"), null_latents=null, subject=0)
    tuned = truth["group"].values == "v"
    assert np.mean(res["best"].values[tuned] == "v") > 0.8
    assert np.mean(res["p"].sel(candidate="v").values[tuned] <= 0.05) > 0.5
    assert float(res["population_diff"].sel(pair="v-rpe")) > 0
    assert float(res["p_population"].sel(pair="v-rpe")) <= 1 / 61 + 1e-12  # beyond every pseudosession
    assert float(res["p_population_score"].sel(candidate="v")) <= 1 / 61 + 1e-12
    # p of the population difference, centred on the null mean (two-sided), by hand
    obs = float(res["population_diff"].sel(pair="v-rpe"))
    nd = res["null_population_diff"].sel(pair="v-rpe").values
    hand = (1 + np.sum(np.abs(nd - nd.mean()) >= abs(obs - nd.mean()))) / (1 + nd.size)
    assert float(res["p_population"].sel(pair="v-rpe")) == pytest.approx(hand)
    np.testing.assert_allclose(res["excess"].values, (res["score"] - res["null_score"].mean("draw")).values)
    assert res["null_score"].dims == ("draw", "candidate", "unit")


def test_compare_latents_time_resolved_and_three_candidates(session):
    sim, neural, _, null = session
    res = compare_latents(neural, sim.latents.isel(subject=0), ("v", "rpe", "entropy"), null_latents=null,
                          time="resolved", cv=3)
    assert res["score"].dims == ("candidate", "unit", "time")
    assert list(res["pair"].values) == ["v-rpe", "v-entropy", "rpe-entropy"]
    assert res["p_population"].dims == ("pair", "time") and res["best"].dims == ("unit", "time")


def test_compare_latents_matches_trials_by_label(session):
    sim, neural, _, _ = session
    lat = sim.latents.isel(subject=0)
    sub = neural.isel(trial=slice(10, 300))  # neural data for a subset of the trials
    res = compare_latents(sub, lat, ("v", "rpe"))
    ref = compare_latents(sub, lat.isel(trial=slice(10, 300)), ("v", "rpe"))
    np.testing.assert_allclose(res["score"].values, ref["score"].values)
    with pytest.raises(ValueError, match="not in the behavioural data"):
        compare_latents(neural, lat.isel(trial=slice(0, 200)), ("v", "rpe"))
    with pytest.raises(ValueError, match="candidates repeat"):
        compare_latents(neural, lat, ("v", "v"))
    with pytest.raises(ValueError, match="null sessions have 10 trials"):
        compare_latents(neural, lat, ("v", "rpe"), null_latents=lat.isel(trial=slice(0, 10)).expand_dims(draw=2))


def test_compare_latents_nuisance_is_kept(session):
    sim, neural, _, _ = session
    lat = sim.latents.isel(subject=0)
    choice = sim.trials["choice"].isel(subject=0)
    res = compare_latents(neural, lat, ("v", "rpe"), nuisance={"choice": choice}, cv=BlockedKFold(4))
    Y = neural.sum("time").values
    folds = list(BlockedKFold(4).split(Y))
    c = choice.values.astype(float)
    x = lat["v"].values
    X = np.c_[np.ones(x.size), (c - c.mean()) / c.std(), (x - x.mean()) / x.std()]
    assert float(res["score"].sel(candidate="v", unit=3)) == pytest.approx(_hand_cv_r2(X, Y[:, 3], folds), rel=1e-9)


# ------------------------------------------------------------------ plots
def test_plots_return_axes(session):
    sim, neural, truth, null = session
    lat = sim.latents.isel(subject=0)
    target = xr.DataArray(np.column_stack([lat["v"].values, null["v"].values[:19].T]), dims=("trial", "draw"),
                          coords={"trial": lat["trial"].values})
    res = decode(neural, target, time="resolved", cv=3)
    score, nulls = res["score"].isel(draw=0), res["score"].isel(draw=slice(1, None))
    clusters = cluster_mass(score, nulls, threshold=nulls.quantile(0.95, "draw").values)
    ax = plot_time_course(score, nulls, significant=clusters, chance=0.0)
    assert isinstance(ax, plt.Axes) and len(ax.lines) >= 2
    tg = temporal_generalization(neural.isel(time=slice(0, 4)), lat["v"], cv=3)
    ax2 = plot_temporal_generalization(tg, significant=tg.values > 0.1)
    assert isinstance(ax2, plt.Axes) and ax2.get_xlabel() == "test time"
    cmp_ = compare_latents(neural, lat, ("v", "rpe"), null_latents=null)
    ax3 = plot_unit_comparison(cmp_, groups=truth["group"].values)
    assert isinstance(ax3, plt.Axes) and "null mean" in ax3.get_xlabel()
    ax4 = plot_unit_comparison(np.arange(5.0), np.arange(5.0)[::-1], significant=[1, 0, 1, 0, 1])
    assert isinstance(ax4, plt.Axes)
    with pytest.raises(ValueError, match="give score_b"):
        plot_unit_comparison(np.arange(3.0))
    plt.close("all")


def test_compare_latents_null_batches_are_stored_and_resumed(session, tmp_path):
    sim, neural, truth, null = session
    kw = dict(null_latents=null, subject=0, batch_size=16)
    ref = compare_latents(neural, sim.latents, ("v", "rpe"), **kw)
    stored = compare_latents(neural, sim.latents, ("v", "rpe"), store=tmp_path / "nulls", **kw)
    files = sorted((tmp_path / "nulls").glob("unit-*.nc"))
    assert len(files) == -(-null.sizes["draw"] // 16)  # one unit per batch of 16 draws
    files[1].unlink()  # as if the run had stopped before this batch finished
    resumed = compare_latents(neural, sim.latents, ("v", "rpe"), store=tmp_path / "nulls", **kw)
    for res in (stored, resumed):
        np.testing.assert_array_equal(res["null_score"].values, ref["null_score"].values)
        np.testing.assert_array_equal(res["p"].values, ref["p"].values)
