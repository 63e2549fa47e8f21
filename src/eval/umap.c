/* umap.c — the UMAP pipeline (umap.h): options, the distributed kNN, gathering
 * its lists on every rank, then the graph, the initial layout and the SGD,
 * identically on every rank. */
#include "clue/umap.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


void clue_umap_opts_default(clue_umap_opts *o) {
  memset(o, 0, sizeof *o);
  o->n_neighbors = 15;
  o->min_dist = 0.1;
  o->spread = 1.0;
  o->n_epochs = 0;
  o->negative_sample_rate = 5;
  o->learning_rate = 1.0;
}

int clue_umap_check_opts(const clue_umap_opts *o, clue_err *err) {
  if (o->n_neighbors < 2 || o->n_neighbors > 1000)
    return clue_fail(err, CLUE_EINVAL, "umap: n_neighbors %d: expected 2..1000", o->n_neighbors);
  if (!(o->spread > 0) || !isfinite(o->spread))
    return clue_fail(err, CLUE_EINVAL, "umap: spread %g: expected > 0", o->spread);
  if (!(o->min_dist >= 0) || !(o->min_dist <= o->spread))
    return clue_fail(err, CLUE_EINVAL, "umap: min_dist %g: expected 0..spread (%g)",
                     o->min_dist, o->spread);
  if (o->n_epochs < 0 || o->n_epochs > 100000)
    return clue_fail(err, CLUE_EINVAL, "umap: n_epochs %d: expected 0 (auto)..100000",
                     o->n_epochs);
  if (o->negative_sample_rate < 0 || o->negative_sample_rate > 1000)
    return clue_fail(err, CLUE_EINVAL, "umap: negative_sample_rate %d: expected 0..1000",
                     o->negative_sample_rate);
  if (!(o->learning_rate > 0) || !isfinite(o->learning_rate))
    return clue_fail(err, CLUE_EINVAL, "umap: learning_rate %g: expected > 0",
                     o->learning_rate);
  return CLUE_OK;
}

/* Collective. Every rank's rows of `per_row` values of type t (this rank: n
 * rows at `mine`) into all (n_total rows, rank order) on every rank. */
static int allgather_rows(const void *mine, int64_t n, int64_t n_total, int per_row,
                          MPI_Datatype t, void *all, const clue_comm *comm, clue_err *err) {
  if (n_total > INT_MAX)
    return clue_fail(err, CLUE_EINVAL, "umap: %lld points: too many to gather",
                     (long long)n_total);
  int *counts = clue_malloc((size_t)comm->size * sizeof *counts, err);
  int *disp = clue_malloc((size_t)comm->size * sizeof *disp, err);
  int rc = clue_comm_agree(comm, counts && disp ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) {
    MPI_Datatype row;
    MPI_Type_contiguous(per_row, t, &row);
    MPI_Type_commit(&row);
    int c = (int)n;
    MPI_Allgather(&c, 1, MPI_INT, counts, 1, MPI_INT, comm->comm);
    disp[0] = 0;
    for (int r = 1; r < comm->size; r++) disp[r] = disp[r - 1] + counts[r - 1];
    if (MPI_Allgatherv(mine, c, row, all, counts, disp, row, comm->comm) != MPI_SUCCESS)
      rc = clue_fail(err, CLUE_EMPI, "umap: gathering %lld rows failed", (long long)n_total);
    MPI_Type_free(&row);
  }
  free(counts);
  free(disp);
  return rc;
}

/* Collective. The kNN lists of every point on every rank: idx and d (distances,
 * not squared), n_total × k each. */
static int knn_lists(const knn_points *pts, int k, const clue_comm *comm, int64_t *idx,
                     double *d, clue_err *err) {
  knn_opts ko = {.k_row = k, .exclude_self = true};
  knn_result *r = NULL;
  int rc = knn_scan(pts, pts, &ko, comm, &r, err);
  if (rc == CLUE_OK)
    rc = allgather_rows(r->row_idx, pts->n, pts->n_total, k, MPI_INT64_T, idx, comm, err);
  if (rc == CLUE_OK)
    rc = allgather_rows(r->row_d2, pts->n, pts->n_total, k, MPI_DOUBLE, d, comm, err);
  knn_result_free(r);
  for (int64_t i = 0; rc == CLUE_OK && i < pts->n_total * k; i++) d[i] = sqrt(d[i]);
  return rc;
}

