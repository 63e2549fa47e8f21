/* test_h5ad_read.c — the AnnData/MuData reader on fixtures written by anndata
 * (tests/h5ad_fixtures.py): every matrix layout (CSR with int32/int64 indptr,
 * uint16/int64 indices, float64 and integer data, CSC, dense, unsorted and
 * duplicated indices), layers, every obs column kind, fixed-length strings,
 * obsm, MuData modalities and obsmap, pairing, structure errors, bytes read,
 * and a read of 30,000 scattered rows. Single process. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clue/dataset.h"
#include "clue/h5ad.h"
#include "testutil.h"
#include "tu_h5ad.h"

#define FIXTURES()                   \
  do {                               \
    if (!tu_h5ad_fixtures()) skip(); \
  } while (0)

static h5ad_file *open_ok(const char *name, const char *group) {
  clue_comm self = clue_comm_self();
  clue_err err;
  h5ad_file *f = NULL;
  TU_OK(h5ad_open(tu_fixture(name), group, &self, &f, &err), &err);
  return f;
}

/* Row k of x must be cell rows[k] of formula val (nv features). */
static void check_rows(const clue_csr *x, const int64_t *rows, int64_t n, int nv,
                       double (*val)(int, int)) {
  assert_int_equal(x->n_rows, n);
  assert_int_equal(x->n_cols, nv);
  for (int64_t k = 0; k < n; k++) {
    double dense[64] = {0};
    for (int64_t j = x->indptr[k]; j < x->indptr[k + 1]; j++) {
      assert_true(x->indices[j] >= 0 && x->indices[j] < nv);
      if (j > x->indptr[k]) assert_true(x->indices[j] > x->indices[j - 1]);
      dense[x->indices[j]] = x->data[j];
    }
    for (int j = 0; j < nv; j++) {
      if (dense[j] != val((int)rows[k], j))
        print_error("row %lld (cell %lld) col %d: %g vs %g\n", (long long)k,
                    (long long)rows[k], j, dense[j], val((int)rows[k], j));
      assert_true(dense[j] == val((int)rows[k], j));
    }
  }
}

static int64_t formula_nnz(void) {
  int64_t n = 0;
  for (int i = 0; i < TU_N_OBS; i++)
    for (int j = 0; j < TU_N_VAR; j++) n += tu_val(i, j) != 0;
  return n;
}

/* Reads all rows and a scattered subset of X or a layer; checks the values and
 * the stored values per row (`dup1`: row 1 stores one duplicated entry). */
static void check_matrix_dup(h5ad_file *f, const char *layer, int dup1) {
  clue_err err;
  int64_t all[TU_N_OBS];
  for (int i = 0; i < TU_N_OBS; i++) all[i] = i;
  const int64_t some[] = {0, 3, 4, 5, 17, 30, 39};
  clue_csr *x = NULL;
  TU_OK(h5ad_read_rows(f, layer, all, TU_N_OBS, &x, &err), &err);
  check_rows(x, all, TU_N_OBS, TU_N_VAR, tu_val);
  clue_csr_free(x);
  TU_OK(h5ad_read_rows(f, layer, some, 7, &x, &err), &err);
  check_rows(x, some, 7, TU_N_VAR, tu_val);
  clue_csr_free(x);
  TU_OK(h5ad_read_rows(f, layer, NULL, 0, &x, &err), &err);
  assert_int_equal(x->n_rows, 0);
  clue_csr_free(x);
  int64_t *nnz = NULL;
  TU_OK(h5ad_read_row_nnz(f, layer, &nnz, &err), &err);
  h5ad_matrix_info in;
  TU_OK(h5ad_matrix_info_get(f, layer, &in, &err), &err);
  for (int i = 0; i < TU_N_OBS; i++) {
    int64_t want = 0;
    for (int j = 0; j < TU_N_VAR; j++) want += tu_val(i, j) != 0;
    assert_int_equal(nnz[i], in.kind == H5AD_DENSE ? TU_N_VAR : want + (i == 1) * dup1);
  }
  free(nnz);
}

