#!/usr/bin/env bash
# test_eval_cli.sh — `clue eval` and `clue match` end to end on small .h5ad files
# written by anndata: every figure against a numpy float64 reference of the same
# definitions, the prediction's format, equal results on 1 and 3 ranks, and bad
# inputs (clear one-line errors, non-zero exit, outputs left alone).
set -u
PY=/usr/bin/python3
if ! $PY -c 'import anndata, h5py, numpy, pandas, scipy' 2>/dev/null; then
  echo "SKIP: $PY lacks anndata/h5py/numpy/pandas/scipy (Debian python3-anndata)"
  exit 77
fi
: "${CLUE_BIN:?}" "${CLUE_MPIEXEC:=mpiexec --oversubscribe}"
T=${CLUE_TEST_TMP:-/tmp/clue-test-eval-cli-$$}
rm -rf "$T" && mkdir -p "$T" || exit 1
cd "$T" || exit 1
export OPENBLAS_NUM_THREADS=1
fails=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
clue() { $CLUE_MPIEXEC -n "$NP" "$CLUE_BIN" "$@"; }

cat > ref.py <<'EOF'
"""Fixtures and float64 references for test_eval_cli.sh (the definitions of
include/clue/metrics.h and include/clue/matching.h, written independently)."""
import json, sys, warnings
import numpy as np, pandas as pd, scipy.sparse as sp
warnings.simplefilter("ignore")
import anndata as ad

def gen():
    rng = np.random.default_rng(7)
    n, d = 60, 8
    z = rng.normal(size=(n, d))
    names = np.array([f"cell{i:02d}" for i in range(n)])
    split = np.where(np.arange(n) % 3 == 0, "train", "test")
    batch = np.where(np.arange(n) % 2 == 0, "b0", "b1")
    xa = (z + 0.8 * rng.normal(size=(n, d))).astype(np.float32)
    xb = (z + 0.8 * rng.normal(size=(n, d))).astype(np.float32)
    xb[5] = xb[4]  # an exact tie among b's cells
    def frame(idx, extra):
        nm = list(names[idx]) + [f"{extra}{k}" for k in range(4)]
        sl = list(split[idx]) + ["test"] * 4
        bt = list(batch[idx]) + ["b1", "b0", "b1", "b0"]
        return pd.DataFrame({"split": pd.Categorical(sl), "batch": pd.Categorical(bt)},
                            index=nm)
    # a: cells in order plus 4 of its own; b: shuffled plus 4 of its own
    ea = np.vstack([xa, rng.normal(size=(4, d)).astype(np.float32)])
    a = ad.AnnData(obs=frame(np.arange(n), "only_a"))
    a.obsm["X_clue"] = ea
    a.obsm["X_other"] = np.zeros((n + 4, 5), np.float32)
    a.obsm["X_pca"] = ea[:, :3].copy()
    a.write_h5ad("a.h5ad")
    perm = rng.permutation(n)
    eb = np.vstack([xb[perm], rng.normal(size=(4, d)).astype(np.float32)])
    b = ad.AnnData(obs=frame(perm, "only_b"))
    b.obsm["X_clue"] = eb
    b.obsm["X_other"] = np.zeros((n + 4, 6), np.float32)
    b.write_h5ad("b.h5ad")
    # no column 'split' here, and no shared names
    c = ad.AnnData(obs=pd.DataFrame(index=[f"other{i}" for i in range(10)]))
    c.obsm["X_clue"] = rng.normal(size=(10, d)).astype(np.float32)
    c.write_h5ad("c.h5ad")
    # no X_clue
    e = ad.AnnData(obs=pd.DataFrame(index=list(names[:10])))
    e.obsm["X_pca"] = rng.normal(size=(10, 3)).astype(np.float32)
    e.write_h5ad("noclue.h5ad")
    # no batch column
    g = ad.AnnData(obs=pd.DataFrame(index=list(names[:20])))
    g.obsm["X_clue"] = rng.normal(size=(20, d)).astype(np.float32)
    g.write_h5ad("nobatch.h5ad")
    # a NaN
    f = ad.AnnData(obs=pd.DataFrame(index=list(names[:10])))
    v = rng.normal(size=(10, d)).astype(np.float32)
    v[3, 2] = np.nan
    f.obsm["X_clue"] = v
    f.write_h5ad("nan.h5ad")
    # a and b as the modalities of a MuData file (written with h5py: the layout
    # of mudata's files, which needs no mudata package)
    import h5py
    with h5py.File("m.h5mu", "w", userblock_size=512) as m:
        m.attrs["encoding-type"] = "MuData"
        m.attrs["encoding-version"] = "0.1.0"
        for name, src in (("rna", "a.h5ad"), ("adt", "b.h5ad")):
            with h5py.File(src, "r") as s:
                g = m.create_group(f"mod/{name}")
                for k, v in s.attrs.items():
                    g.attrs[k] = v
                for k in s:
                    s.copy(k, g)
        with h5py.File("c.h5ad", "r") as s:  # a global obs
            s.copy("obs", m)
    with open("m.h5mu", "r+b") as fh:
        fh.write(b"MuData (format-version=0.1.0;creator=clue-test;creator-version=0)")

