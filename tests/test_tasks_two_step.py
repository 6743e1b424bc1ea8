"""Tests of the two-step task (neurorl/tasks/two_step.py; tasks.md §7)."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.tasks.two_step import reflect


def _run(task, n, n_rows, policy, rng=0):
    """Play ``n_rows`` rows; ``policy(state, rng) -> actions``. Returns stacked (n_rows, n) arrays."""
    rng = np.random.default_rng(rng)
    ts = task.reset(n, rng)
    cols = {}
    for _ in range(n_rows):
        s = task.observe(ts)
        a = policy(s, rng)
        ts, out = task.step(ts, a, rng)
        for k, v in {"state": s, "action": a, **out}.items():
            cols.setdefault(k, []).append(np.asarray(v))
    return {k: np.stack(v) for k, v in cols.items()}


def _random(s, rng):
    return rng.integers(0, 2, size=s.shape)


def test_reflect_by_hand():
    np.testing.assert_allclose(reflect([0.76, 0.24, 0.5, 0.25, 0.75], 0.25, 0.75), [0.74, 0.26, 0.5, 0.25, 0.75])
    # 1.35: mirrored at 0.75 to 0.15, then at 0.25 to 0.35
    np.testing.assert_allclose(reflect(1.35, 0.25, 0.75), 0.35)
    np.testing.assert_allclose(reflect(-0.3, 0.25, 0.75), 0.7)  # -0.3 -> 0.8 -> 0.7


@pytest.mark.parametrize("action,common_state", [(0, 1), (1, 2)])
def test_transition_frequencies(action, common_state):
    task = nr.make_task("two_step")
    n = 20000
    d = _run(task, n, 1, lambda s, rng: np.full(s.shape, action))
    reached = d["next_state"][0]
    assert set(np.unique(reached)) == {1, 2}
    frac = np.mean(reached == common_state)
    sd = np.sqrt(0.7 * 0.3 / n)
    assert abs(frac - 0.7) < 4 * sd
    np.testing.assert_array_equal(d["common"][0], reached == common_state)


def test_p_common_option_changes_frequency():
    task = nr.make_task("two_step", p_common=0.9)
    n = 20000
    d = _run(task, n, 1, lambda s, rng: np.zeros(s.shape, np.int64))
    assert abs(np.mean(d["next_state"][0] == 1) - 0.9) < 4 * np.sqrt(0.09 / n)


def test_row_structure():
    task = nr.make_task("two_step")
    n, T = 4, 40
    d = _run(task, n, T, _random)
    stage = d["stage"]
    np.testing.assert_array_equal(stage, np.tile([[1], [2]], (T // 2, n)))
    np.testing.assert_array_equal(d["state"][0::2], 0)
    assert np.isin(d["state"][1::2], [1, 2]).all()
    np.testing.assert_array_equal(d["done"], stage == 2)
    np.testing.assert_array_equal(d["reward"][0::2], 0.0)
    assert np.isin(d["reward"][1::2], [0.0, 1.0]).all()
    # the stage-1 row's next_state is the state shown on the stage-2 row
    np.testing.assert_array_equal(d["next_state"][0::2], d["state"][1::2])
    # common: the same on both rows, and consistent with action -> state
    np.testing.assert_array_equal(d["common"][0::2], d["common"][1::2])
    np.testing.assert_array_equal(d["common"][0::2], d["state"][1::2] == d["action"][0::2] + 1)
    np.testing.assert_array_equal(d["episode"], np.repeat(np.arange(T // 2), 2)[:, None] * np.ones(n, int))
    # reward probabilities: the same on both rows of an episode; reward_prob picks the chosen one
    cols = np.stack([d[k] for k in ("p_reward_1_0", "p_reward_1_1", "p_reward_2_0", "p_reward_2_1")], -1)
    np.testing.assert_array_equal(cols[0::2], cols[1::2])
    np.testing.assert_array_equal(d["reward_prob"][0::2], 0.0)
    idx = 2 * (d["state"][1::2] - 1) + d["action"][1::2]
    np.testing.assert_array_equal(d["reward_prob"][1::2], np.take_along_axis(cols[1::2], idx[..., None], -1)[..., 0])


def test_reward_frequency_follows_probability():
    probs = (0.3, 0.7, 0.55, 0.25)
    task = nr.make_task("two_step", drift_sd=0.0, initial_probs=probs)
    n = 5000
    d = _run(task, n, 8, _random, rng=3)
    s2, a2, r2 = d["state"][1::2].ravel(), d["action"][1::2].ravel(), d["reward"][1::2].ravel()
    for j, p in enumerate(probs):
        sel = (2 * (s2 - 1) + a2) == j
        m = sel.sum()
        assert m > 2000
        assert abs(r2[sel].mean() - p) < 4 * np.sqrt(p * (1 - p) / m)


def test_probabilities_stay_inside_reflecting_bounds():
    task = nr.make_task("two_step", drift_sd=0.2)  # large steps: many reflections
    d = _run(task, 50, 400, _random, rng=1)
    cols = np.stack([d[k] for k in ("p_reward_1_0", "p_reward_1_1", "p_reward_2_0", "p_reward_2_1")])
    assert cols.min() >= 0.25 and cols.max() <= 0.75
    assert cols.min() < 0.3 and cols.max() > 0.7  # the walk did reach both bounds


def test_drift_step_sd_and_initial_uniform():
    task = nr.make_task("two_step")
    n = 20000
    d = _run(task, n, 4, _random, rng=2)
    p0 = d["p_reward_1_0"][0]
    # initial values U(0.25, 0.75): mean 0.5, sd 0.5 / sqrt(12)
    assert abs(p0.mean() - 0.5) < 4 * (0.5 / np.sqrt(12)) / np.sqrt(n)
    assert abs(p0.std() - 0.5 / np.sqrt(12)) < 0.005
    step = d["p_reward_1_0"][2] - p0  # one drift step between episodes 0 and 1
    inner = (p0 > 0.4) & (p0 < 0.6)  # > 4 SD from the bounds: no reflection
    assert abs(step[inner].std() - 0.025) < 0.0015
    assert abs(step[inner].mean()) < 4 * 0.025 / np.sqrt(inner.sum())
    # no drift within an episode
    np.testing.assert_array_equal(d["p_reward_1_0"][1], p0)


def test_fixed_initial_probs_and_generative_params():
    task = nr.make_task("two_step", initial_probs=[0.3, 0.4, 0.5, 0.6], bounds=[0.2, 0.8])
    gp = task.generative_params()
    assert gp["initial_probs"] == (0.3, 0.4, 0.5, 0.6) and gp["bounds"] == (0.2, 0.8)
    assert nr.make_task("two_step", **{k: v for k, v in gp.items() if k != "task"}).generative_params() == gp
    ts = task.reset(3, np.random.default_rng(0))
    np.testing.assert_array_equal(ts["p"], np.tile([0.3, 0.4, 0.5, 0.6], (3, 1)))


@pytest.mark.parametrize("opts,match", [
    ({"p_common": 1.2}, "p_common"),
    ({"drift_sd": -0.1}, "drift_sd"),
    ({"bounds": (0.8, 0.2)}, "bounds"),
    ({"bounds": (0.1,)}, "bounds"),
    ({"initial_probs": (0.5, 0.5, 0.5)}, "initial_probs"),
    ({"initial_probs": (0.1, 0.5, 0.5, 0.5)}, "inside bounds"),
])
def test_invalid_options(opts, match):
    with pytest.raises(ValueError, match=match):
        nr.make_task("two_step", **opts)


def test_simulate_default_length_and_covariates():
    sim = nr.simulate("q_learning", "two_step", n_subjects=2, rng=0)
    tr = sim.trials
    assert tr.sizes["trial"] == 402
    assert int(tr["episode"].values.max()) == 200
    for k in ("stage", "common", "reward_prob", "p_reward_2_1"):
        assert k in tr and not np.isnan(np.asarray(tr[k].values, float)).any()
