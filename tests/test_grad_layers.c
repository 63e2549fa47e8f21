/* test_grad_layers.c — every layer of the network code alone against central
 * finite differences, in the float64 build of the network code.
 * CLUE_TEST_REAL64
 *
 * Each layer is driven through its public header (nn.h, likelihood.h, optim.h;
 * the l2 normalisation of the model through src/model/model_internal.h) with a
 * scalar loss L = Σ w ⊙ y for fixed random weights w (the likelihood is its own
 * scalar), on several random shapes including one row and one column. Backward
 * is always called on gradient buffers that already hold random values, so the
 * checks also prove the promised accumulation (dx += ..., parameter gradients
 * +=) — or overwriting, where the header says so (nn_lik_grad.dloc).
 *
 * Tolerance: |analytic − fd| ≤ 1e-6·max(|analytic|, |fd|) + 1e-8·max(1, M) with
 * fd = (L(p + h) − L(p − h)) / (2h), h = 1e-6·max(1, |p|), and M = Σ |terms of
 * L| (for NB also Σ θ·(|log θ| + 1), the size of the terms whose difference
 * θ·log(θ/(θ+μ)) is). In double the truncation error of the central difference
 * is O(h²) (≈1e-12 relative for these O(1) curvatures) and its round-off is
 * ≈ 2^-52·M/h ≈ 2.2e-10·M, so the absolute part keeps a margin of 45 over
 * round-off while a wrong term of relative size 1e-6 fails. Each test prints the
 * number of entries checked and the largest error / tolerance (≤ 0.03 when
 * written), and asserts the count, so an empty loop cannot pass.
 * Dropout (not differentiable in its randomness) is checked for its promises:
 * mask values and rate, determinism per (seed, pass, layer, row key). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/model/model_internal.h"
#include "clue/likelihood.h"
#include "clue/nn.h"
#include "clue/optim.h"
#include "clue/rng.h"
#include "testutil.h"

#define FD_H 1e-6
#define FD_RTOL 1e-6
#define FD_ATOL 1e-8

/* ---- finite-difference machinery ---- */

/* A loss: returns L and stores M = Σ |terms| in *mag. */
typedef double (*loss_fn)(void *ctx, double *mag);

typedef struct fd_stats {
  int checked, bad;
  double worst; /* largest |analytic − fd| / tol seen */
} fd_stats;

/* Compares an[i] (stride 1) with the central difference of f in p[i], i < count. */
static void fd_check(const char *what, real *p, int64_t count, const real *an, loss_fn f,
                     void *ctx, fd_stats *st) {
  for (int64_t i = 0; i < count; i++) {
    real keep = p[i];
    double h = FD_H * fmax(1.0, fabs((double)keep));
    double mu, md;
    p[i] = keep + (real)h;
    real hi = p[i];
    double up = f(ctx, &mu);
    p[i] = keep - (real)h;
    real lo = p[i];
    double down = f(ctx, &md);
    p[i] = keep;
    double fd = (up - down) / ((double)hi - (double)lo);
    double a = an[i];
    double tol = FD_RTOL * fmax(fabs(fd), fabs(a)) + FD_ATOL * fmax(1.0, fmax(mu, md));
    st->checked++;
    if (fabs(fd - a) / tol > st->worst) st->worst = fabs(fd - a) / tol;
    if (!(fabs(fd - a) <= tol)) {
      if (st->bad < 12)
        print_error("%s[%lld]: analytic %.12g, finite difference %.12g (tol %.3g)\n", what,
                    (long long)i, a, fd, tol);
      st->bad++;
    }
  }
}

static void fd_done(const fd_stats *st, int min_checked) {
  if (st->bad) print_error("%d of %d entries differ\n", st->bad, st->checked);
  printf("  %d entries checked, largest error / tolerance %.3g\n", st->checked, st->worst);
  assert_int_equal(st->bad, 0);
  assert_true(st->checked >= min_checked);
}

static void fill_normal(real *p, int64_t n, double sd, clue_rng *r) {
  for (int64_t i = 0; i < n; i++) p[i] = (real)(sd * clue_rng_normal(r));
}

/* Random values bounded away from 0 (LeakyReLU inputs: no kink within h). */
static void fill_away_from_zero(real *p, int64_t n, clue_rng *r) {
  for (int64_t i = 0; i < n; i++) {
    double v = clue_rng_normal(r);
    if (fabs(v) < 1e-3) v = v < 0 ? -0.5 : 0.5;
    p[i] = (real)v;
  }
}

static real *dup(const real *p, int64_t n) {
  real *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
  memcpy(q, p, (size_t)n * sizeof *q);
  return q;
}

/* out[i] = a[i] − b[i] (what a backward added). */
static real *diff(const real *a, const real *b, int64_t n) {
  real *q = malloc((size_t)(n > 0 ? n : 1) * sizeof *q);
  for (int64_t i = 0; i < n; i++) q[i] = a[i] - b[i];
  return q;
}

/* Σ w·y over count values; *mag = Σ |w·y|. */
static double weighted_sum(const real *w, const real *y, int64_t count, double *mag) {
  double s = 0, m = 0;
  for (int64_t i = 0; i < count; i++) {
    s += (double)w[i] * y[i];
    m += fabs((double)w[i] * y[i]);
  }
  *mag = m;
  return s;
}

/* ---- Linear ---- */

typedef struct lin_ctx {
  clue_arena a;
  nn_linear l;
  int n;
  real *x;  /* (n × in) */
  real *wt; /* (n × out) loss weights */
  real *y;  /* (n × out) */
} lin_ctx;

static double lin_loss(void *p, double *mag) {
  lin_ctx *c = p;
  nn_linear_forward(&c->a, &c->l, c->x, c->n, c->y);
  return weighted_sum(c->wt, c->y, (int64_t)c->n * c->l.out, mag);
}

