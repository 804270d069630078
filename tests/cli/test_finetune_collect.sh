#!/usr/bin/env bash
# CLI test for `protloc finetune --collect DIR [--probe P]`: report.json records the model and data digests; a clean
# grid gives the summary numpy computes (also with > 256 runs per fraction and > 64 fractions); a huge or non-finite
# number, a string fraction, a report of another kind, another model's or data's run, the same (fraction, repetition)
# twice, a FIFO report or probe, and a probe without the grid's fractions are errors naming the file (exit 1, within
# seconds, nothing written); a folder without report.json is named in a warning.
source "$(dirname "$0")/lib.sh"
cd "$TEST_TMP" || exit 1

"$PROTLOC" -q model init --dim 32 --depth 1 --heads 1 --patch 16 --in-chans 2 --img-size 32 --seed 1 \
  --out m.safetensors || { fail "model init"; finish; }
"$PROTLOC" -q model init --dim 32 --depth 1 --heads 1 --patch 16 --in-chans 2 --img-size 32 --seed 2 \
  --out m2.safetensors || { fail "model init (second model)"; finish; }
$PY - <<'PYEOF' || { fail "numpy inputs"; finish; }
import numpy as np
r = np.random.default_rng(0)
y = np.arange(24) % 3
x = r.standard_normal((24, 2, 32, 32)).astype("<f4") * 0.5
x[:, 0, :16] += y[:, None, None].astype("<f4")   # learnable: class shifts the top half of channel 0
np.save("x.npy", x); np.save("y.npy", y.astype("<i8"))
np.save("x2.npy", x[::-1].copy())
PYEOF
ft=(--input x.npy --labels y.npy --steps 4 --batch 4 --lr 1e-2 --threads 2 --fraction 0.5,1 --seeds 2)
expect_status 0 "$PROTLOC" -q finetune --model m.safetensors "${ft[@]}" --out grid
[ -s grid/grid.tsv ] || { fail "the grid run wrote no grid.tsv"; finish; }

# ---- report.json records the fingerprints ----
$PY - grid/f0.5_s1/report.json "$(sha256sum m.safetensors | cut -c1-64)" "$(sha256sum x.npy | cut -c1-64)" \
  "$(sha256sum y.npy | cut -c1-64)" <<'PYEOF' && pass "report.json: model.weights_sha256, data.source_sha256, data.labels_sha256" || fail "report.json fingerprint"
import json, sys
r = json.load(open(sys.argv[1]))
assert r["model"]["weights_sha256"] == sys.argv[2], r["model"]
assert r["data"]["source_sha256"] == sys.argv[3] and r["data"]["labels_sha256"] == sys.argv[4], r["data"]
assert r["data"]["labels"] == "y.npy", r["data"]
PYEOF

