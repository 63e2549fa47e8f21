/* test_kernels.c — the speed-ups of the float build change no result: the AVX
 * optimiser loops give the scalar formulas bit for bit, the inlined dropout
 * generator gives the masks of clue_rng_uniform, the branch-free LeakyReLU gives
 * its definition exactly; and the step profiler (prof.h) charges time to the
 * innermost section only, its sections adding up to the wall time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clue/nn.h"
#include "clue/optim.h"
#include "clue/prof.h"
#include "clue/rng.h"
#include "testutil.h"

/* An arena of one tensor of n values with random weights and gradients. */
static void arena_random(clue_arena *a, int64_t n, uint64_t seed) {
  clue_err err;
  memset(a, 0, sizeof *a);
  TU_OK(clue_arena_add(a, "t", n, 1, &err) < 0 ? CLUE_EINVAL : CLUE_OK, &err);
  TU_OK(clue_arena_alloc(a, &err), &err);
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 1, 0);
  for (int64_t i = 0; i < n; i++) {
    a->w[i] = (real)clue_rng_normal(&r);
    a->g[i] = (real)(clue_rng_normal(&r) * (i % 5 == 0 ? 1e-6 : 1.0));
  }
  a->g[3] = 0; /* a zero gradient and a zero second moment */
}

/* Several steps of each optimiser against the formulas of optim.h written here
 * as plain scalar C (same operation order): identical bits. n = 1037 covers the
 * vector body and a tail. */
static void test_optimizers_exact(void **state) {
  (void)state;
  clue_err err;
  for (int kind = 0; kind < 2; kind++) {
    int64_t n = 1037;
    clue_arena a;
    arena_random(&a, n, 5 + (uint64_t)kind);
    clue_optim o;
    TU_OK(clue_optim_init(&o, kind ? CLUE_OPT_ADAM : CLUE_OPT_RMSPROP, 2e-3, a.n, &err), &err);
    real *w = malloc(sizeof(real) * (size_t)n), *v = calloc((size_t)n, sizeof(real));
    real *m = calloc((size_t)n, sizeof(real));
    memcpy(w, a.w, sizeof(real) * (size_t)n);
    for (int step = 1; step <= 3; step++) {
      clue_optim_step(&o, &a);
      if (kind == 0) {
        real al = (real)0.99, lr = (real)2e-3, eps = (real)1e-8;
        for (int64_t i = 0; i < n; i++) {
          v[i] = al * v[i] + (1 - al) * a.g[i] * a.g[i];
          w[i] -= lr * a.g[i] / (sqrtf(v[i]) + eps);
        }
      } else {
        real b1 = (real)0.9, b2 = (real)0.999, eps = (real)1e-8;
        double c1 = 1 - pow(0.9, step), c2 = 1 - pow(0.999, step);
        real st = (real)(2e-3 / c1), rc2 = (real)(1 / sqrt(c2));
        for (int64_t i = 0; i < n; i++) {
          m[i] = b1 * m[i] + (1 - b1) * a.g[i];
          v[i] = b2 * v[i] + (1 - b2) * a.g[i] * a.g[i];
          w[i] -= st * m[i] / (sqrtf(v[i]) * rc2 + eps);
        }
      }
    }
    int64_t diff = 0;
    for (int64_t i = 0; i < n; i++) diff += memcmp(&w[i], &a.w[i], sizeof(real)) != 0;
    for (int64_t i = 0; i < n; i++) diff += memcmp(&v[i], &o.v[i], sizeof(real)) != 0;
    assert_int_equal(diff, 0);
    free(w);
    free(v);
    free(m);
    clue_optim_release(&o);
    clue_arena_release(&a);
  }
}

/* Dropout masks equal (u ≥ p ? 1/(1−p) : 0) with u drawn by clue_rng_uniform from
 * the stream documented in nn.h, for several p (including ones whose p·2^53 is
 * not an integer) and row keys. */
