"""hBayesDM's learning models against slow references: plain loops of the published (Stan) equations.

Each reference below is written from hBayesDM's ``commons/stan_files/<model>.stan``, per subject and trial, with
1-based hBayesDM indexing translated by hand; it shares no code with the agents. The test compares the
probability of every observed choice (replay's policy) and the summed log-likelihood.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import neurorl as nr
from neurorl.schema import EnvSpec


def _softmax(x):
    z = np.exp(x - np.max(x))
    return z / z.sum()


# ------------------------------------------------------------------ references (one subject)
def ref_prl(model, par, choice, outcome):
    ev = [0.0, 0.0]
    ew = [0.0, 0.0]
    out = []
    for c, o in zip(choice, outcome):
        if model in ("prl_rp", "prl_ewa"):
            prob = _softmax(np.array(ev) * par["beta"])
        else:
            alpha = par.get("alpha", 0.0)
            p1 = 1.0 / (1.0 + math.exp(par["beta"] * (alpha - (ev[0] - ev[1]))))
            prob = [p1, 1.0 - p1]
        out.append(prob[c])
        if model == "prl_rp":
            pe = o - ev[c]
            ev[c] += (par["Arew"] if o > 0 else par["Apun"]) * pe
        elif model == "prl_ewa":
            ewt1 = ew[c]
            ew[c] = ew[c] * par["rho"] + 1
            ev[c] = (ev[c] * par["phi"] * ewt1 + o) / ew[c]
        else:
            pe = o - ev[c]
            penc = -o - ev[1 - c]
            if "eta" in par:
                eta = par["eta"]
            else:
                eta = par["eta_pos"] if pe >= 0 else par["eta_neg"]
            ev[c] += eta * pe
            ev[1 - c] += eta * penc
    return np.array(out)


def ref_igt(model, par, choice, outcome):
    ev = [0.0] * 4
    ef = [0.0] * 4
    pers = [0.0] * 4
    V = [0.0] * 4
    util = [0.0] * 4
    out = []
    theta = 3 ** par.get("cons", 0.0) - 1
    for c, x in zip(choice, outcome):
        if model == "igt_orl":
            prob = _softmax(np.array(util))
        elif model == "igt_vpp":
            prob = _softmax(theta * np.array(V))
        else:
            prob = _softmax(theta * np.array(ev))
        out.append(prob[c])
        if model != "igt_orl":
            cur = x ** par["alpha"] if x >= 0 else -par["lambda"] * (-x) ** par["alpha"]
        if model == "igt_pvl_delta":
            ev[c] += par["A"] * (cur - ev[c])
        elif model == "igt_pvl_decay":
            ev = [e * par["A"] for e in ev]
            ev[c] += cur
        elif model == "igt_vpp":
            pers = [q * par["K"] for q in pers]
            pers[c] += par["epP"] if x >= 0 else par["epN"]
            ev[c] += par["A"] * (cur - ev[c])
            V = [par["w"] * ev[d] + (1 - par["w"]) * pers[d] for d in range(4)]
        else:
            sign = float(np.sign(x))
            pe_val = x - ev[c]
            pe_freq = sign - ef[c]
            fic = [-sign / 3 - ef[d] for d in range(4)]
            ef_c, ev_c = ef[c], ev[c]
            if x >= 0:
                ef = [ef[d] + par["Apun"] * fic[d] for d in range(4)]
                ef[c] = ef_c + par["Arew"] * pe_freq
                ev[c] = ev_c + par["Arew"] * pe_val
            else:
                ef = [ef[d] + par["Arew"] * fic[d] for d in range(4)]
                ef[c] = ef_c + par["Apun"] * pe_freq
                ev[c] = ev_c + par["Apun"] * pe_val
            pers[c] = 1
            k_tr = 3 ** par["K"] - 1
            pers = [q / (1 + k_tr) for q in pers]
            util = [ev[d] + ef[d] * par["betaF"] + pers[d] * par["betaP"] for d in range(4)]
    return np.array(out)


def ref_kalman(par, choice, outcome, s_o=4.0):
    mu = [par["mu0"]] * 4
    s2 = [par["s0"] ** 2] * 4
    out = []
    for c, x in zip(choice, outcome):
        out.append(_softmax(par["beta"] * np.array(mu))[c])
        k = s2[c] / (s2[c] + s_o ** 2)
        mu[c] += k * (x - mu[c])
        s2[c] *= 1 - k
        mu = [m * par["lambda"] + (1 - par["lambda"]) * par["decay_center"] for m in mu]  # hBayesDM's theta
        s2 = [v * par["lambda"] ** 2 + par["sD"] ** 2 for v in s2]
    return np.array(out)


def ref_pst(par, option1, option2, choice1, reward, learn=None):
    """``choice1`` is hBayesDM's choice (1 = option1 chosen)."""
    ev = [0.0] * 6
    out = []
    for t, (o1, o2, ch, r) in enumerate(zip(option1, option2, choice1, reward)):
        delta = ev[o1 - 1] - ev[o2 - 1]
        p1 = 1 / (1 + math.exp(-par["beta"] * delta))
        out.append(p1 if ch == 1 else 1 - p1)
        if learn is not None and not learn[t]:
            continue
        co = o1 if ch > 0 else o2
        pe = r - ev[co - 1]
        alpha = par["alpha"] if "alpha" in par else (par["alpha_pos"] if pe >= 0 else par["alpha_neg"])
        ev[co - 1] += alpha * pe
    return np.array(out)


