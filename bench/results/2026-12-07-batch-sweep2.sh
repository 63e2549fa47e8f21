#!/bin/bash
# The second batch-size sweep of 2026-12-07-batch.md: equal rows seen (steps x B =
# 128,000); on the three sets the first sweep left out: B = 128, and B = 512 / 2,048
# with the rate kept; on all five: the rate scaled linearly or by sqrt(B/128) with a
# linear warm-up over the first 10 % of the steps (train.lr_warmup). 3 seeds.
# Run from any checkout: bench/results/2026-12-07-batch-sweep2.sh
cd "$(dirname "$0")/../.."
export CLUE_BIN="${CLUE_BIN:-$PWD/build/clue}" OPENBLAS_NUM_THREADS=1
out="${BSWEEP_OUT:-runs/bsweep}"
run() { # set B lr steps warmup name
  echo "== $1 B=$2 lr=$3 steps=$4 warmup=$5 ($6)"
  tools/quality.sh configs/$1.yaml --seeds "0 1 2" --np 1 --out "$out/$1-$2-$6" \
    --set train.batch_size=$2 --set train.lr=$3 --set train.max_steps=$4 \
    --set train.lr_warmup=$5 2>&1 | grep -iE "mean|seed" | tail -4
}
for set in ${BSWEEP_NEW_SETS:-cd8_cite eccite_pbmc multiome}; do
  run $set 128 2e-3 1000 0 base
  run $set 512 2e-3 250 0 keep
  run $set 2048 2e-3 63 0 keep
done
for set in ${BSWEEP_SETS:-cite pbmc1k_cite cd8_cite eccite_pbmc multiome}; do
  run $set 512 8e-3 250 25 linear-warm
  run $set 512 4e-3 250 25 sqrt-warm
  run $set 2048 3.2e-2 63 6 linear-warm
  run $set 2048 8e-3 63 6 sqrt-warm
done
