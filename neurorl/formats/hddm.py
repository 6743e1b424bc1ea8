"""HDDM and HSSM reinforcement-learning tables (RL + DDM; Pedersen, Frank & Biele 2017; HSSM's RLSSM data).

``hddm:rl`` -- the layout of HDDM's ``HDDMrl`` (its example
``rlddm_data.csv``), as recalled from HDDM 0.8/0.9:

``subj_idx``
    Subject.
``response``
    0/1: which of the condition's two options was chosen; 1 is the option
    mapped to the upper boundary (in HDDM's examples the one with the higher
    reward probability). Read as action 1 (0 as action 0).
``rt``
    Reaction time in seconds, positive (HDDM's flipped negative RTs for lower
    responses are not accepted: the read stops at the first one).
``split_by``
    The condition: each value is an independent two-armed bandit with its own
    two values. Read as states 0..C-1 in sorted order of the values; the
    original values stay in the ``split_by`` covariate and the attribute
    ``conditions``.
``feedback``
    The reward received.
``q_init`` (optional)
    The initial value of both options in every condition. It must be one
    number for the whole file (HDDM takes one value); it is recorded in the
    attribute ``q_init`` and the agent to fit is ``q_learning:q0=<q_init>``
    (attribute ``suggested_agent``). Without the column nothing is assumed
    (``q_learning``'s default ``q0`` is 0; HDDM's default is 0.5).
``trial`` (optional)
    HDDM numbers trials within each condition, so they repeat within a
    subject; the column is kept as the covariate ``trial_in_condition`` and
    the trial order is the row order within each subject.

Every row of a subject is a trial in that subject's order, conditions
interleaved as in the file. The covariate ``first_in_condition`` marks each
subject's first trial of each condition: HDDM's RL likelihood skips it (it
learns from it but does not score it). By default every valid trial is scored;
with the option ``skip_first=True`` those trials get ``scored = False``
(:mod:`neurorl.schema`): the agent learns from them, the likelihood does not
score them, and BIC does not count them -- HDDM's convention, recorded in the
attribute ``skip_first``. Other columns (``cond``, ...) are covariates.

``hssm:rl`` -- HSSM's RL-DDM tables (``participant_id``, ``trial_id``,
``response``, ``rt``, ``feedback``; recalled from HSSM 0.2-0.3's RLSSM
tutorial data). ``response`` is 1 (upper boundary) or -1 (lower) as in HSSM;
0/1 is accepted too; -1 is read as action 0 (recorded in the attribute
``response_coding``); a file mixing -1 and 0 stops the read. ``trial_id`` is
kept as a covariate (the trial order is the row order). One condition per
participant unless the table has ``split_by``/``q_init`` as above.
"""

from __future__ import annotations

import numpy as np

from ..io import RowLocator, from_table, numeric_column, subject_index
from . import Format, register_format

__all__ = ["read_hddm_rl", "read_hssm_rl"]

_STATE = "_condition_state"


def _rl_table(df, *, subject, trial_col, skip_first, **options):
    d = df.copy()
    if _STATE in d.columns:
        raise ValueError(f"column {_STATE!r} is reserved by the HDDM/HSSM presets; rename it")
    codes, subjects, pos = subject_index(d, subject)
    rows = RowLocator(subjects, codes, None)
    attrs = {}
    if trial_col in d.columns:
        d = d.rename(columns={trial_col: "trial_in_condition"})
    if "split_by" in d.columns:
        sb = d["split_by"]
        if sb.isna().any():
            rows.fail("split_by", "condition", sb.isna().to_numpy(), lambda i: "missing condition")
        conds = sorted(sb.unique().tolist(), key=lambda v: (str(type(v)), v))
        index = {v: k for k, v in enumerate(conds)}
        d[_STATE] = sb.map(index).astype(np.int64)
        attrs["conditions"] = [c.item() if hasattr(c, "item") else c for c in conds]
        key = [codes, d[_STATE].to_numpy()]
    else:
        d[_STATE] = 0
        key = [codes]
    import pandas as pd

    d["first_in_condition"] = ~pd.DataFrame({f"k{i}": k for i, k in enumerate(key)}).duplicated().to_numpy()
    if "q_init" in d.columns:
        q = numeric_column(d["q_init"], "q_init", "initial value", rows)
        bad = np.isnan(q) | (q != q[0])
        if bad.any():
            rows.fail("q_init", "initial value", bad, lambda i: f"q_init {q[i]:g} differs from the first row's "
                      f"{q[0]:g}: one initial value per file is supported (HDDM takes one); split the file")
        attrs["q_init"] = float(q[0])
        attrs["suggested_agent"] = f"q_learning:q0={float(q[0]):g}"
    if skip_first:  # learnt from, not scored (HDDM's convention)
        if "scored" in d.columns:
            raise ValueError("skip_first=True sets the column 'scored'; the table already has one")
        d["scored"] = ~d["first_in_condition"].astype(bool)
    attrs["skip_first"] = bool(skip_first)
    return d, attrs, options


