"""hBayesDM's gain/loss four-armed bandit models (Seymour et al. 2012) and the ``loss`` channel.

The references below are plain loops written from hBayesDM's ``commons/stan_files/bandit4arm_*.stan`` (one subject,
trial by trial, 1-based indexing translated by hand, the gain in ``rew`` and the loss in ``los``); they share no code
with the agents. Each test compares the probability of every observed choice (replay's policy), the compiled (JAX)
likelihood of the estimators and the summed log-likelihood.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import neurorl as nr
from neurorl.fitting.mle import MAP
from neurorl.formats import from_format

MODELS = ("bandit4arm_4par", "bandit4arm_lapse", "bandit4arm_lapse_decay", "bandit4arm_singleA_lapse",
          "bandit4arm_2par_lapse")
PARAMS = {
    "bandit4arm_4par": {"Arew": 0.35, "Apun": 0.15, "R": 4.0, "P": 2.5},
    "bandit4arm_lapse": {"Arew": 0.35, "Apun": 0.15, "R": 4.0, "P": 2.5, "xi": 0.1},
    "bandit4arm_lapse_decay": {"Arew": 0.35, "Apun": 0.15, "R": 4.0, "P": 2.5, "xi": 0.1, "d": 0.3},
    "bandit4arm_singleA_lapse": {"A": 0.25, "R": 4.0, "P": 2.5, "xi": 0.1},
    "bandit4arm_2par_lapse": {"Arew": 0.35, "Apun": 0.15, "xi": 0.1},
}


# ------------------------------------------------------------------ reference (one subject, the Stan loop)
def ref_loglik(model, par, choice, rew, los):
    """Per-trial log P(choice) of hBayesDM's model ``model`` (choices 0-based here)."""
    Qr = [0.0] * 4
    Qp = [0.0] * 4
    Qsum = [0.0] * 4
    out = []
    xi = par.get("xi", 0.0)
    Arew = par.get("Arew", par.get("A"))
    Apun = par.get("Apun", par.get("A"))
    R = par.get("R", 1.0)
    P = par.get("P", 1.0)
    for c, g, lo in zip(choice, rew, los):
        m = max(Qsum)
        e = [math.exp(q - m) for q in Qsum]
        soft = [x / sum(e) for x in e]
        if model == "bandit4arm_4par":
            out.append(math.log(soft[c]))  # categorical_logit(Qsum)
        else:
            out.append(math.log(soft[c] * (1 - xi) + xi / 4))
        PEr = R * g - Qr[c]
        PEp = P * lo - Qp[c]
        Qr_chosen, Qp_chosen = Qr[c], Qp[c]
        if model == "bandit4arm_lapse_decay":
            Qr = [(1 - par["d"]) * q for q in Qr]
            Qp = [(1 - par["d"]) * q for q in Qp]
        else:  # fictive updating of every deck toward 0
            Qr = [q + Arew * (-q) for q in Qr]
            Qp = [q + Apun * (-q) for q in Qp]
        Qr[c] = Qr_chosen + Arew * PEr
        Qp[c] = Qp_chosen + Apun * PEp
        Qsum = [a + b for a, b in zip(Qr, Qp)]
    return np.array(out)


def _chosen_logp(lat, trials):
    pol = lat["policy"].values
    return np.log(np.take_along_axis(pol, trials["choice"].values[..., None], -1)[..., 0])


@pytest.fixture(scope="module")
def sims():
    """Each model simulated on the task (3 subjects x 90 trials; 90 crosses a compiled chunk boundary)."""
    return {m: nr.simulate(m, "bandit4arm", n_subjects=3, n_trials=90, rng=7, params=PARAMS[m]) for m in MODELS}


