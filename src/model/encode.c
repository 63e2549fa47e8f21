/* encode.c — the element encoders of one source modality, the reparameterised
 * sample, the KL term and the library-size layer. */
#include <string.h>

#include "clue/prof.h"
#include "clue/rng.h"
#include "model_internal.h"

static nn_mode enc_mode(const clue_work *w, int k, const clue_pass *p,
                        const clue_comm *comm) {
  nn_mode mode = {.train = p->train, .comm = comm};
  mode.rng.seed = p->seed;
  mode.rng.pass = app_pass(p->pass, APP_ENCODERS);
  mode.rng.row_key = w->key[k];
  return mode;
}

void enc_forward(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows,
                 int64_t n_global, const clue_pass *p, const clue_comm *comm) {
  int K = w->K, d = w->d, Kd = w->Kd, n = rows->n;
  for (int i = 0; i < n; i++) w->key[k][i] = (uint64_t)rows->pos[i] * CLUE_K + (uint64_t)k;
  nn_mode mode = enc_mode(w, k, p, comm);
  for (int j = 0; j < K; j++) {
    real *h = nn_mlp_forward(&m->gen, &m->buf, &m->enc[k][j], rows->enc_in, NULL, n,
                             n_global, &mode, &w->enc_cache[k][j]);
    nn_linear_forward(&m->gen, &m->enc_loc[k][j], h, n, w->head);
    for (int i = 0; i < n; i++)
      memcpy(w->mean[k] + (int64_t)i * Kd + j * d, w->head + (int64_t)i * d,
             (size_t)d * sizeof(real));
    nn_linear_forward(&m->gen, &m->enc_std[k][j], h, n, w->head);
    for (int i = 0; i < n; i++) {
      real *t = w->tstd[k] + (int64_t)i * Kd + j * d;
      real *s = w->std[k] + (int64_t)i * Kd + j * d;
      memcpy(t, w->head + (int64_t)i * d, (size_t)d * sizeof(real));
      for (int c = 0; c < d; c++) s[c] = nn_softplus(t[c]) + (real)NN_STD_EPS;
    }
  }
}

void enc_sample(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows,
                const clue_pass *p) {
  int Kd = w->Kd, n = rows->n;
  for (int i = 0; i < n; i++) {
    clue_rng r = clue_rng_stream(p->seed, CLUE_RNG_NOISE, p->pass, w->key[k][i]);
    real *e = w->eps[k] + (int64_t)i * Kd;
    real *s = w->shat[k] + (int64_t)i * Kd;
    const real *mu = w->mean[k] + (int64_t)i * Kd, *sd = w->std[k] + (int64_t)i * Kd;
    for (int c = 0; c < Kd; c++) {
      e[c] = (real)clue_rng_normal(&r);
      s[c] = mu[c] + e[c] * sd[c];
    }
    if (m->spec.normalize_u)
      w->snorm[k][i] = l2_normalize(s, Kd, s);
    else
      w->snorm[k][i] = 1;
  }
}

/* l = ReLU(x·Wᵀ + b) with x the sparse target rows (counts of decoded features). */
void enc_library_forward(const clue_model *m, clue_work *w, int k,
                         const clue_mod_rows *rows) {
  int K = w->K, F = m->spec.n_feat[k];
  const real *W = clue_arena_w(&m->gen, m->lib[k].w);
  const real *b = clue_arena_w(&m->gen, m->lib[k].b);
  const clue_csr *t = rows->target;
  clue_prof_push(CLUE_PROF_LIBSIZE);
  for (int i = 0; i < rows->n; i++) {
    real *l = w->lib[k] + (int64_t)i * K;
    for (int j = 0; j < K; j++) l[j] = b[j];
    int64_t s = t->indptr[rows->trow[i]], e = t->indptr[rows->trow[i] + 1];
    for (int64_t q = s; q < e; q++) {
      real x = (real)t->data[q];
      int f = t->indices[q];
      for (int j = 0; j < K; j++) l[j] += W[(int64_t)j * F + f] * x;
    }
    for (int j = 0; j < K; j++) l[j] = l[j] > 0 ? l[j] : 0;
  }
  clue_prof_pop();
}

