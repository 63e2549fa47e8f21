/* report_embed.c — the embedding map of `clue report` (see report_embed.h). */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/eval_input.h"
#include "clue/knn.h"
#include "clue/labels.h"
#include "clue/report.h"
#include "clue/rng.h"
#include "clue/rowdist.h"
#include "clue/strings.h"
#include "clue/umap.h"
#include "report_embed.h"

#define MAX_FILES 64

/* Category names → codes 0, 1, … in order of first appearance, with counts. */
typedef struct cats {
  clue_strmap *map;
  char **name;
  int64_t *count;
  int n, cap;
} cats;

static int cat_code(cats *c, const char *name, clue_err *err) {
  if (!c->map && !(c->map = clue_strmap_new(64, err))) return -2;
  int64_t v = clue_strmap_get(c->map, name);
  if (v >= 0) return (int)v;
  if (c->n == c->cap) {
    int cap = c->cap ? 2 * c->cap : 16;
    char **nm = realloc(c->name, (size_t)cap * sizeof *nm);
    if (nm) c->name = nm;
    int64_t *ct = realloc(c->count, (size_t)cap * sizeof *ct);
    if (ct) c->count = ct;
    if (!nm || !ct) return clue_fail(err, CLUE_ENOMEM, "out of memory"), -2;
    c->cap = cap;
  }
  if (!(c->name[c->n] = strdup(name))) return clue_fail(err, CLUE_ENOMEM, "out of memory"), -2;
  c->count[c->n] = 0;
  if (clue_strmap_put(c->map, c->name[c->n], c->n, NULL, err) < 0) return -2;
  return c->n++;
}

static void cats_free(cats *c) {
  for (int i = 0; i < c->n; i++) free(c->name[i]);
  free(c->name), free(c->count);
  clue_strmap_free(c->map);
  memset(c, 0, sizeof *c);
}

/* Every rank's copy of the cells drawn. */
typedef struct cells {
  int64_t n, dim;
  float *x;                    /* (n × dim) */
  int32_t *mod, *label, *batch; /* (n) codes; −1 none */
  cats mods, labels, batches;
  char file[MAX_FILES][CLUE_PATH_MAX];
  int64_t file_cells[MAX_FILES], file_shown[MAX_FILES];
  int n_files;
  int64_t total;               /* cells in the readable files */
  char skipped[2048];          /* files left out and why */
  bool has_label, has_batch;
  char label_col[CLUE_NAME_MAX];
} cells;

static void cells_free(cells *c) {
  free(c->x), free(c->mod), free(c->label), free(c->batch);
  cats_free(&c->mods), cats_free(&c->labels), cats_free(&c->batches);
}

/* Rank 0 lists DIR's *.h5ad files (sorted), joined by newlines, for every rank. */
static int list_files(const char *dir, const clue_comm *comm, char **out, clue_err *err) {
  char *list = NULL;
  if (comm->rank == 0) {
    clue_strbuf b = {0};
    DIR *d = opendir(dir);
    struct dirent **names = NULL;
    int n = d ? scandir(dir, &names, NULL, alphasort) : -1;
    for (int i = 0; i < n; i++) {
      size_t len = strlen(names[i]->d_name);
      if (len > 5 && !strcmp(names[i]->d_name + len - 5, ".h5ad"))
        clue_sb_printf(&b, "%s/%s\n", dir, names[i]->d_name);
      free(names[i]);
    }
    free(names);
    if (d) closedir(d);
    list = strdup(clue_sb_text(&b));
    clue_sb_free(&b);
  }
  int rc = clue_comm_bcast_string(comm, &list, 0, err);
  *out = list;
  return rc;
}

/* Whether global row i of file f is drawn: a fixed random share p of the cells. */
static bool drawn(uint64_t seed, int f, int64_t i, double p) {
  if (p >= 1) return true;
  clue_rng g = clue_rng_stream(seed, CLUE_RNG_REPORT, (uint64_t)f, (uint64_t)i);
  return clue_rng_uniform(&g) < p;
}

