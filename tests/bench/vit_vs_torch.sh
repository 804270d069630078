#!/usr/bin/env bash
# Side-by-side benchmark: protloc's ViT forward (bench_vit) vs a plain-PyTorch DINO ViT on the same
# safetensors weights and thread counts — PyTorch with default settings and tuned (allocator + OpenMP/OpenBLAS
# waits) — plus OpenBLAS's large-SGEMM rate and peak RSS. Prints Markdown tables for docs/performance.md.
#
#   tests/bench/vit_vs_torch.sh [BUILD_DIR]      (default build/)
#   env: ARCHS="vit_small vit_base" THREADS="1 2" BATCHES=1,8,32 SECS=3
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
BENCH=$BUILD/bench/bench_vit
PROTLOC=$BUILD/protloc
PY=/usr/bin/python3
ARCHS=${ARCHS:-vit_small vit_base}
THREADS=${THREADS:-1 2}
BATCHES=${BATCHES:-1,8,32}
SECS=${SECS:-3}
TUNED=(env GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4)
[ -x "$BENCH" ] || { echo "build first: $BENCH not found" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/vit-vs-torch-XXXXXX")
trap 'rm -rf "$W"' EXIT

echo "# ViT forward: protloc vs PyTorch $($PY -c 'import torch; print(torch.__version__)'), $(nproc) cores, $(date -u +%FT%TZ)"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)   OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
for arch in $ARCHS; do
  "$BENCH" --arch "$arch" --save-weights "$W/$arch.safetensors" 2>/dev/null
  # same weights -> same embeddings (sanity check of the comparison itself)
  $PY -c "import numpy as np; np.save('$W/x.npy', np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32))"
  "$PROTLOC" -q embed --model "$W/$arch.safetensors" --input "$W/x.npy" --output "$W/y_protloc.npy"
  $PY "$SRC/tests/bench/vit_torch_bench.py" "$W/$arch.safetensors" --check "$W/x.npy" --check-out "$W/y_torch.npy"
  diff=$($PY -c "import numpy as np; a, b = np.load('$W/y_protloc.npy'), np.load('$W/y_torch.npy'); print(f'{np.abs(a - b).max():.2e}')")
  echo
  echo "## $arch/16, 224x224 (protloc vs PyTorch embeddings: max |diff| = $diff)"
  for t in $THREADS; do
    "$BENCH" --model "$W/$arch.safetensors" --threads "$t" --batch "$BATCHES" --seconds "$SECS" >"$W/protloc_$t.tsv"
    # torch.set_num_threads does not bound the OpenBLAS inside Debian's PyTorch: pin it to the same count
    OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t $PY "$SRC/tests/bench/vit_torch_bench.py" "$W/$arch.safetensors" \
      --threads "$t" --batch "$BATCHES" --seconds "$SECS" --label default >"$W/default_$t.tsv"
    OPENBLAS_NUM_THREADS=$t OMP_NUM_THREADS=$t "${TUNED[@]}" $PY "$SRC/tests/bench/vit_torch_bench.py" "$W/$arch.safetensors" --threads "$t" --batch "$BATCHES" \
      --seconds "$SECS" --label tuned >"$W/tuned_$t.tsv"
  done
  # peak RSS of one process per batch size (2 threads or the last thread count)
  last_t=${THREADS##* }
  : >"$W/rss.tsv"
  for b in ${BATCHES//,/ }; do
    "$BENCH" --model "$W/$arch.safetensors" --threads "$last_t" --batch "$b" --seconds 1 --no-gemm | grep -v '^#' >>"$W/rss.tsv"
  done
  weights_mib=$(grep -o 'weights [0-9.]* MiB' "$W/protloc_$last_t.tsv" | awk '{print $2}')
  base_mib=$(grep -o 'baseline RSS [0-9.]* MiB' "$W/protloc_$last_t.tsv" | awk '{print $3}')
  $PY - "$W" "$THREADS" "$weights_mib" "$base_mib" "$BATCHES" <<'PYEOF'
import sys, glob
w, threads, weights, base = sys.argv[1], sys.argv[2].split(), float(sys.argv[3]), float(sys.argv[4])
in_mib = {int(b): int(b) * 3 * 224 * 224 * 4 / 1048576 for b in sys.argv[5].split(",")}
def rows(path):
    return [l.rstrip("\n").split("\t") for l in open(path) if l.strip() and not l.startswith("#")]
print("\n| threads | batch | protloc img/s | GFLOP/s | % of OpenBLAS SGEMM | PyTorch default img/s | PyTorch tuned img/s |")
print("|---|---|---|---|---|---|---|")
summary = []
for t in threads:
    gemm = [l for l in open(f"{w}/protloc_{t}.tsv") if l.startswith("# openblas")]
    p, d, tu = rows(f"{w}/protloc_{t}.tsv"), rows(f"{w}/default_{t}.tsv"), rows(f"{w}/tuned_{t}.tsv")
    for pr, dr, tr in zip(p, d, tu):
        print(f"| {t} | {pr[2]} | {float(pr[3]):.2f} | {float(pr[5]):.1f} | {pr[6]}% | {float(dr[3]):.2f} | {float(tr[3]):.2f} |")
    best_p = max(p, key=lambda r: float(r[3]))
    best_d = max(d, key=lambda r: float(r[3]))
    best_t = max(tu, key=lambda r: float(r[3]))
    summary.append(f"- {t} thread(s): protloc best {float(best_p[3]):.2f} img/s (batch {best_p[2]}, {best_p[6]}% of "
                   f"{gemm[0].split(':')[1].strip()} OpenBLAS SGEMM) = {float(best_p[3]) / float(best_t[3]):.2f}x PyTorch tuned "
                   f"(best {float(best_t[3]):.2f} img/s at batch {best_t[2]}), {float(best_p[3]) / float(best_d[3]):.2f}x PyTorch "
                   f"default (best {float(best_d[3]):.2f} img/s at batch {best_d[2]})")
print()
print("\n".join(summary))
print(f"\nPeak RSS (one process per batch size; process baseline before loading = {base:.1f} MiB of shared libraries;")
print("the input batch itself is listed apart):\n")
print("| batch | activation slab MiB | input MiB | peak RSS MiB | RSS - baseline - input | weights + 1.5 x activations | within |")
print("|---|---|---|---|---|---|---|")
for r in rows(f"{w}/rss.tsv"):
    act, rss, b = float(r[7]), float(r[8]), int(r[2])   # protloc rows: kernels, threads, batch, ...
    limit = weights + 1.5 * act
    net = rss - base - in_mib[b]
    print(f"| {b} | {act:.1f} | {in_mib[b]:.1f} | {rss:.1f} | {net:.1f} | {limit:.1f} | {'yes' if net <= limit else 'NO'} |")
PYEOF
done
echo
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
