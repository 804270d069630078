#!/usr/bin/env bash
# Up-front validation and writer errors (issue 19): what `protloc run` refuses before it computes, and how writers
# report a full or read-only file system.
#  1. --out naming a directory, a FIFO or a device: exit 1 at once (no compute, no temporary file, no lock); a
#     missing folder of --out: a clear message, and the folder is not created
#  2. model-card checks at load: "last_n" beyond the model's depth, "last_n" with "output": "avgpool", and a
#     duplicate fill role that no item of the manifest has (card "fill" and --fill): exit 1 at once
#  3. a card with a 200 kB name and a 100 kB description is stored whole (beyond HDF5's 64 KiB attribute header
#     limit), re-runs reuse that store, and `protloc export` (npy and h5ad) still reads it
#  4. a previous store's row holding NaN is never reused: the item is computed again (and the log says why)
#  5. `protloc run ... | head -c1` and a reader that closed stdout: exit 0, the store committed (no SIGPIPE death)
#  6. finetune on a tiny tmpfs / read-only mount (root, private mount namespace): the checkpoint write and the
#     report.json write fail naming the full file system; a read-only --out names the read-only file system
source "$(dirname "$0")/lib.sh"
FIX="$PROTLOC_SOURCE_DIR/tests/fixtures/runner"
FT="$PROTLOC_SOURCE_DIR/tests/fixtures/finetune/p8_c2_40x40"
D="$TEST_TMP/ds"
N=4
$PY "$FIX/make_dataset.py" "$D" "$N" --size 64 >/dev/null || { fail "dataset generation"; finish; }
"$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --out "$D/model.safetensors" \
  || { fail "model init"; finish; }
card() {  # card FILE EXTRA_JSON: a card over model.safetensors with extra keys
  printf '{"name": "t", "weights": "model.safetensors", "input_slots": %s%s}\n' "${3:-[\"protein\", \"nucleus\"]}" \
    "$2" >"$1"
}
card "$D/card.json" ""
OPTS=(--manifest "$D/manifest.tsv" --model "$D/card.json" --level fov --no-progress --threads 1)
field() { sed -n "s/^summary:.* $1=\([^ ]*\).*/\1/p" "$TEST_TMP/last.out"; }
err_has() {  # err_has PATTERN WHAT: the last command's stderr matches PATTERN
  grep -q -- "$1" "$TEST_TMP/last.err" && pass "$2" || fail "$2: $(grep -m1 error "$TEST_TMP/last.err")"
}
# at_once LIMIT CMD...: expect exit 1 before anything was planned or computed (no "... to compute" plan line, no
# item embedded); LIMIT is kept for the callers' readability, no time is measured (timings belong in benchmarks)
at_once() {
  shift
  expect_status 1 "$@"
  if grep -q "to compute\|embedded\|computed=" "$TEST_TMP/last.err" "$TEST_TMP/last.out"; then
    fail "refused only after planning or computing: $*"
  else
    pass "refused before any work"
  fi
}
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --out "$D/ref.h5"

# ---- 1. output path kinds and the folder of --out ----
mkdir "$D/outdir"
at_once 2 "$PROTLOC" run "${OPTS[@]}" --out "$D/outdir"
err_has "--out $D/outdir is a directory" "--out naming a directory is refused, naming it"
left=$(cd "$D" && ls -d outdir?* 2>/dev/null)
[ -z "$left" ] && [ -z "$(ls -A "$D/outdir")" ] && pass "nothing left beside or inside the directory" \
  || fail "left behind: $left $(ls -A "$D/outdir")"
mkfifo "$D/fifo.h5"
at_once 2 timeout 20 "$PROTLOC" run "${OPTS[@]}" --out "$D/fifo.h5"
err_has "--out $D/fifo.h5 is a FIFO" "--out naming a FIFO is refused, naming its kind"
# a device node of this test's own (never /dev/null: a regression would rename a store over it)
if mknod "$D/null.h5" c 1 3 2>/dev/null; then
  at_once 2 "$PROTLOC" run "${OPTS[@]}" --out "$D/null.h5"
  err_has "--out $D/null.h5 is a character device" "--out naming a device is refused"
  [ -c "$D/null.h5" ] && [ ! -e "$D/null.h5.lock" ] || fail "the device node was replaced or a lock made beside it"
else
  skip_part "--out naming a device: cannot make a device node here (not root)"
fi
at_once 2 "$PROTLOC" run "${OPTS[@]}" --out "$D/missing_dir/store.h5"
err_has "the folder $D/missing_dir of --out $D/missing_dir/store.h5 does not exist; it is not created" \
  "a missing folder of --out is named (and said not to be created)"
[ ! -e "$D/missing_dir" ] && pass "the missing folder was not created" || fail "$D/missing_dir was created"
grep -q "lock file" "$TEST_TMP/last.err" && fail "the lock file message leaked: $(cat "$TEST_TMP/last.err")"

