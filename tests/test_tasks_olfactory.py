"""Olfactory half-triangle task (tasks.md §9): structure, walls, rewards, memory variant, shortest paths."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.tasks.olfactory import HalfTriangle

UP, DOWN, LEFT, RIGHT = 0, 1, 2, 3


def _run(task, tile, triangle, odor, actions):
    """Play a scripted action sequence from a start; return the list of step outputs and observed states."""
    ts = task.start([tile], [triangle], [odor])
    rng = np.random.default_rng(0)
    outs, states = [], [int(task.observe(ts)[0])]
    for a in actions:
        ts, out = task.step(ts, np.array([a]), rng)
        outs.append({k: np.asarray(v)[0] for k, v in out.items()})
        states.append(int(task.observe(ts)[0]))
    return outs, states


def test_structure_and_features():
    task = nr.make_task("half_triangle")
    assert task.env.n_states == 75 and task.env.n_actions == 4 and task.env.available.all()
    f = task.features(np.array([4 + 25 * 1, 12]))
    assert f.shape == (2, 28) and f.dtype == np.float32
    expected = np.zeros((2, 28), np.float32)
    expected[0, 4] = expected[0, 25 + 1] = 1  # tile 4, odor A
    expected[1, 12] = expected[1, 25] = 1  # tile 12, no cue
    np.testing.assert_array_equal(f, expected)
    lit = nr.make_task("half_triangle", lights=True)
    assert lit.env.n_states == 125 and lit.features(3 * 25 + 7).shape == (31,)
    # 15 tiles per triangle, the diagonal shared
    up, lo = task.triangle_tiles(0), task.triangle_tiles(1)
    assert len(up) == len(lo) == 15
    np.testing.assert_array_equal(np.intersect1d(up, lo), [0, 6, 12, 18, 24])
    assert {4, 0, 24} <= set(up) and 20 not in up and {20, 0, 24} <= set(lo) and 4 not in lo


def _source_move(tile, action, triangle):
    """The clip rule of the source's ``move``/``wall`` (written independently of the task)."""
    row, col = divmod(tile, 5)
    if triangle == 0:
        walls = {LEFT: row, DOWN: col, RIGHT: 4, UP: 0}
    else:
        walls = {LEFT: 0, DOWN: 4, RIGHT: row, UP: col}
    w = walls[action]
    if action == LEFT:
        col = max(col - 1, w)
    elif action == DOWN:
        row = min(row + 1, w)
    elif action == RIGHT:
        col = min(col + 1, w)
    else:
        row = max(row - 1, w)
    return 5 * row + col


@pytest.mark.parametrize("triangle", [0, 1])
def test_walls_match_source_rule(triangle):
    task = nr.make_task("half_triangle")
    succ = task.successors(triangle)
    for tile in task.triangle_tiles(triangle):
        for a in range(4):
            assert succ[tile, a] == _source_move(int(tile), a, triangle), (tile, a)
    # hand examples on the diagonal tile 12 = (2, 2)
    if triangle == 0:
        assert list(succ[12]) == [7, 12, 12, 13]
    else:
        assert list(succ[12]) == [12, 17, 11, 12]


def test_rewards_and_termination():
    task = nr.make_task("half_triangle")
    # upper, odor A, start at 2: right x2 reaches North (cue A), then left x4 to West pays 10 and ends
    outs, states = _run(task, 2, 0, 1, [RIGHT, RIGHT, LEFT, LEFT, LEFT, LEFT])
    assert [o["reward"] for o in outs] == [0, 0, 0, 0, 0, 10.0]
    assert [bool(o["done"]) for o in outs] == [False] * 5 + [True]
    assert states[2] == 4 + 25 * 1  # tile 4 with cue A shown
    assert outs[-1]["next_state"] == 0 + 25 * 1
    assert [o["cue"] for o in outs] == [0, 0, 1, 1, 1, 1] and [o["step"] for o in outs] == [0, 1, 2, 3, 4, 5]
    # odor B, same route to West: wrong port, 0 and the episode ends
    outs, _ = _run(task, 2, 0, 2, [RIGHT, RIGHT, LEFT, LEFT, LEFT, LEFT])
    assert outs[-1]["reward"] == 0 and outs[-1]["done"]
    # odor B from North down to East pays
    outs, _ = _run(task, 4, 0, 2, [UP, DOWN, DOWN, DOWN, DOWN])
    assert [o["reward"] for o in outs] == [0, 0, 0, 0, 10.0] and outs[-1]["done"]
    # lower, odor A: South then up to West
    outs, _ = _run(task, 15, 1, 1, [DOWN, UP, UP, UP, UP])
    assert outs[-1]["reward"] == 10.0 and outs[-1]["done"] and outs[0]["next_state"] == 20 + 25
    # West before the odor does not end the episode
    outs, _ = _run(task, 1, 0, 1, [LEFT])
    assert outs[0]["reward"] == 0 and not outs[0]["done"] and outs[0]["next_state"] == 0


