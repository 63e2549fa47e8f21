/* test_gradsum.c — sums of gradient buffers over the ranks (gradsum.h), through
 * the node's shared memory and through MPI_Allreduce: every rank gets the exact
 * sum (small integers, exact in float), for lengths that are not multiples of the
 * slice blocks, 1 and 0 values, and calls in a row that reuse the window while the
 * values change; and the two paths give the same bits on data with rounding.
 * CLUE_TEST_NP: 1 2 3 4 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/gradsum.h"
#include "clue/rng.h"
#include "testutil.h"

static void fill(real *b, int64_t n, int rank, int call) {
  for (int64_t i = 0; i < n; i++) b[i] = (real)((i * 7 + rank * 13 + call) % 101) - 50;
}

static void check_sums(bool shared) {
  clue_err err;
  clue_comm c = tu_world();
  clue_gradsum *g = NULL;
  const int64_t n_max = 100003;
  TU_OK(clue_gradsum_new(&c, n_max, shared, &g, &err), &err);
  /* on this one machine the shared path is taken whenever asked (size > 1) */
  assert_true(clue_gradsum_shared(g) == (shared && c.size > 1));
  static const int64_t lens[] = {100003, 1, 0, 17, 4096, 33333, 100003};
  real *b = malloc(sizeof(real) * (size_t)n_max);
  for (size_t q = 0; q < sizeof lens / sizeof lens[0]; q++) {
    int64_t n = lens[q];
    int call = (int)q;
    fill(b, n, c.rank, call);
    clue_gradsum_sum(g, b, n);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
      double want = 0;
      for (int r = 0; r < c.size; r++) want += ((i * 7 + r * 13 + call) % 101) - 50;
      bad += b[i] != (real)want;
    }
    assert_int_equal(bad, 0);
  }
  free(b);
  clue_gradsum_free(g);
}

static void test_shared(void **state) {
  (void)state;
  check_sums(true);
}

static void test_mpi(void **state) {
  (void)state;
  check_sums(false);
}

/* Random values (sums round): both paths give the same bits on every rank. */
static void test_paths_agree(void **state) {
  (void)state;
  clue_err err;
  clue_comm c = tu_world();
  int64_t n = 54321;
  clue_gradsum *gs = NULL, *gm = NULL;
  TU_OK(clue_gradsum_new(&c, n, true, &gs, &err), &err);
  TU_OK(clue_gradsum_new(&c, n, false, &gm, &err), &err);
  real *a = malloc(sizeof(real) * (size_t)n), *b = malloc(sizeof(real) * (size_t)n);
  clue_rng r = clue_rng_stream(3, CLUE_RNG_TEST, 7, (uint64_t)c.rank);
  for (int64_t i = 0; i < n; i++) a[i] = b[i] = (real)(clue_rng_normal(&r) * 1e3);
  clue_gradsum_sum(gs, a, n);
  clue_gradsum_sum(gm, b, n);
  /* For two ranks both add rank 0 + rank 1; beyond, MPI's order may differ:
   * then within a float rounding of the sum of magnitudes. */
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++)
    bad += c.size <= 2 ? memcmp(&a[i], &b[i], sizeof(real)) != 0
                       : fabs((double)a[i] - (double)b[i]) > 1e-3 * (1 + fabs((double)b[i]));
  assert_int_equal(bad, 0);
  /* every rank holds the same bits */
  real first = a[0], last = a[n - 1];
  clue_comm_bcast(&c, &first, sizeof first, 0);
  clue_comm_bcast(&c, &last, sizeof last, 0);
  assert_true(first == a[0] && last == a[n - 1]);
  free(a);
  free(b);
  clue_gradsum_free(gs);
  clue_gradsum_free(gm);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared),
      cmocka_unit_test(test_mpi),
      cmocka_unit_test(test_paths_agree),
  };
  return TU_RUN(tests);
}
