"""Tests of neurorl.fitting.compare (reference/fitting.md sections 5 and 5.1).

Every expected number is derived independently: closed forms worked out by hand
below, scipy's regularised incomplete beta function, Monte Carlo draws, 1-D
quadrature of the exact marginal likelihood, or a plain loop re-implementation
of the VBA_groupBMC iteration written in this file.
"""

import math
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from scipy import integrate  # noqa: E402
from scipy.special import betainc, digamma  # noqa: E402

from neurorl.fitting.compare import BMSResult, bms, compare_table, dirichlet_exceedance, plot_bms  # noqa: E402


def _heterogeneous(n_first=18, n_second=2, gap=50.0):
    """K = 2 log evidences: n_first subjects with L = (0, -gap), n_second with (-gap, 0)."""
    L = np.zeros((2, n_first + n_second))
    L[1, :n_first] = -gap
    L[0, n_first:] = -gap
    return L


# ------------------------------------------------------------------------------------------------
# bms: known answers
# ------------------------------------------------------------------------------------------------

def test_identical_evidence_gives_closed_form_bor_and_chance_pxp():
    # Every model has the same evidence for each subject. Then r stays 1/K, a_k = 1 + N/K, and
    # F1 - F0 = lnG(K) + N ln K + K lnG(1 + N/K) - lnG(K + N) (the E_k terms cancel; derived by hand).
    K, N = 4, 30
    per_subject = np.random.default_rng(1).normal(-40.0, 5.0, size=N)
    L = np.tile(per_subject, (K, 1))
    res = bms(L)
    d = math.lgamma(K) + N * math.log(K) + K * math.lgamma(1 + N / K) - math.lgamma(K + N)
    assert res.bor == pytest.approx(1.0 / (1.0 + math.exp(d)), abs=1e-10)
    assert res.bor > 0.95
    assert res.F0 == pytest.approx(per_subject.sum(), abs=1e-9)        # logsumexp(L) - ln K = L
    np.testing.assert_allclose(res.alpha.values, 1 + N / K, atol=1e-12)
    np.testing.assert_allclose(res.r.values, 1.0 / K, atol=1e-12)
    np.testing.assert_allclose(res.ep.values, 1.0 / K, atol=1e-8)       # symmetry
    np.testing.assert_allclose(res.pxp.values, 1.0 / K, atol=1e-8)
    np.testing.assert_allclose(res.frequencies.values, 1.0 / K, atol=1e-12)
    assert res.converged


def test_overwhelming_evidence_for_one_model():
    K, N = 3, 20
    L = np.full((K, N), -300.0)
    L[1] = -10.0
    res = bms(L)
    np.testing.assert_allclose(res.alpha.values, [1.0, 1.0 + N, 1.0], atol=1e-9)
    np.testing.assert_allclose(res.r.values[1], 1.0, atol=1e-12)
    assert res.ep.values[1] > 1 - 1e-5
    assert res.pxp.values[1] > 0.999
    assert res.bor < 1e-6
    assert int(np.argmax(res.pxp.values)) == 1


@pytest.mark.parametrize("a", [(1.0, 1.0), (3.0, 2.0), (0.3, 0.5), (21.0, 1.0), (500.0, 480.0), (1.5, 40.0),
                               (2000.0, 2100.0)])
def test_two_model_ep_equals_beta_formula(a):
    # f_1 ~ Beta(a1, a2); ep_1 = P(f_1 > 1/2) = 1 - I_{1/2}(a1, a2).
    ep = dirichlet_exceedance(a)
    expected = 1.0 - betainc(a[0], a[1], 0.5)
    assert ep[0] == pytest.approx(expected, abs=1e-9)
    assert ep[1] == pytest.approx(1.0 - expected, abs=1e-9)


def test_two_model_bms_ep_equals_beta_formula():
    res = bms(_heterogeneous(14, 6, gap=1.5))
    a1, a2 = res.alpha.values
    assert res.ep.values[0] == pytest.approx(1.0 - betainc(a1, a2, 0.5), abs=1e-9)
    assert res.pxp.values[0] == pytest.approx((1 - res.bor) * (1.0 - betainc(a1, a2, 0.5)) + res.bor / 2, abs=1e-9)


