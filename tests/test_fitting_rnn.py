"""Tests of neurorl.fitting.heldout (exact K-fold held-out log-likelihood of the RL models) and neurorl.fitting.rnn
(small GRUs fitted to choices).

References are computed here: a plain NumPy Rescorla-Wagner + softmax loop (``rw_logp``), the analytic log-normal
log-density, the Q-learning update written out for the preference change, hand sums for the table.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import neurorl as nr
from neurorl.fitting.cv import block_folds
from neurorl.fitting.heldout import (
    heldout_loglik_rl,
    heldout_table,
)
from neurorl.fitting.rnn import ChoiceRNN, preference_dynamics


def rw_logp(choice, reward, alpha, beta):
    """Per-trial log p(choice) of one subject under Q-learning (q0 = 0, 2 arms), learning on every trial."""
    q = np.zeros(2)
    out = np.zeros(len(choice))
    for t, (c, r) in enumerate(zip(choice, reward)):
        z = beta * q
        out[t] = z[c] - np.log(np.exp(z - z.max()).sum()) - z.max()
        q[c] += alpha * (r - q[c])
    return out


def ql_trials(n=3, T=150, seed=1):
    return nr.simulate("q_learning", nr.make_task("bandit", p=(0.8, 0.2)), n_subjects=n, n_trials=T,
                       params={"alpha": 0.3, "beta": 4.0}, rng=seed).trials


def switch_after_two_losses(n, T, rng, p_hi=0.8, lapse=0.03, every=40):
    """A heuristic no RL model here contains: keep an intended arm, switch it after two consecutive losses on it;
    press the other arm with probability ``lapse``. The better arm (0.8 vs 0.2) reverses every ``every`` trials."""
    choice = np.zeros((n, T), int)
    reward = np.zeros((n, T))
    for i in range(n):
        c, losses = int(rng.integers(2)), 0
        for t in range(T):
            good = (t // every) % 2
            a = c if rng.random() > lapse else 1 - c
            r = float(rng.random() < (p_hi if a == good else 1 - p_hi))
            choice[i, t], reward[i, t] = a, r
            if a == c:
                losses = 0 if r else losses + 1
                if losses >= 2:
                    c, losses = 1 - c, 0
    return nr.make_trials(np.zeros((n, T), int), choice, reward, n_actions=2)


# ------------------------------------------------------------------------------------------- held-out RL
def test_heldout_rl_matches_hand_loop_and_fits_training_trials_only():
    trials = ql_trials(3, 90)
    folds = block_folds(trials, 3)
    pw = heldout_loglik_rl("q_learning", trials, folds)
    import json

    fold_params = json.loads(pw.attrs["fold_params"])
    ch, rw = trials["choice"].values, trials["reward"].values
    for f, prm in enumerate(fold_params):
        for i in range(3):
            a, b = prm["alpha"][i], prm["beta"][i]
            ref = rw_logp(ch[i], rw[i], a, b)
            # the held-out score: the plain agent learning on every trial, scored on the fold's trials
            np.testing.assert_allclose(pw.values[i][folds[f, i]], ref[folds[f, i]], atol=1e-4)

            # the MAP estimate maximises the log posterior of the *training* trials (learning on all of them)
            def logpost(ta, tb, i=i, f=f):
                al, be = 1 / (1 + np.exp(-ta)), np.exp(tb)
                return rw_logp(ch[i], rw[i], al, be)[~folds[f, i]].sum() - (ta ** 2 + tb ** 2) / (2 * 2.5 ** 2)

            ta, tb = np.log(a / (1 - a)), np.log(b)
            best = logpost(ta, tb)
            for da, db in ((0.05, 0), (-0.05, 0), (0, 0.05), (0, -0.05)):
                assert logpost(ta + da, tb + db) <= best + 1e-6
    assert np.isnan(pw.values[~trials["valid"].values]).all()
    assert np.isfinite(pw.values).all()


def test_heldout_table_hand_numbers_and_errors():
    subj, tr = np.arange(2), np.arange(4)
    a = xr.DataArray([[-0.5, -0.7, -0.2, np.nan], [-0.1, -0.3, -0.4, -0.6]], dims=("subject", "trial"),
                     coords={"subject": subj, "trial": tr})
    b = a - 0.25
    tab = heldout_table({"a": a, "b": b})
    np.testing.assert_allclose(tab["heldout_total"].values, [-2.8, -2.8 - 7 * 0.25])
    np.testing.assert_allclose(tab["delta_total"].values, [0.0, 1.75])
    np.testing.assert_allclose(tab["se_delta"].values, [0.0, 0.0], atol=1e-12)  # a constant difference
    assert tab.attrs["best"] == "a"
    rng = np.random.default_rng(0)
    c = a + xr.DataArray(rng.normal(0, 0.5, a.shape), dims=a.dims, coords=a.coords)
    tab = heldout_table({"a": a, "c": c})
    d = (a - c).values[~np.isnan(a.values)]
    best = int(np.argmax(tab["heldout_total"].values))
    other = 1 - best
    np.testing.assert_allclose(tab["se_delta"].values[other], np.sqrt(d.size * np.var(d)))
    assert tab.attrs["best"].startswith("not distinguishable")
    with pytest.raises(ValueError, match="different trials"):
        heldout_table({"a": a, "b": b.where(b.trial < 3)})


# ------------------------------------------------------------------------------------------- RNN
def test_rnn_latents_shapes_masks_and_errors():
    trials = ql_trials(2, 40)
    rnn = ChoiceRNN(3, max_epochs=30, patience=30).fit(trials)
    lat = rnn.latents(trials)
    assert lat["hidden"].dims == ("subject", "trial", "hidden_unit") and lat.sizes["hidden_unit"] == 3
    np.testing.assert_allclose(lat["policy"].sum("action"), 1.0)
    np.testing.assert_allclose(np.log(lat["policy"].values[0, np.arange(40), trials["choice"].values[0]]),
                               lat["log_prob"].values[0], atol=1e-10)
    # hidden units go to the decoding module as recorded units, matched by trial label
    from neurorl.agents.deep.common import latents_to_neural

    neural = latents_to_neural(lat, trials, "hidden", subject=1)
    assert neural.sizes["unit"] == 3 and neural.sizes["trial"] == 40
    np.testing.assert_allclose(neural.values[:, :, 0], lat["hidden"].values[1])
    mask = np.zeros((2, 40), bool)
    mask[:, 5:9] = True
    sc = rnn.score(trials, mask)
    assert int(sc.notnull().sum()) == 8
    np.testing.assert_allclose(sc.values[mask], lat["log_prob"].values[mask])
    with pytest.raises(ValueError, match="boolean"):
        rnn.score(trials, mask.astype(int))
    with pytest.raises(ValueError, match="hidden_size"):
        ChoiceRNN(0).fit(trials)
    with pytest.raises(AttributeError, match="not fitted"):
        ChoiceRNN(2).latents(trials)
    per = ChoiceRNN(1, per_subject=True, max_epochs=20, patience=20).fit(trials)
    assert isinstance(per.params_, list) and len(per.params_) == 2
    emb = ChoiceRNN(2, subject_embedding=2, max_epochs=20, patience=20).fit(trials)
    assert emb.params_["E"].shape == (2, 2)


@pytest.mark.slow
def test_rnn_rt_head_learns_lognormal_density():
    rng = np.random.default_rng(3)
    trials = ql_trials(2, 200)
    mu, sd = -0.5, 0.3
    trials["rt"] = (("subject", "trial"), np.exp(rng.normal(mu, sd, (2, 200))))
    rnn = ChoiceRNN(2, rt=True, lr=0.05, max_epochs=800, patience=800, window=None).fit(trials)
    both = rnn.score(trials, include_rt=True).values.mean()
    choice = rnn.score(trials).values.mean()
    expected = -mu - np.log(sd) - 0.5 * np.log(2 * np.pi) - 0.5  # E[log lognormal density] at the truth
    assert abs((both - choice) - expected) < 0.08


def test_rnn_does_not_beat_the_true_rl_model_beyond_noise():
    trials = ql_trials(3, 150)
    folds = block_folds(trials, 3)
    tab = heldout_table({"q_learning": heldout_loglik_rl("q_learning", trials, folds),
                         "rnn": ChoiceRNN(2).cross_validate(trials, folds)})
    ql, rnn = tab["heldout_total"].values
    se = tab["se_delta"].values.max()
    assert rnn - ql < 2 * se, (ql, rnn, se)


def test_rnn_beats_rl_on_a_heuristic_outside_the_rl_models():
    trials = switch_after_two_losses(4, 200, np.random.default_rng(0))
    folds = block_folds(trials, 3)
    tab = heldout_table({"q_learning": heldout_loglik_rl("q_learning", trials, folds),
                         "rnn": ChoiceRNN(2).cross_validate(trials, folds)})
    ql, rnn = tab["heldout_total"].values
    se = tab["se_delta"].values.max()
    assert rnn - ql > 2 * se, (ql, rnn, se)
    assert tab.attrs["best"] == "rnn"


def test_preference_dynamics_follow_the_q_learning_update():
    sim = nr.simulate("q_learning", nr.make_task("bandit", p=(0.7, 0.3)), n_subjects=1, n_trials=60,
                      params={"alpha": 0.4, "beta": 3.0}, rng=2)
    lat = nr.replay("q_learning", sim.trials, {"alpha": 0.4, "beta": 3.0})
    df = preference_dynamics(lat, sim.trials)
    q = lat["q"].values[0]
    t = df["trial"].values
    c, r = df["choice"].values, df["reward"].values
    qc = q[t, c]
    # logit = beta (q1 - q0); only the chosen arm moves, by alpha (r - q_c); sign + for A1, - for A0
    expected = 3.0 * 0.4 * (r - qc) * np.where(c == 1, 1.0, -1.0)
    np.testing.assert_allclose(df["delta"].values, expected, atol=1e-9)
    assert set(df["condition"]) <= {"A0 rewarded", "A0 unrewarded", "A1 rewarded", "A1 unrewarded"}
