"""Contract tests run over every registered task and agent.

New tasks and agents are picked up automatically from the registries.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.schema import SHARED_LATENTS

from graph_check import assert_compiled_matches_replay, assert_graph_matches_replay

TASKS = nr.list_tasks()
AGENTS = nr.list_agents()


def _pairs():
    out = []
    for a in AGENTS:
        for t in TASKS:
            if nr.make_agent(a).supports(nr.make_task(t)):
                out.append((a, t))
    return out


PAIRS = _pairs()


def _primary_task(agent_name):
    """The first supported task, preferring the mouse bandit."""
    agent = nr.make_agent(agent_name)
    for t in ["mouse_bandit"] + TASKS:
        if agent.supports(nr.make_task(t)):
            return t
    raise AssertionError(f"agent {agent_name} supports no registered task")


# ---------------------------------------------------------------- tasks
@pytest.mark.parametrize("task_name", TASKS)
def test_task_vectorised_step(task_name):
    task = nr.make_task(task_name)
    env = task.env
    rng = np.random.default_rng(0)
    ts = task.reset(5, rng)
    for _ in range(30):
        s = task.observe(ts)
        assert s.shape == (5,) and s.dtype.kind == "i"
        assert np.all((s >= 0) & (s < env.n_states))
        avail = env.available[s]
        # first available action per subject
        a = np.argmax(avail, axis=1)
        ts, out = task.step(ts, a, rng)
        assert out["reward"].shape == (5,) and np.all(np.isfinite(out["reward"]))
        assert out["done"].dtype == bool
        assert out["next_state"].shape == (5,)
        for k in task.covariates:
            assert k in out, f"covariate {k} missing from step output"


@pytest.mark.parametrize("task_name", TASKS)
def test_task_same_seed_same_sessions(task_name):
    agent = "q_learning" if nr.make_agent("q_learning").supports(nr.make_task(task_name)) else None
    if agent is None:
        pytest.skip("q_learning does not run on this task")
    a = nr.simulate(agent, task_name, n_subjects=2, n_trials=40, rng=7)
    b = nr.simulate(agent, task_name, n_subjects=2, n_trials=40, rng=7)
    assert a.trials.identical(b.trials)


@pytest.mark.parametrize("task_name", TASKS)
@pytest.mark.parametrize("suffix", [".nc", ".csv"])
def test_task_trials_round_trip(task_name, suffix, tmp_path):
    """Every task's simulated trials (with its covariates and structure) survive netCDF and CSV round trips."""
    agent = next(a for a in ["q_learning"] + AGENTS if nr.make_agent(a).supports(nr.make_task(task_name)))
    sim = nr.simulate(agent, task_name, n_subjects=2, n_trials=30, rng=1)
    path = nr.write_trials(sim.trials, tmp_path / f"trials{suffix}")
    back = nr.read_trials(path)
    assert back.identical(sim.trials)
    assert nr.from_table(nr.to_table(sim.trials)).identical(sim.trials)


@pytest.mark.parametrize("task_name", TASKS)
def test_task_gym_api(task_name):
    task = nr.make_task(task_name)
    env = task.make_env(seed=3)
    obs, info = env.reset()
    assert isinstance(obs, int) and isinstance(info, dict)
    for _ in range(20):
        a = int(np.argmax(task.env.available[obs]))
        obs, r, terminated, truncated, info = env.step(a)
        assert isinstance(r, float) and not truncated and "trial_end" in info
        if terminated:
            obs, info = env.reset()


@pytest.mark.parametrize("task_name", TASKS)
def test_task_rejects_bad_actions(task_name):
    task = nr.make_task(task_name)
    ts = task.reset(2, np.random.default_rng(0))
    with pytest.raises(ValueError, match="out of range"):
        task.step(ts, np.array([task.env.n_actions, 0]), np.random.default_rng(0))


@pytest.mark.parametrize("task_name", TASKS)
def test_task_generative_params(task_name):
    task = nr.make_task(task_name)
    gp = task.generative_params()
    assert gp["task"] == task_name
    rebuilt = nr.make_task(task_name, **{k: v for k, v in gp.items() if k != "task"})
    assert rebuilt.generative_params() == gp


# ---------------------------------------------------------------- agents x tasks
def test_every_agent_runs_somewhere():
    for a in AGENTS:
        _primary_task(a)


