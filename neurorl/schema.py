"""Names, constructors and validators of neurorl's data model.

This module is the only place that knows the dimension and variable names.

Trials
------
An ``xarray.Dataset`` with dims ``(subject, trial)`` -- ``trial`` is the
positional index 0..T-1 within a subject; subjects with fewer trials are padded
-- plus ``action`` and ``state_id`` (the state table's dim; ``state`` is
the per-trial variable) for the task tables:

==============  ==================  =============================================
variable        dims                meaning
==============  ==================  =============================================
``state``       subject, trial      int, state (cue) shown on the trial
``choice``      subject, trial      int, action taken; -1 where none
``reward``      subject, trial      float, outcome; may be NaN where not valid
``rt``          subject, trial      float, reaction time in seconds; NaN = absent
``valid``       subject, trial      bool, a real trial with a usable choice
``trial_index`` subject, trial      int, the trial's own label; -1 = padding
``next_state``  subject, trial      int, state reached; -1 if unknown
``done``        subject, trial      bool, the trial ended its episode
``item``        state_id, action    int, value-memory row of each action
``available``   state_id, action    bool, action can be taken in that state
``known_value`` state_id, action    float, value shown to the subject (NaN = learnt)
==============  ==================  =============================================

Missed trials (no response) are present (``trial_index >= 0``) but not
``valid``; agents do not learn on them. An optional boolean ``scored``
(subject, trial) marks the valid trials whose choice (and RT) enter the
likelihood (default: every valid trial; read on valid trials only); a valid
trial that is not scored is learnt from but not scored -- HDDM's convention of skipping each condition's
first trial. An optional float ``loss`` (subject, trial) is the loss part of
``reward`` (``reward = gain + loss``, ``loss <= 0`` in hBayesDM's convention),
read by the gain/loss learners that learn the two separately (the
``bandit4arm_*`` models); finite on valid trials, every other agent ignores it.
Anything else per trial is a task covariate, kept as is.

Latents
-------
An ``xarray.Dataset`` on the same ``(subject, trial)`` grid; per-action latents
add ``action``. Shared names: see :data:`SHARED_LATENTS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import xarray as xr

SUBJECT, TRIAL, ACTION, STATE = "subject", "trial", "action", "state_id"
UNIT, TIME, CHANNEL, STAGE = "unit", "time", "channel", "stage"

CORE_VARIABLES = ("state", "choice", "reward", "rt", "valid")
OPTIONAL_VARIABLES = ("trial_index", "next_state", "done")
TABLE_VARIABLES = ("item", "available", "known_value")
#: optional per-trial channels the likelihood reads (checked like the core variables when present)
CHANNEL_VARIABLES = ("scored", "loss")
SHARED_LATENTS = ("q", "q_soft", "v", "v_soft", "policy", "entropy", "rpe", "chosen_value")
SCHEMA_VERSION = "1"

__all__ = [
    "SUBJECT", "TRIAL", "ACTION", "STATE", "UNIT", "TIME", "CHANNEL",
    "CORE_VARIABLES", "SHARED_LATENTS", "EnvSpec", "make_trials", "validate_trials", "env_spec",
    "time_major",
]


@dataclass(frozen=True)
class EnvSpec:
    """Static structure of a task as seen by an agent.

    ``item[s, a]`` is the row of the agent's value table that action ``a`` in
    state ``s`` refers to. For most tasks ``item[s, a] = s * n_actions + a``
    (one value per state-action pair); the frequency x stakes memory task maps
    actions to the 12 options shown, so an option's value is shared by every
    pair it appears in. ``known_value[s, a]`` is finite where the value of that
    action is shown to the subject (a sure amount) rather than learnt.
    """

    n_states: int
    n_actions: int
    n_items: int
    item: np.ndarray
    available: np.ndarray
    known_value: np.ndarray

    def __post_init__(self):
        shape = (self.n_states, self.n_actions)
        for name in ("item", "available", "known_value"):
            arr = np.asarray(getattr(self, name))
            if arr.shape != shape:
                raise ValueError(f"EnvSpec.{name} has shape {arr.shape}; expected (n_states, n_actions) = {shape}")
        if self.item.min() < 0 or self.item.max() >= self.n_items:
            raise ValueError(f"EnvSpec.item must lie in [0, n_items={self.n_items})")
        if not np.all(self.available.any(axis=1)):
            s = int(np.flatnonzero(~self.available.any(axis=1))[0])
            raise ValueError(f"EnvSpec: state {s} has no available action")

    @classmethod
    def default(cls, n_states: int, n_actions: int) -> "EnvSpec":
        """One value per (state, action); every action available; nothing known."""
        item = np.arange(n_states * n_actions).reshape(n_states, n_actions)
        return cls(
            n_states, n_actions, n_states * n_actions, item,
            np.ones((n_states, n_actions), bool), np.full((n_states, n_actions), np.nan),
        )

    @cached_property
    def lookup(self) -> dict:
        """Per-state rows used to build observations: ``lookup[key][state]``."""
        kv = np.asarray(self.known_value, float)
        return {
            "items": np.ascontiguousarray(self.item, dtype=np.int64),
            "avail": np.ascontiguousarray(self.available, dtype=bool),
            "known": np.isfinite(kv),
            "known_value": np.nan_to_num(kv, nan=0.0),
        }

    @property
    def is_default_items(self) -> bool:
        return self.n_items == self.n_states * self.n_actions and np.array_equal(
            self.item, np.arange(self.n_items).reshape(self.n_states, self.n_actions)
        )

    def table_vars(self) -> dict:
        dims = (STATE, ACTION)
        return {
            "item": (dims, self.item.astype(np.int64)),
            "available": (dims, self.available.astype(bool)),
            "known_value": (dims, self.known_value.astype(float)),
        }


def _as2d(name, x, shape, dtype):
    arr = np.asarray(x)
    if arr.ndim == 1 and shape[0] == 1:
        arr = arr[None, :]
    if arr.shape != shape:
        raise ValueError(f"{name!r} has shape {arr.shape}; expected (n_subjects, n_trials) = {shape}")
    return arr.astype(dtype) if dtype is not None else arr


def make_trials(
    state,
    choice,
    reward,
    *,
    rt=None,
    valid=None,
    trial_index=None,
    next_state=None,
    done=None,
    subjects=None,
    n_actions: int | None = None,
    n_states: int | None = None,
    env: EnvSpec | None = None,
    covariates: dict | None = None,
    attrs: dict | None = None,
    validate: bool = True,
) -> xr.Dataset:
    """Build a trials dataset from ``(n_subjects, n_trials)`` arrays.

    Parameters
    ----------
    state, choice, reward : array_like, shape (n_subjects, n_trials)
        ``choice`` uses -1 for "no response"; ``reward`` may be NaN on invalid trials.
    rt : array_like, optional
        Reaction times in seconds (NaN where absent). Default: all NaN.
    valid : array_like of bool, optional
        Default: ``choice >= 0``.
    trial_index : array_like of int, optional
        The trials' own labels, -1 for padding. Default: 0..T-1 for all.
    next_state, done : array_like, optional
        For multi-step tasks. Default: -1 (unknown) and True (every trial ends
        its episode, as in bandits).
    subjects : sequence, optional
        Subject labels. Default: 0..N-1.
    n_actions, n_states : int, optional
        Default: inferred from the data (max + 1), or from ``env``.
    env : EnvSpec, optional
        Task structure (items, availability, known values).
    covariates : dict, optional
        Extra per-trial variables, each ``(n_subjects, n_trials)`` or, per
        action, ``(n_subjects, n_trials, n_actions)``.
    """
    choice = np.asarray(choice)
    if choice.ndim == 1:
        choice = choice[None, :]
    shape = choice.shape
    state = _as2d("state", state, shape, None)
    reward = _as2d("reward", reward, shape, float)
    for name, arr in (("state", state), ("choice", choice)):
        a = np.asarray(arr, dtype=float)
        if np.any(np.isnan(a)):
            raise ValueError(f"{name!r} contains NaN; use -1 for a missing choice and set valid=False")
        if np.any(a != np.round(a)):
            idx = np.argwhere(a != np.round(a))[0]
            raise ValueError(f"{name!r} must be integer; found {a[tuple(idx)]} at subject index {idx[0]}, trial {idx[1]}")
    state = state.astype(np.int64)
    choice = choice.astype(np.int64)
    if env is not None:
        n_states, n_actions = env.n_states, env.n_actions
    n_actions = int(n_actions if n_actions is not None else max(2, choice.max() + 1))
    n_states = int(n_states if n_states is not None else max(1, state.max() + 1))
    if env is None:
        env = EnvSpec.default(n_states, n_actions)
    rt = np.full(shape, np.nan) if rt is None else _as2d("rt", rt, shape, float)
    valid = (choice >= 0) if valid is None else _as2d("valid", valid, shape, bool)
    if trial_index is None:
        trial_index = np.broadcast_to(np.arange(shape[1]), shape)
    trial_index = _as2d("trial_index", trial_index, shape, np.int64)
    next_state = np.full(shape, -1) if next_state is None else _as2d("next_state", next_state, shape, np.int64)
    done = np.ones(shape, bool) if done is None else _as2d("done", done, shape, bool)
    subjects = np.arange(shape[0]) if subjects is None else np.asarray(subjects)
    if subjects.shape != (shape[0],):
        raise ValueError(f"subjects has {subjects.size} labels for {shape[0]} subjects")
    dims = (SUBJECT, TRIAL)
    data = {
        "state": (dims, state),
        "choice": (dims, choice),
        "reward": (dims, reward),
        "rt": (dims, rt),
        "valid": (dims, valid),
        "trial_index": (dims, trial_index),
        "next_state": (dims, next_state),
        "done": (dims, done),
    }
    data.update(env.table_vars())
    for k, v in (covariates or {}).items():
        if k in data:
            raise ValueError(f"covariate {k!r} clashes with a core variable name")
        v = np.asarray(v)
        if v.ndim == 3 and v.shape[:2] == shape and v.shape[2] == n_actions:
            data[k] = ((SUBJECT, TRIAL, ACTION), v)
        else:
            data[k] = (dims, _as2d(k, v, shape, None))
    ds = xr.Dataset(
        data,
        coords={SUBJECT: subjects, TRIAL: np.arange(shape[1]), ACTION: np.arange(n_actions), STATE: np.arange(n_states)},
        attrs={"n_actions": n_actions, "n_states": n_states, "n_items": env.n_items, "schema": SCHEMA_VERSION, **(attrs or {})},
    )
    return validate_trials(ds) if validate else ds


#: Largest plausible median reaction time (seconds); a larger median means the RTs are in other units.
MAX_MEDIAN_RT = 10.0


def check_rt_seconds(rt, valid=None, *, where: str = "'rt'") -> None:
    """Raise ``ValueError`` when reaction times are implausible in seconds (median above :data:`MAX_MEDIAN_RT`).

    Parameters
    ----------
    rt : array_like
        Reaction times (NaN where absent).
    valid : array_like of bool, optional
        Only these trials count.
    where : str
        How the RTs are named in the message (file, column).
    """
    rt = np.asarray(rt, float)
    if valid is not None:
        rt = rt[np.asarray(valid, bool)]
    rt = rt[np.isfinite(rt)]
    if rt.size and float(np.median(rt)) > MAX_MEDIAN_RT:
        raise ValueError(f"{where}: the median reaction time is {float(np.median(rt)):g} s, implausible in seconds "
                         f"(above {MAX_MEDIAN_RT:g} s); RTs in milliseconds? Read the table with rt_unit='ms' "
                         "(CLI: --rt-unit ms), or rt_unit='s' to keep the values as they are")


def _first_bad(ds, mask, name, what):
    """Raise a ValueError naming the variable and the first (subject, trial) where ``mask`` holds."""
    idx = np.argwhere(np.asarray(mask))[0]
    subj = ds[SUBJECT].values[idx[0]]
    subj = subj.item() if isinstance(subj, np.generic) else subj
    tl = int(ds["trial_index"].values[idx[0], idx[1]]) if "trial_index" in ds else int(idx[1])
    raise ValueError(f"{name!r}: {what} (first at subject {subj!r}, trial {tl})")


def _numbers(ds, name) -> np.ndarray:
    """``ds[name]`` as float; a variable holding text (a column that was read as strings) is a ValueError naming
    the first value that is not a number, with its subject and trial."""
    vals = np.asarray(ds[name].values)
    if vals.dtype.kind in "biuf":
        return vals.astype(float, copy=False)
    out = np.full(vals.shape, np.nan)
    bad = np.zeros(vals.shape, bool)
    for idx, v in np.ndenumerate(vals):
        try:
            out[idx] = float(v)
        except (TypeError, ValueError):
            bad[idx] = True
    if bad.any():
        first = vals[tuple(np.argwhere(bad)[0])]
        _first_bad(ds, bad, name, f"must hold numbers, holds {first!r} ({vals.dtype} values)")
    return out


def validate_trials(ds: xr.Dataset) -> xr.Dataset:
    """Check a trials dataset; return it unchanged or raise ``ValueError``.

    Checks: required variables and dims (``(subject, trial)`` for every per-trial variable, the optional
    channels ``scored`` and ``loss`` included), integer states and choices in range on
    valid trials, ``scored`` (if present) True/False on valid trials, ``loss`` (if present) finite on
    valid trials, chosen actions available, finite rewards on valid trials,
    non-negative RTs, and the state/action tables.
    """
    if not isinstance(ds, xr.Dataset):
        hint = " (pass its .trials)" if isinstance(getattr(ds, "trials", None), xr.Dataset) else ""
        raise TypeError(f"trials must be an xarray.Dataset, got {type(ds).__name__}{hint}")
    missing = [v for v in CORE_VARIABLES if v not in ds]
    if missing:
        raise ValueError(f"trials dataset lacks required variable(s) {missing}")
    for v in CORE_VARIABLES + OPTIONAL_VARIABLES + CHANNEL_VARIABLES:
        if v in ds and ds[v].dims != (SUBJECT, TRIAL):
            raise ValueError(f"{v!r} must have dims ('subject', 'trial'), has {ds[v].dims}")
    n_actions = int(ds.attrs.get("n_actions", ds.sizes.get(ACTION, 0)))
    n_states = int(ds.attrs.get("n_states", ds.sizes.get(STATE, 0)))
    if n_actions < 1 or n_states < 1:
        raise ValueError("trials dataset must record n_actions and n_states (attrs or 'action'/'state_id' dims)")
    valid = ds["valid"].values.astype(bool)
    choice = ds["choice"].values
    state = ds["state"].values
    if not np.issubdtype(choice.dtype, np.integer):
        _first_bad(ds, np.asarray(choice) != np.round(np.nan_to_num(choice)), "choice", "must be integer")
    bad = valid & ((choice < 0) | (choice >= n_actions))
    if bad.any():
        _first_bad(ds, bad, "choice", f"out of range [0, {n_actions}) on a valid trial")
    present = ds["trial_index"].values >= 0 if "trial_index" in ds else np.ones_like(valid)
    bad = present & ((state < 0) | (state >= n_states))
    if bad.any():
        _first_bad(ds, bad, "state", f"out of range [0, {n_states})")
    if (valid & ~present).any():
        _first_bad(ds, valid & ~present, "valid", "padding rows (trial_index = -1) cannot be valid")
    bad = valid & ~np.isfinite(_numbers(ds, "reward"))
    if bad.any():
        _first_bad(ds, bad, "reward", "NaN or infinite reward on a valid trial")
    if "scored" in ds:  # only read on valid trials (padding may hold anything)
        sc = _numbers(ds, "scored")
        bad = valid & ~np.isin(sc, (0.0, 1.0))
        if bad.any():
            _first_bad(ds, bad, "scored", "must be True/False (1/0) on valid trials")
    if "loss" in ds:  # the loss part of the reward (gain/loss learners)
        bad = valid & ~np.isfinite(_numbers(ds, "loss"))
        if bad.any():
            _first_bad(ds, bad, "loss", "NaN or infinite loss on a valid trial")
    rt = _numbers(ds, "rt")
    bad = np.isfinite(rt) & (rt < 0)
    if bad.any():
        _first_bad(ds, bad, "rt", "negative reaction time")
    if "available" in ds:
        avail = ds["available"].values
        s = np.clip(state, 0, n_states - 1)
        a = np.clip(choice, 0, n_actions - 1)
        bad = valid & ~avail[s, a]
        if bad.any():
            _first_bad(ds, bad, "choice", "chosen action is not available in that state")
    return ds


def env_spec(trials: xr.Dataset) -> EnvSpec:
    """The :class:`EnvSpec` recorded in a trials dataset (default tables if absent)."""
    n_states, n_actions = int(trials.attrs["n_states"]), int(trials.attrs["n_actions"])
    if "item" not in trials:
        return EnvSpec.default(n_states, n_actions)
    return EnvSpec(
        n_states, n_actions, int(trials.attrs.get("n_items", int(trials["item"].max()) + 1)),
        trials["item"].values.astype(np.int64), trials["available"].values.astype(bool),
        trials["known_value"].values.astype(float),
    )


def time_major(trials: xr.Dataset, name: str) -> np.ndarray:
    """Variable ``name`` as a ``(trial, subject)`` array (the scan order)."""
    return np.ascontiguousarray(trials[name].transpose(TRIAL, SUBJECT).values)
