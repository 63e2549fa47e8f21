#!/usr/bin/env bash
# tests/fuzz/build.sh [BUILD_DIR] — builds the libFuzzer harnesses with clang,
# AddressSanitizer and UndefinedBehaviorSanitizer (clue's I/O and config code is
# instrumented for coverage; HDF5, libyaml and MPI are not).
#   BUILD_DIR defaults to build-fuzz/ at the top of the checkout.
# Needs clang with libFuzzer (Debian: apt-get install clang libclang-rt-14-dev).
# Exits 77 when clang or libFuzzer is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
build="${1:-$top/build-fuzz}"
cc="${CLUE_FUZZ_CC:-$(command -v clang || true)}"
if [ -z "$cc" ]; then
  echo "SKIP: clang not found (apt-get install clang libclang-rt-14-dev)" >&2
  exit 77
fi
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}\n' \
  > "$probe/p.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$probe/p.c" -o "$probe/p" 2>"$probe/log"; then
  echo "SKIP: $cc cannot link libFuzzer with ASan/UBSan (apt-get install libclang-rt-14-dev)" >&2
  exit 77
fi
flags="-g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined"
cmake -S "$here" -B "$build" -DCMAKE_C_COMPILER="$cc" -DCMAKE_BUILD_TYPE=None \
  -DCMAKE_C_FLAGS="$flags" >"$build.log" 2>&1 || { tail -30 "$build.log" >&2; exit 1; }
cmake --build "$build" -j "$(nproc)" --target fuzz_config fuzz_h5ad fuzz_h5ad_struct \
  >>"$build.log" 2>&1 || { grep -E 'error|Error' "$build.log" | head -30 >&2; exit 1; }
echo "fuzz harnesses built in $build (log: $build.log)"
