#!/usr/bin/env bash
# Fault suite for issue 19 (nothing lost on any rank), the parts owned by the MPI agreement and the training outputs:
#  1. 2 ranks: a write failure on rank 0 (train.jsonl, report.json, a full file system at three sizes during
#     fine-tuning; a full file system while `run` writes its store) ends every rank within 30 s, exit 1, with the
#     failing rank's message; `run` leaves no temporary store
#  2. checkpoints: a changed value is refused on --resume (digest), another --heads is refused (architecture in the
#     fingerprint), a poisoned state is never written (the last good checkpoint stays loadable), stale temporaries of
#     dead runs are removed, a run without --resume refuses to replace a checkpoint unless --force
#  3. command line: grid folder names unique per fraction, --task checked before any input is read, --kernels
#     checked with --collect too (exit 2 naming the option)
# Full file systems need root (a tmpfs in a private mount namespace); without it those parts are skipped (exit 77).
source "$(dirname "$0")/lib.sh"
C="$PROTLOC_SOURCE_DIR/tests/fixtures/finetune/p16_c4_64x64"
MPIRUN=(timeout 30 mpirun --allow-run-as-root --oversubscribe -np 2)
FT=(--model "$C/model.safetensors" --heads 2 --input "$C/x.npy" --labels "$C/y.npy" --steps 6 --batch 5
    --micro-batch 1 --lr 1e-3 --seed 7 --threads 1 --checkpoint-every 2)

# expect_rank_failure WHAT PATTERN cmd...: exit 1, not a hang (timeout gives 124), the cause printed (mpirun ends the
# other rank as soon as one exits non-zero, so which rank prints first is not fixed)
expect_rank_failure() {
  local what=$1 pattern=$2; shift 2
  "$@" >"$TEST_TMP/last.out" 2>"$TEST_TMP/last.err"
  local got=$?
  if [ "$got" = 124 ]; then fail "$what: hung (killed after 30 s)"; return; fi
  [ "$got" = 1 ] || { fail "$what: exit $got, want 1"; sed 's/^/  | /' "$TEST_TMP/last.err" >&2; return; }
  grep -q "$pattern" "$TEST_TMP/last.err" || { fail "$what: no message matching '$pattern'"; sed 's/^/  | /' "$TEST_TMP/last.err" >&2; return; }
  pass "$what: every rank ended within 30 s (exit 1), the cause named"
}

