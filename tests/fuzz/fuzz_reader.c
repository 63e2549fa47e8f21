/* fuzz_reader.c — one pass of every reader entry point over a file, with
 * checks of the promises of include/clue/h5ad.h and dataset.h on what comes
 * back (shapes, CSR structure, codes in range). */
#include "fuzz_reader.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clue/config.h"
#include "clue/dataset.h"
#include "clue/h5ad.h"

/* Reads larger than this many matrix values are skipped: a few bytes of HDF5 can
 * declare a terabyte-sized (unallocated) dataset, and reading it is correct. */
#define FUZZ_MAX_VALUES ((int64_t)1 << 20)

static void promise(int ok, const char *what) {
  if (ok) return;
  fprintf(stderr, "fuzz: broken promise: %s\n", what);
  abort();
}

void fuzz_reader_init(void) {
  int inited = 0;
  MPI_Initialized(&inited);
  if (!inited) MPI_Init(NULL, NULL);
  h5ad_quiet_errors();
}

const char *fuzz_reader_scratch(const char *suffix) {
  static char path[512];
  const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR");
  snprintf(path, sizeof path, "%s/clue-fuzz-%ld%s", dir ? dir : "/tmp", (long)getpid(),
           suffix);
  return path;
}

static void check_csr(const clue_csr *m, int64_t n_rows, int64_t n_cols) {
  promise(m->n_rows == n_rows && m->n_cols == n_cols, "h5ad_read_rows shape");
  clue_err err;
  promise(clue_csr_validate(m, "rows", &err) == CLUE_OK, "h5ad_read_rows gives a valid CSR");
  for (int64_t r = 0; r < m->n_rows; r++)
    for (int64_t i = m->indptr[r] + 1; i < m->indptr[r + 1]; i++)
      promise(m->indices[i - 1] < m->indices[i], "columns ascending within a row");
}

static void read_matrix(h5ad_file *f, const char *layer) {
  clue_err err;
  h5ad_matrix_info info;
  if (h5ad_matrix_info_get(f, layer, &info, &err) != CLUE_OK) return;
  promise(info.n_rows >= 0 && info.n_cols >= 0 && info.nnz >= 0, "matrix info sizes");
  if (info.n_rows > FUZZ_MAX_VALUES || info.nnz > FUZZ_MAX_VALUES ||
      (info.kind == H5AD_DENSE && info.n_rows * info.n_cols > FUZZ_MAX_VALUES))
    return;
  int64_t *nnz = NULL;
  if (h5ad_read_row_nnz(f, layer, &nnz, &err) == CLUE_OK) {
    for (int64_t r = 0; r < info.n_rows; r++) promise(nnz[r] >= 0, "row nnz >= 0");
    free(nnz);
  }
  int64_t n = info.n_rows, half = (n + 1) / 2;
  int64_t *rows = malloc((size_t)(n + 1) * sizeof *rows);
  for (int64_t i = 0; i < n; i++) rows[i] = i;
  clue_csr *m = NULL;
  if (h5ad_read_rows(f, layer, rows, n, &m, &err) == CLUE_OK) {
    check_csr(m, n, info.n_cols);
    clue_csr_free(m);
  }
  for (int64_t i = 0; i < half; i++) rows[i] = 2 * i;
  m = NULL;
  if (h5ad_read_rows(f, layer, rows, half, &m, &err) == CLUE_OK) {
    check_csr(m, half, info.n_cols);
    clue_csr_free(m);
  }
  free(rows);
}

static void read_columns(h5ad_file *f) {
  clue_err err;
  clue_strings *cols = NULL;
  if (h5ad_obs_column_names(f, &cols, &err) != CLUE_OK) return;
  for (int64_t c = 0; c < cols->n && c < 16; c++) {
    h5ad_column *col = NULL;
    if (h5ad_read_obs_column(f, cols->s[c], &col, &err) != CLUE_OK) continue;
    char buf[128];
    for (int64_t i = 0; i < col->n && i < 4096; i++) {
      if (col->kind == H5AD_COL_CATEGORICAL)
        promise(col->codes[i] >= -1 && col->codes[i] < col->categories->n,
                "categorical codes in range");
      h5ad_column_label(col, i, buf, sizeof buf);
    }
    h5ad_column_free(col);
  }
  clue_strings_free(cols);
}

