"""Tests of neurorl.ssm (DDM regressions with formulas).

References independent of the code under test: ``wfpt.full_pdf`` from the test-only package ``hddm-wfpt`` (HDDM's
Cython density, with sv); central differences of the log posterior (for the hand-written chain rule); the closed-form
boundary probability (for the simulator used by the predictive checks); the contaminant mixture written out by hand
from the NumPy density; the true coefficients of simulated data (recovery).

Every data set here has 1500 trials (one padded size, 1536), so all tests share one padded kernel size (fewer compiles).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neurorl.fitting.wiener import wiener_logpdf, wiener_p_upper
from neurorl.ssm import (
    DDM,
    plot_qp,
    plot_rt_distributions,
    predictive_check,
    simulate_ddm,
)
from neurorl.ssm.kernel import get_kernel

TRUE = {"v:Intercept": 1.0, "v:x": 0.5, "a:Intercept": np.log(1.5), "a:theta:C(conf)[0]": -0.25,
        "a:theta:C(conf)[1]": 0.25, "t0:Intercept": np.log(0.3)}


def _simulate(n_subjects=10, n_trials=150, seed=1):
    """Hierarchical DDM regression: v ~ 1 + x, a ~ 1 + theta:C(conf) (the theta slope flips sign with conf)."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subjects):
        x = rng.normal(size=n_trials)
        conf = rng.integers(0, 2, n_trials)
        theta = rng.normal(size=n_trials)
        v = TRUE["v:Intercept"] + 0.3 * rng.normal() + TRUE["v:x"] * x
        log_a = TRUE["a:Intercept"] + 0.1 * rng.normal() + np.where(conf == 1, TRUE["a:theta:C(conf)[1]"],
                                                                    TRUE["a:theta:C(conf)[0]"]) * theta
        rows.append(pd.DataFrame({"subject": f"s{s}", "x": x, "conf": conf, "theta": theta, "v": v,
                                  "a": np.exp(log_a), "z": 0.5, "t0": 0.3}))
    return simulate_ddm(pd.concat(rows, ignore_index=True), rng=seed + 100)


@pytest.fixture(scope="module")
def data():
    return _simulate()


@pytest.fixture(scope="module")
def fitted(data):
    return DDM("v ~ 1 + x", "a ~ 1 + theta:C(conf)", progress=False).fit(data)


def test_kernel_matches_hddm_wfpt_with_sv():
    wfpt = pytest.importorskip("wfpt")
    rng = np.random.default_rng(3)
    n = 1500
    v = rng.uniform(-2, 2, n)
    a = rng.uniform(0.6, 2.5, n)
    w = rng.uniform(0.2, 0.8, n)
    t0 = rng.uniform(0.1, 0.4, n)
    sv = np.where(np.arange(n) % 2 == 0, 0.0, rng.uniform(0.1, 1.5, n))
    rt = t0 + rng.uniform(0.01, 3.0, n)
    resp = rng.integers(0, 2, n).astype(float)
    P = np.stack([v, a, w, t0, sv, np.zeros(n)])
    ll, _ = get_kernel(n, free=(0, 1, 3))(P, rt, resp, np.ones(n), order=1)
    ref = np.array([np.log(wfpt.full_pdf(rt[i] if resp[i] == 1 else -rt[i], v[i], sv[i], a[i], w[i], 0.0, t0[i],
                                         0.0, 1e-13)) for i in range(n)])
    np.testing.assert_allclose(ll, ref, rtol=1e-9, atol=1e-9)


def test_lapse_mixture_by_hand():
    rng = np.random.default_rng(4)
    n = 1500
    P = np.stack([rng.uniform(-1, 1, n), rng.uniform(0.8, 2, n), rng.uniform(0.3, 0.7, n),
                  np.full(n, 0.2), np.zeros(n), rng.uniform(0.01, 0.2, n)])
    rt = 0.2 + rng.uniform(0.05, 2.0, n)
    resp = rng.integers(0, 2, n).astype(float)
    ll, _ = get_kernel(n, lapse=True, rt_max=5.0, free=(0, 1, 3, 5))(P, rt, resp, np.ones(n), order=1)
    base = np.exp(wiener_logpdf(rt, resp, P[0], P[1], P[2], P[3]))
    ref = np.log((1 - P[5]) * base + P[5] * 0.5 / 5.0)
    np.testing.assert_allclose(ll, ref, rtol=1e-12)


