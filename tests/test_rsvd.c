/* test_rsvd.c — the distributed randomized SVD against an exact dense SVD
 * (LAPACK on the whole matrix): singular values, subspaces, the sign
 * convention, rank-deficient and very short matrices, the sparse entry points
 * (a CSR, and sparse rows plus a constant row),
 * independence of the number of ranks (including ranks with no rows), and
 * failures that must reach every rank.
 * CLUE_TEST_NP: 1 2 3 4 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/prep.h"
#include "clue/rng.h"
#include "testutil.h"
#include "tu_linalg.h"

/* A whole matrix known to every rank; each rank serves rows [begin, end). */
typedef struct mat {
  int64_t n, m;
  double *a; /* (n × m) row-major */
  int64_t begin, end;
  int fail_rank; /* the callback fails on this rank (−1: never) */
} mat;

static int mat_rows(void *ctx, int64_t b, int64_t e, float *out, clue_err *err) {
  mat *x = ctx;
  int rank = clue_comm_world().rank;
  if (rank == x->fail_rank) return clue_fail(err, CLUE_EIO, "test: block %lld failed", (long long)b);
  for (int64_t i = b; i < e; i++)
    for (int64_t j = 0; j < x->m; j++)
      out[(i - b) * x->m + j] = (float)x->a[(x->begin + i) * x->m + j];
  return CLUE_OK;
}

/* Rows split evenly; with empty_first, rank 0 gets none (when size > 1). */
static void mat_split(mat *x, const clue_comm *c, int empty_first) {
  int parts = c->size, r = c->rank;
  if (empty_first && c->size > 1) {
    parts--;
    r--;
  }
  if (r < 0) {
    x->begin = x->end = 0;
    return;
  }
  x->begin = x->n * r / parts;
  x->end = x->n * (r + 1) / parts;
}

/* Gaussian entries (float-representable), columns scaled by decay^j. */
static mat mat_random(int64_t n, int64_t m, double decay, uint64_t seed) {
  mat x = {.n = n, .m = m, .fail_rank = -1};
  x.a = malloc(sizeof *x.a * (size_t)(n * m));
  for (int64_t i = 0; i < n; i++) {
    clue_rng r = clue_rng_stream(seed, CLUE_RNG_TEST, 0, (uint64_t)i);
    for (int64_t j = 0; j < m; j++)
      x.a[i * m + j] = (double)(float)(clue_rng_normal(&r) * pow(decay, (double)j));
  }
  return x;
}

/* Runs clue_rsvd on the world with the rows of x split over ranks. */
static int run(mat *x, int k, int n_iter, int empty_first, double *v, double *s,
               clue_err *err) {
  clue_comm c = tu_world();
  mat_split(x, &c, empty_first);
  return clue_rsvd(mat_rows, x, x->end - x->begin, x->m, k, 10, n_iter, 42, &c, v, s, err);
}

/* The first k columns of v (width wv) match the exact right vectors up to
 * sign, s the exact values. */
static void check_vs_exact(const mat *x, int k, int wv, const double *v, const double *s,
                           double tol) {
  int mn = (int)(x->n < x->m ? x->n : x->m);
  double *se = malloc(sizeof *se * (size_t)mn);
  double *ve = malloc(sizeof *ve * (size_t)(x->m * mn));
  assert_int_equal(tu_svd_exact(x->a, (int)x->n, (int)x->m, se, ve), 0);
  for (int c = 0; c < k; c++) {
    TU_CLOSE(s[c], se[c], tol);
    if (se[c] > 1e-8 * se[0]) TU_CLOSE(tu_col_cos(v, wv, c, ve, mn, c, x->m), 1.0, tol);
  }
  free(se);
  free(ve);
}

/* Columns orthonormal; the largest-magnitude entry of each positive. */
static void check_orthonormal_signs(const double *v, int64_t m, int k) {
  for (int a = 0; a < k; a++) {
    int64_t best = 0;
    for (int64_t j = 0; j < m; j++)
      if (fabs(v[j * k + a]) > fabs(v[best * k + a])) best = j;
    assert_true(v[best * k + a] > 0);
    for (int b = 0; b <= a; b++) {
      double d = 0;
      for (int64_t j = 0; j < m; j++) d += v[j * k + a] * v[j * k + b];
      TU_CLOSE(d, a == b ? 1.0 : 0.0, 1e-10);
    }
  }
}

static void test_dense_vs_exact(void **state) {
  (void)state;
  mat x = mat_random(300, 80, 0.95, 1);
  int k = 10;
  double *v = malloc(sizeof *v * 80 * (size_t)k), s[10];
  clue_err err;
  TU_OK(run(&x, k, 7, 0, v, s, &err), &err);
  check_vs_exact(&x, k, k, v, s, 1e-6);
  check_orthonormal_signs(v, 80, k);
  free(v);
  free(x.a);
}

