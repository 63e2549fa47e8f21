#!/usr/bin/env bash
# tests/fuzz/run.sh TARGET SECONDS [libFuzzer options...]
#   TARGET: config | h5ad | h5ad_struct.  Runs one libFuzzer harness for SECONDS
#   on one core, keeping its corpus in build-fuzz/corpus/TARGET (seeded from the
#   committed config seeds, from the reader test fixtures written by
#   tests/h5ad_fixtures.py, and from the small files of ../shared/data, which are
#   copied at run time and never committed). Crashes, hangs and sanitizer reports
#   are written to build-fuzz/findings/TARGET/ and make the script exit 1.
#   Builds the harnesses first (tests/fuzz/build.sh) unless CLUE_FUZZ_NOBUILD=1.
#   CLUE_FUZZ_BUILD overrides the build folder. Exit 77: clang/libFuzzer missing.
#   CLUE_FUZZ_KEEP_GOING=1 keeps fuzzing after a finding (libFuzzer -fork=1),
#   for long unattended runs; each finding is still saved and reported.
#   First, every committed regression input in tests/fuzz/regress/TARGET/ (each
#   one a past finding, fixed) is replayed once: any failure there exits 1.
# Example of a long run:  tests/fuzz/run.sh h5ad_struct 3600
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
top="$(cd "$here/../.." && pwd)"
target="${1:?usage: run.sh config|h5ad|h5ad_struct SECONDS [options]}"
seconds="${2:?usage: run.sh TARGET SECONDS [options]}"
shift 2
build="${CLUE_FUZZ_BUILD:-$top/build-fuzz}"
case "$target" in config|h5ad|h5ad_struct) ;; *) echo "unknown target $target" >&2; exit 2;; esac
if [ "${CLUE_FUZZ_NOBUILD:-0}" != 1 ]; then
  "$here/build.sh" "$build" || exit $?
fi
corpus="$build/corpus/$target"
findings="$build/findings/$target"
mkdir -p "$corpus" "$findings"
seeds="$build/seeds/$target"
mkdir -p "$seeds"
maxlen=4096
case "$target" in
  config)
    cp "$here"/corpus/config/* "$seeds"/ ;;
  h5ad)
    maxlen=1048576
    if [ ! -f "$build/seeds/fixtures.ok" ] && [ -x /usr/bin/python3 ]; then
      /usr/bin/python3 "$top/tests/h5ad_fixtures.py" "$build/seeds/fixtures" >/dev/null 2>&1 &&
        touch "$build/seeds/fixtures.ok"
    fi
    for f in "$build"/seeds/fixtures/*.h5ad "$build"/seeds/fixtures/*.h5mu; do
      [ -f "$f" ] && [ "$(stat -c %s "$f")" -le "$maxlen" ] && cp "$f" "$seeds/"
    done
    shared="${CLUE_SHARED_DATA:-$top/../shared/data}"
    for f in "$shared"/*/*.h5ad; do
      [ -f "$f" ] && [ "$(stat -c %s "$f")" -le "$maxlen" ] &&
        cp "$f" "$seeds/$(basename "$(dirname "$f")")_$(basename "$f")"
    done ;;
  h5ad_struct)
    head -c 64 /dev/zero > "$seeds/zeros"
    printf '\001\002\003\004\005\006\007\010\011\012\013\014\015\016\017' > "$seeds/ramp" ;;
esac
export ASAN_OPTIONS="${ASAN_OPTIONS:-allocator_may_return_null=1:detect_leaks=0:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none OPENBLAS_NUM_THREADS=1
log="$build/fuzz-$target.log"
regress=("$here/regress/$target"/*)
if [ -e "${regress[0]}" ]; then
  if ! "$build/fuzz_$target" "${regress[@]}" >"$log.regress" 2>&1; then
    echo "REGRESSION: a past finding of $target fails again (log: $log.regress)"
    grep -E 'Running:|ERROR|SUMMARY|runtime error|broken promise' "$log.regress" | tail -5
    exit 1
  fi
  echo "replayed ${#regress[@]} regression input(s) of $target: ok"
fi
extra=()
[ "${CLUE_FUZZ_KEEP_GOING:-0}" = 1 ] &&
  extra=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
echo "fuzzing $target for $seconds s (corpus $corpus, findings $findings, log $log)"
"$build/fuzz_$target" "$corpus" "$seeds" -max_total_time="$seconds" -max_len="$maxlen" \
  -timeout=20 -rss_limit_mb=4096 -malloc_limit_mb=4096 -artifact_prefix="$findings/" \
  -print_final_stats=1 "${extra[@]}" "$@" >"$log" 2>&1
rc=$?
tail -n 12 "$log" | grep -E 'stat::|Done|#[0-9]+' | tail -6
# Sort the findings: a crash whose innermost frame (past the sanitizer's own) is
# inside libhdf5 is a bug of HDF5 on a corrupted file, which clue cannot fix; it
# is moved to findings/TARGET/hdf5/ and reported, but does not fail the run.
clue_findings=0
for f in "$findings"/crash-* "$findings"/timeout-* "$findings"/oom-* "$findings"/leak-*; do
  [ -f "$f" ] || continue
  top=$(timeout 120 "$build/fuzz_$target" -timeout=10 -rss_limit_mb=4096 -malloc_limit_mb=4096 \
        "$f" 2>&1 | grep -E '^ +#[0-9]+ ' |
        grep -vE '__interceptor_|__asan|__sanitizer|__ubsan|fuzzer::|libc\.so|memset|memcpy|raise|abort' |
        head -1)
  case "$top" in
    *libhdf5*|*" in H5"*)
      mkdir -p "$findings/hdf5"; mv "$f" "$findings/hdf5/"
      echo "HDF5-internal finding (not clue's code): $(basename "$f"): ${top#*in }" ;;
    *) clue_findings=$((clue_findings + 1)) ;;
  esac
done
if [ "$clue_findings" -gt 0 ] || { [ $rc -ne 0 ] && [ -z "$(ls "$findings/hdf5" 2>/dev/null)" ]; }; then
  echo "FINDINGS in $findings (exit $rc):"; ls "$findings"
  grep -E 'ERROR|SUMMARY|runtime error|broken promise' "$log" | head -5
  exit 1
fi
echo "no findings in clue's code"
