#!/usr/bin/env bash
# tools/scale_use.sh — what using a model costs at atlas scale (not part of CI):
#   1. clue predict: the RNA profiles (2,000 genes) of CELLS simulated ATAC cells
#      (20,000 peaks), with the model of CHECKPOINT (an RNA 2,000 + ATAC 20,000
#      model, e.g. tools/atlas.sh's: runs/atlas/train/checkpoint.h5): expected
#      counts per 10,000, then --log1p (calibrated, averaged with the nearest
#      reference cells when the checkpoint has them);
#   2. clue transfer: CELLS query × CELLS reference cells of DIM-dimensional
#      embeddings (30 clustered labels), k = 15.
# Prints wall times and the peak memory of every rank.
#   tools/scale_use.sh --checkpoint FILE [--np 2] [--cells 1000000] [--dim 40]
#                      [--out runs/scale_use] [--keep]
# Needs about 15 GB of disk per million cells (removed at the end unless --keep).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
clue_mpi_env
np=2; cells=1000000; dim=40; out="$CLUE_ROOT/runs/scale_use"; ckpt=""; keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --checkpoint) ckpt="$2"; shift 2 ;;
    --np) np="$2"; shift 2 ;;
    --cells) cells="$2"; shift 2 ;;
    --dim) dim="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "scale_use.sh: unknown option $1 (see the header of tools/scale_use.sh)" >&2; exit 2 ;;
  esac
done
[ -f "$ckpt" ] || { echo "scale_use.sh: --checkpoint FILE is required (e.g. tools/atlas.sh --keep, then runs/atlas/train/checkpoint.h5)" >&2; exit 2; }
bin="${CLUE_BIN:-$CLUE_ROOT/build/clue}"
[ -x "$bin" ] || clue_build "$CLUE_ROOT/build"
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
CLUE_MPIRUN_FLAGS=()
[ "$np" -gt "$(nproc)" ] && CLUE_MPIRUN_FLAGS+=(--oversubscribe)
mkdir -p "$out"
timed() { clue_timed "$out" "$np" "$@" || exit 1; }
echo "scale of use: $cells cells, $np ranks, in $out"
[ -f "$out/sim/atac.h5ad" ] ||
  timed simulate "$bin" simulate --cells "$cells" --rna 2000 --atac 20000 --paired 1 \
    --atac-binary --out "$out/sim" --quiet
timed predict "$bin" predict --checkpoint "$ckpt" --from atac --to rna \
  --cells "$out/sim/atac.h5ad" --out "$out/pred_rna.h5ad"
sed 's/^/  /' "$out/predict.txt"
rm -f "$out/pred_rna.h5ad"
timed predict_log1p "$bin" predict --checkpoint "$ckpt" --from atac --to rna \
  --cells "$out/sim/atac.h5ad" --out "$out/pred_rna.h5ad" --log1p
sed 's/^/  /' "$out/predict_log1p.txt"
rm -f "$out/pred_rna.h5ad"
/usr/bin/python3 - "$out" "$cells" "$dim" <<'PY'
import sys, numpy as np, pandas as pd, anndata as ad
out, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(1)
centres = rng.normal(size=(30, dim)) * 2
for name in ("ref", "query"):
    t = rng.integers(0, 30, n)
    a = ad.AnnData(obs=pd.DataFrame({"cell_type": pd.Categorical([f"type{i:02d}" for i in t])},
                                    index=[f"{name}{i}" for i in range(n)]))
    a.obsm["X_clue"] = (centres[t] + rng.normal(size=(n, dim))).astype(np.float32)
    a.write_h5ad(f"{out}/{name}.h5ad")
PY
timed transfer "$bin" transfer "$out/ref.h5ad" "$out/query.h5ad" --label cell_type \
  --out "$out/transferred.h5ad"
sed 's/^/  /' "$out/transfer.txt"
[ "$keep" = 1 ] || rm -rf "$out/sim" "$out/ref.h5ad" "$out/query.h5ad" "$out/transferred.h5ad"