def _finish(d, attrs, options, subject):
    n_states = int(d[_STATE].max()) + 1
    cols = {"subject": subject, "choice": "response", "reward": "feedback", "rt": "rt", "state": _STATE,
            **options.pop("columns", {})}
    ds = from_table(d, columns=cols, n_actions=2, n_states=n_states, **options)
    ds.attrs.update(attrs)
    return ds


def read_hddm_rl(df, *, skip_first=False, **options):
    """``hddm:rl`` (module docstring). ``skip_first``: learn from each condition's first trial but do not score it.

    ``options`` go to :func:`~neurorl.io.from_table` (``rt_unit``).
    """
    d, attrs, options = _rl_table(df, subject="subj_idx", trial_col="trial", skip_first=skip_first, **options)
    return _finish(d, attrs, options, "subj_idx")


def read_hssm_rl(df, *, skip_first=False, **options):
    """``hssm:rl`` (module docstring): responses 1/-1 (or 1/0) read as actions 1/0."""
    d, attrs, options = _rl_table(df, subject="participant_id", trial_col="trial", skip_first=skip_first,
                                  **options)
    codes, subjects, _ = subject_index(d, "participant_id")
    rows = RowLocator(subjects, codes, None)
    resp = numeric_column(d["response"], "response", "choice", rows)
    have = set(np.unique(resp[~np.isnan(resp)]).tolist())
    if not have <= {-1.0, 0.0, 1.0}:
        bad = ~np.isnan(resp) & ~np.isin(resp, (-1, 0, 1))
        rows.fail("response", "choice", bad, lambda i: f"response {resp[i]:g} is not 1/-1 (HSSM) or 1/0")
    if {-1.0, 0.0} <= have:
        rows.fail("response", "choice", resp == 0, lambda i: "the column mixes -1 and 0 codes: which one is the "
                  "lower boundary is ambiguous")
    if -1.0 in have:
        d["response"] = np.where(resp == -1, 0.0, resp)
        attrs["response_coding"] = "HSSM 1/-1 read as actions 1/0"
    return _finish(d, attrs, options, "participant_id")


register_format(Format(
    name="hddm:rl", columns=("subj_idx", "response", "rt", "split_by", "feedback"), read=read_hddm_rl,
    summary="HDDM HDDMrl table: independent two-armed bandits per condition, RTs in seconds",
    codings={"subj_idx": "any labels", "response": "0/1 (1 = upper-boundary option)", "rt": "seconds, > 0",
             "split_by": "condition labels (each an independent bandit)", "feedback": "reward",
             "q_init": "one initial value (optional)"},
    agents=("q_learning",), optional=("q_init", "trial"),
))
register_format(Format(
    name="hssm:rl", columns=("participant_id", "response", "rt", "feedback"), read=read_hssm_rl,
    summary="HSSM RL-DDM table: a two-armed bandit per participant, RTs in seconds",
    codings={"participant_id": "any labels", "response": "1/-1 (1 = upper boundary) or 1/0", "rt": "seconds, > 0",
             "feedback": "reward", "split_by": "conditions (optional)"},
    agents=("q_learning",), optional=("trial_id", "split_by", "q_init"),
))
