#!/usr/bin/python3
"""Writes the small AnnData/MuData files the reader tests use.

usage: h5ad_fixtures.py OUTDIR

Good files are written by anndata (0.8, Debian's python3-anndata) and then
altered with h5py where a test needs a layout anndata does not produce itself
(int64 indptr, uint16 indices, fixed-length strings, CSC, unsorted indices,
MuData files, which need no mudata package). Broken files (bad_*.h5ad) feed
the error tests. Every matrix value follows val()/val2() below, which the C
tests recompute.
"""
import os
import sys
import warnings

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp

warnings.simplefilter("ignore")
import anndata as ad  # noqa: E402

N_OBS, N_VAR = 40, 13
N_VAR2 = 5


def val(i, j):
    """Modality 1 (rna-like): value of cell i, feature j."""
    if i % 9 == 4:
        return 0
    return i + 2 * j + 1 if (i * 7 + j * 3) % 5 == 0 else 0


def val2(i, j):
    """Modality 2 (adt-like) of global cell i, feature j."""
    return i + j + 2 if (i * 3 + j) % 4 != 1 else 0


def dense1(rows):
    return np.array([[val(i, j) for j in range(N_VAR)] for i in rows], dtype=np.float64)


def dense2(rows):
    return np.array([[val2(i, j) for j in range(N_VAR2)] for i in rows], dtype=np.float64)


def cell(i):
    return "c%02d" % i


def obs_frame(rows):
    n = len(rows)
    obs = pd.DataFrame(index=[cell(i) for i in rows])
    obs["cat"] = pd.Categorical([["a", "b", "c", None][i % 4] for i in rows],
                                categories=["a", "b", "c"])
    obs["num"] = np.array([i * 0.5 for i in rows], dtype=np.float64)
    obs["ints"] = np.array(rows, dtype=np.int64)
    obs["flag"] = np.array([i % 3 == 0 for i in rows])
    obs["nint"] = pd.array([None if i % 5 == 0 else i for i in rows], dtype="Int64")
    obs["nbool"] = pd.array([None if i % 7 == 0 else i % 2 == 0 for i in rows],
                            dtype="boolean")
    obs["split"] = pd.Categorical(["test" if i % 5 == 0 else "train" for i in rows])
    obs["batch"] = pd.Categorical(["b%d" % (i % 3) for i in rows])
    assert len(obs) == n
    return obs


def write_string_column(path, name, values, group="obs"):
    """A string-array column (anndata would turn it into a categorical)."""
    with h5py.File(path, "r+") as f:
        g = f[group]
        d = g.create_dataset(name, data=np.array(values, dtype=object),
                             dtype=h5py.string_dtype())
        d.attrs["encoding-type"] = "string-array"
        d.attrs["encoding-version"] = "0.2.0"
        order = list(g.attrs["column-order"]) + [name]
        g.attrs["column-order"] = np.array(order, dtype=object)


def recode(path, obj, dtype):
    """Rewrites dataset obj with another dtype (same values)."""
    with h5py.File(path, "r+") as f:
        v = f[obj][()]
        attrs = dict(f[obj].attrs)
        del f[obj]
        d = f.create_dataset(obj, data=v.astype(dtype))
        for k, a in attrs.items():
            d.attrs[k] = a


def base_anndata(rows=range(N_OBS)):
    rows = list(rows)
    x = sp.csr_matrix(dense1(rows).astype(np.float32))
    a = ad.AnnData(X=x, obs=obs_frame(rows),
                   var=pd.DataFrame(index=["g%02d" % j for j in range(N_VAR)]))
    a.layers["counts"] = sp.csr_matrix(dense1(rows).astype(np.int64))
    a.layers["dense"] = dense1(rows)
    a.obsm["X_pca"] = np.array([[i + j / 10 for j in range(3)] for i in rows])
    return a