@pytest.mark.parametrize("model", MODELS)
def test_matches_hbayesdm_reference(model, sims):
    """Replay's choice probabilities and the compiled likelihood equal the Stan loop's, to 1e-10."""
    from neurorl.fitting.graph import compiled_loglik, uniform_observations
    from neurorl.simulate import observations

    sim = sims[model]
    tr = sim.trials
    gain = tr["gain"].values
    assert np.any(tr["loss"].values < 0) and np.any(gain > 0)  # both channels carry outcomes
    np.testing.assert_array_equal(tr["reward"].values, gain + tr["loss"].values)
    ref = np.stack([ref_loglik(model, PARAMS[model], tr["choice"].values[i], gain[i], tr["loss"].values[i])
                    for i in range(tr.sizes["subject"])])
    lat = nr.replay(model, tr, PARAMS[model])
    np.testing.assert_allclose(_chosen_logp(lat, tr), ref, rtol=1e-10, atol=1e-12)
    agent = nr.make_agent(model)
    env, obs = observations(tr)
    f = compiled_loglik(agent, env, order=0, uniform=uniform_observations(obs))
    theta = np.stack([p.to_unconstrained(np.full(3, PARAMS[model][p.name])) for p in agent.params])
    np.testing.assert_allclose(f(theta, obs)["loglik"], ref.sum(axis=1), rtol=1e-10)


def test_reference_distinguishes_the_models(sims):
    """The five models give different likelihoods on the same data (the reference is not vacuous)."""
    tr = sims["bandit4arm_lapse"].trials
    lls = {m: ref_loglik(m, PARAMS[m], tr["choice"].values[0], tr["gain"].values[0], tr["loss"].values[0]).sum()
           for m in MODELS}
    assert len({round(v, 6) for v in lls.values()}) == len(MODELS)


def test_lapse_decay_decays_only_unchosen_arms():
    """By hand: after one trial on arm 0 (gain 1, loss -1) with d = 0.5, arm 0 holds A R g and A P l exactly."""
    agent = nr.make_agent("bandit4arm_lapse_decay")
    tab = pd.DataFrame({"subject": 1, "choice": [0, 1, 0], "reward": [0.0, 1.0, 0.0], "loss": [-1.0, 0.0, 0.0]})
    tr = nr.from_table(tab, n_actions=4)
    par = {"Arew": 0.5, "Apun": 0.25, "R": 2.0, "P": 4.0, "xi": 0.1, "d": 0.5}
    lat = nr.replay(agent, tr, par)
    # before trial 1: arm 0 learnt Qr = 0.5 * 2 * 1 = 1, Qp = 0.25 * 4 * (-1) = -1
    np.testing.assert_allclose(lat["q_rew"].values[0, 1], [1.0, 0, 0, 0])
    np.testing.assert_allclose(lat["q_pun"].values[0, 1], [-1.0, 0, 0, 0])
    # trial 1 chose arm 1 (gain 1): arm 0 decays by half, arm 1 learns 0.5 * 2 * 1
    np.testing.assert_allclose(lat["q_rew"].values[0, 2], [0.5, 1.0, 0, 0])
    np.testing.assert_allclose(lat["q_pun"].values[0, 2], [-0.5, 0, 0, 0])


# ------------------------------------------------------------------ the loss channel's errors
def test_missing_loss_is_an_error_naming_agent_and_column():
    tr = nr.simulate("q_learning", "bandit", n_subjects=2, n_trials=20, rng=0).trials
    with pytest.raises(ValueError, match=r"bandit4arm_4par.*'loss'"):
        MAP("bandit4arm_4par").fit(tr)


def test_positive_loss_is_refused_naming_subject_and_trial():
    tab = pd.DataFrame({"subject": ["s1"] * 3, "choice": [0, 1, 2], "reward": [1.0, 2.0, 0.0],
                        "loss": [0.0, 1.0, 0.0]})
    tr = nr.from_table(tab, n_actions=4)
    with pytest.raises(ValueError, match=r"'loss' must be <= 0.*subject 's1', trial 1"):
        nr.make_agent("bandit4arm_lapse").check_data(tr)