@pytest.mark.parametrize("alpha", [(3.2, 2.5, 1.7), (0.4, 0.7, 0.3), (40.0, 44.0, 30.0)])
def test_three_model_ep_monte_carlo(alpha):
    rng = np.random.default_rng(12345)
    n = 1_000_000
    draws = rng.dirichlet(alpha, size=n)
    p_mc = np.bincount(np.argmax(draws, axis=1), minlength=3) / n
    ep = dirichlet_exceedance(alpha)
    se = np.sqrt(p_mc * (1 - p_mc) / n)
    assert np.all(np.abs(ep - p_mc) < 5 * se + 1e-6), (ep, p_mc, se)
    assert ep.sum() == pytest.approx(1.0, abs=1e-8)   # not renormalised, yet sums to 1


def test_bms_ep_matches_monte_carlo_on_posterior():
    rng = np.random.default_rng(3)
    L = rng.normal(0.0, 2.0, size=(3, 12))
    res = bms(L)
    draws = np.random.default_rng(4).dirichlet(res.alpha.values, size=1_000_000)
    p_mc = np.bincount(np.argmax(draws, axis=1), minlength=3) / draws.shape[0]
    se = np.sqrt(p_mc * (1 - p_mc) / draws.shape[0])
    assert np.all(np.abs(res.ep.values - p_mc) < 5 * se + 1e-6)


def test_F0_by_hand_uses_minus_ln_K():
    L = np.array([[0.0, -1.0], [-2.0, 0.0]])
    res = bms(L)
    f0 = (math.log(1 + math.exp(-2.0)) - math.log(2)) + (math.log(math.exp(-1.0) + 1) - math.log(2))
    assert res.F0 == pytest.approx(f0, abs=1e-12)
    assert f0 == pytest.approx(-0.946104, abs=1e-6)
    # the groupBMC defect (ln a0 = 0 for a0 = ones) would give F0 larger by N ln K
    no_lnK = math.log(1 + math.exp(-2.0)) + math.log(math.exp(-1.0) + 1)
    assert res.F0 == pytest.approx(no_lnK - 2 * math.log(2), abs=1e-12)
    np.testing.assert_allclose(res.alpha0.values, [1.0, 1.0])


def test_bor_small_for_unequal_frequencies_and_F1_bounds_exact_evidence():
    # 18 subjects for model 0, 2 for model 1, the other model's evidence negligible (e^-50).
    L = _heterogeneous(18, 2, gap=50.0)
    res = bms(L)
    f0_hand = -20 * math.log(2)                                        # sum_n [0 - ln 2]
    assert res.F0 == pytest.approx(f0_hand, abs=1e-12)
    # exact log p(L | H1) = log int Beta(f; 1, 1) prod_n (f e^{L_0n} + (1 - f) e^{L_1n}) df ~ ln B(19, 3)
    lnB = math.log(2.0 / (21 * 20 * 19))
    val, _ = integrate.quad(lambda f: np.prod(f * np.exp(L[0]) + (1 - f) * np.exp(L[1])), 0, 1,
                            epsabs=0, epsrel=1e-12, points=[0.9])
    assert math.log(val) == pytest.approx(lnB, abs=1e-9)
    assert res.F1 <= lnB + 1e-9                                        # free energy is a lower bound
    assert res.F1 > lnB - 1.0
    assert res.bor == pytest.approx(1 / (1 + math.exp(res.F1 - f0_hand)), rel=1e-12)
    assert res.bor < 0.05                                              # the defective null gives ~1


def test_vb_fixed_point():
    rng = np.random.default_rng(7)
    L = rng.normal(-30.0, 3.0, size=(3, 15))
    res = bms(L, tol=0.0, max_iter=5000)
    a, a0, r = res.alpha.values, res.alpha0.values, res.r.values
    np.testing.assert_allclose(a, a0 + r.sum(axis=1), rtol=0, atol=1e-12)
    E = digamma(a) - digamma(a.sum())
    z = L + E[:, None]
    z = np.exp(z - z.max(axis=0))
    np.testing.assert_allclose(r, z / z.sum(axis=0), atol=1e-9)
    np.testing.assert_allclose(res.frequencies.values, a / a.sum(), atol=1e-14)
    np.testing.assert_allclose(r.sum(axis=0), 1.0, atol=1e-12)


