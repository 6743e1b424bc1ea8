"""Tidy tables <-> trials datasets, and trials/latents files (CSV, netCDF).

Reference: design.md ("The central abstractions", 1. Trials: built from and
written back to tidy tables, validated on the way in, errors name the column,
subject and trial); :mod:`neurorl.schema` (the data model); tasks.md
(introduction: hBayesDM files are 1-based); decoding.md §1 (what netCDF
accepts: no bool, dict or None attributes).

Functions
---------
:func:`from_table`
    A tidy :class:`pandas.DataFrame` (one row per trial) -> trials dataset.
:func:`to_table`
    Trials dataset -> tidy table, one row per real trial.
:func:`write_trials`, :func:`read_trials`
    ``.csv`` (``.tsv``/``.txt`` tab-separated) with a JSON sidecar, or ``.nc``.
:func:`write_latents`, :func:`read_latents`
    Latents datasets as netCDF.
:func:`subject_index`, :class:`RowLocator`, :func:`numeric_column`, :func:`integer_column`
    Building blocks of :func:`from_table` that the format presets (:mod:`neurorl.formats`) reuse.

Table layout
------------
Our column names are ``subject, trial, state, choice, reward, rt, valid,
next_state, done``; ``columns=`` maps them to the user's names. Every other
column is a task covariate. A covariate with extra dimensions (e.g. one value
per action) is written as one column per element, named
``name[dim=label]`` (``name[d1=l1,d2=l2]`` for several dims, C order);
:func:`from_table` reassembles such columns when they form a complete grid.

Round trips and normalisation
-----------------------------
``from_table(to_table(ds))`` is ``identical`` to ``ds`` for datasets whose
padding (``trial_index == -1``) is trailing, whose longest subject has no
padding, and whose subjects each have at least one real trial -- every dataset
made by :func:`from_table` or :func:`neurorl.simulate` qualifies. The state/
action tables, dataset attributes and variable attributes travel in
``DataFrame.attrs["neurorl"]`` (and in the CSV sidecar); a table without them
gets default tables (and ``n_actions``/``n_states`` inferred or given).

``to_table(from_table(df))`` reproduces ``df`` (column order aside; the core
columns ``df`` lacked are added with their defaults) after this documented
normalisation: columns take our names; ``choice`` is int64, or float64 with
NaN when any trial has no choice; ``state``/``next_state``/``trial`` are
int64 (``next_state`` -1 where unknown/NaN); ``reward``/``rt`` float64;
``valid``/``done`` bool; integer covariates int64; float covariates float64;
text covariates (including categoricals of text) are strings with missing
values as ``""``; nullable integer/boolean covariates holding NA become
float64 with NaN; datetimes stay datetime64 (netCDF stores them at ns
resolution); choice/state codes are 0-based (``one_based`` converts
them). Rows come out grouped by subject (first-appearance order), in each
subject's original row order.

Assumptions [A]
---------------
* [A1] Trial labels (``trial``) are non-negative integers, strictly increasing
  in row order within a subject; they are kept as labels (``trial_index``) and
  never shifted, also with ``one_based=True`` (which converts ``choice``,
  ``state`` and ``next_state`` codes only).
* [A2] A missing (NaN) choice marks a missed trial (``valid`` False, choice
  -1). Without a ``valid`` column, ``valid = choice is present``. A present
  choice on a trial that ``valid`` marks False is kept.
* [A3] Every present choice (valid or not) must be an integer in
  ``[0, n_actions)``; ``n_actions`` defaults to ``max(2, max choice + 1)``,
  ``n_states`` to ``max state + 1``.
* [A4] Padding values: state 0, choice -1, reward/rt NaN, valid False,
  trial_index -1, next_state -1, done True; covariates NaN (float), -1 (int),
  False (bool), ``""`` (text), NaT (datetime). Mask with ``trial_index >= 0``.
* [A5] Subject labels must be all text or all numbers; text labels are stored
  as a numpy unicode array. Error messages give positions as 0-based ``row``
  numbers of the table, and the user's own subject and trial labels (the
  position within the subject when the table has no trial column).
* [A6] Explicit ``env``/``task``/``n_actions``/``n_states`` arguments win
  over the metadata in ``DataFrame.attrs["neurorl"]``; the metadata's
  dataset attributes are always kept (the ``task`` argument's name overrides).
* [A7] netCDF (engine netCDF4): attributes that are not a str, int or float
  scalar (None, bool, dict, list, tuple, arrays) are stored as JSON strings
  and listed in the attribute ``neurorl_json_attrs``; reading restores them
  (tuples come back as lists; numpy arrays keep their dtype). Values JSON
  cannot hold are stored as their ``repr`` with a warning. Numpy scalar
  attributes come back as Python scalars.
* [A8] The CSV sidecar is ``<path>.json`` (e.g. ``trials.csv.json``) and holds
  the column dtypes, the state/action tables and the attributes, so CSV round
  trips are lossless for custom :class:`~neurorl.schema.EnvSpec` too. A CSV
  without a sidecar is read like any table (``read_trials(path, columns=...,
  one_based=...)``).
* [A9] Variables or non-index coordinates that are not per-trial cannot be
  represented in a table: :func:`to_table` and CSV writing raise (use
  netCDF).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from .results import atomic_output, reading
from .schema import (
    ACTION,
    CORE_VARIABLES,
    OPTIONAL_VARIABLES,
    STATE,
    SUBJECT,
    TABLE_VARIABLES,
    TRIAL,
    EnvSpec,
    check_rt_seconds,
    env_spec,
    make_trials,
    validate_trials,
)

__all__ = [
    "COLUMNS", "from_table", "to_table", "write_trials", "read_trials", "write_latents", "read_latents",
]

#: Our column vocabulary, in the order :func:`to_table` writes it.
COLUMNS = ("subject", "trial", "state", "choice", "reward", "rt", "valid", "next_state", "done")
_REQUIRED = ("subject", "choice", "reward")
#: Our code columns that ``one_based`` can convert.
ONE_BASED_COLUMNS = ("choice", "state", "next_state")
_RESERVED = set(COLUMNS) | set(CORE_VARIABLES) | set(OPTIONAL_VARIABLES) | set(TABLE_VARIABLES) | {
    SUBJECT, TRIAL, ACTION, STATE,
}
_META = "neurorl"
_META_VERSION = 1
_JSON_ATTRS = "neurorl_json_attrs"
_CORE_ATTRS = ("n_actions", "n_states", "n_items", "schema")
_GRID_RE = re.compile(r"^([^\[\]]+)\[([^\[\]]+)\]$")


# ----------------------------------------------------------------------------- helpers
def _py(x):
    """A numpy scalar as the Python scalar (for clean messages and attributes)."""
    return x.item() if isinstance(x, np.generic) else x


def _colname(column, ours):
    return f"column {column!r}" + (f" ({ours})" if ours != column else "")


class RowLocator:
    """Locates table rows by the user's subject and trial labels for error messages.

    ``fail(column, ours, mask, what)`` raises ``ValueError`` naming the column (and our name for it), the first
    row where ``mask`` is True with its subject and trial labels, and ``what(row)``. Shared by
    :func:`from_table`'s steps and the readers of :mod:`neurorl.formats`.
    """

    def __init__(self, subjects, codes, trial_labels):
        self.subjects, self.codes, self.trial = subjects, codes, trial_labels

    def fail(self, column, ours, mask, what):
        i = int(np.flatnonzero(np.asarray(mask))[0])
        name = _colname(column, ours)
        where = f"subject {_py(self.subjects[self.codes[i]])!r}"
        if self.trial is not None:
            where += f", trial {_py(self.trial[i])!r}"
        raise ValueError(f"{name}: {what(i)} (first at {where}; row {i})")


def numeric_column(series, column, ours, rows):
    """A column as float64 (NaN where missing); non-numeric entries raise."""
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return series.to_numpy(dtype=float)
    num = pd.to_numeric(series, errors="coerce")
    bad = (num.isna() & series.notna()).to_numpy()
    if bad.any():
        rows.fail(column, ours, bad, lambda i: f"non-numeric value {_py(series.iloc[i])!r}")
    return num.to_numpy(dtype=float, na_value=np.nan)


def integer_column(values, column, ours, rows, *, present=None):
    """Check that the present values of a numeric column are integers; raise naming the first that is not."""
    present = ~np.isnan(values) if present is None else present
    bad = present & (values != np.round(np.nan_to_num(values)))
    if bad.any():
        rows.fail(column, ours, bad, lambda i: f"non-integer value {values[i]:g}")


_TRUE = {"true", "1", "1.0", "t", "yes", "y"}
_FALSE = {"false", "0", "0.0", "f", "no", "n"}


def _boolean(series, column, ours, rows):
    """A column of booleans (bool, 0/1, or true/false text); missing or other values raise."""
    if pd.api.types.is_bool_dtype(series.dtype) and not series.isna().any():
        return series.to_numpy(dtype=bool)
    vals = series.to_numpy(dtype=object)
    out = np.zeros(len(vals), bool)
    bad = np.zeros(len(vals), bool)
    for i, v in enumerate(vals):
        if isinstance(v, (bool, np.bool_)):
            out[i] = bool(v)
        elif isinstance(v, (int, float, np.integer, np.floating)) and v in (0, 1):
            out[i] = bool(v)
        elif isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE:
            out[i] = v.strip().lower() in _TRUE
        else:
            bad[i] = True
    if bad.any():
        rows.fail(column, ours, bad, lambda i: f"{_py(vals[i])!r} is not a boolean (True/False or 1/0)")
    return out


def _fill_value(dtype):
    kind = np.dtype(dtype).kind
    return {"b": False, "i": -1, "u": 0, "f": np.nan, "c": np.nan, "U": "", "M": np.datetime64("NaT"),
            "m": np.timedelta64("NaT")}[kind]


def _covariate(series, column):
    """A covariate column as a 1-D numpy array of one type (see the module's normalisation)."""
    s = series
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = pd.Series(np.asarray(s, dtype=object), index=s.index, dtype=object)
    dt = s.dtype
    has_na = bool(s.isna().any())
    if pd.api.types.is_bool_dtype(dt):
        return s.astype("Float64").to_numpy(dtype=float, na_value=np.nan) if has_na else s.to_numpy(dtype=bool)
    if pd.api.types.is_integer_dtype(dt):
        return s.to_numpy(dtype=float, na_value=np.nan) if has_na else s.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(dt):
        return s.to_numpy(dtype=float, na_value=np.nan)
    if pd.api.types.is_datetime64_dtype(dt) or pd.api.types.is_timedelta64_dtype(dt):
        return s.to_numpy()
    if isinstance(dt, pd.DatetimeTZDtype):
        raise ValueError(f"column {column!r}: time-zone aware datetimes are not supported; convert to UTC "
                         "(series.dt.tz_convert(None)) first")
    if pd.api.types.is_string_dtype(dt) or dt == object:
        vals = s.to_numpy(dtype=object)
        mask = pd.isna(vals) if len(vals) else np.zeros(0, bool)
        kinds = {type(v) for v, m in zip(vals, mask) if not m}
        if not kinds or all(issubclass(k, str) for k in kinds):
            return np.array(["" if m else str(v) for v, m in zip(vals, mask)], dtype=str)
        if all(issubclass(k, (bool, np.bool_)) for k in kinds):
            return np.where(mask, np.nan, vals).astype(float) if mask.any() else vals.astype(bool)
        if all(issubclass(k, (int, float, np.integer, np.floating)) and not issubclass(k, (bool, np.bool_))
               for k in kinds):
            return _covariate(pd.to_numeric(pd.Series(vals)), column)
        raise ValueError(f"column {column!r}: mixed value types {sorted(k.__name__ for k in kinds)}; "
                         "convert the column to one type")
    raise ValueError(f"column {column!r}: unsupported dtype {dt}")


def _label(text):
    """A coordinate label parsed from a column name: int if it reads as one, else the text."""
    try:
        if str(int(text)) == text:
            return int(text)
    except ValueError:
        pass
    return text


def _grid_columns(names):
    """Group ``name[dim=label,...]`` columns into complete grids; returns {base: (dims, labels, columns)}."""
    groups: dict = {}
    for col in names:
        m = _GRID_RE.match(col)
        if not m:
            continue
        try:
            pairs = [p.split("=", 1) for p in m.group(2).split(",")]
            dims = tuple(d.strip() for d, _ in pairs)
            labels = tuple(_label(v.strip()) for _, v in pairs)
        except ValueError:
            continue
        groups.setdefault(m.group(1), []).append((dims, labels, col))
    out = {}
    plain = set(names)
    for base, entries in groups.items():
        dims = entries[0][0]
        if base in plain or any(e[0] != dims for e in entries) or len(set(dims)) != len(dims):
            continue
        per_dim = [list(dict.fromkeys(e[1][k] for e in entries)) for k in range(len(dims))]
        want = int(np.prod([len(p) for p in per_dim]))
        if want != len(entries) or len({e[1] for e in entries}) != want:
            continue
        index = {e[1]: e[2] for e in entries}
        cols = [index[lab] for lab in _product(per_dim)]
        out[base] = (dims, per_dim, cols)
    return out


def _product(lists):
    if not lists:
        return [()]
    return [(a,) + rest for a in lists[0] for rest in _product(lists[1:])]


def _subject_labels(uniques, column):
    vals = list(uniques)
    if all(isinstance(v, str) for v in vals):
        return np.array(vals, dtype=str)
    if any(isinstance(v, str) for v in vals):
        raise ValueError(f"{_colname(column, 'subject')}: labels mix text and numbers "
                         f"({vals[:5]}...); convert them to one type")
    return np.asarray(uniques.to_numpy() if hasattr(uniques, "to_numpy") else vals)


# ----------------------------------------------------------------------------- JSON helpers
def _to_json(obj):
    """A JSON-able copy of ``obj`` (numpy arrays tagged with their dtype); TypeError if impossible."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in "biufU":
            raise TypeError(f"cannot store a {obj.dtype} array")
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str, "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (str, bool, int, float)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [_to_json(v) for v in obj]
    if isinstance(obj, dict):
        if not all(isinstance(k, str) for k in obj):
            raise TypeError("dict keys must be strings")
        return {k: _to_json(v) for k, v in obj.items()}
    raise TypeError(f"cannot store a {type(obj).__name__}")


def _from_json(obj):
    if isinstance(obj, dict):
        if "__ndarray__" in obj:
            return np.array(obj["__ndarray__"], dtype=obj["dtype"]).reshape(obj["shape"])
        return {k: _from_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    return obj


def _json_attrs(attrs, where):
    """Attributes as a JSON-able dict; values JSON cannot hold become their repr (with a warning)."""
    out = {}
    for k, v in attrs.items():
        try:
            out[str(k)] = _to_json(v)
        except TypeError:
            warnings.warn(f"{where} attribute {k!r} ({type(v).__name__}) cannot be stored exactly; "
                          "writing its repr", stacklevel=3)
            out[str(k)] = repr(v)
    return out


def _is_nc_scalar(v):
    return isinstance(v, (str, int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _nc_attrs(attrs, where):
    """Attributes netCDF accepts (see [A7])."""
    out, coded = {}, []
    for k, v in attrs.items():
        if k == _JSON_ATTRS:
            continue
        if _is_nc_scalar(v):
            out[k] = v
            continue
        try:
            out[k] = json.dumps(_to_json(v))
            coded.append(k)
        except (TypeError, ValueError):
            warnings.warn(f"{where} attribute {k!r} ({type(v).__name__}) cannot be stored exactly in netCDF; "
                          "writing its repr", stacklevel=3)
            out[k] = repr(v)
    if coded:
        out[_JSON_ATTRS] = json.dumps(coded)
    return out


def _restore_attrs(attrs):
    coded = json.loads(attrs[_JSON_ATTRS]) if _JSON_ATTRS in attrs else []
    out = {}
    for k, v in attrs.items():
        if k == _JSON_ATTRS:
            continue
        out[k] = _from_json(json.loads(v)) if k in coded else _py(v)
    return out


def netcdf_safe(ds: xr.Dataset) -> xr.Dataset:
    """A shallow copy whose attributes netCDF accepts (None, bool, dict, list ... stored as JSON strings)."""
    out = ds.copy(deep=False)
    out.attrs = _nc_attrs(ds.attrs, "dataset")
    for name in out.variables:
        out[name].attrs = _nc_attrs(ds[name].attrs, f"variable {name!r}")
    return out


def netcdf_restored(ds: xr.Dataset) -> xr.Dataset:
    """Undo :func:`netcdf_safe` on a loaded dataset (in place): JSON attributes decoded, text variables as str."""
    ds.attrs = _restore_attrs(ds.attrs)
    for name in list(ds.variables):
        ds[name].attrs = _restore_attrs(ds[name].attrs)
        if ds[name].dtype == object and all(isinstance(v, str) for v in ds[name].values.ravel()):
            ds[name] = ds[name].copy(data=ds[name].values.astype(str))
    return ds


# ----------------------------------------------------------------------------- from_table
def _resolve_columns(df, columns):
    """Map each of our names to the user's column (only those present)."""
    if df.columns.duplicated().any():
        dups = sorted(map(str, set(df.columns[df.columns.duplicated()])))
        raise ValueError(f"table has duplicate column names {dups}")
    columns = dict(columns or {})
    unknown = [k for k in columns if k not in COLUMNS]
    if unknown:
        raise ValueError(f"columns: unknown key(s) {unknown}; keys are our names {list(COLUMNS)} "
                         "mapped to your column names")
    missing = {k: v for k, v in columns.items() if v not in df.columns}
    if missing:
        k, v = next(iter(missing.items()))
        raise ValueError(f"column {v!r} (mapped to {k!r} by columns=) is not in the table; "
                         f"table columns: {list(df.columns)}")
    targets = list(columns.values())
    dup = {v for v in targets if targets.count(v) > 1}
    if dup:
        raise ValueError(f"columns: column(s) {sorted(map(str, dup))} mapped to more than one of our names")
    out = {}
    for ours in COLUMNS:
        if ours in columns:
            out[ours] = columns[ours]
        elif ours in df.columns and ours not in targets:
            out[ours] = ours
    for ours in _REQUIRED:
        if ours not in out:
            raise ValueError(f"column {ours!r} is required but missing; table columns: {list(df.columns)} "
                             f"(map yours with columns={{{ours!r}: 'your_name'}}; CLI: --columns {ours}=YOUR_NAME)"
                             + _format_hint(df.columns))
    return out


def _format_hint(names) -> str:
    """A sentence naming the format presets whose columns the table has ("" if none)."""
    from .formats import match_formats

    found = match_formats(names)
    if not found:
        return ""
    first = found[0]
    also = f" (also matching: {', '.join(found[1:])})" if len(found) > 1 else ""
    return (f". These columns match the format preset {first!r}{also}: read the file with "
            f"read_trials(path, format={first!r}) (CLI: --format {first})")


def _check_inferred_codes(chosen, column, one_based):
    """With ``n_actions`` inferred from the data: every code from 0 to the largest must be chosen."""
    codes = np.unique(chosen.astype(np.int64))
    if codes.size == 0:
        return
    off = int(one_based)
    never = sorted(set(range(int(codes.max()) + 1)) - set(codes.tolist()))
    if not never:
        return
    shown = [k + off for k in never]
    have = [int(k) + off for k in codes]
    if never == list(range(int(codes.min()))) and not one_based:
        raise ValueError(f"{_colname(column, 'choice')}: the choice codes are {have[:10]}, so code 0 is never "
                         "chosen: codes that start at 1 (hBayesDM files)? Read with one_based=True (CLI: "
                         "--one-based); if action 0 exists but was never chosen, give the number of actions with "
                         "n_actions= (CLI: --n-actions)")
    raise ValueError(f"{_colname(column, 'choice')}: action code(s) {shown[:10]} are never chosen (codes chosen: "
                     f"{have[:10]}{' ...' if len(have) > 10 else ''}; a stray code?), so the number of actions "
                     "cannot be inferred from the data; fix the codes, or give the number of actions with "
                     "n_actions= (CLI: --n-actions)" + ("" if one_based else " or read 1-based codes with "
                                                         "one_based=True (CLI: --one-based)"))


def _env_from_meta(meta):
    kv = np.array([[np.nan if v is None else v for v in row] for row in meta["known_value"]], float)
    return EnvSpec(int(meta["n_states"]), int(meta["n_actions"]), int(meta["n_items"]),
                   np.array(meta["item"], np.int64), np.array(meta["available"], bool), kv)


def _one_based_columns(one_based) -> frozenset:
    """Which of our code columns (``choice``, ``state``, ``next_state``) hold 1-based codes."""
    if one_based is None or isinstance(one_based, (bool, np.bool_)):
        return frozenset(ONE_BASED_COLUMNS) if one_based else frozenset()
    names = [one_based] if isinstance(one_based, str) else list(one_based)
    bad = [n for n in names if n not in ONE_BASED_COLUMNS]
    if bad:
        raise ValueError(f"one_based: {bad} are not code columns; give True (all of {list(ONE_BASED_COLUMNS)}) or "
                         f"a subset of {list(ONE_BASED_COLUMNS)} (our names), e.g. one_based=['state'] when the "
                         "states are 1-based and the choices 0/1")
    return frozenset(names)


def _structure(meta, task, env, n_actions, n_states):
    """Task structure and attributes from ``task``/``env``, the table's metadata, or explicit sizes.

    Returns ``(env or None, n_actions, n_states, attrs, var_attrs, size_src)``; ``size_src`` names where the sizes
    came from (for messages).
    """
    attrs, var_attrs, size_src = {}, {}, ""
    if meta is not None:
        attrs = {k: v for k, v in _from_json(meta.get("attrs", {})).items() if k not in _CORE_ATTRS}
        var_attrs = _from_json(meta.get("variable_attrs", {}))
    if task is not None:
        if env is not None:
            raise ValueError("give either task= or env=, not both")
        from .tasks.base import make_task

        t = make_task(task)
        env = t.env
        attrs.update(task=t.name, task_options=repr(t))
        size_src = f" (task {t.name!r})"
    elif env is None and meta is not None and n_actions is None and n_states is None and "item" in meta:
        env = _env_from_meta(meta)
        size_src = " (from the table's attrs['neurorl'] metadata; pass env= or n_actions=/n_states= to override)"
    if env is not None:
        for name, given, have in (("n_actions", n_actions, env.n_actions), ("n_states", n_states, env.n_states)):
            if given is not None and int(given) != have:
                raise ValueError(f"{name}={given} contradicts the task structure ({name} = {have})")
        n_actions, n_states = env.n_actions, env.n_states
    return env, n_actions, n_states, attrs, var_attrs, size_src


def subject_index(df, column):
    """Subjects of a table in first-appearance order.

    Returns ``(codes, subjects, pos)``: each row's subject number, the subject labels, and each row's position
    within its subject (0..n-1). Missing labels and labels that mix text and numbers raise, naming the row.
    """
    subj = df[column]
    if subj.isna().any():
        i = int(np.flatnonzero(subj.isna().to_numpy())[0])
        raise ValueError(f"{_colname(column, 'subject')}: missing subject label (row {i})")
    codes, uniques = pd.factorize(subj, sort=False)
    subjects = _subject_labels(uniques, column)
    pos = pd.Series(codes).groupby(codes).cumcount().to_numpy()
    return codes, subjects, pos


def _trial_labels(df, column, codes, pos, subjects):
    """Trial labels (``column`` or the position within the subject), checked: integer, >= 0, unique, sorted."""
    if column is None:
        return pos.astype(np.int64)
    rows = RowLocator(subjects, codes, None)
    tr = numeric_column(df[column], column, "trial", rows)
    if np.isnan(tr).any():
        rows.fail(column, "trial", np.isnan(tr), lambda i: "missing trial label")
    integer_column(tr, column, "trial", rows)
    if (tr < 0).any():
        rows.fail(column, "trial", tr < 0, lambda i: f"negative trial label {_py(tr[i]):g} (labels must be >= 0)")
    trial_labels = tr.astype(np.int64)
    rows = RowLocator(subjects, codes, trial_labels)
    dup = pd.DataFrame({"s": codes, "t": trial_labels}).duplicated().to_numpy()
    if dup.any():
        def _dup(i):
            first = int(np.flatnonzero((codes == codes[i]) & (trial_labels == trial_labels[i]))[0])
            return (f"duplicate (subject, trial): the subject already has a trial labelled {trial_labels[i]} "
                    f"(row {first})")
        rows.fail(column, "trial", dup, _dup)
    order = np.lexsort((pos, codes))  # rows grouped by subject, in row order
    prev_same = codes[order][1:] == codes[order][:-1]
    decreasing = np.zeros(len(df), bool)
    decreasing[order[1:]] = prev_same & (trial_labels[order][1:] < trial_labels[order][:-1])
    if decreasing.any():
        def _msg(i):
            k = int(np.flatnonzero(order == i)[0])
            return (f"trials are not sorted within the subject: trial {trial_labels[i]} comes after trial "
                    f"{trial_labels[order[k - 1]]} (row {int(order[k - 1])}); sort the table by subject and trial")
        rows.fail(column, "trial", decreasing, _msg)
    return trial_labels


def _states(df, column, rows, off, n_states, size_src):
    """State codes (0-based; ``off`` = 1 for 1-based codes), checked against ``n_states``; and ``n_states``."""
    if column is None:
        state = np.zeros(len(df), np.int64)
    else:
        state = numeric_column(df[column], column, "state", rows)
        if np.isnan(state).any():
            rows.fail(column, "state", np.isnan(state), lambda i: "missing state")
        integer_column(state, column, "state", rows)
        state = state - off
        if (state < 0).any():
            rows.fail(column, "state", state < 0, lambda i: f"state {state[i] + off:g} is out of range"
                      + (" (one_based: codes start at 1)" if off else " (states start at 0)"))
        if n_states is not None and (state >= n_states).any():
            rows.fail(column, "state", state >= n_states,
                      lambda i: f"state {state[i] + off:g} is out of range for n_states = {n_states}" + size_src)
        state = state.astype(np.int64)
    n_states = int(n_states) if n_states is not None else max(1, int(state.max()) + 1)
    return state, n_states


def _choices(df, column, rows, off, n_actions, size_src):
    """Choice codes (0-based, -1 where missing), whether each was made, and ``n_actions`` (checked or inferred)."""
    choice = numeric_column(df[column], column, "choice", rows)
    present = ~np.isnan(choice)
    integer_column(choice, column, "choice", rows)
    choice = choice - off
    neg = present & (choice < 0)
    if neg.any():
        rows.fail(column, "choice", neg, lambda i: f"choice {choice[i] + off:g} is out of range (codes start "
                  f"at {int(off)}{' with one_based' if off else ''}; leave the cell empty for a missed trial)")
    if n_actions is not None and (present & (choice >= n_actions)).any():
        hint = " (one_based: codes start at 1)" if off else " (1-based codes? use one_based=True)"
        rows.fail(column, "choice", present & (choice >= n_actions),
                  lambda i: f"choice {choice[i] + off:g} is out of range for n_actions = {n_actions}{size_src}"
                  + hint)
    if n_actions is None:
        _check_inferred_codes(choice[present], column, bool(off))
    n_actions = int(n_actions) if n_actions is not None else max(2, int(np.nanmax(choice, initial=-1)) + 1)
    return np.where(present, choice, -1).astype(np.int64), present, n_actions


def _valid(df, cols, rows, present):
    """``valid``: the table's column (a valid trial must have a choice) or "choice present"."""
    if "valid" not in cols:
        return present.copy()
    vcol = cols["valid"]
    valid = _boolean(df[vcol], vcol, "valid", rows)
    bad = valid & ~present
    if bad.any():
        rows.fail(cols["choice"], "choice", bad, lambda i: f"missing choice on a trial that column {vcol!r} marks "
                  "valid")
    return valid


def _rewards(df, column, rows, valid):
    reward = numeric_column(df[column], column, "reward", rows)
    bad = valid & ~np.isfinite(reward)
    if bad.any():
        rows.fail(column, "reward", bad, lambda i: ("missing (NaN)" if np.isnan(reward[i]) else "infinite")
                  + " reward on a valid trial")
    return reward


def _reaction_times(df, column, rows, valid, rt_unit):
    """RTs in seconds (NaN where absent); ``rt_unit`` "ms" divides by 1000; None checks they look like seconds."""
    if rt_unit not in (None, "s", "ms"):
        raise ValueError(f"rt_unit must be 's' or 'ms', got {rt_unit!r}")
    if column is None:
        return np.full(len(df), np.nan)
    rt = numeric_column(df[column], column, "rt", rows)
    bad = ~np.isnan(rt) & ((rt < 0) | np.isinf(rt))
    if bad.any():
        rows.fail(column, "rt", bad, lambda i: f"{'negative' if rt[i] < 0 else 'infinite'} reaction time "
                  f"{rt[i]:g} ({'milliseconds' if rt_unit == 'ms' else 'seconds'})")
    if rt_unit == "ms":
        rt = rt / 1000.0
    elif rt_unit is None:
        check_rt_seconds(rt, valid, where=_colname(column, "rt"))
    return rt


def _next_states(df, column, rows, off, n_states):
    """Next-state codes (0-based, -1 unknown/empty)."""
    if column is None:
        return np.full(len(df), -1, np.int64)
    nxt = numeric_column(df[column], column, "next_state", rows)
    integer_column(nxt, column, "next_state", rows)
    nxt = nxt - off
    nxt = np.where(np.isnan(nxt), -1, nxt)
    bad = (nxt < -1) | (nxt >= n_states)
    if bad.any():
        rows.fail(column, "next_state", bad, lambda i: f"next state {nxt[i] + off:g} is out of range "
                  f"[{int(off) - 1}, {n_states + int(off)}) (-1{' or 0' if off else ''} or empty = unknown)")
    return nxt.astype(np.int64)


def _covariate_columns(df, cols):
    """Every column that is not one of ours, checked (text names, no clash), with its grids of element columns."""
    used = set(cols.values())
    extra = [col for col in df.columns if col not in used]
    for col in extra:
        if not isinstance(col, str):
            raise ValueError(f"column {col!r}: covariate names must be text; rename the column")
        if col in _RESERVED:
            raise ValueError(f"column {col!r} clashes with a neurorl variable name"
                             + (f" (the {col!r} role is taken by column {cols[col]!r})" if col in cols else "")
                             + "; rename it or map it with columns=")
    grids = _grid_columns(extra)
    for base in grids:
        if base in _RESERVED:
            raise ValueError(f"columns {grids[base][2][:2]}...: covariate name {base!r} clashes with a neurorl "
                             "variable name; rename them")
    return extra, grids


def _assemble(df, codes, pos, subjects, core, *, extra, grids, n_actions, n_states, env, attrs, var_attrs):
    """The trials dataset from per-row arrays (``core``: state, choice, reward, rt, valid, trial_index,
    next_state, done) and the covariate columns, padded to ``(subject, trial)``."""
    n_sub, n_trials = len(subjects), int(pos.max()) + 1
    in_grid = {col for g in grids.values() for col in g[2]}
    flat = {col: _covariate(df[col], col) for col in extra}

    def _pad(values, fill=None):
        values = np.asarray(values)
        fill = _fill_value(values.dtype) if fill is None else fill
        out = np.full((n_sub, n_trials) + values.shape[1:], fill, dtype=values.dtype)
        out[codes, pos] = values
        return out

    ds = make_trials(
        _pad(core["state"], 0), _pad(core["choice"], -1), _pad(core["reward"], np.nan),
        rt=_pad(core["rt"], np.nan), valid=_pad(core["valid"], False), trial_index=_pad(core["trial_index"], -1),
        next_state=_pad(core["next_state"], -1), done=_pad(core["done"], True), subjects=subjects,
        n_actions=n_actions, n_states=n_states, env=env,
        covariates={col: _pad(flat[col]) for col in extra if col not in in_grid},
        attrs=attrs,
    )
    for base, (dims, labels, gcols) in grids.items():
        for d in dims:
            if d in (SUBJECT, TRIAL):
                raise ValueError(f"columns {gcols[:2]}...: dim {d!r} of covariate {base!r} cannot be an element dim")
        values = np.stack([flat[col] for col in gcols], axis=-1)
        shape = tuple(len(lab) for lab in labels)
        arr = _pad(values.reshape((len(df),) + shape))
        coords = {}
        for d, lab in zip(dims, labels):
            if d in ds.coords:
                if list(ds[d].values) != lab:
                    raise ValueError(f"columns {gcols[:2]}...: covariate {base!r} labels {d!r} as {lab}, but the "
                                     f"dataset's {d!r} is {list(ds[d].values)}")
            elif lab != list(range(len(lab))):
                coords[d] = np.array(lab, dtype=str) if any(isinstance(x, str) for x in lab) else np.array(lab)
        ds[base] = xr.Variable((SUBJECT, TRIAL) + dims, arr)
        if coords:
            ds = ds.assign_coords(coords)
    for name, a in var_attrs.items():
        if name in ds.variables:
            ds[name].attrs = dict(a)
    return ds


def from_table(
    df: pd.DataFrame,
    *,
    columns: dict | None = None,
    n_actions: int | None = None,
    n_states: int | None = None,
    env: EnvSpec | None = None,
    one_based=False,
    task=None,
    rt_unit: str | None = None,
) -> xr.Dataset:
    """Build a trials dataset from a tidy table (one row per trial).

    Parameters
    ----------
    df : pandas.DataFrame
        One row per trial. Rows of a subject are in trial order; subjects may
        be interleaved.
    columns : dict, optional
        Our name -> your column name, for any of ``subject, trial, state,
        choice, reward, rt, valid, next_state, done`` (e.g. ``{"subject":
        "subjID", "choice": "keyPressed", "reward": "outcome"}``). Our names
        not mapped are looked up as columns of that name. Required: subject,
        choice, reward. ``trial`` defaults to the row order within the
        subject (0..n-1), ``state`` to 0, ``rt`` to NaN, ``valid`` to "choice
        present", ``next_state`` to -1 (unknown), ``done`` to True.
    n_actions, n_states : int, optional
        Default: from ``env``/``task``, the table's metadata, or inferred
        (``max(2, max choice + 1)``, ``max state + 1``).
    env : EnvSpec, optional
        Task structure (items, availability, known values).
    one_based : bool or str or list of str, default False
        Which code columns start at 1 (hBayesDM files): ``True`` means all of
        ``choice``, ``state`` and ``next_state``; a name or list of our names
        (e.g. ``["state"]`` for hBayesDM's go/no-go file, whose cues are 1-4
        and whose ``keyPressed`` is 0/1) converts only those. Trial labels are
        never changed. The converted columns are recorded in the attribute
        ``one_based`` (reports show codes as the user wrote them).
    task : str or Task, optional
        A registered task (or instance) whose ``env`` to use; its name and
        options are recorded in the attributes. Not together with ``env``.
    rt_unit : {"s", "ms"}, optional
        The unit of the ``rt`` column; ``"ms"`` divides by 1000. Default:
        seconds, and a median RT above 10 s stops the read (RTs in
        milliseconds?); an explicit ``"s"`` keeps the values as they are.

    Notes
    -----
    Data checks (docs/getting-started.md, "What the reader checks"): when
    ``n_actions`` comes from the data (no ``n_actions``, ``env``, ``task``
    or metadata), every action code from 0 to the largest must be chosen at
    least once -- codes that start at 1 (hBayesDM files) or a code that is
    never chosen stop the read, offering ``one_based=True`` and
    ``n_actions=``. Reaction times must be plausible in seconds (above).
    A table whose columns match a format preset (:mod:`neurorl.formats`) but
    not our names gets an error that names the preset.

    The steps (column resolution, subjects, trial labels, states, choices,
    validity, rewards, RTs, next states, covariates, assembly) are separate
    functions of this module that the presets of :mod:`neurorl.formats`
    reuse.

    Returns
    -------
    xarray.Dataset
        A validated trials dataset (:mod:`neurorl.schema`). Every column that
        is not one of ours is kept as a covariate.

    Raises
    ------
    ValueError
        Naming the column and the first offending subject and trial (your
        labels) and row: unknown ``columns`` keys, missing columns, choices
        out of range or non-integer, NaN reward on a valid trial, missing
        choice on a trial marked valid, duplicate (subject, trial), unsorted
        trials within a subject, negative RT, states out of range, choices
        not available in their state, covariate names that clash with ours.
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"from_table expects a pandas.DataFrame, got {type(df).__name__}")
    cols = _resolve_columns(df, columns)
    if len(df) == 0:
        raise ValueError("the table has no rows")
    based = _one_based_columns(one_based)
    meta = df.attrs.get(_META) if isinstance(df.attrs.get(_META), dict) else None
    env, n_actions, n_states, attrs, var_attrs, size_src = _structure(meta, task, env, n_actions, n_states)

    codes, subjects, pos = subject_index(df, cols["subject"])
    trial_labels = _trial_labels(df, cols.get("trial"), codes, pos, subjects)
    rows = RowLocator(subjects, codes, trial_labels)
    state, n_states = _states(df, cols.get("state"), rows, int("state" in based), n_states, size_src)
    choice, present, n_actions = _choices(df, cols["choice"], rows, int("choice" in based), n_actions, size_src)
    valid = _valid(df, cols, rows, present)
    reward = _rewards(df, cols["reward"], rows, valid)
    rt = _reaction_times(df, cols.get("rt"), rows, valid, rt_unit)
    nxt = _next_states(df, cols.get("next_state"), rows, int("next_state" in based), n_states)
    done = _boolean(df[cols["done"]], cols["done"], "done", rows) if "done" in cols else np.ones(len(df), bool)

    # --- availability of the chosen actions
    if env is None:
        env = EnvSpec.default(n_states, n_actions)
    bad = valid & ~env.available[np.clip(state, 0, n_states - 1), np.clip(choice, 0, n_actions - 1)]
    if bad.any():
        ob_c, ob_s = int("choice" in based), int("state" in based)
        rows.fail(cols["choice"], "choice", bad, lambda i: f"action {choice[i] + ob_c} is not available in state "
                  f"{state[i] + ob_s}")
    if based:
        attrs["one_based"] = sorted(based)

    extra, grids = _covariate_columns(df, cols)
    core = {"state": state, "choice": choice, "reward": reward, "rt": rt, "valid": valid,
            "trial_index": trial_labels, "next_state": nxt, "done": done}
    return _assemble(df, codes, pos, subjects, core, extra=extra, grids=grids, n_actions=n_actions,
                     n_states=n_states, env=env, attrs=attrs, var_attrs=var_attrs)

# ----------------------------------------------------------------------------- to_table
def _meta(trials: xr.Dataset) -> dict:
    env = env_spec(trials)
    kv = [[None if not np.isfinite(v) else float(v) for v in row] for row in env.known_value]
    var_attrs = {k: _json_attrs(trials[k].attrs, f"variable {k!r}") for k in trials.variables if trials[k].attrs}
    return {
        "version": _META_VERSION,
        "attrs": _json_attrs(trials.attrs, "dataset"),
        "n_states": env.n_states, "n_actions": env.n_actions, "n_items": env.n_items,
        "item": env.item.tolist(), "available": env.available.tolist(), "known_value": kv,
        "variable_attrs": var_attrs,
    }


def _element_label(v):
    v = _py(v)
    text = str(v)
    if any(ch in text for ch in "[],="):
        raise ValueError(f"coordinate label {text!r} cannot be written in a column name (contains one of '[],=')")
    return text


def to_table(trials: xr.Dataset) -> pd.DataFrame:
    """A tidy table of a trials dataset: one row per real trial (``trial_index >= 0``).

    Parameters
    ----------
    trials : xarray.Dataset
        A trials dataset (validated first).

    Returns
    -------
    pandas.DataFrame
        Columns ``subject, trial`` (= ``trial_index``), ``state, choice``
        (float with NaN where no choice was made, -1 in the dataset; int64
        when every trial has one), ``reward, rt, valid, next_state, done``,
        then the covariates (per-element columns ``name[dim=label]`` for
        covariates with extra dims). Rows are grouped by subject (coordinate
        order), trials in position order. ``DataFrame.attrs["neurorl"]``
        holds the state/action tables and the attributes, so that
        :func:`from_table` rebuilds the same dataset.

    Raises
    ------
    ValueError
        If the dataset holds variables or non-index coordinates that are not
        per trial (they cannot be represented in a tidy table).
    """
    validate_trials(trials)
    per_trial, skipped = [], []
    for name, var in trials.data_vars.items():
        if name in CORE_VARIABLES or name in OPTIONAL_VARIABLES or name in TABLE_VARIABLES:
            continue
        (per_trial if SUBJECT in var.dims and TRIAL in var.dims else skipped).append(name)
    skipped += [str(n) for n in trials.coords if n not in trials.dims]
    if skipped:
        raise ValueError(f"to_table: variable(s)/coordinate(s) {skipped} are not per trial (dims subject, trial) "
                         "and cannot be written to a table; drop them or use netCDF (write_trials('x.nc'))")
    if "trial_index" in trials:
        tidx = trials["trial_index"].transpose(SUBJECT, TRIAL).values
        present = tidx >= 0
    else:
        tidx = np.broadcast_to(np.arange(trials.sizes[TRIAL]), (trials.sizes[SUBJECT], trials.sizes[TRIAL]))
        present = np.ones(tidx.shape, bool)
    si, ti = np.nonzero(present)

    def col(name, default=None, dtype=None):
        if name not in trials:
            return np.full(si.shape, default, dtype=dtype)
        v = trials[name].transpose(SUBJECT, TRIAL).values[si, ti]
        return v.astype(dtype) if dtype is not None else v

    choice = col("choice").astype(np.int64)
    data = {
        "subject": trials[SUBJECT].values[si],
        "trial": tidx[si, ti].astype(np.int64),
        "state": col("state", dtype=np.int64),
        "choice": np.where(choice >= 0, choice, np.nan) if (choice < 0).any() else choice,
        "reward": col("reward", dtype=float),
        "rt": col("rt", dtype=float),
        "valid": col("valid", dtype=bool),
        "next_state": col("next_state", -1, np.int64),
        "done": col("done", True, bool),
    }
    for name in per_trial:
        var = trials[name]
        other = [d for d in var.dims if d not in (SUBJECT, TRIAL)]
        vals = var.transpose(SUBJECT, TRIAL, *other).values[si, ti]
        if not other:
            data[name] = vals
            continue
        labels = [[_element_label(v) for v in (trials[d].values if d in trials.coords else range(trials.sizes[d]))]
                  for d in other]
        flat = vals.reshape(len(si), -1)
        for k, lab in enumerate(_product(labels)):
            key = f"{name}[{','.join(f'{d}={lv}' for d, lv in zip(other, lab))}]"
            if key in data:
                raise ValueError(f"to_table: column name {key!r} would be written twice")
            data[key] = flat[:, k]
    df = pd.DataFrame(data)
    df.attrs[_META] = _meta(trials)
    return df


# ----------------------------------------------------------------------------- files
_TAB_SUFFIXES = (".tsv", ".txt")
# pandas < 3 parses floats with a fast converter that is not round-trip exact; pandas 3 deprecates the option
# (its default is exact)
_FLOAT_OPTS = {"float_precision": "round_trip"} if int(pd.__version__.split(".")[0]) < 3 else {}
_CSV_SUFFIXES = (".csv",) + _TAB_SUFFIXES
_NC_SUFFIXES = (".nc", ".nc4", ".netcdf")


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _kind(series) -> str:
    dt = series.dtype
    if pd.api.types.is_bool_dtype(dt):
        return "bool"
    if pd.api.types.is_integer_dtype(dt):
        return "int64"
    if pd.api.types.is_float_dtype(dt):
        return "float64"
    if pd.api.types.is_datetime64_dtype(dt):
        return "datetime64"
    if pd.api.types.is_timedelta64_dtype(dt):
        return "timedelta64"
    return "str"


def _suffix(path: Path, what: str) -> str:
    s = path.suffix.lower()
    if s not in _CSV_SUFFIXES + _NC_SUFFIXES:
        raise ValueError(f"{what}: unsupported file suffix {path.suffix!r} of {str(path)!r}; use .csv (.tsv/.txt "
                         "tab-separated) or .nc")
    return s


def write_trials(trials: xr.Dataset, path) -> Path:
    """Write a trials dataset to ``.csv`` (``.tsv``/``.txt``) or ``.nc``.

    Parameters
    ----------
    trials : xarray.Dataset
        A trials dataset (validated first).
    path : str or path-like
        ``.csv``: the tidy table of :func:`to_table` plus a JSON sidecar
        ``<path>.json`` with the column dtypes, the state/action tables and
        the attributes. ``.tsv``/``.txt``: the same, tab-separated. ``.nc``:
        netCDF4; attributes netCDF rejects (None, bool, dict, lists ...) are
        stored as JSON strings and restored by :func:`read_trials`.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    suffix = _suffix(path, "write_trials")
    validate_trials(trials)
    if suffix in _NC_SUFFIXES:
        with atomic_output(path) as tmp:
            netcdf_safe(trials).to_netcdf(tmp, engine="netcdf4")
        return path
    df = to_table(trials)
    meta = df.attrs[_META]
    side = {"neurorl_trials": _META_VERSION, "columns": {str(c): _kind(df[c]) for c in df.columns}, "meta": meta}
    # the sidecar first: a table is never left beside a sidecar of other data
    with atomic_output(_sidecar(path)) as tmp:
        tmp.write_text(json.dumps(side, indent=1))
    with atomic_output(path) as tmp:
        df.to_csv(tmp, sep="\t" if suffix in _TAB_SUFFIXES else ",", index=False, na_rep="")
    return path


def _read_table(path: Path, sep: str, side: dict | None) -> pd.DataFrame:
    if side is None:
        return pd.read_csv(path, sep=sep, **_FLOAT_OPTS)
    kinds = side["columns"]
    df = pd.read_csv(
        path, sep=sep, keep_default_na=False, **_FLOAT_OPTS,
        na_values={c: [""] for c, k in kinds.items() if k != "str"},
        dtype={c: str for c, k in kinds.items() if k in ("str", "datetime64", "timedelta64")},
    )
    if list(df.columns) != list(kinds):
        raise ValueError(f"{str(path)!r}: columns {list(df.columns)} do not match its sidecar {list(kinds)}")
    for c, k in kinds.items():
        if k == "datetime64":
            df[c] = pd.to_datetime(df[c].replace("", None), format="ISO8601")
        elif k == "timedelta64":
            df[c] = pd.to_timedelta(df[c].replace("", None))
        elif k == "bool" and df[c].dtype != bool:
            raise ValueError(f"{str(path)!r}: column {c!r} should hold True/False values")
    return df


def read_trials(path, format: str | None = None, **from_table_options) -> xr.Dataset:
    """Read (and validate) a trials dataset written by :func:`write_trials`, or any tidy table.

    Parameters
    ----------
    path : str or path-like
        ``.csv``/``.tsv``/``.txt`` (tab-separated for the latter two) or
        ``.nc``. A CSV with a sidecar ``<path>.json`` is read back exactly;
        one without is read as a plain table through :func:`from_table`.
    format : str, optional
        A format preset (:mod:`neurorl.formats`, e.g. ``"hbayesdm:gng"``,
        ``"hddm:rl"``, ``"two_step:wide"``) that maps the file's layout and
        codings; ``.txt`` files may then be whitespace-separated too.
    **from_table_options
        Passed to :func:`from_table` for CSV files (``columns``,
        ``one_based``, ``n_actions``, ``task`` ...), or to the preset's reader.

    Returns
    -------
    xarray.Dataset
        The validated trials dataset.
    """
    path = Path(path)
    if format is not None:
        from .formats import read_formatted

        if not path.exists():
            raise FileNotFoundError(f"read_trials: no file {str(path)!r}")
        return read_formatted(path, format, **from_table_options)
    suffix = _suffix(path, "read_trials")
    if not path.exists():
        raise FileNotFoundError(f"read_trials: no file {str(path)!r}")
    if suffix in _NC_SUFFIXES:
        if from_table_options:
            raise TypeError(f"read_trials: options {sorted(from_table_options)} apply to tables, not netCDF")
        with reading(path, "read_trials"):
            with xr.open_dataset(path, engine="netcdf4") as f:
                ds = netcdf_restored(f.load())
            return validate_trials(ds)
    side_path = _sidecar(path)
    with reading(side_path, "read_trials (sidecar)"):
        side = json.loads(side_path.read_text()) if side_path.exists() else None
        if side is not None and not isinstance(side, dict):
            raise ValueError("not a neurorl sidecar (a JSON object is expected)")
    if side is not None and "neurorl_trials" not in side:
        side = None
    with reading(path, "read_trials"):
        df = _read_table(path, "\t" if suffix in _TAB_SUFFIXES else ",", side)
        if side is not None:
            df.attrs[_META] = side["meta"]
        return validate_trials(from_table(df, **from_table_options))


def write_latents(latents: xr.Dataset, path) -> Path:
    """Write a latents dataset (from :func:`neurorl.simulate` or :func:`neurorl.replay`) to netCDF.

    Attributes netCDF rejects are stored as JSON (see :func:`write_trials`).
    """
    path = Path(path)
    if path.suffix.lower() not in _NC_SUFFIXES:
        raise ValueError(f"write_latents: use a .nc file, got {str(path)!r}")
    if not isinstance(latents, xr.Dataset):
        raise TypeError(f"latents must be an xarray.Dataset, got {type(latents).__name__}")
    with atomic_output(path) as tmp:
        netcdf_safe(latents).to_netcdf(tmp, engine="netcdf4")
    return path


def read_latents(path) -> xr.Dataset:
    """Read a latents dataset written by :func:`write_latents` (attributes restored)."""
    path = Path(path)
    if path.suffix.lower() not in _NC_SUFFIXES:
        raise ValueError(f"read_latents: use a .nc file, got {str(path)!r}")
    if not path.exists():
        raise FileNotFoundError(f"read_latents: no file {str(path)!r}")
    with reading(path, "read_latents"):
        with xr.open_dataset(path, engine="netcdf4") as f:
            ds = netcdf_restored(f.load())
    if SUBJECT not in ds.dims or TRIAL not in ds.dims:
        raise ValueError(f"read_latents: {str(path)!r} has dims {dict(ds.sizes)}; latents need 'subject' and 'trial'")
    return ds


def write_simulation(sim, path) -> Path:
    """Write a :class:`neurorl.Simulation` to one netCDF file with groups ``trials``, ``latents``, ``params``."""
    path = Path(path)
    if path.suffix.lower() not in _NC_SUFFIXES:
        raise ValueError(f"write_simulation: use a .nc file, got {str(path)!r}")
    validate_trials(sim.trials)
    with atomic_output(path) as tmp:
        mode = "w"
        for group in ("trials", "latents", "params"):
            netcdf_safe(getattr(sim, group)).to_netcdf(tmp, group=group, mode=mode, engine="netcdf4")
            mode = "a"
    return path


def read_simulation(path):
    """Read what :func:`write_simulation` wrote: ``Simulation(trials, latents, params)``."""
    from .simulate import Simulation

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"read_simulation: no file {str(path)!r}")
    parts = {}
    with reading(path, "read_simulation"):
        for group in ("trials", "latents", "params"):
            try:
                with xr.open_dataset(path, group=group, engine="netcdf4") as f:
                    parts[group] = netcdf_restored(f.load())
            except OSError as exc:
                if "group not found" in str(exc).lower():
                    raise ValueError(f"no group {group!r}: not a simulation file (write_simulation writes "
                                     "groups trials, latents, params) or an incomplete one") from None
                raise
        return Simulation(validate_trials(parts["trials"]), parts["latents"], parts["params"])
