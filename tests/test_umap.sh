#!/usr/bin/env bash
# CLUE_TEST_SLOW CLUE_TEST_TIMEOUT: 600 (ctest starts it early, beside the short tests)
# test_umap.sh — `clue umap` against an independent implementation, umap-learn
# (Debian python3-umap-learn), on a real embedding: the 30 leading principal
# components of the shared bmmc_cite_600 RNA counts (log-normalised, scaled),
# computed here with numpy:
#  1. the layout's trustworthiness (sklearn.manifold.trustworthiness, 15
#     neighbours) is within 0.02 of umap-learn's on the same points, or better;
#     the printed curve parameters a, b equal scipy's curve_fit of the same
#     curve (1e-4), for the defaults and for --min-dist 0.5 --spread 1.5;
#  2. the same output bit for bit on 1, 2 and 3 ranks, and for the same cells
#     split over two input files (one joint layout, a folder of two outputs);
#     obs, the embedding and uns provenance are carried over;
#  3. bad input: a missing obsm key, a non-finite value, fewer cells than
#     --neighbors + 1, an unknown option, an output that is an input: one line,
#     exit 1 (data) or 2 (usage), and no output written.
set -u
PY=/usr/bin/python3
if ! "$PY" -c 'import anndata, sklearn, scipy' 2>/dev/null; then
  echo "SKIP: $PY lacks anndata, sklearn or scipy (Debian python3-anndata python3-sklearn)"; exit 77
fi
if ! "$PY" -c 'import umap' 2>/dev/null; then
  echo "SKIP: $PY cannot import umap (Debian package python3-umap-learn / umap-learn)"; exit 77
fi
data="${CLUE_SHARED_DATA:-$(dirname "$0")/../../shared/data}/bmmc_cite_600"
if [ ! -f "$data/rna.h5ad" ]; then echo "SKIP: shared data set bmmc_cite_600 not found ($data)"; exit 77; fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-umap}"; rm -rf "$tmp"; mkdir -p "$tmp"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
clue="${CLUE_BIN:?CLUE_BIN not set}"
fail() { echo "FAIL: $*"; exit 1; }
export NUMBA_CACHE_DIR="$tmp/numba"

"$PY" - "$data" "$tmp" <<'PY' || fail "fixtures"
import sys, numpy as np, scipy.sparse as sp, anndata as ad
data, tmp = sys.argv[1:3]
a = ad.read_h5ad(f"{data}/rna.h5ad")
X = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X, dtype=np.float64)
X = np.log1p(X / np.maximum(X.sum(1, keepdims=True), 1) * 1e4)
X = (X - X.mean(0)) / (X.std(0) + 1e-8)
U, S, _ = np.linalg.svd(X - X.mean(0), full_matrices=False)
b = ad.AnnData(obs=a.obs.copy())
b.obsm["X_clue"] = (U[:, :30] * S[:30]).astype(np.float32)
b.write_h5ad(f"{tmp}/pca.h5ad")
b[:250].copy().write_h5ad(f"{tmp}/part1.h5ad")
b[250:].copy().write_h5ad(f"{tmp}/part2.h5ad")
bad = b.copy(); bad.obsm["X_clue"][17, 3] = np.nan; bad.write_h5ad(f"{tmp}/nan.h5ad")
b[:40].copy().write_h5ad(f"{tmp}/small.h5ad")
PY

# ---- 1 and 2: layouts on 1, 2, 3 ranks and from two files ------------------------
"$clue" umap "$tmp/pca.h5ad" --out "$tmp/np1.h5ad" > "$tmp/np1.log" 2>&1 || { cat "$tmp/np1.log"; fail "clue umap (1 rank)"; }
cat "$tmp/np1.log"
for np in 2 3; do
  $mpi -np $np "$clue" umap "$tmp/pca.h5ad" --out "$tmp/np$np.h5ad" > "$tmp/np$np.log" 2>&1 \
    || { cat "$tmp/np$np.log"; fail "clue umap ($np ranks)"; }
done
$mpi -np 2 "$clue" umap "$tmp/part1.h5ad" "$tmp/part2.h5ad" --out "$tmp/parts" > "$tmp/parts.log" 2>&1 \
  || { cat "$tmp/parts.log"; fail "clue umap (two files)"; }
"$clue" umap "$tmp/pca.h5ad" --out "$tmp/ab.h5ad" --min-dist 0.5 --spread 1.5 --epochs 20 > "$tmp/ab.log" 2>&1 \
  || { cat "$tmp/ab.log"; fail "clue umap --min-dist 0.5 --spread 1.5"; }

