/* h5ad_internal.h — what the files of the AnnData reader share (not public):
 * the h5ad_file struct, HDF5 attribute and vector helpers, and the collective
 * reader of a union of row ranges.
 *
 * Internal names use the prefix h5ad__ (two underscores). Every helper that
 * can fail returns a clue status and fills err; none prints. */
#ifndef CLUE_H5AD_INTERNAL_H
#define CLUE_H5AD_INTERNAL_H

#include <hdf5.h>
#include <stdbool.h>
#include <stdint.h>

#include "clue/config.h"
#include "clue/h5ad.h"

/* Most elements one collective H5Dread moves (keeps MPI counts < 2^31 bytes). */
#define H5AD_READ_LIMIT ((int64_t)1 << 27)

struct h5ad_file {
  char path[CLUE_PATH_MAX];
  char group[CLUE_NAME_MAX + 8]; /* "" or "mod/<name>" */
  clue_comm comm;
  hid_t file;       /* the HDF5 file, opened with the MPI-IO driver */
  hid_t root;       /* the AnnData group: the file's "/" or mod/<name> */
  bool mudata_root; /* the root of a MuData file: global obs/var, no X */
  int64_t n_obs, n_vars;
  int64_t bytes_read; /* raw bytes this rank read */
  int64_t read_limit; /* elements per collective read call (tests lower it) */
};

/* ---- names for messages (h5ad_read.c) ---- */

/* Writes "<group>/<obj>" (or "<obj>" at a file's root) into buf. */
void h5ad__objname(const h5ad_file *f, const char *obj, char *buf, size_t size);

/* ---- data frames (h5ad_frame.c) ---- */

/* Length of the index of data frame `frame` ("obs" or "var"); fails naming the
 * file when the frame or its index is missing. */
int h5ad__frame_length(h5ad_file *f, const char *frame, int64_t *n, clue_err *err);

/* ---- attributes and links (h5ad_attr.c) ---- */

/* True when loc has a link `name` (a path with '/' is checked part by part). */
bool h5ad__exists(hid_t loc, const char *name);

/* Reads a string attribute (variable- or fixed-length, scalar or one element).
 * Returns 1 when read, 0 when absent, CLUE_EFORMAT (no message) when it is not a
 * string. */
int h5ad__attr_string(hid_t obj, const char *name, char *buf, size_t size);

/* Reads a 1-D string-array attribute (an empty numeric array counts as no
 * strings). *out is NULL when the attribute is absent. */
int h5ad__attr_strings(hid_t obj, const char *name, clue_strings **out, const char *what,
                       clue_err *err);

/* Reads up to max integers of an integer attribute into vals; *n gets the
 * count. Returns 1 read, 0 absent, CLUE_EFORMAT (no message) when not integer. */
int h5ad__attr_int64s(hid_t obj, const char *name, int64_t *vals, int max, int *n);

/* Reads a boolean attribute (HDF5 enum as h5py writes it, or an integer);
 * returns 1 read, 0 absent, CLUE_EFORMAT (no message) when of another type. */
int h5ad__attr_bool(hid_t obj, const char *name, bool *value);

/* The names of the links in group `name` under loc, sorted by name (an absent
 * group gives no names). */
int h5ad__list_group(hid_t loc, const char *name, clue_strings **out, const char *what,
                     clue_err *err);

/* Opens the MuData/AnnData file read-only with the default driver (for the
 * non-collective MuData queries); fails naming the file. */
int h5ad__open_plain(const char *path, hid_t *file, clue_err *err);

/* ---- spans of 1-D datasets (h5ad_vector.c), independent reads ---- */

/* Elements [begin, end) of a 1-D dataset; the whole dataset is [0, n). */
typedef struct h5ad_span {
  int64_t begin, end;
} h5ad_span;

static inline int64_t h5ad__span_length(h5ad_span s) { return s.end - s.begin; }

/* A memory type for reading strings stored as file type t (same character set,
 * variable length when t is). Close with H5Tclose. */
hid_t h5ad__string_mem_type(hid_t t);

/* Copies a fixed-length string of len bytes into dst (size bytes), dropping
 * NUL or space padding. */
void h5ad__copy_fixed(char *dst, size_t size, const char *src, size_t len);

