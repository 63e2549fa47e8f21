/* activation.c — LeakyReLU and dropout. */
#include "clue/nn.h"
#include "clue/rng.h"

void nn_leaky_relu_forward(real *x, int64_t count) {
  for (int64_t i = 0; i < count; i++)
    x[i] = x[i] > 0 ? x[i] : (real)NN_LEAKY_SLOPE * x[i];
}

void nn_leaky_relu_backward(const real *y, real *dx, int64_t count) {
  for (int64_t i = 0; i < count; i++)
    if (!(y[i] > 0)) dx[i] *= (real)NN_LEAKY_SLOPE;
}

void nn_dropout_forward(real *x, int n, int c, double p, const nn_rng_ctx *rng,
                        uint64_t layer_id, real *mask) {
  int64_t count = (int64_t)n * c;
  if (p <= 0) {
    for (int64_t i = 0; i < count; i++) mask[i] = 1;
    return;
  }
  real keep = (real)(1.0 / (1.0 - p));
  /* The stream of a row: (seed, DROPOUT, pass, row key mixed with the layer). */
  for (int i = 0; i < n; i++) {
    uint64_t key = clue_mix64(rng->row_key[i] ^ (layer_id * 0x9e3779b97f4a7c15ULL));
    clue_rng r = clue_rng_stream(rng->seed, CLUE_RNG_DROPOUT, rng->pass, key);
    real *m = mask + (int64_t)i * c;
    real *row = x + (int64_t)i * c;
    for (int j = 0; j < c; j++) {
      m[j] = clue_rng_uniform(&r) >= p ? keep : 0;
      row[j] *= m[j];
    }
  }
}
