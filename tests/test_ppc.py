"""Tests of neurorl.fitting.ppc (reference/fitting.md §6, posterior predictive checks).

Summaries of the data are recomputed here with plain loops; the tolerances of the predictive
comparisons are derived from the data: a pooled proportion p = sum_i s_i / sum_i n_i over subjects
has the cluster-robust (subject-level) standard error sqrt(m/(m-1) * sum_i (s_i - p n_i)^2) / sum_i n_i,
and the difference between the observed value and the mean of S simulated groups from the same
model has standard error SE * sqrt(1 + 1/S).
"""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402

import neurorl as nr  # noqa: E402
from neurorl.fitting.ppc import (  # noqa: E402
    SCHEDULES, laplace_draws, learning_curve, p_go_by_cue, p_stay, plot_ppc, predictive_check, simulate_on_schedule,
)

warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

Q0 = 0.5
TRUE = {"alpha": 0.3, "beta": 5.0}
N_SIMS = 30


def cluster_se(s, n):
    """Subject-clustered standard error of the pooled proportion sum(s) / sum(n)."""
    s, n = np.asarray(s, float), np.asarray(n, float)
    m = s.size
    p = s.sum() / n.sum()
    return math.sqrt(m / (m - 1) * np.sum((s - p * n) ** 2)) / n.sum()


def stay_counts(choice, reward):
    """Per subject: (stays after reward, trials after reward, stays after no reward, trials after no reward)."""
    out = np.zeros((choice.shape[0], 4))
    for i in range(choice.shape[0]):
        for t in range(1, choice.shape[1]):
            stay = choice[i, t] == choice[i, t - 1]
            k = 0 if reward[i, t - 1] > 0 else 2
            out[i, k] += stay
            out[i, k + 1] += 1
    return out


@pytest.fixture(scope="module")
def bandit_data():
    agent = nr.make_agent("q_learning", q0=Q0)
    task = nr.make_task("bandit", p=(0.7, 0.3))
    sim = nr.simulate(agent, task, n_subjects=80, n_trials=200, params=TRUE, rng=123)
    return agent, task, sim.trials


@pytest.fixture(scope="module")
def bandit_checks(bandit_data):
    agent, task, trials = bandit_data
    good = predictive_check(agent, trials, TRUE, task=task, n_sims=N_SIMS, bin_size=10, rng=5)
    bad = predictive_check(agent, trials, {"alpha": 0.3, "beta": 0.01}, task=task, n_sims=N_SIMS, bin_size=10,
                           rng=5)
    return good, bad


def test_observed_summaries_match_plain_loops(bandit_data, bandit_checks):
    _, _, trials = bandit_data
    good, _ = bandit_checks
    c, r = trials["choice"].values, trials["reward"].values
    cnt = stay_counts(c, r)
    np.testing.assert_allclose(good["p_stay"].values, [cnt[:, 0].sum() / cnt[:, 1].sum(),
                                                       cnt[:, 2].sum() / cnt[:, 3].sum()], atol=1e-12)
    np.testing.assert_array_equal(good["p_stay_n"].values, [cnt[:, 1].sum(), cnt[:, 3].sum()])
    # learning curve: P(arm 0, the 0.7 arm) in bins of 10 trials
    lc = (c == 0).reshape(80, 20, 10).mean(axis=(0, 2))
    np.testing.assert_allclose(good["learning_curve"].values, lc, atol=1e-12)
    np.testing.assert_array_equal(good["learning_curve"]["trial"].values, np.arange(0, 200, 10))
    assert good.attrs["schedule"] == "free"  # stationary bandit: nothing exogenous to replay
    assert good["p_stay_sim"].sizes["sim"] == N_SIMS


