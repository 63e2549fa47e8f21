/* test_h5ad_obs_ranges.c — the ranged readers of per-cell metadata against
 * slices of the whole readers: obs names (variable- and fixed-length strings,
 * numbers shown as text, inside a MuData modality), every obs column kind
 * (categorical with int8/int16/int64 codes and numeric categories, numeric,
 * bool, nullable integer/float/boolean/string, variable- and fixed-length
 * strings), obsmap/<mod> of an .h5mu, and the row lengths of CSR (int32 and
 * int64 indptr), dense and CSC matrices — each rank with its own ranges, read
 * collectively. Ranges: empty, first row, middle, last row, whole, the rank's
 * block; out-of-range requests fail naming the file. The bytes each read
 * reports show it read its rows only.
 *
 * CLUE_TEST_NP: 1 2 3 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/h5ad.h"
#include "testutil.h"
#include "tu_h5ad.h"

#define FIXTURES()                                  \
  do {                                              \
    if (!tu_h5ad_fixtures() || !extra_fixtures()) { \
      skip();                                       \
    }                                               \
  } while (0)

/* ---- fixtures written here: csr.h5ad with more obs columns, and one whose
 * obs index is numeric ---- */

#define EXTRA_FILE "ranges_extra.h5ad"
#define NUMIDX_FILE "ranges_numidx.h5ad"

static int copy_file(const char *from, const char *to) {
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  char buf[1 << 16];
  size_t got;
  int ok = in && out;
  while (ok && (got = fread(buf, 1, sizeof buf, in)) > 0)
    ok = fwrite(buf, 1, got, out) == got;
  if (in) fclose(in);
  if (out && fclose(out) != 0) ok = 0;
  return ok;
}

static hid_t vlen_string_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

static void put_string_attr(hid_t obj, const char *name, const char *value) {
  hid_t t = vlen_string_type(), s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, t, &value);
  H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
}

