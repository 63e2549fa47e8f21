#!/bin/bash
# test_interop.sh — files written by clue open in Python's anndata (Debian's
# python3-anndata 0.8, /usr/bin/python3) with the values clue wrote:
#  1. `clue simulate` (default: bmmc_cite_600 shape) as .h5ad on 1 and 2 ranks:
#     shapes, obs columns and categories, X integer counts, obsm X_latent,
#     the same cells in both files, and 1 rank == 2 ranks exactly;
#  2. `clue simulate --format h5mu` (3 modalities, half paired): the MuData
#     layout (user block, root attributes, obsmap, varmap, mod-order, global
#     obs/var) read element by element with anndata, each modality equal to the
#     .h5ad written with the same options;
#  3. the writer test's file (test_h5ad_write, when built beside clue): every
#     obs column kind, obsm and X equal to the formula it was written from.
# Skips (77) with a message when python3-anndata is missing.
set -u
PY=/usr/bin/python3
if ! $PY -c "import anndata, h5py" 2>/dev/null; then
  echo "SKIP: $PY cannot import anndata and h5py (apt-get install python3-anndata)"
  exit 77
fi
: "${CLUE_BIN:?CLUE_BIN not set}"
TMP=${CLUE_TEST_TMP:-/tmp/clue-interop-$$}
MPIEXEC=${CLUE_MPIEXEC:-mpiexec --oversubscribe}
rm -rf "$TMP"
mkdir -p "$TMP"
fail() { echo "FAIL: $*"; exit 1; }

"$CLUE_BIN" simulate --out "$TMP/cite1" --quiet > "$TMP/cite1.log" || fail "clue simulate (1 rank)"
grep -q "shape of bmmc_cite_600" "$TMP/cite1.log" || fail "summary does not name the data set"
$MPIEXEC -n 2 "$CLUE_BIN" simulate --out "$TMP/cite2" --quiet > /dev/null || fail "clue simulate (2 ranks)"
SIM3="--rna 300 --atac 400 --adt 30 --cells 500 --paired 0.5 --batches 3 --seed 7 --quiet"
$MPIEXEC -n 2 "$CLUE_BIN" simulate $SIM3 --out "$TMP/multi.h5mu" > /dev/null || fail "clue simulate h5mu"
"$CLUE_BIN" simulate $SIM3 --out "$TMP/multi" > /dev/null || fail "clue simulate h5ad (3 modalities)"

WRITER_TEST="$(dirname "$CLUE_BIN")/tests/test_h5ad_write"
WRITER_DIR=""
if [ -x "$WRITER_TEST" ]; then
  WRITER_DIR="$TMP/writer"
  CLUE_TEST_TMP="$WRITER_DIR" "$WRITER_TEST" > "$TMP/writer.log" 2>&1 || fail "test_h5ad_write"
else
  echo "note: $WRITER_TEST not built; part 3 skipped"
fi

$PY - "$TMP" "$WRITER_DIR" <<'EOF'
import sys, warnings
import numpy as np
import anndata, h5py, scipy.sparse as sp
from anndata._io.specs import read_elem

tmp, writer_dir = sys.argv[1], sys.argv[2]
warnings.simplefilter("ignore")

def same(a, b, what):
    assert a.shape == b.shape, what
    assert (a.obs_names == b.obs_names).all(), what + " obs names"
    assert (a.var_names == b.var_names).all(), what + " var names"
    assert list(a.obs.columns) == list(b.obs.columns), what + " obs columns"
    for c in a.obs.columns:
        assert a.obs[c].equals(b.obs[c]), what + " obs " + c
    assert (a.X != b.X).nnz == 0, what + " X"
    assert np.array_equal(a.obsm["X_latent"], b.obsm["X_latent"]), what + " obsm"

# 1. the default data set: bmmc_cite_600 shape
ad = {}
for ranks in (1, 2):
    for mod, nvar in (("rna", 1000), ("adt", 134)):
        a = anndata.read_h5ad(f"{tmp}/cite{ranks}/{mod}.h5ad")
        assert a.shape == (600, nvar), a.shape
        assert list(a.obs.columns) == ["cell_type", "batch", "split"], list(a.obs.columns)
        for c in a.obs.columns:
            assert str(a.obs[c].dtype) == "category", c
        assert list(a.obs["split"].cat.categories) == ["train", "test"]
        assert list(a.obs["batch"].cat.categories) == ["batch1", "batch2"]
        assert len(a.obs["cell_type"].cat.categories) == 10
        test = (a.obs["split"] == "test").mean()
        assert 0.12 < test < 0.28, test
        assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
        assert np.all(a.X.data == np.round(a.X.data)) and a.X.data.min() >= 1
        assert a.obsm["X_latent"].shape == (600, 10) and a.obsm["X_latent"].dtype == np.float32
        assert "clue_simulate" in a.uns
        ad[ranks, mod] = a
    assert (ad[ranks, "rna"].obs_names == ad[ranks, "adt"].obs_names).all()
    assert np.array_equal(ad[ranks, "rna"].obsm["X_latent"], ad[ranks, "adt"].obsm["X_latent"])
