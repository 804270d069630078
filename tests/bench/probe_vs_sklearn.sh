#!/usr/bin/env bash
# Probe-head benchmark: `protloc probe` (logistic regression by L-BFGS and the DINO4Cells MLP; openblas and onednn
# kernel backends, 1 and THREADS threads) vs scikit-learn's LogisticRegression(lbfgs) on the same standardised
# features and the same iteration cap, same machine, one run. Data: N rows x D dims of C Gaussian classes (seeded),
# 60/20/20 train/val/test. Prints wall seconds (the whole command, loading included) and test macro F1.
#   tests/bench/probe_vs_sklearn.sh [BUILD_DIR] [N] [D] [C] [THREADS] [MAX_ITER] [MLP_EPOCHS]
# defaults: build 60000 768 17 2 100 5
set -eu
BUILD=${1:-build}; N=${2:-60000}; D=${3:-768}; C=${4:-17}; THREADS=${5:-2}; ITER=${6:-100}; EPOCHS=${7:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$(mktemp -d "${TMPDIR:-/tmp}/probebench-XXXXXX")
trap 'rm -rf "$DATA"' EXIT
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "# $(date -u +%FT%TZ) load: $(cut -d' ' -f1-3 /proc/loadavg)  N=$N D=$D C=$C threads=$THREADS max_iter=$ITER mlp_epochs=$EPOCHS"
"$BUILD/bench/bench_kernels" --peak --threads "1,$THREADS" | grep 'FMA peak' | sed 's/^## /# /'
/usr/bin/python3 - "$DATA" "$N" "$D" "$C" <<'PY'
import sys
import numpy as np
out, n, d, c = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = np.random.default_rng(1)
y = rng.integers(0, c, n)
x = (rng.normal(size=(n, d)) + rng.normal(size=(c, d))[y] * 0.08).astype(np.float32)
np.save(f"{out}/x.npy", x)
with open(f"{out}/meta.tsv", "w") as f:
    f.write("id\tlabel\tsplit\n")
    for i in range(n):
        f.write(f"r{i}\tc{y[i]}\t{'test' if i % 5 == 0 else 'val' if i % 5 == 1 else 'train'}\n")
PY
echo "| head | engine | threads | wall s | test macro F1 |"
echo "|---|---|---|---|---|"
for head in logreg mlp; do
  for kernels in openblas onednn; do
    for t in 1 "$THREADS"; do
      s=$(date +%s.%N)
      "$BUILD/protloc" -q probe --features "$DATA/x.npy" --meta "$DATA/meta.tsv" --head "$head" --max-iter "$ITER" \
        --epochs "$EPOCHS" --patience 1000 --kernels "$kernels" --threads "$t" --json "$DATA/p.json" >/dev/null
      e=$(date +%s.%N)
      f1=$(/usr/bin/python3 -c "import json,sys; print('%.4f' % json.load(open(sys.argv[1]))['heads'][sys.argv[2]]['macro_f1_mean'][0])" "$DATA/p.json" "$head")
      printf '| %s | protloc %s | %s | %.2f | %s |\n' "$head" "$kernels" "$t" "$(awk -v a="$s" -v b="$e" 'BEGIN { print b - a }')" "$f1"
    done
  done
  if [ "$head" = logreg ]; then
    for t in 1 "$THREADS"; do
      OMP_NUM_THREADS=$t OPENBLAS_NUM_THREADS=$t OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 - "$DATA" "$ITER" "$t" <<'PY'
import sys, time
t0 = time.time()
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.preprocessing import StandardScaler
d, it, threads = sys.argv[1], int(sys.argv[2]), sys.argv[3]
x = np.load(f"{d}/x.npy")
meta = [l.rstrip("\n").split("\t") for l in open(f"{d}/meta.tsv")][1:]
y = np.array([m[1] for m in meta])
split = np.array([m[2] for m in meta])
sc = StandardScaler().fit(x[split == "train"])
clf = LogisticRegression(C=1.0, max_iter=it, tol=1e-6).fit(sc.transform(x[split == "train"]), y[split == "train"])
f1 = f1_score(y[split == "test"], clf.predict(sc.transform(x[split == "test"])), average="macro")
print(f"| logreg | scikit-learn lbfgs | {threads} | {time.time() - t0:.2f} | {f1:.4f} |")
PY
    done
  fi
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
