/* likelihood.c — NB, Bernoulli and Normal negative log-likelihoods on sparse
 * targets with their gradients, one fused pass per row. */
#include "clue/likelihood.h"

#include <stdlib.h>
#include <string.h>

#include "clue/nn.h"

#define HALF_LOG_2PI 0.91893853320467274178

double nn_digamma(double x) {
  double r = 0;
  while (x < 6) {
    r -= 1 / x;
    x += 1;
  }
  double f = 1 / (x * x);
  return r + log(x) - 0.5 / x -
         f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))));
}

int nn_lik_terms_new(clue_likelihood lik, int F, int nb, nn_lik_terms *t, clue_err *err) {
  memset(t, 0, sizeof *t);
  t->lik = lik;
  t->F = F;
  t->nb = nb;
  size_t n = (size_t)F * nb;
  real **arrays[] = {&t->sp, &t->dsp, &t->theta, &t->log_theta, &t->lg_theta, &t->dg_theta};
  for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++)
    if (!(*arrays[i] = clue_calloc(n, sizeof(real), err))) goto fail;
  if (!(t->work = clue_calloc(3 * (size_t)F, sizeof(real), err))) goto fail;
  return CLUE_OK;
fail:
  nn_lik_terms_free(t);
  return CLUE_ENOMEM;
}

void nn_lik_terms_free(nn_lik_terms *t) {
  free(t->sp);
  free(t->dsp);
  free(t->theta);
  free(t->log_theta);
  free(t->lg_theta);
  free(t->dg_theta);
  free(t->work);
  memset(t, 0, sizeof *t);
}

void nn_lik_terms_update(nn_lik_terms *t, const real *scale, const real *disp) {
  int64_t n = (int64_t)t->F * t->nb;
  for (int64_t i = 0; i < n; i++) {
    t->sp[i] = nn_softplus(scale[i]);
    t->dsp[i] = nn_sigmoid(scale[i]);
  }
  if (t->lik == CLUE_LIK_NB) {
    for (int64_t i = 0; i < n; i++) {
      real lt = disp[i];
      t->log_theta[i] = lt;
      t->theta[i] = r_exp(lt);
      t->lg_theta[i] = (real)lgamma((double)t->theta[i]);
      t->dg_theta[i] = (real)nn_digamma((double)t->theta[i]);
    }
  } else if (t->lik == CLUE_LIK_NORMAL) {
    for (int64_t i = 0; i < n; i++) {
      t->theta[i] = nn_softplus(disp[i]) + (real)NN_LIK_EPS;
      t->log_theta[i] = nn_sigmoid(disp[i]);
    }
  }
}

/* Common tail: from dlogit (F) of row i to dloc and the per-batch parameters. */
static void emit_param_grads(const nn_lik_terms *t, int b, const real *loc,
                             const real *dlogit, nn_lik_grad *g, real *dloc_row) {
  int F = t->F;
  const real *sp = t->sp + (int64_t)b * F, *dsp = t->dsp + (int64_t)b * F;
  real c = g->coef;
  real *ds = g->dscale ? g->dscale + (int64_t)b * F : NULL;
  real *db = g->dbias ? g->dbias + (int64_t)b * F : NULL;
  for (int f = 0; f < F; f++) {
    real d = c * dlogit[f];
    if (dloc_row) dloc_row[f] = d * sp[f];
    if (ds) ds[f] += d * dsp[f] * loc[f];
    if (db) db[f] += d;
  }
}

static double nb_row(const nn_lik_terms *t, const real *loc, const real *bias_b, int b,
                     real lib, const int32_t *idx, const float *val, int64_t nnz,
                     nn_lik_grad *g, real *dloc_row, real *dlib) {
  int F = t->F;
  int64_t o = (int64_t)b * F;
  const real *sp = t->sp + o, *th = t->theta + o, *lth = t->log_theta + o;
  real *p = t->work, *gm = t->work + F, *dth = t->work + 2 * F;
  /* softmax of the logits */
  real mx = -INFINITY;
  for (int f = 0; f < F; f++) {
    p[f] = sp[f] * loc[f] + bias_b[f];
    if (p[f] > mx) mx = p[f];
  }
  double z = 0;
  for (int f = 0; f < F; f++) {
    p[f] = r_exp(p[f] - mx);
    z += p[f];
  }
  real inv = (real)(1.0 / z);
  double ll = 0;
  /* zero-count part for every feature */
  for (int f = 0; f < F; f++) {
    p[f] *= inv;
    real mup = p[f] * lib + (real)NN_LIK_EPS;
    real lt = r_log(th[f] + mup);
    ll += th[f] * (lth[f] - lt);
    if (g) {
      gm[f] = th[f] / (th[f] + mup);
      dth[f] = -(lth[f] - lt + mup / (th[f] + mup));
    }
  }
  /* nonzero counts */
  for (int64_t j = 0; j < nnz; j++) {
    int f = idx[j];
    double x = val[j];
    double mup = (double)p[f] * lib + NN_LIK_EPS;
    double thf = th[f];
    double lt = log(thf + mup);
    ll += x * (log(mup) - lt) + lgamma(thf + x) - t->lg_theta[o + f] - lgamma(x + 1);
    if (g) {
      gm[f] += (real)(x / (thf + mup) - x / mup);
      dth[f] = (real)(-(lth[f] - lt + 1 - (thf + x) / (thf + mup) + nn_digamma(thf + x) -
                        t->dg_theta[o + f]));
    }
  }
  if (g) {
    /* dNLL/dlogit_f = mu_f·g_f − p_f·Σ mu·g ; dNLL/dl = Σ p·g */
    double s = 0, sl = 0;
    for (int f = 0; f < F; f++) {
      s += (double)p[f] * lib * gm[f];
      sl += (double)p[f] * gm[f];
    }
    if (dlib) *dlib += g->coef * (real)sl;
    if (g->ddisp) {
      real *dd = g->ddisp + o;
      for (int f = 0; f < F; f++) dd[f] += g->coef * th[f] * dth[f];
    }
    for (int f = 0; f < F; f++) gm[f] = p[f] * (lib * gm[f] - (real)s);
    emit_param_grads(t, b, loc, gm, g, dloc_row);
  }
  return -ll;
}

