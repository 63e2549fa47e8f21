#!/bin/bash
# The simulated-set part of 2026-12-07-batch.md: 20,000 paired cells (RNA 2,000 + ATAC
# 20,000), B = 128 / 512 / 2,048 at equal rows seen, 3 seeds. Run from any checkout.
cd "$(dirname "$0")/../.."
export CLUE_BIN="${CLUE_BIN:-$PWD/build/clue}" OPENBLAS_NUM_THREADS=1
out="${BSIM_OUT:-runs/bsim}"
mkdir -p "$out"
[ -f "$out/sim/atac.h5ad" ] || "$CLUE_BIN" simulate --cells 20000 --rna 2000 --atac 20000 \
  --paired 1 --atac-binary --out "$out/sim" --quiet
sed -e "s#file: .*rna.h5ad#file: $PWD/$out/sim/rna.h5ad#" \
    -e "s#file: .*atac.h5ad#file: $PWD/$out/sim/atac.h5ad#" configs/multiome.yaml > "$out/sim20k.yaml"
for spec in "128 2e-3 1000 0 base" "512 2e-3 250 0 keep" "2048 2e-3 63 0 keep" \
            "2048 8e-3 63 6 sqrt-warm"; do
  set -- $spec
  echo "== sim20k B=$1 lr=$2 steps=$3 warmup=$4 ($5)"
  tools/quality.sh "$out/sim20k.yaml" --seeds "0 1 2" --np 1 --out "$out/$1-$5" \
    --set train.batch_size=$1 --set train.lr=$2 --set train.max_steps=$3 \
    --set train.lr_warmup=$4 --set data.modalities.atac.features=2000 2>&1 |
    grep -iE "mean|seed" | tail -4
done
