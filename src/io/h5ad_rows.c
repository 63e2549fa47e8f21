/* h5ad_rows.c — reading rows of X or a layer, collectively, each rank only
 * its own rows: for CSR the indptr entries of its runs of consecutive rows,
 * then the union of the matching ranges of data and indices (adjacent ranges
 * merged); for a dense array the union of its row blocks. Structure is
 * checked on the way (indptr monotone and within data, indices in range), and
 * every failure is agreed across ranks before the next collective call. */
#include <stdlib.h>
#include <string.h>

#include "h5ad_internal.h"

/* Runs of consecutive row numbers: run r is file rows [lo[r], hi[r]). */
typedef struct row_runs {
  int64_t n;
  int64_t *lo, *hi; /* (n) */
} row_runs;

static void runs_free(row_runs *r) {
  free(r->lo);
  free(r->hi);
}

static int runs_build(const int64_t *rows, int64_t n, row_runs *r, clue_err *err) {
  r->n = 0;
  r->lo = clue_malloc((size_t)n * sizeof *r->lo, err);
  r->hi = clue_malloc((size_t)n * sizeof *r->hi, err);
  if (!r->lo || !r->hi) return CLUE_ENOMEM;
  for (int64_t i = 0; i < n; i++) {
    if (r->n > 0 && r->hi[r->n - 1] == rows[i]) {
      r->hi[r->n - 1]++;
    } else {
      r->lo[r->n] = rows[i];
      r->hi[r->n] = rows[i] + 1;
      r->n++;
    }
  }
  return CLUE_OK;
}

/* Checks the indptr pieces of the runs (ip holds hi−lo+1 entries per run):
 * non-decreasing within and across runs, within [0, nnz]. */
static int check_indptr(const h5ad_file *f, const h5ad_matrix *m, const row_runs *r,
                        const int64_t *ip, clue_err *err) {
  int64_t prev = 0, prev_row = 0;
  for (int64_t q = 0; q < r->n; q++) {
    int64_t len = r->hi[q] - r->lo[q];
    if (ip[0] < prev)
      return clue_fail(err, CLUE_EFORMAT,
                       "%s: %s/indptr is not monotone: row %lld starts at %lld, before "
                       "the end of row %lld (%lld)",
                       f->path, m->name, (long long)r->lo[q], (long long)ip[0],
                       (long long)prev_row, (long long)prev);
    for (int64_t j = 0; j < len; j++)
      if (ip[j + 1] < ip[j])
        return clue_fail(err, CLUE_EFORMAT,
                         "%s: %s/indptr decreases at row %lld (%lld then %lld)", f->path,
                         m->name, (long long)(r->lo[q] + j), (long long)ip[j],
                         (long long)ip[j + 1]);
    if (ip[len] > m->info.nnz)
      return clue_fail(
          err, CLUE_EFORMAT,
          "%s: %s/indptr reaches %lld at row %lld but data holds %lld values", f->path,
          m->name, (long long)ip[len], (long long)r->hi[q], (long long)m->info.nnz);
    prev = ip[len];
    prev_row = r->hi[q] - 1;
    ip += len + 1;
  }
  return CLUE_OK;
}

/* Checks that every column index of out is in range (rows[] for messages). */
static int check_indices(const h5ad_file *f, const h5ad_matrix *m, const clue_csr *out,
                         const int64_t *rows, clue_err *err) {
  for (int64_t i = 0; i < out->n_rows; i++)
    for (int64_t j = out->indptr[i]; j < out->indptr[i + 1]; j++)
      if (out->indices[j] < 0 || out->indices[j] >= out->n_cols)
        return clue_fail(err, CLUE_EFORMAT,
                         "%s: %s/indices holds column %d in row %lld, outside [0, %lld)",
                         f->path, m->name, out->indices[j], (long long)rows[i],
                         (long long)out->n_cols);
  return CLUE_OK;
}

/* Ranges of data/indices covering the runs (empty ones dropped, adjacent merged). */
static int64_t data_ranges(const row_runs *r, const int64_t *ip, int64_t *b, int64_t *e) {
  int64_t nd = 0;
  for (int64_t q = 0; q < r->n; q++) {
    int64_t len = r->hi[q] - r->lo[q];
    if (ip[len] > ip[0]) {
      if (nd > 0 && e[nd - 1] == ip[0]) {
        e[nd - 1] = ip[len];
      } else {
        b[nd] = ip[0];
        e[nd] = ip[len];
        nd++;
      }
    }
    ip += len + 1;
  }
  return nd;
}

