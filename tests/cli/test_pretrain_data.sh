#!/usr/bin/env bash
# CLI test for `protloc pretrain` on images with DINO's multi-crop augmentation: on `protloc synth` data (a manifest
# and a model card, no labels used) pretraining a small ViT from DINO's random init moves the loss clearly below
# log(out_dim) (no collapse to the uniform output) and the teacher's backbone, embedded with `protloc run --model
# OUT/model.json`, scores a clearly higher kNN macro F1 than the random-init backbone on the same data; the training
# cache gives bit-identical weights to the in-memory path, 2 ranks to 1; --input arrays train; a failing manifest item
# is skipped and listed (exit 3); options that do not fit are refused.
source "$(dirname "$0")/lib.sh"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
cd "$TEST_TMP" || exit 1

tiny_synth_card tiny-dino || { fail "synth data, model init or card"; finish; }
# A recipe that learns on these 320 synthetic fields of view within seconds: a sharper teacher (0.02; DINO's 0.04
# collapsed to the uniform output, loss = log(out_dim), on this small set in 600 steps), constant weight decay, no
# drop path. Measured: loss 4.98 -> 5.91 (log 1024 = 6.93), kNN macro F1 0.47 against 0.36 for the random init.
recipe=(--manifest data/manifest.tsv --model card.json --size 128 --global-size 64 --local-size 32 --local-crops 4
        --out-dim 1024 --hidden-dim 256 --bottleneck-dim 64 --batch 32 --warmup-epochs 5 --lr 5e-4
        --weight-decay-end 0.04 --drop-path 0 --teacher-temp 0.02 --warmup-teacher-temp 0.02)

# ---- 1. it learns (600 steps: the release build; a sanitizer build runs the rest of this test) ----
if [ "${PROTLOC_SANITIZE:-0}" = 1 ]; then
  skip_part "sanitizer build: the 600-step learning run and its kNN check run in the release build only"
else
expect_status 0 "$PROTLOC" pretrain "${recipe[@]}" --epochs 60 --eval-every 30 --threads 2 --out pt
[ -s pt/model.json ] && [ -s pt/teacher_backbone.safetensors ] || fail "pt/model.json or the teacher's backbone missing"
expect_status 0 "$PROTLOC" run --manifest data/manifest.tsv --model pt/model.json --out pt.h5 --threads 2
expect_status 0 "$PROTLOC" run --manifest data/manifest.tsv --model card.json --out init.h5 --threads 2
expect_status 0 "$PROTLOC" knn --store pt.h5 --json pt.knn.json
expect_status 0 "$PROTLOC" knn --store init.h5 --json init.knn.json
if $PY - pt init <<'PYEOF'; then pass "DINO leaves log(out_dim) and its teacher beats the random init in kNN F1"; else fail "pretraining did not learn"; fi
import json, math, sys
lines = [json.loads(l) for l in open("pt/train.jsonl")]
steps = [l for l in lines if "loss" in l]
epochs = [l for l in lines if "teacher_entropy" in l]
r = json.load(open("pt/report.json"))
res = r["results"]
assert len(epochs) == 60 and [l["epoch"] for l in epochs] == list(range(60)), "one epoch line per epoch"
knn = [l.get("knn_macro_f1") for l in epochs]
assert knn[29] is not None and knn[59] is not None and sum(k is not None for k in knn) == 2, knn
assert abs(res["epoch_knn_macro_f1"][59] - knn[59]) < 1e-6 and res["collapse_warnings"] == 0, res
assert max(res["epoch_teacher_entropy"]) < 0.97 * math.log(1024), "the monitor saw a collapse"
last = r["results"]["epoch_loss"][-1]
logk = math.log(1024)
f1 = {s: json.load(open(f"{s}.knn.json"))["best_macro_f1"] for s in sys.argv[1:]}
print(f"loss {steps[0]['loss']:.3f} -> last epoch {last:.3f} (log 1024 = {logk:.3f}); kNN best macro F1: "
      f"pretrained {f1['pt']:.3f}, random init {f1['init']:.3f}")
