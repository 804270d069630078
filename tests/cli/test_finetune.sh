#!/usr/bin/env bash
# CLI test for `protloc finetune` on arrays: the float64 PyTorch references (1 SGD step, 3 AdamW steps; patch 16 and 8,
# 2/3/4 channels, square and non-square inputs), bit-identical weights for 1/2 threads and 1/2/3 MPI ranks,
# bit-identical weights after kill -9 + --resume at a random step, and clear errors for bad inputs.
source "$(dirname "$0")/lib.sh"
FX=$PROTLOC_SOURCE_DIR/tests/fixtures/finetune
COMPARE=$PROTLOC_SOURCE_DIR/tests/cli/finetune_compare.py
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)

expect_status 0 "$PROTLOC" finetune --help
for flag in --head-init --optimizer --momentum --lr --weight-decay --steps --batch --schedule --warmup-steps \
            --drop-path --no-augment --no-shuffle --threads --resume --reduce; do
  grep -q -- "$flag" "$TEST_TMP/last.out" || fail "help lacks $flag"
done

# ---- 1. PyTorch float64 references ----
for case_dir in "$FX"/*/; do
  case_dir=${case_dir%/}
  name=$(basename "$case_dir")
  heads=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['heads'])" "$case_dir/meta.json")
  n=$($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['N'])" "$case_dir/meta.json")
  common=(--model "$case_dir/model.safetensors" --heads "$heads" --head-init "$case_dir/head.safetensors"
          --input "$case_dir/x.npy" --labels "$case_dir/y.npy" --schedule constant --warmup-steps 0 --drop-path 0
          --no-augment --no-shuffle --threads 2)
  expect_status 0 "$PROTLOC" finetune "${common[@]}" --out "$TEST_TMP/$name-sgd" --optimizer sgd --momentum 0 \
    --lr 0.1 --weight-decay 0 --steps 1 --batch "$n"
  if $PY "$COMPARE" "$case_dir" "$TEST_TMP/$name-sgd" sgd1; then pass "$name: 1 SGD step = torch"; else fail "$name: SGD step differs from torch"; fi
  expect_status 0 "$PROTLOC" finetune "${common[@]}" --out "$TEST_TMP/$name-adamw" --optimizer adamw --lr 0.001 \
    --weight-decay 0.04 --steps 3 --batch 4
  if $PY "$COMPARE" "$case_dir" "$TEST_TMP/$name-adamw" adamw3; then pass "$name: 3 AdamW steps = torch"; else fail "$name: AdamW steps differ from torch"; fi
done

# a head with more classes than its labels use (5 classes, labels 0 and 1 only): trains as PyTorch does, with a
# warning naming each class without a training image
S="$FX/p16_c4_64x64"
sparse=(--model "$S/model.safetensors" --heads 2 --head-init "$S/head.safetensors" --input "$S/x.npy"
        --labels "$S/y_sparse.npy" --schedule constant --warmup-steps 0 --drop-path 0 --no-augment --no-shuffle --threads 2)
expect_status 0 "$PROTLOC" finetune "${sparse[@]}" --out "$TEST_TMP/sparse-sgd" --optimizer sgd --momentum 0 --lr 0.1 \
  --weight-decay 0 --steps 1 --batch 6
grep -q "class '4' has no training image" "$TEST_TMP/last.err" || fail "unused class not warned about"
if $PY "$COMPARE" "$S" "$TEST_TMP/sparse-sgd" sparse_sgd1; then pass "sparse labels: 1 SGD step = torch"; else fail "sparse labels: SGD step differs from torch"; fi
expect_status 0 "$PROTLOC" finetune "${sparse[@]}" --out "$TEST_TMP/sparse-adamw" --optimizer adamw --lr 0.001 \
  --weight-decay 0.04 --steps 3 --batch 4
if $PY "$COMPARE" "$S" "$TEST_TMP/sparse-adamw" sparse_adamw3; then pass "sparse labels: 3 AdamW steps = torch"; else fail "sparse labels: AdamW steps differ from torch"; fi

# SGD with momentum, DINO-group weight decay, layer-wise lr decay, gradient-norm clipping and the cosine schedule
# (3 steps), and BCE-with-logits on multi-hot targets (1 step)
X="$FX/p16_c3_48x80"
xargs=(--model "$X/model.safetensors" --heads 3 --head-init "$X/head.safetensors" --input "$X/x.npy" --drop-path 0
       --no-augment --no-shuffle --threads 2)
expect_status 0 "$PROTLOC" finetune "${xargs[@]}" --labels "$X/y.npy" --out "$TEST_TMP/sgdx" --optimizer sgd \
  --momentum 0.9 --weight-decay 0.01 --layer-decay 0.75 --clip 0.5 --lr 0.05 --schedule cosine --warmup-steps 0 \
  --steps 3 --batch 4
if $PY "$COMPARE" "$X" "$TEST_TMP/sgdx" sgdx3; then pass "SGD momentum + decay + layer decay + clipping + cosine = torch"; else fail "sgdx3 differs from torch"; fi
expect_status 0 "$PROTLOC" finetune "${xargs[@]}" --labels "$X/t.npy" --out "$TEST_TMP/bce" --optimizer sgd \
  --momentum 0 --weight-decay 0 --lr 0.1 --schedule constant --steps 1 --batch 6
if $PY "$COMPARE" "$X" "$TEST_TMP/bce" bce1; then pass "BCE-with-logits SGD step = torch"; else fail "bce1 differs from torch"; fi
grep -q '"loss": "bce_with_logits"' "$TEST_TMP/bce/report.json" || fail "report does not name the BCE loss"

# the DINO4Cells MLP head (dropout off, so torch and protloc see the same network): 1 SGD step
M="$FX/p8_c2_40x40"
expect_status 0 "$PROTLOC" finetune --model "$M/model.safetensors" --heads 2 --head mlp --head-dropout 0 \
  --head-init "$M/mlp_head.safetensors" --input "$M/x.npy" --labels "$M/y.npy" --out "$TEST_TMP/mlp" --optimizer sgd \
  --momentum 0 --weight-decay 0 --lr 0.1 --schedule constant --steps 1 --batch 6 --drop-path 0 --no-augment \
  --no-shuffle --threads 2
if $PY "$COMPARE" "$M" "$TEST_TMP/mlp" mlp1; then pass "MLP head SGD step = torch"; else fail "mlp1 differs from torch"; fi

# --profile: the same weights as without it; report.json execution.profile has every GEMM phase of the ViT with a
# GFLOP/s figure, shares that add up to the step, and the log prints the table
expect_status 0 "$PROTLOC" finetune "${common[@]}" --out "$TEST_TMP/prof" --optimizer adamw --lr 0.001 \
  --weight-decay 0.04 --steps 3 --batch 4 --profile
grep -q "^| qkv weight grad |" "$TEST_TMP/last.err" || fail "--profile: no table in the log"
cmp -s "$TEST_TMP/$name-adamw/backbone.safetensors" "$TEST_TMP/prof/backbone.safetensors" || fail "--profile changed the weights"
if $PY - "$TEST_TMP/prof/report.json" <<'PYEOF'; then pass "--profile: per-phase table, same weights"; else fail "--profile report"; fi
import json, sys
p = json.load(open(sys.argv[1]))["execution"]["profile"]
ph = {e["phase"]: e for e in p["phases"]}
assert p["steps"] == 2 and p["workers"] == 2 and p["ms_per_step"] > 0, p
for layer in ("qkv", "proj", "fc1", "fc2"):
    for kind in ("forward", "input grad", "weight grad"):
        assert ph[f"{layer} {kind}"]["gflop_per_s"] > 0, (layer, kind, ph)
for name in ("patch embed forward", "patch embed weight grad", "attention forward", "attention backward",
             "layernorm forward", "gelu backward", "optimizer"):
    assert ph[name]["ms_per_step"] > 0, name
assert abs(sum(e["share"] for e in p["phases"]) - 1.0) < 1e-6, p
assert ph["rest of the step"]["share"] > -0.05, ph["rest of the step"]
PYEOF

# DINO's weight-decay schedule (--weight-decay-end): train.jsonl carries each step's decay, which is numpy's
# cosine_scheduler(0.04, 0.4, 1, 4) (no warm-up) within float formatting; the report names the end value; the weights
# differ from a constant-decay run's
wd_args=(--model "$S/model.safetensors" --heads 2 --head-init "$S/head.safetensors" --input "$S/x.npy" --labels "$S/y.npy"
         --schedule constant --warmup-steps 0 --drop-path 0 --no-augment --no-shuffle --threads 2 --optimizer adamw
         --lr 0.01 --weight-decay 0.04 --steps 4 --batch 4)
expect_status 0 "$PROTLOC" finetune "${wd_args[@]}" --weight-decay-end 0.4 --out "$TEST_TMP/wdsched"
expect_status 0 "$PROTLOC" finetune "${wd_args[@]}" --out "$TEST_TMP/wdconst"
if $PY - "$TEST_TMP/wdsched" <<'PYEOF'; then pass "--weight-decay-end: DINO's cosine per step"; else fail "--weight-decay-end schedule"; fi
import json, math, sys
import numpy as np
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/train.jsonl")]
iters = np.arange(4)
want = 0.4 + 0.5 * (0.04 - 0.4) * (1 + np.cos(np.pi * iters / len(iters)))   # DINO utils.cosine_scheduler
got = [r["wd"] for r in rows]
assert len(got) == 4 and all(abs(g - w) <= 1e-8 * abs(w) for g, w in zip(got, want)), (got, want)
assert json.load(open(d + "/report.json"))["options"]["weight_decay_end"] == 0.4
PYEOF
grep -q '"wd"' "$TEST_TMP/wdconst/train.jsonl" && fail "a constant decay logged a schedule"
cmp -s "$TEST_TMP/wdsched/backbone.safetensors" "$TEST_TMP/wdconst/backbone.safetensors" &&
  fail "--weight-decay-end changed nothing"

# ---- 2. bit-identical for threads and ranks (drop path, augmentation and shuffling on) ----
C="$FX/p16_c4_64x64"
run_args=(--model "$C/model.safetensors" --heads 2 --input "$C/x.npy" --labels "$C/y.npy" --steps 5 --batch 5
          --micro-batch 1 --drop-path 0.3 --lr 1e-3 --seed 7)
expect_status 0 "$PROTLOC" finetune "${run_args[@]}" --threads 1 --out "$TEST_TMP/id1"
expect_status 0 "$PROTLOC" finetune "${run_args[@]}" --threads 2 --out "$TEST_TMP/id2"
expect_status 0 "${MPIRUN[@]}" -np 2 "$PROTLOC" finetune "${run_args[@]}" --threads 1 --out "$TEST_TMP/id3"
expect_status 0 "${MPIRUN[@]}" -np 3 "$PROTLOC" finetune "${run_args[@]}" --threads 1 --out "$TEST_TMP/id4"
expect_status 0 "$PROTLOC" finetune "${run_args[@]}" --balanced --threads 2 --out "$TEST_TMP/bal1"
expect_status 0 "${MPIRUN[@]}" -np 3 "$PROTLOC" finetune "${run_args[@]}" --balanced --threads 1 --out "$TEST_TMP/bal3"
cmp -s "$TEST_TMP/bal1/backbone.safetensors" "$TEST_TMP/bal3/backbone.safetensors" && pass "--balanced: 1 = 3 ranks" ||
  fail "--balanced: 1 and 3 ranks differ"
cmp -s "$TEST_TMP/bal1/backbone.safetensors" "$TEST_TMP/id2/backbone.safetensors" && fail "--balanced changed nothing"
for d in id2 id3 id4; do
  if cmp -s "$TEST_TMP/id1/backbone.safetensors" "$TEST_TMP/$d/backbone.safetensors" &&
     cmp -s "$TEST_TMP/id1/head.safetensors" "$TEST_TMP/$d/head.safetensors"; then
    pass "weights of $d bit-identical to 1 rank x 1 thread"
  else
    fail "weights of $d differ from 1 rank x 1 thread"
  fi
done
if cmp -s "$TEST_TMP/id1/backbone.safetensors" "$C/model.safetensors"; then fail "training changed nothing"; fi
# the losses logged are identical too (columns before img_per_s)
if diff <(cut -d, -f1-5 "$TEST_TMP/id1/train.jsonl") <(cut -d, -f1-5 "$TEST_TMP/id4/train.jsonl") >/dev/null; then
  pass "train.jsonl losses identical for 1 and 3 ranks"
else
  fail "train.jsonl losses differ between 1 and 3 ranks"
fi
# --recompute (block activations recomputed in the backward pass) changes memory, not results
expect_status 0 "$PROTLOC" finetune "${run_args[@]}" --threads 2 --recompute --out "$TEST_TMP/rc"
cmp -s "$TEST_TMP/id1/backbone.safetensors" "$TEST_TMP/rc/backbone.safetensors" && pass "--recompute: same weights" ||
  fail "--recompute changes the weights"
expect_status 0 "${MPIRUN[@]}" -np 2 "$PROTLOC" finetune "${run_args[@]}" --threads 1 --reduce allreduce --out "$TEST_TMP/ar"
grep -q '"reduce": "allreduce"' "$TEST_TMP/ar/report.json" || fail "report lacks the reduce mode"

# ---- 2b. BF16 (GEMM and attention inputs rounded to BF16, FP32 master weights): the same guarantees ----
# BF16 may be missing only where the CPU lacks AVX512-BF16 (asked of /proc/cpuinfo) and protloc itself refuses it:
# exit 2 from its --kernels/--precision check, which runs before any compute (these arguments pass in FP32, and bf16
# is a valid --precision). Any other failure, and every failure on a CPU with AVX512-BF16, is a failure.
"$PROTLOC" finetune "${run_args[@]}" --precision bf16 --threads 1 --out "$TEST_TMP/bf1" >"$TEST_TMP/bf.out" 2>&1
bf_rc=$?
if [ "$bf_rc" -eq 0 ]; then
  pass "BF16 fine-tune runs"
  expect_status 0 "$PROTLOC" finetune "${run_args[@]}" --precision bf16 --threads 2 --out "$TEST_TMP/bf2"
  expect_status 0 "${MPIRUN[@]}" -np 3 "$PROTLOC" finetune "${run_args[@]}" --precision bf16 --threads 1 --out "$TEST_TMP/bf3"
  for d in bf2 bf3; do
    cmp -s "$TEST_TMP/bf1/backbone.safetensors" "$TEST_TMP/$d/backbone.safetensors" &&
      cmp -s "$TEST_TMP/bf1/head.safetensors" "$TEST_TMP/$d/head.safetensors" &&
      pass "BF16 weights of $d bit-identical to 1 rank x 1 thread" || fail "BF16 weights of $d differ from 1 rank x 1 thread"
  done
  grep -q '"precision": "bf16"' "$TEST_TMP/bf1/report.json" && grep -q '"kernels": "onednn"' "$TEST_TMP/bf1/report.json" &&
    pass "report records kernels onednn, precision bf16" || fail "report lacks the BF16 precision or backend"
  # BF16 changes the arithmetic, not the training: 1 SGD step against the float64 PyTorch reference, to BF16's accuracy
  X16="$FX/p16_c3_48x80"
  expect_status 0 "$PROTLOC" finetune --model "$X16/model.safetensors" --heads 3 --head-init "$X16/head.safetensors" \
    --input "$X16/x.npy" --labels "$X16/y.npy" --schedule constant --warmup-steps 0 --drop-path 0 --no-augment \
    --no-shuffle --threads 2 --out "$TEST_TMP/bfsgd" --optimizer sgd --momentum 0 --lr 0.1 --weight-decay 0 --steps 1 \
    --batch 6 --precision bf16
  if $PY "$COMPARE" "$X16" "$TEST_TMP/bfsgd" sgd1 bf16; then pass "BF16: 1 SGD step = torch to BF16 accuracy"; else fail "BF16 SGD step far from torch"; fi
  # the backend and precision are part of the checkpoint fingerprint: no resuming FP32 training in BF16
  expect_status 1 "$PROTLOC" finetune "${run_args[@]}" --precision bf16 --threads 2 --out "$TEST_TMP/id2" --resume
  grep -q "other arguments" "$TEST_TMP/last.err" || fail "BF16 resume of an FP32 run: $(cat "$TEST_TMP/last.err")"
elif [ "$bf_rc" -eq 2 ] && ! cpu_has_avx512_bf16; then
  skip_part "BF16 fine-tuning: this CPU has no AVX512-BF16 and protloc refuses --precision bf16 here (exit 2): $(tail -1 "$TEST_TMP/bf.out")"
else
  if cpu_has_avx512_bf16; then cpu="a CPU with AVX512-BF16"; else cpu="a CPU without AVX512-BF16"; fi
  fail "BF16 fine-tune failed (exit $bf_rc) on $cpu: $(tail -3 "$TEST_TMP/bf.out")"
fi
expect_status 2 "$PROTLOC" finetune "${run_args[@]}" --precision fp16 --out "$TEST_TMP/bad"
grep -q "fp32 or bf16" "$TEST_TMP/last.err" || fail "bad --precision message: $(cat "$TEST_TMP/last.err")"

# ---- 3. kill -9 at a random step, then --resume: bit-identical final weights ----
long_args=(--model "$C/model.safetensors" --heads 2 --input "$C/x.npy" --labels "$C/y.npy" --steps 240 --batch 5
           --micro-batch 2 --drop-path 0.2 --lr 1e-3 --checkpoint-every 7 --threads 2)
expect_status 0 "$PROTLOC" finetune "${long_args[@]}" --out "$TEST_TMP/whole"
kill_at=$((20 + RANDOM % 200))
mkdir -p "$TEST_TMP/killed"
"$PROTLOC" finetune "${long_args[@]}" --out "$TEST_TMP/killed" 2>/dev/null &
pid=$!
for _ in $(seq 6000); do
  [ "$(wc -l 2>/dev/null < "$TEST_TMP/killed/train.jsonl" || echo 0)" -ge "$kill_at" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.01
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
lines=$(wc -l < "$TEST_TMP/killed/train.jsonl")
echo "killed with $lines steps logged (aimed at $kill_at)"
[ "$lines" -lt 240 ] || fail "the run finished before kill -9 (raise --steps)"
expect_status 0 "$PROTLOC" finetune "${long_args[@]}" --out "$TEST_TMP/killed" --resume
grep -q "resuming" "$TEST_TMP/last.err" || fail "the resumed run did not say where it resumed"
if cmp -s "$TEST_TMP/whole/backbone.safetensors" "$TEST_TMP/killed/backbone.safetensors" &&
   cmp -s "$TEST_TMP/whole/head.safetensors" "$TEST_TMP/killed/head.safetensors"; then
  pass "kill -9 after step $lines + --resume: weights bit-identical"
else
  fail "kill -9 after step $lines + --resume: weights differ"
fi
[ "$(wc -l < "$TEST_TMP/killed/train.jsonl")" -eq 240 ] || fail "train.jsonl of the resumed run does not hold 240 steps"
# SIGTERM (Slurm's warning before a time limit): checkpoint, exit 143, and --resume finishes bit-identically
mkdir -p "$TEST_TMP/termed"
"$PROTLOC" finetune "${long_args[@]}" --out "$TEST_TMP/termed" 2>"$TEST_TMP/term.err" &
pid=$!
for _ in $(seq 6000); do
  [ "$(wc -l 2>/dev/null < "$TEST_TMP/termed/train.jsonl" || echo 0)" -ge 20 ] && break
  sleep 0.01
done
kill -TERM "$pid" 2>/dev/null
wait "$pid"
rc=$?
[ "$rc" -eq 143 ] || fail "SIGTERM: exit $rc, want 143: $(tail -n 2 "$TEST_TMP/term.err")"
grep -q "stopped by a signal after step" "$TEST_TMP/term.err" || fail "SIGTERM: no message: $(tail -n 2 "$TEST_TMP/term.err")"
expect_status 0 "$PROTLOC" finetune "${long_args[@]}" --out "$TEST_TMP/termed" --resume
cmp -s "$TEST_TMP/whole/backbone.safetensors" "$TEST_TMP/termed/backbone.safetensors" &&
  pass "SIGTERM -> exit 143 -> --resume: weights bit-identical" || fail "SIGTERM + --resume: weights differ"
# a resume with other arguments or another head is refused, naming why
expect_status 1 "$PROTLOC" finetune "${long_args[@]}" --lr 2e-3 --out "$TEST_TMP/killed" --resume
grep -q "other arguments" "$TEST_TMP/last.err" || fail "resume with another lr: $(cat "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" finetune "${long_args[@]}" --head-init "$C/head.safetensors" --out "$TEST_TMP/killed" --resume
grep -q "another model or head" "$TEST_TMP/last.err" || fail "resume with another head: $(cat "$TEST_TMP/last.err")"

# ---- 4. bad input: clear errors ----
$PY - "$TEST_TMP" "$C" <<'PYEOF'
import sys, numpy as np
t, c = sys.argv[1], sys.argv[2]
x = np.load(f"{c}/x.npy"); y = np.load(f"{c}/y.npy")
np.save(f"{t}/y5.npy", y[:5])
y9 = y.copy(); y9[3] = 9; np.save(f"{t}/y9.npy", y9)
xn = x.copy(); xn[2, 1, 5, 7] = np.nan; np.save(f"{t}/xnan.npy", xn)
np.save(f"{t}/yfloat.npy", y.astype(np.float32))
PYEOF
$PY - "$TEST_TMP/head16.safetensors" <<'PYEOF'
import json, struct, sys, numpy as np
w = np.zeros((5, 16), "<f4"); b = np.zeros(5, "<f4")
h = json.dumps({"weight": {"dtype": "F32", "shape": [5, 16], "data_offsets": [0, w.nbytes]},
                "bias": {"dtype": "F32", "shape": [5], "data_offsets": [w.nbytes, w.nbytes + b.nbytes]}}).encode()
h += b" " * ((8 - len(h) % 8) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(h)) + h + w.tobytes() + b.tobytes())
PYEOF
base=(--model "$C/model.safetensors" --heads 2 --steps 1 --batch 2)
expect_status 1 "$PROTLOC" finetune "${base[@]}" --input "$C/x.npy" --labels "$TEST_TMP/y5.npy" --out "$TEST_TMP/e1"
grep -q "5 labels but the input has 6 images" "$TEST_TMP/last.err" || fail "label count: $(cat "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" finetune "${base[@]}" --input "$C/x.npy" --labels "$TEST_TMP/y9.npy" --head-init "$C/head.safetensors" --out "$TEST_TMP/e2"
grep -q "label 9 of row 3 is out of range 0..4" "$TEST_TMP/last.err" || fail "class id range: $(cat "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" finetune "${base[@]}" --input "$TEST_TMP/xnan.npy" --labels "$C/y.npy" --out "$TEST_TMP/e3"
grep -q "image 2 holds NaN" "$TEST_TMP/last.err" || fail "NaN input: $(cat "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" finetune "${base[@]}" --input "$C/x.npy" --labels "$C/y.npy" --head-init "$TEST_TMP/head16.safetensors" --out "$TEST_TMP/e4"
grep -q "head weight has shape (5, 16); the backbone's dim is 32" "$TEST_TMP/last.err" || fail "head shape: $(cat "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" finetune "${base[@]}" --input "$C/x.npy" --labels "$TEST_TMP/yfloat.npy" --out "$TEST_TMP/e5"
grep -q "class ids of shape (N) or float multi-hot" "$TEST_TMP/last.err" || fail "float 1-D labels: $(cat "$TEST_TMP/last.err")"
touch "$TEST_TMP/afile"
expect_status 1 "$PROTLOC" finetune "${base[@]}" --input "$C/x.npy" --labels "$C/y.npy" --out "$TEST_TMP/afile/sub"
grep -q -- "--out $TEST_TMP/afile/sub" "$TEST_TMP/last.err" || fail "unwritable --out: $(cat "$TEST_TMP/last.err")"
for e in e1 e2 e3 e4 e5; do
  [ -e "$TEST_TMP/$e/backbone.safetensors" ] && fail "$e: weights written despite the error"
done
# a loss that turns NaN stops the run at that step and keeps the last good checkpoint
P="$FX/p8_c2_40x40"
expect_status 1 "$PROTLOC" finetune --model "$P/model.safetensors" --heads 2 --input "$P/x.npy" --labels "$P/y.npy" \
  --out "$TEST_TMP/nan" --optimizer sgd --momentum 0.9 --lr 100 --steps 40 --batch 6 --checkpoint-every 1 --no-augment
grep -Eq "the loss is (NaN|infinite) at step [0-9]+" "$TEST_TMP/last.err" || fail "NaN loss: $(cat "$TEST_TMP/last.err")"
[ -s "$TEST_TMP/nan/checkpoint.safetensors" ] || fail "NaN loss: the last good checkpoint is gone"
[ -e "$TEST_TMP/nan/backbone.safetensors" ] && fail "NaN loss: final weights written"
expect_status 2 "$PROTLOC" finetune "${base[@]}" --input "$C/x.npy" --labels "$C/y.npy" --out "$TEST_TMP/e6" --optimizer adam
finish
