/* test_optim.c — RMSprop and Adam in the float32 program build against the
 * PyTorch formulas of include/clue/optim.h computed here in double, for state
 * sizes that are and are not multiples of the vector widths (blocks and a
 * remainder; values past the state's n are left alone), and position
 * independence: a value's update does not depend on where it sits. (test_grad_layers checks the same formulas to 1e-13 in the float64
 * build.)
 *
 * Tolerance: |w − w_ref| ≤ 1e-6·max(1, |w_ref|) (and the same for the moments):
 * the float32 state rounds at 2^-24 ≈ 6e-8 per operation, a few per step, over
 * 5 steps. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/arena.h"
#include "clue/optim.h"
#include "clue/rng.h"
#include "testutil.h"

#define NV 45 /* a state size that is not a multiple of 2, 4, 8 or 16 */

static void make_arena(clue_arena *a) {
  clue_err err;
  memset(a, 0, sizeof *a);
  assert_true(clue_arena_add(a, "w0", 5, 7, &err) >= 0);
  assert_true(clue_arena_add(a, "w1", 10, 1, &err) >= 0);
  TU_OK(clue_arena_alloc(a, &err), &err);
  assert_true(a->n >= NV);
}

/* whole: the optimiser over the arena's n values, else over the first NV. */
static void run(clue_optimizer kind, bool whole) {
  clue_err err;
  clue_arena a;
  make_arena(&a);
  int64_t n = whole ? a.n : NV;
  clue_optim o;
  const double lr = 0.01;
  TU_OK(clue_optim_init(&o, kind, lr, n, &err), &err);
  double *w = calloc((size_t)n, sizeof *w), *m = calloc((size_t)n, sizeof *m),
         *v = calloc((size_t)n, sizeof *v);
  clue_rng r = clue_rng_stream(3, CLUE_RNG_TEST, 900, (uint64_t)kind);
  for (int64_t i = 0; i < a.n; i++) a.w[i] = (float)clue_rng_normal(&r);
  for (int64_t i = 0; i < n; i++) w[i] = a.w[i];
  float *rest = malloc(sizeof(float) * (size_t)a.n);
  memcpy(rest, a.w, sizeof(float) * (size_t)a.n);
  for (int t = 1; t <= 5; t++) {
    for (int64_t i = 0; i < a.n; i++) {
      double g = clue_rng_normal(&r) * (i % 5 == 0 ? 1e-3 : 1); /* some small gradients */
      if (t == 2 && i % 7 == 0) g = 0;
      a.g[i] = (float)g;
    }
    clue_optim_step(&o, &a);
    for (int64_t i = 0; i < n; i++) {
      double g = a.g[i];
      if (kind == CLUE_OPT_RMSPROP) {
        v[i] = 0.99 * v[i] + 0.01 * g * g;
        w[i] -= lr * g / (sqrt(v[i]) + 1e-8);
      } else {
        m[i] = 0.9 * m[i] + 0.1 * g;
        v[i] = 0.999 * v[i] + 0.001 * g * g;
        double mh = m[i] / (1 - pow(0.9, t)), vh = v[i] / (1 - pow(0.999, t));
        w[i] -= lr * mh / (sqrt(vh) + 1e-8);
        TU_CLOSE(o.m[i], m[i], 1e-6);
      }
      TU_CLOSE(o.v[i], v[i], 1e-6);
      TU_CLOSE(a.w[i], w[i], 1e-6);
    }
  }
  assert_int_equal(o.t, 5);
  for (int64_t i = n; i < a.n; i++) assert_true(a.w[i] == rest[i]);
  free(rest);
  free(w);
  free(m);
  free(v);
  clue_optim_release(&o);
  clue_arena_release(&a);
}

static void test_rmsprop_float(void **state) {
  (void)state;
  run(CLUE_OPT_RMSPROP, true);
  run(CLUE_OPT_RMSPROP, false);
}

static void test_adam_float(void **state) {
  (void)state;
  run(CLUE_OPT_ADAM, true);
  run(CLUE_OPT_ADAM, false);
}

/* The same (w, g, state) at every position gives the same bits everywhere. */
static void test_position_independent(void **state) {
  (void)state;
  for (int kind = CLUE_OPT_RMSPROP; kind <= CLUE_OPT_ADAM; kind++) {
    clue_err err;
    clue_arena a;
    make_arena(&a);
    clue_optim o;
    TU_OK(clue_optim_init(&o, (clue_optimizer)kind, 2e-3, NV, &err), &err);
    for (int t = 0; t < 3; t++) {
      for (int64_t i = 0; i < a.n; i++) {
        if (t == 0) a.w[i] = 0.75f;
        a.g[i] = t == 1 ? -0.3f : 0.125f;
      }
      clue_optim_step(&o, &a);
      for (int64_t i = 1; i < NV; i++) {
        assert_true(a.w[i] == a.w[0]);
        assert_true(o.v[i] == o.v[0]);
        if (o.m) assert_true(o.m[i] == o.m[0]);
      }
    }
    clue_optim_release(&o);
    clue_arena_release(&a);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rmsprop_float),
      cmocka_unit_test(test_adam_float),
      cmocka_unit_test(test_position_independent),
  };
  return TU_RUN(tests);
}
