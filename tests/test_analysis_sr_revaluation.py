"""analyses/sr_revaluation.py runs end to end (``--quick``, with a small MF / MB / SR model recovery)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # three likelihood compilations for the small model recovery (minutes on a loaded 2-core machine)
def test_sr_revaluation_quick(tmp_path, monkeypatch):
    path = ROOT / "analyses" / "sr_revaluation.py"
    spec = importlib.util.spec_from_file_location("analysis_sr_revaluation", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    docs = tmp_path / "docs"
    res = mod.main(mod.Args(quick=True, seed=1, out_root=str(tmp_path / "results"), docs_dir=str(docs)))
    out = tmp_path / "results" / "sr_revaluation_seed1"
    page = (docs / "sr_revaluation.md").read_text()
    for fig in ("signature", "confusion"):
        assert (out / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"](img/sr_revaluation_{fig}.png)" in page
    sig = res["signature"]
    # the structural signature (agents.md §10): MB revalues after both changes, SR after the reward change only,
    # MF after neither
    assert sig["model-based"]["score"]["reward"]["revalues"] and sig["model-based"]["score"]["transition"]["revalues"]
    assert sig["SR (state-action)"]["score"]["reward"]["revalues"]
    assert not sig["SR (state-action)"]["score"]["transition"]["revalues"]
    assert not any(sig["model-free"]["score"][c]["revalues"] for c in ("reward", "transition"))
    C = np.asarray(res["recovery"]["confusion"])
    assert C.shape == (3, 3)
    np.testing.assert_allclose(C.sum(1), 1.0)