# mkcase DIR: a fresh folder holding a copy of the grid's run folders (no grid.* yet)
mkcase() { rm -rf "$1"; mkdir -p "$1"; cp -r grid/f0.5_s0 grid/f0.5_s1 grid/f1_s0 grid/f1_s1 "$1"/; }
# edit FILE CODE: run python CODE on the report as `r` and write it back
edit() {
  $PY - "$1" "$2" <<'PYEOF' || fail "editing $1"
import json, sys
r = json.load(open(sys.argv[1]))
exec(sys.argv[2])
open(sys.argv[1], "w").write(json.dumps(r, indent=1))
PYEOF
}
# collect_fails DIR TEXT [args]: --collect exits 1 within 20 s (then SIGKILL: a hung run may catch SIGTERM), the
# message holds TEXT, and no grid.* is written
collect_fails() {
  local dir=$1 text=$2; shift 2
  expect_status 1 timeout -k 5 20 "$PROTLOC" finetune --collect "$dir" "$@"
  grep -qF -- "$text" "$TEST_TMP/last.err" || fail "$dir: the message lacks '$text': $(cat "$TEST_TMP/last.err")"
  ls "$dir"/grid.* >/dev/null 2>&1 && fail "$dir: grid.* written despite the error"
}
# expect_grid DIR: grid.tsv holds, per fraction, the runs' count and numpy's mean / sample std of their reports
expect_grid() {
  $PY - "$1" <<'PYEOF'
import glob, json, os, sys
import numpy as np
d = sys.argv[1]
runs = {}
for p in sorted(glob.glob(os.path.join(d, "*", "report.json"))):
    r = json.load(open(p))
    runs.setdefault(r["data"]["fraction"], []).append(r)
want = ["fraction\truns\tn_train_mean\tmacro_f1_mean\tmacro_f1_std\taccuracy_mean\taccuracy_std"]
for f in sorted(runs):
    rs = runs[f]
    f1 = np.array([r["results"]["macro_f1"] for r in rs]); acc = np.array([r["results"]["accuracy"] for r in rs])
    sd = lambda v: v.std(ddof=1) if len(v) > 1 else 0.0
    want.append("%g\t%d\t%.1f\t%.6f\t%.6f\t%.6f\t%.6f" % (f, len(rs), np.mean([r["data"]["n_train"] for r in rs]),
                f1.mean(), sd(f1), acc.mean(), sd(acc)))
got = open(os.path.join(d, "grid.tsv")).read().splitlines()
assert got == want, "\n".join(["got:"] + got + ["want:"] + want)
g = json.load(open(os.path.join(d, "grid.json")))
assert [row["runs"] for row in g["fractions"]] == [len(runs[f]) for f in sorted(runs)], g
PYEOF
}

# ---- the happy path: the same summary as the grid run's, and what numpy computes ----
mkcase happy
expect_status 0 timeout -k 5 20 "$PROTLOC" finetune --collect happy
cmp -s happy/grid.tsv grid/grid.tsv && cmp -s happy/grid.json grid/grid.json && pass "--collect = the grid run's summary" ||
  fail "--collect differs from the grid run's summary: $(diff happy/grid.tsv grid/grid.tsv)"
expect_grid happy && pass "grid.tsv = numpy's mean / std" || fail "grid.tsv differs from numpy"
[ -s happy/grid.png ] && [ -s happy/grid.svg ] || fail "grid plot missing"
cat >probe.json <<'JSON'
{"fractions": [0.25, 0.5, 1.0], "seeds": 2,
 "heads": {"logreg": {"macro_f1_mean": [0.3, 0.4, 0.5], "macro_f1_std": [0.01, 0.02, 0.03]}},
 "config": {"command": "probe"}}
JSON
mkcase withprobe
expect_status 0 timeout -k 5 20 "$PROTLOC" finetune --collect withprobe --probe probe.json
grep -q '"probe_report": "probe.json"' withprobe/grid.json && [ -s withprobe/grid.svg ] || fail "--probe: no probe in the grid"
# a folder without report.json (a run still going) is not counted, and the warning names it
mkcase going
mkdir going/f0.25_s0 && touch going/f0.25_s0/train.jsonl
expect_status 0 timeout -k 5 20 "$PROTLOC" finetune --collect going
grep -q "going/f0.25_s0 has no report.json" "$TEST_TMP/last.err" || fail "no warning for a folder without report.json"
cmp -s going/grid.tsv grid/grid.tsv || fail "a folder without report.json changed the summary"

