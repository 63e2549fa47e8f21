/* h5ad_write_frame.c — the small objects of the AnnData encoding, written by
 * rank 0 on a serial handle: encoding attributes, string arrays, dict groups
 * and dataframes (index, categorical, numeric, boolean and string columns), in
 * the types h5py and anndata write them (variable-length UTF-8 strings,
 * booleans as an int8 enum FALSE = 0 / TRUE = 1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5ad_write_internal.h"

/* Variable-length UTF-8 string type (close it). */
static hid_t vlen_string_type(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  H5Tset_strpad(t, H5T_STR_NULLTERM);
  return t;
}

/* h5py's boolean: an enum over int8 with FALSE = 0 and TRUE = 1 (close it). */
static hid_t bool_type(void) {
  hid_t t = H5Tenum_create(H5T_NATIVE_INT8);
  int8_t no = 0, yes = 1;
  H5Tenum_insert(t, "FALSE", &no);
  H5Tenum_insert(t, "TRUE", &yes);
  return t;
}

int h5w_attr_string(hid_t obj, const char *name, const char *value, clue_err *err) {
  hid_t t = vlen_string_type();
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = CLUE_OK;
  if (a < 0 || H5Awrite(a, t, &value) < 0)
    rc = h5w_fail(err, CLUE_EIO, "cannot write attribute %s", name);
  if (a >= 0) H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  return rc;
}

int h5w_encoding(hid_t obj, const char *type, const char *version, clue_err *err) {
  int rc = h5w_attr_string(obj, "encoding-type", type, err);
  if (rc == CLUE_OK) rc = h5w_attr_string(obj, "encoding-version", version, err);
  return rc;
}

int h5w_attr_strings(hid_t obj, const char *name, const char *const *s, int64_t n,
                     clue_err *err) {
  hsize_t dim = (hsize_t)n;
  hid_t sp = H5Screate_simple(1, &dim, NULL);
  hid_t t = n > 0 ? vlen_string_type() : H5Tcopy(H5T_IEEE_F64LE);
  hid_t a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  int rc = CLUE_OK;
  if (a < 0) rc = h5w_fail(err, CLUE_EIO, "cannot create attribute %s", name);
  if (rc == CLUE_OK && n > 0 && H5Awrite(a, t, s) < 0)
    rc = h5w_fail(err, CLUE_EIO, "cannot write attribute %s", name);
  if (a >= 0) H5Aclose(a);
  H5Tclose(t);
  H5Sclose(sp);
  return rc;
}

int h5w_attr_int64(hid_t obj, const char *name, int64_t value, clue_err *err) {
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, H5T_STD_I64LE, s, H5P_DEFAULT, H5P_DEFAULT);
  int rc = CLUE_OK;
  if (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, &value) < 0)
    rc = h5w_fail(err, CLUE_EIO, "cannot write attribute %s", name);
  if (a >= 0) H5Aclose(a);
  H5Sclose(s);
  return rc;
}

static int attr_bool(hid_t obj, const char *name, bool value, clue_err *err) {
  hid_t t = bool_type();
  hid_t s = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(obj, name, t, s, H5P_DEFAULT, H5P_DEFAULT);
  int8_t v = value ? 1 : 0;
  int rc = CLUE_OK;
  if (a < 0 || H5Awrite(a, t, &v) < 0)
    rc = h5w_fail(err, CLUE_EIO, "cannot write attribute %s", name);
  if (a >= 0) H5Aclose(a);
  H5Sclose(s);
  H5Tclose(t);
  return rc;
}

