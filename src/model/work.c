/* work.c — allocation of the step workspace. */
#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

#define ALLOC(p, count)                                                   \
  do {                                                                    \
    if (!((p) = clue_calloc((size_t)(count), sizeof *(p), err))) goto fail; \
  } while (0)

static int dec_app_new(const nn_mlp *stack, int B, int d, dec_app *a, clue_err *err) {
  if (nn_mlp_cache_new(stack, B, &a->cache, err)) return CLUE_ENOMEM;
  ALLOC(a->z, (size_t)B * d);
  ALLOC(a->dz, (size_t)B * d);
  ALLOC(a->lib, B);
  ALLOC(a->dlib, B);
  ALLOC(a->batch, B);
  ALLOC(a->trow, B);
  ALLOC(a->src, B);
  ALLOC(a->key, B);
  return CLUE_OK;
fail:
  return CLUE_ENOMEM;
}

static void dec_app_free(dec_app *a) {
  nn_mlp_cache_free(&a->cache);
  free(a->z);
  free(a->dz);
  free(a->lib);
  free(a->dlib);
  free(a->batch);
  free(a->trow);
  free(a->src);
  free(a->key);
}

static int dec_work_new(const clue_model *m, int k, int B, dec_work *dw, clue_err *err) {
  const clue_model_spec *s = &m->spec;
  size_t rows = (size_t)DEC_APPS * B, F = (size_t)s->n_feat[k];
  if (nn_lik_terms_new(s->lik[k], (int)F, s->n_batches, &dw->terms, err)) return CLUE_ENOMEM;
  for (int a = 0; a < DEC_APPS; a++)
    if (dec_app_new(&m->dec[k], B, s->latent_dim, &dw->app[a], err)) return CLUE_ENOMEM;
  ALLOC(dw->h, rows * nn_mlp_out_width(&m->dec[k]));
  ALLOC(dw->dh, rows * nn_mlp_out_width(&m->dec[k]));
  ALLOC(dw->loc, rows * F);
  ALLOC(dw->dloc, rows * F);
  return CLUE_OK;
fail:
  return CLUE_ENOMEM;
}

static void dec_work_free(dec_work *dw) {
  nn_lik_terms_free(&dw->terms);
  for (int a = 0; a < DEC_APPS; a++) dec_app_free(&dw->app[a]);
  free(dw->h);
  free(dw->dh);
  free(dw->loc);
  free(dw->dloc);
}

int clue_work_new(const clue_model *m, int B, clue_work **out, clue_err *err) {
  *out = NULL;
  clue_work *w = clue_calloc(1, sizeof *w, err);
  if (!w) return CLUE_ENOMEM;
  const clue_model_spec *s = &m->spec;
  int K = s->n_mod, d = s->latent_dim, Kd = K * d;
  w->B = B;
  w->K = K;
  w->d = d;
  w->Kd = Kd;
  size_t BKd = (size_t)B * Kd;
  int max_h = 1;
  for (int k = 0; k < K; k++) {
    for (int j = 0; j < K; j++) {
      if (nn_mlp_cache_new(&m->enc[k][j], B, &w->enc_cache[k][j], err)) goto fail;
      int h = nn_mlp_out_width(&m->enc[k][j]);
      if (h > max_h) max_h = h;
    }
    ALLOC(w->mean[k], BKd);
    ALLOC(w->std[k], BKd);
    ALLOC(w->tstd[k], BKd);
    ALLOC(w->eps[k], BKd);
    ALLOC(w->shat[k], BKd);
    ALLOC(w->snorm[k], B);
    ALLOC(w->dmean[k], BKd);
    ALLOC(w->dstd[k], BKd);
    ALLOC(w->dshat[k], BKd);
    ALLOC(w->lib[k], (size_t)B * K);
    ALLOC(w->dlib[k], (size_t)B * K);
    ALLOC(w->key[k], B);
    if (dec_work_new(m, k, B, &w->dec[k], err)) goto fail;
  }
  ALLOC(w->head, (size_t)B * d);
  ALLOC(w->dhead, (size_t)B * d);
  ALLOC(w->dh, (size_t)B * max_h);
  ALLOC(w->sbar, BKd);
  ALLOC(w->sbar_hat, BKd);
  ALLOC(w->dsbar_hat, BKd);
  ALLOC(w->sbar_norm, B);
  int KB = K * B;
  if (nn_mlp_cache_new(&m->dsc, KB, &w->dsc_cache, err)) goto fail;
  ALLOC(w->dsc_in, (size_t)KB * Kd);
  ALLOC(w->dsc_din, (size_t)KB * Kd);
  ALLOC(w->logits, (size_t)KB * K);
  ALLOC(w->dlogits, (size_t)KB * K);
  ALLOC(w->dsc_dh, (size_t)KB * nn_mlp_out_width(&m->dsc));
  ALLOC(w->dsc_batch, KB);
  ALLOC(w->dsc_label, KB);
  ALLOC(w->dsc_key, KB);
  *out = w;
  return CLUE_OK;
fail:
  clue_work_free(w);
  return CLUE_ENOMEM;
}

