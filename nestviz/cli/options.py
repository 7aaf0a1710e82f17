"""The options the commands share, each declared once as an ``Annotated`` type: its flags and its help.

A command names its parameter's type and default (``weights: Weights = None``); the defaults that are
facts of the package (top-k, threshold, fits, variants) come from ``nestviz.defaults``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

OUT_DIR = Path("nestviz-out")  # folder mode's default --out
BATCH_SIZE = 16  # folder mode's and predict's default --batch-size


def _set_max_pixels(value: Optional[int]) -> Optional[int]:
    if value is not None:  # the environment carries it to the processes that decode and draw
        from ..images import set_max_pixels

        set_max_pixels(value)
    return value


def top_k(help: str) -> typer.models.OptionInfo:  # noqa: A002 - typer's name
    """``--top-k / -k``, whose help says what each command does with the classes."""
    return typer.Option("--top-k", "-k", min=1, help=help)


Inputs = Annotated[list[Path], typer.Argument(help="Image files or folders (searched recursively).")]
Weights = Annotated[Optional[Path], typer.Option(
    "--weights", "-w", help="Weights: a nestviz .safetensors, a timm/Hugging Face checkpoint file or hub folder, or "
    "hf-hub:ORG/NAME[@REV] (downloaded once into the Hugging Face cache). Default: the embedded Imagenette model.")]
Arch = Annotated[Optional[str], typer.Option(
    "--arch", help="Architecture name (nest_tiny, nest_base_jx, ...) when the checkpoint does not say.")]
Device = Annotated[str, typer.Option("--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.")]
Batch = Annotated[int, typer.Option("--batch-size", min=1, help="Images per forward pass.")]
Classes = Annotated[Optional[list[str]], typer.Option(
    "--class", "-c", help="Explain this class (index or label); repeatable. Default: the top-k.")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder; the input tree is mirrored under it. "
                                   "Commands share it: each image gets one current record per command.")]
Format = Annotated[str, typer.Option("--format", help="Figure format: jpg (default), png, svg or pdf.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON Lines on stdout, one object per image.")]
NoRender = Annotated[bool, typer.Option("--no-render", help="Compute and record results, draw no figures or "
                                        "thumbnails.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Redo images already finished by an earlier run.")]
Shard = Annotated[Optional[str], typer.Option(
    "--shard", help="Process only part I of N of the inputs (I/N, 0-based), e.g. 0/4.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar, per-image lines or summary (errors are "
                                     "still printed).")]
Threshold = Annotated[float, typer.Option("--threshold", help="CAM box threshold, as a fraction of the map's range.")]
SaveMaps = Annotated[bool, typer.Option("--save-maps", help="Also write the raw CAMs with their class indices, ranks "
                                        "and labels as .npz (maps: k x h x w).")]
Fit = Annotated[str, typer.Option(
    "--fit", help="How the image becomes the model's square input: crop (timm's eval transform: the centre square), "
    "pad (the whole image, letterboxed with the mean colour) or squash (the whole image, resized).")]
CamKind = Annotated[str, typer.Option(
    "--cam-kind", help="CAM map: logit (the class's evidence, its mean is the logit: Zhou et al.'s CAM), contrast "
    "(minus the mean of all classes' maps: what sets the class apart) or flow (the contrast map traced back through "
    "the top level's attention to the cells its evidence came from; same mean).")]
GradcatScore = Annotated[str, typer.Option(
    "--gradcat-score", help="GradCAT child score: gradient (the paper's: the child's gradient contribution to the "
    "logit), cam (the child's share of the class score in the --cam-kind map's exact split of it; no backward pass), "
    "ablation (the drop in the class probability when the child is removed, its features replaced by a mean-filled "
    "image's as occlusion does; slower), root-ablation (ablation at "
    "the root, cam below: four top-level passes per image), relevance (the child's share of the class score "
    "carried down through the top level with LayerNorm's scale, the attention weights and GELU's gate held: one "
    "backward pass per class; a close call between the root's two best children is settled by removing each: at "
    "most two top-level passes per image) or relevance-shares (the same shares, no close call settled).")]
MaxPixels = Annotated[Optional[int], typer.Option(
    "--max-pixels", min=1, callback=_set_max_pixels, help="Refuse images of more pixels than this as possible "
    "decompression bombs (default: Pillow's 89478485); raise it for a trusted very large photo (also "
    "$NESTVIZ_MAX_PIXELS).")]
Tree = Annotated[bool, typer.Option("--tree", help="Draw a tree diagram of the GradCAT path beside each panel.")]
FullSize = Annotated[bool, typer.Option("--full-size", help="Full-size figures (JPEG quality 90); default: compact "
                                        "(smaller panels, JPEG quality 80).")]
