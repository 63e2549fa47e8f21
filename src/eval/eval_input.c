/* eval_input.c — opening, selecting, pairing and loading the embeddings of
 * `clue eval` and `clue match` (see eval_input.h). */
#include "clue/eval_input.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clue/rowdist.h"

/* Splits "FILE.h5mu:MOD" into file and group "mod/MOD"; anything else is a file. */
static void split_path(const char *path, eval_side *s, char *group, size_t gsize) {
  snprintf(s->path, sizeof s->path, "%s", path);
  snprintf(s->file, sizeof s->file, "%s", path);
  group[0] = '\0';
  const char *colon = strrchr(path, ':');
  if (colon && colon - path >= 5 && !strncmp(colon - 5, ".h5mu", 5) && colon[1]) {
    s->file[colon - path] = '\0';
    snprintf(group, gsize, "mod/%s", colon + 1);
    snprintf(s->label, sizeof s->label, "%s", colon + 1);
    return;
  }
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  snprintf(s->label, sizeof s->label, "%s", base);
  size_t n = strlen(s->label);
  if (n > 5 && !strcmp(s->label + n - 5, ".h5ad")) s->label[n - 5] = '\0';
}

/* "a, b, c" (at most ~400 characters) for messages. */
static void join_names(const clue_strings *l, char *buf, size_t size) {
  buf[0] = '\0';
  size_t at = 0;
  for (int64_t i = 0; i < l->n && at + 8 < size; i++) {
    int w = snprintf(buf + at, size - at, "%s%s", i ? ", " : "", l->s[i]);
    if (w < 0 || at + (size_t)w >= size - 8) {
      snprintf(buf + at, size - at, ", ...");
      break;
    }
    at += (size_t)w;
  }
}

/* Not collective: obsm/<key> must be listed under obsm. */
static int check_obsm_key(eval_side *s, const char *key, clue_err *err) {
  clue_strings *keys = NULL;
  int rc = h5ad_obsm_names(s->f, &keys, err);
  if (rc) return rc;
  bool found = false;
  for (int64_t i = 0; i < keys->n; i++) found |= !strcmp(keys->s[i], key);
  if (!found) {
    char list[480];
    join_names(keys, list, sizeof list);
    rc = clue_fail(err, CLUE_EFORMAT, "%s has no obsm/%s (%s%s%s); choose one with --key",
                   s->path, key, keys->n ? "obsm holds: " : "obsm is empty", list,
                   keys->n ? "" : "; was it written by clue embed?");
  }
  clue_strings_free(keys);
  return rc;
}

int eval_side_open(const char *path, const char *key, const clue_comm *comm, eval_side *s,
                   clue_err *err) {
  memset(s, 0, sizeof *s);
  char group[CLUE_NAME_MAX + 8];
  split_path(path, s, group, sizeof group);
  int rc = CLUE_OK;
  if (!group[0] && h5mu_is_mudata(s->file))
    rc = clue_fail(err, CLUE_EINVAL,
                   "%s is a MuData file: name the modality, e.g. %s:rna", s->file, s->file);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) rc = h5ad_open(s->file, group[0] ? group : NULL, comm, &s->f, err);
  if (rc) {
    memset(s, 0, sizeof *s);
    return rc;
  }
  s->n_obs = h5ad_n_obs(s->f);
  rc = h5ad_read_obs_names(s->f, &s->names, err);
  if (rc == CLUE_OK) rc = check_obsm_key(s, key, err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) {
    float *none = NULL;
    rc = h5ad_read_obsm_rows(s->f, key, 0, 0, &none, &s->dim, err);
    free(none);
  }
  if (rc == CLUE_OK && s->dim < 1)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: obsm/%s has no columns", s->path, key);
  if (rc) {
    eval_side_close(s);
    return rc;
  }
  return CLUE_OK;
}

void eval_side_close(eval_side *s) {
  if (s->f) h5ad_close(s->f);
  clue_strings_free(s->names);
  memset(s, 0, sizeof *s);
}