/* Collective. The CSR rows: indptr pieces, then data and indices. */
static int csr_read_rows(h5ad_file *f, h5ad_matrix *m, const int64_t *rows, int64_t n,
                         clue_csr **out, clue_err *err) {
  const clue_comm *c = &f->comm;
  row_runs r = {0};
  int64_t *ip = NULL, *pb = NULL, *pe = NULL, nd = 0;
  clue_csr *x = NULL;
  int rc = runs_build(rows, n, &r, err);
  if (rc == CLUE_OK) {
    ip = clue_malloc((size_t)(n + r.n) * sizeof *ip, err);
    pb = clue_malloc((size_t)(r.n + 1) * sizeof *pb, err);
    pe = clue_malloc((size_t)(r.n + 1) * sizeof *pe, err);
    if (!ip || !pb || !pe) rc = CLUE_ENOMEM;
  }
  for (int64_t q = 0; rc == CLUE_OK && q < r.n; q++) {
    pb[q] = r.lo[q];
    pe[q] = r.hi[q] + 1;
  }
  rc = clue_comm_agree(c, rc, err);
  if (rc) goto done;
  rc = h5ad__read_ranges(f, m->indptr, m->name, H5T_NATIVE_INT64, sizeof *ip, 1, pb, pe,
                         r.n, ip, err);
  if (rc == CLUE_OK) rc = check_indptr(f, m, &r, ip, err);
  if (rc == CLUE_OK) {
    nd = data_ranges(&r, ip, pb, pe);
    int64_t nnz = 0;
    for (int64_t q = 0; q < nd; q++) nnz += pe[q] - pb[q];
    x = clue_csr_new(n, m->info.n_cols, nnz, err);
    if (!x) rc = CLUE_ENOMEM;
  }
  rc = clue_comm_agree(c, rc, err);
  if (rc) goto done;
  int rc1 = h5ad__read_ranges(f, m->indices, m->name, H5T_NATIVE_INT32,
                              sizeof *x->indices, 1, pb, pe, nd, x->indices, err);
  int rc2 = h5ad__read_ranges(f, m->data, m->name, H5T_NATIVE_FLOAT, sizeof *x->data, 1,
                              pb, pe, nd, x->data, err);
  rc = rc1 ? rc1 : rc2;
  if (rc == CLUE_OK) {
    const int64_t *p = ip;
    int64_t k = 0;
    for (int64_t q = 0; q < r.n; q++) {
      int64_t len = r.hi[q] - r.lo[q];
      for (int64_t j = 0; j < len; j++, k++)
        x->indptr[k + 1] = x->indptr[k] + p[j + 1] - p[j];
      p += len + 1;
    }
    rc = check_indices(f, m, x, rows, err);
  }
  if (rc == CLUE_OK && h5ad__csr_canonical(x) < 0)
    rc = clue_fail(err, CLUE_ENOMEM, "out of memory sorting the rows of %s", m->name);
  rc = clue_comm_agree(c, rc, err);
done:
  runs_free(&r);
  free(ip);
  free(pb);
  free(pe);
  if (rc)
    clue_csr_free(x);
  else
    *out = x;
  return rc;
}

/* Collective. Dense rows, read as row blocks and kept as CSR (zeros dropped). */
static int dense_read_rows(h5ad_file *f, h5ad_matrix *m, const int64_t *rows, int64_t n,
                           clue_csr **out, clue_err *err) {
  row_runs r = {0};
  int64_t w = m->info.n_cols;
  float *buf = NULL;
  clue_csr *x = NULL;
  int rc = runs_build(rows, n, &r, err);
  if (rc == CLUE_OK && !(buf = clue_malloc((size_t)(n * w) * sizeof *buf, err)))
    rc = CLUE_ENOMEM;
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc == CLUE_OK) {
    rc = h5ad__read_ranges(f, m->data, m->name, H5T_NATIVE_FLOAT, sizeof *buf, w, r.lo,
                           r.hi, r.n, buf, err);
    int64_t nnz = 0;
    for (int64_t i = 0; rc == CLUE_OK && i < n * w; i++) nnz += buf[i] != 0.0f;
    if (rc == CLUE_OK && !(x = clue_csr_new(n, w, nnz, err))) rc = CLUE_ENOMEM;
    for (int64_t i = 0, k = 0; rc == CLUE_OK && i < n; i++) {
      for (int64_t j = 0; j < w; j++) {
        float v = buf[i * w + j];
        if (v == 0.0f) continue;
        x->indices[k] = (int32_t)j;
        x->data[k++] = v;
      }
      x->indptr[i + 1] = k;
    }
    rc = clue_comm_agree(&f->comm, rc, err);
  }
  runs_free(&r);
  free(buf);
  if (rc)
    clue_csr_free(x);
  else
    *out = x;
  return rc;
}

