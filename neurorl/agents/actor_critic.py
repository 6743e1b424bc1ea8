"""Tabular actor-critic with an entropy bonus (agents.md §5).

Rule, per trial in state ``s`` with choice ``a``, outcome ``r`` and next state ``s'``:

* actor: preferences ``theta(s, .)``; logits ``l = beta * theta(s, .)`` (unavailable
  actions masked); ``pi = softmax(l)``;
* critic: state values ``V`` (one per state, ``env.n_states``);
  ``delta = r + gamma (1 - done) V(s') - V(s)``; ``V(s) += alpha_v * delta``;
* actor update: ``theta(s, .) += alpha_theta * [delta (onehot(a) - pi) + c_h * grad H]``
  with ``grad H = -pi * (log pi + H)``, the derivative of the policy entropy
  ``H(softmax(l))`` with respect to the logits [D] (checked against finite
  differences in the tests). Only the available actions of ``s`` change.

Entropy enters the actor only, so the critic learns the *true* ``V^pi`` of the
acting policy (agents.md §5).

Assumptions and choices
-----------------------
[A] ``beta`` is a structural option (default 1), not a free parameter. With
    ``theta`` starting at 0 the logits evolve as ``l += beta * alpha_theta * [...]``
    and ``[...]`` depends on ``l`` only through ``pi``, so only the product
    ``beta * alpha_theta`` is identifiable from choices; a free ``beta`` would
    make a flat ridge in the likelihood.
[A] The update is the one written above (the policy gradient with respect to
    the logits, applied to ``theta``); with ``beta != 1`` it is not the exact
    gradient with respect to ``theta`` (which has an extra factor ``beta``).
[A] ``c_h`` is free, in ``(0, inf)`` (log transform), default 0.05 (the value
    used in Wang et al. 2018 reproductions; A3C used 0.01). With
    ``entropy_bonus=False`` it is absent and 0.
[A] ``theta`` is indexed by (state, action), not by value-table items: actor
    preferences are relative to the state's other actions and are not shared
    across states. ``V`` starts at the option ``v0`` (default 0), ``theta`` at 0.
[A] Shown values (``EnvSpec.known_value``) are not used: the actor learns a
    preference for a known-value action from its outcomes like for any other
    action.
[A] ``gamma`` default 0.9 (no reference value; same as ``q_learning``).

Latents
-------
``v``
    Critic value ``V(s)`` of the trial's state (decision time).
``q``
    Action values implied by actor and critic, ``q(s, a) = V(s) + theta(s, a) -
    sum_b pi(b) theta(s, b)`` (the dueling decomposition [A]): ``sum_a pi q = v``
    and ``softmax(beta * q) = pi``, so ``q_soft = q`` with temperature
    ``1 / beta`` and ``v_soft = v + H / beta = logsumexp(beta q) / beta``.
``advantage``
    ``q - v = theta(s, .) - sum_b pi(b) theta(s, b)`` per action (decision time).
    The advantage *estimate* that multiplies the score in the update is ``rpe``.
``logits``
    ``beta * theta(s, .)`` (unmasked).
``rpe``
    ``delta``; ``chosen_value`` is ``V(s)``, the prediction ``delta`` is measured against.
``policy``, ``entropy``, ``q_soft``, ``v_soft``
    As above.
"""

from __future__ import annotations

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, softmax_policy

__all__ = ["ActorCritic", "entropy_grad"]


def entropy_grad(policy, log_policy, avail, ops):
    """``dH/dl = -pi * (log pi + H)`` for ``pi = softmax(l)`` over the available actions (0 elsewhere)."""
    logp = ops.where(avail, log_policy, 0.0)
    h = -ops.sum(policy * logp, axis=-1, keepdims=True)
    return ops.where(avail, -policy * (logp + h), 0.0)


