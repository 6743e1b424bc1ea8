"""Four-armed bandit models of hBayesDM: the Kalman-filter learner and the gain/loss models of Seymour et al.

Kalman filter: ``bandit4arm2_kalman_filter``
--------------------------------------------
Daw, O'Doherty, Dayan, Seymour & Dolan (2006), Nature 441:876, as in
hBayesDM's ``bandit4arm2_kalman_filter.stan`` [S]. Each arm has a posterior
mean ``mu`` and variance ``s2``, starting at ``mu0`` and ``s0^2``::

    P(a) = softmax(beta mu)
    k = s2[a] / (s2[a] + sO^2);   mu[a] += k (x - mu[a]);   s2[a] *= 1 - k
    mu = lambda mu + (1 - lambda) decay_center;   s2 = lambda^2 s2 + sD^2   (every arm)

with the observation sd ``sO = 4`` (hBayesDM's constant; option ``sigma_o``)
and the outcome ``x`` the trial's reward (payoffs 1-100 in the task;
``restless_bandit`` simulates it).

Gain/loss models: ``bandit4arm_4par``, ``_lapse``, ``_lapse_decay``, ``_singleA_lapse``, ``_2par_lapse``
-------------------------------------------------------------------------------------------------------
Seymour, Daw, Roiser, Dayan & Dolan (2012), J Neurosci 32:5833, without the
perseveration term, as in hBayesDM's ``bandit4arm_*.stan`` [S] (the lapse and
decay variants: Aylward et al. 2019, Nat Hum Behav 3:1116). Each trial has two
outcomes, a gain ``g >= 0`` and a loss ``l <= 0``, learnt in separate value
tables ``Qr`` and ``Qp`` (all 0 at the start); the trials carry them as
``reward = g + l`` and ``loss = l`` (:mod:`neurorl.schema`; the task
``bandit4arm`` and the preset ``hbayesdm:bandit4arm`` produce both)::

    P(a) = (1 - xi) softmax(Qr + Qp) + xi / K                 (4par: xi = 0)
    PEr = R g - Qr[a];   PEp = P l - Qp[a]                      (2par_lapse: R = P = 1)
    Qr[a] += Arew PEr;   Qp[a] += Apun PEp                      (singleA: Arew = Apun = A)
    unchosen arms:  Qr *= 1 - Arew;  Qp *= 1 - Apun             (lapse_decay: both *= 1 - d)

The unchosen arms' values decay toward 0 (hBayesDM's "fictive" update
``Q += A (0 - Q)``; in ``lapse_decay`` at the rate ``d`` instead of the
learning rates). There is no inverse temperature: the sensitivities ``R`` and
``P`` scale the outcomes instead.

Assumptions and choices
-----------------------
[S] Names and bounds are hBayesDM's: ``lambda`` (0, 1), ``theta`` (0, 100),
    ``beta`` (0, 1), ``mu0`` (0, 100), ``s0`` (0, 15), ``sD`` (0, 15) -- except
    that hBayesDM's ``theta`` (the decay centre) is ``decay_center`` here:
    ``theta`` names the subjects' unconstrained parameters in every fit
    (:data:`HBAYESDM_NAMES`).
[A] One state (the arms are the actions), any number of arms >= 2.
[A] Shared latents: ``q = mu`` (before the trial's update), ``q_soft = q``,
    ``tau = 1 / beta``; ``rpe = x - mu[a]``, ``chosen_value = mu[a]``. Model
    latents: ``sd`` (posterior sd per arm) and ``gain`` (the Kalman gain k).
[A] Defaults (simulation starting points): lambda 0.9, decay_center 50, beta 0.2,
    mu0 50, s0 5, sD 3.
[S] Gain/loss models: hBayesDM's names and bounds, ``Arew``, ``Apun``, ``A``,
    ``xi``, ``d`` (0, 1) and ``R``, ``P`` (0, 30); hBayesDM's priors (Phi_approx,
    group sds half-N(0, 0.2)).
[A] Gain/loss models: ``g = reward - loss``; data without a ``loss`` variable
    are refused (:meth:`check_data`), and so are positive losses (hBayesDM's
    reader makes every loss ``-|loss|``; so does ``hbayesdm:bandit4arm``) and
    data whose ``gain`` covariate, where present, is not ``reward - loss``
    (e.g. IGT data read with ``hbayesdm:igt``, whose reward is scaled by
    ``payscale``). One state, any number of arms >= 2 (the lapse spreads ``xi``
    over the available arms: ``xi / 4`` with hBayesDM's four).
[A] Gain/loss latents: ``q = Qr + Qp`` (before the update), ``q_soft = q``,
    ``tau = 1``; ``rpe = PEr + PEp``, ``chosen_value = q[a]``. Model latents:
    ``q_rew``, ``q_pun`` (per arm) and ``rpe_rew``, ``rpe_pun``.
[A] Gain/loss defaults (simulation starting points): Arew, Apun, A 0.3; R, P 3;
    xi 0.05; d 0.2.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from ..params import Param
from ._hbayesdm import PHI, HBPrior
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take, with_lapse

__all__ = ["Bandit4ArmKalmanFilter", "HBAYESDM_NAMES", "GAIN_LOSS_POPULATION", "gain_loss_population", "Bandit4Arm4Par", "Bandit4ArmLapse", "Bandit4ArmLapseDecay",
           "Bandit4ArmSingleALapse", "Bandit4Arm2ParLapse"]

#: hBayesDM parameter name -> neurorl parameter name (the others are the same)
HBAYESDM_NAMES = {"theta": "decay_center"}

#: The generating population of the gain/loss models' recovery studies (docs/agents.md): per parameter
#: ``(median, sd)``, a normal on the parameter's unconstrained scale (the logit of its bounds,
#: ``logit((x - lower) / (upper - lower))``) centred at the transformed median, sd in logits -- learning rates
#: (``Arew``, ``Apun``, ``A``) median 0.3, sensitivities ``R``, ``P`` median 5 (bounds 0-30), lapse ``xi`` median
#: 0.05, decay ``d`` median 0.2. Pass :func:`gain_loss_population` to ``parameter_recovery(params=...)``.
GAIN_LOSS_POPULATION = {"Arew": (0.3, 0.7), "Apun": (0.3, 0.7), "A": (0.3, 0.7), "R": (5.0, 0.5), "P": (5.0, 0.5),
                        "xi": (0.05, 0.7), "d": (0.2, 0.7)}


def gain_loss_population(agent) -> dict:
    """``{name: (loc, scale)}`` on the unconstrained (logit) scale of ``agent``'s free parameters: the recovery
    population :data:`GAIN_LOSS_POPULATION` (the transformed median, the sd in logits), for
    :func:`neurorl.fitting.recovery.parameter_recovery` / :func:`~neurorl.fitting.recovery.draw_params`."""
    from .base import make_agent

    agent = make_agent(agent)
    out = {}
    for p in agent.params:
        if p.name not in GAIN_LOSS_POPULATION:
            raise ValueError(f"gain_loss_population: no population for parameter {p.name!r} of {agent.name!r} "
                             f"(it has {sorted(GAIN_LOSS_POPULATION)})")
        median, sd = GAIN_LOSS_POPULATION[p.name]
        out[p.name] = (float(p.to_unconstrained(median)), float(sd))
    return out


#: hBayesDM's Kalman model puts half-Cauchy(0, 5) on every group sd
_KF = HBPrior("phi", "cauchy", 5.0)


@register_agent
class Bandit4ArmKalmanFilter(Agent):
    """hBayesDM ``bandit4arm2_kalman_filter`` (Daw et al. 2006): Kalman-filter learner, softmax choice.

    Parameters
    ----------
    sigma_o : float, default 4.0
        Observation noise sd (hBayesDM's constant ``sO = 4``).
    fixed : dict, optional
        Parameters held constant.
    """

    name = "bandit4arm2_kalman_filter"
    family = "bandit4arm"
    tasks = ("restless_bandit", "bandit")
    latent_dims = {**VALUE_LATENTS, "sd": ("action",), "gain": ()}
    null_policy_params = {"beta": 1e-12}
    hbayesdm_priors = {"lambda": _KF, "decay_center": _KF, "beta": _KF, "mu0": _KF, "s0": _KF, "sD": _KF}

    def __init__(self, *, sigma_o=4.0, fixed=None):
        sigma_o = float(sigma_o)
        if not sigma_o > 0:
            raise ValueError(f"bandit4arm2_kalman_filter: sigma_o must be positive, got {sigma_o}")
        super().__init__(fixed=fixed, sigma_o=sigma_o)

    def param_spec(self):
        return [Param("lambda", 0.0, 1.0, 0.9, doc="decay of the means toward theta"),
                Param("decay_center", 0.0, 100.0, 50.0, doc="decay centre (hBayesDM's theta)"),
                Param("beta", 0.0, 1.0, 0.2, doc="inverse temperature"),
                Param("mu0", 0.0, 100.0, 50.0, doc="initial mean of every arm"),
                Param("s0", 0.0, 15.0, 5.0, doc="initial sd of every arm"),
                Param("sD", 0.0, 15.0, 3.0, doc="diffusion sd")]

    def check_data(self, trials) -> None:
        """Warn when the rewards are not on hBayesDM's point scale (docs/agents.md, "Reward scale").

        The observation noise ``sigma_o`` (option, 4), and the bounds of ``mu0`` and ``decay_center`` ([0, 100])
        and of ``s0`` and ``sD`` ([0, 15]) are hBayesDM's, for payoffs in points spanning about 100. Warns when
        the reward range is off by more than a factor 10 and names the rescaling (the bounds are part of the
        model, so rescaling the rewards is the fix; ``sigma_o`` follows the range).
        """
        from .reward_scale import warn_reward_scale

        so = self.options["sigma_o"]
        warn_reward_scale(
            self.name, trials, assumed=25.0 * so, factor=10.0,
            what=f"sigma_o = {so:g} and the bounds of mu0, decay_center ([0, 100]), s0 and sD ([0, 15]) are in "
                 f"reward units (hBayesDM's payoffs in points, range about {25.0 * so:g})",
            fix=lambda span: f"Rescale the rewards to points (multiply by {100.0 / span:.3g}, range 100) with the "
                             "default sigma_o = 4")

    def check_env(self, env):
        if env.n_states != 1 or env.n_actions < 2:
            raise ValueError(f"{self.name}: needs one state (the arms are the actions) and at least 2 arms; the "
                             f"task has {env.n_states} states and {env.n_actions} actions")

    def init(self, p, env, n, ops):
        z = ops.zeros((n, env.n_actions))
        return {"mu": z + p["mu0"][:, None], "s2": z + (p["s0"] ** 2)[:, None]}

    def decide(self, p, s, obs, ops):
        q = s["mu"]
        policy, logp = softmax_policy(p["beta"][:, None] * q, obs["avail"], ops)
        out = shared_latents(q, policy, 1.0 / p["beta"], ops)
        out.update(policy=policy, log_policy=logp, sd=ops.sqrt(s["s2"]))
        return out

    def learn(self, p, s, obs, dec, ops):
        a1h = ops.onehot(obs["choice"], self.env.n_actions)
        mu_a, s2_a = take(s["mu"], a1h, ops), take(s["s2"], a1h, ops)
        k = s2_a / (s2_a + self.options["sigma_o"] ** 2)
        pe = obs["reward"] - mu_a
        mu = s["mu"] + a1h * (k * pe)[:, None]
        s2 = s["s2"] - a1h * (k * s2_a)[:, None]
        lam = p["lambda"][:, None]
        mu = lam * mu + (1.0 - lam) * p["decay_center"][:, None]
        s2 = lam ** 2 * s2 + (p["sD"] ** 2)[:, None]
        return {"mu": mu, "s2": s2}, {"rpe": pe, "chosen_value": mu_a, "gain": k}



class _GainLoss(Agent):
    """Shared learning rule of the gain/loss models (not registered; see the subclasses and the module docstring).

    Subclasses choose the variant with four class attributes: ``single_rate`` (one ``A`` for both tables),
    ``sensitivities`` (``R``, ``P`` scale the outcomes), ``lapse`` (``xi``) and ``decay`` (``d`` decays the
    unchosen arms instead of the learning rates).

    Parameters
    ----------
    fixed : dict, optional
        Parameters held constant (see :class:`~neurorl.agents.base.Agent`).
    """

    family = "bandit4arm"
    tasks = ("bandit4arm",)
    latent_dims = {**VALUE_LATENTS, "q_rew": ("action",), "q_pun": ("action",), "rpe_rew": (), "rpe_pun": ()}
    single_rate: ClassVar[bool] = False
    sensitivities: ClassVar[bool] = True
    lapse: ClassVar[bool] = True
    decay: ClassVar[bool] = False
    #: zero sensitivities keep every value at 0 (2par_lapse: zero learning rates)
    null_policy_params = {"R": 1e-12, "P": 1e-12}

    def __init__(self, *, fixed=None):
        super().__init__(fixed=fixed)

    hbayesdm_priors: ClassVar[dict] = {}

    def param_spec(self):
        if self.single_rate:
            out = [Param("A", 0.0, 1.0, 0.3, doc="learning rate (gains and losses)")]
        else:
            out = [Param("Arew", 0.0, 1.0, 0.3, doc="reward (gain) learning rate"),
                   Param("Apun", 0.0, 1.0, 0.3, doc="punishment (loss) learning rate")]
        if self.sensitivities:
            out += [Param("R", 0.0, 30.0, 3.0, doc="reward sensitivity"),
                    Param("P", 0.0, 30.0, 3.0, doc="punishment sensitivity")]
        if self.lapse:
            out.append(Param("xi", 0.0, 1.0, 0.05, doc="lapse rate (uniform choice)"))
        if self.decay:
            out.append(Param("d", 0.0, 1.0, 0.2, doc="decay of the unchosen arms' values"))
        return out

    def check_env(self, env):
        if env.n_states != 1 or env.n_actions < 2:
            raise ValueError(f"{self.name}: needs one state (the arms are the actions) and at least 2 arms; the "
                             f"task has {env.n_states} states and {env.n_actions} actions")

    def check_data(self, trials):
        """Refuse trials without the ``loss`` channel, with positive losses, or whose ``gain`` is not
        ``reward - loss`` (each error names the subject and trial)."""
        from ..schema import SUBJECT

        if "loss" not in trials:
            raise ValueError(f"agent {self.name!r} learns gains and losses separately and needs the trials variable "
                             f"'loss' (the loss part of the reward, <= 0); the data have none (variables: "
                             f"{sorted(trials.data_vars)}). Read an hBayesDM bandit4arm file with "
                             "format='hbayesdm:bandit4arm', or add a 'loss' column")
        valid = trials["valid"].values.astype(bool)
        loss = np.asarray(trials["loss"].values, dtype=float)

        def where(bad):
            i, t = np.argwhere(bad)[0]
            subj = trials[SUBJECT].values[i]
            subj = subj.item() if isinstance(subj, np.generic) else subj
            label = int(trials["trial_index"].values[i, t]) if "trial_index" in trials else int(t)
            return f"first at subject {subj!r}, trial {label}"

        bad = valid & ~(loss <= 0)
        if bad.any():
            raise ValueError(f"agent {self.name!r}: column 'loss' must be <= 0 on valid trials (hBayesDM's "
                             f"convention; its reader takes -|loss|), got {float(loss[bad][0])} ({where(bad)})")
        if "gain" in trials:
            g = np.asarray(trials["gain"].values, dtype=float)
            r = np.asarray(trials["reward"].values, dtype=float)
            bad = valid & ~np.isclose(r, g + loss, rtol=1e-9, atol=1e-9)
            if bad.any():
                raise ValueError(f"agent {self.name!r}: the trials' 'reward' is not 'gain' + 'loss' ({where(bad)}); "
                                 "these models read the gain as reward - loss. Data whose reward is scaled "
                                 "(e.g. hbayesdm:igt divides by payscale) must be read with "
                                 "format='hbayesdm:bandit4arm'")

    def init(self, p, env, n, ops):
        z = ops.zeros((n, env.n_actions))
        return {"qr": z, "qp": z}

    def decide(self, p, s, obs, ops):
        q = s["qr"] + s["qp"]
        policy, logp = softmax_policy(q, obs["avail"], ops)
        if self.lapse:
            policy, logp = with_lapse(policy, obs["avail"], p["xi"], ops)
        out = shared_latents(q, policy, 1.0, ops)
        out.update(policy=policy, log_policy=logp, q_rew=s["qr"], q_pun=s["qp"])
        return out

    def learn(self, p, s, obs, dec, ops):
        a1h = ops.onehot(obs["choice"], self.env.n_actions)
        loss = obs["loss"]
        gain = obs["reward"] - loss
        a_rew = p["A"] if self.single_rate else p["Arew"]
        a_pun = p["A"] if self.single_rate else p["Apun"]
        if self.sensitivities:
            gain, loss = p["R"] * gain, p["P"] * loss
        qr_a, qp_a = take(s["qr"], a1h, ops), take(s["qp"], a1h, ops)
        pe_r, pe_p = gain - qr_a, loss - qp_a
        keep_r = 1.0 - (p["d"] if self.decay else a_rew)
        keep_p = 1.0 - (p["d"] if self.decay else a_pun)
        qr = (1.0 - a1h) * (keep_r[:, None] * s["qr"]) + a1h * (qr_a + a_rew * pe_r)[:, None]
        qp = (1.0 - a1h) * (keep_p[:, None] * s["qp"]) + a1h * (qp_a + a_pun * pe_p)[:, None]
        return {"qr": qr, "qp": qp}, {"rpe": pe_r + pe_p, "chosen_value": qr_a + qp_a, "rpe_rew": pe_r,
                                      "rpe_pun": pe_p}


@register_agent
class Bandit4Arm4Par(_GainLoss):
    """hBayesDM ``bandit4arm_4par`` (Seymour et al. 2012): Arew, Apun, R, P; softmax of Qr + Qp."""

    name = "bandit4arm_4par"
    hbayesdm_priors = {"Arew": PHI, "Apun": PHI, "R": PHI, "P": PHI}
    lapse = False


@register_agent
class Bandit4ArmLapse(_GainLoss):
    """hBayesDM ``bandit4arm_lapse``: ``bandit4arm_4par`` with the lapse rate xi."""

    name = "bandit4arm_lapse"
    hbayesdm_priors = {"Arew": PHI, "Apun": PHI, "R": PHI, "P": PHI, "xi": PHI}


@register_agent
class Bandit4ArmLapseDecay(_GainLoss):
    """hBayesDM ``bandit4arm_lapse_decay``: ``bandit4arm_lapse`` whose unchosen arms decay at the rate d."""

    name = "bandit4arm_lapse_decay"
    hbayesdm_priors = {"Arew": PHI, "Apun": PHI, "R": PHI, "P": PHI, "xi": PHI, "d": PHI}
    decay = True


@register_agent
class Bandit4ArmSingleALapse(_GainLoss):
    """hBayesDM ``bandit4arm_singleA_lapse``: one learning rate A for gains and losses; R, P, xi."""

    name = "bandit4arm_singleA_lapse"
    hbayesdm_priors = {"A": PHI, "R": PHI, "P": PHI, "xi": PHI}
    single_rate = True


@register_agent
class Bandit4Arm2ParLapse(_GainLoss):
    """hBayesDM ``bandit4arm_2par_lapse``: Arew, Apun, xi; outcomes unscaled (R = P = 1)."""

    name = "bandit4arm_2par_lapse"
    null_policy_params = {"Arew": 1e-12, "Apun": 1e-12}
    hbayesdm_priors = {"Arew": PHI, "Apun": PHI, "xi": PHI}
    sensitivities = False
