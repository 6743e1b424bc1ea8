"""The branching-with-stakes task (neurorl.tasks.branching_stakes)."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr


def test_structure_start_states_and_rewards():
    task = nr.make_task("branching_stakes", reward_sd=0.0)
    sim = nr.simulate("q_learning", task, n_subjects=40, n_trials=500, rng=0)
    tr = sim.trials
    s, c, r, done = tr.state.values, tr.choice.values, tr.reward.values, tr.done.values.astype(bool)
    # moves: 0 -> 1 or 2; 1, 2, 3, 4 end the episode; state 1 has one move
    nxt = tr.next_state.values
    assert set(np.unique(nxt[s == 0])) == {1, 2}
    assert np.all(nxt[s == 0] == np.where(c[s == 0] == 0, 1, 2))
    assert np.all(done[s > 0]) and not np.any(done[s == 0])
    assert np.all(c[s == 1] == 0)
    # rewards with no noise: 0 at the root and out of the branches, +2 / -2 for the bandit options
    assert np.all(r[s <= 2] == 0.0)
    np.testing.assert_array_equal(r[s >= 3], np.where(c[s >= 3] == 0, 2.0, -2.0))
    # an episode starts in state 3 w.p. 0.45, state 4 w.p. 0.15, the root otherwise: rows after a terminal move
    starts = s[:, 1:][done[:, :-1]]
    n = starts.size
    for state, p in ((3, 0.45), (4, 0.15), (0, 0.40)):
        assert abs(np.mean(starts == state) - p) < 4 * np.sqrt(p * (1 - p) / n)


def test_max_ent_prefers_the_wide_branch_and_q_learning_does_not():
    # max-ent theory: P(0 -> 2) = 1 / (1 + 2^-gamma) once the soft values are learnt, at any temperature
    theory = 1 / (1 + 2 ** -0.98)
    soft = nr.simulate("soft_q", "branching_stakes", n_subjects=40, n_trials=800,
                       params={"tau": 1.0, "eta": 0.3}, rng=1)
    q = nr.simulate("q_learning", "branching_stakes", n_subjects=40, n_trials=800, rng=2)

    def p_wide(sim):
        late = sim.trials.isel(trial=slice(400, None))
        at0 = (late.state == 0).values
        return float(np.mean(late.choice.values[at0] == 1))

    assert abs(p_wide(soft) - theory) < 0.05
    assert abs(p_wide(q) - 0.5) < 0.08


def test_bad_options():
    with pytest.raises(ValueError, match="p_frequent and p_rare"):
        nr.make_task("branching_stakes", p_frequent=0.7, p_rare=0.3)
    with pytest.raises(ValueError, match="reward_sd"):
        nr.make_task("branching_stakes", reward_sd=-1.0)
    with pytest.raises(ValueError, match="finite"):
        nr.make_task("branching_stakes", mean_high=float("nan"))
