/* prep_io.c — a fitted preprocessing in an HDF5 group, and its release.
 *
 * Layout (all under the group given):
 *   attributes  clue_prep_version = 1, kind ("pca" | "lsi" | "none"),
 *               normalize ("log1p" | "clr" | "none"), likelihood ("nb" |
 *               "bernoulli" | "normal"), n_input (int64), n_components (int64)
 *   datasets    decoded (int64, n_decoded), used (int64, n_used);
 *               pca/none: mean, std (float64, n_used); lsi: idf (float64, n_used);
 *               pca/lsi: proj (float32, n_used × n_components);
 *               normal likelihood: target_mean, target_std (float64, n_decoded);
 *               var_names (uint8: the n_input feature names, each ended by a
 *               NUL byte) and, nb, the attribute library_mean (float64): absent
 *               in groups written before clue kept them.
 * Loading checks every shape, order and value range against the attributes and
 * refuses an inconsistent group with a message naming the object. */
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/prep.h"

#define PREP_IO_VERSION 1

void clue_prep_free(clue_prep *p) {
  if (!p) return;
  free(p->decoded);
  free(p->used);
  free(p->mean);
  free(p->std);
  free(p->idf);
  free(p->proj);
  free(p->target_mean);
  free(p->target_std);
  clue_strings_free(p->var_names);
  free(p);
}

int clue_prep_set_names(clue_prep *p, const clue_strings *names, clue_err *err) {
  if (names->n != p->n_input)
    return clue_fail(err, CLUE_EINVAL, "%lld feature names for %lld features",
                     (long long)names->n, (long long)p->n_input);
  clue_strings *copy = clue_strings_from((const char *const *)names->s, names->n, err);
  if (!copy) return CLUE_ENOMEM;
  clue_strings_free(p->var_names);
  p->var_names = copy;
  return CLUE_OK;
}

/* The names as one byte array, each ended by NUL (malloc'd, *len bytes). */
static char *names_blob(const clue_strings *s, int64_t *len) {
  int64_t n = 0;
  for (int64_t i = 0; i < s->n; i++) n += (int64_t)strlen(s->s[i]) + 1;
  char *b = malloc((size_t)n + 1);
  if (!b) return NULL;
  int64_t at = 0;
  for (int64_t i = 0; i < s->n; i++) {
    size_t l = strlen(s->s[i]) + 1;
    memcpy(b + at, s->s[i], l);
    at += (int64_t)l;
  }
  *len = n;
  return b;
}

/* ---- writing ---- */

static int io_attr_i64(hid_t g, const char *name, int64_t v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = sp < 0 ? -1 : H5Acreate2(g, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, H5T_NATIVE_INT64, &v);
  if (a >= 0) H5Aclose(a);
  if (sp >= 0) H5Sclose(sp);
  return st < 0 ? -1 : 0;
}

static int io_attr_str(hid_t g, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  hid_t sp = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(g, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = a < 0 ? -1 : H5Awrite(a, t, &v);
  if (a >= 0) H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  return st < 0 ? -1 : 0;
}

/* A dataset of rank 1 (cols == 0) or 2 of the given file and memory types. */
static int io_write(hid_t g, const char *name, hid_t ftype, hid_t mtype, int64_t rows,
                    int64_t cols, const void *data) {
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols};
  hid_t sp = H5Screate_simple(cols > 0 ? 2 : 1, dims, NULL);
  hid_t d = sp < 0 ? -1 : H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  herr_t st = d < 0 ? -1 : 0;
  if (d >= 0 && rows > 0)
    st = H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
  if (d >= 0) H5Dclose(d);
  if (sp >= 0) H5Sclose(sp);
  return st < 0 ? -1 : 0;
}

