"""The execution layer (neurorl.parallel): identical results on every executor, killed workers, resumable studies.

The Dask tests start a ``dask.distributed.LocalCluster`` (2 worker processes) inside the test module; the worker that
is killed is one of those processes (it kills itself, by SIGKILL, on its first attempt at a chosen unit).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import neurorl.parallel as par
from neurorl.decoding.nulls import null_test
from neurorl.fitting.recovery import model_recovery

AGENTS = ["q_learning", "rflr"]
TASK = "mouse_bandit"
STUDY = {"n_subjects": 4, "n_trials": 80, "criterion": "bic", "estimator_options": {"n_starts": 2},
         "subjects_per_unit": 4, "rng": 11}  # 2 models x 2 blocks of 4 subjects = 4 units


def _draw(unit, rng):
    return unit + rng.standard_normal(4)


def _draw_and_env(unit, rng):
    from threadpoolctl import threadpool_info

    return {"x": unit + rng.standard_normal(4), "cache": np.array(os.environ.get("NEURORL_CACHE_DIR", "")),
            "xla": np.array(os.environ.get("XLA_FLAGS", "")), "omp": np.array(os.environ.get("OMP_NUM_THREADS", "")),
            "pjrt": np.array(os.environ.get("PJRT_NPROC", "")),
            "trim_env": np.array(os.environ.get("MALLOC_TRIM_THRESHOLD_", "")),
            "malloc": np.array(sorted(par.malloc_for_compute().items()), dtype=object).reshape(-1, 2),
            "mmapped_for_1mib": np.array(_mmapped_bytes_for_1mib()),
            "blas_threads": np.array([p["num_threads"] for p in threadpool_info()] or [1])}


def _mmapped_bytes_for_1mib() -> int:
    """Bytes glibc serves by ``mmap`` (``hblkhd`` of ``mallinfo2``, or of ``mallinfo`` before glibc 2.33) for one
    new 1 MiB array; -1 where the C library is not glibc (then :func:`neurorl.parallel.malloc_for_compute` sets
    nothing either)."""
    import ctypes

    names = ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return -1
    for fn, field in (("mallinfo2", ctypes.c_size_t), ("mallinfo", ctypes.c_int)):
        info = getattr(libc, fn, None)
        if info is not None:
            break
    else:
        return -1

    class MallInfo(ctypes.Structure):
        _fields_ = [(n, field) for n in names]

    info.restype = MallInfo
    before = info().hblkhd
    a = np.ones(2**17)  # 1 MiB, kept alive while the count is read
    after = info().hblkhd
    del a
    return int(after - before)


def _counting(unit, rng, *, log: Path, fail_at: int | None = None):
    """Record the call in ``log`` (one file per call), optionally fail at unit ``fail_at`` (an interruption)."""
    (log / f"call-{unit}-{len(list(log.iterdir()))}").touch()
    if unit == fail_at:
        raise KeyboardInterrupt("interrupted")
    return xr.Dataset({"x": ("i", unit + rng.standard_normal(3))}, attrs={"unit": unit})


def _kill_once(unit, rng, *, marker_dir: str, victim: int):
    """Kill the worker process the first time unit ``victim`` runs (the marker survives the process)."""
    marker = Path(marker_dir) / f"attempt-{unit}"
    if unit == victim and not marker.exists():
        marker.touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return unit + rng.standard_normal(4)


# ============================================================================ seeds and the serial path
def test_unit_seeds_are_the_spawned_children_whatever_the_order():
    kids = np.random.SeedSequence(5).spawn(4)
    for i in (3, 0, 2, 1):  # any order: the seed depends on the index only
        assert np.array_equal(par.unit_seed(5, i).generate_state(4), kids[i].generate_state(4))
    g = np.random.default_rng(5)
    assert np.array_equal(par.unit_seed(g, 2).generate_state(4), kids[2].generate_state(4))
    got = par.map_units(_draw, [10, 20], seed=5)
    for k, (u, x) in enumerate(zip([10, 20], got)):
        assert np.array_equal(x, u + np.random.default_rng(kids[k]).standard_normal(4))
    with pytest.raises(TypeError, match="seed"):
        par.map_units(_draw, [1], seed="x")
    with pytest.raises(ValueError, match="workers"):
        par.Executor(workers=-1)


def test_an_interrupted_study_resumes_and_a_partial_one_is_summarised(tmp_path):
    import functools

    store, log = tmp_path / "store", tmp_path / "log"
    log.mkdir()
    study = {"what": "test", "seed": 3}
    units = list(range(6))
    with pytest.raises(KeyboardInterrupt):
        par.map_units(functools.partial(_counting, log=log, fail_at=3), units, seed=3, store=store, study=study)
    assert sorted(p.name for p in store.glob("unit-*.nc")) == [f"unit-{i:06d}.nc" for i in range(3)]
    partial = par.map_units(_counting, units, seed=3, store=store, study=study, only_stored=True)
    assert [p is None for p in partial] == [False] * 3 + [True] * 3
    assert par.UnitStore(store, study, 6).summary()["n_done"] == 3
    n_calls = len(list(log.iterdir()))
    resumed = par.map_units(functools.partial(_counting, log=log), units, seed=3, store=store, study=study)
    calls = sorted(p.name.split("-")[1] for p in log.iterdir())
    assert len(calls) - n_calls == 3  # only units 3, 4, 5 ran again
    fresh = par.map_units(functools.partial(_counting, log=tmp_path), units, seed=3)
    for a, b in zip(resumed, fresh):
        xr.testing.assert_identical(a, b)
    with pytest.raises(ValueError, match="another study"):
        par.map_units(_counting, units, seed=4, store=store, study={"what": "test", "seed": 4})


# ============================================================================ local processes
def test_local_processes_give_the_serial_results_and_share_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NEURORL_CACHE_DIR", str(tmp_path / "cache"))
    serial = par.map_units(_draw_and_env, range(3), seed=9)
    with par.parallel(workers=2) as ex:
        assert ex.kind == "processes"
        procs = par.map_units(_draw_and_env, range(3), seed=9)
    for a, b in zip(serial, procs):
        assert np.array_equal(a["x"], b["x"])
        assert str(b["cache"]) == str(tmp_path / "cache")
        # every worker computes on one thread (threads=1, the default): XLA, OpenMP and the loaded BLAS pools
        assert {"--xla_cpu_multi_thread_eigen=false", "intra_op_parallelism_threads=1"} <= set(str(b["xla"]).split())
        assert str(b["omp"]) == "1" and set(b["blas_threads"].tolist()) == {1}
        assert str(b["pjrt"]) == "1"  # one JAX execution thread


def test_malloc_for_compute_undoes_the_dask_trim_threshold_only_where_it_is_set(tmp_path):
    """In a process started with Dask's MALLOC_TRIM_THRESHOLD_, a 1 MiB array is an mmap until malloc_for_compute
    has run, and comes from the heap after; without the variable the function sets nothing."""
    import json
    import subprocess
    import sys

    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import test_parallel as t;"
            "import neurorl.parallel as par; before = t._mmapped_bytes_for_1mib(); done = par.malloc_for_compute();"
            "print(json.dumps([before, done, t._mmapped_bytes_for_1mib(), par.malloc_for_compute() is done]))")
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_TRIM_THRESHOLD_"}
    plain = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    assert plain[1] == {} and plain[3]
    dask_like = json.loads(subprocess.run([sys.executable, "-c", code], env={**env, "MALLOC_TRIM_THRESHOLD_": "65536"},
                                          capture_output=True, text=True, check=True).stdout)
    assert dask_like[3]  # once per process
    if not sys.platform.startswith("linux") or dask_like[0] == -1:  # not glibc: the function leaves malloc alone
        assert dask_like[1] == {}
        return
    assert dask_like[1] == par.MALLOC_FOR_COMPUTE == {"M_MMAP_THRESHOLD": 32 * 2**20, "M_TRIM_THRESHOLD": 64 * 2**20}
    assert dask_like[0] >= 2**20  # the frozen 128 KiB threshold: the array is a fresh mmap
    assert dask_like[2] == 0  # after mallopt it comes from the heap


def _keyed(unit, *, marks: str):
    """Units ("A", 0), ("A", 1), ("B", 0), ("B", 1): A's first unit waits (30 s at most) until B's second has
    started, which a barrier after all first units would never allow; A's second unit reports whether A's first had
    finished when it started."""
    import time

    d = Path(marks)
    key, k = unit
    (d / f"{key}{k}-started").touch()
    out = True
    if unit == ("A", 0):
        t_end = time.monotonic() + 30
        while not (d / "B1-started").exists() and time.monotonic() < t_end:
            time.sleep(0.02)
        out = (d / "B1-started").exists()
    elif unit == ("A", 1):
        out = (d / "A0-done").exists()
    (d / f"{key}{k}-done").touch()
    return np.array(out)


def test_units_of_a_compile_key_wait_for_its_first_unit_only(tmp_path):
    units = [("A", 0), ("B", 0), ("B", 1), ("A", 1), ("B", 2)]
    assert par._schedule(list(range(5)), units, lambda u: u[0]) == ([0, 1], {0: [3], 1: [2, 4]})
    assert par._schedule([2, 3, 4], units, lambda u: u[0]) == ([2, 3], {2: [4], 3: []})
    assert par._schedule([0, 1], units, None) == ([0, 1], {})
    import functools

    fn = functools.partial(_keyed, marks=str(tmp_path))
    got = par.map_units(fn, units[:4], client=2, compile_key=lambda u: u[0])
    assert [bool(g) for g in got] == [True] * 4  # B's second unit ran while A's first did; A's second after it


@pytest.mark.slow
def test_a_killed_local_process_is_survived(tmp_path):
    import functools

    fn = functools.partial(_kill_once, marker_dir=str(tmp_path), victim=1)
    got = par.map_units(fn, range(4), seed=2, client=2)
    ref = par.map_units(_draw, range(4), seed=2)
    assert (tmp_path / "attempt-1").exists()
    for a, b in zip(got, ref):
        assert np.array_equal(a, b)


# ============================================================================ a Dask cluster
@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("dask.distributed")
    import dask

    with dask.config.set({"distributed.worker.profile.enabled": False}), distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cl, \
            distributed.Client(cl) as c:
        yield c


@pytest.fixture(scope="module")
def serial_recovery():
    return model_recovery(AGENTS, TASK, **STUDY)


def test_model_recovery_on_a_dask_cluster_equals_serial(client, serial_recovery, tmp_path):
    with par.parallel(client) as ex:
        assert ex.kind == "dask"
        res = model_recovery(AGENTS, TASK, **STUDY, store=tmp_path / "study")
    assert res.attrs["units"] == 4 and res.attrs["n_complete"] == 8
    np.testing.assert_array_equal(res["log_evidence"].values, serial_recovery["log_evidence"].values)
    np.testing.assert_array_equal(res["confusion"].values, serial_recovery["confusion"].values)
    assert len(list((tmp_path / "study").glob("unit-*.nc"))) == 4
    # a rerun on the same store fits nothing (every unit is loaded) and gives the same study
    again = model_recovery(AGENTS, TASK, **STUDY, store=tmp_path / "study")
    xr.testing.assert_identical(again, res)


def test_null_distribution_on_a_dask_cluster_equals_serial(client):
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.standard_normal(60))
    neural = 0.5 * y + rng.standard_normal(60)
    nulls = np.cumsum(rng.standard_normal((25, 60)), axis=1)

    def corr(v):
        return np.corrcoef(neural, v)[0, 1]

    serial = null_test(corr, y, nulls, batch_size=4)
    with par.parallel(client):
        dist = null_test(corr, y, nulls, batch_size=4)
    expected = np.array([np.corrcoef(neural, z)[0, 1] for z in nulls])  # the statistic, by hand
    np.testing.assert_array_equal(dist.null, serial.null)
    np.testing.assert_allclose(dist.null, expected, rtol=0, atol=1e-12)
    assert dist.p == (1 + np.sum(expected >= corr(y))) / 26


def test_dask_workers_compute_on_one_thread_with_the_plain_allocator(client):
    with par.parallel(client):
        got = par.map_units(_draw_and_env, range(2), seed=9)
    for b in got:
        assert str(b["omp"]) == "1" and str(b["pjrt"]) == "1"
        assert str(b["trim_env"]) == "65536"  # what the nanny sets (distributed.nanny.pre-spawn-environ)
        if int(b["mmapped_for_1mib"]) >= 0:  # glibc: the threshold is undone and a 1 MiB array is not an mmap
            assert dict(b["malloc"].tolist()) == par.MALLOC_FOR_COMPUTE
            assert int(b["mmapped_for_1mib"]) == 0
        else:  # not glibc: nothing is set
            assert b["malloc"].size == 0


def test_a_killed_dask_worker_is_survived_and_its_unit_rerun(client, tmp_path):
    import functools

    fn = functools.partial(_kill_once, marker_dir=str(tmp_path), victim=2)
    with par.parallel(client):
        got = par.map_units(fn, range(6), seed=4, store=tmp_path / "s", study={"t": "kill"})
    assert (tmp_path / "attempt-2").exists()  # unit 2 killed its worker once and ran again elsewhere
    ref = par.map_units(_draw, range(6), seed=4)
    for a, b in zip(got, ref):
        assert np.array_equal(a, b)


def test_cli_parallel_options_are_checked(tmp_path, capsys):
    from neurorl.cli import main

    base = ["recover", "--agent", "q_learning", "--task", "bandit", "--subjects", "2", "-o", str(tmp_path / "r.nc")]
    assert main([*base, "--workers", "0"]) == 2
    assert "--workers must be >= 1" in capsys.readouterr().err
    assert main([*base, "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"]) == 2  # mutually exclusive
    assert "not allowed with argument" in capsys.readouterr().err
    assert not (tmp_path / "r.nc").exists()


# ============================================================================ the studies that use the layer
def _dqn_run(seed):
    """A tiny DQN training run (one unit of common.over_seeds)."""
    import neurorl as nr
    from neurorl.agents.deep.dqn import DQN, DQNConfig

    cfg = DQNConfig(warmup_episodes=1, learning_starts=16, batch_size=8)
    agent = DQN(cfg)
    hist = agent.train(nr.make_task("half_triangle", max_steps=12), 3, seed=seed, progress=False)
    weights = np.concatenate([p.detach().numpy().ravel() for p in agent.net_.parameters()])
    return {"loss": np.asarray(hist["loss"].values, float), "weights": weights}


def test_exact_cv_design_cells_and_seed_runs_on_a_dask_cluster_equal_serial(client, tmp_path):
    import warnings

    import neurorl as nr
    from neurorl.agents.deep import common
    from neurorl.fitting import MAP
    from neurorl.fitting.cv import cv_models
    from neurorl.fitting.design import design_study

    sim = nr.simulate("q_learning", TASK, n_subjects=3, n_trials=40, rng=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = {m: MAP(m, n_starts=1, rng=0, progress=False).fit(sim.trials) for m in AGENTS}
    design = dict(n_subjects=2, estimator_options={"n_starts": 1}, seed=5, progress=False)
    serial = {"cv": cv_models(fits, 3), "design": design_study(AGENTS, [TASK], [30, 60], **design),
              "seeds": common.over_seeds(_dqn_run, [0, 1])}
    with par.parallel(client), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = cv_models(fits, 3, store=tmp_path / "cv")
        st = design_study(AGENTS, [TASK], [30, 60], store=tmp_path / "design", **design)
        runs = common.over_seeds(_dqn_run, [0, 1])
    assert len(list((tmp_path / "cv").glob("unit-*.nc"))) == 6  # 2 models x 3 folds
    assert len(list((tmp_path / "design").glob("unit-*.nc"))) == 2  # 2 cells
    for m in AGENTS:
        for v in ("elpd_cv", "theta_fold", "converged"):
            np.testing.assert_array_equal(cv[m].pointwise[v].values, serial["cv"][m].pointwise[v].values)
        assert cv[m].elpd == serial["cv"][m].elpd
    xr.testing.assert_identical(st, serial["design"])
    for s in (0, 1):
        for k in ("loss", "weights"):
            np.testing.assert_array_equal(runs[s][k], serial["seeds"][s][k])
    assert not np.array_equal(runs[0]["weights"], runs[1]["weights"])  # the seeds differ


def _prepend_path(path: str) -> None:
    """Put ``path`` first on a Dask worker's ``sys.path`` (run by ``client.run``)."""
    import sys

    if path not in sys.path:
        sys.path.insert(0, path)


