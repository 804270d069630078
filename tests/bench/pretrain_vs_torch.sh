#!/usr/bin/env bash
# Side-by-side DINO PRETRAINING-step benchmark (issue 23's acceptance): `protloc pretrain` vs facebookresearch/dino's
# own train_one_epoch step in PyTorch (tests/bench/dino_step_torch_bench.py) on the SAME backbone weights (`protloc
# model init`), the SAME DINOHead init (written by the torch script in DINO names, fed to protloc with --head-init) and
# the SAME fixed views (random normal G.npy / L.npy): ViT-S/16 + DINOHead(384, OUT_DIM), 2 x 224^2 + 8 x 96^2 views,
# global batch 16, drop path 0.1, AdamW, clip 3.0, DINOLoss with centering, EMA teacher, THREADS threads.
# Prints the CPU, the load, the measured FP32 FMA peak (bench_vit, as in finetune_vs_torch.sh), then a Markdown
# table: img/s (median of the timed steps; an image = one sample of the global batch with its 2 + LOCALS views),
# peak RSS, protloc / PyTorch ratio.
#
#   tests/bench/pretrain_vs_torch.sh [BUILD_DIR]      (default build/)
#   env: THREADS=2 BATCH=16 N=32 (images; N / BATCH steps per epoch) STEPS=3 (timed) WARMUP=1 (untimed, first)
#        CHANS=3 OUT_DIM=65536 LOCALS=8 GSIZE=224 LSIZE=96   TORCH_FIRST=1 (run PyTorch before protloc)
#
# Both sides: --warmup-epochs 0 (lr 5e-4 x BATCH / 256 from step 0) and --freeze-last-layer 0 (so the 65536-wide last
# layer is trained, and its AdamW update paid, at every step: the steady state; DINO's default freezes it in epoch 0
# only), no shuffle. protloc: the per-step img/s of OUT/train.jsonl times the step alone (batch fetch, teacher and
# student passes, loss, backward, clip, AdamW, EMA, center); the epoch-end checkpoint writes (done even with
# --checkpoint-every 0) are outside it; the median over the steps after WARMUP is used; report.json's whole-run figure
# is shown too. PyTorch: OMP_WAIT_POLICY=PASSIVE, glibc malloc (no LD_PRELOAD / GLIBC_TUNABLES), thread env set before
# import; img_per_s_median = BATCH / median timed step. Peak RSS of both from /usr/bin/time -v. protloc runs once per
# PRECISIONS entry (default "fp32 bf16"; bf16 = --precision bf16, AVX512-BF16 CPUs), PyTorch once per
# TORCH_PRECISIONS entry (default "fp32 bf16"; bf16 = torch.autocast('cpu', torch.bfloat16) around the teacher, the
# student and DINOLoss, where main_dino.py has its autocast); each protloc run is compared with PyTorch FP32 and with
# PyTorch at its own precision.
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
PROTLOC=$BUILD/protloc
BENCH=$BUILD/bench/bench_vit
PY=/usr/bin/python3
TIME=/usr/bin/time
THREADS=${THREADS:-2}
BATCH=${BATCH:-16}
N=${N:-32}
STEPS=${STEPS:-3}
WARMUP=${WARMUP:-1}
CHANS=${CHANS:-3}
OUT_DIM=${OUT_DIM:-65536}
LOCALS=${LOCALS:-8}
GSIZE=${GSIZE:-224}
LSIZE=${LSIZE:-96}
[ -x "$PROTLOC" ] || { echo "build first: $PROTLOC not found" >&2; exit 1; }
[ -x "$TIME" ] || { echo "$TIME (GNU time) is needed for peak RSS" >&2; exit 1; }
[ "$STEPS" -ge 1 ] && [ "$WARMUP" -ge 0 ] && [ "$N" -ge "$BATCH" ] || { echo "need STEPS >= 1, WARMUP >= 0, N >= BATCH" >&2; exit 2; }
TOTAL=$((WARMUP + STEPS))
SPE=$((N / BATCH))
EPOCHS=$(((TOTAL + SPE - 1) / SPE))
TOTAL=$((EPOCHS * SPE))          # protloc runs whole epochs: the torch side runs the same number of steps
STEPS=$((TOTAL - WARMUP))
W=$(mktemp -d "${TMPDIR:-/tmp}/pretrain-vs-torch-XXXXXX")
trap 'rm -rf "$W"' EXIT

