"""Maximum-likelihood, MAP and hierarchical EM-MAP estimation of choice models.

Reference: ``reference/fitting.md`` §1 (one-step-ahead choice likelihood), §3
(transforms, N(0, 2.5^2) priors on the unconstrained scale), §4 (estimators:
multi-start MLE/MAP, hierarchical EM of Huys et al. 2011), §5 (Laplace
evidence, AIC/BIC, integrated BIC) and §7 (performance anchors).

Estimators follow scikit-learn: options in ``__init__``, ``fit(trials)``
returns ``self``, fitted attributes end in ``_``, results are xarray.

:class:`MLE`
    Maximum likelihood, multi-start.
:class:`MAP`
    Maximum a posteriori with Normal priors on the unconstrained parameters
    (the agent's ``Param.prior_loc`` / ``prior_scale`` by default); Laplace
    log evidence per subject.
:class:`EMMAP`
    Hierarchical EM-MAP (Huys et al. 2011; emfit): a Gaussian group prior on
    the unconstrained parameters estimated from the subjects' MAP estimates and
    Laplace posteriors; integrated BIC.

How a fit runs
--------------
All subjects (and all starts) are fitted together: the rows of one matrix
``theta`` ``(n_params, n_subjects * n_starts)`` are independent problems, and
one compiled PyTensor function (:func:`neurorl.fitting.graph.compiled_loglik`)
returns every row's log-likelihood, exact gradient and exact Hessian
(forward-mode derivatives through the trial scan; see that module for why).

Optimisers (``optimizer=``):

``"newton"``
    Trust-region Newton run on every row at once: each iteration solves each
    row's own ``D x D`` system (eigen-decomposition; negative curvature is
    flipped, steps are limited to a per-row trust radius by the secular
    equation), evaluates all trial points in one call and accepts or shrinks
    per row; rows stop independently ([A4]) and leave the batch.
``"quasi-newton"``
    The same with a damped-BFGS approximation of each row's Hessian and value +
    gradient evaluations only; the exact Hessian is computed once, at the
    estimates.
``"L-BFGS-B"``
    ``scipy.optimize.minimize`` on the flattened ``theta`` with the total
    objective and its gradient; rows whose own projected gradient is still
    above ``gtol`` are refitted alone (up to three rounds).
``"auto"`` (default)
    Newton up to three parameter rows, quasi-Newton above: the exact Hessian
    costs ``D (D + 1) / 2`` directional passes per evaluation.

Measured (``benchmarks/fit_mle.py``: 100 subjects x 200 trials,
Rescorla-Wagner + softmax on a 0.7/0.3 bandit, one start, 2-core Xeon, idle
machine). C backend: Newton 0.18 s (MLE) / 0.21 s (MAP) warm, 9 evaluations
(548 row-evaluations); quasi-Newton 17 evaluations, about the same time; the
joint L-BFGS-B 85-100 evaluations for 200 parameters (200+ for 2,000) and
1.2-1.3 s; 10 stacked starts 1.6-1.8 s. ``mode="NUMBA"``: 0.065 s / 0.083 s
(10 starts 0.7 s). The plain per-subject scipy loop with finite differences
takes 0.36-0.42 s on this machine (0.9-1.1 s on the reference machine of
fitting.md §7): the warm fit is 2x faster with C and about 5x with numba.
Every method reaches the best optimum (of 20 random starts) for every subject
with MAP; r(logit alpha) = 0.74, r(log beta) = 0.91 (fitting.md §6 anchor:
0.76 / 0.91). Unpenalised MLE has genuine second optima for 2/100 subjects
that one start misses (the plain loop misses 10). For the two-step hybrid
(``D = 7``, 100 x 200) Newton takes 7.3 s and quasi-Newton 3.9 s. The time is
in the per-trial scan (about 1 microsecond per subject-trial with the Hessian
in C, 0.4 with numba), not in the optimiser.

Compile time and backend
------------------------
``mode=None`` (the PyTensor default: C backend) is the default. Per process
and agent structure, the value + gradient + Hessian function takes about 4 s
to rewrite and compile with a warm PyTensor C cache (7.5 s for the first fit
of a process, which also loads that cache; 20-30 s the first time ever, when
the C kernels themselves are built). ``mode="NUMBA"`` evaluates 2-3x faster
(9.7 ms instead of 27 ms for 100 x 200 with the Hessian) and rewrites about
1 s faster, but numba's first call JIT-compiles every new graph for 40-60 s
(LLVM time, not reduced by ``NUMBA_OPT=0``) before its on-disk cache serves
later processes in 0.1-0.2 s. Every agent option, covariate layout and
derivative order is a new graph, so the C backend's predictable cost is the
default; pass ``mode="NUMBA"`` for large or repeated fits of one model.
Compiled functions are cached in the process by agent structure, task
structure, parameter layout, derivative order and the data's constant
observation arrays; data shapes are symbolic, so new data, subsets of
subjects and stacked starts reuse them.

Assumptions and choices
-----------------------
[A1] Parameters are estimated on the unconstrained scale (``Param`` transforms)
     inside the box ``[-bound, bound]`` (default 15: learning rates within
     3e-7 of 0 and 1, inverse temperatures up to 3.3e6). A subject whose
     estimate sits on the box has an MLE at the edge of the parameter space
     (for instance one repeated choice: the softmax MLE is beta -> inf); it is
     flagged ``at_bound`` and warned about; use :class:`MAP` for such data.
[A2] Starts: the first start is the parameters' defaults (:class:`MLE`) or the
     prior mean (:class:`MAP`, :class:`EMMAP`); the others are drawn from the
     agent's default prior ``N(prior_loc, prior_scale^2)`` (MLE, "the start
     distribution") or from the prior in use (MAP), clipped to 80 % of the box.
     Covariate slopes start at 0 and then from ``N(0, 1)``.
[A3] Best start per subject: the lowest negative log posterior among the
     converged starts (among all starts with a finite objective when none
     converged). A start that stopped unconverged at a lower objective is in a
     rugged region of the likelihood (e.g. DRA's precision recursion at large
     alpha_sigma), where neither standard errors nor the Laplace evidence are
     defined; ``result_["n_lower_unconverged"]`` counts such starts per
     subject and a warning names the subjects. A subject is flagged *not
     identifiable* when two converged starts reach objectives within
     ``tol_value`` (1e-3) of the best but parameters (unconstrained) more than
     ``tol_param`` (0.1) apart in some coordinate — a flat ridge or equally
     good separate optima (Wilson & Collins 2019, Box 3).
[A4] Convergence of a row: projected-gradient max-norm below ``gtol``
     (default 1e-4, in log-likelihood units per unconstrained unit); or (Newton)
     a Newton step that would gain less than ``1e-10 (1 + |f|)`` nats with a
     positive-definite Hessian -- the estimate is then within about 1e-4 of
     the optimum on the unconstrained scale; or no decrease found within a
     trust radius of 1e-10, a numerical local minimum at a kink of the
     likelihood (rules with ``max`` over values, e.g. TD targets, are not
     smooth where two values tie; the gradient there need not vanish).
[A5] Priors for covariate slopes: ``N(0, s^2)`` with ``s`` the prior scale of
     the parameter they modulate (2.5 by default).
[A6] Standard errors: ``sqrt(diag(H^-1))`` with ``H`` the exact Hessian of the
     negative log-likelihood (MLE) or log posterior (MAP) on the unconstrained
     scale; constrained-scale SEs by the delta method,
     ``|d param / d theta| * se``. NaN where ``H`` is not positive definite
     (flag ``hessian_pd``).
[A7] ``n_trials`` counts the subject's valid trials (the ``n`` of BIC);
     ``n_params`` counts the free parameters including covariate slopes.
     AIC/BIC use the log-likelihood at the estimate (for MAP: at the MAP).
[A8] Laplace log evidence (MAP, EM): ``log p(y|theta) + log p(theta) +
     (d/2) log 2 pi - 1/2 log |H|`` at the MAP, ``H`` the Hessian of the
     negative log posterior (§5); NaN where ``H`` is not positive definite.
[A9] EM-MAP (§4): E-step = MAP under the current group prior ``N(mu,
     diag(sigma^2))`` (multi-start on the first iteration, warm starts after);
     M-step ``mu_j = mean_i theta_ij``, ``sigma_j^2 = mean_i(theta_ij^2 +
     [H_i^-1]_jj) - mu_j^2`` (floored at ``min_var``); stops when the total log
     posterior ``sum_i log p(y_i|theta_i) + log p(theta_i|mu, sigma)`` changes
     by less than ``tol``. Initial group prior: the agent's default priors.
[A10] Integrated BIC (§5): ``K`` draws ``theta_k ~ N(mu, diag sigma^2)`` shared by
     all subjects; ``log p(y_i) = logmeanexp_k log p(y_i|theta_k)``;
     ``iBIC = -2 sum_i log p(y_i) + 2 d ln N_total`` (``N_total`` = all valid
     choices).
[A11] Trial-wise covariates (issue item 3): ``covariates={"alpha": "block"}``
     makes ``alpha_t = transform(theta_alpha + theta_alpha_block * x_t)``;
     ``x`` is a variable of the trials dataset or an ``xarray.DataArray`` with
     dims (subject, trial) whose labels must be exactly the trials' (aligned by
     label, never by position). NaN in ``x`` is an error on valid trials and
     is ignored on invalid ones. The reported constrained value of such a
     parameter is at ``x = 0``.
"""

