"""Helpers shared by the ``neurorl`` subcommands: argument parsing, agent/task construction, data input."""
from __future__ import annotations

import ast
import shlex
from pathlib import Path

import numpy as np

from ..results import (
    check_not_input,
)
from ..results import nc_groups as _nc_groups
from ..results import open_group as _open_group

__all__ = ["DEMO_AGENTS", "DEMO_TASK", "UsageError", "parse_agent_spec", "read_data"]

#: The design of the bundled cohort (docs/tasks.md, "Choosing a design"): branching with stakes, the frequent bandit
#: state six times as frequent as the rare one.
DEMO_TASK = "branching_stakes:p_frequent=0.6,p_rare=0.1"
#: The demo's agents: ``name -> (options, parameters)``. The options (``fixed`` included) are the ones the demo fits
#: with and the bundled cohort was generated with (analyses/make_demo_data.py); the parameters are typical values on
#: ``DEMO_TASK`` (the centres of the cohort's generating distributions). ``soft_q`` fixes the true critic's rate (it
#: does not affect choices, so choices cannot estimate it). DRA keeps its default ``sigma_base = 5``, which suits the
#: task's rewards of +-2 (SD 1).
DEMO_AGENTS = {
    "dra": ({}, {"alpha_q": 0.1, "alpha_sigma": 0.17, "lam": 0.08}),
    "soft_q": ({"fixed": {"eta_true": 0.1}}, {"tau": 1.0, "eta": 0.1}),
    "q_learning": ({}, {"alpha": 0.3, "beta": 3.0}),
}
#: ``neurorl simulate --demo-params``: options and values typical of a mouse on a 0/1-reward bandit (the earlier
#: demo's; DRA's memory SDs scaled to the 0/1 rewards, policy compression's marginal rate fixed).
BANDIT_SIM_PARAMS = {
    "q_learning": ({}, {"alpha": 0.35, "beta": 4.0}),
    "soft_q": ({"fixed": {"eta_true": 0.1}}, {"tau": 0.25, "eta": 0.35}),
    "dra": ({"sigma_base": 0.5, "sigma0": 0.25}, {"alpha_q": 0.3, "alpha_sigma": 0.5, "lam": 1.0}),
    "policy_compression": ({"fixed": {"alpha_p": 0.01}}, {"beta": 3.0, "alpha_v": 0.3, "alpha_theta": 0.1}),
}
#: Further agents that ``simulate --demo-params`` knows mouse-bandit values for.
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
            from ..fitting.joint import with_rt
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
    from .. import fitting

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


def _agent_of(spec: dict):
    """The agent of a fit file's model ``spec`` (name, options, fixed, rt)."""
    return _make_agent(spec["name"], spec.get("options") or {}, spec.get("fixed") or {}, spec.get("rt"))


def add_data_arguments(sp) -> None:
    """The options of the commands that read one trials file DATA: subset, column mapping, codings, preset, task."""
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


def read_data_args(args):
    """``(trials, truth)`` of DATA read with the options of :func:`add_data_arguments` (subset applied)."""
    columns = _key_values(",".join(args.columns), "--columns") if args.columns else None
    task = _make_task(args.task) if args.task else None
    one_based = [c.strip() for c in args.one_based_columns.split(",")] if args.one_based_columns else args.one_based
    trials, truth = read_data(args.data, columns=columns, one_based=one_based, task=task,
                              n_actions=args.n_actions, rt_unit=args.rt_unit, format=args.format)
    return _select(trials, args.subjects, args.max_trials, where=str(args.data)), truth
