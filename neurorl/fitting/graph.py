"""The agent's learning rule as a PyTensor graph (``scan`` over trials).

Since the likelihood moved to JAX (:mod:`neurorl.backend.compiled`, built once per machine), the estimators use
these PyTensor graphs only when asked (``mode="pytensor"`` or ``"NUMBA"``); the nutpie and numpyro samplers of
:mod:`neurorl.fitting.bayes` and the symbolic checks of the tests still use them. The figures below are those of the
PyTensor path; docs/architecture.md compares the two.

:func:`choice_loglik_graph` feeds the time-major observation arrays of
:func:`neurorl.simulate.observations` to ``pytensor.scan`` and runs the
agent's own ``decide``/``learn`` with the PyTensor backend, so the likelihood,
its exact gradient and the PyMC models share the one definition used by
``simulate`` and ``replay``.

:func:`loglik_jet_graph` builds, in one forward ``scan``, the per-subject
log-likelihood together with its exact gradient and Hessian with respect to
the unconstrained parameters (forward-mode derivatives carried through the
trials), and :func:`compiled_loglik` compiles and caches it per agent
structure for the estimators of :mod:`neurorl.fitting.mle`.

Forward mode, not reverse mode. Measured for 100 subjects x 200 trials of
``q_learning`` on a two-armed bandit (2-core Xeon, pytensor 2.38.3; compile =
graph rewriting with a warm PyTensor C cache, per process and function;
numba's first call with a cold on-disk cache is its JIT):

=====================================  ==========  ========  ==========  ============
function                               C compile   C eval    numba eval  numba JIT
=====================================  ==========  ========  ==========  ============
value (order 0)                        0.8-2.7 s   5.0 ms    2.2 ms      47 s
value + gradient, forward (order 1)    2.1 s       14 ms     4.5 ms      47 s
value + gradient, reverse (``grad``)   6.0 s       19 ms     4.5 ms      55 s
+ Hessian, forward (order 2)           4.2 s       27 ms     9.7 ms      ~60 s
+ Hessian, reverse (grad of grad)      59 s        74 ms     18 ms       8 min
=====================================  ==========  ========  ==========  ============

Reverse-mode second derivatives through ``scan`` build a nested backward scan
whose rewriting takes about a minute, so the Hessian is computed forward: the
scan carries, besides the agent state, its first derivatives along each
parameter direction and its second derivatives along each pair of directions.
Each is a directional derivative of one trial's step, obtained with
:func:`pytensor.gradient.Rop` *inside* the step (no derivative of the scan
itself), and the directions are stacked on the subject axis (every rule is
vectorised over subjects), so one ``Rop`` call covers all of them: with ``D``
parameters the first-order block has ``D * n`` rows and the second-order block
``D (D + 1) / 2 * n`` rows. The cost of the Hessian therefore grows with
``D^2`` (two-step hybrid, ``D = 7``: order 1 is 6x and order 2 60x the cost of
the value), which is why the estimators switch to a quasi-Newton method above
three parameters and evaluate the exact Hessian once, at the estimates.

Two more choices make the compiled loop cheaper with symbolic (any-size) data:
observation arrays that are the same on every trial and subject
(:func:`uniform_observations`, e.g. ``done = 1`` in a bandit) are compiled in as
constants, so PyTensor drops what they make irrelevant (here the TD bootstrap
term; 30 -> 27 ms); and value tables are read and updated with one-hot
products instead of advanced indexing (:func:`fit_ops`), which the C backend
runs through Python on every trial (38 -> 34 ms; numba prefers indexing and
gets it).

Assumptions
-----------
[A1] The log-likelihood of a subject is the sum over its valid trials of
     ``agent.trial_loglik``: ``log policy[choice]`` (fitting.md §1), or the
     joint choice + RT density of :class:`neurorl.fitting.joint.WithRT`;
     invalid trials add 0 and leave the state unchanged (``Agent.step``).
[A2] Parameters are ``transform(eta)`` with ``eta = theta[base] + sum_c
     theta[slope_c] * x_c[t]`` (trial-wise covariates ``x``, issue item 3);
     without covariates ``eta = theta[base]`` and the parameter is constant.
"""

