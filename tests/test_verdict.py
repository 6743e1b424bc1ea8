"""The reconciled verdict (neurorl.fitting.verdict.reconcile)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from neurorl.fitting.compare import bms, compare_table
from neurorl.fitting.verdict import BOR_MAX, reconcile

N = 20
MODELS = ["q_learning", "soft_q", "dra"]


def _table(loglik, n_params, lap):
    res = {m: xr.Dataset({"loglik": ("subject", loglik[m]), "n_params": ((), n_params[m]),
                          "n_trials": ("subject", np.full(N, 100)),
                          "laplace_log_evidence": ("subject", lap[m])}, coords={"subject": np.arange(N)})
           for m in MODELS}
    return compare_table(res)


def _public_bandit_pattern():
    """The public two-armed-bandit situation: 20 subjects x 100 trials; DRA is last by BIC (+147), by Laplace
    evidence (-10.6) and by LOO (-11.2), yet random-effects BMS on the Laplace evidence gives it the largest
    exceedance probability, because it wins by a little on most subjects and loses by a lot on three."""
    rng = np.random.default_rng(0)
    base = -60 + rng.normal(0, 3, N)
    d = np.full(N, 0.42)
    d[:3] = (-10.6 - 0.42 * (N - 3)) / 3
    lap = {"q_learning": base, "soft_q": base - 0.05, "dra": base + d}
    # log-likelihoods whose BIC totals reproduce the ordering: DRA's two extra parameters cost 20 * 2 ln 100 = 184
    loglik = {"q_learning": base + 5, "soft_q": base + 4.95, "dra": base + 5 + 0.925}
    table = _table(loglik, {"q_learning": 2, "soft_q": 2, "dra": 4}, lap)
    L = table["laplace_log_evidence"]
    res = bms(L)
    loo = xr.Dataset({"elpd_loo": ("model", [-1200.57, -1200.0, -1211.2]),
                      "se_delta": ("model", [0.50, 0.0, 4.0]),
                      "n_high_k": ("model", [1239, 1100, 1500]), "n_poor_approx": ("model", [11, 9, 14])},
                     coords={"model": MODELS})
    return table, res, loo


def test_public_bandit_pattern_names_no_winner_and_says_why():
    table, res, loo = _public_bandit_pattern()
    i = MODELS.index("dra")
    # the pattern as reported: DRA last by every total, highest exceedance probability, high BOR
    assert float(table.delta_bic_total[i]) == pytest.approx(147.0, abs=0.5)
    assert float(table.delta_laplace_total[i]) == pytest.approx(10.6, abs=1e-6)
    assert int(np.argmax(res.ep.values)) == i and res.ep.values[i] > 0.8
    assert res.bor > 0.8 and res.pxp.values[i] < 0.5
    v = reconcile(table, res, loo)
    assert v.winner is None
    assert v.sentence.startswith("No winner")
    assert "BOR = 0.8" in v.sentence and "not evidence" in v.sentence and "dra" in v.sentence
    assert "LOO is unreliable" in v.sentence
    # BOR is shown beside the exceedance probabilities in the one table
    assert {"ep", "pxp", "bms_frequency"} <= set(v.table.columns)
    assert v.table.loc["dra", "ep"] == pytest.approx(res.ep.values[i])
    assert v.table.loc["dra", "delta_evidence"] == pytest.approx(10.6)


def test_clear_winner_is_named_with_its_margin():
    rng = np.random.default_rng(1)
    base = -60 + rng.normal(0, 3, N)
    lap = {"q_learning": base - 3.0, "soft_q": base - 2.5, "dra": base}
    loglik = {m: v + 2.0 for m, v in lap.items()}
    table = _table(loglik, {m: 2 for m in MODELS}, lap)
    res = bms(table["laplace_log_evidence"])
    assert res.bor < BOR_MAX
    cv = xr.Dataset({"elpd": ("model", [-1250.0, -1240.0, -1200.0]), "se_delta": ("model", [8.0, 7.0, 0.0])},
                    coords={"model": MODELS}, attrs={"method": "kfold-blocks"})
    v = reconcile(table, res, cv)
    assert v.winner == "dra"
    assert v.sentence.startswith("Best model: dra")
    assert "by 40.0 ± 7.0 nats over soft_q" in v.sentence
    assert "by 50.0 nats over soft_q" in v.sentence  # Laplace: 20 subjects x 2.5


def test_disagreeing_criteria_name_no_winner_and_say_which_to_trust():
    rng = np.random.default_rng(2)
    base = -60 + rng.normal(0, 3, N)
    lap = {"q_learning": base, "soft_q": base - 1.0, "dra": base - 2.0}
    table = _table({m: v + 2 for m, v in lap.items()}, {m: 2 for m in MODELS}, lap)
    cv = xr.Dataset({"elpd": ("model", [-1210.0, -1200.0, -1230.0]), "se_delta": ("model", [3.0, 0.0, 5.0])},
                    coords={"model": MODELS})
    v = reconcile(table, None, cv)
    assert v.winner is None
    assert "disagree" in v.sentence and "for which model generated the data trust Laplace log evidence" in v.sentence


def test_identical_models_are_one_row():
    base = -60 + np.zeros(N)
    lap = {"q_learning": base, "soft_q": base, "dra": base - 5.0}
    res = {m: xr.Dataset({"loglik": ("subject", lap[m]), "n_params": ((), 2), "n_trials": ("subject", np.full(N, 100)),
                          "laplace_log_evidence": ("subject", lap[m])}, coords={"subject": np.arange(N)})
           for m in MODELS}
    table = compare_table(res)
    v = reconcile(table)
    assert list(v.table.index) == ["q_learning = soft_q", "dra"]
    assert v.winner == "q_learning = soft_q"
    assert "Identical models" in v.sentence


def test_all_models_identical_is_no_comparison():
    base = -60 + np.zeros(N)
    res = {m: xr.Dataset({"loglik": ("subject", base), "n_params": ((), 2), "n_trials": ("subject", np.full(N, 100)),
                          "laplace_log_evidence": ("subject", base)}, coords={"subject": np.arange(N)})
           for m in ("q_learning", "soft_q")}
    v = reconcile(compare_table(res))
    assert v.winner is None and list(v.table.index) == ["q_learning = soft_q"]
    assert "are one model" in v.sentence and "inf" not in v.sentence
