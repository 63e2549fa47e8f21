/* decode.c — applications of a decoder: stack forward per application, one
 * output layer over their stacked rows (whole on each rank, or split by
 * features over the ranks of a node: see out_split), likelihood per
 * application, backward. */
#include <math.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

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

/* The ranks synchronise through the window's arrivals (shm.h): a rank says it
 * is done with arrive() and waits for the others only where it needs their
 * work (its waiting counted with the small collectives, apart from the copies).
 * Every rank makes the same arrivals in the same order. */
static uint64_t arrive(const out_split *s) { return clue_shm_arrive(s->shm); }

static void wait_for(const out_split *s, uint64_t n) {
  clue_prof_push(CLUE_PROF_COLL);
  clue_shm_wait(s->shm, n);
  clue_prof_pop();
}

/* A whole barrier: arrive, then wait for every rank's same arrival. */
static void sync_slots(const out_split *s) { wait_for(s, arrive(s)); }

/* This rank's dloc in a local likelihood (R × slice, region D: see out_split). */
static real *my_dloc(const out_split *s) { return (real *)(slot(s, s->r) + s->d_off); }

/* ---- targets of a local-likelihood decoder, through region B ----
 *
 * Region B of a slot then holds, from its start: dest[P + 1] (byte offsets of the
 * blocks below), coef[DEC_APPS] (each application's gradient scale), then per
 * row its batch and its application (int32 each) and its library size (NB),
 * then one block per rank q
 * with the rows' targets in q's features: indptr (rows + 1, int64), column
 * indices counted from q's first feature (int32), values (float). */

static int64_t up8(int64_t x) { return (x + 7) / 8 * 8; }

/* Rank owning feature f, starting the search at rank q (that of the row's
 * previous target: sorted indices move forward by at most a step or two);
 * fb: the P + 1 slice bounds. */
static int owner_near(const int *fb, int q, int f) {
  while (f >= fb[q + 1]) q++;
  while (f < fb[q]) q--;
  return q;
}

typedef struct row_meta {
  int64_t *dest;
  real *coef;
  int32_t *batch, *app;
  real *lib;
} row_meta;

static row_meta meta_at(char *b, int P, int64_t rows) {
  row_meta m;
  m.dest = (int64_t *)b;
  m.coef = (real *)(b + up8((int64_t)(P + 1) * 8));
  m.batch = (int32_t *)((char *)m.coef + up8((int64_t)DEC_APPS * sizeof(real)));
  m.app = m.batch + rows;
  m.lib = (real *)(b + up8((char *)(m.app + rows) - b));
  return m;
}

/* Block q of region B (rows rows): its indptr, indices and values. */
static void block_at(char *b, const row_meta *m, int q, int64_t rows, int64_t **ip,
                     int32_t **idx, float **val) {
  *ip = (int64_t *)(b + m->dest[q]);
  *idx = (int32_t *)(*ip + rows + 1);
  int64_t idx_bytes = (m->dest[q + 1] - m->dest[q] - (rows + 1) * 8) / 2; /* = the values' */
  *val = (float *)((char *)*idx + idx_bytes);
}

/* For a row of targets whose features ascend (as clue_csr promises; other rows
 * take the entry-by-entry path): cut[q] = the first entry in rank q's features
 * or later, for q in [0, P], found by bisection; false when they do not ascend. */
static bool row_cuts(const int32_t *ix, int64_t len, const int *fb, int P, int64_t *cut) {
  int descents = 0;
  for (int64_t e = 1; e < len; e++) descents += ix[e - 1] >= ix[e];
  if (descents) return false;
  cut[0] = 0;
  cut[P] = len;
  for (int q = 1; q < P; q++) {
    int64_t lo = cut[q - 1], hi = len; /* the first entry >= fb[q] is in [lo, hi] */
    while (lo < hi) {
      int64_t mid = lo + (hi - lo) / 2;
      if (ix[mid] < fb[q])
        lo = mid + 1;
      else
        hi = mid;
    }
    cut[q] = lo;
  }
  return true;
}

/* n entries of one rank's features, counted from its first feature f0, to idx
 * and val; *count += n. */
static void put_run(const int32_t *restrict ix, const float *restrict x, int64_t n, int f0,
                    int32_t *restrict idx, float *restrict val, int64_t *count) {
  for (int64_t e = 0; e < n; e++) idx[e] = ix[e] - f0;
  memcpy(val, x, (size_t)n * sizeof *val);
  *count += n;
}