static void check_matrix(h5ad_file *f, const char *layer) {
  check_matrix_dup(f, layer, 0);
}

static void test_csr(void **state) {
  (void)state;
  FIXTURES();
  h5ad_file *f = open_ok("csr.h5ad", NULL);
  assert_int_equal(h5ad_n_obs(f), TU_N_OBS);
  assert_int_equal(h5ad_n_vars(f), TU_N_VAR);
  assert_string_equal(h5ad_group(f), "");
  clue_err err;
  h5ad_matrix_info in;
  TU_OK(h5ad_matrix_info_get(f, NULL, &in, &err), &err);
  assert_int_equal(in.kind, H5AD_CSR);
  assert_int_equal(in.nnz, formula_nnz());
  assert_true(in.float_data);
  assert_int_equal(in.data_bytes, 4);
  assert_int_equal(in.indptr_bytes, 4);
  assert_int_equal(in.index_bytes, 4);
  assert_string_equal(in.dtype, "float32");
  check_matrix(f, NULL);
  check_matrix(f, "X");
  h5ad_close(f);
}

/* Every stored layout gives the same values. */
static void test_layouts(void **state) {
  (void)state;
  FIXTURES();
  struct {
    const char *file;
    h5ad_matrix_kind kind;
    const char *dtype, *index_dtype;
    int indptr_bytes;
  } cases[] = {
      {"csr64.h5ad", H5AD_CSR, "float64", "uint16", 8},
      {"csr_int.h5ad", H5AD_CSR, "int32", "int64", 4},
      {"csc.h5ad", H5AD_CSC, "float32", "int32", 4},
      {"dense.h5ad", H5AD_DENSE, "float32", "", 0},
      {"fixedstr.h5ad", H5AD_CSR, "float32", "int32", 4},
      {"unsorted.h5ad", H5AD_CSR, "float32", "int32", 4},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    h5ad_file *f = open_ok(cases[c].file, NULL);
    clue_err err;
    h5ad_matrix_info in;
    TU_OK(h5ad_matrix_info_get(f, NULL, &in, &err), &err);
    assert_int_equal(in.kind, cases[c].kind);
    assert_string_equal(in.dtype, cases[c].dtype);
    assert_string_equal(in.index_dtype, cases[c].index_dtype);
    assert_int_equal(in.indptr_bytes, cases[c].indptr_bytes);
    assert_int_equal(in.float_data, cases[c].dtype[0] == 'f');
    check_matrix_dup(f, NULL, strstr(cases[c].file, "unsorted") != NULL);
    h5ad_close(f);
  }
}

static void test_layers(void **state) {
  (void)state;
  FIXTURES();
  h5ad_file *f = open_ok("csr.h5ad", NULL);
  clue_err err;
  clue_strings *names = NULL;
  TU_OK(h5ad_layer_names(f, &names, &err), &err);
  assert_int_equal(names->n, 2);
  assert_string_equal(names->s[0], "counts");
  assert_string_equal(names->s[1], "dense");
  clue_strings_free(names);
  h5ad_matrix_info in;
  TU_OK(h5ad_matrix_info_get(f, "counts", &in, &err), &err);
  assert_int_equal(in.indptr_bytes, 8);
  assert_string_equal(in.dtype, "int64");
  check_matrix(f, "counts");
  TU_OK(h5ad_matrix_info_get(f, "dense", &in, &err), &err);
  assert_int_equal(in.kind, H5AD_DENSE);
  assert_int_equal(in.nnz, TU_N_OBS * TU_N_VAR);
  check_matrix(f, "dense");
  assert_int_equal(h5ad_matrix_info_get(f, "nope", &in, &err), CLUE_EFORMAT);
  assert_non_null(strstr(err.msg, "has no layer 'nope' (layers: counts, dense)"));
  h5ad_close(f);
}

