"""Observation models: how latents of an agent become choices and reaction times.

Reference: fitting.md §1 (choice models: softmax, probit, lapse), §2.1 (log-normal RT with policy-complexity
predictors, lucylai96/simplepolicies ``actor_critic_lik_rt.m``) and §2.2 (Wiener first-passage time, Pedersen, Frank
& Biele 2017 drift ``v = v_scale * (Q_upper - Q_lower)``).

Everything here is written once against the ``ops`` backend (:mod:`neurorl.backend`), so the same ``logp`` runs on
NumPy arrays and on PyTensor tensors inside a likelihood graph with exact gradients.

Conventions
-----------
* Parameters are dicts ``name -> array (n_subjects,)`` on the constrained scale (as for agents); fixed parameters
  may be left out of the dict (the model's ``fixed`` value is used). Data arrays have a leading subject axis:
  ``(n,)`` for one trial (inside a ``scan`` step) or ``(n, T)`` for all trials; parameters are broadcast over the
  trailing axes.
* ``logp`` returns the per-trial log density (same shape as the data); trials outside ``mask`` contribute exactly 0
  and their data are replaced by harmless values first, so missing RTs (NaN) never leak NaN into values or
  gradients.

Assumptions [A]
---------------
* :class:`LognormalRT` returns the density of **log RT** (as the source model does). The density of RT itself adds
  the parameter-free Jacobian ``-sum log RT`` (:meth:`LognormalRT.log_jacobian`); it cancels between models scored on
  the same RTs but must be added, identically, when comparing with a model of RT itself (e.g. :class:`WienerRT`).
* :class:`LognormalRT` takes the policy entropy in **nats** (the agents' ``entropy`` latent) and converts it to bits,
  ``H2 = entropy / ln 2``, because ``b2`` multiplies bits in the source; ``cost`` is in nats as in the source.
  ``b1``, ``b2`` are in seconds (the source's milliseconds / 1000; bounds (0.001, 0.5) = its [1, 500] ms); ``t0`` =
  0.15 s and ``sigma`` = 1 are fixed by default (free them with ``fixed={}``).
* The source skips trials with RT < 5 ms; :meth:`LognormalRT.mask` does the same but warns with the count (data are
  never dropped silently).
* :class:`WienerRT`: response 1 is the upper boundary and ``value_diff = Q(upper) - Q(lower)`` (for a two-option task,
  ``q[:, 1] - q[:, 0]`` with action 1 mapped to the upper boundary); ``sv`` (drift variability) is optional
  (``sv=True``); ``w`` is free by default, ``fixed={"w": 0.5}`` gives the unbiased model. Reaction times at or below
  ``t0`` have density 0; :meth:`WienerRT.check_data` raises on them; inside ``logp`` they get the finite floor of
  :func:`neurorl.fitting.wiener.wiener_logpdf`.
* Default priors (normal on the unconstrained scale) of the Wiener parameters are mildly informative around
  typical values (a ~ 1.5, t0 ~ 0.2 s); they are defaults, not claims.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import NUMPY
from ..params import Param, ParamModel
from .wiener import MIN_LOGP, check_wiener_data, sample_wiener, wiener_logpdf

__all__ = [
    "ObservationModel", "LognormalRT", "WienerRT", "softmax_logp", "probit_logp", "lapse_mix",
]

_LN2 = math.log(2.0)
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


def _expand(x, ndim):
    """Append trailing axes so a per-subject parameter ``(n,)`` broadcasts against data of ``ndim`` dims."""
    xd = getattr(x, "ndim", 0)
    if xd == 0 or xd >= ndim:
        return x
    return x[(Ellipsis,) + (None,) * (ndim - xd)]


def _ndim(x):
    return getattr(x, "ndim", np.ndim(x))


def lapse_mix(logp, lapse, log_n, ops=NUMPY):
    """``log((1 - lapse) * exp(logp) + lapse / n)`` computed stably (``log_n = log n``)."""
    lapse = ops.asarray(lapse)  # float64 even for a Python float (PyTensor would make 0.5 a float32 constant)
    a = ops.log1p(-lapse) + logp
    b = ops.log(lapse) - log_n
    m = ops.maximum(a, b)
    return m + ops.log(ops.exp(a - m) + ops.exp(b - m))


def softmax_logp(values, choice, ops=NUMPY, *, beta=1.0, lapse=None, avail=None):
    """Log probability of the chosen action under a softmax with optional lapse.

    ``P(a) = (1 - lapse) softmax(beta * values)_a + lapse / A_available`` (fitting.md §1).

    Parameters
    ----------
    values : array (..., A)
        Action values (or logits with ``beta=1``).
    choice : int array (...)
        Chosen action index.
    beta : float or array (...)
        Inverse temperature (per subject; broadcast over trailing axes).
    lapse : float or array (...), optional
        Lapse probability in (0, 1); ``None`` for no lapse.
    avail : bool array (..., A), optional
        Available actions (unavailable ones get probability 0).

    Returns
    -------
    array (...)
        ``log P(choice)``.
    """
    n_act = values.shape[-1]  # an int for arrays, symbolic for tensors (both fine below)
    beta = _expand(beta, _ndim(values) - 1)
    logits = _trail(beta) * values
    if avail is not None:
        logits = ops.masked_logits(logits, avail)
    logp = ops.log_softmax(logits)
    onehot = ops.onehot(choice, n_act)
    chosen = ops.sum(logp * onehot, axis=-1)
    if lapse is None:
        return chosen
    lapse = _expand(lapse, _ndim(chosen))
    if avail is None:
        log_n = ops.log(ops.asarray(n_act))
    else:
        log_n = ops.log(ops.sum(ops.where(avail, 1.0, 0.0), axis=-1))
    return lapse_mix(chosen, lapse, log_n, ops)


def probit_logp(mean_diff, choice, ops=NUMPY, *, sd=1.0, lapse=None):
    """Log probability of a two-option choice under a probit (DRA) rule, with optional lapse.

    ``P(choice = 1) = Phi(mean_diff / sd)`` with ``mean_diff = qbar_1 - qbar_0`` and
    ``sd = sqrt(sigma_0^2 + sigma_1^2)`` (fitting.md §1); ``log Phi`` is accurate in both tails
    (``ops.norm_logcdf``). With a lapse: ``(1 - lapse) P + lapse / 2``.

    Parameters
    ----------
    mean_diff : array (...)
        Difference of the posterior means, option 1 minus option 0.
    choice : array (...) of 0/1
        Chosen option.
    sd : float or array (...)
        Standard deviation of the difference (> 0).
    lapse : float or array (...), optional
        Lapse probability in (0, 1); ``None`` for none.
    """
    nd = _ndim(mean_diff)
    sign = 2.0 * ops.asarray(choice) - 1.0
    logp = ops.norm_logcdf(sign * mean_diff / _expand(sd, nd))
    if lapse is None:
        return logp
    return lapse_mix(logp, _expand(lapse, nd), _LN2, ops)


def _trail(x):
    if _ndim(x) == 0:
        return x
    return x[..., None]


class ObservationModel(ParamModel):
    """Base class: a parameter spec (with fixed parameters) and a backend-generic ``logp``.

    Parameters
    ----------
    fixed : dict, optional
        Parameters held constant (name -> value). ``None`` uses the model's ``default_fixed``; ``{}`` frees all.
    """

    def __init__(self, *, fixed: dict | None = None):
        self._init_params(fixed)

    def _get(self, p: dict, name: str, ndim: int, ops=NUMPY):
        val = p[name] if name in p else self.fixed.get(name)
        if val is None:
            raise ValueError(f"{self.name}: parameter {name!r} is missing (free parameters: {self.param_names})")
        # float64: PyTensor would make a float32 constant of e.g. a fixed 0.5 (and take its log in float32)
        return _expand(ops.asarray(val), ndim)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fixed={self.fixed!r})"


def _mask_and_safe_rt(rt, mask, ops):
    if mask is None:
        return None, rt
    return mask, ops.where(mask, rt, 1.0)


class LognormalRT(ObservationModel):
    """Log-normal RT with policy-complexity predictors (fitting.md §2.1).

    ``log RT ~ N(log(t0 + b1 |cost| + b2 H2), sigma^2)``, ``cost`` in nats, ``H2`` the policy entropy in bits.
    ``logp`` is the density of **log RT**; add :meth:`log_jacobian` for the density of RT.

    Parameters
    ----------
    fixed : dict, optional
        Default ``{"t0": 0.15, "sigma": 1.0}`` as in the source; ``{}`` frees both.
    min_rt : float
        RTs below this (seconds) are excluded by :meth:`mask` (source: 5 ms).
    """

    name = "lognormal_rt"
    default_fixed = {"t0": 0.15, "sigma": 1.0}

    def __init__(self, *, fixed: dict | None = None, min_rt: float = 0.005):
        super().__init__(fixed=fixed)
        self.min_rt = float(min_rt)

    def param_spec(self) -> list[Param]:
        return [
            Param("b1", 0.001, 0.5, 0.05, doc="seconds per nat of |policy cost|"),
            Param("b2", 0.001, 0.5, 0.05, doc="seconds per bit of policy entropy"),
            Param("t0", 0.0, 1.0, 0.15, doc="non-decision time (s)"),
            Param("sigma", 0.0, math.inf, 1.0, doc="sd of log RT"),
        ]

    def mean_log_rt(self, p, cost, entropy, ops=NUMPY):
        """``log(t0 + b1 |cost| + b2 entropy / ln 2)`` (entropy in nats)."""
        nd = _ndim(cost)
        t0, b1, b2 = (self._get(p, k, nd, ops) for k in ("t0", "b1", "b2"))
        return ops.log(t0 + b1 * ops.abs(cost) + b2 * entropy / _LN2)

    def logp(self, p, rt, cost, entropy, ops=NUMPY, *, mask=None):
        """Per-trial log density of log RT.

        Parameters
        ----------
        p : dict
            Parameters (``b1``, ``b2``; ``t0``, ``sigma`` unless fixed), arrays ``(n,)``.
        rt : array (n,) or (n, T)
            Reaction times in seconds.
        cost : array like ``rt``
            Policy cost ``log pi(a|s) - log P(a)`` in nats (its absolute value is used).
        entropy : array like ``rt``
            Policy entropy in nats (converted to bits).
        mask : bool array like ``rt``, optional
            Trials scored; others contribute 0 (see :meth:`mask`).
        """
        mask, rt = _mask_and_safe_rt(rt, mask, ops)
        mu = self.mean_log_rt(p, cost, entropy, ops)
        sigma = self._get(p, "sigma", _ndim(rt), ops)
        z = (ops.log(rt) - mu) / sigma
        out = -0.5 * z * z - ops.log(sigma) - _LOG_SQRT_2PI
        return out if mask is None else ops.where(mask, out, 0.0)

    def sample(self, p, cost, entropy, rng) -> np.ndarray:
        """Draw reaction times (seconds, NumPy): ``exp(N(mean_log_rt, sigma^2))``."""
        mu = self.mean_log_rt(p, np.asarray(cost, float), np.asarray(entropy, float))
        sigma = self._get(p, "sigma", np.ndim(mu))
        return np.exp(mu + sigma * rng.standard_normal(np.shape(mu)))

    def log_jacobian(self, rt, ops=NUMPY, *, mask=None):
        """``-log RT`` per trial: add to :meth:`logp` to get the log density of RT itself (0 outside ``mask``)."""
        mask, rt = _mask_and_safe_rt(rt, mask, ops)
        out = -ops.log(rt)
        return out if mask is None else ops.where(mask, out, 0.0)

    def mask(self, rt, valid=None) -> np.ndarray:
        """Trials with a usable RT: ``valid`` and ``rt >= min_rt`` (NaN excluded); warns with the excluded count."""
        rt = np.asarray(rt, dtype=float)
        valid = np.ones(rt.shape, bool) if valid is None else np.asarray(valid, bool)
        with np.errstate(invalid="ignore"):
            ok = valid & np.isfinite(rt) & (rt >= self.min_rt)
        n_out = int(valid.sum() - ok.sum())
        if n_out:
            warnings.warn(
                f"{self.name}: {n_out} valid trial(s) have no RT or an RT below min_rt={self.min_rt} s and are "
                f"left out of the RT likelihood (their choices still count)", stacklevel=2,
            )
        return ok

    def check_data(self, rt, valid=None) -> None:
        """Raise ``ValueError`` naming (subject, trial) if a valid trial has a non-positive or missing RT."""
        check_wiener_data(rt, 0.0, valid=valid, reason="but log RT needs a positive RT",
                          hint="Mark these trials invalid or exclude them with LognormalRT.mask.")


class WienerRT(ObservationModel):
    """Wiener diffusion (choice and RT jointly) with drift driven by a value difference (fitting.md §2.2).

    ``v_t = v_scale * value_diff_t`` (Pedersen, Frank & Biele 2017), boundary separation ``a``, relative start ``w``,
    non-decision time ``t0`` and, with ``sv=True``, drift variability ``sv``; the density is the exact
    Navarro--Fuss series of :func:`neurorl.fitting.wiener.wiener_logpdf`.

    Parameters
    ----------
    fixed : dict, optional
        e.g. ``{"w": 0.5}`` for an unbiased start; default none fixed.
    sv : bool
        Include across-trial drift variability ``sv``.
    err : float
        Navarro--Fuss error that selects the series per element (static).
    min_logp : float
        Floor of the per-trial log density (also used for ``rt <= t0``).
    """

    name = "wiener_rt"

    def __init__(self, *, fixed: dict | None = None, sv: bool = False, err: float = 1e-10,
                 min_logp: float = MIN_LOGP):
        self.use_sv = bool(sv)
        super().__init__(fixed=fixed)
        self.err = float(err)
        self.min_logp = float(min_logp)

    def param_spec(self) -> list[Param]:
        spec = [
            Param("v_scale", 0.0, math.inf, 2.0, prior_loc=math.log(2.0), prior_scale=1.5,
                  doc="drift per unit value difference"),
            Param("a", 0.0, math.inf, 1.5, prior_loc=math.log(1.5), prior_scale=1.0, doc="boundary separation"),
            Param("w", 0.0, 1.0, 0.5, prior_scale=1.5, doc="relative start point (0 = lower boundary)"),
            Param("t0", 0.0, 2.0, 0.2, prior_loc=-2.0, prior_scale=1.5, doc="non-decision time (s)"),
        ]
        if self.use_sv:
            spec.append(Param("sv", 0.0, math.inf, 0.5, prior_loc=math.log(0.5), doc="sd of the drift"))
        return spec

    def drift(self, p, value_diff, ops=NUMPY):
        """``v_scale * value_diff``."""
        return self._get(p, "v_scale", _ndim(value_diff), ops) * value_diff

    def logp(self, p, rt, response, value_diff, ops=NUMPY, *, mask=None):
        """Per-trial log density of (response, rt).

        Parameters
        ----------
        p : dict
            Parameters, arrays ``(n,)``.
        rt : array (n,) or (n, T)
            Reaction times in seconds.
        response : array like ``rt``
            1 = upper boundary, 0 = lower.
        value_diff : array like ``rt``
            ``Q(upper) - Q(lower)``.
        mask : bool array like ``rt``, optional
            Trials scored; others contribute 0.
        """
        mask, rt = _mask_and_safe_rt(rt, mask, ops)
        nd = _ndim(rt)
        a, w, t0 = (self._get(p, k, nd, ops) for k in ("a", "w", "t0"))
        sv = self._get(p, "sv", nd, ops) if self.use_sv else 0.0
        if mask is not None:
            # masked trials are scored at a harmless rt (never below t0)
            rt = ops.where(mask, rt, t0 + 1.0)
            response = ops.where(mask, response, 0.0)
        out = wiener_logpdf(rt, response, self.drift(p, value_diff, ops), a, w, t0, ops, sv=sv, err=self.err,
                            min_logp=self.min_logp)
        return out if mask is None else ops.where(mask, out, 0.0)

    def sample(self, p, value_diff, rng, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``(response, rt)`` (NumPy) with drift ``v_scale * value_diff``; see
        :func:`neurorl.fitting.wiener.sample_wiener` (``kwargs``: ``dt``, ``max_t``)."""
        value_diff = np.asarray(value_diff, float)
        nd = value_diff.ndim
        a, w, t0 = (self._get(p, k, nd) for k in ("a", "w", "t0"))
        sv = self._get(p, "sv", nd) if self.use_sv else 0.0
        return sample_wiener(self.drift(p, value_diff), a, w, t0, rng, sv=sv, **kwargs)

    def check_data(self, rt, *, t0=None, response=None, valid=None) -> None:
        """Raise ``ValueError`` naming (subject, trial) of valid trials the model cannot score.

        Checks that every valid RT exceeds ``t0`` (the given value, scalar or per subject, else the fixed ``t0``;
        with a free ``t0`` and none given, that RTs are positive) and that responses are 0 or 1.
        """
        if t0 is None:
            t0 = self.fixed.get("t0", 0.0)
        check_wiener_data(rt, t0, valid=valid)
        if response is not None:
            r = np.asarray(response, dtype=float)
            v = np.ones(r.shape, bool) if valid is None else np.broadcast_to(np.asarray(valid, bool), r.shape)
            bad = v & ~((r == 0) | (r == 1))
            if np.any(bad):
                idx = [tuple(int(i) for i in row) for row in np.argwhere(bad)[:5]]
                raise ValueError(
                    f"{self.name}: responses must be 0 (lower) or 1 (upper); {int(bad.sum())} valid trial(s) are "
                    f"not, first at (subject, trial) {idx}"
                )

    @staticmethod
    def t0_upper(rt, valid=None) -> np.ndarray:
        """Per-subject fastest valid RT: the upper limit of ``t0`` for data ``(n, T)``."""
        rt = np.asarray(rt, dtype=float)
        valid = np.ones(rt.shape, bool) if valid is None else np.asarray(valid, bool)
        return np.nanmin(np.where(valid, rt, np.nan), axis=-1)
