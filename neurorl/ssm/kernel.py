"""The compiled trial-level DDM likelihood: one elementwise kernel, cached on disk, shared by every formula.

The density is :func:`neurorl.fitting.wiener.wiener_logpdf` (Navarro--Fuss, closed-form ``sv``), traced once with
the JAX ops layer (``neurorl.backend.get_jax_ops()``): there is one definition of the Wiener density in neurorl.

What is compiled
----------------
The kernel takes the *per-trial* parameters ``P`` (rows ``v, a, w, t0, sv, p_outlier``; shape ``(6, n)``) and the
data (``rt``, ``response``, a trial ``weight``) and returns

* order 1: the pointwise log-likelihood ``(n,)`` and its exact gradient with respect to ``P`` ``(6, n)``;
* order 2: in addition the per-trial Hessians ``(6, 6, n)`` (the trials are independent given ``P``, so the
  Hessian of the total is block-diagonal in the trials).

:meth:`TrialKernel.prepare` loads or compiles one order up front, saying so on stderr (a step of its own in the
progress output). MAP prepares only order 2 -- its executable also answers the order-1 calls of the line searches
(the Hessian rows are dropped), so a first fit compiles one executable, not two; NUTS prepares only order 1.

Derivatives are taken only in the rows that vary (the parameters with a formula); the others are zero. This is part
of the compiled structure (a model with ``v, a, t0`` free compiles a 3 x 3 Hessian, not 6 x 6).

Formulas, links, subject effects and priors act on ``P`` from outside (NumPy in :mod:`neurorl.ssm.model`, PyTensor
in the PyMC model), with the chain rule written out there. So the compiled code does not depend on the formulas,
the number of coefficients or subjects: it depends only on the padded number of trials (:func:`pad_size`) and on whether the contaminant mixture is on. Compiled executables are stored with
:mod:`neurorl.backend.cache` (keyed by neurorl's source, the JAX version and the processor), so a new process loads
them instead of compiling.

Contaminant (lapse) mixture
---------------------------
With ``lapse=True`` the trial density is ``(1 - p_outlier) p_wfpt(rt, response) + p_outlier * 0.5 / rt_max``: a
contaminant response is a coin flip with a time uniform on ``(0, rt_max)``, a proper density over both responses.
(HDDM's ``w_outlier = 0.1`` gives each response density 0.1 over 10 s, a total mass of 2; the difference is a
constant ``log 2`` in the contaminant term.)
"""

from __future__ import annotations

import math
import sys
import threading
import time

import numpy as np

__all__ = ["MIN_BLOCK", "PARAMS", "TrialKernel", "get_kernel", "pad_size"]

#: rows of the per-trial parameter matrix, in order
PARAMS = ("v", "a", "z", "t0", "sv", "p_outlier")
#: smallest padded block of trials
MIN_BLOCK = 1024
#: values used on padding trials (weight 0): a valid, harmless point of the density
_PAD_P = (0.0, 1.0, 0.5, 0.1, 0.0, 0.0)
_PAD_RT = 1.0

_LOCK = threading.Lock()
_KERNELS: dict = {}


def pad_size(n: int) -> int:
    """Padded number of trials: the smallest ``2^k * m / 4`` (``m`` = 4..7) at or above ``n``, at least
    :data:`MIN_BLOCK` (at most 25 % padding, a few sizes per doubling)."""
    n = max(int(n), 1)
    if n <= MIN_BLOCK:
        return MIN_BLOCK
    p = 1 << ((n - 1).bit_length() - 1)  # largest power of two below n
    for m in (5, 6, 7, 8):
        if p * m // 4 >= n:
            return p * m // 4
    return 2 * p


def _trial_fn(lapse: bool, rt_max: float):
    from ..backend import get_jax_ops
    from ..fitting.wiener import wiener_logpdf

    ops = get_jax_ops()
    import jax.numpy as jnp

    log_c = math.log(0.5 / rt_max)

    def one(p, rt, resp):
        v, a, w, t0, sv, po = p[0], p[1], p[2], p[3], p[4], p[5]
        lp = wiener_logpdf(rt, resp, v, a, w, t0, ops, sv=sv)
        if lapse:
            lp = jnp.logaddexp(jnp.log1p(-po) + lp, jnp.log(po) + log_c)
        return lp

    return one


