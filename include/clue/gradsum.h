/* gradsum.h — in-place sums over the ranks of the large gradient buffers of a
 * training step, identical bits on every rank.
 *
 * When every rank of the communicator runs on one node, the sum goes through an
 * MPI-3 shared-memory window: each rank copies its buffer into its slot (unless the
 * buffer already lives there: clue_gradsum_attach), sums one slice of all slots (in
 * rank order), and copies the other ranks' summed slices back — three barriers and
 * memory-speed copies. Open MPI's shared-memory
 * transport without a single-copy mechanism (containers) moves a large
 * MPI_Allreduce through small buffers, fragment by fragment, each waiting for the
 * other rank: several times slower for the 56 MB of a Multiome step (bench/).
 * Across nodes, or if the window cannot be made, MPI_Allreduce. */
#ifndef CLUE_GRADSUM_H
#define CLUE_GRADSUM_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/arena.h"
#include "clue/comm.h"
#include "clue/error.h"
#include "clue/real.h"

typedef struct clue_gradsum clue_gradsum;

/* Collective. buf (n values of the network's float type) ← Σ over ranks, through
 * MPI_Allreduce. */
static inline void clue_sum_real_mpi(const clue_comm *c, real *buf, int64_t n) {
  if (sizeof(real) == sizeof(double))
    clue_comm_sum_double(c, (double *)buf, (size_t)n);
  else
    clue_comm_sum_float(c, (float *)buf, (size_t)n);
}

/* Collective. Prepares sums of buffers of up to n_max values; use_shared = false
 * always uses MPI_Allreduce (for comparisons). Failing to make the window is not
 * an error: the sums then use MPI_Allreduce. */
int clue_gradsum_new(const clue_comm *comm, int64_t n_max, bool use_shared,
                     clue_gradsum **out, clue_err *err);

/* The hybrid layout of several nodes: g made (clue_gradsum_new) on the
 * communicator of this rank's node, with a window; world: every rank of the
 * sums; across: rank r of every node (one per node, in node order). Every sum
 * then adds over the node through the window and each rank's slice or parts
 * over `across` with MPI_Allreduce (bytes per rank ≈ the buffer / ranks per
 * node). Returns 0 (and does nothing) when g has no window. Both communicators
 * are not owned and must outlive g. */
int clue_gradsum_set_nodes(clue_gradsum *g, const clue_comm *world, const clue_comm *across);

/* Bytes this rank has put into sums across nodes so far (0 on one node). */
double clue_gradsum_across_bytes(const clue_gradsum *g);

/* This rank's rank in the window's communicator (its node's, in the hybrid layout). */
int clue_gradsum_node_rank(const clue_gradsum *g);

/* Collective. Gives attached arenas their own gradient and weight buffers back
 * (if that fails, their g or w becomes NULL) and frees the window (NULL is
 * allowed on every rank). */
void clue_gradsum_free(clue_gradsum *g);

/* Collective. buf (n ≤ n_max values) ← Σ over ranks of buf, the same on every
 * rank. */
void clue_gradsum_sum(clue_gradsum *g, real *buf, int64_t n);

/* Collective. When the sums go through the window, moves the gradients of the
 * n_arenas arenas into this rank's slot, one after the other (their sizes must add
 * up to at most n_max), and their weights into one copy in the window that
 * every rank uses (rank 0's values: the ranks' weights must be the same): sums
 * of those buffers are then made in place, without the copy into the window,
 * and end with one more barrier; a sharded update writes each rank's parts of
 * the weights where every rank reads them. Otherwise does nothing.
 * clue_gradsum_free gives the arenas buffers of their own back (if that fails,
 * their g or w becomes NULL); until then they must outlive g. Until then, too,
 * a rank writes the weights only in its parts of a sharded update. */
int clue_gradsum_attach(clue_gradsum *g, clue_arena *const *arenas, int n_arenas,
                        clue_err *err);

/* Where rank q's buffer lies that sits in q's slot at the offset where `mine`
 * sits in this rank's (an attached arena's gradients: rank q's copy of them),
 * readable and writable here; NULL when mine is not in this rank's slot. */
real *clue_gradsum_peer(const clue_gradsum *g, const real *mine, int q);

/* Start of rank r's slice of an n-value sum (whole 16-value blocks): rank r
 * owns [clue_gradsum_slice(g, n, r), clue_gradsum_slice(g, n, r + 1)). */
