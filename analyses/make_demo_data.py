"""Generate the bundled demo dataset: a synthetic mouse cohort on the two-armed bandit, with neural recordings.

Behaviour: ``n_subjects`` synthetic mice do ``n_trials`` trials of the mouse two-armed bandit (Beron et al. 2022;
``mouse_bandit``: reward probability ``p_high`` at the hidden high port, Markov block switches with probability
``p_switch`` per trial). Every mouse is a max-ent (soft Q-learning, ``soft_q``) agent with its own temperature
``tau`` and soft-critic learning rate ``eta`` drawn from the group distribution

    log tau   ~ N(log tau_median, tau_log_sd^2)
    logit eta ~ N(logit eta_median, eta_logit_sd^2)

and a slow true-value critic, ``eta_true`` fixed at the same value for every mouse (the agent option
``fixed={"eta_true": ...}``). Choices depend on ``tau`` and ``eta`` only; the true critic's value ``v`` and the soft
value ``v_soft`` differ because ``eta_true < eta`` and by the entropy bonus ``tau H(pi)``.

Neural data: for the first ``n_recorded`` mice, a population of ``n_units`` Poisson units in ``n_time`` bins of
``bin_width_s`` after the decision (``neurorl.decoding.synthetic.synthetic_population``): the first half of the
units encode the soft value ``v_soft`` (log-rate change ``+-effect`` per SD of ``v_soft`` at the peak of a
Gaussian within-trial kernel), the second half encode nothing; every unit has a slow AR(1) drift over trials
(SD ``drift``, coefficient ``drift_rho``, a fraction ``shared_drift`` of its variance common to all units) and a
baseline rate drawn per unit, ``log baseline ~ N(log baseline_hz, 0.3^2)``.

Nothing here is fitted; the files are the ground truth the demo (``neurorl demo``) tries to recover. Every
random draw comes from one ``numpy.random.Generator`` seeded with ``seed`` (spawned into independent streams for
the parameters, the behaviour and each recorded mouse), so the files are reproducible bit for bit with the same
package versions.

Usage::

    python analyses/make_demo_data.py            # writes neurorl/data/ (the bundled files)
    python analyses/make_demo_data.py --out out/demo_data --n-subjects 20

Outputs (in ``--out``): ``mouse_bandit_cohort.nc`` (groups ``trials``, ``latents``, ``params``: what
:func:`neurorl.read_simulation` reads), ``mouse_bandit_cohort.csv`` with its sidecar ``.csv.json`` (the same
behaviour as a tidy table: :func:`neurorl.read_trials`), ``mouse_bandit_neural.nc`` (spike counts and the encoding
ground truth) and ``result.md`` (what was generated, with summary statistics). Schema: ``data/README.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from scipy.special import expit, logit

import neurorl as nr
from neurorl.decoding.synthetic import synthetic_population
from neurorl.io import netcdf_safe

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Args:
    """Generate the bundled demo dataset (synthetic mouse cohort + neural recordings)."""

    seed: int = 2026
    n_subjects: int = 16
    n_trials: int = 400
    p_high: float = 0.8
    p_switch: float = 0.02
    tau_median: float = 0.25
    tau_log_sd: float = 0.3
    eta_median: float = 0.35
    eta_logit_sd: float = 0.5
    eta_true: float = 0.1
    n_recorded: int = 6
    n_units: int = 40
    n_time: int = 10
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
    """Write datasets as netCDF groups, every numeric variable zlib-compressed."""
    mode = "w"
    for name, ds in groups.items():
        ds = netcdf_safe(ds)
        enc = {k: {"zlib": True, "complevel": level} for k, v in ds.variables.items()
               if v.dtype.kind in "biuf" and v.ndim > 0}
        ds.to_netcdf(path, group=None if name == "/" else name, mode=mode, engine="netcdf4", encoding=enc)
        mode = "a"


def subject_labels(n: int) -> np.ndarray:
    return np.array([f"m{i + 1:02d}" for i in range(n)])


def generate(args: Args) -> dict:
    """Simulate the cohort and the recordings; returns the datasets (nothing written)."""
    root = np.random.default_rng(args.seed)
    rng_params, rng_behaviour, *rng_neural = root.spawn(2 + args.n_recorded)
    n = args.n_subjects
    tau = np.exp(np.log(args.tau_median) + args.tau_log_sd * rng_params.standard_normal(n))
    eta = expit(logit(args.eta_median) + args.eta_logit_sd * rng_params.standard_normal(n))
    agent = nr.make_agent("soft_q", fixed={"eta_true": args.eta_true})
    task = nr.make_task("mouse_bandit", p_high=args.p_high, p_switch=args.p_switch)
    sim = nr.simulate(agent, task, n_subjects=n, n_trials=args.n_trials, params={"tau": tau, "eta": eta},
                      rng=rng_behaviour)
    labels = subject_labels(n)
    trials = sim.trials.assign_coords(subject=labels)
    latents = sim.latents.assign_coords(subject=labels)
    params = sim.params.assign_coords(subject=labels)
    provenance = {
        "generator": "analyses/make_demo_data.py", "seed": int(args.seed), "neurorl_version": nr.__version__,
        "command": "python analyses/make_demo_data.py " + " ".join(sys.argv[1:]) if __name__ == "__main__" else "",
        "ground_truth": (f"soft_q (max-ent) agent, fixed eta_true = {args.eta_true}; log tau ~ N(log "
                         f"{args.tau_median}, {args.tau_log_sd}^2), logit eta ~ N(logit {args.eta_median}, "
                         f"{args.eta_logit_sd}^2) per subject"),
    }
    trials.attrs.update(provenance)
    latents.attrs.update(provenance)
    params.attrs.update(provenance, description="the parameters each subject was simulated with (ground truth)")
    for k, doc in (("tau", "temperature of the soft policy and value"), ("eta", "soft-critic learning rate"),
                   ("eta_true", "true-critic learning rate (fixed, the same for every subject)")):
        params[k].attrs["description"] = doc

    counts, weight, baseline = [], [], []
    recorded = labels[: args.n_recorded]
    for s, rng in zip(recorded, rng_neural):
        base = np.exp(np.log(args.baseline_hz) + 0.3 * rng.standard_normal(args.n_units))
        neural, truth = synthetic_population(
            (trials, latents), encode={"v_soft": args.effect}, n_units=args.n_units, n_time=args.n_time,
            kind="poisson", drift=args.drift, drift_rho=args.drift_rho, shared_drift=args.shared_drift,
            baseline=base, bin_width_s=args.bin_width_s, subject=s, rng=rng)
        counts.append(neural.drop_vars("subject", errors="ignore"))
        weight.append(truth["weight"].sel(latent="v_soft").drop_vars("latent"))
        baseline.append(truth["baseline"])
    counts = xr.concat(counts, dim="subject").assign_coords(subject=recorded)
    counts = counts.astype(np.int16).transpose("subject", "trial", "unit", "time")
    counts.attrs.update(kind="counts", units="count", bin_width_s=float(args.bin_width_s),
                        align_event="decision (synthetic)", description="spike counts per trial, unit and time bin")
    neural_ds = xr.Dataset(
        {"counts": counts,
         "weight": xr.concat(weight, dim="subject").assign_coords(subject=recorded),
         "baseline": xr.concat(baseline, dim="subject").assign_coords(subject=recorded),
         "kernel": truth["kernel"]},
        attrs={**provenance, "encoded_latent": "v_soft", "effect": float(args.effect), "drift_sd": float(args.drift),
               "drift_rho": float(args.drift_rho), "shared_drift": float(args.shared_drift),
               "ground_truth_neural": (f"units with group 'v_soft' encode the soft value v_soft with weight "
                                       f"+-{args.effect} (log rate per SD at the kernel peak); 'null' units encode "
                                       "nothing; every unit drifts slowly (AR(1) over trials)")})
    neural_ds["weight"].attrs["description"] = "log-rate change per SD of v_soft at the kernel peak (0: null unit)"
    neural_ds["baseline"].attrs["description"] = "baseline rate (Hz)"
    neural_ds["kernel"].attrs["description"] = "within-trial gain of the encoding (peak 1)"
    return {"trials": trials, "latents": latents, "params": params, "neural": neural_ds, "sim": sim}


def main(argv=None) -> int:
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    d = generate(args)
    cohort = out / "mouse_bandit_cohort.nc"
    _write_groups(cohort, {"trials": d["trials"], "latents": d["latents"], "params": d["params"]})
    nr.write_trials(d["trials"], out / "mouse_bandit_cohort.csv")
    neural = out / "mouse_bandit_neural.nc"
    _write_groups(neural, {"/": d["neural"]})
    # checks: the files read back to what was generated
    back = nr.read_simulation(cohort)
    assert back.trials.identical(d["trials"].assign_attrs(back.trials.attrs)), "cohort trials do not round-trip"
    csv = nr.read_trials(out / "mouse_bandit_cohort.csv")
    assert np.array_equal(csv.choice.values, d["trials"].choice.values), "CSV does not round-trip"
    tr, lat, par = d["trials"], d["latents"], d["params"]
    hit = (tr.choice == tr.high_port).mean("trial").values
    r = [float(np.corrcoef(lat.v.sel(subject=s), lat.v_soft.sel(subject=s))[0, 1]) for s in tr.subject.values]
    sizes = {p.name: p.stat().st_size for p in sorted(out.glob("mouse_bandit_*"))}
    lines = [
        "# Demo dataset", "",
        f"Generated by `python analyses/make_demo_data.py` (seed {args.seed}).", "",
        "## Arguments", "", "| name | value |", "|---|---|",
        *[f"| {f.name} | {getattr(args, f.name)} |" for f in dataclasses.fields(Args) if f.name != "out"], "",
        "## Ground truth per subject", "", "| subject | tau | eta | eta_true | P(high port) | corr(v, v_soft) |",
        "|---|---|---|---|---|---|",
        *[f"| {s} | {float(par.tau.sel(subject=s)):.3f} | {float(par.eta.sel(subject=s)):.3f} | "
          f"{float(par.eta_true.sel(subject=s)):.2f} | {h:.3f} | {c:.3f} |"
          for s, h, c in zip(tr.subject.values, hit, r)], "",
        "## Files", "", "| file | bytes |", "|---|---|", *[f"| {k} | {v:,} |" for k, v in sizes.items()],
        f"| total | {sum(sizes.values()):,} |", "",
    ]
    (out / "result.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
