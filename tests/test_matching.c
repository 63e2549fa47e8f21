/* test_matching.c — snn matching: hand-computed predictions (k = 1 with mutual
 * and one-way neighbours, k = 2 with a tie, batches, the empty-row fallback, the
 * nonzero cap), and random sets against a dense brute-force implementation of
 * the definition in matching.h, on every rank count.
 * CLUE_TEST_NP: 1 2 3 4 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/matching.h"
#include "clue/rng.h"
#include "testutil.h"

#define DEG (3.14159265358979323846 / 180.0)

typedef struct set {
  int64_t n, dim;
  float *x;
  int32_t *group;
} set;

/* Points on the unit circle at the given angles (degrees); 0, 45 and 90 are
 * built exactly ((1,0), (1,1), (0,1) before normalisation) so that ties are exact. */
static set circle(const double *deg, int64_t n, const int32_t *group) {
  set s = {.n = n, .dim = 2};
  s.x = malloc(sizeof(float) * (size_t)(2 * n));
  for (int64_t i = 0; i < n; i++) {
    if (deg[i] == 0 || deg[i] == 45 || deg[i] == 90) {
      s.x[2 * i] = deg[i] == 90 ? 0.0f : 1.0f;
      s.x[2 * i + 1] = deg[i] == 0 ? 0.0f : 1.0f;
    } else {
      s.x[2 * i] = (float)cos(deg[i] * DEG);
      s.x[2 * i + 1] = (float)sin(deg[i] * DEG);
    }
  }
  if (group) {
    s.group = malloc(sizeof(int32_t) * (size_t)n);
    memcpy(s.group, group, sizeof(int32_t) * (size_t)n);
  } else {
    s.group = NULL;
  }
  return s;
}

static void set_free(set *s) {
  free(s->x);
  free(s->group);
}

static knn_points block_of(const set *s, const clue_comm *c) {
  knn_points p = {.n_total = s->n, .dim = s->dim};
  knn_block(s->n, c->size, c->rank, &p.begin, &p.n);
  p.x = s->x + p.begin * s->dim;
  p.group = s->group ? s->group + p.begin : NULL;
  return p;
}

/* Builds the prediction with `side` as query and checks this rank's rows
 * against the dense expectation want (n_query × n_ref), to tol. */
static void expect_rows(const set *x, const set *y, int k, match_side side, int max_nnz,
                        const double *want, double tol, int64_t want_fallback) {
  clue_comm c = tu_world();
  clue_err err;
  knn_points xp = block_of(x, &c), yp = block_of(y, &c);
  match_graphs *g = NULL;
  TU_OK(match_graphs_build(&xp, &yp, k, &c, &g, &err), &err);
  int64_t nq = side == MATCH_X_QUERY ? x->n : y->n, nr = side == MATCH_X_QUERY ? y->n : x->n;
  int64_t b, n;
  knn_block(nq, c.size, c.rank, &b, &n);
  clue_csr *m = NULL;
  int64_t fell = -1;
  TU_OK(match_snn_rows(g, side, b, n, max_nnz, &m, &fell, &err), &err);
  assert_int_equal(m->n_rows, n);
  assert_int_equal(m->n_cols, nr);
  for (int64_t i = 0; i < n; i++) {
    const double *w = want + (b + i) * nr;
    int64_t p = m->indptr[i], e = m->indptr[i + 1];
    double sum = 0;
    for (int64_t j = 0; j < nr; j++) {
      bool here = p < e && m->indices[p] == j;
      if (w[j] != 0) {
        if (!here) print_error("row %lld: column %lld missing\n", (long long)(b + i), (long long)j);
        assert_true(here);
        TU_CLOSE(m->data[p], w[j], tol);
      } else {
        if (here) print_error("row %lld: unexpected column %lld\n", (long long)(b + i), (long long)j);
        assert_false(here);
      }
      if (here) sum += m->data[p++];
    }
    assert_int_equal(p, e);
    TU_CLOSE(sum, 1.0, 1e-6);
  }
  int64_t f = fell;
  clue_comm_sum_int64(&c, &f, 1);
  if (want_fallback >= 0) assert_int_equal(f, want_fallback);
  clue_csr_free(m);
  match_graphs_free(g);
}

/* k = 1. x at 0°, 40°, 100°; y at 5°, 50°, 60°, 170°.
 * N_y(x): x0→y0, x1→y1, x2→y2.  N_x(y): y0→x0, y1→x1, y2→x1, y3→x2.
 * S = [y_j = N_y(x_i)] + [N_x(y_j) = x_i]:
 *   x0: y0 2 (mutual)            → 1
 *   x1: y1 2 (mutual), y2 1      → J 1, 1/3 → 3/4, 1/4
 *   x2: y2 1 (one way), y3 1     → 1/2, 1/2 */
