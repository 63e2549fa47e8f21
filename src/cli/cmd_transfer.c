/* cmd_transfer.c — `clue transfer REF... QUERY --label COL --out OUT`: every
 * query cell gets the label of a distance-weighted vote of its k nearest
 * reference cells in the joint embedding (labels.h), written as obs columns
 * <COL>_pred and <COL>_conf beside the query's own obs. The all-pairs search
 * is split over the ranks (knn.h: each rank a block of query cells, the
 * reference blocks passed around a ring); several reference files are searched
 * one after the other and their nearest cells merged. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/cli.h"
#include "clue/eval_input.h"
#include "clue/h5ad_write.h"
#include "clue/knn.h"
#include "clue/labels.h"
#include "clue/matching.h"

#define MAX_FILES 64

typedef struct transfer_args {
  const char *ref[MAX_FILES], *query[MAX_FILES];
  int n_ref, n_query;
  const char *label, *out, *key, *where;
  int k;
  bool raw;
} transfer_args;

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue transfer REF.h5ad QUERY.h5ad --label COL --out OUT.h5ad [options]\n"
          "       clue transfer REF.h5ad [REF2.h5ad ...] --query Q.h5ad [--query Q2.h5ad ...]\n"
          "                     --label COL --out DIR [options]\n"
          "\n"
          "Carries the obs column COL of the reference cells over to the query cells: each\n"
          "query cell takes the label of a vote of its k nearest reference cells in the\n"
          "joint embedding (obsm/X_clue, L2-normalised), each neighbour weighing 1 /\n"
          "distance. OUT.h5ad holds the query's obs with two more columns, COL_pred (the\n"
          "label) and COL_conf (its share of the vote), and the query's embedding; with\n"
          "several query files --out is a folder of one file per query. Reference cells\n"
          "without a label never vote. When a query has COL itself, its accuracy and\n"
          "macro-F1 are printed. A modality of a MuData file is named FILE.h5mu:MOD.\n"
          "\n"
          "options:\n"
          "  --label COL         obs column of the references to carry over (required)\n"
          "  --out PATH          output .h5ad (one query) or folder (several)\n"
          "  --query FILE        a query file (repeatable; then every file named before\n"
          "                      the options is a reference)\n"
          "  --k K               neighbours that vote (default 15)\n"
          "  --key NAME          obsm array to compare (default X_clue)\n"
          "  --raw               Euclidean distances on the embeddings as given\n"
          "  --where COL=VALUE   only cells whose obs column COL reads VALUE, in every\n"
          "                      file that has COL (e.g. --where split=test)\n"
          "  -h, --help          this help\n");
}


static int parse_args(int argc, char **argv, transfer_args *a, const clue_comm *comm) {
  static const struct option opts[] = {
      {"label", required_argument, 0, 'l'}, {"out", required_argument, 0, 'o'},
      {"query", required_argument, 0, 'q'}, {"k", required_argument, 0, 'k'},
      {"key", required_argument, 0, 'K'},   {"raw", no_argument, 0, 'r'},
      {"where", required_argument, 0, 'w'}, {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  char msg[300];
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
      case 'l': a->label = optarg; break;
      case 'o': a->out = optarg; break;
      case 'K': a->key = optarg; break;
      case 'r': a->raw = true; break;
      case 'w': a->where = optarg; break;
      case 'q':
        if (a->n_query == MAX_FILES) return cli_usage_error(comm, "transfer", usage, "too many --query files");
        a->query[a->n_query++] = optarg;
        break;
      case 'k': {
        long v;
        if (!cli_int_arg("--k", optarg, 1, 1000, &v, msg, sizeof msg))
          return cli_usage_error(comm, "transfer", usage, msg);
        a->k = (int)v;
        break;
      }
      case 'h':
        if (comm->rank == 0) usage(stdout);
        return 0;
      default:
        snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
        return cli_usage_error(comm, "transfer", usage, msg);
    }
  }
  int n_pos = argc - optind;
  if (n_pos > MAX_FILES) return cli_usage_error(comm, "transfer", usage, "too many reference files");
  if (a->n_query == 0) { /* REF QUERY */
    if (n_pos != 2) return cli_usage_error(comm, "transfer", usage, "expected REF.h5ad QUERY.h5ad (or --query)");
    a->ref[a->n_ref++] = argv[optind];
    a->query[a->n_query++] = argv[optind + 1];
  } else {
    if (n_pos < 1) return cli_usage_error(comm, "transfer", usage, "expected at least one reference file");
    for (int i = 0; i < n_pos; i++) a->ref[a->n_ref++] = argv[optind + i];
  }
  if (!a->label) return cli_usage_error(comm, "transfer", usage, "--label COL is required");
  if (!a->out) return cli_usage_error(comm, "transfer", usage, "--out is required");
  return -1;
}

