"""The task abstraction and registry.

A task is written once, vectorised over simulated subjects:

``reset(n, rng) -> ts``
    Fresh task state for ``n`` independent subjects (a dict of arrays).
``observe(ts) -> state``
    The state shown on the coming trial, int array ``(n,)``.
``step(ts, action, rng) -> (ts, out)``
    Apply one action per subject. ``out`` holds ``reward`` (n,), ``next_state``
    (n,) -- the state reached, before any automatic restart --, ``done`` (n,)
    bool -- the trial ended an episode, so nothing is bootstrapped from
    ``next_state`` -- and every covariate named in :attr:`Task.covariates`.
    Episodic tasks restart finished episodes inside ``step``; persistent
    structure (bandit blocks, drifting reward probabilities) carries on.

:class:`TaskEnv` wraps a task for one agent with gymnasium's
``reset``/``step`` conventions. Every task exposes its generative parameters
(:meth:`Task.generative_params`) so that pseudosessions can be regenerated from
the same generator.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from ..schema import EnvSpec

__all__ = ["Task", "OneStateTask", "TaskEnv", "register_task", "make_task", "list_tasks", "TASKS", "as_rng"]

TASKS: dict[str, type["Task"]] = {}


def as_rng(rng) -> np.random.Generator:
    """``rng`` as a Generator: an int seeds a new one, ``None`` draws fresh entropy."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be an int, numpy.random.Generator or None, got {type(rng).__name__}")


class Task:
    """Base class of every task (see the module docstring for the protocol)."""

    name: ClassVar[str] = ""
    #: per-trial covariates recorded in the trials dataset: name -> extra dims
    covariates: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: True if episodes end and restart (gridworld, two-step); False for one long session
    episodic: ClassVar[bool] = False
    #: a sensible number of trials for a simulated session
    default_n_trials: ClassVar[int] = 200

    def __init__(self, **options: Any):
        self.options = dict(options)

    @property
    def env(self) -> EnvSpec:
        """The static structure agents see (states, actions, items); subclasses set ``self._env``."""
        try:
            return self._env
        except AttributeError:
            raise NotImplementedError(f"task {self.name!r} must set self._env (its EnvSpec) in __init__") from None

    def reset(self, n: int, rng: np.random.Generator) -> dict:
        raise NotImplementedError

    def observe(self, ts: dict) -> np.ndarray:
        raise NotImplementedError

    def step(self, ts: dict, action: np.ndarray, rng: np.random.Generator) -> tuple[dict, dict]:
        raise NotImplementedError

    def generative_params(self) -> dict:
        """Everything needed to regenerate sessions from the same generator."""
        return {"task": self.name, **self.options}

    def check_action(self, ts: dict, action) -> np.ndarray:
        action = np.asarray(action)
        state = self.observe(ts)
        if action.shape != state.shape:
            raise ValueError(f"{self.name}: expected {state.shape[0]} actions, got shape {action.shape}")
        bad = (action < 0) | (action >= self.env.n_actions)
        if bad.any():
            raise ValueError(f"{self.name}: action {action[bad][0]} out of range [0, {self.env.n_actions})")
        if not self.env.available[state, action].all():
            i = int(np.flatnonzero(~self.env.available[state, action])[0])
            raise ValueError(f"{self.name}: action {action[i]} is not available in state {state[i]}")
        return action.astype(np.int64)

    def make_env(self, seed=None) -> "TaskEnv":
        """A single-agent environment with gymnasium's ``reset``/``step`` API."""
        return TaskEnv(self, seed)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items())
        return f"{type(self).__name__}({opts})"


class OneStateTask(Task):
    """A task with a single state (bandits): every trial shows state 0."""

    def observe(self, ts: dict) -> np.ndarray:
        return np.zeros(len(next(iter(ts.values()))), np.int64)


class TaskEnv:
    """One subject's view of a :class:`Task`, with gymnasium's conventions.

    ``reset(seed=None) -> (observation, info)`` starts a new session;
    ``step(action) -> (observation, reward, terminated, truncated, info)``.
    The observation is the state index. For non-episodic tasks (bandits) a
    session never terminates; ``info["trial_end"]`` marks the end of each trial.
    """

    def __init__(self, task: Task, seed=None):
        self.task = task
        self.rng = as_rng(seed)
        self._ts = None

    @property
    def n_actions(self) -> int:
        return self.task.env.n_actions

    def reset(self, *, seed=None, options=None):
        if seed is not None:
            self.rng = as_rng(seed)
        self._ts = self.task.reset(1, self.rng)
        return int(self.task.observe(self._ts)[0]), {}

    def step(self, action):
        if self._ts is None:
            raise RuntimeError("call reset() before step()")
        self._ts, out = self.task.step(self._ts, np.array([action]), self.rng)
        done = bool(out["done"][0])
        info = {k: np.asarray(v)[0] for k, v in out.items() if k not in ("reward", "next_state", "done")}
        info["trial_end"] = done
        terminated = done and self.task.episodic
        obs = int(out["next_state"][0]) if terminated else int(self.task.observe(self._ts)[0])
        return obs, float(out["reward"][0]), terminated, False, info


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: add a task to the registry (validates the entry)."""
    if not (isinstance(cls, type) and issubclass(cls, Task)):
        raise TypeError(f"register_task expects a Task subclass, got {cls!r}")
    if not cls.name or not cls.name.isidentifier():
        raise ValueError(f"task class {cls.__name__} needs a `name` that is a valid identifier, got {cls.name!r}")
    if cls.name in TASKS and TASKS[cls.name] is not cls:
        raise ValueError(f"a task named {cls.name!r} is already registered ({TASKS[cls.name].__name__})")
    for method in ("reset", "observe", "step"):
        if getattr(cls, method) is getattr(Task, method):
            raise TypeError(f"task {cls.name!r} must implement {method}()")
    TASKS[cls.name] = cls
    return cls


def make_task(name: str | Task, **options: Any) -> Task:
    """Create a registered task by name, e.g. ``make_task("mouse_bandit", p_high=0.9)``."""
    if isinstance(name, Task):
        if options:
            raise ValueError("options cannot be given together with a Task instance")
        return name
    _load_builtin()
    try:
        cls = TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; registered tasks: {sorted(TASKS)}") from None
    return cls(**options)


def list_tasks() -> list[str]:
    """Names of all registered tasks."""
    _load_builtin()
    return sorted(TASKS)


def _load_builtin() -> None:
    from . import _builtin  # noqa: F401  (registers the built-in tasks)
