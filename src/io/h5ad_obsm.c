/* h5ad_obsm.c — what else an AnnData object holds per cell: the names of its
 * layers and obsm arrays, and rows of a dense obsm array (e.g. X_pca, X_clue)
 * read collectively, each rank its own block. */
#include <stdlib.h>
#include <string.h>

#include "h5ad_internal.h"

static int list_names(h5ad_file *f, const char *group, clue_strings **out,
                      clue_err *err) {
  if (f->mudata_root) {
    *out = clue_strings_new(0, err);
    return *out ? CLUE_OK : CLUE_ENOMEM;
  }
  return h5ad__list_group(f->root, group, out, f->path, err);
}

int h5ad_layer_names(h5ad_file *f, clue_strings **out, clue_err *err) {
  return list_names(f, "layers", out, err);
}

int h5ad_obsm_names(h5ad_file *f, clue_strings **out, clue_err *err) {
  return list_names(f, "obsm", out, err);
}

/* Opens obsm/<key> and checks it is a numeric array with one row per cell. */
static int open_obsm(h5ad_file *f, const char *key, const char *what, hid_t *d,
                     int64_t *n_cols, clue_err *err) {
  char rel[CLUE_NAME_MAX + 300];
  snprintf(rel, sizeof rel, "obsm/%s", key);
  *d = -1;
  if (f->mudata_root || strchr(key, '/') || !h5ad__exists(f->root, rel))
    return clue_fail(err, CLUE_EFORMAT, "%s: %s is missing", f->path, what);
  hid_t o = H5Oopen(f->root, rel, H5P_DEFAULT);
  bool dset = o >= 0 && H5Iget_type(o) == H5I_DATASET;
  if (o >= 0) H5Oclose(o);
  if (!dset)
    return clue_fail(err, CLUE_EFORMAT,
                     "%s: %s is not a dense array (clue reads dense obsm arrays)",
                     f->path, what);
  *d = H5Dopen2(f->root, rel, H5P_DEFAULT);
  hid_t s = H5Dget_space(*d), t = H5Dget_type(*d);
  hsize_t dims[2] = {0, 1};
  int nd = H5Sget_simple_extent_ndims(s);
  if (nd == 1 || nd == 2) H5Sget_simple_extent_dims(s, dims, NULL);
  H5T_class_t cls = H5Tget_class(t);
  H5Sclose(s);
  H5Tclose(t);
  if (nd < 1 || nd > 2 || (cls != H5T_FLOAT && cls != H5T_INTEGER))
    return clue_fail(err, CLUE_EFORMAT, "%s: %s is not a numeric 1-D or 2-D array",
                     f->path, what);
  if ((int64_t)dims[0] != f->n_obs)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s has %lld rows but obs has %lld", f->path,
                     what, (long long)dims[0], (long long)f->n_obs);
  *n_cols = nd == 2 ? (int64_t)dims[1] : 1;
  return CLUE_OK;
}

int h5ad_read_obsm_rows(h5ad_file *f, const char *key, int64_t row_begin, int64_t row_end,
                        float **out, int64_t *n_cols, clue_err *err) {
  char what[CLUE_NAME_MAX + 320], rel[CLUE_NAME_MAX + 300];
  snprintf(rel, sizeof rel, "obsm/%s", key);
  h5ad__objname(f, rel, what, sizeof what);
  *out = NULL;
  hid_t d = -1;
  float *buf = NULL;
  int rc = open_obsm(f, key, what, &d, n_cols, err);
  if (rc == CLUE_OK && (row_begin < 0 || row_end < row_begin || row_end > f->n_obs))
    rc = clue_fail(err, CLUE_EINVAL, "%s: rows [%lld, %lld) of %s are out of range",
                   f->path, (long long)row_begin, (long long)row_end, what);
  if (rc == CLUE_OK &&
      !(buf = clue_malloc((size_t)((row_end - row_begin) * *n_cols) * sizeof *buf, err)))
    rc = CLUE_ENOMEM;
  rc = clue_comm_agree(&f->comm, rc, err);
  if (rc == CLUE_OK) {
    int64_t nr = row_end > row_begin && *n_cols > 0 ? 1 : 0;
    rc = h5ad__read_ranges(f, d, what, H5T_NATIVE_FLOAT, sizeof *buf, *n_cols, &row_begin,
                           &row_end, nr, buf, err);
    rc = clue_comm_agree(&f->comm, rc, err);
  }
  if (d >= 0) H5Dclose(d);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf;
  return CLUE_OK;
}
