"""Figures of the ``neurorl`` command's outputs, and the self-contained HTML report (``neurorl report``).

Every figure is drawn from the netCDF files written by ``neurorl fit``, ``compare``, ``recover`` and ``decode``
(read with :func:`neurorl.results.read_fit` and friends), so a report can be rebuilt from a directory of outputs at any
time. Figures are :class:`matplotlib.figure.Figure` objects made without ``pyplot`` (no GUI backend, no global
state); the report embeds them as base64 PNG in one HTML file with inline CSS and no external assets.

Contents
--------
:func:`fig_learning_curves`, :func:`fig_parameters`, :func:`fig_compare`, :func:`fig_model_recovery`,
:func:`fig_parameter_recovery`, :func:`fig_decoding`
    One figure each.
:func:`build_report`
    Find the outputs in a directory (by their ``neurorl_output`` attribute) and write ``report.html``.
:func:`headline`
    The headline numbers of a directory of outputs as text.

Choices [A]
-----------
* Learning curves: with the mouse bandit's ``high_port`` and ``block_trial`` covariates, P(choose the high port)
  against trials since the block switch (0-30), mean +- SEM over subjects, and each model's mean one-step-ahead
  predicted probability of that choice on the same trials; otherwise P(correct) in trial bins when the trials
  define a correct choice, else P(action 1).
* Fitted parameters are shown on the constrained scale (log axis for positive unbounded parameters); against the
  generating values when the data were a simulation of the same agent (the ``truth`` group of the fit file).
* Decoding time courses: the population score is the mean over units of the cross-validated R2, averaged over the
  decoded subjects; its null band is the 2.5-97.5 % range over pseudosession draws of the same average (draw ``d``
  of every subject averaged: the draws are independent across subjects). The difference panel shows candidate 2
  minus candidate 1 (``v_soft - v`` by default) with its null band; bins where the two-sided pseudosession p of
  the subject-averaged difference is below 0.05 are marked (no correction over time bins).
"""

from __future__ import annotations

import base64
import html
import io
import json
import time
from pathlib import Path

import numpy as np

__all__ = ["fig_learning_curves", "fig_parameters", "fig_compare", "fig_model_recovery", "fig_parameter_recovery",
           "fig_decoding", "build_report", "headline", "save", "find_outputs"]


