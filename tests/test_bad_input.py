"""Bad and unusual inputs (issue #12): each is a named error or a correct, reported result; outputs are atomic.

One parametrized case per bad input. Expected numbers are derived by hand (in the comments) or by an independent
computation in the test; error cases assert the exception type and the words that name the problem.
"""

from __future__ import annotations

import io
import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.special import digamma

import neurorl as nr
from neurorl.cli import main
from neurorl.results import (
    atomic_output, check_not_input, read_compare, read_fit, trials_fingerprint, write_groups,
)

REPO = Path(__file__).resolve().parents[1]


# ============================================================================ tables
def _table(n=8, choices=None, **extra):
    """One subject, ``n`` trials, alternating choices 0/1 and rewards 1/0 unless given."""
    choices = list(choices) if choices is not None else [i % 2 for i in range(n)]
    n = len(choices)
    df = pd.DataFrame({"subject": ["s1"] * n, "trial": list(range(n)), "choice": choices,
                       "reward": [float((i + 1) % 2) for i in range(n)]})
    for k, v in extra.items():
        df[k] = v
    return df


def _with(df, column, row, value):
    df = df.copy()
    df[column] = df[column].astype(object)
    df.loc[row, column] = value
    return df


TABLE_ERRORS = {
    # choice codes (item 3)
    "codes-start-at-1": (lambda: nr.from_table(_table(choices=[1, 2] * 4)), ValueError, "code 0 is never chosen"),
    "stray-code-3": (lambda: nr.from_table(_table(choices=[0, 1, 0, 1, 3, 1, 0, 1])), ValueError,
                     r"action code\(s\) \[2\] are never chosen"),
    "one-based-stray-code": (lambda: nr.from_table(_table(choices=[1, 2, 1, 2, 4, 1]), one_based=True), ValueError,
                             r"action code\(s\) \[3\] are never chosen"),
    "negative-choice": (lambda: nr.from_table(_table(choices=[0, 1, -1, 1])), ValueError, "out of range"),
    "choice-above-n-actions": (lambda: nr.from_table(_table(choices=[0, 1, 2, 1]), n_actions=2), ValueError,
                               "out of range for n_actions = 2"),
    "non-integer-choice": (lambda: nr.from_table(_table(choices=[0, 1, 0.5, 1])), ValueError, "non-integer"),
    "non-numeric-choice": (lambda: nr.from_table(_with(_table(), "choice", 3, "left")), ValueError,
                           "non-numeric value 'left'"),
    # reaction times (item 4)
    "rt-in-ms": (lambda: nr.from_table(_table(rt=[450.0, 520, 610, 480, 700, 390, 560, 505])), ValueError,
                 "median reaction time is 512.5 s"),
    "rt-unit-unknown": (lambda: nr.from_table(_table(rt=[0.5] * 8), rt_unit="minutes"), ValueError,
                        "rt_unit must be 's' or 'ms'"),
    "negative-rt": (lambda: nr.from_table(_table(rt=[0.5, -0.1] + [0.5] * 6)), ValueError, "negative reaction time"),
    "infinite-rt": (lambda: nr.from_table(_table(rt=[0.5, np.inf] + [0.5] * 6)), ValueError,
                    "infinite reaction time"),
    # structure of the table
    "missing-subject-column": (lambda: nr.from_table(_table().drop(columns="subject")), ValueError,
                               "--columns subject=YOUR_NAME"),
    "empty-table": (lambda: nr.from_table(_table().iloc[:0]), ValueError, "no rows"),
    "duplicate-columns": (lambda: nr.from_table(pd.concat([_table(), _table()[["reward"]]], axis=1)), ValueError,
                          "duplicate column names"),
    "unknown-columns-key": (lambda: nr.from_table(_table(), columns={"subj": "subject"}), ValueError,
                            "unknown key"),
    "mapped-column-absent": (lambda: nr.from_table(_table(), columns={"choice": "keyPressed"}), ValueError,
                             "'keyPressed'.*is not in the table"),
    "duplicate-trial": (lambda: nr.from_table(_with(_table(), "trial", 3, 2)), ValueError,
                        r"duplicate \(subject, trial\)"),
    "unsorted-trials": (lambda: nr.from_table(_table().iloc[[0, 2, 1, 3, 4, 5, 6, 7]]), ValueError,
                        "not sorted within the subject"),
    "negative-trial-label": (lambda: nr.from_table(_with(_table(), "trial", 0, -1)), ValueError,
                             "negative trial label"),
    "missing-subject-label": (lambda: nr.from_table(_with(_table(), "subject", 2, None)), ValueError,
                              "missing subject label"),
    "nan-reward": (lambda: nr.from_table(_with(_table(), "reward", 4, np.nan)), ValueError,
                   "missing \\(NaN\\) reward on a valid trial"),
    "inf-reward": (lambda: nr.from_table(_with(_table(), "reward", 4, np.inf)), ValueError, "infinite reward"),
    "valid-but-no-choice": (lambda: nr.from_table(_with(_table(valid=[True] * 8), "choice", 1, np.nan)),
                            ValueError, "missing choice on a trial that column 'valid' marks valid"),
    "valid-not-boolean": (lambda: nr.from_table(_with(_table(valid=[True] * 8), "valid", 1, "maybe")), ValueError,
                          "is not a boolean"),
    "negative-state": (lambda: nr.from_table(_table(state=[0, 0, -1, 0, 0, 0, 0, 0])), ValueError,
                       "state -1 is out of range"),
    "covariate-clashes": (lambda: nr.from_table(_table(trial_index=list(range(8)))), ValueError,
                          "clashes with a neurorl variable name"),
    "not-a-dataframe": (lambda: nr.from_table({"subject": [1]}), TypeError, "pandas.DataFrame"),
}


