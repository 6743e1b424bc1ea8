"""Benchmark: hierarchical Bayesian fit (neurorl.fitting.bayes) against a plain PyMC model, same process.

Problem (fitting.md §7): two-armed bandit with p = 0.7 / 0.3 (task ``bandit``), Rescorla-Wagner + softmax
(``q_learning`` with q0 = 0.5; parameters logit alpha, log beta), 100 subjects x 200 simulated trials,
alpha = logistic(N(-1, 0.7)), beta = exp(N(1, 0.4)).

Both models have the same priors: group mean ~ N(0, 2.5^2), group sd ~ HalfNormal(1) on (logit alpha, log beta).

* neurorl: ``HierarchicalBayes("q_learning")`` with its defaults (nutpie where installed, on the compiled JAX
  likelihood; chains from the MAP estimates; centred or non-centred per parameter, chosen from them -- the printed
  line says which; ``--sampler`` picks another sampler);
* baseline: the model as it is usually written by hand in PyMC, non-centred -- a ``pytensor.scan`` over trials whose
  step updates the (subjects x 2) Q table with ``set_subtensor`` and reads it with integer indexing -- sampled with
  ``pm.sample`` defaults (PyMC NUTS, C backend, target_accept 0.8, jitter+adapt_diag initialisation), except that
  it runs as many chains in parallel as neurorl does (``min(chains, CPUs)``; PyMC's own default is
  ``min(4, CPUs // 2)``, one process on a 2-CPU machine: ``--baseline-default-cores``).

Printed for each: compile time (neurorl: nutpie's; PyMC compiles inside ``pm.sample`` -- its part is wall
minus sampling), sampling time, wall time, max R-hat, divergences, bulk ESS (min and median over the group means,
group sds and every subject's two parameters), and ESS per second of sampling (and of wall time); then the
neurorl/baseline ratios. ``--rlddm`` also times a hierarchical RL-DDM fit (``rt=WienerRT()``) of 28 subjects x 190
ragged trials (113-360 each, as HDDM's RL-DDM example) and compares its ESS per wall second with HDDM's; by default
with ``fit_bayes``'s defaults (``--rlddm-sampler``, ``--rlddm-parametrization``, ``--rlddm-init`` choose others).
Wall time is the whole ``fit`` call (PyMC's import and the MAP start included); the mean number of leapfrog steps per kept draw is printed beside it.

Run:  python benchmarks/fit_bayes.py [--subjects 100] [--trials 200] [--draws 1000] [--tune 1000] [--chains 4]
                                     [--cores N] [--sampler auto] [--skip-baseline] [--rlddm | --rlddm-only]
Targets (issue "Hierarchical Bayesian fitting"): >= 2x the baseline's ESS/s, R-hat <= 1.01, no divergences.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings

# numpyro runs chains in parallel only on as many JAX devices; a CPU is one device unless this is set before JAX
# starts (what numpyro.set_host_device_count does; docs/bayes.md)
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={os.cpu_count() or 1}").strip()

import numpy as np
import xarray as xr

import neurorl as nr
from neurorl.fitting.bayes import describe_parametrization

PRIOR_SCALE, SD_SCALE = 2.5, 1.0


def simulate(n, T, seed):
    rng = np.random.default_rng(seed)
    alpha = 1.0 / (1.0 + np.exp(-rng.normal(-1.0, 0.7, n)))
    beta = np.exp(rng.normal(1.0, 0.4, n))
    agent = nr.make_agent("q_learning", q0=0.5)
    sim = nr.simulate(agent, nr.make_task("bandit", p=(0.7, 0.3)), n_subjects=n, n_trials=T,
                      params={"alpha": alpha, "beta": beta}, rng=seed + 1)
    return agent, sim.trials


def summarise(idata, theta, sample_s, wall_s):
    """Diagnostics over group means, group sds and the subjects' unconstrained parameters ``theta``."""
    import arviz as az
    import xarray as xr

    post = idata.posterior
    ds = xr.Dataset({"group_mean": post["group_mean"], "group_sd": post["group_sd"], "theta": theta})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ess = az.ess(ds, method="bulk")
        rhat = az.rhat(ds)
    e = np.concatenate([ess[v].values.ravel() for v in ess.data_vars])
    r = np.concatenate([rhat[v].values.ravel() for v in rhat.data_vars])
    div = int(idata.sample_stats["diverging"].sum())
    return {"rhat_max": float(r.max()), "divergent": div, "ess_min": float(e.min()), "ess_median": float(np.median(e)),
            "sample_s": sample_s, "wall_s": wall_s, "ess_min_per_s": float(e.min()) / sample_s,
            "ess_median_per_s": float(np.median(e)) / sample_s, "ess_min_per_wall_s": float(e.min()) / wall_s}


