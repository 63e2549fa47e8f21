/* dataset_internal.h — what dataset.c (opening, partitioning, reading the
 * shard), dataset_pair.c (pairing across ranks) and dataset_cells.c (split
 * selection, batch codes) share. Not public. */
#ifndef CLUE_DATASET_INTERNAL_H
#define CLUE_DATASET_INTERNAL_H

#include <stdint.h>

#include "clue/dataset.h"

/* The paired cells this rank owns while loading. The pairing order is global
 * (first appearance: modality 0's rows, then the cells only later modalities
 * have; or the .h5mu global obs order). The owned cells form n_seg segments of
 * consecutive positions: segment s of rank r follows segment s of rank r − 1 and
 * every segment s − 1; they are stored in segment order. */
typedef struct own_cells {
  int n_mod;
  int64_t n;                    /* cells owned here */
  int64_t *id;                  /* (n) position in the pairing order, ascending */
  int64_t *row;                 /* (n × n_mod) file row per modality, −1 absent */
  int64_t *grow;                /* (n) row in the .h5mu global obs, −1 absent */
  clue_strings *names;          /* (n) */
  int n_seg;
  int64_t seg_n[CLUE_MAX_MOD];  /* owned cells per segment */
  int64_t n_total;              /* paired cells on all ranks */
  uint8_t *keep;                /* (n) selected (dataset_cells.c) */
  int32_t *batch;               /* (n) batch code (dataset_cells.c) */
} own_cells;

void own_cells_free(own_cells *oc);

/* Collective. This rank's count per segment (n_seg ≤ CLUE_MAX_MOD) → the global
 * position of its first item of each segment, in (segment, rank) order, and the
 * total over all ranks. CLUE_ENOMEM (agreed) is the only failure. */
int dataset__seg_offsets(const clue_comm *comm, int n_seg, const int64_t *mine,
                         int64_t *first, int64_t *total, clue_err *err);

/* Collective. Pairs the open modalities by obs names (global: the .h5mu root,
 * whose obs rows become grow, or NULL). */
int dataset__pair_by_names(const clue_dataset *d, h5ad_file *global, const clue_comm *comm,
                           own_cells *oc, clue_err *err);

/* Collective. Pairs an .h5mu's modalities by obsmap when every one has it, else
 * by names; the global obs names must be unique. */
int dataset__pair_h5mu(const clue_dataset *d, h5ad_file *global, const clue_comm *comm,
                       own_cells *oc, clue_err *err);

/* The batch categories of a run (every rank). */
typedef struct dataset_cells {
  own_cells own;
  int n_batches;
  clue_strings *batch_names; /* (n_batches) */
} dataset_cells;

/* Collective. Pairs the cells of the open modalities d->mod[k].file (by obsmap
 * for an .h5mu, with `global` its root, else by names), reads the split and
 * batch columns, selects `cells` and codes the batches; every rank ends with
 * its owned cells and the batch categories. */
int dataset__cells(const clue_config *cfg, clue_cells cells, const clue_dataset *d,
                   h5ad_file *global, const clue_comm *comm, dataset_cells *out,
                   clue_err *err);

void dataset__cells_free(dataset_cells *c);

/* Collective. Broadcasts rank 0's strings (*s on other ranks is replaced). */
int dataset__bcast_strings(const clue_comm *comm, clue_strings **s, clue_err *err);

#endif