/* A 1-D dataset of n elements of file type ft, written from buf as mem_type. */
static hid_t put_vector(hid_t loc, const char *name, hid_t ft, hid_t mem_type, int64_t n,
                        const void *buf) {
  hsize_t dims = (hsize_t)n;
  hid_t s = H5Screate_simple(1, &dims, NULL);
  hid_t d = H5Dcreate2(loc, name, ft, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  H5Sclose(s);
  return d;
}

/* obs/nstr: nullable-string-array, "s<i>", masked where i % 4 == 1. */
static void put_nullable_strings(hid_t obs) {
  char text[TU_N_OBS][8];
  const char *v[TU_N_OBS];
  unsigned char mask[TU_N_OBS];
  for (int i = 0; i < TU_N_OBS; i++) {
    snprintf(text[i], sizeof text[i], "s%d", i);
    v[i] = text[i];
    mask[i] = i % 4 == 1;
  }
  hid_t g = H5Gcreate2(obs, "nstr", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  put_string_attr(g, "encoding-type", "nullable-string-array");
  hid_t t = vlen_string_type();
  H5Dclose(put_vector(g, "values", t, t, TU_N_OBS, v));
  H5Dclose(put_vector(g, "mask", H5T_STD_U8LE, H5T_NATIVE_UCHAR, TU_N_OBS, mask));
  H5Tclose(t);
  H5Gclose(g);
}

/* obs/nfloat: nullable-float, i / 4, masked where i % 6 == 2. */
static void put_nullable_floats(hid_t obs) {
  double v[TU_N_OBS];
  unsigned char mask[TU_N_OBS];
  for (int i = 0; i < TU_N_OBS; i++) v[i] = i / 4.0, mask[i] = i % 6 == 2;
  hid_t g = H5Gcreate2(obs, "nfloat", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  put_string_attr(g, "encoding-type", "nullable-float");
  H5Dclose(put_vector(g, "values", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, TU_N_OBS, v));
  H5Dclose(put_vector(g, "mask", H5T_STD_U8LE, H5T_NATIVE_UCHAR, TU_N_OBS, mask));
  H5Gclose(g);
}

/* obs/fixed: fixed-length (6-byte, NUL-padded) strings "f<i>". */
static void put_fixed_strings(hid_t obs) {
  char raw[TU_N_OBS][6];
  memset(raw, 0, sizeof raw);
  for (int i = 0; i < TU_N_OBS; i++) snprintf(raw[i], sizeof raw[i], "f%d", i);
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, 6);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  hid_t d = put_vector(obs, "fixed", t, t, TU_N_OBS, raw);
  put_string_attr(d, "encoding-type", "string-array");
  H5Dclose(d);
  H5Tclose(t);
}

/* obs/icat: an ordered categorical with numeric categories {10, 20, 30},
 * codes i % 3 (−1 where i % 6 == 5). */
static void put_numeric_categorical(hid_t obs) {
  int64_t cats[3] = {10, 20, 30};
  signed char codes[TU_N_OBS];
  for (int i = 0; i < TU_N_OBS; i++) codes[i] = (signed char)(i % 6 == 5 ? -1 : i % 3);
  hid_t g = H5Gcreate2(obs, "icat", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  put_string_attr(g, "encoding-type", "categorical");
  int64_t one = 1;
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(g, "ordered", H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, &one);
  H5Aclose(a);
  H5Sclose(s);
  H5Dclose(put_vector(g, "categories", H5T_STD_I64LE, H5T_NATIVE_INT64, 3, cats));
  H5Dclose(put_vector(g, "codes", H5T_STD_I8LE, H5T_NATIVE_SCHAR, TU_N_OBS, codes));
  H5Gclose(g);
}

/* obs/badcat: categories {"x", "y"}, codes i % 2 except 7 at row 30. */
static void put_bad_categorical(hid_t obs) {
  const char *cats[2] = {"x", "y"};
  signed char codes[TU_N_OBS];
  for (int i = 0; i < TU_N_OBS; i++) codes[i] = (signed char)(i == 30 ? 7 : i % 2);
  hid_t g = H5Gcreate2(obs, "badcat", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  put_string_attr(g, "encoding-type", "categorical");
  hid_t t = vlen_string_type();
  H5Dclose(put_vector(g, "categories", t, t, 2, cats));
  H5Dclose(put_vector(g, "codes", H5T_STD_I8LE, H5T_NATIVE_SCHAR, TU_N_OBS, codes));
  H5Tclose(t);
  H5Gclose(g);
}

static int write_extra(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return 0;
  hid_t obs = H5Gopen2(f, "obs", H5P_DEFAULT);
  put_nullable_strings(obs);
  put_nullable_floats(obs);
  put_fixed_strings(obs);
  put_numeric_categorical(obs);
  put_bad_categorical(obs);
  H5Gclose(obs);
  return H5Fclose(f) >= 0;
}

/* Replaces obs/_index by the integers 1000 + i. */
static int write_numeric_index(const char *path) {
  hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return 0;
  int64_t v[TU_N_OBS];
  for (int i = 0; i < TU_N_OBS; i++) v[i] = 1000 + i;
  hid_t obs = H5Gopen2(f, "obs", H5P_DEFAULT);
  H5Ldelete(obs, "_index", H5P_DEFAULT);
  H5Dclose(put_vector(obs, "_index", H5T_STD_I64LE, H5T_NATIVE_INT64, TU_N_OBS, v));
  H5Gclose(obs);
  return H5Fclose(f) >= 0;
}

/* Collective. Writes the two files beside the fixtures (rank 0, once). */
static int extra_fixtures(void) {
  static int state = 0; /* 0 = not tried, 1 = ready, -1 = failed */
  if (state != 0) return state == 1;
  int rank = 0, ok = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) {
    char extra[4096], numidx[4096];
    snprintf(extra, sizeof extra, "%s", tu_fixture(EXTRA_FILE));
    snprintf(numidx, sizeof numidx, "%s", tu_fixture(NUMIDX_FILE));
    ok = copy_file(tu_fixture("csr.h5ad"), extra) && write_extra(extra) &&
         copy_file(tu_fixture("csr.h5ad"), numidx) && write_numeric_index(numidx);
    if (!ok) printf("cannot write the extra fixtures %s, %s\n", extra, numidx);
  }
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  state = ok ? 1 : -1;
  return ok;
}

/* ---- ranges ---- */

typedef struct span {
  int64_t begin, end;
} span;

/* The ranges tried on n rows: empty (at both ends and inside), the first row,
 * the middle, the last row, every row, and this rank's block. */
static int good_spans(int64_t n, span *out) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  span s[] = {{0, 0},
              {n, n},
              {n / 2, n / 2},
              {0, 1},
              {n / 2 - 3, n / 2 + 4},
              {n - 1, n},
              {0, n},
              {n * rank / size, n * (rank + 1) / size}};
  int k = (int)(sizeof s / sizeof s[0]);
  memcpy(out, s, sizeof s);
  return k;
}

/* Ranges that must fail on n rows. */
static int bad_spans(int64_t n, span *out) {
  span s[] = {{-1, 3}, {5, 4}, {0, n + 1}, {n + 1, n + 1}, {-2, -1}, {n, n - 1}};
  int k = (int)(sizeof s / sizeof s[0]);
  memcpy(out, s, sizeof s);
  return k;
}

static h5ad_file *open_self(const char *name, const char *group) {
  clue_comm self = clue_comm_self();
  clue_err err;
  h5ad_file *f = NULL;
  TU_OK(h5ad_open(tu_fixture(name), group, &self, &f, &err), &err);
  return f;
}

static h5ad_file *open_world(const char *name, const char *group) {
  clue_comm world = tu_world();
  clue_err err;
  h5ad_file *f = NULL;
  TU_OK(h5ad_open(tu_fixture(name), group, &world, &f, &err), &err);
  return f;
}

/* err names the file (and, when given, the object). */
static void expect_names(const clue_err *err, const char *path, const char *object) {
  if (!strstr(err->msg, path) || (object && !strstr(err->msg, object)))
    print_error("message '%s' should name %s %s\n", err->msg, path, object ? object : "");
  assert_non_null(strstr(err->msg, path));
  if (object) assert_non_null(strstr(err->msg, object));
}

/* part holds entries [begin, begin + part->n) of whole. */
static void expect_strings_slice(const clue_strings *whole, int64_t begin,
                                 const clue_strings *part) {
  for (int64_t i = 0; i < part->n; i++)
    assert_string_equal(part->s[i], whole->s[begin + i]);
}

/* ---- obs names ---- */

/* Every good range of the obs names of f matches the whole index; `width`:
 * bytes read per name (0: do not check). */
static void check_names(h5ad_file *f, int width) {
  clue_err err;
  clue_strings *whole = NULL, *part = NULL;
  TU_OK(h5ad_read_obs_names(f, &whole, &err), &err);
  assert_int_equal(whole->n, h5ad_n_obs(f));
  span s[16];
  int k = good_spans(whole->n, s);
  for (int q = 0; q < k; q++) {
    int64_t before = h5ad_bytes_read(f);
    TU_OK(h5ad_read_obs_names_range(f, s[q].begin, s[q].end, &part, &err), &err);
    assert_int_equal(part->n, s[q].end - s[q].begin);
    expect_strings_slice(whole, s[q].begin, part);
    if (width) assert_int_equal(h5ad_bytes_read(f) - before, width * part->n);
    clue_strings_free(part);
  }
  k = bad_spans(whole->n, s);
  for (int q = 0; q < k; q++) {
    clue_strings sentinel;
    part = &sentinel; /* must be reset to NULL */
    assert_int_equal(h5ad_read_obs_names_range(f, s[q].begin, s[q].end, &part, &err),
                     CLUE_EINVAL);
    assert_null(part);
    expect_names(&err, h5ad_path(f), "obs");
  }
  clue_strings_free(whole);
}

static void test_obs_names(void **state) {
  (void)state;
  FIXTURES();
  struct {
    const char *file, *group, *first;
    int width;
  } cases[] = {
      {"csr.h5ad", NULL, "c00", 3},       /* variable-length strings */
      {"fixedstr.h5ad", NULL, "c00", 8},  /* fixed-length strings (S8) */
      {NUMIDX_FILE, NULL, "1000", 8},     /* int64 numbers shown as text */
      {"pair.h5mu", "mod/adt", "c39", 3}, /* a MuData modality */
      {"pair.h5mu", NULL, "c00", 3},      /* a MuData file's global obs */
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    h5ad_file *f = open_self(cases[c].file, cases[c].group);
    clue_strings *one = NULL;
    clue_err err;
    TU_OK(h5ad_read_obs_names_range(f, 0, 1, &one, &err), &err);
    assert_string_equal(one->s[0], cases[c].first);
    clue_strings_free(one);
    check_names(f, cases[c].width);
    h5ad_close(f);
  }
}

/* ---- obs columns ---- */

/* part is rows [begin, begin + part->n) of whole. */
static void expect_column_slice(const h5ad_column *whole, int64_t begin,
                                const h5ad_column *part) {
  assert_string_equal(part->name, whole->name);
  assert_int_equal(part->kind, whole->kind);
  assert_string_equal(part->encoding, whole->encoding);
  assert_int_equal(part->ordered, whole->ordered);
  assert_int_equal(part->categories ? part->categories->n : -1,
                   whole->categories ? whole->categories->n : -1);
  if (whole->categories) expect_strings_slice(whole->categories, 0, part->categories);
  assert_int_equal(part->codes != NULL, whole->codes != NULL);
  assert_int_equal(part->values != NULL, whole->values != NULL);
  assert_int_equal(part->strings != NULL, whole->strings != NULL);
  if (part->strings) assert_int_equal(part->strings->n, part->n);
  for (int64_t i = 0; i < part->n; i++) {
    int64_t w = begin + i;
    if (whole->codes) assert_int_equal(part->codes[i], whole->codes[w]);
    if (whole->values) {
      assert_int_equal(isnan(part->values[i]), isnan(whole->values[w]));
      if (!isnan(whole->values[w])) assert_true(part->values[i] == whole->values[w]);
    }
    if (whole->strings) assert_string_equal(part->strings->s[i], whole->strings->s[w]);
    char a[64], b[64];
    h5ad_column_label(part, i, a, sizeof a);
    h5ad_column_label(whole, w, b, sizeof b);
    assert_string_equal(a, b);
  }
}

/* Every good range of column `name` of f matches the whole column; bad ranges
 * fail naming the file and the column. `width`: bytes read per row besides
 * what an empty range reads (a categorical's categories; 0: do not check). */
static void check_column(h5ad_file *f, const char *name, h5ad_column_kind kind,
                         int width) {
  clue_err err;
  h5ad_column *whole = NULL, *part = NULL;
  TU_OK(h5ad_read_obs_column(f, name, &whole, &err), &err);
  assert_int_equal(whole->kind, kind);
  assert_int_equal(whole->n, h5ad_n_obs(f));
  int64_t before = h5ad_bytes_read(f);
  TU_OK(h5ad_read_obs_column_range(f, name, 3, 3, &part, &err), &err);
  int64_t fixed = h5ad_bytes_read(f) - before;
  assert_int_equal(fixed > 0, kind == H5AD_COL_CATEGORICAL);
  h5ad_column_free(part);
  span s[16];
  int k = good_spans(whole->n, s);
  for (int q = 0; q < k; q++) {
    before = h5ad_bytes_read(f);
    TU_OK(h5ad_read_obs_column_range(f, name, s[q].begin, s[q].end, &part, &err), &err);
    assert_int_equal(part->n, s[q].end - s[q].begin);
    expect_column_slice(whole, s[q].begin, part);
    if (width) assert_int_equal(h5ad_bytes_read(f) - before, fixed + width * part->n);
    h5ad_column_free(part);
  }
  char object[300];
  snprintf(object, sizeof object, "obs/%s", name);
  k = bad_spans(whole->n, s);
  for (int q = 0; q < k; q++) {
    h5ad_column sentinel;
    part = &sentinel; /* must be reset to NULL */
    assert_int_equal(
        h5ad_read_obs_column_range(f, name, s[q].begin, s[q].end, &part, &err),
        CLUE_EINVAL);
    assert_null(part);
    expect_names(&err, h5ad_path(f), object);
  }
  h5ad_column_free(whole);
}

static void test_obs_columns(void **state) {
  (void)state;
  FIXTURES();
  struct {
    const char *name;
    h5ad_column_kind kind;
    int width; /* bytes read per row, 0: not checked */
  } cols[] = {
      {"cat", H5AD_COL_CATEGORICAL, 1},   /* int8 codes */
      {"batch", H5AD_COL_CATEGORICAL, 8}, /* int64 codes */
      {"split", H5AD_COL_CATEGORICAL, 1},
      {"icat", H5AD_COL_CATEGORICAL, 0}, /* numeric categories, ordered */
      {"num", H5AD_COL_NUMERIC, 8},
      {"ints", H5AD_COL_NUMERIC, 8},
      {"flag", H5AD_COL_BOOL, 1},    /* HDF5 enum */
      {"nint", H5AD_COL_NUMERIC, 9}, /* int64 values + bool mask */
      {"nfloat", H5AD_COL_NUMERIC, 9},
      {"nbool", H5AD_COL_BOOL, 2},
      {"nstr", H5AD_COL_STRING, 0},  /* nullable strings */
      {"name", H5AD_COL_STRING, 2},  /* variable-length "n<k>" */
      {"fixed", H5AD_COL_STRING, 6}, /* fixed-length */
  };
  h5ad_file *f = open_self(EXTRA_FILE, NULL);
  for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) {
    int64_t before = h5ad_bytes_read(f);
    check_column(f, cols[c].name, cols[c].kind, cols[c].width);
    assert_true(h5ad_bytes_read(f) > before);
  }
  /* the fixture columns hold what they were written with */
  clue_err err;
  h5ad_column *c = NULL;
  char lab[64];
  TU_OK(h5ad_read_obs_column_range(f, "icat", 4, 7, &c, &err), &err);
  assert_true(c->ordered);
  h5ad_column_label(c, 0, lab, sizeof lab); /* row 4 */
  assert_string_equal(lab, "20");
  h5ad_column_label(c, 1, lab, sizeof lab); /* row 5: missing */
  assert_string_equal(lab, "");
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column_range(f, "nstr", 12, 15, &c, &err), &err);
  assert_string_equal(c->strings->s[0], "s12");
  assert_string_equal(c->strings->s[1], ""); /* 13 % 4 == 1: masked */
  assert_string_equal(c->strings->s[2], "s14");
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column_range(f, "nfloat", 7, 9, &c, &err), &err);
  assert_true(c->values[0] == 7 / 4.0);
  assert_true(isnan(c->values[1])); /* 8 % 6 == 2: masked */
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column_range(f, "fixed", 39, 40, &c, &err), &err);
  assert_string_equal(c->strings->s[0], "f39");
  h5ad_column_free(c);
  h5ad_close(f);
  /* int16 codes; fixed-length strings in every attribute */
  const char *files[] = {"csr64.h5ad", "fixedstr.h5ad"};
  for (int k = 0; k < 2; k++) {
    f = open_self(files[k], NULL);
    check_column(f, "cat", H5AD_COL_CATEGORICAL, k == 0 ? 2 : 1);
    check_column(f, "nint", H5AD_COL_NUMERIC, 0);
    h5ad_close(f);
  }
  /* a modality of a MuData file and the file's global obs */
  f = open_self("pair.h5mu", "mod/rna");
  check_column(f, "batch", H5AD_COL_CATEGORICAL, 0);
  h5ad_close(f);
  f = open_self("pair.h5mu", NULL);
  check_column(f, "origin", H5AD_COL_CATEGORICAL, 1);
  h5ad_close(f);
}

