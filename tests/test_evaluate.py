"""nestviz evaluate on datasets whose folders do not all match the model: named, the rest evaluated;
--labels maps folder names to class labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nestviz.cli.app import app
from .helpers import write_image



def dataset(root: Path, folders: dict[str, int]) -> Path:
    for f, n in folders.items():
        for i in range(n):
            write_image(root / f / f"{i}.png", (36, 36), seed=7 * len(f) + i)
    return root


def evaluate(*args: object):  # noqa: ANN201
    return CliRunner().invoke(app, ["evaluate", *map(str, args)])


def test_a_folder_that_matches_no_class_is_named_and_the_rest_evaluated(tiny_weights: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "data", {"red thing": 2, "Green Thing": 3, "purple thing": 2})
    result = evaluate(data, "--weights", tiny_weights, "--json")
    assert result.exit_code == 3
    report = json.loads(result.stdout)
    assert report["images"] == 5 and report["unmatched_folders"] == {"purple thing": 2}
    assert {k: v["images"] for k, v in report["per_class"].items()} == {"red thing": 2, "green thing": 3}
    assert result.stderr.splitlines() == [
        f"nestviz: error: {data / 'purple thing'}: matches no model class, not evaluated (2 images)"]


@pytest.mark.parametrize("table", [
    "r\tred thing\ng\tgreen thing\nb\tblue thing\n",                                 # folder<TAB>label
    "index\twnid\tname\n0\tr\tred thing, a lemma\n1\tg\tgreen thing\n2\tb\tblue thing, bleu\n",  # ImageNet's table
])
def test_labels_map_folders_to_classes(tiny_weights: Path, tmp_path: Path, table: str) -> None:
    data = dataset(tmp_path / "data", {"r": 1, "g": 2, "b": 3})
    (tmp_path / "labels.tsv").write_text(table)
    result = evaluate(data, "--weights", tiny_weights, "--labels", tmp_path / "labels.tsv", "--json")
    assert result.exit_code == 0, result.output
    per_class = json.loads(result.stdout)["per_class"]
    assert {k: v["images"] for k, v in per_class.items()} == {"red thing": 1, "green thing": 2, "blue thing": 3}


def test_no_matching_folder_at_all_is_a_usage_error_naming_them(tiny_weights: Path, tmp_path: Path) -> None:
    data = dataset(tmp_path / "data", {"cats": 1, "dogs": 1})
    result = evaluate(data, "--weights", tiny_weights)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"nestviz: error: none of the dataset's 2 class folders (cats, dogs) matches one of the model's 3 classes; "
        "name the folders after the class labels (nestviz info lists them) or pass --labels FILE")
    assert evaluate(data, "--weights", tiny_weights, "--labels", tmp_path / "nope.tsv").exit_code == 2

