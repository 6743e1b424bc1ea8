"""The subject level of the hierarchical Bayesian model: the subjects' parameters inside a ``pymc.Model``, centred,
non-centred or partially non-centred ([A2]), their value variables, the centring weights that ``parametrization``
chooses (from the between-subject sd of the MAP estimates, :func:`between_sd`), and where chains start: the MAP
start point, one chain's starting point ([A9], [A10]) and numpyro's initial inverse mass matrix.

The model and its assumptions [A1]..[A10] are described in :mod:`neurorl.fitting.bayes`, which re-exports the
constants and the model-block helpers here; its estimator's ``_map_start_point``, ``_centring``, ``_start`` and
``_inverse_mass`` delegate to :func:`map_start_point`, :func:`centring`, :func:`start_point` and
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
#: chains start with every group sd at this fraction of its prior scale ([A9])
INIT_SD_FRACTION = 0.1


def _row_forms(lam: np.ndarray) -> np.ndarray | None:
    """The centring weights ``lam`` [row, subject] as one form per row (True centred, False non-centred), or None
    where some row is partially non-centred (a weight strictly between 0 and 1, or a row of mixed weights)."""
    lam = np.asarray(lam, dtype=float)
    if np.all((lam == 1.0).all(axis=1) | (lam == 0.0).all(axis=1)):
        return lam[:, 0] == 1.0
    return None


def _subject_block(gm, gs, lam: np.ndarray):
    """The subjects' unconstrained parameters ``theta`` [param, subject] inside a ``pymc.Model`` ([A2]), by the
    centring weights ``lam`` [param, subject] (:func:`centring`).

    Every row's weights 1 or 0 (:func:`_row_forms`): rows of weight 1 are sampled centred, ``theta ~
    Normal(group_mean, group_sd)``, the others as ``group_mean + group_sd * offset`` with ``offset ~ Normal(0, 1)``;
    all rows centred: the free variable is ``theta``; none: ``offset`` [param, subject]; mixed: ``theta_centred``
    [param_centred, subject] and ``offset`` [param_offset, subject]. Any other weights: the partially non-centred
    form (Papaspiliopoulos, Roberts & Skold 2007; Gorinova, Moore & Hoffman 2020), free variable ``theta_partial``
    [param, subject] ``~ Normal(lam * group_mean, group_sd ** lam)`` and ``theta = group_mean + group_sd ** (1 - lam)
    * (theta_partial - lam * group_mean)``, which is ``theta ~ Normal(group_mean, group_sd)`` whatever ``lam``: the
    model is the same, only the sampler's coordinates change (``lam`` 1 is the centred form, 0 the non-centred)."""
    import pymc as pm
    import pytensor.tensor as pt

    dims = (PARAM, SUBJECT)
    centred = _row_forms(lam)
    if centred is None:
        w = pt.as_tensor(np.asarray(lam, dtype=float))
        log_gs = pt.log(gs)[:, None]
        part = pm.Normal("theta_partial", mu=w * gm[:, None], sigma=pt.exp(w * log_gs), dims=dims)
        return pm.Deterministic("theta", gm[:, None] + pt.exp((1.0 - w) * log_gs) * (part - w * gm[:, None]),
                                dims=dims)
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


def _subject_values(theta: np.ndarray, gm, gs, lam: np.ndarray, partial: np.ndarray | None = None) -> dict:
    """The value variables of :func:`_subject_block` for subjects' parameters ``theta`` [param, subject]: centred
    rows ``theta``, the others ``lam * gm + gs ** (lam - 1) * (theta - gm)`` (offsets ``(theta - gm) / gs`` where
    ``lam`` is 0), unless ``partial`` gives those."""
    gm, gs = np.asarray(gm, dtype=float), np.asarray(gs, dtype=float)
    gm, gs = (gm[:, None] if gm.ndim == 1 else gm), (gs[:, None] if gs.ndim == 1 else gs)
    lam = np.asarray(lam, dtype=float)
    part = lam * gm + gs ** (lam - 1.0) * (theta - gm) if partial is None else partial
    centred = _row_forms(lam)
    if centred is None:
        return {"theta_partial": part}
    if centred.all():
        return {"theta": theta}
    if not centred.any():
        return {"offset": part}
    return {"theta_centred": theta[centred], "offset": part[~centred]}