def load(path, where, key="X_clue"):
    a = ad.read_h5ad(path)
    keep = np.ones(a.n_obs, bool)
    if where:
        col, val = where.split("=")
        if col in a.obs:
            keep = a.obs[col].astype(str).values == val
    return a[keep].copy(), key

def pairs(A, B):
    pos = {s: i for i, s in enumerate(B.obs_names)}
    ia = [i for i, s in enumerate(A.obs_names) if s in pos]
    return np.array(ia), np.array([pos[A.obs_names[i]] for i in ia])

def d2(x, y):
    x = x.astype(np.float64); y = y.astype(np.float64)
    return ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)

def normalize(x):
    x64 = x.astype(np.float64)
    nrm = np.sqrt((x64 ** 2).sum(1, keepdims=True))
    inv = np.where(nrm > 0, 1.0 / np.where(nrm > 0, nrm, 1), 0.0)
    return (x64 * inv).astype(np.float32)

def knn(D, k, self_first=False, mask=None):
    n, m = D.shape
    out = np.full((n, k), -1)
    for i in range(n):
        ok = np.ones(m, bool) if mask is None else mask[i].copy()
        if self_first:
            ok[i] = False
        cand = np.nonzero(ok)[0]
        order = cand[np.lexsort((cand, D[i, cand]))]
        lst = ([i] if self_first else []) + list(order[: k - (1 if self_first else 0)])
        out[i, : len(lst)] = lst
    return out

def snn(x, y, k, gx=None, gy=None):
    xn, yn = normalize(x), normalize(y)
    mxy = None if gx is None else gx[:, None] == gy[None, :]
    mxx = None if gx is None else gx[:, None] == gx[None, :]
    myy = None if gx is None else gy[:, None] == gy[None, :]
    x2y = knn(d2(xn, yn), k, mask=mxy)
    y2x = knn(d2(yn, xn), k, mask=None if mxy is None else mxy.T)
    x2x = knn(d2(xn, xn), k, True, mxx)
    y2y = knn(d2(yn, yn), k, True, myy)
    P = np.zeros((len(x), len(y)))
    for i in range(len(x)):
        for j in range(len(y)):
            s = len(set(x2y[i]) & set(y2y[j]) - {-1}) + len(set(x2x[i]) & set(y2x[j]) - {-1})
            P[i, j] = s / (4 * k - s) if s else 0
        if P[i].sum() == 0:  # no cell of its batch: nearest cell of any batch
            P[i, np.lexsort((np.arange(len(y)), d2(xn[i:i+1], yn)[0]))[0]] = 1
        P[i] /= P[i].sum()
    return P.astype(np.float32)

def closer(D):
    t = np.diag(D)
    return (D < t[:, None]).sum(1), (D < t[None, :]).sum(0)

def score(P, rows, cols):
    P = np.maximum(np.asarray(P, dtype=np.float64), 0)
    s = P.sum(1)
    v = np.where(s[rows] > 0, P[rows, cols] / np.where(s[rows] > 0, s[rows], 1), 0)
    return v.mean()

