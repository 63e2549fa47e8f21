/* blend.c — at the end of `clue train`: the weights with which `clue predict`
 * blends the model's values with the nearest reference cells' measured
 * profiles (refcells.h: clue_blend), fitted on the run's bridge cells. */
#include <stdlib.h>

#include "clue/calib.h"
#include "clue/rng.h"
#include "clue/train.h"

/* Rows of one round of a fit. */
#define BLEND_ROUND 256

typedef struct blend_buf {
  real *x, *z;
  float *xin, *emb, *model, *near_emb, *near_in, *y;
  int32_t *batch;
  int64_t rows[BLEND_ROUND], skip[BLEND_ROUND];
} blend_buf;

static void buf_free(blend_buf *b) {
  free(b->x), free(b->z), free(b->xin), free(b->emb), free(b->model), free(b->near_emb);
  free(b->near_in), free(b->y), free(b->batch);
}

static int buf_alloc(const clue_model *m, int from, int to, blend_buf *b, clue_err *err) {
  size_t n = BLEND_ROUND, R = (size_t)m->spec.enc_in[from], F = (size_t)m->spec.n_feat[to];
  size_t d = (size_t)m->spec.latent_dim;
  b->x = clue_malloc(n * R * sizeof *b->x, err);
  b->xin = clue_malloc(n * R * sizeof *b->xin, err);
  b->z = clue_malloc(n * d * sizeof *b->z, err);
  b->emb = clue_malloc(n * d * (size_t)m->spec.n_mod * sizeof *b->emb, err);
  b->model = clue_malloc(n * F * sizeof *b->model, err);
  b->near_emb = clue_malloc(n * F * sizeof *b->near_emb, err);
  b->near_in = clue_malloc(n * F * sizeof *b->near_in, err);
  b->y = clue_malloc(n * F * sizeof *b->y, err);
  b->batch = clue_malloc(n * sizeof *b->batch, err);
  return b->x && b->xin && b->z && b->emb && b->model && b->near_emb && b->near_in && b->y &&
                 b->batch
             ? CLUE_OK
             : CLUE_ENOMEM;
}

/* The three predictions of the n cells in b (as clue predict makes them), and
 * their parts of the sums s: Σd₁d₁, Σd₁d₂, Σd₂d₂, Σd₁r, Σd₂r (clue_blend_solve). */
static int add_round(const clue_ckpt *ck, clue_work *w, int from, int to, const clue_csr *t,
                     int64_t n, blend_buf *b, double s[5], clue_err *err) {
  const clue_model *m = ck->model;
  const clue_prep *p = ck->prep[to];
  int64_t F = p->n_decoded, n_ref;
  int rc = clue_model_cross_block(m, w, from, to, b->x, n, b->emb, b->z, err);
  if (!rc) rc = clue_model_expected(m, w, to, b->z, b->batch, n, b->model, err);
  if (rc) return rc;
  clue_prediction_values(m, to, p, n, b->batch, p->library_mean, b->model);
  for (int64_t i = 0; i < n; i++) clue_calib_measured(p, t, b->rows[i], b->y + i * F);
  const clue_calib *c = ck->calib[from][to];
  if (c && c->has_fit_stats) /* the blend's cells are the calibration's: left out */
    clue_calib_apply_left_out(c, n, b->y, b->model);
  else if (c)
    clue_calib_apply(c, n, b->model);
  const clue_refcells *r = ck->refcells;
  rc = clue_refcells_mean(r, p, from, to, CLUE_REF_EMBEDDING, CLUE_BLEND_NEIGHBOURS, b->emb,
                          b->skip, n, b->near_emb, &n_ref, err);
  if (!rc) rc = clue_refcells_mean(r, p, from, to, CLUE_REF_INPUT, CLUE_BLEND_NEIGHBOURS, b->xin,
                                   b->skip, n, b->near_in, &n_ref, err);
  for (int64_t i = 0; !rc && i < n; i++) {
    const float *v = b->model + i * F, *e = b->near_emb + i * F, *q = b->near_in + i * F;
    const float *y = b->y + i * F;
    for (int64_t f = 0; f < F; f++) {
      double res = (double)y[f] - v[f], d1 = (double)e[f] - v[f], d2 = (double)q[f] - v[f];
      s[0] += d1 * d1, s[1] += d1 * d2, s[2] += d2 * d2, s[3] += d1 * res, s[4] += d2 * res;
    }
  }
  return rc;
}

