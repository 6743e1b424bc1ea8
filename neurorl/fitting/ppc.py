"""Posterior predictive checks: simulate fitted agents and compare behavioural summaries with the data.

Reference: ``reference/fitting.md`` §6 ("Posterior predictive checks: free simulation (agent makes
its own choices) from posterior draws on the subject's schedule; compare learning curves, stay
probabilities by reward x transition (two-step), P(switch) around block changes and by history
(mouse bandit), P(go) per cue ...; one-step-ahead fits can look fine while free simulations fail").

Contents
--------
:func:`simulate_on_schedule`
    Free simulation of an agent (it makes its own choices) on each subject's own schedule and
    trial count, ``n_reps`` simulated copies per subject, in one vectorised
    :func:`neurorl.simulate` call.
:func:`predictive_check`
    Simulate from fitted parameters (point estimates, posterior or Laplace draws) and compute the
    same behavioural summaries on the data and on every simulated group; returns an
    ``xarray.Dataset`` with observed values, simulated values (dim ``sim``), counts and a
    predictive band.
:func:`plot_ppc`
    One panel per summary: data (points) over the simulated median and band.
:func:`laplace_draws`
    Parameter draws from the Laplace (Gaussian) posterior of a fitted :mod:`~neurorl.fitting.mle`
    estimator.
Summaries (each usable on its own): :func:`learning_curve`, :func:`p_stay`, :func:`p_go_by_cue`,
and, from :mod:`neurorl.behaviour`, ``p_switch_around_block_changes``, ``switch_by_history``,
``two_step_stay``.

Schedules
---------
A *schedule* is the part of a session that does not depend on the subject's choices: the hidden
high port of the mouse bandit (its switches are Markov and independent of choices), the cue order
of go/no-go, the drifting arm means or probabilities of restless bandits, the per-episode reward
probabilities of the Wang et al. bandit and of the two-step task. For these tasks
(:data:`SCHEDULES`) the simulated subject meets exactly the subject's recorded schedule and only
the choice-dependent parts (which arm pays, the two-step transition) are drawn afresh from the
task generator's probabilities. For every other task (stationary bandits, mazes, ...) the outcome
process has no exogenous schedule beyond what the task generator draws, and the agent is simulated
freely with the same task generator (a fresh session per simulated subject) and the subject's own
trial count. ``schedule="free"`` forces free simulation everywhere.

Assumptions and choices
-----------------------
[A1] Trial counts: simulated subject ``i`` makes as many decisions as subject ``i`` has present
     rows (``trial_index >= 0``); later rows are padding (``valid = False``). Missed trials of
     the data (present, not valid) are responded to in the simulation (an agent has no
     miss process); summaries use valid rows only, so they count there in the simulations only.
[A2] Parameters: a dataset with dim ``subject`` (e.g. ``estimator.params_``), aligned by subject
     label; an optional dim ``draw`` holds posterior draws and simulated copy ``k`` uses draw
     ``k mod n_draws``. A fitted estimator may be passed: its point estimates, or with
     ``posterior="laplace"`` draws ``theta ~ N(theta_hat, cov_theta)`` on the unconstrained scale
     (subjects whose Hessian is not positive definite keep the point estimate; a warning says so).
     Trial-wise (covariate-modulated) parameters are not supported (``ValueError``).
[A3] Task options (``p_high``, ``p_correct``, ``sigma_o``, ``p_common``, ...) come from the
     ``task`` passed in, never from the data (recorded sessions carry no generator).
[A4] Schedules beyond a subject's recorded rows (never used under [A1], but simulated because all
     subjects run for the longest session) repeat the last recorded value.
[A5] Summaries are pooled over subjects within a group (data, or one simulated copy of the whole
     group). The band is the central ``level`` interval (default 95 %) of the simulated values
     over copies; it includes the sampling variability of a group of the same size, so data from
     the model itself fall inside it about ``level`` of the time per point.
[A6] ``p_stay``: a stay is a repeat of the choice made at the previous decision *in the same
     state* (the previous trial in single-state tasks, the last visit of the cue otherwise);
     "rewarded" means that previous outcome was > 0 (the convention of :mod:`neurorl.behaviour`).
[A7] ``learning_curve``: the correct choice is the high port (``high_port``), the go response on
     go cues (``go_cue``), the arm with the largest ``p`` / ``reward_prob`` / ``mean`` covariate,
     or, for the stationary ``bandit``, the arm with the largest ``p`` of the task; trials where
     several arms tie are excluded. Positions: ``block_trial`` when recorded (mouse bandit,
     first ``max_position`` block trials), ``trial_in_episode`` when recorded, else the trial
     position in bins of ``bin_size`` valid trials.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..agents.base import Agent, make_agent
from ..behaviour import decision_rows, p_switch_around_block_changes, switch_by_history, two_step_stay
from ..schema import SUBJECT, TRIAL, validate_trials
from ..simulate import simulate
from ..tasks.base import Task, as_rng, make_task

__all__ = [
    "SCHEDULES", "register_schedule", "simulate_on_schedule", "predictive_check", "plot_ppc", "laplace_draws",
    "learning_curve", "p_stay", "p_go_by_cue", "correct_choice", "SUMMARIES", "SIM",
]

SIM = "sim"
DRAW = "draw"


# ============================================================================ schedules
class ScheduledTask(Task):
    """Base of the schedule-replaying wrappers: a task that follows recorded exogenous variables.

    ``arrays`` are ``(n, T, ...)`` recorded schedules (already tiled for the simulated copies);
    ``ts["t"]`` counts the rows played. Subclasses implement :meth:`_outcome`.
    """

    def __init__(self, base: Task, arrays: dict[str, np.ndarray]):
        super().__init__(**base.options)
        self.base = base
        self.name = base.name  # agents restricted to some tasks check the name
        self.covariates = dict(base.covariates)
        self.episodic = base.episodic
        self._env = base.env
        self.arrays = arrays
        self.n, self.T = next(iter(arrays.values())).shape[:2]

    def _at(self, name: str, t: np.ndarray) -> np.ndarray:
        arr = self.arrays[name]
        return arr[np.arange(arr.shape[0]), np.minimum(t, self.T - 1)]

    def reset(self, n, rng):
        if n != self.n:
            raise ValueError(f"schedule of task {self.name!r} holds {self.n} subjects, simulation asked for {n}")
        return {"t": np.zeros(n, np.int64)}

    def observe(self, ts):
        return np.zeros(ts["t"].shape[0], np.int64)

    def step(self, ts, action, rng):
        action = self.check_action(ts, action)
        out = self._outcome(ts, action, rng)
        return {**ts, **out.pop("_ts", {}), "t": ts["t"] + 1}, out

    def _outcome(self, ts, action, rng) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"ScheduledTask({self.base!r}, rows={self.T})"


def _one_state(n):
    return {"next_state": np.zeros(n, np.int64), "done": np.ones(n, bool)}


class _MouseBanditSchedule(ScheduledTask):
    def _outcome(self, ts, action, rng):
        n, t = action.shape[0], ts["t"]
        z = self._at("high_port", t).astype(np.int64)
        p = self.options["p_high"]
        reward = (rng.random(n) < np.where(action == z, p, 1.0 - p)).astype(float)
        return {"reward": reward, **_one_state(n), "high_port": z, "block_trial": self._at("block_trial", t)}


class _GoNoGoSchedule(ScheduledTask):
    def observe(self, ts):
        return self._at("state", ts["t"]).astype(np.int64)

    def _outcome(self, ts, action, rng):
        base, t, n = self.base, ts["t"], action.shape[0]
        cue = self.observe(ts)
        go_cue, win_cue = base._go[cue], base._win[cue]
        correct = (action == 1) == go_cue
        p = self.options["p_correct"]
        fav = rng.random(n) < np.where(correct, p, 1.0 - p)
        reward = np.where(win_cue, np.where(fav, 1.0, 0.0), np.where(fav, 0.0, -1.0))
        nxt = self._at("state", t + 1).astype(np.int64)
        return {"reward": reward, "next_state": nxt, "done": np.ones(n, bool), "go_cue": go_cue, "win_cue": win_cue}


class _RestlessBanditSchedule(ScheduledTask):
    def _outcome(self, ts, action, rng):
        n = action.shape[0]
        mu = self._at("mean", ts["t"])
        pay = mu[np.arange(n), action] + self.options["sigma_o"] * rng.standard_normal(n)
        if self.options["rounded"]:
            pay = np.round(pay)
        return {"reward": pay, **_one_state(n), "mean": mu}


class _RestlessBernoulliSchedule(ScheduledTask):
    def _outcome(self, ts, action, rng):
        n = action.shape[0]
        p = self._at("reward_prob", ts["t"])
        reward = (rng.random(n) < p[np.arange(n), action]).astype(float)
        return {"reward": reward, **_one_state(n), "reward_prob": p}


class _WangBanditSchedule(ScheduledTask):
    def _outcome(self, ts, action, rng):
        n, t = action.shape[0], ts["t"]
        p = self._at("p", t)
        reward = (rng.random(n) < p[np.arange(n), action]).astype(float)
        return {"reward": reward, "next_state": np.zeros(n, np.int64), "done": self._at("done", t).astype(bool),
                "episode": self._at("episode", t), "trial_in_episode": self._at("trial_in_episode", t), "p": p}


class _TwoStepSchedule(ScheduledTask):
    """Two-step: the recorded per-episode reward probabilities; transitions and outcomes drawn afresh."""

    def __init__(self, base, arrays, probs):
        super().__init__(base, arrays)
        self.probs = probs  # (n, E, 4)

    def reset(self, n, rng):
        ts = super().reset(n, rng)
        return {**ts, "s": np.zeros(n, np.int64), "common": np.zeros(n, bool), "episode": np.zeros(n, np.int64)}

    def observe(self, ts):
        return ts["s"].copy()

    def _outcome(self, ts, action, rng):
        e = np.minimum(ts["episode"], self.probs.shape[1] - 1)
        p = self.probs[np.arange(action.shape[0]), e]
        out, out["_ts"] = self.base.row_outcome(ts, p, action, rng)
        return out


def _filled(trials: xr.Dataset, name: str, present: np.ndarray) -> np.ndarray:
    """A recorded (subject, trial[, ...]) variable, each subject's recorded rows first, then the last
    recorded value repeated ([A1], [A4])."""
    if name not in trials:
        raise ValueError(f"the data lack the schedule variable {name!r} that task {trials.attrs.get('task', '?')!r} "
                         f"replays; pass schedule='free' to simulate freely with the task generator")
    arr = np.asarray(trials[name].transpose(SUBJECT, TRIAL, ...).values)
    n, T = present.shape
    counts = present.sum(axis=1)
    # recorded rows first (stable), then padding; rows past the count repeat the last recorded row
    order = np.argsort(~present, axis=1, kind="stable")
    idx = np.where(np.arange(T)[None, :] < counts[:, None], order,
                   order[np.arange(n), np.maximum(counts - 1, 0)][:, None])
    return arr[np.arange(n)[:, None], idx]


def _schedule_mouse(task, trials, present):
    hp = _filled(trials, "high_port", present)
    if "block_trial" in trials:
        bt = _filled(trials, "block_trial", present)
    else:
        bt = np.zeros_like(hp)
        for t in range(1, hp.shape[1]):
            bt[:, t] = np.where(hp[:, t] == hp[:, t - 1], bt[:, t - 1] + 1, 0)
    return _MouseBanditSchedule(task, {"high_port": hp, "block_trial": bt})


def _schedule_gonogo(task, trials, present):
    return _GoNoGoSchedule(task, {"state": _filled(trials, "state", present)})


def _schedule_restless(task, trials, present):
    return _RestlessBanditSchedule(task, {"mean": _filled(trials, "mean", present).astype(float)})


def _schedule_restless_bernoulli(task, trials, present):
    return _RestlessBernoulliSchedule(task, {"reward_prob": _filled(trials, "reward_prob", present).astype(float)})


def _schedule_wang(task, trials, present):
    arrays = {k: _filled(trials, k, present) for k in ("p", "episode", "trial_in_episode", "done")}
    arrays["p"] = arrays["p"].astype(float)
    return _WangBanditSchedule(task, arrays)


def _schedule_two_step(task, trials, present):
    from ..tasks.two_step import P_NAMES

    ep = _filled(trials, "episode", present).astype(np.int64)
    P = np.stack([_filled(trials, k, present).astype(float) for k in P_NAMES], axis=-1)  # (n, T, 4)
    n = ep.shape[0]
    E = int(ep.max()) + 1
    probs = np.empty((n, E, 4))
    for i in range(n):
        # first row of each recorded episode; episodes never reached repeat the last known ones
        first = np.full(E, -1)
        rows = np.arange(ep.shape[1])[::-1]
        first[ep[i, rows]] = rows
        known = first >= 0
        idx = np.maximum.accumulate(np.where(known, np.arange(E), 0))
        probs[i] = P[i, np.maximum(first[idx], 0)]
    return _TwoStepSchedule(task, {"episode": ep}, probs)


#: task name -> builder(task, trials, present) of a :class:`ScheduledTask` replaying the data's schedule
SCHEDULES: dict[str, Callable[[Task, xr.Dataset, np.ndarray], Task]] = {
    "mouse_bandit": _schedule_mouse,
    "go_nogo": _schedule_gonogo,
    "restless_bandit": _schedule_restless,
    "restless_bernoulli": _schedule_restless_bernoulli,
    "wang_bandit": _schedule_wang,
    "two_step": _schedule_two_step,
}


def register_schedule(task_name: str):
    """Decorator: register ``builder(task, trials, present) -> Task`` replaying a task's schedule.

    ``trials`` are the recorded trials (tiled for the simulated copies), ``present`` the
    ``(subject, trial)`` mask of recorded rows; the returned task must accept ``reset(n)`` with
    ``n`` the number of subjects of ``trials``.
    """
    if not isinstance(task_name, str) or not task_name:
        raise ValueError(f"register_schedule: task_name must be a non-empty string, got {task_name!r}")

    def deco(fn):
        if not callable(fn):
            raise TypeError(f"register_schedule({task_name!r}) expects a callable builder")
        SCHEDULES[task_name] = fn
        return fn

    return deco


# ============================================================================ parameters
def laplace_draws(estimator, n_draws: int, *, rng=None) -> xr.Dataset:
    """Parameter draws from the Laplace posterior ``N(theta_hat, cov_theta)`` of a fitted estimator.

    Parameters
    ----------
    estimator : fitted :class:`~neurorl.fitting.mle.MLE`, ``MAP`` or ``EMMAP``
    n_draws : int
    rng : int, numpy.random.Generator or None

    Returns
    -------
    xarray.Dataset
        One variable per parameter, dims ``(draw, subject)``, on the constrained scale. Subjects
        whose Hessian was not positive definite keep their point estimate in every draw.
    """
    res = getattr(estimator, "result_", None)
    if res is None or "theta" not in res or "cov_theta" not in res:
        raise ValueError("laplace_draws: pass a fitted neurorl.fitting.mle estimator (with result_.theta and "
                         "result_.cov_theta)")
    layout = estimator.layout_
    if layout.has_covariates:
        raise ValueError("laplace_draws: estimators with trial-wise covariates are not supported")
    n_draws = int(n_draws)
    if n_draws < 1:
        raise ValueError(f"laplace_draws: n_draws must be >= 1, got {n_draws}")
    rng = as_rng(rng)
    theta = res["theta"].transpose(SUBJECT, "param").values  # (n, D)
    cov = res["cov_theta"].transpose(SUBJECT, "param", "param_").values
    n, D = theta.shape
    ok = np.all(np.isfinite(cov), axis=(1, 2))
    if not ok.all():
        warnings.warn(f"laplace_draws: {int((~ok).sum())} subject(s) have no positive-definite Hessian; they keep "
                      "their point estimate in every draw", UserWarning, stacklevel=2)
    z = rng.standard_normal((n_draws, n, D))
    draws = np.repeat(theta[None], n_draws, axis=0)
    if ok.any():
        L = np.linalg.cholesky(0.5 * (cov[ok] + np.transpose(cov[ok], (0, 2, 1))))
        draws[:, ok] = theta[ok][None] + np.einsum("nij,knj->kni", L, z[:, ok])
    bound = float(getattr(estimator, "bound", np.inf))
    draws = np.clip(draws, -bound, bound)
    spec = {p.name: p for p in estimator.agent_.params}
    out = {name: ((DRAW, SUBJECT), spec[name].to_constrained(draws[:, :, base])) for name, base, _ in layout.terms}
    return xr.Dataset(out, coords={DRAW: np.arange(n_draws), SUBJECT: res[SUBJECT].values},
                      attrs={"posterior": "laplace"})


def _param_table(params, agent: Agent, subjects: np.ndarray, n_reps: int, *, posterior=None, rng=None):
    """``{name: (n * n_reps,)}`` constrained values; copy ``k`` of subject ``i`` at ``k * n + i``."""
    n = subjects.size
    if hasattr(params, "params_") and hasattr(params, "result_"):  # a fitted estimator
        if getattr(params, "layout_", None) is not None and params.layout_.has_covariates:
            raise ValueError("predictive checks with trial-wise (covariate-modulated) parameters are not supported; "
                             "fit without covariates")
        if posterior == "laplace":
            params = laplace_draws(params, n_reps, rng=rng)
        elif posterior in (None, "point"):
            params = params.params_
        else:
            raise ValueError(f"posterior must be 'point' or 'laplace', got {posterior!r}")
    elif posterior not in (None, "point"):
        raise ValueError("posterior='laplace' needs a fitted estimator as params")
    if params is None:
        params = {}
    if isinstance(params, xr.Dataset):
        for k in params.data_vars:
            if TRIAL in params[k].dims:
                raise ValueError(f"parameter {k!r} varies over trials; predictive checks support per-subject "
                                 "parameters only")
        ds = params
        if SUBJECT in ds.dims:
            have = set(ds[SUBJECT].values.tolist())
            missing = [s for s in subjects.tolist() if s not in have]
            if missing:
                raise ValueError(f"params lack subject(s) {missing[:8]} of the trials (aligned by label)")
            ds = ds.sel({SUBJECT: subjects})
        out = {}
        for k in ds.data_vars:
            da = ds[k]
            extra = set(da.dims) - {SUBJECT, DRAW}
            if extra:
                raise ValueError(f"parameter {k!r} has unexpected dims {sorted(extra)}; allowed: subject, draw")
            da = da.expand_dims({d: 1 for d in (DRAW, SUBJECT) if d not in da.dims}).transpose(DRAW, SUBJECT)
            v = np.asarray(da.values, float)
            v = np.broadcast_to(v, (v.shape[0], n))
            out[k] = v[np.arange(n_reps) % v.shape[0]].reshape(-1)
        return out
    if isinstance(params, Mapping):
        out = {}
        for k, v in params.items():
            v = np.asarray(v, float)
            if v.ndim == 0:
                v = np.full(n, float(v))
            if v.shape != (n,):
                raise ValueError(f"parameter {k!r} has shape {v.shape}; expected a scalar or one value per subject "
                                 f"({n},) in the order of the trials' subjects")
            out[k] = np.tile(v, n_reps)
        return out
    raise TypeError(f"params must be a fitted estimator, an xarray.Dataset or a dict, got {type(params).__name__}")


# ============================================================================ simulation
def simulate_on_schedule(
    agent: Agent | str,
    trials: xr.Dataset,
    task: Task | str,
    params=None,
    *,
    n_reps: int = 1,
    schedule: str = "auto",
    posterior: str | None = None,
    rng=None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Free simulation of ``agent`` on each subject's own schedule and trial count.

    Parameters
    ----------
    agent : Agent or str
    trials : xarray.Dataset
        Recorded (or simulated) trials whose subjects' schedules and trial counts are reused.
    task : Task or str
        The task generator (its options: reward probabilities, noise levels ... [A3]).
    params : fitted estimator, xarray.Dataset or dict, optional
        Per-subject parameters, aligned by subject label ([A2]); default: the agent's defaults.
    n_reps : int, default 1
        Simulated copies of every subject.
    schedule : {"auto", "free"}
        ``"auto"``: replay the recorded schedule when the task is in :data:`SCHEDULES`, else free
        simulation with the task generator; ``"free"``: always the task generator.
    posterior : {None, "point", "laplace"}
        With an estimator as ``params``: its point estimates (default) or Laplace draws.
    rng : int, numpy.random.Generator or None
    progress : bool, optional
        Progress bar of :func:`neurorl.simulate`.

    Returns
    -------
    xarray.Dataset
        A trials dataset of ``n_subjects * n_reps`` subjects; subject ``k * n + i`` is copy ``k``
        of data subject ``i``, with coordinates ``sim`` (= k) and ``source_subject`` (the data
        label) on the subject dim. Attribute ``schedule`` says ``"recorded"`` or ``"free"``.
    """
    agent, task = make_agent(agent), make_task(task)
    validate_trials(trials)
    rng = as_rng(rng)
    n_reps = int(n_reps)
    if n_reps < 1:
        raise ValueError(f"n_reps must be >= 1, got {n_reps}")
    if schedule not in ("auto", "free"):
        raise ValueError(f"schedule must be 'auto' or 'free', got {schedule!r}")
    if task.env.n_actions != int(trials.attrs["n_actions"]) or task.env.n_states != int(trials.attrs["n_states"]):
        raise ValueError(f"task {task.name!r} has {task.env.n_states} states x {task.env.n_actions} actions; the "
                         f"trials have {trials.attrs['n_states']} x {trials.attrs['n_actions']}")
    subjects = trials[SUBJECT].values
    n = subjects.size
    present = trials["trial_index"].values >= 0 if "trial_index" in trials else np.ones(trials["valid"].shape, bool)
    counts = present.sum(axis=1)
    if np.any(counts == 0):
        raise ValueError("simulate_on_schedule: some subjects have no recorded rows")
    T = int(counts.max())
    p = _param_table(params, agent, subjects, n_reps, posterior=posterior, rng=rng)
    p_rep = np.tile(present, (n_reps, 1))
    use_schedule = schedule == "auto" and task.name in SCHEDULES
    if use_schedule:
        tiled = trials.isel({SUBJECT: np.tile(np.arange(n), n_reps)})
        sim_task = SCHEDULES[task.name](task, tiled, p_rep)
    else:
        sim_task = task
    sim = simulate(agent, sim_task, n_subjects=n * n_reps, n_trials=T, params=p, rng=rng, progress=progress)
    out = sim.trials
    # each simulated subject makes as many decisions as its source subject has recorded rows ([A1])
    pad = np.arange(T)[None, :] >= np.tile(counts, n_reps)[:, None]
    if pad.any():
        keep = xr.DataArray(~pad, dims=(SUBJECT, TRIAL))
        out = out.copy()
        out["valid"] = out["valid"].where(keep, False)
        out["choice"] = out["choice"].where(keep, -1)
        out["reward"] = out["reward"].where(keep)
        out["trial_index"] = out["trial_index"].where(keep, -1)
    out = out.assign_coords({SIM: (SUBJECT, np.repeat(np.arange(n_reps), n)),
                             "source_subject": (SUBJECT, np.tile(subjects, n_reps))})
    out.attrs.update(schedule="recorded" if use_schedule else "free", task=task.name, task_options=repr(task),
                     agent=agent.name)
    return validate_trials(out)


