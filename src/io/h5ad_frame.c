/* h5ad_frame.c — the obs and var data frames: their index (cell and feature
 * names) and obs columns of every kind anndata writes: categorical (codes of
 * any signed width, −1 = missing), numeric arrays, booleans (HDF5 enums),
 * nullable integers/booleans/strings (values + mask) and strings. Every read
 * is of a span of rows (the whole frame is the span [0, n_obs)) and reads only
 * those rows, except a categorical's categories, which are read whole.
 * Independent reads. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5ad_internal.h"

/* Opens the index dataset of frame ("obs"/"var"). */
static int open_index(h5ad_file *f, const char *frame, hid_t *dset, clue_err *err) {
  char obj[CLUE_NAME_MAX + 32], where[CLUE_NAME_MAX + 64];
  *dset = -1;
  h5ad__objname(f, frame, where, sizeof where);
  if (!h5ad__exists(f->root, frame))
    return clue_fail(err, CLUE_EFORMAT, "%s: %s is missing (not an AnnData file?)",
                     f->path, where);
  hid_t g = H5Gopen2(f->root, frame, H5P_DEFAULT);
  if (g < 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s is not a data frame group", f->path,
                     where);
  char index[CLUE_NAME_MAX] = "_index";
  if (h5ad__attr_string(g, "_index", index, sizeof index) < 0) {
    H5Gclose(g);
    return clue_fail(err, CLUE_EFORMAT, "%s: %s has an unreadable _index attribute",
                     f->path, where);
  }
  if (!index[0]) snprintf(index, sizeof index, "_index");
  snprintf(obj, sizeof obj, "%s/%s", where, index);
  if (!h5ad__exists(g, index)) {
    H5Gclose(g);
    return clue_fail(err, CLUE_EFORMAT, "%s: the index %s is missing", f->path, obj);
  }
  *dset = H5Dopen2(g, index, H5P_DEFAULT);
  H5Gclose(g);
  if (*dset < 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s is not a dataset", f->path, obj);
  return CLUE_OK;
}

int h5ad__frame_length(h5ad_file *f, const char *frame, int64_t *n, clue_err *err) {
  hid_t d;
  int rc = open_index(f, frame, &d, err);
  if (rc) return rc;
  *n = h5ad__dset_length(d);
  H5Dclose(d);
  if (*n < 0) {
    char where[CLUE_NAME_MAX + 64];
    h5ad__objname(f, frame, where, sizeof where);
    return clue_fail(err, CLUE_EFORMAT, "%s: the index of %s is not a 1-D array", f->path,
                     where);
  }
  return CLUE_OK;
}

/* Rows `rows` (NULL: every row) of the index of frame ("obs"/"var"). */
static int read_index(h5ad_file *f, const char *frame, const h5ad_span *rows,
                      clue_strings **out, clue_err *err) {
  hid_t d;
  *out = NULL;
  int rc = open_index(f, frame, &d, err);
  if (rc) return rc;
  char where[CLUE_NAME_MAX + 64], what[CLUE_PATH_MAX + 128];
  h5ad__objname(f, frame, where, sizeof where);
  snprintf(what, sizeof what, "%s: index of %s", f->path, where);
  rc = h5ad__read_strings(d, what, rows ? *rows : h5ad__whole(d), out, &f->bytes_read,
                          err);
  H5Dclose(d);
  return rc;
}

int h5ad_read_obs_names(h5ad_file *f, clue_strings **out, clue_err *err) {
  return read_index(f, "obs", NULL, out, err);
}

int h5ad_read_obs_names_range(h5ad_file *f, int64_t begin, int64_t end,
                              clue_strings **out, clue_err *err) {
  h5ad_span rows = {begin, end};
  return read_index(f, "obs", &rows, out, err);
}

int h5ad_read_var_names(h5ad_file *f, clue_strings **out, clue_err *err) {
  return read_index(f, "var", NULL, out, err);
}

int h5ad_obs_column_names(h5ad_file *f, clue_strings **out, clue_err *err) {
  char what[CLUE_PATH_MAX + 128], where[CLUE_NAME_MAX + 64];
  h5ad__objname(f, "obs", where, sizeof where);
  snprintf(what, sizeof what, "%s: %s", f->path, where);
  hid_t g = H5Gopen2(f->root, "obs", H5P_DEFAULT);
  if (g < 0) return clue_fail(err, CLUE_EFORMAT, "%s is missing", what);
  int rc = h5ad__attr_strings(g, "column-order", out, what, err);
  if (rc == CLUE_OK && !*out) {
    /* No column-order: every member except the index. */
    char index[CLUE_NAME_MAX] = "_index";
    h5ad__attr_string(g, "_index", index, sizeof index);
    clue_strings *all = NULL;
    rc = h5ad__list_group(g, ".", &all, what, err);
    const char **keep = rc ? NULL : clue_calloc((size_t)all->n + 1, sizeof *keep, err);
    int64_t k = 0;
    for (int64_t i = 0; keep && i < all->n; i++)
      if (strcmp(all->s[i], index) && strcmp(all->s[i], "__categories"))
        keep[k++] = all->s[i];
    if (rc == CLUE_OK && !keep) rc = CLUE_ENOMEM;
    if (rc == CLUE_OK && !(*out = clue_strings_from(keep, k, err))) rc = CLUE_ENOMEM;
    free(keep);
    clue_strings_free(all);
  }
  H5Gclose(g);
  return rc;
}

/* What the readers of one column share: the file, the rows to read (of the
 * f->n_obs rows of obs) and the column's name for messages. */
typedef struct column_read {
  h5ad_file *f;
  h5ad_span rows;
  const char *what; /* "<path>: <group>/obs/<name>" */
} column_read;

/* The codes of rows r->rows of a categorical, checked against the number of
 * categories. */
static int read_codes(const column_read *r, hid_t g, h5ad_column *c, clue_err *err) {
  int64_t *codes = clue_malloc((size_t)c->n * sizeof *codes, err);
  c->codes = clue_malloc((size_t)c->n * sizeof *c->codes, err);
  int rc = (codes && c->codes) ? CLUE_OK : CLUE_ENOMEM;
  hid_t d = rc ? -1 : H5Dopen2(g, "codes", H5P_DEFAULT);
  if (rc == CLUE_OK)
    rc = d < 0 ? clue_fail(err, CLUE_EFORMAT, "%s: codes unreadable", r->what)
               : h5ad__read_int64s(d, r->what, r->f->n_obs, r->rows, codes,
                                   &r->f->bytes_read, err);
  for (int64_t i = 0; rc == CLUE_OK && i < c->n; i++) {
    if (codes[i] < -1 || codes[i] >= c->categories->n)
      rc = clue_fail(err, CLUE_EFORMAT,
                     "%s: code %lld at row %lld is outside [-1, %lld) (the number of "
                     "categories)",
                     r->what, (long long)codes[i], (long long)(r->rows.begin + i),
                     (long long)c->categories->n);
    else
      c->codes[i] = (int32_t)codes[i];
  }
  if (d >= 0) H5Dclose(d);
  free(codes);
  return rc;
}

/* Categorical group: codes (any signed integer), categories (read whole),
 * ordered. */
static int read_categorical(const column_read *r, hid_t g, h5ad_column *c,
                            clue_err *err) {
  if (!h5ad__exists(g, "codes") || !h5ad__exists(g, "categories"))
    return clue_fail(err, CLUE_EFORMAT, "%s: categorical without codes/categories",
                     r->what);
  hid_t cd = H5Dopen2(g, "categories", H5P_DEFAULT);
  int rc = cd < 0 ? clue_fail(err, CLUE_EFORMAT, "%s: categories unreadable", r->what)
                  : h5ad__read_strings(cd, r->what, h5ad__whole(cd), &c->categories,
                                       &r->f->bytes_read, err);
  if (cd >= 0) H5Dclose(cd);
  if (rc) return rc;
  h5ad__attr_bool(g, "ordered", &c->ordered);
  return read_codes(r, g, c, err);
}

/* Nullable strings: rows r->rows of values v, "" where mask is set. */
static int nullable_strings(const column_read *r, hid_t v, const int64_t *mask,
                            h5ad_column *c, clue_err *err) {
  int64_t len = h5ad__dset_length(v);
  if (len >= 0 && len != r->f->n_obs)
    return clue_fail(err, CLUE_EFORMAT, "%s: values and mask differ in length", r->what);
  int rc = h5ad__read_strings(v, r->what, r->rows, &c->strings, &r->f->bytes_read, err);
  for (int64_t i = 0; rc == CLUE_OK && i < c->n; i++)
    if (mask[i]) c->strings->s[i][0] = '\0';
  return rc;
}

/* Nullable numbers or booleans: rows r->rows of values v, NaN where mask is set. */
static int nullable_values(const column_read *r, hid_t v, const int64_t *mask,
                           h5ad_column *c, clue_err *err) {
  c->values = clue_malloc((size_t)c->n * sizeof *c->values, err);
  int rc = c->values ? h5ad__read_doubles(v, r->what, r->f->n_obs, r->rows, c->values,
                                          &r->f->bytes_read, err)
                     : CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < c->n; i++)
    if (mask[i]) c->values[i] = NAN;
  return rc;
}

