#!/usr/bin/python3
"""Writes the randomly paired files of test_pairing.c.

usage: pairing_fixtures.py OUTDIR

Three modalities a, b, c hold random, overlapping subsets of 400 cell names in
random orders, with CSR counts whose row lengths vary, a split column, and a
batch column of a different kind in each (string array with missing values,
categorical with unused and missing categories, float with NaN). Two .h5mu files
put a and b under one global obs (with obsmap, and without it). Broken variants
(duplicated names, bad obsmap rows, a duplicated global name, a cell no batch
column covers) come with the message each must produce, in expect_errors.txt.
"""
import os
import sys
import warnings

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
warnings.simplefilter("ignore")
import anndata as ad  # noqa: E402
from h5ad_fixtures import copy_anndata_into, write_string_column  # noqa: E402

rng = np.random.RandomState(7)
UNIVERSE = ["r%03d" % i for i in rng.permutation(400)]


def pick(n):
    return [UNIVERSE[i] for i in rng.choice(len(UNIVERSE), n, replace=False)]


def counts(n, n_var):
    dense = rng.poisson(rng.uniform(0.05, 1.5, size=(n, 1)), size=(n, n_var))
    return sp.csr_matrix(dense.astype(np.float32))


def split_column(n):
    return pd.Categorical(np.where(rng.uniform(size=n) < 0.2, "test", "train"))


def modality_a(names):
    n = len(names)
    obs = pd.DataFrame(index=names)
    obs["split"] = split_column(n)
    a = ad.AnnData(X=counts(n, 20), obs=obs,
                   var=pd.DataFrame(index=["ga%02d" % j for j in range(20)]))
    labels = [["s3", "s1", "s2", ""][i] for i in rng.randint(0, 4, size=n)]
    labels[-3:] = ["s9"] * 3  # a label whose first cell is on the last rank
    return a, labels


def modality_b(names):
    n = len(names)
    obs = pd.DataFrame(index=names)
    obs["split"] = split_column(n)
    vals = [[None, "k0", "k1", "k2"][i] for i in rng.randint(0, 4, size=n)]
    obs["batch"] = pd.Categorical(vals, categories=["k2", "k0", "k1", "unused"])
    return ad.AnnData(X=counts(n, 12), obs=obs,
                      var=pd.DataFrame(index=["gb%02d" % j for j in range(12)]))


def modality_c(names, with_batch=True, rare=()):
    """rare: rows whose batch is 7.25, a label that only they have."""
    n = len(names)
    obs = pd.DataFrame(index=names)
    obs["split"] = split_column(n)
    if with_batch:
        vals = np.array([[1.5, 2.0, np.nan][i] for i in rng.randint(0, 3, size=n)])
        vals[list(rare)] = 7.25
        obs["batch"] = vals
    return ad.AnnData(X=counts(n, 7), obs=obs,
                      var=pd.DataFrame(index=["gc%02d" % j for j in range(7)]))


def write_a(path, names):
    a, labels = modality_a(names)
    a.write_h5ad(path)
    write_string_column(path, "batch", labels)


def string_dataset(group, name, values):
    d = group.create_dataset(name, data=np.array(values, dtype=object),
                             dtype=h5py.string_dtype())
    d.attrs["encoding-type"] = "string-array"
    d.attrs["encoding-version"] = "0.2.0"


def write_h5mu(out, path, glob, mods, with_obsmap):
    """glob: global obs names; mods: [(name, path of its .h5ad, its names)]."""
    with h5py.File(path, "w", userblock_size=512) as f:
        f.attrs["encoding-type"] = "MuData"
        f.attrs["encoding-version"] = "0.1.0"
        f.attrs["axis"] = 0
        mod = f.create_group("mod")
        mod.attrs["mod-order"] = np.array([m[0] for m in mods], dtype=object)
        for name, src, _ in mods:
            copy_anndata_into(src, mod, name)
        obs = f.create_group("obs")
        for k, v in (("_index", "_index"), ("encoding-type", "dataframe"),
                     ("encoding-version", "0.2.0")):
            obs.attrs[k] = v
        obs.attrs["column-order"] = np.array(["batch"], dtype=object)
        string_dataset(obs, "_index", glob)
        bg = obs.create_group("batch")
        bg.attrs["encoding-type"] = "categorical"
        bg.attrs["encoding-version"] = "0.2.0"
        bg.attrs["ordered"] = False
        string_dataset(bg, "categories", ["gB", "gA", "gC"])
        bg.create_dataset("codes", data=rng.randint(-1, 3, size=len(glob)).astype(np.int8))
        var = f.create_group("var")
        for k, v in (("_index", "_index"), ("encoding-type", "dataframe"),
                     ("encoding-version", "0.2.0")):
            var.attrs[k] = v
        var.attrs["column-order"] = np.array([], dtype=np.float64)
        string_dataset(var, "_index", ["v%d" % j for j in range(32)])
        if with_obsmap:
            om = f.create_group("obsmap")
            for name, _, names in mods:
                where = {c: r + 1 for r, c in enumerate(names)}
                om.create_dataset(name, data=np.array([where.get(g, 0) for g in glob],
                                                      dtype=np.uint32))
    with open(path, "r+b") as fh:
        fh.write(b"MuData (format-version=0.1.0;creator=pairing_fixtures.py)")


