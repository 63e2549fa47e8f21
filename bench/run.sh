#!/usr/bin/env bash
# bench/run.sh — the training-speed benchmark suite (never run by ctest):
#   1. a training step (discriminator + generator step, allreduce, RMSprop) at the
#      competition shapes (multiome, cite, large) on 1 rank x 1 OpenBLAS thread,
#      1 rank x 2 threads, 2 ranks (strong and weak scaling) and 4 ranks
#      (oversubscribed on a 2-core machine, reported as such); the 2-rank
#      speed-ups again step by step (bench_train --interleave);
#   2. dataset loading of 1 million simulated cells (RNA 2,000 + ADT 134) from
#      .h5ad with parallel HDF5 on 1 and 2 ranks;
#   3. one epoch of `clue train` on those cells on 2 ranks.
# Writes one JSON object per run (results.jsonl), the markdown tables
# (results.md) and every program's output into the output folder.
#
#   bench/run.sh [--out DIR] [--build DIR] [--quick] [--no-data] [--no-epoch]
#                [--no-steps] [--before BENCH_TRAIN]
#
# --quick: fewer steps and no data part (a smoke run of a few minutes);
# --no-data: skip parts 2 and 3 (they need ~3 GB of disk and ~15 minutes);
# --no-steps: only parts 2 and 3; --no-epoch: part 2 without part 3.
# --before B: also run the 1-rank and 2-rank step figures with B, a bench_train
#   binary linked with an older network code, labelled before-* (e.g. a copy of
#   this tree with the older src/nn/{likelihood,activation,optim}.c; its 2-rank
#   run sums gradients with MPI_Allreduce, as the older trainer did).
# The machine's load (uptime) is recorded before and after: run it on an idle
# machine, the figures are only comparable within one run.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/.." && pwd)"
out="$root/runs/bench-$(date +%Y%m%d-%H%M%S)"
build="$root/build"
quick=0; data=1; epoch=1; steps=1; before=
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --build) build="$2"; shift 2 ;;
    --quick) quick=1; data=0; shift ;;
    --no-data) data=0; shift ;;
    --no-epoch) epoch=0; shift ;;
    --no-steps) steps=0; shift ;;
    --before) before="$2"; shift 2 ;;
    *) echo "run.sh: unknown option $1 (see the header of bench/run.sh)" >&2; exit 2 ;;
  esac
done
. "$root/tools/setup.sh"
clue_mpi_env
if [ ! -x "$build/bench_train" ] || [ ! -x "$build/clue" ]; then
  echo "building clue and bench_train in $build"
  clue_build "$build"
fi
mkdir -p "$out"
out=$(cd "$out" && pwd) # absolute: the generated config's paths are read relative to it
build=$(cd "$build" 2>/dev/null && pwd || echo "$build")
json="$out/results.jsonl"; md="$out/results.md"; log="$out/output.txt"
: >"$json"
cores=$(nproc)

say() { echo "$@" | tee -a "$log"; }

