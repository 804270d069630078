#!/usr/bin/env bash
# Side-by-side TRAINING benchmark: `protloc finetune` vs a plain-PyTorch DINO ViT + linear head
# (tests/bench/vit_train_torch_bench.py) on the same safetensors backbone, batch, thread count, optimizer
# (AdamW, lr 1e-4, DINO's weight-decay groups), no augmentation and no drop path. One step = forward +
# cross-entropy + backward + optimizer update on BATCH images. Prints the CPU, the load, the measured FP32 FMA
# peak (bench_vit, as in vit_vs_torch.sh), then a Markdown table: img/s (median of the timed steps), peak RSS,
# protloc / PyTorch ratio. With MPI=1 also protloc with 2 ranks x 1 thread (--reduce tree and allreduce).
#
#   tests/bench/finetune_vs_torch.sh [BUILD_DIR]      (default build/)
#   env: THREADS=2 BATCH=32 STEPS=4 (timed) WARMUP=1 (untimed, first) CLASSES=17
#        ENGINES="openblas:fp32 onednn:fp32 onednn:bf16" (protloc's --kernels:--precision, one run each)
#        TORCH_PRECISIONS="fp32 bf16" (PyTorch FP32, and its BF16 autocast: torch.autocast('cpu', torch.bfloat16);
#        " " runs protloc alone)
#        PROFILE=1: protloc --profile (per-phase table of every engine) and PyTorch's profiler (op self time by phase)
#        over one extra step, printed after the table
#        DIM=384 DEPTH=12 HEADS=6 PATCH=16 SIZE=224 CHANS=3 (ViT-S/16, 224 x 224, RGB)   MPI=0|1
#
# protloc: the per-step img/s of OUT/train.jsonl times the step alone (data fetch + forward + backward +
# optimizer; checkpoint writes, which `finetune` still does at every epoch end and at the end even with
# --checkpoint-every 0, are outside it); the figure used is the median over the steps after WARMUP. The
# whole-run figure (report.json results.img_per_s: all steps incl. warm-up and checkpoint writes) is shown too.
# PyTorch: OMP_WAIT_POLICY=PASSIVE, glibc malloc (no LD_PRELOAD / GLIBC_TUNABLES), one fixed random batch;
# its img_per_s_median = BATCH / median timed step time. Peak RSS of both from /usr/bin/time -v (for mpirun:
# the largest single process, i.e. one rank). The two sides train different random inputs and head inits
# (the torch script draws its own): the losses are only a sanity check (both ~ ln CLASSES at the start).
set -euo pipefail
SRC=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$SRC/build}
PROTLOC=$BUILD/protloc
BENCH=$BUILD/bench/bench_vit
PY=/usr/bin/python3
TIME=/usr/bin/time
THREADS=${THREADS:-2}
BATCH=${BATCH:-32}
STEPS=${STEPS:-4}
WARMUP=${WARMUP:-1}
CLASSES=${CLASSES:-17}
DIM=${DIM:-384} DEPTH=${DEPTH:-12} HEADS=${HEADS:-6} PATCH=${PATCH:-16} SIZE=${SIZE:-224} CHANS=${CHANS:-3}
MPI=${MPI:-0}
ENGINES=${ENGINES:-openblas:fp32 onednn:fp32 onednn:bf16}
TORCH_PRECISIONS=${TORCH_PRECISIONS:-fp32 bf16}
PROFILE=${PROFILE:-0}
PROF_ARG=(); TORCH_PROF=()
[ "$PROFILE" = 1 ] && { PROF_ARG=(--profile); TORCH_PROF=(--profile); }
[ -x "$PROTLOC" ] || { echo "build first: $PROTLOC not found" >&2; exit 1; }
[ -x "$TIME" ] || { echo "$TIME (GNU time) is needed for peak RSS" >&2; exit 1; }
[ "$STEPS" -ge 1 ] && [ "$WARMUP" -ge 0 ] || { echo "STEPS must be >= 1, WARMUP >= 0" >&2; exit 2; }
TOTAL=$((WARMUP + STEPS))
W=$(mktemp -d "${TMPDIR:-/tmp}/finetune-vs-torch-XXXXXX")
trap 'rm -rf "$W"' EXIT

echo "# ViT training: protloc $("$PROTLOC" --version 2>&1 | head -1 | cut -d' ' -f2-) vs PyTorch $($PY -c 'import torch; print(torch.__version__)' 2>/dev/null), $(date -u +%FT%TZ)"
echo "# cpu: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
echo "# uptime before: $(uptime)"
echo "# model: dim $DIM depth $DEPTH heads $HEADS patch $PATCH, ${SIZE}x${SIZE}x$CHANS, $CLASSES classes;" \
     "batch $BATCH, $THREADS thread(s), $WARMUP warm-up + $STEPS timed steps, AdamW lr 1e-4, no augmentation, drop path 0"

