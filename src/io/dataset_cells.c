/* dataset_cells.c — the cells of a run, decided by all ranks together (each holds
 * the cells it owns while loading, dataset_pair.c): the check that modalities
 * share cells, the split column (which cells are train or test) and the batch
 * column (codes, categories merged across modalities).
 *
 * Where a cell's split or batch value comes from: the .h5mu global obs when
 * it has the column, else the first modality (in config order) that has both
 * the cell and the column. Each rank reads one block of rows of each such
 * column and answers the owners of the cells whose rows fall in it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/outbox.h"
#include "clue/rowdist.h"
#include "dataset_internal.h"

#define LABEL_MAX 512

/* This rank's block of the split or batch column of every source (global obs
 * at index CLUE_MAX_MOD, modality m at m). */
typedef struct key_cols {
  const char *key;
  h5ad_column *col[CLUE_MAX_MOD + 1];  /* NULL when the source lacks the column */
  h5ad_file *file[CLUE_MAX_MOD + 1];
  int64_t begin[CLUE_MAX_MOD + 1];     /* first row of the block */
} key_cols;

enum { GLOBAL_SRC = CLUE_MAX_MOD };

static void key_cols_free(key_cols *k) {
  for (int i = 0; i <= CLUE_MAX_MOD; i++) h5ad_column_free(k->col[i]);
}

static bool has_column(h5ad_file *f, const char *key) {
  clue_strings *cols = NULL;
  clue_err e;
  bool found = false;
  if (h5ad_obs_column_names(f, &cols, &e) != CLUE_OK) return false;
  for (int64_t i = 0; i < cols->n && !found; i++) found = !strcmp(cols->s[i], key);
  clue_strings_free(cols);
  return found;
}

/* Reads this rank's block of source s's column. */
static int read_block(key_cols *k, int s, h5ad_file *f, const clue_comm *comm,
                      clue_err *err) {
  int64_t end;
  k->file[s] = f;
  clue_block_range(h5ad_n_obs(f), comm->size, comm->rank, &k->begin[s], &end);
  return h5ad_read_obs_column_range(f, k->key, k->begin[s], end, &k->col[s], err);
}

/* Collective. Reads column `key` wherever it exists (the global obs alone when
 * it has it); fails when no source has it. */
static int read_key(const clue_dataset *d, h5ad_file *global, const char *key,
                    const char *setting, const clue_comm *comm, key_cols *k, clue_err *err) {
  memset(k, 0, sizeof *k);
  k->key = key;
  int rc = CLUE_OK;
  bool any = false;
  if (global && has_column(global, key)) {
    rc = read_block(k, GLOBAL_SRC, global, comm, err);
    any = true;
  }
  for (int m = 0; rc == CLUE_OK && !any && m < d->n_mod; m++)
    if (has_column(d->mod[m].file, key)) rc = read_block(k, m, d->mod[m].file, comm, err);
  for (int s = 0; rc == CLUE_OK && s <= GLOBAL_SRC; s++) {
    any = any || k->col[s];
    if (k->col[s] && k->col[s]->kind == H5AD_COL_OTHER)
      rc = clue_fail(err, CLUE_EFORMAT,
                     "%s: obs column '%s' has encoding '%s'; %s needs a categorical, "
                     "string, numeric or boolean column",
                     s == GLOBAL_SRC ? h5ad_path(global) : d->mod[s].what, key,
                     k->col[s]->encoding, setting);
  }
  if (rc == CLUE_OK && !any) {
    h5ad_column *none = NULL;
    rc = h5ad_read_obs_column_range(d->mod[0].file, key, 0, 0, &none, err); /* lists columns */
    h5ad_column_free(none);
    if (rc == CLUE_OK) rc = clue_fail(err, CLUE_EFORMAT, "column '%s' not found", key);
    clue_err_prefix(err, "%s '%s' is not an obs column", setting, key);
  }
  return clue_comm_agree(comm, rc, err);
}

/* The source and row of owned cell i's label; -1 when no source has it. */
static int label_source(const key_cols *k, const own_cells *oc, int64_t i, int64_t *row) {
  if (k->col[GLOBAL_SRC] && oc->grow[i] >= 0) {
    *row = oc->grow[i];
    return GLOBAL_SRC;
  }
  for (int m = 0; m < oc->n_mod; m++) {
    int64_t r = oc->row[i * oc->n_mod + m];
    if (r >= 0 && k->col[m]) {
      *row = r;
      return m;
    }
  }
  return -1;
}

