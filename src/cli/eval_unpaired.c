/* eval_unpaired.c — the part of `clue eval` that needs no pairing: the cells
 * of every file pooled (each file a modality), their labels and batches read
 * from obs, and the measures of unpaired.h. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/cli.h"
#include "clue/eval_input.h"
#include "clue/strings.h"
#include "eval_unpaired.h"

/* Text → code, in order of first appearance; texts copied. */
typedef struct codes {
  clue_strmap *map;
  char **text;
  int n, cap;
} codes;

static void codes_free(codes *c) {
  clue_strmap_free(c->map);
  for (int i = 0; i < c->n; i++) free(c->text[i]);
  free(c->text);
}

static int code_of(codes *c, const char *text, int32_t *out, clue_err *err) {
  int64_t v = clue_strmap_get(c->map, text);
  if (v >= 0) {
    *out = (int32_t)v;
    return CLUE_OK;
  }
  if (c->n == c->cap) {
    int cap = c->cap ? 2 * c->cap : 16;
    char **g = realloc(c->text, (size_t)cap * sizeof *g);
    if (!g) return clue_fail(err, CLUE_ENOMEM, "out of memory reading labels");
    c->text = g;
    c->cap = cap;
  }
  if (!(c->text[c->n] = strdup(text))) return clue_fail(err, CLUE_ENOMEM, "out of memory");
  if (clue_strmap_put(c->map, c->text[c->n], c->n, NULL, err) < 0) return CLUE_ENOMEM;
  *out = c->n++;
  return CLUE_OK;
}

/* Not collective. Codes of obs column `col` at rows[0..n) of s (−1: missing or
 * empty, when allowed; otherwise a missing value fails naming the cell). */
static int column_codes(eval_side *s, const char *col, const char *opt, const int64_t *rows,
                        int64_t n, bool missing_ok, codes *c, int32_t **out, clue_err *err) {
  h5ad_column *h = NULL;
  int rc = h5ad_read_obs_column(s->f, col, &h, err);
  if (rc) return clue_err_prefix(err, "%s", opt);
  *out = clue_malloc((size_t)(n + 1) * sizeof **out, err);
  if (!*out) rc = CLUE_ENOMEM;
  char label[512];
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
    h5ad_column_label(h, rows[i], label, sizeof label);
    (*out)[i] = -1;
    if (label[0])
      rc = code_of(c, label, &(*out)[i], err);
    else if (!missing_ok)
      rc = clue_fail(err, CLUE_EDATA, "%s: obs column '%s' (%s) has no value for cell '%s'",
                     s->path, col, opt, s->names->s[rows[i]]);
  }
  h5ad_column_free(h);
  return rc;
}

/* One file: its selected rows, codes, and this rank's block of the embedding. */
typedef struct part {
  eval_side s;
  int64_t *rows, n;
  int32_t *label, *batch;
  float *x;
  int64_t begin, count;
} part;

static void part_free(part *p) {
  eval_side_close(&p->s);
  free(p->rows), free(p->label), free(p->batch), free(p->x);
}

/* Collective. Opens file f, selects its rows, reads its codes, loads its block. */
static int part_load(const eval_unpaired_args *a, int f, part *p, codes *lab, codes *bat,
                     int64_t dim0, const clue_comm *comm, clue_err *err) {
  int rc = eval_side_open(a->files[f], a->key, comm, &p->s, err);
  if (rc) return rc;
  if (dim0 >= 0 && p->s.dim != dim0)
    rc = clue_fail(err, CLUE_EDATA, "%s: obsm/%s has %lld columns but %s's has %lld",
                   p->s.path, a->key, (long long)p->s.dim, a->files[0], (long long)dim0);
  uint8_t *mask = NULL;
  if (rc == CLUE_OK && a->where) {
    eval_where w;
    bool found;
    rc = eval_where_parse(a->where, &w, err);
    if (rc == CLUE_OK) rc = eval_where_mask(&p->s, &w, &mask, &found, err);
  }
  if (rc == CLUE_OK) rc = eval_rows_selected(&p->s, mask, &p->rows, &p->n, err);
  free(mask);
  if (rc == CLUE_OK)
    rc = column_codes(&p->s, a->label, "--label", p->rows, p->n, true, lab, &p->label, err);
  if (rc == CLUE_OK && a->batch_key)
    rc = column_codes(&p->s, a->batch_key, "--batch-key", p->rows, p->n, false, bat, &p->batch,
                      err);
  rc = clue_comm_agree_first(comm, f, rc, err);
  if (rc == CLUE_OK)
    rc = eval_load_rows(&p->s, a->key, p->rows, p->n, comm, &p->x, &p->begin, &p->count, err);
  return rc;
}

