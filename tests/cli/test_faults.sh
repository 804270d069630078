#!/usr/bin/env bash
# Fault suite for `protloc run` / `export` (issue 13): what happens to the output when things go wrong.
#  1. commit rules: all-failed and partly failed re-runs keep the previous store byte-identical (exit 5 / 4) or
#     replace it (--max-failed count, fraction or percentage, --accept-failures; new items may fail: exit 3);
#     STORE.h5.failures.tsv lists the failures
#  2. one huge FOV (8192 x 8192) among normal ones is one failed item (stage budget, hint --level tiles), decided
#     from its header without a large allocation; --max-pixels likewise
#  3. two runs on one --out: the second refuses at once (exit 6) naming the holder; the first completes
#  4. FIFOs as manifest, card, weights and (--verify) channel file: clear errors, never a hang
#  5. SIGTERM at seeded random moments (1 and 2 ranks, and while the temporary store is written): exit 128+15,
#     no temporary files, a plain re-run resumes and equals an uninterrupted run
#  6. full and read-only output file systems (a small tmpfs / read-only bind mount in a private mount namespace):
#     exit 1 naming the cause, previous store byte-identical, nothing left behind, no crash
#  7. validation up front: symlink escaping the root, invalid UTF-8 and over-long ids, export onto its own input,
#     a card whose normalisation overflows float32, weights that give non-finite embeddings, a corrupt deflate TIFF
source "$(dirname "$0")/lib.sh"
FIX="$PROTLOC_SOURCE_DIR/tests/fixtures/runner"
SLOW="$PROTLOC_BUILD_DIR/tests/protloc_slow_items"
D="$TEST_TMP/ds"
N=6
$PY "$FIX/make_dataset.py" "$D" $((N + 2)) --size 128 || { fail "dataset generation"; finish; }
"$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --out "$D/model.safetensors" \
  || { fail "model init"; finish; }
printf '{"name": "t", "weights": "model.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$D/card.json"
head -n $((N + 2)) "$D/manifest.tsv" >"$D/m.tsv"   # comment, header, N items
OPTS=(--model "$D/card.json" --level fov --no-progress --threads 1)
field() { sed -n "s/^summary:.* $1=\([^ ]*\).*/\1/p" "$TEST_TMP/last.out"; }
no_temps() {  # no_temps STORE: no temporary store or export file beside it
  if ls "$1".tmp.* >/dev/null 2>&1; then fail "temporary files left beside $1: $(ls "$1".tmp.*)"; fi
}
same_file() { cmp -s "$1" "$2" && pass "$3" || fail "$3: $1 changed"; }

expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$D/ref.h5"

# ---- 1. commit rules ----
printf 'II*\0garbage' >"$D/img/broken.tif"
# manifest with items 0..k-1 pointing at the broken file (same ids: they had rows in the previous store)
break_items() {  # break_items K OUT.tsv [extra rows file]
  awk -F'\t' -v k="$1" 'BEGIN { OFS = "\t" } /^#/ || $1 == "id" { print; next }
       n++ < k { $7 = "img/broken.tif#0"; $8 = "img/broken.tif#1" } { print }' "$D/m.tsv" >"$2"
}
cp "$D/ref.h5" "$D/s.h5"
break_items $N "$D/all_bad.tsv"
expect_status 5 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/all_bad.tsv" --out "$D/s.h5"
same_file "$D/ref.h5" "$D/s.h5" "all items failed: exit 5, previous store byte-identical"
[ "$(field store)" = kept ] || fail "summary should say store=kept: $(grep summary: "$TEST_TMP/last.out")"
[ "$(grep -c $'\tdecode\tyes\t' "$D/s.h5.failures.tsv")" = "$N" ] \
  || fail "failures report should list $N regressions: $(cat "$D/s.h5.failures.tsv")"
grep -q "no item produced a row" "$TEST_TMP/last.err" || fail "exit 5 not explained: $(tail -2 "$TEST_TMP/last.err")"
no_temps "$D/s.h5"

