#!/usr/bin/env bash
# test_transfer.sh — `clue transfer` against an independent implementation:
# scikit-learn's KNeighborsClassifier (weights="distance") on the same
# L2-normalised embeddings, for two reference files (some cells without a
# label) and two query files, on 1, 2 and 3 ranks:
#  1. <label>_pred equals scikit-learn's prediction and <label>_conf its largest
#     class probability (1e-9), the same on every number of ranks; the query's
#     obs and embedding are kept; the printed accuracy and macro-F1 equal
#     accuracy_score and f1_score(average="macro");
#  2. --raw (distances on the embedding as given) and --where likewise;
#  3. bad input: a reference without the label column, a query without the
#     embedding, --k 0, an output that is an input: one line, exit 1 or 2, and
#     no output written.
set -u
PY=/usr/bin/python3
if ! "$PY" -c 'import anndata, sklearn' 2>/dev/null; then
  echo "SKIP: $PY lacks anndata or sklearn (Debian python3-anndata python3-sklearn)"; exit 77
fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-transfer}"; rm -rf "$tmp"; mkdir -p "$tmp"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
fail() { echo "FAIL: $*"; exit 1; }

"$PY" - "$tmp" <<'PY' || fail "fixtures"
import sys, numpy as np, pandas as pd, anndata as ad
tmp = sys.argv[1]
rng = np.random.default_rng(7)
centres = rng.normal(size=(6, 12)) * 2
def cells(n, prefix, labelled):
    t = rng.integers(0, 6, n)
    x = centres[t] + rng.normal(size=(n, 12))
    lab = np.array([f"type{i}" for i in t], dtype=object)
    if not labelled:
        lab[rng.random(n) < 0.15] = None
    obs = pd.DataFrame({"cell_type": pd.Categorical(lab), "split": pd.Categorical(
        np.where(rng.random(n) < 0.5, "train", "test")), "score": rng.random(n)},
        index=[f"{prefix}{i:04d}" for i in range(n)])
    a = ad.AnnData(obs=obs)
    a.obsm["X_clue"] = x.astype(np.float32)
    return a
cells(300, "r1_", False).write_h5ad(f"{tmp}/ref1.h5ad")
cells(200, "r2_", False).write_h5ad(f"{tmp}/ref2.h5ad")
q1 = cells(250, "q1_", True)
q1.obs["cell_type"] = q1.obs["cell_type"].cat.add_categories(["type9"])
q1.obs.iloc[0, 0] = "type9"            # a label no reference has
q1.write_h5ad(f"{tmp}/q1.h5ad")
q2 = cells(150, "q2_", True)
del q2.obs["cell_type"]                # a query without the label
q2.write_h5ad(f"{tmp}/q2.h5ad")
noemb = cells(20, "n_", True)
del noemb.obsm["X_clue"]
noemb.write_h5ad(f"{tmp}/noemb.h5ad")
PY

check() { # out-dir raw(0/1) where(or "") log
  "$PY" - "$tmp" "$1" "$2" "$3" "$4" <<'PY'
import sys, re, numpy as np, anndata as ad
from sklearn.neighbors import KNeighborsClassifier
from sklearn.metrics import accuracy_score, f1_score
tmp, out, raw, where, log = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4], sys.argv[5]
def sel(a):
    if where:
        col, val = where.split("=")
        a = a[a.obs[col].astype(str) == val]
    return a
