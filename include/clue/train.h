/* train.h — `clue train`: fit the preprocessing on the training cells, build the
 * model, run the alternating discriminator/generator steps data-parallel over the
 * ranks, validate every epoch, schedule the learning rate, stop early, keep the
 * best weights, and write the run folder (config.yaml, log.jsonl, checkpoint.h5). */
#ifndef CLUE_TRAIN_H
#define CLUE_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/checkpoint.h"
#include "clue/comm.h"
#include "clue/config.h"
#include "clue/dataset.h"
#include "clue/error.h"
#include "clue/gradsum.h"
#include "clue/plan.h"

typedef struct clue_train_opts {
  bool resume;  /* continue from <output.dir>/checkpoint.h5 when it exists */
  bool quiet;   /* no per-epoch lines on stdout (log.jsonl is still written) */
  bool overwrite; /* start a new run even if output.dir holds one (else refuse) */
  int threads;    /* BLAS threads per rank, for the run's record (run.json) */
} clue_train_opts;

/* Epoch counts resolved from "auto" (the method note's formulas). */
typedef struct clue_schedule {
  int64_t max_epochs, align_burnin, patience, reduce_lr_patience;
  double batches_per_epoch;
} clue_schedule;

/* Collective. One training step on a filled minibatch, as `clue train` runs it:
 * discriminator step (pass p->pass), sum of its gradients over the ranks,
 * optimiser step; then generator step (pass p->pass + 1), sum, optimiser step.
 * out gets the generator step's losses. The sums use MPI_Allreduce on comm. */
int clue_train_step(clue_model *m, clue_work *w, const clue_minibatch *mb,
                    const clue_loss_weights *lw, const clue_pass *p, clue_optim *opt_disc,
                    clue_optim *opt_gen, const clue_comm *comm, clue_losses *out,
                    clue_err *err);

/* Collective. clue_train_step with the gradient sums through gs (gradsum.h; the
 * node's shared memory when the ranks share one node), as `clue train` does.
 * When the arenas' gradients are attached to gs, the update is sharded: each
 * rank sums, checks and updates its parts of the parameters, in the one copy of
 * the weights in the window that every rank reads (bitwise the weights of the
 * unsharded step); each rank's optimiser state is current only in its parts:
 * call clue_train_gather_state before rank 0 reads the state (checkpoints). */
int clue_train_step_gs(clue_model *m, clue_work *w, const clue_minibatch *mb,
                       const clue_loss_weights *lw, const clue_pass *p, clue_optim *opt_disc,
                       clue_optim *opt_gen, clue_gradsum *gs, const clue_comm *comm,
                       clue_losses *out, clue_err *err);

/* Collective. When the model's gradients are attached to gs: when w's
 * encoders are split (clue_work_split_encoders), declares each encoder's
 * tensors owned by the rank that runs it (clue_gradsum_own: not summed,
 * updated there); when w's output layers are split (clue_work_split_outputs),
 * declares those layers split by rows (clue_gradsum_split_rows: not summed,
 * each rank updating its own rows) and lets the ranks run tiles of each other's
 * weight gradients there (clue_work_share_tiles; while gs keeps the gradients
 * attached). */
int clue_train_split_grads(clue_gradsum *gs, clue_model *m, clue_work *w, clue_err *err);

/* Collective. After sharded steps, gathers every rank's parts of the optimiser
 * state on rank 0 (nothing to do when gs does not go through the window). */
void clue_train_gather_state(clue_gradsum *gs, clue_model *m, clue_optim *opt_disc,
                             clue_optim *opt_gen);

/* Resolves the auto settings for n_cells training rows (batches per epoch:
 * n_cells · (1 − val_split) / batch_size, the method's). */
void clue_schedule_resolve(const clue_config *cfg, int64_t n_cells, clue_schedule *s);

/* The same for epochs of a known number of minibatches (mixed minibatches:
 * clue_plan_steps_per_epoch), so that the auto settings keep their length in
 * steps. */