assert len(steps) == 600 and r["data"]["images"] == 320 and r["data"]["local_views"] == 4, (len(steps), r["data"])
assert last < 0.93 * logk, "the loss stayed at log(out_dim): the outputs collapsed to uniform"
assert f1["pt"] > f1["init"] + 0.05, "the pretrained teacher does not beat the random init"
# the monitor's kNN (teacher features at 64 px, train -> test) and `protloc knn` on the run store agree roughly
print(f"monitor kNN macro F1 at epoch 60: {knn[59]:.3f}")
assert knn[59] > f1["init"], "the monitor's kNN F1 is below the random init's"
PYEOF
[ -s pt/pretrain_loss.png ] && [ -s pt/pretrain_teacher.svg ] && [ -s pt/pretrain_knn_f1.png ] &&
  [ -s pt/pretrain_lr.png ] && [ -s pt/pretrain_teacher_temp.svg ] ||
  fail "pretraining plots missing: $(ls pt)"
# DINO's own temperatures on this small set: the targets collapse to uniform, and the monitor says so
expect_status 0 "$PROTLOC" pretrain "${recipe[@]/0.02/0.04}" --teacher-temp 0.04 --lr 1e-2 --out-dim 256 --epochs 12 \
  --threads 2 --out collapse
grep -q "near uniform .* DINO's remedies: a lower teacher temperature" "$TEST_TMP/last.err" &&
  pass "a collapse to uniform is warned about, naming DINO's remedies" ||
  fail "no collapse warning: $(grep -c warn "$TEST_TMP/last.err") warnings"
fi

# ---- 2. the training cache and the ranks: bit-identical ----
short=("${recipe[@]}" --epochs 2 --checkpoint-every 0)
same() {   # same A B WHAT
  if cmp -s "$1/student.safetensors" "$2/student.safetensors" && cmp -s "$1/teacher.safetensors" "$2/teacher.safetensors" &&
     cmp -s "$1/dino_loss.safetensors" "$2/dino_loss.safetensors"; then pass "$3"; else fail "$3: outputs differ"; fi
}
expect_status 0 "$PROTLOC" pretrain "${short[@]}" --threads 2 --out m1
expect_status 0 "$PROTLOC" pretrain "${short[@]}" --threads 2 --cache cache --out c1
grep -q "320 prepared now" "$TEST_TMP/last.err" && pass "the first cached run builds the cache" || fail "no cache build"
same m1 c1 "training cache = in memory"
expect_status 0 "${MPIRUN[@]}" -np 2 "$PROTLOC" pretrain "${short[@]}" --threads 1 --cache cache --out c2
grep -q "(320 reused, 0 prepared now" "$TEST_TMP/last.err" && pass "the second run reuses the cache" || fail "cache not reused"
same m1 c2 "2 ranks from the cache = 1 rank in memory"

# ---- 3. the preview: the crops training draws, per channel ----
expect_status 0 "$PROTLOC" pretrain "${recipe[@]}" --preview 3 --out pv
$PY - pv <<'PYEOF' && pass "--preview writes the crops of 3 images (2 channels x 6 views)" || fail "--preview"
import sys
from PIL import Image
im = Image.open(sys.argv[1] + "/preview.png")
# columns: 2 globals of 64 + 4 locals of 32, 4-pixel gaps; rows: 3 images x 2 channels of 64
assert im.size == (2 * 68 + 4 * 36 + 4, 3 * 2 * 68 + 4) and im.mode == "L", (im.size, im.mode)
assert len(set(im.getdata())) > 50, "a flat preview"
PYEOF
[ -e pv/student.safetensors ] && fail "--preview trained"