@pytest.mark.parametrize("case", sorted(TABLE_ERRORS), ids=sorted(TABLE_ERRORS))
def test_table_errors(case):
    call, exc, match = TABLE_ERRORS[case]
    with pytest.raises(exc, match=match):
        call()


def test_one_based_codes_read_as_two_actions():
    # hBayesDM 1/2 codes with one_based=True: codes 0/1, two actions (no phantom action 0)
    ds = nr.from_table(_table(choices=[1, 2] * 4), one_based=True)
    assert ds.attrs["n_actions"] == 2
    assert ds["choice"].values.tolist() == [[0, 1] * 4]


def test_explicit_n_actions_keeps_an_unchosen_action():
    ds = nr.from_table(_table(), n_actions=3)  # an explicit decision: action 2 exists but was never chosen
    assert ds.attrs["n_actions"] == 3


def test_rt_unit_ms_converts_to_seconds():
    rt = [450.0, 520, 610, 480, 700, 390, 560, 505]
    ds = nr.from_table(_table(rt=rt), rt_unit="ms")
    np.testing.assert_allclose(ds["rt"].values[0], np.array(rt) / 1000.0)


def test_rt_unit_s_keeps_values_as_given():
    ds = nr.from_table(_table(rt=[12.0] * 8), rt_unit="s")  # explicit: slow responses are the user's decision
    np.testing.assert_allclose(ds["rt"].values[0], 12.0)


def test_rt_in_ms_refused_by_the_rt_model():
    # a dataset built in Python (no table read) with RTs in ms: the RT model refuses to fit it
    from neurorl.fitting.joint import with_rt

    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=1, n_trials=20, rng=0)
    trials = sim.trials.assign(rt=(("subject", "trial"), np.full((1, 20), 480.0)))
    with pytest.raises(ValueError, match="median reaction time is 480 s"):
        with_rt("q_learning", "lognormal").check_data(trials)


# ============================================================================ files
def _files(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "latin1.csv").write_bytes("subject,choice,reward\n\xe9l\xe8ve,0,1\n".encode("latin-1"))
    (tmp_path / "side.csv").write_text("subject,choice,reward\n1,0,1\n1,1,0\n")
    (tmp_path / "side.csv.json").write_text("{not json")
    (tmp_path / "junk.nc").write_bytes(b"this is not netCDF\n" * 10)
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    xr.Dataset({"x": ("a", [1.0, 2.0])}).to_netcdf(tmp_path / "plain.nc")
    xr.Dataset(attrs={"neurorl_output": "fit"}).to_netcdf(tmp_path / "halffit.nc")
    return tmp_path


