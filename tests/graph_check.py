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
