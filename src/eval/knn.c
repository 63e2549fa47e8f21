/* knn.c — the exact all-pairs scan of knn.h: reference blocks travel around a
 * ring of ranks; each rank compares its query rows with each block in sgemm
 * tiles, then settles every decision the float32 distances cannot settle within
 * their error bound with the float64 direct formula (knn_exact_d2).
 *
 * Per tile (query rows I × reference rows J, 256 × 512 by default: the tile and
 * its products stay in the L2 cache) sgemm gives G = Q_I R_Jᵀ; one vectorised pass
 * per row then forms the float32 squared distances d = ‖q‖² + ‖r‖² − 2g and, as
 * asked, counts d against the partners' distances per row and per column (pair
 * counts) or screens top-k candidates per row and per column. Only the rare
 * undecided pairs and candidates leave that pass. A top-k list is a small array
 * kept sorted by (exact d², index). */
#include "clue/knn.h"
#include "clue/rowdist.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define KNN_TILE_ROWS 256
#define KNN_TILE_COLS 512
#define KNN_ALIGN 64
#define KNN_MSG_CHUNK ((size_t)1 << 30)

double knn_exact_d2(const float *a, const float *b, int64_t dim) {
  double s = 0;
  for (int64_t k = 0; k < dim; k++) {
    double t = (double)a[k] - (double)b[k];
    s += t * t;
  }
  return s;
}

void knn_block(int64_t n, int size, int rank, int64_t *begin, int64_t *count) {
  int64_t e;
  clue_block_range(n, size, rank, begin, &e);
  *count = e - *begin;
}

int knn_check_finite(const float *x, int64_t n, int64_t dim, int64_t row_offset,
                     const char *what, clue_err *err) {
  for (int64_t i = 0; i < n; i++)
    for (int64_t k = 0; k < dim; k++)
      if (!isfinite(x[i * dim + k]))
        return clue_fail(err, CLUE_ENUMERIC, "%s: row %lld, column %lld is %s", what,
                         (long long)(i + row_offset), (long long)k,
                         isnan(x[i * dim + k]) ? "NaN" : "infinite");
  return CLUE_OK;
}

/* ---- top-k lists: ascending (d², index), at most k entries ------------------ */

static inline int pair_less(double d, int64_t i, double d2, int64_t i2) {
  return d < d2 || (d == d2 && i < i2);
}

static void topk_insert(double *d, int64_t *idx, int32_t *count, int k, double dv,
                        int64_t iv) {
  int n = *count;
  if (n == k) {
    if (!pair_less(dv, iv, d[k - 1], idx[k - 1])) return;
    n = k - 1;
  } else {
    (*count)++;
  }
  int p = n;
  while (p > 0 && pair_less(dv, iv, d[p - 1], idx[p - 1])) {
    d[p] = d[p - 1];
    idx[p] = idx[p - 1];
    p--;
  }
  d[p] = dv;
  idx[p] = iv;
}

/* The float32 screen for a list: +inf until full, then worst + margin rounded up. */
static float topk_screen(const double *d, int32_t count, int k, double margin) {
  if (count < k) return INFINITY;
  return nextafterf((float)(d[k - 1] + margin), INFINITY);
}

/* ---- a travelling reference block ----------------------------------------- */

typedef struct block_layout {
  size_t x, t, group, cnt, hd, hi, hn, bytes;
} block_layout;

static size_t align_up(size_t v) { return (v + KNN_ALIGN - 1) / KNN_ALIGN * KNN_ALIGN; }

static block_layout layout_for(int64_t n, int64_t dim, const knn_opts *o, bool groups) {
  block_layout L;
  size_t at = 0, un = (size_t)n;
  L.x = at;
  at = align_up(at + un * (size_t)dim * sizeof(float));
  L.t = at;
  if (o->pair_counts) at = align_up(at + un * sizeof(double));
  L.group = at;
  if (groups) at = align_up(at + un * sizeof(int32_t));
  L.cnt = at;
  if (o->pair_counts) at = align_up(at + un * sizeof(int64_t));
  L.hd = at;
  if (o->k_col > 0) at = align_up(at + un * (size_t)o->k_col * sizeof(double));
  L.hi = at;
  if (o->k_col > 0) at = align_up(at + un * (size_t)o->k_col * sizeof(int64_t));
  L.hn = at;
  if (o->k_col > 0) at = align_up(at + un * sizeof(int32_t));
  L.bytes = at;
  return L;
}

