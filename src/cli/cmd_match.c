/* cmd_match.c — `clue match A.h5ad B.h5ad`: snn matching of A's cells (query,
 * rows) against B's cells (reference, columns), written as the competition's
 * prediction matrix in an .h5ad; optionally the K nearest partners of every
 * query cell with their distances, as a TSV table. The all-pairs work is split
 * over the ranks (knn.h); each rank writes its block of rows. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clue/cli.h"
#include "clue/eval_input.h"
#include "clue/h5ad_write.h"
#include "clue/matching.h"

typedef struct match_args {
  const char *a, *b, *out, *key, *where, *batch_key, *top_out;
  int k, top;
  bool top_raw;
} match_args;

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue match A.h5ad B.h5ad --out PRED.h5ad [options]\n"
          "\n"
          "snn matching of A's cells (query) against B's cells (reference) on their\n"
          "embeddings (obsm/X_clue, both L2-normalised). PRED.h5ad holds X, a csr_matrix\n"
          "of N_A x N_B with rows summing to 1 and at most 1000 nonzeros per row (the\n"
          "NeurIPS 2021 match-modality format); obs_names are A's cells, var_names B's.\n"
          "A modality of a MuData file is named FILE.h5mu:MOD.\n"
          "\n"
          "options:\n"
          "  --out FILE          the prediction (.h5ad)\n"
          "  --key NAME          obsm array to match on (default X_clue)\n"
          "  --k K               neighbours per cell (default 1)\n"
          "  --batch-key COL     match only within the batches of obs column COL\n"
          "  --where COL=VALUE   only cells whose obs column COL reads VALUE, in every\n"
          "                      file that has COL (e.g. --where split=test)\n"
          "  --top K             also list the K nearest B cells of every A cell ...\n"
          "  --top-out FILE      ... in this TSV file (columns: query, rank, reference,\n"
          "                      distance; Euclidean between L2-normalised embeddings)\n"
          "  --top-raw           --top distances on the embeddings as given\n"
          "  -h, --help          this help\n");
}



static int parse_args(int argc, char **argv, match_args *a, const clue_comm *comm) {
  static const struct option opts[] = {
      {"out", required_argument, 0, 'o'},       {"key", required_argument, 0, 'K'},
      {"k", required_argument, 0, 'k'},         {"batch-key", required_argument, 0, 'B'},
      {"where", required_argument, 0, 'w'},     {"top", required_argument, 0, 't'},
      {"top-out", required_argument, 0, 'T'},   {"top-raw", no_argument, 0, 'R'},
      {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
      case 'o': a->out = optarg; break;
      case 'K': a->key = optarg; break;
      case 'B': a->batch_key = optarg; break;
      case 'w': a->where = optarg; break;
      case 'T': a->top_out = optarg; break;
      case 'R': a->top_raw = true; break;
      case 'k':
      case 't': {
        long v;
        char msg[300];
        if (!cli_int_arg(c == 'k' ? "--k" : "--top", optarg, 1, c == 'k' ? MATCH_MAX_NNZ : 10000,
                         &v, msg, sizeof msg))
          return cli_usage_error(comm, "match", usage, msg);
        *(c == 'k' ? &a->k : &a->top) = (int)v;
        break;
      }
      case 'h':
        if (comm->rank == 0) usage(stdout);
        return 0;
      default: {
        char msg[300];
        snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
        return cli_usage_error(comm, "match", usage, msg);
      }
    }
  }
  if (argc - optind != 2) return cli_usage_error(comm, "match", usage, "expected two embedding files");
  a->a = argv[optind];
  a->b = argv[optind + 1];
  if ((a->top > 0) != (a->top_out != NULL))
    return cli_usage_error(comm, "match", usage, "--top K and --top-out FILE go together");
  if (!a->out && !a->top_out) return cli_usage_error(comm, "match", usage, "nothing to write: give --out");
  return -1;
}

/* ---- the inputs ------------------------------------------------------------ */

