#!/usr/bin/env bash
# protloc probe: logistic regression within 0.01 macro F1 of sklearn, MLP head learns and is deterministic by
# seed, data fractions with seeds (mean ± std), reports/plots, error handling.
set -u
. "$(dirname "$0")/lib.sh"
FX="$PROTLOC_SOURCE_DIR/tests/fixtures/eval"
T=$TEST_TMP
EPOCHS=40 LR=1e-4
[ "${PROTLOC_SANITIZE:-0}" = 1 ] && EPOCHS=8 LR=1e-3   # sanitizer build: shorter, faster-learning run

expect_status 0 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --head logreg --json "$T/lr.json"
$PY - "$FX/expected.json" "$T/lr.json" <<'PY' || fail "logistic regression vs sklearn"
import json, sys
e = json.load(open(sys.argv[1])); j = json.load(open(sys.argv[2]))
got = j["heads"]["logreg"]["macro_f1_mean"][0]
want = e["logreg_macro_f1"]
assert abs(got - want) <= 0.01, f"protloc {got:.4f} vs sklearn {want:.4f}"
print(f"logreg macro F1 {got:.4f} (sklearn {want:.4f})")
PY

# fractions x seeds with both heads, full report; the same numbers with 1 and 3 threads (the heads' GEMMs are cut
# into fixed row blocks over the pool), and within 0.02 on the other kernel backend
expect_status 0 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --fraction 0.1,0.5,1 --seeds 2 \
  --epochs $EPOCHS --lr $LR --patience 5 --threads 1 --json "$T/p1.json" --report-dir "$T/rep"
grep -q "1 thread(s), kernels " "$T/last.err" || fail "probe does not log its threads and kernels"
expect_status 0 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --fraction 0.1,0.5,1 --seeds 2 \
  --epochs $EPOCHS --lr $LR --patience 5 --threads 3 --json "$T/p2.json"
expect_status 0 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --fraction 0.1,0.5,1 --seeds 2 \
  --epochs $EPOCHS --lr $LR --patience 5 --threads 2 --kernels openblas --json "$T/p3.json"
$PY - "$T/p1.json" "$T/p2.json" "$T/p3.json" <<'PY' || fail "probe fractions / determinism"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2])); o = json.load(open(sys.argv[3]))
assert a["config"]["threads"] == 1 and b["config"]["threads"] == 3, "threads not recorded"
assert o["config"]["kernels"] == "openblas" and a["config"]["kernels"] in ("openblas", "onednn"), "kernels not recorded"
for h in ("logreg", "mlp"):
    assert a["heads"][h]["runs_macro_f1"] == b["heads"][h]["runs_macro_f1"], f"{h}: 1 and 3 threads differ"
    d = max(abs(x - y) for x, y in zip(a["heads"][h]["macro_f1_mean"], o["heads"][h]["macro_f1_mean"]))
    assert d <= 0.02, f"{h}: {a['config']['kernels']} and openblas differ by {d}"
assert a["fractions"] == [0.1, 0.5, 1]
for h in ("logreg", "mlp"):
    x = a["heads"][h]
    assert len(x["macro_f1_mean"]) == 3 and len(x["macro_f1_std"]) == 3
    assert x["n_train"][0][0] < x["n_train"][2][0], "fraction 0.1 should train on fewer rows"
    assert x["macro_f1_mean"] == b["heads"][h]["macro_f1_mean"], f"{h}: not deterministic for the same seed"
    assert x["macro_f1_mean"][2] > 0.5, f"{h}: macro F1 {x['macro_f1_mean'][2]} too low"
    assert x["runs_macro_f1"][0][0] != x["runs_macro_f1"][0][1] or h == "logreg", f"{h}: seeds gave identical subsets"
print("probe:", {h: [round(v, 3) for v in a["heads"][h]["macro_f1_mean"]] for h in a["heads"]})
PY
for f in probe.json probe_f1_vs_fraction.csv probe_f1_vs_fraction.png probe_f1_vs_fraction.svg \
         probe_logreg_confusion.png probe_mlp_confusion.svg probe_mlp_per_class_f1.png probe_logreg_per_class_f1.svg; do
  [ -s "$T/rep/$f" ] || fail "report file $f missing or empty"
done
[ "$(wc -l <"$T/rep/probe_f1_vs_fraction.csv")" -eq 7 ] || fail "F1-vs-fraction CSV should have a header + 6 rows"

# a different seed changes the subsets
expect_status 0 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --head logreg --fraction 0.1 --seed 5 --json "$T/s5.json"
expect_status 0 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --head logreg --fraction 0.1 --seed 6 --json "$T/s6.json"
cmp -s <($PY -c "import json; print(json.load(open('$T/s5.json'))['heads'])") \
       <($PY -c "import json; print(json.load(open('$T/s6.json'))['heads'])") && fail "seed does not change the subset"

# errors
expect_status 2 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --fraction 0,1
expect_status 2 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --head svm
expect_status 2 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --kernels nosuch
grep -q "nosuch" "$T/last.err" || fail "unknown backend not named"
expect_status 2 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --dropout 1
expect_status 0 "$PROTLOC" probe --help
expect_status 1 "$PROTLOC" probe --features "$FX/features.npy" --meta "$FX/meta.tsv" --test-split nosuch --json "$T/bad.json"
grep -q "nosuch" "$T/last.err" || fail "empty test split not named"
[ -e "$T/bad.json" ] && fail "a report was written for a failed run"
finish
