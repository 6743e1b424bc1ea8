"""``neurorl fit``, ``neurorl export`` and ``neurorl compare``."""
from __future__ import annotations

import json
import time
import warnings

import numpy as np

from ..parallel import add_arguments as add_parallel_arguments
from ..results import (
    FINGERPRINT_ATTR,
    OUTPUT_ATTR,
    read_compare,
    read_fit,
    trials_fingerprint,
)
from ..results import write_groups as _write_groups
from ._common import (
    METHODS,
    UsageError,
    _agent_of,
    _check_out,
    _command_line,
    _estimator,
    _finish,
    _make_agent,
    _policy_dataset,
    _say,
    _spec_string,
    add_data_arguments,
    parse_agent_spec,
    read_data_args,
)

#: simulated trials of an RL-DDM fit's RT predictive check (replicates of the data set, 5 to 30)
RT_CHECK_TRIALS = 20_000


def _cmd_fit(args) -> int:
    out = _check_out(args.out, inputs=[args.data])
    trials, truth = read_data_args(args)
    covariates = {}
    for item in args.covariate or []:
        p, sep, var = item.partition("=")
        if not sep or not p.strip() or not var.strip():
            raise UsageError(f"--covariate expects PARAM=VARIABLE, got {item!r}")
        if var.strip() not in trials:
            raise UsageError(f"{str(args.data)!r}: --covariate {item}: the data have no variable {var.strip()!r} "
                             f"(variables: {sorted(trials.data_vars)})")
        covariates.setdefault(p.strip(), []).append(var.strip())
    if args.rt:
        rt = trials["rt"].values[trials["valid"].values.astype(bool)]
        if rt.size == 0 or np.all(np.isnan(rt)):
            raise UsageError(f"{str(args.data)!r}: --rt {args.rt} needs reaction times, but the 'rt' column is "
                             "empty on every valid trial")
    specs = []
    for spec in args.agent:
        name, options, fixed = parse_agent_spec(spec)
        agent = _make_agent(name, options, fixed, args.rt)
        label = name + (f"+{args.rt}" if args.rt else "")
        base, k = label, 2
        while label in [s[0] for s in specs]:
            label, k = f"{base}_{k}", k + 1
        specs.append((label, name, options, fixed, agent))
    show = not args.quiet
    n_sub = trials.sizes["subject"]
    n_valid = int(trials["valid"].sum())
    _say(args, f"fit: {len(specs)} model(s) x {n_sub} subjects ({n_valid} valid trials) from {args.data} "
               f"by {args.method.upper()}" + (f" (read as {args.format})" if args.format else ""))
    from .. import parallel as par

    show_each = show and par.current().kind == "serial"  # progress bars of workers would interleave
    units = [{"label": label, "agent": agent, "trials": trials, "data": str(args.data), "fit": (
        args.method, agent, args.starts, args.seed, covariates, args.optimizer, show_each, args.max_iter,
        args.max_em_iter)} for label, name, options, fixed, agent in specs]
    fitted = par.map_units(_fit_model_unit, units, progress=show and not show_each, desc="fit models")
    groups, rows = {}, []
    for (label, name, options, fixed, agent), f in zip(specs, fitted):
        held = f["held"]
        if held:
            print(f"{label}: {', '.join(f'{k} = {v:g}' for k, v in held.items())} held fixed (it does not affect "
                  "choices, so choices cannot estimate it; fix it yourself with fix.PARAM=VALUE)")
        fixed = {**fixed, **held}
        spec = {"name": name, "options": options, "fixed": fixed, "rt": args.rt, "covariates": covariates,
                "method": args.method, "label": label, "spec": _spec_string(name, {**options, "fixed": fixed}),
                "fixed_by_default": held}
        res = f["result"]
        res.attrs["neurorl_model"] = json.dumps(spec)
        for k in ("result", "evidence", "params", "pointwise", "predicted", "rt_check"):
            if k in f:
                groups[f"models/{label}/{k}"] = f[k]
        rows.append((label, f["summary"], f["seconds"]))
    groups["trials"] = trials
    if truth is not None:
        groups["truth"] = truth
    attrs = {OUTPUT_ATTR: "fit", FINGERPRINT_ATTR: trials_fingerprint(trials), "data": str(args.data),
             "method": args.method, "models": json.dumps(
        [r[0] for r in rows]), "command": _command_line(args)}
    _write_groups(out, groups, attrs)
    _print_fit_table(rows)
    if args.csv:
        _export(out)
    if not args.no_figures:
        from .. import report

        fit = read_fit(out)
        paths = report.save(report.fig_parameters(fit), out.with_name(out.stem + "_params.png"))
        paths += report.save(report.fig_learning_curves(fit), out.with_name(out.stem + "_learning.png"))
        _say(args, "figures: " + ", ".join(str(p) for p in paths if p))
    print(f"wrote {out}")
    return 0


