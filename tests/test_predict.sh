#!/usr/bin/env bash
# test_predict.sh — `clue predict` on a small model of bmmc_cite_600 (RNA → ADT):
#  1. the profile equals an independent numpy forward pass of the decoder, read
#     from the checkpoint's tensors, on the cells' embeddings from `clue embed`
#     (L2-normalised, the ADT block, batch one-hot after every layer, eval-mode
#     BatchNorm, softmax · 1e4), to 1e-4; the same on 1, 2 and 3 ranks and in
#     rounds of 7 cells; --counts L rescales rows to L; --features picks columns;
#  2. --log1p --raw equals E[log1p(X / L · 1e4)] summed from scipy's negative
#     binomial probabilities at the training cells' mean library size L;
#  2b. with train.calibration=all, the calibration kept in the checkpoint equals
#     numpy's least-squares line per feature between --log1p --raw on the run's
#     cells and their measured log1p-normalised ADT (slope ≥ 0, range of the
#     measured values), and --log1p applies it; the same for a run on 2 ranks;
#     the default (validation) fits on the run's 48 validation cells only;
#     train.reference_cells=0 keeps none;
#  2c. the checkpoint's reference cells are the run's cells with their
#     embeddings (as clue embed writes them, unit norm), encoder inputs (numpy's
#     PCA with the checkpoint's loadings) and decoded counts, the same from a
#     run on 2 ranks; the blend's weights minimise, over w ≥ 0, w₁ + w₂ ≤ 1 (a
#     numpy grid), the squared error of (1 − w₁ − w₂)·calibrated (each cell by
#     the line refitted without it) + w₁·(mean
#     measured ADT of the 15 nearest other cells by cosine in the RNA embedding)
#     + w₂·(the same by distance in the RNA input) over the run's cells, the same
#     on 2 ranks; --log1p (--neighbours 15 by default, or 5) equals that blend
#     for the test cells, on 1 and 2 ranks;
#  3. cells whose batch the model does not know: with --batch B, the profile of
#     batch B; without it, the mean of the profiles of every batch;
#  4. bad input: an unknown --to, features the model does not decode, a cells
#     file with other features: one line, exit 1 or 2, no output.
set -u
PY=/usr/bin/python3
if ! "$PY" -c 'import anndata, h5py, scipy' 2>/dev/null; then
  echo "SKIP: $PY lacks anndata, h5py or scipy (Debian python3-anndata, python3-scipy)"; exit 77
fi
data="${CLUE_SHARED_DATA:-}/bmmc_cite_600"
if [ ! -f "$data/rna.h5ad" ]; then echo "SKIP: shared data set bmmc_cite_600 not found"; exit 77; fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-predict}"; rm -rf "$tmp"; mkdir -p "$tmp"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
fail() { echo "FAIL: $*"; exit 1; }

"$CLUE_BIN" train --config "$CLUE_SOURCE_DIR/configs/cite.yaml" \
  --set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad" \
  --set train.max_steps=40 --set "output.dir=$tmp/run" --set train.calibration=all --quiet ||
  fail "training"
"$CLUE_BIN" embed --checkpoint "$tmp/run/checkpoint.h5" --out "$tmp/embed" --cells test \
  > /dev/null || fail "embed"
predict() { # np out [extra...]
  local np="$1" out="$2"; shift 2
  $mpi -n "$np" "$CLUE_BIN" predict --checkpoint "$tmp/run/checkpoint.h5" --from rna --to adt \
    --cells "$data/rna.h5ad" --where split=test --out "$out" "$@" > "$out.log" 2>&1 ||
    { cat "$out.log"; fail "predict $*"; }
}
predict 1 "$tmp/p1.h5ad"
predict 2 "$tmp/p2.h5ad"
predict 3 "$tmp/p3.h5ad" --chunk 7
predict 2 "$tmp/counts.h5ad" --counts 100
predict 1 "$tmp/some.h5ad" --features CD86,CD274,CD3
predict 2 "$tmp/log.h5ad" --log1p --raw
predict 2 "$tmp/cal.h5ad" --log1p --neighbours 0
predict 2 "$tmp/ref.h5ad" --log1p
predict 1 "$tmp/ref1.h5ad" --log1p --chunk 7
predict 2 "$tmp/ref5.h5ad" --log1p --neighbours 5
"$CLUE_BIN" embed --checkpoint "$tmp/run/checkpoint.h5" --out "$tmp/embed_train" --cells train \
  > /dev/null || fail "embed of the training cells"
