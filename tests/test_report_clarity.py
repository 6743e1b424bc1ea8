"""Report clarity (issue 13, item 6): figures label what they show, and the report and the terminal agree."""

import json

import numpy as np
import pytest
import xarray as xr

import neurorl as nr
from neurorl import report

pytest.importorskip("matplotlib")


def _legend_texts(ax):
    leg = ax.get_legend()
    return [] if leg is None else [t.get_text() for t in leg.get_texts()]


# ----------------------------------------------------------------------------- p-values and labels
def test_p_value_at_its_floor_says_so():
    # 200 nulls: the smallest permutation p is 1 / 201
    assert report.p_text(1.0 / 201, 200).startswith("p ≤ 0.00498")
    assert "floor 1/(200 + 1)" in report.p_text(1.0 / 201, 200)
    assert report.p_text(0.25, 200) == "p = 0.25"
    assert report.p_text(np.nan, 200) == "p not computed"


def test_time_axis_names_the_alignment_event_and_untuned_units_are_not_null():
    assert report.time_label({"align_event": "decision (synthetic)"}) == "time from decision (synthetic) (s)"
    assert "not named" in report.time_label({})
    assert report.unit_group_label("null") == "untuned" == report.unit_group_label("untuned")
    assert report.unit_group_label("v_soft") == "encodes v_soft"
    from neurorl.decoding.synthetic import synthetic_population

    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=1, n_trials=60, rng=0)
    neural, truth = synthetic_population(sim.latents.isel(subject=0), encode={"v": 0.5}, n_units=4, n_time=2,
                                         rng=1)
    assert "null" not in truth["group"].values.tolist()
    assert neural.attrs["align_event"] == "trial onset (synthetic)"


def _fake_decode(n_null=19, event="decision (synthetic)"):
    """A decode output with two candidates, 4 units (2 tuned to v_soft, 2 untuned), 5 time bins."""
    rng = np.random.default_rng(0)
    cands, U, Tm = ["v", "v_soft"], 4, 5
    times = 0.05 + 0.1 * np.arange(Tm)
    score = rng.uniform(0, 0.02, (2, U, Tm))
    score[1, :2] += 0.05  # v_soft better on the tuned units
    null = rng.uniform(0, 0.02, (n_null, 2, U, Tm))
    pop = score.mean(axis=1)
    ds = xr.Dataset(
        {"score": (("candidate", "unit", "time"), score),
         "null_score": (("draw", "candidate", "unit", "time"), null),
         "population_diff": (("pair", "time"), (pop[0] - pop[1])[None]),  # compare_latents: candidate 1 - 2
         "p_population": (("pair", "time"), np.full((1, Tm), 1.0 / (n_null + 1))),
         "best": (("unit", "time"), np.array([["v_soft"] * Tm] * 2 + [["v"] * Tm] * 2))},
        coords={"candidate": cands, "unit": np.arange(U), "time": times, "pair": ["v-v_soft"],
                "group": ("unit", ["v_soft", "v_soft", "null", "null"])})
    return {"subjects": {"m01": ds}, "attrs": {"model": "soft_q", "n_nulls": n_null, "align_event": event},
            "path": None}


def test_decoding_figure_names_event_both_null_bands_and_untuned_units():
    fig = report.fig_decoding(_fake_decode())
    a1, a2, a3 = fig.axes[:3]
    assert a1.get_xlabel() == a2.get_xlabel() == "time from decision (synthetic) (s)"
    labels = _legend_texts(a1)
    # one null band per candidate, each named (they used to merge into one grey "null" entry)
    assert "v: pseudosession null 2.5-97.5%" in labels and "v_soft: pseudosession null 2.5-97.5%" in labels
    assert "pseudosession null of the difference 2.5-97.5%" in _legend_texts(a2)
    units = _legend_texts(a3)
    assert sorted(units) == ["encodes v_soft", "untuned"] and not any("null" in u for u in units)
    # 19 nulls: p >= 1/20 = 0.05, so no bin can be marked at p < 0.05 and the title says so
    assert "no bar possible" in a2.get_title() and "1/(19 + 1)" in a2.get_title()