def test_chain_rule_gradient_and_hessian_match_differences(data):
    m = DDM("v ~ 1 + x", "a ~ 1 + theta:C(conf)", progress=False)
    df, layout, kern, _ = m._setup(data)
    rng = np.random.default_rng(5)
    th = m._start(layout, df, m._prior_vectors(layout)) + 0.1 * rng.normal(size=layout.size)
    w = np.ones(layout.n)
    _, _, g, H = m._loglik(th, layout, kern, df, w, 2)
    eps = 1e-6
    idx = rng.choice(layout.size, 4, replace=False)  # a sample of directions keeps the test short
    for k in idx:
        e = np.zeros(layout.size)
        e[k] = eps
        gd = (m._loglik(th + e, layout, kern, df, w, 0)[0] - m._loglik(th - e, layout, kern, df, w, 0)[0]) / (2 * eps)
        hd = (m._loglik(th + e, layout, kern, df, w, 1)[2] - m._loglik(th - e, layout, kern, df, w, 1)[2]) / (2 * eps)
        assert abs(g[k] - gd) <= 1e-6 * (1 + abs(g[k]))
        np.testing.assert_allclose(H[:, k], hd, rtol=1e-5, atol=1e-5 * (1 + np.abs(H).max()))
    prior = m._prior_vectors(layout)
    _, gp, Hp = m._logprior(th, layout, prior, 2)
    for k in idx:
        e = np.zeros(layout.size)
        e[k] = eps
        gd = (m._logprior(th + e, layout, prior, 0) - m._logprior(th - e, layout, prior, 0)) / (2 * eps)
        hd = (m._logprior(th + e, layout, prior, 1)[1] - m._logprior(th - e, layout, prior, 1)[1]) / (2 * eps)
        assert abs(gp[k] - gd) <= 1e-6 * (1 + abs(gp[k]))
        np.testing.assert_allclose(Hp[:, k], hd, atol=1e-6)


def test_recovers_coefficients_whose_signs_flip_with_a_group(fitted):
    c = fitted.coefs_
    assert fitted.converged_
    for name, true in TRUE.items():
        est, se = float(c["estimate"].sel(coef=name)), float(c["se"].sel(coef=name))
        assert abs(est - true) < 3.5 * se + 0.02, (name, est, se, true)
    # the boundary-on-theta slope has opposite signs in the two confidence groups, both clearly away from 0
    lo = c.sel(coef="a:theta:C(conf)[0]")
    hi = c.sel(coef="a:theta:C(conf)[1]")
    assert float(lo["upper"]) < 0 < float(hi["lower"])
    # subject sds: v was simulated with sd 0.3 (10 subjects: a wide interval), t0 with none
    sd = fitted.group_sd_["estimate"]
    assert 0.1 < float(sd.sel(rcoef="v:Intercept")) < 0.7
    assert float(sd.sel(rcoef="t0:Intercept")) < 0.05
    # results: pointwise log-likelihood over obs with (subject, trial) coordinates, summing to the total
    pw = fitted.pointwise_loglik_
    assert pw.sizes["obs"] == 1500 and set(np.unique(pw["subject"].values)) == {f"s{i}" for i in range(10)}
    assert np.isclose(float(pw.sum()), float(fitted.result_["loglik_total"]))
    assert fitted.subject_coefs_.sizes == {"subject": 10, "coef": 6}


def test_stimulus_coding_mirrors_drift(data):
    """With z = 0.5, stimulus coding (split v) of responses equals accuracy coding of the recoded responses."""
    rng = np.random.default_rng(6)
    df = data.copy()
    df["stim"] = rng.integers(0, 2, len(df))
    df["resp_stim"] = np.where(df["stim"] == 1, df["response"], 1 - df["response"])
    acc = DDM("v ~ 1 + x", "a ~ 1 + theta:C(conf)", progress=False)
    stim = DDM("v ~ 1 + x", "a ~ 1 + theta:C(conf)", coding="stimulus", stimulus="stim", response="resp_stim",
               progress=False)
    d1, l1, k1, _ = acc._setup(df)
    d2, l2, k2, _ = stim._setup(df)
    th = acc._start(l1, d1, acc._prior_vectors(l1)) + 0.05
    ll1 = acc._loglik(th, l1, k1, d1, np.ones(l1.n), 0)[1]
    ll2 = stim._loglik(th, l2, k2, d2, np.ones(l2.n), 0)[1]
    np.testing.assert_allclose(ll1, ll2, rtol=1e-12)
    # split_param="z": the starting point of stimulus-0 trials is 1 - z
    zsplit = DDM("v ~ 1", "a ~ 1", z="1", coding="stimulus", stimulus="stim", split_param="z", hierarchical=False,
                 progress=False)
    _, l3, _, _ = zsplit._setup(df)
    P, _ = l3.trial_params(np.zeros(l3.size) + 0.3)
    z = 1 / (1 + np.exp(-0.3))
    np.testing.assert_allclose(P[2], np.where(df["stim"] == 1, z, 1 - z))


def test_predictive_check_matches_boundary_probability(fitted):
    chk = predictive_check(fitted, by="conf", n_rep=4, rng=7)
    assert chk.sizes["condition"] == 2 and chk["pred_rt"].shape == (4, 1500)
    # the simulator's upper-boundary rate agrees with the closed-form probability at the fitted parameters
    P, _ = fitted.layout_.trial_params(fitted.theta_)
    p_exact = wiener_p_upper(P[0], P[1], P[2]).mean()
    sim = chk["pred_response"].values.mean()
    assert abs(sim - p_exact) < 4 * np.sqrt(p_exact * (1 - p_exact) / chk["pred_response"].size)
    ax = plot_qp(chk)
    assert ax.get_xlabel() and ax.get_ylabel() == "RT quantile (s)"
    axes = plot_rt_distributions(chk)
    assert all(a.get_xlabel() for a in axes)


