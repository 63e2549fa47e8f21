/* prep_fit.c — fitting the preprocessing of one modality on the training rows
 * of every rank (collective): decoded features, standardisation statistics,
 * projection (PCA or LSI by randomized SVD), decoder-target statistics.
 *
 * Randomized SVD settings: 7 power iterations (8 passes over the data) and
 * oversampling by 20. Standardised expression and LSI matrices have flat
 * trailing spectra, so the trailing components of 100 converge slowly.
 * Measured against an exact SVD on bmmc_cite_600 rna/adt and bmmc_multiome_500
 * atac (k = 100): 4 iterations + 10 leave the span of the first 50 components
 * up to 5e-2 off (1 − smallest principal cosine); 7 + 10: 3e-3; 7 + 20: 3e-4
 * with the leading 10 components within 1e-6 and singular values within 5e-5;
 * 10 + 10 is similar at 40 % more work (11 passes × 110 columns vs 8 × 120).
 * tests/test_prep.c keeps checking these figures against an exact SVD. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prep_internal.h"

#define PREP_OVERSAMPLE 20
#define PREP_POWER_ITERS 7
#define PREP_LSI_AUTO 30000
#define PREP_STD_TINY 1e-8 /* std ≤ this · |mean| counts as zero (constant feature) */

static clue_prep *prep_new(const clue_modality_config *mc, int64_t n_input,
                           clue_err *err) {
  clue_prep *p = clue_calloc(1, sizeof *p, err);
  if (!p) return NULL;
  p->kind = mc->preprocess;
  p->likelihood = mc->likelihood;
  /* lsi and none carry their own transform: no count normalisation. */
  p->normalize = mc->preprocess == CLUE_PREP_PCA ? mc->normalize : CLUE_NORM_NONE;
  p->n_input = n_input;
  return p;
}

/* The number of decoded features asked for by mc. */
static int64_t prep_n_wanted(const clue_modality_config *mc, int64_t n_input,
                             int n_hvg_auto) {
  int64_t n = mc->features > 0 ? mc->features
              : mc->features == 0 ? n_input
              : mc->preprocess == CLUE_PREP_LSI ? PREP_LSI_AUTO
                                                : n_hvg_auto;
  return n < n_input ? n : n_input;
}

static int prep_cmp_count(const void *a, const void *b) {
  const int64_t *x = a, *y = b; /* (count, column) pairs: count desc, column asc */
  if (x[0] != y[0]) return x[0] > y[0] ? -1 : 1;
  return (x[1] > y[1]) - (x[1] < y[1]);
}

static int prep_cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* lsi: the n most often nonzero columns (ties: lower column), ascending. */
static int prep_top_open(const clue_csr *x, int64_t n, const clue_comm *comm,
                         int64_t *out, clue_err *err) {
  int64_t nc = x->n_cols;
  int64_t *cnt = clue_calloc((size_t)nc, sizeof *cnt, err);
  int64_t *pair = clue_malloc((size_t)nc * 2 * sizeof *pair, err);
  int rc = clue_comm_agree(comm, (cnt && pair) ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) {
    for (int64_t e = 0; e < clue_csr_nnz(x); e++) cnt[x->indices[e]] += x->data[e] > 0;
    clue_comm_sum_int64(comm, cnt, (size_t)nc);
    for (int64_t j = 0; j < nc; j++) pair[2 * j] = cnt[j], pair[2 * j + 1] = j;
    qsort(pair, (size_t)nc, 2 * sizeof *pair, prep_cmp_count);
    for (int64_t i = 0; i < n; i++) out[i] = pair[2 * i + 1];
    qsort(out, (size_t)n, sizeof *out, prep_cmp_i64);
  }
  free(cnt);
  free(pair);
  return rc;
}

