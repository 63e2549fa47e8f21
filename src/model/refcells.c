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
    free(r->input[k]);
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
 * their points in space s (*x, m × width). */
static int candidates(const clue_refcells *r, int from, int to, clue_refspace s, int width,
                      int64_t **idx, float **x, int64_t *m, clue_err *err) {
  const float *pts = s == CLUE_REF_INPUT ? r->input[from] : r->emb[from];
  *m = 0;
  *idx = clue_malloc((size_t)(r->n + 1) * sizeof **idx, err);
  *x = clue_malloc((size_t)(r->n * width + 1) * sizeof **x, err);
  if (!*idx || !*x) return CLUE_ENOMEM;
  for (int64_t c = 0; c < r->n; c++) {
    if (!r->present[c * r->n_mod + from] || !r->present[c * r->n_mod + to]) continue;
    memcpy(*x + *m * width, pts + c * width, (size_t)width * sizeof **x);
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

/* out (F) = the mean measured profile of the first k of the kk neighbours
 * `nn` (candidate rows; −1: none) that are not reference cell `skip`. */
static void mean_of(const clue_refcells *r, const clue_prep *p_to, int to, const int64_t *idx,
                    const int64_t *nn, int kk, int k, int64_t skip, float *out) {
  int u = 0;
  for (int j = 0; j < kk && u < k; j++) u += nn[j] >= 0 && idx[nn[j]] != skip;
  memset(out, 0, (size_t)p_to->n_decoded * sizeof *out);
  for (int j = 0, v = 0; j < kk && v < u; j++)
    if (nn[j] >= 0 && idx[nn[j]] != skip)
      clue_refcells_add_measured(p_to, r->target[to], idx[nn[j]], 1.0 / u, out), v++;
}

int clue_refcells_mean(const clue_refcells *r, const clue_prep *p_to, int from, int to,
                       clue_refspace s, int k, const float *q, const int64_t *exclude,
                       int64_t n, float *out, int64_t *n_ref, clue_err *err) {
  *n_ref = 0;
  if (s == CLUE_REF_INPUT && !r->input[from])
    return clue_fail(err, CLUE_EFORMAT, "the reference cells have no encoder inputs");
  int width = s == CLUE_REF_INPUT ? r->in_dim[from] : r->dim;
  int64_t *idx = NULL, m = 0;
  float *x = NULL, *u = clue_malloc((size_t)(n * width + 1) * sizeof *u, err);
  int rc = u ? candidates(r, from, to, s, width, &idx, &x, &m, err) : CLUE_ENOMEM;
  *n_ref = m;
  knn_result *res = NULL;
  clue_comm self = clue_comm_self();
  if (rc == CLUE_OK && m > 0 && n > 0) {
    if (s == CLUE_REF_EMBEDDING) clue_unit_rows(q, n, width, u);
    else memcpy(u, q, (size_t)(n * width) * sizeof *u);
    knn_points qp = {.n_total = n, .begin = 0, .n = n, .dim = width, .x = u};
    knn_points rp = {.n_total = m, .begin = 0, .n = m, .dim = width, .x = x};
    int want = k + (exclude != NULL);
    knn_opts o = {.k_row = want < m ? want : (int)m};
    rc = knn_scan(&qp, &rp, &o, &self, &res, err);
  }
  for (int64_t i = 0; rc == CLUE_OK && res && i < n; i++)
    mean_of(r, p_to, to, idx, res->row_idx + i * res->k_row, res->k_row, k,
            exclude ? exclude[i] : -1, out + i * p_to->n_decoded);
  knn_result_free(res);
  free(idx), free(x), free(u);
  return rc;
}

/* f(w) = w'Gw − 2b'w, the part of the squared error that depends on w. */
static double blend_loss(const double g[3], const double b[2], double w1, double w2) {
  return w1 * w1 * g[0] + 2 * w1 * w2 * g[1] + w2 * w2 * g[2] - 2 * (w1 * b[0] + w2 * b[1]);
}

static double clamp01(double x) { return x < 0 ? 0 : x > 1 ? 1 : x; }

void clue_blend_solve(const double g[3], const double b[2], double *w1, double *w2) {
  /* The minimum over the triangle is inside it or on one of its three edges. */
  double c[4][2] = {{g[0] > 0 ? clamp01(b[0] / g[0]) : 0, 0},
                    {0, g[2] > 0 ? clamp01(b[1] / g[2]) : 0},
                    {0, 0},
                    {0, 0}};
  int nc = 2;
  double curv = g[0] - 2 * g[1] + g[2]; /* along w1 + w2 = 1 */
  if (g[0] > 0 && g[2] > 0) {
    double t = curv > 0 ? clamp01((b[0] - b[1] - g[1] + g[2]) / curv) : 0;
    c[nc][0] = t, c[nc++][1] = 1 - t;
    double det = g[0] * g[2] - g[1] * g[1];
    if (det > 0) {
      double x = (b[0] * g[2] - b[1] * g[1]) / det, y = (b[1] * g[0] - b[0] * g[1]) / det;
      if (x >= 0 && y >= 0 && x + y <= 1) c[nc][0] = x, c[nc++][1] = y;
    }
  }
  int best = 0;
  for (int i = 1; i < nc; i++)
    if (blend_loss(g, b, c[i][0], c[i][1]) < blend_loss(g, b, c[best][0], c[best][1])) best = i;
  *w1 = c[best][0], *w2 = c[best][1];
}
