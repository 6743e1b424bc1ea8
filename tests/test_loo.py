"""Laplace importance-corrected PSIS-LOO (neurorl.fitting.loo) against exact leave-one-out by quadrature.

The exact reference: for Q-learning (alpha, beta) with the MAP's N(0, 2.5^2) priors on (logit alpha, log beta),
the Bayesian leave-one-trial-out predictive density is a ratio of two integrals over the 2-D parameter space,

    p(y_t | y_-t) = int p(y | th) p(th) dth / int p(y | th) p(th) / p(y_t | th) dth,

computed on a 401 x 401 grid over [-10, 10]^2 (spacing 0.05, far finer than the posterior SDs of 0.1-0.6) with
the per-trial likelihood from a plain NumPy Q-learning loop written here. Both integrals use the same grid, so the
grid spacing cancels.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import expit, logsumexp

import neurorl as nr
from neurorl.fitting import MAP, MLE
from neurorl.fitting.loo import LOOResult, LOOWarning, laplace_loo, loo_compare


def _ql_pointwise(alpha, beta, choice, reward):
    """(G, T) log P(choice_t) of a softmax Q-learner, q0 = 0, for G parameter pairs (independent reference)."""
    q = np.zeros((alpha.size, 2))
    out = np.empty((alpha.size, choice.size))
    for t in range(choice.size):
        logits = beta[:, None] * q
        lp = logits - logsumexp(logits, axis=1, keepdims=True)
        c = int(choice[t])
        out[:, t] = lp[:, c]
        q[:, c] += alpha * (reward[t] - q[:, c])
    return out


def _exact(trials):
    """Exact pointwise elpd_loo and lppd (subject, trial) by quadrature."""
    g = np.linspace(-10.0, 10.0, 401)
    a, b = (x.ravel() for x in np.meshgrid(g, g, indexing="ij"))
    log_prior = -0.5 * (a / 2.5) ** 2 - 0.5 * (b / 2.5) ** 2
    elpd, lppd = [], []
    for i in range(trials.sizes["subject"]):
        ll = _ql_pointwise(expit(a), np.exp(b), trials.choice.values[i], trials.reward.values[i])
        joint = ll.sum(axis=1) + log_prior
        norm = logsumexp(joint)
        elpd.append(norm - logsumexp(joint[:, None] - ll, axis=0))
        lppd.append(logsumexp(joint[:, None] + ll, axis=0) - norm)
    return np.array(elpd), np.array(lppd)


@pytest.fixture(scope="module")
def fitted():
    task = nr.make_task("bandit", p=(0.8, 0.3))
    sim = nr.simulate("q_learning", task, n_subjects=3, n_trials=100, params={"alpha": 0.3, "beta": 3.0}, rng=5)
    est = MAP("q_learning", n_starts=3, rng=0).fit(sim.trials)
    return sim.trials, est, _exact(sim.trials)


def test_corrected_loo_matches_exact_quadrature(fitted):
    trials, est, (exact_elpd, exact_lppd) = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LOOWarning)
        res = laplace_loo(est, n_draws=20000, scale=2.0, rng=0)
    assert isinstance(res, LOOResult)
    assert res.n_points == 300 and res.n_draws == 20000
    # Monte Carlo error at 20,000 draws was 0.003-0.03 nats in total over seeds; the stated tolerance is 0.1 nats
    # in total (0.1 % of |elpd|) and 0.02 nats per trial
    assert abs(res.elpd_loo - exact_elpd.sum()) < 0.1
    np.testing.assert_allclose(res.pointwise.elpd_loo.values, exact_elpd, atol=0.02)
    np.testing.assert_allclose(res.pointwise.lppd.values, exact_lppd, atol=0.02)
    assert abs(res.p_loo - (exact_lppd - exact_elpd).sum()) < 0.1
    np.testing.assert_allclose(res.pointwise.elpd_subject.values, exact_elpd.sum(axis=1), atol=0.1)
    # se as ArviZ defines it, from the pointwise values
    flat = res.pointwise.elpd_loo.values.ravel()
    assert res.se == pytest.approx(np.sqrt(flat.size * flat.var()), rel=1e-12)
    assert float(res.elpd_data["elpd_loo"]) == pytest.approx(res.elpd_loo)


def test_default_proposal_and_uncorrected_draws(fitted):
    trials, est, (exact_elpd, _) = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LOOWarning)
        default = laplace_loo(est, n_draws=4000, rng=1)          # scale 1.5, corrected
        raw = laplace_loo(est, n_draws=4000, rng=1, correct=False, scale=1.0)
    exact = exact_elpd.sum()
    assert abs(default.elpd_loo - exact) < 0.15
    # Laplace draws treated as posterior draws are biased here (0.4 nats at 100 trials per subject)
    assert abs(raw.elpd_loo - exact) > 2 * abs(default.elpd_loo - exact)
    assert raw.method == "laplace-psis-uncorrected"
    # the first choice (q = 0: P = 1/2 at every draw) is exact, not an infinite Pareto k
    np.testing.assert_allclose(raw.pointwise.elpd_loo.values[:, 0], np.log(0.5), atol=1e-12)
    assert np.all(raw.pointwise.pareto_k.values[:, 0] == 0.0)


def test_result_dataset_route_equals_estimator_route(fitted):
    trials, est, _ = fitted
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LOOWarning)
        a = laplace_loo(est, n_draws=500, rng=3)
        b = laplace_loo(est.result_, trials, agent="q_learning", n_draws=500, rng=3)
    np.testing.assert_array_equal(a.pointwise.elpd_loo.values, b.pointwise.elpd_loo.values)
    with pytest.raises(ValueError, match="needs the fitted trials"):
        laplace_loo(est.result_, agent="q_learning")
    with pytest.raises(ValueError, match="not those of agent"):
        laplace_loo(est.result_, trials, agent="soft_q")
    with pytest.raises(ValueError, match="not fitted yet"):
        laplace_loo(MAP("q_learning"))


def test_loo_compare_paired_se(fitted):
    trials, est, _ = fitted
    other = MLE("q_learning", n_starts=2, rng=0).fit(trials)  # same compiled likelihood, no prior
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LOOWarning)
        r1, r2 = laplace_loo(est, n_draws=500, rng=0), laplace_loo(other, n_draws=500, rng=0)
    table = loo_compare({"map": r1, "mle": r2})  # the MLE fit: another proposal and a flat prior
    e1, e2 = r1.pointwise.elpd_loo.values.ravel(), r2.pointwise.elpd_loo.values.ravel()
    best, worst = (e1, e2) if e1.sum() > e2.sum() else (e2, e1)
    assert table.attrs["best"] == ("map" if e1.sum() > e2.sum() else "mle")
    assert float(table.delta_elpd.max()) == pytest.approx(best.sum() - worst.sum())
    assert float(table.se_delta.max()) == pytest.approx(np.sqrt(best.size * np.var(best - worst)))
    assert float(table.se_delta.min()) == 0.0


def test_warns_when_laplace_is_poor():
    # 12 trials: the posterior is far from Gaussian (a long ridge in alpha at small beta)
    sim = nr.simulate("q_learning", nr.make_task("bandit", p=(0.8, 0.3)), n_subjects=2, n_trials=12, rng=2)
    est = MAP("q_learning", n_starts=2, rng=0).fit(sim.trials)
    with pytest.warns(LOOWarning, match="Pareto k"):
        laplace_loo(est, n_draws=300, rng=0, scale=1.0)
