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
  vector of the data's trials (static indices, known when the model is built; subject-major, so that the per-subject
  sums are a sorted segment sum; the observations are packed once, in NumPy) and scored there.

The gradient is exact, in forward mode, and cheap where the rule allows: the latents the observation model reads and
the parameter rows they depend on are found once from the traced programs (:func:`_scored_latents`); the scan emits
only those latents and carries tangents only along those rows (RL-DDM: the learning rate), and the observation model
takes every direction after the scan, in one vectorised pass.

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
    si, ti = np.nonzero(valid0[:L].T)  # the trials that can score, in packed (subject-major) order
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

    def latents(theta, valid, keep=None):
        """The scan: the latents of every trial that can score, packed ``(N, 1)``; with ``keep`` (leaf indices of
        the latents' pytree), only those leaves, as a list -- a scan that emits every latent of the rule costs
        several times one that emits the few the observation model reads (RL-DDM: 0.61 ms against 0.13 ms)."""
        o = {**data, "valid": jnp.asarray(valid, dtype=bool)[:L]}
        s0 = agent.start(params(theta, xs[0]), env, n, ops)
        s0 = {k: jnp.broadcast_to(jnp.asarray(v, dtype=jnp.float64), jnp.shape(v)) for k, v in s0.items()}

        def body(st, inp):
            ot, xt = inp
            new, lat = agent.step(params(theta, xt), st, with_const(ot, (n,)), ops)
            if keep is not None:
                leaves = jax.tree_util.tree_leaves(lat)
                lat = [leaves[i] for i in keep]
            return {k: new[k] for k in st}, lat

        _, lat = lax.scan(body, s0, (o, xs), unroll=UNROLL)
        return jax.tree_util.tree_map(pack, lat)

    def pack(v):  # one element per trial that can score, shaped (N, 1) like n subjects x 1 trial
        return v[ti, si][:, None]

    # the observations packed once, here (NumPy): only ``valid`` is an input; packing every observation array
    # in the program cost more than the Wiener density itself (0.59 ms against 0.2 ms for RL-DDM's 6,519 trials)
    packed_data = {k: np.asarray(v)[ti, si][:, None] for k, v in data.items()}
    packed_data.update({k: np.broadcast_to(v, (len(ti), 1) + v.shape) for k, v in const.items()})

    def score(theta, valid, lat_p):
        """Each subject's log-likelihood from the packed latents (the observation model, vectorised)."""
        packed = {**packed_data, "valid": pack(jnp.asarray(valid, dtype=bool)[:L])}
        p = {k: (v[ti, si] if jnp.ndim(v) == 2 else v[si]) for k, v in params(theta, xs).items()}
        ll = agent.trial_loglik(p, packed, lat_p, ops)[:, 0]
        return jax.ops.segment_sum(ll, si, num_segments=n, indices_are_sorted=True)

    D = layout.n_rows
    needed, rows, shapes, tree = _scored_latents(latents, score, D, n, valid0)

    def scored(theta, valid):
        """The packed latents the observation model reads (a list, in ``needed`` order)."""
        return latents(theta, valid, needed)

    def score_from(theta, valid, kept):
        """``score`` of the kept latents; the others, which it does not read, are zeros of their shapes."""
        leaves = [jnp.zeros(x.shape, x.dtype) for x in shapes]
        for i, v in zip(needed, kept):
            leaves[i] = v
        return score(theta, valid, jax.tree_util.tree_unflatten(tree, leaves))

    def f(theta, valid):
        return score_from(theta, valid, scored(theta, valid))

    # jitted, so that a call outside a compiled sampler (numpyro's and PyMC's first evaluations run eagerly) is one
    # XLA program, not hundreds of one-operation programs compiled one by one (measured: 307 of them, 5.8 s); inside
    # the sampler's own program it is inlined
    f = jax.jit(f)

    E = np.repeat(np.eye(D)[:, :, None], n, axis=2)  # (D directions, D rows, n)
    ER = E[list(rows)]

    def value_and_grad(theta, valid):
        # forward mode: tangents carried through the one scan (subjects are independent, so a direction that moves
        # row j of every subject gives each subject's own derivative; on a CPU the step's width is nearly free),
        # but only along the rows the scored latents depend on (for RL-DDM the learning rate: the drift scale,
        # boundary, start point and non-decision time enter the density only, not the learning rule); the
        # observation model then takes every direction, in one vectorised pass
        if rows:
            def one(e):
                return jax.jvp(lambda th: scored(th, valid), (theta,), (e,))

            kept, d_r = jax.vmap(one, out_axes=(None, 0))(ER)
        else:
            kept, d_r = scored(theta, valid), None
        flt = [j for j, v in enumerate(kept) if jnp.issubdtype(v.dtype, jnp.floating)]
        full = []
        for j in flt:
            z = jnp.zeros((D,) + kept[j].shape, kept[j].dtype)
            full.append(z.at[np.asarray(rows)].set(d_r[j]) if rows else z)

        def g(th, lf):
            new = list(kept)
            for j, v in zip(flt, lf):
                new[j] = v
            return score_from(th, valid, new)

        def dir_j(e, dl):
            return jax.jvp(g, (theta, [kept[j] for j in flt]), (e, dl))

        ll, dll = jax.vmap(dir_j, out_axes=(None, 0))(E, full)
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
    loglik.plain = f  # the same function without the custom derivative (JAX differentiates it itself; for checks)
    loglik.scan_rows = rows
    return loglik


def _scored_latents(latents, score, D: int, n: int, valid):
    """Which latents the observation model reads and which rows of ``theta`` they depend on, found from the traced
    programs (dependency analysis, not numbers): the leaves of the packed latents that ``score`` reads, then the
    rows the scan needs for them, by JAX's dead-code elimination (which follows the scan's carried state).

    Returns ``(needed leaf indices, rows, leaf shapes, tree structure)``."""
    import jax
    import jax.numpy as jnp
    from jax.interpreters.partial_eval import dce_jaxpr

    from ..fitting.joint import _reaching

    theta = np.zeros((D, n))
    shapes, tree = jax.tree_util.tree_flatten(jax.eval_shape(latents, theta, valid))
    zeros = [jnp.zeros(x.shape, x.dtype) for x in shapes]
    read = jax.make_jaxpr(lambda *ls: score(theta, valid, jax.tree_util.tree_unflatten(tree, ls)))(*zeros)
    used = _reaching(read.jaxpr)
    needed = tuple(i for i, v in enumerate(read.jaxpr.invars) if v in used)
    if not needed:
        return needed, (), shapes, tree
    # rows as separate inputs (params_of only indexes theta), so that the scan takes each as its own operand
    scan = jax.make_jaxpr(lambda *r: latents(r, valid, needed))(*theta)
    _, used_rows = dce_jaxpr(scan.jaxpr, [True] * len(needed))
    return needed, tuple(j for j in range(D) if used_rows[j]), shapes, tree
