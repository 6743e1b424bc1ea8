"""``neurorl decode``: which latent do the units encode."""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from ..parallel import add_arguments as add_parallel_arguments
from ..results import (
    OUTPUT_ATTR,
    read_decode,
    read_fit,
)
from ..results import write_groups as _write_groups
from ._common import (
    UsageError,
    _agent_of,
    _check_out,
    _command_line,
    _finish,
    _make_agent,
    _make_task,
    _parse_params,
    _say,
    _task_from_attrs,
    parse_agent_spec,
    read_data,
)


def _read_neural_file(path):
    import xarray as xr

    from ..decoding.neural import read_neural

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{str(path)!r}: no such file")
    try:
        obj = read_neural(path)
    except (ValueError, TypeError, OSError) as exc:
        raise UsageError(f"{str(path)!r}: {exc}") from None
    if isinstance(obj, xr.Dataset):
        names = [k for k in ("counts", "rate") if k in obj.data_vars]
        if not names:
            raise UsageError(f"{str(path)!r}: no 'counts' or 'rate' variable (variables: {list(obj.data_vars)})")
        da = obj[names[0]]
    else:
        da = obj
    need = {"trial", "unit"}
    if not need <= set(da.dims):
        raise UsageError(f"{str(path)!r}: neural data need dims (trial, unit[, time]) (and optionally subject); "
                         f"found {da.dims}")
    return da


