"""Design before data: model recovery over a grid of task designs and sample sizes.

:func:`design_study` runs :func:`neurorl.fitting.recovery.model_recovery` for every cell of a grid
``design x trials per subject`` (a *design* is a task with its options: trial structure, frequency/stakes, probes,
branching) and reports, per cell, the expected accuracy of identifying each simulated subject's generating model,
its confidence interval and the confusion matrix. :func:`recommend` picks the cheapest design (fewest trials per
subject) whose accuracy reaches a target; :func:`plot_design` draws accuracy against trials per design.

What is computed
----------------
For a cell with ``K`` candidate models, ``n`` simulated subjects per generating model (parameters drawn from each
model's prior, :func:`neurorl.fitting.recovery.draw_params`) and ``T`` trials per subject, every subject is fitted
by every candidate and assigned to the one with the largest log evidence (``criterion``). ``accuracy`` is the
fraction of the ``K n`` subjects assigned to their generator (the mean of the confusion matrix's diagonal, the
generators being equally represented); its 95 % interval is the Wilson score interval of that binomial proportion.
It is the expected per-subject recovery accuracy of a cohort whose subjects are drawn equally from the candidates;
it does not depend on the cohort size, which only sets the width of the interval (``n_subjects`` per model).

Seeds, workers and resuming
---------------------------
Each cell's seed is derived from the root seed and the cell's position in the grid
(``numpy.random.SeedSequence(seed, spawn_key=(design index, trials index))``), so a cell's result does not depend on
which other cells are run, in which order, or on how many workers run them. The cells are the units of
:mod:`neurorl.parallel` (:func:`neurorl.parallel.map_units`): inside ``with neurorl.parallel.parallel(...)`` (or
``neurorl design --workers N / --scheduler ADDRESS``) they run on local processes or a Dask cluster, one model
recovery per cell, with the results of a serial run. The first cell of each design runs before the others of that
design, so that on an empty compiled-likelihood cache one worker compiles the design's likelihoods and the others
load them. With ``store=DIR`` every finished cell is written to ``DIR`` (:class:`neurorl.parallel.UnitStore`,
atomically) as it completes; a rerun of the same study loads the finished cells and runs only the missing ones, and
a store of another study (other agents, designs, trials, subjects, seed, criterion or estimator options) is
refused.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..tasks import make_task

__all__ = ["design_study", "recommend", "plot_design", "wilson_interval", "DESIGN", "N_TRIALS",
           "DRA_ALLOCATION_PRIOR"]

DESIGN = "design"
N_TRIALS = "n_trials"

#: Generating distribution of DRA subjects "whose precision allocation is visible" (docs/tasks.md, "Choosing a
#: design"), as ``draw_params`` takes it: ``{name: (loc, scale)}`` on the unconstrained scale,
#: ``logit alpha_sigma ~ N(logit 0.17, 0.4^2)`` (about 0.08-0.3) and ``log lam ~ N(log 0.08, 0.5^2)`` (about
#: 0.03-0.2); ``alpha_q`` keeps the default draw (``logit alpha_q ~ N(logit 0.1, 1)``). On ``branching_stakes``
#: (rewards +-2, SD 1; DRA's default ``sigma_base = 5``) these subjects end a session with memory SDs about half as
#: large in the frequent bandit state as in the rare one, and choose the better option there 0.1-0.15 more often.
#: Outside this regime DRA's SDs barely move (small ``alpha_sigma``) or stay pinned near ``sigma_base`` (large
#: ``lam``): such subjects are behaviourally fixed-noise learners, and a design study correctly assigns them to
#: Q-learning. It is an assumption of the design, stated with its results, not a property of DRA.
DRA_ALLOCATION_PRIOR = {"alpha_sigma": (-1.5856, 0.4), "lam": (-2.5257, 0.5)}


def wilson_interval(k: np.ndarray | int, n: np.ndarray | int, z: float = 1.959963984540054):
    """Wilson score interval of a binomial proportion ``k / n`` (95 % by default); returns ``(low, high)``."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    p = k / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return centre - half, centre + half


