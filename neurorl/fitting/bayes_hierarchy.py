"""The subject level of the hierarchical Bayesian model: the subjects' parameters inside a ``pymc.Model``, centred
or non-centred per row ([A2]), their value variables (starting points), and the ratio that chooses between the two
forms.

The model and its assumptions [A1]..[A10] are described in :mod:`neurorl.fitting.bayes`, which re-exports every
name here.
"""

from __future__ import annotations

import numpy as np

from ..schema import SUBJECT

#: dim of the parameter layout's rows (the agent's free parameters, then covariate slopes)
PARAM = "param"
#: the rows of a mixed hierarchy ([A2]): sampled centred, and through offsets
PARAM_CENTRED, PARAM_OFFSET = "param_centred", "param_offset"
#: parametrization="auto" samples a row centred when its subjects' median Laplace sd is below this fraction of the
#: between-subject sd the MAP estimates imply ([A2])
CENTRED_SE_RATIO = 1.0


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