# ============================================================================ summaries
def correct_choice(trials: xr.Dataset, task: Task | None = None) -> np.ndarray | None:
    """``(subject, trial)`` float array: 1 where the choice was the correct one, 0 where not, NaN elsewhere.

    See assumption [A7]. Returns None when the trials carry no notion of a correct choice.
    """
    c = trials["choice"].transpose(SUBJECT, TRIAL).values
    rows = decision_rows(trials)
    hit = None
    if "high_port" in trials:
        hit = (c == trials["high_port"].transpose(SUBJECT, TRIAL).values).astype(float)
    elif "go_cue" in trials:
        hit = ((c == 1) == trials["go_cue"].transpose(SUBJECT, TRIAL).values.astype(bool)).astype(float)
    else:
        vals = None
        for k in ("p", "reward_prob", "mean"):
            if k in trials and trials[k].ndim == 3:
                vals = trials[k].transpose(SUBJECT, TRIAL, ...).values.astype(float)
                break
        if vals is None and task is not None and task.name == "bandit":
            vals = np.broadcast_to(np.asarray(task.options["p"], float), c.shape + (len(task.options["p"]),))
        if vals is None:
            return None
        best = vals.max(axis=-1)
        n_best = (vals == best[..., None]).sum(axis=-1)
        cc = np.clip(c, 0, vals.shape[-1] - 1)
        chosen = np.take_along_axis(vals, cc[..., None], axis=-1)[..., 0]
        hit = np.where(n_best == 1, (chosen == best).astype(float), np.nan)
    return np.where(rows, hit, np.nan)


