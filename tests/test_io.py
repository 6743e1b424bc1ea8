"""Tests of neurorl.io: tidy tables <-> trials datasets, CSV and netCDF files.

Expected arrays are written out by hand from the input tables; round trips are
checked with ``xarray.Dataset.identical`` (values, dims, coords, attrs).
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import neurorl as nr
from neurorl.io import from_table, read_latents, read_trials, to_table, write_latents, write_trials
from neurorl.schema import EnvSpec, env_spec


# ----------------------------------------------------------------------------- data
def _hbayesdm_table():
    """A go/no-go style table in hBayesDM layout (1-based cue and key codes), two ragged subjects."""
    return pd.DataFrame({
        "subjID": [7, 7, 7, 3, 3],
        "cue": [1, 2, 1, 2, 2],
        "keyPressed": [1, 2, np.nan, 2, 1],
        "outcome": [1.0, -1.0, np.nan, 0.0, 1.0],
    })


def _ragged_table():
    """Three subjects (5, 2 and 4 trials), missed trials, trial labels with gaps, int subjects."""
    return pd.DataFrame({
        "subject": [1] * 5 + [2] * 2 + [3] * 4,
        "trial": [0, 1, 2, 3, 4, 5, 9, 0, 2, 4, 6],
        "choice": [0, 1, np.nan, 1, 0, np.nan, 1, 0, 0, 1, np.nan],
        "reward": [1.0, 0.0, np.nan, 1.0, 0.0, np.nan, 1.0, 0.5, 0.0, 1.0, np.nan],
        "rt": [0.41, 0.52, np.nan, 0.33, 0.47, np.nan, 0.61, 0.29, 0.38, 0.44, np.nan],
    })


def _string_subject_table():
    """Text subject labels (one that looks like a number) in interleaved rows."""
    return pd.DataFrame({
        "subject": ["007", "012", "007", "012", "007"],
        "choice": [1, 0, 0, 1, 1],
        "reward": [0.0, 1.0, 1.0, 0.0, 1.0],
    })


def _covariate_env():
    """Two states x three actions with shared items, one unavailable action and a known value."""
    return EnvSpec(
        2, 3, 4, np.array([[0, 1, 2], [1, 2, 3]]),
        np.array([[True, True, True], [True, True, False]]),
        np.array([[np.nan, np.nan, 0.25], [np.nan, np.nan, np.nan]]),
    )


def _covariate_table():
    """Every kind of covariate: text (with a missing value), bool, int, float with NaN, per-action values."""
    return pd.DataFrame({
        "subject": ["s1", "s1", "s1", "s2", "s2"],
        "trial": [0, 1, 2, 0, 1],
        "state": [0, 1, 0, 1, 1],
        "choice": [2, 0, np.nan, 1, 0],
        "reward": [0.25, 1.0, np.nan, 0.0, 1.0],
        "rt": [0.5, 0.6, np.nan, 0.7, 0.4],
        "block": ["A", "A", "B", "B", ""],
        "cued": [True, False, True, True, False],
        "n_prev": [0, 1, 2, 0, 1],
        "pupil": [1.5, np.nan, 2.25, 3.0, 0.125],
        "payoff[action=0]": [1.0, 2.0, 3.0, 4.0, 5.0],
        "payoff[action=1]": [0.5, 0.5, 0.5, 0.5, 0.5],
        "payoff[action=2]": [0.0, 0.0, 0.0, 9.0, 0.0],
    })


def _with_attrs(ds):
    ds = ds.copy()
    ds.attrs.update(source="lab X", note=None, flags={"pilot": True, "ids": [1, 2]}, cleaned=True,
                    weights=np.array([0.5, 1.5]), n_sessions=np.int64(3))
    ds["rt"].attrs["units"] = "s"
    return ds


def _dataset(name):
    if name == "simulated":
        return nr.simulate("q_learning", "mouse_bandit", n_subjects=3, n_trials=30, rng=0).trials
    if name == "ragged_missed":
        return from_table(_ragged_table())
    if name == "string_subjects":
        return from_table(_string_subject_table())
    if name == "covariates":
        return _with_attrs(from_table(_covariate_table(), env=_covariate_env()))
    raise KeyError(name)


DATASETS = ["simulated", "ragged_missed", "string_subjects", "covariates"]


# ----------------------------------------------------------------------------- from_table
def test_from_table_maps_columns_and_one_based_codes():
    ds = from_table(_hbayesdm_table(), columns={"subject": "subjID", "state": "cue", "choice": "keyPressed",
                                                "reward": "outcome"}, one_based=True)
    assert list(ds.subject.values) == [7, 3]  # first-appearance order
    np.testing.assert_array_equal(ds.state, [[0, 1, 0], [1, 1, 0]])
    np.testing.assert_array_equal(ds.choice, [[0, 1, -1], [1, 0, -1]])
    np.testing.assert_array_equal(ds.valid, [[True, True, False], [True, True, False]])
    np.testing.assert_array_equal(ds.trial_index, [[0, 1, 2], [0, 1, -1]])
    np.testing.assert_array_equal(ds.reward, [[1.0, -1.0, np.nan], [0.0, 1.0, np.nan]])
    assert np.isnan(ds.rt).all()
    assert (ds.attrs["n_actions"], ds.attrs["n_states"]) == (2, 2)
    assert set(ds.data_vars) == {"state", "choice", "reward", "rt", "valid", "trial_index", "next_state", "done",
                                 "item", "available", "known_value"}


def test_from_table_defaults_trial_and_state():
    ds = from_table(pd.DataFrame({"subject": ["a", "a", "b"], "choice": [1, 0, 2], "reward": [1, 0, 1]}))
    np.testing.assert_array_equal(ds.trial_index, [[0, 1], [0, -1]])
    np.testing.assert_array_equal(ds.state, [[0, 0], [0, 0]])
    assert ds.attrs["n_actions"] == 3 and ds.attrs["n_states"] == 1
    assert ds.subject.dtype.kind == "U" and list(ds.subject.values) == ["a", "b"]
    np.testing.assert_array_equal(ds.next_state, -1)
    np.testing.assert_array_equal(ds.done, True)


def test_from_table_ragged_padding():
    ds = from_table(_ragged_table())
    assert dict(ds.sizes)["trial"] == 5
    np.testing.assert_array_equal(ds.trial_index, [[0, 1, 2, 3, 4], [5, 9, -1, -1, -1], [0, 2, 4, 6, -1]])
    np.testing.assert_array_equal(ds.choice, [[0, 1, -1, 1, 0], [-1, 1, -1, -1, -1], [0, 0, 1, -1, -1]])
    np.testing.assert_array_equal(ds.valid, [[1, 1, 0, 1, 1], [0, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    np.testing.assert_array_equal(ds.rt[1], [np.nan, 0.61, np.nan, np.nan, np.nan])


def test_from_table_interleaved_subjects_keep_row_order():
    ds = from_table(_string_subject_table())
    assert list(ds.subject.values) == ["007", "012"]
    np.testing.assert_array_equal(ds.choice, [[1, 0, 1], [0, 1, -1]])
    np.testing.assert_array_equal(ds.reward, [[0.0, 1.0, 1.0], [1.0, 0.0, np.nan]])


def test_from_table_keeps_covariates_with_padding_values():
    ds = from_table(_covariate_table(), env=_covariate_env())
    assert ds.block.dtype.kind == "U" and ds.cued.dtype == bool and ds.n_prev.dtype == np.int64
    np.testing.assert_array_equal(ds.block, [["A", "A", "B"], ["B", "", ""]])
    np.testing.assert_array_equal(ds.cued, [[True, False, True], [True, False, False]])
    np.testing.assert_array_equal(ds.n_prev, [[0, 1, 2], [0, 1, -1]])
    np.testing.assert_array_equal(ds.pupil, [[1.5, np.nan, 2.25], [3.0, 0.125, np.nan]])
    assert ds.payoff.dims == ("subject", "trial", "action")
    np.testing.assert_array_equal(ds.payoff[1, 0], [4.0, 0.5, 9.0])
    assert np.isnan(ds.payoff[1, 2]).all()
    env = env_spec(ds)
    assert env.n_items == 4 and not env.available[1, 2] and env.known_value[0, 2] == 0.25


def test_from_table_string_missing_becomes_empty_and_categoricals_are_values():
    df = pd.DataFrame({"subject": [1, 1], "choice": [0, 1], "reward": [0, 1],
                       "cond": pd.Categorical(["hi", "lo"]), "note": ["x", None]})
    ds = from_table(df)
    assert list(ds.cond.values[0]) == ["hi", "lo"] and list(ds.note.values[0]) == ["x", ""]


def test_from_table_valid_column_keeps_choice_on_invalid_trial():
    df = pd.DataFrame({"subject": [1, 1, 1], "choice": [0, 1, np.nan], "reward": [1.0, np.nan, np.nan],
                       "valid": [True, False, False]})
    ds = from_table(df)
    np.testing.assert_array_equal(ds.choice, [[0, 1, -1]])
    np.testing.assert_array_equal(ds.valid, [[True, False, False]])


def test_from_table_task_sets_env_and_attrs():
    df = pd.DataFrame({"subject": [1, 1], "choice": [0, 1], "reward": [0.0, 1.0]})
    ds = from_table(df, task="mouse_bandit")
    assert ds.attrs["task"] == "mouse_bandit" and ds.attrs["task_options"].startswith("MouseBandit(")
    with pytest.raises(ValueError, match="either task= or env="):
        from_table(df, task="mouse_bandit", env=EnvSpec.default(1, 2))
    with pytest.raises(ValueError, match=r"n_actions=3 contradicts the task structure \(n_actions = 2\)"):
        from_table(df, env=EnvSpec.default(1, 2), n_actions=3)


# ----------------------------------------------------------------------------- from_table errors
def _table(**changes):
    """Subjects 'a' (trials 0, 1) and 'b' (trials 10, 11, 12)."""
    base = {"subject": ["a", "a", "b", "b", "b"], "trial": [0, 1, 10, 11, 12], "choice": [0, 1, 1, 0, 1],
            "reward": [1.0, 0.0, 1.0, 0.0, 1.0], "rt": [0.3, 0.4, 0.5, 0.6, 0.7]}
    base.update(changes)
    return pd.DataFrame(base)


def _raises(df, column, subject, trial, what, **kw):
    with pytest.raises(ValueError) as e:
        from_table(df, **kw)
    msg = str(e.value)
    assert msg.startswith(f"column {column!r}"), msg
    assert f"first at subject {subject!r}, trial {trial};" in msg, msg
    assert re.search(what, msg), msg
    return msg


def test_error_unknown_columns_key():
    with pytest.raises(ValueError, match=r"columns: unknown key\(s\) \['subj', 'cue'\]"):
        from_table(_table(), columns={"subj": "subject", "cue": "state"})


def test_error_mapped_column_missing():
    with pytest.raises(ValueError, match=r"column 'keyPressed' \(mapped to 'choice' by columns=\) is not in the table"):
        from_table(_table(), columns={"choice": "keyPressed"})


@pytest.mark.parametrize("name", ["subject", "choice", "reward"])
def test_error_required_column_missing(name):
    with pytest.raises(ValueError, match=rf"column '{name}' is required but missing"):
        from_table(_table().drop(columns=name))


def test_error_choice_out_of_range():
    _raises(_table(choice=[0, 1, 1, 2, 1]), "choice", "b", 11, r"choice 2 is out of range for n_actions = 2",
            n_actions=2)


def test_error_choice_out_of_range_for_task():
    _raises(_table(choice=[0, 1, 1, 0, 2]), "choice", "b", 12, r"out of range for n_actions = 2", task="mouse_bandit")


def test_error_negative_choice():
    _raises(_table(choice=[0, -1, 1, 0, 1]), "choice", "a", 1, r"choice -1 is out of range")


def test_error_non_integer_choice_names_user_column():
    df = _table(choice=[0, 1, 1, 0.5, 1]).rename(columns={"choice": "keyPressed"})
    msg = _raises(df, "keyPressed", "b", 11, r"non-integer value 0\.5", columns={"choice": "keyPressed"})
    assert msg.startswith("column 'keyPressed' (choice)")


def test_error_non_numeric_choice():
    _raises(_table(choice=[0, 1, "left", 0, 1]), "choice", "b", 10, r"non-numeric value 'left'")


def test_error_one_based_zero_code():
    _raises(_table(), "choice", "a", 0, r"choice 0 is out of range \(codes start at 1", one_based=True)


def test_error_nan_reward_on_valid_trial():
    _raises(_table(reward=[1.0, 0.0, 1.0, 0.0, np.nan]), "reward", "b", 12, r"missing \(NaN\) reward on a valid trial")


def test_error_missing_choice_on_trial_marked_valid():
    df = _table(choice=[0, 1, np.nan, 0, 1], valid=[True, True, True, True, False])
    _raises(df, "choice", "b", 10, r"missing choice on a trial that column 'valid' marks valid")


def test_error_duplicate_subject_trial():
    _raises(_table(trial=[0, 1, 10, 10, 12]), "trial", "b", 10, r"duplicate \(subject, trial\).*row 2")


def test_error_unsorted_trials():
    _raises(_table(trial=[1, 0, 10, 11, 12]), "trial", "a", 0, r"not sorted within the subject: trial 0 comes after "
            r"trial 1")


def test_error_negative_rt():
    _raises(_table(rt=[0.3, 0.4, 0.5, -0.6, 0.7]), "rt", "b", 11, r"negative reaction time -0\.6")


def test_error_state_out_of_range():
    _raises(_table(state=[0, 0, 0, 0, 2]), "state", "b", 12, r"state 2 is out of range for n_states = 2", n_states=2)


def test_error_choice_not_available():
    df = _table(state=[0, 1, 1, 0, 1], choice=[2, 0, 1, 0, 2])
    _raises(df, "choice", "b", 12, r"action 2 is not available in state 1", env=_covariate_env())


def test_error_non_boolean_valid():
    _raises(_table(valid=[True, "maybe", True, True, True]), "valid", "a", 1, r"'maybe' is not a boolean")


def test_error_trial_labels():
    with pytest.raises(ValueError, match=r"column 'trial': non-integer value 1\.5 \(first at subject 'b'; row 3\)"):
        from_table(_table(trial=[0, 1, 10, 1.5, 12]))
    with pytest.raises(ValueError, match=r"column 'trial': negative trial label -1"):
        from_table(_table(trial=[-1, 1, 10, 11, 12]))


def test_error_missing_subject_label():
    with pytest.raises(ValueError, match=r"column 'subject': missing subject label \(row 1\)"):
        from_table(_table(subject=["a", None, "b", "b", "b"]))


def test_error_covariate_clashes_with_core_name():
    df = _table(keyPressed=[0, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"column 'choice' clashes with a neurorl variable name \(the 'choice' role "
                                         r"is taken by column 'keyPressed'\)"):
        from_table(df, columns={"choice": "keyPressed"})


def test_error_choice_outside_metadata_sizes():
    df = to_table(_dataset("simulated"))
    df.loc[33, "choice"] = 2  # subject 1, trial 3
    msg = _raises(df, "choice", 1, 3, r"choice 2 is out of range for n_actions = 2 \(from the table's "
                  r"attrs\['neurorl'\] metadata")
    assert "override" in msg
    assert from_table(df, n_actions=3).attrs["n_actions"] == 3  # explicit sizes win over the metadata


def test_error_column_mapped_twice():
    with pytest.raises(ValueError, match=r"columns: column\(s\) \['choice'\] mapped to more than one"):
        from_table(_table(), columns={"choice": "choice", "state": "choice"})


def test_error_mixed_covariate_types():
    with pytest.raises(ValueError, match=r"column 'cue': mixed value types \['int', 'str'\]"):
        from_table(_table(cue=[1, "x", 2, 3, 4]))


# ----------------------------------------------------------------------------- to_table
def test_to_table_rows_and_dtypes():
    df = to_table(from_table(_ragged_table()))
    assert list(df.columns) == ["subject", "trial", "state", "choice", "reward", "rt", "valid", "next_state", "done"]
    assert len(df) == 11  # padding rows are not written
    assert df["choice"].dtype == np.float64 and df["subject"].dtype == np.int64 and df["valid"].dtype == bool
    np.testing.assert_array_equal(df["choice"], [0, 1, np.nan, 1, 0, np.nan, 1, 0, 0, 1, np.nan])
    np.testing.assert_array_equal(df["trial"], [0, 1, 2, 3, 4, 5, 9, 0, 2, 4, 6])
    assert to_table(_dataset("simulated"))["choice"].dtype == np.int64  # no missed trial: integers


def test_to_table_grid_covariate_columns():
    df = to_table(from_table(_covariate_table(), env=_covariate_env()))
    assert [c for c in df.columns if c.startswith("payoff")] == ["payoff[action=0]", "payoff[action=1]",
                                                                  "payoff[action=2]"]


def test_to_table_rejects_non_trial_variables():
    ds = _dataset("ragged_missed")
    ds["age"] = ("subject", np.array([20.0, 30.0, 40.0]))
    with pytest.raises(ValueError, match=r"\['age'\] are not per trial"):
        to_table(ds)


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_table_dataset_identical(name):
    ds = _dataset(name)
    back = from_table(to_table(ds))
    xr.testing.assert_identical(back, ds)
    for v in ds.variables:
        assert back[v].dtype.kind == ds[v].dtype.kind, v


@pytest.mark.parametrize("make", [_ragged_table, _string_subject_table, _covariate_table])
def test_table_dataset_table_reproduces_table(make):
    df = make()
    kw = {"env": _covariate_env()} if make is _covariate_table else {}
    out = to_table(from_table(df, **kw))
    if make is _string_subject_table:  # rows come out grouped by subject (first-appearance order)
        df = df.iloc[[0, 2, 4, 1, 3]].reset_index(drop=True)
    expected = df.copy()
    pd.testing.assert_frame_equal(out[list(df.columns)], expected, check_dtype=False)
    # the documented dtypes
    assert out["choice"].dtype == (np.float64 if df["choice"].isna().any() else np.int64)
    assert out["reward"].dtype == np.float64


def test_table_roundtrip_restores_user_codes_after_one_based():
    out = to_table(from_table(_hbayesdm_table(), columns={"subject": "subjID", "state": "cue",
                                                            "choice": "keyPressed", "reward": "outcome"},
                              one_based=True))
    np.testing.assert_array_equal(out["choice"], [0, 1, np.nan, 1, 0])  # 0-based now
    np.testing.assert_array_equal(out["state"], [0, 1, 0, 1, 1])


# ----------------------------------------------------------------------------- files
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".nc"])
@pytest.mark.parametrize("name", DATASETS)
def test_file_roundtrip_identical(tmp_path, name, suffix):
    ds = _dataset(name)
    path = write_trials(ds, tmp_path / f"trials{suffix}")
    back = read_trials(path)
    xr.testing.assert_identical(back, ds)
    for v in ds.variables:
        assert back[v].dtype.kind == ds[v].dtype.kind, v
    assert back.attrs.keys() == ds.attrs.keys()
    for k, v in ds.attrs.items():
        if isinstance(v, np.ndarray):
            np.testing.assert_array_equal(back.attrs[k], v)
            assert back.attrs[k].dtype == v.dtype
        else:
            assert back.attrs[k] == v and type(back.attrs[k]) is type(v.item() if isinstance(v, np.generic) else v)


def test_csv_sidecar_and_text_labels_that_look_numeric(tmp_path):
    ds = _dataset("string_subjects")
    path = write_trials(ds, tmp_path / "t.csv")
    side = json.loads((tmp_path / "t.csv.json").read_text())
    assert side["columns"]["subject"] == "str" and side["meta"]["n_actions"] == 2
    assert pd.read_csv(path)["subject"].tolist()[0] == 7  # a plain reader loses the label ...
    assert list(read_trials(path).subject.values) == ["007", "012"]  # ... the sidecar keeps it


def test_netcdf_attrs_are_sanitised(tmp_path):
    ds = _dataset("covariates")
    path = write_trials(ds, tmp_path / "t.nc")
    with xr.open_dataset(path) as raw:
        assert raw.attrs["note"] == "null" and json.loads(raw.attrs["flags"]) == {"pilot": True, "ids": [1, 2]}
        assert set(json.loads(raw.attrs["neurorl_json_attrs"])) == {"note", "flags", "cleaned", "weights"}
    back = read_trials(path)
    assert back.attrs["note"] is None and back.attrs["cleaned"] is True and back.rt.attrs == {"units": "s"}
    assert back.cued.dtype == bool and back.subject.dtype.kind == "U"


def test_plain_csv_without_sidecar(tmp_path):
    path = tmp_path / "gng.txt"
    _hbayesdm_table().to_csv(path, sep="\t", index=False)
    ds = read_trials(path, columns={"subject": "subjID", "state": "cue", "choice": "keyPressed",
                                    "reward": "outcome"}, one_based=True)
    np.testing.assert_array_equal(ds.choice, [[0, 1, -1], [1, 0, -1]])


def test_read_trials_validates(tmp_path):
    path = write_trials(_dataset("ragged_missed"), tmp_path / "t.csv")
    text = path.read_text().splitlines()
    fields = text[4].split(",")  # subject 1, trial 3
    fields[5] = "-0.25"  # rt
    text[4] = ",".join(fields)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=r"column 'rt': negative reaction time -0\.25 \(seconds\) "
                                         r"\(first at subject 1, trial 3;"):
        read_trials(path)


def test_unsupported_suffix(tmp_path):
    with pytest.raises(ValueError, match=r"unsupported file suffix '\.xlsx'"):
        write_trials(_dataset("string_subjects"), tmp_path / "t.xlsx")


def test_latents_roundtrip(tmp_path):
    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=2, n_trials=20, rng=1)
    lat = sim.latents.copy()
    lat.attrs["fit"] = {"converged": True}
    path = write_latents(lat, tmp_path / "lat.nc")
    xr.testing.assert_identical(read_latents(path), lat)
    with pytest.raises(ValueError, match="use a .nc file"):
        write_latents(lat, tmp_path / "lat.csv")
