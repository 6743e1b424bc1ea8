"""Choice + RT models (neurorl.fitting.joint): sampling, likelihood, gradients, data checks, fitting.

Reference values: hddm-wfpt's ``wiener_like_rlddm`` (an independent RL-DDM implementation: its own learning loop
and Wiener density), scipy.stats (normal log density) with hand-written costs, numerical integration of the exact
density for the sampler (Kolmogorov-Smirnov), and finite differences for gradients.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats

import neurorl as nr
from neurorl.backend import NUMPY
from neurorl.fitting import MAP, MLE
from neurorl.fitting.graph import compiled_loglik
from neurorl.fitting.joint import WithRT, with_rt
from neurorl.fitting.observation import LognormalRT, WienerRT
from neurorl.fitting.wiener import sample_wiener, wiener_p_upper, wiener_pdf
from neurorl.simulate import observations

TASKS = nr.list_tasks()


def _theta(model, params):
    return np.stack([p.to_unconstrained(np.asarray(params[p.name], float)) for p in model.params])


def _numpy_trial_loglik(model, trials, params):
    """Trial log-likelihoods (n, T) by a NumPy loop over trials (the rule under NumPy ops)."""
    env, obs = observations(trials)
    T, n = obs["state"].shape
    p = model.resolve(params, n)
    s = model.start(p, env, n, NUMPY)
    out = np.zeros((T, n))
    for t in range(T):
        o = {k: v[t] for k, v in obs.items()}
        s, lat = model.step(p, s, o, NUMPY)
        out[t] = model.trial_loglik(p, o, lat, NUMPY)
    return out.T


# ----------------------------------------------------------------------------- sampler
def test_sample_wiener_matches_exact_density():
    rng = np.random.default_rng(0)
    v, a, w, t0 = 0.8, 1.5, 0.4, 0.3
    resp, rt = sample_wiener(np.full(20000, v), a, w, t0, rng)
    p_up = wiener_p_upper(v, a, w)
    assert abs(resp.mean() - p_up) < 3 * math.sqrt(p_up * (1 - p_up) / resp.size)
    grid = np.linspace(t0 + 1e-6, t0 + 15.0, 100001)
    for r in (0, 1):
        pdf = wiener_pdf(grid, np.full(grid.shape, r), v, a, w, t0)
        cdf = integrate.cumulative_trapezoid(pdf, grid, initial=0.0)
        cdf /= cdf[-1]
        ks = stats.kstest(rt[resp == r], lambda q: np.interp(q, grid, cdf))
        assert ks.pvalue > 1e-3, (r, ks)
    assert rt.min() > t0


def test_sample_wiener_drift_variability_and_errors():
    rng = np.random.default_rng(1)
    # with sv, P(upper) = E over v ~ N(mu, sv^2) of P_upper(v): check against numerical integration
    mu, sv, a, w = 0.5, 1.0, 1.2, 0.5
    resp, _ = sample_wiener(np.full(40000, mu), a, w, 0.2, rng, sv=sv)
    nodes, weights = np.polynomial.hermite_e.hermegauss(40)
    expected = np.sum(weights * wiener_p_upper(mu + sv * nodes, a, w)) / np.sqrt(2 * np.pi)
    assert abs(resp.mean() - expected) < 3 * math.sqrt(expected * (1 - expected) / resp.size)
    with pytest.raises(ValueError, match="w must lie in"):
        sample_wiener([0.0], 1.0, 1.2, 0.2, rng)
    with pytest.raises(ValueError, match="max_t"):
        sample_wiener([0.0], 50.0, 0.5, 0.2, rng, max_t=0.5)


# ----------------------------------------------------------------------------- the joint model
def test_with_rt_parameters_unused_and_renamed():
    m = WithRT("q_learning", WienerRT())
    assert m.unused == ("beta",) and m.fixed["beta"] == nr.make_agent("q_learning").all_params[1].default
    assert m.param_names == ("alpha", "v_scale", "a", "w", "t0")
    assert WithRT("soft_q", WienerRT()).unused == ()  # tau also shapes the soft backup
    two = WithRT("two_step_hybrid", WienerRT(fixed={"w": 0.5}))
    assert "rt_w" in two.fixed and "w" in two.param_names  # the agent's w stays, the RT model's is renamed
    lg = WithRT("q_learning", LognormalRT())
    assert lg.param_names == ("alpha", "beta", "b1", "b2") and lg.fixed == {"t0": 0.15, "sigma": 1.0}
    assert with_rt("q_learning") .name == "q_learning"
    assert with_rt("q_learning", "wiener").name == "q_learning+wiener_rt"
    with pytest.raises(ValueError, match="unknown RT model"):
        with_rt("q_learning", "gamma")
    with pytest.raises(ValueError, match="two actions"):
        nr.simulate(WithRT("q_learning", WienerRT()), nr.make_task("bandit", n_arms=3), n_trials=5)
    with pytest.raises(ValueError, match="not a latent"):
        WithRT("q_learning", WienerRT(), value="nope")


def test_rlddm_likelihood_matches_hddm_wfpt():
    wfpt = pytest.importorskip("wfpt")
    agent = nr.make_agent("q_learning", q0=0.5)
    model = WithRT(agent, WienerRT())
    n, T = 4, 60
    rng = np.random.default_rng(5)
    params = {"alpha": rng.uniform(0.1, 0.6, n), "v_scale": rng.uniform(1, 4, n), "a": rng.uniform(1.0, 2.0, n),
              "w": rng.uniform(0.35, 0.65, n), "t0": rng.uniform(0.2, 0.35, n)}
    sim = nr.simulate(model, nr.make_task("bandit", p=(0.7, 0.3)), n_subjects=n, n_trials=T, params=params, rng=6)
    tr = sim.trials
    assert np.all(np.isfinite(tr["rt"].values)) and np.all(tr["rt"].values > params["t0"][:, None])
    env, obs = observations(tr)
    f = compiled_loglik(model, env, order=0)
    pw = f(_theta(model, params), obs)["pointwise"].T  # (n, T)
    for i in range(n):
        resp = tr["choice"].values[i].astype(np.int64)
        x = np.where(resp == 1, tr["rt"].values[i], -tr["rt"].values[i])
        alpha_logit = math.log(params["alpha"][i] / (1 - params["alpha"][i]))
        ref = wfpt.wiener_like_rlddm(x, resp, tr["reward"].values[i], np.zeros(T, np.int64), 0.5, alpha_logit,
                                     100.0, params["v_scale"][i], 0.0, params["a"][i], params["w"][i], 0.0,
                                     params["t0"][i], 0.0, 1e-10)
        # hddm-wfpt scores every trial but the first
        np.testing.assert_allclose(pw[i, 1:].sum(), ref, rtol=1e-9)
    np.testing.assert_allclose(pw, _numpy_trial_loglik(model, tr, params), rtol=1e-10, atol=1e-10)


def test_lognormal_joint_matches_hand_computation():
    for name, params in [("policy_compression", {"beta": 3.0, "alpha_p": 0.1}), ("q_learning", {"beta": 4.0})]:
        model = WithRT(name, LognormalRT(fixed={"t0": 0.2}))
        n, T = 3, 40
        params = {**params, "b1": 0.05, "b2": 0.1, "sigma": 0.4}
        sim = nr.simulate(model, "bandit", n_subjects=n, n_trials=T, params=params, rng=2)
        tr = sim.trials.copy()
        rt = tr["rt"].values.copy()
        rt[0, 3], rt[1, 7] = np.nan, 0.001  # no RT / below min_rt: choice term only
        tr["rt"] = (("subject", "trial"), rt)
        lat = nr.replay(model, tr, params)
        ch = tr["choice"].values
        pi = np.take_along_axis(lat["policy"].values, ch[..., None], -1)[..., 0]
        if "marginal" in lat:
            marg = np.take_along_axis(lat["marginal"].values, ch[..., None], -1)[..., 0]
        else:
            marg = np.full(pi.shape, 0.5)
        cost = np.log(pi) - np.log(marg)
        mu = np.log(0.2 + 0.05 * np.abs(cost) + 0.1 * lat["entropy"].values / math.log(2))
        ok = np.isfinite(rt) & (rt >= 0.005)
        rt_term = np.where(ok, stats.norm.logpdf(np.log(np.where(ok, rt, 1.0)), mu, 0.4)
                           - np.log(np.where(ok, rt, 1.0)), 0.0)
        expected = np.log(pi) + rt_term
        env, obs = observations(tr)
        f = compiled_loglik(model, env, order=0)
        got = f(_theta(model, sim.params), obs)["pointwise"].T
        np.testing.assert_allclose(got, expected, rtol=1e-10, err_msg=name)
        np.testing.assert_allclose(_numpy_trial_loglik(model, tr, params), expected, rtol=1e-10, err_msg=name)


@pytest.mark.parametrize("rt_model", [WienerRT(), LognormalRT(fixed={"t0": 0.15})])
def test_joint_gradient_matches_finite_differences(rt_model):
    model = WithRT("q_learning", rt_model)
    sim = nr.simulate(model, "bandit", n_subjects=3, n_trials=40, rng=3)
    env, obs = observations(sim.trials)
    f0, f1 = compiled_loglik(model, env, order=0), compiled_loglik(model, env, order=1)
    theta = _theta(model, sim.params) + np.random.default_rng(0).normal(0, 0.2, (len(model.params), 3))
    g = f1(theta, obs)["grad"]
    h = 1e-5
    for j in range(theta.shape[0]):
        e = np.zeros_like(theta)
        e[j] = h
        fd = (f0(theta + e, obs)["loglik"] - f0(theta - e, obs)["loglik"]) / (2 * h)
        np.testing.assert_allclose(g[j], fd, rtol=1e-5, atol=1e-6, err_msg=model.params[j].name)


def _two_action_task(agent):
    for t in ["bandit"] + TASKS:
        task = nr.make_task(t)
        if task.env.n_actions == 2 and agent.supports(task):
            return task
    return None


@pytest.mark.parametrize("agent_name", nr.list_agents())
def test_every_agent_simulates_and_scores_choices_and_rts(agent_name):
    agent = nr.make_agent(agent_name)
    task = _two_action_task(agent)
    if task is None:
        pytest.skip(f"{agent_name} has no two-action task")
    for rt_model in (LognormalRT(), WienerRT()):
        model = WithRT(agent, rt_model)
        if isinstance(rt_model, WienerRT) and not task.env.available.all():
            with pytest.raises(ValueError, match="offer only one"):  # forced moves: no two-boundary choice
                nr.simulate(model, task, n_subjects=2, n_trials=25, rng=0)
            continue
        sim = nr.simulate(model, task, n_subjects=2, n_trials=25, rng=0)
        rt = sim.trials["rt"].values
        assert np.all(np.isfinite(rt) & (rt > 0))
        ll = _numpy_trial_loglik(model, sim.trials, sim.params)
        assert np.all(np.isfinite(ll)) and np.all(ll[sim.trials["valid"].values] != 0.0)
        if model.wiener:  # the choice is the diffusion's: no softmax term, only the WFPT density
            assert "drift" in nr.replay(model, sim.trials, sim.params)


# ----------------------------------------------------------------------------- data checks
def test_rt_data_errors_and_warnings():
    model = WithRT("q_learning", WienerRT(fixed={"t0": 0.3}))
    sim = nr.simulate(model, "bandit", n_subjects=2, n_trials=20, rng=1)
    tr = sim.trials.copy()
    rt = tr["rt"].values.copy()
    rt[1, 4] = 0.25  # below the fixed t0
    tr["rt"] = (("subject", "trial"), rt)
    with pytest.raises(ValueError, match="subject 1, trial 4"):
        MAP(model).fit(tr)
    rt[1, 4] = np.nan
    tr["rt"] = (("subject", "trial"), rt)
    with pytest.raises(ValueError, match="subject 1, trial 4"):
        MLE("q_learning", rt=WienerRT()).fit(tr)
    lg = WithRT("q_learning", LognormalRT())
    with pytest.warns(UserWarning, match="1 valid trial"):
        lg.check_data(tr)
    tr["rt"] = (("subject", "trial"), np.full(rt.shape, np.nan))
    with pytest.raises(ValueError, match="no valid trial has a reaction time"):
        lg.check_data(tr)


# ----------------------------------------------------------------------------- fitting
def test_rlddm_map_fit_reaches_at_least_the_truth():
    model = WithRT("q_learning", WienerRT(fixed={"w": 0.5}))
    truth = {"alpha": 0.3, "v_scale": 3.0, "a": 1.6, "t0": 0.3}
    sim = nr.simulate(model, nr.make_task("bandit", p=(0.8, 0.2)), n_subjects=4, n_trials=150, params=truth, rng=7)
    est = MLE("q_learning", rt=WienerRT(fixed={"w": 0.5}), n_starts=2, rng=0).fit(sim.trials)
    assert est.result_["converged"].all()
    env, obs = observations(sim.trials)
    ll_truth = compiled_loglik(model, env, order=0)(_theta(model, sim.params), obs)["loglik"]
    assert np.all(est.result_["loglik"].values >= ll_truth - 1e-6)  # the MLE is at least as likely as the truth
    assert np.all(np.abs(est.params_["a"].values - 1.6) < 0.3)
    assert np.all(np.abs(est.params_["t0"].values - 0.3) < 0.05)
    lat = est.latents()
    assert "drift" in lat and lat["drift"].shape == (4, 150)


def _recovery(model, truth, n_trials, seed):
    sim = nr.simulate(model, nr.make_task("bandit", p=(0.8, 0.2)), n_subjects=len(next(iter(truth.values()))),
                      n_trials=n_trials, params=truth, rng=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MAP(model, n_starts=3, rng=0).fit(sim.trials)
    r = {k: float(np.corrcoef(truth[k], est.params_[k].values)[0, 1]) for k in truth}
    print(model.name, {k: round(v, 3) for k, v in r.items()})
    return r


@pytest.mark.slow
def test_rlddm_parameter_recovery():
    rng = np.random.default_rng(3)
    n = 30
    truth = {"alpha": rng.uniform(0.1, 0.6, n), "v_scale": rng.uniform(1.5, 4.0, n), "a": rng.uniform(1.2, 2.2, n),
             "t0": rng.uniform(0.2, 0.4, n)}
    r = _recovery(WithRT("q_learning", WienerRT(fixed={"w": 0.5})), truth, 200, 4)
    # measured (MAP, 3 starts): alpha 0.93, v_scale 0.95, a 0.96, t0 0.97 (30 subjects x 200 trials)
    assert r["alpha"] > 0.6 and r["v_scale"] > 0.45 and r["a"] > 0.9 and r["t0"] > 0.85


@pytest.mark.slow
def test_lognormal_rt_parameter_recovery():
    rng = np.random.default_rng(4)
    n = 30
    truth = {"alpha": rng.uniform(0.1, 0.6, n), "beta": rng.uniform(2.0, 6.0, n), "b1": rng.uniform(0.02, 0.3, n),
             "b2": rng.uniform(0.02, 0.3, n), "sigma": rng.uniform(0.2, 0.4, n)}
    r = _recovery(WithRT("q_learning", LognormalRT(fixed={"t0": 0.15})), truth, 300, 5)
    # measured: alpha 0.93, beta 0.97, b1 0.98, b2 0.96, sigma 0.98 (30 subjects x 300 trials)
    assert r["b1"] > 0.6 and r["b2"] > 0.6 and r["sigma"] > 0.8 and r["beta"] > 0.6
