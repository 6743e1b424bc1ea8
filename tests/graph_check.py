"""Shared check: the PyTensor likelihood graph runs the same rule as NumPy replay."""

from __future__ import annotations

import numpy as np

import neurorl as nr


def assert_graph_matches_replay(agent, sim, *, subject: int = 0):
    """Log-likelihood of the compiled graph equals replay's; its gradient equals central finite differences
    for every parameter of one subject."""
    from pytensor.compile.mode import Mode

    from neurorl.fitting.graph import compile_choice_loglik
    from neurorl.simulate import observations

    env, obs = observations(sim.trials)
    f = compile_choice_loglik(agent, env, obs, mode=Mode(linker="py", optimizer=None))
    theta = np.stack([p.to_unconstrained(sim.params[p.name].values) for p in agent.params])
    ll, grad = f(theta)
    lat = nr.replay(agent, sim.trials, sim.params)
    chosen = np.take_along_axis(lat["policy"].values, sim.trials["choice"].values[..., None], -1)[..., 0]
    np.testing.assert_allclose(ll, np.log(chosen).sum(), rtol=1e-9)
    assert grad.shape == theta.shape and np.all(np.isfinite(grad))
    h = 1e-5
    for i, p in enumerate(agent.params):
        e = np.zeros_like(theta)
        e[i, subject] = h
        fd = (f(theta + e)[0] - f(theta - e)[0]) / (2 * h)
        np.testing.assert_allclose(grad[i, subject], fd, rtol=1e-4, atol=1e-6, err_msg=p.name)


def assert_compiled_matches_replay(agent, sim, *, subject: int = 0):
    """The compiled (JAX) likelihood of the estimators equals replay's log-likelihood per subject and per
    trial; its exact gradient equals central differences of its value and its exact Hessian central
    differences of its gradient, for every parameter of one subject (T = 25 trials spans no chunk boundary,
    so a second call on 70 trials checks the state carried across chunks)."""
    from neurorl.fitting.graph import compiled_loglik, uniform_observations
    from neurorl.simulate import observations

    env, obs = observations(sim.trials)
    uniform = uniform_observations(obs)
    f = compiled_loglik(agent, env, order=2, uniform=uniform)
    theta = np.stack([p.to_unconstrained(sim.params[p.name].values) for p in agent.params])
    out = f(theta, obs)
    lat = nr.replay(agent, sim.trials, sim.params)
    chosen = np.take_along_axis(lat["policy"].values, sim.trials["choice"].values[..., None], -1)[..., 0]
    logp = np.where(sim.trials["valid"].values, np.log(chosen), 0.0)
    np.testing.assert_allclose(out["pointwise"].T, logp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(out["loglik"], logp.sum(axis=1), rtol=1e-9)
    f0 = compiled_loglik(agent, env, order=0, uniform=uniform)
    h = 1e-5
    for i, p in enumerate(agent.params):
        e = np.zeros_like(theta)
        e[i, subject] = h
        fd = (f0(theta + e, obs)["loglik"][subject] - f0(theta - e, obs)["loglik"][subject]) / (2 * h)
        np.testing.assert_allclose(out["grad"][i, subject], fd, rtol=1e-4, atol=1e-6, err_msg=p.name)
        fdh = (f(theta + e, obs)["grad"][:, subject] - f(theta - e, obs)["grad"][:, subject]) / (2 * h)
        np.testing.assert_allclose(out["hess"][:, i, subject], fdh, rtol=1e-3, atol=1e-5, err_msg=p.name)
