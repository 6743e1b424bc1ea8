"""``fit_bayes(..., priors="hbayesdm")``: hBayesDM's hierarchy, checked against independent computations."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import stats

import neurorl as nr
from neurorl.fitting.bayes import HierarchicalBayes, fit_bayes


#: no C compilation for graphs evaluated once (the likelihood is not evaluated)
FAST = "FAST_COMPILE"


def phi_approx(x):
    """Stan's Phi_approx, written out here (not imported)."""
    return 1.0 / (1.0 + np.exp(-(0.07056 * x ** 3 + 1.5976 * x)))


@pytest.fixture(scope="module")
def prl_trials():
    return nr.simulate("prl_fictitious", "reversal_learning", n_subjects=3, n_trials=40, rng=0).trials


def test_prior_table_is_hbayesdms(prl_trials):
    est = HierarchicalBayes("prl_fictitious", priors="hbayesdm")
    tab = est.prior_table()
    assert list(tab["param"].values) == ["eta", "alpha", "beta"]
    np.testing.assert_array_equal(tab["mu_loc"].values, 0.0)
    np.testing.assert_array_equal(tab["mu_scale"].values, 1.0)
    # prl_fictitious.stan: sigma[1] ~ normal(0, 0.2); sigma[2] ~ cauchy(0, 1.0); sigma[3] ~ normal(0, 0.2)
    np.testing.assert_array_equal(tab["sd_scale"].values, [0.2, 1.0, 0.2])
    assert list(tab["sd_dist"].values) == ["half-normal", "half-cauchy", "half-normal"]


def test_model_prior_density_and_transforms(prl_trials):
    """The model's prior log-density at a point equals the hBayesDM prior written out by hand, and the subject
    parameters are Phi_approx (times the bound) of ``mu + sigma z`` -- the identity for the indecision point."""
    import pymc as pm

    est = HierarchicalBayes("prl_fictitious", priors="hbayesdm")
    model = est.build_model(prl_trials)
    rng = np.random.default_rng(1)
    gm = rng.normal(size=3)
    sn = np.array([0.15, 0.3])          # sds of eta and beta (half-normal 0.2)
    sc = np.array([0.7])                # sd of alpha (half-Cauchy 1)
    off = rng.normal(size=(3, 3))
    point = {"group_mean": gm, "group_sd_normal_log__": np.log(sn), "group_sd_cauchy_log__": np.log(sc),
             "offset": off}
    logp = model.compile_logp(vars=model.free_RVs, jacobian=False, mode=FAST)(point)
    want = (stats.norm.logpdf(gm).sum() + stats.halfnorm.logpdf(sn, scale=0.2).sum()
            + stats.halfcauchy.logpdf(sc, scale=1.0).sum() + stats.norm.logpdf(off).sum())
    np.testing.assert_allclose(logp, want, rtol=1e-8)
    sd = np.array([sn[0], sc[0], sn[1]])
    raw = gm[:, None] + sd[:, None] * off
    outs = model.replace_rvs_by_values([model["eta"], model["alpha"], model["beta"], model["beta_group"]])
    f = model.compile_fn(outs, inputs=model.value_vars, on_unused_input="ignore", mode=FAST)
    eta, alpha, beta, beta_group = f(point)
    np.testing.assert_allclose(eta, phi_approx(raw[0]), rtol=1e-10)
    np.testing.assert_allclose(alpha, raw[1], rtol=1e-12)
    np.testing.assert_allclose(beta, 10 * phi_approx(raw[2]), rtol=1e-10)
    np.testing.assert_allclose(beta_group, 10 * phi_approx(gm[2]), rtol=1e-10)  # hBayesDM's mu_beta
    assert isinstance(model, pm.Model)


