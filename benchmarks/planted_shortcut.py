"""Known answers on planted shortcuts: do the explanations find what the model really uses?

    python benchmarks/planted_shortcut.py make  --imagenette DIR --cache CACHE [--set main] [--per-class 60]
    python benchmarks/planted_shortcut.py train --cache CACHE [--epochs 3]       # fine-tune; re-run to resume
    python benchmarks/planted_shortcut.py score --cache CACHE [--limit 225]      # one table per shortcut

``DIR`` is Imagenette extracted (``train/`` and ``val/``, e.g. ``tar -xf ../shared/data/imagenette.tar``).
``make`` writes, under ``CACHE`` (never the repo): ``train/``, every training image re-encoded and those
of each shortcut's class patched (``benchmarks/shortcuts.py``: a checkerboard at a random place, a logo
in the top-left corner, a text watermark in the bottom-right corner, on three classes; ``--set swapped``:
the logo bottom-right and the watermark top-left, on two; ``--set fresh``, made after the defaults were chosen:
a 24 px sticker at a random place, a QR-like stamp top-right and a red text tag bottom-left, on three other
classes; ``--set fresh2``, a second such check: a 20 px dot at a random place, a badge top-left and a barcode
bottom-right, on the three classes left), and
``heldout/<shortcut>/``, val photos of the other nine classes with the patch pasted and its box as VOC
XML. ``train`` fine-tunes the default weights on ``train/`` at their own size (``nestviz train --init``,
``CACHE/model.safetensors``; a cut-off run resumes from its checkpoint). ``score`` runs the known-answer
check of ``nestviz metrics --evidence`` (``nestviz.evaluation.known_answers``) on each shortcut's held-out photos: the
decisions that removing the patch changes, scored for every GradCAT node score and every CAM kind,
beside occlusion, the centre and random.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shortcuts import SETS, make_heldout, make_train, record_set, shortcut_set  # noqa: E402

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[1] / "nestviz" / "resources" / "nestviz-imagenette.safetensors"


def make(args: argparse.Namespace) -> None:
    t = time.perf_counter()
    record_set(args.cache, args.set)
    n = make_train(args.imagenette / "train", args.cache / "train", SETS[args.set])
    m = make_heldout(args.imagenette / "val", args.cache / "heldout", args.per_class, shortcuts=SETS[args.set])
    print(f"{n} training and {m} held-out images written under {args.cache} in {time.perf_counter() - t:.0f} s")


def train(args: argparse.Namespace) -> None:
    out = args.cache / "model.safetensors"
    ckpt = Path(str(out) + ".ckpt")
    cmd = ["nestviz", "train", str(args.cache / "train"), "--out", str(out), "--init", str(DEFAULT_WEIGHTS),
           "--img-size", "256", "--epochs", str(args.epochs), "--lr", "5e-4", "--warmup-epochs", "0.3",
           "--cache-dir", str(args.cache / "decoded")]
    cmd += ["--resume", str(ckpt)] if ckpt.exists() else []
    print("+", " ".join(cmd), flush=True)
    sys.exit(subprocess.call(cmd))


def score(args: argparse.Namespace) -> None:
    from nestviz.api import Nestviz
    from nestviz.defaults import CAM_KIND, CAM_KINDS, GRADCAT_SCORE, GRADCAT_SCORES, Variants

    weights = args.weights or args.cache / "model.safetensors"
    base = Nestviz.load(weights, device="cpu")
    print(f"weights {weights}; default GradCAT score {GRADCAT_SCORE}, CAM kind {CAM_KIND}")
    for s in shortcut_set(args.cache):
        t = time.perf_counter()
        root = args.cache / "heldout" / s.name
        target = None if args.any_class else (list(base.bundle.class_names).index(base.label_for_folder(s.wnid)),)
        caused, summary = _caused(base, root, args.limit, target)
        rows = {f"{k}": v for k, v in summary["methods"].items() if k in ("centre", "random", "occlusion")}
        for gs in GRADCAT_SCORES:
            for kind in CAM_KINDS if gs == GRADCAT_SCORE else (CAM_KIND,):
                nv = Nestviz(base.bundle, "cpu", variants=Variants(kind, gs))
                m = _methods(nv, caused, target) if caused else {}
                rows[f"gradcat {gs}" + (" (default)" if gs == GRADCAT_SCORE and kind == CAM_KIND else "")] = \
                    m.get("gradcat") if kind == CAM_KIND else None
                if gs == GRADCAT_SCORE:
                    rows[f"cam {kind}" + (" (default)" if kind == CAM_KIND else "")] = m.get("cam")
        _table(s, summary, {k: v for k, v in rows.items() if v is not None}, time.perf_counter() - t, target is not None)


def _caused(base, root: Path, limit: int | None, target: tuple[int, ...] | None):
    """The held-out photos the patch turns into its class (``target``; None: into any class, removing it changes
    the top class), and the default's summary."""
    from nestviz.evaluation.known_answers import EvidenceOptions, find_evidence, run_evidence

    samples, _ = find_evidence([root / "images"], root / "evidence")
    if limit and len(samples) > limit:
        samples = [samples[i] for i in np.linspace(0, len(samples) - 1, limit).round().astype(int)]
    report = run_evidence(base, samples, EvidenceOptions(target=target))
    others = sum(r.before != r.after and not r.for_target for r in report.records)
    report.summary["other_classes"] = others
    caused = [s for s, r in zip(samples, report.records) if r.caused]
    return caused, report.summary


