/* prep_apply.c — applying a fitted preprocessing to any rows (training or new
 * cells): the encoder input and the decoder targets. Not collective; streams
 * over the rows in blocks, so a million cells need only one block of scratch. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "prep_internal.h"

#define PREP_BLOCK_ELEMS ((int64_t)1 << 22)

/* pca: dense standardised blocks times the projection (sgemm). */
static int prep_encode_pca(const clue_prep *p, const clue_csr *x, const int32_t *col,
                           float *out, clue_err *err) {
  int64_t nu = p->n_used, r = p->n_components;
  int64_t block = PREP_BLOCK_ELEMS / (nu > 0 ? nu : 1);
  if (block > 1024) block = 1024;
  if (block < 1) block = 1;
  prep_dense d;
  float *buf = clue_malloc((size_t)block * (size_t)nu * sizeof *buf, err);
  int rc = buf ? prep_dense_init(&d, p, x, col, err) : CLUE_ENOMEM;
  for (int64_t b0 = 0; rc == CLUE_OK && b0 < x->n_rows; b0 += block) {
    int64_t nb = x->n_rows - b0 < block ? x->n_rows - b0 : block;
    rc = prep_dense_rows(&d, b0, b0 + nb, buf, err);
    if (rc == CLUE_OK)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, (int)r, (int)nu, 1.0f,
                  buf, (int)nu, p->proj, (int)r, 0.0f, out + (size_t)b0 * (size_t)r, (int)r);
  }
  if (buf) prep_dense_free(&d);
  free(buf);
  return rc;
}

/* none: the standardised rows are the encoder input. */
static int prep_encode_none(const clue_prep *p, const clue_csr *x, const int32_t *col,
                            float *out, clue_err *err) {
  prep_dense d;
  int rc = prep_dense_init(&d, p, x, col, err);
  if (rc == CLUE_OK) rc = prep_dense_rows(&d, 0, x->n_rows, out, err);
  prep_dense_free(&d);
  return rc;
}

/* acc += v · p over r values (no aliasing, so it vectorises). */
static inline void prep_axpy(int r, float v, const float *restrict p, float *restrict acc) {
  for (int c = 0; c < r; c++) acc[c] += v * p[c];
}

/* lsi: sparse rows times V / s, then each row standardised (mean 0, sample
 * std 1 over its n_components values, as scglue's lsi does; a constant row
 * is only centred). */
static int prep_encode_lsi(const clue_prep *p, const clue_csr *x, float *out,
                           clue_err *err) {
  int r = p->n_components;
  int64_t widest = 1;
  for (int64_t i = 0; i < x->n_rows; i++)
    if (x->indptr[i + 1] - x->indptr[i] > widest) widest = x->indptr[i + 1] - x->indptr[i];
  float *vals = clue_malloc((size_t)widest * sizeof *vals, err);
  float *acc = clue_malloc((size_t)r * sizeof *acc, err);
  int rc = (vals && acc) ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < x->n_rows; i++) {
    prep_lsi_row(p, x, i, vals);
    memset(acc, 0, (size_t)r * sizeof *acc);
    int64_t a = x->indptr[i];
    for (int64_t e = a; e < x->indptr[i + 1]; e++)
      prep_axpy(r, vals[e - a], p->proj + (size_t)x->indices[e] * (size_t)r, acc);
    double m = 0, ss = 0;
    for (int c = 0; c < r; c++) m += acc[c];
    m /= r;
    for (int c = 0; c < r; c++) ss += (acc[c] - m) * (acc[c] - m);
    double sd = r > 1 ? sqrt(ss / (r - 1)) : 0;
    float *o = out + (size_t)i * (size_t)r;
    for (int c = 0; c < r; c++) o[c] = (float)(sd > 0 ? (acc[c] - m) / sd : acc[c] - m);
  }
  free(vals);
  free(acc);
  return rc;
}

