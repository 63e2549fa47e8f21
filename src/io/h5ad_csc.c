/* h5ad_csc.c — the slow path for csc_matrix X or layers.
 *
 * A CSC file stores columns, so the rows of a shard are scattered over the
 * whole of data/indices. Every rank streams through all of `indices` in chunks
 * (the same chunks on every rank, collective reads), keeps the positions that
 * fall in its rows, and reads only those positions of `data` (a union of
 * ranges). Per-row counts split the indices over the ranks and add up the
 * counts. Memory stays at one chunk plus the shard; reading takes one pass
 * over the indices per call. */
#include <stdlib.h>
#include <string.h>

#include "h5ad_internal.h"

/* Triplets of the shard: local row, column, value (growable). */
typedef struct triplets {
  int64_t n, cap;
  int64_t *row;
  int32_t *col;
  float *val;
} triplets;

static int triplets_reserve(triplets *t, int64_t more) {
  if (t->n + more <= t->cap) return 0;
  int64_t cap = t->cap ? t->cap : 1024;
  while (cap < t->n + more) cap *= 2;
  int64_t *r = realloc(t->row, (size_t)cap * sizeof *r);
  if (r) t->row = r;
  int32_t *c = realloc(t->col, (size_t)cap * sizeof *c);
  if (c) t->col = c;
  float *v = realloc(t->val, (size_t)cap * sizeof *v);
  if (v) t->val = v;
  if (!r || !c || !v) return -1;
  t->cap = cap;
  return 0;
}

static void triplets_free(triplets *t) {
  free(t->row);
  free(t->col);
  free(t->val);
}

/* Entries of indices streamed at a time (at most 4M: 32 MB per buffer). */
static int64_t csc_chunk_size(const h5ad_file *f, int64_t n) {
  int64_t c = f->read_limit < ((int64_t)1 << 22) ? f->read_limit : ((int64_t)1 << 22);
  if (c > n) c = n;
  return c > 0 ? c : 1;
}

/* Collective. Reads the whole indptr (n_cols + 1) and checks it. */
static int read_col_ptr(h5ad_file *f, h5ad_matrix *m, int64_t **out, clue_err *err) {
  int64_t nc = m->info.n_cols, b = 0, e = nc + 1;
  int64_t *p = clue_malloc((size_t)(nc + 1) * sizeof *p, err);
  int rc = clue_comm_agree(&f->comm, p ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(p);
    return rc;
  }
  rc = h5ad__read_ranges(f, m->indptr, m->name, H5T_NATIVE_INT64, sizeof *p, 1, &b, &e, 1,
                         p, err);
  for (int64_t j = 0; rc == CLUE_OK && j < nc; j++)
    if (p[j + 1] < p[j] || p[j + 1] > m->info.nnz)
      rc = clue_fail(err, CLUE_EFORMAT,
                     "%s: %s/indptr (csc) is not monotone within [0, %lld] at column "
                     "%lld (%lld then %lld)",
                     f->path, m->name, (long long)m->info.nnz, (long long)j,
                     (long long)p[j], (long long)p[j + 1]);
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc) {
    free(p);
    return rc;
  }
  *out = p;
  return CLUE_OK;
}

static int bad_row(const h5ad_file *f, const h5ad_matrix *m, int64_t row, int64_t at,
                   clue_err *err) {
  return clue_fail(err, CLUE_EFORMAT,
                   "%s: %s/indices (csc) holds row %lld at position %lld, outside [0, "
                   "%lld)",
                   f->path, m->name, (long long)row, (long long)at,
                   (long long)m->info.n_rows);
}

int h5ad__csc_row_nnz(h5ad_file *f, h5ad_matrix *m, int64_t *row_nnz, clue_err *err) {
  const clue_comm *c = &f->comm;
  int64_t nnz = m->info.nnz, nr = m->info.n_rows;
  int64_t per = (nnz + c->size - 1) / c->size;
  int64_t lo = per * c->rank < nnz ? per * c->rank : nnz;
  int64_t hi = lo + per < nnz ? lo + per : nnz;
  int64_t chunk = csc_chunk_size(f, per);
  int64_t rounds = (per + chunk - 1) / chunk;
  int64_t *idx = clue_malloc((size_t)chunk * sizeof *idx, err);
  int rc = clue_comm_agree(c, idx ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(idx);
    return rc;
  }
  memset(row_nnz, 0, (size_t)nr * sizeof *row_nnz);
  for (int64_t r = 0; r < rounds; r++) {
    int64_t b = lo + r * chunk < hi ? lo + r * chunk : hi;
    int64_t e = b + chunk < hi ? b + chunk : hi;
    int st = h5ad__read_ranges(f, m->indices, m->name, H5T_NATIVE_INT64, sizeof *idx, 1,
                               &b, &e, e > b ? 1 : 0, idx, err);
    if (rc == CLUE_OK) rc = st;
    for (int64_t j = 0; rc == CLUE_OK && j < e - b; j++) {
      if (idx[j] < 0 || idx[j] >= nr)
        rc = bad_row(f, m, idx[j], b + j, err);
      else
        row_nnz[idx[j]]++;
    }
  }
  free(idx);
  rc = clue_comm_agree(c, rc, err);
  if (rc == CLUE_OK) clue_comm_sum_int64(c, row_nnz, (size_t)nr);
  return rc;
}