def learning_curve(trials: xr.Dataset, *, task: Task | None = None, by: str = "auto", bin_size: int | None = None,
                   max_position: int = 40, n_positions: int | None = None) -> xr.Dataset:
    """P(correct choice) by position: trial bin, block trial or trial within episode ([A7]).

    Parameters
    ----------
    trials : xarray.Dataset
    task : Task, optional
        Needed for the stationary ``bandit`` (its ``p`` defines the correct arm).
    by : {"auto", "trial", "block_trial", "trial_in_episode"}
    bin_size : int, optional
        Trials per bin for ``by="trial"`` (default: a twentieth of the longest session, at least 1).
    max_position : int, default 40
        Last block trial shown for ``by="block_trial"``.
    n_positions : int, optional
        Number of positions (bins) to report; default from the data. Pass the data's value when
        summarising simulations so that the grids agree.

    Returns
    -------
    xarray.Dataset
        ``p_correct`` and ``n`` on dim ``by`` (coordinate: first trial of the bin, block trial or
        trial in episode); attrs ``by`` and ``bin_size``.
    """
    hit = correct_choice(trials, task)
    if hit is None:
        raise ValueError("learning_curve: the trials define no correct choice (no high_port, go_cue, p, reward_prob "
                         "or mean covariate, and no bandit task given)")
    if by == "auto":
        by = "block_trial" if "block_trial" in trials else "trial_in_episode" if "trial_in_episode" in trials \
            else "trial"
    rows = np.isfinite(hit)
    if by == "trial":
        # position among the subject's valid decisions
        pos = np.cumsum(decision_rows(trials), axis=1) - 1
        if bin_size is None:
            bin_size = max(1, int(math.ceil(pos.max(initial=0) / 20.0)))
        key = np.where(rows, pos // int(bin_size), -1)
        size = int(bin_size)
    elif by in ("block_trial", "trial_in_episode"):
        if by not in trials:
            raise ValueError(f"learning_curve: by={by!r} but the trials have no {by!r} covariate")
        key = trials[by].transpose(SUBJECT, TRIAL).values.astype(np.int64)
        if by == "block_trial":
            rows = rows & (key <= max_position)
        key = np.where(rows, key, -1)
        size = 1
    else:
        raise ValueError(f"learning_curve: by must be 'auto', 'trial', 'block_trial' or 'trial_in_episode', got {by!r}")
    K = int(n_positions) if n_positions is not None else int(key.max(initial=-1)) + 1
    keep = rows & (key >= 0) & (key < K)
    n = np.bincount(key[keep], minlength=K)[:K]
    s = np.bincount(key[keep], weights=hit[keep], minlength=K)[:K]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return xr.Dataset({"p_correct": (by, p), "n": (by, n)}, coords={by: np.arange(K) * size},
                      attrs={"by": by, "bin_size": size})


def p_stay(trials: xr.Dataset) -> xr.Dataset:
    """P(repeat the previous choice in the same state) by that previous outcome ([A6]).

    Returns
    -------
    xarray.Dataset
        ``p_stay`` and ``n`` on dim ``prev_outcome`` (``"rewarded"``, ``"unrewarded"``).
    """
    mask = decision_rows(trials)
    c = trials["choice"].transpose(SUBJECT, TRIAL).values
    r = np.nan_to_num(trials["reward"].transpose(SUBJECT, TRIAL).values.astype(float)) > 0
    st = trials["state"].transpose(SUBJECT, TRIAL).values
    s_sum = np.zeros(2)
    n = np.zeros(2, np.int64)
    for i in range(c.shape[0]):
        rows = np.flatnonzero(mask[i])
        if rows.size < 2:
            continue
        ci, ri, si = c[i, rows], r[i, rows], st[i, rows]
        order = np.lexsort((np.arange(rows.size), si))  # by state, then time
        cs, rs, ss = ci[order], ri[order], si[order]
        same = ss[1:] == ss[:-1]
        stay = (cs[1:] == cs[:-1])[same]
        prev = rs[:-1][same]
        for k, sel in ((0, prev), (1, ~prev)):
            n[k] += int(sel.sum())
            s_sum[k] += float(stay[sel].sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, s_sum / np.maximum(n, 1), np.nan)
    return xr.Dataset({"p_stay": ("prev_outcome", p), "n": ("prev_outcome", n)},
                      coords={"prev_outcome": ["rewarded", "unrewarded"]})


def p_go_by_cue(trials: xr.Dataset) -> xr.Dataset:
    """P(go) (action 1) per cue (state) of the go/no-go task.

    Returns
    -------
    xarray.Dataset
        ``p_go`` and ``n`` on dim ``cue`` (the state index).
    """
    mask = decision_rows(trials)
    c = trials["choice"].transpose(SUBJECT, TRIAL).values
    st = trials["state"].transpose(SUBJECT, TRIAL).values
    S = int(trials.attrs["n_states"])
    n = np.bincount(st[mask], minlength=S)
    s = np.bincount(st[mask], weights=(c[mask] == 1).astype(float), minlength=S)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, s / np.maximum(n, 1), np.nan)
    return xr.Dataset({"p_go": ("cue", p), "n": ("cue", n)}, coords={"cue": np.arange(S)})


