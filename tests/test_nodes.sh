#!/usr/bin/env bash
# CLUE_TEST_SLOW CLUE_TEST_TIMEOUT: 600 (ctest starts it early, beside the short tests)
# test_nodes.sh — training on ranks that span several (emulated) nodes:
# CLUE_RANKS_PER_NODE=n makes clue treat ranks r with the same r / n as one
# node (no shared-memory window between such groups, only MPI), so that the
# layouts of a cluster run on one machine. On bmmc_cite_600:
#  1. the first line of clue train and run.json say the layout: 2 nodes × 2
#     ranks (the hybrid layout: layers split within each node, slices summed
#     across), 2 + 1 ranks and 4 × 1 (the whole-model path);
#  2. the losses of the first step agree with 1 rank to 1e-4 (relative) and
#     those after three epochs to 2e-2 ("What clue guarantees"), on 4 ranks as
#     2 × 2, 3 ranks as 2 + 1 and 4 ranks as 4 × 1;
#  3. a run stopped by SIGTERM (to one rank) on 2 × 2, resumed and stopped
#     again on 4 × 1 and finished on one real node ends with total losses
#     (generator, discriminator, joint cross) within 2e-2 of the uninterrupted
#     1-rank run (after 60 steps single terms drift apart by floating-point
#     order alone);
#  4. a rank killed on one emulated node ends the whole job (non-zero exit, no
#     rank left behind, within 30 s).
set -u
PY=/usr/bin/python3
data="${CLUE_SHARED_DATA:-}/bmmc_cite_600"
if [ ! -f "$data/rna.h5ad" ]; then echo "SKIP: shared data set bmmc_cite_600 not found"; exit 77; fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-nodes}"; rm -rf "$tmp"; mkdir -p "$tmp"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
fail() { echo "FAIL: $*"; exit 1; }
train() { # np ranks_per_node(0: real) out steps [extra...]
  local np="$1" per="$2" out="$3" steps="$4"; shift 4
  local env=()
  [ "$per" -gt 0 ] && env=(-x "CLUE_RANKS_PER_NODE=$per")
  $mpi "${env[@]}" -n "$np" "$CLUE_BIN" train --config "$CLUE_SOURCE_DIR/configs/cite.yaml" \
    --set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad" \
    --set "train.max_steps=$steps" --set "output.dir=$out" "$@"
}
# close A B tol [KEYS]: every loss (or those named in KEYS, comma-separated) of the
# last line of A's and B's log.jsonl agrees to tol (relative)
close() {
  "$PY" - "$1/log.jsonl" "$2/log.jsonl" "$3" "${4:-}" <<'PY'
import json, sys
a, b = (json.loads(open(p).read().strip().splitlines()[-1]) for p in sys.argv[1:3])
tol, keys = float(sys.argv[3]), [k for k in sys.argv[4].split(",") if k]
assert a["step"] == b["step"], (a["step"], b["step"])
for part in ("train", "val"):
    for k, x in a[part].items():
        if keys and k not in keys:
            continue
        y = b[part][k]
        assert abs(x - y) <= tol * max(abs(x), abs(y), 1e-3), f"{part}.{k}: {x} vs {y}"
PY
}

