"""The `neurorl` command and the simulation files it writes."""

from __future__ import annotations

import numpy as np

import neurorl as nr
from neurorl.cli import main


def test_simulation_file_round_trip(tmp_path):
    sim = nr.simulate("q_learning", "memory_2afc", n_subjects=3, n_trials=40, rng=0)
    path = nr.write_simulation(sim, tmp_path / "sim.nc")
    back = nr.read_simulation(path)
    assert back.trials.identical(sim.trials)
    assert back.latents.identical(sim.latents)
    assert back.params.identical(sim.params)


def test_cli_demo_writes_files(tmp_path, capsys):
    rc = main(["demo", "--agents", "q_learning", "soft_q", "--subjects", "2", "--trials", "30",
               "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    files = sorted(p.name for p in tmp_path.glob("*.nc"))
    assert files == ["q_learning_mouse_bandit_seed2026.nc", "soft_q_mouse_bandit_seed2027.nc"]
    sim = nr.read_simulation(tmp_path / files[0])
    # the file holds a reproducible simulation: same seed, same choices
    again = nr.simulate("q_learning", "mouse_bandit", n_subjects=2, n_trials=30, rng=2026)
    np.testing.assert_array_equal(sim.trials.choice.values, again.trials.choice.values)
    out = capsys.readouterr().out
    assert "q_learning" in out and "mean_reward" in out


def test_cli_simulate_and_errors(tmp_path, capsys):
    out = tmp_path / "s.nc"
    assert main(["simulate", "q_learning", "bandit", "--subjects", "2", "--trials", "20",
                 "--param", "alpha=0.2", "--out", str(out), "--quiet"]) == 0
    sim = nr.read_simulation(out)
    np.testing.assert_array_equal(sim.params.alpha.values, [0.2, 0.2])
    assert main(["simulate", "q_learning", "bandit", "--param", "alpha=2", "--out", str(out), "--quiet"]) == 2
    assert "outside its bounds" in capsys.readouterr().err
    assert main(["simulate", "nope", "bandit", "--out", str(out)]) == 2
    assert "unknown agent" in capsys.readouterr().err
    assert main(["list"]) == 0
