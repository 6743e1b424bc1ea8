"""Simulation and posterior predictive checks of DDM regressions: quantile-probability plots, RT distributions.

Draws use :func:`neurorl.fitting.wiener.sample_wiener` (the path on a 1 ms grid with exact Brownian-bridge crossing
probabilities between grid points; the time within the crossing step is its midpoint, an error of at most 0.5 ms).

:func:`predictive_check` simulates the data set ``n_rep`` times -- at the MAP estimate, or at ``n_rep`` posterior
draws of a NUTS fit (evenly spaced over the pooled chains) -- and summarises, per condition (the ``by`` columns),
the probability of an upper-boundary response and the RT quantiles (0.1, 0.3, 0.5, 0.7, 0.9) of each response, for
the data and for every replicate. :func:`plot_qp` draws the quantile-probability plot (x: response probability,
y: RT quantiles; upper responses at ``p``, lower at ``1 - p``), :func:`plot_rt_distributions` the signed RT
histograms (lower-boundary responses negative) with the predictive density; :func:`fig_rt_check` puts both in
one figure for reports (:mod:`neurorl.report`).

RL-DDM fits (an agent with :class:`~neurorl.fitting.observation.WienerRT`, e.g. ``neurorl fit --rt wiener``):
:func:`rl_predictive_check` replays the observed choices and outcomes at the fitted parameters (one-step-ahead:
every trial's drift ``v_t`` comes from the values learnt from the *observed* history, :func:`neurorl.replay`, the
latent ``drift``), draws ``n_rep`` (response, RT) per trial with the same sampler, and summarises them as
:func:`predictive_check` does. Response 1 is action 1 (the upper boundary); the conditions are ``n_bins``
quantile bins of the fitted value difference ``Q(1) - Q(0)`` pooled over trials, so P(upper) runs from low (values
favour action 0) to high across conditions, as in a quantile-probability plot of difficulty levels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from ..fitting.wiener import sample_wiener
from ..tasks.base import as_rng

__all__ = ["QUANTILES", "fig_rt_check", "plot_qp", "plot_rt_distributions", "predictive_check",
           "rl_predictive_check", "simulate_ddm"]

QUANTILES = (0.1, 0.3, 0.5, 0.7, 0.9)


def simulate_ddm(params: pd.DataFrame, rng=None, *, dt: float = 1e-3) -> pd.DataFrame:
    """Draw one response and RT per row of ``params``.

    Parameters
    ----------
    params : DataFrame
        Columns ``v, a, z, t0`` and optionally ``sv`` (effective values: ``response`` 1 is the upper boundary).
    rng : int, Generator or None
    dt : float
        Grid step of the sampler (s).

    Returns
    -------
    DataFrame
        ``params`` with columns ``response`` (1 upper, 0 lower) and ``rt`` (s).
    """
    rng = as_rng(rng)
    for c in ("v", "a", "z", "t0"):
        if c not in params.columns:
            raise ValueError(f"simulate_ddm: params has no column {c!r}")
    sv = params["sv"].to_numpy(float) if "sv" in params.columns else 0.0
    resp, rt = sample_wiener(params["v"].to_numpy(float), params["a"].to_numpy(float),
                             params["z"].to_numpy(float), params["t0"].to_numpy(float), rng, sv=sv, dt=dt)
    out = params.copy()
    out["response"] = resp
    out["rt"] = rt
    return out


def _theta_draws(fit, n_rep, rng):
    if hasattr(fit, "theta_draws_"):
        td = fit.theta_draws_
        idx = np.linspace(0, td.shape[0] - 1, n_rep).round().astype(int)
        return td[idx]
    return np.repeat(fit.theta_[None, :], n_rep, axis=0)


def _summary(resp, rt, groups, n_groups):
    q = len(QUANTILES)
    p_up = np.full(n_groups, np.nan)
    quant = np.full((n_groups, 2, q), np.nan)
    for g in range(n_groups):
        m = groups == g
        if not m.any():
            continue
        p_up[g] = resp[m].mean()
        for k, r in enumerate((0, 1)):
            sel = rt[m & (resp == r)]
            if sel.size >= 2:
                quant[g, k] = np.quantile(sel, QUANTILES)
    return p_up, quant


def predictive_check(fit, *, by=None, n_rep: int = 100, rng=None) -> xr.Dataset:
    """Simulate the fitted data set ``n_rep`` times and summarise by condition.

    Parameters
    ----------
    fit : DDM
        A fitted :class:`neurorl.ssm.DDM` (MAP or NUTS).
    by : str or list of str, optional
        Columns of the data defining conditions (default: one condition).
    n_rep : int
    rng : int, Generator or None

    Returns
    -------
    xarray.Dataset
        ``p_upper`` (condition) and ``rt_quantile`` (condition, response, quantile) of the data;
        ``pred_p_upper`` (rep, condition), ``pred_rt_quantile`` (rep, condition, response, quantile);
        ``pred_rt`` and ``pred_response`` (rep, obs) the simulated data themselves.
    """
    fit._check_fitted()
    rng = as_rng(rng)
    df, layout = fit.data_, fit.layout_
    by = [] if by is None else ([by] if isinstance(by, str) else list(by))
    missing = [c for c in by if c not in df.columns]
    if missing:
        raise ValueError(f"predictive_check: data has no column(s) {missing}")
    if by:
        keys = df[by].astype(str).apply(lambda r: " / ".join(f"{c} = {r[c]}" for c in by), axis=1)
        labels, groups = np.unique(keys.to_numpy(), return_inverse=True)
    else:
        labels, groups = np.array(["all"]), np.zeros(len(df), int)
    thetas = _theta_draws(fit, n_rep, rng)
    sims = []
    for th in thetas:
        P, _ = layout.trial_params(th)
        resp, rt = sample_wiener(P[0], P[1], P[2], P[3], rng, sv=P[4])
        if fit.lapse_:
            lapse = rng.random(len(df)) < P[5]
            resp = np.where(lapse, rng.integers(0, 2, len(df)), resp)
            rt = np.where(lapse, rng.uniform(0, fit.rt_max, len(df)), rt)
        sims.append((resp, rt))
    return _by_condition(labels, groups, df["_resp"].to_numpy(), df["_rt"].to_numpy(), sims, {
        "by": ",".join(by), "source": "posterior draws" if hasattr(fit, "theta_draws_") else "MAP estimate",
        "sampler": "sample_wiener (exact bridge crossing, dt = 1 ms)"})


def plot_qp(check: xr.Dataset, ax=None, *, title: str | None = None):
    """Quantile-probability plot of a :func:`predictive_check` result.

    For every condition, the observed RT quantiles (markers) of upper responses at x = P(upper) and of lower
    responses at x = 1 - P(upper); the predictive mean quantiles (lines through the quantiles of each response, one
    colour per quantile) with their 95 % range across replicates (error bars).
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 4.5))
    colors = plt.cm.viridis(np.linspace(0, 0.9, check.sizes["quantile"]))
    p = check["p_upper"].values
    pp = np.nanmean(check["pred_p_upper"].values, axis=0)
    for j, qv in enumerate(check["quantile"].values):
        for r in (0, 1):
            xo = p if r == 1 else 1 - p
            xp = pp if r == 1 else 1 - pp
            yo = check["rt_quantile"].values[:, r, j]
            yp = check["pred_rt_quantile"].values[:, :, r, j]
            lo, mid, hi = np.nanpercentile(yp, [2.5, 50, 97.5], axis=0)
            ax.errorbar(xp, mid, yerr=[mid - lo, hi - mid], fmt="none", ecolor=colors[j], alpha=0.6)
            ax.scatter(xp, mid, marker="_", s=80, color=colors[j],
                       label=f"predicted q{qv:g}" if r == 1 else None)
            ax.scatter(xo, yo, marker="o", facecolors="none", edgecolors=colors[j],
                       label=f"observed q{qv:g}" if r == 1 else None)
    for g, lab in enumerate(check["condition"].values):
        if np.isfinite(p[g]):
            ax.annotate(str(lab), (p[g], np.nanmax(check["rt_quantile"].values[g, 1])), fontsize=7,
                        textcoords="offset points", xytext=(0, 6), ha="center")
    ax.set_xlabel("response probability (upper at p, lower at 1 - p)")
    ax.set_ylabel("RT quantile (s)")
    ax.set_xlim(-0.02, 1.02)
    ax.set_title(title or f"Quantile-probability plot ({check.attrs.get('source', '')}; by "
                          f"{check.attrs.get('by') or 'all trials'})", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    return ax


def plot_rt_distributions(check: xr.Dataset, *, bins: int = 40, axes=None):
    """Signed RT histograms per condition (lower-boundary responses negative): data (bars) and the predictive
    distribution pooled over replicates (line)."""
    import matplotlib.pyplot as plt

    labels = check["condition"].values
    if axes is None:
        _, axes = plt.subplots(1, len(labels), figsize=(3.2 * len(labels), 3), squeeze=False)
        axes = axes[0]
    cond = check["obs_condition"].values
    srt = np.where(check["obs_response"].values == 1, 1, -1) * check["obs_rt"].values
    prt = np.where(check["pred_response"].values == 1, 1, -1) * check["pred_rt"].values
    lim = np.nanquantile(np.abs(srt), 0.99) * 1.1
    edges = np.linspace(-lim, lim, bins + 1)
    for ax, lab in zip(axes, labels):
        m = cond == lab
        ax.hist(srt[m], bins=edges, density=True, alpha=0.4, color="gray", label="data")
        h, _ = np.histogram(prt[:, m].ravel(), bins=edges, density=True)
        ax.plot(0.5 * (edges[1:] + edges[:-1]), h, color="C3", label="predicted")
        ax.set_title(str(lab), fontsize=9)
        ax.set_xlabel("signed RT (s; lower boundary < 0)")
        ax.set_ylabel("density (1/s)")
    axes[0].legend(fontsize=7)
    return axes


def _by_condition(labels, groups, obs_resp, obs_rt, sims, attrs) -> xr.Dataset:
    """:func:`predictive_check`'s Dataset from observed data and simulated ``(resp, rt)`` replicates."""
    G = len(labels)
    obs_p, obs_q = _summary(obs_resp, obs_rt, groups, G)
    n_rep = len(sims)
    pred_p = np.empty((n_rep, G))
    pred_q = np.empty((n_rep, G, 2, len(QUANTILES)))
    for i, (resp, rt) in enumerate(sims):
        pred_p[i], pred_q[i] = _summary(resp, rt, groups, G)
    return xr.Dataset(
        {"p_upper": ("condition", obs_p), "rt_quantile": (("condition", "response", "quantile"), obs_q),
         "pred_p_upper": (("rep", "condition"), pred_p),
         "pred_rt_quantile": (("rep", "condition", "response", "quantile"), pred_q),
         "pred_rt": (("rep", "obs"), np.array([r for _, r in sims])),
         "pred_response": (("rep", "obs"), np.array([c for c, _ in sims], dtype=np.int64)),
         "obs_condition": ("obs", np.asarray(labels)[groups]), "obs_rt": ("obs", obs_rt),
         "obs_response": ("obs", obs_resp.astype(int))},
        coords={"condition": labels, "response": [0, 1], "quantile": list(QUANTILES), "rep": np.arange(n_rep)},
        attrs=attrs)


def rl_predictive_check(agent, trials: xr.Dataset, params, *, n_rep: int = 50, n_bins: int = 4,
                        rng=None) -> xr.Dataset:
    """One-step-ahead predictive check of an RL-DDM's RTs (module docstring), in :func:`predictive_check`'s format.

    Parameters
    ----------
    agent : WithRT
        The fitted joint agent, with a Wiener RT model (``WienerRT`` or ``SigmoidWienerRT``).
    trials : xarray.Dataset
        The fitted trials (RTs in seconds).
    params : xarray.Dataset or dict
        Fitted parameters per subject, or per ``(subject, trial)`` for covariate-modulated ones (an estimator's
        ``trial_params()``).
    n_rep : int
    n_bins : int
        Quantile bins of the value difference that define the conditions.
    rng : int, Generator or None
    """
    from ..simulate import replay

    if not getattr(agent, "wiener", False):
        raise ValueError(f"rl_predictive_check: {getattr(agent, 'name', agent)!r} has no Wiener RT model")
    rng = as_rng(rng)
    lat = replay(agent, trials, params)
    valid = trials["valid"].values.astype(bool) & np.isfinite(trials["rt"].values)
    n, T = valid.shape
    full = {}
    for name in ("a", "w", "t0", "sv"):
        key = agent.rt_names.get(name)
        if key is None or not any(p.name == key for p in agent.all_params):
            continue
        val = params[key] if key in params else agent.fixed.get(key)
        if val is None:
            continue
        v = np.asarray(getattr(val, "values", val), dtype=float)
        if getattr(val, "dims", None) == ("trial", "subject") or (v.ndim == 2 and v.shape == (T, n)):
            v = v.T
        full[name] = np.broadcast_to(v[:, None] if v.ndim == 1 else v, (n, T))
    drift = lat["drift"].transpose("subject", "trial").values
    dq = lat[agent.value].transpose("subject", "trial", ...).values
    dq = dq[..., 1] - dq[..., 0]
    v, a, w, t0 = drift[valid], full["a"][valid], full["w"][valid], full["t0"][valid]
    sv = full["sv"][valid] if "sv" in full else 0.0
    edges = np.unique(np.quantile(dq[valid], np.linspace(0, 1, n_bins + 1)))
    groups = np.clip(np.searchsorted(edges, dq[valid], side="right") - 1, 0, len(edges) - 2)
    labels = np.array([f"Q1-Q0 in [{edges[g]:.2f}, {edges[g + 1]:.2f}]" for g in range(len(edges) - 1)])
    obs_resp = trials["choice"].values[valid].astype(float)
    obs_rt = trials["rt"].values[valid].astype(float)
    sims = [sample_wiener(v, a, w, t0, rng, sv=sv) for _ in range(n_rep)]
    return _by_condition(labels, groups, obs_resp, obs_rt, sims, {
        "by": "bins of the fitted value difference Q(1) - Q(0)",
        "source": "estimates, one step ahead (drift from the values learnt from the observed history)",
        "sampler": "sample_wiener (exact bridge crossing, dt = 1 ms)", "response": "1 = action 1 (upper boundary)"})


def fig_rt_check(check: xr.Dataset, *, source: str = "", title: str | None = None):
    """The quantile-probability plot and the RT distributions by condition in one figure (for reports).

    ``source`` (the file the fit was read from) is written in the title; axes carry their units (s)."""
    from matplotlib.figure import Figure

    G = check.sizes["condition"]
    fig = Figure(figsize=(5.5 + 2.6 * G, 3.8), dpi=100, layout="constrained")
    gs = fig.add_gridspec(1, 1 + G, width_ratios=[2.0] + [1.0] * G)
    plot_qp(check, ax=fig.add_subplot(gs[0, 0]), title="quantile-probability plot")
    plot_rt_distributions(check, axes=[fig.add_subplot(gs[0, 1 + g]) for g in range(G)])
    fig.suptitle(title or (f"RT posterior predictive check ({check.attrs.get('source', '')}; "
                           f"{check.sizes['rep']} simulated data sets, {check.attrs.get('sampler', '')})"
                           + (f" -- {source}" if source else "")), fontsize="medium")
    return fig
