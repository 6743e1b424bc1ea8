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
#: subjects of the quick demo (one per generating model) and its trials per subject
QUICK_SUBJECTS = 3
QUICK_TRIALS = 400


def _quick_subjects(cohort) -> list[str]:
    """One subject per generating model (the first of each, in label order)."""
    truth = _ground_truth(cohort)
    seen, out = set(), []
    for s, m in truth.items():
        if m not in seen:
            seen.add(m)
            out.append(s)
    return out


def _ground_truth(cohort) -> dict[str, str]:
    """``{subject: generating model}`` recorded in the bundled cohort's attributes."""
    import xarray as xr

    with xr.open_dataset(cohort, group="trials", engine="netcdf4") as f:
        text = f.attrs.get("generating_model")
    if not text:
        raise UsageError(f"{str(cohort)!r} does not record its subjects' generating models (attribute "
                         "'generating_model'); regenerate it with `python analyses/make_demo_data.py`")
    return json.loads(text)


def _demo_plan(out: Path, quick: bool, seed: int) -> list[tuple[str, list[str]]]:
    """The demo's stages as ``(title, argv)``: argv of a subcommand, or ``["(demo)", ...]`` for the demo's own
    ground-truth check (:func:`_truth_stage`)."""
    from ..data import demo_paths

    p = demo_paths()
    cohort, neural = str(p["cohort"]), str(p["neural"])
    names = list(DEMO_AGENTS)
    specs = [_spec_string(n, DEMO_AGENTS[n][0]) for n in names]
    agent_args = [a for s in specs for a in ("--agent", s)]
    fit = ["fit", cohort, *agent_args, "--method", "map", "--starts", "1" if quick else "2", "--seed", str(seed),
           "-o", str(out / "fit.nc")]
    if quick:
        fit += ["--subjects", *_quick_subjects(p["cohort"]), "--max-trials", str(QUICK_TRIALS)]
    # the evidence (Laplace where every Hessian is positive definite, else BIC) and BMS; no LOO: it costs more
    # than the fits and is unreliable for DRA here -- `neurorl compare --loo` or `--cv K` add the predictive check
    compare = ["compare", str(out / "fit.nc"), "--seed", str(seed), "-o", str(out / "compare.nc")]
    truth = ["(demo)", "recover-truth", cohort, str(out / "compare.nc"), str(out / "recover.nc")]
    decode = ["decode", neural, "--trials", cohort, "--fit", str(out / "fit.nc"), "--model", "soft_q",
              "--latents", "v", "v_soft", "--task", DEMO_TASK,
              "--nulls", "20" if quick else "100", "--seed", str(seed), "-o", str(out / "decode.nc")]
    if quick:
        decode += ["--subject", *[s for s in _quick_subjects(p["cohort"]) if _ground_truth(p["cohort"])[s] ==
                                  "soft_q"]]
    report = ["report", str(out)]
    return [("fit the models", fit), ("compare evidence (BIC, Laplace, BMS, verdict)", compare),
            ("model recovery against the ground truth", truth), ("decode soft vs true values", decode),
            ("HTML report", report)]


