/* matching.h — snn matching (the CLUE method note, section 4): a prediction of
 * which reference cell y_j is the partner of each query cell x_i, as a sparse
 * row-stochastic matrix in the competition's format.
 *
 * Definition (k ≥ 1; both sides L2-normalised first; distances Euclidean,
 * decided exactly as in knn.h; neighbour order by distance, ties to the
 * smaller index):
 *   N_y(x_i)  the k nearest y of x_i        N_x(y_j)  the k nearest x of y_j
 *   N_x(x_i)  x_i itself, then its k − 1 nearest other x   (likewise N_y(y_j))
 *   S_ij = |N_y(x_i) ∩ N_y(y_j)| + |N_x(x_i) ∩ N_x(y_j)|
 *        = (x2y · y2yᵀ + (y2x · x2xᵀ)ᵀ)_ij                       (0 ≤ S ≤ 2k)
 *   J_ij = S_ij / (4k − S_ij) on the nonzeros (Jaccard index of the neighbour sets)
 *   P_i· = J_i· / Σ_j J_ij, keeping at most max_nnz (≤ 1000) entries per row: the
 *          largest J, ties to the smaller column.
 * With batches (groups), every neighbour set is taken within the cell's group
 * only, so P pairs cells of the same group only. A query cell whose group has no
 * reference cell has no nonzero S: its row falls back to probability 1 on its
 * nearest reference cell of any group, so that every row sums to 1.
 * S_ij > 0 for each y_j ∈ N_y(x_i), so without groups no row is empty. Rows can
 * hold more than k² entries: S also counts every y_j whose N_x(y_j) contains a
 * neighbour of x_i, and hubs gather many.
 *
 * Distribution: the four kNN graphs come from exact ring scans (knn_scan); each
 * rank then holds all four as index lists (4 · N · k int64, all-gathered) and
 * builds the prediction rows of its own query cells without further exchange. */
#ifndef CLUE_MATCHING_H
#define CLUE_MATCHING_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/knn.h"

#define MATCH_MAX_NNZ 1000

typedef struct match_graphs {
  int k;
  int64_t n_x, n_y;
  int64_t *x2y;   /* (n_x × k) N_y(x_i), global y rows nearest first, −1 = none */
  int64_t *y2x;   /* (n_y × k) N_x(y_j) */
  int64_t *x2x;   /* (n_x × k) N_x(x_i), x2x[i·k] == i */
  int64_t *y2y;   /* (n_y × k) N_y(y_j), y2y[j·k] == j */
  int64_t *x_any; /* (n_x) nearest y of any group where x2y[i·k] == −1, else −1;
                     NULL when no cell needs a fallback */
  int64_t *y_any; /* (n_y) likewise for y; NULL when no cell needs one */
  knn_stats stats; /* this rank's scans, summed */
} match_graphs;

/* A new n × dim array holding the rows of x scaled to unit Euclidean norm
 * (computed in float64; an all-zero row stays zero). Not collective. */
float *match_normalize(const float *x, int64_t n, int64_t dim, clue_err *err);

/* Collective. Builds the four graphs of the definition above for the
 * row-distributed sets x and y (each split over ranks in rank order; groups
 * optional, given on both sides or neither). x and y are normalised internally
 * (the caller's arrays are not changed). Needs 1 ≤ k and n_x, n_y ≥ 1. */
int match_graphs_build(const knn_points *x, const knn_points *y, int k,
                       const clue_comm *comm, match_graphs **out, clue_err *err);

/* Frees the graphs (NULL is allowed). */
void match_graphs_free(match_graphs *g);

typedef enum { MATCH_X_QUERY = 0, MATCH_Y_QUERY = 1 } match_side;

/* Not collective. The prediction rows [row_begin, row_begin + n_rows) with the
 * `query` side's cells as rows and the other side's as columns (MATCH_Y_QUERY
 * gives the matching of y against x: the same J, transposed, row-normalised
 * the other way). Every row sums to 1 (up to float rounding) and holds at most
 * max_nnz (1..MATCH_MAX_NNZ) entries, columns ascending. *n_fallback (may be
 * NULL) receives the number of rows that used the nearest-cell fallback. */
int match_snn_rows(const match_graphs *g, match_side query, int64_t row_begin,
                   int64_t n_rows, int max_nnz, clue_csr **out, int64_t *n_fallback,
                   clue_err *err);

#endif
