/* h5mu_write.c — the MuData writer: a 512-byte user block naming the format,
 * root attributes (MuData 0.1.0, axis 0), the global obs (the union of cells),
 * obsmap/<mod> for each modality, mod/<mod> AnnData groups written with the
 * h5ad_writer calls, and at commit the global var (the modalities' features one
 * after the other), varmap/<mod> and mod-order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/h5ad_write.h"
#include "h5ad_write_internal.h"

#define USERBLOCK_TEXT \
  "MuData (format-version=0.1.0;creator=clue;creator-version=" CLUE_VERSION ")"

struct h5mu_writer {
  h5w_file *file;
  int64_t n_obs;
  clue_strings *names;     /* (n_obs) global obs names; rank 0 only */
  int n_mod, cap;
  char (*mod)[CLUE_NAME_MAX]; /* (n_mod) names in order of addition */
  int64_t *n_vars;            /* (n_mod) */
  clue_strings **var_names;   /* (n_mod) rank 0: var index, set by end_mod */
  h5ad_writer **open;         /* (n_mod) writer in progress, NULL once ended */
  bool *done;                 /* (n_mod) */
  bool wrote_obs_columns;
};

const clue_strings *h5mu_writer_global_names(const struct h5mu_writer *mu) {
  return mu->names;
}

void h5mu_writer_forget(struct h5mu_writer *mu, h5ad_writer *w) {
  for (int i = 0; mu && i < mu->n_mod; i++)
    if (mu->open[i] == w) mu->open[i] = NULL;
}

static void mu_free(h5mu_writer *w) {
  if (!w) return;
  clue_strings_free(w->names);
  for (int i = 0; i < w->n_mod; i++) {
    clue_strings_free(w->var_names[i]);
    h5w_anndata_free(w->open[i]);
  }
  free(w->mod);
  free(w->n_vars);
  free(w->var_names);
  free(w->open);
  free(w->done);
  free(w);
}

/* Rank 0, serial: root attributes, global obs, empty dicts, mod group. */
static int skeleton_rank0(h5mu_writer *w, clue_err *err) {
  hid_t root = H5Gopen2(w->file->fid, "/", H5P_DEFAULT);
  if (root < 0) return h5w_fail(err, CLUE_EIO, "cannot open the root group");
  int rc = h5w_encoding(root, "MuData", "0.1.0", err);
  if (rc == CLUE_OK) rc = h5w_attr_int64(root, "axis", 0, err);
  if (rc == CLUE_OK) rc = h5w_attr_string(root, "encoder", "clue", err);
  if (rc == CLUE_OK) rc = h5w_attr_string(root, "encoder-version", CLUE_VERSION, err);
  if (rc == CLUE_OK)
    rc = h5w_dataframe(root, "obs", (const char *const *)w->names->s, w->n_obs, NULL, 0,
                       err);
  if (rc == CLUE_OK) rc = h5w_empty_dicts(root, false, err);
  static const char *const maps[] = {"obsmap", "varmap"};
  for (int i = 0; i < 2 && rc == CLUE_OK; i++) {
    hid_t g = h5w_group(root, maps[i], "dict", "0.1.0", err);
    if (g < 0) rc = err->code;
    else H5Gclose(g);
  }
  if (rc == CLUE_OK) {
    hid_t g = H5Gcreate2(root, "mod", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) rc = h5w_fail(err, CLUE_EIO, "cannot create group mod");
    else H5Gclose(g);
  }
  H5Gclose(root);
  return rc;
}

int h5mu_writer_create(const char *path, const clue_strings *names,
                       const char *const *protect, const clue_comm *comm,
                       h5mu_writer **out, clue_err *err) {
  *out = NULL;
  int64_t n = comm->rank == 0 ? (names ? names->n : -1) : 0;
  clue_comm_bcast(comm, &n, sizeof n, 0);
  if (n < 0) return clue_fail(err, CLUE_EINVAL, "%s: no global obs names given", path);
  h5mu_writer *w = clue_calloc(1, sizeof *w, err);
  int rc = clue_comm_agree(comm, w ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(w);
    return rc;
  }
  w->n_obs = n;
  rc = h5w_file_create(path, 512, protect, comm, &w->file, err);
  if (rc) {
    free(w);
    return rc;
  }
  if (comm->rank == 0) {
    w->names = n > 0 ? clue_strings_from((const char *const *)names->s, n, err)
                     : clue_strings_new(0, err);
    rc = w->names ? skeleton_rank0(w, err) : err->code;
    if (rc) clue_err_prefix(err, "%s", path);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc) {
    h5w_file_abort(w->file);
    mu_free(w);
    return rc;
  }
  *out = w;
  return CLUE_OK;
}

