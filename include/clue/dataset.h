/* dataset.h — the cells of a run: modalities opened, cells paired across
 * modalities by obs names, a subset selected (train/test split), the selection
 * partitioned over ranks balanced by nonzeros, and this rank's shard read.
 *
 * All ranks pair and select the cells together, each reading one block of rows
 * of every file's metadata: no rank ever holds anything per cell of the whole
 * data set (beyond a CSC matrix's row lengths), and after loading each holds
 * only its shard (names, file rows, batch codes, counts) and O(ranks) layout. */
#ifndef CLUE_DATASET_H
#define CLUE_DATASET_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/config.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/h5ad.h"
#include "clue/strings.h"

/* Pairing of cells across n_mod modalities: the union of cells, in order of first
 * appearance (modality 0's order, then cells only in modality 1, ...), or the
 * global obs order of an .h5mu. */
typedef struct clue_pairing {
  int n_mod;
  int64_t n_cells;
  int64_t *row;         /* (n_cells × n_mod) row of cell c in modality k, −1 absent */
  clue_strings *names;  /* (n_cells) cell names */
} clue_pairing;

/* Pairs by obs names with a hash table. `what[k]` names modality k in messages
 * (e.g. "rna (data/rna.h5ad)"). Fails on a duplicated name within a modality. */
int clue_pairing_from_names(clue_strings *const *names, int n_mod,
                            const char *const *what, clue_pairing **out, clue_err *err);

/* Pairing from MuData obsmap arrays (maps[k][c]: 1-based row, 0 = absent). */
int clue_pairing_from_obsmap(const clue_strings *global_names,
                             int64_t *const *maps, int n_mod, clue_pairing **out,
                             clue_err *err);

/* Number of cells present in every one of the n_mod modalities. */
int64_t clue_pairing_n_complete(const clue_pairing *p);

void clue_pairing_free(clue_pairing *p);

typedef struct clue_dataset_mod {
  char name[CLUE_NAME_MAX];
  char what[CLUE_PATH_MAX + CLUE_NAME_MAX]; /* "rna (path/rna.h5ad)" for messages */
  h5ad_file *file;          /* open for the dataset's lifetime */
  h5ad_matrix_info info;    /* the matrix read (X or the configured layer) */
  int64_t n_features;
  clue_strings *var_names;  /* (n_features) */
  int64_t n_cells;          /* selected cells that have this modality (global) */
  clue_csr *x;              /* (local cells with the modality × n_features), rows in
                               the order of this rank's cells */
} clue_dataset_mod;

typedef struct clue_dataset {
  int n_mod;
  clue_dataset_mod mod[CLUE_MAX_MOD];
  int64_t n_cells;          /* selected cells, global, in pairing order */
  int n_batches;            /* ≥ 1 */
  clue_strings *batch_names; /* (n_batches); "" when there is no batch_key */
  int n_ranks;              /* size of the communicator the dataset was loaded on */
  int64_t *rank_begin;      /* (n_ranks + 1): rank r owns cells [rank_begin[r], rank_begin[r+1]) */
  int64_t local_begin, local_end; /* this rank's cells */
  int64_t *local_row;       /* ((local_end − local_begin) × n_mod): row in mod[k].x, −1 */
  int64_t *local_file_row;  /* ((local_end − local_begin) × n_mod): row in modality k's
                               file, −1 absent */
  int32_t *local_batch;     /* (local_end − local_begin) batch code in [0, n_batches);
                               0 without batch_key */
  clue_strings *local_names; /* (local_end − local_begin) cell names */
  int64_t bytes_read;       /* matrix bytes this rank read (data + indices + indptr) */
} clue_dataset;

/* Collective. Loads the modalities of cfg (separate .h5ad files or one .h5mu),
 * pairs the cells, keeps `cells` (train: split_key value != test_value, or all
 * cells without split_key; test: == test_value; all), partitions the kept cells
 * over ranks balanced by their nonzeros, and reads this rank's rows. Checks the
 * values: counts must be finite and non-negative for nb/bernoulli modalities.
 * Fails on duplicated obs names, on modalities sharing no cell (unless
 * cfg->allow_unpaired), on a missing batch/split column, and on an empty selection. */
int clue_dataset_load(const clue_config *cfg, clue_cells cells, const clue_comm *comm,
                      clue_dataset **out, clue_err *err);

/* Collective (closes files). NULL is allowed. */
void clue_dataset_free(clue_dataset *d);

/* Rank owning global cell c. */
int clue_dataset_owner(const clue_dataset *d, int64_t c);

#endif
