#!/usr/bin/env bash
# protloc export: a store in the contract layout (h5py, fixed- and variable-length strings) → .h5ad read back with
# anndata, .npy + meta and TSV checked against h5py; errors name the store/dataset and leave no output behind.
set -u
. "$(dirname "$0")/lib.sh"
MAKE="$PROTLOC_SOURCE_DIR/tests/fixtures/ops/make_store.py"
cd "$TEST_TMP" || exit 1
$PY "$MAKE" fixed.h5 || { fail "make_store.py fixed"; finish; }
$PY "$MAKE" vlen.h5 --vlen --no-cells || { fail "make_store.py vlen"; finish; }

# A real store from protloc run (synthetic images, small untrained ViT, all three levels) next to the fixtures.
"$PROTLOC" -q synth --kind opencell --classes 2 --per-class 2 --seed 4 --size 256 --out synth >/dev/null || fail "synth failed"
"$PROTLOC" -q model init --dim 32 --depth 1 --heads 1 --patch 16 --in-chans 2 --out m.safetensors || fail "model init failed"
printf '{"name": "t", "weights": "m.safetensors", "input_slots": ["protein", "nucleus"], "normalisation": {"mode": "self"}}\n' >card.json
rc=0
"$PROTLOC" -q run --manifest synth/manifest.tsv --model card.json --out real.h5 --level fov,tiles,cells --tile 128 \
  --crop 48 >/dev/null || rc=$?
[ "$rc" -eq 0 ] || [ "$rc" -eq 3 ] || fail "protloc run failed (exit $rc)"   # 3: an item without cells is recorded

for store in fixed vlen real; do
  for level in fov tiles cells; do
    [ "$store" = vlen ] && [ "$level" = cells ] && continue
    expect_status 0 "$PROTLOC" export "$store.h5" --format h5ad --level "$level" --out "$store-$level.h5ad"
    expect_status 0 "$PROTLOC" export "$store.h5" --format npy --level "$level" --out "$store-$level.npy"
    expect_status 0 "$PROTLOC" export "$store.h5" --format tsv --level "$level" --out "$store-$level.tsv"
    # Compare all three outputs with the store read by h5py, and the .h5ad through anndata.
    if ! $PY - "$store.h5" "$level" "$store-$level" <<'PYEOF'; then fail "$store/$level: contents differ (see above)"; else pass "$store/$level: h5ad/npy/tsv match the store"; fi
import sys, csv
import anndata, h5py, numpy as np
store, level, base = sys.argv[1:4]
with h5py.File(store, "r") as f:
    items = {k: [s.decode() if isinstance(s, bytes) else s for s in f["items/" + k][()]]
             for k in ("id", "dataset", "label", "split", "group")}
    X = f[level + "/embedding"][()]
    item = f[level + "/item"][()] if level != "fov" else np.arange(len(items["id"]))
    extra = {"tiles": ["y", "x"], "cells": ["cy", "cx", "area"]}.get(level, [])
    if level == "cells" and (store.startswith("real") or "cells/mask_label" in f):   # protloc run stores always have it
        extra.append("mask_label")
    ex = {k: f[level + "/" + k][()].astype(np.float32) for k in extra}
ordinal, seen = [], {}
for i in item:
    ordinal.append(seen.get(i, 0)); seen[i] = seen.get(i, 0) + 1
names = [items["id"][i] if level == "fov" else "%s/%d" % (items["id"][i], k) for i, k in zip(item, ordinal)]
a = anndata.read_h5ad(base + ".h5ad")
assert a.shape == X.shape, (a.shape, X.shape)
assert a.X.dtype == np.float32 and np.array_equal(a.X, X), "X differs"
assert list(a.obs_names) == names, (list(a.obs_names)[:4], names[:4])
assert list(a.var_names) == ["e%d" % j for j in range(X.shape[1])]
for k in ("id", "dataset", "label", "split", "group"):
    assert list(a.obs[k]) == [items[k][i] for i in item], k
for k in extra:
    assert np.array_equal(a.obs[k].to_numpy(np.float32), ex[k]), k
