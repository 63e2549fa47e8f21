#!/usr/bin/env bash
# tools/valgrind.sh [NP] [TEST...] — runs clue's MPI unit tests under valgrind
# memcheck, NP ranks each (default 2), and the program itself on a small
# train + embed. Not part of CI (about 15-30 minutes on 2 cores).
#   TEST: test program names (default: every test_*.c that declares
#   CLUE_TEST_NP, except the slow training-equivalence tests).
# Builds build-valgrind/ (RelWithDebInfo, no sanitizers, no -march=native, which
# valgrind may not decode). Open MPI's own noise is suppressed with the
# suppressions it ships (/usr/share/openmpi/openmpi-valgrind.supp) plus
# tools/valgrind.supp (uninitialised bytes Open MPI, HDF5 and OpenBLAS pass
# around internally). Reports: build-valgrind/valgrind/<test>.<pid>.log; the
# script prints the error summary of each and exits 1 if any has errors in
# clue's own code.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
clue_mpi_env
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
np="${1:-2}"
shift || true
build="$CLUE_ROOT/build-valgrind"
clue_build "$build" -DCLUE_WERROR=OFF -DCLUE_NATIVE=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo
tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
  for f in "$CLUE_ROOT"/tests/test_*.c; do
    grep -q 'CLUE_TEST_NP' "$f" && ! grep -q 'CLUE_TEST_SLOW' "$f" && tests+=("$(basename "$f" .c)")
  done
fi
logs="$build/valgrind"
rm -rf "$logs"; mkdir -p "$logs"
vg=(valgrind --tool=memcheck --track-origins=yes --num-callers=30
    --suppressions=/usr/share/openmpi/openmpi-valgrind.supp
    --suppressions="$here/valgrind.supp" --gen-suppressions=all)
export CLUE_SOURCE_DIR="$CLUE_ROOT" CLUE_SHARED_DATA="$CLUE_ROOT/../shared/data"
bad=0
summary() { # name: errors in clue's own frames across the logs of one run
  local name="$1" n=0
  for l in "$logs/$name".*.log; do
    local e
    e=$(sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$l" | tail -1)
    n=$((n + ${e:-0}))
  done
  echo "$name: $n valgrind error(s) (logs: $logs/$name.*.log)"
  [ "$n" -eq 0 ] || bad=$((bad + 1))
}
for t in "${tests[@]}"; do
  export CLUE_TEST_TMP="$build/tmp/vg_$t"
  mkdir -p "$CLUE_TEST_TMP"
  echo "== $t on $np ranks under memcheck"
  mpiexec --oversubscribe -n "$np" "${vg[@]}" --log-file="$logs/$t.%p.log" \
    "$build/tests/$t" >"$logs/$t.out" 2>&1
  echo "   test exit status $?"
  summary "$t"
done
# the program: simulate (RNA and ADT: NB; ATAC: Bernoulli, so that both ways of
# the split output layers run), train two epochs, embed
w="$build/tmp/vg_program"
rm -rf "$w"; mkdir -p "$w"
"$build/clue" simulate --out "$w/sim" --cells 300 --rna 100 --atac 80 --adt 10 --quiet >/dev/null
cat > "$w/c.yaml" <<YAML
data:
  modalities:
    rna: {file: $w/sim/rna.h5ad, n_components: 10}
    atac: {file: $w/sim/atac.h5ad, likelihood: bernoulli, preprocess: lsi, n_components: 8}
    adt: {file: $w/sim/adt.h5ad, n_components: 5}
  batch_key: batch
model: {latent_dim: 4, encoder: {depth: 1, width: 16}, decoder: {depth: 1, width: 16},
        discriminator: {depth: 1, width: 8}}
train: {batch_size: 64, max_epochs: 2, checkpoint_seconds: 0}
output: {dir: $w/run}
YAML
echo "== clue train + embed on $np ranks under memcheck"
mpiexec --oversubscribe -n "$np" "${vg[@]}" --log-file="$logs/clue_train.%p.log" \
  "$build/clue" train --config "$w/c.yaml" --quiet >"$logs/clue_train.out" 2>&1
echo "   train exit status $?"
summary clue_train
mpiexec --oversubscribe -n "$np" "${vg[@]}" --log-file="$logs/clue_embed.%p.log" \
  "$build/clue" embed --checkpoint "$w/run/checkpoint.h5" --out "$w/emb" >"$logs/clue_embed.out" 2>&1
echo "   embed exit status $?"
summary clue_embed
[ "$bad" -eq 0 ] || { echo "$bad run(s) with valgrind errors"; exit 1; }
echo "valgrind: no errors"
