/* umap_graph.c — UMAP's fuzzy simplicial set (umap.h, step 2): per-point rho
 * and sigma, memberships, the fuzzy union into a symmetric CSR graph, and its
 * connected components. Every function here is serial and deterministic. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/umap.h"

#define SMOOTH_ITERS 64
#define SMOOTH_TOL 1e-5
#define MIN_DIST_SCALE 1e-3

/* Σ_j exp(−max(0, d_j − rho) / sigma) over one point's k distances. */
static double membership_sum(const double *d, int k, double rho, double sigma) {
  double s = 0;
  for (int j = 0; j < k; j++) {
    double dd = d[j] - rho;
    s += dd > 0 ? exp(-dd / sigma) : 1.0;
  }
  return s;
}

/* The sigma giving membership_sum = target, by bisection (doubling while no
 * upper bound is known). */
static double search_sigma(const double *d, int k, double rho, double target) {
  double lo = 0, hi = INFINITY, mid = 1;
  for (int it = 0; it < SMOOTH_ITERS; it++) {
    double s = membership_sum(d, k, rho, mid);
    if (fabs(s - target) < SMOOTH_TOL) break;
    if (s > target) {
      hi = mid;
      mid = (lo + hi) / 2;
    } else {
      lo = mid;
      mid = isinf(hi) ? 2 * mid : (lo + hi) / 2;
    }
  }
  return mid;
}

void clue_umap_smooth_knn(const double *d, int64_t n, int k, double target, double *rho,
                          double *sigma) {
  double all = 0; /* mean distance over every point (and itself at 0) */
  for (int64_t i = 0; i < n * k; i++) all += d[i];
  all /= n > 0 ? (double)n * (k + 1) : 1;
  for (int64_t i = 0; i < n; i++) {
    const double *di = d + i * k;
    double mean = 0;
    rho[i] = 0;
    for (int j = 0; j < k; j++) {
      mean += di[j];
      if (rho[i] == 0 && di[j] > 0) rho[i] = di[j];
    }
    mean /= k + 1;
    sigma[i] = search_sigma(di, k, rho[i], target);
    double floor = MIN_DIST_SCALE * (rho[i] > 0 ? mean : all);
    if (sigma[i] < floor) sigma[i] = floor;
  }
}

void clue_umap_memberships(const double *d, int64_t n, int k, const double *rho,
                           const double *sigma, double *w) {
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < k; j++) {
      double dd = d[i * k + j] - rho[i];
      w[i * k + j] = dd <= 0 || sigma[i] <= 0 ? 1.0 : exp(-dd / sigma[i]);
    }
}

void clue_umap_graph_free(clue_umap_graph *g) {
  if (!g) return;
  free(g->indptr);
  free(g->indices);
  free(g->w);
  free(g);
}

/* One entry of a row under construction: a = w(i→col), b = w(col→i). */
typedef struct half_edge {
  int64_t col;
  double a, b;
} half_edge;

static int cmp_half_edge(const void *p, const void *q) {
  const half_edge *x = p, *y = q;
  return (x->col > y->col) - (x->col < y->col);
}

/* Rows of both directions, bucketed by row: e[start[i] .. start[i + 1]). */
static int bucket_edges(const int64_t *idx, const double *w, int64_t n, int k,
                        int64_t *start, half_edge **out, clue_err *err) {
  memset(start, 0, (size_t)(n + 1) * sizeof *start);
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < k; j++) {
      int64_t c = idx[i * k + j];
      if (c < 0) continue;
      if (c >= n || c == i)
        return clue_fail(err, CLUE_EINVAL, "umap graph: point %lld has neighbour %lld",
                         (long long)i, (long long)c);
      start[i + 1]++, start[c + 1]++;
    }
  for (int64_t i = 0; i < n; i++) start[i + 1] += start[i];
  half_edge *e = clue_malloc((size_t)start[n] * sizeof *e + 1, err);
  int64_t *fill = clue_malloc((size_t)n * sizeof *fill + 1, err);
  if (!e || !fill) {
    free(e), free(fill);
    return CLUE_ENOMEM;
  }
  memcpy(fill, start, (size_t)n * sizeof *fill);
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < k; j++) {
      int64_t c = idx[i * k + j];
      if (c < 0) continue;
      e[fill[i]++] = (half_edge){c, w[i * k + j], 0};
      e[fill[c]++] = (half_edge){i, 0, w[i * k + j]};
    }
  free(fill);
  *out = e;
  return CLUE_OK;
}

/* Sorts each bucket by column and merges the two directions of a pair into
 * g's row (a + b − ab), leaving out zeros. */
static void merge_rows(half_edge *e, const int64_t *start, clue_umap_graph *g) {
  int64_t nnz = 0;
  g->indptr[0] = 0;
  for (int64_t i = 0; i < g->n; i++) {
    half_edge *r = e + start[i];
    int64_t m = start[i + 1] - start[i];
    qsort(r, (size_t)m, sizeof *r, cmp_half_edge);
    for (int64_t p = 0; p < m;) {
      double a = r[p].a, b = r[p].b;
      int64_t q = p + 1;
      for (; q < m && r[q].col == r[p].col; q++) a += r[q].a, b += r[q].b;
      double v = a + b - a * b;
      if (v > 0) g->indices[nnz] = r[p].col, g->w[nnz++] = v;
      p = q;
    }
    g->indptr[i + 1] = nnz;
  }
}

int clue_umap_fuzzy_union(const int64_t *idx, const double *w, int64_t n, int k,
                          clue_umap_graph **out, clue_err *err) {
  *out = NULL;
  int64_t *start = clue_malloc((size_t)(n + 1) * sizeof *start, err);
  if (!start) return CLUE_ENOMEM;
  half_edge *e = NULL;
  int rc = bucket_edges(idx, w, n, k, start, &e, err);
  clue_umap_graph *g = rc ? NULL : clue_calloc(1, sizeof *g, err);
  if (g) {
    g->n = n;
    g->indptr = clue_malloc((size_t)(n + 1) * sizeof *g->indptr, err);
    g->indices = clue_malloc((size_t)start[n] * sizeof *g->indices + 1, err);
    g->w = clue_malloc((size_t)start[n] * sizeof *g->w + 1, err);
    if (g->indptr && g->indices && g->w) {
      merge_rows(e, start, g);
      *out = g;
    } else {
      clue_umap_graph_free(g);
    }
  }
  if (rc == CLUE_OK && !*out) rc = CLUE_ENOMEM;
  free(e);
  free(start);
  return rc;
}

int clue_umap_components(const clue_umap_graph *g, int64_t *comp, int64_t *n_comp,
                         clue_err *err) {
  int64_t *queue = clue_malloc((size_t)g->n * sizeof *queue + 1, err);
  if (!queue) return CLUE_ENOMEM;
  for (int64_t i = 0; i < g->n; i++) comp[i] = -1;
  int64_t c = 0;
  for (int64_t s = 0; s < g->n; s++) {
    if (comp[s] >= 0) continue;
    int64_t head = 0, tail = 0;
    queue[tail++] = s;
    comp[s] = c;
    while (head < tail) {
      int64_t i = queue[head++];
      for (int64_t p = g->indptr[i]; p < g->indptr[i + 1]; p++)
        if (comp[g->indices[p]] < 0) comp[g->indices[p]] = c, queue[tail++] = g->indices[p];
    }
    c++;
  }
  free(queue);
  *n_comp = c;
  return CLUE_OK;
}