def _design_tasks(designs) -> dict[str, Any]:
    if isinstance(designs, Mapping):
        items = list(designs.items())
    else:
        items = []
        for d in designs:
            t = make_task(d) if isinstance(d, str) else d
            items.append((t.name if not isinstance(d, str) else d, t))
    if not items:
        raise ValueError("design_study: give at least one design (a task name, Task, or {label: task})")
    out = {}
    for label, t in items:
        label = str(label)
        if label in out:
            raise ValueError(f"design_study: design label {label!r} is given twice")
        if not label.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"design_study: design label {label!r} must be letters, digits, '_' or '-'")
        out[label] = make_task(t) if isinstance(t, str) else t
    return out


def _design_cell(cell: dict) -> xr.Dataset:
    """One unit of a design study: model recovery in one cell, seeded by the cell's grid position."""
    from .recovery import model_recovery

    rng = np.random.default_rng(np.random.SeedSequence(int(cell["seed"]), spawn_key=(cell["i"], cell["j"])))
    ds = model_recovery(cell["agents"], cell["task"], n_subjects=int(cell["n_subjects"]), n_trials=cell["n_trials"],
                        params=cell["params"], criterion=cell["criterion"], estimator=cell["estimator"],
                        estimator_options=cell["estimator_options"], rng=rng, progress=False)
    keep = ds[[v for v in ("confusion", "counts", "bms_bor", "bms_frequency") if v in ds]]
    return keep.assign_attrs(spec=json.dumps(cell["spec"], default=str))


