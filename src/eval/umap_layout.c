/* umap_layout.c — UMAP's curve fit (umap.h, step 3) and the layout by
 * stochastic gradient descent with negative sampling (step 5). Serial and
 * deterministic: the random numbers of edge e at epoch t come from the stream
 * (seed, CLUE_RNG_UMAP, 2 + t, e); steps 0 and 1 are the initialisation's. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/rng.h"
#include "clue/umap.h"

#define AB_POINTS 300
#define AB_MAX_ITERS 1000
#define GRAD_CLIP 4.0f
#define REPULSION_EPS 0.001f
#define PROGRESS_SECONDS 5.0

/* ---- step 3: the curve 1 / (1 + a x^(2b)) ----------------------------------- */

/* Sum of squared residuals of (a, b) on the grid; the gradient's normal
 * equations JᵀJ (3 entries: aa, ab, bb) and Jᵀr when jtj is not NULL. */
static double ab_cost(double a, double b, const double *x, const double *y, double *jtj,
                      double *jtr) {
  double cost = 0;
  if (jtj) jtj[0] = jtj[1] = jtj[2] = jtr[0] = jtr[1] = 0;
  for (int i = 0; i < AB_POINTS; i++) {
    double u = x[i] > 0 ? pow(x[i], 2 * b) : 0, den = 1 + a * u;
    double r = 1 / den - y[i];
    cost += r * r;
    if (!jtj || x[i] <= 0) continue;
    double ja = -u / (den * den), jb = -a * u * 2 * log(x[i]) / (den * den);
    jtj[0] += ja * ja, jtj[1] += ja * jb, jtj[2] += jb * jb;
    jtr[0] += ja * r, jtr[1] += jb * r;
  }
  return cost;
}

/* One Levenberg–Marquardt trial step from (a, b) with damping lambda. */
static void lm_step(const double *jtj, const double *jtr, double lambda, double *da,
                    double *db) {
  double m00 = jtj[0] * (1 + lambda), m01 = jtj[1], m11 = jtj[2] * (1 + lambda);
  double det = m00 * m11 - m01 * m01;
  *da = det != 0 ? -(m11 * jtr[0] - m01 * jtr[1]) / det : 0;
  *db = det != 0 ? -(m00 * jtr[1] - m01 * jtr[0]) / det : 0;
}

int clue_umap_fit_ab(double spread, double min_dist, double *a, double *b, clue_err *err) {
  if (!(spread > 0) || !(min_dist >= 0) || !isfinite(spread) || !isfinite(min_dist))
    return clue_fail(err, CLUE_EINVAL, "umap: spread %g and min_dist %g: need spread > 0, "
                     "min_dist >= 0", spread, min_dist);
  double x[AB_POINTS], y[AB_POINTS];
  for (int i = 0; i < AB_POINTS; i++) {
    x[i] = 3 * spread * i / (AB_POINTS - 1);
    y[i] = x[i] < min_dist ? 1 : exp(-(x[i] - min_dist) / spread);
  }
  double pa = 1, pb = 1, lambda = 1e-3, jtj[3], jtr[2];
  double cost = ab_cost(pa, pb, x, y, jtj, jtr);
  int it = 0;
  for (; it < AB_MAX_ITERS && lambda < 1e16; it++) {
    double da, db;
    lm_step(jtj, jtr, lambda, &da, &db);
    double na = pa + da, nb = pb + db;
    double c = na > 0 && nb > 0 ? ab_cost(na, nb, x, y, NULL, NULL) : INFINITY;
    if (c < cost) {
      bool done = cost - c <= 1e-15 * cost && fabs(da) + fabs(db) < 1e-12 * (pa + pb);
      pa = na, pb = nb, lambda = fmax(lambda / 10, 1e-12);
      cost = ab_cost(pa, pb, x, y, jtj, jtr);
      if (done) break;
    } else {
      lambda *= 10;
    }
  }
  if (!isfinite(pa) || !isfinite(pb) || pa <= 0 || pb <= 0)
    return clue_fail(err, CLUE_ENUMERIC, "umap: the curve fit for spread %g, min_dist %g "
                     "failed", spread, min_dist);
  *a = pa, *b = pb;
  return CLUE_OK;
}

/* ---- step 5: stochastic gradient descent -------------------------------------- */

/* The edges sampled: both directions of every kept entry of the graph. */
typedef struct sgd_edges {
  int64_t n;
  int64_t *head, *tail;
  double *every;     /* (n) epochs between samples: max_w / w */
  double *next;      /* (n) epoch of the next sample */
  double *next_neg;  /* (n) epoch of the next negative sample */
} sgd_edges;

static void edges_free(sgd_edges *e) {
  free(e->head), free(e->tail), free(e->every), free(e->next), free(e->next_neg);
}

