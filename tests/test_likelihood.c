/* test_likelihood.c — the likelihoods as the program computes them (float32
 * build, sparse fused path of nn_lik_nll) against plain formulas written here in
 * double precision, and nn_digamma against references computed differently.
 *
 * References (double, from the same float inputs):
 *   NB:        μ = softmax(softplus(scale)·loc + bias)·l + 1e-7, θ = exp(log_theta),
 *              log p = lgamma(x+θ) − lgamma(θ) − lgamma(x+1) + θ·log(θ/(θ+μ)) + x·log(μ/(θ+μ))
 *   Bernoulli: log p = x·logit − log(1 + e^logit)
 *   Normal:    log p = log N(x; softplus(scale)·loc + bias, softplus(log_std) + 1e-7)
 * (θ·log(θ/(θ+μ)) is evaluated as −θ·log1p(μ/θ) so that the reference keeps full
 * precision for θ = e^10.) Every row is compared, over rows with all zeros, all
 * ones, large counts (1e4 and 2^24 + 1, which a float32 target stores as 2^24),
 * features never observed, explicit stored zeros, and log θ from −10 to +10.
 *
 * Tolerances. Values: |row − ref| ≤ 1e-5·max(|ref|, 1) per row sum (float32
 * parameters with 2^-24 ≈ 6e-8 rounding; the sums are accumulated in double),
 * plus, for Bernoulli and Normal, what the row moves when the logit / mean and
 * the std move by their float32 resolution (see ref_row): when x − mean nearly
 * cancels (Normal, std e^-5) the float32 mean alone is worth ~1e-5 relative.
 * Gradients of the float path, against central differences of the double
 * reference: |g − ref| ≤ 1e-4·|ref| + 1e-5·max_j |ref_j| over the array (float32
 * rounding of the softmax and of products; the second term is the float
 * resolution of the largest entry). Digamma: 4e-15·max(1, |ψ|) against the long
 * double reference and the exact values; 1e-9 against the Richardson derivative
 * of lgammal (a different method, limited by its own truncation error). */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/likelihood.h"
#include "clue/nn.h"
#include "clue/rng.h"
#include "testutil.h"

#define EULER_GAMMA 0.57721566490153286060651209008240243L
#define VAL_RTOL 1e-5
#define GRAD_RTOL 1e-4
#define GRAD_ATOL 1e-5

/* ---- the reference in double ---- */

static double softplus_d(double x) { return fmax(x, 0) + log1p(exp(-fabs(x))); }

/* A problem: n rows of F features in nb batches, parameters as float. */
typedef struct prob {
  clue_likelihood lik;
  int n, F, nb;
  float *loc;                 /* (n × F) */
  float *scale, *bias, *disp; /* (nb × F) */
  float *lib;                 /* (n) */
  int32_t *batch;             /* (n) */
  int64_t *rows;              /* (n) */
  clue_csr *target;
} prob;

/* Dense target row r of the CSR (F). */
static void dense_row(const clue_csr *t, int64_t r, int F, double *x) {
  for (int f = 0; f < F; f++) x[f] = 0;
  for (int64_t q = t->indptr[r]; q < t->indptr[r + 1]; q++) x[t->indices[q]] = t->data[q];
}

/* Float32 resolution of the quantities a term is computed from: a few roundings
 * (softplus ≤ 4 ulp, the product, the sum) of 2^-24 each. */
#define FLOAT_RES (8 * 5.9604644775390625e-8)

/* −log p of row i, from the plain formulas. *slack (may be NULL) receives how
 * much the row moves when the logit / mean and the std are perturbed by their
 * float32 resolution: Σ_f |∂ℓ/∂m|·FLOAT_RES·(|softplus(scale)·loc| + |bias|)
 * (+ |∂ℓ/∂std|·FLOAT_RES·std for Normal). When x − mean nearly cancels, a float32
 * program cannot do better than that; 0 for NB (its softmax is normalised). */
