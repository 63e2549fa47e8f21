/* cmd_eval.c — `clue eval A.h5ad B.h5ad [C.h5ad ...]`: FOSCTTM, top-1/top-5
 * partner recall and the matching score of two embeddings of the same cells
 * (paired by obs names), every figure in both directions; with --label, the
 * measures that need no pairing over every file's cells (eval_unpaired.h).
 * Printed as tables and optionally written as JSON. The all-pairs work is split
 * over the ranks (knn.h, silhouette.h). */
#include <getopt.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clue/cli.h"
#include "clue/eval_input.h"
#include "clue/matching.h"
#include "clue/metrics.h"
#include "eval_unpaired.h"

typedef struct eval_args {
  const char *a, *b, *key, *where, *json, *pred_ab, *pred_ba, *batch_key, *label, *report;
  const char *files[UNPAIRED_MAX_MODS];
  int n_files;
  int k, label_k;
} eval_args;

typedef struct eval_out {
  bool paired;               /* the paired figures were computed */
  char why_not[CLUE_ERR_MSG_MAX]; /* else why */
  eval_unpaired u;           /* with --label */
  metrics_paired m;
  double match_ab, match_ba; /* NAN when not computed */
  int64_t fallback_ab, fallback_ba;
  const char *source;        /* "snn" or "prediction" */
} eval_out;

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue eval A.h5ad B.h5ad [C.h5ad ...] [options]\n"
          "\n"
          "Compares two embeddings of the same cells (paired by obs names; a = A's cells,\n"
          "b = B's): FOSCTTM and top-1/top-5 partner recall (Euclidean distance on the\n"
          "embeddings as given) and the matching score of snn matching (both sides\n"
          "L2-normalised), each in both directions. With --label, also over the cells\n"
          "of every file given (each file a modality; paired or not): label ASW, batch\n"
          "ASW within labels (--batch-key), modality mixing ASW, graph connectivity,\n"
          "and each file's labels predicted from the other files' cells (accuracy,\n"
          "macro-F1); files that share no cell then skip the paired figures. A\n"
          "modality of a MuData file is named FILE.h5mu:MOD. Runs on any number of MPI\n"
          "ranks.\n"
          "\n"
          "options:\n"
          "  --key NAME          obsm array to compare (default X_clue)\n"
          "  --where COL=VALUE   only cells whose obs column COL reads VALUE, in every\n"
          "                      file that has COL (e.g. --where split=test)\n"
          "  --k K               neighbours of snn matching (default 1)\n"
          "  --batch-key COL     snn matching only within the batches of obs column COL;\n"
          "                      with --label, the batches of the batch ASW\n"
          "  --label COL         obs column of cell labels: the measures without pairing\n"
          "  --label-k K         neighbours of those measures' graph and votes (default 15)\n"
          "  --prediction P.h5ad score this prediction (rows: A's cells, columns: B's,\n"
          "                      matched by obs/var names) as match_ab, instead of snn\n"
          "  --prediction-ba Q.h5ad  likewise for match_ba (rows: B's cells)\n"
          "  --json FILE         also write the figures as a JSON object\n"
          "  --report RUN_DIR    refresh that run's page (report.html) with these figures\n"
          "                      and a map of these cells (the JSON goes to --json, or\n"
          "                      RUN_DIR/eval.json)\n"
          "  -h, --help          this help\n");
}

