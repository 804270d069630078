#!/usr/bin/env bash
# CLI test of `protloc pretrain` against facebookresearch/dino's own train_one_epoch in float64 on four cases
# (tests/fixtures/dino_pretrain, made by make_dino_pretrain_fixtures.py: patch 8 and 16, 2/3/4 channels, non-square
# views, with and without local views, norm_last_layer true and false, SGD and AdamW with every schedule, clipping
# and last-layer freezing). Each case runs `protloc pretrain $(cat args.txt)` from the fixture's inputs. SGD cases
# (1 step): per tensor, max |protloc - reference| <= 1e-3 x max |reference - init| for the student and the teacher.
# AdamW cases (4 and 6 steps): per tensor, ||protloc - reference|| / ||reference - init|| <= 5e-3 (a tensor the
# reference leaves unchanged must stay within 1e-6 of its start). The center within 1e-4 in every case. Case c also
# runs on 2 and 3 ranks (1 thread each) and must give the 1-rank run's bytes.
source "$(dirname "$0")/lib.sh"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe)
FIX=$PROTLOC_SOURCE_DIR/tests/fixtures/dino_pretrain
OUTS=(student.safetensors teacher.safetensors teacher_backbone.safetensors dino_loss.safetensors)

check_case() {   # check_case CASE OUTDIR
  $PY - "$FIX/$1" "$2" "$1" <<'PYEOF'
import json, struct, sys
import numpy as np
fix, out, case = sys.argv[1:4]
def load(path):
    b = open(path, "rb").read(); n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n]); d = b[8 + n:]
    return {k: np.frombuffer(d[v["data_offsets"][0]:v["data_offsets"][1]], "<f4").reshape(v["shape"])
            for k, v in h.items() if k != "__metadata__"}
names = [l.split() for l in open(fix + "/names.txt")]
S, H = load(fix + "/S.safetensors"), load(fix + "/H.safetensors")
init = {**{"backbone." + k: v for k, v in S.items()}, **{"head." + k: v for k, v in H.items()}}
sgd = "--optimizer sgd" in open(fix + "/args.txt").read()
bad, report = [], []
for which in ("student", "teacher"):
    got = load(f"{out}/{which}.safetensors")
    want = np.load(f"{fix}/{which}.npy")
    o, worst = 0, (-1.0, "")
    for n, numel, shape in names:
        numel = int(numel); shp = tuple(int(s) for s in shape.split(","))
        w = want[o:o + numel]; o += numel
        if n not in got or got[n].shape != shp:
            bad.append(f"{which} {n}: missing or shape {got[n].shape if n in got else None} != {shp}"); continue
        g = got[n].astype(np.float64).ravel(); i0 = init[n].astype(np.float64).ravel()
        upd = w - i0
        if sgd:
            scale = np.abs(upd).max()
            if scale == 0:
                fig = np.abs(g - i0).max()
                if fig > 1e-6: bad.append(f"{which} {n}: unchanged in DINO, moved by {fig:.3g}")
                continue
            fig = np.abs(g - w).max() / scale
            if fig > 1e-3:
                k = int(np.argmax(np.abs(g - w)))
                bad.append(f"{which} {n}: max|diff| {np.abs(g - w).max():.3g} = {fig:.3g} x max|update| "
                           f"{scale:.3g} (element {k}: protloc {g[k]:.9g}, DINO {w[k]:.9g}, init {i0[k]:.9g})")
        else:
            scale = np.linalg.norm(upd)
            if scale == 0:
                fig = np.abs(g - i0).max()
                if fig > 1e-6: bad.append(f"{which} {n}: unchanged in DINO, moved by {fig:.3g}")
                continue
            fig = np.linalg.norm(g - w) / scale
            if fig > 5e-3:
                bad.append(f"{which} {n}: ||diff|| / ||update|| = {fig:.3g} (||update|| {scale:.3g}, "
                           f"max|diff| {np.abs(g - w).max():.3g})")
        worst = max(worst, (fig, n))
    report.append(f"{which} {worst[0]:.2e} ({worst[1]})")
    assert o == want.size, (o, want.size)
tb = load(f"{out}/teacher_backbone.safetensors"); t = load(f"{out}/teacher.safetensors")
if not all(np.array_equal(tb[k], t["backbone." + k]) for k in tb): bad.append("teacher_backbone != teacher's backbone")
c = load(f"{out}/dino_loss.safetensors")["center"]; cw = np.load(fix + "/center.npy")
if c.shape != (1, cw.size): bad.append(f"center shape {c.shape}")
cd = float(np.abs(c.ravel().astype(np.float64) - cw).max()) if c.size == cw.size else float("inf")
if cd > 1e-4: bad.append(f"center off by {cd:.3g}")
loss = [json.loads(l)["loss"] for l in open(out + "/train.jsonl") if '"loss"' in l]
lw = np.load(fix + "/loss.npy")
if len(loss) != len(lw): bad.append(f"{len(loss)} steps in train.jsonl, DINO made {len(lw)}")
ld = float(np.abs(np.array(loss) - lw).max()) if len(loss) == len(lw) else float("inf")
print(f"{case} ({'SGD: max|diff|/max|update|' if sgd else 'AdamW: ||diff||/||update||'}) worst: "
      + ", ".join(report) + f", center max|diff| {cd:.2e}, loss max|diff| {ld:.2e}")
for b in bad: print("  " + b)
sys.exit(1 if bad else 0)
PYEOF
}
same_outputs() {   # same_outputs A B WHAT
  local f ok=1
  for f in "${OUTS[@]}"; do cmp -s "$1/$f" "$2/$f" || ok=0; done
  [ "$ok" = 1 ] && pass "$3" || fail "$3: outputs differ"
}

for case in a_sgd b_sgd c_adamw d_adamw; do
  read -r -a args <"$FIX/$case/args.txt"
  cd "$FIX/$case" || exit 1   # args.txt names the inputs relative to the case's folder
  expect_status 0 "$PROTLOC" pretrain "${args[@]}" --threads 2 --out "$TEST_TMP/$case"
  if check_case "$case" "$TEST_TMP/$case"; then pass "$case = DINO's train_one_epoch (float64)"
  else fail "$case differs from DINO's train_one_epoch"; fi
done

read -r -a args <"$FIX/c_adamw/args.txt"
cd "$FIX/c_adamw" || exit 1
for np in 2 3; do
  expect_status 0 "${MPIRUN[@]}" -np "$np" "$PROTLOC" pretrain "${args[@]}" --threads 1 --out "$TEST_TMP/c_np$np"
  same_outputs "$TEST_TMP/c_adamw" "$TEST_TMP/c_np$np" "c_adamw: 1 and $np ranks bit-identical"
done
cd "$TEST_TMP" || exit 1
finish
