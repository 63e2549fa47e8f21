#!/usr/bin/env bash
# tools/predict_quality.sh — how well `clue predict` gives the missing modality,
# for one paired data set: train on the train split (as tools/quality.sh), then
# for the test cells predict each modality from the other (expected counts, and
# with --log1p) and score them against the measured profiles beside the
# training-mean and kNN baselines (tools/predict_scores.py); repeated over seeds,
# printing each and the means.
#   tools/predict_quality.sh CONFIG [--seeds "0 1 2"] [--np 1] [--out runs/predict]
#                            [--reuse] [--set k=v]...
# Example: tools/predict_quality.sh configs/cite.yaml
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
clue_mpi_env
[ $# -ge 1 ] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
config="$1"; shift
seeds="0 1 2"; np=1; out="$CLUE_ROOT/runs/predict"; sets=(); reuse=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds="$2"; shift 2 ;;
    --np) np="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    --reuse) reuse=1; shift ;;
    *) echo "predict_quality.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
py=/usr/bin/python3
bin="${CLUE_BIN:-$CLUE_ROOT/build/clue}"
[ -x "$bin" ] || clue_build "$CLUE_ROOT/build"
name="$(basename "$config" .yaml)"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$(( $(nproc) / np > 0 ? $(nproc) / np : 1 ))}"
for seed in $seeds; do
  run="$out/$name/seed$seed"
  if [ "$reuse" != 1 ] || [ ! -f "$run/checkpoint.h5" ]; then
    mpirun -np "$np" "$bin" train --config "$config" "${sets[@]}" --set train.seed="$seed" \
      --set output.dir="$run" --overwrite --quiet
  fi
  mapfile -t mods < <(sed -n 's/^    \([A-Za-z0-9_-]*\):$/\1/p' "$run/config.yaml" | head -2)
  for pair in "${mods[0]} ${mods[1]}" "${mods[1]} ${mods[0]}"; do
    set -- $pair
    file=$("$py" -c "import yaml,sys; print(yaml.safe_load(open(sys.argv[1]))['data']['modalities'][sys.argv[2]]['file'])" "$run/config.yaml" "$1")
    for mode in plain log1p; do
      flag=(); [ "$mode" = log1p ] && flag=(--log1p)
      [ "$mode" = log1p ] && ! grep -A3 "^    $2:" "$run/config.yaml" | grep -q "likelihood: nb" && continue
      pred="$run/$1-$2-$mode.h5ad"
      mpirun -np "$np" "$bin" predict --checkpoint "$run/checkpoint.h5" --from "$1" --to "$2" \
        --cells "$file" --where split=test --out "$pred" "${flag[@]}" > /dev/null
      "$py" "$here/predict_scores.py" "$run/config.yaml" "$pred" "$1" "$2" \
        --json "$run/$1-$2-$mode.json" | sed "s/^/$name seed $seed $mode  /"
    done
  done
done
"$py" - "$out/$name" "$seeds" <<'PY'
import glob, json, sys, collections
root, seeds = sys.argv[1], sys.argv[2].split()
acc = collections.defaultdict(list)
for s in seeds:
    for path in sorted(glob.glob(f"{root}/seed{s}/*-*-*.json")):
        r = json.load(open(path))
        mode = path.rsplit("-", 1)[1][:-5]
        for who in ("clue", "mean", "knn"):
            acc[(r["from"], r["to"], mode, who)].append(r[who])
print(f"means over seeds {' '.join(seeds)}:")
for (src, tgt, mode, who), v in sorted(acc.items()):
    m = {k: sum(x[k] for x in v) / len(v) for k in ("rmse", "r_feature", "r_cell")}
    label = who if who != "clue" else f"clue ({mode})"
    if who != "clue" and mode != "plain":
        continue
    print(f"  {src}->{tgt}  {label:<13} RMSE {m['rmse']:.3f}  r per feature {m['r_feature']:.3f}"
          f"  r per cell {m['r_cell']:.3f}")
PY