/* Tiny collective reads: many rounds, on CSR, CSC and dense. */
static void test_read_limit(void **state) {
  (void)state;
  FIXTURES();
  const char *files[] = {"csr64.h5ad", "csc.h5ad", "dense.h5ad"};
  const int64_t some[] = {1, 2, 3, 9, 10, 22, 23, 24, 38};
  for (int c = 0; c < 3; c++) {
    h5ad_file *f = open_ok(files[c], NULL);
    h5ad_set_read_limit(f, 3);
    clue_err err;
    clue_csr *x = NULL;
    TU_OK(h5ad_read_rows(f, NULL, some, 9, &x, &err), &err);
    check_rows(x, some, 9, TU_N_VAR, tu_val);
    clue_csr_free(x);
    int64_t *nnz = NULL;
    TU_OK(h5ad_read_row_nnz(f, NULL, &nnz, &err), &err);
    free(nnz);
    h5ad_close(f);
  }
}

static void test_obs_columns(void **state) {
  (void)state;
  FIXTURES();
  h5ad_file *f = open_ok("csr.h5ad", NULL);
  clue_err err;
  clue_strings *cols = NULL;
  TU_OK(h5ad_obs_column_names(f, &cols, &err), &err);
  const char *want[] = {"cat",   "num",   "ints",  "flag", "nint",
                        "nbool", "split", "batch", "name"};
  assert_int_equal(cols->n, 9);
  for (int i = 0; i < 9; i++) assert_string_equal(cols->s[i], want[i]);
  clue_strings_free(cols);
  h5ad_column *c = NULL;
  char lab[64];
  const char *abc[] = {"a", "b", "c", ""};
  TU_OK(h5ad_read_obs_column(f, "cat", &c, &err), &err);
  assert_int_equal(c->kind, H5AD_COL_CATEGORICAL);
  assert_int_equal(c->categories->n, 3);
  assert_false(c->ordered);
  assert_string_equal(c->encoding, "categorical");
  for (int i = 0; i < TU_N_OBS; i++) {
    assert_int_equal(c->codes[i], i % 4 == 3 ? -1 : i % 4);
    h5ad_column_label(c, i, lab, sizeof lab);
    assert_string_equal(lab, abc[i % 4]);
  }
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column(f, "num", &c, &err), &err);
  assert_int_equal(c->kind, H5AD_COL_NUMERIC);
  for (int i = 0; i < TU_N_OBS; i++) assert_true(c->values[i] == i * 0.5);
  h5ad_column_label(c, 3, lab, sizeof lab);
  assert_string_equal(lab, "1.5");
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column(f, "ints", &c, &err), &err);
  h5ad_column_label(c, 7, lab, sizeof lab);
  assert_string_equal(lab, "7");
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column(f, "flag", &c, &err), &err);
  assert_int_equal(c->kind, H5AD_COL_BOOL);
  for (int i = 0; i < TU_N_OBS; i++) assert_true(c->values[i] == (i % 3 == 0));
  h5ad_column_label(c, 3, lab, sizeof lab);
  assert_string_equal(lab, "True");
  h5ad_column_label(c, 4, lab, sizeof lab);
  assert_string_equal(lab, "False");
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column(f, "nint", &c, &err), &err);
  assert_int_equal(c->kind, H5AD_COL_NUMERIC);
  assert_string_equal(c->encoding, "nullable-integer");
  for (int i = 0; i < TU_N_OBS; i++)
    assert_true(i % 5 == 0 ? isnan(c->values[i]) : c->values[i] == i);
  h5ad_column_label(c, 5, lab, sizeof lab);
  assert_string_equal(lab, "");
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column(f, "nbool", &c, &err), &err);
  assert_int_equal(c->kind, H5AD_COL_BOOL);
  for (int i = 0; i < TU_N_OBS; i++)
    assert_true(i % 7 == 0 ? isnan(c->values[i]) : c->values[i] == (i % 2 == 0));
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column(f, "batch", &c, &err), &err); /* int64 codes */
  for (int i = 0; i < TU_N_OBS; i++) assert_int_equal(c->codes[i], i % 3);
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column(f, "name", &c, &err), &err);
  assert_int_equal(c->kind, H5AD_COL_STRING);
  assert_string_equal(c->encoding, "string-array");
  h5ad_column_label(c, 8, lab, sizeof lab);
  assert_string_equal(lab, "n2");
  h5ad_column_free(c);
  assert_int_equal(h5ad_read_obs_column(f, "nosuch", &c, &err), CLUE_EFORMAT);
  assert_non_null(strstr(err.msg, "has no column 'nosuch' (columns: cat, num, ints"));
  assert_null(c);
  h5ad_close(f);
  /* int16 codes; fixed-length strings everywhere (column-order too) */
  const char *files[] = {"csr64.h5ad", "fixedstr.h5ad"};
  for (int k = 0; k < 2; k++) {
    f = open_ok(files[k], NULL);
    TU_OK(h5ad_obs_column_names(f, &cols, &err), &err);
    assert_int_equal(cols->n, 8);
    for (int i = 0; i < 8; i++) assert_string_equal(cols->s[i], want[i]);
    clue_strings_free(cols);
    TU_OK(h5ad_read_obs_column(f, "cat", &c, &err), &err);
    for (int i = 0; i < TU_N_OBS; i++)
      assert_int_equal(c->codes[i], i % 4 == 3 ? -1 : i % 4);
    assert_string_equal(c->categories->s[2], "c");
    h5ad_column_free(c);
    h5ad_close(f);
  }
}

