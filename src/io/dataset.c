/* dataset.c — loading the cells of a run: open every modality on every rank
 * (MPI-IO), let rank 0 pair and select the cells (dataset_cells.c) and split
 * the selection over ranks balanced by nonzeros, hand each rank the metadata
 * of its own cells only, and read each rank's rows: for each modality the file
 * rows of the rank's cells, sorted for one collective read, then put back in
 * cell order. The
 * values are checked against the likelihood (counts must be finite and
 * non-negative). Every step ends with an agreement, so a failure on any rank
 * makes every rank return the same error. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Rank 0's view of the selected cells while loading, in pairing order. */
typedef struct selection {
  int64_t *file_row;  /* (n_cells × n_mod) */
  int32_t *batch;     /* (n_cells) */
  const char **names; /* (n_cells) views into the pairing's names */
} selection;

static void selection_free(selection *s) {
  free(s->file_row);
  free(s->batch);
  free(s->names);
  memset(s, 0, sizeof *s);
}

/* Rank 0: the selected cells of the pairing, in pairing order. */
static int take_selection(clue_dataset *d, const dataset_cells *cells, selection *sel,
                          clue_err *err) {
  const clue_pairing *p = cells->pairing;
  int nm = d->n_mod;
  int64_t n = 0;
  for (int64_t c = 0; c < p->n_cells; c++) n += cells->keep[c];
  d->n_cells = n;
  sel->file_row = clue_malloc((size_t)(n * nm + 1) * sizeof *sel->file_row, err);
  sel->batch = clue_malloc((size_t)(n + 1) * sizeof *sel->batch, err);
  sel->names = clue_malloc((size_t)(n + 1) * sizeof *sel->names, err);
  if (!sel->file_row || !sel->batch || !sel->names) return CLUE_ENOMEM;
  int64_t i = 0;
  for (int64_t c = 0; c < p->n_cells; c++) {
    if (!cells->keep[c]) continue;
    memcpy(sel->file_row + i * nm, p->row + c * nm, (size_t)nm * sizeof *sel->file_row);
    sel->batch[i] = cells->batch[c];
    sel->names[i++] = p->names->s[c];
  }
  for (int k = 0; k < nm; k++)
    for (int64_t j = 0; j < n; j++) d->mod[k].n_cells += sel->file_row[j * nm + k] >= 0;
  return CLUE_OK;
}

/* Collective. Every rank learns the cell counts and the batch categories. */
static void share_counts(clue_dataset *d, dataset_cells *dc, const clue_comm *comm) {
  int64_t counts[CLUE_MAX_MOD + 1] = {d->n_cells};
  for (int k = 0; k < d->n_mod; k++) counts[k + 1] = d->mod[k].n_cells;
  clue_comm_bcast(comm, counts, sizeof counts, 0);
  d->n_cells = counts[0];
  for (int k = 0; k < d->n_mod; k++) d->mod[k].n_cells = counts[k + 1];
  d->n_batches = dc->n_batches;
  d->batch_names = dc->batch_names;
  dc->batch_names = NULL;
}

/* Collective. Splits the cells over ranks balanced by their nonzeros (rank 0
 * reads the row lengths and decides). */
static int partition(clue_dataset *d, const clue_config *cfg, const selection *sel,
                     const clue_comm *comm, clue_err *err) {
  int64_t n = d->n_cells;
  bool root = comm->rank == 0;
  int64_t *w = root ? clue_calloc((size_t)n + 1, sizeof *w, err) : NULL;
  int64_t *b = clue_malloc((size_t)comm->size * sizeof *b, err);
  int64_t *e = clue_malloc((size_t)comm->size * sizeof *e, err);
  d->rank_begin = clue_malloc((size_t)(comm->size + 1) * sizeof *d->rank_begin, err);
  int rc = clue_comm_agree(comm, ((w || !root) && b && e && d->rank_begin) ? CLUE_OK
                                                                          : CLUE_ENOMEM, err);
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++) {
    int64_t *nnz = NULL, before = h5ad_bytes_read(d->mod[k].file);
    rc = h5ad_read_row_nnz_root(d->mod[k].file, cfg->mod[k].layer, &nnz, err);
    d->bytes_read += h5ad_bytes_read(d->mod[k].file) - before;
    for (int64_t c = 0; root && rc == CLUE_OK && c < n; c++) {
      int64_t r = sel->file_row[c * d->n_mod + k];
      if (r >= 0) w[c] += nnz[r];
    }
    free(nnz);
  }
  if (rc == CLUE_OK) {
    if (root) {
      clue_partition_weighted(n, w, comm->size, b, e);
      for (int r = 0; r < comm->size; r++) d->rank_begin[r] = b[r];
      d->rank_begin[comm->size] = n;
    }
    clue_comm_bcast(comm, d->rank_begin, (size_t)(comm->size + 1) * sizeof(int64_t), 0);
    d->local_begin = d->rank_begin[comm->rank];
    d->local_end = d->rank_begin[comm->rank + 1];
  }
  free(w);
  free(b);
  free(e);
  return rc;
}

