/* calibrate.c — at the end of `clue train`: for every ordered pair of
 * modalities, the calibration of the predictions of one from the other
 * (calib.h), fitted on this run's cells measured in both. */
#include <math.h>
#include <stdlib.h>

#include "clue/calib.h"
#include "clue/plan.h"
#include "clue/rng.h"
#include "clue/train.h"

/* Rows of one round of a fit. */
#define CALIB_ROUND 256

typedef struct calib_buf {
  real *x, *z;
  float *emb, *prof, *y;
  int32_t *batch;
} calib_buf;

static void buf_free(calib_buf *b) {
  free(b->x), free(b->z), free(b->emb), free(b->prof), free(b->y), free(b->batch);
}

static int buf_alloc(const clue_model *m, int from, int to, calib_buf *b, clue_err *err) {
  size_t n = CALIB_ROUND, d = (size_t)m->spec.latent_dim, F = (size_t)m->spec.n_feat[to];
  b->x = clue_malloc(n * (size_t)m->spec.enc_in[from] * sizeof *b->x, err);
  b->z = clue_malloc(n * d * sizeof *b->z, err);
  b->emb = clue_malloc(n * d * (size_t)m->spec.n_mod * sizeof *b->emb, err);
  b->prof = clue_malloc(n * F * sizeof *b->prof, err);
  b->y = clue_malloc(F * sizeof *b->y, err);
  b->batch = clue_malloc(n * sizeof *b->batch, err);
  return b->x && b->z && b->emb && b->prof && b->y && b->batch ? CLUE_OK : CLUE_ENOMEM;
}


bool clue_train_is_bridge(const int64_t *row, int from, int to, const clue_plan *val,
                          int64_t c) {
  return row[from] >= 0 && row[to] >= 0 && (!val || !clue_plan_is_train(val, c));
}

int64_t clue_train_count_bridge(const clue_dataset *d, int from, int to, const clue_plan *val,
                                const clue_comm *comm) {
  int64_t total = 0;
  for (int64_t c = d->local_begin; c < d->local_end; c++)
    total += clue_train_is_bridge(d->local_row + (c - d->local_begin) * d->n_mod, from, to,
                                  val, c);
  clue_comm_sum_int64(comm, &total, 1);
  return total;
}

/* Predicted values of the n rows in b (inputs b->x, batches b->batch) → sums,
 * with the measured target rows `rows` of t. */
static int add_round(const clue_ckpt *ck, clue_work *w, int from, int to, const clue_csr *t,
                     const int64_t *rows, int64_t n, calib_buf *b, clue_calib_sums *s,
                     clue_err *err) {
  const clue_model *m = ck->model;
  const clue_prep *p = ck->prep[to];
  int64_t F = p->n_decoded;
  int rc = clue_model_cross_block(m, w, from, to, b->x, n, b->emb, b->z, err);
  if (!rc) rc = clue_model_expected(m, w, to, b->z, b->batch, n, b->prof, err);
  if (rc) return rc;
  clue_prediction_values(m, to, p, n, b->batch, p->library_mean, b->prof);
  for (int64_t i = 0; i < n; i++) {
    clue_calib_measured(p, t, rows[i], b->y);
    clue_calib_sums_add(s, b->prof + i * F, b->y);
  }
  return CLUE_OK;
}

/* This rank's part of the fit of (from, to) into s. */
static int local_sums(const clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                      const clue_plan *val, int from, int to, uint64_t seed, int64_t total, int64_t keep,
                      clue_calib_sums *s, clue_err *err) {
  const clue_model *m = ck->model;
  clue_work *w = NULL;
  calib_buf b = {0};
  int64_t rows[CALIB_ROUND], n = 0, R = m->spec.enc_in[from];
  int rc = clue_work_new(m, CALIB_ROUND, &w, err);
  if (!rc) rc = buf_alloc(m, from, to, &b, err);
  for (int64_t c = d->local_begin; rc == CLUE_OK && c <= d->local_end; c++) {
    if (c < d->local_end) {
      const int64_t *row = d->local_row + (c - d->local_begin) * d->n_mod;
      if (!clue_train_is_bridge(row, from, to, val, c) || !clue_keyed_draw(seed, CLUE_CALIB_SALT, c, total, keep)) continue;
      for (int64_t r = 0; r < R; r++) b.x[n * R + r] = in->enc[from][row[from] * R + r];
      b.batch[n] = d->local_batch[c - d->local_begin];
      rows[n++] = row[to];
    }
    if (n == CALIB_ROUND || (c == d->local_end && n > 0)) {
      rc = add_round(ck, w, from, to, in->target[to], rows, n, &b, s, err);
      n = 0;
    }
  }
  buf_free(&b);
  clue_work_free(w);
  return rc;
}

int clue_train_calibrate(clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                         const clue_plan *val, uint64_t seed, int64_t max_cells,
                         const clue_comm *comm, clue_err *err) {
  int rc = CLUE_OK;
  for (int from = 0; rc == CLUE_OK && from < d->n_mod; from++)
    for (int to = 0; rc == CLUE_OK && to < d->n_mod; to++) {
      if (from == to) continue;
      clue_calib_free(ck->calib[from][to]);
      ck->calib[from][to] = NULL;
      const clue_plan *v = val;
      int64_t total = clue_train_count_bridge(d, from, to, v, comm);
      if (total == 0 && v) total = clue_train_count_bridge(d, from, to, v = NULL, comm);
      if (total == 0) continue;
      double lib = ck->prep[to]->likelihood == CLUE_LIK_NB ? ck->prep[to]->library_mean : 0;
      if (ck->prep[to]->likelihood == CLUE_LIK_NB && !(lib > 0)) continue;
      clue_calib_sums *s = clue_calib_sums_new(ck->prep[to]->n_decoded, err);
      rc = s ? local_sums(ck, d, in, v, from, to, seed, total, max_cells, s, err) : CLUE_ENOMEM;
      rc = clue_comm_agree(comm, rc, err);
      if (rc == CLUE_OK) rc = clue_calib_fit(s, lib, comm, &ck->calib[from][to], err);
      if (rc == CLUE_OK && ck->calib[from][to]) ck->calib[from][to]->validation = v != NULL;
      clue_calib_sums_free(s);
    }
  return rc;
}