def _reference_vba(L, a0, max_iter=32, tol=1e-4):
    """Plain-loop transcription of VBA_groupBMC (FE, checkStop, FE_null) for the test."""
    K, n = len(L), len(L[0])
    a = list(a0)
    r = [[a0[k] / sum(a0) for _ in range(n)] for k in range(K)]

    def fe(a, r):
        A = sum(a)
        Elogr = [digamma(a[k]) - digamma(A) for k in range(K)]
        sqf = sum(math.lgamma(x) for x in a) - math.lgamma(A) - sum((a[k] - 1) * Elogr[k] for k in range(K))
        sqm = 0.0
        for i in range(n):
            for k in range(K):
                if r[k][i] > 0:
                    sqm -= r[k][i] * math.log(r[k][i])
        elj = math.lgamma(sum(a0)) - sum(math.lgamma(x) for x in a0) + sum((a0[k] - 1) * Elogr[k] for k in range(K))
        for i in range(n):
            for k in range(K):
                elj += r[k][i] * (Elogr[k] + L[k][i])
        return elj + sqf + sqm

    F = [fe(a, r)]
    it = 1
    while True:
        it += 1
        A = sum(a)
        Elogr = [digamma(a[k]) - digamma(A) for k in range(K)]
        for i in range(n):
            tmp = [L[k][i] + Elogr[k] for k in range(K)]
            m = max(tmp)
            g = [math.exp(t - m) for t in tmp]
            for k in range(K):
                r[k][i] = g[k] / sum(g)
        a = [a0[k] + sum(r[k]) for k in range(K)]
        F.append(fe(a, r))
        if abs(F[-1] - F[-2]) <= tol or it >= max_iter:
            break
    F0 = 0.0
    for i in range(n):
        m = max(L[k][i] for k in range(K))
        g = [math.exp(L[k][i] - m) for k in range(K)]
        g = [x / sum(g) for x in g]
        for k in range(K):
            F0 += g[k] * (L[k][i] - math.log(g[k]) - math.log(K))
    return np.array(a), np.array(r), np.array(F), F0


@pytest.mark.parametrize("seed,K,N", [(0, 2, 9), (1, 3, 20), (2, 5, 7)])
def test_matches_plain_loop_vba(seed, K, N):
    L = np.random.default_rng(seed).normal(-50.0, 4.0, size=(K, N))
    a_ref, r_ref, F_ref, F0_ref = _reference_vba(L.tolist(), [1.0] * K)
    res = bms(L, stop="vba")
    np.testing.assert_allclose(res.alpha.values, a_ref, atol=1e-10)
    np.testing.assert_allclose(res.r.values, r_ref, atol=1e-10)
    np.testing.assert_allclose(res.free_energy, F_ref, atol=1e-8)
    assert res.n_iter == len(F_ref)
    assert res.F1 == pytest.approx(F_ref[-1], abs=1e-8)
    assert res.F0 == pytest.approx(F0_ref, abs=1e-8)
    assert res.bor == pytest.approx(1 / (1 + math.exp(F_ref[-1] - F0_ref)), abs=1e-10)


def test_free_energy_increases():
    L = np.random.default_rng(5).normal(-20.0, 3.0, size=(4, 25))
    res = bms(L, tol=0.0, max_iter=200)
    assert np.all(np.diff(res.free_energy) > -1e-9)


# ------------------------------------------------------------------------------------------------
# bms: families, labels, validation
# ------------------------------------------------------------------------------------------------

def _labelled(L, names=("a", "b", "c")):
    return xr.DataArray(L, dims=("model", "subject"),
                        coords={"model": list(names), "subject": [f"s{i}" for i in range(L.shape[1])]})


def test_families_prior_null_and_pooling():
    L = np.random.default_rng(11).normal(-20.0, 2.0, size=(3, 10))
    res = bms(_labelled(L), families={"A": ["a", "b"], "B": ["c"]}, stop="vba")  # compared with VBA's loop below
    np.testing.assert_allclose(res.alpha0.values, [0.5, 0.5, 1.0])
    fam = res.families
    assert isinstance(fam, BMSResult)
    assert list(fam.alpha["family"].values) == ["A", "B"]
    a = res.alpha.values
    np.testing.assert_allclose(fam.alpha.values, [a[0] + a[1], a[2]], atol=1e-12)
    np.testing.assert_allclose(fam.alpha0.values, [1.0, 1.0])
    np.testing.assert_allclose(fam.r.values, [res.r.values[0] + res.r.values[1], res.r.values[2]], atol=1e-12)
    fa = fam.alpha.values
    assert fam.ep.values[0] == pytest.approx(1 - betainc(fa[0], fa[1], 0.5), abs=1e-9)
    # family null: model frequencies fixed at (1/4, 1/4, 1/2)
    F0f = sum(math.log(0.25 * math.exp(L[0, i]) + 0.25 * math.exp(L[1, i]) + 0.5 * math.exp(L[2, i]))
              for i in range(L.shape[1]))
    assert fam.F0 == pytest.approx(F0f, abs=1e-9)
    assert fam.bor == pytest.approx(1 / (1 + math.exp(res.F1 - F0f)), abs=1e-12)
    np.testing.assert_allclose(fam.pxp.values, (1 - fam.bor) * fam.ep.values + fam.bor / 2, atol=1e-12)
    # model level still uses the uniform null
    F0m = sum(math.log((math.exp(L[0, i]) + math.exp(L[1, i]) + math.exp(L[2, i])) / 3) for i in range(10))
    assert res.F0 == pytest.approx(F0m, abs=1e-9)
    # the same run with a plain loop and the family prior
    a_ref, r_ref, F_ref, _ = _reference_vba(L.tolist(), [0.5, 0.5, 1.0])
    np.testing.assert_allclose(a, a_ref, atol=1e-10)
    # families by position give the same answer
    res2 = bms(L, families=[[0, 1], [2]], stop="vba")
    np.testing.assert_allclose(res2.families.alpha.values, fa)
    assert "family_ep" in res.to_dataset()


