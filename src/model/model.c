/* model.c — building and initialising the CLUE network. */
#include "clue/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/rng.h"

static int add_vector_param(clue_arena *a, const char *prefix, const char *what,
                            int rows, int cols, int *idx, clue_err *err) {
  char name[CLUE_TENSOR_NAME_MAX];
  snprintf(name, sizeof name, "%s.%s", prefix, what);
  *idx = clue_arena_add(a, name, rows, cols, err);
  return *idx < 0 ? *idx : CLUE_OK;
}

static int check_spec(const clue_model_spec *s, clue_err *err) {
  if (s->n_mod < 2 || s->n_mod > CLUE_K)
    return clue_fail(err, CLUE_EINVAL, "model: %d modalities (need 2 to %d)", s->n_mod,
                     CLUE_K);
  if (s->latent_dim < 1 || s->n_batches < 1)
    return clue_fail(err, CLUE_EINVAL, "model: latent_dim %d, n_batches %d must be >= 1",
                     s->latent_dim, s->n_batches);
  for (int k = 0; k < s->n_mod; k++)
    if (s->enc_in[k] < 1 || s->n_feat[k] < 1)
      return clue_fail(err, CLUE_EINVAL,
                       "model: modality %s has %d encoder inputs and %d features",
                       s->names[k], s->enc_in[k], s->n_feat[k]);
  return CLUE_OK;
}

/* Registers every tensor of the network in the three arenas. */
static int build(clue_model *m, clue_err *err) {
  const clue_model_spec *s = &m->spec;
  int K = s->n_mod, d = s->latent_dim, nb = s->n_batches, rc;
  char name[CLUE_TENSOR_NAME_MAX];
  for (int k = 0; k < K; k++) {
    for (int j = 0; j < K; j++) {
      snprintf(name, sizeof name, "enc.%s.%s", s->names[k], s->names[j]);
      rc = nn_mlp_add(&m->gen, &m->buf, name, s->enc_in[k], s->encoder.width,
                      s->encoder.depth, 0, false, true, s->dropout,
                      (uint64_t)(1 + k * K + j), &m->enc[k][j], err);
      if (rc) return rc;
      int h = nn_mlp_out_width(&m->enc[k][j]);
      snprintf(name, sizeof name, "enc.%s.%s.loc", s->names[k], s->names[j]);
      if ((rc = nn_linear_add(&m->gen, name, h, d, &m->enc_loc[k][j], err))) return rc;
      snprintf(name, sizeof name, "enc.%s.%s.std", s->names[k], s->names[j]);
      if ((rc = nn_linear_add(&m->gen, name, h, d, &m->enc_std[k][j], err))) return rc;
    }
    snprintf(name, sizeof name, "lib.%s", s->names[k]);
    if ((rc = nn_linear_add(&m->gen, name, s->n_feat[k], K, &m->lib[k], err))) return rc;
  }
  for (int k = 0; k < K; k++) {
    snprintf(name, sizeof name, "dec.%s", s->names[k]);
    rc = nn_mlp_add(&m->gen, &m->buf, name, d, s->decoder.width, s->decoder.depth, nb,
                    true, true, s->dropout, (uint64_t)(1 + K * K + k), &m->dec[k], err);
    if (rc) return rc;
    int h = nn_mlp_out_width(&m->dec[k]);
    snprintf(name, sizeof name, "dec.%s.loc", s->names[k]);
    if ((rc = nn_linear_add(&m->gen, name, h, s->n_feat[k], &m->dec_loc[k], err))) return rc;
    snprintf(name, sizeof name, "dec.%s", s->names[k]);
    if ((rc = add_vector_param(&m->gen, name, "scale_lin", nb, s->n_feat[k],
                               &m->dec_scale[k], err)))
      return rc;
    if ((rc = add_vector_param(&m->gen, name, "bias", nb, s->n_feat[k], &m->dec_bias[k],
                               err)))
      return rc;
    const char *disp = s->lik[k] == CLUE_LIK_NORMAL ? "log_std" : "log_theta";
    if ((rc = add_vector_param(&m->gen, name, disp, nb, s->n_feat[k], &m->dec_disp[k],
                               err)))
      return rc;
  }
  int nb_dsc = nb > 1 ? nb : 0;
  rc = nn_mlp_add(&m->disc, &m->buf, "dsc", K * d, s->discriminator.width,
                  s->discriminator.depth, nb_dsc, false, false, s->dropout,
                  (uint64_t)(2 + K * K + K), &m->dsc, err);
  if (rc) return rc;
  return nn_linear_add(&m->disc, "dsc.pred", nn_mlp_out_width(&m->dsc), K, &m->dsc_pred,
                       err);
}

