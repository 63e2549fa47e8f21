#!/bin/bash
# test_info.sh — `clue info` on every file of every shared data set: exit 0,
# the shape and X lines, raw counts recognised (the data sets hold counts),
# the split column with its train/test counts. Also on 2 ranks for one file
# (same output as 1 rank).
set -u
: "${CLUE_BIN:?}"
DATA="${CLUE_SHARED_DATA:-}"
if [ -z "$DATA" ] || [ ! -d "$DATA" ]; then
  echo "SKIP: shared data not found (CLUE_SHARED_DATA=$DATA)"
  exit 77
fi
TMP="${CLUE_TEST_TMP:-$(mktemp -d)}"
mkdir -p "$TMP"
fails=0 files=0
for f in "$DATA"/*/*.h5ad; do
  [ -e "$f" ] || continue
  files=$((files + 1))
  out="$TMP/$(basename "$(dirname "$f")")_$(basename "$f").txt"
  if ! "$CLUE_BIN" info "$f" > "$out" 2> "$out.err"; then
    echo "FAIL $f: $(cat "$out.err")"
    fails=$((fails + 1))
    continue
  fi
  for want in "shape       " "X           csr_matrix, float32" "raw counts: yes" \
              "  split" "train (" "test (" "var names   "; do
    if ! grep -qF -- "$want" "$out"; then
      echo "FAIL $f: no '$want' in the output:"
      sed 's/^/     /' "$out"
      fails=$((fails + 1))
      continue 2
    fi
  done
  echo "ok   $f: $(grep '^shape' "$out" | sed 's/^shape *//')"
done
[ $files -gt 0 ] || { echo "SKIP: no .h5ad files in $DATA"; exit 77; }

if [ -n "${CLUE_MPIEXEC:-}" ]; then
  one=$(ls "$DATA"/*/*.h5ad | head -1)
  "$CLUE_BIN" info "$one" > "$TMP/np1.txt" 2>&1
  timeout 120 $CLUE_MPIEXEC -n 2 "$CLUE_BIN" info "$one" > "$TMP/np2.txt" 2>&1
  if cmp -s "$TMP/np1.txt" "$TMP/np2.txt"; then
    echo "ok   2 ranks print the same as 1"
  else
    echo "FAIL 2 ranks differ from 1:"
    diff "$TMP/np1.txt" "$TMP/np2.txt" | head -20
    fails=$((fails + 1))
  fi
fi
[ $fails -eq 0 ] || { echo "$fails file(s) failed"; exit 1; }
echo "all $files files described"
