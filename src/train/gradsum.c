/* gradsum.c — sums of gradient buffers over the ranks through a node-shared
 * MPI-3 window (see gradsum.h), else MPI_Allreduce. */
#include "clue/gradsum.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clue/shm.h"

/* A tensor of an attached arena split over the ranks, by rows or by columns,
 * or a range of values that one rank owns whole (owner >= 0; rows = 1): values
 * [off, off + rows·row_len) of the slot, not summed (columns: unless a sum asks
 * for them). */
typedef struct split_tensor {
  int64_t off, rows, row_len;
  bool by_cols;
  int owner; /* −1: split by rows or columns */
} split_tensor;

struct clue_gradsum {
  clue_comm comm;  /* the ranks of the window: all, or this node's (not owned) */
  clue_comm world; /* every rank of the sums (= comm on one node) */
  clue_comm across; /* with several nodes: rank comm.rank of every node; else size 1 */
  real *pack;      /* (pack_cap) this rank's parts, packed for one sum across nodes */
  double across_bytes; /* sent in sums across nodes so far */
  int64_t pack_cap;
  clue_shm *shm;   /* the ranks' slots when they share one node; NULL: the sums use
                      MPI_Allreduce */
  real **slot;     /* (size) slot q: n_max values of rank q in the window */
  real *weights;   /* the weights of attached arenas, one copy that every rank
                      reads and updates in place (its parts), at the offsets of
                      their gradients in a slot: the n_max values after slot 0 */
  real **view;     /* (size) the slots at the offset of the current sum */
  int64_t n_max;
  clue_arena *attached[4]; /* arenas whose gradients live in this rank's slot */
  int n_attached;
  split_tensor split[CLUE_GRADSUM_MAX_SPLIT]; /* split tensors, by offset */
  int n_split;
  int64_t *part_b, *part_e; /* (part_cap) the ranges clue_gradsum_parts gives */
  int part_cap;
};

static int grow_parts(clue_gradsum *g, const split_tensor *extra, clue_err *err);

int clue_gradsum_new(const clue_comm *comm, int64_t n_max, bool use_shared,
                     clue_gradsum **out, clue_err *err) {
  *out = NULL;
  clue_gradsum *g = clue_calloc(1, sizeof *g, err);
  if (!g) return clue_comm_agree(comm, CLUE_ENOMEM, err);
  g->comm = g->world = *comm;
  g->across = clue_comm_self();
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
  g->slot = calloc((size_t)comm->size, sizeof *g->slot);
  g->view = calloc((size_t)comm->size, sizeof *g->view);
  rc = clue_comm_agree(comm, g->slot && g->view ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) rc = clue_fail(err, rc, "out of memory for gradient sums");
  /* no window (several nodes, or it cannot be made) is not an error: MPI_Allreduce.
   * Each slot has room for weights after the gradients; only rank 0's is used
   * (by clue_gradsum_attach): the pages of the others are never touched. */
  int64_t each = ((n_max > 0 ? n_max : 1) + 15) / 16 * 16;
  if (!rc) rc = clue_shm_new(comm, 2 * each * (int64_t)sizeof(real), &g->shm, err);
  if (rc || !g->shm) {
    free(g->slot);
    free(g->view);
    g->slot = g->view = NULL;
    if (rc) {
      free(g);
      return rc;
    }
    *out = g;
    return CLUE_OK;
  }
  for (int q = 0; q < comm->size; q++) g->slot[q] = clue_shm_slot(g->shm, q);
  g->weights = g->slot[0] + each;
  rc = clue_comm_agree(comm, grow_parts(g, NULL, err), err);
  if (rc) {
    clue_gradsum_free(g);
    return rc;
  }
  *out = g;
  return CLUE_OK;
}

int clue_gradsum_attach(clue_gradsum *g, clue_arena *const *arenas, int n_arenas,
                        clue_err *err) {
  if (!g->shm) return CLUE_OK;
  int64_t need = 0;
  for (int i = 0; i < n_arenas; i++) need += arenas[i]->n;
  if (need > g->n_max || n_arenas > (int)(sizeof g->attached / sizeof g->attached[0]))
    return clue_fail(err, CLUE_EINVAL, "gradient sums: %lld values do not fit in %lld",
                     (long long)need, (long long)g->n_max);
  real *at = g->slot[g->comm.rank], *wat = g->weights;
  bool first = g->comm.rank == 0; /* copies the weights in; the others take them */
  for (int i = 0; i < n_arenas; i++) { /* cannot fail: the buffers are given */
    clue_arena_use_grad(arenas[i], at, err);
    if (first) clue_arena_use_weights(arenas[i], wat, err);
    g->attached[g->n_attached++] = arenas[i];
    at += arenas[i]->n;
    wat += arenas[i]->n;
  }
  clue_shm_sync(g->shm); /* rank 0's weights are in */
  wat = g->weights;
  for (int i = 0; i < n_arenas && !first; i++) {
    clue_arena_adopt_weights(arenas[i], wat);
    wat += arenas[i]->n;
  }
  return CLUE_OK;
}