FILE_ERRORS = {
    "empty-csv": (lambda d: nr.read_trials(d / "empty.csv"), ValueError, "empty.csv' is empty"),
    "latin1-csv": (lambda d: nr.read_trials(d / "latin1.csv"), ValueError, "latin1.csv' is not UTF-8"),
    "bad-json-sidecar": (lambda d: nr.read_trials(d / "side.csv"), ValueError, "side.csv.json' is not valid JSON"),
    "junk-netcdf-trials": (lambda d: nr.read_trials(d / "junk.nc"), ValueError, "junk.nc' cannot be read"),
    "junk-netcdf-latents": (lambda d: nr.read_latents(d / "junk.nc"), ValueError, "junk.nc' cannot be read"),
    "junk-netcdf-neural": (lambda d: __import__("neurorl.decoding.neural", fromlist=["x"]).read_neural(
        d / "junk.nc"), ValueError, "junk.nc' cannot be read"),
    "simulation-without-groups": (lambda d: nr.read_simulation(d / "plain.nc"), ValueError,
                                  "plain.nc.*no group 'trials'"),
    "unsupported-suffix": (lambda d: nr.read_trials(d / "data.xlsx"), ValueError, "unsupported file suffix"),
    "missing-file": (lambda d: nr.read_trials(d / "nope.csv"), FileNotFoundError, "nope.csv"),
    "missing-latents-file": (lambda d: nr.read_latents(d / "nope.nc"), FileNotFoundError, "nope.nc"),
    "fit-reader-on-csv": (lambda d: read_fit(d / "side.csv"), ValueError, "side.csv': not a netCDF file"),
    "fit-reader-on-foreign-nc": (lambda d: read_fit(d / "plain.nc"), ValueError,
                                 "plain.nc' is not a file written by `neurorl fit`"),
    "fit-reader-on-incomplete": (lambda d: read_fit(d / "halffit.nc"), ValueError, "halffit.nc.*models"),
    "compare-reader-on-fit": (lambda d: read_compare(d / "halffit.nc"), ValueError,
                              "written by `neurorl fit`"),
    "fit-reader-on-directory": (lambda d: read_fit(d), ValueError, "is a directory"),
}


@pytest.mark.parametrize("case", sorted(FILE_ERRORS), ids=sorted(FILE_ERRORS))
def test_file_errors(case, tmp_path):
    call, exc, match = FILE_ERRORS[case]
    with pytest.raises(exc, match=match):
        call(_files(tmp_path))


# ============================================================================ agents and options
AGENT_ERRORS = {
    "fixed-inf": (lambda: nr.make_agent("q_learning", fixed={"beta": float("inf")}), ValueError,
                  "fixed beta=inf is not a finite number"),
    "fixed-nan": (lambda: nr.make_agent("q_learning", fixed={"alpha": float("nan")}), ValueError,
                  "not a finite number"),
    "fixed-out-of-bounds": (lambda: nr.make_agent("q_learning", fixed={"alpha": 1.5}), ValueError, "outside"),
    "fixed-unknown-parameter": (lambda: nr.make_agent("q_learning", fixed={"gamma_x": 1.0}), ValueError,
                                "cannot fix unknown parameter"),
    "unknown-option": (lambda: nr.make_agent("q_learning", temprature=2.0), TypeError,
                       r"has no option\(s\) \['temprature'\]; its options are \["),
    "unknown-agent": (lambda: nr.make_agent("q_lerning"), ValueError, "unknown agent 'q_lerning'"),
    "bms-unknown-stop-rule": (lambda: __import__("neurorl.fitting.compare", fromlist=["x"]).bms(
        np.zeros((2, 3)), stop="free-energy"), ValueError, "stop must be one of"),
}


@pytest.mark.parametrize("case", sorted(AGENT_ERRORS), ids=sorted(AGENT_ERRORS))
def test_agent_and_option_errors(case):
    call, exc, match = AGENT_ERRORS[case]
    with pytest.raises(exc, match=match):
        call()


