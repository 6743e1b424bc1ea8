"""Parameter recovery and model recovery (Wilson & Collins 2019, eLife 8:e49547).

Reference: ``reference/fitting.md`` §6 ("Parameter recovery: simulate on the real schedules and
trial counts from a plausible parameter distribution; fit with the production pipeline; report r,
bias, RMSE and the true-vs-estimated cross-correlations (alpha-beta trade-off). Anchor (RW +
softmax, 100 x 200, MAP with N(0, 2.5^2)): r(alpha) = 0.76, r(beta) = 0.91; plain MLE
r(beta) = -0.06. Model recovery: confusion C_ij = P(selected j | generated i) (rows sum to 1);
inversion P(generated i | selected j) = C_ij / sum_i C_ij (uniform prior over generators); repeat
with RFX-BMS at group level") and §5 (criteria, RFX-BMS).

Contents
--------
:func:`parameter_recovery` / :func:`plot_parameter_recovery`
    Simulate subjects with known parameters, fit them with an estimator of
    :mod:`neurorl.fitting.mle` (all subjects in one fit), and summarise r, bias, RMSE and the
    cross-correlation matrices.
:func:`model_recovery` / :func:`plot_model_recovery`
    Simulate each candidate agent (one :func:`neurorl.simulate` call per generator), fit every
    candidate to all simulated subjects (one fit per candidate), select the best model per subject
    by a criterion, and report the confusion and inversion matrices and, per generator, group-level
    random-effects BMS (:func:`neurorl.fitting.compare.bms`).
:func:`draw_params`, :func:`confusion_matrix`, :func:`inversion_matrix`
    The pieces, usable alone.

Assumptions and choices
-----------------------
[A1] Default generating distribution ("the agent's prior narrowed"): for every free parameter,
     ``theta ~ N(to_unconstrained(default), (0.4 * prior_scale)^2)`` on the unconstrained
     scale -- the fitting prior's width narrowed by 0.4 (so ``N(., 1)`` for the default
     ``N(0, 2.5^2)`` prior) and centred on the parameter's simulation default rather than on the
     prior mean (0 for most parameters, i.e. beta = 1, alpha = 0.5: a prior location, not a
     typical subject). For ``q_learning`` this is ``logit alpha ~ N(-0.85, 1)``,
     ``log beta ~ N(1.10, 1)``, close to the benchmark population of fitting.md §7
     (``N(-1, 0.7)``, ``N(1, 0.4)``). ``narrow`` changes the factor.
[A2] A user distribution is ``{name: (loc, scale)}`` (Normal on the unconstrained scale) or
     ``{name: callable(rng, n)}`` returning ``n`` unconstrained values; names not given take the
     default [A1]. Unconstrained draws are clipped to ``[-bound, bound]`` of the estimator
     (15 by default) so that every true value is inside the fitted box.
[A3] ``r``, ``bias`` (mean of estimated - true) and ``rmse`` are computed on the constrained scale
     over all subjects; ``*_unconstrained`` variants on the estimation scale (where an exp/logit
     transform makes a few large values dominate the constrained Pearson r, the unconstrained r is
     the more stable summary). Subjects that did not converge are kept (flag ``converged``) and a
     warning counts them. The cross-correlation matrix is ``corr(true_p, estimated_q)`` over
     subjects; ``estimate_correlation`` is ``corr(estimated_p, estimated_q)`` (a trade-off between
     parameters shows as a strong off-diagonal there when the true values are independent).
[A4] Model selection per subject: the largest log evidence, ``-BIC/2``, ``-AIC/2`` or the Laplace
     log evidence (``criterion``); exact ties go to the first model in the given order. The
     confusion matrix counts selections per generator (rows sum to 1); the inversion matrix is
     ``C_ij / sum_i C_ij`` (NaN in a column no subject selected). RFX-BMS is run per generator on
     the same per-subject log evidences (protected exceedance probabilities ``pxp``).
[A5] Model recovery fits every candidate to all generators' subjects at once (subjects are
     independent under MLE/MAP). With the hierarchical ``EMMAP`` the group prior must be learnt
     from one population, so each candidate is then fitted separately to each generator's
     subjects.
[A6] Simulation uses the task generator (free simulation, every subject its own session) unless
     ``schedule`` trials are given, in which case subject ``i`` is simulated on the schedule and
     trial count of schedule subject ``i mod n_schedule`` (:func:`neurorl.fitting.ppc.simulate_on_schedule`).
[A7] Parallel units (:mod:`neurorl.parallel`): simulation runs in the calling process (it is cheap and vectorised);
     the fits are the units -- one per candidate (model recovery; one per candidate x generator with ``EMMAP``), or
     one per block of ``subjects_per_unit`` subjects. Every unit's generator is spawned from the root ``rng`` in a
     fixed order before anything runs, so results do not depend on the executor, the number of workers or the
     order in which units finish. With the default ``subjects_per_unit=None`` (one fit over all subjects) results
     are those of a run without the execution layer; blocks of subjects draw other starting points (same
     estimator, another random stream), so a blocked study is reproducible for a given block size, not equal to
     an unblocked one.
[A8] ``store=DIR`` makes the study resumable: each finished unit is written to ``DIR`` as it completes and a rerun
     with the same arguments (and the same root seed) computes only the missing units. ``partial=True`` computes
     nothing and summarises the subjects whose every fit is in the store (attribute ``n_complete``; incomplete
     subjects have NaN log evidence / estimates and ``selected = -1``).
[A9] ``estimator="NUTS"`` fits all subjects in one hierarchical model (:class:`neurorl.fitting.bayes.HierarchicalBayes`;
     ``estimator_options`` are its options, e.g. ``priors="hbayesdm", sampler="numpyro", draws=300, tune=300,
     chains=2``; the pointwise log-likelihood is skipped unless ``log_likelihood=True``). The estimate of a subject is
     its posterior mean (constrained scale; ``estimated_unconstrained`` the posterior mean of ``theta``), a subject
     counts as converged when the R-hat of each of its parameters is at most ``bayes.RHAT_MAX``, and ``loglik`` is
     the posterior mean of the subject's summed log-likelihood (NaN when it is skipped). Model recovery needs a
     per-subject evidence and does not take ``"NUTS"``.
[A10] A parameter is flagged not identified by the design (``identified = False`` and a
     :class:`~neurorl.fitting.mle.FitWarning` naming it) when no fit found information about it (the estimators'
     ``informed``: Fisher information below ``mle.UNINFORMED_TOL`` for every subject) or, with ``min_r``, when its
     r(true, estimated) falls below ``min_r`` -- weak identification that the fits alone do not show (e.g. the lapse
     rate of the gain/loss bandits, docs/agents.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .. import parallel as _par
from ..agents.base import Agent, make_agent
from ..results import trials_fingerprint
from ..schema import SUBJECT, TRIAL
from ..simulate import simulate
from ..tasks.base import Task, as_rng, make_task

__all__ = [
    "parameter_recovery", "plot_parameter_recovery", "model_recovery", "plot_model_recovery", "draw_params",
    "confusion_matrix", "inversion_matrix", "truth_recovery", "DEFAULT_NARROW",
]

PARAM, PARAM2 = "param", "param_"
GENERATOR, MODEL = "generator", "model"
#: factor applied to the prior scale for the default generating distribution ([A1])
DEFAULT_NARROW = 0.4
CRITERIA = ("bic", "aic", "laplace")


# ============================================================================ parameters
def draw_params(agent: Agent | str, n: int, params: Mapping | None = None, *, rng=None,
                narrow: float = DEFAULT_NARROW, bound: float = 15.0) -> dict[str, np.ndarray]:
    """Draw ``n`` subjects' free parameters on the unconstrained scale ([A1], [A2]).

    Parameters
    ----------
    agent : Agent or str
    n : int
    params : dict, optional
        ``{name: (loc, scale)}`` or ``{name: callable(rng, n)}`` on the unconstrained scale.
    rng : int, numpy.random.Generator or None
    narrow : float, default 0.4
        Scale factor of the default distribution relative to each parameter's prior scale.
    bound : float, default 15
        Draws are clipped to ``[-bound, bound]``.

    Returns
    -------
    dict
        ``{name: (n,) unconstrained values}`` for every free parameter, in the agent's order.
    """
    agent = make_agent(agent)
    rng = as_rng(rng)
    n = int(n)
    if n < 1:
        raise ValueError(f"draw_params: n must be >= 1, got {n}")
    if not narrow > 0:
        raise ValueError(f"draw_params: narrow must be positive, got {narrow}")
    params = dict(params or {})
    names = [p.name for p in agent.params]
    unknown = sorted(set(params) - set(names))
    if unknown:
        raise ValueError(f"draw_params: unknown parameter(s) {unknown} for agent {agent.name!r}; free parameters "
                         f"are {names}")
    out = {}
    for p in agent.params:
        spec = params.get(p.name)
        if spec is None:
            loc, scale = float(p.to_unconstrained(p.default)), narrow * p.prior_scale
            x = loc + scale * rng.standard_normal(n)
        elif callable(spec):
            x = np.asarray(spec(rng, n), dtype=float)
            if x.shape != (n,):
                raise ValueError(f"draw_params: the callable for {p.name!r} returned shape {x.shape}; expected ({n},)")
        else:
            try:
                loc, scale = (float(v) for v in spec)
            except (TypeError, ValueError):
                raise ValueError(f"draw_params: params[{p.name!r}] must be (loc, scale) or a callable(rng, n), "
                                 f"got {spec!r}") from None
            if not scale >= 0:
                raise ValueError(f"draw_params: params[{p.name!r}] scale must be >= 0, got {scale}")
            x = loc + scale * rng.standard_normal(n)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"draw_params: non-finite draws for {p.name!r}")
        out[p.name] = np.clip(x, -bound, bound)
    return out


def _constrained(agent: Agent, theta: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    spec = {p.name: p for p in agent.params}
    return {k: np.asarray(spec[k].to_constrained(np.asarray(v, float)), float) for k, v in theta.items()}


def _make_estimator(estimator, agent: Agent, rng, options: Mapping | None):
    from . import mle

    options = dict(options or {})
    if isinstance(estimator, str):
        classes = {"MLE": mle.MLE, "MAP": mle.MAP, "EMMAP": mle.EMMAP, "NUTS": None}
        if estimator not in classes:
            raise ValueError(f"estimator must be one of {sorted(classes)}, a callable(agent) -> estimator or an "
                             f"estimator instance; got {estimator!r}")
        options.setdefault("progress", False)
        if estimator == "NUTS":  # [A9]
            from .bayes import HierarchicalBayes

            options.setdefault("log_likelihood", False)
            return HierarchicalBayes(agent, random_seed=rng, **options)
        return classes[estimator](agent, rng=rng, **options)
    if hasattr(estimator, "fit"):
        if options:
            raise ValueError("estimator_options cannot be combined with an estimator instance")
        return estimator
    if callable(estimator):
        est = estimator(agent)
        if not hasattr(est, "fit"):
            raise TypeError(f"the estimator factory returned {type(est).__name__}, which has no fit()")
        return est
    raise TypeError("estimator must be a name, a callable(agent) or an estimator instance, got "
                    f"{type(estimator).__name__}")


def _check_store(store, partial, rng, owner):
    if partial and store is None:
        raise ValueError(f"{owner}: partial=True summarises a store; pass store=DIR")
    if store is not None and not (isinstance(rng, (int, np.integer)) and not isinstance(rng, bool)):
        raise ValueError(f"{owner}: a resumable study (store=) needs an int rng, so that a rerun draws the same "
                         f"subjects; got {type(rng).__name__}")


def _seed_id(rng):
    return int(rng) if isinstance(rng, (int, np.integer)) else repr(rng)


def _estimator_id(estimator):
    if isinstance(estimator, str):
        return estimator
    if hasattr(estimator, "fit"):
        return repr(estimator)
    return f"{getattr(estimator, '__module__', '')}.{getattr(estimator, '__qualname__', repr(estimator))}"


def _model_key(u: dict) -> str:
    """Units fitting the same candidate need the same compiled likelihood (neurorl.parallel's compile_key)."""
    return repr(u["agent"])


def _fit_recovery_unit(u: dict) -> dict:
    """One unit of a recovery study: fit one estimator to one block of simulated subjects."""
    est = u["estimator"] if u["built"] else _make_estimator(u["estimator"], u["agent"], u["rng"], u["options"])
    if u["progress"] is not None and hasattr(est, "progress"):
        est.progress = u["progress"]
    est.fit(u["trials"])
    res = est.result_ if hasattr(est, "result_") else _bayes_result(est)
    names = u.get("names")
    out = {"loglik": res["loglik"].values, "converged": res["converged"].values.astype(bool)}
    if u.get("criterion") is not None:
        out["log_evidence"] = _log_evidence(est, u["criterion"])
    if names is not None:
        missing = [k for k in names if k not in list(res[PARAM].values)]
        if missing:
            raise ValueError(f"parameter_recovery: the estimator did not fit {missing}")
        out["estimate"] = res["estimate"].sel({PARAM: names}).transpose(SUBJECT, PARAM).values
        out["theta"] = res["theta"].sel({PARAM: names}).transpose(SUBJECT, PARAM).values
        # the estimators' own flag of parameters the data carry no information about (mle.py, Fisher information)
        out["informed"] = (res["informed"].sel({PARAM: names}).values.astype(bool) if "informed" in res
                           else np.ones(len(names), bool))
    return out


def _bayes_result(fit) -> xr.Dataset:
    """A hierarchical fit (:class:`~neurorl.fitting.bayes.HierarchicalBayes`) as the estimators' ``result_`` ([A9]):
    posterior means (constrained ``estimate``, unconstrained ``theta``), the posterior mean of each subject's summed
    log-likelihood (NaN without it) and ``converged`` where every R-hat of the subject's parameters is below the
    threshold of :func:`~neurorl.fitting.bayes.diagnose`."""
    import arviz as az

    from .bayes import RHAT_MAX

    if not hasattr(fit, "idata_"):
        raise TypeError(f"the estimator {type(fit).__name__} has neither result_ nor idata_ after fit()")
    post = fit.idata_.posterior
    names = list(fit.params_.data_vars)
    theta = post["theta"].mean(("chain", "draw")).sel({PARAM: names}).transpose(SUBJECT, PARAM)
    estimate = np.stack([fit.params_[k].values for k in names], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        rhat = az.rhat(post[["theta"]])["theta"].sel({PARAM: names}).transpose(SUBJECT, PARAM).values
    n = estimate.shape[0]
    loglik = np.full(n, np.nan)
    if "log_likelihood" in fit.idata_.groups():
        loglik = fit._subject_ll(fit.idata_).mean(axis=(0, 1))
    subjects = theta[SUBJECT].values
    return xr.Dataset({"estimate": ((SUBJECT, PARAM), estimate), "theta": ((SUBJECT, PARAM), theta.values),
                       "loglik": (SUBJECT, loglik), "converged": (SUBJECT, np.all(rhat <= RHAT_MAX, axis=1))},
                      coords={SUBJECT: subjects, PARAM: names})


def _simulate(agent, task, n, n_trials, p_con, rng, schedule, progress):
    if schedule is None:
        return simulate(agent, task, n_subjects=n, n_trials=n_trials, params=p_con, rng=rng, progress=progress).trials
    from .ppc import simulate_on_schedule

    m = schedule.sizes[SUBJECT]
    src = schedule.isel({SUBJECT: np.arange(n) % m})
    src = src.assign_coords({SUBJECT: np.arange(n)})
    tr = simulate_on_schedule(agent, src, task, p_con, rng=rng, progress=progress)
    return tr.drop_vars(["sim", "source_subject"])


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.size < 2 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def parameter_recovery(
    agent: Agent | str,
    task: Task | str,
    *,
    n_subjects: int = 100,
    n_trials: int | None = None,
    params: Mapping | None = None,
    estimator: Any = "MAP",
    estimator_options: Mapping | None = None,
    schedule: xr.Dataset | None = None,
    narrow: float = DEFAULT_NARROW,
    rng=None,
    progress: bool | None = None,
    subjects_per_unit: int | None = None,
    store=None,
    partial: bool = False,
    min_r: float | None = None,
) -> xr.Dataset:
    """Simulate subjects with known parameters, refit them, and summarise how well they are recovered.

    Parameters
    ----------
    agent : Agent or str
        The generating and fitted model.
    task : Task or str
        The task generator.
    n_subjects : int, default 100
    n_trials : int, optional
        Decisions per subject (default: the task's ``default_n_trials``); ignored with ``schedule``.
    params : dict, optional
        Generating distribution on the unconstrained scale ([A2]); default [A1].
    estimator : {"MAP", "MLE", "EMMAP", "NUTS"}, callable or estimator instance, default "MAP"
        A name (built as ``cls(agent, rng=..., **estimator_options)``; ``"NUTS"``: a hierarchical Bayesian fit of
        all subjects, [A9]), a factory ``callable(agent) -> estimator`` or an unfitted estimator.
    estimator_options : dict, optional
        Options of the named estimator (``n_starts``, ``prior``, ``optimizer``...; for ``"NUTS"`` those of
        :class:`~neurorl.fitting.bayes.HierarchicalBayes`: ``priors``, ``sampler``, ``draws``, ``tune``, ``chains``).
    schedule : xarray.Dataset, optional
        Recorded trials whose schedules and trial counts the simulated subjects reuse ([A6]).
    narrow : float, default 0.4
        Scale factor of the default distribution ([A1]).
    rng : int, numpy.random.Generator or None
    progress : bool, optional
        Progress bars of the simulation and the fit.
    subjects_per_unit : int, optional
        Fit blocks of this many subjects as separate units of :mod:`neurorl.parallel` (default: one fit of all
        subjects) ([A7]). Runs on the executor of the enclosing :func:`neurorl.parallel.parallel` block.
    store : str or path-like, optional
        Directory of a resumable study ([A8]); needs an int ``rng``.
    partial : bool, default False
        Summarise the blocks already in ``store`` without fitting anything ([A8]).
    min_r : float, optional
        Flag the parameters this design does not identify ([A10]): those the fits report as not informed by the data
        (``informed`` of MAP/MLE, always checked) and, with ``min_r``, those whose r(true, estimated) is below it.

    Returns
    -------
    xarray.Dataset
        ``true``, ``estimated`` (subject, param; constrained), ``true_unconstrained``,
        ``estimated_unconstrained``, ``converged`` (subject); per parameter ``r``, ``bias``,
        ``rmse`` and ``r_unconstrained``, ``bias_unconstrained``, ``rmse_unconstrained``;
        ``cross_correlation`` (param = true, param_ = estimated) and ``estimate_correlation``
        (param, param_), ``loglik`` (subject), ``informed`` and ``identified`` (param; [A10]). Attributes: agent,
        task, estimator, n_trials, n_subjects, schedule, min_r.

    Notes
    -----
    fitting.md §6 anchor: RW + softmax on a 0.7/0.3 bandit, 100 x 200, MAP with N(0, 2.5^2) priors:
    r(alpha) = 0.76, r(beta) = 0.91.
    """
    agent, task = make_agent(agent), make_task(task)
    _check_store(store, partial, rng, "parameter_recovery")
    root = rng
    rng = as_rng(rng)
    sim_rng, fit_rng, draw_rng = rng.spawn(3)
    n = int(n_subjects)
    if n < 2:
        raise ValueError(f"parameter_recovery: n_subjects must be >= 2 (correlations), got {n}")
    blocks = _par.chunks(n, subjects_per_unit)
    instance = not isinstance(estimator, str) and hasattr(estimator, "fit")
    if instance and len(blocks) > 1:
        raise ValueError("parameter_recovery: subjects_per_unit needs one estimator per block: pass a name ('MAP') "
                         "or a callable(agent) -> estimator, not an estimator instance")
    est = _make_estimator(estimator, agent, fit_rng, estimator_options)
    bound = float(getattr(est, "bound", 15.0))
    theta = draw_params(agent, n, params, rng=draw_rng, narrow=narrow, bound=bound)
    p_con = _constrained(agent, theta)
    trials = _simulate(agent, task, n, n_trials, p_con, sim_rng, schedule, progress)
    names = [p.name for p in agent.params]
    rngs = [fit_rng] if len(blocks) == 1 else fit_rng.spawn(len(blocks))
    one = len(blocks) == 1 and _par.current().kind == "serial"
    units = [{"estimator": est if (instance or one) else estimator, "built": instance or one, "agent": agent,
              "rng": r, "options": estimator_options, "names": names, "progress": progress if one else False,
              "trials": trials.isel({SUBJECT: b}) if len(blocks) > 1 else trials} for b, r in zip(blocks, rngs)]
    study = {"function": "parameter_recovery", "agent": repr(agent), "task": repr(task), "n_subjects": n,
             "trials": trials_fingerprint(trials), "estimator": _estimator_id(estimator),
             "estimator_options": estimator_options, "blocks": [len(b) for b in blocks], "seed": _seed_id(root)}
    parts = _par.map_units(_fit_recovery_unit, units, store=store, study=study, only_stored=partial,
                           progress=bool(progress) and not one, desc=f"parameter recovery of {agent.name}")
    D = len(names)
    est_con, est_unc = np.full((n, D), np.nan), np.full((n, D), np.nan)
    converged, loglik = np.zeros(n, bool), np.full(n, np.nan)
    complete = np.zeros(n, bool)
    informed = np.zeros(len(names), bool)
    for b, part in zip(blocks, parts):
        if part is None:
            continue
        informed |= np.asarray(part.get("informed", np.ones(len(names), bool)), bool)
        est_con[b], est_unc[b] = part["estimate"], part["theta"]
        converged[b], loglik[b] = part["converged"].astype(bool), part["loglik"]
        complete[b] = True
    if partial and complete.sum() < 2:
        raise ValueError(f"parameter_recovery: store {str(store)!r} holds {int(complete.sum())} finished subject(s); "
                         "a summary needs at least 2")
    true_con = np.stack([p_con[k] for k in names], axis=1)
    true_unc = np.stack([theta[k] for k in names], axis=1)
    if not converged[complete].all():
        warnings.warn(f"parameter_recovery: {int((~converged[complete]).sum())} of {int(complete.sum())} fits did "
                      "not converge; they are included in r, bias and RMSE (see the 'converged' variable)",
                      UserWarning, stacklevel=2)
    D = len(names)

    def metrics(t, e):
        r = np.array([_corr(t[:, j], e[:, j]) for j in range(D)])
        bias = np.mean(e - t, axis=0)
        rmse = np.sqrt(np.mean((e - t) ** 2, axis=0))
        return r, bias, rmse

    c = complete
    r, bias, rmse = metrics(true_con[c], est_con[c])
    ru, bu, mu = metrics(true_unc[c], est_unc[c])
    cross = np.array([[_corr(true_con[c, i], est_con[c, j]) for j in range(D)] for i in range(D)])
    ecorr = np.array([[_corr(est_con[c, i], est_con[c, j]) for j in range(D)] for i in range(D)])
    dims = (SUBJECT, PARAM)
    ds = xr.Dataset(
        {
            "true": (dims, true_con), "estimated": (dims, est_con),
            "true_unconstrained": (dims, true_unc), "estimated_unconstrained": (dims, est_unc),
            "converged": (SUBJECT, converged), "loglik": (SUBJECT, loglik),
            "r": (PARAM, r), "bias": (PARAM, bias), "rmse": (PARAM, rmse),
            "r_unconstrained": (PARAM, ru), "bias_unconstrained": (PARAM, bu), "rmse_unconstrained": (PARAM, mu),
            "cross_correlation": ((PARAM, PARAM2), cross), "estimate_correlation": ((PARAM, PARAM2), ecorr),
        },
        coords={SUBJECT: trials[SUBJECT].values, PARAM: names, PARAM2: names},
        attrs={"agent": agent.name, "agent_options": repr(agent), "task": task.name, "task_options": repr(task),
               "estimator": type(est).__name__, "n_trials": int(trials["valid"].sum(TRIAL).max()),
               "n_subjects": n, "schedule": "recorded" if schedule is not None else "free",
               "n_complete": int(complete.sum()), "units": len(blocks)},
    )
    identified = informed & (np.ones(D, bool) if min_r is None else ~(r < float(min_r)))
    ds["informed"] = (PARAM, informed)
    ds["identified"] = (PARAM, identified)
    ds.attrs["min_r"] = float("nan") if min_r is None else float(min_r)
    if not identified.all():
        from .mle import FitWarning

        bad = [f"{names[j]} (r = {r[j]:.2f}{'' if informed[j] else ', no information in any fit'})"
               for j in np.flatnonzero(~identified)]
        crit = "" if min_r is None else f" (r below min_r = {float(min_r):g}, or no information)"
        warnings.warn(
            f"parameter_recovery {agent.name}: this design ({n} subjects x {ds.attrs['n_trials']} trials, "
            f"{type(est).__name__}) does not identify {', '.join(bad)}{crit}: per-subject estimates of these "
            "parameters do not track the truth. Do not interpret them per subject; use more trials or subjects, "
            "a hierarchical fit (estimator='NUTS'), or fix them (fixed={...})", FitWarning, stacklevel=2)
    ds["r"].attrs["description"] = "Pearson r(true, estimated), constrained scale"
    ds["cross_correlation"].attrs["description"] = "corr(true param, estimated param_) over subjects"
    return ds


def plot_parameter_recovery(result: xr.Dataset, *, scale: str = "constrained", axes=None):
    """Scatter of estimated vs true values per parameter, with the identity line and r in the titles.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :func:`parameter_recovery`.
    scale : {"constrained", "unconstrained"}
    axes : sequence of matplotlib Axes, optional (one per parameter)

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if not isinstance(result, xr.Dataset) or "true" not in result or "estimated" not in result:
        raise TypeError("plot_parameter_recovery: pass the xarray.Dataset returned by parameter_recovery")
    if scale not in ("constrained", "unconstrained"):
        raise ValueError(f"scale must be 'constrained' or 'unconstrained', got {scale!r}")
    suf = "" if scale == "constrained" else "_unconstrained"
    names = list(result[PARAM].values)
    D = len(names)
    if axes is None:
        fig, axs = plt.subplots(1, D, figsize=(3.3 * D, 3.3), squeeze=False)
        axes = axs.ravel()
    else:
        axes = np.atleast_1d(axes).ravel()
        if len(axes) < D:
            raise ValueError(f"plot_parameter_recovery: {D} parameters need {D} axes, got {len(axes)}")
        fig = axes[0].figure
    conv = result["converged"].values.astype(bool)
    for ax, name in zip(axes, names):
        t = result[f"true{suf}"].sel({PARAM: name}).values
        e = result[f"estimated{suf}"].sel({PARAM: name}).values
        ax.scatter(t[conv], e[conv], s=12, alpha=0.7, color="C0", label="converged")
        if (~conv).any():
            ax.scatter(t[~conv], e[~conv], s=16, marker="x", color="C3", label="not converged")
        lo = float(np.nanmin(np.r_[t, e]))
        hi = float(np.nanmax(np.r_[t, e]))
        ax.plot([lo, hi], [lo, hi], "--", color="0.4", lw=1)
        r = float(result[f"r{suf}"].sel({PARAM: name}))
        ax.set_title(f"{name}: r = {r:.2f}", fontsize="medium")
        ax.set_xlabel(f"true{'' if not suf else ' (unconstrained)'}")
        ax.set_ylabel("estimated")
    fig.suptitle(f"parameter recovery: {result.attrs.get('agent', '')} on {result.attrs.get('task', '')}, "
                 f"{result.attrs.get('estimator', '')}, {result.sizes[SUBJECT]} subjects", fontsize="medium")
    fig.tight_layout()
    return fig


# ============================================================================ model recovery
def confusion_matrix(generated: np.ndarray, selected: np.ndarray, n_models: int) -> np.ndarray:
    """``C_ij = P(selected j | generated i)`` from per-subject generator and selection indices.

    Parameters
    ----------
    generated, selected : array_like of int, shape (n,)
        Index of the generating model and of the selected model per simulated subject.
    n_models : int

    Returns
    -------
    numpy.ndarray, shape (n_models, n_models)
        Rows sum to 1 (NaN rows for generators without subjects).
    """
    g = np.asarray(generated, np.int64).ravel()
    s = np.asarray(selected, np.int64).ravel()
    if g.shape != s.shape:
        raise ValueError(f"confusion_matrix: generated and selected differ in length ({g.size} vs {s.size})")
    K = int(n_models)
    if g.size and (g.min() < 0 or g.max() >= K or s.min() < 0 or s.max() >= K):
        raise ValueError(f"confusion_matrix: indices must lie in [0, {K})")
    counts = np.zeros((K, K))
    np.add.at(counts, (g, s), 1.0)
    rows = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(rows > 0, counts / np.maximum(rows, 1.0), np.nan)


def inversion_matrix(confusion: np.ndarray) -> np.ndarray:
    """``P(generated i | selected j) = C_ij / sum_i C_ij`` under a uniform prior over generators.

    Parameters
    ----------
    confusion : array_like, shape (K, K)
        Confusion matrix with generators on rows (rows sum to 1).

    Returns
    -------
    numpy.ndarray, shape (K, K)
        Columns sum to 1; NaN in a column whose model was never selected.
    """
    C = np.asarray(confusion, float)
    if C.ndim != 2 or C.shape[0] != C.shape[1]:
        raise ValueError(f"inversion_matrix: confusion must be square, got shape {C.shape}")
    if np.any(C < 0):
        raise ValueError("inversion_matrix: confusion entries must be non-negative")
    col = C.sum(axis=0, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(col > 0, C / np.where(col > 0, col, 1.0), np.nan)


def _labels(agents) -> tuple[list[str], list[Agent]]:
    if isinstance(agents, Mapping):
        labels = [str(k) for k in agents]
        objs = [make_agent(v) for v in agents.values()]
    else:
        objs = [make_agent(a) for a in agents]
        labels = [a.name for a in objs]
        if len(set(labels)) != len(labels):
            # same registered agent with different options: describe the differing options
            new = []
            for a in objs:
                try:
                    base = type(a)().options
                except Exception:  # noqa: BLE001 - constructor needs arguments
                    base = {}
                diff = {k: v for k, v in a.options.items() if base.get(k, object()) != v}
                fixed = f"fixed={a.fixed}" if a.fixed else ""
                extra = ",".join([f"{k}={v}" for k, v in diff.items()] + ([fixed] if fixed else []))
                new.append(f"{a.name}({extra})" if extra else a.name)
            labels = new
    if len(set(labels)) != len(labels):
        raise ValueError(f"model_recovery: candidate labels are not unique ({labels}); pass a dict label -> agent")
    if len(objs) < 2:
        raise ValueError("model_recovery needs at least two candidate agents")
    return labels, objs


def _log_evidence(est, criterion: str) -> np.ndarray:
    res = est.result_
    if criterion == "bic":
        return -0.5 * res["bic"].values
    if criterion == "aic":
        return -0.5 * res["aic"].values
    if "laplace_log_evidence" not in res:
        raise ValueError(f"criterion='laplace' needs an estimator with a prior (MAP or EMMAP), not "
                         f"{type(est).__name__}")
    return res["laplace_log_evidence"].values


def model_recovery(
    agents: Sequence | Mapping,
    task: Task | str,
    *,
    n_subjects: int = 50,
    n_trials: int | None = None,
    params: Mapping | None = None,
    criterion: str = "bic",
    bms: bool = True,
    estimator: Any = "MAP",
    estimator_options: Mapping | None = None,
    schedule: xr.Dataset | None = None,
    narrow: float = DEFAULT_NARROW,
    rng=None,
    progress: bool | None = None,
    subjects_per_unit: int | None = None,
    store=None,
    partial: bool = False,
) -> xr.Dataset:
    """Model recovery: how often each generating agent is selected, and which generator a selection implies.

    Parameters
    ----------
    agents : list of Agent/str, or dict label -> Agent/str
        The candidate models; each is also a generator.
    task : Task or str
    n_subjects : int, default 50
        Simulated subjects per generator.
    n_trials : int, optional
        Decisions per subject (default: the task's).
    params : dict, optional
        ``{label: distribution}`` per generator (see :func:`draw_params`); default [A1].
    criterion : {"bic", "aic", "laplace"}, default "bic"
        Log evidence used for selection and BMS: ``-BIC/2``, ``-AIC/2`` or Laplace ([A4]).
    bms : bool, default True
        Run random-effects BMS per generator.
    estimator, estimator_options
        As :func:`parameter_recovery` (a name or a factory; an instance is refused: one estimator
        per candidate is needed).
    schedule : xarray.Dataset, optional
        Recorded trials whose schedules the simulated subjects reuse ([A6]).
    narrow : float
    rng : int, numpy.random.Generator or None
    progress : bool, optional
        A progress bar over the fit units.
    subjects_per_unit : int, optional
        Fit each candidate to blocks of this many subjects (of all generators together), one unit of
        :mod:`neurorl.parallel` per candidate and block (default: one unit per candidate) ([A7]).
    store : str or path-like, optional
        Directory of a resumable study ([A8]); needs an int ``rng``.
    partial : bool, default False
        Summarise the subjects whose every candidate fit is in ``store``, fitting nothing ([A8]).

    Returns
    -------
    xarray.Dataset
        Dims ``generator`` and ``model`` (the same labels) and ``subject`` (within generator):
        ``log_evidence`` (generator, subject, model), ``selected`` (generator, subject: label
        index), ``confusion`` (generator, model; rows sum to 1), ``inversion`` (generator, model;
        columns sum to 1), ``counts``; with ``bms``: ``bms_frequency``, ``bms_ep``, ``bms_pxp``
        (generator, model) and ``bms_bor`` (generator). Attribute ``criterion``.
    """
    from .compare import bms as run_bms

    labels, objs = _labels(agents)
    task = make_task(task)
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    if isinstance(estimator, str) and estimator == "NUTS":
        raise ValueError("model_recovery selects a model per subject by its log evidence, which estimator='NUTS' "
                         "does not give; use 'MAP' (criterion 'laplace', 'bic' or 'aic') or compare hierarchical "
                         "fits with neurorl.fitting.bayes.compare")
    if criterion == "laplace" and isinstance(estimator, str) and estimator == "MLE":
        raise ValueError("criterion='laplace' needs an estimator with a prior (MAP or EMMAP), not MLE")
    if not isinstance(estimator, str) and hasattr(estimator, "fit"):
        raise ValueError("model_recovery needs one estimator per candidate: pass a name ('MAP') or a "
                         "callable(agent) -> estimator, not an estimator instance")
    params = dict(params or {})
    unknown = sorted(set(params) - set(labels))
    if unknown:
        raise ValueError(f"model_recovery: params given for unknown generator(s) {unknown}; labels are {labels}")
    for a in objs:
        a.check_task(task)
    _check_store(store, partial, rng, "model_recovery")
    root = rng
    rng = as_rng(rng)
    K, n = len(objs), int(n_subjects)
    if n < 1:
        raise ValueError(f"n_subjects must be >= 1, got {n}")
    gen_rngs = rng.spawn(K)
    fit_rngs = rng.spawn(K)
    sims = []
    for i, (lab, a) in enumerate(zip(labels, objs)):
        d_rng, s_rng = gen_rngs[i].spawn(2)
        theta = draw_params(a, n, params.get(lab), rng=d_rng, narrow=narrow)
        tr = _simulate(a, task, n, n_trials, _constrained(a, theta), s_rng, schedule, False)
        sims.append(tr.assign_coords({SUBJECT: np.arange(i * n, (i + 1) * n)}))
    all_trials = xr.concat(sims, dim=SUBJECT, data_vars="minimal", coords="minimal", compat="override",
                           join="outer") if K > 1 else sims[0]
    hierarchical = isinstance(estimator, str) and estimator == "EMMAP"
    # units ([A7]): (model j, subject indices into the K*n concatenated subjects, generator rng)
    plan = []
    if hierarchical:
        if subjects_per_unit is not None:
            raise ValueError("model_recovery: EMMAP learns a group prior from each generator's subjects together; "
                             "subjects_per_unit does not apply")
        for j in range(K):
            for i in range(K):
                plan.append((j, np.arange(i * n, (i + 1) * n), fit_rngs[j].spawn(1)[0], sims[i]))
    else:
        blocks = _par.chunks(K * n, subjects_per_unit)
        for j in range(K):
            rngs = [fit_rngs[j]] if len(blocks) == 1 else fit_rngs[j].spawn(len(blocks))
            for blk, r in zip(blocks, rngs):
                plan.append((j, blk, r, all_trials if len(blocks) == 1 else all_trials.isel({SUBJECT: blk})))
    units = [{"estimator": estimator, "built": False, "agent": objs[j], "rng": r, "options": estimator_options,
              "progress": False, "criterion": criterion, "trials": tr} for j, _, r, tr in plan]
    study = {"function": "model_recovery", "agents": {lab: repr(a) for lab, a in zip(labels, objs)},
             "task": repr(task), "n_subjects": n, "trials": trials_fingerprint(all_trials), "criterion": criterion,
             "estimator": _estimator_id(estimator), "estimator_options": estimator_options,
             "units": [[j, len(blk)] for j, blk, _, _ in plan], "seed": _seed_id(root)}
    parts = _par.map_units(_fit_recovery_unit, units, store=store, study=study, only_stored=partial,
                           progress=bool(progress), desc="model recovery fits", compile_key=_model_key)
    flat = np.full((K * n, K), np.nan)  # concatenated subject, model
    done = np.zeros((K * n, K), bool)
    for (j, blk, _, _), part in zip(plan, parts):
        if part is not None:
            flat[blk, j] = part["log_evidence"]
            done[blk, j] = True
    complete = done.all(axis=1)
    bad = ~np.isfinite(flat) & done
    if bad.any():
        s_, j = np.argwhere(bad)[0]
        raise ValueError(f"model_recovery: the {criterion} log evidence of model {labels[j]!r} is not finite for "
                         f"subject {s_ % n} of generator {labels[s_ // n]!r} (e.g. a non-positive-definite Hessian "
                         "for 'laplace'); use criterion='bic' or check the fits")
    if partial and not complete.any():
        raise ValueError(f"model_recovery: store {str(store)!r} holds no subject whose every candidate is fitted yet")
    L = flat.reshape(K, n, K)  # generator, subject, model
    complete = complete.reshape(K, n)
    selected = np.where(complete, np.argmax(np.nan_to_num(L, nan=-np.inf), axis=2), -1)  # ties -> first ([A4])
    gen = np.repeat(np.arange(K), n)
    keep = complete.ravel()
    C = confusion_matrix(gen[keep], selected.ravel()[keep], K)
    counts = np.zeros((K, K), np.int64)
    np.add.at(counts, (gen[keep], selected.ravel()[keep]), 1)
    data = {
        "log_evidence": ((GENERATOR, SUBJECT, MODEL), L),
        "selected": ((GENERATOR, SUBJECT), selected),
        "confusion": ((GENERATOR, MODEL), C),
        "inversion": ((GENERATOR, MODEL), inversion_matrix(C)),
        "counts": ((GENERATOR, MODEL), counts),
    }
    if bms:
        freq, ep, pxp, bor = np.empty((K, K)), np.empty((K, K)), np.empty((K, K)), np.empty(K)
        for i in range(K):
            if not complete[i].any():
                freq[i], ep[i], pxp[i], bor[i] = np.nan, np.nan, np.nan, np.nan
                continue
            res = run_bms(L[i][complete[i]].T)
            freq[i], ep[i], pxp[i], bor[i] = (res.frequencies.values, res.ep.values, res.pxp.values, res.bor)
        data.update(bms_frequency=((GENERATOR, MODEL), freq), bms_ep=((GENERATOR, MODEL), ep),
                    bms_pxp=((GENERATOR, MODEL), pxp), bms_bor=(GENERATOR, bor))
    ds = xr.Dataset(data, coords={GENERATOR: labels, MODEL: labels, SUBJECT: np.arange(n)},
                    attrs={"criterion": criterion, "task": task.name, "task_options": repr(task),
                           "estimator": estimator if isinstance(estimator, str) else repr(estimator),
                           "n_subjects": n, "n_trials": int(sims[0].sizes[TRIAL]),
                           "schedule": "recorded" if schedule is not None else "free",
                           "n_complete": int(complete.sum()), "units": len(plan)})
    ds["confusion"].attrs["description"] = "P(selected model | generator); rows sum to 1"
    ds["inversion"].attrs["description"] = "P(generator | selected model), uniform prior; columns sum to 1"
    return ds


def truth_recovery(log_evidence: xr.DataArray, generator, *, criterion: str = "", task: str = "",
                   n_trials: int | None = None, estimator: str = "") -> xr.Dataset:
    """Model recovery on data whose generating model is known per subject (a synthetic cohort).

    Where :func:`model_recovery` simulates its subjects, this scores a comparison already made: each subject is
    assigned to the model of largest log evidence (ties to the first model, [A4]) and compared with its known
    generator.

    Parameters
    ----------
    log_evidence : xarray.DataArray (model, subject)
        Per-subject log evidence of every candidate (e.g. ``-BIC/2`` or the Laplace log evidence of a comparison).
    generator : mapping subject -> model label, or sequence aligned with ``subject``
        The generating model of each subject; every label must be one of the candidates.
    criterion, task, n_trials, estimator
        Recorded as attributes (what the evidence is, and of which data).

    Returns
    -------
    xarray.Dataset
        As :func:`model_recovery` (``confusion``, ``inversion``, ``counts`` over ``generator`` x ``model``; rows of
        generators without subjects are NaN) plus, over ``subject``, ``generator_of``, ``selected_model`` and
        ``correct``; attributes ``accuracy`` (fraction of subjects assigned to their generator), ``n_correct``,
        ``n_subjects`` (per generator, JSON), ``criterion``, ``task``, ``n_trials``, ``estimator``, ``source =
        "known generators"``.
    """
    import json

    if set(log_evidence.dims) != {MODEL, SUBJECT}:
        raise ValueError(f"truth_recovery: log_evidence needs dims ({MODEL}, {SUBJECT}), got {log_evidence.dims}")
    L = log_evidence.transpose(MODEL, SUBJECT)
    labels = [str(m) for m in L[MODEL].values]
    subjects = [str(s) for s in L[SUBJECT].values]
    if isinstance(generator, Mapping):
        gen = {str(k): str(v) for k, v in generator.items()}
        missing = [s for s in subjects if s not in gen]
        if missing:
            raise ValueError(f"truth_recovery: no generating model for subject(s) {missing[:8]}")
        gen = [gen[s] for s in subjects]
    else:
        gen = [str(g) for g in generator]
        if len(gen) != len(subjects):
            raise ValueError(f"truth_recovery: {len(gen)} generators for {len(subjects)} subjects")
    unknown = sorted(set(gen) - set(labels))
    if unknown:
        raise ValueError(f"truth_recovery: generating model(s) {unknown} are not among the candidates {labels}")
    vals = np.asarray(L.values, float)
    bad = ~np.isfinite(vals)
    if bad.any():
        j, i = np.argwhere(bad)[0]
        raise ValueError(f"truth_recovery: the log evidence of model {labels[j]!r} is not finite for subject "
                         f"{subjects[i]!r}")
    sel = np.argmax(vals, axis=0)
    g = np.array([labels.index(x) for x in gen])
    K = len(labels)
    counts = np.zeros((K, K), np.int64)
    np.add.at(counts, (g, sel), 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        C = counts / counts.sum(axis=1, keepdims=True)
    correct = sel == g
    ds = xr.Dataset(
        {"confusion": ((GENERATOR, MODEL), C), "inversion": ((GENERATOR, MODEL), inversion_matrix(np.nan_to_num(C))),
         "counts": ((GENERATOR, MODEL), counts),
         "generator_of": (SUBJECT, np.array(gen, dtype=str)),
         "selected_model": (SUBJECT, np.array([labels[j] for j in sel], dtype=str)),
         "correct": (SUBJECT, correct)},
        coords={GENERATOR: labels, MODEL: labels, SUBJECT: L[SUBJECT].values},
        attrs={"criterion": criterion, "task": task, "n_trials": -1 if n_trials is None else int(n_trials),
               "estimator": estimator, "source": "known generators", "accuracy": float(correct.mean()),
               "n_correct": int(correct.sum()),
               "n_subjects": json.dumps({m: int((g == k).sum()) for k, m in enumerate(labels)})})
    ds["confusion"].attrs["description"] = "P(selected model | generator); rows sum to 1"
    ds["inversion"].attrs["description"] = "P(generator | selected model), uniform prior; columns sum to 1"
    return ds


def plot_model_recovery(result: xr.Dataset, *, axes=None):
    """Two heatmaps: the confusion matrix and the inversion matrix (values annotated).

    The titles of the confusion panel give the criterion; with BMS, the protected exceedance
    probability of the generating model is added to each row label.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if not isinstance(result, xr.Dataset) or "confusion" not in result or "inversion" not in result:
        raise TypeError("plot_model_recovery: pass the xarray.Dataset returned by model_recovery")
    labels = [str(v) for v in result[MODEL].values]
    K = len(labels)
    if axes is None:
        fig, axs = plt.subplots(1, 2, figsize=(2 * (1.2 * K + 2.2), 1.1 * K + 1.8))
    else:
        axs = np.atleast_1d(axes).ravel()
        if len(axs) < 2:
            raise ValueError("plot_model_recovery needs two axes")
        fig = axs[0].figure
    rows = labels
    if "bms_pxp" in result:
        rows = [f"{lab}\n(pxp {float(result['bms_pxp'].values[i, i]):.2f})" for i, lab in enumerate(labels)]
    titles = {"confusion": f"confusion P(selected | generated)\n[{result.attrs.get('criterion', '')}]",
              "inversion": "inversion P(generated | selected)"}
    for ax, name in zip(axs, ("confusion", "inversion")):
        M = result[name].transpose(GENERATOR, MODEL).values
        im = ax.imshow(M, vmin=0.0, vmax=1.0, cmap="viridis")
        for i in range(K):
            for j in range(K):
                v = M[i, j]
                ax.text(j, i, "–" if not np.isfinite(v) else f"{v:.2f}", ha="center", va="center",
                        color="w" if (np.isfinite(v) and v < 0.6) else "k", fontsize="small")
        ax.set_xticks(range(K))
        ax.set_xticklabels(labels, rotation=30, ha="right")
        ax.set_yticks(range(K))
        if name == "confusion":
            ax.set_yticklabels(rows)
            ax.set_ylabel("generating model")
        else:
            ax.set_yticklabels([])
        ax.set_xlabel("fitted (selected) model")
        ax.set_title(titles[name], fontsize="medium")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return fig
