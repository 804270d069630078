#!/usr/bin/env bash
# Operations timings (docs/performance.md, "Operations"): local Slurm start-up, sbatch→done latency of a trivial job,
# and nightly.sh first / no-op / incremental runs on synthetic data. Usage: ops_timings.sh BUILD_DIR [WORKDIR]
set -euo pipefail
build=$(cd "${1:?usage: ops_timings.sh BUILD_DIR [WORKDIR]}" && pwd)
src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
work=${2:-$(mktemp -d /tmp/protloc-ops-bench-XXXXXX)}
mkdir -p "$work"; work=$(cd "$work" && pwd)
export PROTLOC="$build/protloc" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 PROTLOC_PROBE_ARGS="--head logreg"
now() { date +%s.%N; }
el() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
trap 'bash "$src/tests/slurm/local_slurm.sh" stop "$work/slurm" >/dev/null 2>&1 || true' EXIT

t0=$(now); bash "$src/tests/slurm/local_slurm.sh" start "$work/slurm" >/dev/null; t1=$(now)
echo "slurm start (munged+slurmctld+slurmd until idle): $(el "$t0" "$t1") s"
# shellcheck disable=SC1091
. "$work/slurm/env.sh"
t0=$(now); id=$(sbatch --parsable --output=/dev/null --wrap=true)
while squeue -h -j "$id" 2>/dev/null | grep -q .; do sleep 0.2; done; t1=$(now)
echo "sbatch --wrap=true submit -> gone from squeue: $(el "$t0" "$t1") s"

"$PROTLOC" -q synth --kind opencell --classes 4 --per-class 10 --seed 5 --size 256 --out "$work/all" >/dev/null
"$PROTLOC" -q model init --dim 192 --depth 4 --heads 3 --patch 16 --in-chans 2 --out "$work/m.safetensors"
printf '{"name": "bench", "weights": "m.safetensors", "input_slots": ["protein", "nucleus"], "normalisation": {"mode": "self"}}\n' >"$work/card.json"
awk -F'\t' 'BEGIN { OFS = "," } /^#/ { next } $1 == "id" { print "id,labels,group,split"; next } { print $1, $3, $5, $4 }' \
  "$work/all/manifest.tsv" >"$work/labels.csv"
mkdir -p "$work/in"
mapfile -t files < <(find "$work/all" -name '*_proj.tif' | sort)
cp "${files[@]:0:32}" "$work/in/"
for launcher in mpirun slurm; do
  w="$work/nightly-$launcher"
  run() { bash "$src/slurm/nightly.sh" --data "$work/in" --layout opencell --labels "$work/labels.csv" \
            --model "$work/card.json" --work "$w" --launcher "$launcher" --ranks 2 >/dev/null 2>&1; }
  t0=$(now); run; t1=$(now); echo "nightly ($launcher, 2 ranks) first run, 32 images: $(el "$t0" "$t1") s"
  t0=$(now); run; t1=$(now); echo "nightly ($launcher) no-op (no new images): $(el "$t0" "$t1") s"
  cp "${files[@]:32:8}" "$work/in/"
  t0=$(now); run; t1=$(now); echo "nightly ($launcher) +8 images (8 computed, 32 reused): $(el "$t0" "$t1") s"
  grep -h summary: "$w/reports/latest/embed.log"
  for f in "${files[@]:32:8}"; do rm -f "$work/in/$(basename "$f")"; done
done