/* Views into a block buffer (pointers are NULL for absent parts). */
typedef struct ref_view {
  int64_t begin, n;
  const float *x;  /* (n × dim) */
  float *nf;       /* (n) squared norms, float (scratch, computed per block) */
  const double *t; /* (n) partner squared distances */
  const int32_t *group;
  int64_t *cnt;    /* (n) column closer-counts */
  double *hd;      /* (n × k_col) */
  int64_t *hi;     /* (n × k_col) */
  int32_t *hn;     /* (n) */
} ref_view;

static ref_view view_of(char *buf, int64_t begin, int64_t n, int64_t dim,
                        const knn_opts *o, bool groups, float *nf) {
  block_layout L = layout_for(n, dim, o, groups);
  ref_view v = {.begin = begin, .n = n, .nf = nf};
  v.x = (const float *)(buf + L.x);
  v.t = o->pair_counts ? (const double *)(buf + L.t) : NULL;
  v.group = groups ? (const int32_t *)(buf + L.group) : NULL;
  v.cnt = o->pair_counts ? (int64_t *)(buf + L.cnt) : NULL;
  v.hd = o->k_col > 0 ? (double *)(buf + L.hd) : NULL;
  v.hi = o->k_col > 0 ? (int64_t *)(buf + L.hi) : NULL;
  v.hn = o->k_col > 0 ? (int32_t *)(buf + L.hn) : NULL;
  for (int64_t j = 0; j < n; j++) {
    double s = 0;
    const float *r = v.x + j * dim;
    for (int64_t k = 0; k < dim; k++) s += (double)r[k] * r[k];
    nf[j] = (float)s;
  }
  return v;
}

/* ---- the scan state of one rank ------------------------------------------- */

typedef struct scan_ctx {
  const knn_opts *o;
  int64_t dim;
  float c;              /* margin coefficient: |d_float − d_exact| ≤ c (‖q‖² + ‖r‖²) / 2 */
  const knn_points *q;
  float *qnf;           /* (q->n) squared norms */
  double *qt;           /* (q->n) partner squared distances (pair_counts) */
  double *rd;           /* (q->n × k_row) */
  int64_t *ri;          /* (q->n × k_row) */
  int32_t *rn;          /* (q->n) */
  int64_t *rcnt;        /* (q->n) */
  float *G;             /* (tile_rows × tile_cols) products q·r of the tile */
  float *lo, *hi;       /* (tile_cols) column thresholds: certain below / above */
  float *cthr;          /* (tile_cols) column top-k screens */
  int32_t *clo, *chi;   /* (tile_cols) column counts below lo / up to hi */
  knn_stats st;
} scan_ctx;

typedef struct tile {
  int64_t i0, ni, j0, nj;
  float qmax, rmax; /* largest squared norms in the tile's rows / columns */
} tile;

/* The float32 squared distance from a product g = q·r and the squared norms. */
static inline float tile_d(float g, float qn, float rn) { return fmaf(-2.0f, g, qn + rn); }

/* Pair counts. One pass per row computes float distances and counts, for the row
 * and for every column, those certainly below the partner's (d < lo) and those
 * not certainly above it (d ≤ hi); a difference means near ties, settled in
 * float64. */
