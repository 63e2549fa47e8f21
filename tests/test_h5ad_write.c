/* test_h5ad_write.c — the .h5ad/.h5mu writer: files written from row blocks by
 * every rank (rank 0 with no rows, blocks in several rounds) read back with
 * HDF5 directly and compared exactly; empty files; abort; protected inputs;
 * bad blocks refused on every rank without a hang.
 *
 * CLUE_TEST_NP: 1 2 3 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clue/h5ad_write.h"
#include "testutil.h"

#define N_OBS 37
#define N_VARS 11
#define K_OBSM 3

/* The test matrix: X[i][j] != 0 iff (7i + 3j) % 5 == 0, except rows i % 9 == 4. */
static bool x_nonzero(int64_t i, int64_t j) { return i % 9 != 4 && (7 * i + 3 * j) % 5 == 0; }
static float x_value(int64_t i, int64_t j) { return (float)i + (float)j / 16.0f; }
static float obsm_value(int64_t i, int64_t k) { return (float)(i * 10 + k) + 0.25f; }

/* Rows of this rank: with several ranks rank 0 gets none (it writes the
 * metadata), the others split [begin, end) evenly. */
static void my_rows(int64_t begin, int64_t end, int64_t *b, int64_t *e) {
  clue_comm c = tu_world();
  if (c.size == 1) {
    *b = begin;
    *e = end;
    return;
  }
  int64_t n = end - begin, parts = c.size - 1;
  int64_t r = c.rank - 1;
  *b = c.rank == 0 ? begin : begin + n * r / parts;
  *e = c.rank == 0 ? begin : begin + n * (r + 1) / parts;
}

static clue_csr *x_block(int64_t b, int64_t e) {
  clue_err err;
  int64_t nnz = 0;
  for (int64_t i = b; i < e; i++)
    for (int64_t j = 0; j < N_VARS; j++) nnz += x_nonzero(i, j);
  clue_csr *m = clue_csr_new(e - b, N_VARS, nnz, &err);
  assert_non_null(m);
  int64_t at = 0;
  for (int64_t i = b; i < e; i++) {
    for (int64_t j = 0; j < N_VARS; j++)
      if (x_nonzero(i, j)) {
        m->indices[at] = (int32_t)j;
        m->data[at++] = x_value(i, j);
      }
    m->indptr[i - b + 1] = at;
  }
  return m;
}

static clue_strings *numbered(const char *prefix, int64_t n) {
  clue_err err;
  char **s = calloc((size_t)n + 1, sizeof *s);
  for (int64_t i = 0; i < n; i++) {
    s[i] = malloc(32);
    snprintf(s[i], 32, "%s%lld", prefix, (long long)i);
  }
  clue_strings *a = clue_strings_from((const char *const *)s, n, &err);
  for (int64_t i = 0; i < n; i++) free(s[i]);
  free(s);
  assert_non_null(a);
  return a;
}

typedef struct test_columns {
  h5ad_column cat, num, flag, maybe, note;
  h5ad_column *list[5];
  int32_t codes[N_OBS];
  double num_v[N_OBS], flag_v[N_OBS], maybe_v[N_OBS];
} test_columns;

static void make_columns(test_columns *t) {
  memset(t, 0, sizeof *t);
  const char *cats[3] = {"B cell", "T cell", "Mono"};
  clue_err err;
  snprintf(t->cat.name, sizeof t->cat.name, "cell_type");
  t->cat.kind = H5AD_COL_CATEGORICAL;
  t->cat.n = N_OBS;
  t->cat.codes = t->codes;
  t->cat.categories = clue_strings_from(cats, 3, &err);
  t->cat.ordered = true;
  snprintf(t->num.name, sizeof t->num.name, "score");
  t->num.kind = H5AD_COL_NUMERIC;
  snprintf(t->flag.name, sizeof t->flag.name, "flag");
  t->flag.kind = H5AD_COL_BOOL;
  snprintf(t->maybe.name, sizeof t->maybe.name, "maybe");
  t->maybe.kind = H5AD_COL_BOOL;
  snprintf(t->note.name, sizeof t->note.name, "note");
  t->note.kind = H5AD_COL_STRING;
  t->note.strings = numbered("note ", N_OBS);
  t->num.n = t->flag.n = t->maybe.n = t->note.n = N_OBS;
  t->num.values = t->num_v;
  t->flag.values = t->flag_v;
  t->maybe.values = t->maybe_v;
  for (int i = 0; i < N_OBS; i++) {
    t->codes[i] = i == 5 ? -1 : i % 3;
    t->num_v[i] = i == 2 ? NAN : 0.5 * i;
    t->flag_v[i] = i % 2;
    t->maybe_v[i] = i % 4 == 3 ? NAN : (i % 3 == 0);
  }
  h5ad_column *l[5] = {&t->cat, &t->num, &t->flag, &t->maybe, &t->note};
  memcpy(t->list, l, sizeof l);
}