void enc_library_backward(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows) {
  int K = w->K, F = m->spec.n_feat[k];
  real *gW = clue_arena_g(&m->gen, m->lib[k].w);
  real *gb = clue_arena_g(&m->gen, m->lib[k].b);
  const clue_csr *t = rows->target;
  clue_prof_push(CLUE_PROF_LIBSIZE);
  for (int i = 0; i < rows->n; i++) {
    const real *l = w->lib[k] + (int64_t)i * K;
    const real *dl = w->dlib[k] + (int64_t)i * K;
    int64_t s = t->indptr[rows->trow[i]], e = t->indptr[rows->trow[i] + 1];
    for (int j = 0; j < K; j++) {
      if (!(l[j] > 0) || dl[j] == 0) continue; /* ReLU gate */
      gb[j] += dl[j];
      real *g = gW + (int64_t)j * F;
      for (int64_t q = s; q < e; q++) g[t->indices[q]] += dl[j] * (real)t->data[q];
    }
  }
  clue_prof_pop();
}

/* Σ over rows and the K·d dims of KL(N(mean, std²) ‖ N(0, 1)); gradients × coef. */
double enc_kl(const clue_model *m, clue_work *w, int k, int n, real coef, bool grad) {
  (void)m;
  int Kd = w->Kd;
  double total = 0;
  for (int64_t q = 0; q < (int64_t)n * Kd; q++) {
    real mu = w->mean[k][q], sd = w->std[k][q];
    total += 0.5 * ((double)mu * mu + (double)sd * sd - 1) - log((double)sd);
    if (grad) {
      w->dmean[k][q] += coef * mu;
      w->dstd[k][q] += coef * (sd - 1 / sd);
    }
  }
  return total;
}

/* The gradient of modality k's sample through the normalisation and the
 * reparameterisation: into dmean, and into dstd as that of the std before the
 * softplus. */
static void enc_grad_sample(const clue_model *m, clue_work *w, int k, int n) {
  int Kd = w->Kd;
  for (int i = 0; i < n; i++) {
    real *ds = w->dshat[k] + (int64_t)i * Kd;
    const real *s = w->shat[k] + (int64_t)i * Kd;
    if (m->spec.normalize_u) l2_normalize_backward(s, w->snorm[k][i], ds, Kd, ds);
    real *dm = w->dmean[k] + (int64_t)i * Kd, *dsd = w->dstd[k] + (int64_t)i * Kd;
    const real *e = w->eps[k] + (int64_t)i * Kd, *t = w->tstd[k] + (int64_t)i * Kd;
    for (int c = 0; c < Kd; c++) {
      dm[c] += ds[c];
      dsd[c] = (dsd[c] + ds[c] * e[c]) * nn_sigmoid(t[c]); /* now d(pre-softplus) */
    }
  }
}

void enc_backward(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows,
                  int64_t n_global, const clue_pass *p, const clue_comm *comm) {
  int K = w->K, d = w->d, Kd = w->Kd, n = rows->n;
  enc_grad_sample(m, w, k, n);
  nn_mode mode = enc_mode(w, k, p, comm);
  for (int j = 0; j < K; j++) {
    nn_mlp_cache *c = &w->enc_cache[k][j];
    const real *h = c->x[m->enc[k][j].depth];
    int hw = nn_mlp_out_width(&m->enc[k][j]);
    memset(w->dh, 0, (size_t)n * hw * sizeof(real));
    for (int i = 0; i < n; i++)
      memcpy(w->dhead + (int64_t)i * d, w->dmean[k] + (int64_t)i * Kd + j * d,
             (size_t)d * sizeof(real));
    nn_linear_backward(&m->gen, &m->enc_loc[k][j], h, w->dhead, n, w->dh);
    for (int i = 0; i < n; i++)
      memcpy(w->dhead + (int64_t)i * d, w->dstd[k] + (int64_t)i * Kd + j * d,
             (size_t)d * sizeof(real));
    nn_linear_backward(&m->gen, &m->enc_std[k][j], h, w->dhead, n, w->dh);
    nn_mlp_backward(&m->gen, &m->enc[k][j], c, w->dh, n, n_global, NULL, &mode);
  }
}