def test_cross_validation_scores_every_trial_once():
    df = _simulate(n_subjects=3, n_trials=500, seed=11)
    fit = DDM("v ~ 1 + x", "a ~ 1", hierarchical=False, progress=False).fit(df)
    cv = fit.cross_validate(k=3)
    assert np.all(np.isfinite(cv["loglik"].values)) and set(np.unique(cv["fold"].values)) == {0, 1, 2}
    assert float(cv["elpd"]) < float(fit.result_["loglik_total"])  # out-of-sample below in-sample


@pytest.mark.parametrize("kwargs, match", [
    ({"formulas": ("w ~ 1",)}, "unknown parameter 'w'"),
    ({"formulas": ("v ~ 1 + (1|cond)",)}, "grouped by the subject column"),
    ({"formulas": ("v ~ 1",), "v": 1.0}, "both as a formula"),
    ({"formulas": (), "coding": "stimulus"}, "needs stimulus="),
])
def test_bad_specifications_raise(data, kwargs, match):
    formulas = kwargs.pop("formulas")
    with pytest.raises(ValueError, match=match):
        DDM(*formulas, progress=False, **kwargs)._setup(data)


def test_bad_data_names_rows(data):
    df = data.copy()
    df.loc[7, "rt"] = -0.4
    with pytest.raises(ValueError, match=r"rows 7.*signed RT"):
        DDM(progress=False).fit(df)
    df = data.copy()
    df.loc[3, "response"] = 2
    with pytest.raises(ValueError, match="rows 3"):
        DDM(progress=False).fit(df)


@pytest.mark.slow
def test_nuts_agrees_with_map_and_gives_loo(data, fitted):
    fit = DDM("v ~ 1 + x", "a ~ 1 + theta:C(conf)", method="nuts", draws=200, tune=200, chains=2, rng=1,
              nuts_sampler="numpyro", progress=False).fit(data)
    c, m = fit.coefs_, fitted.coefs_
    for name in TRUE:
        assert abs(float(c["estimate"].sel(coef=name)) - float(m["estimate"].sel(coef=name))) < \
            2 * float(c["se"].sel(coef=name)) + 0.02
    loo = fit.loo()
    assert loo.n_data_points == 1500
    assert fit.idata_.log_likelihood["loglik"].sizes["obs"] == 1500


def test_sigmoid_rlddm_matches_hand_computation():
    """RL-DDM with the sigmoid drift (Fontanesi et al. 2019) and dual learning rates: the compiled likelihood of
    MAP/EM-MAP equals the density written out by hand from the replayed Q values."""
    import neurorl as nr
    from neurorl.fitting.graph import compiled_loglik
    from neurorl.fitting.joint import WithRT
    from neurorl.simulate import observations
    from neurorl.ssm.rlddm import SigmoidWienerRT

    agent = nr.make_agent("q_learning", dual_rates=True, q0=0.5)
    model = WithRT(agent, SigmoidWienerRT())
    params = {"alpha_pos": np.array([0.4, 0.2]), "alpha_neg": np.array([0.1, 0.3]), "v_max": np.array([4.0, 3.0]),
              "v_mod": np.array([3.0, 1.5]), "a": np.array([1.5, 1.2]), "w": np.array([0.45, 0.55]),
              "t0": np.array([0.25, 0.3])}
    params = {p.name: params.get(p.name, np.full(2, p.default)) for p in model.params}
    sim = nr.simulate(model, nr.make_task("bandit", p=(0.75, 0.25)), n_subjects=2, n_trials=60, params=params,
                      rng=3)
    tr = sim.trials
    env, obs = observations(tr)
    theta = np.stack([p.to_unconstrained(np.asarray(params[p.name], float)) for p in model.params])
    pw = compiled_loglik(model, env, order=0)(theta, obs)["pointwise"].T
    # by hand: Q-learning with dual rates on the chosen option, drift = v_max (sigmoid(v_mod dQ) - 1/2)
    for i in range(2):
        q = np.array([0.5, 0.5])
        for t in range(60):
            c, r, rt = int(tr["choice"].values[i, t]), tr["reward"].values[i, t], tr["rt"].values[i, t]
            dq = q[1] - q[0]
            v = params["v_max"][i] * (1 / (1 + np.exp(-params["v_mod"][i] * dq)) - 0.5)
            ref = wiener_logpdf(rt, c, v, params["a"][i], params["w"][i], params["t0"][i])
            np.testing.assert_allclose(pw[i, t], ref, rtol=1e-10)
            delta = r - q[c]
            q[c] += (params["alpha_pos"][i] if delta > 0 else params["alpha_neg"][i]) * delta
