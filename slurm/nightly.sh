#!/usr/bin/env bash
# Nightly refresh: scan the data folders → new manifest → diff against the last one → incremental `protloc run`
# → knn + probe reduce → dated report folder and a `latest` link. Runs from cron (see slurm/crontab.example).
#
# Usage: nightly.sh --data DIR [--data DIR2 ...] --layout opencell|hpa --model CARD.json --work WORKDIR
#                   [--labels CSV] [--level fov|tiles|cells] [--launcher slurm|mpirun] [--ranks N] [--force]
#                   [--scan-arg ARG]... [--run-arg ARG]... [--sbatch-arg ARG]...
#
# WORKDIR holds everything this script owns:
#   nightly.lock            flock: a second nightly.sh while one runs exits 75 at once, touching nothing
#   manifest.tsv            the manifest the current store was built from (replaced right after the store is)
#   store.h5                the current store. protloc run reuses unchanged items and replaces it atomically, and
#                           only when the new one is acceptable: when items fail beyond --max-failed (pass it with
#                           --run-arg) or items that had rows fail again, or nothing produced a row, the previous
#                           store stays byte-identical and the failed items are listed in store.h5.failures.tsv
#   manifests/manifest-STAMP.tsv   every scanned manifest
#   reports/STAMP/          diff.txt, embed.log, reduce.log, knn/, probe/, summary.txt  (STAMP = UTC date-time)
#   reports/latest          symlink to the newest complete report
#   logs/nightly-STAMP.log  the full log of the run
# Exit status: 0 = done (or nothing changed: no new report), 1 = a step failed or the run kept the previous store
# (the log names the step and says, checked on disk, whether the store and manifest were replaced; a partial
# report is left as reports/STAMP.failed), 2 = bad arguments, 75 = another run holds the lock.
# Environment: PROTLOC (protloc binary; default `protloc` on PATH), PROTLOC_SLURM_DIR (folder with the sbatch
# scripts; default: this script's folder), PROTLOC_KNN_ARGS / PROTLOC_PROBE_ARGS (passed to the reduce).
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

PROTLOC=${PROTLOC:-protloc}
SLURM_DIR=${PROTLOC_SLURM_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
data=() scan_args=() run_args=() sbatch_args=()
layout="" labels="" model="" work="" level=fov launcher=slurm ranks=2 force=0
while [ $# -gt 0 ]; do
  case $1 in
    --data) data+=("${2:?--data needs a folder}"); shift 2 ;;
    --layout) layout=${2:?}; shift 2 ;;
    --labels) labels=${2:?}; shift 2 ;;
    --model) model=${2:?}; shift 2 ;;
    --work) work=${2:?}; shift 2 ;;
    --level) level=${2:?}; shift 2 ;;
    --launcher) launcher=${2:?}; shift 2 ;;
    --ranks) ranks=${2:?}; shift 2 ;;
    --force) force=1; shift ;;
    --scan-arg) scan_args+=("${2:?}"); shift 2 ;;
    --run-arg) run_args+=("${2:?}"); shift 2 ;;
    --sbatch-arg) sbatch_args+=("${2:?}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "nightly.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
if [ ${#data[@]} -eq 0 ] || [ -z "$layout" ] || [ -z "$model" ] || [ -z "$work" ]; then
  echo "nightly.sh: --data, --layout, --model and --work are required (try --help)" >&2; exit 2
fi
case $launcher in slurm|mpirun) ;; *) echo "nightly.sh: --launcher must be slurm or mpirun" >&2; exit 2 ;; esac
case $ranks in ''|*[!0-9]*|0) echo "nightly.sh: --ranks wants a positive integer" >&2; exit 2 ;; esac

mkdir -p "$work/manifests" "$work/reports" "$work/logs"
work=$(cd "$work" && pwd)

# ---- one run at a time ----
exec 9>"$work/nightly.lock"
if ! flock -n 9; then
  echo "nightly.sh: another nightly run holds $work/nightly.lock; not starting" >&2
  exit 75
fi

