/* dataset.c — loading the cells of a run: open every modality on every rank
 * (MPI-IO), pair and select the cells on all ranks together (dataset_pair.c,
 * dataset_cells.c), split the selection over ranks balanced by nonzeros
 * (prefix sums over the ranks), send each rank the metadata of its own cells,
 * and read each rank's rows: for each modality the file
 * rows of the rank's cells, sorted for one collective read, then put back in
 * cell order. The
 * values are checked against the likelihood (counts must be finite and
 * non-negative). Every step ends with an agreement, so a failure on any rank
 * makes every rank return the same error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/outbox.h"
#include "clue/rowdist.h"
#include "dataset_internal.h"

/* Rank 0 asks whether a per-modality file is an .h5mu; all ranks learn it. */
static bool file_is_mudata(const char *path, const clue_comm *comm) {
  int yes = comm->rank == 0 ? h5mu_is_mudata(path) : 0;
  clue_comm_bcast(comm, &yes, sizeof yes, 0);
  return yes != 0;
}

/* Collective. Opens modality k and describes its matrix. */
static int open_modality(const clue_config *cfg, int k, const clue_comm *comm,
                         clue_dataset_mod *mod, clue_err *err) {
  const clue_modality_config *mc = &cfg->mod[k];
  const char *path = cfg->h5mu_file[0] ? cfg->h5mu_file : mc->file;
  snprintf(mod->name, sizeof mod->name, "%s", mc->name);
  snprintf(mod->what, sizeof mod->what, "%s (%s)", mc->name, path);
  if (!path[0])
    return clue_fail(err, CLUE_ECONFIG,
                     "data.modalities.%s has no file (and data.file is not set)",
                     mc->name);
  char group[CLUE_NAME_MAX + 8] = "";
  if (cfg->h5mu_file[0] || file_is_mudata(path, comm))
    snprintf(group, sizeof group, "mod/%s", mc->name);
  int rc = h5ad_open(path, group, comm, &mod->file, err);
  if (rc) return clue_err_prefix(err, "modality %s", mc->name);
  rc = h5ad_matrix_info_get(mod->file, mc->layer, &mod->info, err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc) return clue_err_prefix(err, "modality %s", mc->name);
  mod->n_features = mod->info.n_cols;
  return CLUE_OK;
}

/* Rank 0 reads every modality's var names; every rank receives them. */
static int read_var_names(clue_dataset *d, const clue_comm *comm, clue_err *err) {
  int rc = CLUE_OK;
  for (int k = 0; comm->rank == 0 && rc == CLUE_OK && k < d->n_mod; k++)
    rc = h5ad_read_var_names(d->mod[k].file, &d->mod[k].var_names, err);
  rc = clue_comm_agree(comm, rc, err);
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++)
    rc = dataset__bcast_strings(comm, &d->mod[k].var_names, err);
  return rc;
}

/* Collective. Numbers the selected cells in pairing order (sel[i] for owned cell
 * i, −1 when not kept) and counts them, per modality too. */
static int number_selection(clue_dataset *d, const own_cells *oc, int64_t *sel,
                            const clue_comm *comm, clue_err *err) {
  int64_t kept[CLUE_MAX_MOD] = {0}, first[CLUE_MAX_MOD] = {0};
  int64_t per_mod[CLUE_MAX_MOD] = {0}, i = 0;
  for (int s = 0; s < oc->n_seg; s++)
    for (int64_t j = 0; j < oc->seg_n[s]; j++, i++) kept[s] += oc->keep[i];
  int rc = dataset__seg_offsets(comm, oc->n_seg, kept, first, &d->n_cells, err);
  if (rc) return rc;
  i = 0;
  for (int s = 0; s < oc->n_seg; s++) {
    int64_t next = first[s];
    for (int64_t j = 0; j < oc->seg_n[s]; j++, i++) {
      sel[i] = oc->keep[i] ? next++ : -1;
      for (int k = 0; oc->keep[i] && k < d->n_mod; k++)
        per_mod[k] += oc->row[i * d->n_mod + k] >= 0;
    }
  }
  clue_comm_sum_int64(comm, per_mod, (size_t)d->n_mod);
  for (int k = 0; k < d->n_mod; k++) d->mod[k].n_cells = per_mod[k];
  return CLUE_OK;
}

