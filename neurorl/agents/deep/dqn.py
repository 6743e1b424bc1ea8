"""Deep Q-network (Mnih et al. 2015; deep.md §1-2), trained on a neurorl task.

:class:`DQN` is a trainer, not a registered ``decide``/``learn`` agent: it learns a
Q-network by gradient descent and exports trials + latents in the neurorl schema
(:meth:`DQN.latents`), on which :func:`neurorl.replay`, the fitting modules and
:mod:`neurorl.decoding` run unchanged.

Algorithm (deep.md §1) -- one gradient step per environment step once the replay buffer
holds ``learning_starts`` transitions:

* act ε-greedily on ``Q_θ(features(s), ·)`` (over the available actions);
* store ``(s, a, r, s′, terminated, avail(s′))`` in a ring buffer, sample minibatches
  uniformly;
* target ``y = r + γ (1 − terminated) max_{a′ ∈ avail(s′)} Q_θ⁻(s′, a′)``; loss Huber
  (``delta``) or MSE on ``Q_θ(s, a) − y`` for the **taken** action ``a`` (not
  ``max_a Q_θ(s, a)``: the slip noted in deep.md §1);
* gradient clipping by value (``grad_clip``, 100 in the source) and optionally by norm;
* target network: Polyak ``θ⁻ ← τθ + (1 − τ)θ⁻`` every step (``tau``), or a hard copy every
  ``target_period`` steps;
* ε = ``eps_start`` for ``warmup_episodes`` episodes, then
  ``eps_end + (eps_start − eps_end)·exp(−eps_decay·(episode − warmup_episodes))``.

Defaults follow ``TriangleTask/dqn_perso.py`` / ``oscar/params.ini`` [S] (deep.md §1-2:
28-54-54-54-4 ReLU network, AdamW with amsgrad, γ 0.99, buffer 5,000, batch 32, Polyak
0.005, Huber, value clip 100, warm-up 100 episodes, decay 0.01) except where marked [A].

Latents (:meth:`DQN.latents`), on ``(subject, trial[, action | hidden_unit])`` with the
tabular agents' names:

* ``q`` (per action) and ``q_soft = q`` (no separate soft critic); ``chosen_value = Q(s, a)``;
* ``policy``: the **acting** ε-greedy policy at the latents' ε (default ``eps_end``; ties
  among maxima split evenly), ``log_prob`` of the chosen action, ``entropy`` (nats);
* ``v = Σ_a π(a|s) Q(s, a)`` under that acting policy;
* ``v_soft = τ·logsumexp_a(Q(s, a)/τ)`` with τ = ``latent_tau`` -- the soft value of a
  softmax(Q/τ) policy, *not* of the ε-greedy one; Q itself was trained with the max
  (hard) target, so it is neither Q^π nor a soft value (deep.md §3);
* ``rpe = r + γ (1 − terminated) max_a′ Q_θ(s′, a′) − Q_θ(s, a)``, the TD error of the
  training target computed with the frozen *online* network;
* ``activation_<i>`` (``hidden_unit``): the output of the i-th hidden layer (after ReLU).

Assumptions
-----------
[A] Truncation (the task's ``truncated`` covariate, or ``max_episode_steps``) ends an
    episode but is bootstrapped through (``terminated = done and not truncated``).
[A] ``lr`` default 1e-3 (source 1e-4): a few-minute CPU budget instead of 600 episodes x 20
    runs on a cluster. ``learning_starts`` 1,000 transitions (source: train once the
    5,000-buffer is full).
[A] The epsilon schedule is per episode, as in the source.
[A] Greedy evaluation breaks ties by the first maximal action (deterministic).
[A] ``num_threads`` (default 1; ``None`` or 0 leaves torch's setting alone): torch's thread
    count while training/evaluating (restored afterwards); a 54-unit network is fastest
    single-threaded.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from . import common
from .common import require_torch

__all__ = ["DQNConfig", "DQN", "td_target", "td_loss", "make_mlp", "epsilon_schedule"]


@dataclass
class DQNConfig:
    """Hyperparameters of :class:`DQN` (see the module docstring for sources)."""

    hidden: tuple = (54, 54, 54)
    gamma: float = 0.99
    lr: float = 1e-3
    weight_decay: float = 0.01
    amsgrad: bool = True
    buffer_size: int = 5000
    batch_size: int = 32
    learning_starts: int = 1000
    train_every: int = 1
    tau: float = 0.005
    target_period: int | None = None
    loss: str = "huber"
    huber_delta: float = 1.0
    grad_clip: float | None = 100.0
    grad_clip_norm: float | None = None
    eps_start: float = 1.0
    eps_end: float = 0.1
    warmup_episodes: int = 100
    eps_decay: float = 0.01
    max_episode_steps: int | None = 200
    latent_tau: float = 1.0
    num_threads: int | None = 1

    def __post_init__(self):
        self.hidden = tuple(int(h) for h in self.hidden)
        if not self.hidden or min(self.hidden) < 1:
            raise ValueError(f"DQNConfig.hidden must be positive layer widths, got {self.hidden}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"DQNConfig.gamma must be in [0, 1], got {self.gamma}")
        if self.loss not in ("huber", "mse"):
            raise ValueError(f"DQNConfig.loss must be 'huber' or 'mse', got {self.loss!r}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"DQNConfig.tau must be in (0, 1], got {self.tau}")
        if self.target_period is not None and self.target_period < 1:
            raise ValueError(f"DQNConfig.target_period must be >= 1 or None, got {self.target_period}")
        for name in ("eps_start", "eps_end"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"DQNConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.batch_size < 1 or self.buffer_size < self.batch_size:
            raise ValueError(
                f"DQNConfig: need 1 <= batch_size <= buffer_size, got {self.batch_size}, {self.buffer_size}")
        if self.latent_tau <= 0:
            raise ValueError(f"DQNConfig.latent_tau must be positive, got {self.latent_tau}")


def epsilon_schedule(episode, cfg: DQNConfig):
    """ε of an episode (0-based): flat warm-up, then exponential decay to ``eps_end``."""
    episode = np.asarray(episode, float)
    decayed = cfg.eps_end + (cfg.eps_start - cfg.eps_end) * np.exp(-cfg.eps_decay * (episode - cfg.warmup_episodes))
    return np.where(episode < cfg.warmup_episodes, cfg.eps_start, decayed)


def make_mlp(n_in: int, hidden: tuple, n_out: int):
    """``Linear–ReLU`` blocks then a linear head, as ``torch.nn.Sequential``."""
    torch = require_torch()
    nn = torch.nn
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def td_target(reward, next_q, terminated, gamma: float, next_avail=None):
    """``r + γ (1 − terminated) max_{a′ available} next_q[a′]`` (torch tensors, batch first)."""
    torch = require_torch()
    if next_avail is not None:
        next_q = torch.where(next_avail, next_q, torch.full_like(next_q, -torch.inf))
    best = next_q.max(dim=-1).values
    best = torch.where(terminated > 0, torch.zeros_like(best), best)  # no -inf * 0 on terminal rows
    return reward + gamma * best


def td_loss(q, action, target, kind: str = "huber", delta: float = 1.0):
    """Mean Huber (``delta``) or squared-error loss of ``q[action] − target`` (target detached)."""
    torch = require_torch()
    chosen = q.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)
    if kind == "huber":
        return torch.nn.functional.huber_loss(chosen, target.detach(), delta=delta)
    if kind == "mse":
        return torch.nn.functional.mse_loss(chosen, target.detach())
    raise ValueError(f"td_loss: kind must be 'huber' or 'mse', got {kind!r}")


def _threaded(method):
    """Run a trainer method under ``torch_threads(config.num_threads)``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with common.torch_threads(self.config.num_threads or 0):
            return method(self, *args, **kwargs)

    return wrapper


