#!/bin/bash
# test_bad_inputs.sh — `clue info` on broken and unusual inputs, table-driven:
# each case gives the expected exit status and text that must appear (in
# stderr for errors, stdout otherwise). Errors must be one line. Also runs a
# broken file under 2 MPI ranks (one message, same exit status, no hang).
# The loader's side of the same files is tests/test_bad_inputs.c.
set -u
: "${CLUE_BIN:?}" "${CLUE_SOURCE_DIR:?}"
TMP="${CLUE_TEST_TMP:-$(mktemp -d)}"
FX="$TMP/fixtures"
mkdir -p "$TMP"
if ! /usr/bin/python3 "$CLUE_SOURCE_DIR/tests/h5ad_fixtures.py" "$FX" > "$TMP/fixtures.log" 2>&1; then
  echo "SKIP: cannot write the AnnData fixtures (needs /usr/bin/python3 with anndata, h5py)"
  exit 77
fi

fails=0
# check NAME STATUS TEXT ARGS... : runs clue info ARGS, checks status and text.
check() {
  local name="$1" want="$2" text="$3"
  shift 3
  "$CLUE_BIN" info "$@" > "$TMP/out" 2> "$TMP/err"
  local got=$?
  local where="$TMP/out"
  [ "$want" -ne 0 ] && where="$TMP/err"
  local ok=1
  [ "$got" -eq "$want" ] || ok=0
  grep -qF -- "$text" "$where" || ok=0
  if [ "$want" -ne 0 ] && [ "$(wc -l < "$TMP/err")" -ne 1 ]; then ok=0; fi
  if [ $ok -eq 1 ]; then
    echo "ok   $name"
  else
    echo "FAIL $name: status $got (want $want), expected text: $text"
    sed 's/^/     stderr: /' "$TMP/err"
    tail -3 "$TMP/out" | sed 's/^/     stdout: /'
    fails=$((fails + 1))
  fi
}

#     name                  status  text                                                 args
check "missing file"        1 "cannot open $FX/nope.h5ad: No such file or directory"      "$FX/nope.h5ad"
check "a folder"            1 "it is a folder, not a file"                                 "$FX"
check "not HDF5"            1 "bad_text.h5ad is not an HDF5 file"                          "$FX/bad_text.h5ad"
check "anndata < 0.8"       1 "written by anndata < 0.8; re-save it with a current anndata" "$FX/bad_old.h5ad"
check "unknown encoding"    1 "X has encoding-type 'coo_matrix'; clue reads csr_matrix"    "$FX/bad_coo.h5ad"
check "indptr decreasing"   1 "bad_indptr_decr.h5ad: X/indptr decreases at row 7"          "$FX/bad_indptr_decr.h5ad"
check "indptr vs data"      1 "X/indptr ends at 93 but X/data holds 94 values"             "$FX/bad_indptr_end.h5ad"
check "index out of range"  1 "X/indices holds column 17 in row 19, outside [0, 13)"       "$FX/bad_idx_range.h5ad"
check "shape vs obs/var"    1 "X has shape 41 × 13 but obs has 40 rows and var 13"         "$FX/bad_shape.h5ad"
check "negative counts"     0 "raw counts: no (1 negative)"                                "$FX/bad_negative.h5ad"
check "NaN counts"          0 "raw counts: no (1 NaN/Inf)"                                 "$FX/bad_nan.h5ad"
check "duplicated names"    0 "WARNING: 1 duplicated obs names (first: 'c03' at row 17)"   "$FX/bad_dup.h5ad"
check "no file"             2 "no file given"
check "two files"           2 "one file at a time"                                         a b
check "unknown option"      2 "unknown option '--frob'"                                    --frob "$FX/csr.h5ad"
check "bad --categories"    2 "--categories needs a whole number"                          --categories x "$FX/csr.h5ad"
check "help"                0 "usage: clue info [options] FILE"                            --help
# well-formed layouts are described
check "csr64"               0 "csr_matrix, float64, indptr int64, indices uint16"          "$FX/csr64.h5ad"
check "csc"                 0 "csc_matrix, float32, indptr int32, indices int32"           "$FX/csc.h5ad"
check "dense"               0 "nonzeros: 94 of 520 values read (18.08%)"                   "$FX/dense.h5ad"
check "nullable column"     0 "nint   numeric (integer): min 1, max 39, mean 20, missing (8)" "$FX/csr.h5ad"
check "categories cut"      0 "a (10), ... (+2 more), missing (10)"                        --categories 1 "$FX/csr.h5ad"
check "fixed-length strings" 0 "obs names   c00, c01, c02, ... (40)"                       "$FX/fixedstr.h5ad"
check "h5mu obsmap"         0 "pairing     by obsmap: 20 cells in all 2 modalities; only rna: 10; only adt: 10" "$FX/pair.h5mu"
check "h5mu names"          0 "pairing     by obs names (no obsmap): 20 cells in all 2"    "$FX/pair_noobsmap.h5mu"

# Two ranks: one error line, exit status 1, within the time limit.
if [ -n "${CLUE_MPIEXEC:-}" ]; then
  timeout 120 $CLUE_MPIEXEC -n 2 "$CLUE_BIN" info "$FX/bad_idx_range.h5ad" > "$TMP/out" 2> "$TMP/err"
  got=$?
  n=$(grep -c "clue info: error:" "$TMP/err")
  if [ $got -ne 0 ] && [ $got -ne 124 ] && [ "$n" -eq 1 ] && grep -qF "outside [0, 13)" "$TMP/err"; then
    echo "ok   2 ranks: one error line"
  else
    echo "FAIL 2 ranks: status $got, $n error lines"
    cat "$TMP/err"
    fails=$((fails + 1))
  fi
fi

[ $fails -eq 0 ] || { echo "$fails case(s) failed"; exit 1; }
echo "all cases passed"