static void free_columns(test_columns *t) {
  clue_strings_free(t->cat.categories);
  clue_strings_free(t->note.strings);
}

/* ---- reading back with HDF5 directly (rank 0) ---- */

static char *read_attr_string(hid_t obj, const char *name) {
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  assert_true(a >= 0);
  hid_t t = H5Aget_type(a);
  assert_true(H5Tis_variable_str(t) > 0);
  assert_int_equal(H5Tget_cset(t), H5T_CSET_UTF8);
  hid_t mt = H5Tcopy(H5T_C_S1);
  H5Tset_size(mt, H5T_VARIABLE);
  H5Tset_cset(mt, H5T_CSET_UTF8);
  char *v = NULL;
  assert_true(H5Aread(a, mt, &v) >= 0);
  char *copy = strdup(v);
  H5free_memory(v);
  H5Tclose(mt);
  H5Tclose(t);
  H5Aclose(a);
  return copy;
}

static void expect_encoding(hid_t f, const char *path, const char *type, const char *ver) {
  hid_t o = H5Oopen(f, path, H5P_DEFAULT);
  if (o < 0) print_error("missing object %s\n", path);
  assert_true(o >= 0);
  char *t = read_attr_string(o, "encoding-type"), *v = read_attr_string(o, "encoding-version");
  if (strcmp(t, type) || strcmp(v, ver))
    print_error("%s: encoding %s %s, expected %s %s\n", path, t, v, type, ver);
  assert_string_equal(t, type);
  assert_string_equal(v, ver);
  free(t);
  free(v);
  H5Oclose(o);
}

static int64_t dataset_len(hid_t f, const char *path) {
  hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
  assert_true(d >= 0);
  hid_t s = H5Dget_space(d);
  int64_t n = H5Sget_simple_extent_npoints(s);
  H5Sclose(s);
  H5Dclose(d);
  return n;
}

/* Reads a whole dataset converted to mtype into a new buffer of elem-byte values. */
static void *read_all(hid_t f, const char *path, hid_t mtype, size_t elem, int64_t *n) {
  *n = dataset_len(f, path);
  void *buf = calloc((size_t)*n + 1, elem);
  hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
  if (*n > 0) assert_true(H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
  H5Dclose(d);
  return buf;
}

static void expect_strings(hid_t f, const char *path, const clue_strings *want) {
  int64_t n = 0;
  hid_t mt = H5Tcopy(H5T_C_S1);
  H5Tset_size(mt, H5T_VARIABLE);
  H5Tset_cset(mt, H5T_CSET_UTF8);
  char **s = read_all(f, path, mt, sizeof(char *), &n);
  assert_int_equal(n, want->n);
  for (int64_t i = 0; i < n; i++) assert_string_equal(s[i], want->s[i]);
  hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
  hid_t sp = H5Dget_space(d);
  if (n > 0) H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, s);
  H5Sclose(sp);
  H5Dclose(d);
  H5Tclose(mt);
  free(s);
}

