"""The tutorials' code runs: every ```python block of a page under docs/tutorials/, in order, in one namespace.

Each page is one test, run in a temporary directory (the tutorials write small files) with matplotlib's
non-interactive backend. Pages whose code takes more than about 30 s on 2 cores (they compile several PyTensor
likelihoods) are marked ``slow``. A page added to docs/tutorials/ is picked up automatically (not slow unless listed).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
TUTORIALS = DOCS / "tutorials"

# pages measured above ~30 s (2 shared cores, warm PyTensor cache): run with `pytest -m slow`
SLOW = {"fit-your-data.md", "dra-vs-maxent.md"}

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)


def python_blocks(text: str) -> list[str]:
    """The ```python fenced blocks of a markdown page, in order (other fences are not run)."""
    return [m.group(1) for m in FENCE.finditer(text)]


def test_python_blocks_extraction():
    text = "a\n```python\nx = 1\n```\ntext\n```text\nnot code\n```\n```python\ny = x + 1\n```\n"
    assert python_blocks(text) == ["x = 1\n", "y = x + 1\n"]


PAGES = sorted(TUTORIALS.glob("*.md"))


def test_tutorials_exist():
    assert {"fit-your-data.md", "decode-your-recordings.md", "dra-vs-maxent.md"} <= {p.name for p in PAGES}


@pytest.mark.parametrize(
    "page", [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if p.name in SLOW else []) for p in PAGES]
)
def test_tutorial_runs(page, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    blocks = python_blocks(page.read_text(encoding="utf-8"))
    assert blocks, f"{page.name}: no python blocks"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": f"docs_tutorial_{page.stem.replace('-', '_')}"}
    try:
        for i, code in enumerate(blocks):
            # compile with the page name and block number, so that a traceback says where the failing line is
            exec(compile(code, f"{page.name} [python block {i + 1}]", "exec"), namespace)
    finally:
        plt.close("all")


def test_sphinx_roles_rewritten_as_optional_autorefs():
    """The docs build's griffe extension turns Sphinx roles into optional cross-references (docs/_ext)."""
    griffe = pytest.importorskip("griffe")  # installed with the `docs` extra
    import importlib.util

    spec = importlib.util.spec_from_file_location("sphinx_roles", DOCS / "_ext" / "sphinx_roles.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    pkg = griffe.load("neurorl.simulate", search_paths=[str(DOCS.parent)], resolve_aliases=False)
    text = "See :func:`replay`, :class:`~neurorl.schema.EnvSpec` and :mod:`xarray`."
    assert mod.rewrite(pkg, text) == (
        'See <autoref identifier="neurorl.simulate.replay" optional><code>replay</code></autoref>, '
        '<autoref identifier="neurorl.schema.EnvSpec" optional><code>EnvSpec</code></autoref> and '
        '<autoref identifier="xarray" optional><code>xarray</code></autoref>.'
    )
