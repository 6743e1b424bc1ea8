"""DRA -- the dynamic resource allocator (Patel, Acerbi & Pouget 2020; agents.md §3).

Every learnt value is a Gaussian memory ``N(qbar_i, sigma_i^2)`` (one per
value-table item). At each decision a sample ``q~ = qbar + sigma * zeta``,
``zeta ~ N(0, I)``, is drawn for the shown actions and the argmax is chosen
(agents.md §3 [S]). Precision is a resource: the objective is the expected
return minus ``lam * sum_i KL(N(qbar_i, sigma_i^2) || N(qbar_i, sigma_base^2))``.

neurorl form: trial-level and deterministic given the data
-----------------------------------------------------------
The authors' code estimates the sigma gradient from *sampled* rollouts (fresh
noise ``zeta`` and ``N_traj`` simulated episodes), so replayed latents and the
likelihood would be random (agents.md §3 caveat [D]). neurorl uses instead the
exact choice probability and its analytic gradient, which makes replay and the
likelihood deterministic functions of the data and the parameters; this is the
neurorl choice, not the papers' algorithm:

* [A] Policy = the exact probability that each action's sampled memory is the
  largest among the available actions (the paper's policy, not the code's
  "soft Thompson sampling" with ``beta = 10``). With two available options
  ``P(a) = Phi((qbar_a - qbar_o) / S)``, ``S = sqrt(sigma_a^2 + sigma_o^2 + EPS)``
  [S]. With three or more available options
  ``P(a) = int N(x; qbar_a, s_a^2) prod_{b != a} Phi((x - qbar_b)/s_b) dx`` [D]
  by Gauss-Hermite quadrature with ``n_nodes`` (static) nodes, renormalised over
  the available actions. ``s^2 = sigma^2 + EPS/2`` everywhere: a tiny noise
  floor so that known options (``sigma = 0``) never divide by zero; it keeps the
  analytic policy exactly the choice distribution of :meth:`DRA.sample_choice`.
  States with exactly two available actions always use the closed form.
  Quadrature accuracy [D: checked against scipy.integrate.quad]: ~1e-10 for
  equal SDs, ~1e-7 to 1e-6 when they differ twofold, ~1e-4 fourfold (a memory much
  sharper than the one integrated over makes the integrand step-like; known
  options among three or more are the extreme case) -- raise ``n_nodes`` there.
* Known values (``EnvSpec.known_value``, sure amounts) are memories with
  ``sigma = 0`` and are never updated.
* Means [S: NeurIPS code, expected SARSA; D: analytic next policy]: ``qbar(s, a)
  += alpha_q (target - qbar(s, a))`` with ``target = r + gamma (1 - done)
  sum_b P(b | s') qbar(s', b)`` -- the analytic policy at ``s'`` replaces the
  code's freshly sampled one [A]. One-step tasks: ``target = r``.
* Precision [D: exact trial-level version of the score-function rule]: after
  each trial, for the learnt memories shown on it,
  ``sigma_b += alpha_sigma * psi * d log P(a_t | s_t) / d sigma_b`` with the
  advantage ``psi = target - sum_b P(b | s) qbar(s, b)`` (the ``A`` baseline of
  DRA_vs_maxEntRL ``training.py`` [S]); and every learnable memory takes the KL
  step ``- alpha_sigma * lam * (sigma / sigma_base^2 - 1 / sigma)`` [S]. [A] Both
  steps are evaluated at the pre-trial sigma and applied together (the gridworld
  rule ``sigma <- clip(sigma + alpha_sigma (G - lam dKL/dsigma))``), then
  clipped to ``[sigma_min, sigma_base]`` (the later code's clip [S]).
* [A] Smooth clip. The hard clip makes the likelihood piecewise smooth: where a
  memory sits on a bound on some trials, the log-likelihood has kinks in the
  parameters, its gradient jumps, the optimum is often at a kink (gradient not
  zero) and the Hessian there is that of one piece -- on the bundled demo
  cohort ``dra:sigma_base=0.5,sigma0=0.25`` stopped at kinks with projected
  gradients up to 250 and non-positive-definite MAP Hessians, so the Laplace
  evidence was not finite. neurorl therefore uses by default the smooth clip
  ``lo + w softplus((x - lo)/w) - w softplus((x - hi)/w)`` with ``lo =
  sigma_min``, ``hi = sigma_base`` and width ``w = clip_width`` (default
  ``max(sigma_min, sigma_base / 50)``, relative to the memory scale: with a
  width of ``sigma_min = 0.01`` at ``sigma_base = 5`` the clip was still so
  sharp that 2 of 16 simulated branching_stakes subjects stopped in it with
  projected gradients up to 300; at ``sigma_base / 50`` all 16 converged):
  infinitely differentiable, strictly increasing, always inside ``(lo, hi)``,
  equal to the hard clip up to ``w log 2`` at the bounds and to within ``w
  exp(-d/w)`` at a distance ``d`` from them. ``clip_width=0`` gives the
  source's hard clip.
  For two options ``d log P(a)/d sigma_b = -lambda(z) z sigma_b / S^2`` with
  ``z = (qbar_a - qbar_o)/S`` and ``lambda = phi/Phi`` [D]; for three or more the
  derivative of the renormalised quadrature formula is taken analytically.
* [A] "Learnable" memories are the items shown unknown in some state; items
  that are only ever known (the memory task's dummy sure item) or never shown
  take no KL step and do not enter the cost.
* [A] For the next-state value in multi-step tasks, an item's known value is
  used if it is known with one single value wherever it appears; otherwise its
  table mean (only relevant when a shared known item is reached with
  ``done = False``, which no built-in task does).

Latents
-------
``q`` (qbar of the shown actions, known values where known), ``sigma`` (0 where
known), ``policy``, ``entropy``, ``rpe`` (``target - q(a)``; ``r - q(a)`` in
one-step tasks), ``chosen_value``, ``advantage`` (``psi``), ``dprime``,
``cost`` (``lam * sum KL`` over learnable memories, before the trial's update),
``q_soft = q``, ``v = sum pi q`` and ``v_soft = v + tau_eff H(pi)`` with the
effective temperature ``tau_eff = S / 1.702`` of the probit-logistic match
``Phi(x) ~ sigmoid(1.702 x)`` (agents.md §3 [D]); [A] with more than two
available actions ``S^2 = 2 mean_avail(sigma^2) + EPS`` (equal to the two-option
``S^2`` for two). [A] ``dprime`` = ``max_a min_{b != a} (qbar_a - qbar_b) /
sqrt(s_a^2 + s_b^2)`` over available actions: the discriminability of the best
option from its closest competitor, which is ``|qbar_1 - qbar_0| / S`` for two
options (``scripts/plotting.py`` [S]) and 0 with a single available action.
Simulation only: ``zeta`` and ``q_sample``.

Prior on alpha_sigma [A]
-----------------------
The default prior of ``alpha_sigma`` (the MAP prior and the start distribution)
is ``logit alpha_sigma ~ N(logit 0.1, 1.5^2)`` -- centred on the source's
default, 95 % between about 0.006 and 0.69 -- instead of the generic
``N(0, 2.5^2)``. With a large ``alpha_sigma`` and small memory SDs the
precision recursion overshoots (the KL step grows as ``1 / sigma``) and the
likelihood becomes rugged: on simulated branching_stakes data (16 DRA subjects,
300 trials, ``sigma_base = 5``) one subject's best start sat at
``alpha_sigma = 0.76`` where the log-likelihood jumps by 1.7 nats within 0.002
on the logit scale, and no optimiser converges there. The choices inform
``alpha_sigma`` only weakly, so the prior keeps the MAP away from that region
(16 of 16 subjects then converge); pass ``prior={"alpha_sigma": (loc, scale)}``
to widen it.

Defaults [A]: ``alpha_q = alpha_sigma = lam = 0.1`` (DRA_vs_maxEntRL
``models.py`` [S]); options ``sigma_base = 5``, ``sigma0 = sigma_base / 2``
(the 2AFC row of agents.md §3), ``sigma_min = 0.01``, ``clip_width =
max(sigma_min, sigma_base / 50)``, ``q0 = 0``, ``gamma = 0.95``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..params import Param
from .base import VALUE_LATENTS, Agent, register_agent, take

__all__ = ["DRA", "dra_policy", "dra_dlogp_dsigma", "dra_kl", "dra_clip", "EPS"]

#: variance floor ``S^2 = sigma_0^2 + sigma_1^2 + EPS`` (each memory gets EPS / 2)
EPS = 1e-10
#: probit-logistic matching constant, Phi(x) ~ sigmoid(1.702 x)
PROBIT_LOGIT = 1.702
_TINY = 1e-300
_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)


@functools.lru_cache(maxsize=16)
def _hermgauss(n_nodes):
    """Gauss-Hermite nodes and weights for E over N(0, 1/2) (cached: computed once per node count)."""
    t, w = np.polynomial.hermite.hermgauss(int(n_nodes))
    t.setflags(write=False)
    w = w / math.sqrt(math.pi)
    w.setflags(write=False)
    return t, w


def _pair_terms(q, sigma, avail, ops):
    """``z_a = (q_a - q_other) / S`` and ``S^2 = sum_avail sigma^2 + EPS`` (meaningful with two available actions)."""
    availf = ops.where(avail, 1.0, 0.0)
    qm = q * availf
    q_other = ops.sum(qm, axis=-1, keepdims=True) - qm
    S2 = ops.sum(sigma * sigma * availf, axis=-1, keepdims=True) + EPS
    z = (q - q_other) / ops.sqrt(S2)
    return z, S2, availf


def _quadrature(q, sigma, avail, ops, n_nodes, A):
    """Unnormalised quadrature probabilities ``P`` (n, A) and Jacobian ``J[a, b] = dP(a)/dsigma_b`` (n, A, A)."""
    t_np, w_np = _hermgauss(n_nodes)
    t = ops.asarray(t_np)[None, None, :, None]
    w = ops.asarray(w_np)[None, None, :]
    availf = ops.where(avail, 1.0, 0.0)
    st = ops.sqrt(sigma * sigma + 0.5 * EPS)  # (n, A)
    x = q[:, :, None, None] + math.sqrt(2.0) * st[:, :, None, None] * t  # (n, a, k, 1)
    u = (x - q[:, None, None, :]) / st[:, None, None, :]  # (n, a, k, b)
    offdiag = ops.asarray(1.0 - np.eye(A))[None, :, None, :]
    comp = availf[:, None, None, :] * offdiag  # competitor b of a
    G = ops.where(comp > 0, ops.norm_cdf(u), 1.0)
    g = ops.where(comp > 0, ops.norm_pdf(u), 0.0)
    excl = []  # prod_{c != b} G[..., c]
    for b in range(A):
        others = [c for c in range(A) if c != b]
        prod = G[:, :, :, others[0]]
        for c in others[1:]:
            prod = prod * G[:, :, :, c]
        excl.append(prod)
    excl = ops.stack(excl, axis=-1)  # (n, a, k, b)
    full = excl[:, :, :, 0] * G[:, :, :, 0]  # (n, a, k)
    P = ops.sum(w * full, axis=-1) * availf  # (n, a)
    # d P(a) / d s_b for b != a (s = noise-floored sigma): phi(u) * (-u / s_b) * excl
    d_off = ops.sum(w[..., None] * g * (-u / st[:, None, None, :]) * excl, axis=2)  # (n, a, b)
    # d P(a) / d s_a: sum_b phi(u) * sqrt(2) t / s_b * excl
    d_self = ops.sum(ops.sum(w[..., None] * g * (math.sqrt(2.0) * t / st[:, None, None, :]) * excl, axis=-1),
                     axis=-1)  # (n, a)
    eye = ops.asarray(np.eye(A))[None]
    J = (d_off * (1.0 - eye) + eye * d_self[:, :, None]) * (sigma / st)[:, None, :]
    J = J * availf[:, :, None] * availf[:, None, :]
    return P, J


def dra_policy(q, sigma, avail, ops, *, n_nodes=40):
    """Exact argmax-of-samples choice probabilities of DRA memories.

    Parameters
    ----------
    q, sigma : array (n, A)
        Memory means and standard deviations of the shown actions (sigma = 0
        for known values). ``A`` must be static (a NumPy array, or a tensor
        with a known last dimension).
    avail : bool array (n, A)
        Available actions (the others get probability 0 and log -1e30).
    ops : backend
    n_nodes : int
        Gauss-Hermite nodes for states with three or more available actions.

    Returns
    -------
    policy, log_policy : arrays (n, A)
    """
    return _policy(q, sigma, avail, ops, n_nodes, _n_actions(q))


def _n_actions(q):
    A = q.shape[-1] if isinstance(q, np.ndarray) else getattr(q.type, "shape", (None,))[-1]
    if A is None:
        raise ValueError("dra: the number of actions (last axis of q) must be static")
    return int(A)


def _policy(q, sigma, avail, ops, n_nodes, A, score=False):
    """``(policy, log_policy)``, plus ``D[a, b] = d log P(a) / d sigma_b`` (n, A, A) if ``score``."""
    availf = ops.where(avail, 1.0, 0.0)
    n_avail = ops.sum(availf, axis=-1, keepdims=True)
    if A == 1:
        return (availf, 0.0 * availf) + ((0.0 * availf[:, :, None],) if score else ())
    z, S2, _ = _pair_terms(q, sigma, avail, ops)
    p2 = ops.norm_cdf(z)
    lp2 = ops.norm_logcdf(z)
    if score:
        mills = ops.exp(-0.5 * z * z - _LOG_SQRT_2PI - lp2)  # phi(z) / Phi(z), stable in the left tail
        D = (-mills * z)[:, :, None] * (sigma / S2)[:, None, :]
    if A == 2:
        policy, logp = p2, lp2
    else:
        P, J = _quadrature(q, sigma, avail, ops, n_nodes, A)
        Z = ops.sum(P, axis=-1, keepdims=True)
        pq = P / Z
        lpq = ops.log(ops.maximum(pq, _TINY))
        many = n_avail > 2.5
        policy = ops.where(many, pq, p2)
        logp = ops.where(many, lpq, lp2)
        if score:
            Dq = J / ops.maximum(P, _TINY)[:, :, None] - (ops.sum(J, axis=1) / Z)[:, None, :]
            D = ops.where(many[:, :, None], Dq, D)
    single = n_avail < 1.5
    policy = ops.where(avail, ops.where(single, 1.0, policy), 0.0)
    logp = ops.where(avail, ops.where(single, 0.0, logp), -1e30)
    if not score:
        return policy, logp
    D = ops.where(single[:, :, None], 0.0, D) * availf[:, :, None] * availf[:, None, :]
    return policy, logp, D


def dra_dlogp_dsigma(q, sigma, avail, choice_onehot, ops, *, n_nodes=40):
    """Analytic ``d log P(a | s) / d sigma_b`` of the chosen action ``a`` (n, A).

    Two available actions: ``-lambda(z) z sigma_b / S^2`` for both shown
    memories, ``z = (q_a - q_o) / S``, ``lambda(z) = phi(z) / Phi(z)``; three or
    more: derivative of the renormalised Gauss-Hermite formula. Zero for
    unavailable actions and where only one action is available.
    """
    _, _, D = _policy(q, sigma, avail, ops, n_nodes, _n_actions(q), score=True)
    return ops.sum(choice_onehot[:, :, None] * D, axis=1)


def dra_kl(sigma, sigma_base, ops):
    """Per-memory KL divergence to the reference memory (agents.md §3).

    ``KL(N(m, sigma^2) || N(m, sigma_base^2)) = log(sigma_base / sigma)
    + sigma^2 / (2 sigma_base^2) - 1/2``.
    """
    return ops.log(sigma_base / sigma) + sigma * sigma / (2.0 * sigma_base * sigma_base) - 0.5


def dra_clip(x, lo, hi, width, ops):
    """Clip of the memory SDs to ``[lo, hi]``: hard (``width = 0``) or smooth (module docstring).

    ``lo + w softplus((x - lo) / w) - w softplus((x - hi) / w)``: infinitely differentiable, strictly increasing,
    inside ``(lo, hi)``; it tends to ``clip(x, lo, hi)`` as ``w -> 0``.
    """
    if width <= 0:
        return ops.clip(x, lo, hi)
    smooth = lo + width * (ops.softplus((x - lo) / width) - ops.softplus((x - hi) / width))
    return ops.clip(smooth, lo, hi)  # only rounding reaches the bounds (the saturated tails), never the maths


def _item_tables(env):
    """Static per-item masks: learnable; known with a single value; that value."""
    learn = np.zeros(env.n_items, bool)
    known_vals: dict[int, set] = {}
    for s in range(env.n_states):
        for a in range(env.n_actions):
            if not env.available[s, a]:
                continue
            i = int(env.item[s, a])
            kv = env.known_value[s, a]
            if np.isfinite(kv):
                known_vals.setdefault(i, set()).add(float(kv))
            else:
                learn[i] = True
    known = np.zeros(env.n_items, bool)
    value = np.zeros(env.n_items)
    for i, vals in known_vals.items():
        if not learn[i] and len(vals) == 1:
            known[i] = True
            value[i] = next(iter(vals))
    return learn, known, value


@register_agent
class DRA(Agent):
    """Dynamic resource allocator: Gaussian memories with learnt precision.

    See the module docstring for the equations and the assumptions.

    Options
    -------
    sigma_base : float, default 5
        SD of the reference (prior) memory of the KL cost, and the upper clip of sigma.
    sigma0 : float, optional
        Initial sigma of every memory (default ``sigma_base / 2``).
    sigma_min : float, default 0.01
        Lower clip of sigma.
    clip_width : float, optional
        Width of the smooth clip of sigma to ``[sigma_min, sigma_base]`` (default ``max(sigma_min, sigma_base / 50)``;
        0 = the source's hard clip, whose kinks make MAP Hessians and the Laplace evidence unreliable; see the module docstring).
    q0 : float, default 0
        Initial memory mean.
    gamma : float, default 0.95
        Discount (unused where every trial ends its episode).
    n_nodes : int, default 40
        Gauss-Hermite nodes for states with three or more available actions.

    Fitted parameters
    -----------------
    alpha_q : (0, 1), learning rate of the means.
    alpha_sigma : (0, 1), learning rate of the precisions.
    lam : (0, inf), weight of the KL (memory) cost.
    """

    name = "dra"
    family = "dra"
    latent_dims = {**VALUE_LATENTS, "sigma": ("action",), "dprime": (), "cost": (), "advantage": (),
                   "zeta": ("action",), "q_sample": ("action",)}
    # equal initial means and alpha_q -> 0 keep the two means equal: P = Phi(0) = 1/2
    null_policy_params = {"alpha_q": 1e-12}
    simulation_only = ("zeta", "q_sample")

    def __init__(self, *, sigma_base=5.0, sigma0=None, sigma_min=0.01, clip_width=None, q0=0.0, gamma=0.95,
                 n_nodes=40, fixed=None):
        sigma_base = float(sigma_base)
        sigma_min = float(sigma_min)
        sigma0 = sigma_base / 2.0 if sigma0 is None else float(sigma0)
        clip_width = max(sigma_min, sigma_base / 50.0) if clip_width is None else float(clip_width)
        if not (math.isfinite(sigma_base) and sigma_base > 0):
            raise ValueError(f"dra: sigma_base must be positive and finite, got {sigma_base}")
        if not 0 < sigma_min < sigma_base:
            raise ValueError(f"dra: sigma_min must be in (0, sigma_base={sigma_base}), got {sigma_min}")
        if not sigma_min <= sigma0 <= sigma_base:
            raise ValueError(f"dra: sigma0 must be in [sigma_min, sigma_base] = [{sigma_min}, {sigma_base}], "
                             f"got {sigma0}")
        if not (math.isfinite(clip_width) and 0.0 <= clip_width <= 0.1 * (sigma_base - sigma_min)):
            raise ValueError(f"dra: clip_width must be in [0, (sigma_base - sigma_min) / 10] = "
                             f"[0, {0.1 * (sigma_base - sigma_min):g}], got {clip_width}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"dra: gamma must be in [0, 1], got {gamma}")
        if isinstance(n_nodes, bool) or not isinstance(n_nodes, (int, np.integer)) or n_nodes < 2:
            raise ValueError(f"dra: n_nodes must be an integer >= 2, got {n_nodes!r}")
        super().__init__(fixed=fixed, sigma_base=sigma_base, sigma0=sigma0, sigma_min=sigma_min,
                         clip_width=clip_width, q0=float(q0),
                         gamma=float(gamma), n_nodes=int(n_nodes))

    def param_spec(self):
        return [
            Param("alpha_q", 0.0, 1.0, 0.1, doc="learning rate of the memory means"),
            # weakly informative prior (module docstring, "Prior on alpha_sigma"): logit N(logit 0.1, 1.5^2)
            Param("alpha_sigma", 0.0, 1.0, 0.1, prior_loc=math.log(0.1 / 0.9), prior_scale=1.5,
                  doc="learning rate of the memory SDs"),
            Param("lam", 0.0, float("inf"), 0.1, doc="weight of the KL memory cost"),
        ]

    def init(self, p, env, n, ops):
        self._learn, self._known_item, self._known_item_value = _item_tables(env)
        o = self.options
        return {
            "qbar": ops.zeros((n, env.n_items)) + o["q0"],
            "sigma": ops.zeros((n, env.n_items)) + o["sigma0"],
        }

    # -- helpers ------------------------------------------------------------------
    def _shown(self, s, items, known, known_value, ops):
        q = ops.where(known, known_value, ops.gather(s["qbar"], items))
        sig = ops.where(known, 0.0, ops.gather(s["sigma"], items))
        return q, sig

    def _pol(self, q, sig, avail, ops, score=False):
        return _policy(q, sig, avail, ops, self.options["n_nodes"], self.env.n_actions, score=score)

    def _cost(self, p, sigma, ops):
        learn = ops.asarray(self._learn.astype(float))[None, :]
        kl = dra_kl(sigma, self.options["sigma_base"], ops)
        return p["lam"] * ops.sum(kl * learn, axis=-1)

    # -- rule ---------------------------------------------------------------------
    def decide(self, p, s, obs, ops):
        avail = obs["avail"]
        q, sig = self._shown(s, obs["items"], obs["known"], obs["known_value"], ops)
        policy, logp, score = self._pol(q, sig, avail, ops, score=True)
        availf = ops.where(avail, 1.0, 0.0)
        n_avail = ops.sum(availf, axis=-1)
        s2 = sig * sig + 0.5 * EPS
        S = ops.sqrt(2.0 * ops.sum(s2 * availf, axis=-1) / n_avail)
        tau_eff = S / PROBIT_LOGIT
        h = ops.entropy(policy)
        v = ops.sum(policy * q, axis=-1)
        # dprime: best option against its closest competitor (see module docstring)
        A = self.env.n_actions
        if A > 1:
            d = (q[:, :, None] - q[:, None, :]) / ops.sqrt(s2[:, :, None] + s2[:, None, :])
            comp = availf[:, None, :] * ops.asarray(1.0 - np.eye(A))[None]
            dmin = ops.max(-ops.where(comp > 0, d, 1e30), axis=-1) * -1.0  # min over competitors
            dmax = ops.max(ops.where(avail, dmin, -1e30), axis=-1)
            dprime = ops.where(n_avail > 1.5, dmax, 0.0)
        else:
            dprime = 0.0 * v
        return {
            "q": q, "q_soft": q, "v": v, "v_soft": v + tau_eff * h, "policy": policy, "log_policy": logp,
            "entropy": h, "sigma": sig, "dprime": dprime, "cost": self._cost(p, s["sigma"], ops),
            "dlogp_dsigma": score,  # (n, A, A), used by learn; not a recorded latent
        }

    def learn(self, p, s, obs, dec, ops):
        o = self.options
        A = self.env.n_actions
        a1h = ops.onehot(obs["choice"], A)
        q = dec["q"]
        qa = take(q, a1h, ops)
        # expected-SARSA target with the analytic next policy
        known_item = ops.asarray(self._known_item)
        known_val = ops.asarray(self._known_item_value)
        zero = 0.0 * s["qbar"]
        nk = ops.gather(zero + known_item[None, :], obs["next_items"]) > 0.5
        nkv = ops.gather(zero + known_val[None, :], obs["next_items"])
        qn, sn = self._shown(s, obs["next_items"], nk, nkv, ops)
        pn, _ = self._pol(qn, sn, obs["next_avail"], ops)
        vnext = ops.sum(pn * ops.where(obs["next_avail"], qn, 0.0), axis=-1)
        target = obs["reward"] + o["gamma"] * (1.0 - obs["done"]) * vnext
        delta = target - qa
        knownf = ops.where(obs["known"], 1.0, 0.0)
        learnt_chosen = 1.0 - take(knownf, a1h, ops)
        qbar = ops.scatter_add(s["qbar"], obs["chosen_item"], p["alpha_q"] * delta * learnt_chosen)
        # precision: policy-gradient step on the shown learnt memories + KL step on all learnable ones
        psi = target - dec["v"]
        g = ops.sum(a1h[:, :, None] * dec["dlogp_dsigma"], axis=1)  # d log P(a_t) / d sigma_b
        shown_learnt = ops.where(obs["avail"], 1.0, 0.0) * (1.0 - knownf)
        step = p["alpha_sigma"][:, None] * psi[:, None] * g * shown_learnt
        sigma = s["sigma"]
        learn = ops.asarray(self._learn.astype(float))[None, :]
        sb = o["sigma_base"]
        new_sigma = sigma - (p["alpha_sigma"] * p["lam"])[:, None] * (sigma / (sb * sb) - 1.0 / sigma) * learn
        for a in range(A):
            new_sigma = ops.scatter_add(new_sigma, obs["items"][:, a], step[:, a])
        # memories that are never learnt keep their sigma exactly (the smooth clip is the identity only up to
        # w exp(-d / w), which would accumulate over trials)
        new_sigma = learn * dra_clip(new_sigma, o["sigma_min"], sb, o["clip_width"], ops) + (1.0 - learn) * sigma
        return {"qbar": qbar, "sigma": new_sigma}, {"rpe": delta, "chosen_value": qa, "advantage": psi}

    def check_data(self, trials) -> None:
        """Warn when the memory SDs do not match the reward scale of ``trials`` (docs/agents.md, "Reward scale").

        DRA's ``sigma_base``, ``sigma0`` and ``sigma_min`` are in reward units: the choice noise is the memory SD
        against the value differences. Its defaults (``sigma_base = 5``) follow the source's rewards of about 10
        (``sigma_base`` about half the reward range). When ``sigma_base`` exceeds twice the range of the rewards
        in the data, the memories are so noisy that choices barely depend on the values, the precision
        parameters are not identified and the model is penalised for the mismatch, not for its account; the
        warning gives the options that restore the source's ratio.
        """
        import warnings

        from .reward_scale import reward_range

        rr = reward_range(trials)
        if rr is None:
            return
        rmin, rmax, span = rr
        sb = self.options["sigma_base"]
        if span > 0 and (sb > 2.0 * span or sb < span / 100.0):
            fit = 0.5 * span
            warnings.warn(
                f"dra: sigma_base = {sb:g} (memory SDs are in reward units) but the rewards in these data span "
                f"[{rmin:g}, {rmax:g}] (range {span:g}); DRA's defaults assume sigma_base about half the "
                f"reward range. Use dra:sigma_base={fit:.3g},sigma0={fit / 2:.3g} (API: make_agent('dra', "
                f"sigma_base={fit:.3g}, sigma0={fit / 2:.3g})), or rescale the rewards", UserWarning, stacklevel=3)

    def sample_choice(self, dec, obs, rng):
        """Sample every shown memory and choose the argmax over available actions.

        ``q_sample = q + sqrt(sigma^2 + EPS/2) * zeta``, ``zeta ~ N(0, I)``; the
        choice distribution is exactly :func:`dra_policy` (up to quadrature
        error for three or more available actions).
        """
        q, sig, avail = dec["q"], dec["sigma"], obs["avail"]
        zeta = rng.standard_normal(q.shape)
        q_sample = q + np.sqrt(sig * sig + 0.5 * EPS) * zeta
        choice = np.argmax(np.where(avail, q_sample, -np.inf), axis=-1)
        return choice.astype(np.int64), {"zeta": zeta, "q_sample": q_sample}