# ============================================================================ command line
@pytest.fixture(scope="module")
def cli_dir(tmp_path_factory):
    """A simulation (3 subjects x 60 trials) and its q_learning fit; a second data set's fit."""
    d = tmp_path_factory.mktemp("bad_cli")
    for name, seed in (("s.nc", 0), ("other.nc", 1)):
        nr.write_simulation(nr.simulate("q_learning", "mouse_bandit", n_subjects=3, n_trials=60, rng=seed), d / name)
    base = ["--starts", "1", "--no-figures", "--quiet"]
    assert main(["fit", str(d / "s.nc"), "-a", "q_learning", *base, "-o", str(d / "fit.nc")]) == 0
    assert main(["fit", str(d / "other.nc"), "-a", "q_learning", *base, "-o", str(d / "fit_other.nc")]) == 0
    return d


def _cli(argv, capsys):
    rc = main(argv)
    return rc, capsys.readouterr().err


def _bytes(p):
    return Path(p).read_bytes()


def test_fit_output_equal_to_input_is_refused(cli_dir, capsys):
    before = _bytes(cli_dir / "s.nc")
    rc, err = _cli(["fit", str(cli_dir / "s.nc"), "-a", "q_learning", "-q", "-o", str(cli_dir / "s.nc")], capsys)
    assert rc == 2 and "is the input file" in err
    assert _bytes(cli_dir / "s.nc") == before
    assert nr.read_simulation(cli_dir / "s.nc").latents is not None  # the latents group is still there


def test_fit_output_through_symlink_is_refused(cli_dir, capsys):
    link = cli_dir / "link.nc"
    if not link.exists():
        link.symlink_to(cli_dir / "s.nc")
    rc, err = _cli(["fit", str(cli_dir / "s.nc"), "-a", "q_learning", "-q", "-o", str(link)], capsys)
    assert rc == 2 and "is the input file" in err


def test_fit_output_through_relative_path_is_refused(cli_dir, capsys, monkeypatch):
    sub = cli_dir / "sub"
    sub.mkdir(exist_ok=True)
    monkeypatch.chdir(sub)
    rc, err = _cli(["fit", str(cli_dir / "s.nc"), "-a", "q_learning", "-q", "-o", "../s.nc"], capsys)
    assert rc == 2 and "is the input file" in err


def test_compare_output_equal_to_a_fit_is_refused(cli_dir, capsys):
    before = _bytes(cli_dir / "fit.nc")
    rc, err = _cli(["compare", str(cli_dir / "fit.nc"), "-q", "--no-figures", "-o", str(cli_dir / "fit.nc")], capsys)
    assert rc == 2 and "is the input file" in err and _bytes(cli_dir / "fit.nc") == before


def test_decode_output_equal_to_neural_input_is_refused(cli_dir, capsys):
    rc, err = _cli(["decode", str(cli_dir / "s.nc"), "--fit", str(cli_dir / "fit.nc"), "-q", "-o",
                    str(cli_dir / "s.nc")], capsys)
    assert rc == 2 and "is the input file" in err


def test_report_output_equal_to_an_output_is_refused(cli_dir, capsys):
    rc, err = _cli(["report", str(cli_dir), "-o", str(cli_dir / "fit.nc")], capsys)
    assert rc == 2 and "is the input file" in err


def test_csv_sidecar_counts_as_input(tmp_path):
    (tmp_path / "d.csv").write_text("x")
    with pytest.raises(ValueError, match="is the input file"):
        check_not_input(tmp_path / "d.csv.json", [tmp_path / "d.csv"])


def test_compare_refuses_fits_of_different_data(cli_dir, capsys):
    rc, err = _cli(["compare", str(cli_dir / "fit.nc"), str(cli_dir / "fit_other.nc"), "-q", "--no-figures",
                    "-o", str(cli_dir / "c_bad.nc")], capsys)
    assert rc == 2 and "different data" in err and not (cli_dir / "c_bad.nc").exists()


