"""What the hBayesDM ports share: their prior descriptions (not an agents module; see ``_builtin``).

Every agent ported from hBayesDM declares ``hbayesdm_priors``: parameter name ->
:class:`HBPrior`, the way hBayesDM's Stan file puts that parameter on its
scale (Ahn, Haines & Zhang 2017, Computational Psychiatry 1:24; the model files
are ``commons/stan_files/<model>.stan``). :func:`neurorl.fitting.bayes.fit_bayes`
with ``priors="hbayesdm"`` builds the hierarchy from these (docs/bayes.md).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HBPrior", "PHI", "EXP", "REAL_CAUCHY1"]


@dataclass(frozen=True)
class HBPrior:
    """One parameter's hBayesDM hierarchy.

    Attributes
    ----------
    transform : {"phi", "identity", "exp"}
        ``"phi"``: ``lower + (upper - lower) Phi_approx(mu + sigma z)`` with the
        parameter's own bounds; ``"identity"``: ``mu + sigma z`` (unbounded
        parameters); ``"exp"``: ``exp(mu + sigma z)``.
    sigma_dist : {"normal", "cauchy"}
        The group sd's prior, half-``sigma_dist(0, sigma_scale)``.
    sigma_scale : float
        Its scale (0.2 for the bounded parameters of most models).
    lower, upper : float, optional
        hBayesDM's bounds where they are narrower than the parameter's own
        (the two-step stickiness ``pi``: (0, 5) there, real here); default:
        the parameter's bounds.
    """

    transform: str = "phi"
    sigma_dist: str = "normal"
    sigma_scale: float = 0.2
    lower: float | None = None
    upper: float | None = None

    def __post_init__(self):
        if self.transform not in ("phi", "identity", "exp"):
            raise ValueError(f"HBPrior: transform must be 'phi', 'identity' or 'exp', got {self.transform!r}")
        if self.sigma_dist not in ("normal", "cauchy"):
            raise ValueError(f"HBPrior: sigma_dist must be 'normal' or 'cauchy', got {self.sigma_dist!r}")
        if not self.sigma_scale > 0:
            raise ValueError(f"HBPrior: sigma_scale must be positive, got {self.sigma_scale}")


#: bounded parameter, Phi_approx onto its bounds, group sd half-N(0, 0.2) (the common case)
PHI = HBPrior()
#: positive parameter, exp(mu + sigma z), group sd half-N(0, 0.2) (inverse temperatures of the two-step models)
EXP = HBPrior("exp")
#: unbounded parameter (indecision point, perseverance weights), group sd half-Cauchy(0, 1)
REAL_CAUCHY1 = HBPrior("identity", "cauchy", 1.0)

