/* loess.c — local quadratic regression of y on x evaluated at the data points,
 * the trend fit of the seurat_v3 highly-variable-gene recipe.
 *
 * Definition (computed exactly, no kd-tree interpolation): for each point x0,
 * take its q = floor(span · n) nearest neighbours (at least min(n, 3)), let h be
 * the distance to the q-th of them, weight every point by the tricube
 * w = (1 − (|x − x0| / h)³)³ for |x − x0| < h (0 otherwise; when h = 0 the
 * points at x0 weigh 1), fit a + b·t + c·t² with t = (x − x0) / h by weighted
 * least squares and return a. A rank-deficient local problem (fewer than three
 * distinct x values with weight) is solved in the least-norm sense through the
 * pseudo-inverse of the 3 × 3 normal matrix.
 *
 * The points are sorted once; the q nearest neighbours of a point then form a
 * contiguous window of the sorted order that only moves right, so each fit
 * costs O(q) and the whole fit O(n · q). */
#include <math.h>
#include <stdlib.h>

#include "clue/prep.h"

typedef struct loess_point {
  double x, y;
} loess_point;

static int loess_cmp(const void *a, const void *b) {
  double xa = ((const loess_point *)a)->x, xb = ((const loess_point *)b)->x;
  return (xa > xb) - (xa < xb);
}

/* Eigen-decomposition of a symmetric 3 × 3 matrix by cyclic Jacobi rotations:
 * a is overwritten (its diagonal holds the eigenvalues), v receives the
 * eigenvectors as columns. */
static void loess_jacobi3(double a[3][3], double v[3][3]) {
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) v[i][j] = i == j;
  for (int sweep = 0; sweep < 50; sweep++) {
    double off = fabs(a[0][1]) + fabs(a[0][2]) + fabs(a[1][2]);
    double diag = fabs(a[0][0]) + fabs(a[1][1]) + fabs(a[2][2]);
    if (off <= 1e-300 || off < 1e-18 * diag) break;
    for (int p = 0; p < 2; p++) {
      for (int q = p + 1; q < 3; q++) {
        if (a[p][q] == 0) continue;
        double theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
        double c = 1 / sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < 3; k++) { /* columns p, q of a */
          double akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (int k = 0; k < 3; k++) { /* rows p, q of a */
          double apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (int k = 0; k < 3; k++) {
          double vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
}

/* First coefficient of the least-norm solution of m · beta = r (m symmetric
 * positive semi-definite): the pseudo-inverse drops eigenvalues below 1e-12 of
 * the largest. */
static double loess_solve0(const double m[3][3], const double r[3]) {
  double a[3][3], v[3][3];
  for (int i = 0; i < 3; i++)
    for (int j = 0; j < 3; j++) a[i][j] = m[i][j];
  loess_jacobi3(a, v);
  double lmax = 0;
  for (int i = 0; i < 3; i++) lmax = fmax(lmax, a[i][i]);
  double beta0 = 0;
  for (int e = 0; e < 3; e++) {
    double lam = a[e][e];
    if (!(lam > 1e-12 * lmax)) continue;
    double proj = v[0][e] * r[0] + v[1][e] * r[1] + v[2][e] * r[2];
    beta0 += v[0][e] * proj / lam;
  }
  return beta0;
}

/* The local fit at x0 over the sorted points [lo, hi) with bandwidth h. */
static double loess_local(const loess_point *pt, int64_t lo, int64_t hi, double x0,
                          double h) {
  double m[3][3] = {{0}}, r[3] = {0};
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, r0 = 0, r1 = 0, r2 = 0;
  for (int64_t j = lo; j < hi; j++) {
    double d = pt[j].x - x0, w, t;
    if (h > 0) {
      t = d / h;
      double u = fabs(t);
      if (u >= 1) continue;
      double c = 1 - u * u * u;
      w = c * c * c;
    } else {
      if (d != 0) continue;
      t = 0;
      w = 1;
    }
    double wt = w * t, wt2 = wt * t;
    s0 += w;
    s1 += wt;
    s2 += wt2;
    s3 += wt2 * t;
    s4 += wt2 * t * t;
    r0 += w * pt[j].y;
    r1 += wt * pt[j].y;
    r2 += wt2 * pt[j].y;
  }
  m[0][0] = s0;
  m[0][1] = m[1][0] = s1;
  m[0][2] = m[2][0] = m[1][1] = s2;
  m[1][2] = m[2][1] = s3;
  m[2][2] = s4;
  r[0] = r0;
  r[1] = r1;
  r[2] = r2;
  return loess_solve0(m, r);
}

int clue_loess_fit(const double *x, const double *y, int64_t n, double span,
                   double *out, clue_err *err) {
  if (n < 0 || !(span > 0))
    return clue_fail(err, CLUE_EINVAL, "loess: need n >= 0 and span > 0 (got n=%lld, span=%g)",
                     (long long)n, span);
  if (n == 0) return CLUE_OK;
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(x[i]) || !isfinite(y[i]))
      return clue_fail(err, CLUE_ENUMERIC, "loess: point %lld is not finite (x=%g, y=%g)",
                       (long long)i, x[i], y[i]);
  loess_point *pt = clue_malloc((size_t)n * sizeof *pt, err);
  int64_t *order = clue_malloc((size_t)n * sizeof *order, err);
  if (!pt || !order) {
    free(pt);
    free(order);
    return CLUE_ENOMEM;
  }
  for (int64_t i = 0; i < n; i++) pt[i] = (loess_point){x[i], y[i]};
  qsort(pt, (size_t)n, sizeof *pt, loess_cmp);

  int64_t q = (int64_t)floor(span * (double)n);
  if (q < 3) q = 3;
  if (q > n) q = n;
  /* Fit at each distinct sorted x; then map back to the input order. */
  double *fit_sorted = (double *)order; /* reuse: n doubles fit in n int64 */
  int64_t lo = 0;
  for (int64_t i = 0; i < n; i++) {
    double x0 = pt[i].x;
    if (i > 0 && pt[i - 1].x == x0) {
      fit_sorted[i] = fit_sorted[i - 1];
      continue;
    }
    while (lo + q < n && pt[lo + q].x - x0 < x0 - pt[lo].x) lo++;
    double h = fmax(x0 - pt[lo].x, pt[lo + q - 1].x - x0);
    int64_t a = lo, b = lo + q;
    if (h == 0) { /* every point tied with x0 takes part */
      while (a > 0 && pt[a - 1].x == x0) a--;
      while (b < n && pt[b].x == x0) b++;
    }
    fit_sorted[i] = loess_local(pt, a, b, x0, h);
  }
  /* Input points with equal x share the fit; find each input's sorted slot by
   * binary search on x. */
  for (int64_t i = 0; i < n; i++) {
    int64_t l = 0, r = n - 1;
    while (l < r) {
      int64_t mid = l + (r - l) / 2;
      if (pt[mid].x < x[i])
        l = mid + 1;
      else
        r = mid;
    }
    out[i] = fit_sorted[l];
  }
  free(pt);
  free(order);
  return CLUE_OK;
}
