"""``scored``: valid trials that are learnt from but not scored (HDDM's convention), against a NumPy replay."""

import numpy as np

import neurorl as nr
from neurorl.fitting import MAP
from neurorl.fitting.graph import compiled_loglik, uniform_observations
from neurorl.simulate import observations


def _trials():
    sim = nr.simulate("q_learning", nr.make_task("bandit", p=(0.7, 0.3)), n_subjects=4, n_trials=80,
                      params={"alpha": 0.4, "beta": 3.0}, rng=2)
    tr = sim.trials.copy()
    scored = np.ones(tr["valid"].shape, bool)
    scored[:, :5] = False          # e.g. each condition's first trials
    scored[2, 40:45] = False
    tr["scored"] = (tr["valid"].dims, scored)
    return sim, tr, scored


def test_unscored_trials_are_learnt_from_but_not_scored():
    sim, tr, scored = _trials()
    agent = nr.make_agent("q_learning")
    env, obs = observations(tr)
    theta = np.stack([p.to_unconstrained(np.full(4, sim.params[p.name].values.mean())) for p in agent.params])
    out = compiled_loglik(agent, env, order=1, uniform=uniform_observations(obs), quiet=True)(theta, obs)
    # reference: replay learns on every valid trial; sum log P(choice) over the scored ones only
    lat = nr.replay(agent, sim.trials, {k: float(sim.params[k].values.mean()) for k in ("alpha", "beta")})
    p = np.take_along_axis(lat["policy"].values, sim.trials["choice"].values[..., None], -1)[..., 0]
    want = np.where(sim.trials["valid"].values & scored, np.log(p), 0.0)
    np.testing.assert_allclose(out["pointwise"].T, want, rtol=1e-10, atol=1e-12)
    # learning is unchanged: the unscored trials' outcomes still move the values (dropping them would not)
    dropped = sim.trials.copy()
    dropped["valid"] = dropped["valid"] & scored
    lat2 = nr.replay(agent, dropped, {"alpha": 0.4, "beta": 3.0})
    assert not np.allclose(lat2["q"].values[:, 10], lat["q"].values[:, 10])


def test_map_counts_only_scored_trials():
    _, tr, scored = _trials()
    fit = MAP("q_learning", n_starts=1, rng=0, progress=False).fit(tr)
    np.testing.assert_array_equal(fit.result_["n_trials"].values, scored.sum(axis=1))
    pw = fit.pointwise_loglik_.values
    assert np.all(np.isnan(pw[~scored])) and np.all(np.isfinite(pw[scored]))
    np.testing.assert_allclose(np.nansum(pw, axis=1), fit.result_["loglik"].values, rtol=1e-9)
