"""Tests of the exact Wiener first-passage-time density (neurorl.fitting.wiener; fitting.md §2.2-2.3).

References used (independent of the code under test):
* ``wfpt.full_pdf`` / ``wfpt.wiener_like_rlddm`` from the test-only package ``hddm-wfpt`` (HDDM's Cython code);
* the series of fitting.md §2.2 transcribed in 50-digit arithmetic with mpmath and many terms;
* the closed-form boundary probability, evaluated in plain floating point or mpmath;
* numerical integration (scipy.integrate.quad) and finite differences.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import integrate

from neurorl.backend import NUMPY as NUMPY_OPS
from neurorl.backend import get_pytensor_ops
from neurorl.fitting.wiener import (
    ERR_RANGE,
    MIN_LOGP,
    N_LARGE,
    N_SMALL,
    OUTSIDE_SLOPE,
    check_wiener_data,
    navarro_fuss_terms,
    wiener_log_p_upper,
    wiener_logpdf,
    wiener_p_upper,
)

wfpt = pytest.importorskip("wfpt")
try:  # high-precision reference (mpmath ships with sympy, a PyMC dependency chain, but is not required)
    import mpmath as mp

    mp.mp.dps = 50
except ImportError:  # pragma: no cover
    mp = None
needs_mpmath = pytest.mark.skipif(mp is None, reason="mpmath not installed")


# ---------------------------------------------------------------------------------------------------------------
# independent high-precision reference (fitting.md §2.2 transcribed with mpmath, many terms)
# ---------------------------------------------------------------------------------------------------------------
def mp_f(u, w, small=None):
    u, w = mp.mpf(u), mp.mpf(w)
    if small is None:
        small = u < 1
    if small:
        s = mp.fsum((w + 2 * k) * mp.exp(-(w + 2 * k) ** 2 / (2 * u)) for k in range(-40, 41))
        return s / mp.sqrt(2 * mp.pi * u ** 3)
    return mp.pi * mp.fsum(k * mp.exp(-k * k * mp.pi ** 2 * u / 2) * mp.sin(k * mp.pi * w) for k in range(1, 200))


def mp_logpdf(rt, response, v, a, w, t0, sv=0.0):
    v, a, w, sv = mp.mpf(v), mp.mpf(a), mp.mpf(w), mp.mpf(sv)
    tau = mp.mpf(rt) - mp.mpf(t0)
    if response == 1:
        v, w = -v, 1 - w
    f = mp_f(tau / a ** 2, w)
    return float(mp.log(f) - 2 * mp.log(a) - mp.log(1 + sv ** 2 * tau) / 2
                 + ((a * w * sv) ** 2 - 2 * a * v * w - v ** 2 * tau) / (2 * (sv ** 2 * tau + 1)))


def wfpt_pdf(rt, response, v, a, w, t0, sv=0.0, err=1e-13):
    x = rt if response == 1 else -rt
    return wfpt.full_pdf(x, v, sv, a, w, 0.0, t0, 0.0, err)


# ---------------------------------------------------------------------------------------------------------------
# agreement with HDDM's full_pdf
# ---------------------------------------------------------------------------------------------------------------
GRID_V = [-8.0, -3.0, -0.5, 0.0, 1.0, 4.0, 8.0]
GRID_A = [0.3, 1.0, 2.5, 5.0]
GRID_W = [0.05, 0.3, 0.5, 0.8, 0.95]


@pytest.mark.parametrize("sv", [0.0, 1.3])
def test_matches_wfpt_full_pdf_on_grid(sv):
    t0 = 0.2
    rows = [
        (v, a, w, u * a * a + t0, r)
        for v, a, w in itertools.product(GRID_V, GRID_A, GRID_W)
        for u in np.logspace(-3.5, 2.0, 31)  # standardised time from 3e-4 (tiny) to 100 (huge)
        for r in (0, 1)
    ]
    v, a, w, rt, r = np.array(rows).T
    ours = wiener_logpdf(rt, r, v, a, w, t0, sv=sv)
    ref = np.array([wfpt_pdf(row[3], int(row[4]), row[0], row[1], row[2], t0, sv) for row in rows])
    assert np.all(np.isfinite(ours))
    usable = ref > 1e-290  # wfpt underflows to 0 deeper in the tails (checked against mpmath below)
    assert usable.mean() > 0.8
    rel = np.abs(np.expm1(ours[usable] - np.log(ref[usable])))
    assert rel.max() < 1e-6
    # both the small- and the large-time series were exercised
    u = (rt - t0) / a ** 2
    ks, kl = navarro_fuss_terms(u, 1e-10)
    assert (ks < kl).sum() > 1000 and (ks >= kl).sum() > 1000


def test_matches_wfpt_at_random_points():
    rng = np.random.default_rng(3)
    n = 3000
    v = rng.uniform(-8, 8, n)
    a = rng.uniform(0.3, 5, n)
    w = rng.uniform(0.05, 0.95, n)
    sv = np.where(rng.random(n) < 0.5, 0.0, rng.uniform(0, 3, n))
    t0 = rng.uniform(0.0, 0.5, n)
    rt = t0 + rng.lognormal(-0.5, 1.2, n)
    r = rng.integers(0, 2, n)
    ours = wiener_logpdf(rt, r, v, a, w, t0, sv=sv)
    ref = np.array([wfpt_pdf(rt[i], r[i], v[i], a[i], w[i], t0[i], sv[i]) for i in range(n)])
    ok = ref > 1e-290
    assert ok.mean() > 0.95
    assert np.abs(np.expm1(ours[ok] - np.log(ref[ok]))).max() < 1e-6


@needs_mpmath
@pytest.mark.parametrize(
    "rt, response, v, a, w, sv",
    [
        (0.2 + 1e-6 * 1.0, 0, 1.0, 1.0, 0.5, 0.0),    # u = 1e-6: log p ~ -w^2/(2u) = -1.25e5, below the floor
        (0.2 + 4e-4 * 4.0, 1, -2.0, 2.0, 0.3, 0.0),   # u = 4e-4
        (0.2 + 2e-3 * 25.0, 0, 8.0, 5.0, 0.95, 0.0),  # u = 2e-3, strong drift away
        (0.2 + 600.0 * 0.09, 1, 0.0, 0.3, 0.5, 0.0),  # u = 600, huge time
        (0.2 + 40.0 * 25.0, 0, -8.0, 5.0, 0.05, 0.0),  # u = 40, a = 5
        (0.2 + 1e-3 * 1.0, 1, 3.0, 1.0, 0.7, 2.0),    # with sv
        (0.2 + 300.0 * 1.0, 0, 1.0, 1.0, 0.6, 1.5),   # with sv, huge time
    ],
)
def test_deep_tails_match_high_precision_reference(rt, response, v, a, w, sv):
    ours = wiener_logpdf(rt, response, v, a, w, 0.2, sv=sv)
    ref = mp_logpdf(rt, response, v, a, w, 0.2, sv)
    assert np.isfinite(ours)
    if ref > MIN_LOGP:
        assert ours == pytest.approx(ref, rel=1e-10, abs=1e-8)
    else:
        assert ours == MIN_LOGP


def test_tiny_time_leading_term():
    # for u -> 0 only the k = 0 small-time term survives: log f = log w - w^2/(2u) - log(2 pi u^3)/2 (by hand)
    a, w, v, t0 = 1.7, 0.4, 1.3, 0.3
    tau = (t0 + np.array([1e-5, 1e-4, 1e-3])) - t0  # the decision times the function sees (rounded)
    u = tau / a ** 2
    by_hand = (np.log(w) - w ** 2 / (2 * u) - 0.5 * np.log(2 * np.pi * u ** 3)
               - 2 * np.log(a) - v * a * w - v ** 2 * tau / 2)
    ours = wiener_logpdf(t0 + tau, 0, v, a, w, t0)
    np.testing.assert_allclose(ours, by_hand, rtol=1e-12)


def test_finite_everywhere_and_outside_support():
    t0 = 0.3
    rt = np.array([0.0, 0.1, 0.3, 0.3 + 1e-300, 0.3 + 1e-200, 0.3 + 1e-30, 0.3 + 1e-8, 0.31, 1.0, 1e3, 1e8, 1e300])
    for v, a, w, sv in itertools.product([-8.0, 0.0, 8.0], [0.3, 5.0], [0.05, 0.95], [0.0, 2.0]):
        for r in (0, 1):
            out = wiener_logpdf(rt, np.full(rt.shape, r), v, a, w, t0, sv=sv)
            assert np.all(np.isfinite(out)), (v, a, w, sv, r, out)
            assert np.all(out >= MIN_LOGP + OUTSIDE_SLOPE * (rt - t0).clip(max=0) - 1e-9)
    # outside the support: floor minus a slope in the violation (continuous at rt = t0)
    out = wiener_logpdf(np.array([0.3, 0.2, 0.0]), 1, 1.0, 1.0, 0.5, t0)
    np.testing.assert_allclose(out, [MIN_LOGP, MIN_LOGP - 0.1 * OUTSIDE_SLOPE, MIN_LOGP - 0.3 * OUTSIDE_SLOPE])


def test_invalid_parameters_raise():
    with pytest.raises(ValueError, match="w must lie in"):
        wiener_logpdf(1.0, 1, 0.0, 1.0, np.array([0.5, 1.0]), 0.2)
    with pytest.raises(ValueError, match="a must be > 0"):
        wiener_logpdf(1.0, 1, 0.0, -1.0, 0.5, 0.2)
    with pytest.raises(ValueError, match="response"):
        wiener_logpdf(1.0, 2, 0.0, 1.0, 0.5, 0.2)
    with pytest.raises(ValueError, match="err"):
        wiener_logpdf(1.0, 1, 0.0, 1.0, 0.5, 0.2, err=0.0)


def test_check_wiener_data_names_subject_and_trial():
    rt = np.array([[0.5, 0.6, 0.7], [0.5, 0.25, np.nan]])
    check_wiener_data(rt, [0.2, 0.2], valid=[[True, True, True], [True, True, False]])
    with pytest.raises(ValueError, match=r"subject 1, trial 1 \(rt=0\.25, t0=0\.3\)"):
        check_wiener_data(rt, 0.3, valid=[[True, True, True], [True, True, False]])
    with pytest.raises(ValueError, match="subject 1, trial 2"):
        check_wiener_data(rt, 0.2)  # missing RT on a valid trial


# ---------------------------------------------------------------------------------------------------------------
# the static term counts: the documented bound
# ---------------------------------------------------------------------------------------------------------------
def test_series_switch_point_stays_in_documented_range():
    u = np.logspace(-6, 6, 120001)
    for err in [ERR_RANGE[0], 1e-100, 1e-30, 1e-10, 1e-4, ERR_RANGE[1]]:
        ks, kl = navarro_fuss_terms(u, err)
        small = ks < kl
        switch = np.flatnonzero(np.diff(small.astype(int)))
        assert len(switch) == 1  # small time below u*, large time above
        assert small[0] and not small[-1]
        assert 0.082 <= u[switch[0]] <= 0.29


@needs_mpmath
def test_static_term_counts_are_accurate_to_double_precision():
    """Relative truncation error of the fixed term counts over each series' whole regime (60 digits)."""
    mp.mp.dps = 60
    try:
        ws = ["1e-6", "0.01", "0.2", "0.5", "0.8", "0.99", "0.999999"]
        worst_small = worst_large = 0
        for u in np.logspace(-4, math.log10(0.3), 12):
            for w in ws:
                exact = mp_f(u, w, small=True)
                uu, ww = mp.mpf(u), mp.mpf(w)
                trunc = mp.fsum((ww + 2 * k) * mp.exp(-(ww + 2 * k) ** 2 / (2 * uu))
                                for k in range(-N_SMALL, N_SMALL + 1)) / mp.sqrt(2 * mp.pi * uu ** 3)
                worst_small = max(worst_small, abs(trunc / exact - 1))
        for u in np.logspace(math.log10(0.08), 2, 12):
            for w in ws:
                exact = mp_f(u, w, small=False)
                uu, ww = mp.mpf(u), mp.mpf(w)
                trunc = mp.pi * mp.fsum(k * mp.exp(-k * k * mp.pi ** 2 * uu / 2) * mp.sin(k * mp.pi * ww)
                                        for k in range(1, N_LARGE + 1))
                worst_large = max(worst_large, abs(trunc / exact - 1))
    finally:
        mp.mp.dps = 50
    assert worst_small < 1e-25
    assert worst_large < 1e-16


