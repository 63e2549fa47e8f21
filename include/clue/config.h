/* config.h — the run configuration: a plain struct with every setting, loaded
 * from YAML (libyaml) with defaults from the method note, overridden by
 * `--set a.b=v`, validated, written back as YAML, and broadcast from rank 0.
 *
 * The struct is plain data (fixed-size arrays, no pointers) so that it can be
 * broadcast as bytes. "auto" settings are stored as -1 and resolved where they
 * are used (the resolved config keeps "auto"; the log says what it became). */
#ifndef CLUE_CONFIG_H
#define CLUE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "clue/comm.h"
#include "clue/error.h"

#define CLUE_MAX_MOD 8
#define CLUE_NAME_MAX 64
#define CLUE_PATH_MAX 4096
#define CLUE_AUTO (-1)

typedef enum { CLUE_LIK_NB = 0, CLUE_LIK_BERNOULLI, CLUE_LIK_NORMAL } clue_likelihood;
typedef enum { CLUE_PREP_PCA = 0, CLUE_PREP_LSI, CLUE_PREP_NONE } clue_preprocess;
typedef enum { CLUE_NORM_LOG1P = 0, CLUE_NORM_CLR, CLUE_NORM_NONE } clue_normalize;
typedef enum { CLUE_OPT_RMSPROP = 0, CLUE_OPT_ADAM } clue_optimizer;
typedef enum { CLUE_CELLS_ALL = 0, CLUE_CELLS_TRAIN, CLUE_CELLS_TEST } clue_cells;
typedef enum { CLUE_NAN_STOP = 0, CLUE_NAN_SKIP } clue_on_nan;
/* Cells the predictions' calibration is fitted on (calib.h). */
typedef enum { CLUE_CALIB_ALL = 0, CLUE_CALIB_VALIDATION, CLUE_CALIB_OFF } clue_calibration;
typedef enum { CLUE_PSEUDO_OFF = 0, CLUE_PSEUDO_MNN, CLUE_PSEUDO_BRIDGE } clue_pseudo_method;

/* train.pseudo: partners for cells missing a modality (see pseudo.h) */
typedef struct clue_pseudo_config {
  clue_pseudo_method method; /* off | mnn (default) | bridge */
  int k;            /* neighbours searched (mnn: mutual within k), default 5 */
  double weight;    /* chance a partnered cell is paired with its partner in a
                       minibatch once ramped up, default 0.5 */
  int64_t start;    /* step of the first pairing, default 200 */
  int every;        /* steps between pairings; CLUE_AUTO (default):
                       max(200, ⌈steps per epoch / 4⌉) */
  int64_t ramp;     /* steps over which the chance grows from 0 to weight, default 200 */
  int64_t max_cells; /* cells searched per set and pairing, a keyed random draw
                        when more (default 50,000: the search is quadratic) */
} clue_pseudo_config;

/* data.modalities.<name> */
typedef struct clue_modality_config {
  char name[CLUE_NAME_MAX];  /* the key under data.modalities; for .h5mu: mod/<name> */
  char file[CLUE_PATH_MAX];  /* .h5ad path resolved against the config's folder; "" with data.file */
  char layer[CLUE_NAME_MAX]; /* "X" (default) or the name of a layer under layers/ */
  clue_likelihood likelihood; /* nb (default) | bernoulli | normal */
  clue_preprocess preprocess; /* pca (default) | lsi | none */
  clue_normalize normalize;   /* log1p (default) | clr | none: applied before pca */
  int features;     /* decoded features: CLUE_AUTO (default), 0 = all, N = top N
                       (highly variable for pca, most often open for lsi) */
  int n_components; /* encoder input width, default 100 (pca capped below n_features) */
  double weight;    /* weight of this modality's self ELBO, default 1 */
} clue_modality_config;

/* depth × width of a stack of hidden layers */
typedef struct clue_mlp_config {
  int depth;
  int width;
} clue_mlp_config;