/* Codes of obs column col at rows[0..n) of s into out (−1 missing); false when
 * the file has no such column. */
static bool column(eval_side *s, const char *col, const int64_t *rows, int64_t n, cats *c,
                   int32_t *out, clue_err *err) {
  h5ad_column *h = NULL;
  clue_err e;
  if (!col || h5ad_read_obs_column(s->f, col, &h, &e)) {
    for (int64_t i = 0; i < n; i++) out[i] = -1;
    return false;
  }
  char buf[512];
  for (int64_t i = 0; i < n; i++) {
    h5ad_column_label(h, rows[i], buf, sizeof buf);
    out[i] = buf[0] ? cat_code(c, buf, err) : -1;
    if (out[i] >= 0) c->count[out[i]]++;
  }
  h5ad_column_free(h);
  return true;
}

/* Collective. Appends the drawn rows of one open file to c (every rank). */
static int add_file(const report_embed_args *a, eval_side *s, int f, double p,
                    const clue_comm *comm, cells *c, clue_err *err) {
  int64_t n = 0, *rows = clue_malloc((size_t)(s->n_obs + 1) * sizeof *rows, err);
  if (!rows) return CLUE_ENOMEM;
  for (int64_t i = 0; i < s->n_obs; i++)
    if (drawn(a->seed, f, i, p)) rows[n++] = i;
  float *blk = NULL;
  int64_t begin = 0, count = 0;
  int rc = eval_load_rows(s, a->key, rows, n, comm, &blk, &begin, &count, err);
  int64_t N = c->n + n, d = s->dim;
  float *x = rc ? NULL : realloc(c->x, (size_t)(N * d + 1) * sizeof *x);
  int32_t *m = rc ? NULL : realloc(c->mod, (size_t)(N + 1) * sizeof *m);
  if (x) c->x = x;
  if (m) c->mod = m;
  int32_t *l = x && m ? realloc(c->label, (size_t)(N + 1) * sizeof *l) : NULL;
  if (l) c->label = l;
  int32_t *bt = l ? realloc(c->batch, (size_t)(N + 1) * sizeof *bt) : NULL;
  if (bt) c->batch = bt;
  if (!rc && !bt) rc = clue_fail(err, CLUE_ENOMEM, "out of memory reading %s", s->path);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) { /* every rank gets every block */
    int P = comm->size;
    int *cnt = calloc((size_t)P, sizeof *cnt), *dsp = calloc((size_t)P, sizeof *dsp);
    for (int r = 0; cnt && dsp && r < P; r++) {
      int64_t b0, e0;
      clue_block_range(n, P, r, &b0, &e0);
      cnt[r] = (int)((e0 - b0) * d), dsp[r] = (int)(b0 * d);
    }
    if (cnt && dsp)
      MPI_Allgatherv(blk, (int)(count * d), MPI_FLOAT, c->x + c->n * d, cnt, dsp, MPI_FLOAT,
                     comm->comm);
    else
      rc = clue_fail(err, CLUE_ENOMEM, "out of memory");
    free(cnt), free(dsp);
  }
  if (rc == CLUE_OK) {
    c->has_label |= column(s, a->label ? a->label : c->label_col, rows, n, &c->labels,
                           c->label + c->n, err);
    c->has_batch |= column(s, a->batch_key, rows, n, &c->batches, c->batch + c->n, err);
    for (int64_t i = 0; i < n; i++) c->mod[c->n + i] = f;
    c->dim = d;
    c->n = N;
  }
  free(blk), free(rows);
  return rc;
}

