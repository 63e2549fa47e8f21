/* csr.c — CSR matrix allocation, row selection and validation. */
#include "clue/csr.h"

#include <stdlib.h>
#include <string.h>

clue_csr *clue_csr_new(int64_t n_rows, int64_t n_cols, int64_t nnz, clue_err *err) {
  clue_csr *m = clue_calloc(1, sizeof *m, err);
  if (!m) return NULL;
  m->n_rows = n_rows;
  m->n_cols = n_cols;
  m->indptr = clue_calloc((size_t)n_rows + 1, sizeof *m->indptr, err);
  m->indices = clue_malloc((size_t)nnz * sizeof *m->indices, err);
  m->data = clue_malloc((size_t)nnz * sizeof *m->data, err);
  if (!m->indptr || !m->indices || !m->data) {
    clue_csr_free(m);
    return NULL;
  }
  return m;
}

void clue_csr_free(clue_csr *m) {
  if (!m) return;
  free(m->indptr);
  free(m->indices);
  free(m->data);
  free(m);
}

clue_csr *clue_csr_select_rows(const clue_csr *m, const int64_t *rows, int64_t n,
                               clue_err *err) {
  int64_t nnz = 0;
  for (int64_t i = 0; i < n; i++) nnz += m->indptr[rows[i] + 1] - m->indptr[rows[i]];
  clue_csr *out = clue_csr_new(n, m->n_cols, nnz, err);
  if (!out) return NULL;
  int64_t at = 0;
  for (int64_t i = 0; i < n; i++) {
    int64_t b = m->indptr[rows[i]], e = m->indptr[rows[i] + 1];
    memcpy(out->indices + at, m->indices + b, (size_t)(e - b) * sizeof *out->indices);
    memcpy(out->data + at, m->data + b, (size_t)(e - b) * sizeof *out->data);
    at += e - b;
    out->indptr[i + 1] = at;
  }
  return out;
}

int clue_csr_validate(const clue_csr *m, const char *what, clue_err *err) {
  if (m->indptr[0] != 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: indptr[0] is %lld, expected 0", what,
                     (long long)m->indptr[0]);
  for (int64_t i = 0; i < m->n_rows; i++) {
    if (m->indptr[i + 1] < m->indptr[i])
      return clue_fail(err, CLUE_EFORMAT,
                       "%s: indptr decreases at row %lld (%lld then %lld)", what,
                       (long long)i, (long long)m->indptr[i],
                       (long long)m->indptr[i + 1]);
  }
  int64_t nnz = m->indptr[m->n_rows];
  for (int64_t j = 0; j < nnz; j++) {
    if (m->indices[j] < 0 || m->indices[j] >= m->n_cols)
      return clue_fail(err, CLUE_EFORMAT,
                       "%s: column index %d at position %lld is outside [0, %lld)",
                       what, m->indices[j], (long long)j, (long long)m->n_cols);
  }
  return CLUE_OK;
}