/* ---- labels: text ↔ code, in order of first appearance ---------------------- */

typedef struct label_table {
  clue_strmap *map;
  char **text;
  int n, cap;
  int n_ref; /* the references' labels: codes 0 … n_ref − 1 (then the queries' own) */
} label_table;

static void table_free(label_table *t) {
  clue_strmap_free(t->map);
  for (int i = 0; i < t->n; i++) free(t->text[i]);
  free(t->text);
  memset(t, 0, sizeof *t);
}

/* The code of `label`, added when new (add false: −1 when new). */
static int table_code(label_table *t, const char *label, bool add, int32_t *code,
                      clue_err *err) {
  int64_t c = clue_strmap_get(t->map, label);
  if (c >= 0 || !add) {
    *code = (int32_t)c;
    return CLUE_OK;
  }
  if (t->n == t->cap) {
    int cap = t->cap ? 2 * t->cap : 16;
    char **g = realloc(t->text, (size_t)cap * sizeof *g);
    if (!g) return clue_fail(err, CLUE_ENOMEM, "out of memory reading labels");
    t->text = g;
    t->cap = cap;
  }
  if (!(t->text[t->n] = strdup(label)))
    return clue_fail(err, CLUE_ENOMEM, "out of memory reading labels");
  int put = clue_strmap_put(t->map, t->text[t->n], t->n, NULL, err);
  if (put < 0) return put;
  *code = t->n++;
  return CLUE_OK;
}

/* Not collective (every rank reads alike). The label codes of rows[0..n) of
 * obs column `col` of s (−1 for a missing or empty label), adding new labels
 * when `add`. *found false (and no codes) when the file lacks the column. */
static int read_codes(eval_side *s, const char *col, const int64_t *rows, int64_t n,
                      label_table *t, bool add, int32_t **codes, bool *found,
                      clue_err *err) {
  *codes = NULL;
  *found = false;
  clue_strings *cols = NULL;
  int rc = h5ad_obs_column_names(s->f, &cols, err);
  for (int64_t j = 0; rc == CLUE_OK && j < cols->n; j++) *found |= !strcmp(cols->s[j], col);
  clue_strings_free(cols);
  if (rc || !*found) return rc;
  h5ad_column *c = NULL;
  if ((rc = h5ad_read_obs_column(s->f, col, &c, err))) return rc;
  if (!(*codes = clue_malloc((size_t)n * sizeof **codes + 1, err))) rc = CLUE_ENOMEM;
  char label[512];
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
    h5ad_column_label(c, rows[i], label, sizeof label);
    (*codes)[i] = -1;
    if (label[0]) rc = table_code(t, label, add, &(*codes)[i], err);
  }
  h5ad_column_free(c);
  return rc;
}

/* ---- one input file ----------------------------------------------------------- */

typedef struct side {
  eval_side s;
  int64_t *rows, n;  /* selected file rows (references: those with a label) */
  int32_t *codes;    /* (n) label codes of the selected rows (references) */
  float *x;          /* (count × dim) this rank's block, as read */
  float *xn;         /* the block compared (normalised, or x itself with --raw) */
  int64_t begin, count;
} side;

static void side_free(side *m) {
  eval_side_close(&m->s);
  free(m->rows);
  free(m->codes);
  if (m->xn != m->x) free(m->xn);
  free(m->x);
  memset(m, 0, sizeof *m);
}

/* Not collective. The rows --where selects (all without --where); *found
 * false when the file lacks the column. */
