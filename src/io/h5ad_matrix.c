/* h5ad_matrix.c — X and layers: describing the matrix (csr_matrix, csc_matrix
 * or dense array, its types and shape, checked against obs/var) and opening
 * its datasets. Reading rows is in h5ad_rows.c (CSR, dense) and h5ad_csc.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5ad_internal.h"

/* "float32", "int64", "uint16", ... for a numeric HDF5 type. */
static void type_name(hid_t t, char *buf, size_t size) {
  H5T_class_t cls = H5Tget_class(t);
  int bits = (int)(8 * H5Tget_size(t));
  if (cls == H5T_FLOAT)
    snprintf(buf, size, "float%d", bits);
  else if (cls == H5T_INTEGER)
    snprintf(buf, size, "%sint%d", H5Tget_sign(t) == H5T_SGN_NONE ? "u" : "", bits);
  else if (cls == H5T_ENUM)
    snprintf(buf, size, "bool");
  else
    snprintf(buf, size, "non-numeric");
}

/* Reads one element of a 1-D integer dataset (independent). */
static int read_one(hid_t d, int64_t at, int64_t *v) {
  hid_t fs = H5Dget_space(d);
  hsize_t st = (hsize_t)at, one = 1;
  hid_t ms = H5Screate_simple(1, &one, NULL);
  int ok = fs >= 0 && ms >= 0 &&
           H5Sselect_hyperslab(fs, H5S_SELECT_SET, &st, NULL, &one, NULL) >= 0 &&
           H5Dread(d, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, v) >= 0;
  if (fs >= 0) H5Sclose(fs);
  if (ms >= 0) H5Sclose(ms);
  return ok ? 0 : -1;
}

/* Error for a missing matrix, listing the layers. */
static int missing_matrix(h5ad_file *f, const char *layer, clue_err *err) {
  if (h5ad__is_x(layer)) {
    if (f->mudata_root)
      return clue_fail(err, CLUE_EFORMAT,
                       "%s: the root of a MuData file has no X; name a modality "
                       "(mod/<name>)",
                       f->path);
    char where[CLUE_NAME_MAX + 32];
    h5ad__objname(f, "X", where, sizeof where);
    return clue_fail(err, CLUE_EFORMAT, "%s: %s is missing (no count matrix)", f->path,
                     where);
  }
  clue_strings *names = NULL;
  char list[512] = "";
  clue_err e2;
  if (h5ad_layer_names(f, &names, &e2) == CLUE_OK) {
    for (int64_t i = 0; i < names->n && strlen(list) < 440; i++)
      snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
               names->s[i]);
    clue_strings_free(names);
  }
  return clue_fail(err, CLUE_EFORMAT, "%s%s%s has no layer '%s' (layers: %s)", f->path,
                   f->group[0] ? ": " : "", f->group, layer, list[0] ? list : "none");
}

/* Opens data/indices/indptr of a sparse group and checks their shapes. */
static int open_sparse(h5ad_file *f, hid_t g, const char *what, h5ad_matrix *m,
                       clue_err *err) {
  const char *parts[3] = {"data", "indices", "indptr"};
  hid_t *ids[3] = {&m->data, &m->indices, &m->indptr};
  for (int i = 0; i < 3; i++) {
    if (!h5ad__exists(g, parts[i]) || (*ids[i] = H5Dopen2(g, parts[i], H5P_DEFAULT)) < 0)
      return clue_fail(err, CLUE_EFORMAT, "%s: %s/%s is missing", f->path, what,
                       parts[i]);
  }
  int64_t nd = h5ad__dset_length(m->data), ni = h5ad__dset_length(m->indices);
  int64_t np = h5ad__dset_length(m->indptr);
  int64_t major = m->info.kind == H5AD_CSR ? m->info.n_rows : m->info.n_cols;
  if (nd < 0 || ni != nd)
    return clue_fail(err, CLUE_EFORMAT,
                     "%s: %s/data and %s/indices differ in length (%lld vs %lld)",
                     f->path, what, what, (long long)nd, (long long)ni);
  if (np != major + 1)
    return clue_fail(err, CLUE_EFORMAT,
                     "%s: %s/indptr has %lld entries; the shape needs %lld", f->path,
                     what, (long long)np, (long long)(major + 1));
  m->info.nnz = nd;
  int64_t first = 0, last = 0;
  if (read_one(m->indptr, 0, &first) || read_one(m->indptr, major, &last))
    return clue_fail(err, CLUE_EIO, "%s: cannot read %s/indptr", f->path, what);
  if (first != 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s/indptr starts at %lld, not 0", f->path,
                     what, (long long)first);
  if (last != nd)
    return clue_fail(err, CLUE_EFORMAT,
                     "%s: %s/indptr ends at %lld but %s/data holds %lld values", f->path,
                     what, (long long)last, what, (long long)nd);
  return CLUE_OK;
}

