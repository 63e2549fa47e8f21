/* cmd_umap.c — `clue umap FILE.h5ad [FILE2.h5ad ...] --out OUT`: one joint 2-D
 * UMAP layout (umap.h) of every cell of every input file (each file a modality
 * of one embedding, obsm/X_clue), written per input as an .h5ad with the
 * input's obs, its embedding and obsm/X_umap. The kNN search is split over the
 * ranks; the layout is then computed on every rank alike and each rank writes
 * its block of rows. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/cli.h"
#include "clue/eval_input.h"
#include "clue/h5ad_write.h"
#include "clue/rowdist.h"
#include "clue/umap.h"

#define MAX_FILES 64

typedef struct umap_args {
  const char *files[MAX_FILES];
  int n_files;
  const char *out, *key, *out_key;
  clue_umap_opts o;
} umap_args;

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue umap FILE.h5ad [FILE2.h5ad ...] --out OUT [options]\n"
          "\n"
          "A 2-D UMAP layout (McInnes, Healy & Melville 2018) of the embedding obsm/X_clue\n"
          "of every cell of every file given, computed jointly (the files are the\n"
          "modalities of one embedding, so their cells share one map). The exact kNN\n"
          "graph (Euclidean) is split over the MPI ranks; the layout is the same, bit\n"
          "for bit, for any number of ranks and a given --seed. Initialisation: the\n"
          "spectral layout of the graph.\n"
          "\n"
          "Output: with one input, OUT is an .h5ad file; with several, OUT is a folder\n"
          "holding one OUT/<name>.h5ad per input (<name>: the file name without .h5ad,\n"
          "or MOD for FILE.h5mu:MOD). Each holds the input's obs, its embedding\n"
          "(obsm/<key>) and the layout obsm/<out-key> (2 columns), in the input's\n"
          "cell order. Inputs are never overwritten.\n"
          "\n"
          "options:\n"
          "  --out PATH          output .h5ad (one input) or folder (several) (required)\n"
          "  --key NAME          obsm array laid out (default X_clue)\n"
          "  --out-key NAME      obsm array written (default X_umap)\n"
          "  --neighbors K       neighbours of a cell, counting itself (default 15)\n"
          "  --min-dist D        closest spacing of the layout (default 0.1)\n"
          "  --spread S          scale of the layout (default 1)\n"
          "  --epochs N          SGD epochs (default 500 up to 10,000 cells, else 200)\n"
          "  --negative-rate R   negative samples per edge sample (default 5)\n"
          "  --seed N            random seed (default 0)\n"
          "  --progress          a progress line on stderr every few seconds\n"
          "  -h, --help          this help\n");
}

/* Parses a finite double in [lo, hi]. */
static bool double_arg(const char *opt, const char *v, double lo, double hi, double *out,
                       char *msg, size_t size) {
  char *end;
  double x = strtod(v, &end);
  if (*end || !*v || !isfinite(x) || x < lo || x > hi) {
    snprintf(msg, size, "%s %s: expected a number in %g..%g", opt, v, lo, hi);
    return false;
  }
  *out = x;
  return true;
}

/* One option with a value; false (msg filled) when the value is bad. */
static bool parse_value(int c, const char *v, umap_args *a, char *msg, size_t size) {
  long l = 0;
  switch (c) {
    case 'o': a->out = v; return true;
    case 'K': a->key = v; return true;
    case 'O': a->out_key = v; return true;
    case 'n':
      if (!cli_int_arg("--neighbors", v, 2, 1000, &l, msg, size)) return false;
      a->o.n_neighbors = (int)l;
      return true;
    case 'e':
      if (!cli_int_arg("--epochs", v, 1, 100000, &l, msg, size)) return false;
      a->o.n_epochs = (int)l;
      return true;
    case 'r':
      if (!cli_int_arg("--negative-rate", v, 0, 1000, &l, msg, size)) return false;
      a->o.negative_sample_rate = (int)l;
      return true;
    case 's':
      if (!cli_int_arg("--seed", v, 0, 2147483647L, &l, msg, size)) return false;
      a->o.seed = (uint64_t)l;
      return true;
    case 'm': return double_arg("--min-dist", v, 0, 1e6, &a->o.min_dist, msg, size);
    case 'S': return double_arg("--spread", v, 1e-6, 1e6, &a->o.spread, msg, size);
  }
  return false;
}