/* PyTorch-default initialisation; decoder per-(feature, batch) parameters are 0. */
static void init(clue_model *m, uint64_t seed) {
  int K = m->spec.n_mod;
  for (int k = 0; k < K; k++) {
    for (int j = 0; j < K; j++) {
      nn_mlp_init(&m->gen, &m->buf, &m->enc[k][j], seed);
      nn_linear_init(&m->gen, &m->enc_loc[k][j], seed);
      nn_linear_init(&m->gen, &m->enc_std[k][j], seed);
    }
    nn_linear_init(&m->gen, &m->lib[k], seed);
    nn_mlp_init(&m->gen, &m->buf, &m->dec[k], seed);
    nn_linear_init(&m->gen, &m->dec_loc[k], seed);
  }
  /* The discriminator's streams are offset so they differ from the generator's
   * tensors with the same index. */
  nn_mlp_init(&m->disc, &m->buf, &m->dsc, seed ^ 0x5bd1e995ULL);
  nn_linear_init(&m->disc, &m->dsc_pred, seed ^ 0x5bd1e995ULL);
}

int clue_model_new(const clue_model_spec *spec, uint64_t seed, clue_model **out,
                   clue_err *err) {
  *out = NULL;
  int rc = check_spec(spec, err);
  if (rc) return rc;
  clue_model *m = clue_calloc(1, sizeof *m, err);
  if (!m) return CLUE_ENOMEM;
  m->spec = *spec;
  rc = build(m, err);
  if (!rc) rc = clue_arena_alloc(&m->gen, err);
  if (!rc) rc = clue_arena_alloc(&m->disc, err);
  if (!rc) rc = clue_arena_alloc(&m->buf, err);
  if (rc) {
    clue_model_free(m);
    return rc;
  }
  init(m, seed);
  *out = m;
  return CLUE_OK;
}

void clue_model_free(clue_model *m) {
  if (!m) return;
  clue_arena_release(&m->gen);
  clue_arena_release(&m->disc);
  clue_arena_release(&m->buf);
  free(m);
}

void clue_loss_weights_from_config(const clue_config *cfg, clue_loss_weights *w) {
  memset(w, 0, sizeof *w);
  w->data = cfg->lam_data;
  w->kl = cfg->lam_kl;
  w->align = cfg->lam_align;
  w->cross = cfg->lam_cross;
  w->real_cross = cfg->lam_real_cross;
  w->cos = cfg->lam_cos;
  double total = 0;
  for (int k = 0; k < cfg->n_mod; k++) total += cfg->mod[k].weight;
  double norm = total > 0 ? total / cfg->n_mod : 1;
  for (int k = 0; k < cfg->n_mod; k++) w->mod_weight[k] = cfg->mod[k].weight / norm;
}

int clue_minibatch_new(int n_mod, const int *enc_in, int B, clue_minibatch **out,
                       clue_err *err) {
  clue_minibatch *mb = clue_calloc(1, sizeof *mb, err);
  if (!mb) return CLUE_ENOMEM;
  mb->B = B;
  for (int k = 0; k < n_mod; k++) {
    clue_mod_rows *r = &mb->mod[k];
    r->pos = clue_calloc((size_t)B, sizeof *r->pos, err);
    r->enc_in = clue_calloc((size_t)B * enc_in[k], sizeof *r->enc_in, err);
    r->trow = clue_calloc((size_t)B, sizeof *r->trow, err);
    r->batch = clue_calloc((size_t)B, sizeof *r->batch, err);
    if (!r->pos || !r->enc_in || !r->trow || !r->batch) goto fail;
  }
  mb->joint_pos = clue_calloc((size_t)B, sizeof *mb->joint_pos, err);
  mb->joint_row = clue_calloc((size_t)B * CLUE_K, sizeof *mb->joint_row, err);
  mb->joint_batch = clue_calloc((size_t)B, sizeof *mb->joint_batch, err);
  if (!mb->joint_pos || !mb->joint_row || !mb->joint_batch) goto fail;
  *out = mb;
  return CLUE_OK;
fail:
  clue_minibatch_free(mb);
  return CLUE_ENOMEM;
}

void clue_minibatch_free(clue_minibatch *mb) {
  if (!mb) return;
  for (int k = 0; k < CLUE_K; k++) {
    free(mb->mod[k].pos);
    free(mb->mod[k].enc_in);
    free(mb->mod[k].trow);
    free(mb->mod[k].batch);
  }
  free(mb->joint_pos);
  free(mb->joint_row);
  free(mb->joint_batch);
  free(mb);
}
