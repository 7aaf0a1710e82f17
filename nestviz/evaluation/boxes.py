"""Object-box files for ``nestviz metrics``: Pascal VOC folders, COCO JSON and a simple CSV.

Every reader gives ``{image key: [ObjectBox, ...]}`` where the key is the image file's stem
(``image_key``), plus a list of ``BoxFileError`` for the entries it had to skip. The unit that
fails is the smallest one: one XML file of a folder, one COCO annotation, one CSV row; the rest
still loads. Only a path that cannot be read at all (missing, unknown type, unparseable JSON,
wrong CSV header, a single XML file that is broken) raises ``BoxFileError``.

Boxes are ``(x0, y0, x1, y1)`` floats with exclusive ends (area ``(x1-x0)*(y1-y0)``), in the
pixels of ``frame``: VOC's ``<size>`` and COCO's image width/height, or the image's own pixels for
CSV (``frame=None``). ``ObjectBox.scaled_to`` maps a box onto the image actually loaded.
"""

from __future__ import annotations

import csv
import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Box = tuple[float, float, float, float]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
CSV_COLUMNS = ("image", "xmin", "ymin", "xmax", "ymax")


@dataclass(frozen=True)
class ObjectBox:
    """One object: its label (a WordNet id or a class name, if given) and its box in ``frame`` pixels."""

    label: str | None
    box: Box  # exclusive ends
    frame: tuple[int, int] | None = None  # (width, height) the coordinates refer to; None: the image's own

    def scaled_to(self, width: int, height: int) -> Box:
        """The box in an image of ``width`` x ``height`` pixels (unchanged when ``frame`` is None)."""
        if self.frame is None:
            return self.box
        sx, sy = width / self.frame[0], height / self.frame[1]
        x0, y0, x1, y1 = self.box
        return (x0 * sx, y0 * sy, x1 * sx, y1 * sy)


class BoxFileError(Exception):
    """A box file or entry that cannot be used; ``str()`` is one line, ``"<where>: <problem>"``."""

    def __init__(self, where: str | os.PathLike[str], problem: str) -> None:
        self.where, self.problem = str(where), " ".join(str(problem).split())
        super().__init__(f"{self.where}: {self.problem}")


BoxIndex = dict[str, list[ObjectBox]]


def image_key(name: str | os.PathLike[str]) -> str:
    """The key an image or a box entry is matched by: its file name without an image extension."""
    p = Path(str(name).strip())
    return p.stem if p.suffix.lower() in IMAGE_SUFFIXES else p.name


def read_boxes(path: str | os.PathLike[str]) -> tuple[BoxIndex, list[BoxFileError]]:
    """Read a VOC folder (or one VOC .xml), a COCO .json or a .csv; returns boxes by image key and the skipped entries."""
    p = Path(path)
    if p.is_dir():
        return read_voc_folder(p)
    if not p.exists():
        raise BoxFileError(p, "no such file or folder")
    readers = {".xml": lambda q: ({q.stem: read_voc(q)}, []), ".json": read_coco, ".csv": read_csv}
    reader = readers.get(p.suffix.lower())
    if reader is None:
        raise BoxFileError(p, f"unknown box file type {p.suffix!r}: expected a folder of VOC .xml files, a COCO .json or a .csv")
    return reader(p)


def _number(text: Any, what: str, where: str | Path) -> float:
    """A finite float from text or JSON, or a BoxFileError naming the field."""
    if isinstance(text, bool):
        raise BoxFileError(where, f"{what} is not a number: {text!r}")
    try:
        v = float(text.strip() if isinstance(text, str) else text)
    except (TypeError, ValueError, AttributeError):
        raise BoxFileError(where, f"{what} is not a number: {text!r}") from None
    if not math.isfinite(v):
        raise BoxFileError(where, f"{what} is not a finite number: {text!r}")
    return v


def _size(value: Any, what: str, where: str | Path) -> int:
    """A positive integer image dimension."""
    v = _number(value, what, where)
    if v <= 0 or v != int(v):
        raise BoxFileError(where, f"{what} must be a positive integer, got {value!r}")
    return int(v)