def eval_ref(a, b, where, k, batch):
    A, key = load(a, where); B, _ = load(b, where)
    ia, ib = pairs(A, B)
    xa, xb = A.obsm[key][ia], B.obsm[key][ib]
    D = d2(xa, xb)
    r, c = closer(D)
    n = len(ia)
    gx = gy = None
    if batch:
        gx = A.obs[batch].astype(str).values[ia]; gy = B.obs[batch].astype(str).values[ib]
    Pab = snn(xa, xb, k, gx, gy)
    Pba = snn(xb, xa, k, gy, gx)
    ref = dict(n=n, foscttm_ab=r.sum() / n**2, foscttm_ba=c.sum() / n**2,
               top1_ab=(r < 1).mean(), top1_ba=(c < 1).mean(),
               top5_ab=(r < 5).mean(), top5_ba=(c < 5).mean(),
               match_ab=score(Pab, np.arange(n), np.arange(n)),
               match_ba=score(Pba, np.arange(n), np.arange(n)))
    ref["foscttm"] = (ref["foscttm_ab"] + ref["foscttm_ba"]) / 2
    ref["match"] = (ref["match_ab"] + ref["match_ba"]) / 2
    return ref

def check_eval(js, a, b, where, k, batch):
    got = json.load(open(js))
    ref = eval_ref(a, b, where or None, int(k), batch or None)
    keys = ["n", "foscttm", "foscttm_ab", "foscttm_ba", "match", "match_ab", "match_ba",
            "top1_ab", "top1_ba", "top5_ab", "top5_ba"]
    bad = [x for x in keys if x not in got]
    if bad:
        sys.exit(f"missing JSON keys {bad}")
    for x in keys:
        tol = 1e-6 if x.startswith("match") else 1e-12
        if abs(got[x] - ref[x]) > tol:
            sys.exit(f"{x}: clue {got[x]!r} vs reference {ref[x]!r}")
    print(f"n={got['n']} foscttm={got['foscttm']:.4f} match={got['match']:.4f}")

def check_match(pred, a, b, where, k, batch):
    A, key = load(a, where or None); B, _ = load(b, where or None)
    P = ad.read_h5ad(pred)
    X = P.X
    if not sp.isspmatrix_csr(X): sys.exit("X is not a csr_matrix")
    if P.shape != (A.n_obs, B.n_obs): sys.exit(f"shape {P.shape}")
    if list(P.obs_names) != list(A.obs_names) or list(P.var_names) != list(B.obs_names):
        sys.exit("obs/var names are not the two sides' cell names")
    if X.dtype != np.float32 or (X.data < 0).any(): sys.exit("values not float32 >= 0")
    if np.diff(X.indptr).max() > 1000: sys.exit("more than 1000 nonzeros in a row")
    if np.abs(np.asarray(X.sum(1)).ravel() - 1).max() > 1e-5: sys.exit("rows do not sum to 1")
    gx = gy = None
    if batch:
        gx = A.obs[batch].astype(str).values; gy = B.obs[batch].astype(str).values
    R = snn(A.obsm[key], B.obsm[key], int(k), gx, gy)
    diff = np.abs(X.toarray() - R).max()
    if diff > 1e-6: sys.exit(f"prediction differs from the reference by {diff}")
    print(f"prediction {P.shape}, nnz {X.nnz}, max diff {diff:.2g}")

def check_pred_score(js, pred, a, b, where):
    got = json.load(open(js))
    A, _ = load(a, where or None); B, _ = load(b, where or None)
    ia, ib = pairs(A, B)
    P = ad.read_h5ad(pred)
    rows = [P.obs_names.get_loc(s) for s in A.obs_names[ia]]
    cols = [P.var_names.get_loc(s) for s in A.obs_names[ia]]
    want = score(P.X.toarray(), np.array(rows), np.array(cols))
    if abs(got["match_ab"] - want) > 1e-9 or got["match_ba"] is not None:
        sys.exit(f"match_ab {got['match_ab']} vs {want}, match_ba {got['match_ba']}")
    print(f"given prediction scored {want:.6f}")