def test_drqn_training_runs_on_a_dask_cluster_equal_serial(client, tmp_path, monkeypatch):
    """analyses/train_drqn_mouse_bandit.py: its five training runs (units of common.over_seeds) sent to a Dask
    cluster by --scheduler give the serial run's evaluation trials, latents, summaries and weights."""
    import importlib.util
    import sys

    import torch

    analyses = Path(__file__).resolve().parents[1] / "analyses"
    spec = importlib.util.spec_from_file_location("train_drqn_mouse_bandit", analyses / "train_drqn_mouse_bandit.py")
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # dataclasses look the module up
    spec.loader.exec_module(mod)
    client.run(_prepend_path, str(analyses))  # the workers import the script's functions as this process does
    # 5 episodes x 2 sessions: replay starts learning after 8 stored sessions (learn_after), so the weights move
    tiny = dict(seed=3, n_episodes=5, episode_length=50, n_envs=2, updates_per_episode=2, ts_episodes=5,
                ts_episode_length=60, ht_episodes=1, ht_eval_rows=60, eval_subjects=2, eval_trials=60,
                fit_tabular=False, progress=False)
    serial = mod.main(mod.Args(**tiny, out_root=str(tmp_path / "serial")))
    dask_ = mod.main(mod.Args(**tiny, out_root=str(tmp_path / "dask"), scheduler=client.scheduler.address))
    a, b = (tmp_path / w / "train_drqn_mouse_bandit_seed3" for w in ("serial", "dask"))
    assert "run serially" in (a / "result.md").read_text()
    assert "run on a Dask cluster (2 workers)" in (b / "result.md").read_text()
    for k in ("trial_level", "timestep", "half_triangle"):
        np.testing.assert_equal(dask_[k], serial[k])
    for cond in ("none", "kl_eval", "kl_train"):
        for kind in ("trials", "latents"):
            with xr.open_dataset(a / f"{kind}_{cond}.nc") as x, xr.open_dataset(b / f"{kind}_{cond}.nc") as y:
                xr.testing.assert_identical(x.load(), y.load())
    weights = {}
    for run, name in (("none", "drqn_mouse_bandit_none.pt"), ("kl", "drqn_mouse_bandit_kl_train.pt"),
                      ("ts", "drqn_timestep_kl_train.pt"), ("ht", "drqn_half_triangle_memory.pt")):
        x, y = (torch.load(d / name, map_location="cpu", weights_only=True)["model"] for d in (a, b))
        assert x.keys() == y.keys()
        for key in x:
            assert torch.equal(x[key], y[key]), (name, key)
        weights[run] = torch.cat([v.ravel() for v in x.values()])
    assert not torch.equal(weights["none"], weights["kl"])  # the penalty changes training: the check can fail


