"""Tests of the distributional TD agent (agents.md §6; Dabney et al. 2020).

Expected values: the expectile equation solved with scipy.optimize.brentq, a
plain per-subject NumPy loop (explicit sums over channels and bootstrap
channels), and Q-learning as the one-channel special case.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import logsumexp

import neurorl as nr
from neurorl.schema import EnvSpec
from neurorl.tasks.base import Task

# tasks.md §10 [S]: magnitudes (µl) and probabilities of Dabney et al. (2020)
MAGS = np.array([0.1, 0.3, 1.2, 2.5, 5.0, 10.0, 20.0])
PROBS = np.array([0.067, 0.090, 0.148, 0.154, 0.313, 0.151, 0.077])


class _LocalVariableMagnitude(Task):
    """Fallback if the registered task is missing: one cue, one action, reward drawn from MAGS/PROBS."""

    name = "local_variable_magnitude"

    @property
    def env(self):
        return EnvSpec.default(1, 1)

    def reset(self, n, rng):
        return {"n": np.zeros(n, np.int64)}

    def observe(self, ts):
        return np.zeros(ts["n"].shape[0], np.int64)

    def step(self, ts, action, rng):
        self.check_action(ts, action)
        n = ts["n"].shape[0]
        r = MAGS[rng.choice(MAGS.size, size=n, p=PROBS / PROBS.sum())]
        return ts, {"reward": r, "next_state": np.zeros(n, np.int64), "done": np.ones(n, bool)}


def _variable_magnitude_task():
    if "variable_magnitude" in nr.list_tasks():
        return nr.make_task("variable_magnitude")
    return _LocalVariableMagnitude()


def _expectile(tau):
    p = PROBS / PROBS.sum()

    def f(z):
        return tau * np.sum(p * np.maximum(MAGS - z, 0.0)) - (1 - tau) * np.sum(p * np.maximum(z - MAGS, 0.0))

    return brentq(f, MAGS.min(), MAGS.max(), xtol=1e-12)


def test_rates_encode_the_optimism_levels():
    agent = nr.make_agent("distributional_td", n_channels=8)
    taus = agent.tau_channels
    np.testing.assert_allclose(taus, (np.arange(8) + 0.5) / 8)
    from neurorl.agents.distributional import asymmetric_rates
    from neurorl.backend import NUMPY

    alpha = np.array([0.03, 0.1])
    up, down = asymmetric_rates(alpha, taus, NUMPY)
    np.testing.assert_allclose(up / (up + down), np.broadcast_to(taus, up.shape), rtol=1e-12)
    np.testing.assert_allclose(up * down, np.broadcast_to(alpha[:, None] ** 2, up.shape), rtol=1e-12)
    # the upper bound of alpha keeps every rate below 1
    (p_alpha,) = [p for p in agent.params if p.name == "alpha"]
    up, down = asymmetric_rates(np.array([p_alpha.upper]), taus, NUMPY)
    np.testing.assert_allclose(max(up.max(), down.max()), 1.0, rtol=1e-12)


def test_channels_converge_to_expectiles_of_the_reward_distribution():
    n, T, alpha = 40, 4000, 0.01
    agent = nr.make_agent("distributional_td")
    sim = nr.simulate(agent, _variable_magnitude_task(), n_subjects=n, n_trials=T, rng=0, params={"alpha": alpha})
    true = np.array([_expectile(t) for t in agent.tau_channels])
    # per-subject time average over the second half (after the burn-in); subjects are independent
    per_subject = sim.latents["expectiles"].values[:, T // 2:, :].mean(axis=1)
    mean = per_subject.mean(axis=0)
    se = per_subject.std(axis=0, ddof=1) / np.sqrt(n)
    # tolerance: 4 standard errors plus 1% for the O(alpha) stationary bias of constant-step updates
    tol = 4 * se + 0.01 * np.abs(true)
    assert np.all(np.abs(mean - true) < tol), (mean, true, tol)
    assert np.all(np.diff(mean) > 0)
    # channel mean of the chosen action is the mean reward only at the symmetric level; here check the spread
    assert mean[0] < 2.0 < 10.0 < mean[-1]


def _reference(trials, alpha, beta, gamma, taus, q0=0.0):
    """Expected (over bootstrap channel j and next action a' ~ pi) asymmetric TD update, explicit loops."""
    item, avail = trials["item"].values, trials["available"].values
    n_items, A, N = int(trials.attrs["n_items"]), avail.shape[1], len(taus)
    a_pos = alpha * np.sqrt(taus / (1 - taus))
    a_neg = alpha * np.sqrt((1 - taus) / taus)
    n, T = trials.sizes["subject"], trials.sizes["trial"]
    out = {"expectiles": np.zeros((n, T, N)), "rpe_channels": np.zeros((n, T, N)), "q": np.zeros((n, T, A)),
           "policy": np.zeros((n, T, A)), "rpe": np.zeros((n, T)), "chosen_value": np.zeros((n, T))}
    for i in range(n):
        Z = np.full((n_items, N), q0)
        for t in range(T):
            s, a = trials["state"].values[i, t], trials["choice"].values[i, t]
            r, done = trials["reward"].values[i, t], bool(trials["done"].values[i, t])
            s2 = trials["next_state"].values[i, t]
            q = Z[item[s]].mean(axis=1)
            z = np.where(avail[s], beta * q, -np.inf)
            out["q"][i, t], out["policy"][i, t] = q, np.exp(z - logsumexp(z))
            zc = Z[item[s, a]].copy()
            if done:
                targets, weights = [np.full(N, r)], [1.0]
            else:
                zn = np.where(avail[s2], beta * Z[item[s2]].mean(axis=1), -np.inf)
                pi2 = np.exp(zn - logsumexp(zn))
                targets = [r + gamma * Z[item[s2, b]] for b in range(A)]
                weights = list(pi2)
            inc, err = np.zeros(N), np.zeros(N)
            for k in range(N):
                for tg, wb in zip(targets, weights):
                    for j in range(N):
                        d = tg[j] - zc[k]
                        inc[k] += wb * (a_pos[k] if d > 0 else a_neg[k]) * d / N
                        err[k] += wb * d / N
            out["expectiles"][i, t], out["rpe_channels"][i, t] = zc, err
            out["rpe"][i, t], out["chosen_value"][i, t] = err.mean(), q[a]
            Z[item[s, a]] += inc
    return out


@pytest.mark.parametrize("task_name", ["mouse_bandit", "branching", "two_step"])
def test_reference_loop_reproduces_latents(task_name):
    N, alpha, beta, gamma, q0 = 4, 0.15, 2.0, 0.8, 0.05
    agent = nr.make_agent("distributional_td", n_channels=N, gamma=gamma, q0=q0)
    sim = nr.simulate(agent, task_name, n_subjects=3, n_trials=120, rng=9, params={"alpha": alpha, "beta": beta})
    ref = _reference(sim.trials, alpha, beta, gamma, agent.tau_channels, q0)
    lat = nr.replay(agent, sim.trials, sim.params)
    for name, expected in ref.items():
        np.testing.assert_allclose(lat[name].values, expected, rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(sim.latents[name].values, expected, rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_array_equal(lat["tau_channels"].values, np.broadcast_to(agent.tau_channels, (3, 120, N)))
    assert lat["expectiles"].dims == ("subject", "trial", "channel")


def test_one_channel_on_a_one_step_task_is_q_learning():
    alpha, beta = 0.3, 2.0
    sim = nr.simulate(nr.make_agent("q_learning"), "mouse_bandit", n_subjects=3, n_trials=200, rng=2,
                      params={"alpha": alpha, "beta": beta})
    dist = nr.replay(nr.make_agent("distributional_td", n_channels=1), sim.trials, {"alpha": alpha, "beta": beta})
    for name in ("q", "policy", "rpe", "chosen_value", "entropy", "v", "v_soft"):
        np.testing.assert_allclose(dist[name].values, sim.latents[name].values, rtol=1e-12, atol=1e-12, err_msg=name)


def test_known_values_are_point_distributions():
    """memory_2afc probes: the shown sure amount fills every channel and is never learnt."""
    sim = nr.simulate("distributional_td", "memory_2afc", n_subjects=3, n_trials=300, rng=1, params={"beta": 0.5})
    kv = sim.trials["known_value"].values[sim.trials["state"].values]  # (n, T, A)
    choice = sim.trials["choice"].values
    shown = np.take_along_axis(kv, choice[..., None], -1)[..., 0]
    sel = np.isfinite(shown)
    assert sel.sum() > 10
    np.testing.assert_array_equal(sim.latents["expectiles"].values[sel], np.repeat(shown[sel][:, None], 10, axis=1))
    known = np.isfinite(kv)
    np.testing.assert_array_equal(sim.latents["q"].values[known], kv[known])


def test_rejects_bad_options():
    with pytest.raises(ValueError, match="n_channels"):
        nr.make_agent("distributional_td", n_channels=0)
    with pytest.raises(ValueError, match="gamma"):
        nr.make_agent("distributional_td", gamma=2.0)
    with pytest.raises(ValueError, match="alpha"):
        nr.make_agent("distributional_td").resolve({"alpha": 0.5}, 1)