# ---------------------------------------------------------------------------------------------------------------
# boundary probability and normalisation
# ---------------------------------------------------------------------------------------------------------------
@needs_mpmath
def test_p_upper_closed_form_and_limits():
    v = np.array([-8.0, -1.0, -1e-9, 0.0, 1e-9, 5e-5, 2e-4, 0.3, 8.0])
    a, w = 1.4, 0.35
    ours = wiener_p_upper(v, a, w)
    ref = [float((mp.exp(-2 * a * mp.mpf(x) * w) - 1) / (mp.exp(-2 * a * mp.mpf(x)) - 1)) if x != 0 else w
           for x in v]
    np.testing.assert_allclose(ours, ref, rtol=1e-12)
    # extreme drifts: log-space result without overflow (exp(2 a v) ~ e^800)
    lp = wiener_log_p_upper(np.array([-80.0, 80.0]), 5.0, 0.5)
    x = mp.mpf(800)
    assert lp[0] == pytest.approx(float(-x / 2 + mp.log(1 - mp.exp(-x / 2)) - mp.log(1 - mp.exp(-x))), rel=1e-14)
    assert lp[1] == pytest.approx(float(mp.log((1 - mp.exp(-x / 2)) / (1 - mp.exp(-x)))), abs=1e-15)


@pytest.mark.parametrize("v, a, w", [(1.5, 1.2, 0.4), (-2.0, 2.0, 0.7), (0.0, 0.8, 0.3), (6.0, 0.5, 0.5),
                                     (-0.7, 3.0, 0.1)])