/* ---- every modality's encoders, split over the ranks of a node or not ---- */

static char *eslot(const enc_split *s, int q) { return clue_shm_slot(s->shm, q); }

static bool esplit_active(const enc_split *s, const clue_comm *comm) {
  return s->shm && comm && comm->size == s->P * s->nodes.n;
}

/* The communicator and row count of BatchNorm in an encoder that this rank runs
 * for its node's n rows: itself alone on one node; with several, the ranks that
 * run it on every node, over the minibatch's B rows. */
static const clue_comm *esplit_bn(const enc_split *s, const clue_comm *self, int64_t n,
                                  int64_t B, int64_t *n_global) {
  *n_global = s->nodes.n > 1 ? B : n;
  return s->nodes.n > 1 ? &s->nodes.across : self;
}

static void esplit_sync(const enc_split *s) {
  clue_prof_push(CLUE_PROF_COLL);
  clue_shm_sync(s->shm);
  clue_prof_pop();
}

/* The BatchNorm running statistics of encoder (k, j) as 2·depth·width reals at
 * x (each layer's means, then its variances): written from the model's buffers
 * (to_buf false) or read into them. */
static void run_stats(clue_model *m, int k, int j, real *x, bool to_buf) {
  const nn_mlp *enc = &m->enc[k][j];
  for (int l = 0; enc->batchnorm && l < enc->depth; l++) {
    int c = enc->width;
    real *mean = clue_arena_w(&m->buf, enc->bn[l].run_mean);
    real *var = clue_arena_w(&m->buf, enc->bn[l].run_var);
    real *at = x + (int64_t)2 * l * c;
    memcpy(to_buf ? mean : at, to_buf ? at : mean, (size_t)c * sizeof(real));
    memcpy(to_buf ? var : at + c, to_buf ? at + c : var, (size_t)c * sizeof(real));
  }
}

/* Phase 1: this rank's rows of every modality (count, inputs, keys) into its
 * slot. */
static void esplit_put_rows(const clue_model *m, clue_work *w, const clue_minibatch *mb) {
  enc_split *s = &w->esplit;
  char *me = eslot(s, s->r);
  clue_prof_push(CLUE_PROF_XCHG);
  for (int k = 0; k < w->K; k++) {
    const clue_mod_rows *rows = &mb->mod[k];
    ((int64_t *)me)[k] = rows->n;
    if (rows->n > s->cap_own) continue; /* every rank sees it in the header */
    for (int i = 0; i < rows->n; i++) w->key[k][i] = (uint64_t)rows->pos[i] * CLUE_K + (uint64_t)k;
    memcpy(me + s->in_off[k], rows->enc_in,
           (size_t)rows->n * m->spec.enc_in[k] * sizeof(real));
    memcpy(me + s->key_off[k], w->key[k], (size_t)rows->n * sizeof(uint64_t));
  }
  clue_prof_pop();
}

/* After phase 1: where each rank's rows start among the gathered rows of each
 * modality; false (on every rank) when a rank's rows or all rows exceed the caps. */
static bool esplit_offsets(enc_split *s, int K) {
  bool ok = true;
  for (int k = 0; k < K; k++) {
    s->row0[k][0] = 0;
    for (int q = 0; q < s->P; q++) {
      int64_t n = ((const int64_t *)eslot(s, q))[k];
      ok = ok && n <= s->cap_own;
      s->row0[k][q + 1] = s->row0[k][q] + n;
    }
    ok = ok && s->row0[k][s->P] <= s->cap_all;
  }
  return ok;
}

