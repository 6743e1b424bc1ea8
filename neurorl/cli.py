"""The ``neurorl`` command (user guide: ``docs/cli.md``).

Subcommands
-----------
``neurorl list``
    Registered tasks and agents, with each agent's parameters.
``neurorl simulate AGENT TASK``
    Simulate subjects; write trials, latents and parameters to one netCDF file (groups ``trials``, ``latents``,
    ``params``) and optionally the trials as CSV.
``neurorl fit DATA --agent A [--agent B ...]``
    Fit every agent to the choices (and RTs) in DATA (CSV with its JSON sidecar, or netCDF) by MLE, MAP or EM-MAP;
    write one netCDF file with a group per model (estimates, evidence, pointwise log-likelihood, predicted policy)
    plus figures.
``neurorl compare FIT.nc [FIT.nc ...]``
    AIC/BIC/Laplace table, random-effects BMS with protected exceedance probabilities, optionally Laplace
    PSIS-LOO (:mod:`neurorl.fitting.loo`); netCDF plus a figure.
``neurorl design --agent A --agent B --task T [--task T2] --trials N [N ...]``
    Model recovery over task designs x trials per subject (:mod:`neurorl.fitting.design`): accuracy with its
    interval, confusion per design, the cheapest design reaching a target; netCDF plus a figure.
``neurorl recover --agent A [--agent B ...] --task TASK``
    Parameter recovery (one agent) or model recovery (several); netCDF plus figures.
``neurorl decode NEURAL.nc --trials DATA --latents v v_soft``
    Which latent the units encode: held-out encoding scores per unit and time bin, with pseudosession nulls; netCDF
    plus the time-course figure.
``neurorl report DIR``
    A self-contained HTML report (figures embedded) of the outputs in DIR.
``neurorl demo``
    The whole pipeline on the bundled dataset (fit, compare, recover, decode, report) in a few minutes.

Exit codes: 0 success; 2 bad arguments or input (the message names the file and what is wrong, no traceback);
1 internal failure (a bug or a numerical failure; ``--debug`` shows the traceback).

Output files carry the root attribute ``neurorl_output`` (``"fit"``, ``"compare"``, ``"recover"``, ``"decode"``)
so that ``neurorl report`` finds them in a directory whatever their names.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shlex
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from .io import write_simulation
from .parallel import add_arguments as add_parallel_arguments
from .results import (
    FINGERPRINT_ATTR, OUTPUT_ATTR, atomic_output, check_not_input, read_compare, read_decode, read_fit, read_recover,
    trials_fingerprint,
)
from .results import nc_groups as _nc_groups
from .results import open_group as _open_group
from .results import write_groups as _write_groups

__all__ = ["main", "build_parser", "DEMO_TASK", "DEMO_AGENTS", "UsageError", "read_fit", "parse_agent_spec"]

DEMO_TASK = "mouse_bandit"
#: The demo's agents: ``name -> (options, parameters)``. The options (``fixed`` included) are the ones the demo
#: fits with; the parameters are simulation values typical of a mouse on the 0/1-reward bandit (they centre the
#: generating distributions of the demo's model recovery). They are tuned to 0/1 rewards: the agents' own defaults
#: follow their papers' reward scales (e.g. DRA's ``sigma_base = 5`` for rewards around 10). ``soft_q`` fixes the
#: true critic's rate (it does not affect choices, so choices cannot estimate it; the bundled cohort was generated
#: with this value); ``policy_compression`` fixes the marginal's rate (free, it lets the marginal collapse onto one
#: action and the MAP Hessian becomes NaN for some subjects).
DEMO_AGENTS = {
    "q_learning": ({}, {"alpha": 0.35, "beta": 4.0}),
    "soft_q": ({"fixed": {"eta_true": 0.1}}, {"tau": 0.25, "eta": 0.35}),
    "dra": ({"sigma_base": 0.5, "sigma0": 0.25}, {"alpha_q": 0.3, "alpha_sigma": 0.5, "lam": 1.0}),
    "policy_compression": ({"fixed": {"alpha_p": 0.01}}, {"beta": 3.0, "alpha_v": 0.3, "alpha_theta": 0.1}),
}
#: Agents that ``simulate`` knows good mouse-bandit values for, besides the demo's (used by ``--demo-params``).
EXTRA_SIM_PARAMS = {
    "actor_critic": ({}, {"alpha_v": 0.3, "alpha_theta": 0.5}),
    "rflr": ({}, {}),  # Beron et al. 2022 80-20 fit (the agent's defaults)
}
METHODS = {"mle": "MLE", "map": "MAP", "emmap": "EMMAP"}


class UsageError(Exception):
    """Bad arguments or input files: exit code 2, the message (naming the file) is printed without a traceback."""


# ============================================================================ small parsers
def _value(text: str):
    """A command-line value: int, float, true/false, none, a JSON list, or text."""
    t = text.strip()
    low = t.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(t)
        except ValueError:
            pass
    if t[:1] in "[{(":
        try:
            return ast.literal_eval(t)
        except (ValueError, SyntaxError):
            pass
    return t


def _key_values(text: str, what: str) -> dict:
    out = {}
    for item in _split_top(text):
        k, sep, v = item.partition("=")
        if not sep or not k.strip():
            raise UsageError(f"{what}: expected KEY=VALUE, got {item!r}")
        out[k.strip()] = _value(v)
    return out


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets (so that ``p=(0.8,0.2),x=1`` gives two items)."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return [p for p in (q.strip() for q in parts) if p]


def parse_agent_spec(spec: str) -> tuple[str, dict, dict]:
    """``NAME[:OPTION=VALUE,...,fix.PARAM=VALUE,...]`` -> ``(name, options, fixed)``.

    ``fix.PARAM=VALUE`` fixes a parameter at a value (it is then not fitted); other keys are the agent's options
    (e.g. ``dra:sigma_base=0.5,sigma0=0.25``, ``soft_q:fix.eta_true=0.1``, ``q_learning:perseveration=true``).
    """
    name, _, rest = spec.partition(":")
    name = name.strip()
    if not name:
        raise UsageError(f"--agent {spec!r}: no agent name")
    options, fixed = {}, {}
    for k, v in _key_values(rest, f"--agent {spec!r}").items() if rest else ():
        if k.startswith("fix."):
            if not isinstance(v, (int, float)) or isinstance(v, bool):
                raise UsageError(f"--agent {spec!r}: fixed value of {k[4:]!r} must be a number, got {v!r}")
            fixed[k[4:]] = float(v)
        else:
            options[k] = v
    return name, options, fixed


def _spec_string(name: str, options: dict) -> str:
    """The ``--agent`` text of an agent name and options (``fixed`` as ``fix.PARAM``)."""
    items = [f"{k}={v}" for k, v in options.items() if k != "fixed"]
    items += [f"fix.{k}={v}" for k, v in (options.get("fixed") or {}).items()]
    return name + (":" + ",".join(items) if items else "")


def _make_agent(name: str, options: dict, fixed: dict, rt: str | None = None):
    import neurorl as nr

    try:
        agent = nr.make_agent(name, **options, **({"fixed": fixed} if fixed else {}))
    except TypeError as exc:
        raise UsageError(f"agent {name!r}: {exc} (options of {name!r}: see `neurorl list` and docs/agents.md)") from None
    except ValueError as exc:
        raise UsageError(f"agent {name!r}: {exc}") from None
    if rt:
        try:
            from .fitting.joint import with_rt
        except ImportError:  # pragma: no cover - joint.py ships with the package
            raise UsageError("--rt needs neurorl.fitting.joint, which this installation lacks") from None
        try:
            agent = with_rt(agent, rt)
        except (TypeError, ValueError) as exc:
            raise UsageError(f"agent {name!r} with --rt {rt}: {exc}") from None
    return agent


def _make_task(spec: str):
    import neurorl as nr

    name, _, rest = spec.partition(":")
    opts = _key_values(rest, f"--task {spec!r}") if rest else {}
    try:
        return nr.make_task(name.strip(), **opts)
    except TypeError as exc:
        raise UsageError(f"task {name!r}: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"task {spec!r}: {exc}") from None


def _task_from_attrs(attrs: dict):
    """The task recorded in trials attributes (``task`` and ``task_options`` as written by simulate), or None."""
    import neurorl as nr

    name = attrs.get("task")
    if not name:
        return None
    opts = {}
    text = str(attrs.get("task_options", ""))
    if "(" in text and text.endswith(")"):
        try:
            call = ast.parse("f(" + text[text.index("(") + 1:-1] + ")", mode="eval").body
            opts = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords}
        except (SyntaxError, ValueError):
            opts = {}
    try:
        return nr.make_task(str(name), **opts)
    except (TypeError, ValueError):
        try:
            return nr.make_task(str(name))
        except (TypeError, ValueError):
            return None


def _parse_params(items, what="--param"):
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{what} expects NAME=VALUE, got {item!r}")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise UsageError(f"{what} {name}: {value!r} is not a number") from None
    return out


# ============================================================================ files
def _check_out(path, what="-o", suffixes=(".nc",), inputs=()) -> Path:
    """The output path, checked: its suffix, not a directory, and not one of the ``inputs`` (nor a link to one)."""
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise UsageError(f"{what} {str(p)!r}: use a {' or '.join(suffixes)} file")
    if p.exists() and p.is_dir():
        raise UsageError(f"{what} {str(p)!r} is a directory; give a file name")
    try:
        check_not_input(p, inputs, what)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return p


def read_data(path, *, columns=None, one_based=False, task=None, n_actions=None, rt_unit=None, format=None):
    """Trials from a CSV/TSV (with or without its JSON sidecar), a file in a format preset's layout
    (``format``, :mod:`neurorl.formats`) or a netCDF file, and the true parameters if the file is a simulation
    (``(trials, truth or None)``). Errors are :class:`UsageError` naming the file."""
    import neurorl as nr

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{str(path)!r}: no such file")
    if path.is_dir():
        raise UsageError(f"{str(path)!r} is a directory, not a data file")
    suffix = path.suffix.lower()
    try:
        if format is not None:
            if columns or one_based or task is not None or n_actions is not None:
                raise UsageError(f"{str(path)!r}: --format {format} maps the columns and codes itself; drop "
                                 "--columns/--one-based/--task/--n-actions")
            return nr.read_trials(path, format=format, **({"rt_unit": rt_unit} if rt_unit else {})), None
        if suffix in (".nc", ".nc4", ".netcdf"):
            if columns or one_based or task is not None or n_actions is not None or rt_unit is not None:
                raise UsageError(f"{str(path)!r}: --columns/--one-based/--task/--n-actions/--rt-unit apply to CSV "
                                 "tables, not netCDF files")
            groups = _nc_groups(path)
            if "trials" in groups:
                trials = nr.validate_trials(_open_group(path, "trials"))
                truth = _open_group(path, "truth" if "truth" in groups else "params") \
                    if ("params" in groups or "truth" in groups) else None
                return trials, truth
            return nr.read_trials(path), None
        opts = {}
        if columns:
            opts["columns"] = columns
        if one_based:
            opts["one_based"] = one_based
        if task is not None:
            opts["task"] = task
        if n_actions is not None:
            opts["n_actions"] = n_actions
        if rt_unit is not None:
            opts["rt_unit"] = rt_unit
        return nr.read_trials(path, **opts), None
    except UsageError:
        raise
    except (ValueError, TypeError, KeyError, OSError) as exc:
        raise UsageError(str(exc) if str(path) in str(exc) else f"{str(path)!r}: {exc}") from None


def _select(trials, subjects=None, max_trials=None, where=""):
    if subjects:
        have = {str(s): s for s in trials["subject"].values.tolist()}
        missing = [s for s in subjects if s not in have]
        if missing:
            raise UsageError(f"{where}: subject(s) {missing} not in the data (subjects: {list(have)[:12]}"
                             f"{' ...' if len(have) > 12 else ''})")
        trials = trials.sel(subject=[have[s] for s in subjects])
    if max_trials is not None:
        if max_trials < 1:
            raise UsageError(f"--max-trials must be positive, got {max_trials}")
        trials = trials.isel(trial=slice(0, int(max_trials)))
    return trials


# ============================================================================ fit
def _estimator(method: str, agent, args_starts, seed, covariates, optimizer, progress, max_iter=None,
               max_em_iter=None):
    from . import fitting

    cls = getattr(fitting, METHODS[method])
    extra = {}
    if max_iter is not None:
        extra["max_iter"] = int(max_iter)
    if max_em_iter is not None:
        if method != "emmap":
            raise UsageError("--max-em-iter applies to --method emmap")
        extra["max_em_iter"] = int(max_em_iter)
    return cls(agent, n_starts=args_starts, covariates=covariates or None, optimizer=optimizer, rng=seed,
               progress=progress, **extra)


def _policy_dataset(est, trials):
    import xarray as xr

    lat = est.latents(trials)
    pol = lat["policy"].astype(np.float32)
    return xr.Dataset({"policy": pol}, attrs={"description": "one-step-ahead choice probabilities at the estimates"})


def _cmd_fit(args) -> int:
    out = _check_out(args.out, inputs=[args.data])
    columns = _key_values(",".join(args.columns), "--columns") if args.columns else None
    task = _make_task(args.task) if args.task else None
    one_based = [c.strip() for c in args.one_based_columns.split(",")] if args.one_based_columns else args.one_based
    trials, truth = read_data(args.data, columns=columns, one_based=one_based, task=task,
                              n_actions=args.n_actions, rt_unit=args.rt_unit, format=args.format)
    trials = _select(trials, args.subjects, args.max_trials, where=str(args.data))
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
    from . import parallel as par

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
        for k in ("result", "evidence", "params", "pointwise", "predicted"):
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
        from . import report

        fit = read_fit(out)
        paths = report.save(report.fig_parameters(fit), out.with_name(out.stem + "_params.png"))
        paths += report.save(report.fig_learning_curves(fit), out.with_name(out.stem + "_learning.png"))
        _say(args, "figures: " + ", ".join(str(p) for p in paths if p))
    print(f"wrote {out}")
    return 0


def _export(fit_path, prefix=None):
    from .results import export_csv

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
        means = ", ".join(f"{k} {float(v.mean()):.3g}" for k, v in est.params_.data_vars.items())
        print(f"{'':<4}mean estimates: {means}")


def _agent_of(spec: dict):
    return _make_agent(spec["name"], spec.get("options") or {}, spec.get("fixed") or {}, spec.get("rt"))


# ============================================================================ compare
def _cmd_compare(args) -> int:
    import xarray as xr

    from .fitting.compare import bms, compare_table

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
        from . import parallel as par
        from .fitting.loo import loo_compare

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
    from .fitting.verdict import reconcile

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
        from . import report

        p = report.save(report.fig_compare(read_compare(out)), out.with_suffix(".png"))
        _say(args, f"figure: {p[0]}")
    print(f"wrote {out}")
    return 0


def _predictive(args, models, trials_of, loo, table):
    """Exact CV (``--cv K``) for every subject, or LOO with exact CV for the subjects where it is unreliable."""
    from .fitting.cv import cv_compare, exact_cv, loo_with_fallback

    def refit(name, subjects, k):
        m = models[name]
        return exact_cv(m["result"], k, trials=trials_of[name], agent=_agent_of(m["spec"]),
                        covariates=m["spec"].get("covariates") or None, subjects=subjects, progress=not args.quiet)

    eq = json.loads(table.attrs["equivalent"])
    if args.cv:
        cvs = {k: refit(k, None, args.cv) for k in models}
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
    from .fitting.loo import laplace_loo

    result, trials, agent, covariates, draws, seed, progress = u
    return laplace_loo(result, trials, agent=agent, covariates=covariates, n_draws=draws, rng=seed, progress=progress)


def _print_compare(table, res, loo_table, criterion):
    from .fitting.compare import MIN_DELTA_IC

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


# ============================================================================ design
def _cmd_design(args) -> int:
    from .fitting.design import design_study, plot_design, recommend

    out = _check_out(args.out)
    agents = {}
    for spec in args.agent:
        name, options, fixed = parse_agent_spec(spec)
        agents[name if name not in agents else f"{name}_{len(agents) + 1}"] = _make_agent(name, options, fixed)
    if len(agents) < 2:
        raise UsageError("design needs at least two --agent candidates")
    designs = {}
    for spec in args.task:
        import re

        label = re.sub(r"[^A-Za-z0-9_-]+", "_", spec.replace(".", "p")).strip("_")
        designs[label] = _make_task(spec)
    cache = Path(args.cache) if args.cache else out.with_suffix(".cells")
    try:
        study = design_study(agents, designs, args.trials, n_subjects=args.subjects, criterion=args.criterion,
                             estimator_options={"n_starts": args.starts}, seed=args.seed, cache_dir=cache,
                             progress=not args.quiet)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rec = recommend(study, args.target)
    study.attrs.update(recommendation=json.dumps(rec), command=_command_line(args))
    _write_groups(out, {"study": study}, {OUTPUT_ATTR: "design", "command": _command_line(args)})
    print(study["accuracy"].to_pandas().to_string(float_format=lambda v: f"{v:.2f}"))
    print(f"recommended (accuracy >= {args.target:g}): {rec['message']}")
    if not args.no_figures:
        from . import report

        p = report.save(plot_design(study, target=args.target, source=str(out)), out.with_suffix(".png"))
        _say(args, f"figure: {p[0]}")
    print(f"wrote {out} (finished cells in {cache})")
    return 0


# ============================================================================ recover
def _cmd_recover(args) -> int:
    from .fitting.recovery import DEFAULT_NARROW, model_recovery, parameter_recovery

    out = _check_out(args.out)
    task = _make_task(args.task)
    agents = {}
    for spec in args.agent:
        name, options, fixed = parse_agent_spec(spec)
        label = name if name not in agents else f"{name}_{len(agents) + 1}"
        agents[label] = _make_agent(name, options, fixed)
    centres = {}
    for item in args.param or []:
        key, sep, value = item.partition("=")
        lab, dot, pname = key.partition(".")
        if not sep or not dot:
            raise UsageError(f"--param expects AGENT.PARAM=VALUE, got {item!r}")
        if lab not in agents:
            raise UsageError(f"--param {item}: no agent {lab!r} among {list(agents)}")
        spec = {p.name: p for p in agents[lab].params}
        if pname not in spec:
            raise UsageError(f"--param {item}: {lab!r} has no free parameter {pname!r} ({list(spec)})")
        try:
            v = float(value)
        except ValueError:
            raise UsageError(f"--param {item}: {value!r} is not a number") from None
        p = spec[pname]
        with np.errstate(all="ignore"):
            inside = p.lower < v < p.upper
            loc = float(p.to_unconstrained(v)) if inside else float("nan")
        if not np.isfinite(loc):
            raise UsageError(f"--param {item}: {v} is outside the bounds of {pname!r} ({p.lower}, {p.upper})")
        centres.setdefault(lab, {})[pname] = (loc, args.spread * spec[pname].prior_scale)
    for a in agents.values():
        try:
            a.check_task(task)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    method = METHODS[args.method]
    options = {"n_starts": args.starts}
    show = not args.quiet
    groups = {}
    do_params = args.parameters or len(agents) == 1
    if do_params:
        for lab, a in agents.items():
            _say(args, f"recover: parameter recovery of {lab} ({args.subjects} subjects x "
                       f"{args.trials or task.default_n_trials} trials on {task.name})")
            res = parameter_recovery(a, task, n_subjects=args.subjects, n_trials=args.trials,
                                     params=centres.get(lab), estimator=method, estimator_options=options,
                                     narrow=DEFAULT_NARROW, rng=args.seed, progress=show,
                                     subjects_per_unit=args.subjects_per_unit,
                                     store=Path(args.store) / f"parameter_recovery-{lab}" if args.store else None)
            groups[f"parameter_recovery/{lab}"] = res
            r = ", ".join(f"{p} {float(res['r'].sel(param=p)):.2f}" for p in res.param.values)
            print(f"  {lab}: r(true, estimated) {r}")
    if len(agents) >= 2:
        _say(args, f"recover: model recovery of {', '.join(agents)} ({args.subjects} subjects per generator x "
                   f"{args.trials or task.default_n_trials} trials on {task.name}, selection by {args.criterion})")
        res = model_recovery(agents, task, n_subjects=args.subjects, n_trials=args.trials, params=centres or None,
                             criterion=args.criterion, estimator=method, estimator_options=options, rng=args.seed,
                             progress=show, subjects_per_unit=args.subjects_per_unit,
                             store=Path(args.store) / "model_recovery" if args.store else None)
        groups["model_recovery"] = res
        C = res["confusion"].values
        print("  confusion P(selected | generated), rows = generators:")
        print("  " + " " * 20 + "".join(f"{lab[:10]:>11}" for lab in agents))
        for i, lab in enumerate(agents):
            print(f"  {lab:<20}" + "".join(f"{v:>11.2f}" for v in C[i]))
    _write_groups(out, groups, {OUTPUT_ATTR: "recover", "task": task.name, "task_options": repr(task),
                                "agents": json.dumps({k: repr(v) for k, v in agents.items()}),
                                "command": _command_line(args)})
    if not args.no_figures:
        from . import report

        rec = read_recover(out)
        paths = []
        if rec["model_recovery"] is not None:
            paths += report.save(report.fig_model_recovery(rec["model_recovery"]),
                                 out.with_name(out.stem + "_models.png"))
        for lab, ds in rec["parameter_recovery"].items():
            paths += report.save(report.fig_parameter_recovery(ds), out.with_name(out.stem + f"_params_{lab}.png"))
        _say(args, "figures: " + ", ".join(str(p) for p in paths))
    print(f"wrote {out}")
    return 0


# ============================================================================ decode
def _read_neural_file(path):
    import xarray as xr

    from .decoding.neural import read_neural

    path = Path(path)
    if not path.exists():
        raise UsageError(f"{str(path)!r}: no such file")
    try:
        obj = read_neural(path)
    except (ValueError, TypeError, OSError) as exc:
        raise UsageError(f"{str(path)!r}: {exc}") from None
    if isinstance(obj, xr.Dataset):
        names = [k for k in ("counts", "rate") if k in obj.data_vars]
        if not names:
            raise UsageError(f"{str(path)!r}: no 'counts' or 'rate' variable (variables: {list(obj.data_vars)})")
        da = obj[names[0]]
    else:
        da = obj
    need = {"trial", "unit"}
    if not need <= set(da.dims):
        raise UsageError(f"{str(path)!r}: neural data need dims (trial, unit[, time]) (and optionally subject); "
                         f"found {da.dims}")
    return da


def _cmd_decode(args) -> int:
    import xarray as xr

    from .decoding.compare import compare_latents
    from .decoding.nulls import pseudosession_latents
    from .simulate import replay

    out = _check_out(args.out, inputs=[args.neural, args.trials, args.fit])
    neural = _read_neural_file(args.neural)
    fit = read_fit(args.fit) if args.fit else None
    if args.trials:
        trials, _ = read_data(args.trials)
    elif fit is not None:
        trials = fit["trials"]
    else:
        raise UsageError("decode needs the behaviour: --trials DATA (or --fit FIT.nc, whose trials are used)")
    # the model whose latents are decoded, and its parameters per subject
    if fit is not None:
        label = args.model or next(iter(fit["models"]))
        if label not in fit["models"]:
            raise UsageError(f"{str(args.fit)!r} has no model {label!r} (models: {list(fit['models'])})")
        m = fit["models"][label]
        agent = _agent_of({**m["spec"], "rt": None})
        params = m["params"]
        if m["spec"].get("covariates"):
            raise UsageError(f"--model {label}: decoding latents of a fit with covariates is not supported here; "
                             "replay the model in Python (estimator.latents())")
    elif args.agent:
        name, options, fixed = parse_agent_spec(args.agent)
        agent = _make_agent(name, options, fixed)
        params = _parse_params(args.param)
        label = name
    else:
        raise UsageError("decode needs the model: --fit FIT.nc [--model LABEL], or --agent NAME [--param k=v ...]")
    cands = list(args.latents)
    missing = [c for c in cands if c.split("[")[0] not in agent.latent_dims]
    if missing:
        raise UsageError(f"--latents {missing}: not latents of {agent.name!r} (latents: {sorted(agent.latent_dims)})")
    task = _make_task(args.task) if args.task else _task_from_attrs(trials.attrs)
    if task is None and args.nulls > 0:
        raise UsageError(f"pseudosession nulls need the task's generator: pass --task NAME[:OPTION=VALUE,...] "
                         f"({str(args.trials or args.fit)!r} does not record it), or --nulls 0")
    subjects_neural = [s for s in np.atleast_1d(neural["subject"].values).tolist()] if "subject" in neural.dims \
        else None
    tsub = [s for s in trials["subject"].values.tolist()]
    if subjects_neural is None:
        if "subject" in neural.coords:
            subjects_neural = [neural["subject"].values.item()]
        elif len(tsub) == 1:
            subjects_neural = tsub
        elif args.subject and len(args.subject) == 1:
            subjects_neural = [args.subject[0]]
        else:
            raise UsageError(f"{str(args.neural)!r} has no subject dimension or label and the behaviour holds "
                             f"{len(tsub)} subjects: pass --subject LABEL")
    by_str = {str(s): s for s in tsub}
    wanted = args.subject or [str(s) for s in subjects_neural]
    for s in wanted:
        if s not in by_str:
            raise UsageError(f"subject {s!r} is not in the behaviour {str(args.trials or args.fit)!r} (subjects: "
                             f"{list(by_str)[:12]})")
        if "subject" in neural.dims and s not in [str(v) for v in subjects_neural]:
            raise UsageError(f"subject {s!r} is not in the neural data {str(args.neural)!r} (subjects: "
                             f"{[str(v) for v in subjects_neural][:12]})")
    if args.max_subjects:
        wanted = wanted[: args.max_subjects]
    _say(args, f"decode: {', '.join(cands)} of {label} in {len(wanted)} subject(s) of {args.neural}, "
               f"{args.nulls} pseudosession nulls, time {args.time}")
    sel = trials.sel(subject=[by_str[s] for s in wanted])
    if isinstance(params, xr.Dataset):
        fitted = {str(v) for v in params["subject"].values.tolist()}
        lost = [s for s in wanted if s not in fitted]
        if lost:
            raise UsageError(f"subject(s) {lost} were not fitted in {str(args.fit)!r} (fitted: {sorted(fitted)[:12]})")
        params = params.sel(subject=sel["subject"].values)
    try:
        latents = replay(agent, sel, params)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"replaying {label} on {str(args.trials or args.fit)!r}: {exc}") from None
    groups = {}
    rng = np.random.default_rng(args.seed)
    rows = []
    from .progress import iterate

    iterator = iterate(wanted, not args.quiet, "decode subjects", unit="subjects")
    for s in iterator:
        lab = by_str[s]
        nd = neural.sel(subject=_neural_label(neural, s)) if "subject" in neural.dims else neural
        nd = nd.drop_vars("subject", errors="ignore")
        lat_s = latents.sel(subject=lab)
        tr_s = sel.sel(subject=lab)
        merged = lat_s.assign(trial_index=tr_s["trial_index"]) if "trial_index" in tr_s else lat_s
        null = None
        if args.nulls > 0:
            p_s = {k: float(v.sel(subject=lab)) for k, v in params.data_vars.items()} \
                if isinstance(params, xr.Dataset) else dict(params)
            null = pseudosession_latents(agent, task, p_s, n=args.nulls, n_trials=int(tr_s["valid"].size),
                                         rng=rng)
        try:
            res = compare_latents(nd, merged, cands, null_latents=null, time=args.time)
        except ValueError as exc:
            raise UsageError(f"{str(args.neural)!r}, subject {s!r}: {exc}") from None
        res = res.assign_coords(subject_label=str(s))
        if "null_score" in res:
            res["null_score"] = res["null_score"].astype(np.float32)
        groups[f"subjects/{s}"] = res
        rows.append((s, res))
    attrs = {OUTPUT_ATTR: "decode", "neural": str(args.neural), "model": label, "agent": repr(agent),
             "candidates": json.dumps(cands), "subjects": json.dumps([str(s) for s in wanted]),
             "n_nulls": int(args.nulls), "time_mode": args.time, "command": _command_line(args)}
    if "group" in neural.coords:
        attrs["unit_groups"] = json.dumps([str(g) for g in neural["group"].values])
    _write_groups(out, groups, attrs)
    _print_decode(rows, cands)
    if not args.no_figures:
        from . import report

        p = report.save(report.fig_decoding(read_decode(out)), out.with_suffix(".png"))
        _say(args, f"figure: {p[0]}")
    print(f"wrote {out}")
    return 0


def _neural_label(neural, s):
    for v in neural["subject"].values.tolist():
        if str(v) == s:
            return v
    return s


def _print_decode(rows, cands):
    print(f"{'subject':<10}" + "".join(f"{'peak R2 ' + c:>16}" for c in cands) + f"{'difference':>14}{'p':>8}  pair")
    for s, res in rows:
        pop = res["score"].mean("unit")
        peak = [float(pop.sel(candidate=c).max()) for c in cands]
        d = res["population_diff"].isel(pair=0)
        p = res["p_population"].isel(pair=0) if "p_population" in res else None
        i = int(np.argmax(np.abs(np.atleast_1d(d.values))))
        dv = float(np.atleast_1d(d.values)[i])
        pv = float(np.atleast_1d(p.values)[i]) if p is not None else float("nan")
        print(f"{str(s):<10}" + "".join(f"{v:>16.4f}" for v in peak) + f"{dv:>14.4f}{pv:>8.3f}  "
              f"{res.pair.values[0]}")
    print("(peak over time of the population-mean CV R2; the paired difference where it is largest, with its "
          "two-sided pseudosession p)")


# ============================================================================ simulate / list
def summarize(sim) -> dict:
    """A few behavioural and latent summaries of one simulation."""
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
    from .formats import get_format, list_formats

    print("formats (fit DATA --format NAME; docs/bring-your-data.md):")
    for name in list_formats():
        f = get_format(name)
        print(f"  {name:<24} {f.summary}; columns {', '.join(f.columns)}")
    return 0


def _cmd_simulate(args) -> int:
    import neurorl as nr

    out = _check_out(args.out)
    name, options, fixed = parse_agent_spec(args.agent)
    params = {}
    if args.demo_params:
        table = {**DEMO_AGENTS, **EXTRA_SIM_PARAMS}
        if name not in table:
            raise UsageError(f"--demo-params: no demo values for {name!r} (have {sorted(table)})")
        opt0, params = table[name]
        options = {**{k: v for k, v in opt0.items() if k != "fixed"}, **options}
        fixed = {**(opt0.get("fixed") or {}), **fixed}
        params = dict(params)
    params.update(_parse_params(args.param))
    agent = _make_agent(name, options, fixed)
    task = _make_task(args.task)
    try:
        sim = nr.simulate(agent, task, n_subjects=args.subjects, n_trials=args.trials, params=params,
                          rng=args.seed, progress=not args.quiet)
    except ValueError as exc:
        raise UsageError(f"simulate {args.agent} on {args.task}: {exc}") from None
    path = write_simulation(sim, out)
    print(f"wrote {path} (groups: trials, latents, params)")
    if args.csv:
        p = nr.write_trials(sim.trials, _check_out(args.csv, "--csv", (".csv", ".tsv", ".txt"),
                                                      inputs=[out]))
        print(f"wrote {p} (+ {p.name}.json sidecar)")
    for k, v in summarize(sim).items():
        print(f"  {k:<14} {v:.4g}" if isinstance(v, float) else f"  {k:<14} {v}")
    return 0


# ============================================================================ report
def _cmd_report(args) -> int:
    from .report import build_report

    d = Path(args.directory)
    if not d.is_dir():
        raise UsageError(f"{str(d)!r}: no such directory")
    path = build_report(d, out=args.out, title=args.title)
    print(f"report: {path.resolve()} ({path.stat().st_size / 1e6:.2f} MB, self-contained)")
    return 0


# ============================================================================ demo
def _demo_plan(out: Path, quick: bool, seed: int) -> list[tuple[str, list[str]]]:
    """The demo's stages as ``(title, argv)`` of the subcommands it runs."""
    from .data import demo_paths

    p = demo_paths()
    cohort, neural = str(p["cohort"]), str(p["neural"])
    names = ["q_learning", "soft_q"] if quick else list(DEMO_AGENTS)
    specs = [_spec_string(n, DEMO_AGENTS[n][0]) for n in names]
    agent_args = [a for s in specs for a in ("--agent", s)]
    fit = ["fit", cohort, *agent_args, "--method", "map", "--starts", "1" if quick else "3", "--seed", str(seed),
           "-o", str(out / "fit.nc")]
    if quick:
        fit += ["--subjects", "m01", "m02", "m03", "m04", "--max-trials", "150"]
    # no exact-CV fallback in the demo: refitting DRA's unreliable subjects 10 times costs minutes; the verdict
    # then leaves the unreliable LOO out and says so (`neurorl compare --loo` does the fallback by default)
    compare = ["compare", str(out / "fit.nc"), "--loo", "--cv-fallback-folds", "0", "--draws",
               "300" if quick else "1000", "--seed", str(seed),
               "-o", str(out / "compare.nc")]
    params = [f"--param={n}.{k}={v}" for n in names for k, v in DEMO_AGENTS[n][1].items()]
    recover = ["recover", *agent_args, "--task", DEMO_TASK, "--subjects", "3" if quick else "6", "--trials",
               "100" if quick else "300", "--starts", "1", "--criterion", "bic", *params, "--seed", str(seed),
               "-o", str(out / "recover.nc")]
    decode = ["decode", neural, "--trials", cohort, "--fit", str(out / "fit.nc"), "--model", "soft_q",
              "--latents", "v", "v_soft",
              "--nulls", "20" if quick else "200", "--seed", str(seed), "-o", str(out / "decode.nc")]
    if quick:
        decode += ["--subject", "m01", "m02"]
    report = ["report", str(out)]
    return [("fit the models", fit), ("compare evidence (BIC, BMS, LOO)", compare),
            ("model recovery", recover), ("decode soft vs true values", decode), ("HTML report", report)]