def test_integral_of_upper_density_is_p_upper(v, a, w):
    t0 = 0.25

    def dens(tau, r):
        return float(np.exp(wiener_logpdf(t0 + tau, r, v, a, w, t0)))

    def total(r):
        return sum(integrate.quad(dens, lo, hi, args=(r,), epsabs=1e-13, epsrel=1e-11, limit=200)[0]
                   for lo, hi in [(0, 0.1 * a * a), (0.1 * a * a, 2 * a * a), (2 * a * a, np.inf)])

    up, low = total(1), total(0)
    p_up = (math.exp(-2 * a * v * w) - 1) / (math.exp(-2 * a * v) - 1) if v != 0 else w
    assert up == pytest.approx(p_up, abs=1e-8)
    assert up + low == pytest.approx(1.0, abs=1e-8)


def test_integral_with_drift_variability_matches_mixture_over_drifts():
    v, a, w, sv, t0 = 0.8, 1.5, 0.45, 1.2, 0.2

    def dens(tau):
        return float(np.exp(wiener_logpdf(t0 + tau, 1, v, a, w, t0, sv=sv)))

    up = sum(integrate.quad(dens, lo, hi, epsabs=1e-13, epsrel=1e-11, limit=200)[0]
             for lo, hi in [(0, 0.2), (0.2, 5.0), (5.0, np.inf)])

    def mix(nu):  # N(nu; v, sv^2) P(upper | nu)
        pu = (math.exp(-2 * a * nu * w) - 1) / (math.exp(-2 * a * nu) - 1) if nu != 0 else w
        return math.exp(-0.5 * ((nu - v) / sv) ** 2) / (sv * math.sqrt(2 * math.pi)) * pu

    expected = integrate.quad(mix, v - 12 * sv, v + 12 * sv, epsabs=1e-13)[0]
    assert up == pytest.approx(expected, abs=1e-8)


