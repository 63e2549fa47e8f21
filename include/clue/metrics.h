/* metrics.h — the quality measures of `clue eval` for two embeddings of the same
 * cells (a_i and b_i are the two modalities' embeddings of cell i, i < N):
 *
 *   FOSCTTM, a→b   (1/N) Σ_i (1/N) #{j : d(a_i, b_j) < d(a_i, b_i)}
 *   FOSCTTM, b→a   (1/N) Σ_i (1/N) #{j : d(b_i, a_j) < d(b_i, a_i)}
 *   foscttm        their mean (lower is better; random ≈ 0.5)
 *   top-k, a→b     fraction of i with #{j : d(a_i, b_j) < d(a_i, b_i)} < k: fewer
 *                  than k cells of b are strictly closer to a_i than its partner
 *                  (ties count in the partner's favour); b→a likewise.
 *
 * d is the Euclidean distance on the embeddings as given (no normalisation),
 * decided exactly as float64 Σ_k (x_k − y_k)² (see knn.h), so counts — and the
 * figures — are identical for every number of ranks.
 *
 *   matching score of a prediction P (rows = query cells, columns = reference
 *   cells): (1/N) Σ_i P⁺[i, π(i)] / Σ_j P⁺[i, j], where P⁺ = max(P, 0) and π(i) is
 *   the true partner's column; a row whose P⁺ sums to 0 contributes 0. */
#ifndef CLUE_METRICS_H
#define CLUE_METRICS_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/knn.h"

typedef struct metrics_paired {
  int64_t n;                  /* paired cells */
  double foscttm_ab, foscttm_ba, foscttm;
  double top1_ab, top5_ab;    /* a as query */
  double top1_ba, top5_ba;    /* b as query */
  knn_stats stats;            /* this rank's scan statistics */
} metrics_paired;

/* Collective. FOSCTTM and top-1/top-5 partner recall, both directions, from one
 * exact all-pairs scan of a (rows as queries) against b. a and b are paired row
 * by row and split alike over ranks (same n_total, begin and n); no groups. */
int metrics_paired_compute(const knn_points *a, const knn_points *b, const clue_comm *comm,
                           metrics_paired *out, clue_err *err);

/* Collective. (1/N²) Σ closer over all ranks' rows: FOSCTTM of one direction
 * from per-row counts of cells closer than the partner (N = n_total). */
double metrics_foscttm(const int64_t *closer, int64_t n_local, int64_t n_total,
                       const clue_comm *comm);

/* Collective. Fraction of all ranks' rows with closer < k (partner recall at k). */
double metrics_recall_at(const int64_t *closer, int64_t n_local, int64_t n_total, int k,
                         const clue_comm *comm);

/* The probability row `row` of m puts on column `col` after clipping negative
 * values to 0 and normalising the row to sum 1; 0 for a row with no positive
 * value. Duplicate entries of a column add up. Not collective. */
double metrics_match_row(const clue_csr *m, int64_t row, int64_t col);

/* Collective. The matching score of the prediction rows held by this rank
 * (`rows`, local rows; partner[i] = the true column of local row i): the mean of
 * metrics_match_row over every rank's rows, summed in global row order on rank 0
 * (identical for every number of ranks). Fails when a partner column is out of
 * range or there are no rows at all. */
int metrics_match_score(const clue_csr *rows, const int64_t *partner, const clue_comm *comm,
                        double *score, clue_err *err);

#endif
