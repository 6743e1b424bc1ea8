"""Parameter recovery of hBayesDM's learning models by data size: MAP by decisions per subject, NUTS with hBayesDM's
priors.

Reference: ``reference/fitting.md`` §8 (parameter recovery: simulate from known parameters, refit, correlate),
hBayesDM's ``bandit4arm_*`` models (Seymour et al. 2012; Aylward et al. 2019) and its Iowa-gambling models whose
parameters 200 choices do not identify (PVL-decay, VPP, ORL; docs/agents.md, "hBayesDM's reinforcement-learning
catalogue").

What is run
-----------
For every model, ``n_subjects`` subjects are drawn and simulated on the model's task: the ``bandit4arm`` models on
``bandit4arm`` from the recovery population (:func:`neurorl.agents.bandit4arm.gain_loss_population`: learning rates
median 0.3, sensitivities median 5 of 30, lapse rate median 0.05, decay median 0.2; all with logit sd 0.5-0.7),
the ``igt_*`` models on ``iowa_gambling`` from :func:`neurorl.fitting.recovery.parameter_recovery`'s default
population (around the agents' defaults).

1. **MAP by size.** Each data size in ``trials`` (decisions per subject) is simulated and fitted by MAP
   (``starts`` starts per subject); r is the correlation of true and estimated values on the constrained scale,
   and a parameter is *identified* at ``min_r`` (:func:`neurorl.fitting.recovery.parameter_recovery`, which also
   flags parameters no fit found information about). The smallest size at which every parameter is identified
   is reported per model.
2. **NUTS with hBayesDM's priors** at the sizes in ``nuts_trials``: one hierarchical fit of all subjects
   (``fit_bayes(..., priors="hbayesdm")``; ``draws``, ``tune``, ``chains``, ``sampler``), r of the posterior
   means, and the number of subjects whose parameters all have R-hat <= 1.01.

Assumptions ([A])
-----------------
* The population is a chosen, plausible one (small lapse rates, moderate sensitivities), not hBayesDM's prior
  predictive; the same for every size and estimator.
* One data set per model and size (seed ``seed``); r of 20 subjects has a standard error of about 0.1-0.2 in this
  range, so differences below that are not read as differences.
* ``min_r`` = 0.5 marks a parameter as identified; ``|r|`` between 0.5 and 0.7 is weak recovery.

Usage::

    python analyses/hbayesdm_recovery.py
    python analyses/hbayesdm_recovery.py --quick

Outputs: ``results/hbayesdm_recovery_seed<seed>/`` (``result.md``, ``recovery.png``) and, unless ``--quick`` or
``--no-docs``, ``docs/analyses/hbayesdm_recovery.md`` with ``docs/analyses/img/hbayesdm_recovery_*.png``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neurorl.analysis import AnalysisOutput, parse_args
from neurorl.fitting.bayes import _resolve_sampler

NAME = "hbayesdm_recovery"
#: the task of each model family (prefix of the agent's name)
TASKS = {"bandit4arm": "bandit4arm", "igt": "iowa_gambling"}
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    """Parameter recovery of hBayesDM's learning models: MAP by data size, NUTS with hBayesDM's priors."""

    seed: int = 0
    quick: bool = False
    models: str = ("bandit4arm_4par,bandit4arm_lapse,bandit4arm_lapse_decay,bandit4arm_singleA_lapse,"
                   "bandit4arm_2par_lapse,igt_pvl_decay,igt_vpp,igt_orl")
    n_subjects: int = 20
    trials: str = "300,1000,3000,10000"
    starts: int = 2
    nuts_trials: str = "300"
    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    sampler: str = "auto"
    min_r: float = 0.5
    out_root: str = ""
    docs_dir: str = ""
    docs: bool = True


QUICK = {"models": "bandit4arm_lapse,igt_orl", "n_subjects": 8, "trials": "100,300", "nuts_trials": "100", "draws": 100,
         "tune": 100}


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def recover(model: str, n_trials: int, args: Args, estimator: str) -> dict:
    """One recovery study: ``{"r": {param: r}, "identified": {param: bool}, "rhat_ok": int | None, "seconds"}``."""
    from neurorl.agents.bandit4arm import gain_loss_population
    from neurorl.fitting.recovery import parameter_recovery

    agent = model
    task = TASKS[model.split("_")[0]]
    population = gain_loss_population(agent) if task == "bandit4arm" else None
    if estimator == "MAP":
        opts = {"n_starts": args.starts}
    else:
        opts = {"priors": "hbayesdm", "sampler": args.sampler, "draws": args.draws, "tune": args.tune,
                "chains": args.chains}
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the flags are in the result (identified) and reported below
        res = parameter_recovery(agent, task, n_subjects=args.n_subjects, n_trials=n_trials,
                                 params=population, rng=args.seed, estimator=estimator,
                                 estimator_options=opts, progress=False, min_r=args.min_r)
    names = [str(p) for p in res["param"].values]
    return {"r": {p: float(res["r"].sel(param=p)) for p in names},
            "identified": {p: bool(res["identified"].sel(param=p)) for p in names},
            "rhat_ok": int(res["converged"].sum()) if estimator == "NUTS" else None,
            "seconds": time.perf_counter() - t0}


def _doc_section(head: str) -> str:
    """The body of a section of this module's docstring (up to the next heading or ``Usage::``)."""
    lines = __doc__.split(head + "\n", 1)[1].splitlines()[1:]  # after the heading's underline
    body = []
    for i, line in enumerate(lines):
        if line.startswith("Usage::") or (i + 1 < len(lines) and set(lines[i + 1]) == {"-"}):
            break
        body.append(line)
    return "\n".join(body).strip()