int clue_prep_save(const clue_prep *p, hid_t group, clue_err *err) {
  int bad = 0;
  bad |= io_attr_i64(group, "clue_prep_version", PREP_IO_VERSION);
  bad |= io_attr_str(group, "kind", clue_preprocess_name(p->kind));
  bad |= io_attr_str(group, "normalize", clue_normalize_name(p->normalize));
  bad |= io_attr_str(group, "likelihood", clue_likelihood_name(p->likelihood));
  bad |= io_attr_i64(group, "n_input", p->n_input);
  bad |= io_attr_i64(group, "n_components", p->n_components);
  hid_t i64 = H5T_STD_I64LE, f64 = H5T_IEEE_F64LE;
  bad |= io_write(group, "decoded", i64, H5T_NATIVE_INT64, p->n_decoded, 0, p->decoded);
  bad |= io_write(group, "used", i64, H5T_NATIVE_INT64, p->n_used, 0, p->used);
  if (p->mean) bad |= io_write(group, "mean", f64, H5T_NATIVE_DOUBLE, p->n_used, 0, p->mean);
  if (p->std) bad |= io_write(group, "std", f64, H5T_NATIVE_DOUBLE, p->n_used, 0, p->std);
  if (p->idf) bad |= io_write(group, "idf", f64, H5T_NATIVE_DOUBLE, p->n_used, 0, p->idf);
  if (p->proj)
    bad |= io_write(group, "proj", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, p->n_used,
                    p->n_components, p->proj);
  if (p->target_mean)
    bad |= io_write(group, "target_mean", f64, H5T_NATIVE_DOUBLE, p->n_decoded, 0,
                    p->target_mean);
  if (p->target_std)
    bad |= io_write(group, "target_std", f64, H5T_NATIVE_DOUBLE, p->n_decoded, 0,
                    p->target_std);
  if (p->library_mean > 0) {
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(group, "library_mean", H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    bad |= a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &p->library_mean) < 0;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
  }
  if (p->var_names) {
    int64_t len = 0;
    char *blob = names_blob(p->var_names, &len);
    bad |= !blob || io_write(group, "var_names", H5T_STD_U8LE, H5T_NATIVE_UCHAR, len, 0, blob);
    free(blob);
  }
  if (bad) {
    char name[512] = "?";
    H5Iget_name(group, name, sizeof name);
    return clue_fail(err, CLUE_EIO,
                     "writing the preprocessing into HDF5 group %s failed (is the group "
                     "empty and the file writable?)",
                     name);
  }
  return CLUE_OK;
}

/* ---- reading ---- */

typedef struct io_ctx {
  hid_t g;
  char name[512]; /* the group's path, for messages */
  clue_err *err;
} io_ctx;

static int io_fail(io_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int io_fail(io_ctx *c, const char *fmt, ...) {
  char msg[CLUE_ERR_MSG_MAX];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return clue_fail(c->err, CLUE_EFORMAT, "preprocessing group %s: %s", c->name, msg);
}

static int io_read_attr_i64(io_ctx *c, const char *name, int64_t *v) {
  if (H5Aexists(c->g, name) <= 0) return io_fail(c, "attribute '%s' is missing", name);
  hid_t a = H5Aopen(c->g, name, H5P_DEFAULT);
  hid_t sp = a < 0 ? -1 : H5Aget_space(a);
  hid_t t = a < 0 ? -1 : H5Aget_type(a);
  int ok = sp >= 0 && t >= 0 && H5Sget_simple_extent_npoints(sp) == 1 &&
           H5Tget_class(t) == H5T_INTEGER && H5Aread(a, H5T_NATIVE_INT64, v) >= 0;
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  if (a >= 0) H5Aclose(a);
  return ok ? CLUE_OK : io_fail(c, "attribute '%s' is not an integer scalar", name);
}

/* A string attribute (variable or fixed length) into buf. */
static int io_read_attr_str(io_ctx *c, const char *name, char *buf, size_t size) {
  if (H5Aexists(c->g, name) <= 0) return io_fail(c, "attribute '%s' is missing", name);
  hid_t a = H5Aopen(c->g, name, H5P_DEFAULT);
  hid_t t = a < 0 ? -1 : H5Aget_type(a);
  int ok = t >= 0 && H5Tget_class(t) == H5T_STRING;
  if (ok && H5Tis_variable_str(t) > 0) {
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, H5T_VARIABLE);
    H5Tset_cset(mt, H5Tget_cset(t)); /* HDF5 does not convert between character sets */
    char *s = NULL;
    ok = H5Aread(a, mt, &s) >= 0 && s;
    if (ok) snprintf(buf, size, "%s", s);
    if (s) H5free_memory(s);
    H5Tclose(mt);
  } else if (ok) {
    size_t n = H5Tget_size(t);
    char *tmp = n > 0 ? calloc(n + 1, 1) : NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_size(mt, n);
    H5Tset_cset(mt, H5Tget_cset(t));
    ok = tmp && H5Aread(a, mt, tmp) >= 0;
    if (ok) snprintf(buf, size, "%s", tmp);
    free(tmp);
    H5Tclose(mt);
  }
  if (t >= 0) H5Tclose(t);
  if (a >= 0) H5Aclose(a);
  return ok ? CLUE_OK : io_fail(c, "attribute '%s' is not a string", name);
}

