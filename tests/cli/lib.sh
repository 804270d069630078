# Helpers sourced by tests/cli/test_*.sh: failure reporting, status checks, shared-sample lookup, temp dirs.
# shellcheck shell=bash
: "${PROTLOC:?PROTLOC must point at the protloc binary (ctest sets it)}"
: "${PROTLOC_SOURCE_DIR:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${PROTLOC_SHARED_DIR:=$PROTLOC_SOURCE_DIR/../shared}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
PY=/usr/bin/python3
failures=0
TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/protloc-cli-XXXXXX")
trap 'rm -rf "$TEST_TMP"' EXIT

fail() { echo "FAIL: $*" >&2; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }
# expect_status CODE cmd args...: run and compare the exit status
expect_status() {
  local want=$1; shift
  "$@" >"$TEST_TMP/last.out" 2>"$TEST_TMP/last.err"
  local got=$?
  if [ "$got" -ne "$want" ]; then
    fail "expected exit $want, got $got: $*"; sed 's/^/  | /' "$TEST_TMP/last.err" >&2
  else
    pass "exit $want: $*"
  fi
}
# require_shared REL: exit 77 (ctest: skipped) with a visible message when a shared file is absent
require_shared() {
  if [ ! -e "$PROTLOC_SHARED_DIR/$1" ]; then
    echo "SKIP: $PROTLOC_SHARED_DIR/$1 not found" >&2; exit 77
  fi
}
# skip_part WHAT: a part of the test cannot run (a shared file is absent); the rest runs, and the test then
# reports skipped (exit 77) instead of passed
skipped_parts=0
skip_part() { echo "SKIP: $*" >&2; skipped_parts=$((skipped_parts + 1)); }
# cpu_has_avx512_bf16: whether the CPU reports AVX512-BF16 as pl_cpu_level (stages/core/pl_dispatch.c) requires it:
# avx512f, avx512bw, avx512vl and avx512_bf16 in /proc/cpuinfo's flags (asked of the CPU, never of an error message)
cpu_has_avx512_bf16() {
  local flags f
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  for f in avx512f avx512bw avx512vl avx512_bf16; do
    case "$flags" in *" $f "*) ;; *) return 1 ;; esac
  done
}
# tiny_synth_card NAME: in the current folder, `protloc synth` OpenCell-style data (8 classes x 40 fields of view of
# 128 px, seed 1) in data/, a tiny ViT from `protloc model init` (dim 64, depth 2, 2 heads, patch 16, 2 channels,
# 64 px, seed 1) in vit.safetensors, and card.json (named NAME) feeding it protein + nucleus. Returns 1 on failure.
tiny_synth_card() {
  "$PROTLOC" synth --kind opencell --classes 8 --per-class 40 --seed 1 --size 128 --out data >/dev/null 2>&1 || return 1
  "$PROTLOC" model init --dim 64 --depth 2 --heads 2 --patch 16 --in-chans 2 --img-size 64 --seed 1 \
    --out vit.safetensors >/dev/null 2>&1 || return 1
  cat >card.json <<JSON
{"name": "$1", "weights": "vit.safetensors", "heads": 2, "input_slots": ["protein", "nucleus"],
 "normalisation": {"mode": "self"}, "pixel_size_um": 0.206, "patch": 16}
JSON
}
finish() {
  if [ "$failures" -ne 0 ]; then echo "$failures check(s) failed" >&2; exit 1; fi
  if [ "$skipped_parts" -ne 0 ]; then echo "the other checks passed; $skipped_parts part(s) skipped" >&2; exit 77; fi
  echo "all checks passed"; exit 0
}
