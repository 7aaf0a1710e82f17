"""Class activation maps (CAM) of a NesT, and the box and peak they localize.

NesT's head is linear on the mean of the normalized top map f, so the logit of class c splits
exactly over top-level positions: CAM_c(x, y) = w_c . f(x, y) + b_c, whose mean is the logit.
A top cell does not see its own square of the image: the max-pools of the aggregations centre
it off its square (``NestConfig.top_shift``, 12 px up-left for the default model), so the maps
are placed where their cells see (:func:`place`) before anything reads them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..defaults import CAM_BOX_REGION, CAM_BOX_REGIONS, CAM_KIND, CAM_KINDS, check_choice
from ..model.nest import Nest
from .common import Box, explaining, select_classes
from .flow import Flow, class_directions, forward_flow, redistribute


@dataclass
class CamOutput:
    """CAMs of a batch: ``maps[i, r]`` is image i's map for class ``classes[i, r]``."""

    logits: Tensor  # (B, K)
    classes: Tensor  # (B, k)
    maps: Tensor  # (B, k, H, W) CAM in logit units, placed where the top cells see (cam_maps)


def class_weights(model: Nest, kind: str = CAM_KIND) -> tuple[Tensor, Tensor | None]:
    """The head's weight (K, C) and bias (K,) behind a ``kind`` map: as they are (``logit``), or minus their
    mean over classes (``contrast``, ``flow``); CAM, GradCAT's cam score and the locality loss all read them here."""
    if kind not in CAM_KINDS:
        raise ValueError(f"unknown CAM kind {kind!r}; known: {', '.join(CAM_KINDS)}")
    head = model.get_classifier()
    weight, bias = head.weight, head.bias
    if kind in ("contrast", "flow"):
        weight = weight - weight.mean(dim=0, keepdim=True)
        bias = None if bias is None else bias - bias.mean()
    return weight, bias


def cam_maps(model: Nest, features: Tensor, classes: Tensor, kind: str = CAM_KIND, flow: Flow | None = None) -> Tensor:
    """(B, k, H, W) maps of ``classes`` (B, k) from ``model.forward_features``'s (B, C, H, W): :func:`cam_cells`
    placed where the cells see (:func:`place`). Their means are the cells' up to the border cells."""
    return place(cam_cells(model, features, classes, kind, flow), model.cfg.top_shift())


def cam_cells(model: Nest, features: Tensor, classes: Tensor, kind: str = CAM_KIND, flow: Flow | None = None
              ) -> Tensor:
    """(B, k, H, W) class evidence of each top cell, on the cells as they lie (before :func:`place`).

    ``logit``: w_c . f + b_c, whose mean is the class logit (Zhou et al.'s CAM). ``contrast``: the
    same minus the mean over all classes, whose mean is the logit minus the mean logit, the part
    of the evidence softmax reads; what every class gains everywhere (the object being an object,
    the photo being a photo) cancels, and what sets the class apart remains. ``flow``: the contrast
    map with each cell's evidence moved back to the cells the top level's attention gathered it from
    (``nestviz.methods.flow``; pass that module's ``flow``), same mean.
    """
    weight, bias = class_weights(model, kind)
    maps = torch.einsum("bchw,bkc->bkhw", features, weight[classes])
    if kind == "flow":
        if flow is None:
            raise ValueError("the flow CAM needs the top level's attention flow: see nestviz.methods.flow.forward_flow")
        maps = redistribute(maps, flow, class_directions(model, weight[classes]))
    if bias is not None:
        maps = maps + bias[classes][..., None, None]
    return maps


def place(maps: Tensor, shift: float, keep_sum: bool = False) -> Tensor:
    """Maps (..., H, W) over the top cells moved to where the cells see: a cell's value sits ``shift`` cells from
    its centre along each axis (``NestConfig.top_shift``), and each cell of the result gets the value found at its
    own centre, interpolated linearly between those places (clamped at the border: a constant map stays constant).
    ``keep_sum``: instead, each value is shared between the two cells around its place, in proportion to the
    distance (cloud-in-cell), so that every sum is kept: GradCAT's cam score splits the class score with it."""
    if shift == 0:
        return maps
    H, W = maps.shape[-2:]
    rows, cols = _placing(H, shift, keep_sum), _placing(W, shift, keep_sum)
    return torch.einsum("ij,...jk,lk->...il", rows.to(maps), maps, cols.to(maps))


