#!/usr/bin/env bash
# CLI conventions: --help lists commands, --version names the libraries, unknown command/option → exit 2.
set -u
. "$(dirname "$0")/lib.sh"

out=$("$PROTLOC" --help) || fail "--help exited non-zero"
grep -q "Commands:" <<<"$out" || fail "--help lists no commands"
grep -q "version" <<<"$out" || fail "--help does not list 'version'"

out=$("$PROTLOC" --version) || fail "--version exited non-zero"
for lib in "git " MPI HDF5 OpenBLAS libtiff libpng zstd; do
  grep -q "$lib" <<<"$out" || fail "--version does not mention $lib"
done

expect_status 2 "$PROTLOC" no-such-command
expect_status 2 "$PROTLOC" --no-such-option
expect_status 2 "$PROTLOC"
expect_status 2 "$PROTLOC" version --bogus
expect_status 0 "$PROTLOC" version --help
finish
