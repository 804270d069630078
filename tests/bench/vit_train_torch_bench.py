# PyTorch side of the ViT TRAINING-throughput benchmark: DINO's own vision_transformer.VisionTransformer
# (facebookresearch/dino commit 7c446df, imported from tests/fixtures/dino/ through
# tests/fixtures/vit/make_vit_fixtures.py's dino_vit: its trunc-normal init and per-sample DropPath)
# with an nn.Linear(dim, classes) head, trained end to end on one fixed, seeded random batch. One step =
# zero_grad + forward + cross-entropy + backward + optimizer.step (AdamW or SGD with DINO's parameter groups:
# no weight decay for ".bias" / 1-D parameters, wd 0.04 elsewhere, lr 1e-4). Prints ONE JSON line on stdout:
# img/s over the timed steps (from the mean step time, and from the median), median/mean step time, the
# forward/backward/optimizer split, and peak RSS (getrusage ru_maxrss, MiB). Diagnostics go to stderr.
#
#   OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tests/bench/vit_train_torch_bench.py --threads 2 --batch 32 --steps 3 --warmup 1
#   ... [--weights W.safetensors] (a backbone written by the C project, e.g. bench_vit --save-weights; the
#       architecture is then read from the file) [--optimizer sgd] [--drop-path 0.1] [--mkldnn off]
#
# CPU tuning, as far as PyTorch goes here: torch.set_num_threads(threads), torch.set_num_interop_threads(1), and
# OPENBLAS_NUM_THREADS/OMP_NUM_THREADS = threads, set below BEFORE torch is imported (Debian's torch does its
# nn.Linear GEMMs in the system OpenBLAS, which torch.set_num_threads does not bound). The launcher should set
# OMP_WAIT_POLICY=PASSIVE (libgomp reads it when torch loads; the script only reports it). The allocator is
# glibc malloc as shipped: no jemalloc/tcmalloc LD_PRELOAD (GLIBC_TUNABLES, if the launcher sets them, is
# reported in the JSON). torch.compile is not used: Debian's torch is 1.13, which has no torch.compile.
# oneDNN (MKLDNN) stays enabled by default; in this torch build it only serves the patch-embedding conv
# (nn.Linear/matmul go to OpenBLAS): on a 2-core EPYC, batch 8, on vs off measured within run-to-run noise
# (~4.2 img/s both). Warm-up matters: the first 1-2 steps are slower (likely first-touch page faults of new buffers).
import argparse
import json
import math
import os
import resource
import statistics
import struct
import sys
import time
from contextlib import nullcontext

HERE = os.path.dirname(os.path.abspath(__file__))
ARCH_NAMES = {192: "t", 384: "s", 768: "b", 1024: "l"}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--weights", help="float32 safetensors backbone (DINO names); sets dim/depth/heads/patch/chans")
    # None = not given: defaults are ViT-S/16 unless --weights says otherwise
    ap.add_argument("--dim", type=int)
    ap.add_argument("--depth", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--patch", type=int)
    ap.add_argument("--chans", type=int)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--classes", type=int, default=17)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=5, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first (allocates optimizer state)")
    ap.add_argument("--drop-path", type=float, default=0.0, help="DINO stochastic depth rate (linear over blocks)")
    ap.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.04)
    ap.add_argument("--mkldnn", choices=["on", "off"], default="on")
    ap.add_argument("--autocast", choices=["off", "bf16"], default="off",
                    help="bf16: forward and loss under torch.autocast('cpu', torch.bfloat16), PyTorch's own mixed "
                         "precision (FP32 master weights, optimizer and backward as autocast records them)")
    ap.add_argument("--profile", action="store_true",
                    help="torch.profiler over the last timed step: self CPU time per op grouped into the phases of "
                         "protloc's --profile, on stderr and in the JSON ('profile')")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


