"""Where compiled likelihoods live on disk, how big the cache is, and how to clear it.

neurorl compiles each likelihood (agent structure x task structure x parameter
layout x derivative order) once per machine with XLA and keeps the compiled
executables under ``exec/``. Data sizes are not part of the key: the executables
work on blocks of a fixed number of subjects and trials
(:mod:`neurorl.backend.compiled`). The key is the model structure (the agent's
class, options and fixed values, the observation model, the task tables, the
parameter layout, the order and the data's constant observation arrays) together
with a hash of neurorl's own source files (and of the module defining the agent,
for agents defined outside neurorl), the jax/jaxlib/numpy versions and the
processor (architecture and instruction-set flags, so a cache shared over a
network file system never hands one machine code built for another). A change to
any of these is a miss, and a miss compiles; an entry that cannot be read or run
is a miss too. A process that loads an executable neither traces the learning
rule nor compiles.

``xla/`` holds the programs JAX compiles for ``fit_bayes``'s PyMC and numpyro
samplers, kept by JAX's persistent compilation cache (:func:`xla_cache`).

``index/`` holds one small file per model structure that has been compiled on
this machine; it decides whether progress says "compiling ... (first use on this
machine)" or "loading ... from the cache" before the work starts, and lists the
models in ``neurorl cache info``.

Location: ``$NEURORL_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/neurorl``, else
``~/.cache/neurorl``. Size: about 0.1-2 MB per compiled function (a few MB for
all built-in agents at every order). Clear it with ``neurorl cache clear`` or
:func:`clear`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

__all__ = [
    "cache_dir",
    "cache_info",
    "clear",
    "executable_key",
    "load_executables",
    "mark_compiled",
    "no_xla_cache",
    "store_executables",
    "was_compiled",
    "xla_cache",
]


def cache_dir() -> Path:
    """The root of neurorl's on-disk cache (not created here)."""
    env = os.environ.get("NEURORL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "neurorl"


def _index_dir() -> Path:
    return cache_dir() / "index"


def _exec_dir() -> Path:
    return cache_dir() / "exec"


_SOURCE_HASH: dict = {}


def _source_hash(path: Path) -> str:
    """sha256 of every ``.py`` file under ``path`` (a package) or of one file (cached per process)."""
    key = str(path)
    if key not in _SOURCE_HASH:
        h = hashlib.sha256()
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path]
        for f in files:
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            h.update(f.read_bytes())
        _SOURCE_HASH[key] = h.hexdigest()
    return _SOURCE_HASH[key]


def _machine() -> str:
    import platform

    flags = ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith(("flags", "Features")):
                    flags = line
                    break
    except OSError:
        pass
    return f"{platform.machine()}|{platform.processor()}|{hashlib.sha256(flags.encode()).hexdigest()[:16]}"


def executable_key(structure: str, module_file: str | None = None) -> str:
    """Key of a compiled executable: the model structure, neurorl's source, versions, the processor, JAX's
    devices (an executable built where ``--xla_force_host_platform_device_count`` gave JAX two CPU devices, as for
    numpyro's parallel chains, refuses to run with one: "Attempted to execute with 2 argument lists") and
    ``XLA_FLAGS`` (options such as ``--xla_cpu_enable_fast_math`` change the compiled arithmetic)."""
    import jax
    import jaxlib
    import numpy

    pkg = Path(__file__).resolve().parent.parent
    devices = f"{jax.default_backend()} x {jax.local_device_count()}"
    parts = [structure, _source_hash(pkg), jax.__version__, jaxlib.__version__, numpy.__version__, _machine(),
             devices, os.environ.get("XLA_FLAGS", "")]
    if module_file:
        mf = Path(module_file).resolve()
        if pkg not in mf.parents:
            parts.append(_source_hash(mf))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def load_executables(key: str):
    """The executables stored under ``key`` (a list), or None (missing or unreadable: then compile)."""
    import pickle

    import jax
    from jax.experimental import serialize_executable as se

    path = _exec_dir() / key
    if not path.exists():
        return None
    try:
        with open(path, "rb") as fh:
            items = pickle.load(fh)
        # on the device it was compiled for (JAX's first): without it, a process with several CPU devices loads an
        # executable that then refuses its arguments ("2 argument lists when local device count is 1")
        return [se.deserialize_and_load(*item, execution_devices=jax.devices()[:1]) for item in items]
    except Exception:  # noqa: BLE001 - a damaged or foreign entry is a miss, never an error
        return None


