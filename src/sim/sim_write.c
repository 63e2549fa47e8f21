/* sim_write.c — writing a simulated data set: one .h5ad per modality or one
 * .h5mu. Cells are cut into blocks dealt to the ranks round-robin (block b to
 * rank b mod size), so that in each round the ranks' blocks follow each other
 * in rank order and X can be appended round by round: no rank holds more than
 * one block of counts, and the data do not depend on the number of ranks. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clue/h5ad_write.h"
#include "clue/sim.h"

#define BLOCK_VALUES (4 << 20) /* aim for about this many counts per block */

/* What every rank knows about the cells, and rank 0's obs material. */
typedef struct sim_plan {
  const sim_options *o;
  const sim_model *model;
  const clue_comm *comm;
  int64_t block;               /* cells per block */
  int64_t n_blocks;
  int64_t *block_row[SIM_N_MOD]; /* (n_blocks + 1) first modality row of each block */
  /* rank 0 only: */
  sim_cell *cells;             /* (n_cells) */
  char **names;                /* (n_cells) cell names */
  char *name_pool;
  clue_strings *type_names, *batch_names, *split_names;
  char provenance[1024];
} sim_plan;

static void plan_free(sim_plan *p) {
  for (int m = 0; m < SIM_N_MOD; m++) free(p->block_row[m]);
  free(p->cells);
  free(p->names);
  free(p->name_pool);
  clue_strings_free(p->type_names);
  clue_strings_free(p->batch_names);
  clue_strings_free(p->split_names);
}

static int digits(int64_t n) {
  int d = 1;
  while (n >= 10) {
    n /= 10;
    d++;
  }
  return d;
}

/* n labels "<prefix><k>" with k from first, zero-padded to a common width. */
static clue_strings *labels(const char *prefix, int64_t n, int64_t first, int min_width,
                            clue_err *err) {
  int width = digits(n - 1 + first);
  if (width < min_width) width = min_width;
  size_t len = strlen(prefix) + (size_t)width + 2;
  char *buf = clue_malloc((size_t)(n > 0 ? n : 1) * len, err);
  char **ptr = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *ptr, err);
  clue_strings *s = NULL;
  if (buf && ptr) {
    for (int64_t i = 0; i < n; i++) {
      ptr[i] = buf + (size_t)i * len;
      snprintf(ptr[i], len, "%s%0*lld", prefix, width, (long long)(i + first));
    }
    s = clue_strings_from((const char *const *)ptr, n, err);
  }
  free(buf);
  free(ptr);
  return s;
}

static int64_t block_size(const sim_options *o, int ranks) {
  double widest = 1;
  for (int m = 0; m < SIM_N_MOD; m++)
    if ((double)o->n_features[m] * o->density[m] > widest)
      widest = (double)o->n_features[m] * o->density[m];
  int64_t b = (int64_t)(BLOCK_VALUES / widest);
  b = b < 64 ? 64 : b > 65536 ? 65536 : b;
  int64_t share = (o->n_cells + ranks - 1) / ranks;
  return b < share ? b : share > 0 ? share : 1;
}

/* Every rank: block layout and the first row of each block in each modality;
 * rank 0 also keeps the cells' facts and names. */
static int plan_new(sim_plan *p, sim_summary *sum, clue_err *err) {
  const sim_options *o = p->o;
  int64_t n = o->n_cells;
  p->block = block_size(o, p->comm->size);
  p->n_blocks = (n + p->block - 1) / p->block;
  bool root = p->comm->rank == 0;
  int rc = CLUE_OK;
  for (int m = 0; m < SIM_N_MOD && rc == CLUE_OK; m++) {
    p->block_row[m] = clue_calloc((size_t)p->n_blocks + 1, sizeof *p->block_row[m], err);
    if (!p->block_row[m]) rc = CLUE_ENOMEM;
  }
  if (rc == CLUE_OK && root) {
    p->cells = clue_malloc((size_t)n * sizeof *p->cells, err);
    if (!p->cells) rc = CLUE_ENOMEM;
  }
  int64_t rows[SIM_N_MOD] = {0};
  int n_mods = 0;
  for (int m = 0; m < SIM_N_MOD; m++) n_mods += o->n_features[m] > 0;
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
    sim_cell c;
    sim_cell_get(p->model, i, &c);
    if (root) p->cells[i] = c;
    for (int m = 0; m < SIM_N_MOD; m++) rows[m] += (c.mods >> m) & 1u;
    sum->n_test += c.test;
    sum->n_paired += __builtin_popcount(c.mods) == n_mods;
    if ((i + 1) % p->block == 0 || i + 1 == n)
      for (int m = 0; m < SIM_N_MOD; m++) p->block_row[m][i / p->block + 1] = rows[m];
  }
  for (int m = 0; m < SIM_N_MOD; m++) sum->n_obs[m] = rows[m];
  return rc;
}

