"""``neurorl list``, ``neurorl cache`` and ``neurorl simulate``."""
from __future__ import annotations

import numpy as np

from ..io import write_simulation
from ._common import (
    BANDIT_SIM_PARAMS,
    EXTRA_SIM_PARAMS,
    UsageError,
    _check_out,
    _finish,
    _make_agent,
    _make_task,
    _parse_params,
    parse_agent_spec,
)


def summarize(sim) -> dict:
    """A few behavioural and latent summaries of one simulation."""
    tr, lat = sim.trials, sim.latents
    valid = tr["valid"].values
    out = {
        "subjects": tr.sizes["subject"],
        "trials": tr.sizes["trial"],
        "mean_reward": float(np.nanmean(np.where(valid, tr["reward"].values, np.nan))),
        "mean_entropy": float(lat["entropy"].mean()),
        "mean_abs_rpe": float(abs(lat["rpe"]).mean()),
        "mean_v": float(lat["v"].mean()),
        "mean_v_soft": float(lat["v_soft"].mean()),
    }
    if "high_port" in tr:
        out["p_high_port"] = float((tr["choice"] == tr["high_port"]).where(tr["valid"]).mean())
    return out


def _cmd_list(args) -> int:
    import neurorl as nr

    print("tasks:")
    for t in nr.list_tasks():
        task = nr.make_task(t)
        env = task.env
        print(f"  {t:<24} {env.n_states} states, {env.n_actions} actions")
    print("agents:")
    for a in nr.list_agents():
        print("  " + nr.make_agent(a).describe().replace("\n", "\n  "))
    from ..formats import get_format, list_formats

    print("formats (fit DATA --format NAME; docs/bring-your-data.md):")
    for name in list_formats():
        f = get_format(name)
        print(f"  {name:<24} {f.summary}; columns {', '.join(f.columns)}")
    return 0


def _cmd_simulate(args) -> int:
    import neurorl as nr

    out = _check_out(args.out)
    name, options, fixed = parse_agent_spec(args.agent)
    params = {}
    if args.demo_params:
        table = {**BANDIT_SIM_PARAMS, **EXTRA_SIM_PARAMS}
        if name not in table:
            raise UsageError(f"--demo-params: no demo values for {name!r} (have {sorted(table)})")
        opt0, params = table[name]
        options = {**{k: v for k, v in opt0.items() if k != "fixed"}, **options}
        fixed = {**(opt0.get("fixed") or {}), **fixed}
        params = dict(params)
    params.update(_parse_params(args.param))
    agent = _make_agent(name, options, fixed)
    task = _make_task(args.task)
    try:
        sim = nr.simulate(agent, task, n_subjects=args.subjects, n_trials=args.trials, params=params,
                          rng=args.seed, progress=not args.quiet)
    except ValueError as exc:
        raise UsageError(f"simulate {args.agent} on {args.task}: {exc}") from None
    path = write_simulation(sim, out)
    print(f"wrote {path} (groups: trials, latents, params)")
    if args.csv:
        p = nr.write_trials(sim.trials, _check_out(args.csv, "--csv", (".csv", ".tsv", ".txt"),
                                                      inputs=[out]))
        print(f"wrote {p} (+ {p.name}.json sidecar)")
    for k, v in summarize(sim).items():
        print(f"  {k:<14} {v:.4g}" if isinstance(v, float) else f"  {k:<14} {v}")
    return 0


# ============================================================================ cache
def _cmd_cache(args) -> int:
    from ..backend import cache

    info = cache.clear() if args.action == "clear" else cache.cache_info()
    size = f"{info['files']} files, {info['bytes'] / 1e6:.1f} MB"
    if args.action == "clear":
        print(f"cleared {info['path']} ({size}, {len(info['models'])} compiled model structures)")
        return 0
    print(f"cache: {info['path']}\nsize: {size}\ncompiled model structures: {len(info['models'])}")
    for m in info["models"]:
        print(f"  {m}")
    return 0


# ============================================================================ parser


def register(sub) -> None:
    """Add this module's subcommands to the ``neurorl`` parser."""

    sp = sub.add_parser("list", help="list registered tasks and agents with their parameters",
                        description="List the registered tasks (states, actions) and agents (parameters with "
                                    "bounds, transforms and defaults).")
    _finish(sp, _cmd_list)

    # ---- cache
    sp = sub.add_parser("cache", help="show or clear the cache of compiled likelihoods",
                        description="Compiled likelihoods are built once per machine and kept on disk (see "
                                    "docs/architecture.md). `neurorl cache info` shows where, how big and which "
                                    "models; `neurorl cache clear` deletes them (the next fit of each model "
                                    "compiles again). The folder is $NEURORL_CACHE_DIR, else "
                                    "$XDG_CACHE_HOME/neurorl, else ~/.cache/neurorl.")
    sp.add_argument("action", choices=["info", "clear"], help="info: location, size and models; clear: delete")
    _finish(sp, _cmd_cache)

    # ---- simulate
    sp = sub.add_parser("simulate", help="simulate an agent on a task and write netCDF (and CSV)",
                        description="Simulate subjects of an agent on a task. Writes one netCDF file with groups "
                                    "trials, latents and params (read it with neurorl.read_simulation), and with "
                                    "--csv the trials as a CSV table with its JSON sidecar.")
    sp.add_argument("agent", help="agent: NAME[:OPTION=VALUE,...,fix.PARAM=VALUE] (see `neurorl list`)")
    sp.add_argument("task", help="task: NAME[:OPTION=VALUE,...], e.g. mouse_bandit:p_high=0.9")
    sp.add_argument("--subjects", type=int, default=20, help="number of simulated subjects (default 20)")
    sp.add_argument("--trials", type=int, default=None, help="trials per subject (default: the task's own)")
    sp.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="parameter value for all subjects; repeat for several (default: the agent's defaults)")
    sp.add_argument("--demo-params", action="store_true",
                    help="start from options and parameter values typical of a mouse on a 0/1-reward bandit")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--out", "-o", default="out/simulation.nc", help="output netCDF path (default out/simulation.nc)")
    sp.add_argument("--csv", default=None, metavar="PATH.csv", help="also write the trials as CSV (+ .json sidecar)")
    _finish(sp, _cmd_simulate)