def check_top(tsv, a, b, where, K, raw):
    A, key = load(a, where or None); B, _ = load(b, where or None)
    t = pd.read_csv(tsv, sep="\t", keep_default_na=False)
    if list(t.columns) != ["query", "rank", "reference", "distance"]: sys.exit("columns")
    xa, xb = A.obsm[key], B.obsm[key]
    if raw != "1":
        xa, xb = normalize(xa), normalize(xb)
    D = d2(xa, xb)
    nn = knn(D, int(K))
    want = [(A.obs_names[i], r + 1, B.obs_names[nn[i, r]], np.sqrt(D[i, nn[i, r]]))
            for i in range(len(xa)) for r in range(int(K))]
    if len(t) != len(want): sys.exit(f"{len(t)} lines, expected {len(want)}")
    for row, w in zip(t.itertuples(index=False), want):
        if (row.query, row.rank, row.reference) != w[:3] or abs(row.distance - w[3]) > 1e-6:
            sys.exit(f"line {row} vs {w}")
    print(f"top-{K}: {len(t)} lines as expected")

def same_json(x, y):
    a, b = json.load(open(x)), json.load(open(y))
    diff = [k for k in a if k not in ("a", "b", "a_file", "b_file", "files") and a[k] != b[k]]
    if diff:
        sys.exit(f"differ in {diff}")
    print("identical figures")

def run_checks(listing):
    """Each line of `listing`: NAME<TAB>function<TAB>args...; prints ok/FAIL."""
    failed = 0
    for line in open(listing).read().splitlines():
        name, fn, *args = line.split("\t")
        try:
            globals()[fn](*args)
            print(f"ok   {name}")
        except SystemExit as e:
            print(f"FAIL {name}: {e}")
            failed += 1
        except Exception as e:  # a crash of the check is a failure too
            print(f"FAIL {name}: {type(e).__name__}: {e}")
            failed += 1
    sys.exit(1 if failed else 0)

if __name__ == "__main__":
    globals()[sys.argv[1]](*sys.argv[2:])
EOF

$PY ref.py gen || { echo "FAIL could not write the fixtures"; exit 1; }

# Every clue run below whose output has to be compared with the reference adds
# a line to checks.tsv; one python process then runs all the comparisons.
: > checks.tsv
check() { local IFS=$'\t'; echo "$*" >> checks.tsv; }
run() { # run NAME command...: the command must succeed
  local name=$1
  shift
  if "$@" > "run_$name.out" 2>&1; then ok "$name ran"; else bad "$name"; cat "run_$name.out"; fi
}

# ---- eval: figures against the float64 reference, on 1 and 3 ranks ------------
for NP in 1 3; do
  run eval_np$NP clue eval a.h5ad b.h5ad --where split=test --json e$NP.json
  check "eval np=$NP vs reference" check_eval e$NP.json a.h5ad b.h5ad split=test 1 ""
done
check "eval identical on 1 and 3 ranks" same_json e1.json e3.json
run eval_h5mu clue eval m.h5mu:rna m.h5mu:adt --where split=test --json em.json
check "eval of FILE.h5mu:MOD inputs" same_json e1.json em.json
grep -q "FOSCTTM" run_eval_np1.out && grep -q "top-5" run_eval_np1.out &&
  ok "eval prints a table" || bad "eval table"
NP=2
run eval_batch clue eval a.h5ad b.h5ad --k 3 --batch-key batch --json eb.json
check "eval --k 3 --batch-key, all cells, 2 ranks" check_eval eb.json a.h5ad b.h5ad "" 3 batch

# ---- match: the prediction file and the top-K table ----------------------------
for NP in 1 3; do
  run match_np$NP clue match a.h5ad b.h5ad --where split=test --out p$NP.h5ad --top 3 \
    --top-out t$NP.tsv
  check "match np=$NP prediction" check_match p$NP.h5ad a.h5ad b.h5ad split=test 1 ""
  check "match np=$NP top-3" check_top t$NP.tsv a.h5ad b.h5ad split=test 3 0
