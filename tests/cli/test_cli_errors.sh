#!/usr/bin/env bash
# Command-line errors (docs/guide.md "Exit statuses"): every bad option value exits 2 with a message that names the
# option and the value given, and is refused before any input is read: the inputs named here do not exist (a
# command that read one first would exit 1 naming it) and no output file or folder is created. Also: knn's k-fold
# names the groups and folds it has, finetune bounds --steps x --batch, --version names oneDNN.
set -u
. "$(dirname "$0")/lib.sh"
FX="$PROTLOC_SOURCE_DIR/tests/fixtures/eval"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
cd "$TEST_TMP" || exit 1
mkdir out

# bad OPTION VALUE cmd...: exit 2, stderr names OPTION and VALUE, nothing was written into out/
bad() {
  local opt=$1 val=$2; shift 2
  expect_status 2 "$@"
  grep -qF -- "$opt" "$TEST_TMP/last.err" && grep -qF -- "$val" "$TEST_TMP/last.err" \
    && pass "  names $opt and $val" || fail "stderr does not name $opt and $val: $(head -1 "$TEST_TMP/last.err")"
  grep -q "nope" "$TEST_TMP/last.err" && fail "an input was read before the options were checked: $(head -1 "$TEST_TMP/last.err")"
  [ -z "$(ls -A out)" ] || { fail "output left behind by: $*"; rm -rf out/* out/.[!.]*; }
}

# ---- embed ----
E=(embed --model nope.safetensors --input nope.npy --output out/y.npy)
bad --kernels nosuch "$PROTLOC" "${E[@]}" --kernels nosuch
bad --kernels openblas "$PROTLOC" "${E[@]}" --kernels openblas --precision bf16
bad --batch "'0'" "$PROTLOC" "${E[@]}" --batch 0
bad --threads "'-2'" "$PROTLOC" "${E[@]}" --threads -2
bad --precision fp16 "$PROTLOC" "${E[@]}" --precision fp16

# ---- knn: every integer option under its own name, given apart or with '=' ----
K=(knn --features nope.npy --meta nope.tsv --json out/k.json --report-dir out/rep)
bad -k "'0'" "$PROTLOC" "${K[@]}" -k 0
bad --k "'2000'" "$PROTLOC" "${K[@]}" --k=2000
bad --folds "'1'" "$PROTLOC" "${K[@]}" --protocol kfold --folds 1
bad --folds "'x'" "$PROTLOC" "${K[@]}" --folds=x
bad --seeds "'0'" "$PROTLOC" "${K[@]}" --seeds 0
bad --seed "'-1'" "$PROTLOC" "${K[@]}" --seed -1
bad --threads "'0'" "$PROTLOC" "${K[@]}" --threads 0
bad --query-block "'0'" "$PROTLOC" "${K[@]}" --query-block 0
bad --ref-block "'99999999999'" "$PROTLOC" "${K[@]}" --ref-block 99999999999
bad --temperature "'0'" "$PROTLOC" "${K[@]}" --temperature 0
bad --kernels nosuch "$PROTLOC" "${K[@]}" --kernels nosuch
bad --kernels nosuch "${MPIRUN[@]}" -np 2 "$PROTLOC" "${K[@]}" --kernels nosuch
bad --level bogus "$PROTLOC" knn --store nope.h5 --level bogus --json out/k.json
bad --protocol bogus "$PROTLOC" "${K[@]}" --protocol bogus

# ---- probe ----
PR=(probe --features nope.npy --meta nope.tsv --json out/p.json --report-dir out/prep)
bad --threads "'0'" "$PROTLOC" "${PR[@]}" --threads 0
bad --seeds "'0'" "$PROTLOC" "${PR[@]}" --seeds 0
bad --batch "'0'" "$PROTLOC" "${PR[@]}" --batch=0
bad --max-iter "'-5'" "$PROTLOC" "${PR[@]}" --max-iter -5
bad --lr "'0'" "$PROTLOC" "${PR[@]}" --lr 0
bad --dropout "'1'" "$PROTLOC" "${PR[@]}" --dropout 1
bad --fraction "'0,2'" "$PROTLOC" "${PR[@]}" --fraction 0,2
bad --kernels nosuch "$PROTLOC" "${PR[@]}" --kernels nosuch
bad --level bogus "$PROTLOC" probe --store nope.h5 --level bogus

# ---- finetune: --steps in 1..2^31-1 and at most 2^30 images drawn (steps x batch), refused before the inputs ----
F=(finetune --model nope.safetensors --input nope.npy --labels nope.npy --out out/ft)
bad --steps "'4294967297'" "$PROTLOC" "${F[@]}" --steps 4294967297
bad "--steps 40000000 with --batch 32" 1280000000 "$PROTLOC" "${F[@]}" --steps 40000000
bad "--steps 2000 with --batch 1048576" 2097152000 "$PROTLOC" "${F[@]}" --steps 2000 --batch 1048576
bad --kernels nosuch "$PROTLOC" "${F[@]}" --kernels nosuch
bad --card other.json "$PROTLOC" finetune --manifest nope.tsv --model card.json --card other.json --out out/ft
bad --kernels nosuch "${MPIRUN[@]}" -np 2 "$PROTLOC" "${F[@]}" --kernels nosuch

# ---- run ----
R=(run --manifest nope.tsv --model nope.json --out out/s.h5)
bad --kernels nosuch "$PROTLOC" "${R[@]}" --kernels nosuch
bad --level "bogus" "$PROTLOC" "${R[@]}" --level bogus
bad --align bogus "$PROTLOC" "${R[@]}" --align bogus
bad --cell-border bogus "$PROTLOC" "${R[@]}" --cell-border bogus
bad --batch "'0'" "$PROTLOC" "${R[@]}" --batch 0

# ---- the smaller commands ----
bad --sigma "'-1'" "$PROTLOC" segment --nucleus nope.tif --sigma -1 --mask-out out/m.tif
bad --min-area "--max-area 1" "$PROTLOC" segment --nucleus nope.tif --min-area 5 --max-area 1 --mask-out out/m.tif
bad --sigma "--pixel-size 0.1" "$PROTLOC" segment --nucleus nope.tif --sigma 100 --pixel-size 0.1 --json out/s.json
IP=(image prep --channel protein=nope.tif --out out/x.npy)
bad --seed "'-1'" "$PROTLOC" "${IP[@]}" --seed -1
bad --max-pixels "'0'" "$PROTLOC" "${IP[@]}" --max-pixels 0
bad --clip "'5'" "$PROTLOC" "${IP[@]}" --clip 5
bad --clip "'9,1'" "$PROTLOC" "${IP[@]}" --clip 9,1
bad --tile "'0'" "$PROTLOC" "${IP[@]}" --tile 0
bad --scale "'-2'" "$PROTLOC" "${IP[@]}" --scale -2
bad --max-pixels "'-1'" "$PROTLOC" image info --max-pixels -1 nope.tif
bad --max-errors "'0'" "$PROTLOC" manifest check --max-errors 0 nope.tsv
bad --roles "''" "$PROTLOC" manifest check --roles '' nope.tsv
bad --dim "'0'" "$PROTLOC" model init --dim 0 --depth 1 --heads 1 --patch 4 --in-chans 1 --out out/m.safetensors
bad --kind bogus "$PROTLOC" synth --kind bogus --classes 2 --per-class 1 --seed 1 --out out/data
bad --seed "'-4'" "$PROTLOC" synth --kind hpa --classes 2 --per-class 1 --seed -4 --out out/data
bad --format bogus "$PROTLOC" export nope.h5 --format bogus --out out/x.tsv
bad --folds "'1'" "$PROTLOC" manifest scan nope --layout opencell --folds 1 --out out/m.tsv

# ---- knn k-fold against the data: the groups and folds it has, and what to change (exit 1: the data decide) ----
awk -F'\t' 'BEGIN { OFS = "\t" } /^#/ || $1 == "id" { print; next } { $4 = "one"; print }' "$FX/meta.tsv" >onegroup.tsv
awk -F'\t' 'BEGIN { OFS = "\t" } /^#/ || $1 == "id" { print; next } { $4 = "g" NR % 3; print }' "$FX/meta.tsv" >three.tsv
expect_status 1 "$PROTLOC" knn --features "$FX/features.npy" --meta onegroup.tsv --protocol kfold
grep -q -- "--folds 5: the labelled rows form 1 group .*use --protocol loo or train-test" "$TEST_TMP/last.err" &&
  pass "  kfold with one group says so" || fail "kfold, one group: $(tail -1 "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" knn --features "$FX/features.npy" --meta three.tsv --protocol kfold --folds 4
grep -q -- "--folds 4: the labelled rows form 3 groups .*give fewer --folds (at most 3)" "$TEST_TMP/last.err" &&
  pass "  kfold with more folds than groups says so" || fail "kfold, 3 groups 4 folds: $(tail -1 "$TEST_TMP/last.err")"
expect_status 1 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --protocol kfold --set train --folds 100
grep -q -- "the labelled rows of split 'train' (--set) form [0-9]* groups" "$TEST_TMP/last.err" &&
  pass "  kfold --set names the split" || fail "kfold --set: $(tail -1 "$TEST_TMP/last.err")"
expect_status 0 "$PROTLOC" knn --features "$FX/features.npy" --meta three.tsv --protocol kfold --folds 3 -k 5

# ---- --version names every library, oneDNN included ----
out=$("$PROTLOC" --version) || fail "--version exited non-zero"
grep -q "^  onednn     oneDNN [0-9]*\.[0-9]*\.[0-9]" <<<"$out" && pass "--version names oneDNN" || fail "--version lacks oneDNN: $out"
finish