/* This rank's block of a modality's row lengths. */
typedef struct nnz_block {
  const int64_t *nnz;
  int64_t begin;
} nnz_block;

static void answer_nnz(void *ctx, const char *req, clue_outbox *answers, int asker) {
  const nnz_block *b = ctx;
  int64_t row;
  memcpy(&row, req, sizeof row);
  clue_outbox_put(answers, asker, &b->nnz[row - b->begin], sizeof b->nnz[0]);
}

/* Collective. w[i] += the length of modality k's row of each kept owned cell,
 * asked of the ranks holding the rows' block of row lengths. */
static int add_row_weights(clue_dataset *d, const clue_config *cfg, int k,
                           const own_cells *oc, int64_t *w, const clue_comm *comm,
                           clue_err *err) {
  int nm = d->n_mod;
  int64_t n_rows = h5ad_n_obs(d->mod[k].file), end, before = h5ad_bytes_read(d->mod[k].file);
  nnz_block blk = {NULL, 0};
  int64_t *nnz = NULL;
  clue_block_range(n_rows, comm->size, comm->rank, &blk.begin, &end);
  int rc = h5ad_read_row_nnz_range(d->mod[k].file, cfg->mod[k].layer, blk.begin, end, &nnz,
                                   err);
  d->bytes_read += h5ad_bytes_read(d->mod[k].file) - before;
  blk.nnz = nnz;
  clue_outbox box;
  if (rc == CLUE_OK) rc = clue_outbox_init(&box, comm, err);
  if (rc) {
    free(nnz);
    return rc;
  }
  for (int64_t i = 0; i < oc->n; i++) {
    int64_t r = oc->row[i * nm + k];
    if (oc->keep[i] && r >= 0)
      clue_outbox_put(&box, clue_block_owner(r, n_rows, comm->size), &r, sizeof r);
  }
  char *a = NULL;
  int64_t *at = clue_malloc((size_t)comm->size * sizeof *at, err);
  rc = clue_comm_agree(comm, at ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = clue_outbox_ask(&box, sizeof(int64_t), answer_nnz, &blk, comm, &a, at, err);
  for (int64_t i = 0; rc == CLUE_OK && i < oc->n; i++) { /* answers in the order asked */
    int64_t r = oc->row[i * nm + k], v;
    if (!oc->keep[i] || r < 0) continue;
    clue_inbox_take(a, &at[clue_block_owner(r, n_rows, comm->size)], &v, sizeof v);
    w[i] += v;
  }
  clue_outbox_free(&box);
  free(at);
  free(a);
  free(nnz);
  return rc;
}

/* Collective. Splits the selected cells over ranks balanced by their nonzeros,
 * as clue_partition_weighted would over the whole list: a cell goes to the
 * first rank whose share of the total weight its middle falls in. dest[i] is
 * the rank of owned cell i (kept cells only). */
static int partition(clue_dataset *d, const clue_config *cfg, const own_cells *oc,
                     const int64_t *sel, int *dest, const clue_comm *comm, clue_err *err) {
  int64_t *w = clue_calloc((size_t)oc->n + 1, sizeof *w, err);
  d->rank_begin = clue_calloc((size_t)comm->size + 1, sizeof *d->rank_begin, err);
  int rc = clue_comm_agree(comm, (w && d->rank_begin) ? CLUE_OK : CLUE_ENOMEM, err);
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++)
    rc = add_row_weights(d, cfg, k, oc, w, comm, err);
  if (rc) {
    free(w);
    return rc;
  }
  int64_t sums[CLUE_MAX_MOD] = {0}, first[CLUE_MAX_MOD] = {0}, total = 0, i = 0;
  for (int s = 0; s < oc->n_seg; s++)
    for (int64_t j = 0; j < oc->seg_n[s]; j++, i++)
      if (sel[i] >= 0) sums[s] += w[i] + 1;
  rc = dataset__seg_offsets(comm, oc->n_seg, sums, first, &total, err);
  if (rc) {
    free(w);
    return rc;
  }
  int64_t *count = d->rank_begin + 1; /* cells per rank, then prefix sums */
  int r = 0; /* the middles grow along the owned cells: so does their rank */
  i = 0;
  for (int s = 0; s < oc->n_seg; s++) {
    int64_t acc = first[s];
    for (int64_t j = 0; j < oc->seg_n[s]; j++, i++) {
      if (sel[i] < 0) continue;
      double mid = (double)acc + 0.5 * (double)(w[i] + 1);
      while (r < comm->size - 1 && !(mid < (double)total * (double)(r + 1) / comm->size)) r++;
      dest[i] = r;
      count[r]++;
      acc += w[i] + 1;
    }
  }
  clue_comm_sum_int64(comm, count, (size_t)comm->size);
  for (int q = 0; q < comm->size; q++) d->rank_begin[q + 1] += d->rank_begin[q];
  d->local_begin = d->rank_begin[comm->rank];
  d->local_end = d->rank_begin[comm->rank + 1];
  free(w);
  return CLUE_OK;
}