$mpi -n 2 "$CLUE_BIN" train --config "$CLUE_SOURCE_DIR/configs/cite.yaml" \
  --set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad" \
  --set train.max_steps=40 --set "output.dir=$tmp/run2" --set train.calibration=all --quiet ||
  fail "training on 2 ranks"
"$CLUE_BIN" train --config "$CLUE_SOURCE_DIR/configs/cite.yaml" \
  --set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad" \
  --set train.max_steps=40 --set "output.dir=$tmp/run3" --set train.reference_cells=0 \
  > "$tmp/run3.log" || fail "training (validation)"
grep -q "predictions calibrated on 48 validation cells measured in both" "$tmp/run3.log" ||
  fail "train does not say it calibrated on the validation cells: $(cat "$tmp/run3.log")"
for r in "" 2; do
  $mpi -n 2 "$CLUE_BIN" predict --checkpoint "$tmp/run$r/checkpoint.h5" --from rna --to adt \
    --cells "$data/rna.h5ad" --where split=train --out "$tmp/train_raw$r.h5ad" --log1p --raw \
    > /dev/null || fail "predict on the training cells (run$r)"
done
grep -q "calibrated on 480 cells measured in both" "$tmp/cal.h5ad.log" ||
  fail "predict does not say it calibrated: $(cat "$tmp/cal.h5ad.log")"
grep -q "not calibrated (--raw)" "$tmp/log.h5ad.log" || fail "--raw is not reported"
grep -q "the mean measured profile of the 15 nearest of 480 reference cells in the embedding from rna" \
  "$tmp/ref.h5ad.log" || fail "predict does not say it used reference cells: $(cat "$tmp/ref.h5ad.log")"
"$PY" - "$tmp" "$data" <<'PY' || fail "the batch fixture"
import sys, anndata as ad
tmp, data = sys.argv[1:3]
a = ad.read_h5ad(f"{data}/rna.h5ad")
a = a[a.obs["split"] == "test"].copy()
a.obs["batch"] = "elsewhere"
a.write_h5ad(f"{tmp}/unknown_batch.h5ad")
PY
for extra in "" "--batch s1d2"; do
  name=mean; [ -n "$extra" ] && name=given
  $mpi -n 2 "$CLUE_BIN" predict --checkpoint "$tmp/run/checkpoint.h5" --from rna --to adt \
    --cells "$tmp/unknown_batch.h5ad" --out "$tmp/$name.h5ad" $extra > "$tmp/$name.log" 2>&1 ||
    { cat "$tmp/$name.log"; fail "predict with an unknown batch $extra"; }
done
grep -q "0 cells their own, 0 --batch (none), 120 the mean over the model's" "$tmp/mean.log" ||
  fail "the batch choice is not reported: $(cat "$tmp/mean.log")"