static void check_linear(int n, int in, int out, uint64_t seed, fd_stats *st) {
  clue_err err;
  lin_ctx c;
  memset(&c, 0, sizeof c);
  c.n = n;
  TU_OK(nn_linear_add(&c.a, "lin", in, out, &c.l, &err), &err);
  TU_OK(clue_arena_alloc(&c.a, &err), &err);
  nn_linear_init(&c.a, &c.l, seed);
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 100, 0);
  c.x = malloc(sizeof(real) * (size_t)(n * in + 1));
  c.wt = malloc(sizeof(real) * (size_t)(n * out + 1));
  c.y = malloc(sizeof(real) * (size_t)(n * out + 1));
  fill_normal(c.x, (int64_t)n * in, 1, &r);
  fill_normal(c.wt, (int64_t)n * out, 1, &r);
  /* Gradient buffers already hold values: backward must add to them. */
  fill_normal(c.a.g, c.a.n, 1, &r);
  real *g0 = dup(c.a.g, c.a.n);
  real *dx = malloc(sizeof(real) * (size_t)(n * in + 1));
  fill_normal(dx, (int64_t)n * in, 1, &r);
  real *dx0 = dup(dx, (int64_t)n * in);
  double mag;
  lin_loss(&c, &mag);
  nn_linear_backward(&c.a, &c.l, c.x, c.wt, n, dx);
  real *gan = diff(c.a.g, g0, c.a.n), *dxan = diff(dx, dx0, (int64_t)n * in);
  char what[64];
  snprintf(what, sizeof what, "linear %dx%d->%d dW", n, in, out);
  fd_check(what, clue_arena_w(&c.a, c.l.w), clue_arena_size(&c.a, c.l.w),
           gan + c.a.t[c.l.w].offset, lin_loss, &c, st);
  snprintf(what, sizeof what, "linear %dx%d->%d db", n, in, out);
  fd_check(what, clue_arena_w(&c.a, c.l.b), out, gan + c.a.t[c.l.b].offset, lin_loss, &c, st);
  snprintf(what, sizeof what, "linear %dx%d->%d dx", n, in, out);
  fd_check(what, c.x, (int64_t)n * in, dxan, lin_loss, &c, st);
  /* dx = NULL: parameter gradients only, the same values. */
  clue_arena_zero_grad(&c.a);
  nn_linear_backward(&c.a, &c.l, c.x, c.wt, n, NULL);
  for (int64_t i = 0; i < c.a.n; i++) assert_true(fabs(c.a.g[i] - gan[i]) <= 1e-12 * (1 + fabs(gan[i])));
  free(gan);
  free(dxan);
  free(g0);
  free(dx);
  free(dx0);
  free(c.x);
  free(c.wt);
  free(c.y);
  clue_arena_release(&c.a);
}

static void test_linear(void **state) {
  (void)state;
  static const int shapes[][3] = {{1, 1, 1}, {1, 5, 3}, {4, 1, 6}, {7, 3, 1},
                                  {5, 8, 4}, {3, 0, 2}, {16, 9, 7}};
  fd_stats st = {0, 0, 0};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    check_linear(shapes[s][0], shapes[s][1], shapes[s][2], 10 + s, &st);
  fd_done(&st, 359);
}

/* ---- LeakyReLU ---- */

typedef struct act_ctx {
  int64_t count;
  real *x, *y, *wt;
} act_ctx;

static double act_loss(void *p, double *mag) {
  act_ctx *c = p;
  memcpy(c->y, c->x, (size_t)c->count * sizeof(real));
  nn_leaky_relu_forward(c->y, c->count);
  return weighted_sum(c->wt, c->y, c->count, mag);
}

static void test_leaky_relu(void **state) {
  (void)state;
  fd_stats st = {0, 0, 0};
  static const int64_t counts[] = {1, 2, 17, 64};
  for (size_t s = 0; s < sizeof counts / sizeof counts[0]; s++) {
    int64_t n = counts[s];
    act_ctx c = {n, malloc(sizeof(real) * n), malloc(sizeof(real) * n),
                 malloc(sizeof(real) * n)};
    clue_rng r = clue_rng_stream(5, CLUE_RNG_TEST, 200, s);
    fill_away_from_zero(c.x, n, &r);
    if (n == 1) c.x[0] = (real)-0.7; /* the negative branch alone */
    fill_normal(c.wt, n, 1, &r);
    double mag;
    act_loss(&c, &mag);
    /* backward works in place on the upstream gradient: dx = w · f'(x) */
    real *dx = dup(c.wt, n);
    nn_leaky_relu_backward(c.y, dx, n);
    fd_check("leaky_relu dx", c.x, n, dx, act_loss, &c, &st);
    /* the forward values themselves: slope 0.2 on the negative side */
    act_loss(&c, &mag);
    for (int64_t i = 0; i < n; i++)
      assert_true(c.y[i] == (c.x[i] > 0 ? c.x[i] : (real)0.2 * c.x[i]));
    free(dx);
    free(c.x);
    free(c.y);
    free(c.wt);
  }
  fd_done(&st, 84);
}

/* ---- Dropout ---- */

/* The mask is (u ≥ p)/(1 − p): values 0 or 1/(1 − p), a fraction p of zeros,
 * x multiplied by it; a pure function of (seed, pass, layer, row key), so rows
 * keep their masks when they move (another rank, another position); p = 0 keeps
 * everything. */
