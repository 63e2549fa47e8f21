/* test_umap.c — UMAP (umap.h): the curve fit against the published values for
 * min_dist 0.1, spread 1 (a ≈ 1.577, b ≈ 0.895) and at a least-squares minimum
 * for other settings; rho and sigma of points worked out by hand; the fuzzy
 * union and the components of a small graph by hand; the same layout for the
 * same seed, on every number of ranks (each rank's result against one rank
 * alone); well-separated clusters kept apart in 2-D; bad input.
 * CLUE_TEST_NP: 1 2 3 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/knn.h"
#include "clue/rng.h"
#include "clue/umap.h"
#include "testutil.h"

/* Least-squares cost of the curve on the fit's grid (as umap_layout.c). */
static double curve_cost(double a, double b, double spread, double min_dist) {
  double c = 0;
  for (int i = 0; i < 300; i++) {
    double x = 3 * spread * i / 299, y = x < min_dist ? 1 : exp(-(x - min_dist) / spread);
    double r = 1 / (1 + a * pow(x, 2 * b)) - y;
    c += r * r;
  }
  return c;
}

static void test_fit_ab(void **state) {
  (void)state;
  clue_err err;
  double a, b;
  TU_OK(clue_umap_fit_ab(1.0, 0.1, &a, &b, &err), &err);
  assert_true(fabs(a - 1.577) < 2e-3); /* published: a = 1.5769, b = 0.8951 */
  assert_true(fabs(b - 0.895) < 2e-3);
  const double cases[3][2] = {{1.0, 0.5}, {2.0, 0.0}, {0.5, 0.25}}; /* spread, min_dist */
  for (int c = 0; c < 3; c++) { /* a minimum: no nearby point does better */
    TU_OK(clue_umap_fit_ab(cases[c][0], cases[c][1], &a, &b, &err), &err);
    double best = curve_cost(a, b, cases[c][0], cases[c][1]);
    for (int da = -1; da <= 1; da++)
      for (int db = -1; db <= 1; db++)
        assert_true(curve_cost(a * (1 + 1e-4 * da), b * (1 + 1e-4 * db), cases[c][0],
                               cases[c][1]) >= best - 1e-15);
  }
  assert_int_equal(clue_umap_fit_ab(0, 0.1, &a, &b, &err), CLUE_EINVAL);
}

/* Point 0: neighbours at 1 and 2, target log2(3): rho = 1 and 1 + e^(−1/σ) =
 * log2 3, so σ = −1 / ln(log2 3 − 1), memberships 1 and log2 3 − 1.
 * Point 1: neighbours at 0 and 3 with target log2(3): rho = 3, every term is 1,
 * the sum 2 > 1.585 whatever σ: σ falls to its floor 1e-3 · (0 + 3 + 0) / 3.
 * Point 2: all at 0: rho = 0, σ floors at 1e-3 × the mean over all points
 * ((1 + 2 + 0 + 3 + 0 + 0) / 9). */
static void test_smooth_knn(void **state) {
  (void)state;
  double d[6] = {1, 2, 0, 3, 0, 0}, rho[3], sigma[3], w[6];
  double target = log2(3.0);
  clue_umap_smooth_knn(d, 3, 2, target, rho, sigma);
  assert_true(rho[0] == 1 && rho[1] == 3 && rho[2] == 0);
  TU_CLOSE(sigma[0], -1 / log(target - 1), 1e-4);
  TU_CLOSE(sigma[1], 1e-3, 1e-12);
  TU_CLOSE(sigma[2], 1e-3 * 6.0 / 9.0, 1e-12);
  clue_umap_memberships(d, 3, 2, rho, sigma, w);
  assert_true(w[0] == 1);
  TU_CLOSE(w[1], target - 1, 1e-5);
  assert_true(w[2] == 1 && w[3] == 1 && w[4] == 1 && w[5] == 1);
}

/* 0 → 1 (1), 0 → 2 (0.5); 1 → 0 (0.4), 1 → 2 (0.2); 2 → 0 (0.3); 3 → 4 (0.7):
 * (0,1) = 1 + 0.4 − 0.4 = 1; (0,2) = 0.5 + 0.3 − 0.15 = 0.65; (1,2) = 0.2;
 * (3,4) = 0.7; point 5 alone. Components {0, 1, 2}, {3, 4}, {5}. */