int clue_prep_encode_input(const clue_prep *p, const clue_csr *x, float *out,
                           clue_err *err) {
  if (x->n_cols != p->n_input)
    return clue_fail(err, CLUE_EINVAL,
                     "encoder input: the matrix has %lld features, the preprocessing "
                     "was fitted on %lld",
                     (long long)x->n_cols, (long long)p->n_input);
  int rc = prep_check_values(x, p->kind != CLUE_PREP_NONE, "encoder input", err);
  if (rc != CLUE_OK) return rc;
  if (p->kind == CLUE_PREP_LSI) return prep_encode_lsi(p, x, out, err);
  int32_t *col = prep_col_map(p->used, p->n_used, p->n_input, err);
  if (!col) return CLUE_ENOMEM;
  if (p->kind == CLUE_PREP_PCA)
    rc = prep_encode_pca(p, x, col, out, err);
  else
    rc = prep_encode_none(p, x, col, out, err);
  free(col);
  return rc;
}

/* Stored values of row i kept in the target (their number). */
static int64_t prep_target_count(const clue_prep *p, const clue_csr *x, const int32_t *col,
                                 int64_t i) {
  if (p->likelihood == CLUE_LIK_NORMAL) return p->n_decoded;
  int64_t n = 0;
  for (int64_t e = x->indptr[i]; e < x->indptr[i + 1]; e++)
    n += col[x->indices[e]] >= 0 && (p->likelihood != CLUE_LIK_BERNOULLI || x->data[e] > 0);
  return n;
}

/* Fills row i of the target t (its indptr already set). */
static void prep_target_row(const clue_prep *p, const clue_csr *x, const int32_t *col,
                            int64_t i, clue_csr *t) {
  int64_t o = t->indptr[i];
  if (p->likelihood == CLUE_LIK_NORMAL) {
    for (int64_t u = 0; u < p->n_decoded; u++) {
      t->indices[o + u] = (int32_t)u;
      t->data[o + u] = (float)((0 - p->target_mean[u]) / p->target_std[u]);
    }
    for (int64_t e = x->indptr[i]; e < x->indptr[i + 1]; e++) {
      int32_t u = col[x->indices[e]];
      if (u >= 0)
        t->data[o + u] = (float)((x->data[e] - p->target_mean[u]) / p->target_std[u]);
    }
    return;
  }
  for (int64_t e = x->indptr[i]; e < x->indptr[i + 1]; e++) {
    int32_t u = col[x->indices[e]];
    if (u < 0) continue;
    if (p->likelihood == CLUE_LIK_BERNOULLI) {
      if (!(x->data[e] > 0)) continue;
      t->data[o] = 1.0f;
    } else {
      t->data[o] = x->data[e];
    }
    t->indices[o++] = u;
  }
}

int clue_prep_decode_target(const clue_prep *p, const clue_csr *x, clue_csr **out,
                            clue_err *err) {
  *out = NULL;
  if (x->n_cols != p->n_input)
    return clue_fail(err, CLUE_EINVAL,
                     "decoder target: the matrix has %lld features, the preprocessing "
                     "was fitted on %lld",
                     (long long)x->n_cols, (long long)p->n_input);
  int32_t *col = prep_col_map(p->decoded, p->n_decoded, p->n_input, err);
  if (!col) return CLUE_ENOMEM;
  int64_t nnz = 0;
  for (int64_t i = 0; i < x->n_rows; i++) nnz += prep_target_count(p, x, col, i);
  clue_csr *t = clue_csr_new(x->n_rows, p->n_decoded, nnz, err);
  if (!t) {
    free(col);
    return CLUE_ENOMEM;
  }
  for (int64_t i = 0; i < x->n_rows; i++)
    t->indptr[i + 1] = t->indptr[i] + prep_target_count(p, x, col, i);
  for (int64_t i = 0; i < x->n_rows; i++) prep_target_row(p, x, col, i, t);
  free(col);
  *out = t;
  return CLUE_OK;
}
