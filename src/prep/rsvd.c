/* rsvd.c — randomized SVD (Halko, Martinsson & Tropp 2011, subspace iteration)
 * of a tall matrix whose rows are spread over MPI ranks and produced in blocks,
 * so that the matrix never exists whole.
 *
 * The tall side (n_cells × l) is never stored either: every pass over the rows
 * computes, block by block, Y_b = A_b·Z and accumulates both W = Aᵀ·Y = AᵀA·Z
 * (n_cols × l) and the Gram matrix G = YᵀY (l × l); both are summed over ranks.
 *
 *   Z ← orth(Ω), Ω (n_cols × l, l = k + oversample) standard normal, drawn from
 *       the counter-based generator by column index: the same on every rank and
 *       for any number of ranks;
 *   n_iter times: Z ← orth(AᵀA·Z)            (power iterations)
 *   last pass:    W = AᵀA·Z, G = (AZ)ᵀ(AZ).
 * With G = U Λ Uᵀ, Q = A·Z·U·Λ^{-1/2} is an orthonormal basis of range(A·Z)
 * (Cholesky-QR in its eigen form, which also reveals rank: directions with
 * λ ≤ 1e-10·λ_max are dropped), and B = QᵀA = Λ^{-1/2}·Uᵀ·Wᵀ (r × n_cols) — the
 * matrix Halko's algorithm decomposes — is formed without touching A again.
 * The right singular vectors and values of A are those of B (LAPACK dgesdd).
 * orth() of the small replicated n_cols × l matrices is a Householder QR
 * (dgeqrf/dorgqr), unconditionally stable, done on rank 0 and broadcast.
 *
 * Each power iteration costs one pass (two products with A), like one step
 * of Halko's Algorithm 4.4; the products are done in double precision (dgemm on
 * dense blocks converted from float; for CSR input, blocks of 1024 rows
 * regrouped by column so that each row of Z and W is touched once per block),
 * so that results depend on the number of ranks only through the order of sums.
 * When A has rank r < k, the missing columns of V complete an orthonormal basis
 * (Householder) and get singular value 0.
 *
 * A third source is A = C + 1·oᵀ, sparse rows plus one constant row o (the
 * standardised counts of PCA: a zero count has the same value in every cell):
 * per block Y_b = C_b·Z + 1·(oᵀZ) and AᵀY gets C_bᵀ·Y_b per block plus o·(Σ rows
 * of Y)ᵀ once per pass, so no dense row is ever formed. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/prep.h"
#include "clue/rng.h"

/* LAPACK (Fortran) prototypes; the trailing size_t are the hidden lengths of
 * the character arguments. */
extern void dgeqrf_(const int *m, const int *n, double *a, const int *lda, double *tau,
                    double *work, const int *lwork, int *info);
extern void dorgqr_(const int *m, const int *n, const int *k, double *a, const int *lda,
                    const double *tau, double *work, const int *lwork, int *info);
extern void dsyevd_(const char *jobz, const char *uplo, const int *n, double *a,
                    const int *lda, double *w, double *work, const int *lwork, int *iwork,
                    const int *liwork, int *info, size_t jobz_len, size_t uplo_len);
extern void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda,
                    double *s, double *u, const int *ldu, double *vt, const int *ldvt,
                    double *work, const int *lwork, int *iwork, int *info,
                    size_t jobz_len);

#define RSVD_RANK_TOL 1e-10
#define RSVD_BLOCK_ELEMS ((int64_t)1 << 22)

/* The matrix: dense rows from a callback, a local CSR, or sparse rows from a
 * callback plus a constant row (A = C + 1·offsetᵀ). */
