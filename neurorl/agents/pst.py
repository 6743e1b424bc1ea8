"""Probabilistic selection task models of hBayesDM: ``pst_Q`` and ``pst_gainloss_Q``.

Frank, Moustafa, Haughey, Curran & Hutchison (2007), PNAS 104:16311, as in
hBayesDM's ``pst_Q.stan`` and ``pst_gainloss_Q.stan`` [S]. Six options (A-F)
are shown in pairs; each option has a value ``ev`` starting at 0::

    P(option1) = sigmoid(beta (ev[option1] - ev[option2]))
    PE = r - ev[co];   ev[co] += alpha PE        (co: the chosen option)

``pst_gainloss_Q`` learns at ``alpha_pos`` where ``PE >= 0`` and at
``alpha_neg`` otherwise.

Layout: each pair shown is a state whose two actions are the two options
(``EnvSpec.item[s] = (option1, option2)``, 0-based option codes), so the
value table is indexed by option. Action 0 is hBayesDM's ``choice = 1`` (the
first option of ``type``), action 1 its ``choice = 0``.
:func:`neurorl.formats.hbayesdm_rl.pst` builds this from hBayesDM's ``type``
column (e.g. 12 = A vs B) and the ``probabilistic_selection`` task simulates
it.

Test phase. hBayesDM scores the training phase only. Here the test-phase
choices (novel pairs, no feedback) can be scored too: the states listed in
``test_states`` are scored by the same policy but never update the values.

Assumptions and choices
-----------------------
[S] Names and bounds are hBayesDM's: ``alpha``, ``alpha_pos``, ``alpha_neg``
    in (0, 1), ``beta`` in (0, 10).
[A] Shared latents: ``q = ev`` of the two shown options, ``q_soft = q``,
    ``tau = 1 / beta``; ``rpe = PE`` (0 on test states), ``chosen_value =
    ev[co]``.
[A] Defaults (simulation starting points): rates 0.3, beta 3.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..params import Param
from ._hbayesdm import PHI
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take

__all__ = ["PSTQ", "PSTGainLossQ"]


class _PST(Agent):
    """Shared rule of the PST models (not registered; see the subclasses).

    Parameters
    ----------
    test_states : sequence of int, default ()
        States (pairs) of the test phase: their choices are scored, their
        outcomes are not learnt.
    fixed : dict, optional
        Parameters held constant.
    """

    family = "pst"
    tasks = ("probabilistic_selection", "bandit")
    latent_dims = VALUE_LATENTS
    null_policy_params = {"beta": 1e-12}
    split_rates: ClassVar[bool] = False
    hbayesdm_priors: ClassVar[dict] = {}

    def __init__(self, *, test_states=(), fixed=None):
        states = tuple(int(s) for s in np.atleast_1d(np.asarray(test_states, dtype=np.int64)))
        if any(s < 0 for s in states):
            raise ValueError(f"{self.name}: test_states must be non-negative state indices, got {states}")
        super().__init__(fixed=fixed, test_states=states)

    def param_spec(self):
        rate = Param("alpha", 0.0, 1.0, 0.3, doc="learning rate")
        if self.split_rates:
            spec = [rate.with_(name="alpha_pos", doc="learning rate where PE >= 0"),
                    rate.with_(name="alpha_neg", doc="learning rate where PE < 0")]
        else:
            spec = [rate]
        return spec + [Param("beta", 0.0, 10.0, 3.0, doc="inverse temperature (hBayesDM bound 10)")]

    def check_env(self, env):
        if env.n_actions != 2:
            raise ValueError(f"{self.name}: PST models need exactly 2 actions (the two options of a pair); the "
                             f"task has {env.n_actions}")
        bad = [s for s in self.options["test_states"] if s >= env.n_states]
        if bad:
            raise ValueError(f"{self.name}: test_states {bad} do not exist (the task has {env.n_states} states)")

    def init(self, p, env, n, ops):
        return {"ev": ops.zeros((n, env.n_items))}

    def decide(self, p, s, obs, ops):
        q = ops.gather(s["ev"], obs["items"])
        policy, logp = softmax_policy(p["beta"][:, None] * q, obs["avail"], ops)
        out = shared_latents(q, policy, 1.0 / p["beta"], ops)
        out.update(policy=policy, log_policy=logp)
        return out

    def learn(self, p, s, obs, dec, ops):
        a1h = ops.onehot(obs["choice"], 2)
        qa = take(dec["q"], a1h, ops)
        pe = obs["reward"] - qa
        if self.split_rates:
            alpha = ops.where(pe >= 0, p["alpha_pos"], p["alpha_neg"])
        else:
            alpha = p["alpha"]
        test = np.zeros(self.env.n_states)
        test[list(self.options["test_states"])] = 1.0
        learns = 1.0 - ops.sum(ops.onehot(obs["state"], self.env.n_states) * ops.asarray(test), axis=-1)
        pe = pe * learns
        return {"ev": ops.scatter_add(s["ev"], obs["chosen_item"], alpha * pe)}, {"rpe": pe, "chosen_value": qa}


@register_agent
class PSTQ(_PST):
    """hBayesDM ``pst_Q``: Q-learning over the six options (alpha, beta)."""

    name = "pst_Q"
    hbayesdm_priors = {"alpha": PHI, "beta": PHI}


@register_agent
class PSTGainLossQ(_PST):
    """hBayesDM ``pst_gainloss_Q``: separate rates for positive and negative prediction errors."""

    name = "pst_gainloss_Q"
    split_rates = True
    hbayesdm_priors = {"alpha_pos": PHI, "alpha_neg": PHI, "beta": PHI}
