#!/usr/bin/env bash
# tools/test.sh — installs what is missing, builds clue with warnings as errors,
# runs every test through ctest, then builds again with AddressSanitizer and
# UndefinedBehaviorSanitizer and runs every test again under them (but the
# Slurm test, label slurm: it checks the job scripts, run once).
#   CLUE_TEST_SKIP_SANITIZE=1 skips the sanitizer pass.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
clue_install_packages
clue_mpi_env
export OPENBLAS_NUM_THREADS=1
build="$CLUE_ROOT/build"
clue_build "$build" -DCLUE_WERROR=ON
echo "== tests ($build)"
(cd "$build" && ctest -j "$(nproc)" --output-on-failure --timeout 900)
if [ "${CLUE_TEST_SKIP_SANITIZE:-0}" != 1 ]; then
  asan="$CLUE_ROOT/build-asan"
  clue_build "$asan" -DCLUE_WERROR=ON -DCLUE_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
  echo "== tests under AddressSanitizer + UndefinedBehaviorSanitizer ($asan)"
  # the Slurm templates are checked once, in the first pass: under the sanitizers
  # they would test the same scripts again
  (cd "$asan" && ctest -j "$(nproc)" --output-on-failure --timeout 1800 -LE slurm)
fi
echo "== all tests passed"
