"""The execution layer: independent units of work run serially, on local processes, or on a Dask cluster.

Every embarrassingly parallel job of neurorl -- model and parameter recovery, the fits of several models, null
distributions, LOO of several models -- is a list of *units* handed to :func:`map_units`. Where the units run is
chosen by the caller, never by the function that does the work:

>>> import neurorl.parallel as par
>>> with par.parallel(workers=4):                      # local processes      # doctest: +SKIP
...     res = model_recovery(["q_learning", "soft_q"], "bandit")
>>> from dask.distributed import Client                                        # doctest: +SKIP
>>> with par.parallel(client=Client("tcp://scheduler:8786")):                  # doctest: +SKIP
...     res = model_recovery(...)

On the command line, ``--workers N`` and ``--scheduler ADDRESS`` do the same (:func:`add_arguments`).

Guarantees
----------
* **Results do not depend on where units run.** A unit's random numbers come from a seed derived from the root seed
  and the unit's *index* (:func:`unit_seed`: ``SeedSequence(root.entropy, spawn_key=root.spawn_key + (i,))``), never
  from the order in which units finish or the number of workers; results are returned in unit order.
* **Workers share the compiled-likelihood cache.** A worker loads compiled likelihoods from the on-disk cache of
  :mod:`neurorl.backend.cache` instead of recompiling. Local worker processes are given the parent's cache directory
  (``NEURORL_CACHE_DIR``) explicitly; on a cluster, pass ``cache_dir=`` (a shared file system) or set the variable
  in the workers' environment. Units should be large (a whole model fit over many subjects, a batch of null draws)
  so that the per-unit overhead -- shipping the unit, loading the executable -- is amortised.
* **Failures.** On Dask a unit whose worker dies is re-run on another worker (the scheduler's
  ``allowed-failures``, 3 by default). With local processes a dead worker breaks the pool: the pool is restarted and
  the unfinished units are submitted again, up to ``retries`` times. An exception raised *by a unit* stops the study;
  it is re-raised with its own type and a note naming the unit. Units finished before are kept in the store.
* **Resumable studies.** With ``store=DIR`` every finished unit is written to ``DIR/unit-<index>.nc`` (atomically,
  :func:`neurorl.results.atomic_output`) as soon as it completes, and ``DIR/study.json`` records a fingerprint of
  the study. A rerun with the same study loads the finished units and computes only the others; a store of another
  study is refused. ``only_stored=True`` summarises a partial study without computing anything.

Functions and classes
---------------------
:func:`map_units`
    Run ``fn`` over ``units`` (the one entry point).
:func:`parallel`
    Context manager choosing where :func:`map_units` runs inside the block (serial outside any block).
:class:`Executor`
    Serial, local processes or a ``dask.distributed.Client``.
:class:`UnitStore`
    The per-unit results store of a resumable study.
:func:`unit_seed`, :func:`study_fingerprint`, :func:`add_arguments`, :func:`from_args`
    Helpers.

Assumptions
-----------
[A1] Local processes are started with the ``spawn`` method (JAX and torch are not fork-safe): a script that uses
     ``parallel(workers=N)`` must guard its entry point with ``if __name__ == "__main__":``.
[A2] ``fn`` and the units must be picklable (``cloudpickle`` is used, so closures and lambdas are fine).
[A3] A store holds netCDF: a unit's result must be an ``xarray.Dataset``, a ``DataArray``, a numpy array (or
     scalar) or a dict of arrays; it is read back exactly (float64 round-trips bit for bit).
[A4] Workers compute on one thread each by default (``threads=1``): N workers on N cores then neither
     oversubscribe the machine nor depend on how a library sizes its pool. Local processes are set up before their
     first unit; a Dask worker is set up by its first unit (JAX reads ``XLA_FLAGS`` when its backend starts, so a
     worker that already ran JAX code keeps its pool: start Dask workers with ``--nthreads 1`` and the variables
     of :data:`ONE_THREAD_ENV` and ``XLA_FLAGS`` set, as docs/parallel.md shows). The serial path leaves this
     process alone: a baseline to compare with must set the same variables itself (benchmarks/scale_out.py does).
[A5] Every unit first undoes, in a Dask worker, the nanny's ``MALLOC_TRIM_THRESHOLD_`` (:func:`malloc_for_compute`),
     which otherwise makes every fit about twice as slow as in a plain process.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

__all__ = [
    "Executor", "UnitStore", "map_units", "parallel", "current", "unit_seed", "chunks", "study_fingerprint", "add_arguments",
    "from_args", "array_digest", "one_thread", "ONE_THREAD_ENV", "ONE_THREAD_XLA_FLAGS",
]

_CURRENT: contextvars.ContextVar[Executor | None] = contextvars.ContextVar("neurorl_executor", default=None)
_UNIT_KIND = "neurorl_unit_kind"


# ============================================================================ seeds
def _root_sequence(seed) -> np.random.SeedSequence:
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        ss = seed.bit_generator.seed_seq
        if not isinstance(ss, np.random.SeedSequence):
            raise TypeError("map_units: the Generator's bit generator has no SeedSequence; pass an int seed")
        return ss
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"map_units: seed must be non-negative, got {seed}")
        return np.random.SeedSequence(int(seed))
    raise TypeError(f"seed must be an int, numpy.random.SeedSequence or Generator, got {type(seed).__name__}")


def unit_seed(seed, index: int) -> np.random.SeedSequence:
    """The seed of unit ``index`` of a study with root ``seed``.

    ``SeedSequence(root.entropy, spawn_key=root.spawn_key + (index,))`` -- the ``index``-th child that
    ``root.spawn`` would give, computed without touching the root's state, so it depends on the index only.

    Parameters
    ----------
    seed : int, numpy.random.SeedSequence or numpy.random.Generator
        The root (a Generator contributes its bit generator's SeedSequence, not its current state).
    index : int

    Returns
    -------
    numpy.random.SeedSequence
    """
    root = _root_sequence(seed)
    return np.random.SeedSequence(root.entropy, spawn_key=tuple(root.spawn_key) + (int(index),),
                                  pool_size=root.pool_size)


# ============================================================================ executors
class Executor:
    """Where units run: serially, on ``workers`` local processes, or on a ``dask.distributed.Client``.

    Parameters
    ----------
    client : dask.distributed.Client, optional
        Run on this cluster.
    workers : int, optional
        Number of local processes (ignored with ``client``); ``None``, 0 or 1 run serially in this process.
    cache_dir : str or path-like, optional
        Compiled-likelihood cache the workers use (``NEURORL_CACHE_DIR`` set in the worker before each unit).
        Default: this process's cache directory for local processes; the workers' own setting on Dask (pass a
        directory on a shared file system there).
    retries : int, default 3
        Local processes: how many times a pool broken by a dead worker is restarted.
    threads : int or None, default 1
        Compute threads of each worker: 1 (default) runs every worker on one thread (:func:`one_thread`: BLAS,
        torch and XLA), so that N workers use N cores and do not compete for them ([A4]); None leaves the workers'
        thread pools as they are. The serial executor never changes this process.
    """

    def __init__(self, client=None, *, workers: int | None = None, cache_dir=None, retries: int = 3,
                 threads: int | None = 1):
        if threads not in (None, 1):
            raise ValueError(f"threads must be 1 or None, got {threads!r}")
        self.threads = threads
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, (int, np.integer))
                                    or workers < 0):
            raise ValueError(f"workers must be a non-negative integer, got {workers!r}")
        if client is not None and not hasattr(client, "submit"):
            raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
        self.client = client
        self.workers = int(workers or 0)
        self.cache_dir = None if cache_dir is None else str(cache_dir)
        self.retries = int(retries)
        self._pool = None

    def _process_pool(self, cache_dir: str):
        """The executor's pool of spawned processes (started on first use, kept until :meth:`close`)."""
        if self._pool is None:
            import multiprocessing as mp
            from concurrent.futures import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_worker_init, initargs=(cache_dir, self.threads))
        return self._pool

    def close(self, *, wait: bool = True) -> None:
        """Stop the local worker processes, if any (a Dask client is left to its owner)."""
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)
            self._pool = None

    @property
    def kind(self) -> str:
        """``"dask"``, ``"processes"`` or ``"serial"``."""
        if self.client is not None:
            return "dask"
        return "processes" if self.workers > 1 else "serial"

    def __repr__(self) -> str:
        if self.kind == "dask":
            return f"Executor(dask client {getattr(self.client, 'scheduler', None)!s})"
        return f"Executor({self.kind}, workers={max(self.workers, 1)})"

    def describe(self) -> str:
        """One line for progress messages."""
        if self.kind == "dask":
            try:
                n = len(self.client.scheduler_info().get("workers", {}))
            except Exception:  # noqa: BLE001 - a description must not fail
                n = "?"
            return f"on a Dask cluster ({n} workers)"
        return f"on {self.workers} local processes" if self.kind == "processes" else "serially"


