/* test_prep.c — the preprocessing of a modality, fitted over ranks:
 *   - highly variable genes against a slow single-process seurat_v3 written
 *     here (real data, 2 batches and 1), identical sets on any rank count;
 *   - PCA (log1p on RNA, clr on ADT) and LSI (ATAC) against an exact SVD of the
 *     dense matrix built here: statistics, principal angles, singular values,
 *     projections up to sign, and the encoder input of every row;
 *   - the fitted state and the transform against a single-process fit (ranks
 *     with no rows included);
 *   - decoder targets, pass-through standardisation and log1p library sizes on
 *     hand-computed cases; save/load round trip and refused groups; bad input.
 * Real data is read with plain HDF5 calls (X/data, X/indices, X/indptr).
 * CLUE_TEST_NP: 1 2 3 4 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/prep.h"
#include "clue/rng.h"
#include "testutil.h"
#include "tu_linalg.h"
#include "tu_loess.h"

/* ---------------------------------------------------------------- data */

typedef struct tdata {
  clue_csr *x;     /* all rows (every rank holds them) */
  int32_t *batch;  /* (n_rows) */
  int n_batches;
} tdata;

static void *read_ds(hid_t f, const char *name, hid_t mtype, size_t elem, int64_t *n) {
  hid_t d = H5Dopen2(f, name, H5P_DEFAULT);
  assert_true(d >= 0);
  hid_t sp = H5Dget_space(d);
  *n = H5Sget_simple_extent_npoints(sp);
  void *buf = malloc(elem * (size_t)(*n) + 1);
  if (*n > 0) assert_true(H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
  H5Sclose(sp);
  H5Dclose(d);
  return buf;
}

/* X (csr_matrix) and obs/batch codes of an .h5ad (batch 0 for all without it). */
static tdata load(const char *set, const char *mod) {
  tdata t = {0};
  const char *dir = tu_shared_dataset(set);
  if (!dir) return t;
  char path[4200];
  snprintf(path, sizeof path, "%s/%s.h5ad", dir, mod);
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(f >= 0);
  hid_t a = H5Aopen_by_name(f, "X", "shape", H5P_DEFAULT, H5P_DEFAULT);
  int64_t shape[2];
  assert_true(H5Aread(a, H5T_NATIVE_INT64, shape) >= 0);
  H5Aclose(a);
  int64_t n_ptr, nnz, nnz2, n_codes = 0, n_cat = 0;
  int64_t *indptr = read_ds(f, "X/indptr", H5T_NATIVE_INT64, 8, &n_ptr);
  int32_t *indices = read_ds(f, "X/indices", H5T_NATIVE_INT32, 4, &nnz);
  float *data = read_ds(f, "X/data", H5T_NATIVE_FLOAT, 4, &nnz2);
  assert_int_equal(n_ptr, shape[0] + 1);
  assert_int_equal(nnz, nnz2);
  t.x = calloc(1, sizeof *t.x);
  *t.x = (clue_csr){shape[0], shape[1], indptr, indices, data};
  if (H5Lexists(f, "obs/batch", H5P_DEFAULT) > 0) {
    t.batch = read_ds(f, "obs/batch/codes", H5T_NATIVE_INT32, 4, &n_codes);
    hid_t d = H5Dopen2(f, "obs/batch/categories", H5P_DEFAULT);
    hid_t sp = H5Dget_space(d);
    n_cat = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    H5Dclose(d);
    t.n_batches = (int)n_cat;
  } else {
    t.batch = calloc((size_t)shape[0], sizeof *t.batch);
    t.n_batches = 1;
  }
  H5Fclose(f);
  return t;
}

static void tdata_free(tdata *t) {
  clue_csr_free(t->x);
  free(t->batch);
}

/* This rank's contiguous share of rows [0, n); with empty_first, rank 0 gets
 * none when there is more than one rank. */
static void share(int64_t n, int empty_first, int64_t *b, int64_t *e) {
  clue_comm c = tu_world();
  int parts = c.size, r = c.rank;
  if (empty_first && c.size > 1) parts--, r--;
  *b = r < 0 ? 0 : n * r / parts;
  *e = r < 0 ? 0 : n * (r + 1) / parts;
}

static clue_csr *rows_of(const clue_csr *x, int64_t b, int64_t e) {
  int64_t *rows = malloc(sizeof *rows * (size_t)(e - b + 1));
  for (int64_t i = b; i < e; i++) rows[i - b] = i;
  clue_err err;
  clue_csr *m = clue_csr_select_rows(x, rows, e - b, &err);
  assert_non_null(m);
  free(rows);
  return m;
}

static clue_modality_config mcfg(const char *name, clue_preprocess pp, clue_normalize nm,
                                 clue_likelihood lik, int features, int n_comp) {
  clue_modality_config m;
  memset(&m, 0, sizeof m);
  snprintf(m.name, sizeof m.name, "%s", name);
  m.preprocess = pp;
  m.normalize = nm;
  m.likelihood = lik;
  m.features = features;
  m.n_components = n_comp;
  m.weight = 1;
  return m;
}

/* Fits on this rank's share of t (world), or on all rows alone (self). */
static clue_prep *fit(const tdata *t, const clue_modality_config *m, int self,
                      int empty_first) {
  clue_comm c = self ? clue_comm_self() : tu_world();
  int64_t b = 0, e = t->x->n_rows;
  if (!self) share(t->x->n_rows, empty_first, &b, &e);
  clue_csr *loc = rows_of(t->x, b, e);
  clue_prep *p = NULL;
  clue_err err;
  TU_OK(clue_prep_fit(m, loc, t->batch + b, t->n_batches, 5000, 7, &c, 0, &p, &err), &err);
  clue_csr_free(loc);
  return p;
}

/* ------------------------------------------------------ reference HVG */

/* Dense copy (n × m, double) of x. */
static double *dense(const clue_csr *x) {
  double *d = calloc((size_t)(x->n_rows * x->n_cols), sizeof *d);
  for (int64_t i = 0; i < x->n_rows; i++)
    for (int64_t e = x->indptr[i]; e < x->indptr[i + 1]; e++)
      d[i * x->n_cols + x->indices[e]] = x->data[e];
  return d;
}

typedef struct rk {
  double v, v2;
  int64_t g;
} rk;

static int rk_desc(const void *a, const void *b) {
  const rk *x = a, *y = b;
  if (x->v != y->v) return x->v > y->v ? -1 : 1;
  return (x->g > y->g) - (x->g < y->g);
}

static int rk_combined(const void *a, const void *b) {
  const rk *x = a, *y = b;
  if (isnan(x->v) != isnan(y->v)) return isnan(x->v) ? 1 : -1;
  if (!isnan(x->v) && x->v != y->v) return x->v < y->v ? -1 : 1;
  if (x->v2 != y->v2) return x->v2 > y->v2 ? -1 : 1;
  return (x->g > y->g) - (x->g < y->g);
}

static int i64_cmp(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Ranks of the genes of batch b by normalised variance (the recipe, spelled out). */
static void ref_batch_ranks(const double *d, const int32_t *batch, int64_t n, int64_t m,
                            int b, int64_t *rank) {
  double nb = 0;
  for (int64_t i = 0; i < n; i++) nb += batch[i] == b;
  double *mean = calloc((size_t)m, sizeof *mean), *var = calloc((size_t)m, sizeof *var);
  for (int64_t i = 0; i < n; i++)
    if (batch[i] == b)
      for (int64_t g = 0; g < m; g++) mean[g] += d[i * m + g] / nb;
  for (int64_t i = 0; i < n; i++)
    if (batch[i] == b)
      for (int64_t g = 0; g < m; g++)
        var[g] += (d[i * m + g] - mean[g]) * (d[i * m + g] - mean[g]) / (nb - 1);
  double *lx = malloc(sizeof *lx * (size_t)m), *ly = malloc(sizeof *ly * (size_t)m);
  double *fitv = malloc(sizeof *fitv * (size_t)m), *sd = malloc(sizeof *sd * (size_t)m);
  int cnt = 0;
  for (int64_t g = 0; g < m; g++)
    if (var[g] > 0) lx[cnt] = log10(mean[g]), ly[cnt++] = log10(var[g]);
  tu_ref_loess(lx, ly, cnt, 0.3, fitv);
  cnt = 0;
  for (int64_t g = 0; g < m; g++) sd[g] = var[g] > 0 ? sqrt(pow(10, fitv[cnt++])) : 1;
  rk *key = malloc(sizeof *key * (size_t)m);
  for (int64_t g = 0; g < m; g++) {
    double clip = mean[g] + sqrt(nb) * sd[g], ss = 0;
    for (int64_t i = 0; i < n; i++)
      if (batch[i] == b) {
        double v = fmin(d[i * m + g], clip) - mean[g];
        ss += v * v;
      }
    key[g] = (rk){ss / ((nb - 1) * sd[g] * sd[g]), 0, g};
  }
  qsort(key, (size_t)m, sizeof *key, rk_desc);
  for (int64_t i = 0; i < m; i++) rank[key[i].g] = i;
  free(mean), free(var), free(lx), free(ly), free(fitv), free(sd), free(key);
}

/* seurat_v3 over all rows on one process: selected columns, ascending. */
static int64_t *ref_hvg(const tdata *t, int64_t n_top) {
  int64_t n = t->x->n_rows, m = t->x->n_cols;
  double *d = dense(t->x);
  int64_t *rank = malloc(sizeof *rank * (size_t)(m * t->n_batches));
  for (int b = 0; b < t->n_batches; b++)
    ref_batch_ranks(d, t->batch, n, m, b, rank + b * m);
  rk *key = malloc(sizeof *key * (size_t)m);
  double r[64];
  for (int64_t g = 0; g < m; g++) {
    int c = 0;
    for (int b = 0; b < t->n_batches; b++)
      if (rank[b * m + g] < n_top) r[c++] = (double)rank[b * m + g];
    qsort(r, (size_t)c, sizeof *r, tu_cmp_double);
    double med = c == 0 ? NAN : c % 2 ? r[c / 2] : (r[c / 2 - 1] + r[c / 2]) / 2;
    key[g] = (rk){med, c, g};
  }
  qsort(key, (size_t)m, sizeof *key, rk_combined);
  int64_t *sel = malloc(sizeof *sel * (size_t)n_top);
  for (int64_t i = 0; i < n_top; i++) sel[i] = key[i].g;
  qsort(sel, (size_t)n_top, sizeof *sel, i64_cmp);
  free(d), free(rank), free(key);
  return sel;
}

static void check_hvg(const tdata *t, int64_t n_top, int empty_first) {
  int64_t b, e;
  share(t->x->n_rows, empty_first, &b, &e);
  clue_csr *loc = rows_of(t->x, b, e);
  clue_comm c = tu_world();
  int64_t *sel = NULL;
  clue_err err;
  TU_OK(clue_hvg_seurat_v3(loc, t->batch + b, t->n_batches, n_top, &c, &sel, &err), &err);
  int64_t *ref = ref_hvg(t, n_top);
  int64_t same = 0;
  for (int64_t i = 0; i < n_top; i++) same += sel[i] == ref[i];
  if (same != n_top) print_error("hvg: %lld of %lld agree\n", (long long)same, (long long)n_top);
  assert_memory_equal(sel, ref, sizeof *sel * (size_t)n_top);
  free(sel);
  free(ref);
  clue_csr_free(loc);
}

static void test_hvg_vs_reference(void **state) {
  (void)state;
  tdata cite = load("bmmc_cite_600", "rna");
  if (!cite.x) skip();
  assert_int_equal(cite.n_batches, 2);
  check_hvg(&cite, 100, 0);
  check_hvg(&cite, 300, 1);
  int32_t *keep = cite.batch; /* one batch: every cell in batch 0 */
  cite.batch = calloc((size_t)cite.x->n_rows, sizeof *cite.batch);
  cite.n_batches = 1;
  check_hvg(&cite, 250, 0);
  free(cite.batch);
  cite.batch = keep;
  cite.n_batches = 2;
  tdata mo = load("bmmc_multiome_500", "rna");
  if (mo.x) check_hvg(&mo, 150, 0);
  tdata_free(&cite);
  if (mo.x) tdata_free(&mo);
}

/* ------------------------------------------------- PCA / LSI vs exact */

/* The normalised values of the used columns (n × nu), computed densely as the
 * recipe reads: log1p over the library size of ALL features of the cell. */
static double *ref_normalised(const clue_csr *x, const int64_t *used, int64_t nu,
                              clue_normalize nm) {
  int64_t n = x->n_rows, m = x->n_cols;
  double *d = dense(x), *v = malloc(sizeof *v * (size_t)(n * nu));
  for (int64_t i = 0; i < n; i++) {
    double lib = 0, lm = 0;
    for (int64_t j = 0; j < m; j++) lib += d[i * m + j];
    for (int64_t u = 0; u < nu; u++) lm += log1p(d[i * m + used[u]]) / (double)nu;
    for (int64_t u = 0; u < nu; u++) {
      double c = d[i * m + used[u]];
      v[i * nu + u] = nm == CLUE_NORM_LOG1P ? (lib > 0 ? log1p(c * 1e4 / lib) : 0)
                      : nm == CLUE_NORM_CLR ? log1p(c) - lm
                                            : c;
    }
  }
  free(d);
  return v;
}

/* Standardises the columns of v in place (population std, 0 → 1), clipping to
 * ±clip when clip > 0; the statistics go to mean/std. */
static void ref_standardise(double *v, int64_t n, int64_t nu, double clip, double *mean,
                            double *std) {
  for (int64_t u = 0; u < nu; u++) {
    double s = 0, ss = 0;
    for (int64_t i = 0; i < n; i++) s += v[i * nu + u];
    mean[u] = s / (double)n;
    for (int64_t i = 0; i < n; i++) ss += (v[i * nu + u] - mean[u]) * (v[i * nu + u] - mean[u]);
    std[u] = sqrt(ss / (double)n);
    if (!(std[u] > 1e-8 * fabs(mean[u])) || std[u] == 0) std[u] = 1;
    for (int64_t i = 0; i < n; i++) {
      double z = (v[i * nu + u] - mean[u]) / std[u];
      v[i * nu + u] = clip > 0 ? fmax(-clip, fmin(clip, z)) : z;
    }
  }
}

/* LSI matrix of all rows (n × m) as the recipe reads, and idf. */
static double *ref_lsi(const clue_csr *x, double *idf) {
  int64_t n = x->n_rows, m = x->n_cols;
  double *d = dense(x);
  for (int64_t j = 0; j < m; j++) {
    double cs = 0;
    for (int64_t i = 0; i < n; i++) cs += d[i * m + j];
    idf[j] = cs > 0 ? (double)n / cs : 0;
  }
  for (int64_t i = 0; i < n; i++) {
    double rs = 0, l1 = 0;
    for (int64_t j = 0; j < m; j++) rs += d[i * m + j];
    for (int64_t j = 0; j < m; j++) {
      d[i * m + j] = rs > 0 ? d[i * m + j] / rs * idf[j] : 0; /* tf · idf */
      l1 += d[i * m + j];
    }
    for (int64_t j = 0; j < m; j++) d[i * m + j] = l1 > 0 ? log1p(d[i * m + j] / l1 * 1e4) : 0;
  }
  return d;
}

/* v (nu × k) against the exact right vectors of a (n × nu): per-component
 * cosines of the first `lead`, principal angles of the first `span` (≥ the
 * given cosine), singular values ‖a·v_c‖ of the first `span`, and projections
 * a·v_c equal to a·v_exact_c up to sign for the first `lead`. */
static void check_subspace(const char *what, const double *a, int64_t n, int64_t nu,
                           const double *v, int k, int lead, int span, double min_cos) {
  int mn = (int)(n < nu ? n : nu);
  double *se = malloc(sizeof *se * (size_t)mn), *ve = malloc(sizeof *ve * (size_t)(nu * mn));
  assert_int_equal(tu_svd_exact(a, (int)n, (int)nu, se, ve), 0);
  double worst_lead = 1, worst_s = 0, worst_proj = 0, cosines[128];
  for (int c = 0; c < lead; c++) {
    double cs = tu_col_cos(v, k, c, ve, mn, c, nu);
    worst_lead = fmin(worst_lead, cs);
    double dot = 0, nrm = 0, diff = 0;
    double *p1 = malloc(sizeof *p1 * (size_t)n), *p2 = malloc(sizeof *p2 * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
      p1[i] = p2[i] = 0;
      for (int64_t u = 0; u < nu; u++) {
        p1[i] += a[i * nu + u] * v[u * k + c];
        p2[i] += a[i * nu + u] * ve[u * mn + c];
      }
      dot += p1[i] * p2[i];
      nrm += p2[i] * p2[i];
    }
    double sg = dot < 0 ? -1 : 1;
    for (int64_t i = 0; i < n; i++) diff += (p1[i] - sg * p2[i]) * (p1[i] - sg * p2[i]);
    worst_proj = fmax(worst_proj, sqrt(diff / nrm));
    free(p1);
    free(p2);
  }
  for (int c = 0; c < span; c++) {
    double ss = 0;
    for (int64_t i = 0; i < n; i++) {
      double t = 0;
      for (int64_t u = 0; u < nu; u++) t += a[i * nu + u] * v[u * k + c];
      ss += t * t;
    }
    worst_s = fmax(worst_s, fabs(sqrt(ss) - se[c]) / se[c]);
  }
  assert_int_equal(tu_principal_cosines(v, k, ve, mn, span, nu, cosines), 0);
  if (clue_comm_world().rank == 0)
    printf("%s: lead %d: min cos %.3e off, proj rel err %.2e; span %d: min principal cos "
           "%.3e off, s rel err %.2e\n",
           what, lead, 1 - worst_lead, worst_proj, span, 1 - cosines[span - 1], worst_s);
  assert_true(worst_lead > 1 - 1e-5);
  assert_true(worst_proj < 5e-3);
  assert_true(cosines[span - 1] > min_cos);
  assert_true(worst_s < 1e-3);
  free(se);
  free(ve);
}

/* The encoder input of this rank's rows equals a_local · proj computed here. */
static void check_encode_pca(const clue_prep *p, const tdata *t, const double *a) {
  int64_t b, e;
  share(t->x->n_rows, 0, &b, &e);
  clue_csr *loc = rows_of(t->x, b, e);
  int r = p->n_components;
  float *out = malloc(sizeof *out * (size_t)((e - b) * r + 1));
  clue_err err;
  TU_OK(clue_prep_encode_input(p, loc, out, &err), &err);
  for (int64_t i = b; i < e; i++)
    for (int c = 0; c < r; c++) {
      double want = 0;
      for (int64_t u = 0; u < p->n_used; u++)
        want += a[i * p->n_used + u] * (double)p->proj[u * r + c];
      TU_CLOSE(out[(i - b) * r + c], want, 2e-5);
    }
  free(out);
  clue_csr_free(loc);
}

static void pca_case(const char *set, const char *mod, clue_normalize nm, int features,
                     int lead, int span, double min_cos) {
  tdata t = load(set, mod);
  if (!t.x) skip();
  clue_modality_config m = mcfg(mod, CLUE_PREP_PCA, nm, CLUE_LIK_NB, features, 100);
  clue_prep *p = fit(&t, &m, 0, 0);
  int64_t n = t.x->n_rows, nu = p->n_used;
  assert_int_equal(p->n_components, (int)(nu - 1 < 100 ? nu - 1 : 100));
  double *a = ref_normalised(t.x, p->used, nu, nm);
  double *mean = malloc(sizeof *mean * (size_t)nu), *sd = malloc(sizeof *sd * (size_t)nu);
  ref_standardise(a, n, nu, 10, mean, sd);
  for (int64_t u = 0; u < nu; u++) {
    TU_CLOSE(p->mean[u], mean[u], 1e-10);
    TU_CLOSE(p->std[u], sd[u], 1e-10);
  }
  int k = p->n_components;
  double *v = malloc(sizeof *v * (size_t)(nu * k));
  for (int64_t i = 0; i < nu * k; i++) v[i] = p->proj[i];
  char what[128];
  snprintf(what, sizeof what, "%s/%s pca (%lld features)", set, mod, (long long)nu);
  check_subspace(what, a, n, nu, v, k, lead, span, min_cos);
  check_encode_pca(p, &t, a);
  free(a), free(mean), free(sd), free(v);
  clue_prep_free(p);
  tdata_free(&t);
}

static void test_pca_rna_vs_exact(void **state) {
  (void)state;
  pca_case("bmmc_cite_600", "rna", CLUE_NORM_LOG1P, 400, 10, 50, 0.999);
}

static void test_pca_adt_clr_vs_exact(void **state) {
  (void)state;
  pca_case("bmmc_cite_600", "adt", CLUE_NORM_CLR, CLUE_AUTO, 20, 90, 0.999);
}

static void test_lsi_vs_exact(void **state) {
  (void)state;
  tdata t = load("bmmc_multiome_500", "atac");
  if (!t.x) skip();
  clue_modality_config m = mcfg("atac", CLUE_PREP_LSI, CLUE_NORM_LOG1P, CLUE_LIK_BERNOULLI,
                                CLUE_AUTO, 100);
  clue_prep *p = fit(&t, &m, 0, 0);
  int64_t n = t.x->n_rows, nu = p->n_used;
  assert_int_equal(nu, t.x->n_cols);
  assert_int_equal(p->n_decoded, t.x->n_cols); /* auto = 30,000 > 600 peaks: all */
  assert_int_equal(p->n_components, 100);
  double *idf = malloc(sizeof *idf * (size_t)nu);
  double *a = ref_lsi(t.x, idf);
  for (int64_t j = 0; j < nu; j++) TU_CLOSE(p->idf[j], idf[j], 1e-12);
  int k = p->n_components;
  double *v = malloc(sizeof *v * (size_t)(nu * k)), *s = malloc(sizeof *s * (size_t)k);
  for (int c = 0; c < k; c++) { /* proj = V / s: recover s and V */
    double ss = 0;
    for (int64_t j = 0; j < nu; j++) ss += (double)p->proj[j * k + c] * p->proj[j * k + c];
    s[c] = 1 / sqrt(ss);
    for (int64_t j = 0; j < nu; j++) v[j * k + c] = p->proj[j * k + c] * s[c];
  }
  check_subspace("bmmc_multiome_500/atac lsi", a, n, nu, v, k, 10, 50, 0.999);
  /* encoder input: a_local · proj, then each row standardised (sample std) */
  int64_t b, e;
  share(n, 0, &b, &e);
  clue_csr *loc = rows_of(t.x, b, e);
  float *out = malloc(sizeof *out * (size_t)((e - b) * k + 1));
  clue_err err;
  TU_OK(clue_prep_encode_input(p, loc, out, &err), &err);
  double *row = malloc(sizeof *row * (size_t)k);
  for (int64_t i = b; i < e; i++) {
    double mu = 0, var = 0;
    for (int c = 0; c < k; c++) {
      row[c] = 0;
      for (int64_t j = 0; j < nu; j++) row[c] += a[i * nu + j] * (double)p->proj[j * k + c];
      mu += row[c] / k;
    }
    for (int c = 0; c < k; c++) var += (row[c] - mu) * (row[c] - mu) / (k - 1);
    for (int c = 0; c < k; c++) TU_CLOSE(out[(i - b) * k + c], (row[c] - mu) / sqrt(var), 1e-4);
  }
  free(row), free(out), free(idf), free(a), free(v), free(s);
  clue_csr_free(loc);
  clue_prep_free(p);
  tdata_free(&t);
}

/* lsi with features = N: the N peaks open in most cells (ties: lower column). */
static void test_lsi_top_peaks(void **state) {
  (void)state;
  tdata t = load("bmmc_multiome_500", "atac");
  if (!t.x) skip();
  clue_modality_config m = mcfg("atac", CLUE_PREP_LSI, CLUE_NORM_LOG1P, CLUE_LIK_BERNOULLI,
                                200, 20);
  clue_prep *p = fit(&t, &m, 0, 1);
  int64_t nc = t.x->n_cols;
  int64_t *open = calloc((size_t)nc, sizeof *open);
  for (int64_t e = 0; e < clue_csr_nnz(t.x); e++) open[t.x->indices[e]] += t.x->data[e] > 0;
  assert_int_equal(p->n_decoded, 200);
  char *in = calloc((size_t)nc, 1);
  for (int64_t i = 0; i < 200; i++) {
    if (i > 0) assert_true(p->decoded[i] > p->decoded[i - 1]);
    in[p->decoded[i]] = 1;
  }
  for (int64_t a = 0; a < nc; a++) /* every chosen peak beats every other one */
    for (int64_t b = 0; b < nc; b++)
      if (in[a] && !in[b]) assert_true(open[a] > open[b] || (open[a] == open[b] && a < b));
  free(open);
  free(in);
  clue_prep_free(p);
  tdata_free(&t);
}

/* ------------------------------------------------ rank independence */

static void compare_prep(const clue_prep *a, const clue_prep *b, double tol_stat,
                         double tol_proj) {
  assert_int_equal(a->kind, b->kind);
  assert_int_equal(a->normalize, b->normalize);
  assert_int_equal(a->likelihood, b->likelihood);
  assert_int_equal(a->n_input, b->n_input);
  assert_int_equal(a->n_decoded, b->n_decoded);
  assert_int_equal(a->n_used, b->n_used);
  assert_int_equal(a->n_components, b->n_components);
  assert_memory_equal(a->decoded, b->decoded, sizeof *a->decoded * (size_t)a->n_decoded);
  assert_memory_equal(a->used, b->used, sizeof *a->used * (size_t)a->n_used);
  const double *pa[5] = {a->mean, a->std, a->idf, a->target_mean, a->target_std};
  const double *pb[5] = {b->mean, b->std, b->idf, b->target_mean, b->target_std};
  for (int s = 0; s < 5; s++) {
    assert_true((pa[s] == NULL) == (pb[s] == NULL));
    int64_t n = s < 3 ? a->n_used : a->n_decoded;
    for (int64_t i = 0; pa[s] && i < n; i++) TU_CLOSE(pa[s][i], pb[s][i], tol_stat);
  }
  assert_true((a->proj == NULL) == (b->proj == NULL));
  for (int64_t i = 0; a->proj && i < a->n_used * a->n_components; i++)
    TU_CLOSE(a->proj[i], b->proj[i], tol_proj);
}

/* Fitted over the ranks (with and without an empty rank 0) vs alone on all
 * rows: the same state, encoder inputs and targets. */
static void rank_case(const char *set, const char *mod, clue_modality_config m) {
  tdata t = load(set, mod);
  if (!t.x) skip();
  clue_prep *ps = fit(&t, &m, 1, 0);
  int64_t b, e;
  share(t.x->n_rows, 0, &b, &e);
  clue_csr *loc = rows_of(t.x, b, e);
  int r = ps->n_components;
  float *o1 = malloc(sizeof *o1 * (size_t)((e - b) * r + 1));
  float *o2 = malloc(sizeof *o2 * (size_t)((e - b) * r + 1));
  clue_err err;
  for (int empty_first = 0; empty_first < 2; empty_first++) {
    clue_prep *pw = fit(&t, &m, 0, empty_first);
    compare_prep(pw, ps, 1e-9, 1e-5);
    TU_OK(clue_prep_encode_input(pw, loc, o1, &err), &err);
    TU_OK(clue_prep_encode_input(ps, loc, o2, &err), &err);
    for (int64_t i = 0; i < (e - b) * r; i++) TU_CLOSE(o1[i], o2[i], 1e-4);
    clue_csr *t1 = NULL, *t2 = NULL;
    TU_OK(clue_prep_decode_target(pw, loc, &t1, &err), &err);
    TU_OK(clue_prep_decode_target(ps, loc, &t2, &err), &err);
    assert_memory_equal(t1->indptr, t2->indptr, sizeof *t1->indptr * (size_t)(e - b + 1));
    for (int64_t i = 0; i < clue_csr_nnz(t1); i++) {
      assert_int_equal(t1->indices[i], t2->indices[i]);
      TU_CLOSE(t1->data[i], t2->data[i], 1e-6);
    }
    clue_csr_free(t1);
    clue_csr_free(t2);
    clue_prep_free(pw);
  }
  free(o1);
  free(o2);
  clue_csr_free(loc);
  clue_prep_free(ps);
  tdata_free(&t);
}

static void test_rank_independence(void **state) {
  (void)state;
  rank_case("bmmc_cite_600", "rna",
            mcfg("rna", CLUE_PREP_PCA, CLUE_NORM_LOG1P, CLUE_LIK_NB, 300, 50));
  rank_case("bmmc_cite_600", "adt",
            mcfg("adt", CLUE_PREP_PCA, CLUE_NORM_CLR, CLUE_LIK_NORMAL, CLUE_AUTO, 100));
  rank_case("bmmc_multiome_500", "atac",
            mcfg("atac", CLUE_PREP_LSI, CLUE_NORM_LOG1P, CLUE_LIK_BERNOULLI, 200, 100));
  rank_case("bmmc_cite_600", "adt",
            mcfg("adt", CLUE_PREP_NONE, CLUE_NORM_LOG1P, CLUE_LIK_NORMAL, CLUE_AUTO, 100));
}

/* ------------------------------------------------------- save / load */

static hid_t new_file(const char *name) {
  char file[64];
  snprintf(file, sizeof file, "%s_r%d.h5", name, clue_comm_world().rank);
  hid_t f = H5Fcreate(tu_path(file), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(f >= 0);
  return f;
}

static void test_save_load(void **state) {
  (void)state;
  tdata rna = load("bmmc_cite_600", "rna"), atac = load("bmmc_multiome_500", "atac");
  if (!rna.x || !atac.x) skip();
  clue_modality_config ms[3] = {
      mcfg("rna", CLUE_PREP_PCA, CLUE_NORM_LOG1P, CLUE_LIK_NB, 200, 30),
      mcfg("atac", CLUE_PREP_LSI, CLUE_NORM_LOG1P, CLUE_LIK_BERNOULLI, 100, 20),
      mcfg("rna", CLUE_PREP_NONE, CLUE_NORM_LOG1P, CLUE_LIK_NORMAL, CLUE_AUTO, 0)};
  const tdata *ts[3] = {&rna, &atac, &rna};
  hid_t f = new_file("saveload");
  clue_err err;
  for (int c = 0; c < 3; c++) {
    clue_prep *p = fit(ts[c], &ms[c], 0, 0), *q = NULL;
    char name[16];
    snprintf(name, sizeof name, "m%d", c);
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    TU_OK(clue_prep_save(p, g, &err), &err);
    H5Gclose(g);
    H5Fflush(f, H5F_SCOPE_GLOBAL);
    g = H5Gopen2(f, name, H5P_DEFAULT);
    TU_OK(clue_prep_load(g, &q, &err), &err);
    H5Gclose(g);
    compare_prep(p, q, 0, 0); /* exact */
    clue_prep_free(p);
    clue_prep_free(q);
  }
  /* a second save into the same group is refused, not merged */
  clue_prep *p = fit(&rna, &ms[0], 0, 0);
  hid_t g = H5Gopen2(f, "m0", H5P_DEFAULT);
  assert_int_equal(clue_prep_save(p, g, &err), CLUE_EIO);
  assert_non_null(strstr(err.msg, "/m0"));
  H5Gclose(g);
  clue_prep_free(p);
  H5Fclose(f);
  tdata_free(&rna);
  tdata_free(&atac);
}

/* Saves a small fitted state into group `name` of f, then applies `damage`. */
typedef void (*damage_fn)(hid_t g);

static void damage_proj_shape(hid_t g) {
  H5Ldelete(g, "proj", H5P_DEFAULT);
  hsize_t dims[2] = {3, 2};
  hid_t sp = H5Screate_simple(2, dims, NULL);
  hid_t d = H5Dcreate2(g, "proj", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  float z[6] = {0};
  H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, z);
  H5Dclose(d);
  H5Sclose(sp);
}

static void damage_order(hid_t g) {
  hid_t d = H5Dopen2(g, "decoded", H5P_DEFAULT);
  int64_t v[2] = {3, 1};
  hsize_t start = 0, cnt = 2;
  hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &cnt, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
  H5Dwrite(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, v);
  H5Sclose(fs);
  H5Sclose(ms);
  H5Dclose(d);
}

static void damage_kind(hid_t g) {
  H5Adelete(g, "kind");
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, 5);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(g, "kind", t, sp, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, "pcaa");
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
}

static void damage_version(hid_t g) {
  hid_t a = H5Aopen(g, "clue_prep_version", H5P_DEFAULT);
  int64_t v = 2;
  H5Awrite(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
}

static void damage_std(hid_t g) { H5Ldelete(g, "std", H5P_DEFAULT); }

static void damage_nan(hid_t g) {
  hid_t d = H5Dopen2(g, "mean", H5P_DEFAULT);
  double v = NAN;
  hsize_t start = 1, cnt = 1;
  hid_t fs = H5Dget_space(d), ms = H5Screate_simple(1, &cnt, NULL);
  H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &cnt, NULL);
  H5Dwrite(d, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, &v);
  H5Sclose(fs);
  H5Sclose(ms);
  H5Dclose(d);
}

static void test_load_refuses(void **state) {
  (void)state;
  tdata rna = load("bmmc_cite_600", "rna");
  if (!rna.x) skip();
  clue_modality_config m = mcfg("rna", CLUE_PREP_PCA, CLUE_NORM_LOG1P, CLUE_LIK_NB, 50, 10);
  clue_prep *p = fit(&rna, &m, 0, 0);
  damage_fn dmg[6] = {damage_proj_shape, damage_order, damage_kind,
                      damage_version,    damage_std,   damage_nan};
  const char *want[6][2] = {{"'proj'", "shape"},        {"'decoded'", "ascending"},
                            {"unknown kind", "pcaa"},   {"version is 2", "version 1"},
                            {"'std' is missing", "/b4"}, {"'mean'", "invalid value"}};
  hid_t f = new_file("refuse");
  clue_err err;
  for (int c = 0; c < 6; c++) {
    char name[8];
    snprintf(name, sizeof name, "b%d", c);
    hid_t g = H5Gcreate2(f, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    TU_OK(clue_prep_save(p, g, &err), &err);
    dmg[c](g);
    clue_prep *q = (clue_prep *)&err; /* must be reset to NULL */
    assert_int_equal(clue_prep_load(g, &q, &err), CLUE_EFORMAT);
    assert_null(q);
    if (!strstr(err.msg, want[c][0]) || !strstr(err.msg, want[c][1]))
      print_error("case %d: %s\n", c, err.msg);
    assert_non_null(strstr(err.msg, want[c][0]));
    assert_non_null(strstr(err.msg, want[c][1]));
    H5Gclose(g);
  }
  H5Fclose(f);
  clue_prep_free(p);
  tdata_free(&rna);
}

/* ------------------------------------------------- hand-computed cases */

/* A small matrix from dense rows (every rank holds all of it). */
static tdata small(int64_t n, int64_t m, const double *d, const int32_t *batch, int nb) {
  int64_t nnz = 0;
  for (int64_t i = 0; i < n * m; i++) nnz += d[i] != 0;
  clue_err err;
  tdata t = {.x = clue_csr_new(n, m, nnz, &err), .n_batches = nb};
  t.batch = calloc((size_t)n, sizeof *t.batch);
  int64_t e = 0;
  for (int64_t i = 0; i < n; i++) {
    for (int64_t j = 0; j < m; j++)
      if (d[i * m + j] != 0) t.x->indices[e] = (int32_t)j, t.x->data[e++] = (float)d[i * m + j];
    t.x->indptr[i + 1] = e;
    if (batch) t.batch[i] = batch[i];
  }
  return t;
}

static const double SMALL[4 * 5] = {1, 0, 3, 0, 0,  /* */
                                    0, 2, 1, 0, 5,  /* */
                                    4, 0, 0, 0, 0,  /* */
                                    0, 0, 2, 1, 0};

/* Targets: nb raw counts, bernoulli 0/1, normal standardised; lsi decodes the
 * peaks open in most cells (f2: 3 cells, f0: 2; ties of 1 by lower column). */
static void test_targets_by_hand(void **state) {
  (void)state;
  tdata t = small(4, 5, SMALL, NULL, 1);
  clue_err err;
  clue_modality_config m = mcfg("atac", CLUE_PREP_LSI, CLUE_NORM_LOG1P, CLUE_LIK_BERNOULLI, 2, 2);
  clue_prep *p = fit(&t, &m, 0, 1);
  assert_int_equal(p->n_decoded, 2);
  assert_int_equal(p->decoded[0], 0);
  assert_int_equal(p->decoded[1], 2);
  clue_csr *y = NULL;
  TU_OK(clue_prep_decode_target(p, t.x, &y, &err), &err);
  int64_t want_ptr[5] = {0, 2, 3, 4, 5};
  int32_t want_idx[5] = {0, 1, 1, 0, 1};
  assert_memory_equal(y->indptr, want_ptr, sizeof want_ptr);
  assert_memory_equal(y->indices, want_idx, sizeof want_idx);
  for (int i = 0; i < 5; i++) assert_true(y->data[i] == 1.0f);
  clue_csr_free(y);
  p->likelihood = CLUE_LIK_NB;
  TU_OK(clue_prep_decode_target(p, t.x, &y, &err), &err);
  float want_nb[5] = {1, 3, 1, 4, 2};
  assert_memory_equal(y->data, want_nb, sizeof want_nb);
  assert_int_equal(y->n_cols, 2);
  clue_csr_free(y);
  clue_prep_free(p);
  /* normal, pass-through: feature 0 has mean 1.25 and population std
   * sqrt(10.75 / 4); every feature standardised */
  m = mcfg("pcs", CLUE_PREP_NONE, CLUE_NORM_LOG1P, CLUE_LIK_NORMAL, CLUE_AUTO, 7);
  p = fit(&t, &m, 0, 0);
  assert_int_equal(p->n_components, 5);
  TU_CLOSE(p->target_mean[0], 1.25, 1e-15);
  TU_CLOSE(p->target_std[0], sqrt(10.75 / 4), 1e-15);
  TU_OK(clue_prep_decode_target(p, t.x, &y, &err), &err);
  assert_int_equal(clue_csr_nnz(y), 20);
  TU_CLOSE(y->data[0], (1 - 1.25) / sqrt(10.75 / 4), 1e-6);
  TU_CLOSE(y->data[5], (0 - 1.25) / sqrt(10.75 / 4), 1e-6);
  float out[20];
  TU_OK(clue_prep_encode_input(p, t.x, out, &err), &err);
  for (int j = 0; j < 5; j++) { /* encoder input = the standardised input */
    double s = 0, ss = 0;
    for (int i = 0; i < 4; i++) s += out[i * 5 + j], ss += out[i * 5 + j] * out[i * 5 + j];
    TU_CLOSE(s / 4, 0, 1e-6);
    TU_CLOSE(ss / 4, 1, 1e-6);
    for (int i = 0; i < 4; i++) TU_CLOSE(out[i * 5 + j], y->data[i * 5 + j], 1e-6);
  }
  clue_csr_free(y);
  clue_prep_free(p);
  tdata_free(&t);
}

/* log1p normalises by the library size over ALL features of a cell, before
 * the highly variable genes are taken. */
static void test_log1p_library_all_features(void **state) {
  (void)state;
  enum { N = 12, M = 6 };
  double d[N * M];
  clue_rng r = clue_rng_stream(11, CLUE_RNG_TEST, 0, 0);
  for (int i = 0; i < N * M; i++) d[i] = (double)clue_rng_poisson(&r, 1.0 + (i % M));
  tdata t = small(N, M, d, NULL, 1);
  clue_modality_config m = mcfg("rna", CLUE_PREP_PCA, CLUE_NORM_LOG1P, CLUE_LIK_NB, 3, 100);
  clue_prep *p = fit(&t, &m, 0, 0);
  assert_int_equal(p->n_used, 3);
  assert_int_equal(p->n_components, 2);
  for (int u = 0; u < 3; u++) {
    double s = 0;
    for (int i = 0; i < N; i++) {
      double lib = 0;
      for (int j = 0; j < M; j++) lib += d[i * M + j];
      s += log1p(d[i * M + p->used[u]] * 1e4 / lib);
    }
    TU_CLOSE(p->mean[u], s / N, 1e-12);
  }
  clue_prep_free(p);
  tdata_free(&t);
}

/* clr looks log1p of whole counts below 4096 up in a table: counts on both
 * sides of that limit and fractional ones give the reference's means, stds and
 * encoder inputs. */
static void test_clr_counts_table(void **state) {
  (void)state;
  enum { N = 40, M = 5 };
  static const double vals[] = {0, 1, 2, 4095, 4096, 4097, 70000, 2.5, 0.25, 1e6, 17};
  double d[N * M];
  clue_rng r = clue_rng_stream(12, CLUE_RNG_TEST, 0, 0);
  for (int i = 0; i < N * M; i++) d[i] = vals[clue_rng_below(&r, 11)];
  tdata t = small(N, M, d, NULL, 1);
  clue_modality_config m = mcfg("adt", CLUE_PREP_PCA, CLUE_NORM_CLR, CLUE_LIK_NB, CLUE_AUTO, 3);
  clue_prep *p = fit(&t, &m, 0, 0);
  int64_t nu = p->n_used;
  assert_int_equal(nu, M);
  double *a = ref_normalised(t.x, p->used, nu, CLUE_NORM_CLR);
  double mean[M], sd[M];
  ref_standardise(a, N, nu, 10, mean, sd);
  for (int64_t u = 0; u < nu; u++) {
    TU_CLOSE(p->mean[u], mean[u], 1e-12);
    TU_CLOSE(p->std[u], sd[u], 1e-12);
  }
  check_encode_pca(p, &t, a);
  free(a);
  clue_prep_free(p);
  tdata_free(&t);
}

/* A batch of one cell takes no part in the ranking: the selection equals the
 * reference computed without that cell. More genes asked than exist: all. */
static void test_hvg_small_batches(void **state) {
  (void)state;
  tdata t = load("bmmc_cite_600", "rna");
  if (!t.x) skip();
  int64_t n = t.x->n_rows;
  tdata rest = {.x = rows_of(t.x, 1, n), .batch = t.batch + 1, .n_batches = 2};
  int64_t *ref = ref_hvg(&rest, 120);
  t.batch[0] = 2;
  t.n_batches = 3;
  int64_t b, e;
  share(n, 0, &b, &e);
  clue_csr *loc = rows_of(t.x, b, e);
  clue_comm c = tu_world();
  int64_t *sel = NULL;
  clue_err err;
  TU_OK(clue_hvg_seurat_v3(loc, t.batch + b, 3, 120, &c, &sel, &err), &err);
  assert_memory_equal(sel, ref, sizeof *sel * 120);
  free(sel);
  TU_OK(clue_hvg_seurat_v3(loc, t.batch + b, 3, 5000, &c, &sel, &err), &err);
  for (int64_t g = 0; g < t.x->n_cols; g++) assert_int_equal(sel[g], g);
  free(sel);
  free(ref);
  clue_csr_free(loc);
  clue_csr_free(rest.x);
  tdata_free(&t);
}

/* Bad input reaches every rank as one clear error, never a hang. */
static void test_bad_input(void **state) {
  (void)state;
  clue_comm c = tu_world();
  tdata t = small(4, 5, SMALL, NULL, 1);
  clue_err err;
  clue_prep *p = NULL;
  clue_modality_config m = mcfg("rna", CLUE_PREP_PCA, CLUE_NORM_LOG1P, CLUE_LIK_NB, 3, 2);
  /* a negative count on the last rank only */
  clue_csr *loc = rows_of(t.x, 0, 4);
  if (c.rank == c.size - 1) loc->data[2] = -1;
  assert_int_equal(clue_prep_fit(&m, loc, t.batch, 1, 5000, 1, &c, 0, &p, &err), CLUE_EDATA);
  assert_null(p);
  assert_non_null(strstr(err.msg, "negative"));
  assert_non_null(strstr(err.msg, "modality rna"));
  loc->data[2] = 3;
  /* a batch code outside [0, n_batches) on rank 0 */
  int32_t bad[4] = {0, 0, 0, 0};
  if (c.rank == 0) bad[1] = 7;
  assert_int_equal(clue_prep_fit(&m, loc, bad, 1, 5000, 1, &c, 0, &p, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "batch code 7"));
  /* one training cell in all */
  clue_csr *one = rows_of(t.x, 0, c.rank == 0 ? 1 : 0);
  assert_int_equal(clue_prep_fit(&m, one, t.batch, 1, 5000, 1, &c, 0, &p, &err), CLUE_EDATA);
  assert_non_null(strstr(err.msg, "at least 2 training cells"));
  m.n_components = 0;
  assert_int_equal(clue_prep_fit(&m, loc, t.batch, 1, 5000, 1, &c, 0, &p, &err), CLUE_ECONFIG);
  m.n_components = 2;
  TU_OK(clue_prep_fit(&m, loc, t.batch, 1, 5000, 1, &c, 0, &p, &err), &err);
  clue_csr *wide = clue_csr_new(1, 6, 0, &err);
  float out[4];
  assert_int_equal(clue_prep_encode_input(p, wide, out, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "6 features"));
  clue_csr *y = NULL;
  assert_int_equal(clue_prep_decode_target(p, wide, &y, &err), CLUE_EINVAL);
  clue_csr_free(wide);
  clue_prep_free(p);
  clue_csr_free(one);
  clue_csr_free(loc);
  tdata_free(&t);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_hvg_vs_reference),
      cmocka_unit_test(test_hvg_small_batches),
      cmocka_unit_test(test_pca_rna_vs_exact),
      cmocka_unit_test(test_pca_adt_clr_vs_exact),
      cmocka_unit_test(test_lsi_vs_exact),
      cmocka_unit_test(test_lsi_top_peaks),
      cmocka_unit_test(test_rank_independence),
      cmocka_unit_test(test_save_load),
      cmocka_unit_test(test_load_refuses),
      cmocka_unit_test(test_targets_by_hand),
      cmocka_unit_test(test_log1p_library_all_features),
      cmocka_unit_test(test_clr_counts_table),
      cmocka_unit_test(test_bad_input),
  };
  return TU_RUN(tests);
}
