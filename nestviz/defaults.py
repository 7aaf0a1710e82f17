"""Defaults the CLI and the API share, importable without numpy or torch (``nestviz --help`` reads them).

``fit``: how an image of any shape becomes the model's square input (see ``nestviz.preprocess``):
``crop`` is timm's eval transform (resize the shorter side, centre-crop: the borders of a
non-square photo are not seen), ``pad`` letterboxes the whole image with the mean colour,
``squash`` resizes the whole image to the square (its aspect is not kept).

``cam_kind``: ``logit`` is Zhou et al.'s CAM (its mean is the class logit), ``contrast`` the same
minus the mean of all classes' maps, ``flow`` the contrast map traced back through the top
level's attention to the cells its evidence came from (see ``nestviz.methods.cam.cam_maps``). ``gradcat_score``:
``gradient`` is the paper's score (a child's gradient contribution), ``cam`` the child's share of
the class logit in the CAM's exact split of it (see ``nestviz.methods.camtree``), ``ablation`` the
drop in the class probability when the child is removed (see ``nestviz.methods.ablation``),
``root-ablation`` the ablation score at the root and the cam score below it, ``relevance`` the child's share of the
class score carried through the top level with LayerNorm's scale, the attention and GELU's gate held (see
``nestviz.methods.relevance``), a close call at the root decided by removing its two best children
(``SETTLE_MARGIN``, ``nestviz.methods.ablation.settle_root``), ``relevance-shares`` the same shares with no
close call settled (no removal pass: on timm's nest_tiny with random weights, whose top level is most of the
model, explain --top-k 4 2.8x predict against 3.2-3.5x).
"""

from __future__ import annotations

from dataclasses import dataclass

FITS = ("crop", "pad", "squash")
EXPLAIN_FIT = "crop"  # the one default of explain / cam / annotate (CLI and API)
PREDICT_FIT = "crop"  # predict and evaluate: timm's eval transform, the one accuracy is measured with
TOP_K = {"predict": 5, "explain": 4, "cam": 1, "annotate": 4}  # classes shown / explained by default
# The CAM box: the 8-connected region above THRESHOLD that holds the peak ("peak"), so that box and peak tell one
# story, or the largest such region ("largest", before issue 22; MaxBoxAccV2 scores every region either way).
# Only methods.cam.box_region reads it; measure both with nestviz metrics (GT-known loc, box covers view).
CAM_BOX_REGIONS = ("peak", "largest")
CAM_BOX_REGION = "peak"
THRESHOLD = 0.25  # CAM box threshold, a fraction of the map's range: chosen on the val boxes for the flow map (README, Trust)
# The explanation variants: the one default of explain / cam / annotate / metrics (CLI) and of the API
# (nestviz.load, the one-call helpers, nestviz.metrics). Everything reads them from here.
CAM_KINDS = ("flow", "contrast", "logit")
CAM_KIND = "flow"  # chosen by nestviz metrics on the val boxes (README, Trust): boxes, peak and GradCAT leaf
GRADCAT_SCORES = ("gradient", "cam", "root-ablation", "ablation", "relevance", "relevance-shares")
SIGNED_SCORES = ("gradient", "cam", "relevance", "relevance-shares")  # the first-order scores, which the pointing game's control may flip
# the scores whose node shares nestviz strategies' single_spot flag reads (a block's score over the root's: the part
# of the class score it holds), on which its threshold was set. The cam score splits the root's score too, but its
# shares are the flow CAM's, which spreads a patch's evidence over its neighbours (a planted sticker's strategy 0.19,
# photos' 0.09-0.12: README, strategies), so its runs leave the share unknown
SPOT_SCORES = ("relevance", "relevance-shares")
# chosen by nestviz metrics --evidence and nestviz strategies on planted shortcuts (README, Trust): on three
# models it finds every patch at least as often as root-ablation (a watermark 0.909 vs 0.773; its strategy's
# recall 0.898 vs 0.755), its leaf lands in a photo's object box more often (0.933 vs 0.880) and it costs less
# (1.5x / 2.5x predict for one / four classes; nest_tiny 2.4x vs 3.5x). Re-checked against root-ablation filled
# with a mean-filled image's features, on all 1,552 patch-caused decisions of six planted models: its leaf covers
# the patch in 0.959 and holds its centre in 0.913, against 0.952 / 0.900. Root-ablation agrees with occlusion at
# the root more often (0.747 vs 0.667 on the boxed photos, 0.766 vs 0.642 on 800 without boxes) and finds timm's
# layout's corner patches more often: the measures it wins
GRADCAT_SCORE = "relevance"
# The relevance root's close call: where the second best child's share is within this fraction of the class's total
# of the best one's, removing each of the two decides (methods.ablation.settle_root; one close call per image, at
# most two top-level passes). 0.1 on the 225 boxed val photos: the root agrees with occlusion 0.720 (relevance alone
# 0.667; 0.05 gives 0.698, 0.2 0.738), 0.705 on 800 val photos not used to choose it (0.642), the leaf in a box
# 0.911 (0.933); on the main planted model the leaf holds the checkerboard's centre in 0.876 (0.888), the logo and
# the watermark the same, and at 0.2 it lost a watermark decision in 27 (README, Trust). 0 turns it off
SETTLE_MARGIN = 0.1


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` if it is one of ``choices`` (any case), else a one-line ValueError naming them."""
    chosen = str(value).lower()
    if chosen not in choices:
        raise ValueError(f"{name} must be {', '.join(choices[:-1])} or {choices[-1]}, got {value!r}")
    return chosen


def check_fit(fit: str) -> str:
    """``fit`` if it is one of :data:`FITS` (any case), else ValueError naming them."""
    return check_choice("fit", fit, FITS)


def check_cam_kind(kind: str) -> str:
    """``kind`` if it is one of :data:`CAM_KINDS` (any case), else ValueError naming them."""
    return check_choice("cam_kind", kind, CAM_KINDS)


def check_gradcat_score(score: str) -> str:
    """``score`` if it is one of :data:`GRADCAT_SCORES` (any case), else ValueError naming them."""
    return check_choice("gradcat_score", score, GRADCAT_SCORES)


@dataclass(frozen=True)
class Variants:
    """The explanation variants, decided once: a ``Nestviz`` holds one (``nv.variants``), a folder run's options
    and the metrics' options hold the same object. Values are checked and spelled as above (any case in)."""

    cam_kind: str = CAM_KIND
    gradcat_score: str = GRADCAT_SCORE

    def __post_init__(self) -> None:
        object.__setattr__(self, "cam_kind", check_cam_kind(self.cam_kind))
        object.__setattr__(self, "gradcat_score", check_gradcat_score(self.gradcat_score))


__all__ = ["FITS", "EXPLAIN_FIT", "PREDICT_FIT", "TOP_K", "THRESHOLD", "CAM_BOX_REGIONS", "CAM_BOX_REGION", "CAM_KINDS", "CAM_KIND", "GRADCAT_SCORES", "SIGNED_SCORES", "SPOT_SCORES",
           "GRADCAT_SCORE", "SETTLE_MARGIN", "check_choice", "check_fit", "check_cam_kind", "check_gradcat_score", "Variants"]