@register_agent
class ActorCritic(Agent):
    """Tabular actor-critic with an entropy bonus in the actor (agents.md §5).

    Parameters (free)
    -----------------
    alpha_v : float in (0, 1), default 0.2
        Critic learning rate.
    alpha_theta : float in (0, 1), default 0.2
        Actor learning rate.
    c_h : float in (0, inf), default 0.05
        Weight of the entropy gradient in the actor update (only with
        ``entropy_bonus=True``).

    Options
    -------
    entropy_bonus : bool, default True
        Include ``c_h``; otherwise the plain actor-critic (``c_h = 0``).
    beta : float > 0, default 1.0
        Scale of the logits, ``l = beta * theta`` (see module docstring: not free).
    gamma : float in [0, 1], default 0.9
        Discount factor.
    v0 : float, default 0.0
        Initial state value.
    fixed : dict, optional
        Parameters held constant.
    """

    name = "actor_critic"
    family = "actor_critic"
    latent_dims = {**VALUE_LATENTS, "advantage": ("action",), "logits": ("action",)}
    null_policy_params = {"alpha_theta": 1e-12}

    def __init__(self, *, entropy_bonus: bool = True, beta: float = 1.0, gamma: float = 0.9, v0: float = 0.0,
                 fixed=None):
        if not float(beta) > 0.0:
            raise ValueError(f"actor_critic: beta must be positive, got {beta}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"actor_critic: gamma must be in [0, 1], got {gamma}")
        super().__init__(fixed=fixed, entropy_bonus=bool(entropy_bonus), beta=float(beta), gamma=float(gamma),
                         v0=float(v0))

    def check_data(self, trials) -> None:
        """Warn when the logit scale ``beta`` does not match the reward range of ``trials`` (docs/agents.md).

        The preferences ``theta`` move by ``alpha_theta * delta`` (reward units) and the logits are ``beta *
        theta`` with ``beta`` an option, not fitted; with ``alpha_theta`` in (0, 1) the fit can absorb the reward
        scale only within limits. The default ``beta = 1`` assumes rewards spanning about 1; warns when ``beta``
        times the reward range is off by more than a factor 20 and names ``beta = 1 / range``.
        """
        from .reward_scale import warn_reward_scale

        b = self.options["beta"]
        warn_reward_scale("actor_critic", trials, assumed=1.0 / b, factor=20.0,
                          what=f"the logit scale beta = {b:g} is per reward unit and not fitted (it assumes rewards "
                               f"spanning about 1 / beta = {1.0 / b:g})",
                          fix=lambda span: f"Use actor_critic:beta={1.0 / span:.3g} (API: make_agent('actor_critic', "
                                           f"beta={1.0 / span:.3g})), or rescale the rewards")

    def param_spec(self):
        spec = [
            Param("alpha_v", 0.0, 1.0, 0.2, doc="critic learning rate"),
            Param("alpha_theta", 0.0, 1.0, 0.2, doc="actor learning rate"),
        ]
        if self.options["entropy_bonus"]:
            spec.append(Param("c_h", 0.0, float("inf"), 0.05, prior_loc=-3.0, doc="entropy-bonus weight"))
        return spec

    def init(self, p, env, n, ops):
        return {"V": ops.zeros((n, env.n_states)) + self.options["v0"],
                "theta": ops.zeros((n, env.n_states, env.n_actions))}

    def decide(self, p, s, obs, ops):
        beta = self.options["beta"]
        s1h = ops.onehot(obs["state"], self.env.n_states)
        theta = ops.sum(s1h[:, :, None] * s["theta"], axis=1)
        v = ops.sum(s1h * s["V"], axis=-1)
        logits = beta * theta
        policy, logp = softmax_policy(logits, obs["avail"], ops)
        entropy = ops.entropy(policy)
        advantage = theta - ops.sum(policy * theta, axis=-1, keepdims=True)
        q = v[:, None] + advantage
        return {
            "q": q, "q_soft": q, "v": v, "v_soft": v + entropy / beta, "policy": policy, "log_policy": logp,
            "entropy": entropy, "advantage": advantage, "logits": logits,
        }

    def learn(self, p, s, obs, dec, ops):
        env, o = self.env, self.options
        s1h = ops.onehot(obs["state"], env.n_states)
        a1h = ops.onehot(obs["choice"], env.n_actions)
        v_next = ops.sum(ops.onehot(obs["next_state"], env.n_states) * s["V"], axis=-1)
        terminal = obs["done"] > 0
        delta = obs["reward"] + o["gamma"] * (1.0 - obs["done"]) * ops.where(terminal, 0.0, v_next) - dec["v"]
        avail = obs["avail"]
        step = delta[:, None] * ops.where(avail, a1h - dec["policy"], 0.0)
        if o["entropy_bonus"]:
            step = step + p["c_h"][:, None] * entropy_grad(dec["policy"], dec["log_policy"], avail, ops)
        new = {
            "V": s["V"] + (p["alpha_v"] * delta)[:, None] * s1h,
            "theta": s["theta"] + s1h[:, :, None] * (p["alpha_theta"][:, None] * step)[:, None, :],
        }
        return new, {"rpe": delta, "chosen_value": dec["v"]}