static int select_rows(const transfer_args *a, side *m, bool *found, clue_err *err) {
  uint8_t *mask = NULL;
  eval_where w;
  *found = true;
  int rc = a->where ? eval_where_parse(a->where, &w, err) : CLUE_OK;
  if (rc == CLUE_OK && a->where) rc = eval_where_mask(&m->s, &w, &mask, found, err);
  if (rc == CLUE_OK) rc = eval_rows_selected(&m->s, mask, &m->rows, &m->n, err);
  if (rc == CLUE_OK && m->n == 0)
    rc = clue_fail(err, CLUE_EDATA, "%s: no cell has %s", m->s.path, a->where);
  free(mask);
  return rc;
}

/* Keeps the selected rows with a label (references). */
static int keep_labelled(side *m, const char *label, clue_err *err) {
  int64_t kept = 0;
  for (int64_t i = 0; i < m->n; i++)
    if (m->codes[i] >= 0) m->rows[kept] = m->rows[i], m->codes[kept++] = m->codes[i];
  m->n = kept;
  if (kept == 0)
    return clue_fail(err, CLUE_EDATA, "%s: no selected cell has a value in obs column '%s'",
                     m->s.path, label);
  return CLUE_OK;
}

/* Collective. Loads this rank's block of the selected rows, and the block
 * compared. */
static int load_block(const transfer_args *a, side *m, const clue_comm *comm,
                      clue_err *err) {
  int rc = eval_load_rows(&m->s, a->key, m->rows, m->n, comm, &m->x, &m->begin, &m->count,
                          err);
  if (rc) return rc;
  m->xn = a->raw ? m->x : match_normalize(m->x, m->count, m->s.dim, err);
  return clue_comm_agree(comm, m->xn ? CLUE_OK : CLUE_ENOMEM, err);
}

/* Collective. Opens the references: the selected cells with a label, and their
 * codes in t (new labels added in order of first appearance). */
static int open_refs(const transfer_args *a, side *refs, label_table *t,
                     const clue_comm *comm, clue_err *err) {
  int rc = CLUE_OK;
  for (int f = 0; f < a->n_ref && rc == CLUE_OK; f++) {
    side *m = &refs[f];
    bool where_found, found;
    rc = eval_side_open(a->ref[f], a->key, comm, &m->s, err);
    if (rc == CLUE_OK && f > 0 && m->s.dim != refs[0].s.dim)
      rc = clue_fail(err, CLUE_EDATA, "%s: obsm/%s has %lld columns but %s's has %lld",
                     m->s.path, a->key, (long long)m->s.dim, refs[0].s.path,
                     (long long)refs[0].s.dim);
    if (rc == CLUE_OK) rc = select_rows(a, m, &where_found, err);
    if (rc == CLUE_OK) rc = read_codes(&m->s, a->label, m->rows, m->n, t, true, &m->codes, &found, err);
    if (rc == CLUE_OK && !found)
      rc = clue_fail(err, CLUE_EDATA, "%s: obs has no column '%s' (--label)", m->s.path,
                     a->label);
    if (rc == CLUE_OK) rc = keep_labelled(m, a->label, err);
    rc = clue_comm_agree_first(comm, 0, rc, err);
    if (rc == CLUE_OK) rc = load_block(a, m, comm, err);
  }
  return rc;
}

/* ---- the vote ------------------------------------------------------------------- */

/* The k nearest references of each local query row over all reference files:
 * file and row (within the file's selected rows) and squared distance. */
typedef struct nearest {
  int k;
  int32_t *file;
  int64_t *row;
  double *d2;
} nearest;

/* Merges one file's top-k lists into n's (ascending distance; ties: earlier
 * file, then smaller row). */
static void merge(nearest *n, int64_t rows, const knn_result *r, int f) {
  int k = n->k;
  for (int64_t i = 0; i < rows; i++) {
    int32_t *nf = n->file + i * k;
    int64_t *nr = n->row + i * k;
    double *nd = n->d2 + i * k;
    for (int q = 0; q < r->k_row; q++) {
      int64_t j = r->row_idx[i * r->k_row + q];
      double d = r->row_d2[i * r->k_row + q];
      if (j < 0 || d >= nd[k - 1]) continue; /* not nearer than the k-th so far */
      int at = k - 1;
      while (at > 0 && nd[at - 1] > d) {
        nf[at] = nf[at - 1], nr[at] = nr[at - 1], nd[at] = nd[at - 1];
        at--;
      }
      nf[at] = f, nr[at] = j, nd[at] = d;
    }
  }
}

