#!/usr/bin/env bash
# protloc segment: count on stdout, 16-bit label TIFF and JSON that agree with NumPy, noise-only → 0 nuclei,
# real OpenCell FOVs cross-checked against an independent scipy estimate (segment_reference.py), clean CLI errors.
set -u
. "$(dirname "$0")/lib.sh"
require_shared samples/opencell_hoechst_proj/FOV_00007_RAW.tif
SAMPLES=$PROTLOC_SHARED_DIR/samples/opencell_hoechst_proj
HERE=$(cd "$(dirname "$0")" && pwd)

expect_status 0 "$PROTLOC" segment --help
grep -q -- "--mask-out" "$TEST_TMP/last.out" || fail "segment --help does not document --mask-out"
expect_status 2 "$PROTLOC" segment
expect_status 2 "$PROTLOC" segment --nucleus x.tif --bogus
expect_status 2 "$PROTLOC" segment --nucleus x.tif --pixel-size abc
expect_status 1 "$PROTLOC" segment --nucleus "$TEST_TMP/missing.tif"
grep -q "missing.tif" "$TEST_TMP/last.err" || fail "error for a missing file does not name it"
: >"$TEST_TMP/empty.tif"
expect_status 1 "$PROTLOC" segment --nucleus "$TEST_TMP/empty.tif" --mask-out "$TEST_TMP/empty_mask.tif"
grep -q "empty.tif" "$TEST_TMP/last.err" || fail "error for a zero-byte file does not name it"
[ -e "$TEST_TMP/empty_mask.tif" ] && fail "a failed run wrote a mask"

# count, mask and JSON on a real FOV
img=$SAMPLES/FOV_00007_RAW.tif
count=$("$PROTLOC" -q segment --nucleus "$img" --mask-out "$TEST_TMP/m.tif" --json "$TEST_TMP/m.json") ||
  fail "segment failed on $img"
[ "$count" -ge 38 ] && [ "$count" -le 56 ] || fail "FOV_00007: implausible count $count (expected 38..56)"
"$PY" - "$TEST_TMP/m.tif" "$TEST_TMP/m.json" "$count" <<'PYEOF' || fail "mask/JSON do not agree with NumPy"
import json, sys
import numpy as np, tifffile
mask = tifffile.imread(sys.argv[1]); js = json.load(open(sys.argv[2])); count = int(sys.argv[3])
assert mask.dtype == np.uint16 and mask.shape == (1024, 1024), (mask.dtype, mask.shape)
assert js["count"] == count == len(js["nuclei"]) == mask.max() == len(np.unique(mask)) - 1
for n in js["nuclei"]:
    ys, xs = np.nonzero(mask == n["label"])
    assert ys.size == n["area"], n
    assert abs(ys.mean() - n["cy"]) < 1e-2 and abs(xs.mean() - n["cx"]) < 1e-2, n
# border exclusion: no label touches the border
assert not set(np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])) - {0}
PYEOF
ls "$TEST_TMP"/*.tmp.* >/dev/null 2>&1 && fail "temporary files left behind"

# noise only (background offset + Gaussian read noise + shot noise) → no nuclei
"$PY" - "$TEST_TMP/noise.tif" <<'PYEOF'
import sys
import numpy as np, tifffile
rng = np.random.default_rng(3)
img = 400 + rng.poisson(60, (512, 512)) + rng.normal(0, 8, (512, 512))
tifffile.imwrite(sys.argv[1], np.clip(img, 0, 65535).astype(np.uint16))
PYEOF
out=$("$PROTLOC" -q segment --nucleus "$TEST_TMP/noise.tif" --json "$TEST_TMP/noise.json" --mask-out "$TEST_TMP/noise_mask.tif")
[ "$out" = "0" ] || fail "noise-only image gave $out nuclei"
"$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['count']==0 and j['empty'] is True" "$TEST_TMP/noise.json" ||
  fail "noise-only JSON is not empty"

# output into a folder that does not exist: error, nothing written
expect_status 1 "$PROTLOC" segment --nucleus "$img" --mask-out "$TEST_TMP/nodir/m.tif"
[ -e "$TEST_TMP/nodir" ] && fail "a failed write left output behind"

# independent cross-check: an area-based scipy estimate (border objects included on both sides), within 35%
files=$(ls "$SAMPLES"/*.tif)
[ "${PROTLOC_SANITIZE:-0}" = 1 ] && files=$(ls "$SAMPLES"/*.tif | head -2)
for f in $files; do
  ours=$("$PROTLOC" -q segment --keep-border --nucleus "$f") || { fail "segment failed on $f"; continue; }
  ref=$("$PY" "$HERE/segment_reference.py" "$f") || { fail "reference failed on $f"; continue; }
  if "$PY" -c "import sys; o,r=int(sys.argv[1]),int(sys.argv[2]); sys.exit(0 if abs(o-r) <= 0.35*r else 1)" "$ours" "$ref"; then
    pass "$(basename "$f"): $ours nuclei (scipy estimate $ref)"
  else
    fail "$(basename "$f"): $ours nuclei, scipy estimate $ref"
  fi
done
finish
