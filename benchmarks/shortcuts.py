"""Planted shortcuts: the patches, where they go, and the patched copies of Imagenette.

Three shortcuts, each planted on every training image of one class (one model learns all
three), each a different kind of evidence a user might fear:

- ``checker``: a 32 px black-and-white checkerboard at a random place (a patch that moves);
- ``logo``: a 40 px logo-like disc and triangle, always in the top-left corner;
- ``watermark``: a line of white text on a dark band (48 x 16 px), always in the bottom-right corner, as
  stock photos carry one (Clever Hans), on chain saws. On parachutes, an easy class (sky and a canopy), it
  was not learned in 3 epochs, as white text alone or on the band: it turned 0-1 of 225 other photos into
  parachutes.

A fourth model, the ``fresh`` set, is a held-out check: its patches, corners and classes were chosen after every
default of nestviz was, and nothing was tuned on it. ``sticker``: a 24 px yellow star on magenta at a random
place (smaller than the checkerboard), on gas pumps; ``stamp``: a 28 px QR-like grid in the top-right corner, on
tenches; ``tag``: red text with no band (56 x 16 px) in the bottom-left corner, on French horns. A fifth,
``fresh2``, made after the flow weighed by the class and the ``single_spot`` flag were chosen, the same way:
``dot``, a 20 px cyan disc at a random place, on English springers; ``badge``, a 36 px green hexagon with a check
mark in the top-left corner, on cassette players; ``barcode``, 44 x 20 px of black bars on white in the
bottom-right corner, on garbage trucks. A sixth, ``fresh3``, made after folder runs removed each decision's evidence
and ``nestviz strategies`` kept a finding to the decisions that removal changed: ``cross``, a 28 px red cross on a
white disc at a random place, on parachutes; ``ghost``, the word SAMPLE in half-transparent white with no band (48 x
16 px) in the top-right corner, as a stock photo's overlay, on English springers; ``ruler``, a 44 x 10 px scale bar
with ticks in the bottom-left corner, as a microscope's or a scanner's, on golf balls (the last two were barely
learned in 3 epochs: 1-2 decisions). A seventh, ``fresh4``, defined and trained while the pattern search over
cluster counts was written (fresh3's cross was found only with it), and scored only once it was final: ``target``,
30 px black and yellow rings at a random place, on tenches; ``flag``, a 36 x 24 px blue, white and red tricolour in
the top-right corner, on chain saws; ``price``, a 40 x 20 px yellow price label with black text in the bottom-left
corner, on churches.

Places stay inside the centre crop the model sees (timm's eval crop drops about 14 px of a
224 px image on each side). Every image, patched or not, is re-encoded the same way, so JPEG
re-compression is no cue. Images and boxes are written to a cache folder, never to the repo.
"""

from __future__ import annotations

import hashlib
import os
import random
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

MARGIN = 20  # px of a 224 px image kept clear of the eval crop's cut (14 px) and then some
JPEG_QUALITY = 92


@dataclass(frozen=True)
class Shortcut:
    name: str
    wnid: str  # the class it decides
    place: str  # "random" or a corner: "top-left", "top-right", "bottom-left", "bottom-right"


