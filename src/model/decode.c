/* decode.c — applications of a decoder: stack forward per application, one
 * output layer over their stacked rows, likelihood per application, backward. */
#include <string.h>

#include "model_internal.h"

static nn_mode app_mode(const dec_app *a, const clue_pass *p, const clue_comm *comm) {
  nn_mode mode = {.train = p->train, .comm = comm};
  mode.rng.seed = p->seed;
  mode.rng.pass = app_pass(p->pass, a->id);
  mode.rng.row_key = a->key;
  return mode;
}

/* Σ NLL of application a's rows (loc: its rows of the stacked output); with
 * grad, its dloc rows and dlib, and the per-(feature, batch) gradients. */
static double app_nll(clue_model *m, dec_work *dw, int k, dec_app *a, int64_t row0,
                      bool grad) {
  int64_t F = m->spec.n_feat[k];
  const real *bias = clue_arena_w(&m->gen, m->dec_bias[k]);
  nn_lik_grad g = {0};
  if (grad) {
    g.coef = a->coef;
    g.dloc = dw->dloc + row0 * F;
    g.dlib = a->dlib;
    g.dscale = clue_arena_g(&m->gen, m->dec_scale[k]);
    g.dbias = clue_arena_g(&m->gen, m->dec_bias[k]);
    g.ddisp = clue_arena_g(&m->gen, m->dec_disp[k]);
    memset(a->dlib, 0, (size_t)a->n * sizeof(real));
  }
  return nn_lik_nll(&dw->terms, dw->loc + row0 * F, bias, a->n, a->batch, a->lib, a->target,
                    a->trow, grad ? &g : NULL, NULL);
}

void dec_run(clue_model *m, clue_work *w, int k, int n_apps, const clue_pass *p, bool grad,
             const clue_comm *comm) {
  dec_work *dw = &w->dec[k];
  int hw = nn_mlp_out_width(&m->dec[k]), d = w->d;
  int64_t rows = 0;
  for (int i = 0; i < n_apps; i++) {
    dec_app *a = &dw->app[i];
    nn_mode mode = app_mode(a, p, comm);
    const real *h = nn_mlp_forward(&m->gen, &m->buf, &m->dec[k], a->z, a->batch, a->n,
                                   a->n_global, &mode, &a->cache);
    memcpy(dw->h + rows * hw, h, (size_t)a->n * hw * sizeof(real));
    rows += a->n;
  }
  nn_linear_forward(&m->gen, &m->dec_loc[k], dw->h, (int)rows, dw->loc);
  int64_t row0 = 0;
  for (int i = 0; i < n_apps; i++) {
    dw->app[i].nll = app_nll(m, dw, k, &dw->app[i], row0, grad);
    row0 += dw->app[i].n;
  }
  if (!grad) return;
  memset(dw->dh, 0, (size_t)rows * hw * sizeof(real));
  nn_linear_backward(&m->gen, &m->dec_loc[k], dw->h, dw->dloc, (int)rows, dw->dh);
  row0 = 0;
  for (int i = 0; i < n_apps; i++) {
    dec_app *a = &dw->app[i];
    nn_mode mode = app_mode(a, p, comm);
    memset(a->dz, 0, (size_t)a->n * d * sizeof(real));
    nn_mlp_backward(&m->gen, &m->dec[k], &a->cache, dw->dh + row0 * hw, a->n, a->n_global,
                    a->dz, &mode);
    row0 += a->n;
  }
}
