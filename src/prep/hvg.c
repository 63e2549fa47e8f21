/* hvg.c — highly variable genes, seurat_v3 flavour, over rows spread on ranks.
 *
 * Per batch b with N_b ≥ 2 cells (batches with fewer cells have no variance and
 * are left out of the ranking; when no batch qualifies, all cells form one):
 *   1. mean and sample variance (N − 1) of the raw counts of every gene;
 *   2. loess (span 0.3, degree 2) of log10(variance) on log10(mean) over the
 *      genes with variance > 0; expected std = sqrt(10^fitted) (1 for the others);
 *   3. counts clipped at mean + sqrt(N_b) · expected std; normalised variance =
 *      (N·mean² + Σ clipped² − 2·mean·Σ clipped) / ((N − 1) · expected std²);
 *   4. genes ranked by normalised variance, descending (ties: lower column).
 * Batches are combined as scanpy's seurat_v3 flavour does (the flavour the
 * reference CLUE runs used): for each gene, the number of batches where it is
 * among the top n, and the median of its ranks over those batches; genes are
 * ordered by median rank (ascending), then by that number of batches
 * (descending), then by column; genes in no batch's top n come last.
 *
 * Every sum is exact for integer counts (Σx, Σx² and the clipped sums are
 * accumulated as Σ_{x ≤ clip} x, Σ_{x ≤ clip} x² and #{x > clip}, all integers
 * below 2^53), so the selection is bitwise independent of the number of ranks.
 * The loess of batch b runs on rank b mod size and is broadcast. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/prep.h"

#define HVG_SPAN 0.3

/* Per-batch sums over rows, reduced over ranks: per (valid batch, gene) Σx and
 * Σx². vb[i] is the valid batch of row i (−1: left out). */
static void hvg_moments(const clue_csr *x, const int32_t *vb, int nv,
                        const clue_comm *comm, double *s1, double *s2) {
  size_t len = (size_t)nv * (size_t)x->n_cols;
  memset(s1, 0, len * sizeof *s1);
  memset(s2, 0, len * sizeof *s2);
  for (int64_t i = 0; i < x->n_rows; i++) {
    if (vb[i] < 0) continue;
    size_t off = (size_t)vb[i] * (size_t)x->n_cols;
    for (int64_t e = x->indptr[i]; e < x->indptr[i + 1]; e++) {
      double v = x->data[e];
      s1[off + (size_t)x->indices[e]] += v;
      s2[off + (size_t)x->indices[e]] += v * v;
    }
  }
  clue_comm_sum_double(comm, s1, len);
  clue_comm_sum_double(comm, s2, len);
}

/* Loess of one batch: writes the clip value of every gene (mean + sqrt(N)·reg_std)
 * and reg_std² to clip[] and rvar[] (n_cols each). */
static int hvg_trend(int64_t n_cols, double n, const double *s1, const double *s2,
                     double *clip, double *rvar, clue_err *err) {
  double *lx = clue_malloc((size_t)n_cols * sizeof *lx, err);
  double *ly = clue_malloc((size_t)n_cols * sizeof *ly, err);
  double *fit = clue_malloc((size_t)n_cols * sizeof *fit, err);
  int64_t *idx = clue_malloc((size_t)n_cols * sizeof *idx, err);
  int rc = CLUE_ENOMEM;
  if (!lx || !ly || !fit || !idx) goto done;
  int64_t m = 0;
  for (int64_t g = 0; g < n_cols; g++) {
    double mean = s1[g] / n;
    double var = (s2[g] - s1[g] * mean) / (n - 1);
    rvar[g] = 1;
    if (var > 0) {
      lx[m] = log10(mean);
      ly[m] = log10(var);
      idx[m++] = g;
    }
  }
  rc = clue_loess_fit(lx, ly, m, HVG_SPAN, fit, err);
  if (rc != CLUE_OK) goto done;
  for (int64_t j = 0; j < m; j++) rvar[idx[j]] = pow(10.0, fit[j]);
  for (int64_t g = 0; g < n_cols; g++) clip[g] = s1[g] / n + sqrt(n) * sqrt(rvar[g]);
done:
  free(lx);
  free(ly);
  free(fit);
  free(idx);
  return rc;
}