hid_t h5w_group(hid_t loc, const char *name, const char *type, const char *version,
                clue_err *err) {
  hid_t g = H5Gcreate2(loc, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (g < 0) {
    h5w_fail(err, CLUE_EIO, "cannot create group %s", name);
    return -1;
  }
  if (h5w_encoding(g, type, version, err)) {
    clue_err_prefix(err, "group %s", name);
    H5Gclose(g);
    return -1;
  }
  return g;
}

int h5w_empty_dicts(hid_t group, bool with_layers, clue_err *err) {
  static const char *const names[] = {"layers", "obsm", "obsp", "uns", "varm", "varp"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
    if (!with_layers && i == 0) continue;
    hid_t g = h5w_group(group, names[i], "dict", "0.1.0", err);
    if (g < 0) return err->code;
    H5Gclose(g);
  }
  return CLUE_OK;
}

/* A 1-D dataset `name` of n values of file type ftype from memory of type mtype,
 * with encoding `enc` (0.2.0). */
static int write_array(hid_t loc, const char *name, hid_t ftype, hid_t mtype,
                       const void *buf, int64_t n, const char *enc, clue_err *err) {
  hsize_t dim = (hsize_t)n;
  hid_t sp = H5Screate_simple(1, &dim, NULL);
  hid_t d = H5Dcreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  int rc = CLUE_OK;
  if (d < 0) rc = h5w_fail(err, CLUE_EIO, "cannot create dataset %s", name);
  if (rc == CLUE_OK && n > 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
    rc = h5w_fail(err, CLUE_EIO, "cannot write dataset %s", name);
  if (rc == CLUE_OK) rc = h5w_encoding(d, enc, "0.2.0", err);
  if (d >= 0) H5Dclose(d);
  H5Sclose(sp);
  return rc;
}

int h5w_string_array(hid_t loc, const char *name, const char *const *s, int64_t n,
                     clue_err *err) {
  hid_t t = vlen_string_type();
  int rc = write_array(loc, name, t, t, s, n, "string-array", err);
  H5Tclose(t);
  return rc;
}

int h5w_uint32_array(hid_t loc, const char *name, const uint32_t *v, int64_t n,
                     clue_err *err) {
  return write_array(loc, name, H5T_STD_U32LE, H5T_NATIVE_UINT32, v, n, "array", err);
}

int h5w_check_key(const char *key, const char *what, clue_err *err) {
  if (!key || !key[0] || strchr(key, '/') || !strcmp(key, ".") || !strcmp(key, ".."))
    return clue_fail(err, CLUE_EINVAL, "invalid %s name '%s' (empty, '.', '..' or with '/')",
                     what, key ? key : "(null)");
  if (strlen(key) >= CLUE_NAME_MAX * 4)
    return clue_fail(err, CLUE_EINVAL, "%s name too long: %s", what, key);
  return CLUE_OK;
}

/* Categorical: codes in range and unique categories (pandas refuses duplicates). */
static int check_categorical(const h5ad_column *c, const char *where, clue_err *err) {
  if (!c->categories || (c->n > 0 && !c->codes))
    return clue_fail(err, CLUE_EINVAL, "%s: categorical column %s has no codes or categories",
                     where, c->name);
  int64_t k = c->categories->n;
  if (k > INT32_MAX)
    return clue_fail(err, CLUE_EINVAL, "%s: column %s has too many categories", where,
                     c->name);
  for (int64_t i = 0; i < c->n; i++)
    if (c->codes[i] < -1 || c->codes[i] >= k)
      return clue_fail(err, CLUE_EINVAL,
                       "%s: column %s: code %d of row %lld is outside [-1, %lld)", where,
                       c->name, c->codes[i], (long long)i, (long long)k);
  clue_strmap *seen = clue_strmap_new(k, err);
  if (!seen) return err->code;
  int rc = CLUE_OK;
  for (int64_t j = 0; j < k && rc == CLUE_OK; j++) {
    int put = clue_strmap_put(seen, c->categories->s[j], j, NULL, err);
    if (put == 0)
      rc = clue_fail(err, CLUE_EINVAL, "%s: column %s: category '%s' appears twice", where,
                     c->name, c->categories->s[j]);
    else if (put < 0)
      rc = put;
  }
  clue_strmap_free(seen);
  return rc;
}

static int check_column(const h5ad_column *c, int64_t n, const char *where,
                        clue_err *err) {
  if (h5w_check_key(c->name, "column", err)) return clue_err_prefix(err, "%s", where);
  if (!strcmp(c->name, "_index"))
    return clue_fail(err, CLUE_EINVAL, "%s: '_index' is reserved and cannot name a column",
                     where);
  if (c->n != n)
    return clue_fail(err, CLUE_EINVAL, "%s: column %s has %lld values, expected %lld",
                     where, c->name, (long long)c->n, (long long)n);
  switch (c->kind) {
  case H5AD_COL_CATEGORICAL:
    return check_categorical(c, where, err);
  case H5AD_COL_NUMERIC:
  case H5AD_COL_BOOL:
    if (n > 0 && !c->values)
      return clue_fail(err, CLUE_EINVAL, "%s: column %s has no values", where, c->name);
    for (int64_t i = 0; c->kind == H5AD_COL_BOOL && i < n; i++)
      if (!isnan(c->values[i]) && c->values[i] != 0 && c->values[i] != 1)
        return clue_fail(err, CLUE_EINVAL, "%s: boolean column %s has value %g in row %lld",
                         where, c->name, c->values[i], (long long)i);
    return CLUE_OK;
  case H5AD_COL_STRING:
    if (!c->strings || c->strings->n != n)
      return clue_fail(err, CLUE_EINVAL, "%s: string column %s has no strings", where,
                       c->name);
    return CLUE_OK;
  default:
    return clue_fail(err, CLUE_EINVAL,
                     "%s: column %s is of a kind clue cannot write (encoding '%s')", where,
                     c->name, c->encoding);
  }
}

int h5w_check_columns(h5ad_column *const *cols, int n_cols, int64_t n, const char *where,
                      clue_err *err) {
  if (n_cols < 0 || (n_cols > 0 && !cols))
    return clue_fail(err, CLUE_EINVAL, "%s: invalid column list", where);
  for (int i = 0; i < n_cols; i++) {
    if (!cols[i]) return clue_fail(err, CLUE_EINVAL, "%s: column %d is NULL", where, i);
    int rc = check_column(cols[i], n, where, err);
    if (rc) return rc;
    for (int j = 0; j < i; j++)
      if (!strcmp(cols[j]->name, cols[i]->name))
        return clue_fail(err, CLUE_EINVAL, "%s: column %s given twice", where,
                         cols[i]->name);
  }
  return CLUE_OK;
}

static int write_categorical(hid_t loc, const h5ad_column *c, clue_err *err) {
  hid_t g = h5w_group(loc, c->name, "categorical", "0.2.0", err);
  if (g < 0) return err->code;
  int rc = attr_bool(g, "ordered", c->ordered, err);
  int64_t k = c->categories->n;
  hid_t ftype = k <= INT8_MAX ? H5T_STD_I8LE : k <= INT16_MAX ? H5T_STD_I16LE : H5T_STD_I32LE;
  if (rc == CLUE_OK)
    rc = write_array(g, "codes", ftype, H5T_NATIVE_INT32, c->codes, c->n, "array", err);
  if (rc == CLUE_OK)
    rc = h5w_string_array(g, "categories", (const char *const *)c->categories->s, k, err);
  H5Gclose(g);
  return rc;
}

/* Booleans from 0/1 values; with NaN present a nullable-boolean (values, mask). */
static int write_bool(hid_t loc, const h5ad_column *c, clue_err *err) {
  int8_t *v = clue_malloc((size_t)(c->n > 0 ? c->n : 1) * 2, err);
  if (!v) return err->code;
  int8_t *mask = v + (c->n > 0 ? c->n : 1);
  bool missing = false;
  for (int64_t i = 0; i < c->n; i++) {
    mask[i] = isnan(c->values[i]) ? 1 : 0;
    missing = missing || mask[i];
    v[i] = mask[i] ? 0 : (c->values[i] != 0);
  }
  hid_t t = bool_type();
  int rc;
  if (!missing) {
    rc = write_array(loc, c->name, t, t, v, c->n, "array", err);
  } else {
    hid_t g = h5w_group(loc, c->name, "nullable-boolean", "0.1.0", err);
    rc = g < 0 ? err->code : CLUE_OK;
    if (rc == CLUE_OK) rc = write_array(g, "values", t, t, v, c->n, "array", err);
    if (rc == CLUE_OK) rc = write_array(g, "mask", t, t, mask, c->n, "array", err);
    if (g >= 0) H5Gclose(g);
  }
  H5Tclose(t);
  free(v);
  return rc;
}

static int write_column(hid_t loc, const h5ad_column *c, clue_err *err) {
  switch (c->kind) {
  case H5AD_COL_CATEGORICAL:
    return write_categorical(loc, c, err);
  case H5AD_COL_NUMERIC:
    return write_array(loc, c->name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, c->values, c->n,
                       "array", err);
  case H5AD_COL_BOOL:
    return write_bool(loc, c, err);
  case H5AD_COL_STRING:
    return h5w_string_array(loc, c->name, (const char *const *)c->strings->s, c->n, err);
  default:
    return clue_fail(err, CLUE_EINVAL, "column %s: unsupported kind", c->name);
  }
}

int h5w_write_columns(hid_t group, h5ad_column *const *cols, int n_cols, clue_err *err) {
  for (int i = 0; i < n_cols; i++) {
    int rc = write_column(group, cols[i], err);
    if (rc) return clue_err_prefix(err, "column %s", cols[i]->name);
  }
  const char **names = clue_malloc((size_t)(n_cols > 0 ? n_cols : 1) * sizeof *names, err);
  if (!names) return err->code;
  for (int i = 0; i < n_cols; i++) names[i] = cols[i]->name;
  int rc = CLUE_OK;
  if (H5Aexists(group, "column-order") > 0 && H5Adelete(group, "column-order") < 0)
    rc = h5w_fail(err, CLUE_EIO, "cannot replace attribute column-order");
  if (rc == CLUE_OK) rc = h5w_attr_strings(group, "column-order", names, n_cols, err);
  free(names);
  return rc;
}

int h5w_dataframe(hid_t loc, const char *name, const char *const *index, int64_t n,
                  h5ad_column *const *cols, int n_cols, clue_err *err) {
  hid_t g = h5w_group(loc, name, "dataframe", "0.2.0", err);
  if (g < 0) return err->code;
  int rc = h5w_attr_string(g, "_index", "_index", err);
  if (rc == CLUE_OK) rc = h5w_string_array(g, "_index", index, n, err);
  if (rc == CLUE_OK) rc = h5w_write_columns(g, cols, n_cols, err);
  H5Gclose(g);
  if (rc) clue_err_prefix(err, "%s", name);
  return rc;
}