def test_generating_model_matches_data_within_sampling_error(bandit_data, bandit_checks):
    _, _, trials = bandit_data
    good, bad = bandit_checks
    c, r = trials["choice"].values, trials["reward"].values
    cnt = stay_counts(c, r)
    inflate = math.sqrt(1 + 1 / N_SIMS)
    for k, (s_col, n_col) in enumerate(((0, 1), (2, 3))):
        se = cluster_se(cnt[:, s_col], cnt[:, n_col])
        obs = float(good["p_stay"][k])
        assert abs(obs - float(good["p_stay_sim"][:, k].mean())) < 4 * se * inflate
        # beta = 0.01: choices are nearly random, P(stay) ~ 0.5 whatever the outcome
        assert abs(obs - float(bad["p_stay_sim"][:, k].mean())) > 10 * se * inflate
    hit = (c == 0).reshape(80, 20, 10)
    sim_mean = good["learning_curve_sim"].mean("sim").values
    bad_mean = bad["learning_curve_sim"].mean("sim").values
    far = 0
    for b in range(20):
        se = cluster_se(hit[:, b].sum(axis=1), np.full(80, 10))
        obs = float(good["learning_curve"][b])
        assert abs(obs - sim_mean[b]) < 4.5 * se * inflate
        far += abs(obs - bad_mean[b]) > 4.5 * se * inflate
    assert far >= 15  # the wrong model misses the learnt part of the curve
    assert float(bad["p_stay_coverage"]) == 0.0


def test_bands_are_quantiles_of_the_simulations(bandit_checks):
    good, _ = bandit_checks
    sims = good["learning_curve_sim"].values
    np.testing.assert_allclose(good["learning_curve_lo"].values, np.quantile(sims, 0.025, axis=0))
    np.testing.assert_allclose(good["learning_curve_hi"].values, np.quantile(sims, 0.975, axis=0))
    np.testing.assert_allclose(good["learning_curve_median"].values, np.median(sims, axis=0))


