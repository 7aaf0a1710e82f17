"""The one place a GradCAT node score's name becomes its function (``nestviz.defaults.GRADCAT_SCORES``).

``paths`` gives the traversal users see (``explain``, ``annotate``), ``tree`` every block's score
for the metrics, which rank all leaves with it. Both the API and ``nestviz metrics`` read them
here, so the variant a model was loaded with is the one measured. The pair a model is loaded with is one
``nestviz.defaults.Variants`` (defined there, not here: folder runs name it before loading and may not import
this package).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from ..defaults import CAM_KIND, SIGNED_SCORES, check_cam_kind, check_gradcat_score
from ..model.nest import Nest
from .ablation import ablation_block_scores, ablation_gradcat, root_ablation, settle_root
from .camtree import cam_gradcat
from .gradcat import GradcatOutput, block_scores, gradcat
from .relevance import relevance_gradcat


def paths(model: Nest, x: Tensor, score: str, *, top_k: int = 4, classes: Sequence[int] | Tensor | None = None,
          sign: float = 1.0, cam_kind: str = CAM_KIND) -> GradcatOutput:
    """GradCAT of ``x`` with node score ``score``; the output keeps what a CAM of ``cam_kind`` needs from the pass.

    ``sign`` -1 flips the first-order scores (gradient, cam, relevance: the pointing game's control); the
    ablation scores have none and refuse it.
    """
    score, cam_kind = check_gradcat_score(score), check_cam_kind(cam_kind)
    if sign != 1 and score not in SIGNED_SCORES:
        named = [repr(s) for s in SIGNED_SCORES]
        raise ValueError(f"sign={sign:g} needs gradcat_score {', '.join(named[:-1])} or {named[-1]}: "
                         f"the {score} score has no sign")
    if score == "ablation":
        return ablation_gradcat(model, x, top_k=top_k, classes=classes)
    if score in ("cam", "root-ablation"):
        out = cam_gradcat(model, x, top_k=top_k, classes=classes, sign=sign, kind=cam_kind)
        return out if score == "cam" else root_ablation(model, out)
    if score in ("relevance", "relevance-shares"):  # the default settles the root's close calls by removal
        out = relevance_gradcat(model, x, top_k=top_k, classes=classes, sign=sign, kind=cam_kind)
        return out if score == "relevance-shares" or sign != 1 else settle_root(model, out)
    return gradcat(model, x, top_k=top_k, classes=classes, sign=sign)


def tree(model: Nest, x: Tensor, classes: Tensor, score: str, out: GradcatOutput) -> list[list[np.ndarray]]:
    """Every block's score for ``classes`` (B,) as a child of its parent: [image][0-based level] (g, g).

    ``out`` is :func:`paths` of the same images and classes (one class each), whose maps the
    first-order scores read; the causal ones run their own passes.
    """
    score = check_gradcat_score(score)
    if score == "ablation":
        return [[t.numpy() for t in per] for per in ablation_block_scores(model, x, classes)]
    assert out.heat is not None, "a first-order GradCAT output keeps its maps"
    return [block_scores([None if h is None else h[0, i] for h in out.heat], model.cfg) for i in range(len(x))]


__all__ = ["paths", "tree"]
