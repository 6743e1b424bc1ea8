"""The DDM regression estimator: formulas on v, a, z, t0, sv (and a contaminant mixture), fitted by MAP or NUTS.

One call::

    from neurorl.ssm import DDM
    fit = DDM("v ~ 1 + C(stim)", "a ~ 1 + theta:C(conf)", subject="subj_idx").fit(df)
    fit.coefs_            # group (fixed) coefficients with Laplace standard errors, on the link scale
    fit.group_sd_         # standard deviations of the subject effects
    fit.subject_coefs_    # (subject, coef) coefficients of every subject
    fit.cross_validate(5) # exact K-fold over contiguous trial blocks (neurorl.fitting.cv.block_folds)
    DDM(..., method="nuts").fit(df).idata_   # PyMC NUTS, arviz InferenceData with log_likelihood["loglik"]

The model
---------
Per trial ``t`` of subject ``s`` and each parameter ``p`` with a formula (:mod:`neurorl.ssm.formula`)::

    eta_pt = X_pt . beta_p + sum_r Z_ptr sd_pr u_psr            (fixed + non-centred subject effects)
    p_t    = link_p(eta_pt)                                     (v identity; a, t0, sv log; z, p_outlier logit)
    beta_pk ~ N(loc, scale^2)     sd_pr ~ HalfNormal(s)      u_psr ~ N(0, 1)
    log p(rt_t, response_t) = log WFPT(rt_t, response_t | v_t, a_t, z_t, t0_t, sv_t)   [+ contaminant mixture]

Default priors (:data:`neurorl.ssm.formula.DEFAULT_PRIORS`) are weakly informative on the link scale; intercepts
centre on typical values. A formula without an ``Intercept`` column (cell means, ``0 + C(cond)``) gives every column
the intercept prior. Override with ``priors={"a": {"intercept": (loc, scale), "slope": scale, "sd": scale},
"a:theta": (loc, scale)}`` (a coefficient by its full name).

MAP (hierarchical EM-MAP)
-------------------------
The joint mode over ``(beta, log sd, u)`` is not a good estimate of the subject sds: with the ``log sd`` Jacobian
the mode puts every sd at or above its prior scale, without it the sds collapse towards 0 (a group-lasso penalty).
So the sds are estimated by EM (as :class:`neurorl.fitting.EMMAP`, Huys et al. 2011): E-step, the mode over
``(beta, u)`` given the sds (Newton steps with the exact Hessian) and its Laplace covariance;
M-step, each sd maximises ``E[log p(b | sd)] + log HalfNormal(sd)`` with ``b = sd u``, in closed form
``sd^2 = s^2 (-S + sqrt(S^2 + 4 E[sum b^2] / s^2)) / 2`` (``S`` subjects, ``s`` the prior scale). It stops when no
sd moves by more than :data:`EM_TOL` times ``sd + 0.1 s`` (an sd
shrinking towards 0 converges only geometrically; below a tenth of its prior scale its exact value hardly changes
the other estimates). Each E-step takes one Newton step from the previous mode (a generalised EM); the
final mode is polished to a gradient below 1e-8. The EM sequence of the log sds is accelerated by
SQUAREM (Varadhan & Roland 2008: two EM steps, an extrapolated point, one EM step). Per trial the density, its
gradient and its Hessian in ``(v, a, z, t0, sv, p_outlier)`` come from one compiled kernel (:mod:`neurorl.ssm.kernel`,
cached on disk; MAP compiles or loads only its order-2 executable, which also serves the gradient-only calls of the
line searches, so a first fit compiles once); the chain rule through
links, formulas and subject effects is written out here in NumPy (exact; the tests compare it with differences).
Standard errors of the coefficients are Laplace's (inverse Hessian over ``(beta, u)`` at the final sds); the sds have
none -- use ``method="nuts"`` for their uncertainty. ``laplace_log_evidence_`` integrates ``(beta, u)`` at the
estimated sds.

Assumptions
-----------
[A1] ``t0`` starts at half the fastest RT (its intercept; slopes at 0); a ``t0`` above a trial's RT is not an error
     during fitting (the density's finite floor, :func:`neurorl.fitting.wiener.wiener_logpdf`, pushes it back),
     but a fit that ends there warns, naming the trials.
[A2] ``sz`` and ``st`` are not offered: HDDM integrates them numerically (Simpson), which is not exact; ``sv`` is
     integrated in closed form.
[A3] Trials are independent given the parameters: the pointwise log-likelihood is one term per trial and LOO / CV
     hold out trials (contiguous blocks for CV).
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sps
import xarray as xr

from ..progress import progress_bar
from .design import DEFAULT_FIXED, Layout, prepare_data
from .formula import DEFAULT_PRIORS, LINKS, parse_formula
from .kernel import PARAMS, get_kernel

__all__ = ["DDM", "SSMWarning"]

_LOG2PI = float(np.log(2 * np.pi))
#: EM iterations (MAP) at most, and the tolerance on the change of every log sd
MAX_EM_ITER = 500
EM_TOL = 1e-3


class SSMWarning(UserWarning):
    """Non-convergence and other fit problems of a DDM regression."""


class DDM:
    """Drift-diffusion model whose parameters are regressions on trial covariates (module docstring).

    Parameters
    ----------
    *formulas : str
        ``"param ~ rhs"`` for any of ``v, a, z, t0, sv, p_outlier``.
    v, a, z, t0, sv, p_outlier : str or float, optional
        The same per parameter: a right-hand side / full formula, or a number to fix it. Defaults: ``v``, ``a``,
        ``t0`` estimated (``"1"``), ``z = 0.5``, ``sv = 0`` and ``p_outlier = 0`` fixed. ``p_outlier`` > 0 or a
        formula turns on the contaminant mixture (:mod:`neurorl.ssm.kernel`).
    coding : {"accuracy", "stimulus"}
        Response coding (:mod:`neurorl.ssm.design`).
    stimulus : str, optional
        Column with the correct response (1/0), needed by ``coding="stimulus"``.
    split_param : {"v", "z"}
        What stimulus coding mirrors.
    hierarchical : bool
        Add ``(1|subject)`` to formulas without a subject part.
    priors : dict, optional
    method : {"map", "nuts"}
    rt, response, subject : str
        Column names (HDDM data: ``subject="subj_idx"``).
    rt_max : float
        Support of the contaminant's uniform time (s).
    draws, tune, chains, cores, target_accept : NUTS options (``method="nuts"``). Chains run one after another in
        this process by default (``cores=None``): JAX is multithreaded and forked chain processes can deadlock;
        ``cores=k`` runs them in spawned processes (guard your script with ``if __name__ == "__main__":``).
    nuts_sampler : {"pymc", "numpyro"}
        PyMC's NUTS calling the compiled kernel, or numpyro on the model transpiled to JAX
        (:mod:`neurorl.ssm.bayes`).
    rng : int, Generator or None
    progress : bool
    max_iter : int
        Newton iterations of the first mode (MAP).
    """

    def __init__(self, *formulas: str, v=None, a=None, z=None, t0=None, sv=None, p_outlier=None,
                 coding: str = "accuracy", stimulus: str | None = None, split_param: str = "v",
                 hierarchical: bool = True, priors: dict | None = None, method: str = "map", rt: str = "rt",
                 response: str = "response", subject: str = "subject", rt_max: float = 10.0, draws: int = 1000,
                 tune: int = 1000, chains: int = 4, cores: int | None = None, target_accept: float = 0.8,
                 nuts_sampler: str = "pymc", rng=None, progress: bool = True, max_iter: int = 500):
        self.formulas = formulas
        self.v, self.a, self.z, self.t0, self.sv, self.p_outlier = v, a, z, t0, sv, p_outlier
        self.coding, self.stimulus, self.split_param = coding, stimulus, split_param
        self.hierarchical, self.priors, self.method = hierarchical, priors, method
        self.rt, self.response, self.subject, self.rt_max = rt, response, subject, rt_max
        self.draws, self.tune, self.chains, self.cores, self.target_accept = draws, tune, chains, cores, target_accept
        self.nuts_sampler = nuts_sampler
        self.rng, self.progress, self.max_iter = rng, progress, max_iter

    # ------------------------------------------------------------------------------------------------ spec
    def _spec(self):
        if self.method not in ("map", "nuts"):
            raise ValueError(f"DDM: method must be 'map' or 'nuts', got {self.method!r}")
        if self.split_param not in ("v", "z"):
            raise ValueError(f"DDM: split_param must be 'v' or 'z', got {self.split_param!r}")
        given = {}
        for text in self.formulas:
            if not isinstance(text, str):
                raise TypeError(f"DDM: positional arguments are formulas 'param ~ rhs', got {text!r}")
            f = parse_formula(text, subject=self.subject, hierarchical=self.hierarchical)
            if f.param in given:
                raise ValueError(f"DDM: two formulas for {f.param!r}")
            given[f.param] = f
        fixed = {}
        for p in PARAMS:
            val = getattr(self, p)
            if val is None:
                if p in given:
                    continue
                if p in DEFAULT_FIXED:
                    fixed[p] = DEFAULT_FIXED[p]
                    continue
                val = "1"
            if p in given:
                raise ValueError(f"DDM: {p!r} is given both as a formula and as {p}={val!r}")
            if isinstance(val, str):
                text = val if "~" in val else f"{p} ~ {val}"
                given[p] = parse_formula(text, subject=self.subject, hierarchical=self.hierarchical)
                if given[p].param != p:
                    raise ValueError(f"DDM: {p}={val!r} is a formula for {given[p].param!r}")
            else:
                x = float(val)
                ok = {"a": x > 0, "z": 0 < x < 1, "t0": x >= 0, "sv": x >= 0, "p_outlier": 0 <= x < 1}.get(p, True)
                if not ok:
                    raise ValueError(f"DDM: fixed {p}={x} is outside its range")
                fixed[p] = x
        lapse = "p_outlier" in given or fixed.get("p_outlier", 0.0) > 0
        return given, fixed, lapse

    def _prior_vectors(self, layout: Layout):
        D = layout.size
        loc, scale = np.zeros(D), np.ones(D)
        user = dict(self.priors or {})
        known = set(PARAMS) | {f"{p}:{c}" for p, b in layout.blocks.items() for c in b["cols"]}
        unknown = [k for k in user if k not in known]
        if unknown:
            raise ValueError(f"DDM: priors for unknown parameters/coefficients {unknown}; known: {sorted(known)}")
        for p, b in layout.blocks.items():
            spec = {**DEFAULT_PRIORS[p], **user.get(p, {})}
            has_int = "Intercept" in b["cols"]
            for j, c in enumerate(b["cols"]):
                k = b["beta"].start + j
                if c == "Intercept" or not has_int:
                    loc[k], scale[k] = spec["intercept"]
                else:
                    loc[k], scale[k] = 0.0, spec["slope"]
                if f"{p}:{c}" in user:
                    loc[k], scale[k] = user[f"{p}:{c}"]
            scale[b["lsd"]] = spec["sd"]
        if np.any(scale <= 0):
            raise ValueError("DDM: prior scales must be > 0")
        return loc, scale

    # ------------------------------------------------------------------------------------------------ objective
    def _setup(self, data):
        given, fixed, lapse = self._spec()
        df = prepare_data(data, rt=self.rt, response=self.response, subject=self.subject, stimulus=self.stimulus,
                          coding=self.coding)
        layout = Layout(given, fixed, df, self.coding, self.split_param)
        kern = get_kernel(layout.n, lapse=lapse, rt_max=self.rt_max, free=layout.free_rows)
        return df, layout, kern, lapse

    def _is_beta(self, layout):
        m = np.zeros(layout.size, bool)
        lsd = np.zeros(layout.size, bool)
        for b in layout.blocks.values():
            m[b["beta"]] = True
            lsd[b["lsd"]] = True
        return m, lsd

    def _logprior(self, theta, layout, prior, order):
        loc, scale = prior
        isb, islsd = self._is_beta(layout)
        isu = ~(isb | islsd)
        lp = np.sum(-0.5 * ((theta[isb] - loc[isb]) / scale[isb]) ** 2 - np.log(scale[isb]) - 0.5 * _LOG2PI)
        lp += np.sum(-0.5 * theta[isu] ** 2 - 0.5 * _LOG2PI)
        s, lam = scale[islsd], theta[islsd]
        lp += np.sum(np.log(2.0) - 0.5 * _LOG2PI - np.log(s) - 0.5 * np.exp(2 * lam) / s ** 2 + lam)
        if order == 0:
            return lp
        g = np.zeros(layout.size)
        g[isb] = -(theta[isb] - loc[isb]) / scale[isb] ** 2
        g[isu] = -theta[isu]
        g[islsd] = -np.exp(2 * lam) / s ** 2 + 1.0
        if order == 1:
            return lp, g
        h = np.zeros(layout.size)
        h[isb] = -1.0 / scale[isb] ** 2
        h[isu] = -1.0
        h[islsd] = -2.0 * np.exp(2 * lam) / s ** 2
        return lp, g, np.diag(h)

    def _jacobians(self, theta, layout):
        """Sparse ``d eta_p / d theta`` ``(n, D)`` per parameter with a formula."""
        vals = layout.unpack(theta)
        n = layout.n
        rows_all = np.arange(n)
        J = {}
        for p, b in layout.blocks.items():
            beta, sd, u = vals[p]
            X, Z = b["X"], b["Z"]
            K, R = X.shape[1], Z.shape[1]
            rr, cc, vv = [np.repeat(rows_all, K)], [np.tile(np.arange(b["beta"].start, b["beta"].stop), n)], \
                [X.ravel()]
            for r in range(R):
                rr += [rows_all, rows_all]
                cc += [np.full(n, b["lsd"].start + r), b["u"].start + layout.subj * R + r]
                vv += [Z[:, r] * sd[r] * u[layout.subj, r], Z[:, r] * sd[r]]
            J[p] = sps.csr_matrix((np.concatenate(vv), (np.concatenate(rr), np.concatenate(cc))),
                                  shape=(n, layout.size))
        return J

    def _loglik(self, theta, layout, kern, data, weight, order):
        """Total log-likelihood and its derivatives in ``theta``; pointwise terms."""
        P, etas = layout.trial_params(theta)
        out = kern(P, data["_rt"].to_numpy(), data["_resp"].to_numpy(), weight, order=max(order, 1))
        ll_pt, gP = out[0], out[1]
        if order == 0:
            return ll_pt.sum(), ll_pt
        idx = {p: PARAMS.index(p) for p in layout.blocks}
        G = {}
        for p, e in etas.items():
            G[p] = gP[idx[p]] * layout.coding_factor(idx[p]) * LINKS[p].d1(e)
        vals = layout.unpack(theta)
        g = np.zeros(layout.size)
        extra = {}
        for p, b in layout.blocks.items():
            beta, sd, u = vals[p]
            g[b["beta"]] = b["X"].T @ G[p]
            R = len(b["rcols"])
            gu = np.zeros((layout.n_subjects, R))
            for r in range(R):
                zg = b["Z"][:, r] * G[p]
                gu[:, r] = sd[r] * np.bincount(layout.subj, weights=zg, minlength=layout.n_subjects)
                g[b["lsd"].start + r] = np.sum(zg * sd[r] * u[layout.subj, r])
            g[b["u"]] = gu.ravel()
            extra[p] = gu
        if order == 1:
            return ll_pt.sum(), ll_pt, g
        HP = out[2]
        J = self._jacobians(theta, layout)
        H = np.zeros((layout.size, layout.size))
        ps = list(layout.blocks)
        for i, p in enumerate(ps):
            fp = layout.coding_factor(idx[p]) * LINKS[p].d1(etas[p])
            for q in ps[i:]:
                fq = layout.coding_factor(idx[q]) * LINKS[q].d1(etas[q])
                h = HP[idx[p], idx[q]] * fp * fq
                if p == q:
                    h = h + gP[idx[p]] * layout.coding_factor(idx[p]) * LINKS[p].d2(etas[p])
                blk = (J[p].multiply(h[:, None])).T @ J[q]
                blk = np.asarray(blk.todense())
                H += blk if p == q else blk + blk.T
            b = layout.blocks[p]
            R = len(b["rcols"])
            for r in range(R):  # second derivatives of eta in (log sd, u)
                k = b["lsd"].start + r
                H[k, k] += g[k]
                cols = b["u"].start + np.arange(layout.n_subjects) * R + r
                H[k, cols] += extra[p][:, r]
                H[cols, k] += extra[p][:, r]
        return ll_pt.sum(), ll_pt, g, H

    # ------------------------------------------------------------------------------------------------ fit
    def _start(self, layout, df, prior):
        theta = np.zeros(layout.size)
        loc, scale = prior
        isb, islsd = self._is_beta(layout)
        theta[isb] = loc[isb]
        theta[islsd] = np.log(0.3 * scale[islsd])
        if "t0" in layout.blocks:
            b = layout.blocks["t0"]
            t0 = 0.5 * df["_rt"].min()
            if "Intercept" in b["cols"]:
                theta[b["beta"].start + b["cols"].index("Intercept")] = np.log(t0)
                for j, c in enumerate(b["cols"]):
                    if c != "Intercept":
                        theta[b["beta"].start + j] = 0.0
            else:
                theta[b["beta"]] = np.log(t0)
        return theta

    def _map(self, df, layout, kern, weight, theta0=None, quiet=False):
        """Hierarchical EM-MAP: the mode over ``(beta, u)`` given the subject sds, then the sds from the Laplace
        posterior of the subject effects (module docstring), until the log sds move by less than 1e-4."""
        kern.prepare(2, progress=False)  # one executable (value, gradient, Hessian) serves every call of MAP
        prior = self._prior_vectors(layout)
        theta = self._start(layout, df, prior) if theta0 is None else theta0.copy()
        isb, islsd = self._is_beta(layout)
        free = ~islsd
        bar = progress_bar(self.progress and not quiet, "DDM EM-MAP", None, unit="evals")

        def fun(th_free, lsd):
            th = theta.copy()
            th[free], th[islsd] = th_free, lsd
            ll, _, g = self._loglik(th, layout, kern, df, weight, 1)
            lp, gp = self._logprior(th, layout, prior, 1)
            if bar is not None:
                bar.update(1)
            f = -(ll + lp)
            return (f, -(g + gp)[free]) if np.isfinite(f) else (1e300, np.zeros(int(free.sum())))

        theta, _, n_newton = self._newton(theta, free, layout, kern, df, weight, prior, fun, max_steps=self.max_iter)
        S = layout.n_subjects

        def set_lsd(th, lsd_new):
            """Move the log sds, keeping the subject effects b = sd * u."""
            out = th.copy()
            for b in layout.blocks.values():
                R = len(b["rcols"])
                for r in range(R):
                    k = b["lsd"].start + r
                    cols = b["u"].start + np.arange(S) * R + r
                    out[k] = lsd_new[k]
                    out[cols] = th[cols] * np.exp(th[k] - lsd_new[k])
            return out

        def em_step(th):
            """One generalised EM iteration: a Newton step of the mode, then the closed-form M-step."""
            th, H, _ = self._newton(th, free, layout, kern, df, weight, prior, fun, max_steps=1)
            cov = self._safe_inv(H[np.ix_(free, free)])
            var_free = np.full(layout.size, np.nan)
            var_free[free] = np.diag(cov)
            lsd_new = th.copy()
            for b in layout.blocks.values():
                R = len(b["rcols"])
                for r in range(R):
                    k = b["lsd"].start + r
                    cols = b["u"].start + np.arange(S) * R + r
                    sd = np.exp(th[k])
                    eb2 = np.sum(sd ** 2 * (th[cols] ** 2 + var_free[cols]))
                    s2 = prior[1][k] ** 2
                    lsd_new[k] = np.log(max(np.sqrt(0.5 * s2 * (-S + np.sqrt(S * S + 4.0 * eb2 / s2))), 1e-8))
            new = set_lsd(th, lsd_new)
            moved = np.max(np.abs(np.exp(new[islsd]) - np.exp(th[islsd])) / (np.exp(th[islsd]) +
                                                                               0.1 * prior[1][islsd]))
            return new, moved

        n_em, em_ok = 0, not islsd.any()
        if em_ok:
            theta, _, _ = self._newton(theta, free, layout, kern, df, weight, prior, fun)
        while not em_ok and n_em < MAX_EM_ITER:
            # SQUAREM (Varadhan & Roland 2008) on the log sds: two EM steps, an extrapolated point, one EM step
            th1, m1 = em_step(theta)
            th2, m2 = em_step(th1)
            n_em += 2
            if m2 < EM_TOL:
                theta, em_ok = th2, True
                break
            r = th1[islsd] - theta[islsd]
            v = th2[islsd] - th1[islsd] - r
            alpha = -np.linalg.norm(r) / max(np.linalg.norm(v), 1e-300)
            alpha = min(alpha, -1.0)
            lsd_x = theta[islsd] - 2 * alpha * r + alpha ** 2 * v
            bound = np.log(10 * prior[1][islsd])
            if np.all(np.isfinite(lsd_x)) and np.all(lsd_x < bound) and np.all(lsd_x > np.log(1e-8)):
                full = th2.copy()
                full[islsd] = lsd_x
                theta, m3 = em_step(set_lsd(th2, full))
            else:
                theta, m3 = em_step(th2)
            n_em += 1
            if m3 < EM_TOL:
                em_ok = True
        if islsd.any():
            theta, _, _ = self._newton(theta, free, layout, kern, df, weight, prior, fun)
        if bar is not None:
            bar.close()
        ll, ll_pt, g, H = self._loglik(theta, layout, kern, df, weight, 2)
        lp, gp, Hp = self._logprior(theta, layout, prior, 2)
        H = -(H + Hp)
        return {"theta": theta, "ll": ll, "ll_pt": ll_pt, "lp": lp, "grad": (g + gp)[free], "hess": H,
                "free": free, "prior": prior, "n_iter": int(n_newton), "n_em": n_em,
                "em_converged": em_ok}

    @staticmethod
    def _safe_inv(H):
        eig, vec = np.linalg.eigh(0.5 * (H + H.T))
        eig = np.where(eig > 1e-10 * np.abs(eig).max(), eig, np.inf)
        return (vec / eig) @ vec.T

    def _newton(self, theta, free, layout, kern, df, weight, prior, fun, max_steps=50):
        """Newton steps with the exact Hessian over the ``free`` entries (eigenvalues made positive, backtracking).

        Returns theta, the Hessian of the negative log posterior at the start of the last step (at the returned
        theta when no step was taken) and the number of steps taken."""
        lsd = theta[~free]
        f_cur = fun(theta[free], lsd)[0]
        H_out = None
        n_steps = 0
        for _ in range(max_steps):
            ll, _, g, H = self._loglik(theta, layout, kern, df, weight, 2)
            lp, gp, Hp = self._logprior(theta, layout, prior, 2)
            H_out = -(H + Hp)
            grad, hess = -(g + gp)[free], H_out[np.ix_(free, free)]
            if np.max(np.abs(grad)) < 1e-8:
                break
            eig, vec = np.linalg.eigh(0.5 * (hess + hess.T))
            eig = np.maximum(np.abs(eig), 1e-8 * max(np.abs(eig).max(), 1.0))
            step = (vec / eig) @ (vec.T @ grad)
            t = 1.0
            while t > 1e-6:
                f_new = fun(theta[free] - t * step, lsd)[0]
                if f_new <= f_cur - 1e-4 * t * (grad @ step):
                    break
                t *= 0.5
            if t <= 1e-6:
                break
            theta = theta.copy()
            theta[free] = theta[free] - t * step
            f_cur = f_new
            n_steps += 1
        return theta, H_out, n_steps

    def fit(self, data) -> DDM:
        """Fit the model to ``data`` (a tidy DataFrame, one row per trial, or a trials xarray.Dataset)."""
        t_start = time.perf_counter()
        df, layout, kern, lapse = self._setup(data)
        self.data_, self.layout_, self.lapse_ = df, layout, lapse
        self.subjects_ = df.attrs["subject_labels"]
        # compilation (first use on this machine) or loading is a step of its own in the progress output; MAP needs
        # only the order-2 executable (it serves the gradient-only calls too), NUTS only the order-1 one
        self.compile_seconds_ = kern.prepare(1 if self.method == "nuts" else 2, progress=self.progress)
        if self.method == "nuts":
            from .bayes import fit_nuts

            fit_nuts(self, df, layout, kern)
        else:
            best = self._map(df, layout, kern, np.ones(layout.n))
            self._finish_map(best, df, layout)
        self.fit_seconds_ = time.perf_counter() - t_start
        return self

    def _obs_coords(self, df):
        return {"subject": ("obs", self.subjects_[df["_subj"].to_numpy()]), "trial": ("obs", df["_trial"].to_numpy())}

    def _finish_map(self, best, df, layout):
        theta, free = best["theta"], best["free"]
        Hn = best["hess"][np.ix_(free, free)]
        sym = 0.5 * (Hn + Hn.T)
        eig, vec = np.linalg.eigh(sym)
        pd_ = bool(eig.min() > 1e-10 * abs(eig).max())
        cov = np.full((layout.size, layout.size), np.nan)
        if pd_:
            cov[np.ix_(free, free)] = (vec / eig) @ vec.T
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
        gnorm = float(np.max(np.abs(best["grad"])))
        self.converged_ = bool(gnorm < 1e-3 and pd_ and best["em_converged"])
        self.n_em_iter_ = best["n_em"]
        self.theta_, self.cov_theta_ = theta, cov
        rows, names, params = [], [], []
        sd_rows, sd_names = [], []
        for p, b in layout.blocks.items():
            for j, c in enumerate(b["cols"]):
                k = b["beta"].start + j
                rows.append(k)
                names.append(f"{p}:{c}")
                params.append(p)
            for r, c in enumerate(b["rcols"]):
                k = b["lsd"].start + r
                sd_rows.append(k)
                sd_names.append(f"{p}:{c}")
        est = theta[rows]
        s = se[rows]
        self.coefs_ = xr.Dataset(
            {"estimate": ("coef", est), "se": ("coef", s), "lower": ("coef", est - 1.96 * s),
             "upper": ("coef", est + 1.96 * s), "param": ("coef", np.array(params, dtype=object))},
            coords={"coef": names}, attrs={"scale": "link (v identity; a, t0, sv log; z, p_outlier logit)",
                                           "interval": "Laplace 95 %"})
        sd = np.exp(theta[sd_rows]) if sd_rows else np.zeros(0)
        self.group_sd_ = xr.Dataset({"estimate": ("rcoef", sd)}, coords={"rcoef": sd_names},
                                    attrs={"estimator": "EM (M-step MAP under the HalfNormal prior); no standard "
                                                        "error: use method='nuts' for its uncertainty"})
        self.subject_coefs_ = self._subject_coefs(theta, layout)
        ll_pt = best["ll_pt"]
        self.pointwise_loglik_ = xr.DataArray(ll_pt, dims="obs", coords=self._obs_coords(df), name="loglik")
        per_subj = np.bincount(df["_subj"].to_numpy(), weights=ll_pt, minlength=len(self.subjects_))
        n_tr = np.bincount(df["_subj"].to_numpy(), minlength=len(self.subjects_))
        self.loglik_ = xr.DataArray(per_subj, dims="subject", coords={"subject": self.subjects_}, name="loglik")
        logdet = float(np.sum(np.log(eig))) if pd_ else np.nan
        D = int(free.sum())
        self.log_posterior_ = best["ll"] + best["lp"]
        self.laplace_log_evidence_ = self.log_posterior_ + 0.5 * D * _LOG2PI - 0.5 * logdet
        self.result_ = xr.Dataset(
            {"loglik": self.loglik_, "n_trials": ("subject", n_tr), "n_params": ((), D),
             "loglik_total": ((), best["ll"]), "log_posterior": ((), self.log_posterior_),
             "laplace_log_evidence": ((), self.laplace_log_evidence_), "converged": ((), self.converged_),
             "grad_norm": ((), gnorm), "n_em_iter": ((), best["n_em"])},
            attrs={"estimator": "DDM MAP", "formulas": self.formula_text_(), "coding": self.coding,
                   "lapse": int(self.lapse_)})
        self.result_attrs_em_ok = best["em_converged"]
        self._warn_fit(gnorm, pd_, df, layout, theta)

    def _warn_fit(self, gnorm, pd_, df, layout, theta):
        if not self.result_attrs_em_ok:
            warnings.warn(f"DDM EM-MAP: the subject sds still moved after {MAX_EM_ITER} EM iterations; the "
                          "estimates may be off (a random effect the data barely inform)", SSMWarning, stacklevel=3)
        if gnorm >= 1e-3:
            warnings.warn(f"DDM MAP did not converge (largest gradient {gnorm:.3g} at the end); raise max_iter, "
                          "simplify the formulas or check the data", SSMWarning, stacklevel=3)
        if not pd_:
            warnings.warn("DDM MAP: the Hessian at the mode is not positive definite, so standard errors are NaN; "
                          "a coefficient may be unidentified (a constant covariate, a cell with no trials) or the "
                          "fit may sit on a flat region", SSMWarning, stacklevel=3)
        P, _ = layout.trial_params(theta)
        bad = P[3] >= df["_rt"].to_numpy()
        if bad.any():
            i = np.flatnonzero(bad)[:5]
            where = ", ".join(f"(subject {self.subjects_[df['_subj'].iloc[j]]!r}, trial {df['_trial'].iloc[j]!r})"
                              for j in i)
            warnings.warn(f"DDM: the fitted t0 exceeds the RT on {int(bad.sum())} trial(s): {where}; these trials "
                          "sit on the density's floor. Use a contaminant mixture (p_outlier=...) or remove "
                          "anticipations", SSMWarning, stacklevel=3)

    def formula_text_(self) -> str:
        given, fixed, _ = self._spec()
        parts = [f"{p} ~ {f.fixed}" + (f" + ({f.random}|{self.subject})" if f.random else "")
                 for p, f in given.items()]
        parts += [f"{p} = {v:g}" for p, v in fixed.items()]
        return "; ".join(parts)

    def _subject_coefs(self, theta, layout):
        vals = layout.unpack(theta)
        names, cols = [], []
        for p, b in layout.blocks.items():
            beta, sd, u = vals[p]
            dev = {c: sd[r] * u[:, r] for r, c in enumerate(b["rcols"])}
            for j, c in enumerate(b["cols"]):
                names.append(f"{p}:{c}")
                cols.append(beta[j] + dev.pop(c, 0.0) * np.ones(layout.n_subjects))
            for c, d in dev.items():
                names.append(f"{p}:{c}|subject")
                cols.append(d)
        return xr.DataArray(np.array(cols).T.reshape(layout.n_subjects, len(names)), dims=("subject", "coef"),
                            coords={"subject": self.subjects_, "coef": names}, name="subject_coefs")

    # ------------------------------------------------------------------------------------------------ outputs
    def _check_fitted(self):
        if not hasattr(self, "layout_"):
            raise RuntimeError("DDM: call fit(data) first")

    def trial_params(self, theta=None) -> pd.DataFrame:
        """Per-trial ``v, a, z, t0, sv, p_outlier`` (as the model defines them, before response coding) at the MAP
        estimate (or at ``theta``; for NUTS fits the posterior mean of ``theta``), one row per trial of the data."""
        self._check_fitted()
        theta = self.theta_ if theta is None else theta
        P, _ = self.layout_.trial_params(theta, effective=False)
        out = pd.DataFrame(P.T, columns=list(PARAMS), index=self.data_.index)
        out.insert(0, "trial", self.data_["_trial"].to_numpy())
        out.insert(0, "subject", self.subjects_[self.data_["_subj"].to_numpy()])
        return out

    def cross_validate(self, k: int = 5) -> xr.Dataset:
        """Exact K-fold cross-validation (MAP): contiguous blocks of each subject's trials are held out in turn
        (:func:`neurorl.fitting.cv.block_folds`), the model is refitted on the rest (all subjects stay in the model)
        and each held-out trial is scored by its log density at the fold's estimate.

        Returns
        -------
        xarray.Dataset
            ``loglik`` (obs): held-out log density of every trial; ``elpd`` (total) and ``se`` (``sqrt(n)`` times
            the standard deviation of the pointwise terms); ``fold`` (obs).
        """
        self._check_fitted()
        from ..fitting.cv import block_folds

        df, layout = self.data_, self.layout_
        kern = get_kernel(layout.n, lapse=self.lapse_, rt_max=self.rt_max, free=layout.free_rows)
        S = len(self.subjects_)
        pos = df.groupby("_subj", sort=False).cumcount().to_numpy()
        valid = np.zeros((S, pos.max() + 1), bool)
        valid[df["_subj"].to_numpy(), pos] = True
        folds = block_folds(valid, k)
        held = np.full(layout.n, np.nan)
        fold_of = np.full(layout.n, -1)
        start = getattr(self, "theta_", None)
        for f in range(k):
            test = folds[f][df["_subj"].to_numpy(), pos]
            best = self._map(df, layout, kern, (~test).astype(float), theta0=start, quiet=True)
            ll, ll_pt = self._loglik(best["theta"], layout, kern, df, test.astype(float), 0)
            held[test] = ll_pt[test]
            fold_of[test] = f
        n = held.size
        return xr.Dataset({"loglik": ("obs", held), "fold": ("obs", fold_of), "elpd": ((), held.sum()),
                           "se": ((), float(np.sqrt(n) * held.std(ddof=1)))},
                          coords=self._obs_coords(df), attrs={"k": int(k), "method": "exact K-fold (block)"})

    def save(self, path, *, by=None, n_rep: int = 50, rng=0, data: str | None = None):
        """Write the fit (coefficients, subject sds, per-subject result, pointwise log-likelihood) and its RT
        posterior predictive check (:func:`neurorl.ssm.predictive_check` by the ``by`` columns) to one netCDF file
        (atomically) that ``neurorl report DIR`` finds and shows (quantile-probability plot and RT distributions).

        Parameters
        ----------
        path : path
            The output file (``.nc``).
        by, n_rep, rng
            As :func:`neurorl.ssm.predictive_check`.
        data : str, optional
            Where the data came from (written in the report); default not recorded.

        Returns
        -------
        pathlib.Path
        """
        self._check_fitted()
        from ..results import OUTPUT_ATTR, write_groups
        from .ppc import predictive_check

        check = predictive_check(self, by=by, n_rep=n_rep, rng=rng)
        groups = {"coefs": self.coefs_, "group_sd": self.group_sd_, "rt_check": check,
                  "pointwise": self.pointwise_loglik_.to_dataset()}
        if hasattr(self, "result_"):
            groups["result"] = self.result_
        attrs = {OUTPUT_ATTR: "ssm", "formulas": self.formula_text_(), "method": self.method, "coding": self.coding,
                 "n_trials": int(self.layout_.n), "n_subjects": int(len(self.subjects_)),
                 "data": str(data) if data is not None else "", "fit_seconds": float(getattr(self, "fit_seconds_",
                                                                                             np.nan))}
        return write_groups(path, groups, attrs)

    def loo(self, level: str = "trial"):
        """PSIS-LOO of a NUTS fit (:func:`neurorl.fitting.bayes.loo`)."""
        self._check_fitted()
        if not hasattr(self, "idata_"):
            raise ValueError("DDM.loo needs method='nuts'; for MAP fits use cross_validate(k)")
        from ..fitting.bayes import loo

        return loo(self.idata_, level, label="DDM")

    def __repr__(self) -> str:
        try:
            return f"DDM({self.formula_text_()}, method={self.method!r})"
        except Exception:  # noqa: BLE001 - repr must not fail on a bad specification
            return "DDM(<invalid specification>)"
