#!/usr/bin/env bash
# protloc knn: sklearn cross-check (same neighbours, same macro F1 for every k), 1/2/3 ranks identical,
# LOO, k-fold, store input (fixed- and variable-length strings, cells level), reports/plots, error handling.
set -u
. "$(dirname "$0")/lib.sh"
FX="$PROTLOC_SOURCE_DIR/tests/fixtures/eval"
T=$TEST_TMP

# ---- train -> test against sklearn (weighted and majority votes)
expect_status 0 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" -k 50 --threads 2 \
  --json "$T/w.json" --neighbours "$T/w_nb.npy" --report-dir "$T/rep"
expect_status 0 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" -k 50 --vote majority \
  --json "$T/m.json" --query-block 7 --ref-block 13
$PY - "$FX/expected.json" "$T" <<'PY' || fail "sklearn cross-check (train -> test)"
import json, sys
import numpy as np
e = json.load(open(sys.argv[1])); T = sys.argv[2]
w = json.load(open(f"{T}/w.json")); m = json.load(open(f"{T}/m.json"))
nb = np.load(f"{T}/w_nb.npy"); en = np.array(e["train_test"]["neighbours"])
assert nb.shape == en.shape, (nb.shape, en.shape)
assert (nb == en).all(), f"{(nb != en).sum()} neighbour entries differ from sklearn"
assert w["k"] == list(range(1, 51)), w["k"][:5]
for key, got in (("macro_f1_weighted", w["macro_f1"]), ("macro_f1_majority", m["macro_f1"])):
    d = np.abs(np.array(got) - np.array(e["train_test"][key])).max()
    assert d < 1e-9, f"{key}: max |diff| {d}"
d = np.abs(np.array(w["accuracy"]) - np.array(e["train_test"]["accuracy_weighted"])).max()
assert d < 1e-9, f"accuracy: {d}"
assert w["classes"] == e["classes"]
assert w["config"]["input_sha256"] and w["config"]["software"].startswith("protloc")
assert w["n_multilabel_skipped"] > 0 and w["n_unlabelled"] > 0
print("sklearn cross-check ok: neighbours identical, macro F1 identical for k = 1..50 (weighted, majority)")
PY
for f in knn.json knn_f1_vs_k.csv knn_per_class.csv knn_predictions.tsv knn_f1_vs_k.png knn_f1_vs_k.svg \
         knn_confusion.png knn_confusion.svg knn_per_class_f1.png knn_per_class_f1.svg; do
  [ -s "$T/rep/$f" ] || fail "report file $f missing or empty"
done
head -c 8 "$T/rep/knn_f1_vs_k.png" | od -An -tx1 | grep -q "89 50 4e 47" || fail "knn_f1_vs_k.png is not a PNG"
grep -q "<svg" "$T/rep/knn_confusion.svg" || fail "knn_confusion.svg is not SVG"
[ "$(wc -l <"$T/rep/knn_f1_vs_k.csv")" -eq 51 ] || fail "F1-vs-k CSV should have a header + 50 rows"
ls "$T/rep" | grep -q tmp && fail "temporary files left in the report folder"

# ---- 2 and 3 ranks give identical neighbours and figures
for np_ in 2 3; do
  expect_status 0 mpirun --allow-run-as-root --oversubscribe -np $np_ "$PROTLOC" -q knn --features "$FX/features.npy" \
    --meta "$FX/meta.tsv" -k 50 --json "$T/w$np_.json" --neighbours "$T/w_nb$np_.npy" --ref-block 17
  cmp -s "$T/w_nb.npy" "$T/w_nb$np_.npy" || fail "$np_ ranks: neighbours differ from 1 rank"
  $PY -c "import json,sys; a=json.load(open('$T/w.json')); b=json.load(open('$T/w$np_.json')); sys.exit(0 if a['macro_f1']==b['macro_f1'] and a['accuracy']==b['accuracy'] else 1)" \
    || fail "$np_ ranks: macro F1 differs from 1 rank"
  # under mpirun knn starts MPI (a plain process runs as one rank without it): the ranks share the work
  $PY -c "import json,sys; sys.exit(0 if json.load(open('$T/w$np_.json'))['config']['ranks']==$np_ else 1)" \
    || fail "$np_ ranks under mpirun: the JSON does not record $np_ ranks (MPI not started?)"