static void test_dropout(void **state) {
  (void)state;
  enum { ROWS = 200, COLS = 50 };
  static real x[ROWS * COLS], mask[ROWS * COLS], x2[ROWS * COLS], mask2[ROWS * COLS];
  uint64_t key[ROWS], key2[ROWS];
  for (int i = 0; i < ROWS; i++) key[i] = 5000 + 3 * (uint64_t)i;
  clue_rng r = clue_rng_stream(4, CLUE_RNG_TEST, 800, 0);
  for (int i = 0; i < ROWS * COLS; i++) x[i] = (real)clue_rng_normal(&r);
  memcpy(x2, x, sizeof x);
  const double p = 0.3;
  nn_rng_ctx ctx = {.seed = 11, .pass = 3, .row_key = key};
  nn_dropout_forward(x2, ROWS, COLS, p, &ctx, 2, mask);
  int zeros = 0;
  for (int i = 0; i < ROWS * COLS; i++) {
    assert_true(mask[i] == 0 || fabs(mask[i] - 1 / (1 - p)) < 1e-12);
    assert_true(x2[i] == x[i] * mask[i]);
    zeros += mask[i] == 0;
  }
  /* binomial(10000, 0.3): mean 3000, sd 45.8; 5 sd */
  assert_true(abs(zeros - 3000) < 230);
  /* rows in reverse order, with their keys: the same masks, reversed */
  for (int i = 0; i < ROWS; i++) key2[i] = key[ROWS - 1 - i];
  nn_rng_ctx ctx2 = ctx;
  ctx2.row_key = key2;
  memcpy(x2, x, sizeof x);
  nn_dropout_forward(x2, ROWS, COLS, p, &ctx2, 2, mask2);
  for (int i = 0; i < ROWS; i++)
    assert_memory_equal(mask2 + i * COLS, mask + (ROWS - 1 - i) * COLS, sizeof(real) * COLS);
  /* another layer, pass or seed: other masks */
  static const uint64_t change[3][3] = {{11, 3, 1}, {11, 4, 2}, {12, 3, 2}};
  for (int c = 0; c < 3; c++) {
    nn_rng_ctx o = {.seed = change[c][0], .pass = change[c][1], .row_key = key};
    memcpy(x2, x, sizeof x);
    nn_dropout_forward(x2, ROWS, COLS, p, &o, change[c][2], mask2);
    int same = 0;
    for (int i = 0; i < ROWS * COLS; i++) same += mask2[i] == mask[i];
    assert_true(same < ROWS * COLS * 0.7); /* independent masks agree on 58 % */
  }
  /* p = 0: mask of ones, x unchanged */
  memcpy(x2, x, sizeof x);
  nn_dropout_forward(x2, ROWS, COLS, 0.0, &ctx, 2, mask2);
  for (int i = 0; i < ROWS * COLS; i++) assert_true(mask2[i] == 1 && x2[i] == x[i]);
}

/* ---- BatchNorm (training mode) ---- */

typedef struct bn_ctx {
  clue_arena params, bufs;
  nn_batchnorm bn;
  nn_bn_cache cache;
  clue_comm comm;
  int n;
  real *x, *y, *wt; /* (n × c) */
} bn_ctx;

static double bn_loss(void *p, double *mag) {
  bn_ctx *c = p;
  nn_batchnorm_forward_train(&c->params, &c->bufs, &c->bn, c->x, c->n, c->n, c->y, &c->cache,
                             &c->comm);
  return weighted_sum(c->wt, c->y, (int64_t)c->n * c->bn.c, mag);
}

static void bn_setup(bn_ctx *c, int n, int nc, uint64_t seed) {
  clue_err err;
  memset(c, 0, sizeof *c);
  c->n = n;
  c->comm = clue_comm_self();
  TU_OK(nn_batchnorm_add(&c->params, &c->bufs, "bn", nc, &c->bn, &err), &err);
  TU_OK(clue_arena_alloc(&c->params, &err), &err);
  TU_OK(clue_arena_alloc(&c->bufs, &err), &err);
  nn_batchnorm_init(&c->params, &c->bufs, &c->bn);
  size_t cnt = (size_t)n * nc;
  c->x = malloc(sizeof(real) * cnt);
  c->y = malloc(sizeof(real) * cnt);
  c->wt = malloc(sizeof(real) * cnt);
  c->cache.xhat = malloc(sizeof(real) * cnt);
  c->cache.invstd = malloc(sizeof(real) * (size_t)nc);
  c->cache.sums = malloc(sizeof(double) * 2 * (size_t)nc);
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 300, 0);
  for (size_t i = 0; i < cnt; i++) c->x[i] = (real)(0.5 + 1.5 * clue_rng_normal(&r));
  fill_normal(c->wt, (int64_t)cnt, 1, &r);
}

static void bn_teardown(bn_ctx *c) {
  free(c->x);
  free(c->y);
  free(c->wt);
  free(c->cache.xhat);
  free(c->cache.invstd);
  free(c->cache.sums);
  clue_arena_release(&c->params);
  clue_arena_release(&c->bufs);
}

static void check_batchnorm(int n, int nc, bool constant_col, uint64_t seed, fd_stats *st) {
  bn_ctx c;
  bn_setup(&c, n, nc, seed);
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 301, 0);
  if (constant_col)
    for (int i = 0; i < n; i++) c.x[(int64_t)i * nc + nc - 1] = (real)1.25;
  /* γ, β away from their initial 1, 0 */
  real *gamma = clue_arena_w(&c.params, c.bn.gamma), *beta = clue_arena_w(&c.params, c.bn.beta);
  for (int j = 0; j < nc; j++) {
    gamma[j] = (real)(1 + 0.5 * clue_rng_normal(&r));
    beta[j] = (real)(0.5 * clue_rng_normal(&r));
  }
  fill_normal(c.params.g, c.params.n, 1, &r);
  real *g0 = dup(c.params.g, c.params.n);
  int64_t cnt = (int64_t)n * nc;
  real *dx = malloc(sizeof(real) * (size_t)cnt);
  fill_normal(dx, cnt, 1, &r);
  real *dx0 = dup(dx, cnt);
  double mag;
  bn_loss(&c, &mag);
  nn_batchnorm_backward(&c.params, &c.bn, &c.cache, c.wt, n, n, dx, &c.comm);
  real *gan = diff(c.params.g, g0, c.params.n), *dxan = diff(dx, dx0, cnt);
  char what[64];
  snprintf(what, sizeof what, "batchnorm %dx%d%s dgamma", n, nc, constant_col ? " const" : "");
  fd_check(what, gamma, nc, gan + c.params.t[c.bn.gamma].offset, bn_loss, &c, st);
  snprintf(what, sizeof what, "batchnorm %dx%d%s dbeta", n, nc, constant_col ? " const" : "");
  fd_check(what, beta, nc, gan + c.params.t[c.bn.beta].offset, bn_loss, &c, st);
  snprintf(what, sizeof what, "batchnorm %dx%d%s dx", n, nc, constant_col ? " const" : "");
  fd_check(what, c.x, cnt, dxan, bn_loss, &c, st);
  if (n == 1)
    for (int64_t i = 0; i < cnt; i++) assert_true(fabs(dxan[i]) < 1e-12);
  free(gan);
  free(dxan);
  free(g0);
  free(dx);
  free(dx0);
  bn_teardown(&c);
}