def test_prior_predictive_of_a_learning_rate():
    """Prior draws of a subject's ``Arew`` follow Phi_approx(N(0, 1) + half-N(0, 0.2) N(0, 1)), simulated here
    independently (two-sample Kolmogorov-Smirnov test at a fixed seed)."""
    import pymc as pm

    trials = nr.simulate("prl_rp", "reversal_learning", n_subjects=2, n_trials=20, rng=0).trials
    model = HierarchicalBayes("prl_rp", priors="hbayesdm").build_model(trials)
    with model:
        prior = pm.sample_prior_predictive(draws=4000, random_seed=2, var_names=["Arew"]).prior
    mine = prior["Arew"].values[..., 0].ravel()
    rng = np.random.default_rng(3)
    ref = phi_approx(rng.normal(size=4000) + np.abs(rng.normal(0, 0.2, 4000)) * rng.normal(size=4000))
    assert stats.ks_2samp(mine, ref).pvalue > 0.01
    # and not the default priors' spread (N(0, 2.5) group mean on the logit scale): a test that can fail
    default = HierarchicalBayes("prl_rp").build_model(trials)
    with default:
        other = pm.sample_prior_predictive(draws=4000, random_seed=2, var_names=["Arew"]).prior
    assert stats.ks_2samp(other["Arew"].values[..., 0].ravel(), ref).pvalue < 1e-6


def test_every_hbayesdm_port_has_a_full_prior():
    """Every agent that declares hBayesDM priors covers all its parameters, and no parameter name clashes with
    the model's own variables (hBayesDM's Kalman ``theta`` is ``decay_center`` for that reason)."""
    from neurorl.fitting.bayes import _RESERVED

    ports = [a for a in nr.list_agents() if getattr(nr.make_agent(a), "hbayesdm_priors", None)]
    assert len(ports) >= 16
    for name in ports:
        agent = nr.make_agent(name)
        tab = HierarchicalBayes(name, priors="hbayesdm").prior_table()
        assert list(tab["param"].values) == [p.name for p in agent.params], name
        assert not {p.name for p in agent.params} & set(_RESERVED), name


def test_hbayesdm_priors_need_an_hbayesdm_model(prl_trials):
    with pytest.raises(ValueError, match="not one of hBayesDM's models"):
        HierarchicalBayes("q_learning", priors="hbayesdm").prior_table()
    with pytest.raises(ValueError, match="'hbayesdm'"):
        HierarchicalBayes("prl_rp", priors="stan").prior_table()


def test_two_step_stickiness_maps_onto_zero_five():
    """ts_par4's pi is 5 Phi_approx(raw) in hBayesDM; here p is real, so theta = p itself."""
    from neurorl.agents._hbayesdm import HBPrior
    from neurorl.fitting.hbayesdm import raw_to_theta

    agent = nr.make_agent("ts_par4")
    spec = {p.name: p for p in agent.params}
    raw = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(raw_to_theta(raw, spec["p"], HBPrior("phi", lower=0.0, upper=5.0)),
                               5 * phi_approx(raw), rtol=1e-12)
    np.testing.assert_allclose(spec["beta"].to_constrained(raw_to_theta(raw, spec["beta"], HBPrior("exp"))),
                               np.exp(raw), rtol=1e-12)


@pytest.mark.slow
def test_fit_bayes_hbayesdm_runs_and_reports_looic():
    """A short NUTS run with hBayesDM's priors; LOOIC by subject (hBayesDM) beside ours by trial."""
    from neurorl.fitting.hbayesdm import looic

    sim = nr.simulate("prl_rp", "reversal_learning", n_subjects=4, n_trials=60, rng=4,
                      params={"Arew": 0.4, "Apun": 0.2, "beta": 3.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = fit_bayes("prl_rp", sim.trials, priors="hbayesdm", draws=150, tune=150, chains=2, cores=1,
                        random_seed=1, progress=False)
    post = fit.idata_.posterior
    np.testing.assert_allclose(post["Arew_group"].values, phi_approx(post["group_mean"].values[..., 1]), rtol=1e-9)
    tab = looic(fit, warn=False)
    assert list(tab.index) == ["subject", "trial"]
    assert tab.loc["subject", "n_terms"] == 4 and tab.loc["trial", "n_terms"] == 240
    np.testing.assert_allclose(tab["looic"], -2 * tab["elpd_loo"])
    # per-subject sums: the subject-level lppd is the sum over subjects of log E[exp(sum of the trials)]
    ll = fit.idata_.log_likelihood["loglik"].stack(s=("chain", "draw")).values  # (obs, S)
    subj = fit.idata_.log_likelihood["subject"].values
    sums = np.stack([ll[subj == s].sum(0) for s in np.unique(subj)])
    lppd = sum(math.log(np.mean(np.exp(r - r.max()))) + r.max() for r in sums)
    assert tab.loc["subject", "elpd_loo"] <= lppd + 1e-9