void clue_schedule_resolve_bpe(const clue_config *cfg, double bpe, clue_schedule *s);

/* Collective. The whole of `clue train`. Returns CLUE_EINTERRUPTED after writing
 * a checkpoint when a rank received SIGTERM or SIGUSR1. */
int clue_train_run(const clue_config *cfg, const clue_train_opts *opts,
                   const clue_comm *comm, clue_err *err);

/* Collective. Fits the preprocessing of every modality on the dataset's cells
 * (all of them: call with the training selection). */
int clue_fit_preps(const clue_config *cfg, const clue_dataset *d, const clue_comm *comm,
                   int verbose, clue_prep **prep, clue_err *err);

/* Encoder inputs and decoder targets of this rank's rows of every modality. */
int clue_inputs_build(clue_prep *const *prep, const clue_dataset *d, clue_inputs *in,
                      clue_err *err);
void clue_inputs_release(clue_inputs *in);

/* The largest global batch (train.batch_size) measured to keep the quality of
 * B = 128 within 0.01 FOSCTTM with the learning rate kept (docs/scaling.md);
 * clue train warns above it. */
#define CLUE_BATCH_SAFE 512

/* Bridge cells a calibration is fitted on at the most (clue_train_calibrate). */
#define CLUE_CALIB_CELLS 10000

/* Salt of the keyed draw of those cells (clue_keyed_draw); the blend's fit
 * (clue_train_blend) draws the same ones. */
#define CLUE_CALIB_SALT 0x63616c6962ULL

/* Is local cell c of d (its rows `row` in the modalities) a bridge cell of the
 * pair: measured in both, and a validation cell of `val` when given. */
bool clue_train_is_bridge(const int64_t *row, int from, int to, const clue_plan *val,
                          int64_t c);

/* Collective. The bridge cells of the pair over all ranks. */
int64_t clue_train_count_bridge(const clue_dataset *d, int from, int to, const clue_plan *val,
                                const clue_comm *comm);

/* Collective. Fits ck->calib[from][to] (calib.h) for every ordered pair of
 * modalities on the cells of d measured in both — only the validation cells of
 * `val` when it is given and the pair has some, else all — (all of them, or a
 * draw of about max_cells that depends on the seed and not on the number of
 * ranks), with the model's current weights; a pair without such cells gets none. */
int clue_train_calibrate(clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                         const clue_plan *val, uint64_t seed, int64_t max_cells,
                         const clue_comm *comm, clue_err *err);

/* Collective. The reference cells of the checkpoint (refcells.h): the cells
 * of d measured in two or more modalities (all, or a keyed draw of about
 * max_cells that depends on the seed and not on the number of ranks), with the
 * model's current weights, into ck->refcells on every rank (blends not fitted).
 * own (may be NULL): a new array, per local cell its index among the reference
 * cells or −1 (NULL when there are none). */
int clue_train_refcells(clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                        uint64_t seed, int64_t max_cells, const clue_comm *comm,
                        int64_t **own, clue_err *err);

/* Collective, after clue_train_calibrate and clue_train_refcells. Fits the
 * blend of every ordered pair (refcells.h: clue_blend) on the pair's bridge
 * cells — the validation cells of `val` when given and the pair has some, else
 * all; a draw of about max_cells as for the calibration — predicting each as
 * clue predict does, but with the cell itself left out of its neighbours (`own`
 * from clue_train_refcells) and of the calibration lines when they were fitted
 * in this process (ck->calib has_fit_stats). Pairs without bridge cells, or
 * with fewer than two reference cells, stay unfitted. */
int clue_train_blend(clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                     const clue_plan *val, const int64_t *own, uint64_t seed,
                     int64_t max_cells, const clue_comm *comm, clue_err *err);

/* Installs SIGTERM/SIGUSR1 handlers that request a checkpoint-and-exit. */
void clue_train_install_signals(void);

/* True once a stop signal was received by this process. */
bool clue_train_stop_requested(void);

#endif
