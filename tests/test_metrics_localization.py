"""Localization metrics on hand-made maps and boxes whose answers are worked out in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from nestviz.evaluation.scoring.localization import (
    box_iou, boxes_at_thresholds, centred_map, connected_boxes, covers_view, max_box_acc,
    normalize_map, pointing_hits,
)


def flood_fill_boxes(mask: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Reference: 8-connected regions by a plain flood fill, boxes with exclusive ends, sorted."""
    h, w = mask.shape
    seen = np.zeros_like(mask, bool)
    out = []
    for y in range(h):
        for x in range(w):
            if not mask[y, x] or seen[y, x]:
                continue
            stack, xs, ys = [(y, x)], [], []
            seen[y, x] = True
            while stack:
                cy, cx = stack.pop()
                xs.append(cx)
                ys.append(cy)
                for ny in range(max(cy - 1, 0), min(cy + 2, h)):
                    for nx in range(max(cx - 1, 0), min(cx + 2, w)):
                        if mask[ny, nx] and not seen[ny, nx]:
                            seen[ny, nx] = True
                            stack.append((ny, nx))
            out.append((min(xs), min(ys), max(xs) + 1, max(ys) + 1))
    return sorted(out)


def as_tuples(boxes: np.ndarray) -> list[tuple[int, ...]]:
    return sorted(tuple(int(v) for v in b) for b in boxes)


def test_box_iou_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 5, 15, 15],   # overlap 5x5 = 25; union 100 + 100 - 25 = 175 -> 1/7
                  [10, 0, 20, 10],  # touching edges share no area (exclusive ends) -> 0
                  [0, 0, 10, 10],   # identical -> 1
                  [0, 0, 5, 10],    # inside: 50 / 100 -> 0.5
                  [3, 3, 3, 3]])    # empty box -> 0
    np.testing.assert_allclose(box_iou(a, b), [[1 / 7, 0.0, 1.0, 0.5, 0.0]])
    assert box_iou(b, a).shape == (5, 1)


def test_normalize_map():
    np.testing.assert_allclose(normalize_map([[2, 4], [6, 10]]), [[0, 0.25], [0.5, 1]])  # (v - 2) / 8
    np.testing.assert_array_equal(normalize_map(np.full((3, 3), 7.0)), np.zeros((3, 3)))


def test_connected_boxes_hand_mask():
    mask = np.array([[1, 0, 0, 0, 1],
                     [0, 1, 0, 0, 1],
                     [0, 0, 0, 0, 0],
                     [1, 1, 0, 0, 0]], bool)
    # (0,0)-(1,1) touch diagonally: one region [0,0,2,2]; column 4 rows 0-1: [4,0,5,2]; row 3 cols 0-1: [0,3,2,4]
    assert as_tuples(connected_boxes(mask)) == [(0, 0, 2, 2), (0, 3, 2, 4), (4, 0, 5, 2)]
    u_shape = np.array([[1, 0, 1], [1, 0, 1], [1, 1, 1]], bool)  # two arms joined only in the last row
    assert as_tuples(connected_boxes(u_shape)) == [(0, 0, 3, 3)]
    assert connected_boxes(np.zeros((4, 4), bool)).shape == (0, 4)


def test_connected_boxes_match_flood_fill_on_random_masks():
    rng = np.random.default_rng(0)
    for _ in range(60):
        h, w = rng.integers(1, 16, size=2)
        mask = rng.random((h, w)) < rng.random()
        assert as_tuples(connected_boxes(mask)) == flood_fill_boxes(mask)


def test_boxes_at_thresholds_match_per_threshold_masks():
    rng = np.random.default_rng(1)
    thresholds = np.arange(0, 1, 0.1)
    for _ in range(20):
        m = rng.random(tuple(rng.integers(2, 12, size=2)))
        per_t = boxes_at_thresholds(m, thresholds)
        for t, boxes in zip(thresholds, per_t):
            assert as_tuples(boxes) == flood_fill_boxes(normalize_map(m) >= t)


TWO_BLOBS = np.array([[0, 0, 0, 0, 0, 0],
                      [0, 9, 0, 0, 5, 0],
                      [0, 9, 0, 0, 5, 5],
                      [0, 0, 0, 0, 0, 0]], float)  # normalised: 9 -> 1, 5 -> 5/9 = 0.56


def test_boxes_at_thresholds_all_regions_or_largest():
    t = (0.0, 0.5, 0.9)
    multi = boxes_at_thresholds(TWO_BLOBS, t)
    assert as_tuples(multi[0]) == [(0, 0, 6, 4)]  # t = 0: every pixel
    assert as_tuples(multi[1]) == [(1, 1, 2, 3), (4, 1, 6, 3)]  # the 9s (2 px) and the 5s (3 px)
    assert as_tuples(multi[2]) == [(1, 1, 2, 3)]  # only the 9s reach 0.9
    single = boxes_at_thresholds(TWO_BLOBS, t, multi_contour=False)
    assert as_tuples(single[1]) == [(4, 1, 6, 3)]  # largest region by pixels: the 5s
    # a constant map normalises to zeros: the whole map at t = 0, no region (no box) above
    flat = boxes_at_thresholds(np.ones((3, 4)), t)
    assert as_tuples(flat[0]) == [(0, 0, 4, 3)] and flat[1].shape == (0, 4) and flat[2].shape == (0, 4)


def test_thresholds_must_ascend():
    with pytest.raises(ValueError):
        boxes_at_thresholds(TWO_BLOBS, (0.5, 0.1))