static void test_k1_mutual_and_one_way(void **state) {
  (void)state;
  set x = circle((double[]){0, 40, 100}, 3, NULL);
  set y = circle((double[]){5, 50, 60, 170}, 4, NULL);
  const double want[] = {1, 0, 0, 0, /**/ 0, .75, .25, 0, /**/ 0, 0, .5, .5};
  expect_rows(&x, &y, 1, MATCH_X_QUERY, MATCH_MAX_NNZ, want, 1e-6, 0);
  /* y as query: J transposed, normalised by rows of y */
  const double want_t[] = {1, 0, 0, /**/ 0, 1, 0, /**/ 0, .5, .5, /**/ 0, 0, 1};
  expect_rows(&x, &y, 1, MATCH_Y_QUERY, MATCH_MAX_NNZ, want_t, 1e-6, 0);
  set_free(&x);
  set_free(&y);
}

/* k = 2. x at 0°, 30°, 90°; y at 10°, 45°, 85°.
 * N_y(x0) = {y0,y1}, N_y(x1) = {y1,y0}, N_y(x2) = {y2,y1};
 * N_x(y0) = {x0,x1}, N_x(y1) = {x1, x0} (x0 and x2 tie exactly at 45°: the
 * smaller index wins), N_x(y2) = {x2,x1};
 * N_x(x0) = {x0,x1}, N_x(x1) = {x1,x0}, N_x(x2) = {x2,x1};
 * N_y(y0) = {y0,y1}, N_y(y1) = {y1,y0}, N_y(y2) = {y2,y1}.
 * S rows: x0: 4 4 2, x1: 4 4 2, x2: 2 2 4; J = S/(8 − S): 1 1 1/3 …
 * P rows: 3/7 3/7 1/7 (x0, x1: J sums to 7/3), 1/5 1/5 3/5 (x2: J sums to 5/3).
 * J is symmetric here, so y as query gives the same matrix. */
static void test_k2_with_tie(void **state) {
  (void)state;
  set x = circle((double[]){0, 30, 90}, 3, NULL);
  set y = circle((double[]){10, 45, 85}, 3, NULL);
  const double a = 3.0 / 7, b = 1.0 / 7;
  const double want[] = {a, a, b, a, a, b, .2, .2, .6};
  expect_rows(&x, &y, 2, MATCH_X_QUERY, MATCH_MAX_NNZ, want, 1e-6, 0);
  expect_rows(&x, &y, 2, MATCH_Y_QUERY, MATCH_MAX_NNZ, want, 1e-6, 0);
  set_free(&x);
  set_free(&y);
}

/* Batches, k = 1. x: 0° (b0), 40° (b1), 110° (b0), 45° (b2, no y in b2);
 * y: 5° (b1), 50° (b0), 60° (b1), 160° (b0).
 * b0: N_y(x0) = y1, N_y(x2) = y3; N_x(y1) = x0, N_x(y3) = x2.
 * b1: N_y(x1) = y2; N_x(y0) = x1, N_x(y2) = x1.
 * x0: y1 2 → 1; x1: y2 2, y0 1 → 3/4, 1/4; x2: y3 2 → 1;
 * x3: no candidate → falls back to its nearest y of any batch, y1 (5° away). */
static void test_batches_and_fallback(void **state) {
  (void)state;
  set x = circle((double[]){0, 40, 110, 45}, 4, (int32_t[]){0, 1, 0, 2});
  set y = circle((double[]){5, 50, 60, 160}, 4, (int32_t[]){1, 0, 1, 0});
  const double want[] = {0, 1, 0, 0, /**/ .25, 0, .75, 0, /**/ 0, 0, 0, 1, /**/ 0, 1, 0, 0};
  expect_rows(&x, &y, 1, MATCH_X_QUERY, MATCH_MAX_NNZ, want, 1e-6, 1);
  /* y as query: y0 → x1, y1 → x0, y2 → x1, y3 → x2, each alone in its row */
  const double want_t[] = {0, 1, 0, 0, /**/ 1, 0, 0, 0, /**/ 0, 1, 0, 0, /**/ 0, 0, 1, 0};
  expect_rows(&x, &y, 1, MATCH_Y_QUERY, MATCH_MAX_NNZ, want_t, 1e-6, 0);
  /* without batches x1 would pick y1 (10°) and x0 y0 (5°) */
  set xf = circle((double[]){0, 40, 110, 45}, 4, NULL);
  set yf = circle((double[]){5, 50, 60, 160}, 4, NULL);
  clue_comm c = tu_world();
  clue_err err;
  knn_points xp = block_of(&xf, &c), yp = block_of(&yf, &c);
  match_graphs *g = NULL;
  TU_OK(match_graphs_build(&xp, &yp, 1, &c, &g, &err), &err);
  assert_int_equal(g->x2y[0], 0);
  assert_int_equal(g->x2y[1], 1);
  assert_null(g->x_any);
  match_graphs_free(g);
  set_free(&xf);
  set_free(&yf);
  set_free(&x);
  set_free(&y);
}

