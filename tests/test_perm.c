/* test_perm.c — computed permutations: bijective, invertible, keyed, well mixed. */
#include "testutil.h"

#include <stdlib.h>
#include <string.h>

#include "clue/perm.h"
#include "clue/rng.h"

/* Every size: forward is a bijection of [0, n) and inverse undoes it. */
static void test_bijection(void **state) {
  (void)state;
  const uint64_t sizes[] = {0, 1, 2, 3, 4, 5, 7, 16, 17, 100, 1000, 4097, 65537};
  for (size_t s = 0; s < sizeof sizes / sizeof *sizes; s++) {
    uint64_t n = sizes[s];
    clue_perm p = clue_perm_make(n, 42, CLUE_RNG_TEST, s);
    unsigned char *seen = calloc(n + 1, 1);
    assert_non_null(seen);
    for (uint64_t x = 0; x < n; x++) {
      uint64_t y = clue_perm_forward(&p, x);
      assert_true(y < n);
      assert_int_equal(seen[y], 0);
      seen[y] = 1;
      assert_int_equal(clue_perm_inverse(&p, y), x);
    }
    free(seen);
  }
}

/* Different keys give different permutations; the same key the same one. */
static void test_keys(void **state) {
  (void)state;
  uint64_t n = 1000;
  clue_perm a = clue_perm_make(n, 1, CLUE_RNG_PERMUTE, 0);
  clue_perm a2 = clue_perm_make(n, 1, CLUE_RNG_PERMUTE, 0);
  clue_perm b = clue_perm_make(n, 1, CLUE_RNG_PERMUTE, 1);
  clue_perm c = clue_perm_make(n, 2, CLUE_RNG_PERMUTE, 0);
  int same_b = 0, same_c = 0, fixed = 0;
  for (uint64_t x = 0; x < n; x++) {
    uint64_t y = clue_perm_forward(&a, x);
    assert_int_equal(y, clue_perm_forward(&a2, x));
    same_b += y == clue_perm_forward(&b, x);
    same_c += y == clue_perm_forward(&c, x);
    fixed += y == x;
  }
  /* a random permutation agrees with another in ~1 place and fixes ~1 point */
  assert_true(same_b < 10);
  assert_true(same_c < 10);
  assert_true(fixed < 10);
}

/* Mixing: over many keys, where element 0 lands is close to uniform over [0, n)
 * (chi-square over 10 bins), and consecutive positions are not consecutive
 * elements (the order is not a rotation or a stride). */
static void test_uniform(void **state) {
  (void)state;
  const uint64_t n = 1000;
  const int keys = 20000, bins = 10;
  int count[10] = {0};
  for (int k = 0; k < keys; k++) {
    clue_perm p = clue_perm_make(n, 7, CLUE_RNG_TEST, (uint64_t)k);
    count[clue_perm_forward(&p, 0) * bins / n]++;
  }
  double expect = (double)keys / bins, chi2 = 0;
  for (int b = 0; b < bins; b++) chi2 += (count[b] - expect) * (count[b] - expect) / expect;
  assert_true(chi2 < 30.0); /* 9 degrees of freedom: p ≈ 4e-4 */
  clue_perm p = clue_perm_make(n, 3, CLUE_RNG_TEST, 0);
  int adjacent = 0;
  for (uint64_t x = 0; x + 1 < n; x++) {
    int64_t d = (int64_t)clue_perm_forward(&p, x + 1) - (int64_t)clue_perm_forward(&p, x);
    adjacent += d == 1 || d == -1;
  }
  assert_true(adjacent < 15); /* ~2 expected */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_bijection),
      cmocka_unit_test(test_keys),
      cmocka_unit_test(test_uniform),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