/* Writes this run's rows' targets into region B of this rank's slot; false
 * (nothing written) when they do not fit in max_bytes. */
static bool put_targets(const dec_work *dw, int n_apps, const out_split *s, int64_t F,
                        int64_t rows, int64_t max_bytes) {
  char *b = slot(s, s->r) + s->b_off;
  int P = s->P, *fb = s->fb;
  int64_t *nnz = s->nnz;
  for (int q = 0; q <= P; q++) fb[q] = feat_begin(F, P, q);
  memset(nnz, 0, (size_t)P * sizeof *nnz);
  for (int i = 0; i < n_apps; i++) {
    const dec_app *a = &dw->app[i];
    const clue_csr *t = a->target;
    for (int j = 0; j < a->n; j++) {
      int64_t e0 = t->indptr[a->trow[j]], len = t->indptr[a->trow[j] + 1] - e0;
      if (row_cuts(t->indices + e0, len, fb, P, s->cut)) {
        for (int q = 0; q < P; q++) nnz[q] += s->cut[q + 1] - s->cut[q];
        continue;
      }
      for (int64_t e = e0, q = 0; e < e0 + len; e++)
        nnz[q = owner_near(fb, (int)q, t->indices[e])]++;
    }
  }
  row_meta m = meta_at(b, P, rows); /* its pointers only: nothing written yet */
  int64_t at = (char *)(m.lib + rows) - b;
  for (int q = 0; q < P; q++) at = up8(at) + (rows + 1) * 8 + 2 * up8(nnz[q] * 4);
  if (at > max_bytes) return false;
  at = (char *)(m.lib + rows) - b;
  for (int q = 0; q < P; q++) {
    m.dest[q] = at = up8(at);
    at += (rows + 1) * 8 + 2 * up8(nnz[q] * 4);
  }
  m.dest[P] = at;
  for (int q = 0; q < P; q++) {
    block_at(b, &m, q, rows, &s->blk_ip[q], &s->blk_idx[q], &s->blk_val[q]);
    s->blk_ip[q][0] = nnz[q] = 0;
  }
  int64_t r = 0;
  for (int i = 0; i < n_apps; i++) {
    const dec_app *a = &dw->app[i];
    const clue_csr *t = a->target;
    m.coef[i] = a->coef;
    for (int j = 0; j < a->n; j++, r++) {
      m.batch[r] = a->batch[j];
      m.app[r] = i;
      m.lib[r] = a->lib ? a->lib[j] : 0;
      int64_t e0 = t->indptr[a->trow[j]], len = t->indptr[a->trow[j] + 1] - e0;
      if (row_cuts(t->indices + e0, len, fb, P, s->cut))
        for (int q = 0; q < P; q++) /* whole runs: copies the compiler vectorises */
          put_run(t->indices + e0 + s->cut[q], t->data + e0 + s->cut[q],
                  s->cut[q + 1] - s->cut[q], fb[q], s->blk_idx[q] + nnz[q],
                  s->blk_val[q] + nnz[q], &nnz[q]);
      else
        for (int64_t e = e0, q = 0; e < e0 + len; e++) {
          int f = t->indices[e];
          q = owner_near(fb, (int)q, f);
          s->blk_idx[q][nnz[q]] = f - fb[q];
          s->blk_val[q][nnz[q]++] = t->data[e];
        }
      for (int q = 0; q < P; q++) s->blk_ip[q][r + 1] = nnz[q];
    }
  }
  return true;
}

/* Forward: every rank's stack outputs into h_all (rank after rank), then the
 * output layer for this rank's features of all those rows: with *local (every
 * rank's targets fitted in its slot), into dw->loc (R × slice), the likelihood
 * then running here on those rows (lik_local); otherwise into region B, and
 * this rank's rows of every rank's features into dw->loc (rows × F). False
 * (on every rank) when a rank's rows exceed cap_own or all rows cap_rows. */
