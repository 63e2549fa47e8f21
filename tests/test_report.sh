#!/usr/bin/env bash
# CLUE_TEST_SLOW CLUE_TEST_TIMEOUT: 600 (ctest starts it early, beside the short tests)
# test_report.sh — `clue report` and the pages train, embed and eval write, on a
# small model of bmmc_cite_600 (2 ranks):
#  1. clue train writes run.json (status, starts, data shapes) and report.html
#     with its curves; a run stopped by a signal records "stopped", its resume
#     "starts": 2 and the epoch it resumed from, marked on the curves;
#  2. clue embed --report adds the map of the test cells; clue report draws
#     the same map (UMAP and drawing) on 1, 2 and 3 ranks;
#  3. clue eval --report adds the figures; the confusion matrix of label
#     transfer across modalities equals scikit-learn's KNeighborsClassifier
#     (distance weights, k = 15, L2-normalised embeddings, each file's cells
#     from the other's) and its accuracy the eval's transfer_accuracy;
#  4. what is missing is said and the page still written (exit 0): no
#     log.jsonl, a log.jsonl cut in the middle of a line, an embedding file
#     without obsm/X_clue; nothing to show or no folder: exit 1; bad options: 2.
set -u
PY=/usr/bin/python3
if ! "$PY" -c 'import anndata, sklearn' 2>/dev/null; then
  echo "SKIP: $PY lacks anndata or sklearn (Debian python3-anndata python3-sklearn)"; exit 77
fi
data="${CLUE_SHARED_DATA:-}/bmmc_cite_600"
if [ ! -f "$data/rna.h5ad" ]; then echo "SKIP: shared data set bmmc_cite_600 not found"; exit 77; fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-report}"; rm -rf "$tmp"; mkdir -p "$tmp"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
fail() { echo "FAIL: $*"; exit 1; }
train=("$CLUE_BIN" train --config "$CLUE_SOURCE_DIR/configs/cite.yaml"
  --set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad")

# 1. train: run.json, the page; a stop by signal and a resume
$mpi -n 2 "${train[@]}" --set train.max_steps=60 --set "output.dir=$tmp/run" > "$tmp/train.out" \
  || fail "training"
grep -q "clue report: $tmp/run/report.html" "$tmp/train.out" || fail "train does not name its page"
for f in run.json report.html report.json; do [ -s "$tmp/run/$f" ] || fail "train wrote no $f"; done
"$PY" - "$tmp/run" <<'PY' || fail "run.json / report.json"
import json, sys
d = sys.argv[1]
r = json.load(open(f"{d}/run.json"))
assert r["status"] == "finished" and r["reason"] == "train.max_steps reached", r
assert r["starts"] == 1 and r["ranks"] == 2 and r["step"] == 60, r
m = {x["name"]: x for x in r["data"]["modalities"]}
assert m["rna"]["decoded"] == 1000 and m["adt"]["features"] == 134, m
assert r["data"]["cells"] == 480 and r["data"]["cells_all_modalities"] == 480, r["data"]
j = json.load(open(f"{d}/report.json"))
lines = [l for l in open(f"{d}/log.jsonl") if l.strip()]
assert j["log"]["epochs"] == len(lines) and j["log"]["bad_lines"] == 0, j["log"]
assert j["run"]["step"] == 60 and j["eval"] is None, j
PY
grep -q "generator loss (total)" "$tmp/run/report.html" || fail "no curves on the page"

"${train[@]}" --set train.max_steps=2000 --set "output.dir=$tmp/sig" --quiet > /dev/null 2>&1 &
pid=$!
for _ in $(seq 100); do [ -s "$tmp/sig/log.jsonl" ] && break; sleep 0.2; done
sleep 1; kill -TERM $pid; wait $pid; st=$?
[ "$st" -eq 75 ] || fail "signalled training exited $st, expected 75"
grep -q '"status": "stopped"' "$tmp/sig/run.json" || fail "run.json of a stopped run: $(cat "$tmp/sig/run.json")"
"${train[@]}" --set train.max_steps=300 --set "output.dir=$tmp/sig" --quiet --resume > /dev/null \
  || fail "resume"
"$PY" - "$tmp/sig" <<'PY' || fail "resume record"
import json, sys
r = json.load(open(f"{sys.argv[1]}/run.json"))
assert r["status"] == "finished" and r["starts"] == 2 and len(r["resumed_at"]) == 1, r
assert 0 <= r["resumed_at"][0] < r["epoch"], r
PY
grep -q ">resumed</text>" "$tmp/sig/report.html" || fail "the resume is not marked on the curves"

# 2. embed --report: the map; clue report draws the same map on 1, 2 and 3 ranks
$mpi -n 2 "$CLUE_BIN" embed --checkpoint "$tmp/run/checkpoint.h5" --out "$tmp/embed" \
  --cells test --report > "$tmp/embed.out" || fail "embed --report"
grep -q "Embedding map" "$tmp/run/report.html" || fail "embed --report drew no map"
for np in 1 2 3; do
  $mpi -n $np "$CLUE_BIN" report "$tmp/run" --embed "$tmp/embed" --out "$tmp/r$np.html" \
    --quiet 2> /dev/null || fail "report on $np ranks"
  grep -o "<img class='map'[^>]*>" "$tmp/r$np.html" > "$tmp/maps$np" || fail "no map ($np ranks)"
done
[ "$(grep -c . "$tmp/maps1")" -ge 2 ] || fail "expected maps by modality and by cell_type"
cmp -s "$tmp/maps1" "$tmp/maps2" && cmp -s "$tmp/maps1" "$tmp/maps3" ||
  fail "the maps differ between 1, 2 and 3 ranks"

# 3. eval --report: figures and the confusion matrix against scikit-learn
$mpi -n 2 "$CLUE_BIN" eval "$tmp/embed/rna.h5ad" "$tmp/embed/adt.h5ad" --label cell_type \
  --batch-key batch --report "$tmp/run" > /dev/null || fail "eval --report"
[ -s "$tmp/run/eval.json" ] || fail "eval --report without --json wrote no RUN/eval.json"
grep -q "Label transfer across modalities" "$tmp/run/report.html" || fail "no confusion matrix"
"$PY" - "$tmp" <<'PY' || fail "confusion matrix"
import json, sys, numpy as np, anndata as ad
from sklearn.neighbors import KNeighborsClassifier
from sklearn.metrics import confusion_matrix
t = sys.argv[1]
j = json.load(open(f"{t}/run/report.json"))
labels = list(j["embedding"]["label"].keys())
files = [f["file"] for f in j["embedding"]["files"]]
conf = np.array(j["confusion"]["rows_truth_columns_given"])
A = [ad.read_h5ad(f) for f in files]
def norm(x):
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=1, keepdims=True)
want = np.zeros_like(conf)
for i, q in enumerate(A):
    ref = [a for k, a in enumerate(A) if k != i]
    rx = np.vstack([norm(a.obsm["X_clue"]) for a in ref])
    ry = np.concatenate([a.obs["cell_type"].astype(str).values for a in ref])
    knn = KNeighborsClassifier(n_neighbors=15, weights="distance").fit(rx, ry)
    pred = knn.predict(norm(q.obsm["X_clue"]))
    want += confusion_matrix(q.obs["cell_type"].astype(str).values, pred, labels=labels)
