/* test_blend_solve.c — the weights of clue predict's blend (clue_blend_solve of
 * refcells.h) on cases worked out by hand (inside the triangle, on each edge, a
 * direction that is zero, two equal directions) and, on random problems, never
 * worse than the best point of a fine grid over the triangle. */
#include <math.h>
#include <stdlib.h>

#include "clue/refcells.h"
#include "testutil.h"

static double loss(const double g[3], const double b[2], double w1, double w2) {
  return w1 * w1 * g[0] + 2 * w1 * w2 * g[1] + w2 * w2 * g[2] - 2 * (w1 * b[0] + w2 * b[1]);
}

static void expect(const double g[3], const double b[2], double w1, double w2) {
  double x, y;
  clue_blend_solve(g, b, &x, &y);
  assert_true(fabs(x - w1) < 1e-12 && fabs(y - w2) < 1e-12);
}

static void test_by_hand(void **state) {
  (void)state;
  double eye[3] = {1, 0, 1};
  expect(eye, (double[2]){0.3, 0.2}, 0.3, 0.2);   /* inside */
  expect(eye, (double[2]){0.8, 0.6}, 0.6, 0.4);   /* beyond w1 + w2 = 1: its nearest point */
  expect(eye, (double[2]){-0.5, 0.2}, 0, 0.2);    /* a direction that hurts gets 0 */
  expect(eye, (double[2]){0.4, -0.1}, 0.4, 0);
  expect(eye, (double[2]){-1, -1}, 0, 0);         /* the model alone */
  expect(eye, (double[2]){3, 0.1}, 1, 0);         /* the first neighbour mean alone */
  expect((double[3]){2, 0, 0}, (double[2]){1, 0}, 0.5, 0); /* no second direction */
  expect((double[3]){0, 0, 0}, (double[2]){0, 0}, 0, 0);   /* nothing to fit */
  double same[3] = {1, 1, 1}, x, y; /* equal directions: only the sum matters */
  clue_blend_solve(same, (double[2]){0.4, 0.4}, &x, &y);
  assert_true(fabs(x + y - 0.4) < 1e-12 && x >= 0 && y >= 0);
}

static void test_against_grid(void **state) {
  (void)state;
  srand(7);
  for (int t = 0; t < 200; t++) {
    double d1[6], d2[6], r[6], g[3] = {0}, b[2] = {0};
    for (int i = 0; i < 6; i++) {
      d1[i] = rand() / (double)RAND_MAX - 0.5;
      d2[i] = 0.7 * d1[i] * (t % 3) + rand() / (double)RAND_MAX - 0.5;
      r[i] = 0.6 * d1[i] + 0.3 * d2[i] * (t % 2) + (rand() / (double)RAND_MAX - 0.5) * (t % 5);
      g[0] += d1[i] * d1[i], g[1] += d1[i] * d2[i], g[2] += d2[i] * d2[i];
      b[0] += d1[i] * r[i], b[1] += d2[i] * r[i];
    }
    double x, y, best = INFINITY;
    clue_blend_solve(g, b, &x, &y);
    assert_true(x >= 0 && y >= 0 && x + y <= 1 + 1e-12);
    for (int i = 0; i <= 400; i++)
      for (int j = 0; i + j <= 400; j++) best = fmin(best, loss(g, b, i / 400.0, j / 400.0));
    assert_true(loss(g, b, x, y) <= best + 1e-12 * (1 + fabs(best)));
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_by_hand),
      cmocka_unit_test(test_against_grid),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