for mod in ("rna", "adt"):
    same(ad[1, mod], ad[2, mod], f"1 vs 2 ranks, {mod}")
print("ok: default data set (bmmc_cite_600 shape), 1 rank == 2 ranks")

# 2. the .h5mu written on 2 ranks vs the .h5ad files written on 1 rank
path = f"{tmp}/multi.h5mu"
with open(path, "rb") as f:
    head = f.read(512)
assert head.startswith(b"MuData (format-version=0.1.0;"), head[:60]
f = h5py.File(path, "r")
assert f.attrs["encoding-type"] == "MuData" and f.attrs["axis"] == 0
order = [m.decode() if isinstance(m, bytes) else m for m in f["mod"].attrs["mod-order"]]
assert order == ["rna", "atac", "adt"], order
glob = {k: read_elem(f[k]) for k in f.keys() if k != "mod"}
names = glob["obs"].index
assert len(names) == 500 and list(glob["obs"].columns) == ["cell_type", "batch", "split"]
first = 0
for mod in order:
    m = read_elem(f["mod"][mod])
    h = anndata.read_h5ad(f"{tmp}/multi/{mod}.h5ad")
    same(m, h, f"h5mu vs h5ad, {mod}")
    omap = glob["obsmap"][mod]
    assert omap.dtype == np.uint32 and len(omap) == 500
    rows = np.flatnonzero(omap)
    assert np.array_equal(omap[rows], np.arange(1, m.n_obs + 1))
    assert (names[rows] == m.obs_names).all()
    for c in ("cell_type", "batch", "split"):
        assert (glob["obs"][c].values[rows] == m.obs[c].values).all()
    vmap = glob["varmap"][mod]
    assert np.array_equal(np.flatnonzero(vmap), np.arange(first, first + m.n_vars))
    assert (glob["var"].index[first:first + m.n_vars] == m.var_names).all()
    first += m.n_vars
assert first == len(glob["var"])
inall = sum((glob["obsmap"][k] > 0).astype(int) for k in order)
assert set(np.unique(inall)) <= {1, 3}
print("ok: .h5mu layout; every modality equals its .h5ad")
try:
    import mudata
    md = mudata.read_h5mu(path)
    assert md.n_obs == 500
    print("ok: mudata.read_h5mu")
except ImportError:
    print("note: mudata is not installed; the .h5mu was checked element by element")

# 3. the writer test's file against the formula it was written from
if writer_dir:
    a = anndata.read_h5ad(f"{writer_dir}/roundtrip.h5ad")
    n, g = 37, 11
    assert a.shape == (n, g)
    assert list(a.obs_names) == [f"cell-{i}" for i in range(n)]
    assert list(a.var_names) == [f"gene{j}" for j in range(g)]
    X = np.zeros((n, g), np.float32)
    for i in range(n):
        for j in range(g):
            if i % 9 != 4 and (7 * i + 3 * j) % 5 == 0:
                X[i, j] = np.float32(i) + np.float32(j) / np.float32(16)
    assert sp.isspmatrix_csr(a.X) and np.array_equal(a.X.toarray(), X)
    Z = np.array([[i * 10 + k + 0.25 for k in range(3)] for i in range(n)], np.float32)
    assert np.array_equal(a.obsm["X_test"], Z)
    ct = a.obs["cell_type"]
    assert list(ct.cat.categories) == ["B cell", "T cell", "Mono"] and ct.cat.ordered
    assert list(ct.cat.codes) == [-1 if i == 5 else i % 3 for i in range(n)]
    score = a.obs["score"].values
    assert np.isnan(score[2]) and all(score[i] == 0.5 * i for i in range(n) if i != 2)
    assert a.obs["flag"].dtype == bool and list(a.obs["flag"]) == [bool(i % 2) for i in range(n)]
    maybe = a.obs["maybe"]
    assert str(maybe.dtype) == "boolean"
    for i in range(n):
        assert (maybe.isna()[i]) == (i % 4 == 3)
        if i % 4 != 3:
            assert bool(maybe[i]) == (i % 3 == 0)
    assert list(a.obs["note"]) == [f"note {i}" for i in range(n)]
    assert a.uns["clue"] == "written by test_h5ad_write"
    e = anndata.read_h5ad(f"{writer_dir}/empty.h5ad")
    assert e.shape == (0, 3) and e.obsm["X_clue"].shape == (0, 4)
    print("ok: writer test file: X, obsm and every obs column kind round-trip exactly")
EOF
rc=$?
[ $rc -eq 0 ] || fail "Python checks (see above)"
echo "interop: all checks passed"