break_items 1 "$D/one_bad.tsv"
expect_status 4 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/one_bad.tsv" --out "$D/s.h5"
same_file "$D/ref.h5" "$D/s.h5" "one regression: exit 4, previous store byte-identical"
[ "$(field regressions)" = 1 ] || fail "summary should count 1 regression: $(grep summary: "$TEST_TMP/last.out")"
grep -q -- "--accept-failures or --max-failed" "$TEST_TMP/last.err" || fail "exit 4 does not say how to accept"
[ ! -d "$D/s.h5.journal" ] || [ "$(ls "$D/s.h5.journal" | wc -l)" -gt 0 ] || fail "empty journal folder left"
expect_status 4 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/one_bad.tsv" --out "$D/s.h5" --max-failed 10%
same_file "$D/ref.h5" "$D/s.h5" "1 of $N failed is over --max-failed 10%: kept"
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/one_bad.tsv" --out "$D/s.h5" --max-failed 0.2
[ "$(field store)" = replaced ] || fail "--max-failed 0.2 should replace: $(grep summary: "$TEST_TMP/last.out")"
$PY - "$D/s.h5" "$D/ref.h5" "$N" <<'PYEOF' || fail "store after --max-failed 0.2"
import sys, h5py, numpy as np
s, r, n = h5py.File(sys.argv[1]), h5py.File(sys.argv[2]), int(sys.argv[3])
ids = [i.decode() for i in s["items/id"][()]]
assert len(ids) == n - 1 and "item0000" not in ids, ids
assert [i.decode() for i in s["failures/id"][()]] == ["item0000"], s["failures/id"][()]
assert np.array_equal(s["fov/embedding"][()], r["fov/embedding"][1:]), "surviving rows differ from the reference"
PYEOF
cp "$D/ref.h5" "$D/s.h5"
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/one_bad.tsv" --out "$D/s.h5" --max-failed 1
cp "$D/ref.h5" "$D/s.h5"
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/one_bad.tsv" --out "$D/s.h5" --accept-failures
expect_status 5 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/all_bad.tsv" --out "$D/s.h5" --accept-failures
[ "$(field store)" = kept ] || fail "--accept-failures must still refuse a store without rows"
# a new item that fails is not a regression: the store is replaced (exit 3)
cp "$D/ref.h5" "$D/s.h5"
{ cat "$D/m.tsv"; printf 'newbad\tsynthetic\ter\ttrain\tGN\t0.206\timg/broken.tif#0\timg/broken.tif#1\n'; } >"$D/new_bad.tsv"
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/new_bad.tsv" --out "$D/s.h5"
[ "$(field store)" = replaced ] && [ "$(field regressions)" = 0 ] || fail "a new failing item: $(grep summary: "$TEST_TMP/last.out")"
grep -q $'^newbad\t' "$D/s.h5.failures.tsv" || fail "failures report misses the new item"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$D/s.h5"
[ ! -e "$D/s.h5.failures.tsv" ] || fail "a clean run must remove the stale failures report"

