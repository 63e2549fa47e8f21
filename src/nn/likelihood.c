/* likelihood.c — NB, Bernoulli and Normal negative log-likelihoods on sparse
 * targets with their gradients.
 *
 * A row is a few fused passes over its F features, written as loops over blocks
 * of LANES features with LANES independent partial sums, so that GCC vectorises
 * them (float build: fastmath.h's exp/log; float64 build: libm), followed by a
 * pass over the row's nonzero counts only, in double. */
#include "clue/likelihood.h"

#include <stdlib.h>
#include <string.h>

#include "clue/fastmath.h"
#include "clue/nn.h"
#include "clue/prof.h"

#define HALF_LOG_2PI 0.91893853320467274178
#define LANES 16

double nn_digamma(double x) {
  /* Recurrence ψ(x) = ψ(x + 1) − 1/x up to x ≥ 10, then the asymptotic series
   * through the x^-14 term: its remainder is below 5e-17 there (shifting only to
   * 6 with five terms left errors of 1e-11). */
  double r = 0;
  while (x < 10) {
    r -= 1 / x;
    x += 1;
  }
  double f = 1 / (x * x);
  return r + log(x) - 0.5 / x -
         f * (1.0 / 12 -
              f * (1.0 / 120 -
                   f * (1.0 / 252 -
                        f * (1.0 / 240 - f * (1.0 / 132 - f * (691.0 / 32760 - f / 12))))));
}

int nn_lik_terms_new(clue_likelihood lik, int F, int nb, nn_lik_terms *t, clue_err *err) {
  memset(t, 0, sizeof *t);
  t->lik = lik;
  t->F = F;
  t->nb = nb;
  size_t n = (size_t)F * nb;
  real **arrays[] = {&t->sp, &t->dsp, &t->theta, &t->log_theta, &t->dtheta};
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
  free(t->dtheta);
  free(t->work);
  memset(t, 0, sizeof *t);
}

void nn_lik_terms_update(nn_lik_terms *t, const real *scale, const real *disp) {
  nn_lik_terms_update_cols(t, scale, disp, 0, t->F);
}

/* The terms of n consecutive (feature, batch) entries from offset o. */
static void terms_run(nn_lik_terms *t, const real *scale, const real *disp, int64_t o,
                      int64_t n) {
  real *sp = t->sp + o, *dsp = t->dsp + o, *th = t->theta + o, *lth = t->log_theta + o;
  real *dth = t->dtheta + o;
  scale += o;
  disp = disp ? disp + o : NULL; /* unused by Bernoulli */
  for (int64_t i = 0; i < n; i++) sp[i] = rf_softplus_sigmoid(scale[i], &dsp[i]);
  if (t->lik == CLUE_LIK_NB) {
    const real mx = (real)NN_LOG_THETA_MAX;
    for (int64_t i = 0; i < n; i++) {
      /* clamped so that theta, lgamma(theta) stay finite (gradient 0 outside) */
      real raw = disp[i];
      real lt = rf_select(raw > mx, mx, rf_select(raw < -mx, -mx, raw));
      real e = rf_exp(lt);
      lth[i] = lt;
      th[i] = e;
      dth[i] = rf_select(r_fabs(raw) < mx, e, 0);
    }
  } else if (t->lik == CLUE_LIK_NORMAL) {
    for (int64_t i = 0; i < n; i++) {
      th[i] = rf_softplus_sigmoid(disp[i], &dth[i]) + (real)NN_LIK_EPS;
      lth[i] = r_log(th[i]);
    }
  }
}

void nn_lik_terms_update_cols(nn_lik_terms *t, const real *scale, const real *disp, int f0,
                              int f1) {
  clue_prof_push(CLUE_PROF_LIK_TERMS);
  if (f0 == 0 && f1 == t->F)
    terms_run(t, scale, disp, 0, (int64_t)t->F * t->nb);
  else
    for (int b = 0; b < t->nb; b++) terms_run(t, scale, disp, (int64_t)b * t->F + f0, f1 - f0);
  clue_prof_pop();
}

/* ---- vectorisable reductions ---- */

static real lanes_max(const real *x, int n) {
  real m[LANES];
  for (int l = 0; l < LANES; l++) m[l] = -INFINITY;
  int f = 0;
  for (; f + LANES <= n; f += LANES)
    for (int l = 0; l < LANES; l++) m[l] = x[f + l] > m[l] ? x[f + l] : m[l];
  for (; f < n; f++) m[0] = x[f] > m[0] ? x[f] : m[0];
  real r = m[0];
  for (int l = 1; l < LANES; l++) r = m[l] > r ? m[l] : r;
  return r;
}

