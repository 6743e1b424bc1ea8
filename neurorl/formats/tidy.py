"""The generic tidy table: one row per trial, our column names, 0-based codes.

Columns ``subject, choice, reward`` (required) and ``trial, state, rt, valid,
next_state, done`` (optional); every other column is a covariate. This is what
:func:`neurorl.io.from_table` reads without options; the preset exists so that
``--format tidy`` names it explicitly and its options (``one_based``,
``n_actions``, ``task``, ``rt_unit``, ``columns``) are the reader's.
"""

from __future__ import annotations

from ..io import from_table
from . import Format, register_format


def read_tidy(df, **options):
    """``from_table(df, **options)``."""
    return from_table(df, **options)


register_format(Format(
    name="tidy", columns=("subject", "choice", "reward"), read=read_tidy,
    summary="one row per trial with neurorl's column names",
    codings={"subject": "any labels", "choice": "0..K-1 (empty = missed)", "reward": "number",
             "state": "0..S-1 (optional)", "rt": "seconds (optional)"},
    optional=("trial", "state", "rt", "valid", "next_state", "done"),
))
