"""The subject level of the hierarchical Bayesian model: the subjects' parameters inside a ``pymc.Model``, centred
or non-centred per row ([A2]), their value variables, the ratio that chooses between the two forms and which rows
it makes centred, and where chains start: the MAP start point, one chain's starting point ([A9], [A10]) and
numpyro's initial inverse mass matrix.

The model and its assumptions [A1]..[A10] are described in :mod:`neurorl.fitting.bayes`, which re-exports the
constants and the model-block helpers here; its estimator's ``_map_start_point``, ``_centred_rows``, ``_start`` and
``_inverse_mass`` delegate to :func:`map_start_point`, :func:`centred_rows`, :func:`start_point` and
:func:`inverse_mass`.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping

import numpy as np

from ..schema import SUBJECT

#: dim of the parameter layout's rows (the agent's free parameters, then covariate slopes)
PARAM = "param"
#: the rows of a mixed hierarchy ([A2]): sampled centred, and through offsets
PARAM_CENTRED, PARAM_OFFSET = "param_centred", "param_offset"
#: parametrization="auto" samples a row centred when its subjects' median Laplace sd is below this fraction of the
#: between-subject sd the MAP estimates imply ([A2])
CENTRED_SE_RATIO = 1.0
#: chains start with every group sd at this fraction of its prior scale ([A9])
INIT_SD_FRACTION = 0.1


def _subject_block(gm, gs, centred: np.ndarray):
    """The subjects' unconstrained parameters ``theta`` [param, subject] inside a ``pymc.Model`` ([A2]): rows with
    ``centred`` true are sampled as ``theta ~ Normal(group_mean, group_sd)``, the others as ``group_mean + group_sd *
    offset`` with ``offset ~ Normal(0, 1)``. All rows centred: the free variable is ``theta``; none: ``offset``
    [param, subject]; mixed: ``theta_centred`` [param_centred, subject] and ``offset`` [param_offset, subject]."""
    import pymc as pm
    import pytensor.tensor as pt

    dims = (PARAM, SUBJECT)
    if centred.all():
        return pm.Normal("theta", mu=gm[:, None], sigma=gs[:, None], dims=dims)
    if not centred.any():
        off = pm.Normal("offset", 0.0, 1.0, dims=dims)
        return pm.Deterministic("theta", gm[:, None] + gs[:, None] * off, dims=dims)
    model = pm.modelcontext(None)
    names = list(model.coords[PARAM])
    ic, io = np.flatnonzero(centred), np.flatnonzero(~centred)
    model.add_coord(PARAM_CENTRED, [names[i] for i in ic])
    model.add_coord(PARAM_OFFSET, [names[i] for i in io])
    th_c = pm.Normal("theta_centred", mu=gm[ic][:, None], sigma=gs[ic][:, None], dims=(PARAM_CENTRED, SUBJECT))
    off = pm.Normal("offset", 0.0, 1.0, dims=(PARAM_OFFSET, SUBJECT))
    stacked = pt.concatenate([th_c, gm[io][:, None] + gs[io][:, None] * off], axis=0)
    return pm.Deterministic("theta", stacked[np.argsort(np.concatenate([ic, io]))], dims=dims)


def _subject_values(theta: np.ndarray, gm, gs, centred: np.ndarray, offset: np.ndarray | None = None) -> dict:
    """The value variables of :func:`_subject_block` for subjects' parameters ``theta`` [param, subject] (offsets
    ``(theta - gm) / gs``, unless ``offset`` gives them)."""
    gm, gs = np.asarray(gm, dtype=float), np.asarray(gs, dtype=float)
    gm, gs = (gm[:, None] if gm.ndim == 1 else gm), (gs[:, None] if gs.ndim == 1 else gs)
    off = (theta - gm) / gs if offset is None else offset
    if centred.all():
        return {"theta": theta}
    if not centred.any():
        return {"offset": off}
    return {"theta_centred": theta[centred], "offset": off[~centred]}


def _se_ratio(est: dict) -> np.ndarray:
    """Per row: the subjects' median Laplace sd over the between-subject sd, ``sqrt(var(estimates) - mean(se^2))``
    of the MAP estimates ``est`` (``inf`` where the estimates vary no more than their noise)."""
    se = np.minimum(est["se_raw"], 1e6)
    between = np.var(est["theta"], axis=1) - np.mean(se ** 2, axis=1)
    with np.errstate(divide="ignore"):
        return np.where(between > 0, np.median(se, axis=1) / np.sqrt(np.maximum(between, 0.0)), np.inf)


def centred_rows(parametrization, hbayesdm: bool, layout, est: dict | None) -> np.ndarray:
    """Which rows are sampled centred ([A2]), as a boolean array over the rows of ``layout``.

    ``parametrization`` is the estimator's option: ``"centred"``, ``"non-centred"``, a mapping ``{row: "centred" |
    "non-centred"}`` (unlisted rows non-centred) or ``"auto"``: every row whose subjects' median Laplace sd is below
    ``CENTRED_SE_RATIO`` times the between-subject sd, estimated from the MAP estimates ``est`` as
    ``sqrt(var(estimates) - mean(se^2))`` (the spread of the estimates less their noise; :func:`_se_ratio`) -- the
    data then pin subjects down more tightly than the group spreads them, the centred form's geometry. ``"auto"``
    is non-centred throughout under hBayesDM's hierarchy (``hbayesdm``) or without estimates.
    """
    rows = len(layout.names)
    par = parametrization
    if isinstance(par, Mapping):
        unknown = sorted(set(par) - set(layout.names))
        if unknown:
            raise ValueError(f"parametrization names {unknown}, which are not rows of the model: "
                             f"{list(layout.names)}")
        return np.array([par.get(n, "non-centred") == "centred" for n in layout.names])
    if par == "centred":
        return np.ones(rows, dtype=bool)
    if par == "non-centred" or hbayesdm or est is None:
        return np.zeros(rows, dtype=bool)
    return _se_ratio(est) < CENTRED_SE_RATIO


def map_start_point(agent, rt, covariates, trials, layout, rng: np.random.Generator,
                    prior_table) -> tuple[dict, float]:
    """[A10]: MAP estimates of every subject, their Laplace sds, and the group mean and sd they imply.

    Parameters
    ----------
    agent, rt, covariates
        The estimator's options (the agent unwrapped: :class:`~neurorl.fitting.mle.MAP` wraps it with ``rt``).
    trials : xarray.Dataset
    layout : ThetaLayout
        The rows of the hierarchical model.
    rng : numpy.random.Generator
        Draws the MAP fit's seed (one integer).
    prior_table : xarray.Dataset
        The group priors (``HierarchicalBayes.prior_table``): rows MAP holds at their defaults start at ``mu_loc``
        with ``INIT_SD_FRACTION * sd_scale`` as group sd.

    Returns
    -------
    (start, seconds) : dict, float
        ``theta`` [row, subject] (the estimates), ``scale`` (half the capped Laplace sds: the jitter), ``se`` (the
        Laplace sds capped at the group sd), ``se_raw`` (uncapped; ``inf`` where there is none), ``group_mean``,
        ``group_sd`` and ``n`` (subjects); and the wall time of the MAP fit and this arithmetic.
    """
    from .mle import MAP

    t0 = time.perf_counter()
    with warnings.catch_warnings():  # a start point, not a result: MAP's own diagnostics are not the fit's
        warnings.simplefilter("ignore")
        fit = MAP(agent, rt=rt, covariates=covariates, progress=False, n_starts=3,
                  rng=int(rng.integers(2 ** 31 - 1))).fit(trials)
    res = fit.result_.transpose("param", "subject", ...)
    # rows MAP holds at their defaults (choice-irrelevant parameters of a choice-only fit: the data do not
    # inform them) start at their prior location, with the prior start's group sd, and count as uninformed
    fitted = {str(k): i for i, k in enumerate(res["param"].values)}
    pri = prior_table
    missing = np.array([name not in fitted for name in layout.names])
    pick = [fitted.get(name, 0) for name in layout.names]
    theta = np.where(missing[:, None], pri["mu_loc"].values[:, None], res["theta"].values[pick])
    n = theta.shape[1]
    gm = theta.mean(axis=1)
    gs = np.maximum(theta.std(axis=1), 0.05)  # a group sd of 0 would be a point the sampler cannot leave
    gs = np.where(missing, INIT_SD_FRACTION * pri["sd_scale"].values, gs)
    raw = np.where(missing[:, None], np.inf, res["se_theta"].values[pick])
    ok = np.isfinite(raw) & (raw > 0)
    se = np.where(ok, np.minimum(raw, gs[:, None]), gs[:, None])
    seconds = time.perf_counter() - t0
    return {"theta": theta, "scale": 0.5 * se, "se": se, "se_raw": np.where(ok, raw, np.inf), "group_mean": gm,
            "group_sd": gs, "n": n}, seconds


def start_point(rng: np.random.Generator, shape: tuple[int, int], init: dict, map_start: dict | None,
                centred: np.ndarray, hbayesdm: bool) -> dict:
    """One chain's starting point ([A9], [A10]): value variables of the group and of :func:`_subject_block`.

    ``shape`` is (rows, subjects); every subject is jittered by ``U(-1, 1)`` draws of ``rng``: as offsets around
    ``init`` (the prior start the model was built with: ``group_mean``, ``group_sd``; under hBayesDM's hierarchy
    the offsets alone) when ``map_start`` is None, else by ``map_start["scale"]`` around the MAP estimates
    (:func:`map_start_point`), the group at their mean and sd. The group means are then moved by ``U(-1, 1)`` times
    ``group_sd / sqrt(subjects)`` (about one posterior sd): a group mean the data cannot inform (e.g. soft_q's
    ``eta_true`` in a choice-only fit, which MAP leaves at the prior location) would otherwise start exactly at the
    prior's mode, where its whole gradient is 0, and nutpie refuses such a start ("bad initial gradient": its mass
    matrix starts from the gradient).
    """
    u = rng.uniform(-1.0, 1.0, shape)
    st = map_start
    if st is None and hbayesdm:  # hBayesDM's raw scale: offsets only
        return {**init, "offset": u}
    gm, gs = (init if st is None else st)["group_mean"], (init if st is None else st)["group_sd"]
    gm = gm + gs / np.sqrt(shape[1]) * rng.uniform(-1.0, 1.0, shape[0])
    if st is None:
        return {**init, "group_mean": gm, **_subject_values(gm[:, None] + gs[:, None] * u, gm, gs, centred)}
    theta = st["theta"] + st["scale"] * u
    return {"group_mean": gm, "group_sd": gs, **_subject_values(theta, gm, gs, centred)}


def inverse_mass(map_start: dict | None, model, centred: np.ndarray) -> np.ndarray | None:
    """numpyro's initial diagonal inverse mass matrix from the MAP start ([A10]): the posterior variance each value
    variable of ``model`` (a ``pymc.Model``) is expected to have, in the order numpyro flattens PyMC's value
    variables (Laplace variances of the subjects; sd^2 / n for group means; 1 / 2n for log group sds; 1 for any
    other). None without a MAP start."""
    st = map_start
    if st is None:
        return None
    n = st["n"]
    gs = st["group_sd"][:, None]
    var = {"group_mean": st["group_sd"] ** 2 / n, "group_sd_log__": np.full(len(st["group_sd"]), 1.0 / (2 * n)),
           **_subject_values(st["se"] ** 2, 0.0, 1.0, centred, offset=np.minimum((st["se"] / gs) ** 2, 1.0))}
    point = model.initial_point()
    parts = [np.broadcast_to(var.get(v.name, 1.0), point[v.name].shape).ravel() for v in model.value_vars]
    return np.concatenate(parts)
