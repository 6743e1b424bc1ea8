"""The `neurorl` command: every subcommand on tiny inputs through main([...]), its files, errors and exit codes.

Numbers are checked against independent computations: the log-likelihood at the stored estimates against a plain
NumPy Q-learning loop, BIC totals by hand from the stored log-likelihoods, the bundled data against its documented
generating distribution.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

import neurorl as nr
from neurorl.cli import main, parse_agent_spec, read_compare, read_decode, read_fit, read_recover

BANDIT = "bandit:p=(0.8,0.3)"


def _ql_loglik(alpha, beta, choice, reward):
    """Log-likelihood of one subject's choices under softmax Q-learning (q0 = 0): a plain reference loop."""
    q = np.zeros(2)
    ll = 0.0
    for c, r in zip(choice, reward):
        logits = beta * q
        ll += logits[c] - logsumexp(logits)
        q[c] += alpha * (r - q[c])
    return ll


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A small CSV data set (3 subjects x 60 trials, Q-learning on a 0.8/0.3 bandit) and its fit."""
    d = tmp_path_factory.mktemp("cli")
    sim = nr.simulate("q_learning", nr.make_task("bandit", p=(0.8, 0.3)), n_subjects=3, n_trials=60,
                      params={"alpha": 0.3, "beta": 3.0}, rng=1)
    nr.write_trials(sim.trials, d / "data.csv")
    rc = main(["fit", str(d / "data.csv"), "--agent", "q_learning", "--agent", "q_learning:fix.alpha=0.05",
               "--method", "map", "--starts", "2", "-o", str(d / "fit.nc"), "--quiet"])
    assert rc == 0
    return d, sim


# ----------------------------------------------------------------------------- simulate / list
def test_simulation_file_round_trip(tmp_path):
    sim = nr.simulate("q_learning", "memory_2afc", n_subjects=3, n_trials=40, rng=0)
    path = nr.write_simulation(sim, tmp_path / "sim.nc")
    back = nr.read_simulation(path)
    assert back.trials.identical(sim.trials)
    assert back.latents.identical(sim.latents)
    assert back.params.identical(sim.params)


def test_cli_simulate_and_errors(tmp_path, capsys):
    out = tmp_path / "s.nc"
    assert main(["simulate", "q_learning", "bandit", "--subjects", "2", "--trials", "20",
                 "--param", "alpha=0.2", "--out", str(out), "--csv", str(tmp_path / "s.csv"), "--quiet"]) == 0
    sim = nr.read_simulation(out)
    np.testing.assert_array_equal(sim.params.alpha.values, [0.2, 0.2])
    back = nr.read_trials(tmp_path / "s.csv")
    np.testing.assert_array_equal(back.choice.values, sim.trials.choice.values)
    # the same seed reproduces the same choices
    again = nr.simulate("q_learning", "bandit", n_subjects=2, n_trials=20, params={"alpha": 0.2}, rng=0)
    np.testing.assert_array_equal(sim.trials.choice.values, again.trials.choice.values)
    assert main(["simulate", "q_learning", "bandit", "--param", "alpha=2", "--out", str(out), "--quiet"]) == 2
    assert "outside its bounds" in capsys.readouterr().err
    assert main(["simulate", "nope", "bandit", "--out", str(out)]) == 2
    assert "unknown agent" in capsys.readouterr().err
    assert main(["simulate", "dra:colour=1", "bandit", "--out", str(out)]) == 2
    assert "colour" in capsys.readouterr().err
    assert main(["simulate", "q_learning", "mouse_bandit:p_high=2", "--out", str(out)]) == 2
    assert "p_high" in capsys.readouterr().err
    assert main(["simulate", "q_learning", "bandit", "--out", str(tmp_path / "s.txt")]) == 2
    assert main(["list"]) == 0
    assert "mouse_bandit" in capsys.readouterr().out


def test_help_explains_every_option(capsys):
    import argparse

    from neurorl.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"list", "cache", "simulate", "fit", "compare", "design", "recover", "decode", "report",
                                "demo", "export", "fit-bayes"}
    for cmd, parser in sub.choices.items():
        assert parser.description, cmd
        for action in parser._actions:
            assert action.help and len(action.help) > 10, (cmd, action.dest)
        assert main([cmd, "--help"]) == 0
        assert "usage: neurorl " + cmd in capsys.readouterr().out
    assert main([]) == 2  # no subcommand: an argparse error, exit code 2


def test_parse_agent_spec():
    assert parse_agent_spec("dra:sigma_base=0.5,sigma0=0.25") == ("dra", {"sigma_base": 0.5, "sigma0": 0.25}, {})
    assert parse_agent_spec("soft_q:fix.eta_true=0.1") == ("soft_q", {}, {"eta_true": 0.1})
    assert parse_agent_spec("q_learning:perseveration=true") == ("q_learning", {"perseveration": True}, {})


# ----------------------------------------------------------------------------- fit
def test_fit_writes_models_and_the_likelihood_is_right(workdir):
    d, sim = workdir
    fit = read_fit(d / "fit.nc")
    assert list(fit["models"]) == ["q_learning", "q_learning_2"]
    assert fit["models"]["q_learning_2"]["spec"]["fixed"] == {"alpha": 0.05}
    assert list(fit["models"]["q_learning_2"]["params"].data_vars) == ["beta"]
    ch, rw = sim.trials.choice.values, sim.trials.reward.values
    for lab, alpha_fixed in (("q_learning", None), ("q_learning_2", 0.05)):
        m = fit["models"][lab]
        p = m["params"]
        for i in range(3):
            a = alpha_fixed if alpha_fixed is not None else float(p.alpha.values[i])
            ref = _ql_loglik(a, float(p.beta.values[i]), ch[i], rw[i])
            assert float(m["result"].loglik.values[i]) == pytest.approx(ref, abs=1e-8)
        # predicted policy = softmax of the replayed values: P(chosen) multiplies to the likelihood
        pol = m["predicted"].policy.transpose("subject", "trial", "action").values.astype(float)
        chosen = np.take_along_axis(pol, ch[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(np.log(chosen).sum(axis=1), m["result"].loglik.values, atol=1e-3)
    np.testing.assert_array_equal(fit["trials"].choice.values, ch)
    assert (d / "fit_params.png").stat().st_size > 1000 and (d / "fit_learning.png").stat().st_size > 1000


def test_fit_error_messages_name_the_file(tmp_path, workdir, capsys):
    d, sim = workdir
    missing = tmp_path / "nothere.csv"
    assert main(["fit", str(missing), "--agent", "q_learning", "-o", str(tmp_path / "f.nc")]) == 2
    err = capsys.readouterr().err
    assert "nothere.csv" in err and "no such file" in err and "Traceback" not in err
    df = pd.read_csv(d / "data.csv")
    df["choice"] = df["choice"].astype(object)
    df.loc[5, "choice"] = "left"
    df.to_csv(tmp_path / "bad.csv", index=False)  # no sidecar: read as a plain table
    assert main(["fit", str(tmp_path / "bad.csv"), "--agent", "q_learning", "-o", str(tmp_path / "f.nc")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "'choice'" in err and "non-numeric value 'left'" in err and "row 5" in err
    df = pd.read_csv(d / "data.csv").rename(columns={"choice": "keyPressed"})
    df.to_csv(tmp_path / "renamed.csv", index=False)
    assert main(["fit", str(tmp_path / "renamed.csv"), "--agent", "q_learning", "-o", str(tmp_path / "f.nc")]) == 2
    assert "'choice' is required but missing" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "renamed.csv"), "--columns", "choice=keyPressed", "--agent", "q_learning",
                 "--starts", "1", "-o", str(tmp_path / "f.nc"), "--quiet", "--no-figures"]) == 0
    capsys.readouterr()
    assert main(["fit", str(d / "data.csv"), "--agent", "nope", "-o", str(tmp_path / "f.nc")]) == 2
    assert "unknown agent 'nope'" in capsys.readouterr().err
    assert main(["fit", str(d / "data.csv"), "--agent", "q_learning", "--covariate", "alpha=block",
                 "-o", str(tmp_path / "f.nc")]) == 2
    err = capsys.readouterr().err
    assert "data.csv" in err and "no variable 'block'" in err
    assert main(["fit", str(d / "data.csv"), "--agent", "q_learning", "--rt", "wiener",
                 "-o", str(tmp_path / "f.nc")]) == 2
    assert "needs reaction times" in capsys.readouterr().err
    assert main(["fit", str(d / "data.csv"), "-o", str(tmp_path / "f.nc")]) == 2  # --agent is required
    assert main(["fit", str(d / "data.csv"), "--agent", "q_learning", "-o", str(tmp_path / "f.csv")]) == 2


def test_fit_with_reaction_times(tmp_path):
    from neurorl.fitting.joint import with_rt

    agent = with_rt("q_learning", "lognormal")
    sim = nr.simulate(agent, nr.make_task("bandit", p=(0.8, 0.3)), n_subjects=2, n_trials=50, rng=3)
    assert np.isfinite(sim.trials.rt.values).all()
    nr.write_trials(sim.trials, tmp_path / "rt.csv")
    assert main(["fit", str(tmp_path / "rt.csv"), "--agent", "q_learning", "--rt", "lognormal", "--starts", "1",
                 "-o", str(tmp_path / "rt_fit.nc"), "--quiet", "--no-figures"]) == 0
    fit = read_fit(tmp_path / "rt_fit.nc")
    m = fit["models"]["q_learning+lognormal"]
    assert {"alpha", "beta", "b1", "b2"} <= set(m["params"].data_vars)
    # the joint likelihood exceeds the choice likelihood alone by the RT log-density: its stored value equals the
    # estimator's own evaluation of the joint model at the stored estimates
    from neurorl.fitting import MAP

    est = MAP(agent, n_starts=1, rng=0).fit(nr.read_trials(tmp_path / "rt.csv"))
    np.testing.assert_allclose(m["result"].loglik.values, est.result_.loglik.values, atol=1e-6)


# ----------------------------------------------------------------------------- compare
def test_compare_tables_bms_and_loo(workdir, capsys):
    d, _ = workdir
    assert main(["compare", str(d / "fit.nc"), "--loo", "--draws", "200", "-o", str(d / "compare.nc"),
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "BOR" in out and "elpd_loo" in out
    cmp = read_compare(d / "compare.nc")
    fit = read_fit(d / "fit.nc")
    for i, (lab, m) in enumerate(fit["models"].items()):
        r = m["result"]
        k, n = int(r.n_params), r.n_trials.values
        bic = float(np.sum(-2 * r.loglik.values + k * np.log(n)))
        assert float(cmp["table"].bic_total.values[i]) == pytest.approx(bic)
    assert cmp["bms"].attrs["evidence"] == "laplace"
    assert float(cmp["bms"].pxp.sum()) == pytest.approx(1.0)
    assert set(cmp["loo"].model.values) == {"q_learning", "q_learning_2"}
    assert float(cmp["loo"].delta_elpd.min()) == 0.0
    assert cmp["loo_pointwise"].elpd_loo.sizes == {"model": 2, "subject": 3, "trial": 60}
    assert (d / "compare.png").stat().st_size > 1000
    assert main(["compare", str(d / "fit.nc"), "--evidence", "loo", "-o", str(d / "c2.nc")]) == 2
    assert "needs --loo" in capsys.readouterr().err
    assert main(["compare", str(d / "data.csv"), "-o", str(d / "c2.nc")]) == 2
    assert "not a netCDF file" in capsys.readouterr().err


def test_compare_exact_cv_and_one_verdict(workdir, capsys):
    from neurorl.fitting import MAP
    from neurorl.fitting.cv import exact_cv

    d, sim = workdir
    assert main(["compare", str(d / "fit.nc"), "--cv", "3", "-o", str(d / "cv.nc"), "--quiet", "--no-figures"]) == 0
    out = capsys.readouterr().out
    cmp = read_compare(d / "cv.nc")
    sentence = cmp["verdict"].attrs["sentence"]
    assert f"verdict: {sentence}" in out and out.count(sentence) == 1
    assert "exact 3-fold CV" in sentence
    # the file's exact CV equals the API's on a refit of the same model
    est = MAP("q_learning", n_starts=2, rng=0).fit(nr.read_trials(d / "data.csv"))
    ref = exact_cv(est, 3)
    assert float(cmp["predictive"].elpd.sel(model="q_learning")) == pytest.approx(ref.elpd, abs=1e-3)


# ----------------------------------------------------------------------------- recover
def test_recover_parameter_and_model_recovery(tmp_path, capsys):
    out = tmp_path / "rec.nc"
    assert main(["recover", "--agent", "q_learning", "--agent", "q_learning:fix.alpha=0.05", "--task", BANDIT,
                 "--subjects", "3", "--trials", "40", "--starts", "1", "--parameters",
                 "--param", "q_learning.alpha=0.3", "-o", str(out), "--quiet"]) == 0
    rec = read_recover(out)
    C = rec["model_recovery"].confusion.values
    np.testing.assert_allclose(C.sum(axis=1), 1.0)
    assert set(rec["parameter_recovery"]) == {"q_learning", "q_learning_2"}
    assert (tmp_path / "rec_models.png").exists() and (tmp_path / "rec_params_q_learning.png").exists()
    assert main(["recover", "--agent", "q_learning", "--task", BANDIT, "--param", "q_learning.alpha=2",
                 "-o", str(out)]) == 2
    assert "outside the bounds" in capsys.readouterr().err
    assert main(["recover", "--agent", "q_learning", "--task", BANDIT, "--param", "dra.alpha=0.2",
                 "-o", str(out)]) == 2
    assert "no agent 'dra'" in capsys.readouterr().err


# ----------------------------------------------------------------------------- decode
def test_decode_finds_the_encoded_latent(tmp_path, capsys):
    from neurorl.decoding import synthetic_population, write_neural

    agent = nr.make_agent("soft_q", fixed={"eta_true": 0.1})
    sim = nr.simulate(agent, "mouse_bandit", n_subjects=1, n_trials=300, params={"tau": 0.25, "eta": 0.4}, rng=4)
    nr.write_simulation(sim, tmp_path / "sim.nc")
    neural, _ = synthetic_population(sim, encode={"v_soft": 1.0}, n_units=20, n_time=4, rng=5)
    write_neural(neural, tmp_path / "neural.nc")
    out = tmp_path / "dec.nc"
    assert main(["decode", str(tmp_path / "neural.nc"), "--trials", str(tmp_path / "sim.nc"),
                 "--agent", "soft_q:fix.eta_true=0.1", "--param", "tau=0.25", "--param", "eta=0.4",
                 "--latents", "v", "v_soft", "--nulls", "10", "-o", str(out), "--quiet"]) == 0
    dec = read_decode(out)
    res = dec["subjects"]["0"]
    pop = res.score.mean("unit")
    assert float(pop.sel(candidate="v_soft").max()) > float(pop.sel(candidate="v").max())
    assert res.null_score.sizes["draw"] == 10
    tuned = res.group.values == "v_soft"
    peak = int(np.argmax(pop.sel(candidate="v_soft").values))
    assert np.mean(res.best.values[tuned, peak] == "v_soft") > 0.7
    assert (tmp_path / "dec.png").stat().st_size > 1000
    # errors: a latent the agent does not have; neural trials absent from the behaviour
    assert main(["decode", str(tmp_path / "neural.nc"), "--trials", str(tmp_path / "sim.nc"), "--agent", "soft_q",
                 "--latents", "v", "sigma", "-o", str(out)]) == 2
    assert "not latents of 'soft_q'" in capsys.readouterr().err
    short = sim.trials.isel(trial=slice(0, 100))
    nr.write_trials(short, tmp_path / "short.nc")
    assert main(["decode", str(tmp_path / "neural.nc"), "--trials", str(tmp_path / "short.nc"), "--agent", "soft_q",
                 "--nulls", "0", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "neural.nc" in err and "not in the behavioural data" in err


# ----------------------------------------------------------------------------- report and demo
def test_report_is_self_contained(workdir, capsys):
    d, _ = workdir
    assert main(["report", str(d), "-o", str(d / "r.html")]) == 0
    text = (d / "r.html").read_text()
    assert text.count("data:image/png;base64,") >= 3  # learning curves, parameters, comparison
    assert not re.search(r"""(src|href)=["']?(https?:|//|file:)""", text)
    assert "<link" not in text and "<script" not in text
    assert main(["report", str(d / "nothere")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_bundled_data_match_their_documentation():
    from neurorl.cli import DEMO_AGENTS, DEMO_TASK, parse_agent_spec
    from neurorl.data import load_demo
    from neurorl.fitting.design import DRA_ALLOCATION_PRIOR

    sim, neural = load_demo()
    tr, par = sim.trials, sim.params
    assert dict(tr.sizes)["subject"] == 12 and dict(tr.sizes)["trial"] == 1000
    assert tr.attrs["task"] == "branching_stakes"
    name, options, _ = parse_agent_spec(DEMO_TASK)
    assert repr(nr.make_task(name, **options)) == tr.attrs["task_options"]
    # ground truth: 4 subjects per model, the same in the attribute and in the params group
    truth = json.loads(tr.attrs["generating_model"])
    assert truth == dict(zip(par.subject.values.tolist(), par.model.values.tolist()))
    assert sorted(truth.values()) == ["dra"] * 4 + ["q_learning"] * 4 + ["soft_q"] * 4
    dra = par.sel(subject=[s for s, m in truth.items() if m == "dra"])
    # documented DRA distribution (DRA_ALLOCATION_PRIOR): every draw within 3 SD of its centre
    for k, f in (("alpha_sigma", lambda x: np.log(x / (1 - x))), ("lam", np.log)):
        loc, scale = DRA_ALLOCATION_PRIOR[k]
        assert np.all(np.abs((f(dra[k].values) - loc) / scale) < 3)
    assert np.all(np.isnan(dra["tau"].values)) and np.all(par.eta_true.values[par.model.values == "soft_q"] == 0.1)
    # the true latents are each generating agent's replay of the recorded choices
    for m, (opts, _) in DEMO_AGENTS.items():
        subs = [s for s, g in truth.items() if g == m]
        agent = nr.make_agent(m, **opts)
        p = par.sel(subject=subs)[[q.name for q in agent.params]]
        lat = nr.replay(agent, tr.sel(subject=subs), p)
        np.testing.assert_allclose(lat.v_soft.values, sim.latents.v_soft.sel(subject=subs).values, atol=1e-10)
    # neural: the max-ent subjects, half the units tuned to v_soft with weight +-0.6, the rest untuned
    c = neural["counts"]
    assert c.dims == ("subject", "trial", "unit", "time")
    assert sorted(c.subject.values.tolist()) == sorted(s for s, m in truth.items() if m == "soft_q")
    w = neural["weight"].values
    tuned = neural["group"].values == "v_soft"
    assert tuned.sum() == neural.sizes["unit"] // 2
    np.testing.assert_allclose(np.abs(w[:, tuned]), 0.6)
    assert np.all(w[:, ~tuned] == 0)
    np.testing.assert_array_equal(neural.trial.values, tr.trial_index.values[0])
    csv = nr.read_trials(nr.data.path("demo_cohort.csv"))
    np.testing.assert_array_equal(csv.choice.values, tr.choice.values)


def test_demo_quick(tmp_path, capsys):
    assert main(["demo", "--quick", "--out", str(tmp_path / "demo"), "--quiet"]) == 0
    out = capsys.readouterr().out
    report = tmp_path / "demo" / "report.html"
    assert f"open the report: {report.resolve()}" in out
    text = report.read_text()
    assert text.count("data:image/png;base64,") >= 5  # learning, parameters, comparison, recovery, decoding
    timings = json.loads((tmp_path / "demo" / "demo_timings.json").read_text())
    assert [t for t, _ in timings["stages"]] == ["fit the models", "compare evidence (BIC, Laplace, BMS, verdict)",
                                                 "model recovery against the ground truth",
                                                 "decode soft vs true values"]
    for name in ("fit.nc", "compare.nc", "recover.nc", "decode.nc"):
        assert (tmp_path / "demo" / name).exists()
    assert "headline results" in out and "verdict:" in out
    # the ground-truth check: one subject per generating model, each listed with its generator
    rec = read_recover(tmp_path / "demo" / "recover.nc")["model_recovery"]
    assert sorted(rec.generator_of.values.tolist()) == ["dra", "q_learning", "soft_q"]
    assert "per-subject recovery" in out and "BMS model frequencies vs the true mix" in out


def test_design_command(tmp_path, capsys):
    out = tmp_path / "design.nc"
    args = ["design", "--agent", "q_learning", "--agent", "q_learning:fix.alpha=0.02", "--task", "bandit:p=(0.8,0.2)",
            "--trials", "20", "40", "--subjects", "2", "--starts", "1", "-o", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "recommended (accuracy >= 0.9)" in printed
    import xarray as xr

    st = xr.open_dataset(out, group="study")
    assert st.accuracy.shape == (1, 2)
    assert (st.counts.sum(("generator", "model")).values == 4).all()
    assert out.with_suffix(".png").stat().st_size > 1000
    assert len(list(out.with_suffix(".cells").glob("*.nc"))) == 2
    assert main(args) == 0  # resumed from the cached cells: same file again
    st2 = xr.open_dataset(out, group="study")
    np.testing.assert_array_equal(st2.counts.values, st.counts.values)
    assert main(["design", "--agent", "q_learning", "--task", "bandit", "--trials", "20", "-o",
                 str(tmp_path / "d2.nc")]) == 2
    assert "at least two --agent" in capsys.readouterr().err
