/* test_metrics.c — FOSCTTM, partner recall and the matching score on
 * hand-computed cases and against float64 brute force, on every rank count.
 * CLUE_TEST_NP: 1 2 3 4 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/metrics.h"
#include "clue/rng.h"
#include "testutil.h"

static knn_points block_of(const float *x, int64_t n, int64_t dim, const clue_comm *c) {
  knn_points p = {.n_total = n, .dim = dim};
  knn_block(n, c->size, c->rank, &p.begin, &p.n);
  p.x = x + p.begin * dim;
  return p;
}

static metrics_paired paired(const float *a, const float *b, int64_t n, int64_t dim) {
  clue_comm c = tu_world();
  clue_err err;
  knn_points ap = block_of(a, n, dim, &c), bp = block_of(b, n, dim, &c);
  metrics_paired m;
  memset(&m, 0, sizeof m);
  TU_OK(metrics_paired_compute(&ap, &bp, &c, &m, &err), &err);
  return m;
}

/* 1-D, a = 0 1 4 6, b = 0.5 3 3.9 10 (partners on the diagonal).
 *        b0   b1   b2   b3
 *   a0  0.5   3   3.9   10     row closer: a0 0, a1 1 (b0), a2 0, a3 2 (b1, b2)
 *   a1  0.5   2   2.9    9     column closer: b0 0 (a1 ties), b1 1 (a2), b2 0, b3 0
 *   a2  3.5   1   0.1    6
 *   a3  5.5   3   2.1    4
 * FOSCTTM a→b = 3/16, b→a = 1/16, mean 1/8; top-1 a→b = 2/4, b→a = 3/4. */
static void test_foscttm_hand(void **state) {
  (void)state;
  const float a[] = {0, 1, 4, 6}, b[] = {0.5f, 3, 3.9f, 10};
  metrics_paired m = paired(a, b, 4, 1);
  assert_int_equal(m.n, 4);
  assert_true(m.foscttm_ab == 3.0 / 16);
  assert_true(m.foscttm_ba == 1.0 / 16);
  assert_true(m.foscttm == 1.0 / 8);
  assert_true(m.top1_ab == 0.5);
  assert_true(m.top1_ba == 0.75);
  assert_true(m.top5_ab == 1.0);
  assert_true(m.top5_ba == 1.0);
}

/* a_i = i, b_i = 6 − i (i < 7): row i counts m in 0..6 with |i − m| < |2i − 6|:
 * 6 5 3 0 3 5 6 (sum 28), the same for columns by symmetry.
 * FOSCTTM = 28/49 both ways; top-1 = 1/7 (i = 3); top-5 = 3/7 (i = 2, 3, 4). */
static void test_recall_hand(void **state) {
  (void)state;
  float a[7], b[7];
  for (int i = 0; i < 7; i++) {
    a[i] = (float)i;
    b[i] = (float)(6 - i);
  }
  metrics_paired m = paired(a, b, 7, 1);
  assert_true(m.foscttm_ab == 28.0 / 49);
  assert_true(m.foscttm_ba == 28.0 / 49);
  assert_true(m.top1_ab == 1.0 / 7);
  assert_true(m.top1_ba == 1.0 / 7);
  assert_true(m.top5_ab == 3.0 / 7);
  assert_true(m.top5_ba == 3.0 / 7);
}

static void test_foscttm_vs_brute(void **state) {
  (void)state;
  int64_t n = 150, dim = 12;
  float *a = malloc(sizeof(float) * (size_t)(n * dim));
  float *b = malloc(sizeof(float) * (size_t)(n * dim));
  for (int64_t i = 0; i < n; i++) {
    clue_rng g = clue_rng_stream(5, CLUE_RNG_TEST, 0, (uint64_t)i);
    for (int64_t k = 0; k < dim; k++) {
      a[i * dim + k] = (float)clue_rng_normal(&g);
      b[i * dim + k] = a[i * dim + k] + (float)(1.5 * clue_rng_normal(&g));
    }
  }
  int64_t ab = 0, ba = 0, t1ab = 0, t5ba = 0;
  for (int64_t i = 0; i < n; i++) {
    double d[2][150];
    for (int64_t j = 0; j < n; j++) {
      double s = 0, s2 = 0;
      for (int64_t k = 0; k < dim; k++) {
        double u = (double)a[i * dim + k] - (double)b[j * dim + k];
        double v = (double)a[j * dim + k] - (double)b[i * dim + k];
        s += u * u;
        s2 += v * v;
      }
      d[0][j] = s;  /* d(a_i, b_j) */
      d[1][j] = s2; /* d(a_j, b_i) */
    }
    int64_t r = 0, c = 0;
    for (int64_t j = 0; j < n; j++) {
      r += d[0][j] < d[0][i];
      c += d[1][j] < d[1][i];
    }
    ab += r;
    ba += c;
    t1ab += r < 1;
    t5ba += c < 5;
  }
  metrics_paired m = paired(a, b, n, dim);
  assert_true(m.foscttm_ab == (double)ab / (double)(n * n));
  assert_true(m.foscttm_ba == (double)ba / (double)(n * n));
  assert_true(m.top1_ab == (double)t1ab / (double)n);
  assert_true(m.top5_ba == (double)t5ba / (double)n);
  assert_true(m.foscttm > 0.02 && m.foscttm < 0.5);
  free(a);
  free(b);
}

/* 4 × 4 prediction, partners on the diagonal:
 *   row 0: 0.5 @0, 0.5 @2               → 0.5
 *   row 1: −1 @0, 2 @1, 2 @2            → clipped 0, 2, 2 → 0.5
 *   row 2: −3 @2                        → nothing positive → 0
 *   row 3: 1 @1, 3 @3                   → 3 / 4 = 0.75
 * score = (0.5 + 0.5 + 0 + 0.75) / 4 = 0.4375 */
static void test_match_score_hand(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  const int64_t ptr[5] = {0, 2, 5, 6, 8};
  const int32_t idx[8] = {0, 2, 0, 1, 2, 2, 1, 3};
  const float val[8] = {0.5f, 0.5f, -1, 2, 2, -3, 1, 3};
  int64_t b, n;
  knn_block(4, c.size, c.rank, &b, &n);
  clue_csr *m = clue_csr_new(n, 4, ptr[b + n] - ptr[b], &err);
  assert_non_null(m);
  int64_t partner[4];
  for (int64_t i = 0; i < n; i++) {
    m->indptr[i + 1] = ptr[b + i + 1] - ptr[b];
    partner[i] = b + i;
  }
  memcpy(m->indices, idx + ptr[b], sizeof(int32_t) * (size_t)(ptr[b + n] - ptr[b]));
  memcpy(m->data, val + ptr[b], sizeof(float) * (size_t)(ptr[b + n] - ptr[b]));
  double s = -1;
  TU_OK(metrics_match_score(m, partner, &c, &s, &err), &err);
  assert_true(s == 0.4375);
  for (int64_t i = 0; i < n; i++) {
    const double want[4] = {0.5, 0.5, 0, 0.75};
    assert_true(metrics_match_row(m, i, b + i) == want[b + i]);
  }
  /* a partner outside the columns is an error on every rank */
  if (n > 0) partner[0] = 9;
  assert_int_equal(metrics_match_score(m, partner, &c, &s, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "outside"));
  clue_csr_free(m);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_foscttm_hand),
      cmocka_unit_test(test_recall_hand),
      cmocka_unit_test(test_foscttm_vs_brute),
      cmocka_unit_test(test_match_score_hand),
  };
  return TU_RUN(tests);
}
