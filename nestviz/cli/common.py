"""What every ``nestviz`` command shares: exit codes, one-line failures, option checks, the model loaded with
its setup errors as one line each, the inputs found. The options themselves are declared in ``options.py``.

Heavy modules (torch, matplotlib, rich) are imported inside the functions, never at import time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import typer

from .._text import shown
from ..defaults import CAM_KIND, CAM_KINDS, FITS, GRADCAT_SCORE, GRADCAT_SCORES, Variants, check_choice

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

EXIT_CODES_HELP = (
    "Exit codes: 0 all done; 2 usage or setup error (bad option, no inputs found, invalid weights, "
    "unavailable device; a full disk before anything was written); 3 some inputs failed while the rest were "
    "processed (or the disk filled up); 1 anything unexpected; 130 interrupted."
)


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line to stderr and exit with ``code``: the only way commands report setup errors."""
    typer.echo(f"nestviz: error: {shown(message)}", err=True)
    raise typer.Exit(code)


def check_option(flag: str, value: str, choices: tuple[str, ...]) -> str:
    """``value`` as one of ``choices`` (any case), else a one-line setup error naming ``flag`` and them."""
    try:
        return check_choice(flag, value, choices)
    except ValueError as e:
        fail(str(e))
        raise  # not reached: fail exits


def check_fit_option(fit: str) -> str:
    """``--fit`` as one of the fits, else a setup error."""
    return check_option("--fit", fit, FITS)


def check_variant_options(cam_kind: str = CAM_KIND, gradcat_score: str = GRADCAT_SCORE) -> Variants:
    """``--cam-kind`` and ``--gradcat-score`` as the run's one ``Variants`` (options and model share it), else a
    setup error."""
    return Variants(check_option("--cam-kind", cam_kind, CAM_KINDS),
                    check_option("--gradcat-score", gradcat_score, GRADCAT_SCORES))


def check_out_folder(out: Path, flag: str = "--out") -> None:
    """Fail (exit 2) unless the folder ``out`` can be made and written: before any work, creating nothing."""
    from .._files import check_writable

    try:
        check_writable(out)
    except NotADirectoryError as e:
        fail(f"{flag} {out}: {e}")
    except OSError as e:
        fail(f"{out}: output folder is not writable ({e.strerror or e})")


def note_top_k(top_k: int, num_classes: int) -> None:
    """One line when ``-k`` asks for more classes than the model has."""
    if top_k > num_classes:
        typer.echo(f"nestviz: note: --top-k {top_k} is more than the model's {num_classes} classes; "
                   f"showing all {num_classes}", err=True)


@dataclass(frozen=True)
class ModelChoice:
    """Which model a command loads: ``--weights``, ``--arch``, ``--device``."""

    weights: Optional[Path] = None
    arch: Optional[str] = None
    device: str = "auto"


def load_or_fail(model: ModelChoice, variants: Variants = Variants()):  # noqa: ANN201
    """Load the model (with the explanation variants), turning every setup problem into exit code 2 with
    one line, and each assumption about the checkpoint (which NesT variant) into one warning line."""
    import warnings

    from ..api import Nestviz
    from ..model.bundle import WeightsError, WeightsWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WeightsWarning)
        try:
            nv = Nestviz.load(model.weights, arch=model.arch, device=model.device, variants=variants)
        except (WeightsError, ValueError) as e:
            fail(str(e))
    for w in caught:
        if issubclass(w.category, WeightsWarning):
            typer.echo(f"nestviz: warning: {shown(w.message)}", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    return nv


@contextmanager
def warning_lines() -> Iterator[None]:
    """Inside, each nestviz warning (weights resampled or assumed, a training option that cannot do what it
    says) is printed at once as one ``nestviz: warning:`` line; other warnings as Python shows them."""
    import warnings

    from ..model.bundle import WeightsWarning

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001
        if issubclass(category, WeightsWarning) or category.__module__.startswith("nestviz"):
            typer.echo(f"nestviz: warning: {message}", err=True)
        else:
            shown(message, category, filename, lineno, file, line)

    with warnings.catch_warnings():
        warnings.simplefilter("always", WeightsWarning)
        warnings.showwarning = show
        yield


def find_inputs(inputs: list[Path], exclude: list[Path] | None = None):  # noqa: ANN201
    """Discover image files under ``inputs``; no inputs at all is a usage error."""
    from ..batch.discover import discover

    items, problems = discover(inputs, exclude=exclude or [])
    if not items:
        fail("no input images found" + (f" ({'; '.join(problems)})" if problems else ""))
    for p in problems:
        typer.echo(f"nestviz: error: {shown(p)}", err=True)
    return items, problems


def check_paths(*checks: tuple[Optional[Path], str, bool]) -> None:
    """Fail on the first (path, what, is a folder) that is given but absent."""
    for path, what, folder in checks:
        if path is not None and not (path.is_dir() if folder else path.is_file()):
            fail(f"{path}: {what} not found")
