"""Tests of neurorl.schema: EnvSpec, make_trials, validate_trials, env_spec, time_major.

Expected values are written by hand from the data model in schema.py's docstring.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import xarray as xr

from neurorl.schema import EnvSpec, env_spec, make_trials, time_major, validate_trials


def _subject_re(label) -> str:
    """Regex for "subject <label>" tolerant of numpy's scalar repr (``np.str_('b')``, ``np.int64(1)``)."""
    return rf"subject (np\.\w+\()?{re.escape(repr(label))}\)?"


def _base(**kw):
    """Two subjects x four trials, one state, two actions; subject 1's labels are 10..13."""
    args = dict(
        state=np.zeros((2, 4), int),
        choice=np.array([[0, 1, 1, 0], [1, 1, 0, -1]]),
        reward=np.array([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 1.0, np.nan]]),
        rt=np.array([[0.3, 0.4, 0.5, 0.6], [0.2, 0.3, 0.4, np.nan]]),
        trial_index=np.array([[0, 1, 2, 3], [10, 11, 12, 13]]),
        subjects=np.array(["a", "b"]),
    )
    args.update(kw)
    return args


# ----------------------------------------------------------------------------- EnvSpec
def test_envspec_default_tables():
    env = EnvSpec.default(2, 3)
    assert env.n_items == 6
    np.testing.assert_array_equal(env.item, [[0, 1, 2], [3, 4, 5]])
    assert env.available.all() and np.isnan(env.known_value).all()
    assert env.is_default_items
    tv = env.table_vars()
    assert tv["item"][0] == ("state_id", "action")
    assert tv["item"][1].dtype == np.int64 and tv["available"][1].dtype == bool
    assert tv["known_value"][1].dtype == float


def test_envspec_shared_items_not_default():
    env = EnvSpec(2, 2, 3, np.array([[0, 1], [1, 2]]), np.ones((2, 2), bool), np.full((2, 2), np.nan))
    assert not env.is_default_items


def test_envspec_shape_error_names_table():
    with pytest.raises(ValueError, match=r"EnvSpec\.available has shape \(2, 3\); expected .* \(2, 2\)"):
        EnvSpec(2, 2, 4, np.arange(4).reshape(2, 2), np.ones((2, 3), bool), np.full((2, 2), np.nan))


def test_envspec_item_out_of_range():
    with pytest.raises(ValueError, match=r"EnvSpec\.item must lie in \[0, n_items=3\)"):
        EnvSpec(2, 2, 3, np.arange(4).reshape(2, 2), np.ones((2, 2), bool), np.full((2, 2), np.nan))


def test_envspec_state_without_action():
    avail = np.array([[True, False], [False, False], [True, True]])
    with pytest.raises(ValueError, match="state 1 has no available action"):
        EnvSpec(3, 2, 6, np.arange(6).reshape(3, 2), avail, np.full((3, 2), np.nan))


# ----------------------------------------------------------------------------- make_trials
def test_make_trials_defaults():
    ds = make_trials(np.zeros((2, 3), int), [[0, 1, -1], [2, 0, 1]], np.ones((2, 3)))
    assert dict(ds.sizes) == {"subject": 2, "trial": 3, "action": 3, "state_id": 1}
    assert ds.attrs["n_actions"] == 3 and ds.attrs["n_states"] == 1 and ds.attrs["n_items"] == 3
    np.testing.assert_array_equal(ds.valid, [[True, True, False], [True, True, True]])
    np.testing.assert_array_equal(ds.trial_index, [[0, 1, 2], [0, 1, 2]])
    np.testing.assert_array_equal(ds.next_state, -np.ones((2, 3)))
    assert ds.done.values.all() and ds.done.dtype == bool
    assert np.isnan(ds.rt).all()
    np.testing.assert_array_equal(ds.subject, [0, 1])
    np.testing.assert_array_equal(ds.item, [[0, 1, 2]])


def test_make_trials_min_two_actions_and_1d_input():
    ds = make_trials([0, 0, 0], [0, 0, 0], [1.0, 0.0, 1.0])
    assert ds.sizes["subject"] == 1 and ds.attrs["n_actions"] == 2


