"""OUT/index.html: the interactive gallery of a folder run, openable straight from disk.

Three files, each written atomically (``nestviz._files``):

- ``OUT/gallery-data.js``: ``window.NESTVIZ_DATA = {...};`` the run's data. A script rather
  than JSON so that the page works from ``file://`` (no fetch, no CORS). One *item* per image
  (records of several commands for the same image are merged) with what the grid, the filters
  and the sorts need, computed here.
- ``OUT/gallery-details.js``: ``window.NESTVIZ_DETAILS``, per item its records (and merged
  predictions) as a JSON *string*, parsed only when its detail view opens. The page loads it
  after the grid is on screen, so the page is usable before the bulk (CAM maps, paths) arrives.
- ``OUT/index.html``: the page (``gallery_page``), self-contained: CSS and vanilla JS inline (read
  from ``gallery_assets/``), no network, no framework. Title, run summary and the failures are also
  written as static HTML, so they read without JavaScript.

The page draws each CAM from its record (``cam_map``, ``cam_region``, ``cam_size``, ``threshold``,
``cam_cmap``): the recorded box, and at another threshold the box ``localize`` would find.

Only files that exist inside OUT are ever linked (thumbnails, figures), by relative URL. No torch.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from .._files import atomic_write_text
from ..defaults import CAM_BOX_REGION
from ..draw.style import CMAP, colormap_hex, web_style
from ..results.records import decisive_of
from .gallery_page import DATA_NAME, DETAILS_NAME, gallery_html, summary_line
from .links import present_links
from .outputs import THUMB_SUFFIX  # looked for when a record names no thumbnail

INDEX_NAME = "index.html"
IMAGE_FORMATS = (".png", ".jpg", ".jpeg", ".svg", ".webp", ".gif")
OK_STATUSES = ("ok", "skipped")


# -- the entry point ---------------------------------------------------------------------------------
def write_gallery(out_dir: Path, records: list[dict[str, Any]], title: str, summary: dict[str, Any], *,
                  metrics: dict[str, Any] | None = None) -> Path:
    """Write ``out_dir/gallery-data.js`` then ``out_dir/index.html`` for ``records``; return the page's path.

    ``records`` are manifest records (shards already merged); ``summary`` the last run's counts
    (``done``, ``failed``, ``skipped``, ``seconds``, ``images_per_s``, ``interrupted``);
    ``metrics`` what ``nestviz metrics`` computed (``{"metrics": {method: {metric: value}}}``),
    shown as a method x metric table.
    """
    out_dir = Path(out_dir)
    data = gallery_data(out_dir, records, title, summary, metrics)
    atomic_write_text(out_dir / DETAILS_NAME, details_script(data))
    atomic_write_text(out_dir / DATA_NAME, data_script(data))
    page = out_dir / INDEX_NAME
    atomic_write_text(page, gallery_html(data))
    return page


# -- data --------------------------------------------------------------------------------------------
def gallery_data(out_dir: Path, records: list[dict[str, Any]], title: str, summary: dict[str, Any],
                 metrics: dict[str, Any] | None = None) -> dict[str, Any]:
    """The page's data: ``items`` (one per image), ``details`` (JSON strings, same order) and the run's facts."""
    files = FileIndex(out_dir)
    groups: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if not isinstance(rec, dict):
            continue
        key = rec.get("image")
        key = key if isinstance(key, str) and key else f"(record {len(groups) + 1} without an image)"
        groups.setdefault(key, []).append(rec)
    items, details = [], []
    for image, recs in groups.items():
        item, detail = _item(files, len(items), image, recs)
        items.append(item)
        details.append(_json(detail))
    return {"version": 1, "token": uuid.uuid4().hex, "title": str(title),
            "summary": _clean(summary if isinstance(summary, dict) else {}),
            "metrics": _clean(metrics) if isinstance(metrics, dict) else None, "items": items, "details": details,
            "style": web_style(), "cmap_luts": _other_cmaps(records), "cam_box_region": CAM_BOX_REGION,
            "links": present_links(out_dir)}


def _other_cmaps(records: list[dict[str, Any]]) -> dict[str, str]:
    """Lookup tables of the colour maps the records name besides ``CMAP`` (which ``style`` carries)."""
    names = {p.get("cam_cmap") for r in records if isinstance(r, dict) for p in r.get("predictions") or []
             if isinstance(p, dict)} - {CMAP, None}
    return {n: lut for n in sorted(x for x in names if isinstance(x, str)) if (lut := colormap_hex(n))}


def _item(files: FileIndex, index: int, image: str,
          recs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    good = [r for r in recs if r.get("status", "ok") in OK_STATUSES]
    errors = [r for r in recs if r.get("status", "ok") not in OK_STATUSES]
    first = (good or recs)[0]
    preds = merge_predictions(good)
    top = preds[0] if preds else None
    outputs: list[str] = []
    for r in recs:  # the current outputs, then those earlier runs made with other options (still there)
        for field in ("outputs", "earlier_outputs"):
            outputs += [o for o in existing_outputs(files.root, r.get(field), files) if o not in outputs]
    thumb = _thumbnail(files, recs, outputs)
    true_label = next((r["true_label"] for r in recs if isinstance(r.get("true_label"), str)), None)
    true_index = next((r["true_class_index"] for r in recs if _number(r.get("true_class_index"))), None)
    probs = [p["probability"] for p in preds if _number(p.get("probability"))]
    correct = None
    if top is not None and (true_label is not None or true_index is not None):
        correct = bool((true_label is not None and str(top.get("label", "")).casefold() == true_label.casefold())
                       or (true_index is not None and top.get("class_index") == true_index))
    error_text = "; ".join(_error_text(r) for r in errors) or None
    item = {
        "id": index,
        "image": image,
        "name": image.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] or image,
        "status": "ok" if good else "error",
        "error": error_text,
        "commands": sorted({str(r["command"]) for r in recs if isinstance(r.get("command"), str)}),
        "width": first.get("width") if _number(first.get("width")) else None,
        "height": first.get("height") if _number(first.get("height")) else None,
        "thumb": _url(thumb) if thumb else None,
        "thumb_is_figure": bool(thumb) and not thumb.endswith(THUMB_SUFFIX) and thumb not in _named_thumbs(recs),
        "pred": str(top.get("label")) if top is not None and top.get("label") is not None else None,
        "pred_index": top.get("class_index") if top is not None and _number(top.get("class_index")) else None,
        "p": round(float(probs[0]), 6) if top is not None and probs and _number(top.get("probability")) else None,
        "margin": round(float(probs[0] - probs[1]), 6) if len(probs) >= 2 and top is not None
        and _number(top.get("probability")) else None,
        "true": true_label if true_label is not None else (str(true_index) if true_index is not None else None),
        "correct": correct,
        "agree": agreement(top) if top is not None else None,
        **without_evidence(good, top),
        "classes": len(preds),
    }
    detail: dict[str, Any] = {"outputs": [{"href": _url(o), "name": o, "kind": _kind(o)} for o in outputs],
                              "records": [{k: v for k, v in r.items() if k != "evidence"} for r in recs]}
    if len(good) != 1:  # else the page takes the predictions from the one record
        detail["predictions"] = preds
    return item, detail


def merge_predictions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The predictions of several records of one image, merged per class (first value of a field wins).

    An ``explain`` record brings the path, a ``cam`` record the box, peak and map; ``annotate``
    both. Sorted by rank, then by probability (highest first).
    """
    merged: dict[Any, dict[str, Any]] = {}
    for r in records:
        for p in r.get("predictions") or []:
            if not isinstance(p, dict):
                continue
            key = p.get("class_index") if _number(p.get("class_index")) else ("label", str(p.get("label")))
            into = merged.setdefault(key, {})
            for k, v in p.items():
                if into.get(k) is None and v is not None:
                    into[k] = v
    preds = list(merged.values())
    preds.sort(key=lambda p: (p["rank"] if _number(p.get("rank")) else math.inf,
                              -p["probability"] if _number(p.get("probability")) else 0.0))
    return preds


