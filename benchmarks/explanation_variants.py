"""Variants of CAM and of GradCAT's map, scored as ``nestviz metrics`` scores the defaults, on photos with boxes.

    python benchmarks/explanation_variants.py IMAGES --boxes BOXES [--weights W] [--fit crop]

For each photo's true class, every variant gives a top-level map (or a finer one); each is scored
as a CAM (MaxBoxAccV2 and peak in an object box, ``nestviz.evaluation.trust``'s protocol) and, for top-level
maps, as GradCAT's cam score (the path through the map's exact split: agreement of the root's and
the next level's choice with occlusion, leaf centre in a box). Also printed: the leaf an
occlusion-greedy path reaches and occlusion's single most harmful leaf (how often they are in a
box), and the root's choice when its children are ablated at the top level's input.
The package's kinds are ``logit``, ``contrast`` and ``flow``; the rest are scratch variants kept
here so that what did not work can be measured again (README, Trust).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nestviz.api import Nestviz  # noqa: E402
from nestviz.defaults import EXPLAIN_FIT  # noqa: E402
from nestviz.methods.cam import class_weights, localize  # noqa: E402
from nestviz.methods.camtree import logit_share_heat  # noqa: E402
from nestviz.methods.flow import class_directions, forward_flow, layer_flow, redistribute  # noqa: E402
from nestviz.methods.gradcat import block_box, walk  # noqa: E402
from nestviz.methods.perturb import occlusion_drops  # noqa: E402
from nestviz.evaluation.measure import find_samples  # noqa: E402
from nestviz.model.layers import blockify  # noqa: E402
from nestviz.evaluation.scoring import localization as lo  # noqa: E402
from nestviz.evaluation.trust import EVAL_SIDE, image_map  # noqa: E402

BATCH = 32


def batched(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return torch.cat([fn(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)])


def top_maps(model, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every top-level variant's (B, H, W) map of class ``y`` for a batch."""
    wl, _ = class_weights(model, "logit")
    wc, _ = class_weights(model, "contrast")
    out: dict[str, torch.Tensor] = {}
    f, acts, flow = forward_flow(model, x)
    g = f.shape[-1]
    con = torch.einsum("bchw,bc->bhw", f, wc[y])
    logit_maps = torch.einsum("bchw,kc->bkhw", f, wl)
    probs = model.forward_head(f).softmax(1)
    out["logit (package)"] = logit_maps[torch.arange(len(y)), y]
    out["contrast (package)"] = con
    dirs = class_directions(model, wc[y])[:, None]
    out["flow (package default)"] = redistribute(con[:, None], flow, dirs)[:, 0]
    out["softmax-weighted contrast"] = out["logit (package)"] - torch.einsum("bkhw,bk->bhw", logit_maps, probs)
    for r in (0.5, 0.8):
        out[f"rollout, residual fixed at {r}"] = redistribute(con[:, None], forward_flow(model, x, r)[2], dirs)[:, 0]
    top = model.levels[-1]
    t = blockify(top.pool(acts[-2]).permute(0, 2, 3, 1), top.block_size) + top.pos_embed
    blind = torch.eye(g * g).expand(len(x), g * g, g * g)  # the flow weighed by carried norms, not by the class
    for i, layer in enumerate(top.transformer_encoder):
        blind = layer_flow(layer, t)[1][:, 0] @ blind
        lens = torch.einsum("bnc,bc->bn", model.norm(t[:, 0]), wc[y]).view(-1, g, g)
        out[f"logit lens, top layer {i} input"] = lens
        if i == len(top.transformer_encoder) - 1:
            attn = layer_flow(layer, t, residual=0.0)[1][:, 0]
            out["last layer's attention alone"] = torch.einsum("bij,bi->bj", attn, con.flatten(1)).view(-1, g, g)
        t = layer(t)
    out["flow by carried norms (the release before)"] = torch.einsum("bij,bi->bj", blind, con.flatten(1)).view(-1, g, g)
    flipped = model.forward_features(x.flip(-1))
    out["flip average (2 passes)"] = (con + torch.einsum("bchw,bc->bhw", flipped, wc[y]).flip(-1)) / 2
    out["positive part of contrast"] = con.clamp(min=0)
    return out