def run_neurorl(agent, trials, args):
    from neurorl.fitting.bayes import HierarchicalBayes

    t0 = time.perf_counter()
    fit = HierarchicalBayes(agent, draws=args.draws, tune=args.tune, chains=args.chains, cores=args.cores,
                            sampler=args.sampler, random_seed=args.seed, progress=False,
                            log_likelihood=False).fit(trials)
    wall = time.perf_counter() - t0
    post = fit.idata_.posterior
    out = summarise(fit.idata_, post["theta"], fit.sample_seconds_, wall)
    out["compile_s"] = fit.compile_seconds_
    out["sampler"] = f"{fit.sampler_}, {_centred_summary(fit)}"
    return out, fit


def baseline_model(trials):
    """The hierarchical RW + softmax model as written by hand in PyMC (textbook scan)."""
    import pymc as pm
    import pytensor
    import pytensor.tensor as pt

    choice = np.asarray(trials["choice"].values, dtype=np.int64)
    reward = np.asarray(trials["reward"].values, dtype=float)
    n = choice.shape[0]
    rows = pt.arange(n)
    with pm.Model(coords={"param": ["alpha", "beta"], "subject": np.arange(n)}) as model:
        mu = pm.Normal("group_mean", 0.0, PRIOR_SCALE, dims="param")
        sd = pm.HalfNormal("group_sd", SD_SCALE, dims="param")
        z = pm.Normal("offset", 0.0, 1.0, dims=("param", "subject"))
        alpha = pm.math.sigmoid(mu[0] + sd[0] * z[0])
        beta = pt.exp(mu[1] + sd[1] * z[1])

        def step(c, r, Q, alpha, beta):
            logits = beta[:, None] * Q
            logp = logits - pt.logsumexp(logits, axis=1, keepdims=True)
            ll = logp[rows, c]
            qc = Q[rows, c]
            Q = pt.set_subtensor(Q[rows, c], qc + alpha * (r - qc))
            return Q, ll

        _, ll = pytensor.scan(step, sequences=[pt.as_tensor(choice.T), pt.as_tensor(reward.T)],
                              outputs_info=[pt.as_tensor(np.full((n, 2), 0.5)), None],
                              non_sequences=[alpha, beta], return_updates=False)
        pm.Potential("loglik", ll.sum())
    return model


def cores(args):
    return args.cores if args.cores is not None else max(1, min(args.chains, os.cpu_count() or 1))


def run_baseline(trials, args):
    import pymc as pm

    t0 = time.perf_counter()
    model = baseline_model(trials)
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {} if args.baseline_default_cores else {"cores": cores(args)}
        idata = pm.sample(draws=args.draws, tune=args.tune, chains=args.chains, random_seed=args.seed,
                          progressbar=False, compute_convergence_checks=False, **kw)
    wall = time.perf_counter() - t0
    post = idata.posterior
    theta = post["group_mean"] + post["group_sd"] * post["offset"]
    out = summarise(idata, theta, float(post.attrs["sampling_time"]), wall)
    out["compile_s"] = wall - out["sample_s"]
    out["sampler"] = "pymc (pm.sample defaults)"
    return out


#: HDDM's hierarchical RL-DDM on its 28-subject example (113-360 trials each): 1,500 kept draws of one chain in
#: 151.7 s (issue "Fast from the first call"; HDDM no longer installs on current Python, so its figure is quoted
#: and its ESS counted as the number of draws, which flatters HDDM)
HDDM_ESS, HDDM_SECONDS = 1500, 151.7


def _centred_summary(fit) -> str:
    return describe_parametrization(fit.parametrization_, fit.centring_)