# ---------------------------------------------------------------------------------------------------------------
# PyTensor: same value, exact gradient
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pt_wiener():
    """One compiled PyTensor function (compiling is the slow part): densities, gradients, P(upper)."""
    import pytensor
    import pytensor.tensor as pt

    ops = get_pytensor_ops()
    rng = np.random.default_rng(0)
    t0_ref = 0.25
    tau = np.concatenate([np.logspace(-2.5, 0.7, 24), [0.2, 0.21, 0.22, 0.23]])  # u from ~0.002 to ~3.5
    rt = t0_ref + tau
    resp = rng.integers(0, 2, rt.size)
    coef = rng.normal(size=rt.size)  # random weights so that errors cannot cancel in the sum
    # extreme points: before t0, at t0, tiny and huge decision times
    rt_x = np.array([0.1, 0.3, 0.3 + 1e-300, 0.3 + 1e-9, 0.3 + 1e-4, 1.0, 1e4])
    resp_x = np.array([0, 1, 0, 1, 0, 1, 0])
    th = pt.dvector("theta")  # v, a, w, t0, sv
    v, a, w, t0, sv = (th[i] for i in range(5))
    lp = wiener_logpdf(rt, resp, v, a, w, t0, ops, sv=sv)
    total = pt.sum(lp * coef)
    lp_x = wiener_logpdf(rt_x, resp_x, v, a, w, t0, ops, sv=sv)
    vv = pt.dvector("v")
    lpu = wiener_log_p_upper(vv, 1.3, 0.3, ops)
    f = pytensor.function(
        [th, vv],
        [lp, total, pytensor.grad(total, th), lp_x, pytensor.grad(pt.sum(lp_x), th), lpu,
         pytensor.grad(pt.sum(lpu), vv)],
    )

    def np_total(theta):  # sv enters only as sv^2, so |sv| keeps central differences legal at sv = 0
        return float(np.sum(wiener_logpdf(rt, resp, *theta[:4], sv=abs(theta[4])) * coef))

    return f, rt, resp, np_total


