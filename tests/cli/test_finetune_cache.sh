#!/usr/bin/env bash
# CLI test for the training cache (`protloc finetune --cache DIR`, `protloc cache build`; docs/formats.md "Training
# cache"): training from the cache gives bit-identical weights to the in-memory path at 1, 2 and 3 ranks; a second
# run reuses it; a changed, added or removed item is the only work of the next build, and training then equals the
# in-memory path on the changed data; other settings rebuild with a message; a build killed with SIGKILL and run
# again leaves a cache identical to an uninterrupted build; a corrupt sample stops training naming the item and
# `cache build --check` repairs it; a truncated shard is rebuilt; a full file system keeps the previous cache; runs
# reading an up-to-date cache share it while a build that must write it is refused (exit 6).
source "$(dirname "$0")/lib.sh"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
cd "$TEST_TMP" || exit 1

tiny_synth_card tiny-test-vit || { fail "synth data, model init or card"; finish; }
# augmentation and drop path on (the defaults): the cache path must give the same augmented views
short=(--manifest data/manifest.tsv --model card.json --size 64 --epochs 2 --batch 12 --lr 1e-3 --micro-batch 2)
build=(cache build --manifest data/manifest.tsv --model card.json --size 64 --threads 2)
same_weights() {   # same_weights A B WHAT
  if cmp -s "$1/backbone.safetensors" "$2/backbone.safetensors" && cmp -s "$1/head.safetensors" "$2/head.safetensors"
  then pass "$3"; else fail "$3: weights differ"; fi
}
# expect_log TEXT WHAT: the last command's log says TEXT
expect_log() {
  if grep -qF -- "$1" "$TEST_TMP/last.err"; then pass "$2"
  else fail "$2: the log does not say '$1'"; grep -E "training cache|warn|error" "$TEST_TMP/last.err" | sed 's/^/  | /' >&2; fi
}

# ---- 1. cache vs in-memory: bit-identical at 1, 2 and 3 ranks ----
expect_status 0 "$PROTLOC" finetune "${short[@]}" --threads 2 --out mem
expect_status 0 "$PROTLOC" finetune "${short[@]}" --threads 2 --cache c --out c1
expect_log "320 items (0 reused, 320 prepared now, 0 of them failed), 5 shards (5 written, 0 removed)" \
  "the first run builds the cache"
same_weights mem c1 "cache, 1 rank = in-memory"
expect_status 0 "${MPIRUN[@]}" -np 2 "$PROTLOC" finetune "${short[@]}" --threads 1 --cache c --out c2
expect_log "320 items (320 reused, 0 prepared now" "the second run reuses the cache"
same_weights mem c2 "cache, 2 ranks = in-memory, 1 rank"
expect_status 0 "${MPIRUN[@]}" -np 3 "$PROTLOC" finetune "${short[@]}" --threads 1 --cache c --prefetch 4 --out c3
same_weights mem c3 "cache, 3 ranks, --prefetch 4 = in-memory, 1 rank"
$PY - c3/report.json mem/report.json <<'PYEOF' || fail "report.json: execution.reader"
import json, sys
r = json.load(open(sys.argv[1]))["execution"]["reader"]
m = json.load(open(sys.argv[2]))["execution"]["reader"]
print("reader (cache, 3 ranks):", r)
assert r["cache"] == "c" and m["cache"] is None, (r, m)
assert r["prefetch"] == 4 and r["batches"] > 0 and r["images_per_second"] > 0 and r["loop_wait_seconds"] >= 0, r
PYEOF
# --cache-memory too small for two global batches of this rank's share is refused before any work
expect_status 2 "$PROTLOC" finetune "${short[@]}" --cache c --cache-memory 0 --out cm
expect_status 2 "$PROTLOC" finetune "${short[@]}" --verify --out cv   # --verify goes with --cache

# ---- 2. incremental: only changed, added and removed items ----
cp -r data data0
$PY - data/manifest.tsv <<'PYEOF' || fail "changing one training image"
import sys, numpy as np, tifffile
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if not l.startswith("#")]
head, rows = rows[0], rows[1:]
row = next(r for r in rows if r[head.index("split")] == "train")
path = "data/" + row[head.index("protein")].split("#")[0]
x = tifffile.imread(path)
tifffile.imwrite(path, np.ascontiguousarray(x[:, ::-1, :]))   # the same size, other pixels
PYEOF
expect_status 0 "$PROTLOC" finetune "${short[@]}" --threads 2 --cache c --out c4
expect_log "320 items (319 reused, 1 prepared now, 0 of them failed), 6 shards (1 written, 0 removed)" \
  "one changed image: one item prepared again"