@pytest.mark.parametrize("agent_name,task_name", PAIRS)
def test_agent_on_task(agent_name, task_name):
    sim = nr.simulate(agent_name, task_name, n_subjects=3, n_trials=60, rng=11)
    lat, trials = sim.latents, sim.trials
    for name in SHARED_LATENTS:
        assert name in lat, f"shared latent {name!r} missing"
    pol = lat["policy"].values
    assert np.all(np.isfinite(pol))
    np.testing.assert_allclose(pol.sum(-1), 1.0, atol=1e-10)
    avail = trials["available"].values[trials["state"].values]
    assert np.all(pol[~avail] <= 1e-12), "probability on unavailable actions"
    assert np.all(lat["entropy"].values >= -1e-12)
    # shared entropy matches the policy
    p = np.where(pol > 0, pol, 1.0)
    np.testing.assert_allclose(lat["entropy"].values, -(pol * np.log(p)).sum(-1), atol=1e-9)
    for name in lat.data_vars:
        assert np.all(np.isfinite(lat[name].values)), f"latent {name!r} not finite"


@pytest.mark.parametrize("agent_name,task_name", PAIRS)
def test_replay_reproduces_simulation(agent_name, task_name):
    agent = nr.make_agent(agent_name)
    sim = nr.simulate(agent, task_name, n_subjects=3, n_trials=60, rng=5)
    lat = nr.replay(agent, sim.trials, sim.params)
    for name in lat.data_vars:
        np.testing.assert_array_equal(lat[name].values, sim.latents[name].values, err_msg=name)
    assert set(sim.latents.data_vars) - set(lat.data_vars) == set(agent.simulation_only)


@pytest.mark.parametrize("agent_name", AGENTS)
def test_same_seed_identical(agent_name):
    t = _primary_task(agent_name)
    a = nr.simulate(agent_name, t, n_subjects=2, n_trials=50, rng=3)
    b = nr.simulate(agent_name, t, n_subjects=2, n_trials=50, rng=3)
    assert a.trials.identical(b.trials) and a.latents.identical(b.latents)
    c = nr.simulate(agent_name, t, n_subjects=2, n_trials=50, rng=4)
    assert not a.trials["choice"].equals(c.trials["choice"]) or not a.trials["reward"].equals(c.trials["reward"])


@pytest.mark.parametrize("agent_name", AGENTS)
def test_entropy_is_log_n_at_zero_inverse_temperature(agent_name):
    agent = nr.make_agent(agent_name)
    names = {p.name for p in agent.params}
    null = {k: v for k, v in agent.null_policy_params.items() if k in names}
    assert null or agent.null_policy_params == {}, "null_policy_params names no parameter"
    sim = nr.simulate(agent, _primary_task(agent_name), n_subjects=2, n_trials=40, rng=0, params=null)
    avail = sim.trials["available"].values[sim.trials["state"].values]
    np.testing.assert_allclose(sim.latents["entropy"].values, np.log(avail.sum(-1)), atol=1e-6)


@pytest.mark.parametrize("agent_name", AGENTS)
def test_params_spec(agent_name):
    agent = nr.make_agent(agent_name)
    assert agent.params, "agent has no free parameters"
    for p in agent.params:
        x = p.to_unconstrained(p.default)
        np.testing.assert_allclose(p.to_constrained(x), p.default, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown parameter"):
        agent.resolve({"not_a_param": 1.0}, 2)


#: agents whose PyTensor graph check runs in the default suite; the others' (PyTensor compiles each rule for 20-150 s
#: on the CI machine) run with the slow tests. The PyTensor graph serves the nutpie sampler and symbolic checks; the
#: compiled (JAX) likelihood of every agent is checked in the default suite below.
PYTENSOR_DEFAULT = {"actor_critic", "distributional_td", "dra", "fq_learning", "gng_m1", "gng_m2", "gng_m3", "gng_m4",
                    "ideal_observer", "policy_compression", "q_learning", "rflr", "soft_q", "two_step_hybrid"}


@pytest.mark.parametrize("agent_name", [a if a in PYTENSOR_DEFAULT else pytest.param(a, marks=pytest.mark.slow)
                                        for a in AGENTS])
def test_pytensor_graph_matches_numpy_replay(agent_name):
    """The differentiable (PyTensor) path runs the same rule as replay."""
    agent = nr.make_agent(agent_name)
    sim = nr.simulate(agent, _primary_task(agent_name), n_subjects=3, n_trials=25, rng=2)
    assert_graph_matches_replay(agent, sim)


@pytest.mark.parametrize("agent_name", AGENTS)
def test_compiled_likelihood_matches_numpy_replay(agent_name):
    """The compiled (JAX) likelihood of the estimators runs the same rule as replay, with exact derivatives;
    70 trials cross a chunk boundary, so the state and its derivatives are carried between compiled calls."""
    agent = nr.make_agent(agent_name)
    sim = nr.simulate(agent, _primary_task(agent_name), n_subjects=3, n_trials=70, rng=2)
    assert_compiled_matches_replay(agent, sim)
