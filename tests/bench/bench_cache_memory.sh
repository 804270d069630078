#!/usr/bin/env bash
# Training-cache memory benchmark (docs/performance.md "Training cache"): peak RSS per rank of `protloc finetune
# --manifest --cache DIR` (2 ranks, the largest rank's /usr/bin/time -v maximum resident set) for growing numbers of
# training samples, next to the same run without --cache (every canvas in RAM on every rank) where that fits. The
# acceptance is about data memory, so the model is tiny (dim 64, 1 block, patch 16) and the run does 2 optimizer
# steps; the samples are 64 x 64 tiles (--level tiles --tile 64 --size 64) of 1024 x 1024 synthetic OpenCell FOVs
# (`protloc synth`, 16 distinct files repeated under new ids: 256 tiles per item). The cache is built once per size
# by `protloc cache build` (timed apart), then finetune reuses it. Prints the CPU, the load, the FP32 FMA peak measured
# in the same run (bench_vit), the file system of the cache, and a table; the last line is the ratio of the cached
# peak RSS at the largest size to the smallest (acceptance: within 10%).
# Usage: tests/bench/bench_cache_memory.sh [BUILD_DIR] [SAMPLES...]     (defaults: build 2000 20000 200000)
#   env: NP=2 INMEM_MAX=20000 (largest sample count also run without --cache) TMPDIR (where the caches go)
#        DIM=64 DEPTH=1 HEADS=1 (the ViT; e.g. DIM=384 DEPTH=12 HEADS=6 for ViT-S width, a realistic baseline)
#        KEEP=1 (keep the work folder: manifests m.SAMPLES.tsv, caches cache.SAMPLES, card.json, for a closer look)
set -euo pipefail
BUILD=${1:-build}
shift $(( $# > 1 ? 1 : $# ))
SAMPLES=("$@")
[ ${#SAMPLES[@]} -gt 0 ] || SAMPLES=(2000 20000 200000)
NP=${NP:-2}
INMEM_MAX=${INMEM_MAX:-20000}
P="$(cd "$BUILD" && pwd)/protloc"
TIME=/usr/bin/time
[ -x "$P" ] || { echo "build first: $P not found" >&2; exit 1; }
[ -x "$TIME" ] || { echo "$TIME (GNU time) is needed" >&2; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
W=$(mktemp -d "${TMPDIR:-/tmp}/protloc-cachemem-XXXXXX")
if [ -n "${KEEP:-}" ]; then echo "# KEEP: work folder $W kept (caches in $W/cache.SAMPLES)"; else trap 'rm -rf "$W"' EXIT; fi
SIDE=1024 TILE=64
PER_ITEM=$(( (SIDE / TILE) * (SIDE / TILE) ))

"$P" synth --kind opencell --classes 4 --per-class 4 --seed 1 --size $SIDE --out "$W/syn" >/dev/null 2>&1
DIM=${DIM:-64} DEPTH=${DEPTH:-1} HEADS=${HEADS:-1}
"$P" -q model init --dim "$DIM" --depth "$DEPTH" --heads "$HEADS" --patch 16 --in-chans 2 --img-size $TILE --seed 1 --out "$W/m.safetensors"
printf '{"name": "tiny", "weights": "m.safetensors", "heads": '"$HEADS"', "input_slots": ["protein", "nucleus"], "normalisation": {"mode": "self"}, "pixel_size_um": 0.206, "patch": 16}\n' >"$W/card.json"

echo "# protloc training cache: peak RSS per rank vs training samples (bench_cache_memory.sh), $(date -u +%FT%TZ)"
echo "# cpu: $(lscpu | sed -n 's/^Model name:[[:space:]]*//p') (family $(lscpu | sed -n 's/^CPU family:[[:space:]]*//p') model $(lscpu | sed -n 's/^Model:[[:space:]]*//p')), $(nproc) cores; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
[ -x "$BUILD/bench/bench_vit" ] && "$BUILD/bench/bench_vit" --arch vit_tiny --size 32 --seconds 0.2 --threads 1,"$(nproc)" --batch 1 | grep '^# fp32 fma peak' || true
echo "# cache file system: $(df -T "$W" | awk 'NR == 2 { print $2 " (" $1 " on " $7 ")" }')"
echo "# $NP ranks x 1 thread; ${TILE}x${TILE} tiles of ${SIDE}x${SIDE} 2-channel FOVs ($PER_ITEM per item), ViT dim $DIM depth $DEPTH heads $HEADS;" \
     "finetune --steps 2 --batch 32 --checkpoint-every 0; items i % 50 == 1 are the test split, the rest train"
printf '%9s %6s %13s %10s %10s %19s %21s %10s\n' samples items cache_build_s cache_MiB raw_MiB peak_rss_cache_MiB \
  peak_rss_inmemory_MiB ft_cache_s

# peak RSS of the largest rank of an mpirun (each rank under GNU time); $1: tag, rest: protloc arguments
peak() {
  local tag=$1; shift
  rm -f "$W"/time."$tag".*
  mpirun --bind-to none -np "$NP" sh -c "exec $TIME -v -o $W/time.$tag.\$OMPI_COMM_WORLD_RANK $P \"\$@\"" sh "$@" \
    >"$W/$tag.out" 2>&1 || { echo "failed: protloc $*" >&2; tail -20 "$W/$tag.out" >&2; exit 1; }
  cat "$W"/time."$tag".* | sed -n 's/.*Maximum resident set size (kbytes): \([0-9]*\).*/\1/p' |
    awk '$1 > m { m = $1 } END { printf "%.1f", m / 1024 }'
}
now() { date +%s.%N; }

first_rss= last_rss= first_n= last_n=
for want in "${SAMPLES[@]}"; do
  items=$(( (want + PER_ITEM - 1) / PER_ITEM ))
  {
    echo "id	dataset	label	split	group	nucleus	protein	pixel_size_um"
    tail -n +3 "$W/syn/manifest.tsv" | cut -f3,6,7 >"$W/src.tsv"
    n_src=$(wc -l <"$W/src.tsv")
    awk -F'\t' -v items="$items" -v n="$n_src" -v d="$W/syn" '{ lab[NR - 1] = $1; nuc[NR - 1] = $2; pro[NR - 1] = $3 }
      END { for (i = 0; i < items; i++) { k = i % n; s = (i % 50 == 1) ? "test" : "train"
              printf "it%07d\tbench\t%s\t%s\tg%d\t%s/%s\t%s/%s\t0.206\n", i, lab[k], s, i, d, nuc[k], d, pro[k] } }' "$W/src.tsv"
  } >"$W/m.tsv"
  C=(--manifest "$W/m.tsv" --model "$W/card.json" --level tiles --tile $TILE --size $TILE)
  FT=(finetune "${C[@]}" --steps 2 --batch 32 --threads 1 --checkpoint-every 0 --seed 1)
  rm -rf "$W/cache" "$W/ft" "$W/ftm"
  t0=$(now)
  mpirun --bind-to none -np "$NP" "$P" cache build "${C[@]}" --cache "$W/cache" --threads 1 >"$W/build.out" 2>&1 ||
    { echo "cache build failed" >&2; tail -20 "$W/build.out" >&2; exit 1; }
  t1=$(now)
  t2=$(now)
  rss_c=$(peak cache "${FT[@]}" --cache "$W/cache" --out "$W/ft")
  t3=$(now)
  n=$(/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(r["data"]["n_train"] + r["data"].get("n_test", 0) + r["data"].get("n_val", 0))' "$W/ft/report.json" 2>/dev/null || echo "?")
  cmib=$(du -sm "$W/cache" | cut -f1)
  raw=$(awk -v n="$n" -v t=$TILE 'BEGIN { if (n + 0 > 0) printf "%.0f", n * 2 * t * t * 4 / 1048576; else print "?" }')
  rss_m="—"
  if [ "$want" -le "$INMEM_MAX" ]; then rss_m=$(peak inmem "${FT[@]}" --out "$W/ftm"); fi
  [ -z "$first_rss" ] && first_rss=$rss_c first_n=$n
  last_rss=$rss_c last_n=$n
  printf '%9s %6s %13.1f %10s %10s %19s %21s %10.1f\n' "$n" "$items" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
    "$cmib" "$raw" "$rss_c" "$rss_m" "$(awk -v a="$t2" -v b="$t3" 'BEGIN { print b - a }')"
  if [ -n "${KEEP:-}" ]; then cp "$W/m.tsv" "$W/m.$want.tsv"; mv "$W/cache" "$W/cache.$want"; fi
done
echo "# cached peak RSS, largest / smallest size: $(awk -v a="$first_rss" -v b="$last_rss" 'BEGIN { printf "%.3f", b / a }') (acceptance: <= 1.10);" \
     "growth $(awk -v a="$first_rss" -v b="$last_rss" -v m="$first_n" -v n="$last_n" 'BEGIN { if (n > m) printf "%.1f", (b - a) * 1048576 / (n - m); else print "?" }') bytes per sample"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
