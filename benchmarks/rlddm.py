"""Benchmark: RL-DDM log-likelihood evaluations per second, neurorl against hddm-wfpt, same process.

28 subjects x 190 trials (the size of HDDM's RL-DDM example), two-armed bandit (0.7 / 0.3), Rescorla-Wagner with
Q0 = 0.5, drift = v * (Q1 - Q0), boundary a, start z, non-decision time t (fitting.md §2.2-2.3).

neurorl: one vectorised replay of the learning rule over all subjects (``neurorl.replay``) and one call of the
exact Wiener log density on all trials. hddm-wfpt: ``wfpt.wiener_like_rlddm`` per subject (HDDM's Cython loop).
Both score every trial but the first of each subject (HDDM's convention), and the totals are checked to agree.
This is the NumPy path; the estimators' differentiable path runs the same rule in PyTensor.

Run:  python benchmarks/rlddm.py
"""

from __future__ import annotations

import time

import numpy as np

import neurorl as nr
from neurorl.fitting.wiener import wiener_logpdf

N_SUBJECTS, N_TRIALS = 28, 190
ALPHA_LOGIT, V, A, Z, T0 = -0.5, 3.0, 1.6, 0.5, 0.3


def data(seed=0):
    agent = nr.make_agent("q_learning", q0=0.5)
    sim = nr.simulate(agent, nr.make_task("bandit", p=(0.7, 0.3)), n_subjects=N_SUBJECTS, n_trials=N_TRIALS,
                      rng=seed, params={"alpha": 1 / (1 + np.exp(-ALPHA_LOGIT)), "beta": 3.0})
    rng = np.random.default_rng(seed + 1)
    rt = T0 + 0.05 + rng.gamma(2.0, 0.25, size=(N_SUBJECTS, N_TRIALS))
    return agent, sim.trials, rt


def neurorl_loglik(agent, trials, rt):
    lat = nr.replay(agent, trials, {"alpha": 1 / (1 + np.exp(-ALPHA_LOGIT)), "beta": 1.0})
    logp = wiener_logpdf(rt, trials["choice"].values, V * lat["dq"].values, A, Z, T0)
    return float(logp[:, 1:].sum())


def wfpt_loglik(wfpt, trials, rt):
    total = 0.0
    for i in range(N_SUBJECTS):
        resp = trials["choice"].values[i].astype(np.int64)
        x = np.where(resp == 1, rt[i], -rt[i])
        total += wfpt.wiener_like_rlddm(x, resp, trials["reward"].values[i], np.zeros(N_TRIALS, np.int64), 0.5,
                                        ALPHA_LOGIT, 100.0, V, 0.0, A, Z, 0.0, T0, 0.0, 1e-10)
    return total


def rate(fn, min_seconds=1.0):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    import wfpt

    agent, trials, rt = data()
    ours, ref = neurorl_loglik(agent, trials, rt), wfpt_loglik(wfpt, trials, rt)
    r_ours = rate(lambda: neurorl_loglik(agent, trials, rt))
    r_ref = rate(lambda: wfpt_loglik(wfpt, trials, rt))
    print(f"RL-DDM log-likelihood, {N_SUBJECTS} subjects x {N_TRIALS} trials")
    print(f"  totals: neurorl {ours:.8f}, hddm-wfpt {ref:.8f} (relative difference {abs(ours - ref) / abs(ref):.1e})")
    print(f"  neurorl (vectorised replay + exact density): {r_ours:,.0f} evaluations/s")
    print(f"  hddm-wfpt wiener_like_rlddm (per subject):    {r_ref:,.0f} evaluations/s")
    print(f"  ratio neurorl / hddm-wfpt: {r_ours / r_ref:.2f}x")


if __name__ == "__main__":
    main()
