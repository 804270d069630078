#!/usr/bin/env bash
# Pipeline benchmark (docs/performance.md "Pipeline"): strong scaling of `protloc run` 1 -> 2 ranks on the same
# data, the pipeline's overhead over pure embedding time (`protloc embed` on the same already-normalised inputs,
# same threads), and load balance on a skewed manifest (every 4th image has 4x the pixels).
# Usage: tests/bench/bench_pipeline.sh [BUILD_DIR] [N_ITEMS] [SIZE]   (defaults: build 32 256)
set -euo pipefail
BUILD=${1:-build}
N=${2:-32}
SIZE=${3:-256}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
P="$BUILD/protloc"
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/protloc-bench-XXXXXX")
trap 'rm -rf "$W"' EXIT
CORES=$(nproc)
$PY "$SRC/tests/fixtures/runner/make_dataset.py" "$W/u" "$N" --size "$SIZE"
$PY "$SRC/tests/fixtures/runner/make_dataset.py" "$W/s" "$N" --size "$SIZE" --skew
# ViT-S/16-sized model, 2 input channels
"$P" -q model init --dim 384 --depth 12 --heads 6 --patch 16 --in-chans 2 --out "$W/m.safetensors"
printf '{"name": "vits16-2ch", "weights": "m.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$W/card.json"
cp "$W/m.safetensors" "$W/card.json" "$W/u/"; cp "$W/m.safetensors" "$W/card.json" "$W/s/"

now() { date +%s.%N; }
run_once() {   # ranks dir out [run options] -> wall seconds (stdout), log in $W/last.err
  local np=$1 dir=$2 out=$3 t0 t1
  shift 3
  rm -rf "$out" "$out.journal"
  t0=$(now)
  mpirun -np "$np" "$P" run --manifest "$dir/manifest.tsv" --model "$dir/card.json" --out "$out" --no-progress "$@" \
    >"$W/last.out" 2>"$W/last.err"
  t1=$(now)
  echo "$t1 - $t0" | bc -l
}
# pure embedding: the same normalised FOVs as one (N, 2, S, S) array, batch 1 like the pipeline's FOV level
$PY - "$W/u" "$N" <<'PYEOF'
import sys, numpy as np, tifffile
d, n = sys.argv[1], int(sys.argv[2])
x = []
for i in range(n):
    img = tifffile.imread(f"{d}/img/item{i:04d}_proj.tif").astype(np.float64) / 65535.0
    ch = [img[1], img[0]]
    x.append(np.stack([(c - c.mean()) / (c.std() + 1e-7) for c in ch]))
np.save(f"{d}/x.npy", np.array(x, np.float32))
PYEOF
t0=$(now)
"$P" -q embed --model "$W/m.safetensors" --input "$W/u/x.npy" --output "$W/u/y.npy" --batch 1 --threads "$CORES"
t1=$(now)
EMBED=$(echo "$t1 - $t0" | bc -l)

R1=$(run_once 1 "$W/u" "$W/u1.h5")
R2=$(run_once 2 "$W/u" "$W/u2.h5")
T1=$(run_once 1 "$W/u" "$W/t1.h5" --threads 1)
T2=$(run_once 2 "$W/u" "$W/t2.h5" --threads 1)
S2=$(run_once 2 "$W/s" "$W/s2.h5")
BUSY=$(sed -n 's/.*rank busy min\/mean\/max \([0-9.]*\)\/\([0-9.]*\)\/\([0-9.]*\)s.*/\1 \2 \3/p' "$W/last.err")
read -r BMIN BMEAN BMAX <<<"$BUSY"
MAXDEV=$(echo "($BMAX - $BMEAN) / $BMEAN * 100" | bc -l)
$PY -c "
import h5py, numpy as np, sys
a = h5py.File('$W/u1.h5')['fov/embedding'][()]; y = np.load('$W/u/y.npy')
print(f'# check: |run - embed| max = {np.abs(a - y).max():.2e}', file=sys.stderr)"

printf '| measurement (%s items, %sx%s px, 2 channels, ViT-S/16 dims, %s cores) | value |\n|---|---:|\n' "$N" "$SIZE" "$SIZE" "$CORES"
printf '| pure embedding: protloc embed --batch 1 --threads %s (incl. load) | %.2f s |\n' "$CORES" "$EMBED"
printf '| protloc run, 1 rank x %s threads | %.2f s |\n' "$CORES" "$R1"
printf '| pipeline overhead over pure embedding | %+.1f %% |\n' "$(echo "($R1 / $EMBED - 1) * 100" | bc -l)"
printf '| protloc run, 2 ranks x %s threads | %.2f s |\n' "$((CORES / 2 > 0 ? CORES / 2 : 1))" "$R2"
printf '| strong scaling 1 -> 2 ranks (speed-up) | %.2fx |\n' "$(echo "$R1 / $R2" | bc -l)"
printf '| 1 rank x 1 thread / 2 ranks x 1 thread | %.2f s / %.2f s (%.2fx) |\n' "$T1" "$T2" "$(echo "$T1 / $T2" | bc -l)"
printf '| skewed manifest, 2 ranks: rank busy min / mean / max | %s / %s / %s s |\n' "$BMIN" "$BMEAN" "$BMAX"
printf '| slowest rank above the mean | %.1f %% |\n' "$MAXDEV"
