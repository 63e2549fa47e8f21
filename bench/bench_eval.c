/* bench_eval.c — speed of the evaluation scans: FOSCTTM (with top-1/top-5
 * recall) and snn matching (k = 1, with its matching score) on synthetic paired
 * embeddings, compared with this machine's sgemm rate at the scan's tile shape
 * measured in the same run. Not a test.
 *
 *   OPENBLAS_NUM_THREADS=1 mpirun -np P bench_eval [--n N]... [--dim D] [--k K]
 *
 * Defaults: N = 20000 and 100000, D = 100, k = 1. Synthetic cells: z ~ N(0, I),
 * a = z + 1.5 ε, b = z + 1.5 ε′ (FOSCTTM ≈ 0.04 at D = 100). The flop count of a
 * scan is 2 · N² · D; "% of sgemm" compares the scan's rate with the sgemm rate
 * at the scan's tile shape and at 2048³, measured by all ranks at once. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clue/blas_core.h"
#include "clue/knn.h"
#include "clue/matching.h"
#include "clue/metrics.h"
#include "clue/rng.h"

typedef struct bench_args {
  int64_t n[8];
  int n_n;
  int64_t dim, tile_rows, tile_cols;
  int k;
} bench_args;

static int parse(int argc, char **argv, bench_args *a) {
  a->n_n = 0;
  a->dim = 100;
  a->k = 1;
  a->tile_rows = 256;  /* knn.c's default tile: the shape of its sgemm calls */
  a->tile_cols = 512;
  for (int i = 1; i < argc; i++) {
    if (i + 1 >= argc) return -1;
    long long v = atoll(argv[i + 1]);
    if (!strcmp(argv[i], "--n") && a->n_n < 8 && v > 0)
      a->n[a->n_n++] = v;
    else if (!strcmp(argv[i], "--dim") && v > 0)
      a->dim = v;
    else if (!strcmp(argv[i], "--k") && v > 0)
      a->k = (int)v;
    else
      return -1;
    i++;
  }
  if (a->n_n == 0) {
    a->n[0] = 20000;
    a->n[1] = 100000;
    a->n_n = 2;
  }
  return 0;
}

/* Aggregate sgemm GFLOP/s of all ranks running m × n × k products at once. */
static double sgemm_rate(const clue_comm *c, int64_t m, int64_t n, int64_t k) {
  float *A = malloc(sizeof(float) * (size_t)(m * k)), *B = malloc(sizeof(float) * (size_t)(n * k));
  float *C = malloc(sizeof(float) * (size_t)(m * n));
  for (int64_t i = 0; i < m * k; i++) A[i] = (float)(i % 7) * 0.1f;
  for (int64_t i = 0; i < n * k; i++) B[i] = (float)(i % 5) * 0.1f;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, A,
              (int)k, B, (int)k, 0.0f, C, (int)n);
  int reps = 0;
  clue_comm_barrier(c);
  double t0 = MPI_Wtime(), t = 0;
  while (t < 1.0) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)k, 1.0f, A,
                (int)k, B, (int)k, 0.0f, C, (int)n);
    reps++;
    t = MPI_Wtime() - t0;
  }
  double rate = 2.0 * (double)m * (double)n * (double)k * reps / t / 1e9;
  clue_comm_sum_double(c, &rate, 1);
  free(A);
  free(B);
  free(C);
  return rate;
}

static void synth(int64_t begin, int64_t n, int64_t dim, float *a, float *b) {
  for (int64_t i = 0; i < n; i++) {
    clue_rng g = clue_rng_stream(2024, CLUE_RNG_TEST, 0, (uint64_t)(begin + i));
    for (int64_t k = 0; k < dim; k++) {
      double z = clue_rng_normal(&g);
      a[i * dim + k] = (float)(z + 1.5 * clue_rng_normal(&g));
      b[i * dim + k] = (float)(z + 1.5 * clue_rng_normal(&g));
    }
  }
}

static double peak_mib(const clue_comm *c) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  double m = (double)ru.ru_maxrss / 1024.0;
  clue_comm_max_double(c, &m, 1);
  return m;
}

