"""Results out: `neurorl fit --format ... --csv`, `neurorl export FIT.nc --csv`, `MLE.to_dataframe()`, and reports
of a folder of mixed fits labelled by file, model, task and estimator.

Numbers are checked against independent computations: each subject's log-likelihood at the exported estimates by a
plain NumPy Q-learning loop, AIC/BIC by hand, the group summary from the per-subject rows with NumPy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp

import neurorl as nr
from neurorl.cli import main


def _ql_loglik(alpha, beta, choice, reward):
    q = np.zeros(2)
    ll = 0.0
    for c, r in zip(choice, reward):
        ll += beta * q[c] - logsumexp(beta * q)
        q[c] += alpha * (r - q[c])
    return ll


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """hBayesDM bandit2arm file (choice 1/2, outcome 1/-1) of 3 simulated subjects, fitted by MLE from the CLI."""
    d = tmp_path_factory.mktemp("export")
    sim = nr.simulate("q_learning", nr.make_task("bandit", p=(0.8, 0.3)), n_subjects=3, n_trials=50,
                      params={"alpha": 0.3, "beta": 3.0}, rng=4)
    t = nr.to_table(sim.trials)
    df = pd.DataFrame({"subjID": t.subject.map(lambda s: f"sub{s}"), "trial": t.trial + 1,
                       "choice": t.choice + 1, "outcome": np.where(t.reward > 0, 1, -1)})
    df.to_csv(d / "bandit2arm_exampleData.txt", sep="\t", index=False)
    rc = main(["fit", str(d / "bandit2arm_exampleData.txt"), "--format", "hbayesdm:bandit2arm", "--agent",
               "q_learning", "--method", "mle", "--starts", "2", "-o", str(d / "fit.nc"), "--csv", "--quiet"])
    assert rc == 0
    return d, df


def test_fit_csv_tables_match_independent_numbers(fitted):
    d, df = fitted
    est = pd.read_csv(d / "fit_estimates.csv")
    assert set(est.columns) >= {"model", "subject", "param", "estimate", "se", "loglik", "converged", "hessian_pd",
                                "aic", "bic"}
    assert list(est.subject.unique()) == ["sub0", "sub1", "sub2"]
    for s, g in est.groupby("subject"):
        rows = df[df.subjID == s]
        a, b = g.set_index("param").estimate[["alpha", "beta"]]
        ll = _ql_loglik(a, b, rows.choice.to_numpy() - 1, rows.outcome.to_numpy(float))
        np.testing.assert_allclose(g.loglik.iloc[0], ll, rtol=1e-6)
        np.testing.assert_allclose(g.bic.iloc[0], -2 * ll + 2 * np.log(len(rows)), rtol=1e-6)
        assert (g.se > 0).all()
    grp = pd.read_csv(d / "fit_group.csv").set_index("param")
    for p in ("alpha", "beta"):
        v = est[est.param == p].estimate.to_numpy()
        np.testing.assert_allclose(grp.loc[p, ["mean", "sd", "median"]].to_numpy(float),
                                   [v.mean(), v.std(ddof=1), np.median(v)], rtol=1e-9)
    models = pd.read_csv(d / "fit_models.csv")
    np.testing.assert_allclose(models.bic_total[0], est.drop_duplicates("subject").bic.sum(), rtol=1e-9)


def test_export_command_and_api_agree(fitted, tmp_path, capsys):
    d, _ = fitted
    assert main(["export", str(d / "fit.nc"), "--csv", "--prefix", str(tmp_path / "again")]) == 0
    a = pd.read_csv(d / "fit_estimates.csv")
    b = pd.read_csv(tmp_path / "again_estimates.csv")
    pd.testing.assert_frame_equal(a, b)
    assert main(["export", str(d / "fit.nc")]) == 2  # --csv is required
    capsys.readouterr()
    assert main(["export", str(d / "bandit2arm_exampleData.txt"), "--csv"]) == 2  # not a fit file
    assert "bandit2arm_exampleData.txt" in capsys.readouterr().err


def test_estimator_to_dataframe():
    sim = nr.simulate("q_learning", nr.make_task("bandit", p=(0.8, 0.3)), n_subjects=2, n_trials=40,
                      params={"alpha": 0.3, "beta": 3.0}, rng=2)
    from neurorl.fitting import MLE

    est = MLE("q_learning", n_starts=1, rng=0, progress=False).fit(sim.trials)
    df = est.to_dataframe()
    assert len(df) == 4 and list(df.param[:2]) == ["alpha", "beta"]
    np.testing.assert_allclose(df.estimate.to_numpy().reshape(2, 2), est.result_["estimate"].values)
    np.testing.assert_allclose(df.se.to_numpy().reshape(2, 2), est.result_["se"].values)


def test_report_labels_files_models_task_and_estimator(fitted, tmp_path):
    import shutil

    d, _ = fitted
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(d / "fit.nc", folder / "bandit_fit.nc")
    sim = nr.simulate("q_learning", nr.make_task("bandit", p=(0.8, 0.3)), n_subjects=3, n_trials=30,
                      params={"alpha": [0.2, 0.4, 0.6], "beta": [2.0, 3.0, 4.0]}, rng=0)
    nr.write_simulation(sim, folder / "sim.nc")
    assert main(["fit", str(folder / "sim.nc"), "--agent", "q_learning", "--method", "map", "--starts", "1",
                 "-o", str(folder / "sim_fit.nc"), "--quiet", "--no-figures"]) == 0
    from neurorl.report import build_report, headline

    html = build_report(folder).read_text()
    sections = {sec.split("</h2>")[0]: sec for sec in html.split("<h2>Fit ")[1:]}
    assert "Fit <code>bandit_fit.nc</code>: q_learning" in html and "Fit <code>sim_fit.nc</code>: q_learning" in html
    assert "MAP: maximum a posteriori" in sections["<code>sim_fit.nc</code>: q_learning"]
    assert "[sim_fit.nc] parameters of the generating model q_learning" in headline(folder)
    assert "task <code>bandit</code>" in html and "hbayesdm:bandit2arm" in html
    assert "task ?" not in html
    mle = sections["<code>bandit_fit.nc</code>: q_learning"]
    assert "MLE: maximum likelihood, no priors" in mle and "Normal priors" not in mle
    assert "1-based codes in the file's choice column(s)" in html


def test_action_codes_follow_one_based():
    from neurorl.report import action_code

    df = pd.DataFrame({"subjID": [1, 1], "choice": [1, 2], "outcome": [1, -1]})
    from neurorl.formats import from_format

    ds = from_format(df, "hbayesdm:bandit2arm")
    assert action_code(ds, 1) == "2 in your coding"
    assert action_code(nr.from_table(df.assign(choice=[0, 1]), columns={"subject": "subjID",
                                                                        "reward": "outcome"}), 1) == "1"


def test_report_does_not_import_the_cli():
    import subprocess
    import sys

    code = "import neurorl.report, sys; print('neurorl.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
