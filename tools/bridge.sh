#!/usr/bin/env bash
# tools/bridge.sh — the bridge protocol (../shared/docs/targets.md) for one paired
# data set: a small paired "bridge" plus many unimodal cells, against the same
# cells all paired and the bridge alone.
#
#   tools/bridge.sh CONFIG [--bridge "0.1 0.02"] [--seeds "0 1 2"] [--np 1]
#                   [--out runs/bridge] [--set key=value]... [--tag NAME] [--reuse]
#
# For each seed: `paired` trains on every training cell with both modalities (as
# tools/quality.sh); for each bridge fraction F, tools/bridge_split.py derives
# (keyed by the seed) the files of `bridge` (F of the training cells, paired) and
# `unimodal` (the bridge plus the other training cells, each kept in one
# modality only), both with the paired test cells, under OUT; each is trained
# with the same settings, the test cells are embedded from each modality alone
# and compared (FOSCTTM, snn matching). Printed: every run, then per fraction the
# means over seeds (spread: min–max) and
#   gap closed = (F_bridge − F_unimodal) / (F_bridge − F_paired)
# of the mean FOSCTTMs (1: the unimodal cells are worth full pairing, 0: worth
# nothing, < 0: harmful), with each seed's own beside it. OUT/<set>/summary.json
# holds every figure.
#   --set applies to all three trainings; --tag NAME names the unimodal runs
#   (unimodal-NAME), to compare settings against the same baselines; --reuse
#   keeps any run whose eval.json exists (the baselines of an earlier call).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/setup.sh"
clue_mpi_env
[ $# -ge 1 ] || { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
config="$1"; shift
fractions="0.1"; seeds="0 1 2"; np=1; out="$CLUE_ROOT/runs/bridge"; sets=(); tag=""; reuse=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bridge) fractions="$2"; shift 2 ;;
    --seeds) seeds="$2"; shift 2 ;;
    --np) np="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    --tag) tag="-$2"; shift 2 ;;
    --reuse) reuse=1; shift ;;
    *) echo "bridge.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ -f "$config" ] || { echo "bridge.sh: $config: no such config" >&2; exit 2; }
py=/usr/bin/python3
"$py" -c 'import anndata, yaml' 2>/dev/null ||
  { echo "bridge.sh: $py lacks anndata or yaml (Debian python3-anndata python3-yaml; tools/setup.sh installs them)" >&2; exit 1; }
bin="${CLUE_BIN:-$CLUE_ROOT/build/clue}"
[ -x "$bin" ] || clue_build "$CLUE_ROOT/build"
name="$(basename "$config" .yaml)"
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$(( $(nproc) / np > 0 ? $(nproc) / np : 1 ))}"

# run DIR [--set ...]: train, embed the test cells, evaluate (DIR/eval.json).
run() {
  local dir="$1"; shift
  if [ "$reuse" = 1 ] && [ -f "$dir/eval.json" ]; then
    :
  else
    mpirun -np "$np" "$bin" train --config "$config" "${sets[@]}" "$@" \
      --set output.dir="$dir" --overwrite --quiet >"$dir.log" 2>&1 ||
      { echo "bridge.sh: training failed, see $dir.log" >&2; tail -3 "$dir.log" >&2; exit 1; }
    local mods a b
    mods=$(sed -n 's/^    \([A-Za-z0-9_-]*\):$/\1/p' "$dir/config.yaml" | head -2)
    a=$(echo "$mods" | sed -n 1p); b=$(echo "$mods" | sed -n 2p)
    rm -rf "$dir/embed"
    mpirun -np "$np" "$bin" embed --checkpoint "$dir/checkpoint.h5" --out "$dir/embed" \
      --cells test >>"$dir.log" 2>&1
    mpirun -np "$np" "$bin" eval "$dir/embed/$a.h5ad" "$dir/embed/$b.h5ad" \
      --json "$dir/eval.json" >>"$dir.log" 2>&1
  fi
}

# figures DIR: "FOSCTTM match" of a run.
figures() {
  printf '%s %s\n' "$(sed -n 's/.*"foscttm": \([0-9.e-]*\).*/\1/p' "$1/eval.json")" \
    "$(sed -n 's/.*"match": \([0-9.e-]*\).*/\1/p' "$1/eval.json")"
}