static void read_obsm(h5ad_file *f) {
  clue_err err;
  clue_strings *keys = NULL;
  if (h5ad_obsm_names(f, &keys, &err) != CLUE_OK) return;
  int64_t n = h5ad_n_obs(f);
  for (int64_t k = 0; k < keys->n && k < 8 && n <= FUZZ_MAX_VALUES; k++) {
    float *x = NULL;
    int64_t n_cols = 0;
    if (h5ad_read_obsm_rows(f, keys->s[k], 0, n, &x, &n_cols, &err) == CLUE_OK) {
      promise(n_cols >= 0, "obsm width");
      free(x);
    }
    x = NULL;
    if (n > 1 && h5ad_read_obsm_rows(f, keys->s[k], 1, n - 1, &x, &n_cols, &err) == CLUE_OK)
      free(x);
  }
  clue_strings_free(keys);
}

/* Every per-object read on one AnnData object (root or mod/<name>). */
static void read_object(const char *path, const char *group, const clue_comm *comm) {
  h5ad_file *f = NULL;
  clue_err err;
  if (h5ad_open(path, group, comm, &f, &err) != CLUE_OK) {
    promise(err.msg[0] != '\0', "a failure has a message");
    return;
  }
  promise(h5ad_n_obs(f) >= 0 && h5ad_n_vars(f) >= 0, "shape >= 0");
  clue_strings *names = NULL;
  if (h5ad_read_obs_names(f, &names, &err) == CLUE_OK) {
    promise(names->n == h5ad_n_obs(f), "obs names count");
    clue_strings_free(names);
  }
  names = NULL;
  if (h5ad_read_var_names(f, &names, &err) == CLUE_OK) {
    promise(names->n == h5ad_n_vars(f), "var names count");
    clue_strings_free(names);
  }
  read_columns(f);
  if (!h5ad_is_mudata_root(f)) {
    read_matrix(f, NULL);
    clue_strings *layers = NULL;
    if (h5ad_layer_names(f, &layers, &err) == CLUE_OK) {
      for (int64_t i = 0; i < layers->n && i < 4; i++) read_matrix(f, layers->s[i]);
      clue_strings_free(layers);
    }
    read_obsm(f);
  }
  h5ad_close(f);
}

/* The first obs column of an object, for data.batch_key ("" when none). */
static void first_column(const char *path, const char *group, const clue_comm *comm,
                         char *out, size_t size) {
  out[0] = '\0';
  h5ad_file *f = NULL;
  clue_err err;
  if (h5ad_open(path, group, comm, &f, &err) != CLUE_OK) return;
  clue_strings *cols = NULL;
  if (h5ad_obs_column_names(f, &cols, &err) == CLUE_OK) {
    if (cols->n > 0 && strlen(cols->s[0]) < size) snprintf(out, size, "%s", cols->s[0]);
    clue_strings_free(cols);
  }
  h5ad_close(f);
}

/* Matrix sizes of an object are small enough to load whole. */
static int small_enough(const char *path, const char *group, const clue_comm *comm) {
  h5ad_file *f = NULL;
  clue_err err;
  if (h5ad_open(path, group, comm, &f, &err) != CLUE_OK) return 1; /* the load fails */
  h5ad_matrix_info info;
  int ok = 1;
  if (h5ad_matrix_info_get(f, NULL, &info, &err) == CLUE_OK)
    ok = info.n_rows <= FUZZ_MAX_VALUES && info.nnz <= FUZZ_MAX_VALUES &&
         (info.kind != H5AD_DENSE || info.n_rows * info.n_cols <= FUZZ_MAX_VALUES);
  h5ad_close(f);
  return ok;
}

