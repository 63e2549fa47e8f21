/* dataset_pair.c — pairing the cells of the modalities across the ranks, without
 * any rank holding more than its share of the names.
 *
 * Each rank reads one block of rows of every modality's obs names (and of the
 * .h5mu global obs). By names: every (source, row, name) goes to the rank that a
 * hash of the name picks; that rank sees every row of a name, finds duplicates,
 * and tells the rank holding the name's first appearance (lowest modality, then
 * row) which rows the cell has. That rank owns the cell. Cells are numbered in
 * order of first appearance: modality 0's rows in order, then the cells only
 * later modalities have — the order of a sequential pairing (pairing.c). By
 * MuData obsmap: the global obs order, each rank its block. Errors name the item
 * a sequential pass would meet first, whatever the number of ranks. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/outbox.h"
#include "clue/rowdist.h"
#include "dataset_internal.h"

void own_cells_free(own_cells *oc) {
  free(oc->id);
  free(oc->row);
  free(oc->grow);
  free(oc->keep);
  free(oc->batch);
  clue_strings_free(oc->names);
  memset(oc, 0, sizeof *oc);
}

int dataset__seg_offsets(const clue_comm *comm, int n_seg, const int64_t *mine,
                         int64_t *first, int64_t *total, clue_err *err) {
  int64_t *all = clue_malloc((size_t)comm->size * CLUE_MAX_MOD * sizeof *all, err);
  int rc = clue_comm_agree(comm, all ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(all);
    return rc;
  }
  int64_t pad[CLUE_MAX_MOD] = {0};
  memcpy(pad, mine, (size_t)n_seg * sizeof *pad);
  MPI_Allgather(pad, CLUE_MAX_MOD, MPI_INT64_T, all, CLUE_MAX_MOD, MPI_INT64_T, comm->comm);
  int64_t at = 0;
  for (int s = 0; s < n_seg; s++)
    for (int r = 0; r < comm->size; r++) {
      if (r == comm->rank) first[s] = at;
      at += all[r * CLUE_MAX_MOD + s];
    }
  *total = at;
  free(all);
  return CLUE_OK;
}

/* This rank's block of rows of one source of names. */
typedef struct name_block {
  int64_t n_rows, begin, end;
  clue_strings *names;
} name_block;

static int read_block(h5ad_file *f, const clue_comm *comm, name_block *b, clue_err *err) {
  b->n_rows = h5ad_n_obs(f);
  clue_block_range(b->n_rows, comm->size, comm->rank, &b->begin, &b->end);
  return h5ad_read_obs_names_range(f, b->begin, b->end, &b->names, err);
}

/* The rows of every name that hashes to this rank, per source. */
typedef struct name_groups {
  int width;            /* sources */
  clue_strmap *map;     /* name → group */
  int64_t n;
  int64_t *first;       /* (n × width) smallest row per source, −1 */
  int64_t *second;      /* (n × width) second smallest row, −1 */
  const char **name;    /* (n) views into the delivered records */
  char *in;             /* the delivered records */
} name_groups;

static void name_groups_free(name_groups *g) {
  clue_strmap_free(g->map);
  free(g->first);
  free(g->second);
  free(g->name);
  free(g->in);
  memset(g, 0, sizeof *g);
}

static void note_row(int64_t *first, int64_t *second, int64_t row) {
  if (*first < 0) {
    *first = row;
  } else {
    int64_t hi = row > *first ? row : *first;
    if (row < *first) *first = row;
    if (*second < 0 || hi < *second) *second = hi;
  }
}

/* Collective. Sends (source, row, name) of every block to the rank of the name's
 * hash and groups what arrives by name. */
