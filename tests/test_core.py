"""Backend operations, parameter transforms, Q-learning equations and simulate/replay plumbing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import special, stats

import neurorl as nr
from neurorl.backend import NUMPY, get_pytensor_ops
from neurorl.params import Param


# ---------------------------------------------------------------- backend
def test_norm_logcdf_matches_scipy_in_both_tails():
    x = np.concatenate([np.linspace(-40, 40, 801), [-1e-12, 0.0, 1e-12]])
    np.testing.assert_allclose(NUMPY.norm_logcdf(x), special.log_ndtr(x), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(NUMPY.norm_cdf(x), stats.norm.cdf(x), rtol=1e-12, atol=1e-300)


def test_logsumexp_softmax_entropy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4)) * 30
    np.testing.assert_allclose(NUMPY.logsumexp(x), special.logsumexp(x, axis=-1), rtol=1e-13)
    p = NUMPY.softmax(x)
    np.testing.assert_allclose(p, special.softmax(x, axis=-1), rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(NUMPY.entropy(p), stats.entropy(p, axis=-1), rtol=1e-10, atol=1e-12)
    # masked logits put no mass on unavailable actions
    avail = np.array([[True, False, True, True]] * 5)
    q = NUMPY.softmax(NUMPY.masked_logits(x, avail))
    assert np.all(q[:, 1] == 0)
    np.testing.assert_allclose(q.sum(-1), 1)


def test_gather_scatter():
    table = np.arange(12.0).reshape(3, 4)
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    np.testing.assert_array_equal(NUMPY.gather(table, idx), [[0, 3], [5, 5], [10, 8]])
    out = NUMPY.scatter_add(table, np.array([3, 0, 2]), np.array([1.0, 2.0, 3.0]))
    expected = table.copy()
    expected[0, 3] += 1
    expected[1, 0] += 2
    expected[2, 2] += 3
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(table, np.arange(12.0).reshape(3, 4))  # not mutated


@pytest.mark.parametrize("m", [4, 80])  # compared with every column (<= ONE_HOT_MAX) / XLA's gather and scatter
def test_jax_gather_scatter_agree_with_numpy(m):
    import jax

    from neurorl.backend import get_jax_ops

    ops = get_jax_ops()
    rng = np.random.default_rng(0)
    table = rng.normal(size=(5, m))
    table[0, 1] = -np.inf  # a masked entry must not leak into the other columns' reads (-inf * 0 is NaN)
    idx = rng.integers(-m, m, size=(5, 3))  # negative indices count from the end, as in NumPy
    np.testing.assert_array_equal(ops.gather(table, idx), NUMPY.gather(table, idx))
    flat = rng.integers(-m, m, size=5)
    np.testing.assert_array_equal(ops.gather(table, flat[:, None]), NUMPY.gather(table, flat[:, None]))
    mask = rng.random((5, m)) < 0.5
    np.testing.assert_array_equal(ops.gather(mask, idx), NUMPY.gather(mask, idx))
    v = rng.normal(size=5)
    np.testing.assert_array_equal(ops.scatter_add(table, flat, v), NUMPY.scatter_add(table, flat, v))
    # derivatives: d gather / d table is the indicator of the read entry; d scatter_add / d value puts 1 there
    t2 = rng.normal(size=(5, m))
    g = jax.grad(lambda t: ops.gather(t, idx).sum())(t2)
    expected = np.zeros((5, m))
    np.add.at(expected, (np.repeat(np.arange(5), 3), (idx % m).ravel()), 1.0)
    np.testing.assert_array_equal(g, expected)
    gv = jax.grad(lambda x: (ops.scatter_add(t2, flat, x) * t2).sum())(v)
    np.testing.assert_array_equal(gv, t2[np.arange(5), flat % m])


def test_pytensor_ops_agree_with_numpy():
    import pytensor.tensor as pt

    ops = get_pytensor_ops()
    x = np.linspace(-30, 30, 61)
    xs = pt.dvector("x")
    f = (ops.norm_logcdf(xs)).eval({xs: x})
    np.testing.assert_allclose(f, NUMPY.norm_logcdf(x), rtol=1e-12)
    t = np.arange(12.0).reshape(3, 4)
    tt = pt.dmatrix("t")
    idx = np.array([[0, 3], [1, 1], [2, 0]])
    np.testing.assert_array_equal(ops.gather(tt, idx).eval({tt: t}), NUMPY.gather(t, idx))
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        ops.scatter_add(tt, np.array([3, 0, 2]), v).eval({tt: t}), NUMPY.scatter_add(t, np.array([3, 0, 2]), v)
    )


# ---------------------------------------------------------------- params
@pytest.mark.parametrize(
    "p",
    [
        Param("a", 0.0, 1.0, 0.3),
        Param("b", 0.0, np.inf, 3.0),
        Param("c", -np.inf, np.inf, 0.5),
        Param("d", -np.inf, 2.0, 1.0),
        Param("e", 1.0, 30.0, 5.0),
    ],
)
def test_param_transforms(p):
    x = np.linspace(-4, 4, 9)
    y = p.to_constrained(x)
    assert np.all((y > p.lower) & (y < p.upper))
    np.testing.assert_allclose(p.to_unconstrained(y), x, atol=1e-10)
    h = 1e-6
    deriv = (p.to_constrained(x + h) - p.to_constrained(x - h)) / (2 * h)
    np.testing.assert_allclose(p.log_jacobian(x), np.log(np.abs(deriv)), atol=1e-6)


def test_param_validation():
    with pytest.raises(ValueError, match="default"):
        Param("a", 0.0, 1.0, 1.5)
    with pytest.raises(ValueError, match="lower bound"):
        Param("a", 1.0, 0.0, 0.5)
    p = Param("a", 0.0, 1.0, 0.3)
    with pytest.raises(ValueError, match="outside its bounds"):
        p.to_unconstrained(1.2)
    agent = nr.make_agent("q_learning")
    with pytest.raises(ValueError, match=r"'alpha' = 1.5 for subject index 1"):
        agent.resolve({"alpha": [0.2, 1.5]}, 2)
    with pytest.raises(ValueError, match="shape"):
        agent.resolve({"alpha": [0.2, 0.3, 0.4]}, 2)
    fixed = nr.make_agent("q_learning", fixed={"beta": 5.0})
    assert fixed.param_names == ("alpha",)
    np.testing.assert_array_equal(fixed.resolve(None, 3)["beta"], [5.0, 5.0, 5.0])
    with pytest.raises(ValueError, match="cannot fix unknown"):
        nr.make_agent("q_learning", fixed={"gamma": 0.5})


# ---------------------------------------------------------------- Q-learning by hand
def _two_trial_data(choices, rewards):
    return nr.make_trials(np.zeros((1, len(choices)), int), np.array([choices]), np.array([rewards], float),
                          n_actions=2)


def test_q_learning_hand_derived():
    """alpha = 0.5, beta = 2, q0 = 0: trial-by-trial values computed by hand."""
    trials = _two_trial_data([1, 1, 0], [1.0, 0.0, 1.0])
    lat = nr.replay("q_learning", trials, {"alpha": 0.5, "beta": 2.0})
    # Q before each trial: (0,0) -> (0,0.5) -> (0,0.25)
    np.testing.assert_allclose(lat.q.values[0], [[0, 0], [0, 0.5], [0, 0.25]])
    np.testing.assert_allclose(lat.rpe.values[0], [1.0, -0.5, 1.0])
    p1 = 1 / (1 + np.exp(-2 * np.array([0, 0.5, 0.25])))
    np.testing.assert_allclose(lat.policy.values[0, :, 1], p1)
    h = -(p1 * np.log(p1) + (1 - p1) * np.log(1 - p1))
    np.testing.assert_allclose(lat.entropy.values[0], h)
    v = p1 * np.array([0, 0.5, 0.25])
    np.testing.assert_allclose(lat.v.values[0], v)
    # soft value at the agent's own temperature = tau * logsumexp(q / tau)
    q = lat.q.values[0]
    np.testing.assert_allclose(lat.v_soft.values[0], 0.5 * special.logsumexp(q / 0.5, axis=-1))


def test_q_learning_options_hand_derived():
    trials = _two_trial_data([1, 0, 0], [1.0, 1.0, 0.0])
    agent = nr.make_agent("q_learning", dual_rates=True, forgetting=True, perseveration=True)
    lat = nr.replay(agent, trials, {"alpha_pos": 0.5, "alpha_neg": 0.2, "beta": 1.0, "phi": 0.1, "kappa": 0.7})
    # t0: Q=(0,0); choose 1, r=1: delta=1>0 -> Q1=0.5; Q0 decays toward 0 (stays 0)
    # t1: Q=(0,0.5); choose 0, r=1: delta=1 -> Q0=0.5; Q1 -> 0.5 + 0.1*(0-0.5)=0.45
    # t2: Q=(0.5,0.45); choose 0, r=0: delta=-0.5 -> alpha_neg
    np.testing.assert_allclose(lat.q.values[0], [[0, 0], [0, 0.5], [0.5, 0.45]])
    np.testing.assert_allclose(lat.rpe.values[0], [1.0, 1.0, -0.5])
    logits = np.array([[0, 0], [0, 0.5 + 0.7], [0.5 + 0.0, 0.45]])
    logits[2, 0] += 0.7  # previous choice 0
    np.testing.assert_allclose(lat.policy.values[0], special.softmax(logits, axis=-1))


def test_invalid_trials_do_not_update():
    trials = nr.make_trials(np.zeros((1, 3), int), np.array([[1, -1, 1]]), np.array([[1.0, np.nan, 1.0]]),
                            n_actions=2)
    assert not trials.valid.values[0, 1]
    lat = nr.replay("q_learning", trials, {"alpha": 0.5, "beta": 1.0})
    np.testing.assert_allclose(lat.q.values[0, :, 1], [0, 0.5, 0.5])


# ---------------------------------------------------------------- simulate/replay plumbing
def test_simulate_argument_errors():
    with pytest.raises(ValueError, match="unknown agent"):
        nr.simulate("no_such_agent", "mouse_bandit")
    with pytest.raises(ValueError, match="unknown task"):
        nr.simulate("q_learning", "no_such_task")
    with pytest.raises(ValueError, match="positive"):
        nr.simulate("q_learning", "mouse_bandit", n_subjects=0)
    with pytest.raises(TypeError, match="rng"):
        nr.simulate("q_learning", "mouse_bandit", rng="seed")


def test_simulated_learning_beats_chance():
    """A Q-learner earns more than chance (0.5) on an 80/20 bandit; derived bound: 0.5 + 5 SE."""
    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=50, n_trials=400, rng=0,
                      params={"alpha": 0.5, "beta": 5.0})
    se = 0.5 / np.sqrt(50 * 400)
    assert float(sim.trials.reward.mean()) > 0.5 + 5 * se


def test_replay_params_per_subject():
    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=3, n_trials=30, rng=0,
                      params={"alpha": [0.1, 0.5, 0.9]})
    np.testing.assert_array_equal(sim.params.alpha.values, [0.1, 0.5, 0.9])
    lat = nr.replay("q_learning", sim.trials, sim.params)
    np.testing.assert_array_equal(lat.q.values, sim.latents.q.values)


def test_import_is_light():
    code = "import sys, neurorl; print([m for m in ('pymc', 'pytensor', 'torch') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
