/* expect.c — the expected profile a decoder gives for latent values (eval
 * mode): what `clue predict` writes for the missing modality. */
#include <math.h>
#include <string.h>

#include "model_internal.h"

/* Terms of the sum in clue_nb_log1p_mean at the most (then the tail is bounded). */
#define NB_TERMS_MAX 20000

/* Row r of the output layer's values → the expected profile, in place:
 * NB the softmax of softplus(scale)·loc + bias over the features, Bernoulli
 * its logistic, Normal the value itself. */
static void expected_row(const clue_model *m, int k, int32_t b, real *v) {
  int64_t F = m->spec.n_feat[k];
  const real *scale = clue_arena_w(&m->gen, m->dec_scale[k]) + (int64_t)b * F;
  const real *bias = clue_arena_w(&m->gen, m->dec_bias[k]) + (int64_t)b * F;
  double mx = -INFINITY;
  for (int64_t f = 0; f < F; f++) {
    v[f] = nn_softplus(scale[f]) * v[f] + bias[f];
    if (v[f] > mx) mx = v[f];
  }
  if (m->spec.lik[k] == CLUE_LIK_NB) {
    double z = 0;
    for (int64_t f = 0; f < F; f++) z += exp((double)v[f] - mx);
    for (int64_t f = 0; f < F; f++) v[f] = (real)(exp((double)v[f] - mx) / z);
  } else if (m->spec.lik[k] == CLUE_LIK_BERNOULLI) {
    for (int64_t f = 0; f < F; f++) v[f] = (real)(1 / (1 + exp(-(double)v[f])));
  }
}

double clue_nb_log1p_mean(double mu, double theta, double c) {
  if (!(mu > 0)) return 0;
  double q = mu / (theta + mu);                      /* ratio of successive terms */
  double p = exp(theta * log(theta / (theta + mu))); /* P(X = 0) */
  double sum = 0, mass = p;
  int64_t x = 0;
  while (mass < 1 - 1e-9 && x < NB_TERMS_MAX) {
    x++;
    p *= q * ((double)x - 1 + theta) / (double)x;
    sum += p * log1p(c * (double)x);
    mass += p;
  }
  if (mass < 1) /* the tail beyond x, at least x each */
    sum += (1 - mass) * log1p(c * ((double)x > mu ? (double)x : mu));
  return sum;
}

int clue_model_expected(const clue_model *m, clue_work *w, int k, const real *z,
                        const int32_t *batch, int64_t n, float *out, clue_err *err) {
  int d = w->d;
  int64_t F = m->spec.n_feat[k];
  dec_work *dw = &w->dec[k];
  dec_app *a = &dw->app[0];
  clue_comm self = clue_comm_self();
  nn_mode mode = {.train = false, .comm = &self};
  for (int64_t i = 0; i < n; i++)
    if (batch[i] < 0 || batch[i] >= m->spec.n_batches)
      return clue_fail(err, CLUE_EINVAL, "batch code %d of row %lld is not one of the model's %d",
                       batch[i], (long long)i, m->spec.n_batches);
  for (int64_t b = 0; b < n; b += w->B) {
    int c = (int)(n - b < w->B ? n - b : w->B);
    memcpy(a->z, z + b * d, (size_t)c * d * sizeof(real));
    memcpy(a->batch, batch + b, (size_t)c * sizeof *batch);
    /* Eval mode touches no running statistics: the cast drops const only for
     * the shared forward code path. */
    const real *h = nn_mlp_forward(&((clue_model *)m)->gen, &((clue_model *)m)->buf, &m->dec[k],
                                   a->z, a->batch, c, c, &mode, &a->cache);
    nn_linear_forward(&m->gen, &m->dec_loc[k], h, c, dw->loc);
    for (int i = 0; i < c; i++) {
      real *v = dw->loc + (int64_t)i * F;
      expected_row(m, k, a->batch[i], v);
      for (int64_t f = 0; f < F; f++) out[(b + i) * F + f] = (float)v[f];
    }
  }
  return CLUE_OK;
}
