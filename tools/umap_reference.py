#!/usr/bin/env python3
"""umap_reference.py — the reference side of tools/umap_bench.sh.

  umap_reference.py make OUT.h5ad N DIM SEED
      writes N points in DIM columns as obsm['X_clue'] (30 overlapping
      Gaussian clusters, each elongated along a curve, plus a 'cluster' obs
      column; one connected kNN graph): a stand-in for a 10^5-cell embedding.
  umap_reference.py compare IN.h5ad CLUE_OUT.h5ad SUBSAMPLE SEED
      times umap-learn (n_neighbors 15, min_dist 0.1, random_state SEED) on
      IN's obsm['X_clue'] and prints its time and the trustworthiness (15
      neighbours) of clue's obsm['X_umap'] and of umap-learn's layout, on the
      same random SUBSAMPLE of cells (0 = all; scikit-learn's trustworthiness
      needs the subsample's full distance matrix), and, for 5,000 of those
      cells, the share of their 15 nearest cells (among all) kept among their
      15 nearest in each layout.
"""
import sys
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")


def make(out, n, dim, seed):
    import anndata as ad
    import pandas as pd
    rng = np.random.default_rng(seed)
    k = 30
    centres = rng.normal(size=(k, dim)) * 0.6
    axis = rng.normal(size=(k, dim))
    bend = rng.normal(size=(k, dim))
    lab = rng.integers(0, k, n)
    t = rng.uniform(-1, 1, n)
    x = (centres[lab] + t[:, None] * axis[lab] * 2.0 + (t ** 2)[:, None] * bend[lab]
         + rng.normal(size=(n, dim)) * 0.6)
    obs = pd.DataFrame({"cluster": pd.Categorical([f"c{i}" for i in lab])},
                       index=[f"cell{i}" for i in range(n)])
    a = ad.AnnData(obs=obs)
    a.obsm["X_clue"] = x.astype(np.float32)
    a.write_h5ad(out)


def compare(inp, clue_out, sub, seed):
    import anndata as ad
    import umap
    from sklearn.manifold import trustworthiness
    X = ad.read_h5ad(inp).obsm["X_clue"].astype(np.float32)
    Y = ad.read_h5ad(clue_out).obsm["X_umap"]
    t0 = time.time()
    R = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=seed).fit_transform(X)
    t = time.time() - t0
    idx = np.arange(X.shape[0])
    if 0 < sub < X.shape[0]:
        idx = np.sort(np.random.default_rng(seed).choice(X.shape[0], sub, replace=False))
    Xs = X[idx].astype(np.float64)
    tc = trustworthiness(Xs, Y[idx], n_neighbors=15)
    tu = trustworthiness(Xs, R[idx], n_neighbors=15)
    q = idx[:5000]
    pc, pu = knn_kept(X, Y, q), knn_kept(X, R, q)
    print(f"umap-learn {umap.__version__}: {t:.1f} s (single process, random_state={seed})")
    print(f"trustworthiness (15 neighbours) on {len(idx)} of {X.shape[0]} cells: "
          f"clue {tc:.4f}, umap-learn {tu:.4f}")
    print(f"15 nearest neighbours (among all cells) kept in 2-D, mean over {len(q)} cells: "
          f"clue {pc:.4f}, umap-learn {pu:.4f}")


def knn_kept(X, Y, q):
    """Mean share of each cell q's 15 nearest cells in X that are among its 15
    nearest in the layout Y (all cells searched)."""
    from sklearn.neighbors import NearestNeighbors
    a = NearestNeighbors(n_neighbors=16, algorithm="brute").fit(X).kneighbors(X[q])[1][:, 1:]
    b = NearestNeighbors(n_neighbors=16).fit(Y).kneighbors(Y[q])[1][:, 1:]
    return float(np.mean([len(set(u) & set(v)) / 15 for u, v in zip(a, b)]))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif len(sys.argv) == 6 and sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    else:
        sys.exit(__doc__)
