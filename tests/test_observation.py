"""Tests of the observation models (neurorl.fitting.observation; fitting.md §1, §2.1, §2.2).

Reference values come from scipy.stats (norm, lognorm), hand-written numpy formulas, HDDM's ``wfpt.full_pdf`` and
finite differences -- never from the code under test.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special, stats

from neurorl.backend import get_pytensor_ops
from neurorl.fitting.observation import LognormalRT, WienerRT, probit_logp, softmax_logp


# ---------------------------------------------------------------------------------------------------------------
# choice models
# ---------------------------------------------------------------------------------------------------------------
def test_softmax_logp_matches_hand_computation():
    rng = np.random.default_rng(1)
    q = rng.normal(size=(5, 3))
    beta = np.array([0.5, 1.0, 2.0, 4.0, 8.0])
    choice = np.array([0, 1, 2, 1, 0])
    ours = softmax_logp(q, choice, beta=beta)
    for i in range(5):
        e = np.exp(beta[i] * q[i])
        assert ours[i] == pytest.approx(math.log(e[choice[i]] / e.sum()), rel=1e-12)


def test_softmax_logp_with_lapse_and_availability():
    q = np.array([[1.0, 2.0, -1.0], [0.3, 0.1, 5.0]])
    avail = np.array([[True, True, False], [True, True, True]])
    beta = np.array([3.0, 1.5])
    lapse = np.array([0.1, 0.25])
    choice = np.array([0, 2])
    ours = softmax_logp(q, choice, beta=beta, lapse=lapse, avail=avail)
    # row 0: softmax over the two available actions, lapse spread over 2; row 1: over 3
    p0 = math.exp(3.0) / (math.exp(3.0) + math.exp(6.0))
    p1 = math.exp(7.5) / (math.exp(0.45) + math.exp(0.15) + math.exp(7.5))
    expected = [math.log(0.9 * p0 + 0.1 / 2), math.log(0.75 * p1 + 0.25 / 3)]
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_softmax_logp_broadcasts_over_trials():
    rng = np.random.default_rng(2)
    q = rng.normal(size=(3, 4, 2))  # subject, trial, action
    beta = np.array([1.0, 2.0, 3.0])
    choice = rng.integers(0, 2, (3, 4))
    ours = softmax_logp(q, choice, beta=beta, lapse=np.array([0.05, 0.1, 0.2]))
    assert ours.shape == (3, 4)
    for i in range(3):
        lapse = [0.05, 0.1, 0.2][i]
        for t in range(4):
            p = special.softmax(beta[i] * q[i, t])[choice[i, t]]
            assert ours[i, t] == pytest.approx(math.log((1 - lapse) * p + lapse / 2), rel=1e-12)


def test_probit_logp_matches_scipy_including_tails():
    d = np.array([-40.0, -3.0, -0.2, 0.0, 0.7, 9.0, 40.0])
    sd = 1.7
    for c in (0, 1):
        ours = probit_logp(d, np.full(d.shape, c), sd=sd)
        expected = stats.norm.logcdf((1 if c == 1 else -1) * d / sd)
        np.testing.assert_allclose(ours, expected, rtol=1e-10)
    lapse = 0.08
    ours = probit_logp(d, np.ones(d.shape, int), sd=sd, lapse=lapse)
    expected = np.log((1 - lapse) * stats.norm.cdf(d / sd) + lapse / 2)
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_choice_models_in_pytensor_match_numpy_with_gradients():
    import pytensor
    import pytensor.tensor as pt

    ops = get_pytensor_ops()
    rng = np.random.default_rng(3)
    q = rng.normal(size=(4, 3))
    choice = np.array([0, 2, 1, 2])
    d = rng.normal(size=4) * 2
    c2 = np.array([1, 0, 0, 1])
    th = pt.dvector("th")  # beta, lapse, sd
    beta_v = th[0] * np.ones(4)
    out = (softmax_logp(q, choice, ops, beta=beta_v, lapse=th[1] * np.ones(4)).sum()
           + probit_logp(d, c2, ops, sd=th[2], lapse=th[1]).sum())
    f = pytensor.function([th], [out, pytensor.grad(out, th)])

    def np_out(t):
        return float(softmax_logp(q, choice, beta=np.full(4, t[0]), lapse=np.full(4, t[1])).sum()
                     + probit_logp(d, c2, sd=t[2], lapse=t[1]).sum())

    t = np.array([2.0, 0.1, 1.3])
    val, grad = f(t)
    assert val == pytest.approx(np_out(t), rel=1e-12)
    fd = [(np_out(t + 1e-6 * e) - np_out(t - 1e-6 * e)) / 2e-6 for e in np.eye(3)]
    np.testing.assert_allclose(grad, fd, rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# log-normal RT
# ---------------------------------------------------------------------------------------------------------------
def _rt_data(seed=4, n=3, T=6):
    rng = np.random.default_rng(seed)
    rt = rng.lognormal(-0.5, 0.4, (n, T))
    cost = rng.normal(size=(n, T))  # signed: the model uses |cost|
    entropy = rng.uniform(0, math.log(3), (n, T))  # nats
    return rt, cost, entropy


def test_lognormal_rt_matches_scipy():
    rt, cost, entropy = _rt_data()
    model = LognormalRT()
    assert model.param_names == ("b1", "b2")
    p = model.resolve({"b1": [0.02, 0.1, 0.3], "b2": 0.05}, 3)
    ours = model.logp(p, rt, cost, entropy)
    for i in range(3):
        mu = np.log(0.15 + p["b1"][i] * np.abs(cost[i]) + 0.05 * entropy[i] / np.log(2))  # H in bits
        np.testing.assert_allclose(ours[i], stats.norm.logpdf(np.log(rt[i]), loc=mu, scale=1.0), rtol=1e-12)
        # density of RT itself = density of log RT + Jacobian (-log RT): scipy's lognorm
        np.testing.assert_allclose(ours[i] + model.log_jacobian(rt[i]),
                                   stats.lognorm.logpdf(rt[i], s=1.0, scale=np.exp(mu)), rtol=1e-12)


def test_lognormal_rt_free_t0_sigma_and_mask():
    rt, cost, entropy = _rt_data(seed=5)
    rt[1, 2] = np.nan  # missing RT
    model = LognormalRT(fixed={})
    assert set(model.param_names) == {"b1", "b2", "t0", "sigma"}
    p = model.resolve({"b1": 0.1, "b2": 0.2, "t0": [0.1, 0.2, 0.3], "sigma": [0.5, 0.8, 1.2]}, 3)
    valid = np.ones(rt.shape, bool)
    valid[0, 0] = False
    with pytest.warns(UserWarning, match="1 valid trial"):
        mask = model.mask(rt, valid)
    assert mask.sum() == rt.size - 2
    ours = model.logp(p, rt, cost, entropy, mask=mask)
    assert ours[0, 0] == 0.0 and ours[1, 2] == 0.0
    i, t = 2, 3
    mu = math.log(0.3 + 0.1 * abs(cost[i, t]) + 0.2 * entropy[i, t] / math.log(2))
    assert ours[i, t] == pytest.approx(stats.norm.logpdf(math.log(rt[i, t]), mu, 1.2), rel=1e-12)
    with pytest.raises(ValueError, match="subject 1, trial 2"):
        model.check_data(rt)


def test_lognormal_rt_pytensor_value_and_gradient():
    import pytensor
    import pytensor.tensor as pt

    ops = get_pytensor_ops()
    rt, cost, entropy = _rt_data(seed=6)
    rt[0, 1] = np.nan
    mask = np.isfinite(rt)
    model = LognormalRT()
    b = pt.dmatrix("b")  # (2, n): b1, b2
    p = {"b1": b[0], "b2": b[1]}
    ll = model.logp(p, rt, cost, entropy, ops, mask=mask).sum()
    f = pytensor.function([b], [ll, pytensor.grad(ll, b)])
    bv = np.array([[0.02, 0.1, 0.3], [0.05, 0.2, 0.01]])

    def np_ll(x):
        return float(model.logp({"b1": x[0], "b2": x[1]}, rt, cost, entropy, mask=mask).sum())

    val, grad = f(bv)
    assert np.isfinite(val) and val == pytest.approx(np_ll(bv), rel=1e-12)
    assert np.all(np.isfinite(grad))
    fd = np.zeros_like(bv)
    for idx in np.ndindex(bv.shape):
        e = np.zeros_like(bv)
        e[idx] = 1e-7
        fd[idx] = (np_ll(bv + e) - np_ll(bv - e)) / 2e-7
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Wiener RT
# ---------------------------------------------------------------------------------------------------------------
def test_wiener_rt_matches_wfpt_with_value_driven_drift():
    wfpt = pytest.importorskip("wfpt")
    rng = np.random.default_rng(7)
    n, T = 3, 5
    rt = 0.45 + rng.gamma(2.0, 0.2, (n, T))
    resp = rng.integers(0, 2, (n, T))
    dq = rng.normal(size=(n, T)) * 0.5
    for sv_on in (False, True):
        model = WienerRT(sv=sv_on)
        vals = {"v_scale": [1.0, 2.5, 4.0], "a": [0.8, 1.5, 2.2], "w": [0.3, 0.5, 0.7], "t0": [0.2, 0.3, 0.4]}
        if sv_on:
            vals["sv"] = [0.3, 1.0, 2.0]
        p = model.resolve(vals, n)
        ours = model.logp(p, rt, resp, dq)
        for i in range(n):
            for t in range(T):
                x = rt[i, t] if resp[i, t] == 1 else -rt[i, t]
                sv = p["sv"][i] if sv_on else 0.0
                ref = wfpt.full_pdf(x, p["v_scale"][i] * dq[i, t], sv, p["a"][i], p["w"][i], 0.0, p["t0"][i], 0.0,
                                    1e-13)
                assert ours[i, t] == pytest.approx(math.log(ref), rel=1e-9)


def test_wiener_rt_fixed_w_and_mask():
    model = WienerRT(fixed={"w": 0.5})
    assert model.param_names == ("v_scale", "a", "t0")
    rt = np.array([[0.6, np.nan, 0.8]])
    resp = np.array([[1, 0, 0]])
    mask = np.isfinite(rt)
    p = model.resolve({"v_scale": 2.0, "a": 1.2, "t0": 0.25}, 1)
    out = model.logp(p, rt, resp, np.array([[0.3, 0.1, -0.2]]), mask=mask)
    assert out[0, 1] == 0.0 and np.all(np.isfinite(out))


def test_wiener_rt_check_data_names_subject_and_trial():
    model = WienerRT(fixed={"t0": 0.3})
    rt = np.array([[0.5, 0.6], [0.35, 0.28]])
    with pytest.raises(ValueError, match=r"subject 1, trial 1 \(rt=0\.28, t0=0\.3\)"):
        model.check_data(rt)
    model.check_data(rt, valid=[[True, True], [True, False]])
    free = WienerRT()
    free.check_data(rt)  # free t0 and none given: only positivity
    msg = r"2 valid trial\(s\).*subject 0, trial 0 \(rt=0\.5, t0=0\.65\); subject 0, trial 1"
    with pytest.raises(ValueError, match=msg):
        free.check_data(rt, t0=np.array([0.65, 0.2]))  # per-subject t0
    with pytest.raises(ValueError, match="responses must be 0"):
        free.check_data(rt, response=np.array([[0, 1], [2, 1]]))
    np.testing.assert_allclose(WienerRT.t0_upper(rt), [0.5, 0.28])


def test_wiener_rt_pytensor_gradient():
    import pytensor
    import pytensor.tensor as pt

    ops = get_pytensor_ops()
    rng = np.random.default_rng(8)
    n, T = 2, 6
    rt = 0.4 + rng.gamma(2.0, 0.2, (n, T))
    resp = rng.integers(0, 2, (n, T))
    dq = rng.normal(size=(n, T))
    model = WienerRT(fixed={"w": 0.5})
    th = pt.dmatrix("th")  # v_scale, a, t0 per subject
    p = {"v_scale": th[0], "a": th[1], "t0": th[2]}
    ll = model.logp(p, rt, resp, dq, ops).sum()
    f = pytensor.function([th], [ll, pytensor.grad(ll, th)])
    x0 = np.array([[1.5, 2.5], [1.0, 1.8], [0.2, 0.3]])

    def np_ll(x):
        return float(model.logp({"v_scale": x[0], "a": x[1], "t0": x[2]}, rt, resp, dq).sum())

    val, grad = f(x0)
    assert val == pytest.approx(np_ll(x0), rel=1e-12)
    fd = np.zeros_like(x0)
    for idx in np.ndindex(x0.shape):
        e = np.zeros_like(x0)
        e[idx] = 1e-6
        fd[idx] = (np_ll(x0 + e) - np_ll(x0 - e)) / 2e-6
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-6)


def test_observation_model_parameter_errors():
    with pytest.raises(ValueError, match="unknown"):
        WienerRT(fixed={"zz": 1.0})
    with pytest.raises(ValueError, match="outside"):
        LognormalRT(fixed={"t0": 2.0, "sigma": 1.0})
    with pytest.raises(ValueError, match="b1"):
        LognormalRT().resolve({"b1": 0.9}, 2)
    assert "fixed at 0.15" in LognormalRT().describe()
