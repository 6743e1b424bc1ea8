"""Benchmark: joint MLE of all subjects (neurorl.fitting.mle) against a plain per-subject scipy loop.

Problem (fitting.md §7): two-armed bandit with p = 0.7 / 0.3 (task ``bandit``), Rescorla-Wagner + softmax
(``q_learning`` with q0 = 0.5; parameters logit alpha, log beta), 100 subjects x 200 simulated trials,
alpha = logistic(N(-1, 0.7)), beta = exp(N(1, 0.4)).

Baseline, run in the same process: for each subject, ``scipy.optimize.minimize(method="L-BFGS-B")`` on the
negative log-likelihood written as a Python trial loop, gradients by finite differences (scipy's default
2-point scheme), from the same start (the parameter defaults) and within the same box (|theta| <= 15).

Printed: compile time (first fit minus warm fit, and the graph compilation alone), warm fit time (best of
``--repeats``), the baseline's time and the ratio, and the number of subjects whose optimum is within 1e-3 of
the best of 20 random starts (neurorl, 20 starts) and of every other optimum found here.

Run:  python benchmarks/fit_mle.py [--subjects 100] [--trials 200] [--mode jax|pytensor|NUMBA] [--repeats 3]
Targets (issue "Fitting by likelihood"): >= 5x faster than the plain loop, under 0.3 s warm, every subject at
its best optimum.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

import neurorl as nr
from neurorl.backend import compiled as compiled_mod
from neurorl.fitting import graph
from neurorl.fitting.mle import MAP, MLE, FitWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_scipy_fit import plain_nll

BOUND = 15.0


def plain_fit(choice, reward, x0, prior_sd=None):
    """Per-subject scipy L-BFGS-B, finite-difference gradients."""
    out = np.empty((choice.shape[0], 2))
    val = np.empty(choice.shape[0])
    for i in range(choice.shape[0]):
        c, r = choice[i].tolist(), reward[i].tolist()
        res = minimize(plain_nll, x0, args=(c, r, prior_sd), method="L-BFGS-B", bounds=[(-BOUND, BOUND)] * 2)
        out[i], val[i] = res.x, res.fun
    return out, val


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--mode", default="jax", help="likelihood backend: jax (default), pytensor (C) or NUMBA")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    mode = None if args.mode.lower() == "jax" else args.mode
    warnings.simplefilter("ignore", FitWarning)

    rng = np.random.default_rng(args.seed)
    n, T = args.subjects, args.trials
    alpha = 1.0 / (1.0 + np.exp(-rng.normal(-1.0, 0.7, n)))
    beta = np.exp(rng.normal(1.0, 0.4, n))
    agent = nr.make_agent("q_learning", q0=0.5)
    sim = nr.simulate(agent, nr.make_task("bandit", p=(0.7, 0.3)), n_subjects=n, n_trials=T,
                      params={"alpha": alpha, "beta": beta}, rng=args.seed + 1)
    trials = sim.trials
    choice, reward = trials["choice"].values, trials["reward"].values
    print(f"{n} subjects x {T} trials, q_learning (RW + softmax) on bandit p=(0.7, 0.3), mode={args.mode}")

    # -- compile: first fit in this process minus a warm fit
    graph.clear_cache()
    t0 = time.perf_counter()
    MLE(agent, n_starts=1, mode=mode).fit(trials)
    first = time.perf_counter() - t0
    compiled = sum(f.compile_seconds for f in list(graph._CACHE.values()) + list(compiled_mod._MEMORY.values()))
    t0 = time.perf_counter()
    MLE(agent, n_starts=1, mode=mode).fit(trials)
    print(f"compile: first fit {first:.2f} s, warm fit {time.perf_counter() - t0:.2f} s; graph compilation "
          f"{compiled:.2f} s (value + gradient + Hessian function)")

    x0 = np.array([math.log(0.3 / 0.7), math.log(3.0)])  # the parameter defaults
    summary = {}
    for Est, prior_sd in ((MLE, None), (MAP, 2.5)):
        def warm(**kw):
            best, est = float("inf"), None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                est = Est(agent, mode=mode, **kw).fit(trials)
                best = min(best, time.perf_counter() - t0)
            return best, est

        def objective(e):
            r = e.result_
            return -(r["loglik"] + (r["logprior"] if "logprior" in r else 0.0)).values

        t_one, est_one = warm(n_starts=1)
        t_ten, est_ten = warm(n_starts=10, rng=1)
        t_qn, est_qn = warm(n_starts=1, optimizer="quasi-newton")
        t_lb, est_lb = warm(n_starts=1, optimizer="L-BFGS-B")
        t0 = time.perf_counter()
        _, f_plain = plain_fit(choice, reward, x0, prior_sd)
        t_plain = time.perf_counter() - t0
        ref = Est(agent, n_starts=20, rng=2, mode=mode).fit(trials)
        vals = {"1 start": objective(est_one), "10 starts": objective(est_ten), "quasi-newton": objective(est_qn),
                "L-BFGS-B": objective(est_lb),
                "20 starts": objective(ref), "plain loop": f_plain}
        best = np.min(np.stack(list(vals.values())), axis=0)
        name = Est.__name__
        print(f"\n{name}{' (prior N(0, 2.5^2) on logit alpha, log beta)' if prior_sd else ''}")
        print(f"  {'method':42s} {'warm time':>10s} {'vs plain':>9s} {'at best (1e-3)':>15s}")
        for label, t, key in ((f"neurorl {name}, 1 start (newton)", t_one, "1 start"),
                              (f"neurorl {name}, 10 starts (newton)", t_ten, "10 starts"),
                              (f"neurorl {name}, 1 start (quasi-newton)", t_qn, "quasi-newton"),
                              (f"neurorl {name}, 1 start (joint L-BFGS-B)", t_lb, "L-BFGS-B"),
                              ("plain per-subject scipy loop (FD)", t_plain, "plain loop")):
            at_best = int(np.sum(vals[key] - best <= 1e-3))
            print(f"  {label:42s} {t:9.3f}s {t_plain / t:8.1f}x {at_best:>11d}/{n}")
        gap = vals["1 start"] - best
        r = est_one.result_
        print(f"  1 start: {t_plain / t_one:.1f}x faster than the plain loop, {t_one:.3f} s warm; largest gap to the "
              f"best optimum {gap.max():.2e} nats; converged {int(r['converged'].sum())}/{n}; r(logit alpha) = "
              f"{np.corrcoef(r['theta'].values[:, 0], np.log(alpha / (1 - alpha)))[0, 1]:.2f}, r(log beta) = "
              f"{np.corrcoef(r['theta'].values[:, 1], np.log(beta))[0, 1]:.2f}")
        summary[name] = (t_one, t_plain, int(np.sum(gap <= 1e-3)))
    t_one, t_plain, ok = summary["MAP"]
    print(f"\ntargets (MAP, 1 start): >= 5x the plain loop: {t_plain / t_one:.1f}x; < 0.3 s warm: {t_one:.3f} s; "
          f"every subject at its best optimum: {ok}/{n}")


if __name__ == "__main__":
    main()