# ---- 1. rank 0's writes fail under 2 ranks ----
mkdir -p "$TEST_TMP/log/train.jsonl"   # a folder where the log goes: rank 0 cannot write it
expect_rank_failure "train.jsonl unwritable" "train.jsonl" "${MPIRUN[@]}" "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/log"
mkdir -p "$TEST_TMP/rep/report.json"
expect_rank_failure "report.json unwritable" "report.json" "${MPIRUN[@]}" "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/rep"
ls "$TEST_TMP"/rep/*.tmp.* >/dev/null 2>&1 && fail "temporary files left in $TEST_TMP/rep: $(ls "$TEST_TMP"/rep/*.tmp.*)"

# full file systems: a tmpfs in a private mount namespace (or, as in a chroot without namespaces, mounted directly)
M="$TEST_TMP/mnt"
mkdir -p "$M"
fs_run() {  # fs_run SIZE cmd...: run cmd with a SIZE tmpfs on $M
  local size=$1; shift
  if [ "$fs_mode" = ns ]; then
    unshare -m sh -c 'mount -t tmpfs -o size="$0" tmpfs "$1" && shift && exec "$@"' "$size" "$M" "$@"
  else
    mount -t tmpfs -o size="$size" tmpfs "$M" || return 99
    "$@"; local rc=$?
    umount -l "$M"; return $rc
  fi
}
fs_mode=""
if unshare -m sh -c "mount -t tmpfs -o size=64k tmpfs '$M'" 2>/dev/null; then fs_mode=ns
elif [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k tmpfs "$M" 2>/dev/null && umount "$M"; then fs_mode=direct
fi
if [ -z "$fs_mode" ]; then
  skip_part "full file systems: no tmpfs can be mounted here (needs root)"
else
  for size in 100k 700k 1200k; do   # the first checkpoint, the second, a later one
    expect_rank_failure "finetune, full file system ($size)" "is full" \
      fs_run "$size" "${MPIRUN[@]}" "$PROTLOC" finetune "${FT[@]}" --out "$M/o"
  done
  D="$TEST_TMP/ds"
  $PY "$PROTLOC_SOURCE_DIR/tests/fixtures/runner/make_dataset.py" "$D" 40 --size 128 >/dev/null || fail "dataset generation"
  "$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --out "$D/model.safetensors" || fail "model init"
  printf '{"name": "t", "weights": "model.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$D/card.json"
  cat >"$TEST_TMP/run_fs.sh" <<EOF
"\$@" run --model "$D/card.json" --level fov --no-progress --threads 1 --manifest "$D/manifest.tsv" --out "$M/s.h5"
rc=\$?
if ls "$M"/s.h5.tmp.* >/dev/null 2>&1; then echo "temporary store left: \$(ls "$M"/s.h5.tmp.*)" >&2; fi
exit \$rc
EOF
  for size in 40k 120k 280k; do   # the journal fills it, and the space check before the store
    expect_rank_failure "run, full file system ($size)" "is full\\|not enough space for the store" \
      fs_run "$size" bash "$TEST_TMP/run_fs.sh" "${MPIRUN[@]}" "$PROTLOC"
    grep -q "temporary store left" "$TEST_TMP/last.err" && fail "run ($size): temporary store left behind"
  done
fi

# ---- 2. checkpoints ----
O="$TEST_TMP/ck"
expect_status 0 "$PROTLOC" finetune "${FT[@]}" --out "$O"
cp "$O/checkpoint.safetensors" "$TEST_TMP/good.safetensors"
# without --resume an existing checkpoint is never replaced; --force starts over; both together are refused
expect_status 1 "$PROTLOC" finetune "${FT[@]}" --out "$O"
grep -q "holds the checkpoint of an earlier run (step 6); --resume continues it, --force" "$TEST_TMP/last.err" \
  || fail "refusal does not explain --resume / --force: $(tail -1 "$TEST_TMP/last.err")"
cmp -s "$O/checkpoint.safetensors" "$TEST_TMP/good.safetensors" || fail "refused run changed the checkpoint"
expect_status 2 "$PROTLOC" finetune "${FT[@]}" --out "$O" --resume --force
# a stale temporary of a dead run is removed; --force replaces the checkpoint with an identical one (same seed)
touch "$O/checkpoint.safetensors.tmp.999999.3" "$O/report.json.tmp.999999.0" "$O/keep.tmp.x"
expect_status 0 "$PROTLOC" finetune "${FT[@]}" --out "$O" --force
[ -e "$O/checkpoint.safetensors.tmp.999999.3" ] || [ -e "$O/report.json.tmp.999999.0" ] && fail "stale temporaries not removed"
[ -e "$O/keep.tmp.x" ] || fail "a file that is not protloc's temporary was removed"
grep -q "left by a run that did not finish" "$TEST_TMP/last.err" || fail "removal of stale temporaries not logged"
cmp -s "$O/checkpoint.safetensors" "$TEST_TMP/good.safetensors" && pass "--force: same run, same checkpoint" \
  || fail "--force run gave another checkpoint"
# resuming the finished run is fine; another --heads is another architecture
expect_status 0 "$PROTLOC" finetune "${FT[@]}" --out "$O" --resume
expect_status 1 "$PROTLOC" finetune "${FT[@]}" --heads 4 --out "$O" --resume
grep -q "other arguments or another architecture" "$TEST_TMP/last.err" || fail "--heads change not refused: $(tail -1 "$TEST_TMP/last.err")"
# one changed value in the file: the digest refuses it
$PY - "$O/checkpoint.safetensors" <<'EOF'
import json, struct, sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
name = next(k for k in h if k.startswith('p/blocks.0.attn.qkv.weight'))
off = 8 + n + h[name]['data_offsets'][0] + 4 * 5
v = struct.unpack('<f', b[off:off + 4])[0]
b[off:off + 4] = struct.pack('<f', v + 0.25)
open(p, 'wb').write(bytes(b))
EOF
expect_status 1 "$PROTLOC" finetune "${FT[@]}" --out "$O" --resume
grep -q "is corrupt: its contents do not match its digest" "$TEST_TMP/last.err" \
  && pass "changed weight value refused" || fail "changed checkpoint resumed: $(tail -1 "$TEST_TMP/last.err")"
# a FIFO where the checkpoint is: named at once, never a hang
mkdir -p "$TEST_TMP/fifo" && mkfifo "$TEST_TMP/fifo/checkpoint.safetensors"
expect_status 1 timeout -k 5 20 "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/fifo" --resume
grep -q "not a regular file (a FIFO)" "$TEST_TMP/last.err" || fail "FIFO checkpoint not named: $(tail -1 "$TEST_TMP/last.err")"
# a poisoned state is never written: SGD at lr 100 turns NaN; the checkpoint left holds only finite values and resumes
P="$TEST_TMP/nan"
expect_status 1 "$PROTLOC" finetune "${FT[@]}" --lr 100 --optimizer sgd --checkpoint-every 1 --out "$P"
grep -Eq "loss is NaN|holds (NaN|\+Inf|-Inf)|gradient norm is not finite" "$TEST_TMP/last.err" || fail "NaN stop not explained"
grep -q "last good checkpoint (step [0-9]*) is kept" "$TEST_TMP/last.err" || fail "NaN stop does not name the kept checkpoint"
$PY - "$P/checkpoint.safetensors" <<'EOF' || fail "the kept checkpoint holds non-finite values"
import json, struct, sys, numpy as np
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
for k, v in h.items():
    if k == '__metadata__': continue
    a = np.frombuffer(b[8 + n + v['data_offsets'][0]: 8 + n + v['data_offsets'][1]], dtype='<f4')
    assert np.isfinite(a).all(), k
EOF

# ---- 3. command line ----
expect_status 2 "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/g" --fraction 0.5,0.5
grep -q "twice" "$TEST_TMP/last.err" || fail "duplicate fraction not named"
expect_status 2 "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/g" --fraction 0.1,0.10000001
grep -q "f0.1_s" "$TEST_TMP/last.err" || fail "colliding folder names not named"
expect_status 2 "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/g" --fraction 0.5,1 --task 2
grep -q -- "--task 2 is out of range 0..1" "$TEST_TMP/last.err" || fail "--task range not named"
expect_status 2 "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/g" --task 0
expect_status 2 "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/g" --kernels nosuch
expect_status 2 "$PROTLOC" finetune --collect "$TEST_TMP/g" --kernels nosuch
grep -q -- "--kernels nosuch" "$TEST_TMP/last.err" || fail "--collect --kernels: option not named"
[ ! -e "$TEST_TMP/g" ] || fail "a refused command line created --out"
# a bad --probe of a grid fails before any training (it is read at the end)
echo '{"command": "knn"}' >"$TEST_TMP/notprobe.json"
expect_status 1 "$PROTLOC" finetune "${FT[@]}" --out "$TEST_TMP/gp" --fraction 0.5,1 --probe "$TEST_TMP/notprobe.json"
grep -q "not a \`protloc probe\` report" "$TEST_TMP/last.err" || fail "bad --probe not named: $(tail -1 "$TEST_TMP/last.err")"
ls -d "$TEST_TMP"/gp/f* >/dev/null 2>&1 && fail "a grid run trained before its --probe was checked"
# outputs never overwrite inputs: --model, --labels or --head-init where finetune writes (directly, by a symlink)
mkdir -p "$TEST_TMP/in"
cp "$C/model.safetensors" "$TEST_TMP/in/backbone.safetensors"
cp "$C/y.npy" "$TEST_TMP/y.npy"
ln -sf "$TEST_TMP/y.npy" "$TEST_TMP/in/train.jsonl"
expect_status 1 "$PROTLOC" finetune "${FT[@]}" --model "$TEST_TMP/in/backbone.safetensors" --out "$TEST_TMP/in"
grep -q "would overwrite that input" "$TEST_TMP/last.err" || fail "--model in --out not refused: $(tail -1 "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" finetune "${FT[@]}" --labels "$TEST_TMP/y.npy" --out "$TEST_TMP/in/."
grep -q -- "--labels" "$TEST_TMP/last.err" || fail "--labels behind a symlink in --out not refused"
cmp -s "$C/model.safetensors" "$TEST_TMP/in/backbone.safetensors" && cmp -s "$C/y.npy" "$TEST_TMP/y.npy" \
  && pass "inputs unchanged" || fail "an input was overwritten"
finish
