"""Decoders: neural activity -> latent (decoding.md §3).

:class:`RidgeDecoder` and :class:`LogisticDecoder` are scikit-learn estimators
(``clone``, pipelines, ``GridSearchCV``) with the penalty chosen by an *inner*
cross-validation inside ``fit``, so that :func:`decode` -- the outer
cross-validation -- is a nested cross-validation as in the IBL
prior-localization pipeline [S: int-brain-lab/prior-localization
``prior_localization/functions/decoding.py``]: the hyperparameter is scored on
the pooled inner out-of-fold predictions (R² for regression, balanced accuracy
for classes, balanced class weights), the model is refitted on the whole outer
training set, and the outer score is computed on the pooled out-of-fold
predictions. Per-fold weights and chosen penalties are kept.

:func:`decode` runs one decoder on activity summed over the given time bins
(``time="pooled"``) or one decoder per time bin (``time="resolved"``, MNE's
``SlidingEstimator``); :func:`temporal_generalization` trains at each time and
tests at every time (MNE's ``GeneralizingEstimator``) [S].

Assumptions
-----------
[A] Default outer and inner folds are contiguous blocks (:class:`BlockedKFold`
of 5), not IBL's ``KFold(5, shuffle=True)``: interleaved folds leak through
autocorrelation (decoding.md §3); pass ``cv=KFold(5, shuffle=True)`` /
``inner_cv=KFold(...)`` to reproduce IBL exactly. Either way the null must run
the identical pipeline (:mod:`neurorl.decoding.nulls`).
[A] Default ridge grid ``alphas = 10**-5 ... 10**5`` (11 values): IBL's grid
``{1e-5 ... 0.1}`` extended upward, because with standardised features the
penalty ``alpha * ||w||²`` is compared with a residual sum over hundreds of
trials and small alphas are nearly ordinary least squares.
[A] Features are z-scored with the training mean and standard deviation
(constant features are left unscaled) inside every (inner and outer) fit.
[A] Ties in the inner score choose the strongest penalty (largest alpha,
smallest C).
[A] ``time="pooled"`` sums the activity over the time bins of the array it is
given (select the analysis window with ``.sel(time=slice(a, b))`` first).
[A] The many small dense problems (one per fold, time bin and penalty) run
with single-threaded BLAS (``threadpoolctl``, restored afterwards):
multithreaded BLAS on matrices of tens of columns is several times slower,
and parallel work belongs to :mod:`neurorl.parallel` (processes or Dask workers).
[A] A :class:`RidgeDecoder` fitted on several targets (e.g. null draws) chooses
alpha per target, exactly as it would fitting each target alone; :func:`decode`
uses this to decode all columns of a target matrix in one pass.
"""

from __future__ import annotations

import contextlib
import functools
import numbers

import numpy as np
import xarray as xr
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone, is_classifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from .cv import BlockedKFold, cv_splits

__all__ = [
    "RidgeDecoder", "LogisticDecoder", "decode", "temporal_generalization", "score", "DEFAULT_ALPHAS", "DEFAULT_CS",
    "METRICS",
]

#: default ridge penalties (see the module's assumptions)
DEFAULT_ALPHAS = tuple(10.0 ** np.arange(-5, 6))
#: default inverse penalties of the logistic decoder
DEFAULT_CS = tuple(10.0 ** np.arange(-4, 5))
#: metrics understood by :func:`decode` and :func:`score`
METRICS = ("r2", "pearson", "balanced_accuracy", "accuracy", "roc_auc")


# ------------------------------------------------------------------ helpers
_BLAS_DEPTH = [0]


@contextlib.contextmanager
def single_threaded_blas():
    """Run the enclosed small linear algebra with one BLAS thread (re-entrant; cheap when nested)."""
    if _BLAS_DEPTH[0]:
        _BLAS_DEPTH[0] += 1
        try:
            yield
        finally:
            _BLAS_DEPTH[0] -= 1
        return
    from threadpoolctl import threadpool_limits

    _BLAS_DEPTH[0] += 1
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield
    finally:
        _BLAS_DEPTH[0] -= 1