def current() -> Executor:
    """The executor of the innermost :func:`parallel` block (serial outside any block)."""
    ex = _CURRENT.get()
    return ex if ex is not None else Executor()


@contextlib.contextmanager
def parallel(client=None, *, workers: int | None = None, scheduler: str | None = None, cache_dir=None,
             retries: int = 3, threads: int | None = 1):
    """Run every :func:`map_units` inside the block on the chosen executor.

    Parameters
    ----------
    client : dask.distributed.Client or Executor, optional
        A Dask client (or a ready :class:`Executor`).
    workers : int, optional
        Local processes (when neither ``client`` nor ``scheduler`` is given).
    scheduler : str, optional
        Address of a running Dask scheduler (``tcp://host:8786``); a client is opened for the block and closed at
        its end.
    cache_dir, retries, threads
        See :class:`Executor`.

    Yields
    ------
    Executor
    """
    own = None
    if isinstance(client, Executor):
        ex = client
    else:
        if scheduler is not None:
            if client is not None:
                raise ValueError("parallel: give client or scheduler, not both")
            Client = _dask_client_class()
            own = client = Client(scheduler)
        ex = Executor(client, workers=workers, cache_dir=cache_dir, retries=retries, threads=threads)
    token = _CURRENT.set(ex)
    try:
        yield ex
    finally:
        _CURRENT.reset(token)
        if ex is not client:
            ex.close()
        if own is not None:
            own.close()


