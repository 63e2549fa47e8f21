/* rng.h — counter-based random numbers.
 *
 * A stream is keyed by (seed, purpose, step, row): the numbers a row gets for a
 * purpose at a step do not depend on which rank handles the row or on how many
 * ranks there are. Streams are cheap to create (no state beyond two words). */
#ifndef CLUE_RNG_H
#define CLUE_RNG_H

#include <stdbool.h>
#include <stdint.h>

/* Purposes: one per independent use of randomness. */
enum {
  CLUE_RNG_PERMUTE = 1,   /* row order of an epoch */
  CLUE_RNG_FILLER = 2,    /* filler cells for missing modalities */
  CLUE_RNG_DROPOUT = 3,   /* dropout masks */
  CLUE_RNG_NOISE = 4,     /* reparameterisation noise */
  CLUE_RNG_DISC_NOISE = 5, /* discriminator input noise during burn-in */
  CLUE_RNG_INIT = 6,      /* parameter initialisation */
  CLUE_RNG_SPLIT = 7,     /* validation split */
  CLUE_RNG_SVD = 8,       /* randomized SVD test matrices */
  CLUE_RNG_SIMULATE = 9,  /* clue simulate */
  CLUE_RNG_TEST = 10,     /* tests */
  CLUE_RNG_PERMUTE_PAIRED = 11,   /* order of the paired cells (train.paired_fraction) */
  CLUE_RNG_PERMUTE_UNPAIRED = 12, /* order of the other cells (train.paired_fraction) */
  CLUE_RNG_PSEUDO = 13,   /* whether a cell takes its pseudo-partner (train.pseudo) */
  CLUE_RNG_UMAP = 14,     /* clue umap: initial noise, edge and negative samples */
  CLUE_RNG_REPORT = 15    /* clue report: the cells drawn for a map, drawing order */
};

typedef struct clue_rng {
  uint64_t key;
  uint64_t counter;
} clue_rng;

/* The stream for (seed, purpose, step, row). */
clue_rng clue_rng_stream(uint64_t seed, uint32_t purpose, uint64_t step, uint64_t row);

/* Next 64 random bits. */
uint64_t clue_rng_u64(clue_rng *r);

/* Uniform in [0, 1) with 53 random bits. */
double clue_rng_uniform(clue_rng *r);

/* Uniform integer in [0, n), unbiased; n > 0. */
uint64_t clue_rng_below(clue_rng *r, uint64_t n);

/* Standard normal (Box–Muller; uses two uniforms per value). */
double clue_rng_normal(clue_rng *r);

/* Gamma(shape, 1) (Marsaglia–Tsang; shape > 0). */
double clue_rng_gamma(clue_rng *r, double shape);

/* Poisson(mean) (inversion for small means, PTRS transformed rejection for large). */
int64_t clue_rng_poisson(clue_rng *r, double mean);

/* The 64-bit finaliser of SplitMix64: a bijective mixing of x. */
uint64_t clue_mix64(uint64_t x);

/* A keyed draw of about `keep` of `total` items: true for item c (a global
 * index) when total ≤ keep, else with probability keep / total from a hash of
 * (seed, salt, c) alone — the same answer on any rank and any number of ranks. */
bool clue_keyed_draw(uint64_t seed, uint64_t salt, int64_t c, int64_t total, int64_t keep);

#endif
