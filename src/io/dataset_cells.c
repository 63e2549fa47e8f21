/* dataset_cells.c — the cells of a run, decided on rank 0 (which alone holds
 * the per-cell arrays while loading):
 * pairing across modalities (MuData obsmap, else obs names), the check that
 * modalities share cells, the split column (which cells are train or test)
 * and the batch column (codes, categories merged across modalities).
 *
 * Where a cell's split or batch value comes from: the .h5mu global obs when
 * it has the column, else the first modality (in config order) that has both
 * the cell and the column. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset_internal.h"

/* The split or batch column of every source. */
typedef struct key_cols {
  const char *key;
  h5ad_column *global;            /* from the .h5mu global obs, or NULL */
  h5ad_column *mod[CLUE_MAX_MOD]; /* from each modality, NULL when absent */
} key_cols;

static void key_cols_free(key_cols *k) {
  h5ad_column_free(k->global);
  for (int i = 0; i < CLUE_MAX_MOD; i++) h5ad_column_free(k->mod[i]);
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

/* Reads column `key` wherever it exists; fails when no source has it. */
static int read_key(const clue_dataset *d, h5ad_file *global, const char *key,
                    const char *setting, key_cols *k, clue_err *err) {
  memset(k, 0, sizeof *k);
  k->key = key;
  int rc = CLUE_OK;
  if (global && has_column(global, key))
    rc = h5ad_read_obs_column(global, key, &k->global, err);
  for (int m = 0; rc == CLUE_OK && !k->global && m < d->n_mod; m++)
    if (has_column(d->mod[m].file, key))
      rc = h5ad_read_obs_column(d->mod[m].file, key, &k->mod[m], err);
  for (int m = -1; rc == CLUE_OK && m < d->n_mod; m++) {
    const h5ad_column *c = m < 0 ? k->global : k->mod[m];
    if (c && c->kind == H5AD_COL_OTHER)
      rc = clue_fail(err, CLUE_EFORMAT,
                     "%s: obs column '%s' has encoding '%s'; %s needs a categorical, "
                     "string, numeric or boolean column",
                     m < 0 ? h5ad_path(global) : d->mod[m].what, key, c->encoding,
                     setting);
  }
  bool any = k->global != NULL;
  for (int m = 0; m < d->n_mod; m++) any = any || k->mod[m];
  if (rc == CLUE_OK && !any) {
    h5ad_column *none = NULL;
    rc = h5ad_read_obs_column(d->mod[0].file, key, &none, err); /* lists columns */
    h5ad_column_free(none);
    if (rc == CLUE_OK) rc = clue_fail(err, CLUE_EFORMAT, "column '%s' not found", key);
    clue_err_prefix(err, "%s '%s' is not an obs column", setting, key);
  }
  return rc;
}

/* Label of cell c for key (written to buf; "" = missing). Returns -1 when no
 * source holds a value for the cell. */
static int cell_label(const key_cols *k, const clue_pairing *p, const int64_t *grow,
                      int64_t c, char *buf, size_t size) {
  if (k->global && grow && grow[c] >= 0) {
    h5ad_column_label(k->global, grow[c], buf, size);
    return 0;
  }
  for (int m = 0; m < p->n_mod; m++) {
    int64_t r = p->row[c * p->n_mod + m];
    if (r >= 0 && k->mod[m]) {
      h5ad_column_label(k->mod[m], r, buf, size);
      return 0;
    }
  }
  buf[0] = '\0';
  return -1;
}

static int no_source(const clue_pairing *p, int64_t c, const char *key, clue_err *err) {
  return clue_fail(err, CLUE_EDATA,
                   "cell '%s' has no value for obs column '%s': none of its modalities "
                   "has that column",
                   p->names->s[c], key);
}

/* Fills keep[] from the split column; fails on an empty selection. */
static int select_cells(const clue_config *cfg, clue_cells cells, const key_cols *k,
                        const clue_pairing *p, const int64_t *grow, uint8_t *keep,
                        clue_err *err) {
  int64_t n_test = 0, n_keep = 0;
  char lab[256], seen[256] = "";
  for (int64_t c = 0; c < p->n_cells; c++) {
    bool test = false;
    if (k) {
      if (cell_label(k, p, grow, c, lab, sizeof lab) < 0)
        return no_source(p, c, k->key, err);
      test = !strcmp(lab, cfg->test_value);
      if (!test && !seen[0] && lab[0]) snprintf(seen, sizeof seen, "%s", lab);
    }
    n_test += test;
    keep[c] = cells == CLUE_CELLS_ALL || (cells == CLUE_CELLS_TEST) == test;
    n_keep += keep[c];
  }
  if (n_keep > 0) return CLUE_OK;
  if (p->n_cells == 0) return clue_fail(err, CLUE_EDATA, "the modalities hold no cells");
  if (!k)
    return clue_fail(err, CLUE_ECONFIG,
                     "no test cells: data.split_key is not set, so every cell trains");
  if (cells == CLUE_CELLS_TEST)
    return clue_fail(err, CLUE_EDATA,
                     "no cell selected: no cell has %s == '%s' (data.split_key / "
                     "data.test_value; values seen include '%s')",
                     k->key, cfg->test_value, seen);
  return clue_fail(err, CLUE_EDATA,
                   "no cell selected for training: all %lld cells have %s == '%s' "
                   "(data.split_key / data.test_value)",
                   (long long)n_test, k->key, cfg->test_value);
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

/* Renumbers the labels in use (in set order), "nan" (missing, code −1) last. */
static int renumber(const label_set *s, const int64_t *code, int64_t n,
                    dataset_cells *out, clue_err *err) {
  int64_t *used = clue_calloc((size_t)s->n + 1, sizeof *used, err);
  const char **names = clue_calloc((size_t)s->n + 1, sizeof *names, err);
  int rc = (used && names) ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK) {
    for (int64_t c = 0; c < n; c++) used[code[c] >= 0 ? code[c] : s->n] = 1;
    int nb = 0;
    for (int64_t j = 0; j <= s->n; j++)
      if (used[j]) {
        names[nb] = j < s->n ? s->v[j] : "nan";
        used[j] = nb++;
      }
    for (int64_t c = 0; c < n; c++)
      out->batch[c] = (int32_t)used[code[c] >= 0 ? code[c] : s->n];
    out->n_batches = nb;
    if (!(out->batch_names = clue_strings_from(names, nb, err))) rc = CLUE_ENOMEM;
  }
  free(used);
  free(names);
  return rc;
}

/* Batch codes: categories in their order (global obs first, then modalities in
 * order), then other labels by first appearance; unused categories dropped;
 * missing values become the category "nan", last. */
static int code_batches(const key_cols *k, const clue_pairing *p, const int64_t *grow,
                        dataset_cells *out, clue_err *err) {
  label_set s = {0};
  int64_t *code = clue_malloc((size_t)p->n_cells * sizeof *code, err);
  s.map = clue_strmap_new(64, err);
  int rc = (code && s.map) ? CLUE_OK : CLUE_ENOMEM;
  h5ad_column *src[CLUE_MAX_MOD + 1] = {k->global};
  for (int m = 0; m < p->n_mod; m++) src[m + 1] = k->mod[m];
  int64_t at;
  for (int i = 0; i <= p->n_mod; i++) {
    if (!src[i] || src[i]->kind != H5AD_COL_CATEGORICAL) continue;
    for (int64_t j = 0; rc == CLUE_OK && j < src[i]->categories->n; j++)
      rc = label_add(&s, src[i]->categories->s[j], &at, err);
  }
  char lab[512];
  for (int64_t c = 0; rc == CLUE_OK && c < p->n_cells; c++) {
    code[c] = -1;
    if (cell_label(k, p, grow, c, lab, sizeof lab) < 0)
      rc = no_source(p, c, k->key, err);
    else if (lab[0])
      rc = label_add(&s, lab, &code[c], err);
  }
  if (rc == CLUE_OK) rc = renumber(&s, code, p->n_cells, out, err);
  for (int64_t j = 0; j < s.n; j++) free(s.v[j]);
  free(s.v);
  clue_strmap_free(s.map);
  free(code);
  return rc;
}

/* ---- pairing (rank 0) ---- */

static int check_unique(const clue_strings *names, const char *what, clue_err *err) {
  clue_strmap *m = clue_strmap_new(names->n, err);
  int rc = m ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < names->n; i++) {
    int64_t old = -1;
    int put = clue_strmap_put(m, names->s[i], i, &old, err);
    if (put < 0)
      rc = put;
    else if (put == 0)
      rc = clue_fail(err, CLUE_EDATA,
                     "%s: obs name '%s' appears twice (rows %lld and %lld); obs names "
                     "must be unique (mdata.obs_names_make_unique())",
                     what, names->s[i], (long long)old, (long long)i);
  }
  clue_strmap_free(m);
  return rc;
}