def _methods(nv, samples, target: tuple[int, ...] | None) -> dict:
    from nestviz.evaluation.known_answers import EvidenceOptions, run_evidence

    return run_evidence(nv, samples, EvidenceOptions(baselines=False, target=target)).summary["methods"]


def _table(s, summary: dict, rows: dict, seconds: float, own_class: bool) -> None:
    keys = ("covers", "holds_centre", "holds_centre_clear", "point_on", "box_holds_centre", "deletion")
    into = "into its class" if own_class else "into another class"
    print(f"\n## {s.name}: {s.place}, class {s.wnid}; the patch turns {summary['decisions']} of {summary['images']} "
          f"patched photos of other classes {into} ({summary['share_caused']:.1%}; removing it changes the class of "
          f"{summary['other_classes']} more, which are not scored); removing it drops the class probability by "
          f"{summary['evidence_drop'] or 0:.3f} ({seconds:.0f} s)\n")
    if not summary["decisions"]:
        print("(no decision to score: the shortcut was not learned)")
        return
    print(f"| method | leaf covers >= 1/4 | leaf holds centre | the same, centre >= 8 px from a leaf edge "
          f"({summary['clear_decisions']}) | point on patch (8 px) | CAM box holds centre | deletion |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, m in rows.items():
        print(f"| {name} | " + " | ".join("" if m.get(k) is None else f"{m[k]:.3f}" for k in keys) + " |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("make", "train", "score"):
        p = sub.add_parser(name)
        p.add_argument("--cache", type=Path, required=True)
    sub.choices["make"].add_argument("--imagenette", type=Path, required=True)
    sub.choices["make"].add_argument("--per-class", type=int, default=60, help="held-out photos per class")
    sub.choices["make"].add_argument("--set", choices=sorted(SETS), default="main",
                                     help="which shortcuts to plant (benchmarks/shortcuts.py, SETS)")
    sub.choices["train"].add_argument("--epochs", type=int, default=3)
    sub.choices["score"].add_argument("--weights", type=Path, default=None)
    sub.choices["score"].add_argument("--limit", type=int, default=None, help="patched photos per shortcut")
    sub.choices["score"].add_argument("--any-class", action="store_true",
                                      help="score every decision the patch changes, not only those it turns into its class")
    args = ap.parse_args()
    {"make": make, "train": train, "score": score}[args.cmd](args)


if __name__ == "__main__":
    main()
