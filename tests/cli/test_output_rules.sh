#!/usr/bin/env bash
# Output paths (docs/guide.md "Output paths"): protloc creates the folders you name as folders (finetune --out,
# synth --out, knn/probe --report-dir), with their missing parents, and never the folder of a file you name (run
# --out, embed --output, export --out, knn/probe --json ..., manifest scan --out, model init --out, image prep --out,
# segment --mask-out/--json). Every refusal exits 1 before any input is read (the inputs given here do not exist, so
# a command that read one first would name it), names the option and the path, and creates nothing.
set -u
. "$(dirname "$0")/lib.sh"
FX="$PROTLOC_SOURCE_DIR/tests/fixtures/eval"
FT="$PROTLOC_SOURCE_DIR/tests/fixtures/finetune/p8_c2_40x40"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
cd "$TEST_TMP" || exit 1
touch afile
mkfifo fifo

# refused OPTION PATH MESSAGE cmd...: exit 1, stderr names OPTION, PATH and MESSAGE, and the refused path (and the
# missing folder above it) was not created
refused() {
  local opt=$1 path=$2 msg=$3; shift 3
  expect_status 1 "$@"
  grep -qF -- "$opt $path" "$TEST_TMP/last.err" && grep -qF -- "$msg" "$TEST_TMP/last.err" \
    && pass "  names $opt $path: $msg" || fail "stderr does not name '$opt $path' and '$msg': $(tail -2 "$TEST_TMP/last.err")"
  grep -q "nope" "$TEST_TMP/last.err" && fail "an input was read before the output path was checked: $(tail -1 "$TEST_TMP/last.err")"
  [ ! -e missing ] || fail "the missing folder was created by: $*"
}

# ---- a file's folder must exist: it is never created ----
nofolder="does not exist; it is not created"
refused --out missing/store.h5 "$nofolder" "$PROTLOC" run --manifest nope.tsv --model nope.json --out missing/store.h5
refused --out missing/store.h5 "$nofolder" "${MPIRUN[@]}" -np 2 "$PROTLOC" run --manifest nope.tsv \
  --model nope.json --out missing/store.h5
refused --output missing/y.npy "$nofolder" "$PROTLOC" embed --model nope.safetensors --input nope.npy --output missing/y.npy
refused --out missing/x.tsv "$nofolder" "$PROTLOC" export nope.h5 --out missing/x.tsv
refused --meta missing/m.tsv "$nofolder" "$PROTLOC" export nope.h5 --out x.npy --meta missing/m.tsv
for opt in --json --csv --neighbours --predictions; do
  refused $opt missing/out "$nofolder" "$PROTLOC" knn --features nope.npy --meta nope.tsv $opt missing/out
done
refused --json missing/k.json "$nofolder" "${MPIRUN[@]}" -np 2 "$PROTLOC" knn --features nope.npy \
  --meta nope.tsv --json missing/k.json
refused --json missing/p.json "$nofolder" "$PROTLOC" probe --features nope.npy --meta nope.tsv --json missing/p.json
refused --csv missing/p.csv "$nofolder" "$PROTLOC" probe --features nope.npy --meta nope.tsv --csv missing/p.csv
mkdir scan
refused --out missing/m.tsv "$nofolder" "$PROTLOC" manifest scan scan --layout opencell --labels nope.csv --out missing/m.tsv
refused --out missing/m.safetensors "$nofolder" "$PROTLOC" model init --dim 8 --depth 1 --heads 2 --patch 4 --in-chans 1 \
  --out missing/m.safetensors
refused --out missing/x.npy "$nofolder" "$PROTLOC" image prep --channel protein=nope.tif --out missing/x.npy
refused --tiles-out missing/t.tsv "$nofolder" "$PROTLOC" image prep --channel protein=nope.tif --out x.npy \
  --tiles-out missing/t.tsv
refused --mask-out missing/m.tif "$nofolder" "$PROTLOC" segment --nucleus nope.tif --mask-out missing/m.tif
refused --json missing/s.json "$nofolder" "$PROTLOC" segment --nucleus nope.tif --json missing/s.json
# an existing path must be a regular file (a FIFO is never opened: the check does not block)
refused --json fifo "is a FIFO" "$PROTLOC" knn --features nope.npy --meta nope.tsv --json fifo
refused --out scan "is a directory" "$PROTLOC" model init --dim 8 --depth 1 --heads 2 --patch 4 --in-chans 1 --out scan
[ -p fifo ] || fail "the FIFO was replaced"

# ---- a folder you name as a folder is created with its missing parents ----
expect_status 0 "$PROTLOC" -q knn --features "$FX/features.npy" --meta "$FX/meta.tsv" -k 5 --report-dir new/knn/rep
[ -s new/knn/rep/knn.json ] && [ -s new/knn/rep/knn_f1_vs_k.png ] && pass "knn --report-dir new/knn/rep created with parents" ||
  fail "knn --report-dir did not create new/knn/rep"
expect_status 0 "$PROTLOC" -q probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --head logreg --max-iter 20 \
  --report-dir new/probe/rep
[ -s new/probe/rep/probe.json ] && pass "probe --report-dir new/probe/rep created with parents" ||
  fail "probe --report-dir did not create new/probe/rep"
expect_status 0 "$PROTLOC" -q finetune --model "$FT/model.safetensors" --input "$FT/x.npy" --labels "$FT/y.npy" \
  --steps 1 --batch 2 --threads 1 --out new/ft/run
[ -s new/ft/run/report.json ] && pass "finetune --out new/ft/run created with parents" || fail "finetune --out did not create new/ft/run"
expect_status 0 "$PROTLOC" synth --kind hpa --classes 2 --per-class 1 --seed 1 --size 64 --out new/synth/data
[ -s new/synth/data/manifest.tsv ] && pass "synth --out new/synth/data created with parents" ||
  fail "synth --out did not create new/synth/data"
# ... and an existing folder is used as it is
expect_status 0 "$PROTLOC" -q knn --features "$FX/features.npy" --meta "$FX/meta.tsv" -k 5 --report-dir new/knn/rep

# ---- a folder option refuses what cannot become a folder, before reading any input ----
refused --report-dir afile "is a file" "$PROTLOC" knn --features nope.npy --meta nope.tsv --report-dir afile
refused --report-dir afile/sub "afile is a file, not a folder" "$PROTLOC" probe --features nope.npy --meta nope.tsv \
  --report-dir afile/sub
refused --report-dir fifo "is a FIFO" "$PROTLOC" knn --features nope.npy --meta nope.tsv --report-dir fifo
refused --report-dir afile "is a file" "${MPIRUN[@]}" -np 2 "$PROTLOC" knn --features nope.npy --meta nope.tsv \
  --report-dir afile
refused --out afile/run "afile is a file, not a folder" "$PROTLOC" finetune --model nope.safetensors --input nope.npy \
  --labels nope.npy --out afile/run
refused --out afile "is a file" "$PROTLOC" synth --kind hpa --classes 2 --per-class 1 --seed 1 --out afile
refused --out afile/a/b "afile is a file, not a folder" "$PROTLOC" synth --kind hpa --classes 2 --per-class 1 --seed 1 \
  --out afile/a/b
[ -f afile ] && [ ! -s afile ] || fail "afile was changed"
if [ "$(id -u)" != 0 ]; then   # (root may write anywhere but on a read-only mount: test_run_validation.sh has one)
  mkdir ro && chmod 555 ro
  refused --report-dir ro/rep "cannot be created in ro" "$PROTLOC" knn --features nope.npy --meta nope.tsv --report-dir ro/rep
  chmod 755 ro
fi
finish
