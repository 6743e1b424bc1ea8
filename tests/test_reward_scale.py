"""Agents whose defaults assume a reward scale warn when the data's rewards do not match (docs/agents.md)."""

import warnings

import numpy as np
import pytest

import neurorl as nr
from neurorl.agents.reward_scale import reward_range


def _bandit(scale, n_arms=2, seed=0):
    sim = nr.simulate("q_learning", nr.make_task("bandit", n_arms=n_arms, p=tuple(np.linspace(0.2, 0.8, n_arms))),
                      n_subjects=2, n_trials=40, rng=seed)
    return sim.trials.assign(reward=sim.trials["reward"] * scale)


def _silent(agent, trials):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent.check_data(trials)


def test_reward_range_ignores_invalid_and_missing_rewards():
    tr = _bandit(1.0)
    r = tr["reward"].values.copy()
    valid = tr["valid"].values.copy()
    r[0, 0], valid[0, 0] = 99.0, False  # an invalid trial does not count
    r[1, 1] = np.nan
    lo, hi, span = reward_range(tr.assign(reward=(tr["reward"].dims, r), valid=(tr["valid"].dims, valid)))
    good = r[valid & np.isfinite(r)]
    assert (lo, hi, span) == (good.min(), good.max(), good.max() - good.min())


def test_actor_critic_warns_when_its_logit_scale_does_not_match_the_rewards():
    tr = _bandit(100.0)  # rewards 0/100: beta = 1 assumes a range of 1
    with pytest.warns(UserWarning, match=r"actor_critic: the logit scale beta = 1 .*range 100.*beta=0.01"):
        nr.make_agent("actor_critic").check_data(tr)
    _silent(nr.make_agent("actor_critic", beta=0.01), tr)
    _silent(nr.make_agent("actor_critic"), _bandit(1.0))


def test_kalman_filter_bandit_warns_off_hbayesdm_points():
    with pytest.warns(UserWarning, match=r"sigma_o = 4 .*range 1,.*multiply by 100"):
        nr.make_agent("bandit4arm2_kalman_filter").check_data(_bandit(1.0, n_arms=4))
    _silent(nr.make_agent("bandit4arm2_kalman_filter"), _bandit(100.0, n_arms=4))


def test_estimators_run_the_check():
    from neurorl.fitting.mle import MLE

    # the estimators' set-up (before any likelihood is compiled) calls the agent's check_data
    with pytest.warns(UserWarning, match="actor_critic: the logit scale"):
        MLE("actor_critic", progress=False)._setup(_bandit(100.0))
