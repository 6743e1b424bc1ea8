import numpy as np
import pytest

from neurorl.fitting.cv import block_folds


def test_block_folds_contiguous_and_exhaustive():
    valid = np.zeros((2, 12), bool)
    valid[0, :10] = True        # 10 trials -> blocks 4, 3, 3
    valid[1, :] = True          # 12 trials -> blocks 4, 4, 4
    folds = block_folds(valid, 3)
    assert folds.shape == (3, 2, 12)
    # each valid trial held out exactly once, padding never
    np.testing.assert_array_equal(folds.sum(0), valid.astype(int))
    assert folds[:, 0].sum(1).tolist() == [4, 3, 3]
    assert np.flatnonzero(folds[1, 0]).tolist() == [4, 5, 6]
    assert np.flatnonzero(folds[2, 1]).tolist() == [8, 9, 10, 11]


def test_block_folds_errors_name_subject():
    valid = np.ones((2, 5), bool)
    valid[1, 2:] = False
    with pytest.raises(ValueError, match="subject 1 has 2 valid trials"):
        block_folds(valid, 3)
    with pytest.raises(ValueError, match="k >= 2"):
        block_folds(valid, 1)