# a store written before strings became variable-length (fixed-length, null-padded) is read and reused
$PY - "$D/ref.h5" "$D/old.h5" <<'PYEOF' || fail "old-format store conversion"
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as src, h5py.File(sys.argv[2], "w") as dst:
    for k, v in src.attrs.items():
        dst.attrs[k] = v
    def copy(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return
        a = obj[()]
        if a.dtype.kind == "O":   # variable-length strings -> fixed-length, as protloc wrote them before
            b = [x if isinstance(x, bytes) else x.encode() for x in a]
            a = np.array(b, dtype="S%d" % max(1, max((len(x) for x in b), default=1)))
        dst.create_dataset(name, data=a)
    src.visititems(copy)
PYEOF
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$D/old.h5"
[ "$(field reused)" = "$N" ] || fail "old-format store not reused: $(grep summary: "$TEST_TMP/last.out")"
$PY "$FIX/compare_stores.py" "$D/ref.h5" "$D/old.h5" >/dev/null && pass "an old-format store is reused and rewritten" \
  || fail "rewritten old-format store differs"

# ---- 2. per-item budgets: a huge FOV among normal ones ----
$PY - "$D/img/huge.tif" <<'PYEOF' || fail "huge TIFF generation"
import sys, numpy as np, tifffile
a = np.zeros((2, 8192, 8192), np.uint16)
a[:, ::97, ::89] = 1000
tifffile.imwrite(sys.argv[1], a, compression="zlib")
PYEOF
{ cat "$D/m.tsv"; printf 'huge\tsynthetic\ter\ttrain\tGH\t0.206\timg/huge.tif#0\timg/huge.tif#1\n'; } >"$D/huge.tsv"
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/huge.tsv" --out "$D/h.h5"
[ "$(field failed)" = 1 ] && [ "$(field store)" = replaced ] || fail "huge FOV: $(grep summary: "$TEST_TMP/last.out")"
grep -q $'^huge\t.*\tbudget\t.*--level tiles' "$D/h.h5.failures.tsv" || fail "huge FOV failure: $(cat "$D/h.h5.failures.tsv")"
rss=$(sed -n 's/.*peak RSS per rank (largest) \([0-9.]*\) MiB.*/\1/p' "$TEST_TMP/last.err")
awk -v r="${rss:-99999}" 'BEGIN { exit !(r < 1024) }' || fail "huge FOV: peak RSS ${rss:-?} MiB (decoded anyway?)"
$PY "$FIX/compare_stores.py" "$D/ref.h5" "$D/h.h5" >/dev/null 2>&1 && fail "the store should have a /failures entry"
$PY -c "
import h5py, sys, numpy as np
h, r = h5py.File(sys.argv[1]), h5py.File(sys.argv[2])
assert np.array_equal(h['fov/embedding'][()], r['fov/embedding'][()])" "$D/h.h5" "$D/ref.h5" \
  && pass "huge FOV: one failed item (budget, ${rss} MiB peak), the rest stored" || fail "huge FOV: other rows differ"
expect_status 5 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$D/tiny.h5" --max-memory 64K
grep -q "more than --max-memory" "$D/tiny.h5.failures.tsv" || fail "--max-memory failure reason"
expect_status 5 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$D/tiny.h5" --max-pixels 1000
grep -q "(--max-pixels)" "$D/tiny.h5.failures.tsv" || fail "--max-pixels failure reason: $(head -2 "$D/tiny.h5.failures.tsv")"
[ ! -e "$D/tiny.h5" ] || fail "a run without rows wrote a store"

# ---- 3. exclusive output ----
"$SLOW" 300 run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$D/lk.h5" >"$TEST_TMP/lk.out" 2>"$TEST_TMP/lk.err" &
first=$!
for _ in $(seq 1 200); do [ -s "$D/lk.h5.journal/rank-00000.jnl" ] && break; sleep 0.05; done
expect_status 6 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$D/lk.h5"
grep -q "lk.h5.lock is locked by another run: host=.* pid=$first " "$TEST_TMP/last.err" \
  || fail "the refusal should name the holder (pid $first): $(cat "$TEST_TMP/last.err")"
wait "$first"; rc=$?
[ "$rc" = 0 ] && pass "the first run completed while the second refused" || fail "first run exit $rc: $(tail -3 "$TEST_TMP/lk.err")"
$PY "$FIX/compare_stores.py" "$D/ref.h5" "$D/lk.h5" || fail "locked run's store differs"
# a lock file left by a dead process does not block (fcntl locks die with their process)
printf 'host=%s pid=999999 since=2020-01-01T00:00:00Z protloc run\n' "$(hostname)" >"$D/lk.h5.lock"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$D/lk.h5"

# ---- 4. FIFOs never hang ----
mkfifo "$D/fifo"
fifo_case() {  # fifo_case WHAT cmd...: exit 1 within 30 s, message names the FIFO
  local what=$1; shift
  timeout 30 "$@" >"$TEST_TMP/last.out" 2>"$TEST_TMP/last.err"
  local rc=$?
  if [ "$rc" = 124 ]; then fail "$what: a FIFO made it hang"
  elif ! grep -q "fifo is a FIFO (named pipe), not a regular file" "$TEST_TMP/last.err"; then
    fail "$what: exit $rc, message: $(tail -2 "$TEST_TMP/last.err")"
  else pass "$what: FIFO refused (exit $rc)"; fi
}
fifo_case "manifest" "$PROTLOC" run "${OPTS[@]}" --manifest "$D/fifo" --out "$D/f.h5"
fifo_case "model card" "$PROTLOC" run --model "$D/fifo" --manifest "$D/m.tsv" --out "$D/f.h5" --no-progress
printf '{"name": "t", "weights": "fifo", "input_slots": ["protein", "nucleus"]}\n' >"$D/fifo_card.json"
fifo_case "weights" "$PROTLOC" run --model "$D/fifo_card.json" --manifest "$D/m.tsv" --out "$D/f.h5" --no-progress
{ cat "$D/m.tsv"; printf 'piped\tsynthetic\ter\ttrain\tGP\t0.206\tfifo\tfifo\n'; } >"$D/fifo_item.tsv"
fifo_case "manifest check" "$PROTLOC" manifest check "$D/fifo"
[ ! -e "$D/f.h5" ] || fail "a FIFO manifest, card or weights file produced a store"
# a FIFO as an item's channel file is that item's failure; the others are stored (exit 3)
fifo_case "channel file (--verify)" "$PROTLOC" run "${OPTS[@]}" --manifest "$D/fifo_item.tsv" --out "$D/f.h5" --verify
grep -q $'^piped\t' "$D/f.h5.failures.tsv" && [ -e "$D/f.h5" ] || fail "the FIFO item should fail alone"

# ---- 5. SIGTERM at random moments, then resume ----
# moments (ms after the start) from a fixed seed so a failure can be replayed: PROTLOC_FAULT_SEED overrides; plus
# one moment per rank count chosen by progress (every rank has journaled an item), so a mid-run stop always happens
seed=${PROTLOC_FAULT_SEED:-13}
read -r -a moments <<<"$($PY -c "import random; r = random.Random($seed); print(*[r.randint(50, 1200) for _ in range(2)], *[r.randint(300, 2500) for _ in range(2)])")"
echo "SIGTERM moments (seed $seed): ${moments[*]} ms"
term_case() {  # term_case NP WHEN OUT: slow run on NP ranks; SIGTERM to every rank at WHEN (ms, or "journaled")
  local np=$1 when=$2 out=$3 rc
  if [ "$np" = 1 ]; then
    "$SLOW" 100 run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$out" >"$TEST_TMP/t.out" 2>"$TEST_TMP/t.err" &
  else
    mpirun -np "$np" "$SLOW" 250 run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$out" >"$TEST_TMP/t.out" 2>"$TEST_TMP/t.err" &
  fi
  local launcher=$!
  if [ "$when" = journaled ]; then
    for _ in $(seq 1 600); do
      local ready=1 r
      for r in $(seq 0 $((np - 1))); do [ -s "$out.journal/rank-0000$r.jnl" ] || ready=0; done
      [ "$ready" = 1 ] && break
      sleep 0.05
    done
  else
    sleep "$(awk -v m="$when" 'BEGIN { printf "%.3f", m / 1000 }')"
  fi
  # every rank gets SIGTERM, as Slurm delivers it to each task
  if [ "$np" = 1 ]; then kill -TERM "$launcher" 2>/dev/null; else pkill -TERM -P "$launcher" -f protloc_slow_items; fi
  wait "$launcher"; rc=$?
  if [ "$rc" != 0 ] && ! grep -q "stopped by signal 15" "$TEST_TMP/t.err"; then
    fail "np=$np SIGTERM at $when: exit $rc without a clean stop: $(tail -3 "$TEST_TMP/t.err")"
  fi
  [ "$np" = 1 ] && [ "$rc" != 0 ] && [ "$rc" != 143 ] && fail "np=1 SIGTERM: exit $rc, want 143"
  [ "$when" = journaled ] && [ "$rc" = 0 ] && fail "np=$np: the run finished before the SIGTERM"
  no_temps "$out"
  [ "$rc" = 0 ] || [ ! -e "$out" ] || fail "an interrupted first run left a store"
  expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/m.tsv" --out "$out"
  $PY "$FIX/compare_stores.py" "$D/ref.h5" "$out" >/dev/null || fail "np=$np SIGTERM at $when: resumed store differs"
  [ ! -e "$out.journal" ] || fail "journal left after the resumed run"
  no_temps "$out"
  pass "np=$np SIGTERM at $when (exit $rc; resumed $(field resumed), computed $(field computed)): equal to uninterrupted"
  rm -f "$out" "$out.lock"
}
term_case 1 "${moments[0]}" "$D/t1.h5"
term_case 1 "${moments[1]}" "$D/t1.h5"
term_case 1 journaled "$D/t1.h5"
term_case 2 "${moments[2]}" "$D/t2.h5"
term_case 2 "${moments[3]}" "$D/t2.h5"
term_case 2 journaled "$D/t2.h5"
# while the temporary store is written: the previous store stays, the temporary one is removed
cp "$D/ref.h5" "$D/w.h5"
"$SLOW" 200 run "${OPTS[@]}" --manifest "$D/new_bad.tsv" --out "$D/w.h5" --accept-failures >"$TEST_TMP/w.out" 2>"$TEST_TMP/w.err" &
pid=$!
for _ in $(seq 1 300); do grep -q "temporary store written" "$TEST_TMP/w.err" && break; sleep 0.05; done
ls "$D"/w.h5.tmp.* >/dev/null 2>&1 || fail "no temporary store seen during the pause"
kill -TERM "$pid"; wait "$pid"; rc=$?
[ "$rc" = 143 ] || fail "SIGTERM during the store write: exit $rc, want 143"
same_file "$D/ref.h5" "$D/w.h5" "SIGTERM during the store write keeps the previous store"
no_temps "$D/w.h5"

# ---- 6. full and read-only file systems ----
# Real mounts: a small tmpfs and a read-only bind mount, in a private mount namespace (unshare -m). Where mount
# namespaces cannot be made (a chroot, as in fresh-machine-check.sh, whose "/" is not a mount point) but we are
# root, the same mounts are made directly on a folder of this test and removed as soon as each case ends.
mkdir -p "$TEST_TMP/mnt"
fs_ns=()
if unshare -m sh -c "mount -t tmpfs -o size=64k tmpfs '$TEST_TMP/mnt'" 2>/dev/null; then
  fs_ns=(unshare -m); fs_mode="private mount namespace"
elif [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=64k tmpfs "$TEST_TMP/mnt" 2>/dev/null && umount "$TEST_TMP/mnt"; then
  fs_mode="direct mounts (no mount namespaces here), each removed when its case ends"
else
  fs_mode=""
fi
if [ -n "$fs_mode" ]; then
  echo "full/read-only output file systems: $fs_mode"
  cat >"$TEST_TMP/fs_case.sh" <<EOF
#!/bin/bash
# \$1 = tmpfs size (KiB) or "ro"; the output folder holds a copy of ref.h5; the mount is gone when this ends
set -u
M="$TEST_TMP/mnt"
trap 'umount -l "\$M" 2>/dev/null' EXIT
if [ "\$1" = ro ]; then
  mkdir -p "$TEST_TMP/rosrc" && cp "$D/ref.h5" "$TEST_TMP/rosrc/s.h5"
  mount --bind "$TEST_TMP/rosrc" "\$M" && mount -o remount,bind,ro "\$M" || exit 99
else
  mount -t tmpfs -o size=\${1}k tmpfs "\$M" || exit 99
  cp "$D/ref.h5" "\$M/s.h5" || exit 98
fi
"$PROTLOC" run ${OPTS[*]} --manifest "$D/new_bad.tsv" --out "\$M/s.h5" --accept-failures >"$TEST_TMP/fs.out" 2>"$TEST_TMP/fs.err"
echo "run=\$?"
"$PROTLOC" export "$D/ref.h5" --format h5ad --out "\$M/e.h5ad" >>"$TEST_TMP/fs.out" 2>>"$TEST_TMP/fs.err"
echo "export=\$?"
cmp -s "$D/ref.h5" "\$M/s.h5" && echo same
ls -A "\$M" | tr '\n' ' '; echo
EOF
  for size in 40 44 48 52 ro; do   # the copied store takes ~32 KiB: each size runs out at another point
    res=$("${fs_ns[@]}" bash "$TEST_TMP/fs_case.sh" "$size" 2>&1)
    run=$(sed -n 's/^run=//p' <<<"$res"); exp=$(sed -n 's/^export=//p' <<<"$res"); files=$(tail -n 1 <<<"$res")
    if grep -q "^same" <<<"$res"; then :; elif [ "$run" = 3 ]; then :; else fail "fs $size: store neither kept nor replaced: $res"; fi
    case "$run:$exp" in
      1:1|3:1|3:0|1:0) ;;
      *) fail "fs $size: run exit ${run:-?}, export exit ${exp:-?} (a crash is 139): $res" ;;
    esac
    if [ "$run" = 1 ] && ! grep -q "full\|read-only\|No space left" "$TEST_TMP/fs.err"; then
      fail "fs $size: the error does not name the cause: $(grep error "$TEST_TMP/fs.err" | head -2)"
    fi
    if grep -q '\.tmp\.' <<<"$files"; then fail "fs $size: temporaries left: $files"; fi
    if grep -qi "segmentation\|core dumped\|AddressSanitizer" "$TEST_TMP/fs.err"; then fail "fs $size: crashed: $(tail -3 "$TEST_TMP/fs.err")"; fi
    pass "output fs $size: run exit $run ($(grep -m1 -o 'error: .*' "$TEST_TMP/fs.err" | cut -c1-150)), export exit $exp, left: $files"
  done
