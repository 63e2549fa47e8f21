/* prep.h — the fixed preprocessing of one modality, fitted on training cells
 * (distributed: each rank passes its own rows, statistics are reduced over the
 * communicator) and then applied to any cell:
 *
 *   - which features are decoded (highly variable genes, most often open peaks,
 *     or all), and the decoder's target values for a row (raw counts of those
 *     features; binarised for a Bernoulli likelihood; standardised values for
 *     a Normal likelihood);
 *   - the encoder input: a dense row of n_components values (PCA of normalised,
 *     standardised, clipped values; LSI; or standardised input as is).
 *
 * Everything fitted is stored in the struct and saved with the model. */
#ifndef CLUE_PREP_H
#define CLUE_PREP_H

#include <hdf5.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/config.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/strings.h"

typedef struct clue_prep {
  clue_preprocess kind;
  clue_normalize normalize;
  clue_likelihood likelihood;
  int64_t n_input;      /* features of the modality in the file */
  int64_t n_decoded;    /* decoded features */
  int64_t *decoded;     /* (n_decoded) ascending file columns of decoded features */
  int64_t n_used;       /* features entering the encoder input transform */
  int64_t *used;        /* (n_used) ascending file columns (pca: the decoded ones; lsi: all) */
  int n_components;     /* encoder input width R */
  double *mean;         /* (n_used) pca/none: standardisation mean */
  double *std;          /* (n_used) pca/none: standardisation std (population; 1 where 0) */
  double *idf;          /* (n_used) lsi: n_cells / column sum */
  float *proj;          /* (n_used × R) row-major: pca: V; lsi: V / s; none: NULL */
  double *target_mean;  /* (n_decoded) normal likelihood: standardisation of targets */
  double *target_std;   /* (n_decoded) */
  clue_strings *var_names; /* (n_input) the features' names in the training file, or
                              NULL (checkpoints written before they were kept) */
  double library_mean;  /* nb: the training cells' mean count of the decoded features
                           (0: unknown, checkpoints written before it was kept) */
} clue_prep;

/* Collective. Fits the preprocessing of modality `mc` on this rank's training
 * rows `x` (counts, all file features) with their batch codes (n_batches ≥ 1).
 * `n_hvg_auto` is the number of highly variable genes when mc->features is auto
 * (5000, or 10000 when the run has an lsi modality). Same result on any number
 * of ranks up to floating-point reduction order. Progress goes to stderr on
 * rank 0 when verbose. */
int clue_prep_fit(const clue_modality_config *mc, const clue_csr *x,
                  const int32_t *batch, int n_batches, int n_hvg_auto, uint64_t seed,
                  const clue_comm *comm, int verbose, clue_prep **out, clue_err *err);

/* Encoder input of the rows of x: out is (x->n_rows × n_components) row-major. */
int clue_prep_encode_input(const clue_prep *p, const clue_csr *x, float *out,
                           clue_err *err);

/* Decoder targets of the rows of x: a new CSR (x->n_rows × n_decoded). */
int clue_prep_decode_target(const clue_prep *p, const clue_csr *x, clue_csr **out,
                            clue_err *err);

/* Saves into / loads from an HDF5 group (datasets and attributes under it; the
 * group must be empty for saving). Not collective by themselves: the state is
 * identical on every rank, so call them on every rank when the file is open for
 * parallel access, or on one rank for a serial file. Loading checks every shape,
 * order and value and refuses an inconsistent group with a message naming it. */
int clue_prep_save(const clue_prep *p, hid_t group, clue_err *err);

/* Keeps a copy of the n_input feature names of the training file in p (saved
 * with it). */
int clue_prep_set_names(clue_prep *p, const clue_strings *names, clue_err *err);
int clue_prep_load(hid_t group, clue_prep **out, clue_err *err);

void clue_prep_free(clue_prep *p);

/* ---- building blocks, exposed for tests ---- */

/* Seurat v3 highly variable genes on this rank's rows (collective): returns the
 * n_top selected columns (ascending) in *selected (malloc'd), n_top ≤ n_cols
 * (all columns when n_top ≥ n_cols). Batches with fewer than 2 cells are left
 * out; batches are combined as scanpy's "seurat_v3" flavour does (median rank
 * over the batches where a gene is in the top n_top, then the number of such
 * batches). Bitwise independent of the number of ranks for integer counts. */
int clue_hvg_seurat_v3(const clue_csr *x, const int32_t *batch, int n_batches,
                       int64_t n_top, const clue_comm *comm, int64_t **selected,
                       clue_err *err);

/* Local regression (loess, degree 2, tricube weights, span) of y on x at the
 * points x themselves, as in the seurat_v3 flavour; fitted written to out. */
int clue_loess_fit(const double *x, const double *y, int64_t n, double span,
                   double *out, clue_err *err);

/* Produces rows [begin, end) of a dense matrix (row-major, n_cols wide) on
 * demand, so that large matrices never exist whole in memory. */
typedef int (*clue_rows_fn)(void *ctx, int64_t begin, int64_t end, float *out,
                            clue_err *err);

/* Collective randomized SVD of the distributed matrix A whose n_local rows on this
 * rank are produced by rows(ctx, ...) in blocks (rows of all ranks stacked in
 * rank order): top k right singular vectors V (n_cols × k, row-major) and
 * singular values s (k), identical on all ranks. oversample and n_iter as in
 * Halko et al.; signs fixed so that the largest-magnitude entry of each column of
 * V is positive. When A has rank r < k, columns r.. of V complete an orthonormal
 * basis and get singular value 0. Memory: a block of rows (≤ 1024 rows, ≤ 4M
 * values) plus O(n_cols · (k + oversample)); the tall side is never stored. */
int clue_rsvd(clue_rows_fn rows, void *ctx, int64_t n_local, int64_t n_cols, int k,
              int oversample, int n_iter, uint64_t seed, const clue_comm *comm,
              double *v, double *s, clue_err *err);

/* Collective randomized SVD as clue_rsvd, of the distributed sparse matrix whose
 * rows on this rank are `a` (rows of all ranks stacked in rank order; every rank
 * passes the same n_cols). Memory beyond a: O(n_cols · (k + oversample)). */
int clue_rsvd_csr(const clue_csr *a, int k, int oversample, int n_iter, uint64_t seed,
                  const clue_comm *comm, double *v, double *s, clue_err *err);

/* Produces rows [begin, end) of a sparse matrix on demand: ptr (end − begin + 1
 * entries, ptr[0] = 0), the column index idx and value val of each entry. */
typedef int (*clue_sparse_rows_fn)(void *ctx, int64_t begin, int64_t end, int64_t *ptr,
                                   int32_t *idx, double *val, clue_err *err);

/* Collective randomized SVD as clue_rsvd, of A = C + 1·offsetᵀ: every row is
 * the dense row `offset` (n_cols values, the same on every rank) plus the row
 * of the sparse C produced by rows(ctx, ...) in blocks. Row i of C holds at most
 * bound[i + 1] − bound[i] entries (bound: n_local + 1 ascending values). Each
 * product costs O(nnz(C)·l + n_cols·l) per block of rows instead of
 * O(rows·n_cols·l); the result is the same as clue_rsvd on the dense rows up to
 * the order of sums. Memory: O(n_cols · (k + oversample)) plus one block. */
int clue_rsvd_offset(clue_sparse_rows_fn rows, void *ctx, const double *offset,
                     const int64_t *bound, int64_t n_local, int64_t n_cols, int k,
                     int oversample, int n_iter, uint64_t seed, const clue_comm *comm,
                     double *v, double *s, clue_err *err);

#endif
