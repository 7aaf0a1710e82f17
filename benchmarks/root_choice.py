"""GradCAT's root choice: photos' agreement with occlusion against planted patches' quadrant, rule by rule.

    python benchmarks/root_choice.py IMAGES --boxes BOXES [--unboxed N] [--planted CACHE[:WEIGHTS] ...] [--weights W]

The root picks one of its four children (quadrants). Two references judge the pick:
- photos (``IMAGES`` with ``BOXES``, e.g. Imagenette's val and the val boxes, scored for their true class under
  ``W``, default the product's weights): occlusion, the quadrant whose mean fill drops the class probability most,
  as ``nestviz metrics`` counts root agreement (ties share the credit); also on the clear cases, where occlusion's
  largest drop beats its second by more than ``CLEAR``; ``--unboxed N`` scores N more of ``IMAGES`` without boxes
  the same way (occlusion needs none), photos no choice was made on;
- planted models (``benchmarks/planted_shortcut.py``'s caches, ``WEIGHTS`` default ``CACHE/model.safetensors``):
  on each shortcut's patch-caused decisions (the patched photo gets the shortcut's class, the clean one does not),
  the quadrant holding the patch's centre; summed over every planted decision, and the worst shortcut.
The rules, each from the same held pass (``nestviz.methods.relevance``) unless said:
- ``relevance``: the quadrant's total share of the class score (``relevance_gradcat``'s root);
- ``relevance, close call settled``: the product's default, the same with a close call decided by removing each
  of the two best quadrants (``ablation.settle_root``: the second's share within ``SETTLE_MARGIN`` of the class's
  total of the best's);
- ``positive``, ``positive leaves``: the total of the positive cell shares, of the positive leaf totals;
- ``best leaf``: the quadrant holding the leaf (the 1/16 block) with the largest total; ``total + best leaf``;
- ``reference``: the shares measured from a mean-filled image's features, (A - A(0)) * dY/dA;
- ``AttnLRP``: Achtibat et al. (ICML 2024)'s rules instead of holding the attention: the softmax's gradient kept,
  half of the relevance to each factor of the two attention products;
- ``gradient (the paper's)``: A * dY/dA through the model as it is; the same integrated over ``STEPS`` points
  from zero and from the reference (integrated gradients, Sundararajan et al. 2017: a cheap correction of the
  paper's score, whose shares every aggregation's LayerNorm makes sum to about nothing);
- ``root-ablation``: the quadrant whose removal at the level below the top (its features replaced by a mean-filled
  image's, what occlusion sees there) drops the probability most (four top-level passes: the product's
  ``root-ablation`` root, ``ablation.root_ablation``); the same with zeros as the fill (the product before);
- ``top two + ablation``: relevance's two best quadrants, the ablation between them (two passes).
Also printed: the cost of the relevance pass alone, with the root's children removed and with a close call settled
(the model work on random inputs, as
``benchmarks/cost_ratios.py`` times it but without ``Nestviz.run``'s share of the work).
Scratch rules kept so that what did not work can be measured again (README, Trust).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.defaults import CAM_KIND, EXPLAIN_FIT  # noqa: E402
from nestviz.evaluation.boxes import read_boxes, image_key  # noqa: E402
from nestviz.evaluation.known_answers import to_model  # noqa: E402
from nestviz.evaluation.measure import find_samples  # noqa: E402
from nestviz.methods.cam import class_weights  # noqa: E402
from nestviz.methods.common import explaining  # noqa: E402
from nestviz.methods.gradcat import block_box  # noqa: E402
from nestviz.methods.perturb import occlusion_drops  # noqa: E402
from nestviz.methods.ablation import reference_maps, root_ablation, settle_root  # noqa: E402
from nestviz.methods.relevance import held_gelu, held_layer, held_norm, held_top, relevance_gradcat  # noqa: E402
from shortcuts import shortcut_set  # noqa: E402

BATCH = 25
CLEAR = 0.05  # a photo's occlusion is clear when its largest quadrant drop beats the second by more than this
STEPS = 4  # integration steps of the integrated-gradient rules: a cheap correction's budget


def attn_lrp_layer(layer, x):
    """A top-level transformer layer under AttnLRP's rules: LayerNorm's scale and GELU's gate held as in
    :func:`held_layer`, the softmax's gradient kept, each attention product's relevance split half and half."""
    def half(a, b, op):
        return 0.5 * (op(a.detach(), b) + op(a, b.detach()))
    attn = layer.attn
    q, k, v = attn._qkv(held_norm(layer.norm1, x))
    weights = (half(q, k, lambda a, b: a @ b.transpose(-1, -2)) * q.shape[-1] ** -0.5).softmax(dim=-1)
    update = attn._merge(half(weights, v, lambda a, b: a @ b))
    mid = x + update
    out = mid + layer.mlp.fc2(held_gelu(layer.mlp.fc1(held_norm(layer.norm2, mid))))
    return out, update.detach(), weights.detach(), v.detach()


def gradient(model, below: torch.Tensor, classes: torch.Tensor, layer=held_layer) -> torch.Tensor:
    """d(class score)/d(below) through the top level, in the default CAM kind's class direction: run by ``layer``
    with the held LayerNorms (``nestviz.methods.relevance``), or as the model is (``layer`` None: the paper's)."""
    weight = class_weights(model, CAM_KIND)[0]
    with explaining(model), torch.inference_mode(False), torch.enable_grad():
        b = below.clone().requires_grad_(True)
        if layer is None:
            pooled = model.final_norm(model.levels[-1](b)).mean(dim=(2, 3))
        else:
            pooled = held_norm(model.norm, held_top(model, b, layer)[0].permute(0, 2, 3, 1)).mean(dim=(1, 2))
        return torch.autograd.grad(pooled, b, weight[classes].to(pooled.dtype))[0].detach()


def integrated(model, below: torch.Tensor, classes: torch.Tensor, start: torch.Tensor) -> np.ndarray:
    """(B, H, W) integrated gradients of the model as it is from ``start`` to ``below``, ``STEPS`` midpoints."""
    steps = [(i + 0.5) / STEPS for i in range(STEPS)]
    g = sum(gradient(model, start + a * (below - start), classes, None) for a in steps) / STEPS
    return ((below - start) * g).sum(1).numpy()


def reference_below(model) -> torch.Tensor:
    """The output of the level below the top for a mean-filled image: the map removal fills with
    (``ablation.reference_maps``)."""
    zeros = torch.zeros(1, model.cfg.in_chans, model.cfg.img_size, model.cfg.img_size)
    with explaining(model), torch.no_grad():
        return reference_maps(model, zeros)[model.cfg.num_levels - 2]


def root_children(out) -> np.ndarray:
    """(B, 4) the root's child scores of a GradCAT output's first explained class, row-major."""
    return np.array([row[0][0].child_scores for row in out.paths])


def quadrants(m: np.ndarray) -> np.ndarray:
    """(B, H, W) -> (B, 4): totals of the root's children, row-major."""
    B, H, W = m.shape
    return m.reshape(B, 2, H // 2, 2, W // 2).sum((2, 4)).reshape(B, 4)


def leaf_totals(m: np.ndarray) -> np.ndarray:
    """(B, H, W) -> (B, 2, 2, 2, 2): leaf totals indexed (quadrant row, leaf row, quadrant col, leaf col)."""
    B, H, W = m.shape
    return m.reshape(B, 2, 2, H // 4, 2, 2, W // 4).sum((3, 6))


def rule_scores(model, x: torch.Tensor, classes: torch.Tensor, reference: torch.Tensor) -> dict[str, np.ndarray]:
    """Every rule's (B, 4) quadrant scores (the largest is the pick) for a batch."""
    out = relevance_gradcat(model, x, classes=classes[:, None])  # the product's own root choices
    below = out.below
    total, ablation = root_children(out), root_children(root_ablation(model, out))
    settled = np.eye(4)[[row[0][0].chosen_child for row in settle_root(model, out).paths]]
    zeroed = root_children(root_ablation(model, out, blank=torch.zeros_like(out.below[:1])))
    g = gradient(model, below, classes)
    share = (below * g).sum(1).numpy()
    leaves = leaf_totals(share)
    best = leaves.max(axis=(2, 4)).reshape(-1, 4)
    two = np.argsort(-total, 1)[:, :2]
    pick = two[np.arange(len(two)), np.take_along_axis(ablation, two, 1).argmax(1)]
    return {"relevance": total,
            "relevance, close call settled": settled,
            "positive": quadrants(np.clip(share, 0, None)),
            "positive leaves": np.clip(leaves, 0, None).sum((2, 4)).reshape(-1, 4),
            "best leaf": best,
            "total + best leaf": total + best,
            "reference": quadrants(((below - reference) * g).sum(1).numpy()),
            "AttnLRP": quadrants((below * gradient(model, below, classes, attn_lrp_layer)).sum(1).numpy()),
            "gradient (the paper's)": quadrants((below * gradient(model, below, classes, None)).sum(1).numpy()),
            f"gradient, {STEPS} steps from zero": quadrants(integrated(model, below, classes, torch.zeros_like(below))),
            f"gradient, {STEPS} steps from the reference": quadrants(integrated(model, below, classes,
                                                                                 reference.expand_as(below))),
            "root-ablation": ablation,
            "root-ablation, zeros as the fill (before)": zeroed,
            "top two + ablation": np.eye(4)[pick]}


def batched(fn: Callable[[torch.Tensor, torch.Tensor], dict[str, np.ndarray]], x: torch.Tensor,
            classes: torch.Tensor) -> dict[str, np.ndarray]:
    parts = [fn(x[i:i + BATCH], classes[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def photo_samples(nv: Nestviz, images: Path, boxes: Path, unboxed: int = 0) -> tuple[list, list]:
    """The photos with boxes, and ``unboxed`` others drawn from the rest (seeded), scored the same way: occlusion
    needs no box, so they test the rules on photos no choice was made on."""
    samples, _ = find_samples([images], nv.bundle.class_names, boxes)
    boxed, rest = [s for s in samples if s.boxes], [s for s in samples if not s.boxes]
    pick = np.random.default_rng(0).choice(len(rest), min(unboxed, len(rest)), replace=False) if unboxed else []
    return boxed, [rest[i] for i in sorted(pick)]


def photos(nv: Nestviz, samples: list, reference: torch.Tensor) -> dict[str, str]:
    """Root agreement with occlusion on the photos ``samples``, all and clear, per rule."""
    model, cfg = nv.model, nv.model.cfg
    x = torch.stack([nv.prepare(s.path, EXPLAIN_FIT).tensor for s in samples])
    classes = torch.tensor([s.class_index for s in samples])
    scores = batched(lambda a, c: rule_scores(model, a, c, reference), x, classes)
    level = cfg.num_levels - 2
    quads = [tuple(int(v) for v in block_box(cfg, level, r, c)) for r in range(2) for c in range(2)]
    occ = torch.cat([occlusion_drops(model, x[i:i + BATCH], classes[i:i + BATCH], quads)
                     for i in range(0, len(x), BATCH)]).numpy()
    is_max = occ == occ.max(1, keepdims=True)
    ordered = np.sort(occ, 1)
    clear = ordered[:, -1] - ordered[:, -2] > CLEAR
    print(f"photos: {len(x)} ({clear.sum()} clear)")
    out = {}
    for name, s in scores.items():
        credit = is_max[np.arange(len(x)), s.argmax(1)] / is_max.sum(1)
        out[name] = f"{credit.mean():.3f} / {credit[clear].mean():.3f}"
    return out


def planted(spec: str, images_fit: str = EXPLAIN_FIT) -> tuple[list[str], list[list[str]]]:
    """Per shortcut of a planted cache: how often each rule's root holds the patch's centre (patch-caused decisions)."""
    cache, _, weights = spec.partition(":")
    cache = Path(cache)
    nv = Nestviz.load(Path(weights) if weights else cache / "model.safetensors", device="cpu")
    model = nv.model.eval()
    reference = reference_below(model)
    heads, columns = [], []
    for s in shortcut_set(cache):
        cls = list(nv.bundle.class_names).index(nv.label_for_folder(s.wnid))
        root = cache / "heldout" / s.name
        index, _ = read_boxes(root / "evidence")
        paths = sorted(p for p in (root / "images").rglob("*") if p.is_file())
        preps = [nv.prepare(p, images_fit) for p in paths]
        clean = [nv.prepare(cache / "heldout" / "clean" / p.parent.name / p.name, images_fit) for p in paths]
        with torch.inference_mode():
            top = torch.cat([model(torch.stack([q.tensor for q in preps[i:i + BATCH]])).argmax(1)
                             for i in range(0, len(preps), BATCH)])
            bare = torch.cat([model(torch.stack([q.tensor for q in clean[i:i + BATCH]])).argmax(1)
                              for i in range(0, len(clean), BATCH)])
        caused = [i for i in range(len(paths)) if top[i] == cls and bare[i] != cls]
        if not caused:
            continue
        truth = []
        for i in caused:
            x0, y0, x1, y1 = to_model(preps[i].geometry, index[image_key(paths[i].name)][0].box)
            half = model.cfg.img_size / 2
            truth.append(2 * int((y0 + y1) / 2 >= half) + int((x0 + x1) / 2 >= half))
        x = torch.stack([preps[i].tensor for i in caused])
        scores = batched(lambda a, c: rule_scores(model, a, c, reference), x, torch.full((len(x),), cls))
        heads.append(f"{cache.name} {s.name} ({len(caused)})")
        columns.append([f"{np.mean(v.argmax(1) == np.array(truth)):.3f}" for v in scores.values()])
    return heads, columns


def cost(model, batch: int = 16, repeats: int = 7) -> str:
    """The model work of the relevance pass alone and with the root's children removed, per image, x predict:
    in rounds, each ratio against its own round's predict (as ``cost_ratios.py``), so drifting cores move both."""
    x = torch.randn(batch, 3, model.cfg.img_size, model.cfg.img_size)

    def predict() -> None:
        with explaining(model), torch.inference_mode():
            model(x)
    runs = [predict]
    for k in (1, 4):
        runs += [lambda k=k: relevance_gradcat(model, x, top_k=k),
                 lambda k=k: root_ablation(model, relevance_gradcat(model, x, top_k=k)),
                 lambda k=k: settle_root(model, relevance_gradcat(model, x, top_k=k))]

    def seconds(fn: Callable[[], object]) -> float:
        start = time.perf_counter()
        fn()
        return time.perf_counter() - start
    for fn in runs:  # warm-up
        fn()
    rounds = [[seconds(fn) for fn in runs] for _ in range(repeats)]
    ratio = [statistics.median(r[i] / r[0] for r in rounds) for i in range(len(runs))]
    return (f"cost (model work, batch {batch}, x predict, {repeats} rounds): 1 class {ratio[1]:.2f}x, with the root "
            f"by removal {ratio[2]:.2f}x, with a close call settled {ratio[3]:.2f}x; 4 classes {ratio[4]:.2f}x, with "
            f"the root by removal {ratio[5]:.2f}x, with a close call settled {ratio[6]:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", type=Path)
    ap.add_argument("--boxes", type=Path, required=True)
    ap.add_argument("--weights", type=Path, default=None)
    ap.add_argument("--planted", action="append", default=[], help="CACHE or CACHE:WEIGHTS, repeatable")
    ap.add_argument("--unboxed", type=int, default=0, help="also score this many photos without boxes (seeded)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    nv = Nestviz.load(args.weights, device="cpu")
    nv.model.eval()
    reference = reference_below(nv.model)
    print(cost(nv.model))
    boxed, others = photo_samples(nv, args.images, args.boxes, args.unboxed)
    photo = photos(nv, boxed, reference)
    rules = list(photo)
    heads, columns = ["photos: all / clear"], [list(photo.values())]
    if others:
        heads.append(f"{len(others)} photos without boxes: all / clear")
        columns.append(list(photos(nv, others, reference).values()))
    first = len(heads)  # the planted columns follow the photos'
    for spec in args.planted:
        h, c = planted(spec)
        heads += h
        columns += c
    if len(heads) > first:  # planted columns: summed over every decision, and the worst shortcut
        sizes = np.array([int(h.rsplit("(", 1)[1].rstrip(")")) for h in heads[first:]])
        values = np.array([[float(v) for v in col] for col in columns[first:]])  # (shortcuts, rules)
        heads.insert(first, "planted: every decision / worst set")
        columns.insert(first, [f"{sizes @ values[:, i] / sizes.sum():.3f} / {values[:, i].min():.3f}"
                           for i in range(len(rules))])
    print("| root rule | " + " | ".join(heads) + " |")
    print("| --- |" + " ---: |" * len(heads))
    for i, rule in enumerate(rules):
        print(f"| {rule} | " + " | ".join(col[i] for col in columns) + " |")


if __name__ == "__main__":
    main()