/* Clipped sums over rows, reduced: per (batch, gene) Σ_{x ≤ clip} x,
 * Σ_{x ≤ clip} x² and #{x > clip}. */
static void hvg_clipped(const clue_csr *x, const int32_t *vb, int nv,
                        const double *clip, const clue_comm *comm, double *c1, double *c2,
                        double *cn) {
  size_t len = (size_t)nv * (size_t)x->n_cols;
  memset(c1, 0, len * sizeof *c1);
  memset(c2, 0, len * sizeof *c2);
  memset(cn, 0, len * sizeof *cn);
  for (int64_t i = 0; i < x->n_rows; i++) {
    if (vb[i] < 0) continue;
    size_t off = (size_t)vb[i] * (size_t)x->n_cols;
    for (int64_t e = x->indptr[i]; e < x->indptr[i + 1]; e++) {
      size_t k = off + (size_t)x->indices[e];
      double v = x->data[e];
      if (v > clip[k]) {
        cn[k] += 1;
      } else {
        c1[k] += v;
        c2[k] += v * v;
      }
    }
  }
  clue_comm_sum_double(comm, c1, len);
  clue_comm_sum_double(comm, c2, len);
  clue_comm_sum_double(comm, cn, len);
}

typedef struct hvg_key {
  double v;  /* sort key */
  double v2; /* secondary key */
  int64_t g;
} hvg_key;

/* Normalised variance descending, then column ascending. */
static int hvg_cmp_var(const void *a, const void *b) {
  const hvg_key *x = a, *y = b;
  if (x->v != y->v) return x->v > y->v ? -1 : 1;
  return (x->g > y->g) - (x->g < y->g);
}

/* Median rank ascending (NaN last), then batches descending, then column. */
static int hvg_cmp_combined(const void *a, const void *b) {
  const hvg_key *x = a, *y = b;
  int xn = isnan(x->v), yn = isnan(y->v);
  if (xn != yn) return xn - yn;
  if (!xn && x->v != y->v) return x->v < y->v ? -1 : 1;
  if (x->v2 != y->v2) return x->v2 > y->v2 ? -1 : 1;
  return (x->g > y->g) - (x->g < y->g);
}

static int hvg_cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static int hvg_cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Combines the per-batch ranks (nv × n_cols, rank of each gene in each valid
 * batch) into the n_top selected columns, ascending. */
static int hvg_combine(const int64_t *rank, int nv, int64_t n_cols, int64_t n_top,
                       int64_t *selected, clue_err *err) {
  hvg_key *key = clue_malloc((size_t)n_cols * sizeof *key, err);
  double *r = clue_malloc((size_t)(nv > 0 ? nv : 1) * sizeof *r, err);
  if (!key || !r) {
    free(key);
    free(r);
    return CLUE_ENOMEM;
  }
  for (int64_t g = 0; g < n_cols; g++) {
    int cnt = 0;
    for (int b = 0; b < nv; b++) {
      int64_t rk = rank[(size_t)b * (size_t)n_cols + (size_t)g];
      if (rk < n_top) r[cnt++] = (double)rk;
    }
    double med = NAN;
    if (cnt > 0) {
      qsort(r, (size_t)cnt, sizeof *r, hvg_cmp_double);
      med = cnt % 2 ? r[cnt / 2] : 0.5 * (r[cnt / 2 - 1] + r[cnt / 2]);
    }
    key[g] = (hvg_key){med, (double)cnt, g};
  }
  qsort(key, (size_t)n_cols, sizeof *key, hvg_cmp_combined);
  for (int64_t i = 0; i < n_top; i++) selected[i] = key[i].g;
  qsort(selected, (size_t)n_top, sizeof *selected, hvg_cmp_i64);
  free(key);
  free(r);
  return CLUE_OK;
}