def with_single_threaded_blas(func):
    """Decorator: run ``func`` inside :func:`single_threaded_blas`."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return func(*args, **kwargs)

    return wrapper


def _grid(values, default, name, owner):
    g = np.asarray(default if values is None else values, float).ravel()
    if g.size == 0 or not np.all(np.isfinite(g)) or np.any(g <= 0):
        raise ValueError(f"{owner}: {name} must be a non-empty list of positive finite numbers, got {values!r}")
    return np.unique(g)  # sorted ascending, duplicates removed


def _inner_splits(inner_cv, n, owner):
    """Inner folds; an int is clipped to the number of samples (at least 2)."""
    if n < 2:
        raise ValueError(f"{owner}: inner cross-validation needs at least 2 samples, got {n} sample")
    if inner_cv is None or (isinstance(inner_cv, numbers.Integral) and not isinstance(inner_cv, bool)):
        k = 5 if inner_cv is None else int(inner_cv)
        if k < 2:
            raise ValueError(f"{owner}: inner_cv must be >= 2 folds, got {k}")
        return cv_splits(BlockedKFold(min(k, n)), n, owner=owner)
    return cv_splits(inner_cv, n, owner=owner)


def _scaler(X, standardize):
    mu = X.mean(axis=0)
    if standardize:
        sd = X.std(axis=0)
        sd = np.where(sd > 1e-12 * (1.0 + np.abs(mu)), sd, 1.0)
    else:
        sd = np.ones(X.shape[1])
    return mu, sd


def _ridge_basis(Xc, Yc):
    """Eigen-basis of a centred ridge problem: ``coef(alpha) = M @ (Q / (lam + alpha)[:, None])``.

    Primal form (n >= p): ``Xc^T Xc = V diag(lam) V^T``, ``M = V``, ``Q = V^T Xc^T Yc``.
    Dual form (n < p): ``Xc Xc^T = W diag(lam) W^T``, ``M = Xc^T W``, ``Q = W^T Yc``.
    A symmetric eigendecomposition of the small Gram matrix is several times
    faster than an SVD of ``Xc`` and exact enough for ``alpha > 0``.
    """
    n, p = Xc.shape
    if n >= p:
        lam, V = np.linalg.eigh(Xc.T @ Xc)
        return V, np.maximum(lam, 0.0), V.T @ (Xc.T @ Yc)
    lam, W = np.linalg.eigh(Xc @ Xc.T)
    return Xc.T @ W, np.maximum(lam, 0.0), W.T @ Yc


def _ridge_path(Xtr, Ytr, Xte, alphas, standardize):
    """Ridge predictions on ``Xte`` for every alpha: array (n_alphas, n_test, n_targets)."""
    mu, sd = _scaler(Xtr, standardize)
    ym = Ytr.mean(axis=0)
    M, lam, Q = _ridge_basis((Xtr - mu) / sd, Ytr - ym)
    P = ((Xte - mu) / sd) @ M
    f = 1.0 / (lam[None, :] + alphas[:, None])  # (n_alphas, r)
    return np.einsum("tr,ar,rk->atk", P, f, Q) + ym


def _pick_best(score, larger_is_stronger: bool):
    """Index of the best grid value per column; ties go to the strongest penalty.

    ``score`` is (n_grid, n_targets) with higher = better and the grid sorted
    ascending; ``larger_is_stronger`` says whether the last grid value is the
    strongest penalty (alpha) or the weakest (C).
    """
    score = np.where(np.isnan(score), -np.inf, score)
    if larger_is_stronger:
        return score.shape[0] - 1 - np.argmax(score[::-1], axis=0)
    return np.argmax(score, axis=0)


# ------------------------------------------------------------------ ridge
class RidgeDecoder(RegressorMixin, BaseEstimator):
    """Ridge regression with the penalty chosen by inner cross-validation.

    Parameters
    ----------
    alphas : sequence of float, optional
        Penalty grid (default :data:`DEFAULT_ALPHAS`). The objective is
        ``||y - X_std w - b||² + alpha ||w||²`` on standardised features.
    inner_cv : int or splitter, default 5
        Inner folds used to choose alpha: an int k means ``BlockedKFold(k)``
        (clipped to the number of samples); any scikit-learn splitter works.
    standardize : bool, default True
        Z-score features with the training mean and standard deviation.

    Attributes
    ----------
    alpha_ : float or ndarray (n_targets,)
        Chosen penalty (per target for 2-D ``y``).
    coef_ : ndarray (n_features,) or (n_targets, n_features)
        Weights in the units of the input features.
    intercept_ : float or ndarray (n_targets,)
    cv_scores_ : ndarray (n_alphas,) or (n_alphas, n_targets)
        Inner pooled out-of-fold R² of every alpha (NaN when a single alpha is given).
    alphas_ : ndarray
        The sorted grid.
    n_features_in_ : int
    """

    def __init__(self, alphas=None, inner_cv=5, standardize: bool = True):
        self.alphas = alphas
        self.inner_cv = inner_cv
        self.standardize = standardize

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def fit(self, X, y):
        """Choose alpha by inner cross-validation, then fit on all of ``X``.

        Returns
        -------
        self
        """
        with single_threaded_blas():
            return self._fit(X, y)

    def _fit(self, X, y):
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, dtype=np.float64)
        one = y.ndim == 1
        Y = y[:, None] if one else y
        n, k = Y.shape
        alphas = _grid(self.alphas, DEFAULT_ALPHAS, "alphas", "RidgeDecoder")
        if alphas.size > 1:
            splits = _inner_splits(self.inner_cv, n, "RidgeDecoder")
            sse = np.zeros((alphas.size, k))
            tested = np.zeros(n, bool)
            for tr, te in splits:
                pred = _ridge_path(X[tr], Y[tr], X[te], alphas, self.standardize)
                sse += ((Y[te][None] - pred) ** 2).sum(axis=1)
                tested[te] = True
            yt = Y[tested]
            sst = ((yt - yt.mean(axis=0)) ** 2).sum(axis=0)
            with np.errstate(divide="ignore", invalid="ignore"):
                scores = 1.0 - sse / sst
            best = _pick_best(-sse, larger_is_stronger=True)
        else:
            if n < 1:
                raise ValueError("RidgeDecoder: fit needs at least 1 sample")
            scores = np.full((1, k), np.nan)
            best = np.zeros(k, np.int64)
        mu, sd = _scaler(X, self.standardize)
        ym = Y.mean(axis=0)
        M, lam, Q = _ridge_basis((X - mu) / sd, Y - ym)
        f = 1.0 / (lam[:, None] + alphas[best][None, :])  # (r, k)
        coef = (M @ (f * Q)) / sd[:, None]  # (p, k)
        intercept = ym - mu @ coef
        self.alphas_ = alphas
        self.alpha_ = float(alphas[best[0]]) if one else alphas[best]
        self.coef_ = coef[:, 0] if one else coef.T
        self.intercept_ = float(intercept[0]) if one else intercept
        self.cv_scores_ = scores[:, 0] if one else scores
        return self

    def predict(self, X):
        """Predicted latent, (n_samples,) or (n_samples, n_targets)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return X @ self.coef_.T + self.intercept_