def write_good(out):
    p = os.path.join(out, "csr.h5ad")
    base_anndata().write_h5ad(p)
    write_string_column(p, "name", ["n%d" % (i % 6) for i in range(N_OBS)])
    recode(p, "obs/batch/codes", np.int64)
    recode(p, "layers/counts/indptr", np.int64)

    # int64 indptr, uint16 indices, float64 data
    p = os.path.join(out, "csr64.h5ad")
    base_anndata().write_h5ad(p)
    recode(p, "X/indptr", np.int64)
    recode(p, "X/indices", np.uint16)
    recode(p, "X/data", np.float64)
    recode(p, "obs/cat/codes", np.int16)

    # integer data, int64 indices
    p = os.path.join(out, "csr_int.h5ad")
    base_anndata().write_h5ad(p)
    recode(p, "X/data", np.int32)
    recode(p, "X/indices", np.int64)

    a = base_anndata()
    a.X = sp.csc_matrix(a.X)
    a.write_h5ad(os.path.join(out, "csc.h5ad"))

    a = base_anndata()
    a.X = dense1(range(N_OBS)).astype(np.float32)
    a.write_h5ad(os.path.join(out, "dense.h5ad"))

    write_fixed_strings(out)
    write_unsorted(out)
    write_many_rows(out)


N_BIG = 60000


def write_many_rows(out):
    """60,000 cells with one value each (column r % 10, value r % 7 + 1):
    reading every other row is a union of 30,000 hyperslabs."""
    r = np.arange(N_BIG)
    x = sp.csr_matrix(((r % 7 + 1).astype(np.float32), (r, r % 10)), shape=(N_BIG, 10))
    obs = pd.DataFrame(index=["r%d" % i for i in r])
    a = ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=["f%d" % j for j in range(10)]))
    a.write_h5ad(os.path.join(out, "many.h5ad"))


def fix_attrs(obj):
    for k, v in list(obj.attrs.items()):
        if isinstance(v, str):
            obj.attrs.create(k, np.bytes_(v.encode()), dtype=h5py.string_dtype("ascii", len(v) + 3))


def write_fixed_strings(out):
    """Every string attribute and the obs index as fixed-length strings."""
    p = os.path.join(out, "fixedstr.h5ad")
    base_anndata().write_h5ad(p)
    with h5py.File(p, "r+") as f:
        fix_attrs(f)
        f.visititems(lambda name, o: fix_attrs(o))
        order = [c.encode() for c in f["obs"].attrs["column-order"]]
        f["obs"].attrs.create("column-order", np.array(order, dtype="S12"))
        names = [cell(i).encode() for i in range(N_OBS)]
        attrs = dict(f["obs/_index"].attrs)
        del f["obs/_index"]
        d = f["obs"].create_dataset("_index", data=np.array(names, dtype="S8"))
        for k, v in attrs.items():
            d.attrs[k] = v
        fix_attrs(d)


def write_unsorted(out):
    """CSR whose rows list columns in descending order, with one value split
    into two duplicate entries (scipy sums duplicates)."""
    p = os.path.join(out, "unsorted.h5ad")
    base_anndata().write_h5ad(p)
    with h5py.File(p, "r+") as f:
        ip = f["X/indptr"][()]
        idx = f["X/indices"][()]
        dat = f["X/data"][()]
        nidx, ndat, nip = [], [], [0]
        for r in range(N_OBS):
            cols = list(idx[ip[r]:ip[r + 1]])[::-1]
            vals = list(dat[ip[r]:ip[r + 1]])[::-1]
            if r == 1 and cols:
                cols.append(cols[0])
                half = vals[0] / 2
                vals[0] = half
                vals.append(half)
            nidx += cols
            ndat += vals
            nip.append(len(nidx))
        for k, v in (("indptr", nip), ("indices", nidx), ("data", ndat)):
            del f["X/" + k]
        f["X"].create_dataset("indptr", data=np.array(nip, dtype=np.int32))
        f["X"].create_dataset("indices", data=np.array(nidx, dtype=np.int32))
        f["X"].create_dataset("data", data=np.array(ndat, dtype=np.float32))