static double lanes_sum(const real *acc) {
  double s = 0;
  for (int l = 0; l < LANES; l++) s += acc[l];
  return s;
}

/* y += c·a·b */
static void axpy_prod(int F, real c, const real *restrict a, const real *restrict b,
                      real *restrict y) {
  for (int f = 0; f < F; f++) y[f] += c * a[f] * b[f];
}

/* ---- gradient emission: from dNLL/dlogit of one row to its outputs ---- */

/* dloc = coef·dl·sp (overwritten); dscale += coef·dl·dsp·loc; dbias += coef·dl;
 * any output may be NULL. */
static void emit_generic(int F, real c, const real *dl, const real *sp, const real *dsp,
                         const real *loc, real *dloc, real *ds, real *db) {
  if (dloc)
    for (int f = 0; f < F; f++) dloc[f] = c * dl[f] * sp[f];
  if (ds)
    for (int f = 0; f < F; f++) ds[f] += c * dl[f] * dsp[f] * loc[f];
  if (db)
    for (int f = 0; f < F; f++) db[f] += c * dl[f];
}

/* Outputs of one row: the batch's per-feature arrays and the row's dloc. */
typedef struct row_out {
  real *dloc, *ds, *db, *dd; /* (F) each, any may be NULL */
  real *dlib;
} row_out;

static row_out row_outputs(const nn_lik_grad *g, int64_t o, real *dloc_row, real *dlib) {
  row_out r = {dloc_row, NULL, NULL, NULL, dlib};
  if (!g) return r;
  if (g->dscale) r.ds = g->dscale + o;
  if (g->dbias) r.db = g->dbias + o;
  if (g->ddisp) r.dd = g->ddisp + o;
  return r;
}

/* ---- negative binomial ---- */

/* For a count x > 0 with mu' = mup: the count's NLL beyond the zero-count part,
 *   −[x·log(mu'/(θ+mu')) + lgamma(θ+x) − lgamma(θ) − lgamma(x+1)],
 * and ψ(θ+x) − ψ(θ) in *psi. Small integer counts use
 *   x·log(mu'/(θ+mu')) + Σ_{j<x} log((θ+j)/(j+1)) = log Π_{j<x} mu'(θ+j)/((θ+mu')(j+1)),
 * one log of a product of x ≤ 16 factors (each in [5e-14, 1e13] for the clamped θ
 * in [1e-13, 1e13] and mu' ≥ 1e-7, so the product stays a normal double): the
 * product is returned and *nll = 0, its log left to the caller (who takes the
 * logs of many counts in one vectorised loop); other counts return 1 and their
 * NLL in *nll. ψ(θ+x) − ψ(θ) = Σ_{j<x} 1/(θ+j) for small counts. tm = θ + mu',
 * itm = 1/tm and ith = 1/θ are the caller's (one division each per count,
 * shared with the gradient). */
static double nb_count_prod(double th, double mup, double tm, double itm, double ith,
                            double x, double *psi, double *nll) {
  if (x <= NN_LIK_SMALL_COUNT && x == floor(x)) {
    int n = (int)x;
    double r = mup * itm, prod = r * th, ps = ith; /* the factor j = 0 */
    for (int j = 1; j < n; j++) {
      prod *= r * (th + j) / (j + 1);
      ps += 1 / (th + j);
    }
    *psi = ps;
    *nll = 0;
    return prod;
  }
  *psi = nn_digamma(th + x) - nn_digamma(th);
  *nll = -(x * (log(mup) - log(tm)) + lgamma(th + x) - lgamma(th) - lgamma(x + 1));
  return 1;
}

/* e = exp(logit − m) over the row's F features, m (into *mx) the largest
 * logit; returns Σ e. */
static double nb_exp(int F, const real *sp, const real *loc, const real *bias, real *e,
                     real *mx) {
  for (int f = 0; f < F; f++) e[f] = sp[f] * loc[f] + bias[f];
  real m = *mx = lanes_max(e, F);
  real acc[LANES] = {0};
  int f = 0;
  for (; f + LANES <= F; f += LANES)
    for (int l = 0; l < LANES; l++) {
      real v = rf_exp(e[f + l] - m);
      e[f + l] = v;
      acc[l] += v;
    }
  for (; f < F; f++) {
    e[f] = rf_exp(e[f] - m);
    acc[0] += e[f];
  }
  return lanes_sum(acc);
}