static void test_fuzzy_union(void **state) {
  (void)state;
  clue_err err;
  int64_t idx[12] = {1, 2, 0, 2, 0, -1, 4, -1, -1, -1, -1, -1};
  double w[12] = {1, 0.5, 0.4, 0.2, 0.3, 0, 0.7, 0, 0, 0, 0, 0};
  clue_umap_graph *g = NULL;
  TU_OK(clue_umap_fuzzy_union(idx, w, 6, 2, &g, &err), &err);
  const int64_t indptr[7] = {0, 2, 4, 6, 7, 8, 8};
  const int64_t cols[8] = {1, 2, 0, 2, 0, 1, 4, 3};
  const double vals[8] = {1, 0.65, 1, 0.2, 0.65, 0.2, 0.7, 0.7};
  assert_memory_equal(g->indptr, indptr, sizeof indptr);
  assert_memory_equal(g->indices, cols, sizeof cols);
  for (int p = 0; p < 8; p++) TU_CLOSE(g->w[p], vals[p], 1e-15);
  int64_t comp[6], nc;
  TU_OK(clue_umap_components(g, comp, &nc, &err), &err);
  const int64_t want[6] = {0, 0, 0, 1, 1, 2};
  assert_int_equal(nc, 3);
  assert_memory_equal(comp, want, sizeof want);
  clue_umap_graph_free(g);
  int64_t self[2] = {0, 1}; /* a self-loop is refused */
  assert_int_equal(clue_umap_fuzzy_union(self, w, 2, 1, &g, &err), CLUE_EINVAL);
}

/* n points in dim columns around n_clusters centres `sep` apart (whole set on
 * every rank); label[i] = cluster. */
static float *clusters(int64_t n, int64_t dim, int n_clusters, double sep, int32_t *label) {
  float *x = malloc((size_t)(n * dim) * sizeof *x);
  for (int64_t i = 0; i < n; i++) {
    clue_rng r = clue_rng_stream(11, CLUE_RNG_TEST, 0, (uint64_t)i);
    label[i] = (int32_t)(i % n_clusters);
    for (int64_t d = 0; d < dim; d++)
      x[i * dim + d] = (float)(clue_rng_normal(&r) + (d == label[i] % dim ? sep : 0) +
                               (d == (label[i] + 1) % dim ? sep * label[i] / 4 : 0));
  }
  return x;
}

/* Collective. The layout of the whole set x (n × dim) from this rank's block. */
static int layout(const float *x, int64_t n, int64_t dim, const clue_umap_opts *o,
                  const clue_comm *c, float *y, clue_umap_stats *st, clue_err *err) {
  int64_t begin, count;
  knn_block(n, c->size, c->rank, &begin, &count);
  knn_points p = {n, begin, count, dim, x + begin * dim, NULL};
  return clue_umap(&p, o, c, y, st, err);
}

static void test_same_on_every_rank_count(void **state) {
  (void)state;
  clue_comm w = tu_world(), self = clue_comm_self();
  clue_err err;
  int64_t n = 400, dim = 8;
  int32_t *lab = malloc((size_t)n * sizeof *lab);
  float *x = clusters(n, dim, 4, 3.0, lab);
  float *y1 = malloc((size_t)(2 * n) * sizeof *y1), *y2 = malloc((size_t)(2 * n) * sizeof *y2);
  clue_umap_opts o;
  clue_umap_opts_default(&o);
  o.seed = 5;
  o.n_epochs = 100;
  clue_umap_stats st;
  TU_OK(layout(x, n, dim, &o, &w, y1, &st, &err), &err);
  assert_int_equal(st.n_components, 1); /* the spectral path on one component */
  assert_int_equal(st.n_epochs, 100);
  TU_OK(layout(x, n, dim, &o, &w, y2, NULL, &err), &err);
  assert_memory_equal(y1, y2, (size_t)(2 * n) * sizeof *y1);
  if (w.rank == 0) { /* one rank alone gives the same layout */
    TU_OK(layout(x, n, dim, &o, &self, y2, NULL, &err), &err);
    assert_memory_equal(y1, y2, (size_t)(2 * n) * sizeof *y1);
  }
  o.seed = 6; /* another seed, another layout */
  TU_OK(layout(x, n, dim, &o, &w, y2, NULL, &err), &err);
  assert_true(memcmp(y1, y2, (size_t)(2 * n) * sizeof *y1) != 0);
  free(lab), free(x), free(y1), free(y2);
}