"$PY" - "$tmp" "$data" <<'PY' || fail "predictions differ from the independent computation"
import sys, h5py, numpy as np, anndata as ad
from scipy.stats import nbinom
tmp, data = sys.argv[1:3]
f = h5py.File(f"{tmp}/run/checkpoint.h5", "r")
f2 = h5py.File(f"{tmp}/run2/checkpoint.h5", "r")
g, b = f["params/gen"], f["params/buf"]
# /batches: the model's batch names, each ended by a NUL byte
raw = bytes(f["batches"][:].astype(np.uint8))
model_batches = [s.decode() for s in raw.split(b"\0")[:int(f["batches"].attrs["count"])]]
names = [n for n in g if n.startswith("dec.adt.l") and n.endswith(".weight")]
depth = len([n for n in names if n != "dec.adt.loc.weight"])
F = g["dec.adt.loc.bias"].shape[0]
nb = g["dec.adt.bias"].shape[0] // F
def decode(z, code):
    onehot = np.zeros((len(z), nb)); onehot[:, code] = 1
    h = z
    for l in range(depth):
        w = g[f"dec.adt.l{l}.bias"][:]
        W = g[f"dec.adt.l{l}.weight"][:].reshape(len(w), -1)
        x = np.concatenate([h, onehot], 1) @ W.T + w
        x = np.where(x > 0, x, 0.2 * x)
        mu, var = b[f"dec.adt.bn{l}.running_mean"][:], b[f"dec.adt.bn{l}.running_var"][:]
        h = (x - mu) / np.sqrt(var + 1e-5) * g[f"dec.adt.bn{l}.gamma"][:] + g[f"dec.adt.bn{l}.beta"][:]
    W = g["dec.adt.loc.weight"][:].reshape(F, -1)
    loc = np.concatenate([h, onehot], 1) @ W.T + g["dec.adt.loc.bias"][:]
    scale = g["dec.adt.scale_lin"][:].reshape(nb, F)[code]
    logit = np.log1p(np.exp(scale)) * loc + g["dec.adt.bias"][:].reshape(nb, F)[code]
    e = np.exp(logit - logit.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True), np.exp(g["dec.adt.log_theta"][:].reshape(nb, F)[code])
emb = ad.read_h5ad(f"{tmp}/embed/rna.h5ad")
p1 = ad.read_h5ad(f"{tmp}/p1.h5ad")
assert list(p1.obs_names) == list(emb.obs_names)
u = emb.obsm["X_clue"].astype(np.float64)
u /= np.linalg.norm(u, axis=1, keepdims=True)
z = u[:, u.shape[1] // 2:]
cats = list(p1.obs["batch"].cat.categories)
codes = [cats.index(str(x)) for x in p1.obs["batch"]]
want = np.zeros((len(z), F))
for c in set(codes):
    rows = [i for i, x in enumerate(codes) if x == c]
    want[rows] = decode(z[rows], model_batches.index(cats[c]))[0]
rel = lambda a, b: np.abs(a - b).max() / np.abs(b).max()
assert rel(p1.X / 1e4, want) < 1e-4, rel(p1.X / 1e4, want)
for other in ("p2", "p3"):
    assert rel(ad.read_h5ad(f"{tmp}/{other}.h5ad").X, p1.X) < 1e-5, other
c = ad.read_h5ad(f"{tmp}/counts.h5ad")
assert np.allclose(c.X.sum(1), 100, rtol=1e-4) and rel(c.X * 100, p1.X) < 1e-5
s = ad.read_h5ad(f"{tmp}/some.h5ad")
assert list(s.var_names) == ["CD86", "CD274", "CD3"]
assert rel(s.X, p1[:, ["CD86", "CD274", "CD3"]].X) < 1e-5
# --log1p at the mean library size kept in the checkpoint
L = float(f["prep/adt"].attrs["library_mean"])
lg = ad.read_h5ad(f"{tmp}/log.h5ad").X
rng = np.random.default_rng(0)
for i, j in zip(rng.integers(0, len(z), 40), rng.integers(0, F, 40)):
    share, theta = decode(z[i:i + 1], model_batches.index(cats[codes[i]]))
    mu, th = share[0, j] * L, theta[j]
    x = np.arange(0, int(mu + 60 * np.sqrt(mu + mu * mu / th)) + 200)
    pmf = nbinom.pmf(x, th, th / (th + mu))
    ref = (pmf * np.log1p(x / L * 1e4)).sum()
    assert abs(lg[i, j] - ref) < 1e-4 * max(1, abs(ref)), (i, j, lg[i, j], ref)
# the calibration: numpy's line per feature on each run's cells (split != test)
def check_calibration(ck, raw_path):
    raw = ad.read_h5ad(raw_path)
    adt = ad.read_h5ad(f"{data}/adt.h5ad")[raw.obs_names]
    x = adt[:, list(raw.var_names)].X
    x = np.asarray(x.todense() if hasattr(x, "todense") else x, dtype=np.float64)
    y = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)
    p = np.asarray(raw.X, dtype=np.float64)
    pm, ym = p.mean(0), y.mean(0)
    cov, var = ((p - pm) * (y - ym)).mean(0), ((p - pm) ** 2).mean(0)
    slope = np.where((var > 1e-9 * (p * p).mean(0)) & (cov > 0), cov / np.where(var > 0, var, 1), 0)
    cal = ck["calib/rna/adt"]
    assert cal.attrs["cells"] == len(p) == 480, cal.attrs["cells"]
    for name, ref in (("b", slope), ("a", ym - slope * pm), ("lo", y.min(0)), ("hi", y.max(0))):
        assert np.abs(cal[name][:] - ref).max() < 1e-4 * max(1, np.abs(ref).max()), name
    assert (slope > 0).sum() > F // 2 and abs(slope[slope > 0] - 1).max() > 0.05  # not a no-op
    assert ck["calib/adt/rna/a"].shape[0] == f["prep/rna/decoded"].shape[0]
    return cal