static int parse_args(int argc, char **argv, eval_args *a, const clue_comm *comm) {
  static const struct option opts[] = {
      {"key", required_argument, 0, 'K'},        {"where", required_argument, 0, 'w'},
      {"k", required_argument, 0, 'k'},          {"batch-key", required_argument, 0, 'B'},
      {"prediction", required_argument, 0, 'p'}, {"prediction-ba", required_argument, 0, 'q'},
      {"json", required_argument, 0, 'j'},       {"label", required_argument, 0, 'l'},
      {"label-k", required_argument, 0, 'L'},    {"report", required_argument, 0, 'R'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  char *end;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (c) {
      case 'K': a->key = optarg; break;
      case 'w': a->where = optarg; break;
      case 'B': a->batch_key = optarg; break;
      case 'p': a->pred_ab = optarg; break;
      case 'q': a->pred_ba = optarg; break;
      case 'j': a->json = optarg; break;
      case 'l': a->label = optarg; break;
      case 'R': a->report = optarg; break;
      case 'L':
        a->label_k = (int)strtol(optarg, &end, 10);
        if (*end || a->label_k < 1 || a->label_k > 1000) {
          if (comm->rank == 0)
            fprintf(stderr, "clue eval: error: --label-k %s: expected an integer in 1..1000\n",
                    optarg);
          return 2;
        }
        break;
      case 'k':
        a->k = (int)strtol(optarg, &end, 10);
        if (*end || a->k < 1 || a->k > MATCH_MAX_NNZ) {
          if (comm->rank == 0)
            fprintf(stderr, "clue eval: error: --k %s: expected an integer in 1..%d\n",
                    optarg, MATCH_MAX_NNZ);
          return 2;
        }
        break;
      case 'h':
        if (comm->rank == 0) usage(stdout);
        return 0;
      default:
        if (comm->rank == 0) {
          fprintf(stderr, "clue eval: error: unknown or incomplete option '%s'\n\n",
                  argv[optind - 1]);
          usage(stderr);
        }
        return 2;
    }
  }
  int n = argc - optind;
  if (n < 2 || n > UNPAIRED_MAX_MODS || (n > 2 && !a->label)) {
    if (comm->rank == 0) {
      fprintf(stderr, "clue eval: error: expected two embedding files%s, got %d\n\n",
              a->label ? " or more (at most 64)" : " (more with --label)", n);
      usage(stderr);
    }
    return 2;
  }
  for (int i = 0; i < n; i++) a->files[a->n_files++] = argv[optind + i];
  a->a = argv[optind];
  a->b = argv[optind + 1];
  return -1;
}

/* ---- scoring a given prediction ------------------------------------------ */

/* Not collective: row (obs) and column (var) of every evaluated cell in P. */
static int prediction_positions(h5ad_file *f, const char *path, const clue_strings *cells,
                                const int64_t *rows, int64_t n, int64_t *prow, int64_t *pcol,
                                clue_err *err) {
  clue_strings *on = NULL, *vn = NULL;
  clue_strmap *om = NULL, *vm = NULL;
  int rc = h5ad_read_obs_names(f, &on, err);
  if (rc == CLUE_OK) rc = h5ad_read_var_names(f, &vn, err);
  if (rc == CLUE_OK && (!(om = clue_strmap_new(on->n, err)) || !(vm = clue_strmap_new(vn->n, err))))
    rc = CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < on->n; i++)
    if (clue_strmap_put(om, on->s[i], i, NULL, err) == 0)
      rc = clue_fail(err, CLUE_EDATA, "%s: obs name '%s' appears twice", path, on->s[i]);
  for (int64_t i = 0; rc == CLUE_OK && i < vn->n; i++)
    if (clue_strmap_put(vm, vn->s[i], i, NULL, err) == 0)
      rc = clue_fail(err, CLUE_EDATA, "%s: var name '%s' appears twice", path, vn->s[i]);
  int64_t miss_r = 0, miss_c = 0;
  const char *ex_r = NULL, *ex_c = NULL;
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
    const char *name = cells->s[rows[i]];
    prow[i] = clue_strmap_get(om, name);
    pcol[i] = clue_strmap_get(vm, name);
    if (prow[i] < 0 && !miss_r++) ex_r = name;
    if (pcol[i] < 0 && !miss_c++) ex_c = name;
  }
  if (rc == CLUE_OK && (miss_r || miss_c))
    rc = clue_fail(err, CLUE_EDATA,
                   "%s: %lld of the %lld evaluated cells are not among its %s names (e.g. "
                   "'%s'); rows must be named by the query cells, columns by the reference "
                   "cells", path, (long long)(miss_r ? miss_r : miss_c), (long long)n,
                   miss_r ? "obs" : "var", miss_r ? ex_r : ex_c);
  clue_strmap_free(om);
  clue_strmap_free(vm);
  clue_strings_free(on);
  clue_strings_free(vn);
  return rc;
}

