"""JAX backend of the ops layer: the learning rules, traced inside ``jax.lax.scan``.

Importing this module imports jax and sets three options for the process:

* 64-bit floats (``jax_enable_x64``): likelihoods are compared with the NumPy replay to 1e-10 and optimised with
  exact Newton steps, which float32 cannot support;
* synchronous dispatch on the CPU (``jax_cpu_enable_async_dispatch=False``), unless the CPU backend has already
  started: a likelihood evaluation then runs in the calling thread instead of being handed to one of XLA's worker
  threads while the caller waits for it. Every caller here waits for the result at once, so the hand-off is pure
  cost: measured on a 2-core Intel VM, 45-70 us per call on small programs, and nutpie's two RL-DDM chains
  (each a thread calling the gradient) ran 1.42x faster than one chain instead of 1.17x
  (docs/architecture.md, "Synchronous dispatch");
* XLA's CPU thunks in program order (``--xla_cpu_enable_concurrency_optimized_scheduler=false`` appended to
  ``XLA_FLAGS``), unless the CPU backend has already started, ``XLA_FLAGS`` already names the option, or the jaxlib
  is one this was not tested with (:data:`SCHEDULER_JAXLIB`; XLA aborts the process on a flag it does not know).
  XLA's default orders a program's kernels so that independent ones can run at once on its worker threads; a
  sampler already runs one chain per core, so that only adds hand-offs: two threads calling the hierarchical
  RL-DDM gradient reached 1.60-1.63 gradients per ms with it and 1.84 in program order (2-core Intel VM; one
  thread alone the same; docs/architecture.md, "Kernel order and small tables"). Numbers are unchanged: the option
  orders kernels, it does not change them.
"""

from __future__ import annotations

import math
import os

import jax

#: jaxlib versions [low, high) where --xla_cpu_enable_concurrency_optimized_scheduler is set (tested: 0.10.2; others
#: are left alone rather than risk a flag their XLA does not know)
SCHEDULER_JAXLIB = ((0, 10, 0), (0, 11, 0))
_SCHEDULER_FLAG = "--xla_cpu_enable_concurrency_optimized_scheduler=false"


def _backend_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # pragma: no cover - a JAX without the check: assume it has started
        return True


def _program_order_scheduler() -> None:
    """Append :data:`_SCHEDULER_FLAG` to ``XLA_FLAGS`` where it is safe (module docstring)."""
    import jaxlib

    try:
        version = tuple(int(x) for x in jaxlib.__version__.split(".")[:3])
    except ValueError:  # pragma: no cover - a development build
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if (SCHEDULER_JAXLIB[0] <= version < SCHEDULER_JAXLIB[1] and "concurrency_optimized_scheduler" not in flags
            and not _backend_started()):
        os.environ["XLA_FLAGS"] = f"{flags} {_SCHEDULER_FLAG}".strip()


_program_order_scheduler()

jax.config.update("jax_enable_x64", True)
try:  # read when the CPU client is created: no effect once a JAX computation has run
    jax.config.update("jax_cpu_enable_async_dispatch", False)
except AttributeError:  # pragma: no cover - a JAX without the option
    pass

import jax.numpy as jnp
from jax.scipy import special as jsp

from . import ArrayModuleOps

__all__ = ["JAX", "JaxOps"]

_SQRT_PI = math.sqrt(math.pi)

#: tables of at most this many columns are read (:meth:`JaxOps.gather`) and updated (:meth:`JaxOps.scatter_add`) by
#: comparing the index with every column instead of XLA's gather and scatter
ONE_HOT_MAX = 64


def _erfcx(x):
    """Scaled complementary error function ``exp(x^2) erfc(x)`` (asymptotic series above x = 25)."""
    small = x < 25.0
    xs = jnp.where(small, x, 0.0)
    xl = jnp.where(small, 25.0, x)
    inv2 = 1.0 / (xl * xl)
    large = (1.0 - 0.5 * inv2 + 0.75 * inv2 * inv2 - 1.875 * inv2 ** 3) / (xl * _SQRT_PI)
    return jnp.where(small, jnp.exp(xs * xs) * jsp.erfc(xs), large)


def _columns(idx, m):
    """``idx[..., None] == column`` for the columns ``0..m-1`` (negative indices count from the end)."""
    idx = jnp.where(idx < 0, idx + m, idx)
    return idx[..., None] == jnp.arange(m, dtype=idx.dtype)


class JaxOps(ArrayModuleOps):
    """JAX backend: traced, differentiable (forward and reverse mode), scan-compatible."""

    name = "jax"
    erfc = staticmethod(jsp.erfc)
    erfcx = staticmethod(_erfcx)

    def __init__(self):
        super().__init__(jnp)

    @staticmethod
    def norm_logcdf(x):
        """log Phi(x), accurate in both tails."""
        return jsp.log_ndtr(x)

    @staticmethod
    def stack(xs, axis=0):
        return jnp.stack([jnp.asarray(x, dtype=float) if isinstance(x, float) else x for x in xs], axis=axis)

    # Small tables (a learning rule's values over a few actions or states) are read and written by comparison with
    # every column. XLA:CPU runs each gather and scatter as its own kernel, so inside a ``lax.scan`` step they
    # split the step into dozens of kernels, each with its own call overhead; comparisons and selects fuse with
    # the arithmetic around them. Measured on the hierarchical RL-DDM benchmark (28 subjects, 5,081 trials,
    # 2-core Intel VM): the scan with the learning rate's tangent 0.83 ms -> 0.20 ms, the whole gradient
    # 0.92 ms -> 0.74 ms; the values are the same to the last bit (a sum of one entry and zeros). Negative indices
    # count from the end, as in NumPy; an index past the end reads 0 and adds nothing.
    def gather(self, table, idx):
        """``table[i, idx[i, ...]]`` for each row i (table: (n, m))."""
        idx = jnp.asarray(idx)
        if jnp.ndim(table) != 2 or table.shape[1] > ONE_HOT_MAX:
            return super().gather(table, idx)
        n, m = table.shape
        hit = _columns(idx, m)  # (n, ..., m)
        t = table.reshape((n,) + (1,) * (idx.ndim - 1) + (m,))
        if table.dtype == jnp.bool_:
            return jnp.any(hit & t, axis=-1)
        return jnp.sum(jnp.where(hit, t, jnp.zeros((), table.dtype)), axis=-1, dtype=table.dtype)

    @staticmethod
    def scatter_add(table, idx, value):
        """A copy of ``table`` with ``value[i]`` added at ``table[i, idx[i]]``."""
        idx = jnp.asarray(idx)
        if jnp.ndim(table) != 2 or table.shape[1] > ONE_HOT_MAX or idx.ndim != 1:
            return jnp.asarray(table).at[jnp.arange(table.shape[0]), idx].add(value)
        value = jnp.asarray(value)
        return table + jnp.where(_columns(idx, table.shape[1]), value[:, None], jnp.zeros((), value.dtype))


JAX = JaxOps()