def test_make_trials_env_sets_sizes_and_tables():
    known = np.array([[np.nan, 0.5], [np.nan, np.nan]])
    env = EnvSpec(2, 2, 3, np.array([[0, 1], [1, 2]]), np.ones((2, 2), bool), known)
    ds = make_trials([[0, 1]], [[1, 0]], [[0.0, 1.0]], env=env)
    got = env_spec(ds)
    assert (got.n_states, got.n_actions, got.n_items) == (2, 2, 3)
    np.testing.assert_array_equal(got.item, env.item)
    np.testing.assert_array_equal(got.known_value, env.known_value)


def test_make_trials_covariates_and_attrs():
    ds = make_trials([[0, 0]], [[0, 1]], [[1.0, 0.0]], covariates={"cue": [["x", "y"]]}, attrs={"task": "t"})
    assert ds.cue.dims == ("subject", "trial") and list(ds.cue.values[0]) == ["x", "y"]
    assert ds.attrs["task"] == "t" and ds.attrs["schema"] == "1"


def test_make_trials_covariate_clash():
    with pytest.raises(ValueError, match="covariate 'reward' clashes"):
        make_trials([[0]], [[0]], [[1.0]], covariates={"reward": [[1.0]]})


def test_make_trials_nan_choice():
    with pytest.raises(ValueError, match=r"'choice' contains NaN; use -1"):
        make_trials([[0, 0]], [[0, np.nan]], [[1.0, 0.0]])


def test_make_trials_non_integer_state_names_position():
    state = np.zeros((2, 3))
    state[1, 2] = 0.5
    with pytest.raises(ValueError, match=r"'state' must be integer; found 0\.5 at subject index 1, trial 2"):
        make_trials(state, np.zeros((2, 3), int), np.ones((2, 3)))


def test_make_trials_shape_mismatch_names_variable():
    with pytest.raises(ValueError, match=r"'reward' has shape \(2, 2\); expected \(n_subjects, n_trials\) = \(2, 3\)"):
        make_trials(np.zeros((2, 3), int), np.zeros((2, 3), int), np.ones((2, 2)))


def test_make_trials_subject_count():
    with pytest.raises(ValueError, match="subjects has 3 labels for 2 subjects"):
        make_trials(np.zeros((2, 1), int), np.zeros((2, 1), int), np.ones((2, 1)), subjects=["a", "b", "c"])


# ----------------------------------------------------------------------------- validate_trials
def test_validate_accepts_and_returns_same_object():
    ds = make_trials(**_base())
    assert validate_trials(ds) is ds


def test_validate_choice_out_of_range_names_subject_and_trial_label():
    ds = make_trials(**_base(), validate=False)
    ds["choice"][1, 2] = 5
    with pytest.raises(ValueError, match=r"'choice': out of range \[0, 2\) on a valid trial") as e:
        validate_trials(ds)
    assert re.search(_subject_re("b"), str(e.value)) and "trial 12)" in str(e.value)


@pytest.mark.parametrize("name", ["reward", "rt", "loss"])
def test_validate_text_in_a_numeric_variable_names_value_subject_and_trial(name):
    ds = make_trials(**_base(), validate=False)
    vals = ds["reward"].values.astype(object) if name == "loss" else ds[name].values.astype(object)
    vals[1, 1] = "n/a"  # a column read as text
    ds[name] = (("subject", "trial"), vals)
    with pytest.raises(ValueError, match=rf"'{name}': must hold numbers, holds 'n/a'") as e:
        validate_trials(ds)
    assert re.search(_subject_re("b"), str(e.value)) and "trial 11)" in str(e.value)


def test_validate_names_the_trials_of_a_simulation():
    class Sim:  # what neurorl.simulate returns: the trials are one attribute of it
        trials = make_trials(**_base())

    with pytest.raises(TypeError, match=r"got Sim \(pass its \.trials\)"):
        validate_trials(Sim())