typedef struct rsvd_src {
  clue_rows_fn rows;
  void *ctx;
  const clue_csr *csr;
  clue_sparse_rows_fn srows;
  const double *offset; /* (n_cols) with srows */
  int64_t n_local, n_cols;
  int64_t block;  /* rows per block */
  float *fblock;  /* (block × n_cols) dense only */
  double *dblock; /* (block × n_cols) dense only */
  double *y;      /* (block × l) */
  int64_t *cptr;  /* (n_cols + 1) sparse only: the block by column (CSC) */
  int32_t *crow;  /* (largest block nnz) row within the block */
  double *cval;   /* (largest block nnz) */
  int64_t *bptr;  /* (block + 1) srows only: the block by row */
  int32_t *bidx;  /* (largest block nnz) */
  double *bval;   /* (largest block nnz) */
  double *rz;     /* (l) srows only: offsetᵀ·Z */
  double *ysum;   /* (l) srows only: Σ of the rows of Y over the pass */
} rsvd_src;

/* Dense block: Y = D·Z and W += Dᵀ·Y. */
static int rsvd_block_dense(rsvd_src *s, int64_t b0, int64_t nb, const double *z, int l,
                            double *w, clue_err *err) {
  int64_t n_cols = s->n_cols;
  int rc = s->rows(s->ctx, b0, b0 + nb, s->fblock, err);
  if (rc != CLUE_OK) return rc;
  size_t len = (size_t)nb * (size_t)n_cols;
  for (size_t i = 0; i < len; i++) s->dblock[i] = s->fblock[i];
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nb, l, (int)n_cols, 1.0,
              s->dblock, (int)n_cols, z, l, 0.0, s->y, l);
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)n_cols, l, (int)nb, 1.0,
              s->dblock, (int)n_cols, s->y, l, 1.0, w, l);
  return CLUE_OK;
}

/* y += v · z over l values (no aliasing, so it vectorises). */
static inline void rsvd_axpy(int l, double v, const double *restrict z, double *restrict y) {
  for (int c = 0; c < l; c++) y[c] += v * z[c];
}

/* A block of nb rows by row (row pointers ptr[0 … nb] into the column idx and
 * value fval or dval of each entry) regrouped by column (counting sort), so that
 * each row of z and w is touched once per block. */
static void rsvd_block_csc(rsvd_src *s, int64_t nb, const int64_t *ptr, const int32_t *idx,
                           const float *fval, const double *dval) {
  int64_t *cp = s->cptr, p0 = ptr[0];
  memset(cp, 0, (size_t)(s->n_cols + 1) * sizeof *cp);
  for (int64_t e = p0; e < ptr[nb]; e++) cp[idx[e] + 1]++;
  for (int64_t j = 0; j < s->n_cols; j++) cp[j + 1] += cp[j];
  for (int64_t i = 0; i < nb; i++)
    for (int64_t e = ptr[i]; e < ptr[i + 1]; e++) {
      int64_t at = cp[idx[e]]++;
      s->crow[at] = (int32_t)i;
      s->cval[at] = dval ? dval[e] : fval[e];
    }
  for (int64_t j = s->n_cols; j > 0; j--) cp[j] = cp[j - 1]; /* undo the shift */
  cp[0] = 0;
}

/* Sparse block (already regrouped by column): Y = A_b·Z column by column (z_j
 * read once, y in cache), then W += A_bᵀ·Y column by column (w_j written
 * once). With an offset row, Y starts from offsetᵀ·Z in every row and the sum
 * of Y's rows is kept for the offset's share of W (added once per pass). */
static void rsvd_block_sparse(rsvd_src *s, int64_t nb, const double *z, int l, double *w) {
  const int64_t *cp = s->cptr;
  if (s->offset)
    for (int64_t i = 0; i < nb; i++) memcpy(s->y + i * l, s->rz, (size_t)l * sizeof *s->y);
  else
    memset(s->y, 0, (size_t)nb * (size_t)l * sizeof *s->y);
  for (int64_t j = 0; j < s->n_cols; j++)
    for (int64_t e = cp[j]; e < cp[j + 1]; e++)
      rsvd_axpy(l, s->cval[e], z + (size_t)j * (size_t)l, s->y + (size_t)s->crow[e] * (size_t)l);
  for (int64_t j = 0; j < s->n_cols; j++)
    for (int64_t e = cp[j]; e < cp[j + 1]; e++)
      rsvd_axpy(l, s->cval[e], s->y + (size_t)s->crow[e] * (size_t)l, w + (size_t)j * (size_t)l);
  if (s->offset)
    for (int64_t i = 0; i < nb; i++) rsvd_axpy(l, 1.0, s->y + i * l, s->ysum);
}