@pytest.mark.parametrize("families,match", [
    ({"A": ["a", "b"], "B": ["b", "c"]}, "overlap"),
    ({"A": ["a"], "B": ["c"]}, "no family"),
    ({"A": ["a", "b"], "B": ["z"]}, "not among"),
    ({"A": [], "B": ["a", "b", "c"]}, "empty"),
])
def test_families_validation(families, match):
    with pytest.raises(ValueError, match=match):
        bms(_labelled(np.zeros((3, 4))), families=families)


def test_dataarray_labels_and_transposed_input():
    L = np.random.default_rng(2).normal(-10.0, 2.0, size=(3, 6))
    da = _labelled(L, names=("rw", "dra", "soft_q"))
    res_np = bms(L)
    res_da = bms(da.transpose("subject", "model"))
    assert list(res_da.alpha["model"].values) == ["rw", "dra", "soft_q"]
    assert list(res_da.r["subject"].values) == [f"s{i}" for i in range(6)]
    assert res_da.r.dims == ("model", "subject")
    np.testing.assert_allclose(res_da.alpha.values, res_np.alpha.values)
    np.testing.assert_allclose(res_da.pxp.values, res_np.pxp.values)
    text = repr(res_da)
    assert "dra" in text and "BOR" in text and "pxp" in text
    ds = res_da.to_dataset()
    assert float(ds["bor"]) == res_da.bor
    assert ds["r"].dims == ("model", "subject")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_evidence_names_model_and_subject(bad):
    L = np.zeros((3, 5))
    L[1, 2] = bad
    with pytest.raises(ValueError, match=r"model 'b' \(index 1\), subject 's2' \(index 2\)"):
        bms(_labelled(L))
    with pytest.raises(ValueError, match=r"model 1 \(index 1\), subject 2 \(index 2\)"):
        bms(L)


def test_input_validation():
    with pytest.raises(ValueError, match="at least 2 models"):
        bms(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="2-D"):
        bms(np.zeros(4))
    with pytest.raises(ValueError, match="dims"):
        bms(xr.DataArray(np.zeros((2, 3)), dims=("model", "trial")))
    with pytest.raises(ValueError, match="max_iter"):
        bms(np.zeros((2, 3)), max_iter=1)
    with pytest.raises(ValueError, match="alpha"):
        dirichlet_exceedance([1.0, 0.0])


def test_warns_when_not_converged():
    L = np.random.default_rng(0).normal(0.0, 3.0, size=(3, 30))
    with pytest.warns(RuntimeWarning, match="max_iter"):
        res = bms(L, max_iter=2, tol=1e-12)
    assert not res.converged and res.n_iter == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert bms(L).converged


# ------------------------------------------------------------------------------------------------
# compare_table
# ------------------------------------------------------------------------------------------------

def _fits():
    subjects = ["s1", "s2", "s3"]
    a = xr.Dataset({"loglik": ("subject", [-50.0, -60.0, -70.0]), "n_params": 2,
                    "n_trials": ("subject", [100, 100, 50]),
                    "laplace_log_evidence": ("subject", [-55.0, -64.0, -74.0]), "ibic": 400.0},
                   coords={"subject": subjects})
    # model b lists its subjects in another order; values below are for s1, s2, s3
    order = [2, 0, 1]
    b = xr.Dataset({"loglik": ("subject", np.array([-48.0, -61.0, -65.0])[order]),
                    "n_params": ("subject", [3, 3, 3]),
                    "n_trials": ("subject", np.array([100, 100, 50])[order]),
                    "laplace_log_evidence": ("subject", np.array([-54.0, -66.0, -71.0])[order]), "ibic": 395.5},
                   coords={"subject": np.array(subjects)[order]})
    return {"rw": a, "dra": b}