def test_scaled_igt_reward_is_refused():
    """IGT data read with hbayesdm:igt have reward = (gain - |loss|) / 100, not gain + loss: refused, not misread."""
    tab = pd.DataFrame({"subjID": [1] * 4, "choice": [1, 2, 3, 4], "gain": [100, 100, 50, 50],
                        "loss": [0, -250, 0, -50]})
    tr = from_format(tab, "hbayesdm:igt")
    with pytest.raises(ValueError, match=r"not 'gain' \+ 'loss'.*hbayesdm:bandit4arm"):
        nr.make_agent("bandit4arm_4par").check_data(tr)
    ok = from_format(tab, "hbayesdm:bandit4arm")
    nr.make_agent("bandit4arm_4par").check_data(ok)


def test_nan_loss_on_a_valid_trial_fails_validation():
    tab = pd.DataFrame({"subject": [1, 1], "choice": [0, 1], "reward": [1.0, 0.0], "loss": [0.0, np.nan]})
    with pytest.raises(ValueError, match=r"'loss'.*NaN"):
        nr.from_table(tab, n_actions=4)


@pytest.mark.parametrize("dims", [("trial", "subject"), ("subject", "trial", "action")])
def test_replay_checks_the_loss_channel_dims(dims):
    """replay (through the trials' validation) checks 'loss' like the other channels: (subject, trial) or an error
    naming it, not a broadcasting error or a silent transposition."""
    tr = nr.simulate("bandit4arm_lapse", "bandit4arm", n_subjects=3, n_trials=20, rng=5,
                     params=PARAMS["bandit4arm_lapse"]).trials
    loss = tr["loss"].transpose("trial", "subject") if dims[0] == "trial" else tr["loss"].expand_dims(action=4, axis=2)
    bad = tr.assign(loss=loss)
    assert bad["loss"].dims == dims
    with pytest.raises(ValueError, match=r"'loss' must have dims \('subject', 'trial'\)"):
        nr.replay("bandit4arm_lapse", bad, PARAMS["bandit4arm_lapse"])
    nr.replay("bandit4arm_lapse", tr, PARAMS["bandit4arm_lapse"])  # the same data with the right dims pass


def test_other_agents_ignore_the_loss_channel():
    """q_learning's compiled likelihood is the same with and without a 'loss' variable in the data."""
    from neurorl.fitting.graph import compiled_loglik, uniform_observations
    from neurorl.simulate import observations

    tr = nr.simulate("q_learning", "bandit4arm", n_subjects=2, n_trials=30, rng=1).trials
    agent = nr.make_agent("q_learning")
    theta = np.stack([p.to_unconstrained(np.full(2, p.default)) for p in agent.params])
    vals = []
    for data in (tr, tr.drop_vars("loss")):
        env, obs = observations(data)
        vals.append(compiled_loglik(agent, env, uniform=uniform_observations(obs))(theta, obs)["loglik"])
    np.testing.assert_allclose(vals[0], vals[1], rtol=1e-12)


# ------------------------------------------------------------------ task and preset
def test_task_outcomes_and_fixed_probabilities():
    task = nr.make_task("bandit4arm", sd=0.0, p_gain=[0.25, 0.75, 0.5, 0.5], p_loss=[0.75, 0.25, 0.5, 0.5],
                        gain_size=2.0, loss_size=3.0)
    rng = np.random.default_rng(0)
    ts = task.reset(4000, rng)
    _, out = task.step(ts, np.repeat([0, 1], 2000), rng)
    assert set(np.unique(out["gain"])) == {0.0, 2.0} and set(np.unique(out["loss"])) == {-3.0, 0.0}
    np.testing.assert_array_equal(out["reward"], out["gain"] + out["loss"])
    # arm 0 gains with 0.25 and loses with 0.75; arm 1 the other way round (4 sd of a binomial proportion)
    for arm, pg, pl in ((0, 0.25, 0.75), (1, 0.75, 0.25)):
        sel = slice(arm * 2000, (arm + 1) * 2000)
        assert abs((out["gain"][sel] > 0).mean() - pg) < 4 * math.sqrt(pg * (1 - pg) / 2000)
        assert abs((out["loss"][sel] < 0).mean() - pl) < 4 * math.sqrt(pl * (1 - pl) / 2000)
    with pytest.raises(ValueError, match="p_gain must lie within bounds"):
        nr.make_task("bandit4arm", p_gain=[0.1, 0.5, 0.5, 0.5])