int eval_where_parse(const char *text, eval_where *w, clue_err *err) {
  const char *eq = strchr(text, '=');
  if (!eq || eq == text || !eq[1] || (size_t)(eq - text) >= sizeof w->column ||
      strlen(eq + 1) >= sizeof w->value)
    return clue_fail(err, CLUE_EUSAGE,
                     "--where '%s': expected COLUMN=VALUE, e.g. --where split=test", text);
  memcpy(w->column, text, (size_t)(eq - text));
  w->column[eq - text] = '\0';
  snprintf(w->value, sizeof w->value, "%s", eq + 1);
  return CLUE_OK;
}

int eval_where_mask(eval_side *s, const eval_where *w, uint8_t **mask, bool *found,
                    clue_err *err) {
  *mask = NULL;
  *found = false;
  clue_strings *cols = NULL;
  int rc = h5ad_obs_column_names(s->f, &cols, err);
  if (rc) return rc;
  for (int64_t i = 0; i < cols->n; i++) *found |= !strcmp(cols->s[i], w->column);
  clue_strings_free(cols);
  if (!*found) return CLUE_OK;
  h5ad_column *col = NULL;
  rc = h5ad_read_obs_column(s->f, w->column, &col, err);
  if (rc) return rc;
  *mask = clue_malloc((size_t)s->n_obs + 1, err);
  if (!*mask) {
    h5ad_column_free(col);
    return CLUE_ENOMEM;
  }
  char label[512];
  for (int64_t i = 0; i < s->n_obs; i++) {
    h5ad_column_label(col, i, label, sizeof label);
    (*mask)[i] = !strcmp(label, w->value);
  }
  h5ad_column_free(col);
  return CLUE_OK;
}

int eval_rows_selected(const eval_side *s, const uint8_t *mask, int64_t **rows, int64_t *n,
                       clue_err *err) {
  *rows = clue_malloc((size_t)s->n_obs * sizeof **rows + 1, err);
  if (!*rows) return CLUE_ENOMEM;
  *n = 0;
  for (int64_t i = 0; i < s->n_obs; i++)
    if (!mask || mask[i]) (*rows)[(*n)++] = i;
  return CLUE_OK;
}

/* A name → row table of the selected rows; fails on a repeated name. */
static int name_table(const eval_side *s, const uint8_t *mask, clue_strmap **out,
                      clue_err *err) {
  clue_strmap *m = clue_strmap_new(s->n_obs, err);
  if (!m) return CLUE_ENOMEM;
  for (int64_t i = 0; i < s->n_obs; i++) {
    if (mask && !mask[i]) continue;
    int64_t old = -1;
    int put = clue_strmap_put(m, s->names->s[i], i, &old, err);
    if (put < 0) {
      clue_strmap_free(m);
      return put;
    }
    if (put == 0) {
      clue_strmap_free(m);
      return clue_fail(err, CLUE_EDATA,
                       "%s: obs name '%s' appears twice (rows %lld and %lld); cells are "
                       "paired by name, so names must be unique",
                       s->path, s->names->s[i], (long long)old, (long long)i);
    }
  }
  *out = m;
  return CLUE_OK;
}

static const char *first_selected(const eval_side *s, const uint8_t *mask) {
  for (int64_t i = 0; i < s->n_obs; i++)
    if (!mask || mask[i]) return s->names->s[i];
  return NULL;
}

int eval_pair_by_names(const eval_side *a, const uint8_t *mask_a, const eval_side *b,
                       const uint8_t *mask_b, int64_t **rows_a, int64_t **rows_b,
                       int64_t *n, clue_err *err) {
  *rows_a = *rows_b = NULL;
  *n = 0;
  clue_strmap *ma = NULL, *mb = NULL;
  int rc = name_table(a, mask_a, &ma, err);
  if (rc == CLUE_OK) rc = name_table(b, mask_b, &mb, err);
  if (rc == CLUE_OK) {
    *rows_a = clue_malloc((size_t)a->n_obs * sizeof(int64_t) + 1, err);
    *rows_b = clue_malloc((size_t)a->n_obs * sizeof(int64_t) + 1, err);
    if (!*rows_a || !*rows_b) rc = CLUE_ENOMEM;
  }
  for (int64_t i = 0; rc == CLUE_OK && i < a->n_obs; i++) {
    if (mask_a && !mask_a[i]) continue;
    int64_t j = clue_strmap_get(mb, a->names->s[i]);
    if (j < 0) continue;
    (*rows_a)[*n] = i;
    (*rows_b)[*n] = j;
    (*n)++;
  }
  if (rc == CLUE_OK && *n == 0) {
    const char *x = first_selected(a, mask_a), *y = first_selected(b, mask_b);
    if (!x || !y)
      rc = clue_fail(err, CLUE_EDATA, "%s: no cell is selected", !x ? a->path : b->path);
    else
      rc = clue_fail(err, CLUE_EDATA,
                     "%s and %s share no cell names (e.g. '%s' and '%s'); cells are paired "
                     "by obs_names", a->path, b->path, x, y);
  }
  clue_strmap_free(ma);
  clue_strmap_free(mb);
  if (rc) {
    free(*rows_a);
    free(*rows_b);
    *rows_a = *rows_b = NULL;
    *n = 0;
  }
  return rc;
}

