/* matching.c — snn matching (see matching.h): four exact kNN graphs from ring
 * scans, all-gathered as index lists, then per query row the shared-neighbour
 * counts S through the reverse lists of the reference side's graphs, the Jaccard
 * index and the row normalisation. */
#include "clue/matching.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

float *match_normalize(const float *x, int64_t n, int64_t dim, clue_err *err) {
  float *y = clue_malloc((size_t)n * (size_t)dim * sizeof *y + 1, err);
  if (!y) return NULL;
  for (int64_t i = 0; i < n; i++) {
    const float *a = x + i * dim;
    double s = 0;
    for (int64_t k = 0; k < dim; k++) s += (double)a[k] * a[k];
    double inv = s > 0 ? 1.0 / sqrt(s) : 0.0;
    for (int64_t k = 0; k < dim; k++) y[i * dim + k] = (float)(a[k] * inv);
  }
  return y;
}

void match_graphs_free(match_graphs *g) {
  if (!g) return;
  free(g->x2y);
  free(g->y2x);
  free(g->x2x);
  free(g->y2y);
  free(g->x_any);
  free(g->y_any);
  free(g);
}

/* Collective. All ranks' rows (k int64 each) in rank order, on every rank. */
static int gather_rows(const int64_t *local, int64_t n_local, int k, int64_t n_total,
                       const clue_comm *c, int64_t **out, clue_err *err) {
  int rc = CLUE_OK;
  *out = clue_malloc((size_t)n_total * (size_t)k * sizeof(int64_t) + 1, err);
  int *counts = clue_malloc(sizeof(int) * (size_t)c->size, err);
  int *displ = clue_malloc(sizeof(int) * (size_t)c->size, err);
  if (!*out || !counts || !displ) rc = CLUE_ENOMEM;
  rc = clue_comm_agree(c, rc, err);
  if (rc == CLUE_OK) {
    int mine = (int)n_local;
    MPI_Allgather(&mine, 1, MPI_INT, counts, 1, MPI_INT, c->comm);
    for (int p = 0, at = 0; p < c->size; p++) {
      displ[p] = at;
      at += counts[p];
    }
    MPI_Datatype row;
    MPI_Type_contiguous(k, MPI_INT64_T, &row);
    MPI_Type_commit(&row);
    MPI_Allgatherv(local, mine, row, *out, counts, displ, row, c->comm);
    MPI_Type_free(&row);
  } else {
    free(*out);
    *out = NULL;
  }
  free(counts);
  free(displ);
  return rc;
}

/* Local rows of a within-side graph: the point itself, then its k − 1 nearest. */
static int64_t *self_first(const knn_result *r, int64_t begin, int64_t n, int k,
                           clue_err *err) {
  int64_t *g = clue_malloc((size_t)n * (size_t)k * sizeof *g + 1, err);
  if (!g) return NULL;
  for (int64_t i = 0; i < n; i++) {
    g[i * k] = begin + i;
    for (int a = 1; a < k; a++) g[i * k + a] = r->row_idx[i * (k - 1) + a - 1];
  }
  return g;
}

static void stats_add(knn_stats *a, const knn_stats *b) {
  a->pairs += b->pairs;
  a->rechecks += b->rechecks;
  a->candidates += b->candidates;
  a->t_gemm += b->t_gemm;
  a->t_scan += b->t_scan;
  a->t_comm += b->t_comm;
}