def test_task_probabilities_drift_within_bounds():
    sim = nr.simulate("bandit4arm_lapse", "bandit4arm", n_subjects=3, n_trials=300, rng=2)
    p = sim.trials["p_gain"].values
    assert p.min() >= 0.25 and p.max() <= 0.75
    assert np.abs(np.diff(p, axis=1)).max() > 0  # they move


def test_preset_reads_hbayesdm_layout(tmp_path):
    """hBayesDM's bandit4arm file: 1-based choices, losses as negatives or magnitudes (read as -|loss|)."""
    path = tmp_path / "bandit4arm_exampleData.txt"
    pd.DataFrame({"subjID": [7, 7, 7, 9, 9], "trial": [1, 2, 3, 1, 2], "choice": [1, 4, 2, 3, 3],
                  "gain": [1, 0, 1, 0, 1], "loss": [0, -1, 1, -1, 0]}).to_csv(path, sep="\t", index=False)
    tr = nr.read_trials(path, format="hbayesdm:bandit4arm")
    assert tr.attrs["format"] == "hbayesdm:bandit4arm" and tr.attrs["n_actions"] == 4
    np.testing.assert_array_equal(tr["choice"].values[0], [0, 3, 1])
    np.testing.assert_array_equal(tr["loss"].values[0], [0.0, -1.0, -1.0])  # the magnitude 1 read as -1
    np.testing.assert_array_equal(tr["reward"].values[0], [1.0, -1.0, 0.0])
    np.testing.assert_array_equal(tr["reward"].values[1, :2], [-1.0, 1.0])
    assert "loss: -|loss|" in tr.attrs["hbayesdm_codings"]
    # the reference on the file's own numbers (subject 7, hBayesDM's los = -|loss|)
    par = PARAMS["bandit4arm_lapse"]
    lat = nr.replay("bandit4arm_lapse", tr, par)
    ref = ref_loglik("bandit4arm_lapse", par, [0, 3, 1], [1, 0, 1], [0, -1, -1])
    np.testing.assert_allclose(_chosen_logp(lat, tr)[0], ref, rtol=1e-12)