cal = check_calibration(f, f"{tmp}/train_raw.h5ad")
check_calibration(f2, f"{tmp}/train_raw2.h5ad")
assert cal.attrs["validation"] == 0
# train.calibration: validation (the default): the run's validation cells only
import json
f3 = h5py.File(f"{tmp}/run3/checkpoint.h5", "r")
assert "refcells" not in f3, "train.reference_cells=0 kept reference cells"
v = f3["calib/rna/adt"]
assert v.attrs["validation"] == 1 and v.attrs["cells"] == json.load(open(f"{tmp}/run3/run.json"))["data"]["cells_val"] == 48
assert (v["lo"][:] >= cal["lo"][:] - 1e-6).all() and (v["hi"][:] <= cal["hi"][:] + 1e-6).all()
assert (v["lo"][:] > cal["lo"][:] + 1e-6).any() or (v["hi"][:] < cal["hi"][:] - 1e-6).any()
want = np.clip(cal["a"][:] + cal["b"][:] * lg, cal["lo"][:], cal["hi"][:])
assert rel(ad.read_h5ad(f"{tmp}/cal.h5ad").X, want) < 1e-5
# reference cells: the run's 480 cells (all measured in both), their embeddings
# (as clue embed writes them, unit norm) and measured counts of the decoded features
rc = f["refcells"]
names = [s.decode() for s in bytes(rc["names"][:].astype(np.uint8)).split(b"\0")[:rc.attrs["n"]]]
train = {m: ad.read_h5ad(f"{tmp}/embed_train/{m}.h5ad") for m in ("rna", "adt")}
assert rc.attrs["n"] == 480 and names == list(train["rna"].obs_names), names[:3]
assert (rc["present"][:] == 1).all()
for m in ("rna", "adt"):
    e = train[m].obsm["X_clue"].astype(np.float64)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    assert np.abs(rc[f"{m}/emb"][:].reshape(480, -1) - e).max() < 1e-5, m
    counts = ad.read_h5ad(f"{data}/{m}.h5ad")[names]
    cols = np.array(f[f"prep/{m}/decoded"][:])
    x = counts.X[:, cols]
    x = np.asarray(x.todense() if hasattr(x, "todense") else x, dtype=np.float32)
    import scipy.sparse as sp
    t = sp.csr_matrix((rc[f"{m}/data"][:], rc[f"{m}/indices"][:], rc[f"{m}/indptr"][:]),
                      shape=x.shape).toarray()
    assert (t == x).all(), m
