"""Stein variational policy gradient, tabular (Liu, Ramachandran, Liu & Peng 2017, UAI; agents.md §11).

An ensemble of ``P`` softmax-policy parameter particles ``theta_j`` (one logit per value-table item,
``EnvSpec.item``) is moved by Stein variational gradient descent toward ``q(theta) ∝ exp(J(theta) /
alpha) q0(theta)`` with a Gaussian prior ``q0 = N(0, prior_sd^2 I)`` on the logits
(``prior_sd=None``: flat). Written once against the ops layer like every agent, so it simulates,
replays, and fits by MLE / MAP and in PyMC.

Acting (documented choice)
--------------------------
The agent acts with the **mixture** policy ``pi(a|s) = (1/P) sum_j softmax(theta_j(s, .))(a)``. The
alternative of the reference -- one particle drawn uniformly per trial, then its softmax -- has the
same choice probability when the draw is not observed (the mixture), so both acting rules give the
same choice likelihood; the mixture is used for learning too (below), which keeps replay exact.

Learning (one row: state s, action a, reward r, next state s')
--------------------------------------------------------------
* Critic (baseline): ``delta = r + gamma (1 - done) V(s') - V(s)``, ``V(s) += alpha_v delta``.
* Policy gradient of particle j with the one-step advantage ``delta`` and an importance weight for
  acting by the mixture: ``g_j = delta * (pi_j(a|s) / pi(a|s)) * (onehot(a) - pi_j(.|s))`` on the
  items of s (0 elsewhere).
* RBF kernel on the particles' full logit vectors, ``k(x, y) = exp(-||x - y||^2 / h)``, median
  heuristic ``h = max(med / log P, h_min)`` with ``med`` the median of the squared pairwise
  distances over the ``P (P - 1) / 2`` pairs (a sorting network of min/max, so it is differentiable
  almost everywhere and runs on every backend) and ``h_min = 1e-6`` (particles that coincide).
* Stein update, ``alpha`` weighing the repulsive term (and the prior):
  ``theta_i += eta (1/P) sum_j [k(theta_j, theta_i) (g_j - alpha theta_j / prior_sd^2)
  + alpha grad_{theta_j} k(theta_j, theta_i)]``
  with ``grad_{theta_j} k(theta_j, theta_i) = -(2 / h) (theta_j - theta_i) k`` (``h`` held fixed, as in
  SVGD). This is the paper's ``phi`` with target ``exp(J / alpha)`` multiplied by ``alpha``
  (``eta`` = the paper's step size times ``1 / alpha``).

Without the prior the repulsion keeps spreading the particles (the median heuristic scales the force
as 1 / spread, so the spread grows without bound, about as the square root of time); the prior bounds
it. Limits: ``alpha -> 0`` gives ``P`` kernel-smoothed policy gradients with no repulsion; ``P = 1`` is
plain (importance-weight-free) actor-critic policy gradient.

Assumptions ([A])
-----------------
[A] Particles start at ``theta_j = sigma0 * xi_j`` with ``xi_j ~ N(0, I)`` drawn once from ``seed``
    (an option; the same for every subject, so replay is exact). ``sigma0 -> 0`` and ``eta -> 0``
    give the uniform policy (``null_policy_params``).
[A] The advantage is the critic's one-step TD error (not a Monte-Carlo return), so learning is online.
[A] Shown values (``EnvSpec.known_value``) enter as fixed logits of that action for every particle and
    are never updated.

Latents
-------
``policy`` (mixture), ``entropy`` (of the mixture), ``particle_policy`` (particle, action),
``particle_spread`` (mean pairwise Euclidean distance of the particles, before the update),
``bandwidth`` (``h``), ``q`` (mean logit over particles of each action: preferences, not values;
``q_soft = q``), ``v`` (``sum pi q``), ``baseline`` (``V(s)``), ``rpe`` (``delta``), ``chosen_value``.
"""

from __future__ import annotations

import math

import numpy as np

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, take

__all__ = ["SVPG", "median_sorting_network"]

