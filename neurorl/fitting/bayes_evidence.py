"""Evidence of the hierarchical Bayesian fits: PSIS-LOO at the trial and the subject level (:func:`loo`) and model
comparison (:func:`compare`), from the pointwise log-likelihood ``log_likelihood["loglik"]`` over ``obs``.

The model, its pointwise log-likelihood and its assumptions [A1]..[A10] (LOO: [A5]; exact K-fold, a method of the
estimator: [A6]) are described in :mod:`neurorl.fitting.bayes`, which re-exports every name here.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..schema import SUBJECT, TRIAL
from .bayes_diagnostics import BayesWarning, _fmt_list, _label

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
