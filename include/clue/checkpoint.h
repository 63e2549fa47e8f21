/* checkpoint.h — everything a run needs to embed cells or to continue training,
 * in one HDF5 file: the resolved config, the network's shape and parameters (one
 * dataset per named tensor, float32), the best weights so far, optimiser state,
 * BatchNorm running statistics, the fitted preprocessing of every modality, the
 * batch categories and the position in training. A 512-byte header in front of
 * the HDF5 data holds the size and CRC-32 of the rest, checked before HDF5 parses
 * the file; every dataset also carries its own CRC-32 attribute.
 *
 * Saving writes "<path>.tmp.<pid>", flushes it to disk (fsync) and renames it
 * over <path>; the previous checkpoint stays intact until the new one is whole.
 * Layout: /config (string), /spec, /batches, /prep/<modality>, /params/{gen,disc,buf}/<tensor>,
 * /best/{gen,disc,buf}/<tensor>, /optim/{gen,disc}/{v,m}/<tensor>, attributes of /state,
 * and with train.pseudo /pseudo/pairs (int64 triples) with attribute step. */
#ifndef CLUE_CHECKPOINT_H
#define CLUE_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/calib.h"
#include "clue/error.h"
#include "clue/model.h"
#include "clue/optim.h"
#include "clue/prep.h"
#include "clue/refcells.h"
#include "clue/strings.h"

#define CLUE_CKPT_FORMAT_VERSION 1

/* Position and schedule state of a training run. */
typedef struct clue_train_state {
  int64_t epoch;        /* completed epochs */
  int64_t step;         /* completed generator steps */
  double lr;            /* current learning rate */
  double best_loss;     /* best monitored loss after burn-in (INFINITY: none) */
  int64_t best_epoch;   /* epoch of best_loss (0: none) */
  int64_t bad_epochs;   /* epochs since best_loss improved (early stopping) */
  double plateau_best;  /* best loss for the learning-rate schedule */
  int64_t plateau_bad;  /* epochs since plateau_best improved */
  bool finished;        /* training ended (max epochs/steps or early stop) */
  int64_t partial_steps; /* steps of the current, unfinished epoch */
  clue_losses partial;  /* sum of their training losses */
  double seconds;       /* training time so far */
} clue_train_state;

/* Copies of the three arenas' values (the best epoch's weights). */
typedef struct clue_snapshot {
  real *gen, *disc, *buf;
} clue_snapshot;

typedef struct clue_ckpt {
  char *config_yaml;              /* resolved config text */
  clue_model *model;              /* current weights */
  int n_mod;
  clue_prep *prep[CLUE_K];
  clue_strings *batch_names;      /* (n_batches) */
  bool has_optim;
  clue_optim opt_gen, opt_disc;
  bool has_best;
  clue_snapshot best;
  clue_train_state state;
  bool has_pseudo;                /* train.pseudo: partners found at pseudo_step */
  int64_t pseudo_step;
  int64_t n_pseudo;
  int64_t *pseudo;                /* (n_pseudo × 3) cell, modality, partner (pseudo.h) */
  clue_calib *calib[CLUE_K][CLUE_K]; /* [from][to]: predictions' calibration of a
                                      finished run (calib.h), or NULL */
  clue_refcells *refcells;        /* reference cells of a finished run (refcells.h), or NULL */
} clue_ckpt;

/* Writes c to path atomically (temporary file, fsync, rename). Not collective:
 * call it on one rank. Refuses (CLUE_ENUMERIC, nothing written) when a weight,
 * statistic or optimiser value is NaN or infinite: a checkpoint is always finite. */
int clue_ckpt_save(const char *path, const clue_ckpt *c, clue_err *err);

/* Reads a checkpoint (any rank, independently). Allocates the model, the
 * preprocessing, optimiser state and the best weights found in the file; c is
 * zeroed first. Fails naming the file (and the object) on a file that does not
 * match its header, a missing or corrupted dataset (checksum mismatch), a NaN/Inf value, a format version it does not
 * know, or shapes that do not match the stored network spec. */
int clue_ckpt_load(const char *path, clue_ckpt *c, clue_err *err);

/* The file starts with a header of CLUE_CKPT_HEADER_BYTES (text: a magic line,
 * data_bytes and data_crc32 of the HDF5 data after it, zero padding); HDF5 sees it
 * as the user block. */
#define CLUE_CKPT_HEADER_BYTES 512

/* Fills head with the header for data_bytes bytes of HDF5 data of CRC-32
 * data_crc. Returns 0 (-1 only if the text did not fit, which cannot happen). */
int clue_ckpt_header_format(char head[CLUE_CKPT_HEADER_BYTES], uint64_t data_bytes,
                            uint32_t data_crc);

/* Checks the whole file at path against its header before HDF5 parses any of it.
 * A file that starts with the HDF5 signature (written before the header existed)
 * passes with *has_header false. Fails naming the file on an empty file, a missing
 * or damaged header, a size that differs from the header's or a CRC mismatch. */
int clue_ckpt_verify_file(const char *path, bool *has_header, clue_err *err);

/* Frees what clue_ckpt_load allocated (not what a caller lent for saving). */
void clue_ckpt_release(clue_ckpt *c);

/* Snapshot helpers. */
int clue_snapshot_alloc(clue_snapshot *s, const clue_model *m, clue_err *err);
void clue_snapshot_take(clue_snapshot *s, const clue_model *m);
void clue_snapshot_restore(const clue_snapshot *s, clue_model *m);
void clue_snapshot_release(clue_snapshot *s);

#endif