static void test_names_obsm(void **state) {
  (void)state;
  FIXTURES();
  const char *files[] = {"csr.h5ad", "fixedstr.h5ad"};
  clue_err err;
  for (int k = 0; k < 2; k++) {
    h5ad_file *f = open_ok(files[k], NULL);
    clue_strings *obs = NULL, *var = NULL;
    TU_OK(h5ad_read_obs_names(f, &obs, &err), &err);
    TU_OK(h5ad_read_var_names(f, &var, &err), &err);
    assert_int_equal(obs->n, TU_N_OBS);
    assert_int_equal(var->n, TU_N_VAR);
    assert_string_equal(obs->s[0], "c00");
    assert_string_equal(obs->s[39], "c39");
    assert_string_equal(var->s[12], "g12");
    clue_strings_free(obs);
    clue_strings_free(var);
    clue_strings *keys = NULL;
    TU_OK(h5ad_obsm_names(f, &keys, &err), &err);
    assert_int_equal(keys->n, 1);
    assert_string_equal(keys->s[0], "X_pca");
    clue_strings_free(keys);
    float *pca = NULL;
    int64_t nc = 0;
    TU_OK(h5ad_read_obsm_rows(f, "X_pca", 5, 12, &pca, &nc, &err), &err);
    assert_int_equal(nc, 3);
    for (int i = 0; i < 7; i++)
      for (int j = 0; j < 3; j++) TU_CLOSE(pca[i * 3 + j], (5 + i) + j / 10.0, 1e-6);
    free(pca);
    assert_int_equal(h5ad_read_obsm_rows(f, "X_umap", 0, 1, &pca, &nc, &err),
                     CLUE_EFORMAT);
    assert_non_null(strstr(err.msg, "obsm/X_umap is missing"));
    h5ad_close(f);
  }
}