int64_t clue_gradsum_slice(const clue_gradsum *g, int64_t n, int r);

/* Most tensors clue_gradsum_split_rows and _split_cols take together. */
#define CLUE_GRADSUM_MAX_SPLIT 128 /* 5 per modality (2 of rows, 3 of columns), K·K owned */

/* Declares tensor `tensor` of an attached arena split by rows over the ranks,
 * like the output layers of clue_work_split_outputs: rank q computes rows
 * [clue_gradsum_slice(g, rows, q), clue_gradsum_slice(g, rows, q + 1)) of its
 * gradient whole and leaves the other rows zero. Sharded updates (below) then
 * do not sum those rows and give each rank its own rows to update. Does
 * nothing unless the arena is attached (sums through the window). */
int clue_gradsum_split_rows(clue_gradsum *g, const clue_arena *a, int tensor, clue_err *err);

/* The same split by columns: rank q owns columns [clue_gradsum_slice(g, cols,
 * q), clue_gradsum_slice(g, cols, q + 1)) of every row (the per-(feature,
 * batch) tensors of split output layers). Their gradients are summed only in
 * the updates that ask for it (sum_cols below: a step that wrote other ranks'
 * columns); each rank updates its own columns. */
int clue_gradsum_split_cols(clue_gradsum *g, const clue_arena *a, int tensor, clue_err *err);

/* Declares values [first, first + n) of an attached arena's gradients computed
 * whole by rank `owner` alone, zero on the other ranks (the encoders that
 * clue_work_split_encoders gives to one rank): sharded updates do not sum them
 * and give them to the owner to update. Does nothing unless the arena is
 * attached; CLUE_EINVAL for a range outside the arena or over a split tensor. */
int clue_gradsum_own(clue_gradsum *g, const clue_arena *a, int64_t first, int64_t n, int owner,
                     clue_err *err);

/* Rank r's parts of the gradient buffer buf (n values) of an attached arena in
 * a sharded update: ranges [b[i], e[i]), a slice of every run of summed tensors,
 * of every tensor split by rows, and of every row of a tensor split by columns;
 * returns their number. b and e point into g, valid until the next call of
 * clue_gradsum_parts or _sum_parts. 0 (b and e untouched) when updates are not
 * sharded (one rank, no window, buf not attached): use clue_gradsum_sum. */
int clue_gradsum_parts(clue_gradsum *g, const real *buf, int64_t n, int r, const int64_t **b,
                       const int64_t **e);

/* Collective. Sharded update, first half: when buf (n values) lives in this
 * rank's slot (attached) and the sums go through the window, sums this rank's
 * parts of buf over the ranks, in place (the same bits as clue_gradsum_sum
 * there; split rows are left as they are, split columns too unless sum_cols;
 * this rank's parts of the other ranks' buffers, once read, are zero: the rest
 * of buf is zero where the other ranks have read it, that is everywhere else
 * once every rank has returned), gives the parts as clue_gradsum_parts does and
 * returns their number. Otherwise does nothing and returns 0 on every rank: use
 * clue_gradsum_sum. */
int clue_gradsum_sum_parts(clue_gradsum *g, real *buf, int64_t n, bool sum_cols,
                           const int64_t **b, const int64_t **e);

/* Collective. Sharded update, second half, after every rank updated its parts
 * of the attached weights from the parts of the gradients that
 * clue_gradsum_sum_parts summed: a barrier, after which every rank reads the
 * new weights (one copy for all). Does nothing when nothing is attached. */
void clue_gradsum_share(clue_gradsum *g);

/* Collective. Rank 0 receives every rank's parts (clue_gradsum_parts of the
 * attached buffer `like`, n values) of buf, a buffer laid out like `like`: e.g.
 * the optimiser state after sharded updates; the other ranks' buffers are
 * unchanged. Does nothing when updates are not sharded. */
void clue_gradsum_gather(clue_gradsum *g, const real *like, real *buf, int64_t n);

/* Values of buf (n) that sums add over the ranks: n less the split tensors in
 * it (with sum_cols, those split by rows only). */
int64_t clue_gradsum_summed(const clue_gradsum *g, const real *buf, int64_t n, bool sum_cols);

/* True when the sums go through the shared-memory window. */
bool clue_gradsum_shared(const clue_gradsum *g);

#endif
