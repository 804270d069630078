#!/usr/bin/env bash
# protloc run end to end: identical stores for 1, 2 and 3 ranks (fov + tiles + cells), bad items recorded in
# /failures with exit 3, --strict fails without replacing the store, manifest errors name file:line:column,
# FOV embeddings equal `protloc embed` on the same normalised input (numpy) — i.e. preprocessing is as documented.
source "$(dirname "$0")/lib.sh"
FIX="$PROTLOC_SOURCE_DIR/tests/fixtures/runner"
N=10
[ "${PROTLOC_SANITIZE:-0}" = 1 ] && N=5
D="$TEST_TMP/ds"
$PY "$FIX/make_dataset.py" "$D" "$N" --corrupt || { fail "dataset generation"; finish; }
expect_status 0 "$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --jitter 0.1 \
  --out "$D/model.safetensors"
cat >"$D/card.json" <<'JSON'
{"name": "test-vit2-d64", "weights": "model.safetensors", "input_slots": ["protein", "nucleus"],
 "normalisation": {"mode": "self"}, "pixel_size_um": 0.206, "patch": 16}
JSON
# pl_vit aligns its GEMM row chunks so that embeddings do not depend on the thread count: stores must be
# bit-identical for any number of ranks, with a fixed thread count and with the default (cores / ranks).
BASE=(--manifest "$D/manifest.tsv" --model "$D/card.json" --level fov,tiles,cells --tile 64 --crop 48 --no-progress)
OPTS=("${BASE[@]}" --threads 1)

expect_status 3 "$PROTLOC" run "${OPTS[@]}" --out "$D/np1.h5"
grep -q "summary: items=$((N + 4)) added=$((N + 4)) .* computed=$N failed=4" "$TEST_TMP/last.out" \
  && pass "summary counts (np 1)" || fail "summary line: $(cat "$TEST_TMP/last.out")"
expect_status 3 mpirun --oversubscribe -np 2 "$PROTLOC" run "${OPTS[@]}" --out "$D/np2.h5"
expect_status 3 mpirun --oversubscribe -np 3 "$PROTLOC" run "${OPTS[@]}" --out "$D/np3.h5"
$PY "$FIX/compare_stores.py" "$D/np1.h5" "$D/np2.h5" "$D/np3.h5" && pass "stores identical for 1, 2, 3 ranks" \
  || fail "stores differ between rank counts"
# default threads (cores / ranks per node) and an odd explicit count: still bit-identical
expect_status 3 mpirun --oversubscribe -np 2 "$PROTLOC" run "${BASE[@]}" --out "$D/np2t.h5"
expect_status 3 "$PROTLOC" run "${BASE[@]}" --threads 3 --out "$D/np1t3.h5"
$PY "$FIX/compare_stores.py" "$D/np1.h5" "$D/np2t.h5" "$D/np1t3.h5" \
  && pass "default and 3 threads: stores bit-identical" || fail "store depends on the thread count"
[ ! -e "$D/np1.h5.journal" ] && pass "journal removed after success" || fail "journal left behind"

# layout, failures, attributes, and the FOV embedding recomputed independently
$PY - "$D" "$N" "$PROTLOC" <<'PYEOF' && pass "store layout, failures, attributes, FOV = protloc embed" || fail "store content"
import json, os, subprocess, sys
import h5py, numpy as np, tifffile
d, n, protloc = sys.argv[1], int(sys.argv[2]), sys.argv[3]
f = h5py.File(f"{d}/np1.h5", "r")
ids = [x.decode() for x in f["items/id"][()]]
assert ids == [f"item{i:04d}" for i in range(n)], ids
assert f["fov/embedding"].shape == (n, 64) and f["fov/embedding"].dtype == np.float32
fails = {i.decode(): s.decode() for i, s in zip(f["failures/id"][()], f["failures/stage"][()])}
assert fails == {"bad_truncated": "decode", "bad_page": "decode", "bad_empty": "decode", "bad_missing": "input"}, fails
msgs = [m.decode() for m in f["failures/message"][()]]
assert any("#7" in m for m in msgs) and any("empty" in m for m in msgs), msgs
ti, ci = f["tiles/item"][()], f["cells/item"][()]
assert len(ti) == n * 4 and (np.diff(ti) >= 0).all() and set(ti) == set(range(n))   # 160 px -> 2 x 2 tiles of 64
assert (np.diff(ci) >= 0).all() and set(ci) == set(range(n)) and (f["cells/area"][()] > 400).all()
assert set(f["tiles/y"][()]) == {0, 64}
a = f.attrs
assert a["format"].decode() == "protloc-store/1" and len(a["model_sha256"].decode()) == 64
assert json.loads(a["model_card"].decode())["name"] == "test-vit2-d64" and json.loads(a["run_options"].decode())["tile"] == 64
assert f["items/label"][0].decode() == "nucleoplasm" and f["items/split"][2].decode() == "val"
# FOV input as docs/manifests.md says: slot 0 protein, slot 1 nucleus; per channel (x - mean) / (std + 1e-7)
x = []
for i in range(n):
    img = tifffile.imread(f"{d}/img/item{i:04d}_proj.tif").astype(np.float64) / 65535.0
    ch = [img[1], img[0]]
    ch = [(c - c.mean()) / (c.std() + 1e-7) for c in ch]
    x.append(np.stack(ch)[:, :160, :160])
