"""CAM: exact maps, their localization (box, peak) on hand-made maps, and the one-forward ``cam``."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from nestviz.methods.cam import (box_region, cam, cam_cells, cam_maps, largest_region, localize, peak_of, place,
                                 upsample_bilinear)
from nestviz.model import Nest, NestConfig

torch.set_num_threads(1)

CFG = NestConfig(img_size=32, patch_size=2, num_levels=3, embed_dims=(8, 16, 16), num_heads=(2, 2, 4),
                 depths=(1, 1, 1), num_classes=5, mlp_ratio=2.0)


def random_model(seed: int = 0) -> Nest:
    torch.manual_seed(seed)
    model = Nest(CFG).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def test_cam_is_the_head_applied_per_position() -> None:
    model = random_model()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    classes = torch.tensor([[3, 0], [1, 4]])
    with torch.no_grad():
        top = model.forward_intermediates(x, intermediates_only=True)[-1]
        maps = cam_cells(model, model.forward_features(x), classes, "logit")
        shown = cam_maps(model, model.forward_features(x), classes, "logit")
        logits = model(x)
    # Independent: LayerNorm over channels by hand, then w_c . f + b_c at every position.
    t = top.double()
    mu, var = t.mean(1, keepdim=True), t.var(1, unbiased=False, keepdim=True)
    f = (t - mu) / torch.sqrt(var + model.norm.eps) * model.norm.weight.double()[:, None, None] \
        + model.norm.bias.double()[:, None, None]
    w, b = model.head.weight.double(), model.head.bias.double()
    assert maps.shape == (2, 2, 4, 4)
    for i in range(2):
        for r in range(2):
            c = int(classes[i, r])
            expected = (w[c][:, None, None] * f[i]).sum(0) + b[c]
            torch.testing.assert_close(maps[i, r].double(), expected, rtol=1e-5, atol=1e-5)
            assert maps[i, r].mean().item() == pytest.approx(logits[i, c].item(), abs=1e-5)


def test_cam_uses_one_forward_and_matches_the_model() -> None:
    model = random_model(1).train()
    x = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    out = cam(model, x, top_k=2, kind="logit")
    assert model.training  # restored
    with torch.no_grad():
        logits = model.eval()(x)
    torch.testing.assert_close(out.logits, logits)
    assert torch.equal(out.classes, logits.topk(2, dim=1).indices)
    with torch.no_grad():
        cells = cam_cells(model, model.forward_features(x), out.classes, "logit")
    torch.testing.assert_close(cells.mean((-2, -1)), logits.gather(1, out.classes), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.maps, place(cells, CFG.top_shift()))  # shown where the cells see
    fixed = cam(model, x, classes=[4, 2, 0])
    assert fixed.classes.tolist() == [[4, 2, 0]] * 3 and fixed.maps.shape == (3, 3, 4, 4)
    with pytest.raises(ValueError, match="^class index 5 is out of range for a model with 5 classes$"):
        cam(model, x, classes=[5])


def test_single_peak() -> None:
    raw = np.zeros((6, 6), np.float32)
    raw[1, 4] = 3.0  # one hot cell: x in [128, 160), y in [32, 64) at 192 px (32 px per cell)
    box, peak = localize(raw, 192, threshold=0.5)
    assert peak == (144.0, 48.0)  # the hot cell's centre: 160 - 16, 64 - 16
    assert box == (128.0, 32.0, 160.0, 64.0)  # the tent falls to half height at the cell edges


def test_a_border_cells_peak_is_its_centre_not_the_edge() -> None:
    # Bilinear upsampling with clamped edges is flat from a border cell's centre to the border: its first
    # maximum would be pixel (0, 0), half a cell from the cell's centre. The peak is the cell's centre.
    raw = np.zeros((8, 8), np.float32)
    raw[0, 0], raw[0, 1] = 2.0, 1.0
    box, peak = localize(raw, 256, threshold=0.5)
    up = upsample_bilinear(raw, 256)
    assert up[0, 0] == up.max() and peak == (16.0, 16.0) == peak_of(raw, 256)
    assert box[:2] == (0.0, 0.0) and box[0] <= peak[0] < box[2]
    ties = np.ones((4, 4), np.float32)
    ties[2, 1] = ties[3, 3] = 5.0
    assert peak_of(ties, 64) == (24.0, 40.0)  # the first largest cell in raster order


def test_placing_moves_each_value_to_where_its_cell_sees() -> None:
    # Worked by hand along one axis of 4 cells, the values sitting 0.375 cells before their centres:
    # result cell j reads position j + 0.375, between cells j and j + 1 (the last one clamped).
    row = torch.tensor([[0.0, 8.0, 0.0, 0.0]])
    grid = row.T @ torch.ones(1, 4)  # constant along x: only y moves
    placed = place(grid[None], -0.375)[0][:, 0]
    torch.testing.assert_close(placed, torch.tensor([3.0, 5.0, 0.0, 0.0]))
    torch.testing.assert_close(place(torch.full((1, 4, 4), 2.5), -0.375), torch.full((1, 4, 4), 2.5))  # constant
    kept = place(grid[None], -0.375, keep_sum=True)[0][:, 1]  # (an inner column) the value's place, 1 - 0.375 = 0.625: 3/8 and 5/8
    torch.testing.assert_close(kept, torch.tensor([3.0, 5.0, 0.0, 0.0]))
    edge = place(torch.tensor([[[4.0], [0.0]]]).expand(1, 2, 2), -0.375, keep_sum=True)
    assert float(edge.sum()) == pytest.approx(8.0)  # the first cell's value stays in the first cell: sums kept
    torch.testing.assert_close(place(grid[None], 0.375, keep_sum=True)[0][:, 1], torch.tensor([0.0, 5.0, 3.0, 0.0]))


def test_the_top_shift_is_where_the_models_own_pools_centre_their_windows() -> None:
    # Measure it on the layers: a one-hot at input position q reaches the pooled positions whose windows hold
    # it; each output position's window centre, minus the centre of the pair it stands for, is the shift of one
    # pool in input positions, and the levels' shifts add up in top cells as NestConfig.top_shift says.
    from nestviz.model.layers import ConvPool
    for pad, levels in (("", 3), ("same", 3), ("", 4), ("", 1)):
        pool = ConvPool(2, 2, pad)
        shift_in_inputs = []
        for p in range(4):
            held = [q for q in range(8) if _pooled_one_hot(pool, q)[p] > 0]
            shift_in_inputs.append(np.mean(held) - (2 * p + 0.5))
        one = float(np.median(shift_in_inputs))  # the border positions' windows are cut
        expected = sum(one * 0.5 ** (levels - 1 - l) for l in range(levels - 1))  # level l's input: 2^-(L-1-l) top cells
        cfg = NestConfig(img_size=16 * 2 ** (levels - 1), patch_size=4, num_levels=levels,
                         embed_dims=(8,) * levels, num_heads=(2,) * levels, depths=(1,) * levels, pad_type=pad)
        assert cfg.top_shift() == pytest.approx(expected)
    assert NestConfig().top_shift() == -0.375


def _pooled_one_hot(pool, q: int) -> np.ndarray:
    """Which of 4 pooled positions (along x) a one at input position q of 8 reaches, through the aggregation
    itself (``ConvPool``: its conv an identity; a second, zero channel gives its LayerNorm something to centre)."""
    with torch.no_grad():
        pool.conv.weight.zero_()
        pool.conv.weight[0, 0, 1, 1] = pool.conv.weight[1, 1, 1, 1] = 1.0
        pool.conv.bias.zero_()
        x = torch.zeros(1, 2, 8, 8)
        x[0, 0, :, q] = 1.0
        return pool(x)[0, 0, 0].numpy()


def test_threshold_changes_the_box() -> None:
    raw = torch.zeros(6, 6)
    raw[1, 4] = 1.0
    boxes = [localize(raw, 192, threshold=t)[0] for t in (0.0, 0.25, 0.5, 0.9)]
    assert boxes[0] == (0.0, 0.0, 192.0, 192.0)
    for wide, narrow in zip(boxes, boxes[1:]):  # strictly nested as the threshold rises
        assert wide != narrow
        assert wide[0] <= narrow[0] and wide[1] <= narrow[1] and wide[2] >= narrow[2] and wide[3] >= narrow[3]
    with pytest.raises(ValueError, match="^threshold must be between 0 and 1, got 1.5$"):
        localize(raw, 192, threshold=1.5)


def test_the_box_is_the_region_holding_the_peak() -> None:
    """Issue 22: the box was the largest region, the peak the global maximum, often outside it."""
    raw = np.zeros((8, 8), np.float32)
    raw[0:3, 0:3] = 1.0  # large blob, top-left
    raw[6, 6] = 2.0  # small, higher blob
    box, peak = localize(raw, 64, threshold=0.25)  # 8 px per cell
    assert 48 <= peak[0] < 56 and 48 <= peak[1] < 56  # the maximum is in the small blob
    x0, y0, x1, y1 = box
    assert x0 <= peak[0] < x1 and y0 <= peak[1] < y1  # one story: the box holds the peak
    assert 40 <= x0 and 40 <= y0 and x1 <= 64 and y1 <= 64  # the small blob's region, not the big one's
    up = upsample_bilinear(raw, 64)
    mask = (up - up.min()) / (up.max() - up.min()) >= 0.25
    assert box_region(mask, (int(peak[1]), int(peak[0]))) == (int(y0), int(x0), int(y1), int(x1))
    y0, x0, y1, x1 = box_region(mask, (int(peak[1]), int(peak[0])), rule="largest")  # the rule before
    assert (x0, y0) == (0, 0) and 23 <= x1 <= 25 and 23 <= y1 <= 25  # the big blob: 3 cells of 8 px
    with pytest.raises(ValueError, match=r"^pixel \(0, 40\) is not in the mask$"):
        largest_region(mask, containing=(0, 40))


def test_constant_map() -> None:
    assert localize(torch.full((4, 4), 7.0), 100) == ((0.0, 0.0, 100.0, 100.0), (50.0, 50.0))


def flood_fill_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Reference: BFS over 8 neighbours, largest component first met in raster order."""
    h, w = mask.shape
    seen = np.zeros_like(mask)
    best = (0, None)
    for y, x in zip(*np.nonzero(mask)):
        if seen[y, x]:
            continue
        seen[y, x] = True
        queue, pts = deque([(y, x)]), []
        while queue:
            cy, cx = queue.popleft()
            pts.append((cy, cx))
            for ny in range(max(cy - 1, 0), min(cy + 2, h)):
                for nx in range(max(cx - 1, 0), min(cx + 2, w)):
                    if mask[ny, nx] and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        if len(pts) > best[0]:
            p = np.array(pts)
            best = (len(pts), (p[:, 0].min(), p[:, 1].min(), p[:, 0].max() + 1, p[:, 1].max() + 1))
    return tuple(int(v) for v in best[1])


def test_largest_region_matches_a_flood_fill() -> None:
    rng = np.random.default_rng(0)
    for _ in range(100):
        mask = rng.random((int(rng.integers(1, 25)), int(rng.integers(1, 25)))) < rng.random()
        if mask.any():
            assert largest_region(mask) == flood_fill_box(mask)


def test_largest_region_connects_diagonals_only_8_way() -> None:
    mask = np.eye(5, dtype=bool)  # one diagonal line: a single 8-connected region
    mask[0, 4] = True
    assert largest_region(mask) == (0, 0, 5, 5)
    with pytest.raises(ValueError, match="^the mask is empty$"):
        largest_region(np.zeros((3, 3), bool))


@pytest.mark.parametrize("shape,size", [((6, 6), 192), ((4, 4), 32), ((7, 7), 224), ((1, 1), 8), ((3, 5), 17)])
def test_the_numpy_upsampling_is_torchs_bilinear(shape: tuple[int, int], size: int) -> None:
    m = torch.randn(*shape, generator=torch.Generator().manual_seed(size))
    want = torch.nn.functional.interpolate(m[None, None], size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    assert np.abs(upsample_bilinear(m.numpy(), size) - want.numpy()).max() < 1e-5