void clue_gradsum_free(clue_gradsum *g) {
  if (!g) return;
  for (int i = 0; i < g->n_attached; i++) {
    clue_err err;
    clue_arena *a = g->attached[i];
    if (clue_arena_use_grad(a, NULL, &err) != CLUE_OK) { /* no memory: no gradients */
      a->g = NULL;
      a->g_borrowed = false;
    }
    if (clue_arena_use_weights(a, NULL, &err) != CLUE_OK) { /* no memory: no weights */
      a->w = NULL;
      a->w_borrowed = false;
    }
  }
  clue_shm_free(g->shm);
  free(g->pack);
  free(g->slot);
  free(g->view);
  free(g->part_b);
  free(g->part_e);
  free(g);
}

bool clue_gradsum_shared(const clue_gradsum *g) { return g && g->shm; }

/* Start of rank r's slice of n values (slices of whole 16-value blocks). */
static int64_t slice_begin(int64_t n, int size, int r) {
  int64_t blocks = (n + 15) / 16;
  int64_t b = blocks * r / size * 16;
  return b < n ? b : n;
}

/* out[i] = mine[i] = Σ_q slot[q][i] over [b, e), q in rank order; out or mine may
 * be slot[r] itself (the sums go through a small buffer). With clear ≥ 0, the
 * values read of every slot but slot[clear] are zeroed once read. */
static void sum_slice(real *const *slot, int size, int64_t b, int64_t e, real *out,
                      real *mine, int clear) {
  enum { BLOCK = 1024 };
  real acc[BLOCK];
  for (int64_t i0 = b; i0 < e; i0 += BLOCK) {
    int m = (int)(e - i0 < BLOCK ? e - i0 : BLOCK);
    const real *restrict s0 = slot[0] + i0;
    for (int i = 0; i < m; i++) acc[i] = s0[i];
    for (int q = 1; q < size; q++) {
      const real *restrict s = slot[q] + i0;
      for (int i = 0; i < m; i++) acc[i] += s[i];
    }
    for (int q = 0; clear >= 0 && q < size; q++)
      if (q != clear) memset(slot[q] + i0, 0, (size_t)m * sizeof(real));
    memcpy(out + i0, acc, (size_t)m * sizeof(real));
    if (mine != out) memcpy(mine + i0, acc, (size_t)m * sizeof(real));
  }
}

/* Memory barrier for the window plus a barrier of the node's ranks. */
static void node_sync(const clue_gradsum *g) { clue_shm_sync(g->shm); }

/* The offset of buf in this rank's slot when it lies there whole, else −1. */
static int64_t slot_offset(const clue_gradsum *g, const real *buf, int64_t n) {
  uintptr_t at = (uintptr_t)buf, mine = (uintptr_t)g->slot[g->comm.rank];
  if (at < mine || at + (uintptr_t)n * sizeof(real) > mine + (uintptr_t)g->n_max * sizeof(real))
    return -1;
  return (int64_t)((at - mine) / sizeof(real));
}

void clue_gradsum_sum(clue_gradsum *g, real *buf, int64_t n) {
  const clue_comm *c = &g->comm;
  if (g->world.size == 1 || n <= 0) return;
  if (!g->shm || n > g->n_max) {
    clue_sum_real_mpi(&g->world, buf, n);
    return;
  }
  int P = c->size, r = c->rank;
  /* in place: buf is already in this rank's slot, at the same offset on every rank */
  int64_t off = slot_offset(g, buf, n);
  bool in_place = off >= 0;
  real **view = g->view;
  if (!in_place && g->n_attached > 0) { /* the slot holds attached gradients */
    clue_sum_real_mpi(&g->world, buf, n);
    return;
  }
  if (in_place) {
    for (int q = 0; q < P; q++) view[q] = g->slot[q] + off;
    node_sync(g); /* every rank's gradients are complete */
  } else {
    for (int q = 0; q < P; q++) view[q] = g->slot[q];
    node_sync(g); /* every rank is done reading the slots of the previous sum */
    memcpy(g->slot[r], buf, (size_t)n * sizeof(real));
    node_sync(g);
  }
  int64_t b0 = slice_begin(n, P, r), e0 = slice_begin(n, P, r + 1);
  sum_slice(view, P, b0, e0, buf, view[r], -1);
  if (g->across.size > 1 && e0 > b0) { /* this slice over the nodes */
    g->across_bytes += (double)(e0 - b0) * sizeof(real);
    clue_sum_real_mpi(&g->across, buf + b0, e0 - b0);
    memcpy(view[r] + b0, buf + b0, (size_t)(e0 - b0) * sizeof(real));
  }
  node_sync(g);
  for (int q = 0; q < P; q++) {
    if (q == r) continue;
    int64_t b = slice_begin(n, P, q), e = slice_begin(n, P, q + 1);
    memcpy(buf + b, view[q] + b, (size_t)(e - b) * sizeof(real));
  }
  if (in_place) node_sync(g); /* nobody reads this slot while it is written again */
}