def _fmt(study: dict) -> str:
    return ", ".join(f"{p} {r:.2f}" + ("" if study["identified"][p] else " (not identified)")
                     for p, r in study["r"].items())


def plot(rows: dict, sizes: list[int], models: list[str], min_r: float):
    import matplotlib.pyplot as plt

    ncol = min(4, len(models))
    nrow = -(-len(models) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 3.0 * nrow), sharey=True, squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(axes.flat, models):
        studies = [rows[(model, n)] for n in sizes]
        for p in studies[0]["r"]:
            ax.plot(sizes, [s["r"][p] for s in studies], marker="o", label=p)
        ax.axhline(min_r, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(n) for n in sizes])
        ax.set_title(model, fontsize=9)
        ax.set_xlabel("decisions per subject")
        ax.legend(fontsize=7, loc="lower right")
    for row in axes:
        row[0].set_ylabel("r (true vs MAP estimate)")
    axes[0][0].set_ylim(-0.2, 1.0)
    fig.tight_layout()
    return fig


def main(args: Args) -> dict:
    output = AnalysisOutput.start(NAME, args, quick=QUICK, repo=REPO)
    args = output.args
    models, sizes, nuts_sizes = args.models.split(","), _ints(args.trials), _ints(args.nuts_trials)
    t_all = time.perf_counter()
    rows, nuts = {}, {}
    for model in models:
        for n in sizes:
            rows[(model, n)] = s = recover(model, n, args, "MAP")
            print(f"MAP  {model:<24} {args.n_subjects} x {n:>5}: {_fmt(s)} ({s['seconds']:.1f} s)", flush=True)
    for model in models:
        for n in nuts_sizes:
            nuts[(model, n)] = s = recover(model, n, args, "NUTS")
            print(f"NUTS {model:<24} {args.n_subjects} x {n:>5}: {_fmt(s)}; R-hat <= 1.01 for {s['rhat_ok']} of "
                  f"{args.n_subjects} subjects ({s['seconds'] / 60:.1f} min)", flush=True)

    output.save(plot(rows, sizes, models, args.min_r), "recovery")
    head = "| model | " + " | ".join(f"{args.n_subjects} × {n}" for n in sizes) + " | smallest size identifying all |"
    lines = [head, "|" + "---|" * (len(sizes) + 2)]
    for model in models:
        ok = [n for n in sizes if all(rows[(model, n)]["identified"].values())]
        lines.append(f"| `{model}` | " + " | ".join(_fmt(rows[(model, n)]) for n in sizes)
                     + f" | {ok[0] if ok else f'none up to {sizes[-1]}'} |")
    map_table = "\n".join(lines)
    lines = ["| model | size | r of posterior means | subjects with R-hat ≤ 1.01 | minutes |", "|---|---|---|---|---|"]
    for (model, n), s in nuts.items():
        lines.append(f"| `{model}` | {args.n_subjects} × {n} | {_fmt(s)} | {s['rhat_ok']} of "
                     f"{args.n_subjects} | {s['seconds'] / 60:.1f} |")
    nuts_table = "\n".join(lines)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    sections = {
        "What was run": (f"`{output.command()}` — {time.strftime('%d %B %Y')}, {os.cpu_count()} CPUs, load average "
                         f"{load:.1f} at the end, {(time.perf_counter() - t_all) / 60:.1f} min in all, Python "
                         f"{sys.version.split()[0]}.\n\n" + _doc_section("What is run")),
        "MAP by data size": ("r of true and estimated values (constrained scale); *not identified*: r below "
                             f"{args.min_r} or no information found by the fits.\n\n" + map_table),
        "NUTS with hBayesDM's priors": (f"{args.chains} chains × ({args.tune} tuning + {args.draws} draws), "
                                        f"sampler `{args.sampler}` ({_resolve_sampler(args.sampler)} here).\n\n"
                                        + nuts_table),
        "Figures": "",
        "Assumptions": _doc_section("Assumptions ([A])"),
    }
    output.write("hBayesDM's learning models: parameter recovery by data size", sections,
                 [("recovery", "r of true and MAP-estimated values by decisions per subject, one panel per model "
                               f"({args.n_subjects} subjects per point, seed {args.seed}); dashed: min_r "
                               f"{args.min_r}.")])
    return {"map": rows, "nuts": nuts}


if __name__ == "__main__":
    main(parse_args(Args))