from __future__ import annotations

import json
import math
import time
import warnings

import numpy as np
import xarray as xr

from ..agents.base import Agent
from ..schema import SUBJECT, TRIAL
from ..simulate import observations
from ..tasks.base import as_rng
from .graph import _OBS_DTYPES, ThetaLayout, compiled_loglik, uniform_observations
from .joint import with_rt

__all__ = ["MLE", "MAP", "EMMAP", "FitWarning"]

PARAM = "param"
PARAM2 = "param_"
#: ``optimizer="auto"`` uses exact-Hessian Newton up to this many rows of theta, quasi-Newton above
AUTO_NEWTON_MAX_PARAMS = 3
#: a parameter whose Fisher information row is below this fraction of the largest entry for every subject is
#: reported as not informed by the data
UNINFORMED_TOL = 1e-8
LOG2PI = math.log(2.0 * math.pi)


class FitWarning(UserWarning):
    """Warnings of the estimators (non-convergence, bounds, identifiability)."""


# ============================================================================ data
def _names(labels, idx, limit=8) -> str:
    idx = list(idx)
    shown = [labels[i].item() if isinstance(labels[i], np.generic) else labels[i] for i in idx[:limit]]
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return ", ".join(repr(s) for s in shown) + more


def _normalise_covariates(covariates) -> dict[str, tuple]:
    """``{param: str | DataArray | sequence}`` -> ``{param: tuple of sources}``."""
    if covariates is None:
        return {}
    if not isinstance(covariates, dict):
        raise TypeError("covariates must be a dict: parameter name -> covariate name, DataArray, or a list of them")
    out = {}
    for k, v in covariates.items():
        items = tuple(v) if isinstance(v, (list, tuple)) else (v,)
        for it in items:
            if not isinstance(it, (str, xr.DataArray)):
                raise TypeError(
                    f"covariate for {k!r} must be a trials variable name or an xarray.DataArray with dims "
                    f"('subject', 'trial'); got {type(it).__name__} (plain arrays are refused: they could only be "
                    "aligned by position)"
                )
            if isinstance(it, xr.DataArray) and not it.name:
                raise ValueError(f"the DataArray given as covariate of {k!r} needs a name (used to name its slope)")
        out[k] = items
    return out


def _covariate_names(cov: dict) -> dict[str, tuple[str, ...]]:
    return {k: tuple(it if isinstance(it, str) else str(it.name) for it in v) for k, v in cov.items()}


def _align(da: xr.DataArray, trials: xr.Dataset, name: str) -> np.ndarray:
    """A (subject, trial) DataArray reordered by label to the trials' grid; raises on any mismatch."""
    if set(da.dims) != {SUBJECT, TRIAL}:
        raise ValueError(f"covariate {name!r} must have dims ('subject', 'trial'), has {da.dims}")
    for dim in (SUBJECT, TRIAL):
        if dim not in da.coords:
            raise ValueError(f"covariate {name!r} has no {dim!r} coordinate; it must carry the trials' labels "
                             "(covariates are aligned by label, never by position)")
        want, have = trials[dim].values, da[dim].values
        if len(np.unique(have)) != have.size:
            raise ValueError(f"covariate {name!r} has duplicated {dim!r} labels")
        ws, hs = set(want.tolist()), set(have.tolist())
        if ws != hs:
            missing, extra = sorted(ws - hs, key=str)[:5], sorted(hs - ws, key=str)[:5]
            raise ValueError(f"covariate {name!r}: {dim!r} labels do not match the trials' (missing {missing}, "
                             f"extra {extra})")
    return da.sel({SUBJECT: trials[SUBJECT].values, TRIAL: trials[TRIAL].values}).transpose(SUBJECT, TRIAL).values


class _Data:
    """Time-major arrays of a trials dataset, with covariates, ready for the compiled likelihood."""

    def __init__(self, trials: xr.Dataset, cov: dict, col_names: tuple):
        env, obs = observations(trials)
        self.trials = trials
        self.env = env
        self.obs = obs
        self.subjects = trials[SUBJECT].values
        valid = trials["valid"].values.astype(bool)
        self.valid = valid
        # the trials whose choices enter the likelihood (the n of BIC): valid, and scored where the data say so
        self.scored = valid & (np.nan_to_num(np.asarray(trials["scored"].values, dtype=float)) == 1.0) \
            if "scored" in trials else valid
        self.n_trials = self.scored.sum(axis=1).astype(np.int64)
        self.n, self.T = valid.shape
        empty = np.flatnonzero(self.n_trials == 0)
        if empty.size:
            raise ValueError(f"subject(s) {_names(self.subjects, empty)} have no valid trials; drop them before "
                             "fitting (nothing to estimate from)")
        self.x = None
        if col_names:
            sources = {}
            for items in cov.values():
                for it in items:
                    nm = it if isinstance(it, str) else str(it.name)
                    if nm in sources and not (isinstance(it, str) and isinstance(sources[nm], str)) \
                            and sources[nm] is not it:
                        raise ValueError(f"two different covariates are named {nm!r}")
                    sources[nm] = it
            cols = []
            for nm in col_names:
                src = sources[nm]
                if isinstance(src, str):
                    if src not in trials:
                        raise ValueError(f"covariate {src!r} is not a variable of the trials dataset "
                                         f"(variables: {sorted(trials.data_vars)})")
                    arr = _align(trials[src], trials, src)
                else:
                    arr = _align(src, trials, nm)
                arr = np.asarray(arr, dtype=float)
                bad = valid & ~np.isfinite(arr)
                if bad.any():
                    i, t = np.argwhere(bad)[0]
                    raise ValueError(f"covariate {nm!r} is NaN or infinite on a valid trial (first at subject "
                                     f"{_names(self.subjects, [i])}, trial {int(t)})")
                cols.append(np.where(valid, arr, 0.0))
            self.x = np.ascontiguousarray(np.stack(cols, axis=-1).transpose(1, 0, 2))  # (T, n, C)
        self.uniform = uniform_observations(self.obs)
        # what the compiled functions read: the non-constant arrays, in their dtypes
        self.varying = {k: np.ascontiguousarray(v, dtype=_OBS_DTYPES.get(k)) for k, v in self.obs.items()
                        if k not in self.uniform}
        self._rows_key = None
        self._rows_cache = None

    def rows(self, idx: np.ndarray):
        """Observation arrays and covariates for the subjects ``idx`` (may repeat)."""
        idx = np.asarray(idx, dtype=np.int64)
        key = (idx.size, hash(idx.tobytes()))
        if key != self._rows_key:
            if idx.size == self.n and np.array_equal(idx, np.arange(self.n)):
                obs, x = self.varying, self.x
            else:
                obs = {k: np.ascontiguousarray(v[:, idx]) for k, v in self.varying.items()}
                x = None if self.x is None else np.ascontiguousarray(self.x[:, idx])
            self._rows_key, self._rows_cache = key, (obs, x)
        return self._rows_cache