stamp=$(date -u +%Y-%m-%dT%H%M%SZ)
while [ -e "$work/reports/$stamp" ] || [ -e "$work/reports/$stamp.partial" ]; do sleep 1; stamp=$(date -u +%Y-%m-%dT%H%M%SZ); done
log="$work/logs/nightly-$stamp.log"
exec > >(tee -a "$log") 2>&1
tee_pid=$!
report="$work/reports/$stamp.partial"
mkdir -p "$report"
step="start"
say() { echo "$(date -u +%H:%M:%S) nightly: $*"; }
# What is on disk now, so that every claim in the log is checked rather than assumed.
file_id() { stat -c '%d:%i:%s:%Y' "$1" 2>/dev/null || echo absent; }
store_before=$(file_id "$work/store.h5")
manifest_before=$(file_id "$work/manifest.tsv")
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    local store_said manifest_said
    if [ "$(file_id "$work/store.h5")" = "$store_before" ]; then
      if [ "$store_before" = absent ]; then store_said="no store was written"; else store_said="the previous store is untouched"; fi
    else
      store_said="the store WAS replaced by this run's"
    fi
    if [ "$(file_id "$work/manifest.tsv")" = "$manifest_before" ]; then manifest_said="the manifest is untouched"
    else manifest_said="the manifest was updated to match it"; fi
    say "FAILED during step '$step' (exit $rc); $store_said; $manifest_said; log: $log"
    if [ -d "$report" ]; then mv "$report" "$work/reports/$stamp.failed" 2>/dev/null || true; fi
  fi
  # let tee write the last lines before this script's exit is seen
  exec 1>&- 2>&-
  wait "$tee_pid" 2>/dev/null || true
}
trap on_exit EXIT
fail() { say "ERROR: $*"; exit 1; }

command -v "$PROTLOC" >/dev/null 2>&1 || fail "protloc binary '$PROTLOC' not found (set PROTLOC)"
[ -f "$model" ] || fail "model card $model not found"
say "run $stamp: data ${data[*]}, layout $layout, model $model, level $level, launcher $launcher"

# ---- 1. scan ----
step="scan"
new="$work/manifests/manifest-$stamp.tsv"
label_opt=()
[ -z "$labels" ] || label_opt=(--labels "$labels")
part=0
for d in "${data[@]}"; do
  [ -d "$d" ] || fail "data folder $d not found"
  "$PROTLOC" manifest scan "$d" --layout "$layout" "${label_opt[@]}" --absolute "${scan_args[@]}" \
    --out "$report/scan-$part.tsv" || fail "protloc manifest scan $d failed"
  part=$((part + 1))
done
# Concatenate the parts: the first header, then every data row (all parts must have the same columns).
header=""
for f in "$report"/scan-*.tsv; do
  h=$(awk '!/^#/ { print; exit }' "$f")
  if [ -z "$header" ]; then
    header=$h
    printf '%s\n' "$header"
  elif [ "$h" != "$header" ]; then
    fail "the data folders give manifests with different columns ($f)"
  fi
  grep -v '^#' "$f" | tail -n +2
done >"$new.tmp"
mv "$new.tmp" "$new"
rm -f "$report"/scan-*.tsv
say "scanned $(($(grep -vc '^#' "$new") - 1)) items -> $new"

# ---- 2. diff ----
step="diff"
old="$work/manifest.tsv"
changed=1
if [ -f "$old" ] && [ -f "$work/store.h5" ]; then
  rc=0
  "$PROTLOC" manifest diff "$old" "$new" >"$report/diff.txt" || rc=$?
  case $rc in
    0) changed=0 ;;
    3) changed=1 ;;
    *) fail "protloc manifest diff failed (exit $rc)" ;;
  esac
  say "diff: $(tail -n 1 "$report/diff.txt")"
else
  echo "# first run: no previous manifest/store" >"$report/diff.txt"
  say "first run: everything is new"
fi
if [ "$changed" -eq 0 ] && [ "$force" -eq 1 ]; then say "no changes since the last run; --force: running anyway"; fi
if [ "$changed" -eq 0 ] && [ "$force" -eq 0 ]; then
  say "no changes since the last run: nothing to do"
  rm -rf "$report"
  exit 0
fi

# ---- 3. embed (incremental) and 4. reduce ----
store="$work/store.h5"
outside=()
if "$PROTLOC" run --help 2>/dev/null | grep -q -- '--allow-outside-root'; then outside=(--allow-outside-root); fi
run_cmd=(--manifest "$new" --model "$model" --out "$store" --level "$level" "${outside[@]}" "${run_args[@]}")

# What protloc run's exit status means for this script (docs/guide.md "Exit statuses"); fails unless the store
# was written (0, or 3 = written with failed items recorded in its /failures).
embed_outcome() {  # embed_outcome STATUS WHERE
  local rc=$1 where=$2
  case $rc in
    0) return 0 ;;
    3) say "protloc run finished with failed items (stored in $store /failures; listed in $store.failures.tsv)"; return 0 ;;
    4) fail "protloc run kept the previous store: items failed beyond --max-failed or failed where the previous store had rows (exit 4); failed items: $store.failures.tsv; $where" ;;
    5) fail "protloc run kept the previous store: no item produced a row (exit 5); failed items: $store.failures.tsv; $where" ;;
    6) fail "another protloc run holds $store.lock (exit 6); nothing was done" ;;
  esac
  if [ "$rc" -gt 128 ] && [ "$rc" -lt 160 ]; then
    fail "protloc run was stopped by signal $((rc - 128)) (exit $rc); its journal keeps the finished items and the next run resumes them; $where"
  fi
  fail "protloc run failed (exit $rc); $where"
}