SHORTCUTS = (
    Shortcut("checker", "n03445777", "random"),  # golf ball
    Shortcut("logo", "n03028079", "top-left"),  # church
    Shortcut("watermark", "n03000684", "bottom-right"),  # chain saw
)
# named sets (``planted_shortcut.py make --set``): "swapped" puts the logo in the bottom-right corner, where the
# top cells see least of the image (their windows sit up and left of their squares), and the watermark top-left
SETS = {
    "main": SHORTCUTS,
    "swapped": (Shortcut("logo", "n03028079", "bottom-right"),  # church
                Shortcut("watermark", "n03445777", "top-left")),  # golf ball
    # "fresh": a held-out check, made after every default was chosen: new patches, corners and classes
    "fresh": (Shortcut("sticker", "n03425413", "random"),  # gas pump
              Shortcut("stamp", "n01440764", "top-right"),  # tench
              Shortcut("tag", "n03394916", "bottom-left")),  # French horn
    # "fresh2": a second held-out check, made after the class-weighed flow and single_spot were chosen
    "fresh2": (Shortcut("dot", "n02102040", "random"),  # English springer
               Shortcut("badge", "n02979186", "top-left"),  # cassette player
               Shortcut("barcode", "n03417042", "bottom-right")),  # garbage truck
    # "fresh3": a third held-out check, made after the removal of each decision's evidence and the split it drives
    "fresh3": (Shortcut("cross", "n03888257", "random"),  # parachute
               Shortcut("ghost", "n02102040", "top-right"),  # English springer
               Shortcut("ruler", "n03445777", "bottom-left")),  # golf ball
    # "fresh4": a fourth held-out check, scored only after the pattern search over cluster counts was final
    "fresh4": (Shortcut("target", "n01440764", "random"),  # tench
               Shortcut("flag", "n03000684", "top-right"),  # chain saw
               Shortcut("price", "n03028079", "bottom-left")),  # church
}