static void expect_x(hid_t f, const char *prefix) {
  char p[256];
  snprintf(p, sizeof p, "%s/X", prefix);
  expect_encoding(f, p, "csr_matrix", "0.1.0");
  hid_t g = H5Gopen2(f, p, H5P_DEFAULT);
  hid_t a = H5Aopen(g, "shape", H5P_DEFAULT);
  int64_t shape[2] = {0, 0};
  assert_true(H5Aread(a, H5T_NATIVE_INT64, shape) >= 0);
  assert_int_equal(shape[0], N_OBS);
  assert_int_equal(shape[1], N_VARS);
  H5Aclose(a);
  H5Gclose(g);
  int64_t n_ptr, n_data, n_idx;
  snprintf(p, sizeof p, "%s/X/indptr", prefix);
  int64_t *ptr = read_all(f, p, H5T_NATIVE_INT64, 8, &n_ptr);
  snprintf(p, sizeof p, "%s/X/data", prefix);
  float *data = read_all(f, p, H5T_NATIVE_FLOAT, 4, &n_data);
  snprintf(p, sizeof p, "%s/X/indices", prefix);
  int32_t *idx = read_all(f, p, H5T_NATIVE_INT32, 4, &n_idx);
  assert_int_equal(n_ptr, N_OBS + 1);
  assert_int_equal(ptr[0], 0);
  assert_int_equal(ptr[N_OBS], n_data);
  assert_int_equal(n_idx, n_data);
  for (int64_t i = 0, at = 0; i < N_OBS; i++) {
    for (int64_t j = 0; j < N_VARS; j++) {
      if (!x_nonzero(i, j)) continue;
      assert_int_equal(idx[at], j);
      assert_true(data[at] == x_value(i, j));
      at++;
    }
    assert_int_equal(ptr[i + 1], at);
  }
  free(ptr);
  free(data);
  free(idx);
}

static void expect_obsm(hid_t f, const char *path) {
  expect_encoding(f, path, "array", "0.2.0");
  int64_t n;
  float *v = read_all(f, path, H5T_NATIVE_FLOAT, 4, &n);
  assert_int_equal(n, N_OBS * K_OBSM);
  for (int64_t i = 0; i < N_OBS; i++)
    for (int64_t k = 0; k < K_OBSM; k++) assert_true(v[i * K_OBSM + k] == obsm_value(i, k));
  free(v);
}

static void expect_obs(hid_t f, const char *prefix, const test_columns *t) {
  char p[256];
  snprintf(p, sizeof p, "%s/obs", prefix);
  expect_encoding(f, p, "dataframe", "0.2.0");
  hid_t g = H5Gopen2(f, p, H5P_DEFAULT);
  char *idx = read_attr_string(g, "_index");
  assert_string_equal(idx, "_index");
  free(idx);
  hid_t a = H5Aopen(g, "column-order", H5P_DEFAULT);
  hid_t mt = H5Tcopy(H5T_C_S1);
  H5Tset_size(mt, H5T_VARIABLE);
  H5Tset_cset(mt, H5T_CSET_UTF8);
  char *order[5];
  assert_true(H5Aread(a, mt, order) >= 0);
  const char *want[5] = {"cell_type", "score", "flag", "maybe", "note"};
  for (int i = 0; i < 5; i++) {
    assert_string_equal(order[i], want[i]);
    H5free_memory(order[i]);
  }
  H5Tclose(mt);
  H5Aclose(a);
  /* categorical: int8 codes, categories, ordered as an enum TRUE */
  hid_t cat = H5Gopen2(g, "cell_type", H5P_DEFAULT);
  a = H5Aopen(cat, "ordered", H5P_DEFAULT);
  hid_t at = H5Aget_type(a);
  assert_int_equal(H5Tget_class(at), H5T_ENUM);
  int8_t ordered = 0;
  assert_true(H5Aread(a, H5T_NATIVE_INT8, &ordered) >= 0);
  assert_int_equal(ordered, 1);
  H5Tclose(at);
  H5Aclose(a);
  hid_t cd = H5Dopen2(cat, "codes", H5P_DEFAULT);
  hid_t ct = H5Dget_type(cd);
  assert_int_equal(H5Tget_size(ct), 1);
  H5Tclose(ct);
  H5Dclose(cd);
  H5Gclose(cat);
  H5Gclose(g);
  snprintf(p, sizeof p, "%s/obs/cell_type", prefix);
  expect_encoding(f, p, "categorical", "0.2.0");
  snprintf(p, sizeof p, "%s/obs/cell_type/codes", prefix);
  int64_t n;
  int32_t *codes = read_all(f, p, H5T_NATIVE_INT32, 4, &n);
  assert_int_equal(n, N_OBS);
  for (int i = 0; i < N_OBS; i++) assert_int_equal(codes[i], t->codes[i]);
  free(codes);
  snprintf(p, sizeof p, "%s/obs/cell_type/categories", prefix);
  expect_encoding(f, p, "string-array", "0.2.0");
  expect_strings(f, p, t->cat.categories);
  snprintf(p, sizeof p, "%s/obs/score", prefix);
  double *score = read_all(f, p, H5T_NATIVE_DOUBLE, 8, &n);
  for (int i = 0; i < N_OBS; i++)
    assert_true(i == 2 ? isnan(score[i]) : score[i] == t->num_v[i]);
  free(score);
  snprintf(p, sizeof p, "%s/obs/flag", prefix);
  expect_encoding(f, p, "array", "0.2.0");
  int8_t *flag = read_all(f, p, H5T_NATIVE_INT8, 1, &n);
  for (int i = 0; i < N_OBS; i++) assert_int_equal(flag[i], i % 2);
  free(flag);
  snprintf(p, sizeof p, "%s/obs/maybe", prefix);
  expect_encoding(f, p, "nullable-boolean", "0.1.0");
  snprintf(p, sizeof p, "%s/obs/maybe/mask", prefix);
  int8_t *mask = read_all(f, p, H5T_NATIVE_INT8, 1, &n);
  snprintf(p, sizeof p, "%s/obs/maybe/values", prefix);
  int8_t *vals = read_all(f, p, H5T_NATIVE_INT8, 1, &n);
  for (int i = 0; i < N_OBS; i++) {
    assert_int_equal(mask[i], i % 4 == 3);
    if (!mask[i]) assert_int_equal(vals[i], i % 3 == 0);
  }
  free(mask);
  free(vals);
  snprintf(p, sizeof p, "%s/obs/note", prefix);
  expect_encoding(f, p, "string-array", "0.2.0");
  expect_strings(f, p, t->note.strings);
}