static void tile_counts(scan_ctx *s, const ref_view *r, const tile *t) {
  const int64_t dim = s->dim, nj = t->nj;
  const float *rn = r->nf + t->j0;
  float *lo = s->lo, *hi = s->hi;
  int32_t *clo = s->clo, *chi = s->chi;
  for (int64_t j = 0; j < nj; j++) {
    double m = (double)s->c * ((double)t->qmax + rn[j]);
    lo[j] = (float)(r->t[t->j0 + j] - m);
    hi[j] = (float)(r->t[t->j0 + j] + m);
    clo[j] = 0;
    chi[j] = 0;
  }
  for (int64_t a = 0; a < t->ni; a++) {
    int64_t i = t->i0 + a;
    const float *g = s->G + a * nj, qn = s->qnf[i];
    double m = (double)s->c * ((double)qn + t->rmax);
    float rlo = (float)(s->qt[i] - m), rhi = (float)(s->qt[i] + m);
    int32_t below = 0, upto = 0;
    for (int64_t j = 0; j < nj; j++) {
      float v = tile_d(g[j], qn, rn[j]);
      below += v < rlo;
      upto += v <= rhi;
      clo[j] += v < lo[j];
      chi[j] += v <= hi[j];
    }
    int64_t n_below = below;
    if (upto > below) {
      const float *qi = s->q->x + i * dim;
      for (int64_t j = 0; j < nj; j++) {
        float v = tile_d(g[j], qn, rn[j]);
        if (v < rlo || v > rhi) continue;
        s->st.rechecks++;
        n_below += knn_exact_d2(qi, r->x + (t->j0 + j) * dim, dim) < s->qt[i];
      }
    }
    s->rcnt[i] += n_below;
  }
  for (int64_t j = 0; j < nj; j++) {
    int64_t n_below = clo[j], jj = t->j0 + j;
    if (chi[j] > clo[j])
      for (int64_t a = 0; a < t->ni; a++) {
        float v = tile_d(s->G[a * nj + j], s->qnf[t->i0 + a], rn[j]);
        if (v < lo[j] || v > hi[j]) continue;
        s->st.rechecks++;
        n_below += knn_exact_d2(s->q->x + (t->i0 + a) * dim, r->x + jj * dim, dim) < r->t[jj];
      }
    r->cnt[jj] += n_below;
  }
}

/* May reference row jj (global gj) be a neighbour of query row i (global gi)? */
static inline bool admissible(const scan_ctx *s, const ref_view *r, int64_t i, int64_t gi,
                              int64_t jj, int64_t gj) {
  if (s->o->exclude_self && gi == gj) return false;
  if (r->group && r->group[jj] != s->q->group[i]) return false;
  return true;
}

/* Row top-k of query row i from its products g with the tile's columns. */
static void row_candidates(scan_ctx *s, const ref_view *r, const tile *t, int64_t i,
                           const float *g, double m) {
  const int64_t dim = s->dim, gi = s->q->begin + i;
  const int k = s->o->k_row;
  double *hd = s->rd + i * k;
  int64_t *hi = s->ri + i * k;
  float thr = topk_screen(hd, s->rn[i], k, m), qn = s->qnf[i];
  const float *qi = s->q->x + i * dim, *rn = r->nf + t->j0;
  for (int64_t j = 0; j < t->nj; j++) {
    if (!(tile_d(g[j], qn, rn[j]) <= thr)) continue;
    int64_t jj = t->j0 + j, gj = r->begin + jj;
    if (!admissible(s, r, i, gi, jj, gj)) continue;
    s->st.candidates++;
    topk_insert(hd, hi, &s->rn[i], k, knn_exact_d2(qi, r->x + jj * dim, dim), gj);
    thr = topk_screen(hd, s->rn[i], k, m);
  }
}

/* Column top-k updates from query row i (products g with the tile's columns). */
static void col_candidates(scan_ctx *s, const ref_view *r, const tile *t, int64_t i,
                           const float *g) {
  const int64_t dim = s->dim, gi = s->q->begin + i;
  const int k = s->o->k_col;
  float *thr = s->cthr, qn = s->qnf[i];
  const float *qi = s->q->x + i * dim, *rn = r->nf + t->j0;
  for (int64_t j = 0; j < t->nj; j++) {
    if (!(tile_d(g[j], qn, rn[j]) <= thr[j])) continue;
    int64_t jj = t->j0 + j, gj = r->begin + jj;
    if (!admissible(s, r, i, gi, jj, gj)) continue;
    s->st.candidates++;
    double *hd = r->hd + jj * k;
    topk_insert(hd, r->hi + jj * k, &r->hn[jj], k, knn_exact_d2(qi, r->x + jj * dim, dim), gi);
    double m = (double)s->c * ((double)t->qmax + r->nf[jj]);
    thr[j] = topk_screen(hd, r->hn[jj], k, m);
  }
}

/* Top-k screening. One pass per row computes float distances and checks whether
 * any may enter the row's list or a column's list; the rare candidates are then
 * recomputed in float64. */