f2n = f2["refcells"]
assert f2n.attrs["n"] == 480 and (f2n["adt/data"][:] == rc["adt/data"][:]).all()
# predictions averaged with the mean measured ADT of the nearest reference cells
# in the RNA embedding (cosine; ties are not expected on continuous embeddings)
yref = counts.X  # adt, the last of the loop
yref = np.asarray(yref.todense() if hasattr(yref, "todense") else yref, dtype=np.float64)[:, cols]
yref = np.log1p(yref / np.maximum(yref.sum(1, keepdims=True), 1) * 1e4)
ref_emb = rc["rna/emb"][:].reshape(480, -1).astype(np.float64)
q = u / np.linalg.norm(u, axis=1, keepdims=True)  # the test cells' RNA embedding
sim = q @ ref_emb.T
calv = ad.read_h5ad(f"{tmp}/cal.h5ad").X
# encoder inputs: log1p(x / Σx · 1e4) of the used genes, standardised, clipped
# to ±10, times the projection
pr = f["prep/rna"]
def rna_input(cells):
    x = ad.read_h5ad(f"{data}/rna.h5ad")[cells].X
    x = np.asarray(x.todense() if hasattr(x, "todense") else x, dtype=np.float64)
    v = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1e-300) * 1e4)[:, pr["used"][:]]
    return np.clip((v - pr["mean"][:]) / pr["std"][:], -10, 10) @ pr["proj"][:].astype(np.float64)
ref_in = rc["rna/input"][:].reshape(480, -1).astype(np.float64)
want_in = rna_input(names)
assert rel(ref_in, want_in) < 1e-4, rel(ref_in, want_in)
assert np.abs(f2n["rna/input"][:] - rc["rna/input"][:]).max() < 1e-4 * np.abs(want_in).max()
def near(d, k, skip_self):  # nearest reference rows by d (smaller is nearer)
    if skip_self:
        d = d.copy(); np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k]
def sqdist(a, c):
    return (a * a).sum(1)[:, None] + (c * c).sum(1)[None, :] - 2 * a @ c.T
# the blend's weights: each run's 480 cells against the others
def check_blend(ck, raw_path):
    r = ck["refcells"]
    n = int(r.attrs["n"])
    nm = [s.decode() for s in bytes(r["names"][:].astype(np.uint8)).split(b"\0")[:n]]
    x = sp.csr_matrix((r["adt/data"][:], r["adt/indices"][:], r["adt/indptr"][:])).toarray()
    x = x.astype(np.float64)
    y = np.log1p(x / np.maximum(x.sum(1, keepdims=True), 1) * 1e4)
    e, i = r["rna/emb"][:].reshape(n, -1).astype(np.float64), r["rna/input"][:].reshape(n, -1)
    c = ck["calib/rna/adt"]
    # each cell's calibrated value from the line refitted without it (b ≥ 0 as
    # decided by the whole fit, the whole fit's range)
    p = ad.read_h5ad(raw_path)[nm].X.astype(np.float64)
    sp_, sy, spp, spy = p.sum(0) - p, y.sum(0) - y, (p * p).sum(0) - p * p, (p * y).sum(0) - p * y
    mp, my = sp_ / (n - 1), sy / (n - 1)
    var, cov = spp / (n - 1) - mp * mp, spy / (n - 1) - mp * my
    slope = np.where(c["b"][:] > 0, cov / np.where(var > 0, var, 1), 0)
    p0 = np.clip(my + slope * (p - mp), c["lo"][:], c["hi"][:])
    full = np.clip(c["a"][:] + c["b"][:] * p, c["lo"][:], c["hi"][:])
    assert np.abs(p0 - full).max() > 1e-3  # leaving the cell out matters
    i = i.astype(np.float64)
    r0 = (y - p0).ravel()
    d1 = (y[near(-(e @ e.T), 15, True)].mean(1) - p0).ravel()
    d2 = (y[near(sqdist(i, i), 15, True)].mean(1) - p0).ravel()
    G = np.array([[d1 @ d1, d1 @ d2], [d1 @ d2, d2 @ d2]]); bb = np.array([d1 @ r0, d2 @ r0])
    loss = lambda a, c: a * a * G[0, 0] + 2 * a * c * G[0, 1] + c * c * G[1, 1] - 2 * (a * bb[0] + c * bb[1])
    grid = np.linspace(0, 1, 201)
    w1, w2 = [v.ravel() for v in np.meshgrid(grid, grid)]
    w1, w2 = w1[w1 + w2 <= 1 + 1e-12], w2[w1 + w2 <= 1 + 1e-12]
    best = np.argmin(loss(w1, w2))
    bl = r["blend"][:].reshape(2, 2, 4)[0, 1]  # rna -> adt: w_embedding, w_input, cells, validation
    assert bl[2] == n == 480 and bl[3] == 0, bl
    assert abs(bl[0] - w1[best]) < 0.01 and abs(bl[1] - w2[best]) < 0.01, (bl, w1[best], w2[best])
    assert loss(bl[0], bl[1]) <= loss(w1[best], w2[best]) + 1e-9 * abs(loss(w1[best], w2[best]))
    assert bl[0] + bl[1] > 0.05 and 1 - bl[0] - bl[1] > 0.05, bl  # a blend, not one source
    return bl