/* Rank 0 → rank r: the names of cells [c0, c1), packed NUL-separated. The
 * receiver says whether it could allocate them before they are sent. */
static void send_names(const selection *sel, int64_t c0, int64_t c1, int r,
                       const clue_comm *comm) {
  int64_t bytes = 0;
  for (int64_t c = c0; c < c1; c++) bytes += (int64_t)strlen(sel->names[c]) + 1;
  char *buf = malloc((size_t)bytes + 1), *q = buf;
  int64_t len = buf ? bytes : -1;
  int ok = 0;
  MPI_Send(&len, 1, MPI_INT64_T, r, 0, comm->comm);
  if (buf) MPI_Recv(&ok, 1, MPI_INT, r, 1, comm->comm, MPI_STATUS_IGNORE);
  for (int64_t c = c0; ok && c < c1; c++) {
    size_t l = strlen(sel->names[c]) + 1;
    memcpy(q, sel->names[c], l);
    q += l;
  }
  if (ok) MPI_Send(buf, (int)bytes, MPI_CHAR, r, 2, comm->comm);
  free(buf);
}

/* Rank r ≠ 0: receives its nl cell names. */
static int recv_names(clue_dataset *d, int64_t nl, const clue_comm *comm, clue_err *err) {
  int64_t len = 0;
  MPI_Recv(&len, 1, MPI_INT64_T, 0, 0, comm->comm, MPI_STATUS_IGNORE);
  if (len < 0) return clue_fail(err, CLUE_ENOMEM, "rank 0 ran out of memory sending names");
  char *buf = malloc((size_t)len + 1);
  const char **view = malloc((size_t)(nl + 1) * sizeof *view);
  int ok = buf && view;
  MPI_Send(&ok, 1, MPI_INT, 0, 1, comm->comm);
  int rc = ok ? CLUE_OK : clue_fail(err, CLUE_ENOMEM, "out of memory receiving cell names");
  if (ok) MPI_Recv(buf, (int)len, MPI_CHAR, 0, 2, comm->comm, MPI_STATUS_IGNORE);
  for (int64_t i = 0, at = 0; ok && i < nl; i++) {
    view[i] = buf + at;
    at += (int64_t)strlen(buf + at) + 1;
  }
  if (ok && !(d->local_names = clue_strings_from(view, nl, err))) rc = CLUE_ENOMEM;
  free(buf);
  free(view);
  return rc;
}

/* Collective. Rank 0 hands each rank the file rows, batch codes and names of
 * its cells (one rank at a time, so rank 0 never packs more than one share). */
static int scatter_cells(clue_dataset *d, const selection *sel, const clue_comm *comm,
                         clue_err *err) {
  int nm = d->n_mod;
  int64_t nl = d->local_end - d->local_begin;
  d->local_file_row = clue_malloc((size_t)(nl * nm + 1) * sizeof *d->local_file_row, err);
  d->local_batch = clue_malloc((size_t)(nl + 1) * sizeof *d->local_batch, err);
  int rc = clue_comm_agree(comm, (d->local_file_row && d->local_batch) ? CLUE_OK
                                                                      : CLUE_ENOMEM, err);
  if (rc) return rc;
  if (comm->rank == 0) {
    for (int r = 1; r < comm->size; r++) {
      int64_t c0 = d->rank_begin[r], c1 = d->rank_begin[r + 1];
      MPI_Send(sel->file_row + c0 * nm, (int)((c1 - c0) * nm), MPI_INT64_T, r, 3, comm->comm);
      MPI_Send(sel->batch + c0, (int)(c1 - c0), MPI_INT32_T, r, 4, comm->comm);
      send_names(sel, c0, c1, r, comm);
    }
    memcpy(d->local_file_row, sel->file_row, (size_t)(nl * nm) * sizeof *d->local_file_row);
    memcpy(d->local_batch, sel->batch, (size_t)nl * sizeof *d->local_batch);
    if (!(d->local_names = clue_strings_from(sel->names, nl, err))) rc = CLUE_ENOMEM;
  } else {
    MPI_Recv(d->local_file_row, (int)(nl * nm), MPI_INT64_T, 0, 3, comm->comm,
             MPI_STATUS_IGNORE);
    MPI_Recv(d->local_batch, (int)nl, MPI_INT32_T, 0, 4, comm->comm, MPI_STATUS_IGNORE);
    rc = recv_names(d, nl, comm, err);
  }
  return clue_comm_agree(comm, rc, err);
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
  selection sel = {0};
  if (rc == CLUE_OK)
    rc = clue_comm_agree(comm, comm->rank == 0 ? take_selection(d, &dc, &sel, err) : CLUE_OK,
                         err);
  if (rc == CLUE_OK) share_counts(d, &dc, comm);
  if (rc == CLUE_OK) rc = partition(d, cfg, &sel, comm, err);
  if (rc == CLUE_OK) rc = scatter_cells(d, &sel, comm, err);
  selection_free(&sel);
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
