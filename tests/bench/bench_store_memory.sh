#!/usr/bin/env bash
# Store-write memory benchmark (docs/performance.md "Memory per rank"): peak RSS per rank of `protloc run` for
# growing numbers of tile rows, next to what a rank would hold if it kept all its rows until one final write
# (the reference: rows / ranks x (embedding + tile metadata)). The rows come from many manifest items that point
# at one 512 x 512 image tiled at 16 px (1024 tiles per item) and a one-block ViT of ViT-S width (dim 384, so a
# row is as large as in the study's stores), so the run is dominated by journaling and writing rows.
# Usage: tests/bench/bench_store_memory.sh [BUILD_DIR] [RANKS] [ROWS...]   (defaults: build 2 10000 100000 1000000)
set -euo pipefail
BUILD=${1:-build}
NP=${2:-2}
shift $(( $# > 2 ? 2 : $# ))
ROWS=("$@")
[ ${#ROWS[@]} -gt 0 ] || ROWS=(10000 100000 1000000)
SRC=$(cd "$(dirname "$0")/../.." && pwd)
P="$(cd "$BUILD" && pwd)/protloc"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/protloc-bench-XXXXXX")
trap 'rm -rf "$W"' EXIT
SIDE=512 TILE=16 DIM=${BENCH_DIM:-384}
PER_ITEM=$(( (SIDE / TILE) * (SIDE / TILE) ))

$PY - "$W/img.tif" "$SIDE" <<'PYEOF'
import sys, numpy as np, tifffile
s = int(sys.argv[2])
rng = np.random.default_rng(0)
tifffile.imwrite(sys.argv[1], rng.integers(100, 4000, (2, s, s), dtype=np.uint16))
PYEOF
"$P" -q model init --dim "$DIM" --depth 1 --heads 1 --patch 16 --in-chans 2 --out "$W/m.safetensors"
printf '{"name": "tiny", "weights": "m.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$W/card.json"

echo "# protloc store-write memory: peak RSS per rank vs rows (bench_store_memory.sh)"
echo "# cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p') (family $(lscpu | sed -n 's/^CPU family:[[:space:]]*//p') model $(lscpu | sed -n 's/^Model:[[:space:]]*//p')), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -x "$BUILD/bench/bench_vit" ] && "$BUILD/bench/bench_vit" --arch vit_tiny --size 32 --seconds 0.2 --threads 1,"$(nproc)" --batch 1 | grep '^# fp32 fma peak' || true
echo "# $NP ranks, ${SIDE}x${SIDE} items tiled at $TILE px ($PER_ITEM tile rows per item), embedding dim $DIM"
printf '%10s %7s %9s %14s %22s %12s\n' tile_rows items seconds peak_rss_MiB all_rows_per_rank_MiB store_MiB
for rows in "${ROWS[@]}"; do
  items=$(( (rows + PER_ITEM - 1) / PER_ITEM ))
  {
    echo "id	dataset	label	split	group	pixel_size_um	nucleus	protein"
    for i in $(seq 0 $((items - 1))); do
      printf 'it%07d\tbench\tc%d\ttrain\tg%d\t0.206\timg.tif#0\timg.tif#1\n' "$i" $((i % 5)) "$i"
    done
  } >"$W/m.tsv"
  rm -rf "$W/s.h5" "$W/s.h5.journal"
  t0=$(date +%s.%N)
  mpirun --bind-to none -np "$NP" "$P" run --manifest "$W/m.tsv" --model "$W/card.json" --out "$W/s.h5" \
    --level tiles --tile $TILE --batch 256 --no-progress >"$W/out" 2>"$W/err" || { cat "$W/err" >&2; exit 1; }
  t1=$(date +%s.%N)
  rss=$(sed -n 's/.*peak RSS per rank (largest) \([0-9.]*\) MiB.*/\1/p' "$W/err")
  tiles=$(sed -n 's/^summary:.* tiles=\([0-9]*\).*/\1/p' "$W/out")
  # a rank's rows if held until one final write: embedding + item, y, x per row
  held=$(awk -v t="$tiles" -v np="$NP" -v d=$DIM 'BEGIN { printf "%.1f", t / np * (d * 4 + 16) / 1048576 }')
  printf '%10s %7s %9.1f %14s %22s %12.1f\n' "$tiles" "$items" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
    "$rss" "$held" "$(awk -v s="$(stat -c %s "$W/s.h5")" 'BEGIN { print s / 1048576 }')"
done