/* Ranks of the genes of one batch by normalised variance. */
static int hvg_rank_batch(int64_t n_cols, double n, const double *s1, const double *clip,
                          const double *rvar, const double *c1, const double *c2,
                          const double *cn, int64_t *rank, clue_err *err) {
  hvg_key *key = clue_malloc((size_t)n_cols * sizeof *key, err);
  if (!key) return CLUE_ENOMEM;
  for (int64_t g = 0; g < n_cols; g++) {
    double mean = s1[g] / n;
    double sum = c1[g] + clip[g] * cn[g];
    double sum2 = c2[g] + clip[g] * clip[g] * cn[g];
    double nv = (n * mean * mean + sum2 - 2 * mean * sum) / ((n - 1) * rvar[g]);
    key[g] = (hvg_key){nv, 0, g};
  }
  qsort(key, (size_t)n_cols, sizeof *key, hvg_cmp_var);
  for (int64_t i = 0; i < n_cols; i++) rank[key[i].g] = i;
  free(key);
  return CLUE_OK;
}

/* Cells per batch over all ranks, and the valid batch of each local row:
 * batches with ≥ 2 cells are numbered 0..nv−1, the others left out (−1). When
 * none qualifies but there are at least 2 cells, all cells form one batch. */
static int hvg_valid_batches(const int32_t *batch, int64_t n_rows, int n_batches,
                             const clue_comm *comm, int32_t *vb, double *n_cells, int *nv,
                             clue_err *err) {
  int64_t *cnt = clue_calloc((size_t)n_batches, sizeof *cnt, err);
  int *map = clue_malloc((size_t)n_batches * sizeof *map, err);
  int rc = (cnt && map) ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t i = 0; i < n_rows && rc == CLUE_OK; i++) {
    if (batch[i] < 0 || batch[i] >= n_batches)
      rc = clue_fail(err, CLUE_EINVAL, "row %lld has batch code %d, outside [0, %d)",
                     (long long)i, batch[i], n_batches);
    else
      cnt[batch[i]]++;
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc != CLUE_OK) goto done;
  clue_comm_sum_int64(comm, cnt, (size_t)n_batches);
  int64_t total = 0;
  *nv = 0;
  for (int b = 0; b < n_batches; b++) {
    total += cnt[b];
    map[b] = cnt[b] >= 2 ? (*nv)++ : -1;
  }
  if (*nv == 0) {
    if (total < 2) {
      rc = clue_fail(err, CLUE_EDATA,
                     "highly variable genes need at least 2 training cells (have %lld)",
                     (long long)total);
      goto done;
    }
    for (int b = 0; b < n_batches; b++) map[b] = 0;
    *nv = 1;
  }
  for (int b = 0; b < *nv; b++) n_cells[b] = 0;
  for (int b = 0; b < n_batches; b++)
    if (map[b] >= 0) n_cells[map[b]] += (double)cnt[b];
  for (int64_t i = 0; i < n_rows; i++) vb[i] = map[batch[i]];
done:
  free(cnt);
  free(map);
  return rc;
}

typedef struct hvg_work {
  int32_t *vb;     /* (n_rows) valid batch of each local row, −1 = left out */
  double *n_cells; /* (n_batches) cells of each valid batch */
  double *s1, *s2, *clip, *rvar, *c1, *c2, *cn; /* (nv × n_cols) each */
  int64_t *rank;   /* (nv × n_cols) */
} hvg_work;

static void hvg_work_free(hvg_work *w) {
  free(w->vb);
  free(w->n_cells);
  free(w->s1);
  free(w->s2);
  free(w->clip);
  free(w->rvar);
  free(w->c1);
  free(w->c2);
  free(w->cn);
  free(w->rank);
}

/* Allocates the per-batch arrays for nv valid batches. */
static int hvg_work_alloc(hvg_work *w, int nv, int64_t n_cols, clue_err *err) {
  size_t len = (size_t)nv * (size_t)n_cols;
  w->s1 = clue_malloc(len * sizeof(double), err);
  w->s2 = clue_malloc(len * sizeof(double), err);
  w->clip = clue_malloc(len * sizeof(double), err);
  w->rvar = clue_malloc(len * sizeof(double), err);
  w->c1 = clue_malloc(len * sizeof(double), err);
  w->c2 = clue_malloc(len * sizeof(double), err);
  w->cn = clue_malloc(len * sizeof(double), err);
  w->rank = clue_malloc(len * sizeof(int64_t), err);
  if (!w->s1 || !w->s2 || !w->clip || !w->rvar || !w->c1 || !w->c2 || !w->cn || !w->rank)
    return CLUE_ENOMEM;
  return CLUE_OK;
}