def with_obsmap_rows(path, mod, edits):
    with h5py.File(path, "r+") as f:
        m = f["obsmap/" + mod][()]
        for g, row in edits:
            m[g] = row
        f["obsmap/" + mod][...] = m


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: pairing_fixtures.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    p = lambda name: os.path.join(out, name)  # noqa: E731
    na, nb, nc = pick(240), pick(200), pick(150)
    write_a(p("a.h5ad"), na)
    modality_b(nb).write_h5ad(p("b.h5ad"))
    # c's first rows that a and b lack get a label of their own: in the pairing
    # order it comes after every label of a, though rank 0 holds these rows
    only_c = [i for i, x in enumerate(nc[:20]) if x not in set(na) | set(nb)]
    modality_c(nc, rare=only_c).write_h5ad(p("c.h5ad"))
    modality_c(nc, with_batch=False).write_h5ad(p("c_nobatch.h5ad"))
    expect = []
    # duplicated names: b (rows 100 and 150; a third name at 10, 180, 190)
    dup_b = list(nb)
    dup_b[150] = dup_b[100]
    dup_b[180] = dup_b[10]
    dup_b[190] = dup_b[10]
    modality_b(dup_b).write_h5ad(p("dup_b.h5ad"))
    expect.append(("dup_b", "b (%s): obs name '%s' appears twice (rows 100 and 150)"
                   % (p("dup_b.h5ad"), dup_b[100])))
    dup_c = list(nc)
    dup_c[40] = dup_c[5]
    dup_c[30] = dup_c[12]
    modality_c(dup_c).write_h5ad(p("dup_c.h5ad"))
    expect.append(("dup_c", "c (%s): obs name '%s' appears twice (rows 12 and 30)"
                   % (p("dup_c.h5ad"), dup_c[12])))
    # the first cell (pairing order) that no batch column covers: c's first cell
    # that a and b lack
    seen = set(na) | set(nb)
    first = next(x for x in nc if x not in seen)
    expect.append(("nosource", "cell '%s' has no value for obs column 'batch'" % first))
    # .h5mu: a and b under a global obs of 300 names (a's and b's and others)
    glob = list(dict.fromkeys(na + nb))
    rest = [x for x in UNIVERSE if x not in set(glob)]
    glob = list(rng.permutation(glob + rest[: 300 - len(glob)])) if len(glob) < 300 else glob
    mods = [("a", p("a.h5ad"), na), ("b", p("b.h5ad"), nb)]
    write_h5mu(out, p("ab.h5mu"), glob, mods, True)
    write_h5mu(out, p("ab_noobsmap.h5mu"), glob, mods, False)
    # bad obsmaps: b's rows of two global cells equal (the second is cell 50),
    # and a row past the end at cell 80 / at cell 20
    write_h5mu(out, p("obsmap_dup.h5mu"), glob, mods, True)
    with h5py.File(p("obsmap_dup.h5mu"), "r") as f:
        mb = f["obsmap/b"][()]
    g1 = next(g for g in range(50) if mb[g] > 0)
    with_obsmap_rows(p("obsmap_dup.h5mu"), "b", [(50, mb[g1]), (80, len(nb) + 5)])
    expect.append(("obsmap_dup", "%s: obsmap/b maps two global cells to row %d (the second "
                   "is cell 50)" % (p("obsmap_dup.h5mu"), mb[g1])))
    write_h5mu(out, p("obsmap_range.h5mu"), glob, mods, True)
    with_obsmap_rows(p("obsmap_range.h5mu"), "b", [(50, mb[g1]), (20, len(nb) + 5)])
    expect.append(("obsmap_range", "%s: obsmap/b maps global cell 20 to row %d but mod/b has "
                   "%d rows" % (p("obsmap_range.h5mu"), len(nb) + 5, len(nb))))
    gdup = list(glob)
    gdup[90] = gdup[7]
    write_h5mu(out, p("global_dup.h5mu"), gdup, mods, True)
    expect.append(("global_dup", "%s: obs name '%s' appears twice (rows 7 and 90)"
                   % (p("global_dup.h5mu"), gdup[7])))
    with open(p("expect_errors.txt"), "w") as fh:
        for name, text in expect:
            fh.write("%s\t%s\n" % (name, text))


if __name__ == "__main__":
    main()