/* Writes the test AnnData through w: obs, var, obsm in one call, X in two rounds. */
static void fill_writer(h5ad_writer *w, const clue_strings *cells, test_columns *t) {
  clue_err err;
  clue_strings *genes = numbered("gene", N_VARS);
  TU_OK(h5ad_writer_obs(w, cells, t->list, 5, &err), &err);
  TU_OK(h5ad_writer_var(w, genes, &err), &err);
  int64_t b, e;
  my_rows(0, N_OBS, &b, &e);
  float *z = malloc((size_t)(e - b + 1) * K_OBSM * sizeof *z);
  for (int64_t i = b; i < e; i++)
    for (int k = 0; k < K_OBSM; k++) z[(i - b) * K_OBSM + k] = obsm_value(i, k);
  TU_OK(h5ad_writer_obsm(w, "X_test", K_OBSM, b, e - b, z, &err), &err);
  free(z);
  const int64_t rounds[3] = {0, 20, N_OBS};
  for (int r = 0; r < 2; r++) {
    my_rows(rounds[r], rounds[r + 1], &b, &e);
    clue_csr *x = x_block(b, e);
    TU_OK(h5ad_writer_x_csr_append(w, b, x, &err), &err);
    clue_csr_free(x);
  }
  TU_OK(h5ad_writer_uns_string(w, "clue", "written by test_h5ad_write", &err), &err);
  clue_strings_free(genes);
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static void test_h5ad_roundtrip(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  const char *path = tu_path("roundtrip.h5ad");
  test_columns t;
  make_columns(&t);
  clue_strings *cells = numbered("cell-", N_OBS);
  h5ad_writer *w = NULL;
  TU_OK(h5ad_writer_create(path, N_OBS, N_VARS, NULL, &c, &w, &err), &err);
  fill_writer(w, cells, &t);
  TU_OK(h5ad_writer_commit(w, &err), &err);
  if (c.rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    expect_encoding(f, "/", "anndata", "0.1.0");
    static const char *const dicts[] = {"/layers", "/obsm", "/obsp", "/uns", "/varm", "/varp"};
    for (int i = 0; i < 6; i++) expect_encoding(f, dicts[i], "dict", "0.1.0");
    expect_x(f, "");
    expect_obsm(f, "/obsm/X_test");
    expect_obs(f, "", &t);
    expect_encoding(f, "/obs/_index", "string-array", "0.2.0");
    expect_strings(f, "/obs/_index", cells);
    clue_strings *genes = numbered("gene", N_VARS);
    expect_strings(f, "/var/_index", genes);
    clue_strings_free(genes);
    expect_encoding(f, "/uns/clue", "string", "0.2.0");
    H5Fclose(f);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    assert_false(exists(tmp));
  }
  clue_strings_free(cells);
  free_columns(&t);
}

/* n_obs == 0: every rank has no rows; defaults for obs and var. */
static void test_empty(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  const char *path = tu_path("empty.h5ad");
  h5ad_writer *w = NULL;
  TU_OK(h5ad_writer_create(path, 0, 3, NULL, &c, &w, &err), &err);
  clue_csr *x = clue_csr_new(0, 3, 0, &err);
  TU_OK(h5ad_writer_x_csr(w, 0, x, &err), &err);
  TU_OK(h5ad_writer_obsm(w, "X_clue", 4, 0, 0, NULL, &err), &err);
  TU_OK(h5ad_writer_commit(w, &err), &err);
  clue_csr_free(x);
  if (c.rank == 0) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(dataset_len(f, "/X/indptr"), 1);
    assert_int_equal(dataset_len(f, "/X/data"), 0);
    assert_int_equal(dataset_len(f, "/obs/_index"), 0);
    assert_int_equal(dataset_len(f, "/obsm/X_clue"), 0);
    clue_strings *want = numbered("", 3);
    expect_strings(f, "/var/_index", want);
    clue_strings_free(want);
    H5Fclose(f);
  }
}

