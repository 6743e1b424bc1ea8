"""``neurorl design`` and ``neurorl recover``: simulation studies."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..parallel import add_arguments as add_parallel_arguments
from ..results import (
    OUTPUT_ATTR,
    read_recover,
)
from ..results import write_groups as _write_groups
from ._common import (
    METHODS,
    UsageError,
    _check_out,
    _command_line,
    _finish,
    _make_agent,
    _make_task,
    _say,
    parse_agent_spec,
)


def _cmd_design(args) -> int:
    from ..fitting.design import design_study, plot_design, recommend

    out = _check_out(args.out)
    agents = {}
    for spec in args.agent:
        name, options, fixed = parse_agent_spec(spec)
        agents[name if name not in agents else f"{name}_{len(agents) + 1}"] = _make_agent(name, options, fixed)
    if len(agents) < 2:
        raise UsageError("design needs at least two --agent candidates")
    designs = {}
    for spec in args.task:
        import re

        label = re.sub(r"[^A-Za-z0-9_-]+", "_", spec.replace(".", "p")).strip("_")
        designs[label] = _make_task(spec)
    cache = Path(args.store) if args.store else out.with_suffix(".cells")
    try:
        study = design_study(agents, designs, args.trials, n_subjects=args.subjects, criterion=args.criterion,
                             estimator_options={"n_starts": args.starts}, seed=args.seed, store=cache,
                             progress=not args.quiet)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rec = recommend(study, args.target)
    study.attrs.update(recommendation=json.dumps(rec), command=_command_line(args))
    _write_groups(out, {"study": study}, {OUTPUT_ATTR: "design", "command": _command_line(args)})
    print(study["accuracy"].to_pandas().to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"recommended (accuracy >= {args.target:g}): {rec['message']}")
    if not args.no_figures:
        from .. import report

        p = report.save(plot_design(study, target=args.target, source=str(out)), out.with_suffix(".png"))
        _say(args, f"figure: {p[0]}")
    print(f"wrote {out} (finished cells in {cache})")
    return 0


# ============================================================================ recover
def _cmd_recover(args) -> int:
    from ..fitting.recovery import DEFAULT_NARROW, model_recovery, parameter_recovery

    out = _check_out(args.out)
    task = _make_task(args.task)
    agents = {}
    for spec in args.agent:
        name, options, fixed = parse_agent_spec(spec)
        label = name if name not in agents else f"{name}_{len(agents) + 1}"
        agents[label] = _make_agent(name, options, fixed)
    centres = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        lab, dot, pname = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--param expects AGENT.PARAM=VALUE, got {item!r}")
        if lab not in agents:
            raise UsageError(f"--param {item}: no agent {lab!r} among {list(agents)}")
        spec = {p.name: p for p in agents[lab].params}
        if pname not in spec:
            raise UsageError(f"--param {item}: {lab!r} has no free parameter {pname!r} ({list(spec)})")
        try:
            v = float(value)
        except ValueError:
            raise UsageError(f"--param {item}: {value!r} is not a number") from None
        p = spec[pname]
        with np.errstate(all="ignore"):
            inside = p.lower < v < p.upper
            loc = float(p.to_unconstrained(v)) if inside else float("nan")
        if not np.isfinite(loc):
            raise UsageError(f"--param {item}: {v} is outside the bounds of {pname!r} ({p.lower}, {p.upper})")
        centres.setdefault(lab, {})[pname] = (loc, args.spread * spec[pname].prior_scale)
    for a in agents.values():
        try:
            a.check_task(task)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    method = METHODS[args.method]
    options = {"n_starts": args.starts}
    show = not args.quiet
    groups = {}
    do_params = args.parameters or len(agents) == 1
    if do_params:
        for lab, a in agents.items():
            _say(args, f"recover: parameter recovery of {lab} ({args.subjects} subjects x "
                       f"{args.trials or task.default_n_trials} trials on {task.name})")
            res = parameter_recovery(a, task, n_subjects=args.subjects, n_trials=args.trials,
                                     params=centres.get(lab), estimator=method, estimator_options=options,
                                     narrow=DEFAULT_NARROW, rng=args.seed, progress=show,
                                     subjects_per_unit=args.subjects_per_unit,
                                     store=Path(args.store) / f"parameter_recovery-{lab}" if args.store else None)
            groups[f"parameter_recovery/{lab}"] = res
            r = ", ".join(f"{p} {float(res['r'].sel(param=p)):.2f}" for p in res.param.values)
            print(f"  {lab}: r(true, estimated) {r}")
    if len(agents) >= 2:
        _say(args, f"recover: model recovery of {', '.join(agents)} ({args.subjects} subjects per generator x "
                   f"{args.trials or task.default_n_trials} trials on {task.name}, selection by {args.criterion})")
        res = model_recovery(agents, task, n_subjects=args.subjects, n_trials=args.trials, params=centres or None,
                             criterion=args.criterion, estimator=method, estimator_options=options, rng=args.seed,
                             progress=show, subjects_per_unit=args.subjects_per_unit,
                             store=Path(args.store) / "model_recovery" if args.store else None)
        groups["model_recovery"] = res
        C = res["confusion"].values
        print("  confusion P(selected | generated), rows = generators:")
        print("  " + " " * 20 + "".join(f"{lab[:10]:>11}" for lab in agents))
        for i, lab in enumerate(agents):
            print(f"  {lab:<20}" + "".join(f"{v:>11.2f}" for v in C[i]))
    _write_groups(out, groups, {OUTPUT_ATTR: "recover", "task": task.name, "task_options": repr(task),
                                "agents": json.dumps({k: repr(v) for k, v in agents.items()}),
                                "command": _command_line(args)})
    if not args.no_figures:
        from .. import report

        rec = read_recover(out)
        paths = []
        if rec["model_recovery"] is not None:
            paths += report.save(report.fig_model_recovery(rec["model_recovery"]),
                                 out.with_name(out.stem + "_models.png"))
        for lab, ds in rec["parameter_recovery"].items():
            paths += report.save(report.fig_parameter_recovery(ds), out.with_name(out.stem + f"_params_{lab}.png"))
        _say(args, "figures: " + ", ".join(str(p) for p in paths))
    print(f"wrote {out}")
    return 0


# ============================================================================ parser
def register(sub) -> None:
    """Add this module's subcommands to the ``neurorl`` parser."""
    # ---- design
    sp = sub.add_parser("design", help="design before data: model recovery over task designs x trials per subject",
                        description="For candidate agents and task designs, simulate subjects from each agent, fit "
                                    "every candidate and report the accuracy of identifying the generating model "
                                    "(95%% Wilson interval) and the confusion matrix per design and trial count, "
                                    "with the cheapest design reaching --target. Seeded per cell; one unit of work "
                                    "per cell (--workers, --scheduler); finished cells are stored beside the output "
                                    "(rerun to resume). Writes netCDF and OUT.png.")
    sp.add_argument("--agent", action="append", required=True, metavar="SPEC",
                    help="candidate agent NAME[:OPTION=VALUE,...,fix.PARAM=VALUE] (repeat)")
    sp.add_argument("--task", action="append", required=True, metavar="SPEC",
                    help="task design NAME[:OPTION=VALUE,...] (repeat for several designs)")
    sp.add_argument("--trials", type=int, nargs="+", required=True, help="trials per subject to try")
    sp.add_argument("--subjects", type=int, default=20, help="simulated subjects per model and cell (default 20)")
    sp.add_argument("--criterion", choices=["bic", "aic", "laplace"], default="bic",
                    help="log evidence used to select a subject's model (default bic)")
    sp.add_argument("--starts", type=int, default=2, help="optimiser starts per fit (default 2)")
    sp.add_argument("--target", type=float, default=0.9, help="accuracy to reach (default 0.9)")
    sp.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    sp.add_argument("--store", "--cache", dest="store", default=None, metavar="DIR",
                    help="folder of finished cells: each is written there as it completes and a rerun resumes from "
                         "it (default OUT.cells beside the output)")
    add_parallel_arguments(sp)
    _finish(sp, _cmd_design, out="design.nc", figures="the PNG figure")

    # ---- recover
    sp = sub.add_parser("recover", help="parameter recovery (one agent) or model recovery (several)",
                        description="Simulate subjects with known parameters and refit them. With one agent: "
                                    "parameter recovery (r, bias, RMSE per parameter). With several: model recovery "
                                    "(confusion matrix P(selected | generated), inversion matrix, BMS per "
                                    "generator); add --parameters for both. Writes netCDF and PNG figures.")
    sp.add_argument("--agent", "-a", action="append", required=True, metavar="SPEC",
                    help="candidate/generating agent: NAME[:OPTION=VALUE,...,fix.PARAM=VALUE]; repeat")
    sp.add_argument("--task", required=True, metavar="SPEC", help="task: NAME[:OPTION=VALUE,...]")
    sp.add_argument("--subjects", type=int, default=20, help="simulated subjects (per generator) (default 20)")
    sp.add_argument("--trials", type=int, default=None, help="trials per subject (default: the task's own)")
    sp.add_argument("--param", action="append", metavar="AGENT.PARAM=VALUE",
                    help="centre of the generating distribution of a parameter (constrained scale); subjects draw "
                         "the unconstrained value from N(centre, (spread * prior scale)^2). Default: the "
                         "parameter's default value")
    sp.add_argument("--spread", type=float, default=0.2,
                    help="SD of the generating distribution around --param centres, in prior scales (default 0.2)")
    sp.add_argument("--method", choices=sorted(METHODS), default="map", help="estimator (default map)")
    sp.add_argument("--criterion", choices=["bic", "aic", "laplace"], default="bic",
                    help="model selection criterion per subject (default bic)")
    sp.add_argument("--starts", type=int, default=3, help="starting points per subject (default 3)")
    sp.add_argument("--parameters", action="store_true", help="with several agents, also run parameter recovery")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--subjects-per-unit", type=int, default=None, metavar="N",
                    help="fit blocks of N subjects as separate units of work (default: one unit per model)")
    sp.add_argument("--store", default=None, metavar="DIR",
                    help="write every finished unit to DIR and resume from it when rerun (a resumable study)")
    add_parallel_arguments(sp)
    _finish(sp, _cmd_recover, out="recover.nc", figures="the PNG figures")