/* Rank 0: names and category labels. */
static int plan_labels(sim_plan *p, clue_err *err) {
  clue_strings *names = labels("cell", p->o->n_cells, 0, 6, err);
  p->type_names = labels("type", p->o->n_types, 1, 2, err);
  p->batch_names = labels("batch", p->o->n_batches, 1, 1, err);
  const char *split[2] = {"train", "test"};
  p->split_names = clue_strings_from(split, 2, err);
  if (!names || !p->type_names || !p->batch_names || !p->split_names) {
    clue_strings_free(names);
    return CLUE_ENOMEM;
  }
  /* Keep the names' storage; the wrapper is dropped. */
  p->names = names->s;
  p->name_pool = names->pool;
  free(names);
  const sim_options *o = p->o;
  snprintf(p->provenance, sizeof p->provenance,
           "clue simulate (clue %s): like=%s cells=%lld rna=%lld atac=%lld adt=%lld "
           "paired=%g batches=%d cell_types=%d latent_dim=%d split=%g batch_effect=%g "
           "rna_density=%g atac_density=%g adt_density=%g atac_binary=%s seed=%llu",
           CLUE_VERSION, o->like[0] ? o->like : "custom", (long long)o->n_cells,
           (long long)o->n_features[SIM_RNA], (long long)o->n_features[SIM_ATAC],
           (long long)o->n_features[SIM_ADT], o->paired, o->n_batches, o->n_types,
           o->latent_dim, o->test_fraction, o->batch_effect, o->density[SIM_RNA],
           o->density[SIM_ATAC], o->density[SIM_ADT], o->atac_binary ? "yes" : "no",
           (unsigned long long)o->seed);
  return CLUE_OK;
}

typedef struct obs_frame {
  h5ad_column col[3];
  h5ad_column *list[3];
  clue_strings *names;
} obs_frame;

static void frame_free(obs_frame *f) {
  for (int k = 0; k < 3; k++) free(f->col[k].codes);
  clue_strings_free(f->names);
}

/* Rank 0: obs of the cells measured in modality mod (mod < 0: all cells). */
static int frame_new(const sim_plan *p, int mod, int64_t n, obs_frame *f, clue_err *err) {
  memset(f, 0, sizeof *f);
  const char *col_names[3] = {"cell_type", "batch", "split"};
  clue_strings *cats[3] = {p->type_names, p->batch_names, p->split_names};
  const char **names = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *names, err);
  int rc = names ? CLUE_OK : CLUE_ENOMEM;
  for (int k = 0; k < 3 && rc == CLUE_OK; k++) {
    h5ad_column *c = &f->col[k];
    snprintf(c->name, sizeof c->name, "%s", col_names[k]);
    c->kind = H5AD_COL_CATEGORICAL;
    c->n = n;
    c->categories = cats[k];
    c->codes = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *c->codes, err);
    if (!c->codes) rc = CLUE_ENOMEM;
    f->list[k] = c;
  }
  for (int64_t i = 0, row = 0; rc == CLUE_OK && i < p->o->n_cells; i++) {
    const sim_cell *c = &p->cells[i];
    if (mod >= 0 && !((c->mods >> mod) & 1u)) continue;
    names[row] = p->names[i];
    f->col[0].codes[row] = c->type;
    f->col[1].codes[row] = c->batch;
    f->col[2].codes[row] = c->test ? 1 : 0;
    row++;
  }
  if (rc == CLUE_OK) {
    f->names = clue_strings_from(names, n, err);
    if (!f->names) rc = CLUE_ENOMEM;
  }
  free(names);
  return rc;
}