/* The block of rows [b0, b0 + nb) of a sparse source, by column. */
static int rsvd_block_csr(rsvd_src *s, int64_t b0, int64_t nb, clue_err *err) {
  if (s->csr) {
    const clue_csr *a = s->csr;
    rsvd_block_csc(s, nb, a->indptr + b0, a->indices, a->data, NULL);
    return CLUE_OK;
  }
  int rc = s->srows(s->ctx, b0, b0 + nb, s->bptr, s->bidx, s->bval, err);
  if (rc == CLUE_OK) rsvd_block_csc(s, nb, s->bptr, s->bidx, NULL, s->bval);
  return rc;
}

/* One pass over the rows (collective): w = AᵀA·z (n_cols × l) and
 * g = (Az)ᵀ(Az) (l × l, full), summed over ranks. */
static int rsvd_pass(rsvd_src *s, const double *z, int l, double *w, double *g,
                     const clue_comm *comm, clue_err *err) {
  memset(w, 0, (size_t)s->n_cols * (size_t)l * sizeof *w);
  memset(g, 0, (size_t)l * (size_t)l * sizeof *g);
  if (s->offset) {
    cblas_dgemv(CblasRowMajor, CblasTrans, (int)s->n_cols, l, 1.0, z, l, s->offset, 1, 0.0,
                s->rz, 1);
    memset(s->ysum, 0, (size_t)l * sizeof *s->ysum);
  }
  int rc = CLUE_OK;
  for (int64_t b0 = 0; b0 < s->n_local && rc == CLUE_OK; b0 += s->block) {
    int64_t nb = s->n_local - b0 < s->block ? s->n_local - b0 : s->block;
    if (s->csr || s->srows) {
      rc = rsvd_block_csr(s, b0, nb, err);
      if (rc == CLUE_OK) rsvd_block_sparse(s, nb, z, l, w);
    } else {
      rc = rsvd_block_dense(s, b0, nb, z, l, w, err);
    }
    if (rc == CLUE_OK)
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, l, (int)nb, 1.0, s->y, l, 1.0, g,
                  l);
  }
  if (s->offset) /* W += offset · (Σ rows of Y)ᵀ */
    cblas_dger(CblasRowMajor, (int)s->n_cols, l, 1.0, s->offset, 1, s->ysum, 1, w, l);
  rc = clue_comm_agree(comm, rc, err);
  if (rc != CLUE_OK) return rc;
  clue_comm_sum_double(comm, w, (size_t)s->n_cols * (size_t)l);
  clue_comm_sum_double(comm, g, (size_t)l * (size_t)l);
  for (int i = 0; i < l; i++)
    for (int j = 0; j < i; j++) g[(size_t)i * l + j] = g[(size_t)j * l + i];
  for (size_t i = 0; i < (size_t)l * (size_t)l; i++)
    if (!isfinite(g[i]))
      return clue_fail(err, CLUE_ENUMERIC,
                       "randomized SVD: the matrix holds non-finite values");
  return CLUE_OK;
}

/* Householder QR of the column-major m × n matrix a (m ≥ n, in place): a is
 * replaced by the first n_out columns of Q (a must have room for m × n_out). */
static int rsvd_householder(double *a, int m, int n, int n_out, clue_err *err) {
  double *tau = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *tau, err);
  if (!tau) return CLUE_ENOMEM;
  int info = 0, lwork = -1;
  double wq = 0;
  dgeqrf_(&m, &n, a, &m, tau, &wq, &lwork, &info);
  lwork = (int)wq + 1;
  double wq2 = 0;
  int lwork2 = -1;
  dorgqr_(&m, &n_out, &n, a, &m, tau, &wq2, &lwork2, &info);
  if ((int)wq2 + 1 > lwork) lwork = (int)wq2 + 1;
  double *work = clue_malloc((size_t)lwork * sizeof *work, err);
  if (!work) {
    free(tau);
    return CLUE_ENOMEM;
  }
  dgeqrf_(&m, &n, a, &m, tau, work, &lwork, &info);
  if (info == 0) dorgqr_(&m, &n_out, &n, a, &m, tau, work, &lwork, &info);
  free(work);
  free(tau);
  if (info != 0)
    return clue_fail(err, CLUE_ENUMERIC, "randomized SVD: Householder QR failed (info %d)",
                     info);
  return CLUE_OK;
}