/* Collective. The label and the vote share of this rank's block of query q. */
static int vote(const transfer_args *a, side *refs, const side *q, int n_labels,
                int32_t *pred, double *conf, const clue_comm *comm, clue_err *err) {
  int k = a->k;
  nearest n = {.k = k};
  n.file = clue_malloc((size_t)(q->count * k + 1) * sizeof *n.file, err);
  n.row = clue_malloc((size_t)(q->count * k + 1) * sizeof *n.row, err);
  n.d2 = clue_malloc((size_t)(q->count * k + 1) * sizeof *n.d2, err);
  double *w = clue_malloc((size_t)n_labels * sizeof *w + 1, err);
  int32_t *lab = clue_malloc((size_t)k * sizeof *lab + 1, err);
  int rc = n.file && n.row && n.d2 && w && lab ? CLUE_OK : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  for (int64_t i = 0; rc == CLUE_OK && i < q->count * k; i++)
    n.file[i] = -1, n.row[i] = -1, n.d2[i] = INFINITY;
  knn_points qp = {q->n, q->begin, q->count, q->s.dim, q->xn, NULL};
  for (int f = 0; rc == CLUE_OK && f < a->n_ref; f++) {
    knn_points rp = {refs[f].n, refs[f].begin, refs[f].count, refs[f].s.dim, refs[f].xn, NULL};
    knn_opts o = {.k_row = k};
    knn_result *r = NULL;
    rc = knn_scan(&qp, &rp, &o, comm, &r, err);
    if (rc == CLUE_OK) merge(&n, q->count, r, f);
    knn_result_free(r);
  }
  for (int64_t i = 0; rc == CLUE_OK && i < q->count; i++) {
    for (int j = 0; j < k; j++) {
      int f = n.file[i * k + j];
      lab[j] = f < 0 ? -1 : refs[f].codes[n.row[i * k + j]];
    }
    pred[i] = clue_vote(lab, n.d2 + i * k, k, n_labels, w, &conf[i]);
  }
  free(n.file), free(n.row), free(n.d2), free(w), free(lab);
  return rc;
}

/* ---- the output ----------------------------------------------------------------- */

/* Collective. Every rank's block of n values of `size` bytes, in rank order, on
 * rank 0 (*all malloc'd there; NULL elsewhere). */
static int gather_blocks(const void *mine, int64_t count, int64_t total, size_t size,
                         const clue_comm *comm, void **all, clue_err *err) {
  *all = NULL;
  int P = comm->size, c = (int)(count * (int64_t)size);
  int *counts = clue_calloc((size_t)P, sizeof *counts, err);
  int *disp = clue_calloc((size_t)P, sizeof *disp, err);
  if (comm->rank == 0) *all = clue_malloc((size_t)total * size + 1, err);
  int rc = counts && disp && (comm->rank != 0 || *all) ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK && (double)total * (double)size > INT32_MAX)
    rc = clue_fail(err, CLUE_EINVAL, "%lld query cells: too many for one output file",
                   (long long)total);
  if ((rc = clue_comm_agree(comm, rc, err)) == CLUE_OK) {
    MPI_Gather(&c, 1, MPI_INT, counts, 1, MPI_INT, 0, comm->comm);
    for (int r = 1; r < P; r++) disp[r] = disp[r - 1] + counts[r - 1];
    MPI_Gatherv(mine, c, MPI_BYTE, *all, counts, disp, MPI_BYTE, 0, comm->comm);
  }
  free(counts);
  free(disp);
  return rc;
}

