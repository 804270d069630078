#!/usr/bin/env bash
# Outputs never overwrite inputs; inputs are regular files (issue 19):
#  1. every command that writes files (run, export, knn, probe, embed, image prep, segment, manifest scan) refuses an
#     output path that names one of its inputs — the same path, a symlink, a hard link or a "d/./sub/../" spelling —
#     before any compute: exit 1 (export: 2, its usage status), a message naming the option, the output and the
#     input and saying it would overwrite it; the input stays byte-identical
#  2. run's side files (STORE.h5.failures.tsv, .lock, the journal folder, stale temporaries), knn/probe
#     --report-dir's fixed file names, and two outputs naming one file are refused the same way
#  3. FIFOs: `manifest diff` with a FIFO, and a journal rank file replaced by a FIFO before a resuming run, fail
#     within seconds naming it (never a hang); after removing it the run goes on
source "$(dirname "$0")/lib.sh"
FIX="$PROTLOC_SOURCE_DIR/tests/fixtures/runner"
D="$TEST_TMP/ds"
$PY "$FIX/make_dataset.py" "$D" 4 --size 64 >/dev/null || { fail "dataset generation"; finish; }
"$PROTLOC" -q model init --dim 32 --depth 1 --heads 2 --patch 16 --in-chans 2 --out "$D/model.safetensors" \
  || { fail "model init"; finish; }
printf '{"name": "t", "weights": "model.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$D/card.json"
cp "$D/manifest.tsv" "$D/m.tsv"
printf 'id\tmask_label\tlabel\n' >"$D/cells.tsv"
printf 'gene,label\n' >"$D/labels.csv"
mkdir -p "$D/sub" "$D/img/sub"
IMG="$D/img/item0000_proj.tif"
RUN=(run --manifest "$D/m.tsv" --model "$D/card.json" --no-progress --threads 1)
expect_status 0 "$PROTLOC" -q "${RUN[@]}" --out "$D/s.h5"
expect_status 0 "$PROTLOC" -q export "$D/s.h5" --format npy --out "$D/f.npy"
expect_status 0 "$PROTLOC" -q image prep --channel "nucleus=$IMG#0" --channel "protein=$IMG#1" --slots protein,nucleus \
  --out "$D/x.npy"

# call CMD... with a 20 s limit; 124 (a hang) is a failure of its own
call() {
  timeout 20 "$PROTLOC" "$@" >"$TEST_TMP/last.out" 2>"$TEST_TMP/last.err"
  rc=$?
  [ "$rc" = 124 ] && fail "hung (20 s): $*"
}
# check WANT INPUT WHAT TEXT...: exit WANT, every TEXT in the message, INPUT byte-identical to $TEST_TMP/orig
check() {
  local want=$1 input=$2 what=$3 t; shift 3
  if [ "$rc" != "$want" ]; then fail "$what: exit $rc, want $want"; sed 's/^/  | /' "$TEST_TMP/last.err" >&2; return; fi
  for t in "$@"; do
    grep -qF -- "$t" "$TEST_TMP/last.err" || { fail "$what: message lacks '$t': $(tail -1 "$TEST_TMP/last.err")"; return; }
  done
  cmp -s "$input" "$TEST_TMP/orig" && pass "$what" || fail "$what: $input changed"
}
# refuse WANT INPUT OPT CMD...: @OUT@ in CMD is replaced by each spelling of INPUT (itself, a symlink, a hard link,
# DIR/./sub/../NAME); each call must exit WANT naming "OPT <spelling>", the input and "would overwrite"
refuse() {
  local want=$1 input=$2 opt=$3; shift 3
  local dir base s a args name=$1
  case $1 in image | manifest) name="$1 $2" ;; esac
  dir=$(dirname "$input") base=$(basename "$input")
  cp "$input" "$TEST_TMP/orig"
  ln -sf "$base" "$dir/link.$base" && ln -f "$input" "$dir/hard.$base" || { fail "links of $input"; return; }
  for s in "$input" "$dir/link.$base" "$dir/hard.$base" "$dir/./sub/../$base"; do
    args=()
    for a in "$@"; do args+=("${a//@OUT@/$s}"); done
    call "${args[@]}"
    check "$want" "$input" "$name $opt $s (input $base) refused" "$opt $s" "$input" "would overwrite"
  done
  rm -f "$dir/link.$base" "$dir/hard.$base"
}

