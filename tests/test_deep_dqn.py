"""DQN (deep.md §1-2) on the half-triangle task: targets, loss, updates, reproducibility, checkpoints,
learning, and latents in the neurorl schema."""

from __future__ import annotations

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import neurorl as nr  # noqa: E402
from neurorl.agents.deep import common  # noqa: E402
from neurorl.agents.deep.dqn import DQN, DQNConfig, epsilon_schedule, make_mlp, td_loss, td_target  # noqa: E402
from neurorl.schema import SHARED_LATENTS, validate_trials  # noqa: E402

#: a small, quick configuration that solves the task with lights within ~150 episodes
FAST = dict(warmup_episodes=20, eps_decay=0.05, learning_starts=200, gamma=0.9, lr=3e-3, tau=0.02)


@pytest.fixture(scope="module")
def lit_task():
    return nr.make_task("half_triangle", lights=True, max_steps=50)


@pytest.fixture(scope="module")
def trained(lit_task):
    agent = DQN(**FAST)
    agent.setup(lit_task, seed=0)
    before = agent.evaluate(lit_task)
    agent.train(lit_task, 150, seed=0)
    return agent, before


def test_default_network_shape():
    net = make_mlp(28, DQNConfig().hidden, 4)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [(54, 28), (54,), (54, 54), (54,), (54, 54), (54,), (4, 54), (4,)]
    assert sum(isinstance(m, torch.nn.ReLU) for m in net) == 3


def test_td_target_hand_values():
    r = torch.tensor([1.0, 0.0, 2.0])
    nq = torch.tensor([[1.0, 3.0], [2.0, -1.0], [5.0, 0.0]])
    term = torch.tensor([0.0, 0.0, 1.0])
    np.testing.assert_allclose(td_target(r, nq, term, 0.9).numpy(), [1 + 0.9 * 3, 0.9 * 2, 2.0], rtol=1e-6)
    avail = torch.tensor([[True, False], [True, True], [False, True]])
    np.testing.assert_allclose(td_target(r, nq, term, 0.9, avail).numpy(), [1 + 0.9 * 1, 0.9 * 2, 2.0], rtol=1e-6)


def test_td_loss_regresses_taken_action():
    q = torch.tensor([[0.0, 1.0], [1.0, 4.0], [2.0, 2.0]], requires_grad=True)
    a = torch.tensor([1, 0, 0])
    y = torch.tensor([3.7, 1.8, 2.0])
    # errors -2.7, -0.8, 0 (row 1 takes action 0 although action 1 has the larger value)
    huber = td_loss(q, a, y, "huber", 1.0)
    np.testing.assert_allclose(huber.item(), ((2.7 - 0.5) + 0.5 * 0.8 ** 2 + 0) / 3, rtol=1e-6)
    huber2 = td_loss(q, a, y, "huber", 2.0)
    np.testing.assert_allclose(huber2.item(), (2 * (2.7 - 1.0) + 0.5 * 0.8 ** 2) / 3, rtol=1e-6)
    mse = td_loss(q, a, y, "mse")
    np.testing.assert_allclose(mse.item(), (2.7 ** 2 + 0.8 ** 2) / 3, rtol=1e-6)
    mse.backward()
    grad = q.grad.numpy()
    np.testing.assert_allclose(grad, [[0, 2 * -2.7 / 3], [2 * -0.8 / 3, 0], [0, 0]], rtol=1e-6, atol=1e-7)


def test_epsilon_schedule_hand_values():
    cfg = DQNConfig(eps_start=1.0, eps_end=0.1, warmup_episodes=100, eps_decay=0.01)
    eps = epsilon_schedule(np.array([0, 99, 100, 200]), cfg)
    np.testing.assert_allclose(eps, [1.0, 1.0, 1.0, 0.1 + 0.9 * np.exp(-1.0)])


