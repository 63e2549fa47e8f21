/* h5ad.h — reading AnnData (.h5ad) files and the AnnData groups inside a MuData
 * (.h5mu) file, through parallel HDF5 (MPI-IO driver).
 *
 * An h5ad_file is one AnnData object: the root of an .h5ad file, or mod/<name>
 * of an .h5mu file. Every rank opens it; rank-local reads read only the rows
 * asked for (hyperslab selections), so no rank ever holds the whole matrix.
 * HDF5's own error stack is never printed: failures become clue_err messages
 * naming the file, the object and what is wrong. */
#ifndef CLUE_H5AD_H
#define CLUE_H5AD_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/strings.h"

typedef struct h5ad_file h5ad_file;

/* Silences HDF5's automatic error printing for this process (call once, early). */
void h5ad_quiet_errors(void);

/* Collective over comm. Opens an AnnData object: `group` NULL or "" for an .h5ad
 * file's root, "mod/<name>" inside an .h5mu. Checks the encoding attributes
 * (refusing files written by anndata < 0.8 with a hint to re-save them).
 * `group` NULL or "" on an .h5mu opens its root: the global obs and var only
 * (no X, layers or obsm; see h5ad_is_mudata_root). */
int h5ad_open(const char *path, const char *group, const clue_comm *comm,
              h5ad_file **out, clue_err *err);

/* Closes the object and its file (NULL is allowed). Collective. */
void h5ad_close(h5ad_file *f);

/* The path given to h5ad_open, and the group ("" for the root). */
const char *h5ad_path(const h5ad_file *f);
const char *h5ad_group(const h5ad_file *f);

/* Shape of the object (from obs and var). */
int64_t h5ad_n_obs(const h5ad_file *f);
int64_t h5ad_n_vars(const h5ad_file *f);

/* True when f is the root of an .h5mu (global obs/var, no matrix). */
bool h5ad_is_mudata_root(const h5ad_file *f);

/* Caps the elements moved by one collective H5Dread (default 2^27); larger
 * reads are split into rounds. For tests of the splitting; <= 0 restores it. */
void h5ad_set_read_limit(h5ad_file *f, int64_t max_elements);

/* Total bytes of raw data this rank has read from the file so far (matrix,
 * indptr, obs and var datasets). Used to prove that ranks read only their shard. */
int64_t h5ad_bytes_read(const h5ad_file *f);

typedef enum { H5AD_CSR = 0, H5AD_CSC, H5AD_DENSE } h5ad_matrix_kind;

typedef struct h5ad_matrix_info {
  h5ad_matrix_kind kind;
  int64_t n_rows, n_cols;
  int64_t nnz;          /* stored values (n_rows × n_cols for dense) */
  bool float_data;      /* data is a floating-point type */
  int data_bytes;       /* size of one stored value on disk */
  int indptr_bytes;     /* 4 or 8 (sparse only) */
  int index_bytes;      /* size of one index on disk (sparse only) */
  char dtype[16];       /* "float32", "int64", ... for messages and clue info */
  char index_dtype[16]; /* "int32", "uint16", ... of indices (sparse only) */
} h5ad_matrix_info;

/* Describes "X" (layer NULL, "" or "X") or layers/<layer>. Fails naming the file
 * and the object when it is absent or not a supported matrix encoding. */
int h5ad_matrix_info_get(h5ad_file *f, const char *layer, h5ad_matrix_info *info,
                         clue_err *err);

/* Collective. Every rank receives the number of stored values of every row
 * (n_rows entries, malloc'd: free with free()). For CSR this reads indptr only;
 * for dense it returns n_cols per row; for CSC it is computed from the indices
 * (a full pass over them, in parallel, reduced across ranks). */
int h5ad_read_row_nnz(h5ad_file *f, const char *layer, int64_t **row_nnz,
                      clue_err *err);

/* Collective (every rank calls it, each with its own range, which may be
 * empty). This rank receives the number of stored values of rows [begin, end)
 * (end − begin entries, malloc'd: free with free(); entry i is file row
 * begin + i). CSR reads only indptr[begin .. end] and checks it (non-decreasing,
 * within data); dense gives n_cols per row; CSC is the slow path: every rank
 * takes part in the full pass over the indices and keeps its slice. Fails on
 * every rank, naming the file and the matrix, when a rank's range is outside
 * [0, n_rows] or begin > end. */
int h5ad_read_row_nnz_range(h5ad_file *f, const char *layer, int64_t begin, int64_t end,
                            int64_t **row_nnz, clue_err *err);

/* Collective (every rank calls it, n may be 0). Reads the given rows (strictly
 * ascending file row numbers) of the matrix into a new CSR with n rows, in that
 * order, values converted to float32. Sparse data is read as a union of
 * hyperslabs of data/indices covering only those rows. Structure is validated
 * (indptr monotone and consistent with data, indices in range). Columns come
 * out ascending within each row; duplicated entries are summed (scipy's rule).
 * Dense matrices come out without their zeros; CSC is read by a pass over all
 * of its indices on every rank (slow path). */