def without_evidence(records: list[dict[str, Any]], top: dict[str, Any] | None) -> dict[str, Any]:
    """``falls``: whether the top decision changed when a record's run removed its evidence (``evidence.removal``,
    ``nestviz.methods.removal``), and ``drop``, its class's probability before minus after; None when no record
    of the top class as the model's decision checked it."""
    for r in records:
        ev = r.get("evidence")
        removal = ev.get("removal") if isinstance(ev, dict) else None
        pred = (r.get("predictions") or [{}])[0]
        falls = decisive_of(removal, pred) if top is not None and pred.get("class_index") == top.get("class_index") \
            else None
        if falls is None:
            continue
        before_after = removal.get("probability")
        drop = round(before_after[0] - before_after[1], 4) if isinstance(before_after, list) and len(before_after) == 2 \
            and all(_number(v) for v in before_after) else None
        return {"falls": falls, "drop": drop}
    return {"falls": None, "drop": None}


def agreement(pred: dict[str, Any]) -> bool | None:
    """Does the CAM peak lie inside the GradCAT leaf box (edges included)? None when either is missing."""
    peak = pred.get("peak")
    path = [n for n in pred.get("path") or [] if isinstance(n, dict) and _box(n.get("box"))]
    if not path or not (isinstance(peak, list) and len(peak) == 2 and all(_number(v) for v in peak)):
        return None
    leaf = min(path, key=lambda n: n["level"] if _number(n.get("level")) else math.inf)
    x0, y0, x1, y1 = leaf["box"]
    return bool(x0 <= peak[0] <= x1 and y0 <= peak[1] <= y1)


def existing_outputs(out_dir: Path | str, outputs: Any, files: "FileIndex | None" = None) -> list[str]:
    """The entries of ``outputs`` (paths relative to ``out_dir``) that are files inside it."""
    if not isinstance(outputs, list):
        return []
    files = files or FileIndex(out_dir)
    return [o for o in outputs if files.has(o)]