# ============================================================================ objective
class _Objective:
    """Negative log posterior per row: ``-(loglik + logprior)`` with exact gradient and Hessian."""

    def __init__(self, agent: Agent, data: _Data, layout: ThetaLayout, mode, prior=None, chunk_rows=None,
                 quiet=None):
        self.agent, self.data, self.layout, self.mode, self.quiet = agent, data, layout, mode, quiet
        self.set_prior(prior)
        self.n_evals = 0
        self.chunk_rows = chunk_rows or max(64, int(4_000_000 // max(data.T, 1)))

    def set_prior(self, prior):
        """``prior``: None (flat, MLE) or ``(mu (D,), sd (D,))``."""
        if prior is None:
            self.mu = self.prec = None
        else:
            mu, sd = (np.asarray(a, dtype=float) for a in prior)
            self.mu, self.prec = mu, 1.0 / sd ** 2
            self.log_norm = float(np.sum(-np.log(sd) - 0.5 * LOG2PI))

    def fn(self, order):
        return compiled_loglik(self.agent, self.data.env, order=order, layout=self.layout, mode=self.mode,
                               uniform=self.data.uniform, quiet=self.quiet)

    def loglik(self, theta, rows, order):
        """Log-likelihood outputs for ``theta`` ``(D, m)`` and subject rows (chunked)."""
        f = self.fn(order)
        m = theta.shape[1]
        outs = []
        for s in range(0, m, self.chunk_rows):
            sl = slice(s, min(m, s + self.chunk_rows))
            obs, x = self.data.rows(rows[sl])
            outs.append(f(theta[:, sl], obs, x, check=False))  # the constants were read off these data
            self.n_evals += 1
        if len(outs) == 1:
            return outs[0]
        axis = {"loglik": 0, "grad": 1, "hess": 2, "pointwise": 1}
        return {k: np.concatenate([o[k] for o in outs], axis=axis[k]) for k in outs[0]}

    def logprior(self, theta):
        if self.mu is None:
            return np.zeros(theta.shape[1])
        z = theta - self.mu[:, None]
        return -0.5 * np.sum(self.prec[:, None] * z * z, axis=0) + self.log_norm

    def __call__(self, theta, rows, order=2):
        """``(f, g, H, pointwise)``: negative log posterior per row, gradient ``(D, m)``, Hessian
        ``(D, D, m)`` and per-trial log-likelihood ``(T, m)``."""
        out = self.loglik(theta, rows, order)
        f = -(out["loglik"] + self.logprior(theta))
        g = H = None
        if order >= 1:
            g = -out["grad"]
            if self.mu is not None:
                g = g + self.prec[:, None] * (theta - self.mu[:, None])
        if order >= 2:
            H = -out["hess"]
            if self.mu is not None:
                D = theta.shape[0]
                H = H + (np.eye(D) * self.prec)[:, :, None]
        return f, g, H, out["pointwise"]


# ============================================================================ optimisers
def _projected(theta, g, bound):
    lo = (theta <= -bound + 1e-9) & (g > 0)
    hi = (theta >= bound - 1e-9) & (g < 0)
    free = ~(lo | hi)
    return np.where(free, g, 0.0), free


def _tr_step(B, g, radius):
    """Trust-region step per row. ``B`` (m, D, D), ``g`` (m, D), ``radius`` (m,).

    Negative or tiny curvature is replaced by its absolute value (floored at
    1e-8 of the largest); the step is the Newton step of the modified matrix,
    or the Levenberg step ``-(B + mu I)^-1 g`` of length ``radius`` (Newton's
    method on the secular equation). Returns the step, the modified matrix and the Newton
    decrement ``g' B^-1 g / 2`` (inf where ``B`` was modified or the step cut).
    Rows whose ``B`` or ``g`` is not finite (a NaN second derivative at an
    otherwise finite point) take a steepest-descent step of length ``radius``
    on their finite gradient entries.
    """
    bad = ~(np.all(np.isfinite(B), axis=(1, 2)) & np.all(np.isfinite(g), axis=1))
    if bad.any():
        B = np.where(bad[:, None, None], np.eye(B.shape[1]), B)
        g = np.where(np.isfinite(g), g, 0.0)
    lam, V = np.linalg.eigh(B)
    big = np.maximum(np.abs(lam).max(axis=1, keepdims=True), 1e-300)
    pd = np.all(lam > 1e-8 * big, axis=1)
    lam = np.maximum(np.abs(lam), 1e-8 * big)
    gv = np.einsum("mij,mi->mj", V, g)

    def norm(mu):
        return np.sqrt(np.sum((gv / (lam + mu[:, None])) ** 2, axis=1))

    mu = np.zeros(g.shape[0])
    over = norm(mu) > radius
    if over.any():
        # Newton on phi(mu) = 1/|s(mu)| - 1/r, increasing and concave: from mu = 0 the iterates rise
        # monotonically to the root (More & Sorensen 1983); 30 steps is far more than it needs
        gv_o, lam_o, r_o = gv[over], lam[over], radius[over]
        mo = np.zeros(over.sum())
        for _ in range(30):
            d = lam_o + mo[:, None]
            sn = np.sqrt(np.sum((gv_o / d) ** 2, axis=1))
            dphi = np.sum(gv_o ** 2 / d ** 3, axis=1) / sn ** 3
            step_mu = (1.0 / r_o - 1.0 / sn) / np.maximum(dphi, 1e-300)
            mo = mo + np.maximum(step_mu, 0.0)
            if np.all(np.abs(sn - r_o) <= 1e-10 * r_o):
                break
        mu[over] = mo
    coef = -gv / (lam + mu[:, None])
    step = np.einsum("mij,mj->mi", V, coef)
    Bmod = np.einsum("mij,mj,mkj->mik", V, lam, V)
    # Newton decrement of an unmodified, untruncated step: the decrease still to gain
    decrement = np.where(pd & ~over & ~bad, 0.5 * np.sum(gv ** 2 / lam, axis=1), np.inf)
    return step, Bmod, decrement


def _trust_region_update(f, fn, ok, pred, step, radius):
    """Accept or reject each row's step and update its trust radius (standard ratio test).

    Returns ``(accept, new_radius, tiny)`` where ``tiny`` is the per-row decrease below which no progress is
    measurable at machine precision.
    """
    actual = f - np.where(ok, fn, np.inf)
    tiny = 1e-13 * (1.0 + np.abs(f))
    rho = np.where(pred > tiny, actual / np.maximum(pred, 1e-300), np.where(actual >= -tiny, 1.0, -1.0))
    snorm = np.linalg.norm(step, axis=1)
    radius = np.where(~ok | (rho < 0.25), 0.25 * np.maximum(snorm, 1e-12),
                      np.where((rho > 0.75) & (snorm > 0.99 * radius), np.minimum(2.0 * radius, 10.0), radius))
    return ok & (rho > 1e-4), radius, tiny


def _newton(obj: _Objective, theta, rows, *, bound, gtol, max_iter, progress=None, radius0=2.0, dtol=1e-10):
    """Vectorised trust-region Newton on every row of ``theta`` ``(D, m)``.

    A row stops when its projected gradient is below ``gtol`` or when its
    Newton step (positive-definite Hessian, inside the trust region) would
    lower the objective by less than ``dtol * (1 + |f|)`` -- then the point is
    within about ``sqrt(2 dtol |f| / curvature)`` of the optimum and the step
    is not worth another evaluation.
    """
    theta = np.clip(np.array(theta, dtype=float), -bound, bound)
    D, m = theta.shape
    f, g, H, pw = obj(theta, rows, 2)
    alive = np.isfinite(f) & np.all(np.isfinite(g), axis=0) & np.all(np.isfinite(H), axis=(0, 1))
    nan = np.isnan(f) | np.any(np.isnan(g), axis=0)
    f = np.where(alive, f, np.inf)
    radius = np.full(m, float(radius0))
    stalled = np.zeros(m, bool)
    collapsed = np.zeros(m, bool)  # no decrease within a trust radius of 1e-10: a numerical local minimum
    flat = np.zeros(m, bool)  # stopped on the Newton decrement
    n_iter = np.zeros(m, np.int64)
    for _ in range(max_iter):
        pg, free = _projected(theta, np.where(alive, g, 0.0), bound)
        act = alive & ~stalled & ~flat & (np.abs(pg).max(axis=0) > gtol)
        if progress is not None:  # work done: problems (subject x start) that have stopped
            progress.set_done(m - int(act.sum()))
        if not act.any():
            break
        a = np.flatnonzero(act)
        fr = free[:, a].T  # (ma, D)
        B = np.transpose(H[:, :, a], (2, 0, 1)).copy()
        mask = fr[:, :, None] & fr[:, None, :]
        B = np.where(mask, B, 0.0) + np.where(~fr, 1.0, 0.0)[:, :, None] * np.eye(D)[None]
        ga = pg[:, a].T
        step, Bmod, decrement = _tr_step(B, ga, radius[a])
        done = decrement <= dtol * (1.0 + np.abs(f[a]))
        if done.any():
            flat[a[done]] = True
            keep = ~done
            a, ga, step, Bmod = a[keep], ga[keep], step[keep], Bmod[keep]
            if a.size == 0:
                continue
        n_iter[a] += 1
        trial = np.clip(theta[:, a] + step.T, -bound, bound)
        s = (trial - theta[:, a]).T  # (ma, D)
        pred = -(np.sum(ga * s, axis=1) + 0.5 * np.einsum("mi,mij,mj->m", s, Bmod, s))
        fn, gn, Hn, pwn = obj(trial, rows[a], 2)
        ok = np.isfinite(fn) & np.all(np.isfinite(gn), axis=0) & np.all(np.isfinite(Hn), axis=(0, 1))
        nan[a] |= np.isnan(fn) | np.any(np.isnan(gn), axis=0)
        accept, radius[a], tiny = _trust_region_update(f[a], fn, ok, pred, s, radius[a])
        r = radius[a]
        # no further decrease is possible at machine precision: stop this row
        stalled[a] = (pred <= tiny) | (r < 1e-10)
        collapsed[a] = r < 1e-10
        acc = a[accept]
        theta[:, acc] = trial[:, accept]
        f[acc], g[:, acc], H[:, :, acc], pw[:, acc] = fn[accept], gn[:, accept], Hn[:, :, accept], pwn[:, accept]
    pg, _ = _projected(theta, np.where(alive, g, 0.0), bound)
    gnorm = np.where(alive, np.abs(pg).max(axis=0), np.inf)
    return {"theta": theta, "f": f, "g": g, "H": H, "pointwise": pw, "alive": alive, "gnorm": gnorm,
            "converged": alive & ((gnorm <= gtol) | flat | collapsed), "n_iter": n_iter, "nan": nan}


def _quasi_newton(obj: _Objective, theta, rows, *, bound, gtol, max_iter, progress=None, radius0=1.0):
    """Vectorised trust-region quasi-Newton (damped BFGS) on every row; value + gradient evaluations only.

    The same trust-region step as :func:`_newton` with a per-row ``D x D``
    approximation ``B`` of the Hessian: ``B0 = I`` rescaled by ``y'y / s'y``
    after the first step (Shanno-Phua), then Powell-damped BFGS updates from
    every evaluated step (accepted or not), which keep ``B`` positive
    definite. Used for agents with many parameters, whose exact Hessian costs
    ``D (D + 1) / 2`` directional passes per evaluation; the Hessian is then
    computed once, at the estimate.
    """
    theta = np.clip(np.array(theta, dtype=float), -bound, bound)
    D, m = theta.shape
    f, g, _, pw = obj(theta, rows, 1)
    alive = np.isfinite(f) & np.all(np.isfinite(g), axis=0)
    nan = np.isnan(f) | np.any(np.isnan(g), axis=0)
    f = np.where(alive, f, np.inf)
    g = np.where(alive, g, 0.0)
    B = np.broadcast_to(np.eye(D), (m, D, D)).copy()
    scaled = np.zeros(m, bool)
    radius = np.full(m, float(radius0))
    stalled = np.zeros(m, bool)
    collapsed = np.zeros(m, bool)
    n_iter = np.zeros(m, np.int64)
    for _ in range(max_iter):
        pg, free = _projected(theta, g, bound)
        act = alive & ~stalled & (np.abs(pg).max(axis=0) > gtol)
        if progress is not None:  # work done: problems (subject x start) that have stopped
            progress.set_done(m - int(act.sum()))
        if not act.any():
            break
        a = np.flatnonzero(act)
        n_iter[a] += 1
        fr = free[:, a].T
        mask = fr[:, :, None] & fr[:, None, :]
        Bf = np.where(mask, B[a], 0.0) + np.where(~fr, 1.0, 0.0)[:, :, None] * np.eye(D)[None]
        ga = pg[:, a].T
        step, Bmod, _ = _tr_step(Bf, ga, radius[a])
        trial = np.clip(theta[:, a] + step.T, -bound, bound)
        s = (trial - theta[:, a]).T
        pred = -(np.sum(ga * s, axis=1) + 0.5 * np.einsum("mi,mij,mj->m", s, Bmod, s))
        fn, gn, _, pwn = obj(trial, rows[a], 1)
        ok = np.isfinite(fn) & np.all(np.isfinite(gn), axis=0)
        nan[a] |= np.isnan(fn) | np.any(np.isnan(gn), axis=0)
        accept, radius[a], tiny = _trust_region_update(f[a], fn, ok, pred, s, radius[a])
        r = radius[a]
        stalled[a] = (pred <= tiny) | (r < 1e-10)
        collapsed[a] = r < 1e-10
        # damped BFGS update from the evaluated step
        snorm = np.linalg.norm(s, axis=1)
        y = np.where(ok[:, None], gn.T - g[:, a].T, 0.0)
        Ba = B[a]
        sy = np.sum(s * y, axis=1)
        first = ok & ~scaled[a] & (sy > 1e-12 * snorm * np.linalg.norm(y, axis=1))
        if first.any():
            Ba[first] = (np.sum(y[first] ** 2, axis=1) / sy[first])[:, None, None] * np.eye(D)[None]
            scaled[a[first]] = True
        Bs = np.einsum("mij,mj->mi", Ba, s)
        sBs = np.sum(s * Bs, axis=1)
        upd = ok & (sBs > 1e-300) & (snorm > 0)
        theta_d = np.where(sy < 0.2 * sBs, 0.8 * sBs / np.maximum(sBs - sy, 1e-300), 1.0)
        rr = theta_d[:, None] * y + (1.0 - theta_d)[:, None] * Bs
        sr = np.sum(s * rr, axis=1)
        upd &= sr > 1e-300
        if upd.any():
            Ba[upd] = (Ba[upd] - np.einsum("mi,mj->mij", Bs[upd], Bs[upd]) / sBs[upd, None, None]
                       + np.einsum("mi,mj->mij", rr[upd], rr[upd]) / sr[upd, None, None])
        B[a] = Ba
        acc = a[accept]
        theta[:, acc] = trial[:, accept]
        f[acc], g[:, acc], pw[:, acc] = fn[accept], gn[:, accept], pwn[:, accept]
    pg, _ = _projected(theta, g, bound)
    gnorm = np.where(alive, np.abs(pg).max(axis=0), np.inf)
    return {"theta": theta, "f": f, "g": g, "H": None, "pointwise": pw, "alive": alive, "gnorm": gnorm,
            "converged": alive & ((gnorm <= gtol) | collapsed), "n_iter": n_iter, "nan": nan}


def _lbfgsb(obj: _Objective, theta, rows, *, bound, gtol, max_iter, progress=None):
    """Joint scipy L-BFGS-B on the flattened ``theta``; unconverged rows are refitted alone (3 rounds)."""
    from scipy.optimize import minimize

    theta = np.clip(np.array(theta, dtype=float), -bound, bound)
    D, m = theta.shape
    f0 = obj(theta, rows, 1)[0]
    alive = np.isfinite(f0)
    nan = np.isnan(f0)
    todo = np.flatnonzero(alive)
    for _round in range(3):
        if todo.size == 0:
            break
        r_sub = rows[todo]

        def fun(v, r_sub=r_sub, k=todo.size):
            f, g, _, _ = obj(v.reshape(D, k), r_sub, 1)
            bad = ~np.isfinite(f)
            nan[todo] |= np.isnan(f)
            if bad.any():
                return np.inf, np.zeros(v.size)
            return float(f.sum()), g.ravel()

        res = minimize(fun, theta[:, todo].ravel(), jac=True, method="L-BFGS-B",
                       bounds=[(-bound, bound)] * (D * todo.size),
                       options={"maxiter": max_iter * 10, "ftol": 1e-15, "gtol": gtol, "maxcor": 20})
        theta[:, todo] = res.x.reshape(D, todo.size)
        g = obj(theta[:, todo], r_sub, 1)[1]
        pg, _ = _projected(theta[:, todo], g, bound)
        todo = todo[np.abs(pg).max(axis=0) > gtol]
        if progress is not None:
            progress.set_done(m - todo.size)
        if todo.size == m:  # nothing gained by refitting everything alone
            break
    f, g, _, pw = obj(theta, rows, 1)
    alive &= np.isfinite(f)
    pg, _ = _projected(theta, np.where(alive, g, 0.0), bound)
    gnorm = np.where(alive, np.abs(pg).max(axis=0), np.inf)
    nan |= np.isnan(f)
    return {"theta": theta, "f": np.where(alive, f, np.inf), "g": g, "H": None, "pointwise": pw, "alive": alive,
            "gnorm": gnorm, "nan": nan,
            "converged": alive & (gnorm <= gtol), "n_iter": np.zeros(m, np.int64)}


# ============================================================================ estimators
def _progress_bar(enabled, desc, total, unit="fits"):
    from ..progress import progress_bar

    return progress_bar(enabled, desc, total, unit=unit)


class MLE:
    """Maximum-likelihood estimation of an agent's parameters from choices, all subjects at once.

    Parameters
    ----------
    agent : Agent or str
        The model (an instance, or a registered name with default options).
    rt : {None, "lognormal", "wiener"} or RT model, optional
        Also model reaction times: the agent is wrapped as
        :class:`neurorl.fitting.joint.WithRT` (``"wiener"``: RL-DDM, drift =
        ``v_scale`` x value difference; ``"lognormal"``: log RT linear in policy
        entropy and cost). Pass ``WienerRT(fixed={"w": 0.5})`` etc. for options.
    n_starts : int, default 10
        Starting points per subject (the first at the parameter defaults, the
        others drawn from the agent's default prior ``N(prior_loc,
        prior_scale^2)`` on the unconstrained scale; [A2]).
    covariates : dict, optional
        Trial-wise covariates of parameters, e.g. ``{"alpha": "block"}`` ([A11]).
    optimizer : {"auto", "newton", "quasi-newton", "L-BFGS-B"}, default "auto"
        Vectorised trust-region Newton with exact Hessians, the same with
        BFGS Hessians, or scipy's L-BFGS-B on the flattened parameter vector;
        "auto": Newton up to three parameters (module docstring).
    bound : float, default 15
        Box on the unconstrained scale ([A1]).
    gtol : float, default 1e-4
        Convergence: projected-gradient max-norm per subject ([A4]).
    max_iter : int, default 100
        Iterations of the optimiser.
    tol_value, tol_param : float, default 1e-3 and 0.1
        Identifiability check across starts ([A3]).
    mode : str or pytensor Mode, optional
        PyTensor compilation mode (default: C backend; ``"NUMBA"``, see module docstring).
    rng : int, numpy.random.Generator or None
        Seed for the starts.
    progress : bool, optional
        Show a progress bar (default: only for more than 10^7 subject-trials x starts).

    Attributes
    ----------
    result_ : xarray.Dataset
        Per subject: ``theta`` and ``se_theta`` (subject, param: unconstrained),
        ``estimate`` and ``se`` (constrained; covariate slopes stay on the
        unconstrained scale), ``loglik``, ``n_trials``, ``aic``, ``bic``,
        ``converged``, ``at_bound``, ``identifiable``, ``hessian_pd``,
        ``grad_norm``, ``n_starts_at_best``, ``n_lower_unconverged`` ([A3]), ``cov_theta`` (subject, param,
        param_); scalar ``n_params``.
    params_ : xarray.Dataset
        The constrained parameter estimates, one variable per agent parameter
        (what :func:`neurorl.replay` accepts).
    evidence_ : xarray.Dataset
        ``loglik`` (subject), ``n_params``, ``n_trials`` (subject) — the input of
        :func:`neurorl.fitting.compare.compare_table` (plus
        ``laplace_log_evidence`` for MAP).
    starts_ : xarray.Dataset
        Every start's end point (``theta`` (start, subject, param), ``objective``, ``converged``).
    fit_seconds_ : float
        Wall time of the last ``fit`` (compilation included).
    """

    _estimator = "MLE"

    def __init__(self, agent: Agent | str, *, rt=None, n_starts: int = 10, covariates: dict | None = None,
                 optimizer: str = "auto", bound: float = 15.0, gtol: float = 1e-4, max_iter: int = 100,
                 tol_value: float = 1e-3, tol_param: float = 0.1, mode=None, rng=None,
                 progress: bool | None = None):
        self.agent = agent
        self.rt = rt
        self.n_starts = n_starts
        self.covariates = covariates
        self.optimizer = optimizer
        self.bound = bound
        self.gtol = gtol
        self.max_iter = max_iter
        self.tol_value = tol_value
        self.tol_param = tol_param
        self.mode = mode
        self.rng = rng
        self.progress = progress

    # -- scikit-learn estimator protocol ---------------------------------------------------
    @classmethod
    def _get_param_names(cls) -> list[str]:
        import inspect

        names: list[str] = []
        for klass in cls.__mro__:
            if klass is object or "__init__" not in vars(klass):
                continue
            for p in inspect.signature(klass.__init__).parameters.values():
                if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and p.name not in names:
                    names.append(p.name)
        return names

    def get_params(self, deep: bool = True) -> dict:
        """The constructor options (scikit-learn protocol)."""
        return {k: getattr(self, k) for k in self._get_param_names()}

    def set_params(self, **params) -> "MLE":
        """Set constructor options (scikit-learn protocol); returns ``self``."""
        valid = self._get_param_names()
        for k, v in params.items():
            if k not in valid:
                raise ValueError(f"{type(self).__name__} has no option {k!r}; options: {valid}")
            setattr(self, k, v)
        return self

    # -- set-up ------------------------------------------------------------------------
    def _check_options(self):
        if int(self.n_starts) < 1:
            raise ValueError(f"n_starts must be at least 1, got {self.n_starts}")
        if self.optimizer not in ("auto", "newton", "quasi-newton", "L-BFGS-B"):
            raise ValueError(f"optimizer must be 'auto', 'newton', 'quasi-newton' or 'L-BFGS-B', got "
                             f"{self.optimizer!r}")
        if not self.bound > 0:
            raise ValueError(f"bound must be positive, got {self.bound}")

    def _choice_only_agent(self, agent):
        """``agent`` with its choice-irrelevant free parameters (``Agent.choice_irrelevant``) fixed at their
        defaults: choices carry no information about them. Sets ``fixed_by_default_``."""
        spec = {p.name: p for p in agent.params}
        hold = {k: float(spec[k].default) for k in getattr(agent, "choice_irrelevant", ()) if k in spec}
        self.fixed_by_default_ = hold
        if not hold:
            return agent
        return type(agent)(fixed={**agent.fixed, **hold}, **agent.options)

    def _setup(self, trials):
        self._check_options()
        agent = with_rt(self.agent, self.rt)
        if self.rt is None and not hasattr(agent, "rt_model"):
            agent = self._choice_only_agent(agent)
        else:
            self.fixed_by_default_ = {}
        agent.check_data(trials)
        self.agent_ = agent
        cov = _normalise_covariates(self.covariates)
        layout = ThetaLayout.with_covariates(agent, _covariate_names(cov)) if cov else ThetaLayout.plain(agent)
        data = _Data(trials, cov, layout.covariates)
        self.layout_ = layout
        return agent, layout, data

    def _default_prior(self, agent: Agent, layout: ThetaLayout):
        spec = {p.name: p for p in agent.params}
        mu = np.zeros(layout.n_rows)
        sd = np.zeros(layout.n_rows)
        for name, base, slopes in layout.terms:
            mu[base], sd[base] = spec[name].prior_loc, spec[name].prior_scale
            for r, _ in slopes:
                mu[r], sd[r] = 0.0, spec[name].prior_scale
        return mu, sd

    def _start_point(self, agent, layout):
        spec = {p.name: p for p in agent.params}
        x0 = np.zeros(layout.n_rows)
        for name, base, _ in layout.terms:
            x0[base] = float(spec[name].to_unconstrained(spec[name].default))
        return x0

    def _starts(self, agent, layout, n, rng, prior):
        """``(S, D, n)`` starting points ([A2])."""
        S = int(self.n_starts)
        mu, sd = prior if prior is not None else self._default_prior(agent, layout)
        first = self._start_point(agent, layout) if prior is None else mu
        out = np.empty((S, layout.n_rows, n))
        out[0] = first[:, None]
        if S > 1:
            slope_rows = [r for _, _, sl in layout.terms for r, _ in sl]
            sd_draw = sd.copy()
            mu_draw = mu.copy()
            if prior is None:
                sd_draw[slope_rows] = 1.0
            out[1:] = mu_draw[None, :, None] + sd_draw[None, :, None] * rng.standard_normal((S - 1, layout.n_rows, n))
        lim = 0.8 * self.bound
        return np.clip(out, -lim, lim)

    def _prior(self, agent, layout):
        return None

    # -- fitting --------------------------------------------------------------------
    def _resolved_optimizer(self, obj) -> str:
        if self.optimizer != "auto":
            return self.optimizer
        return "newton" if obj.layout.n_rows <= AUTO_NEWTON_MAX_PARAMS else "quasi-newton"

    def _with_hessian(self, obj, best, rows=None):
        """Fill in the exact Hessian (and refresh value and gradient) at the estimates when the optimiser had none."""
        if best.get("H") is not None:
            return best
        rows = np.arange(best["theta"].shape[1]) if rows is None else rows
        f, g, H, pw = obj(best["theta"], rows, 2)
        return {**best, "f": f, "g": g, "H": H, "pointwise": pw}

    def _optimise(self, obj, theta0, rows, desc, quiet=False):
        show = self.progress if self.progress is not None else rows.size * obj.data.T > 10_000_000
        show = bool(show) and not quiet
        bar = _progress_bar(show, desc, int(rows.size))  # one unit per (subject, start) problem
        run = {"newton": _newton, "quasi-newton": _quasi_newton, "L-BFGS-B": _lbfgsb}[self._resolved_optimizer(obj)]
        try:
            out = run(obj, theta0, rows, bound=self.bound, gtol=self.gtol, max_iter=self.max_iter, progress=bar)
            if bar is not None:
                bar.set_done(int(rows.size))  # the ones stopped by max_iter are done too
            return out
        finally:
            if bar is not None:
                bar.close()

    def _multistart(self, obj, agent, layout, data, rng, prior, theta_init=None):
        n = data.n
        starts = self._starts(agent, layout, n, rng, prior)
        if theta_init is not None:
            starts[0] = theta_init
        S, D = starts.shape[0], layout.n_rows
        theta0 = np.transpose(starts, (1, 0, 2)).reshape(D, S * n)
        rows = np.tile(np.arange(n), S)
        out = self._optimise(obj, theta0, rows, f"{self._estimator} {agent.name}")
        f = out["f"].reshape(S, n)
        conv_all = out["converged"].reshape(S, n)
        # [A3] the best converged start; a start that stopped unconverged with a lower objective sits where the
        # likelihood is rugged (no stationary point for standard errors or the Laplace evidence): counted, not used
        f_conv = np.where(conv_all, f, np.inf)
        any_conv = np.isfinite(f_conv).any(axis=0)
        best = np.where(any_conv, np.argmin(f_conv, axis=0), np.argmin(f, axis=0))
        self.n_lower_unconverged_ = (~conv_all & (f < f[best, np.arange(n)][None] - self.tol_value)).sum(axis=0)
        cols = best * n + np.arange(n)
        dead = ~np.isfinite(f[best, np.arange(n)])
        if dead.any():
            raise ValueError(
                f"the log-likelihood is not finite (NaN or -inf) at every start for subject(s) "
                f"{_names(data.subjects, np.flatnonzero(dead))}: the agent gives probability 0 (or NaN) to an "
                "observed choice. Check the choices and availability of those subjects, or use an agent with a lapse"
            )
        th = out["theta"].reshape(D, S, n)
        conv = out["converged"].reshape(S, n)
        near = conv & (f - f[best, np.arange(n)][None] <= self.tol_value)
        dist = np.abs(th - out["theta"][:, cols][:, None, :]).max(axis=0)  # (S, n)
        identifiable = ~np.any(near & (dist > self.tol_param), axis=0)
        self.starts_ = xr.Dataset(
            {"theta": (("start", SUBJECT, PARAM), np.transpose(th, (1, 2, 0))),
             "objective": (("start", SUBJECT), f),
             "converged": (("start", SUBJECT), conv)},
            coords={"start": np.arange(S), SUBJECT: data.subjects, PARAM: list(layout.names)},
        )
        res = {
            "theta": out["theta"][:, cols], "f": f[best, np.arange(n)], "g": out["g"][:, cols],
            "H": None if out["H"] is None else out["H"][:, :, cols], "pointwise": out["pointwise"][:, cols],
            "gnorm": out["gnorm"][cols],
            "converged": out["converged"][cols], "nan": out["nan"].reshape(S, n).any(axis=0),
            "identifiable": identifiable, "n_at_best": (f - f[best, np.arange(n)][None] <= self.tol_value).sum(0),
            "n_lower": self.n_lower_unconverged_,
        }
        return self._with_hessian(obj, res)

    def fit(self, trials: xr.Dataset) -> "MLE":
        """Fit every subject of ``trials`` (a trials dataset, see :mod:`neurorl.schema`); returns ``self``."""
        t0 = time.perf_counter()
        agent, layout, data = self._setup(trials)
        prior = self._prior(agent, layout)
        obj = _Objective(agent, data, layout, self.mode, prior, quiet=self.progress is False)
        best = self._multistart(obj, agent, layout, data, as_rng(self.rng), prior)
        self._finish(obj, agent, layout, data, best, prior)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    # -- results --------------------------------------------------------------------
    def _finish(self, obj, agent, layout, data, best, prior, extra=None):
        theta, H = best["theta"], best["H"]
        D, n = theta.shape
        pointwise = best["pointwise"]  # (T, n) at the estimate
        loglik = pointwise.sum(axis=0)
        self.pointwise_loglik_ = xr.DataArray(
            np.where(data.scored, pointwise.T, np.nan), dims=(SUBJECT, TRIAL),
            coords={SUBJECT: data.subjects, TRIAL: data.trials[TRIAL].values}, name="loglik")
        Hs = np.transpose(H, (2, 0, 1))
        sym = 0.5 * (Hs + np.transpose(Hs, (0, 2, 1)))
        finite = np.all(np.isfinite(sym), axis=(1, 2))
        eig, vec = np.linalg.eigh(np.where(finite[:, None, None], sym, 0.0))
        # positive definite up to rounding: condition number below 1e12
        pd = finite & (eig.min(axis=1) > 1e-12 * np.abs(eig).max(axis=1)) & (eig.min(axis=1) > 0)
        cov = np.full((n, D, D), np.nan)
        if pd.any():
            cov[pd] = np.einsum("nij,nj,nkj->nik", vec[pd], 1.0 / eig[pd], vec[pd])
        se_theta = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))  # (n, D)
        at_bound = np.any(np.abs(theta) >= self.bound - 1e-6, axis=0)
        uninformed = self._uninformed(H, obj, layout)
        spec = {p.name: p for p in agent.params}
        estimate = theta.T.copy()
        se = se_theta.copy()
        for name, base, _ in layout.terms:
            p = spec[name]
            estimate[:, base] = p.to_constrained(theta[base])
            se[:, base] = np.exp(p.log_jacobian(theta[base])) * se_theta[:, base]
        k = D - int(uninformed.sum())  # parameters the data cannot inform do not count in AIC/BIC
        nt = data.n_trials
        dims = (SUBJECT, PARAM)
        coords = {SUBJECT: data.subjects, PARAM: list(layout.names), PARAM2: list(layout.names)}
        res = {
            "theta": (dims, theta.T), "se_theta": (dims, se_theta), "estimate": (dims, estimate), "se": (dims, se),
            "cov_theta": ((SUBJECT, PARAM, PARAM2), cov),
            "loglik": (SUBJECT, loglik), "n_trials": (SUBJECT, nt), "n_params": ((), k),
            "aic": (SUBJECT, -2 * loglik + 2 * k), "bic": (SUBJECT, -2 * loglik + k * np.log(nt)),
            "converged": (SUBJECT, best["converged"]), "at_bound": (SUBJECT, at_bound),
            "identifiable": (SUBJECT, best["identifiable"] & ~uninformed.any()), "hessian_pd": (SUBJECT, pd),
            "informed": (PARAM, ~uninformed),
            "grad_norm": (SUBJECT, best["gnorm"]), "n_starts_at_best": (SUBJECT, best["n_at_best"]),
            "n_lower_unconverged": (SUBJECT, np.asarray(best.get("n_lower", np.zeros(n, np.int64)))),
        }
        if prior is not None:
            lp = obj.logprior(theta)
            logdet = np.full(n, np.nan)
            if pd.any():
                logdet[pd] = np.sum(np.log(eig[pd]), axis=1)
            res["logprior"] = (SUBJECT, lp)
            res["laplace_log_evidence"] = (SUBJECT, loglik + lp + 0.5 * D * LOG2PI - 0.5 * logdet)
            res["prior_loc"] = (PARAM, prior[0])
            res["prior_scale"] = (PARAM, prior[1])
        res.update(extra or {})
        attrs = {"estimator": self._estimator, "agent": agent.name, "agent_options": repr(agent),
                 "optimizer": self.optimizer, "n_starts": int(self.n_starts), "bound": float(self.bound),
                 "covariates": repr(dict(_covariate_names(_normalise_covariates(self.covariates)))),
                 "n_params_free": int(D), "fixed_by_default": json.dumps(getattr(self, "fixed_by_default_", {}))}
        self.result_ = xr.Dataset(res, coords=coords, attrs=attrs)
        self.params_ = xr.Dataset(
            {name: (SUBJECT, estimate[:, base]) for name, base, _ in layout.terms},
            coords={SUBJECT: data.subjects}, attrs={"agent": agent.name})
        ev = {"loglik": (SUBJECT, loglik), "n_params": ((), k), "n_trials": (SUBJECT, nt)}
        if "laplace_log_evidence" in res:
            ev["laplace_log_evidence"] = res["laplace_log_evidence"]
        self.evidence_ = xr.Dataset(ev, coords={SUBJECT: data.subjects}, attrs={"agent": agent.name,
                                                                                 "estimator": self._estimator})
        self.loglik_ = self.result_["loglik"]
        self.converged_ = self.result_["converged"]
        self.trials_ = data.trials
        self._data = data
        self._warn(data, best, at_bound, pd | uninformed.any())  # a singular Hessian is explained below
        if uninformed.any():
            names = [layout.names[j] for j in np.flatnonzero(uninformed)]
            warnings.warn(
                f"{self._estimator} {agent.name}: the data carry no information about parameter(s) {names} (Fisher "
                f"information below {UNINFORMED_TOL:g} of the largest at the optimum of every subject): their "
                "estimates are the prior's or the starting values, they are not counted in n_params (AIC/BIC), and "
                "without a prior the Hessian is singular (standard errors NaN). "
                "Fix them (fixed={...}; CLI fix.PARAM=VALUE)", FitWarning, stacklevel=3)

    @staticmethod
    def _uninformed(H, obj, layout):
        """``(D,)`` bool: rows of the observed Fisher information (Hessian of the negative log-likelihood at the
        estimates, the prior's precision removed) that are (near) zero for every subject."""
        if H is None:
            return np.zeros(layout.n_rows, bool)
        if obj.prec is not None:
            H = H - (np.eye(H.shape[0]) * obj.prec)[:, :, None]
        info = np.abs(np.nan_to_num(H, nan=np.inf))  # (D, D, n); NaN counts as information (unknown)
        scale = np.maximum(info.max(axis=(0, 1)), 1.0)  # (n,)
        row = info.max(axis=1) / scale[None, :]  # (D, n)
        return np.all(row <= UNINFORMED_TOL, axis=1)

    def _warn(self, data, best, at_bound, pd):
        subj = data.subjects
        who = f"{self._estimator} {self.agent_.name}"  # every warning names the estimator and the model
        use_map = "Use MAP (a prior) for such subjects" if self._estimator == "MLE" else \
            "Give the prior more weight (prior=...), fix the parameter (fixed={...}; CLI fix.PARAM=VALUE)"
        ch = data.trials["choice"].values
        single = [i for i in range(data.n) if np.unique(ch[i][data.valid[i]]).size == 1]
        if single:
            warnings.warn(
                f"{who}: subject(s) {_names(subj, single)} made one and the same choice on every valid "
                "trial; the maximum-likelihood estimate lies at the edge of the parameter space (e.g. inverse "
                "temperature -> infinity), so the reported values are arbitrary along that direction (they stop "
                "at the box bound or where the likelihood becomes flat). " + use_map + ", or exclude them",
                FitWarning, stacklevel=4)
        nan = np.flatnonzero(best["nan"])
        if nan.size:
            warnings.warn(
                f"{who}: the log-likelihood (or its gradient) was NaN at some parameter values for "
                f"subject(s) {_names(subj, nan)}; those points were rejected (starts dropped, steps shortened). "
                "Check these subjects' data (e.g. extreme rewards) and the agent's numerical range; the estimates "
                "may be unreliable", FitWarning, stacklevel=4)
        nc = np.flatnonzero(~best["converged"])
        if nc.size:
            warnings.warn(
                f"{who}: {nc.size} subject(s) did not converge (projected gradient > gtol="
                f"{self.gtol}): {_names(subj, nc)}. Increase max_iter or n_starts (CLI --max-iter, --starts), "
                "or check those subjects' data" + ("; or use MAP" if self._estimator == "MLE" else ""),
                FitWarning, stacklevel=4)
        others = np.flatnonzero(at_bound & ~np.isin(np.arange(data.n), single))
        if others.size:
            warnings.warn(
                f"{who}: the estimate of subject(s) {_names(subj, others)} lies on the box bound "
                f"(|theta| = {self.bound} on the unconstrained scale): the likelihood keeps increasing toward the "
                "edge of the parameter space. " + ("Use MAP with a prior, or a simpler model"
                                                   if self._estimator == "MLE"
                                                   else "Use a narrower prior or a simpler model"),
                FitWarning, stacklevel=4)
        rugged = np.flatnonzero(np.asarray(best.get("n_lower", np.zeros(data.n, np.int64))) > 0)
        if rugged.size:
            warnings.warn(
                f"{who}: for subject(s) {_names(subj, rugged)} some start(s) stopped unconverged at a lower objective "
                "than the best converged start: the likelihood is rugged there (no stationary point, so no standard "
                "errors or Laplace evidence); the estimate is the best converged start "
                "(result_['n_lower_unconverged'] counts those starts). A narrower prior keeps the fit away from "
                "such regions", FitWarning, stacklevel=4)
        ni = np.flatnonzero(~best["identifiable"])
        if ni.size:
            warnings.warn(
                f"{who}: subject(s) {_names(subj, ni)} reached equally good optima (objective within "
                f"{self.tol_value}) at parameters more than {self.tol_param} apart from different starts: the "
                "parameters are not identifiable from their data. Inspect starts_, "
                + ("use MAP/EMMAP, " if self._estimator == "MLE" else "") + "or simplify the model",
                FitWarning, stacklevel=4)
        npd = np.flatnonzero(~pd & best["converged"] & ~at_bound)
        if npd.size:
            warnings.warn(
                f"{who}: the Hessian is not positive definite at the optimum of subject(s) "
                f"{_names(subj, npd)}; their standard errors (and Laplace evidence) are NaN", FitWarning,
                stacklevel=4)

    # -- after fitting ------------------------------------------------------------------
    def _check_fitted(self):
        if not hasattr(self, "result_"):
            raise AttributeError(f"this {type(self).__name__} is not fitted yet; call fit(trials) first")

    def to_dataframe(self):
        """Per-subject estimates as a tidy :class:`pandas.DataFrame` (one row per subject and parameter).

        Estimates and delta-method standard errors on the natural scale, the unconstrained ``theta`` and its
        standard error, the subject's log-likelihood, AIC/BIC and convergence flags
        (:func:`neurorl.results.estimates_table`; :func:`neurorl.results.group_summary` summarises it).
        """
        self._check_fitted()
        from ..results import estimates_table

        return estimates_table(self.result_)

    def trial_params(self, trials: xr.Dataset | None = None) -> xr.Dataset:
        """Constrained parameters per subject (and per trial for covariate-modulated ones).

        Parameters without covariates are ``(subject,)``; parameters with
        covariates are ``(subject, trial)``, evaluated at each trial's
        covariate values. ``trials`` (default: the fitted trials) must contain
        only fitted subjects (matched by label).
        """
        self._check_fitted()
        agent, layout = self.agent_, self.layout_
        if trials is None:
            data = self._data
        else:
            data = _Data(trials, _normalise_covariates(self.covariates), layout.covariates)
        fitted = self.result_[SUBJECT].values
        missing = sorted(set(data.subjects.tolist()) - set(fitted.tolist()), key=str)
        if missing:
            raise ValueError(f"trials contain subject(s) {missing[:8]} that were not fitted")
        theta = self.result_["theta"].sel({SUBJECT: data.subjects}).transpose(PARAM, SUBJECT).values
        spec = {p.name: p for p in agent.params}
        out = {}
        eta = layout.eta(theta, data.x)  # x (T, n, C): covariate-modulated parameters come out (T, n)
        for name, _, slopes in layout.terms:
            e = eta[name]
            if slopes:
                out[name] = ((SUBJECT, TRIAL), spec[name].to_constrained(np.ascontiguousarray(e.T)))
            else:
                out[name] = (SUBJECT, spec[name].to_constrained(e))
        return xr.Dataset(out, coords={SUBJECT: data.subjects, TRIAL: data.trials[TRIAL].values})

    def latents(self, trials: xr.Dataset | None = None) -> xr.Dataset:
        """Replay ``trials`` (default: the fitted ones) at the fitted parameters (:func:`neurorl.replay`)."""
        from ..simulate import replay

        self._check_fitted()
        trials = self.trials_ if trials is None else trials
        return replay(self.agent_, trials, self.trial_params(trials))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.agent!r}, n_starts={self.n_starts})"