def _s_learning(trials, ctx):
    ds = learning_curve(trials, task=ctx["task"], by=ctx.get("lc_by", "auto"), bin_size=ctx.get("lc_bin"),
                        max_position=ctx.get("max_position", 40), n_positions=ctx.get("lc_n"))
    ctx.setdefault("lc_by", ds.attrs["by"])
    ctx.setdefault("lc_bin", ds.attrs["bin_size"])
    ctx.setdefault("lc_n", ds.sizes[ds.attrs["by"]])
    return ds["p_correct"], ds["n"]


def _s_stay(trials, ctx):
    ds = p_stay(trials)
    return ds["p_stay"], ds["n"]


def _s_two_step(trials, ctx):
    ds = two_step_stay(trials)
    return ds["p_stay"], ds["n"]


def _s_block_switch(trials, ctx):
    ds = p_switch_around_block_changes(trials, ctx.get("window", (-10, 20)))
    return ds["p_switch"], ds["n_switch"]


def _s_block_high(trials, ctx):
    ds = p_switch_around_block_changes(trials, ctx.get("window", (-10, 20)))
    return ds["p_high"], ds["n"]


def _s_history(trials, ctx):
    ds = switch_by_history(trials, ctx.get("n_back", 3))
    return ds["p_switch"], ds["n"]


