/* batchnorm.c — BatchNorm1d over the rows of the global minibatch. Local sums are
 * taken in double and reduced over the communicator, so P ranks compute what one
 * rank computes (up to the order of the reduction). */
#include <stdio.h>
#include <string.h>

#include "clue/nn.h"
#include "clue/prof.h"

int nn_batchnorm_add(clue_arena *params, clue_arena *bufs, const char *name, int c,
                     nn_batchnorm *bn, clue_err *err) {
  char buf[CLUE_TENSOR_NAME_MAX];
  bn->c = c;
  snprintf(buf, sizeof buf, "%s.gamma", name);
  if ((bn->gamma = clue_arena_add(params, buf, c, 1, err)) < 0) return bn->gamma;
  snprintf(buf, sizeof buf, "%s.beta", name);
  if ((bn->beta = clue_arena_add(params, buf, c, 1, err)) < 0) return bn->beta;
  snprintf(buf, sizeof buf, "%s.running_mean", name);
  if ((bn->run_mean = clue_arena_add(bufs, buf, c, 1, err)) < 0) return bn->run_mean;
  snprintf(buf, sizeof buf, "%s.running_var", name);
  if ((bn->run_var = clue_arena_add(bufs, buf, c, 1, err)) < 0) return bn->run_var;
  return CLUE_OK;
}

void nn_batchnorm_init(clue_arena *params, clue_arena *bufs, const nn_batchnorm *bn) {
  real *g = clue_arena_w(params, bn->gamma), *b = clue_arena_w(params, bn->beta);
  real *m = clue_arena_w(bufs, bn->run_mean), *v = clue_arena_w(bufs, bn->run_var);
  for (int j = 0; j < bn->c; j++) {
    g[j] = 1;
    b[j] = 0;
    m[j] = 0;
    v[j] = 1;
  }
}

void nn_batchnorm_forward_train(const clue_arena *params, clue_arena *bufs,
                                const nn_batchnorm *bn, const real *x, int n,
                                int64_t n_global, real *y, nn_bn_cache *cache,
                                const clue_comm *comm) {
  int c = bn->c;
  clue_prof_push(CLUE_PROF_BN);
  double *sums = cache->sums; /* [Σx | Σx²] */
  memset(sums, 0, (size_t)2 * c * sizeof *sums);
  for (int i = 0; i < n; i++) {
    const real *row = x + (int64_t)i * c;
    for (int j = 0; j < c; j++) {
      sums[j] += row[j];
      sums[c + j] += (double)row[j] * row[j];
    }
  }
  clue_prof_push(CLUE_PROF_COLL);
  clue_prof_bytes(false, comm->size > 1 ? 2.0 * c * sizeof(double) : 0);
  clue_comm_sum_double(comm, sums, (size_t)2 * c);
  clue_prof_pop();
  const real *gamma = clue_arena_w(params, bn->gamma);
  const real *beta = clue_arena_w(params, bn->beta);
  real *rm = clue_arena_w(bufs, bn->run_mean), *rv = clue_arena_w(bufs, bn->run_var);
  double N = (double)n_global;
  for (int j = 0; j < c; j++) {
    double mean = sums[j] / N;
    double var = sums[c + j] / N - mean * mean;
    if (var < 0) var = 0;
    cache->invstd[j] = (real)(1.0 / sqrt(var + NN_BN_EPS));
    sums[j] = mean;
    double unbiased = N > 1 ? var * N / (N - 1) : var;
    rm[j] = (real)((1 - NN_BN_MOMENTUM) * rm[j] + NN_BN_MOMENTUM * mean);
    rv[j] = (real)((1 - NN_BN_MOMENTUM) * rv[j] + NN_BN_MOMENTUM * unbiased);
  }
  for (int i = 0; i < n; i++) {
    const real *row = x + (int64_t)i * c;
    real *xh = cache->xhat + (int64_t)i * c;
    real *out = y + (int64_t)i * c;
    for (int j = 0; j < c; j++) {
      xh[j] = (real)((row[j] - sums[j]) * cache->invstd[j]);
      out[j] = gamma[j] * xh[j] + beta[j];
    }
  }
  clue_prof_pop();
}

void nn_batchnorm_forward_eval(const clue_arena *params, const clue_arena *bufs,
                               const nn_batchnorm *bn, const real *x, int n, real *y) {
  int c = bn->c;
  const real *gamma = clue_arena_w(params, bn->gamma);
  const real *beta = clue_arena_w(params, bn->beta);
  const real *rm = clue_arena_w(bufs, bn->run_mean), *rv = clue_arena_w(bufs, bn->run_var);
  for (int i = 0; i < n; i++) {
    const real *row = x + (int64_t)i * c;
    real *out = y + (int64_t)i * c;
    for (int j = 0; j < c; j++)
      out[j] = gamma[j] * (row[j] - rm[j]) / r_sqrt(rv[j] + (real)NN_BN_EPS) + beta[j];
  }
}

void nn_batchnorm_backward(clue_arena *params, const nn_batchnorm *bn,
                           nn_bn_cache *cache, const real *dy, int n,
                           int64_t n_global, real *dx, const clue_comm *comm) {
  int c = bn->c;
  clue_prof_push(CLUE_PROF_BN);
  double *sums = cache->sums; /* [Σdy | Σdy·xhat] */
  memset(sums, 0, (size_t)2 * c * sizeof *sums);
  for (int i = 0; i < n; i++) {
    const real *d = dy + (int64_t)i * c;
    const real *xh = cache->xhat + (int64_t)i * c;
    for (int j = 0; j < c; j++) {
      sums[j] += d[j];
      sums[c + j] += (double)d[j] * xh[j];
    }
  }
  /* Parameter gradients take the local sums: the arena is reduced later. */
  real *gg = clue_arena_g(params, bn->gamma), *gb = clue_arena_g(params, bn->beta);
  for (int j = 0; j < c; j++) {
    gb[j] += (real)sums[j];
    gg[j] += (real)sums[c + j];
  }
  clue_prof_push(CLUE_PROF_COLL);
  clue_prof_bytes(false, comm->size > 1 ? 2.0 * c * sizeof(double) : 0);
  clue_comm_sum_double(comm, sums, (size_t)2 * c);
  clue_prof_pop();
  const real *gamma = clue_arena_w(params, bn->gamma);
  double N = (double)n_global;
  for (int i = 0; i < n; i++) {
    const real *d = dy + (int64_t)i * c;
    const real *xh = cache->xhat + (int64_t)i * c;
    real *out = dx + (int64_t)i * c;
    for (int j = 0; j < c; j++) {
      double k = (double)gamma[j] * cache->invstd[j];
      out[j] += (real)(k * (d[j] - sums[j] / N - xh[j] * sums[c + j] / N));
    }
  }
  clue_prof_pop();
}
