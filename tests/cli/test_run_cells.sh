#!/usr/bin/env bash
# protloc run --level cells follows the documented rules (docs/stages.md "Cells"): the cell embeddings equal
# `protloc embed` on crops made independently with numpy/torch from the label masks (centroids, shift border,
# physical rescaling to the card's pixel size, per-crop standardisation); a float or oversized mask is a clear
# item failure; the unknown-pixel-size rule; --cell-labels stores a class per cell and exactly the labelled cells
# score in knn and probe; bad cell-label tables name file:line:column.
source "$(dirname "$0")/lib.sh"
D="$TEST_TMP/ds"
PER=6
[ "${PROTLOC_SANITIZE:-0}" = 1 ] && PER=4
expect_status 0 "$PROTLOC" -q synth --kind hpa --classes 3 --per-class "$PER" --seed 3 --size 128 --masks --out "$D"
expect_status 0 "$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 4 --seed 5 --jitter 0.1 \
  --out "$D/model.safetensors"
# HPA slot order; no pixel size: the images are taken as they are (the synthetic fields are at 0.32 um/px)
printf '{"name": "c0", "weights": "model.safetensors", "input_slots": ["microtubules", "protein", "nucleus", "er"]}\n' \
  >"$D/card.json"
# the same model at 0.08 um/px: every field is rescaled x4 (bilinear) before the cells are cut
printf '{"name": "c8", "weights": "model.safetensors", "input_slots": ["microtubules", "protein", "nucleus", "er"], "pixel_size_um": 0.08}\n' \
  >"$D/card08.json"

expect_status 0 "$PROTLOC" run --manifest "$D/manifest.tsv" --model "$D/card.json" --level cells --crop 32 \
  --no-progress --threads 1 --out "$D/native.h5"
expect_status 0 mpirun --oversubscribe -np 2 "$PROTLOC" run --manifest "$D/manifest.tsv" --model "$D/card08.json" \
  --level cells --crop 96 --no-progress --out "$D/x4.h5"

# Independent reference: crops by the documented rules, embedded with `protloc embed`.
check_cells() {   # STORE FACTOR SIDE
  $PY - "$D" "$1" "$2" "$3" <<'PYEOF'
import csv, os, subprocess, sys
import h5py, numpy as np, torch
from PIL import Image
d, store, factor, S = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
rows = [r for r in csv.reader((l for l in open(f"{d}/manifest.tsv") if not l.startswith("#")), delimiter="\t")]
hdr, rows = rows[0], rows[1:]
col = {k: i for i, k in enumerate(hdr)}
crops, want = [], []
for r in rows:
    planes = [np.array(Image.open(os.path.join(d, r[col[s]])), np.float64) for s in ("microtubules", "protein", "nucleus", "er")]
    mask = np.array(Image.open(os.path.join(d, r[col["mask"]]))).astype(np.int64)
    H, W = mask.shape
    if factor != 1:
        Hs, Ws = int(round(H * factor)), int(round(W * factor))
        t = torch.from_numpy(np.stack(planes))[None]
        planes = list(torch.nn.functional.interpolate(t, size=(Hs, Ws), mode="bilinear", align_corners=False)[0].numpy())
    else:
        Hs, Ws = H, W
    for lab in range(1, mask.max() + 1):
        ys, xs = np.nonzero(mask == lab)
        if len(ys) < 50:
            continue
        cy, cx = np.float32(ys.mean()), np.float32(xs.mean())
        area = len(ys)
        if factor != 1:
            cy = np.float32((np.float64(cy) + 0.5) * Hs / H - 0.5)
            cx = np.float32((np.float64(cx) + 0.5) * Ws / W - 0.5)
            area = int(np.floor(area * (Hs / H) * (Ws / W) + 0.5))
        y0 = int(np.floor(cy + np.float32(0.5))) - S // 2
        x0 = int(np.floor(cx + np.float32(0.5))) - S // 2
        y0, x0 = min(max(y0, 0), Hs - S), min(max(x0, 0), Ws - S)
        crop = np.stack([p[y0:y0 + S, x0:x0 + S] for p in planes])
        crop = np.stack([(c - c.mean()) / (c.std() + 1e-7) for c in crop])
        crops.append(crop.astype(np.float32))
        want.append((cy, cx, area, lab))
np.save(f"{d}/crops.npy", np.array(crops))
subprocess.run([os.environ["PROTLOC"], "-q", "embed", "--model", f"{d}/model.safetensors", "--input", f"{d}/crops.npy",
                "--output", f"{d}/crops_y.npy"], check=True)
y = np.load(f"{d}/crops_y.npy")
f = h5py.File(store, "r")
emb = f["cells/embedding"][()]
assert emb.shape == y.shape, (emb.shape, y.shape)
err = (np.abs(emb - y) / np.maximum(1, np.abs(y))).max()
assert err < 1e-4, err
w = np.array(want, dtype=np.float64)
assert np.array_equal(f["cells/cy"][()], w[:, 0].astype(np.float32)), "cy"
assert np.array_equal(f["cells/cx"][()], w[:, 1].astype(np.float32)), "cx"
assert np.array_equal(f["cells/area"][()], w[:, 2].astype(np.int64)), "area"
assert np.array_equal(f["cells/mask_label"][()], w[:, 3].astype(np.int32)), "mask_label"
print(f"{len(y)} cells, max relative error {err:.2e}")
PYEOF
}
check_cells "$D/native.h5" 1 32 && pass "cells = protloc embed on numpy crops (documented rules, no rescaling)" \
  || fail "cells differ from the documented rules (native)"
