"""Benchmark: whole fresh processes, as a user runs them -- ``neurorl fit`` against a plain per-subject scipy script.

Data: a ragged CSV (``--subjects`` subjects, ``--trials`` trials on average, each subject's length drawn
uniformly within +/-30 %), Rescorla-Wagner + softmax on a 0.7/0.3 two-armed bandit; each other agent is timed on
data it simulated itself on its own task (two-armed bandit, go/no-go or two-step). Every figure is the wall time
of a new Python process (``subprocess``), import and file reading included:

* ``plain scipy``: ``benchmarks/plain_scipy_fit.py`` -- per-subject L-BFGS-B with finite differences, one start,
  MAP with the same priors (the script people write; it only fits Rescorla-Wagner, so it is the baseline of the
  ``q_learning`` row and the yardstick of the others);
* ``neurorl, first ever``: ``neurorl fit data.csv --agent NAME --no-figures -o fit.nc`` with an empty cache
  (``NEURORL_CACHE_DIR`` set to a new folder): the likelihood is compiled;
* ``neurorl, later``: the same command again in a new process: the compiled likelihood is loaded from the cache;
* ``warm``: the fit alone, timed inside one process after a first fit (what a script that fits many data sets
  sees per data set); ``overhead`` = later - warm: what a fresh process costs beyond the fit itself.

``neurorl fit`` runs its defaults (5 starts per subject, Laplace evidence and standard errors, a netCDF result);
the baseline runs one start. With ``--pytensor`` the same fit through the previous PyTensor (C) backend runs too,
first ever (empty compile folder) and later, for comparison. ``--rt`` adds ``q_learning --rt wiener`` (RL-DDM) on
simulated RTs. ``--bayes [SAMPLER ...]`` adds hierarchical ``fit_bayes`` runs (2 chains x 50 + 50 draws) of each
agent in fresh processes, first ever and later, and prints the setup time (wall minus sampling).

Run:  python benchmarks/cold_start.py [--subjects 20] [--trials 100] [--agents q_learning soft_q dra ...]
                                      [--rt] [--pytensor] [--bayes auto numpyro pymc]
Targets (issue "Fast from the first call", idle 2-core machine): q_learning later <= 1.5x plain scipy and < 3 s,
first ever < 8 s; every tabular agent first ever < 15 s, RL-DDM < 25 s; later processes < 3 s of overhead;
fit_bayes setup < 20 s first ever, < 5 s later.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def make_csv(path: Path, n: int, T: int, seed: int, *, agent: str = "q_learning", rt: bool = False) -> int:
    """Ragged data set simulated by ``agent`` on its own task (a two-armed bandit where it runs); returns the
    number of trials."""
    import numpy as np

    import neurorl as nr

    rng = np.random.default_rng(seed)
    model = nr.make_agent(agent)
    task = model.tasks[0] if model.tasks else "bandit"
    if rt:
        from neurorl.fitting import with_rt

        model = with_rt(model, "wiener")
    sim = nr.simulate(model, task, n_subjects=n, n_trials=int(T * 1.3), rng=seed)
    df = nr.to_table(sim.trials)
    keep = {s: int(rng.integers(int(T * 0.7), int(T * 1.3) + 1)) for s in df["subject"].unique()}
    df = df[df["trial"] < df["subject"].map(keep)]
    if not rt:
        df = df.drop(columns=["rt"])
    df.to_csv(path, index=False)
    return len(df)


#: Python started with this folder first on its path behaves as if dask and distributed were not installed
#: (``sys.modules[name] = None``): neurorl's default install has no dask (it comes with ``neurorl[parallel]``), but
#: with dask installed xarray imports dask, dask.array and distributed in every process that builds a dataset or
#: writes netCDF (about 1 s); the benchmark shows both.
NO_DASK = "import sys\nfor _m in ('dask', 'distributed'):\n    sys.modules.setdefault(_m, None)\n"


def without_dask(env: dict, work: Path) -> dict:
    shim = work / "no_dask"
    shim.mkdir(exist_ok=True)
    (shim / "sitecustomize.py").write_text(NO_DASK)
    return dict(env, PYTHONPATH=os.pathsep.join([str(shim)] + [p for p in [env.get("PYTHONPATH")] if p]))


def bytecode() -> None:
    """Every process timed here finds neurorl's bytecode, as after ``pip install`` (which compiles every module):
    with ``PYTHONDONTWRITEBYTECODE`` set, an editable install compiles its 58 modules from source in every process
    (about 0.1 s), which a user's installation does not. The variable is dropped for the processes timed here."""
    import compileall

    import neurorl

    if os.environ.pop("PYTHONDONTWRITEBYTECODE", None):
        print("PYTHONDONTWRITEBYTECODE was set: the timed processes run without it, and neurorl's bytecode is "
              "written first, as `pip install` does")
    compileall.compile_dir(str(Path(neurorl.__file__).parent), quiet=1)


