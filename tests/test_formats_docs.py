"""docs/bring-your-data.md runs: every ```python block, in order, in one namespace, in a temporary directory.

Each block writes a small file in the layout it documents (the exact codings of the original) and reads it with the
preset, so the page's examples cannot drift from the code.
"""

from __future__ import annotations

from pathlib import Path

from test_docs_snippets import python_blocks

PAGE = Path(__file__).resolve().parents[1] / "docs" / "bring-your-data.md"


def test_bring_your_data_page_runs(tmp_path, monkeypatch):
    blocks = python_blocks(PAGE.read_text(encoding="utf-8"))
    assert len(blocks) >= 7, "one worked example per preset"
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_bring_your_data"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"{PAGE.name} [python block {i + 1}]", "exec"), namespace)
    # the page's claims, checked on what its code produced
    tr = namespace["trials"]
    assert tr.attrs["format"] == "tidy" and tr.state.values.tolist() == [[0, 1], [0, 1]]


def test_every_preset_has_a_row_and_an_example():
    from neurorl.formats import list_formats

    text = PAGE.read_text(encoding="utf-8")
    for name in list_formats():
        assert f"| `{name}` |" in text, name
        if name != "tidy":
            assert f'format="{name}"' in text, name