# ---- 4. arrays, failures, refusals ----
$PY - <<'PYEOF' || fail "making arrays"
import numpy as np
np.save("x.npy", np.random.default_rng(3).standard_normal((40, 2, 80, 80)).astype(np.float32))
PYEOF
expect_status 0 "$PROTLOC" pretrain --input x.npy --model vit.safetensors --heads 2 --global-size 64 --local-size 32 \
  --local-crops 2 --out-dim 64 --hidden-dim 32 --bottleneck-dim 16 --batch 8 --epochs 1 --threads 2 --out arr
$PY - arr/report.json <<'PYEOF' || fail "--input run"
import json, math, sys
r = json.load(open(sys.argv[1]))
assert r["results"]["steps"] == 5 and all(math.isfinite(x) for x in r["results"]["epoch_loss"]), r["results"]
PYEOF
[ -e arr/model.json ] && fail "arr/model.json written without a card"
head -n 2 data/manifest.tsv >bad.tsv
tail -n +3 data/manifest.tsv | head -n 40 >>bad.tsv
awk -F'\t' 'BEGIN { OFS = "\t" } NR == 3 { $1 = "broken"; $6 = "missing.tif#0" } NR == 3 || NR > 2 { print }' \
  data/manifest.tsv | head -n 1 >>bad.tsv
cp bad.tsv data/bad.tsv
expect_status 3 "$PROTLOC" pretrain "${recipe[@]/manifest.tsv/bad.tsv}" --epochs 1 --threads 2 --out fl
grep -q "broken" fl/failures.tsv 2>/dev/null && pass "a failing item is listed in failures.tsv (exit 3)" ||
  fail "failures.tsv: $(cat fl/failures.tsv 2>/dev/null)"
expect_status 2 "$PROTLOC" pretrain "${recipe[@]}" --input x.npy --out x1         # two data sources
expect_status 2 "$PROTLOC" pretrain --manifest data/manifest.tsv --arch vit_tiny --in-chans 2 --out x2   # no card
expect_status 2 "$PROTLOC" pretrain --input x.npy --model vit.safetensors --cache c --out x3   # --cache without a manifest
expect_status 1 "$PROTLOC" pretrain --input x.npy --model vit.safetensors --heads 2 --global-size 32 \
  --local-size 48 --batch 8 --epochs 1 --out x4
grep -q "larger than --global-size" "$TEST_TMP/last.err" || fail "local larger than global not named"
expect_status 1 "$PROTLOC" pretrain --input x.npy --model vit.safetensors --heads 2 --rgb --batch 8 --epochs 1 --out x5
grep -q "rgb needs 3-channel" "$TEST_TMP/last.err" || fail "--rgb on 2 channels not named"
# ---- 5. BF16: finite, and bit-identical at 1 and 2 ranks (on every CPU: where it has no AVX512-BF16 the onednn
# backend widens BF16 operands to FP32, with the same guarantees) ----
expect_status 0 "$PROTLOC" pretrain "${short[@]}" --precision bf16 --threads 2 --out b1
expect_status 0 "${MPIRUN[@]}" -np 2 "$PROTLOC" pretrain "${short[@]}" --precision bf16 --threads 1 --out b2
same b1 b2 "BF16: 1 and 2 ranks bit-identical"
cmp -s m1/student.safetensors b1/student.safetensors && fail "--precision bf16 changed nothing"

# ---- 6. a locked --out: exit 6, nothing done ----
mkdir -p lk
$PY - lk/pretrain.lock <<'PYEOF' &
import fcntl, sys, time
f = open(sys.argv[1], "a+")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
open(sys.argv[1] + ".held", "w").close()
time.sleep(30)
PYEOF
holder=$!
for _ in $(seq 1 500); do [ -e lk/pretrain.lock.held ] && break; sleep 0.01; done
expect_status 6 "$PROTLOC" pretrain "${short[@]}" --threads 2 --out lk
grep -q "locked by another run" "$TEST_TMP/last.err" || fail "the lock's holder is not named"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
[ -e lk/student.safetensors ] && fail "a locked --out was written"
finish
