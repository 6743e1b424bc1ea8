"""Cross-validation splitters that respect trial structure (decoding.md §2-§3).

Trials of a session are a time series: neighbouring trials share slow drifts
of both the latents and the neural activity, so interleaved folds leak
information from training to test trials. The splitters here keep test trials
contiguous and optionally drop a *gap* of trials on each side of every test
block from the training set (scikit-learn has no gap/purged splitter: PR
#13761 closed, #16236 open [S]).

Both splitters follow scikit-learn's splitter API (``split(X, y=None,
groups=None)``, ``get_n_splits``), so they work with ``cross_val_score``,
``GridSearchCV`` and the decoders of :mod:`neurorl.decoding.decoders`.

Assumptions
-----------
[A] Rows of ``X`` are in trial order (the order of the neural ``trial``
coordinate); the gap is counted in rows.
[A] :class:`BlockedKFold` sizes its blocks like ``KFold(shuffle=False)``: the
first ``n_samples % n_splits`` blocks hold one extra trial.
[A] :class:`GroupBlockedKFold` keeps groups (sessions, blocks) in the order of
their first appearance and assigns consecutive groups to a fold
(``numpy.array_split`` of the group list); ``n_splits=None`` leaves one group
out per fold. The gap drops training trials within ``gap`` rows of any test
trial, so a session that follows the test session directly loses its first
``gap`` trials.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.model_selection import BaseCrossValidator

__all__ = ["BlockedKFold", "GroupBlockedKFold", "check_cv", "cv_splits"]


def _check_int(name, value, minimum, owner):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{owner}: {name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{owner}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _n_samples(X, y, groups):
    for a in (X, y, groups):
        if a is not None:
            return len(a) if not hasattr(a, "shape") else int(a.shape[0])
    raise ValueError("split needs X (or y or groups) to know the number of samples")


def _near(test: np.ndarray, n: int, gap: int) -> np.ndarray:
    """Boolean mask of rows within ``gap`` rows of a test row (test rows included)."""
    mask = np.zeros(n, bool)
    mask[test] = True
    if gap == 0:
        return mask
    # dilation of the test mask by `gap` rows on each side
    c = np.concatenate([[0], np.cumsum(mask)])
    lo = np.clip(np.arange(n) - gap, 0, n)
    hi = np.clip(np.arange(n) + gap + 1, 0, n)
    return (c[hi] - c[lo]) > 0


class BlockedKFold(BaseCrossValidator):
    """K folds of contiguous test blocks, with an optional gap.

    Fold ``k`` tests on the ``k``-th contiguous block of trials and trains on
    every other trial except the ``gap`` trials on each side of the block.

    Parameters
    ----------
    n_splits : int, default 5
        Number of folds (>= 2).
    gap : int, default 0
        Trials dropped from the training set on each side of the test block.

    Examples
    --------
    >>> cv = BlockedKFold(3, gap=1)
    >>> [(tr.tolist(), te.tolist()) for tr, te in cv.split(np.zeros(6))]
    [([3, 4, 5], [0, 1]), ([0, 5], [2, 3]), ([0, 1, 2], [4, 5])]
    """

    def __init__(self, n_splits: int = 5, gap: int = 0):
        self.n_splits = _check_int("n_splits", n_splits, 2, "BlockedKFold")
        self.gap = _check_int("gap", gap, 0, "BlockedKFold")

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds."""
        return self.n_splits

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` index arrays; ``groups`` is ignored.

        Raises
        ------
        ValueError
            If there are fewer samples than folds, or a fold has no training
            trial left after removing the gap.
        """
        n = _n_samples(X, y, groups)
        k = self.n_splits
        if n < k:
            raise ValueError(f"BlockedKFold: cannot make n_splits={k} folds from n_samples={n}")
        sizes = np.full(k, n // k)
        sizes[: n % k] += 1
        stops = np.cumsum(sizes)
        idx = np.arange(n)
        for start, stop in zip(stops - sizes, stops):
            test = idx[start:stop]
            train = idx[~_near(test, n, self.gap)]
            if train.size == 0:
                raise ValueError(
                    f"BlockedKFold: the fold testing trials {start}..{stop - 1} has no training trial left "
                    f"with gap={self.gap} and n_samples={n}")
            yield train, test

    def _iter_test_indices(self, X=None, y=None, groups=None):  # required by BaseCrossValidator
        for _, test in self.split(X, y, groups):
            yield test


class GroupBlockedKFold(BaseCrossValidator):
    """Folds made of whole groups (sessions, blocks), optionally with a gap.

    Parameters
    ----------
    n_splits : int or None, default None
        Number of folds; consecutive groups (in order of first appearance) are
        put in the same fold. ``None`` makes one fold per group
        (leave-one-group-out).
    gap : int, default 0
        Training trials within ``gap`` rows of any test trial are dropped.

    Notes
    -----
    ``groups`` is required by :meth:`split` (e.g. the ``session`` or ``block``
    coordinate of the neural ``trial`` axis).
    """

    def __init__(self, n_splits: int | None = None, gap: int = 0):
        self.n_splits = None if n_splits is None else _check_int("n_splits", n_splits, 2, "GroupBlockedKFold")
        self.gap = _check_int("gap", gap, 0, "GroupBlockedKFold")

    @staticmethod
    def _unique(groups):
        if groups is None:
            raise ValueError("GroupBlockedKFold: the 'groups' parameter should not be None")
        g = np.asarray(groups)
        if g.ndim != 1:
            raise ValueError(f"GroupBlockedKFold: groups must be 1-D, got shape {g.shape}")
        _, first = np.unique(g, return_index=True)
        return g, g[np.sort(first)]

    def get_n_splits(self, X=None, y=None, groups=None) -> int:
        """Number of folds (needs ``groups`` when ``n_splits`` is None)."""
        if self.n_splits is not None:
            return self.n_splits
        return len(self._unique(groups)[1])

    def split(self, X, y=None, groups=None):
        """Yield ``(train, test)`` index arrays, test = all trials of the fold's groups."""
        g, order = self._unique(groups)
        n = _n_samples(X, y, groups)
        if g.shape[0] != n:
            raise ValueError(f"GroupBlockedKFold: groups has {g.shape[0]} entries for {n} samples")
        k = len(order) if self.n_splits is None else self.n_splits
        if len(order) < max(k, 2):
            raise ValueError(f"GroupBlockedKFold: cannot make {k} folds from {len(order)} distinct groups")
        for chunk in np.array_split(order, k):
            test = np.flatnonzero(np.isin(g, chunk))
            train = np.flatnonzero(~_near(test, n, self.gap))
            if train.size == 0:
                raise ValueError(f"GroupBlockedKFold: the fold testing groups {list(chunk)} has no training trial left")
            yield train, test

    def _iter_test_indices(self, X=None, y=None, groups=None):
        for _, test in self.split(X, y, groups):
            yield test


def check_cv(cv=None, *, owner: str = "cv"):
    """A splitter from ``cv``: None -> ``BlockedKFold(5)``, int k -> ``BlockedKFold(k)``, else ``cv`` itself.

    Any object with ``split`` and ``get_n_splits`` (every scikit-learn
    splitter, e.g. ``KFold(5, shuffle=True)``) is accepted as is.
    """
    if cv is None:
        return BlockedKFold(5)
    if isinstance(cv, numbers.Integral) and not isinstance(cv, bool):
        return BlockedKFold(int(cv))
    if hasattr(cv, "split") and hasattr(cv, "get_n_splits"):
        return cv
    if isinstance(cv, (list, tuple)) and all(len(s) == 2 for s in cv):
        return _Fixed(cv)
    raise TypeError(f"{owner}: expected None, an int, a scikit-learn splitter or a list of (train, test), got {cv!r}")


class _Fixed:
    """A fixed list of ``(train, test)`` splits behind the splitter API."""

    def __init__(self, splits):
        self.splits = [(np.asarray(a), np.asarray(b)) for a, b in splits]

    def get_n_splits(self, X=None, y=None, groups=None):
        return len(self.splits)

    def split(self, X=None, y=None, groups=None):
        yield from self.splits


def cv_splits(cv, n_samples: int, groups=None, *, owner: str = "cv") -> list[tuple[np.ndarray, np.ndarray]]:
    """The list of ``(train, test)`` index arrays of ``check_cv(cv)`` on ``n_samples`` rows.

    Every analysis that must compare scores on *identical folds* (paired
    comparisons, null draws) computes the splits once with this function.
    """
    splitter = check_cv(cv, owner=owner)
    dummy = np.zeros((n_samples, 1))
    splits = [(np.asarray(tr, np.int64), np.asarray(te, np.int64)) for tr, te in splitter.split(dummy, None, groups)]
    if not splits:
        raise ValueError(f"{owner}: the splitter produced no folds")
    for tr, te in splits:
        if tr.size == 0 or te.size == 0:
            raise ValueError(f"{owner}: a fold has an empty training or test set")
    return splits