/* Chooses p->decoded and p->used. */
static int prep_select(clue_prep *p, const clue_modality_config *mc, const clue_csr *x,
                       const int32_t *batch, int n_batches, int n_hvg_auto,
                       const clue_comm *comm, clue_err *err) {
  int64_t n = prep_n_wanted(mc, p->n_input, n_hvg_auto);
  int rc = CLUE_OK;
  if (p->kind == CLUE_PREP_PCA) {
    rc = clue_hvg_seurat_v3(x, batch, n_batches, n, comm, &p->decoded, err);
  } else {
    if (p->kind == CLUE_PREP_NONE) n = p->n_input;
    p->decoded = clue_malloc((size_t)n * sizeof *p->decoded, err);
    rc = clue_comm_agree(comm, p->decoded ? CLUE_OK : CLUE_ENOMEM, err);
    if (rc == CLUE_OK && n == p->n_input)
      for (int64_t j = 0; j < n; j++) p->decoded[j] = j;
    else if (rc == CLUE_OK)
      rc = prep_top_open(x, n, comm, p->decoded, err);
  }
  if (rc != CLUE_OK) return rc;
  p->n_decoded = n;
  p->n_used = p->kind == CLUE_PREP_PCA ? n : p->n_input;
  p->used = clue_malloc((size_t)p->n_used * sizeof *p->used, err);
  rc = clue_comm_agree(comm, p->used ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc != CLUE_OK) return rc;
  for (int64_t u = 0; u < p->n_used; u++)
    p->used[u] = p->kind == CLUE_PREP_PCA ? p->decoded[u] : u;
  return CLUE_OK;
}

/* One pass of prep_moments over the local rows: pass 0 accumulates Σv and Σz
 * over the nonzero entries of each column, Σz and the row count; pass 1 the
 * same with centred squares (v − μ)², (z − μ)² and (z − z̄)². */
static void prep_moments_pass(const clue_csr *x, clue_normalize norm, const int32_t *col,
                              int64_t n, int pass, const double *mean, double zbar,
                              const double *log1p_ints, double *vals, double *acc) {
  double *sv = acc, *sz = acc + n, *g = acc + 2 * n;
  memset(acc, 0, ((size_t)n * 2 + 2) * sizeof *acc);
  for (int64_t i = 0; i < x->n_rows; i++) {
    double z = prep_norm_row(norm, x, col, n, i, log1p_ints, vals);
    int64_t a = x->indptr[i];
    g[0] += pass ? (z - zbar) * (z - zbar) : z;
    g[1] += 1;
    for (int64_t e = a; e < x->indptr[i + 1]; e++) {
      int32_t u = col[x->indices[e]];
      if (u < 0) continue;
      double v = vals[e - a];
      sv[u] += pass ? (v - mean[u]) * (v - mean[u]) : v;
      sz[u] += pass ? (z - mean[u]) * (z - mean[u]) : z;
    }
  }
}

/* Mean and population std over all ranks' rows of the normalised values of
 * the columns `cols` (n of them, ascending), in two passes (mean, then centred
 * squares). A zero count takes its row's zero value z (0 except for clr), so
 * Σ over the zero entries of (z − μ)² = Σ_all (z − μ)² − Σ_nonzero (z − μ)², with
 * Σ_all (z − μ)² = Σ (z − z̄)² + N·(z̄ − μ)². A std ≤ 1e-8·|mean| is a constant
 * column and becomes 1. */
static int prep_moments(const clue_csr *x, clue_normalize norm, const int64_t *cols,
                        int64_t n, const clue_comm *comm, double *mean, double *std,
                        clue_err *err) {
  int32_t *col = prep_col_map(cols, n, x->n_cols, err);
  double *acc = clue_malloc(((size_t)n * 2 + 2) * sizeof *acc, err);
  double *vals = clue_malloc((size_t)(x->n_cols > 0 ? x->n_cols : 1) * sizeof *vals, err);
  double *ints = norm == CLUE_NORM_CLR ? prep_log1p_ints_new(err) : NULL;
  bool ok = col && acc && vals && (ints || norm != CLUE_NORM_CLR);
  int rc = clue_comm_agree(comm, ok ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) {
    double *sv = acc, *sz = acc + n, *g = acc + 2 * n;
    prep_moments_pass(x, norm, col, n, 0, NULL, 0, ints, vals, acc);
    clue_comm_sum_double(comm, acc, (size_t)n * 2 + 2);
    double rows = g[1], zsum = g[0], zbar = zsum / rows;
    for (int64_t u = 0; u < n; u++) mean[u] = (sv[u] + zsum - sz[u]) / rows;
    prep_moments_pass(x, norm, col, n, 1, mean, zbar, ints, vals, acc);
    clue_comm_sum_double(comm, acc, (size_t)n * 2 + 2);
    for (int64_t u = 0; u < n; u++) {
      double d = zbar - mean[u];
      double zero_part = g[0] + rows * d * d - sz[u];
      double sd = sqrt((sv[u] + fmax(zero_part, 0)) / rows);
      std[u] = (sd > 0 && sd > PREP_STD_TINY * fabs(mean[u])) ? sd : 1;
    }
  }
  free(col);
  free(acc);
  free(vals);
  free(ints);
  return rc;
}

