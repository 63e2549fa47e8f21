/* rowdist.h — moving rows between ranks into output order, so that each rank
 * writes one contiguous block of an output file. */
#ifndef CLUE_ROWDIST_H
#define CLUE_ROWDIST_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/error.h"

/* The block of [0, n_total) owned by `rank` in an equal split over `size` ranks. */
void clue_block_range(int64_t n_total, int size, int rank, int64_t *begin, int64_t *end);

/* The rank whose clue_block_range holds pos (0 <= pos < n_total). */
int clue_block_owner(int64_t pos, int64_t n_total, int size);

/* Collective. This rank holds n_local rows of w floats; row i belongs at global
 * position dest[i] (every position in [0, n_total) is held by exactly one rank).
 * On return *out (malloc'd) holds this rank's block (clue_block_range) in order:
 * (*out_n × w) values starting at global row *out_begin. */
int clue_rows_redistribute(const clue_comm *comm, const float *rows, const int64_t *dest,
                           int64_t n_local, int w, int64_t n_total, float **out,
                           int64_t *out_begin, int64_t *out_n, clue_err *err);

#endif