def _filled(task, **kw):
    agent = DQN(batch_size=4, buffer_size=16, learning_starts=4, **kw).setup(task, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(8):
        s, s2 = rng.integers(0, 75, size=2)
        agent.buffer_.add(task.features(s), int(rng.integers(4)), float(rng.integers(2)), task.features(s2), 0.0)
    return agent


def test_polyak_and_hard_target_updates():
    task = nr.make_task("half_triangle")
    agent = _filled(task, tau=0.25)
    old_target = [p.detach().clone() for p in agent.target_net_.parameters()]
    agent._update()
    for pt, po, p in zip(agent.target_net_.parameters(), old_target, agent.net_.parameters()):
        torch.testing.assert_close(pt, 0.75 * po + 0.25 * p.detach(), rtol=1e-6, atol=1e-7)
    hard = _filled(task, target_period=2)
    first = [p.detach().clone() for p in hard.target_net_.parameters()]
    hard._update()
    for pt, p0 in zip(hard.target_net_.parameters(), first):
        assert torch.equal(pt, p0)  # unchanged after one update
    hard._update()
    for pt, p in zip(hard.target_net_.parameters(), hard.net_.parameters()):
        assert torch.equal(pt, p)  # copied after the second


def test_update_matches_manual_gradient_step():
    """One update equals an AdamW step on the hand-built Huber loss of the sampled batch."""
    task = nr.make_task("half_triangle")
    agent = _filled(task, grad_clip=None)
    ref_net = make_mlp(28, agent.config.hidden, 4)
    ref_net.load_state_dict(agent.net_.state_dict())
    ref_opt = torch.optim.AdamW(ref_net.parameters(), lr=agent.config.lr, weight_decay=0.01, amsgrad=True)
    batch = agent.buffer_.sample(4, np.random.default_rng(agent.seed_))  # same draw as the agent's rng
    with torch.no_grad():
        nq = agent.target_net_(torch.from_numpy(batch["next_obs"])).numpy()
    y = batch["reward"] + 0.99 * (1 - batch["done"]) * nq.max(1)
    q = ref_net(torch.from_numpy(batch["obs"]))
    err = q[torch.arange(4), torch.from_numpy(batch["action"])] - torch.from_numpy(y.astype(np.float32))
    loss = torch.where(err.abs() < 1, 0.5 * err ** 2, err.abs() - 0.5).mean()
    ref_opt.zero_grad()
    loss.backward()
    ref_opt.step()
    got = agent._update()
    np.testing.assert_allclose(got, loss.item(), rtol=1e-5)
    for a, b in zip(agent.net_.parameters(), ref_net.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_same_seed_same_run():
    task = nr.make_task("half_triangle", max_steps=30)
    cfg = dict(learning_starts=50, warmup_episodes=5)
    a, b, c = DQN(**cfg), DQN(**cfg), DQN(**cfg)
    ha, hb = a.train(task, 12, seed=3), b.train(task, 12, seed=3)
    c.train(task, 12, seed=4)
    assert ha.identical(hb)
    assert a.n_updates_ > 0
    for pa, pb in zip(a.net_.parameters(), b.net_.parameters()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.net_.parameters(), c.net_.parameters()))


def test_checkpoint_round_trip(tmp_path):
    task = nr.make_task("half_triangle", max_steps=30)
    agent = DQN(learning_starts=40, warmup_episodes=2, hidden=(16, 8))
    agent.train(task, 6, seed=2)
    path = agent.save(tmp_path / "dqn.pt")
    back = DQN.load(path)
    assert back.config == agent.config and back.config.hidden == (16, 8)
    assert back.n_updates_ == agent.n_updates_ > 0 and back.seed_ == 2
    for m1, m2 in ((agent.net_, back.net_), (agent.target_net_, back.target_net_)):
        for p1, p2 in zip(m1.parameters(), m2.parameters()):
            assert torch.equal(p1, p2)
    s1, s2 = agent.optimizer_.state_dict()["state"], back.optimizer_.state_dict()["state"]
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)
    states = np.arange(75)
    np.testing.assert_array_equal(agent.q_values(task, states), back.q_values(task, states))


def test_short_training_learns_optimal_policy(trained, lit_task):
    agent, before = trained
    after = agent.evaluate(lit_task)
    assert before.attrs["success_rate"] < 0.3  # untrained greedy network rarely gets the reward
    assert after.attrs["success_rate"] >= 0.9
    ok = after["success"].values
    # successful greedy episodes take (close to) the shortest path
    assert after.attrs["mean_excess_steps"] <= 0.5
    np.testing.assert_array_equal(after["excess_steps"].values[ok] >= 0, True)
    hist = agent.history_
    assert hist["success"].values[-30:].mean() > hist["success"].values[:20].mean()


def test_evaluate_without_lights_reports_aliasing():
    task = nr.make_task("half_triangle")
    ev = DQN(hidden=(8,)).setup(task, seed=0).evaluate(task)
    assert ev.sizes["episode"] == 60 and int(ev["aliased"].sum()) == 20  # 5 diagonal tiles x 2 triangles x 2 odors
    np.testing.assert_array_equal(ev["shortest"].values, task.shortest_path(ev["tile"], ev["triangle"], ev["odor"]))