typedef struct input_side {
  eval_side s;
  int64_t *rows, n;   /* selected file rows */
  float *x;           /* (count × dim) this rank's block */
  int64_t begin, count;
  int32_t *codes;     /* (n) batch codes, or NULL */
} input_side;

static void side_free(input_side *m) {
  eval_side_close(&m->s);
  free(m->rows);
  free(m->x);
  free(m->codes);
}

static int select_rows(const match_args *a, input_side *m, const eval_where *w, bool *found,
                       clue_err *err) {
  uint8_t *mask = NULL;
  int rc = w ? eval_where_mask(&m->s, w, &mask, found, err) : CLUE_OK;
  if (rc == CLUE_OK) rc = eval_rows_selected(&m->s, mask, &m->rows, &m->n, err);
  if (rc == CLUE_OK && m->n == 0)
    rc = clue_fail(err, CLUE_EDATA, "%s: no cell has %s", m->s.path, a->where);
  free(mask);
  return rc;
}

/* Collective. Opens, selects and loads both sides (and their batch codes). */
static int load_inputs(const match_args *a, input_side *A, input_side *B,
                       const clue_comm *comm, clue_err *err) {
  int rc = eval_side_open(a->a, a->key, comm, &A->s, err);
  if (rc == CLUE_OK) rc = eval_side_open(a->b, a->key, comm, &B->s, err);
  if (rc) return rc;
  if (A->s.dim != B->s.dim)
    rc = clue_fail(err, CLUE_EDATA, "%s: obsm/%s has %lld columns but %s's has %lld",
                   A->s.path, a->key, (long long)A->s.dim, B->s.path, (long long)B->s.dim);
  eval_where w;
  bool fa = true, fb = true;
  if (rc == CLUE_OK && a->where) rc = eval_where_parse(a->where, &w, err);
  if (rc == CLUE_OK) rc = select_rows(a, A, a->where ? &w : NULL, &fa, err);
  if (rc == CLUE_OK) rc = select_rows(a, B, a->where ? &w : NULL, &fb, err);
  if (rc == CLUE_OK && !fa && !fb)
    rc = clue_fail(err, CLUE_EDATA, "--where %s: neither %s nor %s has an obs column '%s'",
                   a->where, A->s.path, B->s.path, w.column);
  if (rc == CLUE_OK && a->batch_key) {
    int nb = 0;
    rc = eval_batch_codes(&A->s, A->rows, A->n, &B->s, B->rows, B->n, a->batch_key,
                          &A->codes, &B->codes, &nb, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK)
    rc = eval_load_rows(&A->s, a->key, A->rows, A->n, comm, &A->x, &A->begin, &A->count, err);
  if (rc == CLUE_OK)
    rc = eval_load_rows(&B->s, a->key, B->rows, B->n, comm, &B->x, &B->begin, &B->count, err);
  return rc;
}

static knn_points points_of(const input_side *m) {
  knn_points p = {m->n, m->begin, m->count, m->s.dim, m->x,
                  m->codes ? m->codes + m->begin : NULL};
  return p;
}

/* The selected rows' obs names. */
static clue_strings *names_of(const input_side *m, clue_err *err) {
  const char **v = clue_malloc((size_t)m->n * sizeof *v + 1, err);
  if (!v) return NULL;
  for (int64_t i = 0; i < m->n; i++) v[i] = m->s.names->s[m->rows[i]];
  clue_strings *s = clue_strings_from(v, m->n, err);
  free(v);
  return s;
}

/* ---- the prediction ---------------------------------------------------------- */

static int write_prediction(const match_args *a, const input_side *A, const input_side *B,
                            const clue_csr *local, int argc, char **argv,
                            const clue_comm *comm, clue_err *err) {
  const char *protect[] = {A->s.file, B->s.file, NULL};
  h5ad_writer *w = NULL;
  clue_strings *na = names_of(A, err), *nb = names_of(B, err);
  int rc = clue_comm_agree(comm, na && nb ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = h5ad_writer_create(a->out, A->n, B->n, protect, comm, &w, err);
  if (rc == CLUE_OK) rc = h5ad_writer_obs(w, na, NULL, 0, err);
  if (rc == CLUE_OK) rc = h5ad_writer_var(w, nb, err);
  if (rc == CLUE_OK) rc = h5ad_writer_x_csr(w, A->begin, local, err);
  rc = cli_writer_finish(w, "match", argc, argv, rc, err);
  clue_strings_free(na);
  clue_strings_free(nb);
  return rc;
}

/* ---- the top-K table ------------------------------------------------------- */

/* This rank's lines of the table (rank 0 adds the header). */
static char *top_text(const knn_result *r, const input_side *A, const input_side *B,
                      int rank, size_t *len, clue_err *err) {
  size_t cap = 4096, at = 0;
  char *t = clue_malloc(cap, err);
  if (!t) return NULL;
  if (rank == 0) at = (size_t)snprintf(t, cap, "query\trank\treference\tdistance\n");
  for (int64_t i = 0; i < r->n_rows; i++)
    for (int q = 0; q < r->k_row; q++) {
      int64_t j = r->row_idx[i * r->k_row + q];
      if (j < 0) break;
      const char *qn = A->s.names->s[A->rows[A->begin + i]], *rn = B->s.names->s[B->rows[j]];
      size_t need = strlen(qn) + strlen(rn) + 64;
      if (at + need > cap) {
        cap = 2 * cap + need;
        char *g = realloc(t, cap);
        if (!g) {
          free(t);
          clue_fail(err, CLUE_ENOMEM, "out of memory formatting --top-out");
          return NULL;
        }
        t = g;
      }
      at += (size_t)snprintf(t + at, cap - at, "%s\t%d\t%s\t%.9g\n", qn, q + 1, rn,
                             sqrt(r->row_d2[i * r->k_row + q]));
    }
  *len = at;
  return t;
}

/* Collective. Writes every rank's text, in rank order, to `path` through a
 * temporary file (MPI-IO) renamed into place by rank 0. */
static int write_ordered(const char *path, const char *text, size_t len,
                         const clue_comm *comm, clue_err *err) {
  char tmp[CLUE_PATH_MAX + 32];
  long pid = (long)getpid();
  clue_comm_bcast(comm, &pid, sizeof pid, 0);
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, pid);
  MPI_File fh;
  int rc = CLUE_OK;
  if (MPI_File_open(comm->comm, tmp, MPI_MODE_CREATE | MPI_MODE_WRONLY, MPI_INFO_NULL, &fh) !=
      MPI_SUCCESS)
    return clue_fail(err, CLUE_EIO, "cannot create %s", tmp);
  unsigned long long mine = len, off = 0;
  MPI_Exscan(&mine, &off, 1, MPI_UNSIGNED_LONG_LONG, MPI_SUM, comm->comm);
  if (comm->rank == 0) off = 0;
  const size_t chunk = (size_t)1 << 30;
  long long rounds = (long long)(len / chunk + 1);
  MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_LONG_LONG, MPI_MAX, comm->comm);
  for (long long r = 0; r < rounds; r++) {
    size_t at = (size_t)r * chunk < len ? (size_t)r * chunk : len;
    size_t n = len - at < chunk ? len - at : chunk;
    if (MPI_File_write_at_all(fh, (MPI_Offset)(off + at), text + at, (int)n, MPI_CHAR,
                              MPI_STATUS_IGNORE) != MPI_SUCCESS)
      rc = clue_fail(err, CLUE_EIO, "cannot write %s", tmp);
  }
  if (MPI_File_close(&fh) != MPI_SUCCESS && rc == CLUE_OK)
    rc = clue_fail(err, CLUE_EIO, "cannot write %s", tmp);
  rc = clue_comm_agree(comm, rc, err);
  if (comm->rank == 0) {
    if (rc == CLUE_OK && rename(tmp, path) != 0)
      rc = clue_fail(err, CLUE_EIO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc) unlink(tmp);
  }
  return clue_comm_agree(comm, rc, err);
}