bl = check_blend(f, f"{tmp}/train_raw.h5ad")
check_blend(f2, f"{tmp}/train_raw2.h5ad")
# the test cells' predictions: that blend
q_in = rna_input(list(emb.obs_names))
for k, name in ((15, "ref"), (5, "ref5")):
    e_mean = yref[near(-sim, k, False)].mean(1)
    i_mean = yref[near(sqdist(q_in, ref_in), k, False)].mean(1)
    want = (1 - bl[0] - bl[1]) * calv + bl[0] * e_mean + bl[1] * i_mean
    got = ad.read_h5ad(f"{tmp}/{name}.h5ad").X
    assert rel(got, want) < 1e-5, (name, rel(got, want))
assert rel(ad.read_h5ad(f"{tmp}/ref1.h5ad").X, ad.read_h5ad(f"{tmp}/ref.h5ad").X) < 1e-6
# batches the model does not know
given = ad.read_h5ad(f"{tmp}/given.h5ad").X
mean = ad.read_h5ad(f"{tmp}/mean.h5ad").X
k = model_batches.index("s1d2")
assert rel(given / 1e4, decode(z, k)[0]) < 1e-4
avg = sum(decode(z, q)[0] for q in range(nb)) / nb
assert rel(mean / 1e4, avg) < 1e-4
print("ok")
PY
echo "ok: predict equals a numpy decoder (1, 2, 3 ranks, rounds, --counts, --features, --log1p, batches), calibration equals numpy's fit (1 and 2 ranks)"

expect() { # status text cmd...
  local want="$1" text="$2"; shift 2
  local out rc
  out=$("$@" 2>&1); rc=$?
  [ "$rc" -eq "$want" ] || fail "$*: exit $rc, expected $want ($out)"
  echo "$out" | grep -q -- "$text" || fail "$*: message lacks '$text': $out"
  [ "$(echo "$out" | grep -c 'error')" -le 1 ] || fail "$*: more than one error line: $out"
}
P=("$CLUE_BIN" predict --checkpoint "$tmp/run/checkpoint.h5" --from rna --cells "$data/rna.h5ad")
expect 2 "--to atac: the model has the modalities rna, adt" "${P[@]}" --to atac --out "$tmp/bad1.h5ad"
expect 1 "'NOPE' is not among the 134 features the model decodes for adt" \
  "${P[@]}" --to adt --features CD3,NOPE --out "$tmp/bad2.h5ad"
expect 1 "the same features, in the same order, are needed" "$CLUE_BIN" predict \
  --checkpoint "$tmp/run/checkpoint.h5" --from rna --to adt --cells "$data/adt.h5ad" --out "$tmp/bad3.h5ad"
expect 2 "--batch nowhere: the model knows 2 batches" "${P[@]}" --to adt --batch nowhere --out "$tmp/bad4.h5ad"
for f in bad1 bad2 bad3 bad4; do [ ! -e "$tmp/$f.h5ad" ] || fail "$f.h5ad written despite the error"; done
echo "ok: bad input refused with one line"
