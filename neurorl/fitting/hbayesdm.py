"""hBayesDM's hierarchy as a prior option of :mod:`neurorl.fitting.bayes`, and LOOIC reported its way.

``fit_bayes(agent, trials, priors="hbayesdm")`` builds, for every parameter ``X`` of an agent that declares
``hbayesdm_priors`` (the hBayesDM ports: :mod:`neurorl.agents._hbayesdm`), the model of hBayesDM's Stan file
(Ahn, Haines & Zhang 2017)::

    mu_pr[X]    ~ Normal(0, 1)                        group_mean (raw scale)
    sigma[X]    ~ HalfNormal(0.2)                     group_sd (HalfCauchy(0, 1) for unbounded parameters
                                                      of some models, HalfCauchy(0, 5) in the Kalman model)
    X_pr[i]     ~ Normal(0, 1)                        offset (non-centred)
    X[i]        = lower + (upper - lower) Phi_approx(mu_pr + sigma X_pr[i])     bounded parameters
                = exp(mu_pr + sigma X_pr[i])                                    (two-step inverse temperatures)
                = mu_pr + sigma X_pr[i]                                         unbounded parameters

with ``Phi_approx(x) = inv_logit(0.07056 x^3 + 1.5976 x)`` (Stan's). Our own transform of a parameter with bounds
``(lower, upper)`` is the logit, so the subject value above is our ``theta = 0.07056 raw^3 + 1.5976 raw`` exactly:
:func:`raw_to_theta` maps hBayesDM's raw scale onto ours, and everything after it -- the compiled likelihood, the
pointwise log-likelihood, latents, K-fold -- is unchanged. ``group_mean`` and ``group_sd`` are hBayesDM's
``mu_pr`` and ``sigma`` (the raw scale); ``X_group = transform(mu_pr)`` is hBayesDM's ``mu_X``; ``theta`` stays on
our unconstrained scale.

:func:`looic` reports what hBayesDM's ``printFit`` reports -- LOOIC = -2 elpd of PSIS-LOO over the per-subject
summed log-likelihood (its ``log_lik[i]``) -- beside our per-trial LOO (docs/bayes.md explains the difference).
"""

from __future__ import annotations

import math

import numpy as np

from ..agents._hbayesdm import HBPrior

__all__ = ["hbayesdm_rows", "raw_to_theta", "group_block", "looic", "PHI_A", "PHI_B"]

#: Stan's Phi_approx(x) = inv_logit(PHI_A x^3 + PHI_B x)
PHI_A, PHI_B = 0.07056, 1.5976


def hbayesdm_rows(agent, layout) -> list[HBPrior]:
    """The hBayesDM prior of every row of ``layout`` (raises with what is missing)."""
    table = getattr(agent, "hbayesdm_priors", None)
    if not table:
        raise ValueError(f"priors='hbayesdm': agent {agent.name!r} is not one of hBayesDM's models (it declares no "
                         "hbayesdm_priors); use the default priors, or an hBayesDM model such as 'prl_rp'")
    if layout.has_covariates:
        raise ValueError("priors='hbayesdm' reproduces hBayesDM's models, which have no trial-wise covariates; "
                         "fit the covariates with the default priors")
    rows = []
    spec = {p.name: p for p in agent.params}
    for name in layout.names:
        if name not in table:
            raise ValueError(f"priors='hbayesdm': agent {agent.name!r} has no hBayesDM prior for parameter "
                             f"{name!r} (hBayesDM's model has {sorted(table)}); fix it (fixed={{...}}) or use "
                             "the default priors")
        hb, p = table[name], spec[name]
        lo = p.lower if hb.lower is None else hb.lower
        hi = p.upper if hb.upper is None else hb.upper
        if hb.transform == "phi" and not (math.isfinite(lo) and math.isfinite(hi) and p.lower <= lo < hi <= p.upper):
            raise ValueError(f"priors='hbayesdm': {name!r} needs finite bounds inside ({p.lower}, {p.upper})")
        if hb.transform == "exp" and p.transform != "log" or hb.transform == "exp" and p.lower != 0:
            raise ValueError(f"priors='hbayesdm': {name!r} is exp-transformed in hBayesDM but bounded "
                             f"({p.lower}, {p.upper}) here")
        if hb.transform == "identity" and p.transform != "identity":
            raise ValueError(f"priors='hbayesdm': {name!r} is unbounded in hBayesDM but bounded here")
        rows.append(hb)
    return rows


