"""Array backends for learning rules.

Every learning rule in neurorl is written once, against the small namespace of
operations defined here. The same code then runs

* on NumPy arrays (``NUMPY``) for simulation and replay -- vectorised over
  subjects, one Python-level step per trial, no compilation; and
* on JAX arrays (:func:`get_jax_ops`) inside ``jax.lax.scan`` for the compiled
  likelihood of the estimators (value, exact gradient and Hessian), built once
  per machine and kept in an on-disk cache (:mod:`neurorl.backend.compiled`,
  :mod:`neurorl.backend.cache`); and
* on PyTensor tensors (:func:`get_pytensor_ops`) inside ``pytensor.scan`` for
  the PyMC models and symbolic checks.

Why JAX for the likelihood: PyTensor rewrites and links every graph again in
every new process (5-400 s before the first evaluation, measured in
docs/architecture.md); XLA executables are persisted on disk and a later process
loads them in a fraction of a second. See docs/architecture.md for the numbers.

Only operations that both backends support with gradients belong here. Rules
must not branch in Python on array values; use :meth:`where`.
"""

from __future__ import annotations

import math

import numpy as np

from .._lazy import scipy_special as _sp

__all__ = ["NUMPY", "NumpyOps", "Ops", "get_jax_ops", "get_pytensor_ops"]

SQRT2 = math.sqrt(2.0)
LOG_HALF = math.log(0.5)


class Ops:
    """Operations shared by the backends (derived from the primitives)."""

    # Primitives each backend supplies: exp, log, log1p, expm1, sqrt, abs, where,
    # maximum, minimum, clip, sum, max, erfc, erfcx, stack, asarray, gather,
    # scatter_add, onehot, argmax, sigmoid, cast_float.

    def logsumexp(self, x, axis=-1, keepdims=False):
        m = self.max(x, axis=axis, keepdims=True)
        m = self.where(self.isfinite(m), m, 0.0)
        out = self.log(self.sum(self.exp(x - m), axis=axis, keepdims=True)) + m
        return out if keepdims else self.squeeze(out, axis)

    def log_softmax(self, x, axis=-1):
        return x - self.logsumexp(x, axis=axis, keepdims=True)

    def softmax(self, x, axis=-1):
        return self.exp(self.log_softmax(x, axis=axis))

    def masked_logits(self, logits, available):
        """Set the logits of unavailable actions to -inf-like (-1e30)."""
        return self.where(available, logits, -1e30)

    def entropy(self, p, axis=-1):
        """Shannon entropy in nats; 0 log 0 = 0."""
        safe = self.where(p > 0, p, 1.0)
        return -self.sum(p * self.log(safe), axis=axis)

    def norm_cdf(self, x):
        """Standard normal CDF, Phi(x)."""
        return 0.5 * self.erfc(-x / SQRT2)

    def norm_pdf(self, x):
        return self.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)

    def norm_logcdf(self, x):
        """log Phi(x), accurate in both tails (via erfcx for x < 0)."""
        neg = x < 0
        xn = self.where(neg, x, -1.0)  # keep both branches finite
        xp = self.where(neg, 1.0, x)
        left = LOG_HALF + self.log(self.erfcx(-xn / SQRT2)) - 0.5 * xn * xn
        right = self.log1p(-0.5 * self.erfc(xp / SQRT2))
        return self.where(neg, left, right)

    def sigmoid(self, x):
        return 1.0 / (1.0 + self.exp(-x))

    def log_sigmoid(self, x):
        return -self.softplus(-x)

    def softplus(self, x):
        return self.where(x > 30, x, self.log1p(self.exp(self.minimum(x, 30.0))))


#: operations that NumPy and jax.numpy spell the same way (bound from the array module by ArrayModuleOps)
_SAME_NAME = ("exp", "log", "log1p", "expm1", "sqrt", "abs", "sign", "maximum", "minimum", "clip", "isfinite",
              "squeeze", "stack", "concatenate", "cos", "sin", "where")


