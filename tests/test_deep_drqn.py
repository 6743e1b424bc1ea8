"""Tests of the recurrent Q-learning agent (neurorl/agents/deep/drqn.py; deep.md §3, agents.md §4)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import neurorl as nr  # noqa: E402
from neurorl.agents.deep import common  # noqa: E402
from neurorl.agents.deep.drqn import (  # noqa: E402
    DRQN, DRQNConfig, acting_policy, kl_penalty, schedule, td_targets, update_marginal,
)

SMALL = dict(episode_length=60, n_envs=4, learn_after=4, batch_episodes=4, seq_len=30, updates_per_episode=3)
#: a budget that learns the mouse bandit in a few seconds (checked: greedy P(high port) 0.87)
LEARN = dict(episode_length=100, n_envs=8, learn_after=8, updates_per_episode=10, seq_len=50, batch_episodes=16,
             lr=3e-3, tau_start=0.2, tau_min=0.1, decay=0.99)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.fixture(scope="module")
def trained():
    """A DRQN trained briefly on the trial-level mouse bandit, and a greedy rollout of it."""
    ag = DRQN("mouse_bandit", seed=1, **LEARN)
    ag.train(25, progress=False)
    tr, lat = ag.rollout(20, 200, rng=1, greedy=True)
    return ag, tr, lat


# ------------------------------------------------------------------ rules by hand
def test_td_targets_by_hand():
    q_next = torch.tensor([[1.0, 3.0], [2.0, 0.0], [4.0, -1.0]])
    r = torch.tensor([1.0, 0.5, 0.0])
    d = torch.tensor([0.0, 1.0, 0.0])
    y = td_targets(q_next, r, d, gamma=0.9)
    np.testing.assert_allclose(y.numpy(), [1 + 0.9 * 3, 0.5, 0.9 * 4], rtol=1e-6)
    ys = td_targets(q_next, r, d, gamma=0.9, kind="soft", tau=0.5)
    soft0 = 0.5 * np.log(np.exp(1 / 0.5) + np.exp(3 / 0.5))
    soft2 = 0.5 * np.log(np.exp(4 / 0.5) + np.exp(-1 / 0.5))
    np.testing.assert_allclose(ys.numpy(), [1 + 0.9 * soft0, 0.5, 0.9 * soft2], rtol=1e-6)
    # unavailable next actions are excluded from the max
    avail = torch.tensor([[True, False], [True, True], [False, True]])
    ym = td_targets(q_next, r, d, gamma=0.9, next_avail=avail)
    np.testing.assert_allclose(ym.numpy(), [1 + 0.9 * 1, 0.5, 0.9 * -1], rtol=1e-6)
    with pytest.raises(ValueError, match="kind"):
        td_targets(q_next, r, d, gamma=0.9, kind="mean")


def test_acting_policy_penalty_and_marginal_by_hand():
    q = np.array([[1.0, 0.0]])
    pibar = np.array([[0.2, 0.8]])
    pi = acting_policy(q, tau=0.5, kl_beta=1.0, pibar=pibar)
    z = np.array([1 / 0.5 + 0.2, 0 / 0.5 + 0.8])  # softmax(Q/tau + beta * pibar): pibar, not log pibar
    np.testing.assert_allclose(pi[0], np.exp(z) / np.exp(z).sum())
    np.testing.assert_allclose(acting_policy(q, tau=2.0)[0], _softmax(np.array([0.5, 0.0])))
    np.testing.assert_allclose(acting_policy(np.array([[1.0, 2.0, 2.0]]), tau=1.0, epsilon=0.3)[0],
                               [0.1, 0.1 + 0.35, 0.1 + 0.35])
    # penalty = clip(log pi(a) - log pibar(a), -2, 2)
    pol = np.array([[0.9, 0.1], [0.9, 0.1], [0.999, 0.001], [0.01, 0.99]])
    pb = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.9, 0.1]])
    pen = kl_penalty(pol, pb, np.array([0, 1, 1, 1]))
    np.testing.assert_allclose(pen, [np.log(0.9 / 0.5), np.log(0.1 / 0.5), -2.0, 2.0])
    np.testing.assert_allclose(update_marginal([[0.5, 0.5]], [[0.9, 0.1]], 0.25), [[0.6, 0.4]])
    assert schedule(0.5, 0.1, 0.5, 0) == 0.5 and schedule(0.5, 0.1, 0.5, 1) == 0.25
    assert schedule(0.5, 0.1, 0.5, 3) == 0.1


def test_kl_rollout_matches_numpy_reference():
    """Acting policy, penalty, marginal and the inputs, re-derived step by step from the recorded Q."""
    beta, alpha, tau = 0.7, 0.3, 0.4
    ag = DRQN("mouse_bandit", seed=2, kl_beta=beta, kl_alpha=alpha, **SMALL)
    tr, lat = ag.rollout(3, 40, rng=5, tau=tau)
    q, pol, mar, pen = (lat[k].values for k in ("q", "policy", "marginal", "kl_penalty"))
    c, r = tr["choice"].values, tr["reward"].values
    n, T = c.shape
    pibar = np.full((n, 2), 0.5)
    for t in range(T):
        np.testing.assert_allclose(mar[:, t], pibar, atol=1e-12)
        expect = _softmax(q[:, t] / tau + beta * pibar)
        np.testing.assert_allclose(pol[:, t], expect, rtol=1e-10)
        p_a = expect[np.arange(n), c[:, t]]
        pb_a = pibar[np.arange(n), c[:, t]]
        np.testing.assert_allclose(pen[:, t], np.clip(np.log(p_a) - np.log(pb_a), -2, 2), rtol=1e-10)
        pibar = (1 - alpha) * pibar + alpha * expect
    # trial-level bandit: done on every row, so rpe = (r - beta * penalty) - Q[a]
    chosen = np.take_along_axis(q, c[..., None], -1)[..., 0]
    np.testing.assert_allclose(lat["rpe"].values, r - beta * pen - chosen, atol=1e-12)
    np.testing.assert_allclose(lat["chosen_value"].values, chosen)
    np.testing.assert_allclose(lat["log_prob"].values, np.log(np.take_along_axis(pol, c[..., None], -1)[..., 0]))
    # inputs: one-hot state ‖ RAW previous reward ‖ one-hot previous action; one forward pass over them
    x = np.zeros((n, T, 1 + 1 + 2), np.float32)
    x[:, :, 0] = 1.0
    x[:, 1:, 1] = r[:, :-1]
    x[:, 1:, 2:] = np.eye(2)[c[:, :-1]]
    with torch.no_grad():
        q_ref, h_ref, _ = ag.net(torch.from_numpy(x))
    np.testing.assert_allclose(lat["q"].values, q_ref.double().numpy(), atol=1e-5)
    np.testing.assert_allclose(lat["hidden"].values, h_ref.double().numpy(), atol=1e-5)


def test_decision_only_penalty_on_timestep_task():
    ag = DRQN("mouse_bandit_timestep", seed=0, kl_beta=1.0, kl_alpha=0.5, kl_decision_only=True, **SMALL)
    tr, lat = ag.rollout(2, 80, rng=0, tau=0.5)
    dec = tr["decision"].values
    pen, mar = lat["kl_penalty"].values, lat["marginal"].values
    assert dec.any() and (~dec).any()
    np.testing.assert_array_equal(pen[~dec], 0.0)
    # pibar moves only after decision rows
    moved = np.any(mar[:, 1:] != mar[:, :-1], axis=-1)
    np.testing.assert_array_equal(moved, dec[:, :-1])
    with pytest.raises(ValueError, match="decision"):
        DRQN("mouse_bandit", kl_beta=1.0, kl_alpha=0.5, kl_decision_only=True)


def test_rpe_bootstraps_within_timestep_trials():
    """rpe = r + gamma (1 - done) max_a Q_{t+1} - Q_t[a] (ITI rows are not terminal)."""
    ag = DRQN("mouse_bandit_timestep", seed=3, gamma=0.8, **SMALL)
    tr, lat = ag.rollout(2, 50, rng=1, tau=0.5)
    q, c, r, d = lat["q"].values, tr["choice"].values, tr["reward"].values, tr["done"].values
    chosen = np.take_along_axis(q, c[..., None], -1)[..., 0]
    expect = r[:, :-1] + 0.8 * np.where(d[:, :-1], 0.0, q[:, 1:].max(-1)) - chosen[:, :-1]
    np.testing.assert_allclose(lat["rpe"].values[:, :-1], expect, atol=1e-12)
    assert (~d).any()
    assert lat.attrs["q_target"] == "max"


def test_loss_against_step_by_step_unroll():
    """The replay loss equals MSE against targets from a one-step-at-a-time target unroll."""
    ag = DRQN("mouse_bandit_timestep", seed=4, gamma=0.9, **SMALL)
    ag._store(ag._play(4, 60, ag.rng, tau=0.5))
    with torch.no_grad():  # make the target network differ from the online one
        for p in ag.target_net.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=torch.Generator().manual_seed(0)))
    batch = ag.buffer.sample(3, np.random.default_rng(0), seq_len=20)
    loss, td = ag.loss(batch)
    B, L = batch["action"].shape
    expect = []
    with torch.no_grad():
        for b in range(B):
            h = ht = None
            q_sa, q_next = [], []
            for t in range(L):
                x = torch.from_numpy(batch["x"][b, t])[None, None]
                q, _, h = ag.net(x, h)
                q_sa.append(float(q[0, 0, batch["action"][b, t]]))
                _, _, ht = ag.target_net(x, ht)
                nq, _, _ = ag.target_net(torch.from_numpy(batch["next_x"][b, t])[None, None], ht)
                q_next.append(nq[0, 0].numpy().astype(float))
            y = batch["reward"][b] + 0.9 * (1 - batch["done"][b]) * np.max(q_next, axis=1)
            expect.append(np.array(q_sa) - y)
    expect = np.array(expect)
    np.testing.assert_allclose(td.numpy(), expect, atol=1e-5)
    np.testing.assert_allclose(float(loss.detach()), np.mean(expect**2), rtol=1e-5)


def test_polyak_update():
    ag = DRQN("mouse_bandit", seed=0, polyak=0.25, **{k: v for k, v in SMALL.items() if k != "learn_after"},
              learn_after=1)
    ag._store(ag._play(2, 60, ag.rng, tau=0.5))
    before_t = [p.detach().clone() for p in ag.target_net.parameters()]
    ag._update()
    for pt, p, b in zip(ag.target_net.parameters(), ag.net.parameters(), before_t):
        np.testing.assert_allclose(pt.detach().numpy(), (0.75 * b + 0.25 * p.detach()).numpy(), atol=1e-6)


# ------------------------------------------------------------------ training, seeds, checkpoints
def test_reproducible_with_seed():
    a = DRQN("mouse_bandit", seed=7, **SMALL)
    b = DRQN("mouse_bandit", seed=7, **SMALL)
    a.train(6, progress=False)
    b.train(6, progress=False)
    for (ka, pa), (kb, pb) in zip(a.net.state_dict().items(), b.net.state_dict().items()):
        assert ka == kb and torch.equal(pa, pb)
    ta, la = a.rollout(2, 30, rng=3)
    tb, lb = b.rollout(2, 30, rng=3)
    assert ta.identical(tb) and la.identical(lb)
    c = DRQN("mouse_bandit", seed=8, **SMALL)
    c.train(6, progress=False)
    assert not torch.equal(c.net.head.weight, a.net.head.weight)


def test_checkpoint_round_trip(tmp_path):
    a = DRQN("mouse_bandit", seed=5, **SMALL)
    a.train(5, progress=False)
    path = a.save(tmp_path / "drqn.pt")
    b = DRQN("mouse_bandit", seed=99, **SMALL)
    info = b.load(path)
    assert info["config"]["hidden_size"] == 10 and info["step"] == a.updates_done
    assert b.episodes_done == a.episodes_done
    for m_a, m_b in ((a.net, b.net), (a.target_net, b.target_net)):
        for pa, pb in zip(m_a.state_dict().values(), m_b.state_dict().values()):
            assert torch.equal(pa, pb)
    assert a.optimizer.state_dict()["state"].keys() == b.optimizer.state_dict()["state"].keys()
    ta, la = a.rollout(2, 30, rng=1, tau=0.3)
    tb, lb = b.rollout(2, 30, rng=1, tau=0.3)
    np.testing.assert_array_equal(ta["choice"].values, tb["choice"].values)
    np.testing.assert_array_equal(la["q"].values, lb["q"].values)


def test_tiny_training_beats_chance(trained):
    ag, tr, lat = trained
    p_high = float((tr["choice"] == tr["high_port"]).mean())
    assert p_high > 0.6  # chance 0.5; 4,000 greedy trials
    assert np.nanmean(ag.history["reward"][-5:]) > np.nanmean(ag.history["reward"][:5])


def test_latents_schema(trained):
    _, tr, lat = trained
    for name in ("q", "q_soft", "v", "v_soft", "policy", "entropy", "rpe", "chosen_value", "log_prob", "hidden"):
        assert name in lat, name
    assert lat["hidden"].dims == ("subject", "trial", "hidden_unit") and lat.sizes["hidden_unit"] == 10
    assert lat["q"].dims == ("subject", "trial", "action")
    np.testing.assert_array_equal(lat["subject"].values, tr["subject"].values)
    nr.validate_trials(tr)
    # greedy policy puts all mass on argmax Q (ties split); v = sum pi Q
    np.testing.assert_allclose(lat["v"].values, (lat["policy"] * lat["q"]).sum("action").values)


def test_fit_q_learning_to_drqn_choices(trained):
    """The DRQN's trials go through neurorl.fitting.mle.MLE unchanged (2-parameter q_learning)."""
    mle_mod = pytest.importorskip("neurorl.fitting.mle")
    _, tr, _ = trained
    est = mle_mod.MLE("q_learning", n_starts=2, rng=0).fit(tr.isel(subject=slice(0, 4)))
    alpha, beta = est.params_["alpha"].values, est.params_["beta"].values
    assert np.all((alpha > 0) & (alpha < 1)) and np.all(beta > 0)
    ll = est.result_["loglik"].values
    assert np.all(ll > 200 * np.log(0.5))  # better than chance on every subject


