"""Decoding: relate RL latents to neural activity (reference: decoding.md).

Modules
-------
:mod:`~neurorl.decoding.neural`
    ``(trial, unit, time)`` containers, spike binning, NWB, netCDF/zarr, alignment by trial label.
:mod:`~neurorl.decoding.encoding`
    Mass-univariate OLS (t, CPD, cross-validated R^2), Poisson GLM (pseudo-R^2, bits per spike), fast null refits.
:mod:`~neurorl.decoding.synthetic`
    Synthetic populations encoding chosen latents (ground truth).
:mod:`~neurorl.decoding.cv`, :mod:`~neurorl.decoding.decoders`, :mod:`~neurorl.decoding.nulls`,
:mod:`~neurorl.decoding.compare`
    Blocked cross-validation, decoders, nulls for slow latents, soft-vs-true comparisons.

The names of the last four modules are loaded on first use, so importing the package stays light.
"""

from __future__ import annotations

import importlib
import importlib.util

from .encoding import cv_r2, design_matrix, ols, ols_null, ols_stat, poisson_glm
from .neural import NEURAL_DIMS, align, bin_spikes, make_neural, read_neural, read_nwb, validate_neural, write_neural
from .synthetic import synthetic_population

_EAGER = [
    "NEURAL_DIMS", "align", "bin_spikes", "make_neural", "read_neural", "read_nwb", "validate_neural",
    "write_neural", "cv_r2", "design_matrix", "ols", "ols_null", "ols_stat", "poisson_glm", "synthetic_population",
]

#: Public names of the lazily imported modules (decoding API), by module.
_LAZY_MODULES = {
    "cv": ["BlockedKFold", "GroupBlockedKFold"],
    "decoders": ["RidgeDecoder", "LogisticDecoder", "decode", "temporal_generalization"],
    "nulls": ["pseudosession_latents", "null_test", "linear_shift_test", "session_permutation", "permutation_null",
              "circular_shift_null", "AnticonservativeNullWarning", "cluster_mass", "fdr_bh"],
    "compare": ["compare_latents"],
}
_LAZY = {name: mod for mod, names in _LAZY_MODULES.items() for name in names}


def _available(mod: str) -> bool:
    return importlib.util.find_spec(f"{__name__}.{mod}") is not None


def __getattr__(name):
    mods = [_LAZY[name]] if name in _LAZY else [m for m in _LAZY_MODULES if _available(m)]
    for mod in mods:
        module = importlib.import_module(f"{__name__}.{mod}")
        if name in getattr(module, "__all__", ()) or name in _LAZY:
            value = getattr(module, name)
            globals()[name] = value
            return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


__all__ = _EAGER + [n for mod, names in _LAZY_MODULES.items() if _available(mod) for n in names]
