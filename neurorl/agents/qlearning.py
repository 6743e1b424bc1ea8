"""Rescorla-Wagner / Q-learning (agents.md §1).

One rule covers the whole family; options only decide which parameters are
free, absent ones take neutral values (so there is a single code path):

* ``dual_rates``: ``alpha_pos`` / ``alpha_neg`` instead of ``alpha`` (the
  positive rate applies when ``delta > 0`` strictly, as in HDDM);
* ``forgetting``: unchosen values of the shown state decay toward ``q0`` at
  rate ``phi``;
* ``perseveration``: logit bonus ``kappa`` for repeating the previous choice;
* ``choice_kernel``: kernel ``K += alpha_k (onehot(a) - K)`` with weight ``beta_k``;
* ``lapse``: ``(1 - xi) pi + xi / A``;
* ``epsilon_greedy``: ``(1 - epsilon) greedy + epsilon / A`` replaces the softmax
  (not differentiable in Q; prefer softmax + lapse for fitting);
* ``reward_sensitivity``: outcome scaled by ``rho``.

TD target for multi-step tasks: ``rho r + gamma (1 - done) max_a' Q(s', a')``;
in bandits every trial ends its episode, so the target is ``rho r``.
"""

from __future__ import annotations

import numpy as np

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take, with_lapse

ALPHA = Param("alpha", 0.0, 1.0, 0.3, doc="learning rate")
BETA = Param("beta", 0.0, float("inf"), 3.0, doc="inverse temperature")


