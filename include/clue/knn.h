/* knn.h — exact all-pairs scans between two row-distributed point sets: per-row
 * nearest neighbours (top-k) in both directions and, for paired sets, the counts
 * behind FOSCTTM, without any rank holding an N × N matrix or all of either set.
 *
 * Layout. Each rank holds a contiguous block of rows of the query set Q and of
 * the reference set R (blocks in rank order). The scan passes the reference
 * blocks around a ring of ranks (MPI_Sendrecv); each rank compares its query
 * rows with every reference block in tiles: squared distances come from sgemm,
 * ‖q‖² + ‖r‖² − 2 q·rᵀ. Memory per rank is O((|Q|/P + |R|/P + tile) · dim), plus
 * k entries per local row; time O(|Q| · |R| · dim / P).
 *
 * Exactness. The float32 tile distance of a pair has an error bounded by
 * c · (‖q‖² + ‖r‖²) with c = 2 (γ_dim + 6u), u = 2⁻²⁴, γ_n = n u / (1 − n u).
 * Every decision that the float32 value cannot settle within that margin (a
 * neighbour candidate, a comparison with a partner's distance) is redone with
 * knn_exact_d2, the float64 direct formula. Results therefore equal those of a
 * brute-force float64 computation of knn_exact_d2 over all pairs — identical for
 * every number of ranks and every tile size. Neighbour order: ascending
 * knn_exact_d2, ties broken by the smaller global index. Inputs must be finite
 * (see knn_check_finite); values near the float underflow range are not
 * covered by the bound. Points far from the origin relative to their spread make
 * more decisions fall inside the margin: the results stay exact, the scan slows. */
#ifndef CLUE_KNN_H
#define CLUE_KNN_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/error.h"

/* This rank's block of a row-distributed point set (n_total × dim overall). */
typedef struct knn_points {
  int64_t n_total;      /* rows over all ranks */
  int64_t begin;        /* global index of this rank's first row */
  int64_t n;            /* rows held here; blocks tile [0, n_total) in rank order */
  int64_t dim;          /* columns, the same on every rank */
  const float *x;       /* (n × dim) row-major, finite */
  const int32_t *group; /* (n) group code per row, or NULL: rows of different groups
                           are never neighbours (top-k only; not for pair counts) */
} knn_points;

typedef struct knn_opts {
  int k_row;         /* nearest reference rows kept per query row (0 = none) */
  int k_col;         /* nearest query rows kept per reference row (0 = none) */
  bool exclude_self; /* Q and R are the same set: a row is not its own neighbour */
  bool pair_counts;  /* Q and R are paired (row i ↔ row i, same blocks): count the
                        rows closer than the partner, in both directions */
  int64_t tile_rows; /* query rows per sgemm tile (0 = default 256) */
  int64_t tile_cols; /* reference rows per sgemm tile (0 = default 512) */
} knn_opts;

typedef struct knn_stats {
  double pairs;        /* distances computed by this rank through sgemm */
  int64_t rechecks;    /* partner comparisons redone in float64 (near ties) */
  int64_t candidates;  /* neighbour candidates recomputed in float64 */
  double t_gemm;       /* seconds in sgemm */
  double t_scan;       /* seconds in the tile epilogues (distances, counts, top-k) */
  double t_comm;       /* seconds passing reference blocks */
} knn_stats;

typedef struct knn_result {
  int64_t n_rows;      /* this rank's query rows */
  int k_row;
  int64_t *row_idx;    /* (n_rows × k_row) global reference rows, nearest first;
                          −1 where fewer than k_row candidates exist */
  double *row_d2;      /* (n_rows × k_row) their knn_exact_d2; +inf where −1 */
  int64_t n_cols;      /* this rank's reference rows */
  int k_col;
  int64_t *col_idx;    /* (n_cols × k_col) global query rows nearest each local
                          reference row, nearest first; −1 where fewer */
  double *col_d2;      /* (n_cols × k_col) */
  int64_t *row_closer; /* (n_rows) pair_counts: #{j : d(q_i, r_j) < d(q_i, r_i)} */
  int64_t *col_closer; /* (n_cols) pair_counts: #{j : d(q_j, r_i) < d(q_i, r_i)} */
  knn_stats stats;
} knn_result;

/* The reference squared distance Σ_k ((double)a_k − (double)b_k)², summed in
 * order k = 0, 1, …: every exact decision of the scan uses this value. */
double knn_exact_d2(const float *a, const float *b, int64_t dim);

/* The equal block partition used by clue's evaluation (clue_block_range of
 * rowdist.h): rank `rank` of `size` holds rows [*begin, *begin + *count). */
void knn_block(int64_t n, int size, int rank, int64_t *begin, int64_t *count);

/* Returns CLUE_OK when every value of the n × dim array is finite; otherwise
 * fails with CLUE_ENUMERIC naming `what` and the first bad local row (plus
 * `row_offset`, to report a global row). Not collective. */
int knn_check_finite(const float *x, int64_t n, int64_t dim, int64_t row_offset,
                     const char *what, clue_err *err);

/* Collective. Scans every (query, reference) pair as described above and returns
 * this rank's part of the results (arrays for options not asked for are NULL).
 * Fails (on every rank) when the sets disagree in dim, when pair_counts or
 * exclude_self is asked for sets that are not paired block by block, or when
 * memory runs out. */
int knn_scan(const knn_points *query, const knn_points *ref, const knn_opts *opts,
             const clue_comm *comm, knn_result **out, clue_err *err);

/* Frees a result (NULL is allowed). */
void knn_result_free(knn_result *r);

#endif
