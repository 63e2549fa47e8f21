/* fuzz_h5ad_struct.c — structure-aware libFuzzer harness for the .h5ad/.h5mu
 * reader. The fuzzer's bytes are a recipe, not a file: they choose the shapes,
 * the encodings, the dtypes, the indptr/indices/data contents, the attributes
 * and the string encodings of an AnnData object (or a MuData file with
 * modalities and obsmaps), which is written with the HDF5 C API to a scratch
 * file and then read by every reader entry point (fuzz_reader.c). Every file
 * is valid HDF5, so the fuzzer spends its time in clue's checks rather than in
 * HDF5's superblock parser. Most choices are "the right thing" most of the
 * time, so that the reader gets deep before something is off. */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_reader.h"

/* ---- the recipe: bytes consumed front to back, zeros once exhausted ---- */

typedef struct recipe {
  const uint8_t *p;
  size_t n;
} recipe;

static uint32_t take(recipe *r, uint32_t bound) {
  if (bound <= 1) return 0;
  uint32_t v = 0;
  int bytes = bound <= 256 ? 1 : bound <= 65536 ? 2 : 4;
  for (int i = 0; i < bytes; i++) {
    v = (v << 8) | (r->n ? *r->p : 0);
    if (r->n) r->p++, r->n--;
  }
  return v % bound;
}

/* True with probability about 1/k. */
static int rare(recipe *r, uint32_t k) { return take(r, k) == 0; }

static const int SIZES[] = {0, 1, 2, 3, 4, 5, 7, 8, 13, 40};
#define N_SIZES ((uint32_t)(sizeof SIZES / sizeof SIZES[0]))

static int take_size(recipe *r) { return SIZES[take(r, N_SIZES)]; }

static double take_value(recipe *r) {
  static const double special[] = {0, 1, 2, 3, 17, 1e6, 16777217.0, -1, NAN, INFINITY,
                                   -INFINITY, 1e300, 0.5, 4294967296.0, -0.0, 1e-310};
  uint32_t c = take(r, 24);
  if (c < 16) return special[c];
  return (double)take(r, 1000) - (c == 16 ? 500 : 0);
}

/* ---- HDF5 writing helpers (failures are ignored: a broken file is fine) ---- */

static hid_t bool_type(void) {
  hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
  int8_t v = 0;
  H5Tenum_insert(t, "FALSE", &v);
  v = 1;
  H5Tenum_insert(t, "TRUE", &v);
  return t;
}

/* A numeric file type chosen from the recipe (caller closes it). */
static hid_t take_num_type(recipe *r, int integer_only) {
  uint32_t n_int = 9;
  uint32_t c = take(r, integer_only ? n_int + 1 : n_int + 4);
  switch (c) {
    case 0: return H5Tcopy(H5T_STD_I32LE);
    case 1: return H5Tcopy(H5T_STD_I64LE);
    case 2: return H5Tcopy(H5T_STD_U16LE);
    case 3: return H5Tcopy(H5T_STD_I8LE);
    case 4: return H5Tcopy(H5T_STD_U8LE);
    case 5: return H5Tcopy(H5T_STD_U32LE);
    case 6: return H5Tcopy(H5T_STD_U64LE);
    case 7: return H5Tcopy(H5T_STD_I16LE);
    case 8: return H5Tcopy(H5T_STD_I64BE);
    case 9: return integer_only ? H5Tcopy(H5T_IEEE_F64LE) : H5Tcopy(H5T_IEEE_F32LE);
    case 10: return H5Tcopy(H5T_IEEE_F64LE);
    case 11: return bool_type();
    default: return H5Tcopy(H5T_IEEE_F32BE);
  }
}

static void attr_string(hid_t obj, const char *name, const char *value, int fixed) {
  hid_t t = H5Tcopy(H5T_C_S1);
  if (fixed) H5Tset_size(t, strlen(value) + 1);
  else H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    if (fixed) H5Awrite(a, t, value);
    else H5Awrite(a, t, &value);
    H5Aclose(a);
  }
  H5Sclose(s);
  H5Tclose(t);
}

