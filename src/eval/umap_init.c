/* umap_init.c — UMAP's spectral initial layout (umap.h, step 4): the two
 * leading non-trivial eigenvectors of the normalised graph of each connected
 * component by subspace iteration, components placed by the principal
 * components of their centroids, then scaled, jittered and boxed. Serial and
 * deterministic; random numbers from (seed, CLUE_RNG_UMAP, step 0 or 1, point). */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "clue/rng.h"
#include "clue/umap.h"

#define BLOCK 5          /* vectors iterated besides the trivial one */
#define MIN_SPECTRAL 8   /* smaller components are scattered */
#define MAX_ITERS 300
#define RESIDUAL_TOL 1e-4
#define JACOBI_SWEEPS 60
#define MAX_META 1024    /* larger centroid problems: components on a spiral */
#define NOISE_SD 1e-4
#define BOX 10.0

/* ---- small dense symmetric eigenproblems (cyclic Jacobi) ----------------------- */

/* Eigen-decomposes the s × s symmetric a (destroyed): values in lam, descending,
 * vectors in the columns of v (s × s, row-major). */
static void jacobi_eig(double *a, int s, double *lam, double *v) {
  for (int i = 0; i < s * s; i++) v[i] = (i / s == i % s);
  for (int sweep = 0; sweep < JACOBI_SWEEPS; sweep++) {
    double off = 0, tot = 0;
    for (int i = 0; i < s * s; i++) {
      if (i / s != i % s) off += a[i] * a[i];
      else tot += a[i] * a[i];
    }
    if (off <= 1e-30 * (tot + off) || off == 0) break;
    for (int p = 0; p < s; p++)
      for (int q = p + 1; q < s; q++) {
        if (a[p * s + q] == 0) continue;
        double th = (a[q * s + q] - a[p * s + p]) / (2 * a[p * s + q]);
        double t = (th >= 0 ? 1 : -1) / (fabs(th) + sqrt(th * th + 1));
        double c = 1 / sqrt(t * t + 1), sn = t * c;
        for (int k = 0; k < s; k++) { /* columns p, q */
          double x = a[k * s + p], y = a[k * s + q];
          a[k * s + p] = c * x - sn * y, a[k * s + q] = sn * x + c * y;
        }
        for (int k = 0; k < s; k++) { /* rows p, q */
          double x = a[p * s + k], y = a[q * s + k];
          a[p * s + k] = c * x - sn * y, a[q * s + k] = sn * x + c * y;
        }
        for (int k = 0; k < s; k++) {
          double x = v[k * s + p], y = v[k * s + q];
          v[k * s + p] = c * x - sn * y, v[k * s + q] = sn * x + c * y;
        }
      }
  }
  for (int i = 0; i < s; i++) lam[i] = a[i * s + i];
  for (int i = 0; i < s; i++) { /* selection sort, descending, columns along */
    int m = i;
    for (int j = i + 1; j < s; j++) if (lam[j] > lam[m]) m = j;
    if (m == i) continue;
    double t = lam[i]; lam[i] = lam[m]; lam[m] = t;
    for (int k = 0; k < s; k++) t = v[k * s + i], v[k * s + i] = v[k * s + m], v[k * s + m] = t;
  }
}

/* ---- subspace iteration on one component --------------------------------------- */

/* One component: its points verts[0..m) and their degrees' square roots. */
typedef struct component {
  const clue_umap_graph *g;
  const int64_t *verts;
  const int64_t *loc;  /* (g->n) position of a point within verts */
  const double *sqdeg; /* (g->n) √degree */
  int64_t m;
} component;

/* The component's normalised graph D^−½ W D^−½ in local numbering (CSR). */
typedef struct local_graph {
  int64_t *ptr, *idx; /* (m + 1), (nnz) */
  double *w;          /* (nnz) */
} local_graph;

static void local_free(local_graph *l) {
  free(l->ptr), free(l->idx), free(l->w);
}

