"""Tests of the tabular actor-critic with entropy bonus (agents.md §5).

Expected values come from finite differences of the entropy, a plain
per-subject NumPy loop of the update equations, and scipy.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp, softmax

import neurorl as nr
from neurorl.agents.actor_critic import entropy_grad
from neurorl.backend import NUMPY


def _entropy_of_logits(l, avail):
    z = np.where(avail, l, -np.inf)
    p = np.exp(z - logsumexp(z))
    nz = p[p > 0]
    return -(nz * np.log(nz)).sum()


def test_entropy_gradient_matches_finite_differences():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 1.5, size=(5, 4))
    avail = np.ones((5, 4), bool)
    avail[1, 2] = avail[3, 0] = avail[3, 3] = False
    h = 1e-6
    fd = np.zeros_like(logits)
    for i in range(5):
        for k in range(4):
            e = np.zeros(4)
            e[k] = h
            up = _entropy_of_logits(logits[i] + e, avail[i])
            down = _entropy_of_logits(logits[i] - e, avail[i])
            fd[i, k] = (up - down) / (2 * h)
    z = np.where(avail, logits, -np.inf)
    logp = z - logsumexp(z, axis=-1, keepdims=True)
    pol = np.exp(logp)
    logp = np.where(avail, logp, -1e30)
    got = entropy_grad(pol, logp, avail, NUMPY)
    np.testing.assert_allclose(got, fd, atol=1e-8)
    assert np.all(got[~avail] == 0.0)
    # the closed form -pi (log pi + H), written out separately
    H = np.array([_entropy_of_logits(logits[i], avail[i]) for i in range(5)])
    closed = np.where(avail, -pol * (np.where(avail, np.log(np.where(pol > 0, pol, 1)), 0) + H[:, None]), 0)
    np.testing.assert_allclose(got, closed, atol=1e-14)


def _reference(trials, alpha_v, alpha_theta, c_h, beta, gamma, v0=0.0):
    avail_tab = trials["available"].values
    S, A = avail_tab.shape
    n, T = trials.sizes["subject"], trials.sizes["trial"]
    out = {k: np.zeros((n, T, A)) for k in ("q", "policy", "advantage", "logits")}
    out.update({k: np.zeros((n, T)) for k in ("v", "v_soft", "entropy", "rpe", "chosen_value")})
    for i in range(n):
        V = np.full(S, v0)
        th = np.zeros((S, A))
        for t in range(T):
            s, a = trials["state"].values[i, t], trials["choice"].values[i, t]
            r, done = trials["reward"].values[i, t], bool(trials["done"].values[i, t])
            s2 = trials["next_state"].values[i, t]
            av = avail_tab[s]
            pi = np.where(av, softmax(np.where(av, beta * th[s], -np.inf)), 0.0)
            lp = np.log(np.where(pi > 0, pi, 1.0))
            H = -(pi * lp).sum()
            adv = th[s] - pi @ th[s]
            out["policy"][i, t], out["entropy"][i, t], out["v"][i, t] = pi, H, V[s]
            out["advantage"][i, t], out["q"][i, t], out["logits"][i, t] = adv, V[s] + adv, beta * th[s]
            out["v_soft"][i, t] = V[s] + H / beta
            delta = r + (0.0 if done else gamma * V[s2]) - V[s]
            out["rpe"][i, t], out["chosen_value"][i, t] = delta, V[s]
            onehot = np.eye(A)[a]
            grad_h = np.where(av, -pi * (lp + H), 0.0)
            th[s] += alpha_theta * (delta * np.where(av, onehot - pi, 0.0) + c_h * grad_h)
            V[s] += alpha_v * delta
    return out


@pytest.mark.parametrize("task_name,entropy_bonus", [("branching", True), ("mouse_bandit", True),
                                                      ("two_step", False)])
def test_reference_loop_reproduces_latents(task_name, entropy_bonus):
    beta, gamma, v0 = 1.7, 0.85, 0.1
    params = {"alpha_v": 0.3, "alpha_theta": 0.25}
    if entropy_bonus:
        params["c_h"] = 0.4
    agent = nr.make_agent("actor_critic", entropy_bonus=entropy_bonus, beta=beta, gamma=gamma, v0=v0)
    sim = nr.simulate(agent, task_name, n_subjects=3, n_trials=150, rng=8, params=params)
    ref = _reference(sim.trials, params["alpha_v"], params["alpha_theta"], params.get("c_h", 0.0), beta, gamma, v0)
    lat = nr.replay(agent, sim.trials, sim.params)
    for name, expected in ref.items():
        np.testing.assert_allclose(lat[name].values, expected, rtol=1e-10, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(sim.latents[name].values, expected, rtol=1e-10, atol=1e-12, err_msg=name)


def test_q_is_consistent_with_policy_and_critic():
    beta = 2.5
    sim = nr.simulate(nr.make_agent("actor_critic", beta=beta), "branching", n_subjects=2, n_trials=200, rng=3)
    lat = sim.latents
    avail = sim.trials["available"].values[sim.trials["state"].values]
    q, pol = lat["q"].values, lat["policy"].values
    z = np.where(avail, beta * q, -np.inf)
    np.testing.assert_allclose(np.where(avail, np.exp(z - logsumexp(z, -1, keepdims=True)), 0), pol, atol=1e-12)
    np.testing.assert_allclose((pol * q).sum(-1), lat["v"].values, atol=1e-12)
    np.testing.assert_allclose(lat["v_soft"].values, logsumexp(z, axis=-1) / beta, atol=1e-12)
    np.testing.assert_allclose(lat["advantage"].values, q - lat["v"].values[..., None], atol=1e-12)


def test_critic_learns_true_state_values_on_branching():
    """Entropy only enters the actor: V converges to the true V^pi (every path pays gamma^k at depth k)."""
    gamma = 0.9
    sim = nr.simulate(nr.make_agent("actor_critic", gamma=gamma), "branching", n_subjects=5, n_trials=3000, rng=0,
                      params={"alpha_v": 0.1, "alpha_theta": 0.05, "c_h": 0.5})
    state, v = sim.trials["state"].values, sim.latents["v"].values
    depth = {0: 2, 1: 1, 2: 1, 3: 0, 4: 0}  # moves left after this one
    for s, k in depth.items():
        last = np.array([np.flatnonzero(state[i] == s)[-1] for i in range(5)])
        np.testing.assert_allclose(v[np.arange(5), last], gamma**k, atol=1e-6)


def test_entropy_bonus_keeps_policy_more_stochastic():
    common = dict(n_subjects=40, n_trials=400, rng=6)
    task = nr.make_task("bandit", p=(0.8, 0.2))
    plain = nr.simulate(nr.make_agent("actor_critic", entropy_bonus=False), task,
                        params={"alpha_v": 0.2, "alpha_theta": 0.5}, **common)
    bonus = nr.simulate(nr.make_agent("actor_critic"), task,
                        params={"alpha_v": 0.2, "alpha_theta": 0.5, "c_h": 2.0}, **common)
    h_plain = plain.latents["entropy"].values[:, -100:].mean()
    h_bonus = bonus.latents["entropy"].values[:, -100:].mean()
    assert h_bonus > h_plain + 0.1


def test_beta_is_an_option_not_a_parameter():
    agent = nr.make_agent("actor_critic")
    assert agent.param_names == ("alpha_v", "alpha_theta", "c_h")
    assert nr.make_agent("actor_critic", entropy_bonus=False).param_names == ("alpha_v", "alpha_theta")
    with pytest.raises(ValueError, match="beta"):
        nr.make_agent("actor_critic", beta=0.0)
    with pytest.raises(ValueError, match="gamma"):
        nr.make_agent("actor_critic", gamma=-0.1)
