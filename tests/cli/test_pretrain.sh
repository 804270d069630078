#!/usr/bin/env bash
# CLI test for `protloc pretrain` on fixed views (the contract of docs/guide.md "Pretraining"): three steps of DINO
# (AdamW, every schedule, clipping, the last layer frozen in the first epoch, the teacher-temperature warm-up) from the
# fixture's student and DINOHead give the student, teacher and center of facebookresearch/dino's own train_one_epoch
# in float64 (tests/fixtures/dino_train, made by make_dino_train_fixtures.py) within float32 tolerances; 1, 2 and 3
# ranks and any thread count give bit-identical outputs; a run killed with SIGKILL and resumed gives the uninterrupted
# run's bytes; SGD, norm_last_layer false, shuffled order and drop path run; bad views, heads and options are refused
# naming the problem.
source "$(dirname "$0")/lib.sh"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
FIX=$PROTLOC_SOURCE_DIR/tests/fixtures/dino_train
cd "$TEST_TMP" || exit 1

# the fixture's initial student as a backbone (DINO names) and a DINOHead (its names), float32
$PY - "$FIX" <<'PYEOF' || { fail "making the starting weights"; finish; }
import json, struct, sys
import numpy as np
fix = sys.argv[1]
names = [l.split() for l in open(fix + "/names.txt")]
flat = np.load(fix + "/student_init.npy")
D, C, P, K, HID, BOT = 32, 2, 8, 64, 48, 16
shape = {"cls_token": (1, 1, D), "pos_embed": (1, 17, D), "patch_embed.proj.weight": (D, C, P, P),
         "norm1.weight": (D,), "norm1.bias": (D,), "attn.qkv.weight": (3 * D, D), "attn.qkv.bias": (3 * D,),
         "attn.proj.weight": (D, D), "attn.proj.bias": (D,), "norm2.weight": (D,), "norm2.bias": (D,),
         "mlp.fc1.weight": (4 * D, D), "mlp.fc1.bias": (4 * D,), "mlp.fc2.weight": (D, 4 * D), "mlp.fc2.bias": (D,),
         "patch_embed.proj.bias": (D,), "norm.weight": (D,), "norm.bias": (D,),
         "head.mlp.0.weight": (HID, D), "head.mlp.0.bias": (HID,), "head.mlp.2.weight": (HID, HID),
         "head.mlp.2.bias": (HID,), "head.mlp.4.weight": (BOT, HID), "head.mlp.4.bias": (BOT,),
         "head.last_layer.weight_g": (K, 1), "head.last_layer.weight_v": (K, BOT)}
def save(path, tensors):
    header, off, blobs = {}, 0, []
    for n, a in tensors:
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        header[n] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b); blobs.append(b)
    h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h))); f.write(h); f.write(b"".join(blobs))
bb, hh, o = [], [], 0
for n, numel in names:
    key = n if n in shape else n.split(".", 2)[2]
    a = flat[o:o + int(numel)].reshape(shape[key]); o += int(numel)
    (hh if n.startswith("head.") else bb).append((n[len("head."):] if n.startswith("head.") else n, a))
save("S.safetensors", bb); save("H.safetensors", hh)
PYEOF

ref=(--model S.safetensors --heads 2 --head-init H.safetensors --global-views "$FIX/globals.npy"
     --local-views "$FIX/locals.npy" --optimizer adamw --lr 1e-3 --min-lr 1e-4 --warmup-epochs 0 --weight-decay 0.04
     --weight-decay-end 0.4 --momentum-teacher 0.9 --teacher-temp 0.07 --warmup-teacher-temp 0.04
     --warmup-teacher-temp-epochs 2 --student-temp 0.1 --center-momentum 0.9 --clip-grad 3 --freeze-last-layer 1
     --epochs 3 --batch 4 --drop-path 0 --no-shuffle)
same_outputs() {   # same_outputs A B WHAT
  local f ok=1
  for f in student.safetensors teacher.safetensors teacher_backbone.safetensors dino_loss.safetensors; do
    cmp -s "$1/$f" "$2/$f" || ok=0
  done
  [ "$ok" = 1 ] && pass "$3" || fail "$3: outputs differ"
}

# ---- 1. DINO's own step, three times ----
expect_status 0 "$PROTLOC" pretrain "${ref[@]}" --threads 2 --out r1
for f in student.safetensors teacher.safetensors teacher_backbone.safetensors dino_loss.safetensors \
         checkpoint.safetensors train.jsonl report.json; do
  [ -s "r1/$f" ] || fail "r1/$f missing"
