#!/usr/bin/env bash
# Checkpoint-loading benchmark: ViT-B/16 random weights as safetensors (F32), torch.save .pth (F32, F16) and a
# DINO-style training checkpoint; protloc's loader (best of 5) next to torch.load in the same run.
# Usage: tests/bench/bench_weights_load.sh BUILD_DIR   (e.g. build-loader)
set -euo pipefail
B=${1:?build dir}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$B/protloc" -q model init --dim 768 --depth 12 --heads 12 --patch 16 --in-chans 3 --seed 1 --out "$T/vitb16.safetensors"
/usr/bin/python3 - "$T" <<'PY'
import json, struct, sys, collections, argparse
import numpy as np, torch
d = sys.argv[1]
b = open(d + "/vitb16.safetensors", "rb").read()
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop("__metadata__")
sd = collections.OrderedDict()
for k, v in h.items():
    s, e = v["data_offsets"]
    sd[k] = torch.from_numpy(np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(v["shape"]).copy())
torch.save(sd, d + "/vitb16.pth")
torch.save(collections.OrderedDict((k, v.half()) for k, v in sd.items()), d + "/vitb16_f16.pth")
teacher = collections.OrderedDict(("backbone." + k, v) for k, v in sd.items())
student = collections.OrderedDict(("module.backbone." + k, v.clone()) for k, v in sd.items())
torch.save({"teacher": teacher, "student": student, "epoch": 1,
            "args": argparse.Namespace(arch="vit_base", patch_size=16)}, d + "/vitb16_dino_ckpt.pth")
PY
echo "== protloc pl_weights_load =="
"$B/bench/bench_weights_load" "$T/vitb16.safetensors" "$T/vitb16.pth" "$T/vitb16_f16.pth" "$T/vitb16_dino_ckpt.pth"
echo "== torch.load (weights_only except for the training checkpoint; best of 5) =="
/usr/bin/python3 - "$T" <<'PY'
import sys, time, torch
torch.set_num_threads(1)
for f in ("vitb16.pth", "vitb16_f16.pth", "vitb16_dino_ckpt.pth"):
    best = 1e9
    for _ in range(5):
        t0 = time.perf_counter(); sd = torch.load(sys.argv[1] + "/" + f, weights_only="dino" not in f)
        if "f16" in f: sd = {k: v.float() for k, v in sd.items()}
        best = min(best, time.perf_counter() - t0); del sd
    print("%-28s best %.4f s" % (f, best))
PY
