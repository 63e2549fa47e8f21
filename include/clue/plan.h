/* plan.h — which cells make up each minibatch, identically on every rank:
 * the validation split, the epoch's row order, filler cells for missing
 * modalities, and the assembly of this rank's part of a minibatch.
 *
 * All randomness comes from counter-based streams and computed permutations keyed
 * by the seed, the epoch and the global cell index, so the plan does not depend
 * on the number of ranks, and no rank holds a per-cell array of the whole data. */
#ifndef CLUE_PLAN_H
#define CLUE_PLAN_H

#include <stdint.h>

#include "clue/dataset.h"
#include "clue/error.h"
#include "clue/model.h"
#include "clue/perm.h"

/* Model inputs of this rank's cells: encoder inputs and decoder targets of the
 * local rows of every modality (row r of modality k = r-th local cell with k). */
typedef struct clue_inputs {
  int n_mod;
  int enc_in[CLUE_K];      /* R_k */
  float *enc[CLUE_K];      /* (local rows × R_k) */
  clue_csr *target[CLUE_K]; /* (local rows × F_k) */
} clue_inputs;

typedef struct clue_plan {
  int n_mod;
  int B;                   /* configured batch size */
  uint64_t seed;
  int64_t n_cells;         /* cells of the dataset (global) */
  int64_t n_train, n_val;
  clue_perm split;         /* cell c is validation iff split(c) < n_val */
  int n_ranks, rank;
  int64_t n_pool[CLUE_K];  /* training cells having modality k (global) */
  int64_t *pool_begin[CLUE_K]; /* (n_ranks + 1): rank r holds pool entries
                                  [pool_begin[r], pool_begin[r+1]) */
  int64_t *local_pool[CLUE_K]; /* this rank's pool entries: its training cells
                                  having modality k, ascending */
  clue_perm order;         /* this epoch's order of the training cells */
  int64_t order_epoch;     /* epoch the order was made for (−1: none yet) */
  /* Mixed minibatches (clue_plan_mix): group 0 = the training cells observed in
   * at least two modalities (paired), group 1 = the others. */
  int B_group[2];          /* rows per minibatch from each group (0, 0: off) */
  int64_t n_group[2];      /* training cells of each group (global) */
  int64_t *group_begin[2]; /* (n_ranks + 1): rank r holds entries [begin[r], begin[r+1]) */
  int64_t *local_group[2]; /* this rank's entries: its cells of the group, ascending */
  clue_perm group_order[2]; /* the current pass over each group */
  uint64_t group_key[2];   /* (epoch, pass) it was made for (UINT64_MAX: none yet) */
  /* Pseudo-partners (clue_plan_set_pseudo). */
  const int64_t *partner;  /* borrowed: (local cells × n_mod), or NULL */
  double pseudo_w;         /* chance a partnered cell takes its partner */
  bool pseudo_live;        /* the last minibatch drew partners: pseudo_cell holds them */
  int64_t *pseudo_cell;    /* (B × n_mod) workspace: the partner giving row (i, k), −1 */
  int64_t *mix;            /* (B × (1 + 2 n_mod)) workspace: what the ranks agree on */
  int64_t *cells;          /* (B) workspace: the cells of the minibatch */
  unsigned char *has;      /* (B × n_mod) workspace: which modalities they have */
  int *src;                /* (B × n_mod) workspace: rank holding each row, −1 none */
  int64_t *src_cell;       /* (B × n_mod) workspace: the row's cell if this rank holds it */
  int enc_in[CLUE_K];      /* R_k */
  clue_csr *rows[CLUE_K];  /* (≤ B rows; room for B × the longest row) decoder targets
                              of the rows this rank computes this step */
  char *send, *recv;       /* packed rows: room for B of the longest of each modality
                              (recv: NULL on one rank, which reads send) */
  int *scount, *sdisp, *rcount, *rdisp; /* (n_ranks) byte counts of the exchange */
  const char **cursor;     /* (n_ranks) next unread row from each rank */
} clue_plan;

