"""Hand-checked tests of the behavioural summaries (neurorl/behaviour.py)."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.behaviour import (
    decision_rows, history_words, p_better_by_trial_in_episode, p_switch_around_block_changes, switch_by_history,
    two_step_stay,
)


def _trials(choice, reward, valid=None, **cov):
    choice = np.atleast_2d(choice)
    return nr.make_trials(np.zeros_like(choice), choice, np.atleast_2d(reward), valid=valid, n_actions=2,
                          covariates={k: np.asarray(v) for k, v in cov.items()})


def test_p_switch_around_block_changes_by_hand():
    # subject 0: change at t0 = 4; subject 1 (3 rows + padding): change at t0 = 1
    choice = [[0, 0, 1, 0, 0, 1, 1, 1], [1, 1, 0, -1, -1, -1, -1, -1]]
    high = [[0, 0, 0, 0, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0, 0, 0]]
    reward = np.zeros((2, 8))
    tr = _trials(choice, reward, valid=np.array(choice) >= 0, high_port=high)
    res = p_switch_around_block_changes(tr, window=(-2, 2))
    np.testing.assert_array_equal(res.offset.values, [-2, -1, 0, 1, 2])
    # switch_0 = [nan 0 1 1 0 1 0 0], high_0 = [1 1 0 1 0 1 1 1]; switch_1 = [nan 0 1], high_1 = [1 0 1]
    np.testing.assert_allclose(res.p_switch.values, [1, 1, 0, 1, 0])
    np.testing.assert_array_equal(res.n_switch.values, [1, 1, 2, 2, 1])
    np.testing.assert_allclose(res.p_high.values, [0, 1, 0, 1, 1])
    np.testing.assert_array_equal(res.n.values, [1, 2, 2, 2, 1])
    assert res.attrs["n_changes"] == 2


def test_p_switch_uses_decision_rows_only():
    # the same subject-0 session, with non-decision rows (ITI steps) interleaved
    choice = [0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1]
    decision = [1, 0, 1, 1, 0, 1, 1, 0, 1, 1, 1]
    high = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    tr = _trials(choice, np.zeros(11), high_port=[high], decision=[np.array(decision, bool)])
    np.testing.assert_array_equal(decision_rows(tr)[0], np.array(decision, bool))
    res = p_switch_around_block_changes(tr, window=(-2, 2))
    # decision rows: choice [0 0 1 0 0 1 1 1], high [0 0 0 0 1 1 1 1] -> as subject 0 above
    np.testing.assert_allclose(res.p_switch.values, [1, 1, 0, 1, 0])
    np.testing.assert_allclose(res.p_high.values, [0, 1, 0, 1, 1])
    assert res.attrs["rows"] == "valid & decision"


def test_history_words():
    assert history_words(1) == ["A", "a"]
    w = history_words(3)
    assert len(w) == 2 * 4**2 and len(set(w)) == len(w) and all(x[0] in "Aa" for x in w)
    with pytest.raises(ValueError, match="n_back"):
        history_words(0)


def test_switch_by_history_by_hand():
    tr = _trials([0, 0, 1, 1, 0], [1, 0, 1, 0, 0])
    res2 = switch_by_history(tr, n_back=2)
    # t=2: "Aa" -> switch; t=3: "aB" -> stay; t=4: "Aa" -> switch
    assert res2.sel(history="Aa").n == 2 and res2.sel(history="Aa").p_switch == 1.0
    assert res2.sel(history="aB").n == 1 and res2.sel(history="aB").p_switch == 0.0
    assert int(res2.n.sum()) == 3
    assert np.isnan(res2.sel(history="AA").p_switch)
    res1 = switch_by_history(tr, n_back=1)
    np.testing.assert_array_equal(res1.n.values, [2, 2])
    np.testing.assert_allclose(res1.p_switch.values, [0.0, 1.0])  # win-stay, lose-shift here


def test_switch_by_history_letters_relative_to_first_choice():
    # a right-first window reads the same as a left-first one
    a = switch_by_history(_trials([0, 1, 1, 0], [0, 1, 1, 0]), n_back=3)
    b = switch_by_history(_trials([1, 0, 0, 1], [0, 1, 1, 0]), n_back=3)
    assert a.sel(history="aBB").n == 1 and b.sel(history="aBB").n == 1
    assert a.sel(history="aBB").p_switch == 1.0 and b.sel(history="aBB").p_switch == 1.0


def test_p_better_by_trial_in_episode_by_hand():
    # two episodes of 3 trials; the better arm is 1 in the first, 0 in the second; one tied episode
    p = np.array([[[0.2, 0.8]] * 3 + [[0.7, 0.3]] * 3 + [[0.5, 0.5]] * 3])
    choice = [[0, 1, 1, 0, 0, 1, 0, 0, 0]]
    tr = _trials(choice, np.zeros((1, 9)), trial_in_episode=[[0, 1, 2] * 3], p=p)
    res = p_better_by_trial_in_episode(tr)
    # hits: episode 1 -> 0, 1, 1; episode 2 -> 1, 1, 0
    np.testing.assert_allclose(res.p_better.values, [0.5, 1.0, 0.5])
    np.testing.assert_array_equal(res.n.values, [2, 2, 2])
    assert res.attrs["n_tied"] == 3
    np.testing.assert_allclose(res.sem.values, [np.sqrt(0.25 / 2), 0.0, np.sqrt(0.25 / 2)])


def test_two_step_stay_by_hand():
    # 4 two-step trials (8 rows): stage-1 choices 0, 0, 1, 1
    # (action 0 -> state 1 commonly, action 1 -> state 2)
    # trial 0: common, rewarded -> stay; trial 1: rare, rewarded -> switch; trial 2: common, unrewarded -> stay
    choice = [0, 1, 0, 0, 1, 1, 1, 0]
    reward = [0, 1, 0, 1, 0, 0, 0, 1]
    stage = [1, 2] * 4
    common = [1, 1, 0, 0, 1, 1, 0, 0]
    episode = [0, 0, 1, 1, 2, 2, 3, 3]
    tr = nr.make_trials([[0, 1, 0, 2, 0, 2, 0, 1]], [choice], [reward], n_actions=2, n_states=3,
                        covariates={"stage": [stage], "common": [np.array(common, bool)], "episode": [episode]})
    res = two_step_stay(tr)
    assert res.attrs["n_trials"] == 3
    assert res.p_stay.sel(outcome="rewarded", transition="common") == 1.0
    assert res.p_stay.sel(outcome="rewarded", transition="rare") == 0.0
    assert res.p_stay.sel(outcome="unrewarded", transition="common") == 1.0
    assert np.isnan(res.p_stay.sel(outcome="unrewarded", transition="rare"))
    np.testing.assert_array_equal(res.n.values, [[1, 1], [1, 0]])


def test_missing_variables_are_named():
    tr = _trials([0, 1], [0, 1])
    with pytest.raises(ValueError, match="high_port"):
        p_switch_around_block_changes(tr)
    with pytest.raises(ValueError, match="trial_in_episode"):
        p_better_by_trial_in_episode(tr)
    with pytest.raises(ValueError, match="window"):
        p_switch_around_block_changes(_trials([0, 1], [0, 1], high_port=[[0, 1]]), window=(3, 1))


def test_mouse_bandit_q_learning_switches_more_after_block_change():
    """A simulated learner's P(high port) drops at the change and recovers (sanity, not a hand value)."""
    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=20, n_trials=800, rng=0, params={"alpha": 0.5,
                                                                                                 "beta": 5.0})
    res = p_switch_around_block_changes(sim.trials)
    before = float(res.p_high.sel(offset=slice(-10, -1)).mean())
    assert before > 0.7 and float(res.p_high.sel(offset=0)) < 0.4
    assert float(res.p_high.sel(offset=20)) > 0.7
    assert float(res.p_switch.sel(offset=1)) > float(res.p_switch.sel(offset=-5))