static double bernoulli_row(const nn_lik_terms *t, const real *loc, const real *bias_b,
                            int b, const int32_t *idx, const float *val, int64_t nnz,
                            nn_lik_grad *g, real *dloc_row) {
  int F = t->F;
  const real *sp = t->sp + (int64_t)b * F;
  real *lg = t->work, *d = t->work + F;
  double nll = 0;
  for (int f = 0; f < F; f++) {
    lg[f] = sp[f] * loc[f] + bias_b[f];
    nll += nn_softplus(lg[f]);
    if (g) d[f] = nn_sigmoid(lg[f]);
  }
  for (int64_t j = 0; j < nnz; j++) {
    nll -= (double)val[j] * lg[idx[j]];
    if (g) d[idx[j]] -= (real)val[j];
  }
  if (g) emit_param_grads(t, b, loc, d, g, dloc_row);
  return nll;
}

static double normal_row(const nn_lik_terms *t, const real *loc, const real *bias_b,
                         int b, const int32_t *idx, const float *val, int64_t nnz,
                         nn_lik_grad *g, real *dloc_row) {
  int F = t->F;
  int64_t o = (int64_t)b * F;
  const real *sp = t->sp + o, *sd = t->theta + o, *dsd = t->log_theta + o;
  real *x = t->work, *d = t->work + F;
  for (int64_t j = 0; j < nnz; j++) x[idx[j]] = (real)val[j];
  double nll = 0;
  real *dd = (g && g->ddisp) ? g->ddisp + o : NULL;
  for (int f = 0; f < F; f++) {
    real mean = sp[f] * loc[f] + bias_b[f];
    real r = (x[f] - mean) / sd[f];
    nll += 0.5 * (double)r * r + r_log(sd[f]) + HALF_LOG_2PI;
    if (g) {
      d[f] = -r / sd[f];
      if (dd) dd[f] += g->coef * (1 / sd[f] - r * r / sd[f]) * dsd[f];
    }
  }
  for (int64_t j = 0; j < nnz; j++) x[idx[j]] = 0;
  if (g) emit_param_grads(t, b, loc, d, g, dloc_row);
  return nll;
}

double nn_lik_nll(const nn_lik_terms *t, const real *loc, const real *bias, int n,
                  const int32_t *batch, const real *lib, const clue_csr *target,
                  const int64_t *rows, nn_lik_grad *g, double *row_nll) {
  double total = 0;
  int F = t->F;
  for (int i = 0; i < n; i++) {
    int b = batch[i];
    const real *loc_i = loc + (int64_t)i * F;
    const real *bias_b = bias + (int64_t)b * F;
    int64_t s = target->indptr[rows[i]], e = target->indptr[rows[i] + 1];
    const int32_t *idx = target->indices + s;
    const float *val = target->data + s;
    real *dloc_row = (g && g->dloc) ? g->dloc + (int64_t)i * F : NULL;
    double v;
    if (t->lik == CLUE_LIK_NB)
      v = nb_row(t, loc_i, bias_b, b, lib[i], idx, val, e - s, g, dloc_row,
                 (g && g->dlib) ? &g->dlib[i] : NULL);
    else if (t->lik == CLUE_LIK_BERNOULLI)
      v = bernoulli_row(t, loc_i, bias_b, b, idx, val, e - s, g, dloc_row);
    else
      v = normal_row(t, loc_i, bias_b, b, idx, val, e - s, g, dloc_row);
    if (row_nll) row_nll[i] = v;
    total += v;
  }
  return total;
}
