#!/usr/bin/python3
"""tools/predict_scores.py — scores of `clue predict` against the measured
profiles of the same cells, beside two baselines computed here by the same code.

  predict_scores.py RUN_CONFIG PRED.h5ad FROM TO [--k 15] [--json OUT.json]

RUN_CONFIG: the resolved config.yaml of the clue run (its modality files, split
column and test value). PRED.h5ad: `clue predict --from FROM --to TO` of the
test cells, with every decoded feature (expected counts per 10,000, or with
--log1p their expected log1p; probabilities for a binary TO). The measured
profile of a cell is its TO counts on PRED's features, normalised to 10,000 per
cell over those features (the decoded ones, as the model's library size) and
log1p-transformed (binary TO: 0/1). Predictions are compared on that scale
(log1p of PRED's values, or the values of a --log1p prediction; binary: the
probabilities). Baselines, from the training cells (split != test):
  mean  the mean measured profile of the training cells;
  knn   the mean measured profile of the k nearest training cells in FROM's own
        PCA space (counts normalised and log1p-transformed as above, every
        feature scaled to unit variance on the training cells, 50 components).
Scores over the test cells: RMSE over every value, Pearson r per feature (mean
over the features whose measured values vary; a feature predicted as a constant
counts as r = 0) and per cell (mean over cells, the same way).
"""
import json
import sys

import anndata
import numpy as np
import scipy.sparse as sp
import yaml


def fail(msg):
    print(f"predict_scores.py: {msg}", file=sys.stderr)
    sys.exit(1)


def normalised(x, binary):
    x = x.toarray() if sp.issparse(x) else np.asarray(x)
    x = x.astype(np.float64)
    if binary:
        return (x > 0).astype(np.float64)
    lib = x.sum(1, keepdims=True)
    return np.log1p(x / np.maximum(lib, 1) * 1e4)


def mean_r(pred, truth, axis):
    """Mean Pearson r over the features (or cells) whose measured values vary;
    a constant prediction counts as r = 0."""
    a = pred - pred.mean(axis=axis, keepdims=True)
    b = truth - truth.mean(axis=axis, keepdims=True)
    num = (a * b).sum(axis=axis)
    va, vb = (a * a).sum(axis=axis), (b * b).sum(axis=axis)
    ok = vb > 0
    r = np.where(va > 0, num / np.sqrt(np.where(va > 0, va, 1) * np.where(vb > 0, vb, 1)), 0)
    return float(r[ok].mean()) if ok.any() else float("nan")


def scores(pred, truth):
    return {"rmse": float(np.sqrt(((pred - truth) ** 2).mean())),
            "r_feature": mean_r(pred, truth, 0), "r_cell": mean_r(pred, truth, 1)}


def main(argv):
    if len(argv) < 5:
        fail("usage: predict_scores.py RUN_CONFIG PRED.h5ad FROM TO [--k 15] [--json OUT]")
    cfg_path, pred_path, src, tgt = argv[1:5]
    k, out = 15, None
    rest = argv[5:]
    while rest:
        if rest[0] == "--k":
            k = int(rest[1])
        elif rest[0] == "--json":
            out = rest[1]
        else:
            fail(f"unknown option {rest[0]}")
        rest = rest[2:]
    with open(cfg_path) as f:
        data = yaml.safe_load(f)["data"]
    mods = data["modalities"]
    split, test = data["split_key"], str(data.get("test_value", "test"))
    binary = mods[tgt].get("likelihood") == "bernoulli"
    S, T = anndata.read_h5ad(mods[src]["file"]), anndata.read_h5ad(mods[tgt]["file"])
    P = anndata.read_h5ad(pred_path)
    both = S.obs_names.intersection(T.obs_names)
    S, T = S[both], T[both]
    is_test = (S.obs[split].astype(str) == test).values
    train = both[~is_test]
    missing = P.obs_names.difference(T.obs_names)
    if len(missing):
        fail(f"{pred_path}: {len(missing)} cells are not in {mods[tgt]['file']}")
    cols = T.var_names.get_indexer(P.var_names)
    if (cols < 0).any():
        fail(f"{pred_path}: features not in {mods[tgt]['file']}")
    t_all = normalised(T.X[:, cols], binary)  # normalised over the predicted features
    row = {n: i for i, n in enumerate(both)}
    ti = np.array([row[n] for n in P.obs_names])
    tr = np.array([row[n] for n in train])
    truth = t_all[ti]
    x = np.asarray(P.X, dtype=np.float64)
    logged = str(P.uns.get("clue_predict", "")).startswith("expected log1p")
    clue = x if binary or logged else np.log1p(x)
    mean = np.repeat(t_all[tr].mean(0, keepdims=True), len(ti), axis=0)
    s = normalised(S.X, False)
    mu, sd = s[tr].mean(0), s[tr].std(0)
    sd[sd == 0] = 1
    z = (s - mu) / sd
    _, _, vt = np.linalg.svd(z[tr], full_matrices=False)
    pcs = z @ vt[:min(50, vt.shape[0])].T
    a, b = pcs[ti], pcs[tr]
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    nn = np.argsort(d, axis=1)[:, :k]
    knn = t_all[tr][nn].mean(1)
    res = {"from": src, "to": tgt, "cells": int(len(ti)), "features": int(len(cols)), "k": k,
           "clue": scores(clue, truth), "mean": scores(mean, truth), "knn": scores(knn, truth)}
    for name in ("clue", "mean", "knn"):
        r = res[name]
        print(f"{src}->{tgt}  {name:<5} RMSE {r['rmse']:.4f}  r per feature {r['r_feature']:.4f}"
              f"  r per cell {r['r_cell']:.4f}")
    if out:
        with open(out + ".tmp", "w") as f:
            json.dump(res, f, indent=1)
        import os
        os.replace(out + ".tmp", out)


if __name__ == "__main__":
    main(sys.argv)
