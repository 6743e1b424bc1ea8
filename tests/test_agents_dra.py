"""Tests of the DRA agent (agents.md §3): choice probabilities, gradients, KL, learning rule, behaviour."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, stats

import neurorl as nr

from graph_check import assert_graph_matches_replay
from neurorl.agents.dra import dra_dlogp_dsigma, dra_kl, dra_policy
from neurorl.backend import NUMPY
from neurorl.simulate import observations


def _argmax_prob_by_quad(q, s, a):
    """P(a = argmax of N(q_b, s_b^2) samples) by adaptive quadrature (scipy)."""
    others = [b for b in range(len(q)) if b != a]

    def f(x):
        return stats.norm.pdf(x, q[a], s[a]) * np.prod([stats.norm.cdf((x - q[b]) / s[b]) for b in others])

    return integrate.quad(f, -np.inf, np.inf, epsabs=1e-14, epsrel=1e-12)[0]


# ---------------------------------------------------------------- choice probabilities
def test_two_option_probability_is_probit_of_value_difference():
    rng = np.random.default_rng(0)
    q = rng.normal(0, 3, size=(50, 2))
    s = rng.uniform(0.05, 4, size=(50, 2))
    s[:10, 1] = 0.0  # a known option (sure amount) on the first rows
    avail = np.ones((50, 2), bool)
    pol, logp = dra_policy(q, s, avail, NUMPY)
    z = (q[:, 1] - q[:, 0]) / np.sqrt(s[:, 0] ** 2 + s[:, 1] ** 2)
    np.testing.assert_allclose(pol[:, 1], stats.norm.cdf(z), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(pol[:, 0], stats.norm.cdf(-z), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(logp, np.log(pol), rtol=1e-8)


def test_single_available_action_is_chosen_for_sure():
    q = np.array([[1.0, 5.0, 0.0]])
    s = np.array([[1.0, 1.0, 1.0]])
    pol, logp = dra_policy(q, s, np.array([[False, True, False]]), NUMPY)
    np.testing.assert_array_equal(pol, [[0.0, 1.0, 0.0]])
    assert logp[0, 1] == 0.0


def test_three_option_quadrature_matches_monte_carlo_and_scipy_quad():
    q = np.array([1.0, 0.3, 1.4])
    s = np.array([1.0, 1.5, 0.8])
    pol, _ = dra_policy(q[None], s[None], np.ones((1, 3), bool), NUMPY)
    # Monte Carlo: argmax of sampled memories
    n = 1_000_000
    draws = q + s * np.random.default_rng(1).standard_normal((n, 3))
    freq = np.bincount(np.argmax(draws, axis=1), minlength=3) / n
    se = np.sqrt(freq * (1 - freq) / n)
    assert np.all(np.abs(pol[0] - freq) < 4 * se), (pol[0], freq, se)
    # adaptive quadrature of the defining integral
    ref = np.array([_argmax_prob_by_quad(q, s, a) for a in range(3)])
    np.testing.assert_allclose(pol[0], ref, atol=1e-6)


def test_quadrature_is_exact_for_equal_precision():
    q = np.array([0.0, 0.5, -0.2])
    s = np.ones(3)
    pol, _ = dra_policy(q[None], s[None], np.ones((1, 3), bool), NUMPY)
    ref = np.array([_argmax_prob_by_quad(q, s, a) for a in range(3)])
    np.testing.assert_allclose(pol[0], ref, atol=1e-10)


def test_unavailable_actions_are_excluded_from_the_argmax():
    q = np.array([[1.0, 9.0, 0.3, 1.4]])
    s = np.array([[1.0, 0.1, 1.5, 0.8]])
    avail = np.array([[True, False, True, True]])
    pol, logp = dra_policy(q, s, avail, NUMPY)
    ref = [_argmax_prob_by_quad(q[0, [0, 2, 3]], s[0, [0, 2, 3]], a) for a in range(3)]
    np.testing.assert_allclose(pol[0, [0, 2, 3]], ref, atol=1e-6)
    assert pol[0, 1] == 0.0 and logp[0, 1] <= -1e29
    # two of four available: the two-option probit
    avail2 = np.array([[True, False, False, True]])
    pol2, _ = dra_policy(q, s, avail2, NUMPY)
    z = (q[0, 3] - q[0, 0]) / np.hypot(s[0, 0], s[0, 3])
    np.testing.assert_allclose(pol2[0], [stats.norm.cdf(-z), 0, 0, stats.norm.cdf(z)], rtol=1e-8, atol=1e-14)


def test_sampled_choices_follow_the_analytic_policy():
    agent = nr.make_agent("dra")
    n = 400_000
    q = np.tile([[0.4, 0.0]], (n, 1))
    s = np.tile([[1.0, 0.7]], (n, 1))
    avail = np.ones((n, 2), bool)
    choice, extra = agent.sample_choice({"q": q, "sigma": s}, {"avail": avail}, np.random.default_rng(3))
    p1 = stats.norm.cdf(-0.4 / np.hypot(1.0, 0.7))
    se = np.sqrt(p1 * (1 - p1) / n)
    assert abs(choice.mean() - p1) < 4 * se
    np.testing.assert_allclose(extra["q_sample"], q + s * extra["zeta"], atol=1e-8)  # up to the 1e-5 noise floor


# ---------------------------------------------------------------- gradients and cost
@pytest.mark.parametrize("n_actions,avail", [(2, [1, 1]), (3, [1, 1, 1]), (4, [1, 0, 1, 1]), (4, [0, 1, 0, 1])])
def test_dlogp_dsigma_matches_finite_differences(n_actions, avail):
    rng = np.random.default_rng(n_actions + sum(avail))
    q = rng.normal(size=(1, n_actions))
    s = rng.uniform(0.5, 2.0, size=(1, n_actions))
    avail = np.array([avail], bool)
    h = 1e-6
    for a in np.flatnonzero(avail[0]):
        g = dra_dlogp_dsigma(q, s, avail, np.eye(n_actions)[[a]], NUMPY)[0]
        for b in range(n_actions):
            e = np.zeros((1, n_actions))
            e[0, b] = h
            fd = (np.log(dra_policy(q, s + e, avail, NUMPY)[0][0, a])
                  - np.log(dra_policy(q, s - e, avail, NUMPY)[0][0, a])) / (2 * h)
            np.testing.assert_allclose(g[b], fd, rtol=1e-5, atol=1e-8)


def test_two_option_dlogp_against_hand_derivation():
    # P(1) = Phi(d / S), S = sqrt(s0^2 + s1^2): d log P / d s_b = -phi(z)/Phi(z) * z * s_b / S^2
    q = np.array([[0.2, 1.0]])
    s = np.array([[1.2, 0.5]])
    S = np.hypot(1.2, 0.5)
    z = 0.8 / S
    expected = -stats.norm.pdf(z) / stats.norm.cdf(z) * z * s[0] / S**2
    g = dra_dlogp_dsigma(q, s, np.ones((1, 2), bool), np.array([[0.0, 1.0]]), NUMPY)
    np.testing.assert_allclose(g[0], expected, rtol=1e-7)


def test_kl_matches_gaussian_closed_form():
    sigma = np.array([0.01, 0.3, 1.0, 2.5, 5.0])
    sb = 5.0
    m = 1.7
    # general KL(N(m1, s1^2) || N(m2, s2^2)) with m1 = m2
    closed = np.log(sb / sigma) + (sigma**2 + (m - m) ** 2) / (2 * sb**2) - 0.5
    np.testing.assert_allclose(dra_kl(sigma, sb, NUMPY), closed, rtol=1e-12, atol=1e-14)
    # and against the defining integral, for a moderate sigma
    s1 = 1.3
    f = lambda x: stats.norm.pdf(x, m, s1) * (stats.norm.logpdf(x, m, s1) - stats.norm.logpdf(x, m, sb))
    num = integrate.quad(f, m - 40 * s1, m + 40 * s1, epsabs=1e-13)[0]
    np.testing.assert_allclose(dra_kl(np.array(s1), sb, NUMPY), num, rtol=1e-9)
    assert dra_kl(np.array(sb), sb, NUMPY) == pytest.approx(0.0, abs=1e-15)


# ---------------------------------------------------------------- learning rule
@pytest.mark.parametrize("clip_width", [0.0, None])
def test_replay_matches_reference_loop_on_memory_task(clip_width):
    """An independent scalar implementation of the two-option rule (module docstring), with the source's hard clip
    (``clip_width=0``) and the default smooth clip."""
    params = {"alpha_q": 0.2, "alpha_sigma": 0.3, "lam": 0.2}
    agent = nr.make_agent("dra", clip_width=clip_width)
    sim = nr.simulate(agent, "memory_2afc", n_subjects=2, n_trials=150, params=params, rng=4)
    lat = nr.replay(agent, sim.trials, params)
    env = nr.make_task("memory_2afc").env
    aq, asg, lam = params["alpha_q"], params["alpha_sigma"], params["lam"]
    sb, smin = 5.0, 0.01
    for i in range(2):
        qbar = np.zeros(13)
        sig = np.full(13, 2.5)
        for t in range(150):
            st = int(sim.trials["state"][i, t])
            a = int(sim.trials["choice"][i, t])
            r = float(sim.trials["reward"][i, t])
            items = env.item[st]
            kv = env.known_value[st]
            known = np.isfinite(kv)
            q = np.where(known, kv, qbar[items])
            sg = np.where(known, 0.0, sig[items])
            S = np.sqrt(sg[0] ** 2 + sg[1] ** 2)
            pol = np.array([stats.norm.cdf((q[0] - q[1]) / S), stats.norm.cdf((q[1] - q[0]) / S)])
            h = -np.sum(pol * np.log(pol))
            v = pol @ q
            kl = np.log(sb / sig[:12]) + sig[:12] ** 2 / (2 * sb**2) - 0.5
            np.testing.assert_allclose(lat["q"][i, t], q, rtol=1e-9, atol=1e-9)
            np.testing.assert_allclose(lat["sigma"][i, t], sg, rtol=1e-9)
            np.testing.assert_allclose(lat["policy"][i, t], pol, rtol=1e-7, atol=1e-12)
            np.testing.assert_allclose(lat["cost"][i, t], lam * kl.sum(), rtol=1e-9)
            np.testing.assert_allclose(lat["dprime"][i, t], abs(q[1] - q[0]) / S, rtol=1e-7)
            np.testing.assert_allclose(lat["v_soft"][i, t], v + S / 1.702 * h, rtol=1e-7)
            np.testing.assert_allclose(lat["rpe"][i, t], r - q[a], rtol=1e-9, atol=1e-9)
            # updates
            if not known[a]:
                qbar[items[a]] += aq * (r - q[a])
            psi = r - v
            z = (q[a] - q[1 - a]) / S
            new = sig.copy()
            new[:12] -= asg * lam * (sig[:12] / sb**2 - 1 / sig[:12])
            for b in range(2):
                if not known[b]:
                    new[items[b]] += asg * psi * (-stats.norm.pdf(z) / stats.norm.cdf(z) * z * sg[b] / S**2)
            if clip_width == 0.0:
                sig = np.clip(new, smin, sb)
            else:  # smooth clip of width w: smin + w log(1 + e^((x - smin)/w)) - w log(1 + e^((x - sb)/w))
                w = max(smin, sb / 50)
                sig = smin + w * (np.logaddexp(0.0, (new - smin) / w) - np.logaddexp(0.0, (new - sb) / w))


def test_smooth_clip_is_smooth_bounded_and_close_to_the_hard_clip():
    from neurorl.agents.dra import dra_clip

    x = np.linspace(-1.0, 6.0, 7001)
    lo, hi, w = 0.01, 5.0, 0.01
    y = dra_clip(x, lo, hi, w, NUMPY)
    assert np.all((y >= lo) & (y <= hi))  # strictly inside mathematically; equal in floating point far out
    assert np.all(np.diff(y) >= -1e-14)  # non-decreasing up to rounding
    near = (x > lo - 5 * w) & (x < hi + 5 * w)
    assert np.all(np.diff(y[near]) > 0)  # strictly increasing where it is not saturated in floating point
    # at the bounds the smooth clip is w log 2 inside; a few widths away it is the hard clip
    assert dra_clip(np.array(lo), lo, hi, w, NUMPY) == pytest.approx(lo + w * np.log(2.0), rel=1e-9)
    assert dra_clip(np.array(hi), lo, hi, w, NUMPY) == pytest.approx(hi - w * np.log(2.0), rel=1e-9)
    far = (np.abs(x - lo) > 20 * w) & (np.abs(x - hi) > 20 * w)
    np.testing.assert_allclose(y[far], np.clip(x[far], lo, hi), atol=w * np.exp(-19))
    np.testing.assert_array_equal(dra_clip(x, lo, hi, 0.0, NUMPY), np.clip(x, lo, hi))
    with pytest.raises(ValueError, match="clip_width"):
        nr.make_agent("dra", sigma_base=0.5, clip_width=0.2)


def test_probe_policy_uses_known_sure_amount():
    sim = nr.simulate("dra", "memory_2afc", n_subjects=4, n_trials=300, rng=2)
    probe = sim.trials["probe"].values
    assert probe.any()
    lat = sim.latents
    q = lat["q"].values[probe]
    s = lat["sigma"].values[probe]
    assert np.all(s[:, 1] == 0.0)  # the sure amount has no memory noise
    np.testing.assert_allclose(lat["policy"].values[probe][:, 0], stats.norm.cdf((q[:, 0] - q[:, 1]) / s[:, 0]),
                               rtol=1e-8)


def test_known_values_and_dummy_item_are_never_learnt():
    agent = nr.make_agent("dra")
    sim = nr.simulate(agent, "memory_2afc", n_subjects=3, n_trials=300, rng=5)
    env, obs = observations(sim.trials)
    p = agent.resolve(sim.params, 3)
    s = agent.start(p, env, 3)
    for t in range(300):
        s, _ = agent.step(p, s, {k: v[t] for k, v in obs.items()})
    np.testing.assert_array_equal(s["qbar"][:, 12], 0.0)
    np.testing.assert_array_equal(s["sigma"][:, 12], 2.5)
    assert np.all((s["sigma"] >= 0.01) & (s["sigma"] <= 5.0))


# ---------------------------------------------------------------- behaviour (frequency x stakes)
def test_memories_end_more_precise_for_frequent_and_high_stakes_options():
    """Default parameters (alpha_q = alpha_sigma = lam = 0.1, sigma_base = 5, sigma0 = 2.5).

    Sets: 0 frequent/high, 1 frequent/low, 2 rare/high, 3 rare/low.
    """
    n, T = 50, 2000
    agent = nr.make_agent("dra")
    sim = nr.simulate(agent, "memory_2afc", n_subjects=n, n_trials=T, rng=0)
    env, obs = observations(sim.trials)
    p = agent.resolve(sim.params, n)
    s = agent.start(p, env, n)
    for t in range(T):
        s, _ = agent.step(p, s, {k: v[t] for k, v in obs.items()})
    final = s["sigma"][:, :12].reshape(n, 4, 3).mean(-1)  # (subject, set)
    comparisons = {"frequent < rare (high stakes)": final[:, 2] - final[:, 0],
                   "frequent < rare (low stakes)": final[:, 3] - final[:, 1],
                   "high < low stakes (frequent)": final[:, 1] - final[:, 0],
                   "high < low stakes (rare)": final[:, 3] - final[:, 2]}
    for name, d in comparisons.items():
        t_stat = d.mean() / (d.std(ddof=1) / np.sqrt(n))
        assert t_stat > 5, f"{name}: mean difference {d.mean():.3f}, t = {t_stat:.1f}"


# ---------------------------------------------------------------- differentiable path, K > 2
def test_pytensor_graph_three_options_matches_replay():
    agent = nr.make_agent("dra")
    params = {"alpha_q": 0.3, "alpha_sigma": 0.3, "lam": 0.2}
    sim = nr.simulate(agent, nr.make_task("bandit", n_arms=3, p=(0.2, 0.5, 0.8)), n_subjects=2, n_trials=20,
                      params=params, rng=1)
    assert_graph_matches_replay(agent, sim, subject=1)


def test_check_data_warns_on_reward_scale_mismatch():
    import warnings

    import neurorl as nr

    sim = nr.simulate("q_learning", nr.make_task("bandit", p=(0.8, 0.2)), n_subjects=2, n_trials=30, rng=0)
    with pytest.warns(UserWarning, match=r"sigma_base = 5 .*\(range 1\).*sigma_base=0.5,sigma0=0.25"):
        nr.make_agent("dra").check_data(sim.trials)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nr.make_agent("dra", sigma_base=0.5, sigma0=0.25).check_data(sim.trials)  # matched: silent
