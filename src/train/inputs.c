/* inputs.c — preprocessing fitted on the training cells and applied to the
 * rank's rows: encoder inputs and decoder targets for every modality. */
#include <stdlib.h>
#include <string.h>

#include "clue/train.h"

int clue_fit_preps(const clue_config *cfg, const clue_dataset *d, const clue_comm *comm,
                   int verbose, clue_prep **prep, clue_err *err) {
  int n_hvg_auto = 5000;
  for (int k = 0; k < cfg->n_mod; k++)
    if (cfg->mod[k].preprocess == CLUE_PREP_LSI) n_hvg_auto = 10000;
  int64_t n_local = d->local_end - d->local_begin;
  for (int k = 0; k < d->n_mod; k++) {
    const clue_csr *x = d->mod[k].x;
    int32_t *batch = clue_malloc((size_t)(x->n_rows + 1) * sizeof *batch, err);
    if (!batch) return CLUE_ENOMEM;
    int64_t r = 0;
    for (int64_t c = 0; c < n_local; c++)
      if (d->local_row[c * d->n_mod + k] >= 0) batch[r++] = d->local_batch[c];
    int rc = clue_prep_fit(&cfg->mod[k], x, batch, d->n_batches, n_hvg_auto, cfg->seed,
                           comm, verbose, &prep[k], err);
    free(batch);
    if (!rc && d->mod[k].var_names) rc = clue_prep_set_names(prep[k], d->mod[k].var_names, err);
    if (rc) return clue_err_prefix(err, "preprocessing %s", d->mod[k].what);
  }
  return CLUE_OK;
}

int clue_inputs_build(clue_prep *const *prep, const clue_dataset *d, clue_inputs *in,
                      clue_err *err) {
  memset(in, 0, sizeof *in);
  in->n_mod = d->n_mod;
  for (int k = 0; k < d->n_mod; k++) {
    const clue_csr *x = d->mod[k].x;
    in->enc_in[k] = prep[k]->n_components;
    in->enc[k] = clue_malloc((size_t)(x->n_rows + 1) * in->enc_in[k] * sizeof(float), err);
    if (!in->enc[k]) return CLUE_ENOMEM;
    int rc = clue_prep_encode_input(prep[k], x, in->enc[k], err);
    if (!rc) rc = clue_prep_decode_target(prep[k], x, &in->target[k], err);
    if (rc) return clue_err_prefix(err, "preparing %s", d->mod[k].what);
  }
  return CLUE_OK;
}

void clue_inputs_release(clue_inputs *in) {
  for (int k = 0; k < CLUE_K; k++) {
    free(in->enc[k]);
    clue_csr_free(in->target[k]);
  }
  memset(in, 0, sizeof *in);
}