/* This rank's rows of every file, one after the other. */
typedef struct pool {
  int64_t n;
  float *x;
  int32_t *label, *batch, *mod;
} pool;

static int pool_make(const part *parts, int n_parts, int64_t dim, bool batches, pool *p,
                     clue_err *err) {
  memset(p, 0, sizeof *p);
  for (int f = 0; f < n_parts; f++) p->n += parts[f].count;
  p->x = clue_malloc((size_t)(p->n * dim + 1) * sizeof *p->x, err);
  p->label = clue_malloc((size_t)(p->n + 1) * sizeof *p->label, err);
  p->mod = clue_malloc((size_t)(p->n + 1) * sizeof *p->mod, err);
  p->batch = batches ? clue_malloc((size_t)(p->n + 1) * sizeof *p->batch, err) : NULL;
  if (!p->x || !p->label || !p->mod || (batches && !p->batch)) return CLUE_ENOMEM;
  int64_t at = 0;
  for (int f = 0; f < n_parts; f++) {
    const part *q = &parts[f];
    memcpy(p->x + at * dim, q->x, (size_t)(q->count * dim) * sizeof *p->x);
    for (int64_t i = 0; i < q->count; i++) {
      p->label[at + i] = q->label[q->begin + i];
      p->mod[at + i] = f;
      if (batches) p->batch[at + i] = q->batch[q->begin + i];
    }
    at += q->count;
  }
  return CLUE_OK;
}

static void pool_free(pool *p) { free(p->x), free(p->label), free(p->batch), free(p->mod); }

int eval_unpaired_run(const eval_unpaired_args *a, const clue_comm *comm, eval_unpaired *out,
                      clue_err *err) {
  memset(out, 0, sizeof *out);
  int F = a->n_files;
  part *parts = clue_calloc((size_t)F, sizeof *parts, err);
  codes lab = {0}, bat = {0};
  lab.map = clue_strmap_new(64, err);
  bat.map = clue_strmap_new(64, err);
  int rc = clue_comm_agree(comm, parts && lab.map && bat.map ? CLUE_OK : CLUE_ENOMEM, err);
  for (int f = 0; rc == CLUE_OK && f < F; f++)
    rc = part_load(a, f, &parts[f], &lab, &bat, f ? parts[0].s.dim : -1, comm, err);
  pool p = {0};
  if (rc == CLUE_OK)
    rc = clue_comm_agree(comm, pool_make(parts, F, parts[0].s.dim, a->batch_key, &p, err), err);
  if (rc == CLUE_OK && lab.n < 2)
    rc = clue_fail(err, CLUE_EDATA, "--label %s: the cells have %d label%s; the measures need "
                   "at least 2", a->label, lab.n, lab.n == 1 ? "" : "s");
  if (rc == CLUE_OK) {
    int64_t total = p.n, before = 0;
    MPI_Exscan(&p.n, &before, 1, MPI_INT64_T, MPI_SUM, comm->comm);
    if (comm->rank == 0) before = 0;
    clue_comm_sum_int64(comm, &total, 1);
    unpaired_input in = {.n_total = total, .begin = before, .n = p.n, .dim = parts[0].s.dim,
                         .x = p.x, .label = p.label, .batch = p.batch, .mod = p.mod,
                         .n_labels = lab.n, .n_batches = bat.n, .n_mods = F, .k = a->k};
    rc = unpaired_compute(&in, comm, &out->r, err);
    out->n_cells = total;
    out->n_labels = lab.n;
    out->n_batches = bat.n;
    out->dim = parts[0].s.dim;
  }
  for (int f = 0; f < F; f++) {
    if (rc == CLUE_OK) {
      snprintf(out->mod[f], sizeof out->mod[f], "%s", parts[f].s.label);
      out->cells[f] = parts[f].n;
    }
    part_free(&parts[f]);
  }
  free(parts);
  pool_free(&p);
  codes_free(&lab);
  codes_free(&bat);
  return rc;
}

