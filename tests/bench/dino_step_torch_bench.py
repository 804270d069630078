# PyTorch side of the DINO PRETRAINING-step benchmark (tests/bench/pretrain_vs_torch.sh, issue 23): facebookresearch/dino's
# own code (tests/fixtures/dino/, commit 7c446df, imported through tests/fixtures/dino_import.py): a student
# utils.MultiCropWrapper(vision_transformer.vit_small(patch 16, drop_path_rate), DINOHead(384, out_dim,
# norm_last_layer=True)), a teacher copy (requires_grad False), main_dino.DINOLoss(out_dim, 2 + locals, 0.04, 0.04, 0,
# epochs) (its update_center all_reduce runs in a single-process gloo group), torch.optim.AdamW(utils.get_params_groups)
# and main_dino.train_one_epoch's step exactly: lr / wd / teacher-momentum from utils.cosine_scheduler, teacher(globals),
# student(all views), loss, zero_grad, backward, utils.clip_gradients(student, clip), utils.cancel_gradients_last_layer,
# optimizer.step, the teacher EMA. Views are the protloc ones: G.npy (N, 2, C, Hg, Wg), L.npy (N, Lc, C, Hl, Wl),
# batches in order (no shuffle). Prints ONE JSON line on stdout: img/s (images = samples of the global batch, each its
# 2 + Lc views) from the median and the mean timed step, the step split (teacher fwd, student fwd, loss, backward,
# clip + optimizer, EMA), peak RSS (getrusage ru_maxrss, MiB). Diagnostics go to stderr.
#
#   OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tests/bench/dino_step_torch_bench.py --write-head H.safetensors [--chans 3]
#       (DINO's init of the head, DINO tensor names: the --head-init of `protloc pretrain`; then exits)
#   OMP_WAIT_POLICY=PASSIVE /usr/bin/python3 tests/bench/dino_step_torch_bench.py --weights S.safetensors \
#       --head H.safetensors --global-views G.npy --local-views L.npy --batch 16 --threads 2 --warmup 1 --steps 3
#
# CPU tuning as tests/bench/vit_train_torch_bench.py: OPENBLAS_NUM_THREADS / OMP_NUM_THREADS set before torch is imported,
# torch.set_num_threads, one inter-op thread, OMP_WAIT_POLICY=PASSIVE from the launcher, glibc malloc, no torch.compile
# (torch 1.13). --freeze-last-layer defaults to 0 (the steady state: the 65536 x 256 last layer is updated every step).
import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

ap = argparse.ArgumentParser(description="DINO pretraining step in PyTorch (DINO's own code)")
ap.add_argument("--write-head", help="write DINO's head init (DINO names) to this safetensors file and exit")
ap.add_argument("--weights", help="float32 safetensors backbone (DINO names), e.g. from `protloc model init`")
ap.add_argument("--head", help="float32 safetensors DINOHead (as --write-head writes)")
ap.add_argument("--global-views", help="float32 (N, 2, C, Hg, Wg)")
ap.add_argument("--local-views", help="float32 (N, Lc, C, Hl, Wl)")
ap.add_argument("--chans", type=int, default=3, help="input channels of --write-head's backbone (only its dim matters)")
ap.add_argument("--out-dim", type=int, default=65536)
ap.add_argument("--batch", type=int, default=16)
ap.add_argument("--threads", type=int, default=2)
ap.add_argument("--steps", type=int, default=3, help="timed steps")
ap.add_argument("--warmup", type=int, default=1, help="untimed steps first")
ap.add_argument("--drop-path", type=float, default=0.1)
ap.add_argument("--epochs", type=int, default=0, help="schedule length (0: enough epochs for warmup + steps)")
ap.add_argument("--lr", type=float, default=None, help="default 5e-4 x batch / 256 (main_dino.py)")
ap.add_argument("--clip-grad", type=float, default=3.0)
ap.add_argument("--freeze-last-layer", type=int, default=0)
ap.add_argument("--seed", type=int, default=0)
ap.add_argument("--autocast", choices=["off", "bf16"], default="off",
                help="bf16: teacher, student and DINOLoss under torch.autocast('cpu', torch.bfloat16), where main_dino.py "
                     "puts its torch.cuda.amp.autocast (--use_fp16); no grad scaler is needed for bf16. The heads' "
                     "outputs enter DINOLoss as float32 (the single-process gloo all_reduce of its center update has "
                     "no bf16; DINO's fp16 autocast computes the softmaxes in float32 too)")