{
  echo "# clue training benchmark"
  echo
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'); git $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "- machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $cores cores, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo "- OpenBLAS: $(dpkg-query -W -f '${Package} ${Version}\n' 'libopenblas0*' 2>/dev/null | awk 'NF == 2' | paste -sd, - || echo unknown)"
  echo "- kernels: $("$build/clue" --version 2>/dev/null | sed -n 's/^clue [^;]*; //p' || echo unknown)"
  echo "- load before: $(uptime | sed 's/.*load average: //')"
  echo
  echo "## Training step (synthetic data, B = 128)"
  echo
  echo "ranks×threads: MPI ranks × OpenBLAS threads per rank. split: % of the step in GEMM /"
  echo "likelihood (element-wise NB/Bernoulli + per-(feature, batch) terms) / other compute /"
  echo "communication (gradient allreduce + BatchNorm and loss reductions) / minibatch fill."
  echo "sgemm bound: the step's own GEMM calls replayed alone; % of sgemm = bound / step."
  echo
  echo "| run | shape | ranks×threads | scaling | global B | s/step | cells/s | GFLOP/step | GFLOP/s | sgemm bound s | % of sgemm | split gemm/lik/other/comm/io % | allreduce MB/step/rank | peak RSS MiB/rank | vs PyTorch |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$md"

# bench NAME RANKS THREADS ARGS... : one bench_train run (BENCH: the binary)
bench() {
  local name="$1" np="$2" th="$3"; shift 3
  local bin="${BENCH:-$build/bench_train}"
  local flags=()
  [ "$np" -gt "$cores" ] && flags+=(--oversubscribe)
  # Open MPI binds each rank to one core when ranks <= 2: OpenBLAS would then see
  # one core and start one thread
  [ "$th" -gt 1 ] && flags+=(--bind-to none)
  say ""
  say "### $name: $np rank(s) x $th thread(s) $*"
  OPENBLAS_NUM_THREADS="$th" OMP_NUM_THREADS="$th" mpirun "${flags[@]}" -np "$np" \
    "$bin" --label "$name" --json "$json" --md "$md" "$@" 2>&1 | tee -a "$log"
}

# pair NAME RANKS THREADS ARGS...: the run, then (with --before) the same run with
# the older binary right after it, so that both see the same machine.
pair() {
  local name="$1" np="$2" th="$3"; shift 3
  bench "$name" "$np" "$th" "$@"
  if [ -n "$before" ]; then
    local extra=()
    [ "$np" -gt 1 ] && extra+=(--mpi-allreduce)
    BENCH="$before" bench "before-$name" "$np" "$th" "$@" "${extra[@]}"
  fi
}

# concurrent NAME ARGS...: two independent 1-rank runs at once, pinned to cores 0 and
# 1, no communication between them: what two ranks could gain at best on this
# machine when the cores share caches and memory bandwidth.
concurrent() {
  local name="$1"; shift
  local bin="${BENCH:-$build/bench_train}"
  if [ "$cores" -lt 2 ] || ! command -v taskset >/dev/null; then
    say "skipping $name (needs 2 cores and taskset)"; return 0
  fi
  say ""
  say "### $name: two independent 1-rank runs at once on cores 0 and 1 $*"
  for c in 0 1; do
    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 taskset -c "$c" "$bin" --label "$name-core$c" \
      --json "$out/.c$c.json" --md "$out/.c$c.md" "$@" >"$out/.c$c.txt" 2>&1 &
  done
  wait
  for c in 0 1; do
    cat "$out/.c$c.txt" >>"$log"; cat "$out/.c$c.json" >>"$json"; cat "$out/.c$c.md" >>"$md"
    rm -f "$out/.c$c.txt" "$out/.c$c.json" "$out/.c$c.md"
  done
}

# Part 1: the training step.
run_steps() {
  if [ "$quick" = 1 ]; then ms=4; ls=2; cs=8; else ms=12; ls=5; cs=30; fi
  pair multiome-1x1 1 1 --shape multiome --steps "$ms"
  bench multiome-1x2 1 2 --shape multiome --steps "$ms"
  bench multiome-1x1-B64 1 1 --shape multiome --steps "$ms" --batch 64
  concurrent multiome-2proc-B64 --shape multiome --steps "$ms" --batch 64 --no-replay
  pair multiome-2x1 2 1 --shape multiome --steps "$ms"
  bench multiome-2x1-mpi 2 1 --shape multiome --steps "$ms" --mpi-allreduce
  bench multiome-2x1-nosplit 2 1 --shape multiome --steps "$ms" --no-split
  bench multiome-2x1-weak 2 1 --shape multiome --steps "$ms" --weak
  bench multiome-4x1-oversubscribed 4 1 --shape multiome --steps "$ms" --no-replay
  pair cite-1x1 1 1 --shape cite --steps "$cs"
  bench cite-2x1 2 1 --shape cite --steps "$cs"
  pair large-1x1 1 1 --shape large --steps "$ls"
  bench large-1x2 1 2 --shape large --steps "$ls"
  bench large-2x1 2 1 --shape large --steps "$ls"
  bench large-2x1-nosplit 2 1 --shape large --steps "$ls" --no-split

  # The gradient sums alone (multiome: 55.9 MB, large: 155.4 MB per step and rank).
  {
    echo
    echo "Gradient sums alone (all ranks at once):"
    echo
    echo "| run | ranks | MB | how | median ms | min ms |"
    echo "|---|---|---|---|---|---|"
  } >>"$md"
  bench sum-multiome 2 1 --allreduce 55.9
  bench sum-large 2 1 --allreduce 155.4

  # Scaling efficiencies from the JSON lines.
  step_of() { sed -n "s/.*\"label\": \"$1\".*\"step_s_median\": \([0-9.e+-]*\).*/\1/p" "$json" | head -1; }
  {
    echo
    echo "Scaling (multiome, same machine, same run):"
    echo
    t1=$(step_of multiome-1x1); t2=$(step_of multiome-2x1); tw=$(step_of multiome-2x1-weak)
    t12=$(step_of multiome-1x2); t4=$(step_of multiome-4x1-oversubscribed)
    t64=$(step_of multiome-1x1-B64); tm=$(step_of multiome-2x1-mpi)
    tc0=$(step_of multiome-2proc-B64-core0); tc1=$(step_of multiome-2proc-B64-core1)
    tn=$(step_of multiome-2x1-nosplit)
    awk -v t1="$t1" -v t2="$t2" -v tw="$tw" -v t12="$t12" -v t4="$t4" -v t64="$t64" -v tm="$tm" -v tn="$tn" -v tc0="${tc0:-0}" -v tc1="${tc1:-0}" 'BEGIN {
      printf "- strong scaling, 2 ranks x 1 thread vs 1 x 1: speed-up %.2fx, efficiency %.0f %%\n", t1 / t2, 100 * t1 / (2 * t2);
      printf "- the same with MPI_Allreduce for the gradient sums: speed-up %.2fx\n", t1 / tm;
      printf "- the same with whole output layers on each rank (--no-split, every layer on the rank'"'"'s own 64 rows): speed-up %.2fx\n", t1 / tn;
      printf "- one rank with half the batch (64 rows, the work of one of 2 ranks without the split): %.3f s = %.2f of the 128-row step (the bound on the --no-split speed-up without communication: %.2fx)\n", t64, t64 / t1, t1 / t64;
      if (tc0 > 0) { tc = tc0 > tc1 ? tc0 : tc1;
        printf "- two independent 64-row runs at once, one per core, no communication: %.3f s per step, %.2f of the 64-row step alone (the contention of the two cores); the bound on the --no-split speed-up on this machine: %.2fx\n", tc, tc / t64, t1 / tc }
      printf "- 1 rank x 2 OpenBLAS threads vs 1 x 1: speed-up %.2fx\n", t1 / t12;
      printf "- weak scaling (128 rows per rank), 2 ranks: efficiency %.0f %%\n", 100 * t1 / tw;
      printf "- 4 ranks oversubscribed on %d cores (strong): speed-up %.2fx (not a scaling figure)\n", '"$cores"', t1 / t4 }'
    lt1=$(step_of large-1x1); lt2=$(step_of large-2x1); lt12=$(step_of large-1x2)
    ltn=$(step_of large-2x1-nosplit)
    awk -v t1="$lt1" -v t2="$lt2" -v t12="$lt12" -v tn="$ltn" 'BEGIN {
      printf "- large: 2 ranks speed-up %.2fx (efficiency %.0f %%; --no-split %.2fx), 1 rank x 2 threads %.2fx\n", t1 / t2, 100 * t1 / (2 * t2), t1 / tn, t1 / t12 }'
    ct1=$(step_of cite-1x1); ct2=$(step_of cite-2x1)
    awk -v t1="$ct1" -v t2="$ct2" 'BEGIN { printf "- cite: 2 ranks speed-up %.2fx\n", t1 / t2 }'
    if [ -n "$before" ]; then
      for r in multiome-1x1 multiome-2x1 cite-1x1 large-1x1; do
        awk -v a="$(step_of "$r")" -v b="$(step_of "before-$r")" -v r="$r" \
          'BEGIN { printf "- %s: %.3f s/step now, %.3f s before: %.2fx faster\n", r, a, b, b / a }'
      done
    fi
  } >>"$md"

  # The same speed-ups step by step: one-rank and two-rank steps in turn, so that
  # the host's drift cancels in each pair (bench_train --interleave).
  if [ "$cores" -ge 2 ]; then
    if [ "$quick" = 1 ]; then ip=6; lp=3; cp=10; else ip=40; lp=15; cp=100; fi
    {
      echo
      echo "Step by step (\`bench_train --interleave\`: a one-rank step and a two-rank step in"
      echo "turn, or turns of several steps with the first not timed; the median of the"
      echo "pairs' ratios, p10–p90; sgemm: what the two cores at once do against one, in the"
      echo "same pairs):"
      echo
      echo "| run | shape | ranks | pairs | steps per turn | 1 rank s/step | 2 ranks s/step | speed-up | sgemm 2 cores / 1 |"
      echo "|---|---|---|---|---|---|---|---|---|"
    } >>"$md"
    bench interleave-multiome 2 1 --shape multiome --interleave --steps "$ip"
    bench interleave-large 2 1 --shape large --interleave --steps "$lp"
    bench interleave-cite 2 1 --shape cite --interleave --steps "$cp"
    bench interleave-cite-turn4 2 1 --shape cite --interleave --turn 4 --steps "$cp"
  fi
}
[ "$steps" = 1 ] && run_steps

