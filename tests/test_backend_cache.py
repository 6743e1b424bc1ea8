"""The compiled likelihood: built once per machine, loaded by later processes, any data size, exact values."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import neurorl as nr
from neurorl.backend.compiled import SUBJECT_BLOCKS, TRIAL_CHUNK

SUBJECT_BLOCK = SUBJECT_BLOCKS[0]
from neurorl.fitting.graph import compiled_loglik, uniform_observations
from neurorl.simulate import observations

# one fresh process: compile (or load) the order-1 likelihood of q_learning with the given options and report
PROBE = """
import json, sys
import numpy as np
import neurorl as nr
from neurorl.fitting.graph import compiled_loglik
from neurorl.simulate import observations
opts = json.loads(sys.argv[1])
agent = nr.make_agent("q_learning", **opts)
sim = nr.simulate(agent, "bandit", n_subjects=int(sys.argv[2]), n_trials=int(sys.argv[3]), rng=4)
env, obs = observations(sim.trials)
f = compiled_loglik(agent, env, order=1)
theta = np.zeros((len(agent.params), sim.trials.sizes["subject"]))
out = f(theta, obs)
print(json.dumps({"from_cache": f.from_cache, "loglik": out["loglik"].tolist()}))
"""


def _probe(cache, opts=None, n=3, T=40, devices=None):
    env = dict(os.environ, NEURORL_CACHE_DIR=str(cache))
    if devices:  # JAX's CPU split into several devices, as for numpyro's parallel chains
        env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env.pop("NEURORL_QUIET", None)
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(opts or {}), str(n), str(T)], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1]), res.stderr


def test_second_process_loads_from_cache_and_option_change_recompiles(tmp_path):
    first, err1 = _probe(tmp_path)
    assert first["from_cache"] is False
    assert "compiling q_learning likelihood and gradient (first use on this machine)" in err1
    # a new process, other data sizes (more subjects than one block, more trials than one chunk): loaded
    second, err2 = _probe(tmp_path, n=SUBJECT_BLOCK + 5, T=TRIAL_CHUNK + 7)
    assert second["from_cache"] is True
    assert "loading compiled q_learning likelihood and gradient from the cache" in err2
    # the same data as the first process: the loaded function gives the same numbers
    again, _ = _probe(tmp_path)
    assert again["from_cache"] is True and again["loglik"] == first["loglik"]
    # a changed agent option is another function: compiled, not loaded
    other, err3 = _probe(tmp_path, {"q0": 0.5})
    assert other["from_cache"] is False and "first use on this machine" in err3
    assert not np.allclose(other["loglik"], first["loglik"])
    # the cache command lists and clears; after clearing, the next process compiles again
    env = dict(os.environ, NEURORL_CACHE_DIR=str(tmp_path))
    info = subprocess.run([sys.executable, "-m", "neurorl.cli", "cache", "info"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert info.returncode == 0 and "compiled model structures: 2" in info.stdout, info.stdout + info.stderr
    assert "q0=0.5" in info.stdout
    cleared = subprocess.run([sys.executable, "-m", "neurorl.cli", "cache", "clear"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    assert not (tmp_path / "exec").exists()
    after, _ = _probe(tmp_path)
    assert after["from_cache"] is False and after["loglik"] == first["loglik"]


def test_processes_with_other_device_counts_keep_their_own_executables(tmp_path):
    # an executable built with two CPU devices refuses to run with one (and the reverse); before the device count
    # was part of the key, the two kinds of process overwrote each other's entry and compiled every time
    two, _ = _probe(tmp_path, devices=2)
    one, _ = _probe(tmp_path)
    assert two["from_cache"] is False and one["from_cache"] is False
    assert _probe(tmp_path, devices=2)[0]["from_cache"] is True
    assert _probe(tmp_path)[0]["from_cache"] is True
    np.testing.assert_allclose(two["loglik"], one["loglik"], rtol=1e-12)


def test_damaged_cache_entry_is_a_miss_not_an_error(tmp_path):
    _probe(tmp_path)
    for f in (tmp_path / "exec").iterdir():
        f.write_bytes(b"not an executable")
    res, _ = _probe(tmp_path)
    assert res["from_cache"] is False


@pytest.mark.parametrize("n,T", [(1, 1), (SUBJECT_BLOCK, TRIAL_CHUNK), (SUBJECT_BLOCK + 1, 2 * TRIAL_CHUNK + 1)])
def test_any_data_size_matches_replay_with_ragged_and_missed_trials(n, T):
    """Blocks and chunks are an implementation detail: per-trial values equal replay's on ragged data with
    missed trials, for sizes at and across the block and chunk boundaries."""
    agent = nr.make_agent("q_learning", perseveration=True)
    sim = nr.simulate(agent, "bandit", n_subjects=n, n_trials=T, rng=7)
    trials = sim.trials.copy()
    valid = trials["valid"].values.copy()
    rng = np.random.default_rng(0)
    valid &= rng.random(valid.shape) > 0.1  # missed trials
    for i in range(n):  # ragged: subject i stops early
        valid[i, rng.integers(1, T + 1):] = False
    valid[:, 0] = True
    trials["valid"] = (trials["valid"].dims, valid)
    env, obs = observations(trials)
    f = compiled_loglik(agent, env, order=2, uniform=uniform_observations(obs))
    theta = np.stack([p.to_unconstrained(sim.params[p.name].values) for p in agent.params])
    out = f(theta, obs)
    lat = nr.replay(agent, trials, sim.params)
    chosen = np.take_along_axis(lat["policy"].values, trials["choice"].values[..., None], -1)[..., 0]
    expect = np.where(valid, np.log(chosen), 0.0)
    np.testing.assert_allclose(out["pointwise"].T, expect, rtol=1e-10, atol=1e-12)
    assert out["grad"].shape == theta.shape and out["hess"].shape == (theta.shape[0],) * 2 + (n,)
    np.testing.assert_allclose(out["hess"], np.swapaxes(out["hess"], 0, 1), rtol=1e-8, atol=1e-10)


# one fresh process: a tiny hierarchical fit with PyMC's own NUTS (PyTensor's compile folder is the test's)
BAYES_PROBE = """
import json, warnings
warnings.simplefilter("ignore")
import neurorl as nr
from neurorl.fitting.bayes import fit_bayes
sim = nr.simulate("q_learning", "bandit", n_subjects=2, n_trials=15, rng=3)
fit = fit_bayes("q_learning", sim.trials, sampler="pymc", draws=3, tune=3, chains=1, cores=1, progress=False,
                random_seed=0, log_likelihood=False)
