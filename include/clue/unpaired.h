/* unpaired.h — how well an embedding integrates cells that nothing pairs: the
 * cells of several files (modalities) pooled, with a label (cell type), and
 * optionally a batch, per cell. The measures follow scib's definitions:
 *
 *   asw_label     (mean silhouette of the labels + 1) / 2 over the labelled
 *                 cells (Euclidean on the embedding as given; 1: labels apart)
 *   asw_batch     for each label with cells of 2+ batches (and fewer batches
 *                 than cells), the mean of 1 − |silhouette of the batches| within
 *                 the label; the mean over those labels (1: batches mixed)
 *   asw_modality  the same with the modality (file) in place of the batch
 *   graph_conn    for each label, the share of its cells in the largest
 *                 connected piece of the kNN graph (k nearest other cells, edges
 *                 both ways) restricted to the label; the mean over labels
 *   transfer      leave-modality-out: each modality's labelled cells predicted
 *                 by the distance-weighted vote of their k nearest labelled
 *                 cells of the other modalities (L2-normalised, as clue
 *                 transfer); accuracy and macro-F1 per modality and over all.
 *
 * Rows are split over the ranks in rank order (this rank: [begin, begin + n)
 * of n_total). Silhouettes come from sil_distance_sums (O(N² · dim / P)), the
 * graph and the votes from knn_scan; rank 0 gathers the graph's edges
 * (k · N integers) to find its pieces. */
#ifndef CLUE_UNPAIRED_H
#define CLUE_UNPAIRED_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/error.h"

#define UNPAIRED_MAX_MODS 64

typedef struct unpaired_input {
  int64_t n_total, begin, n, dim;
  const float *x;        /* (n × dim) */
  const int32_t *label;  /* (n) 0 … n_labels − 1; −1: none */
  const int32_t *batch;  /* (n) 0 … n_batches − 1, or NULL */
  const int32_t *mod;    /* (n) 0 … n_mods − 1 */
  int n_labels, n_batches, n_mods;
  int k;                 /* neighbours of the graph and of the votes */
} unpaired_input;

typedef struct unpaired_result {
  double asw_label, asw_batch, asw_modality, graph_conn; /* NAN: not defined */
  int64_t scored[UNPAIRED_MAX_MODS];    /* labelled cells of each modality voted on */
  double accuracy[UNPAIRED_MAX_MODS], macro_f1[UNPAIRED_MAX_MODS];
  double accuracy_all, macro_f1_all;
  int64_t scored_all;
} unpaired_result;

/* Collective. Every measure above (asw_batch NAN without batches; transfer NAN
 * for a modality when no other modality has labelled cells). */
int unpaired_compute(const unpaired_input *in, const clue_comm *comm, unpaired_result *out,
                     clue_err *err);

#endif