# ---- 2. card checks against the model and the manifest, at load ----
card "$D/card_ln.json" ', "last_n": 3'
at_once 2 "$PROTLOC" run "${OPTS[@]}" --model "$D/card_ln.json" --out "$D/ln.h5"
err_has "card_ln.json: \"last_n\" is 3, out of range for its weights .*: 1..2 (the model has 2 blocks)" \
  "last_n beyond the depth: the card, the field and the valid range"
[ ! -e "$D/ln.h5.journal" ] && [ ! -e "$D/ln.h5" ] || fail "last_n: a journal or store was written"
card "$D/card_ap.json" ', "last_n": 2, "output": "avgpool"'
at_once 2 "$PROTLOC" run "${OPTS[@]}" --model "$D/card_ap.json" --out "$D/ap.h5"
err_has 'card_ap.json: "last_n" is 2 with "output": "avgpool"' "last_n with avgpool is refused at load"
card "$D/card_dup.json" ', "input_mode": "duplicate", "fill": "*=microtubules"' '["protein", "er"]'
at_once 2 "$PROTLOC" run "${OPTS[@]}" --model "$D/card_dup.json" --out "$D/dup.h5"
err_has "card_dup.json: \"fill\" '\*=microtubules' fills slot 'er' with role 'microtubules', which no item of .* has (its roles: nucleus, protein)" \
  "a fill role no item has: the card, the field and the manifest's roles"
at_once 2 "$PROTLOC" run "${OPTS[@]}" --model "$D/card_dup.json" --fill 'er=er2' --out "$D/dup.h5"
err_has "--fill 'er=er2' fills slot 'er' with role 'er2', which no item" "--fill naming a role no item has"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --model "$D/card_dup.json" --fill 'er=nucleus' --out "$D/dup.h5"

# ---- 3. a huge card is stored whole ----
$PY - "$D" <<'PYEOF' || fail "big card generation"
import json, sys
json.dump({"name": "n" * 200000, "weights": "model.safetensors", "input_slots": ["protein", "nucleus"],
           "description": "d" * 100000}, open(sys.argv[1] + "/card_big.json", "w"))
PYEOF
BIG=(--manifest "$D/manifest.tsv" --model "$D/card_big.json" --level fov --no-progress --threads 1)
expect_status 0 "$PROTLOC" run "${BIG[@]}" --out "$D/big.h5"
expect_status 0 "$PROTLOC" run "${BIG[@]}" --out "$D/big.h5"
[ "$(field reused)" = "$N" ] && pass "a re-run reuses the store with the huge card" || fail "not reused: $(cat "$TEST_TMP/last.out")"
expect_status 0 "$PROTLOC" export "$D/big.h5" --format npy --out "$D/big.npy"
expect_status 0 "$PROTLOC" export "$D/big.h5" --format h5ad --out "$D/big.h5ad"
$PY - "$D" <<'PYEOF' && pass "200 kB name and the whole card in the store and in the export" || fail "huge card round trip"
import json, sys, h5py, numpy as np
d = sys.argv[1]
s = lambda v: v.decode() if isinstance(v, bytes) else str(v)
with h5py.File(d + "/big.h5") as f:
    assert s(f.attrs["model_name"]) == "n" * 200000
    c = json.loads(s(f.attrs["model_card"]))
    assert c["name"] == "n" * 200000 and c["description"] == "d" * 100000
    assert s(f.attrs["format"]).startswith("protloc-store/")
    assert np.array_equal(np.load(d + "/big.npy"), f["fov/embedding"][()])
with h5py.File(d + "/big.h5ad") as a:
    assert len(s(a["uns/protloc_store_attrs/model_name"][()])) == 200000
PYEOF

# ---- 4. NaN rows of a previous store are computed again ----
cp "$D/ref.h5" "$D/nan.h5"
$PY - "$D/nan.h5" <<'PYEOF' || fail "NaN injection"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r+") as f:
    e = f["fov/embedding"]; r = e[1]; r[5] = np.nan; e[1] = r
PYEOF
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --out "$D/nan.h5"
[ "$(field reused)" = $((N - 1)) ] && [ "$(field computed)" = 1 ] && pass "the NaN row was not reused (1 computed)" \
  || fail "NaN row: $(cat "$TEST_TMP/last.out")"
err_has "item item0001: not reusing its rows of .*nan.h5 (its FOV embedding holds nan at column 5)" "the log says why"
$PY "$FIX/compare_stores.py" "$D/ref.h5" "$D/nan.h5" >/dev/null && pass "the recomputed store equals the reference" \
  || fail "the store after the NaN re-run differs from the reference"

