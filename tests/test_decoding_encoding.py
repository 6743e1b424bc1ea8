"""Encoding models: design matrix, mass-univariate OLS (vs statsmodels), CPD, nulls, CV R^2, Poisson GLM."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import statsmodels.api as sm
import xarray as xr
from scipy import optimize, special

from neurorl.decoding import cv_r2, design_matrix, make_neural, ols, ols_null, ols_stat, poisson_glm

N_TRIALS = 80


@pytest.fixture(scope="module")
def table():
    """A one-subject table on trial labels 200..279 with scalar and per-action latents and nuisances."""
    rng = np.random.default_rng(0)
    labels = np.arange(200, 200 + N_TRIALS)
    walk = np.cumsum(rng.normal(size=N_TRIALS)) * 0.1
    return xr.Dataset(
        {"v": ("trial", walk + rng.normal(0, 0.3, N_TRIALS)),
         "rpe": ("trial", rng.normal(size=N_TRIALS)),
         "q": (("trial", "action"), rng.normal(size=(N_TRIALS, 2))),
         "choice": ("trial", rng.integers(0, 2, N_TRIALS)),
         "reward": ("trial", rng.integers(0, 2, N_TRIALS).astype(float))},
        coords={"trial": labels, "action": [0, 1]},
    )


@pytest.fixture(scope="module")
def X(table):
    return design_matrix(table, ["v", "rpe", ("q", 1)], nuisance=["choice", "reward"])


@pytest.fixture(scope="module")
def Y(X):
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.5, (X.sizes["regressor"], 4, 3))
    mean = np.einsum("ip,put->iut", X.values, w)
    return make_neural(mean + rng.normal(0, 1.0, mean.shape), trials=X.trial.values, kind="rate",
                       units=["u0", "u1", "u2", "u3"], times=[0.1, 0.2, 0.3])


# ----------------------------------------------------------------------------- design matrix
def test_design_matrix_columns_and_standardisation(table, X):
    assert X.dims == ("trial", "regressor")
    assert X.regressor.values.tolist() == ["intercept", "v", "rpe", "q[1]", "choice", "reward"]
    assert X.role.values.tolist() == ["intercept", "latent", "latent", "latent", "nuisance", "nuisance"]
    np.testing.assert_array_equal(X.trial.values, table.trial.values)
    q1 = table["q"].values[:, 1]
    np.testing.assert_allclose(X.sel(regressor="q[1]").values, (q1 - q1.mean()) / q1.std(), rtol=1e-12)
    np.testing.assert_allclose(X.sel(regressor="intercept").values, 1.0)
    same = design_matrix(table, ["q[1]"])  # the string form of a per-action column
    np.testing.assert_array_equal(same.sel(regressor="q[1]").values, X.sel(regressor="q[1]").values)
    raw = design_matrix(table, ["v"], standardize=False, intercept=False)
    np.testing.assert_array_equal(raw.values[:, 0], table["v"].values)


def test_design_matrix_nuisance_arrays_are_matched_by_label(table):
    drift = xr.DataArray(np.arange(N_TRIALS, dtype=float), dims="trial", coords={"trial": table.trial.values})
    shuffled = drift.isel(trial=np.random.default_rng(2).permutation(N_TRIALS))
    Xa = design_matrix(table, ["v"], nuisance={"trial_no": shuffled}, standardize=False)
    np.testing.assert_array_equal(Xa.sel(regressor="trial_no").values, np.arange(N_TRIALS))
    with pytest.raises(ValueError, match="trial labels do not match"):
        design_matrix(table, ["v"], nuisance={"trial_no": drift.assign_coords(trial=drift.trial + 1)})


def test_design_matrix_errors(table):
    with pytest.raises(ValueError, match=r"'q' has dims \('trial', 'action'\)"):
        design_matrix(table, ["q"])
    bad = table.assign(v=table["v"].where(table.trial != 205))
    with pytest.raises(ValueError, match="'v' is nan on trial 205"):
        design_matrix(bad, ["v"])
    with pytest.raises(ValueError, match="constant"):
        design_matrix(table.assign(c=("trial", np.ones(N_TRIALS))), ["c"])
    with pytest.raises(ValueError, match="no variable 'w'"):
        design_matrix(table, ["w"])
    relabelled = table.assign(trial_index=("trial", table.trial.values + 1))  # positions are not labels
    with pytest.raises(ValueError, match="align"):
        design_matrix(relabelled, ["v"])


# ----------------------------------------------------------------------------- OLS
def test_ols_agrees_with_statsmodels(X, Y):
    fit = ols(X, Y)
    assert fit["beta"].dims == ("regressor", "unit", "time")
    for u in Y.unit.values:
        for t in Y.time.values:
            ref = sm.OLS(Y.sel(unit=u, time=t).values, X.values).fit()
            cell = fit.sel(unit=u, time=t)
            np.testing.assert_allclose(cell["beta"].values, ref.params, rtol=1e-8, atol=1e-12)
            np.testing.assert_allclose(cell["se"].values, ref.bse, rtol=1e-8)
            np.testing.assert_allclose(cell["t"].values, ref.tvalues, rtol=1e-8)
            np.testing.assert_allclose(cell["p"].values, ref.pvalues, rtol=1e-8, atol=1e-300)
            np.testing.assert_allclose(float(cell["sse"]), ref.ssr, rtol=1e-10)
            np.testing.assert_allclose(float(cell["r2"]), ref.rsquared, rtol=1e-8)
    assert fit.attrs["dof"] == N_TRIALS - 6


def test_cpd_equals_reduced_model_definition(X, Y):
    """CPD_i = (SSE(X_-i) - SSE(X)) / SSE(X_-i), with the reduced models fitted by lstsq."""
    fit = ols(X, Y)
    Xv = X.values
    Ym = Y.values.reshape(N_TRIALS, -1)
    sse_full = ((Ym - Xv @ np.linalg.lstsq(Xv, Ym, rcond=None)[0]) ** 2).sum(0)
    for i, name in enumerate(X.regressor.values):
        Xr = np.delete(Xv, i, axis=1)
        sse_red = ((Ym - Xr @ np.linalg.lstsq(Xr, Ym, rcond=None)[0]) ** 2).sum(0)
        ref = ((sse_red - sse_full) / sse_red).reshape(4, 3)
        np.testing.assert_allclose(fit["cpd"].sel(regressor=name).values, ref, rtol=1e-8, atol=1e-14)


def test_ols_aligns_by_trial_label(X, Y):
    fit = ols(X, Y)
    shuffled = X.isel(trial=np.random.default_rng(3).permutation(N_TRIALS))
    xr.testing.assert_allclose(ols(shuffled, Y), fit, rtol=1e-12)
    with pytest.raises(ValueError, match=r"missing \[279\]"):
        ols(X.isel(trial=slice(0, -1)), Y)


def test_ols_rank_deficient_and_constant_targets(table, X, Y):
    v2 = {"v2": table["v"].values * 2.0 + 1.0}
    with pytest.raises(ValueError, match=r"rank-deficient.*\['v', 'v2'\]"):  # equal after z-scoring
        ols(design_matrix(table, ["v", "rpe"], nuisance=v2), Y)
    with pytest.raises(ValueError, match=r"rank-deficient.*\['intercept', 'v', 'v2'\]"):
        ols(design_matrix(table, ["v", "rpe"], nuisance=v2, standardize=False), Y)
    flat = Y.copy(data=np.where(Y.unit.values[None, :, None] == "u0", 3.0, Y.values))
    fit = ols(X, flat)
    assert np.isnan(fit["t"].sel(unit="u0", regressor="v")).all()
    assert np.isnan(fit["cpd"].sel(unit="u0", regressor="v")).all()
    assert np.isnan(fit["r2"].sel(unit="u0")).all()
    assert np.isfinite(fit["t"].sel(unit="u1")).all()
    assert np.isnan(ols_stat(X, flat, "v").sel(unit="u0")).all()
    assert np.isnan(ols_null(X, flat, "v", np.random.default_rng(0).normal(size=(2, N_TRIALS))).sel(unit="u0")).all()
    assert np.isnan(cv_r2(X, flat).sel(unit="u0")).all()


def test_ols_stat_matches_ols(X, Y):
    fit = ols(X, Y)
    for stat in ("cpd", "t", "beta"):
        got = ols_stat(X, Y, "rpe", stat=stat)
        np.testing.assert_allclose(got.values, fit[stat].sel(regressor="rpe").values, rtol=1e-9, atol=1e-14)
    both = ols_stat(X, Y, ["v", "q[1]"], stat="t")
    np.testing.assert_allclose(both.values, fit["t"].sel(regressor=["v", "q[1]"]).values, rtol=1e-9)


def test_ols_null_matches_a_refit_loop(X, Y):
    rng = np.random.default_rng(4)
    draws = rng.normal(size=(7, N_TRIALS)) * 3 + 1  # unstandardised: ols_null z-scores them as X's v was
    null = ols_null(X, Y, "v", draws, stat="cpd", chunk=3)
    tnull = ols_null(X, Y, "v", draws, stat="t")
    Ym = Y.values.reshape(N_TRIALS, -1)
    i = 1
    for d in range(7):
        Xd = X.values.copy()
        Xd[:, i] = (draws[d] - draws[d].mean()) / draws[d].std()
        b = np.linalg.lstsq(Xd, Ym, rcond=None)[0]
        sse = ((Ym - Xd @ b) ** 2).sum(0)
        Xr = np.delete(Xd, i, axis=1)
        sse_r = ((Ym - Xr @ np.linalg.lstsq(Xr, Ym, rcond=None)[0]) ** 2).sum(0)
        np.testing.assert_allclose(null.values[d].ravel(), (sse_r - sse) / sse_r, rtol=1e-8, atol=1e-13)
        se = np.sqrt(sse / (N_TRIALS - 6) * np.linalg.inv(Xd.T @ Xd)[i, i])
        np.testing.assert_allclose(tnull.values[d].ravel(), b[i] / se, rtol=1e-8)
    labelled = xr.DataArray(draws, dims=("pseudo", "trial"), coords={"trial": X.trial.values, "pseudo": np.arange(7)})
    perm = np.random.default_rng(5).permutation(N_TRIALS)
    np.testing.assert_allclose(ols_null(X, Y, "v", labelled.isel(trial=perm)).values, null.values, rtol=1e-10)


# ----------------------------------------------------------------------------- cross-validated R^2
def test_cv_r2_matches_a_plain_kfold_loop(X, Y):
    Xv, Ym = X.values, Y.values.reshape(N_TRIALS, -1)
    pred = np.empty_like(Ym)
    for te in np.array_split(np.arange(N_TRIALS), 4):  # contiguous blocks
        tr = np.setdiff1d(np.arange(N_TRIALS), te)
        pred[te] = Xv[te] @ np.linalg.lstsq(Xv[tr], Ym[tr], rcond=None)[0]
    ref = 1 - ((Ym - pred) ** 2).sum(0) / ((Ym - Ym.mean(0)) ** 2).sum(0)
    got = cv_r2(X, Y, cv=4)
    np.testing.assert_allclose(got.values.ravel(), ref, rtol=1e-9)
    assert got.dims == ("unit", "time")


class _GapFolds:
    """Contiguous test blocks; `gap` trials each side of the test block left out of training."""

    def __init__(self, k, gap):
        self.k, self.gap = k, gap

    def split(self, X, y=None, groups=None):
        n = len(X)
        for te in np.array_split(np.arange(n), self.k):
            keep = (np.arange(n) < te[0] - self.gap) | (np.arange(n) > te[-1] + self.gap)
            yield np.flatnonzero(keep), te


def test_cv_r2_with_a_splitter_and_errors(X, Y):
    Xv, Ym = X.values, Y.values.reshape(N_TRIALS, -1)
    pred = np.empty_like(Ym)
    for tr, te in _GapFolds(5, 3).split(Xv):
        pred[te] = Xv[te] @ np.linalg.lstsq(Xv[tr], Ym[tr], rcond=None)[0]
    ref = 1 - ((Ym - pred) ** 2).sum(0) / ((Ym - Ym.mean(0)) ** 2).sum(0)
    got, oof = cv_r2(X, Y, cv=_GapFolds(5, 3), return_predictions=True)
    np.testing.assert_allclose(got.values.ravel(), ref, rtol=1e-9)
    np.testing.assert_allclose(oof.values.reshape(N_TRIALS, -1), pred, rtol=1e-9)

    class Overlapping:
        def split(self, X, y=None, groups=None):
            yield np.arange(40, 80), np.arange(0, 50)
            yield np.arange(0, 40), np.arange(40, 80)

    with pytest.raises(ValueError, match="overlap"):
        cv_r2(X, Y, cv=Overlapping())


# ----------------------------------------------------------------------------- Poisson GLM
@pytest.fixture(scope="module")
def counts(X):
    rng = np.random.default_rng(6)
    w = np.zeros((X.sizes["regressor"], 3, 2))
    w[0] = np.log(8.0)  # 8 Hz baseline
    w[1:3] = rng.normal(0, 0.3, (2, 3, 2))
    eta = np.einsum("ip,put->iut", X.values, w) + np.log(0.1)
    return make_neural(rng.poisson(np.exp(eta)), trials=X.trial.values, bin_width_s=0.1, times=[0.05, 0.15])


def _sm_poisson(y, Xv, bw):
    return sm.GLM(y, Xv, family=sm.families.Poisson(), offset=np.full(len(y), np.log(bw))).fit(tol=1e-13,
                                                                                                maxiter=200)


def test_poisson_glm_agrees_with_statsmodels(X, counts):
    res = poisson_glm(X, counts, cv=None)
    assert res.attrs["scores"] == "in-sample" and bool(res["converged"].all())
    for u in counts.unit.values:
        for t in counts.time.values:
            y = counts.sel(unit=u, time=t).values.astype(float)
            ref = _sm_poisson(y, X.values, 0.1)
            cell = res.sel(unit=u, time=t)
            np.testing.assert_allclose(cell["coef"].values, ref.params, rtol=1e-6, atol=1e-7)
            np.testing.assert_allclose(float(cell["ll"]), ref.llf, rtol=1e-9)
            np.testing.assert_allclose(float(cell["ll_null"]), ref.llnull, rtol=1e-7)
            np.testing.assert_allclose(float(cell["pseudo_r2"]), 1 - ref.llf / ref.llnull, rtol=1e-6)
            np.testing.assert_allclose(float(cell["deviance_explained"]), 1 - ref.deviance / ref.null_deviance,
                                       rtol=1e-6)
            bits = (ref.llf - ref.llnull) / (y.sum() * np.log(2))
            np.testing.assert_allclose(float(cell["bits_per_spike"]), bits, rtol=1e-6)


def test_poisson_glm_held_out_scores_match_fold_by_fold_refits(X, counts):
    res = poisson_glm(X, counts, cv=4)
    Xv = X.values
    for u in counts.unit.values[:2]:
        y = counts.sel(unit=u, time=0.15).values.astype(float)
        mu = np.empty_like(y)
        for te in np.array_split(np.arange(N_TRIALS), 4):
            tr = np.setdiff1d(np.arange(N_TRIALS), te)
            mu[te] = 0.1 * np.exp(Xv[te] @ _sm_poisson(y[tr], Xv[tr], 0.1).params)
        ll = np.sum(y * np.log(mu) - mu - special.gammaln(y + 1))
        m0 = y.mean()
        ll0 = np.sum(y * np.log(m0) - m0 - special.gammaln(y + 1))
        cell = res.sel(unit=u, time=0.15)
        np.testing.assert_allclose(float(cell["ll"]), ll, rtol=1e-7)
        np.testing.assert_allclose(float(cell["bits_per_spike"]), (ll - ll0) / (y.sum() * np.log(2)), rtol=1e-5)
        np.testing.assert_allclose(float(cell["pseudo_r2"]), 1 - ll / ll0, rtol=1e-5)


def test_poisson_glm_l2_solution_satisfies_its_optimality_conditions(X, counts):
    lam = 0.05
    res = poisson_glm(X, counts, l2=lam, cv=None)
    Xv = X.values
    for u in counts.unit.values:
        y = counts.sel(unit=u, time=0.05).values.astype(float)
        w = res["coef"].sel(unit=u, time=0.05).values
        mu = 0.1 * np.exp(Xv @ w)
        grad = Xv.T @ (mu - y) / N_TRIALS + lam * np.r_[0.0, w[1:]]  # intercept unpenalised
        np.testing.assert_allclose(grad, 0.0, atol=1e-9)
        unpen = poisson_glm(X, counts, cv=None)["coef"].sel(unit=u, time=0.05).values
        assert np.linalg.norm(w[1:]) < np.linalg.norm(unpen[1:])


def test_poisson_glm_chooses_l2_by_inner_cv(X, counts):
    """The chosen penalty maximises the pooled inner held-out LL (reference fits by scipy BFGS per target)."""
    grid = [1e-3, 0.3, 3.0]
    sub = counts.isel(unit=[0], time=[0])
    res = poisson_glm(X, sub, l2=grid, cv=None, inner_cv=3)
    Xv = X.values
    y = sub.values[:, 0, 0].astype(float)

    def fit(Xt, yt, lam):
        pen = np.r_[0.0, np.ones(Xt.shape[1] - 1)]

        def f(w):
            eta = Xt @ w + np.log(0.1)
            return (np.exp(eta) - yt * eta).mean() + 0.5 * lam * np.sum(pen * w**2)

        def g(w):
            return Xt.T @ (0.1 * np.exp(Xt @ w) - yt) / len(yt) + lam * pen * w

        return optimize.minimize(f, np.r_[np.log(yt.mean() / 0.1), np.zeros(Xt.shape[1] - 1)], jac=g,
                                 method="BFGS", options={"gtol": 1e-10}).x

    scores = []
    for lam in grid:
        s = 0.0
        for te in np.array_split(np.arange(N_TRIALS), 3):
            tr = np.setdiff1d(np.arange(N_TRIALS), te)
            mu = 0.1 * np.exp(Xv[te] @ fit(Xv[tr], y[tr], lam))
            s += np.sum(y[te] * np.log(mu) - mu)
        scores.append(s)
    best = grid[int(np.argmax(scores))]
    assert float(res["l2"].squeeze()) == best
    np.testing.assert_allclose(res["coef"].squeeze().values, fit(Xv, y, best), rtol=1e-5, atol=1e-6)


def test_poisson_glm_silent_targets_are_nan_with_a_warning(X, counts):
    data = counts.values.copy()
    data[:, 0, 0] = 0
    silent = counts.copy(data=data)
    with pytest.warns(UserWarning, match="no spikes"):
        res = poisson_glm(X, silent, cv=None)
    assert np.isnan(res["coef"].isel(unit=0, time=0)).all()
    assert np.isnan(res["bits_per_spike"].isel(unit=0, time=0))
    assert np.isfinite(res["coef"].isel(unit=1)).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        poisson_glm(X, counts.isel(unit=[1]), cv=None)
    with pytest.raises(ValueError, match="non-negative integers"):
        poisson_glm(X, counts.copy(data=counts.values - 1).astype(float), cv=None)
