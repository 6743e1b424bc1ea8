"""Shared machinery of the torch agents (neurorl/agents/deep/common.py)."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import neurorl as nr  # noqa: E402
from neurorl.agents.deep import common  # noqa: E402
from neurorl.schema import EnvSpec, SUBJECT, TRIAL  # noqa: E402


def test_require_torch_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install neurorl\[deep\]"):
        common.require_torch()


def test_seed_everything_reproducible():
    g1, r1 = common.seed_everything(5)
    a = (torch.rand(3), torch.rand(2, generator=g1), r1.random(2))
    g2, r2 = common.seed_everything(5)
    b = (torch.rand(3), torch.rand(2, generator=g2), r2.random(2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and np.array_equal(a[2], b[2])
    with pytest.raises(ValueError, match="non-negative int"):
        common.seed_everything(-1)


def test_torch_threads_restores():
    before = torch.get_num_threads()
    with common.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_features_default_one_hot_and_task_method():
    maze = nr.make_task("maze")
    f = common.features(maze, np.array([0, 53]))
    assert f.shape == (2, 54) and f[0, 0] == 1 and f[1, 53] == 1 and f.sum() == 2
    assert common.n_features(maze) == 54
    tri = nr.make_task("half_triangle")
    assert common.n_features(tri) == 28
    np.testing.assert_array_equal(common.features(tri, 30), tri.features(30))


def test_replay_buffer_ring_and_sampling():
    buf = common.ReplayBuffer(4, 2, 3)
    for i in range(6):  # 6 transitions into capacity 4: 2 and 3 .. 5 remain
        buf.add([i, -i], i % 3, float(i), [i + 1, 0], i == 5, [True, i % 2 == 0, True])
    assert len(buf) == 4 and buf.full
    assert sorted(buf.reward.tolist()) == [2.0, 3.0, 4.0, 5.0]
    # the slot holding reward 4 holds the rest of that transition
    k = int(np.flatnonzero(buf.reward == 4.0)[0])
    assert buf.obs[k].tolist() == [4, -4] and buf.action[k] == 1 and buf.next_avail[k].tolist() == [True, True, True]
    counts = np.zeros(6)
    rng = np.random.default_rng(0)
    for _ in range(200):
        b = buf.sample(50, rng)
        np.add.at(counts, b["reward"].astype(int), 1)
        assert b["obs"].shape == (50, 2) and b["next_avail"].shape == (50, 3)
    assert counts[:2].sum() == 0
    np.testing.assert_allclose(counts[2:] / counts.sum(), 0.25, atol=0.02)
    # batched add
    buf.add(np.zeros((3, 2)), [0, 1, 2], [7, 8, 9], np.zeros((3, 2)), [0, 0, 1])
    assert sorted(buf.reward.tolist()) == [5.0, 7.0, 8.0, 9.0]


def test_episode_buffer_padding_and_subsequences():
    eb = common.EpisodeBuffer(2)
    eb.add({"x": np.arange(3), "y": np.ones((3, 2))})
    eb.add({"x": np.arange(10, 18), "y": np.ones((8, 2))})
    eb.add({"x": np.arange(20, 25), "y": np.ones((5, 2))})  # evicts the first
    assert len(eb) == 2
    rng = np.random.default_rng(3)
    b = eb.sample(40, rng)
    assert b["x"].shape[1] == 8 and b["y"].shape[2] == 2
    lengths = b["mask"].sum(1)
    assert set(lengths.tolist()) == {5, 8}
    for row, n in zip(b["x"], lengths):
        assert row[n:].tolist() == [0] * (8 - n)
    s = eb.sample(60, rng, seq_len=4)
    assert s["x"].shape == (60, 4) and s["mask"].all()
    starts = set()
    for row in s["x"]:  # contiguous pieces of one episode
        assert np.all(np.diff(row) == 1)
        starts.add(int(row[0]))
    assert starts == {10, 11, 12, 13, 14, 20, 21}
    with pytest.raises(ValueError, match="common leading"):
        eb.add({"x": np.arange(3), "y": np.ones(4)})


def test_checkpoint_round_trip(tmp_path):
    @dataclass
    class Cfg:
        hidden: tuple = (3, 4)
        lr: float = 0.1

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    net(torch.ones(3)).sum().backward()
    opt.step()
    path = common.save_checkpoint(tmp_path / "c.pt", net, opt, Cfg(), step=7, note="x")
    net2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(net2.parameters(), lr=0.1)
    info = common.load_checkpoint(path, net2, opt2)
    assert info["step"] == 7 and info["config"] == {"hidden": [3, 4], "lr": 0.1} and info["extra"] == {"note": "x"}
    for a, b in zip(net.parameters(), net2.parameters()):
        assert torch.equal(a, b)
    assert torch.equal(opt.state_dict()["state"][0]["exp_avg"], opt2.state_dict()["state"][0]["exp_avg"])
    with pytest.raises(ValueError, match="no checkpoint"):
        common.load_checkpoint(tmp_path / "missing.pt", net2)


def test_policies_and_value_latents_hand_values():
    q = np.array([[1.0, 3.0, 3.0, 0.0]])
    pol = common.policy_epsilon_greedy(q, 0.2)
    np.testing.assert_allclose(pol, [[0.05, 0.45, 0.45, 0.05]])
    pol_av = common.policy_epsilon_greedy(q, 0.2, np.array([[True, False, True, True]]))
    np.testing.assert_allclose(pol_av, [[0.2 / 3, 0, 0.2 / 3 + 0.8, 0.2 / 3]])
    sm = common.policy_softmax(np.array([0.0, np.log(3.0)]), 1.0)
    np.testing.assert_allclose(sm, [0.25, 0.75])
    lat = common.value_latents(q, pol, 0.5)
    np.testing.assert_allclose(lat["v"], [0.05 * 1 + 0.45 * 3 * 2])
    np.testing.assert_allclose(lat["v_soft"], [0.5 * np.log(np.exp(2) + 2 * np.exp(6) + 1)])
    np.testing.assert_allclose(lat["entropy"], [-(2 * 0.05 * np.log(0.05) + 2 * 0.45 * np.log(0.45))])
    np.testing.assert_array_equal(lat["q_soft"], q)


def test_to_trials_and_latents_ragged():
    env = EnvSpec.default(3, 2)
    tr = common.to_trials([np.array([0, 1, 2]), np.array([1])], [np.array([0, 1, 1]), np.array([1])],
                          [np.array([0.0, 1, 0]), np.array([1.0])], env=env,
                          covariates={"episode": [np.array([0, 0, 1]), np.array([0])]}, subjects=["a", "b"])
    assert tr["valid"].values.tolist() == [[True] * 3, [True, False, False]]
    assert tr["trial_index"].values[1].tolist() == [0, -1, -1] and tr["choice"].values[1].tolist() == [1, -1, -1]
    lat = common.to_latents({"q": [np.zeros((3, 2)), np.ones((1, 2))], "v": [np.zeros(3), np.ones(1)],
                             "activation_0": [np.zeros((3, 5)), np.ones((1, 5))],
                             "activation_1": [np.zeros((3, 4)), np.ones((1, 4))]},
                            n_actions=2, subjects=tr[SUBJECT].values, attrs={"seed": 3, "cfg": (1, 2)})
    assert lat["q"].dims == (SUBJECT, TRIAL, "action")
    assert lat["activation_0"].dims == (SUBJECT, TRIAL, "hidden_unit") and lat.sizes["hidden_unit"] == 5
    assert lat["activation_1"].dims == (SUBJECT, TRIAL, "hidden_unit_1")
    assert np.isnan(lat["v"].values[1, 1:]).all() and lat.attrs == {"seed": 3, "cfg": "(1, 2)"}
    neural = common.latents_to_neural(lat, tr, "activation_0", subject="a")
    assert neural.dims == ("trial", "unit", "time") and neural.sizes["unit"] == 5
    with pytest.raises(ValueError, match="unknown name"):
        common.to_latents({"weird": np.zeros((1, 2, 3))}, n_actions=2)
    with pytest.raises(ValueError, match="actions"):
        common.to_latents({"q": np.zeros((1, 2, 3))}, n_actions=2)


def test_args_convention(tmp_path):
    @dataclass
    class Args:
        """Demo arguments."""

        seed: int = 1
        n_episodes: int = 10
        lr: float = 0.5
        lights: bool = False
        name: str = "a"

    args = common.parse_args(Args, ["--seed", "4", "--n-episodes", "3", "--lights", "--lr", "0.25"])
    assert args == Args(seed=4, n_episodes=3, lr=0.25, lights=True)
    d = common.output_dir("analyses/train_x.py", args.seed, root=tmp_path)
    assert d == tmp_path / "train_x_seed4" and d.is_dir()
    p = common.write_result(d / "result.md", "Title", args, {"Result": "success 1.0"})
    text = p.read_text()
    assert text.startswith("# Title") and "| seed | 4 |" in text and "## Result" in text
