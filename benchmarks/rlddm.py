"""Benchmark: RL-DDM log-likelihood evaluations per second, neurorl against hddm-wfpt, same process.

28 subjects x 190 trials (the size of HDDM's RL-DDM example), two-armed bandit (0.7 / 0.3), Rescorla-Wagner with
Q0 = 0.5, drift = v * (Q1 - Q0), boundary a, start z, non-decision time t (fitting.md §2.2-2.3).

hddm-wfpt: ``wfpt.wiener_like_rlddm`` per subject (HDDM's Cython loop), value only. neurorl, three paths:

* compiled (what the estimators and PyMC use): ``WithRT(q_learning, WienerRT())`` through
  ``fitting.graph.compiled_loglik`` -- the learning rule and the exact density in one PyTensor scan, value only
  (order 0) and value + exact gradient for every subject's 5 parameters (order 1, forward mode);
* NumPy: one vectorised replay of the rule (``neurorl.replay``) and one call of the exact density on all trials.

All score every trial but the first of each subject (HDDM's convention), and the totals are checked to agree.
Also reported: the wall time of an RL-DDM MAP fit of these data (compile included, then warm).

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


def compiled(agent, trials, rt, order):
    from neurorl.fitting.graph import compiled_loglik
    from neurorl.fitting.joint import WithRT
    from neurorl.fitting.observation import WienerRT
    from neurorl.simulate import observations

    model = WithRT(agent, WienerRT())
    tr = trials.assign(rt=(("subject", "trial"), rt))
    env, obs = observations(tr)
    t0 = time.perf_counter()
    f = compiled_loglik(model, env, order=order)
    seconds = time.perf_counter() - t0
    vals = {"alpha": 1 / (1 + np.exp(-ALPHA_LOGIT)), "v_scale": V, "a": A, "w": Z, "t0": T0}
    theta = np.stack([np.full(N_SUBJECTS, float(p.to_unconstrained(vals[p.name]))) for p in model.params])
    return (lambda: float(f(theta, obs)["pointwise"][1:].sum())), seconds, model, tr


def rate(fn, min_seconds=1.0):
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0)


def main():
    import wfpt

    from neurorl.fitting import MAP

    agent, trials, rt = data()
    ref = wfpt_loglik(wfpt, trials, rt)
    ours = neurorl_loglik(agent, trials, rt)
    f0, c0, model, tr = compiled(agent, trials, rt, 0)
    f1, c1, _, _ = compiled(agent, trials, rt, 1)
    r_ref = rate(lambda: wfpt_loglik(wfpt, trials, rt))
    r_np = rate(lambda: neurorl_loglik(agent, trials, rt))
    r0, r1 = rate(f0), rate(f1)
    print(f"RL-DDM log-likelihood, {N_SUBJECTS} subjects x {N_TRIALS} trials")
    print(f"  totals: hddm-wfpt {ref:.8f}; neurorl compiled {f0():.8f} (rel. diff {abs(f0() - ref) / abs(ref):.1e}), "
          f"NumPy {ours:.8f} (rel. diff {abs(ours - ref) / abs(ref):.1e})")
    print(f"  hddm-wfpt wiener_like_rlddm (per subject, value):      {r_ref:,.0f} evaluations/s")
    print(f"  neurorl compiled scan, value (compile {c0:.1f} s):       {r0:,.0f} evaluations/s  -> {r0 / r_ref:.2f}x")
    print(f"  neurorl compiled scan, value + gradient (compile {c1:.1f} s): {r1:,.0f} evaluations/s  -> "
          f"{r1 / r_ref:.2f}x")
    print(f"  neurorl NumPy replay + density, value:                {r_np:,.0f} evaluations/s  -> {r_np / r_ref:.2f}x")
    for label in ("first (compile included)", "warm"):
        t0 = time.perf_counter()
        est = MAP(model, n_starts=1, rng=0).fit(tr)
        print(f"  RL-DDM MAP fit, {label}: {time.perf_counter() - t0:.1f} s "
              f"({int(est.result_['converged'].sum())}/{N_SUBJECTS} converged)")


if __name__ == "__main__":
    main()