typedef struct clue_config {
  int version; /* 1 */
  char path[CLUE_PATH_MAX]; /* the config file loaded ("" when built from defaults) */

  /* data */
  int n_mod;
  clue_modality_config mod[CLUE_MAX_MOD];
  char h5mu_file[CLUE_PATH_MAX]; /* data.file: one .h5mu holding every modality, or "" */
  char batch_key[CLUE_NAME_MAX]; /* data.batch_key, "" = no batch covariate */
  char split_key[CLUE_NAME_MAX]; /* data.split_key, "" = every cell trains */
  char test_value[CLUE_NAME_MAX]; /* data.test_value, default "test" */
  bool allow_unpaired; /* data.allow_unpaired, default false: without it, modalities
                          that share no cell are refused (almost always a naming bug) */

  /* model */
  int latent_dim;                /* d per block, default 50 */
  clue_mlp_config encoder;       /* default 2 × 256 */
  clue_mlp_config decoder;       /* default 2 × 256 */
  clue_mlp_config discriminator; /* default 2 × 256 */
  double dropout;                /* default 0.2 */
  bool normalize_u;              /* default true */

  /* loss weights */
  double lam_data;       /* loss.data, 1 */
  double lam_kl;         /* loss.kl, 1 */
  double lam_align;      /* loss.align (adversarial), 0.02 */
  double lam_cross;      /* loss.cross (joint cross), 0.02 */
  double lam_real_cross; /* loss.real_cross, 0 */
  double lam_cos;        /* loss.cos, 0.02 */

  /* train */
  int batch_size;          /* 128 */
  double lr;               /* 2e-3 */
  int64_t lr_warmup;       /* steps of linear warm-up of the learning rate, 0 = none */
  clue_optimizer optimizer; /* rmsprop */
  int max_epochs;          /* CLUE_AUTO */
  int64_t max_steps;       /* 0 = no limit on generator steps */
  int align_burnin;        /* CLUE_AUTO */
  int patience;            /* CLUE_AUTO */
  int reduce_lr_patience;  /* CLUE_AUTO */
  double val_split;        /* 0.1 */
  double paired_fraction;  /* share of each minibatch from cells observed in ≥ 2
                              modalities when some cells are not (0: off), 0.5 */
  clue_pseudo_config pseudo; /* train.pseudo */
  uint64_t seed;           /* 0 */
  int checkpoint_every;    /* epochs between checkpoints, 1 */
  double checkpoint_seconds; /* at least this long between periodic checkpoints, 60 */
  bool early_stopping;     /* true */
  clue_on_nan on_nan;      /* train.on_nan: stop (default) | skip a step whose loss or
                              gradients are NaN/Inf, halving the learning rate */
  clue_calibration calibration; /* train.calibration: validation (default) | all | off */
  int64_t reference_cells; /* train.reference_cells: kept for clue predict, 10000 (0: none) */

  /* embed */
  clue_cells embed_cells; /* embed.cells: all (default) | train | test */

  /* output */
  char out_dir[CLUE_PATH_MAX]; /* output.dir, default "runs/clue" (relative to cwd) */
} clue_config;

/* Fills cfg with every default (no modalities). */
void clue_config_defaults(clue_config *cfg);

/* Loads a YAML file on top of the defaults. Paths inside are resolved against
 * the file's folder. Unknown keys, wrong types and out-of-range values fail with
 * the file, the key's path and the allowed values. */
int clue_config_load(const char *path, clue_config *cfg, clue_err *err);

/* Same as clue_config_load for YAML text; base_dir resolves relative paths
 * (NULL or "" keeps them as written); `what` names the text in messages
 * (NULL: "<string>"). */
int clue_config_load_string(const char *yaml, const char *base_dir, const char *what,
                            clue_config *cfg, clue_err *err);

/* Applies one override "a.b.c=value" (value is YAML scalar syntax); relative
 * paths are resolved against the current directory. Same checks as loading. */
int clue_config_set(clue_config *cfg, const char *assignment, clue_err *err);

/* Checks the whole config for consistency (at least 2 modalities, each with a
 * file or data.file set, ...). */
int clue_config_validate(const clue_config *cfg, clue_err *err);

/* The config as YAML text, every key written (auto as "auto"); that text loads
 * back to an equal config. Returns a malloc'd string, NULL on out of memory. */
char *clue_config_to_yaml(const clue_config *cfg);

/* True when a and b hold the same settings, modality order included (the path
 * they were loaded from is not compared). */
bool clue_config_equal(const clue_config *a, const clue_config *b);

/* Collective: rank 0's config is copied to every rank. */
void clue_config_bcast(const clue_comm *comm, clue_config *cfg);

/* Names of enum values as written in YAML ("nb", "lsi", ...). */
const char *clue_likelihood_name(clue_likelihood v);
const char *clue_preprocess_name(clue_preprocess v);
const char *clue_normalize_name(clue_normalize v);
const char *clue_optimizer_name(clue_optimizer v);
const char *clue_cells_name(clue_cells v);
const char *clue_on_nan_name(clue_on_nan v);
const char *clue_calibration_name(clue_calibration v);
const char *clue_pseudo_method_name(clue_pseudo_method v);

/* Index of the modality called name, or -1. */
int clue_config_find_modality(const clue_config *cfg, const char *name);

#endif
