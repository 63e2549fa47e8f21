/* rng.c — counter-based streams: value i of a stream is mix(key + i·golden). */
#include "clue/rng.h"

#include <math.h>

#define GOLDEN 0x9e3779b97f4a7c15ULL

bool clue_keyed_draw(uint64_t seed, uint64_t salt, int64_t c, int64_t total, int64_t keep) {
  if (total <= keep) return true;
  uint64_t h = clue_mix64(clue_mix64(seed ^ clue_mix64(salt)) ^ (uint64_t)c);
  return (double)(h >> 11) * 0x1.0p-53 < (double)keep / (double)total;
}

uint64_t clue_mix64(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

clue_rng clue_rng_stream(uint64_t seed, uint32_t purpose, uint64_t step, uint64_t row) {
  uint64_t k = clue_mix64(seed + GOLDEN);
  k = clue_mix64(k ^ ((uint64_t)purpose * 0xd1b54a32d192ed03ULL));
  k = clue_mix64(k ^ (step + 0x632be59bd9b4e019ULL));
  k = clue_mix64(k ^ (row * 0x8cb92ba72f3d8dd7ULL + 0x1d8e4e27c47d124fULL));
  clue_rng r = {.key = k, .counter = 0};
  return r;
}

uint64_t clue_rng_u64(clue_rng *r) {
  r->counter++;
  return clue_mix64(r->key + r->counter * GOLDEN);
}

double clue_rng_uniform(clue_rng *r) {
  return (double)(clue_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t clue_rng_below(clue_rng *r, uint64_t n) {
  /* Rejection on the top of the range keeps the result unbiased. */
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  uint64_t x;
  do {
    x = clue_rng_u64(r);
  } while (x >= limit);
  return x % n;
}

double clue_rng_normal(clue_rng *r) {
  double u1 = clue_rng_uniform(r);
  double u2 = clue_rng_uniform(r);
  if (u1 < 1e-300) u1 = 1e-300;
  return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

double clue_rng_gamma(clue_rng *r, double shape) {
  if (shape < 1.0) {
    /* Boost: Gamma(a) = Gamma(a + 1) · U^(1/a). */
    double u = clue_rng_uniform(r);
    if (u < 1e-300) u = 1e-300;
    return clue_rng_gamma(r, shape + 1.0) * pow(u, 1.0 / shape);
  }
  double d = shape - 1.0 / 3.0;
  double c = 1.0 / sqrt(9.0 * d);
  for (;;) {
    double x = clue_rng_normal(r);
    double v = 1.0 + c * x;
    if (v <= 0) continue;
    v = v * v * v;
    double u = clue_rng_uniform(r);
    if (u < 1.0 - 0.0331 * x * x * x * x) return d * v;
    if (log(u) < 0.5 * x * x + d * (1.0 - v + log(v))) return d * v;
  }
}

static int64_t poisson_small(clue_rng *r, double mean) {
  double limit = exp(-mean), p = 1.0;
  int64_t k = 0;
  for (;;) {
    p *= clue_rng_uniform(r);
    if (p <= limit) return k;
    k++;
  }
}

/* Hörmann's PTRS (transformed rejection with squeeze), for mean >= 10. */
static int64_t poisson_ptrs(clue_rng *r, double mean) {
  double slam = sqrt(mean), loglam = log(mean);
  double b = 0.931 + 2.53 * slam;
  double a = -0.059 + 0.02483 * b;
  double invalpha = 1.1239 + 1.1328 / (b - 3.4);
  double vr = 0.9277 - 3.6224 / (b - 2);
  for (;;) {
    double u = clue_rng_uniform(r) - 0.5;
    double v = clue_rng_uniform(r);
    double us = 0.5 - fabs(u);
    double k = floor((2 * a / us + b) * u + mean + 0.43);
    if (us >= 0.07 && v <= vr) return (int64_t)k;
    if (k < 0 || (us < 0.013 && v > us)) continue;
    if (log(v) + log(invalpha) - log(a / (us * us) + b) <=
        -mean + k * loglam - lgamma(k + 1))
      return (int64_t)k;
  }
}

int64_t clue_rng_poisson(clue_rng *r, double mean) {
  if (!(mean > 0)) return 0;
  return mean < 10 ? poisson_small(r, mean) : poisson_ptrs(r, mean);
}
