#!/usr/bin/env bash
# protloc synth: byte-identical output per seed, OpenCell 2-page uint16 TIFFs / HPA 8-bit PNGs readable by tifffile/PIL,
# a manifest that `protloc manifest check` accepts with leakage-free group splits, masks, and clean CLI errors.
set -u
. "$(dirname "$0")/lib.sh"

expect_status 0 "$PROTLOC" synth --help
expect_status 2 "$PROTLOC" synth --kind opencell --classes 0 --per-class 2 --seed 1 --out "$TEST_TMP/x"
expect_status 2 "$PROTLOC" synth --kind opencell --classes 18 --per-class 2 --seed 1 --out "$TEST_TMP/x"
expect_status 2 "$PROTLOC" synth --kind foo --classes 2 --per-class 2 --seed 1 --out "$TEST_TMP/x"
expect_status 2 "$PROTLOC" synth --kind hpa --classes 2 --per-class 2 --out "$TEST_TMP/x"
expect_status 2 "$PROTLOC" synth --kind hpa --classes 2 --per-class 2 --seed -4 --out "$TEST_TMP/x"
expect_status 2 "$PROTLOC" synth --kind hpa --classes 2 --per-class 2 --seed 1 --out "$TEST_TMP/x" --size 8
[ -e "$TEST_TMP/x" ] && fail "a rejected command created its output folder"

# OpenCell style: same seed → byte-identical folders; another seed → different images
size=128
[ "${PROTLOC_SANITIZE:-0}" = 1 ] && size=96
for d in a b; do
  expect_status 0 "$PROTLOC" synth --kind opencell --classes 4 --per-class 5 --seed 9 --size $size --masks --out "$TEST_TMP/$d"
done
diff -r "$TEST_TMP/a" "$TEST_TMP/b" >/dev/null || fail "same seed gave different files"
expect_status 0 "$PROTLOC" synth --kind opencell --classes 4 --per-class 5 --seed 10 --size $size --out "$TEST_TMP/c"
cmp -s "$TEST_TMP/a/nucleoplasm_prot00_f00_proj.tif" "$TEST_TMP/c/nucleoplasm_prot00_f00_proj.tif" &&
  fail "different seeds gave the same image"
expect_status 0 "$PROTLOC" manifest check "$TEST_TMP/a/manifest.tsv"
grep -q "items	20" "$TEST_TMP/last.out" || fail "manifest check does not report 20 items"
"$PY" - "$TEST_TMP/a" "$size" <<'PYEOF' || fail "OpenCell-style files or manifest are wrong"
import csv, sys, collections
import numpy as np, tifffile
d, size = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader((l for l in open(f"{d}/manifest.tsv") if not l.startswith("#")), delimiter="\t"))
assert len(rows) == 20 and set(r["label"] for r in rows) == {"nucleoplasm", "cytoplasmic", "nucleolus_gc", "membrane"}
splits = collections.defaultdict(set)
for r in rows:
    splits[r["group"]].add(r["split"])
    img = tifffile.imread(f"{d}/" + r["nucleus"].split("#")[0])
    assert img.shape == (2, size, size) and img.dtype == np.uint16, img.shape
    assert r["nucleus"].endswith("#0") and r["protein"].endswith("#1") and r["pixel_size_um"] == "0.206"
    mask = tifffile.imread(f"{d}/" + r["mask"])
    assert mask.dtype == np.uint16 and mask.shape == (size, size) and mask.max() > 0
    assert img[0][mask > 0].mean() > img[0][mask == 0].mean()   # cells are brighter in the nucleus channel overall
assert all(len(s) == 1 for s in splits.values()), "a group sits in two splits"
for label in {r["label"] for r in rows}:
    got = {r["split"] for r in rows if r["label"] == label}
    assert "train" in got and "test" in got, (label, got)
PYEOF

# HPA style: four 8-bit PNGs per field, 16-bit cell masks, segmentable nucleus channel
expect_status 0 "$PROTLOC" synth --kind hpa --classes 3 --per-class 2 --seed 5 --size $size --masks --out "$TEST_TMP/h"
expect_status 0 "$PROTLOC" manifest check "$TEST_TMP/h/manifest.tsv"
"$PY" - "$TEST_TMP/h" "$size" <<'PYEOF' || fail "HPA-style files are wrong"
import csv, sys
import numpy as np
from PIL import Image
d, size = sys.argv[1], int(sys.argv[2])
rows = list(csv.DictReader((l for l in open(f"{d}/manifest.tsv") if not l.startswith("#")), delimiter="\t"))
assert len(rows) == 6
for r in rows:
    for role, colour in (("microtubules", "red"), ("protein", "green"), ("nucleus", "blue"), ("er", "yellow")):
        assert r[role] == f"{r['id']}_{colour}.png", r
        im = Image.open(f"{d}/{r[role]}")
        assert im.mode == "L" and im.size == (size, size), (im.mode, im.size)
    m = np.array(Image.open(f"{d}/{r['mask']}"))
    assert m.max() > 0 and m.dtype in (np.uint16, np.int32), m.dtype
PYEOF
first=$(awk -F'\t' '!/^#/ && NR>2 {print $1; exit}' "$TEST_TMP/h/manifest.tsv")
n=$("$PROTLOC" -q segment --nucleus "$TEST_TMP/h/${first}_blue.png" --pixel-size 0.32 --keep-border) || fail "segment on synthetic HPA failed"
[ "${n:-0}" -gt 0 ] || fail "no nuclei found in a synthetic HPA field"
finish