print(json.dumps({"draws": int(fit.idata_.posterior.sizes["draw"])}))
"""


def test_pymc_sampler_builds_no_c_module(tmp_path):
    """PyMC's own functions (priors, transforms, trace) go through PyTensor's JAX backend: sampling builds no C
    module in PyTensor's compile folder (whose start-up and lock cost seconds to minutes per process)."""
    pytest.importorskip("pymc")
    compiledir = tmp_path / "pytensor"
    env = dict(os.environ, NEURORL_CACHE_DIR=str(tmp_path / "cache"), PYTENSOR_FLAGS=f"base_compiledir={compiledir}")
    res = subprocess.run([sys.executable, "-c", BAYES_PROBE], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout.strip().splitlines()[-1])["draws"] == 3
    # at most the lazy linker's own extension, which PyTensor builds once per folder
    built = [p for p in compiledir.rglob("mod.*") if "lazylinker_ext" not in p.parts] if compiledir.exists() else []
    assert built == []


XLA_PROBE = """
import json, os, sys
import jax, jax.numpy as jnp
from neurorl.backend import cache

def listing(d):
    return sorted(os.listdir(d)) if d and os.path.isdir(d) else []

with cache.xla_cache() as where:
    jax.jit(lambda x: jnp.cumsum(jnp.sin(x)) @ x)(jnp.arange(7.0)).block_until_ready()
inside = listing(where)
after = jax.config.jax_compilation_cache_dir
with cache.xla_cache(), cache.no_xla_cache():
    jax.jit(lambda x: jnp.cumsum(jnp.cos(x)) @ x)(jnp.arange(5.0)).block_until_ready()
off = listing(where)
with cache.xla_cache():
    jax.jit(lambda x: jnp.cumsum(jnp.tan(x)) @ x)(jnp.arange(3.0)).block_until_ready()
print(json.dumps([where, inside, after, off, listing(where)]))
"""


def test_xla_cache_keeps_jax_programs_in_its_block_only_and_clear_removes_them(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env["NEURORL_CACHE_DIR"] = str(tmp_path / "nc")
    where, inside, after, off, again = json.loads(subprocess.run(
        [sys.executable, "-c", XLA_PROBE], env=env, capture_output=True, text=True, check=True).stdout)
    assert where == str(tmp_path / "nc" / "xla")
    assert len(inside) >= 1 and all(f.startswith("jit_") for f in inside)  # kept by JAX's persistent cache
    assert after is None  # the setting is restored after the block
    assert off == inside  # no_xla_cache: neurorl's own compilations never go through it
    assert len(again) > len(inside)  # and the cache works again after it
    # a cache directory the user configured is used as it is
    mine = {**env, "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "mine")}
    own = subprocess.run([sys.executable, "-c", XLA_PROBE], env=mine, capture_output=True, text=True, check=True)
    assert json.loads(own.stdout)[0] == str(tmp_path / "mine")
    subprocess.run([sys.executable, "-m", "neurorl.cli", "cache", "clear"], env=env, capture_output=True, check=True)
    assert not (tmp_path / "nc" / "xla").exists()
