"""Four-armed bandit models of hBayesDM: the Kalman-filter learner ``bandit4arm2_kalman_filter``.

Daw, O'Doherty, Dayan, Seymour & Dolan (2006), Nature 441:876, as in
hBayesDM's ``bandit4arm2_kalman_filter.stan`` [S]. Each arm has a posterior
mean ``mu`` and variance ``s2``, starting at ``mu0`` and ``s0^2``::

    P(a) = softmax(beta mu)
    k = s2[a] / (s2[a] + sO^2);   mu[a] += k (x - mu[a]);   s2[a] *= 1 - k
    mu = lambda mu + (1 - lambda) decay_center;   s2 = lambda^2 s2 + sD^2   (every arm)

with the observation sd ``sO = 4`` (hBayesDM's constant; option ``sigma_o``)
and the outcome ``x`` the trial's reward (payoffs 1-100 in the task;
``restless_bandit`` simulates it).

The gain/loss models of Seymour et al. (2012) (``bandit4arm_4par``,
``_lapse``, ``_lapse_decay``, ``_singleA_lapse``, ``_2par_lapse``) are not
here: each of their trials has two outcomes (gain and loss) learnt
separately, and the per-trial observations handed to a learning rule
(``agents.base.OBS_KEYS``, fixed by the compiled likelihood) carry one
reward. They need a covariate channel in the likelihood backend (see
docs/agents.md).

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
"""

from __future__ import annotations

from ..params import Param
from ._hbayesdm import HBPrior
from .base import VALUE_LATENTS, Agent, register_agent, shared_latents, softmax_policy, take

__all__ = ["Bandit4ArmKalmanFilter", "HBAYESDM_NAMES"]

#: hBayesDM parameter name -> neurorl parameter name (the others are the same)
HBAYESDM_NAMES = {"theta": "decay_center"}

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