# ---- 1. each command against each of its inputs ----
refuse 1 "$D/m.tsv" --out "${RUN[@]}" --out @OUT@
refuse 1 "$D/card.json" --out "${RUN[@]}" --out @OUT@
refuse 1 "$D/model.safetensors" --out "${RUN[@]}" --out @OUT@
refuse 1 "$D/cells.tsv" --out "${RUN[@]}" --level cells --cell-labels "$D/cells.tsv" --out @OUT@
refuse 2 "$D/s.h5" --out export "$D/s.h5" --format tsv --out @OUT@
refuse 2 "$D/s.h5" --meta export "$D/s.h5" --format npy --out "$D/e.npy" --meta @OUT@
refuse 1 "$D/s.h5" --json knn --store "$D/s.h5" --json @OUT@
refuse 1 "$D/f.npy" --neighbours knn --features "$D/f.npy" --meta "$D/f.tsv" --neighbours @OUT@
refuse 1 "$D/f.tsv" --predictions knn --features "$D/f.npy" --meta "$D/f.tsv" --predictions @OUT@
refuse 1 "$D/f.tsv" --csv knn --features "$D/f.npy" --meta "$D/f.tsv" --csv @OUT@
refuse 1 "$D/s.h5" --csv probe --store "$D/s.h5" --csv @OUT@
refuse 1 "$D/f.npy" --json probe --features "$D/f.npy" --meta "$D/f.tsv" --json @OUT@
refuse 1 "$D/model.safetensors" --output embed --model "$D/model.safetensors" --input "$D/x.npy" --output @OUT@
refuse 1 "$D/x.npy" --output embed --model "$D/model.safetensors" --input "$D/x.npy" --output @OUT@
refuse 1 "$IMG" --out image prep --channel "nucleus=$IMG#0" --out @OUT@
refuse 1 "$IMG" --tiles-out image prep --channel "nucleus=$IMG#0" --out "$D/p.npy" --tiles-out @OUT@
refuse 1 "$IMG" --mask-out segment --nucleus "$IMG#0" --pixel-size 0.206 --mask-out @OUT@
refuse 1 "$IMG" --json segment --nucleus "$IMG#0" --pixel-size 0.206 --json @OUT@
refuse 1 "$D/labels.csv" --out manifest scan "$D/img" --layout opencell --labels "$D/labels.csv" --out @OUT@
[ ! -e "$D/p.npy" ] && [ ! -e "$D/e.npy" ] || fail "a refused command wrote its other output"

# ---- 2. side files, report folders, outputs against each other ----
cp "$D/m.tsv" "$D/side.h5.failures.tsv" && cp "$D/m.tsv" "$TEST_TMP/orig"
call run --manifest "$D/side.h5.failures.tsv" --model "$D/card.json" --no-progress --out "$D/side.h5"
check 1 "$D/side.h5.failures.tsv" "run: the failure list of --out is the manifest" "failure list of --out" "would overwrite"
cp "$D/card.json" "$D/side.h5.lock" && cp "$D/card.json" "$TEST_TMP/orig"
call run --manifest "$D/m.tsv" --model "$D/side.h5.lock" --no-progress --out "$D/side.h5"
check 1 "$D/side.h5.lock" "run: the lock file of --out is the card" "lock file of --out" "would overwrite"
mkdir -p "$D/jr.h5.journal" && cp "$D/m.tsv" "$D/jr.h5.journal/m.tsv" && cp "$D/m.tsv" "$TEST_TMP/orig"
call run --manifest "$D/jr.h5.journal/m.tsv" --model "$D/card.json" --no-progress --out "$D/sub/../jr.h5"
check 1 "$D/jr.h5.journal/m.tsv" "run: the manifest inside the journal folder of --out" "journal folder of --out" \
  "$D/jr.h5.journal/m.tsv" "delete the input"