static void split_free(out_split *s) {
  clue_shm_free(s->shm);
  free(s->h_all);
  free(s->dloc_s);
  free(s->row_scale);
  free(s->row_sl);
  free(s->row0);
  free(s->ident);
  free(s->nnz);
  free(s->fb);
  free(s->cut);
  free(s->blk_ip);
  free(s->blk_idx);
  free(s->blk_val);
  free(s->g_of);
  memset(s, 0, sizeof *s);
}

/* The widest of the P slices of F features. */
static int64_t widest_slice(int64_t F, int P) {
  int64_t widest = 0;
  for (int q = 0; q < P; q++) {
    int64_t width = feat_begin(F, P, q + 1) - feat_begin(F, P, q);
    widest = width > widest ? width : widest;
  }
  return widest;
}

int clue_work_split_outputs(clue_work *w, const clue_model *m, const clue_comm *comm,
                            int rows_global, clue_err *err) {
  out_split *s = &w->split;
  if (comm->size == 1 || s->shm) return CLUE_OK;
  int P = comm->size;
  int64_t cap = (int64_t)DEC_APPS * rows_global, mine = (int64_t)DEC_APPS * w->B;
  int64_t own = (int64_t)DEC_APPS * ((rows_global + P - 1) / P); /* a rank's rows, at most */
  int64_t hw_max = 1, f_max = 1, slice_max = 1;
  for (int k = 0; k < w->K; k++) {
    int64_t F = m->spec.n_feat[k], hw = nn_mlp_out_width(&m->dec[k]);
    hw_max = hw > hw_max ? hw : hw_max;
    f_max = F > f_max ? F : f_max;
    int64_t widest = widest_slice(F, P);
    slice_max = widest > slice_max ? widest : slice_max;
  }
  int64_t region_a = cap * hw_max * (int64_t)sizeof(real);
  int64_t b_rows = cap * slice_max > own * f_max ? cap * slice_max : own * f_max;
  s->a_off = 64;
  s->b_off = s->a_off + (region_a + 63) / 64 * 64;
  s->c_off = s->b_off + (b_rows * (int64_t)sizeof(real) + 63) / 64 * 64;
  s->d_off = s->c_off + (3 * cap * (int64_t)sizeof(double) + 63) / 64 * 64;
  int64_t bytes = s->d_off + cap * slice_max * (int64_t)sizeof(real);
  s->h_all = clue_calloc((size_t)(cap * hw_max), sizeof(real), err);
  s->dloc_s = s->h_all ? clue_calloc((size_t)(cap * slice_max), sizeof(real), err) : NULL;
  s->row_scale = s->dloc_s ? clue_calloc((size_t)cap, sizeof(double), err) : NULL;
  s->row_sl = s->row_scale ? clue_calloc((size_t)cap, sizeof(double), err) : NULL;
  s->row0 = s->row_sl ? clue_calloc((size_t)P + 1, sizeof(int64_t), err) : NULL;
  s->ident = s->row0 ? clue_calloc((size_t)cap, sizeof(int64_t), err) : NULL;
  s->nnz = s->ident ? clue_calloc((size_t)P, sizeof(int64_t), err) : NULL;
  s->fb = s->nnz ? clue_calloc((size_t)P + 1, sizeof(int), err) : NULL;
  s->cut = s->fb ? clue_calloc((size_t)P + 1, sizeof(int64_t), err) : NULL;
  s->blk_ip = s->cut ? clue_calloc((size_t)P, sizeof(int64_t *), err) : NULL;
  s->blk_idx = s->blk_ip ? clue_calloc((size_t)P, sizeof(int32_t *), err) : NULL;
  s->blk_val = s->blk_idx ? clue_calloc((size_t)P, sizeof(float *), err) : NULL;
  int rc = clue_comm_agree(comm, s->blk_val ? CLUE_OK : CLUE_ENOMEM, err);
  if (!rc) rc = clue_shm_new(comm, bytes, &s->shm, err);
  if (rc || !s->shm) {
    split_free(s);
    return rc;
  }
  s->P = P;
  s->r = comm->rank;
  s->nodes = (split_nodes){.n = 1, .across = clue_comm_self()};
  s->cap_rows = cap;
  s->cap_own = own;
  s->tile = CLUE_TILE;
  for (int64_t i = 0; i < cap; i++) s->ident[i] = i;
  for (int k = 0; k < w->K; k++) { /* dw->loc and dw->dloc hold mine × F */
    int64_t F = m->spec.n_feat[k];
    s->local[k] = s->local_ok[k] = cap * widest_slice(F, P) <= mine * F;
  }
  return CLUE_OK;
}

static void esplit_free(enc_split *s) {
  clue_shm_free(s->shm);
  free(s->x_all);
  free(s->key_all);
  memset(s, 0, sizeof *s);
}

static int64_t up64(int64_t x) { return (x + 63) / 64 * 64; }