/* Softmax of the row's logits into p (F); returns nothing, p sums to 1. */
static void nb_softmax(int F, const real *sp, const real *loc, const real *bias, real *p) {
  real mx;
  real inv = (real)(1.0 / nb_exp(F, sp, loc, bias, p, &mx));
  for (int f = 0; f < F; f++) p[f] *= inv;
}

/* Σ_f θ·log1p(mu'/θ) (the NLL of a zero count, summed over every feature); with
 * gm/dth non-NULL also gm = dNLL/dmu' = θ/(θ+mu') and dth = dNLL/dθ for x = 0,
 * and *sl = Σ p·gm. */
static double nb_dense(int F, const real *restrict p, real lib, const real *restrict th,
                       real *restrict gm, real *restrict dth, double *sl) {
  const real eps = (real)NN_LIK_EPS;
  real acc[LANES] = {0}, acs[LANES] = {0};
  int f = 0;
  if (!gm) {
    for (; f + LANES <= F; f += LANES)
      for (int l = 0; l < LANES; l++) {
        real t = th[f + l], mup = p[f + l] * lib + eps;
        acc[l] += t * rf_log1p(mup / t);
      }
    for (; f < F; f++) {
      real mup = p[f] * lib + eps;
      acc[0] += th[f] * rf_log1p(mup / th[f]);
    }
    return lanes_sum(acc);
  }
  for (; f + LANES <= F; f += LANES)
    for (int l = 0; l < LANES; l++) {
      real t = th[f + l], mup = p[f + l] * lib + eps;
      real l1 = rf_log1p(mup / t); /* log(θ + mu') − log θ, exact for θ ≫ mu' */
      real r = 1 / (t + mup);
      acc[l] += t * l1;
      gm[f + l] = t * r;
      dth[f + l] = l1 - mup * r;
      acs[l] += p[f + l] * gm[f + l];
    }
  for (; f < F; f++) {
    real t = th[f], mup = p[f] * lib + eps;
    real l1 = rf_log1p(mup / t);
    real r = 1 / (t + mup);
    acc[0] += t * l1;
    gm[f] = t * r;
    dth[f] = l1 - mup * r;
    acs[0] += p[f] * gm[f];
  }
  *sl = lanes_sum(acs);
  return lanes_sum(acc);
}

/* The nonzero counts of the row: their extra NLL, and (gm non-NULL) their
 * corrections of gm and dth and of *sl. In double. */
/* Counts per pass of nb_nonzeros: its per-count arrays live on the stack. */
#define NZ_CHUNK 128

/* The nonzero counts' NLL beyond the zero-count part (nb_dense); with gm, their
 * parts of gm, dth and sl. In chunks of counts: the per-count arithmetic, then
 * the logs of the chunk in loops the compiler vectorises (fm_log, fm_log1p),
 * then the sums in count order. */
static double nb_nonzeros(const nn_lik_terms *t, int64_t o, const real *p, real lib,
                          const int32_t *idx, const float *val, int64_t nnz, real *gm,
                          real *dth, double *sl) {
  double nll = 0, prod[NZ_CHUNK], part[NZ_CHUNK], ratio[NZ_CHUNK], rest[NZ_CHUNK];
  int32_t feat[NZ_CHUNK];
  const real *th = t->theta + o;
  for (int64_t j0 = 0; j0 < nnz; j0 += NZ_CHUNK) {
    int64_t j1 = nnz - j0 < NZ_CHUNK ? nnz : j0 + NZ_CHUNK;
    int n = 0;
    for (int64_t j = j0; j < j1; j++) {
      double x = val[j];
      if (x == 0) continue; /* an explicit stored zero is already counted */
      int f = idx[j];
      double thf = th[f], mup = (double)p[f] * lib + NN_LIK_EPS, tm = thf + mup, psi;
      double itm = 1 / tm, ith = 1 / thf;
      prod[n] = nb_count_prod(thf, mup, tm, itm, ith, x, &psi, &part[n]);
      if (gm) {
        double dg = x * itm - x / mup;
        gm[f] += (real)dg;
        *sl += (double)p[f] * dg;
        ratio[n] = mup * ith;
        rest[n] = (x - mup) * itm - psi;
        feat[n] = f;
      }
      n++;
    }
    for (int i = 0; i < n; i++) prod[i] = fm_log(prod[i]);
    for (int i = 0; i < n; i++) nll += part[i] - prod[i];
    if (!gm) continue;
    for (int i = 0; i < n; i++) ratio[i] = fm_log1p(ratio[i]);
    for (int i = 0; i < n; i++) dth[feat[i]] = (real)(ratio[i] + rest[i]);
  }
  return nll;
}