_V_PU = np.array([-30.0, -1.0, -1e-5, 0.0, 3e-5, 1e-4 / 2.6 * 1.01, 0.5, 30.0])


@pytest.mark.parametrize("theta", [[1.3, 1.2, 0.4, 0.2, 0.0], [-2.5, 0.9, 0.65, 0.1, 0.8], [0.0, 2.0, 0.5, 0.24, 1.5]])
def test_pytensor_value_and_gradient(pt_wiener, theta):
    f, rt, resp, np_total = pt_wiener
    theta = np.array(theta)
    lp, total, grad, *_ = f(theta, _V_PU)
    np.testing.assert_allclose(lp, wiener_logpdf(rt, resp, *theta[:4], sv=theta[4]), rtol=1e-12, atol=1e-12)
    h = 1e-6
    fd = np.array([(np_total(theta + h * e) - np_total(theta - h * e)) / (2 * h) for e in np.eye(5)])
    np.testing.assert_allclose(grad, fd, rtol=2e-6, atol=2e-5)


@pytest.mark.parametrize("theta", [[8.0, 0.3, 0.05, 0.3, 0.0], [-8.0, 5.0, 0.95, 0.3, 3.0], [0.0, 1.0, 0.5, 0.3, 0.0]])
def test_pytensor_gradient_finite_outside_support_and_in_tails(pt_wiener, theta):
    f = pt_wiener[0]
    *_, lp_x, g_x, _, _ = f(np.array(theta), _V_PU)
    assert np.all(np.isfinite(lp_x)) and np.all(np.isfinite(g_x))
    # rt = 0.1 < t0 = 0.3: value MIN_LOGP - 0.2 * OUTSIDE_SLOPE; rt = t0: MIN_LOGP (d/dt0 = -OUTSIDE_SLOPE for the
    # first; the floored ones are flat), so the t0 gradient is dominated by -OUTSIDE_SLOPE
    assert lp_x[0] == pytest.approx(MIN_LOGP - 0.2 * OUTSIDE_SLOPE)
    assert lp_x[1] == MIN_LOGP and lp_x[2] == MIN_LOGP