else
  skip_part "full/read-only file systems: this machine allows neither mount namespaces nor mounts (not root)"
fi

# ---- 7. validation up front ----
mkdir -p "$D/root/sub" "$D/outside"
cp "$D/img/item0000_proj.tif" "$D/outside/x.tif"
ln -s ../../outside/x.tif "$D/root/sub/link.tif"
printf 'id\tdataset\tlabel\tsplit\tgroup\tpixel_size_um\tnucleus\tprotein\nz\tsynthetic\ter\ttrain\tG\t0.206\tsub/link.tif#0\tsub/link.tif#1\n' >"$D/root/m.tsv"
expect_status 1 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/root/m.tsv" --out "$D/root/s.h5"
grep -q "m.tsv:2:.*resolves to .*outside/x.tif', outside the root folder" "$TEST_TMP/last.err" || fail "symlink escape: $(tail -2 "$TEST_TMP/last.err")"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/root/m.tsv" --out "$D/root/s.h5" --allow-outside-root

{ head -n 2 "$D/m.tsv"; printf 'bad\xff\xfeid\tsynthetic\ter\ttrain\tG\t0.206\timg/item0000_proj.tif#0\timg/item0000_proj.tif#1\n'; } >"$D/utf8.tsv"
expect_status 1 "$PROTLOC" manifest check "$D/utf8.tsv"
grep -q "utf8.tsv:3:.*UTF-8" "$TEST_TMP/last.err" || fail "invalid UTF-8 not named with file:line: $(cat "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/utf8.tsv" --out "$D/u.h5"
long=$(head -c 1100 /dev/zero | tr '\0' 'a')
{ head -n 2 "$D/m.tsv"; printf '%s\tsynthetic\ter\ttrain\tG\t0.206\timg/item0000_proj.tif#0\timg/item0000_proj.tif#1\n' "$long"; } >"$D/long.tsv"
expect_status 1 "$PROTLOC" manifest check "$D/long.tsv"
grep -q "long.tsv:3:.*1024" "$TEST_TMP/last.err" || fail "over-long id not named: $(cat "$TEST_TMP/last.err")"

