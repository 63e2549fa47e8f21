/* tu_loess.h — a plain reference loess for tests: for each point, all
 * distances sorted, h = the q-th smallest, tricube weights, a weighted quadratic
 * in (x − x0) solved by Gaussian elimination. Slow (O(n² log n)) and obvious. */
#ifndef CLUE_TU_LOESS_H
#define CLUE_TU_LOESS_H

#include <math.h>
#include <stdlib.h>

static inline int tu_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Solves the 3 × 3 system m·b = r by Gaussian elimination with partial
 * pivoting; returns b[0]. */
static inline double tu_solve3(double m[3][4]) {
  for (int c = 0; c < 3; c++) {
    int piv = c;
    for (int r = c + 1; r < 3; r++)
      if (fabs(m[r][c]) > fabs(m[piv][c])) piv = r;
    for (int k = 0; k < 4; k++) {
      double t = m[c][k];
      m[c][k] = m[piv][k];
      m[piv][k] = t;
    }
    for (int r = c + 1; r < 3; r++) {
      double f = m[r][c] / m[c][c];
      for (int k = c; k < 4; k++) m[r][k] -= f * m[c][k];
    }
  }
  double b[3];
  for (int r = 2; r >= 0; r--) {
    double s = m[r][3];
    for (int k = r + 1; k < 3; k++) s -= m[r][k] * b[k];
    b[r] = s / m[r][r];
  }
  return b[0];
}

/* The reference: for each point, all distances sorted, h = the q-th smallest,
 * tricube weights, a weighted quadratic in (x − x0) solved directly. */
static inline void tu_ref_loess(const double *x, const double *y, int n, double span, double *out) {
  int q = (int)floor(span * n);
  if (q < 3) q = 3;
  if (q > n) q = n;
  double *d = malloc(sizeof *d * (size_t)n);
  for (int i = 0; i < n; i++) {
    for (int j = 0; j < n; j++) d[j] = fabs(x[j] - x[i]);
    qsort(d, (size_t)n, sizeof *d, tu_cmp_double);
    double h = d[q - 1];
    if (h == 0) { /* more ties than the span: the mean of the tied points */
      double sum = 0;
      int cnt = 0;
      for (int j = 0; j < n; j++)
        if (x[j] == x[i]) sum += y[j], cnt++;
      out[i] = sum / cnt;
      continue;
    }
    double m[3][4] = {{0}};
    for (int j = 0; j < n; j++) {
      double dist = fabs(x[j] - x[i]);
      if (dist >= h) continue;
      double w = pow(1 - pow(dist / h, 3), 3);
      double t = x[j] - x[i];
      double basis[3] = {1, t, t * t};
      for (int a = 0; a < 3; a++) {
        for (int b = 0; b < 3; b++) m[a][b] += w * basis[a] * basis[b];
        m[a][3] += w * basis[a] * y[j];
      }
    }
    out[i] = tu_solve3(m);
  }
  free(d);
}

#endif