/* z (n_cols × l, row-major) ← an orthonormal basis of its columns, computed on
 * rank 0 and broadcast (collective). */
static int rsvd_orth(double *z, int64_t n_cols, int l, const clue_comm *comm,
                     clue_err *err) {
  int rc = CLUE_OK;
  if (comm->rank == 0) {
    double *a = clue_malloc((size_t)n_cols * (size_t)l * sizeof *a, err);
    if (!a) rc = CLUE_ENOMEM;
    for (int64_t j = 0; a && j < n_cols; j++)
      for (int c = 0; c < l; c++) a[(size_t)c * n_cols + j] = z[(size_t)j * l + c];
    if (a) rc = rsvd_householder(a, (int)n_cols, l, l, err);
    for (int64_t j = 0; a && rc == CLUE_OK && j < n_cols; j++)
      for (int c = 0; c < l; c++) z[(size_t)j * l + c] = a[(size_t)c * n_cols + j];
    free(a);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc != CLUE_OK) return rc;
  clue_comm_bcast(comm, z, (size_t)n_cols * (size_t)l * sizeof *z, 0);
  return CLUE_OK;
}

/* Symmetric eigen-decomposition (ascending) of the l × l matrix g, in place:
 * g receives the eigenvectors as columns (column-major). */
static int rsvd_eigh(double *g, int l, double *lam, clue_err *err) {
  int info = 0, lwork = -1, liwork = -1, iwq = 0;
  double wq = 0;
  dsyevd_("V", "U", &l, g, &l, lam, &wq, &lwork, &iwq, &liwork, &info, 1, 1);
  lwork = (int)wq + 1;
  liwork = iwq + 1;
  double *work = clue_malloc((size_t)lwork * sizeof *work, err);
  int *iwork = clue_malloc((size_t)liwork * sizeof *iwork, err);
  int rc = CLUE_ENOMEM;
  if (work && iwork) {
    dsyevd_("V", "U", &l, g, &l, lam, work, &lwork, iwork, &liwork, &info, 1, 1);
    rc = info == 0 ? CLUE_OK
                   : clue_fail(err, CLUE_ENUMERIC,
                               "randomized SVD: eigen-decomposition failed (info %d)", info);
  }
  free(work);
  free(iwork);
  return rc;
}

/* In-place SVD of the column-major m × n matrix a (m ≥ n): a receives the left
 * singular vectors, s the singular values (descending). */
static int rsvd_gesdd(double *a, int m, int n, double *s, clue_err *err) {
  double *vt = clue_malloc((size_t)n * (size_t)n * sizeof *vt + 1, err);
  int *iwork = clue_malloc((size_t)8 * (size_t)n * sizeof *iwork + 1, err);
  if (!vt || !iwork) {
    free(vt);
    free(iwork);
    return CLUE_ENOMEM;
  }
  int info = 0, lwork = -1, ldu = 1;
  double wq = 0, dummy = 0;
  dgesdd_("O", &m, &n, a, &m, s, &dummy, &ldu, vt, &n, &wq, &lwork, iwork, &info, 1);
  lwork = (int)wq + 1;
  double *work = clue_malloc((size_t)lwork * sizeof *work, err);
  int rc = CLUE_ENOMEM;
  if (work) {
    dgesdd_("O", &m, &n, a, &m, s, &dummy, &ldu, vt, &n, work, &lwork, iwork, &info, 1);
    rc = info == 0 ? CLUE_OK
                   : clue_fail(err, CLUE_ENUMERIC, "randomized SVD: SVD failed (info %d)",
                               info);
  }
  free(work);
  free(vt);
  free(iwork);
  return rc;
}