/* dNLL/dlogit_f = p_f·(l·gm_f − s) with s = l·Σ p·gm, times c, into all outputs. */
static void nb_emit_fused(int F, real c, real lib, real s, const real *restrict p,
                          const real *restrict gm, const real *restrict sp,
                          const real *restrict dsp, const real *restrict loc,
                          real *restrict dloc, real *restrict ds, real *restrict db) {
  for (int f = 0; f < F; f++) {
    real d = c * (p[f] * (lib * gm[f] - s));
    dloc[f] = d * sp[f];
    ds[f] += d * dsp[f] * loc[f];
    db[f] += d;
  }
}

/* Gradients of an NB row from p, gm, dth (see nb_dense) into the outputs. */
static void nb_emit(const nn_lik_terms *t, int64_t o, real c, const real *loc, real lib,
                    double sl, real *p, const real *gm, const real *dth, row_out *out) {
  int F = t->F;
  const real *sp = t->sp + o, *dsp = t->dsp + o, *dthe = t->dtheta + o;
  real s = (real)(lib * sl);
  if (out->dlib) *out->dlib += c * (real)sl;
  if (out->dd) axpy_prod(F, c, dthe, dth, out->dd);
  real *dloc = out->dloc, *ds = out->ds, *db = out->db;
  if (dloc && ds && db) {
    nb_emit_fused(F, c, lib, s, p, gm, sp, dsp, loc, dloc, ds, db);
    return;
  }
  for (int f = 0; f < F; f++) p[f] = p[f] * (lib * gm[f] - s);
  emit_generic(F, c, p, sp, dsp, loc, dloc, ds, db);
}

static double nb_row(const nn_lik_terms *t, const real *loc, const real *bias_b, int b,
                     real lib, const int32_t *idx, const float *val, int64_t nnz,
                     const nn_lik_grad *g, row_out *out) {
  int F = t->F;
  int64_t o = (int64_t)b * F;
  real *p = t->work, *gm = g ? t->work + F : NULL, *dth = g ? t->work + 2 * F : NULL;
  nb_softmax(F, t->sp + o, loc, bias_b, p);
  double sl = 0;
  double nll = nb_dense(F, p, lib, t->theta + o, gm, dth, &sl);
  nll += nb_nonzeros(t, o, p, lib, idx, val, nnz, gm, dth, &sl);
  if (g) nb_emit(t, o, g->coef, loc, lib, sl, p, gm, dth, out);
  return nll;
}

/* ---- NB with the features of its rows split over ranks (see likelihood.h) ---- */

void nn_nb_cols_exp(const nn_lik_terms *t, int f0, int f1, const real *loc, const real *bias,
                    int n, const int32_t *batch, real *e, double *m, double *s) {
  int F = t->F, W = f1 - f0;
  clue_prof_push(CLUE_PROF_LIK);
  for (int i = 0; i < n; i++) {
    int64_t o = (int64_t)batch[i] * F + f0, at = (int64_t)i * W;
    real mx;
    s[i] = nb_exp(W, t->sp + o, loc + at, bias + o, e + at, &mx);
    m[i] = W > 0 ? (double)mx : -INFINITY;
  }
  clue_prof_pop();
}

double nn_nb_cols_nll(const nn_lik_terms *t, int f0, int f1, int n, const int32_t *batch,
                      const real *lib, const double *scale, const clue_csr *target,
                      const int64_t *rows, real *p, real *gm, nn_lik_grad *g, double *sl) {
  int F = t->F, W = f1 - f0;
  double total = 0;
  clue_prof_push(CLUE_PROF_LIK);
  real *dth = g ? t->work : NULL; /* (W ≤ F) one row's dNLL/dθ */
  for (int i = 0; i < n; i++) {
    int64_t o = (int64_t)batch[i] * F + f0;
    real *pi = p + (int64_t)i * W, *gmi = g ? gm + (int64_t)i * W : NULL, c = (real)scale[i];
    for (int f = 0; f < W; f++) pi[f] *= c;
    int64_t b = target->indptr[rows[i]], e = target->indptr[rows[i] + 1];
    double sli = 0;
    total += nb_dense(W, pi, lib[i], t->theta + o, gmi, dth, &sli);
    total += nb_nonzeros(t, o, pi, lib[i], target->indices + b, target->data + b, e - b, gmi,
                         dth, &sli);
    if (!g) continue;
    sl[i] = sli;
    if (g->ddisp) axpy_prod(W, g->coef, t->dtheta + o, dth, g->ddisp + o);
  }
  clue_prof_pop();
  return total;
}

