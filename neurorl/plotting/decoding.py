"""Decoding figures: score time courses with null bands, temporal generalisation maps, per-unit comparisons.

Reference: decoding.md §3 (time-resolved decoding, temporal generalisation), §4-§5 (null distributions, cluster
correction), §6 (per-unit comparison of candidate latents). Every function draws on ``ax`` (a new figure when None)
and returns the Axes; inputs are NumPy arrays or the xarray objects returned by :mod:`neurorl.decoding`.

Assumptions
-----------
[A] The null band is the pointwise ``band`` percentile interval of the null scores (default 2.5-97.5 %).
[A] Significant bins/cells are marked, not tested here: pass a boolean mask or the result of
:func:`neurorl.decoding.nulls.cluster_mass`.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["plot_time_course", "plot_temporal_generalization", "plot_unit_comparison"]


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
    return ax


def _mask(significant, shape, owner):
    if significant is None:
        return None
    if hasattr(significant, "significant") and hasattr(significant, "null_max"):  # ClusterResult
        significant = significant.significant
    m = np.asarray(significant, bool)
    if m.shape != shape:
        raise ValueError(f"{owner}: significant has shape {m.shape}; expected {shape}")
    return m


def _runs(mask):
    """(start, stop) index pairs of the True runs of a 1-D mask."""
    d = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1)))


def plot_time_course(score, null=None, *, times=None, significant=None, band=(2.5, 97.5), chance=None, ax=None,
                     label: str | None = "observed", color=None, ylabel: str | None = None,
                     null_label: str = "null", null_color=None, xlabel: str | None = None):
    """Decoding score over time, with the null band and significant clusters.

    Parameters
    ----------
    score : array or DataArray (time,)
        Observed scores (e.g. ``decode(..., time="resolved").score``).
    null : array or DataArray (n_draws, time), optional
        Null scores (pseudosessions); drawn as the pointwise ``band`` interval and median.
    times : array, optional
        Time coordinates (default: the DataArray's ``time`` or bin indices).
    significant : bool array (time,) or ClusterResult, optional
        Bins to mark with a bar under the curve.
    band : (float, float)
        Percentiles of the null band.
    chance : float, optional
        Horizontal reference line (e.g. 0 for R², 0.5 for balanced accuracy).
    ax : matplotlib Axes, optional
    label, color, ylabel : optional
    null_label : str
        What the null is (e.g. ``"v: pseudosession null"``); the band's legend entry is ``"<null_label>
        2.5-97.5%"`` and the median's ``"<null_label> median"``, so two null bands on one axes stay apart.
    null_color : optional
        Colour of the null band and median (default grey).
    xlabel : str, optional
        Default ``"time (s)"`` for a DataArray with a time coordinate, else ``"time"``; name the alignment event
        (e.g. ``"time from choice (s)"``) where it is known.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    s = np.asarray(score, float).ravel()
    if times is None:
        times = score["time"].values if isinstance(score, xr.DataArray) and "time" in score.coords \
            else np.arange(s.size)
    t = np.asarray(times, float)
    if t.shape != s.shape:
        raise ValueError(f"plot_time_course: times has shape {t.shape}; scores {s.shape}")
    if null is not None:
        nv = np.asarray(null.transpose(..., "time").values if isinstance(null, xr.DataArray) and "time" in null.dims
                        else null, float)
        nv = nv.reshape(-1, s.size)
        lo, hi = np.nanpercentile(nv, band, axis=0)
        ax.fill_between(t, lo, hi, color="0.8" if null_color is None else null_color,
                        alpha=0.7 if null_color is None else 0.2, lw=0,
                        label=f"{null_label} {band[0]:g}-{band[1]:g}%")
        ax.plot(t, np.nanmedian(nv, axis=0), color="0.5" if null_color is None else null_color, lw=1, ls="--",
                label=f"{null_label} median")
    line, = ax.plot(t, s, color=color, lw=2, label=label)
    if chance is not None:
        ax.axhline(chance, color="k", lw=0.8, ls=":")
    m = _mask(significant, s.shape, "plot_time_course")
    if m is not None and m.any():
        lo_y, hi_y = ax.get_ylim()
        y = lo_y + 0.03 * (hi_y - lo_y)
        dt = np.median(np.diff(t)) if t.size > 1 else 1.0
        for a, b in _runs(m):
            ax.plot([t[a] - dt / 2, t[b - 1] + dt / 2], [y, y], color=line.get_color(), lw=4, solid_capstyle="butt")
    ax.set_xlabel(xlabel or ("time (s)" if isinstance(score, xr.DataArray) else "time"))
    ax.set_ylabel(ylabel or (score.attrs.get("metric", "score") if isinstance(score, xr.DataArray) else "score"))
    if label is not None or null is not None:
        ax.legend(frameon=False, fontsize="small")
    return ax


def plot_temporal_generalization(scores, *, times=None, significant=None, ax=None, cmap: str = "RdBu_r",
                                 center: float | None = None, colorbar: bool = True):
    """Temporal generalisation map (train time on y, test time on x).

    Parameters
    ----------
    scores : array or DataArray (train_time, test_time)
        From :func:`neurorl.decoding.decoders.temporal_generalization`.
    times : array, optional
        Bin times (default: the DataArray's coordinates or indices).
    significant : bool array or ClusterResult, optional
        Cells outlined by a contour.
    ax : matplotlib Axes, optional
    cmap : str
    center : float, optional
        Value at the colour map's centre (symmetric limits around it); default
        0 for data with both signs, else no centring.
    colorbar : bool

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    a = np.asarray(scores, float)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"plot_temporal_generalization: expected a square (train_time, test_time) map, got {a.shape}")
    if times is None:
        times = scores["train_time"].values if isinstance(scores, xr.DataArray) and "train_time" in scores.coords \
            else np.arange(a.shape[0])
    t = np.asarray(times, float)
    dt = np.median(np.diff(t)) if t.size > 1 else 1.0
    extent = (t[0] - dt / 2, t[-1] + dt / 2, t[0] - dt / 2, t[-1] + dt / 2)
    if center is None and np.nanmin(a) < 0 < np.nanmax(a):
        center = 0.0
    kw = {}
    if center is not None:
        r = np.nanmax(np.abs(a - center))
        kw = {"vmin": center - r, "vmax": center + r}
    im = ax.imshow(a, origin="lower", extent=extent, cmap=cmap, aspect="auto", interpolation="nearest", **kw)
    ax.plot([extent[0], extent[1]], [extent[2], extent[3]], color="k", lw=0.6, ls=":")
    m = _mask(significant, a.shape, "plot_temporal_generalization")
    if m is not None and m.any():
        ax.contour(t, t, m.astype(float), levels=[0.5], colors="k", linewidths=1.0)
    ax.set_xlabel("test time")
    ax.set_ylabel("train time")
    if colorbar:
        ax.figure.colorbar(im, ax=ax, label=scores.attrs.get("metric", "score") if isinstance(scores, xr.DataArray)
                           else "score")
    return ax


def plot_unit_comparison(score_a, score_b=None, *, significant=None, labels=None, ax=None, groups=None):
    """Per-unit scatter of two candidates' held-out scores with the identity line.

    Parameters
    ----------
    score_a : array (unit,) or the Dataset of :func:`neurorl.decoding.compare.compare_latents`
        Scores of the first candidate, or a comparison result (its first two
        candidates are plotted; ``excess`` over the null when available, and
        ``p_diff <= 0.05`` marks units).
    score_b : array (unit,), optional
        Scores of the second candidate (required with arrays).
    significant : bool array (unit,), optional
        Units drawn filled (others hollow).
    labels : (str, str), optional
        Axis labels.
    ax : matplotlib Axes, optional
    groups : array (unit,), optional
        A colour per distinct group (e.g. the true tuning of synthetic units).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = _axes(ax)
    if isinstance(score_a, xr.Dataset):
        res = score_a
        what = "excess" if "excess" in res else "score"
        cand = res["candidate"].values[:2]
        var = res[what]
        if "time" in var.dims:
            raise ValueError("plot_unit_comparison: pool over time first (compare_latents(..., time='pooled'))")
        a, b = var.sel(candidate=cand[0]).values, var.sel(candidate=cand[1]).values
        if significant is None and "p_diff" in res:
            significant = res["p_diff"].isel(pair=0).values <= 0.05
        if labels is None:
            suffix = " (score - null mean)" if what == "excess" else " (CV R²)"
            labels = (f"{cand[0]}{suffix}", f"{cand[1]}{suffix}")
    else:
        if score_b is None:
            raise ValueError("plot_unit_comparison: give score_b with array inputs")
        a, b = np.asarray(score_a, float).ravel(), np.asarray(score_b, float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"plot_unit_comparison: scores have shapes {a.shape} and {b.shape}")
    sig = np.ones(a.shape, bool) if significant is None else np.asarray(significant, bool).ravel()
    if sig.shape != a.shape:
        raise ValueError(f"plot_unit_comparison: significant has shape {sig.shape}; expected {a.shape}")
    g = np.zeros(a.shape, int) if groups is None else np.asarray(groups)
    for k, name in enumerate(np.unique(g)):
        sel = g == name
        color = f"C{k % 10}"
        lab = None if groups is None else str(name)
        ax.scatter(a[sel & sig], b[sel & sig], s=18, color=color, label=lab)
        ax.scatter(a[sel & ~sig], b[sel & ~sig], s=18, facecolors="none", edgecolors=color)
    finite = np.isfinite(a) & np.isfinite(b)
    if finite.any():
        lo = float(min(a[finite].min(), b[finite].min()))
        hi = float(max(a[finite].max(), b[finite].max()))
        pad = 0.05 * (hi - lo if hi > lo else 1.0)
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="k", lw=0.8, ls="--")
    x_label, y_label = labels if labels is not None else ("candidate a", "candidate b")
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if groups is not None:
        ax.legend(frameon=False, fontsize="small")
    return ax