# Image B: a 2x2 blob, GT = the blob [1,1,3,3] (area 4).
#   t=0: box [0,0,4,4], IoU 4/16 = 0.25; t=0.5 and t=0.9: box [1,1,3,3], IoU 1.
# Image C: a 3-px run of 1.0 and a 1-px 0.6, GT = the 0.6 pixel [5,1,6,2].
#   t=0: box [0,0,7,3], IoU 1/21; t=0.5: regions [1,1,4,2] (3 px) and [5,1,6,2] (1 px);
#   t=0.9: only [1,1,4,2] (IoU 0).
MAP_B = np.pad(np.ones((2, 2)), 1)
MAP_C = np.array([[0, 0, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0.6, 0], [0, 0, 0, 0, 0, 0, 0]])
GT_B, GT_C = np.array([[1, 1, 3, 3]]), np.array([[5, 1, 6, 2]])


def test_max_box_acc_v2_all_regions_by_hand():
    r = max_box_acc([MAP_B, MAP_C], [GT_B, GT_C], thresholds=(0, 0.5, 0.9), iou_levels=(0.2, 0.5))
    # IoU 0.2: t=0 B hit (0.25), C miss -> 1/2; t=0.5 both hit (C's small region) -> 1; t=0.9 B only -> 1/2
    # IoU 0.5: t=0 none -> 0; t=0.5 both -> 1; t=0.9 B -> 1/2
    np.testing.assert_allclose(r.accuracy_curve, [[0.5, 1, 0.5], [0, 1, 0.5]])
    assert r.per_iou == {0.2: 1.0, 0.5: 1.0} and r.best_threshold == {0.2: 0.5, 0.5: 0.5}
    assert r.value == 1.0


def test_max_box_acc_single_region_misses_the_small_object():
    r = max_box_acc([MAP_B, MAP_C], [GT_B, GT_C], thresholds=(0, 0.5, 0.9), iou_levels=(0.2, 0.5), multi_contour=False)
    # C's largest region is always the 3-px run (IoU <= 1/21), so only B counts:
    # IoU 0.2: [1/2, 1/2, 1/2] -> 0.5 first reached at t=0; IoU 0.5: [0, 1/2, 1/2] -> 0.5 at t=0.5
    np.testing.assert_allclose(r.accuracy_curve, [[0.5, 0.5, 0.5], [0, 0.5, 0.5]])
    assert r.per_iou == {0.2: 0.5, 0.5: 0.5} and r.best_threshold == {0.2: 0.0, 0.5: 0.5}
    assert r.value == 0.5
    v1 = max_box_acc([MAP_B, MAP_C], [GT_B, GT_C], iou_levels=(0.5,), multi_contour=False)  # MaxBoxAcc (V1)
    assert v1.value == 0.5 and v1.accuracy_curve.shape == (1, 100)


def test_max_box_acc_empty_threshold_is_a_miss_and_best_of_several_gt_boxes():
    # constant map: whole-image box at t=0 (IoU 1 with a whole-image GT), nothing at t=0.5
    r = max_box_acc([np.ones((4, 4))], [np.array([[0, 0, 4, 4]])], thresholds=(0, 0.5), iou_levels=(0.5,))
    np.testing.assert_allclose(r.accuracy_curve, [[1.0, 0.0]])
    # two GT boxes: the best match counts (region [1,1,3,3] vs a far box (IoU 0) and itself (IoU 1))
    r = max_box_acc([MAP_B], [np.array([[0, 0, 1, 1], [1, 1, 3, 3]])], thresholds=(0.5,), iou_levels=(0.7,))
    assert r.value == 1.0
    with pytest.raises(ValueError):
        max_box_acc([MAP_B], [np.zeros((0, 4))])


def test_covers_view():
    view = [0, 0, 100, 100]  # area 10000; 95% = 9500
    boxes = np.array([[0, 0, 100, 95],       # 9500 -> covers
                      [0, 0, 100, 94.9],     # 9490 -> does not
                      [-10, -10, 110, 110]])  # only the part inside the view counts: 10000 -> covers
    np.testing.assert_array_equal(covers_view(boxes, view), [True, False, True])


def test_pointing_hits_at_the_tolerance_edge():
    box = [np.array([[10, 10, 20, 20]])]
    hit = lambda x, y, tol=15.0: bool(pointing_hits(np.array([[x, y]]), box, tol)[0])  # noqa: E731
    assert hit(35, 15)          # 15 px right of the right edge
    assert not hit(35.01, 15)   # 15.01 px
    assert hit(29, 32)          # from the corner (20, 20): sqrt(9^2 + 12^2) = 15
    assert not hit(29, 32.01)
    assert hit(15, 15, 0.0) and hit(20, 15, 0.0)  # inside, on the border
    assert not hit(20.5, 15, 0.0)
    # several images; the nearest of several boxes counts
    pts = np.array([[0, 0], [100, 100]])
    gts = [np.array([[50, 50, 60, 60], [10, 0, 20, 5]]), np.array([[0, 0, 10, 10]])]
    np.testing.assert_array_equal(pointing_hits(pts, gts), [True, False])  # 10 px from box 2; ~127 px


def test_centred_map_thresholds_are_centred_boxes():
    h, w = 6, 10
    per_t = boxes_at_thresholds(centred_map(h, w), np.arange(0, 1, 0.01))
    seen = set()
    for boxes in per_t:
        assert len(boxes) == 1
        x0, y0, x1, y1 = boxes[0]
        assert x0 + x1 == w and y0 + y1 == h  # symmetric about the centre (5, 3)
        seen.add(tuple(boxes[0]))
    assert (0, 0, w, h) in seen and len(seen) >= 3  # from the whole image down to the centre
    # a centred GT box of the image's aspect is matched exactly by one threshold
    r = max_box_acc([centred_map(10, 10)], [np.array([[2, 2, 8, 8]])], iou_levels=(0.99,))
    assert r.value == 1.0
