"""Results that show and save themselves: what the Python API returns (no torch, so figure workers stay light).

    [r] = nv.annotate("cat.jpg")
    r                         # in a notebook: the GradCAT figure (``_repr_png_``) or a table with both figures
    r.save("cat.pdf")         # the format from the suffix; kind="cam" for the CAM figure
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from PIL import Image

from ..draw.style import COMPACT_JPEG_QUALITY
from .records import ImageResult, box_text

PREVIEW_WIDTH = 720  # pixels: the notebook view's figure previews (a 10-class figure is 2,200 px wide)


@dataclass(repr=False)
class Result(ImageResult):
    """An :class:`ImageResult` that draws itself; ``picture`` is the decoded image it was computed on
    (kept by the API, not pickled: a result sent to a figure worker travels light)."""

    picture: Image.Image | None = field(default=None, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "picture": None}

    def kinds(self) -> list[str]:
        """The figures this result can draw: ``gradcat`` (it has paths) and / or ``cam`` (it has maps)."""
        return [k for k, has in (("gradcat", any(p.path for p in self.predictions)),
                                 ("cam", any(p.cam is not None for p in self.predictions))) if has]

    def image_for_figures(self) -> Image.Image:
        """The picture, or the image file read again (a result from a path that was not kept)."""
        if self.picture is not None:
            return self.picture
        from ..images import load_rgb

        return load_rgb(self.image)

    def figure_bytes(self, kind: str | None = None, fmt: str = "png", **options: Any) -> bytes:
        """One figure's file bytes; ``kind`` defaults to the first of :meth:`kinds`."""
        from ..draw import figure_bytes

        return figure_bytes(self._kind(kind), self.image_for_figures(), self, fmt, **options)

    def save(self, path: str | os.PathLike[str], kind: str | None = None, **options: Any) -> Path:
        """Write a figure to ``path``, its format from the suffix (.png, .jpg, .svg, .pdf); returns the path.

        ``options`` go to the renderer (``tree=True``: the tree diagram beside each panel).
        """
        from ..draw import write_figure

        write_figure(self._kind(kind), self.image_for_figures(), self, path, **options)
        return Path(path)

    def _kind(self, kind: str | None) -> str:
        kinds = self.kinds()
        if self.error is not None:
            raise ValueError(f"{self.image}: nothing to draw ({self.error})")
        if kind is None:
            if not kinds:
                raise ValueError("nothing to draw: a predict result has no path or map (use explain, cam or annotate)")
            return kinds[0]
        if kind not in kinds:
            raise ValueError(f"this result has no {kind} figure (it has: {', '.join(kinds) or 'none'})")
        return kind

    def _repr_png_(self) -> bytes | None:
        """Jupyter's picture of the result: the first figure it has (None for a predict result or an error)."""
        return self.figure_bytes() if self.error is None and self.kinds() else None

    def _repr_html_(self) -> str:
        """Jupyter's rich view: image, size and fit, a table of the classes, each figure as a small JPEG preview
        (tens of KB, not a full-size PNG per figure in the notebook); full figures on demand (``save``)."""
        if self.error is not None:
            return f"<p><b>{escape(self.image)}</b>: {escape(self.error)}</p>"
        rows = "".join(f"<tr><td>#{p.rank}</td><td>{escape(p.label)}</td><td>{p.probability:.1%}</td>"
                       f"<td>{_leaf(p)}</td><td>{_cam_box(p)}</td></tr>" for p in self.predictions)
        figures = "".join(f'<img alt="{k} figure (preview)" src="data:image/jpeg;base64,'
                          f'{base64.b64encode(self.preview_bytes(k)).decode()}">' for k in self.kinds())
        more = (f"<p>Previews; full size: <code>.save(\"{k}.png\", kind=\"{k}\")</code> or <code>"
                f".figure_bytes(\"{k}\")</code></p>" for k in self.kinds()[:1])
        return (f"<div><p><b>{escape(self.image)}</b> {self.width}x{self.height}, fit {escape(self.fit)}</p>"
                "<table><tr><th>rank</th><th>class</th><th>probability</th><th>GradCAT leaf</th><th>CAM box</th></tr>"
                f"{rows}</table>{figures}{''.join(more)}</div>")

    def preview_bytes(self, kind: str | None = None, width: int = PREVIEW_WIDTH) -> bytes:
        """A figure as a compact JPEG at most ``width`` pixels wide: what the notebook view embeds."""
        import io

        from ..draw import figure_bytes

        data = figure_bytes(self._kind(kind), self.image_for_figures(), self, "jpg", compact=True)
        im = Image.open(io.BytesIO(data))
        if im.width <= width:
            return data
        buf = io.BytesIO()
        im.resize((width, max(1, round(im.height * width / im.width))), Image.Resampling.LANCZOS).save(
            buf, "JPEG", quality=COMPACT_JPEG_QUALITY)
        return buf.getvalue()


def _leaf(p: Any) -> str:
    return box_text(p.path[-1].box) if p.path else ""


def _cam_box(p: Any) -> str:
    return box_text(p.cam.box) if p.cam is not None else ""


__all__ = ["Result"]
