"""A2C-LSTM meta-reinforcement learner (Wang et al. 2018; deep.md §4), with the correct update.

Network (:class:`A2CLSTMNetwork`)
    ``LSTMCell(n_inputs, 48)``; policy ``Linear(48, A)`` + softmax (over the available
    actions); value ``Linear(48, 1)``. Input at row t:
    ``features(state_t) ‖ one_hot(a_{t-1}) ‖ r_{t-1}`` (zeros at a meta-episode start).
Meta-episodes
    One training *meta-episode* is a fresh ``task.reset`` followed by ``episode_length`` rows
    (100 trials of ``wang_bandit``; 100 two-step trials = 200 rows of ``wang_two_step``); ``n_envs``
    meta-episodes run in parallel and make one update. ``(h, c)`` are carried across the rows
    (and across the task's trial ends) and reset to zero between meta-episodes.
Update (deep.md §4 "Correct update", :func:`a2c_loss`)
    Returns ``R_t = r_t + gamma (1 - d_t) R_{t+1}`` with ``R_T = 0`` after the last row;
    advantages ``A_t = R_t - V_t``, *detached* in the actor term; policy loss
    ``-sum_t log pi(a_t | h_t) A_t``; value loss ``1/2 sum_t (R_t - V_t)^2`` (gradient to the
    critic); entropy bonus ``sum_t H(pi_t)``; total ``policy + beta_v value - beta_e entropy``,
    summed over rows and averaged over the ``n_envs`` meta-episodes. RMSprop (lr 7e-4),
    gradient-norm clipping at 999 (effectively off). Defaults beta_v = beta_e = 0.05,
    gamma = 0.9 [S: deep.md §4]. None of the bugs listed in deep.md §4 is reproduced: the
    transition fields are kept in order, log-probabilities keep their graph, the value loss is
    squared on tensors, and the LSTM state is carried across steps.
Computation [D]
    Rows are played without a graph by a float32 NumPy copy of the network (the same LSTM-cell
    function, without torch's per-call overhead); for the update the recorded inputs of the
    whole meta-episode are re-run through torch's fused LSTM (:meth:`A2CLSTMNetwork.sequence`),
    which gives the same outputs (the inputs depend only on the task and the sampled actions)
    and a backward pass several times cheaper than through ``T`` cell calls. With
    ``reset_on_done`` the network runs row by row with the graph kept.
Test
    :meth:`A2C.rollout` plays with frozen weights: any adaptation inside a meta-episode is
    carried by the recurrent state alone.
Two-step
    The meta-RL two-step task of Wang et al. is ``wang_two_step`` (0.9/0.1 rewards that swap,
    tasks.md §7); measured here, it leaves chance after ~300-500 updates of 32 meta-episodes at
    lr 2e-3 (analyses/train_a2c_meta_rl.py). The Daw et al. task ``two_step`` (drifting
    probabilities in [0.25, 0.75]) gives a far weaker signal.

Latents (per row, neurorl names; as the tabular actor-critic, agents.md §5):
``v`` (critic output), ``logits``, ``policy``, ``log_policy``, ``entropy``, ``log_prob``;
``q = v + logits - sum_b pi(b) logits(b)`` (dueling decomposition: ``sum_a pi q = v``,
``softmax(q) = pi``), ``q_soft = q`` (temperature 1), ``v_soft = v + H``; ``chosen_value = v``
(the prediction the TD error is measured against); ``rpe = r_t + gamma (1 - d_t) V_{t+1} - V_t``
(0 bootstrap after the last row of a meta-episode); ``hidden`` and ``cell`` (``hidden_unit``).
The critic is trained on discounted returns of the acting policy, so ``v`` estimates
``V^pi``; the entropy bonus enters the actor only.
The exported trials add the covariates ``meta_episode`` and ``meta_step``.

Assumptions ([A], chosen here)
------------------------------
[A] The end of a meta-episode is terminal (``R_T = 0``): meta-episodes are independent and the
    recurrent state is reset after them.
[A] ``respect_done=False`` (default): returns run across the task's ``done`` rows within a
    meta-episode (the two-step task's trial ends), as in meta-RL; ``True`` cuts them there.
[A] Losses are summed over rows and averaged over the parallel meta-episodes; ``n_envs``
    default 16. PyTorch default initialisation; RMSprop ``alpha = 0.99``, ``eps = 1e-5``.
[A] Actions are sampled with the numpy generator from the (float64) policy, so that a seed fixes
    the whole run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...tasks.base import Task, as_rng, make_task
from ..base import sample_categorical
from . import common
from .common import features, n_features, require_torch, seed_everything

torch = require_torch()
nn = torch.nn

__all__ = ["A2CConfig", "A2C", "A2CLSTMNetwork", "a2c_loss", "discounted_returns"]


@dataclass
class A2CConfig:
    """Hyperparameters of :class:`A2C` (defaults: deep.md §4).

    Attributes
    ----------
    hidden_size : int
        LSTM units (48).
    gamma : float
        Discount (0.9).
    lr : float
        RMSprop learning rate (7e-4).
    beta_v, beta_e : float
        Value-loss and entropy-bonus weights (0.05, 0.05).
    rmsprop_alpha, rmsprop_eps : float
        RMSprop smoothing constant and epsilon (0.99, 1e-5 [A]).
    grad_clip : float
        Max gradient norm (999: effectively off; 0 = off).
    episode_length : int
        Rows per meta-episode (100).
    n_envs : int
        Meta-episodes per update.
    respect_done : bool
        Cut returns at the task's ``done`` rows.
    reset_on_done : bool
        Also reset ``(h, c)`` and the previous inputs after ``done`` (needs respect_done).
    torch_threads : int
        torch intra-op threads (1; 0 = leave torch's setting).
    """

    hidden_size: int = 48
    gamma: float = 0.9
    lr: float = 7e-4
    beta_v: float = 0.05
    beta_e: float = 0.05
    rmsprop_alpha: float = 0.99
    rmsprop_eps: float = 1e-5
    grad_clip: float = 999.0
    episode_length: int = 100
    n_envs: int = 16
    respect_done: bool = False
    reset_on_done: bool = False
    torch_threads: int = 1

    def validate(self) -> "A2CConfig":
        """Check the values; raise ValueError naming the first bad field."""
        where = "A2CConfig"
        for k in ("hidden_size", "episode_length", "n_envs"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{where}: {k} must be an integer >= 1, got {v!r}")
        if isinstance(self.torch_threads, bool) or not isinstance(self.torch_threads, (int, np.integer)) \
                or self.torch_threads < 0:
            raise ValueError(f"{where}: torch_threads must be an integer >= 0, got {self.torch_threads!r}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"{where}: gamma must be in [0, 1], got {self.gamma}")
        for k in ("lr", "rmsprop_eps"):
            if not getattr(self, k) > 0:
                raise ValueError(f"{where}: {k} must be positive, got {getattr(self, k)}")
        for k in ("beta_v", "beta_e", "grad_clip"):
            if getattr(self, k) < 0:
                raise ValueError(f"{where}: {k} must be >= 0, got {getattr(self, k)}")
        if not 0.0 < self.rmsprop_alpha < 1.0:
            raise ValueError(f"{where}: rmsprop_alpha must be in (0, 1), got {self.rmsprop_alpha}")
        if self.reset_on_done and not self.respect_done:
            raise ValueError(f"{where}: reset_on_done=True needs respect_done=True")
        return self


# --------------------------------------------------------------------------- loss
def discounted_returns(rewards, dones, gamma: float, bootstrap=None):
    """``R_t = r_t + gamma (1 - d_t) R_{t+1}``, ``R_T = bootstrap`` (default 0); time-major tensors."""
    T = rewards.shape[0]
    R = torch.zeros_like(rewards[0]) if bootstrap is None else bootstrap
    out = [None] * T
    for t in range(T - 1, -1, -1):
        R = rewards[t] + gamma * (1.0 - dones[t]) * R
        out[t] = R
    return torch.stack(out)


def _masked_log_softmax(logits, avail):
    if avail is None:
        return torch.log_softmax(logits, dim=-1)
    return torch.log_softmax(logits.masked_fill(~avail, -torch.inf), dim=-1)


def _entropy(logp, avail):
    p = logp.exp()
    plogp = p * logp if avail is None else torch.where(avail, p * logp, torch.zeros_like(logp))
    return -plogp.sum(-1)


def a2c_loss(logits, values, actions, rewards, dones, *, gamma: float, beta_v: float, beta_e: float,
             avail=None, bootstrap=None) -> dict:
    """A2C loss terms of a batch of rollouts (time-major, deep.md §4).

    Parameters
    ----------
    logits : tensor (T, B, A)
    values : tensor (T, B)
        Critic outputs ``V_t``.
    actions : long tensor (T, B)
    rewards, dones : tensor (T, B)
        Rewards and return cuts (float 0/1; 1 = no bootstrapping after the row).
    gamma, beta_v, beta_e : float
    avail : bool tensor (T, B, A), optional
        Available actions (the policy is normalised over them).
    bootstrap : tensor (B,), optional
        Value after the last row (default 0: terminal).

    Returns
    -------
    dict
        ``loss`` (total), ``policy_loss``, ``value_loss``, ``entropy`` (bonus term, summed over
        rows, mean over B), and per row ``returns``, ``advantages`` (detached), ``log_prob``,
        ``entropy_t``.
    """
    logp_all = _masked_log_softmax(logits, avail)
    logp = logp_all.gather(-1, actions[..., None])[..., 0]
    with torch.no_grad():
        returns = discounted_returns(rewards, dones, gamma, bootstrap)
    adv = (returns - values).detach()
    ent = _entropy(logp_all, avail)
    B = logits.shape[1]
    policy_loss = -(logp * adv).sum() / B
    value_loss = 0.5 * ((returns - values) ** 2).sum() / B
    entropy = ent.sum() / B
    loss = policy_loss + beta_v * value_loss - beta_e * entropy
    return {"loss": loss, "policy_loss": policy_loss, "value_loss": value_loss, "entropy": entropy,
            "returns": returns, "advantages": adv, "log_prob": logp, "entropy_t": ent}


# --------------------------------------------------------------------------- network
class A2CLSTMNetwork(nn.Module):
    """LSTMCell -> (policy logits, value) (deep.md §4)."""

    def __init__(self, n_inputs: int, n_actions: int, hidden_size: int = 48):
        super().__init__()
        self.cell = nn.LSTMCell(n_inputs, hidden_size)
        self.policy = nn.Linear(hidden_size, n_actions)
        self.value = nn.Linear(hidden_size, 1)
        self.hidden_size = hidden_size

    def forward(self, x, hc):
        """One row: ``x`` (B, D), ``hc = (h, c)`` -> ``(logits (B, A), value (B,), (h, c))``."""
        h, c = self.cell(x, hc)
        return self.policy(h), self.value(h)[:, 0], (h, c)

    def sequence(self, x, hc):
        """Many rows at once: ``x`` (T, B, D) -> ``(logits (T, B, A), values (T, B), hidden (T, B, H), (h, c))``.

        The same function as :meth:`forward` applied row after row (same weights, those of
        ``self.cell``), computed by torch's fused LSTM kernel, whose backward pass is several
        times faster than backpropagating through ``T`` separate cell calls.
        """
        cell = self.cell
        h0, c0 = hc
        out, h, c = torch.lstm(x, (h0[None], c0[None]), (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                               True, 1, 0.0, self.training, False, False)
        return self.policy(out), self.value(out)[..., 0], out, (h[0], c[0])


class _NumpyStepper:
    """Frozen copy of an :class:`A2CLSTMNetwork` that steps in float32 NumPy.

    The same function as ``A2CLSTMNetwork.forward`` (PyTorch's LSTM cell: gates in the order
    input, forget, cell, output; ``sigmoid(z) = (1 + tanh(z / 2)) / 2``) without torch's
    per-call overhead, for rows played without gradients.
    """

    def __init__(self, net: A2CLSTMNetwork):
        def g(t):
            return t.detach().cpu().numpy().astype(np.float32)

        cell = net.cell
        self.w_ih, self.w_hh = g(cell.weight_ih).T.copy(), g(cell.weight_hh).T.copy()
        self.b = g(cell.bias_ih) + g(cell.bias_hh)
        self.w_out = np.concatenate([g(net.policy.weight), g(net.value.weight)]).T.copy()
        self.b_out = np.concatenate([g(net.policy.bias), g(net.value.bias)])
        self.H = net.hidden_size

    def __call__(self, x, hc):
        h, c = hc
        H = self.H
        z = x @ self.w_ih + h @ self.w_hh + self.b
        sg = 0.5 * (1.0 + np.tanh(0.5 * z[:, :2 * H]))
        o = 0.5 * (1.0 + np.tanh(0.5 * z[:, 3 * H:]))
        c = sg[:, H:] * c + sg[:, :H] * np.tanh(z[:, 2 * H:3 * H])
        h = o * np.tanh(c)
        out = h @ self.w_out + self.b_out
        return out[:, :-1], out[:, -1], (h, c)


def _masked_softmax_np(z, avail):
    """Softmax of float64 logits ``z`` over the available actions (0 elsewhere)."""
    z = np.where(avail, z, -np.inf)
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- agent
class A2C:
    """A2C-LSTM meta-RL agent and trainer (see the module docstring).

    Parameters
    ----------
    task : Task or str
    config : A2CConfig, optional
    seed : int
        Seeds torch (initialisation) and the numpy generator (task, actions).
    **overrides
        Config fields to override.
    """

    def __init__(self, task: Task | str, config: A2CConfig | None = None, *, seed: int = 0, **overrides):
        self.task = make_task(task)
        self.config = dataclasses.replace(config or A2CConfig(), **overrides).validate()
        self.seed = int(seed)
        _, self.rng = seed_everything(self.seed)
        self.n_actions = self.task.env.n_actions
        self.n_inputs = n_features(self.task) + self.n_actions + 1
        self.net = A2CLSTMNetwork(self.n_inputs, self.n_actions, self.config.hidden_size)
        c = self.config
        self.optimizer = torch.optim.RMSprop(self.net.parameters(), lr=c.lr, alpha=c.rmsprop_alpha,
                                             eps=c.rmsprop_eps)
        self.updates_done = 0
        self.history: dict[str, list] = {"update": [], "reward": [], "loss": [], "policy_loss": [],
                                         "value_loss": [], "entropy": []}

    def _inputs(self, task, state, prev_a, prev_r) -> np.ndarray:
        onehot = np.zeros((state.shape[0], self.n_actions), np.float32)
        has = prev_a >= 0
        onehot[np.flatnonzero(has), prev_a[has]] = 1.0
        return np.concatenate([features(task, state), onehot, prev_r[:, None].astype(np.float32)], axis=1)

    def _episode(self, n: int, rng: np.random.Generator, *, record: bool = False, greedy: bool = False,
                 task: Task | None = None, graph: bool = False) -> dict:
        """One meta-episode for ``n`` parallel environments.

        With ``graph=True`` the network runs row by row in torch and ``logits``/``values`` keep
        the autograd graph; otherwise it runs as :class:`_NumpyStepper` (frozen weights, the same
        function in float32 NumPy, several times cheaper per row) and they are arrays.
        """
        task = self.task if task is None else task
        env, cfg = task.env, self.config
        H = cfg.hidden_size
        ts = task.reset(n, rng)
        state = task.observe(ts)
        if graph:
            h, c = torch.zeros(n, H), torch.zeros(n, H)
        else:
            stepper = _NumpyStepper(self.net)
            h, c = np.zeros((n, H), np.float32), np.zeros((n, H), np.float32)
        x = self._inputs(task, state, np.full(n, -1, np.int64), np.zeros(n))
        rec: dict[str, list] = {k: [] for k in ("x", "logits", "values", "avail", "action", "reward", "done",
                                                "state", "next_state", "hidden", "cell", "cov")}
        for _ in range(cfg.episode_length):
            rec["x"].append(x)
            avail = env.available[state]
            if graph:
                logits, v, (h, c) = self.net(torch.from_numpy(x), (h, c))
                z = logits.detach().double().numpy()
            else:
                logits, v, (h, c) = stepper(x, (h, c))
                z = logits.astype(np.float64)
            pol = _masked_softmax_np(z, avail)
            action = np.argmax(np.where(avail, pol, -1.0), axis=1) if greedy else sample_categorical(pol, rng)
            ts, out = task.step(ts, action, rng)
            r = np.asarray(out["reward"], float)
            done = np.asarray(out["done"], bool)
            for k, val in (("logits", logits), ("values", v), ("avail", avail), ("action", action), ("reward", r),
                           ("done", done), ("state", state), ("next_state", np.asarray(out["next_state"]))):
                rec[k].append(val)
            if record:
                rec["hidden"].append(np.asarray(h.detach() if graph else h, np.float64))
                rec["cell"].append(np.asarray(c.detach() if graph else c, np.float64))
                rec["cov"].append({k: np.asarray(out[k]) for k in task.covariates})
            state = task.observe(ts)
            if cfg.reset_on_done and done.any():
                keep = ~done[:, None]
                if graph:
                    keep = torch.from_numpy(keep).to(h.dtype)
                h, c = h * keep, c * keep
                x = self._inputs(task, state, np.where(done, -1, action), np.where(done, 0.0, r))
            else:
                x = self._inputs(task, state, action, r)
        return rec

    def _training_episode(self) -> dict:
        """Play ``n_envs`` meta-episodes and attach ``logits``/``values`` that carry the graph.

        Without ``reset_on_done`` the episode is played without a graph and the network is then
        re-run on the recorded inputs with :meth:`A2CLSTMNetwork.sequence` (the same numbers,
        a much cheaper backward pass); with it, row by row with the graph kept.
        """
        cfg = self.config
        if cfg.reset_on_done:
            return self._episode(cfg.n_envs, self.rng, graph=True)
        rec = self._episode(cfg.n_envs, self.rng)
        zeros = torch.zeros(cfg.n_envs, cfg.hidden_size)
        rec["logits"], rec["values"], _, _ = self.net.sequence(torch.from_numpy(np.stack(rec["x"])), (zeros, zeros))
        return rec

    def _loss_of(self, rec) -> dict:
        cfg = self.config
        logits = rec["logits"] if torch.is_tensor(rec["logits"]) else torch.stack(rec["logits"])
        values = rec["values"] if torch.is_tensor(rec["values"]) else torch.stack(rec["values"])
        actions = torch.from_numpy(np.stack(rec["action"]).astype(np.int64))
        rewards = torch.from_numpy(np.stack(rec["reward"]).astype(np.float32))
        dones = np.stack(rec["done"]).astype(np.float32) if cfg.respect_done else \
            np.zeros(actions.shape, np.float32)
        avail = torch.from_numpy(np.stack(rec["avail"]))
        return a2c_loss(logits, values, actions, rewards, torch.from_numpy(dones), gamma=cfg.gamma,
                        beta_v=cfg.beta_v, beta_e=cfg.beta_e, avail=avail)

    def train(self, n_updates: int, *, progress: bool = True) -> dict:
        """Run ``n_updates`` updates of ``n_envs`` meta-episodes each; return the history."""
        with common.torch_threads(self.config.torch_threads):
            cfg = self.config
            self.net.train()
            for _ in common.progress(range(int(n_updates)), progress, f"A2C on {self.task.name}"):
                rec = self._training_episode()
                terms = self._loss_of(rec)
                self.optimizer.zero_grad()
                terms["loss"].backward()
                if cfg.grad_clip > 0:
                    nn.utils.clip_grad_norm_(self.net.parameters(), cfg.grad_clip)
                self.optimizer.step()
                h = self.history
                h["update"].append(self.updates_done)
                h["reward"].append(float(np.mean(rec["reward"])))
                for k in ("loss", "policy_loss", "value_loss", "entropy"):
                    h[k].append(float(terms[k].item()))
                self.updates_done += 1
        return self.history

    # ------------------------------------------------------------------ export
    def rollout(self, n_subjects: int = 1, n_episodes: int = 1, *, rng=None, greedy: bool = False,
                task: Task | str | None = None):
        """Play with frozen weights; return ``(trials, latents)`` in the neurorl schema.

        Each subject plays ``n_episodes`` meta-episodes in a row (a fresh ``task.reset`` and a
        zero recurrent state each), concatenated along ``trial`` with the covariates
        ``meta_episode`` and ``meta_step``.

        Parameters
        ----------
        n_subjects, n_episodes : int
        rng : int or Generator, optional
            Default: the agent's generator.
        greedy : bool
            Act by ``argmax pi`` instead of sampling.
        task : Task or str, optional
            Evaluate on another task with the same inputs and actions (e.g. ``wang_bandit`` with
            fixed probability sets after training on uniform draws). Default: the training task.
        """
        rng = self.rng if rng is None else as_rng(rng)
        task = self.task if task is None else make_task(task)
        if task.env.n_actions != self.n_actions or n_features(task) + self.n_actions + 1 != self.n_inputs:
            raise ValueError(f"A2C.rollout: task {task.name!r} has {task.env.n_actions} actions and "
                             f"{n_features(task)} features; the network was built for {self.task.name!r} "
                             f"({self.n_actions} actions, {self.n_inputs - self.n_actions - 1} features)")
        cfg = self.config
        n, L = int(n_subjects), cfg.episode_length
        recs = []
        with common.torch_threads(cfg.torch_threads), torch.no_grad():
            self.net.eval()
            for _ in range(int(n_episodes)):
                recs.append(self._episode(n, rng, record=True, greedy=greedy, task=task))
            self.net.train()
        # stack to (E*L, n, ...)
        cat = lambda k: np.concatenate([np.stack([np.asarray(x.detach().double().numpy() if torch.is_tensor(x)
                                                             else x) for x in r[k]]) for r in recs])
        logits, v = cat("logits").astype(np.float64), cat("values").astype(np.float64)
        avail, action, reward, done = cat("avail"), cat("action"), cat("reward"), cat("done")
        z = np.where(avail, logits, -np.inf)
        z = z - z.max(-1, keepdims=True)
        logpol = np.where(avail, z - np.log(np.where(avail, np.exp(z), 0.0).sum(-1, keepdims=True)), -np.inf)
        policy = np.where(avail, np.exp(logpol), 0.0)
        ent = -np.where(avail, policy * np.where(avail, logpol, 0.0), 0.0).sum(-1)
        lg = np.where(avail, logits, 0.0)
        q = v[..., None] + lg - (policy * lg).sum(-1, keepdims=True)
        step = np.tile(np.arange(L), int(n_episodes))
        cut = done.astype(bool) if cfg.respect_done else np.zeros(done.shape, bool)
        last = (step == L - 1)[:, None] | cut
        v_next = np.concatenate([v[1:], np.zeros((1,) + v.shape[1:])])
        rpe = reward + cfg.gamma * np.where(last, 0.0, v_next) - v
        lat = {"q": q, "q_soft": q, "v": v, "v_soft": v + ent, "policy": policy, "log_policy": logpol,
               "entropy": ent, "rpe": rpe, "chosen_value": v, "logits": logits,
               "log_prob": np.take_along_axis(logpol, action[..., None], -1)[..., 0],
               "hidden": cat("hidden"), "cell": cat("cell")}
        tm = lambda a: np.moveaxis(np.asarray(a), 0, 1)
        cov = {k: tm(np.concatenate([np.stack([cv[k] for cv in r["cov"]]) for r in recs]))
               for k in task.covariates}
        ep_index = np.repeat(np.arange(int(n_episodes)), L)
        cov["meta_episode"] = np.broadcast_to(ep_index, (n, ep_index.size)).copy()
        cov["meta_step"] = np.broadcast_to(step, (n, step.size)).copy()
        trials = common.to_trials(tm(cat("state")), tm(action), tm(reward), next_state=tm(cat("next_state")),
                                  done=tm(done), env=task.env, covariates=cov,
                                  attrs={"task": task.name, "task_options": repr(task), "agent": "a2c_lstm"})
        attrs = {"agent": "a2c_lstm", "seed": self.seed, "updates": self.updates_done, "greedy": greedy,
                 "config": repr(dataclasses.asdict(cfg)), "task": task.name, "frozen_weights": True,
                 "value_semantics": "v: critic trained on discounted returns of the acting policy (V^pi)"}
        latents = common.to_latents({k: tm(a) for k, a in lat.items()}, n_actions=self.n_actions, attrs=attrs,
                                    subjects=trials["subject"].values, dims={"logits": ("action",)})
        return trials, latents

    # ------------------------------------------------------------------ checkpoints
    def save(self, path) -> Any:
        """Write a checkpoint (network, optimizer, config, update count)."""
        return common.save_checkpoint(path, self.net, self.optimizer, self.config, step=self.updates_done,
                                      seed=self.seed, task=self.task.name, task_options=repr(self.task))

    def load(self, path) -> dict:
        """Load network and optimizer state saved by :meth:`save`."""
        info = common.load_checkpoint(path, self.net, self.optimizer)
        self.updates_done = int(info["step"])
        return info
