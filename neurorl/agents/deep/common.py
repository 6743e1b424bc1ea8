"""Shared machinery of the torch agents (deep.md §1-5).

Everything here that touches torch imports it inside the function, through
:func:`require_torch`, so that this module (and ``import neurorl``) works without torch.

Contents
--------
* :func:`require_torch` -- the torch module, or an ImportError saying how to install it.
* :func:`seed_everything` -- seeds torch, numpy and :mod:`random`; returns generators.
* :class:`torch_threads` -- a context manager setting torch's intra-op thread count (end of file).
* :func:`over_seeds` -- independent training runs over seeds (x settings) as units of :mod:`neurorl.parallel`.
* :func:`features`, :func:`n_features` -- network inputs of a task's states.
* :class:`ReplayBuffer` (transitions) and :class:`EpisodeBuffer` (whole episodes), both
  sampled uniformly with a numpy Generator.
* :func:`save_checkpoint` / :func:`load_checkpoint`.
* :func:`progress` -- a progress bar that can be switched off (plain lines off a terminal).
* :func:`policy_epsilon_greedy`, :func:`policy_softmax`, :func:`value_latents` -- the
  shared value latents of a Q-network in NumPy.
* :func:`pad_ragged`, :func:`to_trials`, :func:`to_latents`, :func:`latents_to_neural` --
  export to the neurorl schema (trials + latents on ``(subject, trial)``).
* :func:`output_dir`, :func:`parse_args` (defined in :mod:`neurorl.analysis`, importable from
  here), :func:`write_result` -- the analyses' convention (CleanRL style): a ``@dataclass Args``
  with a ``seed``, outputs in ``out/<script>_seed<seed>/``, a short result ``.md``.

Assumptions
-----------
[A] Reproducibility is promised on CPU only: :func:`seed_everything` seeds torch's global
    generator and turns on ``torch.use_deterministic_algorithms(True, warn_only=True)``
    (a process-wide switch). GPU kernels may still differ between runs.
[A] Latent names follow the tabular agents (schema.SHARED_LATENTS). Per-action latents
    (``q``, ``q_soft``, ``policy``, ``log_policy``, ``marginal``) take the ``action`` dim;
    ``hidden`` and ``cell`` take ``hidden_unit``; ``activation_<layer>`` takes
    ``hidden_unit`` when its width equals the first activation's width and
    ``hidden_unit_<layer>`` otherwise (xarray needs one size per dim); ``belief`` takes
    ``belief_state``. Explicit ``dims`` override these rules.
[A] Ragged subjects (different numbers of trials) are padded at the end: latents with NaN,
    trials with ``choice = -1``, ``trial_index = -1``, ``valid = False`` (schema.py).
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import xarray as xr

from ...analysis import output_dir, parse_args  # the analyses' convention; re-exported here
from ...schema import ACTION, SUBJECT, TRIAL, EnvSpec, make_trials

__all__ = [
    "require_torch", "seed_everything", "torch_threads", "features", "n_features", "ReplayBuffer", "EpisodeBuffer",
    "save_checkpoint", "load_checkpoint", "progress", "policy_epsilon_greedy", "policy_softmax",
    "value_latents", "pad_ragged", "to_trials", "to_latents", "latents_to_neural", "output_dir",
    "parse_args", "write_result", "over_seeds", "HIDDEN_UNIT", "ACTION_LATENTS",
]

HIDDEN_UNIT = "hidden_unit"
#: latents that carry the ``action`` dim
ACTION_LATENTS = ("q", "q_soft", "policy", "log_policy", "marginal", "margpref", "q_target")


# --------------------------------------------------------------------------- torch
def require_torch():
    """Import and return :mod:`torch`.

    Raises
    ------
    ImportError
        If torch is not installed, with the install command ``pip install neurorl[deep]``.
    """
    try:
        import torch
    except ImportError as err:  # pragma: no cover - torch is installed in the dev environment
        raise ImportError(
            "the deep agents need PyTorch, which is not installed; install it with `pip install neurorl[deep]`"
        ) from err
    return torch


def seed_everything(seed: int, *, deterministic: bool = True):
    """Seed torch, numpy and :mod:`random` for a reproducible run (on CPU).

    Parameters
    ----------
    seed : int
        Non-negative seed.
    deterministic : bool, default True
        Also call ``torch.use_deterministic_algorithms(True, warn_only=True)``.

    Returns
    -------
    (torch.Generator, numpy.random.Generator)
        A CPU torch generator and a numpy generator, both seeded with ``seed``. Draw all
        randomness of a run from these (network initialisation uses torch's global
        generator, which is seeded too).
    """
    torch = require_torch()
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed_everything: seed must be a non-negative int, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    gen = torch.Generator().manual_seed(seed)
    return gen, np.random.default_rng(seed)


# --------------------------------------------------------------------------- inputs
def features(task, state) -> np.ndarray:
    """Network inputs of task states, float32.

    Uses ``task.features(state)`` when the task defines it (e.g. half_triangle:
    ``one_hot(tile, 25) ‖ one_hot(cue, 3)``); otherwise ``one_hot(state, n_states)``.

    Parameters
    ----------
    task : neurorl Task
    state : int or array_like of int
        State index (or indices, any shape).

    Returns
    -------
    ndarray, float32, shape ``state.shape + (n_features,)``
    """
    if hasattr(task, "features") and callable(task.features):
        return np.asarray(task.features(state), dtype=np.float32)
    s = np.asarray(state)
    n = task.env.n_states
    if s.size and (s.min() < 0 or s.max() >= n):
        raise ValueError(f"features: state out of range [0, {n}) for task {task.name!r}")
    return np.eye(n, dtype=np.float32)[s]


def n_features(task) -> int:
    """Length of :func:`features` vectors of a task."""
    return int(features(task, 0).shape[-1])


# --------------------------------------------------------------------------- buffers
class ReplayBuffer:
    """Ring buffer of transitions ``(obs, action, reward, next_obs, done, next_avail)``.

    Parameters
    ----------
    capacity : int
        Maximum number of transitions; the oldest are overwritten.
    obs_dim : int
        Length of an observation (feature) vector.
    n_actions : int
        Number of actions (for the ``next_avail`` mask used by ``max`` targets).
    """

    def __init__(self, capacity: int, obs_dim: int, n_actions: int):
        if capacity < 1:
            raise ValueError(f"ReplayBuffer: capacity must be >= 1, got {capacity}")
        self.capacity, self.obs_dim, self.n_actions = int(capacity), int(obs_dim), int(n_actions)
        self.obs = np.zeros((self.capacity, self.obs_dim), np.float32)
        self.next_obs = np.zeros((self.capacity, self.obs_dim), np.float32)
        self.action = np.zeros(self.capacity, np.int64)
        self.reward = np.zeros(self.capacity, np.float32)
        self.done = np.zeros(self.capacity, np.float32)
        self.next_avail = np.ones((self.capacity, self.n_actions), bool)
        self._pos = 0
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def full(self) -> bool:
        return self._size == self.capacity

    def add(self, obs, action, reward, next_obs, done, next_avail=None) -> None:
        """Store one transition (or a batch: leading axis on every argument)."""
        obs = np.asarray(obs, np.float32)
        if obs.ndim == 1:
            obs, next_obs = obs[None], np.asarray(next_obs, np.float32)[None]
            action, reward, done = np.atleast_1d(action), np.atleast_1d(reward), np.atleast_1d(done)
            next_avail = None if next_avail is None else np.asarray(next_avail, bool)[None]
        n = obs.shape[0]
        if obs.shape[1] != self.obs_dim:
            raise ValueError(f"ReplayBuffer.add: obs has {obs.shape[1]} features, buffer expects {self.obs_dim}")
        idx = (self._pos + np.arange(n)) % self.capacity
        self.obs[idx] = obs
        self.next_obs[idx] = np.asarray(next_obs, np.float32)
        self.action[idx] = np.asarray(action, np.int64)
        self.reward[idx] = np.asarray(reward, np.float32)
        self.done[idx] = np.asarray(done, np.float32)
        self.next_avail[idx] = True if next_avail is None else np.asarray(next_avail, bool)
        self._pos = int((self._pos + n) % self.capacity)
        self._size = int(min(self._size + n, self.capacity))

    def sample(self, batch_size: int, rng: np.random.Generator) -> dict:
        """A uniform minibatch (with replacement) as a dict of numpy arrays."""
        if self._size == 0:
            raise ValueError("ReplayBuffer.sample: the buffer is empty")
        idx = rng.integers(0, self._size, size=int(batch_size))
        return {
            "obs": self.obs[idx], "action": self.action[idx], "reward": self.reward[idx],
            "next_obs": self.next_obs[idx], "done": self.done[idx], "next_avail": self.next_avail[idx],
        }


class EpisodeBuffer:
    """Buffer of whole episodes, each a dict of arrays with a common leading time axis.

    Parameters
    ----------
    capacity : int
        Maximum number of episodes kept (oldest dropped first).
    """

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError(f"EpisodeBuffer: capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.episodes: list[dict] = []

    def __len__(self) -> int:
        return len(self.episodes)

    def add(self, episode: Mapping[str, Any]) -> None:
        """Store an episode: ``{name: array (T, ...)}`` with the same ``T`` for every name."""
        ep = {k: np.asarray(v) for k, v in episode.items()}
        lengths = {k: v.shape[0] if v.ndim else -1 for k, v in ep.items()}
        if len(set(lengths.values())) != 1 or -1 in lengths.values():
            raise ValueError(f"EpisodeBuffer.add: arrays need one common leading (time) length, got {lengths}")
        self.episodes.append(ep)
        if len(self.episodes) > self.capacity:
            self.episodes.pop(0)

    def sample(self, n: int, rng: np.random.Generator, seq_len: int | None = None) -> dict:
        """``n`` episodes drawn uniformly (with replacement), stacked and zero-padded.

        Parameters
        ----------
        n : int
            Number of episodes.
        rng : numpy.random.Generator
        seq_len : int, optional
            Take a random contiguous sub-sequence of at most ``seq_len`` steps from each
            episode (uniform start), as in deep.md §3.

        Returns
        -------
        dict
            Every stored name as an array ``(n, L, ...)`` (L the longest sampled length),
            zero-padded, plus ``mask`` bool ``(n, L)`` (True on real steps).
        """
        if not self.episodes:
            raise ValueError("EpisodeBuffer.sample: the buffer is empty")
        picks = rng.integers(0, len(self.episodes), size=int(n))
        chunks = []
        for i in picks:
            ep = self.episodes[int(i)]
            T = next(iter(ep.values())).shape[0]
            start = 0
            if seq_len is not None and T > seq_len:
                start = int(rng.integers(0, T - seq_len + 1))
            stop = T if seq_len is None else min(T, start + int(seq_len))
            chunks.append({k: v[start:stop] for k, v in ep.items()})
        L = max(next(iter(c.values())).shape[0] for c in chunks)
        out = {}
        for k in chunks[0]:
            first = chunks[0][k]
            arr = np.zeros((len(chunks), L) + first.shape[1:], first.dtype)
            for j, c in enumerate(chunks):
                arr[j, : c[k].shape[0]] = c[k]
            out[k] = arr
        mask = np.zeros((len(chunks), L), bool)
        for j, c in enumerate(chunks):
            mask[j, : next(iter(c.values())).shape[0]] = True
        out["mask"] = mask
        return out


# --------------------------------------------------------------------------- checkpoints
def _plain(x):
    """Config values as plain Python objects (safe for ``torch.load(weights_only=True)``)."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        x = dataclasses.asdict(x)
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    return repr(x)


