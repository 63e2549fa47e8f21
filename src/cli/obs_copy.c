/* obs_copy.c — copying a subset of an input file's obs (index and columns) into
 * an output file, so outputs carry the cell names and annotations users know. */
#include <stdlib.h>
#include <string.h>

#include "clue/cli.h"
#include "clue/h5ad_write.h"

/* A new column holding rows rows[0..n) of c. */
static h5ad_column *column_select(const h5ad_column *c, const int64_t *rows, int64_t n,
                                  clue_err *err) {
  h5ad_column *o = clue_calloc(1, sizeof *o, err);
  if (!o) return NULL;
  memcpy(o->name, c->name, sizeof o->name);
  memcpy(o->encoding, c->encoding, sizeof o->encoding);
  o->kind = c->kind;
  o->n = n;
  o->ordered = c->ordered;
  int ok = 1;
  if (c->codes) {
    ok = (o->codes = clue_malloc((size_t)(n + 1) * sizeof *o->codes, err)) != NULL;
    for (int64_t i = 0; ok && i < n; i++) o->codes[i] = c->codes[rows[i]];
  }
  if (ok && c->categories)
    ok = (o->categories = clue_strings_from((const char *const *)c->categories->s,
                                            c->categories->n, err)) != NULL;
  if (ok && c->values) {
    ok = (o->values = clue_malloc((size_t)(n + 1) * sizeof *o->values, err)) != NULL;
    for (int64_t i = 0; ok && i < n; i++) o->values[i] = c->values[rows[i]];
  }
  if (ok && c->strings) {
    const char **s = clue_malloc((size_t)(n + 1) * sizeof *s, err);
    ok = s != NULL;
    for (int64_t i = 0; ok && i < n; i++) s[i] = c->strings->s[rows[i]];
    if (ok) ok = (o->strings = clue_strings_from(s, n, err)) != NULL;
    free(s);
  }
  if (!ok) {
    h5ad_column_free(o);
    return NULL;
  }
  return o;
}

/* Rank 0: reads the index and the readable columns, selected. */
static int read_selected(h5ad_file *src, const int64_t *rows, int64_t n,
                         clue_strings **names, h5ad_column ***cols, int *n_cols,
                         clue_err *err) {
  clue_strings *all = NULL, *colnames = NULL;
  int rc = h5ad_read_obs_names(src, &all, err);
  if (rc) return rc;
  const char **sel = clue_malloc((size_t)(n + 1) * sizeof *sel, err);
  if (!sel) rc = CLUE_ENOMEM;
  for (int64_t i = 0; !rc && i < n; i++) sel[i] = all->s[rows[i]];
  if (!rc && !(*names = clue_strings_from(sel, n, err))) rc = CLUE_ENOMEM;
  free(sel);
  clue_strings_free(all);
  if (!rc) rc = h5ad_obs_column_names(src, &colnames, err);
  if (rc) return rc;
  *cols = clue_calloc((size_t)colnames->n + 1, sizeof **cols, err);
  if (!*cols) rc = CLUE_ENOMEM;
  for (int64_t j = 0; !rc && j < colnames->n; j++) {
    h5ad_column *c = NULL;
    clue_err skip;
    if (h5ad_read_obs_column(src, colnames->s[j], &c, &skip) != CLUE_OK) continue;
    if (c->kind != H5AD_COL_OTHER) {
      h5ad_column *s = column_select(c, rows, n, err);
      if (!s) rc = CLUE_ENOMEM;
      else (*cols)[(*n_cols)++] = s;
    }
    h5ad_column_free(c);
  }
  clue_strings_free(colnames);
  return rc;
}

int cli_copy_obs_extra(h5ad_writer *w, h5ad_file *src, const int64_t *rows, int64_t n,
                       h5ad_column *const *extra, int n_extra, const clue_comm *comm,
                       clue_err *err) {
  clue_strings *names = NULL;
  h5ad_column **cols = NULL;
  int n_cols = 0, rc = CLUE_OK;
  if (comm->rank == 0) rc = read_selected(src, rows, n, &names, &cols, &n_cols, err);
  h5ad_column **all = NULL;
  int n_all = 0;
  if (comm->rank == 0 && rc == CLUE_OK) { /* the input's columns, then the new ones */
    all = clue_calloc((size_t)(n_cols + n_extra) + 1, sizeof *all, err);
    if (!all) rc = CLUE_ENOMEM;
    for (int j = 0; all && j < n_cols; j++) {
      bool replaced = false;
      for (int e = 0; e < n_extra; e++) replaced |= !strcmp(cols[j]->name, extra[e]->name);
      if (!replaced) all[n_all++] = cols[j];
    }
    for (int e = 0; all && e < n_extra; e++) all[n_all++] = extra[e];
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = h5ad_writer_obs(w, names, all, n_all, err);
  for (int j = 0; j < n_cols; j++) h5ad_column_free(cols[j]);
  free(cols);
  free(all);
  clue_strings_free(names);
  return rc;
}

int cli_copy_obs(h5ad_writer *w, h5ad_file *src, const int64_t *rows, int64_t n,
                 const clue_comm *comm, clue_err *err) {
  return cli_copy_obs_extra(w, src, rows, n, NULL, 0, comm, err);
}
