/* dataset_internal.h — what dataset.c (opening, partitioning, reading the
 * shard) and dataset_cells.c (pairing, split selection, batch codes) share.
 * Not public. */
#ifndef CLUE_DATASET_INTERNAL_H
#define CLUE_DATASET_INTERNAL_H

#include <stdint.h>

#include "clue/dataset.h"

/* The cells of a run, computed on rank 0. The per-cell arrays exist on rank 0
 * only (NULL elsewhere); the batch categories are on every rank. */
typedef struct dataset_cells {
  clue_pairing *pairing; /* every paired cell (rank 0) */
  uint8_t *keep;         /* (pairing->n_cells) 1 = selected (rank 0) */
  int32_t *batch;        /* (pairing->n_cells) batch code (rank 0) */
  int n_batches;
  clue_strings *batch_names; /* (n_batches) */
} dataset_cells;

/* Collective. Rank 0 pairs the cells of the open modalities d->mod[k].file
 * (by obsmap for an .h5mu, with `global` its root, else by names), reads the
 * split and batch columns, selects `cells`; the result is agreed, and the
 * batch categories are broadcast. */
int dataset__cells(const clue_config *cfg, clue_cells cells, const clue_dataset *d,
                   h5ad_file *global, const clue_comm *comm, dataset_cells *out,
                   clue_err *err);

void dataset__cells_free(dataset_cells *c);

/* Collective. Broadcasts rank 0's strings (*s on other ranks is replaced). */
int dataset__bcast_strings(const clue_comm *comm, clue_strings **s, clue_err *err);

#endif