static double ref_row(const prob *p, int i, double *slack) {
  int F = p->F, b = p->batch[i];
  const float *loc = p->loc + (int64_t)i * F;
  const float *sc = p->scale + (int64_t)b * F, *bi = p->bias + (int64_t)b * F;
  const float *dp = p->disp + (int64_t)b * F;
  double *x = malloc(sizeof(double) * (size_t)F), *lg = malloc(sizeof(double) * (size_t)F);
  dense_row(p->target, p->rows[i], F, x);
  double sl = 0;
  for (int f = 0; f < F; f++) lg[f] = softplus_d(sc[f]) * (double)loc[f] + (double)bi[f];
  double nll = 0;
  if (p->lik == CLUE_LIK_NB) {
    double mx = -INFINITY, z = 0;
    for (int f = 0; f < F; f++) mx = fmax(mx, lg[f]);
    for (int f = 0; f < F; f++) z += exp(lg[f] - mx);
    for (int f = 0; f < F; f++) {
      double mu = exp(lg[f] - mx) / z * (double)p->lib[i] + 1e-7;
      double th = exp((double)dp[f]);
      double lp = lgamma(x[f] + th) - lgamma(th) - lgamma(x[f] + 1) - th * log1p(mu / th) +
                  x[f] * (log(mu) - log(th + mu));
      nll -= lp;
    }
  } else if (p->lik == CLUE_LIK_BERNOULLI) {
    for (int f = 0; f < F; f++) {
      nll -= x[f] * lg[f] - softplus_d(lg[f]);
      double sig = 1 / (1 + exp(-lg[f]));
      sl += fabs(sig - x[f]) * FLOAT_RES * (fabs(lg[f] - bi[f]) + fabs((double)bi[f]));
    }
  } else {
    for (int f = 0; f < F; f++) {
      double sd = softplus_d(dp[f]) + 1e-7;
      double r = (x[f] - lg[f]) / sd;
      nll += 0.5 * r * r + log(sd) + 0.5 * log(2 * M_PI);
      sl += fabs(r) / sd * FLOAT_RES * (fabs(lg[f] - bi[f]) + fabs((double)bi[f])) +
            fabs(1 - r * r) * FLOAT_RES;
    }
  }
  free(x);
  free(lg);
  if (slack) *slack = sl;
  return nll;
}

static double ref_total(const prob *p) {
  double s = 0;
  for (int i = 0; i < p->n; i++) s += ref_row(p, i, NULL);
  return s;
}

/* ---- problem set-up ---- */

enum { T_ZEROS, T_ONES, T_MIXED, T_LARGE };

/* Targets: n_rows rows; row 2 always empty and feature F−1 never observed
 * (except in T_ONES, where every value is 1). */
static clue_csr *make_target(clue_likelihood lik, int kind, int n_rows, int F, clue_rng *r) {
  clue_err err;
  clue_csr *t = clue_csr_new(n_rows, F, (int64_t)n_rows * F, &err);
  assert_non_null(t);
  int64_t at = 0;
  for (int i = 0; i < n_rows; i++) {
    for (int f = 0; f < F && kind != T_ZEROS; f++) {
      double v;
      if (kind == T_ONES) {
        v = 1;
      } else {
        if (i == 2 || f == F - 1 || clue_rng_uniform(r) < 0.6) continue;
        if (lik == CLUE_LIK_BERNOULLI)
          v = 1;
        else if (lik == CLUE_LIK_NORMAL)
          v = kind == T_LARGE && f % 7 == 0 ? 1e4 * (1 + clue_rng_uniform(r))
                                            : 3 * clue_rng_normal(r);
        else if (kind == T_LARGE)
          v = f % 7 == 0 ? 1e4 : f % 11 == 0 ? 16777217.0 : (double)(1 + clue_rng_below(r, 50));
        else
          v = (double)(1 + clue_rng_below(r, clue_rng_uniform(r) < 0.8 ? 3 : 300));
        if (i == 0 && f == 0) v = 0; /* an explicit stored zero */
      }
      t->indices[at] = f;
      t->data[at] = (float)v;
      at++;
    }
    t->indptr[i + 1] = at;
  }
  return t;
}

/* Batch 0: log θ (or log std) = −10 everywhere; batch 1: a sweep −10 … +10 over
 * the features; batch 2: +10; batch 3: random N(0, 1). Library sizes cycle over
 * 0.5 … 2e5. */
static void make_prob(prob *p, clue_likelihood lik, int kind, int n, int F, uint64_t seed) {
  memset(p, 0, sizeof *p);
  p->lik = lik;
  p->n = n;
  p->F = F;
  p->nb = 4;
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 1, 0);
  int n_rows = n + 3;
  p->target = make_target(lik, kind, n_rows, F, &r);
  size_t nf = (size_t)n * F, bf = (size_t)p->nb * F;
  p->loc = malloc(sizeof(float) * nf);
  p->scale = malloc(sizeof(float) * bf);
  p->bias = malloc(sizeof(float) * bf);
  p->disp = malloc(sizeof(float) * bf);
  p->lib = malloc(sizeof(float) * (size_t)n);
  p->batch = malloc(sizeof(int32_t) * (size_t)n);
  p->rows = malloc(sizeof(int64_t) * (size_t)n);
  double loc_sd = lik == CLUE_LIK_BERNOULLI ? 8 : 1.5;
  for (size_t i = 0; i < nf; i++) p->loc[i] = (float)(loc_sd * clue_rng_normal(&r));
  for (int b = 0; b < p->nb; b++)
    for (int f = 0; f < F; f++) {
      size_t q = (size_t)b * F + f;
      p->scale[q] = (float)clue_rng_normal(&r);
      p->bias[q] = (float)clue_rng_normal(&r);
      double d = b == 0 ? -10 : b == 1 ? -10 + 20.0 * f / (F > 1 ? F - 1 : 1) : b == 2 ? 10
                                                                               : clue_rng_normal(&r);
      if (lik == CLUE_LIK_NORMAL) d *= 0.5; /* log std −5 … 5 */
      p->disp[q] = (float)d;
    }
  static const double libs[] = {0.5, 37, 1e4, 2e5, 3};
  for (int i = 0; i < n; i++) {
    p->lib[i] = (float)libs[i % 5];
    p->batch[i] = (int32_t)(i % p->nb);
    p->rows[i] = (int64_t)((i * 5 + 2) % n_rows);
  }
}

