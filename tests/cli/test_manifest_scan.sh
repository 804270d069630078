#!/usr/bin/env bash
# protloc manifest scan / diff: OpenCell annotation labels (868 single grade-3 targets), HPA channel sets with masks,
# hash splits that never split a group and stay put when images are added, manifest check on real sample files,
# diff output and exit statuses, clear errors.
set -u
. "$(dirname "$0")/lib.sh"
# every shared file the script reads, checked up front: a require_shared further down would exit 77 after checks that
# may have failed, reporting them as skipped
require_shared samples/opencell_annotations/2021-09-29-public-annotations-flat.csv
require_shared samples/opencell_hoechst_proj/FOV_00007_RAW.tif
require_shared samples/hpa_1000_A12_2/1000_A12_2_green.png
require_shared samples/hpa_1000_A12_2/1000_A12_2_cellmask.png
ANN="$PROTLOC_SHARED_DIR/samples/opencell_annotations/2021-09-29-public-annotations-flat.csv"
cd "$TEST_TMP" || exit 1

# ---- OpenCell: one (empty) projection file per annotated target, named like OpenCell's downloads ----
mkdir -p oc/plate1 oc/plate2
tail -n +2 "$ANN" | cut -d, -f1,2 | sort -u | awk -F, '{ d = (NR % 2) ? "plate1" : "plate2";
  printf "oc/%s/OC-FOV_%s_%s_CID%06d_FID%08d_proj.tif\n", d, $2, $1, NR, NR }' | xargs touch
n_files=$(find oc -name '*_proj.tif' | wc -l)
[ "$n_files" -eq 1310 ] || fail "expected 1310 targets in the annotation CSV, made $n_files files"
mkdir -p m   # a FILE option's folder must exist (docs/guide.md "Output paths")
expect_status 0 "$PROTLOC" manifest scan oc --layout opencell --labels "$ANN" --out m/all.tsv
expect_status 0 "$PROTLOC" manifest scan oc --layout opencell --labels "$ANN" --labelled-only --out m/single.tsv
[ "$(grep -vc '^#' m/single.tsv)" -eq 869 ] || fail "labelled-only manifest should have 868 items + header, has $(grep -vc '^#' m/single.tsv)"
head -2 m/all.tsv | tail -1 | grep -q $'^id\tdataset\tlabel\tsplit\tgroup\tpixel_size_um\tnucleus\tprotein$' \
  || fail "opencell header: $(head -2 m/all.tsv | tail -1)"
# Independent reference: python computes the single grade-3 class per target; compare every row.
$PY - "$ANN" m/all.tsv "$(pwd -P)" <<'PYEOF' || fail "opencell labels/groups/splits/paths differ from the reference"
import csv, sys, collections
ann, man, cwd = sys.argv[1:4]
g3 = collections.defaultdict(set)
for r in csv.DictReader(open(ann)):
    if r["annotation_grade"] == "3":
        g3[r["target_name"]].add(r["annotation_name"])
rows = [r for r in csv.DictReader((l for l in open(man) if not l.startswith("#")), delimiter="\t")]
assert len(rows) == 1310, len(rows)
n_single = 0
split_of = {}
for r in rows:
    target = r["id"].split("/")[-1].split("_")[1]
    want = next(iter(g3[target])) if len(g3[target]) == 1 else ""
    n_single += want != ""
    assert r["label"] == want, (r["id"], r["label"], want)
    assert r["group"] == target, (r["id"], r["group"])
    assert r["dataset"] == "opencell" and r["pixel_size_um"] == "0.206"
    # data outside the manifest's folder → absolute paths
    assert r["nucleus"] == cwd + "/oc/" + r["id"] + "_proj.tif#0", r["nucleus"]
    assert r["protein"].endswith("_proj.tif#1")
    assert split_of.setdefault(r["group"], r["split"]) == r["split"], "group split across train/test"
