/* test_knn.c — the exact all-pairs scan: hand-computed neighbours (ties, groups,
 * self-exclusion, short lists), and random, near-tie and far-from-origin sets
 * against a brute-force float64 computation, on every rank count.
 * CLUE_TEST_NP: 1 2 3 4 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/knn.h"
#include "clue/rng.h"
#include "testutil.h"

/* A whole point set, known to every rank; blocks are taken with knn_block. */
typedef struct set {
  int64_t n, dim;
  float *x;      /* (n × dim) */
  int32_t *group; /* (n) or NULL */
} set;

static knn_points block_of(const set *s, const clue_comm *c) {
  knn_points p = {.n_total = s->n, .dim = s->dim};
  knn_block(s->n, c->size, c->rank, &p.begin, &p.n);
  p.x = s->x + p.begin * s->dim;
  p.group = s->group ? s->group + p.begin : NULL;
  return p;
}

/* The reference: float64 differences, squared and summed in order. */
static double ref_d2(const float *a, const float *b, int64_t dim) {
  double s = 0;
  for (int64_t k = 0; k < dim; k++) s += ((double)a[k] - (double)b[k]) * ((double)a[k] - (double)b[k]);
  return s;
}

typedef struct cand {
  double d;
  int64_t i;
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->d != y->d) return x->d < y->d ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

/* Brute-force top-k of row `qi` of q among the rows of r (optionally skipping
 * qi itself and other groups): fills idx/d2 with k entries, −1/inf padded. */
static void brute_topk(const set *q, int64_t qi, const set *r, int k, bool skip_self,
                       int64_t *idx, double *d2) {
  cand *c = malloc(sizeof *c * (size_t)(r->n + 1));
  int64_t n = 0;
  for (int64_t j = 0; j < r->n; j++) {
    if (skip_self && j == qi) continue;
    if (q->group && q->group[qi] != r->group[j]) continue;
    c[n++] = (cand){ref_d2(q->x + qi * q->dim, r->x + j * r->dim, q->dim), j};
  }
  qsort(c, (size_t)n, sizeof *c, cand_cmp);
  for (int a = 0; a < k; a++) {
    idx[a] = a < n ? c[a].i : -1;
    d2[a] = a < n ? c[a].d : INFINITY;
  }
  free(c);
}

/* Runs a scan of q against r and checks every output against brute force. */
static void check_scan(const set *q, const set *r, const knn_opts *o, int64_t *rechecks) {
  clue_comm c = tu_world();
  clue_err err;
  knn_points qp = block_of(q, &c), rp = block_of(r, &c);
  knn_result *res = NULL;
  TU_OK(knn_scan(&qp, &rp, o, &c, &res, &err), &err);
  int kmax = o->k_row > o->k_col ? o->k_row : o->k_col;
  int64_t idx[64];
  double d2[64];
  assert_true(kmax <= 64);
  for (int64_t i = 0; i < qp.n && o->k_row > 0; i++) {
    brute_topk(q, qp.begin + i, r, o->k_row, o->exclude_self, idx, d2);
    for (int a = 0; a < o->k_row; a++) {
      assert_int_equal(res->row_idx[i * o->k_row + a], idx[a]);
      assert_true(res->row_d2[i * o->k_row + a] == d2[a]);
    }
  }
  for (int64_t j = 0; j < rp.n && o->k_col > 0; j++) {
    brute_topk(r, rp.begin + j, q, o->k_col, o->exclude_self, idx, d2);
    for (int a = 0; a < o->k_col; a++) {
      assert_int_equal(res->col_idx[j * o->k_col + a], idx[a]);
      assert_true(res->col_d2[j * o->k_col + a] == d2[a]);
    }
  }
  for (int64_t i = 0; i < qp.n && o->pair_counts; i++) {
    int64_t gi = qp.begin + i, row = 0, col = 0;
    double t = ref_d2(q->x + gi * q->dim, r->x + gi * r->dim, q->dim);
    for (int64_t j = 0; j < r->n; j++) {
      row += ref_d2(q->x + gi * q->dim, r->x + j * r->dim, q->dim) < t;
      col += ref_d2(q->x + j * q->dim, r->x + gi * r->dim, q->dim) < t;
    }
    assert_int_equal(res->row_closer[i], row);
    assert_int_equal(res->col_closer[i], col);
  }
  int64_t rc = res->stats.rechecks;
  clue_comm_sum_int64(&c, &rc, 1);
  if (rechecks) *rechecks = rc;
  knn_result_free(res);
}