/* The loess trends of the nv valid batches: batch b on rank b mod size, then
 * broadcast, so every rank holds clip and rvar of every batch. */
static int hvg_trends(hvg_work *w, int nv, int64_t n_cols, const clue_comm *comm,
                      clue_err *err) {
  int rc = CLUE_OK;
  for (int b = 0; b < nv && rc == CLUE_OK; b++) {
    if (b % comm->size != comm->rank) continue;
    size_t off = (size_t)b * (size_t)n_cols;
    rc = hvg_trend(n_cols, w->n_cells[b], w->s1 + off, w->s2 + off, w->clip + off,
                   w->rvar + off, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc != CLUE_OK) return rc;
  for (int b = 0; b < nv; b++) {
    size_t off = (size_t)b * (size_t)n_cols;
    clue_comm_bcast(comm, w->clip + off, (size_t)n_cols * sizeof(double), b % comm->size);
    clue_comm_bcast(comm, w->rvar + off, (size_t)n_cols * sizeof(double), b % comm->size);
  }
  return CLUE_OK;
}

/* Every step after the valid batches are known (collective). */
static int hvg_run(const clue_csr *x, hvg_work *w, int nv, int64_t n_top,
                   const clue_comm *comm, int64_t *selected, clue_err *err) {
  int64_t n_cols = x->n_cols;
  int rc = clue_comm_agree(comm, hvg_work_alloc(w, nv, n_cols, err), err);
  if (rc != CLUE_OK) return rc;
  hvg_moments(x, w->vb, nv, comm, w->s1, w->s2);
  rc = hvg_trends(w, nv, n_cols, comm, err);
  if (rc != CLUE_OK) return rc;
  hvg_clipped(x, w->vb, nv, w->clip, comm, w->c1, w->c2, w->cn);
  for (int b = 0; b < nv && rc == CLUE_OK; b++) {
    size_t off = (size_t)b * (size_t)n_cols;
    rc = hvg_rank_batch(n_cols, w->n_cells[b], w->s1 + off, w->clip + off, w->rvar + off,
                        w->c1 + off, w->c2 + off, w->cn + off, w->rank + off, err);
  }
  if (rc == CLUE_OK) rc = hvg_combine(w->rank, nv, n_cols, n_top, selected, err);
  return clue_comm_agree(comm, rc, err);
}

int clue_hvg_seurat_v3(const clue_csr *x, const int32_t *batch, int n_batches,
                       int64_t n_top, const clue_comm *comm, int64_t **selected,
                       clue_err *err) {
  *selected = NULL;
  if (n_top < 1 || n_batches < 1)
    return clue_fail(err, CLUE_EINVAL,
                     "highly variable genes: need n_top >= 1 and n_batches >= 1 (got %lld, %d)",
                     (long long)n_top, n_batches);
  if (n_top > x->n_cols) n_top = x->n_cols;
  hvg_work w;
  memset(&w, 0, sizeof w);
  int64_t *sel = clue_malloc((size_t)n_top * sizeof *sel, err);
  w.vb = clue_malloc((size_t)x->n_rows * sizeof *w.vb, err);
  w.n_cells = clue_malloc((size_t)n_batches * sizeof *w.n_cells, err);
  int rc = (sel && w.vb && w.n_cells) ? CLUE_OK : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  int nv = 0;
  if (rc == CLUE_OK)
    rc = hvg_valid_batches(batch, x->n_rows, n_batches, comm, w.vb, w.n_cells, &nv, err);
  if (rc == CLUE_OK && n_top == x->n_cols) { /* all genes: nothing to rank */
    for (int64_t g = 0; g < n_top; g++) sel[g] = g;
  } else if (rc == CLUE_OK) {
    rc = hvg_run(x, &w, nv, n_top, comm, sel, err);
  }
  hvg_work_free(&w);
  if (rc != CLUE_OK) {
    free(sel);
    return rc;
  }
  *selected = sel;
  return CLUE_OK;
}
