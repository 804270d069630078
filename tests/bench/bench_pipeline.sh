#!/usr/bin/env bash
# Pipeline benchmark (docs/performance.md "Pipeline"): strong scaling of `protloc run` 1 -> 2 ranks on the same
# data, the pipeline's overhead over pure embedding time (`protloc embed` on the same already-normalised inputs,
# same threads), and load balance on a skewed manifest (every 4th image has 4x the pixels).
# Usage: tests/bench/bench_pipeline.sh [BUILD_DIR] [N_ITEMS] [SIZE]   (defaults: build 32 256)
# Ranks are started with MPIRUN_OPTS (default --bind-to none: Open MPI binds each of <= 2 ranks to ONE core by
# default, and protloc never runs more ViT threads than the cores a rank may use).
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
# BENCH_DATA=DIR: use datasets made earlier by this script's BENCH_MAKE_ONLY=1 mode (for machines without tifffile)
if [ -n "${BENCH_DATA:-}" ]; then
  cp -r "$BENCH_DATA/u" "$BENCH_DATA/s" "$W/"
  if [ -n "${BENCH_SYNTH:-}" ]; then   # "CLASSES PER_CLASS SIZE": a bigger uniform set made by protloc synth
    read -r SC SP SIZE <<<"$BENCH_SYNTH"
    rm -rf "$W/u"
    "$P" -q synth --kind opencell --classes "$SC" --per-class "$SP" --seed 1 --size "$SIZE" --out "$W/u"
    N=$((SC * SP))
  fi
else
  $PY "$SRC/tests/fixtures/runner/make_dataset.py" "$W/u" "$N" --size "$SIZE"
  $PY "$SRC/tests/fixtures/runner/make_dataset.py" "$W/s" "$N" --size "$SIZE" --skew
fi
# ViT-S/16-sized model, 2 input channels
"$P" -q model init --dim 384 --depth 12 --heads 6 --patch 16 --in-chans 2 --out "$W/m.safetensors"
printf '{"name": "vits16-2ch", "weights": "m.safetensors", "input_slots": ["protein", "nucleus"]}\n' >"$W/card.json"
cp "$W/m.safetensors" "$W/card.json" "$W/u/"; cp "$W/m.safetensors" "$W/card.json" "$W/s/"

now() { date +%s.%N; }
calc() { awk "BEGIN { print $* }"; }
run_once() {   # ranks dir out [run options] -> wall seconds (stdout), log in $W/last.err
  local np=$1 dir=$2 out=$3 t0 t1
  shift 3
  rm -rf "$out" "$out.journal"
  t0=$(now)
  mpirun ${MPIRUN_OPTS:---bind-to none} -np "$np" "$P" run --manifest "$dir/manifest.tsv" --model "$dir/card.json" --out "$out" --no-progress "$@" \
    >"$W/last.out" 2>"$W/last.err"
  t1=$(now)
  calc "$t1 - $t0"
}
# pure embedding: the same normalised FOVs as one (N, 2, S, S) array, batch 1 like the pipeline's FOV level
[ -e "$W/u/x.npy" ] || [ -n "${BENCH_SYNTH:-}" ] || $PY - "$W/u" "$N" <<'PYEOF'
import sys, numpy as np, tifffile
d, n = sys.argv[1], int(sys.argv[2])
x = []
for i in range(n):
    img = tifffile.imread(f"{d}/img/item{i:04d}_proj.tif").astype(np.float64) / 65535.0
    ch = [img[1], img[0]]
    x.append(np.stack([(c - c.mean()) / (c.std() + 1e-7) for c in ch]))
np.save(f"{d}/x.npy", np.array(x, np.float32))
PYEOF
if [ -n "${BENCH_MAKE_ONLY:-}" ]; then
  rm -rf "$BENCH_MAKE_ONLY"; mkdir -p "$BENCH_MAKE_ONLY"; cp -r "$W/u" "$W/s" "$BENCH_MAKE_ONLY/"
  rm -f "$BENCH_MAKE_ONLY"/*/m.safetensors; exit 0
fi
EMBED=0
if [ -e "$W/u/x.npy" ]; then
  t0=$(now)
  "$P" -q embed --model "$W/m.safetensors" --input "$W/u/x.npy" --output "$W/u/y.npy" --batch 1 --threads "$CORES"
  t1=$(now)
  EMBED=$(calc "$t1 - $t0")
fi

R1=$(run_once 1 "$W/u" "$W/u1.h5")
E1=$(sed -n 's/.* embed \([0-9.]*\)s, journal.*/\1/p' "$W/last.err")
R2=$(run_once 2 "$W/u" "$W/u2.h5")
T1=$(run_once 1 "$W/u" "$W/t1.h5" --threads 1)
T2=$(run_once 2 "$W/u" "$W/t2.h5" --threads 1)
S2=$(run_once 2 "$W/s" "$W/s2.h5")
BUSY=$(sed -n 's/.*rank busy min\/mean\/max \([0-9.]*\)\/\([0-9.]*\)\/\([0-9.]*\)s.*/\1 \2 \3/p' "$W/last.err")
read -r BMIN BMEAN BMAX <<<"$BUSY"
MAXDEV=$(calc "($BMAX - $BMEAN) / $BMEAN * 100")
$PY -c "import h5py" 2>/dev/null && $PY -c "
import h5py, numpy as np, sys
a = h5py.File('$W/u1.h5')['fov/embedding'][()]; y = np.load('$W/u/y.npy')
print(f'# check: |run - embed| max = {np.abs(a - y).max():.2e}', file=sys.stderr)"

printf '| measurement (%s uniform items, %sx%s px, 2 channels, ViT-S/16 dims, %s cores) | value |\n|---|---:|\n' "$N" "$SIZE" "$SIZE" "$CORES"
if [ "$EMBED" != 0 ]; then
  printf '| pure embedding: protloc embed --batch 1 --threads %s (incl. load) | %.2f s |\n' "$CORES" "$EMBED"
fi
printf '| protloc run, 1 rank x %s threads | %.2f s |\n' "$CORES" "$R1"
if [ "$EMBED" != 0 ]; then
  printf '| pipeline overhead over pure embedding | %+.1f %% |\n' "$(calc "($R1 / $EMBED - 1) * 100")"
fi
printf '| of which ViT forward inside the run (summed) | %.2f s (overhead %+.1f %%) |\n' "$E1" "$(calc "($R1 / $E1 - 1) * 100")"
printf '| protloc run, 2 ranks x %s threads | %.2f s |\n' "$((CORES / 2 > 0 ? CORES / 2 : 1))" "$R2"
printf '| strong scaling 1 -> 2 ranks (speed-up) | %.2fx |\n' "$(calc "$R1 / $R2")"
printf '| 1 rank x 1 thread / 2 ranks x 1 thread | %.2f s / %.2f s (%.2fx) |\n' "$T1" "$T2" "$(calc "$T1 / $T2")"
printf '| skewed manifest, 2 ranks: rank busy min / mean / max | %s / %s / %s s |\n' "$BMIN" "$BMEAN" "$BMAX"
printf '| slowest rank above the mean | %.1f %% |\n' "$MAXDEV"
