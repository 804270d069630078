#!/usr/bin/env bash
# Training-cache reader headroom (docs/performance.md "Training cache"): ONE reader thread's samples/s (read from a
# built cache + the consumer's per-sample augmentation, build/bench/bench_cache_reader) against the samples/s the
# model consumes, on real data (../shared/samples: 7 OpenCell Hoechst FOVs, 1024 x 1024; the HPA FOV for the
# compression table). Acceptance: headroom = reader / consumer >= 3.
#   (a) fine-tuning: 224 x 224 canvases (--level tiles --tile 224 --size 224: 16 tiles per OpenCell FOV), read +
#       pl_augment_image at 224^2; consumer = ViT-S/16 224^2 training (forward + backward + AdamW), batch 32,
#       2 threads: `protloc finetune --manifest --cache` on that cache, the median img/s of train.jsonl's steps after
#       the first (its execution.reader, the pipeline's own reader figures, is printed too).
#   (b) DINO multi-crop: 512 x 512 canvases (--level fov --size 512), read + pl_dino_augment_views (2 x 224^2 +
#       8 x 96^2) + standardisation of each view; consumer = an ESTIMATE of ViT-S/16 DINO steps/s x 1 sample: one
#       sample costs 2 global student fwd+bwd + 8 local student fwd+bwd + 2 global teacher forwards, i.e.
#       2 + 8 r + 2/3 "224^2 training images", where r = (ViT-S forward time per 96^2 image) / (per 224^2 image),
#       measured by bench_vit (2 threads, batch 32) in the same run, and a training image costs 3 forwards (the
#       backward = 2). The DINO heads (projection MLP + 65536-way prototypes) and the EMA update are not counted: the
#       real consumer is slower, so the headroom printed is a lower bound.
# The two OpenCell channels of an item are two different FOVs' Hoechst images (the samples hold one channel per
# FOV): protein = FOV k, nucleus = FOV k+1, so no canvas holds a channel twice (which would flatter zstd).
# Also: the cache's compression (du vs raw float32) and, per source and canvas, zstd with and without the byte
# shuffle (build/bench/bench_cache_shuffle on 1-channel caches of OpenCell and of HPA).
#
#   tests/bench/bench_cache_reader.sh [BUILD_DIR]          (default build/)
#   env: SAMPLES=../shared/samples (relative to the repository root)  SECONDS_READ=5  THREADS=2  STEPS=5
#        KEEP_DIR=DIR: work in DIR and keep it (caches DIR/a224 DIR/b512 DIR/oc224 DIR/oc512 DIR/hpa224 DIR/hpa512)
#        CACHES_ONLY=1: build those six caches and stop (e.g. for tests/bench/cache_codecs.py)
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$(cd "${1:-$SRC/build}" && pwd)
P=$BUILD/protloc
R=$BUILD/bench/bench_cache_reader
Z=$BUILD/bench/bench_cache_shuffle
PY=/usr/bin/python3
DATA=$(cd "${SAMPLES:-$SRC/../shared/samples}" && pwd)
SECS=${SECONDS_READ:-5}
THREADS=${THREADS:-2}
STEPS=${STEPS:-5}
for x in "$P" "$R" "$Z" "$BUILD/bench/bench_vit"; do [ -x "$x" ] || { echo "build first: $x not found" >&2; exit 1; }; done
if [ -n "${KEEP_DIR:-}" ]; then
  mkdir -p "$KEEP_DIR"; W=$(cd "$KEEP_DIR" && pwd)
else
  W=$(mktemp -d "${TMPDIR:-/tmp}/protloc-cachereader-XXXXXX")
  trap 'rm -rf "$W"' EXIT