/* Phase 2 on the owner of encoder (k, j): every rank's rows through it, the
 * outputs and running statistics into this rank's slot. */
static void esplit_run(clue_model *m, clue_work *w, int k, int j, int64_t B, const clue_pass *p) {
  enc_split *s = &w->esplit;
  int R = m->spec.enc_in[k], d = w->d, e = k * w->K + j;
  int64_t n = s->row0[k][s->P];
  clue_prof_push(CLUE_PROF_XCHG);
  for (int q = 0; q < s->P; q++) {
    int64_t r0 = s->row0[k][q], nq = s->row0[k][q + 1] - r0;
    memcpy(s->x_all + r0 * R, eslot(s, q) + s->in_off[k], (size_t)(nq * R) * sizeof(real));
    memcpy(s->key_all + r0, eslot(s, q) + s->key_off[k], (size_t)nq * sizeof(uint64_t));
  }
  clue_prof_pop();
  clue_comm self = clue_comm_self();
  int64_t n_global;
  nn_mode mode = {.train = p->train, .comm = esplit_bn(s, &self, n, B, &n_global)};
  mode.rng.seed = p->seed;
  mode.rng.pass = app_pass(p->pass, APP_ENCODERS);
  mode.rng.row_key = s->key_all;
  real *h = nn_mlp_forward(&m->gen, &m->buf, &m->enc[k][j], s->x_all, NULL, (int)n, n_global,
                           &mode, &w->enc_cache[k][j]);
  real *out = (real *)(eslot(s, s->r) + s->out_off[e]);
  const nn_linear *head[2] = {&m->enc_loc[k][j], &m->enc_std[k][j]};
  for (int t = 0; t < 2; t++) {
    nn_linear_forward(&m->gen, head[t], h, (int)n, w->head);
    for (int64_t i = 0; i < n; i++)
      memcpy(out + i * 2 * d + t * d, w->head + i * d, (size_t)d * sizeof(real));
  }
  if (p->train) run_stats(m, k, j, (real *)(eslot(s, s->r) + s->run_off[e]), false);
}

/* Phase 3: this rank's rows of every encoder's outputs, and the running
 * statistics of the encoders other ranks run. */
static void esplit_take(clue_model *m, clue_work *w, const clue_pass *p) {
  enc_split *s = &w->esplit;
  int K = w->K, d = w->d, Kd = w->Kd;
  clue_prof_push(CLUE_PROF_XCHG);
  for (int e = 0; e < K * K; e++) {
    int k = e / K, j = e % K, q = e % s->P;
    int64_t r0 = s->row0[k][s->r], n = s->row0[k][s->r + 1] - r0;
    const real *out = (const real *)(eslot(s, q) + s->out_off[e]) + r0 * 2 * d;
    for (int64_t i = 0; i < n; i++) {
      memcpy(w->mean[k] + i * Kd + j * d, out + i * 2 * d, (size_t)d * sizeof(real));
      real *t = w->tstd[k] + i * Kd + j * d, *sd = w->std[k] + i * Kd + j * d;
      memcpy(t, out + i * 2 * d + d, (size_t)d * sizeof(real));
      for (int c = 0; c < d; c++) sd[c] = nn_softplus(t[c]) + (real)NN_STD_EPS;
    }
    if (p->train && q != s->r) run_stats(m, k, j, (real *)(eslot(s, q) + s->run_off[e]), true);
  }
  clue_prof_pop();
}

/* NaN outputs for this rank's rows (a pass beyond the caps, all ranks alike). */
static void esplit_fail(clue_work *w, const clue_minibatch *mb) {
  for (int k = 0; k < w->K; k++)
    for (int64_t q = 0; q < (int64_t)mb->mod[k].n * w->Kd; q++)
      w->mean[k][q] = w->std[k][q] = w->tstd[k][q] = (real)NAN;
}