def test_map_fit_runs_on_the_preset_layout(tmp_path):
    """MAP on a small simulated data set written in hBayesDM's layout and read back with the preset."""
    sim = nr.simulate("bandit4arm_2par_lapse", "bandit4arm", n_subjects=4, n_trials=80, rng=3,
                      params=PARAMS["bandit4arm_2par_lapse"])
    tr = sim.trials
    rows = [{"subjID": int(s), "choice": int(c) + 1, "gain": g, "loss": lo}
            for s in range(4) for c, g, lo in zip(tr["choice"].values[s], tr["gain"].values[s],
                                                  tr["loss"].values[s])]
    path = tmp_path / "b4.txt"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    data = nr.read_trials(path, format="hbayesdm:bandit4arm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MAP("bandit4arm_2par_lapse", n_starts=1, rng=0).fit(data)
    params = est.params_
    for name in ("Arew", "Apun", "xi"):
        v = np.asarray(params[name].values)
        assert np.all((v > 0) & (v < 1))


# ------------------------------------------------------------------ parameter recovery and NUTS (slow)
def test_recovery_population_is_the_stated_one():
    """gain_loss_population through draw_params (4,000 subjects): the medians and the logit sds of the docs."""
    from neurorl.agents.bandit4arm import GAIN_LOSS_POPULATION, gain_loss_population
    from neurorl.fitting.recovery import draw_params

    for model in ("bandit4arm_lapse_decay", "bandit4arm_singleA_lapse"):
        agent = nr.make_agent(model)
        theta = draw_params(agent, 4000, gain_loss_population(agent), rng=0)
        for p in agent.params:
            x = np.asarray(p.to_constrained(theta[p.name]))
            median, sd = GAIN_LOSS_POPULATION[p.name]
            z = np.log((x - p.lower) / (p.upper - x))  # the logit of the bounds, by hand
            assert abs(np.median(x) - median) < 0.05 * median, (model, p.name)
            assert abs(z.std() - sd) < 0.05, (model, p.name)
    with pytest.raises(ValueError, match="no population for parameter 'alpha'"):
        gain_loss_population("q_learning")



#: MAP recovery, 20 subjects x 300 trials from the population gain_loss_population (seed 0, 2 starts), measured
#: r(true, estimated) on a loaded 2-core machine (docs/agents.md):
#:   4par          Arew 0.93, Apun 0.89, R 0.94, P 0.92
#:   lapse         Arew 0.90, Apun 0.91, R 0.60, P 0.76, xi 0.47
#:   lapse_decay   Arew 0.92, Apun 0.91, R 0.59, P 0.63, xi 0.33, d 0.96
#:   singleA_lapse A 0.97, R 0.54, P 0.43, xi 0.28
#:   2par_lapse    Arew 0.41, Apun 0.69, xi 0.20
#: The floors are these values less 0.15 (0.1 at least); the lapse rate xi is not identified at this size: with
#: min_r = 0.5 the study flags it in every lapse model.
MAP_R = {
    "bandit4arm_4par": {"Arew": 0.93, "Apun": 0.89, "R": 0.94, "P": 0.92},
    "bandit4arm_lapse": {"Arew": 0.90, "Apun": 0.91, "R": 0.60, "P": 0.76, "xi": 0.47},
    "bandit4arm_lapse_decay": {"Arew": 0.92, "Apun": 0.91, "R": 0.59, "P": 0.63, "xi": 0.33, "d": 0.96},
    "bandit4arm_singleA_lapse": {"A": 0.97, "R": 0.54, "P": 0.43, "xi": 0.28},
    "bandit4arm_2par_lapse": {"Arew": 0.41, "Apun": 0.69, "xi": 0.20},
}


def _check_recovery(model, res, measured):
    for name, r in zip(res["param"].values, res["r"].values):
        floor = max(0.1, measured[str(name)] - 0.15)
        assert r >= floor, f"{model}: r({name}) = {r:.2f} < {floor:.2f}"
    flagged = {str(k) for k, ok in zip(res["param"].values, res["identified"].values) if not ok}
    assert ("xi" in flagged) == ("xi" in measured), flagged  # the lapse rate is not identified at this size
    assert not flagged & {k for k, v in measured.items() if v >= 0.7}, flagged  # the well recovered are not


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_parameter_recovery(model):
    """MAP recovery of 20 simulated subjects x 300 trials from the recovery population (seed 0, 2 starts): r above the
    measured values less 0.15; the study flags (FitWarning, ``identified``) what it does not identify at min_r 0.5."""
    from neurorl.agents.bandit4arm import gain_loss_population
    from neurorl.fitting.mle import FitWarning
    from neurorl.fitting.recovery import parameter_recovery

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = parameter_recovery(model, "bandit4arm", n_subjects=20, n_trials=300, params=gain_loss_population(model),
                                 rng=0, estimator_options={"n_starts": 2}, progress=False, min_r=0.5)
    assert float(res["converged"].mean()) == 1.0
    _check_recovery(model, res, MAP_R[model])
    flags = [str(w.message) for w in caught if issubclass(w.category, FitWarning) and "does not identify" in str(w.message)]
    assert bool(flags) == (not bool(res["identified"].all()))


#: MAP at 20 x 3000 (analyses/hbayesdm_recovery.py, seed 0): the lapse rate, not identified at 300 decisions per
#: subject, is at 3000 in the lapse models with sensitivities (2par_lapse's is not, even at 10000: r 0.40 at 3000)
XI_3000 = {"bandit4arm_lapse": 0.86, "bandit4arm_lapse_decay": 0.71, "bandit4arm_singleA_lapse": 0.68}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(XI_3000))
def test_lapse_rate_is_identified_with_more_trials(model):
    from neurorl.agents.bandit4arm import gain_loss_population
    from neurorl.fitting.recovery import parameter_recovery

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = parameter_recovery(model, "bandit4arm", n_subjects=20, n_trials=3000, params=gain_loss_population(model),
                                 rng=0, estimator_options={"n_starts": 2}, progress=False, min_r=0.5)
    assert float(res["r"].sel(param="xi")) >= XI_3000[model] - 0.15
    assert bool(res["identified"].sel(param="xi"))


