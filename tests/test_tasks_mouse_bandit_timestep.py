"""Tests of the time-step mouse bandit (neurorl/tasks/mouse_bandit_timestep.py; tasks.md §1)."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr

NAME = "mouse_bandit_timestep"


def _run(task, n, n_rows, policy, rng=0):
    """Play ``n_rows`` rows; ``policy(state, row, rng) -> actions``; stacked (n_rows, n) arrays."""
    rng = np.random.default_rng(rng)
    ts = task.reset(n, rng)
    cols = {}
    for t in range(n_rows):
        s = task.observe(ts)
        a = policy(s, t, rng)
        ts, out = task.step(ts, a, rng)
        for k, v in {"state": s, "action": a, **out}.items():
            cols.setdefault(k, []).append(np.asarray(v))
    return {k: np.stack(v) for k, v in cols.items()}


def _const(a):
    return lambda s, t, rng: np.full(s.shape, a)


def _random2(s, t, rng):
    return rng.integers(0, 2, size=s.shape)


def _trials(d, j):
    """Split subject ``j``'s rows into completed task trials (lists of row indices)."""
    out, cur = [], []
    for t in range(d["state"].shape[0]):
        cur.append(t)
        if d["done"][t, j]:
            out.append(cur)
            cur = []
    return out


def test_default_structure():
    task = nr.make_task(NAME)
    assert task.env.n_states == 2 and task.env.n_actions == 2
    assert not task.episodic
    assert nr.make_task(NAME, include_null_action=True).env.n_actions == 3


@pytest.mark.parametrize("iti_min,iti_p", [(0, 0.5), (2, 0.3)])
def test_iti_length_distribution(iti_min, iti_p):
    task = nr.make_task(NAME, iti_min=iti_min, iti_p=iti_p)
    n = 20000
    d = _run(task, n, 80, _const(0))
    # rows before the first go row = ITI rows of the first task trial: Geometric(iti_p) + iti_min
    k = np.argmax(d["state"] == 1, axis=0)
    assert (d["state"] == 1).any(axis=0).all()
    assert k.min() == 1 + iti_min
    for m in range(1 + iti_min, 5 + iti_min):
        p = iti_p * (1 - iti_p) ** (m - 1 - iti_min)
        assert abs(np.mean(k == m) - p) < 4 * np.sqrt(p * (1 - p) / n), m
    mean = 1 / iti_p + iti_min
    assert abs(k.mean() - mean) < 4 * np.sqrt((1 - iti_p) / iti_p ** 2 / n)


def test_every_trial_is_iti_then_one_go_row_without_null_action():
    task = nr.make_task(NAME)
    d = _run(task, 5, 200, _random2, rng=1)
    for j in range(5):
        for rows in _trials(d, j):
            states = d["state"][rows, j]
            assert states[-1] == 1 and (states[:-1] == 0).all() and len(states) >= 2
            assert d["decision"][rows[-1], j] and not d["decision"][rows[:-1], j].any()
            np.testing.assert_array_equal(d["phase"][rows, j], states)  # 0 ITI, 1 go
            np.testing.assert_array_equal(d["reward"][rows[:-1], j], 0.0)
        # trial counter: +1 after each done row
        np.testing.assert_array_equal(d["trial_number"][1:, j], np.cumsum(d["done"][:-1, j]))
        # next_state is the state of the next row
        np.testing.assert_array_equal(d["next_state"][:-1, j], d["state"][1:, j])


def test_reward_rule():
    task = nr.make_task(NAME, p_switch=0.0, p_rew_max=0.8)
    n = 4000
    d = _run(task, n, 12, _random2, rng=2)
    go = d["decision"]
    assert go.sum() > 10000
    hit = d["action"] == d["high_port"]
    for sel, p in ((go & hit, 0.8), (go & ~hit, 0.2)):
        m = sel.sum()
        assert abs(d["reward"][sel].mean() - p) < 4 * np.sqrt(p * (1 - p) / m)
    assert np.isin(d["reward"][go], [0.0, 1.0]).all()
    # with p_switch = 0 the high port never changes; initial port is Bernoulli(0.5)
    assert (d["high_port"] == d["high_port"][:1]).all()
    assert abs(d["high_port"][0].mean() - 0.5) < 4 * 0.5 / np.sqrt(n)


def test_block_switch_probability_per_trial():
    task = nr.make_task(NAME, p_switch=1.0)
    d = _run(task, 3, 100, _random2, rng=4)
    for j in range(3):
        hp = [d["high_port"][rows[0], j] for rows in _trials(d, j)]
        assert all(a != b for a, b in zip(hp, hp[1:]))  # flips after every trial
        for rows in _trials(d, j):
            assert len(set(d["high_port"][rows, j])) == 1  # constant within a trial
    task = nr.make_task(NAME, p_switch=0.3)
    d = _run(task, 2000, 30, _random2, rng=5)
    flips = d["high_port"][1:] != d["high_port"][:-1]
    after_end = d["done"][:-1]
    assert not flips[~after_end].any()
    m = after_end.sum()
    assert abs(flips[after_end].mean() - 0.3) < 4 * np.sqrt(0.21 / m)


