"""Format presets (neurorl.formats): files the tests write in each original layout, with its exact codings.

Layouts as hBayesDM's, HDDM's and HSSM's documentation describe them (the presets' docstrings list the
assumptions). Expected values are derived in the tests by hand from the codings, not by the preset's code.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import neurorl as nr
from neurorl.formats import get_format, list_formats, match_formats, register_format, Format


def _gng_file(path, n=12, seed=0):
    """hBayesDM gng_exampleData.txt layout: trialNum, cue 1-4, keyPressed 0/1, success, congruentOutcome,
    outcome -1/0/1, subjID (tab-separated)."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "trialNum": np.tile(np.arange(1, n + 1), 2),
        "cue": np.tile(np.repeat([1, 2, 3, 4], n // 4), 2),
        "keyPressed": rng.integers(0, 2, 2 * n),
        "success": rng.integers(0, 2, 2 * n),
        "congruentOutcome": rng.integers(0, 2, 2 * n),
        "outcome": rng.choice([-1, 0, 1], 2 * n),
        "subjID": np.repeat([101, 102], n),
    })
    df.to_csv(path, sep="\t", index=False)
    return df


def test_registry_lists_every_family():
    names = list_formats()
    assert {"hbayesdm:bandit2arm", "hbayesdm:gng", "hbayesdm:ts", "hddm:rl", "hssm:rl", "two_step:wide",
            "tidy"} <= set(names)
    with pytest.raises(ValueError, match="unknown format 'hbayesdm:nope'.*hbayesdm:gng"):
        get_format("hbayesdm:nope")
    with pytest.raises(ValueError, match="already registered"):
        register_format(Format("tidy", ("subject",), lambda df: None, "dup"))
    with pytest.raises(ValueError, match="family:variant"):
        register_format(Format("Bad Name", ("subject",), lambda df: None, "x"))


def test_gng_keeps_keypressed_and_shifts_only_the_cue(tmp_path):
    df = _gng_file(tmp_path / "gng_exampleData.txt")
    ds = nr.read_trials(tmp_path / "gng_exampleData.txt", format="hbayesdm:gng")
    n = 12
    np.testing.assert_array_equal(ds.state.values, df["cue"].to_numpy().reshape(2, n) - 1)
    np.testing.assert_array_equal(ds.choice.values, df["keyPressed"].to_numpy().reshape(2, n))  # 0/1 as written
    np.testing.assert_array_equal(ds.reward.values, df["outcome"].to_numpy().reshape(2, n))
    assert list(ds.subject.values) == [101, 102]
    assert (ds.attrs["n_states"], ds.attrs["n_actions"]) == (4, 2)
    assert ds.attrs["format"] == "hbayesdm:gng" and ds.attrs["one_based"] == ["state"]
    np.testing.assert_array_equal(ds.trialNum.values[0], np.arange(1, n + 1))  # other columns are covariates
    # the old way shifted keyPressed too: 0 becomes -1 and the read stops
    with pytest.raises(ValueError, match="keyPressed"):
        nr.from_table(df, columns={"subject": "subjID", "state": "cue", "choice": "keyPressed",
                                   "reward": "outcome"}, one_based=True)
    # per-column codings in from_table give the same dataset as the preset
    same = nr.from_table(df, columns={"subject": "subjID", "state": "cue", "choice": "keyPressed",
                                      "reward": "outcome"}, one_based="state", n_states=4)
    np.testing.assert_array_equal(same.state, ds.state)
    np.testing.assert_array_equal(same.choice, ds.choice)


def test_one_based_rejects_unknown_columns():
    df = pd.DataFrame({"subject": [1, 1], "choice": [1, 2], "reward": [0, 1]})
    with pytest.raises(ValueError, match="one_based.*'reward'"):
        nr.from_table(df, one_based=["reward"])


def test_unknown_layout_is_recognised_in_the_default_readers_error(tmp_path):
    _gng_file(tmp_path / "gng.txt")
    with pytest.raises(ValueError, match=r"match the format preset 'hbayesdm:gng'.*--format hbayesdm:gng"):
        nr.read_trials(tmp_path / "gng.txt")
    assert match_formats(["subj_idx", "response", "rt", "split_by", "feedback", "q_init"]) == ["hddm:rl"]
    assert match_formats(["a", "b"]) == []
    # a preset whose columns are absent names the preset that would read the file
    with pytest.raises(ValueError, match=r"needs column\(s\) \['choice'\].*'hbayesdm:gng'"):
        nr.read_trials(tmp_path / "gng.txt", format="hbayesdm:bandit2arm")