if [ "$data" = 1 ]; then
  avail=$(df -BG --output=avail "$out" | tail -1 | tr -dc 0-9)
  if [ "$avail" -lt 8 ]; then
    say "only ${avail} GB free in $out: skipping the 1-million-cell part (needs 8 GB)"
  else
    sim="$out/sim1m"
    say ""
    say "### simulating 1,000,000 cells (RNA 2,000 genes + ADT 134 proteins) into $sim"
    t0=$(date +%s.%N)
    OPENBLAS_NUM_THREADS=1 mpirun -np 2 "$build/clue" simulate --cells 1000000 --rna 2000 \
      --adt 134 --out "$sim" --quiet 2>&1 | tee -a "$log"
    t1=$(date +%s.%N)
    size=$(du -sm "$sim" | cut -f1)
    cat >"$out/sim1m.yaml" <<EOF
# 1 million simulated CITE-seq cells: every cell trains (no split key), 10 %
# held out for validation; CITE hyper-parameters of configs/cite.yaml.
version: 1
data:
  modalities:
    rna: {file: $sim/rna.h5ad, likelihood: nb, preprocess: pca, normalize: log1p, features: auto, n_components: 100}
    adt: {file: $sim/adt.h5ad, likelihood: nb, preprocess: pca, normalize: clr, features: auto, n_components: 100}
  batch_key: batch
