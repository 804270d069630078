#!/usr/bin/env bash
# kNN benchmark, protloc vs numpy / scikit-learn / PyTorch mm+topk / faiss IndexFlatIP, same data, same machine, one
# run; every peer's neighbour lists are compared with protloc's.
#   tests/bench/knn_vs_python.sh [BUILD_DIR] [REFS] [QUERIES] [DIM] [K] [THREADS]
# defaults: build 50000 10000 384 200 2. Python is tuned: glibc keeps freed memory (no mmap/trim churn),
# OpenMP threads wait passively; every library gets THREADS threads.
# 1. In process (bench_knn, knn_vs_python.py): search + all-k scoring only, protloc in each backend and precision.
# 2. Whole process (WHOLE=0 skips it; ROUNDS=3 rounds, interleaved): the real command
#      protloc knn --features features.npy --meta meta.tsv --threads THREADS --neighbours nb.npy --json knn.json
#    (train-test, every other setting default; -k K when K is not the default 200) against PyTorch mm+topk (as DINO's eval_knn), faiss IndexFlatIP and
#    numpy, each a whole Python process (knn_whole_peer.py: import, np.load + the TSV, normalise, search, vote and
#    F1 for every k, write its lists), timed by /usr/bin/time from exec to exit with peak RSS. Every peer's lists
#    must equal protloc's and its F1 protloc's at every k. The files are in the page cache for every process.
# IN_PROCESS=0 skips part 1. BEFORE=/path/to/an/older/protloc adds it as one more whole-process row (same command).
set -eu
BUILD=${1:-build}; R=${2:-50000}; Q=${3:-10000}; D=${4:-384}; K=${5:-200}; THREADS=${6:-2}
ROUNDS=${ROUNDS:-3}; WHOLE=${WHOLE:-1}; IN_PROCESS=${IN_PROCESS:-1}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$(mktemp -d "${TMPDIR:-/tmp}/knnbench-XXXXXX")
trap 'rm -rf "$DATA"' EXIT
PY_ENV=(env GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 OMP_WAIT_POLICY=PASSIVE
        OMP_NUM_THREADS="$THREADS" OPENBLAS_NUM_THREADS="$THREADS" MKL_NUM_THREADS="$THREADS")
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, $(grep -o -m1 -w avx512_bf16 /proc/cpuinfo || echo 'no avx512_bf16'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "# $(date -u +%FT%TZ) $(uname -n) load: $(cut -d' ' -f1-3 /proc/loadavg)  R=$R Q=$Q D=$D K=$K threads=$THREADS"
if [ -x "$BUILD/bench/bench_vit" ]; then   # the measured FP32 FMA peak (fma_peak.h), as every benchmark prints it
  "$BUILD/bench/bench_vit" --arch vit_tiny --size 32 --seconds 0.2 --threads "$THREADS" --batch 1 --no-gemm 2>&1 |
    grep '^# fp32 fma peak' || echo "# fp32 fma peak: bench_vit failed"
else
  echo "# fp32 fma peak: not measured ($BUILD/bench/bench_vit not built)"
fi
if [ "$IN_PROCESS" = 1 ]; then
  "$BUILD/bench/bench_knn" --refs "$R" --queries "$Q" --dim "$D" --k "$K" --threads "$THREADS" --write-data "$DATA"
  "${PY_ENV[@]}" /usr/bin/python3 "$HERE/knn_vs_python.py" "$DATA" "$K" "$THREADS"
else
  "$BUILD/bench/bench_knn" --refs "$R" --queries "$Q" --dim "$D" --k "$K" --data-only --write-data "$DATA"
fi
[ "$WHOLE" = 1 ] || { echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"; exit 0; }

# ---- 2. whole processes
OUT="$DATA/out"; mkdir -p "$OUT"
echo "# whole process, $ROUNDS round(s) (protloc, PyTorch, faiss, numpy in turn); load $(cut -d' ' -f1-3 /proc/loadavg)"
for round in $(seq 1 "$ROUNDS"); do
  for m in protloc ${BEFORE:+before} torch faiss numpy; do
    if [ "$m" = protloc ] || [ "$m" = before ]; then
      bin="$BUILD/protloc"; [ "$m" = before ] && bin=$BEFORE
      cmd=("$bin" knn --features "$DATA/features.npy" --meta "$DATA/meta.tsv" --threads "$THREADS"
           --neighbours "$OUT/nb_$m.npy" --json "$OUT/knn_$m.json")
      [ "$K" != 200 ] && cmd+=(-k "$K")   # the peers' k (200 is protloc's default)
      rm -f "$OUT/nb_$m.npy" "$OUT/knn_$m.json"
    else
      cmd=("${PY_ENV[@]}" /usr/bin/python3 "$HERE/knn_whole_peer.py" "$m" "$DATA" "$K" "$THREADS" "$OUT")
    fi
    if /usr/bin/time -f "%e %U %S %M" -o "$OUT/time" "${cmd[@]}" >"$OUT/log_$m" 2>&1; then
      echo "$m $round $(cat "$OUT/time") $(cut -d' ' -f1 /proc/loadavg)" >>"$OUT/times"
    else
      echo "$m $round failed: $(tail -1 "$OUT/log_$m")"
    fi
  done
done
/usr/bin/python3 - "$OUT" "$K" <<'PYEOF'
import json, os, sys
import numpy as np
out, K = sys.argv[1], int(sys.argv[2])
runs = {}
for line in open(f"{out}/times"):
    m, rnd, wall, user, sys_, rss, load = line.split()
    runs.setdefault(m, []).append((float(wall), float(user) + float(sys_), int(rss), float(load)))
nb = np.load(f"{out}/nb_protloc.npy")
data = os.path.dirname(out)
X = np.load(f"{data}/features.npy", mmap_mode="r")
test = np.flatnonzero([l.rstrip("\n").split("\t")[2] == "test" for l in open(f"{data}/meta.tsv")][1:])


def exact(qs, lists):
    """float64 cosine similarities of queries qs (test-row positions) with their listed feature rows."""
    q = np.asarray(X[test[qs]], dtype=np.float64)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    r = np.asarray(X[lists.ravel()], dtype=np.float64).reshape(*lists.shape, -1)
    r /= np.linalg.norm(r, axis=2, keepdims=True)
    return np.einsum("qd,qkd->qk", q, r)
f1 = np.array(json.load(open(f"{out}/knn_protloc.json"))["macro_f1"])
best = min(w for w, *_ in runs["protloc"])
names = {"protloc": "protloc knn (default: --precision auto)", "before": "protloc knn before (BEFORE)", "torch": "PyTorch mm + topk (DINO eval_knn)",
         "faiss": "faiss IndexFlatIP", "numpy": "numpy (@ + argpartition)"}
print("| method, whole process, 2 threads | best wall (s) | median wall (s) | CPU (s) | peak RSS (MiB) | "
      "protloc faster | same lists | max abs dF1 over k |")
print("|---|---:|---:|---:|---:|---:|---|---:|")
for m in ("protloc", "before", "torch", "faiss", "numpy"):
    if m == "before" and m not in runs:
        continue
    if m not in runs:
        print(f"| {names[m]} | failed | | | | | | |")
        continue
    r = sorted(runs[m])
    walls = [w for w, *_ in r]
    same, df1 = "(reference)", "-"
    if m != "protloc":
        other = np.load(f"{out}/nb_{m}.npy")
        diff = np.flatnonzero(np.any(other != nb, axis=1))
        # where the lists differ: exact (float64) similarities, rank by rank, protloc's list against the peer's
        gap = max((np.max(np.abs(exact(diff[i:i + 50], nb[diff[i:i + 50]]) - exact(diff[i:i + 50], other[diff[i:i + 50]])))
                   for i in range(0, len(diff), 50)), default=0.0)
        same = (f"{100 - 100 * len(diff) / len(nb):.2f} % of queries; the others swap near-ties (exact similarities "
                f"equal rank by rank within {gap:.1e})") if len(diff) else "identical (every query)"
        f1m = (np.array(json.load(open(f"{out}/knn_{m}.json"))["macro_f1"]) if m == "before"
               else np.loadtxt(f"{out}/f1_{m}.txt"))
        df1 = f"{np.max(np.abs(f1m - f1)):.1e}"
    print(f"| {names[m]} | {walls[0]:.2f} | {np.median(walls):.2f} | {r[0][1]:.2f} | {max(x[2] for x in r) / 1024:.0f} | "
          f"{walls[0] / best:.2f}x | {same} | {df1} |")
print(f"# load (1 min) at the end of each run: " +
      ", ".join(f"{m} {'/'.join(str(x[3]) for x in runs[m])}" for m in runs))
print(f"# protloc macro F1 @1 {f1[0]:.4f} @10 {f1[min(9, K - 1)]:.4f} @{K} {f1[-1]:.4f} (JSON: 10 decimals)")
PYEOF
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