static void free_prob(prob *p) {
  free(p->loc);
  free(p->scale);
  free(p->bias);
  free(p->disp);
  free(p->lib);
  free(p->batch);
  free(p->rows);
  clue_csr_free(p->target);
}

/* nn_lik_nll of the float build; fills row (n). */
static double run_nll(const prob *p, nn_lik_grad *g, double *row) {
  clue_err err;
  nn_lik_terms t;
  TU_OK(nn_lik_terms_new(p->lik, p->F, p->nb, &t, &err), &err);
  nn_lik_terms_update(&t, p->scale, p->disp);
  double v = nn_lik_nll(&t, p->loc, p->bias, p->n, p->batch,
                        p->lik == CLUE_LIK_NB ? p->lib : NULL, p->target, p->rows, g, row);
  nn_lik_terms_free(&t);
  return v;
}

static const char *LIK_NAME[] = {"NB", "Bernoulli", "Normal"};
static const char *KIND_NAME[] = {"zeros", "ones", "mixed", "large"};

/* Every row of the float path against the reference; returns the worst
 * |row − ref| / tolerance. */
static double check_values(clue_likelihood lik, int kind, int n, int F, uint64_t seed) {
  prob p;
  make_prob(&p, lik, kind, n, F, seed);
  double *row = malloc(sizeof(double) * (size_t)n);
  double total = run_nll(&p, NULL, row);
  double worst = 0, sum = 0;
  int bad = 0;
  for (int i = 0; i < n; i++) {
    double slack;
    double ref = ref_row(&p, i, &slack);
    double tol = VAL_RTOL * fmax(fabs(ref), 1) + slack;
    double e = fabs(row[i] - ref) / tol;
    sum += row[i];
    worst = fmax(worst, e);
    if (!(e <= 1)) {
      if (bad < 8)
        print_error("%s %s F%d row %d (batch %d, lib %g): nn_lik_nll %.10g, reference %.10g\n",
                    LIK_NAME[lik], KIND_NAME[kind], F, i, p.batch[i], (double)p.lib[i], row[i],
                    ref);
      bad++;
    }
  }
  TU_CLOSE(total, sum, 1e-12);
  free(row);
  free_prob(&p);
  assert_int_equal(bad, 0);
  return worst;
}

static void run_values(clue_likelihood lik) {
  double worst = 0;
  for (int kind = T_ZEROS; kind <= T_LARGE; kind++) {
    worst = fmax(worst, check_values(lik, kind, 16, 40, 10 + kind));
    worst = fmax(worst, check_values(lik, kind, 5, 1, 20 + kind));
    worst = fmax(worst, check_values(lik, kind, 9, 3, 30 + kind));
    /* rows of more nonzeros than the NB's per-pass chunk of counts (128) */
    worst = fmax(worst, check_values(lik, kind, 3, 300, 80 + kind));
  }
  printf("  %s: largest row error / tolerance %.3g\n", LIK_NAME[lik], worst);
}

static void test_nb_values(void **state) {
  (void)state;
  run_values(CLUE_LIK_NB);
}

static void test_bernoulli_values(void **state) {
  (void)state;
  run_values(CLUE_LIK_BERNOULLI);
}

static void test_normal_values(void **state) {
  (void)state;
  run_values(CLUE_LIK_NORMAL);
}