/* Identical on every rank and, up to summation order, for any rank count:
 * compare with the single-process result on the whole matrix. */
static void test_rank_independence(void **state) {
  (void)state;
  mat x = mat_random(257, 60, 0.97, 2);
  int k = 12;
  double *v = malloc(sizeof *v * 60 * (size_t)k), s[12];
  double *v1 = malloc(sizeof *v1 * 60 * (size_t)k), s1[12];
  clue_err err;
  for (int empty_first = 0; empty_first < 2; empty_first++) {
    TU_OK(run(&x, k, 4, empty_first, v, s, &err), &err);
    clue_comm self = clue_comm_self();
    mat whole = x;
    whole.begin = 0;
    whole.end = x.n;
    TU_OK(clue_rsvd(mat_rows, &whole, x.n, x.m, k, 10, 4, 42, &self, v1, s1, &err), &err);
    for (int c = 0; c < k; c++) TU_CLOSE(s[c], s1[c], 1e-10);
    for (int i = 0; i < 60 * k; i++) TU_CLOSE(v[i], v1[i], 1e-9);
    /* bitwise identical on every rank */
    double *v0 = malloc(sizeof *v0 * 60 * (size_t)k);
    memcpy(v0, v, sizeof *v0 * 60 * (size_t)k);
    MPI_Bcast(v0, 60 * k, MPI_DOUBLE, 0, MPI_COMM_WORLD);
    assert_memory_equal(v0, v, sizeof *v0 * 60 * (size_t)k);
    free(v0);
  }
  free(v);
  free(v1);
  free(x.a);
}

/* Rank 3 matrix, k = 6: three exact singular values, three zeros, and V still
 * an orthonormal basis. */
static void test_rank_deficient(void **state) {
  (void)state;
  mat l = mat_random(50, 3, 1.0, 3), r = mat_random(3, 20, 1.0, 4);
  mat x = {.n = 50, .m = 20, .fail_rank = -1};
  x.a = calloc(50 * 20, sizeof *x.a);
  for (int i = 0; i < 50; i++)
    for (int j = 0; j < 20; j++)
      for (int t = 0; t < 3; t++) x.a[i * 20 + j] += l.a[i * 3 + t] * r.a[t * 20 + j];
  for (int i = 0; i < 50 * 20; i++) x.a[i] = (double)(float)x.a[i];
  int k = 6;
  double v[20 * 6], s[6];
  clue_err err;
  TU_OK(run(&x, k, 2, 0, v, s, &err), &err);
  check_vs_exact(&x, 3, k, v, s, 1e-8);
  for (int c = 3; c < k; c++) assert_true(s[c] <= 1e-6 * s[0]);
  check_orthonormal_signs(v, 20, k);
  free(l.a);
  free(r.a);
  free(x.a);
}

/* Fewer rows than k + oversample, and a k equal to the number of columns. */
static void test_short_and_full(void **state) {
  (void)state;
  mat x = mat_random(7, 30, 1.0, 5);
  double v[30 * 5], s[5];
  clue_err err;
  TU_OK(run(&x, 5, 3, 0, v, s, &err), &err);
  check_vs_exact(&x, 5, 5, v, s, 1e-8);
  mat y = mat_random(40, 6, 0.8, 6);
  double vy[6 * 6], sy[6];
  TU_OK(run(&y, 6, 0, 1, vy, sy, &err), &err);
  check_vs_exact(&y, 6, 6, vy, sy, 1e-9);
  check_orthonormal_signs(vy, 6, 6);
  free(x.a);
  free(y.a);
}

/* The sparse entry point (rows regrouped by column in blocks) agrees with the
 * dense one on the same matrix. */
static void test_csr(void **state) {
  (void)state;
  int64_t n = 2500, m = 90; /* several blocks of 1024 rows */
  mat x = mat_random(n, m, 0.9, 7);
  clue_rng r = clue_rng_stream(8, CLUE_RNG_TEST, 0, 0);
  for (int64_t i = 0; i < n * m; i++)
    if (clue_rng_uniform(&r) < 0.85) x.a[i] = 0;
  clue_comm c = tu_world();
  mat_split(&x, &c, 0);
  int64_t nl = x.end - x.begin, nnz = 0;
  for (int64_t i = x.begin * m; i < x.end * m; i++) nnz += x.a[i] != 0;
  clue_err err;
  clue_csr *a = clue_csr_new(nl, m, nnz, &err);
  int64_t e = 0;
  for (int64_t i = 0; i < nl; i++) {
    for (int64_t j = 0; j < m; j++)
      if (x.a[(x.begin + i) * m + j] != 0) {
        a->indices[e] = (int32_t)j;
        a->data[e++] = (float)x.a[(x.begin + i) * m + j];
      }
    a->indptr[i + 1] = e;
  }
  int k = 8;
  double vs[90 * 8], ss[8], vd[90 * 8], sd[8];
  TU_OK(clue_rsvd_csr(a, k, 10, 7, 42, &c, vs, ss, &err), &err);
  TU_OK(clue_rsvd(mat_rows, &x, nl, m, k, 10, 7, 42, &c, vd, sd, &err), &err);
  for (int i = 0; i < k; i++) TU_CLOSE(ss[i], sd[i], 1e-10);
  for (int i = 0; i < 90 * k; i++) TU_CLOSE(vs[i], vd[i], 1e-9);
  check_vs_exact(&x, k, k, vs, ss, 1e-6);
  clue_csr_free(a);
  free(x.a);
}