/* Collective. Opens every file of the folder, draws the cells, loads them. */
static int load(const report_embed_args *a, const clue_comm *comm, cells *c, clue_err *err) {
  char *list = NULL;
  int rc = list_files(a->dir, comm, &list, err);
  eval_side side[MAX_FILES];
  int nf = 0;
  for (char *p = list, *nl; rc == CLUE_OK && p && *p && nf < MAX_FILES; p = nl + 1) {
    if (!(nl = strchr(p, '\n'))) break;
    *nl = '\0';
    clue_err e;
    if (eval_side_open(p, a->key, comm, &side[nf], &e)) {
      size_t at = strlen(c->skipped);
      snprintf(c->skipped + at, sizeof c->skipped - at, "%s%s", at ? "; " : "", e.msg);
      continue;
    }
    if (nf > 0 && side[nf].dim != side[0].dim) {
      size_t at = strlen(c->skipped);
      snprintf(c->skipped + at, sizeof c->skipped - at, "%s%s: obsm/%s has %lld columns, not %lld",
               at ? "; " : "", p, a->key, (long long)side[nf].dim, (long long)side[0].dim);
      eval_side_close(&side[nf]);
      continue;
    }
    c->total += side[nf].n_obs;
    nf++;
  }
  free(list);
  double p = c->total > a->max_cells ? (double)a->max_cells / (double)c->total : 1;
  snprintf(c->label_col, sizeof c->label_col, "%s", a->label ? a->label : "cell_type");
  for (int f = 0; f < nf; f++) {
    if (rc == CLUE_OK) {
      int64_t before = c->n;
      snprintf(c->file[f], sizeof c->file[f], "%s", side[f].path);
      cat_code(&c->mods, side[f].label, err);
      rc = add_file(a, &side[f], f, p, comm, c, err);
      c->file_cells[f] = side[f].n_obs;
      c->file_shown[f] = c->n - before;
      if (rc == CLUE_OK) c->mods.count[f] = c->file_shown[f];
    }
    eval_side_close(&side[f]);
  }
  c->n_files = nf;
  return rc;
}

/* Collective. confusion (L × L, truth × prediction) of leave-modality-out
 * label votes: each file's labelled cells from the labelled cells of the
 * other files, k nearest on the L2-normalised embedding. */
static int confusion(const cells *c, int k, const clue_comm *comm, int64_t *conf, clue_err *err);

static void legend(clue_strbuf *b, const cats *c, const char *what) {
  clue_sb_printf(b, "<div class='legend'>");
  for (int i = 0; i < c->n; i++) {
    clue_sb_printf(b, "<div><span class='sw' style='background:%s'></span>", report_palette(i));
    clue_sb_html(b, c->name[i]);
    clue_sb_printf(b, " (%lld)</div>", (long long)c->count[i]);
  }
  if (c->n > 20)
    clue_sb_printf(b, "<div>colours repeat after 20 %s</div>", what);
  clue_sb_printf(b, "</div>");
}

static int map(clue_strbuf *b, const cells *c, const float *xy, const int32_t *code,
               const cats *cat, const char *title, const report_embed_args *a, clue_err *err) {
  clue_sb_printf(b, "<div><h3>");
  clue_sb_html(b, title);
  clue_sb_printf(b, "</h3>");
  int rc = report_map_img(b, xy, code, c->n, a->map_px, a->seed, title, err);
  legend(b, cat, title);
  clue_sb_printf(b, "</div>\n");
  return rc;
}

static void json_cats(clue_strbuf *js, const char *name, const cats *c) {
  clue_sb_printf(js, "\"%s\": {", name);
  for (int i = 0; i < c->n; i++) {
    clue_sb_printf(js, "%s", i ? ", " : "");
    clue_sb_json_string(js, c->name[i]);
    clue_sb_printf(js, ": %lld", (long long)c->count[i]);
  }
  clue_sb_printf(js, "}");
}