def test_neurorl_design_resumes_after_an_interruption(tmp_path, monkeypatch, capsys):
    import neurorl.fitting.design as design_mod
    from neurorl.cli import main
    from neurorl.results import open_group

    calls = []
    real = design_mod._design_cell

    def cell(c, fail_at=None):
        calls.append(c["n_trials"])
        if c["n_trials"] == fail_at:
            raise KeyboardInterrupt
        return real(c)

    cmd = ["design", "--agent", "q_learning", "--agent", "rflr", "--task", TASK, "--trials", "30", "60",
           "--subjects", "2", "--starts", "1", "--no-figures", "--quiet"]
    store = tmp_path / "cells"
    monkeypatch.setattr(design_mod, "_design_cell", lambda c: cell(c, fail_at=60))
    assert main([*cmd, "--store", str(store), "-o", str(tmp_path / "d.nc")]) == 1  # interrupted at the 2nd cell
    assert "interrupted" in capsys.readouterr().err and not (tmp_path / "d.nc").exists()
    assert len(list(store.glob("unit-*.nc"))) == 1
    calls.clear()
    monkeypatch.setattr(design_mod, "_design_cell", cell)
    assert main([*cmd, "--store", str(store), "-o", str(tmp_path / "d.nc")]) == 0
    assert calls == [60]  # only the missing cell ran
    assert main([*cmd, "--store", str(tmp_path / "fresh"), "-o", str(tmp_path / "fresh.nc")]) == 0
    resumed, fresh = open_group(tmp_path / "d.nc", "study"), open_group(tmp_path / "fresh.nc", "study")
    for v in ("counts", "accuracy", "confusion"):
        np.testing.assert_array_equal(resumed[v].values, fresh[v].values)


