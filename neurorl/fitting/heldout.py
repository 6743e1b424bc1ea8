"""Exact K-fold held-out log-likelihood of the RL models, and the held-out comparison table.

Every model that reports an out-of-sample score here (the RL agents fitted by MAP, the RNNs of
:mod:`neurorl.fitting.rnn`) takes its folds from :func:`neurorl.fitting.cv.block_folds`: in fold ``f`` the trials
``folds[f]`` are held out, the model is fitted to the other trials, and only the held-out trials are scored. The
model *sees* every trial (it learns from the outcome of a held-out trial; the RNN takes it as input); only the
likelihood is restricted. Scores are therefore paired trial by trial across models.

The RL models' held-out scores are those of :func:`neurorl.fitting.cv.exact_cv` (the one implementation of fitting
on training trials while learning on all of them); :func:`heldout_loglik_rl` fits the estimator to all trials and
returns exact CV's pointwise scores on the given folds.

Contents
--------
:func:`heldout_loglik_rl`
    Pointwise held-out log-likelihood ``(subject, trial)`` of an agent over the folds (MAP per fold).
:func:`heldout_table`
    Held-out log-likelihood per model and subject, totals, paired differences to the best model with their
    standard errors, and a verdict that names a best model only when the evidence supports one.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

import numpy as np
import xarray as xr

from ..agents.base import Agent, make_agent
from ..schema import SUBJECT, TRIAL
from .cv import as_folds, exact_cv

__all__ = ["heldout_loglik_rl", "heldout_table"]

MODEL = "model"


def heldout_loglik_rl(agent: Agent | str, trials: xr.Dataset, folds: np.ndarray | int = 5, *, estimator=None,
                      progress: bool = False, rng=0, **estimator_options) -> xr.DataArray:
    """Exact K-fold held-out log-likelihood of an RL agent, fitted by MAP on the training trials of each fold.

    Parameters
    ----------
    agent : Agent or str
    trials : xarray.Dataset
    folds : ndarray or int
        Held-out masks ``(k, subject, trial)`` from :func:`neurorl.fitting.cv.block_folds`, or ``k``.
    estimator : class, optional
        The estimator (default :class:`neurorl.fitting.MAP`), built as ``estimator(agent, **options)`` and fitted to
        all trials first (its estimates start each fold's refit).
    progress : bool
        Passed to the estimator and to :func:`~neurorl.fitting.cv.exact_cv`.
    rng
        Passed to the estimator (starts).

    Returns
    -------
    xarray.DataArray
        ``(subject, trial)`` log-probability of each held-out choice under the fold that held it out (NaN on trials
        never scored); ``attrs``: ``agent``, ``k``, ``estimator`` and the per-fold parameter estimates (constrained
        scale) as JSON (``fold_params``: one ``{param: [value per subject]}`` per fold).
    """
    from .mle import MAP

    plain = make_agent(agent)
    folds = as_folds(trials, folds, "heldout_loglik_rl")
    est_cls = MAP if estimator is None else estimator
    fit = est_cls(plain, progress=progress, rng=rng, **estimator_options).fit(trials)
    cv = exact_cv(fit, folds=folds, progress=progress)
    spec = {p.name: p for p in fit.agent_.params}
    theta = cv.pointwise["theta_fold"]
    fitted = [{nm: np.round(spec[nm].to_constrained(theta.values[f, j]), 6).tolist()
               for j, nm in enumerate(theta["param"].values) if nm in spec} for f in range(folds.shape[0])]
    out = cv.pointwise["elpd_cv"].rename("heldout_loglik")
    out.attrs = {"agent": repr(plain), "k": int(folds.shape[0]), "estimator": est_cls.__name__,
                 "fold_params": json.dumps(fitted)}
    return out


def heldout_table(pointwise: Mapping[Any, xr.DataArray], *, z: float = 2.0) -> xr.Dataset:
    """Held-out log-likelihood per model and subject, with paired differences to the best model.

    Parameters
    ----------
    pointwise : mapping
        ``model name -> (subject, trial)`` held-out log-likelihood (NaN on trials never scored), all on the same
        grid and the same scored trials (the same folds).
    z : float
        A model is "not distinguishable" from the best when its total is within ``z`` standard errors of the paired
        difference.

    Returns
    -------
    xarray.Dataset
        ``heldout_loglik`` (model, subject), ``n_trials`` (subject), and per model ``heldout_total``,
        ``per_trial`` (mean nats per scored trial), ``delta_total`` (best total minus this one, >= 0),
        ``se_delta`` (standard error of that paired difference over trials, ``sqrt(n var(d))``) and
        ``p_choice`` (the geometric-mean probability of the held-out choices). ``attrs["best"]`` is the verdict of
        :func:`neurorl.fitting.compare.verdict` with margins ``z * se_delta``.

    Raises
    ------
    ValueError
        If the models are not scored on exactly the same trials.
    """
    from .compare import equivalence_classes, verdict

    if not pointwise:
        raise ValueError("heldout_table: give at least one model")
    names = list(pointwise)
    first = pointwise[names[0]]
    vals = {}
    for nm in names:
        da = pointwise[nm]
        if not isinstance(da, xr.DataArray) or set(da.dims) != {SUBJECT, TRIAL}:
            raise ValueError(f"heldout_table: pointwise[{nm!r}] must be a (subject, trial) DataArray")
        da = da.transpose(SUBJECT, TRIAL)
        if da.shape != first.shape or not np.array_equal(da[SUBJECT].values, first[SUBJECT].values):
            raise ValueError(f"heldout_table: pointwise[{nm!r}] is not on the grid of pointwise[{names[0]!r}]")
        vals[nm] = np.asarray(da.values, float)
    scored = ~np.isnan(vals[names[0]])
    for nm in names[1:]:
        diff = scored ^ ~np.isnan(vals[nm])
        if diff.any():
            i, t = np.argwhere(diff)[0]
            raise ValueError(f"heldout_table: models {names[0]!r} and {nm!r} are scored on different trials (first "
                             f"at subject {first[SUBJECT].values[i]!r}, trial {int(first[TRIAL].values[t])}); use "
                             "the same folds for every model")
    per_subject = np.stack([np.nansum(vals[nm], axis=1) for nm in names])
    total = per_subject.sum(axis=1)
    n = int(scored.sum())
    best = int(np.argmax(total))
    bvals = vals[names[best]][scored]
    se = np.array([np.sqrt(n * np.var(bvals - vals[nm][scored])) for nm in names])
    classes = equivalence_classes({nm: vals[nm] for nm in names})
    ds = xr.Dataset(
        {"heldout_loglik": ((MODEL, SUBJECT), per_subject), "n_trials": (SUBJECT, scored.sum(axis=1)),
         "heldout_total": (MODEL, total), "per_trial": (MODEL, total / n),
         "delta_total": (MODEL, total[best] - total), "se_delta": (MODEL, se),
         "p_choice": (MODEL, np.exp(total / n))},
        coords={MODEL: np.asarray([str(x) for x in names]), SUBJECT: first[SUBJECT].values})
    ds.attrs["best"] = verdict({str(nm): float(t) for nm, t in zip(names, total)}, classes=[[str(m) for m in c]
                                                                                            for c in classes],
                               higher_is_better=True, margin={str(nm): z * s for nm, s in zip(names, se)})
    ds.attrs["criterion"] = (f"exact K-fold held-out log-likelihood (nats); a model is tied with the best when its "
                             f"total is within {z:g} standard errors of the paired per-trial difference")
    return ds
