"""Cross-validation splitters that respect trial structure (neurorl.decoding.cv; decoding.md §2-§3)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from neurorl.decoding.cv import BlockedKFold, GroupBlockedKFold, check_cv, cv_splits


def _hand_blocked(n, k, gap):
    """Reference: KFold(shuffle=False) test blocks, training = all rows farther than `gap` from the block."""
    out = []
    for _, test in KFold(k, shuffle=False).split(np.zeros(n)):
        lo, hi = test.min(), test.max()
        train = [i for i in range(n) if i < lo - gap or i > hi + gap]
        out.append((np.array(train), test))
    return out


@pytest.mark.parametrize("n,k,gap", [(10, 3, 0), (23, 5, 2), (7, 7, 0), (40, 4, 5)])
def test_blocked_kfold_matches_hand_reference(n, k, gap):
    got = list(BlockedKFold(k, gap=gap).split(np.zeros((n, 2))))
    ref = _hand_blocked(n, k, gap)
    assert len(got) == k == BlockedKFold(k).get_n_splits()
    for (tr, te), (rtr, rte) in zip(got, ref):
        np.testing.assert_array_equal(te, rte)
        np.testing.assert_array_equal(tr, rtr)
    tested = np.concatenate([te for _, te in got])
    np.testing.assert_array_equal(np.sort(tested), np.arange(n))  # every trial tested exactly once


def test_blocked_kfold_docstring_example():
    got = [(tr.tolist(), te.tolist()) for tr, te in BlockedKFold(3, gap=1).split(np.zeros(6))]
    assert got == [([3, 4, 5], [0, 1]), ([0, 5], [2, 3]), ([0, 1, 2], [4, 5])]


def test_blocked_kfold_errors():
    with pytest.raises(ValueError, match="n_splits=5 folds from n_samples=3"):
        list(BlockedKFold(5).split(np.zeros(3)))
    with pytest.raises(ValueError, match="no training trial left"):
        list(BlockedKFold(2, gap=5).split(np.zeros(6)))
    with pytest.raises(ValueError, match="n_splits must be >= 2"):
        BlockedKFold(1)
    with pytest.raises(ValueError, match="gap must be >= 0"):
        BlockedKFold(3, gap=-1)
    with pytest.raises(TypeError, match="n_splits must be an int"):
        BlockedKFold(2.5)


def test_blocked_kfold_in_sklearn_cross_val_score_and_gridsearch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(size=60)
    cv = BlockedKFold(4, gap=3)
    got = cross_val_score(Ridge(alpha=1.0), X, y, cv=cv, scoring="neg_mean_squared_error")
    ref = []
    for tr, te in _hand_blocked(60, 4, 3):  # plain loop with the hand-made folds
        w = np.linalg.solve(np.c_[np.ones(tr.size), X[tr]].T @ np.c_[np.ones(tr.size), X[tr]]
                            + np.diag([0.0, 1.0, 1.0, 1.0]), np.c_[np.ones(tr.size), X[tr]].T @ y[tr])
        ref.append(-np.mean((y[te] - np.c_[np.ones(te.size), X[te]] @ w) ** 2))
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    gs = GridSearchCV(Ridge(), {"alpha": [0.1, 10.0]}, cv=cv).fit(X, y)
    assert gs.best_params_["alpha"] in (0.1, 10.0)


def test_group_blocked_kfold_leave_one_group_out_and_chunks():
    groups = np.repeat(["s1", "s2", "s3", "s4"], [3, 2, 4, 1])
    X = np.zeros((10, 1))
    logo = list(GroupBlockedKFold().split(X, groups=groups))
    assert GroupBlockedKFold().get_n_splits(groups=groups) == 4
    for (tr, te), g in zip(logo, ["s1", "s2", "s3", "s4"]):  # order of first appearance
        np.testing.assert_array_equal(te, np.flatnonzero(groups == g))
        np.testing.assert_array_equal(tr, np.flatnonzero(groups != g))
    two = list(GroupBlockedKFold(2).split(X, groups=groups))
    np.testing.assert_array_equal(two[0][1], np.arange(5))  # s1 + s2
    np.testing.assert_array_equal(two[1][1], np.arange(5, 10))  # s3 + s4


def test_group_blocked_kfold_gap_and_errors():
    groups = np.repeat([0, 1, 2], 4)
    folds = list(GroupBlockedKFold(gap=1).split(np.zeros(12), groups=groups))
    # testing group 1 (rows 4..7) drops rows 3 and 8 from training
    np.testing.assert_array_equal(folds[1][0], [0, 1, 2, 9, 10, 11])
    with pytest.raises(ValueError, match="groups' parameter should not be None"):
        list(GroupBlockedKFold().split(np.zeros(12)))
    with pytest.raises(ValueError, match="cannot make 5 folds from 3 distinct groups"):
        list(GroupBlockedKFold(5).split(np.zeros(12), groups=groups))
    with pytest.raises(ValueError, match="12 samples"):
        list(GroupBlockedKFold().split(np.zeros(12), groups=groups[:6]))


def test_group_blocked_kfold_with_cross_val_score_groups():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 2))
    y = X[:, 0] + 0.1 * rng.normal(size=30)
    sessions = np.repeat([10, 20, 30], 10)
    scores = cross_val_score(Ridge(alpha=0.1), X, y, cv=GroupBlockedKFold(), groups=sessions)
    assert scores.shape == (3,) and np.all(scores > 0.9)


def test_check_cv_and_cv_splits():
    assert isinstance(check_cv(None), BlockedKFold) and check_cv(None).n_splits == 5
    assert check_cv(3).n_splits == 3
    kf = KFold(4, shuffle=True, random_state=0)
    assert check_cv(kf) is kf
    fixed = [(np.arange(5, 10), np.arange(5)), (np.arange(5), np.arange(5, 10))]
    splits = cv_splits(fixed, 10)
    np.testing.assert_array_equal(splits[1][1], np.arange(5, 10))
    with pytest.raises(TypeError, match="expected None, an int"):
        check_cv("five")