cp "$D/ref.h5" "$D/x.h5"
expect_status 2 "$PROTLOC" export "$D/x.h5" --format h5ad --out "$D/x.h5"
expect_status 2 "$PROTLOC" export "$D/x.h5" --format npy --out "$D/e.npy" --meta "$D/./x.h5"
ln -sf x.h5 "$D/alias.h5"
expect_status 2 "$PROTLOC" export "$D/x.h5" --format tsv --out "$D/alias.h5"
same_file "$D/ref.h5" "$D/x.h5" "export refuses to write over its input store"

printf '{"name": "t", "weights": "model.safetensors", "input_slots": ["protein", "nucleus"], "normalisation": {"mode": "fixed", "mean": [0.5, 0.5], "std": [1e-30, 1]}}\n' >"$D/nan_card.json"
expect_status 1 "$PROTLOC" run --model "$D/nan_card.json" --manifest "$D/m.tsv" --out "$D/n.h5" --no-progress
grep -q "std\[0\] = 1e-30.*overflow float32" "$TEST_TMP/last.err" || fail "overflowing normalisation: $(tail -1 "$TEST_TMP/last.err")"
# finite weights that overflow inside the ViT: every item fails at stage embed, nothing is stored
$PY - "$D/model.safetensors" "$D/huge_weights.safetensors" <<'PYEOF' || fail "weights patch"
import json, struct, sys, numpy as np
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:])
a, b = head["blocks.0.norm1.weight"]["data_offsets"]
data[a:b] = np.full((b - a) // 4, 3e38, np.float32).tobytes()
open(sys.argv[2], "wb").write(raw[:8 + n] + bytes(data))
PYEOF
printf '{"name": "t", "weights": "huge_weights.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$D/inf_card.json"
expect_status 5 "$PROTLOC" run --model "$D/inf_card.json" --manifest "$D/m.tsv" --out "$D/n.h5" --no-progress
[ "$(grep -c $'\tembed\t.*is not finite' "$D/n.h5.failures.tsv")" = "$N" ] || fail "non-finite embeddings: $(head -3 "$D/n.h5.failures.tsv")"
[ ! -e "$D/n.h5" ] || fail "non-finite embeddings were stored"

# a deflate TIFF whose strip is corrupted in the middle: an item failure naming the file, not garbage pixels
$PY - "$D/img/item0001_proj.tif" "$D/img/corrupt.tif" <<'PYEOF' || fail "corrupt TIFF generation"
import sys, numpy as np, tifffile
a = tifffile.imread(sys.argv[1])
tifffile.imwrite(sys.argv[2], a, compression="zlib", rowsperstrip=a.shape[-2])
with tifffile.TiffFile(sys.argv[2]) as t:
    off, cnt = t.pages[1].dataoffsets[0], t.pages[1].databytecounts[0]
raw = bytearray(open(sys.argv[2], "rb").read())
for i in range(off + cnt // 2, off + cnt // 2 + 16):
    raw[i] ^= 0x5A
open(sys.argv[2], "wb").write(bytes(raw))
PYEOF
{ cat "$D/m.tsv"; printf 'corrupt\tsynthetic\ter\ttrain\tGC\t0.206\timg/corrupt.tif#0\timg/corrupt.tif#1\n'; } >"$D/corrupt.tsv"
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/corrupt.tsv" --out "$D/c.h5"
grep -q $'^corrupt\t.*corrupt.tif' "$D/c.h5.failures.tsv" && pass "corrupt deflate strip: $(cut -f5 "$D/c.h5.failures.tsv" | tail -1 | cut -c1-160)" \
  || fail "corrupt deflate strip not a failure: $(cat "$D/c.h5.failures.tsv" 2>&1)"
finish
