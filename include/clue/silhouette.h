/* silhouette.h — silhouette widths without an N × N matrix. Each row needs
 * the sums of its Euclidean distances to the rows of every group within its
 * scope; a ring scan gives them: the ranks pass their blocks of rows around,
 * each rank comparing its own rows with the block at hand in tiles whose
 * squared distances come from a float64 GEMM (‖x‖² + ‖y‖² − 2 x·yᵀ). Memory per
 * rank O((n_local + largest block) · dim + n_local · n_groups); time
 * O(N² · dim / P).
 *
 * Silhouette of row i, own group a, within its scope (as scikit-learn's
 * silhouette_samples, Euclidean): a_i = mean distance to the other rows of a,
 * b_i = the smallest mean distance to the rows of another group,
 * s_i = (b_i − a_i) / max(a_i, b_i); 0 when i is alone in its group. */
#ifndef CLUE_SILHOUETTE_H
#define CLUE_SILHOUETTE_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/error.h"

typedef struct sil_points {
  int64_t n, dim;        /* rows on this rank, columns */
  const float *x;        /* (n × dim) */
  const int64_t *id;     /* (n) distinct over all ranks: a row is not its own neighbour */
  const int32_t *scope;  /* (n) rows meet only within a scope, 0 … n_scopes − 1 (NULL: one) */
  const int32_t *group;  /* (n) 0 … n_groups − 1; −1: the row takes no part */
  int n_scopes, n_groups;
} sil_points;

/* Collective. sums (n × n_groups): for each row, Σ ‖x_i − x_j‖ over the rows j
 * of every rank with the same scope and group q (float64); counts (n_scopes ×
 * n_groups, the same on every rank): rows of each (scope, group). */
int sil_distance_sums(const sil_points *p, const clue_comm *comm, double *sums, int64_t *counts,
                      clue_err *err);

/* Not collective. The silhouette of each row (NAN for rows that take no part,
 * and for rows whose scope has cells of fewer than two groups). */
void sil_widths(const sil_points *p, const double *sums, const int64_t *counts, double *s);

#endif
