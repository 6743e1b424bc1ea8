"""Tests of the policy-compression agent and the Blahut-Arimoto solver (agents.md §4)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import neurorl as nr

from graph_check import assert_graph_matches_replay
from neurorl.agents.policy_compression import blahut_arimoto, reward_complexity_curve


# ---------------------------------------------------------------- online actor-critic
def _reference_latents(trials, n_states, n_actions, params, adaptive=None):
    """Plain per-subject loop of Lai & Gershman's 2024 actor-critic (all actions available)."""
    n, T = trials["choice"].shape
    out = {k: np.zeros((n, T, n_actions)) for k in ("policy", "marginal", "theta")}
    out.update({k: np.zeros((n, T)) for k in ("cost", "rpe", "v", "beta", "v_soft")})
    for i in range(n):
        theta = np.zeros((n_states, n_actions))
        V = np.zeros(n_states)
        P = np.ones(n_actions) / n_actions
        beta = params["beta"]
        avg = 0.0
        for t in range(T):
            s = int(trials["state"][i, t])
            a = int(trials["choice"][i, t])
            r = float(trials["reward"][i, t])
            d = beta * theta[s] + np.log(P)
            logpi = d - logsumexp(d)
            pi = np.exp(logpi)
            cost = logpi[a] - np.log(P[a])
            delta = beta * r - cost - V[s]
            for k, v in (("policy", pi), ("marginal", P), ("theta", theta[s]), ("cost", cost), ("rpe", delta),
                         ("v", V[s]), ("beta", beta), ("v_soft", logsumexp(d) / beta)):
                out[k][i, t] = v
            theta[s] = theta[s] + params["alpha_theta"] * delta * beta * (np.eye(n_actions)[a] - pi)
            V[s] += params["alpha_v"] * delta
            if adaptive == "capacity":
                avg += 0.01 * (cost - avg)
                beta = min(max(beta + params["alpha_beta"] * (params["C"] - avg), 0.1), 30.0)
            elif adaptive == "value":
                avg += 0.01 * (r - avg)
                beta = min(max(beta + params["alpha_beta"] * (params["v_star"] - avg), 0.1), 30.0)
            P = P + params["alpha_p"] * (pi - P)
            P = P / P.sum()
    return out


CASES = [
    (None, {"beta": 3.0, "alpha_v": 0.2, "alpha_theta": 0.3, "alpha_p": 0.05}),
    ("capacity", {"beta": 3.0, "alpha_v": 0.2, "alpha_theta": 0.3, "alpha_p": 0.05, "alpha_beta": 0.5, "C": 0.3}),
    ("value", {"beta": 3.0, "alpha_v": 0.2, "alpha_theta": 0.3, "alpha_p": 0.05, "alpha_beta": 0.5,
               "v_star": 0.9}),
]


@pytest.mark.parametrize("adaptive,params", CASES, ids=["fixed", "capacity", "value"])
@pytest.mark.parametrize("task", ["go_nogo", "bandit3"])
def test_replay_matches_reference_loop(adaptive, params, task):
    task_obj = nr.make_task("bandit", n_arms=3, p=(0.2, 0.5, 0.8)) if task == "bandit3" else nr.make_task(task)
    agent = nr.make_agent("policy_compression", adaptive=adaptive)
    sim = nr.simulate(agent, task_obj, n_subjects=2, n_trials=120, params=params, rng=3)
    lat = nr.replay(agent, sim.trials, params)
    tr = {k: sim.trials[k].values for k in ("state", "choice", "reward")}
    env = task_obj.env
    ref = _reference_latents(tr, env.n_states, env.n_actions, params, adaptive)
    for k, v in ref.items():
        np.testing.assert_allclose(lat[k].values, v, rtol=1e-9, atol=1e-10, err_msg=k)
    np.testing.assert_allclose(lat["q"].values, ref["theta"], rtol=1e-9, atol=1e-10)
    if adaptive is not None:
        assert np.ptp(lat["beta"].values) > 0.1  # beta actually adapts


def test_soft_value_is_value_minus_scaled_kl_to_the_marginal():
    sim = nr.simulate("policy_compression", "go_nogo", n_subjects=2, n_trials=100, rng=1,
                      params={"beta": 2.0})
    lat = sim.latents
    pi, P, th, tau = lat["policy"].values, lat["marginal"].values, lat["theta"].values, 1 / lat["beta"].values
    kl = np.sum(pi * np.log(pi / P), axis=-1)
    np.testing.assert_allclose(lat["v_soft"].values, np.sum(pi * th, -1) - tau * kl, rtol=1e-9, atol=1e-9)
    # pi ∝ P exp(beta theta)
    w = P * np.exp(th / tau[..., None])
    np.testing.assert_allclose(pi, w / w.sum(-1, keepdims=True), rtol=1e-9)


