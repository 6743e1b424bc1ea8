"""Model recovery across Q-learning, max-ent (soft Q-learning), DRA and policy compression.

Reference: ``reference/fitting.md`` §6 (model recovery, Wilson & Collins 2019: confusion
``C_ij = P(selected j | generated i)``, inversion ``P(generated i | selected j)``, repeated with
random-effects BMS) and §5 (BIC, RFX-BMS with protected exceedance probabilities);
``reference/tasks.md`` §1 (mouse bandit) and §3 (frequency x stakes memory 2AFC). The work is done by
:func:`neurorl.fitting.recovery.model_recovery` (one simulation per generator, every candidate fitted
to all simulated subjects by MAP, selection by BIC) and plotted by
:func:`neurorl.fitting.recovery.plot_model_recovery`.

Candidates ([A] choices, the same on both tasks unless stated)
--------------------------------------------------------------
* ``q_learning``: alpha, beta (Rescorla-Wagner + softmax, q0 = 0).
* ``soft_q`` (max-ent) with ``eta_true`` fixed at 0.1: the true-value critic never enters the choice
  likelihood, so a free ``eta_true`` is unidentifiable; free tau, eta.
* ``dra``: alpha_q, alpha_sigma, lam; ``sigma_base`` = 5 on the memory task (the 2AFC row of
  agents.md §3) and 1 on the mouse bandit (rewards 0/1), ``sigma0 = sigma_base / 2``.
* ``policy_compression`` with ``alpha_v`` fixed at 0.1: free beta, alpha_theta, alpha_p. Three free
  parameters keep the trust-region Newton optimiser (``optimizer="auto"``); with four the package
  switches to quasi-Newton, which failed on this model (numpy ``LinAlgError: Eigenvalues did not
  converge``, reported to the lead), and L-BFGS-B did not converge.

Generating distributions ([A]; Normal on the unconstrained scale, the package default [A1] of
``recovery.py`` -- the parameter's default with 0.4 x prior scale -- for everything not listed):
memory 2AFC (rewards 6-14): q_learning ``log beta ~ N(log 0.7, 0.5)``, soft_q ``log tau ~ N(log 1.5,
0.5)``, policy_compression ``log beta ~ N(log 0.7, 0.5)``; mouse bandit (rewards 0/1): soft_q
``log tau ~ N(log 0.33, 0.5)``, policy_compression ``log beta ~ N(log 1.2, 0.3)``, ``logit alpha_theta ~
N(0, 0.5)``, ``logit alpha_p ~ N(logit 0.01, 0.5)`` (its defaults lock into one port on this task, see
analyses/perseveration.py); both tasks: dra ``logit alpha_q ~ N(logit 0.2, 0.5)``, ``logit alpha_sigma ~
N(logit 0.3, 0.5)`` (faster precision learning, the 2AFC row of agents.md §3 uses 0.2 / 0.2). These put
every generator in a range where choices depend on values without being deterministic.

Known structural overlap [D: agents.md §2 one-step caveat]: on one-step tasks (both tasks here) soft
Q-learning's choices are exactly those of Q-learning with ``alpha = eta`` and ``beta = 1 / tau``, so
the two have the same maximum likelihood and the same number of free parameters; BIC cannot separate
them, and ties go to the first model listed (q_learning). The result also reports the confusion with
the two merged into one "value softmax" family.

Usage::

    python analyses/model_recovery.py --seed 0            # a few minutes (8 likelihood compilations)
    python analyses/model_recovery.py --quick             # tiny: mouse bandit, two models

Outputs: ``results/model_recovery_seed<seed>/`` (``result.md``, ``confusion_<task>.png``,
``recovery_<task>.nc``) and, unless ``--quick`` or ``--no-docs``, ``docs/analyses/model_recovery.md``
with ``docs/analyses/img/model_recovery_*.png``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import neurorl as nr
from neurorl.analysis import AnalysisOutput, parse_args
from neurorl.fitting import model_recovery, plot_model_recovery

NAME = "model_recovery"
REPO = Path(__file__).resolve().parents[1]
MODELS = ("q_learning", "soft_q", "dra", "policy_compression")
TASK_LABEL = {"memory_2afc": "frequency x stakes memory 2AFC", "mouse_bandit": "mouse bandit (80-20)"}


@dataclass
class Args:
    """Model recovery (confusion and inversion matrices) for four models on two tasks."""

    seed: int = 0
    quick: bool = False
    tasks: str = "memory_2afc,mouse_bandit"
    models: str = ",".join(MODELS)
    n_subjects: int = 15
    n_trials_memory: int = 300
    n_trials_bandit: int = 500
    estimator: str = "MAP"
    n_starts: int = 2
    criterion: str = "bic"
    out_root: str = ""
    docs_dir: str = ""
    docs: bool = True


QUICK = {"tasks": "mouse_bandit", "models": "q_learning,soft_q", "n_subjects": 4, "n_trials_bandit": 120, "n_starts": 1}


# ----------------------------------------------------------------------------- candidates
def candidates(task: str, models) -> dict:
    """The candidate agents of ``task`` (options and fixed parameters: module docstring)."""
    sb = 5.0 if task == "memory_2afc" else 1.0
    make = {
        "q_learning": lambda: nr.make_agent("q_learning"),
        "soft_q": lambda: nr.make_agent("soft_q", fixed={"eta_true": 0.1}),
        "dra": lambda: nr.make_agent("dra", sigma_base=sb),
        "policy_compression": lambda: nr.make_agent("policy_compression", fixed={"alpha_v": 0.1}),
    }
    unknown = [m for m in models if m not in make]
    if unknown:
        raise ValueError(f"{NAME}: unknown model(s) {unknown}; choose from {list(make)}")
    return {m: make[m]() for m in models}


def generating(task: str, models) -> dict:
    """Generating distributions ``{label: {param: (loc, scale)}}`` on the unconstrained scale."""
    lg = lambda p: float(np.log(p / (1 - p)))
    dra = {"alpha_q": (lg(0.2), 0.5), "alpha_sigma": (lg(0.3), 0.5)}
    if task == "memory_2afc":
        d = {"q_learning": {"beta": (np.log(0.7), 0.5)}, "soft_q": {"tau": (np.log(1.5), 0.5)}, "dra": dra,
             "policy_compression": {"beta": (np.log(0.7), 0.5)}}
    else:
        d = {"soft_q": {"tau": (np.log(0.33), 0.5)}, "dra": dra,
             "policy_compression": {"beta": (np.log(1.2), 0.3), "alpha_theta": (0.0, 0.5),
                                    "alpha_p": (lg(0.01), 0.5)}}
    return {k: v for k, v in d.items() if k in models}


def _merged_accuracy(res, models):
    """Accuracy when q_learning and soft_q count as one family (both present), else the plain accuracy."""
    sel = res["selected"].values  # (generator, subject)
    fam = np.array([0 if m in ("q_learning", "soft_q") else i + 1 for i, m in enumerate(models)])
    gen = np.repeat(np.arange(len(models)), sel.shape[1]).reshape(sel.shape)
    return float(np.mean(fam[sel] == fam[gen]))


def _short(message: str) -> str:
    """First clause of a warning, subject lists elided (for the result's list of fit warnings)."""
    import re

    m = message.replace("MAP: ", "").replace("MLE: ", "").split(". ")[0]
    m = re.sub(r"subject\(s\) [0-9, ]+(and \d+ more)?", "subject(s) ", m)
    m = re.sub(r"\s+", " ", re.sub(r"^\d+ ", "some ", m))
    return re.split(r"[;:] ", m)[0].strip()[:110]


def run_task(task, args, rng):
    models = [m for m in args.models.split(",") if m.strip()]
    agents = candidates(task, models)
    n_trials = args.n_trials_memory if task == "memory_2afc" else args.n_trials_bandit
    t0 = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = model_recovery(
            agents, task, n_subjects=args.n_subjects, n_trials=n_trials, params=generating(task, models),
            criterion=args.criterion, estimator=args.estimator,
            estimator_options={"n_starts": args.n_starts, "progress": False}, rng=rng, progress=False)
    fit_warnings = sorted({_short(str(w.message)) for w in caught
                           if issubclass(w.category, UserWarning) and "BLAS" not in str(w.message)})
    seconds = time.perf_counter() - t0
    L = res["log_evidence"].values  # (generator, subject, model)
    tie = None
    if "q_learning" in models and "soft_q" in models:
        i, j = models.index("q_learning"), models.index("soft_q")
        tie = float(np.mean(np.abs(L[..., i] - L[..., j]) < 0.05))
    return {"res": res, "models": models, "n_trials": n_trials, "seconds": seconds, "tie": tie,
                "merged": _merged_accuracy(res, models), "warnings": fit_warnings}


# ----------------------------------------------------------------------------- main
def main(args: Args) -> dict:
    """Run model recovery on each task, write figures and the markdown result; return the headline numbers."""
    output = AnalysisOutput.start(NAME, args, quick=QUICK, repo=REPO)
    args = output.args
    t0 = time.perf_counter()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    rngs = np.random.default_rng(args.seed).spawn(len(tasks))
    out, _ = output.dirs()
    runs = {}
    for task, r in zip(tasks, rngs):
        runs[task] = run_task(task, args, r)
        res = runs[task]["res"]
        res.to_netcdf(out / f"recovery_{task}.nc")
        fig = plot_model_recovery(res)
        fig.suptitle(f"{TASK_LABEL.get(task, task)}: {args.n_subjects} subjects x {runs[task]['n_trials']} trials "
                     f"per generator, {args.estimator}, {args.criterion.upper()}", fontsize="medium")
        fig.tight_layout()
        output.save(fig, f"confusion_{task}")
    runtime = time.perf_counter() - t0

    headline, result = [], {"runtime_s": runtime}
    for task, rr in runs.items():
        res, models = rr["res"], rr["models"]
        C = res["confusion"].values
        diag = np.diag(C)
        acc = float(np.trace(res["counts"].values) / res["counts"].values.sum())
        pxp = np.diag(res["bms_pxp"].values) if "bms_pxp" in res else np.full(len(models), np.nan)
        result[task] = {"accuracy": acc, "accuracy_merged": rr["merged"],
                        "diagonal": {m: float(d) for m, d in zip(models, diag)},
                        "pxp_diagonal": {m: float(x) for m, x in zip(models, pxp)}, "tie_q_soft": rr["tie"],
                        "seconds": rr["seconds"]}
        rows = ["| generated \\ selected | " + " | ".join(models) + " | pxp of generator |",
                "|---|" + "---|" * (len(models) + 1)]
        for i, m in enumerate(models):
            rows.append(f"| **{m}** | " + " | ".join(f"{C[i, j]:.2f}" for j in range(len(models)))
                        + f" | {pxp[i]:.2f} |")
        inv = res["inversion"].values
        irows = ["| selected \\ generated | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
        for j, m in enumerate(models):
            irows.append(f"| **{m}** | " + " | ".join("–" if not np.isfinite(inv[i, j]) else f"{inv[i, j]:.2f}"
                                                      for i in range(len(models))) + " |")
        txt = (f"**{TASK_LABEL.get(task, task)}** (`{task}`, {args.n_subjects} subjects x {rr['n_trials']} trials per "
               f"generator; {rr['seconds']:.0f} s including compilation). Confusion P(selected | generated), "
               f"rows sum to 1; last column: protected exceedance probability of the generating model from "
               f"RFX-BMS on that generator's subjects:\n\n" + "\n".join(rows) + "\n\n"
               "Inversion P(generated | selected), uniform prior over generators (rows: selected model):\n\n"
               + "\n".join(irows) + "\n\n"
               f"* overall accuracy (selected = generator): **{acc:.2f}** (chance {1 / len(models):.2f})\n")
        if rr["tie"] is not None:
            txt += (f"* q_learning and soft_q log evidences within 0.05 of each other for **{rr['tie']:.0%}** of "
                    f"all simulated subjects; accuracy with the two merged into one family: "
                    f"**{rr['merged']:.2f}**\n")
        if rr["warnings"]:
            txt += "* fit warnings: " + "; ".join(f"`{w}`" for w in rr["warnings"][:4]) + "\n"
        headline.append(txt)

    figures = [(f"confusion_{t}", f"{TASK_LABEL.get(t, t)}: confusion (left; rows = generating model, with "
                                  f"its pxp) and inversion (right) matrices.") for t in runs]
    parts = []
    for task, rr in runs.items():
        r, models = result[task], rr["models"]
        C = rr["res"]["confusion"].values
        good = [m for m in models if r["diagonal"][m] >= 0.6]
        bad = []
        for i, m in enumerate(models):
            if r["diagonal"][m] < 0.6 and m not in ("q_learning", "soft_q"):
                j = max((k for k in range(len(models)) if k != i), key=lambda k: C[i, k])
                bad.append(f"{m} ({r['diagonal'][m]:.2f}, mostly taken for {models[j]}, {C[i, j]:.2f})")
        parts.append(f"on the {TASK_LABEL.get(task, task)} the selected model is the generator for "
                     f"{r['accuracy']:.0%} of subjects ({r['accuracy_merged']:.0%} with q_learning and soft_q merged); "
                     f"recovered well (>= 0.6): {', '.join(good) if good else 'none'}"
                     + (f"; recovered poorly: {'; '.join(bad)}" if bad else ""))
    interp = (
        "Model recovery asks whether the pipeline picks the model that generated the data when it is one of "
        "the candidates. Here " + "; ".join(parts) + ". The confusion between Q-learning and max-ent is "
        "structural: on one-step tasks soft Q-learning's choice rule is Q-learning's softmax with beta = 1/tau, "
        "so both fits reach the same likelihood with the same number of free parameters and BIC splits them by "
        "optimiser noise. Choices on one-step tasks cannot tell max-ent from Q-learning; only cue-time soft "
        "values (analyses/decode_soft_vs_true.py) or multi-step tasks with unequal downstream entropy "
        "(analyses/dra_vs_maxent_signatures.py) can. A generator with more parameters than Q-learning is "
        "recovered only when its extra mechanism leaves a trace in the choices that outweighs BIC's penalty of "
        "ln(n) per parameter: DRA's learnt, state-specific precision needs enough trials per state for the "
        "precision to diverge (in analyses/dra_allocation.py this takes several hundred trials), and policy "
        "compression is identifiable where its marginal pulls choices toward frequent actions. Limits: "
        f"{args.n_subjects} simulated subjects per generator give each entry a binomial standard error of up to "
        f"{0.5 / np.sqrt(args.n_subjects):.2f}; the matrices depend on the generating distributions (module "
        "docstring) and the trial counts; BIC at MAP estimates is one criterion among several (the saved "
        "datasets also hold RFX-BMS; Laplace evidence needs criterion='laplace')."
    )
    what = (
        f"`{output.command()}` (seed {args.seed}; runtime {runtime:.0f} s, most of it compiling one likelihood per "
        f"model and task).\n\n"
        f"`neurorl.fitting.model_recovery` with candidates {', '.join(f'`{m}`' for m in runs[tasks[0]]['models'])} "
        f"(options and fixed parameters in the script's docstring), estimator {args.estimator} with "
        f"{args.n_starts} starts per subject, selection by {args.criterion.upper()} (lowest), RFX-BMS per "
        f"generator; tasks {', '.join(f'`{t}`' for t in tasks)} with their default options."
    )
    output.write("Model recovery: Q-learning, max-ent, DRA and policy compression",
                 {"What was run": what, "Headline numbers": "\n".join(headline), "Figures": "",
                  "Interpretation": interp}, figures)
    return result


if __name__ == "__main__":
    res = main(parse_args(Args))
    for task, r in res.items():
        if task == "runtime_s":
            continue
        print(f"{task}: accuracy {r['accuracy']:.2f} (q/soft merged {r['accuracy_merged']:.2f}); diagonal "
              + ", ".join(f"{m} {v:.2f}" for m, v in r["diagonal"].items()) + f"; {r['seconds']:.0f} s")
    print(f"runtime {res['runtime_s']:.0f} s")
