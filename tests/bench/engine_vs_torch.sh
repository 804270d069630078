#!/usr/bin/env bash
# The compute engine side by side with PyTorch, in one run per workload (issue 12's acceptance table): protloc's ViT
# forward under each kernel backend and precision (openblas FP32, onednn FP32, onednn BF16) against a plain-PyTorch
# DINO ViT (tests/bench/vit_torch_bench.py, tuned: pinned threads, no malloc trimming, passive OpenMP waits) on the
# same weights and input size, plus the FP32 FMA peak and OpenBLAS's large SGEMM measured in the same bench_vit
# process, and peak RSS of one process per engine at batch 1. Prints Markdown for docs/performance.md.
#
#   tests/bench/engine_vs_torch.sh [BUILD_DIR]     (default build/)
#   env: WORKLOADS="s16_224_3 b16_512_4 b8_512_4" THREADS=2 SECS=5 ENGINES=openblas:fp32,onednn:fp32,onednn:bf16
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
BENCH=$BUILD/bench/bench_vit
PROTLOC=$BUILD/protloc
PY=/usr/bin/python3
WORKLOADS=${WORKLOADS:-s16_224_3 b16_512_4 b8_512_4}
THREADS=${THREADS:-2}
SECS=${SECS:-5}
ENGINES=${ENGINES:-openblas:fp32,onednn:fp32,onednn:bf16}
TUNED=(env GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736 OMP_WAIT_POLICY=PASSIVE
       OPENBLAS_THREAD_TIMEOUT=4 OPENBLAS_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS)
[ -x "$BENCH" ] || { echo "build first: $BENCH not found" >&2; exit 1; }
W=$(mktemp -d "${TMPDIR:-/tmp}/engine-vs-torch-XXXXXX")
trap 'rm -rf "$W"' EXIT

echo "# engine vs PyTorch $($PY -c 'import torch; print(torch.__version__)'), $(nproc) cores, $THREADS threads, $(date -u +%FT%TZ)"
echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')   OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}"
echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for wl in $WORKLOADS; do
  IFS=_ read -r arch size chans <<<"$wl"
  case $arch in
    s16) dim=384 heads=6 patch=16 name="ViT-S/16" batch=${BATCH_S:-8} ;;
    b16) dim=768 heads=12 patch=16 name="ViT-B/16" batch=${BATCH_B:-1} ;;
    b8) dim=768 heads=12 patch=8 name="ViT-B/8" batch=${BATCH_B:-1} ;;
    *) echo "unknown workload $wl" >&2; exit 2 ;;
  esac
  "$PROTLOC" -q model init --dim $dim --depth 12 --heads $heads --patch $patch --in-chans "$chans" --img-size "$size" \
    --seed 1 --out "$W/m.safetensors"
  # same weights -> same embeddings (sanity check of the comparison itself)
  $PY -c "import numpy as np; np.save('$W/x.npy', np.random.default_rng(0).standard_normal((1, $chans, $size, $size)).astype(np.float32))"
  "$PROTLOC" -q embed --model "$W/m.safetensors" --input "$W/x.npy" --output "$W/y_fp32.npy" --kernels openblas
  "$PROTLOC" -q embed --model "$W/m.safetensors" --input "$W/x.npy" --output "$W/y_bf16.npy" --precision bf16
  $PY "$SRC/tests/bench/vit_torch_bench.py" "$W/m.safetensors" --size "$size" --check "$W/x.npy" --check-out "$W/y_torch.npy"
  check=$($PY -c "
import numpy as np
a, b, c = (np.load('$W/y_%s.npy' % n).astype(np.float64) for n in ('fp32', 'torch', 'bf16'))
print(f'max |protloc fp32 - PyTorch| = {np.abs(a - b).max():.2e}, cosine(protloc bf16, PyTorch fp32) = {(c * b).sum() / np.linalg.norm(c) / np.linalg.norm(b):.6f}')")
  "$BENCH" --model "$W/m.safetensors" --size "$size" --threads "$THREADS" --batch "$batch" --seconds "$SECS" \
    --engine "$ENGINES" >"$W/protloc.tsv"
  "${TUNED[@]}" $PY "$SRC/tests/bench/vit_torch_bench.py" "$W/m.safetensors" --size "$size" --threads "$THREADS" \
    --batch "$batch" --seconds "$SECS" --label tuned >"$W/torch.tsv"
  "${TUNED[@]}" $PY "$SRC/tests/bench/vit_torch_bench.py" "$W/m.safetensors" --size "$size" --threads "$THREADS" \
    --batch 1 --seconds 1 --label rss >"$W/torch_rss.tsv"
  : >"$W/rss.tsv"
  for e in ${ENGINES//,/ }; do
    "$BENCH" --model "$W/m.safetensors" --size "$size" --threads "$THREADS" --batch 1 --seconds 1 --no-gemm \
      --engine "$e" | grep -v '^#' >>"$W/rss.tsv"
  done
  echo
  echo "## $name, ${size}x${size}, $chans channels, batch $batch ($check)"
  grep '^# fp32 fma peak\|^# openblas sgemm\|^# model' "$W/protloc.tsv" | sed 's/^# /- /'
  $PY - "$W" <<'PYEOF'
import sys
w = sys.argv[1]
rows = lambda p: [l.rstrip("\n").split("\t") for l in open(p) if l.strip() and not l.startswith("#")]
p, t, tr, rss = rows(f"{w}/protloc.tsv"), rows(f"{w}/torch.tsv"), rows(f"{w}/torch_rss.tsv"), rows(f"{w}/rss.tsv")
torch_ips = float(t[0][3])
fp32 = {r[0].split("/")[1]: float(r[3]) for r in p if r[0].endswith("/fp32")}
print("\n| engine | img/s | GFLOP/s | % of FP32 FMA peak | x PyTorch FP32 | x protloc FP32 (best) | peak RSS MiB (batch 1) |")
print("|---|---|---|---|---|---|---|")
best32 = max(fp32.values())
for r, m in zip(p, rss):
    ips = float(r[3])
    print(f"| protloc {r[0].split('/', 1)[1]} | {ips:.3f} | {float(r[5]):.1f} | {r[9]}% | {ips / torch_ips:.2f} | "
          f"{ips / best32:.2f} | {float(m[8]):.0f} |")
print(f"| PyTorch FP32 (tuned) | {torch_ips:.3f} | | | 1.00 | {torch_ips / best32:.2f} | {float(tr[0][5]):.0f} |")
PYEOF
done
echo
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