static int local_make(const component *c, local_graph *l, clue_err *err) {
  const clue_umap_graph *g = c->g;
  int64_t nnz = 0;
  for (int64_t v = 0; v < c->m; v++) nnz += g->indptr[c->verts[v] + 1] - g->indptr[c->verts[v]];
  l->ptr = clue_malloc((size_t)(c->m + 1) * sizeof *l->ptr, err);
  l->idx = clue_malloc((size_t)nnz * sizeof *l->idx + 1, err);
  l->w = clue_malloc((size_t)nnz * sizeof *l->w + 1, err);
  if (!l->ptr || !l->idx || !l->w) {
    local_free(l);
    return CLUE_ENOMEM;
  }
  l->ptr[0] = 0;
  for (int64_t v = 0, at = 0; v < c->m; v++) {
    int64_t i = c->verts[v];
    for (int64_t p = g->indptr[i]; p < g->indptr[i + 1]; p++, at++) {
      l->idx[at] = c->loc[g->indices[p]];
      l->w[at] = g->w[p] / (c->sqdeg[i] * c->sqdeg[g->indices[p]]);
    }
    l->ptr[v + 1] = at;
  }
  return CLUE_OK;
}

/* Y = ½ (I + D^−½ W D^−½) X on the component, X and Y (m × BLOCK). */
static void matvec(const local_graph *l, int64_t m, const double *x, double *y) {
  for (int64_t v = 0; v < m; v++) {
    double acc[BLOCK] = {0};
    for (int64_t p = l->ptr[v]; p < l->ptr[v + 1]; p++) {
      const double *xj = x + l->idx[p] * BLOCK;
      for (int b = 0; b < BLOCK; b++) acc[b] += l->w[p] * xj[b];
    }
    for (int b = 0; b < BLOCK; b++) y[v * BLOCK + b] = 0.5 * (x[v * BLOCK + b] + acc[b]);
  }
}

/* Cholesky QR: makes the columns of x (m × BLOCK) orthogonal to q0, then
 * orthonormal through the Cholesky factor of their Gram matrix. False (x
 * partly changed) when the columns are close to dependent. */
static bool chol_qr(double *x, int64_t m, const double *q0) {
  double dq[BLOCK] = {0}, gm[BLOCK * BLOCK] = {0}, l[BLOCK * BLOCK] = {0};
  for (int64_t v = 0; v < m; v++)
    for (int b = 0; b < BLOCK; b++) dq[b] += x[v * BLOCK + b] * q0[v];
  for (int64_t v = 0; v < m; v++) {
    double *r = x + v * BLOCK;
    for (int b = 0; b < BLOCK; b++) r[b] -= dq[b] * q0[v];
    for (int b = 0; b < BLOCK; b++)
      for (int c = 0; c <= b; c++) gm[b * BLOCK + c] += r[b] * r[c];
  }
  for (int j = 0; j < BLOCK; j++) {
    double s = gm[j * BLOCK + j];
    for (int k = 0; k < j; k++) s -= l[j * BLOCK + k] * l[j * BLOCK + k];
    if (!(s > 1e-10 * gm[j * BLOCK + j]) || !(s > 0)) return false;
    l[j * BLOCK + j] = sqrt(s);
    for (int i = j + 1; i < BLOCK; i++) {
      double t = gm[i * BLOCK + j];
      for (int k = 0; k < j; k++) t -= l[i * BLOCK + k] * l[j * BLOCK + k];
      l[i * BLOCK + j] = t / l[j * BLOCK + j];
    }
  }
  for (int64_t v = 0; v < m; v++) { /* row r ← r L^−T: forward substitution */
    double *r = x + v * BLOCK;
    for (int i = 0; i < BLOCK; i++) {
      double t = r[i];
      for (int k = 0; k < i; k++) t -= l[i * BLOCK + k] * r[k];
      r[i] = t / l[i * BLOCK + i];
    }
  }
  return true;
}

/* Makes the columns of x (m × BLOCK) orthonormal and orthogonal to q0: by
 * Cholesky QR twice, or when that breaks down, by modified Gram–Schmidt twice
 * (a column that vanishes is then left at 0). */
static void orthonormalize(double *x, int64_t m, const double *q0) {
  if (chol_qr(x, m, q0) && chol_qr(x, m, q0)) return;
  for (int pass = 0; pass < 2; pass++)
    for (int b = 0; b < BLOCK; b++) {
      for (int c = -1; c < b; c++) {
        double dot = 0;
        for (int64_t v = 0; v < m; v++) dot += x[v * BLOCK + b] * (c < 0 ? q0[v] : x[v * BLOCK + c]);
        for (int64_t v = 0; v < m; v++) x[v * BLOCK + b] -= dot * (c < 0 ? q0[v] : x[v * BLOCK + c]);
      }
      double nrm = 0;
      for (int64_t v = 0; v < m; v++) nrm += x[v * BLOCK + b] * x[v * BLOCK + b];
      nrm = sqrt(nrm);
      for (int64_t v = 0; v < m; v++) x[v * BLOCK + b] = nrm > 0 ? x[v * BLOCK + b] / nrm : 0;
    }
}