/* File rows read per collective round (bounds the memory of a slice). */
static int64_t round_rows(int64_t dim) {
  int64_t r = ((int64_t)1 << 24) / (dim > 0 ? dim : 1);
  return r > 0 ? r : 1;
}

/* Collective. Reads this rank's slice of the file in rounds and keeps the listed
 * rows: send (m × dim) and dest (m) list positions. */
static int read_slice(eval_side *s, const char *key, const int64_t *pos, const clue_comm *c,
                      float *send, int64_t *dest, int64_t *m, clue_err *err) {
  int64_t fb, fe, rounds, per = round_rows(s->dim);
  clue_block_range(s->n_obs, c->size, c->rank, &fb, &fe);
  int64_t biggest = (s->n_obs + c->size - 1) / c->size;
  rounds = (biggest + per - 1) / per;
  *m = 0;
  int rc = CLUE_OK;
  for (int64_t r = 0; r < rounds && rc == CLUE_OK; r++) {
    int64_t b = fb + r * per < fe ? fb + r * per : fe;
    int64_t e = b + per < fe ? b + per : fe;
    float *buf = NULL;
    int64_t dim = 0;
    rc = h5ad_read_obsm_rows(s->f, key, b, e, &buf, &dim, err);
    if (rc) return rc; /* agreed by the reader */
    if (dim != s->dim)
      rc = clue_fail(err, CLUE_EFORMAT, "%s: obsm/%s changed width", s->path, key);
    for (int64_t i = b; rc == CLUE_OK && i < e; i++) {
      if (pos[i] < 0) continue;
      const float *row = buf + (i - b) * dim;
      for (int64_t k = 0; k < dim && rc == CLUE_OK; k++)
        if (!isfinite(row[k]))
          rc = clue_fail(err, CLUE_ENUMERIC, "%s: obsm/%s of cell '%s' (row %lld) holds %s",
                         s->path, key, s->names->s[i], (long long)i,
                         isnan(row[k]) ? "NaN" : "an infinite value");
      memcpy(send + *m * dim, row, (size_t)dim * sizeof(float));
      dest[(*m)++] = pos[i];
    }
    free(buf);
    rc = clue_comm_agree(c, rc, err);
  }
  return rc;
}

int eval_load_rows(eval_side *s, const char *key, const int64_t *rows, int64_t n,
                   const clue_comm *comm, float **out, int64_t *begin, int64_t *count,
                   clue_err *err) {
  *out = NULL;
  int64_t fb, fe;
  clue_block_range(s->n_obs, comm->size, comm->rank, &fb, &fe);
  int64_t *pos = clue_malloc((size_t)s->n_obs * sizeof *pos + 1, err);
  float *send = clue_malloc((size_t)(fe - fb) * (size_t)s->dim * sizeof *send + 1, err);
  int64_t *dest = clue_malloc((size_t)(fe - fb) * sizeof *dest + 1, err);
  int rc = pos && send && dest ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < s->n_obs; i++) pos[i] = -1;
    for (int64_t t = 0; t < n && rc == CLUE_OK; t++) {
      if (rows[t] < 0 || rows[t] >= s->n_obs || pos[rows[t]] >= 0)
        rc = clue_fail(err, CLUE_EINVAL, "%s: row list holds %lld twice or out of range",
                       s->path, (long long)rows[t]);
      else
        pos[rows[t]] = t;
    }
  }
  rc = clue_comm_agree(comm, rc, err);
  int64_t m = 0;
  if (rc == CLUE_OK) rc = read_slice(s, key, pos, comm, send, dest, &m, err);
  if (rc == CLUE_OK && s->dim > INT32_MAX)
    rc = clue_fail(err, CLUE_EFORMAT, "%s: obsm/%s is too wide", s->path, key);
  if (rc == CLUE_OK)
    rc = clue_rows_redistribute(comm, send, dest, m, (int)s->dim, n, out, begin, count, err);
  free(pos);
  free(send);
  free(dest);
  return rc;
}

