"""Tests of the equal-value branching task (neurorl/tasks/branching.py; tasks.md §5)."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr

GAMMA = 0.98
# edges of tasks.md §5, written out by hand
EDGES = {0: [1, 2], 1: [3], 2: [3, 4], 3: [5], 4: [5]}


def test_structure_matches_edges():
    task = nr.make_task("branching")
    for s, succ in EDGES.items():
        n_avail = len(succ)
        assert list(task.successor[s, :n_avail]) == succ
        assert task.env.available[s].tolist() == [True] * n_avail + [False] * (2 - n_avail)
    np.testing.assert_array_equal(task.available[:5], task.env.available[:5])
    assert task.terminal == 5 and task.gamma == GAMMA
    # reward 1 only on the moves entering 5
    expected = np.zeros((6, 2))
    expected[3, 0] = expected[4, 0] = 1.0
    np.testing.assert_array_equal(task.reward_table, expected)
    assert task.env.n_states == 6 and task.env.n_actions == 2


def _episode(task, actions, n=1):
    rng = np.random.default_rng(0)
    ts = task.reset(n, rng)
    rows = []
    for a in actions:
        s = task.observe(ts)
        ts, out = task.step(ts, np.full(n, a), rng)
        rows.append({"state": int(s[0]), **{k: v[0] for k, v in out.items()}})
    return ts, rows


@pytest.mark.parametrize("actions,states", [
    ([0, 0, 0], [0, 1, 3]),
    ([1, 0, 0], [0, 2, 3]),
    ([1, 1, 0], [0, 2, 4]),
])
def test_each_path_is_three_rows_with_reward_on_entering_5(actions, states):
    task = nr.make_task("branching")
    ts, rows = _episode(task, actions)
    assert [r["state"] for r in rows] == states
    assert [r["reward"] for r in rows] == [0.0, 0.0, 1.0]
    assert [bool(r["done"]) for r in rows] == [False, False, True]
    assert rows[-1]["next_state"] == 5
    assert [r["next_state"] for r in rows[:-1]] == states[1:]
    assert task.observe(ts)[0] == 0 and ts["episode"][0] == 1
    assert [r["episode"] for r in rows] == [0, 0, 0]


def test_unavailable_action_rejected():
    task = nr.make_task("branching")
    rng = np.random.default_rng(0)
    ts = task.reset(1, rng)
    ts, _ = task.step(ts, np.array([0]), rng)  # now in state 1
    with pytest.raises(ValueError, match="not available in state 1"):
        task.step(ts, np.array([1]), rng)


def _value_iteration(task, gamma, tau=None, sweeps=50):
    """Hard (tau None) or soft value iteration on the task's tables (test's own reference)."""
    succ, R, avail = task.successor, task.reward_table, task.env.available.copy()
    avail[task.terminal] = False
    V = np.zeros(6)
    for _ in range(sweeps):
        nxt = np.where(succ >= 0, V[np.clip(succ, 0, 5)], 0.0)
        Q = R + gamma * np.where(succ == task.terminal, 0.0, nxt)
        Q = np.where(avail, Q, -np.inf)
        newV = np.zeros(6)
        for s in range(5):
            q = Q[s][avail[s]]
            newV[s] = q.max() if tau is None else tau * np.log(np.sum(np.exp((q - q.max()) / tau))) + q.max()
        V = newV
    return V, Q


def test_hard_value_iteration_gives_equal_values():
    task = nr.make_task("branching")
    V, Q = _value_iteration(task, GAMMA)
    assert Q[0, 0] == pytest.approx(Q[0, 1], abs=1e-14)
    assert Q[2, 0] == pytest.approx(Q[2, 1], abs=1e-14)
    assert V[0] == pytest.approx(GAMMA ** 2)  # three moves, reward 1 on the last


@pytest.mark.parametrize("tau", [0.05, 0.3, 1.0, 4.0, 20.0])
def test_soft_value_iteration_prefers_branch_with_probability_one_over_one_plus_two_to_minus_gamma(tau):
    task = nr.make_task("branching")
    V, Q = _value_iteration(task, GAMMA, tau=tau)
    z = Q[0] / tau
    p = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    assert p[1] == pytest.approx(1.0 / (1.0 + 2.0 ** (-GAMMA)), rel=1e-10)
    assert p[1] == pytest.approx(0.664, abs=1e-3)
    # at state 2 the soft values of 3 and 4 are equal, so the choice there is 50/50
    assert Q[2, 0] == pytest.approx(Q[2, 1])


def test_custom_reward_and_validation():
    task = nr.make_task("branching", reward=2.5)
    assert task.reward_table[3, 0] == 2.5 and task.reward_table[4, 0] == 2.5
    with pytest.raises(ValueError, match="reward"):
        nr.make_task("branching", reward=float("inf"))
    gp = task.generative_params()
    assert gp == {"task": "branching", "reward": 2.5}


def test_simulated_episodes_have_three_rows():
    sim = nr.simulate("q_learning", "branching", n_subjects=3, n_trials=60, rng=2)
    done = sim.trials["done"].values
    np.testing.assert_array_equal(done, np.tile([False, False, True], (3, 20)))
    assert (sim.trials["reward"].values.sum(axis=1) == 20).all()
    assert not (sim.trials["state"].values == 5).any()
