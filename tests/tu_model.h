/* tu_model.h — small model fixtures shared by the tests of the network: a spec
 * filled from arrays, and random sparse decoder targets. */
#ifndef CLUE_TU_MODEL_H
#define CLUE_TU_MODEL_H

#include <stdio.h>
#include <string.h>

#include "clue/model.h"
#include "clue/rng.h"

/* A spec of n_mod modalities with latent_dim 3, two batches, dropout 0.2 and
 * normalised samples; hidden stacks as given. */
static inline void tu_model_spec(clue_model_spec *s, int n_mod, const char *const *names,
                                 const clue_likelihood *lik, const int *enc_in,
                                 const int *n_feat, clue_mlp_config enc, clue_mlp_config dec,
                                 clue_mlp_config disc) {
  memset(s, 0, sizeof *s);
  s->n_mod = n_mod;
  for (int k = 0; k < n_mod; k++) {
    snprintf(s->names[k], sizeof s->names[k], "%s", names[k]);
    s->lik[k] = lik[k];
    s->enc_in[k] = enc_in[k];
    s->n_feat[k] = n_feat[k];
  }
  s->latent_dim = 3;
  s->n_batches = 2;
  s->encoder = enc;
  s->decoder = dec;
  s->discriminator = disc;
  s->dropout = 0.2;
  s->normalize_u = true;
}

/* Loss weights with every term on, each at its own value, and modality weights
 * that differ (1, 1.25, 1.5, ...). */
static inline clue_loss_weights tu_all_terms(void) {
  clue_loss_weights w;
  memset(&w, 0, sizeof w);
  w.data = 1;
  w.kl = 0.5;
  w.align = 0.2;
  w.cross = 1;
  w.real_cross = 0.7;
  w.cos = 0.3;
  for (int k = 0; k < CLUE_K; k++) w.mod_weight[k] = 1.0 + 0.25 * k;
  return w;
}

/* n × F targets of a likelihood: NB counts 1..max_count on ~60 % of entries,
 * Bernoulli ones on ~60 %, Normal values on every entry. */
static inline clue_csr *tu_random_targets(clue_likelihood lik, int n, int F, uint64_t seed,
                                          int max_count) {
  clue_err err;
  clue_csr *t = clue_csr_new(n, F, (int64_t)n * F, &err);
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 1, 0);
  int64_t at = 0;
  for (int i = 0; i < n; i++) {
    for (int f = 0; f < F; f++) {
      if (lik != CLUE_LIK_NORMAL && clue_rng_uniform(&r) < 0.4) continue;
      t->indices[at] = f;
      if (lik == CLUE_LIK_NB)
        t->data[at] = (float)(1 + clue_rng_below(&r, (uint64_t)max_count));
      else if (lik == CLUE_LIK_BERNOULLI)
        t->data[at] = 1;
      else
        t->data[at] = (float)clue_rng_normal(&r);
      at++;
    }
    t->indptr[i + 1] = at;
  }
  return t;
}

#endif
