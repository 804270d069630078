# Compares a `protloc finetune` output folder with the float64 PyTorch reference deltas of
# tests/fixtures/finetune/<case>/{sgd1,adamw3,sgdx3,bce1,mlp1}.npz (made by make_finetune_fixtures.py).
# Usage: /usr/bin/python3 finetune_compare.py CASE_DIR OUT_DIR sgd1|adamw3|sgdx3|bce1|mlp1|sparse_sgd1|sparse_adamw3
#   The start weights are CASE_DIR/model.safetensors plus the start head (CASE_DIR/mlp_head.safetensors for mlp1,
#   the DINO4Cells MLP head; CASE_DIR/head.safetensors otherwise), the end weights OUT_DIR/backbone.safetensors plus
#   OUT_DIR/head.safetensors; every head tensor NAME is compared as head.NAME, whatever the head's tensors are.
#   sgd1, bce1, mlp1, sparse_sgd1: every tensor's update within 1e-3 of that tensor's largest reference update (max abs)
#   adamw3, sgdx3, sparse_adamw3: every tensor's update within 5e-3 relative norm of the reference update
# Also checks the first logged loss against the reference loss (relative 1e-4). Exit 1 on any failure.
# A 4th argument "bf16" checks a --precision bf16 run against the same float64 reference: every tensor's update within
# 0.15 relative norm, the whole update within 0.1, the loss within 2e-3 (BF16 keeps 8 significant bits per operand).
import json
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        blob = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        assert info["dtype"] == "F32", (path, name, info["dtype"])
        out[name] = np.frombuffer(blob[a:b], dtype="<f4").reshape(info["shape"]).astype(np.float64)
    return out


START_HEAD = {"mlp1": "mlp_head.safetensors"}   # the start head file per reference (default head.safetensors)


def main():
    case, out, which = sys.argv[1], sys.argv[2], sys.argv[3]
    bf16 = len(sys.argv) > 4 and sys.argv[4] == "bf16"
    ref = np.load(f"{case}/{which}.npz")
    start = read_safetensors(f"{case}/model.safetensors")
    start_head = START_HEAD.get(which, "head.safetensors")
    for k, v in read_safetensors(f"{case}/{start_head}").items():
        start["head." + k] = v
    end = read_safetensors(f"{out}/backbone.safetensors")
    for k, v in read_safetensors(f"{out}/head.safetensors").items():
        end["head." + k] = v
    names = [k for k in ref.files if k != "loss"]
    missing = sorted(set(names) ^ set(end)) + sorted(set(names) ^ set(start))
    if missing:
        print("tensor sets differ:", sorted(set(missing)))
        return 1
    bad = 0
    worst = 0.0
    all_got, all_want = [], []
    for k in names:
        want = ref[k].astype(np.float64).reshape(start[k].shape)
        got = end[k] - start[k]
        if bf16:   # every product's inputs rounded to 8 significant bits: relative norm per tensor
            err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
            tol = 0.15
            all_got.append(got.ravel())
            all_want.append(want.ravel())
        elif which in ("sgd1", "bce1", "mlp1", "sparse_sgd1"):
            err = np.abs(got - want).max() / max(np.abs(want).max(), 1e-30)
            tol = 1e-3
        else:
            err = np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30)
            tol = 5e-3
        worst = max(worst, err)
        if not err <= tol:
            print(f"FAIL {k}: error {err:.3e} > {tol:g}")
            bad += 1
    if bf16:
        g, w = np.concatenate(all_got), np.concatenate(all_want)
        whole = np.linalg.norm(g - w) / np.linalg.norm(w)
        print(f"bf16: whole-update relative norm error {whole:.3e} (limit 0.1), worst tensor {worst:.3e} (limit 0.15)")
        if not whole <= 0.1:
            bad += 1
    losses = [json.loads(l)["loss"] for l in open(f"{out}/train.jsonl")]
    ref_loss = ref["loss"].tolist()
    for i, (a, b) in enumerate(zip(losses, ref_loss)):
        if not abs(a - b) <= (2e-3 if bf16 else 1e-4) * abs(b):
            print(f"FAIL loss of step {i}: {a} vs reference {b}")
            bad += 1
    if len(losses) != len(ref_loss):
        print(f"FAIL {len(losses)} logged steps, reference has {len(ref_loss)}")
        bad += 1
    print(f"{which} {case.rstrip('/').split('/')[-1]}: {len(names)} tensors, worst error {worst:.2e}, "
          f"losses {['%.6f' % l for l in losses]}: {'FAIL' if bad else 'ok'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