/* Collective: obs, var and uns of a modality (rank 0's arguments count). */
static int write_metadata(const sim_plan *p, h5ad_writer *w, int mod, int64_t n_obs,
                          clue_err *err) {
  obs_frame f;
  clue_strings *var = NULL;
  int rc = CLUE_OK;
  bool root = p->comm->rank == 0;
  if (root) {
    rc = frame_new(p, mod, n_obs, &f, err);
    const char *prefix = mod == SIM_RNA ? "gene" : mod == SIM_ATAC ? "peak" : "protein";
    if (rc == CLUE_OK) var = labels(prefix, p->o->n_features[mod], 1, 3, err);
    if (rc == CLUE_OK && !var) rc = CLUE_ENOMEM;
  }
  rc = clue_comm_agree(p->comm, rc, err);
  if (rc == CLUE_OK)
    rc = h5ad_writer_obs(w, root ? f.names : NULL, root ? f.list : NULL, 3, err);
  if (rc == CLUE_OK) rc = h5ad_writer_var(w, var, err);
  if (rc == CLUE_OK) rc = h5ad_writer_uns_string(w, "clue_simulate", p->provenance, err);
  if (root) frame_free(&f);
  clue_strings_free(var);
  return rc;
}

/* Collective: X and obsm/X_latent of modality mod, round by round. */
static int write_counts(const sim_plan *p, h5ad_writer *w, int mod, sim_progress_fn progress,
                        void *ctx, int64_t *nnz, clue_err *err) {
  const clue_comm *c = p->comm;
  int64_t rounds = (p->n_blocks + c->size - 1) / c->size;
  int64_t total = p->block_row[mod][p->n_blocks];
  int D = p->o->latent_dim;
  int rc = CLUE_OK;
  for (int64_t r = 0; r < rounds && rc == CLUE_OK; r++) {
    int64_t b = r * c->size + c->rank;
    int64_t begin = b < p->n_blocks ? b * p->block : p->o->n_cells;
    int64_t end = b < p->n_blocks ? begin + p->block : p->o->n_cells;
    if (end > p->o->n_cells) end = p->o->n_cells;
    int64_t row = b < p->n_blocks ? p->block_row[mod][b] : total;
    clue_csr *x = NULL;
    float *z = NULL;
    rc = sim_generate(p->model, mod, begin, end, &x, &z, err);
    rc = clue_comm_agree(c, rc, err);
    if (rc == CLUE_OK) rc = h5ad_writer_x_csr_append(w, row, x, err);
    if (rc == CLUE_OK) rc = h5ad_writer_obsm(w, "X_latent", D, row, x->n_rows, z, err);
    if (rc == CLUE_OK) *nnz += clue_csr_nnz(x);
    clue_csr_free(x);
    free(z);
    int64_t done_blocks = (r + 1) * c->size;
    int64_t done = done_blocks >= p->n_blocks ? total : p->block_row[mod][done_blocks];
    if (rc == CLUE_OK && progress && c->rank == 0) progress(ctx, mod, done, total);
  }
  clue_comm_sum_int64(c, nnz, 1);
  return rc;
}

static int write_mod(const sim_plan *p, h5ad_writer *w, int mod, sim_progress_fn progress,
                     void *ctx, sim_summary *sum, clue_err *err) {
  int rc = write_metadata(p, w, mod, sum->n_obs[mod], err);
  if (rc == CLUE_OK) rc = write_counts(p, w, mod, progress, ctx, &sum->nnz[mod], err);
  return rc;
}

static int make_folder(const char *path, clue_err *err) {
  char buf[4096];
  if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
    return clue_fail(err, CLUE_EINVAL, "path too long: %s", path);
  for (char *s = buf + 1;; s++) {
    if (*s != '/' && *s != '\0') continue;
    char keep = *s;
    *s = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return clue_fail(err, CLUE_EIO, "cannot create folder %s: %s", buf, strerror(errno));
    *s = keep;
    if (!keep) break;
  }
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
    return clue_fail(err, CLUE_EIO, "%s exists and is not a folder", path);
  return CLUE_OK;
}

static int write_h5ad_files(const sim_plan *p, const char *out, sim_progress_fn progress,
                            void *ctx, sim_summary *sum, clue_err *err) {
  int rc = p->comm->rank == 0 ? make_folder(out, err) : CLUE_OK;
  rc = clue_comm_agree(p->comm, rc, err);
  for (int mod = 0; mod < SIM_N_MOD && rc == CLUE_OK; mod++) {
    if (p->o->n_features[mod] == 0) continue;
    snprintf(sum->path[mod], sizeof sum->path[mod], "%s/%s.h5ad", out, sim_modality_name(mod));
    h5ad_writer *w = NULL;
    rc = h5ad_writer_create(sum->path[mod], sum->n_obs[mod], p->o->n_features[mod], NULL,
                            p->comm, &w, err);
    if (rc) break;
    rc = write_mod(p, w, mod, progress, ctx, sum, err);
    if (rc)
      h5ad_writer_abort(w);
    else
      rc = h5ad_writer_commit(w, err);
  }
  return rc;
}

