"""Two-step hybrid model-based / model-free agent (Daw et al. 2011, Neuron 69:1204; agents.md §8).

Runs on the decision rows of the ``two_step`` task (tasks.md §7): every episode
is two rows, stage 1 in state 0 and stage 2 in state 1 or 2, two actions each.
The stage is read from the state (state 0 = stage 1). Action values
``Q_MF(s, a)`` live in the item table (``EnvSpec.item``; by default items 0-1
are stage 1, 2-3 state 1, 4-5 state 2, the layout of hBayesDM's ``v_mf``).

Decision
--------
* Stage 1: ``Q_MB(a1) = sum_s2 P(s2 | a1) max_b Q_MF(s2, b)`` with the known
  transition matrix (action 0 -> state 1 and action 1 -> state 2 with
  probability ``p_common``); ``Q_net = w Q_MB + (1 - w) Q_MF(0, .)``;
  ``P(a1) ∝ exp(beta1 Q_net(a1) + p 1[a1 = previous a1])``.
* Stage 2: ``P(a2 | s2) ∝ exp(beta2 Q_MF(s2, a2))``.

Learning (Daw's order). The stage-1 update needs ``a2``, so the stage-1 row
only stores its (state, action) in the agent state; all updates happen on the
stage-2 row::

    delta1 = Q_MF(s2, a2) - Q_MF(s1, a1);   Q_MF(s1, a1) += alpha1 delta1
    delta2 = r - Q_MF(s2, a2);              Q_MF(s2, a2) += alpha2 delta2
    Q_MF(s1, a1) += alpha1 lam e,  e = delta2

With ``hbayesdm_eligibility=True`` the eligibility term uses the already
updated stage-2 value, as hBayesDM's ``ts_par4/6/7.stan`` do [S]:
``e = r - Q_MF(s2, a2)_new = (1 - alpha2) delta2``.

Options and hBayesDM
--------------------
``shared_stages`` (one ``alpha`` and ``beta`` for both stages) and
``free_lambda`` (``lam`` free, else 1) select the parameter set:

=========  ===============================================  ===================================
hBayesDM   parameters                                       options
=========  ===============================================  ===================================
ts_par4    alpha, beta, p, w (lambda = 1)                   shared_stages=True, free_lambda=False
ts_par6    alpha1, beta1, alpha2, beta2, p, w (lambda = 1)  free_lambda=False
ts_par7    alpha1, beta1, alpha2, beta2, p, w, lam          (default)
=========  ===============================================  ===================================

plus ``hbayesdm_eligibility=True`` in all three; :meth:`TwoStepHybrid.hbayesdm`
builds these. Parameter names map as in :data:`HBAYESDM_NAMES` (``a1 ->
alpha1``, ``pi -> p``, ``lambda -> lam``, ...). hBayesDM bounds ``pi`` to
(0, 5); here ``p`` is real (alternation allowed). The stickiness enters the
logit outside ``beta1`` as in hBayesDM (``pi_hBayesDM = p``).

Assumptions and choices
-----------------------
[A] ``hbayesdm_eligibility`` defaults to False: the default agent follows the
    paper's equations; the presets reproduce hBayesDM exactly.
[A] Values start at 0 (hBayesDM). The transition matrix is known and fixed.
[A] Rewards on stage-1 rows are ignored (the task pays nothing there).
[A] Latents on stage-2 rows: ``q_mb`` and ``q_net`` equal ``q_mf`` of the
    stage-2 state (at the last stage model-based and model-free values
    coincide). ``rpe_stage1`` (delta1) and ``rpe_stage2`` (delta2) are both
    emitted on the stage-2 row, where they are computed (delta1 needs a2); on
    stage-1 rows both are 0 and so is ``rpe``. Shared ``rpe`` = delta2 on
    stage-2 rows. ``stage`` (1 or 2) is a latent too.
[A] Shared ``q`` = ``q_net`` on stage 1 and ``q_mf`` on stage 2; no separate
    soft critic, so ``q_soft = q`` with the stage's temperature ``1 / beta``
    (the stickiness bonus is not a value, as in ``q_learning``).
[A] A missed (invalid) stage-1 row leaves nothing to update: the stored
    stage-1 action is cleared after each stage-2 row, so the following stage-2
    row updates only its own value (and ``rpe_stage1`` is 0 there). Stickiness
    refers to the last valid stage-1 choice; the ``prev_choice`` latent is the
    most recent stage-1 choice before the row (-1 before any), so on a stage-2
    row it is the same episode's a1.
[A] ``w``, ``lam`` have open bounds (0, 1): pure model-free / model-based
    agents use values such as 1e-12 or 1 - 1e-12 (``free_lambda=False`` gives
    lambda = 1 exactly).
[A] Defaults (simulation starting points): alpha 0.5, beta 5 (rewards 0/1),
    lam 0.6, w 0.5, p 0.1; hBayesDM's Phi_approx/exp priors are not reproduced.
"""