int h5mu_writer_obs(h5mu_writer *w, h5ad_column *const *columns, int n_columns,
                    clue_err *err) {
  if (w->wrote_obs_columns)
    return clue_fail(err, CLUE_EINVAL, "%s: global obs columns written twice", w->file->path);
  int rc = h5w_serial(w->file, err);
  if (rc) return rc;
  if (w->file->comm.rank == 0) {
    rc = h5w_check_columns(columns, n_columns, w->n_obs, w->file->path, err);
    hid_t g = rc ? -1 : H5Gopen2(w->file->fid, "/obs", H5P_DEFAULT);
    if (rc == CLUE_OK && g < 0) rc = h5w_fail(err, CLUE_EIO, "%s: cannot open obs", w->file->path);
    if (rc == CLUE_OK) rc = h5w_write_columns(g, columns, n_columns, err);
    if (g >= 0) H5Gclose(g);
    if (rc && g >= 0) clue_err_prefix(err, "%s: obs", w->file->path);
  }
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc == CLUE_OK) w->wrote_obs_columns = true;
  return rc;
}

/* Rank 0: obsmap has n_mod_obs non-zero entries, each row 1..n_mod_obs once. */
static int check_obsmap(const h5mu_writer *w, const char *mod, int64_t n_mod_obs,
                        const uint32_t *obsmap, clue_err *err) {
  if (w->n_obs > 0 && !obsmap)
    return clue_fail(err, CLUE_EINVAL, "%s: modality %s: no obsmap given", w->file->path, mod);
  if (n_mod_obs > w->n_obs || n_mod_obs > (int64_t)UINT32_MAX)
    return clue_fail(err, CLUE_EINVAL, "%s: modality %s has %lld cells, more than the %lld "
                     "global cells", w->file->path, mod, (long long)n_mod_obs,
                     (long long)w->n_obs);
  char *seen = clue_calloc((size_t)n_mod_obs + 1, 1, err);
  if (!seen) return err->code;
  int rc = CLUE_OK;
  int64_t count = 0;
  for (int64_t g = 0; g < w->n_obs && rc == CLUE_OK; g++) {
    uint32_t r = obsmap[g];
    if (r == 0) continue;
    if ((int64_t)r > n_mod_obs || seen[r])
      rc = clue_fail(err, CLUE_EINVAL, "%s: obsmap/%s: global cell %lld maps to row %u, %s",
                     w->file->path, mod, (long long)g, r,
                     (int64_t)r > n_mod_obs ? "beyond the modality's rows" : "already taken");
    else
      seen[r] = 1;
    count++;
  }
  if (rc == CLUE_OK && count != n_mod_obs)
    rc = clue_fail(err, CLUE_EINVAL, "%s: obsmap/%s covers %lld rows, the modality has %lld",
                   w->file->path, mod, (long long)count, (long long)n_mod_obs);
  free(seen);
  return rc;
}

static int check_mod_name(const h5mu_writer *w, const char *mod, clue_err *err) {
  int rc = h5w_check_key(mod, "modality", err);
  if (rc == CLUE_OK && strlen(mod) >= CLUE_NAME_MAX)
    rc = clue_fail(err, CLUE_EINVAL, "modality name too long: %s", mod);
  for (int i = 0; rc == CLUE_OK && i < w->n_mod; i++)
    if (!strcmp(w->mod[i], mod))
      rc = clue_fail(err, CLUE_EINVAL, "modality %s added twice", mod);
  if (rc) clue_err_prefix(err, "%s", w->file->path);
  return rc;
}