done
if $PY - "$FIX" r1 <<'PYEOF'; then pass "3 DINO steps = facebookresearch/dino's train_one_epoch (float64)"; else fail "pretrain differs from DINO's reference"; fi
import json, struct, sys
import numpy as np
fix, out = sys.argv[1:3]
def load(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], "<f4").reshape(v["shape"])
            for k, v in h.items() if k != "__metadata__"}
names = [l.split() for l in open(fix + "/names.txt")]
worst = {}
for which in ("student", "teacher"):
    got = load(f"{out}/{which}.safetensors")
    want = np.load(f"{fix}/{which}.npy")[-1].astype(np.float64)
    o = 0
    for n, numel in names:
        key = ("head." + n[len("head."):]) if n.startswith("head.") else "backbone." + n
        g = got[key].astype(np.float64).ravel(); w = want[o:o + int(numel)]; o += int(numel)
        err = np.abs(g - w) - (3e-6 + 1e-5 * np.abs(w))
        assert err.max() <= 0, f"{which} {key}: off by {np.abs(g - w).max():.3g}"
        worst[which] = max(worst.get(which, 0), float(np.abs(g - w).max()))
tb = load(f"{out}/teacher_backbone.safetensors"); t = load(f"{out}/teacher.safetensors")
assert all(np.array_equal(tb[k], t["backbone." + k]) for k in tb), "teacher_backbone is not the teacher's backbone"
c = load(f"{out}/dino_loss.safetensors")["center"]
assert c.shape == (1, 64), c.shape
cw = np.load(fix + "/center.npy")[-1]
assert np.abs(c.ravel() - cw).max() <= 2e-6, f"center off by {np.abs(c.ravel() - cw).max():.3g}"
loss = [json.loads(l)["loss"] for l in open(out + "/train.jsonl") if '"loss"' in l]
lw = np.load(fix + "/loss.npy")
assert len(loss) == 3 and np.allclose(loss, lw, rtol=1e-5, atol=0), (loss, lw)
r = json.load(open(out + "/report.json"))
assert r["command"] == "pretrain" and r["results"]["steps"] == 3 and r["options"]["lr"] == 1e-3, r
print(f"max |diff|: student {worst['student']:.2e}, teacher {worst['teacher']:.2e}, "
      f"center {np.abs(c.ravel() - cw).max():.2e}; losses {loss}")
PYEOF

# ---- 2. bit-identical for any rank and thread count ----
expect_status 0 "$PROTLOC" pretrain "${ref[@]}" --threads 1 --out t1
same_outputs r1 t1 "1 and 2 threads bit-identical"
expect_status 0 "${MPIRUN[@]}" -np 2 "$PROTLOC" pretrain "${ref[@]}" --threads 1 --out r2
same_outputs r1 r2 "1 and 2 ranks bit-identical"
expect_status 0 "${MPIRUN[@]}" -np 3 "$PROTLOC" pretrain "${ref[@]}" --threads 1 --out r3
same_outputs r1 r3 "1 and 3 ranks bit-identical"
# --profile changes nothing but adds the per-phase table (student and teacher layers, the EMA hook)
expect_status 0 "$PROTLOC" pretrain "${ref[@]}" --threads 2 --profile --out prof
same_outputs r1 prof "--profile: bit-identical"
grep -q "^| after-step hooks (EMA) |" "$TEST_TMP/last.err" || fail "pretrain --profile: no EMA row in the table"
$PY -c "
import json, sys
p = json.load(open('prof/report.json'))['execution']['profile']
ph = {e['phase']: e for e in p['phases']}
assert p['steps'] == 2 and ph['qkv weight grad']['gflop_per_s'] > 0 and ph['head, loss, rest of micro-batch']['ms_per_step'] > 0, p
" || fail "pretrain --profile: report.json execution.profile"

# ---- 3. kill -9 and --resume: the uninterrupted run's bytes ----
$PY - <<'PYEOF' || fail "making more views"
import numpy as np
r = np.random.default_rng(5)
np.save("g16.npy", r.standard_normal((16, 2, 2, 32, 32)).astype(np.float32))
np.save("l16.npy", r.standard_normal((16, 2, 2, 16, 16)).astype(np.float32))
PYEOF
long=(--model S.safetensors --heads 2 --head-init H.safetensors --global-views g16.npy --local-views l16.npy
      --epochs 8 --batch 4 --lr 1e-3 --warmup-epochs 2 --drop-path 0.1 --checkpoint-every 1 --threads 2)