static int no_source(const own_cells *oc, int64_t i, const char *key, clue_err *err) {
  return clue_fail(err, CLUE_EDATA,
                   "cell '%s' has no value for obs column '%s': none of its modalities "
                   "has that column",
                   oc->names->s[i], key);
}

/* A request for a label: the source and its row. */
typedef struct label_req {
  int32_t src;
  int64_t row;
} label_req;

static void answer_label(void *ctx, const char *req, clue_outbox *answers, int asker) {
  const key_cols *k = ctx;
  label_req q;
  memcpy(&q, req, sizeof q);
  char lab[LABEL_MAX];
  h5ad_column_label(k->col[q.src], q.row - k->begin[q.src], lab, sizeof lab);
  clue_outbox_put(answers, asker, lab, strlen(lab) + 1);
}

/* The rank holding the label of owned cell i (which has a source). */
static int label_holder(const key_cols *k, const own_cells *oc, int64_t i, label_req *q,
                        const clue_comm *comm) {
  q->row = 0;
  q->src = label_source(k, oc, i, &q->row);
  return clue_block_owner(q->row, h5ad_n_obs(k->file[q->src]), comm->size);
}

/* Collective. Fails on the first cell (pairing order) that no source has a
 * value for; else puts this rank's requests in box. */
static int ask_labels(const key_cols *k, const own_cells *oc, const clue_comm *comm,
                      clue_outbox *box, clue_err *err) {
  int64_t first_bad = -1;
  int bad = CLUE_OK;
  for (int64_t i = 0; i < oc->n; i++) {
    int64_t row;
    if (label_source(k, oc, i, &row) >= 0) continue;
    first_bad = oc->id[i];
    bad = no_source(oc, i, k->key, err);
    break;
  }
  int rc = clue_comm_agree_first(comm, first_bad, bad, err);
  for (int64_t i = 0; rc == CLUE_OK && i < oc->n; i++) {
    label_req q;
    memset(&q, 0, sizeof q); /* padding bytes too: they are sent */
    int holder = label_holder(k, oc, i, &q, comm);
    clue_outbox_put(box, holder, &q, sizeof q);
  }
  return rc;
}

/* Collective. The label of every owned cell for key ("" = missing), as a new
 * string array in owned order. Fails on the first cell (pairing order) that no
 * source has a value for. */
