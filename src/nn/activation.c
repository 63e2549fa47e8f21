/* activation.c — LeakyReLU and dropout. */
#include "clue/fastmath.h"
#include "clue/nn.h"
#include "clue/rng.h"

/* Branch-free selects (rf_select), which GCC vectorises: a plain ?: becomes a
 * branch here, mispredicted on half of the entries. */
void nn_leaky_relu_forward(real *x, int64_t count) {
  const real slope = (real)NN_LEAKY_SLOPE;
  for (int64_t i = 0; i < count; i++) x[i] = rf_select(x[i] > 0, x[i], slope * x[i]);
}

void nn_leaky_relu_backward(const real *y, real *dx, int64_t count) {
  const real slope = (real)NN_LEAKY_SLOPE;
  for (int64_t i = 0; i < count; i++) dx[i] = rf_select(y[i] > 0, dx[i], slope * dx[i]);
}

/* The numbers of a clue_rng stream, inlined: value i is the SplitMix64
 * finaliser of key + i·golden (rng.c). clue_rng_uniform(r) ≥ p is decided on the
 * integers: (u >> 11)·2^-53 ≥ p  ⇔  (u >> 11) ≥ ⌈p·2^53⌉ (p·2^53 is exact), so
 * the masks are those of clue_rng_uniform, bit for bit. */
static inline uint64_t dropout_mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

void nn_dropout_forward(real *x, int n, int c, double p, const nn_rng_ctx *rng,
                        uint64_t layer_id, real *mask) {
  int64_t count = (int64_t)n * c;
  if (p <= 0) {
    for (int64_t i = 0; i < count; i++) mask[i] = 1;
    return;
  }
  real keep = (real)(1.0 / (1.0 - p));
  double scaled = ceil(p * 9007199254740992.0); /* ⌈p·2^53⌉ */
  uint64_t threshold = scaled >= 9007199254740992.0 ? UINT64_MAX : (uint64_t)scaled;
  const uint64_t golden = 0x9e3779b97f4a7c15ULL;
  /* The stream of a row: (seed, DROPOUT, pass, row key mixed with the layer). */
  for (int i = 0; i < n; i++) {
    uint64_t key = clue_mix64(rng->row_key[i] ^ (layer_id * 0x9e3779b97f4a7c15ULL));
    clue_rng r = clue_rng_stream(rng->seed, CLUE_RNG_DROPOUT, rng->pass, key);
    real *m = mask + (int64_t)i * c;
    real *row = x + (int64_t)i * c;
    for (int j = 0; j < c; j++) {
      uint64_t u = dropout_mix(r.key + (r.counter + 1 + (uint64_t)j) * golden);
      m[j] = (u >> 11) >= threshold ? keep : 0;
    }
    for (int j = 0; j < c; j++) row[j] *= m[j];
  }
}
