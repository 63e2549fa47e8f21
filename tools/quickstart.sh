#!/usr/bin/env bash
# tools/quickstart.sh — the main job, from a fresh Debian machine: installs what
# is missing, builds clue, trains on 2 MPI ranks on the default data, embeds the
# held-out test cells from each modality alone, evaluates them, carries the
# cell types of the RNA training cells over to the ADT test cells (clue
# transfer), predicts the proteins of the RNA test cells (clue predict, scored
# against the measured ones), prints the metrics and where everything is, the
# run's page (clue report) last.
#   Default data: ../shared/data/bmmc_cite_600 (CITE-seq, human bone marrow, NeurIPS
#   2021 competition data) when it exists; otherwise a paired RNA+ADT set of the
#   same shape made on the spot by `clue simulate`.
# Options: --np N (ranks, default 2), --out DIR (default runs/quickstart),
# any further --set KEY=VALUE is passed to clue train.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
np=2; out="$CLUE_ROOT/runs/quickstart"; sets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --np) np="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "quickstart.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
clue_install_packages
clue_build "$CLUE_ROOT/build"
clue_mpi_env
clue="$CLUE_ROOT/build/clue"
cores=$(nproc)
export OPENBLAS_NUM_THREADS=$(( cores / np > 0 ? cores / np : 1 ))
mkdir -p "$out"

data="$CLUE_ROOT/../shared/data/bmmc_cite_600"
if [ -f "$data/rna.h5ad" ] && [ -f "$data/adt.h5ad" ]; then
  data="$(cd "$data" && pwd)"
  echo "== data: $data (real CITE-seq, 600 cells; NeurIPS 2021 competition, GEO GSE194122)"
else
  data="$out/simulated"
  echo "== data: ../shared/data/bmmc_cite_600 not found; simulating a paired RNA+ADT set of the same shape"
  mpirun -np "$np" "$clue" simulate --out "$data" --like bmmc_cite_600
fi

echo "== clue train on $np ranks"
mpirun -np "$np" "$clue" train --config "$CLUE_ROOT/configs/cite.yaml" \
  --set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad" \
  --set "output.dir=$out/run" "${sets[@]}" --overwrite

echo "== clue embed (test cells, each modality alone)"
mpirun -np "$np" "$clue" embed --checkpoint "$out/run/checkpoint.h5" --out "$out/embed" --cells test

echo "== clue eval (and the run's page, report.html, with a map of these cells)"
mpirun -np "$np" "$clue" eval "$out/embed/rna.h5ad" "$out/embed/adt.h5ad" --json "$out/eval.json" \
  --label cell_type --report "$out/run"

echo "== clue transfer (cell types of the RNA training cells -> the ADT test cells)"
mpirun -np "$np" "$clue" embed --checkpoint "$out/run/checkpoint.h5" --out "$out/embed_train" \
  --cells train > /dev/null
mpirun -np "$np" "$clue" transfer "$out/embed_train/rna.h5ad" "$out/embed/adt.h5ad" \
  --label cell_type --out "$out/transfer.h5ad"

echo "== clue predict (the proteins of the RNA test cells, scored against the measured ones)"
mpirun -np "$np" "$clue" predict --checkpoint "$out/run/checkpoint.h5" --from rna --to adt \
  --cells "$data/rna.h5ad" --where split=test --out "$out/predicted_adt.h5ad" --log1p
/usr/bin/python3 "$here/predict_scores.py" "$out/run/config.yaml" "$out/predicted_adt.h5ad" rna adt

cat <<MSG
== outputs
  run folder     $out/run   (config.yaml, run.json, log.jsonl, checkpoint.h5)
  embeddings     $out/embed/rna.h5ad, $out/embed/adt.h5ad   (obsm['X_clue'])
  metrics        $out/eval.json
  labels         $out/transfer.h5ad   (obs cell_type_pred, cell_type_conf)
  proteins       $out/predicted_adt.h5ad   (X: log1p-normalised ADT of the RNA test cells, calibrated)
  report         $out/run/report.html   (open it in a browser: curves, map, figures; numbers in report.json)
MSG