static int group_names(const name_block *b, int n_src, const clue_comm *comm,
                       name_groups *g, clue_err *err) {
  memset(g, 0, sizeof *g);
  g->width = n_src;
  clue_outbox box;
  int rc = clue_outbox_init(&box, comm, err);
  for (int s = 0; rc == CLUE_OK && s < n_src; s++)
    for (int64_t i = 0; b[s].names && i < b[s].names->n; i++) {
      const char *name = b[s].names->s[i];
      int dest = (int)(clue_hash_string(name) % (uint64_t)comm->size);
      int32_t src = s;
      int64_t row = b[s].begin + i;
      clue_outbox_put(&box, dest, &src, sizeof src);
      clue_outbox_put(&box, dest, &row, sizeof row);
      clue_outbox_put(&box, dest, name, strlen(name) + 1);
    }
  int64_t len = 0;
  if (rc == CLUE_OK) rc = clue_outbox_deliver(&box, comm, &g->in, &len, NULL, err);
  clue_outbox_free(&box);
  if (rc) return rc;
  int64_t max = 1; /* records (an upper bound on names) */
  for (int64_t at = 0; at < len; max++)
    at += (int64_t)(sizeof(int32_t) + sizeof(int64_t)) +
          (int64_t)strlen(g->in + at + sizeof(int32_t) + sizeof(int64_t)) + 1;
  g->map = clue_strmap_new(max, err);
  g->first = clue_malloc((size_t)(max * n_src) * sizeof *g->first, err);
  g->second = clue_malloc((size_t)(max * n_src) * sizeof *g->second, err);
  g->name = clue_malloc((size_t)max * sizeof *g->name, err);
  rc = (g->map && g->first && g->second && g->name) ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t at = 0; rc == CLUE_OK && at < len;) {
    int32_t src;
    int64_t row, grp = g->n;
    clue_inbox_take(g->in, &at, &src, sizeof src);
    clue_inbox_take(g->in, &at, &row, sizeof row);
    const char *name = g->in + at;
    at += (int64_t)strlen(name) + 1;
    int put = clue_strmap_put(g->map, name, grp, &grp, err);
    if (put < 0) {
      rc = put;
      break;
    }
    if (put == 1) {
      for (int s = 0; s < n_src; s++) g->first[grp * n_src + s] = g->second[grp * n_src + s] = -1;
      g->name[g->n++] = name;
    }
    note_row(&g->first[grp * n_src + src], &g->second[grp * n_src + src], row);
  }
  return clue_comm_agree(comm, rc, err);
}

/* Collective. The first name of source s (in row order) that appears twice, as a
 * sequential pass meets it: fails with `what` and the hint. */
static int check_duplicates(const name_groups *g, int s, const char *what, const char *hint,
                            const clue_comm *comm, clue_err *err) {
  int64_t best = -1, grp = -1;
  for (int64_t i = 0; i < g->n; i++) {
    int64_t sec = g->second[i * g->width + s];
    if (sec >= 0 && (best < 0 || sec < best)) {
      best = sec;
      grp = i;
    }
  }
  int rc = CLUE_OK;
  if (grp >= 0)
    rc = clue_fail(err, CLUE_EDATA,
                   "%s: obs name '%s' appears twice (rows %lld and %lld); obs names must "
                   "be unique (%s.obs_names_make_unique())",
                   what, g->name[grp], (long long)g->first[grp * g->width + s],
                   (long long)best, hint);
  return clue_comm_agree_first(comm, best, rc, err);
}

/* Allocates the owned-cell arrays for n cells. */
static int own_alloc(own_cells *oc, int n_mod, int64_t n, clue_err *err) {
  oc->n_mod = n_mod;
  oc->n = n;
  oc->id = clue_malloc((size_t)(n + 1) * sizeof *oc->id, err);
  oc->row = clue_malloc((size_t)(n * n_mod + 1) * sizeof *oc->row, err);
  oc->grow = clue_malloc((size_t)(n + 1) * sizeof *oc->grow, err);
  return (oc->id && oc->row && oc->grow) ? CLUE_OK : CLUE_ENOMEM;
}

