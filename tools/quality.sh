#!/usr/bin/env bash
# tools/quality.sh — the quality protocol of ../shared/docs/targets.md for one
# data set: train on the train split (both modalities), embed the test cells from
# each modality alone, evaluate FOSCTTM and the snn matching score; repeated over
# seeds, printing each run and the mean.
#   tools/quality.sh CONFIG [--seeds "0 1 2"] [--np 2] [--out runs/quality] [--set k=v]...
# Example: tools/quality.sh configs/cite.yaml --seeds "0 1 2"
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
clue_mpi_env
config="$1"; shift
seeds="0 1 2"; np=1; out="$CLUE_ROOT/runs/quality"; sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --np) np="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "quality.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin="${CLUE_BIN:-$CLUE_ROOT/build/clue}"
[ -x "$bin" ] || clue_build "$CLUE_ROOT/build"
name="$(basename "$config" .yaml)"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$(( $(nproc) / np > 0 ? $(nproc) / np : 1 ))}"
sum_f=0; sum_m=0; n=0
for seed in $seeds; do
  run="$out/$name/seed$seed"
  mpirun -np "$np" "$bin" train --config "$config" "${sets[@]}" --set train.seed="$seed" \
    --set output.dir="$run" --overwrite --quiet
  mods=$(sed -n 's/^    \([A-Za-z0-9_-]*\):$/\1/p' "$run/config.yaml" | head -2)
  a=$(echo "$mods" | sed -n 1p); b=$(echo "$mods" | sed -n 2p)
  mpirun -np "$np" "$bin" embed --checkpoint "$run/checkpoint.h5" --out "$run/embed" --cells test >/dev/null
  mpirun -np "$np" "$bin" eval "$run/embed/$a.h5ad" "$run/embed/$b.h5ad" --json "$run/eval.json" >/dev/null
  f=$(sed -n 's/.*"foscttm": \([0-9.e-]*\).*/\1/p' "$run/eval.json")
  m=$(sed -n 's/.*"match": \([0-9.e-]*\).*/\1/p' "$run/eval.json")
  ep=$(tail -1 "$run/log.jsonl" | sed -n 's/.*"epoch": \([0-9]*\), "step": \([0-9]*\).*/epoch \1, step \2/p')
  printf '%-14s seed %-3s FOSCTTM %.4f  match %.4f  (%s)\n' "$name" "$seed" "$f" "$m" "$ep"
  sum_f=$(echo "$sum_f + $f" | bc -l); sum_m=$(echo "$sum_m + $m" | bc -l); n=$((n + 1))
done
printf '%-14s mean of %d   FOSCTTM %.4f  match %.4f\n' "$name" "$n" "$(echo "$sum_f / $n" | bc -l)" "$(echo "$sum_m / $n" | bc -l)"