expect_status 0 "$PROTLOC" finetune "${short[@]}" --threads 2 --out mem4
same_weights mem4 c4 "after the change: cache = in-memory on the changed data"
cmp -s mem/backbone.safetensors mem4/backbone.safetensors && fail "the changed image changed nothing"
# three items more (copies under new ids), then 40 fewer
awk -F'\t' 'BEGIN { OFS = "\t" } { print } NR >= 3 && NR <= 5 { $1 = $1 "_copy"; print }' data/manifest.tsv >data/m_add.tsv
expect_status 0 "$PROTLOC" "${build[@]/manifest.tsv/m_add.tsv}" --cache c
expect_log "323 items (320 reused, 3 prepared now" "three added items: three prepared"
# ten fewer: nothing prepared, and their samples stay (the shard is still mostly in use)
awk 'NR < 13 || NR > 22' data/manifest.tsv >data/m_del.tsv
expect_status 0 "$PROTLOC" "${build[@]/manifest.tsv/m_del.tsv}" --cache c
expect_log "310 items (310 reused, 0 prepared now" "10 removed items: nothing prepared"
expect_status 0 "$PROTLOC" "${build[@]}" --cache c
expect_log "320 items (320 reused, 0 prepared now" "the 10 removed items' samples are still there"
# forty fewer: their shard is mostly stale, so its 24 live items move to a new shard and it goes
awk 'NR <= 2 || NR > 42' data/manifest.tsv >data/m_del.tsv
expect_status 0 "$PROTLOC" "${build[@]/manifest.tsv/m_del.tsv}" --cache c
expect_log "most of its items are no longer used; its 24 item(s) still in use are prepared again" \
  "40 removed items: the mostly stale shard is named"
