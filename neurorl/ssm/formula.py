"""Formulas on DDM parameters: parsing, design matrices, links and default priors.

A parameter's formula is written as in HSSM (lme4 / formulae syntax, built with ``patsy``)::

    "v ~ 1 + C(stim)"                    fixed effects only
    "a ~ 1 + theta:C(conf) + (1|subject)" + a subject-varying intercept
    "v ~ 0 + C(cond) + (0 + C(cond)|subject)"  cell means, each varying by subject

The fixed part is any ``patsy`` right-hand side (``C()``, interactions ``:`` and ``*``, ``np.log(x)``, ...); each
``(terms|subject)`` group adds subject-level deviations of those terms' coefficients (non-centred, see
:mod:`neurorl.ssm.model`). The grouping factor must be the subject column. When ``hierarchical=True`` (default) a
formula without any ``(...|subject)`` part gets ``(1|subject)``; write ``hierarchical=False`` for a pooled model.

The linear predictor ``eta`` is mapped to the parameter by a link (:data:`LINKS`): ``v`` identity, ``a``, ``t0``,
``sv`` log, ``z``, ``p_outlier`` logit. Coefficients therefore live on the link scale (``a ~ theta`` means
``log a = b0 + b1 theta``), as with HSSM's log/logit link options.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_PRIORS", "LINKS", "Link", "ParamFormula", "parse_formula"]

_RANDOM = re.compile(r"\(\s*([^()|]+?)\s*\|\s*([A-Za-z_][A-Za-z0-9_.]*)\s*\)")


@dataclasses.dataclass(frozen=True)
class Link:
    """A link ``param = inv(eta)`` with its first two derivatives (NumPy) and a PyTensor version."""

    name: str

    def inv(self, eta):
        if self.name == "identity":
            return eta
        if self.name == "log":
            return np.exp(eta)
        return 1.0 / (1.0 + np.exp(-eta))

    def d1(self, eta):
        if self.name == "identity":
            return np.ones_like(eta)
        if self.name == "log":
            return np.exp(eta)
        s = 1.0 / (1.0 + np.exp(-eta))
        return s * (1.0 - s)

    def d2(self, eta):
        if self.name == "identity":
            return np.zeros_like(eta)
        if self.name == "log":
            return np.exp(eta)
        s = 1.0 / (1.0 + np.exp(-eta))
        return s * (1.0 - s) * (1.0 - 2.0 * s)

    def forward(self, x):
        """``eta`` of a parameter value (for starting points)."""
        x = np.asarray(x, dtype=float)
        if self.name == "identity":
            return x
        if self.name == "log":
            return np.log(x)
        return np.log(x) - np.log1p(-x)

    def inv_pt(self, eta):
        import pytensor.tensor as pt

        if self.name == "identity":
            return eta
        if self.name == "log":
            return pt.exp(eta)
        return pt.sigmoid(eta)


LINKS = {"v": Link("identity"), "a": Link("log"), "z": Link("logit"), "t0": Link("log"), "sv": Link("log"),
         "p_outlier": Link("logit")}

#: default priors on the link scale: intercept (loc, scale), other coefficients (0, scale), subject sd HalfNormal
#: scale. Intercepts centre on typical values: a = 1.5, z = 0.5, t0 = 0.25 s, sv = 0.5, p_outlier = 0.05.
DEFAULT_PRIORS = {
    "v": {"intercept": (0.0, 2.5), "slope": 2.5, "sd": 1.0},
    "a": {"intercept": (math.log(1.5), 0.5), "slope": 1.0, "sd": 0.5},
    "z": {"intercept": (0.0, 1.0), "slope": 1.0, "sd": 0.5},
    "t0": {"intercept": (math.log(0.25), 0.75), "slope": 1.0, "sd": 0.5},
    "sv": {"intercept": (math.log(0.5), 1.0), "slope": 1.0, "sd": 0.5},
    "p_outlier": {"intercept": (math.log(0.05 / 0.95), 1.0), "slope": 1.0, "sd": 0.5},
}


def _patsy():
    try:
        import patsy
    except ImportError as exc:  # pragma: no cover - patsy is a dependency
        raise ImportError("neurorl.ssm needs patsy for formulas: pip install patsy") from exc
    return patsy


@dataclasses.dataclass
class ParamFormula:
    """One parameter's formula: fixed right-hand side and (optional) subject-varying right-hand side."""

    param: str
    fixed: str
    random: str | None
    text: str

    def design(self, data: pd.DataFrame, info=None):
        """Fixed-effect design matrix ``(n, K)``, its column names and the patsy design info (for new data)."""
        return _design(self.fixed, data, info, f"{self.param} ~ {self.fixed}")

    def random_design(self, data: pd.DataFrame, info=None):
        if self.random is None:
            return np.zeros((len(data), 0)), [], None
        return _design(self.random, data, info, f"({self.random}|subject) of {self.param}")


def _design(rhs: str, data: pd.DataFrame, info, where: str):
    patsy = _patsy()
    try:
        if info is None:
            dm = patsy.dmatrix(rhs, data, return_type="dataframe", NA_action="raise")
            return dm.to_numpy(dtype=float), list(dm.columns), dm.design_info
        (dm,) = patsy.build_design_matrices([info], data, return_type="dataframe", NA_action="raise")
        return dm.to_numpy(dtype=float), list(dm.columns), info
    except patsy.PatsyError as exc:
        raise ValueError(f"ssm formula {where!r}: {exc}") from None


def parse_formula(text: str, *, subject: str, hierarchical: bool) -> ParamFormula:
    """Parse ``"param ~ rhs [+ (terms|subject)]"``.

    Raises ``ValueError`` naming the formula for an unknown parameter, a grouping factor other than ``subject``,
    or more than one random part.
    """
    if "~" not in text:
        raise ValueError(f"ssm formula {text!r} has no '~' (write e.g. 'v ~ 1 + C(stim)')")
    lhs, rhs = (s.strip() for s in text.split("~", 1))
    if lhs not in LINKS:
        raise ValueError(f"ssm formula {text!r}: unknown parameter {lhs!r}; the DDM parameters are {list(LINKS)}")
    groups = _RANDOM.findall(rhs)
    for _, g in groups:
        if g != subject:
            raise ValueError(f"ssm formula {text!r}: subject effects can only be grouped by the subject column "
                             f"{subject!r}, got {g!r}")
    if len(groups) > 1:
        raise ValueError(f"ssm formula {text!r}: write one (terms|{subject}) group per parameter")
    fixed = _RANDOM.sub("", rhs)
    fixed = re.sub(r"\+\s*(\+\s*)+", "+ ", fixed).strip().strip("+").strip() or "1"
    random = groups[0][0] if groups else ("1" if hierarchical else None)
    return ParamFormula(lhs, fixed, random, text)