/* The top k right singular vectors of the standardised matrix. When a zero
 * count has the same value in every cell (log1p, none), each row is that zero
 * row plus a sparse row, and the products cost O(nonzeros) instead of
 * O(cells × features); else (clr) the rows are formed dense. */
static int pca_rsvd(const clue_prep *p, const clue_csr *x, prep_dense *d, int k,
                    uint64_t seed, const clue_comm *comm, double *v, double *s,
                    clue_err *err) {
  if (!d->zero_row)
    return clue_rsvd(prep_dense_rows, d, x->n_rows, p->n_used, k, PREP_OVERSAMPLE,
                     PREP_POWER_ITERS, seed, comm, v, s, err);
  double *offset = clue_malloc((size_t)p->n_used * sizeof *offset, err);
  int rc = clue_comm_agree(comm, offset ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc != CLUE_OK) {
    free(offset);
    return rc;
  }
  for (int64_t u = 0; u < p->n_used; u++) offset[u] = d->zero_row[u];
  rc = clue_rsvd_offset(prep_sparse_rows, d, offset, x->indptr, x->n_rows, p->n_used, k,
                        PREP_OVERSAMPLE, PREP_POWER_ITERS, seed, comm, v, s, err);
  free(offset);
  return rc;
}

/* pca: standardisation of the normalised used features and the projection V. */
static int prep_fit_pca(clue_prep *p, int n_components, const clue_csr *x,
                        int64_t n_cells, uint64_t seed, const clue_comm *comm,
                        clue_err *err) {
  int64_t k = n_components;
  if (k > p->n_used - 1) k = p->n_used - 1;
  if (k > n_cells - 1) k = n_cells - 1;
  if (k < 1)
    return clue_fail(err, CLUE_EDATA,
                     "PCA needs at least 2 features and 2 training cells (has %lld features); "
                     "with fewer, set preprocess: none for this modality",
                     (long long)p->n_used);
  p->n_components = (int)k;
  size_t nk = (size_t)p->n_used * (size_t)k;
  p->mean = clue_malloc((size_t)p->n_used * sizeof *p->mean, err);
  p->std = clue_malloc((size_t)p->n_used * sizeof *p->std, err);
  p->proj = clue_malloc(nk * sizeof *p->proj, err);
  double *v = clue_malloc(nk * sizeof *v, err);
  double *s = clue_malloc((size_t)k * sizeof *s, err);
  int32_t *col = prep_col_map(p->used, p->n_used, p->n_input, err);
  int rc = (p->mean && p->std && p->proj && v && s && col) ? CLUE_OK : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK)
    rc = prep_moments(x, p->normalize, p->used, p->n_used, comm, p->mean, p->std, err);
  prep_dense d;
  memset(&d, 0, sizeof d);
  if (rc == CLUE_OK) rc = clue_comm_agree(comm, prep_dense_init(&d, p, x, col, err), err);
  if (rc == CLUE_OK) rc = pca_rsvd(p, x, &d, (int)k, seed, comm, v, s, err);
  if (rc == CLUE_OK)
    for (size_t i = 0; i < nk; i++) p->proj[i] = (float)v[i];
  prep_dense_free(&d);
  free(col);
  free(v);
  free(s);
  return rc;
}

