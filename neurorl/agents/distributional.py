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

Asymmetries (option ``taus``)
-----------------------------
``None`` (default): ``tau_i = (i + 1/2) / N`` on an even grid in (0, 1), so the channel index orders
the optimism levels (and the reversal points) by construction. ``"random"``: as the source, each
channel draws ``alpha_i^+, alpha_i^- ~ U(0.001, 0.02)`` independently (seeded by ``tau_seed``, so
replay is exact) and keeps its asymmetry ``tau_i = alpha_i^+ / (alpha_i^+ + alpha_i^-)``; the channels
are *not* sorted, so any ordering of reversal points has to be found from the responses
(:func:`reversal_points`). A sequence of floats in (0, 1): user-given levels. In all cases the scale
of the two rates is the free ``alpha`` (their geometric mean), so only the asymmetry comes from the
option [A].

Variants (option ``variant``)
-----------------------------
``"expectile"`` (default): steps ``rate(d) * d``, fixed point the ``tau_i``-expectile.
``"quantile"``: sign-only steps ``rate(d) * sign(d)`` (``alpha^+`` up, ``alpha^-`` down, 0 at
``d = 0``), fixed point the ``tau_i``-quantile: ``tau P(r > z) = (1 - tau) P(r < z)`` [D].

Helpers
-------
:func:`expectile` and :func:`quantile` of a discrete distribution; :func:`reversal_points` (the
reward at which a channel's (or neuron's) response changes sign) and :func:`response_slopes`
(slopes of the response above and below the reversal point: the optimistic and pessimistic rates
``alpha^+`` and ``alpha^-`` when the response is the channel's update ``rate(d) * d``, and their
asymmetry ``slope^+ / (slope^+ + slope^-)``).

Deviations from the source (neuro-nav ``DistQ``), so that replay is exact
-----------------------------------------------------------------------
[A] Random asymmetries are drawn once per agent from ``tau_seed`` (not per run).
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

__all__ = ["DistributionalTD", "tau_grid", "random_taus", "asymmetric_rates", "expectile", "quantile",
           "reversal_points", "response_slopes"]

VARIANTS = ("expectile", "quantile")


def tau_grid(n_channels: int) -> np.ndarray:
    """Optimism levels ``(i + 1/2) / N``, i = 0..N-1."""
    return (np.arange(n_channels) + 0.5) / n_channels


def random_taus(n_channels: int, seed: int = 0, low: float = 0.001, high: float = 0.02) -> np.ndarray:
    """Asymmetries ``a+ / (a+ + a-)`` of rates drawn independently from U(low, high) (neuro-nav ``DistQ``)."""
    rng = np.random.default_rng(seed)
    up, down = rng.uniform(low, high, size=(2, n_channels))
    return up / (up + down)


def expectile(values, probs, tau: float) -> float:
    """The ``tau``-expectile ``z`` of a discrete distribution: ``tau E[(r - z)+] = (1 - tau) E[(z - r)+]``.

    Solved exactly: the equation is piecewise linear in ``z`` between sorted support points.
    """
    v, p = _distribution(values, probs)
    if not 0.0 < tau < 1.0:
        raise ValueError(f"expectile: tau must be in (0, 1), got {tau}")
    # g(z) = tau sum p (v - z)+ - (1 - tau) sum p (z - v)+ is decreasing; find the segment where it crosses 0
    def g(z):
        return tau * np.sum(p * np.maximum(v - z, 0.0)) - (1 - tau) * np.sum(p * np.maximum(z - v, 0.0))

    gs = np.array([g(x) for x in v])
    k = int(np.flatnonzero(gs <= 0.0)[0]) if np.any(gs <= 0.0) else len(v) - 1
    if k == 0 or gs[k] == 0.0:
        return float(v[k])
    lo, hi = v[k - 1], v[k]
    return float(lo + (hi - lo) * gs[k - 1] / (gs[k - 1] - gs[k]))


def quantile(values, probs, tau: float) -> float:
    """The ``tau``-quantile of a discrete distribution: the smallest ``v`` with ``P(r <= v) >= tau``.

    At a ``tau`` equal to a CDF step every point between two support values is a quantile; the
    smallest is returned.
    """
    v, p = _distribution(values, probs)
    if not 0.0 < tau < 1.0:
        raise ValueError(f"quantile: tau must be in (0, 1), got {tau}")
    cdf = np.cumsum(p)
    return float(v[int(np.flatnonzero(cdf >= tau - 1e-15)[0])])


