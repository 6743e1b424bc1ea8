"""Evidence of the hierarchical Bayesian fits: PSIS-LOO at the trial and the subject level (:func:`loo`), exact
K-fold cross-validation by subject (:func:`kfold`, scoring held-out subjects with :func:`population_elpd`) and
model comparison (:func:`compare`), from the pointwise log-likelihood ``log_likelihood["loglik"]`` over ``obs``.

The model, its pointwise log-likelihood and its assumptions [A1]..[A10] (LOO: [A5]; exact K-fold: [A6]) are
described in :mod:`neurorl.fitting.bayes`, which re-exports :func:`loo`, :func:`compare` and the constants here;
its estimator's ``kfold`` and ``population_elpd`` methods delegate to :func:`kfold` and :func:`population_elpd`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..schema import SUBJECT, TRIAL
from ..tasks.base import as_rng
from .bayes_diagnostics import BayesWarning, _fmt_list, _label, diagnose
from .bayes_hierarchy import PARAM
from .mle import _names

#: dim of the pointwise log-likelihood (valid trials, subject-major) and the name of its variable
OBS = "obs"
LL_VAR = "loglik"


def _logmeanexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    a = np.where(np.isnan(a), -np.inf, a)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis) + np.log(np.mean(np.exp(a - m), axis=axis))


def _subject_sums(idata):
    """``(chain, draw, subject)`` sums of the pointwise log-likelihood and the subject labels."""
    if "log_likelihood" not in idata.groups() or LL_VAR not in idata.log_likelihood:
        raise ValueError(f"the InferenceData has no log_likelihood[{LL_VAR!r}]; fit with log_likelihood=True")
    ll = idata.log_likelihood[LL_VAR]
    if SUBJECT in ll.dims:
        return ll.transpose("chain", "draw", SUBJECT).values, ll[SUBJECT].values
    subj = ll[SUBJECT].values
    labels, first = np.unique(subj, return_index=True)
    order = np.argsort(first)
    labels = labels[order]
    starts = np.sort(first)
    if not np.all(np.diff(np.concatenate([starts, [subj.size]])) > 0) or \
            not np.array_equal(np.repeat(labels, np.diff(np.concatenate([starts, [subj.size]]))), subj):
        raise ValueError("log_likelihood observations are not grouped by subject")
    vals = ll.transpose("chain", "draw", OBS).values
    return np.add.reduceat(vals, starts, axis=-1), labels


def loo(idata_or_fit, level: str = "trial", *, warn: bool = True, label: str = ""):
    """PSIS-LOO of a hierarchical fit, at the trial or the subject level.

    Parameters
    ----------
    idata_or_fit : arviz.InferenceData or HierarchicalBayes
        With ``log_likelihood["loglik"]`` over ``obs`` (coordinate ``subject``).
    level : {"trial", "subject"}
        ``"trial"``: one term per valid trial ([A5]). ``"subject"``: leave-one-subject-out, a subject's trials
        summed per draw, then PSIS (hBayesDM's convention).
    warn : bool
        Warn (:class:`BayesWarning`) when Pareto k exceeds arviz's threshold, naming trials/subjects and what to do.
    label : str
        Model name for the warning.

    Returns
    -------
    arviz.ELPDData
        With pointwise ``loo_i`` and ``pareto_k`` (over ``obs`` or ``subject``).
    """
    import arviz as az

    # lazy: neurorl.fitting.bayes imports this module
    from .bayes import HierarchicalBayes

    if isinstance(idata_or_fit, HierarchicalBayes):
        return idata_or_fit.loo(level, warn=warn)
    idata = idata_or_fit
    if level not in ("trial", "subject"):
        raise ValueError(f"level must be 'trial' or 'subject', got {level!r}")
    if "log_likelihood" not in idata.groups() or LL_VAR not in idata.log_likelihood:
        raise ValueError(f"the InferenceData has no log_likelihood[{LL_VAR!r}]; fit with log_likelihood=True")
    if level == "subject":
        sums, labels = _subject_sums(idata)
        ll = xr.Dataset({LL_VAR: (("chain", "draw", SUBJECT), sums)},
                        coords={"chain": idata.posterior["chain"].values, "draw": idata.posterior["draw"].values,
                                SUBJECT: labels})
        idata = az.InferenceData(posterior=idata.posterior, log_likelihood=ll)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto")
        warnings.filterwarnings("ignore", category=RuntimeWarning)
        res = az.loo(idata, pointwise=True, var_name=LL_VAR)
    # a term whose log-likelihood is the same in every draw (e.g. a first choice between equal initial values) is
    # predicted exactly by LOO; arviz's Pareto fit degenerates there (k = inf), so its k is set to 0
    ll_vals = idata.log_likelihood[LL_VAR]
    ll_vals = ll_vals.stack(__sample__=("chain", "draw")).transpose(..., "__sample__").values
    const = np.ptp(ll_vals, axis=-1) <= 1e-12 * (1.0 + np.abs(ll_vals[..., 0]))
    if const.any():
        k = np.asarray(res.pareto_k).copy()
        k[const] = 0.0
        res["pareto_k"] = res.pareto_k.copy(data=k)
    k = np.asarray(res.pareto_k)
    good = float(res.good_k)
    res["warning"] = bool(np.any(k > good))
    bad = np.flatnonzero(k > good)
    if warn and bad.size:
        pre = f"{label}: " if label else ""
        if level == "trial":
            ll = idata.log_likelihood[LL_VAR]
            where = [f"({_label(ll[SUBJECT].values[i])}, {_label(ll[TRIAL].values[i])})" for i in bad]
            warnings.warn(
                f"{pre}PSIS-LOO is unreliable for {bad.size} trial(s) with Pareto k > {good:.2f} (subject, trial): "
                f"{_fmt_list(where)} (max k = {k.max():.2f}). Their elpd is overestimated; check these trials for "
                "outliers (surprising choices, extreme RTs), draw more samples, or use exact cross-validation "
                "(fit.kfold(...), by subject)", BayesWarning, stacklevel=2)
        else:
            labels = idata.log_likelihood[SUBJECT].values
            warnings.warn(
                f"{pre}leave-one-subject-out PSIS is unreliable for {bad.size} of {k.size} subject(s) with Pareto "
                f"k > {good:.2f}: {_fmt_list(_label(labels[i]) for i in bad)} (max k = {k.max():.2f}). This is "
                "common -- leaving out all of a subject's trials moves that subject's posterior far -- use the "
                "exact fallback fit.kfold(k) (refits with folds of subjects held out)", BayesWarning, stacklevel=2)
    return res


def kfold(fit, k: int = 5, *, folds=None, n_inner: int | None = None, draws: int | None = None,
          tune: int | None = None, rng=None, progress: bool | None = None):
    """Exact K-fold cross-validation by subject ([A6]); :meth:`HierarchicalBayes.kfold
    <neurorl.fitting.bayes.HierarchicalBayes.kfold>`.

    Parameters
    ----------
    fit : HierarchicalBayes
        A fitted estimator; each fold is a refit of its compiled model with the fold's subjects masked.
    k : int, default 5
        Number of folds (ignored when ``folds`` is given).
    folds : mapping or array_like, optional
        Fold of every subject: a mapping subject label -> fold, or an array aligned with the fitted subjects.
    n_inner : int, optional
        Fresh population draws per posterior draw when scoring a held-out subject (default: enough for
        4,000 in all).
    draws, tune : int, optional
        Sampler settings of the refits (default: the fit's).
    rng : int, numpy.random.Generator or None
        Fold assignment and population draws (default: derived from ``random_seed``).
    progress : bool, optional

    Returns
    -------
    arviz.ELPDData
        Usable in :func:`compare` (``loo_i`` over ``subject``; no ``pareto_k``: no importance sampling).
        ``result.attrs["kfold"]`` (also ``fit.kfold_``) is an ``xarray.Dataset`` with per-subject ``elpd``,
        ``mc_se``, ``subject_fold`` (the fold holding each subject), ``lppd`` and per-fold diagnostics
    """
    from arviz import ELPDData

    fit._check_fitted()
    data = fit._data
    n = data.n
    rng = as_rng(rng) if rng is not None else fit._rng
    if folds is None:
        k = int(k)
        if not 2 <= k <= n:
            raise ValueError(f"k must be between 2 and the number of subjects ({n}), got {k}")
        fold = np.empty(n, np.int64)
        fold[rng.permutation(n)] = np.arange(n) % k
    else:
        if isinstance(folds, Mapping):
            missing = [s for s in data.subjects.tolist() if s not in folds]
            if missing:
                raise ValueError(f"folds lacks subject(s) {missing[:8]}")
            fold = np.array([folds[s] for s in data.subjects.tolist()])
        else:
            fold = np.asarray(folds)
            if fold.shape != (n,):
                raise ValueError(f"folds must give one fold per subject ({n}), got shape {fold.shape}")
        _, fold = np.unique(fold, return_inverse=True)
        if fold.max() < 1:
            raise ValueError("folds must define at least two folds")
    n_folds = int(fold.max()) + 1
    elpd = np.full(n, np.nan)
    mc_se = np.full(n, np.nan)
    fold_diag = []
    valid_tm = np.ascontiguousarray(data.obs["valid"])
    for f in range(n_folds):
        held = np.flatnonzero(fold == f)
        mask = valid_tm.copy()
        mask[:, held] = False
        idata, _ = fit._sample(int(rng.integers(2 ** 31 - 1)), valid=mask, draws=draws, tune=tune,
                               progress=progress)
        fold_diag.append(diagnose(idata, var_names=("group_mean", "group_sd"),
                                  label=f"{fit.name_} K-fold fold {f}", warn=False))
        for m in fold_diag[-1].attrs["messages"]:  # diagnose's warnings, at the caller of HierarchicalBayes.kfold
            warnings.warn(m, BayesWarning, stacklevel=3)
        gm = idata.posterior["group_mean"].transpose("chain", "draw", PARAM).values.reshape(-1, fit.layout_.n_rows)
        gs = idata.posterior["group_sd"].transpose("chain", "draw", PARAM).values.reshape(-1, fit.layout_.n_rows)
        S = gm.shape[0]
        M = int(n_inner) if n_inner is not None else max(1, math.ceil(4000 / S))
        elpd[held], mc_se[held] = population_elpd(fit, gm, gs, held, n_inner=M, rng=rng)
    bad = np.flatnonzero(mc_se > 0.1)
    if bad.size:
        warnings.warn(f"{fit.name_} K-fold: the Monte Carlo standard error of the held-out log predictive "
                      f"density exceeds 0.1 nats for subject(s) {_names(data.subjects, bad)} (max "
                      f"{mc_se.max():.2f}); raise n_inner (population draws per posterior draw)",
                      BayesWarning, stacklevel=3)  # the caller of HierarchicalBayes.kfold
    lppd = np.full(n, np.nan)
    if "log_likelihood" in fit.idata_.groups():
        lppd = _logmeanexp(_subject_sums(fit.idata_)[0].reshape(-1, n), axis=0)
    subj = xr.DataArray(elpd, dims=SUBJECT, coords={SUBJECT: data.subjects}, name="loo_i")
    total = float(elpd.sum())
    # no importance sampling, hence no Pareto k (arviz prints and compares such an ELPDData like a LOO result)
    res = ELPDData(
        data=[total, float(math.sqrt(n * np.var(elpd))), float(np.sum(lppd) - total), int(S), n, False,
              subj, "log"],
        index=["elpd_loo", "se", "p_loo", "n_samples", "n_data_points", "warning", "loo_i", "scale"])
    detail = xr.Dataset(
        {"elpd": (SUBJECT, elpd), "mc_se": (SUBJECT, mc_se), "subject_fold": (SUBJECT, fold),
         "lppd": (SUBJECT, lppd),
         "fold_max_rhat": ("fold_index", [float(d["max_rhat"]) for d in fold_diag]),
         "fold_n_divergent": ("fold_index", [int(d["n_divergent"]) for d in fold_diag])},
        coords={SUBJECT: data.subjects, "fold_index": np.arange(n_folds)},
        attrs={"method": "exact K-fold by subject", "n_inner": M, "model": fit.name_})
    res.attrs["kfold"] = detail
    fit.kfold_ = detail
    return res


def population_elpd(fit, group_mean: np.ndarray, group_sd: np.ndarray, subjects, *, n_inner: int = 1,
                    rng=None) -> tuple[np.ndarray, np.ndarray]:
    """Log predictive density of subjects as new members of the population ([A6]);
    :meth:`HierarchicalBayes.population_elpd <neurorl.fitting.bayes.HierarchicalBayes.population_elpd>`.

    ``log p(y_i) = log E[p(y_i | theta)]``, ``theta = group_mean + group_sd * z``, ``z ~ N(0, I)``, by Monte
    Carlo over the ``S`` given draws of the group parameters with ``n_inner`` fresh ``z`` each.

    Parameters
    ----------
    fit : HierarchicalBayes
        A fitted estimator (its data and agent score the subjects).
    group_mean, group_sd : ndarray, shape (S, R)
        Draws of the group parameters (unconstrained scale, the layout's rows).
    subjects : array_like of int
        Positions of the subjects in the fitted trials.
    n_inner : int
    rng : int, Generator or None

    Returns
    -------
    (elpd, mc_se) : ndarrays, shape (m,)
        Log predictive density per subject and its Monte Carlo standard error (delta method).
    """
    fit._check_fitted()
    rng = as_rng(rng)
    gm, gs = np.atleast_2d(np.asarray(group_mean, float)), np.atleast_2d(np.asarray(group_sd, float))
    held = np.atleast_1d(np.asarray(subjects, dtype=np.int64))
    S, R = gm.shape
    M = int(n_inner)
    if M < 1:
        raise ValueError(f"n_inner must be >= 1, got {n_inner}")
    z = rng.standard_normal((S * M, R, held.size))
    th = np.repeat(gm, M, axis=0)[:, :, None] + np.repeat(gs, M, axis=0)[:, :, None] * z
    if fit._hbayesdm:  # group parameters on hBayesDM's raw scale
        from .hbayesdm import theta_of_numpy

        th = theta_of_numpy(fit.agent_, fit.layout_, th)
    ll = fit.subject_loglik(th, held).sum(axis=2)  # (S M, m)
    elpd = _logmeanexp(ll, axis=0)
    w = np.exp(ll - ll.max(axis=0, keepdims=True))
    mc_se = w.std(axis=0) / (w.mean(axis=0) * math.sqrt(w.shape[0]))
    return elpd, mc_se


def compare(models, *, level: str = "trial", method: str = "stacking", scale: str = "log"):
    """Compare models by expected log predictive density (an ``arviz.compare`` table with our model names).

    Parameters
    ----------
    models : mapping name -> (HierarchicalBayes | InferenceData | ELPDData), or a sequence of fits
        Fits of the *same* data. A sequence is named by each fit's ``name_`` (the agent's name, made unique).
        ELPDData (e.g. from :meth:`~neurorl.fitting.bayes.HierarchicalBayes.kfold`) are used as they are.
    level : {"trial", "subject"}
        PSIS-LOO level for fits and InferenceData ([A5]); K-fold results are subject-level.
    method : {"stacking", "BB-pseudo-BMA", "pseudo-BMA"}
        Model weights (``arviz.compare``).
    scale : {"log", "negative_log", "deviance"}

    Returns
    -------
    pandas.DataFrame
        ``rank``, ``elpd_loo``, ``p_loo``, ``elpd_diff``, ``weight``, ``se``, ``dse``, ``warning``, ``scale``,
        indexed by model name, best first.
    """
    import arviz as az
    from arviz import ELPDData

    # lazy: neurorl.fitting.bayes imports this module
    from .bayes import HierarchicalBayes

    if isinstance(models, Mapping):
        items = list(models.items())
    else:
        items, seen = [], {}
        for m in models:
            if not isinstance(m, HierarchicalBayes):
                raise TypeError("a sequence passed to compare must hold fitted HierarchicalBayes; use a dict "
                                "name -> InferenceData/ELPDData otherwise")
            base = m.name_
            seen[base] = seen.get(base, 0) + 1
            items.append((base if seen[base] == 1 else f"{base}_{seen[base]}", m))
    if len(items) < 2:
        raise ValueError("compare needs at least two models")
    elpds = {}
    for name, m in items:
        if isinstance(m, ELPDData):
            elpds[str(name)] = m
        elif isinstance(m, HierarchicalBayes):
            elpds[str(name)] = m.loo(level)
        else:
            elpds[str(name)] = loo(m, level, label=str(name))
    sizes = {k: int(v["n_data_points"]) for k, v in elpds.items()}
    if len(set(sizes.values())) > 1:
        raise ValueError(f"the models score different numbers of observations {sizes}: compare fits of the same "
                         "data at the same level (trial-level LOO vs subject-level K-fold do not mix)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("ignore", message="The inplace keyword")  # arviz 0.23 with pandas >= 3
        table = az.compare(elpds, ic="loo", method=method, scale=scale)
    table.index.name = "model"
    table.attrs["level"] = level
    return table