/* obsmap rows must be within the modality and used at most once. */
static int check_obsmap(const int64_t *map, int64_t n, int64_t n_rows, const char *path,
                        const char *mod, clue_err *err) {
  uint8_t *seen = clue_calloc((size_t)n_rows + 1, 1, err);
  int rc = seen ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t g = 0; rc == CLUE_OK && g < n; g++) {
    if (map[g] == 0) continue;
    if (map[g] > n_rows)
      rc =
          clue_fail(err, CLUE_EFORMAT,
                    "%s: obsmap/%s maps global cell %lld to row %lld but mod/%s has %lld "
                    "rows",
                    path, mod, (long long)g, (long long)map[g], mod, (long long)n_rows);
    else if (seen[map[g]]++)
      rc = clue_fail(err, CLUE_EFORMAT,
                     "%s: obsmap/%s maps two global cells to row %lld (the second is "
                     "cell %lld)",
                     path, mod, (long long)map[g], (long long)g);
  }
  free(seen);
  return rc;
}

/* Pairs by names, one table lookup per cell. */
static int pair_by_names(const clue_dataset *d, clue_pairing **p, clue_err *err) {
  clue_strings *names[CLUE_MAX_MOD] = {0};
  const char *what[CLUE_MAX_MOD];
  int rc = CLUE_OK;
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++) {
    what[k] = d->mod[k].what;
    rc = h5ad_read_obs_names(d->mod[k].file, &names[k], err);
  }
  if (rc == CLUE_OK) rc = clue_pairing_from_names(names, d->n_mod, what, p, err);
  for (int k = 0; k < d->n_mod; k++) clue_strings_free(names[k]);
  return rc;
}