def dask_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("dask") is not None


def timed(cmd, env=None) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"command failed ({res.returncode}): {' '.join(map(str, cmd))}\n{res.stdout}\n{res.stderr}")
    return dt


WARM = """
import sys, time, warnings
warnings.simplefilter("ignore")
import neurorl as nr
from neurorl.fitting import MAP
trials = nr.read_trials(sys.argv[1])
spec = sys.argv[2]
rt = sys.argv[3] if len(sys.argv) > 3 else None
kw = dict(n_starts=5, rng=0, progress=False)
if rt:
    kw["rt"] = rt
mode = sys.argv[4] if len(sys.argv) > 4 else None
if mode:
    kw["mode"] = mode
MAP(spec, **kw).fit(trials)
t0 = time.perf_counter()
MAP(spec, **kw).fit(trials)
print(time.perf_counter() - t0)
"""


def warm_time(csv: Path, agent: str, env, rt=None, mode=None) -> float:
    args = [sys.executable, "-c", WARM, str(csv), agent, rt or ""] + ([mode] if mode else [])
    res = subprocess.run(args, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"warm fit failed:\n{res.stderr}")
    return float(res.stdout.strip().splitlines()[-1])


BAYES = """
import sys, time, warnings
t0 = time.perf_counter()
warnings.simplefilter("ignore")
import neurorl as nr
from neurorl.fitting import fit_bayes
trials = nr.read_trials(sys.argv[1])
fit = fit_bayes(sys.argv[2], trials, sampler=sys.argv[3], draws=50, tune=50, chains=2, cores=1, progress=False,
                random_seed=0, log_likelihood=False)
wall = time.perf_counter() - t0
print(wall - fit.sample_seconds_ - fit.compile_seconds_, fit.compile_seconds_, fit.sample_seconds_)
"""


def bayes_times(csv: Path, agent: str, sampler: str, env) -> tuple[float, float]:
    """(setup seconds of a fresh process: imports, model building and compilation, i.e. wall minus sampling;
    sampling seconds) of a 2-chain x (50 + 50) hierarchical fit."""
    res = subprocess.run([sys.executable, "-c", BAYES, str(csv), agent, sampler], env=env, capture_output=True,
                         text=True)
    if res.returncode != 0:
        raise SystemExit(f"fit_bayes failed:\n{res.stderr}")
    rest, comp, samp = map(float, res.stdout.strip().splitlines()[-1].split())
    # PyMC compiles inside pm.sample: its compilation is in the sampling figure; nutpie's is apart
    return rest + comp, samp