static void tile_topk(scan_ctx *s, const ref_view *r, const tile *t) {
  const int64_t nj = t->nj;
  const float *rn = r->nf + t->j0;
  const bool rows = s->o->k_row > 0, cols = s->o->k_col > 0;
  float *cthr = s->cthr;
  for (int64_t j = 0; j < nj && cols; j++) {
    int64_t jj = t->j0 + j;
    double m = (double)s->c * ((double)t->qmax + rn[j]);
    cthr[j] = topk_screen(r->hd + jj * s->o->k_col, r->hn[jj], s->o->k_col, m);
  }
  for (int64_t j = 0; j < nj && !cols; j++) cthr[j] = -INFINITY;
  for (int64_t a = 0; a < t->ni; a++) {
    int64_t i = t->i0 + a;
    const float *g = s->G + a * nj, qn = s->qnf[i];
    double m = (double)s->c * ((double)qn + t->rmax);
    float thr = rows ? topk_screen(s->rd + i * s->o->k_row, s->rn[i], s->o->k_row, m)
                     : -INFINITY;
    int any_row = 0, any_col = 0;
    for (int64_t j = 0; j < nj; j++) {
      float v = tile_d(g[j], qn, rn[j]);
      any_row |= v <= thr;
      any_col |= v <= cthr[j];
    }
    if (any_row) row_candidates(s, r, t, i, g, m);
    if (any_col) col_candidates(s, r, t, i, g);
  }
}

static float max_of(const float *v, int64_t n) {
  float m = 0;
  for (int64_t i = 0; i < n; i++) m = v[i] > m ? v[i] : m;
  return m;
}

/* One tile: sgemm, then the asked-for epilogues. */
static void scan_tile(scan_ctx *s, const ref_view *r, tile *t) {
  const int64_t dim = s->dim;
  double t0 = MPI_Wtime();
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)t->ni, (int)t->nj, (int)dim,
              1.0f, s->q->x + t->i0 * dim, (int)dim, r->x + t->j0 * dim, (int)dim, 0.0f,
              s->G, (int)t->nj);
  double t1 = MPI_Wtime();
  t->qmax = max_of(s->qnf + t->i0, t->ni);
  t->rmax = max_of(r->nf + t->j0, t->nj);
  if (s->o->pair_counts) tile_counts(s, r, t);
  if (s->o->k_row > 0 || s->o->k_col > 0) tile_topk(s, r, t);
  s->st.pairs += (double)t->ni * (double)t->nj;
  s->st.t_gemm += t1 - t0;
  s->st.t_scan += MPI_Wtime() - t1;
}

static void scan_block(scan_ctx *s, const ref_view *r, int64_t tr, int64_t tc) {
  for (int64_t j0 = 0; j0 < r->n; j0 += tc)
    for (int64_t i0 = 0; i0 < s->q->n; i0 += tr) {
      tile t = {.i0 = i0, .ni = s->q->n - i0 < tr ? s->q->n - i0 : tr,
                .j0 = j0, .nj = r->n - j0 < tc ? r->n - j0 : tc};
      scan_tile(s, r, &t);
    }
}

/* ---- ring ----------------------------------------------------------------- */

/* Sends `sbytes` of sbuf to rank `to` while receiving `rbytes` into rbuf from
 * `from`. A message travels as ⌈bytes / chunk⌉ pieces (at least one) so that
 * counts fit MPI's int; sender and receiver agree on the sizes. */
static int ring_shift(const clue_comm *c, const char *sbuf, size_t sbytes, int to, char *rbuf,
                      size_t rbytes, int from, clue_err *err) {
  size_t ns = sbytes / KNN_MSG_CHUNK + 1, nr = rbytes / KNN_MSG_CHUNK + 1;
  MPI_Request *req = clue_malloc((ns + nr) * sizeof *req, err);
  if (!req) return CLUE_ENOMEM;
  int rc = MPI_SUCCESS;
  for (size_t p = 0; p < nr; p++) {
    size_t at = p * KNN_MSG_CHUNK, n = rbytes - at < KNN_MSG_CHUNK ? rbytes - at : KNN_MSG_CHUNK;
    if (rc == MPI_SUCCESS)
      rc = MPI_Irecv(rbuf + at, (int)n, MPI_BYTE, from, 7, c->comm, &req[p]);
  }
  for (size_t p = 0; p < ns; p++) {
    size_t at = p * KNN_MSG_CHUNK, n = sbytes - at < KNN_MSG_CHUNK ? sbytes - at : KNN_MSG_CHUNK;
    if (rc == MPI_SUCCESS)
      rc = MPI_Isend(sbuf + at, (int)n, MPI_BYTE, to, 7, c->comm, &req[nr + p]);
  }
  if (rc == MPI_SUCCESS) rc = MPI_Waitall((int)(ns + nr), req, MPI_STATUSES_IGNORE);
  free(req);
  if (rc != MPI_SUCCESS)
    return clue_fail(err, CLUE_EMPI, "passing reference blocks between ranks failed");
  return CLUE_OK;
}

