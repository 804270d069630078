#!/usr/bin/env bash
# CLI test for `protloc embed`: golden DINO fixtures in all three checkpoint formats, the extra fixtures
# (last-n, avgpool, odd sizes), and clear errors that write nothing for bad inputs and bad options.
source "$(dirname "$0")/lib.sh"
require_shared golden/vit4_d96_L2_p16/model.safetensors
G=$PROTLOC_SHARED_DIR/golden/vit4_d96_L2_p16
F=$PROTLOC_SOURCE_DIR/tests/fixtures/vit

# compare OUT.npy REF.npy: max |y - ref| / max(1, |ref|) <= 1e-4 and same shape
compare() {
  if $PY - "$1" "$2" <<'PYEOF'; then pass "matches $(basename "$2")"; else fail "$1 differs from $2"; fi
import sys, numpy as np
y, r = np.load(sys.argv[1]), np.load(sys.argv[2])
assert y.dtype == np.float32, y.dtype
assert y.shape == r.shape, (y.shape, r.shape)
e = float(np.max(np.abs(y.astype(np.float64) - r) / np.maximum(1.0, np.abs(r))))
print("max rel err", e)
sys.exit(0 if e <= 1e-4 else 1)
PYEOF
}
# expect_error PATTERN cmd...: exit 1, stderr mentions PATTERN
expect_error() {
  local pat=$1; shift
  expect_status 1 "$@"
  grep -q -- "$pat" "$TEST_TMP/last.err" || fail "stderr lacks '$pat': $(cat "$TEST_TMP/last.err")"
}

expect_status 0 "$PROTLOC" embed --help
grep -q -- "--avgpool" "$TEST_TMP/last.out" || fail "help lacks --avgpool"

for model in model.safetensors model_state.pth model_dino_ckpt.pth; do
  for size in 224 160x256; do
    expect_status 0 "$PROTLOC" embed --model "$G/$model" --heads 2 --input "$G/x_$size.npy" --output "$TEST_TMP/y.npy"
    compare "$TEST_TMP/y.npy" "$G/cls_$size.npy"
    rm -f "$TEST_TMP/y.npy"
  done
done
expect_status 0 "$PROTLOC" embed --model "$G/model_dino_ckpt.pth" --checkpoint-key teacher --heads 2 --threads 1 --batch 1 \
  --input "$G/x_224.npy" --output "$TEST_TMP/y.npy"
compare "$TEST_TMP/y.npy" "$G/cls_224.npy"

# extra fixtures: heads from the safetensors metadata
for size in 64x64 32x128 100x130; do
  expect_status 0 "$PROTLOC" embed --model "$F/vit_p8_c3_h6.safetensors" --input "$F/x_$size.npy" --output "$TEST_TMP/cls.npy"
  compare "$TEST_TMP/cls.npy" "$F/cls_$size.npy"
  expect_status 0 "$PROTLOC" embed --model "$F/vit_p8_c3_h6.safetensors" --last-n 2 --batch 1 --input "$F/x_$size.npy" --output "$TEST_TMP/l2.npy"
  compare "$TEST_TMP/l2.npy" "$F/last2_$size.npy"
  expect_status 0 "$PROTLOC" embed --model "$F/vit_p8_c3_h6.safetensors" --avgpool --threads 1 --input "$F/x_$size.npy" --output "$TEST_TMP/ap.npy"
  compare "$TEST_TMP/ap.npy" "$F/avgpool_$size.npy"
done
grep -q "not a multiple of the patch size" "$TEST_TMP/last.err" || fail "no warning about cropped remainder pixels"

# empty input: (0, C, H, W) -> (0, D)
$PY -c "import numpy as np; np.save('$TEST_TMP/empty.npy', np.zeros((0, 3, 64, 64), np.float32))"
expect_status 0 "$PROTLOC" embed --model "$F/vit_p8_c3_h6.safetensors" --input "$TEST_TMP/empty.npy" --output "$TEST_TMP/e.npy"
$PY -c "import numpy as np; a = np.load('$TEST_TMP/e.npy'); assert a.shape == (0, 24), a.shape" && pass "empty input" || fail "empty input shape"