/* x ← x·V (m × BLOCK times BLOCK × BLOCK). */
static void rotate(double *x, int64_t m, const double *vv) {
  for (int64_t v = 0; v < m; v++) {
    double r[BLOCK] = {0};
    for (int b = 0; b < BLOCK; b++)
      for (int c = 0; c < BLOCK; c++) r[c] += x[v * BLOCK + b] * vv[b * BLOCK + c];
    memcpy(x + v * BLOCK, r, sizeof r);
  }
}

/* One Rayleigh–Ritz step: from orthonormal x and y = A x, x ← the Ritz vectors
 * (descending), y ← A x; returns the largest residual ‖y_j − θ_j x_j‖ of the
 * two leading ones. */
static double ritz(double *x, double *y, int64_t m) {
  double h[BLOCK * BLOCK] = {0}, lam[BLOCK], vv[BLOCK * BLOCK];
  for (int64_t v = 0; v < m; v++)
    for (int b = 0; b < BLOCK; b++)
      for (int c = 0; c < BLOCK; c++) h[b * BLOCK + c] += x[v * BLOCK + b] * y[v * BLOCK + c];
  for (int b = 0; b < BLOCK; b++) /* symmetrise rounding */
    for (int c = b + 1; c < BLOCK; c++)
      h[b * BLOCK + c] = h[c * BLOCK + b] = 0.5 * (h[b * BLOCK + c] + h[c * BLOCK + b]);
  jacobi_eig(h, BLOCK, lam, vv);
  rotate(x, m, vv);
  rotate(y, m, vv);
  double res = 0;
  for (int b = 0; b < 2; b++) {
    double r = 0;
    for (int64_t v = 0; v < m; v++) {
      double d = y[v * BLOCK + b] - lam[b] * x[v * BLOCK + b];
      r += d * d;
    }
    res = fmax(res, sqrt(r));
  }
  return res;
}

/* The two leading non-trivial eigenvectors of the component into out (m × 2). */
static int spectral_component(const component *c, uint64_t seed, double *out, clue_err *err) {
  int64_t m = c->m;
  local_graph l = {0};
  double *x = clue_malloc((size_t)m * BLOCK * sizeof *x, err);
  double *y = clue_malloc((size_t)m * BLOCK * sizeof *y, err);
  double *q0 = clue_malloc((size_t)m * sizeof *q0, err);
  if (!x || !y || !q0 || local_make(c, &l, err)) {
    free(x), free(y), free(q0);
    return CLUE_ENOMEM;
  }
  double nq = 0;
  for (int64_t v = 0; v < m; v++) q0[v] = c->sqdeg[c->verts[v]], nq += q0[v] * q0[v];
  for (int64_t v = 0; v < m; v++) q0[v] /= sqrt(nq);
  for (int64_t v = 0; v < m; v++) {
    clue_rng r = clue_rng_stream(seed, CLUE_RNG_UMAP, 0, (uint64_t)c->verts[v]);
    for (int b = 0; b < BLOCK; b++) x[v * BLOCK + b] = clue_rng_normal(&r);
  }
  orthonormalize(x, m, q0);
  for (int it = 0; it < MAX_ITERS; it++) {
    matvec(&l, m, x, y);
    double res = ritz(x, y, m);
    if (res < RESIDUAL_TOL) break;
    memcpy(x, y, (size_t)m * BLOCK * sizeof *x);
    orthonormalize(x, m, q0);
  }
  for (int64_t v = 0; v < m; v++) out[2 * v] = x[v * BLOCK], out[2 * v + 1] = x[v * BLOCK + 1];
  free(x), free(y), free(q0);
  local_free(&l);
  return CLUE_OK;
}

/* ---- placing the components ------------------------------------------------------ */

/* meta (nc × 2): the centroids of the components in x, projected on their two
 * leading principal axes; a spiral when the problem is too large. */
