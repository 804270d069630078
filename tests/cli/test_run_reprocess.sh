#!/usr/bin/env bash
# Reprocessing: after adding, changing and removing manifest items, a re-run recomputes only those (summary
# counts), reuses the rest, and the new store equals a from-scratch run of the new manifest; --verify digests by
# content; a changed model or preprocessing setting recomputes everything.
source "$(dirname "$0")/lib.sh"
FIX="$PROTLOC_SOURCE_DIR/tests/fixtures/runner"
N=10
[ "${PROTLOC_SANITIZE:-0}" = 1 ] && N=6
D="$TEST_TMP/ds"
$PY "$FIX/make_dataset.py" "$D" $((N + 2)) --size 128 || { fail "dataset generation"; finish; }
"$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --out "$D/model.safetensors" \
  || { fail "model init"; finish; }
printf '{"name": "t", "weights": "model.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$D/card.json"
# v1: the first N items
head -n $((N + 2)) "$D/manifest.tsv" >"$D/v1.tsv"
OPTS=(--model "$D/card.json" --level fov,cells --crop 48 --no-progress --threads 1)
summary() { grep '^summary:' "$TEST_TMP/last.out"; }
count() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$(summary)"; }

expect_status 0 mpirun --oversubscribe -np 2 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v1.tsv" --out "$D/s.h5"
[ "$(count added)" = "$N" ] && [ "$(count computed)" = "$N" ] && pass "first run computes all" || fail "$(summary)"

# unchanged re-run: nothing recomputed
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v1.tsv" --out "$D/s.h5"
[ "$(count reused)" = "$N" ] && [ "$(count computed)" = 0 ] && pass "unchanged re-run reuses everything" || fail "$(summary)"

# v2: drop items 0 and 1, add items N and N+1, change item 2's protein image (new pixels, new mtime)
{ grep '^#' "$D/v1.tsv"; grep -v '^#' "$D/v1.tsv" | head -n 1; grep -v '^#' "$D/manifest.tsv" | tail -n +2 | sed -n "3,$((N + 2))p"; } >"$D/v2.tsv"
$PY - "$D/img/item0002_proj.tif" <<'PYEOF'
import sys, numpy as np, tifffile
a = tifffile.imread(sys.argv[1]); a[1] = a[1][::-1].copy(); tifffile.imwrite(sys.argv[1], a)
PYEOF
expect_status 0 mpirun --oversubscribe -np 3 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v2.tsv" --out "$D/s.h5"
[ "$(count added)" = 2 ] && [ "$(count changed)" = 1 ] && [ "$(count removed)" = 2 ] && \
  [ "$(count reused)" = $((N - 3)) ] && [ "$(count computed)" = 3 ] && pass "only new/changed recomputed: $(summary)" \
  || fail "reprocess counts: $(summary)"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v2.tsv" --out "$D/fresh.h5"
$PY "$FIX/compare_stores.py" "$D/fresh.h5" "$D/s.h5" && pass "incremental store equals a fresh run" || fail "incremental differs"

# --verify: content digests; a touch (same bytes, new mtime) is not a change under --verify
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v2.tsv" --out "$D/s.h5" --verify
[ "$(count computed)" = "$N" ] && pass "switching to --verify recomputes (digest kind changed)" || fail "$(summary)"
touch "$D/img/item0005_proj.tif"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v2.tsv" --out "$D/s.h5" --verify
[ "$(count computed)" = 0 ] && pass "--verify ignores a touch" || fail "$(summary)"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v2.tsv" --out "$D/s.h5"
touch -d '2020-01-01' "$D/img/item0005_proj.tif"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v2.tsv" --out "$D/s.h5"
[ "$(count changed)" = 1 ] && [ "$(count computed)" = 1 ] && pass "size+mtime digest sees a touch" || fail "$(summary)"

# a preprocessing setting or the model changes: everything recomputed
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v2.tsv" --out "$D/s.h5" --crop 32
[ "$(count changed)" = "$N" ] && [ "$(count computed)" = "$N" ] && pass "new crop size recomputes all" || fail "$(summary)"
"$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --seed 7 --out "$D/model.safetensors"
expect_status 0 "$PROTLOC" run "${OPTS[@]}" --manifest "$D/v2.tsv" --out "$D/s.h5" --crop 32
[ "$(count computed)" = "$N" ] && pass "new model weights recompute all" || fail "$(summary)"
# a card whose sha256 does not match its weights is refused
printf '{"name": "t", "weights": "model.safetensors", "sha256": "%064d", "input_slots": ["protein", "nucleus"]}\n' 0 >"$D/bad_card.json"
expect_status 1 "$PROTLOC" run --model "$D/bad_card.json" --manifest "$D/v2.tsv" --out "$D/s.h5"
grep -q "sha256" "$TEST_TMP/last.err" && pass "sha256 mismatch named" || fail "sha256 message"
finish
