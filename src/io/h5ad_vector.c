/* h5ad_vector.c — reading rows [begin, end) of 1-D datasets (the whole
 * dataset is the span [0, n)): obs/var indices, categories, string columns
 * (variable- or fixed-length strings, or numbers shown as text), numeric and
 * boolean columns, category codes. Each read is one hyperslab selection, so a
 * span reads only its own elements. Independent reads: any rank may call
 * these alone. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5ad_internal.h"

hid_t h5ad__string_mem_type(hid_t t) {
  if (H5Tis_variable_str(t) > 0) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t));
    return mt;
  }
  return H5Tcopy(t);
}

void h5ad__copy_fixed(char *dst, size_t size, const char *src, size_t len) {
  size_t n = strnlen(src, len);
  while (n > 0 && src[n - 1] == ' ') n--;
  if (n >= size) n = size - 1;
  memcpy(dst, src, n);
  dst[n] = '\0';
}

clue_strings *h5ad__strings_from_fixed(const char *raw, int64_t n, size_t len,
                                       clue_err *err) {
  char *text = clue_malloc((size_t)n * (len + 1), err);
  char **v = clue_calloc((size_t)n, sizeof *v, err);
  clue_strings *out = NULL;
  if (text && v) {
    for (int64_t i = 0; i < n; i++) {
      v[i] = text + (size_t)i * (len + 1);
      h5ad__copy_fixed(v[i], len + 1, raw + (size_t)i * len, len);
    }
    out = clue_strings_from((const char *const *)v, n, err);
  }
  free(text);
  free(v);
  return out;
}

clue_strings *h5ad__strings_from_vlen(char **v, int64_t n, clue_err *err) {
  const char **view = clue_calloc((size_t)n, sizeof *view, err);
  clue_strings *out = NULL;
  if (view) {
    for (int64_t i = 0; i < n; i++) view[i] = v[i] ? v[i] : "";
    out = clue_strings_from(view, n, err);
  }
  for (int64_t i = 0; i < n; i++)
    if (v[i]) H5free_memory(v[i]);
  free(view);
  return out;
}

int64_t h5ad__dset_length(hid_t dset) {
  hid_t s = H5Dget_space(dset);
  if (s < 0) return -1;
  hsize_t dims[2];
  int rank = H5Sget_simple_extent_ndims(s);
  int64_t n = -1;
  if (rank == 1 && H5Sget_simple_extent_dims(s, dims, NULL) == 1) n = (int64_t)dims[0];
  H5Sclose(s);
  return n;
}

bool h5ad__type_is_integral(hid_t type) {
  H5T_class_t cls = H5Tget_class(type);
  if (cls == H5T_INTEGER) return true;
  if (cls != H5T_ENUM) return false;
  hid_t super = H5Tget_super(type);
  bool ok = super >= 0 && H5Tget_class(super) == H5T_INTEGER;
  if (super >= 0) H5Tclose(super);
  return ok;
}

h5ad_span h5ad__whole(hid_t dset) {
  int64_t n = h5ad__dset_length(dset);
  return (h5ad_span){0, n > 0 ? n : 0};
}

int h5ad__check_span(const char *what, h5ad_span s, int64_t n, clue_err *err) {
  if (s.begin >= 0 && s.begin <= s.end && s.end <= n) return CLUE_OK;
  return clue_fail(err, CLUE_EINVAL,
                   "%s: cannot read rows [%lld, %lld): there are %lld rows (need 0 <= "
                   "begin <= end <= %lld)",
                   what, (long long)s.begin, (long long)s.end, (long long)n,
                   (long long)n);
}

/* H5Dread of elements [s.begin, s.end) of a 1-D dataset into buf as mem_type:
 * one hyperslab, so nothing else is read. An empty span reads nothing. */
static herr_t read_span(hid_t dset, hid_t mem_type, h5ad_span s, void *buf) {
  if (s.end <= s.begin) return 0;
  hsize_t start = (hsize_t)s.begin, count = (hsize_t)(s.end - s.begin);
  hid_t fs = H5Dget_space(dset);
  hid_t ms = H5Screate_simple(1, &count, NULL);
  herr_t st = -1;
  if (fs >= 0 && ms >= 0 &&
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &count, NULL) >= 0)
    st = H5Dread(dset, mem_type, ms, fs, H5P_DEFAULT, buf);
  if (ms >= 0) H5Sclose(ms);
  if (fs >= 0) H5Sclose(fs);
  return st;
}