/* Checks the requested rows: strictly ascending, within [0, n_rows). */
static int check_rows(const h5ad_file *f, const h5ad_matrix *m, const int64_t *rows,
                      int64_t n, clue_err *err) {
  for (int64_t i = 0; i < n; i++)
    if (rows[i] < 0 || rows[i] >= m->info.n_rows || (i > 0 && rows[i] <= rows[i - 1]))
      return clue_fail(err, CLUE_EINVAL,
                       "%s: reading %s: row %lld requested at position %lld is out of "
                       "range or not ascending",
                       f->path, m->name, (long long)rows[i], (long long)i);
  return CLUE_OK;
}

int h5ad_read_rows(h5ad_file *f, const char *layer, const int64_t *rows, int64_t n,
                   clue_csr **out, clue_err *err) {
  *out = NULL;
  h5ad_matrix m;
  int rc = h5ad__matrix_open(f, layer, &m, err);
  if (rc == CLUE_OK) rc = check_rows(f, &m, rows, n, err);
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc) {
    h5ad__matrix_close(&m);
    return rc;
  }
  if (m.info.kind == H5AD_CSR)
    rc = csr_read_rows(f, &m, rows, n, out, err);
  else if (m.info.kind == H5AD_DENSE)
    rc = dense_read_rows(f, &m, rows, n, out, err);
  else
    rc = h5ad__csc_read_rows(f, &m, rows, n, out, err);
  h5ad__matrix_close(&m);
  return rc;
}

/* Collective. row_nnz (NULL on ranks that do not read) ← lengths of rows
 * [s.begin, s.end) from indptr[s.begin .. s.end], validated; only ranks passing
 * row_nnz and a non-empty span read the indptr. */
static int csr_row_nnz(h5ad_file *f, h5ad_matrix *m, h5ad_span s, int64_t *row_nnz,
                       clue_err *err) {
  int64_t n = row_nnz ? h5ad__span_length(s) : 0;
  int64_t *ip = clue_malloc((size_t)(n + 1) * sizeof *ip, err);
  int rc = clue_comm_agree(&f->comm, ip ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(ip);
    return rc;
  }
  int64_t b = s.begin, e = s.begin + n + 1;
  rc = h5ad__read_ranges(f, m->indptr, m->name, H5T_NATIVE_INT64, sizeof *ip, 1, &b, &e,
                         n > 0 ? 1 : 0, ip, err);
  int64_t hi = s.begin + n;
  row_runs span = {.n = n > 0 ? 1 : 0, .lo = &b, .hi = &hi};
  if (rc == CLUE_OK) rc = check_indptr(f, m, &span, ip, err);
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) row_nnz[i] = ip[i + 1] - ip[i];
  free(ip);
  return clue_comm_agree(&f->comm, rc, err);
}

/* Collective. Lengths of rows s into v by the matrix's layout (v NULL: this
 * rank wants none; for CSC, v holds n_rows entries on every rank, as the pass
 * counts every row, and the span is moved to its front). */
static int span_row_nnz(h5ad_file *f, h5ad_matrix *m, h5ad_span s, int64_t *v,
                        clue_err *err) {
  if (m->info.kind == H5AD_CSR) return csr_row_nnz(f, m, s, v, err);
  int64_t n = h5ad__span_length(s);
  if (m->info.kind == H5AD_DENSE) {
    for (int64_t i = 0; v && i < n; i++) v[i] = m->info.n_cols;
    return CLUE_OK;
  }
  int rc = h5ad__csc_row_nnz(f, m, v, err); /* every rank takes part in the pass */
  if (rc == CLUE_OK && n > 0) memmove(v, v + s.begin, (size_t)n * sizeof *v);
  return rc;
}