/* Sparse rows of x minus the offset row, for clue_rsvd_offset. */
typedef struct offset_mat {
  mat *x;
  const double *offset;
} offset_mat;

static int offset_rows(void *ctx, int64_t b, int64_t e, int64_t *ptr, int32_t *idx,
                       double *val, clue_err *err) {
  offset_mat *o = ctx;
  mat *x = o->x;
  if (clue_comm_world().rank == x->fail_rank)
    return clue_fail(err, CLUE_EIO, "test: sparse block %lld failed", (long long)b);
  int64_t n = 0;
  ptr[0] = 0;
  for (int64_t i = b; i < e; i++) {
    for (int64_t j = 0; j < x->m; j++) {
      double c = x->a[(x->begin + i) * x->m + j] - o->offset[j];
      if (c == 0) continue;
      idx[n] = (int32_t)j;
      val[n++] = c;
    }
    ptr[i - b + 1] = n;
  }
  return CLUE_OK;
}

/* A = C + 1·offsetᵀ with C 85 % zeros (standardised counts): the offset entry
 * point agrees with the dense one on the same rows, and with the exact SVD;
 * with rank 0 holding no rows too; a failing block fails every rank. */
static void test_offset(void **state) {
  (void)state;
  int64_t n = 2300, m = 70;
  mat x = mat_random(n, m, 0.9, 10);
  double offset[70];
  for (int64_t j = 0; j < m; j++) offset[j] = (double)(float)(-0.3 - 0.01 * (double)j);
  clue_rng r = clue_rng_stream(11, CLUE_RNG_TEST, 0, 0);
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < m; j++)
      x.a[i * m + j] = clue_rng_uniform(&r) < 0.85
                           ? offset[j]
                           : (double)(float)(offset[j] + x.a[i * m + j]);
  clue_comm c = tu_world();
  int64_t *bound = malloc(sizeof *bound * (size_t)(n + 1));
  offset_mat o = {&x, offset};
  int k = 8;
  double vo[70 * 8], so[8], vd[70 * 8], sd[8];
  clue_err err;
  for (int empty_first = 0; empty_first < 2; empty_first++) {
    mat_split(&x, &c, empty_first);
    int64_t nl = x.end - x.begin;
    for (int64_t i = 0; i <= nl; i++) bound[i] = i * m; /* every entry may be stored */
    TU_OK(clue_rsvd_offset(offset_rows, &o, offset, bound, nl, m, k, 10, 7, 42, &c, vo, so,
                           &err),
          &err);
    TU_OK(clue_rsvd(mat_rows, &x, nl, m, k, 10, 7, 42, &c, vd, sd, &err), &err);
    for (int i = 0; i < k; i++) TU_CLOSE(so[i], sd[i], 1e-10);
    for (int i = 0; i < 70 * k; i++) TU_CLOSE(vo[i], vd[i], 1e-9);
    check_vs_exact(&x, k, k, vo, so, 1e-6);
    check_orthonormal_signs(vo, m, k);
  }
  x.fail_rank = c.size - 1;
  assert_int_equal(clue_rsvd_offset(offset_rows, &o, offset, bound, x.end - x.begin, m, k,
                                    10, 2, 42, &c, vo, so, &err),
                   CLUE_EIO);
  assert_non_null(strstr(err.msg, "test: sparse block"));
  free(bound);
  free(x.a);
}

static void test_errors(void **state) {
  (void)state;
  mat x = mat_random(20, 5, 1.0, 9);
  double v[5 * 6], s[6];
  clue_err err;
  assert_int_equal(run(&x, 6, 1, 0, v, s, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "k <= n_cols"));
  clue_comm c = tu_world();
  x.fail_rank = c.size - 1;
  assert_int_equal(run(&x, 2, 1, 0, v, s, &err), CLUE_EIO); /* every rank */
  assert_non_null(strstr(err.msg, "test: block"));
  free(x.a);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_dense_vs_exact), cmocka_unit_test(test_rank_independence),
      cmocka_unit_test(test_rank_deficient), cmocka_unit_test(test_short_and_full),
      cmocka_unit_test(test_csr),            cmocka_unit_test(test_offset),
      cmocka_unit_test(test_errors),
  };
  return TU_RUN(tests);
}
