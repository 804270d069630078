#!/usr/bin/env bash
# A REAL single-node Slurm (munged + slurmctld + slurmd from tests/slurm/local_slurm.sh) runs slurm/protloc.sbatch
# (2 MPI ranks via srun --mpi=pmix) and the dependent slurm/reduce.sbatch on synthetic data; then slurm/nightly.sh
# runs twice with new images added in between and must process only those. Also: a failing job is reported as
# failed and its dependent reduce is cancelled; the lock refuses an overlapping nightly; a failed nightly leaves the
# previous store, manifest and latest report untouched; a re-run whose every item fails keeps the store and nightly
# says so; SIGTERM to a 2-rank job stops it cleanly and a resubmission resumes; a training-cache job feeds a
# fine-tuning job array whose tasks read it side by side; a pretraining job stopped by SIGTERM requeues itself and
# resumes bit-identically. If Slurm cannot start, the test
# FAILS with the reason.
set -u
. "$(dirname "$0")/lib.sh"
SRC=$PROTLOC_SOURCE_DIR
SL="$TEST_TMP/slurm"
# Always shut Slurm and munge down (then remove the temp folder, as lib.sh would).
trap 'bash "$SRC/tests/slurm/local_slurm.sh" stop "$SL" >/dev/null 2>&1; [ -n "${KEEP_TMP:-}" ] || rm -rf "$TEST_TMP"' EXIT
trap 'exit 130' INT TERM
cd "$TEST_TMP" || exit 1

if ! bash "$SRC/tests/slurm/local_slurm.sh" start "$SL" >"$TEST_TMP/slurm-start.log" 2>&1; then
  cat "$TEST_TMP/slurm-start.log" >&2
  fail "Slurm could not start on this machine: $(tail -n 1 "$TEST_TMP/slurm-start.log")"
  finish
fi
pass "local Slurm up: $(tail -n 1 "$TEST_TMP/slurm-start.log")"
# shellcheck disable=SC1091
. "$SL/env.sh"
export PROTLOC PROTLOC_PROBE_ARGS="--head logreg"

# wait_jobs TIMEOUT ID...: poll squeue every 0.2 s until none of the jobs is queued or running
wait_jobs() {
  local limit=$1; shift
  local end=$((SECONDS + limit)) id busy
  while [ $SECONDS -lt $end ]; do
    busy=0
    for id in "$@"; do squeue -h -j "$id" 2>/dev/null | grep -q . && busy=1; done
    [ $busy -eq 0 ] && return 0
    sleep 0.2
  done
  fail "jobs $* still queued/running after ${limit}s"; squeue >&2; return 1
}
job_state() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n 's/^JobState=//p' | head -1; }

# ---- synthetic data, demo-sized untrained model and its card ----
"$PROTLOC" -q synth --kind opencell --classes 3 --per-class 6 --seed 11 --size 128 --out data || fail "synth failed"
"$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --seed 1 --out model.safetensors \
  || fail "model init failed"
cat >card.json <<JSON
{"name": "test-untrained-vit", "weights": "model.safetensors",
 "sha256": "$(sha256sum model.safetensors | cut -d' ' -f1)",
 "input_slots": ["protein", "nucleus"], "normalisation": {"mode": "self"}, "pixel_size_um": 0.206, "patch": 16}
JSON
n_items=$(($(grep -vc '^#' data/manifest.tsv) - 1))

# ---- 1. embed (2 ranks over srun) then the dependent reduce ----
mkdir -p rep
embed=$(PROTLOC_STATUS="$TEST_TMP/embed.status" sbatch --parsable -n 2 --output="$TEST_TMP/embed.log" \
  "$SRC/slurm/protloc.sbatch" --manifest data/manifest.tsv --model card.json --out "$TEST_TMP/store.h5") \
  || fail "sbatch protloc.sbatch refused"
reduce=$(PROTLOC_STATUS="$TEST_TMP/reduce.status" sbatch --parsable -n 2 --output="$TEST_TMP/reduce.log" \
  --dependency="afterok:$embed" --kill-on-invalid-dep=yes \
  "$SRC/slurm/reduce.sbatch" --store "$TEST_TMP/store.h5" --report-dir "$TEST_TMP/rep") || fail "sbatch reduce refused"