expect_log "280 items (256 reused, 24 prepared now" "40 removed items: only the stale shard's live items prepared"
cp data0/*.tif data/ && rm -rf data0

# ---- 3. other settings: rebuilt, saying why ----
expect_status 0 "$PROTLOC" "${build[@]/64/96}" --cache c
expect_log "was built with other settings" "another canvas size: the log says why everything is prepared again"
expect_log "(0 reused, 320 prepared now" "another canvas size: every item prepared again"
expect_status 0 "$PROTLOC" cache build --manifest data/manifest.tsv --model card.json --cache c --level tiles --tile 64 --size 64
expect_log "was built with other settings" "another level: rebuilt"
expect_status 2 "$PROTLOC" cache build --manifest data/manifest.tsv --model card.json   # no --cache
expect_status 2 "$PROTLOC" cache build --manifest data/manifest.tsv --model card.json --cache c --level nope

# ---- 4. kill -9 during the build, then again: the same cache as an uninterrupted build ----
big=(cache build --manifest data/manifest.tsv --model card.json --size 256 --threads 1)
expect_status 0 "$PROTLOC" "${big[@]}" --cache whole
killed=0
for attempt in 1 2 3; do
  rm -rf part
  "$PROTLOC" "${big[@]}" --cache part >/dev/null 2>&1 &
  pid=$!
  for _ in $(seq 1 3000); do   # until the first shard is complete (30 s at most)
    compgen -G "part/shards/s-*.plc" >/dev/null && break
    sleep 0.01
  done
  kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  if [ ! -e part/cache.json ] && compgen -G "part/shards/s-*.plc" >/dev/null; then killed=1; break; fi
done
if [ "$killed" = 1 ]; then
  n_before=$(ls part/shards/s-*.plc | wc -l)
  expect_status 0 "$PROTLOC" "${big[@]}" --cache part
  expect_log "(0 reused, $((320 - 64 * n_before)) prepared now" "the resumed build prepares only the unfinished shards' items"
  grep -q "5 shards ($((5 - n_before)) written" "$TEST_TMP/last.err" &&
    pass "the resumed build kept the $n_before shard(s) finished before the kill" ||
    fail "the resumed build rewrote finished shards: $(grep 'training cache' "$TEST_TMP/last.err")"
  if cmp -s whole/cache.json part/cache.json && diff -r whole/shards part/shards >/dev/null &&
     [ "$(ls -A part/shards | wc -l)" = "$(ls -A whole/shards | wc -l)" ]; then
    pass "killed + resumed build = uninterrupted build (index and every shard byte for byte)"
  else
    fail "killed + resumed build differs: $(ls part/shards) vs $(ls whole/shards)"
  fi
else
  fail "could not kill the build before it finished (3 tries)"
fi
rm -rf whole part

# ---- 5. a corrupt sample: training stops naming the item; cache build --check repairs; a truncated shard ----
expect_status 0 "$PROTLOC" "${build[@]}" --cache c
first=$(ls c/shards/*.plc | head -1)
$PY - "$first" <<'PYEOF' || fail "corrupting a shard"
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
b[64 + 512] ^= 0xFF   # inside the first sample's frame (frames follow the 64-byte header)
open(sys.argv[1], "wb").write(b)
PYEOF
expect_status 1 "$PROTLOC" finetune "${short[@]}" --threads 2 --cache c --out bad
if grep -q "corrupt data" "$TEST_TMP/last.err" && grep -q "(item [a-z]*_prot[0-9]*_f[0-9]*" "$TEST_TMP/last.err" &&
   grep -q -- "--check" "$TEST_TMP/last.err"; then
  pass "a corrupt sample stops training naming the shard, the item and the repair"
else
  fail "corrupt sample: $(grep error "$TEST_TMP/last.err" | head -2)"
fi
[ -e bad/backbone.safetensors ] && fail "a failed run left bad/backbone.safetensors"
expect_status 0 "$PROTLOC" "${build[@]}" --cache c --check
expect_log "(256 reused, 64 prepared now" "cache build --check prepares the damaged shard's items again"
expect_status 0 "$PROTLOC" finetune "${short[@]}" --threads 2 --cache c --out c5
same_weights mem c5 "after --check: cache = in-memory"
second=$(ls c/shards/*.plc | sed -n 2p)
truncate -s 20000 "$second"
expect_status 0 "$PROTLOC" finetune "${short[@]}" --threads 2 --cache c --out c6
expect_log "its items are prepared again" "a truncated shard is noticed"
expect_log "(256 reused, 64 prepared now" "a truncated shard's items are prepared again"
same_weights mem c6 "after a truncated shard: cache = in-memory"

# ---- 6. a full file system during an update keeps the previous cache ----
mkdir -p mnt
fs_ns=()
if unshare -m sh -c "mount -t tmpfs -o size=64k tmpfs '$TEST_TMP/mnt'" 2>/dev/null; then
  fs_ns=(unshare -m); fs_mode="private mount namespace"
elif [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k tmpfs mnt 2>/dev/null && umount mnt; then
  fs_mode="direct mount"
else
  fs_mode=""
fi
if [ -n "$fs_mode" ]; then
  # a tmpfs that holds the 64-pixel cache (~8 MiB) and a little more: the 96-pixel rebuild (~18 MiB) runs out
  cat >fs_case.sh <<EOF
#!/bin/bash
set -u
M="$TEST_TMP/mnt"
trap 'umount -l "\$M" 2>/dev/null' EXIT
mount -t tmpfs -o size=10m tmpfs "\$M" || exit 99
cp -r "$TEST_TMP/c" "\$M/c" || exit 98
cd "$TEST_TMP"
"$PROTLOC" ${build[*]/64/96} --cache "\$M/c" >fs.out 2>fs.err
echo "rebuild=\$?"
cmp -s "$TEST_TMP/c/cache.json" "\$M/c/cache.json" && echo "index kept"
ls -A "\$M/c/shards" | grep -c 'tmp' | sed 's/^/temps=/'
"$PROTLOC" finetune ${short[*]} --threads 2 --cache "\$M/c" --out "$TEST_TMP/c7" >fs2.out 2>fs2.err
echo "train=\$?"
grep -o '([0-9]* reused, [0-9]* prepared now' fs2.err
EOF
  res=$("${fs_ns[@]}" bash fs_case.sh 2>&1)
  echo "$res" | sed 's/^/  fs | /'
  if grep -q "^rebuild=1" <<<"$res" && grep -q "^index kept" <<<"$res" && grep -q "^temps=0" <<<"$res" &&
     grep -q "^train=0" <<<"$res" && grep -q "(320 reused, 0 prepared now" <<<"$res"; then
    pass "full file system ($fs_mode): the rebuild fails, the previous cache is kept and trains"
  else
    fail "full file system: $res"; sed 's/^/  | /' fs.err | grep -v info >&2
  fi
  grep -q "No space left" fs.err && pass "the error names the full disk" || fail "ENOSPC not named: $(grep error fs.err)"
  [ -e c7/backbone.safetensors ] && same_weights mem c7 "the kept cache trains as before"
else
  skip_part "full file system: neither mount namespaces nor mounts here (not root)"
fi

# ---- 7. locks: runs reading an up-to-date cache share it; a build that must write it waits for none of them ----
# hold_lock sh|ex: a process that holds DIR/lock as a training run (shared) or a build (exclusive) would
hold_lock() {
  rm -f c/lock.held
  $PY - c/lock "$1" <<'PYEOF' &
import fcntl, sys, time
f = open(sys.argv[1], "r+")
fcntl.lockf(f, (fcntl.LOCK_SH if sys.argv[2] == "sh" else fcntl.LOCK_EX) | fcntl.LOCK_NB)
open(sys.argv[1] + ".held", "w").close()
time.sleep(60)
PYEOF
  holder=$!
  for _ in $(seq 1 500); do [ -e c/lock.held ] && break; sleep 0.01; done
}
hold_lock sh
expect_status 0 "$PROTLOC" "${build[@]}" --cache c
expect_log "(320 reused, 0 prepared now" "an up-to-date cache builds beside a reader (nothing to write)"
expect_status 0 "$PROTLOC" finetune "${short[@]}" --threads 2 --cache c --out c8
same_weights mem c8 "a second training run reads the cache beside the first"
expect_status 6 "$PROTLOC" "${build[@]/64/96}" --cache c
expect_log "needs an update (320 item(s) to prepare" "a build that must write names what it would do"
expect_log "in use by another run that reads it" "... and that a training run reads the cache"
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
hold_lock ex
expect_status 6 "$PROTLOC" "${build[@]}" --cache c
expect_status 6 "$PROTLOC" finetune "${short[@]}" --threads 2 --cache c --out locked
kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
finish