static void confusion_html(clue_strbuf *b, clue_strbuf *js, const cells *c, const int64_t *conf) {
  int L = c->labels.n;
  int64_t right = 0, all = 0;
  for (int t = 0; t < L; t++)
    for (int p = 0; p < L; p++) all += conf[t * L + p], right += t == p ? conf[t * L + p] : 0;
  clue_sb_printf(b, "<h3>Label transfer across modalities</h3><p>Each file's labelled cells "
                    "given the label of the distance-weighted vote of their nearest labelled "
                    "cells in the other files (as <code>clue transfer</code>): %lld of %lld "
                    "right (accuracy %.4f). Rows: the cells' own label; columns: the label "
                    "given; shading: share of the row.</p><table class='cm'><tr><th></th>",
                 (long long)right, (long long)all, all ? (double)right / (double)all : NAN);
  for (int p = 0; p < L; p++) {
    clue_sb_printf(b, "<th title='");
    clue_sb_html(b, c->labels.name[p]);
    clue_sb_printf(b, "'>%d</th>", p + 1);
  }
  clue_sb_printf(b, "</tr>");
  clue_sb_printf(js, "  \"confusion\": {\"accuracy\": ");
  clue_sb_json_number(js, all ? (double)right / (double)all : NAN);
  clue_sb_printf(js, ", \"rows_truth_columns_given\": [");
  for (int t = 0; t < L; t++) {
    int64_t rs = 0;
    for (int p = 0; p < L; p++) rs += conf[t * L + p];
    clue_sb_printf(b, "<tr><th>%d ", t + 1);
    clue_sb_html(b, c->labels.name[t]);
    clue_sb_printf(b, "</th>");
    clue_sb_printf(js, "%s[", t ? ", " : "");
    for (int p = 0; p < L; p++) {
      int64_t v = conf[t * L + p];
      double s = rs ? (double)v / (double)rs : 0;
      clue_sb_printf(b, "<td class='n' style='background:rgba(31,111,180,%.2f)'>", s);
      if (v) clue_sb_printf(b, "%lld", (long long)v);
      clue_sb_printf(b, "</td>");
      clue_sb_printf(js, "%s%lld", p ? ", " : "", (long long)v);
    }
    clue_sb_printf(b, "</tr>");
    clue_sb_printf(js, "]");
  }
  clue_sb_printf(b, "</table>\n");
  clue_sb_printf(js, "]},\n");
}

static void header(clue_strbuf *b, clue_strbuf *js, const cells *c, const report_embed_args *a,
                   const clue_umap_stats *us, double secs) {
  clue_sb_printf(b, "<p>%lld cells of %d file%s in <code>", (long long)c->n, c->n_files,
                 c->n_files == 1 ? "" : "s");
  clue_sb_html(b, a->dir);
  clue_sb_printf(b, "</code> (obsm/");
  clue_sb_html(b, a->key);
  clue_sb_printf(b, ", %lld dimensions)", (long long)c->dim);
  if (c->n < c->total)
    clue_sb_printf(b, ": a fixed random subsample of the %lld cells (each cell kept with "
                      "probability %lld / %lld, seed %llu)", (long long)c->total,
                   (long long)a->max_cells, (long long)c->total, (unsigned long long)a->seed);
  clue_sb_printf(b, ". UMAP computed by clue: %d neighbours, min_dist 0.1, %d epochs, "
                    "seed %llu; %.1f s.</p>\n", a->neighbors, us->n_epochs,
                 (unsigned long long)a->seed, secs);
  clue_sb_printf(js, "  \"embedding\": {\"dir\": ");
  clue_sb_json_string(js, a->dir);
  clue_sb_printf(js, ", \"cells\": %lld, \"shown\": %lld, \"files\": [", (long long)c->total,
                 (long long)c->n);
  for (int f = 0; f < c->n_files; f++) {
    clue_sb_printf(js, "%s{\"file\": ", f ? ", " : "");
    clue_sb_json_string(js, c->file[f]);
    clue_sb_printf(js, ", \"cells\": %lld, \"shown\": %lld}", (long long)c->file_cells[f],
                   (long long)c->file_shown[f]);
  }
  clue_sb_printf(js, "], \"umap\": {\"n_neighbors\": %d, \"n_epochs\": %d, \"a\": %.6g, "
                     "\"b\": %.6g, \"seconds\": %.3f}, ",
                 a->neighbors, us->n_epochs, us->a, us->b, secs);
  json_cats(js, "modality", &c->mods);
  clue_sb_printf(js, ", ");
  json_cats(js, "label", &c->labels);
  clue_sb_printf(js, ", ");
  json_cats(js, "batch", &c->batches);
  clue_sb_printf(js, "},\n");
}