# ------------------------------------------------------------------ logistic
def _class_score(scoring, y, proba):
    if scoring == "balanced_accuracy":
        return balanced_accuracy_score(y, proba.argmax(axis=1))
    if scoring == "accuracy":
        return float(np.mean(y == proba.argmax(axis=1)))
    if scoring == "neg_log_loss":
        p = np.clip(proba[np.arange(y.size), y], 1e-15, 1.0)
        return float(np.mean(np.log(p)))
    if scoring == "roc_auc":
        if proba.shape[1] != 2 or np.unique(y).size < 2:
            return np.nan
        return roc_auc_score(y, proba[:, 1])
    raise ValueError(f"LogisticDecoder: unknown scoring {scoring!r}; "
                     "use 'balanced_accuracy', 'accuracy', 'neg_log_loss' or 'roc_auc'")


class LogisticDecoder(ClassifierMixin, BaseEstimator):
    """L2 logistic regression with C chosen by inner cross-validation.

    Parameters
    ----------
    Cs : sequence of float, optional
        Inverse penalties to try (default :data:`DEFAULT_CS`).
    inner_cv : int or splitter, default 5
        Inner folds (an int k means ``BlockedKFold(k)``, clipped to the samples).
    class_weight : "balanced", dict or None, default "balanced"
        Passed to :class:`sklearn.linear_model.LogisticRegression`.
    scoring : {"balanced_accuracy", "accuracy", "neg_log_loss", "roc_auc"}
        Inner score, computed on the pooled inner out-of-fold predictions.
    standardize : bool, default True
        Z-score features with the training mean and standard deviation.
    max_iter : int, default 1000
        Iterations of the lbfgs solver.

    Attributes
    ----------
    classes_, C_, coef_ (original feature units), intercept_, cv_scores_ (per C),
    Cs_, n_iter_ (final fit), n_features_in_.

    Notes
    -----
    An inner training fold that holds a single class predicts that class.
    """

    def __init__(self, Cs=None, inner_cv=5, class_weight="balanced", scoring: str = "balanced_accuracy",
                 standardize: bool = True, max_iter: int = 1000):
        self.Cs = Cs
        self.inner_cv = inner_cv
        self.class_weight = class_weight
        self.scoring = scoring
        self.standardize = standardize
        self.max_iter = max_iter

    def _fit_path(self, X, y, Cs, n_classes, X_eval):
        """Probabilities on ``X_eval`` for every C (n_C, n_eval, n_classes), fitted on (X, y)."""
        out = np.zeros((Cs.size, X_eval.shape[0], n_classes))
        present = np.unique(y)
        if present.size < 2:
            out[:, :, present[0]] = 1.0
            return out
        mu, sd = _scaler(X, self.standardize)
        Xs, Xe = (X - mu) / sd, (X_eval - mu) / sd
        lr = LogisticRegression(class_weight=self.class_weight, max_iter=self.max_iter, warm_start=True)
        for i, c in enumerate(Cs):  # ascending C: warm starts follow the regularisation path
            lr.set_params(C=float(c))
            lr.fit(Xs, y)
            out[i][:, lr.classes_] = lr.predict_proba(Xe)
        return out

    def fit(self, X, y):
        """Choose C by inner cross-validation, then fit on all of ``X``.

        Returns
        -------
        self
        """
        with single_threaded_blas():
            return self._fit(X, y)

    def _fit(self, X, y):
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, yi = np.unique(y, return_inverse=True)
        m = self.classes_.size
        if m < 2:
            raise ValueError(f"LogisticDecoder: needs samples of at least 2 classes in the data, got 1 class "
                             f"({self.classes_[0]!r})")
        Cs = _grid(self.Cs, DEFAULT_CS, "Cs", "LogisticDecoder")
        if Cs.size > 1:
            splits = _inner_splits(self.inner_cv, y.size, "LogisticDecoder")
            proba = np.full((Cs.size, y.size, m), np.nan)
            for tr, te in splits:
                proba[:, te] = self._fit_path(X[tr], yi[tr], Cs, m, X[te])
            tested = ~np.isnan(proba[0, :, 0])
            scores = np.array([_class_score(self.scoring, yi[tested], proba[i, tested]) for i in range(Cs.size)])
            best = int(_pick_best(scores[:, None], larger_is_stronger=False)[0])
        else:
            scores, best = np.full(1, np.nan), 0
        mu, sd = _scaler(X, self.standardize)
        lr = LogisticRegression(C=float(Cs[best]), class_weight=self.class_weight, max_iter=self.max_iter)
        lr.fit((X - mu) / sd, yi)
        self.Cs_ = Cs
        self.C_ = float(Cs[best])
        self.cv_scores_ = scores
        self.coef_ = lr.coef_ / sd
        self.intercept_ = lr.intercept_ - lr.coef_ @ (mu / sd)
        self.n_iter_ = np.asarray(lr.n_iter_)
        return self

    def decision_function(self, X):
        """Linear scores: (n_samples,) for two classes, else (n_samples, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64)
        z = X @ self.coef_.T + self.intercept_
        return z[:, 0] if self.classes_.size == 2 else z

    def predict_proba(self, X):
        """Class probabilities (n_samples, n_classes)."""
        z = self.decision_function(X)
        if self.classes_.size == 2:
            p1 = expit(z)
            return np.column_stack([1.0 - p1, p1])
        return softmax(z, axis=1)

    def predict_log_proba(self, X):
        return np.log(self.predict_proba(X))

    def predict(self, X):
        """Most probable class."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


