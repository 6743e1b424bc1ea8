"""Posterior draws of the subjects' parameters, posterior latents and posterior predictive checks of a fitted
:class:`~neurorl.fitting.bayes.HierarchicalBayes` ([A7], [A8]).

:func:`posterior_draws` gives the constrained parameters at posterior draws evenly spaced over the pooled chains
(per trial for covariate-modulated parameters), :func:`latents` replays the data at such draws
(:func:`neurorl.replay`) and summarises every latent per subject and trial, and :func:`predictive_check` simulates
the task at them (:func:`neurorl.fitting.ppc.predictive_check`). The estimator's methods of the same names delegate
here; the model and its assumptions are described in :mod:`neurorl.fitting.bayes`.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..schema import SUBJECT, TRIAL

#: dims of the summaries of :func:`latents` and of the draws of :func:`posterior_draws`
STAT = "stat"
DRAW = "draw"


def _draw_index(fit, n_draws: int | None) -> np.ndarray:
    """Positions of ``n_draws`` draws evenly spaced over the pooled chains (chain-major; all when ``n_draws`` is None
    or at least their number) ([A7])."""
    post = fit.idata_.posterior
    S = int(post.sizes["chain"]) * int(post.sizes["draw"])
    if n_draws is None or int(n_draws) >= S:
        return np.arange(S)
    if int(n_draws) < 1:
        raise ValueError(f"n_draws must be >= 1, got {n_draws}")
    return np.unique(np.linspace(0, S - 1, int(n_draws)).round().astype(np.int64))


def posterior_draws(fit, n_draws: int | None = None) -> xr.Dataset:
    """Posterior draws of every subject's constrained parameters.

    Parameters
    ----------
    fit : HierarchicalBayes
        A fitted estimator.
    n_draws : int, optional
        Number of draws, evenly spaced over the pooled chains ([A7]); default all.

    Returns
    -------
    xarray.Dataset
        One variable per free parameter, dims ``(draw, subject)``, or ``(draw, subject, trial)`` for
        covariate-modulated parameters (their value on each trial). The format
        :func:`neurorl.fitting.ppc.predictive_check` accepts.
    """
    fit._check_fitted()
    data, layout = fit._data, fit.layout_
    theta = fit._theta()[_draw_index(fit, n_draws)]  # (k, R, n)
    spec = {p.name: p for p in fit.agent_.params}
    out = {}
    for name, base, slopes in layout.terms:
        eta = theta[:, base]
        if slopes:
            x = np.transpose(data.x, (1, 0, 2))  # (n, T, C)
            eta = eta[:, :, None] + sum(theta[:, r][:, :, None] * x[None, :, :, c] for r, c in slopes)
            out[name] = ((DRAW, SUBJECT, TRIAL), spec[name].to_constrained(eta))
        else:
            out[name] = ((DRAW, SUBJECT), spec[name].to_constrained(eta))
    return xr.Dataset(out, coords={DRAW: np.arange(theta.shape[0]), SUBJECT: data.subjects,
                                   TRIAL: data.trials[TRIAL].values},
                      attrs={"posterior": "hierarchical Bayes", "agent": fit.agent_.name})


def latents(fit, n_draws: int = 100, *, level: float = 0.95) -> xr.Dataset:
    """Posterior latents: replay the data at posterior draws and summarise each latent per trial ([A7]).

    Parameters
    ----------
    fit : HierarchicalBayes
        A fitted estimator.
    n_draws : int, default 100
        Posterior draws replayed (all subjects at once: draws are stacked on the subject axis).
    level : float, default 0.95
        Central probability of the credible interval.

    Returns
    -------
    xarray.Dataset
        Every latent of the agent with dims ``(stat, subject, trial[, action])``; ``stat`` is ``mean``,
        ``sd``, ``median``, ``lower``, ``upper`` (the interval's ends). NaN on padding rows. Hand
        ``.sel(stat="mean")`` to decoding.
    """
    from ..simulate import replay

    fit._check_fitted()
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    data = fit._data
    draws = posterior_draws(fit, n_draws)
    k, n = draws.sizes[DRAW], data.n
    trials = data.trials
    tiled = trials.isel({SUBJECT: np.tile(np.arange(n), k)}).assign_coords({SUBJECT: np.arange(k * n)})
    params = {}
    for v in draws.data_vars:
        a = draws[v].values  # (k, n) or (k, n, T)
        params[v] = a.reshape((k * n,) + a.shape[2:])
    lat = replay(fit.agent_, tiled, params)
    q_lo, q_hi = (1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0
    out = {}
    skip = set(getattr(fit.agent_, "simulation_only", ()))
    for name in lat.data_vars:
        if name in skip:
            continue
        a = lat[name].values
        a = a.reshape((k, n) + a.shape[1:])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN padding rows
            stats = np.stack([np.nanmean(a, axis=0), np.nanstd(a, axis=0), np.nanmedian(a, axis=0),
                              np.nanquantile(a, q_lo, axis=0), np.nanquantile(a, q_hi, axis=0)])
        out[name] = ((STAT,) + lat[name].dims, stats)
    coords = {STAT: ["mean", "sd", "median", "lower", "upper"], SUBJECT: data.subjects,
              TRIAL: trials[TRIAL].values}
    for c in lat.coords:
        if c not in (SUBJECT, TRIAL) and c in lat.dims:
            coords[c] = lat[c].values
    return xr.Dataset(out, coords=coords, attrs={"agent": fit.agent_.name, "level": level, "n_draws": k,
                                                 "summary": "posterior over draws of the replayed latents"})


def predictive_check(fit, task, *, n_sims: int = 20, rng=None, **kwargs) -> xr.Dataset:
    """Posterior predictive check: :func:`neurorl.fitting.ppc.predictive_check` at ``n_sims`` posterior draws.

    Each simulated group uses one posterior draw of every subject's parameters of the fitted estimator ``fit``
    (evenly spaced draws; ``rng`` defaults to the fit's generator).
    ``kwargs`` go to ``predictive_check`` (``summaries``, ``level``, ``schedule``, ...). Covariate-modulated
    parameters are not supported there (``ValueError``).
    """
    from .ppc import predictive_check as ppc_check

    fit._check_fitted()
    if fit.layout_.has_covariates:
        raise ValueError("predictive checks with trial-wise (covariate-modulated) parameters are not supported; "
                         "fit without covariates")
    draws = posterior_draws(fit, n_sims)
    return ppc_check(fit.agent_, fit.trials_, draws, task=task, n_sims=n_sims,
                     rng=rng if rng is not None else fit._rng, **kwargs)
