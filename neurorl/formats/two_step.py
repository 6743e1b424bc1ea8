"""One row per two-step trial, expanded into the two rows per episode of the ``two_step`` task.

Layout (Daw et al. 2011 as distributed by hBayesDM's ``ts`` models, and many
labs' own exports): one row per trial with

``level1_choice``
    1 or 2: the first-stage option. Option 1 leads commonly (``p_common``,
    0.7 by default) to the second-stage state whose options are
    ``level2_choice`` 1 and 2; option 2 commonly to the state of options 3, 4.
``level2_choice``
    1-4: the second-stage option, numbered across both second-stage states
    (1, 2 in the first; 3, 4 in the second), so it also says which state was
    reached.
``reward``
    The second-stage outcome (0/1 in the original task; any number is kept).

Expansion (the rows of :mod:`neurorl.tasks.two_step`): row ``2k`` is stage 1
(state 0, choice ``level1_choice - 1``, reward 0, ``next_state`` the reached
state, ``done`` False); row ``2k + 1`` is stage 2 (state 1 for options 1-2,
2 for options 3-4; choice ``(level2_choice - 1) % 2``; the reward; ``done``
True). Covariates: ``stage`` (1/2), ``episode`` (the file's trial label, or
the 0-based trial position without a trial column), ``common`` (the
transition was the common one). Every other column of the file is copied to
both rows.

Assumptions [A]
---------------
* [A] An empty ``level1_choice`` (a missed trial) makes both rows missed
  (``valid`` False; the stage-2 row is given state 1 as a placeholder: missed
  rows neither learn nor count in the likelihood). An empty
  ``level2_choice`` after a made first-stage choice stops the read: the
  reached state is then unknown and guessing it would change the data.
* [A] Codes must be exactly 1/2 and 1-4 (any other value stops the read,
  naming subject, trial and row); reward may be empty only on missed trials.
* [A] ``rt1``/``rt2`` (column names, optional) give each stage's reaction
  time in seconds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..io import RowLocator, from_table, integer_column, numeric_column, subject_index
from . import Format, register_format

__all__ = ["expand_two_step"]


def expand_two_step(df, *, subject="subject", level1="level1_choice", level2="level2_choice", reward="reward",
                    trial=None, rt1=None, rt2=None, p_common=0.7, **options):
    """A trials dataset of the ``two_step`` task from a one-row-per-trial table (module docstring).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per trial, rows of a subject in trial order.
    subject, level1, level2, reward : str
        The file's column names of the subject, the first- and second-stage
        choices (1/2 and 1-4) and the reward.
    trial : str, optional
        The file's trial-label column (kept as the ``episode`` covariate);
        default: ``"trial"`` when the table has one.
    rt1, rt2 : str, optional
        Columns of the stage-1 and stage-2 reaction times (seconds).
    p_common : float, default 0.7
        Probability of the common transition (the ``two_step`` task option;
        hBayesDM's ``trans_prob``).
    **options
        Passed to :func:`neurorl.io.from_table` (``rt_unit``).

    Returns
    -------
    xarray.Dataset
        Two rows per trial, ``task`` = ``two_step``.
    """
    from ..tasks.two_step import TwoStep

    if trial is None and "trial" in df.columns:
        trial = "trial"
    for name in (subject, level1, level2, reward, trial, rt1, rt2):
        if name is not None and name not in df.columns:
            raise ValueError(f"column {name!r} is not in the table; table columns: {list(df.columns)}")
    codes, subjects, pos = subject_index(df, subject)
    labels = pos.astype(np.int64)
    if trial is not None:
        rows0 = RowLocator(subjects, codes, None)
        lab = numeric_column(df[trial], trial, "trial", rows0)
        integer_column(lab, trial, "trial", rows0)
        if np.isnan(lab).any():
            rows0.fail(trial, "trial", np.isnan(lab), lambda i: "missing trial label")
        labels = lab.astype(np.int64)
    rows = RowLocator(subjects, codes, labels)
    a1 = numeric_column(df[level1], level1, "stage-1 choice", rows)
    a2 = numeric_column(df[level2], level2, "stage-2 choice", rows)
    integer_column(a1, level1, "stage-1 choice", rows)
    integer_column(a2, level2, "stage-2 choice", rows)
    bad = ~np.isnan(a1) & ~np.isin(a1, (1, 2))
    if bad.any():
        rows.fail(level1, "stage-1 choice", bad, lambda i: f"code {a1[i]:g} is not 1 or 2 (empty = missed)")
    bad = ~np.isnan(a2) & ~np.isin(a2, (1, 2, 3, 4))
    if bad.any():
        rows.fail(level2, "stage-2 choice", bad, lambda i: f"code {a2[i]:g} is not 1-4 (1, 2: the state reached "
                  "commonly from option 1; 3, 4: from option 2)")
    bad = ~np.isnan(a1) & np.isnan(a2)
    if bad.any():
        rows.fail(level2, "stage-2 choice", bad, lambda i: "missing second-stage choice after a first-stage choice: "
                  "the state reached is unknown; drop the trial or fill in the choice")
    bad = np.isnan(a1) & ~np.isnan(a2)
    if bad.any():
        rows.fail(level1, "stage-1 choice", bad, lambda i: "missing first-stage choice before a second-stage choice")
    made = ~np.isnan(a1)
    s2 = np.where(made, np.where(a2 <= 2, 1, 2), 1).astype(np.int64)
    c1 = np.where(made, a1 - 1, np.nan)
    c2 = np.where(made, (a2 - 1) % 2, np.nan)
    common = made & (((c1 == 0) & (s2 == 1)) | ((c1 == 1) & (s2 == 2)))
    r = numeric_column(df[reward], reward, "reward", rows)
    bad = made & ~np.isfinite(r)
    if bad.any():
        rows.fail(reward, "reward", bad, lambda i: "missing or infinite reward on a trial with choices")
    n = len(df)
    order = np.lexsort((pos, codes))  # subjects' rows together, in row order
    used = {subject, level1, level2, reward, trial, rt1, rt2} - {None}
    rest = [c for c in df.columns if c not in used]

    def both(a, b):
        out = np.empty(2 * n, dtype=np.result_type(np.asarray(a).dtype, np.asarray(b).dtype))
        out[0::2], out[1::2] = np.asarray(a)[order], np.asarray(b)[order]
        return out

    long = {
        "subject": np.repeat(df[subject].to_numpy()[order], 2),
        "trial": both(2 * pos, 2 * pos + 1),
        "state": both(np.zeros(n, np.int64), s2),
        "choice": both(c1, c2),
        "reward": both(np.where(made, 0.0, np.nan), r),
        "next_state": both(s2, np.zeros(n, np.int64)),
        "done": both(np.zeros(n, bool), np.ones(n, bool)),
        "stage": both(np.ones(n, np.int64), np.full(n, 2, np.int64)),
        "episode": np.repeat(labels[order], 2),
        "common": np.repeat(common[order], 2),
    }
    if rt1 is not None or rt2 is not None:
        nan = np.full(n, np.nan)
        long["rt"] = both(numeric_column(df[rt1], rt1, "rt", rows) if rt1 else nan,
                          numeric_column(df[rt2], rt2, "rt", rows) if rt2 else nan)
    for c in rest:
        long[c] = np.repeat(df[c].to_numpy()[order], 2)
    table = pd.DataFrame(long)
    return from_table(table, task=TwoStep(p_common=p_common), **options)


def _read_wide(df, **options):
    return expand_two_step(df, **options)


register_format(Format(
    name="two_step:wide", columns=("subject", "level1_choice", "level2_choice", "reward"), read=_read_wide,
    summary="two-step task, one row per trial, expanded into stage-1 and stage-2 rows",
    codings={"subject": "any labels", "level1_choice": "1/2", "level2_choice": "1-4 (1, 2: state after option 1; "
             "3, 4: after option 2)", "reward": "0/1"},
    agents=("two_step_hybrid",), optional=("trial",),
))
