"""Formulas on RL-DDM parameters (neurorl.ssm.RLDDM, compile_formulas).

References independent of the code under test: the design columns written out by hand (treatment coding of a
two-level factor, an interaction); the per-trial boundary ``exp(b0 + b1 theta_t)`` computed by hand from the fitted
coefficients; the true coefficients of RL-DDM data simulated here with a trial-wise boundary (recovery).
"""

from __future__ import annotations

import numpy as np
import pytest

from neurorl import make_agent, make_task
from neurorl.backend import NUMPY
from neurorl.fitting.joint import with_rt
from neurorl.fitting.observation import WienerRT
from neurorl.schema import make_trials
from neurorl.simulate import trial_obs
from neurorl.ssm import RLDDM, compile_formulas

B0, B1 = np.log(1.4), 0.35  # log a_t = B0 + B1 * theta_t


def simulate_rlddm(n_subjects=12, n_trials=200, seed=3):
    """Q-learning + Wiener RTs on a 0.8/0.2 bandit with the boundary on a trial covariate ``theta``; written here
    step by step (the agent's decide / sample_choice / learn, as neurorl.simulate does, with ``a`` set per trial)."""
    rng = np.random.default_rng(seed)
    agent = with_rt("q_learning", WienerRT(fixed={"w": 0.5}))
    task = make_task("bandit")
    env = task.env
    n = n_subjects
    p = agent.resolve({"alpha": rng.uniform(0.2, 0.5, n), "v_scale": np.exp(np.log(3.0) + 0.2 * rng.normal(size=n)),
                       "a": np.full(n, 1.4), "t0": np.full(n, 0.25)}, n)
    b0 = B0 + 0.1 * rng.normal(size=n)
    theta = rng.normal(size=(n, n_trials))
    s = agent.start(p, env, n, NUMPY)
    ts = task.reset(n, rng)
    cols = {k: [] for k in ("state", "choice", "reward", "next_state", "done", "rt")}
    for t in range(n_trials):
        p = {**p, "a": np.exp(b0 + B1 * theta[:, t])}
        state = task.observe(ts)
        obs = trial_obs(env, state)
        dec = agent.decide(p, s, obs, NUMPY)
        choice, extra = agent.sample_choice(dec, obs, rng)
        ts, out = task.step(ts, choice, rng)
        obs = trial_obs(env, state, None, choice, out["reward"], out["next_state"], out["done"], extra["rt"])
        s, _ = agent.learn(p, s, obs, dec, NUMPY)
        for k, v in (("state", state), ("choice", choice), ("rt", extra["rt"]), *((k, out[k]) for k in
                                                                                    ("reward", "next_state", "done"))):
            cols[k].append(v)
    st = {k: np.stack(v, axis=1) for k, v in cols.items()}
    trials = make_trials(st["state"], st["choice"], st["reward"], rt=st["rt"], next_state=st["next_state"],
                         done=st["done"], env=env, covariates={"theta": theta,
                                                               "cond": rng.integers(0, 2, (n, n_trials))},
                         attrs={"task": "bandit"})
    return trials


@pytest.fixture(scope="module")
def trials():
    return simulate_rlddm()


def test_compile_formulas_columns_by_hand(trials):
    agent = with_rt("q_learning", WienerRT(fixed={"w": 0.5}))
    out, cov, coefs = compile_formulas(trials, ["a ~ 1 + theta", "v_scale ~ 1 + C(cond) + theta:C(cond)"], agent)
    assert cov == {"a": ["theta"], "v_scale": ["v_scale__C_cond_T_1", "v_scale__theta_C_cond_0",
                                                "v_scale__theta_C_cond_1"]}
    cond, theta = trials["cond"].values, trials["theta"].values
    valid = trials["valid"].values.astype(bool)
    np.testing.assert_array_equal(out["v_scale__C_cond_T_1"].values[valid], (cond == 1)[valid])
    np.testing.assert_allclose(out["v_scale__theta_C_cond_0"].values[valid], (theta * (cond == 0))[valid])
    np.testing.assert_allclose(out["v_scale__theta_C_cond_1"].values[valid], (theta * (cond == 1))[valid])
    assert coefs["a"] == "a:Intercept" and coefs["a_theta"] == "a:theta"
    assert coefs["v_scale_v_scale__theta_C_cond_1"] == "v_scale:theta:C(cond)[1]"


@pytest.mark.parametrize("formula, match", [
    ("a ~ 0 + C(cond)", "no intercept"),
    ("v ~ 1 + theta", "v_scale"),
    ("beta ~ 1 + theta", "not a free parameter"),
    ("a ~ 1 + theta + (1|subject)", "varies by subject"),
    ("a ~ 1 + nothere", "nothere"),
])
def test_bad_formulas_raise(trials, formula, match):
    agent = with_rt("q_learning", WienerRT(fixed={"w": 0.5}))
    with pytest.raises(ValueError, match=match):
        compile_formulas(trials, [formula], agent)


def test_z_is_the_start_point(trials):
    agent = with_rt("q_learning", WienerRT())
    _, cov, coefs = compile_formulas(trials, ["z ~ 1 + theta"], agent)
    assert cov == {"w": ["theta"]} and coefs["w_theta"] == "w:theta"


@pytest.mark.slow
def test_recovers_boundary_on_covariate_hierarchically(trials):
    fit = RLDDM("q_learning", "a ~ 1 + theta", rt=WienerRT(fixed={"w": 0.5}), progress=False, n_starts=2,
                rng=0).fit(trials)
    c = fit.coefs_["estimate"]
    assert abs(float(c.sel(coef="a:theta")) - B1) < 0.08
    assert abs(float(c.sel(coef="a:Intercept")) - B0) < 0.1
    # the per-trial boundary the estimator uses is exp(intercept_i + slope_i theta_t) for every subject i
    est = fit.estimator_
    a_trial = est.trial_params()["a"].transpose("subject", "trial").values
    th = est.result_["theta"]
    hand = np.exp(th.sel(param="a").values[:, None] + th.sel(param="a_theta").values[:, None]
                  * fit.trials_["theta"].values)
    valid = fit.trials_["valid"].values.astype(bool)
    np.testing.assert_allclose(a_trial[valid], hand[valid], rtol=1e-8)
