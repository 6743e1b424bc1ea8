"""Kool et al. deterministic two-step task (kool_two_step) and its hybrid agent (kool_hybrid).

The agent is checked against a plain NumPy reference loop written here from Kool, Cushman & Gershman (2016):
model-free values per start state, model-based values shared through the deterministic transitions, forced second
stage. Recovery of w on simulated data is slow (marked).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp

import neurorl as nr


def test_task_structure():
    sim = nr.simulate("kool_hybrid", "kool_two_step", n_subjects=3, n_trials=200, rng=1)
    t = nr.to_table(sim.trials)
    s1, s2 = t[t.stage == 1], t[t.stage == 2]
    assert set(s1.state) == {0, 1} and set(s2.state) <= {2, 3}
    np.testing.assert_array_equal(s1.next_state.to_numpy(), 2 + s1.choice.to_numpy())  # deterministic
    np.testing.assert_array_equal(s2.state.to_numpy(), s1.next_state.to_numpy())
    assert (s2.choice == 0).all() and (s1.reward == 0).all()  # forced second stage; stage 1 pays nothing
    assert set(t.stakes) == {1.0, 5.0}
    np.testing.assert_array_equal(s1.stakes.to_numpy(), s2.stakes.to_numpy())  # one stake per episode
    np.testing.assert_array_equal(s2.reward.to_numpy(), np.round(s2.reward.to_numpy()))
    assert s2.reward.between(0, 9).all()
    env = nr.make_task("kool_two_step").env
    assert env.available.tolist() == [[True, True], [True, True], [True, False], [True, False]]
    assert nr.make_task("kool_two_step", second_stage_choice=True).env.available.all()


def _reference_loglik(p, trials):
    """Stage-1 log-likelihood of one subject by a plain loop (Kool et al. 2016's hybrid, forced second stage)."""
    alpha, beta, w, lam, stick = p["alpha"], p["beta"], p["w"], p["lam"], p["p"]
    mf = np.zeros((2, 2))  # start state x action
    q2 = np.zeros(2)  # second-stage state value (one forced action)
    prev = None
    ll = []
    st, ch, rw = trials["state"], trials["choice"], trials["reward"]
    for k in range(0, len(st), 2):
        s1, a1, s2, r = st[k], ch[k], st[k + 1] - 2, rw[k + 1]
        net = w * q2 + (1 - w) * mf[s1]  # MB value of action a = value of state 2 + a, for either start state
        logits = beta * net + (stick * (np.arange(2) == prev) if prev is not None else 0.0)
        ll.append(logits[a1] - logsumexp(logits))
        d1 = q2[s2] - mf[s1, a1]
        mf[s1, a1] += alpha * d1
        d2 = r - q2[s2]
        q2[s2] += alpha * d2
        mf[s1, a1] += alpha * lam * d2
        prev = a1
    return np.array(ll)


def test_agent_matches_reference_loop():
    params = {"alpha": 0.4, "beta": 0.8, "w": 0.6, "lam": 0.7, "p": 0.3}
    sim = nr.simulate("kool_hybrid", "kool_two_step", n_subjects=2, n_trials=120, params=params, rng=5)
    lat = nr.replay("kool_hybrid", sim.trials, params=params)
    for i in range(2):
        tr = {k: sim.trials[k].values[i] for k in ("state", "choice", "reward")}
        ref = _reference_loglik(params, tr)
        pol = lat["policy"].values[i]
        got = np.log(pol[np.arange(pol.shape[0]), tr["choice"]])
        np.testing.assert_allclose(got[0::2], ref, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got[1::2], 0.0, atol=1e-12)  # forced second stage: no choice


def test_model_based_values_are_shared_and_model_free_are_not():
    # one episode from start state 0 (action 1, rewarded), then a stage-1 row in start state 1
    import pandas as pd

    df = pd.DataFrame({"subject": 0, "state": [0, 3, 1, 2], "choice": [1, 0, 0, 0], "reward": [0, 5.0, 0, 1.0],
                       "next_state": [3, 0, 2, 0], "done": [False, True, False, True]})
    trials = nr.from_table(df, task="kool_two_step")
    agent = nr.make_agent("kool_hybrid", free_lambda=False)  # lam = 1
    lat = nr.replay(agent, trials, params={"alpha": 0.5, "beta": 1.0, "w": 0.5, "p": 0.0})
    q_mb, q_mf = lat["q_mb"].values[0], lat["q_mf"].values[0]
    np.testing.assert_allclose(q_mb[2], [0.0, 2.5])  # state 3's value 0.5 * 5, reached by action 1 from anywhere
    np.testing.assert_allclose(q_mf[2], [0.0, 0.0])  # start state 1 has learnt nothing model-free
    with pytest.raises(ValueError, match="4 states"):
        nr.replay("kool_hybrid", nr.simulate("two_step_hybrid", "two_step", n_subjects=1, n_trials=4,
                                             rng=0).trials, params={})


@pytest.mark.slow
def test_w_recovery_in_unit_interval():
    """MLE recovers w in (0, 1) from 40 subjects x 200 episodes with known w (alpha, beta, lam, p fixed at the truth
    of every subject, so that the check is about w)."""
    from neurorl.fitting import MLE

    rng = np.random.default_rng(0)
    n = 40
    w = rng.uniform(0.1, 0.9, n)
    params = {"alpha": 0.5, "beta": 0.6, "lam": 0.6, "p": 0.2}
    sim = nr.simulate("kool_hybrid", "kool_two_step", n_subjects=n, n_trials=400, params={**params, "w": w}, rng=1)
    agent = nr.make_agent("kool_hybrid", fixed=params)
    est = MLE(agent, n_starts=3, rng=0, progress=False).fit(sim.trials)
    w_hat = est.result_["estimate"].sel(param="w").values
    assert ((w_hat > 0) & (w_hat < 1)).all()
    r = np.corrcoef(w, w_hat)[0, 1]
    assert r > 0.7, r
    assert abs(np.mean(w_hat - w)) < 0.1
