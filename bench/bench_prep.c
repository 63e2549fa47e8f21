/* bench_prep.c — speed and memory of the preprocessing on synthetic counts:
 * fitting (highly variable genes + PCA, and LSI) over the ranks, and applying
 * the fitted transform (encoder input) to this rank's cells. Not a test.
 *
 *   OPENBLAS_NUM_THREADS=1 mpirun -np P bench_prep [--cells N] [--genes M]
 *        [--hvg H] [--comps R] [--mean L]
 *
 * Defaults: N = 100000 cells, M = 10000 features, H = 5000, R = 100, L = 0.15
 * (mean count of a gene; about 12 % of entries are nonzero). Cells belong to
 * 10 types; a quarter of the genes are 4× higher in one type (structure for
 * PCA to find). Cell i's counts come from the stream (seed, TEST, 0, i), so the
 * matrix does not depend on the number of ranks. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "clue/blas_core.h"
#include "clue/prep.h"
#include "clue/rng.h"

typedef struct bench_args {
  int64_t cells, genes, hvg;
  int comps;
  double mean;
} bench_args;

static int parse(int argc, char **argv, bench_args *a) {
  *a = (bench_args){100000, 10000, 5000, 100, 0.15};
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "--cells")) a->cells = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--genes")) a->genes = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--hvg")) a->hvg = atoll(argv[i + 1]);
    else if (!strcmp(argv[i], "--comps")) a->comps = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--mean")) a->mean = atof(argv[i + 1]);
    else return -1;
  }
  return a->cells > 1 && a->genes > 1 && a->comps > 0 ? 0 : -1;
}

/* Rows [b, e) of the synthetic matrix. */
static clue_csr *synth(const bench_args *a, int64_t b, int64_t e, int32_t **batch) {
  int64_t n = e - b, cap = (int64_t)((double)n * (double)a->genes * (1 - exp(-4 * a->mean)) + 1024);
  clue_err err;
  clue_csr *x = clue_csr_new(n, a->genes, cap, &err);
  *batch = malloc(sizeof **batch * (size_t)(n + 1));
  if (!x || !*batch) return NULL;
  int64_t nnz = 0;
  for (int64_t i = 0; i < n; i++) {
    clue_rng r = clue_rng_stream(1, CLUE_RNG_TEST, 0, (uint64_t)(b + i));
    int type = (int)((b + i) % 10);
    (*batch)[i] = (int32_t)((b + i) % 2);
    for (int64_t j = 0; j < a->genes; j++) {
      double lam = a->mean * (j % 40 < 10 && (j / 40) % 10 == type ? 4 : 1) *
                   (1 + (double)(j % 7)) / 4;
      double u = clue_rng_uniform(&r), p = exp(-lam), c = p;
      int k = 0;
      while (u > c && k < 100) p *= lam / ++k, c += p;
      if (k == 0) continue;
      if (nnz == cap) return NULL;
      x->indices[nnz] = (int32_t)j;
      x->data[nnz++] = (float)k;
    }
    x->indptr[i + 1] = nnz;
  }
  return x;
}

static double max_rss_mb(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_maxrss / 1024.0;
}

/* Fits mc, then encodes this rank's rows; prints the times from rank 0. */
static int run(const clue_modality_config *mc, const clue_csr *x, const int32_t *batch,
               int64_t hvg, const clue_comm *c, int64_t cells) {
  clue_err err;
  clue_prep *p = NULL;
  MPI_Barrier(c->comm);
  double t0 = MPI_Wtime();
  int rc = clue_prep_fit(mc, x, batch, 2, (int)hvg, 3, c, 1, &p, &err);
  double t1 = MPI_Wtime();
  if (rc != CLUE_OK) {
    if (c->rank == 0) fprintf(stderr, "bench_prep: %s\n", err.msg);
    return rc;
  }
  float *out = malloc(sizeof *out * (size_t)(x->n_rows * p->n_components + 1));
  MPI_Barrier(c->comm);
  double t2 = MPI_Wtime();
  rc = clue_prep_encode_input(p, x, out, &err);
  double t3 = MPI_Wtime(), slowest = t3 - t2;
  MPI_Allreduce(MPI_IN_PLACE, &slowest, 1, MPI_DOUBLE, MPI_MAX, c->comm);
  double rss = max_rss_mb();
  MPI_Allreduce(MPI_IN_PLACE, &rss, 1, MPI_DOUBLE, MPI_MAX, c->comm);
  if (c->rank == 0)
    printf("%-4s %lld cells: fit %.2f s; encode %.2f s (%.0f cells/s per rank); "
           "max RSS %.0f MB per rank\n",
           clue_preprocess_name(mc->preprocess), (long long)cells, t1 - t0, slowest,
           (double)x->n_rows / (t3 - t2), rss);
  free(out);
  clue_prep_free(p);
  return rc;
}

int main(int argc, char **argv) {
  clue_blas_fix_core(argv); /* the kernels clue itself runs with (blas_core.h) */
  MPI_Init(&argc, &argv);
  clue_comm c = clue_comm_world();
  bench_args a;
  if (parse(argc, argv, &a) != 0) {
    if (c.rank == 0)
      fprintf(stderr, "usage: bench_prep [--cells N] [--genes M] [--hvg H] [--comps R] [--mean L]\n");
    MPI_Finalize();
    return 2;
  }
  int64_t b = a.cells * c.rank / c.size, e = a.cells * (c.rank + 1) / c.size;
  int32_t *batch = NULL;
  double t0 = MPI_Wtime();
  clue_csr *x = synth(&a, b, e, &batch);
  int64_t nnz = x ? clue_csr_nnz(x) : -1;
  MPI_Allreduce(MPI_IN_PLACE, &nnz, 1, MPI_INT64_T, MPI_SUM, c.comm);
  if (c.rank == 0)
    printf("synthetic %lld × %lld, %.1f%% nonzero, made in %.1f s on %d ranks\n",
           (long long)a.cells, (long long)a.genes,
           100.0 * (double)nnz / ((double)a.cells * (double)a.genes), MPI_Wtime() - t0, c.size);
  clue_modality_config pca, lsi;
  memset(&pca, 0, sizeof pca);
  snprintf(pca.name, sizeof pca.name, "rna");
  pca.preprocess = CLUE_PREP_PCA;
  pca.normalize = CLUE_NORM_LOG1P;
  pca.features = CLUE_AUTO;
  pca.n_components = a.comps;
  lsi = pca;
  snprintf(lsi.name, sizeof lsi.name, "atac");
  lsi.preprocess = CLUE_PREP_LSI;
  lsi.likelihood = CLUE_LIK_BERNOULLI;
  int rc = x ? run(&pca, x, batch, a.hvg, &c, a.cells) : 1;
  if (rc == 0) rc = run(&lsi, x, batch, a.hvg, &c, a.cells);
  clue_csr_free(x);
  free(batch);
  MPI_Finalize();
  return rc == 0 ? 0 : 1;
}
