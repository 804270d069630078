#!/usr/bin/env bash
# CLI tests for `protloc model init` / `protloc model inspect`: deterministic DINO-style init checked with numpy,
# the golden checkpoint in three formats, and the malformed-checkpoint corpus (clear errors, exit 1).
source "$(dirname "$0")/lib.sh"
FIX="$PROTLOC_SOURCE_DIR/tests/fixtures/checkpoints"

# ---- model init: usage errors ----
expect_status 0 "$PROTLOC" model init --help
expect_status 2 "$PROTLOC" model init --dim 96 --depth 2 --heads 2 --patch 16 --in-chans 4
expect_status 2 "$PROTLOC" model init --dim 96 --depth 2 --heads 5 --patch 16 --in-chans 4 --out "$TEST_TMP/x.safetensors"
expect_status 2 "$PROTLOC" model init --dim 96 --depth 2 --heads 2 --patch 16 --in-chans 4 --bogus 1 --out "$TEST_TMP/x.safetensors"
expect_status 2 "$PROTLOC" model init --dim abc --depth 2 --heads 2 --patch 16 --in-chans 4 --out "$TEST_TMP/x.safetensors"
expect_status 1 "$PROTLOC" model init --dim 96 --depth 2 --heads 2 --patch 16 --in-chans 4 --out "$TEST_TMP/no/such/dir/x.safetensors"
[ -z "$(ls "$TEST_TMP" | grep -v '^last\.')" ] || fail "failed init left files behind: $(ls "$TEST_TMP")"

# ---- model init: deterministic, DINO layout and statistics ----
A="$TEST_TMP/a.safetensors"; B="$TEST_TMP/b.safetensors"; C="$TEST_TMP/c.safetensors"; J="$TEST_TMP/j.safetensors"
expect_status 0 "$PROTLOC" model init --dim 192 --depth 3 --heads 3 --patch 8 --in-chans 3 --img-size 64 --seed 11 --out "$A"
expect_status 0 "$PROTLOC" model init --dim 192 --depth 3 --heads 3 --patch 8 --in-chans 3 --img-size 64 --seed 11 --out "$B"
expect_status 0 "$PROTLOC" model init --dim 192 --depth 3 --heads 3 --patch 8 --in-chans 3 --img-size 64 --seed 12 --out "$C"
expect_status 0 "$PROTLOC" model init --dim 192 --depth 3 --heads 3 --patch 8 --in-chans 3 --img-size 64 --seed 11 --jitter 0.1 --out "$J"
cmp -s "$A" "$B" && pass "same seed, identical bytes" || fail "model init is not deterministic"
cmp -s "$A" "$C" && fail "different seeds gave identical files" || pass "different seeds differ"
if "$PY" - "$A" "$J" <<'PYEOF'
import json, struct, sys
import numpy as np

def read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    h = json.loads(b[8:8 + n])
    meta = h.pop("__metadata__")
    out = {}
    for k, v in h.items():
        s, e = v["data_offsets"]
        assert v["dtype"] == "F32"
        out[k] = np.frombuffer(b[8 + n + s:8 + n + e], dtype="<f4").reshape(v["shape"])
    return meta, out, list(h.keys())

meta, t, keys = read(sys.argv[1])
assert meta["heads"] == "3" and meta["patch_size"] == "8" and meta["arch"] == "vit_custom", meta
assert meta["generator"] == "protloc model init" and meta["seed"] == "11", meta
D, H, G = 192, 768, 64 // 8
expect = [("cls_token", (1, 1, D)), ("pos_embed", (1, 1 + G * G, D)), ("patch_embed.proj.weight", (D, 3, 8, 8)),
          ("patch_embed.proj.bias", (D,))]
for i in range(3):
    p = "blocks.%d." % i
    expect += [(p + "norm1.weight", (D,)), (p + "norm1.bias", (D,)), (p + "attn.qkv.weight", (3 * D, D)),
               (p + "attn.qkv.bias", (3 * D,)), (p + "attn.proj.weight", (D, D)), (p + "attn.proj.bias", (D,)),
               (p + "norm2.weight", (D,)), (p + "norm2.bias", (D,)), (p + "mlp.fc1.weight", (H, D)),
               (p + "mlp.fc1.bias", (H,)), (p + "mlp.fc2.weight", (D, H)), (p + "mlp.fc2.bias", (D,))]
expect += [("norm.weight", (D,)), ("norm.bias", (D,))]
assert keys == [k for k, _ in expect], keys   # DINO's state_dict order
for k, shape in expect:
    x = t[k]
    assert x.shape == shape, (k, x.shape, shape)
    if k.endswith("norm1.weight") or k.endswith("norm2.weight") or k == "norm.weight":
        assert np.all(x == 1), k
    elif k.endswith("bias"):
        assert np.all(x == 0), k
    elif x.size > 1000:
        assert abs(x.std() - 0.02) < 0.002 and abs(x.mean()) < 0.002, (k, x.std(), x.mean())
        assert np.abs(x).max() < 0.02 * 7, k
_, tj, _ = read(sys.argv[2])
lnw = np.concatenate([tj["blocks.%d.norm1.weight" % i] for i in range(3)])
assert abs(lnw.mean() - 1) < 0.03 and abs(lnw.std() - 0.1) < 0.02, (lnw.mean(), lnw.std())
assert np.array_equal(tj["blocks.1.attn.qkv.weight"].shape, t["blocks.1.attn.qkv.weight"].shape)
print("init layout and statistics ok")
PYEOF
then pass "init matches DINO's layout and init statistics"; else fail "init layout/statistics check"; fi