model:
  latent_dim: 20
  encoder: {depth: 2, width: 512}
  decoder: {depth: 1, width: 128}
  discriminator: {depth: 2, width: 128}
  dropout: 0.2
loss: {data: 1.0, kl: 1.0, align: 2.0, cross: 2.0, cos: 1.0}
train: {batch_size: 128, lr: 2.0e-3, max_epochs: 1, val_split: 0.1, seed: 0}
output: {dir: $out/train1m}
EOF
    {
      echo
      echo "## 1,000,000 simulated cells (RNA 2,000 + ADT 134, $size MB of .h5ad; simulated in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", b - a}') s on 2 ranks)"
      echo
      echo "| load | ranks | cells | s | cells/s | cells/s/rank | MB/s | metadata bytes per local cell (fullest rank) | peak RSS MiB/rank |"
      echo "|---|---|---|---|---|---|---|---|---|"
    } >>"$md"
    for np in 1 2; do
      say ""
      say "### clue_dataset_load of 1,000,000 cells on $np rank(s)"
      OPENBLAS_NUM_THREADS=1 mpirun -np "$np" "$build/bench_train" --load "$out/sim1m.yaml" \
        --label "load-${np}rank" --json "$json" --md "$md" 2>&1 | tee -a "$log"
    done
    if [ "$epoch" = 1 ]; then
      say ""
      say "### clue train, one epoch of 1,000,000 cells on 2 ranks x 1 thread"
      t0=$(date +%s.%N)
      OPENBLAS_NUM_THREADS=1 mpirun -np 2 /usr/bin/time -f "rank peak RSS %M KB, %e s" \
        "$build/clue" train --config "$out/sim1m.yaml" --overwrite 2>&1 | tee "$out/train1m.txt" | tee -a "$log"
      t1=$(date +%s.%N)
      prep=$(sed -n 's/^prep \([a-z]*\):.*, \([0-9.]*\) s$/\1 \2 s/p' "$out/train1m.txt" | paste -sd, -)
      ep=$(sed -n 's/.*"seconds": \([0-9.]*\), "cells_per_s": \([0-9.]*\).*/\1 s, \2 cells\/s/p' "$out/train1m/log.jsonl" | tail -1)
      rss=$(sed -n 's/rank peak RSS \([0-9]*\) KB.*/\1/p' "$out/train1m.txt" | sort -n | tail -1)
      {
        echo
        echo "One epoch of \`clue train\` on 2 ranks x 1 thread (900,000 cells for steps, 100,000 for validation):"
        echo "total $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.0f", b - a}') s (load, preprocessing, epoch, validation, checkpoint);"
        echo "preprocessing fit: $prep; epoch (steps + validation): $ep; peak RSS per rank $((rss / 1024)) MiB."
      } >>"$md"
    fi
    rm -rf "$sim" "$out/train1m/checkpoint.h5"
    say "removed $sim"
  fi
fi
echo >>"$md"
echo "- load after: $(uptime | sed 's/.*load average: //')" >>"$md"
say ""
say "results: $md, $json"
cat "$md"
