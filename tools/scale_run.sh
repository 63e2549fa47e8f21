#!/usr/bin/env bash
# tools/scale_run.sh — the large-scale reliability run (not part of CI): simulates
# CELLS cells (RNA 2,000 genes + ADT 134 proteins, 20 % held out as test), trains
# STEPS steps on NP ranks (oversubscribed when NP exceeds the cores), embeds the
# test cells and prints wall times and the peak memory of every rank.
#   tools/scale_run.sh [--np 8] [--cells 1000000] [--steps 40] [--out runs/scale]
# Needs about 3 GB of disk per million cells; removes the simulated files at the end.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
clue_mpi_env
np=8; cells=1000000; steps=40; out="$CLUE_ROOT/runs/scale"
while [ $# -gt 0 ]; do
  case "$1" in
    --np) np="$2"; shift 2 ;;
    --cells) cells="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "scale_run.sh: unknown option $1 (see the header of tools/scale_run.sh)" >&2; exit 2 ;;
  esac
done
bin="${CLUE_BIN:-$CLUE_ROOT/build/clue}"
[ -x "$bin" ] || clue_build "$CLUE_ROOT/build"
cores=$(nproc)
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
CLUE_MPIRUN_FLAGS=()
[ "$np" -gt "$cores" ] && CLUE_MPIRUN_FLAGS+=(--oversubscribe)
rm -rf "$out"; mkdir -p "$out"
timed() { clue_timed "$out" "$np" "$@" || exit 1; }
echo "scale run: $cells cells, $np ranks on $cores cores, $steps training steps, in $out"
timed simulate "$bin" simulate --cells "$cells" --rna 2000 --adt 134 --out "$out/data" --quiet
cat >"$out/run.yaml" <<EOF
version: 1
data:
  modalities:
    rna: {file: $out/data/rna.h5ad, likelihood: nb, preprocess: pca}
    adt: {file: $out/data/adt.h5ad, likelihood: nb, preprocess: pca, normalize: clr}
  batch_key: batch
  split_key: split
train: {max_steps: $steps, checkpoint_every: 1}
output: {dir: $out/train}
EOF
timed train "$bin" train --config "$out/run.yaml" --overwrite
sed -n 's/^\(prep\|training on\|done\)/  &/p' "$out/train.txt"
timed embed "$bin" embed --checkpoint "$out/train/checkpoint.h5" --out "$out/embed" --cells test
echo "  embeddings: $(ls "$out/embed" | paste -sd' ' -) ($(du -sm "$out/embed" | cut -f1) MB)"
rm -rf "$out/data"
echo "scale run passed; logs in $out"