class MAP(MLE):
    """Maximum a posteriori estimation with Normal priors on the unconstrained parameters.

    Parameters
    ----------
    agent : Agent or str
    prior : dict, optional
        ``{row name: (loc, scale)}`` overriding the default priors on the
        unconstrained scale; row names are the free parameters and the
        covariate slopes (``"alpha_block"``). Default: each ``Param``'s
        ``prior_loc`` / ``prior_scale`` (``N(0, 2.5^2)`` unless the agent says
        otherwise; slopes ``N(0, prior_scale^2)``, [A5]).
    **kwargs
        As :class:`MLE` (``n_starts``, ``covariates``, ``optimizer``, ...).
        Starts after the first (the prior mean) are drawn from the prior.

    Attributes
    ----------
    result_ : xarray.Dataset
        As :class:`MLE`, plus ``logprior``, ``laplace_log_evidence`` ([A8]),
        ``prior_loc`` and ``prior_scale``.
    evidence_ : xarray.Dataset
        ``loglik``, ``n_params``, ``n_trials``, ``laplace_log_evidence``.
    """

    _estimator = "MAP"

    def __init__(self, agent: Agent | str, *, prior: dict | None = None, n_starts: int = 10, **kwargs):
        super().__init__(agent, n_starts=n_starts, **kwargs)
        self.prior = prior

    def _prior(self, agent, layout):
        mu, sd = self._default_prior(agent, layout)
        for k, v in (self.prior or {}).items():
            if k not in layout.names:
                raise ValueError(f"prior given for {k!r}, which is not a fitted parameter; fitted: "
                                 f"{list(layout.names)}")
            try:
                loc, scale = (float(a) for a in v)
            except (TypeError, ValueError):
                raise ValueError(f"prior[{k!r}] must be a pair (loc, scale) on the unconstrained scale, got {v!r}") \
                    from None
            if not scale > 0:
                raise ValueError(f"prior[{k!r}]: scale must be positive, got {scale}")
            i = layout.names.index(k)
            mu[i], sd[i] = loc, scale
        return mu, sd