wait_jobs 300 "$embed" "$reduce"
[ "$(job_state "$embed")" = COMPLETED ] || { fail "embed job $embed: $(job_state "$embed")"; cat "$TEST_TMP/embed.log" >&2; }
[ "$(job_state "$reduce")" = COMPLETED ] || { fail "reduce job $reduce: $(job_state "$reduce")"; cat "$TEST_TMP/reduce.log" >&2; }
if ! grep -q '^ok' embed.status || ! grep -q '^ok' reduce.status; then fail "status files: $(cat embed.status reduce.status 2>&1)"; fi
grep -q "2 rank(s)" embed.log || fail "embed job did not run 2 ranks: $(head -3 embed.log)"
grep -q "JobId=$embed .*JobState=COMPLETED" "$SL/log/jobcomp.txt" || fail "jobcomp has no COMPLETED record for $embed"
# The store from Slurm equals a plain 1-rank run, item for item.
"$PROTLOC" -q run --manifest data/manifest.tsv --model card.json --out "$TEST_TMP/store1.h5" >/dev/null || fail "1-rank run failed"
$PY - store.h5 store1.h5 data/manifest.tsv "$n_items" <<'PYEOF' || fail "store from the Slurm job is wrong"
import sys, h5py, numpy as np
a, b, man, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ids = [l.split("\t")[0] for l in open(man) if not l.startswith("#")][1:]
with h5py.File(a) as fa, h5py.File(b) as fb:
    got = [s.decode().rstrip("\0") for s in fa["items/id"][()]]
    assert got == ids, (got[:3], ids[:3])
    e = fa["fov/embedding"][()]
    assert e.shape == (n, 64) and np.isfinite(e).all(), e.shape
    assert np.array_equal(e, fb["fov/embedding"][()]), "2-rank Slurm store differs from the 1-rank store"
print("store ok:", e.shape)
PYEOF
$PY - rep <<'PYEOF' || fail "reduce report incomplete"
import sys, json, os
r = sys.argv[1]
k = json.load(open(os.path.join(r, "knn", "knn.json")))
assert len(k["k"]) == len(k["macro_f1"]) > 0
p = json.load(open(os.path.join(r, "probe", "probe.json")))
for f in ("knn/knn_f1_vs_k.png", "knn/knn_confusion.png", "probe/probe_f1_vs_fraction.png"):
    assert os.path.getsize(os.path.join(r, f)) > 1000, f
print("report ok: best knn macro F1", max(k["macro_f1"]))
PYEOF
pass "sbatch embed (2 ranks) + dependent reduce"

# ---- 2. a failing embed job: reported as failed, its dependent reduce never runs ----
printf 'id\tdataset\tlabel\tsplit\tgroup\tprotein\nx\ty\t\tnot-a-split\tg\tmissing.tif\n' >bad.tsv
bad=$(PROTLOC_STATUS="$TEST_TMP/bad.status" sbatch --parsable -n 1 --output="$TEST_TMP/bad.log" \
  "$SRC/slurm/protloc.sbatch" --manifest bad.tsv --model card.json --out "$TEST_TMP/bad.h5")
badred=$(PROTLOC_STATUS="$TEST_TMP/badred.status" sbatch --parsable -n 1 --output="$TEST_TMP/badred.log" \
  --dependency="afterok:$bad" --kill-on-invalid-dep=yes "$SRC/slurm/reduce.sbatch" --store bad.h5 --report-dir badrep)
wait_jobs 120 "$bad" "$badred"
[ "$(job_state "$bad")" = FAILED ] || fail "bad embed job should be FAILED, is $(job_state "$bad")"
grep -q '^failed' bad.status || fail "bad job status file: $(cat bad.status 2>&1)"
grep -q "bad.tsv:2" bad.log || fail "the failed job's log does not say what is wrong: $(cat bad.log)"
[ "$(job_state "$badred")" = CANCELLED ] || fail "dependent reduce should be CANCELLED, is $(job_state "$badred")"
if [ -e bad.h5 ] || [ -e badrep ]; then fail "a failed job left outputs behind"; fi