/* Collective. Sends every selected cell's file rows, batch code and name to the
 * rank it was given. */
static int scatter_cells(clue_dataset *d, const own_cells *oc, const int64_t *sel,
                         const int *dest, const clue_comm *comm, clue_err *err) {
  int nm = d->n_mod;
  int64_t nl = d->local_end - d->local_begin;
  d->local_file_row = clue_malloc((size_t)(nl * nm + 1) * sizeof *d->local_file_row, err);
  d->local_batch = clue_malloc((size_t)(nl + 1) * sizeof *d->local_batch, err);
  const char **view = clue_malloc((size_t)(nl + 1) * sizeof *view, err);
  clue_outbox box = {0};
  int rc = clue_comm_agree(
      comm, (d->local_file_row && d->local_batch && view) ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = clue_outbox_init(&box, comm, err);
  for (int64_t i = 0; rc == CLUE_OK && i < oc->n; i++) {
    if (sel[i] < 0) continue;
    clue_outbox_put(&box, dest[i], &sel[i], sizeof sel[i]);
    clue_outbox_put(&box, dest[i], oc->row + i * nm, (size_t)nm * sizeof *oc->row);
    clue_outbox_put(&box, dest[i], &oc->batch[i], sizeof oc->batch[i]);
    const char *name = oc->names->s[i];
    clue_outbox_put(&box, dest[i], name, strlen(name) + 1);
  }
  char *in = NULL;
  int64_t len = 0;
  if (rc == CLUE_OK) rc = clue_outbox_deliver(&box, comm, &in, &len, NULL, err);
  clue_outbox_free(&box);
  for (int64_t at = 0; rc == CLUE_OK && at < len;) {
    int64_t id;
    clue_inbox_take(in, &at, &id, sizeof id);
    int64_t c = id - d->local_begin;
    clue_inbox_take(in, &at, d->local_file_row + c * nm, (size_t)nm * sizeof(int64_t));
    clue_inbox_take(in, &at, &d->local_batch[c], sizeof d->local_batch[c]);
    view[c] = in + at;
    at += (int64_t)strlen(in + at) + 1;
  }
  if (rc == CLUE_OK && !(d->local_names = clue_strings_from(view, nl, err))) rc = CLUE_ENOMEM;
  free(in);
  free(view);
  return clue_comm_agree(comm, rc, err);
}

/* Collective. The selection, its split over ranks and each rank's metadata. */
static int place_cells(clue_dataset *d, const clue_config *cfg, dataset_cells *dc,
                       const clue_comm *comm, clue_err *err) {
  const own_cells *oc = &dc->own;
  int64_t *sel = clue_malloc((size_t)(oc->n + 1) * sizeof *sel, err);
  int *dest = clue_malloc((size_t)(oc->n + 1) * sizeof *dest, err);
  int rc = clue_comm_agree(comm, (sel && dest) ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = number_selection(d, oc, sel, comm, err);
  d->n_batches = dc->n_batches;
  d->batch_names = dc->batch_names;
  dc->batch_names = NULL;
  if (rc == CLUE_OK) rc = partition(d, cfg, oc, sel, dest, comm, err);
  if (rc == CLUE_OK) rc = scatter_cells(d, oc, sel, dest, comm, err);
  free(sel);
  free(dest);
  return rc;
}

typedef struct row_pos {
  int64_t row; /* file row */
  int64_t pos; /* index among the rank's cells that have the modality */
} row_pos;

static int row_pos_cmp(const void *a, const void *b) {
  int64_t x = ((const row_pos *)a)->row, y = ((const row_pos *)b)->row;
  return (x > y) - (x < y);
}

/* Collective. Reads modality k's rows of this rank's cells into mod->x. */
static int read_shard(clue_dataset *d, const clue_config *cfg, int k,
                      const clue_comm *comm, clue_err *err) {
  clue_dataset_mod *mod = &d->mod[k];
  int nm = d->n_mod;
  int64_t nl = d->local_end - d->local_begin, m = 0;
  row_pos *rp = clue_malloc((size_t)nl * sizeof *rp, err);
  int64_t *rows = clue_malloc((size_t)nl * sizeof *rows, err);
  int64_t *order = clue_malloc((size_t)nl * sizeof *order, err);
  int rc = (rp && rows && order) ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < nl; i++) {
    int64_t r = d->local_file_row[i * nm + k];
    d->local_row[i * nm + k] = r >= 0 ? m : -1;
    if (r >= 0) {
      rp[m].row = r;
      rp[m].pos = m;
      m++;
    }
  }
  if (rc == CLUE_OK) {
    qsort(rp, (size_t)m, sizeof *rp, row_pos_cmp);
    for (int64_t s = 0; s < m; s++) {
      rows[s] = rp[s].row;
      order[rp[s].pos] = s;
    }
  }
  rc = clue_comm_agree(comm, rc, err);
  clue_csr *sorted = NULL;
  int64_t before = h5ad_bytes_read(mod->file);
  if (rc == CLUE_OK)
    rc = h5ad_read_rows(mod->file, cfg->mod[k].layer, rows, m, &sorted, err);
  d->bytes_read += h5ad_bytes_read(mod->file) - before;
  if (rc == CLUE_OK && !(mod->x = clue_csr_select_rows(sorted, order, m, err)))
    rc = CLUE_ENOMEM;
  clue_csr_free(sorted);
  free(rp);
  free(rows);
  free(order);
  return rc;
}

/* Counts must be finite and non-negative (nb, bernoulli); normal data finite. */
static int check_values(const clue_dataset *d, const clue_config *cfg, int k,
                        clue_err *err) {
  const clue_dataset_mod *mod = &d->mod[k];
  clue_likelihood lik = cfg->mod[k].likelihood;
  int64_t nl = d->local_end - d->local_begin;
  for (int64_t i = 0; i < nl; i++) {
    int64_t r = d->local_row[i * d->n_mod + k];
    if (r < 0) continue;
    for (int64_t j = mod->x->indptr[r]; j < mod->x->indptr[r + 1]; j++) {
      float v = mod->x->data[j];
      bool bad_sign = lik != CLUE_LIK_NORMAL && v < 0;
      if (isfinite(v) && !bad_sign) continue;
      char layer[CLUE_NAME_MAX + 8] = "X";
      if (cfg->mod[k].layer[0] && strcmp(cfg->mod[k].layer, "X"))
        snprintf(layer, sizeof layer, "layers/%s", cfg->mod[k].layer);
      const char *cell = d->local_names->s[i];
      const char *feat = mod->var_names->s[mod->x->indices[j]];
      if (!isfinite(v))
        return clue_fail(err, CLUE_EDATA,
                         "%s: %s holds a non-finite value (%g) for cell '%s', feature "
                         "'%s'",
                         mod->what, layer, (double)v, cell, feat);
      return clue_fail(err, CLUE_EDATA,
                       "%s: %s holds a negative value (%g) for cell '%s', feature '%s'; "
                       "the %s likelihood needs raw counts: point "
                       "data.modalities.%s.layer at a counts layer, or use likelihood: "
                       "normal",
                       mod->what, layer, (double)v, cell, feat, clue_likelihood_name(lik),
                       mod->name);
    }
  }
  return CLUE_OK;
}

/* Collective. Reads and checks every modality's shard. */
static int read_shards(clue_dataset *d, const clue_config *cfg, const clue_comm *comm,
                       clue_err *err) {
  int64_t nl = d->local_end - d->local_begin;
  d->local_row = clue_malloc((size_t)(nl * d->n_mod) * sizeof *d->local_row, err);
  int rc = clue_comm_agree(comm, d->local_row ? CLUE_OK : CLUE_ENOMEM, err);
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++) {
    rc = read_shard(d, cfg, k, comm, err); /* agreed */
    if (rc == CLUE_OK) rc = clue_comm_agree(comm, check_values(d, cfg, k, err), err);
  }
  return rc;
}