/* Numbers the owned cells (segments in order) and takes their names. */
static int own_finish(own_cells *oc, const char **view, const clue_comm *comm,
                      clue_err *err) {
  int64_t first[CLUE_MAX_MOD] = {0};
  int rc = dataset__seg_offsets(comm, oc->n_seg, oc->seg_n, first, &oc->n_total, err);
  if (rc) return rc;
  int64_t i = 0;
  for (int s = 0; s < oc->n_seg; s++)
    for (int64_t j = 0; j < oc->seg_n[s]; j++) oc->id[i++] = first[s] + j;
  if (!(oc->names = clue_strings_from(view, oc->n, err))) rc = CLUE_ENOMEM;
  return clue_comm_agree(comm, rc, err);
}

/* Collective. Tells the owner of each cell's first appearance the cell's rows
 * and builds the owned cells from what arrives. */
static int own_by_names(const name_groups *g, const name_block *b, int n_mod,
                        bool with_global, const clue_comm *comm, own_cells *oc,
                        clue_err *err) {
  int w = n_mod + 3; /* modality, row, rows…, global row */
  clue_outbox box;
  int rc = clue_outbox_init(&box, comm, err);
  for (int64_t i = 0; rc == CLUE_OK && i < g->n; i++) {
    const int64_t *f = g->first + i * g->width;
    int k0 = 0;
    while (k0 < n_mod && f[k0] < 0) k0++;
    if (k0 == n_mod) continue; /* only in the global obs: not a cell */
    int64_t rec[CLUE_MAX_MOD + 3];
    rec[0] = k0;
    rec[1] = f[k0];
    memcpy(rec + 2, f, (size_t)n_mod * sizeof *rec);
    rec[n_mod + 2] = with_global ? f[n_mod] : -1;
    clue_outbox_put(&box, clue_block_owner(f[k0], b[k0].n_rows, comm->size), rec,
                    (size_t)w * sizeof *rec);
  }
  char *in = NULL;
  int64_t len = 0;
  if (rc == CLUE_OK) rc = clue_outbox_deliver(&box, comm, &in, &len, NULL, err);
  clue_outbox_free(&box);
  if (rc) return rc;
  int64_t n = len / (int64_t)((size_t)w * sizeof(int64_t));
  const int64_t *recs = (const int64_t *)in; /* malloc'd: aligned for int64 */
  /* put the records in (modality, row) order: a slot per row of each block */
  int64_t at[CLUE_MAX_MOD + 1] = {0};
  for (int k = 0; k < n_mod; k++) at[k + 1] = at[k] + (b[k].end - b[k].begin);
  int64_t *slot = clue_malloc((size_t)(at[n_mod] + 1) * sizeof *slot, err);
  const char **view = clue_malloc((size_t)(n + 1) * sizeof *view, err);
  rc = own_alloc(oc, n_mod, n, err);
  if (!view || !slot) rc = CLUE_ENOMEM;
  oc->n_seg = n_mod;
  for (int64_t j = 0; rc == CLUE_OK && j < at[n_mod]; j++) slot[j] = -1;
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++)
    slot[at[recs[i * w]] + recs[i * w + 1] - b[recs[i * w]].begin] = i;
  for (int64_t j = 0, c = 0, k = 0; rc == CLUE_OK && j < at[n_mod]; j++) {
    while (j >= at[k + 1]) k++;
    if (slot[j] < 0) continue;
    const int64_t *r = recs + slot[j] * w;
    oc->seg_n[k]++;
    memcpy(oc->row + c * n_mod, r + 2, (size_t)n_mod * sizeof *oc->row);
    oc->grow[c] = r[n_mod + 2];
    view[c++] = b[k].names->s[r[1] - b[k].begin];
  }
  free(slot);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = own_finish(oc, view, comm, err);
  free(view);
  free(in);
  return rc;
}