# files DIR: --set arguments pointing every modality at DIR/<mod>.h5ad.
files() {
  local m
  for m in $(sed -n 's/^    \([A-Za-z0-9_-]*\):$/\1/p' "$paired_dir/config.yaml"); do
    printf -- '--set\ndata.modalities.%s.file=%s/%s.h5ad\n' "$m" "$1" "$m"
  done
}

report() { printf '%-12s %-8s seed %-3s %-10s FOSCTTM %.4f  match %.4f\n' "$name" "$1" "$2" "$3" $4; }

for seed in $seeds; do
  paired_dir="$out/$name/seed$seed/paired"
  mkdir -p "$(dirname "$paired_dir")"
  run "$paired_dir" --set train.seed="$seed"
  report all "$seed" paired "$(figures "$paired_dir")"
  for f in $fractions; do
    base="$out/$name/b$f/seed$seed"
    mkdir -p "$base"
    [ -f "$base/data/cells.tsv" ] && [ "$reuse" = 1 ] ||
      "$py" "$here/bridge_split.py" "$paired_dir/config.yaml" "$base/data" --bridge "$f" \
        --seed "$seed" >"$base/data.log"
    mapfile -t fb < <(files "$base/data/bridge")
    mapfile -t fu < <(files "$base/data/unimodal")
    run "$base/bridge" --set train.seed="$seed" "${fb[@]}"
    report "b$f" "$seed" bridge "$(figures "$base/bridge")"
    run "$base/unimodal$tag" --set train.seed="$seed" "${fu[@]}"
    report "b$f" "$seed" "unimodal$tag" "$(figures "$base/unimodal$tag")"
  done
done

"$py" - "$out/$name" "$name" "$tag" "$seeds" "$fractions" <<'PY'
import json, os, sys
root, name, tag, seeds, fractions = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(), sys.argv[5].split()
def ev(path):
    with open(os.path.join(path, "eval.json")) as f:
        e = json.load(f)
    return e["foscttm"], e["match"]
def gap(b, u, p):
    return (b - u) / (b - p) if b != p else float("nan")
mean = lambda v: sum(v) / len(v)
summary = {"set": name, "seeds": [int(s) for s in seeds], "tag": tag.lstrip("-"), "fractions": {}}
paired = [ev(f"{root}/seed{s}/paired") for s in seeds]
for fr in fractions:
    b = [ev(f"{root}/b{fr}/seed{s}/bridge") for s in seeds]
    u = [ev(f"{root}/b{fr}/seed{s}/unimodal{tag}") for s in seeds]
    with open(f"{root}/b{fr}/seed{seeds[0]}/data.log") as f:
        cells = f.read().split(" (seed")[0]
    row = {"cells": cells}
    for cond, v in (("paired", paired), ("bridge", b), ("unimodal", u)):
        row[cond] = {"foscttm": mean([x[0] for x in v]), "match": mean([x[1] for x in v]),
                     "foscttm_seeds": [x[0] for x in v], "match_seeds": [x[1] for x in v]}
    row["gap_closed"] = gap(row["bridge"]["foscttm"], row["unimodal"]["foscttm"], row["paired"]["foscttm"])
    row["gap_closed_seeds"] = [gap(b[i][0], u[i][0], paired[i][0]) for i in range(len(seeds))]
    summary["fractions"][fr] = row
    print(f"{name}  bridge {fr} ({cells}), mean of {len(seeds)} seeds (min-max):")
    for cond in ("paired", "bridge", "unimodal"):
        r = row[cond]
        fs, ms = r["foscttm_seeds"], r["match_seeds"]
        label = cond + (tag if cond == "unimodal" else "")
        print(f"  {label:<18} FOSCTTM {r['foscttm']:.4f} ({min(fs):.4f}-{max(fs):.4f})"
              f"  match {r['match']:.4f} ({min(ms):.4f}-{max(ms):.4f})")
    gs = " ".join(f"{g:+.2f}" for g in row["gap_closed_seeds"])
    print(f"  gap closed {row['gap_closed']:+.3f}   (seeds: {gs})")
out = f"{root}/summary{tag}.json"
with open(out + ".tmp", "w") as f:
    json.dump(summary, f, indent=1)
os.replace(out + ".tmp", out)
print(f"  figures: {out}")
PY
