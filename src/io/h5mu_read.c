/* h5mu_read.c — the MuData-level parts of an .h5mu file (shared
 * observations): the modality names (mod-order), the global obs names and
 * obsmap/<mod> (1-based row of each global cell in the modality, 0 = absent),
 * whole or a span of it (one hyperslab: only those entries are read).
 * Not collective: one rank reads these and shares them. The modalities
 * themselves are AnnData groups opened with h5ad_open(path, "mod/<name>"). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5ad_internal.h"

/* A read-only, single-process view of the file's root as an h5ad_file. */
static int open_view(const char *path, h5ad_file *f, clue_err *err) {
  memset(f, 0, sizeof *f);
  f->root = -1;
  f->comm = clue_comm_self();
  f->read_limit = H5AD_READ_LIMIT;
  f->mudata_root = true;
  snprintf(f->path, sizeof f->path, "%s", path);
  int rc = h5ad__open_plain(path, &f->file, err);
  if (rc) return rc;
  f->root = H5Gopen2(f->file, "/", H5P_DEFAULT);
  char enc[64] = "";
  h5ad__attr_string(f->root, "encoding-type", enc, sizeof enc);
  if (strcmp(enc, "MuData"))
    return clue_fail(err, CLUE_EFORMAT,
                     "%s is not a MuData file (root encoding-type '%s', expected "
                     "'MuData')",
                     path, enc);
  return CLUE_OK;
}

static void close_view(h5ad_file *f) {
  if (f->root >= 0) H5Gclose(f->root);
  if (f->file >= 0) H5Fclose(f->file);
}

int h5mu_mod_names(const char *path, clue_strings **out, clue_err *err) {
  h5ad_file f;
  *out = NULL;
  int rc = open_view(path, &f, err);
  hid_t g = -1;
  if (rc == CLUE_OK &&
      (!h5ad__exists(f.root, "mod") || (g = H5Gopen2(f.root, "mod", H5P_DEFAULT)) < 0))
    rc = clue_fail(err, CLUE_EFORMAT, "%s: the group mod (the modalities) is missing",
                   path);
  if (rc == CLUE_OK) rc = h5ad__attr_strings(g, "mod-order", out, path, err);
  for (int64_t i = 0; rc == CLUE_OK && *out && i < (*out)->n; i++)
    if (!h5ad__exists(g, (*out)->s[i]))
      rc = clue_fail(err, CLUE_EFORMAT, "%s: mod-order names '%s' but mod/%s is missing",
                     path, (*out)->s[i], (*out)->s[i]);
  if (rc == CLUE_OK && !*out) rc = h5ad__list_group(f.root, "mod", out, path, err);
  if (g >= 0) H5Gclose(g);
  close_view(&f);
  if (rc) {
    clue_strings_free(*out);
    *out = NULL;
  }
  return rc;
}

/* Reads span s of dataset `rel` (obsmap/<mod>), which must hold n entries,
 * into a new *map; checks that no row is negative. */
static int read_obsmap_span(h5ad_file *f, const char *rel, const char *what, int64_t n,
                            h5ad_span s, int64_t **map, clue_err *err) {
  hid_t d = H5Dopen2(f->root, rel, H5P_DEFAULT);
  int64_t *v = clue_malloc((size_t)h5ad__span_length(s) * sizeof *v, err);
  int rc = CLUE_OK;
  if (d < 0)
    rc = clue_fail(err, CLUE_EFORMAT, "%s is not a dataset", what);
  else if (!v)
    rc = CLUE_ENOMEM;
  else if (h5ad__dset_length(d) != n)
    rc = clue_fail(err, CLUE_EFORMAT, "%s has %lld entries but the global obs has %lld",
                   what, (long long)h5ad__dset_length(d), (long long)n);
  else
    rc = h5ad__read_int64s(d, what, n, s, v, NULL, err);
  for (int64_t i = 0; rc == CLUE_OK && i < h5ad__span_length(s); i++)
    if (v[i] < 0)
      rc = clue_fail(err, CLUE_EFORMAT, "%s: negative row %lld for cell %lld", what,
                     (long long)v[i], (long long)(s.begin + i));
  if (d >= 0) H5Dclose(d);
  if (rc == CLUE_OK)
    *map = v;
  else
    free(v);
  return rc;
}

/* Entries `rows` (NULL: all) of obsmap/<mod>; *n the global obs length, 0 when
 * there is no obsmap/<mod> (then *map is NULL). */
static int read_obsmap(const char *path, const char *mod, const h5ad_span *rows,
                       int64_t **map, int64_t *n, clue_err *err) {
  h5ad_file f;
  *map = NULL;
  *n = 0;
  int rc = open_view(path, &f, err);
  if (rc == CLUE_OK) rc = h5ad__frame_length(&f, "obs", n, err);
  char rel[CLUE_NAME_MAX + 16], what[CLUE_PATH_MAX + CLUE_NAME_MAX + 32];
  snprintf(rel, sizeof rel, "obsmap/%s", mod);
  snprintf(what, sizeof what, "%s: %s", path, rel);
  h5ad_span s = rows ? *rows : (h5ad_span){0, *n};
  if (rc == CLUE_OK) rc = h5ad__check_span(what, s, *n, err);
  if (rc == CLUE_OK && !strchr(mod, '/') && h5ad__exists(f.root, rel))
    rc = read_obsmap_span(&f, rel, what, *n, s, map, err);
  if (!*map) *n = 0;
  close_view(&f);
  return rc;
}

int h5mu_read_obsmap(const char *path, const char *mod, int64_t **map, int64_t *n,
                     clue_err *err) {
  return read_obsmap(path, mod, NULL, map, n, err);
}

int h5mu_read_obsmap_range(const char *path, const char *mod, int64_t begin, int64_t end,
                           int64_t **map, int64_t *n_total, clue_err *err) {
  h5ad_span rows = {begin, end};
  return read_obsmap(path, mod, &rows, map, n_total, err);
}

int h5mu_read_obs_names(const char *path, clue_strings **out, clue_err *err) {
  h5ad_file f;
  *out = NULL;
  int rc = open_view(path, &f, err);
  if (rc == CLUE_OK) rc = h5ad_read_obs_names(&f, out, err);
  close_view(&f);
  return rc;
}

bool h5mu_is_mudata(const char *path) {
  FILE *fp = fopen(path, "rb");
  if (!fp) return false;
  char head[8] = {0};
  size_t got = fread(head, 1, 6, fp);
  fclose(fp);
  if (got == 6 && !memcmp(head, "MuData", 6)) return true;
  hid_t file = -1;
  clue_err e;
  if (h5ad__open_plain(path, &file, &e) != CLUE_OK) return false;
  char enc[64] = "";
  hid_t root = H5Gopen2(file, "/", H5P_DEFAULT);
  if (root >= 0) {
    h5ad__attr_string(root, "encoding-type", enc, sizeof enc);
    H5Gclose(root);
  }
  H5Fclose(file);
  return !strcmp(enc, "MuData");
}
