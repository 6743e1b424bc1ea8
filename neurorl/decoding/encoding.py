"""Encoding models: latents -> neural activity (decoding.md §2, §8).

Reference: decoding.md §2 (mass-univariate OLS, CPD, cross-validated R^2, Poisson GLM scores), §4 (pseudosession
nulls replace only the tested latent), §8 (speed: one pinv per design matrix, one per null draw).

Functions
---------
:func:`design_matrix`
    Latents (and nuisance variables) on ``trial`` -> ``X`` (trial, regressor), optionally standardised.
:func:`ols`
    Mass-univariate OLS for every target at once (one SVD of ``X``): beta, se, t, p (i.i.d.), CPD per regressor,
    R^2, SSE.
:func:`ols_stat`
    One statistic (CPD, t or beta) of one or more regressors, for use inside null distributions.
:func:`ols_null`
    The statistic under many replacements of one column (pseudosession latents): one SVD per draw, batched.
:func:`cv_r2`
    Pooled out-of-fold R^2 per target.
:func:`poisson_glm`
    Poisson GLM per target with log-bin-width offset and optional L2 (fixed or by inner CV); held-out McFadden
    pseudo-R^2, deviance explained and bits per spike.

Formulas
--------
With ``X = U S V^T`` (thin SVD, rank checked), ``B = V S^-1 U^T Y``, ``SSE = sum((Y - X B)^2)``, ``dof = n - p``,
``c_i = [(X^T X)^-1]_ii = sum_k V_ik^2 / s_k^2``, ``se_i = sqrt(SSE / dof * c_i)``, ``t_i = beta_i / se_i``.
Dropping column ``i`` raises the SSE by exactly ``beta_i^2 / c_i`` (the extra sum of squares of one column), so
``CPD_i = [SSE(X_-i) - SSE(X)] / SSE(X_-i) = (beta_i^2 / c_i) / (SSE + beta_i^2 / c_i)`` -- equal to
``t_i^2 / (t_i^2 + dof)`` -- without refitting reduced models [D]. Poisson log-likelihoods include the
``-log y!`` term; ``pseudo_r2 = 1 - LL / LL_null`` (McFadden), ``bits_per_spike = (LL - LL_null) / (N_spikes ln 2)``
with ``LL_null`` from each target's mean count over the evaluated trials [S: nlb_tools ``evaluation.py``].

Assumptions [A]
---------------
* [A1] X and Y are matched by trial label: X is reordered to Y's trials; different label sets raise.
* [A2] A "target" is every combination of Y's non-trial dims (unit x time); each has its own coefficients.
* [A3] Standardisation is a z-score over the trials used (population SD, ddof=0), applied to every column but the
  intercept; the centre and scale are kept as ``regressor`` coordinates. A constant non-intercept column raises.
* [A4] ``r2`` is the centred R^2, ``1 - SSE / sum((y - mean y)^2)``. Constant targets (e.g. a silent bin) give NaN
  t, p, CPD and R^2 (0/0, set explicitly rather than left to rounding), SSE 0 and se 0; never a silent zero.
* [A5] Cross-validation: an integer ``cv`` means contiguous blocks (``sklearn.model_selection.KFold`` without
  shuffling); any splitter with ``split(X, y, groups)`` is accepted. Test sets must not overlap; scores are pooled
  over the trials that some test set covers. A training fold whose design is rank-deficient uses the
  minimum-norm (pinv) solution.
* [A6] Poisson GLM: ``y ~ Poisson(bin_width * exp(x^T w))``; the objective per target is
  ``mean_i(mu_i - y_i eta_i) + l2 / 2 * ||w_-intercept||^2`` (the scale of statsmodels ``fit_regularized`` with
  ``L1_wt=0``); constant columns are not penalised. Without a bin width (argument or ``bin_width_s`` attribute) the
  rate is per bin. Fitted per target by batched damped Newton (exact gradient and p x p Hessian, step halving on
  each target's objective) until every target's max |gradient| is below ``gtol``; targets that Newton leaves
  unconverged go to scipy L-BFGS-B with the exact gradient (all of them in one problem). Measured: L-BFGS-B alone on
  300 targets x 5 regressors takes ~0.5 s, most of it inside L-BFGS-B itself, and stops at gradients ~1e-8 (the
  summed objective no longer changes in floating point); Newton reaches 1e-10 in a few steps.
* [A7] A target with no spikes in a training set has no finite maximum-likelihood intercept: its coefficients and
  predictions are NaN (a warning counts them). Scores of targets with no spikes in the evaluated trials are NaN.
* [A8] With a sequence of ``l2`` values, each target takes the value with the largest pooled held-out
  log-likelihood in an inner blocked CV on its training data (nested inside the outer CV for the scores).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr
from scipy import optimize, special, stats

from ..schema import ACTION, SUBJECT, TRIAL

__all__ = ["REGRESSOR", "design_matrix", "ols", "ols_stat", "ols_null", "cv_r2", "poisson_glm"]

REGRESSOR = "regressor"
DRAW = "draw"
_EPS = np.finfo(float).eps
_SPEC_RE = re.compile(r"^(.+)\[([^\[\]]+)\]$")


def _py(x):
    """A numpy scalar as the Python scalar (for clean messages)."""
    return x.item() if isinstance(x, np.generic) else x


# ----------------------------------------------------------------------------- design matrix
def _label(text):
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _column(table: xr.Dataset, spec):
    """(name, 1-D values over trial) of one regressor spec."""
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(f"design_matrix: a tuple regressor must be (name, action), got {spec!r}")
        var, act = spec
        name = f"{var}[{act}]"
    elif isinstance(spec, str):
        var, act, name = spec, None, spec
        if spec not in table:
            m = _SPEC_RE.match(spec)
            if m and m.group(1) in table:
                var, act = m.group(1), _label(m.group(2))
    else:
        raise TypeError(f"design_matrix: a regressor is a name or (name, action), got {type(spec).__name__}")
    if var not in table:
        raise ValueError(f"design_matrix: no variable {var!r}; available: {sorted(map(str, table.data_vars))}")
    da = table[var]
    if act is not None:
        if ACTION not in da.dims:
            raise ValueError(f"design_matrix: {var!r} has no 'action' dim; use the plain name")
        if act not in set(da[ACTION].values.tolist()):
            raise ValueError(f"design_matrix: action {act!r} not in {var!r} (actions {da[ACTION].values.tolist()})")
        da = da.sel({ACTION: act})
    if da.dims != (TRIAL,):
        hint = " (per-action latent: give (name, action) or 'name[action]')" if ACTION in da.dims else ""
        raise ValueError(f"design_matrix: {name!r} has dims {da.dims}; a regressor needs ('trial',){hint}")
    return name, da


def _one_subject(table: xr.Dataset, what: str) -> xr.Dataset:
    if not isinstance(table, xr.Dataset):
        raise TypeError(f"{what}: expected an xarray.Dataset on 'trial' (see neurorl.decoding.align), "
                        f"got {type(table).__name__}")
    if SUBJECT in table.dims:
        if table.sizes[SUBJECT] != 1:
            raise ValueError(f"{what}: the dataset holds {table.sizes[SUBJECT]} subjects; select one with "
                             "neurorl.decoding.align (which also matches trials to the neural data)")
        table = table.isel({SUBJECT: 0})
    if TRIAL not in table.dims:
        raise ValueError(f"{what}: the dataset has no 'trial' dim")
    if "trial_index" in table and not np.array_equal(table["trial_index"].values, table[TRIAL].values):
        raise ValueError(f"{what}: the dataset's 'trial' positions are not its trial labels ('trial_index'); "
                         "label it with neurorl.decoding.align(neural, data) first")
    return table


def _as_float(name, values, trials):
    v = np.asarray(values)
    if v.dtype.kind not in "biuf":
        raise ValueError(f"design_matrix: regressor {name!r} is not numeric (dtype {v.dtype})")
    v = v.astype(float)
    bad = ~np.isfinite(v)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"design_matrix: regressor {name!r} is {v[i]} on trial {_py(trials[i])!r} "
                         f"({int(bad.sum())} trial(s) in all); exclude those trials explicitly")
    return v


def _reindex_trials(da: xr.DataArray, labels, what: str) -> xr.DataArray:
    """``da`` (with a trial dim) reordered to ``labels``; raises on any mismatch."""
    have = da[TRIAL].values
    if have.shape == np.shape(labels) and np.array_equal(have, labels):
        return da
    import pandas as pd

    idx = pd.Index(have)
    if idx.has_duplicates:
        raise ValueError(f"{what}: duplicate trial labels {idx[idx.duplicated()][:5].tolist()}")
    pos = idx.get_indexer(labels)
    missing = np.asarray(labels)[pos < 0]
    extra = np.setdiff1d(have, labels)
    if missing.size or extra.size:
        raise ValueError(f"{what}: trial labels do not match: missing {missing[:8].tolist()}"
                         f"{' ...' if missing.size > 8 else ''}, extra {extra[:8].tolist()}"
                         f"{' ...' if extra.size > 8 else ''} ({missing.size} missing, {extra.size} extra)")
    return da.isel({TRIAL: pos})


def design_matrix(
    latents: xr.Dataset,
    regressors: Sequence,
    *,
    nuisance=None,
    intercept: bool = True,
    standardize: bool = True,
) -> xr.DataArray:
    """Design matrix ``X`` (trial, regressor) from latents and nuisance variables.

    Parameters
    ----------
    latents : xarray.Dataset
        One subject's variables on ``trial`` (the table returned by :func:`neurorl.decoding.align`; a size-1
        ``subject`` dim is squeezed).
    regressors : sequence
        Latent columns: a variable name with dims ``(trial,)``, or ``(name, action)`` / ``"name[action]"`` for a
        per-action latent such as ``q``.
    nuisance : sequence or mapping, optional
        Nuisance columns: names (as ``regressors``) in ``latents``, or ``{name: values}`` with values a DataArray
        on ``trial`` (matched by label) or an array in the order of ``latents.trial``.
    intercept : bool
        Prepend a column of ones named ``"intercept"``.
    standardize : bool
        z-score every non-intercept column over the trials ([A3]).

    Returns
    -------
    xarray.DataArray
        ``X`` (trial, regressor), float64, named ``"X"``, with ``regressor`` coordinates ``role``
        (``"intercept"``/``"latent"``/``"nuisance"``), ``center`` and ``scale`` (the standardisation) and
        ``standardized``.
    """
    table = _one_subject(latents, "design_matrix")
    trials = table[TRIAL].values
    if isinstance(regressors, (str, tuple)):
        regressors = [regressors]
    cols, roles = {}, {}

    def add(name, values, role):
        if name in cols or name == "intercept" and intercept:
            raise ValueError(f"design_matrix: column {name!r} given twice")
        cols[name] = _as_float(name, values, trials)
        roles[name] = role

    for spec in regressors:
        name, da = _column(table, spec)
        add(name, da.values, "latent")
    if isinstance(nuisance, Mapping):
        for name, vals in nuisance.items():
            if isinstance(vals, xr.DataArray):
                if vals.dims != (TRIAL,):
                    raise ValueError(f"design_matrix: nuisance {name!r} has dims {vals.dims}; expected ('trial',)")
                vals = _reindex_trials(vals, trials, f"design_matrix: nuisance {name!r}").values
            vals = np.asarray(vals)
            if vals.shape != trials.shape:
                raise ValueError(f"design_matrix: nuisance {name!r} has shape {vals.shape}; expected {trials.shape}")
            add(str(name), vals, "nuisance")
    elif nuisance is not None:
        for spec in ([nuisance] if isinstance(nuisance, (str, tuple)) else nuisance):
            name, da = _column(table, spec)
            add(name, da.values, "nuisance")
    if not cols and not intercept:
        raise ValueError("design_matrix: no columns")
    names, mats, role, center, scale, std = [], [], [], [], [], []
    if intercept:
        names.append("intercept")
        mats.append(np.ones(trials.size))
        role.append("intercept")
        center.append(0.0)
        scale.append(1.0)
        std.append(False)
    for name, v in cols.items():
        c, s = float(v.mean()), float(v.std())
        if s <= 1e-12 * max(1.0, abs(c)):
            raise ValueError(f"design_matrix: regressor {name!r} is constant ({c:g}) over the {trials.size} trials")
        if standardize:
            v = (v - c) / s
        else:
            c, s = 0.0, 1.0
        names.append(name)
        mats.append(v)
        role.append(roles[name])
        center.append(c)
        scale.append(s)
        std.append(bool(standardize))
    return xr.DataArray(
        np.column_stack(mats), dims=(TRIAL, REGRESSOR), name="X",
        coords={TRIAL: trials, REGRESSOR: names, "role": (REGRESSOR, role), "center": (REGRESSOR, center),
                "scale": (REGRESSOR, scale), "standardized": (REGRESSOR, std)},
    )


# ----------------------------------------------------------------------------- shared preparation
class _Targets:
    """Y as an (n_trials, n_targets) float64 matrix plus what is needed to wrap results back."""

    def __init__(self, Y: xr.DataArray, what: str):
        if not isinstance(Y, xr.DataArray):
            raise TypeError(f"{what}: Y must be an xarray.DataArray with a 'trial' dim, got {type(Y).__name__}")
        if TRIAL not in Y.dims:
            raise ValueError(f"{what}: Y has no 'trial' dim (dims {Y.dims})")
        Yt = Y.transpose(TRIAL, ...)
        self.dims = Yt.dims[1:]
        self.shape = Yt.shape[1:]
        self.trials = Yt[TRIAL].values
        vals = np.asarray(Yt.values)
        if vals.dtype.kind not in "biuf":
            raise ValueError(f"{what}: Y must be numeric, got dtype {vals.dtype}")
        self.Y = np.ascontiguousarray(vals.reshape(vals.shape[0], -1), dtype=np.float64)
        bad = ~np.isfinite(self.Y)
        if bad.any():
            i, j = (int(k) for k in np.argwhere(bad)[0])
            pos = np.unravel_index(j, self.shape)
            where = {d: _py(Yt[d].values[k]) if d in Yt.coords else int(k) for d, k in zip(self.dims, pos)}
            raise ValueError(f"{what}: Y is {self.Y[i, j]} on trial {_py(self.trials[i])!r} at {where} "
                             f"({int(bad.sum())} value(s) in all); exclude them explicitly")
        self.constant = np.ptp(self.Y, axis=0) == 0  # t, p, CPD and R^2 are 0/0 there ([A4])
        self.coords = {k: c for k, c in Yt.coords.items() if TRIAL not in c.dims}
        self.attrs = dict(Y.attrs)

    def wrap(self, arr, lead=None, name=None):
        """(k, m) or (m,) array -> DataArray with the target dims (and a leading dim ``lead = (name, coords)``)."""
        arr = np.asarray(arr)
        if lead is None:
            return xr.DataArray(arr.reshape(self.shape), dims=self.dims, coords=self.coords, name=name)
        dim, coords = lead
        return xr.DataArray(arr.reshape((arr.shape[0],) + tuple(self.shape)), dims=(dim,) + tuple(self.dims),
                            coords={**self.coords, **coords}, name=name)


def _design(X: xr.DataArray, trials, what: str):
    """X reordered to ``trials`` -> (values, regressor names, regressor coords)."""
    if not isinstance(X, xr.DataArray):
        raise TypeError(f"{what}: X must be a DataArray (trial, regressor) such as design_matrix() returns, "
                        f"got {type(X).__name__}")
    if set(X.dims) != {TRIAL, REGRESSOR} or X.ndim != 2:
        raise ValueError(f"{what}: X must have dims ('trial', 'regressor'), has {X.dims}")
    X = _reindex_trials(X.transpose(TRIAL, REGRESSOR), trials, f"{what}: X vs Y")
    vals = np.asarray(X.values, dtype=np.float64)
    if not np.all(np.isfinite(vals)):
        raise ValueError(f"{what}: X has non-finite values")
    coords = {k: c for k, c in X.coords.items() if TRIAL not in c.dims}
    return vals, [str(r) for r in X[REGRESSOR].values], coords, X


def _svd(Xv, names, what):
    n, p = Xv.shape
    if n <= p:
        raise ValueError(f"{what}: {n} trials for {p} regressors; need more trials than regressors")
    U, s, Vt = np.linalg.svd(Xv, full_matrices=False)
    tol = s[0] * max(n, p) * _EPS
    rank = int((s > tol).sum())
    if rank < p:
        v = Vt[-1]
        involved = [names[j] for j in np.flatnonzero(np.abs(v) > 1e-8 * np.abs(v).max())]
        raise ValueError(f"{what}: design matrix is rank-deficient (rank {rank} < {p} columns); collinear "
                         f"regressors: {involved}")
    return U, s, Vt


def _regressor_index(names, regressor, what):
    single = isinstance(regressor, str)
    regs = [regressor] if single else list(regressor)
    idx = []
    for r in regs:
        if r not in names:
            raise ValueError(f"{what}: no regressor {r!r} in X; regressors: {names}")
        idx.append(names.index(r))
    return single, regs, np.array(idx)


# ----------------------------------------------------------------------------- OLS
def ols(X: xr.DataArray, Y: xr.DataArray) -> xr.Dataset:
    """Mass-univariate OLS of every target of ``Y`` on ``X`` (one SVD of ``X``).

    Parameters
    ----------
    X : xarray.DataArray
        Design (trial, regressor), e.g. from :func:`design_matrix`; matched to ``Y`` by trial label.
    Y : xarray.DataArray
        Activity with a ``trial`` dim and any others (``unit``, ``time``); counts or rates, finite.

    Returns
    -------
    xarray.Dataset
        ``beta``, ``se``, ``t``, ``p`` (two-sided, i.i.d. Student t with ``dof`` degrees of freedom -- invalid for
        slowly drifting latents, see decoding.md §4), ``cpd`` (coefficient of partial determination of each
        regressor), all (regressor, *target dims); ``r2``, ``sse``, ``sigma2`` (*target dims); ``dof`` (scalar,
        also an attribute) and attribute ``n_trials``.
    """
    tg = _Targets(Y, "ols")
    Xv, names, xco, _ = _design(X, tg.trials, "ols")
    n, p = Xv.shape
    U, s, Vt = _svd(Xv, names, "ols")
    Vs = Vt.T / s  # (p, p): V S^-1
    B = Vs @ (U.T @ tg.Y)
    R = tg.Y - Xv @ B
    sse = np.einsum("ij,ij->j", R, R)
    dof = n - p
    cdiag = np.einsum("ij,ij->i", Vs, Vs)
    sigma2 = sse / dof
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.sqrt(sigma2[None, :] * cdiag[:, None])
        t = B / se
        pval = 2.0 * stats.t.sf(np.abs(t), dof)
        extra = B**2 / cdiag[:, None]
        cpd = extra / (sse[None, :] + extra)
        yc = tg.Y - tg.Y.mean(axis=0)
        r2 = 1.0 - sse / np.einsum("ij,ij->j", yc, yc)
    c = tg.constant
    if c.any():
        sse[c], sigma2[c], r2[c] = 0.0, 0.0, np.nan
        se[:, c], t[:, c], pval[:, c], cpd[:, c] = 0.0, np.nan, np.nan, np.nan
    lead = (REGRESSOR, {REGRESSOR: names, **xco})
    ds = xr.Dataset({
        "beta": tg.wrap(B, lead), "se": tg.wrap(se, lead), "t": tg.wrap(t, lead), "p": tg.wrap(pval, lead),
        "cpd": tg.wrap(cpd, lead), "r2": tg.wrap(r2), "sse": tg.wrap(sse), "sigma2": tg.wrap(sigma2),
        "dof": ((), int(dof)),
    })
    ds.attrs.update({"dof": int(dof), "n_trials": int(n), "model": "mass-univariate OLS"})
    return ds


def _stat_from(beta_i, cii, sse, dof, stat):
    with np.errstate(divide="ignore", invalid="ignore"):
        if stat == "beta":
            return beta_i
        if stat == "t":
            return beta_i / np.sqrt(sse / dof * cii)
        extra = beta_i**2 / cii
        return extra / (sse + extra)


_STATS = ("cpd", "t", "beta")


def ols_stat(X: xr.DataArray, Y: xr.DataArray, regressor, *, stat: str = "cpd") -> xr.DataArray:
    """One OLS statistic of one regressor (or several) for every target.

    Parameters
    ----------
    X, Y : xarray.DataArray
        As in :func:`ols`.
    regressor : str or sequence of str
        Regressor name(s) in ``X``.
    stat : {"cpd", "t", "beta"}
        Coefficient of partial determination, t-value or coefficient.

    Returns
    -------
    xarray.DataArray
        Over the target dims (with a leading ``regressor`` dim when ``regressor`` is a sequence).
    """
    if stat not in _STATS:
        raise ValueError(f"ols_stat: stat must be one of {_STATS}, got {stat!r}")
    tg = _Targets(Y, "ols_stat")
    Xv, names, xco, _ = _design(X, tg.trials, "ols_stat")
    single, regs, idx = _regressor_index(names, regressor, "ols_stat")
    U, s, Vt = _svd(Xv, names, "ols_stat")
    W = U.T @ tg.Y  # (p, m) = S^-1 V^T X^T Y
    sse = np.maximum(np.einsum("ij,ij->j", tg.Y, tg.Y) - np.einsum("ij,ij->j", W, W), 0.0)
    Vs = Vt.T[idx] / s  # rows of V S^-1 for the requested regressors
    beta = Vs @ W
    cii = np.einsum("ij,ij->i", Vs, Vs)[:, None]
    out = _stat_from(beta, cii, sse[None, :], Xv.shape[0] - Xv.shape[1], stat)
    if stat != "beta":
        out[:, tg.constant] = np.nan
    if single:
        return tg.wrap(out[0], name=stat)
    sub = {k: (REGRESSOR, np.asarray(c.values)[idx]) for k, c in xco.items() if c.dims == (REGRESSOR,)}
    return tg.wrap(out, (REGRESSOR, {**sub, REGRESSOR: regs}), name=stat)


def ols_null(
    X: xr.DataArray,
    Y: xr.DataArray,
    regressor: str,
    null_columns,
    *,
    stat: str = "cpd",
    standardize: bool | None = None,
    chunk: int = 64,
) -> xr.DataArray:
    """The OLS statistic of ``regressor`` with its column replaced by each null draw (e.g. pseudosessions).

    The other columns (intercept, nuisance) stay as they are (decoding.md §4). Each draw costs one SVD of its own
    design and small products; ``X^T Y`` of the fixed columns and ``Z Y`` of all draws are computed once.

    Parameters
    ----------
    X, Y : xarray.DataArray
        The observed design and activity (as in :func:`ols`).
    regressor : str
        The tested column of ``X``.
    null_columns : array_like (n_draws, n_trials) or xarray.DataArray
        Replacement values. A DataArray must have a ``trial`` dim (matched by label to ``X``/``Y``) and one other
        dim (the draws). A plain array's rows follow ``Y``'s trial order.
    stat : {"cpd", "t", "beta"}
    standardize : bool, optional
        z-score each draw over trials. Default: as the tested column of ``X`` was (its ``standardized``
        coordinate), else False.
    chunk : int
        Draws processed together (memory ~ chunk * n_regressors * n_targets floats).

    Returns
    -------
    xarray.DataArray
        (draw, *target dims).
    """
    if stat not in _STATS:
        raise ValueError(f"ols_null: stat must be one of {_STATS}, got {stat!r}")
    tg = _Targets(Y, "ols_null")
    Xv, names, _, Xa = _design(X, tg.trials, "ols_null")
    _, _, idx = _regressor_index(names, regressor, "ols_null")
    i = int(idx[0])
    n, p = Xv.shape
    draw_coords = {}
    if isinstance(null_columns, xr.DataArray):
        if TRIAL not in null_columns.dims or null_columns.ndim != 2:
            raise ValueError(f"ols_null: null_columns must have dims (draw, 'trial'), has {null_columns.dims}")
        nc = _reindex_trials(null_columns, tg.trials, "ols_null: null_columns vs Y")
        ddim = [d for d in nc.dims if d != TRIAL][0]
        nc = nc.transpose(ddim, TRIAL)
        if ddim in nc.coords:
            draw_coords = {DRAW: nc[ddim].values}
        Z = np.asarray(nc.values, dtype=float)
    else:
        Z = np.asarray(null_columns, dtype=float)
        if Z.ndim == 1:
            Z = Z[None]
        if Z.ndim != 2 or Z.shape[1] != n:
            raise ValueError(f"ols_null: null_columns has shape {Z.shape}; expected (n_draws, {n})")
    if not np.all(np.isfinite(Z)):
        d, k = (int(v) for v in np.argwhere(~np.isfinite(Z))[0])
        raise ValueError(f"ols_null: null column of draw {d} is not finite on trial {_py(tg.trials[k])!r}")
    if standardize is None:
        standardize = bool(Xa["standardized"].values[i]) if "standardized" in Xa.coords else False
    if standardize:
        sd = Z.std(axis=1, keepdims=True)
        if (sd <= 1e-12).any():
            raise ValueError(f"ols_null: draw {int(np.flatnonzero(sd[:, 0] <= 1e-12)[0])} is constant over trials")
        Z = (Z - Z.mean(axis=1, keepdims=True)) / sd
    n_draws = Z.shape[0]
    dof = n - p
    Ym = tg.Y
    yy = np.einsum("ij,ij->j", Ym, Ym)
    XtY = Xv.T @ Ym  # (p, m), row i replaced per draw
    out = np.empty((n_draws, Ym.shape[1]))
    tol_scale = max(n, p) * _EPS
    for start in range(0, n_draws, max(1, int(chunk))):
        z = Z[start:start + chunk]
        k = z.shape[0]
        Xd = np.broadcast_to(Xv, (k, n, p)).copy()
        Xd[:, :, i] = z
        _, s, Vt = np.linalg.svd(Xd, full_matrices=False)  # one SVD (pinv) per draw
        bad = s[:, -1] <= s[:, 0] * tol_scale
        if bad.any():
            raise ValueError(f"ols_null: the design of draw {start + int(np.flatnonzero(bad)[0])} is rank-deficient "
                             f"(the null column is collinear with the others)")
        G = np.broadcast_to(XtY, (k,) + XtY.shape).copy()
        G[:, i, :] = z @ Ym
        W = (Vt @ G) / s[:, :, None]  # U^T Y = S^-1 V^T X^T Y, (k, p, m)
        sse = np.maximum(yy[None, :] - np.einsum("dkm,dkm->dm", W, W), 0.0)
        vi = Vt[:, :, i] / s  # row i of V S^-1, (k, p)
        beta = np.einsum("dk,dkm->dm", vi, W)
        cii = np.einsum("dk,dk->d", vi, vi)[:, None]
        out[start:start + k] = _stat_from(beta, cii, sse, dof, stat)
    if stat != "beta":
        out[:, tg.constant] = np.nan
    if not draw_coords:
        draw_coords = {DRAW: np.arange(n_draws)}
    da = tg.wrap(out, (DRAW, draw_coords), name=stat)
    da.attrs.update({"regressor": regressor, "stat": stat, "n_draws": int(n_draws)})
    return da


# ----------------------------------------------------------------------------- cross-validation
def _splits(cv, n, groups):
    if isinstance(cv, (int, np.integer)):
        from sklearn.model_selection import KFold

        if not 2 <= int(cv) <= n:
            raise ValueError(f"cv: need 2 <= n_splits <= n_trials ({n}), got {cv}")
        cv = KFold(int(cv), shuffle=False)
    if not hasattr(cv, "split"):
        raise TypeError(f"cv must be an int or a splitter with split(X, y, groups), got {type(cv).__name__}")
    dummy = np.zeros((n, 1))
    out = [(np.asarray(tr, dtype=np.int64), np.asarray(te, dtype=np.int64)) for tr, te in cv.split(dummy, None, groups)]
    seen = np.zeros(n, bool)
    for _, te in out:
        if seen[te].any():
            raise ValueError("cv: test sets overlap; pooled out-of-fold scores need disjoint test sets")
        seen[te] = True
    return out, seen


def cv_r2(X: xr.DataArray, Y: xr.DataArray, *, cv=5, groups=None, return_predictions: bool = False):
    """Cross-validated R^2 of the OLS encoding model, on pooled out-of-fold predictions.

    ``R^2 = 1 - sum (y - yhat_oof)^2 / sum (y - mean y)^2`` over the trials covered by test sets (may be negative).

    Parameters
    ----------
    X, Y : xarray.DataArray
        As in :func:`ols`.
    cv : int or splitter
        Number of contiguous folds, or an object with ``split(X, y, groups)`` (e.g.
        ``neurorl.decoding.BlockedKFold``).
    groups : array_like, optional
        Passed to ``cv.split``.
    return_predictions : bool
        Also return the out-of-fold predictions (trial, *target dims), NaN on uncovered trials.

    Returns
    -------
    xarray.DataArray or (xarray.DataArray, xarray.DataArray)
        ``cv_r2`` over the target dims.
    """
    tg = _Targets(Y, "cv_r2")
    Xv, _, _, _ = _design(X, tg.trials, "cv_r2")
    n = Xv.shape[0]
    folds, covered = _splits(cv, n, groups)
    pred = np.full(tg.Y.shape, np.nan)
    for tr, te in folds:
        B = np.linalg.pinv(Xv[tr]) @ tg.Y[tr]
        pred[te] = Xv[te] @ B
    y = tg.Y[covered]
    res = y - pred[covered]
    yc = y - y.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = 1.0 - np.einsum("ij,ij->j", res, res) / np.einsum("ij,ij->j", yc, yc)
    r2[np.ptp(y, axis=0) == 0] = np.nan
    out = tg.wrap(r2, name="cv_r2")
    out.attrs.update({"n_splits": len(folds), "n_trials_scored": int(covered.sum())})
    if not return_predictions:
        return out
    pr = xr.DataArray(pred.reshape((n,) + tuple(tg.shape)), dims=(TRIAL,) + tuple(tg.dims),
                      coords={TRIAL: tg.trials, **tg.coords}, name="prediction")
    return out, pr


# ----------------------------------------------------------------------------- Poisson GLM
def _poisson_objective(Xv, Y, W, offset, penm):
    """Per-target objective (m,), gradient (p, m) and eta of the penalised mean negative log-likelihood."""
    n = Xv.shape[0]
    eta = np.minimum(Xv @ W + offset, 50.0)
    mu = np.exp(eta)
    f = (mu - Y * eta).sum(axis=0) / n + 0.5 * (penm * W * W).sum(axis=0)
    g = (Xv.T @ (mu - Y)) / n + penm * W
    return f, g, mu


def _newton(Xv, Y, W, offset, penm, gtol, max_steps):
    """Batched damped Newton steps (exact per-target Hessians, step halving) from ``W``; in place."""
    n, p = Xv.shape
    f, g, mu = _poisson_objective(Xv, Y, W, offset, penm)
    diag = np.arange(p)
    XX = (Xv[:, :, None] * Xv[:, None, :]).reshape(n, p * p).T / n  # rows x_i x_i^T, so H = XX @ mu
    for _ in range(max_steps):
        todo = np.flatnonzero(np.abs(g).max(axis=0) > gtol)
        if not todo.size:
            break
        H = (XX @ mu[:, todo]).T.reshape(todo.size, p, p)
        H[:, diag, diag] += penm[:, todo].T
        H[:, diag, diag] += 1e-12 * np.abs(H[:, diag, diag]).max(axis=1, keepdims=True)
        step = np.linalg.solve(H, g[:, todo].T[:, :, None])[:, :, 0].T
        t = np.ones(todo.size)
        ok = np.zeros(todo.size, bool)
        Wn, fn, gn, mun = W[:, todo], f[todo], g[:, todo], mu[:, todo]
        for _ in range(40):
            cand = W[:, todo] - t * step
            fc, gc, muc = _poisson_objective(Xv, Y[:, todo], cand, offset, penm[:, todo])
            better = ~ok & (fc <= f[todo] + 1e-12 * np.abs(f[todo]))
            Wn[:, better], fn[better], gn[:, better], mun[:, better] = (cand[:, better], fc[better], gc[:, better],
                                                                       muc[:, better])
            ok |= better
            if ok.all():
                break
            t = np.where(ok, t, t / 2)
        W[:, todo], f[todo], g[:, todo], mu[:, todo] = Wn, fn, gn, mun
        if not ok.any():
            break
    return W, np.abs(g).max(axis=0)


def _poisson_fit(Xv, Y, offset, l2, pen, *, maxiter, gtol):
    """Fit independent Poisson GLMs, one per column of ``Y`` (all with spikes).

    Batched damped Newton (exact gradient and p x p Hessian per target, step halving on each target's own
    objective) from ``intercept = log(mean count)``; targets still above ``gtol`` after ``50`` steps go to scipy
    L-BFGS-B with the exact gradient (all of them in one problem, preconditioned per target by
    ``sqrt(mean count + l2)``), then Newton again.

    Returns (W (p, m), converged (m,), max |gradient| per target (m,)).
    """
    n, p = Xv.shape
    m = Y.shape[1]
    ybar = Y.mean(axis=0)
    const = np.flatnonzero(np.ptp(Xv, axis=0) == 0)
    W = np.zeros((p, m))
    if const.size:
        j = const[0]
        W[j] = (np.log(ybar) - offset) / Xv[0, j]
    penm = pen[:, None] * l2[None, :]
    W, gmax = _newton(Xv, Y, W, offset, penm, gtol, 50)
    bad = np.flatnonzero(gmax > gtol)
    if bad.size:
        Yb, pb = Y[:, bad], penm[:, bad]
        prec = np.sqrt(ybar[bad] + l2[bad])
        f0 = float(_poisson_objective(Xv, Yb, W[:, bad], offset, pb)[0].sum())

        def fun(v):
            f, g, _ = _poisson_objective(Xv, Yb, v.reshape(p, bad.size) / prec, offset, pb)
            return f.sum() - f0, (g / prec).ravel()

        res = optimize.minimize(fun, (W[:, bad] * prec).ravel(), jac=True, method="L-BFGS-B",
                                options={"maxiter": maxiter, "maxcor": 20, "ftol": 1e-15, "gtol": gtol,
                                         "maxfun": 2 * maxiter})
        Wb, gb = _newton(Xv, Yb, res.x.reshape(p, bad.size) / prec, offset, pb, gtol, 20)
        W[:, bad], gmax[bad] = Wb, gb
    return W, gmax <= gtol, gmax


def _fit_targets(Xv, Y, offset, l2, pen, maxiter, gtol):
    """Fit every column of Y; columns without spikes get NaN. Returns W, converged, n_unfit."""
    p, m = Xv.shape[1], Y.shape[1]
    W = np.full((p, m), np.nan)
    conv = np.zeros(m, bool)
    ok = Y.sum(axis=0) > 0
    if ok.any():
        W[:, ok], conv[ok], _ = _poisson_fit(Xv, Y[:, ok], offset, l2[ok], pen, maxiter=maxiter, gtol=gtol)
    return W, conv, int((~ok).sum())


def _poisson_ll(y, mu):
    """Poisson log-likelihood per observation (0 log 0 = 0)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return special.xlogy(y, mu) - mu - special.gammaln(y + 1.0)