assert n_single == 868, n_single
test = sum(1 for s in split_of.values() if s == "test")
assert 0.14 < test / len(split_of) < 0.26, test / len(split_of)
print("opencell reference ok:", n_single, "single-label targets;", test, "test groups")
PYEOF
# Deterministic, and stable when images are added: old rows keep their split.
expect_status 0 "$PROTLOC" manifest scan oc --layout opencell --labels "$ANN" --out m/again.tsv
cmp -s m/all.tsv m/again.tsv || fail "scan is not deterministic"
touch oc/plate2/OC-FOV_AAMP_ENSG00000127837_CID999999_FID99999999_proj.tif
expect_status 0 "$PROTLOC" manifest scan oc --layout opencell --labels "$ANN" --out m/more.tsv
expect_status 3 "$PROTLOC" manifest diff m/all.tsv m/more.tsv
grep -q $'^added\tplate2/OC-FOV_AAMP_ENSG00000127837_CID999999_FID99999999$' "$TEST_TMP/last.out" || fail "diff does not list the added image"
grep -q '^# added 1, changed 0, removed 0, unchanged 1310$' "$TEST_TMP/last.out" || fail "diff summary: $(tail -1 "$TEST_TMP/last.out")"
# Paths relative to the manifest's folder when the data lies below it.
expect_status 0 "$PROTLOC" manifest scan oc --layout opencell --out oc/manifest.tsv
grep -q $'\tplate1/OC-FOV_AAMP_ENSG00000127837_CID[0-9]*_FID[0-9]*_proj.tif#0\t' oc/manifest.tsv || fail "paths below the manifest should be relative"
expect_status 0 "$PROTLOC" manifest check oc/manifest.tsv
# Folds instead of train/test; --test-fraction 0 → everything train.
"$PROTLOC" -q manifest scan oc --layout opencell --folds 5 --absolute | awk -F'\t' 'NR>2 {print $4}' | sort -u | tr '\n' ' ' \
  | grep -qx '0 1 2 3 4 ' || fail "--folds 5 should give folds 0..4"
"$PROTLOC" -q manifest scan oc --layout opencell --test-fraction 0 --absolute | awk -F'\t' 'NR>2 {print $4}' | sort -u \
  | grep -qx train || fail "--test-fraction 0 should put everything in train"
# Without labels: group from the ENSG token.
"$PROTLOC" -q manifest scan oc --layout opencell --absolute | grep -q $'\tENSG00000127837\t' || fail "no-label group should be the ENSG id"