/* Fills the type fields of info from the datasets. */
static int describe_types(h5ad_file *f, const char *what, h5ad_matrix *m, clue_err *err) {
  hid_t t = H5Dget_type(m->data);
  H5T_class_t cls = H5Tget_class(t);
  type_name(t, m->info.dtype, sizeof m->info.dtype);
  m->info.float_data = cls == H5T_FLOAT;
  m->info.data_bytes = (int)H5Tget_size(t);
  H5Tclose(t);
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s holds %s values; clue reads numbers",
                     f->path, what, m->info.dtype);
  if (m->info.kind == H5AD_DENSE) return CLUE_OK;
  hid_t ti = H5Dget_type(m->indices), tp = H5Dget_type(m->indptr);
  bool ok = H5Tget_class(ti) == H5T_INTEGER && H5Tget_class(tp) == H5T_INTEGER;
  m->info.index_bytes = (int)H5Tget_size(ti);
  type_name(ti, m->info.index_dtype, sizeof m->info.index_dtype);
  m->info.indptr_bytes = (int)H5Tget_size(tp);
  H5Tclose(ti);
  H5Tclose(tp);
  if (!ok)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s/indices and indptr must be integers",
                     f->path, what);
  return CLUE_OK;
}

/* Shape of a sparse group (attribute) or dense dataset, checked against obs/var. */
static int read_shape(h5ad_file *f, hid_t o, bool dense, const char *what, h5ad_matrix *m,
                      clue_err *err) {
  int64_t shape[2] = {0, 0};
  int n = 0;
  if (dense) {
    hid_t s = H5Dget_space(o);
    hsize_t dims[2];
    int nd = H5Sget_simple_extent_ndims(s);
    if (nd == 2) H5Sget_simple_extent_dims(s, dims, NULL);
    H5Sclose(s);
    if (nd != 2)
      return clue_fail(err, CLUE_EFORMAT, "%s: %s is a %d-D array; expected 2-D", f->path,
                       what, nd);
    shape[0] = (int64_t)dims[0];
    shape[1] = (int64_t)dims[1];
  } else if (h5ad__attr_int64s(o, "shape", shape, 2, &n) != 1 || n != 2) {
    return clue_fail(err, CLUE_EFORMAT, "%s: %s has no valid 'shape' attribute", f->path,
                     what);
  }
  if (shape[0] != f->n_obs || shape[1] != f->n_vars)
    return clue_fail(err, CLUE_EFORMAT,
                     "%s: %s has shape %lld × %lld but obs has %lld rows and var %lld",
                     f->path, what, (long long)shape[0], (long long)shape[1],
                     (long long)f->n_obs, (long long)f->n_vars);
  if (shape[1] > INT32_MAX)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s has %lld columns; clue reads < 2^31",
                     f->path, what, (long long)shape[1]);
  m->info.n_rows = shape[0];
  m->info.n_cols = shape[1];
  return CLUE_OK;
}

static int open_object(h5ad_file *f, hid_t o, const char *what, h5ad_matrix *m,
                       clue_err *err) {
  char enc[64] = "";
  bool group = H5Iget_type(o) == H5I_GROUP;
  if (h5ad__attr_string(o, "encoding-type", enc, sizeof enc) < 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s has an unreadable encoding-type", f->path,
                     what);
  if (group && (!strcmp(enc, "csr_matrix") || !strcmp(enc, "csc_matrix"))) {
    m->info.kind = enc[1] == 's' && enc[2] == 'r' ? H5AD_CSR : H5AD_CSC;
    int rc = read_shape(f, o, false, what, m, err);
    if (rc == CLUE_OK) rc = open_sparse(f, o, what, m, err);
    return rc ? rc : describe_types(f, what, m, err);
  }
  if (!group && (!strcmp(enc, "array") || !enc[0])) {
    m->info.kind = H5AD_DENSE;
    m->data = H5Dopen2(f->root, m->name, H5P_DEFAULT);
    int rc = read_shape(f, m->data, true, what, m, err);
    m->info.nnz = m->info.n_rows * m->info.n_cols;
    return rc ? rc : describe_types(f, what, m, err);
  }
  return clue_fail(err, CLUE_EFORMAT,
                   "%s: %s has encoding-type '%s'; clue reads csr_matrix, csc_matrix "
                   "or a dense array",
                   f->path, what, enc[0] ? enc : "(none)");
}

int h5ad__matrix_open(h5ad_file *f, const char *layer, h5ad_matrix *m, clue_err *err) {
  memset(m, 0, sizeof *m);
  m->data = m->indices = m->indptr = -1;
  if (h5ad__is_x(layer))
    snprintf(m->name, sizeof m->name, "X");
  else
    snprintf(m->name, sizeof m->name, "layers/%s", layer);
  if (f->mudata_root || !h5ad__exists(f->root, m->name))
    return missing_matrix(f, layer, err);
  char what[CLUE_NAME_MAX * 2 + 64];
  h5ad__objname(f, m->name, what, sizeof what);
  hid_t o = H5Oopen(f->root, m->name, H5P_DEFAULT);
  if (o < 0) return clue_fail(err, CLUE_EFORMAT, "%s: cannot open %s", f->path, what);
  int rc = open_object(f, o, what, m, err);
  H5Oclose(o);
  if (rc) h5ad__matrix_close(m);
  return rc;
}

void h5ad__matrix_close(h5ad_matrix *m) {
  if (m->data >= 0) H5Dclose(m->data);
  if (m->indices >= 0) H5Dclose(m->indices);
  if (m->indptr >= 0) H5Dclose(m->indptr);
  m->data = m->indices = m->indptr = -1;
}

int h5ad_matrix_info_get(h5ad_file *f, const char *layer, h5ad_matrix_info *info,
                         clue_err *err) {
  h5ad_matrix m;
  int rc = h5ad__matrix_open(f, layer, &m, err);
  if (rc) return rc;
  *info = m.info;
  h5ad__matrix_close(&m);
  return CLUE_OK;
}