/* Columns kk..k−1 of the column-major n_cols × k matrix m (room for k columns)
 * receive an orthonormal completion of its first kk orthonormal columns. */
static int rsvd_complete(double *m, int64_t n_cols, int kk, int k, clue_err *err) {
  if (kk == 0) { /* nothing found at all: the first k unit vectors */
    for (int c = 0; c < k; c++)
      for (int64_t j = 0; j < n_cols; j++) m[(size_t)c * n_cols + j] = j == c;
    return CLUE_OK;
  }
  double *q = clue_malloc((size_t)n_cols * (size_t)k * sizeof *q, err);
  if (!q) return CLUE_ENOMEM;
  memcpy(q, m, (size_t)n_cols * (size_t)kk * sizeof *q);
  int rc = rsvd_householder(q, (int)n_cols, kk, k, err);
  if (rc == CLUE_OK)
    memcpy(m + (size_t)kk * n_cols, q + (size_t)kk * n_cols,
           (size_t)n_cols * (size_t)(k - kk) * sizeof *q);
  free(q);
  return rc;
}

/* From the last pass (w = AᵀA·z, g = (Az)ᵀ(Az)): v (n_cols × k, row-major)
 * and s (k). Runs on one rank. */
static int rsvd_finish(const double *w, double *g, int64_t n_cols, int l, int k, double *v,
                       double *s, clue_err *err) {
  double *lam = clue_malloc((size_t)l * sizeof *lam, err);
  double *t = clue_malloc((size_t)l * (size_t)l * sizeof *t, err);
  double *m = clue_malloc((size_t)n_cols * (size_t)(l > k ? l : k) * sizeof *m, err);
  double *sv = clue_malloc((size_t)l * sizeof *sv, err);
  int rc = (lam && t && m && sv) ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK) rc = rsvd_eigh(g, l, lam, err);
  int r = 0;
  if (rc == CLUE_OK) {
    double lmax = lam[l - 1];
    /* T = U_r · Λ_r^{-1/2} (l × r, column-major), largest eigenvalues first. */
    for (int e = l - 1; e >= 0 && lmax > 0 && lam[e] > RSVD_RANK_TOL * lmax; e--, r++)
      for (int i = 0; i < l; i++) t[(size_t)r * l + i] = g[(size_t)e * l + i] / sqrt(lam[e]);
  }
  if (rc == CLUE_OK && r > 0) {
    /* Bᵀ = W·T (n_cols × r, column-major); its left singular vectors are V. */
    cblas_dgemm(CblasColMajor, CblasTrans, CblasNoTrans, (int)n_cols, r, l, 1.0, w, l, t, l,
                0.0, m, (int)n_cols);
    rc = rsvd_gesdd(m, (int)n_cols, r, sv, err);
  }
  int kk = r < k ? r : k;
  if (rc == CLUE_OK && kk < k) rc = rsvd_complete(m, n_cols, kk, k, err);
  for (int c = kk; c < k; c++) sv[c] = 0;
  if (rc == CLUE_OK) {
    for (int c = 0; c < k; c++) {
      s[c] = sv[c];
      for (int64_t j = 0; j < n_cols; j++) v[(size_t)j * k + c] = m[(size_t)c * n_cols + j];
    }
  }
  free(lam);
  free(t);
  free(m);
  free(sv);
  return rc;
}

/* Signs: the largest-magnitude entry of each column of v (first on ties) is
 * made positive. */
static void rsvd_fix_signs(double *v, int64_t n_cols, int k) {
  for (int c = 0; c < k; c++) {
    int64_t best = 0;
    for (int64_t j = 1; j < n_cols; j++)
      if (fabs(v[(size_t)j * k + c]) > fabs(v[(size_t)best * k + c])) best = j;
    if (v[(size_t)best * k + c] < 0)
      for (int64_t j = 0; j < n_cols; j++) v[(size_t)j * k + c] = -v[(size_t)j * k + c];
  }
}