int clue_dataset_load(const clue_config *cfg, clue_cells cells, const clue_comm *comm,
                      clue_dataset **out, clue_err *err) {
  *out = NULL;
  if (cfg->n_mod < 1 || cfg->n_mod > CLUE_MAX_MOD)
    return clue_fail(err, CLUE_ECONFIG, "data.modalities: expected 1 to %d modalities",
                     CLUE_MAX_MOD);
  clue_dataset *d = clue_calloc(1, sizeof *d, err);
  int rc = clue_comm_agree(comm, d ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(d);
    return rc;
  }
  d->n_mod = cfg->n_mod;
  d->n_ranks = comm->size;
  h5ad_file *global = NULL;
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++)
    rc = open_modality(cfg, k, comm, &d->mod[k], err);
  if (rc == CLUE_OK && cfg->h5mu_file[0])
    rc = h5ad_open(cfg->h5mu_file, "", comm, &global, err);
  if (rc == CLUE_OK) rc = read_var_names(d, comm, err);
  dataset_cells dc;
  memset(&dc, 0, sizeof dc);
  if (rc == CLUE_OK) rc = dataset__cells(cfg, cells, d, global, comm, &dc, err);
  if (rc == CLUE_OK) rc = place_cells(d, cfg, &dc, comm, err);
  dataset__cells_free(&dc);
  if (rc == CLUE_OK) rc = read_shards(d, cfg, comm, err);
  h5ad_close(global);
  if (rc) {
    clue_dataset_free(d);
    return rc;
  }
  *out = d;
  return CLUE_OK;
}

void clue_dataset_free(clue_dataset *d) {
  if (!d) return;
  for (int k = 0; k < d->n_mod; k++) {
    h5ad_close(d->mod[k].file);
    clue_strings_free(d->mod[k].var_names);
    clue_csr_free(d->mod[k].x);
  }
  free(d->local_file_row);
  free(d->local_batch);
  clue_strings_free(d->batch_names);
  clue_strings_free(d->local_names);
  free(d->rank_begin);
  free(d->local_row);
  free(d);
}

int clue_dataset_owner(const clue_dataset *d, int64_t c) {
  return clue_range_owner(d->rank_begin, d->n_ranks, c);
}
