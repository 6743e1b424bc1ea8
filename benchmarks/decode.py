"""Benchmark: mass-univariate OLS encoding analysis with a 1,000-pseudosession null, against a statsmodels loop.

Data: one simulated session (Q-learning on the mouse bandit, 400 trials) and a synthetic Poisson population of
100 units x 40 time bins (4,000 targets) encoding ``v`` and ``rpe`` with slow drift (decoding.md §7).
Analysis (decoding.md §2, §4, §8): align by trial label, design with 6 columns (intercept, v, rpe, entropy,
choice, reward), OLS for all targets (beta, t, p, CPD, R^2), then the pseudosession null for the CPD of ``v``:
1,000 sessions of the same agent (same parameters) simulated at once with ``neurorl.simulate`` (vectorised over
subjects), and the OLS refitted with the ``v`` column replaced -- one SVD per draw (``ols_null``).

Baseline, same process: a statsmodels ``OLS(y, X).fit()`` loop over the 4,000 targets of the observed data, keeping
params, t-values and SSE (CPD from t^2 / (t^2 + dof), which needs no reduced fits). The null with statsmodels
would refit every target for every draw; its cost is EXTRAPOLATED as 1,000 x the timed loop (not run), plus the
same pseudosession simulation.

Run:  python benchmarks/decode.py [--units 100] [--bins 40] [--trials 400] [--draws 1000] [--seed 0]
Target (issue "Decoding"): the whole neurorl analysis under 10 s.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import neurorl as nr
from neurorl.decoding import align, design_matrix, ols, ols_null, synthetic_population


def statsmodels_loop(Xv, Y):
    """params, t-values, SSE and CPD for every target with one statsmodels fit each."""
    import statsmodels.api as sm

    m = Y.shape[1]
    beta = np.empty((Xv.shape[1], m))
    tval = np.empty_like(beta)
    sse = np.empty(m)
    for j in range(m):
        res = sm.OLS(Y[:, j], Xv).fit()
        beta[:, j], tval[:, j], sse[j] = res.params, res.tvalues, res.ssr
    dof = Xv.shape[0] - Xv.shape[1]
    cpd = tval**2 / (tval**2 + dof)
    return beta, tval, sse, cpd


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--units", type=int, default=100)
    ap.add_argument("--bins", type=int, default=40)
    ap.add_argument("--trials", type=int, default=400)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)

    import statsmodels.api  # noqa: F401  (import cost outside the timings)

    agent, task = nr.make_agent("q_learning"), nr.make_task("mouse_bandit")
    params = {"alpha": 0.3, "beta": 3.0}
    nr.simulate(agent, task, n_subjects=2, n_trials=5, params=params, rng=0)  # warm up

    # ---- data (not timed): one session and its synthetic population
    sim = nr.simulate(agent, task, n_subjects=1, n_trials=args.trials, params=params, rng=rng)
    neural, truth = synthetic_population(sim, encode={"v": 0.3, "rpe": 0.3}, n_units=args.units, n_time=args.bins,
                                         kind="poisson", baseline=20.0, drift=0.3, drift_rho=0.98, rng=rng)

    # ---- neurorl analysis
    t0 = time.perf_counter()
    neural, table = align(neural, sim)
    X = design_matrix(table, ["v", "rpe", "entropy"], nuisance=["choice", "reward"])
    fit = ols(X, neural)
    t1 = time.perf_counter()
    null_sim = nr.simulate(agent, task, n_subjects=args.draws, n_trials=args.trials, params=params, rng=rng)
    v_null = null_sim.latents["v"].values  # (draws, trials), in session order
    t2 = time.perf_counter()
    null = ols_null(X, neural, "v", v_null, stat="cpd")
    obs = fit["cpd"].sel(regressor="v")
    p_target = (1 + (null >= obs).sum("draw")) / (1 + args.draws)
    pop_obs = obs.mean("unit")
    pop_null = null.mean("unit")
    p_pop = (1 + (pop_null >= pop_obs).sum("draw")) / (1 + args.draws)
    t3 = time.perf_counter()
    total = t3 - t0

    # ---- statsmodels baseline on the observed data only
    Xv = X.values
    Y = neural.transpose("trial", "unit", "time").values.reshape(args.trials, -1).astype(float)
    tb0 = time.perf_counter()
    beta_sm, t_sm, sse_sm, cpd_sm = statsmodels_loop(Xv, Y)
    tb = time.perf_counter() - tb0
    m = Y.shape[1]
    base_null = tb * args.draws  # extrapolated: one full refit per target per draw
    base_total = tb + (t2 - t1) + base_null

    ours_b = fit["beta"].values.reshape(X.sizes["regressor"], -1)
    ours_t = fit["t"].values.reshape(X.sizes["regressor"], -1)
    ours_c = fit["cpd"].values.reshape(X.sizes["regressor"], -1)

    peak = int(np.argmax(truth["kernel"].values))
    groups = neural["group"].values
    sig = (p_target.isel(time=peak) <= 0.05).values
    def row(label, value, unit="s", extra=""):
        print(f"  {label:<66}{value:9.3f} {unit}{extra}")

    print(f"neurorl decoding benchmark: {args.units} units x {args.bins} bins x {args.trials} trials "
          f"({m} targets), {X.sizes['regressor']} regressors, {args.draws} pseudosessions")
    row("align + design + OLS (beta, se, t, p, CPD, R^2), observed", t1 - t0)
    row(f"simulate {args.draws} pseudosessions (one vectorised call)", t2 - t1)
    row(f"null refits ({args.draws} SVDs, CPD of 'v' for all targets) + p-values", t3 - t2)
    row("total neurorl", total, extra=f"  (target < 10 s: {'met' if total < 10 else 'NOT met'})")
    print("statsmodels baseline (same process):")
    row(f"OLS loop on the observed data ({m} fits)", tb, extra=f"  ({1e3 * tb / m:.3f} ms per fit)")
    row(f"null: {args.draws} x {m} fits, EXTRAPOLATED from the loop (not run)", base_null)
    row("total: loop + the same simulation + extrapolated null", base_total)
    print(f"ratio statsmodels / neurorl, observed fit only: {tb / (t1 - t0):8.1f}x")
    print(f"ratio statsmodels / neurorl, whole analysis (extrapolated):     {base_total / total:8.1f}x")
    print(f"agreement with statsmodels: max |d beta| {np.abs(ours_b - beta_sm).max():.1e}, "
          f"max |d t| {np.abs(ours_t - t_sm).max():.1e}, max |d CPD| {np.abs(ours_c - cpd_sm).max():.1e}, "
          f"max rel |d SSE| {np.abs(fit['sse'].values.ravel() / sse_sm - 1).max():.1e}")
    print(f"sanity at the kernel peak (t = {float(neural.time[peak]):.3f} s): pseudosession p <= 0.05 for "
          f"{sig[groups == 'v'].mean():.0%} of v-units, {sig[groups == 'null'].mean():.0%} of null units; "
          f"population mean-CPD p = {float(p_pop.isel(time=peak)):.4f}")


if __name__ == "__main__":
    main()