static void attr_i64s(hid_t obj, const char *name, const int64_t *v, hsize_t n, hid_t type) {
  hid_t s = H5Screate_simple(1, &n, NULL);
  hid_t a = H5Acreate2(obj, name, type, s, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    H5Awrite(a, H5T_NATIVE_INT64, v);
    H5Aclose(a);
  }
  H5Sclose(s);
}

static void attr_strings(hid_t obj, const char *name, char **v, hsize_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t s = H5Screate_simple(1, &n, NULL);
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  if (a >= 0) {
    H5Awrite(a, t, v);
    H5Aclose(a);
  }
  H5Sclose(s);
  H5Tclose(t);
}

/* encoding-type and encoding-version, usually right, sometimes not. */
static void encoding(recipe *r, hid_t obj, const char *type, const char *version) {
  uint32_t c = take(r, 16);
  if (c == 0) return; /* absent */
  if (c == 1) {
    int64_t v = 3;
    attr_i64s(obj, "encoding-type", &v, 1, H5T_STD_I64LE);
  } else if (c == 2) {
    attr_string(obj, "encoding-type", "csr_matrix", 0);
  } else if (c == 3) {
    attr_string(obj, "encoding-type", type, 1);
  } else {
    attr_string(obj, "encoding-type", type, 0);
  }
  if (!rare(r, 8)) attr_string(obj, "encoding-version", version, 0);
}

/* Properties of a new dataset: contiguous, or chunked (maybe compressed). */
static hid_t take_dcpl(recipe *r, int rank, const hsize_t *dims) {
  hid_t p = H5Pcreate(H5P_DATASET_CREATE);
  if (rare(r, 3)) {
    hsize_t chunk[3];
    for (int i = 0; i < rank; i++) chunk[i] = 1 + take(r, 8);
    for (int i = 0; i < rank; i++)
      if (dims[i] == 0) chunk[i] = 1;
    H5Pset_chunk(p, rank, chunk);
    if (rare(r, 2)) H5Pset_deflate(p, 1);
  }
  return p;
}

/* A numeric dataset of n values (rank 1) or rows × cols (rank 2) from vals. */
static void dset_numbers(recipe *r, hid_t loc, const char *name, hid_t type, int rank,
                         const hsize_t *dims, const double *vals) {
  hid_t s = H5Screate_simple(rank, dims, NULL);
  hid_t p = take_dcpl(r, rank, dims);
  hid_t d = H5Dcreate2(loc, name, type, s, H5P_DEFAULT, p, H5P_DEFAULT);
  if (d >= 0) {
    hsize_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    if (total > 0) {
      if (H5Tget_class(type) == H5T_ENUM) {
        int8_t *b = calloc(total, 1);
        for (hsize_t i = 0; i < total; i++) b[i] = vals[i] != 0;
        H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, b);
        free(b);
      } else {
        H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, vals);
      }
    }
    H5Dclose(d);
  }
  H5Pclose(p);
  H5Sclose(s);
}