# ---- 5. a closed stdout does not fail a committed run ----
"$PROTLOC" run "${OPTS[@]}" --out "$D/pipe1.h5" 2>"$TEST_TMP/pipe.err" | head -c1 >/dev/null
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] && [ -s "$D/pipe1.h5" ] && pass "run | head -c1: exit 0, store committed" \
  || fail "run | head -c1: exit $rc: $(tail -2 "$TEST_TMP/pipe.err")"
"$PROTLOC" run "${OPTS[@]}" --out "$D/pipe2.h5" 2>"$TEST_TMP/pipe.err" | true
rc=${PIPESTATUS[0]}
[ "$rc" = 0 ] && [ -s "$D/pipe2.h5" ] && pass "stdout closed before the summary: exit 0, store committed" \
  || fail "closed stdout: exit $rc (141 = SIGPIPE): $(tail -2 "$TEST_TMP/pipe.err")"
$PY "$FIX/compare_stores.py" "$D/ref.h5" "$D/pipe2.h5" >/dev/null || fail "the store written with a closed stdout differs"

# ---- 6. finetune writers on a full / read-only file system ----
FTARGS=(--model "$FT/model.safetensors" --heads 2 --input "$FT/x.npy" --labels "$FT/y.npy" --steps 2 --batch 4
        --threads 1)
mkdir -p "$TEST_TMP/mnt"
fs_ns=()
if unshare -m sh -c "mount -t tmpfs -o size=64k tmpfs '$TEST_TMP/mnt'" 2>/dev/null; then
  fs_ns=(unshare -m)
elif [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k tmpfs "$TEST_TMP/mnt" 2>/dev/null && umount "$TEST_TMP/mnt"; then
  fs_ns=()
else
  fs_ns=(none)
fi
if [ "${fs_ns[0]:-}" != none ]; then
  expect_status 0 "$PROTLOC" finetune "${FTARGS[@]}" --out "$TEST_TMP/ftref"
  cat >"$TEST_TMP/ft_case.sh" <<EOF
#!/bin/bash
# \$1 = tmpfs size (KiB) or "ro"; finetune writes to the mount, which is gone when this ends
set -u
M="$TEST_TMP/mnt"
trap 'umount -l "\$M" 2>/dev/null' EXIT
if [ "\$1" = ro ]; then
  mkdir -p "$TEST_TMP/rosrc" && mount --bind "$TEST_TMP/rosrc" "\$M" && mount -o remount,bind,ro "\$M" || exit 99
else
  mount -t tmpfs -o size=\${1}k tmpfs "\$M" || exit 99
fi
"$PROTLOC" finetune ${FTARGS[*]} --out "\$M/ft" >/dev/null 2>"$TEST_TMP/ft.err"
echo "rc=\$?"
EOF
  ft_case() { "${fs_ns[@]}" bash "$TEST_TMP/ft_case.sh" "$1" 2>&1; }
  full='No space left on device; the file system holding .* is full'
  res=$(ft_case 64)
  if [ "$res" = rc=1 ] && grep -q "\.safetensors\.tmp\.[0-9.]*: $full" "$TEST_TMP/ft.err"; then
    pass "finetune checkpoint on a full file system: $(grep -o 'cannot write .*' "$TEST_TMP/ft.err" | cut -c1-160)"
  else
    fail "finetune checkpoint on a full tmpfs: $res $(cat "$TEST_TMP/ft.err")"
  fi
  # a tmpfs that holds the weights, checkpoint, log and lock (whole 4 KiB pages) but not report.json
  kib=0
  for f in checkpoint.safetensors backbone.safetensors head.safetensors train.jsonl finetune.lock; do
    [ -e "$TEST_TMP/ftref/$f" ] && kib=$((kib + ($(stat -c %s "$TEST_TMP/ftref/$f") + 4095) / 4096 * 4))
  done
  found=""
  for size in $kib $((kib - 4)) $((kib + 4)) $((kib - 8)) $((kib + 8)); do
    res=$(ft_case "$size")
    if [ "$res" = rc=1 ] && grep -q "report\.json\.tmp\.[0-9.]*: $full" "$TEST_TMP/ft.err"; then found=$size; break; fi
  done
  [ -n "$found" ] && pass "report.json on a full file system ($found KiB tmpfs): $(grep -o 'cannot write .*' "$TEST_TMP/ft.err" | cut -c1-140)" \
    || fail "report.json never failed naming the full file system near $kib KiB: $res $(cat "$TEST_TMP/ft.err")"
  res=$(ft_case ro)
  if [ "$res" = rc=1 ] && grep -q "Read-only file system; .* is on a read-only file system" "$TEST_TMP/ft.err"; then
    pass "finetune --out on a read-only file system names it"
  else
    fail "finetune on a read-only mount: $res $(cat "$TEST_TMP/ft.err")"
  fi
else
  skip_part "full/read-only file systems: this machine allows neither mount namespaces nor mounts (not root)"
fi

finish
