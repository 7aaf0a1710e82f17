"""Box-file readers on small VOC, COCO and CSV files written here (never the shared data)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from nestviz.evaluation.boxes import BoxFileError, ObjectBox, image_key, read_boxes


def voc(width: int, height: int, *objects: tuple[str, int, int, int, int]) -> str:
    objs = "".join(f"<object><name>{n}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>"
                   "</bndbox></object>" for n, a, b, c, d in objects)
    return f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth></size>{objs}</annotation>"


def assert_one_line(errors: list[BoxFileError], *names: str) -> None:
    """Each error is one line, starts with the path that failed, and the expected files are named."""
    assert len(errors) == len(names)
    for e, name in zip(errors, names):
        assert "\n" not in str(e) and str(e).startswith(e.where + ": ") and name in e.where


def test_voc_folder_inclusive_ends_and_frame(tmp_path: Path):
    (tmp_path / "img_a.xml").write_text(voc(500, 375, ("n01440764", 238, 38, 395, 222), ("tench", 0, 0, 9, 19)))
    index, errors = read_boxes(tmp_path)
    assert errors == []
    # inclusive 0-based xmax 395 -> exclusive 396; frame from <size>
    assert index == {"img_a": [ObjectBox("n01440764", (238, 38, 396, 223), (500, 375)),
                               ObjectBox("tench", (0, 0, 10, 20), (500, 375))]}
    assert read_boxes(tmp_path / "img_a.xml")[0] == index  # a single file works too


def test_voc_size_differs_from_the_image(tmp_path: Path):
    (tmp_path / "photo.xml").write_text(voc(500, 375, ("n01440764", 100, 75, 299, 224)))  # x [100, 300), y [75, 225)
    Image.new("RGB", (250, 150)).save(tmp_path / "photo.jpg")  # the image on disk is half as wide, 0.4 as high
    [box] = read_boxes(tmp_path)[0][image_key(tmp_path / "photo.jpg")]
    with Image.open(tmp_path / "photo.jpg") as im:
        assert box.scaled_to(*im.size) == pytest.approx((50, 30, 150, 90))  # x * 250/500, y * 150/375
    assert ObjectBox(None, (1, 2, 3, 4)).scaled_to(999, 999) == (1, 2, 3, 4)  # frame None: the image's own pixels


def test_voc_bad_files_give_one_line_each_and_the_rest_loads(tmp_path: Path):
    (tmp_path / "good.xml").write_text(voc(10, 10, ("a", 1, 1, 5, 5)))
    (tmp_path / "broken.xml").write_text("<annotation><size><width>10</wid")           # malformed XML
    (tmp_path / "nosize.xml").write_text("<annotation><object><name>a</name></object></annotation>")
    (tmp_path / "badnum.xml").write_text(voc(10, 10, ("a", 1, "x", 5, 5)))              # ymin not a number
    (tmp_path / "inverted.xml").write_text(voc(10, 10, ("a", 6, 1, 5, 5)))              # xmin > xmax
    (tmp_path / "notes.txt").write_text("ignored")
    index, errors = read_boxes(tmp_path)
    assert list(index) == ["good"]
    assert_one_line(errors, "badnum.xml", "broken.xml", "inverted.xml", "nosize.xml")  # sorted by name
    assert "<size>" in errors[3].problem and "ymin" in errors[0].problem
    with pytest.raises(BoxFileError, match="broken.xml: not readable as XML"):
        read_boxes(tmp_path / "broken.xml")


def test_coco(tmp_path: Path):
    data = {
        "images": [{"id": 1, "file_name": "val/cat_01.jpg", "width": 640, "height": 480},
                   {"id": 2, "file_name": "dog.png", "width": 100, "height": 50}],
        "annotations": [{"image_id": 1, "bbox": [10, 20, 30, 40], "category_id": 7},
                        {"image_id": 1, "bbox": [0, 0, 5, 5], "category_id": 99},   # unknown category: no label
                        {"image_id": 2, "bbox": [1, 2, "w", 4], "category_id": 7},  # bad number
                        {"image_id": 3, "bbox": [1, 2, 3, 4], "category_id": 7}],   # unknown image
        "categories": [{"id": 7, "name": "tabby"}],
    }
    path = tmp_path / "boxes.json"
    path.write_text(json.dumps(data))
    index, errors = read_boxes(path)
    # bbox [x, y, w, h] -> (x, y, x + w, y + h) in the 640x480 frame; keyed by the file name's stem
    assert index == {"cat_01": [ObjectBox("tabby", (10, 20, 40, 60), (640, 480)), ObjectBox(None, (0, 0, 5, 5), (640, 480))]}
    assert_one_line(errors, "boxes.json", "boxes.json")
    assert "annotations[2]" in errors[0].problem and "annotations[3]" in errors[1].problem
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(BoxFileError, match="bad.json: not readable as JSON"):
        read_boxes(tmp_path / "bad.json")


def test_csv_rows_and_bad_lines(tmp_path: Path):
    path = tmp_path / "boxes.csv"
    path.write_text("image,xmin,ymin,xmax,ymax,label\n"   # line 1
                    "a.jpg,1,2,11,12,dog\n"               # line 2
                    "a,0,0,5,5,\n"                        # line 3: same image by stem, no label
                    "\n"                                  # line 4: blank, skipped
                    "b.png,1,x,3,4,cat\n"                 # line 5: bad number
                    "c.jpg,5,5,5,9,cat\n"                 # line 6: no area
                    "d.jpg,1,2,3\n"                       # line 7: too few fields
                    "e.JPEG,0,0,2.5,3,n01440764\n")       # line 8: float coordinates are fine
    index, errors = read_boxes(path)
    assert index == {"a": [ObjectBox("dog", (1, 2, 11, 12)), ObjectBox(None, (0, 0, 5, 5))],
                     "e": [ObjectBox("n01440764", (0, 0, 2.5, 3))]}
    assert [e.where for e in errors] == [f"{path}:5", f"{path}:6", f"{path}:7"]
    assert_one_line(errors, "boxes.csv:5", "boxes.csv:6", "boxes.csv:7")
    no_label = tmp_path / "plain.csv"
    no_label.write_text("image,xmin,ymin,xmax,ymax\nz.jpg,0,0,1,1\n")
    assert read_boxes(no_label) == ({"z": [ObjectBox(None, (0, 0, 1, 1))]}, [])
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("file,x,y,w,h\nz.jpg,0,0,1,1\n")
    with pytest.raises(BoxFileError, match="wrong.csv: header must be"):
        read_boxes(wrong)


def test_unreadable_paths_raise_one_line(tmp_path: Path):
    (tmp_path / "boxes.txt").write_text("x")
    for path, problem in [(tmp_path / "boxes.txt", "unknown box file type"), (tmp_path / "missing", "no such file"),
                          (tmp_path, "no .xml box files")]:
        with pytest.raises(BoxFileError) as err:
            read_boxes(path)
        assert str(err.value) == f"{path}: {err.value.problem}" and problem in err.value.problem


def test_image_key():
    assert image_key("dir/ILSVRC2012_val_00001440.JPEG") == "ILSVRC2012_val_00001440"
    assert image_key("ILSVRC2012_val_00001440") == "ILSVRC2012_val_00001440"
    assert image_key("shot.v2") == "shot.v2" and image_key("shot.v2.png") == "shot.v2"
