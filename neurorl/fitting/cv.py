"""Exact cross-validation folds.

Folds are contiguous blocks of each subject's valid trials: the agent is replayed over every trial (learning never
skips a held-out trial), and only the held-out trials of a fold are scored. Every estimator that reports an
out-of-sample log-likelihood (the RL models, the RNNs fitted to behaviour) takes its folds from here, so that their
pointwise scores are paired trial by trial.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

__all__ = ["block_folds"]


def block_folds(trials: xr.Dataset | np.ndarray, k: int = 5) -> np.ndarray:
    """Held-out masks for K-fold cross-validation over contiguous blocks of trials within each subject.

    Parameters
    ----------
    trials
        A trials dataset (its ``valid`` mask is used) or a boolean ``(subject, trial)`` array of valid trials.
    k
        Number of folds (at least 2).

    Returns
    -------
    numpy.ndarray
        Boolean array ``(k, subject, trial)``: ``folds[f]`` marks the trials held out in fold ``f``. Each subject's
        valid trials, in order, are cut into ``k`` contiguous blocks whose sizes differ by at most one (earlier blocks
        take the extra trials); every valid trial is held out in exactly one fold and padding in none.

    Raises
    ------
    ValueError
        If ``k < 2`` or a subject has fewer than ``k`` valid trials (the error names the subject).
    """
    if isinstance(trials, xr.Dataset):
        valid = np.asarray(trials["valid"].values, dtype=bool)
        names = [str(s) for s in trials["subject"].values] if "subject" in trials.coords else None
    else:
        valid = np.asarray(trials, dtype=bool)
        names = None
    if valid.ndim != 2:
        raise ValueError(f"block_folds needs a (subject, trial) mask; got shape {valid.shape}")
    k = int(k)
    if k < 2:
        raise ValueError(f"block_folds needs k >= 2 folds; got k={k}")
    folds = np.zeros((k,) + valid.shape, dtype=bool)
    for s in range(valid.shape[0]):
        idx = np.flatnonzero(valid[s])
        if idx.size < k:
            who = names[s] if names else s
            raise ValueError(f"subject {who!r} has {idx.size} valid trials, fewer than the k={k} folds")
        for f, block in enumerate(np.array_split(idx, k)):
            folds[f, s, block] = True
    return folds
