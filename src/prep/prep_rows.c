/* prep_rows.c — the per-cell transforms of the preprocessing (normalisation,
 * standardisation, LSI weighting), written once and used both when fitting and
 * when applying a fitted preprocessing to new cells. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prep_internal.h"

int32_t *prep_col_map(const int64_t *cols, int64_t n, int64_t n_input, clue_err *err) {
  int32_t *col = clue_malloc((size_t)n_input * sizeof *col, err);
  if (!col) return NULL;
  for (int64_t j = 0; j < n_input; j++) col[j] = -1;
  for (int64_t u = 0; u < n; u++) col[cols[u]] = (int32_t)u;
  return col;
}

double *prep_log1p_ints_new(clue_err *err) {
  double *t = clue_malloc(PREP_LOG1P_INTS * sizeof *t, err);
  for (int k = 0; t && k < PREP_LOG1P_INTS; k++) t[k] = log1p((double)k);
  return t;
}

/* log1p(v), from the table when v is a small whole count. */
static inline double log1p_count(double v, const double *ints) {
  if (ints && v >= 0 && v < PREP_LOG1P_INTS && v == (double)(int)v) return ints[(int)v];
  return log1p(v);
}

double prep_norm_row(clue_normalize norm, const clue_csr *x, const int32_t *col,
                     int64_t n_used, int64_t i, const double *log1p_ints, double *vals) {
  int64_t a = x->indptr[i], b = x->indptr[i + 1];
  if (norm == CLUE_NORM_LOG1P) {
    double lib = 0;
    for (int64_t e = a; e < b; e++) lib += x->data[e];
    double scale = lib > 0 ? PREP_TARGET_SUM / lib : 0;
    for (int64_t e = a; e < b; e++)
      if (col[x->indices[e]] >= 0) vals[e - a] = log1p(x->data[e] * scale);
    return 0;
  }
  if (norm == CLUE_NORM_CLR) {
    double sum = 0;
    for (int64_t e = a; e < b; e++)
      if (col[x->indices[e]] >= 0) sum += vals[e - a] = log1p_count(x->data[e], log1p_ints);
    double m = n_used > 0 ? sum / (double)n_used : 0;
    for (int64_t e = a; e < b; e++)
      if (col[x->indices[e]] >= 0) vals[e - a] -= m;
    return -m;
  }
  for (int64_t e = a; e < b; e++)
    if (col[x->indices[e]] >= 0) vals[e - a] = x->data[e];
  return 0;
}

int prep_check_values(const clue_csr *x, int counts, const char *what, clue_err *err) {
  int64_t nnz = clue_csr_nnz(x);
  for (int64_t e = 0; e < nnz; e++) {
    float v = x->data[e];
    if (isfinite(v) && (!counts || v >= 0)) continue;
    int64_t row = 0;
    while (x->indptr[row + 1] <= e) row++;
    return clue_fail(err, CLUE_EDATA,
                     "%s: value %g in local row %lld, column %d is %s", what, (double)v,
                     (long long)row, x->indices[e],
                     isfinite(v) ? "negative (counts are expected)" : "not finite");
  }
  return CLUE_OK;
}

/* The standardised (and, for pca, clipped) value of normalised value v of used
 * feature u. */
static inline double prep_z(const prep_dense *d, int64_t u, double v) {
  double z = (v - d->p->mean[u]) / d->p->std[u];
  return d->clip ? prep_clip(z) : z;
}

int prep_dense_init(prep_dense *d, const clue_prep *p, const clue_csr *x,
                    const int32_t *col, clue_err *err) {
  memset(d, 0, sizeof *d);
  d->p = p;
  d->x = x;
  d->col = col;
  d->clip = p->kind == CLUE_PREP_PCA;
  int64_t widest = 1;
  for (int64_t i = 0; i < x->n_rows; i++)
    if (x->indptr[i + 1] - x->indptr[i] > widest) widest = x->indptr[i + 1] - x->indptr[i];
  d->vals = clue_malloc((size_t)widest * sizeof *d->vals, err);
  if (!d->vals) return CLUE_ENOMEM;
  if (p->normalize == CLUE_NORM_CLR)
    return (d->log1p_ints = prep_log1p_ints_new(err)) ? CLUE_OK : CLUE_ENOMEM;
  d->zero_row = clue_malloc((size_t)p->n_used * sizeof *d->zero_row, err);
  if (!d->zero_row) return CLUE_ENOMEM;
  for (int64_t u = 0; u < p->n_used; u++) d->zero_row[u] = (float)prep_z(d, u, 0);
  return CLUE_OK;
}

void prep_dense_free(prep_dense *d) {
  free(d->zero_row);
  free(d->vals);
  free(d->log1p_ints);
  d->zero_row = NULL;
  d->vals = NULL;
  d->log1p_ints = NULL;
}

int prep_dense_rows(void *ctx, int64_t begin, int64_t end, float *out, clue_err *err) {
  prep_dense *d = ctx;
  const clue_prep *p = d->p;
  const clue_csr *x = d->x;
  int64_t nu = p->n_used;
  for (int64_t i = begin; i < end; i++) {
    float *row = out + (size_t)(i - begin) * (size_t)nu;
    double zero = prep_norm_row(p->normalize, x, d->col, nu, i, d->log1p_ints, d->vals);
    if (d->zero_row) {
      memcpy(row, d->zero_row, (size_t)nu * sizeof *row);
    } else {
      for (int64_t u = 0; u < nu; u++) row[u] = (float)prep_z(d, u, zero);
    }
    int64_t a = x->indptr[i];
    for (int64_t e = a; e < x->indptr[i + 1]; e++) {
      int32_t u = d->col[x->indices[e]];
      if (u < 0) continue;
      row[u] = (float)prep_z(d, u, d->vals[e - a]);
    }
  }
  (void)err;
  return CLUE_OK;
}

int prep_sparse_rows(void *ctx, int64_t begin, int64_t end, int64_t *ptr, int32_t *idx,
                     double *val, clue_err *err) {
  prep_dense *d = ctx;
  const clue_prep *p = d->p;
  const clue_csr *x = d->x;
  int64_t n = 0;
  ptr[0] = 0;
  for (int64_t i = begin; i < end; i++) {
    prep_norm_row(p->normalize, x, d->col, p->n_used, i, d->log1p_ints, d->vals);
    int64_t a = x->indptr[i];
    for (int64_t e = a; e < x->indptr[i + 1]; e++) {
      int32_t u = d->col[x->indices[e]];
      if (u < 0) continue;
      idx[n] = u;
      val[n++] = (double)(float)prep_z(d, u, d->vals[e - a]) - (double)d->zero_row[u];
    }
    ptr[i - begin + 1] = n;
  }
  (void)err;
  return CLUE_OK;
}

void prep_lsi_row(const clue_prep *p, const clue_csr *x, int64_t i, float *vals) {
  int64_t a = x->indptr[i], b = x->indptr[i + 1];
  /* tf = x / Σx cancels in the rescaling to 1e4, so it is not formed. */
  double u = 0;
  for (int64_t e = a; e < b; e++) u += (double)x->data[e] * p->idf[x->indices[e]];
  double scale = u > 0 ? PREP_LSI_SCALE / u : 0;
  for (int64_t e = a; e < b; e++)
    vals[e - a] = (float)log1p((double)x->data[e] * p->idf[x->indices[e]] * scale);
}
