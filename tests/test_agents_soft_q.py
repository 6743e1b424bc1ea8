"""Tests of the soft Q-learning agent (agents.md §2).

Every expected number is computed here independently: scipy's logsumexp, a
plain per-subject NumPy loop of the equations, or the analytic results of
agents.md §2 (one-step caveat, branching-task preference 1 / (1 + 2^-gamma)).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import neurorl as nr
from neurorl.schema import EnvSpec
from neurorl.tasks.base import Task

PARAMS = {"tau": 0.6, "eta": 0.3, "eta_true": 0.15}


def _reference(trials, tau, eta, eta_true, gamma, q0=0.0):
    """Soft critic + expected-SARSA true critic, one subject and one trial at a time."""
    item = trials["item"].values
    avail = trials["available"].values
    n_items = int(trials.attrs["n_items"])
    n, T = trials.sizes["subject"], trials.sizes["trial"]
    A = avail.shape[1]
    out = {k: np.zeros((n, T, A)) for k in ("q_soft", "q", "policy")}
    out.update({k: np.zeros((n, T)) for k in ("v_soft", "v", "entropy", "rpe", "rpe_true",
                                               "chosen_value", "chosen_value_true")})

    def soft(qs, av):
        z = np.where(av, qs / tau, -np.inf)
        pi = np.exp(z - logsumexp(z))
        return pi, tau * logsumexp(z)

    for i in range(n):
        Qs = np.full(n_items, q0)
        Qt = np.full(n_items, q0)
        for t in range(T):
            s = trials["state"].values[i, t]
            a = trials["choice"].values[i, t]
            r = trials["reward"].values[i, t]
            done = bool(trials["done"].values[i, t])
            s2 = trials["next_state"].values[i, t]
            qs, qt = Qs[item[s]], Qt[item[s]]
            pi, vs = soft(qs, avail[s])
            nz = pi[pi > 0]
            out["q_soft"][i, t], out["q"][i, t], out["policy"][i, t] = qs, qt, pi
            out["v_soft"][i, t], out["v"][i, t] = vs, pi @ qt
            out["entropy"][i, t] = -(nz * np.log(nz)).sum()
            if done:
                boot_s = boot_t = 0.0
            else:
                pi2, vs2 = soft(Qs[item[s2]], avail[s2])
                boot_s, boot_t = vs2, pi2 @ Qt[item[s2]]
            ds = r + gamma * boot_s - qs[a]
            dt = r + gamma * boot_t - qt[a]
            out["rpe"][i, t], out["rpe_true"][i, t] = ds, dt
            out["chosen_value"][i, t], out["chosen_value_true"][i, t] = qs[a], qt[a]
            Qs[item[s, a]] += eta * ds
            Qt[item[s, a]] += eta_true * dt
    return out


@pytest.mark.parametrize("task_name", ["mouse_bandit", "branching"])
def test_reference_loop_reproduces_latents(task_name):
    agent = nr.make_agent("soft_q", gamma=0.9, q0=0.2)
    sim = nr.simulate(agent, task_name, n_subjects=3, n_trials=150, rng=4, params=PARAMS)
    ref = _reference(sim.trials, gamma=0.9, q0=0.2, **PARAMS)
    lat = nr.replay(agent, sim.trials, sim.params)
    for name, expected in ref.items():
        np.testing.assert_allclose(lat[name].values, expected, rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(sim.latents[name].values, expected, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("task_name", ["mouse_bandit", "branching"])
def test_v_soft_is_tau_logsumexp_over_available_actions(task_name):
    tau = 0.35
    sim = nr.simulate("soft_q", task_name, n_subjects=2, n_trials=120, rng=1, params={"tau": tau})
    avail = sim.trials["available"].values[sim.trials["state"].values]
    q_soft = sim.latents["q_soft"].values
    expected = tau * logsumexp(np.where(avail, q_soft / tau, -np.inf), axis=-1)
    np.testing.assert_allclose(sim.latents["v_soft"].values, expected, rtol=1e-12, atol=1e-12)
    # identity of agents.md §2: tau logsumexp(Q/tau) = sum pi Q + tau H at pi = softmax(Q/tau)
    pol = sim.latents["policy"].values
    np.testing.assert_allclose((pol * q_soft).sum(-1) + tau * sim.latents["entropy"].values, expected, atol=1e-12)


def test_one_step_tasks_critics_coincide_and_v_soft_adds_tau_entropy():
    tau = 0.8
    sim = nr.simulate("soft_q", "mouse_bandit", n_subjects=4, n_trials=200, rng=2,
                      params={"tau": tau, "eta": 0.2, "eta_true": 0.2})
    lat = sim.latents
    np.testing.assert_array_equal(lat["q_soft"].values, lat["q"].values)
    np.testing.assert_array_equal(lat["rpe"].values, lat["rpe_true"].values)
    np.testing.assert_allclose(lat["v_soft"].values - lat["v"].values, tau * lat["entropy"].values, atol=1e-12)
    assert np.all(lat["v_soft"].values > lat["v"].values)


def test_branching_soft_agent_prefers_the_branch_with_a_choice():
    """P(0 -> 2) tends to 1 / (1 + 2^-gamma) (agents.md §2); a true-value agent stays at 1/2."""
    gamma = 0.98
    n, T = 100, 3000
    target = 1.0 / (1.0 + 2.0 ** -gamma)
    sim = nr.simulate(nr.make_agent("soft_q", gamma=gamma), "branching", n_subjects=n, n_trials=T, rng=1,
                      params={"tau": 1.0, "eta": 0.1, "eta_true": 0.1})
    state, choice = sim.trials["state"].values, sim.trials["choice"].values
    at0 = state == 0
    last = np.array([np.flatnonzero(at0[i])[-1] for i in range(n)])
    pol_last = sim.latents["policy"].values[np.arange(n), last, 1]
    # deterministic task: the learnt soft values reach the fixed point, so the policy does too
    np.testing.assert_allclose(pol_last, target, atol=1e-6)
    # the true critic is indifferent: both root actions are worth gamma^2 (one reward after three moves)
    np.testing.assert_allclose(sim.latents["q"].values[np.arange(n), last], gamma**2, atol=1e-6)
    # empirical choice frequency over the second half, binomial tolerance from the sample
    late = at0.copy()
    late[:, : T // 2] = False
    p_hat = choice[late].mean()
    p_pol = sim.latents["policy"].values[late][:, 1].mean()
    se = np.sqrt(p_pol * (1 - p_pol) / late.sum())
    assert abs(p_hat - p_pol) < 4 * se
    assert abs(p_pol - target) < 4 * se
    # a true-value (Q-learning) agent is indifferent at the root
    ql = nr.simulate(nr.make_agent("q_learning", gamma=gamma), "branching", n_subjects=n, n_trials=T, rng=1,
                     params={"alpha": 0.1, "beta": 1.0})
    at0q = ql.trials["state"].values == 0
    lastq = np.array([np.flatnonzero(at0q[i])[-1] for i in range(n)])
    np.testing.assert_allclose(ql.latents["policy"].values[np.arange(n), lastq, 1], 0.5, atol=1e-6)


def _known_env():
    """State 0: learnt action 0 leads on to state 1 (no reward); action 1 is a shown sure 0.5 (ends).
    State 1: two shown amounts, 2.0 and 1.0 (both end the episode)."""
    item = np.array([[0, 1], [2, 3]])
    known = np.array([[np.nan, 0.5], [2.0, 1.0]])
    return EnvSpec(2, 2, 4, item, np.ones((2, 2), bool), known)


def test_known_values_replace_both_critics_at_decision_and_bootstrap():
    env = _known_env()
    # trial 0: state 0, action 0 -> state 1 (not done, r = 0); trial 1: state 1, action 0 (r = 2, done);
    # trial 2: state 0 again.
    trials = nr.make_trials([[0, 1, 0]], [[0, 0, 1]], [[0.0, 2.0, 0.5]], next_state=[[1, 0, 0]],
                            done=[[False, True, True]], env=env)
    tau, eta, eta_true, gamma = 0.7, 0.4, 0.25, 0.9
    agent = nr.make_agent("soft_q", gamma=gamma)
    lat = nr.replay(agent, trials, {"tau": tau, "eta": eta, "eta_true": eta_true})
    qs, qt = lat["q_soft"].values[0], lat["q"].values[0]
    # shown values at decision time, in both critics, on every trial
    np.testing.assert_array_equal(qs[[0, 2], 1], 0.5)
    np.testing.assert_array_equal(qt[[0, 2], 1], 0.5)
    np.testing.assert_array_equal(qs[1], [2.0, 1.0])
    np.testing.assert_array_equal(qt[1], [2.0, 1.0])
    # bootstrap from the shown values of state 1
    shown = np.array([2.0, 1.0])
    pi1 = np.exp(shown / tau - logsumexp(shown / tau))
    np.testing.assert_allclose(qs[2, 0], eta * gamma * tau * logsumexp(shown / tau), rtol=1e-12)
    np.testing.assert_allclose(qt[2, 0], eta_true * gamma * (pi1 @ shown), rtol=1e-12)


class _TinyOneStep(Task):
    """Unregistered helper task: one state, two arms paying 1 and 0."""

    name = "tiny_one_step"

    @property
    def env(self):
        return EnvSpec.default(1, 2)

    def reset(self, n, rng):
        return {"n": np.zeros(n, np.int64)}

    def observe(self, ts):
        return np.zeros(ts["n"].shape[0], np.int64)

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        n = action.shape[0]
        return ts, {"reward": (action == 0).astype(float), "next_state": np.zeros(n, np.int64),
                    "done": np.ones(n, bool)}


def test_null_params_uniform_on_one_step_task():
    sim = nr.simulate("soft_q", _TinyOneStep(), n_subjects=2, n_trials=50, rng=0, params={"tau": 1e10})
    np.testing.assert_allclose(sim.latents["policy"].values, 0.5, atol=1e-9)


def test_rejects_bad_gamma():
    with pytest.raises(ValueError, match="gamma"):
        nr.make_agent("soft_q", gamma=1.5)
