"""Cost of one figure, drawn and encoded, per renderer: Pillow (png, jpg) against matplotlib (png, svg).

    python benchmarks/figure_cost.py [--repeat 20] [--weights W] [--pillow-only]

Uses examples/mosaic.jpg with the default model, 4 explained classes (the default of
explain), and prints milliseconds per file for each kind, renderer and format; "compact jpg" is
what a folder run writes. Each call gets its own copy of the image, as each image of a folder
run is loaded anew: the renderer keeps a photo's panel picture for the next figure of the same
image object, and that must not flatter the numbers.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.images import load_rgb  # noqa: E402
from nestviz.draw.raster import cam_image, encode_image, gradcat_image  # noqa: E402
from nestviz.draw.vector import cam_figure, encode_figure, gradcat_figure  # noqa: E402


def mpl_png(fig) -> bytes:  # noqa: ANN001
    """matplotlib's PNG as nestviz once made it (Agg pixels, Pillow deflate level 1): the comparison column only."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    buf = io.BytesIO()
    Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB").save(
        buf, "PNG", compress_level=1, dpi=(100, 100))
    return buf.getvalue()


def per_call_ms(fn, image: Image.Image, repeat: int) -> float:  # noqa: ANN001
    """Mean milliseconds of ``fn(copy)``, each call given its own copy of ``image`` (made before timing)."""
    copies = [image.copy() for _ in range(repeat + 1)]
    fn(copies.pop())  # warm: fonts, colormap
    t = time.perf_counter()
    for im in copies:
        fn(im)
    return (time.perf_counter() - t) / repeat * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--pillow-only", action="store_true", help="leave out the (slow) matplotlib columns")
    args = ap.parse_args()
    image = load_rgb(REPO / "examples" / "mosaic.jpg")
    [result] = Nestviz.load(args.weights, device="cpu").annotate([image], top_k=4)
    print(f"one figure of examples/mosaic.jpg ({image.width}x{image.height}), 4 panels, ms per file "
          f"(mean of {args.repeat})")
    print(f"{'figure':<10}{'Pillow png':>12}{'Pillow jpg':>12}{'compact jpg':>13}"
          + ("" if args.pillow_only else f"{'mpl png':>10}{'mpl svg':>10}{'mpl/Pillow png':>16}"))
    for kind, raster, vector in (("gradcat", gradcat_image, gradcat_figure), ("cam", cam_image, cam_figure)):
        rp = per_call_ms(lambda im: encode_image(raster(im, result), "png"), image, args.repeat)
        rj = per_call_ms(lambda im: encode_image(raster(im, result), "jpg"), image, args.repeat)
        rc = per_call_ms(lambda im: encode_image(raster(im, result, compact=True), "jpg", compact=True), image,
                         args.repeat)
        line = f"{kind:<10}{rp:>12.1f}{rj:>12.1f}{rc:>13.1f}"
        if not args.pillow_only:
            mp = per_call_ms(lambda im: mpl_png(vector(im, result)), image, max(3, args.repeat // 4))
            ms = per_call_ms(lambda im: encode_figure(vector(im, result), "svg"), image, max(3, args.repeat // 4))
            line += f"{mp:>10.1f}{ms:>10.1f}{mp / rp:>15.1f}x"
        print(line)


if __name__ == "__main__":
    main()
