"""Hierarchical Bayesian fitting with PyMC: every agent, choices and reaction times, LOO, posterior latents.

Reference: ``reference/fitting.md`` §3 (transforms and priors), §4 ("Hierarchical Bayes, non-centred"), §5
(PSIS-LOO at the trial and the subject level, Pareto k, exact K-fold by subject), §6 (posterior predictive checks)
and §7 (performance anchors).

One call fits a group::

    from neurorl.fitting.bayes import fit_bayes, compare
    fit = fit_bayes("q_learning", trials)                        # choices
    fit = fit_bayes("q_learning", trials, rt=WienerRT())          # choices + Wiener RTs (RL-DDM)
    fit.idata_                                 # arviz.InferenceData: posterior, log_likelihood, sample_stats
    fit.summary_                               # R-hat, bulk/tail ESS, means, HDIs of group and subject parameters
    fit.loo("trial"), fit.loo("subject")       # PSIS-LOO; fit.kfold(5) is the exact fallback by subject
    fit.latents()                              # posterior latents (mean, sd, credible interval) for decoding
    fit.predictive_check(task="bandit")        # posterior predictive check (neurorl.fitting.ppc)
    compare({"rw": fit, "rw+stick": fit2})     # arviz.compare table with our model names

This module holds the estimator; the bodies of its larger methods live by concern beside it, each method a
documented delegation: the subject level of the model and where chains start (the MAP start, the centred rows, the
starting points, numpyro's mass matrix) in :mod:`neurorl.fitting.bayes_hierarchy`, the convergence checks in
:mod:`neurorl.fitting.bayes_diagnostics`, LOO, exact K-fold and comparison in :mod:`neurorl.fitting.bayes_evidence`,
posterior draws, latents and predictive checks in :mod:`neurorl.fitting.bayes_posterior` (``loo``, ``compare``,
``diagnose``, ``BayesWarning`` and the constants are importable from here too).

The model
---------
For every row ``r`` of the parameter layout (the agent's free parameters, then covariate slopes, exactly the rows
of :class:`~neurorl.fitting.graph.ThetaLayout` used by MLE/MAP), on the unconstrained scale of the parameter's
transform (:mod:`neurorl.params`)::

    group_mean[r] ~ Normal(loc_r, scale_r)          loc_r, scale_r = Param.prior_loc, Param.prior_scale
    group_sd[r]   ~ HalfNormal(sd_scale_r)          sd_scale_r = 1.0 (GROUP_SD_SCALE)
    offset[r, i]  ~ Normal(0, 1)                    one per subject i (non-centred rows)
    theta[r, i]   = group_mean[r] + group_sd[r] * offset[r, i]
    theta[r, i]   ~ Normal(group_mean[r], group_sd[r])          (centred rows: no offset)
    param_t       = transform(theta[base, i] + sum_c theta[slope_c, i] * x_c[i, t])     (covariates)
    log p(data | theta) = sum over valid trials of agent.trial_loglik  (choice, or choice + RT)

The likelihood is the scan over trials of the agent's own ``decide``/``learn`` rule that MLE, MAP and EM-MAP
maximise, as one Op (:class:`neurorl.backend.pytensor_op.LoglikOp`: the compiled JAX function of the estimators,
value and exact gradient), added to the model with ``pm.Potential``. Ragged subjects are padded by the trials
schema with ``valid = False``; those trials are never scored, and the scan stops at the longest subject's last
valid trial (:mod:`neurorl.backend.traced`).

Posterior variables (dims in brackets): ``group_mean``, ``group_sd`` [param], ``theta`` [param, subject]
(unconstrained), the sampled ``theta_partial`` [param, subject] (partially non-centred, ``parametrization="auto"``),
``offset`` [param, subject] (every row non-centred), or ``theta_centred`` [param_centred, subject] and ``offset``
[param_offset, subject] (some rows centred), and for every free parameter ``p`` its subject values ``p`` [subject]
and ``p_group``
(``transform(group_mean)``, the population median on the constrained scale) on the constrained scale.

Sampling
--------
Every sampler runs the same Op. ``"nutpie"`` (Rust NUTS, chains in threads) compiles the model's log density
through PyTensor's JAX backend, the Op translated into a pure JAX function (:mod:`neurorl.backend.traced`), and
takes its gradient with JAX (about a second; ``compile_seconds_``). ``"numpyro"``
(``pm.sample(nuts_sampler="numpyro")``) traces the same function into numpyro's compiled sampler. ``"pymc"`` is
PyMC's own NUTS, the Op calling the compiled JAX function of the estimators (built once per machine, loaded from
the on-disk cache by later processes); PyMC's functions around it are compiled through PyTensor's JAX backend, out
of PyTensor's C compile folder (:func:`_pytensor_mode`). ``sampler="auto"`` (default) is nutpie where it is
installed, else numpyro, else PyMC ([A3]).

Evidence
--------
``idata_.log_likelihood["loglik"]`` holds the pointwise log-likelihood of every *valid* trial, flattened to a
dim ``obs`` (subject-major) with coordinates ``subject`` and ``trial`` on it: padding and missed trials are not
observations, so they are absent rather than NaN and ``arviz.loo`` sees real observations only. Reshape with
``ll.set_index(obs=["subject", "trial"]).unstack("obs")`` for a (subject, trial) grid. It is computed after
sampling, not stored during sampling: the agent's rule with the NumPy backend (the path of ``simulate`` and
``replay``; no compilation) runs all posterior draws at once, stacked on the subject axis, and scores each trial
with ``agent.trial_loglik`` -- the function the PyTensor scan sums (the tests check that the two agree).

:meth:`HierarchicalBayes.loo` gives PSIS-LOO at the trial level (one term per trial) or, with
``level="subject"``, leave-one-subject-out (a subject's trials summed per draw, then PSIS). Pareto k above arviz's
threshold ``min(1 - 1/log10 S, 0.7)`` warns with the offending trials/subjects and what to do.
:meth:`HierarchicalBayes.kfold` is the exact fallback: refit with folds of subjects held out and score each held-out
subject by its log predictive density under the population ([A6]). :func:`compare` wraps ``arviz.compare``.

Assumptions and choices
-----------------------
[A1] Group priors: ``group_mean ~ N(prior_loc, prior_scale^2)`` -- the agent's ``Param`` default prior, the MAP
     prior (N(0, 2.5^2) unless the agent says otherwise; fitting.md §3) -- and ``group_sd ~ HalfNormal(1)``
     on the unconstrained scale: median 0.67, 95 % below 1.96, which covers the between-subject spreads of
     learning rates (logit scale) and inverse temperatures (log scale) reported in fitting.md §7 (0.7, 0.4)
     without forcing pooling (hBayesDM's half-N(0, 0.2) is on its Phi_approx scale, where 0.2 is about 0.35
     logits). Covariate slopes: ``group_mean ~ N(0, prior_scale^2)`` of the parameter they modulate (as MAP
     [A5] of mle.py) and ``group_sd ~ HalfNormal(1)``. Override any row with ``priors={"alpha": {"mu": (loc,
     scale), "sigma": sd_scale}}`` (or ``priors={"alpha": (loc, scale)}`` for the group mean only).
[A2] Centred, non-centred or in between, per subject and row. Non-centred (subject offsets N(0, 1)) samples well
     when subjects are weakly informed relative to the spread of the group; centred (theta ~ N(group mean, group
     sd), as HDDM) when the data pin each subject down more tightly than the group spreads them -- RL-DDM, where
     every trial's RT informs the boundary and non-decision time (measured on 28 ragged RL-DDM subjects, 6,519
     trials: 23 leapfrog steps per draw instead of 69 and 4-5 times the minimum ESS per draw; docs/bayes.md), but
     also choice data of a few hundred trials per subject (100 x 200 bandit trials: 2.3 times the ESS per draw).
     Most data sets lie in between, and differ between subjects: a learning rate is pinned down for one subject
     and hardly informed for the next. ``parametrization="auto"`` (default) samples every subject's parameter
     partially non-centred, ``theta_partial ~ N(lam * group_mean, group_sd ** lam)``, ``theta = group_mean +
     group_sd ** (1 - lam) * (theta_partial - lam * group_mean)`` (the same model; Papaspiliopoulos, Roberts &
     Skold 2007), with the weight ``lam = tau^2 / (tau^2 + se^2)`` of its Laplace sd ``se`` against the
     between-subject sd ``tau`` of the MAP estimates (the same fit as [A10]; maximum likelihood of the
     random-effects model, :func:`~neurorl.fitting.bayes_hierarchy.between_sd`): for normal data the weight under
     which the subject's coordinate is a posteriori independent of the group mean. Measured against the previous
     per-row choice between the two forms (docs/bayes.md): 0.9-2.0 times the minimum ESS on three simulated RL-DDM
     data sets and 2.6 times on 100 x 200 bandit choices, at the same cost per draw. The fit reports ``parametrization_`` (``"partial"`` for such rows), the weights ``centring_`` [param, subject] and
     ``between_sd_``. ``"centred"``, ``"non-centred"`` or ``{param: "centred", ...}`` (unlisted rows
     non-centred) fix one form per row. hBayesDM's priors are non-centred.
[A3] Sampler defaults: ``sampler="auto"`` (nutpie, else numpyro, else PyMC: measured on RL-DDM, nutpie's
     gradient-based mass-matrix adaptation gives 1.5 times numpyro's ESS per draw at the same 500 tuning steps,
     and its chains run in threads without JAX's host-device flag; docs/bayes.md), ``draws=1000``, ``tune=1000``,
     ``chains=4``, ``cores=min(chains, CPUs)``, ``target_accept=0.8`` (the default of nutpie, numpyro and PyMC);
     warm-up draws are not kept.
[A4] Diagnostics (Vehtari et al. 2021 thresholds): R-hat (rank-normalised split R-hat) above 1.01, bulk or tail
     ESS below 100 per chain, any divergent transition after tuning, or trajectories that hit the maximum tree
     depth warn (:class:`BayesWarning`), naming the parameters and what to do. They are checked on
     ``group_mean``, ``group_sd`` and ``theta`` (every subject's parameters).
[A5] The pointwise log-likelihood is over valid trials; a trial-level LOO term scores a held-out choice (and RT)
     given the subject's full history (fitting.md §5: "conditional fit, not forecasting").
[A6] Exact K-fold by subject: subjects are split into ``k`` folds (random, sizes differing by at most one); each
     fold is refitted with its subjects' trials masked (``valid = False``: the subjects stay in the model, their
     offsets are then drawn from the prior, and the compiled model is reused with new data). A held-out subject
     ``i`` is scored by its log predictive density as a *new member of the population*, ``log p(y_i | y_-i) =
     log E[p(y_i | theta)]`` over ``theta = group_mean + group_sd * z``, ``z ~ N(0, I)``, with ``n_inner`` fresh
     ``z`` per posterior draw of the fold's fit (Monte Carlo, the integrated-likelihood estimate of iBIC,
     fitting.md §5); its Monte Carlo standard error is reported per subject and warned about above 0.1 nats.
     Its ``p_loo`` is the subject-level lppd of the full fit minus this elpd.
[A7] Posterior latents replay the data (:func:`neurorl.replay`) at ``n_draws`` posterior draws taken at evenly
     spaced positions of the pooled chains (deterministic thinning); the summary is the mean, sd, median and the
     central ``level`` (default 95 %) interval per subject and trial. Latents an agent declares
     ``simulation_only`` (random draws of a simulation) are left out.
[A8] Covariates follow mle.py [A11] exactly: a trials variable name or an ``xarray.DataArray`` with dims
     (subject, trial) aligned by label; ``eta_t = theta_base + sum_c theta_slope_c * x_c[t]``. Reported
     constrained subject values of a covariate-modulated parameter (``p``, ``p_group``, ``params_``) are at
     ``x = 0``; :meth:`HierarchicalBayes.posterior_draws` gives the per-trial values.
[A9] Initialisation: every chain starts with the group means at their prior locations, the group sds at 0.1 times
     their prior scales and the subject offsets jittered uniformly in (-1, 1) -- so every subject starts within
     about 0.1 (unconstrained) of the prior location, chains start apart only through the subjects (centred: theta
     itself is jittered by the same amount; nutpie's chains share one such start). The usual
     jitter of every variable (PyMC, nutpie) can start a chain where the data are impossible -- e.g. a
     non-decision time above a subject's fastest RT, where the Wiener likelihood is a flat floor -- and leave it
     stuck there (seen: R-hat 4, every draw divergent); the prior locations are meant to be plausible. Every group
     mean is then moved by U(-1, 1) times its group sd / sqrt(subjects), about one posterior sd (here and under
     [A10]): a group mean the data cannot inform, started exactly at its prior's mode, has a zero gradient, and
     nutpie refuses such a start (soft_q's ``eta_true`` in a choice-only fit: "All initialization points failed").
[A10] ``init="map"`` (``"auto"``, the default, unless ``priors="hbayesdm"``): every chain starts at the subjects' MAP estimates (neurorl's MAP with the agents' default
     priors) jittered uniformly by half their Laplace sds (capped at the spread of the estimates), the group mean
     near the estimates' mean ([A9]) and the group sd at their sd (at least 0.05). Under numpyro the initial diagonal
     inverse mass matrix is the expected posterior variance of each value variable (Laplace variances of the
     subjects; sd^2 / n for group means; 1 / 2n for log group sds), so the first warm-up window does not spend
     100+ leapfrog steps per draw with a unit mass matrix (measured on RL-DDM: docs/bayes.md). Rows MAP holds at
     their defaults (parameters choices cannot inform, in a choice-only fit) start at their prior location. nutpie
     takes one start for all chains (jittered in the offsets only; [A9]). K-fold refits
     with PyMC's or numpyro's sampler start from the prior ([A9]): a held-out subject's MAP estimate is that of its
     unseen data (nutpie's compiled model keeps the start it was compiled with).
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Mapping

import numpy as np
import xarray as xr

from ..agents.base import Agent, make_agent
from ..schema import SUBJECT, TRIAL
from ..tasks.base import as_rng
from . import bayes_evidence, bayes_hierarchy, bayes_posterior
from .bayes_diagnostics import (  # noqa: F401
    ESS_PER_CHAIN_MIN,
    RHAT_MAX,
    BayesWarning,
    _fmt_list,
    _label,
    diagnose,
)
from .bayes_evidence import LL_VAR, OBS, _subject_sums, compare, loo
from .bayes_hierarchy import (  # noqa: F401
    INIT_SD_FRACTION,
    PARAM,
    PARAM_CENTRED,
    PARAM_OFFSET,
    _subject_block,
    _subject_values,
    describe_parametrization,
)
from .graph import ThetaLayout
from .mle import _covariate_names, _Data, _normalise_covariates

__all__ = ["fit_bayes", "HierarchicalBayes", "BayesWarning", "compare", "loo", "describe_parametrization", "diagnose",
           "GROUP_SD_SCALE", "SAMPLERS"]

#: default scale of the HalfNormal prior of every group standard deviation ([A1])
GROUP_SD_SCALE = 1.0
SAMPLERS = ("auto", "nutpie", "pymc", "numpyro")
_RESERVED = ("group_mean", "group_sd", "offset", "theta", "theta_centred", "theta_partial", LL_VAR)
PARAMETRIZATIONS = ("auto", "non-centred", "centred")
INITS = ("auto", "prior", "map")


# ============================================================================ helpers
def _pytensor_mode(sampler: str):
    """PyTensor's mode for the functions PyMC compiles around its own NUTS: JAX for ``"pymc"``.

    Those functions (the model's log density and gradient, the initial point, the trace's point function) are small,
    but PyTensor's default C backend links each through its compile folder, whose start-up reads every module ever
    compiled there and waits on the folder's lock held by any other process: seconds to minutes, in every process.
    Through PyTensor's JAX backend they compile in about a second and never touch that folder; the likelihood Op
    translates itself to JAX (:mod:`neurorl.backend.traced`), so the whole log density is one JAX function. Other
    samplers compile the model themselves.
    """
    import contextlib

    if sampler != "pymc":
        return contextlib.nullcontext()
    import pytensor

    from ..backend import jax_ops  # noqa: F401 - 64-bit floats before anything compiles

    return pytensor.config.change_flags(mode="JAX")


def _xla_cache(sampler: str):
    """JAX's persistent compilation cache for the samplers whose functions JAX compiles in every process: PyMC's
    (its log density and point functions, through PyTensor's JAX backend) and numpyro's (the whole sampler), so that
    a later process loads them (:func:`neurorl.backend.cache.xla_cache`)."""
    import contextlib

    if sampler not in ("pymc", "numpyro", "nutpie"):
        return contextlib.nullcontext()
    from ..backend.cache import xla_cache

    return xla_cache()


def _resolve_sampler(sampler: str) -> str:
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if sampler == "auto":  # nutpie where it is installed, else numpyro, else PyMC's NUTS ([A3])
        from importlib.util import find_spec

        return next((s for s in ("nutpie", "numpyro") if find_spec(s) is not None), "pymc")
    if sampler == "nutpie":
        try:
            import nutpie  # noqa: F401
        except ImportError:
            raise ImportError("sampler='nutpie' needs nutpie (pip install nutpie); or use sampler='pymc'") from None
    if sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError:
            raise ImportError("sampler='numpyro' needs numpyro and jax (pip install numpyro); or use "
                              "sampler='pymc'") from None
    return sampler


def _wrap_agent(agent, rt) -> Agent:
    agent = make_agent(agent)
    if rt is None:
        return agent
    from . import joint  # lazy: the RT models are optional

    if hasattr(joint, "with_rt"):
        return joint.with_rt(agent, rt)
    return joint.WithRT(agent, rt)


_ROWS_PER_CHUNK = 200_000


def _numpy_pointwise(agent: Agent, layout: ThetaLayout, data, theta: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Per-trial log-likelihood ``(T, m)`` of subjects ``rows`` (positions, may repeat) at ``theta`` ``(R, m)``.

    The agent's rule with the NumPy backend, one vectorised step per trial; covariate-modulated parameters are
    evaluated per trial (``layout`` [A8]).
    """
    from ..backend import NUMPY

    spec = {p.name: p for p in agent.params}
    m = rows.size
    x = None if data.x is None else data.x[:, rows]  # (T, m, C)

    def params_at(t):
        p = {}
        for name, base, slopes in layout.terms:
            eta = theta[base]
            for r, c in slopes:
                eta = eta + theta[r] * x[t, :, c]
            p[name] = spec[name].to_constrained(eta)
        for k, v in agent.fixed.items():
            p[k] = np.full(m, v)
        return p

    per_trial = layout.has_covariates
    p = params_at(0)
    out = np.empty((data.T, m))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = agent.start(p, data.env, m, NUMPY)
        for t in range(data.T):
            if per_trial and t:
                p = params_at(t)
            obs = {k: v[t][rows] for k, v in data.obs.items()}
            s, lat = agent.step(p, s, obs, NUMPY)
            out[t] = agent.trial_loglik(p, obs, lat, NUMPY)
    return out


# ============================================================================ the estimator
class HierarchicalBayes:
    """Hierarchical Bayesian model of an agent's choices (and RTs), sampled with NUTS.

    Prefer :func:`fit_bayes` (one call); this class is the estimator behind it (scikit-learn style: options in
    ``__init__``, :meth:`fit` returns ``self``, results end in ``_``).

    Parameters
    ----------
    agent : Agent or str
        The learning agent (instance or registered name).
    rt : LognormalRT, WienerRT, str, optional
        Reaction-time model: the agent is wrapped as ``neurorl.fitting.joint.WithRT(agent, rt)`` and the
        likelihood is the joint density of choices and RTs ("lognormal", "wiener" or an instance).
    covariates : dict, optional
        Trial-wise covariates of parameters, ``{"alpha": "block"}`` or ``{"a": [signal_da, "cond"]}`` ([A8]).
    priors : dict or "hbayesdm", optional
        Per row (parameter or slope ``f"{param}_{covariate}"``): ``{"mu": (loc, scale), "sigma": sd_scale}``
        (either key may be left out) or ``(loc, scale)`` for the group mean ([A1]). ``"hbayesdm"``: hBayesDM's
        hierarchy (Phi_approx, N(0, 1) group means, half-N(0, 0.2) group sds, non-centred) for the agents that
        declare it (:mod:`neurorl.fitting.hbayesdm`); ``group_mean``/``group_sd`` are then on hBayesDM's raw scale.
    draws, tune, chains : int
        Posterior draws and tuning steps per chain, number of chains ([A3]).
    cores : int, optional
        Chains run in parallel (default ``min(chains, os.cpu_count())``).
    sampler : {"auto", "nutpie", "pymc", "numpyro"}
        See the module docstring and [A3]; ``"auto"``: nutpie, else numpyro, else PyMC, whichever is installed.
    target_accept : float, default 0.8
        Target acceptance rate of the step-size adaptation.
    random_seed : int, numpy.random.Generator or None
        Seeds the sampler and every later draw (thinning is deterministic).
    progress : bool, default True
        Show the sampler's progress bar.
    log_likelihood : bool, default True
        Compute the pointwise log-likelihood after sampling (needed by :meth:`loo` and :func:`compare`; it takes
        ``8 * chains * draws * n_valid_trials`` bytes and about 0.4 microseconds per draw and trial with the NumPy
        rule: 35 s for 4,000 draws of 100 x 200 trials). With ``False``, :meth:`add_log_likelihood` adds it later.
    name : str, optional
        Model name in comparison tables (default: the agent's name).
    sampler_kwargs : dict, optional
        Passed to ``nutpie.sample`` or ``pm.sample`` (e.g. ``{"maxdepth": 12}``).
    init : {"auto", "map", "prior"}
        Where chains start ([A9], [A10]): at every subject's MAP estimate (a :class:`~neurorl.fitting.mle.MAP` fit
        first, reported as ``init_seconds_``), with numpyro's initial mass matrix from its Laplace sds, or near the
        prior location. ``"auto"`` (default): the MAP estimates, except with ``priors="hbayesdm"``.
    parametrization : {"auto", "non-centred", "centred"} or dict
        How subjects' parameters enter ([A2]): ``theta = group_mean + group_sd * offset`` or ``theta ~
        Normal(group_mean, group_sd)`` sampled directly; ``"auto"`` (default) chooses per row from the MAP
        estimates; ``{param: "centred" | "non-centred"}`` per row.

    Attributes
    ----------
    idata_ : arviz.InferenceData
        ``posterior`` (module docstring), ``log_likelihood`` (``loglik`` over ``obs``), ``sample_stats``.
    summary_ : pandas.DataFrame
        ``arviz.summary`` of the group parameters (constrained ``p_group``, ``group_mean``, ``group_sd``) and of
        the subjects' constrained parameters.
    diagnostics_ : xarray.Dataset
        :func:`diagnose` of the fit (max R-hat, min ESS, divergences).
    params_ : xarray.Dataset
        Posterior means of the subjects' constrained parameters (what :func:`neurorl.replay` accepts).
    agent_, layout_, model_, trials_
        The (wrapped) agent, the parameter layout, the PyMC model and the fitted trials.
    sampler_ : str
        The sampler used.
    parametrization_ : dict
        ``{row: "centred" | "non-centred" | "partial"}`` as sampled ([A2]); ``centring_`` (DataArray [param,
        subject]) the weights (1 centred, 0 non-centred); ``between_sd_`` (DataArray over ``param``, or None without
        MAP estimates) the between-subject sds of the MAP estimates that ``"auto"`` weighs the Laplace sds against.
    init_ : str
        ``"map"`` or ``"prior"``: where the chains started ([A10]).
    compile_seconds_, init_seconds_, sample_seconds_, loglik_seconds_, fit_seconds_ : float
        nutpie's compilation (0 for PyMC and numpyro, whose compilation is inside sampling), sampling, pointwise
        log-likelihood and total wall times.
    """

    def __init__(self, agent: Agent | str, *, rt=None, covariates: dict | None = None,
                 priors: dict | str | None = None, draws: int = 1000, tune: int = 1000, chains: int = 4,
                 cores: int | None = None,
                 sampler: str = "auto", target_accept: float = 0.8, random_seed=None, progress: bool = True,
                 log_likelihood: bool = True, name: str | None = None, sampler_kwargs: dict | None = None,
                 parametrization: str = "auto", init: str = "auto"):
        self.agent = agent
        self.rt = rt
        self.covariates = covariates
        self.priors = priors
        self.draws = draws
        self.tune = tune
        self.chains = chains
        self.cores = cores
        self.sampler = sampler
        self.target_accept = target_accept
        self.random_seed = random_seed
        self.progress = progress
        self.log_likelihood = log_likelihood
        self.name = name
        self.sampler_kwargs = sampler_kwargs
        self.parametrization = parametrization
        self.init = init

    # -- scikit-learn protocol ------------------------------------------------------------
    def get_params(self, deep: bool = True) -> dict:
        """The constructor options."""
        import inspect

        return {k: getattr(self, k) for k in inspect.signature(type(self).__init__).parameters if k != "self"}

    def set_params(self, **params) -> "HierarchicalBayes":
        """Set constructor options; returns ``self``."""
        valid = self.get_params()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"HierarchicalBayes has no option {k!r}; options: {sorted(valid)}")
            setattr(self, k, v)
        return self

    def __repr__(self) -> str:
        return f"HierarchicalBayes({self.agent!r}, sampler={self.sampler!r}, draws={self.draws}, chains={self.chains})"

    # -- set-up ---------------------------------------------------------------------------
    def _check_options(self):
        for k in ("draws", "tune", "chains"):
            v = getattr(self, k)
            if int(v) != v or v < (0 if k == "tune" else 1):
                raise ValueError(f"{k} must be a {'non-negative' if k == 'tune' else 'positive'} integer, got {v!r}")
        if not 0.0 < float(self.target_accept) < 1.0:
            raise ValueError(f"target_accept must be in (0, 1), got {self.target_accept}")
        par = self.parametrization
        if isinstance(par, Mapping):
            bad = {k: v for k, v in par.items() if v not in ("centred", "non-centred")}
            if bad:
                raise ValueError(f"parametrization per parameter must be 'centred' or 'non-centred', got {bad}")
        elif par not in PARAMETRIZATIONS:
            raise ValueError(f"parametrization must be one of {PARAMETRIZATIONS} or a mapping "
                             f"{{parameter: 'centred' | 'non-centred'}}, got {par!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
        if self.init == "map" and self._hbayesdm:
            raise ValueError("init='map' starts from neurorl's MAP estimates, which are not on hBayesDM's raw scale; "
                             "use init='prior' with priors='hbayesdm'")
        if self._hbayesdm and (par == "centred" or isinstance(par, Mapping)):
            raise ValueError("priors='hbayesdm' is hBayesDM's non-centred hierarchy; it cannot be combined with "
                             "parametrization='centred'")

    def prior_table(self, agent: Agent | None = None, layout: ThetaLayout | None = None) -> xr.Dataset:
        """The group priors in use ([A1]): ``mu_loc``, ``mu_scale``, ``sd_scale`` per row (dim ``param``)."""
        agent = agent or _wrap_agent(self.agent, self.rt)
        if layout is None:
            cov = _normalise_covariates(self.covariates)
            layout = ThetaLayout.with_covariates(agent, _covariate_names(cov)) if cov else ThetaLayout.plain(agent)
        if self._hbayesdm:  # hBayesDM's hierarchy on its raw scale (neurorl.fitting.hbayesdm)
            from .hbayesdm import hbayesdm_rows

            hb = hbayesdm_rows(agent, layout)
            return xr.Dataset({"mu_loc": (PARAM, np.zeros(len(hb))), "mu_scale": (PARAM, np.ones(len(hb))),
                               "sd_scale": (PARAM, np.array([h.sigma_scale for h in hb])),
                               "sd_dist": (PARAM, [f"half-{h.sigma_dist}" for h in hb]),
                               "transform": (PARAM, [h.transform for h in hb])},
                              coords={PARAM: list(layout.names)}, attrs={"priors": "hbayesdm"})
        spec = {p.name: p for p in agent.params}
        R = layout.n_rows
        loc, scale, sd = np.zeros(R), np.zeros(R), np.full(R, GROUP_SD_SCALE)
        for name, base, slopes in layout.terms:
            loc[base], scale[base] = spec[name].prior_loc, spec[name].prior_scale
            for r, _ in slopes:
                loc[r], scale[r] = 0.0, spec[name].prior_scale
        for k, v in (self.priors or {}).items():
            if k not in layout.names:
                raise ValueError(f"priors given for {k!r}, which is not a fitted row; rows: {list(layout.names)}")
            i = layout.names.index(k)
            if isinstance(v, Mapping):
                unknown = sorted(set(v) - {"mu", "sigma"})
                if unknown:
                    raise ValueError(f"priors[{k!r}] has unknown key(s) {unknown}; use 'mu' (loc, scale) and "
                                     "'sigma' (HalfNormal scale)")
                mu, sig = v.get("mu"), v.get("sigma")
            else:
                mu, sig = v, None
            if mu is not None:
                try:
                    loc[i], scale[i] = (float(a) for a in mu)
                except (TypeError, ValueError):
                    raise ValueError(f"priors[{k!r}]: the group-mean prior must be a pair (loc, scale) on the "
                                     f"unconstrained scale, got {mu!r}") from None
            if sig is not None:
                sd[i] = float(sig)
            if not (scale[i] > 0 and sd[i] > 0 and np.isfinite(loc[i])):
                raise ValueError(f"priors[{k!r}]: scales must be positive and the location finite, got loc="
                                 f"{loc[i]}, scale={scale[i]}, sigma={sd[i]}")
        return xr.Dataset({"mu_loc": (PARAM, loc), "mu_scale": (PARAM, scale), "sd_scale": (PARAM, sd)},
                          coords={PARAM: list(layout.names)})

    @property
    def _hbayesdm(self) -> bool:
        if isinstance(self.priors, str):
            if self.priors != "hbayesdm":
                raise ValueError(f"priors must be a dict of overrides or 'hbayesdm', got {self.priors!r}")
            return True
        return False

    def _setup(self, trials):
        self._check_options()
        agent = _wrap_agent(self.agent, self.rt)
        if hasattr(agent, "check_data"):
            agent.check_data(trials)
        cov = _normalise_covariates(self.covariates)
        layout = ThetaLayout.with_covariates(agent, _covariate_names(cov)) if cov else ThetaLayout.plain(agent)
        data = _Data(trials, cov, layout.covariates)
        clash = sorted(({p.name for p in agent.params} | {f"{p.name}_group" for p in agent.params})
                       & set(_RESERVED))
        if clash:
            raise ValueError(f"parameter name(s) {clash} clash with the model's own variables {_RESERVED}")
        return agent, layout, data

    def build_model(self, trials: xr.Dataset | None = None):
        """The PyMC model of ``trials`` (default: the fitted ones), for inspection or extension.

        Returns ``pymc.Model``. The observations are constants of its likelihood Op, except the trial mask, the
        PyTensor shared variable ``obs_valid`` (K-fold masks held-out subjects' trials with it).
        """
        if trials is None:
            self._check_fitted()
            return self.model_
        agent, layout, data = self._setup(trials)
        lam = self._centring(layout, self._estimates(data.trials, layout, as_rng(self.random_seed)), data.n)
        return self._build(agent, layout, data, _resolve_sampler(self.sampler), lam)[0]

    def _build(self, agent, layout, data, sampler, lam):
        import pymc as pm
        import pytensor

        from ..backend import get_pytensor_ops
        from ..backend.pytensor_op import LoglikOp

        ops = get_pytensor_ops()
        pri = self.prior_table(agent, layout)
        # observation arrays constant over trials and subjects are compiled in, except `valid`, which K-fold masks
        uniform = {k: v for k, v in data.uniform.items() if k != "valid"}
        shared = {"valid": pytensor.shared(np.ascontiguousarray(data.obs["valid"]), name="obs_valid")}
        spec = {p.name: p for p in agent.params}
        coords = {PARAM: list(layout.names), SUBJECT: list(data.subjects)}
        with pm.Model(coords=coords) as model:
            if self._hbayesdm:  # hBayesDM's raw scale, mapped onto ours (neurorl.fitting.hbayesdm)
                from .hbayesdm import group_block

                gm, gs, theta, theta_of, init = group_block(agent, layout, ops)
                gm_theta = theta_of(gm[:, None])[:, 0]
            else:
                gm = pm.Normal("group_mean", mu=pri["mu_loc"].values, sigma=pri["mu_scale"].values, dims=PARAM)
                gs = pm.HalfNormal("group_sd", sigma=pri["sd_scale"].values, dims=PARAM)
                theta = _subject_block(gm, gs, lam)
                gm_theta = gm
                init = {"group_mean": pri["mu_loc"].values.copy(),
                        "group_sd": INIT_SD_FRACTION * pri["sd_scale"].values}
            for name, base, _ in layout.terms:
                pm.Deterministic(name, spec[name].to_constrained(theta[base], ops), dims=SUBJECT)
                pm.Deterministic(f"{name}_group", spec[name].to_constrained(gm_theta[base], ops))
            # the compiled JAX likelihood (built once per machine) as one Op: value and exact gradient; under numpyro
            # and nutpie the Op becomes a pure JAX function traced into the model's JAX program
            # (neurorl.backend.traced)
            op = LoglikOp(agent, data.env, layout, uniform, data.obs, data.x, quiet=self.progress is False)
            loglik = op(theta, shared["valid"])[0]
            pm.Potential(LL_VAR, loglik.sum())
        self._init = init
        return model, shared

    def _nutpie_jitter(self) -> set:
        """nutpie takes one starting point for every chain and jitters the variables named here: the subject offsets
        (non-centred rows); centred rows, none -- nutpie's jitter of theta itself could start a chain where the data
        are impossible ([A9]), so its chains start at one jittered point and part through their own seeds."""
        return {self.model_["offset"]} if "offset" in self.model_.named_vars else set()

    def _start(self, rng: np.random.Generator, use_map: bool) -> dict:
        """One chain's starting point ([A9], [A10]): at the MAP start if ``use_map`` and there is one, else near
        the prior location; see :func:`neurorl.fitting.bayes_hierarchy.start_point`."""
        return bayes_hierarchy.start_point(rng, (len(self.layout_.names), self._data.n), self._init,
                                           self._map_start if use_map else None, self.centring_.values,
                                           self._hbayesdm)

    @property
    def _init_map(self) -> bool:
        """Whether chains start at the MAP estimates ([A10]): ``init="map"``, or ``"auto"`` unless hBayesDM's priors
        (whose raw scale is not MAP's)."""
        return self.init == "map" or (self.init == "auto" and not self._hbayesdm)

    def _estimates(self, trials, layout, rng) -> dict | None:
        """The MAP estimates the start ([A10]) or the automatic parametrization ([A2]) needs; None if neither."""
        if self._init_map or (self.parametrization == "auto" and not self._hbayesdm):
            return self._map_start_point(trials, layout, rng)
        return None

    def _map_start_point(self, trials, layout, rng) -> dict:
        """[A10]: MAP estimates of every subject, their Laplace sds, and the group mean and sd they imply; sets
        ``init_seconds_``. See :func:`neurorl.fitting.bayes_hierarchy.map_start_point`."""
        start, self.init_seconds_ = bayes_hierarchy.map_start_point(self.agent, self.rt, self.covariates, trials,
                                                                    layout, rng, self.prior_table(None, layout))
        return start

    def _centring(self, layout, est: dict | None, n_subjects: int) -> np.ndarray:
        """The centring weights [row, subject] ([A2]), by ``parametrization`` (``"auto"``: from the MAP estimates
        ``est``); see :func:`neurorl.fitting.bayes_hierarchy.centring`."""
        return bayes_hierarchy.centring(self.parametrization, self._hbayesdm, layout, est, n_subjects)

    def _inverse_mass(self) -> np.ndarray | None:
        """numpyro's initial diagonal inverse mass matrix from the MAP start ([A10]), None without one; see
        :func:`neurorl.fitting.bayes_hierarchy.inverse_mass`."""
        return bayes_hierarchy.inverse_mass(self._map_start, self.model_, self.centring_.values)

    # -- sampling ---------------------------------------------------------------------------
    def _sample(self, seed: int, valid: np.ndarray | None = None, draws=None, tune=None, progress=None):
        """Sample the built model (optionally with ``valid`` replaced: K-fold). Returns (idata, seconds)."""
        import pymc as pm

        draws = int(self.draws if draws is None else draws)
        tune = int(self.tune if tune is None else tune)
        chains = int(self.chains)
        cores = int(self.cores) if self.cores is not None else max(1, min(chains, os.cpu_count() or 1))
        progress = self.progress if progress is None else progress
        kw = dict(self.sampler_kwargs or {})
        if self.sampler_ == "nutpie":
            import nutpie

            if self._compiled is None:
                t0 = time.perf_counter()
                with warnings.catch_warnings(), _xla_cache(self.sampler_):
                    warnings.simplefilter("ignore", UserWarning)
                    # the model's log density as one JAX function (PyTensor's JAX backend; the likelihood Op is
                    # neurorl.backend.traced), its gradient JAX's; start: [A9] / [A10]
                    self._compiled = nutpie.compile_pymc_model(self.model_, backend="jax", gradient_backend="jax",
                                                               initial_points=self._start(
                                                                   np.random.default_rng(seed), self._init_map),
                                                               jitter_rvs=self._nutpie_jitter())
                self.compile_seconds_ = time.perf_counter() - t0
            compiled = self._compiled
            if valid is not None:
                compiled = compiled.with_data(obs_valid=valid)
            t0 = time.perf_counter()
            with _xla_cache(self.sampler_):  # JAX compiles the log density at the first call, in the sampler
                idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, cores=cores, seed=seed,
                                      progress_bar=progress, save_warmup=False, target_accept=self.target_accept,
                                      **kw)
            return idata, time.perf_counter() - t0
        sh = self._shared["valid"]
        old = sh.get_value()
        if valid is not None:
            sh.set_value(np.asarray(valid, dtype=old.dtype))
        try:
            t0 = time.perf_counter()
            extra = {}
            if self.sampler_ == "numpyro":
                import jax

                extra["nuts_sampler"] = "numpyro"
                nkw = dict(kw.pop("nuts_sampler_kwargs", {}))
                # our starting points are already jittered, only in the subjects ([A9]); PyMC's numpyro path would
                # jitter every variable by U(-1, 1) again (seen: a chain stuck with t0 above the fastest RTs)
                nkw.setdefault("jitter", False)
                if jax.local_device_count() < chains:
                    # one CPU device: chains in one vectorised program (a step's width is nearly free on a CPU)
                    # rather than numpyro's fallback of one chain after the other
                    nkw.setdefault("chain_method", "vectorized")
                extra["nuts_sampler_kwargs"] = nkw
            init_rng = np.random.default_rng(seed)
            # K-fold (valid given) masks subjects: their MAP start and scale would be those of their unseen data
            initvals = [self._start(init_rng, use_map=valid is None and self._init_map) for _ in range(chains)]
            if self.sampler_ == "numpyro" and valid is None and self._init_map:
                nkw["nuts_kwargs"] = {"inverse_mass_matrix": self._inverse_mass(), **nkw.get("nuts_kwargs", {})}
            kw.setdefault("init", "adapt_diag")  # jitter only the subjects, above ([A9])
            if self.sampler_ == "pymc" and cores > 1:
                # chains in new processes, not forks: the likelihood runs on JAX, which is multithreaded (a fork
                # can deadlock); each process loads the compiled likelihood from the on-disk cache
                kw.setdefault("mp_ctx", "spawn")
            kw.setdefault("initvals", initvals)
            with self.model_, warnings.catch_warnings(), _pytensor_mode(self.sampler_), _xla_cache(self.sampler_):
                warnings.filterwarnings("ignore", message=".*Potential.*")
                idata = pm.sample(draws=draws, tune=tune, chains=chains, cores=cores, random_seed=seed,
                                  target_accept=self.target_accept, progressbar=progress,
                                  compute_convergence_checks=False, return_inferencedata=True, **extra, **kw)
            seconds = float(idata.posterior.attrs.get("sampling_time", time.perf_counter() - t0))
        finally:
            sh.set_value(old)
        return idata, seconds

    def fit(self, trials: xr.Dataset) -> "HierarchicalBayes":
        """Build the model of ``trials``, sample it, add the pointwise log-likelihood and check convergence."""
        t_start = time.perf_counter()
        seed = self._prepare(trials)
        idata, self.sample_seconds_ = self._sample(seed)
        return self._finish(idata, t_start)

    def _prepare(self, trials: xr.Dataset) -> int:
        """Everything of :meth:`fit` before sampling (model built, generator seeded); returns the sampler's seed."""
        agent, layout, data = self._setup(trials)
        self.sampler_ = _resolve_sampler(self.sampler)
        self.agent_, self.layout_, self._data, self.trials_ = agent, layout, data, data.trials
        self.name_ = self.name or agent.name
        self._rng = as_rng(self.random_seed)
        self.init_seconds_ = 0.0
        self._map_start = self._estimates(data.trials, layout, self._rng)
        self.init_ = "map" if self._init_map else "prior"
        lam = self._centring(layout, self._map_start, data.n)
        self.centring_ = xr.DataArray(lam, coords={PARAM: list(layout.names), SUBJECT: list(data.subjects)},
                                      dims=(PARAM, SUBJECT), name="centring")
        st = self._map_start
        self.between_sd_ = None if st is None else xr.DataArray(
            bayes_hierarchy.between_sd(st["theta"], st["se_raw"]), coords={PARAM: list(layout.names)}, dims=PARAM,
            name="between_sd")
        self.parametrization_ = {n: "centred" if (w == 1.0).all() else "non-centred" if (w == 0.0).all()
                                 else "partial" for n, w in zip(layout.names, lam)}
        self.model_, self._shared = self._build(agent, layout, data, self.sampler_, lam)
        self._compiled = None
        self.compile_seconds_ = 0.0
        return int(self._rng.integers(2 ** 31 - 1))

    def _finish(self, idata, t_start: float, *, loglik_seconds: float | None = None) -> "HierarchicalBayes":
        """Everything of :meth:`fit` after sampling: log-likelihood (unless ``idata`` has it, computed in
        ``loglik_seconds``), diagnostics, summary, subject estimates."""
        import arviz as az

        layout, data = self.layout_, self._data
        for g in [g for g in idata.groups() if g.startswith("warmup")]:
            del idata[g]
        self.idata_ = idata
        self.loglik_seconds_ = 0.0
        if loglik_seconds is not None and "log_likelihood" in idata.groups():
            self.loglik_seconds_ = float(loglik_seconds)
        elif self.log_likelihood:
            self.add_log_likelihood()
        self.diagnostics_ = diagnose(self.idata_, label=f"{self.name_}")
        names = [n for n, _, _ in layout.terms]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            self.summary_ = az.summary(self.idata_, var_names=[f"{n}_group" for n in names]
                                       + ["group_mean", "group_sd"] + names, round_to="none")
        post = self.idata_.posterior
        self.params_ = xr.Dataset({n: (SUBJECT, post[n].mean(("chain", "draw")).values) for n in names},
                                  coords={SUBJECT: data.subjects}, attrs={"agent": self.agent_.name,
                                                                          "estimate": "posterior mean"})
        self.fit_seconds_ = time.perf_counter() - t_start
        return self

    def _check_fitted(self):
        if not hasattr(self, "idata_"):
            raise AttributeError("this HierarchicalBayes is not fitted yet; call fit(trials) first")

    # -- pointwise log-likelihood ----------------------------------------------------------------
    def _theta(self, idata=None) -> np.ndarray:
        """Posterior draws of ``theta`` as ``(S, R, n)`` (chains pooled, chain-major)."""
        post = (idata or self.idata_).posterior["theta"].transpose("chain", "draw", PARAM, SUBJECT)
        v = post.values
        return v.reshape((-1,) + v.shape[2:])

    def subject_loglik(self, theta: np.ndarray, subjects: np.ndarray | None = None) -> np.ndarray:
        """Log-likelihood per trial of subjects at unconstrained parameter draws.

        Evaluated with the NumPy backend of the agent's rule (the path of ``simulate``/``replay``; no
        compilation): the draws are stacked on the subject axis and all of them run through the trials in one
        vectorised loop (``agent.step`` then ``agent.trial_loglik``).

        Parameters
        ----------
        theta : ndarray, shape (S, R, m)
            Unconstrained rows (the layout's) for ``S`` draws of ``m`` subjects.
        subjects : ndarray of int, shape (m,), optional
            Positions (in the fitted trials) of the subjects; default all.

        Returns
        -------
        ndarray, shape (S, m, T)
            Per-trial log-likelihood (0 on invalid trials).
        """
        self._check_fitted()
        data, layout = self._data, self.layout_
        idx = np.arange(data.n) if subjects is None else np.asarray(subjects, dtype=np.int64)
        theta = np.asarray(theta, dtype=float)
        S, R, m = theta.shape
        if R != layout.n_rows or m != idx.size:
            raise ValueError(f"theta has shape {theta.shape}; expected (S, {layout.n_rows}, {idx.size})")
        per = max(1, _ROWS_PER_CHUNK // max(m, 1))  # draws per pass
        out = np.empty((S, m, data.T))
        for s in range(0, S, per):
            k = min(per, S - s)
            th = np.transpose(theta[s: s + k], (1, 0, 2)).reshape(R, k * m)  # rows draw-major
            pw = _numpy_pointwise(self.agent_, layout, data, th, np.tile(idx, k))  # (T, k m)
            out[s: s + k] = pw.reshape(data.T, k, m).transpose(1, 2, 0)
        return out

    def add_log_likelihood(self) -> "HierarchicalBayes":
        """Compute the pointwise log-likelihood and add it to ``idata_`` (done by ``fit`` unless
        ``log_likelihood=False``); returns ``self``. Sets ``loglik_seconds_``."""
        self._check_fitted()
        t0 = time.perf_counter()
        ds = self._log_likelihood_dataset()
        if "log_likelihood" in self.idata_.groups():
            del self.idata_["log_likelihood"]
        self.idata_.add_groups(log_likelihood=ds)
        self.loglik_seconds_ = time.perf_counter() - t0
        return self

    def _log_likelihood_dataset(self) -> xr.Dataset:
        data = self._data
        post = self.idata_.posterior
        C, D = int(post.sizes["chain"]), int(post.sizes["draw"])
        ll = self.subject_loglik(self._theta())  # (S, n, T)
        valid = data.valid
        flat = ll[:, valid]  # (S, N_obs) subject-major
        si, ti = np.nonzero(valid)
        return xr.Dataset(
            {LL_VAR: (("chain", "draw", OBS), flat.reshape(C, D, -1))},
            coords={"chain": post["chain"].values, "draw": post["draw"].values, OBS: np.arange(si.size),
                    SUBJECT: (OBS, data.subjects[si]), TRIAL: (OBS, data.trials[TRIAL].values[ti])},
            attrs={"description": "log-likelihood of every valid trial (choice, or choice and RT), subject-major"})

    # -- evidence ---------------------------------------------------------------------------------
    def loo(self, level: str = "trial", *, warn: bool = True):
        """PSIS-LOO at the trial level or leave-one-subject-out (``level="subject"``); see :func:`loo`."""
        self._check_fitted()
        return loo(self.idata_, level=level, warn=warn, label=self.name_)

    def kfold(self, k: int = 5, *, folds=None, n_inner: int | None = None, draws: int | None = None,
              tune: int | None = None, rng=None, progress: bool | None = None):
        """Exact K-fold cross-validation by subject ([A6]): refits with folds of subjects held out, each scored as a
        new member of the population; an ``arviz.ELPDData`` over ``subject`` (also ``kfold_``). See
        :func:`neurorl.fitting.bayes_evidence.kfold` for the parameters."""
        return bayes_evidence.kfold(self, k, folds=folds, n_inner=n_inner, draws=draws, tune=tune, rng=rng,
                                    progress=progress)

    def population_elpd(self, group_mean: np.ndarray, group_sd: np.ndarray, subjects, *, n_inner: int = 1,
                        rng=None) -> tuple[np.ndarray, np.ndarray]:
        """Log predictive density of subjects as new members of the population ([A6]) and its Monte Carlo standard
        error, per subject; see :func:`neurorl.fitting.bayes_evidence.population_elpd`."""
        return bayes_evidence.population_elpd(self, group_mean, group_sd, subjects, n_inner=n_inner, rng=rng)

    @staticmethod
    def _subject_ll(idata) -> np.ndarray:
        return _subject_sums(idata)[0]

    # -- posterior draws, latents, predictive checks --------------------------------------------
    def _draw_index(self, n_draws: int | None) -> np.ndarray:
        """Positions of ``n_draws`` evenly spaced pooled draws ([A7]); see :mod:`neurorl.fitting.bayes_posterior`."""
        return bayes_posterior._draw_index(self, n_draws)

    def posterior_draws(self, n_draws: int | None = None) -> xr.Dataset:
        """Posterior draws of every subject's constrained parameters, ``n_draws`` evenly spaced ones (default all),
        dims ``(draw, subject[, trial])``; see :func:`neurorl.fitting.bayes_posterior.posterior_draws`."""
        return bayes_posterior.posterior_draws(self, n_draws)

    def latents(self, n_draws: int = 100, *, level: float = 0.95) -> xr.Dataset:
        """Posterior latents: replay the data at ``n_draws`` posterior draws and summarise each latent per trial
        (mean, sd, median, central ``level`` interval; [A7]); see :func:`neurorl.fitting.bayes_posterior.latents`."""
        return bayes_posterior.latents(self, n_draws, level=level)

    def predictive_check(self, task, *, n_sims: int = 20, rng=None, **kwargs) -> xr.Dataset:
        """Posterior predictive check: :func:`neurorl.fitting.ppc.predictive_check` at ``n_sims`` posterior draws;
        see :func:`neurorl.fitting.bayes_posterior.predictive_check`."""
        return bayes_posterior.predictive_check(self, task, n_sims=n_sims, rng=rng, **kwargs)


# ============================================================================ one call
def fit_bayes(agent: Agent | str, trials: xr.Dataset, *, rt=None, covariates: dict | None = None,
              priors: dict | str | None = None, draws: int = 1000, tune: int = 1000, chains: int = 4,
              sampler: str = "auto", random_seed=None, progress: bool = True, **options) -> HierarchicalBayes:
    """Fit a hierarchical Bayesian model of ``agent`` to ``trials`` with NUTS; returns the fitted estimator.

    Parameters
    ----------
    agent : Agent or str
    trials : xarray.Dataset
        Trials of all subjects (ragged subjects padded with ``valid = False``).
    rt : LognormalRT, WienerRT, "lognormal", "wiener", optional
        Model reaction times too (``neurorl.fitting.joint.WithRT``).
    covariates : dict, optional
        ``{param: trials variable name | (subject, trial) DataArray | list of them}`` ([A8]).
    priors : dict or "hbayesdm", optional
        Group-prior overrides ([A1]), or ``"hbayesdm"``: hBayesDM's hierarchy for its models
        (:mod:`neurorl.fitting.hbayesdm`; docs/bayes.md).
    draws, tune, chains : int
        Defaults 1000, 1000, 4.
    sampler : {"auto", "nutpie", "pymc", "numpyro"}
    random_seed : int, Generator or None
    progress : bool
    **options
        Other :class:`HierarchicalBayes` options (``cores``, ``target_accept``, ``log_likelihood``, ``name``,
        ``sampler_kwargs``).

    Returns
    -------
    HierarchicalBayes
        ``idata_``, ``summary_``, ``diagnostics_``, ``params_``; methods ``loo``, ``kfold``, ``latents``,
        ``posterior_draws``, ``predictive_check``.
    """
    return HierarchicalBayes(agent, rt=rt, covariates=covariates, priors=priors, draws=draws, tune=tune,
                             chains=chains, sampler=sampler, random_seed=random_seed, progress=progress,
                             **options).fit(trials)
