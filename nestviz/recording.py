"""What a folder run records beyond the explanation: the evidence of each image's first explained class
(``nestviz.methods.evidence``), heard during the pass ``nestviz.api`` makes anyway, placed in original pixels."""

from __future__ import annotations

from typing import Any

from .methods.evidence import EvidenceVectors, PassTaps, evidence_vectors
from .results.records import Evidence, ImageResult


def explain_with_evidence(nv: Any, x: Any, mode: str, *args: Any) -> tuple[Any, list[EvidenceVectors] | None]:
    """``nv._explain(x, mode, *args)`` (a ``nestviz.api.Nestviz``) and, unless ``mode`` is predict, the evidence of
    each image's first explained class, read from the activations of that same pass (no extra work)."""
    with PassTaps(nv.model) as taps:
        out = nv._explain(x, mode, *args)
    if mode == "predict":
        return out, None
    maps = None if out.maps is None else out.maps[:, 0]
    boxes = None if out.paths is None else [row[0][-1].box for row in out.paths]
    return out, evidence_vectors(nv.model, taps, out.classes[:, 0], x.shape[-1], maps, boxes, nv.cam_kind)


def with_evidence(result: ImageResult, found: list[EvidenceVectors] | None, out: Any, i: int,
                  geometry: Any) -> ImageResult:
    """``result`` (image ``i`` of the batch) with its evidence, its box mapped to original pixels by ``geometry``."""
    if found is not None and geometry is not None and result.error is None:
        e = found[i]
        result.evidence = Evidence(int(out.classes[i, 0]), e.cells, e.grid, geometry.box_to_original(e.box), e.leaf,
                                   e.top, e.extent)
    return result


__all__ = ["explain_with_evidence", "with_evidence"]
