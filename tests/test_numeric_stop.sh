#!/usr/bin/env bash
# test_numeric_stop.sh — a run that diverges (learning rate 1e10 on a small
# simulated data set) never damages what is on disk:
#  1. train.on_nan=stop (the default): exit status 3, one error line naming the
#     tensor whose gradient overflowed and the step; the checkpoint of an earlier
#     run in the same folder is byte-for-byte unchanged, no temporary is left, and
#     `clue embed` still reads it;
#  2. train.on_nan=skip: each bad step is dropped with a warning and the learning
#     rate halved; the run finishes with a finite checkpoint that `clue embed`
#     reads, and log.jsonl shows the reduced learning rate.
set -u
: "${CLUE_BIN:?}"
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-numeric-stop}"
rm -rf "$tmp"; mkdir -p "$tmp"; cd "$tmp" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

"$CLUE_BIN" simulate --out sim --cells 300 --rna 200 --adt 30 --quiet >/dev/null ||
  fail "simulate"
cat > c.yaml <<'EOF'
data:
  modalities:
    rna: {file: sim/rna.h5ad, n_components: 20}
    adt: {file: sim/adt.h5ad, n_components: 10}
  batch_key: batch
model: {latent_dim: 8, encoder: {depth: 1, width: 32}, decoder: {depth: 1, width: 32},
        discriminator: {depth: 1, width: 16}}
train: {batch_size: 64, max_epochs: 5, checkpoint_seconds: 0}
output: {dir: run}
EOF

# a good run leaves a checkpoint
"$CLUE_BIN" train --config c.yaml --set train.max_epochs=2 --quiet || fail "good run"
sum_before=$(md5sum < run/checkpoint.h5)

# 1. divergence, on_nan=stop: exit 3, checkpoint untouched
"$CLUE_BIN" train --config c.yaml --set train.lr=1e10 --overwrite --quiet >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 3 ] || { cat err.txt; fail "on_nan=stop: exit status $rc, expected 3"; }
[ "$(wc -l < err.txt)" -eq 1 ] || { cat err.txt; fail "on_nan=stop: not one error line"; }
grep -q "clue train: error: epoch 1, step 1: gradient of [a-z]" err.txt ||
  { cat err.txt; fail "on_nan=stop: the message does not name the step and tensor"; }
grep -q "training stopped before its first checkpoint" err.txt ||
  { cat err.txt; fail "on_nan=stop: the message does not say what happened to the checkpoint"; }
[ "$(md5sum < run/checkpoint.h5)" = "$sum_before" ] || fail "on_nan=stop: checkpoint changed"
ls run | grep -q 'tmp\.' && fail "on_nan=stop: temporary files left"
"$CLUE_BIN" embed --checkpoint run/checkpoint.h5 --out emb1 >/dev/null 2>&1 ||
  fail "embed after on_nan=stop"
echo "ok: on_nan=stop -> exit 3, one line naming the tensor, checkpoint unchanged"

# 2. the same with on_nan=skip: steps dropped, finite result
"$CLUE_BIN" train --config c.yaml --set train.lr=1e10 --set train.on_nan=skip --overwrite \
  --quiet >out.txt 2>err.txt
rc=$?
[ "$rc" -eq 0 ] || { tail -3 err.txt; fail "on_nan=skip: exit status $rc"; }
grep -q "step skipped (train.on_nan=skip), learning rate halved to" err.txt ||
  fail "on_nan=skip: no warning about the skipped steps"
skipped=$(grep -c 'step skipped' err.txt)
last_lr=$(tail -1 run/log.jsonl | sed -n 's/.*"lr": \([0-9.e+-]*\),.*/\1/p')
awk -v x="$last_lr" 'BEGIN{exit !(x > 0 && x < 1e10)}' || fail "on_nan=skip: lr $last_lr not reduced"
"$CLUE_BIN" embed --checkpoint run/checkpoint.h5 --out emb2 >/dev/null 2>err.txt ||
  { cat err.txt; fail "embed after on_nan=skip"; }
echo "ok: on_nan=skip -> $skipped skipped steps, lr ends at $last_lr, checkpoint embeddable"