/* lsi: idf over all features and the projection V / s. */
static int prep_fit_lsi(clue_prep *p, int n_components, const clue_csr *x,
                        int64_t n_cells, uint64_t seed, const clue_comm *comm,
                        clue_err *err) {
  int64_t k = n_components;
  if (k > p->n_used) k = p->n_used;
  if (k > n_cells) k = n_cells;
  p->n_components = (int)k;
  size_t nk = (size_t)p->n_used * (size_t)k;
  int64_t nnz = clue_csr_nnz(x);
  p->idf = clue_calloc((size_t)p->n_used, sizeof *p->idf, err);
  p->proj = clue_malloc(nk * sizeof *p->proj, err);
  double *v = clue_malloc(nk * sizeof *v, err);
  double *s = clue_malloc((size_t)k * sizeof *s, err);
  float *tdata = clue_malloc((size_t)(nnz > 0 ? nnz : 1) * sizeof *tdata, err);
  int rc = (p->idf && p->proj && v && s && tdata) ? CLUE_OK : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) {
    for (int64_t e = 0; e < nnz; e++) p->idf[x->indices[e]] += x->data[e];
    clue_comm_sum_double(comm, p->idf, (size_t)p->n_used);
    for (int64_t j = 0; j < p->n_used; j++)
      p->idf[j] = p->idf[j] > 0 ? (double)n_cells / p->idf[j] : 0;
    for (int64_t i = 0; i < x->n_rows; i++) prep_lsi_row(p, x, i, tdata + x->indptr[i]);
    clue_csr t = *x; /* same structure, transformed values */
    t.data = tdata;
    rc = clue_rsvd_csr(&t, (int)k, PREP_OVERSAMPLE, PREP_POWER_ITERS, seed, comm, v, s,
                       err);
  }
  if (rc == CLUE_OK)
    for (int64_t j = 0; j < p->n_used; j++)
      for (int64_t c = 0; c < k; c++) {
        double sc = s[c] > 1e-12 * s[0] ? s[c] : 0;
        p->proj[(size_t)j * k + c] = sc > 0 ? (float)(v[(size_t)j * k + c] / sc) : 0.0f;
      }
  free(v);
  free(s);
  free(tdata);
  return rc;
}

/* none: standardisation of every input feature; the encoder input is that. */
static int prep_fit_none(clue_prep *p, const clue_csr *x, const clue_comm *comm,
                         clue_err *err) {
  p->n_components = (int)p->n_used;
  p->mean = clue_malloc((size_t)p->n_used * sizeof *p->mean, err);
  p->std = clue_malloc((size_t)p->n_used * sizeof *p->std, err);
  int rc = clue_comm_agree(comm, (p->mean && p->std) ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc != CLUE_OK) return rc;
  return prep_moments(x, CLUE_NORM_NONE, p->used, p->n_used, comm, p->mean, p->std, err);
}

/* normal likelihood: the standardisation of the raw decoded values. */
/* Collective. The mean over the training cells of their counts of the
 * decoded features (the library size of the decoder's counts). */
static int prep_library_mean(clue_prep *p, const clue_csr *x, const clue_comm *comm,
                             clue_err *err) {
  unsigned char *is = clue_calloc((size_t)p->n_input + 1, 1, err);
  int rc = clue_comm_agree(comm, is ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(is);
    return rc;
  }
  for (int64_t i = 0; i < p->n_decoded; i++) is[p->decoded[i]] = 1;
  double s[2] = {0, (double)x->n_rows};
  for (int64_t r = 0; r < x->n_rows; r++)
    for (int64_t q = x->indptr[r]; q < x->indptr[r + 1]; q++)
      if (is[x->indices[q]]) s[0] += x->data[q];
  clue_comm_sum_double(comm, s, 2);
  p->library_mean = s[1] > 0 ? s[0] / s[1] : 0;
  free(is);
  return CLUE_OK;
}

