# BF16-vs-FP32 agreement on the real sample images (../shared/samples): tiles of the 7 OpenCell fields of view and
# the HPA field, standardised per tile, embedded by `protloc embed` at --precision fp32 and bf16 with the same
# weights; prints the per-row cosine between the two and protloc's kNN macro F1 for every k (leave-one-out, label =
# the field a tile comes from, so neighbourhoods carry real image structure) for both, side by side, with FP32 on the
# other backend (OpenBLAS) for scale.
#   /usr/bin/python3 tests/bench/bf16_agreement.py PROTLOC SHARED_DIR WORK_DIR [--dim 384 --depth 12 --heads 6]
#   ... [--model W.safetensors]   a 1-channel model of your own (e.g. tests/bench/ssl_standin_pretrain.py's, or a
#                                 fine-tuned one) instead of an untrained one
import argparse
import csv
import glob
import os
import subprocess
import sys

import numpy as np
import tifffile
from PIL import Image


def sample_fields(shared):
    # the real fields under SHARED/samples as (name, image): the 7 OpenCell Hoechst FOVs, then the HPA protein FOV
    # (tests/bench/ssl_standin_pretrain.py trains on the same fields)
    fields = [(os.path.basename(p).split("_RAW")[0], tifffile.imread(p))
              for p in sorted(glob.glob(f"{shared}/samples/opencell_hoechst_proj/*.tif"))]
    hpa = f"{shared}/samples/hpa_1000_A12_2/1000_A12_2_green.png"
    if os.path.exists(hpa):
        fields.append(("hpa_1000_A12_2", np.asarray(Image.open(hpa))))
    if not fields:
        sys.exit("no sample images found under " + shared)
    return fields