/* A few hand values, so that the reference itself is pinned down. */
static void test_hand_values(void **state) {
  (void)state;
  /* NB with one feature: μ = l + 1e-7 (softmax of one logit is 1); θ = 1, x = 0:
   * −log p = log(1 + μ); x = 2: −log p = −[lgamma(3) − lgamma(1) − lgamma(3) + log(1/(1+μ))
   * + 2 log(μ/(1+μ))] = 3 log(1 + μ) − 2 log μ. With l = 3: μ ≈ 3. */
  prob p;
  make_prob(&p, CLUE_LIK_NB, T_ZEROS, 1, 1, 1);
  p.disp[0] = 0;
  p.lib[0] = 3;
  p.batch[0] = 0;
  double row;
  run_nll(&p, NULL, &row);
  double mu = 3 + 1e-7;
  TU_CLOSE(row, log(1 + mu), 1e-6);
  TU_CLOSE(row, 1.3862944, 1e-6); /* log 4 */
  p.target->indptr[1] = p.target->indptr[2] = p.target->indptr[3] = p.target->indptr[4] = 1;
  p.target->indices[0] = 0;
  p.target->data[0] = 2;
  p.rows[0] = 0;
  run_nll(&p, NULL, &row);
  TU_CLOSE(row, 3 * log(1 + mu) - 2 * log(mu), 1e-6);
  TU_CLOSE(row, 1.9616585, 1e-6); /* 3 log 4 − 2 log 3 */
  free_prob(&p);
  /* Bernoulli, logit 0 (loc 0, bias 0): −log p = log 2 for x = 0 and x = 1. */
  make_prob(&p, CLUE_LIK_BERNOULLI, T_ONES, 1, 1, 2);
  p.loc[0] = 0;
  p.bias[0] = 0;
  p.batch[0] = 0;
  p.rows[0] = 0;
  run_nll(&p, NULL, &row);
  TU_CLOSE(row, 0.69314718, 1e-6);
  free_prob(&p);
  /* Normal, x = 0, mean = bias = 1, std = softplus(log_std) + 1e-7 with
   * log_std = log(e − 1) → std ≈ 1: −log p = ½ + ½ log 2π. */
  make_prob(&p, CLUE_LIK_NORMAL, T_ZEROS, 1, 1, 3);
  p.loc[0] = 0;
  p.bias[0] = 1;
  p.disp[0] = (float)log(M_E - 1);
  p.batch[0] = 0;
  run_nll(&p, NULL, &row);
  TU_CLOSE(row, 0.5 + 0.5 * log(2 * M_PI), 1e-6);
  TU_CLOSE(row, 1.4189385, 1e-6);
  free_prob(&p);
}

/* ---- gradients of the float path ---- */

/* Compares g (count) with central differences of the double reference total
 * (times coef) with respect to the float parameters p[0..count). */
static int check_grad_array(const char *what, prob *pr, float *p, int count, const float *g,
                            double coef, double *worst) {
  double *ref = malloc(sizeof(double) * (size_t)count);
  double big = 0;
  for (int i = 0; i < count; i++) {
    float keep = p[i];
    double h = 1e-3 * fmax(1.0, fabs((double)keep));
    /* the reference is a function of double inputs: perturb through a wider copy */
    p[i] = (float)(keep + h);
    double hi = p[i];
    double up = ref_total(pr);
    p[i] = (float)(keep - h);
    double lo = p[i];
    double down = ref_total(pr);
    p[i] = keep;
    ref[i] = coef * (up - down) / (hi - lo);
    big = fmax(big, fabs(ref[i]));
  }
  int bad = 0;
  for (int i = 0; i < count; i++) {
    double tol = GRAD_RTOL * fabs(ref[i]) + GRAD_ATOL * big;
    *worst = fmax(*worst, fabs(g[i] - ref[i]) / tol);
    if (!(fabs(g[i] - ref[i]) <= tol)) {
      if (bad < 8)
        print_error("%s[%d]: float path %.8g, reference %.8g (tol %.3g)\n", what, i, (double)g[i],
                    ref[i], tol);
      bad++;
    }
  }
  free(ref);
  return bad;
}

/* disp_scale shrinks the dispersions of make_prob (log θ −10 … 10, log std −5 … 5). */
/* Gradient outputs with coef 0.5: dloc (nf values, none when 0), dlib (n, none
 * when 0) and the per-(feature, batch) arrays (bf each), zeroed. */
static nn_lik_grad grad_new(size_t nf, size_t n, size_t bf) {
  nn_lik_grad g = {.coef = 0.5f};
  g.dloc = nf ? calloc(nf, sizeof(float)) : NULL;
  g.dlib = n ? calloc(n, sizeof(float)) : NULL;
  g.dscale = calloc(bf, sizeof(float));
  g.dbias = calloc(bf, sizeof(float));
  g.ddisp = calloc(bf, sizeof(float));
  return g;
}

static void grad_free(nn_lik_grad *g) {
  free(g->dloc);
  free(g->dlib);
  free(g->dscale);
  free(g->dbias);
  free(g->ddisp);
}