# 1 + 2. layouts and losses: first step, three epochs (3 steps each)
for steps in 1 9; do train 1 0 "$tmp/ref$steps" $steps --quiet || fail "1 rank, $steps steps"; done
for lay in "4 2|2 nodes x 2 ranks, emulated" "3 2|2 nodes of unequal sizes, emulated" \
           "4 1|4 nodes, emulated"; do
  np=${lay%% *} per=${lay#* }; per=${per%%|*} want=${lay#*|}
  train "$np" "$per" "$tmp/l${np}_$per" 1 > "$tmp/l${np}_$per.out" || fail "$np ranks as $per per node"
  grep -q "on $np ranks ($want" "$tmp/l${np}_$per.out" ||
    fail "the first line does not say $want: $(grep 'training on' "$tmp/l${np}_$per.out")"
  grep -q "\"layout\": \" ($want" "$tmp/l${np}_$per/run.json" || fail "run.json layout ($np, $per)"
  close "$tmp/ref1" "$tmp/l${np}_$per" 1e-4 || fail "first step on $np ranks as $per per node"
  train "$np" "$per" "$tmp/e${np}_$per" 9 --quiet || fail "three epochs on $np ranks as $per per node"
  close "$tmp/ref9" "$tmp/e${np}_$per" 2e-2 || fail "three epochs on $np ranks as $per per node"
  echo "ok: $np ranks, $per per node ($want): first step within 1e-4, three epochs within 2e-2"
done
train 2 0 "$tmp/real" 1 > "$tmp/real.out" || fail "2 ranks on one real node"
grep -q "on 2 ranks (one node" "$tmp/real.out" || fail "one real node: $(grep 'training on' "$tmp/real.out")"

# 3. stopped on 2 x 2, resumed on 4 x 1, then on one real node
train 1 0 "$tmp/whole" 60 --quiet || fail "uninterrupted run"
train 4 2 "$tmp/moved" 60 --quiet --set train.checkpoint_seconds=0 > /dev/null 2>&1 & job=$!
for _ in $(seq 1 600); do [ -s "$tmp/moved/log.jsonl" ] && break; sleep 0.1; done
rank_pids() { pgrep -f "output.dir=$1" | while read -r p; do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = clue ] && echo "$p"; done; }
kill -TERM "$(rank_pids "$tmp/moved" | tail -1)" # one rank: every rank stops
wait "$job"; rc=$?
[ "$rc" -eq 75 ] || fail "SIGTERM on 2 x 2: exit $rc, expected 75"
lines=$(grep -c . "$tmp/moved/log.jsonl")
train 4 1 "$tmp/moved" 60 --quiet --resume --set train.checkpoint_seconds=0 > /dev/null 2>&1 & job=$!
for _ in $(seq 1 600); do [ "$(grep -c . "$tmp/moved/log.jsonl")" -gt $((lines + 1)) ] && break; sleep 0.1; done
kill -TERM "$(rank_pids "$tmp/moved" | tail -1)"
wait "$job"; rc=$?
[ "$rc" -eq 75 ] || fail "SIGTERM on 4 x 1: exit $rc, expected 75"
train 2 0 "$tmp/moved" 60 --quiet --resume || fail "resume on one node"
grep -q '"starts": 3' "$tmp/moved/run.json" || fail "run.json does not count 3 starts"
# after 60 steps single terms drift apart by floating-point order alone (on one
# node, 1, 2 and 4 ranks differ by up to 7 % in a KL term; measured 2026-12-07);
# the totals stay within 0.1 %
close "$tmp/whole" "$tmp/moved" 2e-2 gen,dsc,joint_cross ||
  fail "the moved run ends away from the uninterrupted one"
echo "ok: stopped on 2 x 2, resumed and stopped on 4 x 1, finished on one node: totals within 2e-2 of 1 rank"

# 4. a rank killed on one emulated node
train 4 2 "$tmp/kill" 100000 --quiet > "$tmp/kill.out" 2> "$tmp/kill.err" & job=$!
for _ in $(seq 1 600); do [ -s "$tmp/kill/log.jsonl" ] && break; sleep 0.1; done
victim=$(rank_pids "$tmp/kill" | sed -n 3p)
[ -n "$victim" ] || fail "no rank process to kill"
kill -KILL "$victim"
for _ in $(seq 1 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$job" 2>/dev/null; then
  pkill -KILL -f "output.dir=$tmp/kill"
  fail "the job still runs 30 s after a rank of the second node was killed"
fi
wait "$job"; rc=$?
[ "$rc" -ne 0 ] || fail "a killed rank: exit status 0"
[ -z "$(pgrep -f "output.dir=$tmp/kill")" ] || fail "rank processes left behind"
echo "ok: a rank killed on the second emulated node ended the job (exit $rc)"
echo "PASS: test_nodes"
