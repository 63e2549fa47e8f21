/* decode.c — applications of a decoder: stack forward per application, one
 * output layer over their stacked rows (whole on each rank, or split by
 * features over the ranks of a node: see out_split), likelihood per
 * application, backward. */
#include <string.h>

#include "clue/prof.h"
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
                      real *dloc, bool grad) {
  int64_t F = m->spec.n_feat[k];
  const real *bias = clue_arena_w(&m->gen, m->dec_bias[k]);
  nn_lik_grad g = {0};
  if (grad) {
    g.coef = a->coef;
    g.dloc = dloc + row0 * F;
    g.dlib = a->dlib;
    g.dscale = clue_arena_g(&m->gen, m->dec_scale[k]);
    g.dbias = clue_arena_g(&m->gen, m->dec_bias[k]);
    g.ddisp = clue_arena_g(&m->gen, m->dec_disp[k]);
    memset(a->dlib, 0, (size_t)a->n * sizeof(real));
  }
  return nn_lik_nll(&dw->terms, dw->loc + row0 * F, bias, a->n, a->batch, a->lib, a->target,
                    a->trow, grad ? &g : NULL, NULL);
}

/* ---- the output layer split by features (see out_split) ---- */

static char *slot(const out_split *s, int q) { return clue_shm_slot(s->shm, q); }

/* The ranks' barrier between writing and reading slots (its waiting counted with
 * the small collectives, apart from the copies). */
static void sync_slots(const out_split *s) {
  clue_prof_push(CLUE_PROF_COLL);
  clue_shm_sync(s->shm);
  clue_prof_pop();
}

/* Forward: every rank's stack outputs into h_all (rank after rank), this rank's
 * features of all those rows into its region B, then this rank's rows of every
 * rank's features into loc (rows × F). */
static bool split_forward(clue_model *m, dec_work *dw, out_split *s, int k, int64_t rows,
                          int hw) {
  int64_t F = m->spec.n_feat[k];
  char *me = slot(s, s->r);
  clue_prof_push(CLUE_PROF_XCHG);
  *(int64_t *)me = rows;
  if (rows <= s->cap_rows) memcpy(me + s->a_off, dw->h, (size_t)(rows * hw) * sizeof(real));
  sync_slots(s);
  s->row0[0] = 0;
  for (int q = 0; q < s->P; q++) s->row0[q + 1] = s->row0[q] + *(const int64_t *)slot(s, q);
  if (s->row0[s->P] > s->cap_rows) { /* more rows than promised: every rank sees it */
    clue_prof_pop();
    return false;
  }
  for (int q = 0; q < s->P; q++)
    memcpy(s->h_all + s->row0[q] * hw, slot(s, q) + s->a_off,
           (size_t)((s->row0[q + 1] - s->row0[q]) * hw) * sizeof(real));
  clue_prof_pop();
  int f0 = feat_begin(F, s->P, s->r), f1 = feat_begin(F, s->P, s->r + 1);
  nn_linear_forward_rows(&m->gen, &m->dec_loc[k], f0, f1, s->h_all, (int)s->row0[s->P],
                         (real *)(me + s->b_off));
  clue_prof_push(CLUE_PROF_XCHG);
  sync_slots(s);
  for (int q = 0; q < s->P; q++) {
    int g0 = feat_begin(F, s->P, q), width = feat_begin(F, s->P, q + 1) - g0;
    const real *src = (const real *)(slot(s, q) + s->b_off) + s->row0[s->r] * width;
    for (int64_t i = 0; i < rows; i++)
      memcpy(dw->loc + i * F + g0, src + i * width, (size_t)width * sizeof(real));
  }
  clue_prof_pop();
  return true;
}

/* Backward, after this rank's rows' dloc (rows × F) were written to its region
 * B: this rank's features of every rank's dloc into dloc_s, the weight gradient
 * of those features, the input-gradient partial sums (all rows) into region A,
 * and this rank's rows of their sum over the ranks (in rank order) into dh. */
static void split_backward(clue_model *m, dec_work *dw, out_split *s, int k, int64_t rows,
                           int hw) {
  int64_t F = m->spec.n_feat[k], R = s->row0[s->P];
  int f0 = feat_begin(F, s->P, s->r), f1 = feat_begin(F, s->P, s->r + 1), width = f1 - f0;
  char *me = slot(s, s->r);
  clue_prof_push(CLUE_PROF_XCHG);
  sync_slots(s);
  for (int q = 0; q < s->P; q++) {
    const real *src = (const real *)(slot(s, q) + s->b_off);
    for (int64_t i = s->row0[q]; i < s->row0[q + 1]; i++, src += F)
      memcpy(s->dloc_s + i * width, src + f0, (size_t)width * sizeof(real));
  }
  real *part = (real *)(me + s->a_off);
  memset(part, 0, (size_t)(R * hw) * sizeof(real));
  clue_prof_pop();
  nn_linear_backward_rows(&m->gen, &m->dec_loc[k], f0, f1, s->h_all, s->dloc_s, (int)R, part);
  clue_prof_push(CLUE_PROF_XCHG);
  sync_slots(s);
  int64_t n = rows * hw;
  memcpy(dw->dh, (const real *)(slot(s, 0) + s->a_off) + s->row0[s->r] * hw,
         (size_t)n * sizeof(real));
  for (int q = 1; q < s->P; q++) {
    const real *restrict src = (const real *)(slot(s, q) + s->a_off) + s->row0[s->r] * hw;
    real *restrict dh = dw->dh;
    for (int64_t i = 0; i < n; i++) dh[i] += src[i];
  }
  sync_slots(s); /* region A is read no more before it is written again */
  clue_prof_pop();
}

/* ---- one run of a decoder ---- */

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
  out_split *s = &w->split;
  bool split = s->shm && comm && comm->size == s->P;
  real *dloc = dw->dloc;
  if (split) split = split_forward(m, dw, s, k, rows, hw);
  if (split) {
    if (grad) { /* region B becomes this rank's dloc once every rank has read it */
      sync_slots(s);
      dloc = (real *)(slot(s, s->r) + s->b_off);
    }
  } else {
    nn_linear_forward(&m->gen, &m->dec_loc[k], dw->h, (int)rows, dw->loc);
  }
  int64_t row0 = 0;
  for (int i = 0; i < n_apps; i++) {
    dw->app[i].nll = app_nll(m, dw, k, &dw->app[i], row0, dloc, grad);
    row0 += dw->app[i].n;
  }
  if (!grad) return;
  if (split) {
    split_backward(m, dw, s, k, rows, hw);
  } else {
    memset(dw->dh, 0, (size_t)rows * hw * sizeof(real));
    nn_linear_backward(&m->gen, &m->dec_loc[k], dw->h, dw->dloc, (int)rows, dw->dh);
  }
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
