"""The GradCAT tree diagram (``--tree``): where its nodes, edges and texts go, for both renderers.

Like the NesT paper's figure: one row per level, the root on top; below each visited node its
four children (top-left, top-right, bottom-left, bottom-right) with their scores divided by the sum of
the four's |scores| (``layout.child_shares``); the child taken is filled in the class colour and its
edge drawn thick, so the chosen path reads top to bottom. Pure geometry, in figure pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..results.records import ClassExplanation
from .layout import child_shares

LABEL_W, BOX_GAP, MAX_BOX_H = 24, 6, 22  # pixels: the row labels' column, between boxes, box height


@dataclass(frozen=True)
class TreeNode:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in figure pixels
    text: str
    chosen: bool  # on the path the traversal took


@dataclass(frozen=True)
class TreeEdge:
    start: tuple[float, float]  # the parent's bottom centre
    end: tuple[float, float]  # the child's top centre
    chosen: bool


@dataclass(frozen=True)
class TreeDiagram:
    nodes: list[TreeNode]
    edges: list[TreeEdge]
    rows: list[tuple[str, float, float]]  # each row's label ("L3") and its left x and centre y


def tree_diagram(pred: ClassExplanation, rect: tuple[int, int, int, int]) -> TreeDiagram:
    """The diagram of ``pred``'s path inside ``rect`` (left, top, width, height)."""
    left, top, width, height = rect
    path = sorted(pred.path or [], key=lambda n: -n.level)
    inner = [n for n in path if n.child_scores]
    pitch = height / max(1, len(inner) + 1)
    box_h = min(MAX_BOX_H, 0.6 * pitch)
    box_w = (width - LABEL_W - 3 * BOX_GAP - 2) / 4.0  # 2: the right edge stays inside the axes
    x_of = [left + LABEL_W + q * (box_w + BOX_GAP) for q in range(4)]

    def y_of(row: int) -> float:
        return top + (row + 0.5) * pitch - box_h / 2

    root_x = left + LABEL_W + (width - LABEL_W - box_w) / 2
    parent = TreeNode((root_x, y_of(0), root_x + box_w, y_of(0) + box_h), "root", True)
    nodes, edges = [parent], []
    rows = [(f"L{path[0].level}" if path else "", float(left), y_of(0) + box_h / 2)]
    for row, node in enumerate(inner, start=1):
        y0 = y_of(row)
        children = [TreeNode((x_of[q], y0, x_of[q] + box_w, y0 + box_h), text, q == node.chosen_child)
                    for q, text in enumerate(child_shares(node))]
        px = (parent.box[0] + parent.box[2]) / 2
        edges += [TreeEdge((px, parent.box[3]), ((c.box[0] + c.box[2]) / 2, y0), c.chosen) for c in children]
        nodes += children
        rows.append((f"L{node.level - 1}", float(left), y0 + box_h / 2))
        parent = next((c for c in children if c.chosen), children[0])
    return TreeDiagram(nodes, edges, rows)


__all__ = ["TreeNode", "TreeEdge", "TreeDiagram", "tree_diagram"]