refs = [sel(ad.read_h5ad(f"{tmp}/ref{i}.h5ad")) for i in (1, 2)]
x = np.vstack([r.obsm["X_clue"] for r in refs]).astype(np.float64)
y = np.concatenate([r.obs["cell_type"].astype(object).values for r in refs])
keep = np.array([v is not None and v == v for v in y])
x, y = x[keep], y[keep].astype(str)
# clue compares float32 rows, normalised in float64 and rounded to float32
norm = lambda v: v if raw else (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
clf = KNeighborsClassifier(n_neighbors=15, weights="distance", algorithm="brute").fit(norm(x), y)
text = open(log).read()
for q in ("q1", "q2"):
    inp = sel(ad.read_h5ad(f"{tmp}/{q}.h5ad"))
    o = ad.read_h5ad(f"{out}/{q}.h5ad")
    assert list(o.obs_names) == list(inp.obs_names), q
    assert np.array_equal(o.obsm["X_clue"], inp.obsm["X_clue"]), q
    assert np.allclose(o.obs["score"], inp.obs["score"]), q
    p = clf.predict(norm(inp.obsm["X_clue"].astype(np.float64)))
    prob = clf.predict_proba(norm(inp.obsm["X_clue"].astype(np.float64))).max(1)
    got = o.obs["cell_type_pred"].astype(str).values
    assert (got == p).all(), (q, np.sum(got != p))
    assert np.abs(o.obs["cell_type_conf"].values - prob).max() < 1e-9, q
    if q == "q1":
        truth = inp.obs["cell_type"].astype(str).values
        acc, f1 = accuracy_score(truth, p), f1_score(truth, p, average="macro")
        m = re.search(r"q1 cells.*\n.*accuracy ([0-9.]+), macro-F1 ([0-9.]+)", text)
        assert m, text
        assert abs(float(m.group(1)) - acc) < 1e-4 and abs(float(m.group(2)) - f1) < 1e-4, (m.groups(), acc, f1)
print("ok")
PY
}

run() { # np out-dir [extra...]
  local np="$1" out="$2"; shift 2
  $mpi -n "$np" "$CLUE_BIN" transfer "$tmp/ref1.h5ad" "$tmp/ref2.h5ad" --query "$tmp/q1.h5ad" \
    --query "$tmp/q2.h5ad" --label cell_type --out "$out" "$@" > "$out.log" 2>&1
}
for np in 1 2 3; do
  run "$np" "$tmp/out$np" || { cat "$tmp/out$np.log"; fail "$np ranks"; }
  check "$tmp/out$np" 0 "" "$tmp/out$np.log" >/dev/null || fail "$np ranks: differs from scikit-learn"
done
grep -q "of their labels are in no reference" "$tmp/out1.log" || fail "the unseen query label is not reported"
echo "ok: transfer on 1, 2, 3 ranks equals scikit-learn's distance-weighted kNN"
run 2 "$tmp/raw" --raw || fail "--raw"
check "$tmp/raw" 1 "" "$tmp/raw.log" >/dev/null || fail "--raw differs from scikit-learn"
run 2 "$tmp/where" --where split=train || fail "--where"
check "$tmp/where" 0 "split=train" "$tmp/where.log" >/dev/null || fail "--where differs from scikit-learn"
echo "ok: --raw and --where"

expect() { # status text cmd...
  local want="$1" text="$2"; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  [ "$rc" -eq "$want" ] || fail "$*: exit $rc, expected $want ($out)"
  echo "$out" | grep -q -- "$text" || fail "$*: message lacks '$text': $out"
  [ "$(echo "$out" | grep -c 'error')" -le 1 ] || fail "$*: more than one error line: $out"
}
expect 1 "q2.h5ad: obs has no column 'cell_type' (--label)" \
  "$CLUE_BIN" transfer "$tmp/q2.h5ad" "$tmp/q1.h5ad" --label cell_type --out "$tmp/bad1.h5ad"
expect 1 "noemb.h5ad" "$CLUE_BIN" transfer "$tmp/ref1.h5ad" "$tmp/noemb.h5ad" --label cell_type \
  --out "$tmp/bad2.h5ad"
expect 2 "--k 0" "$CLUE_BIN" transfer "$tmp/ref1.h5ad" "$tmp/q1.h5ad" --label cell_type \
  --out "$tmp/bad3.h5ad" --k 0
expect 1 "q1.h5ad" "$CLUE_BIN" transfer "$tmp/ref1.h5ad" "$tmp/q1.h5ad" --label cell_type \
  --out "$tmp/q1.h5ad"
for f in bad1 bad2 bad3; do [ ! -e "$tmp/$f.h5ad" ] || fail "$f.h5ad written despite the error"; done
ls "$tmp" | grep -q 'tmp\.' && fail "temporary files left"
"$PY" -c "import anndata; anndata.read_h5ad('$tmp/q1.h5ad')" || fail "the input q1.h5ad was damaged"
echo "ok: bad input refused with one line"
