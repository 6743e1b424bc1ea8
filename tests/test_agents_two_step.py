"""Two-step hybrid agent against hand-coded transcriptions and the classic stay patterns."""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.agents.two_step import TwoStepHybrid
from neurorl.schema import EnvSpec


def _inv_logit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bern_lpmf(y, p):
    return np.log(p) if y == 1 else np.log(1.0 - p)


def reference_loglik(a1, s2, a2, r, *, alpha1, beta1, alpha2, beta2, pi, w, lam, trans_prob=0.7, hbayesdm):
    """Per-episode (stage-1, stage-2) log-likelihoods, one subject.

    ``hbayesdm=True`` transcribes the model block of hBayesDM's ``ts_par7.stan``
    (v_mf[1..6] -> index 0..5; level-2 option ``2*(s2-1)+a2``); False replaces
    its last line with Daw et al.'s eligibility term ``lam*alpha1*delta2``.
    """
    v_mf = np.zeros(6)
    v_mb = np.zeros(2)
    n = len(a1)
    ll1, ll2 = np.zeros(n), np.zeros(n)
    for t in range(n):
        v_mb[0] = trans_prob * max(v_mf[2], v_mf[3]) + (1 - trans_prob) * max(v_mf[4], v_mf[5])
        v_mb[1] = (1 - trans_prob) * max(v_mf[2], v_mf[3]) + trans_prob * max(v_mf[4], v_mf[5])
        v_h = w * v_mb + (1 - w) * v_mf[:2]
        if t == 0:
            p1 = _inv_logit(beta1 * (v_h[1] - v_h[0]))
        else:
            p1 = _inv_logit(beta1 * (v_h[1] - v_h[0]) + pi * (2 * (a1[t - 1] + 1) - 3))
        ll1[t] = _bern_lpmf(a1[t], p1)
        l2 = 2 + 2 * (s2[t] - 1) + a2[t]  # index of the chosen level-2 option in v_mf
        v_mf[a1[t]] += alpha1 * (v_mf[l2] - v_mf[a1[t]])
        if s2[t] == 2:
            p2 = _inv_logit(beta2 * (v_mf[5] - v_mf[4]))
        else:
            p2 = _inv_logit(beta2 * (v_mf[3] - v_mf[2]))
        ll2[t] = _bern_lpmf(a2[t], p2)
        delta2 = r[t] - v_mf[l2]
        v_mf[l2] += alpha2 * delta2
        if hbayesdm:
            v_mf[a1[t]] += lam * alpha1 * (r[t] - v_mf[l2])
        else:
            v_mf[a1[t]] += lam * alpha1 * delta2
    return ll1, ll2


@pytest.fixture(scope="module")
def data():
    sim = nr.simulate("two_step_hybrid", "two_step", n_subjects=3, n_trials=300, rng=8,
                      params={"w": [0.2, 0.5, 0.9], "p": [0.3, -0.2, 0.6]})
    return sim.trials


def _episodes(trials, i):
    st, ch, rw = (trials[k].values[i] for k in ("state", "choice", "reward"))
    assert np.all(st[0::2] == 0) and np.all(st[1::2] > 0)
    return ch[0::2], st[1::2], ch[1::2], rw[1::2]


def _row_loglik(agent, trials, params):
    lat = nr.replay(agent, trials, params)
    c = trials["choice"].values
    return np.log(np.take_along_axis(lat["policy"].values, c[..., None], -1)[..., 0])


PAR7 = {"alpha1": [0.3, 0.6, 0.8], "beta1": [4.0, 2.0, 6.0], "alpha2": [0.5, 0.2, 0.7],
        "beta2": [3.0, 5.0, 1.5], "p": [0.4, 1.2, -0.5], "w": [0.3, 0.7, 0.5], "lam": [0.6, 0.2, 0.9]}