static bool split_forward(clue_model *m, dec_work *dw, int n_apps, out_split *s, int k,
                          int64_t rows, int hw, bool *local) {
  int64_t F = m->spec.n_feat[k];
  char *me = slot(s, s->r);
  wait_for(s, s->done); /* the last run's readers of this slot are done */
  clue_prof_push(CLUE_PROF_XCHG);
  int64_t *head = (int64_t *)me;
  bool fits = rows <= s->cap_own;
  head[0] = rows;
  head[1] = fits && s->local[k] &&
            put_targets(dw, n_apps, s, F, rows, clue_shm_bytes(s->shm) - s->b_off);
  if (fits) memcpy(me + s->a_off, dw->h, (size_t)(rows * hw) * sizeof(real));
  sync_slots(s);
  s->row0[0] = 0;
  *local = s->local[k];
  for (int q = 0; q < s->P; q++) {
    const int64_t *hq = (const int64_t *)slot(s, q);
    s->row0[q + 1] = s->row0[q] + hq[0];
    *local = *local && hq[1];
    fits = fits && hq[0] <= s->cap_own;
  }
  if (!fits || s->row0[s->P] > s->cap_rows) { /* more rows than promised: all see it */
    clue_prof_pop();
    s->done = arrive(s); /* the headers are read */
    return false;
  }
  for (int q = 0; q < s->P; q++)
    memcpy(s->h_all + s->row0[q] * hw, slot(s, q) + s->a_off,
           (size_t)((s->row0[q + 1] - s->row0[q]) * hw) * sizeof(real));
  s->h_read = arrive(s);
  clue_prof_pop();
  int f0 = feat_begin(F, s->P, s->r), f1 = feat_begin(F, s->P, s->r + 1);
  real *loc_s = *local ? dw->loc : (real *)(me + s->b_off);
  nn_linear_forward_rows(&m->gen, &m->dec_loc[k], f0, f1, s->h_all, (int)s->row0[s->P], loc_s);
  if (*local) return true;
  sync_slots(s);
  clue_prof_push(CLUE_PROF_XCHG);
  for (int q = 0; q < s->P; q++) {
    int g0 = feat_begin(F, s->P, q), width = feat_begin(F, s->P, q + 1) - g0;
    const real *src = (const real *)(slot(s, q) + s->b_off) + s->row0[s->r] * width;
    for (int64_t i = 0; i < rows; i++)
      memcpy(dw->loc + i * F + g0, src + i * width, (size_t)width * sizeof(real));
  }
  clue_prof_pop();
  return true;
}

/* Rank q's rows in region B of its slot: their metadata and the targets in this
 * rank's features (a CSR of n rows, W columns). */
static row_meta rows_of(const out_split *s, int q, int W, clue_csr *t) {
  int64_t n = s->row0[q + 1] - s->row0[q];
  char *b = slot(s, q) + s->b_off;
  row_meta mq = meta_at(b, s->P, n);
  int64_t *ip;
  int32_t *idx;
  float *val;
  block_at(b, &mq, s->r, n, &ip, &idx, &val);
  *t = (clue_csr){.n_rows = n, .n_cols = W, .indptr = ip, .indices = idx, .data = val};
  return mq;
}

/* End of the run of rows of one application starting at row i0 of n. */
static int64_t run_end(const int32_t *app, int64_t i0, int64_t n) {
  int64_t i1 = i0 + 1;
  while (i1 < n && app[i1] == app[i0]) i1++;
  return i1;
}

static nn_lik_grad lik_grad(clue_model *m, int k, real coef, real *dloc) {
  nn_lik_grad g = {.coef = coef, .dloc = dloc};
  g.dscale = clue_arena_g(&m->gen, m->dec_scale[k]);
  g.dbias = clue_arena_g(&m->gen, m->dec_bias[k]);
  g.ddisp = clue_arena_g(&m->gen, m->dec_disp[k]);
  return g;
}

/* Per-row values of every rank in region C: value v (0: largest logit, 1: Σ
 * exp, 2: sl; see likelihood.h) of rank q's computation for row i. */
static double *stat_of(const out_split *s, int q, int v) {
  return (double *)(slot(s, q) + s->c_off) + (int64_t)v * s->cap_rows;
}

/* After phase 1 on every rank: each row's exp(m − M) / S for this rank's slice
 * (likelihood.h), combined in rank order (the same M and S on every rank). */
static void nb_row_scales(const out_split *s, int64_t R, int W) {
  for (int64_t i = 0; i < R; i++) {
    double M = -INFINITY, S = 0;
    for (int q = 0; q < s->P; q++) M = fmax(M, stat_of(s, q, 0)[i]);
    for (int q = 0; q < s->P; q++) S += stat_of(s, q, 1)[i] * exp(stat_of(s, q, 0)[i] - M);
    s->row_scale[i] = W > 0 ? exp(stat_of(s, s->r, 0)[i] - M) / S : 0;
  }
}