static int cmp_i64(const void *x, const void *y) {
  int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
  return (a > b) - (a < b);
}

/* Collective. Reads this rank's rows of P (prow[begin..begin+count), distinct)
 * into a CSR in that order. */
static int prediction_rows(h5ad_file *f, const char *path, const int64_t *prow,
                           int64_t begin, int64_t count, const clue_comm *comm,
                           clue_csr **rows, clue_err *err) {
  int64_t *sorted = clue_malloc((size_t)count * sizeof *sorted + 1, err);
  int64_t *perm = clue_malloc((size_t)count * sizeof *perm + 1, err);
  int rc = clue_comm_agree(comm, sorted && perm ? CLUE_OK : CLUE_ENOMEM, err);
  clue_csr *all = NULL;
  if (rc == CLUE_OK) {
    memcpy(sorted, prow + begin, (size_t)count * sizeof *sorted);
    qsort(sorted, (size_t)count, sizeof *sorted, cmp_i64);
    rc = h5ad_read_rows(f, NULL, sorted, count, &all, err);
  }
  for (int64_t i = 0; rc == CLUE_OK && i < count; i++) {
    int64_t *at = bsearch(&prow[begin + i], sorted, (size_t)count, sizeof *sorted, cmp_i64);
    perm[i] = at - sorted;
  }
  for (int64_t p = 0; rc == CLUE_OK && p < clue_csr_nnz(all); p++)
    if (!isfinite(all->data[p]))
      rc = clue_fail(err, CLUE_ENUMERIC, "%s: X holds %s", path,
                     isnan(all->data[p]) ? "NaN" : "an infinite value");
  if (rc == CLUE_OK && !(*rows = clue_csr_select_rows(all, perm, count, err))) rc = CLUE_ENOMEM;
  clue_csr_free(all);
  free(sorted);
  free(perm);
  return rc;
}

/* Collective. The matching score of prediction file `path` for the pairs. */
static int score_prediction(const char *path, const clue_strings *cells, const int64_t *rows,
                            int64_t n, const clue_comm *comm, double *score, clue_err *err) {
  h5ad_file *f = NULL;
  int rc = h5ad_open(path, NULL, comm, &f, err);
  if (rc) return clue_err_prefix(err, "--prediction");
  int64_t *prow = clue_malloc((size_t)n * sizeof *prow + 1, err);
  int64_t *pcol = clue_malloc((size_t)n * sizeof *pcol + 1, err);
  rc = prow && pcol ? prediction_positions(f, path, cells, rows, n, prow, pcol, err)
                    : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  int64_t begin = 0, count = 0;
  knn_block(n, comm->size, comm->rank, &begin, &count);
  clue_csr *local = NULL;
  if (rc == CLUE_OK) {
    rc = prediction_rows(f, path, prow, begin, count, comm, &local, err);
    rc = clue_comm_agree(comm, rc, err);
  }
  if (rc == CLUE_OK) rc = metrics_match_score(local, pcol + begin, comm, score, err);
  clue_csr_free(local);
  free(prow);
  free(pcol);
  h5ad_close(f);
  return rc;
}

/* ---- snn matching of the loaded pairs ------------------------------------ */

