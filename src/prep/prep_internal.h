/* prep_internal.h — pieces of the preprocessing shared by fitting (prep_fit.c)
 * and applying (prep_apply.c); not part of the public API. */
#ifndef CLUE_PREP_INTERNAL_H
#define CLUE_PREP_INTERNAL_H

#include <stdint.h>

#include "clue/prep.h"

#define PREP_TARGET_SUM 1e4 /* log1p: each cell scaled to this total first */
#define PREP_CLIP 10.0      /* pca: standardised values clipped to ±PREP_CLIP */
#define PREP_LSI_SCALE 1e4  /* lsi: each cell's tf-idf rescaled to this total */

/* A map from file column to position in a sorted column list: (n_input),
 * −1 for columns not in the list. */
int32_t *prep_col_map(const int64_t *cols, int64_t n, int64_t n_input, clue_err *err);

/* The normalised values of the used features of row i of x:
 *   log1p: log1p(x · 1e4 / Σ_all x), library size over ALL features of the
 *          cell (as scanpy's normalize_total before subsetting to HVGs);
 *   clr:   log1p(x) − mean over the used features of log1p(x);
 *   none:  x.
 * vals[e − x->indptr[i]] receives the value of each stored entry e of the row
 * whose column is used (col[] ≥ 0); the value of a used feature with no stored
 * entry (count 0) is returned. */
double prep_norm_row(clue_normalize norm, const clue_csr *x, const int32_t *col,
                     int64_t n_used, int64_t i, const double *log1p_ints, double *vals);

/* clr counts below this are looked up in a table of log1p(k) (the same values). */
#define PREP_LOG1P_INTS 4096

/* log1p(k) for k = 0 … PREP_LOG1P_INTS − 1 (free with free()); prep_norm_row
 * takes it or NULL (then computes every log1p). */
double *prep_log1p_ints_new(clue_err *err);

/* v clipped to ±PREP_CLIP (v is finite). */
static inline double prep_clip(double v) {
  return v < -PREP_CLIP ? -PREP_CLIP : (v > PREP_CLIP ? PREP_CLIP : v);
}

/* Checks that x can be preprocessed by p's normalisation: finite values, and
 * non-negative ones unless nothing is normalised (`counts`: raw counts are
 * expected). `what` names the matrix in messages. Not collective. */
int prep_check_values(const clue_csr *x, int counts, const char *what, clue_err *err);

/* Producer of the dense encoder-input rows before projection: standardised
 * (and, for pca, clipped) normalised values of the used features. */
typedef struct prep_dense {
  const clue_prep *p;
  const clue_csr *x;
  const int32_t *col;  /* (n_input) position in p->used or −1 */
  int clip;            /* clip to ±PREP_CLIP */
  float *zero_row;     /* (n_used) value of a zero count when it is the same for
                          every cell (log1p, none), else NULL */
  double *vals;        /* (widest row) scratch */
  double *log1p_ints;  /* (PREP_LOG1P_INTS) for clr, else NULL */
} prep_dense;

int prep_dense_init(prep_dense *d, const clue_prep *p, const clue_csr *x,
                    const int32_t *col, clue_err *err);
void prep_dense_free(prep_dense *d);

/* A clue_rows_fn: rows [begin, end) of x as dense rows of p->n_used values. */
int prep_dense_rows(void *ctx, int64_t begin, int64_t end, float *out, clue_err *err);

/* A clue_sparse_rows_fn (needs d->zero_row): rows [begin, end) of x as the
 * standardised values of their used stored entries minus the zero row, so that
 * a dense row of prep_dense_rows = zero_row + this sparse row, exactly. */
int prep_sparse_rows(void *ctx, int64_t begin, int64_t end, int64_t *ptr, int32_t *idx,
                     double *val, clue_err *err);

/* The LSI value log1p(1e4 · x_j·idf_j / Σ_k x_k·idf_k) of every stored entry of
 * row i, into vals (parallel to the row's stored values). */
void prep_lsi_row(const clue_prep *p, const clue_csr *x, int64_t i, float *vals);

#endif