@pytest.mark.slow  # PyMC builds and samples two models in each of two runs
def test_hierarchical_fits_of_several_models_on_processes_equal_serial():
    import warnings

    import neurorl as nr
    from neurorl.fitting.bayes_models import fit_bayes_models

    sim = nr.simulate("q_learning", "bandit", n_subjects=3, n_trials=30, rng=4)
    kw = dict(draws=20, tune=20, chains=2, sampler="pymc", progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        serial = fit_bayes_models(["q_learning", "rflr"], sim.trials, random_seed=7, **kw)
        with par.parallel(workers=2):
            procs = fit_bayes_models(["q_learning", "rflr"], sim.trials, random_seed=7, **kw)
    for m in ("q_learning", "rflr"):
        for g in ("posterior", "log_likelihood"):
            xr.testing.assert_equal(procs[m].idata_[g].to_dataset() if hasattr(procs[m].idata_[g], "to_dataset")
                                    else procs[m].idata_[g], serial[m].idata_[g])
        np.testing.assert_array_equal(procs[m].params_.to_array().values, serial[m].params_.to_array().values)
    assert not np.array_equal(serial["q_learning"].idata_.posterior["group_mean"].values[..., 0],
                              serial["rflr"].idata_.posterior["group_mean"].values[..., 0])