# ------------------------------------------------------------------ scores
def score(y_true, y_pred, metric: str = "r2") -> np.ndarray:
    """Score pooled predictions, column by column.

    Parameters
    ----------
    y_true, y_pred : array (n,) or (n, k)
        Targets and pooled out-of-fold predictions (decision values for
        ``"roc_auc"``).
    metric : {"r2", "pearson", "balanced_accuracy", "accuracy", "roc_auc"}
        ``r2 = 1 - sum((y - yhat)²) / sum((y - mean(y))²)`` (may be negative).

    Returns
    -------
    ndarray
        Scalar array for 1-D inputs, else (k,).
    """
    yt, yp = np.asarray(y_true), np.asarray(y_pred)
    one = yt.ndim == 1
    yt = yt[:, None] if one else yt
    yp = yp[:, None] if yp.ndim == 1 else yp
    if yt.shape != yp.shape:
        raise ValueError(f"score: y_true {yt.shape} and y_pred {yp.shape} differ in shape")
    if metric == "r2":
        yt, yp = yt.astype(float), yp.astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = 1.0 - ((yt - yp) ** 2).sum(0) / ((yt - yt.mean(0)) ** 2).sum(0)
    elif metric == "pearson":
        a = yt - yt.mean(0)
        b = yp - yp.mean(0)
        with np.errstate(divide="ignore", invalid="ignore"):
            out = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
    elif metric == "balanced_accuracy":
        out = np.array([balanced_accuracy_score(yt[:, j], yp[:, j]) for j in range(yt.shape[1])])
    elif metric == "accuracy":
        out = (yt == yp).mean(0)
    elif metric == "roc_auc":
        out = np.array([roc_auc_score(yt[:, j], yp[:, j]) if np.unique(yt[:, j]).size == 2 else np.nan
                        for j in range(yt.shape[1])])
    else:
        raise ValueError(f"score: unknown metric {metric!r}; use one of {METRICS}")
    return np.asarray(out[0] if one else out)