static int fetch_labels(const key_cols *k, const own_cells *oc, const clue_comm *comm,
                        clue_strings **labels, clue_err *err) {
  *labels = NULL;
  char *a = NULL;
  int64_t *at = clue_malloc((size_t)comm->size * sizeof *at, err);
  const char **view = clue_malloc((size_t)(oc->n + 1) * sizeof *view, err);
  clue_outbox box;
  int rc = clue_comm_agree(comm, (at && view) ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = clue_outbox_init(&box, comm, err);
  if (rc == CLUE_OK) {
    rc = ask_labels(k, oc, comm, &box, err);
    if (rc == CLUE_OK)
      rc = clue_outbox_ask(&box, sizeof(label_req), answer_label, (void *)k, comm, &a, at, err);
    clue_outbox_free(&box);
  }
  for (int64_t i = 0; rc == CLUE_OK && i < oc->n; i++) { /* answers in the order asked */
    label_req q;
    int holder = label_holder(k, oc, i, &q, comm);
    view[i] = a + at[holder];
    at[holder] += (int64_t)strlen(view[i]) + 1;
  }
  if (rc == CLUE_OK) {
    if (!(*labels = clue_strings_from(view, oc->n, err))) rc = CLUE_ENOMEM;
    rc = clue_comm_agree(comm, rc, err);
  }
  free(view);
  free(at);
  free(a);
  return rc;
}

/* Collective. The text of the item with the smallest key over the ranks (a
 * rank without one passes key < 0): written to out on every rank ("" if none). */
static void agree_text(const clue_comm *comm, int64_t key, const char *mine, char *out,
                       size_t size) {
  int64_t best = key >= 0 ? key : INT64_MAX;
  MPI_Allreduce(MPI_IN_PLACE, &best, 1, MPI_INT64_T, MPI_MIN, comm->comm);
  int me = key >= 0 && key == best ? comm->rank : comm->size, root = comm->size;
  MPI_Allreduce(&me, &root, 1, MPI_INT, MPI_MIN, comm->comm);
  out[0] = '\0';
  if (root == comm->size) return;
  if (comm->rank == root) snprintf(out, size, "%s", mine);
  clue_comm_bcast(comm, out, size, root);
}

/* Collective. Fills keep[] from the split column; fails on an empty selection. */
static int select_cells(const clue_config *cfg, clue_cells cells, const key_cols *k,
                        own_cells *oc, const clue_comm *comm, clue_err *err) {
  clue_strings *lab = NULL;
  int rc = k ? fetch_labels(k, oc, comm, &lab, err) : CLUE_OK;
  if (rc) return rc;
  int64_t counts[2] = {0, 0}, seen_id = -1; /* test, kept */
  const char *seen = "";
  for (int64_t i = 0; i < oc->n; i++) {
    bool test = lab && !strcmp(lab->s[i], cfg->test_value);
    if (lab && !test && seen_id < 0 && lab->s[i][0]) {
      seen_id = oc->id[i];
      seen = lab->s[i];
    }
    counts[0] += test;
    oc->keep[i] = cells == CLUE_CELLS_ALL || (cells == CLUE_CELLS_TEST) == test;
    counts[1] += oc->keep[i];
  }
  char seen_text[LABEL_MAX];
  agree_text(comm, seen_id, seen, seen_text, sizeof seen_text);
  clue_strings_free(lab);
  clue_comm_sum_int64(comm, counts, 2);
  if (counts[1] > 0) return CLUE_OK;
  if (oc->n_total == 0) return clue_fail(err, CLUE_EDATA, "the modalities hold no cells");
  if (!k)
    return clue_fail(err, CLUE_ECONFIG,
                     "no test cells: data.split_key is not set, so every cell trains");
  if (cells == CLUE_CELLS_TEST)
    return clue_fail(err, CLUE_EDATA,
                     "no cell selected: no cell has %s == '%s' (data.split_key / "
                     "data.test_value; values seen include '%s')",
                     k->key, cfg->test_value, seen_text);
  return clue_fail(err, CLUE_EDATA,
                   "no cell selected for training: all %lld cells have %s == '%s' "
                   "(data.split_key / data.test_value)",
                   (long long)counts[0], k->key, cfg->test_value);
}
/* A growing ordered set of labels (keys owned by the list). */
typedef struct label_set {
  clue_strmap *map;
  char **v;
  int64_t n, cap;
} label_set;

/* Index of lab in the set (*at), adding it at the end when new. */
static int label_add(label_set *s, const char *lab, int64_t *at, clue_err *err) {
  *at = clue_strmap_get(s->map, lab);
  if (*at >= 0) return CLUE_OK;
  if (s->n == s->cap) {
    int64_t cap = s->cap ? 2 * s->cap : 16;
    char **v = realloc(s->v, (size_t)cap * sizeof *v);
    if (!v) return clue_fail(err, CLUE_ENOMEM, "out of memory coding batches");
    s->v = v;
    s->cap = cap;
  }
  if (!(s->v[s->n] = strdup(lab)))
    return clue_fail(err, CLUE_ENOMEM, "out of memory coding batches");
  int rc = clue_strmap_put(s->map, s->v[s->n], s->n, NULL, err);
  if (rc < 0) {
    free(s->v[s->n]);
    return rc;
  }
  *at = s->n++;
  return CLUE_OK;
}


/* Renumbers the labels in use on any rank (in set order), "nan" (missing, code
 * −1) last: the batch codes of the owned cells and the categories. */
static int renumber(const label_set *s, const int64_t *code, const own_cells *oc,
                    const clue_comm *comm, dataset_cells *out, clue_err *err) {
  int64_t *used = clue_calloc((size_t)s->n + 1, sizeof *used, err);
  const char **names = clue_calloc((size_t)s->n + 1, sizeof *names, err);
  int rc = clue_comm_agree(comm, (used && names) ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < oc->n; i++) used[code[i] >= 0 ? code[i] : s->n] = 1;
    clue_comm_max_int64(comm, used, (size_t)s->n + 1);
    int nb = 0;
    for (int64_t j = 0; j <= s->n; j++)
      if (used[j]) {
        names[nb] = j < s->n ? s->v[j] : "nan";
        used[j] = nb++;
      }
    for (int64_t i = 0; i < oc->n; i++)
      oc->batch[i] = (int32_t)used[code[i] >= 0 ? code[i] : s->n];
    out->n_batches = nb;
    if (!(out->batch_names = clue_strings_from(names, nb, err))) rc = CLUE_ENOMEM;
    rc = clue_comm_agree(comm, rc, err);
  }
  free(used);
  free(names);
  return rc;
}