/* Global row of each paired cell, looked up by name (−1 when absent). */
static int global_rows_by_name(const clue_pairing *p, const clue_strings *g,
                               int64_t *grow, clue_err *err) {
  clue_strmap *m = clue_strmap_new(g->n, err);
  if (!m) return CLUE_ENOMEM;
  for (int64_t i = 0; i < g->n; i++) clue_strmap_put(m, g->s[i], i, NULL, err);
  for (int64_t c = 0; c < p->n_cells; c++) grow[c] = clue_strmap_get(m, p->names->s[c]);
  clue_strmap_free(m);
  return CLUE_OK;
}

/* An .h5mu: by obsmap when every chosen modality has one, else by names. */
static int pair_h5mu(const clue_dataset *d, h5ad_file *global, clue_pairing **p,
                     int64_t **grow, clue_err *err) {
  const char *path = h5ad_path(global);
  clue_strings *g = NULL;
  int64_t *maps[CLUE_MAX_MOD] = {0}, n = 0;
  int rc = h5mu_read_obs_names(path, &g, err);
  bool all = true;
  if (rc == CLUE_OK) rc = check_unique(g, path, err);
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++) {
    rc = h5mu_read_obsmap(path, d->mod[k].name, &maps[k], &n, err);
    all = all && maps[k];
    if (rc == CLUE_OK && maps[k])
      rc =
          check_obsmap(maps[k], n, h5ad_n_obs(d->mod[k].file), path, d->mod[k].name, err);
  }
  if (rc == CLUE_OK && all)
    rc = clue_pairing_from_obsmap(g, maps, d->n_mod, p, err);
  else if (rc == CLUE_OK)
    rc = pair_by_names(d, p, err);
  if (rc == CLUE_OK && !(*grow = clue_malloc((size_t)(*p)->n_cells * sizeof **grow, err)))
    rc = CLUE_ENOMEM;
  if (rc == CLUE_OK && all) {
    int64_t c = 0;
    for (int64_t i = 0; i < g->n; i++) {
      bool any = false;
      for (int k = 0; k < d->n_mod; k++) any = any || maps[k][i] > 0;
      if (any) (*grow)[c++] = i;
    }
  } else if (rc == CLUE_OK) {
    rc = global_rows_by_name(*p, g, *grow, err);
  }
  for (int k = 0; k < d->n_mod; k++) free(maps[k]);
  clue_strings_free(g);
  return rc;
}