/* dNLL/dlogit = c·p·(l·gm − s) over pd (p in, dloc out, in place), with dscale
 * and dbias. */
static void nb_emit_cols(int W, real c, real lib, real s, real *pd, const real *restrict gm,
                         const real *restrict sp, const real *restrict dsp,
                         const real *restrict loc, real *restrict ds, real *restrict db) {
  for (int f = 0; f < W; f++) {
    real d = c * (pd[f] * (lib * gm[f] - s));
    pd[f] = d * sp[f];
    ds[f] += d * dsp[f] * loc[f];
    db[f] += d;
  }
}

void nn_nb_cols_grad(const nn_lik_terms *t, int f0, int f1, const real *loc, int n,
                     const int32_t *batch, const real *lib, const double *sl, const real *gm,
                     real *p, const nn_lik_grad *g) {
  int F = t->F, W = f1 - f0;
  clue_prof_push(CLUE_PROF_LIK);
  for (int i = 0; i < n; i++) {
    int64_t o = (int64_t)batch[i] * F + f0, at = (int64_t)i * W;
    nb_emit_cols(W, g->coef, lib[i], (real)(lib[i] * sl[i]), p + at, gm + at, t->sp + o,
                 t->dsp + o, loc + at, g->dscale + o, g->dbias + o);
  }
  clue_prof_pop();
}

/* ---- Bernoulli ---- */

/* Σ softplus(logit) over the row, and c·sigmoid(logit) emitted into every
 * output (the gradient for zero targets). */
static double bern_fused(int F, real c, const real *restrict sp, const real *restrict dsp,
                         const real *restrict loc, const real *restrict bias,
                         real *restrict dloc, real *restrict ds, real *restrict db) {
  real acc[LANES] = {0};
  int f = 0;
  for (; f + LANES <= F; f += LANES)
    for (int l = 0; l < LANES; l++) {
      int q = f + l;
      real sig;
      acc[l] += rf_softplus_sigmoid(sp[q] * loc[q] + bias[q], &sig);
      real dq = c * sig;
      dloc[q] = dq * sp[q];
      ds[q] += dq * dsp[q] * loc[q];
      db[q] += dq;
    }
  for (; f < F; f++) {
    real sig;
    acc[0] += rf_softplus_sigmoid(sp[f] * loc[f] + bias[f], &sig);
    real dq = c * sig;
    dloc[f] = dq * sp[f];
    ds[f] += dq * dsp[f] * loc[f];
    db[f] += dq;
  }
  return lanes_sum(acc);
}

/* Σ softplus(logit) over the row; d = sigmoid(logit) when d is not NULL. */
static double bern_plain(int F, const real *restrict sp, const real *restrict loc,
                         const real *restrict bias, real *restrict d) {
  real acc[LANES] = {0};
  real sig;
  int f = 0;
  if (d) {
    for (; f + LANES <= F; f += LANES)
      for (int l = 0; l < LANES; l++)
        acc[l] += rf_softplus_sigmoid(sp[f + l] * loc[f + l] + bias[f + l], &d[f + l]);
  } else {
    for (; f + LANES <= F; f += LANES)
      for (int l = 0; l < LANES; l++)
        acc[l] += rf_softplus_sigmoid(sp[f + l] * loc[f + l] + bias[f + l], &sig);
  }
  for (; f < F; f++) {
    acc[0] += rf_softplus_sigmoid(sp[f] * loc[f] + bias[f], &sig);
    if (d) d[f] = sig;
  }
  return lanes_sum(acc);
}

/* Fused when every output is present: NLL and gradients in one pass, then the
 * nonzeros correct what a zero target contributed. */