static int cmp_id_first(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Collective. Adds the labels that are not categories, in order of their first
 * cell over all ranks: each rank sends every rank its new labels with the
 * position of their first cell. */
static int add_other_labels(label_set *s, const clue_strings *lab, const own_cells *oc,
                            const clue_comm *comm, clue_err *err) {
  clue_outbox box;
  int rc = clue_outbox_init(&box, comm, err);
  clue_strmap *mine = rc ? NULL : clue_strmap_new(64, err);
  if (rc == CLUE_OK && !mine) rc = CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < oc->n; i++) {
    const char *l = lab->s[i];
    if (!l[0] || clue_strmap_get(s->map, l) >= 0) continue;
    int put = clue_strmap_put(mine, l, i, NULL, err);
    if (put < 0) rc = put;
    for (int r = 0; put == 1 && r < comm->size; r++) {
      clue_outbox_put(&box, r, &oc->id[i], sizeof oc->id[i]);
      clue_outbox_put(&box, r, l, strlen(l) + 1);
    }
  }
  clue_strmap_free(mine);
  rc = clue_comm_agree(comm, rc, err);
  char *in = NULL;
  int64_t len = 0, n = 0;
  if (rc == CLUE_OK) rc = clue_outbox_deliver(&box, comm, &in, &len, NULL, err);
  clue_outbox_free(&box);
  if (rc) return rc;
  for (int64_t at = 0; at < len; n++) at += (int64_t)sizeof(int64_t) + (int64_t)strlen(in + at + sizeof(int64_t)) + 1;
  int64_t *order = clue_malloc((size_t)(2 * n + 1) * sizeof *order, err); /* (id, offset) */
  rc = order ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t at = 0, j = 0; order && at < len; j++) {
    order[2 * j + 1] = at + (int64_t)sizeof(int64_t);
    clue_inbox_take(in, &at, &order[2 * j], sizeof(int64_t));
    at += (int64_t)strlen(in + at) + 1;
  }
  if (order) qsort(order, (size_t)n, 2 * sizeof *order, cmp_id_first);
  int64_t at_code;
  for (int64_t j = 0; rc == CLUE_OK && j < n; j++)
    rc = label_add(s, in + order[2 * j + 1], &at_code, err);
  free(order);
  free(in);
  return clue_comm_agree(comm, rc, err);
}

/* Collective. Batch codes: categories in their order (global obs first, then
 * modalities in order), then other labels by first appearance; unused
 * categories dropped; missing values become the category "nan", last. */
