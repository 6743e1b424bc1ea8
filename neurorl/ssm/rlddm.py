"""RL-DDM variants: a non-linear (sigmoid) drift mapping for :class:`neurorl.fitting.WithRT`.

Fontanesi, Gluth, Spektor & Rieskamp (2019, Psychon Bull Rev 26:1099) map the value difference to the drift through
a sigmoid, which saturates for large differences where the linear mapping of Pedersen, Frank & Biele (2017) grows
without bound (fitting.md §2.2)::

    v_t = v_max / (1 + exp(-v_mod * dQ_t)) - v_max / 2   =   v_max * (sigmoid(v_mod * dQ_t) - 1/2)

``SigmoidWienerRT`` is :class:`neurorl.fitting.observation.WienerRT` with this drift (parameters ``v_max`` and
``v_mod`` instead of ``v_scale``; ``a``, ``w``, ``t0`` and optional ``sv`` as there). It plugs into everything that
takes an RT model -- ``MAP(agent, rt=SigmoidWienerRT())``, ``EMMAP``, ``fit_bayes``, ``simulate`` -- and combines
with the agent's own options, e.g. dual learning rates (``make_agent("q_learning", dual_rates=True)``) and a free
starting point ``w`` (the default). Its slope at ``dQ = 0`` is ``v_max * v_mod / 4`` (the linear model's
``v_scale``).
"""

from __future__ import annotations

import math

from ..backend import NUMPY
from ..fitting.observation import WienerRT, _ndim
from ..params import Param

__all__ = ["SigmoidWienerRT"]


class SigmoidWienerRT(WienerRT):
    """Wiener RT model with the sigmoid drift of Fontanesi et al. (2019) (module docstring).

    Parameters
    ----------
    fixed, sv, err, min_logp
        As :class:`neurorl.fitting.observation.WienerRT`.
    """

    name = "wiener_rt_sigmoid"

    def param_spec(self) -> list[Param]:
        rest = [p for p in super().param_spec() if p.name != "v_scale"]
        return [
            Param("v_max", 0.0, math.inf, 4.0, prior_loc=math.log(4.0), prior_scale=1.0,
                  doc="range of the drift (v runs from -v_max/2 to v_max/2)"),
            Param("v_mod", 0.0, math.inf, 2.0, prior_loc=math.log(2.0), prior_scale=1.5,
                  doc="slope of the sigmoid per unit value difference"),
        ] + rest

    def drift(self, p, value_diff, ops=NUMPY):
        """``v_max * (sigmoid(v_mod * value_diff) - 1/2)``."""
        nd = _ndim(value_diff)
        v_max = self._get(p, "v_max", nd, ops)
        v_mod = self._get(p, "v_mod", nd, ops)
        return v_max * (ops.sigmoid(v_mod * value_diff) - 0.5)