static void report(const clue_comm *c, const char *what, int64_t n, int64_t dim, double secs,
                   const double *sgemm, const knn_stats *st) {
  knn_stats s = *st;
  double v[3] = {s.t_gemm, s.t_scan, s.t_comm};
  clue_comm_max_double(c, v, 3);
  int64_t r[2] = {s.rechecks, s.candidates};
  clue_comm_sum_int64(c, r, 2);
  double pairs = (double)n * (double)n, flops = 2.0 * pairs * (double)dim;
  double mib = peak_mib(c);
  if (c->rank == 0)
    printf("%-9s N=%-7lld D=%lld P=%d  %7.2f s  %8.3g pairs/s  %6.1f GFLOP/s  %5.1f %% / %5.1f %%"
           " of sgemm (tile / 2048^3)  peak RSS/rank %.0f MiB\n"
           "          slowest rank: gemm %.2f s, epilogue %.2f s, comm %.2f s; float64 "
           "rechecks %lld, candidates %lld\n",
           what, (long long)n, (long long)dim, c->size, secs, pairs / secs, flops / secs / 1e9,
           100.0 * flops / secs / 1e9 / sgemm[0], 100.0 * flops / secs / 1e9 / sgemm[1], mib,
           v[0], v[1], v[2], (long long)r[0], (long long)r[1]);
}

static int run_size(const clue_comm *c, const bench_args *ba, int64_t n, const double *sgemm) {
  clue_err err;
  int64_t begin, cnt, dim = ba->dim;
  knn_block(n, c->size, c->rank, &begin, &cnt);
  float *a = malloc(sizeof(float) * (size_t)(cnt * dim) + 1);
  float *b = malloc(sizeof(float) * (size_t)(cnt * dim) + 1);
  if (!a || !b) return 1;
  synth(begin, cnt, dim, a, b);
  knn_points ap = {n, begin, cnt, dim, a, NULL}, bp = {n, begin, cnt, dim, b, NULL};

  metrics_paired m;
  clue_comm_barrier(c);
  double t0 = MPI_Wtime();
  int rc = metrics_paired_compute(&ap, &bp, c, &m, &err);
  double t1 = MPI_Wtime();
  if (rc) {
    if (c->rank == 0) fprintf(stderr, "bench_eval: %s\n", err.msg);
    return 1;
  }
  report(c, "foscttm", n, dim, t1 - t0, sgemm, &m.stats);
  if (c->rank == 0)
    printf("          foscttm %.6f (a→b %.6f, b→a %.6f)  top1 %.4f/%.4f  top5 %.4f/%.4f\n",
           m.foscttm, m.foscttm_ab, m.foscttm_ba, m.top1_ab, m.top1_ba, m.top5_ab, m.top5_ba);

  clue_comm_barrier(c);
  t0 = MPI_Wtime();
  match_graphs *g = NULL;
  clue_csr *pred = NULL;
  double score = 0;
  rc = match_graphs_build(&ap, &bp, ba->k, c, &g, &err);
  if (rc == CLUE_OK) rc = match_snn_rows(g, MATCH_X_QUERY, begin, cnt, MATCH_MAX_NNZ, &pred, NULL, &err);
  rc = clue_comm_agree(c, rc, &err);
  int64_t *partner = malloc(sizeof(int64_t) * (size_t)cnt + 1);
  for (int64_t i = 0; i < cnt; i++) partner[i] = begin + i;
  if (rc == CLUE_OK) rc = metrics_match_score(pred, partner, c, &score, &err);
  t1 = MPI_Wtime();
  if (rc) {
    if (c->rank == 0) fprintf(stderr, "bench_eval: %s\n", err.msg);
    return 1;
  }
  int64_t nnz = clue_csr_nnz(pred);
  clue_comm_sum_int64(c, &nnz, 1);
  report(c, "matching", n, dim, t1 - t0, sgemm, &g->stats);
  if (c->rank == 0)
    printf("          k=%d  matching score %.6f  prediction nnz %lld (%.2f per row)\n", ba->k,
           score, (long long)nnz, (double)nnz / (double)n);
  free(partner);
  clue_csr_free(pred);
  match_graphs_free(g);
  free(a);
  free(b);
  return 0;
}

int main(int argc, char **argv) {
  clue_blas_fix_core(argv); /* the kernels clue itself runs with (blas_core.h) */
  MPI_Init(&argc, &argv);
  clue_comm c = clue_comm_world();
  bench_args ba;
  if (parse(argc, argv, &ba)) {
    if (c.rank == 0)
      fprintf(stderr, "usage: bench_eval [--n N]... [--dim D] [--k K]\n");
    MPI_Finalize();
    return 2;
  }
  double rates[2];
  rates[0] = sgemm_rate(&c, ba.tile_rows, ba.tile_cols, ba.dim);
  rates[1] = sgemm_rate(&c, 2048, 2048, 2048);
  if (c.rank == 0)
    printf("sgemm, all %d rank(s) at once: %.1f GFLOP/s at the tile shape %lld x %lld x %lld, "
           "%.1f GFLOP/s at 2048^3\n", c.size, rates[0], (long long)ba.tile_rows,
           (long long)ba.tile_cols, (long long)ba.dim, rates[1]);
  int status = 0;
  for (int i = 0; i < ba.n_n && !status; i++) status = run_size(&c, &ba, ba.n[i], rates);
  MPI_Finalize();
  return status;
}