def _s_go(trials, ctx):
    ds = p_go_by_cue(trials)
    return ds["p_go"], ds["n"]


#: name -> (function(trials, ctx) -> (value DataArray, count DataArray), requirement(trials, task) -> bool, label)
SUMMARIES: dict[str, tuple] = {
    "learning_curve": (_s_learning, lambda tr, task: correct_choice(tr.isel({SUBJECT: slice(0, 1)}), task)
                       is not None, "P(correct)"),
    "p_stay": (_s_stay, lambda tr, task: int(tr.attrs["n_actions"]) >= 2 and "stage" not in tr, "P(stay)"),
    "two_step_stay": (_s_two_step, lambda tr, task: all(k in tr for k in ("stage", "common", "episode")),
                      "P(stay), first stage"),
    "switch_around_block_change": (_s_block_switch, lambda tr, task: "high_port" in tr, "P(switch)"),
    "high_around_block_change": (_s_block_high, lambda tr, task: "high_port" in tr, "P(high port)"),
    "switch_by_history": (_s_history, lambda tr, task: "high_port" in tr and int(tr.attrs["n_actions"]) == 2,
                          "P(switch)"),
    "p_go": (_s_go, lambda tr, task: "go_cue" in tr, "P(go)"),
}


def _auto_summaries(trials, task) -> list[str]:
    return [k for k, (_, ok, _) in SUMMARIES.items() if ok(trials, task)]