def _cmd_decode(args) -> int:
    import xarray as xr

    from ..decoding.compare import compare_latents
    from ..decoding.nulls import pseudosession_latents
    from ..simulate import replay

    out = _check_out(args.out, inputs=[args.neural, args.trials, args.fit])
    neural = _read_neural_file(args.neural)
    fit = read_fit(args.fit) if args.fit else None
    if args.trials:
        trials, _ = read_data(args.trials)
    elif fit is not None:
        trials = fit["trials"]
    else:
        raise UsageError("decode needs the behaviour: --trials DATA (or --fit FIT.nc, whose trials are used)")
    # the model whose latents are decoded, and its parameters per subject
    if fit is not None:
        label = args.model or next(iter(fit["models"]))
        if label not in fit["models"]:
            raise UsageError(f"{str(args.fit)!r} has no model {label!r} (models: {list(fit['models'])})")
        m = fit["models"][label]
        agent = _agent_of({**m["spec"], "rt": None})
        params = m["params"]
        if m["spec"].get("covariates"):
            raise UsageError(f"--model {label}: decoding latents of a fit with covariates is not supported here; "
                             "replay the model in Python (estimator.latents())")
    elif args.agent:
        name, options, fixed = parse_agent_spec(args.agent)
        agent = _make_agent(name, options, fixed)
        params = _parse_params(args.param)
        label = name
    else:
        raise UsageError("decode needs the model: --fit FIT.nc [--model LABEL], or --agent NAME [--param k=v ...]")
    cands = list(args.latents)
    missing = [c for c in cands if c.split("[")[0] not in agent.latent_dims]
    if missing:
        raise UsageError(f"--latents {missing}: not latents of {agent.name!r} (latents: {sorted(agent.latent_dims)})")
    task = _make_task(args.task) if args.task else _task_from_attrs(trials.attrs)
    if task is None and args.nulls > 0:
        raise UsageError(f"pseudosession nulls need the task's generator: pass --task NAME[:OPTION=VALUE,...] "
                         f"({str(args.trials or args.fit)!r} does not record it), or --nulls 0")
    subjects_neural = [s for s in np.atleast_1d(neural["subject"].values).tolist()] if "subject" in neural.dims \
        else None
    tsub = [s for s in trials["subject"].values.tolist()]
    if subjects_neural is None:
        if "subject" in neural.coords:
            subjects_neural = [neural["subject"].values.item()]
        elif len(tsub) == 1:
            subjects_neural = tsub
        elif args.subject and len(args.subject) == 1:
            subjects_neural = [args.subject[0]]
        else:
            raise UsageError(f"{str(args.neural)!r} has no subject dimension or label and the behaviour holds "
                             f"{len(tsub)} subjects: pass --subject LABEL")
    by_str = {str(s): s for s in tsub}
    wanted = args.subject or [str(s) for s in subjects_neural]
    for s in wanted:
        if s not in by_str:
            raise UsageError(f"subject {s!r} is not in the behaviour {str(args.trials or args.fit)!r} (subjects: "
                             f"{list(by_str)[:12]})")
        if "subject" in neural.dims and s not in [str(v) for v in subjects_neural]:
            raise UsageError(f"subject {s!r} is not in the neural data {str(args.neural)!r} (subjects: "
                             f"{[str(v) for v in subjects_neural][:12]})")
    if args.max_subjects:
        wanted = wanted[: args.max_subjects]
    _say(args, f"decode: {', '.join(cands)} of {label} in {len(wanted)} subject(s) of {args.neural}, "
               f"{args.nulls} pseudosession nulls, time {args.time}")
    sel = trials.sel(subject=[by_str[s] for s in wanted])
    if isinstance(params, xr.Dataset):
        fitted = {str(v) for v in params["subject"].values.tolist()}
        lost = [s for s in wanted if s not in fitted]
        if lost:
            raise UsageError(f"subject(s) {lost} were not fitted in {str(args.fit)!r} (fitted: {sorted(fitted)[:12]})")
        params = params.sel(subject=sel["subject"].values)
    try:
        latents = replay(agent, sel, params)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"replaying {label} on {str(args.trials or args.fit)!r}: {exc}") from None
    groups = {}
    rng = np.random.default_rng(args.seed)
    rows = []
    from ..progress import iterate

    iterator = iterate(wanted, not args.quiet, "decode subjects", unit="subjects")
    for s in iterator:
        lab = by_str[s]
        nd = neural.sel(subject=_neural_label(neural, s)) if "subject" in neural.dims else neural
        nd = nd.drop_vars("subject", errors="ignore")
        lat_s = latents.sel(subject=lab)
        tr_s = sel.sel(subject=lab)
        merged = lat_s.assign(trial_index=tr_s["trial_index"]) if "trial_index" in tr_s else lat_s
        null = None
        if args.nulls > 0:
            p_s = {k: float(v.sel(subject=lab)) for k, v in params.data_vars.items()} \
                if isinstance(params, xr.Dataset) else dict(params)
            null = pseudosession_latents(agent, task, p_s, n=args.nulls, n_trials=int(tr_s["valid"].size),
                                         rng=rng)
        try:
            res = compare_latents(nd, merged, cands, null_latents=null, time=args.time,
                                  store=Path(args.store) / ("nulls-" + re.sub(r"[^A-Za-z0-9_.-]", "_", str(s)))
                                  if args.store and null is not None else None)
        except ValueError as exc:
            raise UsageError(f"{str(args.neural)!r}, subject {s!r}: {exc}") from None
        res = res.assign_coords(subject_label=str(s))
        if "null_score" in res:
            res["null_score"] = res["null_score"].astype(np.float32)
        groups[f"subjects/{s}"] = res
        rows.append((s, res))
    attrs = {OUTPUT_ATTR: "decode", "neural": str(args.neural), "model": label, "agent": repr(agent),
             "candidates": json.dumps(cands), "subjects": json.dumps([str(s) for s in wanted]),
             "n_nulls": int(args.nulls), "time_mode": args.time, "command": _command_line(args),
             "align_event": str(neural.attrs.get("align_event", ""))}
    if "group" in neural.coords:
        attrs["unit_groups"] = json.dumps([str(g) for g in neural["group"].values])
    _write_groups(out, groups, attrs)
    _print_decode(rows, cands)
    if not args.no_figures:
        from .. import report

        p = report.save(report.fig_decoding(read_decode(out)), out.with_suffix(".png"))
        _say(args, f"figure: {p[0]}")
    print(f"wrote {out}")
    return 0


def _neural_label(neural, s):
    for v in neural["subject"].values.tolist():
        if str(v) == s:
            return v
    return s


