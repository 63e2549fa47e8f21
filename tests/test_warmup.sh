#!/usr/bin/env bash
# test_warmup.sh — train.lr_warmup: the rate of step s (0-based) of the first N
# is train.lr · (s + 1) / N, then train.lr: log.jsonl's rate of each epoch (its
# last step's) follows the ramp; without warm-up the rate is train.lr from the
# first step; the first epochs' losses differ from a run without warm-up and a
# warm-up of 1 step is no warm-up (identical losses). A global batch above 512
# (the largest measured to keep quality) gets one warning line; 512 none.
set -u
: "${CLUE_BIN:?}"
PY=/usr/bin/python3
tmp="${CLUE_TEST_TMP:-/tmp/clue-test-warmup}"
rm -rf "$tmp"; mkdir -p "$tmp"; cd "$tmp" || exit 1
fail() { echo "FAIL: $*"; exit 1; }

"$CLUE_BIN" simulate --out sim --cells 300 --rna 200 --adt 30 --quiet >/dev/null || fail "simulate"
cat > c.yaml <<'YAML'
data:
  modalities:
    rna: {file: sim/rna.h5ad, n_components: 20}
    adt: {file: sim/adt.h5ad, n_components: 10}
  batch_key: batch
model: {latent_dim: 8, encoder: {depth: 1, width: 32}, decoder: {depth: 1, width: 32},
        discriminator: {depth: 1, width: 16}}
train: {batch_size: 64, max_epochs: 6, early_stopping: false, checkpoint_seconds: 0}
YAML
for w in 0 1 12; do
  "$CLUE_BIN" train --config c.yaml --set train.lr_warmup=$w --set output.dir=run$w --quiet ||
    fail "training with train.lr_warmup=$w"
done
"$PY" - <<'PY' || fail "the learning rates or losses"
import json
def log(w):
    return [json.loads(l) for l in open(f"run{w}/log.jsonl") if l.strip()]
lr = 2e-3
for e in log(12):
    want = lr * min(1, e["step"] / 12)
    assert abs(e["lr"] - want) < 1e-9 * lr, (e["epoch"], e["step"], e["lr"], want)
assert log(12)[0]["step"] < 12 and log(12)[-1]["step"] > 12, "the ramp is not covered"
assert all(abs(e["lr"] - lr) < 1e-12 for e in log(0))
assert [e["train"] for e in log(0)] == [e["train"] for e in log(1)], "warm-up of 1 step"
assert log(0)[0]["train"] != log(12)[0]["train"], "warm-up changes nothing"
print("ok")
PY
for b in 512 1024; do
  "$CLUE_BIN" train --config c.yaml --set train.batch_size=$b --set train.max_epochs=1 \
    --set output.dir=batch$b --quiet 2> batch$b.err || { cat batch$b.err; fail "batch $b"; }
done
[ ! -s batch512.err ] || fail "a warning at batch 512: $(cat batch512.err)"
[ "$(grep -c 'warning: train.batch_size 1024 is above 512' batch1024.err)" -eq 1 ] ||
  fail "no single warning at batch 1024: $(cat batch1024.err)"
echo "ok: train.lr_warmup ramps the rate linearly over its steps; batches above 512 are warned of"