/* Rank 0: the maps and the confusion matrix. */
static int draw(const report_embed_args *a, const cells *c, const float *xy,
                const clue_umap_stats *us, double secs, const int64_t *conf, clue_strbuf *b,
                clue_strbuf *js, clue_err *err) {
  header(b, js, c, a, us, secs);
  clue_sb_printf(b, "<div class='maps'>\n");
  int rc = map(b, c, xy, c->mod, &c->mods, "by modality (file)", a, err);
  char t[CLUE_NAME_MAX + 16];
  snprintf(t, sizeof t, "by %s", c->label_col);
  if (!rc && c->has_label) rc = map(b, c, xy, c->label, &c->labels, t, a, err);
  snprintf(t, sizeof t, "by %s", a->batch_key ? a->batch_key : "");
  if (!rc && c->has_batch) rc = map(b, c, xy, c->batch, &c->batches, t, a, err);
  clue_sb_printf(b, "</div>\n");
  if (!c->has_label) {
    snprintf(t, sizeof t, "%s", c->label_col);
    char msg[CLUE_NAME_MAX + 128];
    snprintf(msg, sizeof msg, "No obs column '%s' in these files: no map by label and no "
                              "label transfer (choose the column with --label).", t);
    report_note(b, msg);
  }
  if (conf) confusion_html(b, js, c, conf);
  return rc;
}

int report_embed_section(const report_embed_args *a, const clue_comm *comm, clue_strbuf *b,
                         clue_strbuf *js, int64_t *shown, clue_err *err) {
  cells *c = calloc(1, sizeof *c);
  if (!c) return clue_fail(err, CLUE_ENOMEM, "out of memory");
  int rc = load(a, comm, c, err);
  *shown = 0;
  if (comm->rank == 0) {
    clue_sb_printf(b, "<h2>Embedding map</h2>\n");
    if (c->skipped[0]) {
      char msg[2200];
      snprintf(msg, sizeof msg, "Left out: %s", c->skipped);
      report_note(b, msg);
    }
  }
  if (rc == CLUE_OK && c->n < a->neighbors + 1) {
    if (comm->rank == 0) {
      char msg[CLUE_PATH_MAX + 160];
      snprintf(msg, sizeof msg, "No map: %s holds %lld readable cells with obsm/%s; a map "
                                "needs at least %d.", a->dir, (long long)c->n, a->key,
               a->neighbors + 1);
      report_note(b, msg);
    }
    cells_free(c);
    free(c);
    return CLUE_OK;
  }
  float *xy = rc ? NULL : clue_malloc((size_t)(2 * c->n + 1) * sizeof *xy, err);
  if (!rc && !xy) rc = CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  clue_umap_stats us = {0};
  double t0 = MPI_Wtime();
  if (rc == CLUE_OK) {
    clue_umap_opts o;
    clue_umap_opts_default(&o);
    o.n_neighbors = a->neighbors, o.seed = a->seed, o.progress = a->progress;
    int64_t b0, e0;
    clue_block_range(c->n, comm->size, comm->rank, &b0, &e0);
    knn_points pts = {.n_total = c->n, .begin = b0, .n = e0 - b0, .dim = c->dim,
                      .x = c->x + b0 * c->dim};
    rc = clue_umap(&pts, &o, comm, xy, &us, err);
  }
  double secs = MPI_Wtime() - t0;
  int L = c->labels.n;
  int64_t *conf = NULL;
  if (rc == CLUE_OK && c->has_label && L >= 2 && c->n_files >= 2) {
    conf = clue_calloc((size_t)L * (size_t)L + 1, sizeof *conf, err);
    rc = clue_comm_agree(comm, conf ? CLUE_OK : CLUE_ENOMEM, err);
    if (rc == CLUE_OK) rc = confusion(c, a->k_vote, comm, conf, err);
  }
  if (rc == CLUE_OK && comm->rank == 0) rc = draw(a, c, xy, &us, secs, conf, b, js, err);
  rc = clue_comm_agree(comm, rc, err);
  *shown = c->n;
  free(conf), free(xy);
  cells_free(c);
  free(c);
  return rc;
}

