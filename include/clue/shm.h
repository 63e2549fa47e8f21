/* shm.h — one block of memory per rank in a node-shared MPI-3 window, that
 * every rank of the communicator reads and writes directly: exchanges of large
 * activations between the ranks of one node at memory speed, with a barrier
 * between writing and reading (clue_shm_sync).
 *
 * Made only when every rank of the communicator runs on one node; otherwise
 * the caller does without (clue_shm_new gives NULL, which is not an error). */
#ifndef CLUE_SHM_H
#define CLUE_SHM_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/error.h"

typedef struct clue_shm clue_shm;

/* Collective. A window of `bytes` per rank (64-byte aligned slots), or *out =
 * NULL with CLUE_OK when there is one rank, the ranks span several nodes or the
 * window cannot be made. CLUE_ENOMEM (on every rank) only when this process
 * cannot allocate its bookkeeping. */
int clue_shm_new(const clue_comm *comm, int64_t bytes, clue_shm **out, clue_err *err);

/* Collective. Frees the window (NULL is allowed on every rank). */
void clue_shm_free(clue_shm *s);

/* Rank r's slot: `bytes` bytes that every rank of the node may read and write. */
void *clue_shm_slot(const clue_shm *s, int r);

/* Bytes per slot. */
int64_t clue_shm_bytes(const clue_shm *s);

/* Collective. Everything written to any slot before the call is visible to
 * every rank after it (memory barrier, barrier, memory barrier). */
void clue_shm_sync(const clue_shm *s);

/* A barrier in two halves, so that a rank can work between saying it is done
 * and waiting for the others. Every rank makes the same sequence of arrivals;
 * arrival n of a rank says: what it wrote to any slot before is written, and
 * what it was to read of the other ranks' slots before is read. Returns n
 * (1, 2, ...). Independent of clue_shm_sync. */
uint64_t clue_shm_arrive(clue_shm *s);

/* Returns once every rank has made arrival n; what they wrote before it is then
 * visible here. Spins, then yields the core while it waits. */
void clue_shm_wait(const clue_shm *s, uint64_t n);

#endif