def test_hidden_units_as_neural_data(trained):
    """Hidden units become (trial, unit, time) neural data; Q[1] - Q[0] is linear in them."""
    dec = pytest.importorskip("neurorl.decoding")
    ag, _, _ = trained
    tr, lat = ag.rollout(1, 300, rng=2, tau=0.2)
    neural = common.latents_to_neural(lat, tr, "hidden")
    assert neural.dims == ("trial", "unit", "time") and neural.sizes["unit"] == 10
    qdiff = (lat["q"].sel(action=1) - lat["q"].sel(action=0)).isel(subject=0)
    res = dec.decode(neural, qdiff)
    assert float(res["score"]) > 0.95  # exactly linear readout up to ridge shrinkage
    X = dec.design_matrix(lat.isel(subject=0), ["chosen_value"])
    fit = dec.ols(X, neural)
    assert fit["beta"].dims[0] == "regressor" and np.all(np.isfinite(fit["r2"].values))


def test_half_triangle_memory_runs_with_resets():
    task = nr.make_task("half_triangle", memory=True, max_steps=15)
    ag = DRQN(task, seed=0, reset_on_done=True, exploration="epsilon", epsilon_start=1.0,
              **{**SMALL, "learn_after": 2, "seq_len": 15})
    ag.train(2, progress=False)
    ends = sum(int(len(ep["done"])) for ep in ag.buffer.episodes)
    assert ends == 2 * SMALL["n_envs"] * SMALL["episode_length"]  # every row stored once, split at episode ends
    assert all(ep["done"][:-1].sum() == 0 for ep in ag.buffer.episodes)
    tr, lat = ag.rollout(2, 40, rng=0)
    assert lat.sizes["hidden_unit"] == 10 and np.all(np.isfinite(lat["q"].values))