def test_pytensor_p_upper_matches_numpy(pt_wiener):
    f = pt_wiener[0]
    *_, val, grad = f(np.array([1.0, 1.0, 0.5, 0.2, 0.0]), _V_PU)
    np.testing.assert_allclose(val, wiener_log_p_upper(_V_PU, 1.3, 0.3), rtol=1e-13, atol=1e-15)
    h = 1e-6
    fd = (wiener_log_p_upper(_V_PU + h, 1.3, 0.3) - wiener_log_p_upper(_V_PU - h, 1.3, 0.3)) / (2 * h)
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


# ---------------------------------------------------------------------------------------------------------------
# RL-DDM: summed log-likelihood against wfpt.wiener_like_rlddm (fitting.md §2.3 semantics)
# ---------------------------------------------------------------------------------------------------------------
def _rlddm_dataset(seed=7, n_per_cond=40):
    rng = np.random.default_rng(seed)
    split_by = np.repeat(np.array([3, 1, 2], dtype=np.int64), n_per_cond)
    rng.shuffle(split_by)  # interleaved conditions: each condition keeps its own trial order
    response = rng.integers(0, 2, split_by.size).astype(np.int64)
    p_reward = np.where(response == 1, 0.7, 0.3)
    feedback = (rng.random(split_by.size) < p_reward).astype(float)
    rt = 0.35 + rng.gamma(2.0, 0.25, split_by.size)
    return rt, response, feedback, split_by


def _our_rlddm_loglik(rt, response, feedback, split_by, q0, alpha, pos_alpha, v, sv, a, z, t):
    """Plain numpy Q-loop with HDDM's semantics: reset per condition, first trial of each condition not scored."""
    lr_neg = 1.0 / (1.0 + math.exp(-alpha))
    lr_pos = lr_neg if pos_alpha == 100.0 else 1.0 / (1.0 + math.exp(-pos_alpha))
    total = 0.0
    for cond in np.unique(split_by):
        idx = np.flatnonzero(split_by == cond)
        q = [q0, q0]
        for j, i in enumerate(idx):
            if j > 0:
                total += float(wiener_logpdf(rt[i], response[i], (q[1] - q[0]) * v, a, z, t, sv=sv))
            c = response[i]
            lr = lr_pos if feedback[i] > q[c] else lr_neg
            q[c] += lr * (feedback[i] - q[c])
    return total


@pytest.mark.parametrize("pos_alpha, sv", [(100.0, 0.0), (0.9, 0.0), (100.0, 0.7)])
def test_rlddm_loglik_matches_wfpt(pos_alpha, sv):
    rt, response, feedback, split_by = _rlddm_dataset()
    q0, alpha, v, a, z, t = 0.5, -0.4, 3.0, 1.6, 0.45, 0.3
    x = np.where(response == 1, rt, -rt)
    ref = wfpt.wiener_like_rlddm(x, response, feedback, split_by, q0, alpha, pos_alpha, v, sv, a, z, 0.0, t, 0.0,
                                 1e-13)
    ours = _our_rlddm_loglik(rt, response, feedback, split_by, q0, alpha, pos_alpha, v, sv, a, z, t)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_series_products_equal_the_term_by_term_sums():
    """The series are evaluated with three (small time) and one (large time) exponentials and the angle-addition
    recurrence; they equal the term-by-term sums of the module docstring to rounding wherever they are used."""
    from neurorl.backend import NUMPY
    from neurorl.fitting.wiener import N_LARGE, N_SMALL, _log_f_large, _log_f_small

    w = np.linspace(1e-3, 1 - 1e-3, 41)[:, None]
    u_s = np.geomspace(1e-4, 0.3, 37)[None, :]
    k = np.arange(-N_SMALL, N_SMALL + 1)[:, None, None]
    # w exp(-w^2 / 2u) factored out of sum_k (w + 2k) exp(-(w + 2k)^2 / 2u), as in the docstring (no underflow)
    direct_s = np.log(np.sum((1 + 2 * k / w) * np.exp(-2 * k * (k + w) / u_s), axis=0)) \
        - 0.5 * np.log(2 * np.pi) - 1.5 * np.log(u_s) + np.log(w) - w ** 2 / (2 * u_s)
    np.testing.assert_allclose(_log_f_small(u_s, w, NUMPY), direct_s, rtol=1e-13, atol=1e-13)
    u_l = np.geomspace(0.08, 50.0, 37)[None, :]
    kl = np.arange(1, N_LARGE + 1)[:, None, None]
    direct_l = np.log(np.pi * np.sum(kl * np.exp(-(kl ** 2 - 1) * np.pi ** 2 * u_l / 2) * np.sin(kl * np.pi * w),
                                     axis=0)) - np.pi ** 2 * u_l / 2
    np.testing.assert_allclose(_log_f_large(u_l, w, NUMPY), direct_l, rtol=1e-13, atol=1e-13)


