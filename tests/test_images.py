"""Reading images: every format and mode becomes 8-bit RGB with the right pixels; bad files, one-line errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nestviz.images import ImageReadError, load_rgb, looks_like_image

RED, BLUE = (220, 30, 40), (20, 40, 200)


def two_colour(size: tuple[int, int] = (32, 24)) -> Image.Image:
    """Left half RED, right half BLUE: position and colour can both be checked."""
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8)
    arr[:, : size[0] // 2] = RED
    arr[:, size[0] // 2:] = BLUE
    return Image.fromarray(arr)


def pixels(path: Path) -> np.ndarray:
    im = load_rgb(path)
    assert im.mode == "RGB"
    return np.asarray(im).astype(int)


@pytest.mark.parametrize(("suffix", "options", "tolerance"), [
    (".png", {}, 0),
    (".bmp", {}, 0),
    (".tiff", {}, 0),
    (".webp", {"lossless": True}, 0),
    (".jpg", {"quality": 95}, 6),
    (".webp", {"quality": 90}, 8),
])
def test_rgb_formats(tmp_path: Path, suffix: str, options: dict, tolerance: int) -> None:
    path = tmp_path / f"img{suffix}"
    two_colour().save(path, **options)
    a = pixels(path)
    assert a.shape == (24, 32, 3)
    assert np.abs(a[4:20, 2:12] - RED).max() <= tolerance  # away from the edge, where JPEG blurs
    assert np.abs(a[4:20, 20:30] - BLUE).max() <= tolerance


def test_gif_gives_its_first_frame(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    first, second = Image.new("RGB", (8, 8), RED), Image.new("RGB", (8, 8), BLUE)
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as im:
        assert im.n_frames == 2
    assert (pixels(path) == RED).all()


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_exif_orientation_is_applied(tmp_path: Path, suffix: str) -> None:
    """Orientation 6: the stored image is shown turned 90 degrees clockwise; its top-left goes top-right."""
    stored = np.full((20, 40, 3), 255, dtype=np.uint8)  # 40 wide, 20 high, white
    stored[:8, :8] = RED  # top-left corner
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6
    path = tmp_path / f"rotated{suffix}"
    im.save(path, exif=exif.tobytes(), **({"quality": 95} if suffix == ".jpg" else {}))
    a = pixels(path)
    assert a.shape == (40, 20, 3)  # width and height swapped
    assert np.abs(a[1:7, 13:19] - RED).max() <= 8  # now the top-right corner
    assert np.abs(a[1:7, 1:7] - 255).max() <= 8  # and the top-left is white


def save(im: Image.Image, path: Path, **options) -> Path:  # noqa: ANN003
    im.save(path, **options)
    return path


def test_grayscale_and_palette(tmp_path: Path) -> None:
    assert (pixels(save(Image.new("L", (4, 4), 100), tmp_path / "l.png")) == 100).all()
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, *RED, *BLUE] + [0] * (256 - 3) * 3)
    p.putpixel((0, 0), 2)
    a = pixels(save(p, tmp_path / "p.png"))
    assert (a[0, 0] == BLUE).all() and (a[1:, :] == RED).all()


def test_palette_transparency_is_composited_on_white(tmp_path: Path) -> None:
    p = Image.new("P", (4, 4), 1)
    p.putpalette([0, 0, 0, *RED] + [0] * 254 * 3)
    p.putpixel((0, 0), 0)
    for suffix in (".png", ".gif"):
        a = pixels(save(p, tmp_path / f"pt{suffix}", transparency=0))
        assert (a[0, 0] == 255).all()  # transparent black -> white, not black
        assert (a[3, 3] == RED).all()


def test_alpha_is_composited_on_white(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (2, 1))
    rgba.putpixel((0, 0), (255, 0, 0, 128))  # half-transparent red
    rgba.putpixel((1, 0), (10, 20, 30, 0))  # fully transparent
    a = pixels(save(rgba, tmp_path / "rgba.png"))
    half = 255 * (1 - 128 / 255)  # white showing through
    assert a[0, 0, 0] == 255 and abs(a[0, 0, 1] - half) <= 1 and abs(a[0, 0, 2] - half) <= 1
    assert (a[0, 1] == 255).all()
    la = Image.new("LA", (2, 1))
    la.putpixel((0, 0), (50, 255))
    la.putpixel((1, 0), (50, 0))
    a = pixels(save(la, tmp_path / "la.png"))
    assert (a[0, 0] == 50).all() and (a[0, 1] == 255).all()


def test_cmyk(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    assert (pixels(save(cmyk, tmp_path / "cmyk.tiff")) == (255, 0, 0)).all()
    a = pixels(save(cmyk, tmp_path / "cmyk.jpg", quality=95))
    assert np.abs(a - (255, 0, 0)).max() <= 8


def test_sixteen_bit_png(tmp_path: Path) -> None:
    values = np.array([[0, 4096], [32768, 65535]], dtype=np.uint16)
    path = save(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(path) as im:
        assert im.mode.startswith("I")
    a = pixels(path)
    expected = np.round(values / 65535 * 255)
    assert (a == expected[..., None]).all()
    assert a[1, 0, 0] == 128 and a[0, 1, 0] == 16


def test_float_tiff(tmp_path: Path) -> None:
    unit = np.array([[0.0, 0.25], [0.5, 1.0]], dtype=np.float32)  # already in [0, 1]: scaled by 255
    a = pixels(save(Image.fromarray(unit), tmp_path / "unit.tiff"))
    assert (a[..., 0] == np.round(unit * 255)).all() and (a[..., 0] == a[..., 2]).all()
    wide = np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=np.float32)  # outside [0, 1]: stretched to its range
    a = pixels(save(Image.fromarray(wide), tmp_path / "wide.tiff"))
    assert a[..., 0].tolist() == [[0, 64], [128, 255]]


# -- bad files -------------------------------------------------------------------------------------

def read_error(path: Path) -> str:
    with pytest.raises(ImageReadError) as e:
        load_rgb(path)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message[len(f"{path}: "):]


def test_missing_empty_directory_and_text(tmp_path: Path) -> None:
    assert read_error(tmp_path / "nope.jpg") == "no such file"
    (tmp_path / "empty.jpg").write_bytes(b"")
    assert read_error(tmp_path / "empty.jpg") == "empty file (0 bytes)"
    (tmp_path / "folder.jpg").mkdir()
    assert read_error(tmp_path / "folder.jpg") == "is a directory, not an image"
    (tmp_path / "notes.jpg").write_text("not an image at all\n")
    assert read_error(tmp_path / "notes.jpg") == "not an image Pillow can read"


def test_truncated_jpeg(tmp_path: Path) -> None:
    path = tmp_path / "cut.jpg"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path, quality=95)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert read_error(path).startswith("truncated or corrupt image data (image file is truncated")


@pytest.mark.parametrize("pixels_allowed", [300, 150])  # over twice the limit: error; over it: warning
def test_decompression_bomb_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pixels_allowed: int) -> None:
    path = save(Image.new("RGB", (20, 20)), tmp_path / "big.png")  # 400 pixels
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pixels_allowed)
    assert read_error(path) == (f"refused as a possible decompression bomb (400 pixels, the limit is {pixels_allowed}); "
                                "if you trust it, raise the limit with --max-pixels 400 (or $NESTVIZ_MAX_PIXELS)")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)
    assert load_rgb(path).size == (20, 20)


def test_looks_like_image(tmp_path: Path) -> None:
    jpeg = save(Image.new("RGB", (4, 4)), tmp_path / "photo", format="JPEG")  # no extension
    webp = save(Image.new("RGB", (4, 4)), tmp_path / "pic.data", format="WEBP")  # unknown extension
    (tmp_path / "readme").write_text("hello")
    (tmp_path / "notes.txt").write_text("hello")
    assert looks_like_image(jpeg) and looks_like_image(webp)
    assert looks_like_image(tmp_path / "SCAN.JPG")  # by extension, whatever the case
    assert not looks_like_image(tmp_path / "readme") and not looks_like_image(tmp_path / "notes.txt")
    assert not looks_like_image(tmp_path / "missing")
    assert (pixels(jpeg) < 8).all()  # and the extensionless file reads