assert (want == conf).all(), (np.argwhere(want != conf), want.sum(), conf.sum())
e = json.load(open(f"{t}/run/eval.json"))
acc = np.trace(conf) / conf.sum()
assert abs(acc - e["transfer_accuracy"]) < 1e-12, (acc, e["transfer_accuracy"])
assert abs(j["confusion"]["accuracy"] - acc) < 1e-9
assert j["eval"]["foscttm"] == e["foscttm"], "the page's JSON lacks the eval figures"
PY

# 4. what is missing
expect() { # status text cmd...
  local want="$1" text="$2"; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  [ "$rc" -eq "$want" ] || fail "$*: exit $rc, expected $want ($out)"
  echo "$out" | grep -q -- "$text" || fail "$*: output lacks '$text': $out"
}
mkdir -p "$tmp/nolog" "$tmp/cut" "$tmp/empty" "$tmp/mixed"
cp "$tmp/run/run.json" "$tmp/run/config.yaml" "$tmp/nolog/"
expect 0 "log.jsonl: missing" "$CLUE_BIN" report "$tmp/nolog"
grep -q "No training curves" "$tmp/nolog/report.html" || fail "the page does not say the log is missing"
cp "$tmp/run/run.json" "$tmp/run/config.yaml" "$tmp/cut/"
head -c $(( $(stat -c %s "$tmp/run/log.jsonl") - 300 )) "$tmp/run/log.jsonl" > "$tmp/cut/log.jsonl"
expect 0 "lines that do not parse are left out" "$CLUE_BIN" report "$tmp/cut"
grep -q "could not be read" "$tmp/cut/report.html" || fail "the page does not say a line was cut"
"$PY" -c "import json,sys; j=json.load(open(sys.argv[1])); assert j['log']['bad_lines']==1, j['log']" \
  "$tmp/cut/report.json" || fail "bad_lines"
cp "$tmp/embed/rna.h5ad" "$data/adt.h5ad" "$tmp/mixed/"
expect 0 "mixed.html" $mpi -n 2 "$CLUE_BIN" report "$tmp/run" --embed "$tmp/mixed" --out "$tmp/mixed.html"
grep -q "Left out: .*adt.h5ad.*X_clue" "$tmp/mixed.html" || fail "the page does not name the file without X_clue"
expect 1 "nothing to show" "$CLUE_BIN" report "$tmp/empty"
expect 1 "not a folder" "$CLUE_BIN" report "$tmp/none"
expect 2 "unknown or incomplete option" "$CLUE_BIN" report "$tmp/run" --colour red
expect 2 "RUN_DIR is required" "$CLUE_BIN" report
[ ! -e "$tmp/empty/report.html" ] || fail "a page was written with nothing to show"
echo "PASS: test_report"