/* After phase 2 on every rank: each row's Σ p·gm over all features, in rank order. */
static void nb_row_sl(const out_split *s, int64_t R) {
  for (int64_t i = 0; i < R; i++) {
    double sum = 0;
    for (int q = 0; q < s->P; q++) sum += stat_of(s, q, 2)[i];
    s->row_sl[i] = sum;
  }
}

/* What lik_runs computes on each run of rows: the whole likelihood of
 * independent features (Bernoulli, Normal), or phase 2 or 3 of NB's. */
typedef enum { LIK_INDEP, LIK_NB_NLL, LIK_NB_GRAD } lik_part;

/* One part of the likelihood over every rank's rows on this rank's features,
 * run by run of one application; the NLL parts add to the applications' nll.
 * NB: p lives in region D (becoming dloc), gm in s->dloc_s. */
static void lik_runs(clue_model *m, dec_work *dw, const out_split *s, int k, lik_part part,
                     bool grad) {
  int64_t F = m->spec.n_feat[k];
  int f0 = feat_begin(F, s->P, s->r), f1 = feat_begin(F, s->P, s->r + 1), W = f1 - f0;
  const real *bias = clue_arena_w(&m->gen, m->dec_bias[k]);
  real *p = my_dloc(s), *gm = s->dloc_s;
  for (int q = 0; q < s->P; q++) {
    clue_csr t;
    row_meta mq = rows_of(s, q, W, &t);
    for (int64_t i0 = 0, i1; i0 < t.n_rows; i0 = i1) {
      i1 = run_end(mq.app, i0, t.n_rows);
      int64_t r0 = s->row0[q] + i0;
      int n = (int)(i1 - i0), app = mq.app[i0];
      nn_lik_grad g = lik_grad(m, k, mq.coef[app], part == LIK_INDEP ? p + r0 * W : NULL);
      nn_lik_grad *gp = grad ? &g : NULL;
      if (part == LIK_INDEP)
        dw->app[app].nll += nn_lik_nll_cols(&dw->terms, f0, f1, dw->loc + r0 * W, bias, n,
                                            mq.batch + i0, NULL, &t, s->ident + i0, gp, NULL);
      else if (part == LIK_NB_NLL)
        dw->app[app].nll += nn_nb_cols_nll(
            &dw->terms, f0, f1, n, mq.batch + i0, mq.lib + i0, s->row_scale + r0, &t,
            s->ident + i0, p + r0 * W, gm + r0 * W, gp, stat_of(s, s->r, 2) + r0);
      else
        nn_nb_cols_grad(&dw->terms, f0, f1, dw->loc + r0 * W, n, mq.batch + i0, mq.lib + i0,
                        s->row_sl + r0, gm + r0 * W, p + r0 * W, &g);
    }
  }
}

/* NB: the softmax spans the features of every rank; three phases with two
 * exchanges of per-row statistics through region C (likelihood.h). p lives in
 * region D (becoming dloc), gm in s->dloc_s. This rank's rows get their dlib. */
static void lik_local_nb(clue_model *m, dec_work *dw, int n_apps, const out_split *s, int k,
                         bool grad) {
  int64_t F = m->spec.n_feat[k], R = s->row0[s->P];
  int f0 = feat_begin(F, s->P, s->r), f1 = feat_begin(F, s->P, s->r + 1), W = f1 - f0;
  const real *bias = clue_arena_w(&m->gen, m->dec_bias[k]);
  for (int q = 0; q < s->P; q++) {
    clue_csr t;
    row_meta mq = rows_of(s, q, W, &t);
    int64_t r0 = s->row0[q];
    nn_nb_cols_exp(&dw->terms, f0, f1, dw->loc + r0 * W, bias, (int)t.n_rows, mq.batch,
                   my_dloc(s) + r0 * W, stat_of(s, s->r, 0) + r0, stat_of(s, s->r, 1) + r0);
  }
  sync_slots(s);
  nb_row_scales(s, R, W);
  lik_runs(m, dw, s, k, LIK_NB_NLL, grad);
  if (!grad) return;
  sync_slots(s);
  nb_row_sl(s, R);
  lik_runs(m, dw, s, k, LIK_NB_GRAD, true);
  const double *sl = s->row_sl + s->row0[s->r]; /* this rank's rows, application by application */
  for (int i = 0; i < n_apps; sl += dw->app[i].n, i++)
    for (int j = 0; j < dw->app[i].n; j++) dw->app[i].dlib[j] = dw->app[i].coef * (real)sl[j];
}