static int code_batches(const key_cols *k, own_cells *oc, const clue_comm *comm,
                        dataset_cells *out, clue_err *err) {
  clue_strings *lab = NULL;
  int rc = fetch_labels(k, oc, comm, &lab, err);
  if (rc) return rc;
  label_set s = {0};
  int64_t *code = clue_malloc((size_t)(oc->n + 1) * sizeof *code, err);
  s.map = clue_strmap_new(64, err);
  rc = (code && s.map) ? CLUE_OK : CLUE_ENOMEM;
  int64_t at;
  for (int i = -1; i < oc->n_mod; i++) {
    const h5ad_column *c = k->col[i < 0 ? GLOBAL_SRC : i];
    if (!c || c->kind != H5AD_COL_CATEGORICAL) continue;
    for (int64_t j = 0; rc == CLUE_OK && j < c->categories->n; j++)
      rc = label_add(&s, c->categories->s[j], &at, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = add_other_labels(&s, lab, oc, comm, err);
  for (int64_t i = 0; rc == CLUE_OK && i < oc->n; i++)
    code[i] = lab->s[i][0] ? clue_strmap_get(s.map, lab->s[i]) : -1;
  if (rc == CLUE_OK) rc = renumber(&s, code, oc, comm, out, err);
  for (int64_t j = 0; j < s.n; j++) free(s.v[j]);
  free(s.v);
  clue_strmap_free(s.map);
  free(code);
  clue_strings_free(lab);
  return rc;
}

/* Collective. Each modality must share cells with another one (unless allowed). */
static int check_shared(const clue_config *cfg, const clue_dataset *d, const own_cells *oc,
                        const clue_comm *comm, clue_err *err) {
  if (cfg->allow_unpaired || oc->n_mod < 2) return CLUE_OK;
  int nm = oc->n_mod;
  for (int k = 0; k < nm; k++) {
    int64_t shared = 0, mine = -1, other = -1, mine_i = -1, other_i = -1;
    for (int64_t i = 0; i < oc->n; i++) {
      bool has = oc->row[i * nm + k] >= 0, rest = false;
      for (int q = 0; q < nm; q++) rest = rest || (q != k && oc->row[i * nm + q] >= 0);
      shared += has && rest;
      if (has && mine < 0) mine = oc->id[mine_i = i];
      if (!has && rest && other < 0) other = oc->id[other_i = i];
    }
    clue_comm_sum_int64(comm, &shared, 1);
    char a[LABEL_MAX], b[LABEL_MAX];
    agree_text(comm, mine, mine_i >= 0 ? oc->names->s[mine_i] : "", a, sizeof a);
    agree_text(comm, other, other_i >= 0 ? oc->names->s[other_i] : "?", b, sizeof b);
    int64_t any = mine >= 0;
    clue_comm_max_int64(comm, &any, 1);
    if (shared > 0 || !any) continue;
    return clue_fail(err, CLUE_EDATA,
                     "%s shares no cell with the other modalities (e.g. '%s' vs '%s'): "
                     "cells are paired by obs_names, so check that they match across "
                     "files (barcode suffixes such as '-1', sample prefixes); set "
                     "data.allow_unpaired: true to train on unpaired modalities",
                     d->mod[k].what, a, b[0] ? b : "?");
  }
  return CLUE_OK;
}

/* ---- broadcast ---- */

int dataset__bcast_strings(const clue_comm *comm, clue_strings **s, clue_err *err) {
  int64_t hdr[2] = {0, 0}; /* count, bytes */
  if (comm->rank == 0) {
    hdr[0] = (*s)->n;
    for (int64_t i = 0; i < (*s)->n; i++) hdr[1] += (int64_t)strlen((*s)->s[i]) + 1;
  }
  clue_comm_bcast(comm, hdr, sizeof hdr, 0);
  if (comm->size == 1) return CLUE_OK;
  char *buf = clue_malloc((size_t)hdr[1], err);
  char **view = clue_calloc((size_t)hdr[0], sizeof *view, err);
  int rc = clue_comm_agree(comm, (buf && view) ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK && comm->rank == 0) {
    char *p = buf;
    for (int64_t i = 0; i < hdr[0]; i++) {
      size_t len = strlen((*s)->s[i]) + 1;
      memcpy(p, (*s)->s[i], len);
      p += len;
    }
  }
  if (rc == CLUE_OK) clue_comm_bcast(comm, buf, (size_t)hdr[1], 0);
  int st = CLUE_OK;
  if (rc == CLUE_OK && comm->rank != 0) {
    char *p = buf;
    for (int64_t i = 0; i < hdr[0]; i++) {
      view[i] = p;
      p += strlen(p) + 1;
    }
    clue_strings_free(*s);
    if (!(*s = clue_strings_from((const char *const *)view, hdr[0], err)))
      st = CLUE_ENOMEM;
  }
  if (rc == CLUE_OK) rc = clue_comm_agree(comm, st, err);
  free(buf);
  free(view);
  return rc;
}

int dataset__cells(const clue_config *cfg, clue_cells cells, const clue_dataset *d,
                   h5ad_file *global, const clue_comm *comm, dataset_cells *out,
                   clue_err *err) {
  memset(out, 0, sizeof *out);
  own_cells *oc = &out->own;
  int rc = global ? dataset__pair_h5mu(d, global, comm, oc, err)
                  : dataset__pair_by_names(d, NULL, comm, oc, err);
  if (rc == CLUE_OK) rc = check_shared(cfg, d, oc, comm, err);
  if (rc == CLUE_OK) {
    oc->keep = clue_malloc((size_t)oc->n + 1, err);
    oc->batch = clue_calloc((size_t)oc->n + 1, sizeof *oc->batch, err);
    rc = clue_comm_agree(comm, (oc->keep && oc->batch) ? CLUE_OK : CLUE_ENOMEM, err);
  }
  key_cols k;
  if (rc == CLUE_OK && cfg->split_key[0]) {
    rc = read_key(d, global, cfg->split_key, "data.split_key", comm, &k, err);
    if (rc == CLUE_OK) rc = select_cells(cfg, cells, &k, oc, comm, err);
    key_cols_free(&k);
  } else if (rc == CLUE_OK) {
    rc = select_cells(cfg, cells, NULL, oc, comm, err);
  }
  if (rc == CLUE_OK && cfg->batch_key[0]) {
    rc = read_key(d, global, cfg->batch_key, "data.batch_key", comm, &k, err);
    if (rc == CLUE_OK) rc = code_batches(&k, oc, comm, out, err);
    key_cols_free(&k);
  } else if (rc == CLUE_OK) {
    const char *none = "";
    out->n_batches = 1;
    if (!(out->batch_names = clue_strings_from(&none, 1, err))) rc = CLUE_ENOMEM;
    rc = clue_comm_agree(comm, rc, err);
  }
  if (rc) dataset__cells_free(out);
  return rc;
}

void dataset__cells_free(dataset_cells *c) {
  own_cells_free(&c->own);
  clue_strings_free(c->batch_names);
  memset(c, 0, sizeof *c);
}