def test_switch_point_is_the_navarro_fuss_rule():
    """Comparing u with the precomputed threshold picks the same series as comparing the two term counts."""
    from neurorl.fitting.wiener import switch_point

    u = np.geomspace(1e-6, 100.0, 100_001)
    for err in [ERR_RANGE[0], 1e-30, 1e-10, 1e-4, ERR_RANGE[1]]:
        ks, kl = navarro_fuss_terms(u, err)
        assert np.array_equal(ks < kl, u < switch_point(err))


# ---------------------------------------------------------------------------------------------------------------
# JAX: the analytic derivatives of the density (jax.custom_jvp) against JAX's own differentiation of the same
# expression (an independent derivation: automatic, term by term) and against central differences
# ---------------------------------------------------------------------------------------------------------------
def _jax_cases():
    rng = np.random.default_rng(3)
    n = 3000
    # decision times from ~1e-3 to ~10 s (both series), some rt below t0, all boundaries and drift variabilities
    rt = np.concatenate([rng.uniform(0.05, 3.0, n), [0.31, 0.3 + 1e-9, 0.3 + 1e-4, 12.0]])
    cols = {"v": rng.normal(0, 2.5, n), "a": rng.uniform(0.4, 3.5, n), "w": rng.uniform(0.02, 0.98, n),
            "t0": rng.uniform(0.0, 0.5, n), "sv": np.where(rng.random(n) < 0.3, 0.0, rng.uniform(0, 2, n))}
    extra = {"v": [1.0, -2.0, 0.5, 3.0], "a": [1.2, 0.8, 1.5, 0.6], "w": [0.5, 0.3, 0.7, 0.5], "t0": [0.3] * 4,
             "sv": [0.0, 0.5, 0.0, 1.0]}
    cols = {k: np.concatenate([v, extra[k]]) for k, v in cols.items()}
    resp = rng.integers(0, 2, rt.size).astype(float)
    return rt, resp, cols