void enc_forward_all(clue_model *m, clue_work *w, const clue_minibatch *mb,
                     const clue_pass *p, const clue_comm *comm) {
  enc_split *s = &w->esplit;
  if (!esplit_active(s, comm)) {
    for (int k = 0; k < w->K; k++) enc_forward(m, w, k, &mb->mod[k], mb->B, p, comm);
    return;
  }
  esplit_put_rows(m, w, mb);
  esplit_sync(s); /* every rank's rows are in; the last pass's outputs are read */
  s->failed = !esplit_offsets(s, w->K);
  if (s->failed) {
    esplit_fail(w, mb);
    return;
  }
  for (int e = s->r; e < w->K * w->K; e += s->P) esplit_run(m, w, e / w->K, e % w->K, mb->B, p);
  esplit_sync(s); /* every encoder's outputs are in */
  esplit_take(m, w, p);
}

/* On the owner of encoder (k, j): every rank's rows' gradients of its outputs
 * (gathered from the slots) back through its heads and stack. */
static void esplit_back(clue_model *m, clue_work *w, int k, int j, int64_t B, const clue_pass *p) {
  enc_split *s = &w->esplit;
  int d = w->d, Kd = w->Kd;
  int64_t n = s->row0[k][s->P];
  nn_mlp_cache *c = &w->enc_cache[k][j];
  const real *h = c->x[m->enc[k][j].depth];
  int hw = nn_mlp_out_width(&m->enc[k][j]);
  memset(w->dh, 0, (size_t)(n * hw) * sizeof(real));
  const nn_linear *head[2] = {&m->enc_loc[k][j], &m->enc_std[k][j]};
  for (int t = 0; t < 2; t++) { /* t = 0: the means' gradients, 1: the stds' */
    clue_prof_push(CLUE_PROF_XCHG);
    for (int q = 0; q < s->P; q++) {
      const real *g = (const real *)(eslot(s, q) + s->grad_off[k]);
      for (int64_t i = s->row0[k][q]; i < s->row0[k][q + 1]; i++, g += 2 * Kd)
        memcpy(w->dhead + i * d, g + t * Kd + j * d, (size_t)d * sizeof(real));
    }
    clue_prof_pop();
    nn_linear_backward(&m->gen, head[t], h, w->dhead, (int)n, w->dh);
  }
  clue_comm self = clue_comm_self();
  int64_t n_global;
  nn_mode mode = {.train = p->train, .comm = esplit_bn(s, &self, n, B, &n_global)};
  nn_mlp_backward(&m->gen, &m->enc[k][j], c, w->dh, (int)n, n_global, NULL, &mode); /* the masks are the forward's */
}

void enc_backward_all(clue_model *m, clue_work *w, const clue_minibatch *mb,
                      const clue_pass *p, const clue_comm *comm) {
  enc_split *s = &w->esplit;
  int K = w->K, Kd = w->Kd;
  if (!esplit_active(s, comm)) {
    for (int k = 0; k < K; k++) enc_backward(m, w, k, &mb->mod[k], mb->B, p, comm);
    return;
  }
  for (int k = 0; k < K; k++) enc_grad_sample(m, w, k, mb->mod[k].n);
  if (s->failed) return; /* the forward gave NaN: nothing to run */
  clue_prof_push(CLUE_PROF_XCHG);
  for (int k = 0; k < K; k++) {
    real *g = (real *)(eslot(s, s->r) + s->grad_off[k]);
    for (int64_t i = 0; i < mb->mod[k].n; i++, g += 2 * Kd) {
      memcpy(g, w->dmean[k] + i * Kd, (size_t)Kd * sizeof(real));
      memcpy(g + Kd, w->dstd[k] + i * Kd, (size_t)Kd * sizeof(real));
    }
  }
  clue_prof_pop();
  esplit_sync(s); /* every rank's gradients are in */
  for (int e = s->r; e < K * K; e += s->P) esplit_back(m, w, e / K, e % K, mb->B, p);
}
