"""Deletion/insertion pieces and path agreement, checked against answers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nestviz.evaluation.scoring.faithfulness import (
    auc, deletion_batch, gaussian_blur, insertion_batch, order_from_map, path_agreement, perturbation_steps,
)


def test_auc_known_curves():
    assert auc([0, 1]) == 0.5                      # a straight line from 0 to 1
    assert auc([1, 1, 1]) == 1.0
    assert auc([0, 0.5, 1, 0.5]) == pytest.approx((2.0 - 0 - 0.25) / 3)  # (sum - v0/2 - vn/2) / (n - 1)
    assert auc(torch.tensor([1.0, 0.0])) == 0.5
    with pytest.raises(ValueError):
        auc([1.0])


def test_perturbation_steps():
    assert perturbation_steps(10, 4) == [0, 2, 5, 7, 10]  # floor(i * 10 / 4)
    assert perturbation_steps(224 * 224, 100)[-1] == 224 * 224 and len(perturbation_steps(5, 100)) == 101


def test_order_from_map_stable_and_random_ties():
    m = np.array([[3, 1], [3, 2]])  # flat [3, 1, 3, 2]
    np.testing.assert_array_equal(order_from_map(m), [0, 2, 3, 1])  # tie 0/2 kept in index order
    firsts = set()
    for seed in range(20):
        o = order_from_map(m, np.random.default_rng(seed))
        assert sorted(o[:2]) == [0, 2] and list(o[2:]) == [3, 1]
        firsts.add(int(o[0]))
    assert firsts == {0, 2}  # the tie is broken both ways across seeds


def test_deletion_and_insertion_batches_by_hand():
    image = np.arange(1, 9, dtype=np.float32).reshape(2, 2, 2)  # channel 0: [[1,2],[3,4]], channel 1: [[5,6],[7,8]]
    order = [3, 0, 1, 2]  # bottom-right first, then top-left, top-right, bottom-left
    d = deletion_batch(image, 0.0, order, [0, 1, 2, 4])
    assert d.shape == (4, 2, 2, 2)
    np.testing.assert_array_equal(d[0], image)
    np.testing.assert_array_equal(d[1], [[[1, 2], [3, 0]], [[5, 6], [7, 0]]])
    np.testing.assert_array_equal(d[2], [[[0, 2], [3, 0]], [[0, 6], [7, 0]]])
    np.testing.assert_array_equal(d[3], np.zeros((2, 2, 2)))
    blurred = np.full((2, 2, 2), -1.0, np.float32)
    i = insertion_batch(torch.from_numpy(image), torch.from_numpy(blurred), torch.tensor(order), [0, 1, 4])
    np.testing.assert_array_equal(i[0], blurred)
    np.testing.assert_array_equal(i[1], [[[-1, -1], [-1, 4]], [[-1, -1], [-1, 8]]])
    np.testing.assert_array_equal(i[2], image)
    mean = image.mean(axis=(1, 2), keepdims=True)  # a per-channel (C,1,1) substrate: 2.5 and 6.5
    np.testing.assert_array_equal(deletion_batch(image, mean, order, [1])[0, :, 1, 1], [2.5, 6.5])


def linear_curves(order: list[int], w: np.ndarray) -> tuple[list[float], list[float]]:
    """Deletion and insertion curves of the linear 'classifier' f(x) = sum(w * x) on an all-ones image."""
    image, substrate = np.ones((1, 2, 2)), np.zeros((1, 2, 2))
    counts = perturbation_steps(4, 4)
    f = lambda batch: [float((w * b[0]).sum()) for b in batch]  # noqa: E731
    return f(deletion_batch(image, substrate, order, counts)), f(insertion_batch(image, substrate, order, counts))


def test_deletion_insertion_auc_of_a_linear_classifier():
    w = np.array([[0.4, 0.3], [0.2, 0.1]])  # pixel weights; f(image) = 1
    best = list(order_from_map(w))  # [0, 1, 2, 3]
    deletion, insertion = linear_curves(best, w)
    # deletion removes 0.4, 0.3, 0.2, 0.1: [1, .6, .3, .1, 0] -> (2.0 - 0.5 - 0) / 4 = 0.375
    np.testing.assert_allclose(deletion, [1, 0.6, 0.3, 0.1, 0], atol=1e-12)
    assert auc(deletion) == pytest.approx(0.375)
    # insertion adds them back: [0, .4, .7, .9, 1] -> (3.0 - 0 - 0.5) / 4 = 0.625
    assert auc(insertion) == pytest.approx(0.625)
    # the worst order swaps the two: deletion 0.625, insertion 0.375
    deletion_w, insertion_w = linear_curves(best[::-1], w)
    assert auc(deletion_w) == pytest.approx(0.625) and auc(insertion_w) == pytest.approx(0.375)


def test_gaussian_blur_by_hand():
    # one row [0, 1, 2], radius 1, sigma 1: taps a, b, a with b = 1/(1+2e^-.5), a = e^-.5 * b;
    # reflect padding gives [1, 0, 1, 2, 1]: out = [2a, b + 2a, 2a + 2b]; the 1-px height is unchanged
    b = 1 / (1 + 2 * math.exp(-0.5))
    a = math.exp(-0.5) * b
    out = gaussian_blur(np.array([[[0.0, 1.0, 2.0]]]), sigma=1.0, radius=1)
    np.testing.assert_allclose(out, [[[2 * a, b + 2 * a, 2 * a + 2 * b]]])
    # an impulse away from the borders spreads as the outer product of the 1-D taps, summing to 1
    impulse = np.zeros((1, 21, 21), np.float32)
    impulse[0, 10, 10] = 1
    x = np.arange(-3, 4)
    k = np.exp(-(x**2) / 8) / np.exp(-(x**2) / 8).sum()  # sigma 2
    blurred = gaussian_blur(impulse, sigma=2.0, radius=3)
    assert blurred.dtype == np.float32
    np.testing.assert_allclose(blurred[0, 7:14, 7:14], np.outer(k, k), rtol=1e-5)
    assert blurred.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(gaussian_blur(np.full((3, 8, 9), 0.5)), 0.5)  # constant stays constant


def test_path_agreement_counts_and_ties():
    chosen = [0, 1, 2, 3]
    drops = [[0.5, 0.1, 0.1, 0.1],   # chosen is the single largest drop: 1
             [0.5, 0.4, 0.0, 0.0],   # another child drops more: 0
             [0.0, 0.0, 0.3, 0.3],   # chosen ties with one other: 1/2
             [0.2, 0.2, 0.2, 0.2]]   # four-way tie: 1/4
    assert path_agreement(chosen, drops) == pytest.approx((1 + 0 + 0.5 + 0.25) / 4)
    assert path_agreement(torch.tensor([1]), torch.tensor([[0.0, 0.9, 0.1, 0.2]])) == 1.0
    assert math.isnan(path_agreement([], np.zeros((0, 4))))
    with pytest.raises(ValueError):
        path_agreement([4], [[0, 0, 0, 1]])
