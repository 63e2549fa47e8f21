/* arena_finite.c — finding NaN, infinities and overflow-prone values in
 * arena-shaped buffers: the trainer's check of the reduced gradients before each
 * optimiser step and the checkpoint's refusal to store a non-finite value. */
#include <float.h>
#include <string.h>

#include "clue/arena.h"

/* True when every |x[i]| ≤ the value whose bit pattern is lim (NaN fails).
 * Compares the bits with the sign cleared: for IEEE numbers that order is the
 * numeric order, and NaNs lie above infinity. Branch-free, so it vectorises:
 * one pass over the gradients costs little next to the optimiser step. */
static int all_within(const real *x, int64_t n, double max_abs) {
  int bad = 0;
#ifdef CLUE_REAL_DOUBLE
  double m = max_abs < DBL_MAX ? max_abs : DBL_MAX;
  uint64_t lim;
  memcpy(&lim, &m, sizeof lim);
  for (int64_t i = 0; i < n; i++) {
    uint64_t b;
    memcpy(&b, &x[i], sizeof b);
    bad |= (b & 0x7fffffffffffffffull) > lim;
  }
#else
  float m = max_abs < FLT_MAX ? (float)max_abs : FLT_MAX;
  uint32_t lim;
  memcpy(&lim, &m, sizeof lim);
  for (int64_t i = 0; i < n; i++) {
    uint32_t b;
    memcpy(&b, &x[i], sizeof b);
    bad |= (b & 0x7fffffffu) > lim;
  }
#endif
  return !bad;
}

int clue_arena_find_nonfinite(const clue_arena *a, const real *vals, double max_abs,
                              int64_t *at) {
  return clue_arena_find_nonfinite_range(a, vals, max_abs, 0, a->n, at);
}

int clue_arena_find_nonfinite_range(const clue_arena *a, const real *vals, double max_abs,
                                    int64_t b, int64_t e, int64_t *at) {
  if (all_within(vals + b, e - b, max_abs)) return -1;
  for (int t = 0; t < a->n_tensors; t++) {
    int64_t t0 = a->t[t].offset, t1 = t0 + clue_arena_size(a, t);
    int64_t lo = t0 > b ? t0 : b, hi = t1 < e ? t1 : e;
    if (hi <= lo || all_within(vals + lo, hi - lo, max_abs)) continue;
    for (int64_t i = lo; i < hi; i++)
      if (!all_within(vals + i, 1, max_abs)) {
        if (at) *at = i - t0;
        return t;
      }
  }
  return -1; /* a value outside every tensor cannot happen */
}
