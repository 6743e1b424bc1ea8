"""Reading and writing result files, atomically (shared by the CLI, the report and the Python API).

Every file neurorl writes -- trials, latents, simulations, the outputs of ``neurorl fit``/``compare``/``recover``/
``decode``, figures and reports -- goes through :func:`atomic_output`: the writer writes a temporary file in the
target's folder, and only a complete file is renamed onto the target (``os.replace``, atomic on POSIX and Windows
within one file system). An interrupted writer therefore leaves the previous file intact and, at worst, a hidden
``.NAME.<random>.part`` file beside it. :func:`check_not_input` refuses an output path that is one of the inputs
(also through symbolic links, hard links and relative paths).

Output files carry the root attribute ``neurorl_output`` (``"fit"``, ``"compare"``, ``"recover"``, ``"decode"``);
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
    The files of the ``neurorl`` subcommands.
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
    "nc_root_attrs", "open_group", "read_fit", "read_compare", "read_recover", "read_decode",
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


def read_fit(path) -> dict:
    """Read a file written by ``neurorl fit``.

    Returns
    -------
    dict
        ``trials`` (Dataset), ``truth`` (Dataset or None), ``attrs`` (root attributes), ``fingerprint`` (of the
        trials, :func:`trials_fingerprint`) and ``models``: an ordered dict ``label -> {"result", "evidence",
        "params", "pointwise", "predicted", "spec"}``.

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
                                                               "predicted") if f"models/{lab}/{k}" in groups}
        try:
            m["spec"] = json.loads(m["result"].attrs["neurorl_model"])
        except (KeyError, json.JSONDecodeError):
            raise ValueError(f"{str(path)!r}: model {lab!r} lacks its specification (attribute neurorl_model); "
                             "the file is incomplete or foreign") from None
        models[lab] = m
    trials = open_group(path, "trials")
    return {"trials": trials, "truth": open_group(path, "truth") if "truth" in groups else None,
            "attrs": attrs, "models": models, "path": path,
            "fingerprint": str(attrs.get(FINGERPRINT_ATTR) or trials_fingerprint(trials))}


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


def read_decode(path) -> dict:
    """Read a file written by ``neurorl decode``: ``{"subjects": {label: Dataset}, "attrs"}``."""
    cmd = "neurorl decode"
    path, attrs, groups = _open_output(path, "decode", cmd)
    labels = _json_attr(path, attrs, "subjects", cmd)
    _require(path, groups, [f"subjects/{s}" for s in labels], cmd)
    return {"subjects": {s: open_group(path, f"subjects/{s}") for s in labels}, "attrs": attrs, "path": path}
