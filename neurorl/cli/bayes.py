"""``neurorl fit-bayes``: hierarchical Bayesian fits (NUTS) from the command line, with neurorl's or hBayesDM's priors.

Every ``--agent`` is fitted to all subjects of DATA by :func:`neurorl.fitting.bayes.fit_bayes`; ``--priors hbayesdm``
builds hBayesDM's hierarchy for its models (:mod:`neurorl.fitting.hbayesdm`). One netCDF file holds, per model,
the ArviZ groups ``posterior``, ``log_likelihood`` and ``sample_stats`` under ``models/LABEL/`` plus ``summary``
(``arviz.summary`` of the group and subject parameters), ``params`` (posterior means per subject), ``diagnostics``
and ``loo`` (:func:`neurorl.fitting.hbayesdm.looic`: hBayesDM's per-subject LOOIC beside our per-trial LOO), and
the fitted ``trials``; :func:`neurorl.results.read_fit_bayes` reads it back (one ``arviz.InferenceData`` per model).
"""
from __future__ import annotations

import json
import time
import warnings

from ..results import FINGERPRINT_ATTR, OUTPUT_ATTR, trials_fingerprint
from ..results import write_groups as _write_groups
from ._common import (
    UsageError,
    _check_out,
    _command_line,
    _finish,
    _make_agent,
    _say,
    _spec_string,
    add_data_arguments,
    parse_agent_spec,
    read_data_args,
)

#: ``--priors`` -> ``fit_bayes(priors=...)``
PRIORS = {"neurorl": None, "hbayesdm": "hbayesdm"}
#: ``--sampler`` choices: :data:`neurorl.fitting.bayes.SAMPLERS` (not imported here, so that building the parser
#: stays light; a test checks they agree)
SAMPLERS = ("auto", "nutpie", "pymc", "numpyro")


def _summary_dataset(summary):
    """``arviz.summary``'s table as a Dataset over ``variable`` (its row names)."""
    import xarray as xr

    df = summary.copy()
    df.index = [str(i) for i in df.index]
    df.index.name = "variable"
    return xr.Dataset.from_dataframe(df)


def _loo_dataset(table):
    import xarray as xr

    df = table.copy()
    df.index.name = "level"
    return xr.Dataset.from_dataframe(df)


def _fit_one(label, agent, trials, args):
    from ..fitting.bayes import fit_bayes
    from ..fitting.hbayesdm import looic

    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fit = fit_bayes(agent, trials, priors=PRIORS[args.priors], draws=args.draws, tune=args.tune,
                            chains=args.chains, cores=args.cores, sampler=args.sampler, random_seed=args.seed,
                            target_accept=args.target_accept, progress=not args.quiet,
                            parametrization="centred" if args.centred else args.parametrization)
            loo = looic(fit)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{str(args.data)!r}: model {label!r}: {exc}") from None
    except ImportError as exc:
        raise UsageError(f"--sampler {args.sampler}: {exc}") from None
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    messages = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return fit, loo, messages, time.perf_counter() - t0