static int write_top(const match_args *a, const input_side *A, const input_side *B,
                     const clue_comm *comm, clue_err *err) {
  int rc = CLUE_OK;
  if (comm->rank == 0) rc = eval_check_output(a->top_out, "--top-out", &A->s, &B->s, err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc) return rc;
  knn_points x = points_of(A), y = points_of(B);
  float *xn = NULL, *yn = NULL;
  if (!a->top_raw) {
    xn = match_normalize(A->x, A->count, A->s.dim, err);
    yn = xn ? match_normalize(B->x, B->count, B->s.dim, err) : NULL;
    x.x = xn;
    y.x = yn;
  }
  rc = clue_comm_agree(comm, !a->top_raw && !yn ? CLUE_ENOMEM : CLUE_OK, err);
  knn_opts o = {.k_row = a->top};
  knn_result *r = NULL;
  if (rc == CLUE_OK) rc = knn_scan(&x, &y, &o, comm, &r, err);
  size_t len = 0;
  char *text = rc ? NULL : top_text(r, A, B, comm->rank, &len, err);
  if (rc == CLUE_OK) rc = clue_comm_agree(comm, text ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = write_ordered(a->top_out, text, len, comm, err);
  free(text);
  knn_result_free(r);
  free(xn);
  free(yn);
  return rc;
}

/* ---- the command ----------------------------------------------------------- */

static int run(const match_args *a, int argc, char **argv, const clue_comm *comm,
               clue_err *err) {
  input_side A, B;
  memset(&A, 0, sizeof A);
  memset(&B, 0, sizeof B);
  int rc = load_inputs(a, &A, &B, comm, err);
  knn_points x = points_of(&A), y = points_of(&B);
  if (rc == CLUE_OK && a->out) {
    match_graphs *g = NULL;
    clue_csr *local = NULL;
    int64_t fell = 0;
    rc = match_graphs_build(&x, &y, a->k, comm, &g, err);
    if (rc == CLUE_OK) {
      rc = match_snn_rows(g, MATCH_X_QUERY, A.begin, A.count, MATCH_MAX_NNZ, &local, &fell,
                          err);
      rc = clue_comm_agree(comm, rc, err);
    }
    if (rc == CLUE_OK) rc = write_prediction(a, &A, &B, local, argc, argv, comm, err);
    int64_t nnz[2] = {local ? clue_csr_nnz(local) : 0, fell};
    clue_comm_sum_int64(comm, nnz, 2);
    if (rc == CLUE_OK)
      cli_print(comm,
                "clue match: %lld query cells (%s) x %lld reference cells (%s), snn k = %d%s%s:"
                " %lld nonzeros (%.2f per row)%s -> %s\n",
                (long long)A.n, A.s.label, (long long)B.n, B.s.label, a->k,
                a->batch_key ? " within " : "", a->batch_key ? a->batch_key : "",
                (long long)nnz[0], (double)nnz[0] / (double)A.n,
                nnz[1] ? ", some rows fell back to the nearest cell" : "", a->out);
    clue_csr_free(local);
    match_graphs_free(g);
  }
  if (rc == CLUE_OK && a->top_out) {
    rc = write_top(a, &A, &B, comm, err);
    if (rc == CLUE_OK)
      cli_print(comm, "clue match: the %d nearest %s cells of each %s cell -> %s\n", a->top,
                B.s.label, A.s.label, a->top_out);
  }
  side_free(&A);
  side_free(&B);
  return rc;
}

int cli_match(int argc, char **argv, const clue_comm *comm) {
  match_args a = {.key = "X_clue", .k = 1};
  int st = parse_args(argc, argv, &a, comm);
  if (st >= 0) return st;
  clue_err err;
  clue_err_clear(&err);
  int rc = cli_setup_runtime(comm, NULL, &err);
  if (rc == CLUE_OK) rc = run(&a, argc, argv, comm, &err);
  return cli_report(comm, "match", rc, &err);
}