/* A bad code is found only by the ranges that hold it, and reported with its
 * file row. */
static void test_bad_code(void **state) {
  (void)state;
  FIXTURES();
  h5ad_file *f = open_self(EXTRA_FILE, NULL);
  clue_err whole_err, err;
  h5ad_column *c = NULL;
  assert_int_equal(h5ad_read_obs_column(f, "badcat", &c, &whole_err), CLUE_EFORMAT);
  assert_non_null(strstr(whole_err.msg, "code 7 at row 30 is outside [-1, 2)"));
  assert_int_equal(h5ad_read_obs_column_range(f, "badcat", 25, 35, &c, &err),
                   CLUE_EFORMAT);
  assert_string_equal(err.msg, whole_err.msg);
  assert_null(c);
  TU_OK(h5ad_read_obs_column_range(f, "badcat", 0, 30, &c, &err), &err);
  assert_int_equal(c->codes[29], 1);
  h5ad_column_free(c);
  TU_OK(h5ad_read_obs_column_range(f, "badcat", 31, 40, &c, &err), &err);
  assert_int_equal(c->codes[0], 1);
  h5ad_column_free(c);
  h5ad_close(f);
}

/* A missing column fails as the whole reader does, listing the columns. */
static void test_missing_column(void **state) {
  (void)state;
  FIXTURES();
  h5ad_file *f = open_self("csr.h5ad", NULL);
  clue_err whole_err, err;
  h5ad_column *c = NULL;
  const char *names[] = {"nosuch", "", "a/b"};
  for (int k = 0; k < 3; k++) {
    assert_int_equal(h5ad_read_obs_column(f, names[k], &c, &whole_err), CLUE_EFORMAT);
    h5ad_column sentinel;
    c = &sentinel; /* must be reset to NULL */
    assert_int_equal(h5ad_read_obs_column_range(f, names[k], 0, 2, &c, &err),
                     CLUE_EFORMAT);
    assert_null(c);
    assert_string_equal(err.msg, whole_err.msg);
    expect_names(&err, h5ad_path(f), "(columns: cat, num, ints");
  }
  /* a missing column is reported before a bad range */
  assert_int_equal(h5ad_read_obs_column_range(f, "nosuch", 5, 1, &c, &err), CLUE_EFORMAT);
  assert_non_null(strstr(err.msg, "has no column 'nosuch'"));
  h5ad_close(f);
}