/* ---- leave-modality-out votes ---- */

/* Rows of c (labelled; of file f, or of every other file) as L2-normalised points. */
static int pick(const cells *c, int f, bool same, float **x, int32_t **lab, int64_t *n,
                clue_err *err) {
  *n = 0;
  *x = clue_malloc((size_t)(c->n * c->dim + 1) * sizeof **x, err);
  *lab = clue_malloc((size_t)(c->n + 1) * sizeof **lab, err);
  if (!*x || !*lab) return CLUE_ENOMEM;
  for (int64_t i = 0; i < c->n; i++) {
    if (c->label[i] < 0 || (c->mod[i] == f) != same) continue;
    const float *v = c->x + i * c->dim;
    double ss = 0;
    for (int64_t j = 0; j < c->dim; j++) ss += (double)v[j] * v[j];
    double s = ss > 0 ? 1 / sqrt(ss) : 0;
    for (int64_t j = 0; j < c->dim; j++) (*x)[*n * c->dim + j] = (float)(v[j] * s);
    (*lab)[(*n)++] = c->label[i];
  }
  return CLUE_OK;
}

/* Collective. Adds the votes for file f's labelled cells to conf. */
static int confusion_file(const cells *c, int f, int k, const clue_comm *comm, int64_t *conf,
                          clue_err *err) {
  float *qx = NULL, *rx = NULL;
  int32_t *ql = NULL, *rl = NULL;
  int64_t nq = 0, nr = 0;
  int rc = pick(c, f, true, &qx, &ql, &nq, err);
  if (!rc) rc = pick(c, f, false, &rx, &rl, &nr, err);
  rc = clue_comm_agree(comm, rc, err);
  int kk = (int)(nr < k ? nr : k), L = c->labels.n;
  knn_result *res = NULL;
  int64_t qb, qe, rb, re;
  clue_block_range(nq, comm->size, comm->rank, &qb, &qe);
  clue_block_range(nr, comm->size, comm->rank, &rb, &re);
  if (rc == CLUE_OK && nq > 0 && kk > 0) {
    knn_points q = {.n_total = nq, .begin = qb, .n = qe - qb, .dim = c->dim, .x = qx + qb * c->dim};
    knn_points r = {.n_total = nr, .begin = rb, .n = re - rb, .dim = c->dim, .x = rx + rb * c->dim};
    knn_opts o = {.k_row = kk};
    rc = knn_scan(&q, &r, &o, comm, &res, err);
  }
  double *w = rc ? NULL : calloc((size_t)L + 1, sizeof *w);
  int32_t *vl = rc ? NULL : calloc((size_t)kk + 1, sizeof *vl);
  for (int64_t i = 0; res && w && vl && i < res->n_rows; i++) {
    for (int j = 0; j < kk; j++) {
      int64_t g = res->row_idx[i * kk + j];
      vl[j] = g >= 0 ? rl[g] : -1;
    }
    double conf_share;
    int p = clue_vote(vl, res->row_d2 + i * kk, kk, L, w, &conf_share);
    if (p >= 0) conf[(int64_t)ql[qb + i] * L + p]++;
  }
  free(w), free(vl);
  knn_result_free(res);
  free(qx), free(rx), free(ql), free(rl);
  return rc;
}

static int confusion(const cells *c, int k, const clue_comm *comm, int64_t *conf, clue_err *err) {
  int rc = CLUE_OK;
  for (int f = 0; rc == CLUE_OK && f < c->n_files; f++)
    rc = confusion_file(c, f, k, comm, conf, err);
  int L = c->labels.n;
  if (rc == CLUE_OK)
    MPI_Allreduce(MPI_IN_PLACE, conf, L * L, MPI_INT64_T, MPI_SUM, comm->comm);
  return rc;
}