def tiles_of(img, size, stride):
    img = img.astype(np.float64)
    out = []
    for y in range(0, img.shape[0] - size + 1, stride):
        for x in range(0, img.shape[1] - size + 1, stride):
            t = img[y:y + size, x:x + size]
            out.append((t - t.mean()) / (t.std() + 1e-7))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("protloc")
    ap.add_argument("shared")
    ap.add_argument("work")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--stride", type=int, default=112)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", help="1-input-channel weights to use instead of a fresh untrained ViT")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    x, ids, labels = [], [], []
    for name, img in sample_fields(a.shared):
        stride = 2 * a.stride if name.startswith("hpa") else a.stride   # HPA pixels are 2.6x smaller
        for i, t in enumerate(tiles_of(img, a.size, stride)):
            x.append(t), ids.append(f"{name}_t{i}"), labels.append(name)
    X = np.stack(x)[:, None].astype(np.float32)   # (N, 1, size, size): one channel (Hoechst / protein)
    np.save(f"{a.work}/x.npy", X)
    with open(f"{a.work}/meta.tsv", "w") as f:
        f.write("id\tlabel\n")
        for i, l in zip(ids, labels):
            f.write(f"{i}\t{l}\n")
    model = a.model or f"{a.work}/model.safetensors"
    if not a.model:
        subprocess.run([a.protloc, "-q", "model", "init", "--dim", str(a.dim), "--depth", str(a.depth), "--heads",
                        str(a.heads), "--patch", "16", "--in-chans", "1", "--seed", "7", "--out", model], check=True)
    # fp32 / bf16 on oneDNN (the BF16 backend), and fp32 on OpenBLAS: how far F1 moves when the FP32 embeddings move
    # by only ~1e-6 (the other backend's rounding) shows how fragile this set's neighbourhoods are
    runs = {"fp32": ("onednn", "fp32"), "bf16": ("onednn", "bf16"), "fp32-openblas": ("openblas", "fp32")}
    f1, emb = {}, {}
    for name, (kernels, prec) in runs.items():
        subprocess.run([a.protloc, "-q", "embed", "--model", model, "--input", f"{a.work}/x.npy", "--output",
                        f"{a.work}/y_{name}.npy", "--kernels", kernels, "--precision", prec, "--threads",
                        str(a.threads), "--batch", "8"], check=True)
        emb[name] = np.load(f"{a.work}/y_{name}.npy")
        subprocess.run([a.protloc, "-q", "knn", "--features", f"{a.work}/y_{name}.npy", "--meta", f"{a.work}/meta.tsv",
                        "--protocol", "loo", "-k", "100", "--csv", f"{a.work}/f1_{name}.csv",
                        "--neighbours", f"{a.work}/nb_{name}.npy", "--threads",
                        str(a.threads)], check=True, stdout=subprocess.DEVNULL)
        with open(f"{a.work}/f1_{name}.csv") as f:
            rows = list(csv.DictReader(f))
        key = next(k for k in rows[0] if "f1" in k.lower())
        f1[name] = {int(r["k"]): float(r[key]) for r in rows}
    a32, a16 = emb["fp32"].astype(np.float64), emb["bf16"].astype(np.float64)
    cos = (a32 * a16).sum(1) / np.linalg.norm(a32, axis=1) / np.linalg.norm(a16, axis=1)
    ks = sorted(f1["fp32"])
    diff = [abs(f1["bf16"][k] - f1["fp32"][k]) for k in ks]
    floor = [abs(f1["fp32-openblas"][k] - f1["fp32"][k]) for k in ks]
    # protloc's neighbour lists (leave-one-out, top 100) and their cosines
    def neighbours(name):
        u = emb[name].astype(np.float64)
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        nb = np.load(f"{a.work}/nb_{name}.npy")
        return nb, np.einsum("nd,nkd->nk", u, u[nb])
    # predictions that change between fp32 and bf16 at each k (DINO's weighted vote, T = 0.07): with 529 queries one
    # changed prediction moves macro F1 by about 0.002
    lab = np.unique(labels, return_inverse=True)[1]
    def predictions(nb, sim):
        w = np.exp(sim / 0.07)
        votes = np.zeros((nb.shape[0], lab.max() + 1))
        out = []
        for k in range(nb.shape[1]):
            np.add.at(votes, (np.arange(nb.shape[0]), lab[nb[:, k]]), w[:, k])
            out.append(votes.argmax(1))
        return np.stack(out)
    nb32, sim32 = neighbours("fp32")
    changed = (predictions(nb32, sim32) != predictions(*neighbours("bf16"))).sum(1)
    what = f"model {a.model}" if a.model else f"untrained ViT dim {a.dim}, depth {a.depth}, heads {a.heads}, patch 16"
    print(f"# {X.shape[0]} tiles of {len(set(labels))} real fields (7 OpenCell Hoechst FOVs, 1 HPA protein FOV), "
          f"{a.size}x{a.size}, stride {a.stride}; {what}")
    print(f"per-row cosine(bf16, fp32): min {cos.min():.6f}  mean {cos.mean():.6f}")
    print(f"median cosine gap between a tile's 1st and 2nd neighbour (fp32): {np.median(sim32[:, 0] - sim32[:, 1]):.5f}")
    print(f"kNN (loo, DINO weighted vote) macro F1 over k = 1..{ks[-1]}: max |bf16 - fp32| = {max(diff):.4f} "
          f"(at k = {ks[int(np.argmax(diff))]}); for scale, max |fp32 openblas - fp32 onednn| = {max(floor):.4f}")
    print(f"predictions changed by bf16 (of {X.shape[0]}): max {changed.max()} (k = {int(np.argmax(changed)) + 1}), "
          f"mean over k {changed.mean():.1f}")
    print("k\tF1 fp32\tF1 bf16\tF1 fp32 openblas")
    for k in ks:
        if k in (1, 2, 5, 10, 20, 50, 100) or k == ks[-1]:
            print(f"{k}\t{f1['fp32'][k]:.4f}\t{f1['bf16'][k]:.4f}\t{f1['fp32-openblas'][k]:.4f}")
    ok = cos.min() >= 0.999 and max(diff) <= 0.005
    print("within the targets (cosine >= 0.999, |dF1| <= 0.005 at every k):", "yes" if ok else "NO")


if __name__ == "__main__":
    main()
