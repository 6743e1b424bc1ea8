"""Tests of the Wang et al. (2018) meta-RL bandit episodes (neurorl/tasks/meta_bandit.py, tasks.md §2)."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.tasks.meta_bandit import WANG_FIXED_SETS


def _run(task, n, T, seed=0, action=None):
    rng = np.random.default_rng(seed)
    ts = task.reset(n, rng)
    rows = []
    for t in range(T):
        a = np.zeros(n, np.int64) if action is None else action(t, n)
        ts, out = task.step(ts, a, rng)
        rows.append(out)
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


def test_registered_and_structure():
    task = nr.make_task("wang_bandit")
    assert "wang_bandit" in nr.list_tasks()
    assert task.episodic
    assert task.env.n_states == 1 and task.env.n_actions == 2
    assert task.covariates["p"] == ("action",)


def test_episode_boundaries_and_counters():
    task = nr.make_task("wang_bandit", episode_length=7)
    out = _run(task, 3, 21)
    # done exactly on every 7th row (the last trial of each episode)
    expected_done = (np.arange(21) % 7) == 6
    np.testing.assert_array_equal(out["done"], np.repeat(expected_done[:, None], 3, axis=1))
    np.testing.assert_array_equal(out["trial_in_episode"][:, 0], np.arange(21) % 7)
    np.testing.assert_array_equal(out["episode"][:, 0], np.arange(21) // 7)
    np.testing.assert_array_equal(out["next_state"], 0)
    # probabilities constant within an episode, new between episodes
    p = out["p"]
    for e in range(3):
        block = p[7 * e:7 * (e + 1)]
        np.testing.assert_array_equal(block, np.broadcast_to(block[0], block.shape))
    assert not np.allclose(p[0], p[7]) and not np.allclose(p[7], p[14])


def test_dependent_arms_sum_to_one_and_uniform():
    task = nr.make_task("wang_bandit", episode_length=1)
    out = _run(task, 200, 25)
    p = out["p"].reshape(-1, 2)
    np.testing.assert_allclose(p.sum(1), 1.0)
    # p_L ~ U(0, 1): mean 1/2, variance 1/12 (5000 draws; 5 standard errors)
    pl = p[:, 0]
    assert abs(pl.mean() - 0.5) < 5 * np.sqrt(1 / 12 / pl.size)
    assert abs(pl.var() - 1 / 12) < 0.01
    assert pl.min() >= 0 and pl.max() <= 1


def test_independent_arms():
    task = nr.make_task("wang_bandit", episode_length=1, dependent=False)
    p = _run(task, 200, 25)["p"].reshape(-1, 2)
    assert abs(np.corrcoef(p[:, 0], p[:, 1])[0, 1]) < 0.06
    assert abs(p.mean() - 0.5) < 0.02
    assert not np.allclose(p.sum(1), 1.0)


def test_fixed_sets_orientation_and_frequencies():
    task = nr.make_task("wang_bandit", episode_length=1, prob_sets=WANG_FIXED_SETS)
    p = _run(task, 300, 20)["p"].reshape(-1, 2)
    pairs = {tuple(sorted(x, reverse=True)) for x in map(tuple, np.round(p, 12))}
    assert pairs == {(0.9, 0.1), (0.75, 0.25), (0.6, 0.4)}
    n = p.shape[0]
    hi = p.max(1)
    for v in (0.9, 0.75, 0.6):  # each set with probability 1/3
        assert abs(np.mean(hi == v) - 1 / 3) < 5 * np.sqrt(2 / 9 / n)
    # the better arm is on each side half of the time
    assert abs(np.mean(p[:, 0] > p[:, 1]) - 0.5) < 5 * np.sqrt(0.25 / n)


def test_rewards_follow_probabilities():
    task = nr.make_task("wang_bandit", episode_length=50, prob_sets=[(0.8, 0.3)])
    out = _run(task, 400, 50, action=lambda t, n: np.arange(n) % 2)
    a = np.arange(400) % 2
    p_chosen = out["p"][:, np.arange(400), a]
    r = out["reward"]
    for val in (0.8, 0.3):
        sel = np.isclose(p_chosen, val)
        m = sel.sum()
        assert m > 1000
        assert abs(r[sel].mean() - val) < 5 * np.sqrt(val * (1 - val) / m)


def test_same_seed_same_sessions_and_gym_reset_per_episode():
    task = nr.make_task("wang_bandit", episode_length=5)
    a, b = _run(task, 2, 12, seed=4), _run(task, 2, 12, seed=4)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    env = task.make_env(seed=0)
    env.reset()
    terminated = [env.step(0)[2] for _ in range(10)]
    assert terminated == ([False] * 4 + [True]) * 2


@pytest.mark.parametrize("bad", [dict(episode_length=0), dict(episode_length=2.5), dict(dependent="yes"),
                                 dict(prob_sets=[(0.9, 1.2)]), dict(prob_sets=[0.9, 0.1]),
                                 dict(prob_sets=WANG_FIXED_SETS, dependent=False)])
def test_bad_options(bad):
    with pytest.raises(ValueError, match="wang_bandit"):
        nr.make_task("wang_bandit", **bad)


def test_q_learning_simulates_with_covariates():
    sim = nr.simulate("q_learning", nr.make_task("wang_bandit", episode_length=10), n_subjects=2, n_trials=30, rng=0)
    tr = sim.trials
    assert tr["p"].dims == ("subject", "trial", "action")
    np.testing.assert_array_equal(tr["trial_in_episode"].values[0], np.arange(30) % 10)
    np.testing.assert_array_equal(tr["done"].values[0], np.arange(30) % 10 == 9)