# measured FP32 FMA peak (fma_peak.h through bench_vit), plus the model's forward GFLOP/image from the same tool
"$PROTLOC" -q model init --dim "$DIM" --depth "$DEPTH" --heads "$HEADS" --patch "$PATCH" --in-chans "$CHANS" \
  --img-size "$SIZE" --out "$W/w.safetensors"
fwd_gflop=
peak_threads=$THREADS
[ "$MPI" = 1 ] && [ "$THREADS" != 2 ] && peak_threads=$THREADS,2   # 2 ranks x 1 thread use 2 cores
if [ -x "$BENCH" ]; then
  "$BENCH" --model "$W/w.safetensors" --size "$SIZE" --threads "$peak_threads" --batch 1 --seconds 0.2 --no-gemm \
    >"$W/peak.txt" 2>&1 || true
  grep '^# fp32 fma peak' "$W/peak.txt" || echo "# fp32 fma peak: bench_vit failed ($(tail -1 "$W/peak.txt"))"
  fwd_gflop=$(grep -o '[0-9.]* GFLOP/image' "$W/peak.txt" | awk '{print $1}' || true)
else
  echo "# fp32 fma peak: not measured ($BENCH not built)"
fi

# same inputs for every protloc run: 2 batches of random images (so one epoch = 2 steps) and class ids
$PY - "$W" "$BATCH" "$CHANS" "$SIZE" "$CLASSES" <<'PYEOF'
import sys
import numpy as np
w, b, c, s, k = sys.argv[1], *map(int, sys.argv[2:])
rng = np.random.default_rng(0)
np.save(f"{w}/x.npy", rng.standard_normal((2 * b, c, s, s), dtype=np.float32))
np.save(f"{w}/y.npy", rng.integers(0, k, 2 * b).astype(np.int64))
PYEOF

FT=(finetune --model "$W/w.safetensors" --input "$W/x.npy" --labels "$W/y.npy" --classes "$CLASSES"
    --steps "$TOTAL" --batch "$BATCH" --no-augment --drop-path 0 --checkpoint-every 0 --optimizer adamw --lr 1e-4)

# protloc, 1 rank x THREADS threads, once per engine (the first is "protloc", the reference of the MPI rows)
TAGS=
for e in $ENGINES; do
  tag=protloc_${e//:/_}
  [ -z "$TAGS" ] && tag=protloc
  $TIME -v -o "$W/time_$tag.txt" "$PROTLOC" "${FT[@]}" --threads "$THREADS" --kernels "${e%%:*}" --precision "${e##*:}" \
    "${PROF_ARG[@]}" --out "$W/$tag" >"$W/$tag.log" 2>&1 || { echo "protloc finetune ($e) failed:" >&2; cat "$W/$tag.log" >&2; exit 1; }
  TAGS="$TAGS $tag"
done

# PyTorch, same weights / batch / threads / steps (glibc malloc: nothing preloaded, no tunables), FP32 and BF16 autocast
for tp in $TORCH_PRECISIONS; do
  ac=off; [ "$tp" = bf16 ] && ac=bf16
  env -u LD_PRELOAD -u GLIBC_TUNABLES OMP_WAIT_POLICY=PASSIVE $TIME -v -o "$W/time_torch_$tp.txt" \
    $PY "$SRC/tests/bench/vit_train_torch_bench.py" --weights "$W/w.safetensors" --size "$SIZE" --classes "$CLASSES" \
    --threads "$THREADS" --batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP" --drop-path 0 --optimizer adamw --lr 1e-4 \
    --autocast "$ac" "${TORCH_PROF[@]}" >"$W/torch_$tp.json" 2>"$W/torch_$tp.log" ||
    { echo "PyTorch benchmark ($tp) failed:" >&2; cat "$W/torch_$tp.log" >&2; exit 1; }
done

# optional: protloc with 2 MPI ranks x 1 thread, both gradient reductions
MPI_RUNS=
if [ "$MPI" = 1 ]; then
  for red in tree allreduce; do
    $TIME -v -o "$W/time_mpi_$red.txt" mpirun --allow-run-as-root --oversubscribe -np 2 \
      "$PROTLOC" "${FT[@]}" --threads 1 --reduce "$red" --out "$W/mpi_$red" >"$W/mpi_$red.log" 2>&1 ||
      { echo "mpirun protloc finetune --reduce $red failed:" >&2; cat "$W/mpi_$red.log" >&2; exit 1; }
    MPI_RUNS="$MPI_RUNS $red"
  done
fi

$PY - "$W" "$WARMUP" "$BATCH" "$THREADS" "${fwd_gflop:-0}" "$MPI_RUNS" "$TAGS" "$TORCH_PRECISIONS" <<'PYEOF'
import json, re, statistics, sys
w, warmup, batch, threads, fwd_gflop, mpi_runs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), \
    float(sys.argv[5]), sys.argv[6].split()