def _cmd_fit_bayes(args) -> int:
    for name in ("draws", "tune", "chains"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if not 0 < args.target_accept < 1:
        raise UsageError(f"--target-accept must be in (0, 1), got {args.target_accept}")
    out = _check_out(args.out, inputs=[args.data])
    trials, truth = read_data_args(args)
    specs = []
    for spec in args.agent:
        name, options, fixed = parse_agent_spec(spec)
        agent = _make_agent(name, options, fixed)
        label, k = name, 2
        while label in [s[0] for s in specs]:
            label, k = f"{name}_{k}", k + 1
        specs.append((label, name, options, fixed, agent))
    n_sub, n_valid = trials.sizes["subject"], int(trials["valid"].sum())
    _say(args, f"fit-bayes: {len(specs)} model(s) x {n_sub} subjects ({n_valid} valid trials) from {args.data}, "
               f"{args.priors} priors, {args.chains} chains x {args.draws} draws (+{args.tune} tuning)"
               + (f" (read as {args.format})" if args.format else ""))
    groups, rows = {}, []
    for label, name, options, fixed, agent in specs:
        _say(args, f"sampling {label} ...")
        fit, loo, messages, seconds = _fit_one(label, agent, trials, args)
        spec = {"name": name, "options": options, "fixed": fixed, "label": label, "priors": args.priors,
                "spec": _spec_string(name, {**options, "fixed": fixed}), "sampler": fit.sampler_,
                "parametrization": fit.parametrization_, "init": fit.init_,
                "draws": args.draws, "tune": args.tune, "chains": args.chains, "seed": args.seed}
        base = f"models/{label}"
        for g in ("posterior", "log_likelihood", "sample_stats"):
            if g in fit.idata_.groups():
                groups[f"{base}/{g}"] = getattr(fit.idata_, g)
        groups[f"{base}/summary"] = _summary_dataset(fit.summary_).assign_attrs(
            neurorl_model=json.dumps(spec), fit_seconds=float(seconds), fit_warnings=json.dumps(messages))
        groups[f"{base}/params"] = fit.params_
        groups[f"{base}/diagnostics"] = fit.diagnostics_
        groups[f"{base}/loo"] = _loo_dataset(loo)
        rows.append((label, fit, loo, seconds))
    groups["trials"] = trials
    if truth is not None:
        groups["truth"] = truth
    attrs = {OUTPUT_ATTR: "fit_bayes", FINGERPRINT_ATTR: trials_fingerprint(trials), "data": str(args.data),
             "priors": args.priors, "models": json.dumps([r[0] for r in rows]), "command": _command_line(args)}
    _write_groups(out, groups, attrs)
    _print_table(rows)
    print(f"wrote {out}")
    return 0


def _print_table(rows):
    """One line per model (sampling diagnostics, our per-trial LOO, hBayesDM's per-subject LOOIC), then each
    model's group-level posterior."""
    from ..fitting.bayes import describe_parametrization

    head = (f"{'model':<28}{'params':>7}{'max R-hat':>10}{'min ESS':>9}{'diverg.':>8}{'elpd_loo':>11}{'se':>8}"
            f"{'max k':>7}{'LOOIC (subj.)':>15}{'se':>8}{'max k':>7}{'seconds':>9}")
    print(head)
    for label, fit, loo, sec in rows:
        d = fit.diagnostics_
        tr, sj = loo.loc["trial"], loo.loc["subject"]
        print(f"{label:<28}{len(fit.layout_.names):>7}{float(d['max_rhat']):>10.3f}{float(d['min_ess_bulk']):>9.0f}"
              f"{int(d['n_divergent']):>8}{tr['elpd_loo']:>11.2f}{tr['se']:>8.2f}{tr['max_pareto_k']:>7.2f}"
              f"{sj['looic']:>15.2f}{sj['looic_se']:>8.2f}{sj['max_pareto_k']:>7.2f}{sec:>9.1f}")
    print("elpd_loo: our PSIS-LOO, one term per trial; LOOIC (subj.): hBayesDM's, -2 x PSIS-LOO over each subject's "
          "summed log-likelihood (leave one subject out; docs/bayes.md). The two answer different questions and "
          "are not on one scale; compare models within a column only, and a difference within about two se "
          "does not separate them.")
    for label, fit, _, _ in rows:
        how = describe_parametrization(fit.parametrization_, fit.centring_)
        print(f"{label}: sampler {fit.sampler_}, {how}, chains started at the {fit.init_} "
              f"({'MAP estimates' if fit.init_ == 'map' else 'prior location'})")
        s = fit.summary_
        names = [n for n, _, _ in fit.layout_.terms]
        parts = []
        for n in names:
            r = s.loc[f"{n}_group"]
            lo, hi = [c for c in s.columns if c.startswith("hdi_")][:2]
            parts.append(f"{n} {r['mean']:.3g} [{r[lo]:.3g}, {r[hi]:.3g}]")
        print(f"{label}: group posterior mean [{lo.replace('hdi_', '')}, {hi.replace('hdi_', '')} HDI]: "
              + ", ".join(parts))


def register(sub) -> None:
    """Add ``fit-bayes`` to the ``neurorl`` parser."""
    sp = sub.add_parser(
        "fit-bayes", help="hierarchical Bayesian fit (NUTS), with neurorl's or hBayesDM's priors; LOO and LOOIC",
        description="Fit each agent hierarchically to all subjects of DATA with NUTS (neurorl.fitting.bayes."
                    "fit_bayes). --priors hbayesdm builds hBayesDM's hierarchy for its models (Phi_approx on the "
                    "bounded scale, group means N(0, 1), group sds half-N(0, 0.2), non-centred), so a published "
                    "hBayesDM analysis can be re-run. Writes one netCDF file: per model the ArviZ groups "
                    "models/LABEL/posterior, log_likelihood, sample_stats, plus summary, params (posterior means), "
                    "diagnostics and loo (per-trial PSIS-LOO and hBayesDM's per-subject LOOIC); and the trials.")
    sp.add_argument("data", help="trials: CSV/TSV (with its .json sidecar, or in a --format preset's layout) or "
                                 "netCDF")
    sp.add_argument("--agent", "-a", action="append", required=True, metavar="SPEC",
                    help="agent to fit: NAME[:OPTION=VALUE,...,fix.PARAM=VALUE]; repeat for several models")
    sp.add_argument("--priors", choices=sorted(PRIORS), default="neurorl",
                    help="neurorl: the agents' own group priors (default); hbayesdm: hBayesDM's hierarchy (only "
                         "for hBayesDM's models, e.g. bandit4arm_4par, prl_rp, igt_orl; docs/bayes.md)")
    sp.add_argument("--draws", type=int, default=1000, help="posterior draws per chain (default 1000)")
    sp.add_argument("--tune", type=int, default=1000, help="tuning steps per chain (default 1000)")
    sp.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    sp.add_argument("--cores", type=int, default=None, help="chains run in parallel (default: min(chains, CPUs))")
    sp.add_argument("--sampler", choices=list(SAMPLERS), default="auto",
                    help="NUTS implementation (default auto: nutpie where installed, else numpyro, else PyMC's "
                         "NUTS; every one runs the compiled JAX likelihood)")
    sp.add_argument("--target-accept", type=float, default=0.8, help="NUTS target acceptance (default 0.8)")
    sp.add_argument("--parametrization", choices=("auto", "centred", "non-centred"), default="auto",
                    help="how subjects' parameters are sampled: centred, theta ~ N(group mean, group sd) (data-rich "
                         "subjects, e.g. RL-DDM), or non-centred offsets; auto (default) samples each subject's "
                         "parameter partially non-centred, weighted by its MAP estimate's Laplace sd against the "
                         "between-subject sd (docs/bayes.md [A2]); not with --priors hbayesdm, whose hierarchy is "
                         "non-centred")
    sp.add_argument("--centred", action="store_true", help="same as --parametrization centred")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    add_data_arguments(sp)
    _finish(sp, _cmd_fit_bayes, out="fit_bayes.nc")