/* Nullable group: values and mask (true = missing). */
static int read_nullable(const column_read *r, hid_t g, h5ad_column *c, clue_err *err) {
  if (!h5ad__exists(g, "values") || !h5ad__exists(g, "mask"))
    return clue_fail(err, CLUE_EFORMAT, "%s: nullable column without values/mask",
                     r->what);
  hid_t v = H5Dopen2(g, "values", H5P_DEFAULT);
  hid_t m = H5Dopen2(g, "mask", H5P_DEFAULT);
  int64_t *mask = clue_malloc((size_t)c->n * sizeof *mask, err);
  int rc = (v < 0 || m < 0) ? clue_fail(err, CLUE_EFORMAT, "%s: unreadable", r->what)
           : mask           ? CLUE_OK
                            : CLUE_ENOMEM;
  if (rc == CLUE_OK)
    rc =
        h5ad__read_int64s(m, r->what, r->f->n_obs, r->rows, mask, &r->f->bytes_read, err);
  if (rc == CLUE_OK)
    rc = c->kind == H5AD_COL_STRING ? nullable_strings(r, v, mask, c, err)
                                    : nullable_values(r, v, mask, c, err);
  free(mask);
  if (v >= 0) H5Dclose(v);
  if (m >= 0) H5Dclose(m);
  return rc;
}

