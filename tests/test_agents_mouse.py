"""Beron et al. 2022 mouse agents: RFLR, F-Q learning, ideal observer."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.agents.mouse import rflr_to_fq
from neurorl.schema import EnvSpec

RFLR_PARAMS = {"alpha": [0.78, -0.4, 1.5, 0.2], "beta": [2.05, 0.7, 3.5, 1.2], "tau": [1.43, 4.0, 0.6, 12.0]}


@pytest.fixture(scope="module")
def mouse_data():
    return nr.simulate("rflr", "mouse_bandit", n_subjects=4, n_trials=500, params=RFLR_PARAMS, rng=3).trials


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _chosen_loglik(lat, trials):
    c = trials["choice"].values
    return np.log(np.take_along_axis(lat["policy"].values, c[..., None], -1)[..., 0])


def test_rflr_matches_paper_recursion(mouse_data):
    lat = nr.replay("rflr", mouse_data, RFLR_PARAMS)
    c, r = mouse_data["choice"].values, mouse_data["reward"].values
    for i in range(4):
        alpha, beta, tau = (RFLR_PARAMS[k][i] for k in ("alpha", "beta", "tau"))
        gamma = np.exp(-1.0 / tau)
        phi, cbar_prev = 0.0, 0.0
        p1 = np.zeros(c.shape[1])
        phis = np.zeros(c.shape[1])
        for t in range(c.shape[1]):
            p1[t] = _sigmoid(phi + alpha * cbar_prev)
            phis[t] = phi
            cbar = 2 * c[i, t] - 1
            phi = gamma * phi + beta * r[i, t] * cbar
            cbar_prev = cbar
        np.testing.assert_allclose(lat["policy"].values[i, :, 1], p1, rtol=1e-12)
        np.testing.assert_allclose(lat["phi"].values[i], phis, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(lat["prev_choice"].values[:, 0], -1)
    np.testing.assert_array_equal(lat["prev_choice"].values[:, 1:], c[:, :-1])


def test_rflr_and_fq_learning_are_equivalent(mouse_data):
    fq = {k: np.asarray(v, float) for k, v in rflr_to_fq(**{k: np.asarray(v) for k, v in RFLR_PARAMS.items()}).items()}
    # the mapping of agents.md §9, written out independently
    tau, beta = np.asarray(RFLR_PARAMS["tau"]), np.asarray(RFLR_PARAMS["beta"])
    np.testing.assert_allclose(fq["k"], 1 - np.exp(-1 / tau), rtol=1e-14)
    np.testing.assert_allclose(fq["T"], (1 - np.exp(-1 / tau)) / beta, rtol=1e-14)
    a = nr.replay("rflr", mouse_data, RFLR_PARAMS)
    b = nr.replay("fq_learning", mouse_data, fq)
    np.testing.assert_allclose(_chosen_loglik(a, mouse_data), _chosen_loglik(b, mouse_data), rtol=1e-10, atol=1e-13)
    for name in ("phi", "q", "dq", "rpe", "chosen_value", "v", "v_soft", "entropy"):
        np.testing.assert_allclose(a[name].values, b[name].values, rtol=1e-10, atol=1e-12, err_msg=name)


def test_fq_update_by_hand():
    tr = nr.make_trials([[0, 0, 0]], [[1, 0, 1]], [[1.0, 1.0, 0.0]])
    lat = nr.replay("fq_learning", tr, dict(alpha=0.5, k=0.25, T=0.5))
    # Q after trial 0 (c=1, r=1): (0, 0.25); after trial 1 (c=0, r=1): (0.25, 0.1875)
    np.testing.assert_allclose(lat["q"].values[0], [[0, 0], [0, 0.25], [0.25, 0.1875]], atol=1e-15)
    np.testing.assert_allclose(lat["rpe"].values[0], [1.0, 1.0, -0.1875], atol=1e-15)
    # P(c=1) on trial 2: sigmoid((0.1875 - 0.25)/0.5 + 0.5 * (-1))
    assert lat["policy"].values[0, 2, 1] == pytest.approx(_sigmoid(-0.125 - 0.5), rel=1e-13)


def belief_step_beron2022(b_prev, r_prev, a_prev, p_rew_max, p_switch):
    """Transcription of mobeets/q-rnn ``belief_step_beron2022``."""
    b_lik_0 = (1 - p_rew_max) if a_prev == r_prev else p_rew_max
    b_lik_1 = p_rew_max if a_prev == r_prev else (1 - p_rew_max)
    b_lik = b_prev * b_lik_1 / ((1 - b_prev) * b_lik_0 + b_prev * b_lik_1)
    return p_switch * (1 - b_lik) + (1 - p_switch) * b_lik


@pytest.mark.parametrize("p,p_switch", [(0.8, 0.02), (0.9, 0.05)])
def test_ideal_observer_matches_reference_belief(mouse_data, p, p_switch):
    agent = nr.make_agent("ideal_observer", p=p, p_switch=p_switch)
    T = [0.5, 1.0, 2.0, 0.2]
    lat = nr.replay(agent, mouse_data, {"T": T})
    c, r = mouse_data["choice"].values, mouse_data["reward"].values
    for i in range(4):
        b = 0.5
        for t in range(c.shape[1]):
            assert lat["belief"].values[i, t] == pytest.approx(b, rel=1e-12, abs=1e-15)
            p1 = _sigmoid(np.log(b / (1 - b)) / T[i])
            assert lat["policy"].values[i, t, 1] == pytest.approx(p1, rel=1e-10)
            q1 = b * p + (1 - b) * (1 - p)
            assert lat["q"].values[i, t, 1] == pytest.approx(q1, rel=1e-12)
            b = belief_step_beron2022(b, int(r[i, t]), int(c[i, t]), p, p_switch)


def test_ideal_observer_one_step_by_hand():
    tr = nr.make_trials([[0, 0]], [[1, 0]], [[1.0, 1.0]])
    lat = nr.replay(nr.make_agent("ideal_observer"), tr, {"T": 1.0})
    # port 1 rewarded: posterior 0.8, then switch mixing 0.98 * 0.8 + 0.02 * 0.2 = 0.788
    np.testing.assert_allclose(lat["belief"].values[0], [0.5, 0.788], rtol=1e-14)
    np.testing.assert_allclose(lat["policy"].values[0, :, 1], [0.5, 0.788], rtol=1e-13)
    # expected reward of the chosen port 0 on trial 1: 0.212 * 0.8 + 0.788 * 0.2
    np.testing.assert_allclose(lat["rpe"].values[0], [0.5, 1 - (0.212 * 0.8 + 0.788 * 0.2)], rtol=1e-13)


def test_defaults_and_structure_checks():
    agent = nr.make_agent("rflr")
    assert {p.name: p.default for p in agent.params} == {"alpha": 0.78, "beta": 2.05, "tau": 1.43}
    for name in ("rflr", "fq_learning", "ideal_observer"):
        a = nr.make_agent(name)
        with pytest.raises(ValueError, match="exactly 2 actions"):
            a.start(a.resolve(None, 1), EnvSpec.default(1, 3), 1)
        with pytest.raises(ValueError, match="single-state"):
            a.start(a.resolve(None, 1), EnvSpec.default(4, 2), 1)
    with pytest.raises(ValueError, match="p must be in"):
        nr.make_agent("ideal_observer", p=1.0)