class ArrayModuleOps(Ops):
    """A backend over an array module with NumPy's API (``numpy`` or ``jax.numpy``), vectorised over the leading
    (subject) axis. Subclasses supply ``erfc``/``erfcx`` and ``scatter_add`` (in place for NumPy, functional for
    JAX)."""

    def __init__(self, xp):
        self.xp = xp
        for name in _SAME_NAME:
            if not hasattr(type(self), name):  # a subclass's own version wins
                setattr(self, name, getattr(xp, name))

    def sum(self, x, axis=None, keepdims=False):
        return self.xp.sum(x, axis=axis, keepdims=keepdims)

    def max(self, x, axis=None, keepdims=False):
        return self.xp.max(x, axis=axis, keepdims=keepdims)

    def mean(self, x, axis=None, keepdims=False):
        return self.xp.mean(x, axis=axis, keepdims=keepdims)

    def asarray(self, x, dtype="float64"):
        return self.xp.asarray(x, dtype=dtype)

    def zeros(self, shape):
        return self.xp.zeros(shape)

    def ones(self, shape):
        return self.xp.ones(shape)

    def onehot(self, idx, n):
        """``onehot(idx, n)[..., k] = 1.0 if idx == k``."""
        return (self.xp.asarray(idx)[..., None] == self.xp.arange(n)).astype(self.xp.float64)

    def gather(self, table, idx):
        """``table[i, idx[i, ...]]`` for each row i (table: (n, m))."""
        idx = self.xp.asarray(idx)
        flat = idx.reshape(idx.shape[0], -1)
        return self.xp.take_along_axis(table, flat, axis=1).reshape(idx.shape)


class NumpyOps(ArrayModuleOps):
    """NumPy backend: eager, vectorised over the leading (subject) axis."""

    name = "numpy"

    # SciPy is imported on first use (neurorl._lazy): MAP runs the compiled JAX likelihood and never needs these

    @staticmethod
    def erfc(x):
        return _sp.erfc(x)

    @staticmethod
    def erfcx(x):
        return _sp.erfcx(x)

    def __init__(self):
        super().__init__(np)

    @staticmethod
    def scatter_add(table, idx, value):
        """Return a copy of ``table`` with ``value[i]`` added at ``table[i, idx[i]]``."""
        out = np.array(table, dtype=float, copy=True)
        out[np.arange(out.shape[0]), np.asarray(idx)] += value  # one index per row
        return out


NUMPY = NumpyOps()

_PYTENSOR_OPS = None


def get_pytensor_ops():
    """Return the PyTensor backend (imports pytensor on first use)."""
    global _PYTENSOR_OPS
    if _PYTENSOR_OPS is None:
        _PYTENSOR_OPS = _make_pytensor_ops()
    return _PYTENSOR_OPS


def _make_pytensor_ops():
    import pytensor.tensor as pt

    class PytensorOps(Ops):
        """PyTensor backend: symbolic, differentiable, scan-compatible."""

        name = "pytensor"
        exp = staticmethod(pt.exp)
        log = staticmethod(pt.log)
        log1p = staticmethod(pt.log1p)
        expm1 = staticmethod(pt.expm1)
        sqrt = staticmethod(pt.sqrt)
        abs = staticmethod(pt.abs)
        sign = staticmethod(pt.sgn)
        maximum = staticmethod(pt.maximum)
        minimum = staticmethod(pt.minimum)
        erfc = staticmethod(pt.erfc)
        erfcx = staticmethod(pt.erfcx)
        cos = staticmethod(pt.cos)
        sin = staticmethod(pt.sin)

        @staticmethod
        def isfinite(x):
            return pt.isinf(x).__invert__() & pt.isnan(x).__invert__()

        @staticmethod
        def clip(x, lo, hi):
            return pt.clip(x, lo, hi)

        @staticmethod
        def squeeze(x, axis):
            return pt.squeeze(x, axis=axis)

        @staticmethod
        def stack(xs, axis=0):
            return pt.stack(xs, axis=axis)

        @staticmethod
        def concatenate(xs, axis=0):
            return pt.concatenate(xs, axis=axis)

        @staticmethod
        def where(c, a, b):
            return pt.switch(c, a, b)

        @staticmethod
        def sum(x, axis=None, keepdims=False):
            return pt.sum(x, axis=axis, keepdims=keepdims)

        @staticmethod
        def max(x, axis=None, keepdims=False):
            return pt.max(x, axis=axis, keepdims=keepdims)

        @staticmethod
        def mean(x, axis=None, keepdims=False):
            return pt.mean(x, axis=axis, keepdims=keepdims)

        @staticmethod
        def asarray(x, dtype="float64"):
            return pt.as_tensor_variable(x).astype(dtype)

        @staticmethod
        def zeros(shape):
            return pt.zeros(shape)

        @staticmethod
        def ones(shape):
            return pt.ones(shape)

        @staticmethod
        def onehot(idx, n):
            return pt.eq(pt.shape_padright(idx), pt.arange(n)).astype("float64")

        @staticmethod
        def gather(table, idx):
            rows = pt.arange(table.shape[0])
            rows = rows.reshape((-1,) + (1,) * (idx.ndim - 1))
            return table[rows, idx]

        @staticmethod
        def scatter_add(table, idx, value):
            rows = pt.arange(table.shape[0])
            return pt.inc_subtensor(table[rows, idx], value)

    return PytensorOps()


def get_jax_ops():
    """Return the JAX backend (imports jax on first use and turns on 64-bit floats)."""
    from .jax_ops import JAX

    return JAX