def fine_maps(model, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Grad-CAM, LayerCAM and gradient x input of the contrast score at the two finer levels."""
    wc, _ = class_weights(model, "contrast")
    with torch.enable_grad():
        a1 = model.levels[0](model.patch_embed(x)).requires_grad_(True)
        a2 = model.levels[1](a1)
        f = model.final_norm(model.levels[2](a2))
        g1, g2 = torch.autograd.grad(torch.einsum("bchw,bc->b", f, wc[y]).sum(), [a1, a2])
    out = {}
    for name, a, g in (("24x24 level 1", a1.detach(), g1), ("12x12 level 2", a2.detach(), g2)):
        out[f"Grad-CAM, {name}"] = (g.mean((2, 3), keepdim=True) * a).sum(1).clamp(min=0)
        out[f"LayerCAM, {name}"] = (g.clamp(min=0) * a).sum(1).clamp(min=0)
        out[f"gradient x input, {name}"] = (g * a).sum(1)
    return out


def shift_map(model, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Contrast maps of the input shifted by half a cell each way, interleaved into a map twice as fine."""
    wc, _ = class_weights(model, "contrast")
    S, g = x.shape[-1], model.cfg.block_size
    cell = S // g
    half = cell // 2
    padded = F.pad(x, (half, half, half, half), mode="replicate")
    fine = torch.zeros(len(x), 2 * g, 2 * g)
    for dy in (0, 1):
        for dx in (0, 1):
            view = padded[:, :, half - dy * half:half - dy * half + S, half - dx * half:half - dx * half + S]
            m = torch.einsum("bchw,bc->bhw", model.forward_features(view), wc[y])
            up = m.repeat_interleave(2, 1).repeat_interleave(2, 2)  # fine cells 2i, 2i + 1; shifted: 2i - 1, 2i
            if dy:
                up = torch.cat([up[:, 1:], up[:, -1:]], 1)  # the last fine row, unseen by this view, repeats
            if dx:
                up = torch.cat([up[:, :, 1:], up[:, :, -1:]], 2)
            fine += up / 4
    return fine


def score_cam(maps: torch.Tensor, geos, gts) -> tuple[float, float]:
    """MaxBoxAccV2 and the peak's hit rate, as ``nestviz metrics`` scores a CAM."""
    frames, boxes, hits = [], [], []
    for m, geo, gt in zip(maps, geos, gts):
        f = min(1.0, EVAL_SIDE / max(geo.width, geo.height))
        fw, fh = max(1, round(geo.width * f)), max(1, round(geo.height * f))
        boxes.append(gt * np.array([fw / geo.width, fh / geo.height] * 2))
        frames.append(image_map(m.float(), geo, (fw, fh)))
        _, peak = localize(m.float(), geo.size, 0.5)
        hits.append(lo.pointing_hits(np.array([geo.point_to_original(*peak)]), [gt], 15.0)[0])
    return lo.max_box_acc(frames, boxes).value, float(np.mean(hits))


def leaf_hit(box, geo, gt) -> bool:
    centre = geo.point_to_original((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    return bool(lo.pointing_hits(np.array([centre]), [gt], 15.0)[0])


def score_path(maps: torch.Tensor, cfg, drops: list[torch.Tensor], geos, gts) -> tuple[list[float], float]:
    """Agreement with occlusion per level below the root, and the leaf's hit rate, of the cam-score path."""
    share = maps[None].double() / (maps.shape[-1] * maps.shape[-2])
    heat = logit_share_heat(share, cfg.num_levels, cfg.block_size)
    agree = [[] for _ in range(cfg.num_levels - 1)]
    hits = []
    for i, (geo, gt) in enumerate(zip(geos, gts)):
        path = walk([None if h is None else h[0, i] for h in heat], cfg)
        for depth, node in enumerate(path[:-1]):
            d = drops[node.level - 2][i]
            r, c = divmod(node.node, d.shape[-1] // 2)
            kids = d[2 * r:2 * r + 2, 2 * c:2 * c + 2].reshape(4)
            best = kids == kids.max()
            agree[depth].append(float(best[node.chosen_child]) / float(best.sum()))
        hits.append(leaf_hit(path[-1].box, geo, gt))
    return [float(np.mean(a)) for a in agree], float(np.mean(hits))


def occlusion_leaves(cfg, drops: list[torch.Tensor], geos, gts) -> tuple[float, float]:
    """How often the occlusion-greedy path's leaf, and occlusion's most harmful leaf, lie in a box."""
    greedy, single = [], []
    for i, (geo, gt) in enumerate(zip(geos, gts)):
        r = c = 0
        for level in range(cfg.num_levels - 2, -1, -1):
            kids = drops[level][i, 2 * r:2 * r + 2, 2 * c:2 * c + 2].reshape(4)
            pick = int(kids.argmax())
            r, c = 2 * r + pick // 2, 2 * c + pick % 2
        greedy.append(leaf_hit(block_box(cfg, 0, r, c), geo, gt))
        g0 = drops[0].shape[-1]
        rr, cc = divmod(int(drops[0][i].argmax()), g0)
        single.append(leaf_hit(block_box(cfg, 0, rr, cc), geo, gt))
    return float(np.mean(greedy)), float(np.mean(single))


def top_input_ablation(model, x: torch.Tensor, y: torch.Tensor, drops: torch.Tensor) -> dict[str, float]:
    """Root agreement with occlusion when each root child's top-level input cells are zeroed / set to their mean."""
    top = model.levels[-1]
    h = x
    for level in (model.patch_embed, *model.levels[:-1]):
        h = level(h)
    pooled = top.pool(h)
    g = pooled.shape[-1] // 2
    base = model(x).softmax(1)[torch.arange(len(y)), y]
    out = {}
    for fill in ("zero", "mean"):
        scores = []
        for q in range(4):
            r, c = divmod(q, 2)
            p = pooled.clone()
            p[:, :, r * g:(r + 1) * g, c * g:(c + 1) * g] = 0.0 if fill == "zero" else pooled.mean((2, 3), keepdim=True)
            t = top.transformer_encoder(blockify(p.permute(0, 2, 3, 1), top.block_size) + top.pos_embed)
            f = model.final_norm(t[:, 0].reshape(len(x), 2 * g, 2 * g, -1).permute(0, 3, 1, 2))
            scores.append(base - model.forward_head(f).softmax(1)[torch.arange(len(y)), y])
        pick = torch.stack(scores, 1).argmax(1)
        occ = drops.reshape(len(x), 4)
        best = occ == occ.max(1, keepdim=True).values
        out[fill] = float((best[torch.arange(len(x)), pick].float() / best.sum(1)).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("images", nargs="+")
    ap.add_argument("--boxes", required=True)
    ap.add_argument("--weights", default=None)
    ap.add_argument("--fit", default=EXPLAIN_FIT)
    args = ap.parse_args()
    nv = Nestviz.load(args.weights, device="cpu")
    model, cfg = nv.model.eval(), nv.model.cfg
    for p in model.parameters():
        p.requires_grad_(False)
    samples, _ = find_samples(args.images, nv.bundle.class_names, args.boxes)
    samples = [s for s in samples if s.boxes]
    preps = [nv.prepare(s.path, args.fit) for s in samples]
    x = torch.stack([p.tensor for p in preps])
    y = torch.tensor([s.class_index for s in samples])
    geos = [p.geometry for p in preps]
    gts = [np.array([o.scaled_to(g.width, g.height) for o in s.boxes]) for s, g in zip(samples, geos)]
    print(f"{len(samples)} photos with boxes, fit {args.fit}, weights {args.weights or 'the embedded model'}")
    with torch.inference_mode():
        drops = []
        for level in range(cfg.num_levels - 1):
            g = cfg.grid(level)
            boxes = [tuple(int(v) for v in block_box(cfg, level, r, c)) for r in range(g) for c in range(g)]
            drops.append(occlusion_drops(model, x, y, boxes).view(len(x), g, g))
        parts = [top_maps(model, x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]
        tops = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
        shifted = batched(lambda a, b: shift_map(model, a, b), x, y)
        ablation = top_input_ablation(model, x, y, drops[-1])
    parts = [fine_maps(model, x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]
    fines = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
    fines["half-cell shifts (4 passes), 12x12"] = shifted
    print(f"{'map':42s} {'MaxBoxAccV2':>11s} {'peak':>6s} | {'GradCAT root':>12s} {'next':>6s} {'leaf':>6s}")
    for name, maps in tops.items():
        box, peak = score_cam(maps, geos, gts)
        agree, leaf = score_path(maps, cfg, drops, geos, gts)
        print(f"{name:42s} {box:11.3f} {peak:6.3f} | {agree[0]:12.3f} {agree[-1]:6.3f} {leaf:6.3f}")
    for name, maps in fines.items():
        box, peak = score_cam(maps, geos, gts)
        print(f"{name:42s} {box:11.3f} {peak:6.3f} |")
    greedy, single = occlusion_leaves(cfg, drops, geos, gts)
    print(f"occlusion-greedy path's leaf in a box: {greedy:.3f}; occlusion's most harmful leaf: {single:.3f}")
    print(f"root children ablated at the top level's input: agreement {ablation['zero']:.3f} (zeros), "
          f"{ablation['mean']:.3f} (mean cell)")


if __name__ == "__main__":
    main()
