#!/usr/bin/env bash
# test_fuzz.sh — a short, bounded run of each libFuzzer harness (tests/fuzz/):
# builds them with clang + ASan + UBSan, replays every committed regression input
# (past findings, fixed), then fuzzes the YAML config loader for 20 s and the
# structure-aware .h5ad/.h5mu generator for 35 s. Any crash, hang, sanitizer
# report or broken promise fails the test. The byte-level .h5ad harness is left
# to long runs: it mostly finds bugs inside libhdf5 on corrupted files, which
# would make this test fail at random for reasons clue cannot fix.
# Skips (77) with a visible message when clang/libFuzzer is missing.
# Long runs: tests/fuzz/run.sh TARGET SECONDS (see tests/fuzz/README.md).
# CLUE_TEST_SLOW
# CLUE_TEST_TIMEOUT: 400
set -u
: "${CLUE_SOURCE_DIR:?}"
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-fuzz}"
mkdir -p "$tmp"
build="$tmp/build"
"$CLUE_SOURCE_DIR/tests/fuzz/build.sh" "$build"
rc=$?
if [ "$rc" -eq 77 ]; then echo "SKIP: clang with libFuzzer not available"; exit 77; fi
[ "$rc" -eq 0 ] || { echo "FAIL: building the fuzz harnesses"; exit 1; }
export CLUE_FUZZ_BUILD="$build" CLUE_FUZZ_NOBUILD=1
fails=0
for t in "config 20" "h5ad_struct 35"; do
  set -- $t
  if "$CLUE_SOURCE_DIR/tests/fuzz/run.sh" "$1" "$2"; then
    echo "ok   fuzz_$1 ($2 s)"
  else
    echo "FAIL fuzz_$1: see $build/fuzz-$1.log and $build/findings/$1/"
    fails=$((fails + 1))
  fi
done
[ "$fails" -eq 0 ] || exit 1
echo "all fuzz harnesses clean"
