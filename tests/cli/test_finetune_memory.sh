#!/usr/bin/env bash
# CLI test for the memory estimate of `protloc finetune` (docs/guide.md "Fine-tuning", **Memory**): the total it logs
# at the start and writes to report.json (execution.memory) is within 10% of the peak resident memory measured by
# /usr/bin/time -v, on shapes where the estimated parts (not the process baseline) hold most of the memory:
#   A. arrays: ViT dim 64, depth 2, 64x64 x 3, 1000 images, micro-batch 16 (data and activations)
#   B. manifest with a validation split: ViT dim 192, depth 4, 96x96 x 2 canvases (weights, optimizer, gradient
#      tree, best-epoch copy, activations)
#   C. as B's model on arrays under 2 MPI ranks (rank 0: the summed gradient and the gather buffers)
# The parts in report.json add up to the total, and the log line names the same total. A sanitizer build (shadow
# memory, quarantine) runs these checks but skips the comparison with the measured peak (exit 77).
source "$(dirname "$0")/lib.sh"
SANITIZE=${PROTLOC_SANITIZE:-0}
[ "$SANITIZE" = 1 ] && skip_part "sanitizer build: its resident memory is not the program's, so the estimate is not compared with the measured peak"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
cd "$TEST_TMP" || exit 1
TIME=/usr/bin/time
[ -x "$TIME" ] || echo "note: $TIME is missing; the measured peak is report.json's peak_measured (getrusage)" >&2

"$PROTLOC" model init --dim 64 --depth 2 --heads 2 --patch 8 --in-chans 3 --img-size 64 --seed 1 \
  --out a.safetensors >/dev/null 2>&1 || fail "model init a"
"$PROTLOC" model init --dim 192 --depth 4 --heads 3 --patch 16 --in-chans 2 --img-size 96 --seed 1 \
  --out b.safetensors >/dev/null 2>&1 || fail "model init b"
$PY - <<'PYEOF' || fail "making the arrays"
import numpy as np
r = np.random.RandomState(0)
np.save("ax.npy", r.randn(1000, 3, 64, 64).astype(np.float32))
np.save("ay.npy", (np.arange(1000) % 4).astype(np.int64))
np.save("bx.npy", r.randn(300, 2, 96, 96).astype(np.float32))
np.save("by.npy", (np.arange(300) % 5).astype(np.int64))
PYEOF
"$PROTLOC" synth --kind opencell --classes 8 --per-class 40 --seed 1 --size 128 --out data >/dev/null 2>&1 ||
  fail "synth"
cat >card.json <<JSON
{"name": "memory-test-vit", "weights": "b.safetensors", "heads": 3, "input_slots": ["protein", "nucleus"],
 "normalisation": {"mode": "self"}, "pixel_size_um": 0.206, "patch": 16}
JSON

# check NAME OUT LOG TIMEFILE: report.json's estimate vs the peak RSS in TIMEFILE (/usr/bin/time -v output)
check() {
  local name=$1 out=$2 log=$3 timefile=$4 what="reported memory = measured peak RSS within 10%"
  [ "$SANITIZE" = 1 ] && what="memory parts add up to the total the log names (not compared with the peak)"
  if $PY - "$out/report.json" "$log" "$timefile" "$SANITIZE" <<'PYEOF'; then pass "$name: $what"; else fail "$name: memory estimate"; fi
import json, os, re, sys
mem = json.load(open(sys.argv[1]))["execution"]["memory"]
parts = ["baseline", "runtime", "weights", "parameters", "bf16", "optimizer", "gradients", "best", "activations",
         "batches", "data", "transient"]
MiB = 1048576.0
total = mem["total"]
assert abs(sum(mem[p] for p in parts) - total) <= len(parts), f"the parts do not add up to the total {total}"
log = open(sys.argv[2]).read()
m = re.search(r"memory per rank: ([0-9.]+) MiB = baseline", log)
assert m, "no memory line in the log"
assert abs(float(m.group(1)) - total / MiB) < 0.06, f"the log says {m.group(1)} MiB, report.json {total / MiB:.1f}"
measured = 0.0
if os.path.exists(sys.argv[3]):
    for line in open(sys.argv[3]):
        if "Maximum resident set size" in line:
            measured = int(line.split()[-1]) * 1024.0
if measured == 0:
    measured = mem["peak_measured"]
print("  " + ", ".join(f"{p} {mem[p] / MiB:.1f}" for p in parts if mem[p]))
print(f"  reported {total / MiB:.1f} MiB, measured peak RSS {measured / MiB:.1f} MiB "
      f"(ratio {total / measured:.3f}); baseline {mem['baseline'] / total:.0%} of the total")
if sys.argv[4] == "1":
    sys.exit(0)
assert mem["baseline"] < 0.4 * total, "the baseline dominates: this shape does not test the estimated parts"
assert abs(total / measured - 1) <= 0.10, "reported and measured differ by more than 10%"
PYEOF
}

# timed OUT cmd...: run under /usr/bin/time -v (when present) writing OUT.time; stderr in OUT.log
timed() {
  local out=$1; shift
  if [ -x "$TIME" ]; then
    expect_status 0 "$TIME" -v -o "$out.time" "$@"
  else
    expect_status 0 "$@"
  fi
  cp "$TEST_TMP/last.err" "$out.log"
}

timed A "$PROTLOC" finetune --model a.safetensors --heads 2 --input ax.npy --labels ay.npy --out A --steps 4 \
  --batch 32 --micro-batch 16 --threads 2
check "A: arrays, dim 64 depth 2, 64x64, micro-batch 16" A A.log A.time
grep -q '"best": 0' A/report.json || fail "A: arrays have no validation split, yet a best-epoch copy is counted"

timed B "$PROTLOC" finetune --manifest data/manifest.tsv --model card.json --size 96 --out B --epochs 1 --batch 32 \
  --micro-batch 8 --threads 2
check "B: manifest with validation, dim 192 depth 4, 96x96" B B.log B.time
$PY -c 'import json, sys; m = json.load(open(sys.argv[1]))["execution"]["memory"]; sys.exit(not m["best"] == m["parameters"] > 0)' \
  B/report.json || fail "B: the validation split's best-epoch copy is not counted"

# 2 ranks, 1 thread each: rank 0 writes the report; its own peak is measured
if [ -x "$TIME" ]; then
  expect_status 0 "${MPIRUN[@]}" -np 2 bash -c '"$0" -v -o "C.time.$OMPI_COMM_WORLD_RANK" "$@"' "$TIME" "$PROTLOC" \
    finetune --model b.safetensors --heads 3 --input bx.npy --labels by.npy --out C --steps 4 --batch 32 \
    --micro-batch 4 --threads 1
else
  expect_status 0 "${MPIRUN[@]}" -np 2 "$PROTLOC" finetune --model b.safetensors --heads 3 --input bx.npy \
    --labels by.npy --out C --steps 4 --batch 32 --micro-batch 4 --threads 1
fi
cp "$TEST_TMP/last.err" C.log
check "C: 2 MPI ranks (rank 0), dim 192 depth 4, 96x96" C C.log C.time.0
finish