static int snn_scores(const eval_args *a, eval_side *A, eval_side *B, const int64_t *ra,
                      const int64_t *rb, knn_points *x, knn_points *y, const clue_comm *comm,
                      eval_out *o, clue_err *err) {
  int32_t *ga = NULL, *gb = NULL;
  int n_batches = 0, rc = CLUE_OK;
  int64_t n = x->n_total;
  if (a->batch_key) {
    rc = eval_batch_codes(A, ra, n, B, rb, n, a->batch_key, &ga, &gb, &n_batches, err);
    rc = clue_comm_agree(comm, rc, err);
    if (rc) return rc;
    x->group = ga + x->begin;
    y->group = gb + y->begin;
  }
  match_graphs *g = NULL;
  clue_csr *pab = NULL, *pba = NULL;
  int64_t *partner = clue_malloc((size_t)x->n * sizeof *partner + 1, err);
  rc = clue_comm_agree(comm, partner ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = match_graphs_build(x, y, a->k, comm, &g, err);
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < x->n; i++) partner[i] = x->begin + i;
    rc = match_snn_rows(g, MATCH_X_QUERY, x->begin, x->n, MATCH_MAX_NNZ, &pab, &o->fallback_ab, err);
    if (rc == CLUE_OK)
      rc = match_snn_rows(g, MATCH_Y_QUERY, y->begin, y->n, MATCH_MAX_NNZ, &pba, &o->fallback_ba, err);
    rc = clue_comm_agree(comm, rc, err);
  }
  if (rc == CLUE_OK) rc = metrics_match_score(pab, partner, comm, &o->match_ab, err);
  if (rc == CLUE_OK) rc = metrics_match_score(pba, partner, comm, &o->match_ba, err);
  int64_t fb[2] = {o->fallback_ab, o->fallback_ba};
  if (rc == CLUE_OK) clue_comm_sum_int64(comm, fb, 2);
  o->fallback_ab = fb[0];
  o->fallback_ba = fb[1];
  x->group = y->group = NULL;
  clue_csr_free(pab);
  clue_csr_free(pba);
  match_graphs_free(g);
  free(partner);
  free(ga);
  free(gb);
  return rc;
}

/* ---- output ---------------------------------------------------------------- */

static void fmt_num(char *buf, size_t size, double v) {
  if (isnan(v))
    snprintf(buf, size, "null");
  else
    snprintf(buf, size, "%.17g", v);
}

/* Appends s to a JSON document as a string literal. */
static size_t json_str(char *buf, size_t at, size_t size, const char *s) {
  if (!s) return at + (size_t)snprintf(buf + at, size - at, "null");
  at += (size_t)snprintf(buf + at, size - at, "\"");
  for (; *s && at + 8 < size; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      at += (size_t)snprintf(buf + at, size - at, "\\%c", ch);
    else if (ch < 0x20)
      at += (size_t)snprintf(buf + at, size - at, "\\u%04x", ch);
    else
      buf[at++] = (char)ch;
  }
  return at + (size_t)snprintf(buf + at, size - at, "\"");
}

/* The paired part of the JSON document (its keys null when not computed). */
static size_t json_paired(const eval_args *a, const eval_side *A, const eval_side *B,
                          const eval_out *o, int64_t dim, char *buf, size_t at, size_t size) {
  const metrics_paired *m = &o->m;
  double match = isnan(o->match_ab)   ? o->match_ba
                 : isnan(o->match_ba) ? o->match_ab
                                      : 0.5 * (o->match_ab + o->match_ba);
  const char *names[] = {"foscttm", "foscttm_ab", "foscttm_ba", "match", "match_ab",
                         "match_ba", "top1_ab", "top1_ba", "top5_ab", "top5_ba"};
  const double vals[] = {m->foscttm, m->foscttm_ab, m->foscttm_ba, match, o->match_ab,
                         o->match_ba, m->top1_ab, m->top1_ba, m->top5_ab, m->top5_ba};
  at += (size_t)snprintf(buf + at, size - at, "  \"n\": %lld,\n", (long long)(o->paired ? m->n : 0));
  for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
    char num[40];
    fmt_num(num, sizeof num, o->paired ? vals[i] : NAN);
    at += (size_t)snprintf(buf + at, size - at, "  \"%s\": %s,\n", names[i], num);
  }
  at += (size_t)snprintf(buf + at, size - at, "  \"a\": ");
  at = json_str(buf, at, size, o->paired ? A->label : NULL);
  at += (size_t)snprintf(buf + at, size - at, ",\n  \"b\": ");
  at = json_str(buf, at, size, o->paired ? B->label : NULL);
  at += (size_t)snprintf(buf + at, size - at, ",\n  \"a_file\": ");
  at = json_str(buf, at, size, a->a);
  at += (size_t)snprintf(buf + at, size - at, ",\n  \"b_file\": ");
  at = json_str(buf, at, size, a->b);
  at += (size_t)snprintf(buf + at, size - at, ",\n  \"dim\": %lld,\n  \"match_source\": ",
                         (long long)dim);
  at = json_str(buf, at, size, o->paired ? o->source : NULL);
  at += (size_t)snprintf(buf + at, size - at, ",\n  \"k\": %d,\n", a->k);
  return at + (size_t)snprintf(buf + at, size - at,
                               "  \"fallback_rows_ab\": %lld,\n  \"fallback_rows_ba\": %lld,\n",
                               (long long)o->fallback_ab, (long long)o->fallback_ba);
}