def test_abort_penalty():
    task = nr.make_task(NAME, include_null_action=True, abort_penalty=-1.0)
    n = 50
    # first row is always in the ITI: acting there aborts
    d = _run(task, n, 1, _const(0))
    np.testing.assert_array_equal(d["state"][0], 0)
    np.testing.assert_array_equal(d["reward"][0], -1.0)
    assert d["done"][0].all() and not d["decision"][0].any()
    np.testing.assert_array_equal(d["next_state"][0], 0)  # a new trial starts in its ITI
    # waiting (null) in the ITI costs nothing; act once the go cue is on
    d = _run(task, n, 60, lambda s, t, rng: np.where(s == 1, 1, 2), rng=6)
    assert (d["reward"] >= 0).all()
    np.testing.assert_array_equal(d["done"], d["decision"])
    # abort increments the trial counter
    d = _run(task, 1, 3, _const(1))
    np.testing.assert_array_equal(d["trial_number"][:, 0], [0, 1, 2])
    np.testing.assert_array_equal(d["reward"][:, 0], -1.0)


def test_iti_actions_ignored_without_penalty():
    task = nr.make_task(NAME, include_null_action=True, abort_penalty=0.0)
    d = _run(task, 200, 40, _const(0), rng=7)
    iti = d["state"] == 0
    np.testing.assert_array_equal(d["reward"][iti], 0.0)
    assert not d["done"][iti].any()
    # the first non-null action after go onset is the decision and ends the trial (no delay)
    np.testing.assert_array_equal(d["done"], d["state"] == 1)


def test_timeout_after_max_trial_length_null_rows():
    task = nr.make_task(NAME, include_null_action=True, max_trial_length=3)
    d = _run(task, 4, 120, _const(2), rng=8)
    for j in range(4):
        trials = _trials(d, j)
        assert len(trials) > 5
        for rows in trials:
            states = d["state"][rows, j]
            assert list(states[-3:]) == [1, 1, 1] and (states[:-3] == 0).all()
            assert d["reward"][rows[-1], j] == 0.0
    assert not d["decision"].any()
    np.testing.assert_array_equal(d["phase"], d["state"])


def test_late_decision_before_timeout():
    task = nr.make_task(NAME, include_null_action=True, max_trial_length=3, p_switch=0.0)

    # wait two go rows, decide on the third: not a timeout, a decision
    rng = np.random.default_rng(9)
    ts = task.reset(1, rng)
    go_rows, seen = 0, []
    for _ in range(60):
        s = task.observe(ts)[0]
        a = 2 if s == 0 or go_rows < 2 else 0
        ts, out = task.step(ts, np.array([a]), rng)
        go_rows = go_rows + 1 if s == 1 else 0
        if out["done"][0]:
            seen.append((go_rows, bool(out["decision"][0])))
            go_rows = 0
    assert seen and all(g == 3 and dec for g, dec in seen)


def test_reward_delay():
    task = nr.make_task(NAME, reward_delay=2, p_switch=0.0)
    n = 3000
    d = _run(task, n, 40, _const(1), rng=10)
    for j in range(5):
        for rows in _trials(d, j):
            states, phase = d["state"][rows, j], d["phase"][rows, j]
            assert list(states[-3:]) == [1, 1, 1] and (states[:-3] == 0).all()
            assert list(phase[-3:]) == [1, 2, 2]
            assert d["decision"][rows[-3], j] and not d["decision"][rows[-2:], j].any()
            np.testing.assert_array_equal(d["reward"][rows[:-1], j], 0.0)
    # the delivered reward follows the decision's port: high port 1 pays 0.8, else 0.2
    end = d["done"]
    hit = d["high_port"] == 1
    for sel, p in ((end & hit, 0.8), (end & ~hit, 0.2)):
        assert abs(d["reward"][sel].mean() - p) < 4 * np.sqrt(p * (1 - p) / sel.sum())


@pytest.mark.parametrize("opts,match", [
    ({"abort_penalty": -1.0}, "include_null_action"),
    ({"abort_penalty": 0.5, "include_null_action": True}, "abort_penalty"),
    ({"iti_p": 0.0}, "iti_p"),
    ({"iti_min": -1}, "iti_min"),
    ({"iti_min": 1.5}, "iti_min"),
    ({"p_rew_max": 0.3}, "p_rew_max"),
    ({"p_switch": 2.0}, "p_switch"),
    ({"reward_delay": -1}, "reward_delay"),
    ({"max_trial_length": 0}, "max_trial_length"),
    ({"include_null_action": "yes"}, "include_null_action"),
])
def test_invalid_options(opts, match):
    with pytest.raises(ValueError, match=match):
        nr.make_task(NAME, **opts)


def test_generative_params_and_gym_trial_end():
    task = nr.make_task(NAME, include_null_action=True, abort_penalty=-0.5, reward_delay=1)
    gp = task.generative_params()
    assert gp["abort_penalty"] == -0.5 and gp["include_null_action"] is True
    assert nr.make_task(NAME, **{k: v for k, v in gp.items() if k != "task"}).generative_params() == gp
    env = nr.make_task(NAME).make_env(seed=0)
    obs, _ = env.reset()
    ends = 0
    for _ in range(30):
        obs2, r, terminated, truncated, info = env.step(0)
        assert not terminated
        ends += info["trial_end"]
        assert info["trial_end"] == (obs == 1)  # without null action the go row ends the trial
        obs = obs2
    assert ends > 3