static void test_dropout_masks(void **state) {
  (void)state;
  enum { N = 7, C = 301 };
  static const double ps[] = {0.2, 0.5, 1.0 / 3, 0.9999999, 1e-9};
  uint64_t keys[N];
  for (int i = 0; i < N; i++) keys[i] = (uint64_t)i * 977 + 13;
  nn_rng_ctx ctx = {.seed = 42, .pass = 77, .row_key = keys};
  real *x = malloc(sizeof(real) * N * C), *mask = malloc(sizeof(real) * N * C);
  int64_t kept = 0, total = 0;
  for (size_t q = 0; q < sizeof ps / sizeof ps[0]; q++) {
    double p = ps[q];
    for (int i = 0; i < N * C; i++) x[i] = (real)(i % 11) - 5;
    uint64_t layer = 3 + q;
    nn_dropout_forward(x, N, C, p, &ctx, layer, mask);
    real keep = (real)(1.0 / (1.0 - p));
    for (int i = 0; i < N; i++) {
      uint64_t key = clue_mix64(keys[i] ^ (layer * 0x9e3779b97f4a7c15ULL));
      clue_rng r = clue_rng_stream(42, CLUE_RNG_DROPOUT, 77, key);
      for (int j = 0; j < C; j++) {
        real want = clue_rng_uniform(&r) >= p ? keep : 0;
        assert_true(mask[i * C + j] == want);
        assert_true(x[i * C + j] == ((real)((i * C + j) % 11) - 5) * want);
        kept += want != 0;
        total++;
      }
    }
  }
  assert_true(kept > 0 && kept < total);
  free(x);
  free(mask);
}

static void test_leaky_relu_exact(void **state) {
  (void)state;
  enum { N = 1001 };
  real x[N], y[N], d[N], want[N];
  for (int i = 0; i < N; i++) x[i] = (real)((i * 37) % 201 - 100) * (real)0.013;
  x[0] = 0;
  x[1] = -0.0f;
  x[2] = NAN;
  memcpy(y, x, sizeof x);
  nn_leaky_relu_forward(y, N);
  for (int i = 0; i < N; i++) {
    want[i] = x[i] > 0 ? x[i] : (real)NN_LEAKY_SLOPE * x[i];
    if (i == 2) assert_true(isnan(y[i]));
    else assert_true(memcmp(&y[i], &want[i], sizeof(real)) == 0);
  }
  for (int i = 0; i < N; i++) d[i] = (real)(i % 7) - 3;
  nn_leaky_relu_backward(y, d, N);
  for (int i = 0; i < N; i++) {
    real g = (real)(i % 7) - 3;
    real w = y[i] > 0 ? g : (real)NN_LEAKY_SLOPE * g;
    assert_true(memcmp(&d[i], &w, sizeof(real)) == 0);
  }
}

static void spin(double seconds) {
  double t0 = clue_prof_now();
  while (clue_prof_now() - t0 < seconds) {
  }
}

static void test_prof_sections(void **state) {
  (void)state;
  clue_prof p;
  /* off: nothing is counted */
  clue_prof_enable(false);
  clue_prof_push(CLUE_PROF_GEMM);
  spin(0.002);
  clue_prof_pop();
  clue_prof_read(&p);
  assert_true(p.seconds[CLUE_PROF_GEMM] == 0 && p.calls[CLUE_PROF_GEMM] == 0);
  /* on: other 10 ms, gemm 50 ms of which a nested likelihood 40 ms (exclusive
   * gemm ≈ 10 ms; the bounds leave 25 ms for a descheduled test process) */
  clue_prof_enable(true);
  double t0 = clue_prof_now();
  spin(0.010);
  clue_prof_push(CLUE_PROF_GEMM);
  clue_prof_gemm(10, 20, 30);
  spin(0.010);
  clue_prof_push(CLUE_PROF_LIK);
  spin(0.040);
  clue_prof_pop();
  clue_prof_pop();
  clue_prof_read(&p);
  double wall = clue_prof_now() - t0;
  double sum = 0;
  for (int q = 0; q < CLUE_PROF_N; q++) sum += p.seconds[q];
  TU_CLOSE(sum, wall, 1e-3);
  assert_true(p.seconds[CLUE_PROF_LIK] >= 0.040);
  assert_true(p.seconds[CLUE_PROF_GEMM] >= 0.010 && p.seconds[CLUE_PROF_GEMM] < 0.035);
  assert_true(p.seconds[CLUE_PROF_OTHER] >= 0.010);
  assert_int_equal(p.calls[CLUE_PROF_GEMM], 1);
  assert_true(p.gemm_flops == 2.0 * 10 * 20 * 30);
  assert_string_equal(clue_prof_label(CLUE_PROF_GEMM), "gemm");
  /* pushes beyond the stack depth stay balanced */
  for (int i = 0; i < CLUE_PROF_DEPTH + 5; i++) clue_prof_push(CLUE_PROF_BN);
  for (int i = 0; i < CLUE_PROF_DEPTH + 5; i++) clue_prof_pop();
  clue_prof_read(&p);
  assert_int_equal(p.depth, 0);
  clue_prof_enable(false);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_optimizers_exact),
      cmocka_unit_test(test_dropout_masks),
      cmocka_unit_test(test_leaky_relu_exact),
      cmocka_unit_test(test_prof_sections),
  };
  return TU_RUN(tests);
}