def test_compare_table_hand_computed():
    t = compare_table(_fits())
    assert list(t["model"].values) == ["rw", "dra"]
    assert list(t["subject"].values) == ["s1", "s2", "s3"]
    np.testing.assert_allclose(t["aic"].sel(model="rw").values, [104.0, 124.0, 144.0])
    np.testing.assert_allclose(t["aic"].sel(model="dra").values, [102.0, 128.0, 136.0])
    ln100, ln50 = math.log(100), math.log(50)
    np.testing.assert_allclose(t["bic"].sel(model="rw").values, [100 + 2 * ln100, 120 + 2 * ln100, 140 + 2 * ln50])
    np.testing.assert_allclose(t["bic"].sel(model="dra").values, [96 + 3 * ln100, 122 + 3 * ln100, 130 + 3 * ln50])
    np.testing.assert_allclose(t["aic_total"].values, [372.0, 366.0])
    bic_rw, bic_dra = 360 + 4 * ln100 + 2 * ln50, 348 + 6 * ln100 + 3 * ln50
    np.testing.assert_allclose(t["bic_total"].values, [bic_rw, bic_dra])
    np.testing.assert_allclose(t["delta_aic_total"].values, [6.0, 0.0])
    np.testing.assert_allclose(t["delta_bic_total"].values, [0.0, bic_dra - bic_rw])
    assert bic_dra - bic_rw == pytest.approx(1.1224, abs=1e-4)
    # AIC totals differ by 6 (a winner); BIC totals by 1.12 < 2: not distinguishable, never a winner
    assert t.attrs["best_aic"] == "dra" and t.attrs["best_bic"] == "not distinguishable: rw, dra"
    np.testing.assert_allclose(t["delta_aic"].sel(model="rw").values, [2.0, 0.0, 8.0])
    np.testing.assert_allclose(t["delta_aic"].sel(model="dra").values, [0.0, 4.0, 0.0])
    np.testing.assert_allclose(t["loglik_total"].values, [-180.0, -174.0])
    np.testing.assert_allclose(t["n_params_total"].values, [6.0, 9.0])
    np.testing.assert_allclose(t["laplace_log_evidence_total"].values, [-193.0, -191.0])
    np.testing.assert_allclose(t["delta_laplace_total"].values, [2.0, 0.0])
    np.testing.assert_allclose(t["delta_ibic"].values, [4.5, 0.0])
    # -BIC/2 feeds bms directly
    res = bms(-t["bic"] / 2)
    assert list(res.alpha["model"].values) == ["rw", "dra"]


def test_compare_table_validation():
    fits = _fits()
    bad = fits["dra"].copy()
    bad["loglik"] = bad["loglik"].where(bad["subject"] != "s2")
    with pytest.raises(ValueError, match=r"'dra'.*loglik.*'s2'"):
        compare_table({"rw": fits["rw"], "dra": bad})
    other = fits["dra"].assign_coords(subject=["s3", "s1", "s9"])
    with pytest.raises(ValueError, match="other subjects"):
        compare_table({"rw": fits["rw"], "dra": other})
    with pytest.raises(ValueError, match="n_trials"):
        compare_table({"rw": fits["rw"].drop_vars("n_trials")})
    frac = fits["rw"].copy()
    frac["n_trials"] = ("subject", [100.5, 100, 50])
    with pytest.raises(ValueError, match="positive integer"):
        compare_table({"rw": frac})
    with pytest.raises(TypeError):
        compare_table({"rw": {"loglik": [1.0]}})
    partial = {"rw": fits["rw"], "dra": fits["dra"].drop_vars("laplace_log_evidence")}
    with pytest.warns(UserWarning, match="laplace_log_evidence"):
        t = compare_table(partial)
    assert "laplace_log_evidence" not in t


# ------------------------------------------------------------------------------------------------
# plot_bms
# ------------------------------------------------------------------------------------------------

def test_plot_bms_returns_axes():
    L = np.random.default_rng(9).normal(-20.0, 2.0, size=(3, 8))
    res = bms(_labelled(L), families={"A": ["a", "b"], "B": ["c"]})
    ax = plot_bms(res)
    assert isinstance(ax, matplotlib.axes.Axes)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    fig, ax2 = plt.subplots()
    assert plot_bms(res.families, ax=ax2) is ax2
    fig.canvas.draw()
    plt.close("all")