tags = sys.argv[7].split()
torch_precisions = sys.argv[8].split()

def gnu_time(path):
    t = open(path).read()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    m = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", t)
    wall = int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))
    return rss, wall

def protloc(tag):
    steps = [json.loads(l) for l in open(f"{w}/{tag}/train.jsonl") if l.strip()]
    timed = [s["img_per_s"] for s in steps[warmup:]]
    rep = json.load(open(f"{w}/{tag}/report.json"))
    rss, wall = gnu_time(f"{w}/time_{tag}.txt")
    return dict(median=statistics.median(timed), mean=batch / statistics.fmean(batch / v for v in timed),
                whole=rep["results"]["img_per_s"], rss=rss, wall=wall, loss=(rep["results"]["first_loss"],
                rep["results"]["last_loss"]), ex=rep["execution"], mb=rep["options"]["micro_batch"],
                warm=[s["img_per_s"] for s in steps[:warmup]], timed=timed)

runs = {tag: protloc(tag) for tag in tags}
p = runs["protloc"]
tor = {tp: json.loads(open(f"{w}/torch_{tp}.json").read().strip().splitlines()[-1]) for tp in torch_precisions}
tor_time = {tp: gnu_time(f"{w}/time_torch_{tp}.txt") for tp in torch_precisions}
# the reference of the ratio column: PyTorch at the first precision (none with TORCH_PRECISIONS=" ": protloc alone)
t = tor[torch_precisions[0]] if torch_precisions else None
ref_name = torch_precisions[0] if torch_precisions else "-"
peak = {}
try:
    for l in open(f"{w}/peak.txt"):
        m = re.match(r"# fp32 fma peak threads=(\d+): ([\d.]+)", l)
        if m: peak[int(m.group(1))] = float(m.group(2))
except OSError:
    pass

def pct(ips, thr):   # training ~ 3 x forward FLOPs (forward + input grads + weight grads), optimizer not counted
    return f"{100 * ips * 3 * fwd_gflop / peak[thr]:.0f}%" if fwd_gflop and thr in peak else "n/a"

print(f"\n| impl | ranks x threads | img/s (median step) | img/s (mean step) | step s (median) | ~% of FMA peak | "
      f"peak RSS MiB | wall s | img/s / PyTorch {ref_name} | / PyTorch same precision |")
print("|---|---|---|---|---|---|---|---|---|---|")
same = lambda prec, ips: f"{ips / tor[prec]['img_per_s_median']:.2f}" if prec in tor else "-"
tm = t["img_per_s_median"] if t else None
ratio = lambda ips: f"{ips / tm:.2f}" if tm else "-"
for tag, q in runs.items():
    print(f"| protloc {q['ex'].get('kernels')} {q['ex'].get('precision', 'fp32')} | 1 x {threads} | {q['median']:.2f} | "
          f"{q['mean']:.2f} | {batch / q['median']:.3f} | {pct(q['median'], threads)} | {q['rss']:.1f} | {q['wall']:.1f} | "
          f"{ratio(q['median'])} | {same(q['ex'].get('precision', 'fp32'), q['median'])} |")
for tp, u in tor.items():
    um = u["img_per_s_median"]
    print(f"| pytorch {u['torch']} {'bf16 autocast' if tp == 'bf16' else 'fp32'} | 1 x {threads} | {um:.2f} | "
          f"{u['img_per_s']:.2f} | {u['step_s_median']:.3f} | {pct(um, threads)} | {tor_time[tp][0]:.1f} | "
          f"{tor_time[tp][1]:.1f} | {ratio(um)} | 1.00 |")
mp = {r: protloc(f"mpi_{r}") for r in mpi_runs}
for r, m in mp.items():
    print(f"| protloc mpirun --reduce {r} | 2 x 1 | {m['median']:.2f} | {m['mean']:.2f} | {batch / m['median']:.3f} | "
          f"{pct(m['median'], 2)} | {m['rss']:.1f} (largest rank) | {m['wall']:.1f} | {ratio(m['median'])} |")