static int component_centres(const int64_t *comp, int64_t n, int64_t nc, const float *x,
                             int64_t dim, double *meta, clue_err *err) {
  int64_t s = nc < dim ? nc : dim;
  if (s > MAX_META) {
    for (int64_t c = 0; c < nc; c++) {
      double r = sqrt((double)c + 1), th = 2.399963229728653 * (double)c;
      meta[2 * c] = r * cos(th), meta[2 * c + 1] = r * sin(th);
    }
    return CLUE_OK;
  }
  double *cen = clue_calloc((size_t)(nc * dim), sizeof *cen, err);
  int64_t *cnt = clue_calloc((size_t)nc, sizeof *cnt, err);
  double *a = clue_calloc((size_t)(s * s) + 1, sizeof *a, err);
  double *v = clue_calloc((size_t)(s * s) + 1, sizeof *v, err);
  double *lam = clue_calloc((size_t)s + 1, sizeof *lam, err);
  double *mean = clue_calloc((size_t)dim, sizeof *mean, err);
  int rc = cen && cnt && a && v && lam && mean ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
    cnt[comp[i]]++;
    for (int64_t d = 0; d < dim; d++) cen[comp[i] * dim + d] += x[i * dim + d];
  }
  for (int64_t c = 0; rc == CLUE_OK && c < nc; c++)
    for (int64_t d = 0; d < dim; d++) cen[c * dim + d] /= (double)cnt[c], mean[d] += cen[c * dim + d] / (double)nc;
  for (int64_t c = 0; rc == CLUE_OK && c < nc; c++)
    for (int64_t d = 0; d < dim; d++) cen[c * dim + d] -= mean[d];
  if (rc == CLUE_OK && s == nc) { /* Gram matrix: scores u_k √λ_k */
    for (int64_t p = 0; p < nc; p++)
      for (int64_t q = 0; q < nc; q++)
        for (int64_t d = 0; d < dim; d++) a[p * s + q] += cen[p * dim + d] * cen[q * dim + d];
    jacobi_eig(a, (int)s, lam, v);
    for (int64_t c = 0; c < nc; c++)
      for (int k = 0; k < 2; k++)
        meta[2 * c + k] = k < s ? v[c * s + k] * sqrt(fmax(lam[k], 0)) : 0;
  } else if (rc == CLUE_OK) { /* covariance: scores C v_k */
    for (int64_t c = 0; c < nc; c++)
      for (int64_t p = 0; p < dim; p++)
        for (int64_t q = 0; q < dim; q++) a[p * s + q] += cen[c * dim + p] * cen[c * dim + q];
    jacobi_eig(a, (int)s, lam, v);
    for (int64_t c = 0; c < nc; c++)
      for (int k = 0; k < 2; k++) {
        meta[2 * c + k] = 0;
        for (int64_t d = 0; k < s && d < dim; d++) meta[2 * c + k] += cen[c * dim + d] * v[d * s + k];
      }
  }
  free(cen), free(cnt), free(a), free(v), free(lam), free(mean);
  return rc;
}

/* Half the distance from centre c to the nearest other distinct centre (1 when
 * there is none). */
static double half_gap(const double *meta, int64_t nc, int64_t c) {
  double best = INFINITY;
  for (int64_t o = 0; o < nc; o++) {
    double dx = meta[2 * o] - meta[2 * c], dy = meta[2 * o + 1] - meta[2 * c + 1];
    double d = sqrt(dx * dx + dy * dy);
    if (d > 0 && d < best) best = d;
  }
  return isinf(best) ? 1 : best / 2;
}

/* ---- the whole initialisation ------------------------------------------------------ */

/* Lays out component c (points verts[0..m)) into y around meta[c] within ±r. */
static int place_component(component *cc, uint64_t seed, const double *centre, double r,
                           double *y, clue_err *err) {
  int64_t m = cc->m;
  double *z = clue_malloc((size_t)(2 * m) * sizeof *z, err);
  if (!z) return CLUE_ENOMEM;
  int rc = CLUE_OK;
  if (m >= MIN_SPECTRAL) rc = spectral_component(cc, seed, z, err);
  double big = 0;
  for (int64_t v = 0; m >= MIN_SPECTRAL && v < 2 * m; v++) big = fmax(big, fabs(z[v]));
  if (m < MIN_SPECTRAL || !(big > 0) || !isfinite(big)) { /* a uniform scatter */
    for (int64_t v = 0; v < m; v++) {
      clue_rng g = clue_rng_stream(seed, CLUE_RNG_UMAP, 0, (uint64_t)cc->verts[v]);
      z[2 * v] = 2 * clue_rng_uniform(&g) - 1, z[2 * v + 1] = 2 * clue_rng_uniform(&g) - 1;
    }
    big = 1;
  }
  for (int64_t v = 0; v < m; v++)
    for (int k = 0; k < 2; k++) y[2 * cc->verts[v] + k] = centre[k] + z[2 * v + k] * r / big;
  free(z);
  return rc;
}

