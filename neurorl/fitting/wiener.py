"""Exact Wiener first-passage-time density (Navarro & Fuss 2009), written once for both backends.

Reference: fitting.md §2.2 (formulas, signed-RT convention) and §2.3 (the ``hddm-wfpt`` reference
implementation used by the tests). The density of a response at the lower boundary after decision time
``tau = rt - t0`` is

    p_lower(tau | v, a, w) = a^-2 exp(-v a w - v^2 tau / 2) f(tau / a^2 | w),

with the standardised density ``f(u | w)`` (drift 0, boundary 1) given by two convergent series,

    large time:  f(u|w) = pi sum_{k>=1} k exp(-k^2 pi^2 u / 2) sin(k pi w),
    small time:  f(u|w) = (2 pi u^3)^(-1/2) sum_{k in Z} (w + 2k) exp(-(w + 2k)^2 / (2u)).

The upper boundary uses ``p_upper(tau | v, a, w) = p_lower(tau | -v, a, 1 - w)``; response 1 is the upper
boundary, 0 the lower (HDDM's signed RT ``x = +rt`` for the upper boundary). With across-trial drift
variability ``sv`` the drift is integrated out in closed form (fitting.md §2.2):

    log p_lower = log f(u|w) - 2 log a - log(1 + sv^2 tau)/2 + ((a w sv)^2 - 2 a v w - v^2 tau) / (2 (sv^2 tau + 1)),

which reduces to the formula above at ``sv = 0``.

Static number of terms (needed for autodiff) and its error bound
----------------------------------------------------------------
The function is one straight-line expression graph, so it runs on NumPy arrays and inside PyTensor with exact
reverse-mode gradients. Both series are evaluated for every element with a *fixed* number of terms,
``k = -N_SMALL..N_SMALL`` (7 terms) for the small-time series and ``k = 1..N_LARGE`` (10 terms) for the large-time
series; the series actually used is selected per element with ``ops.where`` by the Navarro--Fuss rule: small time
when ``K_s(u, err) < K_l(u, err)``, i.e. when ``u < u*(err)`` (:func:`switch_point`, computed once per ``err``), with

    K_l = max(sqrt(-2 ln(pi u err) / (pi^2 u)), 1 / (pi sqrt u))     (1 / (pi sqrt u) if pi u err >= 1),
    K_s = max(2 + sqrt(-2 u ln(2 sqrt(2 pi u) err)), sqrt(u) + 1)     (2 if 2 sqrt(2 pi u) err >= 1).

Bound [D] (checked in ``tests/test_wiener.py``): ``K_s`` increases and ``K_l`` decreases in ``u``, so the rule
switches at a single point ``u*(err)``; for every ``err`` in ``[1e-300, 0.5]`` (the allowed range),
``u*`` lies in ``[0.082, 0.29]``, and the largest term count Navarro--Fuss ever ask for is ``K(u*)`` = 4.9 for
``err = 1e-10`` (7.7 for 1e-30, 22 for 1e-300) terms of a series whose terms fall like ``exp(-k^2 ...)``. Instead of
the absolute bound ``err`` on ``f`` we fix the counts by the *relative* truncation error over each series' whole
regime, computed in 60-digit arithmetic (mpmath) over ``w`` in ``[1e-6, 1 - 1e-6]``:

* small time, ``k = -3..3``, any ``u <= 0.3``: relative error < 3e-29;
* large time, ``k = 1..10``, any ``u >= 0.08``: relative error < 3e-18.

So the truncation error is below double precision everywhere in ``u`` in (0, inf), whatever ``err`` in the allowed
range selects; ``err`` only moves the switch point (where both series are accurate to machine precision, so the
density and its gradient are continuous to rounding). The remaining error is floating-point rounding: relative
1e-13 or better for ``w`` in [1e-3, 1 - 1e-3] (cancellation between the ``+-k`` small-time terms grows like 1/w for
``w -> 0``).

Log space without underflow
---------------------------
Each series is evaluated in log space by factoring out its dominant term, which leaves a sum of terms whose
exponents are all <= 0 (a log-sum-exp with a known maximum, signs kept as they are; the sums are unrolled so that
PyTensor fuses the whole density into one elementwise kernel, which also keeps its C compilation short):

    small: log f = -log(2 pi)/2 - 1.5 log u + log w - w^2 / (2u) + log sum_k (1 + 2k/w) exp(-2k(k + w)/u),
    large: log f = log pi - pi^2 u / 2 + log sum_k k exp(-(k^2 - 1) pi^2 u / 2) sin(k pi w).

The remaining sums are positive and of order one in their own regime (the first term is 1, resp. ``sin(pi w)``), so
nothing overflows or underflows however small or large ``u`` is. The branch that is *not* selected for an element is
evaluated at a harmless ``u`` (``ops.where`` on the input as well as on the output), so it can produce neither NaN
values nor NaN gradients.

Outside the support (rt <= t0) and the floor [A]
-----------------------------------------------
The density is 0 for ``rt <= t0``. For fitting, :func:`wiener_logpdf` never returns ``-inf`` or NaN: it returns
``min_logp + OUTSIDE_SLOPE * (rt - t0)`` there (``OUTSIDE_SLOPE`` = 1000 per second), a large negative finite value
that keeps falling as ``t0`` moves further past ``rt`` -- so a gradient-based fit is pushed back towards
``t0 < rt`` and a sampler rejects the region -- and it floors every log density at ``min_logp`` (default ``-1e5``,
far below any density of real data under sensible parameters; the floor also catches ``tau / a^2`` so small that
``w^2 / (2u)`` would overflow). Data checks that *raise* live in :func:`check_wiener_data` (and
``WienerRT.check_data`` in :mod:`neurorl.fitting.observation`); use them before fitting with a fixed ``t0``.

Other assumptions [A]
---------------------
* ``a > 0``, ``0 < w < 1``, ``sv >= 0``; with NumPy inputs these are checked (ValueError naming the parameter and the
  first offending index); symbolic (PyTensor) inputs are not checked -- keep them in bounds with the parameter
  transforms.
* ``err`` must be a Python float in ``[1e-300, 0.5]`` (it is static: it only selects the series).
* Only ``sv`` is supported analytically; ``sz`` and ``st`` (HDDM's numerical integrals) are not implemented here.
* All inputs are converted with ``ops.asarray`` (float64): PyTensor turns a Python float that float32 represents
  exactly (0.5, 1.0) into a float32 constant, and ``log``/``exp`` of it would then be computed in single precision.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..backend import NUMPY

__all__ = [
    "wiener_logpdf", "wiener_pdf", "wiener_log_p_upper", "wiener_p_upper", "check_wiener_data",
    "navarro_fuss_terms", "sample_wiener", "N_SMALL", "N_LARGE", "MIN_LOGP", "OUTSIDE_SLOPE", "ERR_RANGE",
]

#: small-time series uses k = -N_SMALL..N_SMALL (2 N_SMALL + 1 terms)
N_SMALL = 3
#: large-time series uses k = 1..N_LARGE
N_LARGE = 10
#: default floor of the log density (and its value at rt = t0)
MIN_LOGP = -1.0e5
#: slope (per second) of the finite stand-in for log 0 when rt < t0
OUTSIDE_SLOPE = 1.0e3
#: allowed range of ``err`` (keeps the series switch point u* inside [0.082, 0.29], see the module docstring)
ERR_RANGE = (1e-300, 0.5)
#: smallest standardised time evaluated (below it the floor applies; keeps w^2 / (2u) finite)
U_MIN = 1e-100

_LOG_2PI_HALF = 0.5 * math.log(2.0 * math.pi)
_LOG_PI = math.log(math.pi)
_PI2 = math.pi ** 2
_LN2 = math.log(2.0)
# harmless standardised times for the branch that is not selected (inside both series' accurate ranges)
_U_SAFE_SMALL = 0.25
_U_SAFE_LARGE = 1.0


# ----------------------------------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------------------------------
def _log1mexp(y, ops):
    """``log(1 - exp(-y))`` for ``y > 0`` (Maechler's two-branch form, both branches on safe inputs)."""
    near = y < _LN2
    y_near = ops.where(near, y, 0.5 * _LN2)
    y_far = ops.where(near, 1.0, y)
    return ops.where(near, ops.log(-ops.expm1(-y_near)), ops.log1p(-ops.exp(-y_far)))


def _check_err(err):
    if not isinstance(err, (int, float)) or isinstance(err, bool):
        raise ValueError(f"wiener: err must be a Python float (it is static), got {type(err).__name__}")
    if not ERR_RANGE[0] <= err <= ERR_RANGE[1]:
        raise ValueError(f"wiener: err={err} outside the allowed range {ERR_RANGE}")


def _is_numeric(x):
    return isinstance(x, (int, float, np.ndarray, np.number, list, tuple))


def _check_numpy_params(a, w, sv, response):
    """Value checks possible only for concrete (NumPy) inputs."""
    checks = (
        ("a", a, lambda x: x > 0, "must be > 0"),
        ("w", w, lambda x: (x > 0) & (x < 1), "must lie in (0, 1)"),
        ("sv", sv, lambda x: x >= 0, "must be >= 0"),
        ("response", response, lambda x: (x == 0) | (x == 1), "must be 0 (lower) or 1 (upper)"),
    )
    for name, val, ok, why in checks:
        if not _is_numeric(val):
            continue
        arr = np.asarray(val, dtype=float)
        good = ok(arr)
        if not np.all(good):
            idx = np.argwhere(~good)[0] if arr.ndim else ()
            bad = arr[tuple(idx)]
            where = f" at index {tuple(int(i) for i in idx)}" if arr.ndim else ""
            raise ValueError(f"wiener: {name} {why}; got {bad}{where}")


def navarro_fuss_terms(u, err, ops=NUMPY):
    """Navarro & Fuss (2009) term counts ``(K_s, K_l)`` for standardised time ``u`` and absolute error ``err``.

    Returned unrounded (the small-time series is preferred where ``K_s < K_l``), exactly as HDDM's ``ftt_01w``.
    All branches are finite for ``u > 0``.
    """
    pi = math.pi
    c_l = pi * u * err
    kl_floor = 1.0 / (pi * ops.sqrt(u))
    kl_bound = ops.sqrt(ops.maximum(-2.0 * ops.log(ops.minimum(c_l, 1.0)), 0.0) / (_PI2 * u))
    kl = ops.where(c_l < 1.0, ops.maximum(kl_bound, kl_floor), kl_floor)
    c_s = 2.0 * ops.sqrt(2.0 * pi * u) * err
    ks_bound = 2.0 + ops.sqrt(ops.maximum(-2.0 * u * ops.log(ops.minimum(c_s, 1.0)), 0.0))
    ks = ops.where(c_s < 1.0, ops.maximum(ks_bound, ops.sqrt(u) + 1.0), 2.0)
    return ks, kl


def _log_f_small(u, w, ops, partials=False):
    """log f(u|w) from the small-time series, k = -N_SMALL..N_SMALL (accurate for u <= 0.3); with ``partials``,
    ``(log f, d log f / du, d log f / dw)``."""
    # (w + 2k) exp(-(w + 2k)^2 / 2u) = w exp(-w^2 / 2u) * (1 + 2k/w) exp(-2k(k + w)/u); k(k + w) >= 0 for all k.
    # With r = exp(-2/u), p = exp(-2w/u) and m = exp(-2(1 - w)/u), all in [0, 1]:
    #   exp(-2k(k + w)/u) = r^(k^2) p^k,   exp(-2k(k - w)/u) = r^(k(k - 1)) m^k,
    # so three exponentials and products replace 2 N_SMALL exponentials (no factor can overflow). The sum is
    # unrolled (not a reduction over a trailing axis) so that it stays one elementwise expression. Its derivatives
    # are sums of the same terms: d/du exp(-c/u) = c/u^2 exp(-c/u), d/dw (1 + 2k/w) = -2k/w^2.
    inv_u = 1.0 / u
    inv_w = 1.0 / w
    p = ops.exp(-2.0 * w * inv_u)
    m = ops.exp(-2.0 * (1.0 - w) * inv_u)
    r = p * m  # exp(-2/u); underflows only where its exact value does
    r2 = r * r
    s = 1.0
    s_u = s_w = 0.0
    r_sq, r_kk, r_odd, r_even, p_k, m_k = 1.0, 1.0, r, 1.0, 1.0, 1.0
    for k in range(1, N_SMALL + 1):
        r_sq = r_sq * r_odd  # r^(k^2): r_odd = r^(2k - 1)
        r_kk = r_kk * r_even  # r^(k(k - 1)): r_even = r^(2k - 2)
        p_k = p_k * p
        m_k = m_k * m
        e_a, e_b = r_sq * p_k, r_kk * m_k
        c_a, c_b = 1.0 + 2.0 * k * inv_w, 1.0 - 2.0 * k * inv_w
        s = s + c_a * e_a + c_b * e_b
        if partials:
            s_u = s_u + 2.0 * k * (c_a * e_a * (k + w) + c_b * e_b * (k - w))
            s_w = s_w + 2.0 * k * (inv_w * inv_w * (e_b - e_a) + inv_u * (c_b * e_b - c_a * e_a))
        r_odd = r_odd * r2
        r_even = r_even * r2
    log_f = -_LOG_2PI_HALF - 1.5 * ops.log(u) + ops.log(w) - 0.5 * w * w * inv_u + ops.log(s)
    if not partials:
        return log_f
    inv_s = 1.0 / s
    d_u = -1.5 * inv_u + 0.5 * w * w * inv_u * inv_u + s_u * inv_u * inv_u * inv_s
    d_w = inv_w - w * inv_u + s_w * inv_s
    return log_f, d_u, d_w


#: Taylor coefficients of sin(x) / x and cos(x) in powers of x^2, to x^20: on [0, pi/2] the first term left out is
#: below 2e-17 (Lagrange remainder)
_SIN_COEF = tuple((-1) ** k / math.factorial(2 * k + 1) for k in range(11))
_COS_COEF = tuple((-1) ** k / math.factorial(2 * k) for k in range(11))


def _sincos_pi(w, ops):
    """``(sin(pi w), cos(pi w))`` for ``w`` in [0, 1], by polynomials.

    XLA's CPU backend calls the C library's sin and cos one element at a time, which also keeps every fused loop
    that contains them from vectorising (measured on 5,472 elements: a sine 48 us against an exponential's 9 us, and
    the large-time series with its derivatives 320 us against 100 us for its value). The argument is folded onto
    ``x = pi min(w, 1 - w)`` in [0, pi/2] (``1 - w`` is exact for ``w >= 1/2``), where the Taylor polynomials to
    ``x^21`` and ``x^20`` are exact to rounding; ``sin(pi w) = sin(x)`` keeps its relative accuracy as ``w`` goes
    to 0 or 1 and ``cos(pi w) = +-cos(x)``.
    """
    far = w > 0.5
    x = math.pi * ops.where(far, 1.0 - w, w)
    x2 = x * x
    sin_x = cos_x = 0.0
    for cs, cc in zip(reversed(_SIN_COEF), reversed(_COS_COEF)):
        sin_x = sin_x * x2 + cs
        cos_x = cos_x * x2 + cc
    return sin_x * x, ops.where(far, -cos_x, cos_x)


def _log_f_large(u, w, ops, partials=False):
    """log f(u|w) from the large-time series, k = 1..N_LARGE (accurate for u >= 0.08); with ``partials``,
    ``(log f, d log f / du, d log f / dw)``."""
    # pi sum_k k exp(-k^2 pi^2 u / 2) sin(k pi w), the k = 1 exponential factored out. With q = exp(-pi^2 u / 2),
    # exp(-(k^2 - 1) pi^2 u / 2) = q^(k^2 - 1) (products of odd powers), and sin(k pi w) by the angle-addition
    # recurrence from sin(pi w) and cos(pi w) (relative error growing like k ulps): one exponential and two
    # trigonometric functions instead of N_LARGE - 1 and N_LARGE.
    q = ops.exp(-0.5 * _PI2 * u)
    q2 = q * q
    s1, c1 = _sincos_pi(w, ops)
    s = s1
    s_u = 0.0
    s_w = math.pi * c1
    c_k, s_k, q_k, q_odd = c1, s1, 1.0, q * q2
    for k in range(2, N_LARGE + 1):
        c_k, s_k = c_k * c1 - s_k * s1, s_k * c1 + c_k * s1  # cos(k pi w), sin(k pi w)
        q_k = q_k * q_odd  # q^(k^2 - 1): q_odd = q^(2k - 1)
        q_odd = q_odd * q2
        s = s + k * q_k * s_k
        if partials:
            s_u = s_u - (0.5 * _PI2 * k * (k * k - 1)) * q_k * s_k
            s_w = s_w + (math.pi * k * k) * q_k * c_k
    log_f = _LOG_PI - 0.5 * _PI2 * u + ops.log(s)
    if not partials:
        return log_f
    return log_f, s_u / s - 0.5 * _PI2, s_w / s


@functools.lru_cache(maxsize=64)
def switch_point(err: float) -> float:
    """The standardised time ``u*(err)`` where the Navarro--Fuss rule switches series: ``K_s < K_l`` iff ``u < u*``.

    ``K_s`` increases and ``K_l`` decreases in ``u`` (bound [D] of the module docstring), so the rule is one
    threshold, found here once per ``err`` by bisection to rounding; the density then compares ``u`` with it instead
    of evaluating both term counts (two logarithms and two square roots) for every element.
    """
    lo, hi = 1e-3, 10.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        ks, kl = navarro_fuss_terms(np.float64(mid), err)
        if ks < kl:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 4 * np.finfo(float).eps * hi:
            break
    return hi


def _log_f(u, w, err, ops, partials=False):
    """log f(u|w), series chosen per element by the Navarro--Fuss rule, fixed term counts (with ``partials``, also
    its derivatives in ``u`` and ``w``)."""
    small = u < switch_point(float(err))
    u_small = ops.where(small, u, _U_SAFE_SMALL)
    u_large = ops.where(small, _U_SAFE_LARGE, u)
    parts_s = _log_f_small(u_small, w, ops, partials)
    parts_l = _log_f_large(u_large, w, ops, partials)
    if not partials:
        return ops.where(small, parts_s, parts_l)
    return tuple(ops.where(small, x, y) for x, y in zip(parts_s, parts_l))


# ----------------------------------------------------------------------------------------------------------------
# public API
# ----------------------------------------------------------------------------------------------------------------
def wiener_logpdf(rt, response, v, a, w, t0, ops=NUMPY, *, sv=0.0, err=1e-10, min_logp=MIN_LOGP):
    """Log density of a response at reaction time ``rt`` under the Wiener diffusion model.

    Parameters
    ----------
    rt : array_like or tensor
        Reaction time in seconds (decision time plus ``t0``).
    response : array_like or tensor
        1 for the upper boundary, 0 for the lower boundary.
    v : array_like or tensor
        Drift rate (towards the upper boundary when positive).
    a : array_like or tensor
        Boundary separation, ``a > 0``.
    w : array_like or tensor
        Relative starting point in ``(0, 1)`` (HDDM's ``z``), measured from the lower boundary.
    t0 : array_like or tensor
        Non-decision time in seconds (HDDM's ``t``).
    ops : backend
        :data:`neurorl.backend.NUMPY` or ``get_pytensor_ops()``.
    sv : array_like or tensor, optional
        Across-trial standard deviation of the drift (closed form); 0 gives the plain model.
    err : float, optional
        Navarro--Fuss absolute error used only to choose the series per element (static Python float in
        ``ERR_RANGE``); the number of terms is fixed and accurate to double precision (module docstring).
    min_logp : float, optional
        Floor of the returned log density; for ``rt <= t0`` the value is
        ``min_logp + OUTSIDE_SLOPE * (rt - t0)`` (finite, decreasing with the violation) instead of ``-inf``;
        for ``rt = inf`` (density 0) it is ``min_logp``.

    Returns
    -------
    array or tensor
        ``log p(rt, response)``, broadcast over the inputs; never NaN or infinite for valid parameters.
    """
    _check_err(err)
    if ops.name == "numpy":
        _check_numpy_params(a, w, sv, response)
    # sv given as the number 0 (a plain diffusion): the drift-variability terms are left out of the program
    no_sv = isinstance(sv, (int, float)) and not isinstance(sv, bool) and sv == 0
    # float64 throughout: PyTensor would otherwise compute e.g. log(0.5) of a Python float in float32
    rt, v, a, w, t0 = (ops.asarray(x) for x in (rt, v, a, w, t0))
    sv = None if no_sv else ops.asarray(sv)
    upper = ops.asarray(ops.asarray(response) > 0.5, dtype="float64")
    if ops.name == "jax":  # the exact analytic derivatives (_jax_logpdf): a fifth of the cost of tracing them
        return _jax_logpdf(float(err), float(min_logp), no_sv)(rt, upper, v, a, w, t0, *(() if no_sv else (sv,)))
    return _logpdf(rt, upper, v, a, w, t0, sv, err, min_logp, ops)


def _logpdf(rt, upper, v, a, w, t0, sv, err, min_logp, ops, partials=False):
    """:func:`wiener_logpdf` of float64 inputs (``upper`` 1.0 or 0.0; ``sv`` None for none); with ``partials``,
    also its exact partial derivatives ``{"rt", "v", "a", "w", "t0", "sv": d logp / d input}`` (broadcast to the
    output's shape).

    For the lower boundary (``v_e = v``, ``w_e = w``; the upper one flips ``v_e = -v``, ``w_e = 1 - w`` and the
    signs of their derivatives), with ``tau = rt - t0``, ``u = tau / a^2``, ``S = 1 + sv^2 tau`` and
    ``N = (a w_e sv)^2 - 2 a v_e w_e - v_e^2 tau``, ``logp = log f(u|w_e) - 2 log a - log(S)/2 + N / (2 S)``, so

        d/dv_e = -(a w_e + v_e tau) / S
        d/da   = -2u/a * d log f/du - 2/a + (a w_e^2 sv^2 - v_e w_e) / S
        d/dw_e = d log f/dw + (a^2 w_e sv^2 - a v_e) / S
        d/dtau = d log f/du / a^2 - sv^2 / (2S) - v_e^2 / (2S) - N sv^2 / (2 S^2)   (= d/drt = -d/dt0)
        d/dsv  = -sv tau / S + a^2 w_e^2 sv / S - N sv tau / S^2

    with ``d log f/du`` and ``d log f/dw`` summed term by term with the series (:func:`_log_f_small`,
    :func:`_log_f_large`). Where the floor applies every derivative is 0; outside the support only ``d/drt =
    OUTSIDE_SLOPE = -d/dt0`` (for ``rt < t0``).
    """
    is_up = upper > 0.5
    sign = 1.0 - 2.0 * upper  # d v_e / d v = d w_e / d w
    v_e = sign * v
    w_e = ops.where(is_up, 1.0 - w, w)
    tau = rt - t0
    inside = tau > 0
    endless = tau >= np.inf  # rt = +inf: density 0, the log density its floor
    tau_s = ops.where(inside & (tau < np.inf), tau, 1.0)
    u = ops.maximum(tau_s / (a * a), U_MIN)
    num = -2.0 * a * v_e * w_e - v_e * v_e * tau_s
    parts = _log_f(u, w_e, err, ops, partials)
    log_f = parts[0] if partials else parts
    if sv is None:
        raw = log_f - 2.0 * ops.log(a) + 0.5 * num
    else:
        sv2 = sv * sv
        big_s = sv2 * tau_s + 1.0
        num = num + (a * w_e * sv) ** 2
        raw = log_f - 2.0 * ops.log(a) - 0.5 * ops.log1p(sv2 * tau_s) + num / (2.0 * big_s)
    logp = ops.where(endless, min_logp, ops.maximum(raw, min_logp))
    out = ops.where(inside, logp, min_logp + OUTSIDE_SLOPE * ops.minimum(tau, 0.0))
    if not partials:
        return out
    _, f_u, f_w = parts
    f_u = ops.where(u > U_MIN, f_u, 0.0)  # u held at its floor does not move
    live = inside & ~endless & (raw > min_logp)
    zero = 0.0 * out
    if sv is None:  # S = 1
        sv = sv2 = 0.0
        inv_s = 1.0
    else:
        inv_s = 1.0 / big_s
    d_tau = (f_u / (a * a) - 0.5 * (sv2 + v_e * v_e) * inv_s - 0.5 * num * sv2 * inv_s * inv_s)
    d_tau = ops.where(live, d_tau, ops.where(inside, 0.0, ops.where(tau < 0, OUTSIDE_SLOPE, 0.0))) + zero
    d = {
        "v": sign * -(a * w_e + v_e * tau_s) * inv_s,
        "a": -2.0 * u / a * f_u - 2.0 / a + (a * w_e * w_e * sv2 - v_e * w_e) * inv_s,
        "w": sign * (f_w + (a * a * w_e * sv2 - a * v_e) * inv_s),
        "sv": -sv * tau_s * inv_s + a * a * w_e * w_e * sv * inv_s - num * sv * tau_s * inv_s * inv_s,
    }
    d = {k: ops.where(live, x, 0.0) + zero for k, x in d.items()}
    d["rt"] = d_tau
    d["t0"] = -d_tau
    return out, d


@functools.lru_cache(maxsize=32)
def _jax_logpdf(err: float, min_logp: float, no_sv: bool = False):
    """:func:`_logpdf` as a JAX function whose derivative is the analytic one (``jax.custom_jvp``).

    JAX's own forward or reverse mode through the unrolled series costs about five evaluations of the density;
    the analytic partials share the series' terms and cost about one more (measured in docs/architecture.md).
    The rule is itself differentiable (it is written with the same operations), so second derivatives (the
    Hessians of MAP) differentiate it in turn.
    """
    import jax

    from ..backend import get_jax_ops

    ops = get_jax_ops()
    names = ("rt", None, "v", "a", "w", "t0", "sv")  # upper is data: no derivative

    @jax.custom_jvp
    def logpdf(rt, upper, v, a, w, t0, *sv):  # sv: one array, or none (no_sv)
        return _logpdf(rt, upper, v, a, w, t0, sv[0] if sv else None, err, min_logp, ops)

    @logpdf.defjvp
    def logpdf_jvp(primals, tangents):
        sv = primals[6] if len(primals) > 6 else None
        out, d = _logpdf(*primals[:6], sv, err, min_logp, ops, partials=True)
        tan = sum(d[k] * t for k, t in zip(names, tangents) if k is not None)
        return out, tan

    return logpdf


def wiener_pdf(rt, response, v, a, w, t0, ops=NUMPY, **kwargs):
    """``exp(wiener_logpdf(...))``; exactly 0 for ``rt <= t0`` and ``rt = inf`` (NumPy convenience, e.g. for
    integration)."""
    out = ops.exp(wiener_logpdf(rt, response, v, a, w, t0, ops, **kwargs))
    return ops.where((rt - t0 > 0) & (rt - t0 < np.inf), out, 0.0)


def wiener_log_p_upper(v, a, w, ops=NUMPY):
    """Log probability of absorption at the upper boundary (no drift variability).

    ``P(upper) = (exp(-2avw) - 1) / (exp(-2av) - 1)``, written with ``x = 2av`` and ``y = |x|`` as
    ``log P = [x < 0](-y(1 - w)) + log(1 - e^{-yw}) - log(1 - e^{-y})`` (no overflow for any ``x``) and, for
    ``|x| < 1e-4``, the series ``log w + x(1 - w)/2 - x^2(1 - w^2)/24`` (error O(x^4)), whose limit at ``v = 0`` is
    ``log w``.
    """
    v, a, w = (ops.asarray(x) for x in (v, a, w))  # float64 (see wiener_logpdf)
    x = 2.0 * a * v
    y = ops.abs(x)
    near0 = y < 1e-4
    y_s = ops.where(near0, 1.0, y)
    exact = ops.where(x < 0, -y_s * (1.0 - w), 0.0) + _log1mexp(y_s * w, ops) - _log1mexp(y_s, ops)
    series = ops.log(w) + 0.5 * x * (1.0 - w) - x * x * (1.0 - w * w) / 24.0
    return ops.where(near0, series, exact)


def wiener_p_upper(v, a, w, ops=NUMPY):
    """Probability of absorption at the upper boundary, ``exp(wiener_log_p_upper(v, a, w))``."""
    return ops.exp(wiener_log_p_upper(v, a, w, ops))


def check_wiener_data(rt, t0, *, valid=None, what="rt", reason="where the Wiener density is 0",
                      hint="Lower t0 below the fastest response, mark these trials invalid, or use an outlier "
                           "mixture."):
    """Raise ``ValueError`` if any valid reaction time is not above the non-decision time.

    The message names the (subject, trial) indices of the first offending trials and the smallest margin.

    Parameters
    ----------
    rt : array_like
        Reaction times, shape ``(n_subjects, n_trials)`` or ``(n_trials,)``.
    t0 : array_like
        Non-decision time: scalar, per subject ``(n_subjects,)`` or the shape of ``rt``.
    valid : array_like of bool, optional
        Trials to check (others are ignored); default all.
    what, reason, hint : str
        Name of the checked quantity, why it must exceed ``t0`` and what to do (for the message).
    """
    rt = np.asarray(rt, dtype=float)
    t0 = np.asarray(t0, dtype=float)
    if t0.ndim == 1 and rt.ndim == 2:
        t0 = t0[:, None]
    valid = np.ones(rt.shape, bool) if valid is None else np.broadcast_to(np.asarray(valid, bool), rt.shape)
    t0b = np.broadcast_to(t0, rt.shape)
    bad = valid & ~(rt > t0b)  # NaN rt on a valid trial also fails
    if np.any(bad):
        idx = np.argwhere(bad)
        names = ("subject", "trial") if rt.ndim == 2 else ("trial",)
        shown = "; ".join(
            ", ".join(f"{n} {int(i)}" for n, i in zip(names, row)) + f" ({what}={rt[tuple(row)]:.4g}, "
            f"t0={t0b[tuple(row)]:.4g})"
            for row in idx[:5]
        )
        more = f" and {len(idx) - 5} more" if len(idx) > 5 else ""
        raise ValueError(
            f"{len(idx)} valid trial(s) have {what} <= t0 (or missing {what}), {reason}: {shown}{more}. {hint}"
        )


def sample_wiener(v, a, w, t0, rng, *, sv=0.0, dt: float = 1e-3, max_t: float = 60.0, block: int = 256):
    """Draw ``(response, rt)`` from the Wiener diffusion, one per element (NumPy).

    The diffusion ``dX = v dt + dW`` starts at ``w a`` and stops at 0 (response 0) or ``a`` (response 1);
    ``rt = t0 + tau``. With ``sv > 0`` the drift of each draw is ``N(v, sv^2)``.

    Method: the path is simulated on a grid of step ``dt`` (``block`` steps per vectorised pass), and a crossing
    *between* grid points is detected with the exact Brownian-bridge crossing probabilities
    ``exp(-2 (a - x_k)(a - x_{k+1}) / dt)`` (upper) and ``exp(-2 x_k x_{k+1} / dt)`` (lower), so the step in which
    the boundary is first reached has its exact distribution (up to the double-crossing term of order
    ``exp(-2 a^2 / dt)``); the time within that step is taken as its midpoint, an error of at most ``dt / 2``.
    ``tests/test_joint.py`` compares the draws with the exact density (Kolmogorov--Smirnov).

    Parameters
    ----------
    v, a, w, t0, sv : array_like
        Broadcast to a common shape.
    rng : numpy.random.Generator
    dt : float
        Grid step in seconds.
    max_t : float
        Decision times longer than this raise ``ValueError`` (parameters with an absurd expected time).

    Returns
    -------
    response : int array (0 lower, 1 upper)
    rt : float array (seconds)
    """
    v, a, w, t0, sv = np.broadcast_arrays(*(np.asarray(x, dtype=float) for x in (v, a, w, t0, sv)))
    shape = v.shape
    v, a, w, t0, sv = (x.ravel() for x in (v, a, w, t0, sv))
    _check_numpy_params(a, w, sv, None)
    if np.any(sv > 0):
        v = v + sv * rng.standard_normal(v.shape)
    n = v.size
    x = w * a
    tau = np.full(n, np.nan)
    resp = np.zeros(n, dtype=np.int64)
    idx = np.arange(n)
    k0 = 0
    sq = math.sqrt(dt)
    while idx.size:
        if k0 * dt > max_t:
            raise ValueError(
                f"sample_wiener: {idx.size} draw(s) did not reach a boundary within max_t={max_t} s (e.g. a="
                f"{a[idx[0]]:.3g}, v={v[idx[0]]:.3g}); check the parameters or raise max_t")
        m = idx.size
        A = a[idx, None]
        path = x[idx, None] + np.cumsum(v[idx, None] * dt + sq * rng.standard_normal((m, block)), axis=1)
        prev = np.concatenate([x[idx, None], path[:, :-1]], axis=1)
        up, lo = path >= A, path <= 0.0
        inside = ~(up | lo) & (prev > 0.0) & (prev < A)
        with np.errstate(over="ignore", under="ignore"):
            pu = np.where(inside, np.exp(-2.0 * (A - prev) * (A - path) / dt), 0.0)
            pl = np.where(inside, np.exp(-2.0 * prev * path / dt), 0.0)
        u = rng.random((m, block))
        hit_up = up | (u < pu)
        hit = hit_up | lo | ((u >= pu) & (u < pu + pl))
        done = hit.any(axis=1)
        first = np.argmax(hit, axis=1)
        rows = np.flatnonzero(done)
        resp[idx[rows]] = hit_up[rows, first[rows]]
        tau[idx[rows]] = (k0 + first[rows] + 0.5) * dt
        x[idx] = path[:, -1]
        idx = idx[~done]
        k0 += block
    return resp.reshape(shape), (t0 + tau).reshape(shape)