int dataset__pair_by_names(const clue_dataset *d, h5ad_file *global, const clue_comm *comm,
                           own_cells *oc, clue_err *err) {
  memset(oc, 0, sizeof *oc);
  int nm = d->n_mod, n_src = nm + (global ? 1 : 0);
  name_block b[CLUE_MAX_MOD + 1];
  memset(b, 0, sizeof b);
  int rc = CLUE_OK;
  for (int s = 0; rc == CLUE_OK && s < n_src; s++)
    rc = read_block(s < nm ? d->mod[s].file : global, comm, &b[s], err);
  rc = clue_comm_agree(comm, rc, err);
  name_groups g = {0};
  if (rc == CLUE_OK) rc = group_names(b, n_src, comm, &g, err);
  if (rc == CLUE_OK && global)
    rc = check_duplicates(&g, nm, h5ad_path(global), "mdata", comm, err);
  for (int k = 0; rc == CLUE_OK && k < nm; k++)
    rc = check_duplicates(&g, k, d->mod[k].what, "adata", comm, err);
  if (rc == CLUE_OK) rc = own_by_names(&g, b, nm, global != NULL, comm, oc, err);
  name_groups_free(&g);
  for (int s = 0; s < n_src; s++) clue_strings_free(b[s].names);
  return rc;
}

/* Collective. obsmap/<mod> (this rank's block of global cells) must point into
 * the modality's rows, each row used at most once; the error is the one a
 * sequential pass over the global cells meets first. */
static int check_obsmap(const int64_t *map, const name_block *gb, int64_t n_rows,
                        const char *path, const char *mod, const clue_comm *comm,
                        clue_err *err) {
  int64_t bad = -1;
  clue_outbox box;
  int rc = clue_outbox_init(&box, comm, err);
  for (int64_t i = 0; rc == CLUE_OK && i < gb->end - gb->begin; i++) {
    int64_t gc = gb->begin + i;
    if (map[i] > n_rows && bad < 0) bad = gc;
    if (map[i] <= 0 || map[i] > n_rows) continue;
    int64_t rec[2] = {map[i], gc};
    clue_outbox_put(&box, clue_block_owner(map[i] - 1, n_rows, comm->size), rec, sizeof rec);
  }
  if (bad >= 0)
    rc = clue_fail(err, CLUE_EFORMAT,
                   "%s: obsmap/%s maps global cell %lld to row %lld but mod/%s has %lld rows",
                   path, mod, (long long)bad, (long long)map[bad - gb->begin], mod,
                   (long long)n_rows);
  char *in = NULL;
  int64_t len = 0, row_begin, row_end;
  int st = clue_outbox_deliver(&box, comm, &in, &len, NULL, err);
  clue_outbox_free(&box);
  if (st) return st;
  clue_block_range(n_rows, comm->size, comm->rank, &row_begin, &row_end);
  int64_t nb = row_end - row_begin, *lo = clue_malloc((size_t)(2 * nb + 1) * sizeof *lo, err);
  if (!lo && !rc) rc = CLUE_ENOMEM;
  for (int64_t j = 0; lo && j < 2 * nb; j++) lo[j] = -1;
  for (int64_t at = 0; lo && at < len;) {
    int64_t rec[2];
    clue_inbox_take(in, &at, rec, sizeof rec);
    int64_t j = rec[0] - 1 - row_begin;
    note_row(&lo[2 * j], &lo[2 * j + 1], rec[1]);
  }
  int64_t dup = -1, dup_row = 0;
  for (int64_t j = 0; lo && j < nb; j++)
    if (lo[2 * j + 1] >= 0 && (dup < 0 || lo[2 * j + 1] < dup)) {
      dup = lo[2 * j + 1];
      dup_row = row_begin + j + 1;
    }
  int64_t key = bad;
  if (dup >= 0 && (bad < 0 || dup < bad)) {
    key = dup;
    rc = clue_fail(err, CLUE_EFORMAT,
                   "%s: obsmap/%s maps two global cells to row %lld (the second is cell %lld)",
                   path, mod, (long long)dup_row, (long long)dup);
  }
  free(lo);
  free(in);
  return clue_comm_agree_first(comm, key, rc, err);
}

