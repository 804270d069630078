#!/bin/bash
# CLI tests for `protloc image info` and `protloc image prep` on real samples, fixtures and the bad-file corpus,
# with a NumPy cross-check of the prepared tensor.
source "$(dirname "$0")/lib.sh"
require_shared samples/opencell_hoechst_proj/FOV_00007_RAW.tif
require_shared samples/hpa_1000_A12_2/1000_A12_2_green.png
S=$PROTLOC_SHARED_DIR/samples
FIX=$PROTLOC_SOURCE_DIR/tests/fixtures/images
OC1=$S/opencell_hoechst_proj/FOV_00007_RAW.tif
OC2=$S/opencell_hoechst_proj/FOV_00027_RAW.tif
HPA=$S/hpa_1000_A12_2/1000_A12_2_green.png

# --- image info: real samples decode with the expected size and depth ---
expect_status 0 "$PROTLOC" image info "$OC1" "$HPA" "$FIX/opencell_like_2page.tif" "$FIX/rgba16.png"
cp "$TEST_TMP/last.out" "$TEST_TMP/info.tsv"
awk -F'\t' -v f="$OC1" '$1==f && $2=="tiff" && $4==1 && $5==1024 && $6==1024 && $7==16 {ok=1} END {exit !ok}' "$TEST_TMP/info.tsv" \
  && pass "OpenCell sample is 1024x1024 16-bit" || fail "OpenCell sample row wrong: $(cat "$TEST_TMP/info.tsv")"
awk -F'\t' -v f="$HPA" '$1==f && $2=="png" && $5==2048 && $6==2048 && $7==16 && $10>255 {ok=1} END {exit !ok}' "$TEST_TMP/info.tsv" \
  && pass "HPA green is 2048x2048 16-bit" || fail "HPA row wrong"
awk -F'\t' '$1 ~ /opencell_like_2page/ && $3==2 && $4==2 {ok=1} END {exit !ok}' "$TEST_TMP/info.tsv" \
  && pass "2-page TIFF has 2 channels" || fail "2-page TIFF row wrong"

