/* h5ad_read.c — opening an AnnData object (an .h5ad file's root, a MuData
 * modality mod/<name>, or a MuData file's root for its global obs/var) with
 * the MPI-IO driver, checking its encoding, and the accessors.
 *
 * Opening is collective; the checks that can fail on one rank only (the file
 * is missing, not HDF5) are made on rank 0 before the collective H5Fopen, and
 * every later failure is agreed across ranks, so all ranks fail alike. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5ad_internal.h"

void h5ad_quiet_errors(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

void h5ad__objname(const h5ad_file *f, const char *obj, char *buf, size_t size) {
  if (f->group[0])
    snprintf(buf, size, "%s/%s", f->group, obj);
  else
    snprintf(buf, size, "%s", obj);
}

bool h5ad__is_x(const char *layer) { return !layer || !layer[0] || !strcmp(layer, "X"); }

/* Rank 0's checks before HDF5 sees the file: it exists, is a file, is HDF5. */
static int check_file(const char *path, clue_err *err) {
  struct stat st;
  if (stat(path, &st) != 0)
    return clue_fail(err, CLUE_EIO, "cannot open %s: %s", path, strerror(errno));
  if (S_ISDIR(st.st_mode))
    return clue_fail(err, CLUE_EIO, "cannot open %s: it is a folder, not a file", path);
  if (H5Fis_hdf5(path) <= 0)
    return clue_fail(err, CLUE_EFORMAT,
                     "%s is not an HDF5 file (expected an .h5ad or .h5mu written by "
                     "anndata or mudata)",
                     path);
  return CLUE_OK;
}

/* Checks the encoding-type of the object; sets f->mudata_root. */
static int check_encoding(h5ad_file *f, clue_err *err) {
  char enc[64];
  int got = h5ad__attr_string(f->root, "encoding-type", enc, sizeof enc);
  const char *where = f->group[0] ? f->group : "the root";
  if (got == 0)
    return clue_fail(err, CLUE_EFORMAT,
                     "%s: %s has no encoding-type attribute: the file was written by "
                     "anndata < 0.8; re-save it with a current anndata "
                     "(anndata.read_h5ad(path).write_h5ad(new_path))",
                     f->path, where);
  if (got < 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: the encoding-type of %s is not a string",
                     f->path, where);
  if (!strcmp(enc, "anndata")) return CLUE_OK;
  if (!strcmp(enc, "MuData") && !f->group[0]) {
    f->mudata_root = true;
    return CLUE_OK;
  }
  return clue_fail(err, CLUE_EFORMAT,
                   "%s: %s has encoding-type '%s'; expected 'anndata'%s", f->path, where,
                   enc, f->group[0] ? "" : " (an .h5ad) or 'MuData' (an .h5mu)");
}

/* Opens the group (or the root); fails listing the modalities when absent. */
static int open_root(h5ad_file *f, clue_err *err) {
  if (!f->group[0]) {
    f->root = H5Gopen2(f->file, "/", H5P_DEFAULT);
    return f->root < 0
               ? clue_fail(err, CLUE_EFORMAT, "%s: cannot open the root group", f->path)
               : CLUE_OK;
  }
  if (!h5ad__exists(f->file, f->group)) {
    clue_strings *mods = NULL;
    clue_err e2;
    char list[512] = "";
    if (h5ad__list_group(f->file, "mod", &mods, f->path, &e2) == CLUE_OK) {
      for (int64_t i = 0; i < mods->n; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 mods->s[i]);
      clue_strings_free(mods);
    }
    return clue_fail(err, CLUE_EFORMAT, "%s has no %s (modalities in the file: %s)",
                     f->path, f->group, list[0] ? list : "none");
  }
  f->root = H5Gopen2(f->file, f->group, H5P_DEFAULT);
  if (f->root < 0)
    return clue_fail(err, CLUE_EFORMAT, "%s: %s is not a group", f->path, f->group);
  return CLUE_OK;
}

/* Collective H5Fopen with the MPI-IO driver. */
static int open_mpio(h5ad_file *f, clue_err *err) {
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  H5Pset_fapl_mpio(fapl, f->comm.comm, MPI_INFO_NULL);
  H5Pset_file_locking(fapl, 0, 1);
  f->file = H5Fopen(f->path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f->file < 0)
    return clue_fail(err, CLUE_EIO, "cannot open %s with parallel HDF5 (MPI-IO)",
                     f->path);
  return CLUE_OK;
}

int h5ad_open(const char *path, const char *group, const clue_comm *comm, h5ad_file **out,
              clue_err *err) {
  *out = NULL;
  h5ad_file *f = clue_calloc(1, sizeof *f, err);
  int rc = f ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK) {
    f->file = f->root = -1;
    f->comm = *comm;
    f->read_limit = H5AD_READ_LIMIT;
    snprintf(f->path, sizeof f->path, "%s", path);
    snprintf(f->group, sizeof f->group, "%s", group ? group : "");
    if (comm->rank == 0) rc = check_file(path, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = clue_comm_agree(comm, open_mpio(f, err), err);
  if (rc == CLUE_OK) {
    int st = open_root(f, err);
    if (st == CLUE_OK) st = check_encoding(f, err);
    if (st == CLUE_OK) st = h5ad__frame_length(f, "obs", &f->n_obs, err);
    if (st == CLUE_OK) st = h5ad__frame_length(f, "var", &f->n_vars, err);
    rc = clue_comm_agree(comm, st, err);
  }
  if (rc != CLUE_OK) {
    if (f) h5ad_close(f);
    return rc;
  }
  *out = f;
  return CLUE_OK;
}

void h5ad_close(h5ad_file *f) {
  if (!f) return;
  if (f->root >= 0) H5Gclose(f->root);
  if (f->file >= 0) H5Fclose(f->file);
  free(f);
}

const char *h5ad_path(const h5ad_file *f) { return f->path; }
const char *h5ad_group(const h5ad_file *f) { return f->group; }
int64_t h5ad_n_obs(const h5ad_file *f) { return f->n_obs; }
int64_t h5ad_n_vars(const h5ad_file *f) { return f->n_vars; }
int64_t h5ad_bytes_read(const h5ad_file *f) { return f->bytes_read; }
bool h5ad_is_mudata_root(const h5ad_file *f) { return f->mudata_root; }

void h5ad_set_read_limit(h5ad_file *f, int64_t max_elements) {
  f->read_limit = max_elements > 0 ? max_elements : H5AD_READ_LIMIT;
}
