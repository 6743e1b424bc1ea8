"""Policy compression with a decision-only marginal on the time-step mouse bandit with a wait action
(agents.md §4 open point; ``policy_compression(null_action=2)``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import neurorl as nr

PARAMS = {"beta": 2.0, "alpha_v": 0.2, "alpha_theta": 0.4, "alpha_p": 0.1}


def _reference(trials, params, null=2):
    """Plain loop: marginal over choice actions, wait action with prior weight 1, cost and marginal
    update on choice rows only."""
    n, T = trials["choice"].shape
    A = trials.sizes["action"]
    S = trials.sizes["state_id"]
    choice = np.array([a != null for a in range(A)])
    pol = np.zeros((n, T, A))
    marg = np.zeros((n, T, A))
    cost_out = np.zeros((n, T))
    for i in range(n):
        theta = np.zeros((S, A))
        V = np.zeros(S)
        P = np.where(choice, 1.0 / choice.sum(), 0.0)
        for t in range(T):
            s = int(trials["state"].values[i, t])
            a = int(trials["choice"].values[i, t])
            r = float(trials["reward"].values[i, t])
            log_pi0 = np.where(choice, np.log(np.where(choice, P, 1.0)) - np.log(P[choice].sum()), 0.0)
            d = params["beta"] * theta[s] + log_pi0
            logpi = d - logsumexp(d)
            pi = np.exp(logpi)
            pol[i, t], marg[i, t] = pi, P
            if choice[a]:
                pi_c = np.where(choice, pi, 0.0) / pi[choice].sum()
                cost = np.log(pi_c[a]) - log_pi0[a]
            else:
                pi_c, cost = None, 0.0
            cost_out[i, t] = cost
            delta = params["beta"] * r - cost - V[s]
            theta[s] += params["alpha_theta"] * delta * params["beta"] * (np.eye(A)[a] - pi)
            V[s] += params["alpha_v"] * delta
            if pi_c is not None:
                P = P + params["alpha_p"] * (pi_c - P)
                P = P / P.sum()
    return pol, marg, cost_out


@pytest.fixture(scope="module")
def sim():
    task = nr.make_task("mouse_bandit_timestep", include_null_action=True)
    agent = nr.make_agent("policy_compression", null_action=2)
    return nr.simulate(agent, task, n_subjects=3, n_trials=300, rng=3, params=PARAMS)


def test_decision_only_marginal_matches_reference(sim):
    pol, marg, cost = _reference(sim.trials, PARAMS)
    np.testing.assert_allclose(sim.latents["policy"].values, pol, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(sim.latents["marginal"].values, marg, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(sim.latents["cost"].values, cost, rtol=1e-9, atol=1e-12)


def test_marginal_excludes_the_wait_action(sim):
    m = sim.latents["marginal"].values
    assert np.all(m[..., 2] == 0.0)
    np.testing.assert_allclose(m[..., :2].sum(-1), 1.0, rtol=1e-12)
    # the wait action is used (so the exclusion matters) and costs nothing on its rows
    wait = sim.trials["choice"].values == 2
    assert wait.mean() > 0.1
    assert np.all(sim.latents["cost"].values[wait] == 0.0)
    # the published rule on the same task puts wait mass into the marginal
    plain = nr.simulate(nr.make_agent("policy_compression"),
                        nr.make_task("mouse_bandit_timestep", include_null_action=True),
                        n_subjects=3, n_trials=300, rng=3, params=PARAMS)
    pm = plain.latents["marginal"].values[..., 2]
    np.testing.assert_allclose(pm[:, 0], 1.0 / 3.0)
    assert np.all(pm > 0)


def test_wait_choice_odds_are_uncompressed(sim):
    """Analytic check of one row [D]: pi(wait) / (1 - pi(wait)) = exp(beta theta_wait) / sum_c pi0(c) exp(beta theta_c)."""
    lat = sim.latents
    th = lat["theta"].values[0, 100]
    P = lat["marginal"].values[0, 100]
    b = PARAMS["beta"]
    odds = np.exp(b * th[2]) / np.sum(P[:2] * np.exp(b * th[:2]))
    pw = lat["policy"].values[0, 100, 2]
    np.testing.assert_allclose(pw / (1 - pw), odds, rtol=1e-10)


def test_null_action_replay_and_graph(sim):
    from graph_check import assert_compiled_matches_replay

    agent = nr.make_agent("policy_compression", null_action=2)
    lat = nr.replay(agent, sim.trials, sim.params)
    np.testing.assert_array_equal(lat["policy"].values, sim.latents["policy"].values)
    small = nr.simulate(agent, nr.make_task("mouse_bandit_timestep", include_null_action=True),
                        n_subjects=2, n_trials=70, rng=2, params=PARAMS)
    assert_compiled_matches_replay(agent, small)


def test_null_action_needs_the_wait_action():
    with pytest.raises(ValueError, match="include_null_action"):
        nr.make_agent("policy_compression", null_action=2).check_task(nr.make_task("mouse_bandit_timestep"))
    with pytest.raises(ValueError, match="null_action"):
        nr.make_agent("policy_compression", null_action=-1)
