"""Input discovery, shards and output names: exact lists on a messy hand-built tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from nestviz.batch import discover as discover_module
from nestviz.batch.discover import InputItem, discover, has_multiple_roots, output_stem, parse_shard, shard, shard_of


def image(path: Path, fmt: str = "PNG") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), (200, 30, 30)).save(path, format=fmt)
    return path


def build_tree(tmp: Path) -> Path:
    """A tree with every case discovery must handle; created out of sorted order on purpose."""
    root = tmp / "data"
    image(root / "b" / "cat.jpg", "JPEG")
    image(root / "b" / "photo", "JPEG")  # no extension: found by its bytes
    (root / "b" / "notes.jpg").write_text("text named like an image: an input, the runner reports it")
    (root / "b" / "readme.txt").write_text("not an image")
    image(root / "a" / "deep" / "er" / "dog.png")
    image(root / "a" / "cat.png")
    image(root / "a" / "cat.jpg", "JPEG")
    image(root / "UPPER.JPG", "JPEG")
    image(root / ".hidden.jpg", "JPEG")
    image(root / ".hid" / "x.png")
    image(tmp / "elsewhere" / "e.png")
    os.symlink(tmp / "elsewhere", root / "link")  # a symlinked folder is followed
    os.symlink(root, root / "b" / "loop")  # a loop back to the root is not
    os.symlink(tmp / "missing", root / "b" / "dangling")
    image(root / "out" / "x.gradcat.png")  # the output folder inside the input
    return root


EXPECTED = ["UPPER.JPG", "a/cat.jpg", "a/cat.png", "a/deep/er/dog.png", "b/cat.jpg", "b/notes.jpg", "b/photo",
            "link/e.png"]


def test_discover_finds_exactly_the_inputs_in_sorted_order(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    items, problems = discover([root], exclude=[root / "out"])
    assert problems == []
    assert [i.rel.as_posix() for i in items] == EXPECTED
    assert all(i.root == root and i.path == root / i.rel for i in items)
    assert discover([str(root)], exclude=[root / "out"])[0] == items  # stable, str or Path


def test_output_folder_is_entered_only_when_not_excluded(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    items, _ = discover([root])
    assert [i.rel.as_posix() for i in items] == sorted(EXPECTED + ["out/x.gradcat.png"])


def test_given_files_are_always_inputs_and_missing_ones_are_problems(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    missing = tmp_path / "nope.jpg"
    items, problems = discover([root / "b" / "readme.txt", missing, root / ".hidden.jpg"])
    assert [(i.path, i.rel, i.root) for i in items] == [
        (root / "b" / "readme.txt", Path("readme.txt"), root / "b"),
        (root / ".hidden.jpg", Path(".hidden.jpg"), root),
    ]
    assert problems == [f"{missing}: no such file or folder"]


def test_each_file_is_listed_once_across_overlapping_inputs(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    items, _ = discover([root / "a", root / "a" / "cat.jpg", root, root / "link" / "e.png"], exclude=[root / "out"])
    real = [os.path.realpath(i.path) for i in items]
    assert len(real) == len(set(real)) == len(EXPECTED)
    assert [i.path.relative_to(root).as_posix() for i in items] == ["a/cat.jpg", "a/cat.png", "a/deep/er/dog.png",
                                                                   "UPPER.JPG", "b/cat.jpg", "b/notes.jpg",
                                                                   "b/photo", "link/e.png"]


def test_unreadable_folder_is_a_problem_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = build_tree(tmp_path)
    real_scandir = os.scandir

    def scandir(path):  # noqa: ANN001, ANN202 - the test runs as root, so chmod cannot deny access
        if Path(path) == root / "b":
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(discover_module.os, "scandir", scandir)
    items, problems = discover([root], exclude=[root / "out"])
    assert [i.rel.as_posix() for i in items] == [r for r in EXPECTED if not r.startswith("b/")]
    assert problems == [f"{root / 'b'}: cannot read folder (Permission denied)"]


def test_output_stems_mirror_the_tree_and_keep_suffixes_only_on_clashes(tmp_path: Path) -> None:
    root = build_tree(tmp_path)
    image(root / "a" / "cat.jpg.png")  # meets "cat.jpg" once that keeps its suffix
    image(root / "a" / "Dog.png")
    image(root / "a" / "dog.JPG", "JPEG")  # same stem up to case: clashes on case-insensitive disks
    items, _ = discover([root], exclude=[root / "out"])
    out = tmp_path / "out"
    stems = {i.rel.as_posix(): output_stem(i, out, multi_root=False).relative_to(out).as_posix() for i in items}
    assert stems == {
        "UPPER.JPG": "UPPER", "a/Dog.png": "a/Dog.png", "a/cat.jpg": "a/cat.jpg", "a/cat.jpg.png": "a/cat.jpg.png",
        "a/cat.png": "a/cat.png", "a/deep/er/dog.png": "a/deep/er/dog", "a/dog.JPG": "a/dog.JPG",
        "b/cat.jpg": "b/cat", "b/notes.jpg": "b/notes", "b/photo": "b/photo", "link/e.png": "link/e",
    }


def test_several_roots_get_distinct_folders(tmp_path: Path) -> None:
    one, two = build_tree(tmp_path / "x"), build_tree(tmp_path / "y")  # both named "data"
    loose = image(tmp_path / "cat.jpg", "JPEG")
    items, _ = discover([one, two, loose], exclude=[one / "out", two / "out"])
    assert has_multiple_roots(items)
    out = tmp_path / "out"
    stems = [output_stem(i, out, multi_root=True) for i in items]
    assert len({s.as_posix().casefold() for s in stems}) == len(items) == 2 * len(EXPECTED) + 1
    assert stems[EXPECTED.index("b/cat.jpg")] == out / "data" / "b" / "cat"
    assert stems[len(EXPECTED) + EXPECTED.index("b/cat.jpg")] == out / "data-2" / "b" / "cat"
    assert stems[-1] == out / tmp_path.name / "cat"
    assert not has_multiple_roots(items[:3])


def synthetic(n: int) -> list[InputItem]:
    return [InputItem(Path(f"r{k % 2}/d{k % 7}/im{k}.png"), Path(f"d{k % 7}/im{k}.png"), Path(f"r{k % 2}"))
            for k in range(n)]


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5])
def test_shards_partition_the_inputs_exactly(count: int) -> None:
    items = synthetic(60)
    parts = [shard(items, i, count) for i in range(count)]
    flat = [x for part in parts for x in part]
    assert len(flat) == len(items) and set(flat) == set(items)  # every item in exactly one shard
    for part in parts:
        assert part == [x for x in items if x in part]  # each part keeps the input order
    if count > 1:
        assert all(parts), "60 items leave no shard empty"


def test_an_items_shard_does_not_depend_on_the_other_items() -> None:
    items = synthetic(40)
    fewer = items[::3]
    for i in range(4):
        assert shard(fewer, i, 4) == [x for x in shard(items, i, 4) if x in fewer]
    assert [shard_of(x, 4) for x in items] == [shard_of(x, 4) for x in synthetic(40)]


@pytest.mark.parametrize("text, expected", [("0/4", (0, 4)), ("3/4", (3, 4)), (" 1 / 2 ", (1, 2)), ("0/1", (0, 1))])
def test_parse_shard(text: str, expected: tuple[int, int]) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text, message", [
    ("4/4", "--shard I must be 0..N-1 (0-based), got '4/4'"),
    ("0/0", "--shard N must be at least 1, got '0/0'"),
    ("-1/4", "--shard must be I/N, e.g. 0/4, got '-1/4'"),
    ("1", "--shard must be I/N, e.g. 0/4, got '1'"),
    ("a/b", "--shard must be I/N, e.g. 0/4, got 'a/b'"),
    ("", "--shard must be I/N, e.g. 0/4, got ''"),
])
def test_parse_shard_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError) as e:
        parse_shard(text)
    assert str(e.value) == message


def test_shard_rejects_an_index_out_of_range() -> None:
    with pytest.raises(ValueError, match=r"shard index must be in 0\.\.2, got 3"):
        shard(synthetic(3), 3, 3)