/* The test matrix Ω (n_cols × l): row j from the stream (seed, SVD, 0, j). */
static void rsvd_omega(double *z, int64_t n_cols, int l, uint64_t seed) {
  for (int64_t j = 0; j < n_cols; j++) {
    clue_rng r = clue_rng_stream(seed, CLUE_RNG_SVD, 0, (uint64_t)j);
    for (int c = 0; c < l; c++) z[(size_t)j * l + c] = clue_rng_normal(&r);
  }
}

/* The iteration itself, on a prepared source (collective). */
static int rsvd_run(rsvd_src *src, int k, int oversample, int n_iter, uint64_t seed,
                    const clue_comm *comm, double *v, double *s, clue_err *err) {
  int64_t n_cols = src->n_cols;
  int64_t l64 = (int64_t)k + (oversample > 0 ? oversample : 0);
  int l = (int)(l64 < n_cols ? l64 : n_cols);
  size_t zl = (size_t)n_cols * (size_t)l;
  double *z = clue_malloc(zl * sizeof *z, err);
  double *w = clue_malloc(zl * sizeof *w, err);
  double *g = clue_malloc((size_t)l * (size_t)l * sizeof *g, err);
  src->y = clue_malloc((size_t)src->block * (size_t)l * sizeof *src->y, err);
  if (src->offset) {
    src->rz = clue_malloc((size_t)l * sizeof *src->rz, err);
    src->ysum = clue_malloc((size_t)l * sizeof *src->ysum, err);
  }
  int rc = (z && w && g && src->y && (!src->offset || (src->rz && src->ysum)))
               ? CLUE_OK
               : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) {
    rsvd_omega(z, n_cols, l, seed);
    rc = rsvd_orth(z, n_cols, l, comm, err);
  }
  for (int it = 0; it < n_iter && rc == CLUE_OK; it++) {
    rc = rsvd_pass(src, z, l, w, g, comm, err);
    if (rc == CLUE_OK) {
      memcpy(z, w, zl * sizeof *z);
      rc = rsvd_orth(z, n_cols, l, comm, err);
    }
  }
  if (rc == CLUE_OK) rc = rsvd_pass(src, z, l, w, g, comm, err);
  if (rc == CLUE_OK) {
    if (comm->rank == 0) {
      rc = rsvd_finish(w, g, n_cols, l, k, v, s, err);
      if (rc == CLUE_OK) rsvd_fix_signs(v, n_cols, k);
    }
    rc = clue_comm_agree(comm, rc, err);
  }
  if (rc == CLUE_OK) {
    clue_comm_bcast(comm, v, (size_t)n_cols * (size_t)k * sizeof *v, 0);
    clue_comm_bcast(comm, s, (size_t)k * sizeof *s, 0);
  }
  free(z);
  free(w);
  free(g);
  free(src->y);
  free(src->rz);
  free(src->ysum);
  src->y = src->rz = src->ysum = NULL;
  return rc;
}

/* Argument checks shared by both entry points (every rank passes the same). */
static int rsvd_check(int64_t n_local, int64_t n_cols, int k, int n_iter, clue_err *err) {
  if (n_local < 0 || n_cols < 1 || k < 1 || k > n_cols || n_iter < 0)
    return clue_fail(err, CLUE_EINVAL,
                     "randomized SVD: need 1 <= k <= n_cols and n_iter >= 0 "
                     "(k=%d, n_cols=%lld, n_iter=%d)",
                     k, (long long)n_cols, n_iter);
  if (n_cols > INT32_MAX / 2)
    return clue_fail(err, CLUE_EINVAL, "randomized SVD: too many columns (%lld)",
                     (long long)n_cols);
  return CLUE_OK;
}

