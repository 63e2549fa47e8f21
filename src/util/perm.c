/* perm.c — Feistel permutations with cycle walking. */
#include "clue/perm.h"

#include "clue/rng.h"

clue_perm clue_perm_make(uint64_t n, uint64_t seed, uint32_t purpose, uint64_t step) {
  clue_perm p = {.n = n, .half_bits = 1};
  while (p.half_bits < 32 && ((uint64_t)1 << (2 * p.half_bits)) < n) p.half_bits++;
  clue_rng r = clue_rng_stream(seed, purpose, step, 0);
  for (int i = 0; i < CLUE_PERM_ROUNDS; i++) p.key[i] = clue_rng_u64(&r);
  return p;
}

static uint64_t round_fn(uint64_t key, uint64_t half, uint64_t mask) {
  return clue_mix64(key ^ (half * 0x9e3779b97f4a7c15ULL)) & mask;
}

/* One pass of the network over the whole 2^(2h) domain. */
static uint64_t encrypt(const clue_perm *p, uint64_t x) {
  int h = p->half_bits;
  uint64_t mask = ((uint64_t)1 << h) - 1;
  uint64_t l = x >> h, r = x & mask;
  for (int i = 0; i < CLUE_PERM_ROUNDS; i++) {
    uint64_t t = l ^ round_fn(p->key[i], r, mask);
    l = r;
    r = t;
  }
  return (l << h) | r;
}

static uint64_t decrypt(const clue_perm *p, uint64_t y) {
  int h = p->half_bits;
  uint64_t mask = ((uint64_t)1 << h) - 1;
  uint64_t l = y >> h, r = y & mask;
  for (int i = CLUE_PERM_ROUNDS - 1; i >= 0; i--) {
    uint64_t t = r ^ round_fn(p->key[i], l, mask);
    r = l;
    l = t;
  }
  return (l << h) | r;
}

/* Cycle walking: the domain is < 4n, so a walk takes under four passes on
 * average; every walk ends because x lies on a cycle through [0, n). */
uint64_t clue_perm_forward(const clue_perm *p, uint64_t x) {
  if (p->n <= 1) return x;
  do x = encrypt(p, x);
  while (x >= p->n);
  return x;
}

uint64_t clue_perm_inverse(const clue_perm *p, uint64_t y) {
  if (p->n <= 1) return y;
  do y = decrypt(p, y);
  while (y >= p->n);
  return y;
}
