/* tu_linalg.h — exact dense linear algebra for tests that check the
 * randomized SVD and the preprocessing against a direct computation. */
#ifndef CLUE_TU_LINALG_H
#define CLUE_TU_LINALG_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt,
                    double *work, const int *lwork, int *iwork, int *info, size_t jobz_len);

/* Exact SVD of the row-major n × m matrix a: s (min(n, m), descending) and the
 * right singular vectors v (m × min(n, m), row-major: column c is vector c).
 * Returns LAPACK's info (0 = success). */
static inline int tu_svd_exact(const double *a, int n, int m, double *s, double *v) {
  int mn = n < m ? n : m;
  /* Row-major A is column-major Aᵀ (m × n); the left vectors of Aᵀ are V. */
  double *at = malloc(sizeof *at * (size_t)n * (size_t)m);
  double *u = malloc(sizeof *u * (size_t)m * (size_t)mn);
  double *vt = malloc(sizeof *vt * (size_t)mn * (size_t)n);
  int *iwork = malloc(sizeof *iwork * 8 * (size_t)mn);
  memcpy(at, a, sizeof *at * (size_t)n * (size_t)m);
  int info = 0, lwork = -1;
  double wq = 0;
  dgesdd_("S", &m, &n, at, &m, s, u, &m, vt, &mn, &wq, &lwork, iwork, &info, 1);
  lwork = (int)wq + 1;
  double *work = malloc(sizeof *work * (size_t)lwork);
  dgesdd_("S", &m, &n, at, &m, s, u, &m, vt, &mn, work, &lwork, iwork, &info, 1);
  for (int j = 0; j < m; j++)
    for (int c = 0; c < mn; c++) v[(size_t)j * mn + c] = u[(size_t)c * m + j];
  free(at);
  free(u);
  free(vt);
  free(iwork);
  free(work);
  return info;
}

/* |cosine| between column ca of a (rows × wa) and column cb of b (rows × wb). */
static inline double tu_col_cos(const double *a, int wa, int ca, const double *b, int wb,
                                int cb, int64_t rows) {
  double ab = 0, aa = 0, bb = 0;
  for (int64_t j = 0; j < rows; j++) {
    double x = a[j * wa + ca], y = b[j * wb + cb];
    ab += x * y;
    aa += x * x;
    bb += y * y;
  }
  return aa > 0 && bb > 0 ? fabs(ab) / sqrt(aa * bb) : 0;
}

/* The cosines of the principal angles between the spans of the first k
 * columns of a (rows × wa) and of b (rows × wb), both orthonormal: the
 * singular values of a_kᵀ·b_k (k of them, descending) into cosines. */
static inline int tu_principal_cosines(const double *a, int wa, const double *b, int wb,
                                       int k, int64_t rows, double *cosines) {
  double *c = calloc((size_t)k * (size_t)k, sizeof *c);
  for (int64_t j = 0; j < rows; j++)
    for (int p = 0; p < k; p++)
      for (int q = 0; q < k; q++) c[p * k + q] += a[j * wa + p] * b[j * wb + q];
  double *v = malloc(sizeof *v * (size_t)k * (size_t)k);
  int info = tu_svd_exact(c, k, k, cosines, v);
  free(c);
  free(v);
  return info;
}

#endif