static void test_batchnorm_grad(void **state) {
  (void)state;
  static const int shapes[][3] = {/* n, c, constant last column */
                                  {1, 3, 0}, {2, 1, 0}, {5, 4, 0}, {9, 2, 0},
                                  {6, 3, 1}, {4, 1, 1}, {1, 1, 0}, {33, 5, 0}};
  fd_stats st = {0, 0, 0};
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
    check_batchnorm(shapes[s][0], shapes[s][1], shapes[s][2], 20 + s, &st);
  fd_done(&st, 271);
}

/* Forward values: batch statistics (population variance), running statistics
 * with momentum 0.1 and the unbiased variance, eval mode from the running
 * statistics, and x → y in place; all against plain formulas. */
static void test_batchnorm_values(void **state) {
  (void)state;
  int n = 7, nc = 3;
  bn_ctx c;
  bn_setup(&c, n, nc, 40);
  real *gamma = clue_arena_w(&c.params, c.bn.gamma), *beta = clue_arena_w(&c.params, c.bn.beta);
  for (int j = 0; j < nc; j++) {
    gamma[j] = (real)(0.5 + j);
    beta[j] = (real)(0.25 * j - 0.1);
  }
  double mag;
  bn_loss(&c, &mag);
  const real *rm = clue_arena_w(&c.bufs, c.bn.run_mean), *rv = clue_arena_w(&c.bufs, c.bn.run_var);
  for (int j = 0; j < nc; j++) {
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++) s += c.x[i * nc + j];
    double mean = s / n;
    for (int i = 0; i < n; i++) ss += (c.x[i * nc + j] - mean) * (c.x[i * nc + j] - mean);
    double var = ss / n;
    for (int i = 0; i < n; i++) {
      double want = gamma[j] * (c.x[i * nc + j] - mean) / sqrt(var + 1e-5) + beta[j];
      TU_CLOSE(c.y[i * nc + j], want, 1e-12);
    }
    TU_CLOSE(rm[j], 0.1 * mean, 1e-12);
    TU_CLOSE(rv[j], 0.9 + 0.1 * ss / (n - 1), 1e-12);
  }
  /* in place gives the same output */
  real *y = dup(c.y, (int64_t)n * nc);
  real *xin = dup(c.x, (int64_t)n * nc);
  nn_batchnorm_forward_train(&c.params, &c.bufs, &c.bn, xin, n, n, xin, &c.cache, &c.comm);
  for (int i = 0; i < n * nc; i++) TU_CLOSE(xin[i], y[i], 1e-14);
  /* eval mode: running statistics (now after two updates) */
  memcpy(xin, c.x, sizeof(real) * (size_t)(n * nc));
  nn_batchnorm_forward_eval(&c.params, &c.bufs, &c.bn, xin, n, xin);
  for (int i = 0; i < n; i++)
    for (int j = 0; j < nc; j++) {
      double want = gamma[j] * (c.x[i * nc + j] - rm[j]) / sqrt(rv[j] + 1e-5) + beta[j];
      TU_CLOSE(xin[i * nc + j], want, 1e-12);
    }
  free(y);
  free(xin);
  bn_teardown(&c);
}

/* ---- MLP stacks ---- */

typedef struct mlp_case {
  int n, in, width, depth, n_onehot;
  bool every, bn;
  double p;
} mlp_case;

typedef struct mlp_ctx {
  clue_arena params, bufs;
  nn_mlp m;
  nn_mlp_cache cache;
  nn_mode mode;
  clue_comm comm;
  int n, ow;
  real *x;        /* (n × in) */
  int32_t *batch; /* (n) */
  uint64_t *key;  /* (n) */
  real *wt;       /* (n × ow) */
} mlp_ctx;

static double mlp_loss(void *p, double *mag) {
  mlp_ctx *c = p;
  real *out = nn_mlp_forward(&c->params, &c->bufs, &c->m, c->x, c->batch, c->n, c->n,
                             &c->mode, &c->cache);
  return weighted_sum(c->wt, out, (int64_t)c->n * c->ow, mag);
}