echo "# DINO pretraining step: protloc $("$PROTLOC" --version 2>&1 | head -1 | cut -d' ' -f2-) vs PyTorch" \
     "$($PY -c 'import torch; print(torch.__version__)' 2>/dev/null) (facebookresearch/dino 7c446df), $(date -u +%FT%TZ)"
echo "# cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "# uptime before: $(uptime)"
echo "# model: ViT-S/16 (dim 384 depth 12 heads 6), $CHANS channels, DINOHead out_dim $OUT_DIM (hidden 2048, bottleneck" \
     "256, norm_last_layer); views 2 x ${GSIZE}^2 + $LOCALS x ${LSIZE}^2; global batch $BATCH, $N images ($SPE steps/epoch)," \
     "$EPOCHS epochs; $THREADS thread(s); $WARMUP warm-up + $STEPS timed steps; AdamW, drop path 0.1, clip 3.0," \
     "freeze-last-layer 0"

"$PROTLOC" -q model init --dim 384 --depth 12 --heads 6 --patch 16 --in-chans "$CHANS" --img-size "$GSIZE" \
  --out "$W/S.safetensors"
if [ -x "$BENCH" ]; then
  "$BENCH" --model "$W/S.safetensors" --size "$GSIZE" --threads "$THREADS" --batch 1 --seconds 0.2 --no-gemm \
    >"$W/peak.txt" 2>&1 || true
  grep '^# fp32 fma peak' "$W/peak.txt" || echo "# fp32 fma peak: bench_vit failed ($(tail -1 "$W/peak.txt"))"
else
  echo "# fp32 fma peak: not measured ($BENCH not built)"
fi

# the head init (DINO's, by torch, DINO names) and the views
env -u LD_PRELOAD -u GLIBC_TUNABLES OMP_WAIT_POLICY=PASSIVE $PY "$SRC/tests/bench/dino_step_torch_bench.py" \
  --write-head "$W/H.safetensors" --chans "$CHANS" --out-dim "$OUT_DIM" --threads "$THREADS"
$PY - "$W" "$N" "$CHANS" "$GSIZE" "$LOCALS" "$LSIZE" <<'PYEOF'
import sys
import numpy as np
w, n, c, g, nl, l = sys.argv[1], *map(int, sys.argv[2:])
rng = np.random.default_rng(0)
np.save(f"{w}/G.npy", rng.standard_normal((n, 2, c, g, g), dtype=np.float32))
np.save(f"{w}/L.npy", rng.standard_normal((n, nl, c, l, l), dtype=np.float32))
PYEOF

# protloc, 1 rank x THREADS threads
PT=(pretrain --model "$W/S.safetensors" --heads 6 --head-init "$W/H.safetensors" --global-views "$W/G.npy"
    --local-views "$W/L.npy" --epochs "$EPOCHS" --batch "$BATCH" --drop-path 0.1 --threads "$THREADS"
    --warmup-epochs 0 --freeze-last-layer 0 --no-shuffle --checkpoint-every 0)
echo "# protloc ${PT[*]} --precision P --out \$W/protloc-P" | sed "s|$W/|\$W/|g"
PRECISIONS=${PRECISIONS:-fp32 bf16}
run_protloc() {
  local p
  for p in $PRECISIONS; do
    echo "# protloc $p start: $(uptime)"
    $TIME -v -o "$W/time_protloc_$p.txt" "$PROTLOC" "${PT[@]}" --precision "$p" --out "$W/protloc-$p" \
      >"$W/protloc-$p.log" 2>&1 || { echo "protloc pretrain --precision $p failed:" >&2; cat "$W/protloc-$p.log" >&2; exit 1; }
  done
}