int h5ad_read_rows(h5ad_file *f, const char *layer, const int64_t *rows, int64_t n,
                   clue_csr **out, clue_err *err);

/* Not collective. The obs index (cell names) and the var index (feature names). */
int h5ad_read_obs_names(h5ad_file *f, clue_strings **out, clue_err *err);
int h5ad_read_var_names(h5ad_file *f, clue_strings **out, clue_err *err);

/* Not collective. Rows [begin, end) of the obs index: out->n == end − begin,
 * entry i is the name of file row begin + i; only those rows are read. Fails
 * naming the file when the range is outside [0, n_obs] or begin > end;
 * begin == end gives an empty array. */
int h5ad_read_obs_names_range(h5ad_file *f, int64_t begin, int64_t end,
                              clue_strings **out, clue_err *err);

typedef enum {
  H5AD_COL_CATEGORICAL = 0,
  H5AD_COL_NUMERIC,
  H5AD_COL_BOOL,
  H5AD_COL_STRING,
  H5AD_COL_OTHER /* present but of a kind clue does not read */
} h5ad_column_kind;

/* One obs (or var) column: every row, or the rows of a range (then n is the
 * range's length and row i is file row begin + i). */
typedef struct h5ad_column {
  char name[256];
  h5ad_column_kind kind;
  int64_t n;
  int32_t *codes;           /* categorical: (n), -1 = missing */
  clue_strings *categories; /* categorical: the categories */
  bool ordered;             /* categorical */
  double *values;           /* numeric and bool: (n); NaN where masked (nullable) */
  clue_strings *strings;    /* string: (n) */
  char encoding[64];        /* encoding-type as written in the file */
} h5ad_column;

/* The names of the obs columns in column-order (n entries, may be 0). */
int h5ad_obs_column_names(h5ad_file *f, clue_strings **out, clue_err *err);

/* Not collective. Reads obs column `name`; fails naming the file and the column
 * when absent, listing the columns that exist. */
int h5ad_read_obs_column(h5ad_file *f, const char *name, h5ad_column **out,
                         clue_err *err);

/* Not collective. Rows [begin, end) of obs column `name`: the same column as
 * h5ad_read_obs_column gives, with n = end − begin and codes, values or strings
 * of those rows only (read as one hyperslab each; a categorical's categories,
 * ordered and encoding are whole). The same failures, and a failure naming the
 * file and the column when the range is outside [0, n_obs] or begin > end. */
int h5ad_read_obs_column_range(h5ad_file *f, const char *name, int64_t begin, int64_t end,
                               h5ad_column **out, clue_err *err);

/* The label of row i of a column (i counted from the first row read) as text
 * (category, number or string), written to buf; "" for missing values. */
void h5ad_column_label(const h5ad_column *c, int64_t i, char *buf, size_t size);

void h5ad_column_free(h5ad_column *c);

/* The names under layers/ and obsm/ (may be empty). */
int h5ad_layer_names(h5ad_file *f, clue_strings **out, clue_err *err);
int h5ad_obsm_names(h5ad_file *f, clue_strings **out, clue_err *err);

/* Collective. Reads rows [row_begin, row_end) of the dense array obsm/<key>
 * (float32 or float64 on disk) into a new row-major float array of
 * (row_end − row_begin) × *n_cols. */
int h5ad_read_obsm_rows(h5ad_file *f, const char *key, int64_t row_begin,
                        int64_t row_end, float **out, int64_t *n_cols, clue_err *err);

/* ---- MuData ---- */

/* Not collective. The modality names of an .h5mu file (mod-order when present)
 * and, for modality `mod`, obsmap/<mod>: for each global cell the 1-based row
 * in the modality, 0 when absent (*map is NULL and *n 0, with CLUE_OK, when
 * the file has no obsmap/<mod>). Also the global obs names. */
int h5mu_mod_names(const char *path, clue_strings **out, clue_err *err);
int h5mu_read_obsmap(const char *path, const char *mod, int64_t **map, int64_t *n,
                     clue_err *err);
int h5mu_read_obs_names(const char *path, clue_strings **out, clue_err *err);

/* Not collective. Entries [begin, end) of obsmap/<mod> (end − begin entries,
 * malloc'd; entry i is global cell begin + i), only those read; *n_total gets
 * the length of the global obs. Fails naming the file (*map NULL, *n_total 0)
 * when the range is outside [0, length of the global obs] or begin > end, also
 * when there is no obsmap/<mod>. As h5mu_read_obsmap, *map is NULL and
 * *n_total 0, with CLUE_OK, when the file has no obsmap/<mod>. */
int h5mu_read_obsmap_range(const char *path, const char *mod, int64_t begin, int64_t end,
                           int64_t **map, int64_t *n_total, clue_err *err);

/* True when the file starts like an HDF5 file with an .h5mu user block or has
 * root attribute encoding-type == "MuData". */
bool h5mu_is_mudata(const char *path);

#endif