/* Checks that dset is 1-D with n elements and that s lies within them. */
static int check_vector(hid_t dset, int64_t n, h5ad_span s, const char *what,
                        clue_err *err) {
  if (h5ad__dset_length(dset) != n)
    return clue_fail(err, CLUE_EFORMAT, "%s: expected a 1-D array of %lld values", what,
                     (long long)n);
  return h5ad__check_span(what, s, n, err);
}

/* Reads span s of an enum dataset (h5py's bool) as its integer values. */
static int read_enum_int64(hid_t dset, hid_t type, h5ad_span s, int64_t *out,
                           int64_t *bytes, const char *what, clue_err *err) {
  hid_t super = H5Tget_super(type);
  hid_t mt = H5Tget_native_type(type, H5T_DIR_ASCEND);
  size_t sz = mt >= 0 ? H5Tget_size(mt) : 0;
  bool is_signed = super >= 0 && H5Tget_sign(super) == H5T_SGN_2;
  int64_t n = h5ad__span_length(s);
  int rc = CLUE_OK;
  unsigned char *raw = NULL;
  if (sz == 0 || sz > 8) {
    rc = clue_fail(err, CLUE_EFORMAT, "%s: enum type not readable", what);
  } else if (!(raw = clue_malloc((size_t)n * sz, err))) {
    rc = CLUE_ENOMEM;
  } else if (read_span(dset, mt, s, raw) < 0) {
    rc = clue_fail(err, CLUE_EIO, "%s: cannot read the values", what);
  } else {
    for (int64_t i = 0; i < n; i++) {
      uint64_t u = 0;
      memcpy(&u, raw + (size_t)i * sz, sz); /* little-endian host */
      if (is_signed && sz < 8 && (u >> (8 * sz - 1)) & 1) u |= ~(uint64_t)0 << (8 * sz);
      out[i] = (int64_t)u;
    }
    if (bytes) *bytes += n * (int64_t)sz;
  }
  free(raw);
  if (mt >= 0) H5Tclose(mt);
  if (super >= 0) H5Tclose(super);
  return rc;
}

int h5ad__read_int64s(hid_t dset, const char *what, int64_t n, h5ad_span s, int64_t *out,
                      int64_t *bytes, clue_err *err) {
  hid_t t = H5Dget_type(dset);
  int rc = check_vector(dset, n, s, what, err);
  if (rc != CLUE_OK) {
    /* message written */
  } else if (H5Tget_class(t) == H5T_ENUM) {
    rc = read_enum_int64(dset, t, s, out, bytes, what, err);
  } else if (H5Tget_class(t) != H5T_INTEGER) {
    rc = clue_fail(err, CLUE_EFORMAT, "%s: expected integers", what);
  } else if (read_span(dset, H5T_NATIVE_INT64, s, out) < 0) {
    rc = clue_fail(err, CLUE_EIO, "%s: cannot read the values", what);
  } else if (bytes) {
    *bytes += h5ad__span_length(s) * (int64_t)H5Tget_size(t);
  }
  H5Tclose(t);
  return rc;
}

/* Reads span s of an enum dataset as double (out: the span's length). */
static int read_enum_doubles(hid_t dset, hid_t type, h5ad_span s, double *out,
                             int64_t *bytes, const char *what, clue_err *err) {
  int64_t n = h5ad__span_length(s);
  int64_t *tmp = clue_malloc((size_t)n * sizeof *tmp, err);
  int rc = tmp ? read_enum_int64(dset, type, s, tmp, bytes, what, err) : CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) out[i] = (double)tmp[i];
  free(tmp);
  return rc;
}

int h5ad__read_doubles(hid_t dset, const char *what, int64_t n, h5ad_span s, double *out,
                       int64_t *bytes, clue_err *err) {
  hid_t t = H5Dget_type(dset);
  H5T_class_t cls = H5Tget_class(t);
  int rc = check_vector(dset, n, s, what, err);
  if (rc != CLUE_OK) {
    /* message written */
  } else if (cls == H5T_ENUM) {
    rc = read_enum_doubles(dset, t, s, out, bytes, what, err);
  } else if (cls != H5T_INTEGER && cls != H5T_FLOAT) {
    rc = clue_fail(err, CLUE_EFORMAT, "%s: expected numbers", what);
  } else if (read_span(dset, H5T_NATIVE_DOUBLE, s, out) < 0) {
    rc = clue_fail(err, CLUE_EIO, "%s: cannot read the values", what);
  } else if (bytes) {
    *bytes += h5ad__span_length(s) * (int64_t)H5Tget_size(t);
  }
  H5Tclose(t);
  return rc;
}