static set set_new(int64_t n, int64_t dim) {
  set s = {.n = n, .dim = dim};
  s.x = calloc((size_t)(n * dim + 1), sizeof(float));
  return s;
}

static void set_free(set *s) {
  free(s->x);
  free(s->group);
}

static set set_from(const float *v, int64_t n, int64_t dim) {
  set s = set_new(n, dim);
  memcpy(s.x, v, sizeof(float) * (size_t)(n * dim));
  return s;
}

/* ---- hand-computed cases ---------------------------------------------------- */

static const float HQ[] = {0, 0, 2, 0, 5, 1};
static const float HR[] = {1, 0, 3, 0, 2, 1, 5, 0};

static void test_hand_topk(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  set q = set_from(HQ, 3, 2), r = set_from(HR, 4, 2);
  knn_points qp = block_of(&q, &c), rp = block_of(&r, &c);
  knn_opts o = {.k_row = 2, .k_col = 2};
  knn_result *res = NULL;
  TU_OK(knn_scan(&qp, &rp, &o, &c, &res, &err), &err);
  /* d²(q, r): q0: 1 9 5 25 | q1: 1 1 1 9 (a three-way tie) | q2: 17 5 9 1 */
  const int64_t want_row[3][2] = {{0, 2}, {0, 1}, {3, 1}};
  const double want_rd[3][2] = {{1, 5}, {1, 1}, {1, 5}};
  for (int64_t i = 0; i < qp.n; i++)
    for (int a = 0; a < 2; a++) {
      assert_int_equal(res->row_idx[i * 2 + a], want_row[qp.begin + i][a]);
      assert_true(res->row_d2[i * 2 + a] == want_rd[qp.begin + i][a]);
    }
  /* nearest queries of r0: q0, q1 (tie at 1); r1: q1, q2; r2: q1, q0; r3: q2, q1 */
  const int64_t want_col[4][2] = {{0, 1}, {1, 2}, {1, 0}, {2, 1}};
  for (int64_t j = 0; j < rp.n; j++)
    for (int a = 0; a < 2; a++)
      assert_int_equal(res->col_idx[j * 2 + a], want_col[rp.begin + j][a]);
  knn_result_free(res);
  set_free(&q);
  set_free(&r);
}

static void test_hand_groups_self_short(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  set q = set_from(HQ, 3, 2), r = set_from(HR, 4, 2);
  q.group = malloc(3 * sizeof(int32_t));
  r.group = malloc(4 * sizeof(int32_t));
  memcpy(q.group, (int32_t[]){0, 1, 0}, 3 * sizeof(int32_t));
  memcpy(r.group, (int32_t[]){1, 0, 0, 1}, 4 * sizeof(int32_t));
  knn_points qp = block_of(&q, &c), rp = block_of(&r, &c);
  /* within groups: q0 → r2 (5), r1 (9); q1 → r0 (1), r3 (9); q2 → r1 (5), r2 (9);
   * k = 3 leaves the third place empty. */
  knn_opts o = {.k_row = 3};
  knn_result *res = NULL;
  TU_OK(knn_scan(&qp, &rp, &o, &c, &res, &err), &err);
  const int64_t want[3][3] = {{2, 1, -1}, {0, 3, -1}, {1, 2, -1}};
  for (int64_t i = 0; i < qp.n; i++)
    for (int a = 0; a < 3; a++)
      assert_int_equal(res->row_idx[i * 3 + a], want[qp.begin + i][a]);
  for (int64_t i = 0; i < qp.n; i++) assert_true(isinf(res->row_d2[i * 3 + 2]));
  knn_result_free(res);
  /* q against itself without self: q0 → q1 (4); q1 → q0 (4); q2 → q1 (10) */
  free(q.group);
  q.group = NULL;
  qp = block_of(&q, &c);
  knn_opts o2 = {.k_row = 1, .exclude_self = true};
  TU_OK(knn_scan(&qp, &qp, &o2, &c, &res, &err), &err);
  const int64_t want2[3] = {1, 0, 1};
  const double wd2[3] = {4, 4, 10};
  for (int64_t i = 0; i < qp.n; i++) {
    assert_int_equal(res->row_idx[i], want2[qp.begin + i]);
    assert_true(res->row_d2[i] == wd2[qp.begin + i]);
  }
  knn_result_free(res);
  set_free(&q);
  set_free(&r);
}

