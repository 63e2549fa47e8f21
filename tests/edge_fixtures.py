#!/usr/bin/python3
"""Edits a small simulated data set (rna.h5ad + adt.h5ad written by
`clue simulate`) into the edge cases of tests/test_edge_inputs.sh.

usage: edge_fixtures.py BASE_DIR OUT_DIR

Each case is a folder OUT_DIR/<case>/ holding rna.h5ad and adt.h5ad:
  batch1      batch 'b_alone' holds exactly one cell
  zero_feat   two RNA genes and one ADT protein are zero in every cell
  zero_cells  five cells have no count at all in RNA, two of them none in ADT
  dup_feat    RNA gene names repeat (var index not unique)
  huge        every count multiplied by 3e7 (far above 2^24)
"""
import os
import sys
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

warnings.simplefilter("ignore")
import anndata as ad  # noqa: E402


def load(base):
    return ad.read_h5ad(os.path.join(base, "rna.h5ad")), ad.read_h5ad(os.path.join(base, "adt.h5ad"))


def save(out, case, rna, adt):
    d = os.path.join(out, case)
    os.makedirs(d, exist_ok=True)
    rna.write_h5ad(os.path.join(d, "rna.h5ad"))
    adt.write_h5ad(os.path.join(d, "adt.h5ad"))


def with_x(a, x):
    b = a.copy()
    b.X = sp.csr_matrix(x.astype(np.float32))
    return b


def main():
    base, out = sys.argv[1], sys.argv[2]
    rna, adt = load(base)
    # a batch with a single cell
    r, a = rna.copy(), adt.copy()
    batch = r.obs["batch"].astype(str).values.copy()
    batch[3] = "b_alone"
    for x in (r, a):
        x.obs["batch"] = pd.Categorical(batch)
    save(out, "batch1", r, a)
    # features that are zero everywhere
    xr, xa = rna.X.toarray(), adt.X.toarray()
    xr[:, [0, 7]] = 0
    xa[:, 2] = 0
    save(out, "zero_feat", with_x(rna, xr), with_x(adt, xa))
    # cells without any count
    xr, xa = rna.X.toarray(), adt.X.toarray()
    xr[[1, 4, 9, 10, 20], :] = 0
    xa[[4, 10], :] = 0
    save(out, "zero_cells", with_x(rna, xr), with_x(adt, xa))
    # duplicated feature names
    r = rna.copy()
    names = list(r.var_names)
    names[5] = names[4]
    names[9] = names[4]
    r.var_names = names
    save(out, "dup_feat", r, adt.copy())
    # very large counts
    save(out, "huge", with_x(rna, rna.X.toarray() * 3e7), with_x(adt, adt.X.toarray() * 3e7))


if __name__ == "__main__":
    main()