def test_marginal_tracks_the_policy_and_stays_normalised():
    sim = nr.simulate("policy_compression", "mouse_bandit", n_subjects=3, n_trials=200, rng=2)
    P = sim.latents["marginal"].values
    np.testing.assert_allclose(P.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(P[:, 0], 0.5)  # uniform start
    # one step of P <- P + alpha_p (pi - P) with the default alpha_p = 0.1
    pi = sim.latents["policy"].values
    np.testing.assert_allclose(P[:, 1:], P[:, :-1] + 0.1 * (pi[:, :-1] - P[:, :-1]), rtol=1e-9)


def test_unavailable_actions_get_no_probability():
    sim = nr.simulate("policy_compression", "branching", n_subjects=2, n_trials=60, rng=0)
    avail = sim.trials["available"].values[sim.trials["state"].values]
    pol = sim.latents["policy"].values
    assert np.all(pol[~avail] == 0.0)
    np.testing.assert_allclose(pol.sum(-1), 1.0, atol=1e-12)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="adaptive"):
        nr.make_agent("policy_compression", adaptive="pg_typo")
    with pytest.raises(ValueError, match="beta_bounds"):
        nr.make_agent("policy_compression", beta_bounds=(5, 1))


def test_pytensor_graph_capacity_variant_matches_replay():
    agent = nr.make_agent("policy_compression", adaptive="capacity")
    params = {"beta": 3.0, "alpha_beta": 0.5, "C": 0.3}
    sim = nr.simulate(agent, "go_nogo", n_subjects=2, n_trials=20, params=params, rng=1)
    assert_graph_matches_replay(agent, sim, subject=0)


# ---------------------------------------------------------------- Blahut-Arimoto
Q = np.array([[1.0, 0.0, 0.0],
              [2.0, 1.0, 0.5],
              [0.0, 1.0, 0.0]])
P_STATE = np.array([0.5, 0.3, 0.2])


def _mutual_information(policy, p_state):
    marg = p_state @ policy
    ratio = np.where(policy > 0, policy / marg, 1.0)
    return float(np.sum(p_state[:, None] * policy * np.log(ratio)))


@pytest.mark.parametrize("beta", [2.0, 5.0, 8.0])
def test_blahut_arimoto_fixed_point(beta):
    res = blahut_arimoto(Q, P_STATE, beta, max_iter=20000, tol=1e-15)
    w = res.marginal * np.exp(beta * Q)
    np.testing.assert_allclose(res.policy, w / w.sum(1, keepdims=True), rtol=1e-10)
    np.testing.assert_allclose(res.marginal, P_STATE @ res.policy, atol=1e-9)
    np.testing.assert_allclose(res.information, _mutual_information(res.policy, P_STATE), atol=1e-9)
    np.testing.assert_allclose(res.value, np.sum(P_STATE[:, None] * res.policy * Q), rtol=1e-12)


def test_blahut_arimoto_small_beta_has_no_information():
    res = blahut_arimoto(Q, P_STATE, 1e-4)
    assert abs(res.information) < 1e-8
    assert _mutual_information(res.policy, P_STATE) < 1e-8
    res0 = blahut_arimoto(Q, P_STATE, 0.0)
    np.testing.assert_allclose(res0.policy, 1 / 3)
    assert res0.information == pytest.approx(0.0, abs=1e-15)


def test_blahut_arimoto_large_beta_is_greedy():
    # optimal actions (0, 0, 1) -> marginal (0.5 + 0.3, 0.2, 0): I = H(0.8, 0.2), by hand
    res = blahut_arimoto(Q, P_STATE, 60.0, max_iter=200, tol=1e-12)
    np.testing.assert_allclose(res.policy, np.eye(3)[[0, 0, 1]], atol=1e-12)
    h = -(0.8 * np.log(0.8) + 0.2 * np.log(0.2))
    assert h == pytest.approx(0.5004024235381879, rel=1e-12)
    np.testing.assert_allclose(res.information, h, rtol=1e-9)
    np.testing.assert_allclose(res.value, 0.5 * 1 + 0.3 * 2 + 0.2 * 1, rtol=1e-9)


def test_blahut_arimoto_rejects_bad_input():
    with pytest.raises(ValueError, match="p_state"):
        blahut_arimoto(Q, [0.5, 0.5], 1.0)
    with pytest.raises(ValueError, match="beta"):
        blahut_arimoto(Q, P_STATE, -1.0)


def test_reward_complexity_curve_is_monotone():
    betas = np.linspace(0.1, 15, 12)
    curve = reward_complexity_curve(Q, P_STATE, betas, max_iter=5000, tol=1e-12)
    info, value = curve["information"].values, curve["value"].values
    assert np.all(np.diff(info) >= -1e-9) and np.all(np.diff(value) >= -1e-9)
    assert info[-1] <= np.log(3) + 1e-12
    one = blahut_arimoto(Q, P_STATE, betas[5], max_iter=5000, tol=1e-12)
    np.testing.assert_allclose(curve["policy"].values[5], one.policy)
    assert curve["policy"].dims == ("beta", "state_id", "action")