def save_checkpoint(path, model, optimizer=None, config=None, step: int = 0, **extra) -> Path:
    """Save model (and optimizer) state, config and step to ``path`` (``torch.save``).

    ``config`` (a dataclass or mapping) and ``extra`` are stored as plain Python values.
    Returns the path.
    """
    torch = require_torch()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "model": model.state_dict(),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "config": _plain(config) if config is not None else None,
        "step": int(step),
        "extra": _plain(extra),
        "torch_version": str(torch.__version__),
    }
    from ...results import atomic_output

    with atomic_output(path) as tmp:
        torch.save(blob, tmp)
    return path


def load_checkpoint(path, model, optimizer=None) -> dict:
    """Load a checkpoint written by :func:`save_checkpoint` into ``model`` (and ``optimizer``).

    Returns
    -------
    dict
        ``config``, ``step``, ``extra`` and ``torch_version`` as saved.
    """
    torch = require_torch()
    path = Path(path)
    if not path.exists():
        raise ValueError(f"load_checkpoint: no checkpoint at {path}")
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(blob["model"])
    if optimizer is not None:
        if blob.get("optimizer") is None:
            raise ValueError(f"load_checkpoint: {path} holds no optimizer state")
        optimizer.load_state_dict(blob["optimizer"])
    return {k: blob.get(k) for k in ("config", "step", "extra", "torch_version")}