@pytest.mark.parametrize("hbayesdm", [False, True])
def test_par7_matches_reference(data, hbayesdm):
    agent = TwoStepHybrid(hbayesdm_eligibility=hbayesdm)
    ll = _row_loglik(agent, data, PAR7)
    for i in range(3):
        g = {k: v[i] for k, v in PAR7.items()}
        ref1, ref2 = reference_loglik(*_episodes(data, i), alpha1=g["alpha1"], beta1=g["beta1"], alpha2=g["alpha2"],
                                      beta2=g["beta2"], pi=g["p"], w=g["w"], lam=g["lam"], hbayesdm=hbayesdm)
        np.testing.assert_allclose(ll[i, 0::2], ref1, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(ll[i, 1::2], ref2, rtol=1e-12, atol=1e-13)


def test_hbayesdm_presets_par4_par6(data):
    par6 = {k: v for k, v in PAR7.items() if k != "lam"}
    ll6 = _row_loglik(TwoStepHybrid.hbayesdm("ts_par6"), data, par6)
    par4 = {"alpha": [0.3, 0.6, 0.8], "beta": [4.0, 2.0, 6.0], "p": [0.4, 1.2, -0.5], "w": [0.3, 0.7, 0.5]}
    ll4 = _row_loglik(TwoStepHybrid.hbayesdm("ts_par4"), data, par4)
    for i in range(3):
        g = {k: v[i] for k, v in par6.items()}
        r1, r2 = reference_loglik(*_episodes(data, i), alpha1=g["alpha1"], beta1=g["beta1"], alpha2=g["alpha2"],
                                  beta2=g["beta2"], pi=g["p"], w=g["w"], lam=1.0, hbayesdm=True)
        np.testing.assert_allclose(ll6[i], np.ravel(np.column_stack([r1, r2])), rtol=1e-12, atol=1e-13)
        h = {k: v[i] for k, v in par4.items()}
        r1, r2 = reference_loglik(*_episodes(data, i), alpha1=h["alpha"], beta1=h["beta"], alpha2=h["alpha"],
                                  beta2=h["beta"], pi=h["p"], w=h["w"], lam=1.0, hbayesdm=True)
        np.testing.assert_allclose(ll4[i], np.ravel(np.column_stack([r1, r2])), rtol=1e-12, atol=1e-13)
    assert TwoStepHybrid.hbayesdm("ts_par4").param_names == ("alpha", "beta", "p", "w")
    with pytest.raises(ValueError, match="unknown hBayesDM model"):
        TwoStepHybrid.hbayesdm("ts_par5")


def _three_episodes(env):
    # episodes: (a1=0 -> s2=1, a2=1, r=1), (a1=0 -> s2=1, a2=1, r=0), then a stage-1 row
    state = [[0, 1, 0, 1, 0]]
    choice = [[0, 1, 0, 1, 1]]
    reward = [[0, 1, 0, 0, 0]]
    return nr.make_trials(state, choice, reward, next_state=[[1, 0, 1, 0, 2]],
                          done=[[False, True, False, True, False]], env=env)


# by hand: Daw 0.25 + 0.5*0.25 - 0.25*0.5 = 0.25; hBayesDM 0.125 + 0.5*0.375 - 0.25*0.25 = 0.25
@pytest.mark.parametrize("hbayesdm,q00", [(False, 0.25), (True, 0.25)])
def test_update_order_by_hand(hbayesdm, q00):
    env = EnvSpec.default(3, 2)
    tr = _three_episodes(env)
    agent = TwoStepHybrid(hbayesdm_eligibility=hbayesdm)
    lat = nr.replay(agent, tr, dict(alpha1=0.5, alpha2=0.5, lam=0.5, beta1=1.0, beta2=1.0, w=0.5, p=0.0))
    # episode 1: delta1 = 0; Q(1,1) = 0.5; delta2 = 1; Q(0,0) += .5*.5*e, e = 1 (Daw) or (1 - .5)*1 (hBayesDM)
    q00_1 = 0.25 if not hbayesdm else 0.125
    np.testing.assert_allclose(lat["q_mf"].values[0, 2], [q00_1, 0.0], atol=1e-15)
    np.testing.assert_allclose(lat["q_mf"].values[0, 3], [0.0, 0.5], atol=1e-15)
    # episode 2: delta1 = 0.5 - q00_1; Q(0,0) += 0.5 delta1; delta2 = -0.5; Q(1,1) = 0.25;
    d1 = 0.5 - q00_1
    e = -0.5 if not hbayesdm else -0.25
    np.testing.assert_allclose(lat["rpe_stage1"].values[0], [0, 1 * 0.0, 0, d1, 0], atol=1e-15)
    np.testing.assert_allclose(lat["rpe_stage2"].values[0], [0, 1.0, 0, -0.5, 0], atol=1e-15)
    np.testing.assert_allclose(lat["q_mf"].values[0, 4], [q00_1 + 0.5 * d1 + 0.25 * e, 0.0], atol=1e-15)
    assert lat["q_mf"].values[0, 4, 0] == pytest.approx(q00)
    # model-based values on the third stage-1 row: max Q(state 1) = 0.25, max Q(state 2) = 0
    np.testing.assert_allclose(lat["q_mb"].values[0, 4], [0.7 * 0.25, 0.3 * 0.25], atol=1e-15)
    np.testing.assert_allclose(lat["stage"].values[0], [1, 2, 1, 2, 1])
    # most recent stage-1 choice before the row (on a stage-2 row: this episode's a1)
    np.testing.assert_allclose(lat["prev_choice"].values[0], [-1, 0, 0, 0, 0])


def test_missed_stage1_row_updates_only_stage2():
    env = EnvSpec.default(3, 2)
    tr = nr.make_trials([[0, 1, 0, 1, 0]], [[0, 1, -1, 1, 0]], [[0, 1, 0, 1, 0]],
                        next_state=[[1, 0, 1, 0, 1]], done=[[False, True, False, True, False]], env=env)
    lat = nr.replay("two_step_hybrid", tr, dict(alpha1=0.5, alpha2=0.5, lam=1.0 - 1e-12, w=0.5))
    q = lat["q_mf"].values[0]
    # after episode 1: Q(0,0) = 0.5 (lambda ~ 1), Q(1,1) = 0.5; episode 2's stage 1 missed:
    # Q(1,1) = 0.75 and Q(0,0) unchanged
    np.testing.assert_allclose(q[4, 0], 0.5, atol=1e-9)
    np.testing.assert_allclose(lat["rpe_stage1"].values[0, 3], 0.0)
    np.testing.assert_allclose(lat["q_mf"].values[0, 3, 1], 0.5, atol=1e-12)


def _stay_table(trials):
    """P(stay) by (rewarded, common) from consecutive episodes, pooled over subjects."""
    a1 = trials["choice"].values[:, 0::2]
    r = trials["reward"].values[:, 1::2]
    common = trials["common"].values[:, 0::2].astype(bool)
    stay = a1[:, 1:] == a1[:, :-1]
    r, common = r[:, :-1] > 0, common[:, :-1]
    return {(rw, cm): stay[(r == rw) & (common == cm)].mean() for rw in (True, False) for cm in (True, False)}


@pytest.mark.parametrize("w", [1e-12, 1.0 - 1e-12])  # open bounds: (almost) pure MF / MB
def test_stay_patterns_model_free_vs_model_based(w):
    params = dict(alpha1=0.5, alpha2=0.5, beta1=5.0, beta2=5.0, lam=1.0 - 1e-9, p=0.0, w=w)
    sim = nr.simulate("two_step_hybrid", "two_step", n_subjects=200, n_trials=400, params=params, rng=21)
    s = _stay_table(sim.trials)
    reward_effect = (s[True, True] + s[True, False]) / 2 - (s[False, True] + s[False, False]) / 2
    interaction = (s[True, True] - s[True, False]) - (s[False, True] - s[False, False])
    if w < 0.5:  # model-free: main effect of reward, no reward x transition interaction
        assert reward_effect > 0.1
        assert s[True, False] - s[False, False] > 0.1  # rewarded rare still repeated more
        assert abs(interaction) < 0.05
    else:  # model-based: interaction; after a rare transition the reward effect reverses
        assert interaction > 0.2
        assert s[True, True] > s[True, False] and s[False, False] > s[False, True]
        assert abs(reward_effect) < interaction / 2


def test_requires_two_step_structure():
    agent = nr.make_agent("two_step_hybrid")
    with pytest.raises(ValueError, match="two-step structure"):
        agent.start(agent.resolve(None, 1), EnvSpec.default(1, 2), 1)
    with pytest.raises(ValueError, match="two_step"):
        nr.simulate(agent, "mouse_bandit", n_trials=4)
