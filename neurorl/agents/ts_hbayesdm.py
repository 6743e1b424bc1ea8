"""hBayesDM's two-step models by their names: ``ts_par4``, ``ts_par6``, ``ts_par7``.

Each is :class:`~neurorl.agents.two_step.TwoStepHybrid` with the options of
:meth:`TwoStepHybrid.hbayesdm` (hBayesDM's eligibility term and parameter
set; see :mod:`neurorl.agents.two_step`), registered under hBayesDM's name so
that ``make_agent("ts_par7")`` and ``neurorl fit --agent ts_par7`` reach it.
Parameter names are ours (``alpha1`` for hBayesDM's ``a1``, ``p`` for ``pi``,
``lam`` for ``lambda``; :data:`neurorl.agents.two_step.HBAYESDM_NAMES`).

hBayesDM's hierarchy (``fit_bayes(..., priors="hbayesdm")``): learning rates,
``w`` and ``lambda`` through Phi_approx, inverse temperatures through exp,
the stickiness ``pi`` through ``5 Phi_approx`` (hBayesDM bounds it to (0, 5);
here ``p`` is real, so under these priors it stays in (0, 5)).
"""

from __future__ import annotations

from ._hbayesdm import EXP, PHI, HBPrior
from .base import register_agent
from .two_step import _PRESETS, TwoStepHybrid

__all__ = ["TsPar4", "TsPar6", "TsPar7"]

_PI = HBPrior("phi", lower=0.0, upper=5.0)


class _TsPreset(TwoStepHybrid):
    """A :class:`TwoStepHybrid` fixed to one hBayesDM preset (see the subclasses).

    Parameters
    ----------
    p_common : float, default 0.7
        Known probability of the common transition.
    fixed : dict, optional
        Parameters held constant.
    """

    def __init__(self, *, p_common=0.7, fixed=None):
        super().__init__(hbayesdm_eligibility=True, **_PRESETS[self.name], p_common=p_common, fixed=fixed)


@register_agent
class TsPar4(_TsPreset):
    """hBayesDM ``ts_par4``: alpha, beta, p, w (lambda = 1)."""

    name = "ts_par4"
    hbayesdm_priors = {"alpha": PHI, "beta": EXP, "p": _PI, "w": PHI}


@register_agent
class TsPar6(_TsPreset):
    """hBayesDM ``ts_par6``: alpha1, beta1, alpha2, beta2, p, w (lambda = 1)."""

    name = "ts_par6"
    hbayesdm_priors = {"alpha1": PHI, "beta1": EXP, "alpha2": PHI, "beta2": EXP, "p": _PI, "w": PHI}


@register_agent
class TsPar7(_TsPreset):
    """hBayesDM ``ts_par7``: alpha1, beta1, alpha2, beta2, p, w, lam."""

    name = "ts_par7"
    hbayesdm_priors = {"alpha1": PHI, "beta1": EXP, "alpha2": PHI, "beta2": EXP, "p": _PI, "w": PHI,
                       "lam": PHI}