@register_agent
class QLearning(Agent):
    """Q-learning / Rescorla-Wagner with softmax (or epsilon-greedy) choice.

    Options
    -------
    dual_rates, forgetting, perseveration, choice_kernel, lapse, epsilon_greedy,
    reward_sensitivity : bool, default False
        Add the corresponding parameters (see module docstring).
    q0 : float, default 0.0
        Initial value of every learnt item (0 as in hBayesDM; use 0.5 for
        Bernoulli rewards as in HSSM).
    gamma : float, default 0.9
        Discount for multi-step tasks (unused where every trial is terminal).
    """

    name = "q_learning"
    family = "q_learning"
    latent_dims = {**VALUE_LATENTS, "dq": (), "kernel": ("action",), "prev_choice": ()}
    null_policy_params = {"beta": 1e-12, "beta_k": 0.0, "kappa": 0.0, "epsilon": 1 - 1e-12}

    def __init__(self, *, dual_rates=False, forgetting=False, perseveration=False, choice_kernel=False,
                 lapse=False, epsilon_greedy=False, reward_sensitivity=False, q0=0.0, gamma=0.9, fixed=None):
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"q_learning: gamma must be in [0, 1], got {gamma}")
        super().__init__(fixed=fixed, dual_rates=dual_rates, forgetting=forgetting, perseveration=perseveration,
                         choice_kernel=choice_kernel, lapse=lapse, epsilon_greedy=epsilon_greedy,
                         reward_sensitivity=reward_sensitivity, q0=float(q0), gamma=float(gamma))

    def param_spec(self):
        o = self.options
        spec = []
        if o["dual_rates"]:
            spec += [ALPHA.with_(name="alpha_pos", doc="learning rate for delta > 0"),
                     ALPHA.with_(name="alpha_neg", doc="learning rate for delta <= 0")]
        else:
            spec.append(ALPHA)
        if o["epsilon_greedy"]:
            spec.append(Param("epsilon", 0.0, 1.0, 0.05, doc="exploration probability"))
        else:
            spec.append(BETA)
        if o["forgetting"]:
            spec.append(Param("phi", 0.0, 1.0, 0.1, doc="forgetting rate toward q0"))
        if o["perseveration"]:
            spec.append(Param("kappa", -float("inf"), float("inf"), 0.0, prior_scale=2.5, doc="stickiness"))
        if o["choice_kernel"]:
            spec += [Param("alpha_k", 0.0, 1.0, 0.3, doc="choice-kernel rate"),
                     Param("beta_k", -float("inf"), float("inf"), 0.0, doc="choice-kernel weight")]
        if o["lapse"]:
            spec.append(Param("xi", 0.0, 1.0, 0.02, prior_loc=-3.0, doc="lapse rate"))
        if o["reward_sensitivity"]:
            spec.append(Param("rho", 0.0, float("inf"), 1.0, doc="reward sensitivity"))
        return spec

    def init(self, p, env, n, ops):
        return {
            "Q": ops.zeros((n, env.n_items)) + self.options["q0"],
            "K": ops.zeros((n, env.n_actions)),
            "prev": ops.zeros((n, env.n_actions)),
        }

    def decide(self, p, s, obs, ops):
        o = self.options
        q = ops.where(obs["known"], obs["known_value"], ops.gather(s["Q"], obs["items"]))
        avail = obs["avail"]
        if o["epsilon_greedy"]:
            masked = ops.where(avail, q, -1e30)
            best = ops.where(masked >= ops.max(masked, axis=-1, keepdims=True) - 1e-12, 1.0, 0.0)
            greedy = best / ops.sum(best, axis=-1, keepdims=True)
            eps = p["epsilon"]
            policy, logp = with_lapse(greedy, avail, eps, ops)
            tau = 0.0 * eps
        else:
            logits = p["beta"][:, None] * q
            if o["perseveration"]:
                logits = logits + p["kappa"][:, None] * s["prev"]
            if o["choice_kernel"]:
                logits = logits + p["beta_k"][:, None] * s["K"]
            policy, logp = softmax_policy(logits, avail, ops)
            tau = 1.0 / p["beta"]
        if o["lapse"]:
            policy, logp = with_lapse(policy, avail, p["xi"], ops)
        out = shared_latents(q, policy, tau, ops)
        actions = ops.asarray(np.arange(self.env.n_actions))
        prev_choice = ops.sum(s["prev"] * actions, axis=-1) - (1.0 - ops.sum(s["prev"], axis=-1))
        out.update(policy=policy, log_policy=logp, kernel=s["K"], prev_choice=prev_choice)
        if self.env.n_actions == 2:
            out["dq"] = q[:, 1] - q[:, 0]
        return out

    def learn(self, p, s, obs, dec, ops):
        o = self.options
        a1h = ops.onehot(obs["choice"], self.env.n_actions)
        Q = s["Q"]
        qa = take(dec["q"], a1h, ops)
        r = obs["reward"] * p["rho"] if o["reward_sensitivity"] else obs["reward"]
        next_q = ops.where(obs["next_known"], obs["next_known_value"], ops.gather(Q, obs["next_items"]))
        next_q = ops.where(obs["next_avail"], next_q, -1e30)
        target = r + o["gamma"] * (1.0 - obs["done"]) * ops.where(obs["done"] > 0, 0.0, ops.max(next_q, axis=-1))
        delta = target - qa
        if o["dual_rates"]:
            alpha = ops.where(delta > 0, p["alpha_pos"], p["alpha_neg"])
        else:
            alpha = p["alpha"]
        learnt = 1.0 - take(ops.where(obs["known"], 1.0, 0.0), a1h, ops)
        if o["forgetting"]:
            shown = ops.sum(ops.onehot(obs["items"], self.env.n_items) * (1.0 - a1h)[:, :, None], axis=1)
            Q = Q + p["phi"][:, None] * (o["q0"] - Q) * ops.minimum(shown, 1.0)
        Q = ops.scatter_add(Q, obs["chosen_item"], alpha * delta * learnt)
        new = {"Q": Q, "prev": a1h, "K": s["K"]}
        if o["choice_kernel"]:
            new["K"] = s["K"] + p["alpha_k"][:, None] * (a1h - s["K"])
        return new, {"rpe": delta, "chosen_value": qa}