def _dask_client_class():
    try:
        from dask.distributed import Client
    except ImportError:
        raise ImportError("running on a Dask cluster needs dask and distributed: pip install 'neurorl[parallel]'") \
            from None
    return Client


def _as_executor(client) -> Executor:
    if client is None:
        return current()
    if isinstance(client, Executor):
        return client
    if isinstance(client, str):
        if client != "serial":
            raise ValueError(f"client must be an Executor, a dask Client, an int (local processes) or 'serial'; "
                             f"got {client!r}")
        return Executor()
    if isinstance(client, (int, np.integer)) and not isinstance(client, bool):
        return Executor(workers=int(client))
    return Executor(client)


# ============================================================================ the store
def study_fingerprint(description: dict) -> str:
    """A SHA-256 hash (hex, 16 characters) of a JSON description of a study (values that are not JSON use repr)."""
    text = json.dumps(description, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def array_digest(a) -> str:
    """A SHA-256 hash (hex, 16 characters) of an array's dtype, shape and bytes, for :func:`study_fingerprint`."""
    a = np.ascontiguousarray(a)
    return hashlib.sha256(str(a.dtype).encode() + str(a.shape).encode() + a.tobytes()).hexdigest()[:16]


def _to_dataset(value):
    import xarray as xr

    if isinstance(value, xr.Dataset):
        return value.assign_attrs({_UNIT_KIND: "dataset"})
    if isinstance(value, xr.DataArray):
        name = value.name if value.name is not None else "__value__"
        return value.to_dataset(name=name).assign_attrs({_UNIT_KIND: "dataarray", "neurorl_unit_name": str(name)})
    if isinstance(value, dict):
        data = {}
        for k, v in value.items():
            a = np.asarray(v)
            if a.dtype == object:
                raise TypeError(f"UnitStore: value {k!r} of a unit result is not numeric or text")
            data[str(k)] = (tuple(f"{k}_dim{i}" for i in range(a.ndim)), a)
        return xr.Dataset(data, attrs={_UNIT_KIND: "dict", "neurorl_unit_keys": json.dumps(list(map(str, value)))})
    a = np.asarray(value)
    if a.dtype == object:
        raise TypeError(f"UnitStore: a unit returned {type(value).__name__}; a store holds Datasets, DataArrays, "
                        "numeric arrays or dicts of arrays")
    return xr.Dataset({"value": (tuple(f"dim{i}" for i in range(a.ndim)), a)}, attrs={_UNIT_KIND: "array"})


def _from_dataset(ds):
    kind = ds.attrs.pop(_UNIT_KIND, "dataset")
    if kind == "dataset":
        return ds
    if kind == "dataarray":
        name = ds.attrs.pop("neurorl_unit_name")
        da = ds[name]
        return da.rename(None) if name == "__value__" else da
    if kind == "dict":
        keys = json.loads(ds.attrs.pop("neurorl_unit_keys"))
        return {k: ds[k].values for k in keys}
    v = ds["value"].values
    return v[()] if v.ndim == 0 else v


class UnitStore:
    """Per-unit results of one study in a directory: ``study.json`` and ``unit-<index>.nc``.

    Parameters
    ----------
    path : str or path-like
        The directory (created if needed).
    description : dict
        What defines the study (function, options, seed, data fingerprint ...); its fingerprint is written to
        ``study.json`` on first use and checked on every later use.
    n_units : int
        Number of units of the study.

    Raises
    ------
    ValueError
        If the directory holds another study (a different fingerprint or number of units), naming both.
    """

    def __init__(self, path, description: dict, n_units: int):
        from .results import atomic_output

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise ValueError(f"store {str(self.path)!r} is a file; a study store is a directory")
        self.n_units = int(n_units)
        self.fingerprint = study_fingerprint(description)
        meta = self.path / "study.json"
        record = {"fingerprint": self.fingerprint, "n_units": self.n_units,
                  "description": json.loads(json.dumps(description, sort_keys=True, default=repr))}
        if meta.exists():
            try:
                old = json.loads(meta.read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise ValueError(f"store {str(self.path)!r}: study.json is unreadable ({exc})") from None
            if old.get("fingerprint") != self.fingerprint or int(old.get("n_units", -1)) != self.n_units:
                diff = sorted(k for k in set(old.get("description", {})) | set(record["description"])
                              if old.get("description", {}).get(k) != record["description"].get(k))
                raise ValueError(f"store {str(self.path)!r} holds another study (fingerprint {old.get('fingerprint')}"
                                 f", {old.get('n_units')} units; this one: {self.fingerprint}, {self.n_units} units; "
                                 f"differing: {diff}); use a new directory or delete it")
        else:
            self.path.mkdir(parents=True, exist_ok=True)
            with atomic_output(meta) as tmp:
                tmp.write_text(json.dumps(record, indent=1))

    def file(self, index: int) -> Path:
        """The file of unit ``index``."""
        return self.path / f"unit-{int(index):06d}.nc"

    def done(self) -> list[int]:
        """Indices of the finished units."""
        return [i for i in range(self.n_units) if self.file(i).exists()]

    def put(self, index: int, value) -> None:
        """Write unit ``index``'s result (atomically)."""
        from .io import netcdf_safe
        from .results import atomic_output

        ds = netcdf_safe(_to_dataset(value))
        with atomic_output(self.file(index)) as tmp:
            ds.to_netcdf(tmp, engine="netcdf4")

    def get(self, index: int):
        """Unit ``index``'s result as it was returned by the unit."""
        import xarray as xr

        from .io import netcdf_restored

        f = self.file(index)
        try:
            with xr.open_dataset(f, engine="netcdf4") as ds:
                return _from_dataset(netcdf_restored(ds.load()))
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"store {str(self.path)!r}: unit file {f.name} is unreadable ({exc}); delete it to "
                             "recompute the unit") from None

    def summary(self) -> dict:
        """``{"path", "fingerprint", "n_units", "n_done", "done"}``."""
        done = self.done()
        return {"path": str(self.path), "fingerprint": self.fingerprint, "n_units": self.n_units,
                "n_done": len(done), "done": done}


# ============================================================================ running units
def _dumps(obj) -> bytes:
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle comes with the parallel extra
        import pickle

        return pickle.dumps(obj)
    return cloudpickle.dumps(obj)


#: glibc's ``mallopt`` parameters and the values :func:`malloc_for_compute` sets (glibc's own dynamic maxima on
#: 64-bit Linux: blocks up to 32 MiB come from the heap and are reused, free memory above 64 MiB is given back)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MALLOC_FOR_COMPUTE = {"M_MMAP_THRESHOLD": 32 * 2**20, "M_TRIM_THRESHOLD": 64 * 2**20}
_MALLOC_DONE: dict | None = None


def malloc_for_compute() -> dict:
    """Undo Dask's ``MALLOC_TRIM_THRESHOLD_`` in this worker process (glibc only; once per process).

    A Dask nanny starts every worker with ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``)
    so that freed memory goes back to the system at once. Setting it also freezes glibc's mmap threshold at 128 KiB,
    so that every array above that size is a fresh ``mmap`` whose pages the kernel zeroes again: measured on the
    development machine, a warm MAP fit of 100 subjects x 500 trials took 0.74 s in a Dask worker against 0.36 s in a
    plain process -- with JAX's spinning pool (``PJRT_NPROC``, :data:`ONE_THREAD_ENV`), the cause of the "workers
    spend 2-3x the serial processor time" once seen in ``benchmarks/scale_out.py``.
    Here the thresholds go back to glibc's dynamic maxima (:data:`MALLOC_FOR_COMPUTE`) with ``mallopt``, which
    restores the plain process's speed (0.36 s) while memory above 64 MiB is still given back. Does nothing where the
    variable is not set (a plain process, local processes) or the C library is not glibc. Returns what was set
    (empty when nothing was).
    """
    global _MALLOC_DONE
    if _MALLOC_DONE is not None:
        return _MALLOC_DONE
    _MALLOC_DONE = {}
    if not os.environ.get("MALLOC_TRIM_THRESHOLD_") or not sys.platform.startswith("linux"):
        return _MALLOC_DONE
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # pragma: no cover - not glibc (musl, ...)
        return _MALLOC_DONE
    for name, code in (("M_MMAP_THRESHOLD", _M_MMAP_THRESHOLD), ("M_TRIM_THRESHOLD", _M_TRIM_THRESHOLD)):
        if mallopt(code, MALLOC_FOR_COMPUTE[name]) == 1:
            _MALLOC_DONE[name] = MALLOC_FOR_COMPUTE[name]
    return _MALLOC_DONE


def _run_unit(fn, unit, seed_seq, cache_dir, threads=None):
    """Run one unit in a worker: the cache directory (and one thread) set first, ``fn`` gets a Generator when
    seeded."""
    malloc_for_compute()
    if threads == 1:
        one_thread()
    if isinstance(fn, bytes):
        import pickle

        fn = pickle.loads(fn)
    if cache_dir is not None:
        os.environ["NEURORL_CACHE_DIR"] = cache_dir
    if seed_seq is None:
        return fn(unit)
    return fn(unit, np.random.default_rng(seed_seq))


def _note(exc: BaseException, desc: str, index: int, where: str = "") -> None:
    """Name the unit that raised (the exception keeps its type, so callers handle it as before)."""
    exc.add_note(f"neurorl.parallel: raised by unit {index} of {desc}" + (f" {where}" if where else ""))


#: environment that makes a worker compute on one thread (read by OpenMP/MKL/OpenBLAS, torch and JAX at start-up).
#: ``PJRT_NPROC`` sizes JAX's CPU execution pool (``tf_XLAEigen``), which the XLA flags below do not: without it the
#: pool has a thread per core whose spinning, measured on the development machine, doubled a MAP fit's processor time
#: (0.38 s of wall time, 0.57-1.0 s of processor time) and took the other worker's core
ONE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PJRT_NPROC": "1"}
#: XLA flags of one compute thread per JAX process (the Eigen pool and XLA's intra-op pool)
ONE_THREAD_XLA_FLAGS = ("--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1")
_ONE_THREAD_DONE = False


def one_thread() -> dict:
    """Make this process compute on one thread: the environment of :data:`ONE_THREAD_ENV` and
    :data:`ONE_THREAD_XLA_FLAGS`, the BLAS pools already loaded (``threadpoolctl``) and torch's pool.

    Worker processes call it before their first unit ([A4]): JAX reads ``XLA_FLAGS`` when its backend starts (the
    first computation), torch reads ``OMP_NUM_THREADS`` when imported; pools already running are limited at run
    time. Returns what the process now uses (for reports and tests).
    """
    global _ONE_THREAD_DONE
    if not _ONE_THREAD_DONE:
        os.environ.update(ONE_THREAD_ENV)
        flags = os.environ.get("XLA_FLAGS", "").split()
        os.environ["XLA_FLAGS"] = " ".join(flags + [f for f in ONE_THREAD_XLA_FLAGS if f not in flags])
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            pass
        _ONE_THREAD_DONE = True

    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    return {"XLA_FLAGS": os.environ["XLA_FLAGS"], **{k: os.environ[k] for k in ONE_THREAD_ENV},
            "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None}


def _worker_init(cache_dir, threads=1):
    if cache_dir is not None:
        os.environ["NEURORL_CACHE_DIR"] = cache_dir
    if threads == 1:
        one_thread()


def map_units(fn: Callable, units: Iterable, *, seed=None, client=None, store=None, study: dict | None = None,
              only_stored: bool = False, progress: bool = False, desc: str = "units",
              compile_key: Callable | None = None) -> list:
    """Run ``fn`` over independent ``units`` and return the results in unit order.

    Parameters
    ----------
    fn : callable
        ``fn(unit)``, or ``fn(unit, rng)`` when ``seed`` is given (``rng`` a ``numpy.random.Generator`` seeded by
        :func:`unit_seed` ``(seed, index)``). Must be picklable for processes and Dask ([A2]).
    units : iterable
        The units (each picklable); their order defines their indices.
    seed : int, SeedSequence or Generator, optional
        Root seed of the per-unit generators. Omit when the units carry their own seeds.
    client : Executor, dask.distributed.Client, int or "serial", optional
        Where to run; default :func:`current` (the innermost :func:`parallel` block, else serially). An int is a
        number of local processes.
    store : str, path-like or UnitStore, optional
        Directory of a resumable study: finished units are written there as they complete and loaded instead of
        recomputed on a rerun ([A3]).
    study : dict, optional
        Description of the study for the store's fingerprint (required with a path ``store``); it should hold
        everything the results depend on (options, seed, a fingerprint of the data).
    only_stored : bool, default False
        Compute nothing: return the stored results, None for the units not finished (summarise a partial study).
    progress : bool, default False
        A progress bar over units.
    desc : str
        What the units are, for the progress bar.
    compile_key : callable, optional
        ``compile_key(unit)`` -> a hashable naming the compiled likelihood the unit needs (e.g. the model). On
        processes or Dask, the first unfinished unit of every key runs first and the other units of that key only
        once it has finished, so that on a cold cache each likelihood is compiled by one worker and loaded by the
        others (instead of every worker compiling it at the same time).

    Returns
    -------
    list
        ``fn``'s results in the order of ``units`` (None for missing units with ``only_stored``).

    Raises
    ------
    RuntimeError
        A unit raised (chained, naming the unit's index) or local worker processes kept dying.
    """
    units = list(units)
    n = len(units)
    ex = _as_executor(client)
    ad_hoc = client is not None and not isinstance(client, Executor)  # made here, closed here
    if store is not None and not isinstance(store, UnitStore):
        if study is None:
            raise ValueError("map_units: a store directory needs study= (a description of the study)")
        store = UnitStore(store, study, n)
    elif isinstance(store, UnitStore) and store.n_units != n:
        raise ValueError(f"map_units: the store has {store.n_units} units, the study {n}")
    if only_stored and store is None:
        raise ValueError("map_units: only_stored=True needs a store")
    seeds = [None] * n if seed is None else [unit_seed(seed, i) for i in range(n)]
    results: list = [None] * n
    todo = list(range(n))
    if store is not None:
        done = store.done()
        for i in done:
            results[i] = store.get(i)
        todo = [i for i in range(n) if i not in set(done)]
        if progress and done and not only_stored:
            from .progress import progress_bar

            bar = progress_bar(True, f"{desc}: resuming from {store.path}", n, unit="units")
            bar.set_done(len(done))
            bar.close()
    if only_stored or not todo:
        return results
    from .progress import progress_bar

    bar = progress_bar(progress, f"{desc} ({ex.describe()})", len(todo), unit="units")

    def finish(i, value):
        results[i] = value
        if store is not None:
            store.put(i, value)
        if bar is not None:
            bar.update(1)

    try:
        if ex.kind == "serial" or len(todo) == 1 and ex.kind == "processes":
            for i in todo:
                try:
                    value = _run_unit(fn, units[i], seeds[i], None)
                except Exception as exc:
                    _note(exc, desc, i)
                    raise
                finish(i, value)
        else:
            run = _run_processes if ex.kind == "processes" else _run_dask
            run(ex, fn, units, seeds, *_schedule(todo, units, compile_key), finish, desc)
    finally:
        if bar is not None:
            bar.close()
        if ad_hoc:
            ex.close()
    return results


def _schedule(todo: list[int], units: list, compile_key) -> tuple[list[int], dict[int, list[int]]]:
    """``(ready, after)``: the units to start at once, and for each of them the units that start when it finishes.

    Without ``compile_key`` every unit is ready. With it, the first unit of every key is ready and the other units
    of that key wait for it alone (not for the first units of the other keys): on a cold cache one worker compiles
    each likelihood and the others load it, and on a warm one no worker waits for a slower key's first unit.
    """
    if compile_key is None:
        return list(todo), {}
    first: dict = {}
    after: dict[int, list[int]] = {}
    for i in todo:
        key = compile_key(units[i])
        if key in first:
            after[first[key]].append(i)
        else:
            first[key] = i
            after[i] = []
    return sorted(first.values()), after


def _run_processes(ex: Executor, fn, units, seeds, ready, after, finish, desc):
    """Run the units on the executor's spawned processes: ``ready`` at once, ``after[i]`` once unit ``i`` is done."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool

    from .backend.cache import cache_dir

    cdir = ex.cache_dir or str(cache_dir())
    payload = _dumps(fn)
    ready, after = list(ready), {i: list(v) for i, v in after.items()}
    restarts = 0
    while ready:
        pool = ex._process_pool(cdir)
        running: dict = {}
        broken = False

        def submit(indices, pool=pool, running=running):
            for i in indices:
                running[pool.submit(_run_unit, payload, units[i], seeds[i], cdir, ex.threads)] = i

        try:
            submit(ready)
            ready = []
            while running and not broken:
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for fut in done:
                    i = running.pop(fut)
                    try:
                        value = fut.result()
                    except BrokenProcessPool:
                        broken = True
                        ready.append(i)
                        continue
                    except Exception as exc:
                        _note(exc, desc, i)
                        raise
                    finish(i, value)
                    (ready.extend if broken else submit)(after.pop(i, []))
        except BaseException:
            ex.close(wait=False)
            raise
        if broken:
            ready.extend(running.values())  # lost with the pool: run again (the same seeds, the same results)
            ex.close(wait=False)
            restarts += 1
            if restarts > ex.retries:
                left = sorted(ready + [j for v in after.values() for j in v])
                raise RuntimeError(f"{desc}: a local worker process died {restarts} times (killed, out of memory?); "
                                   f"{len(left)} unit(s) unfinished: {left[:10]}")


def _run_dask(ex: Executor, fn, units, seeds, ready, after, finish, desc):
    """Run the units on a Dask cluster: ``ready`` at once, ``after[i]`` once unit ``i`` is done."""
    from dask.distributed import as_completed

    client = ex.client
    # fn travels inside every task (not scattered): a scattered object dies with the worker that holds it, while a
    # task's own inputs let the scheduler re-run it anywhere when a worker is lost
    futures = {}
    stamp = f"{int(time.time() * 1e6):x}"

    def submit(i):
        fut = client.submit(_run_unit, fn, units[i], seeds[i], ex.cache_dir, ex.threads, pure=False,
                            key=f"neurorl-unit-{i}-{stamp}")
        futures[fut] = i
        return fut

    try:
        pending = as_completed([submit(i) for i in ready])
        for fut in pending:
            i = futures[fut]
            try:
                value = fut.result()
            except Exception as exc:
                _note(exc, desc, i, "on the Dask cluster")
                raise
            finish(i, value)
            fut.release()
            for j in after.pop(i, []):
                pending.add(submit(j))
    finally:
        for fut in futures:
            fut.cancel()


# ============================================================================ command line
def add_arguments(parser) -> None:
    """Add ``--workers N`` and ``--scheduler ADDRESS`` to an argparse (sub)parser."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="run independent units on N local processes (default: serially)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run independent units on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786)")


def from_args(args):
    """The :func:`parallel` context of parsed ``--workers`` / ``--scheduler`` arguments."""
    workers = getattr(args, "workers", None)
    if workers is not None and workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    return parallel(workers=workers, scheduler=getattr(args, "scheduler", None))


def chunks(n: int, size: int | None) -> list[np.ndarray]:
    """Index blocks ``[0, size), [size, 2 size), ...`` covering ``range(n)`` (one block when ``size`` is None)."""
    n = int(n)
    if size is None or size >= n:
        return [np.arange(n)]
    size = int(size)
    if size < 1:
        raise ValueError(f"units must hold at least one item, got size {size}")
    return [np.arange(s, min(s + size, n)) for s in range(0, n, size)]