H_MIN = 1e-6


def median_sorting_network(values, ops):
    """Median of a list of equally shaped arrays, elementwise, by odd-even transposition sort (min/max only)."""
    v = list(values)
    m = len(v)
    for rnd in range(m):
        for i in range(rnd % 2, m - 1, 2):
            lo, hi = ops.minimum(v[i], v[i + 1]), ops.maximum(v[i], v[i + 1])
            v[i], v[i + 1] = lo, hi
    if m % 2:
        return v[m // 2]
    return 0.5 * (v[m // 2 - 1] + v[m // 2])


@register_agent
class SVPG(Agent):
    """Tabular Stein variational policy gradient with mixture acting (module docstring).

    Parameters
    ----------
    n_particles : int >= 1, default 5
        Number of particles ``P``.
    gamma : float in [0, 1], default 0.9
        Discount of the critic.
    seed : int, default 0
        Seed of the particles' initial directions ``xi``.
    prior_sd : float or None, default 2.0
        SD of the Gaussian prior ``q0`` on every logit (None: flat prior).
    fixed : dict, optional
        Parameters held constant.
    """

    name = "svpg"
    family = "policy_gradient"
    latent_dims = {**VALUE_LATENTS, "particle_policy": ("particle", "action"), "particle_spread": (),
                   "bandwidth": (), "baseline": ()}
    null_policy_params = {"sigma0": 1e-12, "eta": 1e-12}

    def __init__(self, *, n_particles: int = 5, gamma: float = 0.9, seed: int = 0, prior_sd=2.0, fixed=None):
        if prior_sd is not None and (isinstance(prior_sd, bool) or not float(prior_sd) > 0):
            raise ValueError(f"svpg: prior_sd must be None or > 0, got {prior_sd!r}")
        if isinstance(n_particles, bool) or not isinstance(n_particles, (int, np.integer)) or n_particles < 1:
            raise ValueError(f"svpg: n_particles must be a positive integer, got {n_particles!r}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"svpg: gamma must be in [0, 1], got {gamma}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"svpg: seed must be an int, got {seed!r}")
        super().__init__(fixed=fixed, n_particles=int(n_particles), gamma=float(gamma), seed=int(seed),
                         prior_sd=None if prior_sd is None else float(prior_sd))

    def param_spec(self):
        return [
            Param("eta", 0.0, float("inf"), 0.5, doc="Stein step size"),
            Param("alpha", 0.0, float("inf"), 0.2, doc="temperature: weight of the repulsive kernel term"),
            Param("alpha_v", 0.0, 1.0, 0.2, doc="critic (baseline) learning rate"),
            Param("sigma0", 0.0, float("inf"), 1.0, doc="scale of the particles' initial logits"),
        ]

    def _xi(self, env) -> np.ndarray:
        rng = np.random.default_rng(self.options["seed"])
        return rng.standard_normal((self.options["n_particles"], env.n_items))

    def init(self, p, env, n, ops):
        xi = ops.asarray(self._xi(env))
        return {"theta": p["sigma0"][:, None, None] * xi[None], "V": ops.zeros((n, env.n_states))}

    # -- helpers ------------------------------------------------------------------------
    def _particle_logits(self, theta, items, known, known_value, ops):
        oh = ops.onehot(items, self.env.n_items)  # (n, A, I)
        logits = ops.sum(theta[:, :, None, :] * oh[:, None, :, :], axis=-1)  # (n, P, A)
        return ops.where(known[:, None, :], known_value[:, None, :], logits), oh

    def _kernel(self, theta, ops):
        """``(K, h, sq)``: kernel matrix (n, P, P), bandwidth (n,), squared distances (n, P, P)."""
        Pn = self.options["n_particles"]
        diff = theta[:, :, None, :] - theta[:, None, :, :]
        sq = ops.sum(diff * diff, axis=-1)
        if Pn == 1:
            h = ops.sum(sq, axis=(1, 2)) * 0.0 + 1.0
        else:
            pairs = [sq[:, i, j] for i in range(Pn) for j in range(i + 1, Pn)]
            h = ops.maximum(median_sorting_network(pairs, ops) / math.log(Pn), H_MIN)
        return ops.exp(-sq / h[:, None, None]), h, sq

    # -- rule ---------------------------------------------------------------------------
    def decide(self, p, s, obs, ops):
        avail = obs["avail"]
        logits, _ = self._particle_logits(s["theta"], obs["items"], obs["known"], obs["known_value"], ops)
        masked = ops.where(avail[:, None, :], logits, -1e30)
        logp_j = masked - ops.logsumexp(masked, axis=-1, keepdims=True)  # (n, P, A)
        pi_j = ops.where(avail[:, None, :], ops.exp(logp_j), 0.0)
        Pn = self.options["n_particles"]
        logp = ops.logsumexp(logp_j, axis=1) - math.log(Pn)
        logp = ops.where(avail, logp, -1e30)
        policy = ops.where(avail, ops.exp(logp), 0.0)
        q = ops.sum(logits, axis=1) / Pn
        out = shared_latents(q, policy, 1.0, ops)
        _, h, sq = self._kernel(s["theta"], ops)
        if Pn > 1:
            dist = [ops.sqrt(sq[:, i, j] + 1e-300) for i in range(Pn) for j in range(i + 1, Pn)]
            spread = sum(dist[1:], dist[0]) / len(dist)
        else:
            spread = h * 0.0
        out.update(policy=policy, log_policy=logp, particle_policy=pi_j, particle_spread=spread, bandwidth=h,
                   baseline=ops.gather(s["V"], obs["state"][:, None])[:, 0])
        return out

    def learn(self, p, s, obs, dec, ops):
        env, gamma = self.env, self.options["gamma"]
        Pn = self.options["n_particles"]
        a1h = ops.onehot(obs["choice"], env.n_actions)
        v_next = ops.gather(s["V"], obs["next_state"][:, None])[:, 0]
        delta = obs["reward"] + gamma * (1.0 - obs["done"]) * ops.where(obs["done"] > 0, 0.0, v_next) - dec["baseline"]
        V = ops.scatter_add(s["V"], obs["state"], p["alpha_v"] * delta)
        pi_j = dec["particle_policy"]  # (n, P, A)
        pa_j = ops.sum(pi_j * a1h[:, None, :], axis=-1)  # (n, P)
        pa = ops.sum(dec["policy"] * a1h, axis=-1)  # (n,)
        w = pa_j / ops.maximum(pa, 1e-300)[:, None]
        learnt = ops.where(obs["avail"] & ~obs["known"], 1.0, 0.0)  # (n, A)
        g_act = (delta[:, None] * w)[:, :, None] * (a1h[:, None, :] - pi_j) * learnt[:, None, :]  # (n, P, A)
        oh = ops.onehot(obs["items"], env.n_items)  # (n, A, I)
        g = ops.sum(g_act[:, :, :, None] * oh[:, None, :, :], axis=2)  # (n, P, I)
        theta = s["theta"]
        if self.options["prior_sd"] is not None:
            g = g - p["alpha"][:, None, None] * theta / self.options["prior_sd"] ** 2
        K, h, _ = self._kernel(theta, ops)  # K[j, i]
        drive = ops.sum(K[:, :, :, None] * g[:, :, None, :], axis=1)  # sum_j K_ji g_j -> (n, P_i, I)
        ksum = ops.sum(K, axis=1)  # sum_j K_ji (n, P_i)
        kth = ops.sum(K[:, :, :, None] * theta[:, :, None, :], axis=1)  # sum_j K_ji theta_j
        repulse = (2.0 / h)[:, None, None] * (theta * ksum[:, :, None] - kth)  # sum_j -(2/h)(theta_j - theta_i) K_ji
        phi = (drive + p["alpha"][:, None, None] * repulse) / Pn
        new = {"theta": theta + p["eta"][:, None, None] * phi, "V": V}
        return new, {"rpe": delta, "chosen_value": take(dec["q"], a1h, ops)}
