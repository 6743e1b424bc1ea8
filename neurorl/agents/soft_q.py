"""Online soft Q-learning (maximum-entropy RL) with a true-value critic (agents.md §2).

The agent maximises ``E[sum_t gamma^t (r_t + tau H(pi(.|s_t)))]`` (Haarnoja et al.
2017; Levine 2018). Two critics run in parallel over the same value-table items
(``EnvSpec.item``):

Soft critic (drives the choices)
    ``pi(.|s) = softmax(Q_soft(s, .) / tau)`` over the available actions;
    ``V_soft(s) = tau * logsumexp(Q_soft(s, .) / tau)`` over the available actions;
    ``delta_soft = r + gamma (1 - done) V_soft(s') - Q_soft(s, a)``;
    ``Q_soft(s, a) += eta * delta_soft``.

True critic (a regressor only; expected SARSA on the acting soft policy)
    ``delta_true = r + gamma (1 - done) sum_a' pi(a'|s') Q_true(s', a') - Q_true(s, a)``;
    ``Q_true(s, a) += eta_true * delta_true``; ``V_true(s) = sum_a pi(a|s) Q_true(s, a)``.
    It converges to ``Q^pi`` of the soft policy.

On one-step tasks (every trial ends its episode: bandits, 2AFC) both critics
learn ``E[r | s, a]``; with ``eta == eta_true`` they are identical and only
``v_soft = v + tau H(pi)`` differs (agents.md §2, one-step caveat). On the
branching task the soft agent prefers the branch with a downstream choice,
``P(0 -> 2) = 1 / (1 + 2^-gamma)`` at any ``tau``.

Assumptions and choices
-----------------------
[A] Both targets are computed from the tables *before* this trial's update;
    ``pi(.|s')`` in the true critic's target is the soft policy at ``s'`` from
    the current (pre-update) ``Q_soft``.
[A] Shown values (``EnvSpec.known_value``) replace both critics' values for
    the decision and for the bootstrap at ``s'``; rows of known actions are
    never updated.
[A] ``V_soft = 0`` and ``V_true = 0`` after a trial that ends its episode.
[A] Both tables start at the option ``q0`` (default 0).
[A] ``null_policy_params`` sets ``tau = 1e10``, which makes the policy uniform
    on one-step tasks. On multi-step tasks a large temperature does *not*
    give a uniform policy: ``Q_soft / tau`` then tends to the discounted
    downstream entropy, which still favours branches with more choices.

Latents
-------
``q_soft``, ``v_soft``, ``q`` (true critic), ``v`` (``sum pi Q_true``), ``policy``,
``entropy``, ``rpe`` (soft TD error), ``rpe_true``, ``chosen_value`` (``Q_soft(s, a)``),
``chosen_value_true`` (``Q_true(s, a)``), all at decision time (before the update).
"""

from __future__ import annotations

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, take

__all__ = ["SoftQ"]


@register_agent
class SoftQ(Agent):
    """Online soft Q-learning with a parallel expected-SARSA true critic (agents.md §2).

    Parameters (free)
    -----------------
    tau : float in (0, inf), default 1
        Temperature of the soft policy and of the soft value.
    eta : float in (0, 1), default 0.1
        Learning rate of the soft critic.
    eta_true : float in (0, 1), default 0.1
        Learning rate of the true (entropy-free) critic.

    Options
    -------
    gamma : float in [0, 1], default 0.98
        Discount factor (agents.md §2 default).
    q0 : float, default 0.0
        Initial value of every learnt item in both critics.
    fixed : dict, optional
        Parameters held constant.
    """

    name = "soft_q"
    family = "soft_q"
    latent_dims = {**VALUE_LATENTS, "rpe_true": (), "chosen_value_true": ()}
    null_policy_params = {"tau": 1e10}
    #: the true critic never feeds the policy: a choice-only fit holds eta_true at its default (its value only
    #: changes the decoded true values)
    choice_irrelevant = ("eta_true",)

    def __init__(self, *, gamma: float = 0.98, q0: float = 0.0, fixed=None):
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"soft_q: gamma must be in [0, 1], got {gamma}")
        super().__init__(fixed=fixed, gamma=float(gamma), q0=float(q0))

    def param_spec(self):
        return [
            Param("tau", 0.0, float("inf"), 1.0, doc="temperature of the soft policy and value"),
            Param("eta", 0.0, 1.0, 0.1, doc="soft-critic learning rate"),
            Param("eta_true", 0.0, 1.0, 0.1, doc="true-critic learning rate"),
        ]

    def init(self, p, env, n, ops):
        q0 = self.options["q0"]
        return {"Qs": ops.zeros((n, env.n_items)) + q0, "Qt": ops.zeros((n, env.n_items)) + q0}

    def _soft(self, q_soft, avail, tau, ops):
        """Policy, log policy and ``V_soft`` of soft values ``(n, A)`` over available actions."""
        logits = ops.masked_logits(q_soft / tau[:, None], avail)
        logp = ops.log_softmax(logits)
        return ops.exp(logp), logp, tau * ops.logsumexp(logits, axis=-1)

    def decide(self, p, s, obs, ops):
        known, kv = obs["known"], obs["known_value"]
        q_soft = ops.where(known, kv, ops.gather(s["Qs"], obs["items"]))
        q_true = ops.where(known, kv, ops.gather(s["Qt"], obs["items"]))
        policy, logp, v_soft = self._soft(q_soft, obs["avail"], p["tau"], ops)
        return {
            "q_soft": q_soft, "q": q_true, "policy": policy, "log_policy": logp,
            "v_soft": v_soft, "v": ops.sum(policy * q_true, axis=-1), "entropy": ops.entropy(policy),
        }

    def learn(self, p, s, obs, dec, ops):
        env, gamma = self.env, self.options["gamma"]
        a1h = ops.onehot(obs["choice"], env.n_actions)
        qa_soft, qa_true = take(dec["q_soft"], a1h, ops), take(dec["q"], a1h, ops)
        shown, shown_value = obs["next_known"], obs["next_known_value"]
        qs_next = ops.where(shown, shown_value, ops.gather(s["Qs"], obs["next_items"]))
        qt_next = ops.where(shown, shown_value, ops.gather(s["Qt"], obs["next_items"]))
        pi_next, _, vs_next = self._soft(qs_next, obs["next_avail"], p["tau"], ops)
        vt_next = ops.sum(pi_next * qt_next, axis=-1)
        cont = gamma * (1.0 - obs["done"])
        terminal = obs["done"] > 0
        delta_soft = obs["reward"] + cont * ops.where(terminal, 0.0, vs_next) - qa_soft
        delta_true = obs["reward"] + cont * ops.where(terminal, 0.0, vt_next) - qa_true
        learnt = 1.0 - take(ops.where(obs["known"], 1.0, 0.0), a1h, ops)
        new = {
            "Qs": ops.scatter_add(s["Qs"], obs["chosen_item"], p["eta"] * delta_soft * learnt),
            "Qt": ops.scatter_add(s["Qt"], obs["chosen_item"], p["eta_true"] * delta_true * learnt),
        }
        return new, {"rpe": delta_soft, "rpe_true": delta_true,
                     "chosen_value": qa_soft, "chosen_value_true": qa_true}
