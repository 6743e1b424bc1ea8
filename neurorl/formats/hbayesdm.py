"""hBayesDM task files (Ahn, Haines & Zhang 2017): one row per trial, tab-separated ``.txt``.

Layouts and codings, as hBayesDM's documentation of each task's data
describes them (recalled from hBayesDM 1.x; the column names are
case-sensitive as in its example files ``<task>_exampleData.txt``). Every
preset maps ``subjID`` to our ``subject``; columns it does not use are kept as
covariates (e.g. ``trialNum``, ``success``).

``hbayesdm:bandit2arm`` (models ``bandit2arm_delta``)
    ``subjID``; ``choice`` 1 or 2; ``outcome`` the reward (1 = reward,
    -1 = loss in the example data; any number is kept). Read as the ``bandit``
    task (one state, two arms), choices 1-based. Agent: ``q_learning``
    (hBayesDM's ``A`` is ``alpha``, ``tau`` is ``beta``; values start at 0).
``hbayesdm:gng`` (models ``gng_m1`` .. ``gng_m4``)
    ``subjID``; ``cue`` 1-4 (the four cues, read as states 0-3);
    ``keyPressed`` 0/1 (1 = go; *not* 1-based: only the cue is shifted);
    ``outcome`` -1, 0 or 1. Four states, two actions (0 = no-go, 1 = go).
    The cue numbers are kept as labels: which cue is go-to-win is not assumed
    (the ``gng_m*`` agents learn each cue's values from its own outcomes).
``hbayesdm:ts`` (models ``ts_par4``, ``ts_par6``, ``ts_par7``)
    ``subjID``; ``level1_choice`` 1/2; ``level2_choice`` 1-4; ``reward``
    0/1 -- expanded into two rows per trial by
    :func:`neurorl.formats.two_step.expand_two_step` (its docstring has the
    expansion). Option ``trans_prob`` (default 0.7, hBayesDM's argument of the
    same name) is the common-transition probability. Agents:
    ``two_step_hybrid`` with ``TwoStepHybrid.hbayesdm("ts_par4")`` etc.

Missing values: hBayesDM drops rows with NA; here an empty choice cell is a
missed trial (``valid`` False), as in :func:`neurorl.io.from_table`.

Registering more hBayesDM tasks
-------------------------------
:func:`register_hbayesdm` registers ``hbayesdm:<task>`` from a mapping
function ``read(df, **options) -> trials``. The RL task files ``bandit4arm``,
``prl``, ``igt`` and ``pst`` are registered by ``neurorl/formats/hbayesdm_rl.py``
(one call per task, at import; the package imports it automatically). Tasks
without an agent (``dd``, ``ra``, ...) have no preset.
"""

from __future__ import annotations

from ..io import from_table
from . import Format, register_format

__all__ = ["register_hbayesdm", "read_bandit2arm", "read_gng", "read_ts"]


def register_hbayesdm(task: str, columns, read, summary: str, codings: dict, agents=(), optional=()) -> Format:
    """Register the preset ``hbayesdm:<task>`` (``columns`` are the file's required columns, ``subjID`` first).

    Parameters
    ----------
    task : str
        hBayesDM's task name (``bandit4arm``, ``prl``, ...).
    columns : tuple of str
        Required columns, exactly as in hBayesDM's files.
    read : callable
        ``read(df, **options) -> trials`` (usually a call of
        :func:`neurorl.io.from_table` with ``columns``, ``one_based`` per
        column and the task).
    summary, codings, agents, optional
        See :class:`neurorl.formats.Format`.
    """
    if "subjID" not in columns:
        raise ValueError(f"hbayesdm:{task}: hBayesDM files identify subjects by 'subjID'; columns {columns}")
    return register_format(Format(name=f"hbayesdm:{task}", columns=tuple(columns), read=read, summary=summary,
                                  codings=dict(codings), agents=tuple(agents), optional=tuple(optional)))


def read_bandit2arm(df, **options):
    """``hbayesdm:bandit2arm`` (module docstring); ``options`` go to :func:`~neurorl.io.from_table`."""
    return from_table(df, columns={"subject": "subjID", "choice": "choice", "reward": "outcome"},
                      one_based=["choice"], task="bandit", **options)


def read_gng(df, **options):
    """``hbayesdm:gng`` (module docstring): cues 1-4 shifted to states 0-3, ``keyPressed`` 0/1 kept."""
    return from_table(df, columns={"subject": "subjID", "state": "cue", "choice": "keyPressed", "reward": "outcome"},
                      one_based=["state"], n_states=4, n_actions=2, **options)


def read_ts(df, *, trans_prob=0.7, **options):
    """``hbayesdm:ts`` (module docstring): one row per trial expanded into stage-1 and stage-2 rows."""
    from .two_step import expand_two_step

    return expand_two_step(df, subject="subjID", p_common=trans_prob, **options)


register_hbayesdm(
    "bandit2arm", ("subjID", "choice", "outcome"), read_bandit2arm,
    "two-armed bandit (hBayesDM bandit2arm_delta)",
    {"subjID": "any labels", "choice": "1/2", "outcome": "reward (1 / -1 in the example data)"},
    agents=("q_learning",), optional=("trial",),
)
register_hbayesdm(
    "gng", ("subjID", "cue", "keyPressed", "outcome"), read_gng,
    "orthogonalised go/no-go (hBayesDM gng_m1..m4)",
    {"subjID": "any labels", "cue": "1-4", "keyPressed": "0/1 (1 = go)", "outcome": "-1/0/1"},
    agents=("gng_m1", "gng_m2", "gng_m3", "gng_m4"), optional=("trialNum",),
)
register_hbayesdm(
    "ts", ("subjID", "level1_choice", "level2_choice", "reward"), read_ts,
    "two-step task, one row per trial (hBayesDM ts_par4/6/7)",
    {"subjID": "any labels", "level1_choice": "1/2", "level2_choice": "1-4", "reward": "0/1"},
    agents=("two_step_hybrid",), optional=("trial",),
)
