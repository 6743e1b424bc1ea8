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

``import neurorl`` does not import this package (it pulls in scikit-learn); ``import neurorl.decoding`` does.
"""

from __future__ import annotations

from .compare import compare_latents, cv_r2_designs
from .cv import BlockedKFold, GroupBlockedKFold, check_cv, cv_splits
from .decoders import LogisticDecoder, RidgeDecoder, decode, score, temporal_generalization
from .encoding import cv_r2, design_matrix, ols, ols_null, ols_stat, poisson_glm
from .neural import NEURAL_DIMS, align, bin_spikes, make_neural, read_neural, read_nwb, validate_neural, write_neural
from .nulls import (
    AnticonservativeNullWarning, ClusterResult, NullResult, circular_shift_null, cluster_mass, fdr_bh,
    fraction_significant, linear_shift_test, null_test, p_value, permutation_null, pseudosession_latents,
    session_permutation,
)
from .synthetic import synthetic_population

__all__ = [
    "NEURAL_DIMS", "align", "bin_spikes", "make_neural", "read_neural", "read_nwb", "validate_neural", "write_neural",
    "cv_r2", "design_matrix", "ols", "ols_null", "ols_stat", "poisson_glm", "synthetic_population",
    "BlockedKFold", "GroupBlockedKFold", "check_cv", "cv_splits",
    "RidgeDecoder", "LogisticDecoder", "decode", "score", "temporal_generalization",
    "AnticonservativeNullWarning", "NullResult", "ClusterResult", "p_value", "pseudosession_latents", "null_test",
    "linear_shift_test", "session_permutation", "permutation_null", "circular_shift_null", "cluster_mass", "fdr_bh",
    "fraction_significant", "compare_latents", "cv_r2_designs",
]
