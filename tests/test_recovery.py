"""Tests of neurorl.fitting.recovery (reference/fitting.md §6).

Expected numbers are derived here: the recovery bounds from the §6 anchor by Fisher's z, the
default generating distribution from the Param specs, confusion/inversion matrices by hand, the
summaries (r, bias, RMSE, cross-correlations) recomputed with plain NumPy from the returned true
and estimated values.
"""

from __future__ import annotations

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import neurorl as nr  # noqa: E402
from neurorl.fitting.recovery import (  # noqa: E402
    confusion_matrix, draw_params, inversion_matrix, model_recovery, parameter_recovery, plot_model_recovery,
    plot_parameter_recovery,
)

warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")

Q0 = 0.5  # Rescorla-Wagner with Q0 = 0.5 as in the fitting.md §7 benchmark


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def anchor_recovery():
    """The §6/§7 population (logit alpha ~ N(-1, 0.7), log beta ~ N(1, 0.4)) at 60 x 200, MAP."""
    agent = nr.make_agent("q_learning", q0=Q0)
    task = nr.make_task("bandit", p=(0.7, 0.3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return parameter_recovery(agent, task, n_subjects=60, n_trials=200,
                                  params={"alpha": (-1.0, 0.7), "beta": (1.0, 0.4)}, estimator="MAP",
                                  estimator_options={"n_starts": 10}, rng=2024)


def test_parameter_recovery_matches_the_anchor(anchor_recovery):
    ds = anchor_recovery
    r_alpha, r_beta = float(ds["r"].sel(param="alpha")), float(ds["r"].sel(param="beta"))
    print(f"\nparameter recovery q_learning/bandit(0.7, 0.3), MAP, 60 x 200: r(alpha) = {r_alpha:.3f}, "
          f"r(beta) = {r_beta:.3f} (unconstrained: {ds['r_unconstrained'].values.round(3).tolist()}); "
          f"anchor at 100 x 200: 0.76, 0.91")
    # Lower bounds: the anchor correlations (100 x 200) lowered by 3 standard errors of Fisher's z at n = 60
    # (se = 1 / sqrt(n - 3)); a correct pipeline on the same population falls below them with p ~ 0.001.
    se = 1.0 / math.sqrt(60 - 3)
    lo_alpha = math.tanh(math.atanh(0.76) - 3 * se)  # 0.536
    lo_beta = math.tanh(math.atanh(0.91) - 3 * se)  # 0.811
    assert r_alpha > lo_alpha
    assert r_beta > lo_beta


def test_parameter_recovery_summaries_recomputed(anchor_recovery):
    ds = anchor_recovery
    assert ds.sizes["subject"] == 60 and list(ds["param"].values) == ["alpha", "beta"]
    tu, eu = ds["true_unconstrained"].values, ds["estimated_unconstrained"].values
    t, e = ds["true"].values, ds["estimated"].values
    # transforms: alpha = sigmoid(theta), beta = exp(theta)
    np.testing.assert_allclose(t[:, 0], _sigmoid(tu[:, 0]), rtol=1e-12)
    np.testing.assert_allclose(t[:, 1], np.exp(tu[:, 1]), rtol=1e-12)
    np.testing.assert_allclose(e[:, 0], _sigmoid(eu[:, 0]), rtol=1e-9)
    np.testing.assert_allclose(e[:, 1], np.exp(eu[:, 1]), rtol=1e-9)
    # the generating distribution: sample means within 4 standard errors of (-1, 1)
    assert abs(tu[:, 0].mean() + 1.0) < 4 * 0.7 / math.sqrt(60)
    assert abs(tu[:, 1].mean() - 1.0) < 4 * 0.4 / math.sqrt(60)
    for j, name in enumerate(["alpha", "beta"]):
        r = np.sum((t[:, j] - t[:, j].mean()) * (e[:, j] - e[:, j].mean())) / math.sqrt(
            np.sum((t[:, j] - t[:, j].mean()) ** 2) * np.sum((e[:, j] - e[:, j].mean()) ** 2))
        assert float(ds["r"].sel(param=name)) == pytest.approx(r, abs=1e-12)
        assert float(ds["bias"].sel(param=name)) == pytest.approx(np.mean(e[:, j] - t[:, j]), abs=1e-12)
        assert float(ds["rmse"].sel(param=name)) == pytest.approx(math.sqrt(np.mean((e[:, j] - t[:, j]) ** 2)),
                                                                  abs=1e-12)
        assert float(ds["rmse_unconstrained"].sel(param=name)) == pytest.approx(
            math.sqrt(np.mean((eu[:, j] - tu[:, j]) ** 2)), abs=1e-12)
    # cross-correlation: entry (i, j) = corr(true_i, estimated_j); its diagonal is r
    cross = ds["cross_correlation"].values
    assert cross[0, 1] == pytest.approx(np.corrcoef(t[:, 0], e[:, 1])[0, 1], abs=1e-12)
    assert cross[1, 0] == pytest.approx(np.corrcoef(t[:, 1], e[:, 0])[0, 1], abs=1e-12)
    np.testing.assert_allclose(np.diag(cross), ds["r"].values, atol=1e-12)
    ec = ds["estimate_correlation"].values
    assert ec[0, 1] == pytest.approx(np.corrcoef(e[:, 0], e[:, 1])[0, 1], abs=1e-12)
    assert ds["converged"].values.all()


def test_plot_parameter_recovery_returns_figure(anchor_recovery):
    import matplotlib.pyplot as plt

    fig = plot_parameter_recovery(anchor_recovery)
    assert isinstance(fig, matplotlib.figure.Figure)
    axes = fig.axes
    assert len(axes) == 2
    assert "r = " in axes[0].get_title() and axes[0].get_title().startswith("alpha")
    r = float(anchor_recovery["r"].sel(param="beta"))
    assert f"{r:.2f}" in axes[1].get_title()
    # identity line: a dashed line whose x and y data coincide
    assert any(np.allclose(line.get_xdata(), line.get_ydata()) for line in axes[0].get_lines())
    fig2 = plot_parameter_recovery(anchor_recovery, scale="unconstrained")
    assert len(fig2.axes) == 2
    with pytest.raises(ValueError, match="scale"):
        plot_parameter_recovery(anchor_recovery, scale="log")
    plt.close("all")


# ------------------------------------------------------------------------------------------------
# generating distributions
# ------------------------------------------------------------------------------------------------

def test_draw_params_default_is_the_narrowed_prior_centred_on_the_default():
    agent = nr.make_agent("q_learning", q0=Q0)
    th = draw_params(agent, 40_000, rng=0)
    # alpha: default 0.3 -> logit 0.3; beta: default 3 -> log 3; both scale 0.4 * 2.5 = 1
    for name, loc in (("alpha", math.log(0.3 / 0.7)), ("beta", math.log(3.0))):
        x = th[name]
        assert abs(x.mean() - loc) < 4 / math.sqrt(x.size)
        assert abs(x.std() - 1.0) < 4 * 1.0 / math.sqrt(2 * x.size)
    th = draw_params(agent, 40_000, rng=0, narrow=0.2)
    assert abs(th["alpha"].std() - 0.5) < 4 * 0.5 / math.sqrt(2 * 40_000)


def test_draw_params_user_distributions_and_errors():
    agent = nr.make_agent("q_learning", q0=Q0)
    th = draw_params(agent, 5, {"alpha": (0.5, 0.0), "beta": lambda rng, n: np.linspace(-1, 1, n)}, rng=1)
    np.testing.assert_array_equal(th["alpha"], np.full(5, 0.5))
    np.testing.assert_array_equal(th["beta"], np.linspace(-1, 1, 5))
    th = draw_params(agent, 3, {"alpha": (100.0, 0.0)}, rng=1, bound=15.0)
    np.testing.assert_array_equal(th["alpha"], np.full(3, 15.0))
    with pytest.raises(ValueError, match="unknown parameter"):
        draw_params(agent, 3, {"gamma": (0, 1)})
    with pytest.raises(ValueError, match="shape"):
        draw_params(agent, 3, {"alpha": lambda rng, n: np.zeros(n + 1)})
    with pytest.raises(ValueError, match="loc, scale"):
        draw_params(agent, 3, {"alpha": "wide"})


# ------------------------------------------------------------------------------------------------
# confusion and inversion
# ------------------------------------------------------------------------------------------------

def test_confusion_and_inversion_on_a_hand_example():
    generated = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2]
    selected = [0, 0, 1, 0, 1, 1, 0, 1, 2, 1]
    C = confusion_matrix(generated, selected, 3)
    expected_C = np.array([[3 / 4, 1 / 4, 0.0],
                           [1 / 4, 3 / 4, 0.0],
                           [0.0, 1 / 2, 1 / 2]])
    np.testing.assert_allclose(C, expected_C, atol=1e-15)
    np.testing.assert_allclose(C.sum(axis=1), 1.0)
    # column sums 1, 3/2, 1/2 -> P(generated | selected) with a uniform prior over generators
    expected_inv = np.array([[3 / 4, 1 / 6, 0.0],
                             [1 / 4, 1 / 2, 0.0],
                             [0.0, 1 / 3, 1.0]])
    inv = inversion_matrix(C)
    np.testing.assert_allclose(inv, expected_inv, atol=1e-15)
    np.testing.assert_allclose(inv.sum(axis=0), 1.0)


def test_inversion_of_a_never_selected_model_is_nan_and_errors():
    C = confusion_matrix([0, 0, 1], [0, 0, 0], 2)
    np.testing.assert_allclose(C, [[1.0, 0.0], [1.0, 0.0]])
    inv = inversion_matrix(C)
    np.testing.assert_allclose(inv[:, 0], [0.5, 0.5])
    assert np.isnan(inv[:, 1]).all()
    with pytest.raises(ValueError, match="square"):
        inversion_matrix(np.ones((2, 3)))
    with pytest.raises(ValueError, match="indices"):
        confusion_matrix([0, 3], [0, 0], 2)


# ------------------------------------------------------------------------------------------------
# model recovery
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def mouse_recovery():
    agents = {"q_learning": nr.make_agent("q_learning", q0=Q0), "rflr": nr.make_agent("rflr")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model_recovery(agents, "mouse_bandit", n_subjects=24, n_trials=400, criterion="bic", rng=7)


def test_model_recovery_q_learning_vs_rflr_is_diagonal(mouse_recovery):
    ds = mouse_recovery
    C = ds["confusion"].values
    print(f"\nmodel recovery q_learning vs rflr on mouse_bandit (24 x 400, BIC): confusion {C.round(3).tolist()}, "
          f"pxp {ds['bms_pxp'].values.round(4).tolist()}")
    assert list(ds["generator"].values) == ["q_learning", "rflr"] == list(ds["model"].values)
    np.testing.assert_allclose(C.sum(axis=1), 1.0)
    # diagonal dominance: each generator is selected more often than any rival, and for most subjects
    for i in range(2):
        assert C[i, i] > 0.5
        assert C[i, i] > np.delete(C[i], i).max()
    # group level: the generating model has the largest protected exceedance probability
    pxp = ds["bms_pxp"].values
    np.testing.assert_allclose(pxp.sum(axis=1), 1.0, atol=1e-8)
    for i in range(2):
        assert pxp[i].argmax() == i


def test_model_recovery_bookkeeping(mouse_recovery):
    ds = mouse_recovery
    L = ds["log_evidence"].values  # generator, subject, model
    sel = ds["selected"].values
    np.testing.assert_array_equal(sel, L.argmax(axis=2))
    counts = np.array([[np.sum(sel[i] == j) for j in range(2)] for i in range(2)])
    np.testing.assert_array_equal(ds["counts"].values, counts)
    np.testing.assert_allclose(ds["confusion"].values, counts / counts.sum(axis=1, keepdims=True))
    C = ds["confusion"].values
    np.testing.assert_allclose(ds["inversion"].values, C / C.sum(axis=0, keepdims=True))
    # -BIC/2 log evidence: never above the maximised log-likelihood's scale (negative for Bernoulli choices)
    assert np.all(L < 0)
    assert ds.attrs["criterion"] == "bic"


def test_plot_model_recovery_returns_two_heatmaps(mouse_recovery):
    import matplotlib.pyplot as plt

    fig = plot_model_recovery(mouse_recovery)
    assert isinstance(fig, matplotlib.figure.Figure)
    heat = [ax for ax in fig.axes if ax.get_images()]
    assert len(heat) == 2
    np.testing.assert_allclose(heat[0].get_images()[0].get_array(), mouse_recovery["confusion"].values)
    np.testing.assert_allclose(heat[1].get_images()[0].get_array(), mouse_recovery["inversion"].values)
    plt.close("all")


def test_model_recovery_argument_errors():
    with pytest.raises(ValueError, match="at least two"):
        model_recovery(["q_learning"], "mouse_bandit", n_subjects=2, n_trials=10)
    with pytest.raises(ValueError, match="criterion"):
        model_recovery(["q_learning", "rflr"], "mouse_bandit", n_subjects=2, n_trials=10, criterion="waic")
    with pytest.raises(ValueError, match="unknown generator"):
        model_recovery(["q_learning", "rflr"], "mouse_bandit", n_subjects=2, n_trials=10, params={"x": {}})
    with pytest.raises(ValueError, match="not unique"):
        model_recovery([nr.make_agent("q_learning"), nr.make_agent("q_learning")], "mouse_bandit", n_subjects=2,
                       n_trials=10)
    with pytest.raises(ValueError, match="laplace"):
        model_recovery(["q_learning", "rflr"], "mouse_bandit", n_subjects=2, n_trials=30, criterion="laplace",
                       estimator="MLE", estimator_options={"n_starts": 1})


def test_labels_of_the_same_agent_with_other_options():
    from neurorl.fitting.recovery import _labels

    labels, _ = _labels([nr.make_agent("q_learning"), nr.make_agent("q_learning", perseveration=True)])
    assert labels == ["q_learning", "q_learning(perseveration=True)"]


def test_truth_recovery_by_hand():
    import xarray as xr

    from neurorl.fitting.recovery import truth_recovery

    # 4 subjects, 2 models; by hand: s0 -> a (true a), s1 -> b (true a), s2 -> b (true b), s3 -> a (tie -> first)
    L = xr.DataArray([[-1.0, -5.0, -9.0, -2.0], [-3.0, -4.0, -1.0, -2.0]], dims=("model", "subject"),
                     coords={"model": ["a", "b"], "subject": ["s0", "s1", "s2", "s3"]})
    res = truth_recovery(L, {"s0": "a", "s1": "a", "s2": "b", "s3": "b"}, criterion="bic")
    np.testing.assert_array_equal(res.counts.values, [[1, 1], [1, 1]])
    np.testing.assert_array_equal(res.selected_model.values, ["a", "b", "b", "a"])
    assert res.attrs["n_correct"] == 2 and res.attrs["accuracy"] == 0.5
    np.testing.assert_allclose(res.confusion.values, [[0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match="not among the candidates"):
        truth_recovery(L, ["a", "a", "c", "b"])
    with pytest.raises(ValueError, match="no generating model"):
        truth_recovery(L, {"s0": "a"})


# ------------------------------------------------------------------ hierarchical (NUTS) fits in a recovery study
class _FakeBayesFit:
    """The attributes of a fitted HierarchicalBayes that parameter_recovery reads (idata_, params_)."""

    def __init__(self, theta, params):
        import arviz as az
        import xarray as xr

        self.idata_ = az.InferenceData(posterior=xr.Dataset(
            {"theta": (("chain", "draw", "param", "subject"), theta)},
            coords={"param": ["alpha", "beta"], "subject": [10, 11]}))
        self.params_ = xr.Dataset({k: ("subject", v) for k, v in params.items()}, coords={"subject": [10, 11]})


def test_bayes_result_is_posterior_means_and_rhat_per_subject():
    """A hierarchical fit enters a recovery study as posterior means; a subject whose chains disagree (chain means
    0 and 3, sd 1) is not converged, the other (both chains N(0.5, 1)) is."""
    from neurorl.fitting.recovery import _bayes_result

    rng = np.random.default_rng(0)
    theta = rng.standard_normal((2, 500, 2, 2))
    theta[:, :, :, 0] += 0.5  # subject 10: both chains around 0.5
    theta[1, :, :, 1] += 3.0  # subject 11: the second chain is shifted by 3
    fit = _FakeBayesFit(theta, {"alpha": np.array([0.6, 0.7]), "beta": np.array([2.0, 3.0])})
    res = _bayes_result(fit)
    np.testing.assert_allclose(res["estimate"].values, [[0.6, 2.0], [0.7, 3.0]])
    np.testing.assert_allclose(res["theta"].values, theta.mean(axis=(0, 1)).T)
    assert res["converged"].values.tolist() == [True, False]
    assert np.isnan(res["loglik"].values).all()


def test_model_recovery_refuses_nuts():
    with pytest.raises(ValueError, match="does not give"):
        model_recovery(["q_learning", "soft_q"], "bandit", n_subjects=2, estimator="NUTS")


def test_min_r_flags_the_parameters_below_it():
    """min_r above every possible r flags every parameter (FitWarning naming them, identified False); below every
    possible r flags none, and the fits' own 'informed' is carried (q_learning's alpha and beta are informed)."""
    from neurorl.fitting.mle import FitWarning

    agent = nr.make_agent("q_learning", q0=Q0)
    task = nr.make_task("bandit", p=(0.7, 0.3))
    kw = dict(n_subjects=6, n_trials=40, params={"alpha": (-1.0, 0.7), "beta": (1.0, 0.4)},
              estimator_options={"n_starts": 1}, rng=3)
    with pytest.warns(FitWarning, match=r"does not identify alpha \(r = .*\), beta \(r = "):
        res = parameter_recovery(agent, task, min_r=1.01, **kw)
    assert res["identified"].values.tolist() == [False, False] and res["informed"].values.all()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = parameter_recovery(agent, task, min_r=-1.01, **kw)
    assert res["identified"].values.all() and res.attrs["min_r"] == -1.01
    assert not [w for w in caught if "does not identify" in str(w.message)]