# ---- 3. nightly.sh twice, with new images in between: only those are processed ----
mkdir -p incoming
cp data/*_proj.tif incoming/
awk -F'\t' 'BEGIN { OFS = "," } /^#/ { next } $1 == "id" { print "id,labels,group,split"; next } { print $1, $3, $5, $4 }' \
  data/manifest.tsv >labels.csv
NIGHTLY=(bash "$SRC/slurm/nightly.sh" --data incoming --layout opencell --labels labels.csv --model card.json
         --work work --launcher slurm --ranks 2)
expect_status 0 "${NIGHTLY[@]}"
if [ ! -L work/reports/latest ] || [ ! -f work/reports/latest/summary.txt ]; then fail "first nightly: no latest report"; fi
first=$(readlink work/reports/latest)
grep -q "added=$n_items .*reused=0" work/reports/latest/embed.log || fail "first nightly summary: $(grep summary: work/reports/latest/embed.log)"
if [ ! -f work/reports/latest/knn/knn.json ] || [ ! -f work/reports/latest/probe/probe.json ]; then
  fail "first nightly: reduce reports missing"
fi
sum1=$(sha256sum work/store.h5 | cut -d' ' -f1)

expect_status 0 "${NIGHTLY[@]}"
grep -q "nothing to do" "$TEST_TMP/last.out" || fail "unchanged data should be a no-op: $(tail -2 "$TEST_TMP/last.out")"
[ "$(readlink work/reports/latest)" = "$first" ] || fail "a no-op nightly must not publish a report"

"$PROTLOC" -q synth --kind opencell --classes 3 --per-class 2 --seed 12 --size 128 --out more || fail "synth (more) failed"
n_new=0
for f in more/*_proj.tif; do cp "$f" "incoming/new_$(basename "$f")"; n_new=$((n_new + 1)); done
awk -F'\t' 'BEGIN { OFS = "," } /^#/ || $1 == "id" { next } { print "new_" $1, $3, "new_" $5, $4 }' more/manifest.tsv >>labels.csv
expect_status 0 "${NIGHTLY[@]}"
second=$(readlink work/reports/latest)
[ "$second" != "$first" ] || fail "second nightly did not publish a new report"
[ -d "work/reports/$first" ] || fail "the previous report must stay"
grep -q "added $n_new, changed 0, removed 0, unchanged $n_items" "work/reports/$second/diff.txt" \
  || fail "second nightly diff: $(tail -1 "work/reports/$second/diff.txt")"
grep -q "added=$n_new changed=0 removed=0 reused=$n_items .*computed=$n_new " "work/reports/$second/embed.log" \
  || fail "second nightly must compute only the $n_new new images: $(grep summary: "work/reports/$second/embed.log")"
$PY - store.h5 work/store.h5 "$n_items" "$n_new" <<'PYEOF' || fail "incremental store wrong"
import sys, h5py, numpy as np
old, new, n, m = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with h5py.File(old) as fo, h5py.File(new) as fn:
    ido = [s.decode().rstrip("\0") for s in fo["items/id"][()]]
    idn = [s.decode().rstrip("\0") for s in fn["items/id"][()]]
    assert len(idn) == n + m and sum(i.startswith("new_") for i in idn) == m, idn
    eo, en = fo["fov/embedding"][()], fn["fov/embedding"][()]
    for i, name in enumerate(ido):   # same images, same embeddings (reused rows)
        assert np.array_equal(eo[i], en[idn.index(name)]), name
print("incremental store ok")
PYEOF

# ---- 4. the lock: an overlapping run exits 75 at once and changes nothing ----
(exec 8>work/nightly.lock; flock 8; exec sleep 60) &   # after exec, $! is the sleep that holds the lock
holder=$!
for _ in $(seq 50); do flock -n work/nightly.lock true || break; sleep 0.1; done
expect_status 75 "${NIGHTLY[@]}" --force
grep -q "holds .*nightly.lock" "$TEST_TMP/last.err" || fail "lock refusal not explained: $(cat "$TEST_TMP/last.err")"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null

# ---- 5. a failing nightly: non-zero, the log names the step, store/manifest/latest untouched ----
sum2=$(sha256sum work/store.h5 | cut -d' ' -f1)
[ "$sum2" != "$sum1" ] || fail "store did not change after adding images"
# (an unreadable image would only be recorded in /failures: break the model card instead)
sed 's/"patch": 16/"patch": 8/' card.json >badcard.json
expect_status 1 bash "$SRC/slurm/nightly.sh" --data incoming --layout opencell --labels labels.csv --model badcard.json \
  --work work --launcher slurm --ranks 2 --force
grep -q "FAILED during step 'embed" "$TEST_TMP/last.out" || fail "failed nightly does not name the step: $(tail -3 "$TEST_TMP/last.out")"
[ "$(sha256sum work/store.h5 | cut -d' ' -f1)" = "$sum2" ] || fail "a failed nightly changed the store"
[ "$(readlink work/reports/latest)" = "$second" ] || fail "a failed nightly moved the latest link"
failed_dirs=(work/reports/*.failed)
[ -d "${failed_dirs[0]}" ] || fail "no .failed report folder kept for inspection"

# ---- 6. storage glitch: every image unreadable (truncated). The forced nightly's run fails every item, all of which
# had rows: protloc run keeps the store (exit 5: no row; on the Slurm job too), nightly exits 1 and says so truthfully; store and
# manifest byte-identical; every failure listed beside the store ----
f0=$failures
man2=$(sha256sum work/manifest.tsv | cut -d' ' -f1)
mkdir -p saved && cp incoming/*.tif saved/
for f in incoming/*.tif; do head -c 200 "saved/$(basename "$f")" >"$f"; done
expect_status 1 "${NIGHTLY[@]}" --force
grep -q -- "--force: running anyway" "$TEST_TMP/last.out" || fail "forced nightly not logged"
grep -q "protloc run kept the previous store" "$TEST_TMP/last.out" || fail "kept store not reported: $(tail -3 "$TEST_TMP/last.out")"
grep -q "the previous store is untouched; the manifest is untouched" "$TEST_TMP/last.out" \
  || fail "nightly's claim about the store: $(grep FAILED "$TEST_TMP/last.out")"
[ "$(sha256sum work/store.h5 | cut -d' ' -f1)" = "$sum2" ] || fail "a run with every item failing replaced the store"
[ "$(sha256sum work/manifest.tsv | cut -d' ' -f1)" = "$man2" ] || fail "the manifest changed although the store was kept"
[ "$(grep -vc '^#' work/store.h5.failures.tsv)" -eq $((n_items + n_new + 1)) ] \
  || fail "failures report should list every item: $(head -3 work/store.h5.failures.tsv)"
grep -q '^kept 5' work/reports/*.failed/embed.status 2>/dev/null || fail "embed status should be 'kept 5' (no item produced a row)"
cp saved/*.tif incoming/
[ "$failures" -eq "$f0" ] && pass "a re-run whose every item fails keeps the store and nightly says so"

f0=$failures
# ---- 7. SIGTERM to a running job (as before a time limit): every rank stops cleanly (exit 143), the status says
# interrupted, no store or temporary file; submitting again resumes and equals the uninterrupted 1-rank store ----
printf '#!/bin/sh\nexec "%s" 300 "$@"\n' "$PROTLOC_BUILD_DIR/tests/protloc_slow_items" >slow.sh
chmod +x slow.sh
slow=$(PROTLOC="$TEST_TMP/slow.sh" PROTLOC_STATUS="$TEST_TMP/slow.status" sbatch --parsable -n 2 \
  --output="$TEST_TMP/slow.log" "$SRC/slurm/protloc.sbatch" --manifest data/manifest.tsv --model card.json \
  --out "$TEST_TMP/slow.h5")
for _ in $(seq 1 1200); do
  s0=$(stat -c %s slow.h5.journal/rank-00000.jnl 2>/dev/null || echo 0)
  s1=$(stat -c %s slow.h5.journal/rank-00001.jnl 2>/dev/null || echo 0)
  [ "$s0" -gt 0 ] && [ "$s1" -gt 0 ] && break
  sleep 0.1
done
scancel --signal=TERM "$slow"
wait_jobs 120 "$slow"
grep -q '^interrupted 143' slow.status || fail "interrupted job status: $(cat slow.status 2>&1); log: $(tail -5 slow.log)"
grep -q "submit the same command again to resume" slow.log || fail "interrupted job log: $(tail -3 slow.log)"
[ "$(job_state "$slow")" = FAILED ] || fail "an interrupted job should end FAILED, is $(job_state "$slow")"
if [ -e slow.h5 ] || ls slow.h5.tmp.* >/dev/null 2>&1; then fail "an interrupted job left a store or a temporary"; fi
[ -d slow.h5.journal ] || fail "an interrupted job must keep its journal"
again=$(PROTLOC_STATUS="$TEST_TMP/again.status" sbatch --parsable -n 2 --output="$TEST_TMP/again.log" \
  "$SRC/slurm/protloc.sbatch" --manifest data/manifest.tsv --model card.json --out "$TEST_TMP/slow.h5")
wait_jobs 300 "$again"
grep -q '^ok 0' again.status || fail "resumed job: $(cat again.status 2>&1)"
resumed=$(sed -n 's/^summary:.* resumed=\([0-9]*\).*/\1/p' again.log)
[ "${resumed:-0}" -gt 0 ] || fail "the resubmitted job resumed nothing: $(grep summary: again.log)"
$PY "$SRC/tests/fixtures/runner/compare_stores.py" store1.h5 slow.h5 || fail "resumed store differs from the uninterrupted one"
[ "$failures" -eq "$f0" ] && pass "SIGTERM stops a 2-rank Slurm job cleanly; resubmitting resumes ($resumed items from the journal)"

