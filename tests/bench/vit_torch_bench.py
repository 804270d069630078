# DINO's own ViT (vision_transformer.VisionTransformer of facebookresearch/dino commit 7c446df, imported from
# tests/fixtures/dino/ through tests/fixtures/vit/make_vit_fixtures.py's dino_vit) timed on the same safetensors
# weights as bench_vit: images/s per batch size at a fixed thread count. Called by tests/bench/vit_vs_torch.sh and
# tests/bench/engine_vs_torch.sh.
#   /usr/bin/python3 tests/bench/vit_torch_bench.py WEIGHTS.safetensors --threads 2 --batch 1,8,32 --seconds 3
import argparse
import json
import math
import os
import resource
import struct
import sys
import time

import numpy as np
import torch

sys.dont_write_bytecode = True   # no __pycache__ next to the fixture scripts
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "vit"))
from make_vit_fixtures import dino_vit  # noqa: E402  (DINO's VisionTransformer, tests/fixtures/dino/)


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


def build_vit(sd, heads):
    # DINO's VisionTransformer shaped by the stored tensors (DINO names), pos_embed for its stored grid (an input of
    # another size is bicubic-interpolated as DINO does), the weights loaded as they are
    w = sd["patch_embed.proj.weight"]
    dim, chans, patch = w.shape[0], w.shape[1], w.shape[2]
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks.")})
    grid = math.isqrt(sd["pos_embed"].shape[1] - 1)
    model = dino_vit(grid * patch, patch, chans, dim, depth, heads)
    model.load_state_dict({k: v for k, v in sd.items() if not k.startswith("head.")}, strict=True)
    return model


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
    model = build_vit(sd, heads).eval()
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