static void test_hand_pair_counts(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  /* 1-D, pairs a_i ↔ b_i: a = 0 1 4, b = 0.5 3 3.9.
   * d(a_i, b_j): a0: .5 3 3.9 | a1: .5 2 2.9 | a2: 3.5 1 .1
   * rows (closer than partner): a0: 0, a1: 1 (b0 at .5 < 2), a2: 0
   * cols: b0 (partner a0, .5): a1 ties at .5 → 0; b1 (a1, 2): a2 at 1 → 1;
   *       b2 (a2, .1): 0. */
  float a[] = {0, 1, 4}, b[] = {0.5f, 3, 3.9f};
  set sa = set_from(a, 3, 1), sb = set_from(b, 3, 1);
  knn_points ap = block_of(&sa, &c), bp = block_of(&sb, &c);
  knn_opts o = {.pair_counts = true};
  knn_result *res = NULL;
  TU_OK(knn_scan(&ap, &bp, &o, &c, &res, &err), &err);
  const int64_t rows[3] = {0, 1, 0}, cols[3] = {0, 1, 0};
  for (int64_t i = 0; i < ap.n; i++) {
    assert_int_equal(res->row_closer[i], rows[ap.begin + i]);
    assert_int_equal(res->col_closer[i], cols[ap.begin + i]);
  }
  knn_result_free(res);
  set_free(&sa);
  set_free(&sb);
}

static void test_bad_inputs(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  set q = set_from(HQ, 3, 2), r = set_from(HR, 4, 2);
  knn_points qp = block_of(&q, &c), rp = block_of(&r, &c);
  knn_result *res = NULL;
  knn_opts o = {.pair_counts = true};
  assert_int_equal(knn_scan(&qp, &rp, &o, &c, &res, &err), CLUE_EINVAL);
  assert_null(res);
  assert_non_null(strstr(err.msg, "paired"));
  knn_points bad = rp;
  bad.dim = 3;
  knn_opts o2 = {.k_row = 1};
  assert_int_equal(knn_scan(&qp, &bad, &o2, &c, &res, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "dimension"));
  float nan_row[] = {1, NAN};
  assert_int_equal(knn_check_finite(nan_row, 1, 2, 7, "a.h5ad obsm/X", &err), CLUE_ENUMERIC);
  assert_non_null(strstr(err.msg, "row 7"));
  assert_int_equal(knn_check_finite(HQ, 3, 2, 0, "q", &err), CLUE_OK);
  set_free(&q);
  set_free(&r);
}

/* ---- random and adversarial sets against brute force ------------------------ */

static set random_set(int64_t n, int64_t dim, uint64_t seed, double offset, double scale) {
  set s = set_new(n, dim);
  for (int64_t i = 0; i < n; i++) {
    clue_rng g = clue_rng_stream(seed, CLUE_RNG_TEST, 0, (uint64_t)i);
    for (int64_t k = 0; k < dim; k++)
      s.x[i * dim + k] = (float)(offset + scale * clue_rng_normal(&g));
  }
  return s;
}

/* b_i = a_i + noise: paired sets. */
static set noisy_copy(const set *a, uint64_t seed, double noise) {
  set b = random_set(a->n, a->dim, seed, 0, noise);
  for (int64_t v = 0; v < a->n * a->dim; v++) b.x[v] += a->x[v];
  return b;
}

static void test_random_vs_brute(void **state) {
  (void)state;
  set q = random_set(300, 17, 11, 0, 1), r = random_set(257, 17, 12, 0, 1);
  knn_opts o = {.k_row = 5, .k_col = 3, .tile_rows = 37, .tile_cols = 50};
  check_scan(&q, &r, &o, NULL);
  knn_opts o2 = {.k_row = 2, .k_col = 4};
  check_scan(&q, &r, &o2, NULL);
  knn_opts o3 = {.k_row = 4, .exclude_self = true, .tile_rows = 64, .tile_cols = 33};
  check_scan(&q, &q, &o3, NULL);
  set b = noisy_copy(&q, 13, 0.7);
  knn_opts o4 = {.pair_counts = true, .k_row = 1, .k_col = 1, .tile_rows = 41, .tile_cols = 77};
  check_scan(&q, &b, &o4, NULL);
  set_free(&q);
  set_free(&r);
  set_free(&b);
}