/* ---- obsmap ---- */

static void check_obsmap(const char *path, const char *mod) {
  clue_err err;
  int64_t *whole = NULL, *part = NULL, n = 0, n_total = -1;
  TU_OK(h5mu_read_obsmap(path, mod, &whole, &n, &err), &err);
  assert_int_equal(n, TU_N_OBS);
  span s[16];
  int k = good_spans(n, s);
  for (int q = 0; q < k; q++) {
    TU_OK(h5mu_read_obsmap_range(path, mod, s[q].begin, s[q].end, &part, &n_total, &err),
          &err);
    assert_non_null(part);
    assert_int_equal(n_total, n);
    for (int64_t i = 0; i < s[q].end - s[q].begin; i++)
      assert_int_equal(part[i], whole[s[q].begin + i]);
    free(part);
  }
  k = bad_spans(n, s);
  for (int q = 0; q < k; q++) {
    part = whole; /* must be reset to NULL */
    assert_int_equal(
        h5mu_read_obsmap_range(path, mod, s[q].begin, s[q].end, &part, &n_total, &err),
        CLUE_EINVAL);
    assert_null(part);
    assert_int_equal(n_total, 0);
    expect_names(&err, path, "obsmap");
  }
  free(whole);
}

static void test_obsmap(void **state) {
  (void)state;
  FIXTURES();
  const char *mu = tu_fixture("pair.h5mu");
  check_obsmap(mu, "rna");
  check_obsmap(mu, "adt");
  clue_err err;
  int64_t *map = NULL, n_total = -1;
  TU_OK(h5mu_read_obsmap_range(mu, "adt", 9, 12, &map, &n_total, &err), &err);
  assert_int_equal(map[0], 0); /* c09 has no adt row; c10 is its row 30 */
  assert_int_equal(map[1], 30);
  assert_int_equal(map[2], 29);
  free(map);
  /* no obsmap/<mod>: NULL map, as the whole reader; the range is still checked */
  const char *no = tu_fixture("pair_noobsmap.h5mu");
  map = &n_total;
  TU_OK(h5mu_read_obsmap_range(no, "adt", 0, 5, &map, &n_total, &err), &err);
  assert_null(map);
  assert_int_equal(n_total, 0);
  TU_OK(h5mu_read_obsmap_range(mu, "atac", 0, 5, &map, &n_total, &err), &err);
  assert_null(map);
  assert_int_equal(
      h5mu_read_obsmap_range(no, "adt", 0, TU_N_OBS + 1, &map, &n_total, &err),
      CLUE_EINVAL);
  expect_names(&err, no, "obsmap/adt");
  /* not a MuData file: the whole reader's message */
  clue_err whole_err;
  const char *plain = tu_fixture("csr.h5ad");
  assert_int_equal(h5mu_read_obsmap(plain, "rna", &map, &n_total, &whole_err),
                   CLUE_EFORMAT);
  assert_int_equal(h5mu_read_obsmap_range(plain, "rna", 0, 1, &map, &n_total, &err),
                   CLUE_EFORMAT);
  assert_string_equal(err.msg, whole_err.msg);
}