# ---- numbers: huge, non-finite, out of range, a string fraction, bad seeds ----
mkcase huge && edit huge/f0.5_s0/report.json 'r["results"]["macro_f1"] = 1e308'
collect_fails huge "huge/f0.5_s0/report.json: results.macro_f1 = 1e+308 is outside [0, 1]"
mkcase overflow && sed -i 's/"macro_f1": [0-9.e+-]*/"macro_f1": 1e400/' overflow/f1_s0/report.json
collect_fails overflow "overflow/f1_s0/report.json:"
mkcase nan && edit nan/f1_s1/report.json 'r["results"]["accuracy"] = float("nan")'
collect_fails nan "nan/f1_s1/report.json:"
mkcase negacc && edit negacc/f1_s1/report.json 'r["results"]["accuracy"] = -0.5'
collect_fails negacc "negacc/f1_s1/report.json: results.accuracy = -0.5 is outside [0, 1]"
mkcase strfrac && edit strfrac/f0.5_s1/report.json 'r["data"]["fraction"] = "0.5"'
collect_fails strfrac 'strfrac/f0.5_s1/report.json: data.fraction is a string ("0.5"), not a number'
mkcase zerofrac && edit zerofrac/f0.5_s1/report.json 'r["data"]["fraction"] = 0'
collect_fails zerofrac "zerofrac/f0.5_s1/report.json: data.fraction = 0 is outside (0, 1]"
mkcase bigfrac && edit bigfrac/f0.5_s1/report.json 'r["data"]["fraction"] = 1.5'
collect_fails bigfrac "data.fraction = 1.5 is outside (0, 1]"
mkcase nofrac && edit nofrac/f0.5_s1/report.json 'del r["data"]["fraction"]'
collect_fails nofrac "nofrac/f0.5_s1/report.json: data.fraction is missing"
mkcase negseed && edit negseed/f1_s0/report.json 'r["data"]["seed_index"] = -1'
collect_fails negseed "negseed/f1_s0/report.json: data.seed_index = -1 is outside"
mkcase realseed && edit realseed/f1_s0/report.json 'r["data"]["train_seed"] = 2.5'
collect_fails realseed "realseed/f1_s0/report.json: data.train_seed is 2.5, not an integer"
mkcase badjson && printf '{"command": "finetune", "data": {' >badjson/f1_s0/report.json
collect_fails badjson "badjson/f1_s0/report.json:1:"

# ---- FIFOs: an error within seconds, never a hang ----
mkcase fifo && rm fifo/f0.5_s1/report.json && mkfifo fifo/f0.5_s1/report.json
collect_fails fifo "fifo/f0.5_s1/report.json is a FIFO"
mkcase fifoprobe && mkfifo probe.fifo
collect_fails fifoprobe "probe.fifo is a FIFO" --probe probe.fifo

# ---- reports of another kind ----
mkcase knn
cat >knn/f1_s1/report.json <<'JSON'
{"k": [1, 2], "macro_f1": [0.5, 0.6], "accuracy": [0.5, 0.6], "config": {"command": "knn"}}
JSON
collect_fails knn 'knn/f1_s1/report.json is a `protloc knn` report, not a fine-tuning run'
mkcase probekind && cp probe.json probekind/f1_s1/report.json
collect_fails probekind 'probekind/f1_s1/report.json is a `protloc probe` report'
mkcase gridkind && cp grid/grid.json gridkind/f1_s1/report.json
collect_fails gridkind "gridkind/f1_s1/report.json is a grid summary"
mkcase nokind && echo '{"data": {"fraction": 1}}' >nokind/f1_s1/report.json
collect_fails nokind 'nokind/f1_s1/report.json is not a fine-tuning run'
mkcase probebad
collect_fails probebad 'is a `protloc finetune` report, not a `protloc probe` report' --probe grid/f1_s0/report.json
mkcase probefew
echo '{"fractions": [1.0], "heads": {"logreg": {"macro_f1_mean": [0.5], "macro_f1_std": [0.0]}}, "config": {"command": "probe"}}' >probefew.json
collect_fails probefew "probefew.json has no logreg result at fraction 0.5" --probe probefew.json
mkcase probehuge
sed 's/0.4, 0.5/0.4, 1e308/' probe.json >probehuge.json
collect_fails probehuge "probehuge.json: heads.logreg.macro_f1_mean[2] = 1e+308 is outside [0, 1]" --probe probehuge.json

