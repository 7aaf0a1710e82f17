"""Known answers for ``nestviz strategies``: is a planted shortcut's decisions one flagged strategy?

    python benchmarks/strategies_known_answers.py --cache CACHE --imagenette DIR [--shortcuts checker,logo]
                                                  [--gradcat-score relevance] [--weights W]

``CACHE`` is ``benchmarks/planted_shortcut.py``'s (``make`` and ``train`` done; ``W`` defaults to its
``model.safetensors``); ``DIR`` is Imagenette extracted.
For each learned shortcut (checkerboard, logo): a folder of the shortcut class's natural val photos and the
patched held-out photos of the other nine classes (links, under ``CACHE/strategies``), run with
``nestviz annotate --no-render`` and the defaults, then ``nestviz strategies``. A decision is patch-caused when
the patched photo gets the shortcut's class and the same photo without the patch does not. Prints, per flagged
strategy of the shortcut's class, its precision and recall against the patch-caused decisions, and any strategy
flagged in another class.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from shortcuts import shortcut_set  # noqa: E402


def folder(cache: Path, imagenette: Path, name: str, wnid: str) -> Path:
    """The run's inputs as links: natural/<wnid> (the class's val photos) and patched/images (the held-out set)."""
    root = cache / "strategies" / name
    for link, target in ((root / "natural" / wnid, imagenette / "val" / wnid),
                         (root / "patched" / "images", cache / "heldout" / name / "images")):
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(target.resolve(), target_is_directory=True)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, required=True)
    ap.add_argument("--imagenette", type=Path, required=True)
    ap.add_argument("--shortcuts", default="checker,logo")
    ap.add_argument("--gradcat-score", default=None, help="the annotate run's GradCAT score (default: the product's)")
    ap.add_argument("--weights", type=Path, default=None, help="the shortcut model (default: CACHE/model.safetensors)")
    args = ap.parse_args()
    import nestviz

    weights = args.weights or args.cache / "model.safetensors"
    nv = nestviz.load(weights, device="cpu")
    for s in (s for s in shortcut_set(args.cache) if s.name in args.shortcuts.split(",")):
        cls = list(nv.bundle.class_names).index(nv.label_for_folder(s.wnid))
        score = ["--gradcat-score", args.gradcat_score] if args.gradcat_score else []
        root = folder(args.cache, args.imagenette, s.name, s.wnid)
        out = args.cache / "strategies" / "-".join([s.name, "run", *score[1:]])
        subprocess.run(["nestviz", "annotate", str(root), "--no-render", "--out", str(out), "--weights", str(weights),
                        "-q", *score], check=True)
        found = json.loads(subprocess.run(["nestviz", "strategies", str(out), "--json"], check=True,
                                          capture_output=True, text=True).stdout)
        records = [r for r in map(json.loads, open(out / "manifest.jsonl")) if r.get("predictions")]
        top = {r["image"]: r["predictions"][0]["class_index"] for r in records}
        chosen = [k for k in top if "/patched/" in k and top[k] == cls]
        clean = [str(args.cache / "heldout" / "clean" / Path(k).parent.name / Path(k).name) for k in chosen]
        caused = {k for k, r in zip(chosen, nv.predict(clean, top_k=1)) if r.predictions[0].class_index != cls}
        print(f"{s.name} ({s.wnid}): {sum(v == cls for v in top.values())} decisions of the class, "
              f"{len(caused)} patch-caused")
        changed = {r["image"] for r in records if r["predictions"][0]["class_index"] == cls
                   and (r.get("evidence") or {}).get("removal", {}).get("after", cls) != cls}
        others = [k for k, v in top.items() if v == cls and k not in caused]
        print(f"  removing the evidence changed {len(changed & caused)} of the {len(caused)} patch-caused decisions, "
              f"{len(changed & set(others))} of the other {len(others)}")
        for c in found["classes"]:
            for st in (st for st in c["strategies"] if st.get("flags")):
                members = set(st["images"])
                if c["class_index"] == cls:
                    hit = len(members & caused)
                    print(f"  flagged {st['id']} {'+'.join(st['flags'])}: {len(members)} images, precision "
                          f"{hit / len(members):.3f}, recall {hit / max(len(caused), 1):.3f}")
                else:
                    print(f"  also flagged, class {c['label']}: {st['id']} {'+'.join(st['flags'])}")


if __name__ == "__main__":
    main()