/* One chunk [b, e) of the stream: keeps the entries of requested rows. */
static int csc_chunk(h5ad_file *f, h5ad_matrix *m, const int64_t *map,
                     const int64_t *colptr, int64_t *col, int64_t b, int64_t e,
                     int64_t *idx, int64_t *pb, int64_t *pe, triplets *t, clue_err *err) {
  int rc = h5ad__read_ranges(f, m->indices, m->name, H5T_NATIVE_INT64, sizeof *idx, 1, &b,
                             &e, e > b ? 1 : 0, idx, err);
  int64_t nr = 0, want = 0;
  for (int64_t j = 0; rc == CLUE_OK && j < e - b; j++) {
    if (idx[j] < 0 || idx[j] >= m->info.n_rows) {
      rc = bad_row(f, m, idx[j], b + j, err);
    } else if (map[idx[j]] >= 0) {
      want++;
      if (nr > 0 && pe[nr - 1] == b + j)
        pe[nr - 1]++;
      else {
        pb[nr] = b + j;
        pe[nr++] = b + j + 1;
      }
    }
  }
  if (rc == CLUE_OK && triplets_reserve(t, want) < 0)
    rc = clue_fail(err, CLUE_ENOMEM, "out of memory reading %s", m->name);
  if (rc) nr = 0;
  float *vals = (rc || !t->val) ? NULL : t->val + t->n;
  int st = h5ad__read_ranges(f, m->data, m->name, H5T_NATIVE_FLOAT, sizeof(float), 1, pb,
                             pe, nr, vals, err);
  if (rc == CLUE_OK) rc = st;
  for (int64_t j = 0; rc == CLUE_OK && j < e - b; j++) {
    while (colptr[*col + 1] <= b + j) (*col)++;
    if (map[idx[j]] < 0) continue;
    t->row[t->n] = map[idx[j]];
    t->col[t->n++] = (int32_t)*col;
  }
  return rc;
}

/* The shard's triplets as CSR rows (columns ascending: the stream is in
 * column order and the counting sort is stable). */
static int triplets_to_csr(const triplets *t, int64_t n, int64_t n_cols, clue_csr **out,
                           clue_err *err) {
  clue_csr *x = clue_csr_new(n, n_cols, t->n, err);
  if (!x) return CLUE_ENOMEM;
  for (int64_t j = 0; j < t->n; j++) x->indptr[t->row[j] + 1]++;
  for (int64_t i = 0; i < n; i++) x->indptr[i + 1] += x->indptr[i];
  int64_t *fill = clue_malloc((size_t)(n + 1) * sizeof *fill, err);
  if (!fill) {
    clue_csr_free(x);
    return CLUE_ENOMEM;
  }
  memcpy(fill, x->indptr, (size_t)(n + 1) * sizeof *fill);
  for (int64_t j = 0; j < t->n; j++) {
    int64_t at = fill[t->row[j]]++;
    x->indices[at] = t->col[j];
    x->data[at] = t->val[j];
  }
  free(fill);
  if (h5ad__csr_canonical(x) < 0) {
    clue_csr_free(x);
    return clue_fail(err, CLUE_ENOMEM, "out of memory sorting rows");
  }
  *out = x;
  return CLUE_OK;
}

int h5ad__csc_read_rows(h5ad_file *f, h5ad_matrix *m, const int64_t *rows, int64_t n,
                        clue_csr **out, clue_err *err) {
  const clue_comm *c = &f->comm;
  int64_t *colptr = NULL;
  int rc = read_col_ptr(f, m, &colptr, err);
  if (rc) return rc;
  int64_t nnz = m->info.nnz, chunk = csc_chunk_size(f, nnz);
  int64_t *map = clue_malloc((size_t)m->info.n_rows * sizeof *map, err);
  int64_t *idx = clue_malloc((size_t)chunk * sizeof *idx, err);
  int64_t *pb = clue_malloc((size_t)chunk * sizeof *pb, err);
  int64_t *pe = clue_malloc((size_t)chunk * sizeof *pe, err);
  triplets t = {0};
  if (!map || !idx || !pb || !pe) rc = CLUE_ENOMEM;
  for (int64_t i = 0; map && i < m->info.n_rows; i++) map[i] = -1;
  for (int64_t i = 0; map && i < n; i++) map[rows[i]] = i;
  rc = clue_comm_agree(c, rc, err);
  int64_t col = 0;
  for (int64_t b = 0; rc == CLUE_OK && b < nnz; b += chunk) {
    int64_t e = b + chunk < nnz ? b + chunk : nnz;
    int st = csc_chunk(f, m, map, colptr, &col, b, e, idx, pb, pe, &t, err);
    rc = clue_comm_agree(c, st, err);
  }
  if (rc == CLUE_OK)
    rc = clue_comm_agree(c, triplets_to_csr(&t, n, m->info.n_cols, out, err), err);
  if (rc && *out) {
    clue_csr_free(*out);
    *out = NULL;
  }
  triplets_free(&t);
  free(colptr);
  free(map);
  free(idx);
  free(pb);
  free(pe);
  return rc;
}