/* Collective. N_x(x_i) for every x (self first), all-gathered. */
static int within_side(const knn_points *p, int k, const clue_comm *c, int64_t **all,
                       knn_stats *st, clue_err *err) {
  knn_result *r = NULL;
  int rc = CLUE_OK;
  if (k > 1) {
    knn_opts o = {.k_row = k - 1, .exclude_self = true};
    rc = knn_scan(p, p, &o, c, &r, err);
    if (rc) return rc;
    stats_add(st, &r->stats);
  }
  int64_t *loc = NULL;
  if (k > 1) {
    loc = self_first(r, p->begin, p->n, k, err);
  } else {
    loc = clue_malloc((size_t)p->n * sizeof *loc + 1, err);
    for (int64_t i = 0; loc && i < p->n; i++) loc[i] = p->begin + i;
  }
  rc = clue_comm_agree(c, loc ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = gather_rows(loc, p->n, k, p->n_total, c, all, err);
  free(loc);
  knn_result_free(r);
  return rc;
}

/* Collective. The fallback partners (nearest cell of any group) where needed. */
static int fallbacks(match_graphs *g, const knn_points *x, const knn_points *y,
                     const clue_comm *c, clue_err *err) {
  bool need = false;
  for (int64_t i = 0; i < g->n_x; i++) need |= g->x2y[i * g->k] < 0;
  for (int64_t j = 0; j < g->n_y; j++) need |= g->y2x[j * g->k] < 0;
  if (!need) return CLUE_OK;
  knn_points xa = *x, ya = *y;
  xa.group = NULL;
  ya.group = NULL;
  knn_opts o = {.k_row = 1, .k_col = 1};
  knn_result *r = NULL;
  int rc = knn_scan(&xa, &ya, &o, c, &r, err);
  if (rc) return rc;
  stats_add(&g->stats, &r->stats);
  rc = gather_rows(r->row_idx, r->n_rows, 1, g->n_x, c, &g->x_any, err);
  if (rc == CLUE_OK) rc = gather_rows(r->col_idx, r->n_cols, 1, g->n_y, c, &g->y_any, err);
  knn_result_free(r);
  if (rc) return rc;
  for (int64_t i = 0; i < g->n_x; i++)
    if (g->x2y[i * g->k] >= 0) g->x_any[i] = -1;
  for (int64_t j = 0; j < g->n_y; j++)
    if (g->y2x[j * g->k] >= 0) g->y_any[j] = -1;
  return CLUE_OK;
}

int match_graphs_build(const knn_points *x, const knn_points *y, int k,
                       const clue_comm *comm, match_graphs **out, clue_err *err) {
  *out = NULL;
  int rc = CLUE_OK;
  if (k < 1 || k > MATCH_MAX_NNZ)
    rc = clue_fail(err, CLUE_EINVAL, "snn matching: k = %d, expected 1..%d", k,
                   MATCH_MAX_NNZ);
  else if (x->n_total < 1 || y->n_total < 1)
    rc = clue_fail(err, CLUE_EINVAL, "snn matching: a side has no cells");
  else if (y->n_total > INT32_MAX || x->n_total > INT32_MAX)
    rc = clue_fail(err, CLUE_EINVAL, "snn matching: more than 2^31 cells on a side");
  match_graphs *g = rc ? NULL : clue_calloc(1, sizeof *g, err);
  float *xn = g ? match_normalize(x->x, x->n, x->dim, err) : NULL;
  float *yn = xn ? match_normalize(y->x, y->n, y->dim, err) : NULL;
  if (rc == CLUE_OK && !yn) rc = CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  knn_points X = *x, Y = *y;
  X.x = xn;
  Y.x = yn;
  knn_result *xy = NULL;
  if (rc == CLUE_OK) {
    g->k = k;
    g->n_x = x->n_total;
    g->n_y = y->n_total;
    knn_opts o = {.k_row = k, .k_col = k};
    rc = knn_scan(&X, &Y, &o, comm, &xy, err);
  }
  if (rc == CLUE_OK) {
    stats_add(&g->stats, &xy->stats);
    rc = gather_rows(xy->row_idx, xy->n_rows, k, g->n_x, comm, &g->x2y, err);
  }
  if (rc == CLUE_OK) rc = gather_rows(xy->col_idx, xy->n_cols, k, g->n_y, comm, &g->y2x, err);
  knn_result_free(xy);
  if (rc == CLUE_OK) rc = within_side(&X, k, comm, &g->x2x, &g->stats, err);
  if (rc == CLUE_OK) rc = within_side(&Y, k, comm, &g->y2y, &g->stats, err);
  if (rc == CLUE_OK) rc = fallbacks(g, &X, &Y, comm, err);
  free(xn);
  free(yn);
  if (rc) {
    match_graphs_free(g);
    return rc;
  }
  *out = g;
  return CLUE_OK;
}

/* ---- prediction rows ------------------------------------------------------ */

/* The reverse of a graph: for each target m in [0, n_targets), the sources j
 * (ascending) whose list contains m. */
typedef struct rev_lists {
  int64_t *ptr; /* (n_targets + 1) */
  int64_t *src; /* (ptr[n_targets]) */
} rev_lists;

static int rev_build(const int64_t *lists, int64_t n_src, int k, int64_t n_targets,
                     rev_lists *r, clue_err *err) {
  r->ptr = clue_calloc((size_t)n_targets + 1, sizeof(int64_t), err);
  r->src = clue_malloc((size_t)n_src * (size_t)k * sizeof(int64_t) + 1, err);
  if (!r->ptr || !r->src) return CLUE_ENOMEM;
  for (int64_t j = 0; j < n_src * k; j++)
    if (lists[j] >= 0) r->ptr[lists[j] + 1]++;
  for (int64_t m = 0; m < n_targets; m++) r->ptr[m + 1] += r->ptr[m];
  int64_t *fill = clue_malloc((size_t)n_targets * sizeof(int64_t) + 1, err);
  if (!fill) return CLUE_ENOMEM;
  memcpy(fill, r->ptr, (size_t)n_targets * sizeof(int64_t));
  for (int64_t j = 0; j < n_src; j++)
    for (int a = 0; a < k; a++) {
      int64_t m = lists[j * k + a];
      if (m >= 0) r->src[fill[m]++] = j;
    }
  free(fill);
  return CLUE_OK;
}

static void rev_free(rev_lists *r) {
  free(r->ptr);
  free(r->src);
}

/* A growable CSR under construction. */
typedef struct csr_builder {
  int64_t cap, nnz;
  int32_t *idx;
  float *val;
} csr_builder;

static int builder_reserve(csr_builder *b, int64_t extra, clue_err *err) {
  if (b->nnz + extra <= b->cap) return CLUE_OK;
  int64_t cap = b->cap * 2 > b->nnz + extra ? b->cap * 2 : b->nnz + extra + 1024;
  int32_t *i = realloc(b->idx, (size_t)cap * sizeof *i);
  if (i) b->idx = i;
  float *v = realloc(b->val, (size_t)cap * sizeof *v);
  if (v) b->val = v;
  if (!i || !v) return clue_fail(err, CLUE_ENOMEM, "out of memory building the prediction");
  b->cap = cap;
  return CLUE_OK;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* (S, column) pairs: larger S first, then the smaller column. */
typedef struct s_entry {
  int64_t col, s;
} s_entry;

static int cmp_s_desc(const void *a, const void *b) {
  const s_entry *x = a, *y = b;
  if (x->s != y->s) return (x->s < y->s) - (x->s > y->s);
  return (x->col > y->col) - (x->col < y->col);
}

static int cmp_col(const void *a, const void *b) {
  const s_entry *x = a, *y = b;
  return (x->col > y->col) - (x->col < y->col);
}

typedef struct side {
  int64_t nq, nr;
  const int64_t *q2r, *q2q, *r2r, *r2q, *any;
} side;

/* Scratch for one row: candidate columns with multiplicity, then (col, S). */
typedef struct row_scratch {
  int64_t cap;
  int64_t *cand;
  s_entry *ent;
} row_scratch;

static int scratch_reserve(row_scratch *w, int64_t n, clue_err *err) {
  if (n <= w->cap) return CLUE_OK;
  int64_t cap = n > 2 * w->cap ? n : 2 * w->cap;
  int64_t *c = realloc(w->cand, (size_t)cap * sizeof *c);
  if (c) w->cand = c;
  s_entry *e = realloc(w->ent, (size_t)cap * sizeof *e);
  if (e) w->ent = e;
  if (!c || !e) return clue_fail(err, CLUE_ENOMEM, "out of memory building the prediction");
  w->cap = cap;
  return CLUE_OK;
}

/* Appends row gi's entries to b; returns 1 when the fallback was used. */
static int snn_row(const side *sd, int k, const rev_lists *rr, const rev_lists *rq,
                   int64_t gi, int max_nnz, row_scratch *w, csr_builder *b, clue_err *err) {
  int64_t n = 0;
  for (int a = 0; a < k; a++) {
    int64_t m = sd->q2r[gi * k + a], m2 = sd->q2q[gi * k + a];
    if (m >= 0) n += rr->ptr[m + 1] - rr->ptr[m];
    if (m2 >= 0) n += rq->ptr[m2 + 1] - rq->ptr[m2];
  }
  int rc = scratch_reserve(w, n + 1, err);
  if (rc == CLUE_OK) rc = builder_reserve(b, n + 1, err);
  if (rc) return rc;
  int64_t at = 0;
  for (int a = 0; a < k; a++) {
    int64_t m = sd->q2r[gi * k + a], m2 = sd->q2q[gi * k + a];
    for (int64_t p = m >= 0 ? rr->ptr[m] : 0; m >= 0 && p < rr->ptr[m + 1]; p++)
      w->cand[at++] = rr->src[p];
    for (int64_t p = m2 >= 0 ? rq->ptr[m2] : 0; m2 >= 0 && p < rq->ptr[m2 + 1]; p++)
      w->cand[at++] = rq->src[p];
  }
  if (at == 0) {
    int64_t f = sd->any ? sd->any[gi] : -1;
    if (f < 0)
      return clue_fail(err, CLUE_EINVAL, "snn matching: row %lld has no candidate and no "
                       "fallback partner", (long long)gi);
    b->idx[b->nnz] = (int32_t)f;
    b->val[b->nnz++] = 1.0f;
    return 1;
  }
  qsort(w->cand, (size_t)at, sizeof *w->cand, cmp_i64);
  int64_t ne = 0;
  for (int64_t p = 0; p < at; p++) {
    if (ne > 0 && w->ent[ne - 1].col == w->cand[p])
      w->ent[ne - 1].s++;
    else
      w->ent[ne++] = (s_entry){.col = w->cand[p], .s = 1};
  }
  if (ne > max_nnz) {
    qsort(w->ent, (size_t)ne, sizeof *w->ent, cmp_s_desc);
    ne = max_nnz;
    qsort(w->ent, (size_t)ne, sizeof *w->ent, cmp_col);
  }
  double total = 0;
  for (int64_t p = 0; p < ne; p++) total += (double)w->ent[p].s / (double)(4 * k - w->ent[p].s);
  for (int64_t p = 0; p < ne; p++) {
    double jac = (double)w->ent[p].s / (double)(4 * k - w->ent[p].s);
    b->idx[b->nnz] = (int32_t)w->ent[p].col;
    b->val[b->nnz++] = (float)(jac / total);
  }
  return 0;
}

int match_snn_rows(const match_graphs *g, match_side query, int64_t row_begin,
                   int64_t n_rows, int max_nnz, clue_csr **out, int64_t *n_fallback,
                   clue_err *err) {
  *out = NULL;
  side sd;
  if (query == MATCH_X_QUERY)
    sd = (side){g->n_x, g->n_y, g->x2y, g->x2x, g->y2y, g->y2x, g->x_any};
  else
    sd = (side){g->n_y, g->n_x, g->y2x, g->y2y, g->x2x, g->x2y, g->y_any};
  if (max_nnz < 1 || max_nnz > MATCH_MAX_NNZ || row_begin < 0 || n_rows < 0 ||
      row_begin + n_rows > sd.nq)
    return clue_fail(err, CLUE_EINVAL, "snn matching: bad rows [%lld, %lld) or max_nnz %d",
                     (long long)row_begin, (long long)(row_begin + n_rows), max_nnz);
  rev_lists rr = {0}, rq = {0};
  row_scratch w = {0};
  csr_builder b = {0};
  clue_csr *m = NULL;
  int64_t fell = 0;
  int rc = rev_build(sd.r2r, sd.nr, g->k, sd.nr, &rr, err);
  if (rc == CLUE_OK) rc = rev_build(sd.r2q, sd.nr, g->k, sd.nq, &rq, err);
  if (rc == CLUE_OK) {
    m = clue_csr_new(n_rows, sd.nr, 0, err);
    if (!m) rc = CLUE_ENOMEM;
  }
  for (int64_t i = 0; rc == CLUE_OK && i < n_rows; i++) {
    int r = snn_row(&sd, g->k, &rr, &rq, row_begin + i, max_nnz, &w, &b, err);
    if (r < 0) rc = r;
    fell += r > 0;
    m->indptr[i + 1] = b.nnz;
  }
  rev_free(&rr);
  rev_free(&rq);
  free(w.cand);
  free(w.ent);
  if (rc) {
    free(b.idx);
    free(b.val);
    clue_csr_free(m);
    return rc;
  }
  free(m->indices);
  free(m->data);
  m->indices = b.idx ? b.idx : clue_malloc(1, err);
  m->data = b.val ? b.val : clue_malloc(1, err);
  if (!m->indices || !m->data) {
    clue_csr_free(m);
    return CLUE_ENOMEM;
  }
  if (n_fallback) *n_fallback = fell;
  *out = m;
  return CLUE_OK;
}
