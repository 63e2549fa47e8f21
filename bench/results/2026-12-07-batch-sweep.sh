#!/bin/bash
# The batch-size sweep of 2026-12-07-batch.md: equal rows seen (steps x B = 128,000),
# learning rate kept / linear / sqrt, 3 seeds, on two shared sets. Run from the checkout.
cd "$(dirname "$0")/../.."
export CLUE_BIN="${CLUE_BIN:-$PWD/build/clue}" OPENBLAS_NUM_THREADS=1
for set in cite pbmc1k_cite; do
  for spec in "128 2e-3 1000 base" "512 2e-3 250 keep" "512 8e-3 250 linear" "512 4e-3 250 sqrt" \
              "2048 2e-3 63 keep" "2048 3.2e-2 63 linear" "2048 8e-3 63 sqrt"; do
    set -- $spec
    echo "== $set B=$1 lr=$2 steps=$3 ($4)"
    tools/quality.sh configs/$set.yaml --seeds "0 1 2" --np 1 --out runs/bsweep/$set-$1-$4 \
      --set train.batch_size=$1 --set train.lr=$2 --set train.max_steps=$3 2>&1 | grep -iE "mean|seed" | tail -4
  done
done