class FileIndex:
    """Which relative paths name a file inside OUT: one ``realpath`` + ``isfile`` per distinct path, cached.

    A path qualifies when it is relative, and its real path (symbolic links resolved) is a file
    strictly inside OUT's real path.
    """

    def __init__(self, out_dir: Path | str):
        self.root = os.path.realpath(out_dir)
        self._known: dict[str, bool] = {}

    def has(self, rel: Any) -> bool:
        if not isinstance(rel, str) or not rel or "\x00" in rel or os.path.isabs(rel):
            return False
        hit = self._known.get(rel)
        if hit is None:
            path = os.path.join(self.root, rel)
            # a path with no ".." and no symbolic link on the way cannot leave OUT: skip realpath's per-component lstat
            simple = ".." not in rel.replace("\\", "/").split("/") and not self._links_below_root(rel)
            real = os.path.normpath(path) if simple else os.path.realpath(path)
            hit = self._known[rel] = real.startswith(self.root + os.sep) and os.path.isfile(real)
        return hit

    def _links_below_root(self, rel: str) -> bool:
        """Is any folder on the way to ``rel`` or ``rel`` itself a symbolic link? (Folders cached.)"""
        parts = rel.replace("\\", "/").split("/")
        for i in range(1, len(parts) + 1):
            sub = "/".join(parts[:i])
            key = "\x00link:" + sub
            link = self._known.get(key)
            if link is None:
                link = self._known[key] = os.path.islink(os.path.join(self.root, sub))
            if link:
                return True
        return False


def _named_thumbs(recs: list[dict[str, Any]]) -> list[str]:
    return [r["thumbnail"] for r in recs if isinstance(r.get("thumbnail"), str)]


def _thumbnail(files: FileIndex, recs: list[dict[str, Any]], outputs: list[str]) -> str | None:
    """The record's thumbnail if it exists; else ``<stem>.thumb.jpg`` beside an output; else a figure."""
    for t in _named_thumbs(recs):
        if files.has(t):
            return t
    for o in outputs:
        parts = o.rsplit("/", 1)
        stem = parts[-1].split(".")[0]
        guess = (parts[0] + "/" if len(parts) == 2 else "") + stem + THUMB_SUFFIX
        if files.has(guess):
            return guess
    return next((o for o in outputs if o.lower().endswith(IMAGE_FORMATS)), None)


def _error_text(r: dict[str, Any]) -> str:
    err = r.get("error")
    text = str(err) if err is not None else f"status {r.get('status')!s}"
    return f"{r['command']}: {text}" if isinstance(r.get("command"), str) else text


def data_script(data: dict[str, Any]) -> str:
    """``window.NESTVIZ_DATA = {...};`` without the details (ASCII only: U+2028 and friends never break it)."""
    return "window.NESTVIZ_DATA = " + _json({k: v for k, v in data.items() if k != "details"}, ascii=True) + ";\n"


def details_script(data: dict[str, Any]) -> str:
    """``window.NESTVIZ_DETAILS = {"token": ..., "details": ["{...}", ...]};`` loaded after the grid shows."""
    return ("window.NESTVIZ_DETAILS = " + _json({"token": data["token"], "details": data["details"]}, ascii=True)
            + ";\n")


# -- helpers -----------------------------------------------------------------------------------------
def _json(value: Any, ascii: bool = False) -> str:
    try:
        return json.dumps(value, ensure_ascii=ascii, allow_nan=False, separators=(",", ":"))
    except (ValueError, TypeError):  # NaN / infinity / odd objects: null and str
        return json.dumps(_clean(value), ensure_ascii=ascii, allow_nan=False, separators=(",", ":"))


def _clean(value: Any) -> Any:
    """``value`` as plain JSON: non-finite floats -> None, unknown objects -> str, keys -> str."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, (str, int, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return str(value)


def _number(v: Any) -> bool:
    t = type(v)
    return t is int or (t is float and math.isfinite(v)) or (
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))


def _box(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(_number(x) for x in v)


def _kind(output: str) -> str:
    """``a/cat.gradcat.k2.png`` -> ``gradcat k2 png``: the figure kind, options and format, for link text."""
    name = output.rsplit("/", 1)[-1]
    parts = name.split(".")
    return " ".join(parts[1:]) if len(parts) >= 3 else name


def _url(relative: str) -> str:
    """A relative URL for a path under OUT, percent-encoded (not HTML-escaped: the page sets it through the DOM)."""
    return quote(os.fsencode(relative.replace(os.sep, "/")))  # the bytes of a name that is not UTF-8, as %XX


__all__ = ["write_gallery", "gallery_data", "gallery_html", "data_script", "existing_outputs", "merge_predictions",
           "agreement", "without_evidence", "summary_line", "details_script", "FileIndex", "DATA_NAME", "DETAILS_NAME", "INDEX_NAME"]
