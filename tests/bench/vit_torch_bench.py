# Plain-PyTorch DINO ViT (after facebookresearch/dino vision_transformer.py) timed on the same safetensors
# weights as bench_vit: images/s per batch size at a fixed thread count. Called by tests/bench/vit_vs_torch.sh.
#   /usr/bin/python3 tests/bench/vit_torch_bench.py WEIGHTS.safetensors --threads 2 --batch 1,8,32 --seconds 3
import argparse
import json
import math
import resource
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


def load_safetensors(path):
    # parse the header with the standard library + numpy (python safetensors may not be installed);
    # also used by vit_train_torch_bench.py
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    base = 8 + n
    data = np.memmap(path, dtype=np.uint8, mode="r")
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        if info["dtype"] != "F32":
            sys.exit(f"{path}: {name} is {info['dtype']}, only F32 is supported")
        lo, hi = info["data_offsets"]
        out[name] = torch.from_numpy(np.frombuffer(data[base + lo:base + hi], dtype="<f4").reshape(info["shape"]).copy())
    return out, meta


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        a = ((qkv[0] @ qkv[1].transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = x + self.proj((a @ qkv[2]).transpose(1, 2).reshape(B, N, C))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, sd, heads):
        super().__init__()
        w = sd["patch_embed.proj.weight"]
        dim, chans, patch = w.shape[0], w.shape[1], w.shape[2]
        depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
        self.patch = nn.Conv2d(chans, dim, patch, patch)
        self.cls_token = nn.Parameter(sd["cls_token"])
        self.pos_embed = nn.Parameter(sd["pos_embed"])
        self.blocks = nn.ModuleList([Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        with torch.no_grad():
            self.patch.weight.copy_(w)
            self.patch.bias.copy_(sd["patch_embed.proj.bias"])
            self.norm.weight.copy_(sd["norm.weight"])
            self.norm.bias.copy_(sd["norm.bias"])
            for i, b in enumerate(self.blocks):
                p = f"blocks.{i}."
                for dst, src in [(b.norm1, "norm1"), (b.qkv, "attn.qkv"), (b.proj, "attn.proj"), (b.norm2, "norm2"),
                                 (b.fc1, "mlp.fc1"), (b.fc2, "mlp.fc2")]:
                    dst.weight.copy_(sd[p + src + ".weight"])
                    dst.bias.copy_(sd[p + src + ".bias"])

    def forward(self, x):   # input at the stored grid size: no interpolation needed
        t = self.patch(x).flatten(2).transpose(1, 2)
        t = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), t), dim=1) + self.pos_embed
        for b in self.blocks:
            t = b(t)
        return self.norm(t)[:, 0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("weights")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", default="1,8,32")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--label", default="torch")
    ap.add_argument("--check", help="npy input whose embeddings are written to --check-out (cross-check with protloc)")
    ap.add_argument("--check-out")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    sd, meta = load_safetensors(a.weights)
    heads = int(meta.get("heads", sd["pos_embed"].shape[-1] // 64))
    model = ViT(sd, heads).eval()
    if a.check:
        with torch.inference_mode():
            np.save(a.check_out, model(torch.from_numpy(np.load(a.check))).numpy())
        return
    chans = sd["patch_embed.proj.weight"].shape[1]
    for bs in [int(b) for b in a.batch.split(",")]:
        x = torch.randn(bs, chans, a.size, a.size)
        with torch.inference_mode():
            model(x)   # warm up
            iters, t0 = 0, time.perf_counter()
            while True:
                model(x)
                iters += 1
                t1 = time.perf_counter()
                if t1 - t0 >= a.seconds and iters >= 2:
                    break
        ips = iters * bs / (t1 - t0)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{a.label}\t{a.threads}\t{bs}\t{ips:.4f}\t{1000 / ips:.2f}\t{rss:.1f}", flush=True)


if __name__ == "__main__":
    main()
