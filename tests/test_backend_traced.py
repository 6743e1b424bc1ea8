"""The traced whole-data likelihood (JAX samplers) equals the compiled blocked one, on ragged data."""

import numpy as np
import pytest
import xarray as xr

import neurorl as nr
from neurorl.backend.layout import ThetaLayout
from neurorl.backend.traced import traced_loglik
from neurorl.fitting.graph import compiled_loglik, uniform_observations
from neurorl.fitting.joint import WithRT
from neurorl.fitting.observation import WienerRT
from neurorl.simulate import observations

jax = pytest.importorskip("jax")


def _ragged(agent, task, n, T, params, seed):
    rng = np.random.default_rng(seed)
    sim = nr.simulate(agent, task, n_subjects=n, n_trials=T, params=params, rng=seed)
    trials = sim.trials.copy()
    length = rng.integers(T // 3, T + 1, n)
    length[0] = T
    keep = trials["trial"] < xr.DataArray(length, dims="subject")
    valid = (trials["valid"] & keep).values
    valid[1, 5] = False  # a missed trial inside a subject
    trials["valid"] = (trials["valid"].dims, valid)
    return trials


@pytest.mark.parametrize("which", ["rlddm", "covariate"])
def test_traced_equals_compiled_value_and_gradient(which):
    n, T = 6, 90
    base = nr.make_agent("q_learning", q0=0.5)
    task = nr.make_task("bandit", p=(0.7, 0.3))
    if which == "rlddm":
        agent = WithRT(base, WienerRT())
        params = {p.name: p.default for p in agent.params}
        params["alpha"] = np.linspace(0.2, 0.6, n)
        layout = ThetaLayout.plain(agent)
        trials = _ragged(agent, task, n, T, params, 3)
        x = None
        theta = np.stack([p.to_unconstrained(np.broadcast_to(params[p.name], n).astype(float))
                          for p in agent.params])
    else:
        agent = base
        trials = _ragged(agent, task, n, T, {"alpha": np.linspace(0.2, 0.6, n), "beta": 3.0}, 4)
        layout = ThetaLayout.with_covariates(agent, {"beta": ("z",)})
        x = np.random.default_rng(5).normal(size=(T, n, 1))
        theta = np.array([np.full(n, -0.5), np.full(n, 1.0), np.linspace(-0.3, 0.3, n)])
    env, obs = observations(trials)
    uniform = {k: v for k, v in uniform_observations(obs).items() if k != "valid"}
    ref = compiled_loglik(agent, env, order=1, layout=layout, uniform=uniform, quiet=True)(theta, obs, x)
    f = traced_loglik(agent, env, layout, uniform, obs, x)
    ll = np.asarray(jax.jit(f)(theta, obs["valid"]))
    np.testing.assert_allclose(ll, ref["loglik"], rtol=1e-10, atol=1e-10)
    # the exact gradient, both through jax.grad (the sampler's path: custom VJP) and directly
    g = np.asarray(jax.jit(jax.grad(lambda t: f(t, obs["valid"]).sum()))(theta))
    np.testing.assert_allclose(g, ref["grad"], rtol=1e-9, atol=1e-9)
    # the tangents cross the scan only along the rows its scored latents depend on: for RL-DDM the learning rate
    # (v_scale, a, w and t0 enter the Wiener density only); JAX's own reverse mode through the plain function agrees
    want = (0,) if which == "rlddm" else (0, 1, 2)
    assert f.scan_rows == want
    g_rev = np.asarray(jax.jit(jax.grad(lambda t: f.plain(t, obs["valid"]).sum()))(theta))
    np.testing.assert_allclose(g, g_rev, rtol=1e-10, atol=1e-10)
    # a K-fold mask (trials removed) scores only the trials it keeps
    fold = np.asarray(obs["valid"]).copy()
    fold[10:30] = False
    ref_fold = compiled_loglik(agent, env, order=0, layout=layout, uniform=uniform, quiet=True)(
        theta, {**obs, "valid": fold}, x)
    np.testing.assert_allclose(np.asarray(f(theta, fold)), ref_fold["loglik"], rtol=1e-10, atol=1e-10)


def test_loglik_op_jax_dispatch_matches_perform():
    """The PyTensor Op compiled by PyTensor's JAX linker (numpyro's path) gives the Op's own numbers."""
    import pytensor
    import pytensor.tensor as pt

    from neurorl.backend.pytensor_op import LoglikOp

    agent = nr.make_agent("q_learning", q0=0.5)
    trials = _ragged(agent, nr.make_task("bandit", p=(0.7, 0.3)), 4, 40, {"alpha": 0.3, "beta": 3.0}, 7)
    env, obs = observations(trials)
    uniform = {k: v for k, v in uniform_observations(obs).items() if k != "valid"}
    op = LoglikOp(agent, env, ThetaLayout.plain(agent), uniform, obs, quiet=True)
    theta = pt.dmatrix("theta")
    valid = pt.as_tensor_variable(np.asarray(obs["valid"]))
    ll, grad = op(theta, valid)
    value = np.array([[-0.4, -0.1, 0.2, 0.5], [1.0, 1.2, 0.8, 0.9]])
    want = pytensor.function([theta], [ll, grad])(value)
    got = pytensor.function([theta], [ll, grad], mode="JAX")(value)
    for a, b in zip(got, want):
        np.testing.assert_allclose(np.asarray(a), b, rtol=1e-10, atol=1e-10)


def test_jax_ops_make_cpu_dispatch_synchronous_in_a_fresh_process():
    """Importing the JAX backend turns JAX's asynchronous CPU dispatch off before the CPU client exists (a hand-off
    per call to an XLA worker thread; docs/architecture.md), and JAX still computes."""
    import subprocess
    import sys

    code = ("import neurorl.backend.jax_ops, jax, jax.numpy as jnp\n"
            "assert jax.config.values['jax_cpu_enable_async_dispatch'] is False\n"
            "print(float(jnp.sum(jnp.arange(4.0) ** 2)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "14.0"


def test_jax_ops_order_xla_cpu_kernels_in_program_order_unless_the_user_says_otherwise():
    """Importing the JAX backend appends the program-order scheduler option to ``XLA_FLAGS`` in a fresh process
    (docs/architecture.md), keeps a user's own setting of it, and leaves XLA_FLAGS alone once the CPU backend runs;
    the cache key of an executable follows XLA_FLAGS."""
    import os
    import subprocess
    import sys

    import jaxlib

    from neurorl.backend import jax_ops

    version = tuple(int(x) for x in jaxlib.__version__.split(".")[:3])
    expected = jax_ops.SCHEDULER_JAXLIB[0] <= version < jax_ops.SCHEDULER_JAXLIB[1]
    show = ("import os, neurorl.backend.jax_ops, jax.numpy as jnp\n"
            "print(os.environ.get('XLA_FLAGS', ''))\n"
            "assert float(jnp.sum(jnp.arange(4.0) ** 2)) == 14.0\n")
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}

    def flags(code, **extra):
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                              env={**env, **extra}).stdout.strip().splitlines()[-1:]

    assert flags(show) == ([jax_ops._SCHEDULER_FLAG] if expected else [])
    own = "--xla_cpu_enable_concurrency_optimized_scheduler=true"
    assert flags(show, XLA_FLAGS=own) == [own]
    started = "import jax.numpy as jnp\njnp.ones(2).sum()\n" + show
    assert flags(started) == []
    code = ("import os, sys\nfrom neurorl.backend.cache import executable_key\n"
            "a = executable_key('s')\nos.environ['XLA_FLAGS'] = '--xla_cpu_enable_fast_math=true'\n"
            "print(a != executable_key('s'))\n")
    assert flags(code) == ["True"]