/* Every rank: room for one more modality. */
static int grow(h5mu_writer *w, clue_err *err) {
  if (w->n_mod < w->cap) return CLUE_OK;
  int cap = w->cap ? 2 * w->cap : 4;
  void *p[5] = {realloc(w->mod, (size_t)cap * sizeof *w->mod), NULL, NULL, NULL, NULL};
  if (p[0]) w->mod = p[0];
  p[1] = realloc(w->n_vars, (size_t)cap * sizeof *w->n_vars);
  if (p[1]) w->n_vars = p[1];
  p[2] = realloc(w->var_names, (size_t)cap * sizeof *w->var_names);
  if (p[2]) w->var_names = p[2];
  p[3] = realloc(w->open, (size_t)cap * sizeof *w->open);
  if (p[3]) w->open = p[3];
  p[4] = realloc(w->done, (size_t)cap * sizeof *w->done);
  if (p[4]) w->done = p[4];
  for (int i = 0; i < 5; i++)
    if (!p[i]) return clue_fail(err, CLUE_ENOMEM, "out of memory");
  w->cap = cap;
  return CLUE_OK;
}

int h5mu_writer_add_mod(h5mu_writer *w, const char *mod, int64_t n_obs, int64_t n_vars,
                        const uint32_t *obsmap, h5ad_writer **mod_writer,
                        clue_err *err) {
  *mod_writer = NULL;
  int64_t shape[2] = {n_obs, n_vars};
  clue_comm_bcast(&w->file->comm, shape, sizeof shape, 0);
  int rc = check_mod_name(w, mod, err);
  if (rc == CLUE_OK && (shape[0] < 0 || shape[1] < 0))
    rc = clue_fail(err, CLUE_EINVAL, "%s: modality %s: negative shape", w->file->path, mod);
  if (rc == CLUE_OK) rc = grow(w, err);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc == CLUE_OK) rc = h5w_serial(w->file, err);
  if (rc) return rc;
  uint32_t *copy = NULL;
  if (w->file->comm.rank == 0) {
    rc = check_obsmap(w, mod, shape[0], obsmap, err);
    if (rc == CLUE_OK) {
      copy = clue_malloc((size_t)(w->n_obs > 0 ? w->n_obs : 1) * sizeof *copy, err);
      if (!copy) rc = err->code;
      else if (w->n_obs > 0) memcpy(copy, obsmap, (size_t)w->n_obs * sizeof *copy);
    }
    hid_t g = rc ? -1 : H5Gopen2(w->file->fid, "/obsmap", H5P_DEFAULT);
    if (rc == CLUE_OK && g < 0) rc = h5w_fail(err, CLUE_EIO, "%s: cannot open obsmap", w->file->path);
    if (rc == CLUE_OK) rc = h5w_uint32_array(g, mod, obsmap, w->n_obs, err);
    if (g >= 0) H5Gclose(g);
  }
  rc = clue_comm_agree(&w->file->comm, rc, err);
  char group[CLUE_NAME_MAX + 16];
  snprintf(group, sizeof group, "/mod/%s", mod);
  h5ad_writer *mw = NULL;
  if (rc == CLUE_OK) rc = h5w_anndata_new(w->file, false, group, shape[0], shape[1], &mw, err);
  if (rc) {
    free(copy);
    return rc;
  }
  mw->mu = w;
  mw->obsmap = copy;
  int i = w->n_mod++;
  snprintf(w->mod[i], sizeof w->mod[i], "%s", mod);
  w->n_vars[i] = shape[1];
  w->var_names[i] = NULL;
  w->open[i] = mw;
  w->done[i] = false;
  *mod_writer = mw;
  return CLUE_OK;
}

/* Rank 0: names "0", "1", ... for a modality whose var was never written. */
static clue_strings *default_var(int64_t n, clue_err *err) {
  clue_strings *s = clue_strings_new(0, err);
  if (!s) return NULL;
  free(s->pool);
  free(s->s);
  s->n = n;
  s->s = clue_calloc((size_t)(n > 0 ? n : 1), sizeof *s->s, err);
  s->pool = clue_malloc((size_t)(n > 0 ? n : 1) * 21, err);
  if (!s->s || !s->pool) {
    clue_strings_free(s);
    return NULL;
  }
  for (int64_t i = 0; i < n; i++) {
    s->s[i] = s->pool + 21 * i;
    snprintf(s->s[i], 21, "%lld", (long long)i);
  }
  return s;
}