/* Collective. Lengths of rows s (whole: every row) of this rank. */
static int read_row_nnz(h5ad_file *f, const char *layer, bool whole, h5ad_span s,
                        int64_t **row_nnz, clue_err *err) {
  *row_nnz = NULL;
  h5ad_matrix m;
  int rc = h5ad__matrix_open(f, layer, &m, err);
  if (rc == CLUE_OK && whole) s = (h5ad_span){0, m.info.n_rows};
  if (rc == CLUE_OK && !whole) {
    char what[CLUE_PATH_MAX + CLUE_NAME_MAX + 32];
    snprintf(what, sizeof what, "%s: %s", f->path, m.name);
    rc = h5ad__check_span(what, s, m.info.n_rows, err);
  }
  bool csc = rc == CLUE_OK && m.info.kind != H5AD_CSR && m.info.kind != H5AD_DENSE;
  int64_t n = csc ? m.info.n_rows : h5ad__span_length(s);
  int64_t *v = NULL;
  if (rc == CLUE_OK && !(v = clue_malloc((size_t)(n + 1) * sizeof *v, err))) rc = CLUE_ENOMEM;
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc == CLUE_OK) rc = span_row_nnz(f, &m, s, v, err);
  h5ad__matrix_close(&m);
  if (rc) {
    free(v);
    return rc;
  }
  *row_nnz = v;
  return CLUE_OK;
}

int h5ad_read_row_nnz(h5ad_file *f, const char *layer, int64_t **row_nnz, clue_err *err) {
  return read_row_nnz(f, layer, true, (h5ad_span){0, 0}, row_nnz, err);
}

int h5ad_read_row_nnz_range(h5ad_file *f, const char *layer, int64_t begin, int64_t end,
                            int64_t **row_nnz, clue_err *err) {
  return read_row_nnz(f, layer, false, (h5ad_span){begin, end}, row_nnz, err);
}

typedef struct col_val {
  int32_t col;
  float val;
} col_val;

static int col_val_cmp(const void *a, const void *b) {
  int32_t x = ((const col_val *)a)->col, y = ((const col_val *)b)->col;
  return (x > y) - (x < y);
}

/* Sorts row i (length len at offset at) by column and sums duplicates in place;
 * returns the new length. */
static int64_t canonical_row(clue_csr *m, int64_t at, int64_t len, col_val *tmp) {
  for (int64_t j = 0; j < len; j++) {
    tmp[j].col = m->indices[at + j];
    tmp[j].val = m->data[at + j];
  }
  qsort(tmp, (size_t)len, sizeof *tmp, col_val_cmp);
  int64_t k = 0;
  for (int64_t j = 0; j < len; j++) {
    if (k > 0 && tmp[k - 1].col == tmp[j].col)
      tmp[k - 1].val += tmp[j].val;
    else
      tmp[k++] = tmp[j];
  }
  for (int64_t j = 0; j < k; j++) {
    m->indices[at + j] = tmp[j].col;
    m->data[at + j] = tmp[j].val;
  }
  return k;
}

int64_t h5ad__csr_canonical(clue_csr *m) {
  bool sorted = true;
  for (int64_t i = 0; sorted && i < m->n_rows; i++)
    for (int64_t j = m->indptr[i] + 1; j < m->indptr[i + 1]; j++)
      if (m->indices[j] <= m->indices[j - 1]) sorted = false;
  if (sorted) return clue_csr_nnz(m);
  int64_t longest = 0;
  for (int64_t i = 0; i < m->n_rows; i++)
    if (m->indptr[i + 1] - m->indptr[i] > longest)
      longest = m->indptr[i + 1] - m->indptr[i];
  col_val *tmp = malloc((size_t)(longest > 0 ? longest : 1) * sizeof *tmp);
  if (!tmp) return -1;
  int64_t w = 0;
  for (int64_t i = 0; i < m->n_rows; i++) {
    int64_t b = m->indptr[i], len = m->indptr[i + 1] - b;
    if (b != w) {
      memmove(m->indices + w, m->indices + b, (size_t)len * sizeof *m->indices);
      memmove(m->data + w, m->data + b, (size_t)len * sizeof *m->data);
    }
    m->indptr[i] = w;
    w += canonical_row(m, w, len, tmp);
  }
  m->indptr[m->n_rows] = w;
  free(tmp);
  return w;
}