/* ---- row lengths (collective) ---- */

/* The range this rank reads in collective round q of n_rounds on n rows:
 * first every good range, the same on every rank; then each rank its block;
 * every other rank its block and the rest nothing; the blocks in reverse rank
 * order. No rank's range lies strictly inside another's: Open MPI 4.1.4's
 * OMPIO collective read (fcoll dynamic, dynamic_gen2, vulcan) returns zeros
 * past the inner range for such nested selections on 3 or more ranks (the
 * shared h5ad__read_ranges, whatever the caller); neighbouring blocks, whose
 * indptr ranges share one entry, are read correctly. */
static span round_span(int q, int64_t n, int *n_rounds) {
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  span s[16];
  int k = good_spans(n, s);
  *n_rounds = k + 3;
  int r = q == k + 2 ? size - 1 - rank : rank;
  span block = {n * r / size, n * (r + 1) / size};
  if (q < k) return s[q];
  if (q == k + 1 && rank % 2) return (span){0, 0};
  return block;
}

/* In every round each rank's range matches the whole read. `ip_bytes`: bytes
 * of one indptr entry (CSR: only indptr[begin .. end] is read; 0: dense or
 * CSC, not checked). */
static void check_row_nnz(h5ad_file *f, const char *layer, int ip_bytes) {
  clue_err err;
  int64_t *whole = NULL, *part = NULL;
  TU_OK(h5ad_read_row_nnz(f, layer, &whole, &err), &err);
  int n_rounds = 1;
  for (int q = 0; q < n_rounds; q++) {
    span mine = round_span(q, h5ad_n_obs(f), &n_rounds);
    int64_t before = h5ad_bytes_read(f), len = mine.end - mine.begin;
    TU_OK(h5ad_read_row_nnz_range(f, layer, mine.begin, mine.end, &part, &err), &err);
    assert_non_null(part);
    for (int64_t i = 0; i < len; i++) assert_int_equal(part[i], whole[mine.begin + i]);
    if (ip_bytes)
      assert_int_equal(h5ad_bytes_read(f) - before, len ? (len + 1) * ip_bytes : 0);
    free(part);
  }
  free(whole);
}

