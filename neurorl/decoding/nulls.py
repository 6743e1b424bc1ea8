"""Null distributions for slowly varying latents, and multiple comparisons (decoding.md §4-§5).

Values, beliefs and block priors drift slowly, and so do firing rates; two
independent slow series correlate far more often than i.i.d. theory allows
[S: Harris 2020, "Nonsense correlations in neuroscience"; A: Elber-Dorozko &
Loewenstein 2018]. Valid nulls keep the latent's temporal structure and leave
the neural data untouched:

* :func:`pseudosession_latents` -- regenerate sessions from the task's
  generator and re-simulate the fitted agent's choices, then recompute the
  latent (IBL brainbox ``generate_pseudo_session`` [S]); all draws in one
  vectorised :func:`neurorl.simulate` call (draws = simulated subjects).
* :func:`session_permutation` -- latents of the other sessions of the same
  design (brainbox ``get_impostor_target`` [S]).
* :func:`linear_shift_test` -- brainbox ``sigtest_linshift`` / Harris, arXiv
  2012.06862 [S]: window ``W``, ``N = floor((T - W) / 2)``, statistic on
  ``x[N : T-N]`` vs ``y[N+s : T-N+s]`` for ``s = -N..N``,
  ``M = #{s : stat_s >= stat_0}`` (s = 0 included), ``p = M / (N + 1)``.
* :func:`permutation_null` and :func:`circular_shift_null` -- available for
  completeness, but they warn with :class:`AnticonservativeNullWarning`: an
  i.i.d. shuffle destroys autocorrelation and a circular shift misaligns
  shared trends and adds a wrap-around jump, so both nulls are too narrow for
  slowly varying latents.

:func:`null_test` runs any statistic on the real latent and on every null
latent -- the identical analysis on the real neural data -- and returns
``p = (1 + #{null >= observed}) / (1 + n_null)`` (:func:`p_value`).
:func:`cluster_mass` corrects over time (or time x time) with the maximum
cluster mass (Maris & Oostenveld 2007), :func:`fdr_bh` over units
(Benjamini-Hochberg), and :func:`fraction_significant` calibrates the fraction
of significant units against the same null draws applied to all units jointly
(a binomial test is invalid because units share drifts, §5 [D]).

Assumptions
-----------
[A] Null latents are positional: pseudosessions and impostor sessions have no
trial labels of their own, so draw ``d`` gives trial ``i`` of the *real*
latent's order the value ``null[d, i]``; a DataArray latent passes its trial
labels on to every null draw, so statistics that align by label still work.
[A] Linear shift: ``p`` is capped at 1 (``M / (N + 1)`` can exceed 1); the
segment is ``T - 2N`` trials long (``W`` or ``W + 1``).
[A] Cluster mass = sum of the statistic over the cluster's bins (clusters =
bins above ``threshold``, connected along time; 4-connectivity on a
time x time map); a draw without any cluster contributes a maximum of 0.
[A] Session permutation stitches the following sessions (cyclically, skipping
the tested one) when an impostor session is shorter than the tested session,
then cuts to length.
[A] ``fdr_bh`` ignores NaN p-values (they are neither counted in ``m`` nor
rejected).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping
from typing import Any, Callable, NamedTuple

import numpy as np
import xarray as xr
from scipy import ndimage, stats

from ..agents.base import make_agent
from ..simulate import simulate
from ..tasks.base import Task, as_rng, make_task

__all__ = [
    "AnticonservativeNullWarning", "NullResult", "ClusterResult", "p_value", "pseudosession_latents", "null_test",
    "linear_shift_test", "session_permutation", "permutation_null", "circular_shift_null", "cluster_mass", "fdr_bh",
    "fraction_significant",
]

DRAW = "draw"


class AnticonservativeNullWarning(UserWarning):
    """The chosen null ignores the autocorrelation of slowly varying latents; its p-values are too small."""


class NullResult(NamedTuple):
    """Observed statistic, its null distribution (draws first) and p-values."""

    observed: Any
    null: Any
    p: Any
    method: str
    draws: np.ndarray


class ClusterResult(NamedTuple):
    """Clusters of a statistic over time and their family-wise p-values (see :func:`cluster_mass`)."""

    labels: Any  # int array like the statistic; 0 = no cluster, k = cluster k
    mass: np.ndarray  # (n_clusters,)
    p: np.ndarray  # (n_clusters,)
    null_max: np.ndarray  # (n_draws,)
    significant: Any  # bool array like the statistic: bins of clusters with p <= alpha


# ------------------------------------------------------------------ p-values
def p_value(observed, null, *, alternative: str = "greater"):
    """Permutation p-value ``(1 + #{null >= observed}) / (1 + n_null)``.

    Parameters
    ----------
    observed : array_like (...)
    null : array_like (n_null, ...)
        Draws along the first axis.
    alternative : {"greater", "less", "two-sided"}
        ``"less"`` counts ``null <= observed``; ``"two-sided"`` compares absolute values.

    Returns
    -------
    ndarray (...)
        NaN where the observed value is NaN; NaN null draws count as not exceeding.
    """
    obs = np.asarray(observed, float)
    nul = np.asarray(null, float)
    if nul.shape[1:] != obs.shape:
        raise ValueError(f"p_value: null has shape {nul.shape}; expected (n_null,) + {obs.shape}")
    if alternative == "greater":
        hits = nul >= obs
    elif alternative == "less":
        hits = nul <= obs
    elif alternative == "two-sided":
        hits = np.abs(nul) >= np.abs(obs)
    else:
        raise ValueError(f"p_value: alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    p = (1.0 + hits.sum(axis=0)) / (1.0 + nul.shape[0])
    return np.where(np.isnan(obs), np.nan, p)


# ------------------------------------------------------------------ pseudosessions
def _task(task) -> Task:
    if isinstance(task, Mapping):
        opts = dict(task)
        name = opts.pop("task", None)
        if name is None:
            raise ValueError("pseudosession_latents: a task dict must hold 'task' (as Task.generative_params() does)")
        return make_task(name, **opts)
    return make_task(task)


def _params(params, subject):
    if isinstance(params, xr.Dataset):
        ds = params
        if "subject" in ds.dims:
            if subject is not None:
                ds = ds.sel(subject=subject)
            elif ds.sizes["subject"] == 1:
                ds = ds.isel(subject=0)
            else:
                raise ValueError(f"pseudosession_latents: params hold {ds.sizes['subject']} subjects; pass subject=")
        return _params({k: ds[k].values for k in ds.data_vars}, None)
    if params is None or isinstance(params, Mapping):
        out = dict(params or {})
        for k, v in out.items():
            a = np.asarray(v, float)
            if a.size != 1:
                raise ValueError(f"pseudosession_latents: parameter {k!r} must be one value (the subject's fit), "
                                 f"got shape {a.shape}")
            out[k] = float(a.reshape(()))
        return out
    raise TypeError(f"pseudosession_latents: params must be a dict or an xarray.Dataset, got {type(params).__name__}")


def _random_choices(task: Task, n: int, T: int, rng) -> xr.Dataset:
    """The task generator alone, with uniformly random available choices."""
    env = task.env
    ts = task.reset(n, rng)
    cols: dict[str, list] = {}
    for _ in range(T):
        state = task.observe(ts)
        avail = env.available[state]
        u = rng.random(n) * avail.sum(axis=1)
        choice = np.minimum((np.cumsum(avail, axis=1) <= u[:, None]).sum(axis=1), env.n_actions - 1)
        ts, out = task.step(ts, choice, rng)
        for k, v in {"state": state, "choice": choice, **out}.items():
            cols.setdefault(k, []).append(np.asarray(v))
    data = {}
    for k, v in cols.items():
        a = np.stack(v, axis=1)
        data[k] = ((DRAW, "trial") + tuple(f"{k}_dim{i}" for i in range(a.ndim - 2)), a)
    return xr.Dataset(data, coords={DRAW: np.arange(n), "trial": np.arange(T)})


def pseudosession_latents(agent, task, params=None, *, n: int, n_trials: int, rng=None, subject=None) -> xr.Dataset:
    """Latents of ``n`` pseudosessions regenerated from the task generator and the fitted agent.

    Parameters
    ----------
    agent : Agent, str or None
        The fitted agent; its choices are re-simulated in every pseudosession
        and its latents recomputed (for choice-dependent latents: Q, RPE,
        entropy). ``None`` runs the task generator alone with uniformly random
        choices (enough for experimenter-controlled latents such as the high
        port, which do not depend on choices).
    task : Task, str or dict
        The task, or its :meth:`Task.generative_params` dict (``{"task": name, **options}``).
    params : dict or xarray.Dataset, optional
        The subject's fitted parameters (scalars; a Dataset with a ``subject``
        dim needs ``subject=`` unless it holds one subject). Default: the
        agent's defaults.
    n : int
        Number of pseudosessions (simulated together as ``n`` subjects).
    n_trials : int
        Trials per pseudosession (the real session's length).
    rng : int, Generator or None
    subject : optional
        Which subject of a ``params`` Dataset.

    Returns
    -------
    xarray.Dataset
        Dims ``(draw, trial[, action])``: the agent's latents plus the
        per-trial task variables of the regenerated sessions (``state``,
        ``choice``, ``reward``, covariates such as ``high_port``).
    """
    n, T = int(n), int(n_trials)
    if n < 1 or T < 1:
        raise ValueError(f"pseudosession_latents: n and n_trials must be positive, got {n} and {T}")
    task = _task(task)
    rng = as_rng(rng)
    if agent is None:
        ds = _random_choices(task, n, T, rng)
        ds.attrs.update(task=task.name, task_options=repr(task), agent="none (uniform random choices)")
        return ds
    agent = make_agent(agent)
    sim = simulate(agent, task, n_subjects=n, n_trials=T, params=_params(params, subject), rng=rng)
    lat = sim.latents.rename(subject=DRAW)
    tr = sim.trials.rename(subject=DRAW)
    extra = {k: tr[k] for k in tr.data_vars
             if tr[k].dims[:2] == (DRAW, "trial") and k not in lat and k not in ("valid", "trial_index", "rt")}
    out = lat.assign(extra)
    out = out.assign_coords({DRAW: np.arange(n)})
    out.attrs.update(task=task.name, task_options=repr(task), agent=agent.name, agent_options=repr(agent),
                     params=repr(_params(params, subject)))
    return out


# ------------------------------------------------------------------ generic null test
def _latent_values(latent, owner):
    if isinstance(latent, xr.DataArray):
        if latent.ndim != 1:
            raise ValueError(f"{owner}: the latent must be 1-D (trial,), got dims {latent.dims}")
        return np.asarray(latent.values, float)
    a = np.asarray(latent, float)
    if a.ndim != 1:
        raise ValueError(f"{owner}: the latent must be 1-D (trial,), got shape {a.shape}")
    return a


def _null_matrix(null_latents, T, owner, variable=None):
    """Null latents as (n_draws, T), positionally."""
    z = null_latents
    if isinstance(z, xr.Dataset):
        if variable is None:
            raise ValueError(f"{owner}: pass variable= to pick the latent from the null Dataset")
        z = z[variable]
    if isinstance(z, xr.DataArray):
        if "trial" not in z.dims or z.ndim != 2:
            raise ValueError(f"{owner}: null latents need dims (draw, trial), got {z.dims}")
        other = [d for d in z.dims if d != "trial"][0]
        z = z.transpose(other, "trial").values
    z = np.asarray(z, float)
    if z.ndim != 2 or z.shape[1] != T:
        raise ValueError(f"{owner}: null latents must have shape (n_draws, {T}), got {z.shape}")
    if z.shape[0] < 1:
        raise ValueError(f"{owner}: no null draws")
    return z


def _like(latent, values):
    """``values`` (T,) or (T, k) carrying the trial labels of ``latent`` when it is a DataArray."""
    if isinstance(latent, xr.DataArray):
        dim = latent.dims[0]
        coords = {dim: latent[dim].values} if dim in latent.coords else {}
        if values.ndim == 1:
            return xr.DataArray(values, dims=(dim,), coords=coords, name=latent.name)
        return xr.DataArray(values, dims=(dim, DRAW), coords=coords, name=latent.name)
    return values


def _stack(results, axis_first: bool):
    """Stack statistic outputs along a leading draw axis (DataArrays keep their coords)."""
    if isinstance(results[0], xr.DataArray):
        if axis_first:
            results = [r.rename({r.dims[0]: DRAW}).drop_vars(DRAW, errors="ignore") for r in results]
            return xr.concat(results, dim=DRAW)
        return xr.concat(results, dim=DRAW)
    arrs = [np.asarray(r, float) for r in results]
    return np.concatenate(arrs, axis=0) if axis_first else np.stack(arrs, axis=0)


def _result(observed, null, method, alternative, draws):
    if isinstance(null, xr.DataArray):
        if isinstance(observed, xr.DataArray):
            null = null.transpose(DRAW, *observed.dims)
        null = null.assign_coords({DRAW: draws})
    nv = np.asarray(null.values if isinstance(null, xr.DataArray) else null, float)
    ov = np.asarray(observed.values if isinstance(observed, xr.DataArray) else observed, float)
    p = p_value(ov, nv, alternative=alternative)
    if isinstance(observed, xr.DataArray):
        p = xr.DataArray(p, dims=observed.dims, coords=observed.coords, name="p")
    return NullResult(observed, null, p, method, np.asarray(draws))


def _null_block(statistic, latent, vectorized, Z):
    """One unit of :func:`null_test`: the statistic on a block of null draws (a batch, or a list of draws)."""
    if vectorized:
        return statistic(_like(latent, Z.T))
    return [statistic(_like(latent, z)) for z in Z]


def null_test(statistic: Callable, latent, null_latents, *, alternative: str = "greater", vectorized: bool = False,
              batch_size: int = 64, variable: str | None = None, method: str = "pseudosession") -> NullResult:
    """Run ``statistic`` on the real latent and on every null latent.

    Parameters
    ----------
    statistic : callable
        ``statistic(y)`` -> array or DataArray: the analysis of the (fixed, real)
        neural data against latent values ``y`` (close over the neural data).
        With ``vectorized=True`` it receives ``y`` of shape ``(trial, k)`` (a
        DataArray with dims ``("trial", "draw")`` when ``latent`` is one) and
        must return an array whose first axis has length ``k``.
    latent : array (T,) or DataArray (trial,)
        The real latent. A DataArray hands its trial labels to every null draw.
    null_latents : array (n_draws, T), DataArray (draw, trial) or Dataset
        E.g. ``pseudosession_latents(...)[name]``, :func:`session_permutation`,
        (with a warning) :func:`permutation_null` / :func:`circular_shift_null`.
        Positional: row ``d`` is a whole session in the real latent's trial order.
    alternative : {"greater", "less", "two-sided"}
    vectorized : bool
        Call ``statistic`` on ``batch_size`` draws at once.
    variable : str, optional
        Variable of a null Dataset.
    method : str
        Label stored in the result.

    Returns
    -------
    NullResult
        ``observed``, ``null`` (draws first), ``p`` = (1 + #{null >= observed}) / (1 + n_null).

    Notes
    -----
    The null draws are evaluated in blocks of ``batch_size`` draws, one unit of :mod:`neurorl.parallel` per block:
    inside ``with neurorl.parallel.parallel(...)`` they run on local processes or a Dask cluster (``statistic`` must
    then be picklable by cloudpickle; closures are). The statistic draws no random numbers, so the result is the
    same on every executor.
    """
    from .. import parallel as _par

    owner = "null_test"
    y = _latent_values(latent, owner)
    Z = _null_matrix(null_latents, y.size, owner, variable)
    b = max(1, int(batch_size))
    blocks = [Z[s:s + b] for s in range(0, Z.shape[0], b)]
    run = functools.partial(_null_block, statistic, latent, bool(vectorized))
    if vectorized:
        obs = statistic(_like(latent, y[:, None]))
        obs = obs[0] if not isinstance(obs, xr.DataArray) else obs.isel({obs.dims[0]: 0}, drop=True)
        if not isinstance(obs, xr.DataArray):
            obs = np.asarray(obs, float)
        null = _stack(_par.map_units(run, blocks, desc="null draws"), axis_first=True)
    else:
        obs = statistic(latent)
        if not isinstance(obs, xr.DataArray):
            obs = np.asarray(obs, float)
        null = _stack([r for part in _par.map_units(run, blocks, desc="null draws") for r in part], axis_first=False)
    nshape = null.shape[0]
    if nshape != Z.shape[0]:
        raise ValueError(f"{owner}: the statistic returned {nshape} draws for {Z.shape[0]} null latents")
    return _result(obs, null, method, alternative, np.arange(Z.shape[0]))


# ------------------------------------------------------------------ linear shift
def linear_shift_test(x, y, statistic: Callable, *, window: int = 300, alternative: str = "greater") -> NullResult:
    """Linear-shift test (Harris 2021; brainbox ``sigtest_linshift``), conservative.

    Parameters
    ----------
    x : array (T, ...) or DataArray with a ``trial`` dim
        Neural data, trials first (a DataArray is sliced along ``trial``).
    y : array (T,) or DataArray (trial,)
        The latent, in the same trial order as ``x``.
    statistic : callable
        ``statistic(x_segment, y_segment)`` -> array (e.g. one value per unit).
        The ``y`` segment carries the trial labels of the ``x`` segment when
        ``x`` is a DataArray.
    window : int, default 300
        ``W`` (brainbox's ``D``); needs ``T >= W + 2``.
    alternative : {"greater", "less", "two-sided"}
        How a shifted statistic counts as at least as extreme.

    Returns
    -------
    NullResult
        ``observed`` = stat at shift 0, ``null`` = stats at every shift
        ``-N..N`` (``draws`` holds the shifts), ``p = min(1, M / (N + 1))``
        with ``M = #{s : stat_s >= stat_0}`` including ``s = 0``.
    """
    owner = "linear_shift_test"
    yv = _latent_values(y, owner)
    T = yv.size
    nx = x.sizes["trial"] if isinstance(x, xr.DataArray) else np.asarray(x).shape[0]
    if nx != T:
        raise ValueError(f"{owner}: x has {nx} trials, y {T}")
    window = int(window)
    if window < 1 or T < window + 2:
        raise ValueError(f"{owner}: need T >= window + 2, got T={T}, window={window}")
    N = (T - window) // 2
    if isinstance(x, xr.DataArray):
        xs = x.isel(trial=slice(N, T - N))
        labels = xs["trial"].values if "trial" in xs.coords else None

        def yseg(s):
            v = yv[N + s:T - N + s]
            return xr.DataArray(v, dims=("trial",), coords={} if labels is None else {"trial": labels})
    else:
        xs = np.asarray(x)[N:T - N]

        def yseg(s):
            return yv[N + s:T - N + s]
    shifts = np.arange(-N, N + 1)
    stats_ = [statistic(xs, yseg(int(s))) for s in shifts]
    null = _stack(stats_, axis_first=False)
    obs = null[N]
    nv = np.asarray(null.values if isinstance(null, xr.DataArray) else null, float)
    ov = nv[N]
    if alternative == "greater":
        M = (nv >= ov).sum(axis=0)
    elif alternative == "less":
        M = (nv <= ov).sum(axis=0)
    elif alternative == "two-sided":
        M = (np.abs(nv) >= np.abs(ov)).sum(axis=0)
    else:
        raise ValueError(f"{owner}: alternative must be 'greater', 'less' or 'two-sided', got {alternative!r}")
    p = np.minimum(1.0, M / (N + 1.0))
    p = np.where(np.isnan(ov), np.nan, p)
    if isinstance(null, xr.DataArray):
        null = null.assign_coords({DRAW: shifts})
        p = xr.DataArray(p, dims=obs.dims, coords=obs.drop_vars(DRAW, errors="ignore").coords, name="p")
        obs = obs.drop_vars(DRAW, errors="ignore")
    return NullResult(obs, null, p, "linear_shift", shifts)


# ------------------------------------------------------------------ session permutation
def session_permutation(latents, session, *, n_trials: int | None = None) -> np.ndarray:
    """Impostor latents for one session: the latents of every other session of the same design.

    Parameters
    ----------
    latents : sequence or mapping of 1-D arrays
        One latent series per session (same task design).
    session : int or key
        The tested session (index of a sequence, key of a mapping).
    n_trials : int, optional
        Length to produce (default: the tested session's length).

    Returns
    -------
    ndarray (n_sessions - 1, n_trials)
        Row ``j`` starts with another session's latent; a shorter session is
        continued with the next sessions (cyclically, skipping the tested one)
        and the result is cut to ``n_trials``.
    """
    if isinstance(latents, Mapping):
        keys = list(latents)
        series = [np.asarray(latents[k], float).ravel() for k in keys]
        if session not in latents:
            raise ValueError(f"session_permutation: no session {session!r}; sessions are {keys}")
        i = keys.index(session)
    else:
        series = [np.asarray(v, float).ravel() for v in latents]
        i = int(session)
        if not 0 <= i < len(series):
            raise ValueError(f"session_permutation: session {session} out of range for {len(series)} sessions")
    if len(series) < 2:
        raise ValueError("session_permutation: needs at least 2 sessions")
    T = series[i].size if n_trials is None else int(n_trials)
    others = [s for j, s in enumerate(series) if j != i]
    total = sum(s.size for s in others)
    if total == 0:
        raise ValueError("session_permutation: the other sessions are empty")
    out = np.empty((len(others), T))
    for j in range(len(others)):
        pieces, have, k = [], 0, j
        while have < T:
            pieces.append(others[k % len(others)])
            have += others[k % len(others)].size
            k += 1
        out[j] = np.concatenate(pieces)[:T]
    return out


# ------------------------------------------------------------------ anticonservative nulls
def _warn(what):
    warnings.warn(
        f"{what} ignores the autocorrelation of slowly varying latents (values, beliefs, block priors) and of "
        "drifting neural activity: its null is too narrow and its p-values are anticonservative (decoding.md §4). "
        "Use pseudosession_latents, session_permutation or linear_shift_test instead.",
        AnticonservativeNullWarning, stacklevel=3)


def permutation_null(latent, n: int, *, rng=None) -> np.ndarray:
    """``n`` i.i.d. trial shuffles of ``latent`` (n, T). Warns: anticonservative for slow latents."""
    _warn("An i.i.d. trial permutation")
    y = _latent_values(latent, "permutation_null")
    rng = as_rng(rng)
    return np.stack([rng.permutation(y) for _ in range(int(n))])


def circular_shift_null(latent, n: int, *, rng=None, min_shift: int = 1) -> np.ndarray:
    """``n`` circular shifts of ``latent`` by ``min_shift .. T - min_shift`` trials (n, T).

    Warns: assumes stationarity and misaligns shared trends (anticonservative for slow latents).
    """
    _warn("A circular shift")
    y = _latent_values(latent, "circular_shift_null")
    T = y.size
    min_shift = int(min_shift)
    if not 1 <= min_shift <= T // 2:
        raise ValueError(f"circular_shift_null: min_shift must be in [1, {T // 2}], got {min_shift}")
    rng = as_rng(rng)
    shifts = rng.integers(min_shift, T - min_shift + 1, size=int(n))
    return np.stack([np.roll(y, int(s)) for s in shifts])


# ------------------------------------------------------------------ multiple comparisons
def cluster_mass(stat, null_stats, threshold, *, alpha: float = 0.05, tail: str = "greater") -> ClusterResult:
    """Cluster-mass test over time (1-D) or a time x time map (2-D), family-wise.

    Parameters
    ----------
    stat : array or DataArray (time,) or (train_time, test_time)
        Observed statistic per bin (e.g. decoding score).
    null_stats : array or DataArray (n_draws, *stat.shape)
        The same statistic for each null draw (e.g. pseudosessions).
    threshold : float or array broadcastable to ``stat``
        Cluster-forming threshold (e.g. a t-value, or the per-bin
        ``1 - alpha`` quantile of ``null_stats``).
    alpha : float
        Level used for ``significant``.
    tail : {"greater", "less"}
        ``"less"`` looks for clusters below ``threshold`` (statistic negated).

    Returns
    -------
    ClusterResult
        ``labels`` (0 outside clusters), ``mass`` (summed statistic per
        cluster), ``p = (1 + #{null_max >= mass}) / (1 + n_draws)`` with
        ``null_max`` the largest cluster mass of each draw (0 without
        clusters), and ``significant`` (bins of clusters with ``p <= alpha``).
    """
    coords = stat if isinstance(stat, xr.DataArray) else None
    s = np.asarray(stat, float)
    nul = np.asarray(null_stats.values if isinstance(null_stats, xr.DataArray) else null_stats, float)
    if isinstance(null_stats, xr.DataArray) and coords is not None and DRAW in null_stats.dims:
        nul = np.asarray(null_stats.transpose(DRAW, *coords.dims).values, float)
    if s.ndim not in (1, 2):
        raise ValueError(f"cluster_mass: stat must be 1-D (time) or 2-D (time x time), got shape {s.shape}")
    if nul.shape[1:] != s.shape:
        raise ValueError(f"cluster_mass: null_stats has shape {nul.shape}; expected (n_draws,) + {s.shape}")
    thr = np.broadcast_to(np.asarray(threshold, float), s.shape)
    if tail == "less":
        s, nul, thr = -s, -nul, -thr
    elif tail != "greater":
        raise ValueError(f"cluster_mass: tail must be 'greater' or 'less', got {tail!r}")

    def clusters(x):
        lab, k = ndimage.label(np.nan_to_num(x, nan=-np.inf) > thr)
        mass = ndimage.sum_labels(x, lab, index=np.arange(1, k + 1)) if k else np.zeros(0)
        return lab, np.asarray(mass, float)

    labels, mass = clusters(s)
    null_max = np.array([(m.max() if m.size else 0.0) for m in (clusters(x)[1] for x in nul)])
    p = (1.0 + (null_max[None, :] >= mass[:, None]).sum(axis=1)) / (1.0 + nul.shape[0])
    sig = np.isin(labels, 1 + np.flatnonzero(p <= alpha))
    if coords is not None:
        labels = coords.copy(data=labels).rename("cluster")
        sig = coords.copy(data=sig).rename("significant")
    return ClusterResult(labels, mass, p, null_max, sig)


def fdr_bh(pvalues, q: float = 0.05):
    """Benjamini-Hochberg false-discovery-rate control.

    Rejects the hypotheses with the ``k`` smallest p-values, ``k`` the largest
    index with ``p_(k) <= k q / m``.

    Parameters
    ----------
    pvalues : array_like or DataArray (any shape)
    q : float
        FDR level in (0, 1).

    Returns
    -------
    reject : bool array like ``pvalues``
    p_adjusted : float array like ``pvalues``
        ``min_{j >= k} m p_(j) / j`` clipped to 1 (as statsmodels ``fdr_bh``);
        NaN inputs stay NaN and are not rejected.
    """
    if not 0.0 < q < 1.0:
        raise ValueError(f"fdr_bh: q must be in (0, 1), got {q}")
    da = pvalues if isinstance(pvalues, xr.DataArray) else None
    p = np.asarray(pvalues, float)
    flat = p.ravel()
    ok = ~np.isnan(flat)
    if np.any((flat[ok] < 0) | (flat[ok] > 1)):
        raise ValueError("fdr_bh: p-values must lie in [0, 1]")
    pv = flat[ok]
    m = pv.size
    adj_ok = np.empty(m)
    if m:
        order = np.argsort(pv, kind="mergesort")
        ranked = pv[order] * m / np.arange(1, m + 1)
        adj_sorted = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
        adj_ok[order] = adj_sorted
    adj = np.full(flat.shape, np.nan)
    adj[ok] = adj_ok
    reject = np.zeros(flat.shape, bool)
    reject[ok] = adj_ok <= q
    adj, reject = adj.reshape(p.shape), reject.reshape(p.shape)
    if da is not None:
        return da.copy(data=reject).rename("reject"), da.copy(data=adj).rename("p_adjusted")
    return reject, adj


class FractionResult(NamedTuple):
    """Observed fraction of significant units, its null distribution, and p."""

    fraction: float
    null: np.ndarray
    p: float
    p_units: np.ndarray


def fraction_significant(observed, null, *, alpha: float = 0.05, alternative: str = "greater") -> FractionResult:
    """Fraction of significant units, calibrated with the same null draws applied to all units.

    Each null draw is treated in turn as if it were the observed data: its
    per-unit p-values are computed against the other draws and the observed
    statistic (the set is exchangeable under the null), giving the null
    distribution of the fraction of units with ``p <= alpha``. Units share
    drifts, so the binomial test is invalid (decoding.md §5).

    Parameters
    ----------
    observed : array (n_units, ...) ; null : array (n_draws, n_units, ...)
        Per-unit statistics (all non-draw axes count as units).
    alpha : float
    alternative : {"greater", "less", "two-sided"}

    Returns
    -------
    FractionResult
        ``fraction`` (observed), ``null`` (per draw), ``p = (1 + #{null >=
        fraction}) / (1 + n_draws)`` and the observed per-unit ``p_units``.
    """
    obs = np.asarray(observed, float).reshape(1, -1)
    nul = np.asarray(null, float)
    nul = nul.reshape(nul.shape[0], -1)
    if nul.shape[1] != obs.shape[1]:
        raise ValueError(f"fraction_significant: null has {nul.shape[1]} units per draw, observed {obs.shape[1]}")
    allv = np.concatenate([obs, nul], axis=0)  # (n + 1, U)
    if alternative == "less":
        allv = -allv
    elif alternative == "two-sided":
        allv = np.abs(allv)
    elif alternative != "greater":
        raise ValueError(f"fraction_significant: unknown alternative {alternative!r}")
    n = nul.shape[0]
    # rank_min - 1 = #{values < v}; #{others >= v} = n + 1 - rank_min
    rank_min = stats.rankdata(np.nan_to_num(allv, nan=-np.inf), method="min", axis=0)
    p_all = (n + 2.0 - rank_min) / (n + 1.0)
    frac = (p_all <= alpha).mean(axis=1)
    f_obs, f_null = float(frac[0]), frac[1:]
    p = float((1.0 + (f_null >= f_obs).sum()) / (1.0 + n))
    return FractionResult(f_obs, f_null, p, p_all[0].reshape(np.shape(observed)))
