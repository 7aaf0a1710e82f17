"""Spearman rank correlation, checked by hand with ties."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nestviz.evaluation.scoring.sanity import average_ranks, spearman


def test_average_ranks_share_ties():
    np.testing.assert_array_equal(average_ranks([10, 20, 10, 30]), [1.5, 3, 1.5, 4])


def test_spearman_with_ties_by_hand():
    # ranks a = [1, 2.5, 2.5, 4], b = [1, 3, 2, 4]; minus the mean 2.5: [-1.5, 0, 0, 1.5], [-1.5, .5, -.5, 1.5]
    # sum(ab) = 4.5, sum(a^2) = 4.5, sum(b^2) = 5 -> 4.5 / sqrt(22.5) = 3 / sqrt(10)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(3 / math.sqrt(10))


def test_spearman_monotone_maps_and_shapes():
    x = np.linspace(-2, 2, 49).reshape(7, 7)
    assert spearman(x, x**3) == pytest.approx(1.0)     # any increasing transform
    assert spearman(x, -np.exp(x)) == pytest.approx(-1.0)
    assert spearman(torch.from_numpy(x), x.T) == pytest.approx(spearman(x.ravel(), x.T.ravel()))
    assert abs(spearman(np.arange(1000), np.random.default_rng(0).permutation(1000))) < 0.1


def test_spearman_constant_is_nan_and_bad_input_raises():
    assert math.isnan(spearman(np.ones(5), np.arange(5)))
    with pytest.raises(ValueError):
        spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError):
        spearman([1, np.nan], [1, 2])