assert a.uns["protloc_level"] == level
with h5py.File(store, "r") as f:
    sha = f.attrs["model_sha256"]
    sha = sha.decode() if isinstance(sha, bytes) else str(sha)
assert a.uns["protloc_store_attrs"]["model_sha256"] == sha
npy = np.load(base + ".npy")
assert npy.dtype == np.float32 and np.array_equal(npy, X), "npy differs"
rows = list(csv.reader(open(base + ".tsv"), delimiter="\t"))
hdr = rows[0]
assert hdr[:6] == ["obs", "id", "dataset", "label", "split", "group"] + [], hdr
assert hdr[6:6 + len(extra)] == extra and hdr[6 + len(extra):] == ["e%d" % j for j in range(X.shape[1])], hdr
assert [r[0] for r in rows[1:]] == names
emb = np.array([[float(v) for v in r[6 + len(extra):]] for r in rows[1:]], dtype=np.float32)
assert np.array_equal(emb, X), "tsv embeddings differ"
print("ok", store, level, X.shape)
PYEOF
  done
done

# npy metadata file (id,label,split,group columns) next to the .npy, or where --meta says.
mkdir -p meta
expect_status 0 "$PROTLOC" export fixed.h5 --format npy --out feats.npy --meta meta/feats-meta.tsv
expect_status 0 "$PROTLOC" export fixed.h5 --format npy --out feats2.npy --meta "$TEST_TMP/feats2.meta.tsv"
head -1 feats2.meta.tsv | grep -q $'^id\tdataset\tlabel\tsplit\tgroup$' || fail "npy meta header: $(head -1 feats2.meta.tsv)"
[ "$(wc -l <feats2.meta.tsv)" -eq 6 ] || fail "npy meta should have 5 rows + header"
grep -q $'^fov_d\thpa\ter;golgi\tval\tACTB$' feats2.meta.tsv || fail "npy meta row for fov_d wrong"

# Errors: clear message naming the store/what is missing, exit 1, no output and no temp file left behind.
expect_status 1 "$PROTLOC" export vlen.h5 --level cells --out nocells.h5ad
grep -q "vlen.h5 has no /cells level" "$TEST_TMP/last.err" || fail "missing-level error unclear: $(cat "$TEST_TMP/last.err")"
printf 'not an hdf5 file\n' >bad.h5
expect_status 1 "$PROTLOC" export bad.h5 --out bad.h5ad
grep -q "bad.h5" "$TEST_TMP/last.err" || fail "bad-store error does not name the file"
head -c 3000 fixed.h5 >trunc.h5
expect_status 1 "$PROTLOC" export trunc.h5 --format tsv --out trunc.tsv
$PY - <<'PYEOF' || fail "could not write the inconsistent store"
import h5py, numpy as np
with h5py.File("badidx.h5", "w") as f:
    for k in ("id", "dataset", "label", "split", "group"):
        f.create_dataset("items/" + k, data=["a", "b"], dtype=h5py.string_dtype())
    f.create_dataset("cells/embedding", data=np.zeros((2, 4), np.float32))
    f.create_dataset("cells/item", data=np.array([0, 7], np.int64))
PYEOF
expect_status 1 "$PROTLOC" export badidx.h5 --level cells --out badidx.h5ad
grep -q "/cells/item\[1\] = 7 is not a row of /items" "$TEST_TMP/last.err" || fail "bad item index not named: $(cat "$TEST_TMP/last.err")"
for f in nocells.h5ad bad.h5ad trunc.tsv badidx.h5ad; do [ ! -e "$f" ] || fail "$f written despite the error"; done
leftover=$(find . -name '*.tmp.*' | head -3)
[ -z "$leftover" ] || fail "temporary files left behind: $leftover"

# Usage errors → exit 2
expect_status 2 "$PROTLOC" export fixed.h5
expect_status 2 "$PROTLOC" export fixed.h5 --out x.bin
expect_status 2 "$PROTLOC" export fixed.h5 --format csv --out x.csv
expect_status 2 "$PROTLOC" export fixed.h5 --level nuclei --out x.h5ad
expect_status 2 "$PROTLOC" export fixed.h5 --out x.h5ad --meta m.tsv
expect_status 0 "$PROTLOC" export --help
finish
