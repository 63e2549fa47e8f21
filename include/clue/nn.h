/* nn.h — the layers of the network, each a forward/backward pair of plain loops
 * over row-major arrays, with parameters living in a clue_arena.
 *
 * Conventions: n = rows on this rank; shapes are given as (rows × cols).
 * Backward functions ACCUMULATE into input gradients (dx += ...) and into the
 * arena's parameter gradients, so one buffer can collect several consumers.
 * BatchNorm statistics are taken over the global minibatch: sums are reduced
 * over the communicator, so every rank must call BatchNorm forward/backward
 * (with n = 0 when it has no rows) in the same order. */
#ifndef CLUE_NN_H
#define CLUE_NN_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/arena.h"
#include "clue/comm.h"
#include "clue/error.h"
#include "clue/real.h"

#define NN_MAX_DEPTH 8
#define NN_LEAKY_SLOPE 0.2
#define NN_BN_EPS 1e-5
#define NN_BN_MOMENTUM 0.1
#define NN_STD_EPS 1e-7

/* ---- Linear: y = x·Wᵀ + b ---- */

typedef struct nn_linear {
  int w;       /* arena index of W (out × in) */
  int b;       /* arena index of b (out) */
  int in, out;
} nn_linear;

/* Registers W and b as "<name>.weight" and "<name>.bias". */
int nn_linear_add(clue_arena *a, const char *name, int in, int out, nn_linear *l,
                  clue_err *err);

/* PyTorch's default initialisation: W and b uniform in ±1/sqrt(in), drawn from
 * the stream (seed, CLUE_RNG_INIT, tensor index). */
void nn_linear_init(clue_arena *a, const nn_linear *l, uint64_t seed);

/* y (n × out) = x (n × in) · Wᵀ + b. */
void nn_linear_forward(const clue_arena *a, const nn_linear *l, const real *x, int n,
                       real *y);

/* dW += dyᵀ·x, db += Σ rows dy, and dx (n × in, may be NULL) += dy·W. */
void nn_linear_backward(clue_arena *a, const nn_linear *l, const real *x,
                        const real *dy, int n, real *dx);

/* Outputs [o0, o1) only (rows o0 .. o1−1 of W and b): y (n × (o1 − o0)) =
 * x·W[o0:o1]ᵀ + b[o0:o1]. nn_linear_forward is the case [0, out). */
void nn_linear_forward_rows(const clue_arena *a, const nn_linear *l, int o0, int o1,
                            const real *x, int n, real *y);

/* Outputs [o0, o1) only, dy (n × (o1 − o0)): rows o0 .. o1−1 of dW += dyᵀ·x and of
 * db += Σ rows dy (other rows untouched), and dx (n × in, may be NULL) +=
 * dy·W[o0:o1] (the part of the input gradient that flows through those outputs). */
void nn_linear_backward_rows(clue_arena *a, const nn_linear *l, int o0, int o1,
                             const real *x, const real *dy, int n, real *dx);

/* db[o0:o1] += Σ rows dy (dy: n × (o1 − o0)), the bias part of
 * nn_linear_backward_rows alone. */
void nn_linear_backward_rows_b(clue_arena *a, const nn_linear *l, int o0, int o1,
                               const real *dy, int n);

/* The weight-gradient part alone, into any gradient buffer g laid out like a's
 * (this rank's or another rank's copy of the arena's gradients): rows o0 .. o1−1
 * of l's dW in g += dyᵀ·x, dy (n rows of o1 − o0 values, row stride ldy). The
 * same call gives the same bits whichever process makes it. */
void nn_linear_backward_rows_w(const clue_arena *a, const nn_linear *l, real *g, int o0,
                               int o1, const real *x, const real *dy, int ldy, int n);

/* The input-gradient part of nn_linear_backward_rows alone: dx (n × in) +=
 * dy·W[o0:o1] (dy: n × (o1 − o0)). */
void nn_linear_backward_rows_dx(const clue_arena *a, const nn_linear *l, int o0, int o1,
                                const real *dy, int n, real *dx);

/* ---- element-wise ---- */

/* y = x > 0 ? x : slope·x, in place. */
void nn_leaky_relu_forward(real *x, int64_t count);

/* dx *= (y > 0 ? 1 : slope), in place, given the activation's output y. */
void nn_leaky_relu_backward(const real *y, real *dx, int64_t count);

/* Numerically safe softplus log(1 + e^x) and logistic sigmoid. */
static inline real nn_softplus(real x) {
  return x > 0 ? x + r_log1p(r_exp(-x)) : r_log1p(r_exp(x));
}
static inline real nn_sigmoid(real x) {
  if (x >= 0) return (real)1 / ((real)1 + r_exp(-x));
  real e = r_exp(x);
  return e / ((real)1 + e);
}
/* log σ(x) = −softplus(−x). */
static inline real nn_log_sigmoid(real x) { return -nn_softplus(-x); }

/* ---- BatchNorm over rows (training: batch statistics of the global batch) ---- */

typedef struct nn_batchnorm {
  int gamma, beta;           /* arena indices (c) */
  int run_mean, run_var;     /* indices in the buffer arena (c) */
  int c;
} nn_batchnorm;

/* Per-application state kept from forward for backward. */
typedef struct nn_bn_cache {
  real *xhat;   /* (cap × c) normalised input */
  real *invstd; /* (c) */
  double *sums; /* (2c) scratch for the reduced sums */
} nn_bn_cache;