/* A 1-D dataset of strings: variable-length UTF-8 or ASCII, or fixed length. */
static hid_t dset_strings(recipe *r, hid_t loc, const char *name, char **v, hsize_t n) {
  hid_t t = H5Tcopy(H5T_C_S1);
  uint32_t mode = take(r, 6);
  size_t fixed = 0;
  if (mode == 4 || mode == 5) {
    fixed = mode == 4 ? 1 + take(r, 12) : 1;
    for (hsize_t i = 0; mode == 5 && i < n; i++)
      if (strlen(v[i]) + 1 > fixed) fixed = strlen(v[i]) + 1;
    H5Tset_size(t, fixed);
    if (rare(r, 2)) H5Tset_strpad(t, H5T_STR_NULLPAD);
  } else {
    H5Tset_size(t, H5T_VARIABLE);
  }
  H5Tset_cset(t, mode == 1 ? H5T_CSET_ASCII : H5T_CSET_UTF8);
  hid_t s = H5Screate_simple(1, &n, NULL);
  hid_t d = H5Dcreate2(loc, name, t, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (d >= 0 && n > 0) {
    if (fixed) {
      char *buf = calloc(n, fixed);
      for (hsize_t i = 0; i < n; i++) strncpy(buf + i * fixed, v[i], fixed);
      H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
      free(buf);
    } else {
      H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    }
  }
  H5Sclose(s);
  H5Tclose(t);
  return d;
}

/* ---- names ---- */

typedef struct names {
  int n;
  char **s; /* (n) */
} names;

static void names_free(names *a) {
  for (int i = 0; i < a->n; i++) free(a->s[i]);
  free(a->s);
  a->s = NULL;
  a->n = 0;
}

/* n names "<prefix><i>", sometimes duplicated, empty, long or odd bytes. */
static names take_names(recipe *r, const char *prefix, int n) {
  names a = {n, calloc((size_t)n + 1, sizeof(char *))};
  uint32_t style = take(r, 12);
  for (int i = 0; i < n; i++) {
    char buf[320];
    if (style == 0 && i > 0 && rare(r, 3)) {
      snprintf(buf, sizeof buf, "%s", a.s[take(r, (uint32_t)i)]); /* duplicate */
    } else if (style == 1 && rare(r, 3)) {
      buf[0] = '\0';
    } else if (style == 2) {
      size_t len = take(r, 8);
      for (size_t j = 0; j < len; j++) buf[j] = (char)(1 + take(r, 255)); /* any byte but NUL */
      buf[len] = '\0';
    } else if (style == 3 && rare(r, 4)) {
      memset(buf, 'x', 300);
      snprintf(buf + 300, 20, "%d", i);
    } else {
      snprintf(buf, sizeof buf, "%s%d", prefix, i);
    }
    a.s[i] = strdup(buf);
  }
  return a;
}

/* ---- data frames ---- */

static void categorical(recipe *r, hid_t frame, const char *name, int n) {
  hid_t g = H5Gcreate2(frame, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return;
  encoding(r, g, "categorical", "0.2.0");
  int ncat = (int)take(r, 5);
  if (!rare(r, 10)) {
    names cats = take_names(r, "k", ncat);
    if (rare(r, 8)) {
      double v[8];
      hsize_t dn = (hsize_t)ncat;
      for (int i = 0; i < ncat; i++) v[i] = i;
      dset_numbers(r, g, "categories", H5T_STD_I64LE, 1, &dn, v);
    } else {
      hid_t d = dset_strings(r, g, "categories", cats.s, (hsize_t)ncat);
      if (d >= 0) H5Dclose(d);
    }
    names_free(&cats);
  }
  if (!rare(r, 10)) {
    hsize_t len = (hsize_t)(rare(r, 10) ? n + 1 : n);
    double *codes = calloc(len + 1, sizeof *codes);
    for (hsize_t i = 0; i < len; i++)
      codes[i] = rare(r, 12) ? (double)take(r, 300) - 150 : (double)take(r, (uint32_t)ncat + 1) - 1;
    hid_t t = take_num_type(r, 1);
    dset_numbers(r, g, "codes", t, 1, &len, codes);
    H5Tclose(t);
    free(codes);
  }
  uint32_t o = take(r, 4);
  if (o == 0) {
    hid_t bt = bool_type();
    hid_t s = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(g, "ordered", bt, s, H5P_DEFAULT, H5P_DEFAULT);
    int8_t v = (int8_t)take(r, 2);
    if (a >= 0) H5Awrite(a, bt, &v), H5Aclose(a);
    H5Sclose(s);
    H5Tclose(bt);
  } else if (o == 1) {
    int64_t v = take(r, 3);
    attr_i64s(g, "ordered", &v, 1, H5T_STD_I64LE);
  } else if (o == 2) {
    attr_string(g, "ordered", "yes", 0);
  }
  H5Gclose(g);
}

/* A numeric, bool, nullable, string or odd column of about n rows. */
static void column(recipe *r, hid_t frame, const char *name, int n) {
  uint32_t kind = take(r, 8);
  hsize_t len = (hsize_t)(rare(r, 12) ? (n > 0 ? n - 1 : 1) : n);
  double *v = calloc(len + 1, sizeof *v);
  for (hsize_t i = 0; i < len; i++) v[i] = take_value(r);
  if (kind == 0 || kind == 1) {
    categorical(r, frame, name, n);
  } else if (kind == 2 || kind == 3) {
    hid_t t = take_num_type(r, 0);
    dset_numbers(r, frame, name, t, 1, &len, v);
    H5Tclose(t);
    hid_t d = H5Dopen2(frame, name, H5P_DEFAULT);
    if (d >= 0) encoding(r, d, "array", "0.2.0"), H5Dclose(d);
  } else if (kind == 4) { /* nullable */
    hid_t g = H5Gcreate2(frame, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) {
      encoding(r, g, rare(r, 2) ? "nullable-integer" : "nullable-boolean", "0.1.0");
      hid_t t = take_num_type(r, 0);
      if (!rare(r, 8)) dset_numbers(r, g, "values", t, 1, &len, v);
      H5Tclose(t);
      hsize_t mlen = rare(r, 8) ? len + 1 : len;
      double *m = calloc(mlen + 1, sizeof *m);
      for (hsize_t i = 0; i < mlen; i++) m[i] = take(r, 2);
      hid_t bt = bool_type();
      if (!rare(r, 8)) dset_numbers(r, g, "mask", rare(r, 4) ? H5T_STD_U8LE : bt, 1, &mlen, m);
      H5Tclose(bt);
      free(m);
      H5Gclose(g);
    }
  } else if (kind == 5) {
    names s = take_names(r, "s", (int)len);
    hid_t d = dset_strings(r, frame, name, s.s, len);
    if (d >= 0) encoding(r, d, "string-array", "0.2.0"), H5Dclose(d);
    names_free(&s);
  } else if (kind == 6) { /* 2-D */
    hsize_t dims[2] = {len, 2};
    double *w = calloc(2 * len + 1, sizeof *w);
    dset_numbers(r, frame, name, H5T_IEEE_F64LE, 2, dims, w);
    free(w);
  } else { /* a group of an unknown kind */
    hid_t g = H5Gcreate2(frame, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) encoding(r, g, "awkward-array", "0.1.0"), H5Gclose(g);
  }
  free(v);
}

/* obs or var with n rows and index `index`. */
static void frame(recipe *r, hid_t loc, const char *fname, const names *index) {
  if (rare(r, 30)) return; /* missing */
  if (rare(r, 40)) {       /* a dataset instead of a group */
    hsize_t one = 1;
    double z = 0;
    dset_numbers(r, loc, fname, H5T_IEEE_F64LE, 1, &one, &z);
    return;
  }
  hid_t g = H5Gcreate2(loc, fname, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return;
  encoding(r, g, "dataframe", "0.2.0");
  uint32_t ic = take(r, 20);
  const char *iname = ic == 0 ? "idx" : "_index";
  if (ic == 1) {
    int64_t v = 0;
    attr_i64s(g, "_index", &v, 1, H5T_STD_I64LE);
  } else if (ic != 2) {
    attr_string(g, "_index", ic == 3 ? "nothing" : iname, ic == 4);
  }
  uint32_t how = take(r, 16);
  if (how == 0) { /* numeric index */
    double *v = calloc((size_t)index->n + 1, sizeof *v);
    for (int i = 0; i < index->n; i++) v[i] = i;
    hsize_t n = (hsize_t)index->n;
    dset_numbers(r, g, iname, H5T_STD_I64LE, 1, &n, v);
    free(v);
  } else if (how != 1) {
    hid_t d = dset_strings(r, g, iname, index->s, (hsize_t)index->n);
    if (d >= 0) encoding(r, d, "string-array", "0.2.0"), H5Dclose(d);
  }
  int n_cols = (int)take(r, 4);
  char *order[6];
  int n_order = 0;
  static const char *const col_names[] = {"batch", "split", "cell_type", "n", "b/c", ""};
  for (int c = 0; c < n_cols; c++) {
    const char *cn = col_names[take(r, 6)];
    if (cn[0] && !H5Lexists(g, cn, H5P_DEFAULT) && !strchr(cn, '/'))
      column(r, g, cn, index->n);
    order[n_order++] = (char *)cn;
  }
  if (rare(r, 6)) order[n_order++] = (char *)"ghost";
  uint32_t oc = take(r, 8);
  if (oc == 0 && n_order == 0) { /* h5py writes an empty list as an empty float array */
    hsize_t zero = 0;
    hid_t s = H5Screate_simple(1, &zero, NULL);
    hid_t a = H5Acreate2(g, "column-order", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT);
    if (a >= 0) H5Aclose(a);
    H5Sclose(s);
  } else if (oc == 1) {
    if (n_order) attr_string(g, "column-order", order[0], 0);
  } else if (oc != 2) {
    attr_strings(g, "column-order", order, (hsize_t)n_order);
  }
  H5Gclose(g);
}

/* ---- matrices ---- */

/* Row (or column) lengths of a sparse matrix and the minor indices. */
static void sparse(recipe *r, hid_t g, int64_t major, int64_t minor) {
  int64_t *len = calloc((size_t)major + 1, sizeof *len);
  int64_t nnz = 0;
  for (int64_t i = 0; i < major; i++) nnz += len[i] = take(r, (uint32_t)(minor < 5 ? minor + 1 : 5));
  double *indptr = calloc((size_t)major + 2, sizeof *indptr);
  for (int64_t i = 0; i < major; i++) indptr[i + 1] = indptr[i] + (double)len[i];
  hsize_t np = (hsize_t)major + 1;
  uint32_t broken = take(r, 24);
  if (broken == 0 && major > 0) indptr[take(r, (uint32_t)major + 1)] += (double)take(r, 5) - 2;
  if (broken == 1) indptr[0] = 1;
  if (broken == 2) np = (hsize_t)major;
  if (broken == 3 && major > 0) indptr[major] = 1e12;
  if (broken == 4) indptr[take(r, (uint32_t)major + 1)] = -1;
  double *idx = calloc((size_t)nnz + 1, sizeof *idx), *val = calloc((size_t)nnz + 1, sizeof *val);
  uint32_t order = take(r, 8); /* 0: unsorted, 1: duplicates, 2: out of range */
  for (int64_t i = 0, at = 0; i < major; i++) {
    int64_t start = take(r, (uint32_t)(minor - len[i] + 1)); /* ascending run */
    for (int64_t j = 0; j < len[i]; j++, at++) {
      idx[at] = (double)(start + j);
      if (order == 0 && rare(r, 3)) idx[at] = take(r, (uint32_t)minor);
      if (order == 1 && j > 0 && rare(r, 3)) idx[at] = idx[at - 1];
      if (order == 2 && rare(r, 6)) idx[at] = rare(r, 2) ? (double)minor : -1;
      val[at] = rare(r, 3) ? take_value(r) : (double)(1 + take(r, 9));
    }
  }
  hsize_t nd = (hsize_t)nnz, ni = (hsize_t)nnz;
  uint32_t lens = take(r, 20);
  if (lens == 0) nd = nd + 1;
  if (lens == 1 && nd > 0) nd = nd - 1;
  if (lens == 2) ni = ni + 1;
  hid_t t = take_num_type(r, 1);
  if (!rare(r, 40)) dset_numbers(r, g, "indptr", t, 1, &np, indptr);
  H5Tclose(t);
  t = take_num_type(r, 1);
  if (!rare(r, 40)) dset_numbers(r, g, "indices", t, 1, &ni, idx);
  H5Tclose(t);
  t = take_num_type(r, 0);
  if (!rare(r, 40)) dset_numbers(r, g, "data", t, 1, &nd, val);
  H5Tclose(t);
  free(len);
  free(indptr);
  free(idx);
  free(val);
}

static void matrix(recipe *r, hid_t loc, const char *name, int64_t rows, int64_t cols) {
  uint32_t kind = take(r, 12);
  if (kind >= 9) return; /* no matrix */
  if (kind <= 2 || kind == 6) { /* dense */
    int rank = rare(r, 20) ? 1 : 2;
    hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
    if (rare(r, 20)) dims[0] = (hsize_t)rows + 1;
    hsize_t total = rank == 1 ? dims[0] : dims[0] * dims[1];
    double *v = calloc(total + 1, sizeof *v);
    for (hsize_t i = 0; i < total; i++) v[i] = rare(r, 2) ? 0 : rare(r, 3) ? take_value(r) : take(r, 9);
    hid_t t = take_num_type(r, 0);
    dset_numbers(r, loc, name, t, rank, dims, v);
    H5Tclose(t);
    free(v);
    hid_t d = H5Dopen2(loc, name, H5P_DEFAULT);
    if (d >= 0) encoding(r, d, "array", "0.2.0"), H5Dclose(d);
    return;
  }
  int csc = kind == 5 || kind == 7;
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return;
  encoding(r, g, csc ? "csc_matrix" : (kind == 8 ? "coo_matrix" : "csr_matrix"), "0.1.0");
  int64_t shape[3] = {rows, cols, 1};
  uint32_t sc = take(r, 24);
  hsize_t slen = 2;
  if (sc == 0) slen = 1;
  if (sc == 1) slen = 3;
  if (sc == 2) shape[0] = -rows - 1;
  if (sc == 3) shape[1] = (int64_t)1 << 40;
  if (sc == 4) shape[take(r, 2)] += 1;
  if (sc != 5) attr_i64s(g, "shape", shape, slen, sc == 6 ? H5T_IEEE_F64LE : H5T_STD_I64LE);
  sparse(r, g, csc ? cols : rows, csc ? rows : cols);
  H5Gclose(g);
}

static void obsm(recipe *r, hid_t loc, int64_t n_obs) {
  if (rare(r, 2)) return;
  hid_t g = H5Gcreate2(loc, "obsm", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) return;
  encoding(r, g, "dict", "0.1.0");
  int n = 1 + (int)take(r, 2);
  static const char *const keys[] = {"X_pca", "X_clue", "X_umap"};
  for (int k = 0; k < n; k++) {
    uint32_t c = take(r, 10);
    if (c == 0) {
      hid_t s = H5Gcreate2(g, keys[k], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (s >= 0) encoding(r, s, "dataframe", "0.2.0"), H5Gclose(s);
      continue;
    }
    int rank = c == 1 ? 1 : c == 2 ? 3 : 2;
    hsize_t dims[3] = {(hsize_t)(rare(r, 10) ? n_obs + 1 : n_obs), take(r, 6), 2};
    hsize_t total = dims[0] * (rank > 1 ? dims[1] : 1) * (rank > 2 ? 2 : 1);
    double *v = calloc(total + 1, sizeof *v);
    for (hsize_t i = 0; i < total; i++) v[i] = take_value(r);
    hid_t t = take_num_type(r, 0);
    dset_numbers(r, g, keys[k], t, rank, dims, v);
    H5Tclose(t);
    free(v);
  }
  H5Gclose(g);
}

/* An AnnData object at loc whose cells are named from `cells`. */
static void anndata(recipe *r, hid_t loc, const names *cells) {
  encoding(r, loc, "anndata", "0.1.0");
  int n_vars = take_size(r);
  names genes = take_names(r, "g", n_vars);
  frame(r, loc, "obs", cells);
  frame(r, loc, "var", &genes);
  int64_t rows = rare(r, 30) ? cells->n + 1 : cells->n;
  matrix(r, loc, "X", rows, n_vars);
  if (rare(r, 4)) {
    hid_t g = H5Gcreate2(loc, "layers", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) {
      encoding(r, g, "dict", "0.1.0");
      matrix(r, g, "counts", cells->n, n_vars);
      H5Gclose(g);
    }
  }
  obsm(r, loc, cells->n);
  names_free(&genes);
}

/* ---- MuData ---- */

static void mudata(recipe *r, hid_t file) {
  hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
  encoding(r, root, "MuData", "0.1.0");
  int n_global = take_size(r);
  names global = take_names(r, "c", n_global);
  frame(r, root, "obs", &global);
  names none = {0, NULL};
  frame(r, root, "var", &none);
  hid_t mod = H5Gcreate2(root, "mod", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  hid_t obsmap = rare(r, 8) ? -1 : H5Gcreate2(root, "obsmap", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  static const char *const mod_names[] = {"rna", "adt", "atac", "a b", "x.y", ""};
  int n_mod = 1 + (int)take(r, 3);
  char *order[4];
  for (int k = 0; k < n_mod && mod >= 0; k++) {
    const char *mn = mod_names[k == 0 ? 0 : take(r, 6)];
    order[k] = (char *)mn;
    if (!mn[0] || H5Lexists(mod, mn, H5P_DEFAULT) > 0) continue;
    /* the modality's cells: a subset of the global ones, in order */
    names cells = {0, calloc((size_t)n_global + 1, sizeof(char *))};
    double *map = calloc((size_t)n_global + 1, sizeof *map);
    for (int c = 0; c < n_global; c++)
      if (!rare(r, 3)) {
        cells.s[cells.n++] = strdup(global.s[c]);
        map[c] = cells.n;
      }
    if (rare(r, 12) && n_global > 0) map[take(r, (uint32_t)n_global)] = (double)take(r, 50);
    hid_t g = H5Gcreate2(mod, mn, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g >= 0) anndata(r, g, &cells), H5Gclose(g);
    if (obsmap >= 0 && !rare(r, 10)) {
      hsize_t len = (hsize_t)(rare(r, 12) ? n_global + 1 : n_global);
      hid_t t = take_num_type(r, 1);
      dset_numbers(r, obsmap, mn, t, 1, &len, map);
      H5Tclose(t);
    }
    free(map);
    names_free(&cells);
  }
  if (mod >= 0 && !rare(r, 4)) attr_strings(mod, "mod-order", order, (hsize_t)n_mod);
  if (obsmap >= 0) H5Gclose(obsmap);
  if (mod >= 0) H5Gclose(mod);
  names_free(&global);
  H5Gclose(root);
}

/* The MuData user block: "MuData (format-version=0.1.0;...)" at byte 0. */
static void user_block(const char *path) {
  FILE *f = fopen(path, "r+b");
  if (!f) return;
  const char *head = "MuData (format-version=0.1.0;creator=clue-fuzz;creator-version=0)";
  fwrite(head, 1, strlen(head), f);
  fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  (void)argc;
  (void)argv;
  fuzz_reader_init();
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  recipe r = {data, size};
  const char *path = fuzz_reader_scratch(".h5");
  int is_mu = rare(&r, 4);
  hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
  if (is_mu) H5Pset_userblock(fcpl, 512);
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
  H5Pclose(fcpl);
  if (file < 0) abort();
  if (is_mu) {
    mudata(&r, file);
  } else {
    names cells = take_names(&r, "c", take_size(&r));
    hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
    anndata(&r, root, &cells);
    H5Gclose(root);
    names_free(&cells);
  }
  H5Fclose(file);
  if (is_mu) user_block(path);
  fuzz_reader_run(path);
  remove(path);
  return 0;
}