class TrialKernel:
    """Compiled pointwise log-likelihood (and derivatives) of the DDM for one padded size.

    Use :func:`get_kernel`; call :meth:`__call__` with unpadded arrays.
    """

    def __init__(self, n_pad: int, lapse: bool, rt_max: float, free: tuple[int, ...]):
        self.n_pad, self.lapse, self.rt_max = int(n_pad), bool(lapse), float(rt_max)
        self.free = tuple(sorted(int(i) for i in free))
        self._fns = {}
        self.compile_seconds = 0.0
        self.compiled_here = False

    def __getstate__(self):  # executables do not pickle; another process loads them from the disk cache
        state = dict(self.__dict__)
        state["_fns"] = {}
        return state

    def _structure(self, order: int) -> str:
        return (f"neurorl.ssm.kernel/v2/order={order}/n={self.n_pad}/lapse={self.lapse}/rt_max={self.rt_max!r}/"
                f"free={self.free}")

    def prepare(self, order: int, *, progress: bool = True) -> float:
        """Load (or, the first time on this machine, compile) the executable of ``order`` now, saying so on stderr
        when ``progress``: compilation is a step of its own in the progress output. Returns the seconds it took."""
        if order in self._fns:
            return 0.0
        from ..backend import cache

        structure = self._structure(order)
        what = (f"the DDM likelihood kernel (order {order}: log density, gradient"
                f"{' and Hessian' if order >= 2 else ''}; blocks of {self.n_pad} trials)")
        first = not cache.was_compiled(cache.executable_key(structure))
        if progress:
            print(f"neurorl: {'compiling' if first else 'loading'} {what}"
                  f"{' (first use on this machine)' if first else ' from the cache'} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        self._compiled(order)
        sec = time.perf_counter() - t0
        self.compile_seconds += sec
        if progress:
            print(f"neurorl: {'compiled' if self.compiled_here else 'loaded'} in {sec:.1f} s", file=sys.stderr,
                  flush=True)
        return sec

    def _compiled(self, order: int):
        if order in self._fns:
            return self._fns[order]
        from ..backend import cache, get_jax_ops

        get_jax_ops()  # imports jax with 64-bit floats on (also needed to call an executable loaded from disk)
        import jax
        import jax.numpy as jnp

        key = cache.executable_key(self._structure(order))
        loaded = cache.load_executables(key)
        if loaded is not None:
            self._fns[order] = loaded[0]
            self.compiled_here = False
            return loaded[0]
        self.compiled_here = True
        full = _trial_fn(self.lapse, self.rt_max)
        free = jnp.asarray(self.free)

        def one(pf, p, rt, resp):  # derivatives only in the free rows
            return full(p.at[free].set(pf), rt, resp)

        def f(P, rt, resp, wt):
            Pf = P[free]
            lp, vjp = jax.vmap(jax.value_and_grad(one), in_axes=(1, 1, 0, 0), out_axes=(0, 1))(Pf, P, rt, resp)
            out = (lp * wt, vjp * wt[None, :])
            if order >= 2:
                H = jax.vmap(jax.hessian(one), in_axes=(1, 1, 0, 0), out_axes=2)(Pf, P, rt, resp)
                out = out + (H * wt[None, None, :],)
            return out

        ex_P = jnp.zeros((len(PARAMS), self.n_pad))
        ex_v = jnp.zeros(self.n_pad)
        fn = jax.jit(f).lower(ex_P, ex_v, ex_v, ex_v).compile()
        cache.store_executables(key, [fn])
        cache.mark_compiled(key, f"ssm DDM kernel order {order}, {self.n_pad} trials, lapse={self.lapse}")
        self._fns[order] = fn
        return fn

    def __call__(self, P, rt, response, weight, order: int = 1):
        """Pointwise log-likelihood and derivatives for ``n <= n_pad`` trials.

        Parameters
        ----------
        P : ndarray ``(6, n)``
            Per-trial ``v, a, z, t0, sv, p_outlier`` (effective: after response coding).
        rt, response, weight : ndarray ``(n,)``
            Reaction times (s), boundary hit (1 upper, 0 lower), and a weight per trial (0 drops a trial, e.g. a
            held-out fold).
        order : {1, 2}

        Returns
        -------
        tuple
            ``(loglik (n,), grad (6, n))`` and, at order 2, ``hess (6, 6, n)``; every term is multiplied by its
            weight.
        """
        n = rt.shape[0]
        if n > self.n_pad:
            raise ValueError(f"ssm kernel: {n} trials exceed the padded block of {self.n_pad}")
        Pp = np.empty((len(PARAMS), self.n_pad))
        Pp[:, :n] = P
        Pp[:, n:] = np.asarray(_PAD_P)[:, None]
        if self.lapse:
            Pp[5, n:] = 0.5
        rtp = np.full(self.n_pad, _PAD_RT)
        rtp[:n] = rt
        rp = np.zeros(self.n_pad)
        rp[:n] = response
        wp = np.zeros(self.n_pad)
        wp[:n] = weight
        # an order-1 request is served by the order-2 executable when that is the one at hand (MAP prepares only
        # order 2: one compilation instead of two; the Hessian rows are then dropped)
        use = 2 if order == 1 and 1 not in self._fns and 2 in self._fns else order
        out = self._compiled(use)(Pp, rtp, rp, wp)
        k = len(PARAMS)
        g = np.zeros((k, n))
        g[list(self.free)] = np.asarray(out[1])[:, :n]
        res = [np.asarray(out[0])[:n], g]
        if order >= 2:
            H = np.zeros((k, k, n))
            H[np.ix_(self.free, self.free)] = np.asarray(out[2])[:, :, :n]
            res.append(H)
        return tuple(res)


def get_kernel(n: int, *, lapse: bool = False, rt_max: float = 10.0, free=tuple(range(len(PARAMS)))) -> TrialKernel:
    """The (process-wide, memoised) kernel for ``n`` trials, differentiated in the rows ``free`` of ``PARAMS``
    (rows outside ``free`` get zero derivatives)."""
    key = (pad_size(n), bool(lapse), float(rt_max), tuple(sorted(int(i) for i in free)))
    with _LOCK:
        if key not in _KERNELS:
            _KERNELS[key] = TrialKernel(*key)
        return _KERNELS[key]
