"""RT posterior predictive checks in the HTML report: DDM regressions (DDM.save) and RL-DDM fits (neurorl fit --rt
wiener).

References independent of the code under test: the observed response proportions and RT quantiles of each condition
computed here from the data with pandas / numpy; the figure's axis labels and the report's text.
"""

from __future__ import annotations

import numpy as np
import pytest

import neurorl as nr
from neurorl.cli import main
from neurorl.report import build_report
from neurorl.results import read_fit, read_ssm
from neurorl.ssm import DDM
from neurorl.ssm.ppc import QUANTILES, fig_rt_check

from test_ssm import _simulate

ALT = "RT posterior predictive check: quantile-probability plot and RT distributions by condition"


def _labels(fig):
    return [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes]


def test_ddm_fit_file_and_report_show_the_rt_check(tmp_path, capsys):
    from neurorl.ssm import kernel

    df = _simulate()
    kernel._KERNELS.clear()  # as in a new process: the kernel is loaded from the disk cache (or compiled)
    fit = DDM("v ~ 1 + x", "a ~ 1 + theta:C(conf)", progress=True).fit(df)
    # loading or compiling the likelihood is a step of its own in the progress output, and MAP needs only the
    # order-2 executable (value, gradient and Hessian in one)
    err = capsys.readouterr().err
    assert "DDM likelihood kernel (order 2: log density, gradient and Hessian" in err and "order 1" not in err
    assert err.index("DDM likelihood kernel") < err.index("DDM EM-MAP: started")
    fit.save(tmp_path / "ddm_fit.nc", by="conf", n_rep=4, data="simulated.csv")
    r = read_ssm(tmp_path / "ddm_fit.nc")
    chk = r["rt_check"]
    for c in (0, 1):
        sel = df[df["conf"] == c]
        lab = f"conf = {c}"
        assert float(chk["p_upper"].sel(condition=lab)) == pytest.approx(sel["response"].mean())
        q = np.quantile(sel.loc[sel["response"] == 1, "rt"], QUANTILES)
        np.testing.assert_allclose(chk["rt_quantile"].sel(condition=lab, response=1).values, q)
    assert chk.sizes["rep"] == 4 and chk["pred_rt"].shape == (4, len(df))
    fig = fig_rt_check(chk, source="ddm_fit.nc")
    labels = _labels(fig)
    assert ("response probability (upper at p, lower at 1 - p)", "RT quantile (s)") in labels
    assert ("signed RT (s; lower boundary < 0)", "density (1/s)") in labels
    assert "ddm_fit.nc" in fig._suptitle.get_text()
    html = build_report(tmp_path).read_text()
    assert ALT in html and "ddm_fit.nc" in html and "DDM regression" in html and "a:theta:C(conf)[1]" in html


@pytest.mark.slow
def test_rlddm_fit_file_and_report_show_the_rt_check(tmp_path):
    from neurorl.fitting.joint import with_rt
    from neurorl.fitting.observation import WienerRT

    agent = with_rt("q_learning", WienerRT(fixed={"w": 0.5}))
    sim = nr.simulate(agent, nr.make_task("bandit", p=(0.8, 0.3)), n_subjects=2, n_trials=60, rng=5)
    nr.write_trials(sim.trials, tmp_path / "rl.csv")
    assert main(["fit", str(tmp_path / "rl.csv"), "--agent", "q_learning", "--rt", "wiener", "--starts", "1",
                 "-o", str(tmp_path / "rl_fit.nc"), "--quiet", "--no-figures"]) == 0
    fit = read_fit(tmp_path / "rl_fit.nc")
    chk = fit["models"]["q_learning+wiener"]["rt_check"]
    valid = sim.trials["valid"].values.astype(bool)
    choice, rt = sim.trials["choice"].values[valid], sim.trials["rt"].values[valid]
    # every valid trial is in exactly one condition; pooled, the observed P(upper) is P(action 1)
    n_g = np.array([np.sum(chk["obs_condition"].values == c) for c in chk["condition"].values])
    assert n_g.sum() == valid.sum()
    assert float(np.sum(chk["p_upper"].values * n_g) / n_g.sum()) == pytest.approx(choice.mean())
    np.testing.assert_allclose(np.sort(chk["obs_rt"].values), np.sort(rt))
    assert chk.sizes["rep"] == 30 and np.all(chk["pred_rt"].values > 0)
    html = build_report(tmp_path).read_text()
    assert ALT in html and "RT posterior predictive check: q_learning+wiener" in html and "rl_fit.nc" in html


def test_rl_predictive_check_per_subject_and_per_trial_parameters_agree():
    """The check at per-subject parameters equals the one at the same values given per trial (same draws), and its
    observed summaries are the data's, counted here."""
    import xarray as xr

    from neurorl.fitting.joint import with_rt
    from neurorl.fitting.observation import WienerRT
    from neurorl.ssm.ppc import rl_predictive_check

    agent = with_rt("q_learning", WienerRT(fixed={"w": 0.5}))
    sim = nr.simulate(agent, nr.make_task("bandit", p=(0.8, 0.3)), n_subjects=3, n_trials=40, rng=2)
    free = {k: sim.params[k] for k in ("alpha", "v_scale", "a", "t0")}
    one = rl_predictive_check(agent, sim.trials, xr.Dataset(free), n_rep=3, n_bins=3, rng=7)
    per_trial = dict(free)
    per_trial["a"] = sim.params["a"].expand_dims(trial=sim.trials["trial"].values).transpose("subject", "trial")
    two = rl_predictive_check(agent, sim.trials, xr.Dataset(per_trial), n_rep=3, n_bins=3, rng=7)
    np.testing.assert_array_equal(one["pred_rt"].values, two["pred_rt"].values)
    assert one.sizes["condition"] == 3
    choice = sim.trials["choice"].values.ravel()
    for c in one["condition"].values:
        m = one["obs_condition"].values == c
        assert float(one["p_upper"].sel(condition=c)) == pytest.approx(one["obs_response"].values[m].mean())
    assert sorted(one["obs_response"].values) == sorted(choice)
    # the drift of the draws is v_scale * (Q1 - Q0): conditions with larger value differences choose action 1 more
    p = one["pred_p_upper"].values.mean(0)
    assert p[0] < p[-1]
