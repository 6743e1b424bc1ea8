"""Tests of neurorl.agents.deep.multiregion: shapes, input routing, switchable inter-region pathways (by autograd:
a pathway that is off carries no derivative), and a short training run that learns the mouse bandit."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import neurorl as nr
from neurorl.agents.deep.multiregion import (
    MultiRegionDRQN,
    MultiRegionQNetwork,
    half_triangle_routes,
    region_hidden,
)

ROUTES = {"olfactory": [0, 1], "spatial": [2, 3, 4]}


def _net(**kw):
    torch.manual_seed(0)
    return MultiRegionQNetwork(5, 3, ROUTES, {"olfactory": 4, "spatial": 6}, **kw)


def _dependence(net, src_features, region):
    """Largest |d hidden[region, t=L-1] / d x[:, :, src_features]| over all earlier rows."""
    x = torch.randn(2, 6, 5, requires_grad=True)
    _, hs, _ = net(x)
    out = hs[:, -1, net.region_units[region]].sum()
    (g,) = torch.autograd.grad(out, x)
    return float(g[..., src_features].abs().max())


def test_shapes_and_region_slices():
    net = _net()
    q, hs, hn = net(torch.randn(3, 7, 5))
    assert q.shape == (3, 7, 3) and hs.shape == (3, 7, 10) and hn.shape == (1, 3, 10)
    assert net.region_units == {"olfactory": slice(0, 4), "spatial": slice(4, 10)}
    # continuing from the last hidden state equals running the whole sequence at once
    x = torch.randn(2, 8, 5)
    q_all, _, _ = net(x)
    _, _, h = net(x[:, :5])
    q_rest, _, _ = net(x[:, 5:], h)
    torch.testing.assert_close(q_all[:, 5:], q_rest)
    with pytest.raises(ValueError, match="route of region"):
        MultiRegionQNetwork(5, 3, {"a": [0, 9]}, 4)
    with pytest.raises(ValueError, match="readout"):
        MultiRegionQNetwork(5, 3, ROUTES, 4, readout=["motor"])


def test_pathways_switch_off_by_autograd():
    both = _net()
    # with both pathways each region depends on the other's inputs
    assert _dependence(both, [2, 3, 4], "olfactory") > 1e-4
    assert _dependence(both, [0, 1], "spatial") > 1e-4
    no_fb = _net(feedback=False)
    assert not any("fb" in n for n, _ in no_fb.named_parameters())
    assert _dependence(no_fb, [2, 3, 4], "olfactory") == 0.0  # nothing flows back from the spatial region
    assert _dependence(no_fb, [0, 1], "spatial") > 1e-4
    no_ff = _net(feedforward=False)
    assert _dependence(no_ff, [0, 1], "spatial") == 0.0
    assert _dependence(no_ff, [2, 3, 4], "olfactory") > 1e-4
    # the Q readout reads the spatial region only: without feedforward the odour inputs cannot reach Q
    x = torch.randn(2, 6, 5, requires_grad=True)
    q, _, _ = no_ff(x)
    (g,) = torch.autograd.grad(q.sum(), x)
    assert float(g[..., [0, 1]].abs().max()) == 0.0


def test_half_triangle_routes_and_export():
    task = nr.make_task("half_triangle", memory=True, max_steps=15)
    routes = half_triangle_routes(task)
    assert routes == {"olfactory": [25, 26, 27, 28], "spatial": list(range(25)) + [29, 30, 31, 32]}
    ag = MultiRegionDRQN(task, seed=0, sizes=3, reset_on_done=True, exploration="epsilon", episode_length=20,
                         n_envs=2, learn_after=1, batch_episodes=2, seq_len=10, updates_per_episode=1)
    ag.train(1, progress=False)
    _, lat = ag.rollout(2, 25, rng=0)
    assert lat.sizes["hidden_unit"] == 6 and list(lat["region"].values) == ["olfactory"] * 3 + ["spatial"] * 3
    parts = region_hidden(lat)
    assert set(parts) == {"olfactory", "spatial"} and parts["spatial"].sizes["hidden_unit"] == 3
    with pytest.raises(ValueError, match="half_triangle"):
        half_triangle_routes(nr.make_task("mouse_bandit"))


@pytest.mark.slow  # about 35 s of CPU (3.5 min wall on the loaded 2-core machine)
def test_multiregion_drqn_learns_the_mouse_bandit_through_the_feedforward_path():
    # inputs: [state feature, r_{t-1}, a_{t-1} one-hot(2)]; the reward reaches Q only through the feedforward path
    routes = {"olfactory": [1, 2, 3], "spatial": [0]}
    ag = MultiRegionDRQN("mouse_bandit", seed=1, routes=routes, sizes=6, episode_length=100, n_envs=8, learn_after=8,
                         updates_per_episode=10, seq_len=50, batch_episodes=16, lr=3e-3, tau_start=0.2, tau_min=0.1,
                         decay=0.99)
    before_tr, _ = ag.rollout(10, 200, rng=5, greedy=True)
    ag.train(25, progress=False)
    tr, _ = ag.rollout(10, 200, rng=5, greedy=True)
    p_before = float((before_tr["choice"] == before_tr["high_port"]).mean())
    p_after = float((tr["choice"] == tr["high_port"]).mean())
    # chance is 0.5; a win-stay/lose-shift policy gets about 0.78 at p_high 0.8, p_switch 0.02
    assert p_after > 0.7 and p_after > p_before + 0.1, (p_before, p_after)