static void fmt(char *buf, size_t size, double v) {
  if (isnan(v))
    snprintf(buf, size, "-");
  else
    snprintf(buf, size, "%.4f", v);
}

void eval_unpaired_print(const eval_unpaired_args *a, const eval_unpaired *o,
                         const clue_comm *comm) {
  const unpaired_result *r = &o->r;
  char v[4][32];
  cli_print(comm, "clue eval: %lld cells in %d files, %d %s labels%s%s%s, obsm/%s (%lld dims)\n",
            (long long)o->n_cells, a->n_files, o->n_labels, a->label,
            a->batch_key ? ", batches from " : "", a->batch_key ? a->batch_key : "",
            a->where ? " (selected)" : "", a->key, (long long)o->dim);
  fmt(v[0], 32, r->asw_label);
  fmt(v[1], 32, r->asw_batch);
  fmt(v[2], 32, r->asw_modality);
  fmt(v[3], 32, r->graph_conn);
  cli_print(comm, "  label ASW %s   batch ASW %s   modality mixing ASW %s   graph "
            "connectivity %s   (k = %d)\n", v[0], v[1], v[2], v[3], a->k);
  cli_print(comm, "  %s predicted from the other files' cells (k = %d):\n", a->label, a->k);
  for (int f = 0; f < a->n_files; f++) {
    fmt(v[0], 32, r->accuracy[f]);
    fmt(v[1], 32, r->macro_f1[f]);
    cli_print(comm, "    %-12s %8lld labelled cells   accuracy %s   macro-F1 %s\n", o->mod[f],
              (long long)r->scored[f], v[0], v[1]);
  }
  fmt(v[0], 32, r->accuracy_all);
  fmt(v[1], 32, r->macro_f1_all);
  cli_print(comm, "    %-12s %8lld labelled cells   accuracy %s   macro-F1 %s\n", "all",
            (long long)r->scored_all, v[0], v[1]);
}

/* Appends a number (or null) to a JSON buffer. */
static size_t json_num(char *buf, size_t at, size_t size, const char *key, double v,
                       const char *end) {
  if (isnan(v)) return at + (size_t)snprintf(buf + at, size - at, "\"%s\": null%s", key, end);
  return at + (size_t)snprintf(buf + at, size - at, "\"%s\": %.17g%s", key, v, end);
}

size_t eval_unpaired_json(const eval_unpaired_args *a, const eval_unpaired *o, char *buf,
                          size_t at, size_t size) {
  const unpaired_result *r = &o->r;
  at += (size_t)snprintf(buf + at, size - at, "  \"label_key\": \"%s\",\n  \"cells\": %lld,\n"
                         "  \"labels\": %d,\n  \"label_k\": %d,\n  ",
                         a->label, (long long)o->n_cells, o->n_labels, a->k);
  at = json_num(buf, at, size, "asw_label", r->asw_label, ",\n  ");
  at = json_num(buf, at, size, "asw_batch", r->asw_batch, ",\n  ");
  at = json_num(buf, at, size, "asw_modality", r->asw_modality, ",\n  ");
  at = json_num(buf, at, size, "graph_connectivity", r->graph_conn, ",\n  ");
  at = json_num(buf, at, size, "transfer_accuracy", r->accuracy_all, ",\n  ");
  at = json_num(buf, at, size, "transfer_macro_f1", r->macro_f1_all, ",\n  ");
  at += (size_t)snprintf(buf + at, size - at, "\"transfer\": {");
  for (int f = 0; f < a->n_files && at + 256 < size; f++) {
    at += (size_t)snprintf(buf + at, size - at, "%s\n    \"%s\": {\"cells\": %lld, ", f ? "," : "",
                           o->mod[f], (long long)r->scored[f]);
    at = json_num(buf, at, size, "accuracy", r->accuracy[f], ", ");
    at = json_num(buf, at, size, "macro_f1", r->macro_f1[f], "}");
  }
  return at + (size_t)snprintf(buf + at, size - at, "\n  },\n");
}