# PyTorch, same weights / head / views / threads / steps (glibc malloc: nothing preloaded, no tunables), at each of
# TORCH_PRECISIONS (default "fp32 bf16": FP32, and bf16 = torch.autocast('cpu', torch.bfloat16) where main_dino.py
# puts its autocast)
TORCH_PRECISIONS=${TORCH_PRECISIONS:-fp32 bf16}
run_torch() {
  local tp
  for tp in $TORCH_PRECISIONS; do
    echo "# PyTorch $tp start: $(uptime)"
    env -u LD_PRELOAD -u GLIBC_TUNABLES OMP_WAIT_POLICY=PASSIVE $TIME -v -o "$W/time_torch_$tp.txt" \
      $PY "$SRC/tests/bench/dino_step_torch_bench.py" --weights "$W/S.safetensors" --head "$W/H.safetensors" \
      --global-views "$W/G.npy" --local-views "$W/L.npy" --out-dim "$OUT_DIM" --batch "$BATCH" --threads "$THREADS" \
      --warmup "$WARMUP" --steps "$STEPS" --epochs "$EPOCHS" --drop-path 0.1 --freeze-last-layer 0 \
      --autocast "$([ "$tp" = bf16 ] && echo bf16 || echo off)" >"$W/torch_$tp.json" 2>"$W/torch_$tp.log" ||
      { echo "PyTorch benchmark ($tp) failed:" >&2; cat "$W/torch_$tp.log" >&2; exit 1; }
  done
}
if [ "${TORCH_FIRST:-0}" = 1 ]; then run_torch; run_protloc; else run_protloc; run_torch; fi
for tp in $TORCH_PRECISIONS; do sed "s/^/#   torch $tp: /" "$W/torch_$tp.log" | grep 'step' || true; done

$PY - "$W" "$WARMUP" "$BATCH" "$THREADS" "$CHANS" "$OUT_DIM" "$LOCALS" "$GSIZE" "$LSIZE" "$PRECISIONS" "$TORCH_PRECISIONS" <<'PYEOF'
import json, re, statistics, sys
w, warmup, batch, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
chans, out_dim, nloc, gsize, lsize = map(int, sys.argv[5:10])
precisions = sys.argv[10].split()
torch_precisions = sys.argv[11].split()

# FLOP per image of the global batch (2 x MACs): ViT-S/16 forward per view (patch embedding + 12 blocks of
# qkv/proj/MLP = 12 D^2 and attention = 2 T D MACs per token), the DINOHead (D-2048-2048-256-out_dim) per view;
# teacher: forward of the 2 globals; student: forward + backward (~3 x forward) of all 2 + nloc views
D, depth, patch = 384, 12, 16
def vit_mac(size):
    T = (size // patch) ** 2 + 1
    return (T - 1) * chans * patch * patch * D + depth * T * (12 * D * D + 2 * T * D)
head_mac = D * 2048 + 2048 * 2048 + 2048 * 256 + 256 * out_dim
flop_img = 2 * (2 * (vit_mac(gsize) + head_mac) + 3 * (2 * vit_mac(gsize) + nloc * vit_mac(lsize) + (2 + nloc) * head_mac)) / 1e9
peak = None
try:
    for l in open(f"{w}/peak.txt"):
        m = re.match(r"# fp32 fma peak threads=(\d+): ([\d.]+)", l)
        if m and int(m.group(1)) == threads: peak = float(m.group(2))
except OSError:
    pass
pct = lambda ips: f"{100 * ips * flop_img / peak:.0f}%" if peak else "n/a"

def gnu_time(path):
    t = open(path).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", t)
    return rss, int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))