/* A string column stored as one dataset of f->n_obs strings. */
static int array_strings(const column_read *r, hid_t d, h5ad_column *c, clue_err *err) {
  int64_t len = h5ad__dset_length(d);
  if (len != r->f->n_obs)
    return clue_fail(err, CLUE_EFORMAT, "%s: has %lld values but obs has %lld rows",
                     r->what, (long long)len, (long long)r->f->n_obs);
  return h5ad__read_strings(d, r->what, r->rows, &c->strings, &r->f->bytes_read, err);
}

/* A column stored as one dataset: strings, numbers or booleans. */
static int read_array(const column_read *r, hid_t d, h5ad_column *c, clue_err *err) {
  if (h5ad__dset_length(d) < 0) {
    c->kind = H5AD_COL_OTHER; /* 2-D or scalar: not a column clue reads */
    return CLUE_OK;
  }
  hid_t t = H5Dget_type(d);
  H5T_class_t cls = H5Tget_class(t);
  H5Tclose(t);
  if (cls == H5T_STRING) {
    c->kind = H5AD_COL_STRING;
    return array_strings(r, d, c, err);
  }
  if (cls != H5T_INTEGER && cls != H5T_FLOAT && cls != H5T_ENUM) {
    c->kind = H5AD_COL_OTHER;
    return CLUE_OK;
  }
  c->kind = cls == H5T_ENUM ? H5AD_COL_BOOL : H5AD_COL_NUMERIC;
  c->values = clue_malloc((size_t)c->n * sizeof *c->values, err);
  if (!c->values) return CLUE_ENOMEM;
  return h5ad__read_doubles(d, r->what, r->f->n_obs, r->rows, c->values,
                            &r->f->bytes_read, err);
}

static int read_group_column(const column_read *r, hid_t g, h5ad_column *c,
                             clue_err *err) {
  if (!strcmp(c->encoding, "categorical")) {
    c->kind = H5AD_COL_CATEGORICAL;
    return read_categorical(r, g, c, err);
  }
  if (!strcmp(c->encoding, "nullable-integer") || !strcmp(c->encoding, "nullable-float"))
    c->kind = H5AD_COL_NUMERIC;
  else if (!strcmp(c->encoding, "nullable-boolean"))
    c->kind = H5AD_COL_BOOL;
  else if (!strcmp(c->encoding, "nullable-string-array"))
    c->kind = H5AD_COL_STRING;
  else {
    c->kind = H5AD_COL_OTHER;
    return CLUE_OK;
  }
  return read_nullable(r, g, c, err);
}

