"""``neurorl fit-bayes``: the hierarchical Bayesian fit from the command line (errors fast; one tiny fit, slow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import neurorl as nr
from neurorl.cli import main


def _bandit4arm_file(path, n_subjects=3, n_trials=40, seed=1):
    """A simulated data set written in hBayesDM's bandit4arm layout (1-based choices, losses as magnitudes)."""
    tr = nr.simulate("bandit4arm_4par", "bandit4arm", n_subjects=n_subjects, n_trials=n_trials, rng=seed,
                     params={"Arew": 0.3, "Apun": 0.2, "R": 4.0, "P": 3.0}).trials
    rows = [{"subjID": f"s{s}", "choice": int(c) + 1, "gain": g, "loss": abs(lo)}
            for s in range(n_subjects) for c, g, lo in zip(tr["choice"].values[s], tr["gain"].values[s],
                                                          tr["loss"].values[s])]
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return tr


def test_samplers_match_the_fitting_module():
    from neurorl.cli.bayes import SAMPLERS
    from neurorl.fitting import bayes

    assert SAMPLERS == bayes.SAMPLERS


def test_missing_loss_column_is_a_usage_error(tmp_path, capsys):
    tr = nr.simulate("q_learning", "bandit", n_subjects=2, n_trials=20, rng=0).trials
    path = tmp_path / "data.nc"
    nr.write_trials(tr, path)
    rc = main(["fit-bayes", str(path), "--agent", "bandit4arm_4par", "--priors", "hbayesdm", "-o",
               str(tmp_path / "out.nc"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and "bandit4arm_4par" in err and "'loss'" in err
    assert not (tmp_path / "out.nc").exists()


def test_hbayesdm_priors_need_an_hbayesdm_model(tmp_path, capsys):
    path = tmp_path / "b4.txt"
    _bandit4arm_file(path, n_subjects=2, n_trials=10)
    rc = main(["fit-bayes", str(path), "--format", "hbayesdm:bandit4arm", "--agent", "q_learning", "--priors",
               "hbayesdm", "-o", str(tmp_path / "out.nc"), "-q"])
    assert rc == 2 and "hbayesdm_priors" in capsys.readouterr().err


def test_bad_arguments(tmp_path, capsys):
    path = tmp_path / "b4.txt"
    _bandit4arm_file(path, n_subjects=2, n_trials=10)
    base = ["fit-bayes", str(path), "--format", "hbayesdm:bandit4arm", "--agent", "bandit4arm_4par"]
    assert main(base + ["--draws", "0"]) == 2
    assert "--draws must be at least 1" in capsys.readouterr().err
    assert main(base + ["-o", str(path)]) == 2  # the output may not be the input
    assert main(base + ["--priors", "stan"]) == 2  # argparse: not a choice
    # --centred with hBayesDM's (non-centred) hierarchy: a usage error naming both, before any sampling
    assert main(base + ["--priors", "hbayesdm", "--centred", "-o", str(tmp_path / "c.nc"), "-q"]) == 2
    err = capsys.readouterr().err
    assert "centred" in err and "hbayesdm" in err and not (tmp_path / "c.nc").exists()
    assert main(base + ["--parametrization", "centered"]) == 2  # argparse: not a choice


@pytest.mark.slow
def test_fit_bayes_end_to_end_on_an_hbayesdm_file(tmp_path, capsys):
    """One call on an hBayesDM-layout file: the file holds the posterior, summaries and both LOOs, and they agree
    with what ArviZ computes from the stored draws."""
    import arviz as az

    from neurorl.results import read_fit_bayes

    path = tmp_path / "bandit4arm_exampleData.txt"
    _bandit4arm_file(path)
    out = tmp_path / "fb.nc"
    rc = main(["fit-bayes", str(path), "--format", "hbayesdm:bandit4arm", "--agent", "bandit4arm_4par",
               "--priors", "hbayesdm", "--draws", "40", "--tune", "40", "--chains", "2", "--cores", "1",
               "--seed", "3", "-q", "-o", str(out)])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "LOOIC (subj.)" in text and "group posterior mean" in text and f"wrote {out}" in text
    f = read_fit_bayes(out)
    assert f["attrs"]["priors"] == "hbayesdm" and list(f["models"]) == ["bandit4arm_4par"]
    m = f["models"]["bandit4arm_4par"]
    assert m["spec"]["priors"] == "hbayesdm" and m["spec"]["draws"] == 40
    # hBayesDM's hierarchy: non-centred, chains from the prior location, and the output says so
    assert set(m["spec"]["parametrization"].values()) == {"non-centred"} and m["spec"]["init"] == "prior"
    assert f"bandit4arm_4par: sampler {m['spec']['sampler']}, every row non-centred, chains started at the prior" in text
    post = m["idata"].posterior
    assert post.sizes["chain"] == 2 and post.sizes["draw"] == 40
    # hBayesDM's transform: R = 30 Phi_approx(mu_pr), our group value of the raw group mean
    raw = post["group_mean"].sel(param="R").values
    phi = 1 / (1 + np.exp(-(0.07056 * raw ** 3 + 1.5976 * raw)))
    np.testing.assert_allclose(post["R_group"].values, 30 * phi, rtol=1e-9)
    # params are the posterior means per subject
    np.testing.assert_allclose(m["params"]["Arew"].values, post["Arew"].mean(("chain", "draw")).values, rtol=1e-12)
    # both LOOs recomputed from the stored log-likelihood
    loo = m["loo"]
    ll = m["idata"].log_likelihood["loglik"]
    trial = az.loo(az.InferenceData(posterior=post, log_likelihood=m["idata"].log_likelihood))
    np.testing.assert_allclose(float(loo["elpd_loo"].sel(level="trial")), trial.elpd_loo, rtol=1e-9)
    sums = ll.groupby("subject").sum("obs").rename(subject="subj")
    subj = az.loo(az.InferenceData(posterior=post, log_likelihood=sums.to_dataset(name="loglik")))
    np.testing.assert_allclose(float(loo["looic"].sel(level="subject")), -2 * subj.elpd_loo, rtol=1e-9)
    assert int(loo["n_terms"].sel(level="subject")) == 3 and int(loo["n_terms"].sel(level="trial")) == 120
    assert "R_group" in m["summary"]["variable"].values
