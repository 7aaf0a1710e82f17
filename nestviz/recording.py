"""What a folder run records beyond the explanation: the evidence of each image's first explained class
(``nestviz.methods.evidence``), heard during the pass ``nestviz.api`` makes anyway, and what removing it does
(``nestviz.methods.removal``, one more forward pass when asked), placed in original pixels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .methods.cam import peak_of
from .methods.evidence import EvidenceVectors, PassTaps, evidence_vectors
from .methods.removal import Region, evidence_regions, remove_evidence
from .results.records import Evidence, ImageResult, Removal


@dataclass
class Found:
    """A batch's evidence (None: the taps heard nothing) and, when checked, the removal: regions per image (input
    pixels), the top class after it and the explained class's probability then."""

    vectors: list[EvidenceVectors] | None
    regions: list[list[Region]] | None = None
    after: Tensor | None = None
    after_probability: Tensor | None = None


def explain_with_evidence(nv: Any, x: Tensor, mode: str, *args: Any, check: bool = False) -> tuple[Any, Found | None]:
    """``nv._explain(x, mode, *args)`` (a ``nestviz.api.Nestviz``) and, unless ``mode`` is predict, the evidence of
    each image's first explained class, read from the activations of that same pass (no extra work); ``check``
    also removes that evidence and asks the model again (one forward pass)."""
    with PassTaps(nv.model) as taps:
        out = nv._explain(x, mode, *args)
    if mode == "predict":
        return out, None
    first = out.classes[:, 0]
    maps = None if out.maps is None else out.maps[:, 0]
    boxes = None if out.paths is None else [row[0][-1].box for row in out.paths]
    found = Found(evidence_vectors(nv.model, taps, first, x.shape[-1], maps, boxes, nv.cam_kind))
    if check and found.vectors is not None:
        size = x.shape[-1]
        window = size // nv.grid_sizes[0]  # a leaf block's side
        found.regions = [evidence_regions(size, window, None if boxes is None else boxes[i],
                                          None if maps is None else peak_of(maps[i].numpy(), size))
                         for i in range(len(x))]
        found.after, found.after_probability = remove_evidence(nv.model, x, first, found.regions, leaves=taps.leaf)
    return out, found


def with_evidence(result: ImageResult, found: Found | None, out: Any, i: int, geometry: Any) -> ImageResult:
    """``result`` (image ``i`` of the batch) with its evidence, its boxes mapped to original pixels by ``geometry``."""
    if found is not None and found.vectors is not None and geometry is not None and result.error is None:
        e, first = found.vectors[i], int(out.classes[i, 0])
        removal = None
        if found.regions is not None:
            removal = Removal([geometry.box_to_original(tuple(float(v) for v in r)) for r in found.regions[i]],
                              int(found.after[i]), float(out.probs[i, first]), float(found.after_probability[i]))
        result.evidence = Evidence(first, e.cells, e.grid, geometry.box_to_original(e.box), e.leaf, e.top, e.extent,
                                   removal)
    return result


__all__ = ["Found", "explain_with_evidence", "with_evidence"]
