/* perm.h — keyed pseudo-random permutations of [0, n) that are computed, not
 * stored: position → element and back in O(1) memory.
 *
 * A balanced Feistel network over the smallest even-bit domain 2^(2h) ≥ n, with
 * cycle walking to stay inside [0, n). The same (n, seed, purpose, step) gives
 * the same permutation on every rank and for every number of ranks, which is how
 * the training plan draws its split and epoch orders without per-cell arrays. */
#ifndef CLUE_PERM_H
#define CLUE_PERM_H

#include <stdint.h>

#define CLUE_PERM_ROUNDS 6

typedef struct clue_perm {
  uint64_t n;                      /* size of the permuted range */
  int half_bits;                   /* h: each Feistel half holds h bits */
  uint64_t key[CLUE_PERM_ROUNDS];  /* one key per round */
} clue_perm;

/* The permutation of [0, n) keyed by (seed, purpose, step); n may be 0 or 1. */
clue_perm clue_perm_make(uint64_t n, uint64_t seed, uint32_t purpose, uint64_t step);

/* Image of x (x < n): the element at position x. */
uint64_t clue_perm_forward(const clue_perm *p, uint64_t x);

/* Inverse: clue_perm_inverse(p, clue_perm_forward(p, x)) == x for x < n. */
uint64_t clue_perm_inverse(const clue_perm *p, uint64_t y);

#endif