def _print_decode(rows, cands):
    # the report's sign convention: candidate 2 - candidate 1 (compare_latents stores candidate 1 - candidate 2)
    print(f"{'subject':<10}" + "".join(f"{'peak R2 ' + c:>16}" for c in cands) + f"{'difference':>14}{'p':>8}  "
          "difference of")
    for s, res in rows:
        pop = res["score"].mean("unit")
        peak = [float(pop.sel(candidate=c).max()) for c in cands]
        d = -res["population_diff"].isel(pair=0)
        p = res["p_population"].isel(pair=0) if "p_population" in res else None
        i = int(np.argmax(np.abs(np.atleast_1d(d.values))))
        dv = float(np.atleast_1d(d.values)[i])
        pv = float(np.atleast_1d(p.values)[i]) if p is not None else float("nan")
        print(f"{s!s:<10}" + "".join(f"{v:>16.4f}" for v in peak) + f"{dv:>+14.4f}{pv:>8.3f}  "
              f"{cands[1]} − {cands[0]}")
    n_null = next((int(res.sizes["draw"]) for _, res in rows if "draw" in res.dims), None)
    floor = f"; p cannot be below its floor 1/(n_null + 1) = {1 / (n_null + 1):.3f}" if n_null else ""
    print("(peak over time of the population-mean CV R2; the paired difference where it is largest, with its "
          f"two-sided pseudosession p{floor})")


# ============================================================================ parser


def register(sub) -> None:
    """Add this module's subcommands to the ``neurorl`` parser."""
    # ---- decode
    sp = sub.add_parser("decode", help="which latent do the units encode? held-out encoding with pseudosession nulls",
                        description="For each subject with neural data: replay the model on the subject's trials, "
                                    "fit the same OLS encoding model y ~ 1 + latent for every candidate latent to "
                                    "every unit (and time bin), score it by blocked cross-validated R2, and compare "
                                    "the candidates per unit and for the population against pseudosession nulls "
                                    "(sessions regenerated by the task and the fitted agent). Writes netCDF (a "
                                    "group per subject) and the time-course figure OUT.png.")
    sp.add_argument("neural", help="neural netCDF: a (trial, unit, time) DataArray (counts or rate), or a Dataset "
                                   "with 'counts'/'rate' (subject, trial, unit, time); trial = behavioural labels")
    sp.add_argument("--trials", default=None, metavar="DATA",
                    help="behaviour (CSV/netCDF); default: the trials stored in --fit")
    sp.add_argument("--fit", default=None, metavar="FIT.nc", help="fit file whose model and estimates give the latents")
    sp.add_argument("--model", default=None, metavar="LABEL", help="model of the fit file (default: its first)")
    sp.add_argument("--agent", default=None, metavar="SPEC", help="without --fit: the agent to replay")
    sp.add_argument("--param", action="append", metavar="NAME=VALUE", help="without --fit: parameter values")
    sp.add_argument("--latents", nargs="+", default=["v", "v_soft"],
                    help="candidate latents, at least two (default: v v_soft); 'q[1]' picks an action")
    sp.add_argument("--task", default=None, metavar="SPEC",
                    help="task generator for the pseudosessions (default: recorded in the trials' attributes)")
    sp.add_argument("--nulls", type=int, default=200, help="pseudosessions per subject (default 200; 0: none)")
    sp.add_argument("--store", default=None, metavar="DIR",
                    help="write every finished batch of null draws to DIR (a folder per subject) and resume from it "
                         "when rerun")
    sp.add_argument("--time", choices=["resolved", "pooled"], default="resolved",
                    help="score every time bin (default) or the activity summed over time")
    sp.add_argument("--subject", nargs="+", default=None, metavar="LABEL", help="decode only these subjects")
    sp.add_argument("--max-subjects", type=int, default=None, help="decode at most this many subjects")
    sp.add_argument("--seed", type=int, default=0, help="random seed of the pseudosessions (default 0)")
    add_parallel_arguments(sp)
    _finish(sp, _cmd_decode, out="decode.nc", figures="the PNG figure")