expect_status 0 "$PROTLOC" pretrain "${long[@]}" --out whole
killed=0
for attempt in 1 2 3; do
  rm -rf part
  "$PROTLOC" pretrain "${long[@]}" --out part >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 3000); do
    [ -e part/train.jsonl ] && [ "$(grep -c '"loss"' part/train.jsonl)" -ge 5 ] && break
    sleep 0.01
  done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ ! -e part/student.safetensors ] && [ -e part/checkpoint.safetensors ]; then killed=1; break; fi
done
if [ "$killed" = 1 ]; then
  expect_status 0 "$PROTLOC" pretrain "${long[@]}" --out part --resume
  grep -q "resum" "$TEST_TMP/last.err" && pass "the resumed run says where it resumes" ||
    fail "no resume message: $(grep -i checkpoint "$TEST_TMP/last.err" | head -2)"
  same_outputs whole part "kill -9 + --resume = the uninterrupted run (student, teacher, center)"
else
  fail "could not kill the run before it finished (3 tries)"
fi
expect_status 1 "$PROTLOC" pretrain "${long[@]/--lr/--min-lr}" --out part --resume   # other arguments
grep -q "other arguments" "$TEST_TMP/last.err" && pass "--resume with other arguments is refused, saying so" ||
  fail "--resume with other arguments: $(grep error "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" pretrain "${long[@]}" --out part   # an earlier run's checkpoint is never replaced

# ---- 4. the other paths run: SGD, norm_last_layer false, shuffle, random init of an arch and a head ----
expect_status 0 "$PROTLOC" pretrain "${ref[@]/adamw/sgd}" --momentum 0.9 --norm-last-layer false --out sgd
expect_status 0 "$PROTLOC" pretrain --arch vit_tiny --patch 8 --in-chans 2 --out-dim 128 --hidden-dim 64 \
  --bottleneck-dim 32 --global-views g16.npy --epochs 2 --batch 8 --threads 2 --out tiny
$PY - tiny/report.json <<'PYEOF' || fail "random-init run: report"
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["model_shape"]["dim"] == 192 and r["model_shape"]["out_dim"] == 128 and r["data"]["local_views"] == 0, r
assert r["options"]["lr"] == 5e-4 * 8 / 256 and r["results"]["steps"] == 4, r["options"]
assert all(math.isfinite(x) for x in r["results"]["epoch_loss"]), r["results"]
PYEOF

# ---- 5. bad input ----
$PY - <<'PYEOF'
import numpy as np
g = np.load("g16.npy")
np.save("l3ch.npy", np.zeros((16, 2, 3, 16, 16), np.float32))    # other channels
np.save("lbig.npy", np.zeros((16, 2, 2, 48, 48), np.float32))    # larger than the globals
np.save("g4d.npy", g[:, 0])                                        # (N, C, H, W): no view axis
g[3, 1, 0, 5, 5] = np.nan; np.save("gnan.npy", g)
PYEOF
base=(--model S.safetensors --heads 2 --head-init H.safetensors --epochs 1 --batch 4)
expect_status 1 "$PROTLOC" pretrain "${base[@]}" --global-views g16.npy --local-views l3ch.npy --out bad1
grep -q "to match --global-views" "$TEST_TMP/last.err" || fail "channel mismatch not named"
expect_status 1 "$PROTLOC" pretrain "${base[@]}" --global-views g16.npy --local-views lbig.npy --out bad2
grep -q "larger than the global views" "$TEST_TMP/last.err" || fail "large local views not named"
expect_status 1 "$PROTLOC" pretrain "${base[@]}" --global-views g4d.npy --out bad3
expect_status 1 "$PROTLOC" pretrain "${base[@]}" --global-views gnan.npy --out bad4
grep -q "NaN at element .* (image 3)" "$TEST_TMP/last.err" || fail "NaN view not named: $(grep error "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" pretrain "${base[@]/2/3}" --global-views g16.npy --out bad5   # 3 heads: 32 % 3 != 0
expect_status 1 "$PROTLOC" pretrain --arch vit_tiny --in-chans 2 --head-init H.safetensors --global-views g16.npy \
  --epochs 1 --batch 4 --out bad6   # a head for dim 32 on a dim-192 backbone
grep -q "takes 32 features, the backbone gives 192" "$TEST_TMP/last.err" || fail "head/backbone mismatch not named"
expect_status 2 "$PROTLOC" pretrain "${base[@]}" --global-views g16.npy --out-dim 1 --out bad7
expect_status 2 "$PROTLOC" pretrain "${base[@]}" --out bad8                          # no views
expect_status 1 "$PROTLOC" pretrain "${base[@]}" --global-views g16.npy --batch 32 --out bad9   # fewer than a batch
for d in bad1 bad2 bad3 bad4 bad6; do
  [ -e "$d/student.safetensors" ] && fail "$d: a refused run wrote weights"
done
finish