def design_study(agents: Sequence | Mapping, designs: Sequence | Mapping, n_trials: Sequence[int], *,
                 n_subjects: int = 20, params: Mapping | None = None, criterion: str = "bic",
                 estimator: str = "MAP", estimator_options: Mapping | None = None, seed: int = 0,
                 store: str | Path | None = None, progress: bool | None = None) -> xr.Dataset:
    """Model recovery over a grid of designs and trials per subject.

    Parameters
    ----------
    agents : list of Agent/str, or dict label -> Agent/str
        The candidate models (each is also a generator).
    designs : list of Task/str, or dict label -> Task/str
        The task designs (a registered name, or a Task built with its options).
    n_trials : sequence of int
        Trials (decisions) per subject to try.
    n_subjects : int, default 20
        Simulated subjects per generating model in each cell.
    params : dict, optional
        Generating-parameter distributions per agent label (:func:`neurorl.fitting.recovery.draw_params`).
    criterion : {"bic", "aic", "laplace"}, default "bic"
    estimator, estimator_options
        As :func:`neurorl.fitting.recovery.model_recovery`.
    seed : int, default 0
        Root seed; each cell's seed is derived from it and the cell's grid position.
    store : path, optional
        Directory of finished cells (a resumable study; see the module docstring).
    progress : bool, optional
        A progress bar over cells (default: on). The cells run on the executor of the enclosing
        :func:`neurorl.parallel.parallel` block (serially outside one), one unit per cell.

    Returns
    -------
    xarray.Dataset
        Dims ``design``, ``n_trials``, ``generator``, ``model``: ``confusion`` (design, n_trials, generator, model;
        rows sum to 1), ``counts``, ``accuracy``, ``accuracy_low``, ``accuracy_high`` (95 % Wilson interval),
        ``n_correct``, ``n_total`` (design, n_trials), ``bms_bor`` (design, n_trials, generator) when BMS ran.
        Attributes: ``criterion``, ``n_subjects``, ``seed``, ``agents``, ``designs`` (JSON: label -> task repr).
    """
    from .recovery import _labels

    labels, objs = _labels(agents)
    tasks = _design_tasks(designs)
    trials = [int(t) for t in n_trials]
    if not trials or min(trials) < 1:
        raise ValueError(f"design_study: n_trials must be positive integers, got {list(n_trials)}")
    if len(set(trials)) != len(trials):
        raise ValueError(f"design_study: n_trials has duplicates: {trials}")
    if int(n_subjects) < 1:
        raise ValueError(f"design_study: n_subjects must be >= 1, got {n_subjects}")
    agent_map = dict(zip(labels, objs))
    cells = []
    for i, (dlab, task) in enumerate(tasks.items()):
        for j, T in enumerate(trials):
            spec = {"agents": {k: repr(a) for k, a in agent_map.items()}, "task": repr(task), "n_trials": T,
                    "n_subjects": int(n_subjects), "seed": int(seed), "position": [i, j], "criterion": criterion,
                    "estimator": estimator, "estimator_options": dict(estimator_options or {}),
                    "params": {k: repr(v) for k, v in (params or {}).items()}}
            cells.append({"design": dlab, "task": task, "n_trials": T, "i": i, "j": j, "spec": spec,
                          "agents": agent_map, "n_subjects": int(n_subjects), "params": params,
                          "criterion": criterion, "estimator": estimator, "estimator_options": estimator_options,
                          "seed": int(seed)})
    from .. import parallel as _par

    show = True if progress is None else bool(progress)
    study = {"function": "design_study", "cells": [c["spec"] for c in cells]}
    results = _par.map_units(_design_cell, cells, store=store, study=study, progress=show, desc="design study cells",
                             compile_key=lambda c: c["design"])
    K = len(labels)
    D, J = len(tasks), len(trials)
    conf = np.empty((D, J, K, K))
    counts = np.empty((D, J, K, K), dtype=np.int64)
    bor = np.full((D, J, K), np.nan)
    for cell, ds in zip(cells, results):
        conf[cell["i"], cell["j"]] = ds["confusion"].values
        counts[cell["i"], cell["j"]] = ds["counts"].values
        if "bms_bor" in ds:
            bor[cell["i"], cell["j"]] = ds["bms_bor"].values
    n_correct = np.trace(counts, axis1=2, axis2=3)
    n_total = counts.sum(axis=(2, 3))
    low, high = wilson_interval(n_correct, n_total)
    coords = {DESIGN: list(tasks), N_TRIALS: trials, "generator": labels, "model": labels}
    out = xr.Dataset(
        {"confusion": ((DESIGN, N_TRIALS, "generator", "model"), conf),
         "counts": ((DESIGN, N_TRIALS, "generator", "model"), counts),
         "n_correct": ((DESIGN, N_TRIALS), n_correct), "n_total": ((DESIGN, N_TRIALS), n_total),
         "accuracy": ((DESIGN, N_TRIALS), n_correct / n_total),
         "accuracy_low": ((DESIGN, N_TRIALS), low), "accuracy_high": ((DESIGN, N_TRIALS), high),
         "bms_bor": ((DESIGN, N_TRIALS, "generator"), bor)},
        coords=coords,
        attrs={"criterion": criterion, "n_subjects": int(n_subjects), "seed": int(seed), "estimator": estimator,
               "agents": json.dumps({k: repr(a) for k, a in agent_map.items()}),
               "designs": json.dumps({k: repr(t) for k, t in tasks.items()})})
    out["accuracy"].attrs["description"] = ("fraction of simulated subjects assigned to their generating model "
                                            f"(largest {criterion} log evidence)")
    out["confusion"].attrs["description"] = "P(selected model | generator); rows sum to 1"
    return out


