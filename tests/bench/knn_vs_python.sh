#!/usr/bin/env bash
# kNN benchmark, protloc (openblas FP32, onednn FP32, onednn BF16: identical lists) vs numpy / scikit-learn / PyTorch
# mm+topk / faiss IndexFlatIP, same data, same machine, one run; each peer's lists are compared with protloc's.
#   tests/bench/knn_vs_python.sh [BUILD_DIR] [REFS] [QUERIES] [DIM] [K] [THREADS]
# defaults: build 50000 10000 384 200 2. Python is tuned: glibc keeps freed memory (no mmap/trim churn),
# OpenMP threads wait passively; every library gets THREADS threads.
set -eu
BUILD=${1:-build}; R=${2:-50000}; Q=${3:-10000}; D=${4:-384}; K=${5:-200}; THREADS=${6:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
DATA=$(mktemp -d "${TMPDIR:-/tmp}/knnbench-XXXXXX")
trap 'rm -rf "$DATA"' EXIT
echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores, $(grep -o -m1 -w avx512_bf16 /proc/cpuinfo || echo 'no avx512_bf16'), commit $(git -C "$HERE" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "# $(date -u +%FT%TZ) $(uname -n) load: $(cut -d' ' -f1-3 /proc/loadavg)  R=$R Q=$Q D=$D K=$K threads=$THREADS"
"$BUILD/bench/bench_knn" --refs "$R" --queries "$Q" --dim "$D" --k "$K" --threads "$THREADS" --write-data "$DATA"
GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 OMP_WAIT_POLICY=PASSIVE \
OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS MKL_NUM_THREADS=$THREADS \
  /usr/bin/python3 "$HERE/knn_vs_python.py" "$DATA" "$K" "$THREADS"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
