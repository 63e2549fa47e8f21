/* test_loess.c — the loess trend of the seurat_v3 recipe: exact reproduction of
 * a parabola, agreement with a plain per-point weighted least squares written
 * here (sorting all distances, solving the 3 × 3 normal equations by Gaussian
 * elimination), tied x values, tiny inputs, and bad arguments. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/prep.h"
#include "clue/rng.h"
#include "testutil.h"
#include "tu_loess.h"

static void test_parabola(void **state) {
  (void)state;
  enum { N = 200 };
  double x[N], y[N], fit[N];
  clue_rng r = clue_rng_stream(1, CLUE_RNG_TEST, 0, 0);
  for (int i = 0; i < N; i++) {
    x[i] = -2 + 5 * clue_rng_uniform(&r);
    y[i] = 0.7 - 1.3 * x[i] + 0.45 * x[i] * x[i];
  }
  clue_err err;
  TU_OK(clue_loess_fit(x, y, N, 0.3, fit, &err), &err);
  for (int i = 0; i < N; i++) TU_CLOSE(fit[i], y[i], 1e-9);
}

static void test_against_reference(void **state) {
  (void)state;
  enum { N = 400 };
  double x[N], y[N], fit[N], ref[N];
  clue_rng r = clue_rng_stream(2, CLUE_RNG_TEST, 0, 0);
  for (int i = 0; i < N; i++) {
    /* log-mean / log-variance-like cloud with curvature and noise */
    x[i] = -3 + 4 * clue_rng_uniform(&r);
    y[i] = x[i] + 0.3 * x[i] * x[i] * (x[i] > 0) + 0.4 * clue_rng_normal(&r);
  }
  clue_err err;
  double spans[] = {0.3, 0.1, 0.75};
  for (int s = 0; s < 3; s++) {
    TU_OK(clue_loess_fit(x, y, N, spans[s], fit, &err), &err);
    tu_ref_loess(x, y, N, spans[s], ref);
    for (int i = 0; i < N; i++) TU_CLOSE(fit[i], ref[i], 1e-9);
  }
}

/* Many tied x (as for genes with one count in a batch): ties share a fit, and
 * the fit still matches the reference where the bandwidth is positive. */
static void test_ties(void **state) {
  (void)state;
  enum { N = 300 };
  double x[N], y[N], fit[N], ref[N];
  clue_rng r = clue_rng_stream(3, CLUE_RNG_TEST, 0, 0);
  for (int i = 0; i < N; i++) {
    x[i] = (double)(clue_rng_below(&r, 40)) / 10.0; /* 40 distinct values */
    y[i] = sin(x[i]) + 0.1 * clue_rng_normal(&r);
  }
  clue_err err;
  TU_OK(clue_loess_fit(x, y, N, 0.3, fit, &err), &err);
  tu_ref_loess(x, y, N, 0.3, ref);
  for (int i = 0; i < N; i++) {
    TU_CLOSE(fit[i], ref[i], 1e-9);
    for (int j = 0; j < i; j++)
      if (x[j] == x[i]) assert_true(fit[j] == fit[i]);
  }
}

/* A bandwidth of 0 (more tied points than the span holds): the fit at a tied
 * value is the mean of its y. Tiny inputs are still finite. */
static void test_degenerate(void **state) {
  (void)state;
  double x[10] = {1, 1, 1, 1, 1, 1, 1, 2, 3, 4};
  double y[10] = {1, 2, 3, 4, 5, 6, 7, 0, 0, 0};
  double fit[10];
  clue_err err;
  TU_OK(clue_loess_fit(x, y, 10, 0.3, fit, &err), &err);
  for (int i = 0; i < 7; i++) TU_CLOSE(fit[i], 4.0, 1e-12);
  for (int i = 7; i < 10; i++) assert_true(isfinite(fit[i]));
  double x2[2] = {0, 1}, y2[2] = {3, 5}, f2[2];
  TU_OK(clue_loess_fit(x2, y2, 2, 0.3, f2, &err), &err);
  assert_true(isfinite(f2[0]) && isfinite(f2[1]));
  TU_OK(clue_loess_fit(x2, y2, 0, 0.3, f2, &err), &err);
}

static void test_bad_input(void **state) {
  (void)state;
  double x[3] = {0, 1, NAN}, y[3] = {0, 1, 2}, f[3];
  clue_err err;
  assert_int_equal(clue_loess_fit(x, y, 3, 0.3, f, &err), CLUE_ENUMERIC);
  assert_non_null(strstr(err.msg, "not finite"));
  assert_int_equal(clue_loess_fit(x, y, 2, 0, f, &err), CLUE_EINVAL);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_parabola),    cmocka_unit_test(test_against_reference),
      cmocka_unit_test(test_ties),        cmocka_unit_test(test_degenerate),
      cmocka_unit_test(test_bad_input),
  };
  return TU_RUN(tests);
}
