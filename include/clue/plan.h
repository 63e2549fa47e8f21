/* plan.h — which cells make up each minibatch, identically on every rank:
 * the validation split, the epoch's row order, filler cells for missing
 * modalities, and the assembly of this rank's part of a minibatch.
 *
 * All randomness comes from counter-based streams keyed by the seed, the epoch
 * and the global cell index, so the plan does not depend on the number of ranks. */
#ifndef CLUE_PLAN_H
#define CLUE_PLAN_H

#include <stdint.h>

#include "clue/dataset.h"
#include "clue/error.h"
#include "clue/model.h"

typedef struct clue_plan {
  int n_mod;
  int B;                   /* configured batch size */
  uint64_t seed;
  int64_t n_cells;         /* cells of the dataset (global) */
  int64_t n_train, n_val;
  int64_t *train;          /* (n_train) cell indices used for gradient steps, ascending */
  int64_t *val;            /* (n_val) cell indices held out for validation, ascending */
  int64_t n_pool[CLUE_K];  /* training cells having modality k */
  int64_t *pool[CLUE_K];   /* (n_pool[k]) those cells, ascending: filler candidates */
  int64_t *order;          /* (n_train) this epoch's order of train */
  int64_t order_epoch;     /* epoch the order was drawn for (−1: none yet) */
} clue_plan;

/* Splits the dataset's cells into train and validation (a seeded permutation;
 * round(val_split · n) validation cells, at most n − 1) and lists filler pools. */
int clue_plan_new(const clue_dataset *d, int batch_size, double val_split, uint64_t seed,
                  clue_plan **out, clue_err *err);
void clue_plan_free(clue_plan *p);

/* Gradient steps per epoch: ⌊n_train / B⌋ (last partial batch dropped) when
 * n_train > B, else 1. */
int64_t clue_plan_steps_per_epoch(const clue_plan *p);

/* Validation minibatches: ⌈n_val / B⌉ (0 without validation cells). */
int64_t clue_plan_val_batches(const clue_plan *p);

/* The filler cell standing in for modality k of cell c in an epoch. */
int64_t clue_plan_filler(const clue_plan *p, int64_t epoch, int64_t c, int k);

/* Model inputs of this rank's cells: encoder inputs and decoder targets of the
 * local rows of every modality (row r of modality k = r-th local cell with k). */
typedef struct clue_inputs {
  int n_mod;
  int enc_in[CLUE_K];      /* R_k */
  float *enc[CLUE_K];      /* (local rows × R_k) */
  clue_csr *target[CLUE_K]; /* (local rows × F_k) */
} clue_inputs;

/* Collective only through the dataset layout (not MPI). Fills this rank's part
 * of minibatch `step` of an epoch (train: position in the epoch's order; val:
 * the b-th block of validation cells) into mb. Returns the number of global rows. */
int clue_plan_fill(clue_plan *p, const clue_dataset *d, const clue_inputs *in,
                   int64_t epoch, int64_t step, int validation, clue_minibatch *mb);

#endif