/* MuData: modalities, obsmap, reading a modality, the root's global obs. */
static void test_h5mu(void **state) {
  (void)state;
  FIXTURES();
  clue_err err;
  const char *mu = tu_fixture("pair.h5mu");
  assert_true(h5mu_is_mudata(mu));
  assert_false(h5mu_is_mudata(tu_fixture("csr.h5ad")));
  assert_false(h5mu_is_mudata(tu_fixture("bad_text.h5ad")));
  clue_strings *mods = NULL;
  TU_OK(h5mu_mod_names(mu, &mods, &err), &err);
  assert_int_equal(mods->n, 2);
  assert_string_equal(mods->s[0], "rna");
  assert_string_equal(mods->s[1], "adt");
  clue_strings_free(mods);
  int64_t *map = NULL, n = 0;
  TU_OK(h5mu_read_obsmap(mu, "rna", &map, &n, &err), &err);
  assert_int_equal(n, TU_N_OBS);
  for (int i = 0; i < TU_N_OBS; i++) assert_int_equal(map[i], i < 30 ? i + 1 : 0);
  free(map);
  TU_OK(h5mu_read_obsmap(mu, "adt", &map, &n, &err), &err);
  for (int i = 0; i < TU_N_OBS; i++) assert_int_equal(map[i], i >= 10 ? 39 - i + 1 : 0);
  free(map);
  TU_OK(h5mu_read_obsmap(tu_fixture("pair_noobsmap.h5mu"), "adt", &map, &n, &err), &err);
  assert_null(map);
  clue_strings *g = NULL;
  TU_OK(h5mu_read_obs_names(mu, &g, &err), &err);
  assert_int_equal(g->n, TU_N_OBS);
  assert_string_equal(g->s[10], "c10");
  clue_strings_free(g);
  h5ad_file *f = open_ok("pair.h5mu", "mod/adt");
  assert_int_equal(h5ad_n_obs(f), 30);
  assert_int_equal(h5ad_n_vars(f), TU_N_VAR2);
  int64_t rows[30], cells[30];
  for (int r = 0; r < 30; r++) rows[r] = r, cells[r] = 39 - r;
  clue_csr *x = NULL;
  TU_OK(h5ad_read_rows(f, NULL, rows, 30, &x, &err), &err);
  check_rows(x, cells, 30, TU_N_VAR2, tu_val2);
  clue_csr_free(x);
  h5ad_close(f);
  f = open_ok("pair.h5mu", NULL); /* the root: global obs only */
  assert_true(h5ad_is_mudata_root(f));
  assert_int_equal(h5ad_n_obs(f), TU_N_OBS);
  h5ad_matrix_info in;
  assert_int_equal(h5ad_matrix_info_get(f, NULL, &in, &err), CLUE_EFORMAT);
  assert_non_null(strstr(err.msg, "name a modality"));
  h5ad_column *c = NULL;
  TU_OK(h5ad_read_obs_column(f, "origin", &c, &err), &err);
  assert_int_equal(c->codes[5], 1);
  h5ad_column_free(c);
  h5ad_close(f);
  clue_comm self = clue_comm_self();
  assert_int_equal(h5ad_open(mu, "mod/atac", &self, &f, &err), CLUE_EFORMAT);
  assert_non_null(strstr(err.msg, "has no mod/atac (modalities in the file: adt, rna)"));
}

static clue_strings *strs(const char *const *s, int n) {
  clue_err err;
  return clue_strings_from(s, n, &err);
}