/* Dataset `name` of rank 1 (cols < 0) or 2, read as mtype into a new array.
 * *rows < 0 accepts any length and returns it; otherwise it must match. */
static int io_read(io_ctx *c, const char *name, int64_t *rows, int64_t cols, hid_t mtype,
                   size_t elem, void **out) {
  *out = NULL;
  if (H5Lexists(c->g, name, H5P_DEFAULT) <= 0)
    return io_fail(c, "dataset '%s' is missing", name);
  hid_t d = H5Dopen2(c->g, name, H5P_DEFAULT);
  hid_t sp = d < 0 ? -1 : H5Dget_space(d);
  int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
  hsize_t dims[2] = {0, 0};
  if (rank == 1 || rank == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
  int want = cols < 0 ? 1 : 2;
  int rc = CLUE_OK;
  if (rank != want)
    rc = io_fail(c, "dataset '%s' has %d dimensions, expected %d", name, rank, want);
  else if ((*rows >= 0 && (int64_t)dims[0] != *rows) || (cols >= 0 && (int64_t)dims[1] != cols))
    rc = io_fail(c, "dataset '%s' has shape %lld × %lld, expected %lld × %lld", name,
                 (long long)dims[0], (long long)(want == 2 ? dims[1] : 1), (long long)*rows,
                 (long long)(cols >= 0 ? cols : 1));
  size_t n = (size_t)dims[0] * (size_t)(want == 2 ? dims[1] : 1);
  void *buf = rc == CLUE_OK ? clue_malloc(n * elem + 1, c->err) : NULL;
  if (rc == CLUE_OK && !buf) rc = CLUE_ENOMEM;
  if (rc == CLUE_OK && n > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    rc = io_fail(c, "dataset '%s' could not be read as numbers", name);
  if (sp >= 0) H5Sclose(sp);
  if (d >= 0) H5Dclose(d);
  if (rc != CLUE_OK) {
    free(buf);
    return rc;
  }
  *rows = (int64_t)dims[0];
  *out = buf;
  return CLUE_OK;
}

/* Column lists: strictly ascending within [0, n_input). */
static int io_check_cols(io_ctx *c, const char *name, const int64_t *v, int64_t n,
                         int64_t n_input) {
  for (int64_t i = 0; i < n; i++)
    if (v[i] < 0 || v[i] >= n_input || (i > 0 && v[i] <= v[i - 1]))
      return io_fail(c, "dataset '%s' is not strictly ascending within [0, %lld) at entry %lld",
                     name, (long long)n_input, (long long)i);
  return CLUE_OK;
}

/* Values: finite; with min_mode 1 also > 0, with 2 also >= 0. */
static int io_check_vals(io_ctx *c, const char *name, const double *v, int64_t n,
                         int min_mode) {
  for (int64_t i = 0; i < n; i++)
    if (!isfinite(v[i]) || (min_mode == 1 && !(v[i] > 0)) || (min_mode == 2 && v[i] < 0))
      return io_fail(c, "dataset '%s' holds an invalid value at entry %lld (%g)", name,
                     (long long)i, v[i]);
  return CLUE_OK;
}

/* The enum whose name (from name_of) equals s; −1 when none does. */
static int io_enum(const char *s, const char *(*name_of)(int), int n) {
  for (int i = 0; i < n; i++)
    if (strcmp(name_of(i), s) == 0) return i;
  return -1;
}
static const char *io_kind_name(int v) { return clue_preprocess_name((clue_preprocess)v); }
static const char *io_norm_name(int v) { return clue_normalize_name((clue_normalize)v); }
static const char *io_lik_name(int v) { return clue_likelihood_name((clue_likelihood)v); }

/* Attributes: version, kinds, sizes. */
static int io_load_header(io_ctx *c, clue_prep *p) {
  int64_t version = 0, r = 0;
  char kind[64], norm[64], lik[64];
  int rc = io_read_attr_i64(c, "clue_prep_version", &version);
  if (rc == CLUE_OK && version != PREP_IO_VERSION)
    rc = io_fail(c, "clue_prep_version is %lld; this clue reads version %d",
                 (long long)version, PREP_IO_VERSION);
  if (rc == CLUE_OK) rc = io_read_attr_str(c, "kind", kind, sizeof kind);
  if (rc == CLUE_OK) rc = io_read_attr_str(c, "normalize", norm, sizeof norm);
  if (rc == CLUE_OK) rc = io_read_attr_str(c, "likelihood", lik, sizeof lik);
  if (rc == CLUE_OK) rc = io_read_attr_i64(c, "n_input", &p->n_input);
  if (rc == CLUE_OK) rc = io_read_attr_i64(c, "n_components", &r);
  if (rc != CLUE_OK) return rc;
  int k = io_enum(kind, io_kind_name, 3), n = io_enum(norm, io_norm_name, 3),
      l = io_enum(lik, io_lik_name, 3);
  if (k < 0 || n < 0 || l < 0)
    return io_fail(c, "unknown kind/normalize/likelihood '%s'/'%s'/'%s'", kind, norm, lik);
  p->kind = (clue_preprocess)k;
  p->normalize = (clue_normalize)n;
  p->likelihood = (clue_likelihood)l;
  if (p->n_input < 1 || p->n_input > INT32_MAX || r < 1 || r > INT32_MAX)
    return io_fail(c, "n_input %lld or n_components %lld out of range",
                   (long long)p->n_input, (long long)r);
  p->n_components = (int)r;
  return CLUE_OK;
}

/* decoded and used, and how they relate for each kind. */
static int io_load_cols(io_ctx *c, clue_prep *p) {
  p->n_decoded = p->n_used = -1;
  int rc = io_read(c, "decoded", &p->n_decoded, -1, H5T_NATIVE_INT64, sizeof(int64_t),
                   (void **)&p->decoded);
  if (rc == CLUE_OK)
    rc = io_read(c, "used", &p->n_used, -1, H5T_NATIVE_INT64, sizeof(int64_t),
                 (void **)&p->used);
  if (rc == CLUE_OK) rc = io_check_cols(c, "decoded", p->decoded, p->n_decoded, p->n_input);
  if (rc == CLUE_OK) rc = io_check_cols(c, "used", p->used, p->n_used, p->n_input);
  if (rc != CLUE_OK) return rc;
  if (p->n_decoded < 1) return io_fail(c, "no decoded feature");
  int same = p->n_used == p->n_decoded &&
             memcmp(p->used, p->decoded, (size_t)p->n_used * sizeof *p->used) == 0;
  if (p->kind == CLUE_PREP_PCA && !same)
    return io_fail(c, "pca: 'used' differs from 'decoded'");
  if (p->kind != CLUE_PREP_PCA && p->n_used != p->n_input)
    return io_fail(c, "%s: 'used' has %lld features, expected all %lld",
                   clue_preprocess_name(p->kind), (long long)p->n_used,
                   (long long)p->n_input);
  if (p->kind == CLUE_PREP_NONE && (!same || p->n_components != p->n_used))
    return io_fail(c, "none: decoded features and n_components must be all features");
  if (p->kind == CLUE_PREP_PCA && p->n_components >= p->n_used)
    return io_fail(c, "pca: n_components %d must be below the %lld used features",
                   p->n_components, (long long)p->n_used);
  return CLUE_OK;
}

/* A float64 vector of length n that must pass io_check_vals(min_mode). */
static int io_load_vec(io_ctx *c, const char *name, int64_t n, int min_mode, double **out) {
  int64_t rows = n;
  int rc = io_read(c, name, &rows, -1, H5T_NATIVE_DOUBLE, sizeof(double), (void **)out);
  return rc == CLUE_OK ? io_check_vals(c, name, *out, n, min_mode) : rc;
}

/* The fitted numbers each kind needs. */
static int io_load_stats(io_ctx *c, clue_prep *p) {
  int rc = CLUE_OK;
  if (p->kind != CLUE_PREP_LSI) {
    rc = io_load_vec(c, "mean", p->n_used, 0, &p->mean);
    if (rc == CLUE_OK) rc = io_load_vec(c, "std", p->n_used, 1, &p->std);
  } else {
    rc = io_load_vec(c, "idf", p->n_used, 2, &p->idf);
  }
  if (rc == CLUE_OK && p->kind != CLUE_PREP_NONE) {
    int64_t rows = p->n_used;
    rc = io_read(c, "proj", &rows, p->n_components, H5T_NATIVE_FLOAT, sizeof(float),
                 (void **)&p->proj);
    size_t n = (size_t)p->n_used * (size_t)p->n_components;
    for (size_t i = 0; rc == CLUE_OK && i < n; i++)
      if (!isfinite(p->proj[i]))
        rc = io_fail(c, "dataset 'proj' holds a non-finite value at entry %zu", i);
  }
  if (rc == CLUE_OK && p->likelihood == CLUE_LIK_NORMAL) {
    rc = io_load_vec(c, "target_mean", p->n_decoded, 0, &p->target_mean);
    if (rc == CLUE_OK) rc = io_load_vec(c, "target_std", p->n_decoded, 1, &p->target_std);
  }
  return rc;
}

/* var_names, when the group has them: n_input names, each ended by NUL. */
static int io_load_names(io_ctx *c, clue_prep *p) {
  if (H5Aexists(c->g, "library_mean") > 0) {
    hid_t a = H5Aopen(c->g, "library_mean", H5P_DEFAULT);
    bool ok = a >= 0 && H5Aread(a, H5T_NATIVE_DOUBLE, &p->library_mean) >= 0;
    if (a >= 0) H5Aclose(a);
    if (!ok || !isfinite(p->library_mean) || p->library_mean < 0)
      return io_fail(c, "attribute 'library_mean' is unreadable or not a count");
  }
  if (H5Lexists(c->g, "var_names", H5P_DEFAULT) <= 0) return CLUE_OK;
  int64_t len = -1;
  char *blob = NULL;
  int rc = io_read(c, "var_names", &len, -1, H5T_NATIVE_UCHAR, 1, (void **)&blob);
  if (rc) return rc;
  const char **v = malloc((size_t)p->n_input * sizeof *v + 1);
  int64_t n = 0, at = 0;
  while (v && at < len && n < p->n_input) {
    const char *end = memchr(blob + at, '\0', (size_t)(len - at));
    if (!end) break;
    v[n++] = blob + at;
    at = end - blob + 1;
  }
  if (!v) rc = io_fail(c, "out of memory reading var_names");
  else if (n != p->n_input || at != len)
    rc = io_fail(c, "dataset 'var_names' does not hold %lld NUL-ended names",
                 (long long)p->n_input);
  else if (!(p->var_names = clue_strings_from(v, n, c->err)))
    rc = CLUE_ENOMEM;
  free(v);
  free(blob);
  return rc;
}

int clue_prep_load(hid_t group, clue_prep **out, clue_err *err) {
  *out = NULL;
  io_ctx c = {.g = group, .name = "?", .err = err};
  H5Iget_name(group, c.name, sizeof c.name);
  clue_prep *p = clue_calloc(1, sizeof *p, err);
  if (!p) return CLUE_ENOMEM;
  int rc = io_load_header(&c, p);
  if (rc == CLUE_OK) rc = io_load_cols(&c, p);
  if (rc == CLUE_OK) rc = io_load_stats(&c, p);
  if (rc == CLUE_OK) rc = io_load_names(&c, p);
  if (rc != CLUE_OK) {
    clue_prep_free(p);
    return rc;
  }
  *out = p;
  return CLUE_OK;
}
