"""Tests of the Mattar & Daw maze (neurorl/tasks/gridworld.py; tasks.md §4)."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest

import neurorl as nr

# The maze drawn by hand from tasks.md §4: '#' obstacle, 'S' start, 'G' goal.
MAP = [
    ". . . . . . . # G",
    ". . # . . . . # .",
    "S . # . . . . # .",
    ". . # . . . . . .",
    ". . . . . # . . .",
    ". . . . . . . . .",
]
# After the change: (0, 7) open, goal at (0, 6).
MAP_CHANGED = [
    ". . . . . . G . .",
    ". . # . . . . # .",
    "S . # . . . . # .",
    ". . # . . . . . .",
    ". . . . . # . . .",
    ". . . . . . . . .",
]
UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3
# a 14-step shortest path before the change, worked out on MAP by hand
PATH_BEFORE = [RIGHT, DOWN, DOWN, RIGHT, RIGHT, UP] + [RIGHT] * 5 + [UP] * 3
# an 8-step shortest path after the change
PATH_AFTER = [UP, UP] + [RIGHT] * 6


def _grid(rows):
    return [r.split() for r in rows]


def _bfs(rows):
    """Shortest number of moves from every free cell to the goal (test's own reference)."""
    g = _grid(rows)
    goal = next((r, c) for r in range(6) for c in range(9) if g[r][c] == "G")
    dist = {goal: 0}
    queue = deque([goal])
    while queue:
        r, c = queue.popleft()
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            rr, cc = r + dr, c + dc
            if 0 <= rr < 6 and 0 <= cc < 9 and g[rr][cc] != "#" and (rr, cc) not in dist:
                dist[(rr, cc)] = dist[(r, c)] + 1
                queue.append((rr, cc))
    return dist


def _play(task, actions, n=1, rng=0):
    rng = np.random.default_rng(rng)
    ts = task.reset(n, rng)
    rows = []
    for a in actions:
        s = task.observe(ts)
        ts, out = task.step(ts, np.full(n, a), rng)
        rows.append({"state": s.copy(), **out})
    return ts, rows


def test_bfs_reference_distances():
    assert _bfs(MAP)[(2, 0)] == 14
    assert _bfs(MAP_CHANGED)[(2, 0)] == 8


def test_layout_matches_hand_drawn_map():
    task = nr.make_task("maze")
    for changed, rows in ((False, MAP), (True, MAP_CHANGED)):
        g = _grid(rows)
        expected = np.array([g[r][c] == "#" for r in range(6) for c in range(9)])
        np.testing.assert_array_equal(task.obstacle_mask(changed), expected)
        goal = next(r * 9 + c for r in range(6) for c in range(9) if g[r][c] == "G")
        assert task.goal_state(changed) == goal
    assert task.start_state == 2 * 9 + 0


def test_shortest_path_before_change_steps_and_return():
    task = nr.make_task("maze")
    ts, rows = _play(task, PATH_BEFORE)
    assert len(PATH_BEFORE) == 14
    rewards = np.array([r["reward"][0] for r in rows])
    assert rewards.sum() == -3.0  # 13 * -1 + 10
    done = np.array([r["done"][0] for r in rows])
    assert done[-1] and not done[:-1].any()
    assert rows[-1]["next_state"][0] == 0 * 9 + 8
    assert task.observe(ts)[0] == 18  # restarted at the start
    assert ts["episode"][0] == 1
    assert all(r["episode"][0] == 0 and not r["changed"][0] for r in rows)


def test_task_tables_give_the_bfs_distances():
    task = nr.make_task("maze")
    for changed, rows in ((False, MAP), (True, MAP_CHANGED)):
        dist = _bfs(rows)
        succ = task.tables(changed)["successor"]
        goal = task.goal_state(changed)
        # BFS on the task's own successor table (forward search from each state)
        for (r, c), d in dist.items():
            s = r * 9 + c
            frontier, seen, steps = {s}, {s}, 0
            while goal not in frontier:
                frontier = {int(x) for f in frontier for x in succ[f]} - seen
                seen |= frontier
                steps += 1
            assert steps == d, (changed, (r, c))


@pytest.mark.parametrize("changed,length", [(False, 14), (True, 8)])
def test_optimal_values_match_discounted_shortest_paths(changed, length):
    task = nr.make_task("maze")
    gamma = 0.9
    V, Q = task.optimal_values(gamma=gamma, changed=changed)

    def value(L):  # L moves: L - 1 steps at -1, then +10 on entering the goal
        return -sum(gamma ** k for k in range(L - 1)) + 10 * gamma ** (L - 1)

    np.testing.assert_allclose(V[18], value(length), atol=1e-10)
    dist = _bfs(MAP_CHANGED if changed else MAP)
    for (r, c), d in dist.items():
        if d > 0:
            np.testing.assert_allclose(V[r * 9 + c], value(d), atol=1e-10)
    assert np.isnan(V[task.obstacle_mask(changed)]).all()
    assert V[task.goal_state(changed)] == 0.0
    # greedy actions at the start lie on a shortest path: right (to (2,1)) before, up after
    best = np.flatnonzero(np.isclose(Q[18], np.nanmax(Q[18])))
    assert (RIGHT in best) if not changed else (UP in best)


def test_border_and_obstacle_moves_stay_put():
    task = nr.make_task("maze")
    # at the start (2,0): left is the border
    _, rows = _play(task, [LEFT])
    assert rows[0]["next_state"][0] == 18 and rows[0]["reward"][0] == -1.0 and not rows[0]["done"][0]
    # (2,1) -> right is obstacle (2,2)
    _, rows = _play(task, [RIGHT, RIGHT])
    assert rows[1]["state"][0] == 19 and rows[1]["next_state"][0] == 19
    # (0,0) -> up is the border; (0,6) -> right is obstacle (0,7) before the change
    _, rows = _play(task, [UP, UP, UP] + [RIGHT] * 7)
    assert rows[2]["state"][0] == 0 and rows[2]["next_state"][0] == 0
    assert rows[-1]["state"][0] == 6 and rows[-1]["next_state"][0] == 6
    assert [r["reward"][0] for r in rows] == [-1.0] * 10


def test_change_happens_at_change_episode():
    task = nr.make_task("maze", change_episode=2)
    # episodes 0 and 1 on the original maze, then the 8-step path on the changed one
    ts, rows = _play(task, PATH_BEFORE * 2 + PATH_AFTER)
    ep = np.array([r["episode"][0] for r in rows])
    changed = np.array([r["changed"][0] for r in rows])
    np.testing.assert_array_equal(ep, [0] * 14 + [1] * 14 + [2] * 8)
    np.testing.assert_array_equal(changed, ep >= 2)
    ret = [sum(r["reward"][0] for r in rows[a:b]) for a, b in ((0, 14), (14, 28), (28, 36))]
    assert ret == [-3.0, -3.0, 3.0]
    assert rows[-1]["done"][0] and rows[-1]["next_state"][0] == 6
    assert not any(r["done"][0] for r in rows[28:35])
    # the old goal (0, 8) is an ordinary cell after the change: reach it via the opened (0, 7)
    task2 = nr.make_task("maze", change_episode=0, goal_reward=10.0)
    _, rows2 = _play(task2, PATH_BEFORE)  # never passes (0, 6)
    assert rows2[-1]["next_state"][0] == 8
    assert not rows2[-1]["done"][0] and rows2[-1]["reward"][0] == -1.0


def test_change_opens_cell_0_7():
    task = nr.make_task("maze", change_episode=0)
    tab = task.tables(True)
    assert tab["successor"][6, RIGHT] == 7 and tab["successor"][8, LEFT] == 7
    tab0 = task.tables(False)
    assert tab0["successor"][6, RIGHT] == 6 and tab0["successor"][8, LEFT] == 8


def test_no_change_when_change_episode_is_none():
    task = nr.make_task("maze", change_episode=None)
    _, rows = _play(task, PATH_BEFORE * 3)
    assert not any(r["changed"][0] for r in rows)
    assert [r["episode"][0] for r in rows][-1] == 2


def test_subjects_change_independently():
    task = nr.make_task("maze", change_episode=1)
    rng = np.random.default_rng(0)
    ts = task.reset(2, rng)
    # subject 0 follows the shortest path, subject 1 bumps into the left border
    for a in PATH_BEFORE:
        ts, out = task.step(ts, np.array([a, LEFT]), rng)
    ts, out = task.step(ts, np.array([UP, LEFT]), rng)
    np.testing.assert_array_equal(out["changed"], [True, False])
    np.testing.assert_array_equal(out["episode"], [1, 0])


def test_custom_rewards():
    task = nr.make_task("maze", step_cost=0.5, goal_reward=2.0)
    _, rows = _play(task, PATH_BEFORE)
    assert sum(r["reward"][0] for r in rows) == pytest.approx(13 * -0.5 + 2.0)


@pytest.mark.parametrize("opts,match", [
    ({"change_episode": -1}, "change_episode"),
    ({"change_episode": 2.5}, "change_episode"),
    ({"step_cost": float("nan")}, "step_cost"),
    ({"goal_reward": "10"}, "goal_reward"),
])
def test_invalid_options(opts, match):
    with pytest.raises(ValueError, match=match):
        nr.make_task("maze", **opts)


def test_optimal_values_rejects_bad_gamma():
    with pytest.raises(ValueError, match="gamma"):
        nr.make_task("maze").optimal_values(gamma=1.0)


def test_generative_params_rebuild():
    task = nr.make_task("maze", change_episode=None, step_cost=2.0)
    gp = task.generative_params()
    assert gp == {"task": "maze", "step_cost": 2.0, "goal_reward": 10.0, "change_episode": None}
    assert nr.make_task("maze", **{k: v for k, v in gp.items() if k != "task"}).generative_params() == gp


def test_simulate_records_covariates():
    sim = nr.simulate("q_learning", "maze", n_subjects=2, n_trials=50, rng=1)
    assert {"episode", "changed"} <= set(sim.trials.data_vars)
    obstacles = np.flatnonzero(nr.make_task("maze").obstacle_mask())
    assert not np.isin(sim.trials["state"].values, obstacles).any()