/* Fills the home block buffer from this rank's reference rows. */
static void block_fill(char *buf, const knn_points *q, const knn_points *r,
                       const knn_opts *o) {
  block_layout L = layout_for(r->n, r->dim, o, r->group != NULL);
  memcpy(buf + L.x, r->x, (size_t)r->n * (size_t)r->dim * sizeof(float));
  if (o->pair_counts) {
    double *t = (double *)(buf + L.t);
    for (int64_t j = 0; j < r->n; j++)
      t[j] = knn_exact_d2(q->x + j * q->dim, r->x + j * r->dim, r->dim);
    memset(buf + L.cnt, 0, (size_t)r->n * sizeof(int64_t));
  }
  if (r->group) memcpy(buf + L.group, r->group, (size_t)r->n * sizeof(int32_t));
  if (o->k_col > 0) memset(buf + L.hn, 0, (size_t)r->n * sizeof(int32_t));
}

/* ---- set-up, checks and results ------------------------------------------- */

typedef struct ring_info {
  int64_t *rbeg, *rcnt; /* (size) reference blocks of every rank */
  int64_t nmax;
} ring_info;

static int check_inputs(const knn_points *q, const knn_points *r, const knn_opts *o,
                        const clue_comm *c, ring_info *ri, clue_err *err) {
  int64_t mine[6] = {q->begin, q->n, r->begin, r->n, q->dim, r->dim};
  int64_t *all = clue_malloc(sizeof mine * (size_t)c->size, err);
  int rc = all ? CLUE_OK : CLUE_ENOMEM;
  rc = clue_comm_agree(c, rc, err);
  if (rc) {
    free(all);
    return rc;
  }
  MPI_Allgather(mine, 6, MPI_INT64_T, all, 6, MPI_INT64_T, c->comm);
  int64_t qat = 0, rat = 0;
  for (int p = 0; p < c->size && rc == CLUE_OK; p++) {
    const int64_t *a = all + 6 * p;
    if (a[0] != qat || a[2] != rat || a[1] < 0 || a[3] < 0)
      rc = clue_fail(err, CLUE_EINVAL, "knn scan: rank %d's blocks do not follow rank %d's",
                     p, p - 1);
    else if (a[4] != q->dim || a[5] != q->dim)
      rc = clue_fail(err, CLUE_EINVAL,
                     "knn scan: the point sets have different dimensions (%lld and %lld)",
                     (long long)a[4], (long long)a[5]);
    else if ((o->pair_counts || o->exclude_self) && (a[0] != a[2] || a[1] != a[3]))
      rc = clue_fail(err, CLUE_EINVAL,
                     "knn scan: pair counts and self-exclusion need paired sets split "
                     "alike over ranks");
    qat += a[1];
    rat += a[3];
  }
  if (rc == CLUE_OK && (qat != q->n_total || rat != r->n_total))
    rc = clue_fail(err, CLUE_EINVAL, "knn scan: blocks cover %lld / %lld rows, expected "
                   "%lld / %lld", (long long)qat, (long long)rat, (long long)q->n_total,
                   (long long)r->n_total);
  if (rc == CLUE_OK && (o->k_row < 0 || o->k_col < 0))
    rc = clue_fail(err, CLUE_EINVAL, "knn scan: negative k");
  if (rc == CLUE_OK && (double)q->dim * 0x1p-24 > 0.25)
    rc = clue_fail(err, CLUE_EINVAL, "knn scan: dimension %lld is too large",
                   (long long)q->dim);
  if (rc == CLUE_OK && ((q->group == NULL) != (r->group == NULL) ||
                        (q->group && o->pair_counts)))
    rc = clue_fail(err, CLUE_EINVAL,
                   "knn scan: groups must be given for both sets and not with pair counts");
  if (rc == CLUE_OK) {
    ri->rbeg = clue_malloc(sizeof(int64_t) * (size_t)c->size, err);
    ri->rcnt = clue_malloc(sizeof(int64_t) * (size_t)c->size, err);
    if (!ri->rbeg || !ri->rcnt) rc = CLUE_ENOMEM;
  }
  rc = clue_comm_agree(c, rc, err);
  if (rc == CLUE_OK) {
    ri->nmax = 0;
    for (int p = 0; p < c->size; p++) {
      ri->rbeg[p] = all[6 * p + 2];
      ri->rcnt[p] = all[6 * p + 3];
      ri->nmax = ri->rcnt[p] > ri->nmax ? ri->rcnt[p] : ri->nmax;
    }
  }
  free(all);
  return rc;
}

