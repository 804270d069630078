#!/usr/bin/env bash
# The one-command demo: install dependencies, build, make a synthetic OpenCell-style dataset and a small UNTRAINED
# demo ViT, embed with `mpirun -np 2 protloc run`, evaluate with `protloc knn` and `protloc probe`, fine-tune it for
# 3 epochs with `protloc finetune`, pretrain it with DINO for 3 epochs (`mpirun -np 2 protloc pretrain`) and embed
# with the pretrained teacher, print where the report and plots are.
#
# Usage: bash pipeline/scripts/demo.sh [--out DIR] [--build-dir DIR] [--skip-deps] [--skip-build] [--ranks N]
#   --out DIR        where everything goes (default: demo-out in the repository)
#   --build-dir DIR  CMake build folder (default: build); --skip-build uses the protloc already built there
#   --skip-deps      do not run pipeline/scripts/install_deps.sh (it is idempotent and quick when all is there)
#   --ranks N        MPI ranks for run and knn (default 2)
# The demo model's weights are random (deterministic: `protloc model init --seed 2026`): its embeddings separate
# the synthetic classes only as far as an untrained network's features do. The printed numbers show that the
# pipeline works, not how good any real model is; docs/guide.md gives the commands for real DINO weights and data.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
out="$repo/demo-out" build="$repo/build" skip_deps=0 skip_build=0 ranks=2
while [ $# -gt 0 ]; do
  case $1 in
    --out) out=${2:?--out needs a folder}; shift 2 ;;
    --build-dir) build=${2:?--build-dir needs a folder}; shift 2 ;;
    --skip-deps) skip_deps=1; shift ;;
    --skip-build) skip_build=1; shift ;;
    --ranks) ranks=${2:?}; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
step() { printf '\n== demo: %s ==\n' "$*"; }
current=setup
on_exit() {
  local rc=$?
  [ "$rc" -eq 0 ] || echo "demo.sh: FAILED (exit $rc) during: $current" >&2
}
trap on_exit EXIT

# Open MPI refuses to run as root unless told it is deliberate (containers and CI machines often are root).
if [ "$(id -u)" -eq 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
cores=$(nproc 2>/dev/null || echo 2)
[ "$ranks" -le "$cores" ] || export OMPI_MCA_rmaps_base_oversubscribe=1

if [ "$skip_deps" -eq 0 ]; then
  current="installing dependencies"; step "$current (pipeline/scripts/install_deps.sh)"
  bash "$repo/pipeline/scripts/install_deps.sh"
fi
if [ "$skip_build" -eq 0 ]; then
  current="building"; step "$current (CMake Release in $build)"
  cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$build" -j"$cores"
fi
protloc="$build/protloc"
[ -x "$protloc" ] || { echo "demo.sh: $protloc not found (build first, or drop --skip-build)" >&2; exit 1; }
mkdir -p "$out"
out=$(cd "$out" && pwd)

current="generating the synthetic dataset"; step "$current"
rm -rf "$out/data"
"$protloc" synth --kind opencell --classes 5 --per-class 12 --seed 2026 --size 256 --out "$out/data"

current="making the demo model"; step "$current (untrained ViT: dim 192, 4 blocks, 3 heads, patch 16, 2 input channels)"
mkdir -p "$out/model"
"$protloc" model init --dim 192 --depth 4 --heads 3 --patch 16 --in-chans 2 --seed 2026 \
  --out "$out/model/demo-vit.safetensors"
sha=$(sha256sum "$out/model/demo-vit.safetensors" | cut -d' ' -f1)
cat >"$out/model/demo-card.json" <<JSON
{
  "name": "protloc-demo-untrained-vit",
  "description": "UNTRAINED demo ViT (random weights from 'protloc model init --seed 2026'); shows that the pipeline works, says nothing about real models",
  "weights": "demo-vit.safetensors",
  "sha256": "$sha",
  "heads": 3,
  "input_slots": ["protein", "nucleus"],
  "normalisation": {"mode": "self"},
  "pixel_size_um": 0.206,
  "patch": 16
}
JSON

current="embedding (mpirun -np $ranks protloc run)"; step "$current"
rm -f "$out/store.h5"
mpirun -np "$ranks" "$protloc" run --manifest "$out/data/manifest.tsv" --model "$out/model/demo-card.json" \
  --out "$out/store.h5"

current="kNN evaluation (mpirun -np $ranks protloc knn)"; step "$current"
rm -rf "$out/report"
mpirun -np "$ranks" "$protloc" knn --store "$out/store.h5" --report-dir "$out/report/knn"

current="linear / MLP probes (protloc probe)"; step "$current"
"$protloc" probe --store "$out/store.h5" --report-dir "$out/report/probe"

current="fine-tuning the backbone + a linear head end to end (protloc finetune, 3 epochs)"; step "$current"
rm -rf "$out/finetune"   # a re-run of the demo starts over (finetune never replaces a checkpoint unasked)
"$protloc" finetune --manifest "$out/data/manifest.tsv" --model "$out/model/demo-card.json" --out "$out/finetune" \
  --epochs 3 --batch 16 --lr 5e-4

current="DINO self-supervised pretraining (mpirun -np $ranks protloc pretrain, 3 epochs), then embedding with it"
step "$current"
rm -rf "$out/pretrain" "$out/store-pretrained.h5"   # a re-run starts over (pretrain never replaces a checkpoint unasked)
mpirun -np "$ranks" "$protloc" pretrain --manifest "$out/data/manifest.tsv" --model "$out/model/demo-card.json" \
  --size 128 --global-size 96 --local-size 48 --local-crops 4 --out-dim 1024 --hidden-dim 256 --bottleneck-dim 64 \
  --epochs 3 --batch 20 --teacher-temp 0.02 --warmup-teacher-temp 0.02 --out "$out/pretrain"
mpirun -np "$ranks" "$protloc" run --manifest "$out/data/manifest.tsv" --model "$out/pretrain/model.json" \
  --out "$out/store-pretrained.h5"

current="export for Python (protloc export)"; step "$current"
"$protloc" export "$out/store.h5" --format h5ad --out "$out/embeddings.h5ad"

current="done"
step "results"
cat <<EOF2
Store (HDF5, docs/formats.md):     $out/store.h5
AnnData export:                     $out/embeddings.h5ad
kNN report (JSON, CSV, plots):      $out/report/knn/
Probe report (JSON, CSV, plots):    $out/report/probe/
Fine-tuned model (card, weights, report, plots): $out/finetune/
DINO-pretrained model (teacher card and weights, student, report, plots): $out/pretrain/
Store embedded with the pretrained teacher:   $out/store-pretrained.h5
Plots:
$(cd "$out" && find report -name '*.png' | sort | sed "s|^|  $out/|")

The demo model is UNTRAINED (random weights): these scores show the pipeline end to end, not a real model.
Next: docs/guide.md (real DINO / DINO4Cells weights, OpenCell / HPA data, Slurm).
EOF2