# ============================================================================ the check
def predictive_check(
    agent: Agent | str,
    trials: xr.Dataset,
    params=None,
    *,
    task: Task | str,
    n_sims: int = 20,
    summaries: Sequence[str] | str = "auto",
    schedule: str = "auto",
    posterior: str | None = None,
    level: float = 0.95,
    window=(-10, 20),
    n_back: int = 3,
    bin_size: int | None = None,
    max_position: int = 40,
    rng=None,
    progress: bool | None = None,
) -> xr.Dataset:
    """Posterior predictive check: behavioural summaries of the data and of simulations from the fit.

    Every simulated copy is a whole group: each subject simulated once on its own schedule and
    trial count (:func:`simulate_on_schedule`) with its own parameters; the ``n_sims`` copies run
    in one vectorised simulation.

    Parameters
    ----------
    agent : Agent or str
        The fitted model.
    trials : xarray.Dataset
        The data.
    params : fitted estimator, xarray.Dataset or dict, optional
        Fitted parameters (e.g. ``MAP(...).fit(trials)`` or its ``params_``), optionally with a
        ``draw`` dim of posterior draws ([A2]).
    task : Task or str
        The task generator (options matter: [A3]).
    n_sims : int, default 20
        Simulated groups.
    summaries : "auto" or list of str
        Names from :data:`SUMMARIES`; "auto" takes every summary the data support
        (learning curve, P(stay | reward) -- or by reward x transition for two-step --, P(switch)
        and P(high port) around block changes and P(switch) by history for the mouse bandit,
        P(go) per cue for go/no-go).
    schedule : {"auto", "free"}
        See :func:`simulate_on_schedule`.
    posterior : {None, "point", "laplace"}
        With an estimator as ``params``: point estimates or Laplace draws (one per copy).
    level : float, default 0.95
        Central probability of the simulated band.
    window, n_back, bin_size, max_position
        Options of the block-change window, the history words and the learning curve.
    rng : int, numpy.random.Generator or None
    progress : bool, optional

    Returns
    -------
    xarray.Dataset
        For each summary ``s``: ``s`` (observed), ``s_n`` (observed counts), ``s_sim`` (dim
        ``sim`` first), ``s_lo`` / ``s_hi`` (the band) and ``s_median``; scalar ``s_coverage``
        (fraction of the observed points, with data on both sides, inside the band). Attributes
        list the summaries, their labels, the schedule used and ``level``.
    """
    agent, task = make_agent(agent), make_task(task)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    n_sims = int(n_sims)
    if n_sims < 1:
        raise ValueError(f"n_sims must be >= 1, got {n_sims}")
    names = _auto_summaries(trials, task) if summaries == "auto" else list(summaries)
    unknown = [s for s in names if s not in SUMMARIES]
    if unknown:
        raise ValueError(f"unknown summaries {unknown}; available: {sorted(SUMMARIES)}")
    if not names:
        raise ValueError("no summary applies to these trials; pass summaries=[...] explicitly")
    sims = simulate_on_schedule(agent, trials, task, params, n_reps=n_sims, schedule=schedule,
                                posterior=posterior, rng=rng, progress=progress)
    n = trials.sizes[SUBJECT]
    ctx = {"task": task, "window": window, "n_back": n_back, "lc_bin": bin_size, "max_position": max_position}
    if bin_size is None:
        ctx.pop("lc_bin")
    out: dict[str, Any] = {}
    labels = {}
    q_lo, q_hi = (1.0 - level) / 2.0, 1.0 - (1.0 - level) / 2.0
    for name in names:
        fn, _, label = SUMMARIES[name]
        obs, cnt = fn(trials, ctx)
        vals = []
        for k in range(n_sims):
            v, _ = fn(sims.isel({SUBJECT: slice(k * n, (k + 1) * n)}), ctx)
            vals.append(v.reindex_like(obs) if v.dims == obs.dims else v)
        simv = xr.concat(vals, dim=SIM).assign_coords({SIM: np.arange(n_sims)})
        arr = simv.values
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices
            lo = np.nanquantile(arr, q_lo, axis=0)
            hi = np.nanquantile(arr, q_hi, axis=0)
            med = np.nanmedian(arr, axis=0)
        out[name] = obs
        out[f"{name}_n"] = cnt
        out[f"{name}_sim"] = simv
        out[f"{name}_lo"] = (obs.dims, lo)
        out[f"{name}_hi"] = (obs.dims, hi)
        out[f"{name}_median"] = (obs.dims, med)
        both = np.isfinite(obs.values) & np.isfinite(lo) & np.isfinite(hi)
        inside = (obs.values >= lo) & (obs.values <= hi)
        out[f"{name}_coverage"] = ((), float(inside[both].mean()) if both.any() else float("nan"))
        labels[name] = label
    ds = xr.Dataset(out)
    ds.attrs.update(summaries=list(names), labels=repr(labels), schedule=sims.attrs["schedule"], level=level,
                    agent=agent.name, task=task.name, n_sims=n_sims,
                    learning_curve_by=ctx.get("lc_by", ""))
    return ds