from __future__ import annotations

import numpy as np

from ..agents.base import Agent
from ..backend import get_pytensor_ops
from ..backend.compiled import OBS_DTYPES as _OBS_DTYPES
from ..backend.compiled import _env_key
from ..backend.layout import ThetaLayout, params_of as _params_of
from ..schema import EnvSpec

__all__ = [
    "choice_loglik_graph", "compile_choice_loglik", "ThetaLayout", "loglik_jet_graph", "compiled_loglik",
    "uniform_observations", "clear_cache",
]


def _is_symbolic(x) -> bool:
    from pytensor.graph.basic import Variable

    return isinstance(x, Variable)


def choice_loglik_graph(agent: Agent, env: EnvSpec, obs_tm: dict, params: dict):
    """Per-trial log P(choice) as a ``(trial, subject)`` tensor.

    Parameters
    ----------
    agent : Agent
    env : EnvSpec
    obs_tm : dict
        Time-major observation arrays ``(T, n, ...)`` (``simulate.observations``),
        NumPy arrays or symbolic PyTensor tensors.
    params : dict
        Parameter name -> PyTensor tensor on the constrained scale: a vector
        ``(n,)`` for a parameter constant over trials, or a matrix ``(T, n)`` for
        a trial-wise parameter (passed to ``scan`` as a sequence).

    Notes
    -----
    Each trial contributes ``agent.trial_loglik`` (the choice, or choice and
    RT for :class:`neurorl.fitting.joint.WithRT`); invalid trials contribute 0
    (they are masked, not dropped).
    """
    import pytensor
    import pytensor.tensor as pt

    ops = get_pytensor_ops()
    n = obs_tm["state"].shape[1]
    params = {k: v if _is_symbolic(v) else pt.as_tensor_variable(np.asarray(v, dtype=float))
              for k, v in params.items()}
    seq_keys = sorted(k for k, v in params.items() if v.ndim == 2)
    const_keys = sorted(k for k, v in params.items() if v.ndim != 2)
    p0 = {k: (params[k][0] if k in seq_keys else params[k]) for k in params}
    state0 = agent.start(p0, env, n, ops)
    state_keys = sorted(state0)
    obs_keys = sorted(obs_tm)
    seqs = [obs_tm[k] if _is_symbolic(obs_tm[k]) else pt.as_tensor_variable(np.asarray(obs_tm[k]))
            for k in obs_keys]
    seqs += [params[k] for k in seq_keys]
    n_seq = len(obs_keys) + len(seq_keys)

    def fn(*args):
        obs = dict(zip(obs_keys, args[: len(obs_keys)]))
        p = dict(zip(seq_keys, args[len(obs_keys): n_seq]))
        rest = args[n_seq:]
        s = dict(zip(state_keys, rest[: len(state_keys)]))
        p.update(zip(const_keys, rest[len(state_keys):]))
        new, lat = agent.step(p, s, obs, ops)
        return [new[k] for k in state_keys] + [agent.trial_loglik(p, obs, lat, ops)]

    outputs_info = [pt.as_tensor_variable(state0[k]).astype("float64") for k in state_keys] + [None]
    outs = pytensor.scan(
        fn, sequences=seqs, outputs_info=outputs_info, non_sequences=[params[k] for k in const_keys],
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


# ----------------------------------------------------------------------------- forward-mode jet
_FIT_OPS = None


def fit_ops():
    """The PyTensor backend with gather/scatter written as one-hot products.

    ``table[rows, idx]`` and ``inc_subtensor`` become advanced-indexing ops
    that PyTensor's C backend runs through Python (``perform``) on every trial;
    ``sum(where(onehot(idx), table, 0))`` and ``table + where(onehot(idx),
    value, 0)`` are elementwise and reductions only, compiled and fused, and
    their derivatives are too. Same values; cost ``O(n * m)`` per lookup for a
    table with ``m`` items. Used by :func:`loglik_jet_graph`.
    """
    global _FIT_OPS
    if _FIT_OPS is None:
        import pytensor.tensor as pt

        base = type(get_pytensor_ops())

        class FitOps(base):
            @staticmethod
            def gather(table, idx):
                m = table.shape[1]
                t = table
                for _ in range(idx.ndim - 1):
                    t = pt.shape_padaxis(t, 1)
                hit = pt.eq(pt.shape_padright(idx), pt.arange(m))
                return pt.sum(pt.switch(hit, t, 0.0), axis=-1)

            @staticmethod
            def scatter_add(table, idx, value):
                hit = pt.eq(pt.shape_padright(idx), pt.arange(table.shape[1]))
                out = table + pt.switch(hit, pt.shape_padright(value), 0.0)
                return pt.specify_shape(out, table.type.shape)  # keep static (broadcastable) dims

        _FIT_OPS = FitOps()
    return _FIT_OPS


def _tile(x, k: int):
    """Stack ``k`` copies of ``x`` along the first (subject) axis."""
    import pytensor.tensor as pt

    return x if k == 1 else pt.concatenate([x] * k, axis=0)


def _blocks(x, idx, n, k_in: int):
    """Rows of ``x`` ``(k_in * n, ...)`` grouped in ``k_in`` blocks of ``n``; pick blocks ``idx``."""
    tail = tuple(x.shape[i] for i in range(1, x.ndim))
    xs = x.reshape((k_in, n) + tail, ndim=x.ndim + 1)[np.asarray(idx, dtype=np.int64)]
    return xs.reshape((len(idx) * n,) + tail, ndim=x.ndim)


def loglik_jet_graph(agent: Agent, env: EnvSpec, obs_tm: dict, theta, *, order: int = 0,
                     layout: ThetaLayout | None = None, x=None, lookup: str = "onehot",
                     uniform_obs: dict | None = None) -> dict:
    """Log-likelihood per subject and its exact derivatives in one forward scan.

    Parameters
    ----------
    agent : Agent
    env : EnvSpec
    obs_tm : dict
        Time-major observation tensors ``(T, n, ...)`` (symbolic or NumPy).
    theta : TensorVariable
        Unconstrained parameters ``(D, n)`` laid out as ``layout``.
    order : {0, 1, 2}
        0: value; 1: value and gradient; 2: value, gradient and Hessian.
    layout : ThetaLayout, optional
        Default: one row per free parameter.
    x : TensorVariable, optional
        Trial-wise covariates ``(T, n, C)`` (required when ``layout`` has any).
    uniform_obs : dict, optional
        Observation arrays whose value is the same on every trial and subject
        (see :func:`uniform_observations`); they are used as constants and need
        not be in ``obs_tm``.
    lookup : {"onehot", "index"}
        How value tables are read and updated: one-hot products (:func:`fit_ops`;
        faster with the C backend) or advanced indexing (the plain PyTensor
        backend; faster with numba).

    Returns
    -------
    dict
        ``pointwise`` ``(T, n)`` (per trial), ``loglik`` ``(n,)``, ``grad``
        ``(D, n)`` and ``hess`` ``(D, D, n)``: derivatives of each subject's
        log-likelihood with respect to its own column of ``theta``.
    """
    import pytensor
    import pytensor.tensor as pt
    from pytensor.gradient import Rop

    if order not in (0, 1, 2):
        raise ValueError(f"order must be 0, 1 or 2, got {order}")
    if lookup not in ("onehot", "index"):
        raise ValueError(f"lookup must be 'onehot' or 'index', got {lookup!r}")
    ops = fit_ops() if lookup == "onehot" else get_pytensor_ops()
    layout = layout or ThetaLayout.plain(agent)
    D = layout.n_rows
    if layout.has_covariates and x is None:
        raise ValueError("this layout has covariates; pass x of shape (T, n, C)")
    obs_tm = {k: v if _is_symbolic(v) else pt.as_tensor_variable(np.asarray(v)) for k, v in obs_tm.items()
              if k not in (uniform_obs or {})}
    n = theta.shape[1]
    if x is None:
        x = pt.zeros((obs_tm[sorted(obs_tm)[0]].shape[0], n, 0))
    elif not _is_symbolic(x):
        x = pt.as_tensor_variable(np.asarray(x, dtype=float))

    if order == 2:
        pairs = [(j, k) for j in range(D) for k in range(j, D)]
    else:
        pairs = [(j, j) for j in range(D)]
    P = len(pairs) if order > 0 else 1
    jv = np.array([p[0] for p in pairs], dtype=np.int64)
    kv = np.array([p[1] for p in pairs], dtype=np.int64)
    diag = np.array([pairs.index((j, j)) for j in range(D)], dtype=np.int64)
    eye = np.eye(D)
    Ej = pt.repeat(pt.as_tensor_variable(eye[:, jv]), n, axis=1)  # (D, P n): direction j of each pair
    Ek = pt.repeat(pt.as_tensor_variable(eye[:, kv]), n, axis=1)

    def rop(f, wrt, ev):
        return Rop(f, wrt, ev, disconnected_outputs="ignore", return_disconnected="zero")

    def f(s, th, obs, xt):
        p = _params_of(agent, layout, th, xt, ops)
        new, lat = agent.step(p, s, obs, ops)
        return [new[k] for k in keys] + [agent.trial_loglik(p, obs, lat, ops)]

    # initial state (may depend on the parameters, e.g. a learnt temperature starting at beta)
    x0 = x[0]
    init = agent.start(_params_of(agent, layout, theta, x0, ops), env, n, ops)
    keys = sorted(init)
    nk = len(keys)
    init = [pt.as_tensor_variable(init[k]).astype("float64") for k in keys]
    carry = list(init)
    if order > 0:
        th_p = _tile(theta.T, P).T
        init_p = agent.start(_params_of(agent, layout, th_p, _tile(x0, P), ops), env, P * n, ops)
        init_p = [pt.as_tensor_variable(init_p[k]).astype("float64") for k in keys]
        first0 = rop(init_p, th_p, Ej)
        carry += [_blocks(v, diag, n, P) for v in first0]
        if order == 2:
            carry += list(rop(first0, th_p, Ek))

    # observation arrays equal on every trial and subject (e.g. ``done`` in a bandit) enter as constants, so
    # the rewrites fold what they imply (no bootstrap term when every trial ends its episode)
    uniform = {k: np.asarray(v)[0, 0] for k, v in (uniform_obs or {}).items()}
    obs_keys = sorted(k for k in obs_tm if k not in uniform)
    n_obs = len(obs_keys)
    # the data of every derivative block are tiled once, outside the loop (P copies on the subject axis)
    if order == 0:
        seqs = [obs_tm[k] for k in obs_keys] + [x]
        consts = [theta]
    else:
        seqs = [pt.concatenate([obs_tm[k]] * P, axis=1) if P > 1 else obs_tm[k] for k in obs_keys]
        seqs.append(pt.concatenate([x] * P, axis=1) if P > 1 else x)
        consts = [_tile(theta.T, P).T, Ej, Ek]

    def with_uniform(obs, rows):
        for k, v in uniform.items():
            c = pt.as_tensor_variable(v)
            obs[k] = pt.alloc(c, rows, *v.shape)
        return obs

    def step(*args):
        obs = dict(zip(obs_keys, args[:n_obs]))
        xt = args[n_obs]
        rest = list(args[n_obs + 1:])
        S = rest[:nk]
        if order == 0:
            return f(dict(zip(keys, S)), rest[-1], with_uniform(obs, rest[-1].shape[1]), xt)
        th_p, ej, ek = rest[-3:]
        obs = with_uniform(obs, th_p.shape[1])
        S1 = rest[nk: 2 * nk]
        s_p = [_tile(v, P) for v in S]
        u_j = [_blocks(v, jv, n, D) for v in S1]
        outs = f(dict(zip(keys, s_p)), th_p, obs, xt)
        first = rop(outs, s_p + [th_p], u_j + [ej])
        prim = [o[:n] for o in outs]
        fo = [_blocks(v, diag, n, P) for v in first]
        res = prim[:nk] + fo[:nk]
        if order == 1:
            return res + [prim[nk], fo[nk]]
        S2 = rest[2 * nk: 3 * nk]
        u_k = [_blocks(v, kv, n, D) for v in S1]
        second = rop(first, s_p + [th_p] + u_j, u_k + [ek] + S2)
        return res + second[:nk] + [prim[nk], fo[nk], second[nk]]

    n_out = order + 1
    outs = pytensor.scan(
        step, sequences=seqs, outputs_info=carry + [None] * n_out, non_sequences=consts, strict=False,
        return_updates=False,
    )
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    ll_t = outs[-n_out:]
    res = {"loglik": ll_t[0].sum(axis=0), "pointwise": ll_t[0]}
    if order >= 1:
        res["grad"] = ll_t[1].sum(axis=0).reshape((D, n))
    if order == 2:
        h = ll_t[2].sum(axis=0).reshape((P, n))
        rows = [[h[pairs.index((min(j, k), max(j, k)))] for k in range(D)] for j in range(D)]
        res["hess"] = pt.stack([pt.stack(r) for r in rows])
    return res


# ----------------------------------------------------------------------------- compiled + cached
_CACHE: dict = {}


def clear_cache() -> None:
    """Forget the compiled likelihood functions of this process (the on-disk cache stays)."""
    from ..backend.compiled import clear_memory_cache

    _CACHE.clear()
    clear_memory_cache()


def _agent_key(agent: Agent):
    return (type(agent).__module__, type(agent).__qualname__, repr(agent))


def uniform_observations(obs_tm: dict) -> dict:
    """Observation arrays whose value is the same on every trial and subject.

    Returns ``{key: value}`` with ``value`` the common ``(...)`` slice (e.g.
    ``done`` = 1 in a bandit, ``known`` = False where no value is shown).
    ``choice`` is never included. Compiling with these as constants lets
    PyTensor drop what they make irrelevant (e.g. the bootstrap term of a
    TD target when every trial ends its episode); a subset of subjects or
    trials of the same data keeps the property.
    """
    out = {}
    for k, v in obs_tm.items():
        v = np.asarray(v)
        if k == "choice" or v.ndim < 2 or v.shape[0] * v.shape[1] == 0:
            continue
        first = v[0, 0]
        if np.all(v == first):
            out[k] = np.array(first, dtype=_OBS_DTYPES.get(k, v.dtype))
    return out


class CompiledLoglik:
    """A compiled :func:`loglik_jet_graph`: ``f(theta, obs_tm, x) -> dict`` of NumPy arrays.

    ``obs_tm`` are the time-major arrays of ``simulate.observations`` and ``x``
    the covariates ``(T, n, C)`` (ignored without covariates). Any number of
    subjects and trials: shapes are symbolic, so one compilation serves every
    data set with the same agent structure.
    """

    def __init__(self, fn, obs_keys, outputs, order, has_x, compile_seconds, uniform=None):
        self._fn = fn
        self.uniform = uniform or {}
        self.obs_keys = obs_keys
        self.outputs = outputs
        self.order = order
        self.has_x = has_x
        self.compile_seconds = compile_seconds

    def __call__(self, theta, obs_tm: dict, x=None, *, check: bool = True) -> dict:
        for k, v in self.uniform.items() if check else ():
            if not np.all(np.asarray(obs_tm[k]) == v):
                raise ValueError(f"this likelihood was compiled for data whose {k!r} is {v.tolist()} on every "
                                 "trial; compile it for these data (compiled_loglik(..., uniform=...))")
        if "scored" not in obs_tm:  # hand-made observations: every valid trial is scored
            obs_tm = {**obs_tm, "scored": obs_tm["valid"]}
        if "loss" not in obs_tm:  # hand-made observations: no loss channel
            obs_tm = {**obs_tm, "loss": np.zeros(np.shape(obs_tm["valid"]))}
        args = [np.ascontiguousarray(theta, dtype=float)]
        args += [np.asarray(obs_tm[k], dtype=_OBS_DTYPES.get(k)) for k in self.obs_keys]
        if self.has_x:
            args.append(np.asarray(x, dtype=float))
        return dict(zip(self.outputs, self._fn(*args)))


def _is_numba(mode) -> bool:
    if mode is None:
        from pytensor import config

        mode = config.mode
    if isinstance(mode, str):
        return mode.upper() == "NUMBA"
    return "numba" in type(getattr(mode, "linker", None)).__name__.lower()


def compiled_loglik(agent: Agent, env: EnvSpec, *, order: int = 0, layout: ThetaLayout | None = None,
                    mode=None, uniform: dict | None = None, quiet: bool | None = None) -> CompiledLoglik:
    """The compiled likelihood function of an agent structure.

    ``mode=None`` (or ``"jax"``), the default, returns the JAX executable of
    :func:`neurorl.backend.compiled.jax_loglik`, built once per machine and
    loaded from the on-disk cache by later processes. ``mode="pytensor"`` (the
    PyTensor default, C backend), ``"NUMBA"`` or a PyTensor ``Mode`` compile
    :func:`loglik_jet_graph` with PyTensor instead, once per process (kept for
    comparisons and checks). Both return the same dictionary of outputs.

    ``uniform`` (from :func:`uniform_observations`) names observation arrays
    that are constant in the data to be fitted; they are compiled in as
    constants and the function checks them on every call. The cache key is
    the agent's class and ``repr`` (options and fixed values), the task
    structure (``env`` tables), the parameter layout, ``order``, ``mode`` and
    ``uniform``; data shapes are symbolic and not part of it.
    """
    import time

    if mode is None or (isinstance(mode, str) and mode.lower() == "jax"):
        from ..backend.compiled import jax_loglik

        return jax_loglik(agent, env, order=order, layout=layout, uniform=uniform, quiet=quiet)
    if isinstance(mode, str) and mode.lower() == "pytensor":
        mode = None  # PyTensor's default mode (C backend)
    import pytensor
    import pytensor.tensor as pt

    layout = layout or ThetaLayout.plain(agent)
    structure = (layout.terms, len(layout.names), len(layout.covariates))  # row and covariate names do not matter
    uniform = dict(sorted((uniform or {}).items()))
    ukey = tuple((k, v.dtype.str, v.shape, v.tobytes()) for k, v in uniform.items())
    key = (_agent_key(agent), _env_key(env), structure, order, str(mode), ukey)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    t0 = time.perf_counter()
    obs_keys = sorted(_OBS_DTYPES)
    sym = {k: pt.tensor(name=k, dtype=_OBS_DTYPES[k], shape=(None,) * (3 if k in (
        "items", "avail", "known", "known_value", "next_items", "next_avail", "next_known", "next_known_value")
        else 2)) for k in obs_keys}
    theta = pt.dmatrix("theta")
    has_x = layout.has_covariates
    x = pt.tensor3("x") if has_x else None
    out = loglik_jet_graph(agent, env, {k: v for k, v in sym.items() if k not in uniform}, theta, order=order,
                           layout=layout, x=x, lookup="index" if _is_numba(mode) else "onehot",
                           uniform_obs={k: v[None, None] for k, v in uniform.items()})
    names = ["loglik", "pointwise"] + (["grad"] if order >= 1 else []) + (
        ["hess"] if order == 2 else [])
    obs_keys = [k for k in obs_keys if k not in uniform]
    inputs = [theta] + [sym[k] for k in obs_keys] + ([x] if has_x else [])
    fn = pytensor.function(inputs, [out[k] for k in names], mode=mode, on_unused_input="ignore")
    res = CompiledLoglik(fn, obs_keys, names, order, has_x, time.perf_counter() - t0, uniform)
    _CACHE[key] = res
    return res
