"""Parameter specifications: bounds, transforms, defaults and default priors.

A :class:`Param` is fully described by its bounds; the transform to the
unconstrained real line follows from them:

======================  ==========================================
bounds                  unconstrained -> constrained
======================  ==========================================
(-inf, inf)             identity
(lo, inf)               lo + exp(x)
(-inf, hi)              hi - exp(x)
(lo, hi), both finite   lo + (hi - lo) * sigmoid(x)   (scaled logit)
======================  ==========================================

Default priors are Normal on the unconstrained scale, ``N(prior_loc,
prior_scale**2)``; the defaults (``0``, ``2.5``) follow fitting.md §3 (the cbm
and benchmark convention, prior variance 6.25). They are deliberately weak and
can be overridden per parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from .backend import NUMPY

__all__ = ["Param", "ParamModel", "resolve_params"]


@dataclass(frozen=True)
class Param:
    """One free parameter of an agent.

    Parameters
    ----------
    name : str
        Parameter name (used as the key in parameter dicts and datasets).
    lower, upper : float
        Open bounds of the constrained scale; ``-inf``/``inf`` for none.
    default : float
        Simulation starting point on the constrained scale (not a prior).
    prior_loc, prior_scale : float
        Normal prior on the unconstrained scale.
    doc : str
        One-line description shown in ``agent.describe()``.
    """

    name: str
    lower: float
    upper: float
    default: float
    prior_loc: float = 0.0
    prior_scale: float = 2.5
    doc: str = ""
    _kind: str = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        lo, hi = float(self.lower), float(self.upper)
        if not lo < hi:
            raise ValueError(f"Param {self.name!r}: lower bound {lo} must be below upper bound {hi}")
        if not lo < self.default < hi:
            raise ValueError(
                f"Param {self.name!r}: default {self.default} lies outside the open interval ({lo}, {hi})"
            )
        if not self.prior_scale > 0:
            raise ValueError(f"Param {self.name!r}: prior_scale must be positive, got {self.prior_scale}")
        kind = ("identity", "lower", "upper", "interval")[
            (math.isfinite(lo) and not math.isfinite(hi)) * 1
            + (not math.isfinite(lo) and math.isfinite(hi)) * 2
            + (math.isfinite(lo) and math.isfinite(hi)) * 3
        ]
        object.__setattr__(self, "_kind", kind)

    @property
    def transform(self) -> str:
        """Name of the transform implied by the bounds."""
        return {"identity": "identity", "lower": "log", "upper": "neglog", "interval": "logit"}[self._kind]

    def to_constrained(self, x, ops=NUMPY):
        """Map unconstrained values to the parameter's own scale (backend-generic)."""
        k, lo, hi = self._kind, self.lower, self.upper
        if k == "identity":
            return x
        if k == "lower":
            return lo + ops.exp(x)
        if k == "upper":
            return hi - ops.exp(x)
        return lo + (hi - lo) * ops.sigmoid(x)

    def log_jacobian(self, x, ops=NUMPY):
        """log |d constrained / d unconstrained| at unconstrained ``x``."""
        k = self._kind
        if k == "identity":
            return 0.0 * x
        if k in ("lower", "upper"):
            return x
        return math.log(self.upper - self.lower) + ops.log_sigmoid(x) + ops.log_sigmoid(-x)

    def to_unconstrained(self, value):
        """Inverse transform (NumPy only). Raises if ``value`` is out of bounds."""
        v = np.asarray(value, dtype=float)
        bad = ~((v > self.lower) & (v < self.upper))
        if np.any(bad):
            first = v[bad].flat[0]
            raise ValueError(
                f"Param {self.name!r}: value {first} outside its bounds ({self.lower}, {self.upper})"
            )
        k, lo, hi = self._kind, self.lower, self.upper
        if k == "identity":
            return v
        if k == "lower":
            return np.log(v - lo)
        if k == "upper":
            return np.log(hi - v)
        u = (v - lo) / (hi - lo)
        return np.log(u) - np.log1p(-u)

    def with_(self, **changes) -> "Param":
        """A copy with some fields changed (e.g. a different default or prior)."""
        return replace(self, **changes)