int clue_work_split_encoders(clue_work *w, const clue_model *m, const clue_comm *comm,
                             int rows_global, clue_err *err) {
  enc_split *s = &w->esplit;
  int K = w->K, P = comm->size, E = K * K;
  if (P == 1 || s->shm || E % P != 0 || rows_global > w->B) return CLUE_OK;
  int64_t cap_all = rows_global, cap_own = (rows_global + P - 1) / P, at = up64(8 * K);
  int in_max = 1;
  for (int k = 0; k < K; k++) {
    int in = m->spec.enc_in[k];
    in_max = in > in_max ? in : in_max;
    s->in_off[k] = at;
    s->key_off[k] = at = up64(at + cap_own * in * (int64_t)sizeof(real));
    at = up64(at + cap_own * (int64_t)sizeof(uint64_t));
    s->grad_off[k] = at;
    at = up64(at + cap_own * 2 * w->Kd * (int64_t)sizeof(real));
  }
  for (int e = 0; e < E; e++) {
    const nn_mlp *enc = &m->enc[e / K][e % K];
    s->out_off[e] = at;
    s->run_off[e] = at = up64(at + cap_all * 2 * w->d * (int64_t)sizeof(real));
    at = up64(at + (enc->batchnorm ? 2 * enc->depth * enc->width : 0) * (int64_t)sizeof(real));
  }
  s->x_all = clue_calloc((size_t)(cap_all * in_max), sizeof(real), err);
  s->key_all = s->x_all ? clue_calloc((size_t)cap_all, sizeof(uint64_t), err) : NULL;
  int rc = clue_comm_agree(comm, s->key_all ? CLUE_OK : CLUE_ENOMEM, err);
  if (!rc) rc = clue_shm_new(comm, at, &s->shm, err);
  if (rc || !s->shm) {
    esplit_free(s);
    return rc;
  }
  s->P = P;
  s->r = comm->rank;
  s->nodes = (split_nodes){.n = 1, .across = clue_comm_self()};
  s->cap_own = cap_own;
  s->cap_all = cap_all;
  return CLUE_OK;
}

void clue_work_set_nodes(clue_work *w, int nodes, const clue_comm *across) {
  split_nodes n = {.n = nodes, .across = *across};
  if (w->split.shm) w->split.nodes = n;
  if (w->esplit.shm) w->esplit.nodes = n;
}

int clue_work_encoder_owner(const clue_work *w, int k, int j) {
  return w->esplit.shm ? (k * w->K + j) % w->esplit.P : -1;
}

bool clue_work_outputs_split(const clue_work *w) { return w->split.shm != NULL; }

int clue_work_split_ranks(const clue_work *w) { return w->split.shm ? w->split.P : 0; }

int clue_work_share_tiles(clue_work *w, real *const *g_of_rank, bool cols_split,
                          clue_err *err) {
  out_split *s = &w->split;
  if (!s->shm) return CLUE_OK;
  free(s->g_of);
  s->g_of = NULL;
  s->cols_split = false;
  if (!g_of_rank) return CLUE_OK;
  s->g_of = clue_calloc((size_t)s->P, sizeof *s->g_of, err);
  if (!s->g_of) return CLUE_ENOMEM;
  memcpy(s->g_of, g_of_rank, (size_t)s->P * sizeof *s->g_of);
  s->cols_split = cols_split;
  return CLUE_OK;
}

void clue_work_set_tiles(clue_work *w, int width, int delay_us) {
  w->split.tile = width > 0 ? width : CLUE_TILE;
  w->split.tile_delay_us = delay_us;
}

int64_t clue_work_tiles_taken(const clue_work *w) { return w->split.taken; }

void clue_work_set_output_local(clue_work *w, int k, bool on) {
  if (k >= 0 && k < w->K) w->split.local[k] = on && w->split.local_ok[k];
}

bool clue_work_output_local(const clue_work *w, int k) {
  return w->split.shm != NULL && k >= 0 && k < w->K && w->split.local[k];
}

void clue_work_free(clue_work *w) {
  if (!w) return;
  split_free(&w->split);
  esplit_free(&w->esplit);
  for (int k = 0; k < CLUE_K; k++) {
    for (int j = 0; j < CLUE_K; j++) nn_mlp_cache_free(&w->enc_cache[k][j]);
    free(w->mean[k]);
    free(w->std[k]);
    free(w->tstd[k]);
    free(w->eps[k]);
    free(w->shat[k]);
    free(w->snorm[k]);
    free(w->dmean[k]);
    free(w->dstd[k]);
    free(w->dshat[k]);
    free(w->lib[k]);
    free(w->dlib[k]);
    free(w->key[k]);
    dec_work_free(&w->dec[k]);
  }
  free(w->head);
  free(w->dhead);
  free(w->dh);
  free(w->sbar);
  free(w->sbar_hat);
  free(w->dsbar_hat);
  free(w->sbar_norm);
  nn_mlp_cache_free(&w->dsc_cache);
  free(w->dsc_in);
  free(w->dsc_din);
  free(w->logits);
  free(w->dlogits);
  free(w->dsc_dh);
  free(w->dsc_batch);
  free(w->dsc_label);
  free(w->dsc_key);
  free(w);
}
