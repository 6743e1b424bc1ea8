"""Distributional TD learning with asymmetric learning rates (agents.md §6; Dabney et al. 2020).

Each value-table item keeps ``N`` channels ``Z_i`` (``n_channels``, default 10).
Channel ``i`` has an optimism level ``tau_i`` and rates

``alpha_i^+ = alpha * sqrt(tau_i / (1 - tau_i))``, ``alpha_i^- = alpha * sqrt((1 - tau_i) / tau_i)``

[S: matomatical/neuRL ``NamingAsymmetries.ipynb``], so ``tau_i = alpha_i^+ / (alpha_i^+ +
alpha_i^-)`` and ``alpha_i^+ alpha_i^- = alpha^2`` [D]. After a trial with choice ``a``
in state ``s``, outcome ``r`` and next state ``s'``, every channel of the chosen item
moves by the asymmetric step ``rate(d) * d`` with ``rate(d) = alpha_i^+`` if ``d > 0``
else ``alpha_i^-`` (ties use ``alpha^-`` as in the source). On one-step tasks
``d = r - Z_i(s, a)`` and the fixed point of channel ``i`` is the ``tau_i``-expectile
of the reward distribution: ``tau E[(r - z)_+] = (1 - tau) E[(z - r)_+]``.

Choices: ``pi = softmax(beta * q)`` over the available actions, with ``q(s, a)``
the channel mean of ``Z(s, a, .)``.

Deviations from the source (neuro-nav ``DistQ``), so that replay is exact
-----------------------------------------------------------------------
[A] Rates are deterministic: ``tau_i = (i + 1/2) / N`` on an even grid in
    (0, 1), not ``alpha^+, alpha^- ~ U(0.001, 0.02)`` drawn at random.
[A] Bootstrap: the source draws one channel ``j`` of a next action ``a'`` (the
    action taken next in its on-policy mode, an argmax in its off-policy mode) and
    uses ``r + gamma Z(s', a', j)`` for every channel. Here the update is the
    *expectation* of the on-policy update over ``j`` (uniform) and over
    ``a' ~ pi(.|s')``, the agent's own softmax policy at ``s'`` from the
    pre-update table:
    ``Z_i += sum_a' pi(a'|s') mean_j rate(d_{i a' j}) d_{i a' j}``, with
    ``d_{i a' j} = r + gamma (1 - done) Z(s', a', j) - Z_i(s, a)``.
    This keeps the spread of the next state's return distribution (a mean
    bootstrap would collapse it) and, unlike a greedy ``a'``, is smooth in the
    values (greedy ties make the update discontinuous, and floating-point
    near-ties then differ between the NumPy and PyTensor backends).
    With ``n_channels = 1`` the rule is expected SARSA.
[A] The source acts on one random channel with ``beta = 1e4``; here the policy is
    a softmax on the channel mean with a free ``beta`` (default 3, as for
    ``q_learning`` with rewards in [0, 1]).
[A] ``alpha`` is bounded above by ``sqrt(tau_1 / (1 - tau_1))`` (``tau_1`` the smallest
    level) so that every rate ``alpha_i^\\pm`` lies in (0, 1); default
    ``min(0.05, half that bound)``.
[A] Shown values (``EnvSpec.known_value``) set every channel of that action to
    the shown value (a known amount has a point distribution) and are never
    learnt. Channels start at the option ``q0`` (default 0).

Latents
-------
``expectiles`` (trial, channel)
    ``Z(s, a_t, .)`` of the chosen action, before the update.
``rpe_channels`` (trial, channel)
    ``r + gamma (1 - done) sum_a' pi(a'|s') mean_j Z(s', a', j) - Z_i(s, a)`` (the
    expectation of ``d_{i a' j}``; on one-step tasks exactly ``r - Z_i``).
``tau_channels`` (trial, channel)
    The optimism levels. They are constant, but the core's latent datasets
    carry only ``(subject, trial, ...)`` variables, so they are repeated on
    every trial (also available as ``agent.tau_channels``).
``q`` (channel mean per action), ``rpe`` (channel mean of ``rpe_channels``),
``chosen_value`` (``q(s, a)``), and the shared ``q_soft = q``, ``v``, ``v_soft``
(temperature ``1 / beta``), ``policy``, ``entropy``.
"""

from __future__ import annotations

import math

import numpy as np

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take

__all__ = ["DistributionalTD", "tau_grid", "asymmetric_rates"]


def tau_grid(n_channels: int) -> np.ndarray:
    """Optimism levels ``(i + 1/2) / N``, i = 0..N-1."""
    return (np.arange(n_channels) + 0.5) / n_channels


def asymmetric_rates(alpha, taus, ops):
    """``(alpha_pos, alpha_neg)``, each ``(n, N)``, for base rates ``alpha`` (n,) and levels ``taus`` (N,)."""
    up = ops.asarray(np.sqrt(taus / (1.0 - taus)))
    down = ops.asarray(np.sqrt((1.0 - taus) / taus))
    return alpha[:, None] * up[None, :], alpha[:, None] * down[None, :]


