"""Tests of the A2C-LSTM meta-RL agent (neurorl/agents/deep/a2c.py; deep.md §4)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import neurorl as nr  # noqa: E402
from neurorl.agents.deep.a2c import A2C, A2CConfig, A2CLSTMNetwork, a2c_loss, discounted_returns  # noqa: E402
from neurorl.agents.deep.a2c import _NumpyStepper  # noqa: E402
from neurorl.behaviour import p_better_by_trial_in_episode, two_step_stay  # noqa: E402

TINY = dict(n_envs=4, episode_length=12, hidden_size=8)


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


# ------------------------------------------------------------------ loss terms by hand
def test_a2c_loss_terms_by_hand():
    rng = np.random.default_rng(0)
    T, B, A = 4, 2, 3
    logits = rng.normal(size=(T, B, A))
    values = rng.normal(size=(T, B))
    actions = np.array([[0, 2], [1, 1], [2, 0], [0, 0]])
    rewards = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]])
    dones = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    gamma, bv, be = 0.9, 0.05, 0.05
    # hand: returns backwards from R_T = 0 (terminal), cut after done rows
    R = np.zeros((T, B))
    nxt = np.zeros(B)
    for t in range(T - 1, -1, -1):
        nxt = rewards[t] + gamma * (1 - dones[t]) * nxt
        R[t] = nxt
    np.testing.assert_allclose(R[:, 0], [1 + 0.81, 0.9, 1.0, 0.0])
    np.testing.assert_allclose(R[:, 1], [0.9, 1.0, 1 + 0.9, 1.0])
    adv = R - values
    lp = _log_softmax(logits)
    lpa = np.take_along_axis(lp, actions[..., None], -1)[..., 0]
    H = -(np.exp(lp) * lp).sum(-1)
    pol = -(lpa * adv).sum() / B
    val = 0.5 * ((R - values) ** 2).sum() / B
    ent = H.sum() / B
    lg = torch.tensor(logits, requires_grad=True)
    v = torch.tensor(values, requires_grad=True)
    out = a2c_loss(lg, v, torch.tensor(actions), torch.tensor(rewards), torch.tensor(dones), gamma=gamma,
                   beta_v=bv, beta_e=be)
    np.testing.assert_allclose(out["returns"].numpy(), R, rtol=1e-12)
    np.testing.assert_allclose(out["advantages"].numpy(), adv, rtol=1e-12)
    np.testing.assert_allclose(out["entropy_t"].detach().numpy(), H, rtol=1e-12)
    np.testing.assert_allclose(float(out["policy_loss"].detach()), pol, rtol=1e-12)
    np.testing.assert_allclose(float(out["value_loss"].detach()), val, rtol=1e-12)
    np.testing.assert_allclose(float(out["entropy"].detach()), ent, rtol=1e-12)
    np.testing.assert_allclose(float(out["loss"].detach()), pol + bv * val - be * ent, rtol=1e-12)
    # gradients: the advantage is detached in the actor term, so d loss / d V = beta_v (V - R) / B only
    out["loss"].backward()
    np.testing.assert_allclose(v.grad.numpy(), bv * (values - R) / B, rtol=1e-10)
    # d loss / d logits = -A (onehot(a) - pi) / B - beta_e dH/dlogits, dH/dl = -pi (log pi + H)
    pi = np.exp(lp)
    onehot = np.eye(A)[actions]
    dH = -pi * (lp + H[..., None])
    np.testing.assert_allclose(lg.grad.numpy(), (-adv[..., None] * (onehot - pi) - be * dH) / B, rtol=1e-9,
                               atol=1e-12)


def test_bootstrap_and_masked_actions():
    r = torch.tensor([[1.0], [0.0]])
    d = torch.zeros(2, 1)
    np.testing.assert_allclose(discounted_returns(r, d, 0.5, bootstrap=torch.tensor([4.0])).numpy()[:, 0],
                               [1 + 0.5 * 0.5 * 4, 0.5 * 4])
    logits = torch.tensor([[[0.3, 9.0, -0.2]]], dtype=torch.float64)
    avail = torch.tensor([[[True, False, True]]])
    out = a2c_loss(logits, torch.zeros(1, 1, dtype=torch.float64), torch.tensor([[0]]),
                   torch.ones(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64), gamma=0.9,
                   beta_v=0.0, beta_e=1.0, avail=avail)
    p = np.exp([0.3, -0.2]) / np.exp([0.3, -0.2]).sum()
    np.testing.assert_allclose(float(out["entropy"].detach()), -(p * np.log(p)).sum(), rtol=1e-12)
    np.testing.assert_allclose(float(out["log_prob"][0, 0].detach()), np.log(p[0]), rtol=1e-12)


# ------------------------------------------------------------------ fast paths = the row-by-row network
def test_sequence_and_numpy_stepper_match_the_cell():
    torch.manual_seed(0)
    net = A2CLSTMNetwork(6, 2, 8).double()
    x = torch.randn(7, 3, 6, dtype=torch.float64)
    h0, c0 = torch.randn(3, 8, dtype=torch.float64), torch.randn(3, 8, dtype=torch.float64)
    logits, values, hidden, (hT, cT) = net.sequence(x, (h0, c0))
    # reference: the LSTM equations by hand (gates i, f, g, o) and the two heads, row after row
    W_ih, W_hh = net.cell.weight_ih.detach().numpy(), net.cell.weight_hh.detach().numpy()
    b = (net.cell.bias_ih + net.cell.bias_hh).detach().numpy()

    def sig(z):
        return 1.0 / (1.0 + np.exp(-z))

    h, c = h0.numpy(), c0.numpy()
    for t in range(7):
        z = x[t].numpy() @ W_ih.T + h @ W_hh.T + b
        i, f, g, o = np.split(z, 4, axis=1)
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        np.testing.assert_allclose(hidden[t].detach().numpy(), h, rtol=1e-10, atol=1e-12)
        lg = h @ net.policy.weight.detach().numpy().T + net.policy.bias.detach().numpy()
        np.testing.assert_allclose(logits[t].detach().numpy(), lg, rtol=1e-10, atol=1e-12)
        v = h @ net.value.weight.detach().numpy()[0] + net.value.bias.detach().numpy()[0]
        np.testing.assert_allclose(values[t].detach().numpy(), v, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hT.detach().numpy(), h, rtol=1e-10)
    np.testing.assert_allclose(cT.detach().numpy(), c, rtol=1e-10)
    # the float32 NumPy stepper used for rows without gradients: the same function
    net32 = A2CLSTMNetwork(6, 2, 8)
    step = _NumpyStepper(net32)
    xs = x.float().numpy()
    hh = cc = np.zeros((3, 8), np.float32)
    th = tc = torch.zeros(3, 8)
    for t in range(7):
        lg, v, (hh, cc) = step(xs[t], (hh, cc))
        tl, tv, (th, tc) = net32(torch.from_numpy(xs[t]), (th, tc))
        np.testing.assert_allclose(lg, tl.detach().numpy(), atol=1e-6)
        np.testing.assert_allclose(v, tv.detach().numpy(), atol=1e-6)
        np.testing.assert_allclose(cc, tc.detach().numpy(), atol=1e-6)


def test_training_update_equals_the_row_by_row_graph():
    """Playing without a graph then re-running the recorded inputs gives the loss and gradient of the graph path."""
    ag = A2C("wang_two_step", seed=5, n_envs=3, episode_length=16, hidden_size=8)
    fast = ag._episode(3, np.random.default_rng(9))
    slow = ag._episode(3, np.random.default_rng(9), graph=True)
    np.testing.assert_array_equal(np.stack(fast["action"]), np.stack(slow["action"]))
    zeros = torch.zeros(3, 8)
    fast["logits"], fast["values"], _, _ = ag.net.sequence(torch.from_numpy(np.stack(fast["x"])), (zeros, zeros))
    grads = []
    for rec in (fast, slow):
        ag.net.zero_grad()
        terms = ag._loss_of(rec)
        terms["loss"].backward()
        grads.append([p.grad.clone() for p in ag.net.parameters()])
        if rec is fast:
            loss_fast = float(terms["loss"].detach())
    assert abs(loss_fast - float(ag._loss_of(slow)["loss"].detach())) < 1e-4
    for gf, gs in zip(*grads):
        np.testing.assert_allclose(gf.numpy(), gs.numpy(), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------ recurrent state, latents
def test_rollout_carries_lstm_state_and_resets_between_episodes():
    ag = A2C("wang_bandit", seed=0, **TINY)
    tr, lat = ag.rollout(3, 2, rng=1)
    c, r = tr["choice"].values, tr["reward"].values
    step = tr["meta_step"].values
    n, T = c.shape
    assert T == 2 * TINY["episode_length"]
    np.testing.assert_array_equal(tr["meta_episode"].values[0], np.repeat([0, 1], TINY["episode_length"]))
    # manual unroll: inputs one_hot(state) ‖ one_hot(prev action) ‖ prev reward, zeros at each episode start
    h = torch.zeros(n, 8)
    cc = torch.zeros(n, 8)
    hs, cs = [], []
    with torch.no_grad():
        for t in range(T):
            x = np.zeros((n, 4), np.float32)
            x[:, 0] = 1.0
            if step[0, t] == 0:
                h, cc = torch.zeros(n, 8), torch.zeros(n, 8)
            else:
                x[np.arange(n), 1 + c[:, t - 1]] = 1.0
                x[:, 3] = r[:, t - 1]
            h, cc = ag.net.cell(torch.from_numpy(x), (h, cc))
            hs.append(h.double().numpy())
            cs.append(cc.double().numpy())
    np.testing.assert_allclose(lat["hidden"].values, np.stack(hs, 1), atol=1e-6)
    np.testing.assert_allclose(lat["cell"].values, np.stack(cs, 1), atol=1e-6)


def test_latent_relations_by_hand():
    ag = A2C("wang_bandit", seed=3, gamma=0.8, **TINY)
    tr, lat = ag.rollout(2, 2, rng=0)
    q, v, pi = lat["q"].values, lat["v"].values, lat["policy"].values
    np.testing.assert_allclose((pi * q).sum(-1), v, atol=1e-12)  # sum_a pi q = v
    e = np.exp(q - q.max(-1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(-1, keepdims=True), pi, atol=1e-12)  # softmax(q) = pi
    H = -(pi * np.log(pi)).sum(-1)
    np.testing.assert_allclose(lat["entropy"].values, H, atol=1e-12)
    np.testing.assert_allclose(lat["v_soft"].values, v + H, atol=1e-12)
    np.testing.assert_allclose(lat["chosen_value"].values, v)
    c, r = tr["choice"].values, tr["reward"].values
    last = tr["meta_step"].values == TINY["episode_length"] - 1
    v_next = np.concatenate([v[:, 1:], np.zeros((2, 1))], axis=1)
    np.testing.assert_allclose(lat["rpe"].values, r + 0.8 * np.where(last, 0.0, v_next) - v, atol=1e-12)
    np.testing.assert_allclose(lat["log_prob"].values, np.log(np.take_along_axis(pi, c[..., None], -1)[..., 0]),
                               atol=1e-12)
    assert lat["hidden"].dims == ("subject", "trial", "hidden_unit") and lat["cell"].sizes["hidden_unit"] == 8
    assert lat.attrs["frozen_weights"]


# ------------------------------------------------------------------ training, seeds, checkpoints
def test_reproducible_with_seed():
    a, b = A2C("wang_bandit", seed=11, **TINY), A2C("wang_bandit", seed=11, **TINY)
    a.train(4, progress=False)
    b.train(4, progress=False)
    for pa, pb in zip(a.net.state_dict().values(), b.net.state_dict().values()):
        assert torch.equal(pa, pb)
    ta, la = a.rollout(2, 1, rng=0)
    tb, lb = b.rollout(2, 1, rng=0)
    assert ta.identical(tb) and la.identical(lb)
    assert a.history["loss"] == b.history["loss"]
    c = A2C("wang_bandit", seed=12, **TINY)
    assert not torch.equal(c.net.policy.weight, A2C("wang_bandit", seed=11, **TINY).net.policy.weight)


def test_checkpoint_round_trip(tmp_path):
    a = A2C("wang_bandit", seed=2, **TINY)
    a.train(3, progress=False)
    path = a.save(tmp_path / "a2c.pt")
    b = A2C("wang_bandit", seed=50, **TINY)
    info = b.load(path)
    assert info["step"] == 3 and info["config"]["hidden_size"] == 8 and b.updates_done == 3
    for pa, pb in zip(a.net.state_dict().values(), b.net.state_dict().values()):
        assert torch.equal(pa, pb)
    # the optimizer state came back too: one more identical update gives identical weights
    a.rng, b.rng = np.random.default_rng(0), np.random.default_rng(0)
    a.train(1, progress=False)
    b.train(1, progress=False)
    for pa, pb in zip(a.net.state_dict().values(), b.net.state_dict().values()):
        assert torch.equal(pa, pb)


def test_tiny_training_beats_chance_within_episodes():
    """0.9/0.1 episodes of 20 trials: a few seconds of A2C learn to find the better arm (frozen weights)."""
    task = nr.make_task("wang_bandit", episode_length=20, prob_sets=[(0.9, 0.1)])
    ag = A2C(task, seed=1, n_envs=32, lr=1e-3, episode_length=20)
    ag.train(250, progress=False)
    tr, _ = ag.rollout(100, 2, rng=0)
    curve = p_better_by_trial_in_episode(tr)
    assert float(curve.p_better.isel(trial_in_episode=0)) < 0.65  # no information on trial 0
    late = float(curve.p_better.isel(trial_in_episode=slice(10, 20)).mean())
    assert late > 0.75  # chance 0.5; 2,000 trials
    assert late > float(curve.p_better.isel(trial_in_episode=0)) + 0.15


def test_two_step_meta_episodes():
    ag = A2C("two_step", seed=0, n_envs=4, episode_length=20, hidden_size=8)
    ag.train(2, progress=False)
    tr, lat = ag.rollout(3, 2, rng=0)
    assert ag.n_inputs == 3 + 2 + 1
    np.testing.assert_array_equal(tr["stage"].values[0, :4], [1, 2, 1, 2])
    res = two_step_stay(tr)
    assert res.attrs["n_trials"] == 3 * 2 * (10 - 1)
    assert np.all(np.isfinite(lat["rpe"].values))


@pytest.mark.parametrize("bad", [dict(hidden_size=0), dict(gamma=1.5), dict(lr=0.0), dict(beta_e=-1.0),
                                 dict(reset_on_done=True), dict(rmsprop_alpha=1.0)])
def test_config_validation(bad):
    with pytest.raises(ValueError, match="A2CConfig"):
        A2C("wang_bandit", A2CConfig(**bad))


def test_rollout_on_another_task_with_same_inputs():
    ag = A2C("wang_bandit", seed=0, **TINY)
    fixed = nr.make_task("wang_bandit", episode_length=TINY["episode_length"], prob_sets=[(0.9, 0.1)])
    tr, _ = ag.rollout(2, 1, rng=0, task=fixed)
    np.testing.assert_allclose(np.sort(tr["p"].values, axis=-1), np.broadcast_to([0.1, 0.9], tr["p"].shape))
    with pytest.raises(ValueError, match="features"):
        ag.rollout(1, 1, task="two_step")


def test_analysis_script_tiny_budget(tmp_path, monkeypatch):
    """analyses/train_a2c_meta_rl.py runs end to end at a tiny budget and writes its outputs."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "analyses" / "train_a2c_meta_rl.py"
    spec = importlib.util.spec_from_file_location("train_a2c_meta_rl", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look the module up
    spec.loader.exec_module(mod)
    args = mod.Args(seed=4, hidden_size=8, n_envs=2, n_updates=2, episode_length=20, eval_episodes=8, ts_updates=1,
                    ts_n_envs=2, ts_trials=10, out_root=str(tmp_path), progress=False)
    res = mod.main(args)
    out = tmp_path / "train_a2c_meta_rl_seed4"
    for f in ("result.md", "within_episode.png", "two_step_stay.png", "two_step_within_episode.png", "training.png",
              "a2c_wang_bandit.pt", "trials_wang_bandit.nc", "latents_two_step.nc"):
        assert (out / f).exists(), f
    assert set(res["fixed_sets"]) == {"0.9/0.1", "0.75/0.25", "0.6/0.4"}
    assert set(res["two_step"]["trained"]) >= {"rewarded/common", "rewarded/rare", "unrewarded/common",
                                               "unrewarded/rare", "reward_per_trial", "interaction"}
    assert "wang_two_step" in (out / "result.md").read_text()
    # the within-episode helpers on a hand-made table (2 subjects, 6 trials, one meta-episode each)
    tab = {"better": np.array([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]),
           "choice": np.array([[0, 1, 0, 1, 1, 0], [1, 1, 0, 1, 1, 0]]),
           "trial": np.tile(np.arange(6), (2, 1)), "meta_episode": np.zeros((2, 6), int)}
    _, p, _ = mod.p_better_by_trial(tab)
    np.testing.assert_allclose(p, [1.0, 0.5, 0.0, 1.0, 0.5, 0.5])
    _, ps, n_sw = mod.p_better_around_swaps(tab, before=1, after=1)
    # swaps at trial 2 (subject 0) and 4 (subject 1); lag -1: hits (1 != 0 -> 0), (1 == 1 -> 1); lag 0: 0, 0;
    # lag +1: (1 == 1), (0 == 0)
    assert n_sw == 2
    np.testing.assert_allclose(ps, [0.5, 0.0, 1.0])