static int write_json(const eval_args *a, const eval_side *A, const eval_side *B,
                      const eval_out *o, int64_t dim, clue_err *err) {
  size_t size = (size_t)(a->n_files + 4) * CLUE_PATH_MAX + 16384, at = 0;
  char *buf = clue_malloc(size, err);
  if (!buf) return CLUE_ENOMEM;
  at += (size_t)snprintf(buf + at, size - at, "{\n");
  at = json_paired(a, A, B, o, dim, buf, at, size);
  if (a->label) at = eval_unpaired_json(&(eval_unpaired_args){.files = a->files,
                                                             .n_files = a->n_files,
                                                             .label = a->label, .k = a->label_k},
                                        &o->u, buf, at, size);
  at += (size_t)snprintf(buf + at, size - at, "  \"files\": [");
  for (int f = 0; f < a->n_files; f++) {
    at += (size_t)snprintf(buf + at, size - at, f ? ", " : "");
    at = json_str(buf, at, size, a->files[f]);
  }
  at += (size_t)snprintf(buf + at, size - at, "],\n  \"key\": ");
  at = json_str(buf, at, size, a->key);
  at += (size_t)snprintf(buf + at, size - at, ",\n  \"where\": ");
  at = json_str(buf, at, size, a->where);
  at += (size_t)snprintf(buf + at, size - at, ",\n  \"batch_key\": ");
  at = json_str(buf, at, size, a->batch_key);
  at += (size_t)snprintf(buf + at, size - at, "\n}\n");
  int rc = at + 1 < size ? cli_write_file_atomic(a->json, buf, err)
                         : clue_fail(err, CLUE_EINVAL, "--json: the document is too long");
  free(buf);
  return rc;
}

static void print_table(const clue_comm *comm, const eval_args *a, const eval_side *A,
                        const eval_side *B, const eval_out *o, int64_t dim) {
  const metrics_paired *m = &o->m;
  char ab[32], ba[32], mean[32];
  cli_print(comm, "clue eval: %lld cells paired by name%s%s, obsm/%s (%lld dims)\n",
            (long long)m->n, a->where ? " where " : "", a->where ? a->where : "", a->key,
            (long long)dim);
  cli_print(comm, "  a = %s (%s), b = %s (%s)\n", A->label, A->path, B->label, B->path);
  cli_print(comm, "              a->b        b->a        mean\n");
  cli_print(comm, "  FOSCTTM     %-10.6f  %-10.6f  %.6f\n", m->foscttm_ab, m->foscttm_ba,
            m->foscttm);
  snprintf(ab, sizeof ab, isnan(o->match_ab) ? "-" : "%.6f", o->match_ab);
  snprintf(ba, sizeof ba, isnan(o->match_ba) ? "-" : "%.6f", o->match_ba);
  double mm = isnan(o->match_ab) ? o->match_ba
              : isnan(o->match_ba) ? o->match_ab : 0.5 * (o->match_ab + o->match_ba);
  snprintf(mean, sizeof mean, "%.6f", mm);
  if (!strcmp(o->source, "snn"))
    cli_print(comm, "  matching    %-10s  %-10s  %-10s  (snn, k = %d%s%s)\n", ab, ba, mean,
              a->k, a->batch_key ? ", within " : "", a->batch_key ? a->batch_key : "");
  else
    cli_print(comm, "  matching    %-10s  %-10s  %-10s  (given prediction%s)\n", ab, ba, mean,
              isnan(o->match_ba) ? " for a->b" : isnan(o->match_ab) ? " for b->a" : "s");
  cli_print(comm, "  top-1       %-10.6f  %.6f\n", m->top1_ab, m->top1_ba);
  cli_print(comm, "  top-5       %-10.6f  %.6f\n", m->top5_ab, m->top5_ba);
  if (o->fallback_ab || o->fallback_ba)
    cli_print(comm, "  (%lld a->b and %lld b->a rows had no cell of their batch on the other "
              "side and fell back to the nearest cell)\n",
              (long long)o->fallback_ab, (long long)o->fallback_ba);
}