static int prep_fit_targets(clue_prep *p, const clue_csr *x, const clue_comm *comm,
                            clue_err *err) {
  if (p->likelihood == CLUE_LIK_NB) return prep_library_mean(p, x, comm, err);
  if (p->likelihood != CLUE_LIK_NORMAL) return CLUE_OK;
  p->target_mean = clue_malloc((size_t)p->n_decoded * sizeof *p->target_mean, err);
  p->target_std = clue_malloc((size_t)p->n_decoded * sizeof *p->target_std, err);
  int rc = clue_comm_agree(comm, (p->target_mean && p->target_std) ? CLUE_OK : CLUE_ENOMEM,
                           err);
  if (rc != CLUE_OK) return rc;
  return prep_moments(x, CLUE_NORM_NONE, p->decoded, p->n_decoded, comm, p->target_mean,
                      p->target_std, err);
}

/* Shape checks before any work (collective): same width on every rank, usable
 * values, and at least 2 training cells in total. */
static int prep_fit_check(const clue_modality_config *mc, const clue_csr *x,
                          const clue_comm *comm, int64_t *n_cells, clue_err *err) {
  int64_t w[2] = {x->n_cols, -x->n_cols};
  clue_comm_max_int64(comm, w, 2);
  if (w[0] != -w[1])
    return clue_fail(err, CLUE_EINVAL, "ranks disagree on the number of features");
  if (x->n_cols < 1) return clue_fail(err, CLUE_EDATA, "the modality has no features");
  if (mc->n_components < 1 && mc->preprocess != CLUE_PREP_NONE)
    return clue_fail(err, CLUE_ECONFIG, "n_components must be >= 1 (got %d)",
                     mc->n_components);
  int rc = prep_check_values(x, mc->preprocess != CLUE_PREP_NONE, "training matrix", err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc != CLUE_OK) return rc;
  *n_cells = x->n_rows;
  clue_comm_sum_int64(comm, n_cells, 1);
  if (*n_cells < 2)
    return clue_fail(err, CLUE_EDATA, "needs at least 2 training cells (has %lld)",
                     (long long)*n_cells);
  return CLUE_OK;
}

int clue_prep_fit(const clue_modality_config *mc, const clue_csr *x,
                  const int32_t *batch, int n_batches, int n_hvg_auto, uint64_t seed,
                  const clue_comm *comm, int verbose, clue_prep **out, clue_err *err) {
  *out = NULL;
  double t0 = MPI_Wtime();
  int64_t n_cells = 0;
  int rc = prep_fit_check(mc, x, comm, &n_cells, err);
  clue_prep *p = NULL;
  if (rc == CLUE_OK) {
    p = prep_new(mc, x->n_cols, err);
    rc = clue_comm_agree(comm, p ? CLUE_OK : CLUE_ENOMEM, err);
  }
  if (rc == CLUE_OK)
    rc = prep_select(p, mc, x, batch, n_batches, n_hvg_auto, comm, err);
  if (rc == CLUE_OK && p->kind == CLUE_PREP_PCA)
    rc = prep_fit_pca(p, mc->n_components, x, n_cells, seed, comm, err);
  else if (rc == CLUE_OK && p->kind == CLUE_PREP_LSI)
    rc = prep_fit_lsi(p, mc->n_components, x, n_cells, seed, comm, err);
  else if (rc == CLUE_OK)
    rc = prep_fit_none(p, x, comm, err);
  if (rc == CLUE_OK) rc = prep_fit_targets(p, x, comm, err);
  if (rc != CLUE_OK) {
    clue_prep_free(p);
    return clue_err_prefix(err, "preprocessing modality %s", mc->name);
  }
  if (verbose && comm->rank == 0)
    fprintf(stderr,
            "prep %s: %s, %lld of %lld features decoded, %d encoder inputs, "
            "%lld training cells, %.2f s\n",
            mc->name, clue_preprocess_name(p->kind), (long long)p->n_decoded,
            (long long)p->n_input, p->n_components, (long long)n_cells,
            MPI_Wtime() - t0);
  *out = p;
  return CLUE_OK;
}