# ------------------------------------------------------------------ decode
def _neural_array(neural, owner):
    """(values (trial, unit, time), trial coord or None, unit coord, time coord or None)."""
    if isinstance(neural, xr.DataArray):
        dims = set(neural.dims)
        if not {"trial", "unit"} <= dims or not dims <= {"trial", "unit", "time"}:
            raise ValueError(f"{owner}: neural data needs dims ('trial', 'unit'[, 'time']), got {neural.dims}")
        has_time = "time" in dims
        a = neural.transpose("trial", "unit", *(("time",) if has_time else ())).values
        trials = neural["trial"].values if "trial" in neural.coords else None
        units = neural["unit"].values if "unit" in neural.coords else np.arange(a.shape[1])
        times = (neural["time"].values if "time" in neural.coords else np.arange(a.shape[2])) if has_time else None
    else:
        a = np.asarray(neural)
        if a.ndim not in (2, 3):
            raise ValueError(f"{owner}: neural array must be (trial, unit[, time]), got shape {a.shape}")
        has_time = a.ndim == 3
        trials, units = None, np.arange(a.shape[1])
        times = np.arange(a.shape[2]) if has_time else None
    a = np.asarray(a, float)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{owner}: neural data contains NaN or inf")
    return (a if has_time else a[:, :, None]), trials, units, times