expect_status 2 bash "$SRC/slurm/nightly.sh" --data incoming
# ---- 8. a training-cache job, fine-tuning on it as a job array (2 fractions x 2 seeds, 2 ranks each) and the
# dependent grid reduce ----
"$PROTLOC" -q probe --store "$TEST_TMP/store.h5" --head logreg --fraction 0.5,1 --seeds 2 --json "$TEST_TMP/fprobe.json" \
  || fail "probe for the fine-tuning grid failed"
# the training cache built by a 2-rank job, then the array's tasks read it side by side (docs/guide.md)
tc=$(PROTLOC_STATUS="$TEST_TMP/tc.status" sbatch --parsable -n 2 --output="$TEST_TMP/tc.log" \
  "$SRC/slurm/cache_build.sbatch" --manifest data/manifest.tsv --model card.json --cache "$TEST_TMP/tcache" \
  --size 64) || fail "sbatch cache_build.sbatch refused"
ft=$(PROTLOC_STATUS="$TEST_TMP/ft.status" sbatch --parsable --array=0-3 -n 2 --output="$TEST_TMP/ft-%a.log" \
  --dependency="afterok:$tc" --kill-on-invalid-dep=yes \
  "$SRC/slurm/finetune.sbatch" --manifest data/manifest.tsv --model card.json --out "$TEST_TMP/ft" \
  --fraction 0.5,1 --seeds 2 --epochs 1 --batch 4 --size 64 --cache "$TEST_TMP/tcache") ||
  fail "sbatch finetune.sbatch refused"
