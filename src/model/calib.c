/* calib.c — predicted profiles in prediction units, and the per-feature line
 * that corrects them, fitted on the bridge cells (calib.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/calib.h"

clue_calib *clue_calib_new(int64_t n_feat, clue_err *err) {
  clue_calib *c = clue_calloc(1, sizeof *c, err);
  double *v = c ? clue_calloc((size_t)(6 * n_feat + 1), sizeof *v, err) : NULL;
  if (!v) {
    free(c);
    return NULL;
  }
  c->n_feat = n_feat;
  c->a = v, c->b = v + n_feat, c->lo = v + 2 * n_feat, c->hi = v + 3 * n_feat;
  c->p_mean = v + 4 * n_feat, c->p_var = v + 5 * n_feat;
  return c;
}

void clue_calib_free(clue_calib *c) {
  if (!c) return;
  free(c->a);
  free(c);
}

void clue_calib_apply(const clue_calib *c, int64_t n, float *v) {
  for (int64_t i = 0; i < n; i++) {
    float *row = v + i * c->n_feat;
    for (int64_t f = 0; f < c->n_feat; f++) {
      double y = c->a[f] + c->b[f] * row[f];
      row[f] = (float)(y < c->lo[f] ? c->lo[f] : y > c->hi[f] ? c->hi[f] : y);
    }
  }
}

void clue_calib_apply_left_out(const clue_calib *c, int64_t n, const float *y, float *v) {
  double N = (double)c->n_cells;
  for (int64_t i = 0; i < n; i++) {
    float *row = v + i * c->n_feat;
    const float *yi = y + i * c->n_feat;
    for (int64_t f = 0; f < c->n_feat; f++) {
      double fit = c->a[f] + c->b[f] * row[f], d = row[f] - c->p_mean[f];
      /* the cell's leverage on the line (on the mean alone when b = 0) */
      double h = 1 / N + (c->b[f] > 0 && c->p_var[f] > 0 ? d * d / (N * c->p_var[f]) : 0);
      double out = h < 1 - 1e-9 ? yi[f] - (yi[f] - fit) / (1 - h) : fit;
      row[f] = (float)(out < c->lo[f] ? c->lo[f] : out > c->hi[f] ? c->hi[f] : out);
    }
  }
}

clue_calib_sums *clue_calib_sums_new(int64_t n_feat, clue_err *err) {
  clue_calib_sums *s = clue_calloc(1, sizeof *s, err);
  if (!s) return NULL;
  s->n_feat = n_feat;
  s->sum = clue_calloc((size_t)(4 * n_feat + 1), sizeof *s->sum, err);
  s->ext = clue_malloc((size_t)(2 * n_feat + 1) * sizeof *s->ext, err);
  if (!s->sum || !s->ext) {
    clue_calib_sums_free(s);
    return NULL;
  }
  for (int64_t i = 0; i < 2 * n_feat; i++) s->ext[i] = -INFINITY;
  return s;
}

void clue_calib_sums_free(clue_calib_sums *s) {
  if (!s) return;
  free(s->sum);
  free(s->ext);
  free(s);
}

void clue_calib_sums_add(clue_calib_sums *s, const float *p, const float *y) {
  int64_t F = s->n_feat;
  double *sp = s->sum, *sy = sp + F, *spp = sy + F, *spy = spp + F;
  for (int64_t f = 0; f < F; f++) {
    sp[f] += p[f], sy[f] += y[f];
    spp[f] += (double)p[f] * p[f], spy[f] += (double)p[f] * y[f];
    if (-y[f] > s->ext[f]) s->ext[f] = -y[f];
    if (y[f] > s->ext[F + f]) s->ext[F + f] = y[f];
  }
  s->n_cells++;
}

