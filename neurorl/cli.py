"""The ``neurorl`` command.

Subcommands
-----------
``neurorl list``
    Registered tasks and agents, with each agent's parameters.
``neurorl simulate AGENT TASK``
    Simulate subjects and write trials, latents and parameters to one netCDF
    file (groups ``trials``, ``latents``, ``params``).
``neurorl demo``
    The main job (for now): simulate six agents (Q-learning, soft Q, DRA,
    policy compression, actor-critic, RFLR) on the mouse two-armed bandit with
    a fixed seed, write each agent's netCDF file and print a summary table.

Exit codes: 0 success, 2 bad arguments or input (the message says what is wrong).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .io import write_simulation

DEMO_TASK = "mouse_bandit"
#: The demo's agents: (options, parameters) chosen for 0/1 rewards on the mouse bandit. The agents' own defaults
#: follow their papers' reward scales (e.g. DRA's sigma_base = 5 for rewards around 10).
DEMO_AGENTS = {
    "q_learning": ({}, {"alpha": 0.4, "beta": 5.0}),
    "soft_q": ({}, {"tau": 0.2, "eta": 0.3, "eta_true": 0.3}),
    "dra": ({"sigma_base": 0.5, "sigma0": 0.25}, {"alpha_q": 0.3, "alpha_sigma": 0.1, "lam": 0.05}),
    "policy_compression": ({}, {"beta": 3.0, "alpha_p": 0.01}),
    "actor_critic": ({}, {"alpha_v": 0.3, "alpha_theta": 0.5}),
    "rflr": ({}, {}),  # Beron et al. 2022 80-20 fit (the agent's defaults)
}


def summarize(sim) -> dict:
    """A few behavioural and latent summaries of one simulation."""
    import numpy as np

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
    return 0


def _parse_params(items):
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--param expects NAME=VALUE, got {item!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"--param {name}: {value!r} is not a number") from None
    return out


def _cmd_simulate(args) -> int:
    import neurorl as nr

    sim = nr.simulate(
        args.agent, args.task, n_subjects=args.subjects, n_trials=args.trials,
        params=_parse_params(args.param), rng=args.seed, progress=not args.quiet,
    )
    path = write_simulation(sim, Path(args.out))
    print(f"wrote {path} (groups: trials, latents, params)")
    for k, v in summarize(sim).items():
        print(f"  {k:<14} {v:.4g}" if isinstance(v, float) else f"  {k:<14} {v}")
    return 0


def _cmd_demo(args) -> int:
    import neurorl as nr

    out = Path(args.out)
    rows = []
    names = args.agents or list(DEMO_AGENTS)
    print(f"neurorl demo: {len(names)} agents x {args.subjects} subjects x {args.trials} trials on "
          f"{args.task} (seed {args.seed})")
    for i, name in enumerate(names):
        options, params = DEMO_AGENTS.get(name, ({}, {})) if args.task == DEMO_TASK else ({}, {})
        agent = nr.make_agent(name, **options)
        sim = nr.simulate(agent, args.task, n_subjects=args.subjects, n_trials=args.trials, params=params,
                          rng=args.seed + i, progress=not args.quiet)
        path = write_simulation(sim, out / f"{name}_{args.task}_seed{args.seed + i}.nc")
        rows.append((name, summarize(sim), path))
    keys = [k for k in rows[0][1] if k not in ("subjects", "trials")]
    print(f"\n{'agent':<20}" + "".join(f"{k:>14}" for k in keys))
    for name, summ, _ in rows:
        print(f"{name:<20}" + "".join(f"{summ[k]:>14.4f}" for k in keys))
    print(f"\nwrote {len(rows)} files to {out.resolve()} (each with groups trials, latents, params)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="neurorl", description="Reinforcement-learning models of behaviour and neural data.")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("list", help="list registered tasks and agents with their parameters")
    sp.set_defaults(func=_cmd_list)

    sp = sub.add_parser("simulate", help="simulate an agent on a task and write netCDF")
    sp.add_argument("agent", help="agent name (see `neurorl list`)")
    sp.add_argument("task", help="task name (see `neurorl list`)")
    sp.add_argument("--subjects", type=int, default=20, help="number of simulated subjects (default 20)")
    sp.add_argument("--trials", type=int, default=None, help="trials per subject (default: the task's own)")
    sp.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="parameter value for all subjects; repeat for several (default: the agent's defaults)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--out", default="out/simulation.nc", help="output netCDF path (default out/simulation.nc)")
    sp.add_argument("--quiet", action="store_true", help="no progress bar")
    sp.set_defaults(func=_cmd_simulate)

    sp = sub.add_parser("demo", help="the main job: simulate several agents on the default task, write netCDF, summarise")
    sp.add_argument("--task", default=DEMO_TASK, help=f"task name (default {DEMO_TASK})")
    sp.add_argument("--agents", nargs="+", default=None,
                    help=f"agent names (default: {' '.join(DEMO_AGENTS)}, with parameters suited to the mouse bandit; "
                         "other agents, or another --task, use the agents' defaults)")
    sp.add_argument("--subjects", type=int, default=20, help="subjects per agent (default 20)")
    sp.add_argument("--trials", type=int, default=800, help="trials per subject (default 800)")
    sp.add_argument("--seed", type=int, default=2026, help="base random seed (default 2026; agent i uses seed + i)")
    sp.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    sp.add_argument("--quiet", action="store_true", help="no progress bars")
    sp.set_defaults(func=_cmd_demo)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"neurorl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