@functools.lru_cache(maxsize=16)
def _placing(n: int, shift: float, keep_sum: bool) -> Tensor:
    """The (n, n) matrix of :func:`place` along one axis: row i reads the source cells of result cell i."""
    m = torch.zeros(n, n, dtype=torch.float64)
    for j in range(n):  # keep_sum: cell j's value sits at j + shift; else result cell j reads j - shift
        at = min(max(j + (shift if keep_sum else -shift), 0.0), n - 1.0)
        lo = int(np.floor(at))
        hi, f = min(lo + 1, n - 1), at - lo
        if keep_sum:  # shared between the cells on either side of its place
            m[lo, j] += 1 - f
            m[hi, j] += f
        else:  # interpolated between the places on either side of the centre
            m[j, lo] += 1 - f
            m[j, hi] += f
    return m


def cam_maps_of_pass(model: Nest, x: Tensor, features: Tensor, flow: Flow | None, classes: Tensor,
                     kind: str = CAM_KIND) -> Tensor:
    """:func:`cam_maps` from a pass that already ran on ``x`` (GradCAT's), reusing its ``features`` and ``flow``;
    a ``flow`` map from a pass that kept none (the gradient and ablation scores) runs one forward pass for it."""
    if kind == "flow" and flow is None:
        flow = forward_flow(model, x)[2]
    return cam_maps(model, features, classes, kind, flow)


def cam(model: Nest, x: Tensor, *, top_k: int = 1, classes: Sequence[int] | Tensor | None = None,
        kind: str = CAM_KIND) -> CamOutput:
    """CAMs of ``classes`` (default: each image's ``top_k`` most probable) from one inference forward."""
    with explaining(model), torch.inference_mode():
        features, _, flow = forward_flow(model, x) if kind == "flow" else (model.forward_features(x), None, None)
        logits = model.forward_head(features)
        chosen = select_classes(logits, top_k, classes)
        return CamOutput(logits.float(), chosen, cam_maps(model, features, chosen, kind, flow).float())


def localize(raw: Tensor | np.ndarray, size: int, threshold: float = 0.2) -> tuple[Box, tuple[float, float]]:
    """Box and peak of a map, in pixels of the ``size`` x ``size`` model input.

    The map is upsampled bilinearly and scaled to [0, 1]; the peak is the centre of the maximum's
    pixel, the box [x0, y0, x1, y1] (exclusive x1, y1) bounds the 8-connected region at >=
    ``threshold`` that :func:`box_region` picks (by default the one holding the peak). A constant
    map gives the whole image and its centre.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be between 0 and 1, got {threshold}")
    m = torch.as_tensor(raw).detach().to("cpu", torch.float32)
    if m.ndim != 2:
        raise ValueError(f"a CAM is a 2-D map, got shape {tuple(m.shape)}")
    if not float(m.max()) > float(m.min()):  # constant (its upsampling is, up to rounding)
        return (0.0, 0.0, float(size), float(size)), (size / 2, size / 2)
    up = upsample_bilinear(m.numpy(), size)
    lo, hi = float(up.min()), float(up.max())
    x, y = peak_of(m.numpy(), size)
    at = (min(int(y), size - 1), min(int(x), size - 1))
    mask = (up - lo) / (hi - lo) >= threshold
    mask[at] = True  # at a threshold of 1 only the upsampled maximum passes, which may lie a pixel away
    y0, x0, y1, x1 = box_region(mask, at)
    return (float(x0), float(y0), float(x1), float(y1)), (x, y)


def peak_of(m: np.ndarray, size: int) -> tuple[float, float]:
    """(x, y) in input pixels of the centre of the largest cell of map ``m`` (h, w) laid over ``size`` pixels.

    Not the upsampled map's first maximum: bilinear upsampling with clamped edges is flat from a border
    cell's centre to the border, so that maximum would sit on the image's edge, up to half a cell from
    the cell (on a planted corner logo: 23% of peaks on it instead of 96%, a scratch run; README, Trust)."""
    h, w = m.shape
    i, j = np.unravel_index(int(np.argmax(m)), m.shape)
    return (float(j) + 0.5) * size / w, (float(i) + 0.5) * size / h


def upsample_bilinear(m: np.ndarray, size: int) -> np.ndarray:
    """``F.interpolate(..., size, mode="bilinear", align_corners=False)`` of a small 2-D map, as two 2-tap blends
    in numpy: the same values (to float rounding) without a torch op, which costs milliseconds on a busy CPU, and
    without a BLAS product, which goes multi-threaded from a 256 x 256 output and then waits for busy cores."""
    (r0, r1, rf), (c0, c1, cf) = _taps(size, m.shape[0]), _taps(size, m.shape[1])
    m = m.astype(np.float32)
    rows = m[r0] * (1.0 - rf)[:, None] + m[r1] * rf[:, None]  # (size, w)
    return rows[:, c0] * (1.0 - cf) + rows[:, c1] * cf


@functools.lru_cache(maxsize=32)
def _taps(out: int, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """1-D linear interpolation from n to out samples, half-pixel centres, edges clamped: for each output sample
    the two source indices and the second one's weight."""
    src = np.clip((np.arange(out) + 0.5) * n / out - 0.5, 0.0, None)
    i0 = np.minimum(np.floor(src).astype(int), n - 1)
    i1 = np.minimum(i0 + 1, n - 1)
    return i0, i1, (src - i0).astype(np.float32)