def _choose_l2(Xv, Y, offset, grid, pen, inner, maxiter, gtol):
    """Per-target l2 with the largest pooled inner held-out log-likelihood."""
    m = Y.shape[1]
    folds, covered = _splits(inner, Xv.shape[0], None)
    score = np.zeros((len(grid), m))
    for k, a in enumerate(grid):
        lam = np.full(m, a)
        for tr, te in folds:
            W, _, _ = _fit_targets(Xv[tr], Y[tr], offset, lam, pen, maxiter, gtol)
            mu = np.exp(np.minimum(Xv[te] @ W + offset, 50.0))
            score[k] += _poisson_ll(Y[te], mu).sum(axis=0)
    score = np.where(np.isnan(score), -np.inf, score)
    return np.asarray(grid)[np.argmax(score, axis=0)]


def poisson_glm(
    X: xr.DataArray,
    counts: xr.DataArray,
    *,
    l2=0.0,
    bin_width: float | None = None,
    cv=5,
    groups=None,
    inner_cv=3,
    maxiter: int = 5000,
    gtol: float = 1e-10,
) -> xr.Dataset:
    """Poisson GLM encoding model per target: ``y ~ Poisson(bin_width * exp(x^T w))``.

    Parameters
    ----------
    X : xarray.DataArray
        Design (trial, regressor); matched to ``counts`` by trial label. Constant columns are not penalised.
    counts : xarray.DataArray
        Spike counts with a ``trial`` dim (non-negative integers).
    l2 : float or sequence of float
        L2 penalty (objective in [A6]); a sequence selects one value per target by inner CV ([A8]).
    bin_width : float, optional
        Seconds per bin (offset ``log bin_width``). Default: ``counts.attrs["bin_width_s"]``, else 1 (per bin).
    cv : int, splitter or None
        Outer cross-validation for the scores (contiguous folds for an int); None scores in-sample.
    groups : array_like, optional
        Passed to ``cv.split``.
    inner_cv : int or splitter
        Inner CV for choosing ``l2`` (only with a sequence).
    maxiter : int
        L-BFGS-B iteration limit.
    gtol : float
        Convergence: max |gradient| of each target's objective (per-trial mean scale) after Newton polishing.

    Returns
    -------
    xarray.Dataset
        ``coef`` (regressor, *target dims) from the fit to all trials; ``l2``, ``converged``; scores ``ll``,
        ``ll_null``, ``pseudo_r2`` (McFadden), ``deviance_explained``, ``bits_per_spike``, ``n_spikes`` (*target
        dims), held-out (pooled out-of-fold) unless ``cv=None``. Attribute ``scores`` says which.
    """
    tg = _Targets(counts, "poisson_glm")
    Y = tg.Y
    if (Y < 0).any() or not np.all(Y == np.round(Y)):
        raise ValueError("poisson_glm: counts must be non-negative integers")
    Xv, names, xco, _ = _design(X, tg.trials, "poisson_glm")
    _svd(Xv, names, "poisson_glm")
    n = Xv.shape[0]
    if bin_width is None:
        bin_width = counts.attrs.get("bin_width_s")
    bw = 1.0 if bin_width is None else float(bin_width)
    if not bw > 0:
        raise ValueError(f"poisson_glm: bin_width must be positive, got {bin_width}")
    offset = float(np.log(bw))
    pen = (np.ptp(Xv, axis=0) > 0).astype(float)
    grid = np.atleast_1d(np.asarray(l2, dtype=float))
    if grid.ndim != 1 or grid.size < 1 or (grid < 0).any():
        raise ValueError(f"poisson_glm: l2 must be a non-negative number or sequence, got {l2!r}")

    def lam_for(Xs, Ys):
        if grid.size == 1:
            return np.full(Ys.shape[1], grid[0])
        return _choose_l2(Xs, Ys, offset, grid, pen, inner_cv, maxiter, gtol)

    lam = lam_for(Xv, Y)
    W, conv, unfit = _fit_targets(Xv, Y, offset, lam, pen, maxiter, gtol)
    if cv is None:
        mu = np.exp(np.minimum(Xv @ W + offset, 50.0))
        yeval = Y
        scored = "in-sample"
        n_unfit_cv = 0
    else:
        folds, covered = _splits(cv, n, groups)
        mu = np.full(Y.shape, np.nan)
        n_unfit_cv = 0
        for tr, te in folds:
            Wf, cf, uf = _fit_targets(Xv[tr], Y[tr], offset, lam_for(Xv[tr], Y[tr]), pen, maxiter, gtol)
            conv &= cf | np.isnan(Wf).any(axis=0)
            n_unfit_cv += uf
            mu[te] = np.exp(np.minimum(Xv[te] @ Wf + offset, 50.0))
        mu, yeval = mu[covered], Y[covered]
        scored = "held-out (pooled out-of-fold)"
    fitted = ~np.isnan(W).any(axis=0)
    if unfit or n_unfit_cv:
        warnings.warn(f"poisson_glm: {unfit} target(s) have no spikes at all and {n_unfit_cv} fold fit(s) had no "
                      "spikes in the training trials; their coefficients/scores are NaN", stacklevel=2)
    if not conv[fitted].all():
        warnings.warn(f"poisson_glm: {int((~conv[fitted]).sum())} target(s) did not converge; raise maxiter, add "
                      "an l2 penalty, or check for separation (a regressor that perfectly predicts zero counts)",
                      stacklevel=2)
    ll = _poisson_ll(yeval, mu).sum(axis=0)
    ybar = yeval.mean(axis=0)
    ll0 = _poisson_ll(yeval, np.broadcast_to(ybar, yeval.shape)).sum(axis=0)
    nsp = yeval.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        sat = _poisson_ll(yeval, yeval).sum(axis=0)
        dev, dev0 = 2 * (sat - ll), 2 * (sat - ll0)
        pr2 = np.where(nsp > 0, 1.0 - ll / ll0, np.nan)
        dex = np.where(nsp > 0, 1.0 - dev / dev0, np.nan)
        bps = np.where(nsp > 0, (ll - ll0) / (nsp * np.log(2.0)), np.nan)
    lead = (REGRESSOR, {REGRESSOR: names, **xco})
    ds = xr.Dataset({
        "coef": tg.wrap(W, lead), "l2": tg.wrap(lam), "converged": tg.wrap(conv & fitted),
        "ll": tg.wrap(ll), "ll_null": tg.wrap(ll0), "pseudo_r2": tg.wrap(pr2), "deviance_explained": tg.wrap(dex),
        "bits_per_spike": tg.wrap(bps), "n_spikes": tg.wrap(nsp),
    })
    ds.attrs.update({"bin_width_s": bw, "scores": scored, "model": "Poisson GLM, log link, offset log(bin_width)",
                     "n_trials": int(n)})
    if bin_width is None:
        ds.attrs["note"] = "no bin width: rates are per bin"
    return ds