/* Span s of a numeric dataset of n elements shown as text: integers without a
 * decimal point. */
static int numbers_as_strings(hid_t dset, int64_t n, h5ad_span s, const char *what,
                              clue_strings **out, int64_t *bytes, clue_err *err) {
  int64_t m = h5ad__span_length(s);
  double *v = clue_malloc((size_t)m * sizeof *v, err);
  char *text = clue_malloc((size_t)m * 32, err);
  char **view = clue_calloc((size_t)m, sizeof *view, err);
  int rc = (v && text && view) ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK) rc = h5ad__read_doubles(dset, what, n, s, v, bytes, err);
  for (int64_t i = 0; rc == CLUE_OK && i < m; i++) {
    view[i] = text + (size_t)i * 32;
    if (v[i] == floor(v[i]) && fabs(v[i]) < 1e15)
      snprintf(view[i], 32, "%lld", (long long)v[i]);
    else
      snprintf(view[i], 32, "%.10g", v[i]);
  }
  if (rc == CLUE_OK) {
    *out = clue_strings_from((const char *const *)view, m, err);
    if (!*out) rc = CLUE_ENOMEM;
  }
  free(v);
  free(text);
  free(view);
  return rc;
}

/* Span s of a dataset of variable-length strings (file type t). */
static int read_vlen_strings(hid_t dset, hid_t t, h5ad_span s, const char *what,
                             clue_strings **out, int64_t *bytes, clue_err *err) {
  int64_t n = h5ad__span_length(s);
  hid_t mt = h5ad__string_mem_type(t);
  char **v = clue_calloc((size_t)n, sizeof *v, err);
  int rc = CLUE_OK;
  if (!v) {
    rc = CLUE_ENOMEM;
  } else if (read_span(dset, mt, s, v) < 0) {
    rc = clue_fail(err, CLUE_EIO, "%s: cannot read the strings", what);
  } else {
    for (int64_t i = 0; bytes && i < n; i++) *bytes += v[i] ? (int64_t)strlen(v[i]) : 0;
    *out = h5ad__strings_from_vlen(v, n, err);
    if (!*out) rc = CLUE_ENOMEM;
  }
  free(v);
  H5Tclose(mt);
  return rc;
}

/* Span s of a dataset of fixed-length strings (file type t). */
static int read_fixed_strings(hid_t dset, hid_t t, h5ad_span s, const char *what,
                              clue_strings **out, int64_t *bytes, clue_err *err) {
  int64_t n = h5ad__span_length(s);
  hid_t mt = h5ad__string_mem_type(t);
  size_t len = H5Tget_size(t);
  char *raw = clue_calloc((size_t)n, len, err);
  int rc = CLUE_OK;
  if (!raw) {
    rc = CLUE_ENOMEM;
  } else if (read_span(dset, mt, s, raw) < 0) {
    rc = clue_fail(err, CLUE_EIO, "%s: cannot read the strings", what);
  } else {
    if (bytes) *bytes += n * (int64_t)len;
    *out = h5ad__strings_from_fixed(raw, n, len, err);
    if (!*out) rc = CLUE_ENOMEM;
  }
  free(raw);
  H5Tclose(mt);
  return rc;
}

int h5ad__read_strings(hid_t dset, const char *what, h5ad_span s, clue_strings **out,
                       int64_t *bytes, clue_err *err) {
  *out = NULL;
  int64_t n = h5ad__dset_length(dset);
  if (n < 0) return clue_fail(err, CLUE_EFORMAT, "%s: expected a 1-D array", what);
  int rc = h5ad__check_span(what, s, n, err);
  if (rc) return rc;
  hid_t t = H5Dget_type(dset);
  H5T_class_t cls = H5Tget_class(t);
  if (cls == H5T_INTEGER || cls == H5T_FLOAT || cls == H5T_ENUM)
    rc = numbers_as_strings(dset, n, s, what, out, bytes, err);
  else if (cls != H5T_STRING)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: expected strings", what);
  else if (H5Tis_variable_str(t) > 0)
    rc = read_vlen_strings(dset, t, s, what, out, bytes, err);
  else
    rc = read_fixed_strings(dset, t, s, what, out, bytes, err);
  H5Tclose(t);
  return rc;
}