static double check_grads(clue_likelihood lik, int kind, int n, int F, float disp_scale,
                          uint64_t seed) {
  prob p;
  make_prob(&p, lik, kind, n, F, seed);
  for (int q = 0; q < p.nb * F; q++) p.disp[q] *= disp_scale;
  double worst = 0;
  size_t nf = (size_t)n * F, bf = (size_t)p.nb * F;
  nn_lik_grad g = grad_new(nf, (size_t)n, bf);
  run_nll(&p, &g, NULL);
  char what[96];
  int bad = 0;
  snprintf(what, sizeof what, "%s %s dloc", LIK_NAME[lik], KIND_NAME[kind]);
  bad += check_grad_array(what, &p, p.loc, (int)nf, g.dloc, 0.5, &worst);
  snprintf(what, sizeof what, "%s %s dscale", LIK_NAME[lik], KIND_NAME[kind]);
  bad += check_grad_array(what, &p, p.scale, (int)bf, g.dscale, 0.5, &worst);
  snprintf(what, sizeof what, "%s %s dbias", LIK_NAME[lik], KIND_NAME[kind]);
  bad += check_grad_array(what, &p, p.bias, (int)bf, g.dbias, 0.5, &worst);
  if (lik != CLUE_LIK_BERNOULLI) {
    snprintf(what, sizeof what, "%s %s ddisp", LIK_NAME[lik], KIND_NAME[kind]);
    bad += check_grad_array(what, &p, p.disp, (int)bf, g.ddisp, 0.5, &worst);
  }
  if (lik == CLUE_LIK_NB) {
    snprintf(what, sizeof what, "%s %s dlib", LIK_NAME[lik], KIND_NAME[kind]);
    bad += check_grad_array(what, &p, p.lib, n, g.dlib, 0.5, &worst);
  }
  grad_free(&g);
  free_prob(&p);
  assert_int_equal(bad, 0);
  return worst;
}

static void test_gradients_float(void **state) {
  (void)state;
  for (int lik = CLUE_LIK_NB; lik <= CLUE_LIK_NORMAL; lik++) {
    double worst = 0;
    for (int ds = 0; ds < 2; ds++) {
      float scale = ds ? 1.0f : 0.2f;
      worst = fmax(worst, check_grads((clue_likelihood)lik, T_MIXED, 8, 12, scale, 40 + lik));
      worst = fmax(worst, check_grads((clue_likelihood)lik, T_ZEROS, 4, 6, scale, 50 + lik));
      worst = fmax(worst, check_grads((clue_likelihood)lik, T_LARGE, 6, 9, scale, 60 + lik));
      /* wide rows: blocks of features and a remainder */
      worst = fmax(worst, check_grads((clue_likelihood)lik, T_MIXED, 5, 37, scale, 70 + lik));
      /* rows of more nonzeros than the NB's per-pass chunk of counts (128) */
      worst = fmax(worst, check_grads((clue_likelihood)lik, T_ONES, 2, 300, scale, 90 + lik));
    }
    printf("  %s gradients: largest error / tolerance %.3g\n", LIK_NAME[lik], worst);
  }
}

/* ---- column ranges ---- */

/* Columns [f0, f1) of the CSR's rows, counted from f0. */
static clue_csr *csr_columns(const clue_csr *t, int f0, int f1) {
  clue_err err;
  clue_csr *c = clue_csr_new(t->n_rows, f1 - f0, t->indptr[t->n_rows] + 1, &err);
  int64_t at = 0;
  for (int64_t r = 0; r < t->n_rows; r++) {
    for (int64_t j = t->indptr[r]; j < t->indptr[r + 1]; j++)
      if (t->indices[j] >= f0 && t->indices[j] < f1) {
        c->indices[at] = t->indices[j] - f0;
        c->data[at++] = t->data[j];
      }
    c->indptr[r + 1] = at;
  }
  return c;
}

/* nn_lik_nll_cols over the pieces [0, a), [a, b), [b, F) of the features (a, b
 * multiples of 16, as the slices of clue_out_slice_begin) adds up to
 * nn_lik_nll: row sums up to the order of float sums, every gradient entry to
 * 1e-6 (the same operations on the same inputs; only whether a value goes
 * through a vector lane or the scalar remainder, which may round a product
 * differently, depends on where a row starts). NB refuses a partial range. */
