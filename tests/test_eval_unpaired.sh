#!/usr/bin/env bash
# test_eval_unpaired.sh — `clue eval --label` (the measures that need no
# pairing) against independent implementations on the same numbers: three
# files of clustered embeddings (some cells without a label, two batches, files
# that share no cell), on 1, 2 and 3 ranks:
#   label ASW   (sklearn silhouette_score + 1) / 2
#   batch ASW   scib's silhouette_batch from sklearn silhouette_samples
#   modality ASW the same with the file as the batch
#   graph connectivity  sklearn kneighbors_graph (k, both ways) and scipy's
#               connected_components within each label
#   transfer    sklearn KNeighborsClassifier(weights="distance") on the other
#               files' labelled cells (L2-normalised), accuracy_score and
#               f1_score(average="macro") per file and over all
# every figure to 1e-9; the ranks agree to 1e-12. Then bad input.
set -u
PY=/usr/bin/python3
if ! "$PY" -c 'import anndata, sklearn, scipy' 2>/dev/null; then
  echo "SKIP: $PY lacks anndata, sklearn or scipy (Debian python3-anndata python3-sklearn)"; exit 77
fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-eval-unpaired}"; rm -rf "$tmp"; mkdir -p "$tmp"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
fail() { echo "FAIL: $*"; exit 1; }

"$PY" - "$tmp" <<'PY' || fail "fixtures"
import sys, numpy as np, pandas as pd, anndata as ad
tmp = sys.argv[1]
rng = np.random.default_rng(3)
centres = rng.normal(size=(5, 8)) * 1.5
for f, (n, shift) in enumerate(((220, 0.0), (180, 0.4), (90, -0.3))):
    t = rng.integers(0, 5, n)
    x = centres[t] + rng.normal(size=(n, 8)) + shift
    lab = np.array([f"t{i}" for i in t], dtype=object)
    lab[rng.random(n) < 0.1] = None
    if f == 2:
        lab[t == 4] = None                     # a label this file lacks
    obs = pd.DataFrame({"cell_type": pd.Categorical(lab),
                        "batch": pd.Categorical(rng.choice(["b1", "b2"], n))},
                       index=[f"m{f}_{i}" for i in range(n)])
    a = ad.AnnData(obs=obs)
    a.obsm["X_clue"] = x.astype(np.float32)
    a.write_h5ad(f"{tmp}/m{f}.h5ad")
PY

files=("$tmp/m0.h5ad" "$tmp/m1.h5ad" "$tmp/m2.h5ad")
for np in 1 2 3; do
  $mpi -n "$np" "$CLUE_BIN" eval "${files[@]}" --label cell_type --batch-key batch --label-k 7 \
    --json "$tmp/e$np.json" > "$tmp/e$np.log" 2>&1 || { cat "$tmp/e$np.log"; fail "$np ranks"; }
done
grep -q "no paired figures (more than two files)" "$tmp/e1.log" || fail "the paired figures are not said to be absent"

"$PY" - "$tmp" <<'PY' || fail "the measures differ from the independent implementations"
import sys, json, numpy as np, anndata as ad
from sklearn.metrics import silhouette_score, silhouette_samples, accuracy_score, f1_score
from sklearn.neighbors import kneighbors_graph, KNeighborsClassifier
from scipy.sparse.csgraph import connected_components
tmp = sys.argv[1]
files = [ad.read_h5ad(f"{tmp}/m{f}.h5ad") for f in range(3)]
X = np.vstack([a.obsm["X_clue"] for a in files]).astype(np.float64)
lab = np.concatenate([a.obs["cell_type"].astype(object).values for a in files])
has = np.array([v is not None and v == v for v in lab])
lab = np.array([str(v) for v in lab])
bat = np.concatenate([a.obs["batch"].astype(str).values for a in files])
mod = np.concatenate([np.full(a.n_obs, f) for f, a in enumerate(files)])
k = 7
want = {"asw_label": (silhouette_score(X[has], lab[has]) + 1) / 2}
def within(groups):
    per = []
    for l in np.unique(lab[has]):
        sel = has & (lab == l)
        g = groups[sel]
        if len(np.unique(g)) < 2 or len(np.unique(g)) == sel.sum():
            continue
        per.append(np.mean(1 - np.abs(silhouette_samples(X[sel], g))))
    return float(np.mean(per))