real *clue_gradsum_peer(const clue_gradsum *g, const real *mine, int q) {
  int64_t off = g->shm ? slot_offset(g, mine, 1) : -1;
  return off < 0 || q < 0 || q >= g->comm.size ? NULL : g->slot[q] + off;
}

int64_t clue_gradsum_slice(const clue_gradsum *g, int64_t n, int r) {
  return slice_begin(n, g->comm.size, r);
}

/* Room for the ranges of every piece (pieces_of) once `extra` (NULL: none) is
 * split too: two per split tensor and one more, and a range per row of a
 * tensor split by columns. */
static int grow_parts(clue_gradsum *g, const split_tensor *extra, clue_err *err) {
  int64_t cap = 2 * (int64_t)g->n_split + 1;
  for (int i = 0; i < g->n_split; i++)
    if (g->split[i].by_cols) cap += g->split[i].rows - 1;
  if (extra) cap += 2 + (extra->by_cols ? extra->rows - 1 : 0);
  if (cap > INT32_MAX / 2) return clue_fail(err, CLUE_EINVAL, "gradient sums: too many parts");
  if (cap <= g->part_cap) return CLUE_OK;
  int64_t *b = realloc(g->part_b, (size_t)cap * sizeof *b);
  if (b) g->part_b = b;
  int64_t *e = b ? realloc(g->part_e, (size_t)cap * sizeof *e) : NULL;
  if (e) g->part_e = e;
  if (!b || !e) return clue_fail(err, CLUE_ENOMEM, "out of memory for gradient sums");
  g->part_cap = (int)cap;
  return CLUE_OK;
}

/* Adds t to the split tensors (kept in offset order); it must not overlap one. */
static int split_add(clue_gradsum *g, split_tensor t, clue_err *err) {
  for (int i = 0; i < g->n_split; i++) {
    const split_tensor *u = &g->split[i];
    if (t.off < u->off + u->rows * u->row_len && u->off < t.off + t.rows * t.row_len)
      return clue_fail(err, CLUE_EINVAL, "gradient sums: split parts overlap");
  }
  int rc = grow_parts(g, &t, err); /* before the tensor counts: nothing changes on failure */
  if (rc) return rc;
  int i = g->n_split++;
  for (; i > 0 && g->split[i - 1].off > t.off; i--) g->split[i] = g->split[i - 1];
  g->split[i] = t;
  return CLUE_OK;
}

static int split_tensor_add(clue_gradsum *g, const clue_arena *a, int tensor, bool by_cols,
                            clue_err *err) {
  if (!g->shm) return CLUE_OK;
  int64_t at = slot_offset(g, a->g, a->n);
  if (at < 0 || tensor < 0 || tensor >= a->n_tensors || g->n_split == CLUE_GRADSUM_MAX_SPLIT)
    return clue_fail(err, CLUE_EINVAL, "gradient sums: cannot split tensor %d by %s", tensor,
                     by_cols ? "columns" : "rows");
  split_tensor t = {at + a->t[tensor].offset, a->t[tensor].rows, a->t[tensor].cols, by_cols,
                    -1};
  return split_add(g, t, err);
}

int clue_gradsum_own(clue_gradsum *g, const clue_arena *a, int64_t first, int64_t n, int owner,
                     clue_err *err) {
  if (!g->shm) return CLUE_OK;
  int64_t at = slot_offset(g, a->g, a->n);
  if (at < 0 || first < 0 || n < 1 || first + n > a->n || owner < 0 ||
      owner >= g->comm.size || g->n_split == CLUE_GRADSUM_MAX_SPLIT)
    return clue_fail(err, CLUE_EINVAL, "gradient sums: cannot give values [%lld, %lld) to rank %d",
                     (long long)first, (long long)(first + n), owner);
  split_tensor t = {at + first, 1, n, false, owner};
  return split_add(g, t, err);
}