/* Each modality must share cells with another one (unless allowed). */
static int check_shared(const clue_config *cfg, const clue_dataset *d,
                        const clue_pairing *p, clue_err *err) {
  if (cfg->allow_unpaired || p->n_mod < 2) return CLUE_OK;
  int nm = p->n_mod;
  for (int k = 0; k < nm; k++) {
    int64_t shared = 0, mine = -1, other = -1;
    for (int64_t c = 0; c < p->n_cells; c++) {
      bool has = p->row[c * nm + k] >= 0, rest = false;
      for (int q = 0; q < nm; q++) rest = rest || (q != k && p->row[c * nm + q] >= 0);
      shared += has && rest;
      if (has && mine < 0) mine = c;
      if (!has && rest && other < 0) other = c;
    }
    if (shared > 0 || mine < 0) continue;
    return clue_fail(err, CLUE_EDATA,
                     "%s shares no cell with the other modalities (e.g. '%s' vs '%s'): "
                     "cells are paired by obs_names, so check that they match across "
                     "files (barcode suffixes such as '-1', sample prefixes); set "
                     "data.allow_unpaired: true to train on unpaired modalities",
                     d->mod[k].what, p->names->s[mine],
                     other >= 0 ? p->names->s[other] : "?");
  }
  return CLUE_OK;
}

/* Rank 0: pairing, selection and batch codes. */
static int cells_rank0(const clue_config *cfg, clue_cells cells, const clue_dataset *d,
                       h5ad_file *global, dataset_cells *out, clue_err *err) {
  int64_t *grow = NULL;
  int rc = global ? pair_h5mu(d, global, &out->pairing, &grow, err)
                  : pair_by_names(d, &out->pairing, err);
  if (rc == CLUE_OK) rc = check_shared(cfg, d, out->pairing, err);
  int64_t n = rc ? 0 : out->pairing->n_cells;
  if (rc == CLUE_OK) {
    out->keep = clue_malloc((size_t)n, err);
    out->batch = clue_calloc((size_t)n, sizeof *out->batch, err);
    if (!out->keep || !out->batch) rc = CLUE_ENOMEM;
  }
  key_cols k;
  if (rc == CLUE_OK && cfg->split_key[0]) {
    rc = read_key(d, global, cfg->split_key, "data.split_key", &k, err);
    if (rc == CLUE_OK)
      rc = select_cells(cfg, cells, &k, out->pairing, grow, out->keep, err);
    key_cols_free(&k);
  } else if (rc == CLUE_OK) {
    rc = select_cells(cfg, cells, NULL, out->pairing, grow, out->keep, err);
  }
  if (rc == CLUE_OK && cfg->batch_key[0]) {
    rc = read_key(d, global, cfg->batch_key, "data.batch_key", &k, err);
    if (rc == CLUE_OK) rc = code_batches(&k, out->pairing, grow, out, err);
    key_cols_free(&k);
  } else if (rc == CLUE_OK) {
    const char *none = "";
    out->n_batches = 1;
    if (!(out->batch_names = clue_strings_from(&none, 1, err))) rc = CLUE_ENOMEM;
  }
  free(grow);
  return rc;
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

/* The batch categories reach every rank; the per-cell arrays stay on rank 0. */
static int bcast_batches(const clue_comm *comm, dataset_cells *out, clue_err *err) {
  int64_t nb = out->n_batches;
  clue_comm_bcast(comm, &nb, sizeof nb, 0);
  out->n_batches = (int)nb;
  return dataset__bcast_strings(comm, &out->batch_names, err);
}

int dataset__cells(const clue_config *cfg, clue_cells cells, const clue_dataset *d,
                   h5ad_file *global, const clue_comm *comm, dataset_cells *out,
                   clue_err *err) {
  memset(out, 0, sizeof *out);
  int rc = CLUE_OK;
  if (comm->rank == 0) rc = cells_rank0(cfg, cells, d, global, out, err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = bcast_batches(comm, out, err);
  if (rc) dataset__cells_free(out);
  return rc;
}

void dataset__cells_free(dataset_cells *c) {
  clue_pairing_free(c->pairing);
  free(c->keep);
  free(c->batch);
  clue_strings_free(c->batch_names);
  memset(c, 0, sizeof *c);
}