def _export(fit_path, prefix=None):
    from ..results import export_csv

    try:
        paths = export_csv(fit_path, prefix)
    except (ValueError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    print("wrote " + ", ".join(str(p) for p in paths))


def _cmd_export(args) -> int:
    if not args.csv:
        raise UsageError("export: give --csv (the only export format)")
    _export(args.fit, args.prefix)
    return 0


def _fit_model_unit(u: dict) -> dict:
    """One unit of ``neurorl fit``: fit one model to all subjects (run by :mod:`neurorl.parallel`)."""
    import types

    t0 = time.perf_counter()
    est = _estimator(*u["fit"])
    try:
        with warnings.catch_warnings(record=True) as caught:  # shown here and kept for the report
            warnings.simplefilter("always")
            est.fit(u["trials"])
    except np.linalg.LinAlgError:  # a numerical failure, not the user's input (exit code 1)
        raise
    except (ValueError, TypeError) as exc:
        raise UsageError(f"{u['data']!r}: model {u['label']!r}: {exc}") from None
    for w in caught:
        warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    res = est.result_.copy()
    res.attrs["fit_seconds"] = float(time.perf_counter() - t0)
    res.attrs["fit_warnings"] = json.dumps(list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught)))
    out = {"held": dict(getattr(est, "fixed_by_default_", {}) or {}), "result": res, "evidence": est.evidence_,
           "params": est.params_, "pointwise": est.pointwise_loglik_.to_dataset(),
           "predicted": _policy_dataset(est, u["trials"])}
    if getattr(est.agent_, "wiener", False):  # RL-DDM: the RTs' predictive check, stored for the report
        from ..ssm.ppc import rl_predictive_check

        # enough simulated trials for stable quantiles per condition (RT_CHECK_TRIALS), at most 30 replicates:
        # the exact-crossing sampler costs about 50 us per simulated trial
        n_valid = max(1, int(np.asarray(u["trials"]["valid"]).sum()))
        n_rep = int(min(30, max(5, -(-RT_CHECK_TRIALS // n_valid))))
        out["rt_check"] = rl_predictive_check(est.agent_, u["trials"], est.trial_params(), n_rep=n_rep,
                                              rng=u["fit"][3])
    out["summary"] = types.SimpleNamespace(result_=res, params_=est.params_)
    out["seconds"] = time.perf_counter() - t0
    return out


def _print_fit_table(rows):
    head = f"{'model':<28}{'params':>7}{'loglik':>12}{'BIC':>12}{'Laplace':>12}{'converged':>11}{'seconds':>9}"
    print(head)
    for label, est, sec in rows:
        r = est.result_
        lap = float(r["laplace_log_evidence"].sum(skipna=False)) if "laplace_log_evidence" in r else float("nan")
        print(f"{label:<28}{int(r['n_params']):>7}{float(r['loglik'].sum()):>12.2f}{float(r['bic'].sum()):>12.2f}"
              f"{lap:>12.2f}{int(r['converged'].sum()):>6}/{r.sizes['subject']:<4}{sec:>9.1f}")
        # the same statistic as the report's table and the median line of its parameter panels
        meds = ", ".join(f"{k} {float(v.median()):.3g} [{float(v.quantile(0.25)):.3g}, {float(v.quantile(0.75)):.3g}]"
                         for k, v in est.params_.data_vars.items())
        print(f"{'':<4}median estimates [25 %, 75 %] over subjects: {meds}")
        if "laplace_log_evidence" in r:
            bad = [str(s) for s in r["subject"].values[~np.isfinite(r["laplace_log_evidence"].values)]]
            if bad:
                print(f"{'':<4}Laplace evidence not computed (Hessian not positive definite) for subject(s): "
                      f"{', '.join(bad)}")


# ============================================================================ compare
def _cmd_compare(args) -> int:
    import xarray as xr

    from ..fitting.compare import bms, compare_table

    out = _check_out(args.out, inputs=args.fits)
    fits = [read_fit(p) for p in args.fits]
    prints = {}
    for f in fits:
        prints.setdefault(f["fingerprint"], []).append(f)
    if len(prints) > 1:
        desc = "; ".join(f"{', '.join(str(f['path']) for f in fs)}: {fs[0]['trials'].sizes['subject']} subjects, "
                         f"{int(fs[0]['trials']['valid'].sum())} valid trials, "
                         f"{int(fs[0]['trials'].attrs['n_actions'])} actions (fingerprint {k})"
                         for k, fs in prints.items())
        raise UsageError(f"the fits were made on different data and cannot be compared: {desc}. Refit every model "
                         "on the same trials")
    models, trials_of = {}, {}
    for f in fits:
        for lab, m in f["models"].items():
            key = lab if lab not in models else f"{lab}@{f['path'].stem}"
            models[key] = m
            trials_of[key] = f["trials"]
    if len(models) < 2:
        raise UsageError(f"compare needs at least two models; {', '.join(map(str, args.fits))} hold {list(models)}")
    evidence = {k: m["evidence"] for k, m in models.items()}
    bad_lap = {k: [str(s) for s in e["subject"].values[~np.isfinite(e["laplace_log_evidence"].values)]]
               for k, e in evidence.items() if "laplace_log_evidence" in e}
    bad_lap = {k: v for k, v in bad_lap.items() if v}
    if bad_lap:
        warnings.warn("the Laplace log evidence is not finite (Hessian not positive definite) for "
                      + "; ".join(f"{k}: subject(s) {', '.join(v[:6])}" for k, v in bad_lap.items())
                      + "; it is left out of the comparison (BMS uses -BIC/2 unless --evidence says otherwise)",
                      UserWarning, stacklevel=2)
        evidence = {k: e.drop_vars("laplace_log_evidence", errors="ignore") for k, e in evidence.items()}
    try:
        table = compare_table(evidence, pointwise={k: m["pointwise"]["loglik"] for k, m in models.items()}
                              if all("pointwise" in m for m in models.values()) else None)
    except ValueError as exc:
        raise UsageError(f"{', '.join(map(str, args.fits))}: {exc}") from None
    loo = loo_table = None
    if args.loo:
        from .. import parallel as par
        from ..fitting.loo import loo_compare

        serial = par.current().kind == "serial"
        units = [(m["result"], trials_of[k], _agent_of(m["spec"]), m["spec"].get("covariates") or None, args.draws,
                  args.seed, not args.quiet and serial) for k, m in models.items()]
        loo = dict(zip(models, par.map_units(_loo_unit, units, progress=not args.quiet and not serial,
                                             desc="LOO of each model")))
        try:
            loo_table = loo_compare(loo, equivalent=json.loads(table.attrs["equivalent"]))
        except ValueError as exc:
            raise UsageError(f"LOO: {exc}") from None
    predictive, fallback = _predictive(args, models, trials_of, loo, table)
    criterion = args.evidence
    if criterion == "auto":
        criterion = "laplace" if "laplace_log_evidence" in table else "bic"
    if criterion == "laplace":
        if "laplace_log_evidence" not in table:
            raise UsageError("--evidence laplace needs MAP or EM-MAP fits of every model with a finite Laplace "
                             "log evidence for every subject; use --evidence bic")
        L = table["laplace_log_evidence"]
    elif criterion in ("bic", "aic"):
        L = -table[criterion] / 2
    elif criterion == "loo":
        if loo is None:
            raise UsageError("--evidence loo needs --loo")
        L = xr.concat([r.pointwise["elpd_subject"] for r in loo.values()], dim="model").assign_coords(
            model=list(loo))
    bad = ~np.isfinite(L.values)
    if bad.any():
        j, s = np.argwhere(bad)[0]
        raise UsageError(f"--evidence {criterion}: not finite for model {str(L.model.values[j])!r}, subject "
                         f"{L.subject.values[s]!r} (a Hessian that is not positive definite?); use --evidence bic")
    res = bms(L.transpose("model", "subject"), stop=args.bms_stop)
    from ..fitting.verdict import reconcile

    verdict = reconcile(table, res, predictive[0] if predictive else (loo_table if loo is not None else None),
                        predictive_name=predictive[1] if predictive else None,
                        fallback_subjects=fallback or None)
    groups = {"table": table, "bms": res.to_dataset().assign_attrs(evidence=criterion),
              "verdict": verdict.to_dataset()}
    if predictive:
        groups["predictive"] = predictive[0].assign_attrs(name=predictive[1], fallback=json.dumps(
            [str(s) for s in fallback]))
    if loo is not None:
        groups["loo"] = loo_table
        groups["loo_pointwise"] = xr.concat([r.to_dataset()[["elpd_loo", "pareto_k", "elpd_subject", "k_approx"]]
                                             for r in loo.values()], dim="model").assign_coords(model=list(loo))
    _write_groups(out, groups, {OUTPUT_ATTR: "compare", "fits": json.dumps([str(p) for p in args.fits]),
                                "evidence": criterion, "command": _command_line(args)})
    _print_compare(table, res, loo_table, criterion)
    print(f"verdict: {verdict.sentence}")
    if not args.no_figures:
        from .. import report

        p = report.save(report.fig_compare(read_compare(out)), out.with_suffix(".png"))
        _say(args, f"figure: {p[0]}")
    print(f"wrote {out}")
    return 0


def _predictive(args, models, trials_of, loo, table):
    """Exact CV (``--cv K``) for every subject, or LOO with exact CV for the subjects where it is unreliable."""
    from pathlib import Path

    from ..fitting.cv import cv_compare, cv_models, exact_cv, loo_with_fallback

    def saved(name):
        m = models[name]
        return {"result": m["result"], "trials": trials_of[name], "agent": _agent_of(m["spec"]),
                "covariates": m["spec"].get("covariates") or None}

    def refit(name, subjects, k):
        store = Path(args.store) / f"cv_fallback-{name}" if args.store else None
        f = saved(name)
        return exact_cv(f["result"], k, trials=f["trials"], agent=f["agent"], covariates=f["covariates"],
                        subjects=subjects, progress=not args.quiet, store=store)

    eq = json.loads(table.attrs["equivalent"])
    if args.cv:
        cvs = cv_models({k: saved(k) for k in models}, args.cv, progress=not args.quiet,
                        store=Path(args.store) / "exact_cv" if args.store else None)
        return (cv_compare(cvs, equivalent=eq), f"exact {args.cv}-fold CV"), []
    if loo is None or args.cv_fallback_folds == 0:  # 0: no fallback (the verdict then leaves unreliable LOO out)
        return None, []
    hyb, fallback = loo_with_fallback(loo, refit, k=args.cv_fallback_folds)
    if fallback:
        warnings.warn(f"LOO is unreliable (Pareto k) for {len(fallback)} subject(s) "
                      f"({', '.join(map(str, fallback[:8]))}{' ...' if len(fallback) > 8 else ''}); they are scored "
                      f"by exact {args.cv_fallback_folds}-fold CV instead, for every model", UserWarning, stacklevel=2)
        name = f"LOO (exact {args.cv_fallback_folds}-fold CV for {len(fallback)} subject(s))"
    else:
        name = "LOO"
    return (cv_compare(hyb, equivalent=eq), name), fallback
def _loo_unit(u):
    """One unit of ``neurorl compare --loo``: the Laplace-LOO of one model."""
    from ..fitting.loo import laplace_loo

    result, trials, agent, covariates, draws, seed, progress = u
    return laplace_loo(result, trials, agent=agent, covariates=covariates, n_draws=draws, rng=seed, progress=progress)


def _print_compare(table, res, loo_table, criterion):
    from ..fitting.compare import MIN_DELTA_IC

    names = [str(m) for m in table.model.values]
    cols = ["loglik", "BIC", "dBIC"] + (["Laplace", "dLap"] if "laplace_log_evidence" in table else []) + \
        (["elpd_loo", "se", "d_elpd", "se_d"] if loo_table is not None else []) + ["freq", "pxp"]
    print(f"{'model':<24}" + "".join(f"{c:>11}" for c in cols))
    for i, nm in enumerate(names):
        vals = [float(table.loglik_total[i]), float(table.bic_total[i]), float(table.delta_bic_total[i])]
        if "laplace_log_evidence" in table:
            vals += [float(table.laplace_log_evidence_total[i]), float(table.delta_laplace_total[i])]
        if loo_table is not None:
            vals += [float(loo_table.elpd_loo[i]), float(loo_table.se[i]), float(loo_table.delta_elpd[i]),
                     float(loo_table.se_delta[i])]
        vals += [float(res.frequencies[i]), float(res.pxp[i])]
        print(f"{nm:<24}" + "".join(f"{v:>11.2f}" for v in vals))
    print(f"random-effects BMS on {criterion} log evidence: BOR = {res.bor:.3g}; by BIC (differences under "
          f"{MIN_DELTA_IC:g} not distinguishable): {table.attrs['best_bic']}"
          + (f"; by LOO (differences under one SE not distinguishable): {loo_table.attrs['best']}"
             if loo_table is not None else ""))


# ============================================================================ parser
def register(sub) -> None:
    """Add this module's subcommands to the ``neurorl`` parser."""
    # ---- fit
    sp = sub.add_parser("fit", help="fit agents to choice (and RT) data; write estimates and evidence",
                        description="Fit one or more agents to the trials in DATA, all subjects at once. Writes a "
                                    "netCDF file with a group per model (models/LABEL/result: estimates, standard "
                                    "errors, Laplace covariance; evidence; params; pointwise log-likelihood; "
                                    "predicted choice probabilities; with --rt wiener also rt_check, the RTs' "
                                    "predictive check shown by `neurorl report`), the fitted trials and, when DATA "
                                    "is a simulation, the true parameters; plus figures OUT_params.png and "
                                    "OUT_learning.png.")
    sp.add_argument("data", help="trials: CSV/TSV (with its .json sidecar, or plain with --columns) or netCDF "
                                 "(a trials file, or a simulation file with groups trials/params)")
    sp.add_argument("--agent", "-a", action="append", required=True, metavar="SPEC",
                    help="agent to fit: NAME[:OPTION=VALUE,...,fix.PARAM=VALUE]; repeat for several models, e.g. "
                         "--agent q_learning --agent dra:sigma_base=0.5,sigma0=0.25 --agent soft_q:fix.eta_true=0.1")
    sp.add_argument("--method", choices=sorted(METHODS), default="map",
                    help="mle: maximum likelihood; map: MAP with the agents' default priors and Laplace evidence "
                         "(default); emmap: hierarchical EM-MAP (group prior learnt, integrated BIC)")
    sp.add_argument("--rt", choices=["lognormal", "wiener"], default=None,
                    help="also model reaction times (column rt, seconds): lognormal = log-normal RT on policy "
                         "complexity, wiener = RL drift-diffusion (first-passage time density)")
    sp.add_argument("--covariate", action="append", metavar="PARAM=VARIABLE",
                    help="trial-wise covariate of a parameter: PARAM_t = transform(theta + slope * VARIABLE_t) "
                         "(VARIABLE is a column/variable of the data); repeat for several")
    sp.add_argument("--starts", type=int, default=5, help="starting points per subject (default 5)")
    sp.add_argument("--optimizer", choices=["auto", "newton", "quasi-newton", "L-BFGS-B"], default="auto",
                    help="optimiser (default auto: Newton up to 3 parameters, quasi-Newton above)")
    sp.add_argument("--max-iter", type=int, default=None,
                    help="optimiser iterations per start (default 100)")
    sp.add_argument("--max-em-iter", type=int, default=None,
                    help="with --method emmap: EM iterations (default 100)")
    sp.add_argument("--seed", type=int, default=0, help="random seed of the starting points (default 0)")
    add_parallel_arguments(sp)
    add_data_arguments(sp)
    sp.add_argument("--csv", action="store_true",
                    help="also write OUT_estimates.csv (per subject: estimates, standard errors, convergence flags), "
                         "OUT_group.csv (group summary) and OUT_models.csv (model comparison)")
    _finish(sp, _cmd_fit, out="fit.nc", figures="the PNG figures")

    # ---- export
    sp = sub.add_parser("export", help="write a fit file's estimates, group summary and model comparison as CSV",
                        description="Tidy CSV tables of a file written by `neurorl fit`: PREFIX_estimates.csv (one "
                                    "row per subject and parameter: estimate, standard error, theta, log-likelihood, "
                                    "AIC/BIC, convergence flags), PREFIX_group.csv (per model and parameter) and "
                                    "PREFIX_models.csv (model comparison with its verdicts).")
    sp.add_argument("fit", help="a file written by `neurorl fit`")
    sp.add_argument("--csv", action="store_true", help="write CSV tables (required; the only format)")
    sp.add_argument("--prefix", default=None, help="output prefix (default: the fit file without .nc)")
    _finish(sp, _cmd_export)

    # ---- compare
    sp = sub.add_parser("compare", help="compare fitted models: AIC/BIC/Laplace, random-effects BMS, LOO",
                        description="Compare the models of one or more fit files (fitted to the same subjects): "
                                    "per-subject and total AIC, BIC and Laplace log evidence, random-effects "
                                    "Bayesian model selection (expected frequencies, exceedance and protected "
                                    "exceedance probabilities, Bayesian omnibus risk) and, with --loo, approximate "
                                    "leave-one-trial-out cross-validation (Laplace importance-corrected PSIS-LOO). "
                                    "Writes netCDF (groups table, bms, loo, loo_pointwise) and OUT.png.")
    sp.add_argument("fits", nargs="+", help="files written by `neurorl fit`")
    sp.add_argument("--evidence", choices=["auto", "laplace", "bic", "aic", "loo"], default="auto",
                    help="per-subject log evidence for BMS (default auto: Laplace for MAP/EM-MAP fits, else -BIC/2; "
                         "loo: each subject's summed elpd, needs --loo)")
    sp.add_argument("--bms-stop", choices=["fixed-point", "vba"], default="fixed-point",
                    help="BMS stopping rule: fixed-point (default; iterate until the Dirichlet counts settle) or "
                         "vba (VBA_groupBMC's free-energy rule, 32 iterations: reproduces published numbers)")
    sp.add_argument("--loo", action="store_true", help="also compute Laplace PSIS-LOO (neurorl.fitting.loo)")
    sp.add_argument("--draws", type=int, default=1000, help="LOO draws per subject (default 1000)")
    sp.add_argument("--seed", type=int, default=0, help="random seed of the LOO draws (default 0)")
    sp.add_argument("--cv", type=int, default=0, metavar="K",
                    help="exact K-fold cross-validation over contiguous blocks of trials for every subject (refits; "
                         "the reference predictive criterion; default off)")
    sp.add_argument("--cv-fallback-folds", type=int, default=10, metavar="K",
                    help="folds of the exact CV that replaces LOO for subjects whose Pareto k is bad (default 10; "
                         "0: no fallback, and the verdict leaves an unreliable LOO out)")
    sp.add_argument("--store", default=None, metavar="DIR",
                    help="write every finished unit of the exact CV (--cv, or the LOO fallback) to DIR and resume "
                         "from it when rerun (a resumable study)")
    add_parallel_arguments(sp)
    _finish(sp, _cmd_compare, out="compare.nc", figures="the PNG figure")