/* Step 2 from the lists: the symmetric graph. */
static int build_graph(const int64_t *idx, const double *d, int64_t n, int k, int n_neighbors,
                       clue_umap_graph **g, clue_err *err) {
  double *rho = clue_malloc((size_t)n * sizeof *rho, err);
  double *sigma = clue_malloc((size_t)n * sizeof *sigma, err);
  double *w = clue_malloc((size_t)(n * k) * sizeof *w, err);
  int rc = rho && sigma && w ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK) {
    clue_umap_smooth_knn(d, n, k, log2(n_neighbors), rho, sigma);
    clue_umap_memberships(d, n, k, rho, sigma, w);
    rc = clue_umap_fuzzy_union(idx, w, n, k, g, err);
  }
  free(rho), free(sigma), free(w);
  return rc;
}

/* Collective. Checks the options and the points (finite, enough of them). */
static int check_input(const knn_points *pts, const clue_umap_opts *o, const clue_comm *comm,
                       clue_err *err) {
  int rc = clue_umap_check_opts(o, err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc) return rc;
  rc = knn_check_finite(pts->x, pts->n, pts->dim, pts->begin, "umap input", err);
  rc = clue_comm_agree_first(comm, pts->begin, rc, err);
  if (rc == CLUE_OK && pts->n_total < o->n_neighbors + 1)
    rc = clue_fail(err, CLUE_EDATA, "umap: %lld points: need at least n_neighbors + 1 = %d",
                   (long long)pts->n_total, o->n_neighbors + 1);
  return rc;
}

/* Collective. Step 4 (gathering the input when the graph is disconnected). */
static int initial_layout(const knn_points *pts, const clue_umap_graph *g, uint64_t seed,
                          float *out, int64_t *n_comp, const clue_comm *comm, clue_err *err) {
  int64_t *comp = clue_malloc((size_t)g->n * sizeof *comp + 1, err);
  int rc = comp ? clue_umap_components(g, comp, n_comp, err) : CLUE_ENOMEM;
  free(comp);
  rc = clue_comm_agree(comm, rc, err);
  float *x = NULL;
  if (rc == CLUE_OK && *n_comp > 1) {
    x = clue_malloc((size_t)(pts->n_total * pts->dim) * sizeof *x + 1, err);
    rc = clue_comm_agree(comm, x ? CLUE_OK : CLUE_ENOMEM, err);
    if (rc == CLUE_OK)
      rc = allgather_rows(pts->x, pts->n, pts->n_total, (int)pts->dim, MPI_FLOAT, x, comm, err);
  }
  if (rc == CLUE_OK) rc = clue_umap_init_spectral(g, x, pts->dim, seed, out, n_comp, err);
  free(x);
  return rc;
}

int clue_umap(const knn_points *pts, const clue_umap_opts *o, const clue_comm *comm,
              float *out, clue_umap_stats *stats, clue_err *err) {
  clue_umap_stats st;
  memset(&st, 0, sizeof st);
  int rc = check_input(pts, o, comm, err);
  if (rc) return rc;
  int64_t n = pts->n_total;
  int k = o->n_neighbors - 1;
  double t0 = MPI_Wtime();
  int64_t *idx = clue_malloc((size_t)(n * k) * sizeof *idx, err);
  double *d = clue_malloc((size_t)(n * k) * sizeof *d, err);
  rc = clue_comm_agree(comm, idx && d ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc == CLUE_OK) rc = knn_lists(pts, k, comm, idx, d, err);
  double t1 = MPI_Wtime();
  clue_umap_graph *g = NULL;
  if (rc == CLUE_OK) rc = clue_comm_agree(comm, build_graph(idx, d, n, k, o->n_neighbors, &g, err), err);
  free(idx), free(d);
  double t2 = MPI_Wtime();
  if (rc == CLUE_OK) rc = initial_layout(pts, g, o->seed, out, &st.n_components, comm, err);
  double t3 = MPI_Wtime();
  clue_umap_opts mine = *o;
  mine.progress = o->progress && comm->rank == 0;
  if (rc == CLUE_OK && mine.progress) {
    fprintf(stderr, "clue umap: kNN %.1f s, graph %.1f s (%lld edges), initialisation %.1f s "
            "(%lld components)\n", t1 - t0, t2 - t1, (long long)g->indptr[n], t3 - t2,
            (long long)st.n_components);
    fflush(stderr);
  }
  st.n_epochs = o->n_epochs > 0 ? o->n_epochs : n <= 10000 ? 500 : 200;
  if (rc == CLUE_OK) rc = clue_umap_fit_ab(o->spread, o->min_dist, &st.a, &st.b, err);
  if (rc == CLUE_OK) {
    st.n_edges = g->indptr[n];
    rc = clue_umap_optimize(g, st.a, st.b, &mine, st.n_epochs, out, &st, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  clue_umap_graph_free(g);
  st.t_knn = t1 - t0, st.t_graph = t2 - t1, st.t_init = t3 - t2, st.t_layout = MPI_Wtime() - t3;
  if (stats) *stats = st;
  return rc;
}