# ---- real files: the OpenCell sample projections (renamed *_proj.tif) pass `manifest check` ----
mkdir -p real
for f in "$PROTLOC_SHARED_DIR"/samples/opencell_hoechst_proj/*.tif; do
  b=$(basename "$f" _RAW.tif); ln -s "$f" "real/OC-FOV_${b#FOV_}_proj.tif"
done
expect_status 0 "$PROTLOC" manifest scan real --layout opencell --out real/manifest.tsv
[ "$(grep -vc '^#' real/manifest.tsv)" -eq 8 ] || fail "7 sample projections should give 7 items"
# the links point outside the data root: containment is checked on the resolved path, so `check` names them and
# accepts them only with --allow-outside-root; a link that stays inside the root is fine
expect_status 1 "$PROTLOC" manifest check real/manifest.tsv
grep -q "outside the root folder .*(a symbolic link; use --allow-outside-root)" "$TEST_TMP/last.err" \
  || fail "symlink escape not named: $(cat "$TEST_TMP/last.err")"
expect_status 0 "$PROTLOC" manifest check real/manifest.tsv --allow-outside-root
mkdir -p inside/data
cp "$PROTLOC_SHARED_DIR/samples/opencell_hoechst_proj/FOV_00007_RAW.tif" inside/data/FOV_00007_RAW.tif
ln -s data/FOV_00007_RAW.tif inside/OC-FOV_00007_proj.tif
expect_status 0 "$PROTLOC" manifest scan inside --layout opencell --out inside/manifest.tsv
expect_status 0 "$PROTLOC" manifest check inside/manifest.tsv

# ---- HPA: {id}_{red,green,blue,yellow}.png sets; incomplete sets are named; masks; id,labels CSV ----
HPA="$PROTLOC_SHARED_DIR/samples/hpa_1000_A12_2"
expect_status 1 "$PROTLOC" manifest scan "$HPA" --layout hpa
grep -q "1000_A12_2: missing red, blue, yellow channel" "$TEST_TMP/last.err" || fail "incomplete HPA set not named: $(cat "$TEST_TMP/last.err")"
grep -q "no complete {id}_{red,green,blue,yellow}.png sets" "$TEST_TMP/last.err" || fail "empty HPA scan error unclear"
mkdir -p hpa
for c in red green blue yellow; do ln -s "$HPA/1000_A12_2_green.png" "hpa/1000_A12_2_$c.png"; done
ln -s "$HPA/1000_A12_2_cellmask.png" hpa/1000_A12_2_cellmask.png
for c in red green blue yellow; do : >"hpa/1000_B3_1_$c.png"; done
for c in green blue; do : >"hpa/2000_C4_1_$c.png"; done
printf 'Id,Target\n1000_A12_2,16 0\n1000_B3_1,25\n' >hpa/labels.csv
expect_status 0 "$PROTLOC" manifest scan hpa --layout hpa --labels hpa/labels.csv --out hpa/manifest.tsv
grep -q "2000_C4_1: missing red, yellow" "$TEST_TMP/last.err" || fail "partial HPA set not reported"
head -2 hpa/manifest.tsv | tail -1 | grep -q $'^id\tdataset\tlabel\tsplit\tgroup\tmicrotubules\tprotein\tnucleus\ter\tmask$' \
  || fail "hpa header: $(head -2 hpa/manifest.tsv | tail -1)"
grep -q $'^1000_A12_2\thpa\t16;0\t[a-z]*\t1000_A12\t1000_A12_2_red.png\t1000_A12_2_green.png\t1000_A12_2_blue.png\t1000_A12_2_yellow.png\t1000_A12_2_cellmask.png$' \
  hpa/manifest.tsv || fail "hpa row wrong: $(grep 1000_A12_2 hpa/manifest.tsv)"
grep -q $'^1000_B3_1\thpa\t25\t[a-z]*\t1000_B3\t.*\t$' hpa/manifest.tsv || fail "hpa row without mask wrong"
expect_status 1 "$PROTLOC" manifest check hpa/manifest.tsv
grep -q "1000_A12_2_cellmask.png' resolves to .*outside the root folder" "$TEST_TMP/last.err" || fail "HPA symlink escape not named"
expect_status 0 "$PROTLOC" manifest check hpa/manifest.tsv --allow-outside-root

# ---- diff: changed fields, removed ids, exit statuses ----
sed 's/\t16;0\t/\t16\t/' hpa/manifest.tsv | grep -v 1000_B3_1 >hpa/edited.tsv
expect_status 3 "$PROTLOC" manifest diff hpa/manifest.tsv hpa/edited.tsv
grep -q $'^changed\t1000_A12_2\tlabel$' "$TEST_TMP/last.out" || fail "changed label not reported: $(cat "$TEST_TMP/last.out")"
grep -q $'^removed\t1000_B3_1$' "$TEST_TMP/last.out" || fail "removed id not reported"
expect_status 3 "$PROTLOC" manifest diff --summary hpa/manifest.tsv hpa/edited.tsv
[ "$(cat "$TEST_TMP/last.out")" = "# added 0, changed 1, removed 1, unchanged 0" ] || fail "--summary: $(cat "$TEST_TMP/last.out")"
expect_status 0 "$PROTLOC" manifest diff hpa/manifest.tsv hpa/manifest.tsv
printf 'id\tdataset\tlabel\tsplit\tgroup\tprotein\na\tx\t\tbogus\tg\tp.png\n' >bad.tsv
expect_status 1 "$PROTLOC" manifest diff hpa/manifest.tsv bad.tsv
grep -q "bad.tsv:2:" "$TEST_TMP/last.err" || fail "diff of an invalid manifest should name file:line: $(cat "$TEST_TMP/last.err")"
expect_status 2 "$PROTLOC" manifest diff hpa/manifest.tsv
expect_status 0 "$PROTLOC" manifest diff --help

# ---- scan errors and usage ----
printf 'ensg_id,target_name,annotation_name,annotation_grade\nENSG1,A,er,4\n' >badgrade.csv
expect_status 1 "$PROTLOC" manifest scan oc --layout opencell --labels badgrade.csv
grep -q "badgrade.csv:2:4: annotation_grade '4'" "$TEST_TMP/last.err" || fail "bad grade not located: $(cat "$TEST_TMP/last.err")"
printf 'foo,bar\n1,2\n' >badhdr.csv
expect_status 1 "$PROTLOC" manifest scan oc --layout opencell --labels badhdr.csv
grep -q "badhdr.csv:1: unrecognised labels header" "$TEST_TMP/last.err" || fail "bad header not explained"
printf 'id,labels\nOC-a,nucle\xe9us\n' >latin1.csv   # Latin-1, not UTF-8
expect_status 1 "$PROTLOC" manifest scan oc --layout opencell --labels latin1.csv
grep -q "latin1.csv:2:11: invalid UTF-8 (byte 0xe9)" "$TEST_TMP/last.err" || fail "Latin-1 labels: $(cat "$TEST_TMP/last.err")"
{ printf 'id,labels\nOC-a,'; head -c 5000 /dev/zero | tr '\0' 'x'; printf '\n'; } >longlab.csv
expect_status 1 "$PROTLOC" manifest scan oc --layout opencell --labels longlab.csv
grep -q "longlab.csv:2:2: labels of 5000 bytes, more than 4096" "$TEST_TMP/last.err" || fail "long label: $(cat "$TEST_TMP/last.err")"
mkdir -p empty
expect_status 1 "$PROTLOC" manifest scan empty --layout opencell
grep -q "no \*_proj.tif files found" "$TEST_TMP/last.err" || fail "empty folder error unclear"
expect_status 1 "$PROTLOC" manifest scan does-not-exist --layout opencell
expect_status 2 "$PROTLOC" manifest scan oc
expect_status 2 "$PROTLOC" manifest scan oc --layout zeiss
expect_status 2 "$PROTLOC" manifest scan oc --layout opencell --test-fraction 1.5
expect_status 2 "$PROTLOC" manifest scan oc --layout opencell --bogus
expect_status 0 "$PROTLOC" manifest scan --help
[ ! -e m/none.tsv ] || fail "unexpected output"
finish