# ---- paired modalities ----

RNA_CELLS = list(range(0, 30))          # c00..c29
ADT_CELLS = list(range(39, 9, -1))      # c39..c10, reversed order


def modality(rows, second):
    x = dense2(rows) if second else dense1(rows)
    nv = N_VAR2 if second else N_VAR
    obs = pd.DataFrame(index=[cell(i) for i in rows])
    obs["split"] = pd.Categorical(["test" if i % 5 == 0 else "train" for i in rows])
    if second:
        obs["batch"] = pd.Categorical(["b%d" % (i % 3) for i in rows],
                                      categories=["b2", "b1", "b0"])
    else:
        obs["batch"] = pd.Categorical([None if i == 3 else "b%d" % (i % 3) for i in rows],
                                      categories=["b0", "b1", "b2", "unused"])
    var = pd.DataFrame(index=[("p%02d" if second else "g%02d") % j for j in range(nv)])
    return ad.AnnData(X=sp.csr_matrix(x.astype(np.float32)), obs=obs, var=var)


def copy_anndata_into(src_path, dst, name):
    with h5py.File(src_path, "r") as s:
        s.copy(s["/"], dst, name=name)
        for k, v in s.attrs.items():
            dst[name].attrs[k] = v


def write_h5mu(out, path, with_obsmap):
    tmp = [os.path.join(out, "_mod_rna.h5ad"), os.path.join(out, "_mod_adt.h5ad")]
    modality(RNA_CELLS, False).write_h5ad(tmp[0])
    modality(ADT_CELLS, True).write_h5ad(tmp[1])
    glob = list(range(N_OBS))
    with h5py.File(path, "w", userblock_size=512) as f:
        f.attrs["encoding-type"] = "MuData"
        f.attrs["encoding-version"] = "0.1.0"
        f.attrs["encoding-creator"] = "h5ad_fixtures.py"
        f.attrs["axis"] = 0
        mod = f.create_group("mod")
        mod.attrs["mod-order"] = np.array(["rna", "adt"], dtype=object)
        copy_anndata_into(tmp[0], mod, "rna")
        copy_anndata_into(tmp[1], mod, "adt")
        obs = f.create_group("obs")
        for k, v in (("_index", "_index"), ("encoding-type", "dataframe"),
                     ("encoding-version", "0.2.0")):
            obs.attrs[k] = v
        obs.attrs["column-order"] = np.array(["origin"], dtype=object)
        d = obs.create_dataset("_index", data=np.array([cell(i) for i in glob], dtype=object),
                               dtype=h5py.string_dtype())
        d.attrs["encoding-type"] = "string-array"
        d.attrs["encoding-version"] = "0.2.0"
        og = obs.create_group("origin")
        og.attrs["encoding-type"] = "categorical"
        og.attrs["encoding-version"] = "0.2.0"
        og.attrs["ordered"] = False
        og.create_dataset("categories", data=np.array(["both", "rna", "adt"], dtype=object),
                          dtype=h5py.string_dtype())
        code = [0 if 10 <= i < 30 else (1 if i < 10 else 2) for i in glob]
        og.create_dataset("codes", data=np.array(code, dtype=np.int8))
        var = f.create_group("var")
        for k, v in (("_index", "_index"), ("encoding-type", "dataframe"),
                     ("encoding-version", "0.2.0")):
            var.attrs[k] = v
        var.attrs["column-order"] = np.array([], dtype=np.float64)
        names = ["g%02d" % j for j in range(N_VAR)] + ["p%02d" % j for j in range(N_VAR2)]
        var.create_dataset("_index", data=np.array(names, dtype=object),
                           dtype=h5py.string_dtype())
        if with_obsmap:
            om = f.create_group("obsmap")
            for name, rows in (("rna", RNA_CELLS), ("adt", ADT_CELLS)):
                where = {c: r + 1 for r, c in enumerate(rows)}
                om.create_dataset(name, data=np.array([where.get(i, 0) for i in glob],
                                                      dtype=np.uint32))
    with open(path, "r+b") as fh:
        fh.write(b"MuData (format-version=0.1.0;creator=h5ad_fixtures.py;creator-version=1)")
    for t in tmp:
        os.remove(t)