tor = {tp: json.loads(open(f"{w}/torch_{tp}.json").read().strip().splitlines()[-1]) for tp in torch_precisions}
tor_time = {tp: gnu_time(f"{w}/time_torch_{tp}.txt") for tp in torch_precisions}
t = tor[torch_precisions[0]]
t_rss, t_wall = tor_time[torch_precisions[0]]
tm = t["img_per_s_median"]
same = lambda prec, ips: f"{ips / tor[prec]['img_per_s_median']:.2f}x" if prec in tor else "-"
print(f"\n| impl | threads | img/s (median step) | img/s (mean step) | step s (median) | ~% of FMA peak | peak RSS MiB | "
      f"wall s | img/s vs PyTorch {torch_precisions[0]} | vs PyTorch same precision |")
print("|---|---|---|---|---|---|---|---|---|---|")
rows = {}
for prec in precisions:
    steps = [json.loads(l) for l in open(f"{w}/protloc-{prec}/train.jsonl") if '"loss"' in l]
    timed = [s["img_per_s"] for s in steps[warmup:]]
    p_rss, p_wall = gnu_time(f"{w}/time_protloc_{prec}.txt")
    p_med = statistics.median(timed)
    p_mean = batch / statistics.fmean(batch / v for v in timed)
    rows[prec] = (p_med, p_rss, steps, timed)
    print(f"| protloc pretrain {prec} | {threads} | {p_med:.3f} | {p_mean:.3f} | {batch / p_med:.2f} | "
          f"{pct(p_med) if prec == 'fp32' else 'n/a'} | {p_rss:.0f} | {p_wall:.0f} | {p_med / tm:.2f}x | "
          f"{same(prec, p_med)} |")
for tp, u in tor.items():
    um = u["img_per_s_median"]
    print(f"| PyTorch {u['torch']} DINO step {'bf16 autocast' if tp == 'bf16' else 'fp32'} | {threads} | {um:.3f} | "
          f"{u['img_per_s']:.3f} | {u['step_s_median']:.2f} | {pct(um) if tp == 'fp32' else 'n/a'} | "
          f"{tor_time[tp][0]:.0f} | {tor_time[tp][1]:.0f} | {um / tm:.2f}x | 1.00x |")
for prec, (p_med, p_rss, steps, timed) in rows.items():
    print(f"\n- protloc {prec}: timed {', '.join(f'{v:g}' for v in timed)} img/s; loss {steps[0]['loss']:.5f} -> "
          f"{steps[-1]['loss']:.5f}")
sp = t["split_s_median"]
print(f"- PyTorch: median split s: " + ", ".join(f"{k} {v:.2f}" for k, v in sp.items()) +
      f"; warm-up {t['warmup_step_s']} s, timed {t['timed_step_s']} s; loss {t['loss_first']:.5f} -> "
      f"{t['loss_last']:.5f}; own ru_maxrss {t['peak_rss_mib']} MiB; OMP_WAIT_POLICY={t['omp_wait_policy']}, "
      f"allocator {t['allocator']}")
if "fp32" in rows:
    r, p_rss = rows["fp32"][0] / tm, rows["fp32"][1]
    print(f"- target FP32 img/s >= 1.3x PyTorch: {r:.2f}x -> {'MET' if r >= 1.3 else 'NOT met'}; peak RSS <= "
          f"PyTorch's: {p_rss:.0f} vs {t_rss:.0f} MiB -> {'MET' if p_rss <= t_rss else 'NOT met'}")
if "bf16" in rows:
    r = rows["bf16"][0] / tm
    print(f"- target BF16 img/s >= 2x PyTorch FP32: {r:.2f}x -> {'MET' if r >= 2 else 'NOT met'}")
print(f"- ~% of FMA peak: img/s x {flop_img:.1f} GFLOP/image (2 x MACs: teacher forward of the 2 globals, student "
      f"~3 x forward of all {2 + nloc} views, the DINOHead included) / the FP32 FMA peak measured above")
PYEOF
echo
echo "# uptime after: $(uptime)"