done
# a plain process runs without MPI (no singleton start-up); PROTLOC_MPI=1 starts it anyway: the same results
expect_status 0 env PROTLOC_MPI=1 "$PROTLOC" -q knn --features "$FX/features.npy" --meta "$FX/meta.tsv" -k 50 \
  --neighbours "$T/w_nbm.npy" --ref-block 17
cmp -s "$T/w_nb.npy" "$T/w_nbm.npy" || fail "PROTLOC_MPI=1: neighbours differ from the plain process"

# ---- --precision bf16 (BF16 similarities, candidates rescored in FP32) and --kernels onednn: byte-identical
# neighbours, F1 table, per-class table and predictions; the JSON records kernels and precision.
# BF16 may be missing only where the CPU lacks AVX512-BF16 (asked of /proc/cpuinfo, never of the error text) and
# protloc itself refuses it: exit 2 from its --kernels/--precision check, before any input is read. Any other failure,
# and every failure on a CPU with AVX512-BF16, is a failure.
for mode in "openblas fp32" "onednn fp32" "onednn bf16"; do
  set -- $mode
  for proto in train-test "loo --exclude-same group"; do
    tag="$1-$2-${proto%% *}"
    out=$("$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --protocol $proto -k 50 --threads 2 \
          --kernels "$1" --precision "$2" --neighbours "$T/p_$tag.npy" --csv "$T/p_$tag.csv" \
          --predictions "$T/p_$tag.tsv" --report-dir "$T/p_$tag" --query-block 9 --ref-block 31 2>&1)
    st=$?
    if [ "$2" = bf16 ] && [ $st -eq 2 ] && ! cpu_has_avx512_bf16; then
      skip_part "knn --precision bf16 --protocol $proto: this CPU has no AVX512-BF16 and protloc refuses BF16 here (exit 2): $(echo "$out" | head -1)"
      continue
    fi
    if [ $st -ne 0 ]; then
      if cpu_has_avx512_bf16; then cpu="a CPU with AVX512-BF16"; else cpu="a CPU without AVX512-BF16"; fi
      fail "knn --kernels $1 --precision $2 --protocol $proto exited $st on $cpu: $out"
      continue
    fi
    $PY -c "import json,sys; c=json.load(open('$T/p_$tag/knn.json'))['config']; sys.exit(0 if (c['kernels'], c['precision']) == ('$1', '$2') else 1)" \
      || fail "knn.json config does not record kernels $1, precision $2"
    base="openblas-fp32-${proto%% *}"
    [ "$tag" = "$base" ] && continue
    for f in "p_$tag.npy:p_$base.npy" "p_$tag.csv:p_$base.csv" "p_$tag.tsv:p_$base.tsv" \
             "p_$tag/knn_per_class.csv:p_$base/knn_per_class.csv"; do
      cmp -s "$T/${f%%:*}" "$T/${f##*:}" || fail "$tag: ${f%%:*} differs from ${f##*:} (fp32 openblas)"
    done
    $PY -c "import json,sys; a,b=(json.load(open(f'$T/{x}/knn.json')) for x in ('p_$tag','p_$base')); drop=('config','seconds_search','seconds_score'); sys.exit(0 if {k:v for k,v in a.items() if k not in drop}=={k:v for k,v in b.items() if k not in drop} else 1)" \
      || fail "$tag: F1 figures in knn.json differ from fp32 openblas"
    pass "knn --kernels $1 --precision $2 --protocol $proto: outputs byte-identical to fp32 openblas"
  done
done
# ---- --precision auto, the default: BF16 candidates + FP32 rescoring where the CPU has AVX512-BF16 and the kernels
# compute BF16, FP32 elsewhere (--kernels openblas: always FP32); outputs byte-identical to fp32 openblas either way
for k in auto openblas; do
  tag="default-$k"
  expect_status 0 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" -k 50 --threads 2 --kernels "$k" \
    --neighbours "$T/p_$tag.npy" --csv "$T/p_$tag.csv" --predictions "$T/p_$tag.tsv" --report-dir "$T/p_$tag" \
    --query-block 9 --ref-block 31
  want=fp32
  if [ "$k" = auto ] && cpu_has_avx512_bf16; then want=bf16; fi
  $PY -c "import json,sys; c=json.load(open('$T/p_$tag/knn.json'))['config']; sys.exit(0 if c['precision'] == '$want' else 1)" \
    || fail "knn --kernels $k without --precision: knn.json does not record precision $want"
  for f in "p_$tag.npy:p_openblas-fp32-train-test.npy" "p_$tag.csv:p_openblas-fp32-train-test.csv" \
           "p_$tag.tsv:p_openblas-fp32-train-test.tsv"; do
    cmp -s "$T/${f%%:*}" "$T/${f##*:}" || fail "$tag: ${f%%:*} differs from fp32 openblas"
  done
  pass "knn --kernels $k, default precision ($want): outputs byte-identical to fp32 openblas"
done
expect_status 0 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" -k 5 --precision auto --json "$T/auto.json"
expect_status 2 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --precision fp16
expect_status 2 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --kernels cublas
expect_status 2 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --kernels openblas --precision bf16

# ---- leave-one-out: neighbours as sklearn (self excluded); with group exclusion no neighbour shares the protein
expect_status 0 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --protocol loo -k 50 \
  --neighbours "$T/loo_nb.npy" --json "$T/loo.json"
expect_status 0 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --protocol loo -k 30 \
  --exclude-same group --neighbours "$T/loog_nb.npy" --json "$T/loog.json" --predictions "$T/loog.tsv"
$PY - "$FX" "$T" <<'PY' || fail "leave-one-out checks"
import json, sys
import numpy as np
FX, T = sys.argv[1:]
e = json.load(open(f"{FX}/expected.json"))
nb = np.load(f"{T}/loo_nb.npy")
assert (nb == np.array(e["loo_neighbours"])).all(), "LOO neighbours differ from sklearn"
meta = [l.rstrip("\n").split("\t") for l in open(f"{FX}/meta.tsv") if not l.startswith("#")][1:]
group = [m[3] for m in meta]
usable = [i for i, m in enumerate(meta) if m[1] and ";" not in m[1]]
nbg = np.load(f"{T}/loog_nb.npy")
assert nbg.shape == (len(usable), 30)
for q, row in zip(usable, nbg):
    assert all(group[r] != group[q] for r in row), f"row {q} has a neighbour of its own protein"
j = json.load(open(f"{T}/loog.json"))
assert j["config"]["exclude_same"] == "group" and len(j["macro_f1"]) == 30
print("LOO ok")
PY
[ "$(wc -l <"$T/loog.tsv")" -gt 100 ] || fail "predictions TSV too short"

# ---- grouped k-fold over seeds: mean ± std per k
expect_status 0 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --protocol kfold --folds 4 \
  --seeds 3 -k 20 --json "$T/kf.json" --csv "$T/kf.csv" --report-dir "$T/kfrep"
$PY - "$T/kf.json" <<'PY' || fail "k-fold JSON"
import json, sys
j = json.load(open(sys.argv[1]))
assert len(j["macro_f1_mean"]) == 20 and len(j["macro_f1_std"]) == 20
assert j["n_runs"] == 12 and len(j["runs_macro_f1"]) == 12
assert any(s > 0 for s in j["macro_f1_std"]) and all(0 < m <= 1 for m in j["macro_f1_mean"])
PY
grep -q "^k,macro_f1,macro_f1_std" "$T/kf.csv" || fail "k-fold CSV header"

# ---- HDF5 store input: fixed-length strings (as the runner writes them) and variable-length strings
$PY - "$FX" "$T" <<'PY' || fail "writing test stores"
import sys
import h5py, numpy as np
FX, T = sys.argv[1:]
X = np.load(f"{FX}/features.npy")
meta = [l.rstrip("\n").split("\t") for l in open(f"{FX}/meta.tsv") if not l.startswith("#")][1:]
cols = list(zip(*meta))
for name, vlen in (("fixed", False), ("vlen", True)):
    with h5py.File(f"{T}/{name}.h5", "w") as f:
        for key, col in zip(("id", "label", "split", "group"), cols):
            if vlen:
                f.create_dataset(f"items/{key}", data=np.array(col, dtype=object), dtype=h5py.string_dtype())
            else:
                n = max(1, max(len(c.encode()) for c in col))
                f.create_dataset(f"items/{key}", data=np.array([c.encode() for c in col], dtype=f"S{n}"))
        f["items/digest"] = np.array([b"0" * 64] * len(meta))
        Xs = X.copy()
        if name == "vlen":
            Xs = np.vstack([X, np.full((0, X.shape[1]), np.nan, np.float32)])
        f["fov/embedding"] = Xs
        # cells level: two cells per item, the second one a NaN row (a failed cell) for every 50th item
        ce = np.repeat(X, 2, axis=0) + 0.01 * np.arange(2 * len(X))[:, None].astype(np.float32) % 1
        ce[::100] = np.nan
        f["cells/embedding"] = ce.astype(np.float32)
        f["cells/item"] = np.repeat(np.arange(len(X), dtype=np.int64), 2)
PY
for s in fixed vlen; do
  expect_status 0 "$PROTLOC" knn --store "$T/$s.h5" --level fov -k 50 --json "$T/s_$s.json" --neighbours "$T/s_$s.npy"
  cmp -s "$T/w_nb.npy" "$T/s_$s.npy" || fail "store ($s strings): neighbours differ from the .npy input"
done
expect_status 0 "$PROTLOC" knn --store "$T/fixed.h5" --level cells --protocol loo --exclude-same item -k 10 --json "$T/cells.json"
grep -q "skipped" "$TEST_TMP/last.err" || fail "cells level: skipped NaN rows are not reported"
$PY -c "import json; j=json.load(open('$T/cells.json')); assert j['config']['rows_skipped']==8 and j['config']['level']=='cells', j['config']" \
  || fail "cells level: expected 8 skipped NaN rows"

# ---- errors: clear message, exit status, no half-written outputs
expect_status 2 "$PROTLOC" knn --features "$FX/features.npy"
expect_status 2 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --vote best
expect_status 2 "$PROTLOC" knn --store a.h5 --features b.npy --meta c.tsv
expect_status 2 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" -k 0
expect_status 0 "$PROTLOC" knn --help
expect_status 1 "$PROTLOC" knn --features "$T/nope.npy" --meta "$FX/meta.tsv" --json "$T/nope.json"
grep -q "nope.npy" "$T/last.err" || fail "missing input not named"
[ -e "$T/nope.json" ] && fail "a report was written for a failed run"
head -n 100 "$FX/meta.tsv" >"$T/short.tsv"
expect_status 1 "$PROTLOC" knn --features "$FX/features.npy" --meta "$T/short.tsv"
grep -q "short.tsv" "$T/last.err" || fail "row-count mismatch does not name the TSV"
expect_status 1 "$PROTLOC" knn --features "$FX/features.npy" --meta "$FX/meta.tsv" --train-split nosuch
grep -q "no reference items" "$T/last.err" || fail "empty reference set not explained"
expect_status 1 "$PROTLOC" knn --store "$T/fixed.h5" --level tiles
grep -q "/tiles/embedding" "$T/last.err" || fail "missing level not named"
finish