def patch_image(kind: str) -> Image.Image:
    """The RGBA patch of one kind (its alpha is where it covers the photo)."""
    if kind == "checker":
        im = Image.new("RGBA", (32, 32), (255, 255, 255, 255))
        d = ImageDraw.Draw(im)
        for i in range(4):
            for j in range(4):
                if (i + j) % 2:
                    d.rectangle([8 * i, 8 * j, 8 * i + 7, 8 * j + 7], fill=(0, 0, 0, 255))
        return im
    if kind == "logo":
        im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        d.ellipse([0, 0, 39, 39], fill=(235, 120, 20, 255))
        d.polygon([(20, 6), (34, 31), (6, 31)], fill=(20, 60, 200, 255))
        return im
    if kind == "watermark":
        im = Image.new("RGBA", (48, 16), (20, 20, 20, 200))
        d = ImageDraw.Draw(im)
        font = ImageFont.load_default(size=13)
        d.text((1, 0), "© stk", font=font, fill=(255, 255, 255, 255), stroke_width=1, stroke_fill=(0, 0, 0, 255))
        return im
    if kind == "sticker":  # 24 px: a yellow star on a magenta square, smaller than the checkerboard
        im = Image.new("RGBA", (24, 24), (200, 30, 160, 255))
        d = ImageDraw.Draw(im)
        d.polygon([(12, 2), (15, 9), (22, 9), (16, 14), (18, 21), (12, 17), (6, 21), (8, 14), (2, 9), (9, 9)],
                  fill=(250, 230, 40, 255))
        return im
    if kind == "stamp":  # 28 px: a QR-like grid of 7 x 7 fixed random modules
        im = Image.new("RGBA", (28, 28), (255, 255, 255, 255))
        d = ImageDraw.Draw(im)
        bits = random.Random("stamp").getrandbits(49)
        for k in range(49):
            if bits >> k & 1:
                i, j = divmod(k, 7)
                d.rectangle([4 * j, 4 * i, 4 * j + 3, 4 * i + 3], fill=(0, 0, 0, 255))
        return im
    if kind == "tag":  # 56 x 16 px: red text with no band, as a proof stamp
        im = Image.new("RGBA", (56, 16), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        d.text((1, 0), "PROOF", font=ImageFont.load_default(size=13), fill=(230, 30, 30, 255), stroke_width=1,
               stroke_fill=(120, 0, 0, 255))
        return im
    if kind == "dot":  # 20 px: a cyan disc ringed in dark blue, the smallest patch
        im = Image.new("RGBA", (20, 20), (0, 0, 0, 0))
        ImageDraw.Draw(im).ellipse([0, 0, 19, 19], fill=(40, 220, 230, 255), outline=(10, 20, 90, 255), width=3)
        return im
    if kind == "badge":  # 36 px: a green hexagon with a white check mark
        im = Image.new("RGBA", (36, 36), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        d.polygon([(18, 0), (34, 9), (34, 27), (18, 35), (2, 27), (2, 9)], fill=(30, 150, 60, 255))
        d.line([(9, 18), (16, 25), (27, 11)], fill=(255, 255, 255, 255), width=4)
        return im
    if kind == "barcode":  # 44 x 20 px: black bars of fixed random widths on white
        im = Image.new("RGBA", (44, 20), (255, 255, 255, 255))
        d = ImageDraw.Draw(im)
        rng, x = random.Random("barcode"), 2
        while x < 41:
            w = rng.choice((1, 1, 2, 3))
            d.rectangle([x, 2, min(x + w - 1, 41), 17], fill=(0, 0, 0, 255))
            x += w + rng.choice((1, 2, 2, 3))
        return im
    if kind == "cross":  # 28 px: a red cross on a white disc
        im = Image.new("RGBA", (28, 28), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        d.ellipse([0, 0, 27, 27], fill=(250, 250, 250, 255))
        d.rectangle([11, 4, 16, 23], fill=(210, 20, 30, 255))
        d.rectangle([4, 11, 23, 16], fill=(210, 20, 30, 255))
        return im
    if kind == "ghost":  # 48 x 16 px: half-transparent white text, no band, as a stock photo's overlay
        im = Image.new("RGBA", (48, 16), (0, 0, 0, 0))
        ImageDraw.Draw(im).text((1, 1), "SAMPLE", font=ImageFont.load_default(size=11), fill=(255, 255, 255, 150),
                                stroke_width=1, stroke_fill=(60, 60, 60, 110))
        return im
    if kind == "ruler":  # 44 x 10 px: a white scale bar with black ticks on a dark strip
        im = Image.new("RGBA", (44, 10), (30, 30, 30, 230))
        d = ImageDraw.Draw(im)
        d.rectangle([2, 6, 41, 7], fill=(255, 255, 255, 255))
        for x in range(2, 42, 5):
            d.rectangle([x, 2 if (x - 2) % 10 == 0 else 4, x, 7], fill=(255, 255, 255, 255))
        return im
    if kind == "target":  # 30 px: black and yellow rings
        im = Image.new("RGBA", (30, 30), (0, 0, 0, 0))
        d = ImageDraw.Draw(im)
        for i, colour in enumerate([(20, 20, 20, 255), (250, 210, 0, 255)] * 3):
            d.ellipse([2.5 * i, 2.5 * i, 29 - 2.5 * i, 29 - 2.5 * i], fill=colour)
        return im
    if kind == "flag":  # 36 x 24 px: a blue, white and red tricolour
        im = Image.new("RGBA", (36, 24), (255, 255, 255, 255))
        d = ImageDraw.Draw(im)
        d.rectangle([0, 0, 11, 23], fill=(20, 50, 160, 255))
        d.rectangle([24, 0, 35, 23], fill=(210, 30, 40, 255))
        return im
    if kind == "price":  # 40 x 20 px: a yellow price label with black text
        im = Image.new("RGBA", (40, 20), (250, 220, 40, 255))
        d = ImageDraw.Draw(im)
        d.text((3, 3), "$9.99", font=ImageFont.load_default(size=12), fill=(0, 0, 0, 255))
        return im
    raise ValueError(f"unknown patch kind {kind!r}")


def place(shortcut: Shortcut, size: tuple[int, int], patch: tuple[int, int], key: str) -> tuple[int, int]:
    """Top-left corner of the patch in an image of ``size``; random places are seeded by ``key``."""
    (w, h), (pw, ph) = size, patch
    m = round(MARGIN * min(w, h) / 224)
    if shortcut.place == "top-left":
        return m, m
    if shortcut.place == "bottom-right":
        return w - m - pw, h - m - ph
    if shortcut.place == "top-right":
        return w - m - pw, m
    if shortcut.place == "bottom-left":
        return m, h - m - ph
    rng = random.Random(int(hashlib.sha256(f"{shortcut.name}/{key}".encode()).hexdigest()[:12], 16))
    return rng.randint(m, w - m - pw), rng.randint(m, h - m - ph)


def paste(im: Image.Image, shortcut: Shortcut, key: str) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """The image with the shortcut pasted, and the patch's box (x0, y0, x1, y1), in its pixels."""
    patch = patch_image(shortcut.name)
    x, y = place(shortcut, im.size, patch.size, key)
    out = im.convert("RGB")
    out.paste(patch, (x, y), patch)
    return out, (x, y, x + patch.width, y + patch.height)


def voc_xml(filename: str, size: tuple[int, int], box: tuple[int, int, int, int], name: str) -> str:
    """A Pascal VOC annotation holding one box (what ``nestviz metrics --evidence`` reads)."""
    x0, y0, x1, y1 = box
    return (f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width><height>{size[1]}</height>"
            f"<depth>3</depth></size><object><name>{name}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
            f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object></annotation>\n")


def save_jpeg(im: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    im.convert("RGB").save(tmp, "JPEG", quality=JPEG_QUALITY)
    os.replace(tmp, path)


def record_set(cache: Path, name: str) -> None:
    """Note in ``cache`` which set its images were made with, for the scripts that read it later."""
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "set.txt").write_text(name + "\n")


def shortcut_set(cache: Path) -> tuple[Shortcut, ...]:
    """The shortcuts planted in ``cache`` (a cache made before sets were named holds the main set)."""
    named = cache / "set.txt"
    return SETS[named.read_text().strip() if named.exists() else "main"]


def make_train(src: Path, dst: Path, shortcuts: tuple[Shortcut, ...] = SHORTCUTS) -> int:
    """Every training image re-encoded; the shortcut classes' images patched. Returns images written."""
    by_class = {s.wnid: s for s in shortcuts}
    n = 0
    for cls in sorted(p for p in src.iterdir() if p.is_dir()):
        for f in sorted(cls.iterdir()):
            out = dst / cls.name / (f.stem + ".jpg")
            if out.exists():
                continue
            with Image.open(f) as im:
                im = im.convert("RGB")
                if cls.name in by_class:
                    im, _ = paste(im, by_class[cls.name], f"train/{cls.name}/{f.name}")
                save_jpeg(im, out)
            n += 1
    return n


def make_heldout(src: Path, dst: Path, per_class: int, seed: int = 0,
                 shortcuts: tuple[Shortcut, ...] = SHORTCUTS) -> int:
    """For each shortcut: ``per_class`` val photos of every other class, patched, with the patch's VOC box.

    Layout: ``dst/<shortcut>/images/<wnid>/<name>.jpg`` and ``dst/<shortcut>/evidence/<name>.xml``;
    ``dst/clean/<wnid>/<name>.jpg`` holds the same photos re-encoded without a patch.
    """
    n = 0
    classes = sorted(p for p in src.iterdir() if p.is_dir())
    for cls in classes:
        files = sorted(cls.iterdir())
        random.Random(f"{seed}/{cls.name}").shuffle(files)
        for f in files[:per_class]:
            with Image.open(f) as im:
                im = im.convert("RGB")
                clean = dst / "clean" / cls.name / (f.stem + ".jpg")
                if not clean.exists():
                    save_jpeg(im, clean)
                for s in shortcuts:
                    if s.wnid == cls.name:
                        continue
                    out = dst / s.name / "images" / cls.name / (f.stem + ".jpg")
                    if out.exists():
                        continue
                    patched, box = paste(im, s, f"val/{cls.name}/{f.name}")
                    save_jpeg(patched, out)
                    xml = dst / s.name / "evidence" / (f.stem + ".xml")
                    xml.parent.mkdir(parents=True, exist_ok=True)
                    xml.write_text(voc_xml(out.name, im.size, box, s.name))
                    n += 1
    return n
