"""Exact cross-validation folds.

Folds are contiguous blocks of each subject's valid trials: the agent is replayed over every trial (learning never
skips a held-out trial), and only the held-out trials of a fold are scored. Every estimator that reports an
out-of-sample log-likelihood (the RL models, the RNNs fitted to behaviour) takes its folds from here, so that their
pointwise scores are paired trial by trial.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..schema import SUBJECT

__all__ = ["block_folds", "as_folds", "CVResult", "exact_cv", "cv_models", "cv_compare", "loso_cv", "loo_with_fallback", "unreliable_loo_subjects",
           "K_APPROX_MAX", "HIGH_K_FRACTION_MAX"]


def block_folds(trials: xr.Dataset | np.ndarray, k: int = 5) -> np.ndarray:
    """Held-out masks for K-fold cross-validation over contiguous blocks of trials within each subject.

    Parameters
    ----------
    trials
        A trials dataset (its ``valid`` mask is used) or a boolean ``(subject, trial)`` array of valid trials.
    k
        Number of folds (at least 2).

    Returns
    -------
    numpy.ndarray
        Boolean array ``(k, subject, trial)``: ``folds[f]`` marks the trials held out in fold ``f``. Each subject's
        valid trials, in order, are cut into ``k`` contiguous blocks whose sizes differ by at most one (earlier blocks
        take the extra trials); every valid trial is held out in exactly one fold and padding in none.

    Raises
    ------
    ValueError
        If ``k < 2`` or a subject has fewer than ``k`` valid trials (the error names the subject).
    """
    if isinstance(trials, xr.Dataset):
        valid = np.asarray(trials["valid"].values, dtype=bool)
        names = [str(s) for s in trials["subject"].values] if "subject" in trials.coords else None
    else:
        valid = np.asarray(trials, dtype=bool)
        names = None
    if valid.ndim != 2:
        raise ValueError(f"block_folds needs a (subject, trial) mask; got shape {valid.shape}")
    k = int(k)
    if k < 2:
        raise ValueError(f"block_folds needs k >= 2 folds; got k={k}")
    folds = np.zeros((k,) + valid.shape, dtype=bool)
    for s in range(valid.shape[0]):
        idx = np.flatnonzero(valid[s])
        if idx.size < k:
            who = names[s] if names else s
            raise ValueError(f"subject {who!r} has {idx.size} valid trials, fewer than the k={k} folds")
        for f, block in enumerate(np.array_split(idx, k)):
            folds[f, s, block] = True
    return folds


# ============================================================================ exact K-fold refits
#
# How the training objective is built from the public compiled likelihood (no change to the backend)
# ----------------------------------------------------------------------------------------------------
# The compiled likelihood scores the valid trials of a row and leaves the agent's state unchanged on invalid ones,
# so marking the held-out trials invalid would also stop learning from them. Instead, with ``S(c)`` the sum of a
# subject's per-trial log-likelihoods over its trials before ``c`` (the row with every trial from ``c`` on marked
# invalid: later trials cannot change earlier ones), the log-likelihood of the training trials of a fold holding
# out the contiguous block ``[a, b)`` is exactly
#
#     S(T) - S(b) + S(a)
#
# Each subject is evaluated as three rows of one compiled call (full, truncated at ``b``, truncated at ``a``), and
# the value, exact gradient and exact Hessian of the training objective are the same signed sums. The agent is
# therefore replayed over every trial, learning from the held-out ones, and only the training trials enter the
# fit; the held-out trials are then scored at the refitted parameters (the full row's pointwise terms).
# What the backend could offer instead: a per-trial score weight (``0/1``) input to the compiled likelihood, which
# would need one row per subject instead of three.




def as_folds(trials: xr.Dataset, folds, where: str) -> np.ndarray:
    """``folds`` as a boolean ``(k, subject, trial)`` array on the grid of ``trials`` (an int ``k`` gives
    :func:`block_folds`); ``where`` names the caller in the error."""
    if isinstance(folds, (int, np.integer)):
        folds = block_folds(trials, int(folds))
    folds = np.asarray(folds, bool)
    shape = trials["valid"].shape
    if folds.ndim != 3 or folds.shape[1:] != shape:
        raise ValueError(f"{where}: folds must be (k, subject, trial) with (subject, trial) = {shape}; got "
                         f"{folds.shape}")
    return folds

@dataclass
class CVResult:
    """Result of :func:`exact_cv` (or :func:`loso_cv`).

    Attributes
    ----------
    elpd : float
        Sum over the held-out trials (subjects for LOSO) of the out-of-sample log-likelihood.
    se : float
        ``sqrt(N var(elpd_i))`` over the ``N`` held-out points.
    n_points : int
    pointwise : xarray.Dataset
        ``elpd_cv`` (subject, trial; NaN where not scored) and ``elpd_subject`` (subject); for K-fold also ``fold``
        (subject, trial: the fold that held the trial out, -1 for padding), ``converged`` (fold, subject) and
        ``theta_fold`` (fold, param, subject: each fold's refitted estimate on the unconstrained scale).
    method : str
        ``"kfold-blocks"`` or ``"loso"``.
    """

    elpd: float
    se: float
    n_points: int
    pointwise: xr.Dataset
    method: str = "kfold-blocks"

    def to_dataset(self) -> xr.Dataset:
        ds = self.pointwise.copy()
        ds["elpd_total"] = ((), float(self.elpd))
        ds["se"] = ((), float(self.se))
        ds.attrs.update(method=self.method, n_points=int(self.n_points))
        return ds

    def __repr__(self) -> str:
        return (f"CVResult({self.method}: elpd = {self.elpd:.2f} (se {self.se:.2f}), {self.n_points} held-out "
                f"{'subjects' if self.method == 'loso' else 'trials'})")


class _TruncRows:
    """Rows ``[full | truncated at b | truncated at a]`` of each subject, as one ``_Data``-like object."""

    def __init__(self, data, rows: np.ndarray, held: np.ndarray):
        # held: (n_rows, T) bool, one contiguous block per row
        self.env, self.T = data.env, data.T
        self.uniform = {k: v for k, v in data.uniform.items() if k != "valid"}
        m = rows.size
        T = data.T
        base_valid = data.valid[rows]  # (m, T)
        idx_t = np.arange(T)[None, :]
        has = held.any(axis=1)
        a = np.where(has, np.argmax(held, axis=1), T)
        b = np.where(has, T - np.argmax(held[:, ::-1], axis=1), T)
        v_b = base_valid & (idx_t < b[:, None])
        v_a = base_valid & (idx_t < a[:, None])
        valid3 = np.concatenate([base_valid, v_b, v_a], axis=0)  # (3m, T)
        rows3 = np.concatenate([rows, rows, rows])
        self.varying = {k: np.ascontiguousarray(np.asarray(v)[:, rows3]) for k, v in data.varying.items()
                        if k != "valid"}
        self.varying["valid"] = np.ascontiguousarray(valid3.T)
        self.x = None if data.x is None else np.ascontiguousarray(data.x[:, rows3])
        self.n = 3 * m
        self.m = m

    def rows(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        obs = {k: np.ascontiguousarray(v[:, idx]) for k, v in self.varying.items()}
        return obs, (None if self.x is None else np.ascontiguousarray(self.x[:, idx]))


class _TrainObjective:
    """Negative log posterior of the training trials of one fold, per subject row (``mle._Objective`` interface)."""

    def __init__(self, agent, trunc: _TruncRows, layout, mode, prior, quiet):
        from .mle import _Objective

        self.inner = _Objective(agent, trunc, layout, mode, prior, quiet=quiet)
        self.layout, self.data, self.m = layout, trunc, trunc.m

    def __call__(self, theta, rows, order=2):
        rows = np.asarray(rows, dtype=np.int64)
        k = rows.size
        th3 = np.concatenate([theta, theta, theta], axis=1)
        r3 = np.concatenate([rows, rows + self.m, rows + 2 * self.m])
        out = self.inner.loglik(th3, r3, order)
        sign = np.concatenate([np.ones(k), -np.ones(k), np.ones(k)])

        def comb(v, axis):  # the row axis is ``axis`` (last for every output here)
            v = v * sign
            return v[..., :k] + v[..., k:2 * k] + v[..., 2 * k:]

        inner = self.inner
        f = -(comb(out["loglik"], 0) + inner.logprior(theta))
        g = H = None
        if order >= 1:
            g = -comb(out["grad"], 1)
            if inner.mu is not None:
                g = g + inner.prec[:, None] * (theta - inner.mu[:, None])
        if order >= 2:
            H = -comb(out["hess"], 2)
            if inner.mu is not None:
                H = H + (np.eye(theta.shape[0]) * inner.prec)[:, :, None]
        return f, g, H, out["pointwise"][:, :k]


def _fit_parts(fit, trials=None, agent=None, covariates=None):
    """(agent, layout, data, result, prior, options) from a fitted estimator or a saved result dataset."""
    from .loo import _inputs

    if hasattr(fit, "result_"):
        agent_, layout, data, res, mode = _inputs(fit, None, None, None)
        opts = {"bound": fit.bound, "gtol": fit.gtol, "max_iter": fit.max_iter, "mode": mode,
                "optimizer": fit._resolved_optimizer(type("O", (), {"layout": layout})())}
    elif isinstance(fit, xr.Dataset):
        from .mle import AUTO_NEWTON_MAX_PARAMS, MLE

        agent_, layout, data, res, mode = _inputs(fit, trials, agent, covariates)
        d = MLE("q_learning")  # the estimator defaults (a fit file records the bound)
        opts = {"bound": float(res.attrs.get("bound", d.bound)), "gtol": d.gtol, "max_iter": d.max_iter,
                "mode": None, "optimizer": "newton" if layout.n_rows <= AUTO_NEWTON_MAX_PARAMS else "quasi-newton"}
    else:
        raise ValueError(f"exact_cv: pass a fitted MLE/MAP/EMMAP estimator, or its result_ dataset with trials= and "
                         f"agent=; got {type(fit).__name__}")
    prior = None
    if "prior_loc" in res and "prior_scale" in res:
        prior = (np.asarray(res["prior_loc"].values, float), np.asarray(res["prior_scale"].values, float))
    return agent_, layout, data, res, prior, opts


def _cv_problem(fit, k, trials, agent, covariates, folds, subjects, where: str = "exact_cv") -> dict:
    """Everything the folds of one model need (validated): agent, layout, data, prior, options, estimates, folds."""
    agent, layout, data, res, prior, opts = _fit_parts(fit, trials, agent, covariates)
    if folds is None:
        folds = block_folds(data.valid, k)
    folds = np.asarray(folds, dtype=bool)
    if folds.ndim != 3 or folds.shape[1:] != data.valid.shape:
        raise ValueError(f"{where}: folds must have shape (k, {data.n}, {data.T}); got {folds.shape}")
    labels = [s.item() if isinstance(s, np.generic) else s for s in data.subjects]
    if subjects is None:
        sel = np.arange(data.n)
    else:
        want = [s.item() if isinstance(s, np.generic) else s for s in np.atleast_1d(np.asarray(subjects,
                                                                                              dtype=object))]
        missing = [s for s in want if s not in labels]
        if missing:
            raise ValueError(f"{where}: subject(s) {missing} are not in the fit (subjects: {labels[:8]}...)")
        sel = np.array([labels.index(s) for s in want], dtype=np.int64)
    for f in range(folds.shape[0]):
        h = folds[f][sel]
        if np.any(h & ~data.valid[sel]):
            raise ValueError(f"{where}: fold {f} holds out invalid (padding) trials")
        for j, s in enumerate(sel):
            idx = np.flatnonzero(h[j])
            if idx.size and not np.all(data.valid[s, idx[0]:idx[-1] + 1] == h[j, idx[0]:idx[-1] + 1]):
                raise ValueError(f"{where}: fold {f} does not hold out one contiguous block of valid trials for "
                                 f"subject {labels[s]!r}")
    theta_hat = res["theta"].transpose(SUBJECT, ...).values.astype(float).T  # (D, n)
    return {"agent": agent, "layout": layout, "data": data, "prior": prior, "opts": opts, "theta_hat": theta_hat,
            "folds": folds, "sel": sel, "labels": labels}


def _cv_folds_unit(u: dict) -> dict:
    """One unit of exact CV (run by :mod:`neurorl.parallel`): refit one model's subjects in a block of folds.

    Returns ``pointwise`` (fold, trial, subject row: every trial scored at the fold's refitted parameters),
    ``converged`` (fold, subject row) and ``theta`` (fold, param, subject row).
    """
    from .mle import _newton, _quasi_newton

    p = u["problem"]
    data, sel, opts = p["data"], p["sel"], p["opts"]
    run = _newton if opts["optimizer"] == "newton" else _quasi_newton
    pws, conv, theta = [], [], []
    for f in u["folds"]:
        held = p["folds"][f][sel]
        trunc = _TruncRows(data, sel, held)
        obj = _TrainObjective(p["agent"], trunc, p["layout"], opts["mode"], p["prior"], quiet=True)
        out = run(obj, p["theta_hat"][:, sel], np.arange(sel.size), bound=opts["bound"], gtol=opts["gtol"],
                  max_iter=opts["max_iter"])
        pws.append(np.asarray(out["pointwise"], float))
        conv.append(np.asarray(out["converged"], bool))
        theta.append(np.asarray(out["theta"], float))
    return {"pointwise": np.stack(pws), "converged": np.stack(conv), "theta": np.stack(theta)}


def _cv_result(p: dict, parts: list, blocks: list) -> CVResult:
    """Assemble a model's :class:`CVResult` from its fold units (in fold order)."""
    data, sel, folds, labels, layout, agent = p["data"], p["sel"], p["folds"], p["labels"], p["layout"], p["agent"]
    K = folds.shape[0]
    theta_hat = p["theta_hat"]
    elpd = np.full(data.valid.shape, np.nan)
    fold_of = np.full(data.valid.shape, -1, dtype=np.int64)
    conv = np.zeros((K, data.n), dtype=bool)
    theta_fold = np.full((K,) + theta_hat.shape, np.nan)  # (fold, row, subject): each fold's refitted estimate
    for block, part in zip(blocks, parts):
        for b, f in enumerate(block):
            held = folds[f][sel]
            pw = part["pointwise"][b]  # (T, m) at the refitted parameters, full rows
            for j, s in enumerate(sel):
                elpd[s, held[j]] = pw[held[j], j]
                fold_of[s, held[j]] = f
            conv[f, sel] = part["converged"][b]
            theta_fold[f][:, sel] = part["theta"][b]
    not_conv = [labels[s] for s in sel if not conv[:, s].all()]
    if not_conv:
        warnings.warn(f"exact_cv ({agent.name}): the refit did not converge in some fold for subject(s) "
                      f"{not_conv[:8]}; their held-out scores are at the last iterate", UserWarning, stacklevel=4)
    flat = elpd[np.isfinite(elpd)]
    N = flat.size
    coords = {SUBJECT: data.subjects, "trial": data.trials["trial"].values}
    pointwise = xr.Dataset(
        {"elpd_cv": ((SUBJECT, "trial"), elpd), "fold": ((SUBJECT, "trial"), fold_of),
         "elpd_subject": (SUBJECT, np.where(np.isin(np.arange(data.n), sel), np.nansum(elpd, axis=1), np.nan)),
         "converged": (("fold", SUBJECT), conv),
         "theta_fold": (("fold", "param", SUBJECT), theta_fold)},
        coords={**coords, "param": list(layout.names)},
        attrs={"agent": agent.name, "k": int(K), "method": "kfold-blocks"})
    return CVResult(float(flat.sum()), float(math.sqrt(N * np.var(flat))) if N else float("nan"), int(N), pointwise)


def _run_cv(problems: dict, folds_per_unit, store, progress) -> dict:
    """Exact CV of several models: one unit of :mod:`neurorl.parallel` per model x block of folds."""
    from .. import parallel as _par
    from ..results import trials_fingerprint

    _digest = _par.array_digest
    units, blocks_of, study = [], {}, {"function": "exact_cv", "models": {}}
    for name, p in problems.items():
        K = p["folds"].shape[0]
        blocks = [list(map(int, b)) for b in _par.chunks(K, folds_per_unit if folds_per_unit is not None else 1)]
        blocks_of[name] = blocks
        units += [{"name": name, "problem": p, "folds": b} for b in blocks]
        study["models"][name] = {"agent": repr(p["agent"]), "layout": list(p["layout"].names),
                                 "trials": trials_fingerprint(p["data"].trials), "theta": _digest(p["theta_hat"]),
                                 "folds": _digest(p["folds"]), "subjects": _digest(p["sel"]),
                                 "prior": None if p["prior"] is None else [_digest(v) for v in p["prior"]],
                                 "options": p["opts"], "blocks": blocks}
    work = sum(p["sel"].size * p["data"].T * p["folds"].shape[0] for p in problems.values())
    show = progress if progress is not None else work > 200_000
    names = ", ".join(problems)
    parts = _par.map_units(_cv_folds_unit, units, store=store, study=study, progress=bool(show),
                           desc=f"exact CV folds of {names}", compile_key=lambda u: u["name"])
    out, i = {}, 0
    for name, p in problems.items():
        n = len(blocks_of[name])
        out[name] = _cv_result(p, parts[i:i + n], blocks_of[name])
        i += n
    return out


def exact_cv(fit, k: int = 5, *, trials: xr.Dataset | None = None, agent=None, covariates=None,
             folds: np.ndarray | None = None, subjects=None, progress: bool | None = None,
             folds_per_unit: int | None = 1, store=None) -> CVResult:
    """Exact K-fold cross-validation over contiguous blocks of trials, by refitting each fold.

    For each fold (:func:`block_folds`) every subject is refitted, from the full-data estimate, to its training
    trials only (same estimator, same prior: for EM-MAP the fitted group prior, held fixed), with the agent replayed
    over all trials (see the note at the top of this section); its held-out trials are then scored at the refitted
    parameters. Every valid trial is scored exactly once.

    The folds are the units of :mod:`neurorl.parallel` (``folds_per_unit`` folds per unit): inside
    ``with neurorl.parallel.parallel(...)`` they run on local processes or a Dask cluster. A fold's refit is
    deterministic (Newton or quasi-Newton from the full-data estimate), so the result does not depend on where the
    folds run. :func:`cv_models` cross-validates several models in one study.

    Parameters
    ----------
    fit : MLE, MAP or EMMAP, or xarray.Dataset
        A fitted estimator (its agent, data, prior, optimiser settings and estimates are reused), or its
        ``result_`` dataset (as saved by ``neurorl fit``) with ``trials=``, ``agent=`` and ``covariates=``.
    k : int, default 5
        Number of folds.
    trials, agent, covariates
        Only with a result dataset: the trials it was fitted to, its agent and covariates.
    folds : numpy.ndarray, optional
        ``(k, subject, trial)`` held-out masks (default ``block_folds(fit.trials_, k)``); each fold must hold out one
        contiguous block per subject.
    subjects : sequence, optional
        Subject labels to cross-validate (default: all); the others are NaN in the pointwise output and left out of
        the totals.
    progress : bool, optional
        Show a progress bar over units (default: when there is a lot of work).
    folds_per_unit : int or None, default 1
        Folds refitted by one unit of work (None: all folds in one unit).
    store : str or path-like, optional
        Directory of a resumable study: every finished unit is written there and a rerun loads it
        (:class:`neurorl.parallel.UnitStore`).

    Returns
    -------
    CVResult
    """
    p = _cv_problem(fit, k, trials, agent, covariates, folds, subjects)
    return _run_cv({p["agent"].name: p}, folds_per_unit, store, progress)[p["agent"].name]


def cv_models(fits, k: int = 5, *, folds: np.ndarray | None = None, subjects=None, progress: bool | None = None,
              folds_per_unit: int | None = 1, store=None) -> dict:
    """Exact K-fold cross-validation of several models in one study (one unit per model x block of folds).

    Parameters
    ----------
    fits : mapping
        Model name -> a fitted MLE/MAP/EMMAP estimator, or a dict ``{"result": result dataset, "trials": ...,
        "agent": ..., "covariates": ...}`` (a model saved by ``neurorl fit``).
    k, folds, subjects, progress, folds_per_unit, store
        As :func:`exact_cv` (the same folds and subjects for every model, so that the scores are paired).

    Returns
    -------
    dict
        Model name -> :class:`CVResult`, each equal to :func:`exact_cv` of that model alone (for
        :func:`cv_compare`).
    """
    if not fits:
        raise ValueError("cv_models: pass a non-empty mapping model name -> fitted estimator")
    problems = {}
    for name, f in fits.items():
        if isinstance(f, Mapping):
            unknown = sorted(set(f) - {"result", "trials", "agent", "covariates"})
            if unknown or "result" not in f:
                raise ValueError(f"cv_models: model {name!r}: a dict needs 'result' (and 'trials', 'agent', "
                                 f"'covariates'); got keys {sorted(f)}")
            problems[str(name)] = _cv_problem(f["result"], k, f.get("trials"), f.get("agent"), f.get("covariates"),
                                              folds, subjects, where=f"cv_models ({name})")
        else:
            problems[str(name)] = _cv_problem(f, k, None, None, None, folds, subjects, where=f"cv_models ({name})")
    return _run_cv(problems, folds_per_unit, store, progress)


def _loso_unit(u: dict) -> float:
    """One unit of :func:`loso_cv`: refit EM-MAP without subject ``i``, score ``i`` under that group prior."""
    from .mle import EMMAP, MAP

    trials, subs, i, params, names = u["trials"], u["subjects"], u["i"], u["params"], u["names"]
    rest = trials.sel({SUBJECT: np.delete(subs, i)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = EMMAP(**{**params, "progress": False}).fit(rest)
        mu, sd = em.group_mean_.values, em.group_sd_.values
        kw = {k: v for k, v in params.items() if k in MAP._get_param_names()}
        mp = MAP(**{**kw, "prior": {nm: (float(mu[j]), float(sd[j])) for j, nm in enumerate(names)},
                    "progress": False}).fit(trials.sel({SUBJECT: [subs[i]]}))
    return float(mp.result_["laplace_log_evidence"].values[0])


def loso_cv(fit, trials: xr.Dataset, *, progress: bool | None = None, store=None) -> CVResult:
    """Leave-one-subject-out cross-validation of a hierarchical (EM-MAP) fit.

    For each subject ``i`` the EM-MAP estimator (same options) is refitted to the other subjects, and ``i`` is
    scored by its log marginal likelihood under the group prior learnt without it, ``log int p(y_i | theta)
    N(theta; mu_{-i}, sigma_{-i}) d theta`` (Laplace approximation of a MAP fit of ``i`` under that prior). This is
    the out-of-sample score of the group level; the per-trial exact K-fold of :func:`exact_cv` scores the subject
    level.

    Each left-out subject is one unit of :mod:`neurorl.parallel` (local processes or a Dask cluster inside
    ``with neurorl.parallel.parallel(...)``). With an int (or None) ``rng`` every refit uses the estimator's own
    ``rng``, as a serial refit would; with a ``Generator`` the refit of subject ``i`` draws from
    :func:`neurorl.parallel.unit_seed` ``(rng, i)``, so results never depend on the order of the refits.

    Parameters
    ----------
    fit : EMMAP
        A fitted EM-MAP estimator (its options are reused).
    trials : xarray.Dataset
        The trials it was fitted to.
    progress : bool, optional
        A progress bar over subjects (default: more than 10 subjects).
    store : str or path-like, optional
        Directory of a resumable study (:class:`neurorl.parallel.UnitStore`).

    Returns
    -------
    CVResult
        ``elpd`` sums the per-subject scores; ``se = sqrt(N var)`` over subjects; ``pointwise`` has ``elpd_subject``.
    """
    from .. import parallel as _par
    from ..results import trials_fingerprint
    from .mle import EMMAP

    if not isinstance(fit, EMMAP) or not hasattr(fit, "result_"):
        raise ValueError("loso_cv: pass a fitted EMMAP estimator")
    subs = trials[SUBJECT].values
    if subs.size < 3:
        raise ValueError(f"loso_cv: needs at least 3 subjects, got {subs.size}")
    params = fit.get_params()
    names = list(fit.layout_.names)
    root = params.get("rng")
    units = []
    for i in range(subs.size):
        p = dict(params)
        if isinstance(root, np.random.Generator):
            p["rng"] = np.random.default_rng(_par.unit_seed(root, i))
        units.append({"trials": trials, "subjects": subs, "i": i, "params": p, "names": names})
    show = progress if progress is not None else subs.size > 10
    rid = repr(root) if not isinstance(root, np.random.Generator) else \
        repr(_par.unit_seed(root, 0).entropy)  # a Generator by its seed, not its address
    study = {"function": "loso_cv", "params": {k: repr(v) for k, v in params.items() if k != "rng"}, "rng": rid,
             "trials": trials_fingerprint(trials)}
    scores = np.array(_par.map_units(_loso_unit, units, store=store, study=study, progress=bool(show),
                                     desc=f"LOSO {fit.agent_.name}", compile_key=lambda u: 0), dtype=float)
    pointwise = xr.Dataset({"elpd_subject": (SUBJECT, scores)}, coords={SUBJECT: subs},
                           attrs={"agent": fit.agent_.name, "method": "loso"})
    N = subs.size
    return CVResult(float(scores.sum()), float(math.sqrt(N * np.var(scores))), int(N), pointwise, method="loso")


def cv_compare(results, *, equivalent=None) -> xr.Dataset:
    """Rank models by out-of-sample log-likelihood with paired standard errors.

    Parameters
    ----------
    results : mapping
        Model name -> :class:`CVResult` on the same subjects and held-out points.
    equivalent : sequence of sequences, optional
        Equivalence classes, reported together.

    Returns
    -------
    xarray.Dataset
        On dim ``model``: ``elpd``, ``se``, ``delta_elpd`` (best minus model), ``se_delta``
        (``sqrt(N var(elpd_best,i - elpd_model,i))`` over the paired points); attribute ``best`` as
        :func:`neurorl.fitting.compare.verdict` with each model's ``se_delta`` as its margin.
    """
    from .compare import verdict

    names = list(results)
    if not names:
        raise ValueError("cv_compare: pass a non-empty mapping model name -> CVResult")
    key = "elpd_subject" if results[names[0]].method == "loso" else "elpd_cv"
    ref = np.isfinite(results[names[0]].pointwise[key].values)
    flats = []
    for nm in names:
        v = results[nm].pointwise[key].values
        if not np.array_equal(np.isfinite(v), ref):
            raise ValueError(f"cv_compare: results[{nm!r}] is not scored on the same points as results[{names[0]!r}]")
        flats.append(v[ref])
    elpd = np.array([f.sum() for f in flats])
    best = int(np.argmax(elpd))
    N = flats[0].size
    se_delta = np.array([math.sqrt(N * np.var(flats[best] - f)) for f in flats])
    return xr.Dataset(
        {"elpd": ("model", elpd), "se": ("model", [results[nm].se for nm in names]),
         "delta_elpd": ("model", elpd[best] - elpd), "se_delta": ("model", se_delta)},
        coords={"model": names},
        attrs={"best": verdict(dict(zip(names, elpd)), classes=equivalent, higher_is_better=True,
                               margin=dict(zip(names, se_delta))), "method": results[names[0]].method})


#: a subject's Laplace-PSIS-LOO is unreliable when its Laplace approximation is poor (``k_approx`` above this) ...
K_APPROX_MAX = 0.7
#: ... or when more than this fraction of its trials has Pareto k above ``good_k``.
HIGH_K_FRACTION_MAX = 0.1


def unreliable_loo_subjects(loo) -> np.ndarray:
    """Boolean ``(subject,)``: subjects whose Laplace-PSIS-LOO is unreliable (:data:`K_APPROX_MAX`,
    :data:`HIGH_K_FRACTION_MAX`) for a :class:`neurorl.fitting.loo.LOOResult`."""
    pw = loo.pointwise
    k = pw["pareto_k"].values
    n_valid = np.isfinite(pw["elpd_loo"].values).sum(axis=1)
    high = np.nansum(k > loo.good_k, axis=1)
    return (pw["k_approx"].values > K_APPROX_MAX) | (high > HIGH_K_FRACTION_MAX * np.maximum(n_valid, 1))


def loo_with_fallback(loo: dict, refit, *, k: int = 10) -> tuple[dict, list]:
    """Replace unreliable Laplace-PSIS-LOO subjects by exact K-fold CV, for every model alike.

    A subject whose LOO is unreliable for any model (:func:`unreliable_loo_subjects`) is scored by exact K-fold CV
    for every model, so that the pointwise scores stay paired across models; the other subjects keep their LOO
    terms.

    Parameters
    ----------
    loo : dict
        Model name -> :class:`neurorl.fitting.loo.LOOResult` (same subjects and trials).
    refit : callable
        ``refit(name, subjects, k) -> CVResult``: exact CV of that model for those subject labels
        (e.g. ``lambda n, s, k: exact_cv(fits[n], k, subjects=s)``).
    k : int, default 10
        Folds for the exact CV.

    Returns
    -------
    (dict, list)
        Model name -> :class:`CVResult` (method ``"loo+kfold"``, or ``"loo"`` when no subject needed the fallback;
        ``pointwise`` has ``elpd_cv`` and ``source`` (subject): ``"loo"`` or ``"exact-cv"``) for
        :func:`cv_compare`, and the subject labels that fell back.
    """
    names = list(loo)
    subs = loo[names[0]].pointwise[SUBJECT].values
    bad = np.zeros(subs.size, bool)
    for nm in names:
        bad |= unreliable_loo_subjects(loo[nm])
    fallback = [s.item() if isinstance(s, np.generic) else s for s in subs[bad]]
    out = {}
    for nm in names:
        pw = loo[nm].pointwise
        elpd = pw["elpd_loo"].values.copy()
        if fallback:
            cv = refit(nm, fallback, k)
            elpd[bad] = cv.pointwise["elpd_cv"].values[bad]
        flat = elpd[np.isfinite(elpd)]
        ds = xr.Dataset({"elpd_cv": ((SUBJECT, "trial"), elpd), "elpd_subject": (SUBJECT, np.nansum(elpd, axis=1)),
                         "source": (SUBJECT, np.where(bad, "exact-cv", "loo").astype(str))},
                        coords={SUBJECT: subs, "trial": pw["trial"].values})
        out[nm] = CVResult(float(flat.sum()), float(math.sqrt(flat.size * np.var(flat))), int(flat.size), ds,
                           method="loo+kfold" if fallback else "loo")
    return out, fallback