static double bernoulli_row(const nn_lik_terms *t, const real *loc, const real *bias_b,
                            int64_t o, int F, const int32_t *idx, const float *val,
                            int64_t nnz, const nn_lik_grad *g, row_out *out) {
  const real *sp = t->sp + o, *dsp = t->dsp + o;
  real *dloc = out->dloc, *ds = out->ds, *db = out->db;
  bool fused = g && dloc && ds && db;
  real c = g ? g->coef : 0;
  real *d = g && !fused ? t->work : NULL; /* (F) dNLL/dlogit when not fused */
  double nll = fused ? bern_fused(F, c, sp, dsp, loc, bias_b, dloc, ds, db)
                     : bern_plain(F, sp, loc, bias_b, d);
  for (int64_t j = 0; j < nnz; j++) {
    int q = idx[j];
    real x = (real)val[j];
    nll -= (double)x * (sp[q] * loc[q] + bias_b[q]);
    if (fused) {
      real dq = -c * x;
      dloc[q] += dq * sp[q];
      ds[q] += dq * dsp[q] * loc[q];
      db[q] += dq;
    } else if (d) {
      d[q] -= x;
    }
  }
  if (d) emit_generic(F, c, d, sp, dsp, loc, dloc, ds, db);
  return nll;
}

/* ---- Normal ---- */

static double normal_row(const nn_lik_terms *t, const real *loc, const real *bias_b,
                         int64_t o, int F, const int32_t *idx, const float *val,
                         int64_t nnz, const nn_lik_grad *g, row_out *out) {
  const real *sp = t->sp + o, *sd = t->theta + o, *lsd = t->log_theta + o;
  const real *dsd = t->dtheta + o;
  real *x = t->work, *d = t->work + t->F; /* x stays zero outside the nonzeros */
  for (int64_t j = 0; j < nnz; j++) x[idx[j]] = (real)val[j];
  double nll = 0;
  for (int f = 0; f < F; f++) {
    real mean = sp[f] * loc[f] + bias_b[f];
    double r = ((double)x[f] - mean) / sd[f]; /* double: std may be at its 1e-7 floor */
    nll += 0.5 * r * r + lsd[f] + HALF_LOG_2PI;
    if (g) {
      d[f] = (real)(-r / sd[f]);
      if (out->dd)
        out->dd[f] += (real)(g->coef * (1 / (double)sd[f] - r * r / sd[f]) * dsd[f]);
    }
  }
  for (int64_t j = 0; j < nnz; j++) x[idx[j]] = 0;
  if (g) emit_generic(F, g->coef, d, sp, t->dsp + o, loc, out->dloc, out->ds, out->db);
  return nll;
}

double nn_lik_nll(const nn_lik_terms *t, const real *loc, const real *bias, int n,
                  const int32_t *batch, const real *lib, const clue_csr *target,
                  const int64_t *rows, nn_lik_grad *g, double *row_nll) {
  return nn_lik_nll_cols(t, 0, t->F, loc, bias, n, batch, lib, target, rows, g, row_nll);
}

double nn_lik_nll_cols(const nn_lik_terms *t, int f0, int f1, const real *loc,
                       const real *bias, int n, const int32_t *batch, const real *lib,
                       const clue_csr *target, const int64_t *rows, nn_lik_grad *g,
                       double *row_nll) {
  double total = 0;
  int F = t->F, W = f1 - f0;
  if (t->lik == CLUE_LIK_NB && W != F) return NAN;
  clue_prof_push(CLUE_PROF_LIK);
  for (int i = 0; i < n; i++) {
    int b = batch[i];
    int64_t o = (int64_t)b * F + f0; /* the row's batch, first column */
    const real *loc_i = loc + (int64_t)i * W;
    const real *bias_b = bias + o;
    int64_t s = target->indptr[rows[i]], e = target->indptr[rows[i] + 1];
    const int32_t *idx = target->indices + s;
    const float *val = target->data + s;
    real *dloc_row = (g && g->dloc) ? g->dloc + (int64_t)i * W : NULL;
    row_out out = row_outputs(g, o, dloc_row, (g && g->dlib) ? &g->dlib[i] : NULL);
    double v;
    if (t->lik == CLUE_LIK_NB)
      v = nb_row(t, loc_i, bias_b, b, lib[i], idx, val, e - s, g, &out);
    else if (t->lik == CLUE_LIK_BERNOULLI)
      v = bernoulli_row(t, loc_i, bias_b, o, W, idx, val, e - s, g, &out);
    else
      v = normal_row(t, loc_i, bias_b, o, W, idx, val, e - s, g, &out);
    if (row_nll) row_nll[i] = v;
    total += v;
  }
  clue_prof_pop();
  return total;
}
