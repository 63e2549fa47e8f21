/* sim.h — synthetic multi-modal single-cell data of any size (`clue simulate`).
 *
 * A latent-factor model: every cell belongs to a cell type (a cluster centre in
 * a latent space of dimension latent_dim) and a batch; its latent position z is
 * the centre plus Gaussian noise. Each modality has a loading matrix W
 * (features × latent_dim), a baseline per feature and a shift per batch and
 * feature; a cell's expected counts are μ = L · softmax(baseline + shift + W z),
 * with a log-normal library size L whose overall scale is calibrated so that the
 * expected fraction of nonzero entries is the requested density. Counts are
 * negative binomial (Gamma–Poisson; ATAC optionally binarised).
 *
 * Every random number is drawn from the counter-based RNG keyed by the cell's
 * global index (or the feature's), so the data do not depend on the number of
 * ranks or on how the cells are split into blocks. */
#ifndef CLUE_SIM_H
#define CLUE_SIM_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/csr.h"
#include "clue/error.h"

typedef enum { SIM_RNA = 0, SIM_ATAC = 1, SIM_ADT = 2, SIM_N_MOD = 3 } sim_modality;

typedef struct sim_options {
  char like[64];                  /* preset the shape came from ("" = custom) */
  int64_t n_cells;                /* global cells (≥ 1) */
  int64_t n_features[SIM_N_MOD];  /* features per modality; 0 = modality absent */
  double density[SIM_N_MOD];      /* expected fraction of nonzero entries, (0, 1) */
  double paired;       /* fraction of cells measured in every modality; the rest
                          are measured in one modality, chosen uniformly */
  int n_batches;       /* ≥ 1 */
  int n_types;         /* cell types, ≥ 1 */
  int latent_dim;      /* ≥ 1 */
  double test_fraction; /* obs 'split' == "test" with this probability */
  double batch_effect; /* sd of the per-feature batch shift (log scale) */
  bool atac_binary;    /* ATAC counts clipped to 0/1 */
  uint64_t seed;
} sim_options;

/* The default: the shape of the shared data set bmmc_cite_600 (600 cells, RNA
 * 1000 genes + ADT 134 proteins, all paired, 2 batches, 20 % test). */
void sim_options_defaults(sim_options *o);

/* Sets the shape (cells, modalities and features, batches, cell types) of a
 * shared data set by name; fails listing the known names. */
int sim_options_like(sim_options *o, const char *name, clue_err *err);

/* The names sim_options_like knows, comma-separated. */
const char *sim_preset_names(void);

/* Checks the options (two or more modalities, ranges); fails naming the option. */
int sim_options_check(const sim_options *o, clue_err *err);

/* "rna", "atac", "adt". */
const char *sim_modality_name(int mod);

/* What a modality's features are called in messages: "genes", "peaks", "proteins". */
const char *sim_feature_kind(int mod);

typedef struct sim_model sim_model;

/* The model's global parameters (loadings, baselines, batch shifts, centres,
 * calibrated library scales). Deterministic: every rank builds the same model. */
int sim_model_new(const sim_options *o, sim_model **out, clue_err *err);
void sim_model_free(sim_model *m);

/* The facts of one cell. */
typedef struct sim_cell {
  int type;      /* [0, n_types) */
  int batch;     /* [0, n_batches) */
  bool test;     /* split == "test" */
  unsigned mods; /* bit m set when the cell is measured in modality m */
} sim_cell;

/* The facts of global cell i. */
void sim_cell_get(const sim_model *m, int64_t i, sim_cell *c);

/* Generates modality `mod` for the global cells [begin, end): *counts gets one
 * row per cell measured in the modality, in order; *latent (when latent is not
 * NULL) their latent positions, a new (rows × latent_dim) row-major array. */
int sim_generate(const sim_model *m, int mod, int64_t begin, int64_t end,
                 clue_csr **counts, float **latent, clue_err *err);

/* ---- writing a data set ---- */

typedef enum { SIM_FORMAT_H5AD = 0, SIM_FORMAT_H5MU } sim_format;

/* Called on rank 0 after each round of blocks: `done` of `total` cells of the
 * modality `mod` are written. */
typedef void (*sim_progress_fn)(void *ctx, int mod, int64_t done, int64_t total);

typedef struct sim_summary {
  int64_t n_obs[SIM_N_MOD];   /* cells measured in each modality */
  int64_t nnz[SIM_N_MOD];     /* nonzero counts written */
  int64_t n_paired;           /* cells measured in every modality */
  int64_t n_test;             /* cells with split == "test" */
  char path[SIM_N_MOD][4200]; /* the file of each modality (the .h5mu for all) */
} sim_summary;

/* Collective. Writes the data set: for SIM_FORMAT_H5AD the folder `out` (made
 * if needed) gets <mod>.h5ad per modality; for SIM_FORMAT_H5MU the file `out`.
 * obs: cell_type, batch, split (categorical); obsm X_latent (the true z); X the
 * counts (csr_matrix float32). Each rank generates and writes its own blocks;
 * no rank holds more than a block of counts. Files are written under a temporary
 * name and renamed when complete. */
int sim_write(const sim_options *o, const char *out, sim_format format,
              const clue_comm *comm, sim_progress_fn progress, void *ctx,
              sim_summary *summary, clue_err *err);

#endif