def test_bandit2arm_one_based_choices(tmp_path):
    df = pd.DataFrame({"subjID": ["s1"] * 4 + ["s2"] * 3, "trial": [1, 2, 3, 4, 1, 2, 3],
                       "choice": [1, 2, 2, 1, 2, 2, 1], "outcome": [1, -1, 1, 1, -1, -1, 1]})
    df.to_csv(tmp_path / "bandit2arm_exampleData.txt", sep="\t", index=False)
    ds = nr.read_trials(tmp_path / "bandit2arm_exampleData.txt", format="hbayesdm:bandit2arm")
    np.testing.assert_array_equal(ds.choice.values, [[0, 1, 1, 0], [1, 1, 0, -1]])
    np.testing.assert_array_equal(ds.trial_index.values, [[1, 2, 3, 4], [1, 2, 3, -1]])  # labels kept
    assert ds.attrs["task"] == "bandit" and ds.attrs["one_based"] == ["choice"]
    bad = df.assign(choice=[1, 2, 3, 1, 2, 2, 1])
    with pytest.raises(ValueError, match=r"choice 3 is out of range for n_actions = 2.*subject 's1', trial 3"):
        get_format("hbayesdm:bandit2arm").read(bad)


def _wide_from_two_rows(trials):
    """One row per episode from the two-row layout: level1 = a1 + 1, level2 = 2 * (s2 - 1) + a2 + 1 (hBayesDM)."""
    t = nr.to_table(trials)
    s1, s2 = t[t.stage == 1].reset_index(drop=True), t[t.stage == 2].reset_index(drop=True)
    return pd.DataFrame({"subjID": s1.subject, "level1_choice": s1.choice + 1,
                         "level2_choice": 2 * (s2.state - 1) + s2.choice + 1, "reward": s2.reward})


def test_hbayesdm_ts_expands_to_the_two_step_rows_of_a_simulation(tmp_path):
    sim = nr.simulate("two_step_hybrid", "two_step", n_subjects=2, n_trials=40, rng=3)
    wide = _wide_from_two_rows(sim.trials)
    wide.to_csv(tmp_path / "ts_exampleData.txt", sep="\t", index=False)
    ds = nr.read_trials(tmp_path / "ts_exampleData.txt", format="hbayesdm:ts")
    for v in ("state", "choice", "reward", "valid", "next_state", "done", "stage", "common"):
        np.testing.assert_array_equal(ds[v].values, sim.trials[v].values, err_msg=v)
    assert ds.attrs["task"] == "two_step" and ds.attrs["n_items"] == sim.trials.attrs["n_items"]
    # the agent's likelihood on the read data equals the one on the simulated rows
    a = nr.replay("two_step_hybrid", ds, params={"w": 0.3}).policy
    b = nr.replay("two_step_hybrid", sim.trials, params={"w": 0.3}).policy
    np.testing.assert_allclose(a.values, b.values)


def test_two_step_wide_by_hand_and_missed_trials():
    df = pd.DataFrame({"subject": ["a", "a", "a"], "level1_choice": [2, np.nan, 1],
                       "level2_choice": [3, np.nan, 4], "reward": [1, np.nan, 0], "rt_1": [0.5, np.nan, 0.4],
                       "rt_2": [0.7, np.nan, 0.6]})
    ds = get_format("two_step:wide").read(df, rt1="rt_1", rt2="rt_2")
    # episode 1: option 2 -> state 2 (options 3, 4: common for option 2), chose 3 -> action 0, reward 1
    # episode 2: missed; episode 3: option 1 -> state 2 (rare), chose 4 -> action 1
    np.testing.assert_array_equal(ds.state.values[0], [0, 2, 0, 1, 0, 2])
    np.testing.assert_array_equal(ds.choice.values[0], [1, 0, -1, -1, 0, 1])
    np.testing.assert_array_equal(ds.valid.values[0], [True, True, False, False, True, True])
    np.testing.assert_array_equal(ds.common.values[0], [True, True, False, False, False, False])
    np.testing.assert_array_equal(ds.rt.values[0], [0.5, 0.7, np.nan, np.nan, 0.4, 0.6])
    np.testing.assert_array_equal(ds.reward.values[0], [0, 1, np.nan, np.nan, 0, 0])
    with pytest.raises(ValueError, match=r"level2_choice.*code 5 is not 1-4.*subject 'a', trial 0"):
        get_format("two_step:wide").read(df.assign(level2_choice=[5, np.nan, 4]))
    with pytest.raises(ValueError, match=r"reward.*missing or infinite reward.*subject 'a', trial 2"):
        get_format("two_step:wide").read(df.assign(reward=[1, np.nan, np.nan]))
    with pytest.raises(ValueError, match="missing second-stage choice.*trial 1"):
        get_format("two_step:wide").read(df.assign(level1_choice=[2, 1, 1]))


