"""Nested-CV decoders, time-resolved decoding and temporal generalisation (neurorl.decoding.decoders; §3)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import KFold, ShuffleSplit, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_estimator

from neurorl.decoding.cv import BlockedKFold, GroupBlockedKFold
from neurorl.decoding.decoders import LogisticDecoder, RidgeDecoder, decode, temporal_generalization


def _data(n=120, p=8, seed=0, noise=1.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 3.0, p) + rng.normal(size=p)
    w = rng.normal(size=p)
    y = X @ w + noise * rng.normal(size=n)
    return X, y


def _sk_ridge(Xtr, ytr, Xte, alpha):
    """Independent reference: StandardScaler + sklearn Ridge."""
    sc = StandardScaler().fit(Xtr)
    return Ridge(alpha=alpha).fit(sc.transform(Xtr), ytr).predict(sc.transform(Xte))


# ------------------------------------------------------------------ ridge
def test_ridge_decoder_inner_cv_choice_and_fit_match_sklearn():
    X, y = _data(noise=6.0)
    alphas = [0.01, 1.0, 30.0, 1000.0]
    dec = RidgeDecoder(alphas=alphas, inner_cv=4).fit(X, y)
    # reference: pooled inner SSE per alpha with sklearn on the same contiguous folds
    sse = np.zeros(len(alphas))
    for tr, te in KFold(4).split(X):
        for i, a in enumerate(alphas):
            sse[i] += np.sum((y[te] - _sk_ridge(X[tr], y[tr], X[te], a)) ** 2)
    best = alphas[int(np.argmin(sse))]
    assert dec.alpha_ == best
    np.testing.assert_allclose(dec.cv_scores_, 1 - sse / np.sum((y - y.mean()) ** 2), rtol=1e-9)
    np.testing.assert_allclose(dec.predict(X), _sk_ridge(X, y, X, best), rtol=1e-9, atol=1e-9)
    # coefficients are in the input units: prediction = X @ coef + intercept
    np.testing.assert_allclose(X @ dec.coef_ + dec.intercept_, dec.predict(X), rtol=1e-12)


def test_ridge_decoder_dual_form_when_features_exceed_trials():
    X, y = _data(n=25, p=60, seed=3)
    dec = RidgeDecoder(alphas=[5.0]).fit(X, y)
    np.testing.assert_allclose(dec.predict(X[:7]), _sk_ridge(X, y, X[:7], 5.0), rtol=1e-8, atol=1e-10)


def test_ridge_decoder_multi_target_equals_column_by_column():
    X, y = _data(seed=4)
    rng = np.random.default_rng(5)
    Y = np.column_stack([y, rng.normal(size=y.size), y + 3 * rng.normal(size=y.size)])
    multi = RidgeDecoder().fit(X, Y)
    assert multi.coef_.shape == (3, X.shape[1]) and multi.alpha_.shape == (3,)
    for j in range(3):
        one = RidgeDecoder().fit(X, Y[:, j])
        assert one.alpha_ == multi.alpha_[j]
        np.testing.assert_allclose(multi.predict(X)[:, j], one.predict(X), rtol=1e-10, atol=1e-12)


def test_ridge_ties_choose_the_strongest_penalty():
    X = np.random.default_rng(0).normal(size=(40, 3))
    dec = RidgeDecoder(alphas=[0.1, 1.0, 10.0]).fit(X, np.ones(40))  # constant target: every alpha ties
    assert dec.alpha_ == 10.0


def test_decoders_pass_sklearn_estimator_checks():
    for est in (RidgeDecoder(alphas=[0.1, 10.0], inner_cv=3), LogisticDecoder(Cs=[0.1, 10.0], inner_cv=2)):
        results = check_estimator(est, on_fail=None, on_skip=None)
        failed = [r["check_name"] for r in results if r["status"] == "failed"]
        assert failed == [], failed


def test_clone_and_pipeline():
    X, y = _data(n=100, p=12, seed=6)
    dec = RidgeDecoder(alphas=[0.5, 5.0], inner_cv=BlockedKFold(3, gap=2))
    c = clone(dec)
    assert c is not dec and repr(c.get_params()) == repr(dec.get_params())
    pipe = make_pipeline(PCA(4), RidgeDecoder())
    scores = cross_val_score(pipe, X, y, cv=BlockedKFold(4))
    assert scores.shape == (4,) and np.all(np.isfinite(scores))
    pipe.set_params(ridgedecoder__alphas=[1.0])
    assert pipe.fit(X, y).named_steps["ridgedecoder"].alpha_ == 1.0


# ------------------------------------------------------------------ logistic
def test_logistic_decoder_matches_sklearn_reference():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(150, 5)) * [1, 2, 3, 1, 1]
    y = (X[:, 0] - 0.5 * X[:, 2] + rng.normal(size=150) > 0.7).astype(int)  # unbalanced classes
    Cs = [0.001, 0.1, 10.0]
    dec = LogisticDecoder(Cs=Cs, inner_cv=3).fit(X, y)
    pooled = {c: np.empty(150, int) for c in Cs}
    for tr, te in KFold(3).split(X):
        sc = StandardScaler().fit(X[tr])
        for c in Cs:
            lr = LogisticRegression(C=c, class_weight="balanced", max_iter=1000).fit(sc.transform(X[tr]), y[tr])
            pooled[c][te] = lr.predict(sc.transform(X[te]))
    bacc = np.array([balanced_accuracy_score(y, pooled[c]) for c in Cs])
    best = Cs[int(np.flatnonzero(bacc == bacc.max())[0])]  # ties: smallest C (strongest penalty)
    assert dec.C_ == best
    np.testing.assert_allclose(dec.cv_scores_, bacc)
    sc = StandardScaler().fit(X)
    ref = LogisticRegression(C=best, class_weight="balanced", max_iter=1000).fit(sc.transform(X), y)
    np.testing.assert_allclose(dec.predict_proba(X), ref.predict_proba(sc.transform(X)), atol=1e-5)
    np.testing.assert_array_equal(dec.predict(X), ref.predict(sc.transform(X)))


def test_logistic_decoder_one_class_error():
    with pytest.raises(ValueError, match="at least 2 classes"):
        LogisticDecoder().fit(np.zeros((10, 2)), np.ones(10))


# ------------------------------------------------------------------ decode
def _neural(n=200, units=10, T=6, seed=0, kernel=None, effect=1.0):
    """Gaussian activity encoding a smooth latent with a within-trial kernel (trial labels are not 0..n-1)."""
    rng = np.random.default_rng(seed)
    z = np.cumsum(rng.normal(size=n)) * 0.2 + np.sin(np.arange(n) / 9.0)
    z = (z - z.mean()) / z.std()
    g = np.ones(T) if kernel is None else np.asarray(kernel, float)
    w = rng.normal(size=units)
    a = effect * z[:, None, None] * w[None, :, None] * g[None, None, :] + rng.normal(size=(n, units, T))
    trials = 1000 + 3 * np.arange(n)
    neural = xr.DataArray(a, dims=("trial", "unit", "time"),
                          coords={"trial": trials, "unit": np.arange(units), "time": 0.05 * np.arange(T)})
    return neural, xr.DataArray(z, dims="trial", coords={"trial": trials})


def test_decode_pooled_equals_hand_outer_loop():
    neural, target = _neural()
    cv = BlockedKFold(5, gap=3)
    res = decode(neural, target, decoder=RidgeDecoder(alphas=[2.0]), cv=cv)
    X = neural.values.sum(axis=2)
    y = target.values
    pred = np.empty(y.size)
    for tr, te in cv.split(X):
        pred[te] = _sk_ridge(X[tr], y[tr], X[te], 2.0)
    np.testing.assert_allclose(res["prediction"].values, pred, rtol=1e-9)
    r2 = 1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)
    np.testing.assert_allclose(float(res["score"]), r2, rtol=1e-10)
    assert res["penalty"].dims == ("fold",) and res["weights"].dims == ("fold", "unit")
    assert res.attrs["metric"] == "r2"


def test_decode_aligns_target_by_trial_label():
    neural, target = _neural(seed=1)
    ref = decode(neural, target)
    shuffled = target.isel(trial=np.random.default_rng(0).permutation(target.sizes["trial"]))
    np.testing.assert_allclose(decode(neural, shuffled)["score"].values, ref["score"].values)
    with pytest.raises(ValueError, match="no value for neural trial"):
        decode(neural, target.isel(trial=slice(1, None)))
    with pytest.raises(ValueError, match="target must be"):
        decode(neural, target.values[:-1])


def test_decode_time_resolved_follows_the_kernel():
    kernel = [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    neural, target = _neural(n=240, kernel=kernel, seed=2)
    res = decode(neural, target, time="resolved")
    s = res["score"].values
    assert res["score"].dims == ("time",)
    assert np.all(s[[2, 3]] > 0.6)  # encoded bins: strong decoding
    assert np.all(s[[0, 1, 4, 5]] < 0.1)  # pure-noise bins: no more than chance
    # each bin is the pooled decoder of that bin alone
    one = decode(neural.isel(time=[3]), target)
    np.testing.assert_allclose(s[3], float(one["score"]), rtol=1e-10)


def test_decode_matrix_of_targets_equals_one_column_at_a_time():
    neural, target = _neural(seed=3)
    rng = np.random.default_rng(3)
    cols = np.column_stack([target.values, rng.permutation(target.values), rng.normal(size=target.size)])
    stacked = xr.DataArray(cols, dims=("trial", "draw"), coords={"trial": target["trial"].values})
    res = decode(neural, stacked, time="resolved")
    assert res["score"].dims == ("draw", "time")
    for j in range(3):
        one = decode(neural, cols[:, j], time="resolved")
        np.testing.assert_allclose(res["score"].values[j], one["score"].values, rtol=1e-9, atol=1e-12)


def test_decode_binary_latent_with_logistic_decoder():
    neural, target = _neural(n=200, seed=4, effect=1.5)
    binary = (target > 0).astype(int)
    res = decode(neural, binary, decoder=LogisticDecoder(Cs=[0.01, 1.0]))
    assert res.attrs["metric"] == "balanced_accuracy"
    y, pred = binary.values, res["prediction"].values
    np.testing.assert_allclose(float(res["score"]), balanced_accuracy_score(y, pred))
    assert float(res["score"]) > 0.8
    auc = decode(neural, binary, decoder=LogisticDecoder(Cs=[1.0]), metric="roc_auc")
    assert float(auc["score"]) > 0.9


def test_decode_groups_from_a_trial_coordinate():
    neural, target = _neural(n=90, seed=8)
    neural = neural.assign_coords(session=("trial", np.repeat(["a", "b", "c"], 30)))
    res = decode(neural, target, cv=GroupBlockedKFold(), groups="session")
    assert res.sizes["fold"] == 3
    np.testing.assert_array_equal(res.attrs["folds"][1], np.arange(30, 60))
    with pytest.raises(ValueError, match="not a coordinate"):
        decode(neural, target, cv=GroupBlockedKFold(), groups="block")


def test_decode_rejects_overlapping_test_sets_and_nan():
    neural, target = _neural(n=60, seed=5)
    with pytest.raises(ValueError, match="tested in more than one fold"):
        decode(neural, target, cv=ShuffleSplit(5, test_size=0.5, random_state=0))
    bad = neural.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        decode(bad, target)


def test_temporal_generalization_diagonal_and_stable_code():
    neural, target = _neural(n=200, T=5, seed=6)  # the same code at every time bin
    tg = temporal_generalization(neural, target, cv=BlockedKFold(4))
    assert tg.dims == ("train_time", "test_time") and tg.shape == (5, 5)
    diag = decode(neural, target, cv=BlockedKFold(4), time="resolved")["score"].values
    np.testing.assert_allclose(np.diag(tg.values), diag, rtol=1e-10)
    assert tg.values.min() > 0.5  # a stable code generalises across time

    kernel = [1.0, 1.0, 0.0, 0.0, 0.0]  # code only early: training late generalises nowhere
    neural2, target2 = _neural(n=200, T=5, seed=7, kernel=kernel)
    tg2 = temporal_generalization(neural2, target2).values
    assert tg2[0, 1] > 0.5 and tg2[1, 0] > 0.5
    assert np.all(tg2[2:, :] < 0.15)