cp "$D/m.tsv" "$D/tmp.h5.tmp.999.0" && cp "$D/m.tsv" "$TEST_TMP/orig"
call run --manifest "$D/tmp.h5.tmp.999.0" --model "$D/card.json" --no-progress --out "$D/tmp.h5"
check 1 "$D/tmp.h5.tmp.999.0" "run: a manifest named like a stale temporary store" "$D/tmp.h5.tmp.999.0" "would overwrite"
[ ! -e "$D/side.h5" ] && [ ! -e "$D/jr.h5" ] && [ ! -e "$D/tmp.h5" ] || fail "a refused run wrote a store"

mkdir -p "$D/rep" && ln -sfn rep "$D/replink" && cp "$D/f.tsv" "$D/rep/knn_predictions.tsv" && cp "$D/f.tsv" "$TEST_TMP/orig"
for s in "$D/rep" "$D/replink" "$D/./sub/../rep"; do
  call knn --features "$D/f.npy" --meta "$D/rep/knn_predictions.tsv" --report-dir "$s"
  check 1 "$D/rep/knn_predictions.tsv" "knn --report-dir $s holding --meta refused" "--report-dir $s" "knn_predictions.tsv" \
    "would overwrite"
done
ln -f "$D/rep/knn_predictions.tsv" "$D/hl.tsv"
call knn --features "$D/f.npy" --meta "$D/hl.tsv" --report-dir "$D/rep"
check 1 "$D/rep/knn_predictions.tsv" "knn --report-dir: --meta a hard link of a report file" "--meta $D/hl.tsv" "would overwrite"
cp "$D/f.tsv" "$D/rep/probe_mlp_confusion.svg"
call probe --features "$D/f.npy" --meta "$D/rep/probe_mlp_confusion.svg" --report-dir "$D/replink"
check 1 "$D/rep/probe_mlp_confusion.svg" "probe --report-dir holding --meta refused" "probe_mlp_confusion.svg" "would overwrite"
call knn --features "$D/f.npy" --meta "$D/f.tsv" --json "$D/k.out" --csv "$D/sub/../k.out"
check 1 "$D/f.tsv" "knn: --json and --csv naming one file refused" "--json $D/k.out" "the same file" # f.tsv untouched
cp "$D/s.h5" "$TEST_TMP/orig"
call export "$D/s.h5" --format npy --out "$D/o.npy" --meta "$D/./o.npy"
check 2 "$D/s.h5" "export: --out and --meta naming one file refused" "--meta $D/./o.npy" "the same file"

# ---- 3. FIFOs never hang ----
mkfifo "$D/fifo"
cp "$D/m.tsv" "$TEST_TMP/orig"
call manifest diff "$D/fifo" "$D/m.tsv"
check 1 "$D/m.tsv" "manifest diff OLD = FIFO: an error naming it" "$D/fifo is a FIFO"
call manifest diff "$D/m.tsv" "$D/fifo"
check 1 "$D/m.tsv" "manifest diff NEW = FIFO: an error naming it" "$D/fifo is a FIFO"

# a journal kept by a run whose items all failed (exit 5), its rank file then replaced by a FIFO
printf 'II*\0garbage' >"$D/img/broken.tif"
awk -F'\t' 'BEGIN { OFS = "\t" } /^#/ || $1 == "id" { print; next } { $7 = "img/broken.tif#0"; $8 = "img/broken.tif#1"; print }' \
  "$D/m.tsv" >"$D/bad.tsv"
BAD=(run --manifest "$D/bad.tsv" --model "$D/card.json" --no-progress --threads 1 --out "$D/j.h5")
call "${BAD[@]}"
[ "$rc" = 5 ] && [ -s "$D/j.h5.journal/rank-00000.jnl" ] || fail "no journal kept by the failed run (exit $rc)"
cp "$D/bad.tsv" "$TEST_TMP/orig"
for r in 00000 00001; do
  rm -f "$D/j.h5.journal/rank-$r.jnl" && mkfifo "$D/j.h5.journal/rank-$r.jnl"
  call "${BAD[@]}"
  check 1 "$D/bad.tsv" "resume with journal rank file $r a FIFO: an error naming it, no hang" \
    "$D/j.h5.journal/rank-$r.jnl is a FIFO" "remove it"
  rm -f "$D/j.h5.journal/rank-$r.jnl"
done
call "${BAD[@]}"
[ "$rc" = 5 ] && pass "with the FIFO removed the run goes on (exit 5 again)" || fail "run after removing the FIFO: exit $rc"
finish