/* The likelihood of every rank's rows on this rank's features (dw->loc: R ×
 * slice), reading their targets from the slots; each row's NLL counts in this
 * rank's application of the same index (the ranks' sums then add up to every
 * row's whole NLL). With grad: region D's dloc (R × slice), the per-(feature, batch)
 * gradients of this rank's features, and the dlib of this rank's rows (NB; zero
 * otherwise). */
static void lik_local(clue_model *m, dec_work *dw, int n_apps, const out_split *s, int k,
                      bool grad) {
  for (int i = 0; i < n_apps; i++) {
    dw->app[i].nll = 0;
    if (grad) memset(dw->app[i].dlib, 0, (size_t)dw->app[i].n * sizeof(real));
  }
  if (m->spec.lik[k] == CLUE_LIK_NB)
    lik_local_nb(m, dw, n_apps, s, k, grad);
  else
    lik_runs(m, dw, s, k, LIK_INDEP, grad);
}

/* ---- the weight gradient of a split layer, in tiles ----
 *
 * Each rank's slice of features is cut into tiles of s->tile features (512); a
 * tile's GEMM (its rows of dW += its columns of dloc, transposed, · h_all) is
 * the same call whichever rank makes it. Each rank runs its own tiles, then, in
 * a local likelihood (dloc in region D) and when g_of is set, the tiles left of
 * the other ranks (once every rank has made arrival `ready`: every dloc is then
 * complete), into their gradients. The next tile of rank q is an atomic count
 * in the head of its slot, reset by q before its arrival `ready`. */
static _Atomic int64_t *tile_count(const out_split *s, int q) {
  return (_Atomic int64_t *)(slot(s, q) + 32);
}

static void tile_nap(int us) {
  struct timespec ts = {us / 1000000, (long)(us % 1000000) * 1000};
  nanosleep(&ts, NULL);
}

/* Runs rank q's tiles until none is left; returns how many it ran. */
static int64_t run_tiles(clue_model *m, out_split *s, int k, int q, real *g,
                         const real *dloc_q, int64_t R) {
  int64_t F = m->spec.n_feat[k], n = 0, t;
  int g0 = feat_begin(F, s->P, q), W = feat_begin(F, s->P, q + 1) - g0;
  int64_t tiles = (W + s->tile - 1) / s->tile;
  for (;;) {
    if (q == s->r && s->tile_delay_us > 0) tile_nap(s->tile_delay_us);
    if ((t = atomic_fetch_add(tile_count(s, q), 1)) >= tiles) break;
    int c0 = (int)t * s->tile, c1 = c0 + s->tile < W ? c0 + s->tile : W;
    nn_linear_backward_rows_w(&m->gen, &m->dec_loc[k], g, g0 + c0, g0 + c1, s->h_all,
                              dloc_q + c0, W, (int)R);
    n++;
  }
  return n;
}

/* This rank's tiles, then those of ranks still busy (see above). */
static void weight_grad_tiles(clue_model *m, out_split *s, int k, const real *dloc_s, int64_t R,
                              bool local, uint64_t ready) {
  run_tiles(m, s, k, s->r, m->gen.g, dloc_s, R);
  /* g_of is current while every rank's gradients are where it says (attach and
   * detach are collective: the same answer on every rank) */
  if (!local || !s->g_of || s->g_of[s->r] != m->gen.g) return;
  wait_for(s, ready); /* as the caller would next; then every dloc is complete */
  for (int d = 1; d < s->P; d++) {
    int q = (s->r + d) % s->P;
    s->taken += run_tiles(m, s, k, q, s->g_of[q], (const real *)(slot(s, q) + s->d_off), R);
  }
}

/* Backward: this rank's features of every rank's dloc into dloc_s (local: they
 * are in region D already; else from the ranks' region B, where each wrote its
 * rows' dloc), the input-gradient partial sums (all rows) into region A, the
 * weight gradient of those features (in tiles, shared with ranks that finish
 * first), and this rank's rows of the partial sums' sum over the ranks (in rank
 * order) into dh. */
