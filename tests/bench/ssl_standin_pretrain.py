# Self-supervised pretraining of a small ViT on the real sample images (../shared/samples), no labels used: a
# stand-in for real DINO / DINO4Cells weights (none can be downloaded here) whose features carry the images'
# structure, for measurements such as tests/bench/bf16_agreement.py --model.
#
# Objective: contrastive (SimCLR's NT-Xent: two augmented views of a crop attract, the batch's other views repel)
# through a 2-layer projection head. DINO's own objective (teacher centring and sharpening) stayed at the uniform
# solution here: on per-crop standardised nucleus images an untrained ViT gives near-identical outputs, the loss sat
# at ln(K) for 80 steps (tried with this script's data and a DINO head, K = 4096); the negatives of a contrastive
# loss rule that collapse out. The backbone is DINO's own VisionTransformer (facebookresearch/dino 7c446df, through
# tests/fixtures/vit/make_vit_fixtures.py's fixture_vit, so the seeded stream is the one this script always drew;
# DINO names, trunc-normal(0.02) init as DINO's), written as safetensors that protloc loads. Debian python3-torch on the CPU,
# float32, seeded (torch and numpy).
#   /usr/bin/python3 tests/bench/ssl_standin_pretrain.py SHARED_DIR OUT.safetensors \
#       [--dim 192 --depth 6 --heads 3 --steps 300 --batch 32 --threads 2 --seed 0]
import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.join(HERE, "..", "fixtures", "vit")]
from bf16_agreement import sample_fields  # noqa: E402
from make_vit_fixtures import fixture_vit, write_safetensors  # noqa: E402


def region(rng, fields, side_lo, side_hi):
    # a random region of one field at about native scale: (field, y, x, h, w)
    f = int(rng.integers(len(fields)))
    img = fields[f]
    h = min(int(rng.integers(side_lo, side_hi + 1)), img.shape[0])
    w = int(np.clip(h * math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3))), 16, img.shape[1]))
    return f, int(rng.integers(0, img.shape[0] - h + 1)), int(rng.integers(0, img.shape[1] - w + 1)), h, w


def view(rng, fields, reg, out):
    # an augmented view of a region: a random sub-crop of 50-100 % of its area, resized to out x out (bilinear),
    # flipped / rotated, standardised like the evaluation tiles, then brightness / contrast jitter
    f, y, x, h, w = reg
    s = math.sqrt(rng.uniform(0.5, 1.0))
    hh, ww = max(16, int(h * s)), max(16, int(w * s))
    y += int(rng.integers(0, h - hh + 1))
    x += int(rng.integers(0, w - ww + 1))
    t = torch.from_numpy(np.ascontiguousarray(fields[f][y:y + hh, x:x + ww]))[None, None]
    t = F.interpolate(t, size=(out, out), mode="bilinear", align_corners=False)[0]
    t = torch.rot90(t, int(rng.integers(4)), dims=(1, 2))
    if rng.random() < 0.5:
        t = torch.flip(t, dims=(2,))
    t = (t - t.mean()) / (t.std() + 1e-7)
    return t * float(rng.uniform(0.7, 1.3)) + float(rng.normal(0, 0.2))


def nt_xent(z, temperature):
    # SimCLR: rows i and i + B are the two views of one crop
    z = F.normalize(z, dim=1)
    n = z.shape[0] // 2
    sim = z @ z.t() / temperature
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat((torch.arange(n, 2 * n), torch.arange(0, n)))
    return F.cross_entropy(sim, target)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shared")
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=192)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--size", type=int, default=224, help="view size (the evaluation tiles' size)")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=32, help="crops per step (two views each)")
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--temperature", type=float, default=0.2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    fields = [img.astype(np.float32) for _, img in sample_fields(a.shared)]

    bb = fixture_vit(224, 16, 1, a.dim, a.depth, a.heads)
    for m in bb.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
    nn.init.trunc_normal_(bb.pos_embed, std=0.02)
    nn.init.trunc_normal_(bb.cls_token, std=0.02)
    head = nn.Sequential(nn.Linear(a.dim, 512), nn.GELU(), nn.Linear(512, 128))
    params = list(bb.named_parameters()) + [("head." + n, p) for n, p in head.named_parameters()]
    decay = [p for n, p in params if p.ndim > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in params if p.ndim <= 1 or n.endswith(".bias")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}])
    warm = max(1, a.steps // 10)
    t0 = time.time()
    for step in range(a.steps):
        lr = a.lr * (step + 1) / warm if step < warm else \
            1e-6 + 0.5 * (a.lr - 1e-6) * (1 + math.cos(math.pi * (step - warm) / max(1, a.steps - warm)))
        for g in opt.param_groups:
            g["lr"] = lr
        regs = [region(rng, fields, 160, 320) for _ in range(a.batch)]
        x = torch.stack([view(rng, fields, r, a.size) for r in regs] + [view(rng, fields, r, a.size) for r in regs])
        loss = nt_xent(head(bb(x)), a.temperature)
        if not math.isfinite(loss.item()):
            sys.exit(f"loss is {loss.item()} at step {step}")
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_([p for _, p in params], 3.0)
        opt.step()
        if step % 10 == 0 or step == a.steps - 1:
            print(f"step {step}/{a.steps} loss {loss.item():.4f} (chance {math.log(2 * a.batch - 1):.2f}) "
                  f"lr {lr:.2e} {time.time() - t0:.0f} s", flush=True)
    sd = {k: v.detach().numpy() for k, v in bb.state_dict().items()}
    meta = {"heads": str(a.heads), "arch": "vit_custom", "patch_size": "16", "in_chans": "1", "img_size": "224",
            "generator": "tests/bench/ssl_standin_pretrain.py", "seed": str(a.seed), "steps": str(a.steps)}
    tmp = a.out + ".tmp"
    write_safetensors(tmp, sd, meta)
    os.replace(tmp, a.out)
    print(f"wrote {a.out} ({sum(v.size for v in sd.values())} floats)")


if __name__ == "__main__":
    main()
