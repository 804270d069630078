#!/usr/bin/env bash
# protloc manifest check: a valid manifest gives a summary; every kind of problem is reported as
# file:line:column (duplicate id, unknown role, missing file, bad split, wrong column count, bad page, path
# escaping the root, missing required column); --root, --roles and --allow-outside-root work.
source "$(dirname "$0")/lib.sh"
M="$TEST_TMP/m"
mkdir -p "$M/img" "$TEST_TMP/outside"
: >"$M/img/a.tif"; : >"$M/img/b.tif"; : >"$TEST_TMP/outside/o.tif"
printf '# comment line\n\nid\tdataset\tlabel\tsplit\tgroup\tnucleus\tprotein\tpixel_size_um\n' >"$M/ok.tsv"
printf 'a\topencell\tnucleoplasm\ttrain\tG1\timg/a.tif#0\timg/a.tif#1\t0.206\n' >>"$M/ok.tsv"
printf 'b\topencell\tgolgi;er\t3\tG2\timg/b.tif\t\t\n' >>"$M/ok.tsv"
printf 'c\topencell\t\t\tG3\t\timg/b.tif#2\t\r\n' >>"$M/ok.tsv"
expect_status 0 "$PROTLOC" manifest check "$M/ok.tsv"
grep -q "^items	3$" "$TEST_TMP/last.out" && grep -q "train=1 val=0 test=0 fold=1 unassigned=1" "$TEST_TMP/last.out" \
  && grep -q "nucleus=2	protein=2" "$TEST_TMP/last.out" && pass "summary" || fail "summary: $(cat "$TEST_TMP/last.out")"

B="$M/bad.tsv"
{
  printf 'id\tdataset\tlabel\tsplit\tgroup\tnucleus\tprotein\n'
  printf 'a\td\tx\ttrain\tg\timg/a.tif\timg/a.tif#1\n'          # line 2 ok
  printf 'a\td\tx\ttrain\tg\timg/a.tif\timg/a.tif\n'            # 3 duplicate id
  printf 'b\td\tx\ttrian\tg\timg/a.tif\timg/a.tif\n'            # 4 bad split (column 7)
  printf 'c\td\tx\ttrain\tg\timg/missing.tif\timg/a.tif\n'      # 5 missing file (column 15)
  printf 'd\td\tx\ttrain\tg\timg/a.tif\n'                       # 6 wrong column count
  printf 'e\td\tx\ttrain\tg\timg/a.tif#x\timg/a.tif\n'          # 7 bad page
  printf 'f\td\tx\ttrain\tg\t../outside/o.tif\timg/a.tif\n'     # 8 escapes the root
} >"$B"
expect_status 1 "$PROTLOC" manifest check "$B"
E="$TEST_TMP/last.err"
for want in "bad.tsv:3:1: duplicate id 'a' (first on line 2)" "bad.tsv:4:7: bad split 'trian'" \
            "bad.tsv:5:15: nucleus: missing file" "bad.tsv:6:1: wrong column count: 6 fields, the header has 7" \
            "bad.tsv:7:15: nucleus: bad page 'x'" "bad.tsv:8:15: nucleus: path '../outside/o.tif' escapes the root" \
            "6 problems found"; do
  grep -qF "$want" "$E" && pass "reports: $want" || fail "missing report '$want' in: $(cat "$E")"
done
expect_status 1 "$PROTLOC" manifest check "$B" --allow-outside-root --no-files
grep -q "escapes" "$TEST_TMP/last.err" && fail "--allow-outside-root ignored" || pass "--allow-outside-root"
grep -q "missing file" "$TEST_TMP/last.err" && fail "--no-files ignored" || pass "--no-files"

printf 'id\tdataset\tlabel\tsplit\tgroup\tnucleus\tgreen\n' >"$M/role.tsv"
expect_status 1 "$PROTLOC" manifest check "$M/role.tsv"
grep -qF "role.tsv:1:38: unknown role or column 'green'" "$TEST_TMP/last.err" && pass "unknown role" || fail "$(cat "$TEST_TMP/last.err")"
expect_status 0 "$PROTLOC" manifest check "$M/role.tsv" --roles nucleus,green
printf 'id\tdataset\tlabel\tgroup\tprotein\n' >"$M/req.tsv"
expect_status 1 "$PROTLOC" manifest check "$M/req.tsv"
grep -q "lacks the required column 'split'" "$TEST_TMP/last.err" && pass "required column" || fail "$(cat "$TEST_TMP/last.err")"
# --root: relative paths resolve against it
mkdir -p "$TEST_TMP/elsewhere"
printf 'id\tdataset\tlabel\tsplit\tgroup\tprotein\nx\td\t\ttest\tg\timg/a.tif\n' >"$TEST_TMP/elsewhere/r.tsv"
expect_status 1 "$PROTLOC" manifest check "$TEST_TMP/elsewhere/r.tsv"
expect_status 0 "$PROTLOC" manifest check "$TEST_TMP/elsewhere/r.tsv" --root "$M"
expect_status 1 "$PROTLOC" manifest check "$TEST_TMP/nope.tsv"
grep -q "nope.tsv" "$TEST_TMP/last.err" && pass "unreadable manifest named" || fail "$(cat "$TEST_TMP/last.err")"
expect_status 2 "$PROTLOC" manifest check
expect_status 2 "$PROTLOC" manifest check "$B" --bogus
expect_status 0 "$PROTLOC" manifest check --help
# the example manifests in the repository are valid (syntax; their images are not shipped)
n_examples=0
for ex in "$PROTLOC_SOURCE_DIR"/manifests/*.tsv; do
  [ -e "$ex" ] || continue
  n_examples=$((n_examples + 1))
  expect_status 0 "$PROTLOC" manifest check --no-files "$ex"
done
[ "$n_examples" -gt 0 ] || fail "no example manifests found in $PROTLOC_SOURCE_DIR/manifests (nothing was checked)"
finish