PYTENSOR_FIT = """
import sys, warnings
warnings.simplefilter("ignore")
import neurorl as nr
from neurorl.fitting import MAP
trials = nr.read_trials(sys.argv[1])
kw = dict(n_starts=5, rng=0, progress=False, mode="pytensor")
if sys.argv[3]:
    kw["rt"] = sys.argv[3]
MAP(sys.argv[2], **kw).fit(trials)
"""


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=20)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--agents", nargs="+", default=["q_learning"],
                    help="agents to time (each on data it simulated on its own task); 'all' for every agent")
    ap.add_argument("--rt", action="store_true", help="also RL-DDM (q_learning --rt wiener)")
    ap.add_argument("--pytensor", action="store_true", help="also time the PyTensor (C) backend")
    ap.add_argument("--bayes", nargs="*", metavar="SAMPLER", default=None,
                    help="also time fit_bayes (2 chains x 50 + 50 draws) of each agent in fresh processes, first "
                         "ever and later, with these samplers (default: pymc)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="neurorl-cold-"))
    csv = work / "data.csv"
    n_rows = make_csv(csv, args.subjects, args.trials, args.seed)
    print(f"data: {args.subjects} subjects, {n_rows} trials (ragged, {args.trials} +/- 30 % each), {csv}")
    bytecode()
    with_dask = dask_installed()
    if with_dask:
        print("dask is installed here (neurorl[parallel]); the default install has none: fresh processes run as "
              "without it, and the 'later' column is repeated with it ('later+dask')")
    base = [timed([sys.executable, str(HERE / "plain_scipy_fit.py"), str(csv), str(work / "plain.csv")],
                  without_dask(dict(os.environ), work)) for _ in range(2)]
    print(f"plain scipy script, fresh process: first {base[0]:.2f} s, second {base[1]:.2f} s")
    plain = base[1]
    # the console script beside this interpreter (not a shell shim that may stand first on PATH)
    exe = Path(sys.executable).parent / "neurorl"
    neurorl = [str(exe)] if exe.exists() else [sys.executable, "-m", "neurorl.cli"]

    if args.agents == ["all"]:
        import neurorl as nr

        args.agents = nr.list_agents()
    jobs = []
    for a in args.agents:
        data = csv if a == "q_learning" else work / f"data_{a}.csv"
        if a != "q_learning":
            make_csv(data, args.subjects, args.trials, args.seed, agent=a)
        jobs.append((a, data, None))
    if args.rt:
        csv_rt = work / "data_rt.csv"
        make_csv(csv_rt, args.subjects, args.trials, args.seed, rt=True)
        jobs.append(("q_learning", csv_rt, "wiener"))

    rows = []
    for agent, data, rt in jobs:
        label = agent + (f" --rt {rt}" if rt else "")
        denv = dict(os.environ, NEURORL_CACHE_DIR=str(Path(tempfile.mkdtemp(prefix="cache-", dir=work))))
        env = without_dask(denv, work)
        cmd = neurorl + ["fit", str(data), "--agent", agent, "--no-figures", "--quiet", "-o", str(work / "fit.nc")]
        cmd += ["--rt", rt] if rt else []
        first = timed(cmd, env)
        later = timed(cmd, env)
        warm = warm_time(data, agent, env, rt)
        row = {"model": label, "first": first, "later": later, "warm": warm}
        if with_dask:
            row["later_dask"] = timed(cmd, denv)
        if args.pytensor:
            penv = dict(env, PYTENSOR_FLAGS=f"compiledir={tempfile.mkdtemp(prefix='pt-', dir=work)}")
            pcmd = [sys.executable, "-c", PYTENSOR_FIT, str(data), agent, rt or ""]
            row["pt_first"] = timed(pcmd, penv)
            row["pt_later"] = timed(pcmd, penv)
        rows.append(row)
        print(f"  {label}: first ever {first:.2f} s, later {later:.2f} s, warm fit {warm:.2f} s"
              + (f", later with dask installed {row['later_dask']:.2f} s" if with_dask else "")
              + (f"; PyTensor first {row['pt_first']:.1f} s, later {row['pt_later']:.1f} s" if args.pytensor else ""),
              flush=True)

    print()
    head = f"{'model':<22}{'first ever':>11}{'later':>8}{'warm':>7}{'overhead':>9}{'later/plain':>12}{'first/plain':>12}"
    if with_dask:
        head += f"{'later+dask':>11}"
    if args.pytensor:
        head += f"{'PyTensor first':>15}{'PyTensor later':>15}"
    print(f"whole fresh processes, seconds (plain scipy script: {plain:.2f} s, same CSV)")
    print(head)
    for r in rows:
        line = (f"{r['model']:<22}{r['first']:>11.2f}{r['later']:>8.2f}{r['warm']:>7.2f}{r['later'] - r['warm']:>9.2f}"
                f"{r['later'] / plain:>11.2f}x{r['first'] / plain:>11.2f}x")
        if with_dask:
            line += f"{r['later_dask']:>11.2f}"
        if args.pytensor:
            line += f"{r['pt_first']:>15.1f}{r['pt_later']:>15.1f}"
        print(line)

    if args.bayes is not None:
        samplers = args.bayes or ["auto"]
        print("\nfit_bayes in fresh processes, 2 chains x (50 tune + 50 draws): setup = wall - sampling (imports, "
              "model, compilation outside the sampler); PyMC compiles its small graph inside pm.sample")
        print(f"{'model':<22}{'sampler':>9}{'first setup':>12}{'first sampling':>15}{'later setup':>12}"
              f"{'later sampling':>15}")
        for agent, data, rt in jobs:
            if rt:
                continue
            for sampler in samplers:
                env = without_dask(dict(os.environ, NEURORL_CACHE_DIR=str(Path(tempfile.mkdtemp(prefix="cache-",
                                                                                              dir=work)))), work)
                first = bayes_times(data, agent, sampler, env)
                later = bayes_times(data, agent, sampler, env)
                print(f"{agent:<22}{sampler:>9}{first[0]:>12.1f}{first[1]:>15.1f}{later[0]:>12.1f}{later[1]:>15.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
