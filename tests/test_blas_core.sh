#!/bin/bash
# test_blas_core.sh — the OpenBLAS kernels clue runs with (blas_core.h), through
# `clue --version`: a user's OPENBLAS_CORETYPE is kept; on a CPU with AVX2 + FMA
# the kernels are never the generic Prescott ones unless the user asked for
# them (OpenBLAS's own choice, or clue's after re-executing itself once, also
# under mpiexec; never under valgrind); when asked for, the line says they
# are slow here.
set -u
: "${CLUE_BIN:?}"
MPIEXEC="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
unset OPENBLAS_CORETYPE CLUE_BLAS_FORCED
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

has_flag() { grep -qw "$1" /proc/cpuinfo 2>/dev/null; }

out=$("$CLUE_BIN" --version) || fail "clue --version exited $?"
echo "$out"
echo "$out" | grep -qE '^clue [0-9.]+ \(git [^)]*\); OpenBLAS [0-9.]+, [A-Za-z0-9]+ kernels' ||
  fail "no library and kernels in: $out"

forced=$(OPENBLAS_CORETYPE=Haswell "$CLUE_BIN" --version) || fail "exit $? with OPENBLAS_CORETYPE"
echo "$forced"
if has_flag avx2 && has_flag fma; then
  echo "$forced" | grep -q "Haswell kernels" || fail "OPENBLAS_CORETYPE=Haswell not kept: $forced"
  echo "$out" | grep -q "Prescott kernels" && fail "generic kernels on a CPU with AVX2: $out"
  # the same under mpiexec: each rank re-executes before MPI_Init
  mpi=$($MPIEXEC -np 2 "$CLUE_BIN" --version) || fail "mpiexec -np 2 clue --version exited $?"
  echo "$mpi"
  echo "$mpi" | grep -q "Prescott kernels" && fail "generic kernels under mpiexec: $mpi"
  if echo "$out" | grep -q "set by clue"; then
    # under valgrind (its library preloaded) clue does not re-execute itself:
    # the new program would run outside valgrind
    vg=$(LD_PRELOAD=/nonexistent/vgpreload_core-amd64-linux.so "$CLUE_BIN" --version 2>/dev/null) ||
      fail "exit $? with a valgrind-like LD_PRELOAD"
    echo "$vg"
    echo "$vg" | grep -q "Prescott kernels (slow here" ||
      fail "re-executed (or no word on the kernels) with a valgrind-like LD_PRELOAD: $vg"
  fi
  slow=$(OPENBLAS_CORETYPE=Prescott "$CLUE_BIN" --version) || fail "exit $? with Prescott"
  echo "$slow"
  if echo "$slow" | grep -q "Prescott kernels"; then # a library built for many CPUs
    echo "$slow" | grep -q "slow here" || fail "Prescott asked for, not said slow: $slow"
  fi
else
  echo "this CPU has no AVX2 + FMA: only the line's form is checked"
fi
[ "$fails" -eq 0 ] && echo "ok"
[ "$fails" -eq 0 ]