static void check_mlp(const mlp_case *k, uint64_t seed, fd_stats *st) {
  clue_err err;
  mlp_ctx c;
  memset(&c, 0, sizeof c);
  c.n = k->n;
  c.comm = clue_comm_self();
  TU_OK(nn_mlp_add(&c.params, &c.bufs, "mlp", k->in, k->width, k->depth, k->n_onehot,
                   k->every, k->bn, k->p, 3, &c.m, &err),
        &err);
  TU_OK(clue_arena_alloc(&c.params, &err), &err);
  TU_OK(clue_arena_alloc(&c.bufs, &err), &err);
  nn_mlp_init(&c.params, &c.bufs, &c.m, seed);
  TU_OK(nn_mlp_cache_new(&c.m, k->n, &c.cache, &err), &err);
  c.ow = nn_mlp_out_width(&c.m);
  int want_ow = k->depth == 0 ? k->in + k->n_onehot
                              : k->width + (k->every ? k->n_onehot : 0);
  assert_int_equal(c.ow, want_ow);
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 400, 0);
  c.x = malloc(sizeof(real) * (size_t)(k->n * k->in + 1));
  c.batch = malloc(sizeof(int32_t) * (size_t)k->n);
  c.key = malloc(sizeof(uint64_t) * (size_t)k->n);
  c.wt = malloc(sizeof(real) * (size_t)(k->n * c.ow));
  fill_normal(c.x, (int64_t)k->n * k->in, 1, &r);
  fill_normal(c.wt, (int64_t)k->n * c.ow, 1, &r);
  for (int i = 0; i < k->n; i++) {
    c.batch[i] = k->n_onehot ? (int32_t)clue_rng_below(&r, (uint64_t)k->n_onehot) : 0;
    c.key[i] = 1000 + 7 * (uint64_t)i;
  }
  /* BatchNorm parameters away from 1 / 0 */
  if (k->bn)
    for (int l = 0; l < k->depth; l++) {
      real *g = clue_arena_w(&c.params, c.m.bn[l].gamma);
      real *b = clue_arena_w(&c.params, c.m.bn[l].beta);
      for (int j = 0; j < k->width; j++) {
        g[j] = (real)(1 + 0.3 * clue_rng_normal(&r));
        b[j] = (real)(0.3 * clue_rng_normal(&r));
      }
    }
  c.mode.train = true;
  c.mode.comm = &c.comm;
  c.mode.rng.seed = seed;
  c.mode.rng.pass = 77;
  c.mode.rng.row_key = c.key;
  fill_normal(c.params.g, c.params.n, 1, &r);
  real *g0 = dup(c.params.g, c.params.n);
  int64_t nx = (int64_t)k->n * k->in;
  real *dx = malloc(sizeof(real) * (size_t)(nx + 1));
  fill_normal(dx, nx, 1, &r);
  real *dx0 = dup(dx, nx);
  double mag;
  mlp_loss(&c, &mag);
  if (k->p > 0 && k->depth > 0) {
    /* the dropout path is exercised: some units dropped, the rest scaled by 1/(1−p) */
    int64_t cnt = (int64_t)k->n * k->width, zeros = 0;
    for (int64_t i = 0; i < cnt; i++) {
      real mk = c.cache.mask[0][i];
      zeros += mk == 0;
      assert_true(mk == 0 || fabs(mk - 1 / (1 - k->p)) < 1e-12);
    }
    if (cnt >= 8) assert_true(zeros > 0 && zeros < cnt);
  }
  nn_mlp_backward(&c.params, &c.m, &c.cache, c.wt, k->n, k->n, dx, &c.mode);
  real *gan = diff(c.params.g, g0, c.params.n), *dxan = diff(dx, dx0, nx);
  char what[160];
  for (int t = 0; t < c.params.n_tensors; t++) {
    snprintf(what, sizeof what, "mlp n%d in%d w%d depth%d oh%d%s%s p%.1f: %s", k->n, k->in,
             k->width, k->depth, k->n_onehot, k->every ? " every" : "", k->bn ? " bn" : "",
             k->p, c.params.t[t].name);
    fd_check(what, clue_arena_w(&c.params, t), clue_arena_size(&c.params, t),
             gan + c.params.t[t].offset, mlp_loss, &c, st);
  }
  snprintf(what, sizeof what, "mlp n%d in%d w%d depth%d oh%d%s%s p%.1f: dx", k->n, k->in,
           k->width, k->depth, k->n_onehot, k->every ? " every" : "", k->bn ? " bn" : "", k->p);
  fd_check(what, c.x, nx, dxan, mlp_loss, &c, st);
  /* dx = NULL: the same parameter gradients */
  mlp_loss(&c, &mag);
  clue_arena_zero_grad(&c.params);
  nn_mlp_backward(&c.params, &c.m, &c.cache, c.wt, k->n, k->n, NULL, &c.mode);
  for (int64_t i = 0; i < c.params.n; i++)
    assert_true(fabs(c.params.g[i] - gan[i]) <= 1e-12 * (1 + fabs(gan[i])));
  free(gan);
  free(dxan);
  free(g0);
  free(dx);
  free(dx0);
  free(c.x);
  free(c.batch);
  free(c.key);
  free(c.wt);
  nn_mlp_cache_free(&c.cache);
  clue_arena_release(&c.params);
  clue_arena_release(&c.bufs);
}

static void test_mlp(void **state) {
  (void)state;
  static const mlp_case cases[] = {
      /* n, in, width, depth, onehot, every, bn, p */
      {1, 3, 4, 1, 0, false, false, 0.0},  {5, 1, 1, 1, 0, false, true, 0.0},
      {6, 4, 5, 2, 3, true, true, 0.0},    {6, 4, 5, 2, 3, false, true, 0.3},
      {7, 3, 4, 2, 2, true, false, 0.3},   {4, 5, 3, 0, 2, true, false, 0.0},
      {3, 2, 4, 0, 0, false, false, 0.3},  {1, 2, 3, 2, 2, true, true, 0.3},
      {8, 6, 6, 2, 0, false, true, 0.3},   {5, 3, 4, 1, 2, true, true, 0.3},
      {9, 1, 3, 3, 2, false, false, 0.3},  {12, 5, 7, 2, 4, true, true, 0.3},
  };
  fd_stats st = {0, 0, 0};
  for (size_t s = 0; s < sizeof cases / sizeof cases[0]; s++) check_mlp(&cases[s], 50 + s, &st);
  fd_done(&st, 907);
}

/* ---- likelihoods ---- */

typedef struct lik_ctx {
  nn_lik_terms terms;
  clue_likelihood lik;
  int n, F, nb;
  real *loc;     /* (n × F) */
  real *scale, *bias, *disp; /* (nb × F) */
  real *lib;     /* (n) NB only, else NULL */
  int32_t *batch; /* (n) */
  int64_t *rows;  /* (n) */
  clue_csr *target;
  real coef;
} lik_ctx;