/* Scales y (n × 2) so that max |y| = BOX, adds the noise, maps each coordinate
 * onto [0, BOX] and stores it as float. */
static void box(double *y, int64_t n, uint64_t seed, float *out) {
  double big = 0, lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (int64_t i = 0; i < 2 * n; i++) big = fmax(big, fabs(y[i]));
  for (int64_t i = 0; i < n; i++) {
    clue_rng r = clue_rng_stream(seed, CLUE_RNG_UMAP, 1, (uint64_t)i);
    for (int k = 0; k < 2; k++) {
      y[2 * i + k] = y[2 * i + k] * (big > 0 ? BOX / big : 1) + NOISE_SD * clue_rng_normal(&r);
      lo[k] = fmin(lo[k], y[2 * i + k]), hi[k] = fmax(hi[k], y[2 * i + k]);
    }
  }
  for (int64_t i = 0; i < n; i++)
    for (int k = 0; k < 2; k++)
      out[2 * i + k] = (float)(hi[k] > lo[k] ? BOX * (y[2 * i + k] - lo[k]) / (hi[k] - lo[k]) : 0);
}

int clue_umap_init_spectral(const clue_umap_graph *g, const float *x, int64_t dim,
                            uint64_t seed, float *out, int64_t *n_comp, clue_err *err) {
  int64_t n = g->n, nc = 0;
  int64_t *comp = clue_malloc((size_t)n * sizeof *comp + 1, err);
  int64_t *verts = clue_malloc((size_t)n * sizeof *verts + 1, err);
  int64_t *loc = clue_malloc((size_t)n * sizeof *loc + 1, err);
  int64_t *start = clue_calloc((size_t)n + 2, sizeof *start, err);
  double *sqdeg = clue_malloc((size_t)n * sizeof *sqdeg + 1, err);
  double *y = clue_malloc((size_t)(2 * n) * sizeof *y + 1, err);
  int rc = comp && verts && loc && start && sqdeg && y ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK) rc = clue_umap_components(g, comp, &nc, err);
  double *meta = rc ? NULL : clue_calloc((size_t)(2 * nc), sizeof *meta, err);
  if (rc == CLUE_OK && !meta) rc = CLUE_ENOMEM;
  if (rc == CLUE_OK && nc > 1 && !x)
    rc = clue_fail(err, CLUE_EINVAL, "umap init: %lld components and no input points",
                   (long long)nc);
  if (rc == CLUE_OK && nc > 1) rc = component_centres(comp, n, nc, x, dim, meta, err);
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < n; i++) start[comp[i] + 2]++;
    for (int64_t c = 0; c < nc; c++) start[c + 2] += start[c + 1];
    for (int64_t i = 0; i < n; i++) loc[i] = start[comp[i] + 1]++, verts[loc[i]] = i;
    for (int64_t i = 0; i < n; i++) {
      double d = 0;
      for (int64_t p = g->indptr[i]; p < g->indptr[i + 1]; p++) d += g->w[p];
      sqdeg[i] = sqrt(d);
    }
    for (int64_t i = 0; i < n; i++) loc[i] -= start[comp[i]];
  }
  for (int64_t c = 0; rc == CLUE_OK && c < nc; c++) {
    component cc = {g, verts + start[c], loc, sqdeg, start[c + 1] - start[c]};
    rc = place_component(&cc, seed, meta + 2 * c, nc > 1 ? half_gap(meta, nc, c) : 1, y, err);
  }
  if (rc == CLUE_OK) box(y, n, seed, out);
  if (n_comp) *n_comp = nc;
  free(comp), free(verts), free(loc), free(start), free(sqdeg), free(y), free(meta);
  return rc;
}
