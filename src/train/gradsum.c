/* gradsum.c — sums of gradient buffers over the ranks through a node-shared
 * MPI-3 window (see gradsum.h), else MPI_Allreduce. */
#include "clue/gradsum.h"

#include <stdlib.h>
#include <string.h>

struct clue_gradsum {
  clue_comm comm;  /* the communicator of the sums (not owned) */
  MPI_Comm node;   /* the same ranks, in the same order, on one node; MPI_COMM_NULL:
                      the sums use MPI_Allreduce */
  MPI_Win win;
  real **slot;     /* (size) slot q: n_max values of rank q in the window */
  int64_t n_max;
};

int clue_gradsum_new(const clue_comm *comm, int64_t n_max, bool use_shared,
                     clue_gradsum **out, clue_err *err) {
  *out = NULL;
  clue_gradsum *g = clue_calloc(1, sizeof *g, err);
  if (!g) return clue_comm_agree(comm, CLUE_ENOMEM, err);
  g->comm = *comm;
  g->node = MPI_COMM_NULL;
  g->n_max = n_max;
  int rc = clue_comm_agree(comm, CLUE_OK, err);
  if (rc) {
    free(g);
    return rc;
  }
  if (comm->size == 1 || !use_shared) {
    *out = g;
    return CLUE_OK;
  }
  MPI_Comm node;
  MPI_Comm_split_type(comm->comm, MPI_COMM_TYPE_SHARED, comm->rank, MPI_INFO_NULL, &node);
  int node_size = 0;
  MPI_Comm_size(node, &node_size);
  /* every rank sees node_size < size unless all share one node */
  int ok = node_size == comm->size;
  real *mine = NULL;
  int wrc = MPI_ERR_OTHER;
  if (ok) {
    MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN);
    MPI_Aint bytes = (MPI_Aint)((n_max > 0 ? n_max : 1) * (int64_t)sizeof(real));
    wrc = MPI_Win_allocate_shared(bytes, (int)sizeof(real), MPI_INFO_NULL, node, &mine,
                                  &g->win);
    g->slot = calloc((size_t)comm->size, sizeof *g->slot);
    ok = wrc == MPI_SUCCESS && g->slot;
    MPI_Allreduce(MPI_IN_PLACE, &ok, 1, MPI_INT, MPI_MIN, node);
  }
  if (!ok) { /* not one node, or no window: MPI_Allreduce */
    if (wrc == MPI_SUCCESS) MPI_Win_free(&g->win);
    free(g->slot);
    g->slot = NULL;
    MPI_Comm_free(&node);
    *out = g;
    return CLUE_OK;
  }
  for (int q = 0; q < comm->size; q++) {
    MPI_Aint size;
    int disp;
    MPI_Win_shared_query(g->win, q, &size, &disp, &g->slot[q]);
  }
  MPI_Win_lock_all(MPI_MODE_NOCHECK, g->win);
  g->node = node;
  *out = g;
  return CLUE_OK;
}

void clue_gradsum_free(clue_gradsum *g) {
  if (!g) return;
  if (g->node != MPI_COMM_NULL) {
    MPI_Win_unlock_all(g->win);
    MPI_Win_free(&g->win);
    MPI_Comm_free(&g->node);
  }
  free(g->slot);
  free(g);
}

bool clue_gradsum_shared(const clue_gradsum *g) { return g && g->node != MPI_COMM_NULL; }

/* Start of rank r's slice of n values (slices of whole 16-value blocks). */
static int64_t slice_begin(int64_t n, int size, int r) {
  int64_t blocks = (n + 15) / 16;
  int64_t b = blocks * r / size * 16;
  return b < n ? b : n;
}

/* out[i] = mine[i] = Σ_q slot[q][i] over [b, e), q in rank order. */
static void sum_slice(real *const *slot, int size, int64_t b, int64_t e, real *restrict out,
                      real *restrict mine) {
  const real *restrict s0 = slot[0];
  for (int64_t i = b; i < e; i++) out[i] = s0[i];
  for (int q = 1; q < size; q++) {
    const real *restrict s = slot[q];
    for (int64_t i = b; i < e; i++) out[i] += s[i];
  }
  memcpy(mine + b, out + b, (size_t)(e - b) * sizeof(real));
}

/* Memory barrier for the window plus a barrier of the node's ranks. */
static void node_sync(const clue_gradsum *g) {
  MPI_Win_sync(g->win);
  MPI_Barrier(g->node);
  MPI_Win_sync(g->win);
}

void clue_gradsum_sum(clue_gradsum *g, real *buf, int64_t n) {
  const clue_comm *c = &g->comm;
  if (c->size == 1 || n <= 0) return;
  if (g->node == MPI_COMM_NULL || n > g->n_max) {
    if (sizeof(real) == sizeof(double))
      clue_comm_sum_double(c, (double *)buf, (size_t)n);
    else
      clue_comm_sum_float(c, (float *)buf, (size_t)n);
    return;
  }
  int P = c->size, r = c->rank;
  node_sync(g); /* every rank is done reading the slots of the previous sum */
  memcpy(g->slot[r], buf, (size_t)n * sizeof(real));
  node_sync(g);
  sum_slice(g->slot, P, slice_begin(n, P, r), slice_begin(n, P, r + 1), buf, g->slot[r]);
  node_sync(g);
  for (int q = 0; q < P; q++) {
    if (q == r) continue;
    int64_t b = slice_begin(n, P, q), e = slice_begin(n, P, q + 1);
    memcpy(buf + b, g->slot[q] + b, (size_t)(e - b) * sizeof(real));
  }
}