fi
# copies under W: manifest paths may not leave the manifest's folder
mkdir -p "$W/data"
cp "$DATA"/opencell_hoechst_proj/FOV_*_RAW.tif "$DATA"/hpa_1000_A12_2/1000_A12_2_green.png "$W/data/" 2>/dev/null || true
OC=()
for f in "$W"/data/FOV_*_RAW.tif; do [ -f "$f" ] && OC+=("data/$(basename "$f")"); done
HPA=data/1000_A12_2_green.png
[ ${#OC[@]} -ge 2 ] && [ -f "$W/$HPA" ] || { echo "real samples not found under $DATA" >&2; exit 1; }

echo "# protloc training-cache reader headroom (bench_cache_reader.sh), $(date -u +%FT%TZ)"
echo "# cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p') (family $(lscpu | sed -n 's/^CPU family:[[:space:]]*//p') model $(lscpu | sed -n 's/^Model:[[:space:]]*//p')), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$BUILD/bench/bench_vit" --arch vit_tiny --size 32 --seconds 0.2 --threads 1,"$THREADS" --batch 1 | grep '^# fp32 fma peak' || true
echo "# cache file system: $(df -T "$W" | awk 'NR == 2 { print $2 " (" $1 " on " $7 ")" }')"

# ViT-S/16, 2 channels, and a 1-channel tiny model for the compression caches (only the card's slots matter there)
"$P" -q model init --dim 384 --depth 12 --heads 6 --patch 16 --in-chans 2 --img-size 224 --seed 1 --out "$W/vits.safetensors"
"$P" -q model init --dim 64 --depth 1 --heads 1 --patch 16 --in-chans 1 --img-size 224 --seed 1 --out "$W/one.safetensors"
printf '{"name": "vits", "weights": "vits.safetensors", "heads": 6, "input_slots": ["protein", "nucleus"], "normalisation": {"mode": "self"}, "pixel_size_um": 0.206, "patch": 16}\n' >"$W/card.json"
printf '{"name": "one", "weights": "one.safetensors", "heads": 1, "input_slots": ["protein"], "normalisation": {"mode": "self"}, "pixel_size_um": 0.206, "patch": 16}\n' >"$W/card1.json"
{
  echo "id	dataset	label	split	group	protein	nucleus	pixel_size_um"
  n=${#OC[@]}
  for k in $(seq 0 $((n - 1))); do
    s=train; [ "$k" -eq $((n - 1)) ] && s=test
    printf 'oc%02d\topencell\tc%d\t%s\tg%d\t%s#0\t%s#0\t0.206\n' "$k" $((k % 2)) "$s" "$k" "${OC[$k]}" "${OC[$(((k + 1) % n))]}"
  done
} >"$W/oc.tsv"
{
  echo "id	dataset	label	split	group	protein	pixel_size_um"
  n=${#OC[@]}
  for k in $(seq 0 $((n - 1))); do
    s=train; [ "$k" -eq $((n - 1)) ] && s=test
    printf 'oc%02d\topencell\tc%d\t%s\tg%d\t%s#0\t0.206\n' "$k" $((k % 2)) "$s" "$k" "${OC[$k]}"
  done
} >"$W/oc1.tsv"
{
  echo "id	dataset	label	split	group	protein	pixel_size_um"
  printf 'hpa\thpa\tc0\ttrain\tg0\t%s\t0.08\n' "$HPA"
} >"$W/hpa1.tsv"

build() {   # tag manifest card level-options...: time a cache build, print its size
  local tag=$1 m=$2 card=$3; shift 3
  local t0 t1
  t0=$(date +%s.%N)
  "$P" cache build --manifest "$m" --model "$card" --cache "$W/$tag" --threads "$THREADS" "$@" >"$W/$tag.build.log" 2>&1 ||
    { echo "cache build $tag failed:" >&2; cat "$W/$tag.build.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "# cache $tag ($*): built in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s, $(du -sk "$W/$tag" | awk '{ printf "%.2f", $1 / 1024 }') MiB on disk"
}
compression_caches() {   # 1-channel caches of OpenCell and HPA
  build oc224 "$W/oc1.tsv" "$W/card1.json" --level tiles --tile 224 --size 224
  build oc512 "$W/oc1.tsv" "$W/card1.json" --level fov --size 512
  build hpa224 "$W/hpa1.tsv" "$W/card1.json" --level tiles --tile 224 --size 224
  build hpa512 "$W/hpa1.tsv" "$W/card1.json" --level fov --size 512
}
build a224 "$W/oc.tsv" "$W/card.json" --level tiles --tile 224 --size 224
build b512 "$W/oc.tsv" "$W/card.json" --level fov --size 512
if [ -n "${CACHES_ONLY:-}" ]; then
  compression_caches
  echo "# caches kept in $W"
  exit 0
fi

echo
echo "## reader: one thread (bench_cache_reader)"
"$R" --cache "$W/a224" --mode read --seconds "$SECS" | tee "$W/a_read.txt" | grep -v '^# fp32'
"$R" --cache "$W/a224" --mode finetune --seconds "$SECS" | tee "$W/a_ft.txt" | grep -E '^samples|^reader|^read_'
"$R" --cache "$W/b512" --mode read --seconds "$SECS" | tee "$W/b_read.txt" | grep -v '^# fp32'
"$R" --cache "$W/b512" --mode dino --seconds "$SECS" | tee "$W/b_dino.txt" | grep -E '^# views|^samples|^reader|^read_'

echo
echo "## consumer (a): protloc finetune --manifest --cache, ViT-S/16 224^2 x 2 channels, batch 32, $THREADS threads, $STEPS steps"
"$P" finetune --manifest "$W/oc.tsv" --model "$W/card.json" --cache "$W/a224" --level tiles --tile 224 --size 224 \
  --batch 32 --steps "$STEPS" --threads "$THREADS" --checkpoint-every 0 --drop-path 0 --seed 1 --out "$W/ft" \
  >"$W/ft.log" 2>&1 || { echo "finetune failed:" >&2; tail -20 "$W/ft.log" >&2; exit 1; }
echo "## consumer (b): bench_vit ViT-S/16 forward, $THREADS threads, batch 32, at 224^2 and 96^2"
"$BUILD/bench/bench_vit" --arch vit_small --size 224 --threads "$THREADS" --batch 32 --seconds 3 --no-gemm >"$W/v224.txt" 2>&1
"$BUILD/bench/bench_vit" --arch vit_small --size 96 --threads "$THREADS" --batch 32 --seconds 3 --no-gemm >"$W/v96.txt" 2>&1
grep -v '^#' "$W/v224.txt" | tail -1
grep -v '^#' "$W/v96.txt" | tail -1

$PY - "$W" <<'PYEOF'
import json, re, statistics, sys
w = sys.argv[1]
def rate(path, key):
    return float(re.search(rf"^{key} ([\d.]+)", open(path).read(), re.M).group(1))
def vit(path):   # images/s of the last data line of bench_vit
    rows = [l.split("\t") for l in open(path) if l.strip() and not l.startswith("#")]
    return float(rows[-1][3])
steps = [json.loads(l) for l in open(f"{w}/ft/train.jsonl") if l.strip()]
ips = [s["img_per_s"] for s in steps[1:]] or [s["img_per_s"] for s in steps]
train224 = statistics.median(ips)
rep = json.load(open(f"{w}/ft/report.json"))
rd = rep["execution"].get("reader", {})
a = rate(f"{w}/a_ft.txt", "reader_samples_per_s")
b = rate(f"{w}/b_dino.txt", "reader_samples_per_s")
f224, f96 = vit(f"{w}/v224.txt"), vit(f"{w}/v96.txt")
r = f224 / f96                      # time per 96^2 forward / time per 224^2 forward
units = 2 + 8 * r + 2 / 3           # 224^2-training-image equivalents per DINO sample
dino = train224 / units
print(f"\n- finetune steps (img/s, after the first): {', '.join(f'{v:.2f}' for v in ips)}; median {train224:.2f}")
print(f"- finetune execution.reader: {rd.get('images_per_second', float('nan')):.1f} images/s prepared by its reader "
      f"thread over {rd.get('batches')} batches (prepare {rd.get('prepare_seconds', 0):.2f} s), loop waited "
      f"{rd.get('loop_wait_seconds', 0):.3f} s")
print(f"- bench_vit forward: {f224:.2f} img/s at 224^2, {f96:.2f} img/s at 96^2 -> r = {r:.4f}; one DINO sample = "
      f"2 + 8 x {r:.4f} + 2/3 = {units:.3f} training-image equivalents at 224^2")
print("\n| load | reader (1 thread) samples/s | consumer samples/s | headroom | acceptance >= 3 |")
print("|---|---|---|---|---|")
print(f"| (a) fine-tuning, 224^2 canvas, read + pl_augment_image | {a:.1f} | {train224:.2f} (measured, ViT-S/16 "
      f"training) | {a / train224:.1f}x | {'yes' if a / train224 >= 3 else 'NO'} |")
print(f"| (b) DINO, 512^2 canvas, read + 2x224^2 + 8x96^2 views | {b:.1f} | {dino:.2f} (estimate: {train224:.2f} / "
      f"{units:.3f}) | {b / dino:.1f}x | {'yes' if b / dino >= 3 else 'NO'} |")
PYEOF

echo
echo "## compression (bench_cache_shuffle: every sample of a cache, zstd per sample with / without the byte shuffle)"
compression_caches
for t in a224 b512 oc224 oc512 hpa224 hpa512; do
  echo
  "$Z" --cache "$W/$t" --levels 1,3,9 | grep -v '^# fp32'
done
echo
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