check_cells "$D/x4.h5" 4 96 && pass "cells = protloc embed on crops rescaled x4 to the card's pixel size (2 ranks)" \
  || fail "cells differ from the documented rules (rescaled)"

# Masks that break the rules: floating-point samples, a mask larger than the image.
$PY - "$D" <<'PYEOF' || fail "writing bad masks"
import csv, os, sys
import numpy as np, tifffile
from PIL import Image
d = sys.argv[1]
lines = [l for l in open(f"{d}/manifest.tsv")]
body = [l for l in lines if not l.startswith("#")]
hdr = body[0].rstrip("\n").split("\t")
first = body[1].rstrip("\n").split("\t")
m = np.array(Image.open(os.path.join(d, first[hdr.index("mask")])))
tifffile.imwrite(f"{d}/float_mask.tif", m.astype(np.float32))
big = np.zeros((m.shape[0] + 2, m.shape[1] + 2), np.uint16)
big[:m.shape[0], :m.shape[1]] = m
Image.fromarray(big).save(f"{d}/big_mask.png")
with open(f"{d}/bad.tsv", "w") as f:
    f.write(body[0])
    for name, mask in (("floatmask", "float_mask.tif"), ("bigmask", "big_mask.png")):
        r = list(first)
        r[hdr.index("id")], r[hdr.index("mask")] = name, mask
        f.write("\t".join(r) + "\n")
    f.write(body[2])
PYEOF
expect_status 3 "$PROTLOC" run --manifest "$D/bad.tsv" --model "$D/card.json" --level cells --crop 32 --no-progress \
  --out "$D/bad.h5"
$PY - "$D/bad.h5" <<'PYEOF' && pass "float and oversized masks: item failures at 'mask' naming the file" \
  || fail "bad masks: $(cat "$TEST_TMP/last.err")"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
fails = {i.decode(): (s.decode(), m.decode()) for i, s, m in zip(f["failures/id"][()], f["failures/stage"][()], f["failures/message"][()])}
assert set(fails) == {"floatmask", "bigmask"}, fails
assert fails["floatmask"][0] == "mask" and "float_mask.tif" in fails["floatmask"][1] and "floating-point" in fails["floatmask"][1], fails
assert fails["bigmask"][0] == "mask" and "big_mask.png" in fails["bigmask"][1] and "130 x 130 but the image is 128 x 128" in fails["bigmask"][1], fails
assert len(f["items/id"]) == 1
PYEOF

# One pixel-size rule for every level: without a mask the built-in segmentation needs the source pixel size; with
# none in the manifest, on the command line or in the card, each item fails and says so.
awk -F'\t' 'BEGIN { OFS = "\t" } /^#/ { next } !hdr { hdr = 1; print; next } { $10 = ""; $11 = ""; print }' \
  "$D/manifest.tsv" >"$D/nopx.tsv"
head -1 "$D/nopx.tsv" | grep -q $'pixel_size_um\tmask$' || fail "nopx.tsv columns: $(head -1 "$D/nopx.tsv")"
expect_status 5 "$PROTLOC" run --manifest "$D/nopx.tsv" --model "$D/card.json" --level cells --crop 32 --no-progress \
  --out "$D/nopx.h5"   # 5: no item produced a row (no store is written)
grep -q "needs the pixel size" "$TEST_TMP/last.err" && pass "segmentation without a pixel size: a clear item failure" \
  || fail "no pixel-size message: $(cat "$TEST_TMP/last.err")"
"$PROTLOC" run --manifest "$D/nopx.tsv" --model "$D/card.json" --level cells --crop 32 --no-progress --pixel-size 0.32 \
  --out "$D/seg.h5" >"$TEST_TMP/seg.out" 2>"$TEST_TMP/seg.err"
rc=$?
{ [ "$rc" = 0 ] || [ "$rc" = 3 ]; } && ! grep -q "needs the pixel size" "$TEST_TMP/seg.err" \
  && pass "--pixel-size: the built-in segmentation runs (exit $rc)" || fail "segmentation with --pixel-size: $(cat "$TEST_TMP/seg.err")"