/* Distinct labels and their codes. Labels are copied so the table's keys live. */
typedef struct label_codes {
  clue_strmap *map;
  char **text;
  int n, cap;
} label_codes;

static int code_of(label_codes *lc, const char *label, int32_t *code, clue_err *err) {
  int64_t c = clue_strmap_get(lc->map, label);
  if (c >= 0) {
    *code = (int32_t)c;
    return CLUE_OK;
  }
  if (lc->n == lc->cap) {
    int cap = lc->cap ? 2 * lc->cap : 16;
    char **t = realloc(lc->text, (size_t)cap * sizeof *t);
    if (!t) return clue_fail(err, CLUE_ENOMEM, "out of memory reading batch labels");
    lc->text = t;
    lc->cap = cap;
  }
  lc->text[lc->n] = strdup(label);
  if (!lc->text[lc->n]) return clue_fail(err, CLUE_ENOMEM, "out of memory reading batch labels");
  int put = clue_strmap_put(lc->map, lc->text[lc->n], lc->n, NULL, err);
  if (put < 0) return put;
  *code = lc->n++;
  return CLUE_OK;
}

static int side_codes(eval_side *s, const int64_t *rows, int64_t n, const char *key,
                      label_codes *lc, int32_t **codes, clue_err *err) {
  h5ad_column *col = NULL;
  int rc = h5ad_read_obs_column(s->f, key, &col, err);
  if (rc) return clue_err_prefix(err, "--batch-key");
  *codes = clue_malloc((size_t)n * sizeof **codes + 1, err);
  if (!*codes) rc = CLUE_ENOMEM;
  char label[512];
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
    h5ad_column_label(col, rows[i], label, sizeof label);
    if (!label[0])
      rc = clue_fail(err, CLUE_EDATA, "%s: obs column '%s' has no value for cell '%s'",
                     s->path, key, s->names->s[rows[i]]);
    else
      rc = code_of(lc, label, &(*codes)[i], err);
  }
  h5ad_column_free(col);
  if (rc) {
    free(*codes);
    *codes = NULL;
  }
  return rc;
}

int eval_batch_codes(eval_side *a, const int64_t *rows_a, int64_t na, eval_side *b,
                     const int64_t *rows_b, int64_t nb, const char *key, int32_t **codes_a,
                     int32_t **codes_b, int *n_batches, clue_err *err) {
  *codes_a = *codes_b = NULL;
  label_codes lc = {0};
  lc.map = clue_strmap_new(64, err);
  int rc = lc.map ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK) rc = side_codes(a, rows_a, na, key, &lc, codes_a, err);
  if (rc == CLUE_OK) rc = side_codes(b, rows_b, nb, key, &lc, codes_b, err);
  *n_batches = lc.n;
  clue_strmap_free(lc.map);
  for (int i = 0; i < lc.n; i++) free(lc.text[i]);
  free(lc.text);
  if (rc) {
    free(*codes_a);
    free(*codes_b);
    *codes_a = *codes_b = NULL;
  }
  return rc;
}

int eval_check_output(const char *path, const char *what, const eval_side *a,
                      const eval_side *b, clue_err *err) {
  struct stat so, si;
  if (stat(path, &so) != 0) return CLUE_OK;
  const eval_side *in[2] = {a, b};
  for (int i = 0; i < 2; i++)
    if (stat(in[i]->file, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
      return clue_fail(err, CLUE_EINVAL, "%s %s is the input %s: refusing to overwrite it",
                       what, path, in[i]->file);
  return CLUE_OK;
}