def between_sd(theta: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Per row: the maximum-likelihood between-subject sd ``tau`` of estimates ``theta`` [row, subject] whose
    standard errors are ``se`` (the random-effects model ``theta_i ~ N(mu, tau^2 + se_i^2)``, ``mu`` profiled out
    (Hardy & Thompson 1996); ``inf`` or huge ``se`` weigh nothing). 0 where the estimates vary no more than their
    noise. Unlike ``var(estimates) - mean(se^2)`` it weighs each subject by its precision, so that a few subjects
    whose data hardly inform them (a learning rate near 0 or 1) cannot hide the spread of the others."""
    from scipy.optimize import minimize_scalar

    theta = np.asarray(theta, dtype=float)
    se = np.minimum(np.asarray(se, dtype=float), 1e6)

    def nll(log_tau, th, s):
        v = np.exp(2.0 * log_tau) + s ** 2
        mu = np.sum(th / v) / np.sum(1.0 / v)
        return 0.5 * np.sum(np.log(v) + (th - mu) ** 2 / v)

    out = np.zeros(theta.shape[0])
    for r, (th, s) in enumerate(zip(theta, se)):
        spread = max(float(np.ptp(th)), 1e-8)
        grid = np.log(spread) + np.linspace(np.log(1e-6), np.log(10.0), 200)
        f = np.array([nll(g, th, s) for g in grid])
        k = int(np.argmin(f))
        if k == 0:  # the likelihood grows towards tau = 0
            continue
        hi = grid[min(k + 1, len(grid) - 1)]
        out[r] = np.exp(minimize_scalar(nll, bounds=(grid[k - 1], hi), args=(th, s), method="bounded",
                                        options={"xatol": 1e-8}).x)
    return out


def centring(parametrization, hbayesdm: bool, layout, est: dict | None, n_subjects: int) -> np.ndarray:
    """The centring weights [row, subject] of :func:`_subject_block` ([A2]): 1 centred, 0 non-centred.

    ``parametrization`` is the estimator's option: ``"centred"``, ``"non-centred"``, a mapping ``{row: "centred" |
    "non-centred"}`` (unlisted rows non-centred) or ``"auto"``: subject ``i``'s weight in row ``r`` is ``tau_r^2 /
    (tau_r^2 + se_ri^2)``, with ``se_ri`` its Laplace sd and ``tau_r`` the between-subject sd of the MAP estimates
    ``est`` (:func:`between_sd`) -- the weight under which, for normal data, a subject's coordinate is a posteriori
    independent of the group mean (Papaspiliopoulos, Roberts & Skold 2007): near 1 (centred) where its data pin it
    down more tightly than the group spreads subjects, near 0 (non-centred) where they hardly inform it, and 0 for
    rows without a Laplace sd or a spread. ``"auto"`` is non-centred throughout under hBayesDM's hierarchy
    (``hbayesdm``) or without estimates.
    """
    rows = len(layout.names)
    par = parametrization
    if isinstance(par, Mapping):
        unknown = sorted(set(par) - set(layout.names))
        if unknown:
            raise ValueError(f"parametrization names {unknown}, which are not rows of the model: "
                             f"{list(layout.names)}")
        per_row = np.array([par.get(n, "non-centred") == "centred" for n in layout.names], dtype=float)
    elif par == "centred":
        per_row = np.ones(rows)
    elif par == "non-centred" or hbayesdm or est is None:
        per_row = np.zeros(rows)
    else:
        se = np.asarray(est["se_raw"], dtype=float)
        tau2 = between_sd(est["theta"], se)[:, None] ** 2
        with np.errstate(invalid="ignore"):
            lam = np.where(np.isfinite(se) & (tau2 > 0), tau2 / (tau2 + se ** 2), 0.0)
        return np.clip(lam, 0.0, 1.0)
    return np.repeat(per_row[:, None], n_subjects, axis=1)


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
                lam: np.ndarray, hbayesdm: bool) -> dict:
    """One chain's starting point ([A9], [A10]): value variables of the group and of :func:`_subject_block`.

    ``shape`` is (rows, subjects), ``lam`` the centring weights; every subject is jittered by ``U(-1, 1)`` draws of ``rng``: as offsets around
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
        return {**init, "group_mean": gm, **_subject_values(gm[:, None] + gs[:, None] * u, gm, gs, lam)}
    theta = st["theta"] + st["scale"] * u
    return {"group_mean": gm, "group_sd": gs, **_subject_values(theta, gm, gs, lam)}


def inverse_mass(map_start: dict | None, model, lam: np.ndarray) -> np.ndarray | None:
    """numpyro's initial diagonal inverse mass matrix from the MAP start ([A10]): the posterior variance each value
    variable of ``model`` (a ``pymc.Model``) is expected to have, in the order numpyro flattens PyMC's value
    variables (Laplace variances of the subjects, ``se^2``, in the centred form, ``gs^(2 lam - 2) se^2`` but at most
    the prior's ``gs^(2 lam)`` in the others; sd^2 / n for group means; 1 / 2n for log group sds; 1 for any other).
    None without a MAP start."""
    st = map_start
    if st is None:
        return None
    n = st["n"]
    gs = st["group_sd"][:, None]
    lam = np.asarray(lam, dtype=float)
    part = np.minimum(gs ** (2.0 * lam - 2.0) * st["se"] ** 2, gs ** (2.0 * lam))
    var = {"group_mean": st["group_sd"] ** 2 / n, "group_sd_log__": np.full(len(st["group_sd"]), 1.0 / (2 * n)),
           **_subject_values(st["se"] ** 2, 0.0, 1.0, lam, partial=part)}
    point = model.initial_point()
    parts = [np.broadcast_to(var.get(v.name, 1.0), point[v.name].shape).ravel() for v in model.value_vars]
    return np.concatenate(parts)


def describe_parametrization(parametrization: dict, centring) -> str:
    """One line on how a fit sampled its subjects ([A2]), from its ``parametrization_`` and ``centring_`` (weights
    [param, subject]): ``"every row centred"``, the form of each row where they differ, and for partially
    non-centred rows their median weight (1 centred, 0 non-centred)."""
    kinds = set(parametrization.values())
    if kinds == {"partial"}:
        med = np.median(np.asarray(centring, dtype=float), axis=1)
        return "every row partially non-centred (median weight " + ", ".join(
            f"{n} {m:.2f}" for n, m in zip(parametrization, med)) + "; 1 centred, 0 non-centred)"
    if len(kinds) == 1:
        return f"every row {kinds.pop()}"
    med = dict(zip(parametrization, np.median(np.asarray(centring, dtype=float), axis=1)))
    return ", ".join(f"{n} {k}" + (f" (median weight {med[n]:.2f})" if k == "partial" else "")
                     for n, k in parametrization.items())
