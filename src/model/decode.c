/* decode.c — one application of a decoder: stack forward, likelihood, backward. */
#include <string.h>

#include "model_internal.h"

double dec_apply(clue_model *m, clue_work *w, int k, const clue_csr *target, int n,
                 int64_t n_global, const clue_pass *p, int app, real coef, bool grad,
                 const clue_comm *comm) {
  dec_work *dw = &w->dec[k];
  int F = m->spec.n_feat[k], d = w->d;
  nn_mode mode = {.train = p->train, .comm = comm};
  mode.rng.seed = p->seed;
  mode.rng.pass = app_pass(p->pass, app);
  mode.rng.row_key = dw->key;
  real *h = nn_mlp_forward(&m->gen, &m->buf, &m->dec[k], dw->z, dw->batch, n, n_global,
                           &mode, &dw->cache);
  nn_linear_forward(&m->gen, &m->dec_loc[k], h, n, dw->loc);
  const real *bias = clue_arena_w(&m->gen, m->dec_bias[k]);
  nn_lik_grad g = {0};
  if (grad) {
    g.coef = coef;
    g.dloc = dw->dloc;
    g.dlib = dw->dlib;
    g.dscale = clue_arena_g(&m->gen, m->dec_scale[k]);
    g.dbias = clue_arena_g(&m->gen, m->dec_bias[k]);
    g.ddisp = clue_arena_g(&m->gen, m->dec_disp[k]);
    memset(dw->dlib, 0, (size_t)n * sizeof(real));
  }
  double nll = nn_lik_nll(&dw->terms, dw->loc, bias, n, dw->batch, dw->lib, target,
                          dw->trow, grad ? &g : NULL, NULL);
  if (!grad) return nll;
  int hw = nn_mlp_out_width(&m->dec[k]);
  (void)F;
  memset(dw->dh, 0, (size_t)n * hw * sizeof(real));
  nn_linear_backward(&m->gen, &m->dec_loc[k], h, dw->dloc, n, dw->dh);
  memset(dw->dz, 0, (size_t)n * d * sizeof(real));
  nn_mlp_backward(&m->gen, &m->dec[k], &dw->cache, dw->dh, n, n_global, dw->dz, &mode);
  return nll;
}