int clue_rsvd(clue_rows_fn rows, void *ctx, int64_t n_local, int64_t n_cols, int k,
              int oversample, int n_iter, uint64_t seed, const clue_comm *comm,
              double *v, double *s, clue_err *err) {
  int rc = rsvd_check(n_local, n_cols, k, n_iter, err);
  if (rc != CLUE_OK) return rc;
  rsvd_src src = {.rows = rows, .ctx = ctx, .n_local = n_local, .n_cols = n_cols};
  src.block = RSVD_BLOCK_ELEMS / n_cols;
  if (src.block > 1024) src.block = 1024;
  if (src.block < 1) src.block = 1;
  src.fblock = clue_malloc((size_t)src.block * (size_t)n_cols * sizeof *src.fblock, err);
  src.dblock = clue_malloc((size_t)src.block * (size_t)n_cols * sizeof *src.dblock, err);
  rc = (src.fblock && src.dblock) ? CLUE_OK : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = rsvd_run(&src, k, oversample, n_iter, seed, comm, v, s, err);
  free(src.fblock);
  free(src.dblock);
  return rc;
}

/* Buffers of a sparse source whose blocks of src->block rows hold at most
 * `most` entries (by column; by row too when from a callback). */
static int rsvd_sparse_bufs_new(rsvd_src *src, int64_t most, clue_err *err) {
  src->cptr = clue_malloc((size_t)(src->n_cols + 1) * sizeof *src->cptr, err);
  src->crow = clue_malloc((size_t)most * sizeof *src->crow, err);
  src->cval = clue_malloc((size_t)most * sizeof *src->cval, err);
  if (!src->cptr || !src->crow || !src->cval) return CLUE_ENOMEM;
  if (!src->srows) return CLUE_OK;
  src->bptr = clue_malloc((size_t)(src->block + 1) * sizeof *src->bptr, err);
  src->bidx = clue_malloc((size_t)most * sizeof *src->bidx, err);
  src->bval = clue_malloc((size_t)most * sizeof *src->bval, err);
  return (src->bptr && src->bidx && src->bval) ? CLUE_OK : CLUE_ENOMEM;
}

static void rsvd_sparse_bufs_free(rsvd_src *src) {
  free(src->cptr);
  free(src->crow);
  free(src->cval);
  free(src->bptr);
  free(src->bidx);
  free(src->bval);
}

/* The most entries in a block of `block` rows, from the row pointer ptr. */
static int64_t rsvd_most(const int64_t *ptr, int64_t n_rows, int64_t block) {
  int64_t most = 1;
  for (int64_t b0 = 0; b0 < n_rows; b0 += block) {
    int64_t b1 = b0 + block < n_rows ? b0 + block : n_rows;
    if (ptr[b1] - ptr[b0] > most) most = ptr[b1] - ptr[b0];
  }
  return most;
}

int clue_rsvd_csr(const clue_csr *a, int k, int oversample, int n_iter, uint64_t seed,
                  const clue_comm *comm, double *v, double *s, clue_err *err) {
  int rc = rsvd_check(a->n_rows, a->n_cols, k, n_iter, err);
  if (rc != CLUE_OK) return rc;
  rsvd_src src = {.csr = a, .n_local = a->n_rows, .n_cols = a->n_cols, .block = 1024};
  rc = rsvd_sparse_bufs_new(&src, rsvd_most(a->indptr, a->n_rows, src.block), err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = rsvd_run(&src, k, oversample, n_iter, seed, comm, v, s, err);
  rsvd_sparse_bufs_free(&src);
  return rc;
}

int clue_rsvd_offset(clue_sparse_rows_fn rows, void *ctx, const double *offset,
                     const int64_t *bound, int64_t n_local, int64_t n_cols, int k,
                     int oversample, int n_iter, uint64_t seed, const clue_comm *comm,
                     double *v, double *s, clue_err *err) {
  int rc = rsvd_check(n_local, n_cols, k, n_iter, err);
  if (rc != CLUE_OK) return rc;
  rsvd_src src = {.srows = rows, .ctx = ctx, .offset = offset, .n_local = n_local,
                  .n_cols = n_cols, .block = 1024};
  rc = rsvd_sparse_bufs_new(&src, rsvd_most(bound, n_local, src.block), err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = rsvd_run(&src, k, oversample, n_iter, seed, comm, v, s, err);
  rsvd_sparse_bufs_free(&src);
  return rc;
}
