/* run_record.h — RUN/run.json: what a training run is (clue version, ranks,
 * threads, BLAS kernels, data shapes, schedule) and how far it got and how it
 * ended (running, finished and why, stopped by a signal, failed), rewritten by
 * `clue train` at the start and at the end of every start of the run, read by
 * `clue report`. Resumes are counted across starts. */
#ifndef CLUE_RUN_RECORD_H
#define CLUE_RUN_RECORD_H

#include <stdint.h>

#include "clue/config.h"
#include "clue/error.h"

#define CLUE_RUN_RESUMES_MAX 64

typedef struct clue_run_mod {
  int64_t cells;    /* training-set cells measured in the modality */
  int64_t features; /* features in the file */
  int64_t decoded;  /* features the decoder models */
  int64_t components; /* encoder input (PCA/LSI components) */
} clue_run_mod;

typedef struct clue_run_record {
  int ranks, threads;
  char blas[256];      /* clue_blas_describe */
  char layout[256];    /* how the ranks share the layers ("" : data parallel only) */
  int64_t cells, cells_train, cells_val, cells_all_mods;
  clue_run_mod mod[CLUE_MAX_MOD];
  int64_t steps_per_epoch, max_epochs, align_burnin, patience;
  int64_t epoch, step, best_epoch;
  double seconds, lr;
  int starts;          /* 1 for a fresh run, +1 per --resume */
  int64_t resumed_at[CLUE_RUN_RESUMES_MAX]; /* epochs the resumes started from (the last ones) */
  int n_resumed;
  const char *status;  /* "running", "finished", "stopped", "failed" */
  char reason[512];    /* why it finished or stopped */
  double wall_seconds; /* of this start */
} clue_run_record;

/* From DIR/run.json of an earlier start: r->starts and r->resumed_at (0 and
 * none when absent or unreadable). */
void clue_run_record_previous(const char *dir, clue_run_record *r);

/* Writes DIR/run.json for cfg and r (through a temporary name). */
int clue_run_record_write(const char *dir, const clue_config *cfg, const clue_run_record *r,
                          clue_err *err);

#endif