/* New strings from n fixed-length strings of len bytes packed in raw. */
clue_strings *h5ad__strings_from_fixed(const char *raw, int64_t n, size_t len,
                                       clue_err *err);

/* New strings from n variable-length strings read by HDF5 (NULL = ""); frees
 * each v[i] (not v itself), whether or not it succeeds. */
clue_strings *h5ad__strings_from_vlen(char **v, int64_t n, clue_err *err);

/* Number of elements of a 1-D dataset; -1 when it is not 1-D. */
int64_t h5ad__dset_length(hid_t dset);

/* The span of every element of dset ([0, 0) when it is not 1-D). */
h5ad_span h5ad__whole(hid_t dset);

/* CLUE_OK when 0 <= s.begin <= s.end <= n; otherwise CLUE_EINVAL with a message
 * starting with `what` (which names the file and the object). */
int h5ad__check_span(const char *what, h5ad_span s, int64_t n, clue_err *err);

/* Reads span s of a 1-D dataset of strings (variable or fixed length) or
 * numbers (shown as text) into a new clue_strings of the span's length: one
 * hyperslab, nothing else is read. *bytes (may be NULL) grows by bytes read.
 * Fails (naming `what`) when the dataset is not 1-D or s is outside it. */
int h5ad__read_strings(hid_t dset, const char *what, h5ad_span s, clue_strings **out,
                       int64_t *bytes, clue_err *err);

/* Reads span s of a 1-D numeric or boolean (enum) dataset that must hold n
 * elements, as double, into out (the span's length). */
int h5ad__read_doubles(hid_t dset, const char *what, int64_t n, h5ad_span s, double *out,
                       int64_t *bytes, clue_err *err);

/* Reads span s of a 1-D integer (or enum) dataset that must hold n elements, as
 * int64, into out (the span's length). */
int h5ad__read_int64s(hid_t dset, const char *what, int64_t n, h5ad_span s, int64_t *out,
                      int64_t *bytes, clue_err *err);

/* True when the type is an integer, or an enum over one (h5py's bool). */
bool h5ad__type_is_integral(hid_t type);

/* ---- collective reads of row ranges (h5ad_ranges.c) ---- */

/* Collective. Reads the union of the ascending, disjoint row ranges
 * [begin[i], end[i]) of a 1-D dataset (width 1) or of a 2-D dataset (rows ×
 * width) into buf, converted to mem_type (elements of elem_size bytes), in file
 * order. Every rank calls it, with n_ranges possibly 0; the reads are split into
 * as many collective H5Dread calls as the rank with the most data needs. Adds
 * the bytes read to f->bytes_read. Not agreed across ranks: the caller calls
 * clue_comm_agree. */
int h5ad__read_ranges(h5ad_file *f, hid_t dset, const char *what, hid_t mem_type,
                      size_t elem_size, int64_t width, const int64_t *begin,
                      const int64_t *end, int64_t n_ranges, void *buf, clue_err *err);

/* ---- matrix internals (h5ad_matrix.c, h5ad_rows.c, h5ad_csc.c) ---- */

/* An open matrix: X or layers/<name>. */
typedef struct h5ad_matrix {
  h5ad_matrix_info info;
  char name[CLUE_NAME_MAX + 16]; /* "X" or "layers/<name>" (relative to root) */
  hid_t data, indices, indptr;   /* sparse: the three datasets; dense: data only */
} h5ad_matrix;

/* Opens and describes X (layer NULL, "" or "X") or layers/<layer>. */
int h5ad__matrix_open(h5ad_file *f, const char *layer, h5ad_matrix *m, clue_err *err);
void h5ad__matrix_close(h5ad_matrix *m);

/* CSC paths (h5ad_csc.c): per-row counts and the rows of a shard. */
int h5ad__csc_row_nnz(h5ad_file *f, h5ad_matrix *m, int64_t *row_nnz, clue_err *err);
int h5ad__csc_read_rows(h5ad_file *f, h5ad_matrix *m, const int64_t *rows, int64_t n,
                        clue_csr **out, clue_err *err);

/* Sorts the columns of each row of a CSR ascending and sums duplicates (scipy
 * allows both unsorted and duplicated indices); returns the new nnz. */
int64_t h5ad__csr_canonical(clue_csr *m);

/* Does the value of `layer` name X? */
bool h5ad__is_x(const char *layer);

#endif
