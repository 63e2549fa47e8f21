/* comm.h — the MPI communicator every collective function takes, and the few
 * collectives the rest of the code needs, with MPI failures turned into clue_err.
 *
 * Rule: a function documented as "collective" must be called by every rank of
 * the communicator, in the same order, even by ranks with nothing to contribute. */
#ifndef CLUE_COMM_H
#define CLUE_COMM_H

#include <mpi.h>
#include <stddef.h>
#include <stdint.h>

#include "clue/error.h"

typedef struct clue_comm {
  MPI_Comm comm; /* not owned: MPI_COMM_WORLD, MPI_COMM_SELF, ... */
  int rank;
  int size;
} clue_comm;

/* A clue_comm view of MPI_COMM_WORLD (MPI must be initialised). */
clue_comm clue_comm_world(void);

/* A clue_comm view of MPI_COMM_SELF: one rank, for single-process work. */
clue_comm clue_comm_self(void);

/* Collective. *node (free with MPI_Comm_free) ← the ranks of c on this rank's
 * node, in c's order. With CLUE_RANKS_PER_NODE=n in the environment (a test and
 * benchmark aid), ranks r of c with the same r / n form a node of their own (within
 * a real node): such emulated nodes share no memory window and talk only through
 * MPI, as separate machines would. */
void clue_comm_node(const clue_comm *c, MPI_Comm *node);

/* n of CLUE_RANKS_PER_NODE=n when set to a positive integer, else 0. */
int clue_ranks_per_node_emulated(void);

/* Collective. Combines every rank's status: returns CLUE_OK when all ranks passed
 * CLUE_OK; otherwise every rank returns the code of the lowest failing rank and
 * receives that rank's message in err (prefixed with "rank N: " when size > 1). */
int clue_comm_agree(const clue_comm *c, int status, clue_err *err);

/* Collective. Like clue_comm_agree, but among the failing ranks the one with the
 * smallest key wins (ties: the lowest rank), and its message reaches every rank
 * as it is, without a rank prefix: for an error about one item of data spread
 * over the ranks (key = the item's position), reported the same whatever the
 * number of ranks. */
int clue_comm_agree_first(const clue_comm *c, int64_t key, int status, clue_err *err);

/* Collective. Personalised all-to-all of bytes: this rank sends send_bytes[r]
 * bytes at send[r] to rank r (send[r] may be NULL when send_bytes[r] is 0);
 * *recv (malloc'd, free with free(); never NULL on success) receives what every
 * rank sent here, in rank order, recv_bytes[r] (c->size entries, written) from
 * rank r. Counts may exceed 2^31. CLUE_ENOMEM on every rank when a rank cannot
 * allocate its receive buffer. */
int clue_comm_exchange(const clue_comm *c, char *const *send, const int64_t *send_bytes,
                       void **recv, int64_t *recv_bytes, clue_err *err);

/* Collective in-place sums over ranks (n may be 0; every rank passes the same n). */
void clue_comm_sum_double(const clue_comm *c, double *buf, size_t n);
void clue_comm_sum_float(const clue_comm *c, float *buf, size_t n);
void clue_comm_sum_int64(const clue_comm *c, int64_t *buf, size_t n);

/* Collective in-place maximum / minimum over ranks. */
void clue_comm_max_int64(const clue_comm *c, int64_t *buf, size_t n);
void clue_comm_min_int64(const clue_comm *c, int64_t *buf, size_t n);
void clue_comm_max_double(const clue_comm *c, double *buf, size_t n);

/* Collective. Broadcasts n bytes from root into buf on every rank. */
void clue_comm_bcast(const clue_comm *c, void *buf, size_t n, int root);

/* Collective. Broadcasts a heap string owned by root; on other ranks *s is
 * replaced by a new malloc'd copy (free with free()). Returns CLUE_ENOMEM on any
 * rank that could not allocate (agreed across ranks). */
int clue_comm_bcast_string(const clue_comm *c, char **s, int root, clue_err *err);

/* Collective barrier. */
void clue_comm_barrier(const clue_comm *c);

/* Splits [0, n) into c->size contiguous ranges, balanced by the weights w
 * (w may be NULL for equal weights; w has n entries, every rank passes the same
 * array). Writes begin[r], end[r] for r in [0, size). Not collective: every rank
 * computes the same answer from the same input. */
void clue_partition_weighted(int64_t n, const int64_t *w, int size, int64_t *begin,
                             int64_t *end);

/* The rank r with begin[r] <= x < begin[r + 1], for ascending range starts
 * begin[0..size] (ranks with empty ranges are skipped; x < begin[size]). */
int clue_range_owner(const int64_t *begin, int size, int64_t x);

#endif