def _figure(w, h, layout="constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(w, h), dpi=100, layout=layout)


def save(fig, path) -> list[Path]:
    """Write a figure as PNG; returns ``[path]`` (``[]`` when ``fig`` is None)."""
    if fig is None:
        return []
    from .results import atomic_output

    path = Path(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return [path]


def _png64(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


# ============================================================================ behaviour and parameters
def _subject_mean_sem(values):
    m = np.nanmean(values, axis=0)
    n = np.sum(np.isfinite(values), axis=0)
    sem = np.nanstd(values, axis=0, ddof=1) / np.sqrt(np.maximum(n, 1)) if values.shape[0] > 1 else np.zeros_like(m)
    return m, sem


def _curve(trials, prob, max_pos=30):
    """Per-subject curves (n, P) of ``prob`` (n, T) by block trial (or trial bin); returns (x, curves, xlabel)."""
    valid = trials["valid"].values.astype(bool)
    n, T = valid.shape
    if "block_trial" in trials:
        key = trials["block_trial"].values.astype(np.int64)
        keep = valid & (key <= max_pos)
        P, x, lab = max_pos + 1, np.arange(max_pos + 1), "trials since block switch"
    else:
        pos = np.cumsum(valid, axis=1) - 1
        size = max(1, int(np.ceil(pos.max(initial=0) / 20.0)))
        key = pos // size
        keep = valid
        P = int(key.max(initial=0)) + 1
        x, lab = np.arange(P) * size, f"trial (bins of {size})"
    out = np.full((n, P), np.nan)
    for i in range(n):
        k, v = key[i][keep[i]], prob[i][keep[i]]
        cnt = np.bincount(k, minlength=P)[:P]
        s = np.bincount(k, weights=v, minlength=P)[:P]
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = np.where(cnt > 0, s / np.maximum(cnt, 1), np.nan)
    return x, out, lab


def _target(trials):
    """(observed hit (n, T), index of the target action (n, T), label) for the learning curve."""
    ch = trials["choice"].values
    if "high_port" in trials:
        tgt = trials["high_port"].values.astype(np.int64)
        return (ch == tgt).astype(float), tgt, "P(choose the high port)"
    from .fitting.ppc import correct_choice

    hit = correct_choice(trials)
    if hit is not None and "p" not in trials:
        return hit, None, "P(correct)"
    return (ch == 1).astype(float), np.ones_like(ch), f"P(action {action_code(trials, 1)})"


def action_code(trials, action: int) -> str:
    """An action as the user coded it: 0-based in the data, shown 1-based when the choices were read 1-based
    (attribute ``one_based`` of :func:`neurorl.io.from_table`), with a note saying so."""
    based = trials.attrs.get("one_based") or []
    if isinstance(based, str):
        based = [based]
    return f"{action + 1} in your coding" if "choice" in based else str(action)


def estimator_description(method: str) -> str:
    """What an estimator of ``neurorl fit`` is, in one sentence (MLE has no priors)."""
    method = str(method).lower()
    if method == "mle":
        return ("MLE: maximum likelihood, no priors; each subject on its own, all at once with exact gradients and "
                "Hessians")
    if method == "map":
        return ("MAP: maximum a posteriori with the agents' default Normal priors on the unconstrained scale; each "
                "subject on its own, all at once with exact gradients and Hessians")
    if method == "emmap":
        return ("EM-MAP: hierarchical; a Normal group prior on the unconstrained scale is learnt from all subjects by "
                "expectation-maximisation and each subject is fitted by MAP under it")
    return method.upper() or "estimator not recorded"


def fig_learning_curves(fit):
    """Observed learning curve and each model's one-step-ahead prediction (module docstring [A])."""
    trials = fit["trials"]
    hit, tgt, ylabel = _target(trials)
    x, obs, xlabel = _curve(trials, hit)
    fig = _figure(6.4, 3.8)
    ax = fig.add_subplot()
    m, sem = _subject_mean_sem(obs)
    ax.errorbar(x, m, yerr=sem, fmt="o", color="k", ms=4, lw=1, label=f"data ({obs.shape[0]} subjects, ±SEM)")
    for k, (lab, mod) in enumerate(fit["models"].items()):
        pred = mod.get("predicted")
        if pred is None or tgt is None:
            continue
        pol = pred["policy"].transpose("subject", "trial", "action").values.astype(float)
        p = np.take_along_axis(pol, np.clip(tgt, 0, pol.shape[-1] - 1)[..., None], axis=-1)[..., 0]
        _, curves, _ = _curve(trials, p)
        # models whose predictions coincide must stay visible: earlier models are drawn wider underneath, and each
        # has its own marker at staggered positions
        n_mod = len(fit["models"])
        ax.plot(x, np.nanmean(curves, axis=0), lw=1.5 + 1.5 * (n_mod - 1 - k), color=f"C{k}",
                ls=("-", "--", "-.", ":")[k % 4], marker="osD^v"[k % 5], ms=4, markevery=(k % 3, 3), label=lab,
                zorder=2 + k)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1)
    ax.axhline(0.5, color="0.6", lw=0.8, ls=":")
    ax.legend(frameon=False, fontsize="small")
    ax.set_title("learning curves: data and one-step-ahead predictions at the estimates", fontsize="medium")
    return fig


def _param_specs(spec):
    from .results import agent_from_spec

    try:
        return {p.name: p for p in agent_from_spec(spec).params}
    except Exception:  # noqa: BLE001 - only used for axis scales
        return {}


def _truth_for(fit, spec):
    truth = fit.get("truth")
    if truth is None:
        return None
    agent = str(truth.attrs.get("agent", ""))
    return truth if agent == spec.get("name") and not spec.get("rt") else None


def fig_parameters(fit):
    """Fitted parameters per model (rows), against the generating values where known."""
    models = fit["models"]
    ncol = max(len(m["params"].data_vars) for m in models.values())
    fig = _figure(2.6 * max(ncol, 2), 2.4 * len(models) + 0.4)
    axes = fig.subplots(len(models), max(ncol, 2), squeeze=False)
    for r, (lab, m) in enumerate(models.items()):
        specs = _param_specs(m["spec"])
        truth = _truth_for(fit, m["spec"])
        names = list(m["params"].data_vars)
        for c in range(axes.shape[1]):
            ax = axes[r, c]
            if c >= len(names):
                ax.set_axis_off()
                continue
            nm = names[c]
            est = m["params"][nm].values.astype(float)
            p = specs.get(nm)
            pos = est[np.isfinite(est)]
            logscale = (p is not None and p.lower == 0.0 and not np.isfinite(p.upper) and pos.size > 0
                        and pos.min() > 0 and pos.max() / pos.min() > 20)
            se = None
            res = m.get("result")
            if res is not None and "se" in res and "param" in res["se"].dims and nm in res["se"]["param"]:
                se = res["se"].sel(param=nm).values.astype(float)
            se_bar = None if se is None else np.where(np.isfinite(se), se, 0.0)
            n_nan_se = 0 if se is None else int(np.sum(~np.isfinite(se)))
            if (se is not None and p is not None and "theta" in res and "se_theta" in res
                    and nm in res["theta"]["param"]):
                # +-1 SE on the fitted (unconstrained) scale mapped back: asymmetric, never past a bound (the
                # delta-method SE of a log- or logit-scale parameter can reach below 0)
                th = res["theta"].sel(param=nm).values.astype(float)
                st = np.nan_to_num(res["se_theta"].sel(param=nm).values.astype(float), nan=0.0)
                lo_b, hi_b = p.to_constrained(th - st), p.to_constrained(th + st)
                se_bar = np.vstack([np.clip(est - lo_b, 0, None), np.clip(hi_b - est, 0, None)])
            if truth is not None and nm in truth:
                tv = truth[nm].sel(subject=m["params"]["subject"].values).values.astype(float)
                ax.errorbar(tv, est, yerr=se_bar, fmt="o", ms=3.5, color=f"C{r}", elinewidth=0.8,
                            label="subject" + (" (± SE)" if se is not None else ""))
                lo, hi = np.nanmin(np.r_[tv, est]), np.nanmax(np.r_[tv, est])
                ax.plot([lo, hi], [lo, hi], "--", color="0.4", lw=1, label="identity (estimate = truth)")
                rr = np.corrcoef(np.log(tv) if logscale else tv, np.log(est) if logscale else est)[0, 1] \
                    if tv.size > 2 and np.std(tv) > 0 else np.nan
                ax.set_title(f"{lab}: {nm} (r = {rr:.2f})", fontsize="small")
                ax.set_xlabel(f"{nm} (true)")
                ax.set_ylabel(f"{nm} (estimate)")
                if logscale:
                    ax.set_xscale("log")
                    ax.set_yscale("log")
            else:
                jitter = np.random.default_rng(r * 31 + c).uniform(-0.15, 0.15, est.size)
                if se is not None:
                    ax.errorbar(jitter, est, yerr=se_bar, fmt="o", ms=3.5,
                                color=f"C{r}", alpha=0.8, elinewidth=0.8, label="subject (± SE)")
                else:
                    ax.scatter(jitter, est, s=14, color=f"C{r}", alpha=0.8, label="subject")
                ax.axhline(np.nanmedian(est), color="k", lw=1, label="median over subjects")
                ax.set_xlim(-0.5, 0.5)
                ax.set_xticks([])
                ax.set_xlabel("subjects (jittered)")
                ax.set_ylabel(f"{nm} (estimate)")
                ax.set_title(f"{lab}: {nm}", fontsize="small")
                if logscale:
                    ax.set_yscale("log")
            if n_nan_se:  # subjects without a standard error (Hessian not positive definite) are drawn without bars
                ax.text(0.02, 0.02, f"{n_nan_se} subject(s) without SE (Hessian not PD)", transform=ax.transAxes,
                        fontsize="xx-small", color="C3")
            if c == 0:  # one legend per model row: subject points (± SE) and the median line / identity line
                ax.legend(frameon=False, fontsize="x-small")
    fig.suptitle(f"fitted parameters ({fit['attrs'].get('method', '').upper()}, one point per subject; bars: ± 1 SE "
                 "on the fitted unconstrained scale, mapped back)", fontsize="medium")
    return fig


# ============================================================================ comparison and recovery
def fig_compare(cmp):
    """ΔBIC and ΔLaplace totals, random-effects BMS, and LOO Δelpd (when computed)."""
    table, bms, loo = cmp["table"], cmp["bms"], cmp["loo"]
    names = [str(m) for m in table.model.values]
    K = len(names)
    ncol = 3 if loo is not None else 2
    fig = _figure(4.0 * ncol, 0.45 * K + 2.6)
    axes = fig.subplots(1, ncol)
    y = np.arange(K)
    ax = axes[0]
    ax.barh(y - 0.2, table["delta_bic_total"].values, height=0.4, color="C0", label="ΔBIC (total)")
    if "delta_laplace_total" in table:
        ax.barh(y + 0.2, 2 * table["delta_laplace_total"].values, height=0.4, color="C1",
                label="2 × Δ Laplace log evidence")
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xlabel("difference to the best model (lower is better)")
    ax.legend(frameon=False, fontsize="small")
    ax.set_title("information criteria", fontsize="medium")
    ax = axes[1]
    f = bms["frequencies"].values
    ax.bar(y, f, yerr=bms["frequency_sd"].values, color="0.75", edgecolor="0.3", capsize=3, label="frequency")
    ax.plot(y, bms["ep"].values, "o", color="C0", label="exceedance p")
    ax.plot(y, bms["pxp"].values, "D", color="C3", mfc="none", label="protected exceedance p")
    ax.axhline(1.0 / K, ls="--", lw=0.8, color="0.4")
    ax.set_xticks(y)
    ax.set_xticklabels(names, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"random-effects BMS on {bms.attrs.get('evidence', '')} (BOR = {float(bms['bor']):.2g})",
                 fontsize="medium")
    ax.legend(frameon=False, fontsize="x-small")
    if loo is not None:
        ax = axes[2]
        order = [names.index(str(m)) for m in loo.model.values]
        poor = (loo["n_poor_approx"].values > 0) if "n_poor_approx" in loo else np.zeros(len(order), bool)
        yy = np.arange(len(order))
        for flag, style in ((False, dict(fmt="o", color="C2", label="reliable")),
                            (True, dict(fmt="x", color="C3", label="unreliable (Pareto k > 0.7 for some subject)"))):
            sel = poor == flag
            if sel.any():
                ax.errorbar(loo["delta_elpd"].values[sel], yy[sel], xerr=loo["se_delta"].values[sel], capsize=3,
                            **style)
        ax.legend(frameon=False, fontsize="x-small")
        ax.set_yticks(np.arange(len(order)))
        ax.set_yticklabels([names[i] for i in order])
        ax.invert_yaxis()
        ax.axvline(0, color="0.5", lw=0.8)
        ax.set_xlabel("Δ elpd_loo to the best (± paired SE)")
        ax.set_title("Laplace PSIS-LOO", fontsize="medium")
    return fig


def fig_model_recovery(ds):
    """Confusion and inversion matrices (``plot_model_recovery``)."""
    from .fitting.recovery import plot_model_recovery

    K = ds.sizes["model"]
    fig = _figure(2 * (1.2 * K + 2.2), 1.1 * K + 1.9, layout=None)  # the plot calls tight_layout itself
    axes = fig.subplots(1, 2)
    plot_model_recovery(ds, axes=axes)
    return fig


def fig_parameter_recovery(ds):
    """True vs estimated per parameter (``plot_parameter_recovery``)."""
    from .fitting.recovery import plot_parameter_recovery

    D = ds.sizes["param"]
    fig = _figure(3.3 * D, 3.4, layout=None)
    axes = fig.subplots(1, D, squeeze=False).ravel()
    plot_parameter_recovery(ds, axes=axes)
    return fig


# ============================================================================ decoding
def _decode_arrays(dec):
    """Subject-averaged population score (C, time), null (draw, C, time), diff (time), null diff (draw, time)."""
    subs = list(dec["subjects"].values())
    cands = [str(c) for c in subs[0]["candidate"].values]
    pop = np.mean([s["score"].mean("unit").transpose("candidate", ...).values for s in subs], axis=0)
    null = None
    if "null_score" in subs[0]:
        D = min(s.sizes["draw"] for s in subs)
        null = np.mean([s["null_score"].isel(draw=slice(0, D)).mean("unit").transpose("draw", "candidate", ...)
                        .values for s in subs], axis=0)
    return subs, cands, pop, null


def align_event(attrs) -> str:
    """The event the decoding times refer to, as recorded in the neural data (``align_event``)."""
    ev = str(attrs.get("align_event", "") or "").strip()
    return ev or "the alignment event (not named in the neural file)"


def time_label(attrs) -> str:
    """The x label of a decoding time course: seconds from the alignment event."""
    return f"time from {align_event(attrs)} (s)"


def unit_group_label(group) -> str:
    """A unit's group as shown in figures: untuned units are "untuned" ("null" names only null distributions; older
    synthetic data called untuned units "null")."""
    g = str(group)
    return "untuned" if g in ("null", "untuned") else f"encodes {g}"


def p_text(p, n_null) -> str:
    """A permutation p-value as text; at its floor ``1 / (n_null + 1)`` it reads "p ≤ floor" (no null draw reached
    the observed value; the true p may be smaller), never as an exact p."""
    p = float(p)
    if not np.isfinite(p):
        return "p not computed"
    if n_null:
        floor = 1.0 / (int(n_null) + 1)
        if p <= floor * (1 + 1e-9):
            return f"p ≤ {floor:.3g} (at its floor 1/({int(n_null)} + 1): no null draw reached it)"
    return f"p = {p:.3g}"


def fig_decoding(dec):
    """Population encoding time courses with pseudosession null bands, their difference, and units (module [A])."""
    from .decoding.nulls import p_value
    from .plotting.decoding import plot_time_course, plot_unit_comparison

    subs, cands, pop, null = _decode_arrays(dec)
    resolved = "time" in subs[0]["score"].dims
    fig = _figure(13.5, 3.9)
    a1, a2, a3 = fig.subplots(1, 3)
    times = subs[0]["time"].values if resolved else np.array([0.0])
    if resolved:
        xlab = time_label(dec["attrs"])
        for k, c in enumerate(cands[:2]):
            # each candidate's own pseudosession null band, in its colour and named in the legend
            plot_time_course(pop[k], None if null is None else null[:, k], times=times, ax=a1, label=f"{c} (observed)",
                             color=f"C{k}", ylabel="population CV R²", null_label=f"{c}: pseudosession null",
                             null_color=f"C{k}", xlabel=xlab)
        a1.legend(frameon=False, fontsize="x-small")
        a1.set_title(f"encoding of each candidate ({len(subs)} subject(s))", fontsize="medium")
        d = pop[1] - pop[0]
        nd = None if null is None else null[:, 1] - null[:, 0]
        sig = None
        n_null = 0 if nd is None else nd.shape[0]
        if nd is not None:
            mu = nd.mean(axis=0)
            sig = p_value(np.abs(d - mu), np.abs(nd - mu)) < 0.05
        plot_time_course(d, nd, times=times, ax=a2, significant=sig, chance=0.0,
                         label=f"{cands[1]} − {cands[0]} (observed)", color="C3", ylabel="difference of CV R²",
                         null_label="pseudosession null of the difference", xlabel=xlab)
        a2.legend(frameon=False, fontsize="x-small")
        floor = 1.0 / (n_null + 1) if n_null else None
        if floor is not None and floor >= 0.05:
            t2 = f"paired difference (no bar possible: p ≥ 1/({n_null} + 1) = {floor:.2g} with {n_null} nulls)"
        else:
            t2 = "paired difference (bar: two-sided pseudosession p < 0.05)"
        a2.set_title(t2, fontsize="medium")
        peak = int(np.argmax(np.abs(d)))
    else:
        a1.bar(np.arange(len(cands)), pop, color=[f"C{k}" for k in range(len(cands))])
        a1.set_xticks(np.arange(len(cands)))
        a1.set_xticklabels(cands)
        a1.set_ylabel("population CV R²")
        a2.set_axis_off()
        peak = None
    # units: score at the peak time of the difference, every subject's units
    xa, xb, groups = [], [], []
    unit_groups = json.loads(dec["attrs"]["unit_groups"]) if "unit_groups" in dec["attrs"] else None
    for s in subs:
        sc = s["excess"] if "excess" in s else s["score"]
        if resolved:
            sc = sc.isel(time=peak)
        xa.append(sc.sel(candidate=cands[0]).values)
        xb.append(sc.sel(candidate=cands[1]).values)
        if "group" in s.coords:
            groups.append(np.asarray(s["group"].values).astype(str))
        elif unit_groups is not None:
            groups.append(np.asarray(unit_groups))
    g = np.array([unit_group_label(x) for x in np.concatenate(groups)]) if len(groups) == len(subs) else None
    what = "score − null mean" if "excess" in subs[0] else "CV R²"
    plot_unit_comparison(np.concatenate(xa), np.concatenate(xb), ax=a3, groups=g,
                         labels=(f"{cands[0]} ({what})", f"{cands[1]} ({what})"))
    a3.set_title("units" + (f" at t = {times[peak]:.3f} s" if resolved else "") + " (colour: true tuning)"
                 if g is not None else "units", fontsize="medium")
    return fig


# ============================================================================ report
def find_outputs(directory) -> dict:
    """``{"fit": [...], "compare": [...], "recover": [...], "decode": [...], "ssm": [...]}`` paths of the outputs in a
    directory."""
    from .results import OUTPUT_ATTR
    from .results import nc_root_attrs as _nc_root_attrs

    found = {"fit": [], "compare": [], "recover": [], "decode": [], "ssm": []}
    for p in sorted(Path(directory).glob("*.nc")):
        try:
            kind = _nc_root_attrs(p).get(OUTPUT_ATTR)
        except OSError:
            continue
        if kind in found:
            found[kind].append(p)
    return found


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1180px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
h1{font-size:1.6em;margin-bottom:.2em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#666;font-size:.9em}.box{background:#f5f7fa;border:1px solid #dde3ea;border-radius:6px;padding:.8em 1.2em}
table{border-collapse:collapse;font-size:.88em;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#eef1f5}td:first-child,th:first-child{text-align:left}
img{max-width:100%;height:auto;border:1px solid #eee;margin:.4em 0}code,pre{background:#f3f3f3;font-size:.85em}
pre{padding:.6em;overflow-x:auto;white-space:pre-wrap}.note{color:#555;font-size:.92em}
"""


def _table(header, rows) -> str:
    h = "".join(f"<th>{html.escape(str(c))}</th>" for c in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        if not np.isfinite(v):
            return "–"
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3f}"
    return str(v)


def _img(fig, alt) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{_png64(fig)}">'


def _file_label(res) -> str:
    p = res.get("path")
    return f"<code>{html.escape(Path(p).name)}</code>" if p is not None else "(file not recorded)"


def _data_task(trials) -> str:
    """The task and title of a trials dataset as recorded in its attributes (the format preset if no task)."""
    a = trials.attrs
    parts = []
    if a.get("title"):
        parts.append(f"<b>{html.escape(str(a['title']))}</b>")
    if a.get("task"):
        parts.append(f"task <code>{html.escape(str(a['task']))}</code>")
    else:
        parts.append("no task recorded (a table read without <code>task=</code>: "
                     f"{a.get('n_states', '?')} state(s), {a.get('n_actions', '?')} actions)")
    if a.get("format"):
        parts.append(f"read with the format preset <code>{html.escape(str(a['format']))}</code>")
    if a.get("one_based"):
        parts.append(f"1-based codes in the file's {', '.join(map(str, a['one_based']))} column(s), shown in your "
                     "coding")
    return "; ".join(parts)


def _fit_section(fit) -> list[str]:
    out = []
    trials = fit["trials"]
    truth = fit["truth"]
    n, T = trials.sizes["subject"], trials.sizes["trial"]
    where = _file_label(fit)
    labels = ", ".join(html.escape(lab) for lab in fit["models"])
    out.append(f"<h2>Fit {where}: {labels}</h2>")
    out.append(f"<h3>Data of {where}</h3>")
    text = (f"<p><code>{html.escape(str(fit['attrs'].get('data', '')))}</code>: {n} subjects, up to {T} trials each, "
            f"{int(trials['valid'].sum())} valid choices; {_data_task(trials)}.")
    if truth is not None:
        gt = truth.attrs.get("ground_truth", f"simulated by {truth.attrs.get('agent', '?')}")
        text += f" The data are a simulation with known ground truth: {html.escape(str(gt))}."
    out.append(text + "</p>")
    out.append(f"<h3>Learning curves ({where})</h3>")
    out.append(_img(fig_learning_curves(fit), "learning curves"))
    out.append(f"<h3>Fitted parameters ({where})</h3>")
    out.append(_img(fig_parameters(fit), "fitted parameters"))
    rows = []
    for lab, m in fit["models"].items():
        truth_m = _truth_for(fit, m["spec"])
        res = m["result"]
        for nm in m["params"].data_vars:
            est = m["params"][nm].values.astype(float)
            r = np.nan
            if truth_m is not None and nm in truth_m:
                tv = truth_m[nm].sel(subject=m["params"]["subject"].values).values.astype(float)
                r = float(np.corrcoef(tv, est)[0, 1]) if np.std(tv) > 0 else np.nan
            rows.append((lab, nm, float(np.median(est)), float(np.percentile(est, 25)), float(np.percentile(est, 75)),
                         r, f"{int(res['converged'].sum())}/{res.sizes['subject']}"))
    out.append(_table(["model", "parameter", "median", "25 %", "75 %", "r with truth", "converged"], rows))
    for lab, m in fit["models"].items():
        if m.get("rt_check") is not None:
            out += _rt_check_html(m["rt_check"], fit, str(lab))
    warned = []
    for lab, m in fit["models"].items():
        for msg in json.loads(m["result"].attrs.get("fit_warnings", "[]")):
            warned.append(f"<li><b>{html.escape(str(lab))}</b>: {html.escape(msg)}</li>")
    if warned:
        out.append("<p><b>Fit warnings</b> (as printed by <code>neurorl fit</code>):</p><ul class='note'>"
                   + "".join(warned) + "</ul>")
    specs = "; ".join(f"<code>{html.escape(m['spec'].get('spec', lab))}</code>" for lab, m in fit["models"].items())
    out.append(f"<p class='note'>Models as fitted: {specs}. Estimator: "
               f"{html.escape(estimator_description(fit['attrs'].get('method', '')))}.</p>")
    return out


def _rt_check_html(check, res, label: str = "") -> list[str]:
    """The RT posterior predictive check of a fit read from a file (``res["path"]``;
    :func:`neurorl.ssm.ppc.fig_rt_check`) with its note."""
    from .ssm.ppc import fig_rt_check

    src = Path(res["path"]).name if res.get("path") is not None else "file not recorded"
    fig = fig_rt_check(check, source=src + (f", model {label}" if label else ""))
    a = check.attrs
    where = _file_label(res)
    label = html.escape(label)
    return [f"<h3>RT posterior predictive check{': ' + label if label else ''} ({where})</h3>",
            _img(fig, "RT posterior predictive check: quantile-probability plot and RT distributions by condition"),
            f"<p class='note'>{check.sizes['rep']} data sets simulated at the {html.escape(str(a.get('source', '')))} "
            f"with {html.escape(str(a.get('sampler', '')))}; conditions: {html.escape(str(a.get('by') or 'all'))}. "
            "Left: observed RT quantiles 0.1-0.9 (circles) of upper responses at x = P(upper) and of lower responses "
            "at 1 - P(upper), predicted medians with 95 % ranges over the simulated data sets. Right: signed RT "
            "(lower-boundary responses negative), data histogram and predictive density.</p>"]


def _ssm_section(fit) -> list[str]:
    """A DDM regression (:meth:`neurorl.ssm.DDM.save`): its coefficients and RT predictive check."""
    a, where, c = fit["attrs"], _file_label(fit), fit["coefs"]
    out = [f"<h2>DDM regression {where}</h2>",
           f"<p><code>{html.escape(str(a.get('formulas', '')))}</code>, {html.escape(str(a.get('method', '')).upper())}"
           f", {a.get('n_subjects')} subjects, {a.get('n_trials')} trials"
           + (f", data <code>{html.escape(str(a['data']))}</code>" if a.get("data") else "") + ".</p>"]
    rows = [(str(k), float(c["estimate"].values[i]), float(c["se"].values[i]), float(c["lower"].values[i]),
             float(c["upper"].values[i])) for i, k in enumerate(c["coef"].values)]
    out.append(_table(["coefficient (link scale)", "estimate", "se", "2.5 %", "97.5 %"], rows))
    return out + _rt_check_html(fit["rt_check"], fit)


def _compare_section(cmp) -> list[str]:
    table, bms, loo = cmp["table"], cmp["bms"], cmp["loo"]
    names = [str(m) for m in table.model.values]
    header = ["model", "log L", "BIC", "ΔBIC"]
    if "laplace_log_evidence" in table:
        header += ["Laplace log ev.", "Δ"]
    if loo is not None:
        header += ["elpd_loo", "SE", "Δelpd", "SE(Δ)", "high-k trials", "poor-Laplace subjects"]
    header += ["BMS freq.", "xp", "pxp"]
    rows = []
    for i, nm in enumerate(names):
        r = [nm, float(table.loglik_total[i]), float(table.bic_total[i]), float(table.delta_bic_total[i])]
        if "laplace_log_evidence" in table:
            r += [float(table.laplace_log_evidence_total[i]), float(table.delta_laplace_total[i])]
        if loo is not None:
            j = [str(m) for m in loo.model.values].index(nm)
            r += [float(loo.elpd_loo[j]), float(loo.se[j]), float(loo.delta_elpd[j]), float(loo.se_delta[j]),
                  int(loo.n_high_k[j]), int(loo.n_poor_approx[j]) if "n_poor_approx" in loo else "?"]
        r += [float(bms.frequencies[i]), float(bms.ep[i]), float(bms.pxp[i])]
        rows.append(r)
    out = [f"<h2>Model comparison {_file_label(cmp)}: {html.escape(', '.join(names))}</h2>"]
    ver = cmp.get("verdict")
    if ver is not None:  # the reconciled verdict (neurorl.fitting.verdict): one sentence, stated once
        out.append(f"<p><b>Verdict.</b> {html.escape(str(ver.attrs['sentence']))}</p>")
    out += [_img(fig_compare(cmp), "model comparison"), _table(header, rows)]
    note = (f"BMS: random-effects Bayesian model selection (VBA_groupBMC) on the per-subject "
            f"{html.escape(str(bms.attrs.get('evidence', '')))} log evidence; BOR = {float(bms['bor']):.3g} (the "
            "probability that all models are equally frequent); pxp = protected exceedance probability.")
    if loo is not None:
        note += (" LOO: leave-one-trial-out elpd from Laplace draws importance-corrected toward the posterior and "
                 "Pareto-smoothed (neurorl.fitting.loo); SE(Δ) is the paired standard error of the difference; "
                 "high-k trials have Pareto k above min(1 - 1/log10 S, 0.7) (their terms are unreliable); "
                 "poor-Laplace subjects have k > 0.7 for the posterior/proposal ratios themselves.")
        poor = [str(m) for m, v in zip(loo.model.values, loo.get("n_poor_approx", loo.n_high_k * 0).values) if v > 0]
        if poor:
            note += (f" <b>The LOO values of {', '.join(poor)} are unreliable</b>: their posteriors are too far from "
                     "the Laplace approximation for importance sampling to repair (treat their elpd as indicative "
                     "only; an MCMC fit gives exact PSIS-LOO).")
    out.append(f"<p class='note'>{note}</p>")
    return out


def _recover_section(rec) -> list[str]:
    out = []
    if rec["model_recovery"] is not None:
        ds = rec["model_recovery"]
        if ds.attrs.get("source") == "known generators":  # the demo: the cohort's own subjects, generators known
            return out + [f"<h2>Model recovery {_file_label(rec)}</h2>", _img(fig_model_recovery(ds), "model recovery"),
                          f"<p class='note'>The subjects of the data, whose generating models are known "
                          f"({html.escape(', '.join(f'{k} {v}' for k, v in json.loads(ds.attrs['n_subjects']).items()))}"
                          f" subjects), each assigned to "
                          f"the model of largest {html.escape(str(ds.attrs.get('criterion')))} log evidence: "
                          f"{ds.attrs.get('n_correct')} of {ds.sizes['subject']} correct. Rows: generating model; "
                          "columns: selected model.</p>"]
        out += [f"<h2>Model recovery {_file_label(rec)}</h2>", _img(fig_model_recovery(ds), "model recovery"),
                f"<p class='note'>{ds.attrs.get('n_subjects')} simulated subjects per generating model, "
                f"{ds.attrs.get('n_trials')} trials each on {html.escape(str(ds.attrs.get('task')))}, fitted by "
                f"{ds.attrs.get('estimator')} and selected by {ds.attrs.get('criterion')}. Rows: generating model; "
                "columns: selected model. Models with the same choice likelihood cannot be told apart by choices "
                "whatever the criterion: on a one-state bandit soft Q-learning is Q-learning with beta = 1/tau and "
                "alpha = eta, so their rows split by numerical noise. DRA's precision dynamics change the choices of "
                "a two-armed bandit only slightly, so a few hundred trials rarely repay its extra parameter under "
                "BIC; tasks that vary frequency and stakes separate it (analyses/model_recovery.py).</p>"]
    for lab, ds in rec["parameter_recovery"].items():
        out += [f"<h2>Parameter recovery {_file_label(rec)}: {html.escape(lab)}</h2>",
                _img(fig_parameter_recovery(ds), lab)]
    return out


def _decode_section(dec) -> list[str]:
    subs, cands, pop, null = _decode_arrays(dec)
    a = dec["attrs"]
    out = [f"<h2>Decoding {_file_label(dec)}: {html.escape(str(a.get('model', '')))}</h2>",
           _img(fig_decoding(dec), "decoding time courses")]
    rows = []
    for lab, s in dec["subjects"].items():
        sc = s["score"].mean("unit")
        # population_diff is candidate 1 - candidate 2 (compare_latents); shown as candidate 2 - candidate 1, the
        # sign of the figure and the headline (the two-sided p does not depend on the sign)
        d = -s["population_diff"].isel(pair=0)
        if "time" in d.dims:
            i = int(np.argmax(np.abs(d.values)))
            dv, pv = float(d.values[i]), float(s["p_population"].isel(pair=0).values[i]) if "p_population" in s \
                else np.nan
            peaks = [float(sc.sel(candidate=c).max()) for c in cands]
        else:
            dv, pv = float(d), float(s["p_population"].isel(pair=0)) if "p_population" in s else np.nan
            peaks = [float(sc.sel(candidate=c)) for c in cands]
        best = s["best"].values
        frac = {c: float(np.mean(best == c)) for c in cands}
        ptxt = p_text(pv, a.get("n_nulls"))
        rows.append([lab, *peaks, f"{dv:+.4f}", ptxt, *[frac[c] for c in cands]])
    header = ["subject", *[f"peak R² {c}" for c in cands], f"{cands[1]} − {cands[0]} at its peak",
              "p (pseudosession, two-sided)",
              *[f"units·bins best: {c}" for c in cands]]
    out.append(_table(header, rows))
    out.append(f"<p class='note'>Latents of <code>{html.escape(str(a.get('model', '')))}</code> replayed at each "
               f"subject's estimates; times in seconds from {html.escape(align_event(a))}; differences are "
               f"{html.escape(cands[1])} − {html.escape(cands[0])} throughout; "
               f"OLS encoding y ~ 1 + latent per unit and time bin, blocked 5-fold "
               f"cross-validated R²; {a.get('n_nulls')} pseudosessions per subject (task regenerated, the fitted agent "
               "re-simulated) give the null of every score and of the paired difference. 'best' assigns each unit "
               "and bin to the candidate with the larger score above its own null.</p>")
    return out


def headline(directory) -> str:
    """The headline numbers of a directory of outputs (best models, recovery, decoding) as plain text; every line
    names the file it comes from."""
    from .results import read_compare, read_decode, read_fit, read_recover

    found = find_outputs(directory)
    lines = ["headline results:"]
    for p in found["fit"]:
        fit = read_fit(p)
        for lab, m in fit["models"].items():
            truth = _truth_for(fit, m["spec"])
            if truth is None:
                continue
            rs = []
            for nm in m["params"].data_vars:
                if nm in truth:
                    tv = truth[nm].sel(subject=m["params"]["subject"].values).values.astype(float)
                    if np.std(tv) > 0:
                        rs.append(f"r({nm}) = {np.corrcoef(tv, m['params'][nm].values)[0, 1]:.2f}")
            if rs:
                lines.append(f"  [{p.name}] parameters of the generating model {lab} vs ground truth: "
                             f"{', '.join(rs)}")
    for p in found["compare"]:
        c = read_compare(p)
        t, b = c["table"], c["bms"]
        names = [str(m) for m in t.model.values]
        if c.get("verdict") is not None:
            lines.append(f"  [{p.name}] verdict: {c['verdict'].attrs['sentence']}")
            continue
        lines.append(f"  [{p.name}] by BIC: {t.attrs['best_bic']}; BMS pxp: " + ", ".join(
            f"{n} {float(v):.2f}" for n, v in zip(names, b["pxp"].values)) + f" (BOR {float(b['bor']):.2f})")
        if c["loo"] is not None:
            lo = c["loo"]
            poor = lo["n_poor_approx"].values if "n_poor_approx" in lo else np.zeros(lo.sizes["model"])
            lines.append(f"  [{p.name}] LOO Δelpd (± SE): " + ", ".join(
                f"{str(m)} {float(d):.1f}±{float(s):.1f}" + (" (unreliable)" if k > 0 else "")
                for m, d, s, k in zip(lo.model.values, lo.delta_elpd.values, lo.se_delta.values, poor))
                + (f"; by LOO: {lo.attrs['best']}" if "best" in lo.attrs else ""))
    for p in found["recover"]:
        r = read_recover(p)
        if r["model_recovery"] is not None:
            ds = r["model_recovery"]
            lines.append(f"  [{p.name}] model recovery, P(selected = generator): " + ", ".join(
                f"{str(m)} {float(ds['confusion'].values[i, i]):.2f}" for i, m in enumerate(ds.model.values)))
    for p in found["decode"]:
        d = read_decode(p)
        subs, cands, pop, null = _decode_arrays(d)
        diff = pop[1] - pop[0]
        if diff.ndim:
            i = int(np.argmax(np.abs(diff)))
            txt = f"{cands[1]} − {cands[0]} population CV R² at its peak: {diff[i]:+.4f}"
            if null is not None:
                nd = null[:, 1, i] - null[:, 0, i]
                from .decoding.nulls import p_value

                pv = float(p_value(abs(diff[i] - nd.mean()), np.abs(nd - nd.mean())))
                txt += f" (pseudosession {p_text(pv, nd.shape[0])})"
        else:
            txt = f"{cands[1]} − {cands[0]} population CV R²: {float(diff):+.4f}"
        lines.append(f"  [{p.name}] decoding ({len(subs)} subjects): {txt}")
    return "\n".join(lines)


def build_report(directory, *, out=None, title: str | None = None) -> Path:
    """Write a self-contained HTML report of the outputs in ``directory``; returns its path.

    Parameters
    ----------
    directory : path
        Holds files written by ``neurorl fit``/``compare``/``recover``/``decode`` and
        :meth:`neurorl.ssm.DDM.save` (any names; found by their ``neurorl_output`` attribute) and optionally
        ``demo_timings.json``.
    out : path, optional
        The HTML file (default ``directory/report.html``).
    title : str, optional
    """
    from . import __version__
    from .results import atomic_output, check_not_input, read_compare, read_decode, read_fit, read_recover, read_ssm

    directory = Path(directory)
    found = find_outputs(directory)
    if not any(found.values()):
        raise ValueError(f"{str(directory)!r} holds no outputs of neurorl fit/compare/recover/decode/ssm (*.nc "
                         "files with a neurorl_output attribute)")
    out = Path(out) if out is not None else directory / "report.html"
    check_not_input(out, [p for kind in found.values() for p in kind] + [directory / "demo_timings.json"])
    timings = None
    tpath = directory / "demo_timings.json"
    if tpath.exists():
        timings = json.loads(tpath.read_text())
    title = title or ("neurorl demo report" if timings is not None else f"neurorl report: {directory.name}")
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f"<p class='meta'>neurorl {__version__} · generated {time.strftime('%Y-%m-%d %H:%M:%S')} · "
             f"outputs in <code>{html.escape(str(directory.resolve()))}</code></p>"]
    try:
        head = headline(directory)
        parts.append("<div class='box'><pre>" + html.escape(head) + "</pre></div>")
    except Exception as exc:  # noqa: BLE001 - the report must still be written
        parts.append(f"<p class='note'>(headline unavailable: {html.escape(str(exc))})</p>")
    for p in found["fit"]:
        parts += _fit_section(read_fit(p))
    for p in found["compare"]:
        parts += _compare_section(read_compare(p))
    for p in found["recover"]:
        parts += _recover_section(read_recover(p))
    for p in found["decode"]:
        parts += _decode_section(read_decode(p))
    for p in found["ssm"]:
        parts += _ssm_section(read_ssm(p))
    parts.append("<h2>Reproduce</h2>")
    cmds = []
    for kind in ("fit", "compare", "recover", "decode", "ssm"):
        for p in found[kind]:
            from .results import nc_root_attrs as _nc_root_attrs

            c = _nc_root_attrs(p).get("command")
            if c:
                cmds.append(str(c))
    if cmds:
        parts.append("<pre>" + html.escape("\n".join(cmds)) + "</pre>")
    if timings is not None:
        parts.append(_table(["stage", "seconds"], [(t, float(s)) for t, s in timings["stages"]]
                            + [("total before the report", float(timings["total_s"]))]))
    files = sorted(q.name for q in directory.iterdir() if q.is_file())
    parts.append("<p class='note'>Files in the output directory: " + ", ".join(
        f"<code>{html.escape(f)}</code>" for f in files) + "</p>")
    parts.append("</body></html>")
    with atomic_output(out) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return out