static void test_column_ranges(void **state) {
  (void)state;
  for (int lik = CLUE_LIK_NB; lik <= CLUE_LIK_NORMAL; lik++) {
    prob p;
    int n = 9, F = 53, cut[4] = {0, 16, 48, 53}; /* slices start on blocks of 16 */
    make_prob(&p, (clue_likelihood)lik, T_MIXED, n, F, 90 + lik);
    clue_err err;
    nn_lik_terms t;
    TU_OK(nn_lik_terms_new(p.lik, F, p.nb, &t, &err), &err);
    nn_lik_terms_update(&t, p.scale, p.disp);
    size_t nf = (size_t)n * F, bf = (size_t)p.nb * F;
    nn_lik_grad gw = grad_new(nf, 0, bf), gp = grad_new(0, 0, bf);
    double *row_w = calloc((size_t)n, sizeof(double)), *row_p = calloc((size_t)n, sizeof(double));
    const float *lib = lik == CLUE_LIK_NB ? p.lib : NULL;
    nn_lik_nll(&t, p.loc, p.bias, n, p.batch, lib, p.target, p.rows, &gw, row_w);
    if (lik == CLUE_LIK_NB) {
      assert_true(isnan(nn_lik_nll_cols(&t, 0, 16, p.loc, p.bias, n, p.batch, lib, p.target,
                                        p.rows, NULL, NULL)));
    } else {
      for (int piece = 0; piece < 3; piece++) {
        int f0 = cut[piece], f1 = cut[piece + 1], W = f1 - f0;
        float *loc = malloc(sizeof(float) * (size_t)n * W);
        gp.dloc = malloc(sizeof(float) * (size_t)n * W);
        for (int i = 0; i < n; i++)
          memcpy(loc + (size_t)i * W, p.loc + (size_t)i * F + f0, sizeof(float) * (size_t)W);
        clue_csr *tc = csr_columns(p.target, f0, f1);
        double part[16];
        nn_lik_nll_cols(&t, f0, f1, loc, p.bias, n, p.batch, lib, tc, p.rows, &gp, part);
        for (int i = 0; i < n; i++) {
          row_p[i] += part[i];
          for (int f = 0; f < W; f++)
            TU_CLOSE(gp.dloc[(size_t)i * W + f], gw.dloc[(size_t)i * F + f0 + f], 1e-6);
        }
        clue_csr_free(tc);
        free(loc);
        free(gp.dloc);
        gp.dloc = NULL;
      }
      for (int i = 0; i < n; i++) TU_CLOSE(row_p[i], row_w[i], 1e-6);
      for (size_t q = 0; q < bf; q++) {
        TU_CLOSE(gp.dscale[q], gw.dscale[q], 1e-6);
        TU_CLOSE(gp.dbias[q], gw.dbias[q], 1e-6);
        TU_CLOSE(gp.ddisp[q], gw.ddisp[q], 1e-6);
      }
    }
    grad_free(&gw);
    grad_free(&gp);
    free(row_w);
    free(row_p);
    nn_lik_terms_free(&t);
    free_prob(&p);
  }
}

/* ---- digamma ---- */

/* ψ in long double: recurrence up to x ≥ 40, then the asymptotic series to the
 * x^-14 term (its remainder is below 1e-25 there). */
static long double digamma_ref(long double x) {
  long double r = 0;
  while (x < 40) {
    r -= 1 / x;
    x += 1;
  }
  long double f = 1 / (x * x);
  long double s =
      f * (1.0L / 12 -
           f * (1.0L / 120 -
                f * (1.0L / 252 -
                     f * (1.0L / 240 - f * (1.0L / 132 - f * (691.0L / 32760 - f / 12.0L))))));
  return r + logl(x) - 0.5L / x - s;
}

/* ψ as the derivative of lgammal: Richardson extrapolation of central differences. */
static long double digamma_lgamma(long double x) {
  long double h = x * 1e-2L;
  if (h > 0.05L) h = 0.05L;
  long double d1 = (lgammal(x + h) - lgammal(x - h)) / (2 * h);
  long double d2 = (lgammal(x + h / 2) - lgammal(x - h / 2)) / h;
  long double d4 = (lgammal(x + h / 4) - lgammal(x - h / 4)) / (h / 2);
  long double r1 = (4 * d2 - d1) / 3, r2 = (4 * d4 - d2) / 3;
  return (16 * r2 - r1) / 15;
}

static void close_psi(double x, double got, long double want, double tol) {
  double e = (double)fabsl((long double)got - want) / fmax(1.0, (double)fabsl(want));
  if (!(e <= tol)) {
    print_error("digamma(%.17g) = %.17g, reference %.20Lg (error %.3g, tol %.3g)\n", x, got, want,
                e, tol);
    fail();
  }
}

static void test_digamma_constants(void **state) {
  (void)state;
  const long double ln2 = 0.69314718055994530941723212145817657L;
  close_psi(1, nn_digamma(1), -EULER_GAMMA, 4e-15);
  close_psi(0.5, nn_digamma(0.5), -EULER_GAMMA - 2 * ln2, 4e-15);
  /* ψ(n) = −γ + H_{n−1};  ψ(n + ½) = −γ − 2 ln 2 + Σ_{k ≤ n} 2/(2k − 1) */
  long double h = 0, o = 0;
  for (int n = 1; n <= 60; n++) {
    close_psi(n, nn_digamma(n), -EULER_GAMMA + h, 4e-15);
    h += 1.0L / n;
    o += 2.0L / (2 * n - 1);
    close_psi(n + 0.5, nn_digamma(n + 0.5), -EULER_GAMMA - 2 * ln2 + o, 4e-15);
  }
}