/* A hub: every y (1°..4°) has x0 (0°) as nearest x; x1 sits at 180°.
 * x0: y0 S 2 (J 1), y1..y3 S 1 (J 1/3) → 1/2, 1/6, 1/6, 1/6.
 * Capped at 2 entries: y0 and y1 (smallest column among the tied) → 3/4, 1/4.
 * x1: only y3 (its nearest, one way) → 1. */
static void test_hub_and_cap(void **state) {
  (void)state;
  set x = circle((double[]){0, 180}, 2, NULL);
  set y = circle((double[]){1, 2, 3, 4}, 4, NULL);
  const double want[] = {.5, 1.0 / 6, 1.0 / 6, 1.0 / 6, /**/ 0, 0, 0, 1};
  expect_rows(&x, &y, 1, MATCH_X_QUERY, MATCH_MAX_NNZ, want, 1e-6, 0);
  const double capped[] = {.75, .25, 0, 0, /**/ 0, 0, 0, 1};
  expect_rows(&x, &y, 1, MATCH_X_QUERY, 2, capped, 1e-6, 0);
  set_free(&x);
  set_free(&y);
}

/* ---- brute force ------------------------------------------------------------ */

typedef struct cand {
  double d;
  int64_t i;
} cand;

static int cand_cmp(const void *a, const void *b) {
  const cand *x = a, *y = b;
  if (x->d != y->d) return x->d < y->d ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

/* k nearest rows of r to row qi of q (normalised arrays), −1 padded; `self`
 * puts qi first and skips it among the others. */
static void nearest(const float *q, int64_t qi, const int32_t *qg, const float *r, int64_t nr,
                    const int32_t *rg, int64_t dim, int k, bool self, int64_t *out) {
  cand *c = malloc(sizeof *c * (size_t)(nr + 1));
  int64_t n = 0;
  for (int64_t j = 0; j < nr; j++) {
    if ((self && j == qi) || (qg && qg[qi] != rg[j])) continue;
    double s = 0;
    for (int64_t t = 0; t < dim; t++) {
      double u = (double)q[qi * dim + t] - (double)r[j * dim + t];
      s += u * u;
    }
    c[n++] = (cand){s, j};
  }
  qsort(c, (size_t)n, sizeof *c, cand_cmp);
  int at = 0;
  if (self) out[at++] = qi;
  for (int64_t a = 0; at < k; a++) out[at++] = a < n ? c[a].i : -1;
  free(c);
}

static bool in_list(const int64_t *l, int k, int64_t v) {
  for (int a = 0; a < k; a++)
    if (l[a] == v) return true;
  return false;
}

/* The dense prediction of the definition (x as query), no cap needed. */
static double *brute_snn(const set *x, const set *y, int k) {
  clue_err err;
  assert_true(x->n > 0 && y->n > 0 && x->n < 100000 && y->n < 100000);
  float *xn = match_normalize(x->x, x->n, x->dim, &err);
  float *yn = match_normalize(y->x, y->n, y->dim, &err);
  int64_t nx = x->n, ny = y->n, d = x->dim;
  int64_t *x2y = malloc(sizeof(int64_t) * (size_t)(nx * k)), *x2x = malloc(sizeof(int64_t) * (size_t)(nx * k));
  int64_t *y2x = malloc(sizeof(int64_t) * (size_t)(ny * k)), *y2y = malloc(sizeof(int64_t) * (size_t)(ny * k));
  for (int64_t i = 0; i < nx; i++) {
    nearest(xn, i, x->group, yn, ny, y->group, d, k, false, x2y + i * k);
    nearest(xn, i, x->group, xn, nx, x->group, d, k, true, x2x + i * k);
  }
  for (int64_t j = 0; j < ny; j++) {
    nearest(yn, j, y->group, xn, nx, x->group, d, k, false, y2x + j * k);
    nearest(yn, j, y->group, yn, ny, y->group, d, k, true, y2y + j * k);
  }
  double *p = calloc((size_t)nx * (size_t)ny, sizeof(double));
  for (int64_t i = 0; i < nx; i++) {
    double total = 0;
    for (int64_t j = 0; j < ny; j++) {
      int s = 0;
      for (int a = 0; a < k; a++) {
        if (x2y[i * k + a] >= 0) s += in_list(y2y + j * k, k, x2y[i * k + a]);
        if (x2x[i * k + a] >= 0) s += in_list(y2x + j * k, k, x2x[i * k + a]);
      }
      p[i * ny + j] = s > 0 ? (double)s / (double)(4 * k - s) : 0;
      total += p[i * ny + j];
    }
    for (int64_t j = 0; j < ny; j++) p[i * ny + j] = (float)(p[i * ny + j] / total);
  }
  free(xn);
  free(yn);
  free(x2y);
  free(x2x);
  free(y2x);
  free(y2y);
  return p;
}

static set random_set(int64_t n, int64_t dim, uint64_t seed, int n_groups) {
  set s = {.n = n, .dim = dim};
  s.x = malloc(sizeof(float) * (size_t)(n * dim));
  s.group = n_groups > 0 ? malloc(sizeof(int32_t) * (size_t)n) : NULL;
  for (int64_t i = 0; i < n; i++) {
    clue_rng g = clue_rng_stream(seed, CLUE_RNG_TEST, 0, (uint64_t)i);
    for (int64_t t = 0; t < dim; t++) s.x[i * dim + t] = (float)clue_rng_normal(&g);
    if (s.group) s.group[i] = (int32_t)clue_rng_below(&g, (uint64_t)n_groups);
  }
  return s;
}

static void test_random_vs_brute(void **state) {
  (void)state;
  for (int k = 1; k <= 4; k++) {
    set x = random_set(70, 5, 100 + (uint64_t)k, 0), y = random_set(61, 5, 200 + (uint64_t)k, 0);
    double *want = brute_snn(&x, &y, k);
    expect_rows(&x, &y, k, MATCH_X_QUERY, MATCH_MAX_NNZ, want, 0, 0);
    free(want);
    double *want_t = brute_snn(&y, &x, k);
    expect_rows(&x, &y, k, MATCH_Y_QUERY, MATCH_MAX_NNZ, want_t, 0, 0);
    free(want_t);
    set_free(&x);
    set_free(&y);
  }
}

static void test_random_groups_vs_brute(void **state) {
  (void)state;
  set x = random_set(64, 4, 301, 3), y = random_set(55, 4, 302, 3);
  double *want = brute_snn(&x, &y, 3);
  expect_rows(&x, &y, 3, MATCH_X_QUERY, MATCH_MAX_NNZ, want, 0, 0);
  free(want);
  set_free(&x);
  set_free(&y);
}

static void test_bad_arguments(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  set x = circle((double[]){0, 40, 100}, 3, NULL);
  knn_points xp = block_of(&x, &c);
  match_graphs *g = NULL;
  assert_int_equal(match_graphs_build(&xp, &xp, 0, &c, &g, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "k = 0"));
  assert_null(g);
  TU_OK(match_graphs_build(&xp, &xp, 1, &c, &g, &err), &err);
  clue_csr *m = NULL;
  assert_int_equal(match_snn_rows(g, MATCH_X_QUERY, 2, 5, 10, &m, NULL, &err), CLUE_EINVAL);
  assert_int_equal(match_snn_rows(g, MATCH_X_QUERY, 0, 1, 0, &m, NULL, &err), CLUE_EINVAL);
  assert_null(m);
  match_graphs_free(g);
  set_free(&x);
  float z[] = {0, 0, 3, 4};
  float *n = match_normalize(z, 2, 2, &err);
  assert_true(n[0] == 0 && n[1] == 0);
  TU_CLOSE(n[2], 0.6, 1e-7);
  TU_CLOSE(n[3], 0.8, 1e-7);
  free(n);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_k1_mutual_and_one_way),
      cmocka_unit_test(test_k2_with_tie),
      cmocka_unit_test(test_batches_and_fallback),
      cmocka_unit_test(test_hub_and_cap),
      cmocka_unit_test(test_random_vs_brute),
      cmocka_unit_test(test_random_groups_vs_brute),
      cmocka_unit_test(test_bad_arguments),
  };
  return TU_RUN(tests);
}