def test_plot_ppc_returns_figure(bandit_checks):
    import matplotlib.pyplot as plt

    good, _ = bandit_checks
    fig = plot_ppc(good)
    assert isinstance(fig, matplotlib.figure.Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == 2
    assert visible[0].get_title().startswith("learning_curve")
    with pytest.raises(ValueError, match="not in the result"):
        plot_ppc(good, summaries=["p_go"])
    plt.close("all")


# ------------------------------------------------------------------------------------------------
# schedules
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mouse_data():
    agent = nr.make_agent("rflr")
    task = nr.make_task("mouse_bandit", p_high=0.8, p_switch=0.05)
    sim = nr.simulate(agent, task, n_subjects=30, n_trials=300, rng=9)
    return agent, task, sim.trials


def test_mouse_bandit_simulation_replays_the_hidden_schedule(mouse_data):
    agent, task, trials = mouse_data
    sims = simulate_on_schedule(agent, trials, task, None, n_reps=4, rng=1)
    assert sims.attrs["schedule"] == "recorded"
    n = trials.sizes["subject"]
    hp = trials["high_port"].values
    for k in range(4):
        np.testing.assert_array_equal(sims["high_port"].values[k * n:(k + 1) * n], hp)
        np.testing.assert_array_equal(sims["block_trial"].values[k * n:(k + 1) * n], trials["block_trial"].values)
    np.testing.assert_array_equal(sims["sim"].values, np.repeat(np.arange(4), n))
    np.testing.assert_array_equal(sims["source_subject"].values, np.tile(trials["subject"].values, 4))
    # but the choices are the agent's own, and rewards follow p_high given the choice
    assert not np.array_equal(sims["choice"].values[:n], trials["choice"].values)
    hit = sims["choice"].values == sims["high_port"].values
    rew = sims["reward"].values
    for mask, p in ((hit, 0.8), (~hit, 0.2)):
        m = mask.sum()
        assert abs(rew[mask].mean() - p) < 4 * math.sqrt(p * (1 - p) / m)
    free = simulate_on_schedule(agent, trials, task, None, schedule="free", rng=1)
    assert free.attrs["schedule"] == "free"
    assert not np.array_equal(free["high_port"].values, hp)


def test_mouse_bandit_check_at_true_and_wrong_parameters(mouse_data):
    agent, task, trials = mouse_data
    good = predictive_check(agent, trials, None, task=task, n_sims=N_SIMS, rng=2)
    bad = predictive_check(agent, trials, {"alpha": 0.0, "beta": 1e-3}, task=task, n_sims=N_SIMS, rng=2)
    assert set(good.attrs["summaries"]) == {"learning_curve", "p_stay", "switch_around_block_change",
                                            "high_around_block_change", "switch_by_history"}
    assert good.attrs["learning_curve_by"] == "block_trial"
    # P(high port) over block trials 0..40, from a plain loop
    c, hp, bt = trials["choice"].values, trials["high_port"].values, trials["block_trial"].values
    use = bt <= 40
    s_i = ((c == hp) & use).sum(axis=1)
    n_i = use.sum(axis=1)
    obs = s_i.sum() / n_i.sum()
    n_b = good["learning_curve_n"].values
    assert n_b.sum() == n_i.sum()
    assert float((good["learning_curve"] * n_b).sum() / n_b.sum()) == pytest.approx(obs, abs=1e-12)
    # the recorded schedule gives the simulations the same block-trial counts, so pooling uses n_b
    pooled = lambda ds: (ds["learning_curve_sim"] * n_b).sum("block_trial").values / n_b.sum()  # noqa: E731
    se = cluster_se(s_i, n_i) * math.sqrt(1 + 1 / N_SIMS)
    assert abs(obs - pooled(good).mean()) < 4 * se
    assert abs(obs - pooled(bad).mean()) > 10 * se


def test_ragged_subjects_keep_their_trial_counts(mouse_data):
    agent, task, trials = mouse_data
    tr = trials.copy(deep=True)
    cut = 180
    for v, fill in (("valid", False), ("choice", -1), ("trial_index", -1)):
        a = tr[v].values.copy()
        a[1, cut:] = fill
        tr[v] = (("subject", "trial"), a)
    r = tr["reward"].values.copy()
    r[1, cut:] = np.nan
    tr["reward"] = (("subject", "trial"), r)
    nr.validate_trials(tr)
    sims = simulate_on_schedule(agent, tr, task, None, n_reps=2, rng=0)
    n = tr.sizes["subject"]
    counts = sims["valid"].values.sum(axis=1)
    expected = np.tile(np.r_[300, cut, np.full(n - 2, 300)], 2)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(sims["high_port"].values[1, :cut], tr["high_port"].values[1, :cut])


def test_go_nogo_replays_the_cue_order():
    agent = nr.make_agent("gng_m1")
    task = nr.make_task("go_nogo")
    trials = nr.simulate(agent, task, n_subjects=6, n_trials=120, rng=4).trials
    sims = simulate_on_schedule(agent, trials, task, None, n_reps=3, rng=5)
    np.testing.assert_array_equal(sims["state"].values, np.tile(trials["state"].values, (3, 1)))
    # next_state is the cue of the next trial
    np.testing.assert_array_equal(sims["next_state"].values[:, :-1], sims["state"].values[:, 1:])
    res = p_go_by_cue(trials)
    c, s = trials["choice"].values, trials["state"].values
    for cue in range(4):
        assert float(res["p_go"][cue]) == pytest.approx(np.mean(c[s == cue] == 1), abs=1e-12)
    chk = predictive_check(agent, trials, None, task=task, n_sims=4, rng=6)
    assert "p_go" in chk.attrs["summaries"] and chk["p_go_sim"].shape == (4, 4)


def test_two_step_replays_per_episode_probabilities():
    from neurorl.tasks.two_step import P_NAMES

    agent = nr.make_agent("two_step_hybrid")
    task = nr.make_task("two_step")
    trials = nr.simulate(agent, task, n_subjects=5, n_trials=120, rng=8).trials
    sims = simulate_on_schedule(agent, trials, task, None, n_reps=2, rng=9)
    ep_d, ep_s = trials["episode"].values, sims["episode"].values
    for i in range(10):
        src = i % 5
        for e in range(int(min(ep_d[src].max(), ep_s[i].max())) + 1):
            for k in P_NAMES:
                assert trials[k].values[src][ep_d[src] == e][0] == sims[k].values[i][ep_s[i] == e][0]
    chk = predictive_check(agent, trials, None, task=task, n_sims=3, rng=1)
    assert chk.attrs["summaries"] == ["two_step_stay"]
    assert chk["two_step_stay_sim"].dims == ("sim", "outcome", "transition")


def test_schedule_registry_covers_the_exogenous_tasks():
    assert {"mouse_bandit", "go_nogo", "restless_bandit", "restless_bernoulli", "wang_bandit",
            "two_step"} <= set(SCHEDULES)
    agent = nr.make_agent("q_learning")
    task = nr.make_task("restless_bernoulli")
    trials = nr.simulate(agent, task, n_subjects=4, n_trials=50, rng=1).trials
    sims = simulate_on_schedule(agent, trials, task, None, n_reps=2, rng=2)
    np.testing.assert_array_equal(sims["reward_prob"].values, np.tile(trials["reward_prob"].values, (2, 1, 1)))


# ------------------------------------------------------------------------------------------------
# parameters: estimators and Laplace draws
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def fitted():
    from neurorl.fitting.mle import MAP

    agent = nr.make_agent("q_learning", q0=Q0)
    task = nr.make_task("bandit", p=(0.7, 0.3))
    trials = nr.simulate(agent, task, n_subjects=12, n_trials=150, params=TRUE, rng=31).trials
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MAP(agent, n_starts=3, rng=0).fit(trials)
    return agent, task, trials, est


def test_estimator_as_params_uses_its_point_estimates(fitted):
    agent, task, trials, est = fitted
    a = predictive_check(agent, trials, est, task=task, n_sims=3, rng=4)
    b = predictive_check(agent, trials, est.params_, task=task, n_sims=3, rng=4)
    xr.testing.assert_identical(a, b)


def test_laplace_draws_have_the_fitted_mean_and_covariance(fitted):
    _, _, _, est = fitted
    K = 6000
    d = laplace_draws(est, K, rng=3)
    assert d["alpha"].dims == ("draw", "subject")
    x = np.stack([np.log(d["alpha"].values / (1 - d["alpha"].values)), np.log(d["beta"].values)], axis=-1)
    theta = est.result_["theta"].transpose("subject", "param").values
    cov = est.result_["cov_theta"].values
    sd = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    assert np.all(np.abs(x.mean(axis=0) - theta) < 4.5 * sd / math.sqrt(K))
    for i in range(3):
        emp = np.cov(x[:, i].T)
        # sample variances: relative SE sqrt(2/K) ~ 0.018
        np.testing.assert_allclose(np.diag(emp), np.diag(cov[i]), rtol=5 * math.sqrt(2 / K))
    chk = predictive_check(*fitted[:1], fitted[2], est, task=fitted[1], n_sims=4, posterior="laplace", rng=1)
    assert chk["p_stay_sim"].sizes["sim"] == 4


# ------------------------------------------------------------------------------------------------
# summaries and errors
# ------------------------------------------------------------------------------------------------

def test_p_stay_in_multi_state_tasks_uses_the_last_visit_of_the_state():
    trials = nr.make_trials(state=[[0, 1, 0, 1, 0]], choice=[[1, 0, 1, 1, 0]], reward=[[1, 0, 0, 1, 1]],
                            n_actions=2, n_states=2)
    res = p_stay(trials)
    # state 0: rows 0, 2, 4 -> (prev reward 1, stay), (prev 0, switch); state 1: rows 1, 3 -> (prev 0, switch)
    np.testing.assert_allclose(res["p_stay"].values, [1.0, 0.0])
    np.testing.assert_array_equal(res["n"].values, [1, 2])


def test_learning_curve_bins_and_ties():
    trials = nr.make_trials(state=np.zeros((1, 4), int), choice=[[0, 1, 1, 0]], reward=np.zeros((1, 4)),
                            n_actions=2, covariates={"reward_prob": np.array([[[0.7, 0.3], [0.7, 0.3],
                                                                                [0.5, 0.5], [0.2, 0.8]]])})
    res = learning_curve(trials, bin_size=2)
    # bin 0: correct, wrong -> 0.5; bin 1: tie excluded, wrong -> 0
    np.testing.assert_allclose(res["p_correct"].values, [0.5, 0.0])
    np.testing.assert_array_equal(res["n"].values, [2, 1])


def test_argument_errors(bandit_data):
    agent, task, trials = bandit_data
    with pytest.raises(ValueError, match="unknown summaries"):
        predictive_check(agent, trials, TRUE, task=task, summaries=["waic"], n_sims=1)
    params = xr.Dataset({"alpha": ("subject", np.full(3, 0.3)), "beta": ("subject", np.full(3, 2.0))},
                        coords={"subject": [0, 1, 999]})
    with pytest.raises(ValueError, match="lack subject"):
        simulate_on_schedule(agent, trials, task, params)
    with pytest.raises(ValueError, match="states x"):
        simulate_on_schedule(agent, trials, nr.make_task("bandit", n_arms=3), TRUE)
    with pytest.raises(ValueError, match="laplace"):
        simulate_on_schedule(agent, trials, task, TRUE, posterior="laplace")
    with pytest.raises(ValueError, match="schedule"):
        simulate_on_schedule(agent, trials, task, TRUE, schedule="recorded")