def plot_ppc(result: xr.Dataset, *, summaries: Sequence[str] | None = None, axes=None):
    """Plot a :func:`predictive_check` result: data (black points) over the simulated median and band.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :func:`predictive_check`.
    summaries : list of str, optional
        Which summaries (default: all in the result).
    axes : sequence of matplotlib Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    if not isinstance(result, xr.Dataset) or "summaries" not in result.attrs:
        raise TypeError("plot_ppc: pass the xarray.Dataset returned by predictive_check")
    names = list(summaries) if summaries is not None else list(result.attrs["summaries"])
    missing = [s for s in names if s not in result]
    if missing:
        raise ValueError(f"plot_ppc: summaries {missing} are not in the result")
    labels = {k: SUMMARIES[k][2] if k in SUMMARIES else k for k in names}
    if axes is None:
        k = len(names)
        ncol = min(3, k)
        nrow = int(math.ceil(k / ncol))
        fig, axs = plt.subplots(nrow, ncol, figsize=(max(4.0 * ncol, 6.5), 3.2 * nrow + 0.4), squeeze=False)
        axes = axs.ravel()
        for ax in axes[k:]:
            ax.set_visible(False)
    else:
        axes = np.atleast_1d(axes).ravel()
        if len(axes) < len(names):
            raise ValueError(f"plot_ppc: {len(names)} summaries need {len(names)} axes, got {len(axes)}")
        fig = axes[0].figure
    for ax, name in zip(axes, names):
        obs = result[name]
        lo, hi, med = result[f"{name}_lo"], result[f"{name}_hi"], result[f"{name}_median"]
        if obs.ndim == 1:
            dim = obs.dims[0]
            x = obs[dim].values
            numeric = np.issubdtype(np.asarray(x).dtype, np.number)
            xs = x if numeric else np.arange(x.size)
            if numeric:
                ax.fill_between(xs, lo.values, hi.values, color="C0", alpha=0.25, lw=0,
                                label=f"model {int(100 * result.attrs['level'])}% band")
                ax.plot(xs, med.values, color="C0", lw=1.5, label="model median")
            else:
                ax.errorbar(xs, med.values, yerr=[med.values - lo.values, hi.values - med.values], fmt="s",
                            color="C0", ms=4, capsize=2, label="model median and band")
                ax.set_xticks(xs)
                ax.set_xticklabels([str(v) for v in x], rotation=90 if x.size > 6 else 0, fontsize="small")
                ax.margins(x=0.15)
            ax.plot(xs, obs.values, "o", color="k", ms=3.5, label="data")
            ax.set_xlabel(dim)
        else:  # 2-D (two-step: outcome x transition): grouped points
            d0, d1 = obs.dims
            xs = np.arange(obs.sizes[d0])
            for j, lab in enumerate(obs[d1].values):
                off = (j - (obs.sizes[d1] - 1) / 2) * 0.2
                m, l_, h_ = med.isel({d1: j}).values, lo.isel({d1: j}).values, hi.isel({d1: j}).values
                ax.errorbar(xs + off, m, yerr=[m - l_, h_ - m], fmt="s", color=f"C{j}", ms=4, capsize=2,
                            label=f"model, {lab}")
                ax.plot(xs + off, obs.isel({d1: j}).values, "o", color="k", ms=3.5,
                        label="data" if j == 0 else None)
            ax.set_xticks(xs)
            ax.set_xticklabels([str(v) for v in obs[d0].values])
            ax.margins(x=0.25)
            ax.set_xlabel(d0)
        ax.set_ylabel(labels[name])
        ax.set_title(f"{name} (coverage {float(result[f'{name}_coverage']):.2f})", fontsize="medium")
        ax.set_ylim(-0.02, 1.02)
    axes[0].legend(frameon=False, fontsize="small")
    fig.suptitle(f"predictive check: {result.attrs.get('agent', '')} on {result.attrs.get('task', '')}\n"
                 f"({result.attrs.get('schedule', '')} schedule, {result.attrs.get('n_sims', '')} simulated groups)",
                 fontsize="medium")
    fig.tight_layout()
    return fig