# --cell-labels: the first two cells of every training and test item carry a class; only they score.
$PY - "$D" <<'PYEOF' || fail "writing the cell-label table"
import sys, h5py
d = sys.argv[1]
f = h5py.File(f"{d}/native.h5", "r")
ids = [x.decode() for x in f["items/id"][()]]
labels = [x.decode() for x in f["items/label"][()]]
item, mask = f["cells/item"][()], f["cells/mask_label"][()]
with open(f"{d}/cells.tsv", "w") as out:
    out.write("# hand labels\nid\tmask_label\tlabel\tannotator\n")
    seen = {}
    for i, m in zip(item, mask):
        seen[i] = seen.get(i, 0) + 1
        if seen[i] <= 2:
            out.write(f"{ids[i]}\t{m}\tcell_{labels[i]}\tme\n")
PYEOF
n_labelled=$(grep -vc '^#\|^id' "$D/cells.tsv")
expect_status 0 mpirun --oversubscribe -np 2 "$PROTLOC" run --manifest "$D/manifest.tsv" --model "$D/card.json" \
  --level cells --crop 32 --no-progress --cell-labels "$D/cells.tsv" --out "$D/labelled.h5"
$PY - "$D" <<'PYEOF' && pass "cell labels stored per cell row, embeddings unchanged" || fail "stored cell labels"
import sys, h5py, numpy as np
d = sys.argv[1]
a, b = h5py.File(f"{d}/native.h5", "r"), h5py.File(f"{d}/labelled.h5", "r")
assert np.array_equal(a["cells/embedding"][()], b["cells/embedding"][()])
ids = [x.decode() for x in b["items/id"][()]]
want = {}
for l in open(f"{d}/cells.tsv"):
    if l.startswith("#") or l.startswith("id\t"): continue
    i, m, c, _ = l.rstrip("\n").split("\t")
    want[(i, int(m))] = c
got = [x.decode() for x in b["cells/label"][()]]
exp = [want.get((ids[i], int(m)), "") for i, m in zip(b["cells/item"][()], b["cells/mask_label"][()])]
assert got == exp and sum(1 for g in got if g) == len(want), (got[:6], exp[:6])
PYEOF
expect_status 0 "$PROTLOC" knn --store "$D/labelled.h5" --level cells -k 3 --json "$D/knn.json"
expect_status 0 "$PROTLOC" probe --store "$D/labelled.h5" --level cells --head logreg --json "$D/probe.json"
$PY - "$D" "$n_labelled" <<'PYEOF' && pass "knn and probe score exactly the $n_labelled labelled cells" || fail "scored rows"
import json, sys
d, n = sys.argv[1], int(sys.argv[2])
k, p = json.load(open(f"{d}/knn.json")), json.load(open(f"{d}/probe.json"))
assert k["n_queries"] + k["n_references"] == n, (k["n_queries"], k["n_references"], n)
assert k["n_unlabelled"] == k["config"]["rows"] - n, k["n_unlabelled"]
assert p["n_train"] + p["n_test"] == n, (p["n_train"], p["n_test"], n)
assert all(c.startswith("cell_") for c in k["classes"]) and k["classes"] == p["classes"], (k["classes"], p["classes"])
PYEOF

# bad tables: file:line:column, exit 1, no store; --cell-labels without the cells level is a usage error
printf 'id\tmask_label\tlabel\nnope\t1\tx\n' >"$D/unknown.tsv"
expect_status 1 "$PROTLOC" run --manifest "$D/manifest.tsv" --model "$D/card.json" --level cells --no-progress \
  --cell-labels "$D/unknown.tsv" --out "$D/u.h5"
grep -q "unknown.tsv:2:1: item 'nope' is not in the manifest" "$TEST_TMP/last.err" && [ ! -e "$D/u.h5" ] \
  && pass "unknown item named with file:line:column" || fail "unknown item: $(cat "$TEST_TMP/last.err")"
first=$(awk -F'\t' '!/^#/ && NR > 2 { print $1; exit }' "$D/manifest.tsv")
printf 'id\tmask_label\tlabel\n%s\t1\tx\n%s\t0\tx\n' "$first" "$first" >"$D/zero.tsv"
expect_status 1 "$PROTLOC" run --manifest "$D/manifest.tsv" --model "$D/card.json" --level cells --no-progress \
  --cell-labels "$D/zero.tsv" --out "$D/z.h5"
grep -q "zero.tsv:3:.*: mask_label '0' is not an integer in 1..16777215" "$TEST_TMP/last.err" \
  && pass "bad mask label named" || fail "bad mask label: $(cat "$TEST_TMP/last.err")"
printf 'id\tmask_label\tlabel\n%s\t1\tx\n%s\t1\ty\n' "$first" "$first" >"$D/dup.tsv"
expect_status 1 "$PROTLOC" run --manifest "$D/manifest.tsv" --model "$D/card.json" --level cells --no-progress \
  --cell-labels "$D/dup.tsv" --out "$D/d.h5"
grep -q "dup.tsv:3: item '$first' mask_label 1 is labelled twice (first on line 2)" "$TEST_TMP/last.err" \
  && pass "duplicate cell named" || fail "duplicate: $(cat "$TEST_TMP/last.err")"
expect_status 2 "$PROTLOC" run --manifest "$D/manifest.tsv" --model "$D/card.json" --level fov \
  --cell-labels "$D/cells.tsv" --out "$D/f.h5"
finish