/* Error for a missing column, listing the columns that exist. */
static int missing_column(h5ad_file *f, const char *name, clue_err *err) {
  clue_strings *cols = NULL;
  char list[640] = "";
  clue_err e2;
  if (h5ad_obs_column_names(f, &cols, &e2) == CLUE_OK) {
    for (int64_t i = 0; i < cols->n && strlen(list) < 560; i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
               cols->s[i]);
    clue_strings_free(cols);
  }
  char where[CLUE_NAME_MAX + 64];
  h5ad__objname(f, "obs", where, sizeof where);
  return clue_fail(err, CLUE_EFORMAT, "%s: %s has no column '%s' (columns: %s)", f->path,
                   where, name, list[0] ? list : "none");
}

/* Opens obs column `rel` ("obs/<name>") and reads rows r->rows of it into c,
 * by its encoding. */
static int read_column(const column_read *r, const char *rel, h5ad_column *c,
                       clue_err *err) {
  hid_t o = H5Oopen(r->f->root, rel, H5P_DEFAULT);
  if (o < 0) return clue_fail(err, CLUE_EFORMAT, "%s: cannot open", r->what);
  int rc;
  if (h5ad__attr_string(o, "encoding-type", c->encoding, sizeof c->encoding) < 0)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: unreadable encoding-type", r->what);
  else if (H5Iget_type(o) == H5I_GROUP)
    rc = read_group_column(r, o, c, err);
  else
    rc = read_array(r, o, c, err);
  H5Oclose(o);
  return rc;
}

int h5ad_read_obs_column(h5ad_file *f, const char *name, h5ad_column **out,
                         clue_err *err) {
  return h5ad_read_obs_column_range(f, name, 0, f->n_obs, out, err);
}

int h5ad_read_obs_column_range(h5ad_file *f, const char *name, int64_t begin, int64_t end,
                               h5ad_column **out, clue_err *err) {
  *out = NULL;
  char rel[CLUE_NAME_MAX + 320], where[CLUE_NAME_MAX + 320], what[CLUE_PATH_MAX + 400];
  snprintf(rel, sizeof rel, "obs/%s", name);
  if (!name[0] || strchr(name, '/') || strlen(name) >= 256 || !h5ad__exists(f->root, rel))
    return missing_column(f, name, err);
  h5ad__objname(f, rel, where, sizeof where);
  snprintf(what, sizeof what, "%s: %s", f->path, where);
  column_read r = {.f = f, .rows = {begin, end}, .what = what};
  int rc = h5ad__check_span(what, r.rows, f->n_obs, err);
  if (rc) return rc;
  h5ad_column *c = clue_calloc(1, sizeof *c, err);
  if (!c) return CLUE_ENOMEM;
  snprintf(c->name, sizeof c->name, "%s", name);
  c->n = end - begin;
  rc = read_column(&r, rel, c, err);
  if (rc) {
    h5ad_column_free(c);
    return rc;
  }
  *out = c;
  return CLUE_OK;
}

void h5ad_column_label(const h5ad_column *c, int64_t i, char *buf, size_t size) {
  if (size == 0) return;
  buf[0] = '\0';
  if (i < 0 || i >= c->n) return;
  switch (c->kind) {
    case H5AD_COL_CATEGORICAL:
      if (c->codes[i] >= 0) snprintf(buf, size, "%s", c->categories->s[c->codes[i]]);
      break;
    case H5AD_COL_NUMERIC:
      if (isnan(c->values[i])) break;
      if (c->values[i] == floor(c->values[i]) && fabs(c->values[i]) < 1e15)
        snprintf(buf, size, "%lld", (long long)c->values[i]);
      else
        snprintf(buf, size, "%.10g", c->values[i]);
      break;
    case H5AD_COL_BOOL:
      if (!isnan(c->values[i]))
        snprintf(buf, size, "%s", c->values[i] ? "True" : "False");
      break;
    case H5AD_COL_STRING:
      snprintf(buf, size, "%s", c->strings->s[i]);
      break;
    case H5AD_COL_OTHER:
      break;
  }
}

void h5ad_column_free(h5ad_column *c) {
  if (!c) return;
  free(c->codes);
  clue_strings_free(c->categories);
  free(c->values);
  clue_strings_free(c->strings);
  free(c);
}
