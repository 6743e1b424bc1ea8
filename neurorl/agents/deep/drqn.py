"""Recurrent Q-learning (DRQN) with an optional marginal-policy KL penalty (deep.md §3, agents.md §4).

After mobeets/q-rnn @3c77739 (``model.py``, ``drqn.py``, ``train.py``, ``tasks/wrappers.py``)
[S as summarised in deep.md §3 and agents.md §4].

Network (:class:`RecurrentQNetwork`)
    GRU (or vanilla RNN) with ``hidden_size`` units (10) -> ``Linear(hidden, n_actions)`` = Q.
    Orthogonal recurrent weights (per gate block), Xavier-uniform input weights, zero biases.
    Input at row t: ``features(state_t) ‖ r_{t-1} ‖ one_hot(a_{t-1})`` (zeros at an episode start);
    ``r_{t-1}`` is always the *raw* task reward.
Acting (:func:`acting_policy`)
    ``softmax`` exploration: ``pi = softmax(Q/tau + kl_beta * pibar)`` (``pibar`` itself, not
    its log -- the q-rnn heuristic, agents.md §4); ``epsilon``: epsilon-greedy on Q (ties split).
    ``epsilon`` and ``tau`` decay per training episode: ``x_e = max(x_min, x_start * decay**e)``.
Marginal-policy KL penalty (agents.md §4; on when ``kl_beta > 0``)
    ``pibar`` = uniform at each episode start; per row, after the action:
    ``penalty = clip(log pi(a) - log pibar(a), -2, 2)`` (:func:`kl_penalty`); the *stored*
    (training) reward is ``r - kl_beta * penalty``; ``pibar <- (1 - alpha) pibar + alpha pi``
    (:func:`update_marginal`). With ``kl_decision_only`` (tasks with a ``decision``
    covariate, e.g. ``mouse_bandit_timestep``) rows that are not decisions get no penalty and
    leave ``pibar`` unchanged, and on a task with a null / wait action (the task's
    ``null_action``; ``mouse_bandit_timestep`` with ``include_null_action=True``) the marginal is
    the *decision-only marginal* of :mod:`neurorl.agents.choice_marginal`, the definition
    ``policy_compression(null_action=...)`` uses: ``pibar`` lives on the choice actions
    (``pibar(null) = 0``, uniform over the choices at a reset); the acting bias is
    ``kl_beta * pi0`` with ``pi0`` = ``pibar`` renormalised over the available choices and 1 on
    the null action (the tabular agent's default policy, here without the log, as the q-rnn
    heuristic uses ``pibar`` itself); on decision rows the penalty is
    ``clip(log pi_c(a) - log pibar(a), -2, 2)`` with ``pi_c = pi / (1 - pi(null))`` on the choices,
    and ``pibar <- (1 - alpha) pibar + alpha pi_c``. The latents' attribute ``kl_marginal`` says
    which marginal was used (``"all actions"`` or ``"choice actions (null action k excluded)"``).
Episode replay
    An *episode* is one session: ``task.reset`` then ``episode_length`` rows, ``n_envs``
    sessions collected in parallel per training episode. With ``reset_on_done`` every task
    episode (rows up to ``done``) is its own stored episode and the hidden state, previous
    inputs and ``pibar`` reset after ``done`` (half-triangle navigation); otherwise the
    hidden state carries across the task's ``done`` flags (bandits: done every trial).
    Learning starts once ``learn_after`` episodes are stored (buffer ``buffer_episodes``);
    each update samples ``batch_episodes`` episodes and a random ``seq_len``-row
    sub-sequence of each (:class:`~neurorl.agents.deep.common.EpisodeBuffer`), hidden state
    zero at the sub-sequence start (no burn-in).
Loss (:func:`td_targets`, :meth:`DRQN.loss`)
    MSE of ``Q(o_t, a_t)`` against ``y_t = r_t + gamma (1 - done_t) T[Q_target(o_{t+1})]``
    (``o_{t+1}`` built from the state reached, before any automatic restart; a ``done`` row
    flagged by a ``truncated`` covariate -- half_triangle's step limit -- is bootstrapped),
    ``T = max_a`` (``target="max"``, q-rnn) or ``tau * logsumexp(Q/tau)`` (``target="soft"``,
    the current acting tau). ``Q_target`` is the Polyak-averaged copy
    (``theta_target <- polyak theta + (1 - polyak) theta_target`` after every update),
    unrolled over the same sub-sequence. Adam.

Value semantics (deep.md §3 [D]): with ``target="max"`` while a softmax acts, Q is neither
``Q^pi`` nor a soft value; with ``target="soft"`` it is the soft value at temperature tau. The
latents record which target trained Q (attribute ``q_target``).

Latents (:meth:`DRQN.rollout`, neurorl names, per row): ``q``, ``q_soft`` (= ``q``), ``v``
(= sum_a pi Q), ``v_soft`` (= tau logsumexp(Q/tau), tau the rollout temperature),
``policy`` (acting policy), ``entropy``, ``log_prob`` (of the chosen action), ``chosen_value``
(Q[a]), ``rpe`` (TD error of the training target, with the recorded network's own Q at t+1 and
the stored reward), ``hidden`` (``hidden_unit``: the state that produced Q), and with the
penalty on ``marginal`` (``pibar`` used for the decision, per action) and ``kl_penalty``.

Assumptions ([A], chosen here)
------------------------------
[A] ``respect_done=True`` (default): no bootstrapping after the task's ``done`` rows, as for
    neurorl's tabular agents; on the trial-level mouse bandit (done every trial) Q then
    estimates the immediate reward and ``gamma`` is unused. ``respect_done=False`` treats only
    the session end as an episode boundary (bootstrapping across trials, as q-rnn's session
    episodes; the session end itself is a truncation and is bootstrapped).
[A] The readout layer uses Xavier-uniform weights and a zero bias.
[A] ``updates_per_episode`` (default 20) gradient steps follow each training episode; q-rnn's
    exact schedule is not stated in deep.md.
[A] ``epsilon`` exploration cannot be combined with the KL penalty (the penalty's acting rule is
    a softmax).
[A] Greedy evaluation (``eval_every > 0``) plays ``n_envs`` sessions with ``argmax Q`` and, with
    ``keep_best``, restores the best-scoring weights at the end of training.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...backend import NUMPY
from ...tasks.base import Task, as_rng, make_task
from ..base import sample_categorical
from ..choice_marginal import (
    choice_conditional,
    choice_mask,
    default_policy,
    initial_marginal,
)
from . import common
from .common import EpisodeBuffer, features, n_features, require_torch, seed_everything

torch = require_torch()
nn = torch.nn

__all__ = ["DRQNConfig", "DRQN", "RecurrentQNetwork", "acting_policy", "kl_penalty", "update_marginal",
           "td_targets", "schedule"]

LOG_CLIP = 2.0


@dataclass
class DRQNConfig:
    """Hyperparameters of :class:`DRQN` (defaults: deep.md §3, q-rnn).

    Attributes
    ----------
    hidden_size : int
        Recurrent units (10).
    cell : {"gru", "rnn"}
        Recurrent cell.
    gamma : float
        Discount (0.9).
    lr : float
        Adam learning rate (1e-3).
    polyak : float
        Target-network averaging rate per update (0.01).
    episode_length : int
        Rows per session (800).
    n_envs : int
        Sessions collected in parallel per training episode.
    buffer_episodes, learn_after, batch_episodes, seq_len, updates_per_episode : int
        Episode replay: capacity (100), episodes before learning (8), episodes per update (8),
        sub-sequence length (100), updates after each training episode (20, [A]).
    exploration : {"softmax", "epsilon"}
    epsilon_start, epsilon_min, tau_start, tau_min, decay : float
        Schedules ``x_e = max(x_min, x_start * decay**e)`` (0.5 -> 0.001, 0.5 -> 0.1, 0.995).
    kl_beta, kl_alpha : float
        Marginal-policy penalty weight (0 = off) and marginal update rate (in (0, 1]).
    kl_decision_only : bool
        Penalise and update ``pibar`` on decision rows only (needs a ``decision`` covariate); on a task with a
        null action the marginal is then over the choice actions only (module docstring).
    target : {"max", "soft"}
        TD target reduction.
    respect_done : bool
        Cut bootstrapping at the task's ``done`` rows.
    reset_on_done : bool
        Reset hidden state, previous inputs and ``pibar`` after ``done`` (needs respect_done).
    grad_clip : float
        Max gradient norm (0 = off).
    eval_every : int
        Greedy evaluation every this many episodes (0 = off).
    keep_best : bool
        Restore the best greedy-evaluation weights after training.
    torch_threads : int
        torch intra-op threads while training / playing (1; 0 = leave torch's setting).
    """

    hidden_size: int = 10
    cell: str = "gru"
    gamma: float = 0.9
    lr: float = 1e-3
    polyak: float = 0.01
    episode_length: int = 800
    n_envs: int = 1
    buffer_episodes: int = 100
    learn_after: int = 8
    batch_episodes: int = 8
    seq_len: int = 100
    updates_per_episode: int = 20
    exploration: str = "softmax"
    epsilon_start: float = 0.5
    epsilon_min: float = 0.001
    tau_start: float = 0.5
    tau_min: float = 0.1
    decay: float = 0.995
    kl_beta: float = 0.0
    kl_alpha: float = 0.0
    kl_decision_only: bool = False
    target: str = "max"
    respect_done: bool = True
    reset_on_done: bool = False
    grad_clip: float = 0.0
    eval_every: int = 0
    keep_best: bool = False
    torch_threads: int = 1

    def validate(self) -> "DRQNConfig":
        """Check the values; raise ValueError naming the first bad field."""
        where = "DRQNConfig"
        ints = ("hidden_size", "episode_length", "n_envs", "buffer_episodes", "learn_after", "batch_episodes",
                "seq_len")
        for k in ints:
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{where}: {k} must be an integer >= 1, got {v!r}")
        for k in ("updates_per_episode", "eval_every", "torch_threads"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{where}: {k} must be an integer >= 0, got {v!r}")
        if self.cell not in ("gru", "rnn"):
            raise ValueError(f"{where}: cell must be 'gru' or 'rnn', got {self.cell!r}")
        if self.exploration not in ("softmax", "epsilon"):
            raise ValueError(f"{where}: exploration must be 'softmax' or 'epsilon', got {self.exploration!r}")
        if self.target not in ("max", "soft"):
            raise ValueError(f"{where}: target must be 'max' or 'soft', got {self.target!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"{where}: gamma must be in [0, 1], got {self.gamma}")
        if not self.lr > 0:
            raise ValueError(f"{where}: lr must be positive, got {self.lr}")
        if not 0.0 < self.polyak <= 1.0:
            raise ValueError(f"{where}: polyak must be in (0, 1], got {self.polyak}")
        for k in ("epsilon_start", "epsilon_min"):
            if not 0.0 <= getattr(self, k) <= 1.0:
                raise ValueError(f"{where}: {k} must be in [0, 1], got {getattr(self, k)}")
        for k in ("tau_start", "tau_min"):
            if not getattr(self, k) > 0:
                raise ValueError(f"{where}: {k} must be positive, got {getattr(self, k)}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"{where}: decay must be in (0, 1], got {self.decay}")
        if self.kl_beta < 0:
            raise ValueError(f"{where}: kl_beta must be >= 0, got {self.kl_beta}")
        if self.kl_beta > 0:
            if not 0.0 < self.kl_alpha <= 1.0:
                raise ValueError(f"{where}: with kl_beta > 0, kl_alpha must be in (0, 1], got {self.kl_alpha}")
            if self.exploration != "softmax":
                raise ValueError(f"{where}: the KL penalty (kl_beta > 0) needs exploration='softmax'")
        if self.reset_on_done and not self.respect_done:
            raise ValueError(f"{where}: reset_on_done=True needs respect_done=True (no bootstrapping into a new "
                             "episode whose memory is reset)")
        if self.grad_clip < 0:
            raise ValueError(f"{where}: grad_clip must be >= 0 (0 = off), got {self.grad_clip}")
        return self


def schedule(start: float, minimum: float, decay: float, episode: int) -> float:
    """``max(minimum, start * decay**episode)`` (per-episode exploration schedule)."""
    return float(max(minimum, start * decay ** int(episode)))


# --------------------------------------------------------------------------- pure rules (numpy)
def _masked_softmax(logits: np.ndarray, avail: np.ndarray) -> np.ndarray:
    z = np.where(avail, logits, -np.inf)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.where(avail, np.exp(z), 0.0)
    return e / e.sum(axis=-1, keepdims=True)


def acting_policy(q, *, tau: float, kl_beta: float = 0.0, pibar=None, avail=None, epsilon: float | None = None):
    """The acting policy (agents.md §4, deep.md §3).

    ``softmax(q / tau + kl_beta * pibar)`` over the available actions, or, when ``epsilon``
    is given, epsilon-greedy on ``q`` (``kl_beta`` must then be 0).
    """
    q = np.asarray(q, float)
    avail = np.ones(q.shape, bool) if avail is None else np.broadcast_to(np.asarray(avail, bool), q.shape)
    if epsilon is not None:
        if kl_beta:
            raise ValueError("acting_policy: the KL term needs the softmax rule (epsilon=None)")
        return common.policy_epsilon_greedy(q, float(epsilon), avail)
    if not tau > 0:
        raise ValueError(f"acting_policy: tau must be positive, got {tau}")
    logits = q / tau
    if kl_beta:
        logits = logits + kl_beta * np.asarray(pibar, float)
    return _masked_softmax(logits, avail)


def kl_penalty(policy, pibar, action) -> np.ndarray:
    """``clip(log pi(a) - log pibar(a), -2, 2)`` per row (agents.md §4)."""
    policy, pibar = np.asarray(policy, float), np.asarray(pibar, float)
    a = np.asarray(action, np.int64)[..., None]
    with np.errstate(divide="ignore"):
        d = np.log(np.take_along_axis(policy, a, -1)[..., 0]) - np.log(np.take_along_axis(pibar, a, -1)[..., 0])
    return np.clip(d, -LOG_CLIP, LOG_CLIP)


def update_marginal(pibar, policy, alpha: float) -> np.ndarray:
    """``pibar <- (1 - alpha) pibar + alpha pi``."""
    return (1.0 - alpha) * np.asarray(pibar, float) + alpha * np.asarray(policy, float)


def td_targets(q_next, reward, done, *, gamma: float, kind: str = "max", tau: float = 1.0, next_avail=None):
    """TD targets ``r + gamma (1 - done) T[q_next]`` (torch tensors, no gradient through them).

    Parameters
    ----------
    q_next : tensor (..., A)
        Target-network Q of the next observation.
    reward, done : tensor (...)
        Stored (possibly penalised) reward and terminal flag (float 0/1).
    kind : {"max", "soft"}
        ``max_a q_next`` or ``tau * logsumexp(q_next / tau)``, over available actions.
    """
    if next_avail is not None:
        q_next = torch.where(next_avail, q_next, torch.full_like(q_next, -torch.inf))
    if kind == "max":
        boot = q_next.max(dim=-1).values
    elif kind == "soft":
        boot = tau * torch.logsumexp(q_next / tau, dim=-1)
    else:
        raise ValueError(f"td_targets: kind must be 'max' or 'soft', got {kind!r}")
    return reward + gamma * (1.0 - done) * boot


# --------------------------------------------------------------------------- network
class RecurrentQNetwork(nn.Module):
    """GRU/RNN -> Linear Q (deep.md §3)."""

    def __init__(self, n_inputs: int, n_actions: int, hidden_size: int = 10, cell: str = "gru"):
        super().__init__()
        rnn_cls = {"gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.rnn = rnn_cls(n_inputs, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, n_actions)
        self.n_gates = 3 if cell == "gru" else 1
        with torch.no_grad():
            H = hidden_size
            for name, p in self.rnn.named_parameters():
                if name.startswith("weight_hh"):
                    for g in range(self.n_gates):
                        nn.init.orthogonal_(p[g * H:(g + 1) * H])
                elif name.startswith("weight_ih"):
                    nn.init.xavier_uniform_(p)
                else:
                    nn.init.zeros_(p)
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, x, h0=None):
        """``x`` (B, L, D) -> ``(q (B, L, A), hidden sequence (B, L, H), last hidden (1, B, H))``."""
        out, hn = self.rnn(x, h0)
        return self.head(out), out, hn


# --------------------------------------------------------------------------- agent
class DRQN:
    """Recurrent Q-learning agent and trainer (see the module docstring).

    Parameters
    ----------
    task : Task or str
        A neurorl task (vectorised; ``n_envs`` sessions run in parallel).
    config : DRQNConfig, optional
    seed : int
        Seeds torch (network initialisation) and the numpy generator used for the task,
        the actions and replay sampling (:func:`common.seed_everything`).
    **overrides
        Config fields to override.
    """

    def __init__(self, task: Task | str, config: DRQNConfig | None = None, *, seed: int = 0, **overrides):
        self.task = make_task(task)
        cfg = dataclasses.replace(config or DRQNConfig(), **overrides)
        self.config = cfg.validate()
        if cfg.kl_decision_only and "decision" not in self.task.covariates:
            raise ValueError(f"DRQN: kl_decision_only needs a task with a 'decision' covariate; "
                             f"{self.task.name!r} has {sorted(self.task.covariates)}")
        # the decision-only marginal over choice actions (choice_marginal) on a task with a null action
        self.kl_null_action = getattr(self.task, "null_action", None) if cfg.kl_decision_only else None
        self.seed = int(seed)
        _, self.rng = seed_everything(self.seed)
        env = self.task.env
        self.n_actions = env.n_actions
        self.n_obs = n_features(self.task)
        self.n_inputs = self.n_obs + 1 + self.n_actions
        self.net = RecurrentQNetwork(self.n_inputs, self.n_actions, cfg.hidden_size, cfg.cell)
        self.target_net = copy.deepcopy(self.net)
        for p in self.target_net.parameters():
            p.requires_grad_(False)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.lr)
        self.buffer = EpisodeBuffer(cfg.buffer_episodes)
        self.episodes_done = 0
        self.updates_done = 0
        self.history: dict[str, list] = {"episode": [], "reward": [], "loss": [], "epsilon": [], "tau": [],
                                         "eval_reward": []}

    # ------------------------------------------------------------------ exploration
    def epsilon(self, episode: int | None = None) -> float:
        """Exploration epsilon of a training episode (default: the next one)."""
        c = self.config
        return schedule(c.epsilon_start, c.epsilon_min, c.decay, self.episodes_done if episode is None else episode)

    def tau(self, episode: int | None = None) -> float:
        """Softmax temperature of a training episode (default: the next one)."""
        c = self.config
        return schedule(c.tau_start, c.tau_min, c.decay, self.episodes_done if episode is None else episode)

    # ------------------------------------------------------------------ acting
    def _inputs(self, state, prev_r, prev_a) -> np.ndarray:
        onehot = np.zeros((state.shape[0], self.n_actions), np.float32)
        has = prev_a >= 0
        onehot[np.flatnonzero(has), prev_a[has]] = 1.0
        return np.concatenate([features(self.task, state), prev_r[:, None].astype(np.float32), onehot], axis=1)

    def _play(self, n: int, T: int, rng: np.random.Generator, *, epsilon=None, tau=1.0, kl_beta=0.0,
              kl_alpha=0.0, greedy=False, record=False) -> dict:
        """Run ``n`` sessions of ``T`` rows with frozen weights; return per-row arrays ``(T, n, ...)``."""
        task, env, cfg = self.task, self.task.env, self.config
        A = self.n_actions
        ts = task.reset(n, rng)
        state = task.observe(ts)
        prev_r = np.zeros(n)
        prev_a = np.full(n, -1, np.int64)
        mask = choice_mask(A, self.kl_null_action)
        pibar0 = initial_marginal(A, self.kl_null_action)
        pibar = np.tile(pibar0, (n, 1))
        h = None
        x = self._inputs(state, prev_r, prev_a)
        rec: dict[str, list] = {}
        self.net.eval()
        with torch.no_grad():
            for _ in range(T):
                qt, hseq, h = self.net(torch.from_numpy(x)[:, None, :], h)
                q = qt[:, 0].double().numpy()
                avail = env.available[state]
                if greedy:
                    policy = common.policy_epsilon_greedy(q, 0.0, avail)
                else:
                    bias = pibar if mask is None else default_policy(pibar, avail, mask, NUMPY, log=False)
                    policy = acting_policy(q, tau=tau, kl_beta=kl_beta, pibar=bias, avail=avail, epsilon=epsilon)
                action = sample_categorical(policy, rng)
                ts, out = task.step(ts, action, rng)
                r = np.asarray(out["reward"], float)
                done = np.asarray(out["done"], bool)
                if kl_beta:
                    apply = np.asarray(out["decision"], bool) if cfg.kl_decision_only else np.ones(n, bool)
                    # pi_c: the policy conditional on acting (= policy without a null action)
                    pi_c, _ = choice_conditional(policy, mask, NUMPY)
                    with np.errstate(invalid="ignore"):  # a wait row: log 0 - log 0, masked out next
                        pen = np.where(apply, kl_penalty(pi_c, pibar, action), 0.0)
                    new_pibar = np.where(apply[:, None], update_marginal(pibar, pi_c, kl_alpha), pibar)
                else:
                    pen = np.zeros(n)
                    new_pibar = pibar
                stored = r - kl_beta * pen
                new_state = task.observe(ts)
                reached = np.asarray(out["next_state"])
                reset = done if cfg.reset_on_done else np.zeros(n, bool)
                # the input after the row, with the state reached (before any automatic restart)
                next_x = self._inputs(reached, r, action)
                terminal = done & ~np.asarray(out.get("truncated", np.zeros(n, bool)), bool)
                step = {"x": x, "next_x": next_x, "action": action, "reward": r, "stored_reward": stored,
                        "done": done, "terminal": terminal, "next_avail": env.available[reached],
                        "state": state, "next_state": reached}
                if record:
                    step.update({"q": q, "policy": policy, "hidden": hseq[:, 0].double().numpy(), "marginal": pibar,
                                 "kl_penalty": pen,
                                 "cov": {k: np.asarray(out[k]) for k in task.covariates}})
                for k, v in step.items():
                    rec.setdefault(k, []).append(v)
                # continue (or restart the memory after done with reset_on_done)
                if reset.any():
                    keep = torch.from_numpy(~reset).to(h.dtype)[None, :, None]
                    h = h * keep
                    pibar = np.where(reset[:, None], pibar0, new_pibar)
                    prev_r = np.where(reset, 0.0, r)
                    prev_a = np.where(reset, -1, action)
                    x = self._inputs(new_state, prev_r, prev_a)
                else:
                    pibar = new_pibar
                    x = self._inputs(new_state, r, action)
                state = new_state
            if record:
                # Q of the row after the last one (for its rpe), with the continuing memory
                qn, _, _ = self.net(torch.from_numpy(rec["next_x"][-1])[:, None, :], h)
                rec["q_after"] = qn[:, 0].double().numpy()
        out = {k: np.stack(v) for k, v in rec.items() if k not in ("cov", "q_after")}
        if record:
            out["cov"] = {k: np.stack([c[k] for c in rec["cov"]]) for k in task.covariates}
            out["q_after"] = rec["q_after"]
        return out

    # ------------------------------------------------------------------ training
    def _store(self, play: dict) -> None:
        cfg = self.config
        T, n = play["action"].shape
        done_eff = play["terminal"].astype(np.float32) if cfg.respect_done else np.zeros((T, n), np.float32)
        for i in range(n):
            ep = {"x": play["x"][:, i], "next_x": play["next_x"][:, i], "action": play["action"][:, i],
                  "reward": play["stored_reward"][:, i].astype(np.float32), "done": done_eff[:, i],
                  "next_avail": play["next_avail"][:, i]}
            if cfg.reset_on_done:
                ends = np.flatnonzero(play["done"][:, i]) + 1
                bounds = np.r_[0, ends[ends < T], T]
                for a, b in zip(bounds[:-1], bounds[1:]):
                    self.buffer.add({k: v[a:b] for k, v in ep.items()})
            else:
                self.buffer.add(ep)

    def loss(self, batch: dict, tau: float | None = None):
        """Masked MSE TD loss of a sampled batch; returns ``(loss, td_error (B, L))``."""
        cfg = self.config
        x = torch.from_numpy(batch["x"])
        nx = torch.from_numpy(batch["next_x"])
        a = torch.from_numpy(batch["action"].astype(np.int64))
        r = torch.from_numpy(batch["reward"].astype(np.float32))
        d = torch.from_numpy(batch["done"].astype(np.float32))
        mask = torch.from_numpy(batch["mask"].astype(np.float32))
        # padding rows (mask False) get every action "available" so that their (unused) targets stay finite
        navail = torch.from_numpy(batch["next_avail"].astype(bool) | ~batch["mask"][..., None])
        q, _, _ = self.net(x)
        q_sa = q.gather(-1, a[..., None])[..., 0]
        with torch.no_grad():
            qt, _, _ = self.target_net(torch.cat([x[:, :1], nx], dim=1))
            y = td_targets(qt[:, 1:], r, d, gamma=cfg.gamma, kind=cfg.target,
                           tau=self.tau() if tau is None else tau, next_avail=navail)
        td = q_sa - y
        loss = (mask * torch.where(mask > 0, td, torch.zeros_like(td)) ** 2).sum() / mask.sum().clamp_min(1.0)
        return loss, td.detach()

    def _update(self) -> float:
        cfg = self.config
        batch = self.buffer.sample(cfg.batch_episodes, self.rng, cfg.seq_len)
        self.net.train()
        loss, _ = self.loss(batch)
        self.optimizer.zero_grad()
        loss.backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
        self.optimizer.step()
        with torch.no_grad():
            for pt, p in zip(self.target_net.parameters(), self.net.parameters()):
                pt.mul_(1.0 - cfg.polyak).add_(cfg.polyak * p)
        self.updates_done += 1
        return float(loss.item())

    def train(self, n_episodes: int, *, progress: bool = True) -> dict:
        """Collect ``n_episodes`` training episodes (``n_envs`` sessions each) and learn from replay.

        Returns the history: per episode the mean raw reward per row, mean loss, epsilon, tau and
        (every ``eval_every`` episodes, NaN otherwise) the greedy evaluation reward.
        """
        with common.torch_threads(self.config.torch_threads):
            return self._train(int(n_episodes), progress)

    def _train(self, n_episodes: int, progress: bool) -> dict:
        cfg = self.config
        best, best_state = -np.inf, None
        for _ in common.progress(range(n_episodes), progress, f"DRQN on {self.task.name}"):
            e = self.episodes_done
            eps = self.epsilon(e) if cfg.exploration == "epsilon" else None
            tau = self.tau(e)
            play = self._play(cfg.n_envs, cfg.episode_length, self.rng, epsilon=eps, tau=tau,
                              kl_beta=cfg.kl_beta, kl_alpha=cfg.kl_alpha)
            self._store(play)
            losses = []
            if len(self.buffer) >= cfg.learn_after:
                losses = [self._update() for _ in range(cfg.updates_per_episode)]
            self.episodes_done += 1
            ev = np.nan
            if cfg.eval_every and self.episodes_done % cfg.eval_every == 0:
                ev = float(self._play(cfg.n_envs, cfg.episode_length, self.rng, greedy=True)["reward"].mean())
                if cfg.keep_best and ev > best:
                    best, best_state = ev, copy.deepcopy(self.net.state_dict())
            h = self.history
            h["episode"].append(e)
            h["reward"].append(float(play["reward"].mean()))
            h["loss"].append(float(np.mean(losses)) if losses else np.nan)
            h["epsilon"].append(np.nan if eps is None else eps)
            h["tau"].append(tau)
            h["eval_reward"].append(ev)
        if cfg.keep_best and best_state is not None:
            self.net.load_state_dict(best_state)
            self.target_net.load_state_dict(best_state)
        return self.history

    # ------------------------------------------------------------------ export
    def rollout(self, n_subjects: int = 1, n_trials: int | None = None, *, rng=None, tau: float | None = None,
                epsilon: float | None = None, kl_beta: float | None = None, kl_alpha: float | None = None,
                greedy: bool = False):
        """Play with frozen weights; return ``(trials, latents)`` in the neurorl schema.

        Parameters
        ----------
        n_subjects : int
            Independent sessions (subjects).
        n_trials : int, optional
            Rows per session (default ``episode_length``).
        rng : int or Generator, optional
            Default: the agent's generator.
        tau, epsilon : float, optional
            Exploration (default: the current schedule values; ``epsilon`` only with
            ``exploration="epsilon"``).
        kl_beta, kl_alpha : float, optional
            Marginal-policy term at evaluation (default: the training values).
        greedy : bool
            Act by ``argmax Q``.
        """
        cfg = self.config
        rng = self.rng if rng is None else as_rng(rng)
        T = int(n_trials if n_trials is not None else cfg.episode_length)
        tau = self.tau() if tau is None else float(tau)
        if epsilon is None and cfg.exploration == "epsilon" and not greedy:
            epsilon = self.epsilon()
        kl_beta = cfg.kl_beta if kl_beta is None else float(kl_beta)
        kl_alpha = cfg.kl_alpha if kl_alpha is None else float(kl_alpha)
        if kl_beta and not 0 < kl_alpha <= 1:
            raise ValueError(f"DRQN.rollout: kl_alpha must be in (0, 1] with kl_beta > 0, got {kl_alpha}")
        with common.torch_threads(cfg.torch_threads):
            play = self._play(int(n_subjects), T, rng, epsilon=epsilon, tau=tau, kl_beta=kl_beta,
                              kl_alpha=kl_alpha, greedy=greedy, record=True)
        return self._export(play, tau=tau, epsilon=epsilon, kl_beta=kl_beta, kl_alpha=kl_alpha, greedy=greedy)

    def _export(self, play, *, tau, epsilon, kl_beta, kl_alpha, greedy):
        cfg = self.config
        tm = lambda a: np.moveaxis(np.asarray(a), 0, 1)  # (T, n, ...) -> (n, T, ...)
        q, policy, action = play["q"], play["policy"], play["action"]
        avail = self.task.env.available[play["state"]]
        lat = common.value_latents(q, policy, tau, avail)
        q_next = np.concatenate([q[1:], play["q_after"][None]], axis=0)
        nav = play["next_avail"]
        if cfg.target == "max":
            boot = np.where(nav, q_next, -np.inf).max(-1)
        else:
            z = np.where(nav, q_next / tau, -np.inf)
            m = z.max(-1, keepdims=True)
            boot = tau * (m[..., 0] + np.log(np.exp(z - m).sum(-1)))
        done_eff = play["terminal"] if cfg.respect_done else np.zeros_like(play["done"])
        chosen = np.take_along_axis(q, action[..., None], -1)[..., 0]
        pa = np.take_along_axis(policy, action[..., None], -1)[..., 0]
        lat.update({
            "rpe": play["stored_reward"] + cfg.gamma * np.where(done_eff, 0.0, boot) - chosen,
            "chosen_value": chosen, "log_prob": np.log(pa), "hidden": play["hidden"],
        })
        if kl_beta:
            lat.update({"marginal": play["marginal"], "kl_penalty": play["kl_penalty"]})
        task = self.task
        trials = common.to_trials(tm(play["state"]), tm(action), tm(play["reward"]), next_state=tm(play["next_state"]),
                                  done=tm(play["done"]), env=task.env,
                                  covariates={k: tm(v) for k, v in play["cov"].items()},
                                  attrs={"task": task.name, "task_options": repr(task), "agent": "drqn"})
        attrs = {"agent": "drqn", "q_target": cfg.target, "seed": self.seed, "episodes_trained": self.episodes_done,
                 "updates": self.updates_done, "tau": tau, "epsilon": np.nan if epsilon is None else epsilon,
                 "kl_beta": kl_beta, "kl_alpha": kl_alpha, "greedy": greedy,
                 "kl_marginal": ("all actions" if self.kl_null_action is None else
                                 f"choice actions (null action {self.kl_null_action} excluded)"),
                 "config": repr(dataclasses.asdict(cfg)), "task": task.name,
                 "value_semantics": ("Q trained with max target while a softmax acts: neither Q^pi nor soft"
                                     if cfg.target == "max" else "Q trained with the soft target tau*logsumexp(Q/tau)")}
        latents = common.to_latents({k: tm(v) for k, v in lat.items()}, n_actions=self.n_actions, attrs=attrs,
                                    subjects=trials["subject"].values)
        return trials, latents

    # ------------------------------------------------------------------ checkpoints
    def save(self, path) -> Any:
        """Write a checkpoint (network, optimizer, config, counters) with :func:`common.save_checkpoint`."""
        return common.save_checkpoint(path, self._modules(), self.optimizer, self.config, step=self.updates_done,
                                      episodes=self.episodes_done, seed=self.seed, task=self.task.name,
                                      task_options=repr(self.task))

    def _modules(self):
        """Network and target network together (one state dict for checkpoints)."""
        return nn.ModuleDict({"net": self.net, "target": self.target_net})

    def load(self, path) -> dict:
        """Load network, target network and optimizer state saved by :meth:`save`."""
        info = common.load_checkpoint(path, self._modules(), self.optimizer)
        self.updates_done = int(info["step"])
        self.episodes_done = int((info.get("extra") or {}).get("episodes", 0))
        return info