/* ---- the command ----------------------------------------------------------- */

static int masks_for(const eval_args *a, eval_side *A, eval_side *B, uint8_t **ma,
                     uint8_t **mb, clue_err *err) {
  *ma = *mb = NULL;
  if (!a->where) return CLUE_OK;
  eval_where w;
  bool fa = false, fb = false;
  int rc = eval_where_parse(a->where, &w, err);
  if (rc == CLUE_OK) rc = eval_where_mask(A, &w, ma, &fa, err);
  if (rc == CLUE_OK) rc = eval_where_mask(B, &w, mb, &fb, err);
  if (rc == CLUE_OK && !fa && !fb)
    rc = clue_fail(err, CLUE_EDATA, "--where %s: neither %s nor %s has an obs column '%s'",
                   a->where, A->path, B->path, w.column);
  return rc;
}

/* Collective. The paired figures of files A and B. *unpaired is set when
 * they share no cell (then nothing else is computed and rc is that error). */
static int run_paired(const eval_args *a, const clue_comm *comm, eval_out *o, eval_side *A,
                      eval_side *B, bool *unpaired, clue_err *err) {
  uint8_t *ma = NULL, *mb = NULL;
  int64_t *ra = NULL, *rb = NULL, n = 0, ab = 0, an = 0, bb = 0, bn = 0;
  float *xa = NULL, *xb = NULL;
  *unpaired = false;
  int rc = eval_side_open(a->a, a->key, comm, A, err);
  if (rc == CLUE_OK) rc = eval_side_open(a->b, a->key, comm, B, err);
  if (rc == CLUE_OK && A->dim != B->dim)
    rc = clue_fail(err, CLUE_EDATA, "%s: obsm/%s has %lld columns but %s's has %lld",
                   A->path, a->key, (long long)A->dim, B->path, (long long)B->dim);
  if (rc == CLUE_OK) {
    rc = masks_for(a, A, B, &ma, &mb, err);
    if (rc == CLUE_OK) {
      rc = eval_pair_by_names(A, ma, B, mb, &ra, &rb, &n, err);
      *unpaired = rc != CLUE_OK;
    }
    rc = clue_comm_agree(comm, rc, err);
  }
  if (rc == CLUE_OK) rc = eval_load_rows(A, a->key, ra, n, comm, &xa, &ab, &an, err);
  if (rc == CLUE_OK) rc = eval_load_rows(B, a->key, rb, n, comm, &xb, &bb, &bn, err);
  knn_points x = {n, ab, an, A->dim, xa, NULL}, y = {n, bb, bn, B->dim, xb, NULL};
  if (rc == CLUE_OK) rc = metrics_paired_compute(&x, &y, comm, &o->m, err);
  if (rc == CLUE_OK && a->pred_ab)
    rc = score_prediction(a->pred_ab, A->names, ra, n, comm, &o->match_ab, err);
  if (rc == CLUE_OK && a->pred_ba)
    rc = score_prediction(a->pred_ba, B->names, rb, n, comm, &o->match_ba, err);
  if (rc == CLUE_OK && !a->pred_ab && !a->pred_ba)
    rc = snn_scores(a, A, B, ra, rb, &x, &y, comm, o, err);
  o->paired = rc == CLUE_OK;
  free(xa), free(xb), free(ra), free(rb), free(ma), free(mb);
  return rc;
}