static void check_dataset(const clue_dataset *d, const clue_config *cfg) {
  promise(d->n_cells > 0 && d->n_batches >= 1, "dataset sizes");
  int64_t nl = d->local_end - d->local_begin;
  promise(d->local_names && d->local_names->n == nl, "names of the local cells");
  for (int64_t i = 0; i < nl; i++)
    promise(d->local_batch[i] >= 0 && d->local_batch[i] < d->n_batches,
            "batch codes in range");
  for (int k = 0; k < d->n_mod; k++) {
    const clue_csr *x = d->mod[k].x;
    clue_err err;
    promise(x && clue_csr_validate(x, "x", &err) == CLUE_OK, "dataset matrix valid");
    if (cfg->mod[k].likelihood == CLUE_LIK_NORMAL) continue;
    for (int64_t i = 0; i < clue_csr_nnz(x); i++)
      promise(isfinite(x->data[i]) && x->data[i] >= 0, "counts finite and >= 0");
  }
}

static void try_load(const clue_config *cfg, clue_cells cells, const clue_comm *comm) {
  clue_dataset *d = NULL;
  clue_err err;
  if (clue_dataset_load(cfg, cells, comm, &d, &err) == CLUE_OK) {
    check_dataset(d, cfg);
    clue_dataset_free(d);
  } else {
    promise(err.msg[0] != '\0', "a failure has a message");
  }
}

/* clue_dataset_load with every modality of an .h5mu, or twice the same .h5ad;
 * then again with the first obs column as batches and as the split. */
static void load_dataset(const char *path, const clue_strings *mods, const clue_comm *comm) {
  clue_config cfg;
  clue_config_defaults(&cfg);
  char g0[CLUE_NAME_MAX + 8] = "", set[CLUE_NAME_MAX + 64];
  clue_err err;
  if (mods) {
    snprintf(cfg.h5mu_file, sizeof cfg.h5mu_file, "%s", path);
    for (int64_t i = 0; i < mods->n && cfg.n_mod < CLUE_MAX_MOD; i++) {
      if (strlen(mods->s[i]) >= CLUE_NAME_MAX) continue;
      snprintf(set, sizeof set, "data.modalities.%s.layer=X", mods->s[i]);
      if (clue_config_set(&cfg, set, &err) != CLUE_OK) continue;
      char g[CLUE_NAME_MAX + 8];
      snprintf(g, sizeof g, "mod/%s", mods->s[i]);
      if (!small_enough(path, g, comm)) return;
      if (!g0[0]) snprintf(g0, sizeof g0, "%s", g);
    }
    if (cfg.n_mod == 0) return;
  } else {
    if (!small_enough(path, NULL, comm)) return;
    clue_config_set(&cfg, "data.modalities.a.likelihood=nb", &err);
    clue_config_set(&cfg, "data.modalities.b.likelihood=normal", &err);
    snprintf(cfg.mod[0].file, sizeof cfg.mod[0].file, "%s", path);
    snprintf(cfg.mod[1].file, sizeof cfg.mod[1].file, "%s", path);
  }
  try_load(&cfg, CLUE_CELLS_ALL, comm);
  first_column(path, mods ? g0 : NULL, comm, cfg.batch_key, sizeof cfg.batch_key);
  if (!cfg.batch_key[0]) return;
  snprintf(cfg.split_key, sizeof cfg.split_key, "%s", cfg.batch_key);
  try_load(&cfg, CLUE_CELLS_TRAIN, comm);
  try_load(&cfg, CLUE_CELLS_TEST, comm);
}

void fuzz_reader_run(const char *path) {
  clue_comm comm = clue_comm_world();
  clue_err err;
  if (h5mu_is_mudata(path)) {
    clue_strings *mods = NULL, *names = NULL;
    if (h5mu_read_obs_names(path, &names, &err) == CLUE_OK) clue_strings_free(names);
    read_object(path, NULL, &comm);
    if (h5mu_mod_names(path, &mods, &err) != CLUE_OK) return;
    for (int64_t i = 0; i < mods->n && i < 4; i++) {
      int64_t *map = NULL, n = 0;
      if (h5mu_read_obsmap(path, mods->s[i], &map, &n, &err) == CLUE_OK) free(map);
      char group[CLUE_NAME_MAX + 8];
      if (strlen(mods->s[i]) >= CLUE_NAME_MAX) continue;
      snprintf(group, sizeof group, "mod/%s", mods->s[i]);
      read_object(path, group, &comm);
    }
    load_dataset(path, mods, &comm);
    clue_strings_free(mods);
  } else {
    read_object(path, NULL, &comm);
    load_dataset(path, NULL, &comm);
  }
}
