"""The deletion and insertion curves of ``nestviz metrics --out``, one PNG (matplotlib, no torch)."""

from __future__ import annotations

import io
from typing import Any

from .style import PALETTE

COLOURS = {"cam": PALETTE[0], "gradcat": PALETTE[1], "occlusion": PALETTE[2], "random": "#888888"}


def curves_png(curves: dict[str, dict[str, list[float]]], metrics: dict[str, Any]) -> bytes:
    """Mean class probability against the share of pixels removed (deletion) or revealed (insertion), per method."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6), dpi=100, layout="constrained")
    for ax, kind, better in zip(fig.subplots(1, 2), ("deletion", "insertion"), ("lower", "higher")):
        for method, c in sorted(curves.items()):
            colour = COLOURS.get(method, PALETTE[4])
            values = c.get(kind)
            if not values:
                continue
            xs = [i / (len(values) - 1) for i in range(len(values))]
            area = metrics.get(method, {}).get(f"{kind}_auc")
            ax.plot(xs, values, marker="o", ms=3, color=colour,
                    label=f"{method} (AUC {area:.3f})" if area is not None else method)
        ax.set_title(f"{kind.capitalize()}: {better} is better")
        ax.set_xlabel("share of pixels " + ("removed" if kind == "deletion" else "revealed"))
        ax.set_ylabel("class probability")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