int clue_gradsum_split_rows(clue_gradsum *g, const clue_arena *a, int tensor, clue_err *err) {
  return split_tensor_add(g, a, tensor, false, err);
}

int clue_gradsum_split_cols(clue_gradsum *g, const clue_arena *a, int tensor, clue_err *err) {
  return split_tensor_add(g, a, tensor, true, err);
}

/* Pieces of [off, off + n) of the slot: summed runs between split tensors and the
 * split tensors; each rank owns a slice of every piece (piece_ranges). */
typedef enum { PIECE_SUMMED, PIECE_ROWS, PIECE_COLS, PIECE_OWNED } piece_kind;

typedef struct piece {
  int64_t b, rows, row_len; /* offset in buf */
  piece_kind kind;
  int owner; /* PIECE_OWNED: the rank that owns it */
} piece;

static int pieces_of(const clue_gradsum *g, int64_t off, int64_t n, piece *out) {
  int np = 0;
  int64_t at = off;
  for (int i = 0; i < g->n_split; i++) {
    const split_tensor *t = &g->split[i];
    if (t->off < off || t->off + t->rows * t->row_len > off + n) continue;
    if (t->off > at) out[np++] = (piece){at - off, t->off - at, 1, PIECE_SUMMED, -1};
    piece_kind kind = t->owner >= 0 ? PIECE_OWNED : t->by_cols ? PIECE_COLS : PIECE_ROWS;
    out[np++] = (piece){t->off - off, t->rows, t->row_len, kind, t->owner};
    at = t->off + t->rows * t->row_len;
  }
  if (at < off + n) out[np++] = (piece){at - off, off + n - at, 1, PIECE_SUMMED, -1};
  return np;
}

/* Ranges of a piece that one rank owns: one, or one per row of a tensor split
 * by columns. */
static int64_t piece_count(const piece *p) { return p->kind == PIECE_COLS ? p->rows : 1; }

/* Range j of rank q's ranges of piece p: [*b, *e) of buf. */
static void piece_range(const piece *p, int P, int q, int64_t j, int64_t *b, int64_t *e) {
  if (p->kind == PIECE_OWNED) {
    *b = p->b;
    *e = q == p->owner ? p->b + p->row_len : p->b;
  } else if (p->kind == PIECE_COLS) {
    *b = p->b + j * p->row_len + slice_begin(p->row_len, P, q);
    *e = p->b + j * p->row_len + slice_begin(p->row_len, P, q + 1);
  } else {
    *b = p->b + slice_begin(p->rows, P, q) * p->row_len;
    *e = p->b + slice_begin(p->rows, P, q + 1) * p->row_len;
  }
}

#define MAX_PIECES (2 * CLUE_GRADSUM_MAX_SPLIT + 1)

/* Rank r's non-empty ranges of buf into g's part arrays; returns their number. */
static int parts_into(clue_gradsum *g, const real *buf, int64_t n, int r) {
  const clue_comm *c = &g->comm;
  if (c->size == 1 || n <= 0 || !g->shm) return 0;
  int64_t off = slot_offset(g, buf, n);
  if (off < 0) return 0; /* the same answer on every rank: attached alike */
  piece pc[MAX_PIECES];
  int np = pieces_of(g, off, n, pc), k = 0;
  for (int i = 0; i < np; i++)
    for (int64_t j = 0; j < piece_count(&pc[i]); j++) {
      piece_range(&pc[i], c->size, r, j, &g->part_b[k], &g->part_e[k]);
      if (g->part_e[k] > g->part_b[k]) k++;
    }
  if (k == 0) g->part_b[k] = g->part_e[k] = 0, k = 1; /* an empty part still means sharded */
  return k;
}

int clue_gradsum_parts(clue_gradsum *g, const real *buf, int64_t n, int r, const int64_t **b,
                       const int64_t **e) {
  int k = parts_into(g, buf, n, r);
  if (k > 0) { /* else b and e stay as they are */
    *b = g->part_b;
    *e = g->part_e;
  }
  return k;
}

/* This rank's parts [b[i], e[i]) of buf, summed over the nodes (rank r of
 * every node holds the same parts): packed into one buffer, one sum. */