ftred=$(PROTLOC_STATUS="$TEST_TMP/ftred.status" sbatch --parsable --output="$TEST_TMP/ftred.log" \
  --dependency="afterok:$ft" --kill-on-invalid-dep=yes "$SRC/slurm/finetune_reduce.sbatch" "$TEST_TMP/ft" \
  "$TEST_TMP/fprobe.json") || fail "sbatch finetune_reduce.sbatch refused"
wait_jobs 300 "$tc" "$ft" "$ftred"
[ "$(cat "$TEST_TMP/tc.status" 2>/dev/null)" = "ok 0" ] && pass "cache build as a 2-rank Slurm job" ||
  { fail "cache build job: $(cat "$TEST_TMP/tc.status" 2>/dev/null)"; tail -n 5 "$TEST_TMP/tc.log" >&2; }
grep -q "([1-9][0-9]* reused, 0 prepared now" "$TEST_TMP"/ft-*.log 2>/dev/null &&
  pass "the array's tasks read the job's cache" || fail "the array did not reuse the cache: $(grep -h 'training cache' "$TEST_TMP"/ft-*.log | head -3)"
[ "$(grep -c ' ok 0$' "$TEST_TMP/ft.status" 2>/dev/null)" -eq 4 ] ||
  { fail "fine-tuning array: $(cat "$TEST_TMP/ft.status" 2>/dev/null)"; tail -n 5 "$TEST_TMP"/ft-*.log >&2; }