# ---- another model's or data's run mixed in: the odd one out is named with what differs ----
expect_status 0 "$PROTLOC" -q finetune --model m2.safetensors "${ft[@]}" --out other --task 1
mkcase mixmodel && rm -r mixmodel/f0.5_s1 && cp -r other/f0.5_s1 mixmodel/
collect_fails mixmodel "mixmodel/f0.5_s1/report.json was trained on another model than the other runs: its model.weights_sha256"
expect_status 0 "$PROTLOC" -q finetune --model m.safetensors "${ft[@]/x.npy/x2.npy}" --out otherdata --task 2
mkcase mixdata && rm -r mixdata/f1_s0 && cp -r otherdata/f1_s0 mixdata/
collect_fails mixdata "mixdata/f1_s0/report.json was trained on other data than the other runs: its data.source_sha256"
mkcase mixclasses && edit mixclasses/f0.5_s0/report.json 'r["data"]["class_names"] = ["a", "b", "c"]'
collect_fails mixclasses "mixclasses/f0.5_s0/report.json was trained on other data than the other runs: its data.class_names"
# reports written before the digests: the paths are compared instead
mkcase old
for r in old/*/report.json; do edit "$r" 'del r["model"]["weights_sha256"]; del r["data"]["source_sha256"]'; done
expect_status 0 timeout -k 5 20 "$PROTLOC" finetune --collect old
cmp -s old/grid.tsv grid/grid.tsv || fail "reports without digests: another summary"
mkcase oldmix
for r in oldmix/*/report.json; do edit "$r" 'del r["model"]["weights_sha256"]; del r["data"]["source_sha256"]'; done
edit oldmix/f1_s1/report.json 'r["model"]["weights"] = "elsewhere.safetensors"'
collect_fails oldmix 'oldmix/f1_s1/report.json was trained on another model than the other runs: its model.weights is "elsewhere.safetensors"'
mkcase halfold && edit halfold/f1_s1/report.json 'del r["model"]["weights_sha256"]'
collect_fails halfold "halfold/f1_s1/report.json was trained on another model than the other runs: its model.weights_sha256 is absent"

# ---- the same (fraction, repetition) twice ----
mkcase dup && cp -r dup/f0.5_s0 dup/f0.5_s0_copy
collect_fails dup "dup/f0.5_s0 and dup/f0.5_s0_copy are the same run twice (fraction 0.5, repetition 0)"

# ---- no caps: 300 runs in one fraction, 70 fractions ----
$PY - grid/f1_s0/report.json many manyfr <<'PYEOF' || fail "fabricating many runs"
import json, os, sys
r = json.load(open(sys.argv[1]))
for i in range(300):
    r["data"]["seed_index"] = i; r["results"]["macro_f1"] = (i % 97) / 100; r["results"]["accuracy"] = (i % 89) / 100
    os.makedirs(f"{sys.argv[2]}/f1_s{i}"); json.dump(r, open(f"{sys.argv[2]}/f1_s{i}/report.json", "w"))
r["data"]["seed_index"] = 0
for i in range(70):
    r["data"]["fraction"] = (i + 1) / 70; r["data"]["n_train"] = max(1, (24 * (i + 1)) // 70)
    os.makedirs(f"{sys.argv[3]}/f{i}_s0"); json.dump(r, open(f"{sys.argv[3]}/f{i}_s0/report.json", "w"))
PYEOF
expect_status 0 timeout -k 5 20 "$PROTLOC" finetune --collect many
awk -F'\t' 'NR == 2 && $2 == 300 { ok = 1 } END { exit !ok }' many/grid.tsv && pass "300 runs in one fraction all counted" ||
  fail "300 runs: $(cat many/grid.tsv)"
expect_grid many || fail "300 runs: grid.tsv differs from numpy"
expect_status 0 timeout -k 5 20 "$PROTLOC" finetune --collect manyfr
[ "$(tail -n +2 manyfr/grid.tsv | wc -l)" -eq 70 ] && pass "70 fractions all summarised" || fail "70 fractions: $(wc -l <manyfr/grid.tsv) lines"

# ---- the command line and the folder ----
expect_status 2 "$PROTLOC" finetune --collect
mkdir empty
collect_fails empty "no run reports (*/report.json) in empty"
collect_fails missing "cannot read the folder missing"
finish