void knn_result_free(knn_result *r) {
  if (!r) return;
  free(r->row_idx);
  free(r->row_d2);
  free(r->col_idx);
  free(r->col_d2);
  free(r->row_closer);
  free(r->col_closer);
  free(r);
}

static knn_result *result_new(const knn_points *q, const knn_points *r, const knn_opts *o,
                              clue_err *err) {
  knn_result *res = clue_calloc(1, sizeof *res, err);
  if (!res) return NULL;
  res->n_rows = q->n;
  res->n_cols = r->n;
  res->k_row = o->k_row;
  res->k_col = o->k_col;
  bool ok = true;
  if (o->k_row > 0) {
    size_t m = (size_t)q->n * (size_t)o->k_row;
    ok &= (res->row_idx = clue_malloc(m * sizeof(int64_t), err)) != NULL;
    ok &= (res->row_d2 = clue_malloc(m * sizeof(double), err)) != NULL;
  }
  if (o->k_col > 0) {
    size_t m = (size_t)r->n * (size_t)o->k_col;
    ok &= (res->col_idx = clue_malloc(m * sizeof(int64_t), err)) != NULL;
    ok &= (res->col_d2 = clue_malloc(m * sizeof(double), err)) != NULL;
  }
  if (o->pair_counts) {
    ok &= (res->row_closer = clue_calloc((size_t)q->n, sizeof(int64_t), err)) != NULL;
    ok &= (res->col_closer = clue_calloc((size_t)r->n, sizeof(int64_t), err)) != NULL;
  }
  if (!ok) {
    knn_result_free(res);
    return NULL;
  }
  return res;
}

/* Copies sorted lists into result arrays, padding with −1 / +inf. */
static void lists_out(const double *hd, const int64_t *hi, const int32_t *hn, int64_t n,
                      int k, double *d2, int64_t *idx) {
  for (int64_t i = 0; i < n; i++)
    for (int a = 0; a < k; a++) {
      bool have = a < hn[i];
      d2[i * k + a] = have ? hd[i * k + a] : INFINITY;
      idx[i * k + a] = have ? hi[i * k + a] : -1;
    }
}

static int ctx_init(scan_ctx *s, const knn_points *q, const knn_opts *o, int64_t tr,
                    int64_t tc, clue_err *err) {
  memset(s, 0, sizeof *s);
  s->o = o;
  s->q = q;
  s->dim = q->dim;
  double u = 0x1p-24, gamma = (double)q->dim * u / (1.0 - (double)q->dim * u);
  s->c = (float)(2.0 * (gamma + 6.0 * u));
  size_t n = (size_t)q->n, k = (size_t)o->k_row;
  bool ok = true;
  ok &= (s->qnf = clue_malloc(n * sizeof(float), err)) != NULL;
  ok &= (s->G = clue_malloc((size_t)tr * (size_t)tc * sizeof(float), err)) != NULL;
  ok &= (s->lo = clue_malloc((size_t)tc * sizeof(float), err)) != NULL;
  ok &= (s->hi = clue_malloc((size_t)tc * sizeof(float), err)) != NULL;
  ok &= (s->cthr = clue_malloc((size_t)tc * sizeof(float), err)) != NULL;
  ok &= (s->clo = clue_malloc((size_t)tc * sizeof(int32_t), err)) != NULL;
  ok &= (s->chi = clue_malloc((size_t)tc * sizeof(int32_t), err)) != NULL;
  ok &= (s->rd = clue_malloc(n * k * sizeof(double), err)) != NULL;
  ok &= (s->ri = clue_malloc(n * k * sizeof(int64_t), err)) != NULL;
  ok &= (s->rn = clue_calloc(n, sizeof(int32_t), err)) != NULL;
  ok &= (s->qt = clue_malloc(n * sizeof(double), err)) != NULL;
  ok &= (s->rcnt = clue_calloc(n, sizeof(int64_t), err)) != NULL;
  if (!ok) return CLUE_ENOMEM;
  for (int64_t i = 0; i < q->n; i++) {
    double v = 0;
    for (int64_t kk = 0; kk < q->dim; kk++) v += (double)q->x[i * q->dim + kk] * q->x[i * q->dim + kk];
    s->qnf[i] = (float)v;
  }
  return CLUE_OK;
}

