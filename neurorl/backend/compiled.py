"""The compiled likelihood: the agent's learning rule in ``jax.lax.scan``, built once per machine.

:func:`jax_loglik` returns a :class:`JaxLoglik`, called as
``f(theta, obs_tm, x) -> {"loglik", "pointwise"[, "grad"[, "hess"]]}`` exactly
like the PyTensor functions of :mod:`neurorl.fitting.graph` that it replaces in
the estimators: per-subject log-likelihood ``(m,)``, per-trial terms ``(T, m)``,
and exact first and second derivatives ``(D, m)`` / ``(D, D, m)`` of each
subject's log-likelihood with respect to its own column of ``theta`` ``(D, m)``.

Why these choices (measured in docs/architecture.md):

* **Fixed blocks, any data size.** XLA compiles for static shapes, so a data set
  is cut into blocks of subjects (:data:`SUBJECT_BLOCKS`: 32, or 128 for many
  rows) and chunks of :data:`TRIAL_CHUNK` trials; the agent state and its derivatives are carried from one chunk to the
  next by a Python loop. One executable per model structure and derivative order
  therefore serves every number of subjects and trials, and the on-disk cache
  (:mod:`neurorl.backend.cache`) makes it compile once per machine. Padding
  (a partial last block or chunk) is filled with copies of real trials marked
  invalid, which leave the state unchanged and score 0. Ragged subjects are
  sorted by length, and a block stops after the chunk holding its last valid
  trial, so short subjects do not pay for the longest one.
* **Forward-mode derivatives.** Because the state crosses chunk boundaries, the
  derivatives are carried forward with it: the gradient as ``D`` tangents of the
  state (one ``jax.jvp`` along each parameter direction, vectorised with
  ``vmap``), the Hessian as ``D x D`` second-order tangents (a ``jvp`` of that).
  Subjects are independent, so a direction that moves parameter ``j`` of every
  subject at once gives each subject's own derivative. Order 0, 1 and 2 are
  separate executables: a fit that needs values and gradients never compiles a
  Hessian.
* **Observation arrays that are the same on every trial** (``uniform``, e.g.
  ``done = 1`` in a bandit) are compiled in as constants, as before, so XLA
  drops the terms they make irrelevant.
"""

from __future__ import annotations

import sys
import threading
import time

import numpy as np

from ..agents.base import Agent
from ..schema import EnvSpec
from .layout import ThetaLayout, params_of

__all__ = ["OBS_DTYPES", "SUBJECT_BLOCKS", "TRIAL_CHUNK", "JaxLoglik", "clear_memory_cache", "jax_loglik"]

#: subjects per compiled call (rows of theta): small blocks for few rows, large ones for many (each size is
#: compiled on first use; measured in docs/architecture.md)
SUBJECT_BLOCKS = (32, 128)
#: trials per compiled call; the state is carried between chunks
TRIAL_CHUNK = 64

OBS_DTYPES = {
    "state": "int64", "items": "int64", "avail": "bool", "known": "bool", "known_value": "float64",
    "valid": "bool", "choice": "int64", "chosen_item": "int64", "reward": "float64", "done": "float64",
    "next_state": "int64", "next_items": "int64", "next_avail": "bool", "next_known": "bool",
    "next_known_value": "float64", "rt": "float64", "scored": "bool", "loss": "float64",
}
_PER_ACTION = ("items", "avail", "known", "known_value", "next_items", "next_avail", "next_known", "next_known_value")

_MEMORY: dict = {}
_LOCK = threading.Lock()


def clear_memory_cache() -> None:
    """Forget the executables loaded in this process (the on-disk cache stays)."""
    _MEMORY.clear()


def _env_key(env: EnvSpec):
    return (env.n_states, env.n_actions, env.n_items, np.asarray(env.item).tobytes(),
            np.asarray(env.available).tobytes(), np.asarray(env.known_value, float).tobytes())


def structure_key(agent: Agent, env: EnvSpec, order: int, layout: ThetaLayout, uniform: dict) -> tuple:
    """What makes two compiled likelihoods different (never the data's size)."""
    structure = (layout.terms, len(layout.names), len(layout.covariates))  # row and covariate names do not matter
    ukey = tuple((k, v.dtype.str, v.shape, v.tobytes()) for k, v in sorted(uniform.items()))
    return ((type(agent).__module__, type(agent).__qualname__, repr(agent)), _env_key(env), structure, order, ukey)


