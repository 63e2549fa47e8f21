/* h5ad_write.h — writing AnnData (.h5ad) and MuData (.h5mu) files that Python's
 * anndata / mudata open.
 *
 * A writer builds the file under a temporary name beside the target and renames
 * it over the target only on commit, so a killed run never leaves a half-written
 * output under the final name. Metadata (obs, var, encodings) is written by
 * rank 0; row blocks of obsm arrays and of X are written by every rank in
 * parallel (MPI-IO, collective). */
#ifndef CLUE_H5AD_WRITE_H
#define CLUE_H5AD_WRITE_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/h5ad.h"
#include "clue/strings.h"

typedef struct h5ad_writer h5ad_writer;

/* Collective. Starts an .h5ad of n_obs × n_vars at `path`. Fails (without
 * touching anything) when path names a file given in `protect` (NULL-terminated
 * list of input paths, compared by device and inode) — outputs never overwrite
 * inputs. */
int h5ad_writer_create(const char *path, int64_t n_obs, int64_t n_vars,
                       const char *const *protect, const clue_comm *comm,
                       h5ad_writer **out, clue_err *err);

/* Collective; rank 0's arguments are used. Writes obs: the index `names`
 * (n_obs entries) and the given columns (each with n == n_obs; categorical,
 * numeric, bool and string kinds are written in anndata's encodings). */
int h5ad_writer_obs(h5ad_writer *w, const clue_strings *names,
                    h5ad_column *const *columns, int n_columns, clue_err *err);

/* Collective; rank 0's arguments are used. Writes the var index (n_vars names;
 * with n_vars == 0 an empty var dataframe). */
int h5ad_writer_var(h5ad_writer *w, const clue_strings *names, clue_err *err);

/* Collective. Writes obsm/<key>, float32, n_obs × n_cols; this rank provides
 * rows [row_begin, row_begin + n_local) as a row-major array (n_local may be 0).
 * Calling it again with the same key and width writes further rows (to stream
 * a large array in rounds); the ranks' row ranges must not overlap. */
int h5ad_writer_obsm(h5ad_writer *w, const char *key, int64_t n_cols, int64_t row_begin,
                     int64_t n_local, const float *local, clue_err *err);

/* Collective. Writes X as csr_matrix (float32 data, int32 indices, int64 indptr)
 * from row blocks: this rank provides rows [row_begin, row_begin + local->n_rows);
 * the blocks of all ranks must tile [0, n_obs) in rank order. */
int h5ad_writer_x_csr(h5ad_writer *w, int64_t row_begin, const clue_csr *local,
                      clue_err *err);

/* Collective. Writes X in rounds, so that memory stays bounded by a round: this
 * rank provides rows [row_begin, row_begin + local->n_rows); across ranks the
 * blocks tile, in rank order, the rows that follow those already written (ranks
 * with 0 rows take part). X must have all n_obs rows at commit. */
int h5ad_writer_x_csr_append(h5ad_writer *w, int64_t row_begin, const clue_csr *local,
                             clue_err *err);

/* Collective. Writes X as a dense float32 array (n_obs × n_vars) in rounds:
 * this rank provides rows [row_begin, row_begin + n_local) (row-major, n_vars
 * values each; n_local may be 0); the ranks' rows must not overlap within a
 * call nor with earlier calls, and cover all n_obs rows by commit. Not with
 * the csr writers. */
int h5ad_writer_x_dense(h5ad_writer *w, int64_t row_begin, int64_t n_local, const float *local,
                        clue_err *err);

/* Collective. Writes uns/<key> as a string scalar (for provenance: command, version). */
int h5ad_writer_uns_string(h5ad_writer *w, const char *key, const char *value,
                           clue_err *err);

/* Collective. Completes the file (obs/var never written get the index "0",
 * "1", ...; an X never written is left out, which anndata reads as X = None),
 * flushes it to disk and renames it to its final path. Frees w, also on failure
 * (the temporary file is then removed). */
int h5ad_writer_commit(h5ad_writer *w, clue_err *err);

/* Collective. Abandons the file: removes the temporary file. Frees w (NULL ok). */
void h5ad_writer_abort(h5ad_writer *w);

/* True once an output file failed to close in this process, or was abandoned
 * open after a failed parallel write (a full or failing disk; the error was
 * reported). HDF5 1.10 keeps a file whose close failed and crashes on it, and
 * would try a collective close of an abandoned one, when the library shuts down
 * at MPI_Finalize: main() then leaves without finalising (src/cli/main.c). */
bool h5ad_writer_close_failed(void);

/* ---- MuData ---- */

typedef struct h5mu_writer h5mu_writer;

/* Collective. Starts an .h5mu at `path` with shared observations: n_obs global
 * cells named `names` (rank 0's used), and n_mod modalities. The file gets the
 * 512-byte MuData user block and root attributes. */
int h5mu_writer_create(const char *path, const clue_strings *names,
                       const char *const *protect, const clue_comm *comm,
                       h5mu_writer **out, clue_err *err);

/* Collective; rank 0's arguments are used. Writes the columns of the global obs
 * (each with n == the number of global cells). At most once. */
int h5mu_writer_obs(h5mu_writer *w, h5ad_column *const *columns, int n_columns,
                    clue_err *err);

/* Collective. Adds modality `mod` with n_obs rows, n_vars features; obsmap
 * (global cells, 1-based row in the modality, 0 = absent; rank 0's used) is
 * written to obsmap/<mod>. Returns an h5ad_writer for mod/<mod> that the caller
 * fills with the calls above and then passes to h5mu_writer_end_mod. */
int h5mu_writer_add_mod(h5mu_writer *w, const char *mod, int64_t n_obs, int64_t n_vars,
                        const uint32_t *obsmap, h5ad_writer **mod_writer,
                        clue_err *err);

/* Collective. Finishes a modality started by h5mu_writer_add_mod (frees it,
 * also on failure). Several modalities may be open at once. The modality's obs
 * names, when written, must be the global names obsmap maps to; when never
 * written they are taken from the global names. */
int h5mu_writer_end_mod(h5mu_writer *w, h5ad_writer *mod_writer, clue_err *err);

/* Collective. Writes the global var, varmap and mod-order, completes, flushes
 * and renames. Frees w, also on failure (the temporary file is then removed). */
int h5mu_writer_commit(h5mu_writer *w, clue_err *err);

/* Collective. Removes the temporary file. Frees w (NULL ok) and the modality
 * writers still open (do not use them afterwards). */
void h5mu_writer_abort(h5mu_writer *w);

#endif