int clue_calib_fit(clue_calib_sums *s, double library, const clue_comm *comm,
                   clue_calib **out, clue_err *err) {
  *out = NULL;
  int64_t F = s->n_feat;
  clue_comm_sum_int64(comm, &s->n_cells, 1);
  clue_comm_sum_double(comm, s->sum, (size_t)(4 * F));
  clue_comm_max_double(comm, s->ext, (size_t)(2 * F));
  if (s->n_cells == 0) return CLUE_OK;
  clue_calib *c = clue_calib_new(F, err);
  if (!c) return CLUE_ENOMEM;
  double n = (double)s->n_cells;
  const double *sp = s->sum, *sy = sp + F, *spp = sy + F, *spy = spp + F;
  for (int64_t f = 0; f < F; f++) {
    double mp = sp[f] / n, my = sy[f] / n;
    double var = spp[f] / n - mp * mp, cov = spy[f] / n - mp * my;
    /* p that does not vary (up to rounding of its sums) predicts nothing */
    double b = var > 1e-9 * (spp[f] / n + 1e-30) && cov > 0 ? cov / var : 0;
    c->a[f] = my - b * mp;
    c->b[f] = b;
    c->lo[f] = -s->ext[f];
    c->hi[f] = s->ext[F + f];
    c->p_mean[f] = mp, c->p_var[f] = var;
  }
  c->has_fit_stats = true;
  c->n_cells = s->n_cells;
  c->library = library;
  *out = c;
  return CLUE_OK;
}

void clue_calib_measured(const clue_prep *p, const clue_csr *t, int64_t row, float *y) {
  int64_t F = p->n_decoded;
  for (int64_t f = 0; f < F; f++) y[f] = 0;
  double lib = 0;
  for (int64_t e = t->indptr[row]; e < t->indptr[row + 1]; e++) {
    y[t->indices[e]] = t->data[e];
    lib += t->data[e];
  }
  if (p->likelihood == CLUE_LIK_NORMAL) {
    for (int64_t f = 0; f < F; f++) y[f] = (float)(y[f] * p->target_std[f] + p->target_mean[f]);
  } else if (p->likelihood == CLUE_LIK_NB) {
    double scale = lib > 0 ? 1e4 / lib : 0;
    for (int64_t f = 0; f < F; f++) y[f] = (float)log1p(y[f] * scale);
  } /* bernoulli: the target holds 1 where x > 0 */
}

void clue_prediction_values(const clue_model *m, int k, const clue_prep *p, int64_t n,
                            const int32_t *b, double lib, float *v) {
  int64_t F = p->n_decoded;
  const real *log_theta =
      p->likelihood == CLUE_LIK_NB ? clue_arena_w(&m->gen, m->dec_disp[k]) : NULL;
  for (int64_t i = 0; i < n; i++) {
    float *row = v + i * F;
    for (int64_t f = 0; f < F; f++) {
      if (p->likelihood == CLUE_LIK_NORMAL)
        row[f] = (float)(row[f] * p->target_std[f] + p->target_mean[f]);
      else if (p->likelihood == CLUE_LIK_NB)
        row[f] = (float)clue_nb_log1p_mean(row[f] * lib, exp(log_theta[(int64_t)b[i] * F + f]),
                                           1e4 / lib);
    }
  }
}

int clue_model_cross_block(const clue_model *m, clue_work *w, int from, int to, const real *x,
                           int64_t n, float *emb, real *z, clue_err *err) {
  int d = m->spec.latent_dim;
  int64_t Kd = (int64_t)m->spec.n_mod * d;
  int rc = clue_model_embed(m, w, from, x, n, emb, err);
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
    const float *e = emb + i * Kd;
    double ss = 0;
    for (int64_t c = 0; c < Kd; c++) ss += (double)e[c] * e[c];
    double div = m->spec.normalize_u ? (sqrt(ss) > 1e-12 ? sqrt(ss) : 1e-12) : 1;
    for (int c = 0; c < d; c++) z[i * d + c] = (real)(e[(int64_t)to * d + c] / div);
  }
  return rc;
}