def recommend(study: xr.Dataset, target: float = 0.9, *, use: str = "accuracy") -> dict:
    """The cheapest design (fewest trials per subject) whose accuracy reaches ``target``.

    Parameters
    ----------
    study : xarray.Dataset
        Output of :func:`design_study`.
    target : float, default 0.9
    use : {"accuracy", "accuracy_low"}
        Compare the point estimate (default) or the lower end of its 95 % interval with the target.

    Returns
    -------
    dict
        ``design``, ``n_trials``, ``accuracy``, ``low``, ``high`` of the recommendation, or ``design = None`` with
        the best cell found (``best_*``) and a ``message`` when no cell reaches the target.
    """
    if use not in ("accuracy", "accuracy_low"):
        raise ValueError(f"recommend: use must be 'accuracy' or 'accuracy_low', got {use!r}")
    acc = study[use].values
    ok = acc >= target
    trials = study[N_TRIALS].values
    designs = [str(d) for d in study[DESIGN].values]
    if not ok.any():
        i, j = np.unravel_index(np.nanargmax(study["accuracy"].values), acc.shape)
        return {"design": None, "n_trials": None, "best_design": designs[i], "best_n_trials": int(trials[j]),
                "best_accuracy": float(study["accuracy"].values[i, j]),
                "message": f"no design reaches {use} >= {target:g}; the best is {designs[i]} at {int(trials[j])} "
                           f"trials with accuracy {float(study['accuracy'].values[i, j]):.2f}"}
    cand = [(int(trials[j]), -float(study["accuracy"].values[i, j]), i, j) for i, j in zip(*np.nonzero(ok))]
    T, _, i, j = min(cand)
    return {"design": designs[i], "n_trials": T, "accuracy": float(study["accuracy"].values[i, j]),
            "low": float(study["accuracy_low"].values[i, j]), "high": float(study["accuracy_high"].values[i, j]),
            "message": f"{designs[i]} at {T} trials per subject: accuracy {float(study['accuracy'].values[i, j]):.2f} "
                       f"(95% CI {float(study['accuracy_low'].values[i, j]):.2f}-"
                       f"{float(study['accuracy_high'].values[i, j]):.2f})"}


def plot_design(study: xr.Dataset, *, target: float | None = 0.9, source: str | None = None):
    """Accuracy against trials per subject (one line per design, 95 % band) and the confusion matrix of each design
    at its largest trial count.

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    designs = [str(d) for d in study[DESIGN].values]
    trials = study[N_TRIALS].values
    D = len(designs)
    fig, axes = plt.subplots(1, 1 + D, figsize=(4.2 + 3.0 * D, 3.4), layout="constrained")
    ax = axes[0]
    for i, d in enumerate(designs):
        ax.plot(trials, study["accuracy"].values[i], "o-", color=f"C{i}", label=d)
        ax.fill_between(trials, study["accuracy_low"].values[i], study["accuracy_high"].values[i], color=f"C{i}",
                        alpha=0.2, lw=0)
    K = study.sizes["model"]
    ax.axhline(1.0 / K, ls=":", color="0.5", lw=0.8, label="chance")
    if target is not None:
        ax.axhline(target, ls="--", color="0.3", lw=0.8, label=f"target {target:g}")
    ax.set_xlabel("trials per subject")
    ax.set_ylabel("P(generating model selected)")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"model recovery ({study.attrs.get('n_subjects')} subjects/model; band: 95% CI)", fontsize="small")
    ax.legend(fontsize="small", frameon=False)
    labels = [str(m) for m in study["model"].values]
    for i, d in enumerate(designs):
        a = axes[1 + i]
        C = study["confusion"].values[i, -1]
        a.imshow(C, vmin=0, vmax=1, cmap="Blues")
        for g in range(K):
            for m in range(K):
                a.text(m, g, f"{C[g, m]:.2f}", ha="center", va="center", fontsize="small",
                       color="white" if C[g, m] > 0.6 else "black")
        a.set_xticks(range(K), labels, rotation=30, ha="right", fontsize="small")
        a.set_yticks(range(K), labels, fontsize="small")
        a.set_xlabel("selected model")
        a.set_ylabel("generating model")
        a.set_title(f"{d}, {int(trials[-1])} trials", fontsize="small")
    if source:
        fig.suptitle(f"source: {source}", fontsize="x-small")
    return fig
