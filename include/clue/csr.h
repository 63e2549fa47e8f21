/* csr.h — a compressed sparse row matrix of float32 values, the in-memory form
 * of every count matrix clue reads (whatever its type on disk). */
#ifndef CLUE_CSR_H
#define CLUE_CSR_H

#include <stdint.h>

#include "clue/error.h"

typedef struct clue_csr {
  int64_t n_rows, n_cols;
  int64_t *indptr;  /* (n_rows + 1), indptr[0] == 0 */
  int32_t *indices; /* (nnz) column of each stored value, ascending within a row */
  float *data;      /* (nnz) */
} clue_csr;

/* An n_rows × n_cols matrix with room for nnz values; indptr is all zeros. */
clue_csr *clue_csr_new(int64_t n_rows, int64_t n_cols, int64_t nnz, clue_err *err);

/* Frees the matrix (NULL is allowed). */
void clue_csr_free(clue_csr *m);

/* Number of stored values. */
static inline int64_t clue_csr_nnz(const clue_csr *m) { return m->indptr[m->n_rows]; }

/* A new matrix holding rows rows[0..n) of m, in that order (rows may repeat). */
clue_csr *clue_csr_select_rows(const clue_csr *m, const int64_t *rows, int64_t n,
                               clue_err *err);

/* Checks the structure: indptr starts at 0, is non-decreasing and ends at nnz;
 * every index is in [0, n_cols). Fills err naming `what` on failure. */
int clue_csr_validate(const clue_csr *m, const char *what, clue_err *err);

#endif