@register_agent
class DistributionalTD(Agent):
    """Distributional TD with asymmetric rates on an even optimism grid (agents.md §6).

    Parameters (free)
    -----------------
    alpha : float in (0, sqrt(tau_1 / (1 - tau_1))), default min(0.05, bound / 2)
        Base learning rate (geometric mean of each channel's two rates).
    beta : float in (0, inf), default 3
        Inverse temperature of the softmax on the channel mean.

    Options
    -------
    n_channels : int >= 1, default 10
        Number of channels ``N``. ``n_channels = 1`` is expected SARSA (``tau = 1/2``).
    gamma : float in [0, 1], default 0.9
        Discount factor.
    q0 : float, default 0.0
        Initial value of every channel.
    fixed : dict, optional
        Parameters held constant.
    """

    name = "distributional_td"
    family = "distributional"
    latent_dims = {**VALUE_LATENTS, "expectiles": ("channel",), "rpe_channels": ("channel",),
                   "tau_channels": ("channel",)}
    null_policy_params = {"beta": 1e-12}

    def __init__(self, *, n_channels: int = 10, gamma: float = 0.9, q0: float = 0.0, fixed=None):
        if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
            raise ValueError(f"distributional_td: n_channels must be a positive integer, got {n_channels!r}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"distributional_td: gamma must be in [0, 1], got {gamma}")
        self.tau_channels = tau_grid(int(n_channels))
        super().__init__(fixed=fixed, n_channels=int(n_channels), gamma=float(gamma), q0=float(q0))

    @property
    def alpha_max(self) -> float:
        """Upper bound of ``alpha``: every channel rate stays below 1."""
        t = float(self.tau_channels[0])
        return math.sqrt(t / (1.0 - t))

    def param_spec(self):
        hi = self.alpha_max
        return [
            Param("alpha", 0.0, hi, min(0.05, hi / 2), doc="base rate; channel rates alpha*sqrt(tau/(1-tau))^(+-1)"),
            Param("beta", 0.0, float("inf"), 3.0, doc="inverse temperature on the channel mean"),
        ]

    def init(self, p, env, n, ops):
        return {"Z": ops.zeros((n, env.n_items * self.options["n_channels"])) + self.options["q0"]}

    def _channels(self, Z, items, ops):
        """``Z`` of ``items`` (n, A) as (n, A, N)."""
        N = self.options["n_channels"]
        idx = items[..., None] * N + ops.asarray(np.arange(N), dtype="int64")
        return ops.gather(Z, idx)

    def decide(self, p, s, obs, ops):
        zs = self._channels(s["Z"], obs["items"], ops)
        zs = ops.where(obs["known"][..., None], obs["known_value"][..., None], zs)
        q = ops.mean(zs, axis=-1)
        policy, logp = softmax_policy(p["beta"][:, None] * q, obs["avail"], ops)
        out = shared_latents(q, policy, 1.0 / p["beta"], ops)
        taus = p["alpha"][:, None] * 0.0 + ops.asarray(self.tau_channels)[None, :]
        out.update(policy=policy, log_policy=logp, tau_channels=taus, _z=zs)
        return out

    def learn(self, p, s, obs, dec, ops):
        env, o = self.env, self.options
        N = o["n_channels"]
        a1h = ops.onehot(obs["choice"], env.n_actions)
        z_chosen = ops.sum(dec["_z"] * a1h[:, :, None], axis=1)  # (n, N)
        # next state's channels and the acting policy there (from the pre-update table)
        zn = ops.where(obs["next_known"][:, :, None], obs["next_known_value"][:, :, None],
                       self._channels(s["Z"], obs["next_items"], ops))
        w, _ = softmax_policy(p["beta"][:, None] * ops.mean(zn, axis=-1), obs["next_avail"], ops)  # (n, A)
        terminal = obs["done"] > 0
        cont = (o["gamma"] * (1.0 - obs["done"]))[:, None, None]
        target = obs["reward"][:, None, None] + cont * ops.where(terminal[:, None, None], 0.0, zn)  # (n, A, N)
        d = target[:, None, :, :] - z_chosen[:, :, None, None]  # (n, i, a', j)
        a_pos, a_neg = asymmetric_rates(p["alpha"], self.tau_channels, ops)
        rate = ops.where(d > 0, a_pos[:, :, None, None], a_neg[:, :, None, None])
        weight = w[:, None, :, None] / N
        inc = ops.sum(ops.sum(weight * rate * d, axis=-1), axis=-1)  # (n, N)
        rpe_ch = ops.sum(ops.sum(weight * d, axis=-1), axis=-1)
        learnt = 1.0 - take(ops.where(obs["known"], 1.0, 0.0), a1h, ops)
        Z = s["Z"]
        for i in range(N):
            Z = ops.scatter_add(Z, obs["chosen_item"] * N + i, inc[:, i] * learnt)
        return {"Z": Z}, {
            "expectiles": z_chosen, "rpe_channels": rpe_ch, "rpe": ops.mean(rpe_ch, axis=-1),
            "chosen_value": take(dec["q"], a1h, ops),
        }