from __future__ import annotations

import numpy as np

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take

__all__ = ["TwoStepHybrid", "KoolHybrid", "HBAYESDM_NAMES"]

INF = float("inf")

#: hBayesDM parameter name -> neurorl parameter name
HBAYESDM_NAMES = {"a": "alpha", "beta": "beta", "a1": "alpha1", "beta1": "beta1", "a2": "alpha2",
                  "beta2": "beta2", "pi": "p", "w": "w", "lambda": "lam"}

_PRESETS = {
    "ts_par4": {"shared_stages": True, "free_lambda": False},
    "ts_par6": {"shared_stages": False, "free_lambda": False},
    "ts_par7": {"shared_stages": False, "free_lambda": True},
}


@register_agent
class TwoStepHybrid(Agent):
    """Daw et al. (2011) hybrid model-based / model-free agent for the two-step task.

    Parameters
    ----------
    shared_stages : bool, default False
        One learning rate ``alpha`` and inverse temperature ``beta`` for both
        stages (hBayesDM ``ts_par4``) instead of ``alpha1, alpha2, beta1, beta2``.
    free_lambda : bool, default True
        Eligibility ``lam`` is a free parameter; if False it is 1.
    hbayesdm_eligibility : bool, default False
        Use hBayesDM's eligibility term ``(1 - alpha2) delta2`` instead of
        ``delta2`` (see the module docstring).
    p_common : float, default 0.7
        Known probability of the common transition.
    fixed : dict, optional
        Parameters held constant.
    """

    name = "two_step_hybrid"
    family = "two_step"
    tasks = ("two_step",)
    latent_dims = {**VALUE_LATENTS, "q_mf": ("action",), "q_mb": ("action",), "q_net": ("action",),
                   "rpe_stage1": (), "rpe_stage2": (), "stage": (), "prev_choice": ()}
    null_policy_params = {"beta": 1e-12, "beta1": 1e-12, "beta2": 1e-12, "p": 0.0}
    #: number of first-stage (start) states: states ``0 .. n_start - 1`` are stage 1, ``n_start`` and
    #: ``n_start + 1`` stage 2 (1 for Daw's task; 2 for Kool's, :class:`KoolHybrid`)
    n_start = 1

    def __init__(self, *, shared_stages=False, free_lambda=True, hbayesdm_eligibility=False, p_common=0.7,
                 fixed=None):
        p_common = float(p_common)
        if not 0.0 <= p_common <= 1.0:
            raise ValueError(f"two_step_hybrid: p_common must be in [0, 1], got {p_common}")
        super().__init__(fixed=fixed, shared_stages=bool(shared_stages), free_lambda=bool(free_lambda),
                         hbayesdm_eligibility=bool(hbayesdm_eligibility), p_common=p_common)

    @classmethod
    def hbayesdm(cls, model: str, **options) -> "TwoStepHybrid":
        """The agent reproducing hBayesDM's ``ts_par4``, ``ts_par6`` or ``ts_par7`` model block.

        Parameters
        ----------
        model : {"ts_par4", "ts_par6", "ts_par7"}
        **options
            Further options (``p_common``, ``fixed``).
        """
        if model not in _PRESETS:
            raise ValueError(f"two_step_hybrid: unknown hBayesDM model {model!r}; choose from {sorted(_PRESETS)}")
        return cls(hbayesdm_eligibility=True, **_PRESETS[model], **options)

    def param_spec(self):
        o = self.options
        alpha = Param("alpha", 0.0, 1.0, 0.5, doc="learning rate")
        beta = Param("beta", 0.0, INF, 5.0, doc="inverse temperature")
        if o["shared_stages"]:
            spec = [alpha, beta]
        else:
            spec = [alpha.with_(name="alpha1", doc="stage-1 learning rate"),
                    beta.with_(name="beta1", doc="stage-1 inverse temperature"),
                    alpha.with_(name="alpha2", doc="stage-2 learning rate"),
                    beta.with_(name="beta2", doc="stage-2 inverse temperature")]
        spec += [Param("p", -INF, INF, 0.1, doc="stage-1 stickiness (logit bonus for repeating a1)"),
                 Param("w", 0.0, 1.0, 0.5, doc="model-based weight")]
        if o["free_lambda"]:
            spec.append(Param("lam", 0.0, 1.0, 0.6, doc="eligibility trace (hBayesDM 'lambda')"))
        return spec

    def check_env(self, env):
        k = self.n_start
        if env.n_states != k + 2 or env.n_actions != 2:
            first = "0" if k == 1 else f"0..{k - 1}"
            raise ValueError(
                f"{self.name}: needs the two-step structure, {k + 2} states ({first} = stage 1; {k}, {k + 1} = "
                f"stage 2) x 2 actions; got {env.n_states} states x {env.n_actions} actions"
            )
        if not env.available[:k].all():
            raise ValueError(f"{self.name}: both actions must be available in every first-stage state")
        if len(np.unique(env.item)) != env.item.size:
            raise ValueError(f"{self.name}: every (state, action) needs its own value item")

    # -- helpers --------------------------------------------------------------------
    def _stage_params(self, p):
        if self.options["shared_stages"]:
            return p["alpha"], p["beta"], p["alpha"], p["beta"]
        return p["alpha1"], p["beta1"], p["alpha2"], p["beta2"]

    def _mb_values(self, Q, ops):
        """``Q_MB(a1)`` for every subject, (n, 2): the best *available* second-stage value, through the known
        transitions (the same from every start state)."""
        env = self.env
        s2s = (self.n_start, self.n_start + 1)
        sel = np.zeros((env.n_items, 2, env.n_actions))  # item -> (stage-2 state, action)
        for k, s2 in enumerate(s2s):
            for a in range(env.n_actions):
                sel[env.item[s2, a], k, a] = 1.0
        q2 = ops.sum(Q[:, :, None, None] * ops.asarray(sel)[None], axis=1)  # (n, 2 states, A)
        avail = env.available[list(s2s)]
        if not avail.all():  # a forced second stage: only its available action has a value
            q2 = ops.where(ops.asarray(avail)[None], q2, -1e30)
        best = ops.max(q2, axis=-1)  # (n, 2)
        pc = self.options["p_common"]
        trans = ops.asarray(np.array([[pc, 1.0 - pc], [1.0 - pc, pc]]))  # (a1, s2)
        return ops.sum(best[:, None, :] * trans[None], axis=-1)

    # -- rule -----------------------------------------------------------------------
    def init(self, p, env, n, ops):
        return {
            "Q": ops.zeros((n, env.n_items)),
            "pending": ops.zeros((n, env.n_items)),  # one-hot item of the stored stage-1 (state, action)
            "prev": ops.zeros((n, env.n_actions)),  # one-hot previous stage-1 choice
        }

    def decide(self, p, s, obs, ops):
        _, beta1, _, beta2 = self._stage_params(p)
        stage1 = obs["state"] < self.n_start
        st = stage1[:, None]
        q_mf = ops.gather(s["Q"], obs["items"])
        q_mb1 = self._mb_values(s["Q"], ops)
        q_net1 = p["w"][:, None] * q_mb1 + (1.0 - p["w"][:, None]) * q_mf
        logits = ops.where(st, beta1[:, None] * q_net1 + p["p"][:, None] * s["prev"], beta2[:, None] * q_mf)
        policy, logp = softmax_policy(logits, obs["avail"], ops)
        q_mb = ops.where(st, q_mb1, q_mf)
        q_net = ops.where(st, q_net1, q_mf)
        tau = ops.where(stage1, 1.0 / beta1, 1.0 / beta2)
        out = shared_latents(q_net, policy, tau, ops)
        actions = ops.asarray(np.arange(self.env.n_actions))
        prev_choice = ops.sum(s["prev"] * actions, axis=-1) - (1.0 - ops.sum(s["prev"], axis=-1))
        out.update(policy=policy, log_policy=logp, q_mf=q_mf, q_mb=q_mb, q_net=q_net,
                   stage=ops.where(stage1, 1.0, 2.0), prev_choice=prev_choice)
        return out

    def learn(self, p, s, obs, dec, ops):
        alpha1, _, alpha2, _ = self._stage_params(p)
        lam = p["lam"] if self.options["free_lambda"] else 1.0
        stage1 = obs["state"] < self.n_start
        st = stage1[:, None]
        a1h = ops.onehot(obs["choice"], self.env.n_actions)
        item1h = ops.onehot(obs["chosen_item"], self.env.n_items)
        Q, pend = s["Q"], s["pending"]
        r = obs["reward"]
        # stage-2 row: Daw's order
        has_pend = ops.sum(pend, axis=-1)
        q1 = ops.sum(Q * pend, axis=-1)  # Q_MF(s1, a1)
        q2 = take(dec["q_mf"], a1h, ops)  # Q_MF(s2, a2) before its update
        delta1 = (q2 - q1) * has_pend
        Q2 = Q + (alpha1 * delta1)[:, None] * pend
        delta2 = r - q2
        Q2 = Q2 + (alpha2 * delta2)[:, None] * item1h
        if self.options["hbayesdm_eligibility"]:
            elig = r - (q2 + alpha2 * delta2)  # r - Q_MF(s2, a2) after its update
        else:
            elig = delta2
        Q2 = Q2 + (alpha1 * lam * elig)[:, None] * pend
        new = {
            "Q": ops.where(st, Q, Q2),
            "pending": ops.where(st, item1h, 0.0 * pend),
            "prev": ops.where(st, a1h, s["prev"]),
        }
        zero = 0.0 * r
        rpe2 = ops.where(stage1, zero, delta2)
        lat = {
            "rpe": rpe2,
            "rpe_stage1": ops.where(stage1, zero, delta1),
            "rpe_stage2": rpe2,
            "chosen_value": take(dec["q"], a1h, ops),
        }
        return new, lat