static int count_entries(const char *prefix) {
  char cmd[4400];
  snprintf(cmd, sizeof cmd, "ls -d %s* 2>/dev/null | wc -l", prefix);
  FILE *p = popen(cmd, "r");
  int n = -1;
  if (p && fscanf(p, "%d", &n) != 1) n = -1;
  if (p) pclose(p);
  return n;
}

static void test_abort_leaves_nothing(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  const char *path = tu_path("aborted.h5ad");
  h5ad_writer *w = NULL;
  TU_OK(h5ad_writer_create(path, N_OBS, N_VARS, NULL, &c, &w, &err), &err);
  clue_strings *cells = numbered("cell-", N_OBS);
  TU_OK(h5ad_writer_obs(w, cells, NULL, 0, &err), &err);
  int64_t b, e;
  my_rows(0, 20, &b, &e);
  clue_csr *x = x_block(b, e);
  TU_OK(h5ad_writer_x_csr_append(w, b, x, &err), &err);
  clue_csr_free(x);
  h5ad_writer_abort(w);
  if (c.rank == 0) assert_int_equal(count_entries(path), 0);
  /* An X left incomplete fails the commit, which leaves no file either. */
  TU_OK(h5ad_writer_create(path, N_OBS, N_VARS, NULL, &c, &w, &err), &err);
  x = x_block(b, e);
  TU_OK(h5ad_writer_x_csr_append(w, b, x, &err), &err);
  clue_csr_free(x);
  int rc = h5ad_writer_commit(w, &err);
  assert_int_equal(rc, CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "20 of its 37 rows"));
  if (c.rank == 0) assert_int_equal(count_entries(path), 0);
  clue_strings_free(cells);
}

static void test_protect_inputs(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  const char *input = tu_path("input.h5ad");
  const char *alias = tu_path("alias.h5ad");
  h5ad_writer *w = NULL;
  TU_OK(h5ad_writer_create(input, 2, 0, NULL, &c, &w, &err), &err);
  TU_OK(h5ad_writer_commit(w, &err), &err);
  struct stat before;
  if (c.rank == 0) {
    assert_int_equal(stat(input, &before), 0);
    unlink(alias);
    assert_int_equal(link(input, alias), 0);
  }
  clue_comm_barrier(&c);
  const char *protect[] = {input, NULL};
  const char *targets[2] = {input, alias};
  for (int i = 0; i < 2; i++) {
    w = NULL;
    int rc = h5ad_writer_create(targets[i], 5, 5, protect, &c, &w, &err);
    assert_int_equal(rc, CLUE_EINVAL);
    assert_null(w);
    assert_non_null(strstr(err.msg, "refusing to write"));
  }
  if (c.rank == 0) {
    struct stat after;
    assert_int_equal(stat(input, &after), 0);
    assert_int_equal(after.st_ino, before.st_ino);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(after.st_mtime, before.st_mtime);
    assert_int_equal(count_entries(tu_path("input.h5ad.tmp")), 0);
  }
  /* Another name is fine, and so is replacing an earlier output. */
  TU_OK(h5ad_writer_create(tu_path("output.h5ad"), 1, 1, protect, &c, &w, &err), &err);
  TU_OK(h5ad_writer_commit(w, &err), &err);
  TU_OK(h5ad_writer_create(tu_path("output.h5ad"), 1, 1, protect, &c, &w, &err), &err);
  TU_OK(h5ad_writer_commit(w, &err), &err);
}

