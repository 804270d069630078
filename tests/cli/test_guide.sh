#!/usr/bin/env bash
# The README's first command end to end (pipeline/scripts/demo.sh: deps check, synth, untrained demo ViT, mpirun -np 2
# run, knn, probe, export) and then every block marked <!-- runnable --> in docs/guide.md (and README.md), pasted
# into a folder laid out like the repository root, on the demo's outputs.
set -u
. "$(dirname "$0")/lib.sh"
SRC=$PROTLOC_SOURCE_DIR
W="$TEST_TMP/repo"
mkdir -p "$W"
ln -s "$PROTLOC_BUILD_DIR" "$W/build"
for d in slurm pipeline docs manifests tests; do [ -e "$SRC/$d" ] && ln -s "$SRC/$d" "$W/$d"; done
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

# ---- the demo (the build itself is the suite's own build: --skip-build; install_deps.sh runs and finds everything) ----
expect_status 0 bash "$SRC/pipeline/scripts/demo.sh" --out "$W/demo-out" --build-dir "$PROTLOC_BUILD_DIR" --skip-build
cp "$TEST_TMP/last.out" "$TEST_TMP/demo.out"
grep -q "install_deps: all .* Debian packages present" "$TEST_TMP/demo.out" || fail "demo did not run install_deps.sh"
grep -q "summary: items=60 added=60 .*computed=60 failed=0" "$TEST_TMP/demo.out" || fail "demo run summary missing"
grep -q "UNTRAINED" "$TEST_TMP/demo.out" || fail "demo does not say the model is untrained"
grep -q "^kNN report (JSON, CSV, plots): *$W/demo-out/report/knn/$" "$TEST_TMP/demo.out" || fail "demo does not print the report folder"
grep -q "^Fine-tuned model (card, weights, report, plots): *$W/demo-out/finetune/$" "$TEST_TMP/demo.out" || fail "demo does not print the fine-tuning folder"
n_png=0
while read -r png; do
  [ "$(head -c 4 "$png" | od -An -c | tr -d ' ')" = "211PNG" ] || fail "printed plot $png is not a PNG"
  n_png=$((n_png + 1))
done < <(grep -o "$W/demo-out/report/[a-z]*/[a-z_0-9]*\.png" "$TEST_TMP/demo.out")
[ "$n_png" -ge 6 ] || fail "demo printed only $n_png plots"
$PY - "$W/demo-out" <<'PYEOF' || fail "demo outputs incomplete"
import sys, os, json, h5py, numpy as np, anndata
d = sys.argv[1]
with h5py.File(os.path.join(d, "store.h5")) as f:
    e = f["fov/embedding"][()]
    assert e.shape == (60, 192) and np.isfinite(e).all(), e.shape
card = json.load(open(os.path.join(d, "model", "demo-card.json")))
assert "UNTRAINED" in card["description"]
k = json.load(open(os.path.join(d, "report", "knn", "knn.json")))
assert len(k["macro_f1"]) > 0
json.load(open(os.path.join(d, "report", "probe", "probe.json")))
ft = json.load(open(os.path.join(d, "finetune", "report.json")))["results"]
assert ft["epochs"] == 3 and ft["eval_split"] == "test" and ft["n_eval"] > 0, ft
for f in ("backbone.safetensors", "head.safetensors", "model.json", "train.jsonl", "confusion.png"):
    assert os.path.getsize(os.path.join(d, "finetune", f)) > 0, f
a = anndata.read_h5ad(os.path.join(d, "embeddings.h5ad"))
assert a.shape == (60, 192) and np.array_equal(a.X, e)
print("demo outputs ok; best kNN macro F1 %.3f" % max(k["macro_f1"]))
PYEOF

# ---- every runnable block of the guide (and the README, when it marks any), in order ----
blocks="$TEST_TMP/blocks"
mkdir -p "$blocks"
$PY - "$blocks" "$SRC/docs/guide.md" "$SRC/README.md" <<'PYEOF' || fail "could not extract the runnable blocks"
import sys, os, re
out = sys.argv[1]
n = 0
for path in sys.argv[2:]:
    if not os.path.exists(path):
        continue
    lines = open(path).read().split("\n")
    i = 0
    while i < len(lines):
        if lines[i].strip() == "<!-- runnable -->":
            assert lines[i + 1].startswith("```bash"), "%s:%d: runnable marker not followed by a bash block" % (path, i + 2)
            j = i + 2
            body = []
            while not lines[j].startswith("```"):
                body.append(lines[j]); j += 1
            n += 1
            with open(os.path.join(out, "%02d.sh" % n), "w") as f:
                f.write("# %s:%d\n" % (os.path.basename(path), i + 3) + "\n".join(body) + "\n")
            i = j
        i += 1
print(n, "runnable blocks")
PYEOF
n_blocks=0
for b in "$blocks"/*.sh; do
  [ -e "$b" ] || continue
  n_blocks=$((n_blocks + 1))
  where=$(head -1 "$b" | cut -c3-)
  if (cd "$W" && bash -euo pipefail "$b") >"$TEST_TMP/block.out" 2>&1; then
    pass "guide block at $where"
  else
    fail "guide block at $where failed:"; sed 's/^/  | /' "$TEST_TMP/block.out" | tail -n 25 >&2
  fi
done
[ "$n_blocks" -ge 7 ] || fail "only $n_blocks runnable blocks found in docs/guide.md"
# Shell scripts the guide documents are syntax- and shellcheck-clean (shellcheck is a dependency, install_deps.sh; where
# it is missing that part is reported skipped, never passed).
have_shellcheck=0
if command -v shellcheck >/dev/null 2>&1; then have_shellcheck=1; else skip_part "shellcheck of the job scripts: shellcheck is not installed (pipeline/scripts/install_deps.sh)"; fi
for s in "$SRC"/slurm/*.sh "$SRC"/slurm/*.sbatch "$SRC"/pipeline/scripts/*.sh "$SRC"/tests/slurm/*.sh; do
  bash -n "$s" || fail "bash -n $s"
  if [ "$have_shellcheck" = 1 ]; then shellcheck "$s" >"$TEST_TMP/sc.out" 2>&1 || { fail "shellcheck $s"; cat "$TEST_TMP/sc.out" >&2; }; fi
done
finish