done
cmp -s t1.tsv t3.tsv && ok "top-3 table identical on 1 and 3 ranks" || bad "top tables differ"
NP=2
run match_batch clue match a.h5ad b.h5ad --k 2 --batch-key batch --out pb.h5ad
check "match --k 2 --batch-key" check_match pb.h5ad a.h5ad b.h5ad "" 2 batch
run match_raw clue match a.h5ad b.h5ad --top 2 --top-raw --top-out tr.tsv
check "match --top-raw" check_top tr.tsv a.h5ad b.h5ad "" 2 1

# ---- eval --prediction scores a given matrix ------------------------------------
run eval_pred clue eval a.h5ad b.h5ad --where split=test --prediction p1.h5ad --json ep.json
check "eval --prediction" check_pred_score ep.json p1.h5ad a.h5ad b.h5ad split=test

$PY ref.py run_checks checks.tsv || fails=$((fails + 1))

# ---- bad inputs -------------------------------------------------------------------
# expect_error NAME PATTERN command...: non-zero exit and PATTERN in one stderr line
expect_error() {
  local name=$1 pat=$2
  shift 2
  "$@" > err.out 2> err.txt
  local st=$?
  if [ $st -ne 0 ] && grep -q -- "$pat" err.txt && [ "$(grep -c 'error:' err.txt)" -eq 1 ]; then
    ok "$name: exit $st, $(grep 'error:' err.txt | head -1 | cut -c1-150)"
  else
    bad "$name (exit $st)"; cat err.txt
  fi
}
cp p1.h5ad keep.h5ad
expect_error "missing key" "no obsm/X_nope (obsm holds: X_clue, X_other, X_pca)" \
  clue eval a.h5ad b.h5ad --key X_nope
expect_error "no X_clue at all" "noclue.h5ad has no obsm/X_clue" clue eval a.h5ad noclue.h5ad
expect_error "no shared cells" "share no cell names" clue eval a.h5ad c.h5ad
expect_error "mismatched dims" "obsm/X_other has 5 columns but b.h5ad's has 6" \
  clue eval a.h5ad b.h5ad --key X_other
expect_error "mismatched dims (match)" "has 5 columns" \
  clue match a.h5ad b.h5ad --key X_other --out keep.h5ad
expect_error "NaN embedding" "NaN" clue eval a.h5ad nan.h5ad
expect_error "where column missing" "neither a.h5ad nor c.h5ad has an obs column 'tissue'" \
  clue eval a.h5ad c.h5ad --where tissue=x
expect_error "where value selects nothing" "no cell" clue match a.h5ad b.h5ad --where split=val \
  --out keep.h5ad
expect_error "bad --where" "expected COLUMN=VALUE" clue eval a.h5ad b.h5ad --where split
expect_error "missing file" "missing.h5ad" clue eval a.h5ad missing.h5ad
expect_error "h5mu without a modality" "name the modality, e.g. m.h5mu:rna" \
  clue eval m.h5mu a.h5ad
expect_error "batch column missing" "batch-key" clue eval a.h5ad nobatch.h5ad --batch-key batch
expect_error "output is an input" "a.h5ad" clue match a.h5ad b.h5ad --out a.h5ad
expect_error "top output is an input" "refusing" clue match a.h5ad b.h5ad --top 2 --top-out b.h5ad
expect_error "json output is an input" "refusing" clue eval a.h5ad b.h5ad --json a.h5ad
expect_error "prediction without the cells" "not among" \
  clue eval a.h5ad b.h5ad --prediction p1.h5ad --where split=train
expect_error "bad --k" "--k 0" clue eval a.h5ad b.h5ad --k 0
expect_error "one file only" "expected two" clue match a.h5ad --out x.h5ad
cmp -s p1.h5ad keep.h5ad && ok "failed runs left the existing output alone" || bad "output changed"
ls *.tmp.* > /dev/null 2>&1 && bad "temporary files left behind" || ok "no temporary files left"
$PY -c "import anndata; anndata.read_h5ad('a.h5ad'); anndata.read_h5ad('b.h5ad')" &&
  ok "inputs still readable" || bad "inputs damaged"

if [ $fails -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all checks passed"