def box_region(mask: np.ndarray, peak: tuple[int, int], rule: str = CAM_BOX_REGION) -> tuple[int, int, int, int]:
    """The CAM box's region, the one place that decides it (``nestviz.defaults.CAM_BOX_REGION``): the
    8-connected True region of ``mask`` holding the ``peak`` pixel (y, x), or with ``rule="largest"`` the
    largest one; as (y0, x0, y1, x1), exclusive ends."""
    return largest_region(mask, containing=peak if check_choice("rule", rule, CAM_BOX_REGIONS) == "peak" else None)


def largest_region(mask: np.ndarray, containing: tuple[int, int] | None = None) -> tuple[int, int, int, int]:
    """Bounding box (y0, x0, y1, x1), exclusive ends, of the largest 8-connected True region of a 2-D mask,
    or of the region holding the pixel ``containing`` (y, x), which must be True.

    Works on horizontal runs: runs in adjacent rows that overlap or touch diagonally are joined
    with a union-find. Ties go to the region met first in raster order.
    """
    h, w = mask.shape
    edges = np.diff(np.pad(mask.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    ys, x0s = np.nonzero(edges == 1)  # run starts, raster order
    _, x1s = np.nonzero(edges == -1)  # run ends (exclusive), same order
    if ys.size == 0:
        raise ValueError("the mask is empty")
    # Run c touches run a of the row above iff a.x0 <= c.x1 and c.x0 <= a.x1 (8-connectivity);
    # with row-major keys those runs a form one contiguous index range [lo, hi).
    stride = w + 2
    lo = np.searchsorted(ys * stride + x1s, (ys - 1) * stride + x0s, side="left")
    hi = np.searchsorted(ys * stride + x0s, (ys - 1) * stride + x1s, side="right")
    parent = list(range(ys.size))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for c in np.nonzero(hi > lo)[0].tolist():
        for a in range(int(lo[c]), int(hi[c])):
            ra, rc = find(a), find(c)
            if ra != rc:
                parent[max(ra, rc)] = min(ra, rc)
    roots = np.array([find(i) for i in range(ys.size)])
    if containing is not None:
        cy, cx = containing
        run = np.flatnonzero((ys == cy) & (x0s <= cx) & (cx < x1s))
        if run.size != 1:
            raise ValueError(f"pixel {containing} is not in the mask")
        best = int(roots[run[0]])
    else:
        best = int(np.argmax(np.bincount(roots, weights=x1s - x0s)))
    sel = roots == best
    return int(ys[sel].min()), int(x0s[sel].min()), int(ys[sel].max()) + 1, int(x1s[sel].max())


__all__ = ["CAM_KINDS", "CamOutput", "class_weights", "cam_maps", "cam_cells", "cam_maps_of_pass", "cam", "place", "localize", "peak_of", "upsample_bilinear", "box_region",
           "largest_region"]
