"""The default model on real Imagenette validation images (skipped without ../shared)."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from nestviz.api import Nestviz
from nestviz.evaluation.evaluate import evaluate_folder
from .helpers import SHARED


TAR = SHARED / "data" / "imagenette.tar"
pytestmark = pytest.mark.skipif(not TAR.exists(), reason="needs ../shared/data/imagenette.tar")


@pytest.fixture(scope="module")
def val_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 30 validation images of each class, extracted to a temp dir (never into the repo)."""
    root = tmp_path_factory.mktemp("imagenette")
    taken: dict[str, int] = {}
    with tarfile.open(TAR) as t:
        for m in t:
            parts = Path(m.name).parts
            if m.isfile() and len(parts) == 4 and parts[1] == "val" and taken.get(parts[2], 0) < 30:
                taken[parts[2]] = taken.get(parts[2], 0) + 1
                t.extract(m, root, filter="data")
    return root / "imagenette" / "val"


def test_default_model_accuracy_on_a_validation_sample(val_sample: Path) -> None:
    report = evaluate_folder(Nestviz.load(None, device="cpu"), val_sample, batch_size=32)
    assert report.images == 300
    assert report.top1 >= 0.78  # 85.4% on the full split; a 300-image sample varies by a few points
    assert report.top5 >= 0.95


def test_default_model_points_at_the_right_quadrant_of_mosaics(val_sample: Path) -> None:
    from nestviz.train.data import scan_class_folders
    from nestviz.evaluation.pointing import pointing_game

    ds = scan_class_folders(val_sample)
    by_class: dict[int, list[str]] = {}
    for p, c in zip(ds.paths, ds.labels):  # the default model's classes are the sorted Imagenette folders
        by_class.setdefault(c, []).append(str(p))
    result = pointing_game(Nestviz.load(None, device="cpu"), by_class, mosaics=25, seed=1)
    assert result.trials == 100
    # about 92% / 89% on 1,000 trials of the full split; 100 trials vary by a few points
    assert result.rate("gradcat+") >= 0.8 and result.rate("cam") >= 0.75
    assert result.rate("gradcat-") <= 0.1  # the paper's sign, as we read it, points away
