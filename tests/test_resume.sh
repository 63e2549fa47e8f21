#!/usr/bin/env bash
# test_resume.sh — checkpoints survive anything:
#  1. SIGTERM to one rank mid-run: every rank stops at the next step with a
#     checkpoint and exit status 75; `--resume` on the same number of ranks then
#     gives exactly the numbers of a run that was never interrupted;
#  2. SIGKILL of all ranks at random moments, again and again: each restart with
#     --resume continues from the last complete checkpoint, and the finished run
#     has exactly the numbers of the uninterrupted one;
#  3. resuming on another number of ranks (3) finishes with the same losses
#     within the cross-rank tolerance of test_train_ranks (2e-2 relative).
# CLUE_TEST_SLOW
# CLUE_TEST_TIMEOUT: 900
set -u
data="${CLUE_SHARED_DATA:-}/bmmc_cite_600"
if [ ! -f "$data/rna.h5ad" ]; then echo "SKIP: shared data set bmmc_cite_600 not found"; exit 77; fi
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-resume}"; rm -rf "$tmp"; mkdir -p "$tmp"
mpi="${CLUE_MPIEXEC:-mpiexec --oversubscribe}"
fail() { echo "FAIL: $*"; exit 1; }

train() { # dir ranks [extra args...]
  local dir="$1" np="$2"; shift 2
  $mpi -n "$np" "$CLUE_BIN" train --config "$CLUE_SOURCE_DIR/configs/cite.yaml" \
    --set "data.modalities.rna.file=$data/rna.h5ad" --set "data.modalities.adt.file=$data/adt.h5ad" \
    --set train.max_epochs=12 --set train.batch_size=64 --set train.checkpoint_seconds=0 \
    --set "output.dir=$dir" --quiet "$@"
}
# the numbers of a log: drop timing fields
numbers() { sed -e 's/"seconds": [^,]*, //' -e 's/"cells_per_s": [^,]*, //' -e 's/"ranks": [^,]*, //' "$1/log.jsonl"; }

train "$tmp/ref" 2 || fail "reference run"
[ "$(wc -l < "$tmp/ref/log.jsonl")" -eq 12 ] || fail "reference run has $(wc -l < "$tmp/ref/log.jsonl") epochs"

wait_epochs() { # dir n: wait until the log has n lines (or 120 s)
  for _ in $(seq 1 1200); do
    [ -f "$1/log.jsonl" ] && [ "$(wc -l < "$1/log.jsonl")" -ge "$2" ] && return 0
    sleep 0.1
  done
  return 1
}
rank_pids() { pgrep -f "output.dir=$1" | while read -r p; do
  [ "$(cat /proc/$p/comm 2>/dev/null)" = clue ] && echo "$p"; done; }

# 1. SIGTERM to one rank
train "$tmp/term" 2 & job=$!
wait_epochs "$tmp/term" 2 || fail "SIGTERM run did not start"
pid=$(rank_pids "$tmp/term" | tail -1)
[ -n "$pid" ] || fail "no rank process found"
kill -TERM "$pid"
wait "$job"; rc=$?
[ "$rc" -eq 75 ] || fail "SIGTERM: exit status $rc, expected 75"
[ -f "$tmp/term/checkpoint.h5" ] || fail "SIGTERM: no checkpoint"
ls "$tmp/term" | grep -q 'tmp\.' && fail "SIGTERM: temporary files left"
train "$tmp/term" 2 --resume || fail "resume after SIGTERM"
diff <(numbers "$tmp/ref") <(numbers "$tmp/term") >/dev/null || {
  diff <(numbers "$tmp/ref") <(numbers "$tmp/term") | head -5; fail "SIGTERM + resume differs from the uninterrupted run"; }
echo "ok: SIGTERM -> checkpoint, exit 75, resume identical"

# 2. SIGKILL at random moments until the run finishes. Each restart is killed at a
# random moment within about two epochs after it logged a new epoch (so that
# every restart makes progress and the kills land mid-step, mid-epoch or
# mid-checkpoint whatever the speed of the machine), or during its start when
# the random moment comes first.
kills=0
epochs_in() { [ -f "$1/log.jsonl" ] && wc -l < "$1/log.jsonl" || echo 0; }
for attempt in $(seq 1 30); do
  done_epochs=$(epochs_in "$tmp/kill")
  train "$tmp/kill" 2 --resume & job=$!
  if [ $((attempt % 4)) -eq 0 ]; then # now and then, during the start
    sleep "$(awk -v s="$attempt" 'BEGIN{srand(s); printf "%.2f", 0.1 + 0.5*rand()}')"
  else
    wait_epochs "$tmp/kill" $((done_epochs + 1))
    sleep "$(awk -v s="$attempt" 'BEGIN{srand(s); printf "%.3f", 0.3*rand()}')"
  fi
  if kill -0 "$job" 2>/dev/null; then
    for p in $(rank_pids "$tmp/kill"); do kill -KILL "$p" 2>/dev/null; done
    wait "$job" 2>/dev/null
    kills=$((kills + 1))
  else
    wait "$job" && break
    fail "run after $kills kills ended with an error"
  fi
done
train "$tmp/kill" 2 --resume || fail "final resume after kills"
[ "$kills" -ge 2 ] || fail "only $kills kills happened: the test did not test"
diff <(numbers "$tmp/ref") <(numbers "$tmp/kill") >/dev/null || {
  diff <(numbers "$tmp/ref") <(numbers "$tmp/kill") | head -5; fail "kill + resume differs from the uninterrupted run"; }
echo "ok: $kills SIGKILLs, resumed each time, identical to the uninterrupted run"

# 3. SIGTERM, then resume on 3 ranks
train "$tmp/other" 2 & job=$!
wait_epochs "$tmp/other" 3 || fail "run did not start"
kill -USR1 "$(rank_pids "$tmp/other" | head -1)"
wait "$job"; [ $? -eq 75 ] || fail "SIGUSR1: expected exit status 75"
train "$tmp/other" 3 --resume || fail "resume on 3 ranks"
[ "$(wc -l < "$tmp/other/log.jsonl")" -eq 12 ] || fail "resumed run has $(wc -l < "$tmp/other/log.jsonl") epochs"
for key in gen nll_rna nll_adt; do
  a=$(tail -1 "$tmp/ref/log.jsonl" | sed -n "s/.*\"train\": {[^}]*\"$key\": \([0-9.e+-]*\).*/\1/p")
  b=$(tail -1 "$tmp/other/log.jsonl" | sed -n "s/.*\"train\": {[^}]*\"$key\": \([0-9.e+-]*\).*/\1/p")
  awk -v a="$a" -v b="$b" 'BEGIN{d=(a-b)/a; if (d<0) d=-d; exit !(d <= 2e-2)}' ||
    fail "resume on 3 ranks: $key $a vs $b"
done
echo "ok: resumed on 3 ranks within 2e-2 of the uninterrupted 2-rank run"
