"""Exact K-fold cross-validation by refitting (neurorl.fitting.cv.exact_cv).

The reference is written here: a plain NumPy softmax Q-learner (q0 = 0), replayed over all trials, whose MAP
objective on the training trials only (Normal(0, 2.5^2) priors on logit alpha and log beta, as MAP's defaults) is
minimised by scipy; the held-out trials are then scored at that optimum.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.optimize import minimize
from scipy.special import expit, logsumexp

import neurorl as nr
from neurorl.fitting import MAP
from neurorl.fitting.cv import CVResult, block_folds, cv_compare, exact_cv
from neurorl.fitting.loo import LOOWarning, laplace_loo


def _pointwise(th, choice, reward):
    alpha, beta = expit(th[0]), np.exp(th[1])
    q = np.zeros(2)
    out = np.empty(choice.size)
    for t in range(choice.size):
        lp = beta * q - logsumexp(beta * q)
        c = int(choice[t])
        out[t] = lp[c]
        q[c] += alpha * (reward[t] - q[c])
    return out


def _reference(trials, folds):
    elpd = np.full(trials.choice.shape, np.nan)
    for f in range(folds.shape[0]):
        for i in range(trials.sizes["subject"]):
            ch, rw, held = trials.choice.values[i], trials.reward.values[i], folds[f, i]

            def obj(th, ch=ch, rw=rw, held=held):
                return -(_pointwise(th, ch, rw)[~held].sum() - 0.5 * np.sum((th / 2.5) ** 2))

            th = minimize(obj, np.zeros(2), method="Nelder-Mead",
                          options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000}).x
            elpd[i, held] = _pointwise(th, ch, rw)[held]
    return elpd


@pytest.fixture(scope="module")
def fitted():
    task = nr.make_task("bandit", p=(0.8, 0.3))
    sim = nr.simulate("q_learning", task, n_subjects=3, n_trials=100, params={"alpha": 0.3, "beta": 3.0}, rng=5)
    est = MAP("q_learning", n_starts=3, rng=0).fit(sim.trials)
    return sim.trials, est


def test_exact_cv_matches_reference_refits(fitted):
    trials, _ = fitted
    sub = trials.isel(subject=[0, 1], trial=slice(0, 60))
    small = MAP("q_learning", n_starts=2, rng=0).fit(sub)
    res = exact_cv(small, k=3)
    assert isinstance(res, CVResult)
    ref = _reference(sub, block_folds(sub, 3))
    np.testing.assert_allclose(res.pointwise.elpd_cv.values, ref, atol=1e-5)
    assert res.n_points == 120
    assert res.elpd == pytest.approx(np.nansum(ref), abs=1e-4)
    assert res.se == pytest.approx(np.sqrt(120 * np.nanvar(ref)), rel=1e-6)
    # every trial scored once, by the fold that held it out
    np.testing.assert_array_equal(res.pointwise.fold.values, np.argmax(block_folds(sub, 3), axis=0))


def test_exact_cv_agrees_with_laplace_loo_where_reliable(fitted):
    _, est = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LOOWarning)
        loo = laplace_loo(est, n_draws=4000, scale=2.0, rng=0)
    assert np.all(loo.pointwise.k_approx.values < 0.7)  # Laplace is reliable on these fits
    # like for like: one trial per block (k = trials per subject) is exact leave-one-trial-out by refitting. The
    # refit scores at the MAP (plug-in), Laplace-LOO integrates over the posterior: a second-order difference.
    # Measured: -114.27 vs -114.76 in total (se of the paired difference 0.71), per subject within 0.35 nats.
    cv = exact_cv(est, k=100)
    diff = cv.pointwise.elpd_cv.values - loo.pointwise.elpd_loo.values
    se = np.sqrt(diff.size * np.var(diff))
    assert abs(cv.elpd - loo.elpd_loo) < se
    assert abs(cv.elpd - loo.elpd_loo) < 0.01 * abs(loo.elpd_loo)
    np.testing.assert_allclose(cv.pointwise.elpd_subject.values, loo.pointwise.elpd_subject.values, atol=0.5)


def test_cv_compare_and_subjects(fitted):
    trials, est = fitted
    part = exact_cv(est, k=4, subjects=[trials.subject.values[1]])
    assert np.isnan(part.pointwise.elpd_subject.values[[0, 2]]).all()
    assert part.n_points == 100
    with pytest.raises(ValueError, match="not in the fit"):
        exact_cv(est, k=4, subjects=["nobody"])
    full = exact_cv(est, k=4)
    np.testing.assert_allclose(full.pointwise.elpd_cv.values[1], part.pointwise.elpd_cv.values[1], atol=1e-8)
    cmp = cv_compare({"a": full, "b": full})
    assert cmp.delta_elpd.values.tolist() == [0.0, 0.0]
    assert cmp.attrs["best"].startswith("not distinguishable")


@pytest.mark.slow  # five EM-MAP fits
def test_loso_scores_each_subject_under_the_group_prior_of_the_others():
    import warnings

    from neurorl.fitting import EMMAP
    from neurorl.fitting.cv import loso_cv

    task = nr.make_task("bandit", p=(0.8, 0.3))
    sim = nr.simulate("q_learning", task, n_subjects=3, n_trials=40, params={"alpha": 0.3, "beta": 3.0}, rng=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = EMMAP("q_learning", n_starts=1, rng=0, max_em_iter=20).fit(sim.trials)
        res = loso_cv(em, sim.trials)
        # subject 2 by hand: the group prior from subjects 0 and 1, then subject 2's Laplace marginal likelihood
        # log int p(y|th) N(th; mu, sd) dth ~ loglik + logprior + D/2 log 2 pi - 1/2 log det H at its MAP
        other = EMMAP("q_learning", n_starts=1, rng=0, max_em_iter=20).fit(sim.trials.isel(subject=[0, 1]))
        mu, sd = other.group_mean_.values, other.group_sd_.values
    from scipy.optimize import minimize

    ch, rw = sim.trials.choice.values[2], sim.trials.reward.values[2]

    def nlp(th):
        return -(_pointwise(th, ch, rw).sum() - 0.5 * np.sum(((th - mu) / sd) ** 2)
                 - np.sum(np.log(sd)) - np.log(2 * np.pi))

    opt = minimize(nlp, mu, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 4000})
    h = 1e-4  # Hessian of the reference by central differences (a check written here, not a hot path)
    H = np.empty((2, 2))
    for i in range(2):
        for j in range(2):
            e_i, e_j = np.eye(2)[i] * h, np.eye(2)[j] * h
            H[i, j] = (nlp(opt.x + e_i + e_j) - nlp(opt.x + e_i - e_j) - nlp(opt.x - e_i + e_j)
                       + nlp(opt.x - e_i - e_j)) / (4 * h * h)
    ref = -opt.fun + np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(H))
    assert res.method == "loso" and res.n_points == 3
    assert res.pointwise.elpd_subject.values[2] == pytest.approx(ref, abs=1e-3)
    assert res.elpd == pytest.approx(res.pointwise.elpd_subject.values.sum())