/* Rank 0: the two new obs columns. */
static int make_columns(const char *label, const label_table *t, const int32_t *pred,
                        const double *conf, int64_t n, h5ad_column *out[2], clue_err *err) {
  out[0] = clue_calloc(1, sizeof *out[0], err);
  out[1] = clue_calloc(1, sizeof *out[1], err);
  if (!out[0] || !out[1]) return CLUE_ENOMEM;
  snprintf(out[0]->name, sizeof out[0]->name, "%s_pred", label);
  snprintf(out[1]->name, sizeof out[1]->name, "%s_conf", label);
  out[0]->kind = H5AD_COL_CATEGORICAL;
  out[0]->n = out[1]->n = n;
  out[1]->kind = H5AD_COL_NUMERIC;
  out[0]->codes = clue_malloc((size_t)n * sizeof *out[0]->codes + 1, err);
  out[1]->values = clue_malloc((size_t)n * sizeof *out[1]->values + 1, err);
  out[0]->categories = clue_strings_from((const char *const *)t->text, t->n_ref, err);
  if (!out[0]->codes || !out[1]->values || !out[0]->categories) return CLUE_ENOMEM;
  memcpy(out[0]->codes, pred, (size_t)n * sizeof *pred);
  memcpy(out[1]->values, conf, (size_t)n * sizeof *conf);
  return CLUE_OK;
}

/* Collective. Writes query q's output: its obs with the two columns (pred and
 * conf whole on rank 0) and its embedding. */
static int write_query(const transfer_args *a, side *refs, side *q, const label_table *t,
                       const int32_t *pred, const double *conf, int argc, char **argv,
                       const clue_comm *comm, clue_err *err) {
  char path[CLUE_PATH_MAX + 80];
  cli_output_path(a->out, a->n_query, q->s.label, path, sizeof path);
  const char *protect[MAX_FILES + 2];
  int np = 0;
  protect[np++] = q->s.file;
  for (int f = 0; f < a->n_ref && np < MAX_FILES + 1; f++) protect[np++] = refs[f].s.file;
  protect[np] = NULL;
  h5ad_column *cols[2] = {NULL, NULL};
  int rc = comm->rank == 0 ? make_columns(a->label, t, pred, conf, q->n, cols, err) : CLUE_OK;
  rc = clue_comm_agree(comm, rc, err);
  h5ad_writer *w = NULL;
  if (rc == CLUE_OK) rc = h5ad_writer_create(path, q->n, 0, protect, comm, &w, err);
  if (rc == CLUE_OK) rc = cli_copy_obs_extra(w, q->s.f, q->rows, q->n, cols, 2, comm, err);
  if (rc == CLUE_OK) rc = h5ad_writer_obsm(w, a->key, q->s.dim, q->begin, q->count, q->x, err);
  rc = cli_writer_finish(w, "transfer", argc, argv, rc, err);
  h5ad_column_free(cols[0]);
  h5ad_column_free(cols[1]);
  return rc;
}

/* Rank 0: prints what query q got, and its scores when it has the label. */
static int report(const transfer_args *a, side *q, label_table *t, const int32_t *pred,
                  const double *conf, const clue_comm *comm, clue_err *err) {
  if (comm->rank != 0) return CLUE_OK;
  double mean = 0;
  for (int64_t i = 0; i < q->n; i++) mean += conf[i] / (double)q->n;
  char path[CLUE_PATH_MAX + 80];
  cli_output_path(a->out, a->n_query, q->s.label, path, sizeof path);
  printf("clue transfer: %lld %s cells: %s_pred from %d labels, mean %s_conf %.3f -> %s\n",
         (long long)q->n, q->s.label, a->label, t->n_ref, a->label, mean, path);
  int32_t *truth = NULL;
  bool found;
  int rc = read_codes(&q->s, a->label, q->rows, q->n, t, true, &truth, &found, err);
  if (rc || !found) return rc;
  int64_t *counts = clue_calloc((size_t)(3 * t->n) + 1, sizeof *counts, err);
  if (!counts) {
    free(truth);
    return CLUE_ENOMEM;
  }
  int64_t scored = clue_label_count(truth, pred, q->n, t->n, counts);
  double acc, f1;
  clue_label_scores(counts, t->n, scored, &acc, &f1);
  int unseen = 0; /* labels of this query that no reference has */
  for (int c = t->n_ref; c < t->n; c++) unseen += counts[3 * c + 2] > 0;
  printf("  %lld cells have their own %s: accuracy %.4f, macro-F1 %.4f", (long long)scored,
         a->label, acc, f1);
  if (unseen) printf(" (%d of their labels are in no reference)", unseen);
  printf("\n");
  fflush(stdout);
  free(counts);
  free(truth);
  return CLUE_OK;
}