/* Registers gamma (=1), beta (=0) in params and running mean (=0) / var (=1) in bufs. */
int nn_batchnorm_add(clue_arena *params, clue_arena *bufs, const char *name, int c,
                     nn_batchnorm *bn, clue_err *err);

/* Sets gamma = 1, beta = 0, running mean 0, running var 1. */
void nn_batchnorm_init(clue_arena *params, clue_arena *bufs, const nn_batchnorm *bn);

/* Collective. Training mode: statistics over the n_global rows of all ranks;
 * updates the running statistics (momentum 0.1, unbiased variance). x → y may be
 * in place. n_global must be ≥ 1. */
void nn_batchnorm_forward_train(const clue_arena *params, clue_arena *bufs,
                                const nn_batchnorm *bn, const real *x, int n,
                                int64_t n_global, real *y, nn_bn_cache *cache,
                                const clue_comm *comm);

/* Evaluation mode: running statistics. Not collective. x → y may be in place. */
void nn_batchnorm_forward_eval(const clue_arena *params, const clue_arena *bufs,
                               const nn_batchnorm *bn, const real *x, int n, real *y);

/* Collective. dx += BN backward of dy; gamma/beta gradients of the local rows. */
void nn_batchnorm_backward(clue_arena *params, const nn_batchnorm *bn,
                           nn_bn_cache *cache, const real *dy, int n,
                           int64_t n_global, real *dx, const clue_comm *comm);

/* ---- Dropout ---- */

/* Random streams of a pass: every (pass, layer, row key) has its own numbers,
 * so masks do not depend on which rank holds the row. */
typedef struct nn_rng_ctx {
  uint64_t seed;
  uint64_t pass;          /* unique per forward pass (step × phase) */
  const uint64_t *row_key; /* (n) global identity of each local row */
} nn_rng_ctx;

/* x *= mask with mask = (u ≥ p) / (1 − p); writes the mask (n × c). layer_id
 * distinguishes layers within a pass. p = 0 writes an all-ones mask. */
void nn_dropout_forward(real *x, int n, int c, double p, const nn_rng_ctx *rng,
                        uint64_t layer_id, real *mask);

/* ---- MLP stacks: [Linear → LeakyReLU → (BatchNorm) → Dropout] × depth ---- */

typedef struct nn_mlp {
  int depth, in, width;
  int n_onehot;         /* one-hot covariate columns (0 = none) */
  bool onehot_every;    /* true: append one-hot to every layer's output (decoder);
                           false: only to the input (discriminator) */
  bool batchnorm;
  double dropout;
  uint64_t id;          /* distinguishes this stack's dropout streams */
  nn_linear lin[NN_MAX_DEPTH];
  nn_batchnorm bn[NN_MAX_DEPTH];
} nn_mlp;

/* Registers the stack's parameters as "<name>.l<i>.*". */
int nn_mlp_add(clue_arena *params, clue_arena *bufs, const char *name, int in,
               int width, int depth, int n_onehot, bool onehot_every, bool batchnorm,
               double dropout, uint64_t id, nn_mlp *m, clue_err *err);

/* Initialises every layer (PyTorch defaults). */
void nn_mlp_init(clue_arena *params, clue_arena *bufs, const nn_mlp *m, uint64_t seed);

/* Width of the stack's output (width, plus n_onehot when onehot_every; the input
 * width with its one-hot when depth is 0). */
int nn_mlp_out_width(const nn_mlp *m);

/* Activations of one application of a stack, for up to cap rows. */
typedef struct nn_mlp_cache {
  int cap;
  real *x[NN_MAX_DEPTH + 1]; /* x[l]: input of layer l (cap × in_l); x[depth] = output */
  real *act[NN_MAX_DEPTH];   /* (cap × width) LeakyReLU output (before BN) */
  nn_bn_cache bn[NN_MAX_DEPTH];
  real *mask[NN_MAX_DEPTH];  /* (cap × width) dropout mask */
  real *dx;                  /* (cap × max width) scratch for backward */
  real *dy;                  /* (cap × max width) scratch for backward */
} nn_mlp_cache;

int nn_mlp_cache_new(const nn_mlp *m, int cap, nn_mlp_cache *c, clue_err *err);
void nn_mlp_cache_free(nn_mlp_cache *c);

/* Mode of a forward pass. */
typedef struct nn_mode {
  bool train;              /* batch statistics + dropout, else running stats, no dropout */
  const clue_comm *comm;   /* for BatchNorm statistics (train mode) */
  nn_rng_ctx rng;          /* dropout streams (train mode) */
} nn_mode;

/* Collective in train mode with BatchNorm. x (n × in) and the batch codes
 * (n; ignored without one-hot) → c->x[depth] (n × out_width). Returns that pointer. */
real *nn_mlp_forward(const clue_arena *params, clue_arena *bufs, const nn_mlp *m,
                     const real *x, const int32_t *batch, int n, int64_t n_global,
                     const nn_mode *mode, nn_mlp_cache *c);

/* Collective (as forward). Given dout (n × out_width), accumulates parameter
 * gradients and, when dx is not NULL, dx (n × in) += gradient of the input. */
void nn_mlp_backward(clue_arena *params, const nn_mlp *m, nn_mlp_cache *c,
                     const real *dout, int n, int64_t n_global, real *dx,
                     const nn_mode *mode);

#endif