static void sum_across(clue_gradsum *g, real *buf, const int64_t *b, const int64_t *e, int k) {
  int64_t total = 0;
  for (int i = 0; i < k; i++) total += e[i] - b[i];
  g->across_bytes += (double)total * sizeof(real);
  if (total > g->pack_cap) {
    free(g->pack);
    g->pack = malloc((size_t)total * sizeof(real));
    g->pack_cap = g->pack ? total : 0;
  }
  if (!g->pack) { /* no memory for the pack: part by part */
    for (int i = 0; i < k; i++)
      if (e[i] > b[i]) clue_sum_real_mpi(&g->across, buf + b[i], e[i] - b[i]);
    return;
  }
  int64_t at = 0;
  for (int i = 0; i < k; i++) {
    memcpy(g->pack + at, buf + b[i], (size_t)(e[i] - b[i]) * sizeof(real));
    at += e[i] - b[i];
  }
  clue_sum_real_mpi(&g->across, g->pack, total);
  at = 0;
  for (int i = 0; i < k; i++) {
    memcpy(buf + b[i], g->pack + at, (size_t)(e[i] - b[i]) * sizeof(real));
    at += e[i] - b[i];
  }
}

int clue_gradsum_set_nodes(clue_gradsum *g, const clue_comm *world, const clue_comm *across) {
  if (!g->shm) return 0; /* no window: the sums already run over comm with MPI */
  g->world = *world;
  g->across = *across;
  return 1;
}

int clue_gradsum_node_rank(const clue_gradsum *g) { return g->comm.rank; }

double clue_gradsum_across_bytes(const clue_gradsum *g) { return g ? g->across_bytes : 0; }

int clue_gradsum_sum_parts(clue_gradsum *g, real *buf, int64_t n, bool sum_cols,
                           const int64_t **b, const int64_t **e) {
  int P = g->comm.size, r = g->comm.rank;
  int k = clue_gradsum_parts(g, buf, n, r, b, e);
  if (k == 0) return 0;
  int64_t off = slot_offset(g, buf, n);
  for (int q = 0; q < P; q++) g->view[q] = g->slot[q] + off;
  piece pc[MAX_PIECES];
  int np = pieces_of(g, off, n, pc);
  node_sync(g); /* every rank's gradients are complete */
  for (int i = 0; i < np; i++) {
    if (pc[i].kind == PIECE_ROWS || pc[i].kind == PIECE_OWNED ||
        (pc[i].kind == PIECE_COLS && !sum_cols))
      continue; /* this rank's rows or columns are whole already */
    for (int64_t j = 0; j < piece_count(&pc[i]); j++) {
      int64_t pb, pe;
      piece_range(&pc[i], P, r, j, &pb, &pe);
      sum_slice(g->view, P, pb, pe, buf, buf, r);
    }
  }
  node_sync(g); /* nobody reads the slots any more: they may be written again */
  if (g->across.size > 1) sum_across(g, buf, *b, *e, k);
  return k;
}

void clue_gradsum_share(clue_gradsum *g) {
  if (g->shm && g->n_attached > 0) node_sync(g); /* every rank's parts are updated */
}

void clue_gradsum_gather(clue_gradsum *g, const real *like, real *buf, int64_t n) {
  const clue_comm *c = &g->comm;
  if (c->size == 1 || n <= 0) return;
  MPI_Datatype type = sizeof(real) == sizeof(double) ? MPI_DOUBLE : MPI_FLOAT;
  const int64_t *b, *e;
  if (c->rank != 0) {
    int k = clue_gradsum_parts(g, like, n, c->rank, &b, &e);
    for (int i = 0; i < k; i++)
      if (e[i] > b[i]) MPI_Send(buf + b[i], (int)(e[i] - b[i]), type, 0, 0, c->comm);
    return;
  }
  for (int q = 1; q < c->size; q++) {
    int k = clue_gradsum_parts(g, like, n, q, &b, &e);
    for (int i = 0; i < k; i++)
      if (e[i] > b[i])
        MPI_Recv(buf + b[i], (int)(e[i] - b[i]), type, q, 0, c->comm, MPI_STATUS_IGNORE);
  }
}

int64_t clue_gradsum_summed(const clue_gradsum *g, const real *buf, int64_t n, bool sum_cols) {
  int64_t off = !g->shm ? -1 : slot_offset(g, buf, n);
  if (off < 0) return n;
  piece pc[MAX_PIECES];
  int np = pieces_of(g, off, n, pc);
  for (int i = 0; i < np; i++)
    if (pc[i].kind == PIECE_ROWS || pc[i].kind == PIECE_OWNED ||
        (pc[i].kind == PIECE_COLS && !sum_cols))
      n -= pc[i].rows * pc[i].row_len;
  return n;
}