/* Collective. Query file f: open, select, load, vote, write, report. */
static int transfer_one(const transfer_args *a, side *refs, label_table *t, int f, int argc,
                        char **argv, const clue_comm *comm, clue_err *err) {
  side q;
  memset(&q, 0, sizeof q);
  bool found;
  int rc = eval_side_open(a->query[f], a->key, comm, &q.s, err);
  if (rc == CLUE_OK && q.s.dim != refs[0].s.dim)
    rc = clue_fail(err, CLUE_EDATA, "%s: obsm/%s has %lld columns but %s's has %lld",
                   q.s.path, a->key, (long long)q.s.dim, refs[0].s.path,
                   (long long)refs[0].s.dim);
  if (rc == CLUE_OK) rc = select_rows(a, &q, &found, err);
  rc = clue_comm_agree_first(comm, 0, rc, err);
  if (rc == CLUE_OK) rc = load_block(a, &q, comm, err);
  int32_t *pred = NULL, *all_pred = NULL;
  double *conf = NULL, *all_conf = NULL;
  if (rc == CLUE_OK) {
    pred = clue_malloc((size_t)q.count * sizeof *pred + 1, err);
    conf = clue_malloc((size_t)q.count * sizeof *conf + 1, err);
    rc = clue_comm_agree(comm, pred && conf ? CLUE_OK : CLUE_ENOMEM, err);
  }
  if (rc == CLUE_OK) rc = vote(a, refs, &q, t->n_ref, pred, conf, comm, err);
  if (rc == CLUE_OK)
    rc = gather_blocks(pred, q.count, q.n, sizeof *pred, comm, (void **)&all_pred, err);
  if (rc == CLUE_OK)
    rc = gather_blocks(conf, q.count, q.n, sizeof *conf, comm, (void **)&all_conf, err);
  if (rc == CLUE_OK)
    rc = write_query(a, refs, &q, t, all_pred, all_conf, argc, argv, comm, err);
  if (rc == CLUE_OK) rc = clue_comm_agree(comm, report(a, &q, t, all_pred, all_conf, comm, err), err);
  free(pred), free(conf), free(all_pred), free(all_conf);
  side_free(&q);
  return rc;
}

static int run(const transfer_args *a, int argc, char **argv, const clue_comm *comm,
               clue_err *err) {
  side refs[MAX_FILES];
  memset(refs, 0, sizeof refs);
  label_table t = {0};
  t.map = clue_strmap_new(64, err);
  int rc = clue_comm_agree(comm, t.map ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK && a->n_query > 1) rc = clue_comm_agree(comm, cli_mkdir_p(a->out, err), err);
  if (rc == CLUE_OK) rc = open_refs(a, refs, &t, comm, err);
  t.n_ref = t.n;
  int64_t n_ref = 0;
  for (int f = 0; f < a->n_ref; f++) n_ref += refs[f].n;
  if (rc == CLUE_OK)
    cli_print(comm, "clue transfer: %lld reference cells with a %s (%d labels) in %d file%s, "
              "k = %d, obsm/%s%s\n", (long long)n_ref, a->label, t.n_ref, a->n_ref,
              a->n_ref > 1 ? "s" : "", a->k, a->key, a->raw ? " (raw)" : "");
  for (int f = 0; rc == CLUE_OK && f < a->n_query; f++)
    rc = transfer_one(a, refs, &t, f, argc, argv, comm, err);
  for (int f = 0; f < a->n_ref; f++) side_free(&refs[f]);
  table_free(&t);
  return rc;
}

int cli_transfer(int argc, char **argv, const clue_comm *comm) {
  transfer_args a = {.key = "X_clue", .k = 15};
  int st = parse_args(argc, argv, &a, comm);
  if (st >= 0) return st;
  clue_err err;
  clue_err_clear(&err);
  int rc = cli_setup_runtime(comm, NULL, &err);
  if (rc == CLUE_OK) rc = run(&a, argc, argv, comm, &err);
  return cli_report(comm, "transfer", rc, &err);
}
