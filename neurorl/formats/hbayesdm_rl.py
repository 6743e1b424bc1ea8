"""hBayesDM's data layouts of its reinforcement-learning tasks -> :func:`neurorl.io.from_table`.

One function per task takes a table exactly as hBayesDM reads it (one row per trial, rows of a subject in trial
order, 1-based choices; ``commons/models/<model>.yml`` lists the columns) and returns an :class:`HBayesDMTable`:
the table in our columns, the keyword arguments of :func:`~neurorl.io.from_table`, and ``info``, the codings
applied (for the report), so that::

    tab = prl(pd.read_csv("prl_exampleData.txt", sep="\\t"))
    trials = nr.from_table(tab.table, **tab.options)
    fit = fit_bayes("prl_fictitious", trials, priors="hbayesdm")

Codings (hBayesDM's preprocessing, ``Python/hbayesdm/preprocess_funcs.py``, applied here and recorded):

* ``prl``: ``choice`` 1/2 -> actions 0/1; ``reward = sign(outcome)`` (hBayesDM models the sign).
* ``prl_multiple_blocks``: as ``prl``, and each ``block`` becomes a state whose options are their own value-table
  rows, so values restart at 0 in every block (hBayesDM ``prl_*_multipleB``; see :mod:`neurorl.agents.prl`).
* ``igt``: ``choice`` 1-4 (decks A-D) -> 0-3; ``reward = (gain - |loss|) / payscale`` (default 100).
* ``bandit4arm2``: ``choice`` 1-4 -> 0-3; ``reward = outcome`` (points 1-100).
* ``bandit4arm``: ``choice`` 1-4 -> 0-3; ``loss = -|loss|`` (hBayesDM's reader takes the magnitude) and
  ``reward = gain + loss``; ``loss`` is the trials' second outcome channel, read by the ``bandit4arm_*``
  gain/loss models.
* ``pst``: each ``type`` (two digits, option1 option2, e.g. 12 = A vs B) becomes a state whose two actions are
  its two options (``EnvSpec.item``, 0-based option codes); ``choice`` 1 (option1 chosen) -> action 0,
  0 -> action 1; ``reward`` as is.

Every input column that is not ours is kept as a covariate (``gain``, ``loss``, ``outcome``, ``block``,
``type``...). Bad input stops with the column, subject and row.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from ..schema import EnvSpec

__all__ = ["HBayesDMTable", "prl", "prl_multiple_blocks", "igt", "bandit4arm2", "bandit4arm", "pst", "TASKS", "read"]


class HBayesDMTable(NamedTuple):
    """A table in our columns, the :func:`neurorl.io.from_table` options that read it, and what was decided."""

    table: pd.DataFrame
    options: dict
    info: dict


def _py(x):
    """A plain Python value for messages and mappings (3 rather than np.float64(3.0))."""
    x = np.asarray(x).item()
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


def _need(df, columns, task):
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"hBayesDM {task} layout: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"hBayesDM {task} layout: column(s) {missing} missing; the layout has {list(columns)} "
                         f"(the table has {list(df.columns)})")
    for c in columns:
        if c == "subjID":
            continue
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna() & df[c].notna()
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise ValueError(f"hBayesDM {task} layout: column {c!r} is not numeric at row {i} (subject "
                             f"{df['subjID'].iloc[i]!r}): {df[c].iloc[i]!r}")


def _codes(df, column, allowed, task):
    v = pd.to_numeric(df[column], errors="coerce").to_numpy(float)
    ok = np.isnan(v) | np.isin(v, allowed)
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"hBayesDM {task} layout: column {column!r} must be one of {list(allowed)} (hBayesDM's "
                         f"1-based codes), got {_py(v[i])!r} at row {i} (subject {_py(df['subjID'].iloc[i])!r})")
    return v


def _base(df, choice, reward):
    out = df.rename(columns={"subjID": "subject"}).copy()
    out["choice"] = pd.array([pd.NA if np.isnan(x) else int(x) for x in choice], dtype="Int64")
    out["reward"] = reward
    return out


def prl(df: pd.DataFrame) -> HBayesDMTable:
    """Probabilistic reversal learning (``prl_rp``, ``prl_fictitious*``, ``prl_ewa``): subjID, choice, outcome."""
    _need(df, ["subjID", "choice", "outcome"], "prl")
    c = _codes(df, "choice", [1, 2], "prl")
    r = np.sign(pd.to_numeric(df["outcome"]).to_numpy(float))
    return HBayesDMTable(_base(df, c - 1, r), {"n_actions": 2}, {"reward": "sign(outcome)"})


def prl_multiple_blocks(df: pd.DataFrame) -> HBayesDMTable:
    """Multiple-block reversal learning (hBayesDM ``prl_*_multipleB``): subjID, block, choice, outcome.

    Block labels (any numbers) are ordered and numbered 0..B-1; block ``b`` is state ``b`` with the options
    ``(2b, 2b + 1)`` of the value table, so every block starts from values 0.
    """
    _need(df, ["subjID", "block", "choice", "outcome"], "prl multipleB")
    c = _codes(df, "choice", [1, 2], "prl multipleB")
    r = np.sign(pd.to_numeric(df["outcome"]).to_numpy(float))
    blocks = pd.to_numeric(df["block"])
    if blocks.isna().any():
        i = int(np.flatnonzero(blocks.isna().to_numpy())[0])
        raise ValueError(f"hBayesDM prl multipleB layout: column 'block' is empty at row {i} (subject "
                         f"{_py(df['subjID'].iloc[i])!r})")
    labels = np.unique(blocks.to_numpy())
    state = np.searchsorted(labels, blocks.to_numpy())
    out = _base(df, c - 1, r)
    out["state"] = state
    B = labels.size
    env = EnvSpec(B, 2, 2 * B, np.arange(2 * B).reshape(B, 2), np.ones((B, 2), bool), np.full((B, 2), np.nan))
    return HBayesDMTable(out, {"env": env}, {"reward": "sign(outcome)",
                                             "state_of_block": {_py(k): i for i, k in enumerate(labels)}})


def igt(df: pd.DataFrame, *, payscale: float = 100.0) -> HBayesDMTable:
    """Iowa gambling task (``igt_pvl_delta``, ``igt_pvl_decay``, ``igt_vpp``, ``igt_orl``): subjID, choice, gain, loss.

    ``reward = (gain - |loss|) / payscale`` (hBayesDM's ``payscale``, default 100); ``gain`` and ``loss`` stay as
    covariates.
    """
    payscale = float(payscale)
    if not (payscale > 0 and np.isfinite(payscale)):
        raise ValueError(f"hBayesDM igt layout: payscale must be positive and finite, got {payscale}")
    _need(df, ["subjID", "choice", "gain", "loss"], "igt")
    c = _codes(df, "choice", [1, 2, 3, 4], "igt")
    gain = pd.to_numeric(df["gain"]).to_numpy(float)
    loss = pd.to_numeric(df["loss"]).to_numpy(float)
    return HBayesDMTable(_base(df, c - 1, (gain - np.abs(loss)) / payscale), {"n_actions": 4},
                         {"reward": f"(gain - |loss|) / {payscale:g}"})


def bandit4arm2(df: pd.DataFrame) -> HBayesDMTable:
    """Restless four-armed bandit (``bandit4arm2_kalman_filter``): subjID, choice, outcome."""
    _need(df, ["subjID", "choice", "outcome"], "bandit4arm2")
    c = _codes(df, "choice", [1, 2, 3, 4], "bandit4arm2")
    return HBayesDMTable(_base(df, c - 1, pd.to_numeric(df["outcome"]).to_numpy(float)), {"n_actions": 4},
                         {"reward": "outcome"})


def bandit4arm(df: pd.DataFrame) -> HBayesDMTable:
    """Four-armed bandit with gains and losses (``bandit4arm_4par``, ``_lapse``, ``_lapse_decay``,
    ``_singleA_lapse``, ``_2par_lapse``): subjID, choice, gain, loss.

    ``loss = -|loss|`` (as hBayesDM's reader) becomes the trials' ``loss`` variable and ``reward = gain + loss``;
    ``gain`` stays as a covariate.
    """
    _need(df, ["subjID", "choice", "gain", "loss"], "bandit4arm")
    c = _codes(df, "choice", [1, 2, 3, 4], "bandit4arm")
    gain = pd.to_numeric(df["gain"]).to_numpy(float)
    loss = -np.abs(pd.to_numeric(df["loss"]).to_numpy(float))
    out = _base(df, c - 1, gain + loss)
    out["gain"] = gain
    out["loss"] = loss
    return HBayesDMTable(out, {"n_actions": 4}, {"reward": "gain + loss", "loss": "-|loss|"})


def pst(df: pd.DataFrame) -> HBayesDMTable:
    """Probabilistic selection task (``pst_Q``, ``pst_gainloss_Q``): subjID, type, choice, reward.

    ``type`` is two option digits 1-6 (12 = A vs B). States are the distinct pairs in increasing ``type``;
    ``options["env"].item`` holds their options (0-based). For test-phase pairs (no feedback), pass their states
    to the agent: ``make_agent("pst_Q", test_states=[...])`` -- ``info["state_of_type"]`` maps each
    ``type`` to its state.
    """
    _need(df, ["subjID", "type", "choice", "reward"], "pst")
    c = _codes(df, "choice", [0, 1], "pst")
    t = pd.to_numeric(df["type"]).to_numpy(float)
    o1, o2 = t // 10, t % 10
    ok = (o1 >= 1) & (o1 <= 6) & (o2 >= 1) & (o2 <= 6) & (o1 != o2) & (t == np.round(t))
    if not ok.all():
        i = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"hBayesDM pst layout: column 'type' must be two different option digits 1-6 (e.g. 12), "
                         f"got {_py(t[i])!r} at row {i} (subject {_py(df['subjID'].iloc[i])!r})")
    types = np.unique(t).astype(int)
    state = np.searchsorted(types, t)
    action = np.where(np.isnan(c), np.nan, np.where(c == 1, 0, 1))
    out = _base(df, action, pd.to_numeric(df["reward"]).to_numpy(float))
    out["state"] = state
    S = types.size
    item = np.stack([types // 10 - 1, types % 10 - 1], axis=1)
    env = EnvSpec(S, 2, 6, item, np.ones((S, 2), bool), np.full((S, 2), np.nan))
    return HBayesDMTable(out, {"env": env}, {"reward": "reward", "action_0": "option1 (choice = 1)",
                                             "state_of_type": {int(k): i for i, k in enumerate(types)}})


#: hBayesDM task -> (reader, required columns, agents that fit it): what a preset registration needs
TASKS = {
    "prl": (prl, ("subjID", "choice", "outcome"),
            ("prl_rp", "prl_fictitious", "prl_fictitious_rp", "prl_fictitious_woa", "prl_fictitious_rp_woa",
             "prl_ewa")),
    "prl_multipleB": (prl_multiple_blocks, ("subjID", "block", "choice", "outcome"),
                      ("prl_rp", "prl_fictitious", "prl_fictitious_woa", "prl_ewa")),
    "igt": (igt, ("subjID", "choice", "gain", "loss"), ("igt_pvl_delta", "igt_pvl_decay", "igt_vpp", "igt_orl")),
    "bandit4arm2": (bandit4arm2, ("subjID", "choice", "outcome"), ("bandit4arm2_kalman_filter",)),
    "bandit4arm": (bandit4arm, ("subjID", "choice", "gain", "loss"),
                   ("bandit4arm_4par", "bandit4arm_lapse", "bandit4arm_lapse_decay", "bandit4arm_singleA_lapse",
                    "bandit4arm_2par_lapse")),
    "pst": (pst, ("subjID", "type", "choice", "reward"), ("pst_Q", "pst_gainloss_Q")),
}


def read(task: str, df: pd.DataFrame, **options):
    """A trials dataset from a table in hBayesDM's layout of ``task`` (a key of :data:`TASKS`).

    ``options`` go to the task's function (``payscale`` for ``igt``). The codings applied are recorded in the
    dataset's attributes (``hbayesdm_layout``, ``hbayesdm_codings``).
    """
    from ..io import from_table

    if task not in TASKS:
        raise ValueError(f"unknown hBayesDM task layout {task!r}; choose from {sorted(TASKS)}")
    tab = TASKS[task][0](df, **options)
    trials = from_table(tab.table, **tab.options)
    trials.attrs["hbayesdm_layout"] = task
    trials.attrs["hbayesdm_codings"] = "; ".join(f"{k}: {v}" for k, v in tab.info.items()
                                                 if k in ("reward", "loss", "action_0"))
    return trials


def _register() -> None:
    """Register ``hbayesdm:<task>`` presets for the tasks of :data:`TASKS` (called at import)."""
    from .hbayesdm import register_hbayesdm

    codings = {
        "prl": {"subjID": "any labels", "choice": "1/2", "outcome": "reward; its sign is modelled (1 / -1)"},
        "prl_multipleB": {"subjID": "any labels", "block": "block label (values restart per block)",
                          "choice": "1/2", "outcome": "its sign is modelled"},
        "igt": {"subjID": "any labels", "choice": "1-4 (decks A-D)", "gain": ">= 0", "loss": "<= 0 or its magnitude",
                "payscale": "option (default 100): reward = (gain - |loss|) / payscale"},
        "bandit4arm2": {"subjID": "any labels", "choice": "1-4", "outcome": "points"},
        "bandit4arm": {"subjID": "any labels", "choice": "1-4", "gain": "gain (>= 0)",
                       "loss": "loss, <= 0 or its magnitude (read as -|loss|); reward = gain + loss"},
        "pst": {"subjID": "any labels", "type": "two option digits 1-6 (12 = A vs B)",
                "choice": "1 = the first option of the pair chosen, 0 = the second", "reward": "0/1"},
    }
    summary = {"prl": "probabilistic reversal learning (hBayesDM prl_*)",
               "prl_multipleB": "probabilistic reversal learning over several blocks (hBayesDM prl_*_multipleB)",
               "igt": "Iowa gambling task (hBayesDM igt_*)",
               "bandit4arm2": "4-armed bandit with drifting payoffs (hBayesDM bandit4arm2_kalman_filter)",
               "bandit4arm": "4-armed bandit with separate gains and losses (hBayesDM bandit4arm_*)",
               "pst": "probabilistic selection task (hBayesDM pst_*)"}
    for task, (_, columns, agents) in TASKS.items():
        def reader(df, _task=task, **options):
            return read(_task, df, **options)

        register_hbayesdm(task, columns, reader, summary[task], codings[task], agents=agents)


_register()
