/* h5ad_write_internal.h — what h5ad_write.c and h5mu_write.c share (not public).
 *
 * An output file is built under a temporary name in one of two modes at a time:
 * serial (rank 0 alone holds a sec2 handle and writes metadata, strings and
 * groups: variable-length strings cannot go through the MPI-IO driver) or
 * parallel (every rank holds an MPI-IO handle and writes its rows of the big
 * datasets collectively). Switching mode closes one handle and opens the other;
 * every switch is collective because every public call is. */
#ifndef CLUE_H5AD_WRITE_INTERNAL_H
#define CLUE_H5AD_WRITE_INTERNAL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/config.h"
#include "clue/error.h"
#include "clue/h5ad.h"
#include "clue/h5ad_write.h"
#include "clue/strings.h"

typedef enum { H5W_CLOSED = 0, H5W_SERIAL, H5W_PARALLEL } h5w_mode;

typedef struct h5w_file {
  char path[CLUE_PATH_MAX];     /* the final name */
  char tmp[CLUE_PATH_MAX + 32]; /* the name while it is built */
  clue_comm comm;
  hid_t fid;        /* the open handle (serial mode: rank 0 only), or -1 */
  h5w_mode mode;    /* the same on every rank */
} h5w_file;

/* Collective. Refuses `path` when it is a folder or one of `protect` (by device
 * and inode), then creates the temporary file (with a user block of `userblock`
 * bytes, 0 or 512) and leaves it open in serial mode. */
int h5w_file_create(const char *path, hsize_t userblock, const char *const *protect,
                    const clue_comm *comm, h5w_file **out, clue_err *err);

/* Collective. Makes rank 0 hold a serial handle (f->fid valid on rank 0). */
int h5w_serial(h5w_file *f, clue_err *err);

/* Collective. Makes every rank hold an MPI-IO handle (f->fid valid everywhere). */
int h5w_parallel(h5w_file *f, clue_err *err);

/* Collective. Flushes and closes the file, writes `userblock_text` (NULL: none)
 * into its first 512 bytes, fsyncs it, renames it to its final name. Frees f,
 * removing the temporary file on failure. */
int h5w_file_commit(h5w_file *f, const char *userblock_text, clue_err *err);

/* Collective. Closes and removes the temporary file; frees f (NULL ok). */
void h5w_file_abort(h5w_file *f);

/* Fills err with the formatted message followed by the innermost HDF5 error
 * description, clears HDF5's error stack and returns code. */
int h5w_fail(clue_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- rank-0 helpers on a serial handle; all return 0 or a negative code ---- */

/* The encoding-type / encoding-version string attributes of an object. */
int h5w_encoding(hid_t obj, const char *type, const char *version, clue_err *err);

/* A scalar variable-length UTF-8 string attribute. */
int h5w_attr_string(hid_t obj, const char *name, const char *value, clue_err *err);

/* A 1-D string array attribute (n == 0: an empty float64 array, as anndata writes). */
int h5w_attr_strings(hid_t obj, const char *name, const char *const *s, int64_t n,
                     clue_err *err);

/* A scalar int64 attribute. */
int h5w_attr_int64(hid_t obj, const char *name, int64_t value, clue_err *err);

/* A group with the given encoding; returns its id (close it) or a negative
 * value after filling err. */
hid_t h5w_group(hid_t loc, const char *name, const char *type, const char *version,
                clue_err *err);

/* Creates the empty dict groups layers, obsm, obsp, uns, varm, varp in group. */
int h5w_empty_dicts(hid_t group, bool with_layers, clue_err *err);

/* A string-array dataset of n strings (n may be 0). */
int h5w_string_array(hid_t loc, const char *name, const char *const *s, int64_t n,
                     clue_err *err);

/* A 1-D uint32 "array" dataset of n values. */
int h5w_uint32_array(hid_t loc, const char *name, const uint32_t *v, int64_t n,
                     clue_err *err);

/* Checks that columns can be written as dataframe columns of n rows (names
 * unique, not "_index", kinds writable, codes in range, categories unique). */
int h5w_check_columns(h5ad_column *const *cols, int n_cols, int64_t n,
                      const char *where, clue_err *err);

/* Writes the columns (checked) into an existing dataframe group. */
int h5w_write_columns(hid_t group, h5ad_column *const *cols, int n_cols,
                      clue_err *err);

/* A dataframe group `name` with index `index` (n entries) and checked columns. */
int h5w_dataframe(hid_t loc, const char *name, const char *const *index, int64_t n,
                  h5ad_column *const *cols, int n_cols, clue_err *err);

/* Checks that a key names one object (not empty, no '/', not "." or ".."). */
int h5w_check_key(const char *key, const char *what, clue_err *err);

/* ---- the AnnData writer, also used for mod/<name> inside an .h5mu ---- */

typedef struct h5w_obsm_key {
  char key[CLUE_NAME_MAX * 4];
  int64_t n_cols;
} h5w_obsm_key;

struct h5mu_writer;

struct h5ad_writer {
  h5w_file *file;
  bool owns_file;          /* false for a modality of an .h5mu */
  char group[CLUE_NAME_MAX + 16]; /* "/" or "/mod/<name>" */
  char where[CLUE_PATH_MAX + 96]; /* "<path>" or "<path> mod/<name>", for messages */
  int64_t n_obs, n_vars;
  bool wrote_obs, wrote_var;
  bool x_started;
  bool x_dense;          /* X is a dense array (h5ad_writer_x_dense), not csr */
  int64_t x_rows, x_nnz; /* rows and values of X written so far */
  h5w_obsm_key *obsm;    /* (n_obsm) obsm datasets created so far */
  int n_obsm;
  /* A modality of an .h5mu: its writer (every rank), and on rank 0 only: */
  struct h5mu_writer *mu;
  uint32_t *obsmap;         /* (mu's n_obs) copy of the modality's obsmap */
  clue_strings *var_names;  /* copy of the var index, for the global var */
};

/* Collective. A writer for the AnnData group `group` of an open file (serial
 * mode): rank 0 writes the group skeleton (encoding, empty dicts). */
int h5w_anndata_new(h5w_file *file, bool owns_file, const char *group, int64_t n_obs,
                    int64_t n_vars, h5ad_writer **out, clue_err *err);

/* Collective. Completes the AnnData group: default obs/var when never written,
 * and a check that X, when started, has all its rows. */
int h5w_anndata_finish(h5ad_writer *w, clue_err *err);

/* Frees the writer's memory (not the file). */
void h5w_anndata_free(h5ad_writer *w);

/* Rank 0: the global obs names of an .h5mu. */
const clue_strings *h5mu_writer_global_names(const struct h5mu_writer *mu);

/* Drops a modality writer that is being abandoned from its .h5mu's list. */
void h5mu_writer_forget(struct h5mu_writer *mu, h5ad_writer *w);

#endif