@pytest.mark.parametrize("bad", [dict(cell="lstm"), dict(target="mean"), dict(kl_beta=1.0, kl_alpha=0.0),
                                 dict(kl_beta=1.0, kl_alpha=0.5, exploration="epsilon"), dict(hidden_size=0),
                                 dict(reset_on_done=True, respect_done=False), dict(polyak=0.0)])
def test_config_validation(bad):
    with pytest.raises(ValueError, match="DRQNConfig"):
        DRQN("mouse_bandit", DRQNConfig(**bad))


def test_analysis_script_tiny_budget(tmp_path, monkeypatch):
    """analyses/train_drqn_mouse_bandit.py runs end to end at a tiny budget and writes its outputs."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "analyses" / "train_drqn_mouse_bandit.py"
    spec = importlib.util.spec_from_file_location("train_drqn_mouse_bandit", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look the module up
    spec.loader.exec_module(mod)
    args = mod.Args(seed=3, n_episodes=3, episode_length=50, n_envs=2, updates_per_episode=2, ts_episodes=2,
                    ts_episode_length=60, ht_episodes=1, eval_subjects=2, eval_trials=60, fit_tabular=False,
                    out_root=str(tmp_path), progress=False)
    res = mod.main(args)
    out = tmp_path / "train_drqn_mouse_bandit_seed3"
    for f in ("result.md", "perseveration.png", "history_words.png", "timestep.png", "half_triangle.png",
              "drqn_mouse_bandit_kl_train.pt", "trials_none.nc", "latents_kl_train.nc"):
        assert (out / f).exists(), f
    assert set(res["trial_level"]) == {"none", "kl_eval", "kl_train"}


def test_decision_only_marginal_excludes_the_wait_action():
    """With a wait action, kl_decision_only uses the marginal over the choice actions only (choice_marginal):
    checked row by row against a numpy re-computation from the recorded Q and policy."""
    task = nr.make_task("mouse_bandit_timestep", include_null_action=True)
    tau, beta, alpha = 0.5, 1.0, 0.3
    ag = DRQN(task, seed=2, kl_beta=beta, kl_alpha=alpha, kl_decision_only=True, **SMALL)
    tr, lat = ag.rollout(2, 150, rng=4, tau=tau)
    assert lat.attrs["kl_marginal"] == "choice actions (null action 2 excluded)"
    dec, c = tr["decision"].values.astype(bool), tr["choice"].values
    q, pol, mar, pen = (lat[k].values for k in ("q", "policy", "marginal", "kl_penalty"))
    assert dec.any() and (c == 2).any() and ((c != 2) & ~dec).any()  # decisions, waits, ignored ITI actions
    np.testing.assert_array_equal(mar[..., 2], 0.0)  # no marginal mass on wait, ever
    for i in range(2):
        P = np.array([0.5, 0.5])  # running marginal over left / right
        for t in range(c.shape[1]):
            np.testing.assert_allclose(mar[i, t, :2], P, atol=1e-12)
            # acting: softmax(Q / tau + kl_beta * pi0), pi0 = (P renormalised over the choices, 1 on wait)
            z = q[i, t] / tau + beta * np.r_[P / P.sum(), 1.0]
            ref = np.exp(z - z.max())
            np.testing.assert_allclose(pol[i, t], ref / ref.sum(), atol=1e-10)
            if dec[i, t]:
                pc = pol[i, t, :2] / pol[i, t, :2].sum()
                a = c[i, t]
                np.testing.assert_allclose(pen[i, t], np.clip(np.log(pc[a]) - np.log(P[a]), -2, 2), atol=1e-10)
                P = (1 - alpha) * P + alpha * pc
            else:
                assert pen[i, t] == 0.0
    # the all-actions marginal is still the rule without kl_decision_only: there wait does get mass
    ag_all = DRQN(task, seed=2, kl_beta=beta, kl_alpha=alpha, **SMALL)
    _, lat_all = ag_all.rollout(1, 60, rng=4, tau=tau)
    assert lat_all.attrs["kl_marginal"] == "all actions"
    assert (lat_all["marginal"].values[..., 2] > 0).all()
