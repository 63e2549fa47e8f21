#!/usr/bin/env bash
# umap_bench.sh — times `clue umap` on N cells (default 10^5) on P MPI ranks
# (default 2) and umap-learn (the Debian package, one process) on the same
# points, and prints both times and, for both layouts, the trustworthiness (15
# neighbours) on a random subsample of SUB cells (default 10,000: scikit-learn's
# trustworthiness needs the full distance matrix of the cells it scores) and
# the share of the 15 nearest cells (searched among all) kept in 2-D for 5,000
# of them.
#
#   tools/umap_bench.sh [--cells N] [--dim D] [--ranks P] [--sub SUB] [--out DIR]
#                       [--clue PATH]
#
# The points: 30 overlapping, curved Gaussian clusters in D = 40 columns (one
# connected kNN graph) written as obsm/X_clue by tools/umap_reference.py
# (seed 0). Both programs use 15 neighbours, min_dist 0.1 and 200 epochs (their
# default above 10,000 cells). umap-learn runs in one process (random_state
# set); clue's layout also runs single-threaded, after the kNN split over ranks.
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
cells=100000 dim=40 ranks=2 sub=10000 out=/tmp/clue-umap-bench clue="$here/../build/clue"
while [ $# -gt 0 ]; do
  case "$1" in
    --cells) cells=$2; shift 2 ;;
    --dim) dim=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --sub) sub=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --clue) clue=$2; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "umap_bench.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
PY=/usr/bin/python3
"$PY" -c 'import umap, anndata, sklearn' || { echo "umap_bench.sh: needs $PY with umap-learn, anndata, sklearn" >&2; exit 1; }
[ -x "$clue" ] || { echo "umap_bench.sh: $clue not built (cmake --build build)" >&2; exit 1; }
mkdir -p "$out"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export NUMBA_CACHE_DIR="$out/numba"
echo "== $cells cells x $dim columns -> $out/points.h5ad"
"$PY" "$here/umap_reference.py" make "$out/points.h5ad" "$cells" "$dim" 0
echo "== clue umap on $ranks ranks"
start=$(date +%s.%N)
mpirun --oversubscribe -np "$ranks" "$clue" umap "$out/points.h5ad" --out "$out/clue_umap.h5ad" --progress
end=$(date +%s.%N)
clue_time=$(echo "$end - $start" | bc)
echo "== umap-learn"
"$PY" "$here/umap_reference.py" compare "$out/points.h5ad" "$out/clue_umap.h5ad" "$sub" 0
printf 'clue umap, %d ranks: %.1f s (whole command: read, kNN, layout, write)\n' "$ranks" "$clue_time"