@pytest.mark.parametrize("plain", [False, True], ids=["sv", "sv=0 (number)"])
def test_jax_analytic_derivatives_equal_automatic_ones(plain):
    import jax
    import jax.numpy as jnp

    from neurorl.backend import get_jax_ops
    from neurorl.fitting import wiener as W

    ops = get_jax_ops()
    rt, resp, cols = _jax_cases()
    args = tuple(jnp.asarray(x) for x in (rt, cols["v"], cols["a"], cols["w"], cols["t0"], cols["sv"]))
    coef = jnp.asarray(np.random.default_rng(4).normal(size=rt.size))

    def auto(*x):  # the same expression, differentiated by JAX (no custom rule)
        sv = None if plain else x[5]
        return jnp.sum(coef * W._logpdf(x[0], jnp.asarray(resp), *x[1:5], sv, 1e-10, MIN_LOGP, ops))

    def analytic(*x):  # sv given as the number 0: the program without drift variability
        return jnp.sum(coef * wiener_logpdf(x[0], resp, *x[1:5], ops, sv=0 if plain else x[5]))

    if plain:  # and it equals the general program at sv = 0
        np.testing.assert_allclose(float(analytic(*args)), float(jnp.sum(coef * wiener_logpdf(
            args[0], resp, *args[1:5], ops, sv=jnp.zeros(rt.size)))), rtol=1e-14)
    g_auto = jax.grad(auto, argnums=tuple(range(6)))(*args)
    g_an = jax.grad(analytic, argnums=tuple(range(6)))(*args)
    for name, x, y in list(zip(("rt", "v", "a", "w", "t0", "sv"), g_auto, g_an))[:5 if plain else 6]:
        np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-11, atol=1e-11, err_msg=name)
    # forward mode and second derivatives (MAP's Hessians differentiate the rule itself)
    t = tuple(jnp.asarray(np.random.default_rng(5).normal(size=rt.size)) for _ in range(6))
    np.testing.assert_allclose(jax.jvp(analytic, args, t)[1], jax.jvp(auto, args, t)[1], rtol=1e-11)
    for i in range(5 if plain else 6):
        h_auto = jax.grad(lambda *x, i=i: jnp.sum(jax.grad(auto, argnums=i)(*x)), argnums=(2, 4))(*args)
        h_an = jax.grad(lambda *x, i=i: jnp.sum(jax.grad(analytic, argnums=i)(*x)), argnums=(2, 4))(*args)
        for x, y in zip(h_auto, h_an):
            np.testing.assert_allclose(np.asarray(y), np.asarray(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("theta", [[1.3, 1.2, 0.4, 0.2, 0.0], [-2.5, 0.9, 0.65, 0.1, 0.8], [0.0, 2.0, 0.5, 0.24, 1.5]])
def test_jax_analytic_gradient_matches_central_differences(theta):
    import jax
    import jax.numpy as jnp

    from neurorl.backend import get_jax_ops

    ops = get_jax_ops()
    rng = np.random.default_rng(0)
    rt = 0.25 + np.concatenate([np.logspace(-2.5, 0.7, 24), [0.2, 0.21, 0.22, 0.23]])  # both series
    resp = rng.integers(0, 2, rt.size)
    coef = rng.normal(size=rt.size)

    def total(th, o):
        return o.sum(wiener_logpdf(rt, resp, th[0], th[1], th[2], th[3], o, sv=th[4]) * coef)

    theta = np.array(theta)
    g = np.asarray(jax.grad(lambda th: total(th, ops))(jnp.asarray(theta)))
    h = 1e-6

    def np_total(th):  # sv enters only as sv^2, so |sv| keeps central differences legal at sv = 0
        return float(total(np.r_[th[:4], abs(th[4])], NUMPY_OPS))

    fd = np.array([(np_total(theta + h * e) - np_total(theta - h * e)) / (2 * h) for e in np.eye(5)])
    np.testing.assert_allclose(g, fd, rtol=2e-6, atol=2e-5)


def test_sincos_pi_polynomials_match_the_library_to_rounding():
    """sin(pi w), cos(pi w) by the folded Taylor polynomials: relative error of the sine at most a few ulps, also
    for w next to 0 and 1 (where sin(pi w) = pi w (1 - ...) resp. pi (1 - w)), absolute error of the cosine too."""
    import mpmath

    from neurorl.fitting.wiener import NUMPY, _sincos_pi

    w = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 20001), [1e-300, 1e-12, 1e-6, 0.5, 1 - 1e-12]])
    s, c = _sincos_pi(w, NUMPY)
    with mpmath.workdps(40):
        ref_s = np.array([float(mpmath.sinpi(mpmath.mpf(x))) for x in w])
        ref_c = np.array([float(mpmath.cospi(mpmath.mpf(x))) for x in w])
    assert np.max(np.abs(s - ref_s) / ref_s) < 1e-15
    assert np.max(np.abs(c - ref_c)) < 1e-15