static void ctx_free(scan_ctx *s) {
  free(s->qnf);
  free(s->G);
  free(s->lo);
  free(s->hi);
  free(s->cthr);
  free(s->clo);
  free(s->chi);
  free(s->rd);
  free(s->ri);
  free(s->rn);
  free(s->qt);
  free(s->rcnt);
}

/* The ring proper: P steps, each scanning the block at hand and passing it on. */
static int ring_run(scan_ctx *s, const knn_points *q, const knn_points *r, const ring_info *ri,
                    char **cur, char **next, float *nf, int64_t tr, int64_t tc,
                    const clue_comm *c, clue_err *err) {
  const knn_opts *o = s->o;
  bool groups = r->group != NULL, col_results = o->pair_counts || o->k_col > 0;
  int P = c->size, left = (c->rank + P - 1) % P, right = (c->rank + 1) % P;
  for (int step = 0; step < P; step++) {
    int b = (c->rank + step) % P, nb = (b + 1) % P;
    ref_view v = view_of(*cur, ri->rbeg[b], ri->rcnt[b], r->dim, o, groups, nf);
    if (o->pair_counts && b == c->rank)
      for (int64_t i = 0; i < q->n; i++) s->qt[i] = v.t[i];
    scan_block(s, &v, tr, tc);
    if (P == 1 || (step == P - 1 && !col_results)) continue;
    double t0 = MPI_Wtime();
    block_layout Ls = layout_for(ri->rcnt[b], r->dim, o, groups);
    block_layout Lr = layout_for(ri->rcnt[nb], r->dim, o, groups);
    int rc = ring_shift(c, *cur, Ls.bytes, left, *next, Lr.bytes, right, err);
    if (rc) return rc;
    char *tmp = *cur;
    *cur = *next;
    *next = tmp;
    s->st.t_comm += MPI_Wtime() - t0;
  }
  return CLUE_OK;
}

int knn_scan(const knn_points *query, const knn_points *ref, const knn_opts *opts,
             const clue_comm *comm, knn_result **out, clue_err *err) {
  *out = NULL;
  ring_info ri = {0};
  int rc = check_inputs(query, ref, opts, comm, &ri, err);
  if (rc) {
    free(ri.rbeg);
    free(ri.rcnt);
    return rc;
  }
  int64_t tr = opts->tile_rows > 0 ? opts->tile_rows : KNN_TILE_ROWS;
  int64_t tc = opts->tile_cols > 0 ? opts->tile_cols : KNN_TILE_COLS;
  bool groups = ref->group != NULL;
  block_layout L = layout_for(ri.nmax, ref->dim, opts, groups);
  scan_ctx s;
  rc = ctx_init(&s, query, opts, tr, tc, err);
  char *cur = rc ? NULL : clue_malloc(L.bytes, err);
  char *next = cur ? clue_malloc(L.bytes, err) : NULL;
  float *nf = next ? clue_malloc((size_t)ri.nmax * sizeof(float) + 1, err) : NULL;
  knn_result *res = nf ? result_new(query, ref, opts, err) : NULL;
  if (rc == CLUE_OK && !res) rc = CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) {
    block_fill(cur, query, ref, opts);
    rc = ring_run(&s, query, ref, &ri, &cur, &next, nf, tr, tc, comm, err);
    rc = clue_comm_agree(comm, rc, err);
  }
  if (rc == CLUE_OK) {
    if (opts->k_row > 0)
      lists_out(s.rd, s.ri, s.rn, query->n, opts->k_row, res->row_d2, res->row_idx);
    ref_view v = view_of(cur, ref->begin, ref->n, ref->dim, opts, groups, nf);
    if (opts->k_col > 0)
      lists_out(v.hd, v.hi, v.hn, ref->n, opts->k_col, res->col_d2, res->col_idx);
    if (opts->pair_counts) {
      memcpy(res->row_closer, s.rcnt, (size_t)query->n * sizeof(int64_t));
      memcpy(res->col_closer, v.cnt, (size_t)ref->n * sizeof(int64_t));
    }
    res->stats = s.st;
    *out = res;
  } else {
    knn_result_free(res);
  }
  ctx_free(&s);
  free(cur);
  free(next);
  free(nf);
  free(ri.rbeg);
  free(ri.rcnt);
  return rc;
}