def resolve_params(spec: tuple[Param, ...], values, n: int, *, owner: str = "agent") -> dict[str, np.ndarray]:
    """Turn user-supplied parameter values into ``{name: array of shape (n,)}``.

    ``values`` may be ``None`` (defaults), a mapping name -> scalar or
    length-``n`` array, or an ``xarray.Dataset`` with variables on a ``subject``
    dimension. Missing names take their defaults; unknown names raise.
    """
    known = {p.name: p for p in spec}
    if values is None:
        values = {}
    if hasattr(values, "data_vars"):
        values = {k: values[k].values for k in values.data_vars}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(
            f"{owner}: unknown parameter(s) {unknown}; this agent's parameters are {sorted(known)}"
        )
    out = {}
    for p in spec:
        v = np.asarray(values.get(p.name, p.default), dtype=float)
        if v.ndim == 0:
            v = np.full(n, float(v))
        if v.shape != (n,):
            raise ValueError(
                f"{owner}: parameter {p.name!r} has shape {v.shape}; expected a scalar or one value per "
                f"subject, shape ({n},)"
            )
        if not np.all((v > p.lower) & (v < p.upper)):
            i = int(np.flatnonzero(~((v > p.lower) & (v < p.upper)))[0])
            raise ValueError(
                f"{owner}: parameter {p.name!r} = {v[i]} for subject index {i} lies outside its bounds "
                f"({p.lower}, {p.upper})"
            )
        out[p.name] = v
    return out


class ParamModel:
    """Base of everything with a parameter spec: agents and observation models.

    Subclasses implement :meth:`param_spec` and call :meth:`_init_params` from
    ``__init__``. Fixed parameters are held at a constant (not free for
    fitting) but still passed to the model; they are not transformed, so a
    closed bound is allowed (e.g. ``w = 1`` for a purely model-based agent).
    """

    name: ClassVar[str] = ""
    #: parameters fixed unless the user passes ``fixed``
    default_fixed: ClassVar[dict[str, float]] = {}

    def param_spec(self) -> list[Param]:
        raise NotImplementedError

    def _init_params(self, fixed: dict | None) -> None:
        spec = tuple(self.param_spec())
        names = [p.name for p in spec]
        if len(set(names)) != len(names):
            raise ValueError(f"{self.name}: duplicate parameter names {names}")
        fixed = dict(self.default_fixed) if fixed is None else dict(fixed)
        unknown = sorted(set(fixed) - set(names))
        if unknown:
            raise ValueError(f"{self.name}: cannot fix unknown parameter(s) {unknown}; parameters are {names}")
        self.fixed = {k: float(v) for k, v in fixed.items()}
        for p in spec:
            if p.name in self.fixed and not np.isfinite(self.fixed[p.name]):
                raise ValueError(f"{self.name}: fixed {p.name}={self.fixed[p.name]} is not a finite number (bounds "
                                 f"[{p.lower}, {p.upper}])")
            if p.name in self.fixed and not p.lower <= self.fixed[p.name] <= p.upper:
                raise ValueError(f"{self.name}: fixed {p.name}={self.fixed[p.name]} outside [{p.lower}, {p.upper}]")
        self.all_params = spec
        self.params = tuple(p for p in spec if p.name not in self.fixed)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names of the free parameters."""
        return tuple(p.name for p in self.params)

    def resolve(self, values, n: int) -> dict[str, np.ndarray]:
        """All parameters (free and fixed) as arrays of shape ``(n,)`` (free ones validated against the bounds).

        ``values`` may also list fixed parameters (e.g. the ``params`` of a
        simulation) when they equal the fixed values; other values raise.
        """
        if values is not None and self.fixed:
            if hasattr(values, "data_vars"):
                values = {k: values[k].values for k in values.data_vars}
            values = dict(values)
            for k, v in self.fixed.items():
                if k in values:
                    given = np.asarray(values.pop(k), dtype=float)
                    if not np.allclose(given, v, rtol=1e-12, atol=0.0):
                        raise ValueError(f"{self.name}: parameter {k!r} is fixed at {v}; got {given.ravel()[:5]}")
        out = resolve_params(self.params, values, n, owner=self.name)
        for k, v in self.fixed.items():
            out[k] = np.full(n, v)
        return out

    def describe(self) -> str:
        """One line per parameter: bounds, transform, default or fixed value, meaning."""
        family = getattr(self, "family", "")
        lines = [f"{self.name} ({family})" if family else self.name]
        for p in self.all_params:
            tag = f"fixed at {self.fixed[p.name]}" if p.name in self.fixed else f"default {p.default}"
            lines.append(f"  {p.name:<12} ({p.lower}, {p.upper}) via {p.transform}; {tag}. {p.doc}")
        return "\n".join(lines)