static void test_pairing(void **state) {
  (void)state;
  clue_err err;
  const char *a[] = {"x", "y", "z"}, *b[] = {"z", "w", "x"};
  clue_strings *names[2] = {strs(a, 3), strs(b, 3)};
  const char *what[] = {"A", "B"};
  clue_pairing *p = NULL;
  TU_OK(clue_pairing_from_names(names, 2, what, &p, &err), &err);
  assert_int_equal(p->n_cells, 4);
  const char *order[] = {"x", "y", "z", "w"};
  const int64_t rows[] = {0, 2, 1, -1, 2, 0, -1, 1};
  for (int c = 0; c < 4; c++) assert_string_equal(p->names->s[c], order[c]);
  for (int i = 0; i < 8; i++) assert_int_equal(p->row[i], rows[i]);
  assert_int_equal(clue_pairing_n_complete(p), 2);
  clue_pairing_free(p);
  clue_strings_free(names[1]);
  const char *dup[] = {"q", "z", "q"};
  names[1] = strs(dup, 3);
  assert_int_equal(clue_pairing_from_names(names, 2, what, &p, &err), CLUE_EDATA);
  assert_non_null(strstr(err.msg, "B: obs name 'q' appears twice (rows 0 and 2)"));
  clue_strings_free(names[0]);
  clue_strings_free(names[1]);
  /* obsmap: global order; cells without any chosen modality dropped */
  const char *g[] = {"g0", "g1", "g2", "g3"};
  clue_strings *gn = strs(g, 4);
  int64_t m0[] = {1, 0, 2, 0}, m1[] = {0, 0, 1, 2};
  int64_t *maps[] = {m0, m1};
  TU_OK(clue_pairing_from_obsmap(gn, maps, 2, &p, &err), &err);
  assert_int_equal(p->n_cells, 3);
  assert_string_equal(p->names->s[1], "g2");
  const int64_t want[] = {0, -1, 1, 0, -1, 1};
  for (int i = 0; i < 6; i++) assert_int_equal(p->row[i], want[i]);
  assert_int_equal(clue_pairing_n_complete(p), 1);
  clue_pairing_free(p);
  clue_strings_free(gn);
}

/* Pairing the fixture modalities by names matches their obsmap. */
static void test_pairing_files(void **state) {
  (void)state;
  FIXTURES();
  clue_err err;
  h5ad_file *f[2] = {open_ok("pair_rna.h5ad", NULL), open_ok("pair_adt.h5ad", NULL)};
  clue_strings *names[2];
  for (int k = 0; k < 2; k++) TU_OK(h5ad_read_obs_names(f[k], &names[k], &err), &err);
  clue_pairing *p = NULL;
  TU_OK(clue_pairing_from_names(names, 2, NULL, &p, &err), &err);
  assert_int_equal(p->n_cells, TU_N_OBS);
  assert_int_equal(clue_pairing_n_complete(p), 20);
  for (int64_t c = 0; c < p->n_cells; c++) {
    int i = tu_cell(p->names->s[c]);
    assert_int_equal(i, c < 30 ? c : 39 - (c - 30));
    assert_int_equal(p->row[c * 2], i < 30 ? i : -1);
    assert_int_equal(p->row[c * 2 + 1], i >= 10 ? 39 - i : -1);
  }
  clue_pairing_free(p);
  for (int k = 0; k < 2; k++) {
    clue_strings_free(names[k]);
    h5ad_close(f[k]);
  }
}

/* Broken files: each fails with its own message. */
static void test_errors(void **state) {
  (void)state;
  FIXTURES();
  clue_comm self = clue_comm_self();
  clue_err err;
  h5ad_file *f = NULL;
  struct {
    const char *file, *text;
  } open_cases[] = {
      {"does_not_exist.h5ad", "No such file or directory"},
      {"bad_text.h5ad", "is not an HDF5 file"},
      {"bad_old.h5ad", "anndata < 0.8; re-save it with a current anndata"},
  };
  for (int c = 0; c < 3; c++) {
    assert_true(h5ad_open(tu_fixture(open_cases[c].file), NULL, &self, &f, &err) < 0);
    assert_null(f);
    assert_non_null(strstr(err.msg, open_cases[c].file));
    assert_non_null(strstr(err.msg, open_cases[c].text));
  }
  struct {
    const char *file, *text;
    int rows[4], n;
  } read_cases[] = {
      {"bad_coo.h5ad", "X has encoding-type 'coo_matrix'", {0}, 1},
      {"bad_indptr_end.h5ad", "X/indptr ends at 93 but X/data holds 94", {0}, 1},
      {"bad_shape.h5ad", "X has shape 41 × 13 but obs has 40 rows", {0}, 1},
      {"bad_indptr_decr.h5ad", "X/indptr decreases at row 7", {7, 8}, 2},
      {"bad_indptr_decr.h5ad", "X/indptr is not monotone: row 8 starts", {6, 8}, 2},
      {"bad_idx_range.h5ad",
       "X/indices holds column 17 in row 19, outside [0, 13)",
       {18, 19},
       2},
  };
  for (size_t c = 0; c < sizeof read_cases / sizeof read_cases[0]; c++) {
    f = open_ok(read_cases[c].file, NULL);
    int64_t rows[4];
    for (int i = 0; i < read_cases[c].n; i++) rows[i] = read_cases[c].rows[i];
    clue_csr *x = NULL;
    assert_int_equal(h5ad_read_rows(f, NULL, rows, read_cases[c].n, &x, &err),
                     CLUE_EFORMAT);
    if (!strstr(err.msg, read_cases[c].text)) print_error("%s\n", err.msg);
    assert_non_null(strstr(err.msg, read_cases[c].text));
    assert_non_null(strstr(err.msg, read_cases[c].file));
    assert_null(x);
    h5ad_close(f);
  }
  f = open_ok("bad_indptr_decr.h5ad", NULL);
  int64_t *nnz = NULL;
  assert_int_equal(h5ad_read_row_nnz(f, NULL, &nnz, &err), CLUE_EFORMAT);
  assert_non_null(strstr(err.msg, "X/indptr decreases at row 7"));
  int64_t bad[] = {3, 2};
  clue_csr *x = NULL;
  assert_int_equal(h5ad_read_rows(f, NULL, bad, 2, &x, &err), CLUE_EINVAL);
  h5ad_close(f);
}

