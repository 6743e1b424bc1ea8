"""Benchmark: Wiener first-passage-time log density, neurorl (NumPy) against HDDM's Cython ``wfpt.pdf_array``.

Evaluates the log density of N reaction times (default 100,000; half upper, half lower boundary, decision times
log-normal so both the small- and the large-time series are used) with neurorl's
:func:`neurorl.fitting.wiener.wiener_logpdf` on NumPy and with ``wfpt.pdf_array(..., logp=1)`` from the test-only
package ``hddm-wfpt``, in the same process, and prints evaluations per second and their ratio. ``pdf_array`` takes
scalar parameters and a signed RT array (``+rt`` = upper boundary), so the comparison uses one parameter set, which is
the case that favours it (neurorl also accepts per-element parameters). ``pdf_array`` is compiled with a ``prange``
loop, but the PyPI wheel (0.1.7) is not linked against OpenMP, so both sides run on one thread.

Run:  python benchmarks/wiener.py [--n 100000] [--repeats 5] [--err 1e-10]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

from neurorl.fitting.wiener import wiener_logpdf


def best_time(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--err", type=float, default=1e-10, help="wfpt's error (ours only uses it to pick the series)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import wfpt  # test-only dependency (pip install hddm-wfpt)

    v, sv, a, w, t0 = 1.2, 0.0, 1.5, 0.45, 0.25
    rng = np.random.default_rng(args.seed)
    rt = t0 + rng.lognormal(-0.7, 0.6, args.n)
    response = (rng.random(args.n) < 0.5).astype(np.int64)
    x = np.where(response == 1, rt, -rt)

    ours = wiener_logpdf(rt, response, v, a, w, t0, sv=sv, err=args.err)
    ref = wfpt.pdf_array(x, v, sv, a, w, 0.0, t0, 0.0, args.err, 1)
    max_abs = float(np.max(np.abs(ours - ref)))

    t_ours = best_time(lambda: wiener_logpdf(rt, response, v, a, w, t0, sv=sv, err=args.err), args.repeats)
    t_ref = best_time(lambda: wfpt.pdf_array(x, v, sv, a, w, 0.0, t0, 0.0, args.err, 1), args.repeats)
    t_ref4 = best_time(lambda: wfpt.pdf_array(x, v, sv, a, w, 0.0, t0, 0.0, 1e-4, 1), args.repeats)

    r_ours, r_ref, r_ref4 = args.n / t_ours, args.n / t_ref, args.n / t_ref4
    print(f"{args.n} reaction times, best of {args.repeats}; CPUs visible: {os.cpu_count()}")
    print(f"max |log p_neurorl - log p_wfpt| = {max_abs:.2e}")
    print(f"neurorl wiener_logpdf (numpy)      : {r_ours:12.4g} evaluations/s")
    print(f"{f'wfpt.pdf_array (err={args.err:g})':<35}: {r_ref:12.4g} evaluations/s")
    print(f"wfpt.pdf_array (err=1e-4, HDDM's)  : {r_ref4:12.4g} evaluations/s")
    print(f"ratio neurorl / wfpt (same err)    : {r_ours / r_ref:.3f}")
    print(f"ratio neurorl / wfpt (err=1e-4)    : {r_ours / r_ref4:.3f}")


if __name__ == "__main__":
    main()
