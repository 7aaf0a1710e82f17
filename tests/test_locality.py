"""The locality loss: rectangles, masks and occlusion by hand; zero for a local model whose hidden pixels
carry nothing, the hand-worked value for one that mixes a global mean into every cell; it trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nestviz.model.checkpoints import load_weights
from nestviz.train.locality import box_masks, contrast_cam, locality_loss, occlude, occlusion_boxes
from nestviz.train.loop import train
from .model_helpers import CFG, make_shapes, opts



class PooledCells(nn.Module):
    """A "NesT" whose top map is each 4-px cell's mean colour, plus (``mixing``) the whole image's mean."""

    def __init__(self, mixing: bool) -> None:
        super().__init__()
        self.mixing = mixing
        self.head = nn.Linear(3, 4)
        with torch.no_grad():
            self.head.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 2, 0], [0, 0, -1], [1, 1, 1]]))

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        cells = F.avg_pool2d(x, 4)
        return cells + x.mean(dim=(2, 3), keepdim=True) if self.mixing else cells

    def get_classifier(self) -> nn.Module:
        return self.head


def test_rectangles_stay_inside_the_image_with_sides_in_range() -> None:
    boxes = occlusion_boxes(500, 24, torch.Generator().manual_seed(0), 2, 12)
    sides = boxes[:, 2:] - boxes[:, :2]
    assert sides.min() == 2 and sides.max() == 12
    assert boxes[:, :2].min() == 0 and boxes[:, 2:].max() == 24


def test_masks_and_occlusion_by_hand() -> None:
    masks = box_masks(torch.tensor([[1, 0, 3, 1]]), 3)
    assert masks[0].int().tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 0]]
    x = torch.ones(1, 3, 3, 3)
    out = occlude(x, masks)
    assert out[0, :, 1:, 0].abs().sum() == 0 and out.sum() == 3 * 7
    assert x.min() == 1  # a copy


def test_a_local_map_costs_nothing_and_a_mixing_one_its_hand_worked_change() -> None:
    x = F.interpolate(torch.rand(5, 3, 3, 3), scale_factor=4.0, mode="nearest")  # one colour per 4-px cell
    local = PooledCells(mixing=False)
    assert float(locality_loss(local, local.forward_features(x), x, torch.Generator().manual_seed(1))) == pytest.approx(0.0, abs=1e-12)
    mixing = PooledCells(mixing=True)
    got = float(locality_loss(mixing, mixing.forward_features(x), x, torch.Generator().manual_seed(1)))
    masks = box_masks(occlusion_boxes(5, 12, torch.Generator().manual_seed(1), 1, 6), 12)
    wc = mixing.head.weight.detach() - mixing.head.weight.detach().mean(0)
    total = 0.0
    for i in range(5):  # each cell's colour scales with its visible share; the global mean does not
        visible = 1 - F.avg_pool2d(masks[i][None, None].float(), 4)[0, 0]  # (3, 3)
        mean, occluded_mean = x[i].mean(dim=(1, 2)), occlude(x[i:i + 1], masks[i:i + 1])[0].mean(dim=(1, 2))
        for v in visible.flatten().tolist():
            total += float(((wc @ (occluded_mean - mean * v)) ** 2).sum())
    assert got == pytest.approx(total / (5 * 9 * 4), rel=1e-5)
    assert contrast_cam(mixing, mixing.forward_features(x)).sum(dim=-1).abs().max() < 1e-5  # classes' mean removed


def test_training_with_the_locality_loss_runs_and_records_it(tmp_path: Path) -> None:
    data = make_shapes(tmp_path / "shapes", per_class=4)
    out = tmp_path / "l.safetensors"
    result = train(data, out, CFG, opts(epochs=1, locality_loss=2.0, drop_path=0.0, batch_size=12))
    assert np.isfinite(result.history[-1].loss)
    record = load_weights(out).provenance
    assert record["options"]["locality_loss"] == 2.0 and record["options"]["drop_path"] == 0.0
