"""The agent's learning rule as a PyTensor graph (``scan`` over trials).

:func:`choice_loglik_graph` feeds the time-major observation arrays of
:func:`neurorl.simulate.observations` to ``pytensor.scan`` and runs the
agent's own ``decide``/``learn`` with the PyTensor backend, so the likelihood,
its exact gradient and the PyMC models share the one definition used by
``simulate`` and ``replay``.
"""

from __future__ import annotations

import numpy as np

from ..agents.base import Agent
from ..backend import get_pytensor_ops
from ..schema import EnvSpec

__all__ = ["choice_loglik_graph", "compile_choice_loglik"]


def choice_loglik_graph(agent: Agent, env: EnvSpec, obs_tm: dict, params: dict):
    """Per-trial log P(choice) as a ``(trial, subject)`` tensor.

    Parameters
    ----------
    agent : Agent
    env : EnvSpec
    obs_tm : dict
        Time-major observation arrays ``(T, n, ...)`` (``simulate.observations``).
    params : dict
        Parameter name -> PyTensor vector ``(n,)`` on the constrained scale.

    Invalid trials contribute 0 (they are masked, not dropped).
    """
    import pytensor
    import pytensor.tensor as pt

    ops = get_pytensor_ops()
    n = obs_tm["state"].shape[1]
    state0 = agent.start(params, env, n, ops)
    state_keys = sorted(state0)
    obs_keys = sorted(obs_tm)
    param_keys = sorted(params)
    seqs = [pt.as_tensor_variable(np.asarray(obs_tm[k])) for k in obs_keys]

    def fn(*args):
        obs = dict(zip(obs_keys, args[: len(obs_keys)]))
        rest = args[len(obs_keys):]
        s = dict(zip(state_keys, rest[: len(state_keys)]))
        p = dict(zip(param_keys, rest[len(state_keys):]))
        new, lat = agent.step(p, s, obs, ops)
        a1h = ops.onehot(obs["choice"], env.n_actions)
        ll = pt.switch(obs["valid"], pt.sum(lat["log_policy"] * a1h, axis=-1), 0.0)
        return [new[k] for k in state_keys] + [ll]

    outputs_info = [pt.as_tensor_variable(state0[k]).astype("float64") for k in state_keys] + [None]
    outs = pytensor.scan(
        fn, sequences=seqs, outputs_info=outputs_info, non_sequences=[params[k] for k in param_keys],
        strict=False, return_updates=False,
    )
    return outs[-1]


def compile_choice_loglik(agent: Agent, env: EnvSpec, obs_tm: dict, *, mode=None):
    """Compile ``f(theta) -> (loglik, grad)`` on the unconstrained scale.

    ``theta`` is an array ``(n_params, n_subjects)`` in the order of
    ``agent.params``; ``loglik`` is the total over subjects and trials and
    ``grad`` its exact gradient (reverse-mode autodiff through the scan).
    """
    import pytensor
    import pytensor.tensor as pt

    ops = get_pytensor_ops()
    n = obs_tm["state"].shape[1]
    theta = pt.dmatrix("theta")
    params = {p.name: p.to_constrained(theta[i], ops) for i, p in enumerate(agent.params)}
    for k, v in agent.fixed.items():
        params[k] = pt.as_tensor_variable(np.full(n, v))
    ll = choice_loglik_graph(agent, env, obs_tm, params).sum()
    grad = pytensor.grad(ll, theta)
    return pytensor.function([theta], [ll, grad], mode=mode)
