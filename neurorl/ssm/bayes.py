"""PyMC NUTS for DDM regressions: the same model as the MAP estimator, the same compiled density.

The PyMC model has the priors, the formulas (design matrices as constants), the non-centred subject effects and the
links as a PyTensor graph (compiled by PyTensor in seconds: no scan, no series); the Wiener log density of all trials
and its exact gradient with respect to the per-trial parameters come from one Op (:class:`DDMLoglikOp`) calling the
compiled kernel of :mod:`neurorl.ssm.kernel` -- the density defined once, in :mod:`neurorl.fitting.wiener`.

``nuts_sampler="pymc"`` (default) runs PyMC's NUTS in Python, one Op call (about 5-10 ms for 1,000 trials on a
loaded 2-core machine) per leapfrog step. ``nuts_sampler="numpyro"`` transpiles the whole model to JAX (the Op's JAX
form is the same ``wiener_logpdf`` traced with the JAX ops layer, differentiated by JAX) and runs numpyro's NUTS with
the chains vectorised: a few seconds of XLA compilation in every process, then much faster sampling.

Posterior variables (per parameter ``p`` with a formula): ``p`` (dim ``p_coef``: the fixed coefficients),
``p_sd`` (dim ``p_rcoef``) and ``p_offset`` (``subject, p_rcoef``). ``idata_.log_likelihood["loglik"]`` holds the
pointwise log density of every trial over dim ``obs`` with coordinates ``subject`` and ``trial``, computed after
sampling with the same kernel, so :func:`neurorl.fitting.bayes.loo` and :func:`neurorl.fitting.bayes.compare` work
on it. ``coefs_`` and ``group_sd_`` summarise the posterior (mean, sd, 2.5/97.5 % quantiles, R-hat, bulk ESS);
``theta_`` is the posterior mean of the unconstrained vector (MAP layout) and ``theta_draws_`` the pooled draws.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
import xarray as xr

from .formula import LINKS
from .kernel import PARAMS

__all__ = ["DDMLoglikOp", "fit_nuts"]


_OP_CLASS = None


def _op_class():
    global _OP_CLASS
    if _OP_CLASS is None:
        _OP_CLASS = _make_op_class()
    return _OP_CLASS


def _make_op_class():
    import pytensor.tensor as pt
    from pytensor.graph.basic import Apply
    from pytensor.graph.op import Op

    class DDMLoglikOp(Op):
        """``(loglik, grad) = op(P)``: the summed log density of all trials at per-trial parameters ``P`` ``(6, n)``
        and its gradient with respect to ``P`` (computed in the same call)."""

        __props__ = ("token",)

        def __init__(self, kernel, rt, response, weight):
            self.kernel, self.rt, self.response, self.weight = kernel, rt, response, weight
            self.token = id(self)

        def make_node(self, P):
            P = pt.as_tensor_variable(P)
            return Apply(self, [P], [pt.dscalar(), pt.dmatrix()])

        def perform(self, node, inputs, outputs):
            ll, g = self.kernel(np.asarray(inputs[0], dtype=float), self.rt, self.response, self.weight, order=1)
            outputs[0][0] = np.asarray(ll.sum(), dtype=float)
            outputs[1][0] = g

        def grad(self, inputs, output_grads):
            from pytensor.gradient import (
                DisconnectedType,
                grad_not_implemented,
            )

            (P,) = inputs
            g_ll, g_grad = output_grads
            if not isinstance(g_grad.type, DisconnectedType):
                return [grad_not_implemented(self, 0, P, "no second derivatives")]
            _, g = self(P)
            return [g_ll * g]

        def connection_pattern(self, node):
            return [[True, True]]

    try:  # the same density for PyMC's JAX samplers (numpyro): JAX differentiates it itself
        from pytensor.link.jax.dispatch import jax_funcify

        @jax_funcify.register(DDMLoglikOp)
        def _funcify(op, **kwargs):
            import jax
            import jax.numpy as jnp

            from .kernel import _trial_fn

            k = op.kernel
            one = jax.vmap(_trial_fn(k.lapse, k.rt_max), in_axes=(1, 0, 0))
            rt, resp, wt = (jnp.asarray(x, dtype=float) for x in (op.rt, op.response, op.weight))

            def f(P):
                return jnp.sum(one(P, rt, resp) * wt), jnp.zeros_like(P)

            return f
    except ImportError:  # pragma: no cover - PyTensor without its JAX backend
        pass
    return DDMLoglikOp


def DDMLoglikOp(kernel, rt, response, weight):
    """The PyTensor Op of the compiled kernel (PyTensor imported on first use)."""
    return _op_class()(kernel, rt, response, weight)


def _build(est, df, layout, kern):
    import pymc as pm
    import pytensor.tensor as pt

    loc, scale = est._prior_vectors(layout)
    S = layout.n_subjects
    coords = {"subject": est.subjects_}
    for p, b in layout.blocks.items():
        coords[f"{p}_coef"] = b["cols"]
        coords[f"{p}_rcoef"] = b["rcols"]
    subj = layout.subj
    with pm.Model(coords=coords) as model:
        rows = []
        for i, p in enumerate(PARAMS):
            if p not in layout.blocks:
                rows.append(pt.as_tensor_variable(np.full(layout.n, layout.fixed[p])))
                continue
            b = layout.blocks[p]
            beta = pm.Normal(p, mu=loc[b["beta"]], sigma=scale[b["beta"]], dims=f"{p}_coef")
            eta = pt.dot(pt.as_tensor_variable(b["X"]), beta)
            if b["rcols"]:
                sd = pm.HalfNormal(f"{p}_sd", sigma=scale[b["lsd"]], dims=f"{p}_rcoef")
                u = pm.Normal(f"{p}_offset", 0.0, 1.0, dims=("subject", f"{p}_rcoef"))
                eta = eta + pt.sum(pt.as_tensor_variable(b["Z"]) * (sd[None, :] * u)[subj], axis=1)
            val = LINKS[p].inv_pt(eta)
            if i == 0:
                val = val * layout.sign_v
            elif i == 2:
                val = pt.switch(layout.mirror_z, 1.0 - val, val)
            rows.append(val)
        P = pt.stack(rows)
        op = DDMLoglikOp(kern, df["_rt"].to_numpy(), df["_resp"].to_numpy(), np.ones(layout.n))
        ll, _ = op(P)
        pm.Potential("loglik_total", ll)
    return model, loc, scale, S


def _initvals(est, layout, df, loc, scale):
    """Chains start at the prior locations of the coefficients (t0: half the fastest RT), sds at 0.3 of their prior
    scales, offsets at 0 (PyMC's jitter moves them apart)."""
    theta = est._start(layout, df, (loc, scale))
    init = {}
    for p, b in layout.blocks.items():
        init[p] = theta[b["beta"]]
        if b["rcols"]:
            init[f"{p}_sd"] = np.exp(theta[b["lsd"]])
            init[f"{p}_offset"] = np.zeros((layout.n_subjects, len(b["rcols"])))
    return init


def _theta_from_posterior(post, layout):
    """``(n_draws, D)`` unconstrained vectors (MAP layout) from a stacked posterior."""
    n = post.sizes["sample"]
    out = np.zeros((n, layout.size))
    for p, b in layout.blocks.items():
        out[:, b["beta"]] = post[p].transpose("sample", ...).values
        if b["rcols"]:
            out[:, b["lsd"]] = np.log(post[f"{p}_sd"].transpose("sample", ...).values)
            out[:, b["u"]] = post[f"{p}_offset"].transpose("sample", "subject", ...).values.reshape(n, -1)
    return out


def fit_nuts(est, df, layout, kern):
    """Sample the DDM regression with PyMC's NUTS; sets the fitted attributes of ``est`` (module docstring)."""
    import arviz as az
    import pymc as pm

    from ..fitting.bayes import diagnose
    from ..tasks.base import as_rng

    t0 = time.perf_counter()
    model, loc, scale, S = _build(est, df, layout, kern)
    rng = as_rng(est.rng)
    seed = int(rng.integers(2 ** 31 - 1))
    # JAX is multithreaded: forked chain processes can deadlock, so chains run in this process unless the user asks
    # for more cores (then in spawned processes, which load the kernel from the disk cache)
    cores = 1 if est.cores is None else int(est.cores)
    extra = {"mp_ctx": "spawn"} if cores > 1 else {}
    if est.nuts_sampler == "numpyro":
        from ..backend import get_jax_ops

        get_jax_ops()  # 64-bit JAX
        extra = {"nuts_sampler": "numpyro", "nuts_sampler_kwargs": {"chain_method": "vectorized"}}
    elif est.nuts_sampler != "pymc":
        raise ValueError(f"DDM: nuts_sampler must be 'pymc' or 'numpyro', got {est.nuts_sampler!r}")
    with model:
        idata = pm.sample(draws=est.draws, tune=est.tune, chains=est.chains, cores=cores, **extra,
                          target_accept=est.target_accept, random_seed=seed, progressbar=est.progress,
                          initvals=_initvals(est, layout, df, loc, scale), compute_convergence_checks=False)
    est.sample_seconds_ = time.perf_counter() - t0
    post = idata.posterior.stack(sample=("chain", "draw"))
    thetas = _theta_from_posterior(post, layout)
    ll = np.empty((thetas.shape[0], layout.n))
    rt, resp, w = df["_rt"].to_numpy(), df["_resp"].to_numpy(), np.ones(layout.n)
    for i, th in enumerate(thetas):
        P, _ = layout.trial_params(th)
        ll[i] = kern(P, rt, resp, w, order=1)[0]
    C, Dr = idata.posterior.sizes["chain"], idata.posterior.sizes["draw"]
    coords = est._obs_coords(df)
    ll_ds = xr.Dataset({"loglik": (("chain", "draw", "obs"), ll.reshape(C, Dr, layout.n))},
                       coords={"chain": idata.posterior["chain"].values, "draw": idata.posterior["draw"].values,
                               **coords})
    idata.add_groups(log_likelihood=ll_ds)
    est.idata_ = idata
    est.theta_draws_ = thetas
    est.theta_ = thetas.mean(axis=0)
    names, rows, sd_names, sd_rows = [], [], [], []
    for p, b in layout.blocks.items():
        names += [f"{p}:{c}" for c in b["cols"]]
        rows += list(range(b["beta"].start, b["beta"].stop))
        sd_names += [f"{p}:{c}" for c in b["rcols"]]
        sd_rows += list(range(b["lsd"].start, b["lsd"].stop))
    fixed_vars = list(layout.blocks)
    sd_vars = [f"{p}_sd" for p, b in layout.blocks.items() if b["rcols"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = az.rhat(idata, var_names=fixed_vars + sd_vars)
        ess = az.ess(idata, var_names=fixed_vars + sd_vars)

    def flat(ds, vars_):
        return np.concatenate([np.atleast_1d(ds[v].values) for v in vars_]) if vars_ else np.zeros(0)

    def table(draws, index_name, labels, vars_):
        return xr.Dataset(
            {"estimate": (index_name, draws.mean(0)), "se": (index_name, draws.std(0, ddof=1)),
             "lower": (index_name, np.quantile(draws, 0.025, axis=0)),
             "upper": (index_name, np.quantile(draws, 0.975, axis=0)),
             "r_hat": (index_name, flat(rhat, vars_)), "ess_bulk": (index_name, flat(ess, vars_))},
            coords={index_name: labels}, attrs={"interval": "posterior 95 % (2.5 / 97.5 % quantiles)",
                                               "se": "posterior sd"})

    est.coefs_ = table(thetas[:, rows], "coef", names, fixed_vars)
    est.coefs_["param"] = ("coef", np.array([n.split(":", 1)[0] for n in names], dtype=object))
    est.group_sd_ = table(np.exp(thetas[:, sd_rows]), "rcoef", sd_names, sd_vars)
    est.subject_coefs_ = est._subject_coefs(est.theta_, layout)
    est.pointwise_loglik_ = xr.DataArray(ll.mean(0), dims="obs", coords=coords, name="loglik_posterior_mean")
    n_div = int(idata.sample_stats["diverging"].sum()) if "diverging" in idata.sample_stats else 0
    est.n_divergent_ = n_div
    est.converged_ = bool(np.all(est.coefs_["r_hat"] < 1.01) and
                          (len(sd_rows) == 0 or np.all(est.group_sd_["r_hat"] < 1.01)) and n_div == 0)
    try:
        diagnose(idata, var_names=fixed_vars + sd_vars, label="DDM")
    except Exception:  # noqa: BLE001 - diagnostics warn; a failure to diagnose must not lose the samples
        pass
