"""Regenerate tests/fixtures/gallery_run.jsonl: the records a folder run of ``annotate -k 3`` with the default
model (256 px) writes for the example photos, as the gallery tests read them (paths relative to the repository).

    python scripts/make_gallery_fixture.py
"""

from __future__ import annotations

import json
from pathlib import Path

import nestviz

REPO = Path(__file__).resolve().parents[1]
PHOTOS = ["astronaut", "chelsea", "coffee", "mosaic", "rocket"]


def main() -> None:
    nv = nestviz.load()
    lines = []
    for r in nv.annotate([str(REPO / "examples" / f"{p}.jpg") for p in PHOTOS], top_k=3):
        name = Path(r.image).stem
        rec = {**r.to_json(maps=True, with_outputs=False), "image": f"examples/{name}.jpg",
               "outputs": [f"{name}.gradcat.png", f"{name}.cam.png"], "status": "ok", "command": "annotate"}
        lines.append(json.dumps(rec))
    (REPO / "tests" / "fixtures" / "gallery_run.jsonl").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
