/* linear.c — fully connected layer y = x·Wᵀ + b through OpenBLAS gemm. */
#include <stdio.h>

#include "clue/nn.h"
#include "clue/prof.h"
#include "clue/rng.h"

int nn_linear_add(clue_arena *a, const char *name, int in, int out, nn_linear *l,
                  clue_err *err) {
  char buf[CLUE_TENSOR_NAME_MAX];
  l->in = in;
  l->out = out;
  snprintf(buf, sizeof buf, "%s.weight", name);
  l->w = clue_arena_add(a, buf, out, in, err);
  if (l->w < 0) return l->w;
  snprintf(buf, sizeof buf, "%s.bias", name);
  l->b = clue_arena_add(a, buf, out, 1, err);
  return l->b < 0 ? l->b : CLUE_OK;
}

static void fill_uniform(real *p, int64_t n, double bound, uint64_t seed, int tensor) {
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_INIT, (uint64_t)tensor, 0);
  for (int64_t i = 0; i < n; i++) p[i] = (real)((2 * clue_rng_uniform(&r) - 1) * bound);
}

void nn_linear_init(clue_arena *a, const nn_linear *l, uint64_t seed) {
  double bound = l->in > 0 ? 1.0 / sqrt((double)l->in) : 0.0;
  fill_uniform(clue_arena_w(a, l->w), clue_arena_size(a, l->w), bound, seed, l->w);
  fill_uniform(clue_arena_w(a, l->b), clue_arena_size(a, l->b), bound, seed, l->b);
}

void nn_linear_forward(const clue_arena *a, const nn_linear *l, const real *x, int n,
                       real *y) {
  nn_linear_forward_rows(a, l, 0, l->out, x, n, y);
}

void nn_linear_backward(clue_arena *a, const nn_linear *l, const real *x,
                        const real *dy, int n, real *dx) {
  nn_linear_backward_rows(a, l, 0, l->out, x, dy, n, dx);
}

void nn_linear_forward_rows(const clue_arena *a, const nn_linear *l, int o0, int o1,
                            const real *x, int n, real *y) {
  int m = o1 - o0;
  if (n <= 0 || m <= 0) return;
  const real *w = clue_arena_w(a, l->w) + (int64_t)o0 * l->in;
  const real *b = clue_arena_w(a, l->b) + o0;
  clue_prof_push(CLUE_PROF_BIAS);
  for (int i = 0; i < n; i++)
    for (int o = 0; o < m; o++) y[(int64_t)i * m + o] = b[o];
  clue_prof_pop();
  if (l->in == 0) return;
  clue_prof_push(CLUE_PROF_GEMM);
  clue_prof_gemm(n, m, l->in);
  cblas_rgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, m, l->in, 1, x, l->in, w, l->in,
              1, y, m);
  clue_prof_pop();
}

void nn_linear_backward_rows(clue_arena *a, const nn_linear *l, int o0, int o1,
                             const real *x, const real *dy, int n, real *dx) {
  int m = o1 - o0;
  if (n <= 0 || m <= 0) return;
  nn_linear_backward_rows_b(a, l, o0, o1, dy, n);
  nn_linear_backward_rows_w(a, l, a->g, o0, o1, x, dy, m, n);
  if (dx) nn_linear_backward_rows_dx(a, l, o0, o1, dy, n, dx);
}

void nn_linear_backward_rows_b(clue_arena *a, const nn_linear *l, int o0, int o1,
                               const real *dy, int n) {
  int m = o1 - o0;
  real *gb = clue_arena_g(a, l->b) + o0;
  clue_prof_push(CLUE_PROF_BIAS);
  for (int i = 0; i < n; i++) {
    const real *row = dy + (int64_t)i * m;
    for (int o = 0; o < m; o++) gb[o] += row[o];
  }
  clue_prof_pop();
}

void nn_linear_backward_rows_w(const clue_arena *a, const nn_linear *l, real *g, int o0,
                               int o1, const real *x, const real *dy, int ldy, int n) {
  int m = o1 - o0;
  if (n <= 0 || m <= 0 || l->in == 0) return;
  real *gw = g + a->t[l->w].offset + (int64_t)o0 * l->in;
  clue_prof_push(CLUE_PROF_GEMM);
  /* dW[o0:o1] (m × in) += dyᵀ (m × n) · x (n × in) */
  clue_prof_gemm(m, l->in, n);
  cblas_rgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, l->in, n, 1, dy, ldy, x, l->in, 1,
              gw, l->in);
  clue_prof_pop();
}

void nn_linear_backward_rows_dx(const clue_arena *a, const nn_linear *l, int o0, int o1,
                                const real *dy, int n, real *dx) {
  int m = o1 - o0;
  if (n <= 0 || m <= 0 || l->in == 0) return;
  clue_prof_push(CLUE_PROF_GEMM);
  clue_prof_gemm(n, l->in, m);
  cblas_rgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, l->in, m, 1, dy, m,
              clue_arena_w(a, l->w) + (int64_t)o0 * l->in, l->in, 1, dx, l->in);
  clue_prof_pop();
}