def _target_matrix(target, trials, n, owner):
    """Targets aligned to the neural trials: (Y (n, k), column dim name or None, column coords)."""
    if isinstance(target, xr.DataArray):
        if "trial" not in target.dims:
            raise ValueError(f"{owner}: the target DataArray needs a 'trial' dim, got {target.dims}")
        extra = [d for d in target.dims if d != "trial"]
        if len(extra) > 1:
            raise ValueError(f"{owner}: the target may have one dim besides 'trial', got {target.dims}")
        if trials is not None and "trial" in target.coords:
            have = target["trial"].values
            missing = np.setdiff1d(trials, have)
            if missing.size:
                raise ValueError(f"{owner}: target has no value for neural trial(s) {missing[:10].tolist()}")
            if len(np.unique(have)) != len(have):
                raise ValueError(f"{owner}: the target's trial coordinate has duplicates")
            target = target.sel(trial=trials)
        elif target.sizes["trial"] != n:
            raise ValueError(f"{owner}: target has {target.sizes['trial']} trials, neural data {n}")
        col = extra[0] if extra else None
        Y = target.transpose("trial", *extra).values
        coords = target[col].values if col is not None and col in target.coords else (
            np.arange(Y.shape[1]) if col is not None else None)
    else:
        Y = np.asarray(target)
        if Y.ndim not in (1, 2) or Y.shape[0] != n:
            raise ValueError(f"{owner}: target must be (n_trials,) or (n_trials, k) with n_trials={n}, "
                             f"got shape {Y.shape}")
        col = None if Y.ndim == 1 else "target"
        coords = None if Y.ndim == 1 else np.arange(Y.shape[1])
    if Y.dtype.kind == "f" and not np.all(np.isfinite(Y)):
        raise ValueError(f"{owner}: target contains NaN or inf (drop those trials from both arrays first)")
    return (Y[:, None] if Y.ndim == 1 else Y), col, coords


def _groups(groups, neural, n, owner):
    if isinstance(groups, str):
        if not isinstance(neural, xr.DataArray) or groups not in neural.coords:
            raise ValueError(f"{owner}: groups={groups!r} is not a coordinate of the neural data")
        g = np.asarray(neural[groups].values)
        if g.shape != (n,):
            raise ValueError(f"{owner}: coordinate {groups!r} must lie along 'trial'")
        return g
    return None if groups is None else np.asarray(groups)


def _prediction(est, X, metric):
    if metric == "roc_auc":
        if hasattr(est, "decision_function"):
            return est.decision_function(X)
        return est.predict_proba(X)[:, 1]
    return est.predict(X)


def _check_tested_once(splits, n, owner):
    count = np.zeros(n, np.int64)
    for _, te in splits:
        count[te] += 1
    if np.any(count > 1):
        raise ValueError(f"{owner}: trial row {int(np.flatnonzero(count > 1)[0])} is tested in more than one fold; "
                         "pooled out-of-fold scores need each trial tested at most once")
    return count == 1