/* A rank reads exactly its rows: indptr pieces, data and indices. */
static void test_bytes(void **state) {
  (void)state;
  FIXTURES();
  h5ad_file *f = open_ok("csr64.h5ad", NULL); /* int64 indptr, uint16, float64 */
  clue_err err;
  const int64_t rows[] = {2, 3, 4, 10, 20, 21};
  int64_t before = h5ad_bytes_read(f);
  clue_csr *x = NULL;
  TU_OK(h5ad_read_rows(f, NULL, rows, 6, &x, &err), &err);
  int64_t runs = 3, nnz = clue_csr_nnz(x);
  assert_int_equal(h5ad_bytes_read(f) - before, (6 + runs) * 8 + nnz * (8 + 2));
  clue_csr_free(x);
  h5ad_close(f);
}

/* Every other row of 60,000: a union of 30,000 hyperslabs, read quickly. */
static void test_many_ranges(void **state) {
  (void)state;
  FIXTURES();
  h5ad_file *f = open_ok("many.h5ad", NULL);
  clue_err err;
  int64_t n = h5ad_n_obs(f) / 2;
  int64_t *rows = malloc((size_t)n * sizeof *rows);
  for (int64_t i = 0; i < n; i++) rows[i] = 2 * i + 1;
  clock_t t0 = clock();
  clue_csr *x = NULL;
  TU_OK(h5ad_read_rows(f, NULL, rows, n, &x, &err), &err);
  double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
  printf("read %lld scattered rows in %.3f s\n", (long long)n, secs);
  assert_true(secs < 60); /* one-by-one OR-ing took minutes at this size */
  for (int64_t i = 0; i < n; i++) {
    assert_int_equal(x->indptr[i + 1] - x->indptr[i], 1);
    assert_int_equal(x->indices[i], rows[i] % 10);
    assert_true(x->data[i] == (float)(rows[i] % 7 + 1));
  }
  clue_csr_free(x);
  free(rows);
  h5ad_close(f);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_csr),           cmocka_unit_test(test_layouts),
      cmocka_unit_test(test_layers),        cmocka_unit_test(test_read_limit),
      cmocka_unit_test(test_obs_columns),   cmocka_unit_test(test_names_obsm),
      cmocka_unit_test(test_h5mu),          cmocka_unit_test(test_pairing),
      cmocka_unit_test(test_pairing_files), cmocka_unit_test(test_errors),
      cmocka_unit_test(test_bytes),         cmocka_unit_test(test_many_ranges),
  };
  return TU_RUN(tests);
}