want["asw_batch"] = within(bat)
want["asw_modality"] = within(mod)
A = kneighbors_graph(X, k, include_self=False)
A = A + A.T
conn = []
for l in np.unique(lab[has]):
    sel = np.where(has & (lab == l))[0]
    _, comp = connected_components(A[sel][:, sel], directed=False)
    conn.append(np.bincount(comp).max() / len(sel))
want["graph_connectivity"] = float(np.mean(conn))
norm = lambda v: (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)
truth_all, pred_all = [], []
per = {}
for f in range(3):
    q, r = has & (mod == f), has & (mod != f)
    clf = KNeighborsClassifier(n_neighbors=k, weights="distance", algorithm="brute")
    p = clf.fit(norm(X[r]), lab[r]).predict(norm(X[q]))
    per[f"m{f}"] = (accuracy_score(lab[q], p), f1_score(lab[q], p, average="macro"), int(q.sum()))
    truth_all += list(lab[q]); pred_all += list(p)
want["transfer_accuracy"] = accuracy_score(truth_all, pred_all)
want["transfer_macro_f1"] = f1_score(truth_all, pred_all, average="macro")
got = [json.load(open(f"{tmp}/e{n}.json")) for n in (1, 2, 3)]
for key, v in want.items():
    assert abs(got[0][key] - v) < 1e-9, (key, got[0][key], v)
    for g in got[1:]:
        assert abs(g[key] - got[0][key]) < 1e-12, (key, g[key], got[0][key])
for name, (acc, f1, n) in per.items():
    t = got[0]["transfer"][name]
    assert t["cells"] == n and abs(t["accuracy"] - acc) < 1e-9 and abs(t["macro_f1"] - f1) < 1e-9, (name, t, acc, f1)
assert got[0]["cells"] == len(X) and got[0]["foscttm"] is None
print("ok")
PY
echo "ok: label ASW, batch and modality ASW, graph connectivity, transfer equal sklearn/scib on 1, 2, 3 ranks"

"$CLUE_BIN" eval "$tmp/m0.h5ad" "$tmp/m1.h5ad" --label cell_type --json "$tmp/two.json" > "$tmp/two.log" 2>&1 ||
  { cat "$tmp/two.log"; fail "two files that share no cell, with --label"; }
grep -q "no paired figures" "$tmp/two.log" || fail "two unpaired files: the missing pairing is not said"
out=$("$CLUE_BIN" eval "$tmp/m0.h5ad" "$tmp/m1.h5ad" 2>&1); rc=$?
[ "$rc" -eq 1 ] || fail "two unpaired files without --label: exit $rc, expected 1 ($out)"
out=$("$CLUE_BIN" eval "${files[@]}" 2>&1); rc=$?
[ "$rc" -eq 2 ] || fail "three files without --label: exit $rc, expected 2 ($out)"
out=$("$CLUE_BIN" eval "${files[@]}" --label nothing 2>&1); rc=$?
[ "$rc" -eq 1 ] && echo "$out" | grep -q "nothing" || fail "a missing label column: exit $rc ($out)"
out=$("$CLUE_BIN" eval "${files[@]}" --label cell_type --json "$tmp/m1.h5ad" 2>&1); rc=$?
[ "$rc" -eq 1 ] && echo "$out" | grep -q "refusing to overwrite" || fail "--json onto an input: exit $rc ($out)"
"$PY" -c "import anndata; anndata.read_h5ad('$tmp/m1.h5ad')" || fail "the input m1.h5ad was damaged"
echo "ok: bad input"