class EMMAP(MLE):
    """Hierarchical EM-MAP (Huys et al. 2011; emfit): a Gaussian group prior learnt from all subjects.

    Parameters
    ----------
    agent : Agent or str
    max_em_iter : int, default 100
        EM iterations.
    tol : float, default 1e-3
        Stop when the total log posterior changes by less than ``tol`` (nats).
    min_var : float, default 1e-6
        Floor of the group variances.
    n_ibic_samples : int, default 2000
        Draws from the group prior for the integrated BIC ([A10]; 2,000 as pyEM).
    prior : dict, optional
        Initial group prior ``{row name: (loc, scale)}`` (default: the agent's priors).
    **kwargs
        As :class:`MLE`; ``n_starts`` applies to the first E-step (later
        E-steps start from the previous estimates), so ``identifiable`` and
        ``starts_`` describe that first E-step.

    Attributes
    ----------
    group_mean_, group_sd_ : xarray.DataArray
        Group-level mean and standard deviation on the unconstrained scale (dim ``param``).
    group_params_ : xarray.Dataset
        The group mean mapped to each parameter's constrained scale.
    ibic_ : float
        Integrated BIC.
    history_ : xarray.Dataset
        Total log posterior, group means and sds per EM iteration.
    result_, params_, evidence_
        As :class:`MAP` under the final group prior; ``evidence_`` adds the
        scalar ``ibic``; ``result_`` adds ``group_mean``, ``group_sd``, ``ibic``,
        ``log_evidence_ibic`` (subject: ``log p(y_i|mu, sigma)``).
    """

    _estimator = "EMMAP"

    def __init__(self, agent: Agent | str, *, max_em_iter: int = 100, tol: float = 1e-3, min_var: float = 1e-6,
                 n_ibic_samples: int = 2000, prior: dict | None = None, n_starts: int = 10, **kwargs):
        super().__init__(agent, n_starts=n_starts, **kwargs)
        self.max_em_iter = max_em_iter
        self.tol = tol
        self.min_var = min_var
        self.n_ibic_samples = n_ibic_samples
        self.prior = prior

    _initial_prior = MAP._prior

    def fit(self, trials: xr.Dataset) -> "EMMAP":
        """Run EM to convergence on ``trials``; returns ``self``."""
        t0 = time.perf_counter()
        agent, layout, data = self._setup(trials)
        rng = as_rng(self.rng)
        mu, sd = self._initial_prior(agent, layout)
        obj = _Objective(agent, data, layout, self.mode, (mu, sd), quiet=self.progress is False)
        n = data.n
        hist_L, hist_mu, hist_sd = [], [], []
        best = None
        L_prev = -np.inf
        converged = False
        show = self.progress if self.progress is not None else n * data.T > 1_000_000
        bar = _progress_bar(show, f"EMMAP {agent.name}", None, unit="EM iterations")  # done, not the limit
        try:
            for it in range(int(self.max_em_iter)):
                obj.set_prior((mu, sd))
                if best is None:
                    best = self._multistart(obj, agent, layout, data, rng, (mu, sd))
                else:
                    out = self._with_hessian(obj, self._optimise(obj, best["theta"], np.arange(n), "E-step", quiet=True))
                    best = {"theta": out["theta"], "f": out["f"], "g": out["g"], "H": out["H"],
                            "pointwise": out["pointwise"],
                            "gnorm": out["gnorm"], "converged": out["converged"],
                            "identifiable": best["identifiable"], "n_at_best": best["n_at_best"],
                            "nan": best["nan"] | out["nan"]}
                    if not np.all(np.isfinite(out["f"])):
                        bad = np.flatnonzero(~np.isfinite(out["f"]))
                        raise ValueError(f"EMMAP: the log posterior became non-finite for subject(s) "
                                         f"{_names(data.subjects, bad)} during the E-step")
                L = float(-best["f"].sum())
                hist_L.append(L)
                hist_mu.append(mu.copy())
                hist_sd.append(sd.copy())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(logpost=f"{L:.3f}")
                if abs(L - L_prev) < self.tol:
                    converged = True
                    break
                L_prev = L
                # M-step
                theta = best["theta"]
                Hs = np.transpose(best["H"], (2, 0, 1))
                Hs = 0.5 * (Hs + np.transpose(Hs, (0, 2, 1)))
                try:
                    var_i = np.diagonal(np.linalg.inv(Hs), axis1=1, axis2=2).T  # (D, n)
                except np.linalg.LinAlgError:
                    var_i = np.diagonal(np.linalg.pinv(Hs), axis1=1, axis2=2).T
                var_i = np.where(np.isfinite(var_i) & (var_i > 0), var_i, 0.0)
                mu = theta.mean(axis=1)
                var = np.mean(theta ** 2 + var_i, axis=1) - mu ** 2
                sd = np.sqrt(np.maximum(var, self.min_var))
        finally:
            if bar is not None:
                bar.close()
        if not converged:
            warnings.warn(f"EMMAP {self.agent_.name}: the total log posterior still changed by {abs(hist_L[-1] - hist_L[-2]):.3g} "
                          f"(tol={self.tol}) after {self.max_em_iter} EM iterations; increase "
                          "max_em_iter (CLI --max-em-iter)",
                          FitWarning, stacklevel=2)
        self.n_em_iter_ = len(hist_L)
        log_ev_i, ibic = self._ibic(obj, layout, data, mu, sd, rng)
        names = list(layout.names)
        extra = {"group_mean": (PARAM, mu), "group_sd": (PARAM, sd), "ibic": ((), ibic),
                 "log_evidence_ibic": (SUBJECT, log_ev_i)}
        self._finish(obj, agent, layout, data, best, (mu, sd), extra)
        self.evidence_["ibic"] = ((), ibic)
        self.ibic_ = ibic
        self.group_mean_ = xr.DataArray(mu, dims=PARAM, coords={PARAM: names}, name="group_mean")
        self.group_sd_ = xr.DataArray(sd, dims=PARAM, coords={PARAM: names}, name="group_sd")
        spec = {p.name: p for p in agent.params}
        self.group_params_ = xr.Dataset({name: ((), float(spec[name].to_constrained(mu[base])))
                                         for name, base, _ in layout.terms})
        self.history_ = xr.Dataset(
            {"log_posterior": ("iteration", np.array(hist_L)),
             "group_mean": (("iteration", PARAM), np.array(hist_mu)),
             "group_sd": (("iteration", PARAM), np.array(hist_sd))},
            coords={"iteration": np.arange(len(hist_L)), PARAM: names})
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _ibic(self, obj, layout, data, mu, sd, rng):
        K = int(self.n_ibic_samples)
        if K < 1:
            return np.full(data.n, np.nan), float("nan")
        D, n = layout.n_rows, data.n
        draws = mu[:, None] + sd[:, None] * rng.standard_normal((D, K))
        draws = np.clip(draws, -self.bound, self.bound)
        ll = np.empty((K, n))
        per_call = max(1, obj.chunk_rows // n)
        for s in range(0, K, per_call):
            ks = np.arange(s, min(K, s + per_call))
            theta = np.repeat(draws[:, ks], n, axis=1)  # (D, len(ks) * n), sample-major
            rows = np.tile(np.arange(n), ks.size)
            ll[ks] = obj.loglik(theta, rows, 0)["loglik"].reshape(ks.size, n)
        ll = np.where(np.isfinite(ll), ll, -np.inf)
        m = ll.max(axis=0)
        log_ev = m + np.log(np.mean(np.exp(ll - m), axis=0))
        n_total = int(data.n_trials.sum())
        ibic = float(-2.0 * log_ev.sum() + 2 * D * np.log(n_total))
        return log_ev, ibic
