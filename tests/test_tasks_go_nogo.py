"""Tests of the four-cue go/no-go task (tasks.md §8); tolerances are 5 binomial SEs."""

from __future__ import annotations

import math

import numpy as np
import pytest

import neurorl as nr

Z = 5.0
# cue -> (go is correct, win cue), written out from tasks.md §8 and the module's numbering
TABLE = {0: (True, True), 1: (True, False), 2: (False, True), 3: (False, False)}


def _run(task, n, T, rng):
    ts = task.reset(n, rng)
    rec = {}
    for _ in range(T):
        s = task.observe(ts)
        a = rng.integers(0, 2, n)
        ts, out = task.step(ts, a, rng)
        for k, v in {"state": s, "action": a, **out}.items():
            rec.setdefault(k, []).append(np.asarray(v))
    return {k: np.stack(v) for k, v in rec.items()}


def test_structure_and_defaults():
    task = nr.make_task("go_nogo")
    assert (task.env.n_states, task.env.n_actions) == (4, 2)
    assert task.default_n_trials == 240
    assert task.generative_params() == {"task": "go_nogo", "p_correct": 0.8}


def test_blocks_of_four_balanced_and_shuffled():
    rec = _run(nr.make_task("go_nogo"), 400, 240, np.random.default_rng(0))
    s = rec["state"]  # (T, n)
    blocks = np.sort(s.reshape(60, 4, -1), axis=1)
    assert np.all(blocks == np.arange(4)[None, :, None]), "every block of four shows each cue once"
    np.testing.assert_array_equal(rec["next_state"][:-1], s[1:])
    # each cue equally likely at each position of a block (uniform permutations)
    pos = s.reshape(60, 4, -1)
    n = pos[:, 0].size
    for k in range(4):
        freq = np.bincount(pos[:, k].ravel(), minlength=4) / n
        assert np.all(np.abs(freq - 0.25) < Z * math.sqrt(0.25 * 0.75 / n)), (k, freq)
    # consecutive blocks are independent: the cue that ends a block starts the next with probability 1/4
    same = pos[1:, 0] == pos[:-1, 3]
    assert abs(same.mean() - 0.25) < Z * math.sqrt(0.25 * 0.75 / same.size)


@pytest.mark.parametrize("p", [0.8, 0.65])
def test_outcome_probabilities(p):
    rec = _run(nr.make_task("go_nogo", p_correct=p), 2000, 8, np.random.default_rng(1))
    s, a, r = rec["state"], rec["action"], rec["reward"]
    for cue, (go_correct, win) in TABLE.items():
        good, bad = (1.0, 0.0) if win else (0.0, -1.0)
        for act in (0, 1):
            sel = (s == cue) & (a == act)
            rr = r[sel]
            assert np.all((rr == good) | (rr == bad)), (cue, act, np.unique(rr))
            pf = p if (act == 1) == go_correct else 1 - p
            k = (rr == good).mean()
            assert abs(k - pf) < Z * math.sqrt(pf * (1 - pf) / rr.size), (cue, act, k, pf)
        np.testing.assert_array_equal(rec["go_cue"][s == cue], go_correct)
        np.testing.assert_array_equal(rec["win_cue"][s == cue], win)


def test_deterministic_when_p_is_one():
    rec = _run(nr.make_task("go_nogo", p_correct=1.0), 20, 12, np.random.default_rng(2))
    s, a, r = rec["state"], rec["action"], rec["reward"]
    go = np.array([TABLE[c][0] for c in range(4)])[s]
    win = np.array([TABLE[c][1] for c in range(4)])[s]
    correct = (a == 1) == go
    np.testing.assert_array_equal(r, np.where(win, np.where(correct, 1.0, 0.0), np.where(correct, 0.0, -1.0)))


def test_simulate_records_covariates():
    sim = nr.simulate("q_learning", "go_nogo", n_subjects=2, n_trials=40, rng=3)
    tr = sim.trials
    np.testing.assert_array_equal(tr["go_cue"].values, tr["state"].values < 2)
    np.testing.assert_array_equal(tr["win_cue"].values, tr["state"].values % 2 == 0)
    assert np.all(np.bincount(tr["state"].values.ravel(), minlength=4) == 20)


@pytest.mark.parametrize("p", [1.2, -0.1, float("nan")])
def test_rejects_bad_p(p):
    with pytest.raises(ValueError, match=r"p_correct must be in \[0, 1\]"):
        nr.make_task("go_nogo", p_correct=p)