/* Blocks that do not tile the rows, a wrong width, a bad column: refused on
 * every rank with one message, and the writer can still be aborted. */
static void test_bad_input(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  h5ad_writer *w = NULL;
  TU_OK(h5ad_writer_create(tu_path("bad.h5ad"), N_OBS, N_VARS, NULL, &c, &w, &err), &err);
  int64_t b, e;
  my_rows(0, N_OBS, &b, &e);
  clue_csr *x = x_block(b, e);
  int64_t shifted = c.rank == c.size - 1 ? b + 1 : b;
  assert_int_equal(h5ad_writer_x_csr_append(w, shifted, x, &err), CLUE_EINVAL);
  x->n_cols = N_VARS + 1;
  assert_int_equal(h5ad_writer_x_csr_append(w, b, x, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "columns"));
  clue_csr_free(x);
  float z[4] = {0};
  assert_int_equal(h5ad_writer_obsm(w, "a/b", 1, 0, 0, z, &err), CLUE_EINVAL);
  assert_int_equal(h5ad_writer_obsm(w, "X", 1, N_OBS - 1, c.rank == 0 ? 2 : 0, z, &err),
                   CLUE_EINVAL);
  test_columns t;
  make_columns(&t);
  t.codes[7] = 3; /* only 3 categories */
  clue_strings *cells = numbered("cell-", N_OBS);
  assert_int_equal(h5ad_writer_obs(w, cells, t.list, 5, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "outside"));
  t.codes[7] = 0;
  h5ad_column *twice[2] = {&t.num, &t.num};
  assert_int_equal(h5ad_writer_obs(w, cells, twice, 2, &err), CLUE_EINVAL);
  TU_OK(h5ad_writer_obs(w, cells, t.list, 5, &err), &err);
  h5ad_writer_abort(w);
  if (c.rank == 0) assert_int_equal(count_entries(tu_path("bad.h5ad")), 0);
  clue_strings_free(cells);
  free_columns(&t);
}

static void expect_u32(hid_t f, const char *path, const uint32_t *want, int64_t n) {
  int64_t m;
  uint32_t *v = read_all(f, path, H5T_NATIVE_UINT32, 4, &m);
  assert_int_equal(m, n);
  for (int64_t i = 0; i < n; i++) assert_int_equal(v[i], want[i]);
  free(v);
}

/* .h5mu: global cells 0..N_OBS+5; "rna" has the test AnnData's N_OBS cells in
 * global order skipping every 8th, "adt" has 4 cells without obs/var written. */