print(f"\n- protloc whole run (report.json results.img_per_s: all {warmup + len(p['timed'])} steps incl. warm-up and "
      f"the checkpoint writes at epoch ends): {p['whole']:.2f} img/s; warm-up step(s): "
      f"{', '.join(f'{v:g}' for v in p['warm']) or '-'} img/s; timed steps: {', '.join(f'{v:g}' for v in p['timed'])} img/s")
print(f"- protloc: kernels {p['ex'].get('kernels')}, micro-batch {p['mb']}, memory/rank "
      f"{p['ex'].get('memory_bytes_per_rank', 0) / 1048576:.0f} MiB (own estimate), loss {p['loss'][0]:.4f} -> "
      f"{p['loss'][1]:.4f}; its RSS includes the whole input file ({2 * batch} images)")
if t: print(f"- PyTorch: fwd/bwd/opt median {t['fwd_s_median']:.3f}/{t['bwd_s_median']:.3f}/{t['opt_s_median']:.3f} s, "
      f"MKLDNN {t['mkldnn']}, OMP_WAIT_POLICY={t['omp_wait_policy']}, allocator {t['allocator']}, "
      f"GLIBC_TUNABLES={t['glibc_tunables']}, loss {t['loss_first']:.4f} -> {t['loss_last']:.4f}, "
      f"own ru_maxrss {t['peak_rss_mib']} MiB")
if fwd_gflop:
    print(f"- ~% of FMA peak: img/s x 3 x {fwd_gflop:.2f} forward GFLOP/image (bench_vit) / the FMA peak at "
          f"{threads} thread(s){' (2 for the MPI rows)' if mpi_runs else ''}; the optimizer update and the loss are not counted")
for r, m in mp.items():
    print(f"- MPI --reduce {r}: 2 ranks x 1 thread = {m['median']:.2f} img/s vs 1 rank x {threads} threads = "
          f"{p['median']:.2f} img/s ({m['median'] / p['median']:.2f}x); whole run {m['whole']:.2f} img/s; "
          f"loss {m['loss'][0]:.4f} -> {m['loss'][1]:.4f}; timed steps {', '.join(f'{v:g}' for v in m['timed'])}")
fp32 = [q["median"] for q in runs.values() if q["ex"].get("precision", "fp32") == "fp32"]
for tag, q in runs.items():
    if q["ex"].get("precision") == "bf16" and fp32:
        print(f"- BF16 fine-tuning ({q['ex'].get('kernels')}): {q['median']:.2f} img/s = {q['median'] / max(fp32):.2f}x the "
              f"fastest FP32 run ({max(fp32):.2f} img/s); loss {q['loss'][0]:.4f} -> {q['loss'][1]:.4f}")
for tag, q in runs.items():   # PROFILE=1: protloc's per-phase tables (rank 0, steps after the first)
    pr = q["ex"].get("profile")
    if pr:
        print(f"\n### protloc {q['ex'].get('kernels')} {q['ex'].get('precision', 'fp32')}: {pr['ms_per_step']:.0f} ms/step "
              f"({pr['steps']} steps profiled)\n\n| phase | ms/step | share | GFLOP/s |\n|---|---:|---:|---:|")
        for e in pr["phases"]:
            if e["ms_per_step"] > 0.05 or e["phase"] == "rest of the step":
                print(f"| {e['phase']} | {e['ms_per_step']:.1f} | {100 * e['share']:.1f}% | "
                      f"{e['gflop_per_s']:.1f} |" if e["gflop_per_s"] else
                      f"| {e['phase']} | {e['ms_per_step']:.1f} | {100 * e['share']:.1f}% | |")
for tp, u in tor.items():
    if u.get("profile"):
        print(f"\n### PyTorch {tp}{' autocast' if tp == 'bf16' else ''}: {u['profile_ms']:.0f} ms of op self time in one "
              f"profiled step\n\n| phase (torch ops) | ms | share |\n|---|---:|---:|")
        for e in u["profile"]:
            print(f"| {e['phase']} | {e['ms']:.1f} | {100 * e['share']:.1f}% |")
if mp and "tree" in mp:
    print(f"- last loss, 1 rank vs 2 ranks --reduce tree: {p['loss'][1]!r} vs {mp['tree']['loss'][1]!r} "
          f"({'identical' if p['loss'][1] == mp['tree']['loss'][1] else 'DIFFERENT'})")
PYEOF
echo
echo "# uptime after: $(uptime)"
