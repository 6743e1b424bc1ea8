"""Benchmark: a model-recovery study serially and on a 2-worker local Dask cluster, in the same run.

Study: :func:`neurorl.fitting.recovery.model_recovery` of ``q_learning`` vs ``rflr`` on ``mouse_bandit`` (MAP, BIC),
``--subjects`` simulated subjects per generator x ``--trials`` trials, fitted in units of ``--block`` subjects (one
unit of :mod:`neurorl.parallel` per candidate x block). Timed, each with its own compiled-likelihood cache:

* ``cold``: an empty cache -- the serial run compiles in this process; on the cluster each worker process compiles
  (or loads what the other worker has written meanwhile);
* ``warm``: the same study again: the serial run loads from the cache (or memory); the workers too.

Printed: wall times, the speed-up (serial / cluster), the per-unit cost, the per-task overhead of the cluster
(``cluster - serial / workers`` spread over the units, and the round trip of ``--empty`` empty tasks), the start-up
of the cluster, whether the cluster's results equal the serial ones bit for bit, and the projected wall time of a
1,000-cohort design study on 100 workers from the measured per-unit cost (see docs/parallel.md).

Run:  python benchmarks/scale_out.py [--subjects 40] [--trials 300] [--block 10] [--workers 2]
Target (issue 17): a speed-up close to the number of workers on units longer than a second.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings


def study(args, **kw):
    from neurorl.fitting.recovery import model_recovery

    return model_recovery(["q_learning", "rflr"], "mouse_bandit", n_subjects=args.subjects, n_trials=args.trials,
                          criterion="bic", estimator_options={"n_starts": 2}, subjects_per_unit=args.block,
                          rng=args.seed, **kw)


def _nothing(unit):
    return unit


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=40, help="simulated subjects per generator (default 40)")
    ap.add_argument("--trials", type=int, default=300, help="trials per subject (default 300)")
    ap.add_argument("--block", type=int, default=10, help="subjects per unit (default 10)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster (default 2)")
    ap.add_argument("--empty", type=int, default=200, help="empty tasks timed for the per-task overhead")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")  # fit warnings of simulated subjects (e.g. one choice throughout) are expected

    import numpy as np
    from dask.distributed import Client, LocalCluster

    import neurorl.parallel as par

    n_units = 2 * int(np.ceil(2 * args.subjects / args.block))
    print(f"model recovery: q_learning vs rflr on mouse_bandit, {args.subjects} subjects per generator x "
          f"{args.trials} trials, {n_units} units of {args.block} subjects; {os.cpu_count()} CPU cores")
    root = tempfile.mkdtemp(prefix="nr-scale-out-")
    serial_cache, cluster_cache = os.path.join(root, "serial"), os.path.join(root, "cluster")
    os.environ["NEURORL_CACHE_DIR"] = serial_cache

    rows = {}
    ref, rows["serial cold"] = timed(lambda: study(args))
    _, rows["serial warm"] = timed(lambda: study(args))

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    startup = time.perf_counter() - t0
    try:
        with par.parallel(client, cache_dir=cluster_cache):
            res, rows["cluster cold"] = timed(lambda: study(args))
            _, rows["cluster warm"] = timed(lambda: study(args))
            _, t_empty = timed(lambda: par.map_units(_nothing, range(args.empty)))
    finally:
        client.close()
        cluster.close()
    same = bool(np.array_equal(res["log_evidence"].values, ref["log_evidence"].values))

    print(f"\n{'run':<16}{'wall s':>9}{'per unit s':>12}")
    for k, v in rows.items():
        print(f"{k:<16}{v:>9.2f}{v / n_units:>12.3f}")
    w = args.workers
    for state in ("cold", "warm"):
        s, c = rows[f"serial {state}"], rows[f"cluster {state}"]
        print(f"{state}: speed-up {s / c:.2f}x on {w} workers; overhead per unit "
              f"{(c - s / w) * w / n_units:+.3f} s (cluster - serial/{w}, spread over the units)")
    print(f"cluster start-up {startup:.2f} s; empty task round trip {t_empty / args.empty * 1e3:.1f} ms per task "
          f"({args.empty} tasks)")
    print(f"cluster results equal the serial ones bit for bit: {same}")

    unit = rows["serial warm"] / n_units
    cohorts, workers = 1000, 100
    per_task = t_empty / args.empty
    total = cohorts * n_units * unit
    projected = total / workers + cohorts * n_units * per_task / workers + rows["serial cold"] / n_units
    print(f"\nprojection: a 1,000-cohort design study (each cohort this study: {n_units} units of {unit:.2f} s) = "
          f"{total / 3600:.1f} CPU hours serially; on {workers} workers about {projected / 60:.0f} min "
          f"(work / workers + task overhead + one cold unit per worker)")


if __name__ == "__main__":
    main()
