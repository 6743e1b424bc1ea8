"""``neurorl report`` and ``neurorl demo``."""
from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

from ..results import (
    atomic_output,
)
from ._common import DEMO_AGENTS, DEMO_TASK, UsageError, _finish, _spec_string


def _cmd_report(args) -> int:
    from ..report import build_report

    d = Path(args.directory)
    if not d.is_dir():
        raise UsageError(f"{str(d)!r}: no such directory")
    path = build_report(d, out=args.out, title=args.title)
    print(f"report: {path.resolve()} ({path.stat().st_size / 1e6:.2f} MB, self-contained)")
    return 0


# ============================================================================ demo
def _demo_plan(out: Path, quick: bool, seed: int) -> list[tuple[str, list[str]]]:
    """The demo's stages as ``(title, argv)`` of the subcommands it runs."""
    from ..data import demo_paths

    p = demo_paths()
    cohort, neural = str(p["cohort"]), str(p["neural"])
    names = ["q_learning", "soft_q"] if quick else list(DEMO_AGENTS)
    specs = [_spec_string(n, DEMO_AGENTS[n][0]) for n in names]
    agent_args = [a for s in specs for a in ("--agent", s)]
    fit = ["fit", cohort, *agent_args, "--method", "map", "--starts", "1" if quick else "3", "--seed", str(seed),
           "-o", str(out / "fit.nc")]
    if quick:
        fit += ["--subjects", "m01", "m02", "m03", "m04", "--max-trials", "150"]
    # no exact-CV fallback in the demo: refitting DRA's unreliable subjects 10 times costs minutes; the verdict
    # then leaves the unreliable LOO out and says so (`neurorl compare --loo` does the fallback by default)
    compare = ["compare", str(out / "fit.nc"), "--loo", "--cv-fallback-folds", "0", "--draws",
               "300" if quick else "1000", "--seed", str(seed),
               "-o", str(out / "compare.nc")]
    params = [f"--param={n}.{k}={v}" for n in names for k, v in DEMO_AGENTS[n][1].items()]
    recover = ["recover", *agent_args, "--task", DEMO_TASK, "--subjects", "3" if quick else "6", "--trials",
               "100" if quick else "300", "--starts", "1", "--criterion", "bic", *params, "--seed", str(seed),
               "-o", str(out / "recover.nc")]
    decode = ["decode", neural, "--trials", cohort, "--fit", str(out / "fit.nc"), "--model", "soft_q",
              "--latents", "v", "v_soft",
              "--nulls", "20" if quick else "200", "--seed", str(seed), "-o", str(out / "decode.nc")]
    if quick:
        decode += ["--subject", "m01", "m02"]
    report = ["report", str(out)]
    return [("fit the models", fit), ("compare evidence (BIC, BMS, LOO)", compare),
            ("model recovery", recover), ("decode soft vs true values", decode), ("HTML report", report)]


def _cmd_demo(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    plan = _demo_plan(out, args.quick, args.seed)
    t_all = time.perf_counter()
    print(f"neurorl demo{' --quick' if args.quick else ''}: the bundled synthetic mouse cohort "
          f"(neurorl/data/, see data/README.md) through fit -> compare -> recover -> decode -> report; output in "
          f"{out.resolve()}")
    timings = []
    for i, (title, argv) in enumerate(plan, 1):
        if i == len(plan):  # before the report stage, so that the report shows them
            with atomic_output(out / "demo_timings.json") as tmp:
                tmp.write_text(json.dumps(
                    {"stages": timings, "total_s": time.perf_counter() - t_all, "quick": args.quick,
                     "commands": [["neurorl", *a] for _, a in plan]}, indent=1))
        if args.quiet:
            argv = argv + ["--quiet"]
        print(f"\n[{i}/{len(plan)}] {title}\n$ neurorl {' '.join(shlex.quote(a) for a in argv)}", flush=True)
        t0 = time.perf_counter()
        from . import build_parser

        sub = build_parser().parse_args(argv)
        sub.debug = args.debug
        sub._argv = ["neurorl", *argv]
        rc = sub.func(sub)
        timings.append((title, time.perf_counter() - t0))
        if rc != 0:
            return rc
    total = time.perf_counter() - t_all
    from ..report import headline

    print("\n" + headline(out))
    print(f"\ndemo finished in {total:.0f} s; open the report: {(out / 'report.html').resolve()}")
    return 0




def register(sub) -> None:
    """Add this module's subcommands to the ``neurorl`` parser."""
    # ---- report
    sp = sub.add_parser("report", help="build a self-contained HTML report from the outputs in a directory",
                        description="Collect the files written by fit, compare, recover and decode in DIRECTORY "
                                    "(found by their neurorl_output attribute) and write one HTML file with every "
                                    "figure embedded (base64 PNG; no external assets), tables and the commands.")
    sp.add_argument("directory", help="directory holding the outputs")
    sp.add_argument("--out", "-o", default=None, help="HTML file (default DIRECTORY/report.html)")
    sp.add_argument("--title", default=None, help="report title")
    _finish(sp, _cmd_report)

    # ---- demo
    sp = sub.add_parser("demo", help="the whole pipeline on the bundled dataset, with an HTML report",
                        description="Run fit (Q-learning, max-ent soft Q, DRA, policy compression; MAP), compare "
                                    "(BIC, random-effects BMS with protected exceedance probabilities, Laplace "
                                    "PSIS-LOO), recover (model-recovery confusion matrix), decode (soft vs true "
                                    "values from the neural data, pseudosession nulls) and report on the bundled "
                                    "synthetic mouse cohort, whose ground truth is known (data/README.md). "
                                    "A few minutes on 2 cores; prints where the report is.")
    sp.add_argument("--out", "-o", default="out/demo", help="output directory (default out/demo)")
    sp.add_argument("--quick", action="store_true",
                    help="a small version (2 models, 4 subjects x 150 trials, few draws): under a minute")
    sp.add_argument("--seed", type=int, default=2026, help="random seed of every stage (default 2026)")
    _finish(sp, _cmd_demo)
