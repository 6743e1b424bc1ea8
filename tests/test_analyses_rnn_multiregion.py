"""The analyses rnn_vs_rl and multiregion_half_triangle run end to end (``--quick``) and write their pages.

Both are marked slow (a JAX compile per model and data shape; a few torch trainings). Expected values: the held-out
scores are log-probabilities (below 0, above the log of a uniform choice minus a margin for a few poorly fitted
trials), and balanced accuracies lie in [0, 1].
"""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(name, tmp_path, monkeypatch):
    path = ROOT / "analyses" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"analysis_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    docs = tmp_path / "docs"
    res = mod.main(mod.Args(quick=True, seed=1, out_root=str(tmp_path / "results"), docs_dir=str(docs)))
    return res, tmp_path / "results" / f"{name}_seed1", docs


@pytest.mark.slow
def test_rnn_vs_rl_quick(tmp_path, monkeypatch):
    res, out, docs = _run("rnn_vs_rl", tmp_path, monkeypatch)
    for f in ("result.md", "dynamics.png", "heldout.png"):
        assert (out / f).exists()
    assert (docs / "rnn_vs_rl.md").exists() and (docs / "img" / "rnn_vs_rl_dynamics.png").exists()
    for totals in res["totals"].values():
        for v in totals.values():
            n = 3 * 120  # quick: 3 subjects x 120 trials, every trial held out once
            assert n * math.log(0.5) * 1.5 < v < 0


@pytest.mark.slow
def test_multiregion_half_triangle_quick(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    res, out, docs = _run("multiregion_half_triangle", tmp_path, monkeypatch)
    for f in ("result.md", "learning.png", "decoding.png"):
        assert (out / f).exists()
    assert (docs / "multiregion_half_triangle.md").exists()
    assert {k.split("/")[0] for k in res["runs"]} == {"single", "ff+fb", "ff only"}
    # summaries over seeds and the seed-paired contrasts (3 contrasts x 3 metrics), each with a verdict
    page = (out / "result.md").read_text()
    assert "## Summary over seeds" in page and "## Decoding per region, over seeds" in page
    assert len(res["verdicts"]) == 9
    for r in res["runs"].values():
        assert set(r["decoding"]) in ({"all units"}, {"olfactory", "spatial"})
        assert 0.0 <= r["success"] <= 1.0 or math.isnan(r["success"])