def _cmd_demo(args) -> int:
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {str(out)!r} exists and is not a directory")
    out.mkdir(parents=True, exist_ok=True)
    plan = _demo_plan(out, args.quick, args.seed)
    t_all = time.perf_counter()
    print(f"neurorl demo{' --quick' if args.quick else ''}: the bundled synthetic mouse cohort "
          f"(neurorl/data/, see data/README.md) through fit -> compare -> recover -> decode -> report; output in "
          f"{out.resolve()}")
    timings = []
    for i, (title, argv) in enumerate(plan, 1):
        if i == len(plan):  # before the report stage, so that the report shows them
            with atomic_output(out / "demo_timings.json") as tmp:
                tmp.write_text(json.dumps(
                    {"stages": timings, "total_s": time.perf_counter() - t_all, "quick": args.quick,
                     "commands": [["neurorl", *a] for _, a in plan]}, indent=1))
        if args.quiet:
            argv = argv + ["--quiet"]
        print(f"\n[{i}/{len(plan)}] {title}\n$ neurorl {' '.join(shlex.quote(a) for a in argv)}", flush=True)
        t0 = time.perf_counter()
        sub = build_parser().parse_args(argv)
        sub.debug = args.debug
        sub._argv = ["neurorl", *argv]
        rc = sub.func(sub)
        timings.append((title, time.perf_counter() - t0))
        if rc != 0:
            return rc
    total = time.perf_counter() - t_all
    from .report import headline

    print("\n" + headline(out))
    print(f"\ndemo finished in {total:.0f} s; open the report: {(out / 'report.html').resolve()}")
    return 0