def write_paired(out):
    modality(RNA_CELLS, False).write_h5ad(os.path.join(out, "pair_rna.h5ad"))
    modality(ADT_CELLS, True).write_h5ad(os.path.join(out, "pair_adt.h5ad"))
    # three cells, one of them test: more ranks than selected cells
    modality([0, 1, 2], False).write_h5ad(os.path.join(out, "tiny_rna.h5ad"))
    modality([2, 1, 0], True).write_h5ad(os.path.join(out, "tiny_adt.h5ad"))
    write_h5mu(out, os.path.join(out, "pair.h5mu"), True)
    write_h5mu(out, os.path.join(out, "pair_noobsmap.h5mu"), False)


# ---- broken files ----

def small(rows=range(N_OBS)):
    rows = list(rows)
    x = sp.csr_matrix(dense1(rows).astype(np.float32))
    obs = pd.DataFrame(index=[cell(i) for i in rows])
    obs["split"] = pd.Categorical(["test" if i % 5 == 0 else "train" for i in rows])
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=["g%02d" % j for j in range(N_VAR)]))


def broken(out, name, edit):
    p = os.path.join(out, "bad_" + name + ".h5ad")
    small().write_h5ad(p)
    with h5py.File(p, "r+") as f:
        edit(f)


def replace(f, obj, data):
    attrs = dict(f[obj].attrs)
    del f[obj]
    d = f.create_dataset(obj, data=data)
    for k, v in attrs.items():
        d.attrs[k] = v


def write_bad(out):
    with open(os.path.join(out, "bad_text.h5ad"), "w") as fh:
        fh.write("cell,gene,count\nc00,g00,1\n")

    def old(f):
        del f.attrs["encoding-type"]
        del f.attrs["encoding-version"]
    broken(out, "old", old)
    broken(out, "coo", lambda f: f["X"].attrs.__setitem__("encoding-type", "coo_matrix"))

    def indptr_decr(f):
        ip = f["X/indptr"][()]
        ip[8] = ip[7] - 1  # row 7 ends before it starts
        replace(f, "X/indptr", ip)
    broken(out, "indptr_decr", indptr_decr)

    def indptr_end(f):
        ip = f["X/indptr"][()]
        ip[-1] -= 1
        replace(f, "X/indptr", ip)
    broken(out, "indptr_end", indptr_end)

    def idx_range(f):
        idx = f["X/indices"][()]
        idx[len(idx) // 2] = N_VAR + 4
        replace(f, "X/indices", idx)
    broken(out, "idx_range", idx_range)

    def negative(f):
        d = f["X/data"][()]
        d[3] = -2
        replace(f, "X/data", d)
    broken(out, "negative", negative)

    def nan(f):
        d = f["X/data"][()]
        d[5] = np.nan
        replace(f, "X/data", d)
    broken(out, "nan", nan)

    broken(out, "shape", lambda f: f["X"].attrs.__setitem__("shape", np.array([N_OBS + 1, N_VAR])))

    def dup(f):
        names = [cell(i) for i in range(N_OBS)]
        names[17] = names[3]
        replace(f, "obs/_index", np.array(names, dtype=object).astype(h5py.string_dtype()))
    broken(out, "dup", dup)

    # two modalities whose names differ by a barcode suffix
    a = small()
    a.obs_names = [n + "-1" for n in a.obs_names]
    a.write_h5ad(os.path.join(out, "bad_suffix.h5ad"))
    small().write_h5ad(os.path.join(out, "ok_small.h5ad"))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: h5ad_fixtures.py OUTDIR")
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    write_good(out)
    write_paired(out)
    write_bad(out)


if __name__ == "__main__":
    main()
