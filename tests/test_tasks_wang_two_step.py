"""Tests of the meta-RL two-step task ``wang_two_step`` (neurorl/tasks/wang_two_step.py; tasks.md §7)."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr


def _play(task, n, n_trials, seed=0, policy=None):
    """Play ``n_trials`` two-step trials (2 rows each) with random (or given) actions; return row outputs."""
    rng = np.random.default_rng(seed)
    act_rng = np.random.default_rng(seed + 100)
    ts = task.reset(n, rng)
    rows = []
    for _ in range(2 * n_trials):
        s = task.observe(ts)
        a = act_rng.integers(0, 2, n) if policy is None else policy(s)
        ts, out = task.step(ts, a, rng)
        rows.append({"state": s, "action": a, **out})
    return {k: np.stack([r[k] for r in rows], 1) for k in rows[0]}


def test_rows_transitions_and_reward_probabilities():
    task = nr.make_task("wang_two_step")
    assert task.options == {"p_common": 0.8, "reward_prob": 0.9, "switch_prob": 0.025}
    o = _play(task, 400, 100)
    st = o["state"]
    # rows alternate stage 1 (state 0) and stage 2 (state 1 or 2); done on stage-2 rows only
    assert np.all(st[:, 0::2] == 0) and np.all(np.isin(st[:, 1::2], [1, 2]))
    np.testing.assert_array_equal(o["stage"][:, 0::2], 1)
    assert np.all(o["done"][:, 1::2]) and not np.any(o["done"][:, 0::2])
    assert np.all(o["reward"][:, 0::2] == 0)
    # the good state and the probabilities are the same on both rows of a trial
    good = o["good_state"]
    np.testing.assert_array_equal(good[:, 0::2], good[:, 1::2])
    p1 = np.where(good == 1, 0.9, 0.1)
    for k, ref in (("p_reward_1_0", p1), ("p_reward_1_1", p1), ("p_reward_2_0", 1 - p1), ("p_reward_2_1", 1 - p1)):
        np.testing.assert_allclose(o[k], ref)
    # transitions: action 0 -> state 1 and action 1 -> state 2 are common (p = 0.8); the flag says so
    a1, s2 = o["action"][:, 0::2], st[:, 1::2]
    common = s2 == a1 + 1
    np.testing.assert_array_equal(o["common"][:, 0::2], common)
    np.testing.assert_array_equal(o["common"][:, 1::2], common)
    n = common.size
    assert abs(common.mean() - 0.8) < 4 * np.sqrt(0.16 / n)
    # stage-2 reward: Bernoulli(0.9) in the good state, Bernoulli(0.1) in the other, whatever the action
    r2 = o["reward"][:, 1::2]
    in_good = s2 == good[:, 1::2]
    for mask, p in ((in_good, 0.9), (~in_good, 0.1)):
        for a in (0, 1):
            m = mask & (o["action"][:, 1::2] == a)
            assert abs(r2[m].mean() - p) < 4 * np.sqrt(p * (1 - p) / m.sum())
    np.testing.assert_allclose(o["reward_prob"][:, 1::2], np.where(in_good, 0.9, 0.1))


def test_swaps_between_trials_at_the_switch_probability():
    task = nr.make_task("wang_two_step", switch_prob=0.1)
    good = _play(task, 300, 60, seed=3)["good_state"][:, 0::2]
    swaps = good[:, 1:] != good[:, :-1]
    assert abs(swaps.mean() - 0.1) < 4 * np.sqrt(0.09 / swaps.size)
    # initial good state uniform over {1, 2}
    assert abs((good[:, 0] == 1).mean() - 0.5) < 4 * np.sqrt(0.25 / good.shape[0])
    never = _play(nr.make_task("wang_two_step", switch_prob=0.0), 20, 30)["good_state"]
    assert np.all(never == never[:, :1])
    always = _play(nr.make_task("wang_two_step", switch_prob=1.0), 20, 30)["good_state"][:, 0::2]
    assert np.all(always[:, 1:] == 3 - always[:, :-1])


def test_simulated_sessions_and_stay_analysis():
    """Tabular agents simulate on it; the rows feed the two-step stay analysis."""
    from neurorl.behaviour import two_step_stay

    sim = nr.simulate("q_learning", "wang_two_step", n_subjects=3, n_trials=40, rng=2)
    tr = sim.trials
    assert tr.sizes["trial"] == 40 and "good_state" in tr
    np.testing.assert_array_equal(tr["stage"].values[0, :4], [1, 2, 1, 2])
    assert two_step_stay(tr).attrs["n_trials"] == 3 * (20 - 1)


@pytest.mark.parametrize("bad", [dict(p_common=1.5), dict(reward_prob=-0.1), dict(switch_prob="x"),
                                 dict(switch_prob=float("nan"))])
def test_bad_options(bad):
    with pytest.raises(ValueError, match="wang_two_step"):
        nr.make_task("wang_two_step", **bad)
