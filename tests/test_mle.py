"""Tests of neurorl.fitting.mle (MLE, MAP, EMMAP) and the forward-mode likelihood graph.

Reference values come from a plain NumPy Rescorla-Wagner + softmax loop written here (``rw_loglik``), brute-force
grids, numerical integration and hand-computed criteria -- never from the estimators' own output.
Compiled functions are cached per process, so the tests share them (same agents, same layouts).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import neurorl as nr
from neurorl.agents.qlearning import QLearning
from neurorl.fitting.graph import compiled_loglik, uniform_observations
from neurorl.fitting.mle import EMMAP, MAP, MLE, FitWarning
from neurorl.simulate import observations

warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

Q0 = 0.5


def rw_loglik(choice, reward, valid, alpha, beta, q0=Q0):
    """Log-likelihood of one subject under RW + softmax (2 arms), vectorised over arrays ``alpha``, ``beta``."""
    alpha, beta = np.broadcast_arrays(np.asarray(alpha, float), np.asarray(beta, float))
    q = np.full(alpha.shape + (2,), q0)
    ll = np.zeros(alpha.shape)
    for c, r, v in zip(choice, reward, valid):
        if not v:
            continue
        logits = beta[..., None] * q
        m = logits.max(-1, keepdims=True)
        logp = logits - m - np.log(np.exp(logits - m).sum(-1, keepdims=True))
        ll += logp[..., c]
        q[..., c] += alpha * (r - q[..., c])
    return ll


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def simulate_rw(n, T, theta_alpha, theta_beta, rng, p=(0.7, 0.3), x=None, slope=0.0):
    """Plain simulation; ``alpha_t = sigmoid(theta_alpha + slope * x[:, t])`` when ``x`` is given."""
    choice = np.zeros((n, T), int)
    reward = np.zeros((n, T))
    beta = np.exp(theta_beta)
    for i in range(n):
        q = np.full(2, Q0)
        for t in range(T):
            a_t = sigmoid(theta_alpha[i] + (slope * x[i, t] if x is not None else 0.0))
            pr = np.exp(beta[i] * q - np.max(beta[i] * q))
            pr /= pr.sum()
            c = int(rng.random() < pr[1])
            r = float(rng.random() < p[c])
            choice[i, t], reward[i, t] = c, r
            q[c] += a_t * (r - q[c])
    return choice, reward


@pytest.fixture(scope="module")
def agent():
    return nr.make_agent("q_learning", q0=Q0)


@pytest.fixture(scope="module")
def data():
    """40 subjects x 150 trials from the benchmark's population (fitting.md §7), 5 missed trials each."""
    rng = np.random.default_rng(11)
    n, T = 40, 150
    ta, tb = rng.normal(-1.0, 0.7, n), rng.normal(1.0, 0.4, n)
    choice, reward = simulate_rw(n, T, ta, tb, rng)
    valid = np.ones((n, T), bool)
    for i in range(n):
        valid[i, rng.choice(T, 5, replace=False)] = False
    choice = np.where(valid, choice, -1)
    reward = np.where(valid, reward, np.nan)
    trials = nr.make_trials(np.zeros((n, T), int), choice, reward, n_actions=2, subjects=[f"s{i}" for i in range(n)])
    return {"trials": trials, "ta": ta, "tb": tb, "choice": choice, "reward": np.nan_to_num(reward), "valid": valid}


