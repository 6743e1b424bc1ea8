"""``simulate`` (agent acts in a task) and ``replay`` (agent follows observed choices).

Both run the agent's single ``decide``/``learn`` definition on NumPy arrays,
vectorised over subjects with one step per trial. :func:`observations` builds
the per-trial inputs from a trials dataset; the likelihood and PyMC models
feed the very same arrays to ``pytensor.scan``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import xarray as xr

from .agents.base import Agent, make_agent
from .backend import NUMPY
from .params import resolve_params
from .schema import ACTION, SUBJECT, TRIAL, EnvSpec, env_spec, make_trials, time_major, validate_trials
from .tasks.base import Task, as_rng, make_task

__all__ = ["simulate", "replay", "Simulation", "observations", "trial_obs"]


class Simulation(NamedTuple):
    """Result of :func:`simulate`."""

    trials: xr.Dataset
    latents: xr.Dataset
    params: xr.Dataset


def trial_obs(env: EnvSpec, state, valid=None, choice=None, reward=None, next_state=None, done=None,
              rt=None, scored=None, loss=None) -> dict:
    """Per-trial observation dict (see ``agents.base.OBS_KEYS``) from raw arrays.

    Works on arrays of any leading shape (``(n,)`` for one step, ``(T, n)``
    for a whole session).
    """
    s = np.asarray(state)
    if s.size and (s.min() < 0 or s.max() >= env.n_states):  # padding rows carry -1
        s = np.clip(s, 0, env.n_states - 1)
    look = env.lookup
    obs = {k: look[k][s] for k in ("items", "avail", "known", "known_value")}
    obs["state"] = s
    obs["valid"] = np.ones(s.shape, bool) if valid is None else np.asarray(valid, bool)
    # the trials whose choice enters the likelihood (a valid trial may be learnt from without being scored)
    obs["scored"] = obs["valid"] if scored is None else obs["valid"] & np.asarray(scored, bool)
    if choice is not None:
        c = np.asarray(choice)
        if c.size and (c.min() < 0 or c.max() >= env.n_actions):  # missed trials carry -1
            c = np.clip(c, 0, env.n_actions - 1)
        obs["choice"] = c
        obs["chosen_item"] = np.take_along_axis(obs["items"], c[..., None], axis=-1)[..., 0]
        r = np.asarray(reward, float)
        obs["reward"] = np.where(np.isnan(r), 0.0, r)
        obs["done"] = np.ones(s.shape) if done is None else np.asarray(done, float)
        ns = np.zeros(s.shape, np.int64) if next_state is None else np.asarray(next_state)
        if ns.size and (ns.min() < 0 or ns.max() >= env.n_states):
            ns = np.clip(ns, 0, env.n_states - 1)
        obs["next_state"] = ns
        obs["next_items"] = look["items"][ns]
        obs["next_avail"] = look["avail"][ns]
        obs["next_known"] = look["known"][ns]
        obs["next_known_value"] = look["known_value"][ns]
        # reaction times stay NaN where absent: only RT observation models read them, and they mask first
        obs["rt"] = np.full(s.shape, np.nan) if rt is None else np.asarray(rt, float)
        # the loss part of the reward (reward = gain + loss), read by gain/loss learners; 0 where absent
        obs["loss"] = np.zeros(s.shape) if loss is None else np.nan_to_num(np.asarray(loss, float))
    return obs


def observations(trials: xr.Dataset) -> tuple[EnvSpec, dict]:
    """Time-major ``(trial, subject, ...)`` observation arrays of a trials dataset."""
    validate_trials(trials)
    env = env_spec(trials)
    tm = {k: time_major(trials, k) for k in ("state", "valid", "choice", "reward", "next_state", "done", "rt")}
    if "scored" in trials:
        tm["scored"] = np.nan_to_num(np.asarray(time_major(trials, "scored"), dtype=float)) == 1.0
    if "loss" in trials:
        tm["loss"] = time_major(trials, "loss")
    return env, trial_obs(env, **tm)


def _latent_dataset(agent: Agent, records: dict, subjects, n_actions: int) -> xr.Dataset:
    data = {}
    for name, arr in records.items():
        arr = np.moveaxis(np.asarray(arr), 0, 1)  # (T, n, ...) -> (n, T, ...)
        dims = (SUBJECT, TRIAL) + agent.latent_dims[name]
        if arr.ndim != len(dims):
            raise ValueError(f"agent {agent.name!r}: latent {name!r} has {arr.ndim} dims, declared {dims}")
        data[name] = (dims, arr)
    coords = {SUBJECT: subjects, TRIAL: np.arange(arr.shape[1]), ACTION: np.arange(n_actions)}
    return xr.Dataset(data, coords=coords, attrs={"agent": agent.name, "options": repr(agent)})


def _keep(agent: Agent, lat: dict) -> dict:
    return {k: v for k, v in lat.items() if k in agent.latent_dims}


def _progress(iterable, enabled, desc):
    if not enabled:
        return iterable
    from .progress import iterate

    return iterate(iterable, True, desc, unit="trials")


def simulate(
    agent: Agent | str,
    task: Task | str,
    *,
    n_subjects: int = 1,
    n_trials: int | None = None,
    params=None,
    rng=None,
    progress: bool | None = None,
) -> Simulation:
    """Let an agent act in a task; return its trials, latents and parameters.

    Parameters
    ----------
    agent, task : Agent or str
        Instances, or registered names (built with default options).
    n_subjects : int
        Number of independent simulated subjects (vectorised).
    n_trials : int, optional
        Decisions per subject. Default: the task's ``default_n_trials``.
    params : dict or xarray.Dataset, optional
        Parameter values, scalars or one per subject. Default: each parameter's default.
    rng : int, numpy.random.Generator or None
        Seed or generator for the task and the choices.
    progress : bool, optional
        Show a progress bar (default: only for more than 10^6 agent-trials).

    Returns
    -------
    Simulation
        ``(trials, latents, params)``: the trials dataset (schema.py), the
        latents on the same grid, and the parameters per subject.
    """
    agent, task = make_agent(agent), make_task(task)
    rng = as_rng(rng)
    n, T = int(n_subjects), int(n_trials if n_trials is not None else task.default_n_trials)
    if n < 1 or T < 1:
        raise ValueError(f"n_subjects and n_trials must be positive, got {n} and {T}")
    agent.check_task(task)
    env = task.env
    p = agent.resolve(params, n)
    s = agent.start(p, env, n, NUMPY)
    ts = task.reset(n, rng)
    cols = {k: [] for k in ("state", "choice", "reward", "next_state", "done")}
    cov = {k: [] for k in task.covariates}
    records: dict[str, list] = {}
    show = progress if progress is not None else n * T > 1_000_000
    for _ in _progress(range(T), show, f"simulate {agent.name} on {task.name}"):
        state = task.observe(ts)
        obs = trial_obs(env, state)
        dec = agent.decide(p, s, obs, NUMPY)
        choice, extra = agent.sample_choice(dec, obs, rng)
        ts, out = task.step(ts, choice, rng)
        rt = extra.pop("rt", None)  # agents with an RT model (fitting.joint.WithRT) also draw reaction times
        obs = trial_obs(env, state, None, choice, out["reward"], out["next_state"], out["done"], rt,
                        loss=out.get("loss"))
        if rt is not None:
            cols.setdefault("rt", []).append(rt)
        s, lat = agent.learn(p, s, obs, dec, NUMPY)
        for k, v in _keep(agent, {**dec, **lat, **extra}).items():
            records.setdefault(k, []).append(v)
        cols["state"].append(state)
        cols["choice"].append(choice)
        for k in ("reward", "next_state", "done"):
            cols[k].append(out[k])
        for k in cov:
            cov[k].append(out[k])
    stacked = {k: np.stack(v, axis=1) for k, v in cols.items()}
    covariates = {k: np.stack(v, axis=1) for k, v in cov.items()}
    trials = make_trials(
        stacked["state"], stacked["choice"], stacked["reward"], rt=stacked.get("rt"), next_state=stacked["next_state"],
        done=stacked["done"], env=env, covariates=covariates,
        attrs={"task": task.name, "task_options": repr(task)},
    )
    latents = _latent_dataset(agent, records, trials[SUBJECT].values, env.n_actions)
    params_ds = xr.Dataset({k: (SUBJECT, v) for k, v in p.items()}, coords={SUBJECT: trials[SUBJECT].values},
                           attrs={"agent": agent.name})
    return Simulation(trials, latents, params_ds)


def replay(agent: Agent | str, trials: xr.Dataset, params=None) -> xr.Dataset:
    """Latents of an agent that follows the observed choices and outcomes.

    Parameters
    ----------
    agent : Agent or str
    trials : xarray.Dataset
        A trials dataset (see :mod:`neurorl.schema`).
    params : dict or xarray.Dataset, optional
        Parameter values, scalars or one per subject (e.g. fitted values). A
        parameter may also vary over trials: an array ``(n_subjects,
        n_trials)``, or a Dataset variable with dims ``(subject, trial)`` (e.g.
        a parameter modulated by a trial-wise covariate; see
        ``fitting.mle``); its value on trial ``t`` is used on that trial and
        its first trial's value at the start.

    Returns
    -------
    xarray.Dataset
        The agent's latents on the trials' ``(subject, trial)`` grid. The state
        is not updated on invalid trials; latents on padding rows are NaN.
    """
    agent = make_agent(agent)
    env, obs_tm = observations(trials)
    T, n = obs_tm["state"].shape
    params, per_trial = _split_per_trial(agent, params, trials, n, T)
    p = agent.resolve(params, n)
    s = agent.start(p, env, n, NUMPY)
    records: dict[str, list] = {}
    for t in range(T):
        if per_trial:
            p = {**p, **{k: v[:, t] for k, v in per_trial.items()}}
        s, lat = agent.step(p, s, {k: v[t] for k, v in obs_tm.items()}, NUMPY)
        for k, v in _keep(agent, lat).items():
            records.setdefault(k, []).append(v)
    latents = _latent_dataset(agent, records, trials[SUBJECT].values, env.n_actions)
    if "trial_index" in trials and bool((trials["trial_index"] < 0).any()):
        latents = latents.where(trials["trial_index"] >= 0)
    return latents


def _split_per_trial(agent: Agent, params, trials: xr.Dataset, n: int, T: int):
    """Separate trial-wise parameters ``(n, T)`` from per-subject ones.

    Returns ``(params, per_trial)``: ``params`` with each trial-wise parameter
    replaced by its first-trial values (so names and bounds are checked by
    ``agent.resolve``), and ``per_trial`` name -> ``(n, T)`` array, every value
    checked against the parameter's bounds.
    """
    if params is None:
        return params, {}
    if hasattr(params, "data_vars"):
        per_trial = {}
        for k in params.data_vars:
            da = params[k]
            if TRIAL in da.dims:
                if set(da.dims) != {SUBJECT, TRIAL}:
                    raise ValueError(f"replay: trial-wise parameter {k!r} must have dims (subject, trial), "
                                     f"has {da.dims}")
                for dim in (SUBJECT, TRIAL):
                    if dim in da.coords and not np.array_equal(da[dim].values, trials[dim].values):
                        raise ValueError(f"replay: parameter {k!r} has other {dim!r} labels than the trials")
                per_trial[k] = np.asarray(da.transpose(SUBJECT, TRIAL).values, dtype=float)
        if not per_trial:
            return params, {}
        params = {k: params[k].values for k in params.data_vars if k not in per_trial}
    else:
        per_trial = {k: np.asarray(v, dtype=float) for k, v in params.items() if np.ndim(v) == 2}
        if not per_trial:
            return params, {}
        params = {k: v for k, v in params.items() if k not in per_trial}
    for k, v in per_trial.items():
        if v.shape != (n, T):
            raise ValueError(f"replay: trial-wise parameter {k!r} has shape {v.shape}; expected (n_subjects, "
                             f"n_trials) = {(n, T)}")
    resolve_params(tuple(p for p in agent.params if p.name in per_trial),
                   {k: v.reshape(-1) for k, v in per_trial.items()}, n * T, owner=agent.name)
    return {**params, **{k: v[:, 0] for k, v in per_trial.items()}}, per_trial