# ---- bad inputs: clear error naming the file, and no output written ----
M=$F/vit_p8_c3_h6.safetensors
out=$TEST_TMP/bad.npy
$PY - "$TEST_TMP" <<'PYEOF'
import sys, numpy as np
d = sys.argv[1]
np.save(f"{d}/f64.npy", np.zeros((1, 3, 64, 64), np.float64))
np.save(f"{d}/three_d.npy", np.zeros((3, 64, 64), np.float32))
np.save(f"{d}/four_ch.npy", np.zeros((1, 4, 64, 64), np.float32))
np.save(f"{d}/tiny.npy", np.zeros((1, 3, 4, 64), np.float32))
x = np.zeros((2, 3, 64, 64), np.float32); x[1, 2, 5, 7] = np.nan
np.save(f"{d}/nan.npy", x)
open(f"{d}/notnpy.npy", "wb").write(b"hello world, not an array")
b = open(sys.argv[1] + "/f64.npy", "rb").read()
open(f"{d}/truncated.npy", "wb").write(b[:200])
PYEOF
head -c 5000 "$M" >"$TEST_TMP/trunc.safetensors"
expect_error "f64.npy.*expected float32" "$PROTLOC" embed --model "$M" --input "$TEST_TMP/f64.npy" --output "$out"
expect_error "three_d.npy.*shape (3, 64, 64)" "$PROTLOC" embed --model "$M" --input "$TEST_TMP/three_d.npy" --output "$out"
expect_error "four_ch.npy: images have 4 channels but the model takes 3" "$PROTLOC" embed --model "$M" --input "$TEST_TMP/four_ch.npy" --output "$out"
expect_error "tiny.npy: image size 4x64" "$PROTLOC" embed --model "$M" --input "$TEST_TMP/tiny.npy" --output "$out"
expect_error "nan.npy: image 1 holds a non-finite value (nan) at channel 2, y 5, x 7" "$PROTLOC" embed --model "$M" --input "$TEST_TMP/nan.npy" --output "$out"
expect_error "notnpy.npy" "$PROTLOC" embed --model "$M" --input "$TEST_TMP/notnpy.npy" --output "$out"
expect_error "truncated.npy" "$PROTLOC" embed --model "$M" --input "$TEST_TMP/truncated.npy" --output "$out"
expect_error "missing.npy" "$PROTLOC" embed --model "$M" --input "$TEST_TMP/missing.npy" --output "$out"
expect_error "trunc.safetensors" "$PROTLOC" embed --model "$TEST_TMP/trunc.safetensors" --input "$F/x_64x64.npy" --output "$out"
expect_error "nomodel.pth" "$PROTLOC" embed --model "$TEST_TMP/nomodel.pth" --input "$F/x_64x64.npy" --output "$out"
expect_error "not divisible by 5 heads" "$PROTLOC" embed --model "$M" --heads 5 --input "$F/x_64x64.npy" --output "$out"
expect_error "last-n 4 out of range" "$PROTLOC" embed --model "$M" --last-n 4 --input "$F/x_64x64.npy" --output "$out"
expect_error "no_such_dir" "$PROTLOC" embed --model "$M" --input "$F/x_64x64.npy" --output "$TEST_TMP/no_such_dir/y.npy"
[ -e "$out" ] && fail "a failed run wrote $out"
leftover=$(find "$TEST_TMP" -name '*.tmp*' -o -name '.*bad*' | head -1)
[ -z "$leftover" ] || fail "temp file left behind: $leftover"

# ---- bad command lines: exit 2 ----
expect_status 2 "$PROTLOC" embed --input "$F/x_64x64.npy" --output "$out"
expect_status 2 "$PROTLOC" embed --model "$M" --output "$out"
expect_status 2 "$PROTLOC" embed --model "$M" --input "$F/x_64x64.npy"
expect_status 2 "$PROTLOC" embed --model "$M" --input "$F/x_64x64.npy" --output "$out" --bogus
expect_status 2 "$PROTLOC" embed --model "$M" --input "$F/x_64x64.npy" --output "$out" --batch 0
expect_status 2 "$PROTLOC" embed --model "$M" --input "$F/x_64x64.npy" --output "$out" --threads abc
expect_status 2 "$PROTLOC" embed --model "$M" --input "$F/x_64x64.npy" --output "$out" --avgpool --last-n 2
expect_status 2 "$PROTLOC" embed --model "$M" --input "$F/x_64x64.npy" --output "$out" extra
expect_status 2 "$PROTLOC" embed --model
[ -e "$out" ] && fail "a usage error wrote $out"
finish