def read_voc(path: Path) -> list[ObjectBox]:
    """Boxes of one Pascal VOC / ImageNet XML file; inclusive 0-based ``xmax`` becomes the exclusive ``xmax + 1``."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        raise BoxFileError(path, f"not readable as XML ({e})") from None
    size = root.find("size")
    if size is None:
        raise BoxFileError(path, "no <size> element")
    w, h = (_size(size.findtext(t), f"<size><{t}>", path) for t in ("width", "height"))
    boxes = []
    for i, obj in enumerate(root.iter("object"), 1):
        bb = obj.find("bndbox")
        if bb is None:
            raise BoxFileError(path, f"<object> {i} has no <bndbox>")
        xmin, ymin, xmax, ymax = (_number(bb.findtext(t), f"<object> {i} <{t}>", path) for t in CSV_COLUMNS[1:])
        if xmin > xmax or ymin > ymax:
            raise BoxFileError(path, f"<object> {i} has min > max: {xmin}, {ymin}, {xmax}, {ymax}")
        box = (max(xmin, 0.0), max(ymin, 0.0), min(xmax + 1, w), min(ymax + 1, h))  # clip 1-based VOC's xmax = width
        if box[0] >= box[2] or box[1] >= box[3]:
            raise BoxFileError(path, f"<object> {i} lies outside the {w}x{h} image")
        boxes.append(ObjectBox((obj.findtext("name") or "").strip() or None, box, (w, h)))
    if not boxes:
        raise BoxFileError(path, "no <object> with a <bndbox>")
    return boxes


def read_voc_folder(folder: Path) -> tuple[BoxIndex, list[BoxFileError]]:
    """Every ``*.xml`` in a folder (not recursive), keyed by the XML file's stem; broken files are skipped and listed."""
    files = sorted(q for q in folder.iterdir() if q.suffix.lower() == ".xml" and q.is_file())
    if not files:
        raise BoxFileError(folder, "no .xml box files in this folder")
    index: BoxIndex = {}
    errors: list[BoxFileError] = []
    for q in files:
        try:
            index[q.stem] = read_voc(q)
        except BoxFileError as e:
            errors.append(e)
    return index, errors


def read_coco(path: Path) -> tuple[BoxIndex, list[BoxFileError]]:
    """COCO detection JSON: ``bbox`` ``[x, y, w, h]`` in the pixels of the image entry's width/height; label = category name."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BoxFileError(path, f"not readable as JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("annotations"), list):
        raise BoxFileError(path, "not a COCO file: needs lists 'images' and 'annotations'")
    labels = {c.get("id"): c.get("name") for c in data.get("categories") or [] if isinstance(c, dict)}
    errors: list[BoxFileError] = []
    images: dict[Any, tuple[str, tuple[int, int] | None]] = {}
    for i, im in enumerate(data["images"]):
        try:
            if not isinstance(im, dict) or "id" not in im or not isinstance(im.get("file_name"), str):
                raise BoxFileError(path, f"images[{i}] needs an 'id' and a 'file_name'")
            frame = None
            if im.get("width") is not None or im.get("height") is not None:
                frame = (_size(im.get("width"), f"images[{i}] width", path), _size(im.get("height"), f"images[{i}] height", path))
            images[im["id"]] = (image_key(im["file_name"]), frame)
        except BoxFileError as e:
            errors.append(e)
    index: BoxIndex = {}
    for j, ann in enumerate(data["annotations"]):
        try:
            if not isinstance(ann, dict) or ann.get("image_id") not in images:
                raise BoxFileError(path, f"annotations[{j}] refers to no listed image")
            bbox = ann.get("bbox")
            if not isinstance(bbox, list) or len(bbox) != 4:
                raise BoxFileError(path, f"annotations[{j}] bbox must be [x, y, width, height]")
            x, y, bw, bh = (_number(v, f"annotations[{j}] bbox", path) for v in bbox)
            if bw <= 0 or bh <= 0:
                raise BoxFileError(path, f"annotations[{j}] bbox has no area: {bbox}")
            key, frame = images[ann["image_id"]]
            label = labels.get(ann.get("category_id"))
            index.setdefault(key, []).append(ObjectBox(str(label) if label is not None else None, (x, y, x + bw, y + bh), frame))
        except BoxFileError as e:
            errors.append(e)
    return index, errors


def read_csv(path: Path) -> tuple[BoxIndex, list[BoxFileError]]:
    """CSV with header ``image,xmin,ymin,xmax,ymax[,label]``: exclusive ends in the image's own pixels."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(enumerate(csv.reader(f), 1))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BoxFileError(path, f"not readable as CSV ({e})") from None
    header = tuple(c.strip().lower() for c in rows[0][1]) if rows else ()
    if header not in (CSV_COLUMNS, CSV_COLUMNS + ("label",)):
        raise BoxFileError(path, f"header must be {','.join(CSV_COLUMNS)}[,label], got {','.join(header) or 'nothing'}")
    index: BoxIndex = {}
    errors: list[BoxFileError] = []
    for line, row in rows[1:]:
        if not any(cell.strip() for cell in row):
            continue
        where = f"{path}:{line}"
        try:
            if len(row) != len(header):
                raise BoxFileError(where, f"expected {len(header)} fields, got {len(row)}")
            if not row[0].strip():
                raise BoxFileError(where, "empty image name")
            x0, y0, x1, y1 = (_number(v, name, where) for v, name in zip(row[1:5], CSV_COLUMNS[1:]))
            if x0 >= x1 or y0 >= y1:
                raise BoxFileError(where, f"box has no area (ends are exclusive): {x0}, {y0}, {x1}, {y1}")
            label = row[5].strip() or None if len(row) > 5 else None
            index.setdefault(image_key(row[0]), []).append(ObjectBox(label, (x0, y0, x1, y1), None))
        except BoxFileError as e:
            errors.append(e)
    return index, errors
