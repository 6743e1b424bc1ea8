"""Design before data: the cheapest design that tells DRA, max-ent and Q-learning apart (docs/tasks.md).

For the three candidate models of the demo (``dra``, ``soft_q`` with its true critic's rate fixed, ``q_learning``)
and the task designs in ``designs``, :func:`neurorl.fitting.design.design_study` simulates ``n_subjects`` subjects
per generating model in every cell (design x trials per subject), fits every candidate to every subject (MAP,
``n_starts`` starts) and assigns each subject to the model of largest ``-BIC/2``. It reports the accuracy (fraction
of subjects assigned to their generator) with its 95 % Wilson interval and the confusion matrix per cell, and the
cheapest cell reaching ``target``.

Generating distributions: the agents' default draws (:func:`neurorl.fitting.recovery.draw_params`) for max-ent and
Q-learning; for DRA, with ``prior = "allocation"`` (default), :data:`neurorl.fitting.design.DRA_ALLOCATION_PRIOR`
-- DRA subjects whose precision allocation is visible, the design's stated assumption -- or, with
``prior = "default"``, DRA's default draw (most of whose subjects barely move their memory SDs).

Cells are seeded from ``seed`` and their grid position and cached in ``<out>/cells`` (a rerun resumes).

Usage::

    python analyses/design_dra_maxent.py                       # the documented run (docs/tasks.md)
    python analyses/design_dra_maxent.py --quick               # a few subjects, one trial count
"""

from __future__ import annotations

import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import neurorl as nr
from neurorl.analysis import AnalysisOutput, parse_args
from neurorl.cli import parse_agent_spec
from neurorl.fitting.design import (
    DRA_ALLOCATION_PRIOR,
    design_study,
    plot_design,
    recommend,
)

NAME = "design_dra_maxent"
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    """Model-recovery design study: DRA vs max-ent vs Q-learning on branching_stakes designs."""

    seed: int = 0
    quick: bool = False
    designs: str = "branching_stakes:p_frequent=0.6,p_rare=0.1"
    trials: str = "600,800,1000"
    n_subjects: int = 20
    n_starts: int = 4
    prior: str = "allocation"
    target: float = 0.9
    out_root: str = ""
    docs_dir: str = ""
    docs: bool = True


QUICK = {"trials": "300", "n_subjects": 3, "n_starts": 1}


def agents():
    """The candidates (the demo's specifications)."""
    return {"dra": nr.make_agent("dra"), "soft_q": nr.make_agent("soft_q", fixed={"eta_true": 0.1}),
            "q_learning": nr.make_agent("q_learning")}


def designs_of(spec: str) -> dict:
    out = {}
    for item in spec.split(";"):
        name, options, _ = parse_agent_spec(item.strip())
        label = name + "".join(f"-{k.split('_')[-1]}{v:g}" for k, v in options.items())
        out[label.replace(".", "p")] = nr.make_task(name, **options)
    return out


def main(args: Args) -> dict:
    output = AnalysisOutput.start(NAME, args, quick=QUICK, repo=REPO)
    args = output.args
    if args.prior not in ("allocation", "default"):
        raise ValueError(f"--prior must be 'allocation' or 'default', got {args.prior!r}")
    out, _ = output.dirs()
    t0 = time.perf_counter()
    trials = [int(t) for t in args.trials.split(",")]
    params = {"dra": DRA_ALLOCATION_PRIOR} if args.prior == "allocation" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-fit convergence warnings; the study counts selections only
        st = design_study(agents(), designs_of(args.designs), trials, n_subjects=args.n_subjects, params=params,
                          criterion="bic", estimator_options={"n_starts": args.n_starts}, seed=args.seed,
                          store=out / "cells", progress=True)
    wall = time.perf_counter() - t0
    rec = recommend(st, args.target)
    st.attrs.update(recommendation=json.dumps(rec), prior=args.prior, command=output.command())
    from neurorl.results import atomic_output

    with atomic_output(out / "design.nc") as tmp:
        st.to_netcdf(tmp, engine="netcdf4")
    output.save(plot_design(st, target=args.target, source=f"{output.command()} ({out / 'design.nc'})"), "accuracy")
    labels = [str(m) for m in st.model.values]
    rows = ["| design | trials / subject | accuracy (95 % CI) | " + " | ".join(f"{m} → {m}" for m in labels)
            + " | largest confusion |", "|---|---|---|" + "---|" * len(labels) + "---|"]
    for d in st.design.values:
        for T in st.n_trials.values:
            c = st.sel(design=d, n_trials=T)
            C = c.confusion.values
            off = [(C[i, j], labels[i], labels[j]) for i in range(len(labels)) for j in range(len(labels)) if i != j]
            v, g, m = max(off)
            rows.append(f"| `{d}` | {int(T)} | {float(c.accuracy):.2f} ({float(c.accuracy_low):.2f}–"
                        f"{float(c.accuracy_high):.2f}) | " + " | ".join(f"{C[i, i]:.2f}" for i in range(len(labels)))
                        + f" | {g} → {m} {v:.2f} |")
    text = {
        "Result": "\n".join(rows) + f"\n\nRecommendation (accuracy ≥ {args.target:g}): {rec['message']}.\n\n"
                  f"{args.n_subjects} simulated subjects per generating model and cell, MAP with {args.n_starts} "
                  f"starts, selection by BIC, DRA prior `{args.prior}`; wall time {wall:.0f} s (cells already in "
                  "the cache are loaded, not rerun).",
        "Figures": "",
    }
    output.write("Design study: DRA vs max-ent vs Q-learning", text,
                 [("accuracy", "Accuracy of identifying the generating model against trials per subject (band: 95 % "
                               "Wilson interval) and the confusion matrix at the largest trial count.")])
    print("\n".join(rows))
    print(rec["message"], f"(wall {wall:.0f} s)")
    return {"recommendation": rec, "wall_s": wall}


if __name__ == "__main__":
    main(parse_args(Args, sys.argv[1:]))
    sys.exit(0)