def _optimizer(net, cfg):
    torch = require_torch()
    return torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, amsgrad=cfg.amsgrad,
                             foreach=True)


def _avail(task, state):
    return np.asarray(task.env.available[np.asarray(state)], bool)


class DQN:
    """Deep Q-network trainer.

    Parameters
    ----------
    config : DQNConfig, optional
        Hyperparameters; keyword arguments override fields (``DQN(lr=1e-4)``).

    Attributes
    ----------
    net_, target_net_ : torch.nn.Sequential
        Online and target Q-networks (after :meth:`setup` or :meth:`train`).
    history_ : xarray.Dataset
        Training curves of the last :meth:`train` call.
    seed_ : int
    """

    def __init__(self, config: DQNConfig | None = None, **overrides):
        config = config if config is not None else DQNConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.net_ = None

    # ------------------------------------------------------------------ setup
    def setup(self, task, seed: int = 0) -> "DQN":
        """Seed everything and build fresh networks, optimizer and buffer for ``task``."""
        cfg = self.config
        self._torch_gen, self._rng = common.seed_everything(seed)
        self.seed_ = int(seed)
        self.n_features_ = common.n_features(task)
        self.n_actions_ = int(task.env.n_actions)
        self.task_name_ = task.name
        self.net_ = make_mlp(self.n_features_, cfg.hidden, self.n_actions_)
        self.target_net_ = make_mlp(self.n_features_, cfg.hidden, self.n_actions_)
        self.target_net_.load_state_dict(self.net_.state_dict())
        for p in self.target_net_.parameters():
            p.requires_grad_(False)
        self.optimizer_ = _optimizer(self.net_, cfg)
        self.buffer_ = common.ReplayBuffer(cfg.buffer_size, self.n_features_, self.n_actions_)
        self.n_updates_ = 0
        self.n_steps_ = 0
        return self

    def _check(self, task=None):
        if self.net_ is None:
            raise ValueError("DQN: no network yet; call train(task, ...) or setup(task, seed) first")
        if task is not None and (common.n_features(task) != self.n_features_ or task.env.n_actions != self.n_actions_):
            raise ValueError(f"DQN: the network was built for {self.n_features_} features and {self.n_actions_} "
                             f"actions; task {task.name!r} has {common.n_features(task)} and {task.env.n_actions}")

    def q_values(self, task, state) -> np.ndarray:
        """Q-values ``(..., n_actions)`` of observed states (frozen network, float64)."""
        torch = require_torch()
        self._check(task)
        x = torch.as_tensor(common.features(task, state))
        with torch.no_grad():
            return self.net_(x).double().numpy()

    def _forward_record(self, x):
        """Network output and the activations after every hidden ReLU."""
        acts, h = [], x
        for layer in self.net_:
            h = layer(h)
            if isinstance(layer, require_torch().nn.ReLU):
                acts.append(h)
        return h, acts

    # ------------------------------------------------------------------ training
    def _update(self):
        torch = require_torch()
        cfg = self.config
        batch = self.buffer_.sample(cfg.batch_size, self._rng)
        obs = torch.from_numpy(batch["obs"])
        next_obs = torch.from_numpy(batch["next_obs"])
        with torch.no_grad():
            target = td_target(torch.from_numpy(batch["reward"]), self.target_net_(next_obs),
                               torch.from_numpy(batch["done"]), cfg.gamma, torch.from_numpy(batch["next_avail"]))
        q = self.net_(obs)
        loss = td_loss(q, torch.from_numpy(batch["action"]), target, cfg.loss, cfg.huber_delta)
        self.optimizer_.zero_grad()
        loss.backward()
        if cfg.grad_clip is not None:
            torch.nn.utils.clip_grad_value_(self.net_.parameters(), cfg.grad_clip)
        if cfg.grad_clip_norm is not None:
            torch.nn.utils.clip_grad_norm_(self.net_.parameters(), cfg.grad_clip_norm)
        self.optimizer_.step()
        self.n_updates_ += 1
        with torch.no_grad():
            if cfg.target_period is not None:
                if self.n_updates_ % cfg.target_period == 0:
                    self.target_net_.load_state_dict(self.net_.state_dict())
            else:  # Polyak: target <- target + tau (online - target)
                torch._foreach_lerp_(list(self.target_net_.parameters()), list(self.net_.parameters()), cfg.tau)
        return float(loss.item())

    def _act(self, q_row: np.ndarray, avail: np.ndarray, eps: float) -> int:
        if self._rng.random() < eps:
            return int(self._rng.choice(np.flatnonzero(avail)))
        return int(np.argmax(np.where(avail, q_row, -np.inf)))

    @_threaded
    def train(self, task, n_episodes: int, seed: int = 0, progress: bool = False) -> xr.Dataset:
        """Train a fresh network on ``task`` for ``n_episodes`` episodes.

        Parameters
        ----------
        task : neurorl Task or str
        n_episodes : int
        seed : int
            Seeds torch (initialisation), the task and ε/replay draws (numpy).
        progress : bool
            Show a progress bar.

        Returns
        -------
        xarray.Dataset
            On dim ``episode``: ``reward`` (sum), ``steps``, ``loss`` (mean over the
            episode's updates; NaN before learning starts), ``epsilon``, ``success``
            (reward > 0), ``truncated``. Also stored as ``history_``.
        """
        torch = require_torch()
        from ...tasks.base import make_task

        task = make_task(task)
        if n_episodes < 1:
            raise ValueError(f"DQN.train: n_episodes must be >= 1, got {n_episodes}")
        cfg = self.config
        self.setup(task, seed)
        rng = self._rng
        rewards = np.zeros(n_episodes)
        steps = np.zeros(n_episodes, np.int64)
        losses = np.full(n_episodes, np.nan)
        eps_arr = epsilon_schedule(np.arange(n_episodes), cfg)
        truncs = np.zeros(n_episodes, bool)
        ts = task.reset(1, rng)
        for ep in common.progress(range(n_episodes), progress, f"DQN on {task.name}"):
            eps = float(eps_arr[ep])
            total, n, ep_losses = 0.0, 0, []
            state = int(task.observe(ts)[0])
            x = common.features(task, state)
            while True:
                avail = _avail(task, state)
                with torch.no_grad():
                    q_row = self.net_(torch.from_numpy(x)).numpy()
                a = self._act(q_row, avail, eps)
                ts, out = task.step(ts, np.array([a]), rng)
                n += 1
                self.n_steps_ += 1
                r = float(out["reward"][0])
                total += r
                done = bool(out["done"][0])
                truncated = bool(out["truncated"][0]) if "truncated" in out else False
                cut = cfg.max_episode_steps is not None and n >= cfg.max_episode_steps and not done
                nxt = int(out["next_state"][0])
                nx = common.features(task, nxt)
                self.buffer_.add(x, a, r, nx, float(done and not truncated), _avail(task, nxt))
                ready = len(self.buffer_) >= max(cfg.learning_starts, cfg.batch_size)
                if ready and self.n_steps_ % cfg.train_every == 0:
                    ep_losses.append(self._update())
                if done or cut:
                    truncs[ep] = truncated or cut
                    if cut:  # start a fresh episode on the task's own terms
                        ts = task.reset(1, rng)
                    break
                state, x = nxt, nx
            rewards[ep], steps[ep] = total, n
            losses[ep] = np.mean(ep_losses) if ep_losses else np.nan
        self.history_ = xr.Dataset(
            {"reward": ("episode", rewards), "steps": ("episode", steps), "loss": ("episode", losses),
             "epsilon": ("episode", eps_arr), "success": ("episode", rewards > 0), "truncated": ("episode", truncs)},
            coords={"episode": np.arange(n_episodes)},
            attrs={"agent": "dqn", "task": task.name, "task_options": repr(task), "seed": int(seed),
                   "config": repr(cfg), "n_updates": int(self.n_updates_)},
        )
        return self.history_

    # ------------------------------------------------------------------ evaluation
    @_threaded
    def evaluate(self, task, *, n_episodes: int = 100, seed: int = 0, max_steps: int | None = None) -> xr.Dataset:
        """Greedy (ε = 0) episodes with the frozen network.

        If the task enumerates its start conditions (``all_starts``, ``start`` and
        ``shortest_path``, as half_triangle does) every start is played once and compared
        with the shortest path; otherwise ``n_episodes`` episodes are drawn with ``seed``.

        Parameters
        ----------
        task : neurorl Task or str
        n_episodes : int
            Episodes for tasks without enumerable starts.
        seed : int
        max_steps : int, optional
            Step cap per episode (default: the task's ``max_steps`` option, else
            ``config.max_episode_steps``, else 1,000).

        Returns
        -------
        xarray.Dataset
            On dim ``episode``: ``reward``, ``steps``, ``success`` (reward > 0) and, for
            enumerable tasks, ``tile``, ``triangle``, ``odor``, ``shortest``, ``excess_steps``
            (steps − shortest, NaN on failures), ``aliased``. Attributes: ``success_rate``,
            ``mean_steps`` and ``mean_shortest`` over successes, ``mean_excess_steps``,
            ``optimal_rate`` (fraction of episodes rewarded in exactly the shortest number of
            steps), and over the non-aliased starts ``success_rate_unaliased``.
        """
        from ...tasks.base import make_task

        task = make_task(task)
        self._check(task)
        rng = np.random.default_rng(seed)
        cap = max_steps or task.options.get("max_steps") or self.config.max_episode_steps or 1000
        enumerable = all(hasattr(task, m) for m in ("all_starts", "start", "shortest_path"))
        if enumerable:
            starts = task.all_starts()
            ts = task.start(starts["tile"], starts["triangle"], starts["odor"])
        else:
            ts = task.reset(int(n_episodes), rng)
        n = next(iter(ts.values())).shape[0]
        active = np.ones(n, bool)
        reward = np.zeros(n)
        steps = np.zeros(n, np.int64)
        for _ in range(int(cap)):
            if not active.any():
                break
            s = task.observe(ts)
            q = self.q_values(task, s)
            a = np.argmax(np.where(task.env.available[s], q, -np.inf), axis=-1)
            ts, out = task.step(ts, a, rng)
            reward += np.where(active, out["reward"], 0.0)
            steps += active
            active &= ~np.asarray(out["done"], bool)
        success = reward > 0
        data = {"reward": ("episode", reward), "steps": ("episode", steps), "success": ("episode", success)}
        attrs = {"success_rate": float(success.mean()), "mean_steps": float(steps[success].mean()) if success.any()
                 else float("nan"), "task": task.name, "task_options": repr(task), "greedy": 1}
        if enumerable:
            shortest = task.shortest_path(starts["tile"], starts["triangle"], starts["odor"])
            excess = np.where(success, steps - shortest, np.nan)
            aliased = np.asarray(task.aliased_start(starts["tile"], starts["triangle"]), bool) \
                if hasattr(task, "aliased_start") else np.zeros(n, bool)
            data.update({k: ("episode", starts[k]) for k in ("tile", "triangle", "odor")})
            data.update({"shortest": ("episode", shortest), "excess_steps": ("episode", excess),
                         "aliased": ("episode", aliased)})
            attrs.update({
                "mean_shortest": float(shortest[success].mean()) if success.any() else float("nan"),
                "mean_excess_steps": float(np.nanmean(excess)) if success.any() else float("nan"),
                "optimal_rate": float(np.mean(success & (steps == shortest))),
                "success_rate_unaliased": float(success[~aliased].mean()) if (~aliased).any() else float("nan"),
            })
        return xr.Dataset(data, coords={"episode": np.arange(n)}, attrs=attrs)

    # ------------------------------------------------------------------ latents
    @_threaded
    def latents(self, task, *, n_episodes: int = 20, seed: int = 0, epsilon: float | None = None,
                max_trials: int = 100_000):
        """Run the frozen network on ``n_episodes`` episodes; return ``(trials, latents)``.

        One subject; trials are the decisions of consecutive episodes (as
        :func:`neurorl.simulate` records an episodic task). Latents are described in the
        module docstring.

        Parameters
        ----------
        task : neurorl Task or str
        n_episodes : int
        seed : int
            Seeds the task and the ε-greedy draws.
        epsilon : float, optional
            ε of the acting policy (default ``config.eps_end``; 0 = greedy).
        max_trials : int
            Safety cap on the number of decisions.

        Returns
        -------
        trials, latents : xarray.Dataset
        """
        torch = require_torch()
        from ...tasks.base import make_task

        task = make_task(task)
        self._check(task)
        cfg = self.config
        eps = cfg.eps_end if epsilon is None else float(epsilon)
        if not 0.0 <= eps <= 1.0:
            raise ValueError(f"DQN.latents: epsilon must be in [0, 1], got {eps}")
        rng = np.random.default_rng(seed)
        ts = task.reset(1, rng)
        cols = {k: [] for k in ("state", "choice", "reward", "next_state", "done")}
        cov = {k: [] for k in task.covariates}
        rec = {k: [] for k in ("q", "activations", "next_q", "avail", "next_avail")}
        episodes = 0
        for _ in range(int(max_trials)):
            s = task.observe(ts)
            avail = task.env.available[s]
            with torch.no_grad():
                qt, acts = self._forward_record(torch.from_numpy(common.features(task, s)))
            q = qt.double().numpy()
            greedy = np.argmax(np.where(avail, q, -np.inf), axis=-1)
            explore = rng.random(1) < eps
            rand = np.array([rng.choice(np.flatnonzero(avail[0]))])
            a = np.where(explore, rand, greedy)
            ts, out = task.step(ts, a, rng)
            with torch.no_grad():
                nq = self.net_(torch.from_numpy(common.features(task, out["next_state"]))).double().numpy()
            cols["state"].append(s[0])
            cols["choice"].append(a[0])
            for k in ("reward", "next_state", "done"):
                cols[k].append(out[k][0])
            for k in cov:
                cov[k].append(out[k][0])
            rec["q"].append(q[0])
            rec["activations"].append([h[0].double().numpy() for h in acts])
            rec["next_q"].append(nq[0])
            rec["avail"].append(avail[0])
            rec["next_avail"].append(task.env.available[out["next_state"]][0])
            episodes += int(out["done"][0])
            if episodes >= n_episodes:
                break
        T = len(cols["choice"])
        choice = np.asarray(cols["choice"], np.int64)
        reward = np.asarray(cols["reward"], float)
        done = np.asarray(cols["done"], bool)
        truncated = np.asarray(cov["truncated"], bool) if "truncated" in cov else np.zeros(T, bool)
        terminated = done & ~truncated
        q = np.asarray(rec["q"])
        avail = np.asarray(rec["avail"], bool)
        policy = common.policy_epsilon_greedy(q, eps, avail)
        vl = common.value_latents(q, policy, cfg.latent_tau, avail)
        next_q = np.where(np.asarray(rec["next_avail"], bool), np.asarray(rec["next_q"]), -np.inf)
        chosen = q[np.arange(T), choice]
        rpe = reward + cfg.gamma * np.where(terminated, 0.0, next_q.max(axis=-1)) - chosen
        with np.errstate(divide="ignore"):
            log_prob = np.log(policy[np.arange(T), choice])
        records = {**vl, "rpe": rpe, "chosen_value": chosen, "log_prob": log_prob}
        for i in range(len(rec["activations"][0])):
            records[f"activation_{i}"] = np.asarray([acts[i] for acts in rec["activations"]])
        records = {k: np.asarray(v)[None] for k, v in records.items()}
        attrs = {"agent": "dqn", "task": task.name, "task_options": repr(task), "seed_train": self.seed_,
                 "seed_rollout": int(seed), "epsilon": eps, "latent_tau": cfg.latent_tau, "gamma": cfg.gamma,
                 "config": repr(cfg), "n_updates": int(self.n_updates_),
                 "v_soft": "latent_tau * logsumexp(Q / latent_tau) (softmax soft value); Q trained with max target",
                 "rpe": "r + gamma (1 - terminated) max Q_online(s') - Q_online(s, a)"}
        trials = common.to_trials(
            np.asarray(cols["state"], np.int64)[None], choice[None], reward[None],
            next_state=np.asarray(cols["next_state"], np.int64)[None], done=done[None], env=task.env,
            covariates={k: np.asarray(v)[None] for k, v in cov.items()},
            attrs={"task": task.name, "task_options": repr(task), "agent": "dqn"},
        )
        latents = common.to_latents(records, n_actions=self.n_actions_, attrs=attrs,
                                    subjects=trials["subject"].values)
        return trials, latents

    # ------------------------------------------------------------------ checkpoints
    def save(self, path) -> Path:
        """Save network, target network, optimizer, config and seed to ``path``."""
        self._check()
        return common.save_checkpoint(
            path, _Pair(self.net_, self.target_net_), self.optimizer_, self.config, self.n_updates_,
            seed=self.seed_, n_features=self.n_features_, n_actions=self.n_actions_, task=self.task_name_,
            n_steps=self.n_steps_,
        )

    @classmethod
    def load(cls, path) -> "DQN":
        """Rebuild a trainer from :meth:`save` (networks and optimizer state restored)."""
        torch = require_torch()
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
        cfg = DQNConfig(**blob["config"])
        extra = blob["extra"]
        self = cls(cfg)
        self.n_features_, self.n_actions_ = int(extra["n_features"]), int(extra["n_actions"])
        self.seed_, self.task_name_ = int(extra["seed"]), extra["task"]
        self.net_ = make_mlp(self.n_features_, cfg.hidden, self.n_actions_)
        self.target_net_ = make_mlp(self.n_features_, cfg.hidden, self.n_actions_)
        self.optimizer_ = _optimizer(self.net_, cfg)
        info = common.load_checkpoint(path, _Pair(self.net_, self.target_net_), self.optimizer_)
        self.n_updates_ = int(info["step"])
        self.n_steps_ = int(extra.get("n_steps", 0))
        self.buffer_ = common.ReplayBuffer(cfg.buffer_size, self.n_features_, self.n_actions_)
        self._torch_gen, self._rng = None, np.random.default_rng(self.seed_)
        return self


class _Pair:
    """Online + target network seen as one module by the checkpoint functions."""

    def __init__(self, net, target):
        self.net, self.target = net, target

    def state_dict(self):
        return {"net": self.net.state_dict(), "target": self.target.state_dict()}

    def load_state_dict(self, sd):
        self.net.load_state_dict(sd["net"])
        self.target.load_state_dict(sd["target"])