def _cmd_cache(args) -> int:
    from .backend import cache

    info = cache.clear() if args.action == "clear" else cache.cache_info()
    size = f"{info['files']} files, {info['bytes'] / 1e6:.1f} MB"
    if args.action == "clear":
        print(f"cleared {info['path']} ({size}, {len(info['models'])} compiled model structures)")
        return 0
    print(f"cache: {info['path']}\nsize: {size}\ncompiled model structures: {len(info['models'])}")
    for m in info["models"]:
        print(f"  {m}")
    return 0


# ============================================================================ parser
def _command_line(args) -> str:
    return " ".join(shlex.quote(a) for a in getattr(args, "_argv", []) or [])


def _say(args, text: str):
    if not getattr(args, "quiet", False):
        print(text, flush=True)


def _finish(sp, func, *, out: str | None = None, figures: str | None = None):
    """Add the options every subcommand ends with and set its handler ``func``.

    ``--out``/``-o`` (an output netCDF file, default ``out``) and ``--no-figures`` (help text "do not
    write ``figures``") are added only where given; ``--quiet`` and ``--debug`` always.
    """
    if out is not None:
        sp.add_argument("--out", "-o", default=out, help=f"output netCDF file (default {out})")
    if figures is not None:
        sp.add_argument("--no-figures", action="store_true", help=f"do not write {figures}")
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress bars or progress messages")
    sp.add_argument("--debug", action="store_true", help="show Python tracebacks of errors (for bug reports)")
    sp.set_defaults(func=func)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``neurorl`` command (every option has its help text)."""
    p = argparse.ArgumentParser(
        prog="neurorl",
        description="Reinforcement-learning models of behaviour and neural data: simulate, fit, compare, recover, "
                    "decode, report. Start with `neurorl demo`; see docs/cli.md.",
        epilog="Exit codes: 0 success, 2 bad arguments or input files, 1 internal failure.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sp = sub.add_parser("list", help="list registered tasks and agents with their parameters",
                        description="List the registered tasks (states, actions) and agents (parameters with "
                                    "bounds, transforms and defaults).")
    _finish(sp, _cmd_list)

    # ---- cache
    sp = sub.add_parser("cache", help="show or clear the cache of compiled likelihoods",
                        description="Compiled likelihoods are built once per machine and kept on disk (see "
                                    "docs/architecture.md). `neurorl cache info` shows where, how big and which "
                                    "models; `neurorl cache clear` deletes them (the next fit of each model "
                                    "compiles again). The folder is $NEURORL_CACHE_DIR, else "
                                    "$XDG_CACHE_HOME/neurorl, else ~/.cache/neurorl.")
    sp.add_argument("action", choices=["info", "clear"], help="info: location, size and models; clear: delete")
    _finish(sp, _cmd_cache)

    # ---- simulate
    sp = sub.add_parser("simulate", help="simulate an agent on a task and write netCDF (and CSV)",
                        description="Simulate subjects of an agent on a task. Writes one netCDF file with groups "
                                    "trials, latents and params (read it with neurorl.read_simulation), and with "
                                    "--csv the trials as a CSV table with its JSON sidecar.")
    sp.add_argument("agent", help="agent: NAME[:OPTION=VALUE,...,fix.PARAM=VALUE] (see `neurorl list`)")
    sp.add_argument("task", help="task: NAME[:OPTION=VALUE,...], e.g. mouse_bandit:p_high=0.9")
    sp.add_argument("--subjects", type=int, default=20, help="number of simulated subjects (default 20)")
    sp.add_argument("--trials", type=int, default=None, help="trials per subject (default: the task's own)")
    sp.add_argument("--param", action="append", metavar="NAME=VALUE",
                    help="parameter value for all subjects; repeat for several (default: the agent's defaults)")
    sp.add_argument("--demo-params", action="store_true",
                    help="start from the demo's options and parameter values for this agent (tuned to 0/1 rewards)")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--out", "-o", default="out/simulation.nc", help="output netCDF path (default out/simulation.nc)")
    sp.add_argument("--csv", default=None, metavar="PATH.csv", help="also write the trials as CSV (+ .json sidecar)")
    _finish(sp, _cmd_simulate)

    # ---- fit
    sp = sub.add_parser("fit", help="fit agents to choice (and RT) data; write estimates and evidence",
                        description="Fit one or more agents to the trials in DATA, all subjects at once. Writes a "
                                    "netCDF file with a group per model (models/LABEL/result: estimates, standard "
                                    "errors, Laplace covariance; evidence; params; pointwise log-likelihood; "
                                    "predicted choice probabilities), the fitted trials and, when DATA is a "
                                    "simulation, the true parameters; plus figures OUT_params.png and "
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
    sp.add_argument("--subjects", nargs="+", metavar="LABEL", default=None, help="fit only these subjects")
    sp.add_argument("--max-trials", type=int, default=None, help="fit only the first N trials of each subject")
    sp.add_argument("--columns", action="append", metavar="OURS=THEIRS",
                    help="CSV without sidecar: map our column names (subject, trial, state, choice, reward, rt, valid, "
                         "next_state, done) to yours, e.g. --columns subject=subjID,choice=keyPressed")
    sp.add_argument("--one-based", action="store_true", help="CSV choice/state codes start at 1 (hBayesDM files)")
    sp.add_argument("--one-based-columns", default=None, metavar="NAMES",
                    help="only these of our columns hold 1-based codes, e.g. state (choices 0/1) or choice,state")
    sp.add_argument("--format", default=None, metavar="PRESET",
                    help="read DATA in a known layout: hbayesdm:bandit2arm, hbayesdm:gng, hbayesdm:ts, hddm:rl, "
                         "hssm:rl, two_step:wide, tidy, ... (docs/bring-your-data.md)")
    sp.add_argument("--task", default=None, metavar="SPEC",
                    help="CSV without sidecar: the task whose structure the data follow (NAME[:OPTION=VALUE,...])")
    sp.add_argument("--n-actions", type=int, default=None,
                    help="CSV without sidecar: number of actions (needed when an action is never chosen)")
    sp.add_argument("--rt-unit", choices=["s", "ms"], default=None,
                    help="CSV: unit of the rt column (ms is converted to seconds; default seconds, and a median "
                         "RT above 10 s stops the read)")
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
    add_parallel_arguments(sp)
    _finish(sp, _cmd_compare, out="compare.nc", figures="the PNG figure")

    # ---- design
    sp = sub.add_parser("design", help="design before data: model recovery over task designs x trials per subject",
                        description="For candidate agents and task designs, simulate subjects from each agent, fit "
                                    "every candidate and report the accuracy of identifying the generating model "
                                    "(95%% Wilson interval) and the confusion matrix per design and trial count, "
                                    "with the cheapest design reaching --target. Seeded per cell; finished cells "
                                    "are cached beside the output (rerun to resume). Writes netCDF and OUT.png.")
    sp.add_argument("--agent", action="append", required=True, metavar="SPEC",
                    help="candidate agent NAME[:OPTION=VALUE,...,fix.PARAM=VALUE] (repeat)")
    sp.add_argument("--task", action="append", required=True, metavar="SPEC",
                    help="task design NAME[:OPTION=VALUE,...] (repeat for several designs)")
    sp.add_argument("--trials", type=int, nargs="+", required=True, help="trials per subject to try")
    sp.add_argument("--subjects", type=int, default=20, help="simulated subjects per model and cell (default 20)")
    sp.add_argument("--criterion", choices=["bic", "aic", "laplace"], default="bic",
                    help="log evidence used to select a subject's model (default bic)")
    sp.add_argument("--starts", type=int, default=2, help="optimiser starts per fit (default 2)")
    sp.add_argument("--target", type=float, default=0.9, help="accuracy to reach (default 0.9)")
    sp.add_argument("--seed", type=int, default=0, help="root seed (default 0)")
    sp.add_argument("--cache", default=None, help="folder of finished cells (default OUT.cells beside the output)")
    _finish(sp, _cmd_design, out="design.nc", figures="the PNG figure")

    # ---- recover
    sp = sub.add_parser("recover", help="parameter recovery (one agent) or model recovery (several)",
                        description="Simulate subjects with known parameters and refit them. With one agent: "
                                    "parameter recovery (r, bias, RMSE per parameter). With several: model recovery "
                                    "(confusion matrix P(selected | generated), inversion matrix, BMS per "
                                    "generator); add --parameters for both. Writes netCDF and PNG figures.")
    sp.add_argument("--agent", "-a", action="append", required=True, metavar="SPEC",
                    help="candidate/generating agent: NAME[:OPTION=VALUE,...,fix.PARAM=VALUE]; repeat")
    sp.add_argument("--task", required=True, metavar="SPEC", help="task: NAME[:OPTION=VALUE,...]")
    sp.add_argument("--subjects", type=int, default=20, help="simulated subjects (per generator) (default 20)")
    sp.add_argument("--trials", type=int, default=None, help="trials per subject (default: the task's own)")
    sp.add_argument("--param", action="append", metavar="AGENT.PARAM=VALUE",
                    help="centre of the generating distribution of a parameter (constrained scale); subjects draw "
                         "the unconstrained value from N(centre, (spread * prior scale)^2). Default: the "
                         "parameter's default value")
    sp.add_argument("--spread", type=float, default=0.2,
                    help="SD of the generating distribution around --param centres, in prior scales (default 0.2)")
    sp.add_argument("--method", choices=sorted(METHODS), default="map", help="estimator (default map)")
    sp.add_argument("--criterion", choices=["bic", "aic", "laplace"], default="bic",
                    help="model selection criterion per subject (default bic)")
    sp.add_argument("--starts", type=int, default=3, help="starting points per subject (default 3)")
    sp.add_argument("--parameters", action="store_true", help="with several agents, also run parameter recovery")
    sp.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    sp.add_argument("--subjects-per-unit", type=int, default=None, metavar="N",
                    help="fit blocks of N subjects as separate units of work (default: one unit per model)")
    sp.add_argument("--store", default=None, metavar="DIR",
                    help="write every finished unit to DIR and resume from it when rerun (a resumable study)")
    add_parallel_arguments(sp)
    _finish(sp, _cmd_recover, out="recover.nc", figures="the PNG figures")

    # ---- decode
    sp = sub.add_parser("decode", help="which latent do the units encode? held-out encoding with pseudosession nulls",
                        description="For each subject with neural data: replay the model on the subject's trials, "
                                    "fit the same OLS encoding model y ~ 1 + latent for every candidate latent to "
                                    "every unit (and time bin), score it by blocked cross-validated R2, and compare "
                                    "the candidates per unit and for the population against pseudosession nulls "
                                    "(sessions regenerated by the task and the fitted agent). Writes netCDF (a "
                                    "group per subject) and the time-course figure OUT.png.")
    sp.add_argument("neural", help="neural netCDF: a (trial, unit, time) DataArray (counts or rate), or a Dataset "
                                   "with 'counts'/'rate' (subject, trial, unit, time); trial = behavioural labels")
    sp.add_argument("--trials", default=None, metavar="DATA",
                    help="behaviour (CSV/netCDF); default: the trials stored in --fit")
    sp.add_argument("--fit", default=None, metavar="FIT.nc", help="fit file whose model and estimates give the latents")
    sp.add_argument("--model", default=None, metavar="LABEL", help="model of the fit file (default: its first)")
    sp.add_argument("--agent", default=None, metavar="SPEC", help="without --fit: the agent to replay")
    sp.add_argument("--param", action="append", metavar="NAME=VALUE", help="without --fit: parameter values")
    sp.add_argument("--latents", nargs="+", default=["v", "v_soft"],
                    help="candidate latents, at least two (default: v v_soft); 'q[1]' picks an action")
    sp.add_argument("--task", default=None, metavar="SPEC",
                    help="task generator for the pseudosessions (default: recorded in the trials' attributes)")
    sp.add_argument("--nulls", type=int, default=200, help="pseudosessions per subject (default 200; 0: none)")
    sp.add_argument("--time", choices=["resolved", "pooled"], default="resolved",
                    help="score every time bin (default) or the activity summed over time")
    sp.add_argument("--subject", nargs="+", default=None, metavar="LABEL", help="decode only these subjects")
    sp.add_argument("--max-subjects", type=int, default=None, help="decode at most this many subjects")
    sp.add_argument("--seed", type=int, default=0, help="random seed of the pseudosessions (default 0)")
    add_parallel_arguments(sp)
    _finish(sp, _cmd_decode, out="decode.nc", figures="the PNG figure")

    # ---- report
    sp = sub.add_parser("report", help="build a self-contained HTML report from the outputs in a directory",
                        description="Collect the files written by fit, compare, recover and decode in DIRECTORY "
                                    "(found by their neurorl_output attribute) and write one HTML file with every "
                                    "figure embedded (base64 PNG; no external assets), tables and the commands.")
    sp.add_argument("directory", help="directory holding the outputs")
    sp.add_argument("--out", "-o", default=None, help="HTML file (default DIRECTORY/report.html)")
    sp.add_argument("--title", default=None, help="report title")
    _finish(sp, _cmd_report)

    # ---- demo
    sp = sub.add_parser("demo", help="the whole pipeline on the bundled dataset, with an HTML report",
                        description="Run fit (Q-learning, max-ent soft Q, DRA, policy compression; MAP), compare "
                                    "(BIC, random-effects BMS with protected exceedance probabilities, Laplace "
                                    "PSIS-LOO), recover (model-recovery confusion matrix), decode (soft vs true "
                                    "values from the neural data, pseudosession nulls) and report on the bundled "
                                    "synthetic mouse cohort, whose ground truth is known (data/README.md). "
                                    "A few minutes on 2 cores; prints where the report is.")
    sp.add_argument("--out", "-o", default="out/demo", help="output directory (default out/demo)")
    sp.add_argument("--quick", action="store_true",
                    help="a small version (2 models, 4 subjects x 150 trials, few draws): under a minute")
    sp.add_argument("--seed", type=int, default=2026, help="random seed of every stage (default 2026)")
    _finish(sp, _cmd_demo)
    return p


def _showwarning(command):
    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message)
        if "could not link to a BLAS" in text:
            return
        name = category.__name__
        print(f"neurorl {command}: warning ({name}): {text}", file=sys.stderr)
    return show


def main(argv=None) -> int:
    """Run the ``neurorl`` command; returns the exit code (0 ok, 2 bad input/arguments, 1 internal failure)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or an argparse error (2, message already printed)
        return int(exc.code or 0)
    args._argv = ["neurorl", *argv]
    debug = getattr(args, "debug", False)
    with warnings.catch_warnings():
        warnings.showwarning = _showwarning(args.command)
        try:
            if hasattr(args, "workers"):
                from .parallel import from_args

                with from_args(args):
                    return args.func(args)
            return args.func(args)
        except UsageError as exc:
            if debug:
                raise
            print(f"neurorl {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except np.linalg.LinAlgError as exc:
            if debug:
                raise
            print(f"neurorl {args.command}: numerical failure (LinAlgError: {exc}); try another --optimizer or "
                  "simplify the model (fix parameters with fix.PARAM=VALUE); --debug shows the traceback",
                  file=sys.stderr)
            return 1
        except (ValueError, TypeError, FileNotFoundError) as exc:
            if debug:
                raise
            print(f"neurorl {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"neurorl {args.command}: interrupted", file=sys.stderr)
            return 1
        except Exception as exc:  # noqa: BLE001 - the command must not end in a traceback
            if debug:
                raise
            print(f"neurorl {args.command}: internal error ({type(exc).__name__}: {exc}); this is a bug -- "
                  "rerun with --debug and report the traceback", file=sys.stderr)
            return 1


def run() -> None:
    """Entry point of the ``neurorl`` executable: :func:`main`, then a fast exit.

    Every output is complete (written to a temporary name and renamed into place) when :func:`main` returns, so
    the interpreter's teardown -- 0.2-0.4 s once JAX's runtime is loaded -- is skipped after flushing the
    standard streams (``os._exit``).
    """
    rc = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    run()
