"""The analysis scripts in analyses/ run end to end (``--quick``) and write their results.

Each test loads one script as a module, runs ``main`` with ``quick=True`` into a temporary output and
docs folder, and checks that the markdown results and every linked figure exist, that the figures are
small PNGs, and that a headline number is sane. The expected values are derived independently:
analytic results of the tasks (the soft-value-iteration branching probability 1/(1 + 2^-gamma), the
reward-complexity maximum p_high, the entropy bound ln 4), structural identities (soft Q-learning and
Q-learning have the same choice likelihood on one-step tasks), and bounds of the agents' parameters.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name, monkeypatch):
    path = ROOT / "analyses" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"analysis_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(mod)
    return mod


def _run(name, tmp_path, monkeypatch, **kw):
    mod = _load(name, monkeypatch)
    docs = tmp_path / "docs"
    args = mod.Args(quick=True, seed=1, out_root=str(tmp_path / "results"), docs_dir=str(docs), **kw)
    res = mod.main(args)
    out = tmp_path / "results" / f"{name}_seed1"
    return mod, res, out, docs


def _check_outputs(name, out, docs, figures):
    """result.md and the docs page exist, link every figure, and the figures exist and are small PNGs."""
    text = (out / "result.md").read_text()
    page = (docs / f"{name}.md").read_text()
    for head in ("## What was run", "## Headline numbers", "## Figures", "## Interpretation", "## Arguments"):
        assert head in text and head in page, head
    assert "| seed | 1 |" in text
    for fig in figures:
        assert f"]({fig}.png)" in text
        assert f"](img/{name}_{fig}.png)" in page
        for p in (out / f"{fig}.png", docs / "img" / f"{name}_{fig}.png"):
            data = p.read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n", p
            assert len(data) < 150_000, (p, len(data))
    # every image link of the docs page resolves
    for link in re.findall(r"\]\((img/[^)]+)\)", page):
        assert (docs / link).exists(), link


def test_dra_allocation_quick(tmp_path, monkeypatch):
    _, res, out, docs = _run("dra_allocation", tmp_path, monkeypatch)
    _check_outputs("dra_allocation", out, docs, ("memory_sigma", "memory_probes", "maze_entropy"))
    sig = [res[f"sigma_{k}"] for k in ("frequent_high", "frequent_low", "rare_high", "rare_low")]
    # sigma lives in [sigma_min, sigma_base] = [0.01, 5] (the agent's clip)
    assert all(0.01 <= s <= 5.0 for s in sig)
    # the most-used, highest-stakes memories are the sharpest (a gap of > 1 in the quick run)
    assert sig[0] < sig[3]
    for k in ("maze_entropy_path_before", "maze_entropy_offpath_before", "maze_entropy_path_after",
              "maze_entropy_offpath_after"):
        assert 0.0 <= res[k] <= math.log(4.0) + 1e-9


def test_dra_vs_maxent_signatures_quick(tmp_path, monkeypatch):
    _, res, out, docs = _run("dra_vs_maxent_signatures", tmp_path, monkeypatch)
    _check_outputs("dra_vs_maxent_signatures", out, docs, ("psychometric", "slopes", "branching"))
    # soft value iteration: P(0 -> 2) = 1 / (1 + 2^-gamma) at every temperature (gamma = 0.98)
    theory = 1.0 / (1.0 + 2.0 ** -0.98)
    assert res["branching_theory"] == pytest.approx(theory, abs=1e-12)
    soft = {k: v for k, v in res["branching"].items() if k.startswith("soft_q")}
    assert len(soft) == 3
    for k, v in soft.items():
        assert abs(v - theory) < 0.08, (k, v)
    # the matched temperature reproduces DRA's mean slope: 1/tau lies within DRA's per-condition range
    assert min(res["dra_slopes"]) - 0.05 < 1.0 / res["tau"] < max(res["dra_slopes"]) + 0.05


@pytest.mark.slow
def test_model_recovery_quick(tmp_path, monkeypatch):
    """Slow: two likelihood compilations (several seconds each, more on a busy machine)."""
    _, res, out, docs = _run("model_recovery", tmp_path, monkeypatch)
    _check_outputs("model_recovery", out, docs, ("confusion_mouse_bandit",))
    r = res["mouse_bandit"]
    assert 0.0 <= r["accuracy"] <= 1.0
    # on a one-step task soft Q-learning's choice likelihood is Q-learning's with beta = 1/tau, so the
    # two models reach the same maximum: their log evidences tie for (nearly) every simulated subject
    assert r["tie_q_soft"] >= 0.75
    # merged into one family, every subject is "recovered"
    assert r["accuracy_merged"] == pytest.approx(1.0)
    import xarray as xr

    ds = xr.load_dataset(out / "recovery_mouse_bandit.nc")
    np.testing.assert_allclose(ds["confusion"].sum("model").values, 1.0)


def test_perseveration_quick(tmp_path, monkeypatch):
    _, res, out, docs = _run("perseveration", tmp_path, monkeypatch)
    _check_outputs("perseveration", out, docs, ("block_switch", "history", "sweep", "reward_complexity"))
    # the reward-complexity frontier of the two-port task tops out at p_high (always at the high port)
    assert res["frontier_max"] == pytest.approx(0.8, abs=1e-3)
    gens = {k: v for k, v in res.items() if isinstance(v, dict) and k not in ("timestep", "drqn_timestep")}
    # time-step variant with a wait action: the decision-only marginal puts no mass on wait, the published one does
    ts = res["timestep"]
    assert ts["PC, decision-only marginal"]["marginal"][2] == 0.0
    assert ts["PC, marginal over all actions"]["marginal"][2] > 0.0
    assert "## Time-step variant with a wait action" in (out / "result.md").read_text()
    if "drqn_timestep" in res:  # the deep extra is installed: the DRQN's decision-only marginal excludes wait too
        d = res["drqn_timestep"]
        assert d["DRQN, penalty, decision-only marginal (choices only)"]["marginal"][2] == 0.0
        assert d["DRQN, penalty, marginal over all actions"]["marginal"][2] > 0.0
        assert "the DRQN's KL-to-marginal penalty" in (out / "result.md").read_text()
    for lab, r in gens.items():
        assert 0.0 <= r["p_switch"] <= 1.0 and 0.0 <= r["info"] <= math.log(2.0) + 1e-9
        # no policy beats the frontier (up to the plug-in estimate's noise)
        assert r["gap"] > -0.03, (lab, r["gap"])
    # the mouse-fit RFLR is sticky but follows the blocks (Beron et al. 2022: P(switch) well below 0.5)
    ref = gens["RFLR (mouse fit)"]
    assert ref["p_switch"] < 0.25 and ref["p_high"] > 0.6


def test_decode_soft_vs_true_quick(tmp_path, monkeypatch):
    _, res, out, docs = _run("decode_soft_vs_true", tmp_path, monkeypatch)
    _check_outputs("decode_soft_vs_true", out, docs, ("time_course", "population_difference"))
    assert (out / "repetitions.csv").exists()
    # v_soft = v + tau H(pi): on the mouse bandit the two are strongly but not perfectly correlated
    assert 0.8 < res["correlation"] < 1.0
    assert set(res["fpr"]) == {"poisson"}  # --quick runs the Poisson code only
    for code, rates in res["fpr"].items():
        assert rates["n"] == 2
        for k, v in rates.items():
            assert 0.0 <= v <= (2 if k == "n" else 1.0), (code, k)
    for k, v in res["identification"].items():
        assert 0.0 <= v["correct"] + v["wrong"] <= 1.0, k


def test_quick_run_without_docs_dir_writes_no_docs(tmp_path, monkeypatch):
    """``--quick`` alone must not overwrite the committed docs pages."""
    mod = _load("dra_allocation", monkeypatch)
    args = mod.Args(quick=True, seed=2, out_root=str(tmp_path))
    output = mod.AnalysisOutput(mod.NAME, args, quick=mod.QUICK, repo=mod.REPO)
    output.apply_quick()
    out, docs = output.dirs()
    assert docs is None and out == tmp_path / "dra_allocation_seed2"
