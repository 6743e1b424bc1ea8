"""Reading and writing result files, atomically (shared by the CLI, the report and the Python API).

Every file neurorl writes -- trials, latents, simulations, the outputs of ``neurorl fit``/``compare``/``recover``/
``decode``, figures and reports -- goes through :func:`atomic_output`: the writer writes a temporary file in the
target's folder, and only a complete file is renamed onto the target (``os.replace``, atomic on POSIX and Windows
within one file system). An interrupted writer therefore leaves the previous file intact and, at worst, a hidden
``.NAME.<random>.part`` file beside it. :func:`check_not_input` refuses an output path that is one of the inputs
(also through symbolic links, hard links and relative paths).

Output files carry the root attribute ``neurorl_output`` (``"fit"``, ``"compare"``, ``"recover"``, ``"decode"``,
``"ssm"``);
the readers here check it and the groups they need, and name the file when it is incomplete or foreign.

Functions
---------
:func:`atomic_output`
    Context manager: a temporary path that is renamed onto the target on success.
:func:`check_not_input`
    Refuse an output that would overwrite an input.
:func:`trials_fingerprint`
    A hash of the trials a fit used (recorded in fit files; ``compare`` refuses fits of different data).
:func:`write_groups`
    ``{group: Dataset}`` -> one netCDF file (atomically).
:func:`read_fit`, :func:`read_compare`, :func:`read_recover`, :func:`read_decode`
    The files of the ``neurorl`` subcommands (a fit of an RL-DDM, ``--rt wiener``, also holds ``rt_check``: its RT
    predictive check, :func:`neurorl.ssm.ppc.rl_predictive_check`).
:func:`read_ssm`
    The file of a DDM regression (:meth:`neurorl.ssm.DDM.save`), with its RT predictive check.
:func:`agent_from_spec`
    The agent of a fit file's model specification.
:func:`estimates_table`, :func:`group_summary`, :func:`comparison_table`, :func:`fit_tables`, :func:`export_csv`
    Tidy tables of estimates (per subject, with standard errors and convergence flags), a group summary and the
    model-comparison table; as CSV (``neurorl export FIT.nc --csv``, ``neurorl fit ... --csv``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

__all__ = [
    "OUTPUT_ATTR", "atomic_output", "check_not_input", "reading", "trials_fingerprint", "write_groups", "nc_groups",
    "nc_root_attrs", "open_group", "read_fit", "read_fit_bayes", "read_compare", "read_recover", "read_decode",
    "read_ssm", "agent_from_spec",
    "estimates_table", "group_summary", "comparison_table", "fit_tables", "export_csv",
]

#: Root attribute naming the kind of an output file.
OUTPUT_ATTR = "neurorl_output"
#: Root attribute of fit files: :func:`trials_fingerprint` of the fitted trials.
FINGERPRINT_ATTR = "trials_fingerprint"


# ============================================================================ atomic writes
@contextlib.contextmanager
def atomic_output(path, *, directory: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto ``path`` when the block ends without an error.

    Parameters
    ----------
    path : str or path-like
        The final file. Its folder is created if needed.
    directory : bool, default False
        The output is a directory (a zarr store): an existing one is moved aside, the new one renamed into place,
        then the old one deleted.

    Yields
    ------
    pathlib.Path
        A path in the same folder (``.NAME.<random>.part``; it does not exist yet). Write the whole file there;
        writers that choose a format by suffix must be told the format explicitly.

    Notes
    -----
    On an exception (including ``KeyboardInterrupt``) the temporary file is removed and ``path`` is untouched. A
    process killed outright leaves the temporary file, never a partial ``path``.
    """
    import shutil

    path = Path(path)
    if path.is_dir() and not directory:
        raise ValueError(f"{str(path)!r} is a directory; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:8]
    tmp = path.with_name(f".{path.name}.{tag}.part")
    try:
        yield tmp
        if not tmp.exists():
            raise RuntimeError(f"atomic_output: the writer of {str(path)!r} wrote nothing")
        if directory and path.exists():
            old = path.with_name(f".{path.name}.{tag}.old")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                tmp.unlink()


@contextlib.contextmanager
def reading(path, what: str) -> Iterator[None]:
    """Turn the bare errors of file parsers into a ``ValueError`` naming the file.

    Empty files (``pandas.errors.EmptyDataError``), unparsable tables (``ParserError``), undecodable text
    (``UnicodeDecodeError``), bad JSON (``JSONDecodeError``) and unreadable or foreign binary files (``OSError``
    other than a missing file, e.g. netCDF's "NetCDF: Unknown file format") become ``ValueError("what: 'path':
    ...")``. A ``ValueError`` that does not name the file yet gets the file prepended.
    """
    import pandas as pd

    name = str(path)
    try:
        yield
    except FileNotFoundError:
        raise
    except pd.errors.EmptyDataError:
        raise ValueError(f"{what}: {name!r} is empty (no columns to read)") from None
    except pd.errors.ParserError as exc:
        raise ValueError(f"{what}: {name!r} is not a readable table ({str(exc).strip()})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what}: {name!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as "
                         "UTF-8 (or it is a binary file)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what}: {name!r} is not valid JSON ({exc.msg}, line {exc.lineno})") from None
    except IsADirectoryError:
        raise ValueError(f"{what}: {name!r} is a directory, not a file") from None
    except OSError as exc:
        raise ValueError(f"{what}: {name!r} cannot be read as this kind of file ({exc})") from None
    except ValueError as exc:
        if name in str(exc):
            raise
        raise ValueError(f"{what}: {name!r}: {exc}") from None


def _same_file(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_not_input(out, inputs: Iterable, what: str = "output") -> Path:
    """Refuse an output path that is (a link to) one of the inputs.

    Parameters
    ----------
    out : path-like
        The output file.
    inputs : iterable of path-like or None
        Files the command reads (``None`` entries are skipped). A CSV input's JSON sidecar counts as an input too.
    what : str
        How the output is named in the message (e.g. ``"-o"``).

    Returns
    -------
    pathlib.Path
        ``out``.

    Raises
    ------
    ValueError
        If ``out`` resolves to an input file.
    """
    out = Path(out)
    for p in inputs:
        if p is None:
            continue
        p = Path(p)
        for q in (p, p.with_name(p.name + ".json")):
            if _same_file(out, q):
                raise ValueError(f"{what} {str(out)!r} is the input file {str(q)!r}; writing it would destroy the "
                                 "input -- choose another output name")
    return out


def trials_fingerprint(trials) -> str:
    """A SHA-256 hash (hex, 16 characters) of what a fit of ``trials`` depends on.

    Covers the subject labels, ``n_actions``, ``n_states`` and, on every trial, ``trial_index``, ``state``,
    ``choice``, ``reward`` (NaN on invalid trials), ``rt`` and ``valid``. Two fits with equal fingerprints were
    fitted to the same trials.
    """
    h = hashlib.sha256()
    h.update(json.dumps([str(s) for s in trials["subject"].values.tolist()]).encode())
    h.update(f"{int(trials.attrs['n_actions'])},{int(trials.attrs['n_states'])}".encode())
    valid = trials["valid"].values.astype(bool)
    for name in ("trial_index", "state", "choice", "reward", "rt", "valid"):
        if name not in trials:
            continue
        v = np.asarray(trials[name].values)
        if name == "reward":
            v = np.where(valid, v, np.nan)
        v = v.astype(np.float64) if v.dtype.kind in "biuf" else v.astype(str)
        h.update(name.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    return h.hexdigest()[:16]


# ============================================================================ netCDF groups
def nc_groups(path) -> list[str]:
    """Names of the groups (recursively, ``/``-joined) of a netCDF file."""
    import netCDF4

    out = []
    with netCDF4.Dataset(path) as f:
        def walk(g, prefix):
            for name, sub in g.groups.items():
                full = f"{prefix}{name}"
                out.append(full)
                walk(sub, full + "/")
        walk(f, "")
    return out


def nc_root_attrs(path) -> dict:
    """The root attributes of a netCDF file."""
    import netCDF4

    with netCDF4.Dataset(path) as f:
        return {k: f.getncattr(k) for k in f.ncattrs()}


def open_group(path, group: str | None = None):
    """One group of a netCDF file, loaded, with the attributes :func:`neurorl.io.netcdf_safe` encoded restored."""
    import xarray as xr

    from .io import netcdf_restored

    with xr.open_dataset(path, group=group, engine="netcdf4") as f:
        return netcdf_restored(f.load())


def write_groups(path, groups: dict, root_attrs: dict | None = None, compress: bool = True) -> Path:
    """Write ``{group: Dataset}`` to one netCDF file, atomically (the root gets ``root_attrs``).

    Numeric variables are zlib-compressed when ``compress``. The file appears under ``path`` only once every group
    is written (:func:`atomic_output`).
    """
    import xarray as xr

    from .io import netcdf_safe

    path = Path(path)
    with atomic_output(path) as tmp:
        root = xr.Dataset(attrs=dict(root_attrs or {}))
        netcdf_safe(root).to_netcdf(tmp, mode="w", engine="netcdf4")
        for name, ds in groups.items():
            ds = netcdf_safe(ds)
            enc = {}
            if compress:
                enc = {k: {"zlib": True, "complevel": 4} for k, v in ds.variables.items()
                       if v.dtype.kind in "biuf" and v.ndim > 0}
            ds.to_netcdf(tmp, group=name, mode="a", engine="netcdf4", encoding=enc)
    return path


# ============================================================================ readers
def _open_output(path, kind: str, command: str) -> tuple[Path, dict, list[str]]:
    """Root attributes and groups of an output file of ``kind``; ValueError naming the file otherwise."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{str(path)!r}: no such file")
    if path.is_dir():
        raise ValueError(f"{str(path)!r} is a directory, not a file written by `{command}`")
    try:
        attrs = nc_root_attrs(path)
        groups = nc_groups(path)
    except OSError as exc:
        raise ValueError(f"{str(path)!r}: not a netCDF file, or an incomplete one ({exc}); expected a file "
                         f"written by `{command}`") from None
    if attrs.get(OUTPUT_ATTR) != kind:
        found = attrs.get(OUTPUT_ATTR)
        raise ValueError(f"{str(path)!r} is not a file written by `{command}` ("
                         + (f"it was written by `neurorl {found}`" if found else f"no {OUTPUT_ATTR}={kind!r} "
                            "attribute") + ")")
    return path, attrs, groups


def _require(path: Path, groups: list[str], needed: Iterable[str], command: str) -> None:
    missing = [g for g in needed if g not in groups]
    if missing:
        raise ValueError(f"{str(path)!r} is incomplete: group(s) {missing} are missing (an interrupted write of an "
                         f"older neurorl?); rerun `{command}`")


def _json_attr(path: Path, attrs: dict, key: str, command: str):
    try:
        return json.loads(attrs[key])
    except (KeyError, TypeError, json.JSONDecodeError):
        raise ValueError(f"{str(path)!r}: root attribute {key!r} is missing or not JSON; the file is incomplete or "
                         f"not written by `{command}`") from None


def _model_spec(path, lab: str, ds) -> dict:
    """The model specification a fit file stores on one of the model's groups (attribute ``neurorl_model``)."""
    try:
        return json.loads(ds.attrs["neurorl_model"])
    except (KeyError, json.JSONDecodeError):
        raise ValueError(f"{str(path)!r}: model {lab!r} lacks its specification (attribute neurorl_model); "
                         "the file is incomplete or foreign") from None


def _fit_file(path, attrs: dict, groups, models: dict) -> dict:
    """What the fit readers return: the trials, the true parameters (or None), the file's attributes, the models."""
    trials = open_group(path, "trials")
    return {"trials": trials, "truth": open_group(path, "truth") if "truth" in groups else None,
            "attrs": attrs, "models": models, "path": path,
            "fingerprint": str(attrs.get(FINGERPRINT_ATTR) or trials_fingerprint(trials))}


def read_fit(path) -> dict:
    """Read a file written by ``neurorl fit``.

    Returns
    -------
    dict
        ``trials`` (Dataset), ``truth`` (Dataset or None), ``attrs`` (root attributes), ``fingerprint`` (of the
        trials, :func:`trials_fingerprint`) and ``models``: an ordered dict ``label -> {"result", "evidence",
        "params", "pointwise", "predicted", "spec"}`` (and ``"rt_check"`` for RL-DDM fits).

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file: missing, not netCDF, not a fit file, or incomplete.
    """
    cmd = "neurorl fit"
    path, attrs, groups = _open_output(path, "fit", cmd)
    labels = _json_attr(path, attrs, "models", cmd)
    _require(path, groups, ["trials"] + [f"models/{lab}/{k}" for lab in labels for k in ("result", "evidence",
                                                                                          "params")], cmd)
    models = {}
    for lab in labels:
        m = {k: open_group(path, f"models/{lab}/{k}") for k in ("result", "evidence", "params", "pointwise",
                                                               "predicted", "rt_check")
             if f"models/{lab}/{k}" in groups}
        m["spec"] = _model_spec(path, lab, m["result"])
        models[lab] = m
    return _fit_file(path, attrs, groups, models)


def read_fit_bayes(path) -> dict:
    """Read a file written by ``neurorl fit-bayes``.

    Returns
    -------
    dict
        ``trials``, ``truth`` (or None), ``attrs``, ``path``, ``fingerprint`` and ``models``: ``label ->
        {"idata": arviz.InferenceData (posterior, log_likelihood, sample_stats), "summary", "params",
        "diagnostics", "loo" (Datasets), "spec"}``.
    """
    import arviz as az

    cmd = "neurorl fit-bayes"
    path, attrs, groups = _open_output(path, "fit_bayes", cmd)
    labels = _json_attr(path, attrs, "models", cmd)
    parts = ("summary", "params", "diagnostics", "loo")
    _require(path, groups, ["trials"] + [f"models/{lab}/{k}" for lab in labels for k in ("posterior",) + parts],
             cmd)
    models = {}
    for lab in labels:
        m = {k: open_group(path, f"models/{lab}/{k}") for k in parts}
        m["idata"] = az.InferenceData(**{g: open_group(path, f"models/{lab}/{g}") for g in
                                         ("posterior", "log_likelihood", "sample_stats")
                                         if f"models/{lab}/{g}" in groups})
        m["spec"] = _model_spec(path, lab, m["summary"])
        models[lab] = m
    return _fit_file(path, attrs, groups, models)


def read_compare(path) -> dict:
    """Read a file written by ``neurorl compare``: ``{"table", "bms", "loo" (or None), "loo_pointwise", "verdict",
    "predictive" (None when absent), "attrs"}``."""
    cmd = "neurorl compare"
    path, attrs, groups = _open_output(path, "compare", cmd)
    _require(path, groups, ["table", "bms"], cmd)
    return {"table": open_group(path, "table"), "bms": open_group(path, "bms"),
            "loo": open_group(path, "loo") if "loo" in groups else None,
            "loo_pointwise": open_group(path, "loo_pointwise") if "loo_pointwise" in groups else None,
            "verdict": open_group(path, "verdict") if "verdict" in groups else None,
            "predictive": open_group(path, "predictive") if "predictive" in groups else None,
            "attrs": attrs, "path": path}


def read_recover(path) -> dict:
    """Read a file written by ``neurorl recover``: ``{"model_recovery" (or None), "parameter_recovery": {label:
    Dataset}, "attrs"}``."""
    cmd = "neurorl recover"
    path, attrs, groups = _open_output(path, "recover", cmd)
    if not any(g == "model_recovery" or g.startswith("parameter_recovery/") for g in groups):
        raise ValueError(f"{str(path)!r} is incomplete: it holds no recovery result; rerun `{cmd}`")
    return {"model_recovery": open_group(path, "model_recovery") if "model_recovery" in groups else None,
            "parameter_recovery": {g.split("/", 1)[1]: open_group(path, g) for g in groups
                                   if g.startswith("parameter_recovery/")},
            "attrs": attrs, "path": path}


def read_ssm(path) -> dict:
    """Read a file written by :meth:`neurorl.ssm.DDM.save`: ``{"coefs", "group_sd", "result" (or None),
    "pointwise", "rt_check", "attrs", "path"}``."""
    cmd = "neurorl.ssm.DDM.save"
    path, attrs, groups = _open_output(path, "ssm", cmd)
    _require(path, groups, ["coefs", "rt_check"], cmd)
    return {k: open_group(path, k) if k in groups else None for k in ("coefs", "group_sd", "result", "pointwise",
                                                                       "rt_check")} | {"attrs": attrs, "path": path}


def read_decode(path) -> dict:
    """Read a file written by ``neurorl decode``: ``{"subjects": {label: Dataset}, "attrs"}``."""
    cmd = "neurorl decode"
    path, attrs, groups = _open_output(path, "decode", cmd)
    labels = _json_attr(path, attrs, "subjects", cmd)
    _require(path, groups, [f"subjects/{s}" for s in labels], cmd)
    return {"subjects": {s: open_group(path, f"subjects/{s}") for s in labels}, "attrs": attrs, "path": path}


# ============================================================================ agents of fit files
def agent_from_spec(spec: dict):
    """The agent a fit file's model specification (``result.attrs["neurorl_model"]``, as JSON-decoded) describes:
    name, options, fixed values and the RT model. Errors are ``ValueError``/``TypeError`` from the registry."""
    from .agents.base import make_agent

    fixed = spec.get("fixed") or {}
    agent = make_agent(spec["name"], **(spec.get("options") or {}), **({"fixed": fixed} if fixed else {}))
    if spec.get("rt"):
        from .fitting.joint import with_rt

        agent = with_rt(agent, spec["rt"])
    return agent


# ============================================================================ tidy tables of estimates
#: Per-subject diagnostics copied into :func:`estimates_table` when a result has them.
_SUBJECT_COLUMNS = ("loglik", "n_trials", "n_params", "aic", "bic", "laplace_log_evidence", "converged",
                    "at_bound", "identifiable", "hessian_pd", "grad_norm", "n_starts_at_best")


def _subject_labels(result):
    return [s.item() if hasattr(s, "item") else s for s in result["subject"].values]


def estimates_table(result, *, model: str | None = None):
    """Per-subject estimates as a tidy table: one row per (subject, parameter).

    Parameters
    ----------
    result : xarray.Dataset
        An estimator's ``result_`` (MLE, MAP, EMMAP; variables ``estimate`` and ``se`` over ``(subject, param)``)
        or a fit file's ``models[label]["result"]``.
    model : str, optional
        The model label of the rows (default: the result's ``agent`` attribute).

    Returns
    -------
    pandas.DataFrame
        Columns ``model, estimator, subject, param, estimate, se`` (natural scale; ``se`` by the delta method,
        NaN where the Hessian is not positive definite), ``theta, se_theta`` (unconstrained scale), ``informed``
        (the choices inform the parameter), then the subject's ``loglik, n_trials, n_params, aic, bic``
        (``laplace_log_evidence`` for MAP/EMMAP) and the convergence flags ``converged, at_bound,
        identifiable, hessian_pd`` (and ``grad_norm``, ``n_starts_at_best``) -- whichever the result holds.
    """
    import pandas as pd

    if "estimate" not in result or "param" not in result.dims:
        raise ValueError("estimates_table needs an estimator result with variable 'estimate' over (subject, param) "
                         f"(got variables {sorted(result.data_vars)})")
    label = model if model is not None else str(result.attrs.get("agent", "model"))
    subjects = _subject_labels(result)
    params = [str(p) for p in result["param"].values]
    rows = []
    for i, s in enumerate(subjects):
        per_sub = {}
        for name in _SUBJECT_COLUMNS:
            if name in result:
                v = result[name]
                val = v.values[i] if "subject" in v.dims else v.values
                per_sub[name] = val.item() if hasattr(val, "item") else val
        for j, p in enumerate(params):
            row = {"model": label, "estimator": str(result.attrs.get("estimator", "")), "subject": s, "param": p}
            for name in ("estimate", "se", "theta", "se_theta"):
                if name in result:
                    row[name] = float(result[name].transpose("subject", "param").values[i, j])
            if "informed" in result:
                row["informed"] = bool(result["informed"].values[j])
            row.update(per_sub)
            rows.append(row)
    return pd.DataFrame(rows)


def group_summary(table):
    """Across-subject summary of :func:`estimates_table` rows: one row per (model, parameter).

    Columns ``model, param, n_subjects, n_converged`` (subjects whose fit converged with a positive definite
    Hessian), ``mean, sd, median, q25, q75, min, max`` of the estimates over all subjects, and ``mean_se`` (the
    mean of the per-subject standard errors over the subjects that have one). The spread ``sd`` is across subjects;
    it is not a standard error of the group mean.
    """
    import pandas as pd

    out = []
    for (model, param), g in table.groupby(["model", "param"], sort=False):
        est = g["estimate"].to_numpy(float)
        ok = np.ones(len(g), bool)
        for flag in ("converged", "hessian_pd"):
            if flag in g:
                ok &= g[flag].to_numpy(bool)
        se = g["se"].to_numpy(float) if "se" in g else np.full(len(g), np.nan)
        out.append({
            "model": model, "param": param, "n_subjects": len(g), "n_converged": int(ok.sum()),
            "mean": float(np.mean(est)), "sd": float(np.std(est, ddof=1)) if len(est) > 1 else float("nan"),
            "median": float(np.median(est)), "q25": float(np.percentile(est, 25)),
            "q75": float(np.percentile(est, 75)), "min": float(np.min(est)), "max": float(np.max(est)),
            "mean_se": float(np.nanmean(se)) if np.isfinite(se).any() else float("nan"),
        })
    return pd.DataFrame(out)


def comparison_table(fit: dict):
    """The model-comparison table of a fit (a :func:`read_fit` dict): one row per model.

    Columns ``model, n_subjects, n_params_total, loglik_total, aic_total, bic_total, delta_aic_total,
    delta_bic_total`` (and ``laplace_log_evidence_total, delta_laplace_total`` when every model has a Laplace
    evidence), ``equivalence_class`` and the verdicts ``verdict_aic``, ``verdict_bic`` of
    :func:`neurorl.fitting.compare.compare_table` (a best model only when the evidence supports one).
    """
    import pandas as pd

    from .fitting.compare import compare_table

    results = {lab: m["result"] for lab, m in fit["models"].items()}
    pointwise = {lab: m["pointwise"]["loglik"] if "pointwise" in m and "loglik" in m["pointwise"] else None
                 for lab, m in fit["models"].items()}
    pointwise = pointwise if all(v is not None for v in pointwise.values()) else None
    tab = compare_table(results, pointwise=pointwise)
    cols = ["n_params_total", "loglik_total", "aic_total", "bic_total", "delta_aic_total", "delta_bic_total",
            "laplace_log_evidence_total", "delta_laplace_total", "ibic", "delta_ibic", "equivalence_class"]
    rows = []
    for k, m in enumerate(tab["model"].values):
        row = {"model": str(m), "n_subjects": int(tab.sizes.get("subject", 0))}
        for c in cols:
            if c in tab and tab[c].dims == ("model",):
                v = tab[c].values[k]
                row[c] = v.item() if hasattr(v, "item") else v
        row["verdict_aic"] = str(tab.attrs.get("best_aic", ""))
        row["verdict_bic"] = str(tab.attrs.get("best_bic", ""))
        rows.append(row)
    return pd.DataFrame(rows)


def fit_tables(path) -> dict:
    """The tables of a fit file: ``{"estimates", "group", "models"}`` (:func:`estimates_table` of every model,
    :func:`group_summary`, :func:`comparison_table`), each a :class:`pandas.DataFrame`."""
    import pandas as pd

    fit = read_fit(path)
    est = pd.concat([estimates_table(m["result"], model=lab) for lab, m in fit["models"].items()],
                    ignore_index=True)
    return {"estimates": est, "group": group_summary(est), "models": comparison_table(fit)}


def export_csv(path, out_prefix=None) -> list[Path]:
    """Write the tables of a fit file as CSV: ``<prefix>_estimates.csv``, ``<prefix>_group.csv``,
    ``<prefix>_models.csv``.

    Parameters
    ----------
    path : path
        A file written by ``neurorl fit``.
    out_prefix : path, optional
        Default: the fit file without its suffix (``fit.nc`` -> ``fit_estimates.csv`` ...).

    Returns
    -------
    list of pathlib.Path
        The files written (atomically; none may be the fit file itself).
    """
    path = Path(path)
    tables = fit_tables(path)
    prefix = Path(out_prefix) if out_prefix is not None else path.with_suffix("")
    written = []
    for key in ("estimates", "group", "models"):
        target = prefix.with_name(f"{prefix.name}_{key}.csv")
        check_not_input(target, [path], "export")
        with atomic_output(target) as tmp:
            tables[key].to_csv(tmp, index=False)
        written.append(target)
    return written
