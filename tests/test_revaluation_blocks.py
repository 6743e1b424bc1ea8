"""The revaluation task's within-subject block design (``n_blocks``; Momennejad et al. 2017)."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr


def test_blocks_are_fresh_copies_with_rotated_conditions():
    nl, nrl, nt = 3, 2, 2
    task = nr.make_task("revaluation", condition="mixed", n_blocks=3, n_learning=nl, n_relearning=nrl, n_test=nt)
    assert (task.env.n_states, task.env.n_items) == (27, 24)
    per = 4 * nl + 2 * nrl + 4 * nt  # rows per block
    sim = nr.simulate(nr.make_agent("successor", components=("mf",)), task, n_subjects=3, n_trials=3 * per, rng=0)
    tr = sim.trials
    s, blk, cond, ph = (tr[k].values for k in ("state", "block", "condition", "phase"))
    for i in range(3):
        # block b occupies rows [b per, (b + 1) per) and states 9 b .. 9 b + 8
        np.testing.assert_array_equal(blk[i], np.repeat(np.arange(3), per))
        np.testing.assert_array_equal(s[i] // 9, blk[i])
        # conditions (0 control, 1 reward, 2 transition) rotate over blocks: (i + b) % 3
        np.testing.assert_array_equal(cond[i], (i + blk[i]) % 3)
        for b in range(3):
            rows = blk[i] == b
            local = s[i][rows] - 9 * b
            # each block starts with phase 1 at a forced root (state 7), then the relearning phase from 3 and 4
            assert local[0] == 7
            np.testing.assert_array_equal(np.unique(ph[i][rows]), [1, 2, 3])
            np.testing.assert_array_equal(local[ph[i][rows] == 2], [3, 5, 4, 6] if (i + b) % 3 != 2 else [3, 6, 4, 5])
    # the free root choices: nl / 3 in phase 1 and nt test rows per block
    np.testing.assert_array_equal(tr["free_choice"].values.sum(1), 3 * (nl // 3 + nt))
    np.testing.assert_array_equal(tr["test"].values.sum(1), 3 * nt)


def test_one_block_is_the_original_task():
    task = nr.make_task("revaluation", condition="reward")
    assert task.env.n_states == 9 and "n_blocks" not in repr(task)
    with pytest.raises(ValueError, match="n_blocks"):
        nr.make_task("revaluation", n_blocks=0)
