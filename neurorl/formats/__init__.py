"""Format presets: read the data layouts labs already have, with one name.

A preset knows a layout's columns, the coding of each column, the states and
the task structure, and turns a table in that layout into a trials dataset
(:mod:`neurorl.schema`) through the steps of :func:`neurorl.io.from_table`.
Use it as ``nr.read_trials(path, format="hbayesdm:gng")`` or
``neurorl fit FILE --format hbayesdm:gng``. The user guide is
``docs/bring-your-data.md`` (a table of every preset's columns and codings).

Presets
-------
Names are ``family:variant``; one module per family:

``tidy``
    :mod:`neurorl.formats.tidy` -- our own column names, 0-based codes.
``hbayesdm:*``
    :mod:`neurorl.formats.hbayesdm` -- hBayesDM task files (``bandit2arm``,
    ``gng``, ``ts``; more from ``hbayesdm_rl``, see below).
``hddm:rl``, ``hssm:rl``
    :mod:`neurorl.formats.hddm` -- HDDM / HSSM reinforcement-learning tables.
``two_step:wide``
    :mod:`neurorl.formats.two_step` -- one row per two-step trial
    (``level1_choice``, ``level2_choice`` 1-4, ``reward``), expanded into the
    two rows per episode our two-step task and agents use.

Registering a preset
--------------------
Every module of this package whose name does not start with an underscore is
imported the first time a preset is looked up, and registers its presets with
:func:`register_format` at import -- adding a file is enough (the hBayesDM
presets of the RL task files ``bandit4arm``, ``prl``, ``igt``, ``pst`` live in
``hbayesdm_rl.py`` and register through
:func:`neurorl.formats.hbayesdm.register_hbayesdm`). A file whose columns
include every required column of a preset is *recognised*: :func:`match_formats`
names the presets, and :func:`neurorl.io.from_table` names them in its error
when the table lacks our column names.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

__all__ = ["Format", "register_format", "get_format", "list_formats", "match_formats", "from_format",
           "read_table", "read_formatted"]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*(:[A-Za-z0-9_]+)?$")  # variants keep the original's spelling (prl_multipleB)


@dataclass(frozen=True)
class Format:
    """One preset.

    Parameters
    ----------
    name : str
        ``family:variant`` (lower case), e.g. ``"hbayesdm:gng"``.
    columns : tuple of str
        Columns a file in this layout must have (exact names, case-sensitive).
    read : callable
        ``read(df, **options) -> trials`` (a validated trials dataset).
    summary : str
        One line: what the layout is.
    codings : dict
        Column -> its coding in the original layout (for the docs table and
        ``neurorl formats``).
    agents : tuple of str
        Agent specs that fit data in this layout (hints).
    optional : tuple of str
        Columns the preset uses when present.
    """

    name: str
    columns: tuple
    read: Callable
    summary: str
    codings: dict = field(default_factory=dict)
    agents: tuple = ()
    optional: tuple = ()


_FORMATS: dict[str, Format] = {}
_loaded = False


def register_format(fmt: Format) -> Format:
    """Add a preset to the registry (validated); returns it. A name can be registered once."""
    if not isinstance(fmt, Format):
        raise TypeError(f"register_format expects a Format, got {type(fmt).__name__}")
    if not _NAME_RE.match(fmt.name):
        raise ValueError(f"format name {fmt.name!r} must be 'family' or 'family:variant' (family lower case; letters, digits, _)")
    if fmt.name in _FORMATS:
        raise ValueError(f"format {fmt.name!r} is already registered")
    if not fmt.columns or not all(isinstance(c, str) for c in fmt.columns):
        raise ValueError(f"format {fmt.name!r}: columns must be a non-empty tuple of column names")
    if not callable(fmt.read):
        raise TypeError(f"format {fmt.name!r}: read must be callable")
    _FORMATS[fmt.name] = fmt
    return fmt


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


def list_formats() -> list[str]:
    """Names of the registered presets, sorted."""
    _load()
    return sorted(_FORMATS)


def get_format(name: str) -> Format:
    """The preset called ``name``; an unknown name raises, listing the presets."""
    _load()
    if isinstance(name, Format):
        return name
    if name not in _FORMATS:
        raise ValueError(f"unknown format {name!r}; formats: {', '.join(sorted(_FORMATS))}")
    return _FORMATS[name]


def match_formats(names) -> list[str]:
    """Presets whose required columns are all among ``names`` (most specific first: more columns, then name)."""
    _load()
    have = {str(n) for n in names}
    found = [f for f in _FORMATS.values() if f.name != "tidy" and set(f.columns) <= have]
    return [f.name for f in sorted(found, key=lambda f: (-len(f.columns), f.name))]


def from_format(df: pd.DataFrame, format: str, **options):
    """A trials dataset from a table in a preset's layout.

    Parameters
    ----------
    df : pandas.DataFrame
        The table as read from the file.
    format : str
        A preset name (:func:`list_formats`).
    **options
        The preset's options (its reader's docstring).

    Returns
    -------
    xarray.Dataset
        The validated trials dataset; its attribute ``format`` names the preset.
    """
    from ..schema import validate_trials

    fmt = get_format(format)
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_format expects a pandas.DataFrame, got {type(df).__name__}")
    missing = [c for c in fmt.columns if c not in df.columns]
    if missing:
        others = [m for m in match_formats(df.columns) if m != fmt.name]
        raise ValueError(f"format {fmt.name!r} needs column(s) {missing}; the table has {list(df.columns)}"
                         + (f". Its columns match {', '.join(repr(o) for o in others)}" if others else ""))
    ds = fmt.read(df, **options)
    ds.attrs["format"] = fmt.name
    return validate_trials(ds)


def read_table(path) -> pd.DataFrame:
    """A table from ``.csv`` (comma), ``.tsv``/``.txt``/``.dat`` (tab; whitespace if the file has no tab).

    hBayesDM's example files are tab-separated ``.txt``; HDDM's are ``.csv``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no file {str(path)!r}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".txt", ".dat"):
        raise ValueError(f"{str(path)!r}: format presets read .csv, .tsv, .txt or .dat tables")
    from ..results import reading

    with reading(path, "read_trials"):
        if suffix == ".csv":
            return pd.read_csv(path)
        with open(path, encoding="utf-8") as f:
            head = f.readline()
        if "\t" in head:
            return pd.read_csv(path, sep="\t")
        return pd.read_csv(path, sep=r"\s+")


def read_formatted(path, format: str, **options):
    """Read a file in a preset's layout (:func:`read_table` then :func:`from_format`); errors name the file."""
    path = Path(path)
    df = read_table(path)
    try:
        ds = from_format(df, format, **options)
    except ValueError as exc:
        raise ValueError(f"{str(path)!r}: {exc}") from None
    ds.attrs.setdefault("source", path.name)
    return ds
