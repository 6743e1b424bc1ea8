"""Exact K-fold held-out log-likelihood of the RL models, and the held-out comparison table.

Every model that reports an out-of-sample score here (the RL agents fitted by MAP, the RNNs of
:mod:`neurorl.fitting.rnn`) takes its folds from :func:`neurorl.fitting.cv.block_folds`: in fold ``f`` the trials
``folds[f]`` are held out, the model is fitted to the other trials, and only the held-out trials are scored. The
model *sees* every trial (it learns from the outcome of a held-out trial; the RNN takes it as input); only the
likelihood is restricted. Scores are therefore paired trial by trial across models.

How the RL models are fitted on training trials only
----------------------------------------------------
The estimators of :mod:`neurorl.fitting.mle` have no per-trial likelihood weight: the only per-trial switch is
``valid``, and an agent keeps its state on invalid trials (it does not learn from them). Turning held-out trials
invalid would therefore change the learning, not just the score. :func:`train_only` builds, without touching the
likelihood backend, a copy of the agent whose ``step`` learns on every trial with a recorded choice (``valid`` or
``choice >= 0``) while its ``trial_loglik`` still scores only ``valid`` trials; :func:`heldout_loglik_rl` fits it to
a copy of the trials in which

* the held-out trials of the fold are ``valid = False`` with their choice kept (learnt from, not scored), and
* the trials that were invalid in the data get ``choice = -1`` (neither learnt from nor scored, as before).

The state is thus updated on exactly the trials the plain agent updates on, and the MAP objective sums the training
trials only. The held-out trials are then scored by :func:`neurorl.replay` of the plain agent at the fold's
estimates (``log_policy`` of the observed choice). Padding the compiled backend adds after a subject's last trial
may be "learnt from" by the copy, but nothing after it is scored, so no score changes.

Contents
--------
:func:`train_only`
    The learn-on-all, score-on-valid copy of an agent.
:func:`heldout_loglik_rl`
    Pointwise held-out log-likelihood ``(subject, trial)`` of an agent over the folds (MAP per fold).
:func:`heldout_table`
    Held-out log-likelihood per model and subject, totals, paired differences to the best model with their
    standard errors, and a verdict that names a best model only when the evidence supports one.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ..agents.base import Agent, make_agent
from ..backend import NUMPY
from ..schema import SUBJECT, TRIAL
from ..simulate import observations
from .cv import block_folds

__all__ = ["fold_trials", "heldout_loglik_rl", "heldout_table", "train_only"]

MODEL = "model"
_WRAPPERS: dict[type, type] = {}


def _step_learning_on_recorded(self, p, s, obs, ops=NUMPY):
    """``step`` of the wrapped class with ``valid`` replaced by "a choice is recorded" (learning on every real
    trial); the latents are unchanged, and ``trial_loglik`` still reads the original ``valid``."""
    learn = obs["valid"] | (obs["choice"] >= 0)
    return super(type(self), self).step(p, s, {**obs, "valid": learn}, ops)


def train_only(agent: Agent | str) -> Agent:
    """A copy of ``agent`` that learns on every trial with a recorded choice and scores only ``valid`` trials.

    The copy's class is a subclass of the agent's class (named ``<Class>TrainOnly``, defined in this module), so the
    compiled-likelihood caches, which key on the class, never confuse it with the plain agent. Options and fixed
    parameters are kept.
    """
    agent = make_agent(agent)
    base = type(agent)
    if getattr(base, "_train_only_base", None) is not None:
        return agent
    cls = _WRAPPERS.get(base)
    if cls is None:
        name = f"{base.__name__}TrainOnly"
        cls = type(name, (base,), {"step": _step_learning_on_recorded, "__module__": __name__,
                                   "__qualname__": name, "_train_only_base": base,
                                   "__doc__": f"{base.__name__} learning on every recorded choice (train_only)."})
        _WRAPPERS[base] = cls
        globals()[name] = cls  # importable by name (pickling, the cache's class key)
    new = copy.copy(agent)
    new.__class__ = cls
    return new


def fold_trials(trials: xr.Dataset, heldout: np.ndarray) -> xr.Dataset:
    """The trials of one fold for :func:`train_only` agents: held-out trials invalid with their choice kept,
    invalid trials of the data with ``choice = -1``.

    Raises
    ------
    ValueError
        If ``heldout`` is not a ``(subject, trial)`` boolean array of the trials' shape, or marks an invalid trial.
    """
    valid = np.asarray(trials["valid"].values, bool)
    heldout = np.asarray(heldout)
    if heldout.shape != valid.shape or heldout.dtype != bool:
        raise ValueError(f"fold_trials: heldout must be a boolean (subject, trial) array of shape {valid.shape}, got "
                         f"{heldout.dtype} {heldout.shape}")
    bad = heldout & ~valid
    if bad.any():
        i, t = np.argwhere(bad)[0]
        raise ValueError(f"fold_trials: trial {int(trials[TRIAL].values[t])} of subject "
                         f"{trials[SUBJECT].values[i]!r} is held out but not valid")
    out = trials.copy()
    out["choice"] = trials["choice"].where(trials["valid"], -1).astype(trials["choice"].dtype)
    out["valid"] = (trials["valid"].dims, valid & ~heldout)
    return out


def _replay_loglik(agent: Agent, trials: xr.Dataset, params: dict) -> np.ndarray:
    """``(subject, trial)`` log-probability of each observed choice under ``agent`` replayed at ``params`` (one
    value per subject), computed with the agent's own ``trial_loglik`` (0 on invalid trials)."""
    env, obs_tm = observations(trials)
    T, n = obs_tm["state"].shape
    p = agent.resolve(params, n)
    s = agent.start(p, env, n, NUMPY)
    out = np.zeros((n, T))
    for t in range(T):
        o = {k: v[t] for k, v in obs_tm.items()}
        s, lat = agent.step(p, s, o, NUMPY)
        out[:, t] = agent.trial_loglik(p, o, lat, NUMPY)
    return out


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
        The estimator (default :class:`neurorl.fitting.MAP`), built as ``estimator(train_only(agent), **options)``.
    progress : bool
        Passed to the estimator.
    rng
        Passed to the estimator (starts).

    Returns
    -------
    xarray.DataArray
        ``(subject, trial)`` log-probability of each held-out choice under the fold that held it out (NaN on invalid
        trials); ``attrs``: ``agent``, ``k``, ``estimator`` and per-fold parameter estimates as JSON.
    """
    from .mle import MAP

    plain = make_agent(agent)
    if isinstance(folds, (int, np.integer)):
        folds = block_folds(trials, int(folds))
    folds = np.asarray(folds, bool)
    valid = np.asarray(trials["valid"].values, bool)
    if folds.ndim != 3 or folds.shape[1:] != valid.shape:
        raise ValueError(f"heldout_loglik_rl: folds must be (k, subject, trial) with (subject, trial) = "
                         f"{valid.shape}; got {folds.shape}")
    est_cls = MAP if estimator is None else estimator
    out = np.full(valid.shape, np.nan)
    fitted = []
    for f in range(folds.shape[0]):
        est = est_cls(train_only(plain), progress=progress, rng=rng, **estimator_options)
        est.fit(fold_trials(trials, folds[f]))
        params = est.params_
        ll = _replay_loglik(plain, trials, {k: np.asarray(params[k].values, float) for k in params.data_vars})
        out[folds[f]] = ll[folds[f]]
        fitted.append({k: np.asarray(params[k].values).round(6).tolist() for k in params.data_vars})
    return xr.DataArray(out, dims=(SUBJECT, TRIAL), coords={SUBJECT: trials[SUBJECT].values,
                                                           TRIAL: trials[TRIAL].values},
                        name="heldout_loglik",
                        attrs={"agent": repr(plain), "k": int(folds.shape[0]), "estimator": est_cls.__name__,
                               "fold_params": json.dumps(fitted)})


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