/* Collective. Splits the dataset's cells into train and validation (a keyed
 * permutation of the cells: round(val_split · n) validation cells, at most
 * n − 1), lists this rank's filler candidates and sizes the minibatch exchange
 * for the rows of `in`. Memory: O(local cells + ranks + B × longest row),
 * nothing proportional to the whole dataset; the same on any number of ranks. */
int clue_plan_new(const clue_dataset *d, const clue_inputs *in, int batch_size,
                  double val_split, uint64_t seed, const clue_comm *comm, clue_plan **out,
                  clue_err *err);
void clue_plan_free(clue_plan *p);

/* Collective. train.paired_fraction: from now on each training minibatch
 * holds round(fraction · B) rows (at least 1, at most B − 1) of training cells
 * observed in two or more modalities — the rows that feed the cross and cosine
 * terms — and the rest from the other training cells, spread evenly over the
 * B positions. Each group is drawn in its own keyed order of its cells; an
 * epoch is max(⌊n_paired / B_paired⌋, ⌊n_other / B_other⌋, 1) steps, so the
 * group that fills its share faster is seen about once per epoch and the other
 * runs through further orders of its cells (oversampled). fraction ≤ 0, or a
 * group without cells (fully paired data, or no bridge) leaves the plan
 * uniform and unchanged. Costs an allreduce of B × (1 + n_mod) integers per
 * minibatch on several ranks; does not depend on the number of ranks. */
int clue_plan_mix(clue_plan *p, const clue_dataset *d, double fraction, const clue_comm *comm,
                  clue_err *err);

/* Pseudo-partners for the training minibatches that follow: a cell missing
 * modality k whose partner[(c − local_begin) · n_mod + k] is a cell (≥ 0; the
 * partners of this rank's cells, borrowed until the next call; NULL: none)
 * takes that cell's row of modality k instead of a filler, counted as observed
 * (the row joins the cross and cosine terms), with probability `weight`, drawn
 * per (seed, epoch, step, cell, modality). The partner must be a training cell
 * observed in k. Set it alike on every rank; costs an allreduce of
 * B × (1 + 2 n_mod) integers per training minibatch while weight > 0. */
void clue_plan_set_pseudo(clue_plan *p, const int64_t *partner, double weight);

/* Gradient steps per epoch: ⌊n_train / B⌋ (last partial batch dropped) when
 * n_train > B, else 1; with mixed minibatches, as clue_plan_mix says. */
int64_t clue_plan_steps_per_epoch(const clue_plan *p);

/* Validation minibatches: ⌈n_val / B⌉ (0 without validation cells). */
int64_t clue_plan_val_batches(const clue_plan *p);

/* Whether global cell c is a training cell (not a validation cell). */
bool clue_plan_is_train(const clue_plan *p, int64_t c);

/* Global cell at position `pos` of an epoch's training order (pos < n_train). */
int64_t clue_plan_train_cell(clue_plan *p, int64_t epoch, int64_t pos);

/* Global cell at position `pos` of the validation order (pos < n_val). */
int64_t clue_plan_val_cell(const clue_plan *p, int64_t pos);

/* Global index into the filler pool of modality k for cell c in an epoch
 * (−1 when no training cell has modality k); the cell is held by the rank whose
 * pool_begin range contains it. */
int64_t clue_plan_filler_index(const clue_plan *p, int64_t epoch, int64_t c, int k);

/* Collective (an allreduce of B × n_mod bytes and an all-to-all of the rows).
 * Fills this rank's part of minibatch `step` of an epoch (train: positions
 * step·B … of the epoch's order; val: the step-th block of the validation order)
 * into mb: an equal block of the B positions per rank (clue_block_range), with
 * the rows of their cells (or filler cells) sent by the ranks holding them;
 * mb's targets point into the plan's buffers until the next fill. Returns the
 * number of global rows. */
int clue_plan_fill(clue_plan *p, const clue_dataset *d, const clue_inputs *in,
                   int64_t epoch, int64_t step, int validation, const clue_comm *comm,
                   clue_minibatch *mb);

#endif
