#!/usr/bin/env bash
# Crash safety: kill -9 one rank of `mpirun -np 2 protloc run` mid-run, add a torn record to a journal, re-run the
# same command: it resumes (finished items are not recomputed), discards the torn tail, and the store equals an
# uninterrupted run's, with no duplicate items.
source "$(dirname "$0")/lib.sh"
FIX="$PROTLOC_SOURCE_DIR/tests/fixtures/runner"
N=16
[ "${PROTLOC_SANITIZE:-0}" = 1 ] && N=8
D="$TEST_TMP/ds"
$PY "$FIX/make_dataset.py" "$D" "$N" --size 128 || { fail "dataset generation"; finish; }
"$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --out "$D/model.safetensors" \
  || { fail "model init"; finish; }
printf '{"name": "t", "weights": "model.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$D/card.json"
OPTS=(--manifest "$D/manifest.tsv" --model "$D/card.json" --level fov,tiles --tile 64 --no-progress --threads 1)

expect_status 0 mpirun --oversubscribe -np 2 "$PROTLOC" run "${OPTS[@]}" --out "$D/ref.h5"

# slow run (tests/tools/protloc_slow_items: each item takes >= 150 ms) killed once both journals hold records
SLOW="$PROTLOC_BUILD_DIR/tests/protloc_slow_items"
mpirun --oversubscribe -np 2 "$SLOW" 150 run "${OPTS[@]}" --out "$D/crash.h5" \
  >"$TEST_TMP/crash.out" 2>"$TEST_TMP/crash.err" &
MPIRUN_PID=$!
killed=0
for _ in $(seq 1 600); do
  s0=$(stat -c %s "$D/crash.h5.journal/rank-00000.jnl" 2>/dev/null || echo 0)
  s1=$(stat -c %s "$D/crash.h5.journal/rank-00001.jnl" 2>/dev/null || echo 0)
  if [ "$s0" -gt 0 ] && [ "$s1" -gt 0 ]; then
    victim=$(pgrep -P "$MPIRUN_PID" -f "protloc_slow_items 150 run" | tail -n 1)
    [ -n "$victim" ] && kill -9 "$victim" && killed=1
    break
  fi
  sleep 0.05
done
wait "$MPIRUN_PID"
rc=$?
[ "$killed" = 1 ] && [ "$rc" -ne 0 ] && pass "killed a rank mid-run (mpirun exit $rc)" || fail "could not kill a rank mid-run"
[ ! -e "$D/crash.h5" ] && pass "no store after the crash" || fail "a store exists after the crash"
ls "$D"/crash.h5.tmp.* >/dev/null 2>&1 && fail "temporary store left behind" || true
# a torn record: half a header appended to rank 1's journal
printf 'PLJ1\x10\x00\x00' >>"$D/crash.h5.journal/rank-00001.jnl"

expect_status 0 mpirun --oversubscribe -np 2 "$PROTLOC" -v run "${OPTS[@]}" --out "$D/crash.h5"
line=$(grep '^summary:' "$TEST_TMP/last.out")
resumed=$(sed -n 's/.* resumed=\([0-9]*\).*/\1/p' <<<"$line")
computed=$(sed -n 's/.* computed=\([0-9]*\).*/\1/p' <<<"$line")
{ [ "$resumed" -gt 0 ] && [ $((resumed + computed)) -eq "$N" ]; } \
  && pass "resume: $resumed items from the journal, $computed recomputed" || fail "resume counts: $line"
grep -q "torn tail" "$TEST_TMP/last.err" && pass "torn record discarded" || fail "torn record not reported"
$PY "$FIX/compare_stores.py" "$D/ref.h5" "$D/crash.h5" && pass "resumed store equals the uninterrupted one" \
  || fail "resumed store differs"
$PY -c "
import h5py,sys
ids=h5py.File(sys.argv[1])['items/id'][()]
sys.exit(0 if len(ids)==len(set(ids))==$N else 1)" "$D/crash.h5" && pass "no duplicate items" || fail "duplicates"
[ ! -e "$D/crash.h5.journal" ] && pass "journal removed" || fail "journal left after success"

# the same resume works with a different rank count (3 ranks read 2 ranks' journals)
mpirun --oversubscribe -np 2 "$SLOW" 100 run "${OPTS[@]}" --out "$D/c3.h5" \
  >/dev/null 2>&1 &
P2=$!
for _ in $(seq 1 400); do
  [ "$(stat -c %s "$D/c3.h5.journal/rank-00000.jnl" 2>/dev/null || echo 0)" -gt 0 ] && break
  sleep 0.05
done
victim=$(pgrep -P "$P2" -f "protloc_slow_items 100 run" | head -n 1)
[ -n "$victim" ] && kill -9 "$victim"
wait "$P2"
expect_status 0 mpirun --oversubscribe -np 3 "$PROTLOC" run "${OPTS[@]}" --out "$D/c3.h5"
$PY "$FIX/compare_stores.py" "$D/ref.h5" "$D/c3.h5" && pass "2-rank journal resumed with 3 ranks" || fail "c3 differs"
finish
