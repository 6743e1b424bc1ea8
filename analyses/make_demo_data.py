"""Generate the bundled demo dataset: a mixed synthetic cohort (DRA, max-ent, Q-learning) with neural recordings.

The cohort asks the question neurorl is for -- which account explains a subject's choices, DRA or max-ent RL (with
Q-learning as the baseline)? -- on a design that can answer it (docs/tasks.md, "Choosing a design").

Behaviour: ``n_dra + n_soft_q + n_q_learning`` synthetic subjects do ``n_trials`` trials (decisions) of the task
``task`` (default ``branching_stakes:p_frequent=0.6,p_rare=0.1``, the design of docs/tasks.md). Each subject is
simulated by one generating model, assigned in a random order (labels ``s01``, ``s02``, ... do not reveal it):

* ``dra`` (default options, ``sigma_base = 5`` for rewards of +-2): parameters from
  :data:`neurorl.fitting.design.DRA_ALLOCATION_PRIOR` (the design's assumption: subjects whose precision allocation
  is visible) and ``logit alpha_q ~ N(logit 0.1, 1)``;
* ``soft_q`` (max-ent, ``eta_true`` fixed at ``eta_true`` for every subject, as the demo fits it):
  ``log tau ~ N(0, 1)``, ``logit eta ~ N(logit 0.1, 1)``;
* ``q_learning``: ``logit alpha ~ N(logit 0.3, 1)``, ``log beta ~ N(log 3, 1)``;

the latter two are the agents' default generating distributions (:func:`neurorl.fitting.recovery.draw_params`), so
the cohort is a draw from the population the design study assumed.

Neural data: for every max-ent subject (where the soft value ``v_soft`` and the true value ``v`` are different
latents), a population of ``n_units`` Poisson units in ``n_time`` bins of ``bin_width_s`` after the decision
(:func:`neurorl.decoding.synthetic.synthetic_population`): the first half of the units encode ``v_soft``
(log-rate change ``+-effect`` per SD of ``v_soft`` at the peak of a Gaussian within-trial kernel), the second half
encode nothing; every unit has a slow AR(1) drift over trials (SD ``drift``, coefficient ``drift_rho``, a fraction
``shared_drift`` common to all units) and a baseline rate ``log baseline ~ N(log baseline_hz, 0.3^2)``.

Nothing here is fitted; the files are the ground truth the demo (``neurorl demo``) tries to recover. Every random
draw comes from one ``numpy.random.Generator`` seeded with ``seed`` (spawned into independent streams for the model
assignment, each model's parameters and behaviour, and each recorded subject), so the files are reproducible bit
for bit with the same package versions.

Usage::

    python analyses/make_demo_data.py            # writes neurorl/data/ (the bundled files)
    python analyses/make_demo_data.py --out out/demo_data --n-trials 600

Outputs (in ``--out``): ``demo_cohort.nc`` (groups ``trials``, ``latents``, ``params``: what
:func:`neurorl.read_simulation` reads; ``params`` holds every subject's generating ``model`` and its parameters,
NaN for the other models' parameters), ``demo_cohort.csv`` with its sidecar ``.csv.json`` (the behaviour as a tidy
table: :func:`neurorl.read_trials`), ``demo_neural.nc`` (spike counts and the encoding ground truth) and
``result.md`` (what was generated, with summary statistics). Schema: ``data/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

import neurorl as nr
from neurorl.cli import parse_agent_spec
from neurorl.decoding.synthetic import synthetic_population
from neurorl.fitting.design import DRA_ALLOCATION_PRIOR
from neurorl.fitting.recovery import _constrained, draw_params
from neurorl.io import netcdf_safe

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("dra", "soft_q", "q_learning")


@dataclass
class Args:
    """Generate the bundled demo dataset (mixed synthetic cohort + neural recordings)."""

    seed: int = 2026
    task: str = "branching_stakes:p_frequent=0.6,p_rare=0.1"
    n_trials: int = 1000
    n_dra: int = 4
    n_soft_q: int = 4
    n_q_learning: int = 4
    eta_true: float = 0.1
    n_units: int = 30
    n_time: int = 8
    bin_width_s: float = 0.05
    effect: float = 0.6
    baseline_hz: float = 10.0
    drift: float = 0.3
    drift_rho: float = 0.98
    shared_drift: float = 0.5
    out: str = str(ROOT / "neurorl" / "data")


def parse_args(argv=None) -> Args:
    """``--field value`` for every field of :class:`Args`."""
    parser = argparse.ArgumentParser(description=Args.__doc__)
    for f in dataclasses.fields(Args):
        parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, type=type(f.default), default=f.default,
                            help=f"default {f.default}")
    return Args(**vars(parser.parse_args(argv)))


def _write_groups(path: Path, groups: dict, level: int = 6) -> None:
    """Write datasets as netCDF groups, every numeric variable zlib-compressed (atomically)."""
    from neurorl.results import atomic_output

    with atomic_output(path) as tmp:
        mode = "w"
        for name, ds in groups.items():
            ds = netcdf_safe(ds)
            enc = {k: {"zlib": True, "complevel": level} for k, v in ds.variables.items()
                   if v.dtype.kind in "biuf" and v.ndim > 0}
            ds.to_netcdf(tmp, group=None if name == "/" else name, mode=mode, engine="netcdf4", encoding=enc)
            mode = "a"


def subject_labels(n: int) -> np.ndarray:
    return np.array([f"s{i + 1:02d}" for i in range(n)])


def demo_agents(eta_true: float) -> dict:
    """The generating agents (the demo fits the same specifications)."""
    return {"dra": nr.make_agent("dra"), "soft_q": nr.make_agent("soft_q", fixed={"eta_true": eta_true}),
            "q_learning": nr.make_agent("q_learning")}


def generate(args: Args) -> dict:
    """Simulate the cohort and the recordings; returns the datasets (nothing written)."""
    counts = {"dra": args.n_dra, "soft_q": args.n_soft_q, "q_learning": args.n_q_learning}
    if min(counts.values()) < 1:
        raise ValueError(f"make_demo_data: every model needs at least one subject, got {counts}")
    root = np.random.default_rng(args.seed)
    rng_assign, *rng_models = root.spawn(1 + len(MODELS))
    name, task_options, _ = parse_agent_spec(args.task)
    task = nr.make_task(name, **task_options)
    agents = demo_agents(args.eta_true)
    n = sum(counts.values())
    order = rng_assign.permutation(np.repeat(np.arange(len(MODELS)), [counts[m] for m in MODELS]))
    labels = subject_labels(n)
    model_of = np.array([MODELS[i] for i in order])
    sims, params = {}, {}
    for m, rng in zip(MODELS, rng_models):
        r_par, r_sim = rng.spawn(2)
        theta = draw_params(agents[m], counts[m], DRA_ALLOCATION_PRIOR if m == "dra" else None, rng=r_par)
        params[m] = _constrained(agents[m], theta)
        sims[m] = nr.simulate(agents[m], task, n_subjects=counts[m], n_trials=args.n_trials, params=params[m],
                              rng=r_sim)
    # subjects of model m, in label order
    idx = {m: np.flatnonzero(model_of == m) for m in MODELS}
    common = sorted(set.intersection(*(set(s.latents.data_vars) for s in sims.values())))
    trials = xr.concat([sims[m].trials.assign_coords(subject=labels[idx[m]]) for m in MODELS], dim="subject",
                       data_vars="minimal", coords="minimal", compat="override", combine_attrs="override")
    trials = trials.sel(subject=labels)
    latents = xr.concat([sims[m].latents[common].assign_coords(subject=labels[idx[m]]) for m in MODELS],
                        dim="subject", data_vars="all", coords="minimal", compat="override",
                        combine_attrs="override").sel(subject=labels)
    names = [p.name for m in MODELS for p in agents[m].params]
    pvars = {k: np.full(n, np.nan) for k in names}
    for m in MODELS:
        for k, v in params[m].items():
            pvars[k][idx[m]] = v
    pvars["eta_true"] = np.where(model_of == "soft_q", args.eta_true, np.nan)
    par = xr.Dataset({k: ("subject", v) for k, v in pvars.items()}, coords={"subject": labels})
    par["model"] = ("subject", model_of.astype(str))
    truth = dict(zip(labels.tolist(), model_of.tolist()))
    provenance = {
        "generator": "analyses/make_demo_data.py", "seed": int(args.seed), "neurorl_version": nr.__version__,
        "command": "python analyses/make_demo_data.py " + " ".join(sys.argv[1:]) if __name__ == "__main__" else "",
        "generating_model": json.dumps(truth),
        "ground_truth": (f"mixed cohort on {args.task}: {counts['dra']} dra (DRA_ALLOCATION_PRIOR: logit "
                         f"alpha_sigma ~ N(logit 0.17, 0.4^2), log lam ~ N(log 0.08, 0.5^2), logit alpha_q ~ "
                         f"N(logit 0.1, 1)), {counts['soft_q']} soft_q (max-ent; eta_true fixed at {args.eta_true}; "
                         f"log tau ~ N(0, 1), logit eta ~ N(logit 0.1, 1)), {counts['q_learning']} q_learning "
                         "(logit alpha ~ N(logit 0.3, 1), log beta ~ N(log 3, 1)); the generating model of each "
                         "subject is in generating_model (JSON) and the params group's 'model'"),
    }
    trials.attrs.update(provenance)
    latents.attrs.update(provenance, description=f"the generating agent's latents (variables common to {MODELS})")
    par.attrs.update(provenance, agent="mixed",
                     description="each subject's generating model and the parameters it was simulated with (ground "
                                 "truth; NaN for the parameters of the other models)")
    docs = {"model": "generating model of the subject", "alpha_q": "dra: learning rate of the memory means",
            "alpha_sigma": "dra: learning rate of the memory SDs", "lam": "dra: weight of the KL memory cost",
            "tau": "soft_q: temperature", "eta": "soft_q: soft-critic learning rate",
            "eta_true": "soft_q: true-critic learning rate (fixed, the same for every max-ent subject)",
            "alpha": "q_learning: learning rate", "beta": "q_learning: inverse temperature"}
    for k, doc in docs.items():
        par[k].attrs["description"] = doc

    recorded = labels[model_of == "soft_q"]
    rng_neural = root.spawn(len(recorded))
    counts_, weight, baseline = [], [], []
    for s, rng in zip(recorded, rng_neural):
        base = np.exp(np.log(args.baseline_hz) + 0.3 * rng.standard_normal(args.n_units))
        neural, truth_n = synthetic_population(
            (trials, latents), encode={"v_soft": args.effect}, n_units=args.n_units, n_time=args.n_time,
            kind="poisson", drift=args.drift, drift_rho=args.drift_rho, shared_drift=args.shared_drift,
            baseline=base, bin_width_s=args.bin_width_s, subject=s, rng=rng)
        counts_.append(neural.drop_vars("subject", errors="ignore"))
        weight.append(truth_n["weight"].sel(latent="v_soft").drop_vars("latent"))
        baseline.append(truth_n["baseline"])
    cnt = xr.concat(counts_, dim="subject").assign_coords(subject=recorded)
    cnt = cnt.astype(np.int16).transpose("subject", "trial", "unit", "time")
    cnt.attrs.update(kind="counts", units="count", bin_width_s=float(args.bin_width_s),
                     align_event="decision (synthetic)", description="spike counts per trial, unit and time bin")
    neural_ds = xr.Dataset(
        {"counts": cnt,
         "weight": xr.concat(weight, dim="subject").assign_coords(subject=recorded),
         "baseline": xr.concat(baseline, dim="subject").assign_coords(subject=recorded),
         "kernel": truth_n["kernel"]},
        attrs={**provenance, "encoded_latent": "v_soft", "effect": float(args.effect), "drift_sd": float(args.drift),
               "drift_rho": float(args.drift_rho), "shared_drift": float(args.shared_drift),
               "ground_truth_neural": (f"recorded: the max-ent (soft_q) subjects {', '.join(recorded)}; units with "
                                       f"group 'v_soft' encode the soft value v_soft with weight +-{args.effect} "
                                       "(log rate per SD at the kernel peak); 'untuned' units encode nothing; every "
                                       "unit drifts slowly (AR(1) over trials)")})
    neural_ds["weight"].attrs["description"] = "log-rate change per SD of v_soft at the kernel peak (0: null unit)"
    neural_ds["baseline"].attrs["description"] = "baseline rate (Hz)"
    neural_ds["kernel"].attrs["description"] = "within-trial gain of the encoding (peak 1)"
    return {"trials": trials, "latents": latents, "params": par, "neural": neural_ds, "task": task}


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = generate(args)
    cohort = out / "demo_cohort.nc"
    _write_groups(cohort, {"trials": d["trials"], "latents": d["latents"], "params": d["params"]})
    nr.write_trials(d["trials"], out / "demo_cohort.csv")
    neural = out / "demo_neural.nc"
    _write_groups(neural, {"/": d["neural"]})
    # checks: the files read back to what was generated
    back = nr.read_simulation(cohort)
    assert back.trials.identical(d["trials"].assign_attrs(back.trials.attrs)), "cohort trials do not round-trip"
    csv = nr.read_trials(out / "demo_cohort.csv")
    assert np.array_equal(csv.choice.values, d["trials"].choice.values), "CSV does not round-trip"
    tr, lat, par = d["trials"], d["latents"], d["params"]
    s, c, v = tr.state.values, tr.choice.values, tr.valid.values

    def frac(mask):
        return (mask & (c == 0)).sum(1) / np.maximum(mask.sum(1), 1)

    p_freq, p_rare = frac(v & (s == 3)), frac(v & (s == 4))
    root = v & (s == 0)
    p_wide = (root & (c == 1)).sum(1) / np.maximum(root.sum(1), 1)
    r = [float(np.corrcoef(lat.v.sel(subject=x), lat.v_soft.sel(subject=x))[0, 1]) for x in tr.subject.values]
    sizes = {p.name: p.stat().st_size for p in (cohort, out / "demo_cohort.csv", out / "demo_cohort.csv.json", neural)}

    def fmt(x, k):
        val = float(par[k].sel(subject=x))
        return "" if np.isnan(val) else f"{k} {val:.3g}"

    lines = [
        "# Demo dataset", "",
        f"Generated by `python analyses/make_demo_data.py` (seed {args.seed}).", "",
        "## Arguments", "", "| name | value |", "|---|---|",
        *[f"| {f.name} | {getattr(args, f.name)} |" for f in dataclasses.fields(Args) if f.name != "out"], "",
        "## Ground truth per subject", "",
        "P(better) is the fraction of choices of the better option in the frequent (state 3) and rare (state 4) bandit "
        "state; P(wide) the fraction of root choices of the two-move branch.", "",
        "| subject | model | parameters | P(better) frequent | P(better) rare | P(wide) | corr(v, v_soft) |",
        "|---|---|---|---|---|---|---|",
        *[f"| {x} | {str(par.model.sel(subject=x).values)} | "
          f"{', '.join(t for t in (fmt(x, k) for k in par.data_vars if k != 'model') if t)} | {pf:.3f} | {pr:.3f} | "
          f"{pw:.3f} | {cc:.3f} |"
          for x, pf, pr, pw, cc in zip(tr.subject.values, p_freq, p_rare, p_wide, r)], "",
        "## Files", "", "| file | bytes |", "|---|---|", *[f"| {k} | {v:,} |" for k, v in sizes.items()],
        f"| total | {sum(sizes.values()):,} |", "",
    ]
    from neurorl.results import atomic_output

    with atomic_output(out / "result.md") as tmp:
        tmp.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