/* The --json path must not be one of the input files (even through a link). */
static int json_not_input(const eval_args *a, clue_err *err) {
  struct stat so, si;
  if (stat(a->json, &so) != 0) return CLUE_OK;
  for (int f = 0; f < a->n_files; f++) {
    char file[CLUE_PATH_MAX];
    const char *colon = strstr(a->files[f], ".h5mu:");
    snprintf(file, sizeof file, "%.*s", colon ? (int)(colon - a->files[f]) + 5 : CLUE_PATH_MAX - 1,
             a->files[f]);
    if (stat(file, &si) == 0 && si.st_dev == so.st_dev && si.st_ino == so.st_ino)
      return clue_fail(err, CLUE_EINVAL, "--json %s is the input %s: refusing to overwrite it",
                       a->json, file);
  }
  return CLUE_OK;
}

static int run(const eval_args *a, const clue_comm *comm, eval_out *o, clue_err *err) {
  eval_side A = {0}, B = {0};
  o->match_ab = o->match_ba = NAN;
  o->source = a->pred_ab || a->pred_ba ? "prediction" : "snn";
  int rc = CLUE_OK;
  bool unpaired = false;
  if (a->n_files == 2) rc = run_paired(a, comm, o, &A, &B, &unpaired, err);
  else snprintf(o->why_not, sizeof o->why_not, "more than two files");
  if (rc && unpaired && a->label) { /* files that share no cell: the label measures only */
    snprintf(o->why_not, sizeof o->why_not, "%s", err->msg);
    clue_err_clear(err);
    rc = CLUE_OK;
  }
  eval_unpaired_args u = {.files = a->files, .n_files = a->n_files, .key = a->key,
                          .where = a->where, .label = a->label, .batch_key = a->batch_key,
                          .k = a->label_k};
  if (rc == CLUE_OK && a->label) rc = eval_unpaired_run(&u, comm, &o->u, err);
  if (rc == CLUE_OK) {
    if (o->paired) print_table(comm, a, &A, &B, o, A.dim);
    else cli_print(comm, "clue eval: no paired figures (%s)\n", o->why_not);
    if (a->label) eval_unpaired_print(&u, &o->u, comm);
    if (a->json) {
      if (comm->rank == 0) rc = json_not_input(a, err);
      if (comm->rank == 0 && rc == CLUE_OK)
        rc = write_json(a, &A, &B, o, o->paired ? A.dim : o->u.dim, err);
      rc = clue_comm_agree(comm, rc, err);
    }
  }
  eval_side_close(&A);
  eval_side_close(&B);
  return rc;
}

int cli_eval(int argc, char **argv, const clue_comm *comm) {
  eval_args a = {.key = "X_clue", .k = 1, .label_k = 15};
  int st = parse_args(argc, argv, &a, comm);
  if (st >= 0) return st;
  clue_err err;
  clue_err_clear(&err);
  int rc = cli_setup_runtime(comm, NULL, &err);
  eval_out o;
  memset(&o, 0, sizeof o);
  char json[CLUE_PATH_MAX + 16], dir[CLUE_PATH_MAX];
  if (a.report && !a.json) {
    snprintf(json, sizeof json, "%s/eval.json", a.report);
    a.json = json;
  }
  if (rc == CLUE_OK) rc = run(&a, comm, &o, &err);
  if (rc == CLUE_OK && a.report) {
    snprintf(dir, sizeof dir, "%s", a.files[0]);
    char *colon = strstr(dir, ".h5mu:");
    if (colon) colon[5] = '\0';
    cli_report_opts ro;
    cli_report_opts_default(&ro);
    ro.run_dir = a.report;
    ro.embed = dirname(dir);
    ro.eval = a.json;
    ro.key = a.key;
    ro.label = a.label;
    ro.batch_key = a.batch_key;
    int warnings = 0;
    rc = cli_report_write(&ro, comm, &warnings, &err);
  }
  return cli_report(comm, "eval", rc, &err);
}