def store_executables(key: str, compiled: list) -> None:
    """Serialise compiled executables under ``key`` (atomic: temporary file, then rename)."""
    import pickle

    from jax.experimental import serialize_executable as se

    path = _exec_dir() / key
    try:
        blob = pickle.dumps([se.serialize(c) for c in compiled])
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(blob)
        os.replace(tmp, path)
    except Exception:  # noqa: BLE001 - the cache is an optimisation; a failure to write only costs time later
        pass


def _marker(key: str) -> Path:
    return _index_dir() / hashlib.sha256(key.encode()).hexdigest()[:32]


def was_compiled(key: str) -> bool:
    """Whether a model structure with this key has been compiled on this machine (for progress messages)."""
    return _marker(key).exists()


def mark_compiled(key: str, label: str) -> None:
    """Record that ``key`` is compiled (atomic write; failures to write are ignored: it is only a hint)."""
    path = _marker(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as fh:
            fh.write(label + "\n")
        os.replace(tmp, path)
    except OSError:
        pass


def _xla_dir() -> Path:
    return cache_dir() / "xla"


#: programs that XLA compiles faster than this are not kept (seconds); 0: every one, since numpyro and PyMC run
#: their first evaluations eagerly, one small program per operation (about 140 of 20 ms each for a choice model)
XLA_MIN_COMPILE_SECONDS = 0.0


@contextlib.contextmanager
def xla_cache():
    """Within the block, keep the programs XLA compiles under ``<cache>/xla`` (JAX's persistent compilation cache).

    For samplers that compile the whole model with JAX (``fit_bayes(sampler="numpyro")``): their compiled sampler,
    and the small programs of their first, eager evaluations, are then loaded, not rebuilt, in later processes
    (measured: a 2-chain fit of 20 subjects x 100 trials took 32 s in every process before, 10 s in a later
    process). JAX's own key (the program, JAX's version, the device) decides reuse. A cache directory that is
    already configured (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config.update("jax_compilation_cache_dir", ...)``)
    is used as it is. Outside the block the setting is as before. Yields the directory in use.
    """
    import jax

    user = jax.config.jax_compilation_cache_dir
    old_min = jax.config.jax_persistent_cache_min_compile_time_secs
    path = str(user) if user else str(_xla_dir())
    if not user:
        Path(path).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", XLA_MIN_COMPILE_SECONDS)
    _reset_xla_cache()
    try:
        yield path
    finally:
        if not user:
            jax.config.update("jax_compilation_cache_dir", None)
            jax.config.update("jax_persistent_cache_min_compile_time_secs", old_min)
        _reset_xla_cache()


@contextlib.contextmanager
def no_xla_cache():
    """Within the block, JAX's persistent compilation cache neither serves nor keeps programs.

    neurorl's own executables must come from a real compilation: an XLA:CPU executable that JAX's cache served
    loses its functions when serialised again (docs/architecture.md), and a user may have set
    ``JAX_COMPILATION_CACHE_DIR``.
    """
    try:
        from jax._src.config import enable_compilation_cache
    except ImportError:  # pragma: no cover - a JAX without this switch: nothing to turn off
        yield
        return
    _reset_xla_cache()
    try:
        with enable_compilation_cache(False):
            yield
    finally:
        _reset_xla_cache()


def _reset_xla_cache() -> None:
    """Make JAX decide again whether its persistent cache is on (it decides once per process otherwise)."""
    try:
        from jax._src import compilation_cache
    except ImportError:  # pragma: no cover - a JAX without this module
        return
    compilation_cache.reset_cache()


def _size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()] if path.exists() else []
    return len(files), sum(p.stat().st_size for p in files)


def cache_info() -> dict:
    """``{"path", "files", "bytes", "models"}`` of the on-disk cache."""
    root = cache_dir()
    n, size = _size(root)
    models = sorted(p.read_text().strip() for p in _index_dir().glob("*") if p.is_file()) \
        if _index_dir().exists() else []
    return {"path": str(root), "files": n, "bytes": size, "models": models}


def clear() -> dict:
    """Delete the on-disk cache (compiled likelihoods, the index and the XLA programs of :func:`xla_cache`);
    returns what :func:`cache_info` said before.

    Processes that already loaded a function keep it; the next process compiles again.
    """
    info = cache_info()
    root = cache_dir()
    for sub in (_exec_dir(), _index_dir(), _xla_dir()):
        if sub.exists():
            shutil.rmtree(sub)
    if root.exists() and not any(root.iterdir()):
        root.rmdir()
    return info