static double lik_loss(void *p, double *mag) {
  lik_ctx *c = p;
  /* the terms are cached per pass: refresh after every change of scale / disp */
  nn_lik_terms_update(&c->terms, c->scale, c->disp);
  double *row = malloc(sizeof(double) * (size_t)c->n);
  double v = nn_lik_nll(&c->terms, c->loc, c->bias, c->n, c->batch, c->lib, c->target,
                        c->rows, NULL, row);
  double m = 0;
  for (int i = 0; i < c->n; i++) m += fabs(row[i]);
  /* NB: θ·(log θ − log(θ + μ)) is a difference of terms of size θ·|log θ|;
   * their round-off, not the row sum, bounds that of L. */
  if (c->lik == CLUE_LIK_NB)
    for (int i = 0; i < c->n; i++)
      for (int f = 0; f < c->F; f++) {
        double lt = c->disp[(int64_t)c->batch[i] * c->F + f];
        m += exp(lt) * (fabs(lt) + 1);
      }
  free(row);
  *mag = fabs((double)c->coef) * m;
  return (double)c->coef * v;
}

/* Sparse targets of n_rows rows: row 1 empty, feature F−1 never observed (when
 * F > 1), an explicit stored zero in row 0; NB counts up to a few hundred,
 * Bernoulli ones, Normal signed values. */
static clue_csr *lik_targets(clue_likelihood lik, int n_rows, int F, clue_rng *r) {
  clue_err err;
  clue_csr *t = clue_csr_new(n_rows, F, (int64_t)n_rows * F, &err);
  int64_t at = 0;
  for (int i = 0; i < n_rows; i++) {
    for (int f = 0; f < F && i != 1; f++) {
      if (F > 1 && f == F - 1) continue;
      if (clue_rng_uniform(r) < 0.45) continue;
      t->indices[at] = f;
      if (lik == CLUE_LIK_NB) {
        double u = clue_rng_uniform(r);
        t->data[at] = (float)(u < 0.1 ? 150 + clue_rng_below(r, 200) : 1 + clue_rng_below(r, 9));
        if (i == 0 && at == t->indptr[0]) t->data[at] = 0; /* explicit zero */
      } else if (lik == CLUE_LIK_BERNOULLI) {
        t->data[at] = 1;
      } else {
        t->data[at] = (float)(2 * clue_rng_normal(r));
      }
      at++;
    }
    t->indptr[i + 1] = at;
  }
  return t;
}

static void check_lik(clue_likelihood lik, int n, int F, int nb, uint64_t seed, fd_stats *st) {
  clue_err err;
  lik_ctx c;
  memset(&c, 0, sizeof c);
  c.lik = lik;
  c.n = n;
  c.F = F;
  c.nb = nb;
  c.coef = (real)0.37;
  TU_OK(nn_lik_terms_new(lik, F, nb, &c.terms, &err), &err);
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 500, 0);
  int n_target = n + 2;
  c.target = lik_targets(lik, n_target, F, &r);
  int64_t nf = (int64_t)n * F, bf = (int64_t)nb * F;
  c.loc = malloc(sizeof(real) * (size_t)nf);
  c.scale = malloc(sizeof(real) * (size_t)bf);
  c.bias = malloc(sizeof(real) * (size_t)bf);
  c.disp = malloc(sizeof(real) * (size_t)bf);
  c.batch = malloc(sizeof(int32_t) * (size_t)n);
  c.rows = malloc(sizeof(int64_t) * (size_t)n);
  fill_normal(c.loc, nf, 1, &r);
  fill_normal(c.scale, bf, 0.7, &r);
  fill_normal(c.bias, bf, 1, &r);
  fill_normal(c.disp, bf, lik == CLUE_LIK_NB ? 1.5 : 1.0, &r);
  if (lik == CLUE_LIK_NB) {
    static const double libs[] = {0.7, 3, 50, 800, 12000};
    c.lib = malloc(sizeof(real) * (size_t)n);
    for (int i = 0; i < n; i++) c.lib[i] = (real)libs[i % 5];
  }
  for (int i = 0; i < n; i++) {
    c.batch[i] = (int32_t)((i * 5 + 1) % nb);
    /* rows in a shuffled order, the empty row 1 included, one row used twice */
    c.rows[i] = (int64_t)((i * 3 + 1) % n_target);
  }
  if (n > 2) c.rows[n - 1] = c.rows[0];
  nn_lik_grad g;
  memset(&g, 0, sizeof g);
  g.coef = c.coef;
  g.dloc = malloc(sizeof(real) * (size_t)nf);
  g.dscale = malloc(sizeof(real) * (size_t)bf);
  g.dbias = malloc(sizeof(real) * (size_t)bf);
  g.ddisp = malloc(sizeof(real) * (size_t)bf);
  if (c.lib) g.dlib = malloc(sizeof(real) * (size_t)n);
  /* dloc is overwritten; the others accumulate */
  for (int64_t i = 0; i < nf; i++) g.dloc[i] = (real)1e30;
  fill_normal(g.dscale, bf, 1, &r);
  fill_normal(g.dbias, bf, 1, &r);
  fill_normal(g.ddisp, bf, 1, &r);
  if (g.dlib) fill_normal(g.dlib, n, 1, &r);
  real *s0 = dup(g.dscale, bf), *b0 = dup(g.dbias, bf), *d0 = dup(g.ddisp, bf);
  real *l0 = g.dlib ? dup(g.dlib, n) : NULL;
  nn_lik_terms_update(&c.terms, c.scale, c.disp);
  double *row = malloc(sizeof(double) * (size_t)n);
  double total = nn_lik_nll(&c.terms, c.loc, c.bias, n, c.batch, c.lib, c.target, c.rows, &g, row);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += row[i];
  TU_CLOSE(total, sum, 1e-12);
  assert_true(isfinite(total));
  double total_nog = nn_lik_nll(&c.terms, c.loc, c.bias, n, c.batch, c.lib, c.target, c.rows,
                                NULL, NULL);
  TU_CLOSE(total, total_nog, 1e-12);
  real *dsan = diff(g.dscale, s0, bf), *dban = diff(g.dbias, b0, bf), *ddan = diff(g.ddisp, d0, bf);
  static const char *names[] = {"NB", "Bernoulli", "Normal"};
  char what[96];
  snprintf(what, sizeof what, "%s n%d F%d nb%d dloc", names[lik], n, F, nb);
  fd_check(what, c.loc, nf, g.dloc, lik_loss, &c, st);
  snprintf(what, sizeof what, "%s n%d F%d nb%d dscale", names[lik], n, F, nb);
  fd_check(what, c.scale, bf, dsan, lik_loss, &c, st);
  snprintf(what, sizeof what, "%s n%d F%d nb%d dbias", names[lik], n, F, nb);
  fd_check(what, c.bias, bf, dban, lik_loss, &c, st);
  if (lik != CLUE_LIK_BERNOULLI) {
    snprintf(what, sizeof what, "%s n%d F%d nb%d ddisp", names[lik], n, F, nb);
    fd_check(what, c.disp, bf, ddan, lik_loss, &c, st);
  } else {
    for (int64_t i = 0; i < bf; i++) assert_true(ddan[i] == 0);
  }
  if (c.lib) {
    real *dlan = diff(g.dlib, l0, n);
    snprintf(what, sizeof what, "%s n%d F%d nb%d dlib", names[lik], n, F, nb);
    fd_check(what, c.lib, n, dlan, lik_loss, &c, st);
    free(dlan);
  }
  /* Some outputs skipped: the others unchanged. */
  nn_lik_grad g2;
  memset(&g2, 0, sizeof g2);
  g2.coef = c.coef;
  g2.dbias = calloc((size_t)bf, sizeof(real));
  nn_lik_terms_update(&c.terms, c.scale, c.disp);
  nn_lik_nll(&c.terms, c.loc, c.bias, n, c.batch, c.lib, c.target, c.rows, &g2, NULL);
  for (int64_t i = 0; i < bf; i++) TU_CLOSE(g2.dbias[i], dban[i], 1e-12);
  free(g2.dbias);
  free(dsan);
  free(dban);
  free(ddan);
  free(s0);
  free(b0);
  free(d0);
  free(l0);
  free(row);
  free(g.dloc);
  free(g.dscale);
  free(g.dbias);
  free(g.ddisp);
  free(g.dlib);
  free(c.loc);
  free(c.scale);
  free(c.bias);
  free(c.disp);
  free(c.lib);
  free(c.batch);
  free(c.rows);
  clue_csr_free(c.target);
  nn_lik_terms_free(&c.terms);
}

