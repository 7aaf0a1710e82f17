"""The same work on an accelerator as on the CPU (``pytest --device cuda``; skipped without it): every tensor made
inside explain/, the metrics and training must be on the model's device (issue 21 item 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import nestviz
from nestviz.evaluation.trust import MetricsOptions
from .helpers import write_image
from .model_helpers import CFG, make_shapes, opts



@pytest.fixture
def pictures(tmp_path: Path) -> list[Path]:
    return [write_image(tmp_path / "red thing" / f"i{n}.png", (48 + 8 * n, 40), seed=n) for n in range(3)]


@pytest.mark.parametrize("gradcat_score", ["cam", "gradient", "ablation"])
@pytest.mark.parametrize("cam_kind", ["flow", "contrast", "logit"])
def test_annotate_matches_the_cpu(tiny_weights: Path, pictures: list[Path], device: str, gradcat_score: str,
                                  cam_kind: str) -> None:
    runs = [nestviz.load(tiny_weights, device=d, gradcat_score=gradcat_score, cam_kind=cam_kind).annotate(
        pictures, top_k=2) for d in ("cpu", device)]
    for cpu, acc in zip(*runs):
        for p, q in zip(cpu.predictions, acc.predictions):
            assert (p.class_index, p.rank) == (q.class_index, q.rank)
            assert q.probability == pytest.approx(p.probability, abs=1e-3)
            assert [n.node for n in p.path] == [n.node for n in q.path]
            np.testing.assert_allclose(q.cam.raw, p.cam.raw, atol=1e-3, rtol=1e-3)


def test_metrics_match_the_cpu(tiny_weights: Path, pictures: list[Path], device: str) -> None:
    reports = [nestviz.metrics(pictures[0].parent, weights=tiny_weights, device=d,
                               options=MetricsOptions(steps=2)) for d in ("cpu", device)]
    assert reports[1].images == reports[0].images == 3
    assert reports[1].metrics["cam"]["deletion_auc"] == pytest.approx(reports[0].metrics["cam"]["deletion_auc"],
                                                                       abs=1e-3)


def test_training_runs_on_the_device(tmp_path: Path, device: str) -> None:
    import torch

    from nestviz.train.loop import train

    data = make_shapes(tmp_path / "shapes", per_class=4)
    result = train(data, tmp_path / "w.safetensors", CFG, opts(epochs=1, mix_prob=0.5, mosaic_prob=0.5, region_loss=0.5,
                                                                  locality_loss=0.5), val_dir=data,
                   cache_dir=tmp_path / "cache", device=torch.device(device))
    assert len(result.history) == 1 and np.isfinite(result.history[0].loss)