/* The owned cells of an obsmap pairing: the global cells of this rank's block
 * that have at least one of the modalities. */
static int own_by_obsmap(int64_t *const *maps, const name_block *gb, int n_mod,
                         const clue_comm *comm, own_cells *oc, clue_err *err) {
  int64_t nb = gb->end - gb->begin, n = 0;
  for (int64_t i = 0; i < nb; i++) {
    bool any = false;
    for (int k = 0; k < n_mod; k++) any = any || maps[k][i] > 0;
    n += any;
  }
  const char **view = clue_malloc((size_t)(n + 1) * sizeof *view, err);
  int rc = own_alloc(oc, n_mod, n, err);
  if (!view) rc = CLUE_ENOMEM;
  oc->n_seg = 1;
  oc->seg_n[0] = n;
  for (int64_t i = 0, c = 0; rc == CLUE_OK && i < nb; i++) {
    bool any = false;
    for (int k = 0; k < n_mod; k++) any = any || maps[k][i] > 0;
    if (!any) continue;
    for (int k = 0; k < n_mod; k++) oc->row[c * n_mod + k] = maps[k][i] > 0 ? maps[k][i] - 1 : -1;
    oc->grow[c] = gb->begin + i;
    view[c++] = gb->names->s[i];
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = own_finish(oc, view, comm, err);
  free(view);
  return rc;
}

int dataset__pair_h5mu(const clue_dataset *d, h5ad_file *global, const clue_comm *comm,
                       own_cells *oc, clue_err *err) {
  memset(oc, 0, sizeof *oc);
  const char *path = h5ad_path(global);
  name_block gb = {0};
  int rc = clue_comm_agree(comm, read_block(global, comm, &gb, err), err);
  name_groups g = {0};
  if (rc == CLUE_OK) rc = group_names(&gb, 1, comm, &g, err);
  if (rc == CLUE_OK) rc = check_duplicates(&g, 0, path, "mdata", comm, err);
  name_groups_free(&g);
  int64_t *maps[CLUE_MAX_MOD] = {0};
  int have = 0;
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++) {
    int64_t n_total = 0;
    rc = h5mu_read_obsmap_range(path, d->mod[k].name, gb.begin, gb.end, &maps[k], &n_total,
                                err);
    if (rc == CLUE_OK && maps[k] && n_total != gb.n_rows)
      rc = clue_fail(err, CLUE_EFORMAT, "%s: obsmap/%s has %lld entries for %lld cells", path,
                     d->mod[k].name, (long long)n_total, (long long)gb.n_rows);
    rc = clue_comm_agree(comm, rc, err);
    int mine = maps[k] != NULL || n_total > 0, any = 0;
    if (rc == CLUE_OK) MPI_Allreduce(&mine, &any, 1, MPI_INT, MPI_MAX, comm->comm);
    if (any && !maps[k] && !(maps[k] = clue_calloc(1, sizeof *maps[k], err))) rc = CLUE_ENOMEM;
    rc = clue_comm_agree(comm, rc, err);
    have += any;
    if (rc == CLUE_OK && any)
      rc = check_obsmap(maps[k], &gb, h5ad_n_obs(d->mod[k].file), path, d->mod[k].name, comm,
                        err);
  }
  if (rc == CLUE_OK && have == d->n_mod)
    rc = own_by_obsmap(maps, &gb, d->n_mod, comm, oc, err);
  else if (rc == CLUE_OK)
    rc = dataset__pair_by_names(d, global, comm, oc, err);
  for (int k = 0; k < d->n_mod; k++) free(maps[k]);
  clue_strings_free(gb.names);
  return rc;
}