static void test_h5mu(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  const char *path = tu_path("multi.h5mu");
  int64_t n_global = N_OBS + N_OBS / 7 + 1;
  clue_strings *global = numbered("g", n_global);
  uint32_t map_rna[64] = {0}, map_adt[64] = {0};
  const char *rna_names[64];
  for (int64_t g = 0, r = 0; g < n_global; g++)
    if (g % 8 != 7 && r < N_OBS) {
      map_rna[g] = (uint32_t)++r;
      rna_names[r - 1] = global->s[g];
    }
  int64_t adt_rows[4] = {1, 7, 15, n_global - 1};
  for (int i = 0; i < 4; i++) map_adt[adt_rows[i]] = (uint32_t)i + 1;
  clue_strings *cells = clue_strings_from(rna_names, N_OBS, &err);
  h5mu_writer *mu = NULL;
  TU_OK(h5mu_writer_create(path, global, NULL, &c, &mu, &err), &err);
  test_columns t;
  make_columns(&t);
  h5ad_writer *rna = NULL, *adt = NULL, *bad = NULL;
  TU_OK(h5mu_writer_add_mod(mu, "rna", N_OBS, N_VARS, map_rna, &rna, &err), &err);
  TU_OK(h5mu_writer_add_mod(mu, "adt", 4, 2, map_adt, &adt, &err), &err);
  assert_int_equal(h5mu_writer_add_mod(mu, "rna", 1, 1, map_adt, &bad, &err), CLUE_EINVAL);
  /* obs names that obsmap does not send there are refused */
  clue_strings *wrong = numbered("g", N_OBS);
  assert_int_equal(h5ad_writer_obs(rna, wrong, NULL, 0, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "differs from the global obs name"));
  clue_strings_free(wrong);
  fill_writer(rna, cells, &t);
  TU_OK(h5mu_writer_end_mod(mu, rna, &err), &err);
  TU_OK(h5mu_writer_end_mod(mu, adt, &err), &err);
  TU_OK(h5mu_writer_commit(mu, &err), &err);
  if (c.rank == 0) {
    FILE *raw = fopen(path, "rb");
    char head[512];
    assert_int_equal(fread(head, 1, 512, raw), 512);
    fclose(raw);
    assert_int_equal(strncmp(head, "MuData (format-version=0.1.0;creator=clue;", 42), 0);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    expect_encoding(f, "/", "MuData", "0.1.0");
    expect_encoding(f, "/mod/rna", "anndata", "0.1.0");
    expect_encoding(f, "/obsmap", "dict", "0.1.0");
    expect_encoding(f, "/obsmap/rna", "array", "0.2.0");
    expect_strings(f, "/obs/_index", global);
    expect_x(f, "/mod/rna");
    expect_obsm(f, "/mod/rna/obsm/X_test");
    expect_obs(f, "/mod/rna", &t);
    expect_u32(f, "/obsmap/rna", map_rna, n_global);
    expect_u32(f, "/obsmap/adt", map_adt, n_global);
    const char *adt_names[4];
    for (int i = 0; i < 4; i++) adt_names[i] = global->s[adt_rows[i]];
    clue_strings *want = clue_strings_from(adt_names, 4, &err);
    expect_strings(f, "/mod/adt/obs/_index", want);
    clue_strings_free(want);
    /* global var: rna's genes then adt's default names; varmap 1-based */
    int64_t n_var = dataset_len(f, "/var/_index");
    assert_int_equal(n_var, N_VARS + 2);
    uint32_t vr[N_VARS + 2] = {0}, va[N_VARS + 2] = {0};
    for (int j = 0; j < N_VARS; j++) vr[j] = (uint32_t)j + 1;
    va[N_VARS] = 1;
    va[N_VARS + 1] = 2;
    expect_u32(f, "/varmap/rna", vr, N_VARS + 2);
    expect_u32(f, "/varmap/adt", va, N_VARS + 2);
    hid_t mod = H5Gopen2(f, "/mod", H5P_DEFAULT);
    hid_t a = H5Aopen(mod, "mod-order", H5P_DEFAULT);
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    char *order[2];
    assert_true(H5Aread(a, mt, order) >= 0);
    assert_string_equal(order[0], "rna");
    assert_string_equal(order[1], "adt");
    H5free_memory(order[0]);
    H5free_memory(order[1]);
    H5Tclose(mt);
    H5Aclose(a);
    H5Gclose(mod);
    H5Fclose(f);
  }
  clue_strings_free(cells);
  clue_strings_free(global);
  free_columns(&t);
}

/* An .h5mu abandoned with a modality still open leaves nothing behind. */
static void test_h5mu_abort(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  const char *path = tu_path("aborted.h5mu");
  clue_strings *global = numbered("g", 3);
  uint32_t map[3] = {1, 0, 2};
  h5mu_writer *mu = NULL;
  h5ad_writer *m = NULL;
  TU_OK(h5mu_writer_create(path, global, NULL, &c, &mu, &err), &err);
  TU_OK(h5mu_writer_add_mod(mu, "atac", 2, 5, map, &m, &err), &err);
  assert_int_equal(h5mu_writer_commit(mu, &err), CLUE_EINVAL); /* atac not ended */
  if (c.rank == 0) assert_int_equal(count_entries(path), 0);
  clue_strings_free(global);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_h5ad_roundtrip),   cmocka_unit_test(test_empty),
      cmocka_unit_test(test_abort_leaves_nothing), cmocka_unit_test(test_protect_inputs),
      cmocka_unit_test(test_bad_input),        cmocka_unit_test(test_h5mu),
      cmocka_unit_test(test_h5mu_abort),
  };
  return TU_RUN(tests);
}
