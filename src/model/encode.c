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

void enc_backward(clue_model *m, clue_work *w, int k, const clue_mod_rows *rows,
                  int64_t n_global, const clue_pass *p, const clue_comm *comm) {
  int K = w->K, d = w->d, Kd = w->Kd, n = rows->n;
  /* Through the normalisation and the reparameterisation. */
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