# --------------------------------------------------------------------------- progress
def progress(iterable: Iterable, enabled: bool = True, desc: str | None = None, total: int | None = None):
    """Wrap ``iterable`` in a progress bar when ``enabled`` (:func:`neurorl.progress.iterate`: plain lines when
    stderr is not a terminal)."""
    if not enabled:
        return iterable
    from ...progress import iterate

    return iterate(iterable, True, desc or "progress", total=total)


# --------------------------------------------------------------------------- value latents
def _masked(q, avail):
    q = np.asarray(q, float)
    if avail is None:
        return q, np.ones(q.shape, bool)
    avail = np.broadcast_to(np.asarray(avail, bool), q.shape)
    return q, avail


def policy_epsilon_greedy(q, epsilon: float, avail=None) -> np.ndarray:
    """ε-greedy policy over the available actions, ties split evenly among the maxima.

    ``pi(a) = ε/|avail| + (1 - ε)·[a ∈ argmax]/|argmax|``; 0 on unavailable actions.
    """
    q, avail = _masked(q, avail)
    qm = np.where(avail, q, -np.inf)
    best = avail & (qm == qm.max(axis=-1, keepdims=True))
    n_av = avail.sum(axis=-1, keepdims=True)
    return np.where(avail, epsilon / n_av, 0.0) + (1.0 - epsilon) * best / best.sum(axis=-1, keepdims=True)