static const int LIK_SHAPES[][3] = {/* n, F, n_batches */
                                    {1, 1, 1}, {1, 6, 2}, {5, 6, 3}, {7, 1, 2},
                                    {6, 9, 2}, {11, 4, 4}, {4, 37, 2}};

static void run_lik(clue_likelihood lik, int min_checked) {
  fd_stats st = {0, 0, 0};
  for (size_t s = 0; s < sizeof LIK_SHAPES / sizeof LIK_SHAPES[0]; s++)
    check_lik(lik, LIK_SHAPES[s][0], LIK_SHAPES[s][1], LIK_SHAPES[s][2], 60 + s, &st);
  fd_done(&st, min_checked);
}

static void test_lik_nb(void **state) {
  (void)state;
  run_lik(CLUE_LIK_NB, 748);
}

static void test_lik_bernoulli(void **state) {
  (void)state;
  run_lik(CLUE_LIK_BERNOULLI, 572);
}

static void test_lik_normal(void **state) {
  (void)state;
  run_lik(CLUE_LIK_NORMAL, 713);
}

/* ---- optimisers: one step against the PyTorch formulas by hand ---- */

static void test_rmsprop(void **state) {
  (void)state;
  clue_err err;
  clue_arena a;
  memset(&a, 0, sizeof a);
  assert_true(clue_arena_add(&a, "p0", 5, 1, &err) >= 0);
  assert_true(clue_arena_add(&a, "p1", 3, 2, &err) >= 0);
  TU_OK(clue_arena_alloc(&a, &err), &err);
  clue_optim o;
  double lr = 0.002;
  TU_OK(clue_optim_init(&o, CLUE_OPT_RMSPROP, lr, a.n, &err), &err);
  /* A literal case: from v = 0, g = 0.5: v = 0.01·0.25, step = lr·0.5/(0.05 + 1e-8). */
  a.w[0] = 1;
  a.g[0] = 0.5;
  a.w[1] = -2;
  a.g[1] = 0; /* no gradient: no move */
  clue_optim_step(&o, &a);
  TU_CLOSE(a.w[0], 1 - 0.0199999960000008, 1e-15);
  TU_CLOSE(o.v[0], 0.0025, 1e-15);
  assert_true(a.w[1] == -2);
  /* Three more steps with random gradients against the formula. */
  clue_rng r = clue_rng_stream(1, CLUE_RNG_TEST, 600, 0);
  double *w = malloc(sizeof(double) * (size_t)a.n), *v = malloc(sizeof(double) * (size_t)a.n);
  for (int64_t i = 0; i < a.n; i++) {
    a.w[i] = (real)clue_rng_normal(&r);
    w[i] = a.w[i];
    v[i] = o.v[i];
  }
  for (int step = 0; step < 3; step++) {
    for (int64_t i = 0; i < a.n; i++) a.g[i] = (real)(step == 1 && i % 3 == 0 ? 0 : clue_rng_normal(&r));
    clue_optim_step(&o, &a);
    for (int64_t i = 0; i < a.n; i++) {
      double g = a.g[i];
      v[i] = 0.99 * v[i] + 0.01 * g * g;
      w[i] -= lr * g / (sqrt(v[i]) + 1e-8);
      TU_CLOSE(a.w[i], w[i], 1e-13);
      TU_CLOSE(o.v[i], v[i], 1e-13);
    }
  }
  assert_int_equal(o.t, 4);
  free(w);
  free(v);
  clue_optim_release(&o);
  clue_arena_release(&a);
}

