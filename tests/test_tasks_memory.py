"""Tests of the frequency x stakes memory 2AFC (tasks.md §3).

Expected values are written out by hand from the spec; frequencies are checked
with multinomial / binomial standard errors (tolerance 5 SE).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import norm

import neurorl as nr

Z = 5.0
MEANS = np.array([14, 10, 6, 11, 10, 9, 14, 10, 6, 11, 10, 9], float)
# the pair shown in each choice state, written out from tasks.md §3
PAIRS = [(1, 2), (0, 2), (0, 1), (4, 5), (3, 5), (3, 4), (7, 8), (6, 8), (6, 7), (10, 11), (9, 11), (9, 10)]


def _run(task, n, T, rng, choose):
    """Step the task with ``choose(state, rng) -> action``; return (T, n) arrays."""
    ts = task.reset(n, rng)
    rec = {}
    for _ in range(T):
        s = task.observe(ts)
        a = choose(s, rng)
        ts, out = task.step(ts, a, rng)
        for k, v in {"state": s, "action": a, **out}.items():
            rec.setdefault(k, []).append(np.asarray(v))
    return {k: np.stack(v) for k, v in rec.items()}


def _random(s, rng):
    return rng.integers(0, 2, s.shape[0])


def test_env_items_and_known_values():
    env = nr.make_task("memory_2afc").env
    assert (env.n_states, env.n_actions, env.n_items) == (36, 2, 13)
    assert env.available.all()
    for s, pair in enumerate(PAIRS):
        assert tuple(env.item[s]) == pair
        assert np.isnan(env.known_value[s]).all()
    for o in range(12):
        assert tuple(env.item[12 + o]) == (o, 12) and tuple(env.item[24 + o]) == (o, 12)
        assert np.isnan(env.known_value[12 + o, 0]) and np.isnan(env.known_value[24 + o, 0])
    # a few sure amounts by hand: option 0 (14) +/- 4, option 4 (10) + 4, option 5 (9) - 4, option 8 (6) - 4
    assert env.known_value[12, 1] == 18 and env.known_value[24, 1] == 10
    assert env.known_value[16, 1] == 14 and env.known_value[29, 1] == 5 and env.known_value[32, 1] == 2
    # each option appears in exactly two pairs, both within its own set
    counts = np.bincount(env.item[:12].ravel(), minlength=12)
    assert np.all(counts == 2)
    assert np.all(env.item[:12] // 3 == (np.arange(12) // 3)[:, None])


def test_regular_state_frequencies():
    """Without probes: P(set) = 0.4, 0.4, 0.1, 0.1 and uniform states within a set."""
    task = nr.make_task("memory_2afc", probe_prob=(0.0, 0.0))
    rec = _run(task, 4000, 5, np.random.default_rng(0), _random)
    s = rec["state"].ravel()
    assert s.max() < 12
    expected = np.repeat([0.4, 0.4, 0.1, 0.1], 3) / 3
    freq = np.bincount(s, minlength=12) / s.size
    se = np.sqrt(expected * (1 - expected) / s.size)
    assert np.all(np.abs(freq - expected) < Z * se), freq
    # states 0-5 are four times as frequent as 6-11
    ratio = freq[:6].sum() / freq[6:].sum()
    assert abs(ratio - 4) < 0.3


def test_probe_schedule():
    """P(probe next | frequent) = 0.15, P(probe next | rare) = 0.6; probed option is one of the pair shown."""
    task = nr.make_task("memory_2afc")
    rec = _run(task, 1000, 40, np.random.default_rng(1), _random)
    s, nxt = rec["state"], rec["next_state"]
    np.testing.assert_array_equal(nxt[:-1], s[1:])  # next_state is the next trial's state
    assert s[0].max() < 12  # the first trial is regular
    regular = s < 12
    probe_next = nxt >= 12
    assert not (probe_next & ~regular).any(), "a probe followed a probe"
    for sets, p in (((0, 1), 0.15), ((2, 3), 0.6)):
        sel = regular & np.isin(s // 3, sets)
        k = probe_next[sel]
        assert abs(k.mean() - p) < Z * math.sqrt(p * (1 - p) / k.size), (sets, k.mean())
    # probed option: one of the two shown, each with probability 1/2; sign +/- with probability 1/2
    sel = regular & probe_next
    o = nxt[sel] % 12
    pair = np.array(PAIRS)[s[sel]]
    assert np.all((o == pair[:, 0]) | (o == pair[:, 1]))
    for frac in ((o == pair[:, 0]).mean(), (nxt[sel] < 24).mean()):
        assert abs(frac - 0.5) < Z * math.sqrt(0.25 / o.size)


def test_covariates_describe_the_trial():
    task = nr.make_task("memory_2afc")
    rec = _run(task, 200, 30, np.random.default_rng(2), _random)
    s = rec["state"]
    probe = s >= 12
    option = np.where(probe, s % 12, -1)
    g = np.where(probe, option // 3, s // 3)
    np.testing.assert_array_equal(rec["probe"], probe)
    np.testing.assert_array_equal(rec["option"], option)
    np.testing.assert_array_equal(rec["set"], g)
    np.testing.assert_array_equal(rec["frequent"], np.isin(g, (0, 1)))
    np.testing.assert_array_equal(rec["high_stakes"], np.isin(g, (0, 2)))
    np.testing.assert_array_equal(rec["sure_offset"], np.select([s >= 24, s >= 12], [-4.0, 4.0], 0.0))


def test_probes_from():
    task = nr.make_task("memory_2afc", probes_from=20, probe_prob=(1.0, 1.0))
    rec = _run(task, 50, 30, np.random.default_rng(3), _random)
    s = rec["state"]
    assert s[:20].max() < 12
    # from trial 20 on, every regular trial is followed by a probe, so probes and regular trials alternate
    assert np.all(s[20] >= 12)
    assert np.all((s[20::2] >= 12) & (s[21::2] < 12))


def test_rewards_options_noisy_sure_exact():
    task = nr.make_task("memory_2afc", probe_prob=(0.5, 0.5))
    rec = _run(task, 2000, 12, np.random.default_rng(4), _random)
    env = task.env
    item = env.item[rec["state"], rec["action"]]
    r = rec["reward"]
    sure = item == 12
    np.testing.assert_array_equal(r[sure], env.known_value[rec["state"], rec["action"]][sure])
    e = r[~sure] - MEANS[item[~sure]]
    assert abs(e.mean()) < Z / math.sqrt(e.size)
    assert abs(e.var() - 1) < Z * math.sqrt(2 / e.size)
    for o in (0, 2, 9):  # per-option means
        ro = r[item == o]
        assert abs(ro.mean() - MEANS[o]) < Z / math.sqrt(ro.size)


def test_argmax_agent_readout():
    """An argmax agent on true means always takes sure +4 and rejects sure -4; one with Gaussian
    memory noise sigma takes option o over mu_o - 4 with probability Phi(4 / sigma) (tasks.md §3 read-out)."""
    task = nr.make_task("memory_2afc", probe_prob=(0.6, 0.6))
    env = task.env

    def values(s, noise):
        kv = env.known_value[s]
        return np.where(np.isfinite(kv), kv, MEANS[np.minimum(env.item[s], 11)] + noise)

    def exact(s, rng):
        return np.argmax(values(s, 0.0), axis=1)

    rec = _run(task, 300, 40, np.random.default_rng(5), exact)
    s, a, r = rec["state"], rec["action"], rec["reward"]
    assert np.all(a[(s >= 12) & (s < 24)] == 1) and np.all(a[s >= 24] == 0)
    reg = s < 12
    pair_means = MEANS[np.array(PAIRS)]
    np.testing.assert_array_equal(a[reg], np.argmax(pair_means, axis=1)[s[reg]])
    # expected reward on regular trials: sum_g P(g) * mean over the set's pairs of the larger mean
    best = pair_means.max(axis=1).reshape(4, 3).mean(axis=1)  # (38/3, 32/3, 38/3, 32/3)
    np.testing.assert_allclose(best, [38 / 3, 32 / 3, 38 / 3, 32 / 3])
    counts = np.bincount(s[reg] // 3, minlength=4)
    # conditional on the visited sets, regular rewards average the sets' best means (noise SD 1 + set mix)
    cond_mean = (counts * best).sum() / counts.sum()
    assert abs(r[reg].mean() - cond_mean) < Z * 2.5 / math.sqrt(reg.sum())

    sigma = 4.0

    def noisy(s, rng):
        return np.argmax(values(s, sigma * rng.standard_normal((s.shape[0], 2))), axis=1)

    rec = _run(task, 1500, 30, np.random.default_rng(6), noisy)
    s, a = rec["state"], rec["action"]
    for lo, hi, p in ((24, 36, norm.cdf(4 / sigma)), (12, 24, norm.cdf(-4 / sigma))):
        k = a[(s >= lo) & (s < hi)] == 0  # chose the option over the sure amount
        assert abs(k.mean() - p) < Z * math.sqrt(p * (1 - p) / k.size), (lo, k.mean(), p)


def test_simulate_with_q_learning():
    sim = nr.simulate("q_learning", "memory_2afc", n_subjects=3, n_trials=80, rng=7)
    tr = sim.trials
    assert int(tr.attrs["n_items"]) == 13
    for k in ("set", "frequent", "high_stakes", "probe", "option", "sure_offset"):
        assert k in tr
    assert bool(tr["probe"].any())


@pytest.mark.parametrize("kwargs,match", [
    ({"probe_prob": (0.15,)}, "probe_prob must be"),
    ({"probe_prob": (0.15, 1.5)}, "probe_prob must be"),
    ({"probes_from": -1}, "probes_from must be a non-negative integer"),
    ({"probes_from": 2.5}, "probes_from must be a non-negative integer"),
    ({"sure_delta": 0}, "sure_delta must be positive"),
    ({"reward_sd": -1}, "reward_sd must be non-negative"),
])
def test_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nr.make_task("memory_2afc", **kwargs)


def test_generative_params_rebuild():
    task = nr.make_task("memory_2afc", probe_prob=np.array([0.2, 0.5]), probes_from=100, sure_delta=2)
    gp = task.generative_params()
    assert gp == {"task": "memory_2afc", "probe_prob": (0.2, 0.5), "probes_from": 100, "sure_delta": 2.0,
                  "reward_sd": 1.0}
    rebuilt = nr.make_task("memory_2afc", **{k: v for k, v in gp.items() if k != "task"})
    assert rebuilt.generative_params() == gp
    assert rebuilt.env.known_value[12, 1] == 16  # option 0 (14) + 2