def _fit_folds(decoder, Xs, Y, splits, metric, test_X=None):
    """Fit per fold; predictions at the test rows of every array in ``test_X``.

    ``Xs`` is (n, p); ``test_X`` a list of (n, p) arrays (default ``[Xs]``).
    Returns (pred (len(test_X), n, k), penalty (n_folds, k) or None, weights (n_folds, p, k) or None).
    """
    n, k = Y.shape
    test_X = [Xs] if test_X is None else test_X
    multi = isinstance(decoder, RidgeDecoder)  # vectorised over target columns
    pred = np.full((len(test_X), n, k), np.nan)
    pen = np.full((len(splits), k), np.nan)
    p = Xs.shape[1]
    w = np.full((len(splits), p, k), np.nan)
    cols = [slice(None)] if multi else [slice(j, j + 1) for j in range(k)]
    for f, (tr, te) in enumerate(splits):
        for c in cols:
            yt = Y[tr, c]
            est = clone(decoder).fit(Xs[tr], yt if multi else yt[:, 0])
            for i, Xt in enumerate(test_X):
                yp = _prediction(est, Xt[te], metric)
                pred[i, te, c] = yp.reshape(te.size, -1)
            for name in ("alpha_", "C_"):
                if hasattr(est, name):
                    pen[f, c] = getattr(est, name)
            coef = getattr(est, "coef_", None)
            if coef is not None:
                coef = np.asarray(coef)
                ncol = Y[:, c].shape[1]
                if coef.size == p * ncol:
                    w[f, :, c] = coef.reshape(ncol, p).T
    has_pen = bool(np.any(np.isfinite(pen)))
    has_w = bool(np.any(np.isfinite(w)))
    return pred, (pen if has_pen else None), (w if has_w else None)


def _default_metric(decoder, metric):
    if metric is not None:
        if metric not in METRICS:
            raise ValueError(f"decode: unknown metric {metric!r}; use one of {METRICS}")
        return metric
    return "balanced_accuracy" if is_classifier(decoder) else "r2"


@with_single_threaded_blas
def decode(neural, target, *, decoder=None, cv=None, groups=None, time: str = "pooled",
           metric: str | None = None) -> xr.Dataset:
    """Cross-validated decoding of a latent from neural activity.

    Parameters
    ----------
    neural : xarray.DataArray or ndarray
        Activity with dims ``(trial, unit[, time])``.
    target : xarray.DataArray or ndarray
        The latent per trial. A DataArray is matched to the neural data by its
        ``trial`` coordinate (never by position) and may carry one more dim
        (e.g. ``draw`` for null latents) whose columns are decoded separately
        on the same folds. A NumPy array must follow the neural trial order.
    decoder : scikit-learn estimator, default :class:`RidgeDecoder()`
        Cloned for every fold (and time bin). Use :class:`LogisticDecoder` for
        categorical latents.
    cv : int, splitter or list of (train, test), default ``BlockedKFold(5)``
        Outer folds; every trial must be tested at most once.
    groups : array or str, optional
        Groups for group splitters, or the name of a ``trial`` coordinate
        (``"session"``, ``"block"``).
    time : {"pooled", "resolved"}
        One decoder on activity summed over time, or one per time bin.
    metric : str, optional
        ``"r2"`` (regressors) or ``"balanced_accuracy"`` (classifiers) by
        default; also ``"pearson"``, ``"accuracy"``, ``"roc_auc"``.

    Returns
    -------
    xarray.Dataset
        ``score`` ``([column,] [time])`` on pooled out-of-fold predictions;
        ``prediction`` ``(trial, [column,] [time])``; ``penalty`` (fold, ...) --
        chosen alpha or C -- and ``weights`` (fold, unit, ...) when the
        decoder exposes them; ``target`` (trial[, column]). The fold splits are
        in ``attrs["folds"]`` as a list of test-index lists.
    """
    owner = "decode"
    if time not in ("pooled", "resolved"):
        raise ValueError(f"{owner}: time must be 'pooled' or 'resolved', got {time!r}")
    decoder = RidgeDecoder() if decoder is None else decoder
    metric = _default_metric(decoder, metric)
    A, trials, units, times = _neural_array(neural, owner)
    if time == "resolved" and times is None:
        raise ValueError(f"{owner}: time='resolved' needs a 'time' dim")
    n = A.shape[0]
    Y, col, col_coords = _target_matrix(target, trials, n, owner)
    splits = cv_splits(cv, n, _groups(groups, neural, n, owner), owner=owner)
    tested = _check_tested_once(splits, n, owner)
    if time == "pooled":
        blocks = [A.sum(axis=2)]
    else:
        blocks = [A[:, :, t] for t in range(A.shape[2])]
    preds, pens, ws = [], [], []
    for Xs in blocks:
        pr, pe, w = _fit_folds(decoder, Xs, Y, splits, metric)
        preds.append(pr[0])
        pens.append(pe)
        ws.append(w)
    pred = np.stack(preds, axis=-1)  # (n, k, n_time)
    sc = np.stack([score(Y[tested], pred[tested, :, t], metric) for t in range(pred.shape[-1])], axis=-1)
    dims_c = (col,) if col is not None else ()
    tdim = ("time",) if time == "resolved" else ()

    def shape(x):  # drop the singleton column / time axes that are not dims
        if col is None:
            x = x[..., 0, :]
        if time == "pooled":
            x = x[..., 0]
        return x

    trial_coord = trials if trials is not None else np.arange(n)
    ds = xr.Dataset(
        {"score": (dims_c + tdim, shape(sc)),
         "prediction": (("trial",) + dims_c + tdim, shape(pred)),
         "target": (("trial",) + dims_c, Y if col is not None else Y[:, 0])},
        coords={"trial": trial_coord, "fold": np.arange(len(splits))},
    )
    if pens[0] is not None:
        ds["penalty"] = (("fold",) + dims_c + tdim, shape(np.stack(pens, axis=-1)))
    if ws[0] is not None:
        ds["weights"] = (("fold", "unit") + dims_c + tdim, shape(np.stack(ws, axis=-1)))
        ds = ds.assign_coords(unit=units)
    if col is not None:
        ds = ds.assign_coords({col: col_coords})
    if time == "resolved":
        ds = ds.assign_coords(time=times)
    ds.attrs.update(metric=metric, decoder=repr(decoder), time_mode=time,
                    folds=[te.tolist() for _, te in splits])
    return ds


