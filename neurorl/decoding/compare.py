"""Which candidate latent explains the neural data better (decoding.md §6).

:func:`compare_latents` fits, for every candidate latent (e.g. ``v`` vs
``v_soft``, ``q`` vs ``q_soft``, either critic's RPE), the same OLS encoding
model ``y ~ 1 + nuisance + candidate`` to every unit (and time bin) and scores
it by cross-validated R² on pooled out-of-fold predictions. All candidates use
*identical folds*, and the same pseudosession draws (the candidates of one
draw come from the same regenerated session), so that

1. per unit, the paired difference of held-out scores ``score[a] - score[b]``
   is compared with its own null distribution (the difference expected from
   the candidates' different variance and autocorrelation alone), and the
   population statistic (mean paired difference over units) is calibrated
   against its pseudosession distribution;
2. each candidate's score is also expressed relative to its own null
   (``excess = score - mean null score``, ``p`` per unit), and each unit is
   assigned to the candidate with the largest excess.

The candidates' correlation and variance inflation factors are reported:
near-collinear candidates need a different task, not more statistics (§6).

Assumptions
-----------
[A] Encoding model: OLS with intercept, the nuisance columns and one
candidate (z-scored over trials); cross-validated R² is
``1 - sum((y - yhat_oof)²) / sum((y - mean y)²)`` over the tested trials.
Default folds: ``BlockedKFold(5)``.
[A] ``time="pooled"`` sums activity over the given time bins; ``"resolved"``
scores every (unit, time) target and the population statistics are per time bin.
[A] Null latents are positional (pseudosessions have no trial labels): a null
session with as many trials as the neural data is used in the neural trial
order; one with as many trials as the behavioural session is subset at the
positions of the neural trials. Real nuisance columns are kept in every draw.
[A] Two-sided p-values of differences are centred on the null mean:
``p = (1 + #{|null - mean(null)| >= |obs - mean(null)|}) / (1 + n)``.
[A] ``best``: the candidate with the largest ``excess`` (without a null: the
largest score).
[A] Data rules: NaN or inf activity is an error naming the unit and trial
(drop such trials or units explicitly first). A unit whose activity is the
same on every trial (silent or constant) is excluded with a warning naming it
(attribute ``excluded_constant_units``); all units constant is an error. In a
constant (unit, time) bin of a kept unit the R² is NaN (0/0, never -inf) and
that bin is left out of the population means.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..parallel import map_units
from .cv import cv_splits
from .neural import _as_dataset, align
from .decoders import with_single_threaded_blas
from .nulls import p_value

__all__ = ["compare_latents", "cv_r2_designs"]

_SPEC = re.compile(r"^(.+)\[([^\[\]]+)\]$")


def _spec_name(spec) -> tuple[str, object, str]:
    """(variable, action or None, label) of a candidate spec: name, (name, action) or "name[action]"."""
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(f"compare_latents: a candidate tuple must be (name, action), got {spec!r}")
        return str(spec[0]), spec[1], f"{spec[0]}[{spec[1]}]"
    spec = str(spec)
    m = _SPEC.match(spec)
    if m:
        a = m.group(2)
        return m.group(1), (int(a) if a.lstrip("-").isdigit() else a), spec
    return spec, None, spec


def _column(ds: xr.Dataset, spec, owner) -> np.ndarray:
    """Values of one candidate with the non-trial dims removed (draw/trial kept)."""
    name, action, label = _spec_name(spec)
    if name not in ds:
        raise ValueError(f"{owner}: no variable {name!r} in the latents; variables: {sorted(ds.data_vars)}")
    da = ds[name]
    if action is not None:
        if "action" not in da.dims:
            raise ValueError(f"{owner}: {name!r} has no 'action' dim to select {action!r}")
        da = da.sel(action=action)
    extra = [d for d in da.dims if d not in ("trial", "draw")]
    if extra:
        raise ValueError(f"{owner}: candidate {label!r} has dims {da.dims}; pick one element, e.g. ({name!r}, 0)")
    return da


def _positions(labels, wanted, owner) -> np.ndarray:
    index = {v: i for i, v in enumerate(labels.tolist())}
    if len(index) != len(labels):
        raise ValueError(f"{owner}: the latents' trial labels have duplicates")
    missing = [w for w in wanted.tolist() if w not in index]
    if missing:
        raise ValueError(f"{owner}: no latents for neural trial(s) {missing[:10]}"
                         f"{' ...' if len(missing) > 10 else ''} ({len(missing)} missing)")
    return np.array([index[w] for w in wanted.tolist()], np.int64)


def _zscore(x, axis=-1, owner="compare_latents", what="column"):
    x = np.asarray(x, float)
    sd = x.std(axis=axis, keepdims=True)
    if np.any(sd <= 1e-12):
        raise ValueError(f"{owner}: {what} is constant over the trials")
    return (x - x.mean(axis=axis, keepdims=True)) / sd


def _check_finite(neural: xr.DataArray, owner: str) -> None:
    """NaN or inf activity is an error naming the first unit and trial (exclude such trials explicitly)."""
    vals = np.asarray(neural.values, float)
    bad = ~np.isfinite(vals)
    if bad.any():
        idx = np.argwhere(bad)[0]
        where = ", ".join(f"{d} {_py(neural[d].values[k]) if d in neural.coords else int(k)!r}"
                          for d, k in zip(neural.dims, idx))
        raise ValueError(f"{owner}: neural data are {vals[tuple(idx)]} at {where} ({int(bad.sum())} value(s) "
                         "in all); NaN and inf are not scored -- drop those trials or units explicitly first "
                         "(e.g. neural.dropna('trial', how='any'))")


def _drop_constant_units(act: xr.DataArray, owner: str) -> xr.DataArray:
    """Units whose activity is the same on every trial (in every time bin) carry no signal: excluded, with a
    warning naming them. All units constant is an error."""
    vals = np.asarray(act.values, float).reshape(act.sizes["trial"], act.sizes["unit"], -1)
    const = np.all(np.ptp(vals, axis=0) == 0, axis=-1)  # (unit,)
    if not const.any():
        return act
    names = [_py(u) for u in act["unit"].values[const]] if "unit" in act.coords else np.flatnonzero(const).tolist()
    if const.all():
        raise ValueError(f"{owner}: every unit is constant over the trials (units {names[:10]}); nothing to decode")
    warnings.warn(f"{owner}: unit(s) {names[:20]}{' ...' if len(names) > 20 else ''} ({len(names)} of "
                  f"{const.size}) have the same activity on every trial (silent or constant); they are excluded "
                  "from the scores and the population means", UserWarning, stacklevel=3)
    out = act.isel(unit=np.flatnonzero(~const))
    out.attrs["excluded_constant_units"] = [str(u) for u in names]
    return out


def _py(x):
    return x.item() if isinstance(x, np.generic) else x


def cv_r2_designs(designs: np.ndarray, Y: np.ndarray, splits) -> np.ndarray:
    """Cross-validated R² of OLS for a batch of designs on the same folds.

    Parameters
    ----------
    designs : ndarray (k, n, p)
        ``k`` design matrices (e.g. one per candidate or null draw).
    Y : ndarray (n, m)
        Targets.
    splits : list of (train, test)
        Folds (identical for every design).

    Returns
    -------
    ndarray (k, m)
        ``1 - sum((y - yhat_oof)²) / sum((y - mean y)²)`` over the tested rows;
        training fits use the minimum-norm least-squares solution (pinv).
    """
    D = np.asarray(designs, float)
    k, n, _ = D.shape
    sse = np.zeros((k, Y.shape[1]))
    tested = np.zeros(n, bool)
    for tr, te in splits:
        B = np.linalg.pinv(D[:, tr]) @ Y[tr]  # (k, p, m)
        R = Y[te][None] - D[:, te] @ B
        sse += np.einsum("kij,kij->kj", R, R)
        tested[te] = True
    yt = Y[tested]
    sst = ((yt - yt.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 - sse / sst
    out[:, sst == 0] = np.nan  # R² is undefined for a constant target (never -inf)
    return out


def _nuisance(nuisance, trials, n, owner):
    if nuisance is None:
        return np.zeros((n, 0))
    if isinstance(nuisance, xr.DataArray):
        nuisance = {nuisance.name or "nuisance": nuisance} if nuisance.ndim == 1 else nuisance
    if isinstance(nuisance, Mapping):
        cols = []
        for k, v in nuisance.items():
            if isinstance(v, xr.DataArray):
                if v.dims != ("trial",):
                    raise ValueError(f"{owner}: nuisance {k!r} must have dims ('trial',), got {v.dims}")
                v = v.values[_positions(np.asarray(v["trial"].values), trials, f"{owner}: nuisance {k!r}")]
            v = np.asarray(v, float)
            if v.shape != (n,):
                raise ValueError(f"{owner}: nuisance {k!r} has shape {v.shape}; expected ({n},)")
            cols.append(_zscore(v, owner=owner, what=f"nuisance {k!r}"))
        return np.column_stack(cols) if cols else np.zeros((n, 0))
    if isinstance(nuisance, xr.DataArray):  # (trial, k)
        other = [d for d in nuisance.dims if d != "trial"]
        v = nuisance.transpose("trial", *other).values
        v = v[_positions(np.asarray(nuisance["trial"].values), trials, owner)]
    else:
        v = np.asarray(nuisance, float)
    v = v.reshape(n, -1) if v.ndim == 1 else v
    if v.shape[0] != n:
        raise ValueError(f"{owner}: nuisance has {v.shape[0]} rows for {n} trials")
    return _zscore(v, axis=0, owner=owner, what="a nuisance column")


def _null_scores(base, Y, splits, znull):
    """Cross-validated R² of a block of null draws ``znull`` (k, C, n) -> (k, C, m) (one unit of work)."""
    k, C, n = znull.shape
    z = znull.reshape(-1, n)
    X = np.concatenate([np.broadcast_to(base, (z.shape[0],) + base.shape), z[:, :, None]], axis=2)
    return cv_r2_designs(X, Y, splits).reshape(k, C, Y.shape[1])


def _centred_p(obs, null):
    mu = null.mean(axis=0)
    return p_value(np.abs(obs - mu), np.abs(null - mu))


@with_single_threaded_blas
def compare_latents(neural, latents, candidates=("v", "v_soft"), *, null_latents=None, nuisance=None, cv=None,
                    groups=None, subject=None, time: str = "pooled", batch_size: int = 32,
                    store=None) -> xr.Dataset:
    """Paired held-out comparison of candidate latents per unit and for the population.

    Parameters
    ----------
    neural : xarray.DataArray
        Activity ``(trial, unit[, time])``; ``trial`` holds behavioural trial labels.
    latents : xarray.Dataset
        Latents on ``trial`` (one subject, or pass ``subject=``); matched to
        the neural trials by label (``trial_index`` variable if present, else
        the ``trial`` coordinate).
    candidates : sequence
        At least two candidates: names (``"v_soft"``), ``(name, action)`` or ``"q[1]"``.
    null_latents : xarray.Dataset, optional
        Pseudosessions ``(draw, trial[, action])`` holding every candidate,
        e.g. :func:`neurorl.decoding.nulls.pseudosession_latents`. Without it
        only the raw paired comparison is returned.
    nuisance : mapping, array or DataArray, optional
        Nuisance regressors kept in every model and every null draw (arrays in
        neural trial order; DataArrays matched by trial label).
    cv : int, splitter or list of (train, test)
        Folds shared by every candidate and draw (default ``BlockedKFold(5)``).
    groups : array or str, optional
        Groups for group splitters, or a ``trial`` coordinate name of ``neural``.
    subject : optional
        Subject of multi-subject latents.
    time : {"pooled", "resolved"}
    batch_size : int
        Null draws fitted together: one unit of :mod:`neurorl.parallel` per batch (local processes or a Dask
        cluster inside ``with neurorl.parallel.parallel(...)``; the scores draw no random numbers).
    store : str or path-like, optional
        Directory of a resumable null distribution: every finished batch is written there and a rerun with the same
        inputs loads it (:class:`neurorl.parallel.UnitStore`).

    Returns
    -------
    xarray.Dataset
        ``score`` (candidate, unit[, time]): cross-validated R²;
        ``difference`` (pair, unit[, time]) and ``population_diff`` (pair[, time]):
        paired differences ``score[a] - score[b]`` and their mean over units;
        ``correlation`` (candidate, candidate_b) and ``vif`` (candidate).
        With ``null_latents`` also ``null_score`` (draw, candidate, unit[, time]),
        ``null_mean``, ``excess`` and ``p`` (candidate, unit[, time]; one-sided,
        score above its null), ``p_diff`` (pair, unit[, time]; two-sided),
        ``null_population_diff`` (draw, pair[, time]), ``p_population``
        (pair[, time]; two-sided), ``population_score`` / ``p_population_score``
        (candidate[, time]), and ``best`` (unit[, time]).
    """
    owner = "compare_latents"
    if not isinstance(neural, xr.DataArray) or not {"trial", "unit"} <= set(neural.dims):
        raise ValueError(f"{owner}: neural must be a DataArray with dims ('trial', 'unit'[, 'time'])")
    if time not in ("pooled", "resolved"):
        raise ValueError(f"{owner}: time must be 'pooled' or 'resolved', got {time!r}")
    cands = list(candidates)
    if len(cands) < 2:
        raise ValueError(f"{owner}: need at least two candidates, got {cands}")
    labels_c = [_spec_name(c)[2] for c in cands]
    if len(set(labels_c)) != len(labels_c):
        raise ValueError(f"{owner}: candidates repeat: {labels_c}")
    has_time = "time" in neural.dims
    if time == "resolved" and not has_time:
        raise ValueError(f"{owner}: time='resolved' needs a 'time' dim")
    _check_finite(neural, owner)
    act = neural.sum("time") if (has_time and time == "pooled") else neural
    tdims = ("time",) if time == "resolved" else ()
    act = act.transpose("trial", "unit", *tdims)
    act = _drop_constant_units(act, owner)
    trials = np.asarray(act["trial"].values)
    n = trials.size
    Y = np.asarray(act.values, float).reshape(n, -1)
    tshape = act.shape[1:]
    tcoords = {d: act[d].values for d in act.dims[1:]}

    _, table = align(neural, latents, subject=subject, strict=False)  # by trial label, ordered like neural
    n_behav, pos = _as_dataset(latents).sizes["trial"], table["position"].values
    Zc = np.column_stack([_zscore(_column(table, c, owner).values, owner=owner, what=f"candidate {lab!r}")
                          for c, lab in zip(cands, labels_c)])  # (n, C)
    N = _nuisance(nuisance, trials, n, owner)
    ones = np.ones((n, 1))
    g = groups
    if isinstance(g, str):
        if g not in neural.coords:
            raise ValueError(f"{owner}: groups={g!r} is not a coordinate of the neural data")
        g = np.asarray(neural[g].values)
    splits = cv_splits(cv, n, g, owner=owner)

    def designs(z):  # z (k, n) -> (k, n, p)
        k = z.shape[0]
        base = np.concatenate([ones, N], axis=1)
        return np.concatenate([np.broadcast_to(base, (k,) + base.shape), z[:, :, None]], axis=2)

    C = len(cands)
    score = cv_r2_designs(designs(Zc.T), Y, splits)  # (C, m)
    pairs = list(itertools.combinations(range(C), 2))
    pair_labels = [f"{labels_c[i]}-{labels_c[j]}" for i, j in pairs]
    diff = np.stack([score[i] - score[j] for i, j in pairs])  # (P, m)

    def unit_da(arr, lead_dim, lead_coords):
        arr = np.asarray(arr)
        return xr.DataArray(arr.reshape((arr.shape[0],) + tshape), dims=(lead_dim,) + act.dims[1:],
                            coords={lead_dim: lead_coords, **tcoords})

    def pop(arr):  # (..., m) -> (..., [time]) mean over units; constant (unit, time) bins (NaN) left out
        a = arr.reshape(arr.shape[:-1] + tshape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmean(a, axis=-1 - len(tdims))

    corr = np.corrcoef(Zc.T)
    try:
        vif = np.diag(np.linalg.inv(corr))
    except np.linalg.LinAlgError:
        vif = np.full(C, np.inf)
    ds = xr.Dataset({
        "score": unit_da(score, "candidate", labels_c),
        "difference": unit_da(diff, "pair", pair_labels),
        "population_diff": (("pair",) + tdims, pop(diff)),
        "correlation": (("candidate", "candidate_b"), corr),
        "vif": ("candidate", vif),
    }, coords={"candidate": labels_c, "candidate_b": labels_c, "pair": pair_labels,
               **({"time": act["time"].values} if tdims else {})})

    if null_latents is not None:
        if isinstance(null_latents, Mapping) and not isinstance(null_latents, xr.Dataset):
            null_latents = xr.Dataset({k: (("draw", "trial"), np.asarray(v, float)) for k, v in null_latents.items()})
        if not isinstance(null_latents, xr.Dataset) or "trial" not in null_latents.dims:
            raise ValueError(f"{owner}: null_latents must be a Dataset (draw, trial, ...) holding every candidate")
        T0 = null_latents.sizes["trial"]
        if T0 == n:
            npos = np.arange(n)
        elif T0 == n_behav:
            npos = pos
        else:
            raise ValueError(f"{owner}: null sessions have {T0} trials; expected {n} (neural) or {n_behav} "
                             "(behavioural session)")
        draw_dim = [d for d in null_latents[_spec_name(cands[0])[0]].dims if d not in ("trial", "action")]
        if len(draw_dim) != 1:
            raise ValueError(f"{owner}: null_latents need one draw dim besides 'trial'")
        ddim = draw_dim[0]
        Znull = np.stack([_column(null_latents, c, owner).transpose(ddim, "trial").values[:, npos] for c in cands],
                         axis=1)  # (D, C, n)
        Znull = _zscore(Znull, axis=-1, owner=owner, what="a null draw of a candidate")
        D = Znull.shape[0]
        b = max(1, int(batch_size))
        base = np.concatenate([ones, N], axis=1)
        blocks = [Znull[s:s + b] for s in range(0, D, b)]  # units of neurorl.parallel (deterministic scores)
        study = None
        if store is not None:
            from ..parallel import array_digest as _digest

            study = {"function": "compare_latents", "null": _digest(Znull), "base": _digest(base), "Y": _digest(Y),
                     "splits": [[_digest(tr), _digest(te)] for tr, te in splits], "batch_size": b}
        null_score = np.concatenate(map_units(functools.partial(_null_scores, base, Y, splits), blocks,
                                              desc="null draws", store=store, study=study), axis=0)
        null_diff = np.stack([null_score[:, i] - null_score[:, j] for i, j in pairs], axis=1)  # (D, P, m)
        null_mean = null_score.mean(axis=0)
        excess = score - null_mean
        p_unit = np.stack([p_value(score[c], null_score[:, c]) for c in range(C)])
        p_diff = np.stack([_centred_p(diff[k], null_diff[:, k]) for k in range(len(pairs))])
        pop_diff, null_pop_diff = pop(diff), pop(null_diff)
        pop_score, null_pop_score = pop(score), pop(null_score)
        draws = null_latents[ddim].values if ddim in null_latents.coords else np.arange(D)
        ds["null_score"] = xr.DataArray(null_score.reshape((D, C) + tshape), dims=("draw", "candidate") + act.dims[1:],
                                        coords={"draw": draws, "candidate": labels_c, **tcoords})
        ds["null_mean"] = unit_da(null_mean, "candidate", labels_c)
        ds["excess"] = unit_da(excess, "candidate", labels_c)
        ds["p"] = unit_da(p_unit, "candidate", labels_c)
        ds["p_diff"] = unit_da(p_diff, "pair", pair_labels)
        ds["null_population_diff"] = (("draw", "pair") + tdims, null_pop_diff)
        ds["p_population"] = (("pair",) + tdims, _centred_p(pop_diff, null_pop_diff))
        ds["population_score"] = (("candidate",) + tdims, pop_score)
        ds["p_population_score"] = (("candidate",) + tdims, p_value(pop_score, null_pop_score))
        best_from = excess
    else:
        best_from = score
    undefined = np.all(np.isnan(best_from), axis=0)
    best = np.where(undefined, "", np.asarray(labels_c)[np.argmax(np.nan_to_num(best_from, nan=-np.inf), axis=0)])
    ds["best"] = xr.DataArray(best.reshape(tshape), dims=act.dims[1:], coords=tcoords)
    ds = ds.assign_coords({k: c for k, c in act.coords.items() if c.dims == ("unit",)})
    ds.attrs.update(model="OLS y ~ 1 + nuisance + candidate, cross-validated R2", time_mode=time,
                    n_folds=len(splits), n_nuisance=int(N.shape[1]),
                    excluded_constant_units=json.dumps(act.attrs.get("excluded_constant_units", [])))
    return ds