/* Rank 0: obsmap of modality mod (1-based rows, 0 = absent). */
static uint32_t *obsmap_new(const sim_plan *p, int mod, clue_err *err) {
  uint32_t *map = clue_malloc((size_t)p->o->n_cells * sizeof *map, err);
  if (!map) return NULL;
  uint32_t row = 0;
  for (int64_t i = 0; i < p->o->n_cells; i++)
    map[i] = (p->cells[i].mods >> mod) & 1u ? ++row : 0;
  return map;
}

static int write_h5mu_mods(const sim_plan *p, h5mu_writer *mu, sim_progress_fn progress,
                           void *ctx, sim_summary *sum, clue_err *err) {
  int rc = CLUE_OK;
  for (int mod = 0; mod < SIM_N_MOD && rc == CLUE_OK; mod++) {
    if (p->o->n_features[mod] == 0) continue;
    uint32_t *map = NULL;
    if (p->comm->rank == 0 && !(map = obsmap_new(p, mod, err))) rc = CLUE_ENOMEM;
    rc = clue_comm_agree(p->comm, rc, err);
    h5ad_writer *w = NULL;
    if (rc == CLUE_OK)
      rc = h5mu_writer_add_mod(mu, sim_modality_name(mod), sum->n_obs[mod],
                               p->o->n_features[mod], map, &w, err);
    free(map);
    if (rc == CLUE_OK) rc = write_mod(p, w, mod, progress, ctx, sum, err);
    if (w) {
      int end = h5mu_writer_end_mod(mu, w, err);
      if (rc == CLUE_OK) rc = end;
    }
  }
  return rc;
}

static int write_h5mu_file(const sim_plan *p, const char *out, sim_progress_fn progress,
                           void *ctx, sim_summary *sum, clue_err *err) {
  bool root = p->comm->rank == 0;
  clue_strings *all = NULL;
  int rc = CLUE_OK;
  if (root) {
    all = clue_strings_from((const char *const *)p->names, p->o->n_cells, err);
    if (!all) rc = CLUE_ENOMEM;
  }
  rc = clue_comm_agree(p->comm, rc, err);
  h5mu_writer *mu = NULL;
  if (rc == CLUE_OK) rc = h5mu_writer_create(out, all, NULL, p->comm, &mu, err);
  clue_strings_free(all);
  if (rc) return rc;
  obs_frame f;
  if (root) rc = frame_new(p, -1, p->o->n_cells, &f, err);
  rc = clue_comm_agree(p->comm, rc, err);
  if (rc == CLUE_OK) rc = h5mu_writer_obs(mu, root ? f.list : NULL, 3, err);
  if (root) frame_free(&f);
  if (rc == CLUE_OK) rc = write_h5mu_mods(p, mu, progress, ctx, sum, err);
  if (rc) {
    h5mu_writer_abort(mu);
    return rc;
  }
  for (int mod = 0; mod < SIM_N_MOD; mod++)
    if (p->o->n_features[mod] > 0) snprintf(sum->path[mod], sizeof sum->path[mod], "%s", out);
  return h5mu_writer_commit(mu, err);
}

int sim_write(const sim_options *o, const char *out, sim_format format,
              const clue_comm *comm, sim_progress_fn progress, void *ctx,
              sim_summary *summary, clue_err *err) {
  memset(summary, 0, sizeof *summary);
  sim_model *model = NULL;
  int rc = sim_model_new(o, &model, err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc) {
    sim_model_free(model);
    return rc;
  }
  sim_plan p = {.o = o, .model = model, .comm = comm};
  rc = plan_new(&p, summary, err);
  if (rc == CLUE_OK && comm->rank == 0) rc = plan_labels(&p, err);
  if (rc == CLUE_ENOMEM) clue_fail(err, rc, "simulate: out of memory planning %lld cells",
                                   (long long)o->n_cells);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) {
    if (format == SIM_FORMAT_H5MU)
      rc = write_h5mu_file(&p, out, progress, ctx, summary, err);
    else
      rc = write_h5ad_files(&p, out, progress, ctx, summary, err);
  }
  plan_free(&p);
  sim_model_free(model);
  return rc;
}