static int parse_args(int argc, char **argv, umap_args *a, const clue_comm *comm) {
  static const struct option opts[] = {
      {"out", required_argument, 0, 'o'},       {"key", required_argument, 0, 'K'},
      {"out-key", required_argument, 0, 'O'},   {"neighbors", required_argument, 0, 'n'},
      {"min-dist", required_argument, 0, 'm'},  {"spread", required_argument, 0, 'S'},
      {"epochs", required_argument, 0, 'e'},    {"negative-rate", required_argument, 0, 'r'},
      {"seed", required_argument, 0, 's'},      {"progress", no_argument, 0, 'p'},
      {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  char msg[300];
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    if (c == 'h') {
      if (comm->rank == 0) usage(stdout);
      return 0;
    }
    if (c == 'p') {
      a->o.progress = true;
      continue;
    }
    if (c == '?' || c == ':') {
      snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
      return cli_usage_error(comm, "umap", usage, msg);
    }
    if (!parse_value(c, optarg, a, msg, sizeof msg)) return cli_usage_error(comm, "umap", usage, msg);
  }
  a->n_files = argc - optind;
  if (a->n_files < 1) return cli_usage_error(comm, "umap", usage, "expected at least one input file");
  if (a->n_files > MAX_FILES) return cli_usage_error(comm, "umap", usage, "too many input files");
  for (int i = 0; i < a->n_files; i++) a->files[i] = argv[optind + i];
  if (!a->out) return cli_usage_error(comm, "umap", usage, "--out is required");
  if (a->o.min_dist > a->o.spread) {
    snprintf(msg, sizeof msg, "--min-dist %g is larger than --spread %g", a->o.min_dist,
             a->o.spread);
    return cli_usage_error(comm, "umap", usage, msg);
  }
  return -1;
}

/* ---- inputs --------------------------------------------------------------------- */

typedef struct input {
  eval_side s;
  int64_t *rows;      /* every file row, ascending */
  float *x;           /* (count × dim) this rank's block of the file's rows */
  int64_t begin, count;
  int64_t offset;     /* first row of this file in the joint point set */
} input;

static void input_free(input *m) {
  eval_side_close(&m->s);
  free(m->rows);
  free(m->x);
  memset(m, 0, sizeof *m);
}

/* Collective. Opens and loads every input (the same width; distinct names when
 * there are several). */
static int open_inputs(const umap_args *a, input *in, int64_t *n_total,
                       const clue_comm *comm, clue_err *err) {
  int rc = CLUE_OK;
  *n_total = 0;
  for (int f = 0; f < a->n_files && rc == CLUE_OK; f++) {
    input *m = &in[f];
    rc = eval_side_open(a->files[f], a->key, comm, &m->s, err);
    if (rc == CLUE_OK && f > 0 && m->s.dim != in[0].s.dim)
      rc = clue_fail(err, CLUE_EDATA, "%s: obsm/%s has %lld columns but %s's has %lld",
                     m->s.path, a->key, (long long)m->s.dim, in[0].s.path,
                     (long long)in[0].s.dim);
    for (int g = 0; rc == CLUE_OK && a->n_files > 1 && g < f; g++)
      if (!strcmp(in[g].s.label, m->s.label))
        rc = clue_fail(err, CLUE_EUSAGE, "%s and %s would both be written to %s/%s.h5ad",
                       in[g].s.path, m->s.path, a->out, m->s.label);
    int64_t n = 0;
    if (rc == CLUE_OK) rc = eval_rows_selected(&m->s, NULL, &m->rows, &n, err);
    rc = clue_comm_agree_first(comm, 0, rc, err);
    if (rc == CLUE_OK)
      rc = eval_load_rows(&m->s, a->key, m->rows, m->s.n_obs, comm, &m->x, &m->begin,
                          &m->count, err);
    if (rc == CLUE_ENUMERIC) /* a NaN/Inf in the input: bad data (exit 1), not divergence */
      rc = err->code = CLUE_EDATA;
    m->offset = *n_total;
    *n_total += m->s.n_obs;
  }
  if (rc == CLUE_OK && *n_total < a->o.n_neighbors + 1)
    rc = clue_fail(err, CLUE_EDATA, "%s%s: %lld cells: --neighbors %d needs at least %d",
                   a->files[0], a->n_files > 1 ? " and the other inputs" : "",
                   (long long)*n_total, a->o.n_neighbors, a->o.n_neighbors + 1);
  return rc;
}

/* Collective. This rank's block of the joint point set (the files one after
 * the other), moved from the files' blocks. */
static int joint_block(const input *in, int n_files, int64_t n_total, const clue_comm *comm,
                       float **x, int64_t *begin, int64_t *count, clue_err *err) {
  int64_t dim = in[0].s.dim, n_local = 0;
  for (int f = 0; f < n_files; f++) n_local += in[f].count;
  float *rows = clue_malloc((size_t)(n_local * dim) * sizeof *rows + 1, err);
  int64_t *dest = clue_malloc((size_t)n_local * sizeof *dest + 1, err);
  int rc = clue_comm_agree(comm, rows && dest ? CLUE_OK : CLUE_ENOMEM, err);
  int64_t at = 0;
  for (int f = 0; rc == CLUE_OK && f < n_files; f++) {
    memcpy(rows + at * dim, in[f].x, (size_t)(in[f].count * dim) * sizeof *rows);
    for (int64_t i = 0; i < in[f].count; i++) dest[at + i] = in[f].offset + in[f].begin + i;
    at += in[f].count;
  }
  if (rc == CLUE_OK)
    rc = clue_rows_redistribute(comm, rows, dest, n_local, (int)dim, n_total, x, begin,
                                count, err);
  free(rows);
  free(dest);
  return rc;
}

/* ---- outputs -------------------------------------------------------------------- */

/* "clue umap ARGS" and the parameters, for uns. */
static void provenance(const umap_args *a, const clue_umap_stats *st, char *par, size_t psize) {
  snprintf(par, psize,
           "n_neighbors=%d min_dist=%g spread=%g n_epochs=%d negative_sample_rate=%d "
           "seed=%llu a=%.9g b=%.9g init=spectral metric=euclidean",
           a->o.n_neighbors, a->o.min_dist, a->o.spread, st->n_epochs,
           a->o.negative_sample_rate, (unsigned long long)a->o.seed, st->a, st->b);
}

/* Collective. Writes input m's output: obs, its embedding, and its rows of the
 * joint layout y (n_total × 2, on every rank). */
static int write_output(const umap_args *a, const input *in, int f, const float *y,
                        const clue_umap_stats *st, int argc, char **argv,
                        const clue_comm *comm, clue_err *err) {
  const input *m = &in[f];
  char path[CLUE_PATH_MAX + 80], par[512];
  cli_output_path(a->out, a->n_files, m->s.label, path, sizeof path);
  provenance(a, st, par, sizeof par);
  const char *protect[MAX_FILES + 1];
  for (int g = 0; g < a->n_files; g++) protect[g] = in[g].s.file;
  protect[a->n_files] = NULL;
  h5ad_writer *w = NULL;
  int rc = h5ad_writer_create(path, m->s.n_obs, 0, protect, comm, &w, err);
  if (rc == CLUE_OK) rc = cli_copy_obs(w, m->s.f, m->rows, m->s.n_obs, comm, err);
  if (rc == CLUE_OK) rc = h5ad_writer_obsm(w, a->key, m->s.dim, m->begin, m->count, m->x, err);
  if (rc == CLUE_OK)
    rc = h5ad_writer_obsm(w, a->out_key, 2, m->begin, m->count,
                          y + 2 * (m->offset + m->begin), err);
  if (rc == CLUE_OK) rc = h5ad_writer_uns_string(w, "clue_umap", par, err);
  rc = cli_writer_finish(w, "umap", argc, argv, rc, err);
  if (rc == CLUE_OK)
    cli_print(comm, "  %lld %s cells -> %s (obsm/%s)\n", (long long)m->s.n_obs, m->s.label,
              path, a->out_key);
  return rc;
}

static int run(const umap_args *a, int argc, char **argv, const clue_comm *comm,
               clue_err *err) {
  input in[MAX_FILES];
  memset(in, 0, sizeof in);
  int64_t n_total = 0, begin = 0, count = 0;
  float *x = NULL, *y = NULL;
  clue_umap_stats st;
  memset(&st, 0, sizeof st);
  int rc = clue_comm_agree(comm, clue_umap_check_opts(&a->o, err), err);
  if (rc == CLUE_OK && a->n_files > 1) rc = clue_comm_agree(comm, cli_mkdir_p(a->out, err), err);
  if (rc == CLUE_OK) rc = open_inputs(a, in, &n_total, comm, err);
  if (rc == CLUE_OK) rc = joint_block(in, a->n_files, n_total, comm, &x, &begin, &count, err);
  if (rc == CLUE_OK) {
    y = clue_malloc((size_t)(2 * n_total) * sizeof *y, err);
    rc = clue_comm_agree(comm, y ? CLUE_OK : CLUE_ENOMEM, err);
  }
  if (rc == CLUE_OK) {
    knn_points p = {n_total, begin, count, in[0].s.dim, x, NULL};
    rc = clue_umap(&p, &a->o, comm, y, &st, err);
  }
  if (rc == CLUE_OK)
    cli_print(comm, "clue umap: %lld cells in %d file%s, obsm/%s (%lld columns), %d neighbours, "
              "min_dist %g (a = %.6f, b = %.6f), %d epochs, seed %llu, %lld graph components\n"
              "  kNN %.2f s, graph %.2f s, initialisation %.2f s, layout %.2f s\n",
              (long long)n_total, a->n_files, a->n_files > 1 ? "s" : "", a->key,
              (long long)in[0].s.dim, a->o.n_neighbors, a->o.min_dist, st.a, st.b,
              st.n_epochs, (unsigned long long)a->o.seed, (long long)st.n_components,
              st.t_knn, st.t_graph, st.t_init, st.t_layout);
  for (int f = 0; rc == CLUE_OK && f < a->n_files; f++)
    rc = write_output(a, in, f, y, &st, argc, argv, comm, err);
  for (int f = 0; f < a->n_files; f++) input_free(&in[f]);
  free(x);
  free(y);
  return rc;
}

int cli_umap(int argc, char **argv, const clue_comm *comm) {
  umap_args a = {.key = "X_clue", .out_key = "X_umap"};
  clue_umap_opts_default(&a.o);
  int st = parse_args(argc, argv, &a, comm);
  if (st >= 0) return st;
  clue_err err;
  clue_err_clear(&err);
  int rc = cli_setup_runtime(comm, NULL, &err);
  if (rc == CLUE_OK) rc = run(&a, argc, argv, comm, &err);
  return cli_report(comm, "umap", rc, &err);
}