class JaxLoglik:
    """A compiled likelihood of one model structure at one derivative order (see the module docstring).

    Attributes
    ----------
    compile_seconds : float
        Seconds spent tracing, compiling or loading executables in this process.
    from_cache : bool
        Whether every executable this process uses was loaded from the on-disk cache (no tracing, no XLA).
    """

    def __init__(self, agent: Agent, env: EnvSpec, order: int, layout: ThetaLayout, uniform: dict, *,
                 label: str, quiet: bool):
        if order not in (0, 1, 2):
            raise ValueError(f"order must be 0, 1 or 2, got {order}")
        self.agent, self.env, self.order, self.layout, self.label, self.quiet = agent, env, order, layout, label, quiet
        self.has_x = layout.has_covariates
        # ``valid`` is never a constant: padding needs invalid trials
        self.uniform = {k: v for k, v in uniform.items() if k != "valid"}
        self.obs_keys = [k for k in sorted(OBS_DTYPES) if k not in self.uniform]
        self.outputs = ["loglik", "pointwise"] + (["grad"] if order >= 1 else []) + (["hess"] if order == 2 else [])
        self.compile_seconds = 0.0
        self.from_cache = True
        self._exe: dict[int, tuple] = {}
        self._structure = structure_key(agent, env, order, layout, self.uniform)

    # -- executables ------------------------------------------------------------------------
    def _functions(self, nb: int):
        """The traceable ``init`` and ``chunk`` functions for blocks of ``nb`` subjects."""
        import jax
        import jax.numpy as jnp
        from jax import lax

        from .jax_ops import JAX as ops

        agent, env, layout, order = self.agent, self.env, self.layout, self.order
        # NumPy here (constants of the traced program): eager jax.numpy would compile a kernel per operation
        const = dict(self.uniform)
        D = layout.n_rows
        E = np.repeat(np.eye(D)[:, :, None], nb, axis=2)  # (D directions, D rows, nb)

        def params(theta, xt):
            return params_of(agent, layout, theta, xt, ops)

        def init(theta, x0):
            s = agent.start(params(theta, x0), env, nb, ops)
            return {k: jnp.broadcast_to(jnp.asarray(v, dtype=jnp.float64), jnp.shape(v)) for k, v in s.items()}

        def with_const(o, lead):
            o = dict(o)
            for k, v in const.items():
                o[k] = jnp.broadcast_to(v, lead + v.shape)
            return o

        def chunk(theta, s, obs, x):
            # the scan carries the state and emits the trial's latents; the observation model then scores the
            # whole chunk at once (one vectorised pass over chunk x block elements: the cost of an expensive
            # density such as the Wiener one is no longer paid per trial and per operation)
            def body(st, inp):
                o, xt = inp
                p = params(theta, xt)
                new, lat = agent.step(p, st, with_const(o, (nb,)), ops)
                return {k: new[k] for k in st}, lat

            s, lat = lax.scan(body, s, (obs, x))
            # scored subject-first, (nb, chunk, ...), the layout of the observation models' (n, T) arrays
            sf = jax.tree_util.tree_map(lambda v: jnp.swapaxes(v, 0, 1), (with_const(obs, (TRIAL_CHUNK, nb)), lat))
            p = {k: (v.T if jnp.ndim(v) == 2 else v) for k, v in params(theta, x).items()}
            return s, agent.trial_loglik(p, *sf, ops).T

        def chunk1(theta, s, ds, obs, x):
            def one(ds_j, e_j):
                return jax.jvp(lambda th, st: chunk(th, st, obs, x), (theta, s), (e_j, ds_j))

            (s1, ll), (ds1, dll) = jax.vmap(one, out_axes=((None, None), (0, 0)))(ds, E)
            return s1, ds1, ll, dll.sum(axis=1)

        def chunk2(theta, s, ds, dds, obs, x):
            def one(ds_k, dds_k, e_k):
                return jax.jvp(lambda th, st, dst: chunk1(th, st, dst, obs, x), (theta, s, ds), (e_k, ds_k, dds_k))

            prim, tang = jax.vmap(one, in_axes=(0, 1, 0), out_axes=(None, 0))(ds, dds, E)
            s1, ds1, ll, g = prim
            dds1 = {k: jnp.swapaxes(v, 0, 1) for k, v in tang[1].items()}  # (k, j, ...) -> (j, k, ...)
            return s1, ds1, dds1, ll, g, jnp.swapaxes(tang[3], 0, 1)

        def init_d(theta, x0):
            s0 = init(theta, x0)
            if order == 0:
                return (s0,)

            def first(th):
                return jax.vmap(lambda e: jax.jvp(lambda t: init(t, x0), (th,), (e,))[1])(E)

            ds0 = first(theta)
            if order == 1:
                return s0, ds0
            dds0 = jax.vmap(lambda e: jax.jvp(first, (theta,), (e,))[1])(E)  # (k, j, ...)
            return s0, ds0, {k: jnp.swapaxes(v, 0, 1) for k, v in dds0.items()}

        return init_d, (chunk, chunk1, chunk2)[order]

    def _executables(self, nb: int):
        """``(init, chunk)`` compiled for blocks of ``nb`` subjects: from memory, the disk cache, or XLA."""
        if nb in self._exe:
            return self._exe[nb]
        import jax

        from . import cache, jax_ops  # noqa: F401  (jax_ops turns on 64-bit floats, also for loaded executables)

        tc, D = TRIAL_CHUNK, self.layout.n_rows
        ex_theta = np.zeros((D, nb))
        ex_obs = {k: np.zeros((tc, nb) + ((self.env.n_actions,) if k in _PER_ACTION else ()), dtype=OBS_DTYPES[k])
                  for k in self.obs_keys}
        ex_x = np.zeros((tc, nb, len(self.layout.covariates)))
        key = repr((self._structure, nb, tc))
        cached = cache.was_compiled(key)
        t0 = time.perf_counter()
        if not self.quiet:
            what = f"loading compiled {self.label} from the cache" if cached else \
                f"compiling {self.label} (first use on this machine)"
            print(f"neurorl: {what} ...", file=sys.stderr, flush=True)
        module_file = getattr(sys.modules.get(type(self.agent).__module__), "__file__", None)
        exec_key = cache.executable_key(key, module_file)
        loaded = cache.load_executables(exec_key) if cached else None
        if loaded is not None:
            try:  # an entry that deserialises but cannot run (e.g. written by another build) is a miss
                init_fn, chunk_fn = loaded
                jax.block_until_ready(chunk_fn(ex_theta, *init_fn(ex_theta, ex_x[0]), ex_obs, ex_x))
            except Exception:  # noqa: BLE001
                loaded = None
        if loaded is None:
            init_d, fn = self._functions(nb)
            # a real compilation, never one served by JAX's persistent cache (cache.xla_cache, for numpyro; or the
            # user's JAX_COMPILATION_CACHE_DIR): an executable JAX deserialised loses its functions when serialised
            # again (docs/architecture.md)
            with cache.no_xla_cache():
                init_fn = jax.jit(init_d).lower(ex_theta, ex_x[0]).compile()
                state0 = jax.eval_shape(init_d, ex_theta, ex_x[0])
                chunk_fn = jax.jit(fn).lower(ex_theta, *state0, ex_obs, ex_x).compile()
            cache.store_executables(exec_key, [init_fn, chunk_fn])
            self.from_cache = False
        self.compile_seconds += time.perf_counter() - t0
        cache.mark_compiled(key, f"{self.label}: {self.agent!r}, {self.env.n_states} states x "
                                 f"{self.env.n_actions} actions, blocks of {nb} subjects")
        self._exe[nb] = (init_fn, chunk_fn)
        return self._exe[nb]

    def _block_size(self, m: int) -> int:
        """Small blocks for few rows, large ones for many. Each size is compiled once per machine when first
        needed: the last iterations of a fit evaluate the few subjects still moving (100 subjects: 63, 16, 2, 2
        and 1 in the last five Newton steps), which a block of 32 does for a quarter of the work of 128 (a warm
        MAP fit of 100 x 200: 0.051 s -> 0.045 s)."""
        small, large = SUBJECT_BLOCKS
        return small if m <= 2 * small else large

    # -- evaluation -------------------------------------------------------------------------
    def __call__(self, theta, obs_tm: dict, x=None, *, check: bool = True) -> dict:
        theta = np.asarray(theta, dtype=float)
        D, m = theta.shape
        if "loss" not in obs_tm:  # hand-made observations: no loss channel
            obs_tm = {**obs_tm, "loss": np.zeros(np.shape(obs_tm["choice"]))}
        if check:
            for k, v in self.uniform.items():
                if not np.all(np.asarray(obs_tm.get(k, obs_tm["valid"]) if k == "scored" else obs_tm[k]) == v):
                    raise ValueError(f"this likelihood was compiled for data whose {k!r} is {v.tolist()} on every "
                                     "trial; compile it for these data (compiled_loglik(..., uniform=...))")
        nb, tc = self._block_size(m), TRIAL_CHUNK
        init_fn, chunk_fn = self._executables(nb)
        T = np.asarray(obs_tm["choice"]).shape[0]
        valid = np.asarray(obs_tm["valid"], dtype=bool) if "valid" in obs_tm else np.ones((T, m), bool)
        # rows sorted by their last valid trial, so that a block of short (ragged) subjects stops early
        last = np.where(valid.any(axis=0), T - np.argmax(valid[::-1], axis=0), 0)
        perm = np.argsort(-last, kind="stable")
        nblk = -(-m // nb)
        Mp = nblk * nb
        ri = perm[np.minimum(np.arange(Mp), m - 1)]  # padding rows: copies of a real row, marked invalid
        blk_len = [int(last[ri[b * nb]]) for b in range(nblk)]
        Tp = max(1, -(-max(blk_len) // tc)) * tc
        ti = np.minimum(np.arange(Tp), T - 1)  # padding trials: copies of the last trial, marked invalid
        pad = np.zeros((Tp, Mp), bool)
        pad[T:] = True
        pad[:, m:] = True
        obs = {}
        for k in self.obs_keys:
            if k == "valid" or (k == "scored" and k not in obs_tm):  # hand-made observations: every valid trial
                v = valid
            else:
                v = np.asarray(obs_tm[k], dtype=OBS_DTYPES[k])
            v = v[ti][:, ri]
            obs[k] = v & ~pad if k == "valid" else v
        xx = np.asarray(x, dtype=float)[ti][:, ri] if self.has_x else np.zeros((Tp, Mp, 0))
        th = theta[:, ri]
        pw = np.zeros((max(Tp, T), Mp))  # trials after every row's last valid one score 0
        grad = np.zeros((D, Mp)) if self.order >= 1 else None
        hess = np.zeros((D, D, Mp)) if self.order == 2 else None
        for b in range(nblk):
            cols = slice(b * nb, (b + 1) * nb)
            thb = th[:, cols]
            carry = init_fn(thb, xx[0, cols])
            g = h = 0.0
            for c in range(max(1, -(-blk_len[b] // tc))):
                rows = slice(c * tc, (c + 1) * tc)
                out = chunk_fn(thb, *carry, {k: v[rows, cols] for k, v in obs.items()}, xx[rows, cols])
                k = self.order + 1
                carry, llc = out[:k], out[k]
                if self.order >= 1:
                    g = g + np.asarray(out[k + 1])
                if self.order == 2:
                    h = h + np.asarray(out[k + 2])
                pw[rows, cols] = np.asarray(llc)
            if self.order >= 1:
                grad[:, cols] = g
            if self.order == 2:
                hess[:, :, cols] = h
        inv = np.empty(m, np.int64)
        inv[perm] = np.arange(m)
        pw = pw[:T, inv]
        res = {"loglik": pw.sum(axis=0), "pointwise": pw}
        if self.order >= 1:
            res["grad"] = grad[:, inv]
        if self.order == 2:
            res["hess"] = hess[:, :, inv]
        return res


def jax_loglik(agent: Agent, env: EnvSpec, *, order: int = 0, layout: ThetaLayout | None = None,
               uniform: dict | None = None, quiet: bool | None = None) -> JaxLoglik:
    """The compiled likelihood of an agent structure (from this process's memory, the disk cache, or XLA).

    Parameters
    ----------
    agent, env
        The model and the task structure (``EnvSpec`` of the data).
    order : {0, 1, 2}
        Value; value and gradient; value, gradient and Hessian.
    layout : ThetaLayout, optional
        Rows of ``theta`` (covariate slopes); default one row per free parameter.
    uniform : dict, optional
        Observation arrays constant in the data (:func:`neurorl.fitting.graph.uniform_observations`).
    quiet : bool, optional
        Do not print the compiling/loading line (default: print it unless ``NEURORL_QUIET`` is set).
    """
    import os

    layout = layout or ThetaLayout.plain(agent)
    uniform = dict(sorted((uniform or {}).items()))
    key = structure_key(agent, env, order, layout, uniform)
    with _LOCK:
        hit = _MEMORY.get(key)
        if hit is None:
            if quiet is None:
                quiet = bool(os.environ.get("NEURORL_QUIET"))
            names = {0: "likelihood", 1: "likelihood and gradient", 2: "likelihood, gradient and Hessian"}
            label = f"{agent.name} {names[order]}"
            hit = JaxLoglik(agent, env, order, layout, uniform, label=label, quiet=quiet)
            _MEMORY[key] = hit
    return hit