# ---- model inspect ----
expect_status 0 "$PROTLOC" model inspect --help
expect_status 2 "$PROTLOC" model inspect
expect_status 2 "$PROTLOC" model inspect "$A" --heads zero
expect_status 2 "$PROTLOC" model inspect "$A" "$B"
expect_status 0 "$PROTLOC" model inspect "$J"
grep -q "architecture: DINO ViT, in_chans 3, patch 8, dim 192, depth 3, heads 3" "$TEST_TMP/last.out" \
  && pass "inspect infers the architecture of model init output" || fail "inspect architecture: $(cat "$TEST_TMP/last.out")"
grep -q "jitter=0.1" "$TEST_TMP/last.out" && pass "inspect prints stored metadata" || fail "inspect metadata"

if [ -e "$PROTLOC_SHARED_DIR/golden/vit4_d96_L2_p16/model.safetensors" ]; then
  G="$PROTLOC_SHARED_DIR/golden/vit4_d96_L2_p16"
  for f in model.safetensors model_state.pth model_dino_ckpt.pth; do
    expect_status 0 "$PROTLOC" model inspect "$G/$f" --heads 2
    grep -q "patch 16, dim 96, depth 2, heads 2 (--heads)" "$TEST_TMP/last.out" || fail "inspect $f architecture"
    sed -n '/^tensor table:/,$p' "$TEST_TMP/last.out" | sort >"$TEST_TMP/table_$f.txt"   # safetensors keys are sorted
  done
  cmp -s "$TEST_TMP/table_model.safetensors.txt" "$TEST_TMP/table_model_state.pth.txt" \
    && cmp -s "$TEST_TMP/table_model.safetensors.txt" "$TEST_TMP/table_model_dino_ckpt.pth.txt" \
    && pass "three golden formats give identical tensor tables" || fail "golden tensor tables differ"
  expect_status 0 "$PROTLOC" model inspect "$G/model_dino_ckpt.pth" --checkpoint-key student --heads 2
  grep -q "^  arch=vit_custom" "$TEST_TMP/last.out" && pass "DINO args printed" || fail "DINO args missing"
  grep -q '^format: pytorch-zip (training checkpoint; state dict "student")' "$TEST_TMP/last.out" \
    && pass "inspect names the state dict used" || fail "inspect state dict line: $(head -3 "$TEST_TMP/last.out")"
  expect_status 1 "$PROTLOC" model inspect "$G/model_dino_ckpt.pth" --checkpoint-key nosuch
  grep -q 'no "nosuch" state dict; available keys: student, teacher' "$TEST_TMP/last.err" \
    && pass "missing key lists available keys" || fail "missing key message: $(cat "$TEST_TMP/last.err")"
else
  skip_part "golden part: $PROTLOC_SHARED_DIR/golden not found"
fi

# ---- malformed corpus: exit 1, message names the file and the problem ----
check_bad() {   # FILE PATTERN
  expect_status 1 "$PROTLOC" model inspect "$FIX/malformed/$1"
  if grep -q -- "$2" "$TEST_TMP/last.err" && grep -q -- "$1" "$TEST_TMP/last.err"; then pass "$1: $2"
  else fail "$1: expected '$2' in: $(cat "$TEST_TMP/last.err")"; fi
}
check_bad shape_mismatch.safetensors "tensor 'blocks.0.attn.qkv.weight' has shape (24, 7), expected (24, 8)"
check_bad missing_tensor.safetensors "missing tensor 'blocks.0.mlp.fc1.bias'"
check_bad nan_weights.pth "tensor 'blocks.0.mlp.fc2.weight' holds a non-finite value"
check_bad os_system.pth "references posix.system, which could execute code"
check_bad builtins_eval.pth "eval, which could execute code"
check_bad posix_system_proto4.pth "references posix.system"
check_bad inst_opcode.pth "forbidden or unsupported pickle opcode 0x69"
check_bad unknown_opcode.pth "opcode 0xff"
check_bad truncated_zip.pth "no zip end-of-central-directory record"
check_bad wrong_magic.pth "not a model checkpoint"
check_bad absurd_header.safetensors "absurd safetensors header length"
check_bad truncated.safetensors "outside the"
check_bad crc_mismatch.pth "CRC-32"
check_bad view_out_of_range.pth "reaches element 8 of a 6-element storage"
check_bad no_teacher_key.pth "available keys: model_ema, epoch"
[ -e /tmp/protloc_pwned ] && fail "a pickle payload ran" || pass "no pickle payload ran"

# ---- the loader feeds the forward pass: embed with a model init file ----
"$PY" -c "import numpy as np; np.save('$TEST_TMP/x.npy', np.random.default_rng(0).standard_normal((2, 3, 64, 48)).astype(np.float32))"
expect_status 0 "$PROTLOC" embed --model "$J" --input "$TEST_TMP/x.npy" --output "$TEST_TMP/y.npy" --threads 1
"$PY" -c "import numpy as np; y = np.load('$TEST_TMP/y.npy'); assert y.shape == (2, 192) and np.isfinite(y).all(), y.shape" \
  && pass "embed runs on model init weights" || fail "embed output of model init weights"
finish