def _truth_stage(cohort: str, compare_path: str, out_path: str, quiet: bool) -> int:
    """Score the comparison against the cohort's known generating models: per-subject recovery (written as a
    ``recover`` output, so that the report shows its confusion matrix) and the BMS frequencies against the true
    mix (95 % posterior intervals of the Dirichlet marginals)."""
    import numpy as np
    from scipy.stats import beta as beta_dist

    from ..fitting.recovery import truth_recovery
    from ..results import OUTPUT_ATTR, read_compare
    from ..results import write_groups as _write_groups

    truth = _ground_truth(cohort)
    c = read_compare(compare_path)
    table, bms = c["table"], c["bms"]
    criterion = str(bms.attrs.get("evidence", "bic"))
    L = table["laplace_log_evidence"] if criterion == "laplace" else -table[criterion] / 2
    subjects = [str(s) for s in L["subject"].values]
    res = truth_recovery(L, {s: truth[s] for s in subjects}, criterion=criterion,
                         task=str(c["attrs"].get("task", DEMO_TASK)), estimator="MAP")
    import xarray as xr

    with xr.open_dataset(cohort, group="trials", engine="netcdf4") as f:
        res.attrs["n_trials"] = int(f.sizes["trial"])
    _write_groups(Path(out_path), {"model_recovery": res},
                  {OUTPUT_ATTR: "recover", "task": DEMO_TASK, "command": f"neurorl demo (ground truth of {cohort})"})
    models = [str(m) for m in table.model.values]
    print(f"{'subject':<9}{'generated by':<14}{'selected':<14}" + "".join(f"{'dlogE ' + m:>18}" for m in models))
    for i, s in enumerate(subjects):
        best = float(L.isel(subject=i).max())
        print(f"{s:<9}{truth[s]:<14}{res.selected_model.values[i]!s:<14}"
              + "".join(f"{float(L.isel(subject=i).sel(model=m)) - best:>18.2f}" for m in models)
              + ("" if bool(res.correct.values[i]) else "   <- wrong"))
    print(f"per-subject recovery ({criterion} evidence): {res.attrs['n_correct']}/{len(subjects)} subjects "
          f"({100 * res.attrs['accuracy']:.0f}%) assigned to their generating model")
    alpha = np.asarray(bms["alpha"].values, float)
    A = alpha.sum()
    rows = []
    for k, m in enumerate([str(x) for x in bms["model"].values]):
        lo, hi = beta_dist.ppf([0.025, 0.975], alpha[k], A - alpha[k])
        true = sum(1 for s in subjects if truth[s] == m) / len(subjects)
        rows.append(f"{m} {alpha[k] / A:.2f} (95% {lo:.2f}-{hi:.2f}; true {true:.2f}"
                    f"{'' if lo <= true <= hi else ', OUTSIDE'})")
    print("BMS model frequencies vs the true mix: " + "; ".join(rows))
    return 0


def _cmd_demo(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    plan = _demo_plan(out, args.quick, args.seed)
    t_all = time.perf_counter()
    print(f"neurorl demo{' --quick' if args.quick else ''}: the bundled synthetic cohort (DRA, max-ent and "
          f"Q-learning subjects on {DEMO_TASK}; neurorl/data/, see data/README.md) through fit -> compare -> "
          f"recovery against the ground truth -> decode -> report; output in {out.resolve()}")
    timings = []
    for i, (title, argv) in enumerate(plan, 1):
        if i == len(plan):  # before the report stage, so that the report shows them
            with atomic_output(out / "demo_timings.json") as tmp:
                tmp.write_text(json.dumps(
                    {"stages": timings, "total_s": time.perf_counter() - t_all, "quick": args.quick,
                     "commands": [["neurorl", *a] for _, a in plan]}, indent=1))
        if args.quiet and argv[0] != "(demo)":
            argv = argv + ["--quiet"]
        shown = ("(the demo's own step: each subject's selected model against the cohort's known generator)"
                 if argv[0] == "(demo)" else f"$ neurorl {' '.join(shlex.quote(a) for a in argv)}")
        print(f"\n[{i}/{len(plan)}] {title}\n{shown}", flush=True)
        t0 = time.perf_counter()
        if argv[0] == "(demo)":
            rc = _truth_stage(*argv[2:], quiet=args.quiet)
        else:
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
    print("stage times: " + ", ".join(f"{t} {s:.0f} s" for t, s in timings))
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
                        description="Run fit (DRA, max-ent soft Q, Q-learning; MAP), compare (BIC, Laplace "
                                    "evidence, random-effects BMS with the BOR, one reconciled verdict), check every "
                                    "subject's selected model against the known generating model, decode (soft vs "
                                    "true values from the neural data, pseudosession nulls) and report on the "
                                    "bundled synthetic cohort of DRA, max-ent and Q-learning subjects "
                                    "(data/README.md). About 1-1.5 minutes of CPU time; prints where the report is.")
    sp.add_argument("--out", "-o", default="out/demo", help="output directory (default out/demo)")
    sp.add_argument("--quick", action="store_true",
                    help="a small version (one subject per generating model, 400 trials, 1 start, 20 nulls)")
    sp.add_argument("--seed", type=int, default=2026, help="random seed of every stage (default 2026)")
    _finish(sp, _cmd_demo)