def test_fit_file_records_the_trials_fingerprint(cli_dir):
    fit = read_fit(cli_dir / "fit.nc")
    sim = nr.read_simulation(cli_dir / "s.nc")
    assert fit["attrs"]["trials_fingerprint"] == trials_fingerprint(sim.trials)
    other = nr.read_simulation(cli_dir / "other.nc")
    assert trials_fingerprint(other.trials) != trials_fingerprint(sim.trials)


def test_soft_q_choice_only_fit_holds_eta_true():
    from neurorl.fitting import MAP

    # eta_true never reaches the policy: a choice-only fit holds it at its default (reported in
    # fixed_by_default_ and in the result attributes) instead of "estimating" it at its prior mean
    est = MAP("soft_q")
    got = est._choice_only_agent(nr.make_agent("soft_q"))
    assert est.fixed_by_default_ == {"eta_true": 0.1}
    assert got.fixed == {"eta_true": 0.1} and got.param_names == ("tau", "eta")
    kept = est._choice_only_agent(nr.make_agent("soft_q", fixed={"eta_true": 0.3}))  # the user's value wins
    assert kept.fixed == {"eta_true": 0.3} and est.fixed_by_default_ == {}


def test_cli_unknown_agent_option_is_named(cli_dir, capsys):
    rc, err = _cli(["fit", str(cli_dir / "s.nc"), "-a", "q_learning:temprature=2", "-q", "-o",
                    str(cli_dir / "x.nc")], capsys)
    assert rc == 2 and "no option(s) ['temprature']" in err and "__init__" not in err


def test_cli_fix_inf_is_refused_before_fitting(cli_dir, capsys):
    rc, err = _cli(["fit", str(cli_dir / "s.nc"), "-a", "q_learning:fix.beta=inf", "-q", "-o",
                    str(cli_dir / "x.nc")], capsys)
    assert rc == 2 and "not a finite number" in err and not (cli_dir / "x.nc").exists()


def test_cli_csv_one_based_hint(tmp_path, capsys):
    _table(choices=[1, 2] * 4).to_csv(tmp_path / "hb.csv", index=False)
    rc, err = _cli(["fit", str(tmp_path / "hb.csv"), "-a", "q_learning", "-q", "-o", str(tmp_path / "f.nc")], capsys)
    assert rc == 2 and "--one-based" in err and "--n-actions" in err


def test_cli_compare_reader_names_an_incomplete_file(tmp_path, capsys):
    xr.Dataset(attrs={"neurorl_output": "fit", "models": json.dumps(["q_learning"])}).to_netcdf(tmp_path / "h.nc")
    rc, err = _cli(["compare", str(tmp_path / "h.nc"), "-q", "-o", str(tmp_path / "c.nc")], capsys)
    assert rc == 2 and "h.nc' is incomplete" in err and "internal error" not in err


# ============================================================================ atomic writes
def test_failed_writer_leaves_previous_file_and_no_temporary(tmp_path):
    target = tmp_path / "out.nc"
    write_groups(target, {"a": xr.Dataset({"x": ("i", [1.0, 2.0])})}, {"neurorl_output": "compare"})
    before = _bytes(target)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b"half")
            raise Boom
    assert _bytes(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]


def test_write_groups_failing_on_a_late_group_keeps_previous_file(tmp_path):
    target = tmp_path / "out.nc"
    write_groups(target, {"a": xr.Dataset({"x": ("i", [1.0])})}, {"neurorl_output": "compare"})
    before = _bytes(target)
    bad = xr.Dataset({"y": ("i", np.array([{"a": 1}], dtype=object))})  # netCDF cannot store a dict
    with pytest.raises(Exception):
        write_groups(target, {"a": xr.Dataset({"x": ("i", [5.0])}), "b": bad}, {"neurorl_output": "compare"})
    assert _bytes(target) == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.nc"]