a = ap.parse_args()

os.environ["OPENBLAS_NUM_THREADS"] = str(a.threads)   # before torch loads OpenBLAS / libgomp
os.environ["OMP_NUM_THREADS"] = str(a.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402

sys.dont_write_bytecode = True   # no __pycache__ in the fixture folders
sys.path.insert(0, os.path.join(HERE, "..", "fixtures"))
from dino_import import import_main_dino  # noqa: E402  (DINO's own code, torchvision stand-ins)
main_dino = import_main_dino()
import utils  # noqa: E402
import vision_transformer as vits  # noqa: E402

sys.path.insert(0, HERE)
from vit_torch_bench import load_safetensors  # noqa: E402


def save_safetensors(path, tensors):
    header, off, blobs = {}, 0, []
    for n, t in tensors:
        b = np.ascontiguousarray(t, dtype="<f4").tobytes()
        header[n] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        f.write(b"".join(blobs))


def build(chans, dim_check=None):
    vit = vits.vit_small(patch_size=16, drop_path_rate=a.drop_path, in_chans=chans)
    head = vits.DINOHead(vit.embed_dim, a.out_dim, use_bn=False, norm_last_layer=True)
    if dim_check is not None and vit.embed_dim != dim_check:
        sys.exit(f"the backbone has dim {dim_check}; vit_small is {vit.embed_dim}")
    return utils.MultiCropWrapper(vit, head)


def main():
    torch.set_num_threads(a.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError as e:
        print(f"# set_num_interop_threads: {e}", file=sys.stderr)
    torch.manual_seed(a.seed)
    if a.write_head:
        m = build(a.chans)
        save_safetensors(a.write_head, [(n[len("head."):], p.detach().numpy()) for n, p in m.named_parameters()
                                        if n.startswith("head.")])
        return
    if not (a.weights and a.head and a.global_views):
        sys.exit("--weights, --head and --global-views are needed (or --write-head)")
    print(f"# torch {torch.__version__}  threads {torch.get_num_threads()}  interop {torch.get_num_interop_threads()}"
          f"  OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}", file=sys.stderr)
    store = tempfile.TemporaryDirectory()
    dist.init_process_group("gloo", init_method="file://" + os.path.join(store.name, "store"), rank=0, world_size=1)

    glob = np.load(a.global_views)
    loc = np.load(a.local_views) if a.local_views else None
    N, C = glob.shape[0], glob.shape[2]
    nloc = 0 if loc is None else loc.shape[1]
    niter = N // a.batch
    if niter < 1:
        sys.exit(f"{N} images are fewer than the batch {a.batch}")
    total = a.warmup + a.steps
    epochs = a.epochs or -(-total // niter)

    sd, _ = load_safetensors(a.weights)
    hd, _ = load_safetensors(a.head)
    student, teacher = build(C, sd["patch_embed.proj.weight"].shape[0]), build(C)
    student.backbone.load_state_dict({k: v for k, v in sd.items() if not k.startswith("head.")}, strict=True)
    student.head.load_state_dict(hd, strict=True)
    del sd, hd
    teacher.load_state_dict(student.state_dict())    # main_dino.py's teacher start
    for p in teacher.parameters():
        p.requires_grad = False
    student.train()
    teacher.train()    # main_dino.py never calls teacher.eval(); its drop path is 0 as in main_dino (teacher: none)

    dino_loss = main_dino.DINOLoss(a.out_dim, 2 + nloc, 0.04, 0.04, 0, epochs)
    optimizer = torch.optim.AdamW(utils.get_params_groups(student))
    lr = a.lr if a.lr is not None else 5e-4 * a.batch / 256
    lr_schedule = utils.cosine_scheduler(lr, 1e-6, epochs, niter, warmup_epochs=0)
    wd_schedule = utils.cosine_scheduler(0.04, 0.4, epochs, niter)
    momentum_schedule = utils.cosine_scheduler(0.996, 1, epochs, niter)
    nparams = sum(p.numel() for p in student.parameters())
    setup_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def amp():
        return torch.autocast("cpu", dtype=torch.bfloat16) if a.autocast == "bf16" else contextlib.nullcontext()

    steps, losses, warm = [], [], []
    for it in range(total):
        epoch, i = divmod(it, niter)
        t0 = time.perf_counter()
        for g, param_group in enumerate(optimizer.param_groups):
            param_group["lr"] = lr_schedule[it]
            if g == 0:
                param_group["weight_decay"] = wd_schedule[it]
        sl = slice(i * a.batch, (i + 1) * a.batch)
        images = [torch.from_numpy(np.ascontiguousarray(glob[sl, v])) for v in range(2)]
        images += [torch.from_numpy(np.ascontiguousarray(loc[sl, v])) for v in range(nloc)]
        t1 = time.perf_counter()
        with amp():
            teacher_output = teacher(images[:2])
            t2 = time.perf_counter()
            student_output = student(images)
            t3 = time.perf_counter()
            if a.autocast == "bf16":   # gloo's all_reduce in update_center has no bf16: the loss gets float32 outputs
                student_output, teacher_output = student_output.float(), teacher_output.float()
            loss = dino_loss(student_output, teacher_output, epoch)
            t4 = time.perf_counter()
        optimizer.zero_grad()
        loss.backward()
        t5 = time.perf_counter()
        utils.clip_gradients(student, a.clip_grad)
        utils.cancel_gradients_last_layer(epoch, student, a.freeze_last_layer)
        optimizer.step()
        t6 = time.perf_counter()
        with torch.no_grad():
            m = momentum_schedule[it]
            for param_q, param_k in zip(student.parameters(), teacher.parameters()):
                param_k.data.mul_(m).add_((1 - m) * param_q.detach().data)
        t7 = time.perf_counter()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            sys.exit(f"non-finite loss at step {it}: {losses[-1]}")
        split = (t7 - t0, t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5, t7 - t6)
        print(f"# step {it}{' (warmup)' if it < a.warmup else ''}: {split[0]:.3f} s (views {split[1]:.3f}, teacher "
              f"{split[2]:.3f}, student {split[3]:.3f}, loss {split[4]:.3f}, backward {split[5]:.3f}, clip+opt "
              f"{split[6]:.3f}, ema {split[7]:.3f})  loss {losses[-1]:.5f}  {a.batch / split[0]:.3f} img/s",
              file=sys.stderr)
        if it >= a.warmup:
            steps.append(split)
        else:
            warm.append(split[0])

    tot = [s[0] for s in steps]
    med, mean = statistics.median(tot), statistics.fmean(tot)
    keys = ("views", "teacher_fwd", "student_fwd", "loss", "backward", "clip_opt", "ema")
    out = {
        "impl": "pytorch", "model": "vit_s16+dino_head", "out_dim": a.out_dim, "chans": C, "batch": a.batch,
        "views": [2, nloc], "global_size": list(glob.shape[3:]), "local_size": list(loc.shape[3:]) if nloc else None,
        "threads": a.threads, "img_per_s_median": round(a.batch / med, 4), "img_per_s": round(a.batch / mean, 4),
        "step_s_median": round(med, 4), "step_s_mean": round(mean, 4),
        "split_s_median": {k: round(statistics.median(s[j + 1] for s in steps), 4) for j, k in enumerate(keys)},
        "warmup_step_s": [round(s, 3) for s in warm], "timed_step_s": [round(s, 3) for s in tot],
        "steps": a.steps, "warmup": a.warmup, "epochs": epochs, "drop_path": a.drop_path, "clip_grad": a.clip_grad,
        "freeze_last_layer": a.freeze_last_layer, "params_student": nparams, "autocast": a.autocast,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "setup_rss_mib": round(setup_rss, 1), "loss_first": round(losses[0], 5), "loss_last": round(losses[-1], 5),
        "torch": torch.__version__, "mkldnn": torch.backends.mkldnn.enabled,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "glibc_tunables": os.environ.get("GLIBC_TUNABLES"),
        "allocator": "glibc",
    }
    print(json.dumps(out), flush=True)
    dist.destroy_process_group()
    store.cleanup()


if __name__ == "__main__":
    main()