static int edges_make(const clue_umap_graph *g, int n_epochs, int neg_rate, sgd_edges *e,
                      clue_err *err) {
  int64_t nnz = g->indptr[g->n];
  double max_w = 0;
  for (int64_t p = 0; p < nnz; p++) max_w = fmax(max_w, g->w[p]);
  memset(e, 0, sizeof *e);
  e->head = clue_malloc((size_t)nnz * sizeof *e->head + 1, err);
  e->tail = clue_malloc((size_t)nnz * sizeof *e->tail + 1, err);
  e->every = clue_malloc((size_t)nnz * sizeof *e->every + 1, err);
  e->next = clue_malloc((size_t)nnz * sizeof *e->next + 1, err);
  e->next_neg = clue_malloc((size_t)nnz * sizeof *e->next_neg + 1, err);
  if (!e->head || !e->tail || !e->every || !e->next || !e->next_neg) {
    edges_free(e);
    return CLUE_ENOMEM;
  }
  for (int64_t i = 0; i < g->n; i++)
    for (int64_t p = g->indptr[i]; p < g->indptr[i + 1]; p++) {
      if (g->w[p] < max_w / n_epochs) continue; /* too weak to be sampled once */
      e->head[e->n] = i, e->tail[e->n] = g->indices[p];
      e->every[e->n] = e->next[e->n] = max_w / g->w[p];
      e->next_neg[e->n] = e->every[e->n] / neg_rate;
      e->n++;
    }
  return CLUE_OK;
}

static inline float clip(float v) {
  return v > GRAD_CLIP ? GRAD_CLIP : v < -GRAD_CLIP ? -GRAD_CLIP : v;
}

/* The attraction along edge (i, j): both ends move. Single precision (the
 * hot loop; the layout is float). */
static void attract(float *yi, float *yj, float a, float b, float alpha) {
  float dx = yi[0] - yj[0], dy = yi[1] - yj[1], d2 = dx * dx + dy * dy;
  if (d2 <= 0) return;
  float pb = expf(b * logf(d2));
  float c = -2 * a * b * (pb / d2) / (a * pb + 1);
  float gx = clip(c * dx) * alpha, gy = clip(c * dy) * alpha;
  yi[0] += gx, yi[1] += gy;
  yj[0] -= gx, yj[1] -= gy;
}

/* The repulsion of yi from a negative sample yk: only yi moves. */
static void repel(float *yi, const float *yk, float a, float b, float alpha) {
  float dx = yi[0] - yk[0], dy = yi[1] - yk[1], d2 = dx * dx + dy * dy;
  if (d2 <= 0) return; /* the point itself, or a point at the same place */
  float c = 2 * b / ((REPULSION_EPS + d2) * (a * expf(b * logf(d2)) + 1));
  yi[0] += clip(c * dx) * alpha, yi[1] += clip(c * dy) * alpha;
}

/* A point in [0, n) from the top 32 bits of the next number, by multiply and
 * shift (n < 2³²; the bias, below n / 2³², does not matter here and a division
 * per sample would). */
static inline int64_t draw_point(clue_rng *r, int64_t n) {
  return (int64_t)(((clue_rng_u64(r) >> 32) * (uint64_t)n) >> 32);
}

/* One epoch (t = 0, 1, …) over the edges due. */
static void sgd_epoch(sgd_edges *e, int64_t n_points, float a, float b, float alpha, int t,
                      int neg_rate, uint64_t seed, float *y) {
  for (int64_t k = 0; k < e->n; k++) {
    if (e->next[k] > t) continue;
    float *yi = y + 2 * e->head[k];
    attract(yi, y + 2 * e->tail[k], a, b, alpha);
    e->next[k] += e->every[k];
    if (neg_rate == 0) continue;
    double every_neg = e->every[k] / neg_rate;
    int64_t n_neg = (int64_t)((t - e->next_neg[k]) / every_neg);
    if (n_neg <= 0) continue;
    clue_rng r = clue_rng_stream(seed, CLUE_RNG_UMAP, (uint64_t)t + 2, (uint64_t)k);
    for (int64_t s = 0; s < n_neg; s++)
      repel(yi, y + 2 * draw_point(&r, n_points), a, b, alpha);
    e->next_neg[k] += (double)n_neg * every_neg;
  }
}

int clue_umap_optimize(const clue_umap_graph *g, double a, double b,
                       const clue_umap_opts *o, int n_epochs, float *y,
                       clue_umap_stats *stats, clue_err *err) {
  if (n_epochs < 1 || o->negative_sample_rate < 0)
    return clue_fail(err, CLUE_EINVAL, "umap: %d epochs, negative sample rate %d", n_epochs,
                     o->negative_sample_rate);
  sgd_edges e;
  int rc = edges_make(g, n_epochs, o->negative_sample_rate > 0 ? o->negative_sample_rate : 1,
                      &e, err);
  if (rc) return rc;
  if (stats) stats->n_sampled = e.n;
  double t0 = MPI_Wtime(), last = t0;
  for (int t = 0; t < n_epochs; t++) {
    double alpha = o->learning_rate * (1.0 - (double)t / n_epochs);
    sgd_epoch(&e, g->n, (float)a, (float)b, (float)alpha, t, o->negative_sample_rate, o->seed, y);
    double now = MPI_Wtime();
    if (o->progress && (now - last >= PROGRESS_SECONDS || t + 1 == n_epochs)) {
      fprintf(stderr, "clue umap: layout epoch %d/%d (%.0f%%), %.1f s\n", t + 1, n_epochs,
              100.0 * (t + 1) / n_epochs, now - t0);
      fflush(stderr);
      last = now;
    }
  }
  edges_free(&e);
  for (int64_t i = 0; i < 2 * g->n; i++)
    if (!isfinite(y[i]))
      return clue_fail(err, CLUE_ENUMERIC, "umap: the layout of point %lld is not finite",
                       (long long)(i / 2));
  return CLUE_OK;
}