@pytest.fixture(scope="module")
def map_fit(agent, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        return MAP(agent, n_starts=4, rng=0).fit(data["trials"])


# ----------------------------------------------------------------------------- the graph
def test_jet_value_gradient_hessian_against_reference(agent, data):
    """Forward-mode value, gradient and Hessian against the NumPy loop and its finite differences."""
    trials = data["trials"].isel(subject=slice(0, 3))
    env, obs = observations(trials)
    uniform = uniform_observations(obs)  # constants in these data: compiled in, as the estimators do
    assert {"done", "state", "known"} <= set(uniform) and "valid" not in uniform
    theta = np.array([[-1.0, 0.3, -2.0], [1.0, 0.5, 2.0]])
    out = compiled_loglik(agent, env, order=2, uniform=uniform)(theta, obs)

    def ref(th):
        return np.array([rw_loglik(data["choice"][i], data["reward"][i], data["valid"][i], sigmoid(th[0, i]),
                                   np.exp(th[1, i])) for i in range(3)])

    np.testing.assert_allclose(out["loglik"], ref(theta), rtol=1e-10)
    h = 1e-5
    for j in range(2):
        e = np.zeros_like(theta)
        e[j] = h
        fd = (ref(theta + e) - ref(theta - e)) / (2 * h)
        np.testing.assert_allclose(out["grad"][j], fd, rtol=1e-6, atol=1e-7)
        for k in range(2):
            ek = np.zeros_like(theta)
            ek[k] = h
            fd2 = (ref(theta + e + ek) - ref(theta + e - ek) - ref(theta - e + ek) + ref(theta - e - ek)) / (4 * h * h)
            np.testing.assert_allclose(out["hess"][j, k], fd2, rtol=2e-3, atol=2e-3)
    # per-trial values (order 0) sum to the same totals and vanish on invalid trials
    f0 = compiled_loglik(agent, env, order=0, uniform=uniform)
    pw = f0(theta, obs)["pointwise"]
    np.testing.assert_allclose(pw.sum(0), ref(theta), rtol=1e-10)
    assert np.all(pw.T[~data["valid"][:3]] == 0.0)
    # a function compiled with constants refuses data where they differ
    other = dict(obs, done=np.zeros_like(obs["done"]))
    with pytest.raises(ValueError, match="'done'"):
        f0(theta, other)


# ----------------------------------------------------------------------------- MAP / MLE
def test_map_equals_brute_force_grid(map_fit, data):
    i = 7
    lp = lambda ta, tb: (rw_loglik(data["choice"][i], data["reward"][i], data["valid"][i], sigmoid(ta), np.exp(tb))
                         - 0.5 * (ta ** 2 + tb ** 2) / 2.5 ** 2)
    ga, gb = np.meshgrid(np.linspace(-6, 4, 201), np.linspace(-3, 4, 141), indexing="ij")
    v = lp(ga, gb)
    k = np.unravel_index(np.argmax(v), v.shape)
    fa, fb = np.meshgrid(np.linspace(ga[k] - 0.06, ga[k] + 0.06, 121), np.linspace(gb[k] - 0.06, gb[k] + 0.06, 121),
                         indexing="ij")
    v2 = lp(fa, fb)
    k2 = np.unravel_index(np.argmax(v2), v2.shape)
    est = map_fit.result_["theta"].isel(subject=i).values
    np.testing.assert_allclose(est, [fa[k2], fb[k2]], atol=2e-3)
    # the MAP objective is at least as good as every grid point
    best = lp(est[0], est[1])
    assert best >= v2.max() - 1e-9
    assert float(map_fit.result_["logprior"].isel(subject=i) + map_fit.result_["loglik"].isel(subject=i)) == \
        pytest.approx(best - 2 * (math.log(2.5) + 0.5 * math.log(2 * math.pi)), abs=1e-8)


def test_criteria_by_hand(map_fit, data):
    r = map_fit.result_
    n_valid = data["valid"].sum(1)
    theta = r["theta"].values
    ll = np.array([rw_loglik(data["choice"][i], data["reward"][i], data["valid"][i], sigmoid(theta[i, 0]),
                             np.exp(theta[i, 1])) for i in range(len(n_valid))])
    np.testing.assert_allclose(r["loglik"].values, ll, rtol=1e-10)
    np.testing.assert_array_equal(r["n_trials"].values, n_valid)
    assert int(r["n_params"]) == 2
    np.testing.assert_allclose(r["aic"].values, -2 * ll + 4, rtol=1e-12)
    np.testing.assert_allclose(r["bic"].values, -2 * ll + 2 * np.log(n_valid), rtol=1e-12)
    # constrained estimates and delta-method standard errors
    np.testing.assert_allclose(map_fit.params_["alpha"].values, sigmoid(theta[:, 0]), rtol=1e-12)
    np.testing.assert_allclose(map_fit.params_["beta"].values, np.exp(theta[:, 1]), rtol=1e-12)
    a = sigmoid(theta[:, 0])
    np.testing.assert_allclose(r["se"].values[:, 0], a * (1 - a) * r["se_theta"].values[:, 0], rtol=1e-10)
    np.testing.assert_allclose(r["se"].values[:, 1], np.exp(theta[:, 1]) * r["se_theta"].values[:, 1], rtol=1e-10)
    # the evidence dataset has exactly the compare_table input
    ev = map_fit.evidence_
    assert set(ev.data_vars) == {"loglik", "n_params", "n_trials", "laplace_log_evidence"}
    assert ev["loglik"].dims == ("subject",) and ev["n_params"].dims == ()
    assert list(ev["subject"].values) == list(data["trials"]["subject"].values)


def test_evidence_feeds_compare_table_and_latents_replay(map_fit, agent, data):
    compare = pytest.importorskip("neurorl.fitting.compare")
    table = compare.compare_table({"rw": map_fit.evidence_})
    np.testing.assert_allclose(table["aic"].sel(model="rw").values, map_fit.result_["aic"].values, rtol=1e-12)
    np.testing.assert_allclose(table["bic"].sel(model="rw").values, map_fit.result_["bic"].values, rtol=1e-12)
    lat = map_fit.latents()
    ref = nr.replay(agent, data["trials"], map_fit.params_)
    np.testing.assert_array_equal(lat["q"].values, ref["q"].values)
    # sklearn protocol: options round-trip
    assert MAP(agent, n_starts=3).set_params(n_starts=5).get_params()["n_starts"] == 5


def test_standard_errors_from_numerical_hessian(map_fit, data):
    """SEs = sqrt(diag(inverse Hessian of -log posterior)), Hessian by finite differences of the NumPy loop."""
    i = 3
    th = map_fit.result_["theta"].isel(subject=i).values

    def nlp(t):
        return -(rw_loglik(data["choice"][i], data["reward"][i], data["valid"][i], sigmoid(t[0]), np.exp(t[1]))
                 - 0.5 * (t[0] ** 2 + t[1] ** 2) / 6.25)

    h = 1e-4
    H = np.zeros((2, 2))
    for j in range(2):
        for k in range(2):
            ej, ek = np.eye(2)[j] * h, np.eye(2)[k] * h
            H[j, k] = (nlp(th + ej + ek) - nlp(th + ej - ek) - nlp(th - ej + ek) + nlp(th - ej - ek)) / (4 * h * h)
    np.testing.assert_allclose(map_fit.result_["se_theta"].isel(subject=i).values, np.sqrt(np.diag(np.linalg.inv(H))),
                               rtol=1e-4)


def test_recovery_and_correlations(map_fit, agent, data, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        mle = MLE(agent, n_starts=3, rng=1).fit(data["trials"])
    out = {}
    for name, est in (("MAP", map_fit), ("MLE", mle)):
        th = est.result_["theta"].values
        ra = np.corrcoef(th[:, 0], data["ta"])[0, 1]
        rb = np.corrcoef(th[:, 1], data["tb"])[0, 1]
        out[name] = (ra, rb)
    with capsys.disabled():
        print("\nrecovery (40 x 150): " + ", ".join(f"{k}: r(logit alpha) = {a:.2f}, r(log beta) = {b:.2f}"
                                                     for k, (a, b) in out.items()))
    # fitting.md §6 anchor (100 x 200, MAP): r(alpha) = 0.76, r(beta) = 0.91
    assert out["MAP"][0] > 0.5 and out["MAP"][1] > 0.6
    assert map_fit.result_["converged"].all() and mle.result_["converged"].sum() >= 38
    # MLE log-likelihoods are at least the MAP ones (MAP maximises something else)
    assert np.all(mle.result_["loglik"].values >= map_fit.result_["loglik"].values - 1e-6)


def test_multistart_keeps_best_per_subject(map_fit):
    st = map_fit.starts_
    best = st["objective"].min("start")
    fitted = -(map_fit.result_["loglik"] + map_fit.result_["logprior"])
    np.testing.assert_allclose(fitted.values, best.values, atol=1e-8)
    assert st.sizes["start"] == 4 and map_fit.result_["identifiable"].all()


# ----------------------------------------------------------------------------- Laplace evidence
def test_laplace_evidence_against_numerical_integration(data):
    """One free parameter (alpha fixed): Laplace vs the integral of likelihood x prior over theta_beta."""
    agent1 = nr.make_agent("q_learning", q0=Q0, fixed={"alpha": 0.3})
    trials = data["trials"].isel(subject=slice(0, 4))
    est = MAP(agent1, n_starts=1).fit(trials)
    grid = np.linspace(-12, 8, 40001)
    dx = grid[1] - grid[0]
    for i in range(4):
        ll = rw_loglik(data["choice"][i], data["reward"][i], data["valid"][i], 0.3, np.exp(grid))
        logpost = ll - 0.5 * grid ** 2 / 6.25 - math.log(2.5) - 0.5 * math.log(2 * math.pi)
        m = logpost.max()
        exact = m + math.log(np.sum(np.exp(logpost - m)) * dx)
        lap = float(est.result_["laplace_log_evidence"].isel(subject=i))
        # exactly log p(y|t) + log p(t) + log(2 pi)/2 - log|H|/2 at the mode (mode and H from the grid)
        k = np.argmax(logpost)
        H = -(logpost[k + 1] - 2 * logpost[k] + logpost[k - 1]) / dx ** 2
        assert lap == pytest.approx(logpost[k] + 0.5 * math.log(2 * math.pi) - 0.5 * math.log(H), abs=2e-3)
        # an approximation of the integral: the posterior of log beta is skewed, most for small beta, where the
        # error reaches 0.1 nats in these data (computed with this grid: 0.005-0.10)
        assert lap == pytest.approx(exact, abs=0.15)


# ----------------------------------------------------------------------------- hierarchical EM
def test_em_group_mean_recovers_generating_mean(agent):
    rng = np.random.default_rng(5)
    n, T = 60, 150
    mu, sd = np.array([-1.0, 1.0]), np.array([0.7, 0.4])
    ta, tb = rng.normal(mu[0], sd[0], n), rng.normal(mu[1], sd[1], n)
    choice, reward = simulate_rw(n, T, ta, tb, rng)
    trials = nr.make_trials(np.zeros((n, T), int), choice, reward, n_actions=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        em = EMMAP(agent, n_starts=2, rng=0, n_ibic_samples=500, tol=1e-3).fit(trials)
    gm = em.group_mean_.values
    # group mean within about 3 standard errors of the sample mean of the generating parameters
    se = sd / math.sqrt(n)
    assert abs(gm[0] - ta.mean()) < 3 * se[0] + 0.1
    assert abs(gm[1] - tb.mean()) < 3 * se[1] + 0.1
    assert np.all(em.group_sd_.values > 0)
    # EM never decreases the total log posterior? Not guaranteed for MAP-EM; it must end converged
    assert abs(float(em.history_["log_posterior"][-1] - em.history_["log_posterior"][-2])) < 1e-3
    # M-step formula by hand from the final E-step quantities of the previous iteration is what the prior holds
    r = em.result_
    assert np.allclose(r["prior_loc"].values, gm) and np.allclose(r["prior_scale"].values, em.group_sd_.values)
    # iBIC by hand from its per-subject integrated likelihoods
    n_total = int(r["n_trials"].sum())
    assert em.ibic_ == pytest.approx(-2 * float(r["log_evidence_ibic"].sum()) + 4 * math.log(n_total), rel=1e-12)
    assert float(em.evidence_["ibic"]) == em.ibic_


def test_ibic_integrates_the_group_prior(agent, data):
    """Per-subject log p(y|mu, sigma) by K draws agrees with quadrature over the group prior."""
    trials = data["trials"].isel(subject=slice(0, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        em = EMMAP(agent, n_starts=1, rng=2, n_ibic_samples=4000, max_em_iter=3).fit(trials)
    mu, sd = em.group_mean_.values, em.group_sd_.values
    x, w = np.polynomial.hermite_e.hermegauss(40)
    w = w / w.sum()
    A, B = np.meshgrid(mu[0] + sd[0] * x, mu[1] + sd[1] * x, indexing="ij")
    W = np.outer(w, w)
    for i in range(2):
        ll = rw_loglik(data["choice"][i], data["reward"][i], data["valid"][i], sigmoid(A), np.exp(B))
        m = ll.max()
        exact = m + math.log(np.sum(W * np.exp(ll - m)))
        assert float(em.result_["log_evidence_ibic"].isel(subject=i)) == pytest.approx(exact, abs=0.05)


# ----------------------------------------------------------------------------- covariates
@pytest.fixture(scope="module")
def cov_data():
    rng = np.random.default_rng(3)
    n, T = 30, 200
    ta, tb = rng.normal(-1.0, 0.4, n), rng.normal(1.5, 0.2, n)
    block = np.tile(np.repeat([0.0, 1.0], 50), 2)[None, :].repeat(n, 0)
    slope = 2.0
    choice, reward = simulate_rw(n, T, ta, tb, rng, p=(0.8, 0.2), x=block, slope=slope)
    trials = nr.make_trials(np.zeros((n, T), int), choice, reward, n_actions=2,
                            subjects=[f"p{i}" for i in range(n)], covariates={"block": block})
    return {"trials": trials, "ta": ta, "tb": tb, "slope": slope, "block": block, "choice": choice, "reward": reward}


def test_covariate_effect_recovered(agent, cov_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        est = MAP(agent, n_starts=2, rng=0, covariates={"alpha": "block"}).fit(cov_data["trials"])
    r = est.result_
    assert list(r["param"].values) == ["alpha", "beta", "alpha_block"]
    slopes = r["theta"].sel(param="alpha_block").values
    # the group's average slope recovers the generating 2.0 (shrunk a little by the N(0, 2.5^2) prior)
    assert abs(np.median(slopes) - cov_data["slope"]) < 0.6
    assert int(r["n_params"]) == 3
    # log-likelihood at the estimate against the NumPy loop with trial-wise alpha
    i = 4
    th = r["theta"].isel(subject=i).values
    q = np.full(2, Q0)
    ll = 0.0
    q_seen = []
    for t in range(cov_data["block"].shape[1]):
        q_seen.append(q.copy())
        a_t = sigmoid(th[0] + th[2] * cov_data["block"][i, t])
        lg = np.exp(th[1]) * q
        c = cov_data["choice"][i, t]
        ll += lg[c] - lg.max() - math.log(np.exp(lg - lg.max()).sum())
        q[c] += a_t * (cov_data["reward"][i, t] - q[c])
    assert float(r["loglik"].isel(subject=i)) == pytest.approx(ll, rel=1e-10)
    # replay at the fitted (trial-wise) parameters reproduces the same Q values
    lat = est.latents()
    np.testing.assert_allclose(lat["q"].isel(subject=i).values, np.array(q_seen), rtol=1e-10)
    tp = est.trial_params()
    assert tp["alpha"].dims == ("subject", "trial") and tp["beta"].dims == ("subject",)


def test_covariate_dataarray_aligned_by_label(agent, cov_data):
    trials = cov_data["trials"].isel(subject=slice(0, 5))
    x = trials["block"].rename("blk")
    shuffled = x.isel(subject=[3, 0, 4, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        a = MLE(agent, n_starts=1, covariates={"alpha": x}).fit(trials)
        b = MLE(agent, n_starts=1, covariates={"alpha": shuffled}).fit(trials)
    np.testing.assert_allclose(a.result_["theta"].values, b.result_["theta"].values, rtol=1e-10)
    assert list(a.result_["param"].values) == ["alpha", "beta", "alpha_blk"]
    bad = x.assign_coords(subject=[f"q{i}" for i in range(5)])
    with pytest.raises(ValueError, match="labels do not match"):
        MLE(agent, n_starts=1, covariates={"alpha": bad}).fit(trials)
    with pytest.raises(TypeError, match="plain arrays are refused"):
        MLE(agent, covariates={"alpha": x.values}).fit(trials)
    with pytest.raises(ValueError, match="not free parameters"):
        MLE(agent, covariates={"gamma": "block"}).fit(trials)
    with pytest.raises(ValueError, match="not a variable of the trials"):
        MLE(agent, covariates={"alpha": "nope"}).fit(trials)
    nan_x = x.copy()
    nan_x[1, 7] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite on a valid trial"):
        MLE(agent, covariates={"alpha": nan_x}).fit(trials)


def test_replay_accepts_trial_wise_parameters(agent, data):
    trials = data["trials"].isel(subject=slice(0, 2))
    T = trials.sizes["trial"]
    alpha = np.full((2, T), 0.3)
    const = nr.replay(agent, trials, {"alpha": 0.3, "beta": 2.0})
    same = nr.replay(agent, trials, {"alpha": alpha, "beta": 2.0})
    for k in const.data_vars:
        np.testing.assert_array_equal(const[k].values, same[k].values)
    alpha[:, 50:] = 0.9
    diff = nr.replay(agent, trials, {"alpha": alpha, "beta": 2.0})
    np.testing.assert_array_equal(diff["q"].values[:, :51], const["q"].values[:, :51])
    assert not np.allclose(diff["q"].values[:, 60:], const["q"].values[:, 60:])
    alpha[0, 3] = 1.5
    with pytest.raises(ValueError, match="outside its bounds"):
        nr.replay(agent, trials, {"alpha": alpha, "beta": 2.0})


def test_choice_loglik_graph_takes_trial_wise_parameters_as_sequences(agent, data):
    import pytensor
    import pytensor.tensor as pt
    from pytensor.compile.mode import Mode

    from neurorl.fitting.graph import choice_loglik_graph

    trials = data["trials"].isel(subject=slice(0, 2))
    env, obs = observations(trials)
    T = trials.sizes["trial"]
    alpha = np.where(np.arange(T)[:, None] < 50, 0.2, 0.7) * np.ones((T, 2))  # (trial, subject)
    ll = choice_loglik_graph(agent, env, obs, {"alpha": pt.as_tensor(alpha), "beta": pt.as_tensor(np.full(2, 2.0))})
    got = pytensor.function([], ll.sum(0), mode=Mode(linker="py", optimizer=None))()
    for i in range(2):
        q, ref = np.full(2, Q0), 0.0
        for t in range(T):
            if not data["valid"][i, t]:
                continue
            c = data["choice"][i, t]
            z = 2.0 * q
            ref += z[c] - z.max() - math.log(np.exp(z - z.max()).sum())
            q[c] += alpha[t, i] * (data["reward"][i, t] - q[c])
        assert got[i] == pytest.approx(ref, rel=1e-12)


# ----------------------------------------------------------------------------- bad input
def test_subject_without_valid_trials_is_an_error(agent, data):
    trials = data["trials"].isel(subject=slice(0, 3)).copy(deep=True)
    trials["valid"][1] = False
    trials["choice"][1] = -1
    with pytest.raises(ValueError, match=r"'s1'.*no valid trials"):
        MLE(agent).fit(trials)


def test_repeated_choice_warns(agent, data):
    trials = data["trials"].isel(subject=slice(0, 3)).copy(deep=True)
    v = trials["valid"].values[2]
    trials["choice"][2] = np.where(v, 1, -1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        est = MLE(agent, n_starts=2, rng=0).fit(trials)
    assert any("'s2' made one and the same choice" in str(w.message) for w in caught)
    # the MLE runs off toward the edge of the parameter space (alpha -> 0, beta -> inf here)
    assert float(np.abs(est.result_["theta"].sel(subject="s2")).max()) > 8
    # MAP keeps it finite and inside the box
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        m = MAP(agent, n_starts=1).fit(trials)
    assert float(np.abs(m.result_["theta"].sel(subject="s2")).max()) < 6


class _NaNOnBigReward(QLearning):
    """Q-learning whose values turn NaN after a reward above 5 (not registered)."""

    def learn(self, p, s, obs, dec, ops):
        new, lat = super().learn(p, s, obs, dec, ops)
        new["Q"] = new["Q"] + ops.where(obs["reward"] > 5.0, np.nan, 0.0)[:, None]
        return new, lat


def test_non_finite_likelihood_names_the_subject(data):
    ag = _NaNOnBigReward(q0=Q0)
    trials = data["trials"].isel(subject=slice(0, 3)).copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FitWarning)
        MLE(ag, n_starts=1).fit(trials)  # finite everywhere: fits
    t = int(np.flatnonzero(trials["valid"].values[1])[4])
    trials["reward"][1, t] = 10.0  # valid and finite, but the agent's values become NaN
    with pytest.raises(ValueError, match=r"not finite.*'s1'"):
        MLE(ag, n_starts=1).fit(trials)


def test_option_errors(agent, data):
    trials = data["trials"].isel(subject=slice(0, 2))
    with pytest.raises(ValueError, match="n_starts"):
        MLE(agent, n_starts=0).fit(trials)
    with pytest.raises(ValueError, match="optimizer"):
        MLE(agent, optimizer="bfgs").fit(trials)
    with pytest.raises(ValueError, match="not a fitted parameter"):
        MAP(agent, prior={"gamma": (0, 1)}).fit(trials)
    with pytest.raises(AttributeError, match="not fitted"):
        MLE(agent).latents()


def test_non_identifiable_parameters_are_flagged(data):
    """With q0 = 0, Q scales with rho, so only beta * rho is identified: starts disagree in parameters."""
    ag = nr.make_agent("q_learning", q0=0.0, reward_sensitivity=True)
    trials = data["trials"].isel(subject=slice(0, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FitWarning)
        est = MLE(ag, n_starts=6, rng=4).fit(trials)
    assert any("not identifiable" in str(w.message) and "'s0', 's1', 's2'" in str(w.message) for w in caught)
    assert not est.result_["hessian_pd"].any()  # singular along beta * rho = const
    assert np.isnan(est.result_["se_theta"].values).all()
    assert not est.result_["identifiable"].any()
    th = est.starts_["theta"]
    # the product beta * rho (sum on the log scale) agrees across converged starts
    s = (th.sel(param="beta") + th.sel(param="rho")).where(est.starts_["converged"])
    assert float((s.max("start") - s.min("start")).max()) < 1e-2


def test_quasi_newton_reaches_the_newton_optimum(agent, data, map_fit):
    """The optimiser used for agents with more than three parameters (value + gradient evaluations only)."""
    est = MAP(agent, n_starts=1, optimizer="quasi-newton").fit(data["trials"])
    np.testing.assert_allclose(est.result_["theta"].values, map_fit.result_["theta"].values, atol=1e-4)
    assert est.result_["converged"].all()
    # the Hessian is computed once, exactly, at the estimates: standard errors agree
    np.testing.assert_allclose(est.result_["se_theta"].values, map_fit.result_["se_theta"].values, rtol=1e-3)


@pytest.mark.slow
def test_lbfgsb_reaches_the_newton_optimum(agent, data, map_fit):
    est = MAP(agent, n_starts=1, optimizer="L-BFGS-B").fit(data["trials"])
    np.testing.assert_allclose(est.result_["theta"].values, map_fit.result_["theta"].values, atol=1e-3)