_SLOW_WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import numpy as np, xarray as xr
    from neurorl.results import write_groups

    flag = Path(sys.argv[2])

    class Slow(dict):
        def items(self):
            yield "first", xr.Dataset({"x": ("i", np.arange(1000.0))})
            flag.write_text("mid-write")   # the first group is on disk in the temporary file
            time.sleep(600)                # ... and the writer is killed here
            yield "second", xr.Dataset({"x": ("i", np.arange(10.0))})

    write_groups(sys.argv[1], Slow(), {"neurorl_output": "fit", "models": "[]"})
""")


def test_writer_killed_mid_write_leaves_previous_output_intact(tmp_path):
    target = tmp_path / "x.nc"
    write_groups(target, {"old": xr.Dataset({"v": ("i", [1.0, 2.0, 3.0])})}, {"neurorl_output": "compare"})
    before = _bytes(target)
    flag = tmp_path / "flag"
    script = tmp_path / "writer.py"
    script.write_text(_SLOW_WRITER)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, str(script), str(target), str(flag)], env=env)
    try:
        for _ in range(1200):  # poll until the writer is mid-write (bounded: fails instead of hanging)
            if flag.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert flag.exists(), f"the writer never reached the middle of its write (exit code {proc.poll()})"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _bytes(target) == before
    ds = xr.open_dataset(target, group="old", engine="netcdf4")
    np.testing.assert_array_equal(ds["v"].values, [1.0, 2.0, 3.0])
    ds.close()
    parts = [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    assert len(parts) == 1 and parts[0].name.startswith(".x.nc.")  # the killed writer's leftover, never x.nc
    with pytest.raises(ValueError, match=str(parts[0].name)):  # a reader meeting it names it
        read_fit(parts[0])


# ============================================================================ fitting
def test_uninformed_parameter_is_warned_and_not_counted():
    from neurorl.agents.qlearning import QLearning
    from neurorl.fitting import MLE
    from neurorl.params import Param

    class WithUnused(QLearning):
        name = "q_learning_unused"

        def param_spec(self):
            return list(super().param_spec()) + [Param("unused", 0.0, 1.0, 0.5, doc="never used")]

    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=3, n_trials=60, rng=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est = MLE(WithUnused(), n_starts=1, rng=0).fit(sim.trials)
    texts = [str(w.message) for w in caught]
    assert any("no information about parameter(s) ['unused']" in t and "q_learning_unused" in t for t in texts)
    assert not any("Hessian is not positive definite" in t for t in texts)  # explained by the warning above
    ref = MLE("q_learning", n_starts=1, rng=0).fit(sim.trials)
    res = est.result_
    assert res["informed"].values.tolist() == [True, True, False]
    assert int(res["n_params"]) == 2 and not res["identifiable"].any()
    # BIC with d = 2 (by hand from the log-likelihood), equal to the model without the parameter
    n = res["n_trials"].values
    np.testing.assert_allclose(res["bic"].values, -2 * res["loglik"].values + 2 * np.log(n))
    np.testing.assert_allclose(res["bic"].values, ref.result_["bic"].values, atol=1e-3)


# ============================================================================ verdicts (items 6, 9, 10)
def _evidence(loglik, k, n=100):
    s = [f"s{i}" for i in range(len(loglik))]
    return xr.Dataset({"loglik": ("subject", np.asarray(loglik, float)), "n_params": ((), k),
                       "n_trials": ("subject", np.full(len(loglik), n))}, coords={"subject": s})


def test_identical_pointwise_models_form_one_class():
    from neurorl.fitting.compare import compare_table

    pw = np.random.default_rng(0).normal(-0.6, 0.1, size=(2, 50))
    t = compare_table({"q_learning": _evidence(pw.sum(1), 2), "soft_q": _evidence(pw.sum(1) + 3e-7, 2)},
                      pointwise={"q_learning": pw, "soft_q": pw + 1e-7 / 50})
    assert t["equivalence_class"].values.tolist() == [0, 0]
    assert t.attrs["best_bic"].startswith("q_learning = soft_q (equivalent")
    assert json.loads(t.attrs["equivalent"]) == [["q_learning", "soft_q"]]


def test_pointwise_difference_above_tolerance_is_not_equivalent():
    from neurorl.fitting.compare import equivalence_classes

    a = np.array([-0.5, -0.7, -0.2])
    assert equivalence_classes({"a": a, "b": a + 1e-5}) == [["a"], ["b"]]
    # b is within 1e-6 of a and of c, a and c are 1.2e-6 apart: one class (transitive closure)
    assert equivalence_classes({"a": a, "b": a + 6e-7, "c": a + 1.2e-6}) == [["a", "b", "c"]]


@pytest.mark.parametrize("gap,expected", [(1.9, "not distinguishable: m1, m2"), (2.5, "m1")])
def test_bic_difference_under_two_is_not_a_winner(gap, expected):
    from neurorl.fitting.compare import compare_table

    # same d and n: BIC difference = -2 * (loglik difference); m2 is gap/2 nats worse in total
    t = compare_table({"m1": _evidence([-50.0, -60.0], 2), "m2": _evidence([-50.0, -60.0 - gap / 2], 2)})
    assert float(t["delta_bic_total"].sel(model="m2")) == pytest.approx(gap)
    assert t.attrs["best_bic"] == expected


@pytest.mark.parametrize("se,expected", [(0.5, "not distinguishable: a, b"), (0.2, "a")])
def test_loo_difference_under_one_se_is_not_a_winner(se, expected):
    from neurorl.fitting.compare import verdict

    # elpd a = -100, b = -100.3: a difference of 0.3, reported only when it exceeds its SE
    assert verdict({"a": -100.0, "b": -100.3}, higher_is_better=True, margin={"a": 0.0, "b": se}) == expected


def _fixed_point_residual(L, a):
    E = digamma(a) - digamma(a.sum())
    z = L + E[:, None]
    r = np.exp(z - z.max(0))
    r /= r.sum(0)
    return float(np.max(np.abs(1.0 + r.sum(1) - a)))


def test_bms_default_reaches_the_fixed_point_on_weak_evidence():
    from neurorl.fitting.compare import bms

    L = np.random.default_rng(2).normal(0.0, 0.3, size=(3, 40))  # weak evidence
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = bms(L)
    assert res.converged
    assert _fixed_point_residual(L, res.alpha.values) < 1e-9
    with pytest.warns(RuntimeWarning, match="stop='vba'"):  # VBA's rule stops short here, and says so
        vba = bms(L, stop="vba")
    assert vba.n_iter == 32
    assert _fixed_point_residual(L, vba.alpha.values) > _fixed_point_residual(L, res.alpha.values)


def test_blahut_arimoto_converges_for_small_beta():
    from neurorl.agents.policy_compression import blahut_arimoto

    # one state: I(S;A) = 0 whatever the policy, so the optimum puts all mass on the better action; the
    # iteration multiplies P(a2)/P(a1) by exp(-beta) per step (by hand), hence P -> [1, 0]
    res = blahut_arimoto(np.array([[1.0, 0.0]]), [1.0], 0.1)
    assert res.converged
    np.testing.assert_allclose(res.marginal, [1.0, 0.0], atol=1e-8)


def test_blahut_arimoto_warns_when_stopped_early():
    from neurorl.agents.policy_compression import blahut_arimoto

    with pytest.warns(RuntimeWarning, match="increase max_iter"):
        res = blahut_arimoto(np.array([[1.0, 0.0]]), [1.0], 0.1, max_iter=50)
    assert not res.converged
    # after 50 steps P(a2)/P(a1) = exp(-0.1 * 50) (by hand)
    assert res.marginal[1] / res.marginal[0] == pytest.approx(math.exp(-5.0), rel=1e-9)


def test_wiener_density_at_infinite_rt_is_zero():
    from neurorl.fitting.wiener import MIN_LOGP, wiener_logpdf, wiener_pdf

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lp = wiener_logpdf(np.array([np.inf]), 1, 0.5, 1.5, 0.5, 0.2)
        p = wiener_pdf(np.array([np.inf]), 0, 0.5, 1.5, 0.5, 0.2)
    assert lp[0] == MIN_LOGP and p[0] == 0.0


# ============================================================================ decoding (item 8)
@pytest.fixture(scope="module")
def decoding_session():
    from neurorl.decoding import synthetic_population

    rng = np.random.default_rng(5)
    sim = nr.simulate("q_learning", "mouse_bandit", n_trials=120, params={"alpha": 0.3, "beta": 3.0}, rng=rng)
    neural, _ = synthetic_population(sim.latents, encode={"v": 0.4}, n_units=6, n_time=3, drift=0.3, rng=rng)
    return sim.latents.isel(subject=0), neural.astype(float)


def _set(neural, value, **where):
    out = neural.copy()
    out[where] = value
    return out


DECODING_ERRORS = {
    "nan-rate": (lambda n: _set(n, np.nan, trial=7, unit=4, time=1), "are nan at trial 7, unit 4"),
    "inf-rate": (lambda n: _set(n, np.inf, trial=3, unit=0, time=0), "are inf at trial 3, unit 0"),
    "all-units-silent": (lambda n: n * 0.0, "every unit is constant"),
}


@pytest.mark.parametrize("case", sorted(DECODING_ERRORS), ids=sorted(DECODING_ERRORS))
def test_decoding_errors(case, decoding_session):
    from neurorl.decoding.compare import compare_latents

    lat, neural = decoding_session
    make, match = DECODING_ERRORS[case]
    bad = make(neural)
    bad = bad.assign_coords(trial=neural["trial"].values)
    with pytest.raises(ValueError, match=match):
        compare_latents(bad, lat, ("v", "rpe"))


@pytest.mark.parametrize("time_mode", ["pooled", "resolved"])
def test_constant_unit_is_excluded_by_name(decoding_session, time_mode):
    from neurorl.decoding.compare import compare_latents

    lat, neural = decoding_session
    silent = _set(neural, 0.0, unit=2)
    with pytest.warns(UserWarning, match=r"unit\(s\) \[2\]"):
        res = compare_latents(silent, lat, ("v", "rpe"), time=time_mode)
    ref = compare_latents(neural.sel(unit=[0, 1, 3, 4, 5]), lat, ("v", "rpe"), time=time_mode)
    assert res["unit"].values.tolist() == [0, 1, 3, 4, 5]
    np.testing.assert_allclose(res["score"].values, ref["score"].values)  # as if the unit were not recorded
    assert np.all(np.isfinite(res["population_diff"].values))
    assert json.loads(res.attrs["excluded_constant_units"]) == ["2"]


def test_constant_bin_scores_nan_not_minus_inf(decoding_session):
    from neurorl.decoding.compare import compare_latents

    lat, neural = decoding_session
    res = compare_latents(_set(neural, 0.0, unit=1, time=0), lat, ("v", "rpe"), time="resolved")
    s = res["score"].isel(time=0)
    assert np.isnan(s.sel(unit=1)).all() and np.isfinite(s.sel(unit=[0, 2, 3, 4, 5])).all()
    # the population mean of that bin is the mean over the other units (by hand)
    d = res["difference"].isel(pair=0, time=0).sel(unit=[0, 2, 3, 4, 5]).values
    assert float(res["population_diff"].isel(pair=0, time=0)) == pytest.approx(d.mean())


# ============================================================================ progress (item 15)
def test_progress_off_a_terminal_writes_plain_lines():
    from neurorl.progress import PlainProgress, progress_bar

    buf = io.StringIO()
    bar = progress_bar(True, "MAP q_learning", 8, unit="fits", stream=buf)
    assert isinstance(bar, PlainProgress)
    for k in (1, 3, 6, 8):
        bar.set_done(k)
    bar.close()
    lines = buf.getvalue().splitlines()
    assert "\r" not in buf.getvalue()
    assert lines[0] == "MAP q_learning: started (8 fits)"
    assert lines[-1].startswith("MAP q_learning: done, 8/8 fits")  # work done, not an iteration limit
    assert len(lines) <= 5


def test_progress_disabled_writes_nothing():
    from neurorl.progress import iterate, progress_bar

    buf = io.StringIO()
    assert progress_bar(False, "x", 3, stream=buf) is None
    assert list(iterate(range(3), False, "x", stream=buf)) == [0, 1, 2] and buf.getvalue() == ""