def test_latents_schema_and_values(trained, lit_task):
    agent, _ = trained
    trials, lat = agent.latents(lit_task, n_episodes=8, seed=1, epsilon=0.1)
    validate_trials(trials)
    T = trials.sizes["trial"]
    assert int(trials["done"].sum()) == 8 and trials["done"].values[0, -1]
    for name in SHARED_LATENTS + ("log_prob", "activation_0", "activation_1", "activation_2"):
        assert name in lat, name
    assert lat["q"].dims == ("subject", "trial", "action")
    assert lat["activation_2"].dims == ("subject", "trial", "hidden_unit") and lat.sizes["hidden_unit"] == 54
    q = lat["q"].values[0]
    choice, reward = trials["choice"].values[0], trials["reward"].values[0]
    # q equals a plain numpy forward pass through the weights
    sd = {k: v.double().numpy() for k, v in agent.net_.state_dict().items()}
    h = lit_task.features(trials["state"].values[0]).astype(float)
    for i in (0, 2, 4):
        h = np.maximum(h @ sd[f"{i}.weight"].T + sd[f"{i}.bias"], 0)
        np.testing.assert_allclose(lat[f"activation_{i // 2}"].values[0], h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(q, h @ sd["6.weight"].T + sd["6.bias"], rtol=1e-5, atol=1e-5)
    # ε-greedy policy, v, v_soft, entropy, chosen value by hand
    best = q.argmax(1)
    pol = np.full((T, 4), 0.1 / 4)
    pol[np.arange(T), best] += 0.9
    np.testing.assert_allclose(lat["policy"].values[0], pol, atol=1e-12)
    np.testing.assert_allclose(lat["v"].values[0], (pol * q).sum(1))
    np.testing.assert_allclose(lat["v_soft"].values[0], np.log(np.exp(q).sum(1)))
    np.testing.assert_allclose(lat["entropy"].values[0], -(pol * np.log(pol)).sum(1))
    np.testing.assert_allclose(lat["chosen_value"].values[0], q[np.arange(T), choice])
    np.testing.assert_allclose(lat["log_prob"].values[0], np.log(pol[np.arange(T), choice]))
    # rpe: within an episode the next trial's q is the next state's q
    done = trials["done"].values[0]
    rpe = lat["rpe"].values[0]
    inner = np.flatnonzero(~done[:-1])
    np.testing.assert_allclose(rpe[inner], reward[inner] + 0.9 * q[inner + 1].max(1) - q[inner, choice[inner]],
                               rtol=1e-6, atol=1e-9)
    ends = np.flatnonzero(done & ~trials["truncated"].values[0])
    np.testing.assert_allclose(rpe[ends], reward[ends] - q[ends, choice[ends]], rtol=1e-6, atol=1e-9)


def test_latents_feed_decoding_and_replay(trained, lit_task):
    from neurorl.decoding.neural import make_neural

    agent, _ = trained
    trials, lat = agent.latents(lit_task, n_episodes=6, seed=2)
    neural = common.latents_to_neural(lat, trials, "activation_1")
    assert neural.dims == ("trial", "unit", "time") and neural.sizes["unit"] == 54
    np.testing.assert_array_equal(neural["trial"].values, trials["trial_index"].values[0])
    np.testing.assert_allclose(neural.values[:, :, 0], lat["activation_1"].values[0])
    direct = make_neural(lat["activation_0"].values[0], trials=trials["trial_index"].values[0], kind="rate")
    assert direct.sizes["trial"] == trials.sizes["trial"]
    # a tabular Q-learner replays the DQN's choices on the same trials
    rep = nr.replay("q_learning", trials)
    assert rep["q"].shape == lat["q"].shape and np.all(np.isfinite(rep["policy"].values))
    # first visit: tabular values start at zero, so its first policy is uniform
    np.testing.assert_allclose(rep["policy"].values[0, 0], 0.25)


def test_training_script_tiny_budget(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "analyses" / "train_dqn_half_triangle.py"
    spec = importlib.util.spec_from_file_location("train_dqn_half_triangle", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    args = mod.Args(seed=3, n_episodes=6, max_steps=20, memory=False, warmup_episodes=2, learning_starts=32,
                    out_root=str(tmp_path), progress=False)
    res = mod.main(args)
    out = tmp_path / "train_dqn_half_triangle_seed3"
    assert set(res) == {"plain", "lights"}
    for name in ("result.md", "training_curves.png", "evaluation_plain.csv", "dqn_lights.pt"):
        assert (out / name).exists(), name
    assert "| seed | 3 |" in (out / "result.md").read_text()
    assert 0.0 <= res["lights"]["success_rate"] <= 1.0


def test_tabular_model_fits_dqn_choices(trained, lit_task):
    """Q-learning fitted by maximum likelihood to the DQN's choices beats the uniform policy."""
    mle_mod = pytest.importorskip("neurorl.fitting.mle")
    agent, _ = trained
    trials, _ = agent.latents(lit_task, n_episodes=40, seed=4, epsilon=0.1)
    fit = mle_mod.MLE("q_learning", n_starts=2, rng=0).fit(trials)
    ll = float(fit.result_["loglik"].values[0])
    n = int(trials["valid"].sum())
    assert np.isfinite(ll) and ll > n * np.log(0.25) + 10
    rep = nr.replay("q_learning", trials, fit.params_)
    chosen = np.take_along_axis(rep["policy"].values, trials["choice"].values[..., None], -1)[..., 0]
    np.testing.assert_allclose(np.log(chosen).sum(), ll, rtol=1e-6)