# ------------------------------------------------------------------ helpers
def _chosen_prob(agent, trials, params):
    lat = nr.replay(agent, trials, params)
    return np.take_along_axis(lat["policy"].values, trials["choice"].values[..., None], -1)[..., 0]


def _draw(agent, rng):
    """Parameters away from the defaults, inside hBayesDM's bounds (one set per subject)."""
    out = {}
    for p in agent.params:
        lo = p.lower if math.isfinite(p.lower) else -2.0
        hi = p.upper if math.isfinite(p.upper) else 2.0
        out[p.name] = lo + (hi - lo) * rng.uniform(0.15, 0.85, size=3)
    return out


def _check(agent, sim, ref):
    params = {k: sim.params[k].values for k in sim.params.data_vars}
    mine = _chosen_prob(agent, sim.trials, params)
    for i in range(sim.trials.sizes["subject"]):
        par = {k: float(v[i]) for k, v in params.items()}
        want = ref(par, sim.trials["choice"].values[i], sim.trials["reward"].values[i])
        np.testing.assert_allclose(mine[i], want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(np.log(mine[i]).sum(), np.log(want).sum(), rtol=1e-10)


# ------------------------------------------------------------------ tests
PRL = ["prl_rp", "prl_fictitious", "prl_fictitious_rp", "prl_fictitious_woa", "prl_fictitious_rp_woa", "prl_ewa"]
IGT = ["igt_pvl_delta", "igt_pvl_decay", "igt_vpp", "igt_orl"]


@pytest.mark.parametrize("model", PRL)
def test_prl_matches_reference(model):
    agent = nr.make_agent(model)
    params = _draw(agent, np.random.default_rng(1))
    sim = nr.simulate(agent, "reversal_learning", n_subjects=3, n_trials=80, params=params, rng=2)
    assert set(np.unique(sim.trials["reward"].values)) == {-1.0, 1.0}
    _check(agent, sim, lambda par, c, o: ref_prl(model, par, c, o))


@pytest.mark.parametrize("model", IGT)
def test_igt_matches_reference(model):
    agent = nr.make_agent(model)
    params = _draw(agent, np.random.default_rng(3))
    sim = nr.simulate(agent, "iowa_gambling", n_subjects=3, n_trials=80, params=params, rng=4)
    r = sim.trials["reward"].values
    assert (r > 0).any() and (r < 0).any()
    _check(agent, sim, lambda par, c, o: ref_igt(model, par, c, o))


def test_kalman_matches_reference():
    agent = nr.make_agent("bandit4arm2_kalman_filter")
    params = _draw(agent, np.random.default_rng(5))
    params["beta"] = np.array([0.05, 0.1, 0.2])
    sim = nr.simulate(agent, "restless_bandit", n_subjects=3, n_trials=80, params=params, rng=6)
    _check(agent, sim, ref_kalman)


@pytest.mark.parametrize("model", ["pst_Q", "pst_gainloss_Q"])
def test_pst_matches_reference(model):
    agent = nr.make_agent(model)
    params = _draw(agent, np.random.default_rng(7))
    sim = nr.simulate(agent, "probabilistic_selection", n_subjects=3, n_trials=80, params=params, rng=8)
    item = nr.make_task("probabilistic_selection").env.item
    st, ch = sim.trials["state"].values, sim.trials["choice"].values
    for i in range(3):
        par = {k: float(sim.params[k].values[i]) for k in sim.params.data_vars}
        o1, o2 = item[st[i], 0] + 1, item[st[i], 1] + 1  # hBayesDM's 1-based option codes
        want = ref_pst(par, o1, o2, np.where(ch[i] == 0, 1, 0), sim.trials["reward"].values[i])
        mine = _chosen_prob(agent, sim.trials, {k: sim.params[k].values for k in sim.params.data_vars})[i]
        np.testing.assert_allclose(mine, want, rtol=1e-10)


def test_pst_test_states_are_scored_not_learnt():
    """Test-phase pairs (here state 3 = A vs C, no feedback) are scored with the learnt values, and their
    (unseen) outcomes change nothing."""
    item = np.array([[0, 1], [2, 3], [4, 5], [0, 2]])
    env = EnvSpec(4, 2, 6, item, np.ones((4, 2), bool), np.full((4, 2), np.nan))
    rng = np.random.default_rng(0)
    T = 60
    state = np.where(np.arange(T) < 40, rng.integers(0, 3, T), 3)[None]
    choice = rng.integers(0, 2, (1, T))
    reward = rng.integers(0, 2, (1, T)).astype(float)
    trials = nr.make_trials(state, choice, reward, env=env)
    agent = nr.make_agent("pst_Q", test_states=[3])
    par = {"alpha": 0.4, "beta": 2.5}
    mine = _chosen_prob(agent, trials, par)[0]
    o1, o2 = item[state[0], 0] + 1, item[state[0], 1] + 1
    want = ref_pst(par, o1, o2, np.where(choice[0] == 0, 1, 0), reward[0], learn=state[0] != 3)
    np.testing.assert_allclose(mine, want, rtol=1e-10)
    # without test_states the test-phase outcomes would be learnt: a different likelihood
    other = _chosen_prob(nr.make_agent("pst_Q"), trials, par)[0]
    assert not np.allclose(other[40:], want[40:])
    with pytest.raises(ValueError, match="test_states"):
        nr.replay(nr.make_agent("pst_Q", test_states=[7]), trials, par)


def test_prl_multiple_blocks_reset_values():
    """hBayesDM's ``prl_*_multipleB``: values restart at 0 in every block. With one state per block whose options
    are their own items, a two-block session scores exactly as two separate one-block sessions."""
    rng = np.random.default_rng(1)
    T = 40
    choice = rng.integers(0, 2, (1, 2 * T))
    reward = np.where(rng.random((1, 2 * T)) < 0.5, 1.0, -1.0)
    block = np.repeat([0, 1], T)[None]
    env = EnvSpec(2, 2, 4, np.array([[0, 1], [2, 3]]), np.ones((2, 2), bool), np.full((2, 2), np.nan))
    trials = nr.make_trials(block, choice, reward, env=env)
    par = {"eta": 0.35, "alpha": 0.2, "beta": 4.0}
    agent = nr.make_agent("prl_fictitious")
    mine = _chosen_prob(agent, trials, par)[0]
    want = np.concatenate([ref_prl("prl_fictitious", par, choice[0, :T], reward[0, :T]),
                           ref_prl("prl_fictitious", par, choice[0, T:], reward[0, T:])])
    np.testing.assert_allclose(mine, want, rtol=1e-10)


@pytest.mark.parametrize("name,params", [("ts_par4", {"alpha", "beta", "p", "w"}),
                                         ("ts_par6", {"alpha1", "beta1", "alpha2", "beta2", "p", "w"}),
                                         ("ts_par7", {"alpha1", "beta1", "alpha2", "beta2", "p", "w", "lam"})])
def test_two_step_hbayesdm_names(name, params):
    """Each hBayesDM two-step name is the hybrid agent with that preset: same parameters, same likelihood."""
    agent = nr.make_agent(name)
    assert {p.name for p in agent.params} == params
    preset = nr.agents.two_step.TwoStepHybrid.hbayesdm(name)
    sim = nr.simulate(preset, "two_step", n_subjects=2, n_trials=60, rng=3)
    np.testing.assert_array_equal(_chosen_prob(agent, sim.trials, sim.params),
                                  _chosen_prob(preset, sim.trials, sim.params))


def test_igt_utility_at_zero_outcome_has_finite_gradient():
    """x^alpha at x = 0 is 0, and its derivative in alpha is finite (no log(0) * 0)."""
    from neurorl.agents.igt import prospect_utility
    from neurorl.backend import get_jax_ops
    import jax

    ops = get_jax_ops()
    g = jax.grad(lambda a: prospect_utility(jax.numpy.array([0.0, 2.0, -2.0]), a, 1.5, ops).sum())(0.5)
    # d/da [0 + 2^a - 1.5 * 2^a] at a = 0.5 = (1 - 1.5) 2^0.5 log 2
    np.testing.assert_allclose(float(g), -0.5 * 2 ** 0.5 * math.log(2.0), rtol=1e-12)


# ------------------------------------------------------------------ parameter recovery (slow)
RECOVERY_TASK = {**{m: "reversal_learning" for m in PRL}, **{m: "iowa_gambling" for m in IGT},
                 "bandit4arm2_kalman_filter": "restless_bandit", "pst_Q": "probabilistic_selection",
                 "pst_gainloss_Q": "probabilistic_selection"}
#: weakly identified at 30 subjects x 200 trials (docs/agents.md lists the measured r): a lower floor
WEAK = {("igt_pvl_decay", "alpha"), ("igt_pvl_decay", "lambda"), ("igt_vpp", "lambda"), ("igt_vpp", "w"),
        ("igt_orl", "K")}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(RECOVERY_TASK))
def test_parameter_recovery(model):
    """MAP recovery of 30 simulated subjects x 200 trials (parameters drawn around the defaults, neurorl's
    recovery defaults): r(true, estimated) >= 0.5 for every parameter, >= 0.2 for the weakly identified ones."""
    from neurorl.fitting.recovery import parameter_recovery

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = parameter_recovery(model, RECOVERY_TASK[model], n_subjects=30, n_trials=200, rng=0,
                                 estimator_options={"n_starts": 2}, progress=False)
    for name, r in zip(res["param"].values, res["r"].values):
        floor = 0.2 if (model, str(name)) in WEAK else 0.5
        assert r >= floor, f"{model}: r({name}) = {r:.2f} < {floor}"