/* Bad ranges fail on every rank, even when only rank 0 asks for one. */
static void check_row_nnz_errors(h5ad_file *f, const char *layer) {
  clue_err err;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  int64_t n = h5ad_n_obs(f), *part = NULL;
  span s[16];
  int k = bad_spans(n, s);
  for (int q = 0; q < k; q++) {
    span mine = rank == 0 ? s[q] : (span){0, n};
    part = &n; /* must be reset to NULL */
    assert_int_equal(h5ad_read_row_nnz_range(f, layer, mine.begin, mine.end, &part, &err),
                     CLUE_EINVAL);
    assert_null(part);
    expect_names(&err, h5ad_path(f), layer ? layer : "X");
  }
}

static void test_row_nnz(void **state) {
  (void)state;
  FIXTURES();
  struct {
    const char *file, *group, *layer;
    int ip_bytes;
  } cases[] = {
      {"csr.h5ad", NULL, NULL, 4},      {"csr.h5ad", NULL, "counts", 8},
      {"csr.h5ad", NULL, "dense", 0},   {"csr64.h5ad", NULL, "X", 8},
      {"unsorted.h5ad", NULL, NULL, 4}, {"dense.h5ad", NULL, NULL, 0},
      {"csc.h5ad", NULL, NULL, 0},      {"pair.h5mu", "mod/adt", NULL, 4},
  };
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    h5ad_file *f = open_world(cases[c].file, cases[c].group);
    check_row_nnz(f, cases[c].layer, cases[c].ip_bytes);
    h5ad_set_read_limit(f, 3); /* several collective rounds, uneven over ranks */
    check_row_nnz(f, cases[c].layer, cases[c].ip_bytes);
    check_row_nnz_errors(f, cases[c].layer);
    h5ad_close(f);
  }
}