# --- image info: each bad file gets its own clear error; good files are still listed (exit 3) ---
expect_status 3 "$PROTLOC" image info "$OC1" "$FIX"/bad/*
for f in "$FIX"/bad/*; do
  grep -q "$(basename "$f")" "$TEST_TMP/last.err" || fail "no error line names $(basename "$f")"
done
grep -q "1-bit" "$TEST_TMP/last.err" && grep -q "palette" "$TEST_TMP/last.err" && grep -q "NaN" "$TEST_TMP/last.err" \
  && grep -q "1000000 x 1000000" "$TEST_TMP/last.err" && grep -q "empty file" "$TEST_TMP/last.err" \
  && grep -q "truncated" "$TEST_TMP/last.err" && pass "bad corpus reasons present" || fail "missing reasons"
[ "$(grep -c . "$TEST_TMP/last.out")" -eq 2 ] && pass "only the good file listed" || fail "stdout: $(cat "$TEST_TMP/last.out")"
expect_status 1 "$PROTLOC" image info "$FIX/bad/truncated.png"
grep -q "truncated.png" "$TEST_TMP/last.err" && pass "single bad file named" || fail "single bad file not named"
expect_status 2 "$PROTLOC" image info --bogus "$OC1"
expect_status 0 "$PROTLOC" image info --help

# --- image prep: natural mapping into HPA slots, tiles, cross-checked with NumPy ---
expect_status 0 "$PROTLOC" image prep --channel nucleus="$OC1" --channel protein="$OC2#0" \
  --slots protein,nucleus,microtubules,er --fov tiles --tile 224 --border shift --clip 0.1,99.9 \
  --out "$TEST_TMP/map.npy" --tiles-out "$TEST_TMP/map.tsv"
grep -q "views=1	tiles=25	slots=4" "$TEST_TMP/last.out" && pass "25 tiles" || fail "summary: $(cat "$TEST_TMP/last.out")"
$PY - "$OC1" "$OC2" "$TEST_TMP/map.npy" "$TEST_TMP/map.tsv" <<'PYEOF' && pass "prep matches NumPy" || fail "prep differs from NumPy"
import sys, numpy as np, tifffile
nuc, prot = (tifffile.imread(p).astype(np.float64) for p in sys.argv[1:3])
out = np.load(sys.argv[3])
tiles = np.loadtxt(sys.argv[4], skiprows=1, dtype=int)
assert out.shape == (25, 4, 224, 224), out.shape
def z(x):
    lo, hi = np.percentile(x, [0.1, 99.9]); x = np.clip(x, lo, hi)
    return (x - x.mean()) / (x.std() + 1e-7)
zn, zp = z(nuc), z(prot)
pos = [0, 200, 400, 600, 800]   # stride 224 then shifted inside: 0,224,448,672 + 800
ys = sorted(set(tiles[:, 3])); assert ys == [0, 224, 448, 672, 800], ys
worst = 0.0
for i, (idx, v, t, y, x) in enumerate(tiles):
    ref_p, ref_n = zp[y:y+224, x:x+224], zn[y:y+224, x:x+224]
    worst = max(worst, np.abs(out[i, 0] - ref_p).max(), np.abs(out[i, 1] - ref_n).max())
    assert not out[i, 2].any() and not out[i, 3].any(), "empty slots must be zero"
print("worst abs error", worst)
assert worst < 1e-6
PYEOF

# replicate: one view per role, each role copied into every slot
expect_status 0 "$PROTLOC" image prep --channel nucleus="$OC1" --channel protein="$OC2" --slots red,green,blue \
  --strategy replicate --norm fixed --fov center --tile 512 --out "$TEST_TMP/rep.npy"
$PY - "$OC1" "$TEST_TMP/rep.npy" <<'PYEOF' && pass "replicate views + ImageNet fixed norm" || fail "replicate wrong"
import sys, numpy as np, tifffile
nuc = tifffile.imread(sys.argv[1]).astype(np.float64)[256:768, 256:768] / 65535.0
out = np.load(sys.argv[2]); assert out.shape == (2, 3, 512, 512), out.shape
for s, (m, sd) in enumerate(zip([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])):
    assert np.abs(out[0, s] - (nuc - m) / sd).max() < 1e-5
PYEOF

# random: deterministic per (seed, id); the two roles land in two distinct slots
for run in a b; do
  expect_status 0 "$PROTLOC" image prep --channel nucleus="$OC1" --channel protein="$OC2" --strategy random \
    --seed 7 --id FOV_00007 --fov center --tile 64 --out "$TEST_TMP/rand_$run.npy"
done
cmp -s "$TEST_TMP/rand_a.npy" "$TEST_TMP/rand_b.npy" && pass "random is deterministic" || fail "random not deterministic"
$PY -c "import numpy as np,sys; o=np.load(sys.argv[1]); n=[s for s in range(4) if o[0,s].any()]; assert len(n)==2, n" \
  "$TEST_TMP/rand_a.npy" && pass "random fills 2 slots" || fail "random slots wrong"

# duplicate + physical rescale (OpenCell 0.206 µm → HPA 0.08 µm) + whole
expect_status 0 "$PROTLOC" image prep --channel nucleus="$OC1" --channel protein="$OC2" --strategy duplicate \
  --fill '*=nucleus' --pixel-size 0.206 --model-pixel-size 0.08 --fov whole --patch 16 --out "$TEST_TMP/dup.npy"
grep -q "image=2637x2637" "$TEST_TMP/last.out" && grep -q "height=2624	width=2624" "$TEST_TMP/last.out" \
  && pass "rescaled to 2637 and cropped to 2624" || fail "summary: $(cat "$TEST_TMP/last.out")"
$PY -c "import numpy as np,sys; o=np.load(sys.argv[1]); assert np.array_equal(o[0,1],o[0,2]) and np.array_equal(o[0,1],o[0,3])" \
  "$TEST_TMP/dup.npy" && pass "duplicate fills empty slots with nucleus" || fail "duplicate wrong"

# errors: a bad channel names the file, writes nothing; bad options are usage errors
expect_status 1 "$PROTLOC" image prep --channel nucleus="$OC1" --channel protein="$FIX/bad/truncated.tif" --out "$TEST_TMP/bad.npy"
grep -q "role protein" "$TEST_TMP/last.err" && grep -q "truncated.tif" "$TEST_TMP/last.err" && pass "bad channel named" || fail "bad channel message"
[ ! -e "$TEST_TMP/bad.npy" ] && [ -z "$(ls "$TEST_TMP" | grep '\.tmp\.')" ] && pass "no output, no temp left" || fail "output left behind"
expect_status 1 "$PROTLOC" image prep --channel protein="$OC1" --channel protein="$OC2" --out "$TEST_TMP/x.npy"
expect_status 1 "$PROTLOC" image prep --channel nucleus="$OC1" --slots red,green,blue --out "$TEST_TMP/x.npy"
grep -q "declare a mapping" "$TEST_TMP/last.err" && pass "ImageNet without a mapping explained" || fail "mapping message"
expect_status 1 "$PROTLOC" image prep --channel nucleus="$OC1" --pixel-size 0.206 --model-pixel-size 0.08 \
  --fov tiles --tile 224 --stride 8 --out "$TEST_TMP/x.npy"
grep -q "exceed the limit" "$TEST_TMP/last.err" && pass "absurd tiling refused before allocating" || fail "no tiling limit"
expect_status 2 "$PROTLOC" image prep --channel nucleus="$OC1" --strategy natural --out "$TEST_TMP/x.npy"
expect_status 2 "$PROTLOC" image prep --channel nucleus="$OC1" --norm fixed --out "$TEST_TMP/x.npy"
expect_status 2 "$PROTLOC" image prep --channel "$OC1" --out "$TEST_TMP/x.npy"
expect_status 0 "$PROTLOC" image prep --help
finish