/* Three clusters far apart (three graph components): in 2-D each point's
 * nearest other point is of its cluster, and the clusters' centres are more
 * than twice the largest cluster radius apart. */
static void test_clusters_stay_apart(void **state) {
  (void)state;
  clue_comm w = tu_world();
  clue_err err;
  int64_t n = 450, dim = 10;
  int32_t *lab = malloc((size_t)n * sizeof *lab);
  float *x = clusters(n, dim, 3, 40.0, lab);
  float *y = malloc((size_t)(2 * n) * sizeof *y);
  clue_umap_opts o;
  clue_umap_opts_default(&o);
  clue_umap_stats st;
  TU_OK(layout(x, n, dim, &o, &w, y, &st, &err), &err);
  assert_int_equal(st.n_components, 3);
  assert_int_equal(st.n_epochs, 500);
  for (int64_t i = 0; i < n; i++) {
    int64_t best = -1;
    double bd = INFINITY;
    for (int64_t j = 0; j < n; j++) {
      double dx = y[2 * i] - y[2 * j], dy = y[2 * i + 1] - y[2 * j + 1];
      if (j != i && dx * dx + dy * dy < bd) bd = dx * dx + dy * dy, best = j;
    }
    assert_int_equal(lab[best], lab[i]);
  }
  double cx[3] = {0}, cy[3] = {0}, rad = 0, cnt = (double)n / 3;
  for (int64_t i = 0; i < n; i++) cx[lab[i]] += y[2 * i] / cnt, cy[lab[i]] += y[2 * i + 1] / cnt;
  for (int64_t i = 0; i < n; i++)
    rad = fmax(rad, hypot(y[2 * i] - cx[lab[i]], y[2 * i + 1] - cy[lab[i]]));
  for (int c = 0; c < 3; c++)
    for (int e = c + 1; e < 3; e++) assert_true(hypot(cx[c] - cx[e], cy[c] - cy[e]) > 2 * rad);
  free(lab), free(x), free(y);
}

static void test_bad_input(void **state) {
  (void)state;
  clue_comm w = tu_world();
  clue_err err;
  int64_t n = 12, dim = 3;
  int32_t lab[12];
  float *x = clusters(n, dim, 2, 3.0, lab);
  float y[24];
  clue_umap_opts o;
  clue_umap_opts_default(&o);
  assert_int_equal(layout(x, n, dim, &o, &w, y, NULL, &err), CLUE_EDATA); /* 12 < 16 */
  assert_non_null(strstr(err.msg, "n_neighbors + 1"));
  o.n_neighbors = 5;
  x[7 * dim + 1] = NAN;
  assert_int_equal(layout(x, n, dim, &o, &w, y, NULL, &err), CLUE_ENUMERIC);
  x[7 * dim + 1] = 0;
  TU_OK(layout(x, n, dim, &o, &w, y, NULL, &err), &err);
  o.min_dist = 2; /* larger than spread */
  assert_int_equal(layout(x, n, dim, &o, &w, y, NULL, &err), CLUE_EINVAL);
  o.min_dist = 0.1, o.n_neighbors = 1;
  assert_int_equal(layout(x, n, dim, &o, &w, y, NULL, &err), CLUE_EINVAL);
  free(x);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fit_ab),
      cmocka_unit_test(test_smooth_knn),
      cmocka_unit_test(test_fuzzy_union),
      cmocka_unit_test(test_same_on_every_rank_count),
      cmocka_unit_test(test_clusters_stay_apart),
      cmocka_unit_test(test_bad_input),
  };
  return TU_RUN(tests);
}