def _distribution(values, probs):
    v, p = np.asarray(values, float).ravel(), np.asarray(probs, float).ravel()
    if v.shape != p.shape or v.size == 0:
        raise ValueError(f"values and probs must be non-empty and of the same length, got {v.size} and {p.size}")
    if np.any(p < 0) or not np.all(np.isfinite(v)) or p.sum() <= 0:
        raise ValueError("probs must be non-negative with a positive sum and values finite")
    order = np.argsort(v)
    return v[order], p[order] / p.sum()


def reversal_points(reward, response, *, method: str = "kink") -> np.ndarray:
    """Reward at which each channel's (or unit's) response changes sign.

    Parameters
    ----------
    reward : array_like, shape (T,)
        Reward of each trial (a few distinct magnitudes, as in Dabney et al. 2020).
    response : array_like, shape (T,) or (T, C)
        Response per trial and channel: the agent's ``rpe_channels`` (linear in the reward), its
        channel updates ``rate(d) d`` (slope ``alpha^+`` above the reversal point and ``alpha^-``
        below), or a neuron's firing change.
    method : {"kink", "interpolate"}, default "kink"
        ``"interpolate"``: linear interpolation of the mean response per magnitude between the two
        adjacent magnitudes where it goes from negative to non-negative (exact for a response linear
        in the reward). ``"kink"``: within that bracket, the ``z`` that minimises the squared error of
        the two-slope model ``slope_pos (r - z)+ - slope_neg (z - r)+`` fitted by least squares (exact
        for a noiseless asymmetric response, where interpolation is biased toward the steeper side).

    Returns
    -------
    numpy.ndarray, shape (C,)
        Reversal points; NaN for a channel whose mean response never changes sign over the
        magnitudes shown (its reversal point lies outside them).
    """
    from scipy.optimize import minimize_scalar

    if method not in ("kink", "interpolate"):
        raise ValueError(f"reversal_points: method must be 'kink' or 'interpolate', got {method!r}")
    r = np.asarray(reward, float).ravel()
    y = np.asarray(response, float)
    y = y[:, None] if y.ndim == 1 else y
    if y.shape[0] != r.size:
        raise ValueError(f"reversal_points: reward has {r.size} trials, response {y.shape[0]}")
    mags = np.unique(r)
    if mags.size < 2:
        raise ValueError("reversal_points: needs at least two distinct reward magnitudes")
    mean = np.stack([y[r == m].mean(axis=0) for m in mags])  # (M, C)
    out = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        cross = np.flatnonzero((mean[:-1, c] < 0) & (mean[1:, c] >= 0))
        if not cross.size:
            continue
        k = cross[0]
        y0, y1 = mean[k, c], mean[k + 1, c]
        out[c] = mags[k] + (mags[k + 1] - mags[k]) * (-y0) / (y1 - y0)
        if method == "kink":
            yc = y[:, c]
            out[c] = minimize_scalar(lambda z: _kink_sse(r, yc, z), bounds=(mags[k], mags[k + 1]), method="bounded",
                                     options={"xatol": 1e-12}).x
    return out


def _kink_sse(r, y, z) -> float:
    """Residual sum of squares of ``y = s+ (r - z)+ - s- (z - r)+`` at its least-squares slopes."""
    x = r - z
    sse = 0.0
    for side in (x > 0, x < 0):
        if side.any():
            xs, ys = x[side], y[side]
            b = np.sum(xs * ys) / np.sum(xs * xs)
            sse += float(np.sum((ys - b * xs) ** 2))
    return sse + float(np.sum(y[x == 0] ** 2))


