#!/usr/bin/env bash
# tools/atlas.sh — the atlas rehearsal (not part of CI): a simulated atlas with a
# small paired bridge (`clue simulate --paired F`, RNA 2,000 genes + ATAC 20,000
# peaks, 20 % of the cells held out as test), trained on NP ranks with the
# Multiome hyper-parameters and the bridge settings, then the test cells
# embedded from each modality alone and scored against the simulated truth:
#   - FOSCTTM and matching of the paired test cells (clue eval);
#   - kNN agreement: for a draw of test cells of both modalities pooled, the
#     share of each cell's 15 nearest neighbours in X_clue that are also among
#     its 15 nearest in the true latent space obsm['X_latent'] (1: the same
#     neighbourhoods; a map that keeps the modalities apart scores low).
# Prints wall times, time per epoch, the peak memory of every rank and the
# scores; writes OUT/summary.json.
#   tools/atlas.sh [--np 2] [--cells 1000000] [--paired 0.01] [--epochs 1]
#                  [--out runs/atlas] [--set key=value]... [--keep]
# Needs about 7 GB of disk per million cells (removed at the end unless --keep).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
clue_mpi_env
np=2; cells=1000000; paired=0.01; epochs=1; out="$CLUE_ROOT/runs/atlas"; sets=(); keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --np) np="$2"; shift 2 ;;
    --cells) cells="$2"; shift 2 ;;
    --paired) paired="$2"; shift 2 ;;
    --epochs) epochs="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    --keep) keep=1; shift ;;
    *) echo "atlas.sh: unknown option $1 (see the header of tools/atlas.sh)" >&2; exit 2 ;;
  esac
done
py=/usr/bin/python3
"$py" -c 'import anndata, numpy' 2>/dev/null ||
  { echo "atlas.sh: $py lacks anndata (Debian python3-anndata)" >&2; exit 1; }
bin="${CLUE_BIN:-$CLUE_ROOT/build/clue}"
[ -x "$bin" ] || clue_build "$CLUE_ROOT/build"
cores=$(nproc)
export OPENBLAS_NUM_THREADS=$(( cores / np > 0 ? cores / np : 1 )) OMP_NUM_THREADS=1
CLUE_MPIRUN_FLAGS=()
[ "$np" -gt "$cores" ] && CLUE_MPIRUN_FLAGS+=(--oversubscribe)
mkdir -p "$out"
timed() { clue_timed "$out" "$np" "$@" | tee -a "$out/times.txt"; return "${PIPESTATUS[0]}"; }
rm -f "$out/times.txt"
echo "atlas rehearsal: $cells cells, $paired paired, $np ranks x $OPENBLAS_NUM_THREADS threads, $epochs epoch(s), in $out"
if [ ! -f "$out/data/rna.h5ad" ]; then
  timed simulate "$bin" simulate --cells "$cells" --rna 2000 --atac 20000 --paired "$paired" \
    --atac-binary --out "$out/data" --quiet
fi
cat >"$out/run.yaml" <<EOF
version: 1
data:
  modalities:
    rna: {file: $out/data/rna.h5ad, likelihood: nb, preprocess: pca}
    atac: {file: $out/data/atac.h5ad, likelihood: bernoulli, preprocess: lsi}
  batch_key: batch
  split_key: split
model:
  latent_dim: 50
  encoder: {depth: 2, width: 512}
  decoder: {depth: 1, width: 256}
  discriminator: {depth: 1, width: 256}
loss: {data: 1.0, kl: 0.3, align: 0.02, cross: 1.0, cos: 0.02}
train: {max_epochs: $epochs, early_stopping: false, checkpoint_seconds: 600}
output: {dir: $out/train}
EOF
timed train "$bin" train --config "$out/run.yaml" "${sets[@]}" --overwrite
grep -E '^(training on|done|step [0-9]+:)' "$out/train.txt" | sed 's/^/  /' | tail -4
timed embed "$bin" embed --checkpoint "$out/train/checkpoint.h5" --out "$out/embed" --cells test
timed eval "$bin" eval "$out/embed/rna.h5ad" "$out/embed/atac.h5ad" --json "$out/eval.json"
sed -n '1,4p' "$out/eval.txt" | sed 's/^/  /'
"$py" - "$out" "$cells" "$paired" <<'PY'
import json, sys, numpy as np, anndata as ad
out, n_cells, paired = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
log = [json.loads(l) for l in open(f"{out}/train/log.jsonl")]
emb, lat = [], []
rng = np.random.default_rng(0)
for m in ("rna", "atac"):
    e = ad.read_h5ad(f"{out}/embed/{m}.h5ad")
    x = ad.read_h5ad(f"{out}/data/{m}.h5ad", backed="r")
    pick = np.sort(rng.choice(e.n_obs, size=min(2500, e.n_obs), replace=False))
    names = e.obs_names[pick]
    emb.append(e.obsm["X_clue"][pick])
    where = x.obs_names.get_indexer(names)
    order = np.argsort(where)
    z = np.empty((len(pick), x.obsm["X_latent"].shape[1]), dtype=np.float64)
    z[order] = x.obsm["X_latent"][np.sort(where)]
    lat.append(z)
    x.file.close()
def knn(a, k):
    a = a.astype(np.float64)
    sq = (a * a).sum(1)
    d = sq[:, None] + sq[None, :] - 2 * a @ a.T
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, :k]
k = 15
A, Z = np.vstack(emb), np.vstack(lat)
na = knn(A, k); nz = knn(Z, k)
agree = np.mean([len(set(na[i]) & set(nz[i])) / k for i in range(len(A))])
n0 = len(emb[0])
mixed = np.mean((na[:n0] >= n0).mean(1)), np.mean((na[n0:] < n0).mean(1))
ev = json.load(open(f"{out}/eval.json"))
epoch_s = [l["seconds"] for l in log]
s = {"cells": n_cells, "paired": paired, "epochs": len(log), "seconds_per_epoch": epoch_s,
     "foscttm": ev["foscttm"], "match": ev["match"], "paired_test_cells": ev["n"],
     "knn_agreement": agree, "k": k, "cells_scored": len(A),
     "other_modality_share_of_neighbours": {"rna": mixed[0], "atac": mixed[1]}}
with open(f"{out}/summary.json", "w") as f:
    json.dump(s, f, indent=1)
print(f"  epochs {len(log)}, seconds per epoch {', '.join(f'{x:.0f}' for x in epoch_s)}")
print(f"  paired test cells {ev['n']}: FOSCTTM {ev['foscttm']:.4f}, matching {ev['match']:.4f}")
print(f"  kNN agreement with X_latent (k = {k}, {len(A)} test cells, both modalities): {agree:.3f}; "
      f"share of neighbours from the other modality: rna {mixed[0]:.2f}, atac {mixed[1]:.2f}")
PY
[ "$keep" = 1 ] || rm -rf "$out/data"