def raw_to_theta(raw, param, hb: HBPrior, ops=None):
    """Map hBayesDM's raw value (``mu_pr + sigma z``) of ``param`` to our unconstrained ``theta``.

    With ``ops`` a backend (PyTensor inside the model), else NumPy.
    """
    if hb.transform in ("identity", "exp"):
        return raw  # exp(raw) on our log scale, or the identity on both
    poly = PHI_A * raw ** 3 + PHI_B * raw  # logit of Phi_approx(raw)
    lo = param.lower if hb.lower is None else hb.lower
    hi = param.upper if hb.upper is None else hb.upper
    if lo == param.lower and hi == param.upper:
        return poly  # our logit transform onto the same bounds
    sig = (1.0 / (1.0 + np.exp(-poly))) if ops is None else ops.sigmoid(poly)
    value = lo + (hi - lo) * sig
    if param.transform == "identity":
        return value
    log = np.log if ops is None else ops.log
    if param.transform == "log":
        return log(value - param.lower)
    if param.transform == "neglog":
        return log(param.upper - value)
    u = (value - param.lower) / (param.upper - param.lower)
    return log(u) - log(1.0 - u)


def group_block(agent, layout, ops):
    """The hBayesDM group level inside a ``pymc.Model`` context: ``(group_mean, group_sd, theta, theta_of, init)``.

    ``theta_of(raw)`` maps a ``(rows, ...)`` raw tensor to ours row by row; ``init`` holds the initial values
    of the free group variables (means 0, sds 0.1 of their scale, as [A9] of bayes.py).
    """
    import pymc as pm
    import pytensor.tensor as pt

    rows = hbayesdm_rows(agent, layout)
    spec = {p.name: p for p in agent.params}
    normal = [i for i, hb in enumerate(rows) if hb.sigma_dist == "normal"]
    cauchy = [i for i, hb in enumerate(rows) if hb.sigma_dist == "cauchy"]
    names = list(layout.names)
    gm = pm.Normal("group_mean", 0.0, 1.0, dims="param")
    parts, init = [], {"group_mean": np.zeros(len(names))}
    if normal:
        sn = pm.HalfNormal("group_sd_normal", sigma=np.array([rows[i].sigma_scale for i in normal]),
                           shape=len(normal))
        parts.append((normal, sn))
        init["group_sd_normal"] = 0.1 * np.array([rows[i].sigma_scale for i in normal])
    if cauchy:
        sc = pm.HalfCauchy("group_sd_cauchy", beta=np.array([rows[i].sigma_scale for i in cauchy]),
                           shape=len(cauchy))
        parts.append((cauchy, sc))
        init["group_sd_cauchy"] = 0.1 * np.array([rows[i].sigma_scale for i in cauchy])
    gs = pt.zeros(len(names))
    for idx, var in parts:
        gs = pt.set_subtensor(gs[np.asarray(idx)], var)
    gs = pm.Deterministic("group_sd", gs, dims="param")
    off = pm.Normal("offset", 0.0, 1.0, dims=("param", "subject"))
    raw = gm[:, None] + gs[:, None] * off

    def theta_of(r):
        return pt.stack([raw_to_theta(r[i], spec[n], rows[i], ops) for i, n in enumerate(names)])

    theta = pm.Deterministic("theta", theta_of(raw), dims=("param", "subject"))
    return gm, gs, theta, theta_of, init


def theta_of_numpy(agent, layout, raw: np.ndarray) -> np.ndarray:
    """NumPy :func:`raw_to_theta` over the rows of ``raw`` (axis -2 is the row, as ``(S, R, n)`` draws)."""
    rows = hbayesdm_rows(agent, layout)
    spec = {p.name: p for p in agent.params}
    out = np.empty_like(np.asarray(raw, float))
    for i, n in enumerate(layout.names):
        out[..., i, :] = raw_to_theta(np.asarray(raw)[..., i, :], spec[n], rows[i])
    return out


def looic(fit, *, warn: bool = True):
    """LOOIC the way hBayesDM reports it, beside our per-trial LOO.

    Parameters
    ----------
    fit : HierarchicalBayes
        A fitted model with its pointwise log-likelihood.
    warn : bool
        Pass Pareto-k warnings on.

    Returns
    -------
    pandas.DataFrame
        One row per level -- ``"subject"`` (hBayesDM: PSIS-LOO over each subject's summed log-likelihood, its
        ``printFit`` LOOIC) and ``"trial"`` (ours: one term per trial) -- with ``elpd_loo``, ``se``, ``p_loo``,
        ``looic`` (= -2 elpd_loo), ``looic_se`` (= 2 se), ``n_terms`` and ``max_pareto_k``.
    """
    import pandas as pd

    rows = []
    for level in ("subject", "trial"):
        res = fit.loo(level, warn=warn)
        k = np.asarray(res.pareto_k)
        rows.append({"level": level, "elpd_loo": float(res.elpd_loo), "se": float(res.se),
                     "p_loo": float(res.p_loo), "looic": -2.0 * float(res.elpd_loo), "looic_se": 2.0 * float(res.se),
                     "n_terms": int(k.size), "max_pareto_k": float(np.max(k))})
    return pd.DataFrame(rows).set_index("level")