def test_validate_state_out_of_range():
    ds = make_trials(**_base(), validate=False)
    ds["state"][1, 1] = 3
    with pytest.raises(ValueError, match=r"'state': out of range \[0, 1\)") as e:
        validate_trials(ds)
    assert re.search(_subject_re("b"), str(e.value)) and "trial 11)" in str(e.value)


def test_validate_padding_cannot_be_valid():
    ds = make_trials(**_base(trial_index=np.array([[0, 1, 2, 3], [10, 11, 12, -1]])), validate=False)
    ds["valid"][1, 3] = True
    ds["choice"][1, 3] = 0
    ds["reward"][1, 3] = 0.0
    with pytest.raises(ValueError, match=r"'valid': padding rows \(trial_index = -1\) cannot be valid") as e:
        validate_trials(ds)
    assert re.search(_subject_re("b"), str(e.value)) and "trial -1)" in str(e.value)


def test_validate_nan_reward_on_valid_trial():
    args = _base()
    args["reward"] = args["reward"].copy()
    args["reward"][0, 2] = np.nan
    with pytest.raises(ValueError, match=r"'reward': NaN or infinite reward on a valid trial") as e:
        make_trials(**args)
    assert re.search(_subject_re("a"), str(e.value)) and "trial 2)" in str(e.value)


def test_validate_nan_reward_allowed_on_missed_trial():
    ds = make_trials(**_base())  # subject b, trial 13: choice -1, reward NaN
    assert not ds.valid.values[1, 3]


def test_validate_negative_rt():
    args = _base()
    args["rt"] = args["rt"].copy()
    args["rt"][1, 0] = -0.1
    with pytest.raises(ValueError, match=r"'rt': negative reaction time") as e:
        make_trials(**args)
    assert re.search(_subject_re("b"), str(e.value)) and "trial 10)" in str(e.value)


def test_validate_unavailable_choice():
    env = EnvSpec(1, 3, 3, np.array([[0, 1, 2]]), np.array([[True, True, False]]), np.full((1, 3), np.nan))
    args = _base(choice=np.array([[0, 1, 1, 0], [1, 2, 0, -1]]), subjects=np.array([4, 7]))
    with pytest.raises(ValueError, match=r"'choice': chosen action is not available in that state") as e:
        make_trials(**args, env=env)
    assert re.search(_subject_re(7), str(e.value)) and "trial 11)" in str(e.value)


def test_validate_non_integer_float_choice():
    ds = make_trials(**_base(), validate=False)
    ds["choice"] = ds["choice"].astype(float)
    ds["choice"][0, 1] = 0.5
    with pytest.raises(ValueError, match=r"'choice': must be integer") as e:
        validate_trials(ds)
    assert re.search(_subject_re("a"), str(e.value)) and "trial 1)" in str(e.value)


def test_validate_missing_variable_and_dims():
    ds = make_trials(**_base())
    with pytest.raises(ValueError, match=r"lacks required variable\(s\) \['rt'\]"):
        validate_trials(ds.drop_vars("rt"))
    bad = ds.copy()
    bad["rt"] = bad["rt"].transpose("trial", "subject")
    with pytest.raises(ValueError, match=r"'rt' must have dims \('subject', 'trial'\)"):
        validate_trials(bad)
    with pytest.raises(TypeError, match="must be an xarray.Dataset"):
        validate_trials(ds.to_dataframe())


def test_validate_needs_sizes():
    ds = make_trials(**_base()).drop_vars(["item", "available", "known_value"]).drop_dims(["action", "state_id"])
    ds.attrs = {}
    with pytest.raises(ValueError, match="must record n_actions and n_states"):
        validate_trials(ds)


# ----------------------------------------------------------------------------- env_spec, time_major
def test_env_spec_default_when_tables_absent():
    ds = make_trials(**_base()).drop_vars(["item", "available", "known_value"])
    env = env_spec(ds)
    assert env.is_default_items and (env.n_states, env.n_actions) == (1, 2)


def test_time_major():
    ds = make_trials(**_base())
    tm = time_major(ds, "choice")
    assert tm.shape == (4, 2) and tm.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(tm[:, 1], [1, 1, 0, -1])
    assert isinstance(ds, xr.Dataset)