def _hddm_table():
    """HDDM rlddm_data.csv layout: subj_idx, response 0/1, cond, rt (s), trial (per condition), split_by,
    feedback, q_init; conditions interleaved."""
    return pd.DataFrame({
        "subj_idx": [0, 0, 0, 0, 0, 1, 1, 1],
        "response": [1, 0, 1, 1, 0, 0, 1, 1],
        "cond": ["AB", "CD", "AB", "CD", "AB", "CD", "CD", "AB"],
        "rt": [0.61, 0.72, 0.55, 0.8, 0.9, 1.1, 0.65, 0.7],
        "trial": [1, 1, 2, 2, 3, 1, 2, 1],
        "split_by": [1, 2, 1, 2, 1, 2, 2, 1],
        "feedback": [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0],
        "q_init": 0.5,
    })


def test_hddm_rl_conditions_are_states(tmp_path):
    df = _hddm_table()
    df.to_csv(tmp_path / "rlddm_data.csv", index=False)
    ds = nr.read_trials(tmp_path / "rlddm_data.csv", format="hddm:rl")
    np.testing.assert_array_equal(ds.state.values, [[0, 1, 0, 1, 0], [1, 1, 0, 0, 0]])  # split_by 1 -> 0, 2 -> 1
    np.testing.assert_array_equal(ds.choice.values, [[1, 0, 1, 1, 0], [0, 1, 1, -1, -1]])
    np.testing.assert_allclose(ds.rt.values[0], [0.61, 0.72, 0.55, 0.8, 0.9])
    np.testing.assert_array_equal(ds.first_in_condition.values, [[True, True, False, False, False],
                                                                  [True, False, True, False, False]])
    np.testing.assert_array_equal(ds.trial_in_condition.values[0], [1, 1, 2, 2, 3])
    assert ds.attrs["q_init"] == 0.5 and ds.attrs["suggested_agent"] == "q_learning:q0=0.5"
    assert ds.attrs["conditions"] == [1, 2] and ds.attrs["n_states"] == 2
    skip = get_format("hddm:rl").read(df, skip_first=True)
    np.testing.assert_array_equal(skip.valid.values, ds.valid.values)  # still learnt from
    scored = skip.valid.values & (skip.scored.values == 1)
    np.testing.assert_array_equal(scored, [[False, False, True, True, True], [False, True, False, False, False]])
    with pytest.raises(ValueError, match=r"q_init 0.2 differs.*subject 1"):
        get_format("hddm:rl").read(df.assign(q_init=[0.5] * 7 + [0.2]))
    with pytest.raises(ValueError, match="negative reaction time"):
        get_format("hddm:rl").read(df.assign(rt=-df.rt))


def test_hssm_rl_response_codes():
    df = pd.DataFrame({"participant_id": [1, 1, 1, 2, 2], "trial_id": [0, 1, 2, 0, 1],
                       "rt": [0.5, 0.6, 0.7, 0.8, 0.9], "response": [1, -1, -1, 1, 1],
                       "feedback": [1.0, 0.0, 1.0, 0.0, 1.0]})
    ds = get_format("hssm:rl").read(df)
    np.testing.assert_array_equal(ds.choice.values, [[1, 0, 0], [1, 1, -1]])
    assert ds.attrs["response_coding"].startswith("HSSM 1/-1")
    np.testing.assert_array_equal(ds.trial_id.values[0], [0, 1, 2])
    with pytest.raises(ValueError, match="mixes -1 and 0"):
        get_format("hssm:rl").read(df.assign(response=[1, -1, 0, 1, 1]))


def test_tidy_preset_is_from_table(tmp_path):
    df = pd.DataFrame({"subject": [1, 1, 2], "choice": [0, 1, 1], "reward": [1.0, 0.0, 1.0]})
    df.to_csv(tmp_path / "t.csv", index=False)
    a = nr.read_trials(tmp_path / "t.csv", format="tidy")
    b = nr.read_trials(tmp_path / "t.csv")
    np.testing.assert_array_equal(a.choice, b.choice)
    assert a.attrs["format"] == "tidy"


def test_cli_reader_format_and_per_column_codes(tmp_path):
    from neurorl.cli import UsageError, build_parser, read_data

    df = _gng_file(tmp_path / "gng.txt")
    by_preset, _ = read_data(tmp_path / "gng.txt", format="hbayesdm:gng")
    by_columns, _ = read_data(tmp_path / "gng.txt", columns={"subject": "subjID", "state": "cue",
                                                             "choice": "keyPressed", "reward": "outcome"},
                              one_based=["state"])
    np.testing.assert_array_equal(by_preset.choice, by_columns.choice)
    np.testing.assert_array_equal(by_columns.state.values.ravel(), df.cue.to_numpy() - 1)
    with pytest.raises(UsageError, match="--format hbayesdm:gng maps the columns"):
        read_data(tmp_path / "gng.txt", format="hbayesdm:gng", one_based=True)
    with pytest.raises(UsageError, match="unknown format 'nope'"):
        read_data(tmp_path / "gng.txt", format="nope")
    args = build_parser().parse_args(["fit", "x.csv", "--agent", "q_learning", "--one-based-columns", "state",
                                      "--format", "tidy"])
    assert (args.one_based_columns, args.format) == ("state", "tidy")
