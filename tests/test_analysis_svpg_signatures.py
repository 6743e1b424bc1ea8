"""analyses/svpg_signatures.py runs end to end (``--quick``) and places SVPG on the branching map."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about 80 s under load: DRA, soft Q and SVPG on two tasks
def test_svpg_signatures_quick(tmp_path, monkeypatch):
    path = ROOT / "analyses" / "svpg_signatures.py"
    spec = importlib.util.spec_from_file_location("analysis_svpg_signatures", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)
    spec.loader.exec_module(mod)
    docs = tmp_path / "docs"
    res = mod.main(mod.Args(quick=True, seed=1, out_root=str(tmp_path / "results"), docs_dir=str(docs)))
    page = (docs / "svpg_signatures.md").read_text()
    for fig in ("accuracy", "branching"):
        assert f"](img/svpg_signatures_{fig}.png)" in page
        assert (tmp_path / "results" / "svpg_signatures_seed1" / f"{fig}.png").read_bytes()[:4] == b"\x89PNG"
    # soft value iteration's analytic branching preference (agents.md §2)
    assert res["theory_soft"] == pytest.approx(1 / (1 + 2 ** -0.98))
    assert {"DRA", "max-ent (soft Q)", "SVPG"} == set(res["accuracy"])
    for k, v in res["branching"].items():
        assert 0.0 <= v <= 1.0, k