[ "$(cat "$TEST_TMP/ftred.status" 2>/dev/null)" = ok ] || { fail "fine-tuning reduce: $(cat "$TEST_TMP/ftred.log")"; }
[ "$(tail -n +2 "$TEST_TMP/ft/grid.tsv" 2>/dev/null | wc -l)" -eq 2 ] && [ -s "$TEST_TMP/ft/grid.png" ] &&
  pass "fine-tuning job array (4 tasks x 2 ranks) + grid reduce with the probe curve" ||
  fail "fine-tuning grid: $(cat "$TEST_TMP/ft/grid.tsv" 2>/dev/null)"

# ---- 9. DINO pretraining as a requeueing 2-rank job: SIGTERM (as before a time limit) writes a checkpoint, the
# script requeues the job, its next start resumes, and the result equals the uninterrupted 1-rank run ----
f0=$failures
pt=(--manifest data/manifest.tsv --model card.json --size 128 --global-size 64 --local-size 32 --local-crops 2
    --out-dim 64 --hidden-dim 32 --bottleneck-dim 16 --batch 8 --epochs 60 --checkpoint-every 1)
"$PROTLOC" -q pretrain "${pt[@]}" --threads 1 --out "$TEST_TMP/pt_ref" >/dev/null 2>&1 || fail "uninterrupted pretrain"
ptj=$(PROTLOC_STATUS="$TEST_TMP/pt.status" sbatch --parsable -n 2 --output="$TEST_TMP/pt.log" \
  "$SRC/slurm/pretrain.sbatch" "${pt[@]}" --out "$TEST_TMP/pt") || fail "sbatch pretrain.sbatch refused"
for _ in $(seq 1 1200); do
  [ -e pt/train.jsonl ] && [ "$(grep -c '"loss"' pt/train.jsonl)" -ge 3 ] && break
  sleep 0.1
done
scancel --signal=TERM "$ptj"
# Slurm holds a requeued job back (its begin time a couple of minutes ahead): once it waits, let it start in 10 s
# (sooner, the node may still be cleaning up the old step and refuse the new one's tasks)
for _ in $(seq 1 600); do
  [ "$(job_state "$ptj")" = PENDING ] &&
    { scontrol update JobId="$ptj" StartTime=now+10 >/dev/null 2>&1 || true; break; }
  sleep 0.1
done
wait_jobs 300 "$ptj"
if grep -q '^requeued 143' pt.status 2>/dev/null && [ "$(tail -n 1 pt.status)" = "ok 0" ]; then
  pass "pretrain.sbatch: SIGTERM -> checkpoint -> requeued -> resumed to the end"
else
  fail "pretrain job status: $(cat pt.status 2>&1); log: $(tail -5 pt.log)"
fi
for f in student.safetensors teacher.safetensors dino_loss.safetensors; do
  cmp -s "pt_ref/$f" "pt/$f" || fail "the requeued 2-rank run's $f differs from the uninterrupted 1-rank run's"
done
grep -q "resuming .*checkpoint.safetensors at step" pt.log || fail "the requeued job did not resume: $(tail -3 pt.log)"
[ "$failures" -eq "$f0" ] && pass "requeued 2-rank pretraining = uninterrupted 1-rank run (bit for bit)"

finish
