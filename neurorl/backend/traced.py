"""The whole data set's likelihood as one traceable JAX function, for samplers that compile the model in JAX.

:func:`traced_loglik` returns ``f(theta, valid) -> (n,)``, each subject's log-likelihood, built from the same
``step`` and ``trial_loglik`` as every other path (simulate, replay, :mod:`neurorl.backend.compiled`). Unlike the
blocked executables of :mod:`neurorl.backend.compiled` it is a pure function of its inputs, so a JAX sampler
(numpyro NUTS through ``pm.sample(nuts_sampler="numpyro")``) can trace it into its own program and take the
gradient in reverse mode (``jax.grad``) through one ``lax.scan``.

Ragged data do not pay for padding where it costs:

* the scan stops at the last valid trial of the longest subject (later trials are never visited), and carries every
  subject at once -- on a CPU a step over a few dozen subjects costs what a step over one does, so the number of
  sequential steps, not their width, sets the time;
* the observation model (``trial_loglik``; for RL-DDM the Wiener first-passage density, by far the most expensive
  part of a trial) is evaluated once per *valid* trial only: the scan's latents are gathered into a flat, packed
  vector of the data's trials (static indices, known when the model is built) and scored there, then summed per
  subject.

``valid`` stays an input (K-fold cross-validation changes it); trials outside the mask the function was built for
are never scored, so a new mask may only remove trials.
"""

from __future__ import annotations

import numpy as np

from ..agents.base import Agent
from ..schema import EnvSpec
from .layout import ThetaLayout, params_of

__all__ = ["traced_loglik"]

#: scan iterations fused per loop step (measured: 4 cuts the per-trial loop overhead; more lengthens compilation)
UNROLL = 4


def traced_loglik(agent: Agent, env: EnvSpec, layout: ThetaLayout, uniform: dict, obs: dict, x=None):
    """Each subject's log-likelihood as a pure JAX function ``f(theta, valid) -> (n,)`` (module docstring).

    Parameters
    ----------
    agent, env, layout
        The model, its task structure and the rows of ``theta`` ``(D, n)``.
    uniform : dict
        Observation arrays constant over trials and subjects (compiled in as constants).
    obs : dict
        Time-major observation arrays ``(T, n[, A])``, including ``valid``.
    x : array ``(T, n, C)``, optional
        Trial covariates of the layout.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    from .compiled import OBS_DTYPES
    from .jax_ops import JAX as ops

    valid0 = np.asarray(obs["valid"], dtype=bool)
    T, n = valid0.shape
    last = np.where(valid0.any(axis=0), T - np.argmax(valid0[::-1], axis=0), 0)
    L = max(1, int(last.max()))
    ti, si = np.nonzero(valid0[:L])  # the trials that can score, in packed order
    const = {k: np.asarray(v) for k, v in uniform.items() if k != "valid"}
    data = {k: np.asarray(v, dtype=OBS_DTYPES[k])[:L] for k, v in obs.items() if k not in const and k != "valid"}
    xs = np.asarray(x, dtype=float)[:L] if layout.has_covariates else np.zeros((L, n, 0))

    def with_const(o, lead):
        o = dict(o)
        for k, v in const.items():
            o[k] = jnp.broadcast_to(v, lead + v.shape)
        return o

    def params(theta, xt):
        return params_of(agent, layout, theta, xt, ops)

    def f(theta, valid):
        o = {**data, "valid": jnp.asarray(valid, dtype=bool)[:L]}
        s0 = agent.start(params(theta, xs[0]), env, n, ops)
        s0 = {k: jnp.broadcast_to(jnp.asarray(v, dtype=jnp.float64), jnp.shape(v)) for k, v in s0.items()}

        def body(st, inp):
            ot, xt = inp
            new, lat = agent.step(params(theta, xt), st, with_const(ot, (n,)), ops)
            return {k: new[k] for k in st}, lat

        _, lat = lax.scan(body, s0, (o, xs), unroll=UNROLL)
        # packed: one element per trial that can score, shaped (N, 1) like n subjects x 1 trial
        def pack(v):
            return v[ti, si][:, None]

        packed = {k: pack(v) for k, v in with_const(o, (L, n)).items()}
        lat_p = jax.tree_util.tree_map(pack, lat)
        p = {k: (v[ti, si] if jnp.ndim(v) == 2 else v[si]) for k, v in params(theta, xs).items()}
        ll = agent.trial_loglik(p, packed, lat_p, ops)[:, 0]
        return jnp.zeros(n, dtype=ll.dtype).at[si].add(ll)

    # jitted, so that a call outside a compiled sampler (numpyro's and PyMC's first evaluations run eagerly) is one
    # XLA program, not hundreds of one-operation programs compiled one by one (measured: 307 of them, 5.8 s); inside
    # the sampler's own program it is inlined
    f = jax.jit(f)

    D = layout.n_rows
    E = np.repeat(np.eye(D)[:, :, None], n, axis=2)  # (D directions, D rows, n)

    def value_and_grad(theta, valid):
        # forward mode: D tangents carried through the one scan (subjects are independent, so a direction that
        # moves row j of every subject gives each subject's own derivative); on a CPU the step's width is free
        def one(e):
            return jax.jvp(lambda th: f(th, valid), (theta,), (e,))

        ll, dll = jax.vmap(one, out_axes=(None, 0))(E)
        return ll, dll

    value_and_grad = jax.jit(value_and_grad)

    @jax.custom_vjp
    def loglik(theta, valid):
        return f(theta, valid)

    def fwd(theta, valid):
        ll, g = value_and_grad(theta, valid)
        return ll, (g, valid)

    def bwd(res, ct):
        g, valid = res
        return ct[None, :] * g, np.zeros(valid.shape, dtype=jax.dtypes.float0)

    loglik.defvjp(fwd, bwd)
    loglik.value_and_grad = value_and_grad
    return loglik