/* This rank's part of the fit of (from, to) into s. */
static int local_sums(const clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                      const clue_plan *val, const int64_t *own, int from, int to, uint64_t seed,
                      int64_t total, int64_t keep, double s[5], int64_t *used,
                      clue_err *err) {
  const clue_model *m = ck->model;
  clue_work *w = NULL;
  blend_buf b = {0};
  int64_t n = 0, R = m->spec.enc_in[from];
  int rc = clue_work_new(m, BLEND_ROUND, &w, err);
  if (!rc) rc = buf_alloc(m, from, to, &b, err);
  for (int64_t c = d->local_begin; rc == CLUE_OK && c <= d->local_end; c++) {
    if (c < d->local_end) {
      const int64_t *row = d->local_row + (c - d->local_begin) * d->n_mod;
      if (!clue_train_is_bridge(row, from, to, val, c) ||
          !clue_keyed_draw(seed, CLUE_CALIB_SALT, c, total, keep))
        continue;
      for (int64_t j = 0; j < R; j++) {
        b.x[n * R + j] = in->enc[from][row[from] * R + j];
        b.xin[n * R + j] = (float)b.x[n * R + j];
      }
      b.batch[n] = d->local_batch[c - d->local_begin];
      b.skip[n] = own[c - d->local_begin];
      b.rows[n++] = row[to];
      ++*used;
    }
    if (n == BLEND_ROUND || (c == d->local_end && n > 0)) {
      rc = add_round(ck, w, from, to, in->target[to], n, &b, s, err);
      n = 0;
    }
  }
  buf_free(&b);
  clue_work_free(w);
  return rc;
}

/* Reference cells measured in both modalities of the pair. */
static int64_t pair_refs(const clue_refcells *r, int from, int to) {
  int64_t n = 0;
  for (int64_t c = 0; c < r->n; c++)
    n += r->present[c * r->n_mod + from] && r->present[c * r->n_mod + to];
  return n;
}

int clue_train_blend(clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                     const clue_plan *val, const int64_t *own, uint64_t seed,
                     int64_t max_cells, const clue_comm *comm, clue_err *err) {
  clue_refcells *r = ck->refcells;
  int rc = CLUE_OK;
  for (int from = 0; r && rc == CLUE_OK && from < d->n_mod; from++)
    for (int to = 0; rc == CLUE_OK && to < d->n_mod; to++) {
      r->blend[from][to] = (clue_blend){0};
      if (from == to || !r->input[from] || pair_refs(r, from, to) < 2) continue;
      const clue_plan *v = val;
      int64_t total = clue_train_count_bridge(d, from, to, v, comm);
      if (total == 0 && v) total = clue_train_count_bridge(d, from, to, v = NULL, comm);
      if (total == 0) continue;
      double s[5] = {0};
      int64_t used = 0;
      rc = local_sums(ck, d, in, v, own, from, to, seed, total, max_cells, s, &used, err);
      rc = clue_comm_agree(comm, rc, err);
      if (rc) break;
      clue_comm_sum_double(comm, s, 5);
      clue_comm_sum_int64(comm, &used, 1);
      clue_blend *bl = &r->blend[from][to];
      clue_blend_solve(s, s + 3, &bl->w_embedding, &bl->w_input);
      bl->n_cells = used;
      bl->validation = v != NULL;
    }
  return rc;
}
