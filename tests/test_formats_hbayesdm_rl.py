"""hBayesDM's RL task layouts read into trials: generated files in hBayesDM's exact columns and codings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import neurorl as nr
from neurorl.formats import hbayesdm_rl as hb


def _write_read(df, tmp_path):
    """hBayesDM's example files are tab-separated text."""
    path = tmp_path / "data.txt"
    df.to_csv(path, sep="\t", index=False)
    return pd.read_csv(path, sep="\t")


def _replay_loglik(agent, trials, params):
    lat = nr.replay(agent, trials, params)
    p = np.take_along_axis(lat["policy"].values, trials["choice"].values[..., None], -1)[..., 0]
    return np.where(trials["valid"].values, np.log(p), 0.0).sum(axis=1)


def test_prl_layout(tmp_path):
    sim = nr.simulate("prl_rp", "reversal_learning", n_subjects=3, n_trials=50, rng=0)
    ch, r = sim.trials["choice"].values, sim.trials["reward"].values
    rows = [{"subjID": f"s{i}", "choice": int(ch[i, t]) + 1, "outcome": int(r[i, t]) * 10}  # any signed outcome
            for i in range(3) for t in range(50)]
    df = _write_read(pd.DataFrame(rows), tmp_path)
    tab = hb.prl(df)
    trials = nr.from_table(tab.table, **tab.options)
    np.testing.assert_array_equal(trials["choice"].values, ch)
    np.testing.assert_array_equal(trials["reward"].values, r)  # sign(outcome)
    np.testing.assert_array_equal(trials["outcome"].values, r * 10)  # kept as a covariate
    par = {"Apun": 0.2, "Arew": 0.5, "beta": 3.0}
    np.testing.assert_allclose(_replay_loglik("prl_rp", trials, par), _replay_loglik("prl_rp", sim.trials, par))


def test_prl_multiple_blocks_layout():
    rng = np.random.default_rng(2)
    df = pd.DataFrame({"subjID": np.repeat([1, 2], 40), "block": np.tile(np.repeat([3, 5], 20), 2),
                       "choice": rng.integers(1, 3, 80), "outcome": rng.choice([-1, 1], 80)})
    tab = hb.prl_multiple_blocks(df)
    trials = nr.from_table(tab.table, **tab.options)
    assert tab.info["state_of_block"] == {3: 0, 5: 1}
    np.testing.assert_array_equal(trials["state"].values[0], np.repeat([0, 1], 20))
    env = tab.options["env"]
    assert env.item.tolist() == [[0, 1], [2, 3]]


def test_igt_layout(tmp_path):
    sim = nr.simulate("igt_pvl_delta", "iowa_gambling", n_subjects=2, n_trials=60, rng=1)
    t = sim.trials
    rows = [{"subjID": i + 1, "choice": int(t["choice"].values[i, k]) + 1, "gain": t["gain"].values[i, k],
             "loss": t["loss"].values[i, k]} for i in range(2) for k in range(60)]
    df = _write_read(pd.DataFrame(rows), tmp_path)
    tab = hb.igt(df)
    trials = nr.from_table(tab.table, **tab.options)
    np.testing.assert_array_equal(trials["choice"].values, t["choice"].values)
    # hBayesDM: outcome = (gain - |loss|) / payscale, by hand for the first row
    first = rows[0]
    assert trials["reward"].values[0, 0] == pytest.approx((first["gain"] - abs(first["loss"])) / 100)
    np.testing.assert_allclose(trials["reward"].values, t["reward"].values)
    # hBayesDM files sometimes give losses as positive amounts: |loss| makes no difference
    df2 = df.assign(loss=df["loss"].abs())
    np.testing.assert_allclose(hb.igt(df2).table["reward"], tab.table["reward"])


def test_bandit4arm2_layout(tmp_path):
    sim = nr.simulate("bandit4arm2_kalman_filter", "restless_bandit", n_subjects=2, n_trials=40, rng=3)
    t = sim.trials
    rows = [{"subjID": f"p{i}", "choice": int(t["choice"].values[i, k]) + 1, "outcome": t["reward"].values[i, k]}
            for i in range(2) for k in range(40)]
    tab = hb.bandit4arm2(_write_read(pd.DataFrame(rows), tmp_path))
    trials = nr.from_table(tab.table, **tab.options)
    par = {k: sim.params[k].values for k in sim.params.data_vars}
    np.testing.assert_allclose(_replay_loglik("bandit4arm2_kalman_filter", trials, par),
                               _replay_loglik("bandit4arm2_kalman_filter", t, par))


def test_pst_layout(tmp_path):
    sim = nr.simulate("pst_gainloss_Q", "probabilistic_selection", n_subjects=2, n_trials=60, rng=4)
    t = sim.trials
    types = np.array([12, 34, 56])
    rows = [{"subjID": i, "type": int(types[t["state"].values[i, k]]),
             "choice": 1 if t["choice"].values[i, k] == 0 else 0, "reward": t["reward"].values[i, k]}
            for i in range(2) for k in range(60)]
    df = _write_read(pd.DataFrame(rows), tmp_path)
    tab = hb.pst(df)
    assert tab.info["state_of_type"] == {12: 0, 34: 1, 56: 2}
    assert tab.options["env"].item.tolist() == [[0, 1], [2, 3], [4, 5]]
    trials = nr.from_table(tab.table, **tab.options)
    par = {"alpha_pos": 0.3, "alpha_neg": 0.1, "beta": 4.0}
    np.testing.assert_allclose(_replay_loglik("pst_gainloss_Q", trials, par),
                               _replay_loglik("pst_gainloss_Q", t, par))


def test_bad_input_names_column_and_row():
    df = pd.DataFrame({"subjID": [1, 1, 2], "choice": [1, 3, 2], "outcome": [1, -1, 1]})
    with pytest.raises(ValueError, match=r"'choice'.*got 3 at row 1 \(subject 1\)"):
        hb.prl(df)
    with pytest.raises(ValueError, match=r"column\(s\) \['gain', 'loss'\] missing"):
        hb.igt(df)
    bad = pd.DataFrame({"subjID": [1], "type": [17], "choice": [1], "reward": [1]})
    with pytest.raises(ValueError, match="'type'"):
        hb.pst(bad)


def test_read_records_the_coding(tmp_path):
    rng = np.random.default_rng(5)
    df = pd.DataFrame({"subjID": np.repeat(["a", "b"], 30), "choice": rng.integers(1, 5, 60),
                       "gain": rng.choice([50, 100], 60), "loss": rng.choice([0, -250], 60)})
    trials = hb.read("igt", df, payscale=50)
    assert trials.attrs["hbayesdm_layout"] == "igt"
    assert "(gain - |loss|) / 50" in trials.attrs["hbayesdm_codings"]
    np.testing.assert_allclose(trials["reward"].values.ravel(), (df["gain"] - df["loss"].abs()) / 50)
    with pytest.raises(ValueError, match="unknown hBayesDM task layout"):
        hb.read("bart", df)
    for task, (reader, columns, agents) in hb.TASKS.items():
        assert columns[0] == "subjID" and all(a in nr.list_agents() for a in agents), task
