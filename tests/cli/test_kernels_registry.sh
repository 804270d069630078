#!/usr/bin/env bash
# The kernel backend registry (stages/model/pl_kernels_registry.c) as the command line shows it: `protloc --version`
# lists every backend of the table built in (rows guarded by a CMake option only when that option is ON in this
# build), each with its library's version, in table order; every command's --help names them all; and an unknown
# `--kernels` exits 2 in every command that takes it, naming the value and the same known names.
set -u
. "$(dirname "$0")/lib.sh"
: "${PROTLOC_BUILD_DIR:?PROTLOC_BUILD_DIR must point at the build folder (ctest sets it)}"
cd "$TEST_TMP" || exit 1
mkdir out

# the rows of the table, in order, as "name guard" (guard: the #ifdef macro around the row, or -)
rows=$(awk '/kernels_table\[\] = \{/ {t = 1; next} t && /^\};/ {t = 0}
            t && /^#ifdef/ {g = $2} t && /^#endif/ {g = ""}
            t && match($0, /&pl_kernels_[a-z0-9_]+_backend/) {
              n = substr($0, RSTART + 12, RLENGTH - 20); print n, (g == "" ? "-" : g) }' \
       "$PROTLOC_SOURCE_DIR/stages/model/pl_kernels_registry.c")
[ -n "$rows" ] || fail "no rows found in pl_kernels_registry.c"
expected=()
while read -r name guard; do
  if [ "$guard" = - ] || grep -q "^$guard:BOOL=ON" "$PROTLOC_BUILD_DIR/CMakeCache.txt"; then expected+=("$name"); fi
done <<<"$rows"
known="auto$(printf ', %s' "${expected[@]}")"
echo "backends built in: ${expected[*]}"

# ---- --version: a section listing each backend with a version line, in table order ----
out=$("$PROTLOC" --version) || fail "--version exited non-zero"
listed=$(awk '/^kernel backends/ {s = 1; next} s && /^  [a-z0-9_]+ / {print $1}' <<<"$out" | tr '\n' ' ')
[ "$listed" = "${expected[*]} " ] && pass "--version lists the backends: $listed" \
  || fail "--version lists '$listed', the table has '${expected[*]}': $out"
for name in "${expected[@]}"; do
  grep -qE "^  $name +[^ ]" <<<"$out" && pass "  $name has a version line" || fail "--version: no version for $name"
done

# ---- --help of every command taking --kernels lists the same names ----
for cmd in embed finetune knn probe run; do
  "$PROTLOC" "$cmd" --help >"$TEST_TMP/help.out" 2>&1 || fail "$cmd --help exited non-zero"
  grep -qF -- "--kernels NAME" "$TEST_TMP/help.out" && grep -F -- "--kernels NAME" "$TEST_TMP/help.out" | grep -qF \
    "auto (default)$(printf ', %s' "${expected[@]}")" && pass "$cmd --help lists the backends" \
    || fail "$cmd --help: $(grep -F -- '--kernels' "$TEST_TMP/help.out")"
done

# ---- --kernels nosuch: exit 2 naming the value and every known name, before any input is read ----
for args in "embed --model nope.safetensors --input nope.npy --output out/y.npy" \
            "finetune --model nope.safetensors --input nope.npy --labels nope.npy --out out/ft" \
            "knn --features nope.npy --meta nope.tsv --json out/k.json" \
            "probe --features nope.npy --meta nope.tsv --json out/p.json" \
            "run --manifest nope.tsv --model nope.json --out out/s.h5"; do
  read -r -a A <<<"$args"
  expect_status 2 "$PROTLOC" "${A[@]}" --kernels nosuch
  grep -qF "unknown kernel backend 'nosuch' (known: $known)" "$TEST_TMP/last.err" && pass "  ${A[0]} names the known: $known" \
    || fail "${A[0]}: $(head -1 "$TEST_TMP/last.err")"
  [ -z "$(ls -A out)" ] || { fail "output left behind by ${A[0]}"; rm -rf out/* out/.[!.]*; }
done
finish
