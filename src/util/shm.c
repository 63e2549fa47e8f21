/* shm.c — per-rank slots of a node-shared MPI-3 window (see shm.h). */
#include "clue/shm.h"

#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

/* Each rank's part of the window: a 64-byte line with its arrival count, then
 * its slot. */
#define COUNT_BYTES 64

struct clue_shm {
  MPI_Comm node; /* the communicator's ranks, in the same order */
  MPI_Win win;
  int size, rank;
  void **slot;   /* (size) */
  _Atomic uint64_t **count; /* (size) each rank's arrivals so far */
  uint64_t arrived;         /* this rank's arrivals so far */
  int64_t bytes;
};

/* Rounded up to whole 64-byte lines, so that slots do not share a line. */
static int64_t slot_bytes(int64_t bytes) { return (bytes > 0 ? bytes + 63 : 64) / 64 * 64; }

int clue_shm_new(const clue_comm *comm, int64_t bytes, clue_shm **out, clue_err *err) {
  *out = NULL;
  if (comm->size == 1) return CLUE_OK;
  clue_shm *s = calloc(1, sizeof *s);
  void **slot = calloc((size_t)comm->size, sizeof *slot);
  _Atomic uint64_t **count = calloc((size_t)comm->size, sizeof *count);
  int fail = !s || !slot || !count;
  MPI_Allreduce(MPI_IN_PLACE, &fail, 1, MPI_INT, MPI_MAX, comm->comm);
  if (fail) {
    free(s);
    free(slot);
    free(count);
    return clue_fail(err, CLUE_ENOMEM, "out of memory for a shared window");
  }
  MPI_Comm node;
  clue_comm_node(comm, &node);
  int node_size = 0;
  MPI_Comm_size(node, &node_size);
  int ok = node_size == comm->size; /* the same answer on every rank */
  void *mine = NULL;
  int64_t each = slot_bytes(bytes);
  if (ok) {
    MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN);
    ok = MPI_Win_allocate_shared((MPI_Aint)(COUNT_BYTES + each), 1, MPI_INFO_NULL, node,
                                 &mine, &s->win) == MPI_SUCCESS;
    int all = ok;
    MPI_Allreduce(MPI_IN_PLACE, &all, 1, MPI_INT, MPI_MIN, node);
    if (!all && ok) MPI_Win_free(&s->win);
    ok = all;
  }
  if (!ok) {
    MPI_Comm_free(&node);
    free(slot);
    free(count);
    free(s);
    return CLUE_OK;
  }
  for (int q = 0; q < comm->size; q++) {
    MPI_Aint size;
    int disp;
    char *base;
    MPI_Win_shared_query(s->win, q, &size, &disp, &base);
    count[q] = (_Atomic uint64_t *)base;
    slot[q] = base + COUNT_BYTES;
  }
  atomic_init(count[comm->rank], 0);
  MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win);
  MPI_Win_sync(s->win);
  MPI_Barrier(node); /* every count is 0 before anyone arrives */
  MPI_Win_sync(s->win);
  s->node = node;
  s->size = comm->size;
  s->rank = comm->rank;
  s->slot = slot;
  s->count = count;
  s->bytes = each;
  *out = s;
  return CLUE_OK;
}

void clue_shm_free(clue_shm *s) {
  if (!s) return;
  MPI_Win_unlock_all(s->win);
  MPI_Win_free(&s->win);
  MPI_Comm_free(&s->node);
  free(s->slot);
  free(s->count);
  free(s);
}

void *clue_shm_slot(const clue_shm *s, int r) { return s->slot[r]; }

int64_t clue_shm_bytes(const clue_shm *s) { return s->bytes; }

void clue_shm_sync(const clue_shm *s) {
  MPI_Win_sync(s->win);
  MPI_Barrier(s->node);
  MPI_Win_sync(s->win);
}

uint64_t clue_shm_arrive(clue_shm *s) {
  s->arrived++;
  atomic_store_explicit(s->count[s->rank], s->arrived, memory_order_release);
  return s->arrived;
}

/* Spins a while, then yields the core (ranks may outnumber the cores). */
void clue_shm_wait(const clue_shm *s, uint64_t n) {
  for (int q = 0; q < s->size; q++) {
    for (int spins = 0; atomic_load_explicit(s->count[q], memory_order_acquire) < n; spins++)
      if (spins >= 1000) sched_yield();
  }
}