@with_single_threaded_blas
def temporal_generalization(neural, target, *, decoder=None, cv=None, groups=None,
                            metric: str | None = None) -> xr.DataArray:
    """Train a decoder at each time bin and test it at every time bin.

    Parameters
    ----------
    neural : xarray.DataArray or ndarray
        Activity ``(trial, unit, time)``.
    target, decoder, cv, groups, metric
        As in :func:`decode`.

    Returns
    -------
    xarray.DataArray
        Scores with dims ``([column,] train_time, test_time)`` on pooled
        out-of-fold predictions; the diagonal equals ``decode(...,
        time="resolved")`` on the same folds.
    """
    owner = "temporal_generalization"
    decoder = RidgeDecoder() if decoder is None else decoder
    metric = _default_metric(decoder, metric)
    A, trials, units, times = _neural_array(neural, owner)
    if times is None:
        raise ValueError(f"{owner}: neural data needs a 'time' dim")
    n, _, T = A.shape
    Y, col, col_coords = _target_matrix(target, trials, n, owner)
    splits = cv_splits(cv, n, _groups(groups, neural, n, owner), owner=owner)
    tested = _check_tested_once(splits, n, owner)
    tests = [A[:, :, t] for t in range(T)]
    out = np.empty((Y.shape[1], T, T))
    for t in range(T):
        pr, _, _ = _fit_folds(decoder, A[:, :, t], Y, splits, metric, test_X=tests)  # (T, n, k)
        for u in range(T):
            out[:, t, u] = score(Y[tested], pr[u][tested], metric)
    dims = ("train_time", "test_time")
    coords = {"train_time": times, "test_time": times}
    if col is None:
        return xr.DataArray(out[0], dims=dims, coords=coords, name="score", attrs={"metric": metric})
    coords[col] = col_coords
    return xr.DataArray(out, dims=(col,) + dims, coords=coords, name="score", attrs={"metric": metric})
