#!/usr/bin/env bash
# CLI test: `protloc finetune --manifest` prepares its data through `protloc run`'s preparation (pl_card_prep.h) and
# lists failed items with run's failures.tsv writer (pl_failures.h): on a manifest with one truncated image, finetune
# exits 3 and DIR/failures.tsv has exactly run's header and columns and names the item, with the same id, line, stage
# and message as run's STORE.h5.failures.tsv for the same manifest; and run and finetune agree on the number of tiles
# and of cells (built-in nucleus segmentation, no masks) of the same items.
source "$(dirname "$0")/lib.sh"
cd "$TEST_TMP" || exit 1

"$PROTLOC" synth --kind opencell --classes 2 --per-class 6 --seed 5 --size 160 --out data >/dev/null 2>&1 ||
  { fail "synth"; finish; }
"$PROTLOC" model init --dim 32 --depth 1 --heads 2 --patch 16 --in-chans 2 --img-size 32 --seed 1 \
  --out vit.safetensors >/dev/null 2>&1 || fail "model init"
cat >card.json <<JSON
{"name": "tiny-test-vit", "weights": "vit.safetensors", "heads": 2, "input_slots": ["protein", "nucleus"],
 "normalisation": {"mode": "self"}, "pixel_size_um": 0.206, "patch": 16}
JSON
short=(--model card.json --size 32 --epochs 1 --batch 8 --lr 1e-3 --threads 2)

# ---- one bad item: finetune's failures.tsv is run's ----
cp -r data bad
bad=$(awk -F'\t' '!/^#/ && $4 == "train" { print $1; exit }' bad/manifest.tsv)
[ -n "$bad" ] || fail "no train item in the manifest"
truncate -s 1000 "bad/${bad}_proj.tif"
expect_status 3 "$PROTLOC" finetune --manifest bad/manifest.tsv "${short[@]}" --out ftbad
expect_status 3 "$PROTLOC" run --manifest bad/manifest.tsv --model card.json --out bad.h5 --threads 2 --no-progress
header=$'id\tline\tstage\tregression\tmessage'
[ "$(head -1 ftbad/failures.tsv 2>/dev/null)" = "$header" ] && pass "finetune's failures.tsv has run's header" ||
  fail "finetune's failures.tsv header: $(head -1 ftbad/failures.tsv 2>&1)"
[ "$(head -1 bad.h5.failures.tsv 2>/dev/null)" = "$header" ] || fail "run's failures.tsv header: $(head -1 bad.h5.failures.tsv 2>&1)"
[ "$(wc -l <ftbad/failures.tsv)" -eq 2 ] || fail "finetune's failures.tsv should list one item: $(cat ftbad/failures.tsv)"
awk -F'\t' -v id="$bad" 'NR == 2 && NF == 5 && $1 == id && $2 ~ /^[0-9]+$/ && $3 == "decode" && $4 == "no" && $5 != "" \
  { ok = 1 } END { exit !ok }' ftbad/failures.tsv && pass "finetune's failures.tsv names $bad with run's five columns" ||
  fail "finetune's failures.tsv line: $(cat ftbad/failures.tsv)"
line=$(grep -n "^$bad	" bad/manifest.tsv | cut -d: -f1)
[ "$(cut -f2 ftbad/failures.tsv | tail -1)" = "$line" ] || fail "manifest line of $bad: $line, listed $(cut -f2 ftbad/failures.tsv | tail -1)"
cmp -s ftbad/failures.tsv bad.h5.failures.tsv && pass "run and finetune list the bad item identically" ||
  fail "run and finetune list the bad item differently: $(diff ftbad/failures.tsv bad.h5.failures.tsv)"

# ---- run and finetune: the same tiles and cells of the same items ----
# (one level per run: a run fails an item whose cells fail at every level it embeds.) At this size the built-in
# segmentation finds no cell in some items: both commands must fail the same items, at the same step.
for lv in tiles cells; do
  "$PROTLOC" run --manifest data/manifest.tsv --model card.json --out "$lv.h5" --level "$lv" --tile 48 --crop 48 \
    --threads 2 --no-progress >"$lv.run.log" 2>&1
  rs=$?
  "$PROTLOC" finetune --manifest data/manifest.tsv "${short[@]}" --out "ft-$lv" --level "$lv" --tile 48 --crop 48 \
    >"$lv.ft.log" 2>&1
  fs=$?
  { [ "$rs" -eq "$fs" ] && { [ "$rs" -eq 0 ] || [ "$rs" -eq 3 ]; }; } ||
    { fail "--level $lv: run exited $rs, finetune $fs"; cat "$lv.run.log" "$lv.ft.log" >&2; continue; }
  if [ "$rs" -eq 3 ]; then
    cmp -s "$lv.h5.failures.tsv" "ft-$lv/failures.tsv" && pass "--level $lv: the same failed items ($(($(wc -l <"$lv.h5.failures.tsv") - 1)))" ||
      fail "--level $lv: failed items differ: $(diff "$lv.h5.failures.tsv" "ft-$lv/failures.tsv")"
  fi
  $PY - "$lv.h5" "ft-$lv/report.json" "$lv" <<'PYEOF' || fail "--level $lv: sample counts differ from protloc run's"
import json, sys, h5py
n = h5py.File(sys.argv[1])[f"{sys.argv[3]}/embedding"].shape[0]
d = json.load(open(sys.argv[2]))["data"]
assert d["n_train"] + d["n_val"] + d["n_test"] == n and n > 0, (d, n)
print(f"--level {sys.argv[3]}: {n} samples, as protloc run stores")
PYEOF
done
finish
