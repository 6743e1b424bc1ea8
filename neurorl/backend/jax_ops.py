"""JAX backend of the ops layer: the learning rules, traced inside ``jax.lax.scan``.

Importing this module imports jax and sets two options for the process:

* 64-bit floats (``jax_enable_x64``): likelihoods are compared with the NumPy replay to 1e-10 and optimised with
  exact Newton steps, which float32 cannot support;
* synchronous dispatch on the CPU (``jax_cpu_enable_async_dispatch=False``), unless the CPU backend has already
  started: a likelihood evaluation then runs in the calling thread instead of being handed to one of XLA's worker
  threads while the caller waits for it. Every caller here waits for the result at once, so the hand-off is pure
  cost: measured on a 2-core Intel VM, 45-70 us per call on small programs, and nutpie's two RL-DDM chains
  (each a thread calling the gradient) ran 1.42x faster than one chain instead of 1.17x
  (docs/architecture.md, "Synchronous dispatch").
"""

from __future__ import annotations

import math

import jax

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


def _erfcx(x):
    """Scaled complementary error function ``exp(x^2) erfc(x)`` (asymptotic series above x = 25)."""
    small = x < 25.0
    xs = jnp.where(small, x, 0.0)
    xl = jnp.where(small, 25.0, x)
    inv2 = 1.0 / (xl * xl)
    large = (1.0 - 0.5 * inv2 + 0.75 * inv2 * inv2 - 1.875 * inv2 ** 3) / (xl * _SQRT_PI)
    return jnp.where(small, jnp.exp(xs * xs) * jsp.erfc(xs), large)


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

    @staticmethod
    def scatter_add(table, idx, value):
        """A copy of ``table`` with ``value[i]`` added at ``table[i, idx[i]]``."""
        return table.at[jnp.arange(table.shape[0]), jnp.asarray(idx)].add(value)


JAX = JaxOps()
