"""Benchmark: a model-recovery study serially, on 2 local processes and on a 2-worker local Dask cluster, in one run.

Study: :func:`neurorl.fitting.recovery.model_recovery` of ``q_learning`` vs ``rflr`` on ``mouse_bandit`` (MAP, BIC),
``--subjects`` simulated subjects per generator x ``--trials`` trials, fitted in units of ``--block`` subjects (one
unit of :mod:`neurorl.parallel` per candidate x block). Timed, each with its own compiled-likelihood cache:

* ``cold``: an empty cache -- the serial run compiles in this process; on the cluster each worker process compiles
  (or loads what the other worker has written meanwhile);
* ``warm``: the same study again: the serial run loads from the cache (or memory); the workers too.

By default every process computes on one thread (``--xla-threads one``): this process -- the serial baseline -- sets
``OMP/MKL/OPENBLAS_NUM_THREADS=1``, ``PJRT_NPROC=1`` and
``XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1`` before importing numpy or JAX, and the workers run under the same settings (inherited, and
:func:`neurorl.parallel.one_thread` in each worker). One compute thread is not one core: JAX runs each compiled call
on a thread of its own while Python goes on (measured unpinned: 20 s of processor time in 14 s of wall time), so the
serial baseline is also pinned to one core (``sched_setaffinity``, every thread; ``--no-pin`` leaves it free) and
released before the workers start: the comparison is one core against ``--workers`` cores, as on a cluster of
single-core workers. With ``--xla-threads all`` the serial run already spreads each fit over the machine's cores.

Printed: the load average of the machine before and after (``/proc/loadavg``: on a shared machine the speed-up is
bounded by the cores the others leave free), wall times, the speed-up (serial / cluster), the per-unit cost (wall time
of each unit on the workers, from Dask's task stream; the longest and shortest), the part of the study that runs in
this process (simulating the cohorts), the per-task overhead of the cluster (``cluster - serial / workers`` spread
over the units, and the round trip of ``--empty`` empty tasks), what each worker did with the compiled likelihoods
(loaded from the cache or compiled, and the seconds it spent loading), the start-up of the cluster, whether the
cluster's results equal the serial ones bit for bit, and the projected wall time of a 1,000-cohort design study on
100 workers from the measured per-unit cost (see docs/parallel.md).

Run:  python benchmarks/scale_out.py [--subjects 400] [--trials 1000] [--block 100] [--starts 5] [--workers 2]
Target (issue 17): a speed-up close to the number of workers on units longer than a second.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings

ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PJRT_NPROC": "1"}
XLA_ONE = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _set_affinity(cores) -> None:
    """Restrict every thread of this process (Linux: affinity is per thread) to ``cores``."""
    for tid in os.listdir("/proc/self/task"):
        try:
            os.sched_setaffinity(int(tid), cores)
        except OSError:  # a thread that has ended meanwhile
            pass


def study(args, **kw):
    from neurorl.fitting.recovery import model_recovery

    return model_recovery(["q_learning", "rflr"], "mouse_bandit", n_subjects=args.subjects, n_trials=args.trials,
                          criterion="bic", estimator_options={"n_starts": args.starts}, subjects_per_unit=args.block,
                          rng=args.seed, **kw)


def _nothing(unit):
    return unit


def _loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


def _count_cache_use():
    """In a worker: count executables loaded from the disk cache (and the seconds spent) and compiled (stored)."""
    from neurorl.backend import cache

    if getattr(cache, "_bench_counts", None) is None:
        counts = cache._bench_counts = {"loaded": 0, "load_s": 0.0, "compiled": 0, "pid": os.getpid()}
        load, store = cache.load_executables, cache.store_executables

        def counted_load(key):
            t0 = time.perf_counter()
            out = load(key)
            counts["load_s"] += time.perf_counter() - t0
            counts["loaded"] += out is not None
            return out

        def counted_store(key, compiled):
            counts["compiled"] += 1
            return store(key, compiled)

        cache.load_executables, cache.store_executables = counted_load, counted_store
    return dict(cache._bench_counts)


def _cpu_seconds():
    """Processor time of this worker process so far."""
    return time.process_time()


def _cache_counts():
    from neurorl.backend import cache

    out = dict(getattr(cache, "_bench_counts", None) or {})
    out["xla_flags"] = os.environ.get("XLA_FLAGS", "")
    out["omp"] = os.environ.get("OMP_NUM_THREADS")
    return out


def _unit_seconds(ts) -> list[float]:
    """Compute seconds of the neurorl units in a Dask task stream."""
    out = []
    for t in ts.data:
        if str(t.get("key", "")).startswith("neurorl-unit-"):
            out += [ss["stop"] - ss["start"] for ss in t.get("startstops", ()) if ss.get("action") == "compute"]
    return out


def timed(fn, cpu: dict | None = None, key: str = ""):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if cpu is not None:
        cpu[key] = time.process_time() - c0  # this process only: meaningful for the serial runs
    return out, time.perf_counter() - t0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subjects", type=int, default=400, help="simulated subjects per generator (default 400)")
    ap.add_argument("--trials", type=int, default=1000, help="trials per subject (default 1000)")
    ap.add_argument("--block", type=int, default=100, help="subjects per unit (default 100: units of about a second)")
    ap.add_argument("--starts", type=int, default=5, help="optimiser starts per subject (default 5)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster (default 2)")
    ap.add_argument("--empty", type=int, default=200, help="empty tasks timed for the per-task overhead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-pin", dest="pin", action="store_false",
                    help="do not pin the serial baseline to one core (Linux; default: pinned)")
    ap.add_argument("--xla-threads", choices=["one", "all"], default="one",
                    help="one (default): every process -- the serial run and each worker -- computes on one thread "
                         "(XLA_FLAGS), so the comparison is one core against N; all: XLA's own thread pool, so the "
                         "serial run already uses every core and the cluster cannot do better on this machine")
    args = ap.parse_args(argv)
    if args.xla_threads == "one":  # before numpy/JAX are imported here or in a worker (workers inherit it)
        if "numpy" in sys.modules or "jax" in sys.modules:
            raise RuntimeError("scale_out: set the thread environment before numpy is imported")
        os.environ.update(ONE_THREAD)
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + XLA_ONE).strip()
    warnings.simplefilter("ignore")  # fit warnings of simulated subjects (e.g. one choice throughout) are expected
    os.environ["PYTHONWARNINGS"] = "ignore"  # ... in the worker processes too

    import numpy as np
    from dask.distributed import Client, LocalCluster

    import neurorl.parallel as par

    n_units = 2 * int(np.ceil(2 * args.subjects / args.block))
    load_before = _loadavg()
    print(f"model recovery: q_learning vs rflr on mouse_bandit, {args.subjects} subjects per generator x "
          f"{args.trials} trials, {n_units} units of {args.block} subjects; {os.cpu_count()} CPU cores; threads "
          f"per process: {args.xla_threads} (OMP {os.environ.get('OMP_NUM_THREADS')}, XLA_FLAGS "
          f"{os.environ.get('XLA_FLAGS', '')!r}); serial baseline pinned to one core: "
          f"{'yes' if args.pin and hasattr(os, 'sched_setaffinity') else 'no'}; load average before: {load_before}")
    root = tempfile.mkdtemp(prefix="nr-scale-out-")
    serial_cache, cluster_cache = os.path.join(root, "serial"), os.path.join(root, "cluster")
    os.environ["NEURORL_CACHE_DIR"] = serial_cache

    rows, cpu = {}, {}
    all_cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    pinned = bool(args.pin and all_cores and len(all_cores) > 1)
    if pinned:  # the baseline is one core, whatever threads JAX or SciPy start: as one worker of a cluster
        _set_affinity({min(all_cores)})
    ref, rows["serial cold"] = timed(lambda: study(args), cpu, "serial cold")
    _, rows["serial warm"] = timed(lambda: study(args), cpu, "serial warm")
    if pinned:  # the workers started below inherit the whole machine
        _set_affinity(all_cores)
    # the part of the study that stays in this process: simulating both generators' cohorts
    import neurorl as nr

    _, t_sim = timed(lambda: [nr.simulate(a, "mouse_bandit", n_subjects=args.subjects, n_trials=args.trials,
                                          rng=args.seed) for a in ("q_learning", "rflr")])

    # the same study on local processes (neurorl.parallel's ProcessPool executor), each run in a fresh pool
    import resource

    procs_cache = os.path.join(root, "processes")
    child_cpu = {}
    for state in ("cold", "warm"):
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        with par.parallel(workers=args.workers, cache_dir=procs_cache):
            res_p, rows[f"processes {state}"] = timed(lambda: study(args), cpu, f"processes {state}")
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the pool's processes, reaped at the block's end
        child_cpu[state] = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    same_p = bool(np.array_equal(res_p["log_evidence"].values, ref["log_evidence"].values))

    import dask

    # dask's statistical profiler samples every worker's stack every 10 ms; on a loaded machine its GIL hand-offs
    # cost as much as the work (measured here: 2.7x the serial wall time per unit with it, 1.2x without)
    dask.config.set({"distributed.worker.profile.enabled": False})
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None)
    client = Client(cluster)
    startup = time.perf_counter() - t0
    from dask.distributed import get_task_stream

    try:
        client.run(_count_cache_use)
        with par.parallel(client, cache_dir=cluster_cache):
            w0 = client.run(_cpu_seconds)
            with get_task_stream(client) as ts_cold:
                res, rows["cluster cold"] = timed(lambda: study(args), cpu, "cluster cold")
            w1 = client.run(_cpu_seconds)
            cold_counts = client.run(_cache_counts)
            with get_task_stream(client) as ts_warm:
                _, rows["cluster warm"] = timed(lambda: study(args), cpu, "cluster warm")
            w2 = client.run(_cpu_seconds)
            warm_counts = client.run(_cache_counts)
            _, t_empty = timed(lambda: par.map_units(_nothing, range(args.empty)))
    finally:
        client.close()
        cluster.close()
    same = bool(np.array_equal(res["log_evidence"].values, ref["log_evidence"].values))

    print(f"\n{'run':<16}{'wall s':>9}{'per unit s':>12}{'CPU s':>9}")
    for k, v in rows.items():
        c = f"{cpu[k]:>9.2f}"
        print(f"{k:<16}{v:>9.2f}{v / n_units:>12.3f}{c}")
    print("(CPU s: processor time of this process (the workers' own below); unpinned, the serial run's JAX and SciPy "
          "threads overlap, so its CPU s can exceed its wall time)")
    w = args.workers
    for state in ("cold", "warm"):
        for kind in ("cluster", "processes"):
            s, c = rows[f"serial {state}"], rows[f"{kind} {state}"]
            print(f"{state}, {kind}: speed-up {s / c:.2f}x on {w} workers; overhead per unit "
                  f"{(c - s / w) * w / n_units:+.3f} s ({kind} - serial/{w}, spread over the units)")
    print(f"cluster start-up {startup:.2f} s; empty task round trip {t_empty / args.empty * 1e3:.1f} ms per task "
          f"({args.empty} tasks)")
    print(f"in this process (serial in both runs): simulating the cohorts {t_sim:.2f} s "
          f"({t_sim / rows['serial warm']:.0%} of the serial warm run)")
    for state, ts in (("cold", ts_cold), ("warm", ts_warm)):
        secs = _unit_seconds(ts)
        if secs:
            print(f"units on the workers ({state}): {len(secs)} units, {np.mean(secs):.2f} s each on average "
                  f"(min {np.min(secs):.2f}, max {np.max(secs):.2f}); sum {np.sum(secs):.1f} s over {w} workers "
                  f"= {np.sum(secs) / w:.1f} s of wall time at best")
    for state, counts in (("after the cold run", cold_counts), ("after the warm run", warm_counts)):
        desc = "; ".join(f"worker {c.get('pid')}: {c.get('compiled', 0)} compiled, {c.get('loaded', 0)} loaded "
                         f"from the cache ({c.get('load_s', 0.0):.2f} s)" for c in counts.values())
        print(f"compiled likelihoods {state} (cumulative per worker): {desc}")
    flags = {c["xla_flags"] for c in warm_counts.values()} | {c["omp"] for c in warm_counts.values()}
    print(f"worker thread settings: {sorted(flags)}")
    print(f"cluster results equal the serial ones bit for bit: {same}")
    # processor time does not depend on how many other jobs share the cores: the wall time an idle machine with
    # `workers` free cores would need is about (this process's CPU) + (the busiest worker's CPU)
    for state, (a, b) in (("cold", (w0, w1)), ("warm", (w1, w2))):
        per = [b[k] - a[k] for k in b if k in a]
        idle = cpu[f"cluster {state}"] + max(per)
        print(f"CPU s ({state}): serial {cpu[f'serial {state}']:.2f}; cluster: this process "
              f"{cpu[f'cluster {state}']:.2f} + workers {', '.join(f'{v:.2f}' for v in per)} -> on {w} idle cores "
              f"about {idle:.2f} s wall, a speed-up of {cpu[f'serial {state}'] / idle:.2f}x (CPU-time estimate; it "
              "counts Dask's own threads, whose processor time grows with the wall time: an upper bound on a loaded "
              "machine)")
    for state in ("cold", "warm"):
        total = child_cpu[state]
        idle = cpu[f"processes {state}"] + total / w
        print(f"CPU s ({state}): serial {cpu[f'serial {state}']:.2f}; local processes: this process "
              f"{cpu[f'processes {state}']:.2f} + workers {total:.2f} in all (start-up included) -> on {w} idle cores "
              f"about {idle:.2f} s wall, a speed-up of {cpu[f'serial {state}'] / idle:.2f}x (CPU-time estimate, "
              "units shared evenly)")
    print(f"local processes' results equal the serial ones bit for bit: {same_p}")
    load_after = _loadavg()
    print(f"load average before {load_before}, after {load_after} (1, 5, 15 min) on {os.cpu_count()} cores")

    warm = _unit_seconds(ts_warm)
    unit = float(np.mean(warm)) if warm else rows["serial warm"] / n_units
    cohorts, workers = 1000, 100
    per_task = t_empty / args.empty
    total = cohorts * n_units * unit
    projected = total / workers + cohorts * n_units * per_task / workers + rows["serial cold"] / n_units
    print(f"\nprojection: a 1,000-cohort design study (each cohort this study: {n_units} units of {unit:.2f} s, the "
          f"measured warm unit on a worker) = {total / 3600:.1f} CPU hours serially; on {workers} workers about "
          f"{projected / 60:.0f} min (work / workers + task overhead + one cold unit per worker)")
    c = cpu["serial warm"] / n_units  # processor time per unit: what an idle core needs
    total_c = cohorts * n_units * c
    print(f"with the processor time per unit instead ({c:.2f} s: serial warm CPU / units, what an idle core takes): "
          f"{total_c / 3600:.1f} CPU hours; on {workers} workers about "
          f"{(total_c / workers + cohorts * n_units * per_task / workers + rows['serial cold'] / n_units) / 60:.1f} min")


if __name__ == "__main__":
    main()
