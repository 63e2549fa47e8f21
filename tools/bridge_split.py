#!/usr/bin/python3
"""tools/bridge_split.py — the data of the bridge protocol, from a paired set.

  bridge_split.py RUN_CONFIG OUT_DIR --bridge F --seed S

RUN_CONFIG is the resolved config.yaml a `clue train` run wrote (absolute
paths). The cells of the run's modality files that are in every modality are
paired by obs_names; the test cells (split_key == test_value) stay paired in
every output; the training cells are ranked by SHA-256 of "<seed>:<name>" (so
the draw is the same on any machine and the bridge of a smaller fraction is a
subset of a larger one's), the first round(F * n_train) (at least 2) form the
bridge, and the rest are dealt in K equal runs of that order, run k kept only in
modality k. Written, one .h5ad per modality:
  OUT_DIR/bridge/<mod>.h5ad    bridge + test cells
  OUT_DIR/unimodal/<mod>.h5ad  bridge + test cells + the cells kept in <mod> only
  OUT_DIR/cells.tsv            name, role (test|bridge|<mod>-only)
Each file keeps the input's rows in input order, with every column, layer and
array of the input. Python is the tool's, not clue's: nothing here is in the
path of a clue command.
"""
import hashlib
import os
import sys

import anndata
import yaml


def fail(msg):
    print(f"bridge_split.py: {msg}", file=sys.stderr)
    sys.exit(1)


def read_config(path):
    """The modalities (name, file) and split settings of a resolved config."""
    with open(path) as f:
        cfg = yaml.safe_load(f)
    data = cfg.get("data", {})
    if data.get("file"):
        fail(f"{path}: data.file ({data['file']}): the bridge protocol reads one .h5ad per "
             "modality")
    mods = [(name, (m or {}).get("file", "")) for name, m in data.get("modalities", {}).items()]
    if len(mods) < 2 or any(not f for _, f in mods):
        fail(f"{path}: expected data.modalities with a file for each (got {mods})")
    if not data.get("split_key"):
        fail(f"{path}: data.split_key is empty: the protocol needs held-out test cells")
    return mods, data["split_key"], str(data.get("test_value", "test"))


def rank_key(seed, name):
    return hashlib.sha256(f"{seed}:{name}".encode()).hexdigest()


def write_subset(adata, keep, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    adata[keep].copy().write_h5ad(tmp)
    os.replace(tmp, path)


def main(argv):
    if len(argv) != 7 or argv[3] != "--bridge" or argv[5] != "--seed":
        fail("usage: bridge_split.py RUN_CONFIG OUT_DIR --bridge F --seed S")
    config, out, frac, seed = argv[1], argv[2], float(argv[4]), int(argv[6])
    if not 0 < frac < 1:
        fail(f"--bridge {frac}: expected a fraction between 0 and 1")
    mods, split_key, test_value = read_config(config)
    data = {}
    for name, path in mods:
        a = anndata.read_h5ad(path)
        if not a.obs_names.is_unique:
            fail(f"{path}: obs_names are not unique")
        if split_key not in a.obs:
            fail(f"{path}: obs has no column {split_key!r} (data.split_key)")
        data[name] = (path, a)
    names = set(data[mods[0][0]][1].obs_names)
    for name, _ in mods[1:]:
        names &= set(data[name][1].obs_names)
    first = data[mods[0][0]][1]
    is_test = first.obs[split_key].astype(str) == str(test_value)
    test = sorted(n for n in first.obs_names[is_test.values] if n in names)
    train = sorted((n for n in names if n not in set(test)), key=lambda n: rank_key(seed, n))
    n_bridge = max(2, int(round(frac * len(train))))
    if n_bridge >= len(train) or not test:
        fail(f"{config}: {len(train)} paired training and {len(test)} test cells: too few "
             f"for a bridge of {frac}")
    bridge, rest = train[:n_bridge], train[n_bridge:]
    K = len(mods)
    only = {name: rest[len(rest) * k // K:len(rest) * (k + 1) // K]
            for k, (name, _) in enumerate(mods)}
    base = set(bridge) | set(test)
    for name, _ in mods:
        path, a = data[name]
        obs = a.obs_names
        write_subset(a, obs.isin(list(base)), os.path.join(out, "bridge", f"{name}.h5ad"))
        write_subset(a, obs.isin(list(base | set(only[name]))),
                     os.path.join(out, "unimodal", f"{name}.h5ad"))
    with open(os.path.join(out, "cells.tsv.tmp"), "w") as f:
        f.write("name\trole\n")
        for n in test:
            f.write(f"{n}\ttest\n")
        for n in bridge:
            f.write(f"{n}\tbridge\n")
        for name, _ in mods:
            for n in only[name]:
                f.write(f"{n}\t{name}-only\n")
    os.replace(os.path.join(out, "cells.tsv.tmp"), os.path.join(out, "cells.tsv"))
    counts = ", ".join(f"{len(only[name])} {name}-only" for name, _ in mods)
    print(f"bridge {len(bridge)}, {counts}, test {len(test)} (seed {seed})")


if __name__ == "__main__":
    main(sys.argv)