a = parse_args()
# OpenBLAS (pthread build) and libgomp read these when torch loads
os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)
os.environ["OMP_NUM_THREADS"] = str(a.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

sys.dont_write_bytecode = True   # no __pycache__ next to the fixture script
sys.path.insert(0, os.path.join(HERE, "..", "fixtures", "vit"))
from make_vit_fixtures import dino_vit  # noqa: E402  (DINO's VisionTransformer, tests/fixtures/dino/)

sys.path.insert(0, HERE)
from vit_torch_bench import load_safetensors  # noqa: E402  (one safetensors reader for both benchmarks)


class Classifier(nn.Module):
    def __init__(self, backbone, dim, classes):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(dim, classes)
        nn.init.normal_(self.head.weight, std=0.01)   # DINO LinearClassifier init
        nn.init.zeros_(self.head.bias)

    def forward(self, x):
        return self.head(self.backbone(x))


def resolve_arch(sd, meta):
    arch = dict(dim=384, depth=12, heads=6, patch=16, chans=3)
    if sd is not None:
        w = sd["patch_embed.proj.weight"]
        arch.update(dim=w.shape[0], chans=w.shape[1], patch=w.shape[2],
                    depth=len({k.split(".")[1] for k in sd if k.startswith("blocks.")}))
        arch["heads"] = int(meta.get("heads", arch["dim"] // 64))
    for k in arch:
        given = getattr(a, k)
        if given is not None:
            if sd is not None and given != arch[k]:
                sys.exit(f"--{k} {given} contradicts {a.weights} ({k} = {arch[k]})")
            arch[k] = given
    return arch


def build_model(arch, sd):
    dim, depth, patch = arch["dim"], arch["depth"], arch["patch"]
    # pos_embed sized for the input grid, or as stored (DINO bicubic-interpolates it when the grid differs)
    grid_img = patch * (math.isqrt(sd["pos_embed"].shape[1] - 1) if sd is not None else a.size // patch)
    # DINO's init (trunc-normal 0.02) and stochastic depth decay rule (drop_path_rate linear over the blocks)
    vit = dino_vit(grid_img, patch, arch["chans"], dim, depth, arch["heads"], drop_path_rate=a.drop_path)
    if sd is not None:
        bb = {k: v for k, v in sd.items() if not k.startswith("head.")}
        vit.load_state_dict(bb, strict=True)
    return Classifier(vit, dim, a.classes)


def param_groups(model):
    # DINO utils.get_params_groups: biases and norm (1-D) parameters are not regularized
    reg, noreg = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (noreg if name.endswith(".bias") or p.ndim == 1 else reg).append(p)
    return [{"params": reg, "weight_decay": a.weight_decay}, {"params": noreg, "weight_decay": 0.0}]


# torch op -> the nearest phase of protloc's `--profile` table (self CPU time of the op on the calling thread)
PHASES = [
    ("linear forward GEMMs (addmm)", ("aten::addmm",)),
    ("linear backward GEMMs, input + weight grad (mm)", ("aten::mm",)),
    ("attention matmuls forward + backward (bmm)", ("aten::bmm",)),
    ("attention softmax forward + backward", ("aten::_softmax", "aten::_softmax_backward_data")),
    ("patch embed conv forward + backward", ("aten::mkldnn_convolution", "aten::convolution_backward",
                                             "aten::mkldnn_convolution_backward", "aten::slow_conv2d_forward",
                                             "aten::_slow_conv2d_forward", "aten::_slow_conv2d_backward")),
    ("layernorm forward + backward", ("aten::native_layer_norm", "aten::native_layer_norm_backward")),
    ("gelu forward + backward", ("aten::gelu", "aten::gelu_backward")),
    ("dtype conversions and copies", ("aten::copy_", "aten::to", "aten::_to_copy", "aten::clone", "aten::contiguous")),
    ("optimizer (AdamW)", ()),   # the 'optimizer' range below
]


def profile_step(model, opt, x, y, amp):
    from torch.profiler import ProfilerActivity, profile, record_function
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        opt.zero_grad(set_to_none=True)
        with amp():
            loss = F.cross_entropy(model(x), y)
        loss.backward()
        with record_function("optimizer"):
            opt.step()
    ev = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)   # microseconds, every op once (self time; ranges have none)
    opt_us = sum(e.cpu_time_total for e in ev if e.key == "optimizer")   # AdamW's ops: none of the lists above
    rows = [[name, sum(e.self_cpu_time_total for e in ev if e.key in ops) if ops else opt_us] for name, ops in PHASES]
    claimed = sum(r[1] for r in rows)
    rows.append(["other (element-wise adds/muls, views, autograd bookkeeping)", max(total - claimed, 0.0)])
    return [{"phase": n, "ms": round(us / 1e3, 2), "share": round(us / total, 4) if total else 0.0} for n, us in rows], \
        round(total / 1e3, 1)


def main():
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError as e:   # only possible before any inter-op work started
        print(f"# set_num_interop_threads: {e}", file=sys.stderr)
    torch.backends.mkldnn.enabled = a.mkldnn == "on"
    mkldnn_avail = torch.backends.mkldnn.is_available()
    print(f"# torch {torch.__version__}  MKLDNN/oneDNN available: {mkldnn_avail}  enabled: {torch.backends.mkldnn.enabled}"
          f"  threads {torch.get_num_threads()}  interop {torch.get_num_interop_threads()}"
          f"  OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}", file=sys.stderr)
    if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
        print("# note: OMP_WAIT_POLICY=PASSIVE is not set (the tuned run sets it in the launcher)", file=sys.stderr)

    torch.manual_seed(a.seed)
    sd, meta = load_safetensors(a.weights) if a.weights else (None, {})
    arch = resolve_arch(sd, meta)
    if a.size % arch["patch"]:
        print(f"# note: size {a.size} is not a multiple of patch {arch['patch']}; the remainder is cropped",
              file=sys.stderr)
    model = build_model(arch, sd).train()
    del sd
    opt_cls = torch.optim.AdamW if a.optimizer == "adamw" else torch.optim.SGD
    kw = {"lr": a.lr} if a.optimizer == "adamw" else {"lr": a.lr, "momentum": 0.9}   # DINO: SGD momentum 0.9
    opt = opt_cls(param_groups(model), **kw)
    x = torch.randn(a.batch, arch["chans"], a.size, a.size)
    y = torch.randint(0, a.classes, (a.batch,))
    nparams = sum(p.numel() for p in model.parameters())
    setup_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def amp():
        return torch.autocast("cpu", dtype=torch.bfloat16) if a.autocast == "bf16" else nullcontext()

    steps, losses = [], []
    for i in range(a.warmup + a.steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with amp():
            loss = F.cross_entropy(model(x), y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        t3 = time.perf_counter()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            sys.exit(f"non-finite loss at step {i}: {losses[-1]}")
        print(f"# step {i}{' (warmup)' if i < a.warmup else ''}: {t3 - t0:.3f} s  (fwd {t1 - t0:.3f}, bwd {t2 - t1:.3f},"
              f" opt {t3 - t2:.3f})  loss {losses[-1]:.4f}", file=sys.stderr)
        if i >= a.warmup:
            steps.append((t3 - t0, t1 - t0, t2 - t1, t3 - t2))

    prof_rows, prof_ms = (profile_step(model, opt, x, y, amp) if a.profile else (None, None))
    if prof_rows:
        print(f"# PyTorch profile of one step ({prof_ms} ms of op self time on the calling thread):", file=sys.stderr)
        for r in prof_rows:
            print(f"#   {r['phase']:<60} {r['ms']:>9.1f} ms  {100 * r['share']:5.1f}%", file=sys.stderr)
    tot = [s[0] for s in steps]
    med, mean = statistics.median(tot), statistics.fmean(tot)
    name = f"vit_{ARCH_NAMES[arch['dim']]}{arch['patch']}" if arch["dim"] in ARCH_NAMES and arch["depth"] == 12 \
        else f"vit_d{arch['dim']}x{arch['depth']}p{arch['patch']}"
    out = {
        "impl": "pytorch", "model": name, "size": a.size, "batch": a.batch, "threads": a.threads,
        "img_per_s": round(a.batch / mean, 3), "img_per_s_median": round(a.batch / med, 3),
        "step_s_median": round(med, 4), "step_s_mean": round(mean, 4), "step_s_min": round(min(tot), 4),
        "fwd_s_median": round(statistics.median(s[1] for s in steps), 4),
        "bwd_s_median": round(statistics.median(s[2] for s in steps), 4),
        "opt_s_median": round(statistics.median(s[3] for s in steps), 4),
        "steps": a.steps, "warmup": a.warmup,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "setup_rss_mib": round(setup_rss, 1),
        "optimizer": a.optimizer, "lr": a.lr, "weight_decay": a.weight_decay, "drop_path": a.drop_path,
        "classes": a.classes, "dim": arch["dim"], "depth": arch["depth"], "heads": arch["heads"],
        "patch": arch["patch"], "chans": arch["chans"], "params": nparams,
        "weights": os.path.basename(a.weights) if a.weights else None,
        "loss_first": round(losses[0], 5), "loss_last": round(losses[-1], 5),
        "torch": torch.__version__, "mkldnn_available": mkldnn_avail, "mkldnn": torch.backends.mkldnn.enabled,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "allocator": "glibc", "autocast": a.autocast,
        "profile": prof_rows, "profile_ms": prof_ms,
    }
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