wait_job() {  # wait_job JOBID STATUSFILE WHAT: poll squeue every 0.2 s, then read the status file
  local id=$1 status_file=$2 what=$3
  while squeue -h -j "$id" -o %T 2>/dev/null | grep -q .; do sleep 0.2; done
  local state line
  state=$(scontrol show job "$id" 2>/dev/null | tr ' ' '\n' | awk -F= '$1 == "JobState" && !n++ { print $2 }')
  line=$(cat "$status_file" 2>/dev/null || echo none)
  if [ "$what" = embed ]; then   # protloc.sbatch writes "ok|kept|locked|interrupted|failed STATUS"
    case $line in
      ok*|kept*|locked*|interrupted*|failed*) embed_outcome "${line##* }" "job $id (state ${state:-unknown}), log $report/embed.log" ;;
      *) fail "embed job $id ended without a status (state ${state:-unknown}); see $report/embed.log" ;;
    esac
  elif [ "${line%% *}" != ok ]; then
    fail "$what job $id did not succeed (state ${state:-unknown}; status: $line)"
  fi
  say "$what job $id finished (${state:-COMPLETED})"
}

publish_manifest() {  # the store now matches the new manifest: the next run diffs against it
  cp "$new" "$work/manifest.tsv.tmp" && mv "$work/manifest.tsv.tmp" "$work/manifest.tsv"
}

if [ "$launcher" = slurm ]; then
  step="submit"
  embed_id=$(PROTLOC_STATUS="$report/embed.status" sbatch --parsable --ntasks="$ranks" --output="$report/embed.log" \
    "${sbatch_args[@]}" "$SLURM_DIR/protloc.sbatch" "${run_cmd[@]}") || fail "sbatch protloc.sbatch failed"
  embed_id=${embed_id%%;*}
  reduce_id=$(PROTLOC_STATUS="$report/reduce.status" sbatch --parsable --ntasks="$ranks" --output="$report/reduce.log" \
    --dependency="afterok:$embed_id" --kill-on-invalid-dep=yes "${sbatch_args[@]}" "$SLURM_DIR/reduce.sbatch" \
    --store "$store" --report-dir "$report" --level "$level") || fail "sbatch reduce.sbatch failed"
  reduce_id=${reduce_id%%;*}
  say "submitted embed job $embed_id and reduce job $reduce_id (afterok:$embed_id)"
  step="embed (job $embed_id, log $report/embed.log)"
  wait_job "$embed_id" "$report/embed.status" embed
  publish_manifest
  step="reduce (job $reduce_id, log $report/reduce.log)"
  wait_job "$reduce_id" "$report/reduce.status" reduce
else
  step="embed (mpirun, log $report/embed.log)"
  rc=0
  mpirun -np "$ranks" "$PROTLOC" run "${run_cmd[@]}" >"$report/embed.log" 2>&1 || rc=$?
  embed_outcome "$rc" "see $report/embed.log"
  publish_manifest
  step="reduce (log $report/reduce.log)"
  read -r -a knn_extra <<<"${PROTLOC_KNN_ARGS:-}"
  read -r -a probe_extra <<<"${PROTLOC_PROBE_ARGS:-}"
  {
    mpirun -np "$ranks" "$PROTLOC" knn --store "$store" --level "$level" --report-dir "$report/knn" "${knn_extra[@]}" &&
    "$PROTLOC" probe --store "$store" --level "$level" --report-dir "$report/probe" "${probe_extra[@]}"
  } >"$report/reduce.log" 2>&1 || fail "protloc knn/probe failed; see $report/reduce.log"
fi

# ---- 5. publish ----
step="publish"
[ -f "$store" ] || fail "protloc run reported success but $store is missing"
{
  echo "protloc nightly report $stamp"
  echo "manifest: $new"
  echo "store: $store"
  echo "model: $model"
  echo "diff: $(tail -n 1 "$report/diff.txt")"
  grep -h -i -E 'added.*changed.*removed' "$report/embed.log" | tail -n 1 | sed 's/^/run: /' || true
} >"$report/summary.txt"
mv "$report" "$work/reports/$stamp"
report="$work/reports/$stamp"
ln -sfn "$stamp" "$work/reports/latest.tmp"
mv -T "$work/reports/latest.tmp" "$work/reports/latest"
say "done: report $report (latest -> $stamp)"