static void split_backward(clue_model *m, dec_work *dw, out_split *s, int k, int64_t rows,
                           int hw, bool local) {
  int64_t F = m->spec.n_feat[k], R = s->row0[s->P];
  int f0 = feat_begin(F, s->P, s->r), f1 = feat_begin(F, s->P, s->r + 1), width = f1 - f0;
  char *me = slot(s, s->r);
  real *dloc_s = local ? my_dloc(s) : s->dloc_s;
  if (local)
    wait_for(s, s->h_read); /* then region A may be written */
  else
    sync_slots(s); /* every rank's dloc is in its region B */
  clue_prof_push(CLUE_PROF_XCHG);
  for (int q = 0; q < s->P && !local; q++) {
    const real *src = (const real *)(slot(s, q) + s->b_off);
    for (int64_t i = s->row0[q]; i < s->row0[q + 1]; i++, src += F)
      memcpy(dloc_s + i * width, src + f0, (size_t)width * sizeof(real));
  }
  real *part = (real *)(me + s->a_off);
  memset(part, 0, (size_t)(R * hw) * sizeof(real));
  clue_prof_pop();
  /* the input-gradient part first: the weight gradient's GEMMs then run while
   * the other ranks finish theirs */
  nn_linear_backward_rows_dx(&m->gen, &m->dec_loc[k], f0, f1, dloc_s, (int)R, part);
  atomic_store(tile_count(s, s->r), 0); /* no rank runs them before `parts` */
  uint64_t parts = arrive(s);
  nn_linear_backward_rows_b(&m->gen, &m->dec_loc[k], f0, f1, dloc_s, (int)R);
  weight_grad_tiles(m, s, k, dloc_s, R, local, parts);
  wait_for(s, parts);
  clue_prof_push(CLUE_PROF_XCHG);
  int64_t n = rows * hw;
  memcpy(dw->dh, (const real *)(slot(s, 0) + s->a_off) + s->row0[s->r] * hw,
         (size_t)n * sizeof(real));
  for (int q = 1; q < s->P; q++) {
    const real *restrict src = (const real *)(slot(s, q) + s->a_off) + s->row0[s->r] * hw;
    real *restrict dh = dw->dh;
    for (int64_t i = 0; i < n; i++) dh[i] += src[i];
  }
  clue_prof_pop();
  s->done = arrive(s); /* the slots are read (and tiles of other ranks run) no more */
}

/* ---- one run of a decoder ---- */

/* Makes the per-(feature, batch) terms of features [f0, f1) current for this
 * pass (clue_model_g_step marks none current): a local likelihood needs this
 * rank's slice only, a whole one every feature. */
static void terms_need(clue_model *m, dec_work *dw, int k, int f0, int f1) {
  if (dw->terms_f0 <= f0 && f1 <= dw->terms_f1) return;
  nn_lik_terms_update_cols(&dw->terms, clue_arena_w(&m->gen, m->dec_scale[k]),
                           clue_arena_w(&m->gen, m->dec_disp[k]), f0, f1);
  dw->terms_f0 = f0;
  dw->terms_f1 = f1;
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
  out_split *s = &w->split;
  bool split = out_split_active(s, comm), local = false;
  real *dloc = dw->dloc;
  if (split && !split_forward(m, dw, n_apps, s, k, rows, hw, &local)) {
    for (int i = 0; i < n_apps; i++) dw->app[i].nll = NAN; /* see out_split */
    return;
  }
  if (split && !local && grad) { /* region B becomes this rank's dloc once read */
    sync_slots(s);
    dloc = (real *)(slot(s, s->r) + s->b_off);
  }
  /* every column of the per-(feature, batch) gradients: the update sums them */
  if (grad && s->cols_split && !(split && local)) m->split_cols_dirty = true;
  if (!split) nn_linear_forward(&m->gen, &m->dec_loc[k], dw->h, (int)rows, dw->loc);
  int64_t F = m->spec.n_feat[k];
  if (local)
    terms_need(m, dw, k, feat_begin(F, s->P, s->r), feat_begin(F, s->P, s->r + 1));
  else
    terms_need(m, dw, k, 0, (int)F);
  int64_t row0 = 0;
  if (local) {
    lik_local(m, dw, n_apps, s, k, grad);
  } else {
    for (int i = 0; i < n_apps; i++) {
      dw->app[i].nll = app_nll(m, dw, k, &dw->app[i], row0, dloc, grad);
      row0 += dw->app[i].n;
    }
  }
  if (!grad) {
    if (split) s->done = arrive(s); /* the slots are read no more in this run */
    return;
  }
  if (split) {
    split_backward(m, dw, s, k, rows, hw, local);
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