#: NUTS with hBayesDM's priors (numpyro, 2 chains x 300 tuning + 300 draws), 20 x 300, seed 0, the same population:
#: r(true, posterior mean) measured on the loaded 2-core machine (R-hat above 1.01 for some subjects at this chain
#: length): lapse Arew 0.95, Apun 0.94, R 0.90, P 0.94, xi 0.40 (34 min; 7 of 20 subjects); singleA_lapse A 0.98,
#: R 0.95, P 0.85, xi 0.22 (18 min; 4 of 20)
NUTS_R = {"bandit4arm_lapse": {"Arew": 0.95, "Apun": 0.94, "R": 0.90, "P": 0.94, "xi": 0.40},
          "bandit4arm_singleA_lapse": {"A": 0.98, "R": 0.95, "P": 0.85, "xi": 0.22}}


@pytest.mark.slow
@pytest.mark.parametrize("model", sorted(NUTS_R))
def test_hierarchical_parameter_recovery(model):
    """Hierarchical recovery as hBayesDM users fit (priors='hbayesdm'): the sensitivities are identified by partial
    pooling (P: MAP 0.76 / 0.43, NUTS 0.94 / 0.85), the lapse rate is not (flagged at min_r 0.5)."""
    from neurorl.agents.bandit4arm import gain_loss_population
    from neurorl.fitting.recovery import parameter_recovery

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = parameter_recovery(model, "bandit4arm", n_subjects=20, n_trials=300, params=gain_loss_population(model),
                                 rng=0, estimator="NUTS", min_r=0.5, progress=False,
                                 estimator_options={"priors": "hbayesdm", "sampler": "numpyro", "draws": 300,
                                                    "tune": 300, "chains": 2})
    assert res.attrs["estimator"] == "HierarchicalBayes"
    _check_recovery(model, res, NUTS_R[model])


@pytest.mark.slow
def test_nuts_with_hbayesdm_priors():
    """A short NUTS run of bandit4arm_lapse_decay (the most parameters) with hBayesDM's priors: finite draws inside
    the bounds, the group values hBayesDM's transform of the raw group means, LOOIC by subject beside LOO by trial
    (``neurorl fit-bayes`` runs bandit4arm_4par in tests/test_cli_bayes.py)."""
    from neurorl.fitting.bayes import fit_bayes
    from neurorl.fitting.hbayesdm import looic

    model = "bandit4arm_lapse_decay"
    sim = nr.simulate(model, "bandit4arm", n_subjects=4, n_trials=60, rng=4, params=PARAMS[model])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_bayes(model, sim.trials, priors="hbayesdm", draws=60, tune=60, chains=2, cores=1,
                        random_seed=1, progress=False)
    post = fit.idata_.posterior
    for name, hi in (("Arew", 1), ("Apun", 1), ("R", 30), ("P", 30), ("xi", 1), ("d", 1)):
        v = post[name].values
        assert np.all(np.isfinite(v)) and np.all((v > 0) & (v < hi)), name
        raw = post["group_mean"].sel(param=name).values
        np.testing.assert_allclose(post[f"{name}_group"].values,
                                   hi / (1 + np.exp(-(0.07056 * raw ** 3 + 1.5976 * raw))), rtol=1e-9)
    tab = looic(fit, warn=False)
    assert tab.loc["subject", "n_terms"] == 4 and tab.loc["trial", "n_terms"] == 240