def test_decoding_table_uses_the_figure_sign_and_marks_the_p_floor():
    dec = _fake_decode(n_null=99)
    text = "".join(report._decode_section(dec))
    s = dec["subjects"]["m01"]
    d = -s["population_diff"].isel(pair=0).values  # v_soft - v, as in the figure
    i = int(np.argmax(np.abs(d)))
    assert "v_soft − v at its peak" in text
    assert f"{d[i]:+.4f}" in text and d[i] > 0  # v_soft encodes better: positive in the shown convention
    assert "p ≤ 0.01 (at its floor 1/(99 + 1)" in text


# ----------------------------------------------------------------------------- learning curves and parameters
def _fake_fit(n=5, T=120, with_truth=False):
    sim = nr.simulate("q_learning", "mouse_bandit", n_subjects=n, n_trials=T, rng=3)
    lat = nr.replay("q_learning", sim.trials, sim.params)
    pred = xr.Dataset({"policy": lat["policy"]})
    rng = np.random.default_rng(1)
    params = xr.Dataset({"alpha": ("subject", rng.uniform(0.2, 0.5, n)), "beta": ("subject", rng.uniform(2, 6, n))},
                        coords={"subject": sim.trials.subject.values})
    se = np.column_stack([np.full(n, 0.05), np.r_[np.nan, np.full(n - 1, 0.5)]])
    spec = {q.name: q for q in nr.make_agent("q_learning").params}
    theta = np.column_stack([spec[k].to_unconstrained(params[k].values) for k in ("alpha", "beta")])
    se_theta = np.column_stack([np.full(n, 0.3), np.r_[np.nan, np.full(n - 1, 2.0)]])  # wide on the log scale
    res = xr.Dataset({"se": (("subject", "param"), se), "theta": (("subject", "param"), theta),
                      "se_theta": (("subject", "param"), se_theta), "converged": ("subject", np.ones(n, bool))},
                     coords={"subject": params.subject.values, "param": ["alpha", "beta"]})
    model = {"predicted": pred, "params": params, "result": res, "spec": {"name": "q_learning"}}
    truth = None
    if with_truth:
        truth = sim.params.assign_attrs(agent="q_learning")
    # two models with identical predictions: both must stay visible
    return {"trials": sim.trials, "models": {"q_learning": model, "soft_q": dict(model)}, "truth": truth,
            "attrs": {"method": "map"}}


def test_learning_curves_of_coinciding_models_are_both_visible():
    fig = report.fig_learning_curves(_fake_fit())
    ax = fig.axes[0]
    lines = {ln.get_label(): ln for ln in ax.get_lines()}
    a, b = lines["q_learning"], lines["soft_q"]
    np.testing.assert_allclose(a.get_ydata(), b.get_ydata())  # the predictions coincide
    assert a.get_linestyle() != b.get_linestyle() and a.get_marker() != b.get_marker()
    assert a.get_linewidth() > b.get_linewidth()  # the one underneath is wider
    assert {"q_learning", "soft_q"} <= set(_legend_texts(ax))


@pytest.mark.parametrize("with_truth", [False, True])
def test_parameter_panels_have_labels_legend_and_standard_errors(with_truth):
    fig = report.fig_parameters(_fake_fit(with_truth=with_truth))
    axes = [ax for ax in fig.axes if ax.axison]
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel()
        # the SE bars: one errorbar container per panel, with a vertical segment per subject
        bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
        assert len(bars) == 1 and len(bars[0].lines[2][0].get_segments()) == 5
    rows = [axes[0], axes[2]]  # first panel of each model row holds the legend
    for ax in rows:
        labels = _legend_texts(ax)
        assert "subject (± SE)" in labels
        assert ("identity (estimate = truth)" if with_truth else "median over subjects") in labels
    # bars are +-1 SE on the unconstrained scale mapped back: for beta (log scale) never below 0, and asymmetric
    beta_panel = axes[1]
    seg = [c for c in beta_panel.containers if type(c).__name__ == "ErrorbarContainer"][0].lines[2][0].get_segments()
    bottoms = np.array([s[:, 1].min() for s in seg])
    tops = np.array([s[:, 1].max() for s in seg])
    est = _fake_fit()["models"]["q_learning"]["params"]["beta"].values
    np.testing.assert_allclose(bottoms[1:], est[1:] * np.exp(-2.0), rtol=1e-9)
    np.testing.assert_allclose(tops[1:], est[1:] * np.exp(2.0), rtol=1e-9)
    # the subject without a standard error is said so
    assert any("1 subject(s) without SE" in t.get_text() for t in beta_panel.texts)