def test_bump_on_odor_port_sets_cue_and_episode_counters():
    task = nr.make_task("half_triangle", max_steps=3)
    outs, states = _run(task, 4, 0, 2, [UP])  # blocked move, stays on North
    assert outs[0]["next_state"] == 4 + 25 * 2
    # truncation: three bumps away from the port, before the odor
    outs, states = _run(task, 12, 0, 1, [LEFT, LEFT, LEFT, LEFT])
    assert [bool(o["done"]) for o in outs[:3]] == [False, False, True]
    assert bool(outs[2]["truncated"]) and not bool(outs[1]["truncated"])
    assert outs[3]["episode"] == 1 and outs[3]["step"] == 0 and outs[3]["cue"] == 0


def test_reset_distribution():
    task = nr.make_task("half_triangle")
    ts = task.reset(20_000, np.random.default_rng(1))
    tri, odor, tile = ts["triangle"], ts["odor"], ts["tile"]
    assert abs(tri.mean() - 0.5) < 0.02 and abs((odor == 1).mean() - 0.5) < 0.02
    assert np.all(ts["cue"] == 0) and np.all(ts["step"] == 0)
    for t in (0, 1):
        tiles = tile[tri == t]
        assert set(np.unique(tiles)) == set(task.triangle_tiles(t))
        counts = np.bincount(tiles, minlength=25)[task.triangle_tiles(t)]
        assert np.all(np.abs(counts / counts.sum() - 1 / 15) < 0.015)


def test_memory_variant_hides_cue():
    full = nr.make_task("half_triangle")
    mem = nr.make_task("half_triangle", memory=True)
    actions = [RIGHT, RIGHT, LEFT, LEFT, LEFT, LEFT]
    outs_f, states_f = _run(full, 2, 0, 1, actions)
    outs_m, states_m = _run(mem, 2, 0, 1, actions)
    # same dynamics and rewards
    assert [o["reward"] for o in outs_f] == [o["reward"] for o in outs_m]
    assert [o["cue"] for o in outs_f] == [o["cue"] for o in outs_m] == [0, 0, 1, 1, 1, 1]
    # the cue is observed only on the odor port (tile 4)
    assert [s // 25 for s in states_f[:6]] == [0, 0, 1, 1, 1, 1]
    assert [s // 25 for s in states_m[:6]] == [0, 0, 1, 0, 0, 0]
    assert [s % 25 for s in states_m[:6]] == [s % 25 for s in states_f[:6]]
    f = mem.features(states_m[3])
    assert f[25:].tolist() == [1, 0, 0]  # blank cue although the hidden cue is A
    assert outs_m[-1]["next_state"] == 0  # West, blank


def test_lights_name_the_triangle():
    task = nr.make_task("half_triangle", lights=True)
    _, states = _run(task, 12, 0, 1, [UP, UP, RIGHT, RIGHT])
    assert [s // 25 for s in states] == [3, 3, 3, 3, 1]  # North light, then odor A (light off)
    _, states = _run(task, 12, 1, 2, [DOWN])
    assert states[0] // 25 == 4
    f = task.features(states[0])
    assert f[25:].tolist() == [1, 0, 0, 0, 0, 1]
    assert not task.aliased_start(12).any() and nr.make_task("half_triangle").aliased_start(12)


def test_shortest_path_hand_values_and_formula():
    task = nr.make_task("half_triangle")
    assert task.shortest_path(0, 0, 1) == 8  # 4 right to North, 4 left back
    assert task.shortest_path(4, 0, 2) == 5  # a bump to smell, 4 down to East
    assert task.shortest_path(15, 1, 1) == 5
    assert task.shortest_path(24, 1, 1) == 8
    starts = task.all_starts()
    assert len(starts["tile"]) == 60
    r, c = np.divmod(starts["tile"], 5)
    port_r, port_c = np.where(starts["triangle"] == 0, 0, 4), np.where(starts["triangle"] == 0, 4, 0)
    dist = np.abs(r - port_r) + np.abs(c - port_c)
    np.testing.assert_array_equal(task.shortest_path(**starts), np.where(dist == 0, 1, dist) + 4)
    with pytest.raises(ValueError, match="not in triangle"):
        task.shortest_path(20, 0, 1)


def test_options_validated_and_round_trip():
    with pytest.raises(ValueError, match="max_steps"):
        nr.make_task("half_triangle", max_steps=0)
    with pytest.raises(ValueError, match="memory"):
        nr.make_task("half_triangle", memory="yes")
    t = nr.make_task("half_triangle", memory=True, lights=True, reward=1.0, max_steps=None)
    assert isinstance(nr.make_task("half_triangle", **{k: v for k, v in t.generative_params().items()
                                                       if k != "task"}), HalfTriangle)


@pytest.mark.parametrize("memory", [False, True])
def test_q_learning_runs_and_replays(memory):
    task = nr.make_task("half_triangle", memory=memory, max_steps=30)
    sim = nr.simulate("q_learning", task, n_subjects=2, n_trials=200, rng=3)
    tr = sim.trials
    np.testing.assert_array_equal(tr["tile"].values, tr["state"].values % 25)
    shown = tr["state"].values // 25
    if memory:
        on_port = tr["tile"].values == np.where(tr["triangle"].values == 0, 4, 20)
        np.testing.assert_array_equal(shown, np.where(on_port, tr["cue"].values, 0))
    else:
        np.testing.assert_array_equal(shown, tr["cue"].values)
    lat = nr.replay("q_learning", tr, sim.params)
    np.testing.assert_array_equal(lat["q"].values, sim.latents["q"].values)