static void test_groups_vs_brute(void **state) {
  (void)state;
  set q = random_set(211, 9, 21, 0, 1), r = random_set(190, 9, 22, 0, 1);
  q.group = malloc(sizeof(int32_t) * 211);
  r.group = malloc(sizeof(int32_t) * 190);
  for (int i = 0; i < 211; i++) q.group[i] = (i * 7) % 3;
  for (int i = 0; i < 190; i++) r.group[i] = (i * 5) % 4; /* group 3 has no queries */
  knn_opts o = {.k_row = 3, .k_col = 2, .tile_rows = 20, .tile_cols = 31};
  check_scan(&q, &r, &o, NULL);
  set_free(&q);
  set_free(&r);
}

/* Exact ties on a coarse grid far from the origin: float32 sgemm distances there
 * carry errors far larger than the gaps between distinct distances. */
static void test_grid_ties_far(void **state) {
  (void)state;
  int64_t n = 160, dim = 6;
  set a = set_new(n, dim), b = set_new(n, dim);
  for (int64_t i = 0; i < n; i++) {
    clue_rng g = clue_rng_stream(31, CLUE_RNG_TEST, 0, (uint64_t)i);
    for (int64_t k = 0; k < dim; k++) {
      a.x[i * dim + k] = (float)(1000.0 + (double)clue_rng_below(&g, 9) / 8.0);
      b.x[i * dim + k] = (float)(1000.0 + (double)clue_rng_below(&g, 9) / 8.0);
    }
  }
  knn_opts o = {.pair_counts = true, .k_row = 7, .k_col = 7, .tile_rows = 50, .tile_cols = 64};
  int64_t rechecks = 0;
  check_scan(&a, &b, &o, &rechecks);
  assert_true(rechecks > 0);
  set_free(&a);
  set_free(&b);
}

/* Near ties: y_{i+1} is the mirror image of y_i through x_i, rounded to float32,
 * so d(x_i, y_{i+1}) equals d(x_i, y_i) up to rounding. */
static void test_mirror_near_ties(void **state) {
  (void)state;
  int64_t n = 400, dim = 24;
  set x = random_set(n, dim, 41, 0.5, 1), y = noisy_copy(&x, 42, 0.05);
  for (int64_t i = 0; i + 1 < n; i += 2)
    for (int64_t k = 0; k < dim; k++)
      y.x[(i + 1) * dim + k] = (float)(2.0 * x.x[i * dim + k] - (double)y.x[i * dim + k]);
  knn_opts o = {.pair_counts = true, .k_row = 3, .k_col = 3};
  int64_t rechecks = 0;
  check_scan(&x, &y, &o, &rechecks);
  assert_true(rechecks >= n / 2);
  set_free(&x);
  set_free(&y);
}

static void test_more_ranks_than_rows(void **state) {
  (void)state;
  set q = random_set(2, 3, 51, 0, 1), r = random_set(1, 3, 52, 0, 1);
  knn_opts o = {.k_row = 2, .k_col = 2};
  check_scan(&q, &r, &o, NULL);
  set b = noisy_copy(&q, 53, 0.1);
  knn_opts o2 = {.pair_counts = true};
  check_scan(&q, &b, &o2, NULL);
  set_free(&q);
  set_free(&r);
  set_free(&b);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hand_topk),
      cmocka_unit_test(test_hand_groups_self_short),
      cmocka_unit_test(test_hand_pair_counts),
      cmocka_unit_test(test_bad_inputs),
      cmocka_unit_test(test_random_vs_brute),
      cmocka_unit_test(test_groups_vs_brute),
      cmocka_unit_test(test_grid_ties_far),
      cmocka_unit_test(test_mirror_near_ties),
      cmocka_unit_test(test_more_ranks_than_rows),
  };
  return TU_RUN(tests);
}