"$PY" - "$tmp" <<'PY' || fail "comparison with umap-learn"
import sys, re, warnings, numpy as np, anndata as ad
from scipy.optimize import curve_fit
from sklearn.manifold import trustworthiness
warnings.filterwarnings("ignore")
import umap
tmp = sys.argv[1]
inp = ad.read_h5ad(f"{tmp}/pca.h5ad")
X = inp.obsm["X_clue"].astype(np.float64)
outs = {np: ad.read_h5ad(f"{tmp}/np{np}.h5ad") for np in (1, 2, 3)}
Y = outs[1].obsm["X_umap"]
assert Y.shape == (X.shape[0], 2) and Y.dtype == np.float32, Y.shape
for np_ in (2, 3):
    assert np.array_equal(outs[np_].obsm["X_umap"], Y), f"{np_} ranks differ from 1"
parts = [ad.read_h5ad(f"{tmp}/parts/part{i}.h5ad") for i in (1, 2)]
assert np.array_equal(np.vstack([p.obsm["X_umap"] for p in parts]), Y), "two files differ"
o = outs[1]
assert list(o.obs_names) == list(inp.obs_names)
assert (o.obs["cell_type"].astype(str).values == inp.obs["cell_type"].astype(str).values).all()
assert np.array_equal(o.obsm["X_clue"], inp.obsm["X_clue"])
assert "clue umap" in str(o.uns["clue_command"]) and "a=" in str(o.uns["clue_umap"])
assert list(parts[1].obs_names) == list(inp.obs_names[250:])

def ab_ref(spread, min_dist):
    f = lambda x, a, b: 1.0 / (1.0 + a * x ** (2 * b))
    xv = np.linspace(0, spread * 3, 300)
    yv = np.where(xv < min_dist, 1.0, np.exp(-(xv - min_dist) / spread))
    return curve_fit(f, xv, yv)[0]
for log, spread, md in (("np1", 1.0, 0.1), ("ab", 1.5, 0.5)):
    m = re.search(r"a = ([0-9.]+), b = ([0-9.]+)", open(f"{tmp}/{log}.log").read())
    a, b = float(m.group(1)), float(m.group(2))
    ra, rb = ab_ref(spread, md)
    print(f"curve spread {spread} min_dist {md}: clue a={a:.6f} b={b:.6f}, scipy a={ra:.6f} b={rb:.6f}")
    assert abs(a - ra) < 1e-4 * max(1, ra) and abs(b - rb) < 1e-4, (a, b, ra, rb)

R = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0).fit_transform(X)
tc, tu = trustworthiness(X, Y, n_neighbors=15), trustworthiness(X, R, n_neighbors=15)
print(f"trustworthiness (15 neighbours), 600 cells: clue {tc:.4f}, umap-learn {tu:.4f}")
assert tc >= tu - 0.02, (tc, tu)
PY
[ $? -eq 0 ] || exit 1

# ---- 3: bad input ----------------------------------------------------------------
expect() { # want-status name args...
  local want=$1 name=$2; shift 2
  "$clue" umap "$@" > "$tmp/$name.out" 2> "$tmp/$name.err"
  local st=$?
  [ $st -eq "$want" ] || { cat "$tmp/$name.err"; fail "$name: exit $st, expected $want"; }
  grep -q "^clue umap: error: " "$tmp/$name.err" || fail "$name: no error line"
  head -1 "$tmp/$name.err"
}
expect 1 nokey "$tmp/pca.h5ad" --key X_missing --out "$tmp/bad1.h5ad"
grep -q "pca.h5ad has no obsm/X_missing" "$tmp/nokey.err" || fail "nokey: message does not name the file"
expect 1 nan "$tmp/nan.h5ad" --out "$tmp/bad2.h5ad"
grep -q "nan.h5ad" "$tmp/nan.err" || fail "nan: message does not name the file"
expect 1 small "$tmp/small.h5ad" --neighbors 50 --out "$tmp/bad3.h5ad"
grep -q "small.h5ad: 40 cells" "$tmp/small.err" || fail "small: message"
expect 2 option "$tmp/pca.h5ad" --out "$tmp/bad4.h5ad" --no-such-option
expect 2 mindist "$tmp/pca.h5ad" --out "$tmp/bad5.h5ad" --min-dist -1
expect 2 noout "$tmp/pca.h5ad"
expect 1 overwrite "$tmp/pca.h5ad" --epochs 5 --out "$tmp/pca.h5ad"
for i in 1 2 3 4 5; do [ ! -e "$tmp/bad$i.h5ad" ] || fail "bad$i.h5ad was written"; done
"$PY" -c "import anndata as ad, sys; a = ad.read_h5ad(sys.argv[1]); assert 'X_umap' not in a.obsm" \
  "$tmp/pca.h5ad" || fail "the input was changed"
echo "PASS"
