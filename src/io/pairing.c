/* pairing.c — which cells are the same cell across modalities.
 *
 * By names: a hash table from obs name to cell; cells are numbered in order of
 * first appearance (modality 0's rows in order, then the cells only modality 1
 * has, ...). By MuData obsmap: the global obs order, keeping the cells that
 * have at least one of the chosen modalities. */
#include <stdlib.h>
#include <string.h>

#include "clue/dataset.h"

static clue_pairing *pairing_alloc(int n_mod, int64_t cap, clue_err *err) {
  clue_pairing *p = clue_calloc(1, sizeof *p, err);
  if (!p) return NULL;
  p->n_mod = n_mod;
  p->row = clue_malloc((size_t)(cap * n_mod) * sizeof *p->row, err);
  if (!p->row) {
    free(p);
    return NULL;
  }
  return p;
}

/* Adds modality k's names to the table, appending cells not seen before. */
static int pair_modality(clue_pairing *p, clue_strmap *map, const char **names,
                         const clue_strings *mod, int k, const char *what,
                         clue_err *err) {
  int n_mod = p->n_mod;
  for (int64_t i = 0; i < mod->n; i++) {
    int64_t c = p->n_cells, old = -1;
    int put = clue_strmap_put(map, mod->s[i], c, &old, err);
    if (put < 0) return put;
    if (put == 1) {
      for (int q = 0; q < n_mod; q++) p->row[c * n_mod + q] = -1;
      names[c] = mod->s[i];
      p->n_cells++;
    } else {
      c = old;
      if (p->row[c * n_mod + k] >= 0)
        return clue_fail(err, CLUE_EDATA,
                         "%s: obs name '%s' appears twice (rows %lld and %lld); obs "
                         "names must be unique (adata.obs_names_make_unique())",
                         what, mod->s[i], (long long)p->row[c * n_mod + k], (long long)i);
    }
    p->row[c * n_mod + k] = i;
  }
  return CLUE_OK;
}

int clue_pairing_from_names(clue_strings *const *names, int n_mod,
                            const char *const *what, clue_pairing **out, clue_err *err) {
  *out = NULL;
  int64_t cap = 0;
  for (int k = 0; k < n_mod; k++) cap += names[k]->n;
  clue_pairing *p = pairing_alloc(n_mod, cap, err);
  clue_strmap *map = p ? clue_strmap_new(cap, err) : NULL;
  const char **view = map ? clue_calloc((size_t)cap, sizeof *view, err) : NULL;
  int rc = view ? CLUE_OK : CLUE_ENOMEM;
  for (int k = 0; rc == CLUE_OK && k < n_mod; k++)
    rc = pair_modality(p, map, view, names[k], k, what ? what[k] : "modality", err);
  if (rc == CLUE_OK && !(p->names = clue_strings_from(view, p->n_cells, err)))
    rc = CLUE_ENOMEM;
  free(view);
  clue_strmap_free(map);
  if (rc) {
    clue_pairing_free(p);
    return rc;
  }
  *out = p;
  return CLUE_OK;
}

int clue_pairing_from_obsmap(const clue_strings *global_names, int64_t *const *maps,
                             int n_mod, clue_pairing **out, clue_err *err) {
  *out = NULL;
  int64_t n = global_names->n;
  clue_pairing *p = pairing_alloc(n_mod, n, err);
  const char **view = p ? clue_calloc((size_t)n, sizeof *view, err) : NULL;
  if (!view) {
    clue_pairing_free(p);
    return CLUE_ENOMEM;
  }
  for (int64_t g = 0; g < n; g++) {
    int64_t *row = p->row + p->n_cells * n_mod;
    bool any = false;
    for (int k = 0; k < n_mod; k++) {
      row[k] = maps[k][g] > 0 ? maps[k][g] - 1 : -1;
      any = any || row[k] >= 0;
    }
    if (any) view[p->n_cells++] = global_names->s[g];
  }
  p->names = clue_strings_from(view, p->n_cells, err);
  free(view);
  if (!p->names) {
    clue_pairing_free(p);
    return CLUE_ENOMEM;
  }
  *out = p;
  return CLUE_OK;
}

int64_t clue_pairing_n_complete(const clue_pairing *p) {
  int64_t n = 0;
  for (int64_t c = 0; c < p->n_cells; c++) {
    bool all = true;
    for (int k = 0; k < p->n_mod; k++) all = all && p->row[c * p->n_mod + k] >= 0;
    n += all;
  }
  return n;
}

void clue_pairing_free(clue_pairing *p) {
  if (!p) return;
  free(p->row);
  clue_strings_free(p->names);
  free(p);
}
