"""The locality loss: rectangles of cells, masks and occlusion by hand; zero for a local model whose hidden
cells carry nothing, the hand-worked value for one that mixes a global mean into every cell; it trains."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nestviz.model.checkpoints import load_weights
from nestviz.train.locality import cell_masks, contrast_cam, locality_loss, occlude, occlusion_cells
from nestviz.train.loop import train

from .test_train import CFG, opts


class PooledCells(nn.Module):
    """A "NesT" whose top map is each 4-px cell's mean colour (a hidden cell: 0), plus (``mixing``) the image's mean."""

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


def test_rectangles_stay_inside_the_map_with_sides_up_to_the_limit() -> None:
    cells = occlusion_cells(500, 6, torch.Generator().manual_seed(0), max_side=3)
    sides = cells[:, 2:] - cells[:, :2]
    assert sides.min() == 1 and sides.max() == 3
    assert cells[:, :2].min() == 0 and cells[:, 2:].max() == 6
    assert set(cells[:, 0].tolist()) == set(range(6))  # every row can start one


def test_masks_and_occlusion_by_hand() -> None:
    masks = cell_masks(torch.tensor([[1, 0, 3, 1]]), 3)
    assert masks[0].int().tolist() == [[0, 0, 0], [1, 0, 0], [1, 0, 0]]
    x = torch.ones(1, 3, 12, 12)
    out = occlude(x, masks)
    assert out[0, :, 4:12, 0:4].abs().sum() == 0 and out[0, :, :4].min() == 1 and out[0, :, :, 4:].min() == 1
    assert x.min() == 1  # a copy


def test_a_local_map_costs_nothing_and_a_mixing_one_its_hand_worked_change() -> None:
    x = torch.rand(5, 3, 12, 12)
    local = PooledCells(mixing=False)
    assert float(locality_loss(local, local.forward_features(x), x, torch.Generator().manual_seed(1))) == 0.0
    mixing = PooledCells(mixing=True)
    got = float(locality_loss(mixing, mixing.forward_features(x), x, torch.Generator().manual_seed(1)))
    masks = cell_masks(occlusion_cells(5, 3, torch.Generator().manual_seed(1), 3), 3)
    wc = mixing.head.weight.detach() - mixing.head.weight.detach().mean(0)
    total = 0.0
    for i in range(5):  # outside, only the global mean moves; inside, the map is the occluded image's mean alone
        hidden = F.interpolate(masks[i][None, None].float(), size=(12, 12))[0, 0]
        delta = -(x[i] * hidden).sum(dim=(1, 2)) / 144
        occluded_mean = x[i].mean(dim=(1, 2)) + delta
        n_in = int(masks[i].sum())
        total += float(((wc @ delta) ** 2).sum()) * (9 - n_in) + float(((wc @ occluded_mean) ** 2).sum()) * n_in
    assert got == pytest.approx(total / (5 * 9 * 4), rel=1e-5)
    assert contrast_cam(mixing, mixing.forward_features(x)).sum(dim=-1).abs().max() < 1e-5  # classes' mean removed


def test_training_with_the_locality_loss_runs_and_records_it(tmp_path: Path) -> None:
    from .test_train import make_shapes

    data = make_shapes(tmp_path / "shapes", per_class=4)
    out = tmp_path / "l.safetensors"
    result = train(data, out, CFG, opts(epochs=1, locality_loss=2.0, drop_path=0.0, batch_size=12))
    assert np.isfinite(result.history[-1].loss)
    record = load_weights(out).provenance
    assert record["options"]["locality_loss"] == 2.0 and record["options"]["drop_path"] == 0.0
