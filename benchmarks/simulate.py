"""Benchmark: simulation throughput of neurorl against a plain Python per-trial loop.

1,000 subjects x 1,000 trials of Q-learning (softmax) on the two-armed mouse bandit. The baseline is the loop
people write by hand: for each subject, for each trial, compute the softmax, draw a choice, draw a reward, update Q.
It keeps the trials and latents (Q values, choice probability, RPE) in a list of rows, as analysis scripts do,
and runs in the same process on a subset of subjects; rates are compared per agent-trial.

Run:  python benchmarks/simulate.py [--subjects 1000] [--trials 1000] [--baseline-subjects 50]
Target (issue 2): at least 1e6 agent-trials per second.
"""

from __future__ import annotations

import argparse
import math
import random
import time

import neurorl as nr


def baseline(n_subjects: int, n_trials: int, alpha=0.3, beta=3.0, p_high=0.8, p_switch=0.02, seed=0):
    """Plain Python: one subject and one trial at a time, keeping the trials and the latents a
    hand-written analysis script keeps (choice, reward, Q values, choice probability, RPE)."""
    rnd = random.Random(seed)
    rows = []
    for subject in range(n_subjects):
        q = [0.0, 0.0]
        z = 1 if rnd.random() < 0.5 else 0
        for t in range(n_trials):
            p1 = 1.0 / (1.0 + math.exp(-beta * (q[1] - q[0])))
            a = 1 if rnd.random() < p1 else 0
            r = 1.0 if rnd.random() < (p_high if a == z else 1.0 - p_high) else 0.0
            rpe = r - q[a]
            rows.append((subject, t, a, r, q[0], q[1], p1, rpe))
            q[a] += alpha * rpe
            if rnd.random() < p_switch:
                z = 1 - z
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=1000)
    ap.add_argument("--baseline-subjects", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    agent = nr.make_agent("q_learning")
    task = nr.make_task("mouse_bandit")
    nr.simulate(agent, task, n_subjects=10, n_trials=10, rng=0)  # warm up imports

    best = float("inf")
    for rep in range(args.repeats):
        t0 = time.perf_counter()
        sim = nr.simulate(agent, task, n_subjects=args.subjects, n_trials=args.trials, rng=rep, progress=False)
        best = min(best, time.perf_counter() - t0)
    n = args.subjects * args.trials
    rate = n / best

    t0 = time.perf_counter()
    baseline(args.baseline_subjects, args.trials)
    tb = time.perf_counter() - t0
    base_rate = args.baseline_subjects * args.trials / tb

    print(f"neurorl.simulate: {args.subjects} subjects x {args.trials} trials of Q-learning in {best:.3f} s "
          f"(best of {args.repeats}, trials + latents as xarray)")
    print(f"  agent-trials per second: {rate:,.0f}  (target >= 1,000,000: {'met' if rate >= 1e6 else 'NOT met'})")
    print(f"plain Python per-trial loop: {args.baseline_subjects} subjects x {args.trials} trials in {tb:.3f} s")
    print(f"  agent-trials per second: {base_rate:,.0f}")
    print(f"ratio neurorl / plain loop: {rate / base_rate:.1f}x")
    print(f"mean reward (sanity): neurorl {float(sim.trials.reward.mean()):.3f}")


if __name__ == "__main__":
    main()