static void test_adam(void **state) {
  (void)state;
  clue_err err;
  clue_arena a;
  memset(&a, 0, sizeof a);
  assert_true(clue_arena_add(&a, "p0", 4, 1, &err) >= 0);
  assert_true(clue_arena_add(&a, "p1", 2, 3, &err) >= 0);
  TU_OK(clue_arena_alloc(&a, &err), &err);
  clue_optim o;
  double lr = 0.002;
  TU_OK(clue_optim_init(&o, CLUE_OPT_ADAM, lr, a.n, &err), &err);
  /* Literal first step: m̂ = g, v̂ = g², so the move is lr·g/(|g| + 1e-8). */
  a.w[0] = 1;
  a.g[0] = 0.5;
  a.w[1] = 3;
  a.g[1] = -2;
  clue_optim_step(&o, &a);
  TU_CLOSE(a.w[0], 1 - 0.002 * 0.5 / (0.5 + 1e-8), 1e-15);
  TU_CLOSE(a.w[0], 0.998000000039999999, 1e-15);
  TU_CLOSE(a.w[1], 3 + 0.002 * 2 / (2 + 1e-8), 1e-15);
  TU_CLOSE(o.m[0], 0.05, 1e-15);
  TU_CLOSE(o.v[0], 0.00025, 1e-15);
  clue_rng r = clue_rng_stream(2, CLUE_RNG_TEST, 601, 0);
  int64_t n = a.n;
  double *w = malloc(sizeof(double) * (size_t)n), *m = malloc(sizeof(double) * (size_t)n),
         *v = malloc(sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) {
    a.w[i] = (real)clue_rng_normal(&r);
    w[i] = a.w[i];
    m[i] = o.m[i];
    v[i] = o.v[i];
  }
  for (int t = 2; t <= 5; t++) {
    for (int64_t i = 0; i < n; i++) a.g[i] = (real)clue_rng_normal(&r);
    clue_optim_step(&o, &a);
    for (int64_t i = 0; i < n; i++) {
      double g = a.g[i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.999 * v[i] + 0.001 * g * g;
      double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
      w[i] -= lr * mh / (sqrt(vh) + 1e-8);
      TU_CLOSE(a.w[i], w[i], 1e-13);
      TU_CLOSE(o.m[i], m[i], 1e-13);
      TU_CLOSE(o.v[i], v[i], 1e-13);
    }
  }
  assert_int_equal(o.t, 5);
  free(w);
  free(m);
  free(v);
  clue_optim_release(&o);
  clue_arena_release(&a);
}

/* ---- l2 normalisation of the samples (src/model/step.c) ---- */

typedef struct l2_ctx {
  int n;
  real *x, *y, *wt;
} l2_ctx;

static double l2_loss(void *p, double *mag) {
  l2_ctx *c = p;
  l2_normalize(c->x, c->n, c->y);
  return weighted_sum(c->wt, c->y, c->n, mag);
}

static void test_l2_normalize(void **state) {
  (void)state;
  fd_stats st = {0, 0, 0};
  static const int sizes[] = {1, 2, 7, 60};
  for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
    int n = sizes[s];
    l2_ctx c = {n, malloc(sizeof(real) * n), malloc(sizeof(real) * n), malloc(sizeof(real) * n)};
    clue_rng r = clue_rng_stream(3, CLUE_RNG_TEST, 700, s);
    fill_normal(c.x, n, 1, &r);
    fill_normal(c.wt, n, 1, &r);
    real norm = l2_normalize(c.x, n, c.y);
    double ss = 0, yy = 0;
    for (int i = 0; i < n; i++) ss += (double)c.x[i] * c.x[i];
    for (int i = 0; i < n; i++) yy += (double)c.y[i] * c.y[i];
    TU_CLOSE(norm, sqrt(ss), 1e-14);
    TU_CLOSE(yy, 1, 1e-14);
    /* backward overwrites dx; it may alias dy (the model does so) */
    real *dx = malloc(sizeof(real) * n);
    for (int i = 0; i < n; i++) dx[i] = (real)1e30;
    l2_normalize_backward(c.y, norm, c.wt, n, dx);
    real *alias = dup(c.wt, n);
    l2_normalize_backward(c.y, norm, alias, n, alias);
    for (int i = 0; i < n; i++) TU_CLOSE(alias[i], dx[i], 1e-14);
    free(alias);
    fd_check("l2_normalize dx", c.x, n, dx, l2_loss, &c, &st);
    free(dx);
    free(c.x);
    free(c.y);
    free(c.wt);
  }
  /* below the 1e-12 floor y = x / 1e-12: a linear map, dx = dy·1e12 */
  int n = 3;
  real x[3] = {(real)3e-14, (real)-4e-14, (real)1e-14}, y[3], dy[3] = {0.5, -1, 2}, dx[3];
  real norm = l2_normalize(x, n, y);
  assert_true(norm < 1e-12);
  for (int i = 0; i < n; i++) TU_CLOSE(y[i] * 1e-12, x[i], 1e-12);
  l2_normalize_backward(y, norm, dy, n, dx);
  for (int i = 0; i < n; i++) TU_CLOSE(dx[i], dy[i] * 1e12, 1e-12);
  fd_done(&st, 70);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_linear),
      cmocka_unit_test(test_leaky_relu),
      cmocka_unit_test(test_dropout),
      cmocka_unit_test(test_batchnorm_grad),
      cmocka_unit_test(test_batchnorm_values),
      cmocka_unit_test(test_mlp),
      cmocka_unit_test(test_lik_nb),
      cmocka_unit_test(test_lik_bernoulli),
      cmocka_unit_test(test_lik_normal),
      cmocka_unit_test(test_rmsprop),
      cmocka_unit_test(test_adam),
      cmocka_unit_test(test_l2_normalize),
  };
  return TU_RUN(tests);
}