@register_agent
class KoolHybrid(TwoStepHybrid):
    """Hybrid agent of the Kool et al. deterministic two-step task (``kool_two_step``; Kool, Cushman & Gershman
    2016).

    The rule of :class:`TwoStepHybrid` on two start states (0, 1) and two second-stage states (2, 3): each start
    state has its own model-free values ``Q_MF(s1, a)`` (different stimuli), while the model-based values
    ``Q_MB(a) = max_b Q(2 + a, b)`` are shared by both start states (the same transitions, known and deterministic
    with ``p_common = 1``). A forced second stage (one available action) gives no choice, so its log-likelihood is
    0 and its value is the one action's value. Model-free learning as in Daw et al. 2011 with eligibility ``lam``;
    stickiness ``p`` repeats the previous first-stage action whatever the start state.

    Stakes: the task's ``high_stakes`` covariate lets ``w`` depend on the stakes through the estimators'
    covariates, ``MLE("kool_hybrid", covariates={"w": ["high_stakes"]})`` (CLI: ``--covariate w=high_stakes``):
    ``w_t = sigmoid(theta_w + slope * high_stakes_t)``, i.e. ``w_low = sigmoid(theta_w)`` and ``w_high =
    sigmoid(theta_w + slope)``, as in Kool, Gershman & Cushman 2017.

    Parameters
    ----------
    shared_stages : bool, default True
        One ``alpha`` and ``beta`` (Kool et al.'s parameterisation; with a forced second stage ``beta`` acts at
        stage 1 only). False: ``alpha1, beta1, alpha2, beta2`` (``beta2`` needs ``second_stage_choice``).
    free_lambda : bool, default True
        ``lam`` free (else 1).
    p_common : float, default 1.0
        Probability that action ``a`` leads to state ``2 + a`` (1: Kool's deterministic transitions).
    fixed : dict, optional
        Parameters held constant.
    """

    name = "kool_hybrid"
    tasks = ("kool_two_step",)
    n_start = 2

    def __init__(self, *, shared_stages=True, free_lambda=True, p_common=1.0, fixed=None):
        super().__init__(shared_stages=shared_stages, free_lambda=free_lambda, hbayesdm_eligibility=False,
                         p_common=p_common, fixed=fixed)

    @classmethod
    def hbayesdm(cls, model: str, **options):
        raise ValueError("kool_hybrid: hBayesDM has no model of the Kool two-step task; use two_step_hybrid")