np.save(f"{d}/x.npy", np.array(x, np.float32))
subprocess.run([protloc, "-q", "embed", "--model", f"{d}/model.safetensors", "--input", f"{d}/x.npy", "--output",
                f"{d}/y.npy"], check=True)
y = np.load(f"{d}/y.npy")
err = np.abs(y - f["fov/embedding"][()]).max()
assert err < 1e-4, err
PYEOF

# the store opens in anndata through protloc export (X = FOV embeddings, obs = manifest columns)
expect_status 0 "$PROTLOC" export "$D/np1.h5" --format h5ad --out "$D/np1.h5ad"
$PY - "$D" "$N" <<'PYEOF' && pass "exported .h5ad = store (anndata)" || fail "h5ad export of the run store"
import sys, anndata, h5py, numpy as np
d, n = sys.argv[1], int(sys.argv[2])
a = anndata.read_h5ad(f"{d}/np1.h5ad")
x = h5py.File(f"{d}/np1.h5")["fov/embedding"][()]
assert a.n_obs == n and np.array_equal(np.asarray(a.X), x)
assert list(a.obs["id"]) == [f"item{i:04d}" for i in range(n)] and a.obs["split"].iloc[2] == "val"
PYEOF

# channel alignment strategies: replicate embeds each channel alone (D doubles), random and duplicate run
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --level fov --align replicate --out "$D/rep.h5"
grep -q "dim=128" "$TEST_TMP/last.out" && pass "replicate: two views concatenated (dim 128)" || fail "$(cat "$TEST_TMP/last.out")"
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --level fov --align random --seed 3 --out "$D/rnd.h5"
expect_status 3 "$PROTLOC" run "${OPTS[@]}" --level fov --align duplicate --fill '*=nucleus' --out "$D/dup.h5"
expect_status 1 "$PROTLOC" run "${OPTS[@]}" --level fov --align duplicate --out "$D/dup2.h5"
$PY - "$D" <<'PYEOF' && pass "replicate = [protein in every slot, nucleus in every slot]" || fail "replicate content"
import sys, h5py, numpy as np
d = sys.argv[1]
rep = h5py.File(f"{d}/rep.h5")["fov/embedding"][()]
x = np.load(f"{d}/x.npy")   # (N, [protein, nucleus], H, W) normalised, written by the check above
import subprocess
np.save(f"{d}/xp.npy", np.repeat(x[:, :1], 2, axis=1)); np.save(f"{d}/xn.npy", np.repeat(x[:, 1:], 2, axis=1))
for name, half in (("xp", 0), ("xn", 1)):
    subprocess.run([sys.argv[0] if False else __import__("os").environ["PROTLOC"], "-q", "embed", "--model",
                    f"{d}/model.safetensors", "--input", f"{d}/{name}.npy", "--output", f"{d}/{name}_y.npy"], check=True)
    y = np.load(f"{d}/{name}_y.npy")
    assert np.abs(y - rep[:, 64 * half:64 * (half + 1)]).max() < 1e-4
PYEOF

# the shipped demo card (4 HPA-order slots; microtubules and ER are empty for this 2-channel data)
cp "$PROTLOC_SOURCE_DIR/manifests/models/demo_vit4.json" "$D/"
expect_status 0 "$PROTLOC" -q model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 4 --seed 0 \
  --out "$D/demo_vit4.safetensors"
expect_status 3 "$PROTLOC" run --manifest "$D/manifest.tsv" --model "$D/demo_vit4.json" --out "$D/demo.h5" --no-progress
grep -q "computed=$N failed=4 .*dim=64" "$TEST_TMP/last.out" && pass "demo card runs" || fail "demo card: $(cat "$TEST_TMP/last.out")"

# --strict: failures are fatal, the store is not written, the journal keeps the finished items
expect_status 1 "$PROTLOC" run "${OPTS[@]}" --out "$D/strict.h5" --strict
[ ! -e "$D/strict.h5" ] && [ -d "$D/strict.h5.journal" ] && pass "--strict: no store, journal kept" \
  || fail "--strict left a store or lost the journal"
grep -q "strict" "$TEST_TMP/last.err" && pass "--strict explains itself" || fail "--strict message"

# manifest errors: file:line:column, exit 1, nothing written
printf 'id\tdataset\tlabel\tsplit\tgroup\tprotein\nx\td\t\tbogus\tg\timg/item0000_proj.tif\n' >"$D/bad.tsv"
expect_status 1 "$PROTLOC" run --manifest "$D/bad.tsv" --model "$D/card.json" --out "$D/bad.h5"
grep -q "bad.tsv:2:6: bad split 'bogus'" "$TEST_TMP/last.err" && pass "manifest error with line:column" \
  || fail "manifest error message: $(cat "$TEST_TMP/last.err")"
[ ! -e "$D/bad.h5" ] && pass "no store on manifest errors" || fail "store written despite manifest errors"
expect_status 2 "$PROTLOC" run --manifest "$D/manifest.tsv" --out x.h5
expect_status 2 "$PROTLOC" run "${OPTS[@]}" --out "$D/x.h5" --level nope
expect_status 0 "$PROTLOC" run --help
finish