/* A ranged CSR read checks only its own part of indptr: the fixture's indptr
 * decreases at row 7 (indptr[8] < indptr[7]). */
static void test_row_nnz_local_checks(void **state) {
  (void)state;
  FIXTURES();
  h5ad_file *f = open_world("bad_indptr_decr.h5ad", NULL);
  clue_err err;
  int64_t *part = NULL, n = h5ad_n_obs(f);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  TU_OK(h5ad_read_row_nnz_range(f, NULL, 0, 7, &part, &err), &err);
  free(part);
  TU_OK(h5ad_read_row_nnz_range(f, NULL, 8, n, &part, &err), &err);
  free(part);
  span mine = rank == 0 ? (span){6, 9} : (span){8, n}; /* only rank 0 sees row 7 */
  assert_int_equal(h5ad_read_row_nnz_range(f, NULL, mine.begin, mine.end, &part, &err),
                   CLUE_EFORMAT);
  assert_null(part);
  expect_names(&err, h5ad_path(f), "X/indptr decreases at row 7");
  h5ad_close(f);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_obs_names),
      cmocka_unit_test(test_obs_columns),
      cmocka_unit_test(test_bad_code),
      cmocka_unit_test(test_missing_column),
      cmocka_unit_test(test_obsmap),
      cmocka_unit_test(test_row_nnz),
      cmocka_unit_test(test_row_nnz_local_checks),
  };
  return TU_RUN(tests);
}
