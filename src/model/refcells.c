/* refcells.c — the reference cells of a checkpoint and the mean measured
 * profile of a cell's nearest ones (refcells.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/knn.h"
#include "clue/refcells.h"

void clue_refcells_free(clue_refcells *r) {
  if (!r) return;
  clue_strings_free(r->names);
  free(r->present);
  for (int k = 0; k < CLUE_MAX_MOD; k++) {
    free(r->emb[k]);
    clue_csr_free(r->target[k]);
  }
  free(r);
}

void clue_refcells_add_measured(const clue_prep *p, const clue_csr *t, int64_t row, double w,
                                float *acc) {
  int64_t b = t->indptr[row], e = t->indptr[row + 1];
  if (p->likelihood == CLUE_LIK_NORMAL) { /* dense rows: every feature is stored */
    for (int64_t i = b; i < e; i++) {
      int32_t f = t->indices[i];
      acc[f] += (float)(w * (t->data[i] * p->target_std[f] + p->target_mean[f]));
    }
    return;
  }
  double lib = 0;
  for (int64_t i = b; i < e; i++) lib += t->data[i];
  double scale = lib > 0 ? 1e4 / lib : 0;
  for (int64_t i = b; i < e; i++)
    acc[t->indices[i]] += (float)(w * (p->likelihood == CLUE_LIK_NB
                                           ? log1p(t->data[i] * scale)
                                           : 1.0));
}

/* The reference cells measured in `from` and `to`: their indices (*idx) and
 * their embeddings from `from` (*x, m × dim). */
static int candidates(const clue_refcells *r, int from, int to, int64_t **idx, float **x,
                      int64_t *m, clue_err *err) {
  *m = 0;
  *idx = clue_malloc((size_t)(r->n + 1) * sizeof **idx, err);
  *x = clue_malloc((size_t)(r->n * r->dim + 1) * sizeof **x, err);
  if (!*idx || !*x) return CLUE_ENOMEM;
  for (int64_t c = 0; c < r->n; c++) {
    if (!r->present[c * r->n_mod + from] || !r->present[c * r->n_mod + to]) continue;
    memcpy(*x + *m * r->dim, r->emb[from] + c * r->dim, (size_t)r->dim * sizeof **x);
    (*idx)[(*m)++] = c;
  }
  return CLUE_OK;
}

void clue_unit_rows(const float *q, int64_t n, int dim, float *u) {
  for (int64_t i = 0; i < n; i++) {
    double ss = 0;
    for (int c = 0; c < dim; c++) ss += (double)q[i * dim + c] * q[i * dim + c];
    double s = ss > 0 ? 1 / sqrt(ss) : 0;
    for (int c = 0; c < dim; c++) u[i * dim + c] = (float)(q[i * dim + c] * s);
  }
}

int clue_refcells_mean(const clue_refcells *r, const clue_prep *p_to, int from, int to, int k,
                       const float *q, int64_t n, float *out, int64_t *n_ref, clue_err *err) {
  int64_t *idx = NULL, m = 0;
  float *x = NULL, *u = clue_malloc((size_t)(n * r->dim + 1) * sizeof *u, err);
  int rc = u ? candidates(r, from, to, &idx, &x, &m, err) : CLUE_ENOMEM;
  *n_ref = m;
  knn_result *res = NULL;
  clue_comm self = clue_comm_self();
  if (rc == CLUE_OK && m > 0 && n > 0) {
    clue_unit_rows(q, n, r->dim, u);
    knn_points qp = {.n_total = n, .begin = 0, .n = n, .dim = r->dim, .x = u};
    knn_points rp = {.n_total = m, .begin = 0, .n = m, .dim = r->dim, .x = x};
    knn_opts o = {.k_row = k < m ? k : (int)m};
    rc = knn_scan(&qp, &rp, &o, &self, &res, err);
  }
  int64_t F = p_to->n_decoded;
  for (int64_t i = 0; rc == CLUE_OK && res && i < n; i++) {
    float *acc = out + i * F;
    memset(acc, 0, (size_t)F * sizeof *acc);
    int kk = res->k_row;
    for (int j = 0; j < kk; j++)
      clue_refcells_add_measured(p_to, r->target[to], idx[res->row_idx[i * kk + j]], 1.0 / kk,
                                 acc);
  }
  knn_result_free(res);
  free(idx), free(x), free(u);
  return rc;
}