def policy_softmax(q, tau: float, avail=None) -> np.ndarray:
    """Softmax ``exp(q/τ)`` normalised over the available actions."""
    if not tau > 0:
        raise ValueError(f"policy_softmax: tau must be positive, got {tau}")
    q, avail = _masked(q, avail)
    z = np.where(avail, q / tau, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.where(avail, np.exp(z), 0.0)
    return e / e.sum(axis=-1, keepdims=True)


def value_latents(q, policy, tau: float, avail=None) -> dict:
    """Shared value latents of a Q-network (deep.md §5), NumPy.

    Returns ``q``, ``q_soft`` (= ``q``: no separate soft critic), ``v = Σ_a π(a) Q(a)``,
    ``v_soft = τ·logsumexp_a(Q(a)/τ)`` over the available actions, ``policy`` and
    ``entropy = -Σ π log π`` (nats).
    """
    q, avail = _masked(q, avail)
    policy = np.asarray(policy, float)
    z = np.where(avail, q / tau, -np.inf)
    m = z.max(axis=-1, keepdims=True)
    v_soft = tau * (m[..., 0] + np.log(np.where(avail, np.exp(z - m), 0.0).sum(axis=-1)))
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(policy > 0, policy * np.log(policy), 0.0)
    return {
        "q": q, "q_soft": q, "v": np.sum(policy * np.where(avail, q, 0.0), axis=-1), "v_soft": v_soft,
        "policy": policy, "entropy": -plogp.sum(axis=-1),
    }


# --------------------------------------------------------------------------- export
def pad_ragged(arrays: Sequence, fill) -> np.ndarray:
    """Stack per-subject arrays ``(T_i, ...)`` into ``(n_subjects, max T_i, ...)`` padded with ``fill``."""
    arrays = [np.asarray(a) for a in arrays]
    if not arrays:
        raise ValueError("pad_ragged: no arrays given")
    T = max(a.shape[0] for a in arrays)
    tail = arrays[0].shape[1:]
    for a in arrays:
        if a.shape[1:] != tail:
            raise ValueError(f"pad_ragged: trailing shapes differ ({a.shape[1:]} vs {tail})")
    dtype = np.result_type(arrays[0].dtype, np.asarray(fill).dtype)
    out = np.full((len(arrays), T) + tail, fill, dtype=dtype)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
    return out


def _per_subject(x, fill):
    """An ``(n, T, ...)`` array, or a list of per-subject ``(T_i, ...)`` arrays padded with ``fill``."""
    if isinstance(x, np.ndarray):
        return x
    return pad_ragged(list(x), fill)


def to_trials(
    state, choice, reward, *, next_state=None, done=None, env: EnvSpec, covariates: Mapping | None = None,
    subjects=None, attrs: Mapping | None = None,
) -> xr.Dataset:
    """A neurorl trials dataset from deep-agent rollouts.

    Every argument is an ``(n_subjects, n_trials)`` array or a list of per-subject
    arrays ``(T_i,)`` (ragged subjects are padded: ``choice = -1``, ``valid = False``,
    ``trial_index = -1``). Covariates may also be ``(.., n_actions)``.
    """
    ragged = not isinstance(choice, np.ndarray)
    choice_a = _per_subject(choice, -1).astype(np.int64)
    lengths = [len(c) for c in choice] if ragged else [choice_a.shape[1]] * choice_a.shape[0]
    T = choice_a.shape[1]
    present = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    trial_index = np.where(present, np.arange(T)[None, :], -1)
    state_a = np.where(present, _per_subject(state, 0), 0).astype(np.int64)
    reward_a = _per_subject(reward, np.nan).astype(float)
    ns = None if next_state is None else np.where(present, _per_subject(next_state, -1), -1).astype(np.int64)
    dn = None if done is None else np.where(present, _per_subject(done, True), True).astype(bool)
    cov = {}
    for k, v in (covariates or {}).items():
        a = _per_subject(v, -1 if (not isinstance(v, np.ndarray) and np.issubdtype(np.asarray(v[0]).dtype, np.integer))
                         else np.nan)
        cov[k] = a
    return make_trials(
        state_a, choice_a, reward_a, valid=present & (choice_a >= 0), trial_index=trial_index, next_state=ns,
        done=dn, env=env, covariates=cov, subjects=subjects, attrs=dict(attrs or {}),
    )


def _default_dims(name: str, arr: np.ndarray, act_width: list) -> tuple:
    extra = arr.ndim - 2
    if extra == 0:
        return ()
    if extra != 1:
        raise ValueError(f"to_latents: latent {name!r} has {arr.ndim} dims; give its dims explicitly")
    if name in ACTION_LATENTS:
        return (ACTION,)
    if name in ("hidden", "cell"):
        return (HIDDEN_UNIT,)
    if name.startswith("activation_"):
        if not act_width:
            act_width.append(arr.shape[-1])
        if arr.shape[-1] == act_width[0]:
            return (HIDDEN_UNIT,)
        return (f"{HIDDEN_UNIT}_{name[len('activation_'):]}",)
    if name == "belief":
        return ("belief_state",)
    raise ValueError(f"to_latents: latent {name!r} has an extra dim of unknown name; give dims={{{name!r}: (...)}}")


def to_latents(
    records: Mapping[str, Any], *, n_actions: int, attrs: Mapping | None = None, subjects=None,
    dims: Mapping[str, tuple] | None = None,
) -> xr.Dataset:
    """Latents dataset on ``(subject, trial[, action | hidden_unit])`` from deep-agent records.

    Parameters
    ----------
    records : mapping
        ``name -> (n_subjects, n_trials, ...)`` array, or a list of per-subject arrays
        ``(T_i, ...)`` (padded with NaN). Use the tabular agents' names (``q``, ``q_soft``,
        ``v``, ``v_soft``, ``policy``, ``entropy``, ``rpe``, ``chosen_value``) plus
        ``hidden``/``cell``/``activation_<layer>``/``log_prob``/``belief``/...
    n_actions : int
    attrs : mapping, optional
        Provenance (agent, seeds, hyperparameters, checkpoint id); non-scalar values are
        stored as their ``repr``.
    subjects : array_like, optional
        Subject labels (default ``0..n-1``); use the trials dataset's.
    dims : mapping, optional
        Extra dims per latent, overriding the default rules (module docstring).
    """
    data, act_width = {}, []
    dims = dict(dims or {})
    n = T = None
    for name, rec in records.items():
        arr = _per_subject(rec, np.nan)
        if arr.ndim < 2:
            raise ValueError(f"to_latents: latent {name!r} must be (n_subjects, n_trials, ...), got shape {arr.shape}")
        if n is None:
            n, T = arr.shape[:2]
        elif arr.shape[:2] != (n, T):
            raise ValueError(
                f"to_latents: latent {name!r} has (subject, trial) shape {arr.shape[:2]}, expected {(n, T)}")
        extra = tuple(dims[name]) if name in dims else _default_dims(name, arr, act_width)
        if len(extra) != arr.ndim - 2:
            raise ValueError(f"to_latents: latent {name!r} has shape {arr.shape}, dims {extra} do not match")
        if extra == (ACTION,) and arr.shape[-1] != n_actions:
            raise ValueError(f"to_latents: latent {name!r} has {arr.shape[-1]} actions, expected {n_actions}")
        if np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(float)
        data[name] = ((SUBJECT, TRIAL) + extra, arr)
    if n is None:
        raise ValueError("to_latents: no records given")
    coords = {SUBJECT: np.arange(n) if subjects is None else np.asarray(subjects), TRIAL: np.arange(T),
              ACTION: np.arange(n_actions)}
    for _, (d, a) in data.items():
        for ax, dn in enumerate(d[2:], start=2):
            coords.setdefault(dn, np.arange(a.shape[ax]))
    clean = {k: (v if isinstance(v, (str, int, float, bool, np.integer, np.floating)) else repr(v))
             for k, v in (attrs or {}).items() if v is not None}
    return xr.Dataset(data, coords=coords, attrs=clean)


def latents_to_neural(latents: xr.Dataset, trials: xr.Dataset, name: str, *, subject=None, valid_only: bool = True):
    """A latent with a unit-like dim as neural activity ``(trial, unit, time=1)``.

    Hidden units (``hidden``, ``activation_<layer>``) become "recorded units" for
    :mod:`neurorl.decoding`, via :func:`neurorl.decoding.make_neural` (``kind="rate"``),
    matched to behaviour by ``trials["trial_index"]``.

    Parameters
    ----------
    latents, trials : xarray.Dataset
        From :func:`to_latents` / :func:`to_trials` (same subjects).
    name : str
        The latent, e.g. ``"activation_0"``.
    subject : label, optional
        Subject to take (default: the first).
    valid_only : bool, default True
        Keep only valid trials.
    """
    from ...decoding.neural import make_neural

    if name not in latents:
        raise ValueError(f"latents_to_neural: no latent {name!r}; have {sorted(latents.data_vars)}")
    da = latents[name]
    if da.ndim != 3:
        raise ValueError(f"latents_to_neural: {name!r} needs one unit-like dim besides (subject, trial), has {da.dims}")
    subject = latents[SUBJECT].values[0] if subject is None else subject
    x = da.sel({SUBJECT: subject}).values
    ti = trials["trial_index"].sel({SUBJECT: subject}).values
    keep = trials["valid"].sel({SUBJECT: subject}).values if valid_only else ti >= 0
    unit_dim = da.dims[2]
    return make_neural(x[keep], trials=ti[keep], units=da[unit_dim].values, kind="rate",
                       attrs={"source_latent": name, "subject": repr(subject)})


# --------------------------------------------------------------------------- analyses convention
def write_result(path, title: str, args=None, sections: Mapping[str, str] | None = None) -> Path:
    """Write a short markdown result: title, the arguments, then ``## heading`` sections."""
    path = Path(path)
    lines = [f"# {title}", ""]
    if args is not None:
        lines += ["## Arguments", "", "| name | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in _plain(args).items()] + [""]
    for head, body in (sections or {}).items():
        lines += [f"## {head}", "", body.rstrip(), ""]
    from ...results import atomic_output

    with atomic_output(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------- added by E2 (drqn / a2c)
class torch_threads:
    """Context manager: run torch with ``n`` intra-op threads, restoring the previous number on exit.

    The deep agents here are tiny (tens of units); with more than one thread torch spends most
    of its time synchronising (observed: 16x slower training on 2 busy cores). ``n = 0`` leaves
    the setting alone.
    """

    def __init__(self, n: int = 1):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError(f"torch_threads: n must be an integer >= 0, got {n!r}")
        self.n = int(n)
        self._old = None

    def __enter__(self):
        if self.n:
            torch = require_torch()
            self._old = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc):
        if self._old is not None:
            require_torch().set_num_threads(self._old)
        return False


# --------------------------------------------------------------------------- runs over seeds
def _seed_unit(unit, *, fn):
    """One unit of :func:`over_seeds`: ``fn(*unit)`` on one torch thread (restored afterwards)."""
    with torch_threads(1):
        return fn(*unit)


def over_seeds(fn, seeds: Sequence[int], *, settings: Sequence | None = None, progress: bool = False,
               desc: str = "training runs", store=None, study: Mapping | None = None) -> dict:
    """Train (and evaluate) one run per seed -- or per setting x seed -- as units of :mod:`neurorl.parallel`.

    Deep-agent analyses repeat a training run over seeds (and network or task settings); the runs are independent,
    so each is one unit of work: inside ``with neurorl.parallel.parallel(workers=N)`` (or on a Dask cluster) they
    train side by side, each worker on one thread. A run is seeded by its own seed (``fn`` builds its agent with
    it), so its result does not depend on where it ran, and every run computes on one torch thread
    (:class:`torch_threads`) in every executor, serial included, so that a run's numbers are those of the same run
    on a worker.

    Parameters
    ----------
    fn : callable
        ``fn(seed)`` or, with ``settings``, ``fn(setting, seed)``; returns the run's results (picklable: numbers,
        arrays, dicts of them). Module-level functions or ``functools.partial`` of them travel to workers.
    seeds : sequence of int
    settings : sequence, optional
        Settings to cross with the seeds (setting-major order).
    progress : bool, default False
        A progress bar over runs.
    desc : str
        What the runs are (progress bar).
    store, study
        A resumable study (:func:`neurorl.parallel.map_units`; results must then be arrays or dicts of arrays).

    Returns
    -------
    dict
        ``{seed: result}``, or ``{(setting, seed): result}`` with ``settings``, in the order of the runs.
    """
    import functools

    from ... import parallel as _par

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("over_seeds: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"over_seeds: seeds repeat: {seeds}")
    keys = [(s,) for s in seeds] if settings is None else [(k, s) for k in settings for s in seeds]
    out = _par.map_units(functools.partial(_seed_unit, fn=fn), keys, progress=progress, desc=desc, store=store,
                         study=study)
    return {(k[0] if settings is None else k): v for k, v in zip(keys, out)}