def run_rlddm(args):
    """Hierarchical RL-DDM (choice + Wiener RT), 28 ragged subjects (113-360 trials): ESS per wall second."""
    from neurorl.fitting.bayes import HierarchicalBayes
    from neurorl.fitting.joint import WithRT
    from neurorl.fitting.observation import WienerRT

    n, lo, hi = 28, 113, 360
    rng = np.random.default_rng(args.seed)
    base = nr.make_agent("q_learning", q0=0.5)
    joint = WithRT(base, WienerRT())
    # a population, not clones: every parameter varies between subjects as in fitted RL-DDM data (Pedersen et al.
    # 2017: boundary 1.2-2, non-decision time 0.15-0.45 s); identical subjects put every group sd at zero, the
    # hardest geometry a hierarchical sampler meets and not one that real data show
    params = {
        "alpha": 1.0 / (1.0 + np.exp(-rng.normal(-0.5, 0.5, n))),
        "v_scale": np.exp(rng.normal(np.log(2.0), 0.3, n)),
        "a": np.exp(rng.normal(np.log(1.5), 0.15, n)),
        "w": 1.0 / (1.0 + np.exp(-rng.normal(0.0, 0.2, n))),
        "t0": rng.uniform(0.15, 0.4, n),
    }
    params.update({p.name: p.default for p in joint.params if p.name not in params})
    sim = nr.simulate(joint, nr.make_task("bandit", p=(0.7, 0.3)), n_subjects=n, n_trials=hi, params=params,
                      rng=args.seed + 1)
    trials = sim.trials.copy()
    # lengths skewed towards the short end, mean 190, spanning 113-360 as the public data set's do (28 x 190 =
    # 5,320 trials; uniform lengths would give 6,600, a quarter more work than the data set the target is about)
    length = np.round(lo + (hi - lo) * rng.beta(1.0, 2.2, n)).astype(int)
    length[np.argmin(length)], length[np.argmax(length)] = lo, hi
    trials["valid"] = trials["valid"] & (trials["trial"] < xr.DataArray(length, dims="subject"))
    n_trials = int(trials["valid"].sum())
    t0 = time.perf_counter()
    fit = HierarchicalBayes(base, rt=WienerRT(), draws=args.draws, tune=args.tune, chains=args.chains,
                            cores=args.cores, sampler=args.rlddm_sampler, random_seed=args.seed, progress=False,
                            log_likelihood=False, parametrization=args.rlddm_parametrization,
                            init=args.rlddm_init, sampler_kwargs=json.loads(args.rlddm_sampler_kwargs)).fit(trials)
    wall = time.perf_counter() - t0
    d = fit.diagnostics_
    ess = float(d["min_ess_bulk"])
    hddm = HDDM_ESS / HDDM_SECONDS
    print(f"\nhierarchical RL-DDM ({fit.agent_.name}; free: {', '.join(fit.agent_.param_names)}), {n} ragged subjects "
          f"({lo}-{hi} trials, {n_trials} in all, {1 - n_trials / (n * hi):.0%} of a padded panel would be padding), "
          f"{args.chains} chains x ({args.tune} tune + {args.draws} draws), sampler {fit.sampler_}, "
          f"parametrization {args.rlddm_parametrization} ({_centred_summary(fit)}), init {args.rlddm_init}:")
    steps = fit.idata_.sample_stats["n_steps"].values if "n_steps" in fit.idata_.sample_stats else np.nan
    rest = wall - fit.compile_seconds_ - fit.init_seconds_ - fit.sample_seconds_
    print(f"  wall {wall:.1f} s = compile {fit.compile_seconds_:.1f} s + MAP start {fit.init_seconds_:.1f} s + sampling "
          f"{fit.sample_seconds_:.1f} s + rest {rest:.1f} s; {np.mean(steps):.1f} leapfrog steps per draw; max R-hat "
          f"{float(d['max_rhat']):.3f}, "
          f"min bulk ESS {ess:.0f}, divergences {int(d['n_divergent'])}")
    print(f"  min bulk ESS per wall second {ess / wall:.1f} (HDDM: {HDDM_ESS} draws in {HDDM_SECONDS} s = {hddm:.1f}/s); "
          f"ratio {ess / wall / hddm:.2f}x (target >= 3x)")
    return wall


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--subjects", type=int, default=100)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--draws", type=int, default=1000)
    ap.add_argument("--tune", type=int, default=1000)
    ap.add_argument("--chains", type=int, default=4)
    ap.add_argument("--cores", type=int, default=None, help="parallel chains (default min(chains, CPUs))")
    ap.add_argument("--sampler", default="auto", help="neurorl sampler: auto, nutpie, pymc, numpyro")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-baseline", action="store_true")
    ap.add_argument("--baseline-default-cores", action="store_true",
                    help="let pm.sample choose its cores (min(4, CPUs // 2)) instead of neurorl's")
    ap.add_argument("--rlddm", action="store_true", help="also time the hierarchical RL-DDM fit")
    ap.add_argument("--rlddm-only", action="store_true")
    ap.add_argument("--rlddm-sampler", default="auto",
                    help="sampler of the RL-DDM fit (default auto, neurorl's default: numpyro where installed)")
    ap.add_argument("--rlddm-init", default="auto", choices=("auto", "map", "prior"),
                    help="RL-DDM chains' start (default auto, neurorl's default: the MAP estimates)")
    ap.add_argument("--rlddm-parametrization", default="auto", choices=("auto", "centred", "non-centred"),
                    help="RL-DDM hierarchy (default auto, neurorl's default: chosen per parameter from the MAP "
                         "estimates' Laplace sds)")
    ap.add_argument("--rlddm-sampler-kwargs", default="{}",
                    help='JSON passed to the RL-DDM sampler (e.g. \'{"low_rank_modified_mass_matrix": true}\')')
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore", message="PyTensor could not link to a BLAS")
    from neurorl.fitting.bayes import BayesWarning

    warnings.simplefilter("ignore", BayesWarning)  # the diagnostics are printed below
    if args.rlddm_only:
        print(f"{os.cpu_count()} CPUs, {cores(args)} chains in parallel")
        run_rlddm(args)
        return
    print(f"{os.cpu_count()} CPUs, {cores(args)} chains in parallel; {args.subjects} subjects x {args.trials} trials, "
          f"{args.chains} chains x ({args.tune} tune + {args.draws} draws), seed {args.seed}")
    agent, trials = simulate(args.subjects, args.trials, args.seed)
    head = f"{'':10s} {'sampler':28s} {'compile':>8s} {'sampling':>9s} {'wall':>8s} {'R-hat':>6s} {'div':>4s} " \
           f"{'ESS min':>8s} {'ESS med':>8s} {'min/s':>7s} {'med/s':>7s} {'min/wall-s':>10s}"

    def show(name, r):
        print(f"{name:10s} {r['sampler']:28s} {r['compile_s']:8.1f} {r['sample_s']:9.1f} {r['wall_s']:8.1f} "
              f"{r['rhat_max']:6.3f} {r['divergent']:4d} {r['ess_min']:8.0f} {r['ess_median']:8.0f} "
              f"{r['ess_min_per_s']:7.2f} {r['ess_median_per_s']:7.2f} {r['ess_min_per_wall_s']:10.2f}", flush=True)

    print(head, flush=True)
    rows = []
    res, _ = run_neurorl(agent, trials, args)
    rows.append(("neurorl", res))
    show(*rows[-1])
    if not args.skip_baseline:
        rows.append(("baseline", run_baseline(trials, args)))
        show(*rows[-1])
    if len(rows) == 2:
        a, b = rows[0][1], rows[1][1]
        print(f"ratio neurorl / baseline: ESS/s (min) {a['ess_min_per_s'] / b['ess_min_per_s']:.2f}x, ESS/s (median) "
              f"{a['ess_median_per_s'] / b['ess_median_per_s']:.2f}x, ESS per wall second (min) "
              f"{a['ess_min_per_wall_s'] / b['ess_min_per_wall_s']:.2f}x")
    ok = res["rhat_max"] <= 1.01 and res["divergent"] == 0
    print(f"neurorl targets: R-hat <= 1.01 and no divergences: {'met' if ok else 'NOT met'}")
    if args.rlddm:
        run_rlddm(args)


if __name__ == "__main__":
    main()