static void test_digamma_reference(void **state) {
  (void)state;
  /* the reference agrees with the exact values before it is used */
  assert_true(fabsl(digamma_ref(1) + EULER_GAMMA) < 1e-18L);
  double worst = 0;
  for (int i = 0; i <= 2300; i++) {
    double x = pow(10, -8 + 23.0 * i / 2300); /* 1e-8 … 1e15 */
    long double want = digamma_ref(x);
    double got = nn_digamma(x);
    close_psi(x, got, want, 4e-15);
    worst = fmax(worst, (double)fabsl(got - want) / fmax(1.0, (double)fabsl(want)));
  }
  /* around the recurrence / series switch and the root x0 ≈ 1.4616 */
  static const double xs[] = {1.4616321449683623, 5.999999, 6, 6.000001, 9.99999, 10, 11.5};
  for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++)
    close_psi(xs[i], nn_digamma(xs[i]), digamma_ref(xs[i]), 4e-15);
  /* a second method: the derivative of lgamma */
  for (int i = 0; i <= 200; i++) {
    double x = 0.05 + 50.0 * i / 200;
    close_psi(x, nn_digamma(x), digamma_lgamma(x), 1e-9);
  }
  /* Legendre duplication ψ(2x) = ½ψ(x) + ½ψ(x + ½) + ln 2 */
  clue_rng r = clue_rng_stream(9, CLUE_RNG_TEST, 9, 0);
  for (int i = 0; i < 200; i++) {
    double x = exp(12 * clue_rng_uniform(&r) - 6);
    double lhs = nn_digamma(2 * x), rhs = 0.5 * nn_digamma(x) + 0.5 * nn_digamma(x + 0.5) + M_LN2;
    TU_CLOSE(lhs, rhs, 1e-14);
  }
  printf("  digamma: largest error against the long double reference %.3g\n", worst);
}

/* nn_lik_terms_update_cols over the pieces [0, 16), [16, 48), [48, 53) gives
 * the terms of nn_lik_terms_update bit for bit, and a piece leaves the other
 * columns as they were. */
static void test_terms_columns(void **state) {
  (void)state;
  for (int lik = CLUE_LIK_NB; lik <= CLUE_LIK_NORMAL; lik++) {
    prob p;
    int F = 53, cut[4] = {0, 16, 48, 53};
    make_prob(&p, (clue_likelihood)lik, T_MIXED, 3, F, 70 + lik);
    clue_err err;
    nn_lik_terms whole, parts;
    TU_OK(nn_lik_terms_new(p.lik, F, p.nb, &whole, &err), &err);
    TU_OK(nn_lik_terms_new(p.lik, F, p.nb, &parts, &err), &err);
    nn_lik_terms_update(&whole, p.scale, p.disp);
    size_t bf = (size_t)p.nb * F;
    float *arr[2][5] = {{whole.sp, whole.dsp, whole.theta, whole.log_theta, whole.dtheta},
                        {parts.sp, parts.dsp, parts.theta, parts.log_theta, parts.dtheta}};
    for (int a = 0; a < 5; a++)
      for (size_t q = 0; q < bf; q++) arr[1][a][q] = -7; /* marks what a piece leaves */
    nn_lik_terms_update_cols(&parts, p.scale, p.disp, cut[1], cut[2]);
    for (int a = 0; a < 5; a++)
      for (size_t q = 0; q < bf; q++) {
        int f = (int)(q % (size_t)F);
        bool in = f >= cut[1] && f < cut[2];
        if (in && lik == CLUE_LIK_BERNOULLI && a >= 2) continue; /* no dispersion */
        assert_true(in ? arr[1][a][q] == arr[0][a][q] : arr[1][a][q] == -7);
      }
    nn_lik_terms_update_cols(&parts, p.scale, p.disp, cut[0], cut[1]);
    nn_lik_terms_update_cols(&parts, p.scale, p.disp, cut[2], cut[3]);
    for (int a = 0; a < (lik == CLUE_LIK_BERNOULLI ? 2 : 5); a++)
      assert_memory_equal(arr[1][a], arr[0][a], bf * sizeof(float));
    nn_lik_terms_free(&whole);
    nn_lik_terms_free(&parts);
    free_prob(&p);
  }
}

/* The NB phases over the pieces [0, 16), [16, 48), [48, 53) of the features,
 * combined between phases as a caller over three ranks does (likelihood.h),
 * give nn_lik_nll's row sums, dloc, dlib and per-(feature, batch) gradients:
 * relative 1e-5 of each array's largest entry (the softmax's normaliser is
 * summed in another order). */
