/* likelihood.h — decoder likelihoods of the counts: negative binomial,
 * Bernoulli and Normal, with per-(feature, batch) parameters, evaluated on
 * sparse targets (zeros cost no lgamma/digamma) with fused gradients.
 *
 * A decoder produces loc (n × F). For a row of batch b:
 *   NB:        logit = softplus(scale[b])·loc + bias[b]; mu = softmax(logit)·l;
 *              theta = exp(clamp(log_theta[b], ±30));
 *              log p(x) = θ·log(θ/(θ+mu')) + x·log(mu'/(θ+mu'))
 *                         + lgamma(θ+x) − lgamma(θ) − lgamma(x+1),  mu' = mu + 1e-7
 *   Bernoulli: logit = softplus(scale[b])·loc + bias[b]; log p = x·logit − softplus(logit)
 *   Normal:    mean = softplus(scale[b])·loc + bias[b]; std = softplus(log_std[b]) + 1e-7
 * Per-(feature, batch) arrays are stored batch-major: (n_batches × F).
 *
 * Speed: the per-feature work of a row is a few fused, vectorised passes over F
 * (in the float build through fastmath.h's exp/log, ≤ 3 ulp); the per-nonzero
 * work (lgamma/digamma differences, logs) is done in double on the nonzeros only,
 * the logs of small counts in vectorised loops over chunks of counts (fastmath.h's
 * double log, ≤ 2 ulp). */
#ifndef CLUE_LIKELIHOOD_H
#define CLUE_LIKELIHOOD_H

#include <stdint.h>

#include "clue/config.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/real.h"

#define NN_LIK_EPS 1e-7
/* NB: log_theta is clamped to [−30, 30] when used (theta in [1e-13, 1e13]), so
 * exp and lgamma stay finite; its gradient is 0 outside. */
#define NN_LOG_THETA_MAX 30

/* Counts up to this value take lgamma(θ + x) − lgamma(θ) − lgamma(x + 1) and
 * ψ(θ + x) − ψ(θ) as finite sums over j < x (exact for integers); other counts
 * call lgamma and digamma. */
#define NN_LIK_SMALL_COUNT 16

/* Terms of the per-(feature, batch) parameters computed once per pass. */
typedef struct nn_lik_terms {
  clue_likelihood lik;
  int F, nb;
  real *sp;        /* (nb × F) softplus(scale) */
  real *dsp;       /* (nb × F) sigmoid(scale) */
  real *theta;     /* (nb × F) NB: θ = exp(clamped log_theta); Normal: std */
  real *log_theta; /* (nb × F) NB: clamped log_theta; Normal: log std */
  real *dtheta;    /* (nb × F) NB: dθ/d log_theta (θ inside the clamp, 0 outside);
                      Normal: d std / d log_std = sigmoid(log_std) */
  real *work;      /* (3 × F) scratch of one row */
} nn_lik_terms;

int nn_lik_terms_new(clue_likelihood lik, int F, int nb, nn_lik_terms *t, clue_err *err);
void nn_lik_terms_free(nn_lik_terms *t);

/* Recomputes the terms from the parameters scale (nb × F) and disp (nb × F:
 * log_theta for NB, log_std for Normal, unused for Bernoulli). */
void nn_lik_terms_update(nn_lik_terms *t, const real *scale, const real *disp);

/* The same for features [f0, f1) only (every batch); the other columns of the
 * terms keep their values. */
void nn_lik_terms_update_cols(nn_lik_terms *t, const real *scale, const real *disp, int f0,
                              int f1);

/* Gradient outputs of nn_lik_nll; any pointer may be NULL to skip it. */
typedef struct nn_lik_grad {
  real coef;     /* every gradient is multiplied by coef (loss weight / count) */
  real *dloc;    /* (n × F) overwritten */
  real *dlib;    /* (n) accumulated (NB) */
  real *dscale;  /* (nb × F) accumulated */
  real *dbias;   /* (nb × F) accumulated */
  real *ddisp;   /* (nb × F) accumulated (NB, Normal) */
} nn_lik_grad;

/* Σ over the n rows and F features of −log p(target | loc) (double). Row i has
 * batch batch[i], library size lib[i] (NB only; may be NULL otherwise) and
 * target row rows[i] of the CSR t (values as counts; F columns). When g is not
 * NULL, fills the gradients of coef × that sum. row_nll (n, may be NULL)
 * receives each row's sum. */
double nn_lik_nll(const nn_lik_terms *t, const real *loc, const real *bias, int n,
                  const int32_t *batch, const real *lib, const clue_csr *target,
                  const int64_t *rows, nn_lik_grad *g, double *row_nll);

/* nn_lik_nll over features [f0, f1) only, for the likelihoods whose features
 * are independent (Bernoulli, Normal; NB, whose softmax spans every feature of
 * a row, returns NaN unless [f0, f1) = [0, F)): loc and g->dloc are n × (f1 −
 * f0), the target's column indices count from f0 (in [0, f1 − f0)), and the
 * per-(feature, batch) gradients (nb × F) receive columns [f0, f1). */
double nn_lik_nll_cols(const nn_lik_terms *t, int f0, int f1, const real *loc,
                       const real *bias, int n, const int32_t *batch, const real *lib,
                       const clue_csr *target, const int64_t *rows, nn_lik_grad *g,
                       double *row_nll);

/* ---- NB with the features of its rows split over ranks ----
 *
 * The NB softmax spans every feature of a row. When each rank holds features
 * [f0, f1) (W = f1 − f0) of the same rows, it runs these three phases on its
 * features, and the caller combines two per-row statistics over the ranks
 * between them:
 *   nn_nb_cols_exp:  e = exp(logit − m) (n × W), m = the row's largest logit
 *                    here (−∞ when W = 0), s = Σ e;
 *   the caller:      M = max over ranks of m, S = Σ over ranks of s·exp(m − M),
 *                    and scale = exp(m − M) / S of this rank's m;
 *   nn_nb_cols_nll:  p = scale·e in place, the row's NLL over these features;
 *                    with g: gm (n × W, scratch of phase 3), sl = Σ p·dNLL/dmu'
 *                    over these features, and coef·dNLL/d log_theta into
 *                    g->ddisp;
 *   the caller:      sl ← its sum over the ranks (the whole row's); the row's
 *                    dlib is coef·sl;
 *   nn_nb_cols_grad: dloc over p (p's buffer receives dloc) and g->dscale,
 *                    g->dbias of these features (both required).
 * Over all ranks they give nn_lik_nll's sums and gradients but for rounding.
 * Per-(feature, batch) arrays are nb × F as in nn_lik_nll_cols; the target's
 * column indices count from f0. */
void nn_nb_cols_exp(const nn_lik_terms *t, int f0, int f1, const real *loc, const real *bias,
                    int n, const int32_t *batch, real *e, double *m, double *s);

double nn_nb_cols_nll(const nn_lik_terms *t, int f0, int f1, int n, const int32_t *batch,
                      const real *lib, const double *scale, const clue_csr *target,
                      const int64_t *rows, real *p, real *gm, nn_lik_grad *g, double *sl);

void nn_nb_cols_grad(const nn_lik_terms *t, int f0, int f1, const real *loc, int n,
                     const int32_t *batch, const real *lib, const double *sl, const real *gm,
                     real *p, const nn_lik_grad *g);

/* ψ(x) for x > 0, to double precision. */
double nn_digamma(double x);

#endif