int h5mu_writer_end_mod(h5mu_writer *w, h5ad_writer *mod_writer, clue_err *err) {
  int i = 0;
  while (i < w->n_mod && w->open[i] != mod_writer) i++;
  if (!mod_writer || i == w->n_mod)
    return clue_fail(err, CLUE_EINVAL, "%s: end_mod of a modality that is not open",
                     w->file->path);
  int rc = h5w_anndata_finish(mod_writer, err);
  if (rc == CLUE_OK && w->file->comm.rank == 0) {
    w->var_names[i] = mod_writer->var_names ? mod_writer->var_names
                                            : default_var(w->n_vars[i], err);
    mod_writer->var_names = NULL;
    if (!w->var_names[i]) rc = err->code;
  }
  rc = clue_comm_agree(&w->file->comm, rc, err);
  w->open[i] = NULL;
  w->done[i] = rc == CLUE_OK;
  h5w_anndata_free(mod_writer);
  return rc;
}

/* Rank 0, serial: global var, varmap/<mod>, mod-order. */
static int finish_rank0(h5mu_writer *w, clue_err *err) {
  int64_t total = 0;
  for (int i = 0; i < w->n_mod; i++) total += w->n_vars[i];
  const char **names = clue_malloc((size_t)(total > 0 ? total : 1) * sizeof *names, err);
  uint32_t *map = clue_malloc((size_t)(total > 0 ? total : 1) * sizeof *map, err);
  const char **order = clue_malloc((size_t)(w->n_mod > 0 ? w->n_mod : 1) * sizeof *order, err);
  hid_t root = H5Gopen2(w->file->fid, "/", H5P_DEFAULT);
  int rc = (!names || !map || !order) ? CLUE_ENOMEM : CLUE_OK;
  if (rc == CLUE_OK && root < 0) rc = h5w_fail(err, CLUE_EIO, "cannot open the root group");
  for (int64_t i = 0, at = 0; rc == CLUE_OK && i < w->n_mod; i++)
    for (int64_t j = 0; j < w->n_vars[i]; j++) names[at++] = w->var_names[i]->s[j];
  if (rc == CLUE_OK) rc = h5w_dataframe(root, "var", names, total, NULL, 0, err);
  hid_t g = rc ? -1 : H5Gopen2(root, "varmap", H5P_DEFAULT);
  int64_t first = 0;
  for (int i = 0; rc == CLUE_OK && i < w->n_mod; first += w->n_vars[i], i++) {
    for (int64_t j = 0; j < total; j++)
      map[j] = j >= first && j < first + w->n_vars[i] ? (uint32_t)(j - first + 1) : 0;
    rc = h5w_uint32_array(g, w->mod[i], map, total, err);
  }
  if (g >= 0) H5Gclose(g);
  for (int i = 0; i < w->n_mod; i++) order[i] = w->mod[i];
  g = rc ? -1 : H5Gopen2(root, "mod", H5P_DEFAULT);
  if (rc == CLUE_OK) rc = h5w_attr_strings(g, "mod-order", order, w->n_mod, err);
  if (g >= 0) H5Gclose(g);
  if (root >= 0) H5Gclose(root);
  free(names);
  free(map);
  free(order);
  if (rc) clue_err_prefix(err, "%s", w->file->path);
  return rc;
}

int h5mu_writer_commit(h5mu_writer *w, clue_err *err) {
  int rc = CLUE_OK;
  for (int i = 0; i < w->n_mod && rc == CLUE_OK; i++)
    if (!w->done[i])
      rc = clue_fail(err, CLUE_EINVAL, "%s: modality %s was not finished (h5mu_writer_end_mod)",
                     w->file->path, w->mod[i]);
  if (rc == CLUE_OK) rc = h5w_serial(w->file, err);
  if (rc == CLUE_OK && w->file->comm.rank == 0) rc = finish_rank0(w, err);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc) {
    h5mu_writer_abort(w);
    return rc;
  }
  rc = h5w_file_commit(w->file, USERBLOCK_TEXT, err);
  w->file = NULL;
  mu_free(w);
  return rc;
}

void h5mu_writer_abort(h5mu_writer *w) {
  if (!w) return;
  h5w_file_abort(w->file);
  mu_free(w);
}