static void test_nb_split_phases(void **state) {
  (void)state;
  enum { PIECES = 3 };
  prob p;
  int n = 9, F = 53, cut[PIECES + 1] = {0, 16, 48, 53};
  make_prob(&p, CLUE_LIK_NB, T_MIXED, n, F, 97);
  clue_err err;
  nn_lik_terms t;
  TU_OK(nn_lik_terms_new(p.lik, F, p.nb, &t, &err), &err);
  nn_lik_terms_update(&t, p.scale, p.disp);
  size_t nf = (size_t)n * F, bf = (size_t)p.nb * F;
  nn_lik_grad gw = grad_new(nf, (size_t)n, bf), gp = grad_new(0, 0, bf);
  double row_w[16], row_p[16] = {0}, m[PIECES][16], s[PIECES][16], sl[PIECES][16];
  double nll_w = nn_lik_nll(&t, p.loc, p.bias, n, p.batch, p.lib, p.target, p.rows, &gw, row_w);
  float *loc[PIECES], *pv[PIECES], *gm[PIECES];
  clue_csr *tc[PIECES];
  for (int q = 0; q < PIECES; q++) { /* phase 1 on each piece */
    int f0 = cut[q], W = cut[q + 1] - f0;
    loc[q] = malloc(sizeof(float) * (size_t)n * W);
    pv[q] = malloc(sizeof(float) * (size_t)n * W);
    gm[q] = malloc(sizeof(float) * (size_t)n * W);
    for (int i = 0; i < n; i++)
      memcpy(loc[q] + (size_t)i * W, p.loc + (size_t)i * F + f0, sizeof(float) * (size_t)W);
    tc[q] = csr_columns(p.target, f0, cut[q + 1]);
    nn_nb_cols_exp(&t, f0, cut[q + 1], loc[q], p.bias, n, p.batch, pv[q], m[q], s[q]);
  }
  double nll_p = 0;
  for (int q = 0; q < PIECES; q++) { /* the combined normaliser, then phase 2 */
    double scale[16];
    for (int i = 0; i < n; i++) {
      double M = fmax(fmax(m[0][i], m[1][i]), m[2][i]), S = 0;
      for (int j = 0; j < PIECES; j++) S += s[j][i] * exp(m[j][i] - M);
      scale[i] = exp(m[q][i] - M) / S;
    }
    int W = cut[q + 1] - cut[q];
    double part[16];
    float *e = malloc(sizeof(float) * (size_t)n * W); /* row sums without gradients */
    memcpy(e, pv[q], sizeof(float) * (size_t)n * W);
    for (int i = 0; i < n; i++)
      part[i] = nn_nb_cols_nll(&t, cut[q], cut[q + 1], 1, p.batch + i, p.lib + i, scale + i,
                               tc[q], p.rows + i, e + (size_t)i * W, NULL, NULL, NULL);
    free(e);
    nll_p += nn_nb_cols_nll(&t, cut[q], cut[q + 1], n, p.batch, p.lib, scale, tc[q], p.rows,
                            pv[q], gm[q], &gp, sl[q]);
    for (int i = 0; i < n; i++) row_p[i] += part[i];
  }
  double sl_all[16];
  for (int i = 0; i < n; i++) {
    sl_all[i] = sl[0][i] + sl[1][i] + sl[2][i];
    TU_CLOSE(row_p[i], row_w[i], 1e-5);
    TU_CLOSE(gp.coef * sl_all[i], gw.dlib[i], 1e-5);
  }
  TU_CLOSE(nll_p, nll_w, 1e-5);
  double dmax = 0;
  for (size_t q = 0; q < nf; q++) dmax = fmax(dmax, fabs(gw.dloc[q]));
  for (int q = 0; q < PIECES; q++) { /* phase 3 */
    int W = cut[q + 1] - cut[q];
    nn_nb_cols_grad(&t, cut[q], cut[q + 1], loc[q], n, p.batch, p.lib, sl_all, gm[q], pv[q], &gp);
    for (int i = 0; i < n; i++)
      for (int f = 0; f < W; f++)
        assert_true(fabs(pv[q][(size_t)i * W + f] - gw.dloc[(size_t)i * F + cut[q] + f]) <=
                    1e-5 * dmax);
  }
  float *pairs[3][2] = {{gp.dscale, gw.dscale}, {gp.dbias, gw.dbias}, {gp.ddisp, gw.ddisp}};
  for (int a = 0; a < 3; a++) {
    double mx = 0;
    for (size_t q = 0; q < bf; q++) mx = fmax(mx, fabs(pairs[a][1][q]));
    assert_true(mx > 0);
    for (size_t q = 0; q < bf; q++) assert_true(fabs(pairs[a][0][q] - pairs[a][1][q]) <= 1e-5 * mx);
  }
  for (int q = 0; q < PIECES; q++) {
    free(loc[q]);
    free(pv[q]);
    free(gm[q]);
    clue_csr_free(tc[q]);
  }
  grad_free(&gw);
  grad_free(&gp);
  nn_lik_terms_free(&t);
  free_prob(&p);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_values),      cmocka_unit_test(test_nb_values),
      cmocka_unit_test(test_bernoulli_values), cmocka_unit_test(test_normal_values),
      cmocka_unit_test(test_gradients_float),  cmocka_unit_test(test_digamma_constants),
      cmocka_unit_test(test_digamma_reference), cmocka_unit_test(test_column_ranges),
      cmocka_unit_test(test_nb_split_phases), cmocka_unit_test(test_terms_columns),
  };
  return TU_RUN(tests);
}