def response_slopes(reward, response, reversal) -> dict:
    """Optimistic and pessimistic slopes of each channel's response around its reversal point.

    Least squares through the reversal point, separately for trials with reward above and below it:
    ``response = slope_pos (r - z)`` for ``r > z`` and ``slope_neg (r - z)`` for ``r < z``.

    Returns
    -------
    dict
        ``slope_pos``, ``slope_neg`` and ``asymmetry = slope_pos / (slope_pos + slope_neg)``, each (C,);
        NaN where a side has no trials or the reversal point is NaN.
    """
    r = np.asarray(reward, float).ravel()
    y = np.asarray(response, float)
    y = y[:, None] if y.ndim == 1 else y
    z = np.atleast_1d(np.asarray(reversal, float))
    if y.shape != (r.size, z.size):
        raise ValueError(f"response_slopes: response must be (T={r.size}, C={z.size}), got {y.shape}")
    pos, neg = np.full(z.size, np.nan), np.full(z.size, np.nan)
    for c in range(z.size):
        if not np.isfinite(z[c]):
            continue
        x = r - z[c]
        for side, out in ((x > 0, pos), (x < 0, neg)):
            if side.any():
                out[c] = float(np.sum(x[side] * y[side, c]) / np.sum(x[side] ** 2))
    return {"slope_pos": pos, "slope_neg": neg, "asymmetry": pos / (pos + neg)}


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
    taus : None, "random" or sequence of float, default None
        Optimism levels: even grid, random asymmetries (seed ``tau_seed``) or user-given levels in
        (0, 1) (then ``n_channels`` is their number).
    tau_seed : int, default 0
        Seed of the random asymmetries.
    variant : {"expectile", "quantile"}, default "expectile"
        Asymmetric TD steps (expectiles) or sign-only steps (quantiles).
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

    def __init__(self, *, n_channels: int = 10, gamma: float = 0.9, q0: float = 0.0, taus=None, tau_seed: int = 0,
                 variant: str = "expectile", fixed=None):
        extra = {}
        if taus is not None and not (isinstance(taus, str) and taus == "random"):
            if isinstance(taus, str):
                raise ValueError(f"distributional_td: taus must be None, 'random' or a sequence of levels, got {taus!r}")
            try:
                levels = np.asarray(taus, float).ravel()
            except (TypeError, ValueError):
                raise ValueError(f"distributional_td: taus must be numbers in (0, 1), got {taus!r}") from None
            if levels.size == 0 or not np.all((levels > 0) & (levels < 1)):
                raise ValueError(f"distributional_td: every tau must lie in (0, 1), got {taus!r}")
            n_channels = levels.size
            extra["taus"] = tuple(float(x) for x in levels)
        if isinstance(n_channels, bool) or not isinstance(n_channels, (int, np.integer)) or n_channels < 1:
            raise ValueError(f"distributional_td: n_channels must be a positive integer, got {n_channels!r}")
        if not 0.0 <= float(gamma) <= 1.0:
            raise ValueError(f"distributional_td: gamma must be in [0, 1], got {gamma}")
        if variant not in VARIANTS:
            raise ValueError(f"distributional_td: variant must be one of {VARIANTS}, got {variant!r}")
        if isinstance(taus, str):
            if isinstance(tau_seed, bool) or not isinstance(tau_seed, (int, np.integer)):
                raise ValueError(f"distributional_td: tau_seed must be an int, got {tau_seed!r}")
            self.tau_channels = random_taus(int(n_channels), int(tau_seed))
            extra.update(taus="random", tau_seed=int(tau_seed))
        elif taus is not None:
            self.tau_channels = np.asarray(extra["taus"])
        else:
            self.tau_channels = tau_grid(int(n_channels))
        if variant != "expectile":
            extra["variant"] = variant
        super().__init__(fixed=fixed, n_channels=int(n_channels), gamma=float(gamma), q0=float(q0), **extra)

    @property
    def alpha_max(self) -> float:
        """Upper bound of ``alpha``: every channel rate stays below 1."""
        t = float(np.min(self.tau_channels))
        t = min(t, 1.0 - float(np.max(self.tau_channels)))
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
        step = d if self.options.get("variant", "expectile") == "expectile" else ops.sign(d)
        inc = ops.sum(ops.sum(weight * rate * step, axis=-1), axis=-1)  # (n, N)
        rpe_ch = ops.sum(ops.sum(weight * d, axis=-1), axis=-1)
        learnt = 1.0 - take(ops.where(obs["known"], 1.0, 0.0), a1h, ops)
        Z = s["Z"]
        for i in range(N):
            Z = ops.scatter_add(Z, obs["chosen_item"] * N + i, inc[:, i] * learnt)
        return {"Z": Z}, {
            "expectiles": z_chosen, "rpe_channels": rpe_ch, "rpe": ops.mean(rpe_ch, axis=-1),
            "chosen_value": take(dec["q"], a1h, ops),
        }
