/* mlp.c — stacks of [Linear → LeakyReLU → (BatchNorm) → Dropout] with optional
 * one-hot covariates appended to the input (and, for decoders, after every layer). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/nn.h"
#include "clue/prof.h"

int nn_mlp_add(clue_arena *params, clue_arena *bufs, const char *name, int in,
               int width, int depth, int n_onehot, bool onehot_every, bool batchnorm,
               double dropout, uint64_t id, nn_mlp *m, clue_err *err) {
  if (depth < 0 || depth > NN_MAX_DEPTH)
    return clue_fail(err, CLUE_EINVAL, "%s: depth %d outside [0, %d]", name, depth,
                     NN_MAX_DEPTH);
  memset(m, 0, sizeof *m);
  m->depth = depth;
  m->in = in;
  m->width = width;
  m->n_onehot = n_onehot;
  m->onehot_every = onehot_every;
  m->batchnorm = batchnorm;
  m->dropout = dropout;
  m->id = id;
  char buf[CLUE_TENSOR_NAME_MAX];
  for (int l = 0; l < depth; l++) {
    int in_l = (l == 0 ? in : width) + ((l == 0 || onehot_every) ? n_onehot : 0);
    snprintf(buf, sizeof buf, "%s.l%d", name, l);
    int rc = nn_linear_add(params, buf, in_l, width, &m->lin[l], err);
    if (rc) return rc;
    if (batchnorm) {
      snprintf(buf, sizeof buf, "%s.bn%d", name, l);
      rc = nn_batchnorm_add(params, bufs, buf, width, &m->bn[l], err);
      if (rc) return rc;
    }
  }
  return CLUE_OK;
}

void nn_mlp_init(clue_arena *params, clue_arena *bufs, const nn_mlp *m, uint64_t seed) {
  for (int l = 0; l < m->depth; l++) {
    nn_linear_init(params, &m->lin[l], seed);
    if (m->batchnorm) nn_batchnorm_init(params, bufs, &m->bn[l]);
  }
}

/* Width of the input of layer l (l == depth: the output). */
static int layer_in_width(const nn_mlp *m, int l) {
  if (l == 0) return m->in + m->n_onehot;
  return m->width + (m->onehot_every ? m->n_onehot : 0);
}

int nn_mlp_out_width(const nn_mlp *m) { return layer_in_width(m, m->depth); }

int nn_mlp_cache_new(const nn_mlp *m, int cap, nn_mlp_cache *c, clue_err *err) {
  memset(c, 0, sizeof *c);
  c->cap = cap;
  size_t rows = (size_t)(cap > 0 ? cap : 1);
  int maxw = layer_in_width(m, 0);
  for (int l = 0; l <= m->depth; l++) {
    int w = layer_in_width(m, l);
    if (w > maxw) maxw = w;
    if (!(c->x[l] = clue_calloc(rows * (size_t)w, sizeof(real), err))) goto fail;
  }
  if (m->width > maxw) maxw = m->width;
  for (int l = 0; l < m->depth; l++) {
    size_t n = rows * (size_t)m->width;
    if (!(c->act[l] = clue_calloc(n, sizeof(real), err))) goto fail;
    if (!(c->mask[l] = clue_calloc(n, sizeof(real), err))) goto fail;
    if (m->batchnorm) {
      if (!(c->bn[l].xhat = clue_calloc(n, sizeof(real), err))) goto fail;
      if (!(c->bn[l].invstd = clue_calloc((size_t)m->width, sizeof(real), err))) goto fail;
      if (!(c->bn[l].sums = clue_calloc(2 * (size_t)m->width, sizeof(double), err)))
        goto fail;
    }
  }
  if (!(c->dx = clue_calloc(rows * (size_t)maxw, sizeof(real), err))) goto fail;
  if (!(c->dy = clue_calloc(rows * (size_t)maxw, sizeof(real), err))) goto fail;
  return CLUE_OK;
fail:
  nn_mlp_cache_free(c);
  return CLUE_ENOMEM;
}

void nn_mlp_cache_free(nn_mlp_cache *c) {
  for (int l = 0; l <= NN_MAX_DEPTH; l++) free(c->x[l]);
  for (int l = 0; l < NN_MAX_DEPTH; l++) {
    free(c->act[l]);
    free(c->mask[l]);
    free(c->bn[l].xhat);
    free(c->bn[l].invstd);
    free(c->bn[l].sums);
  }
  free(c->dx);
  free(c->dy);
  memset(c, 0, sizeof *c);
}

/* Writes one-hot columns [col, col + n_onehot) of rows of a (n × w) array. */
static void put_onehot(real *a, int n, int w, int col, int n_onehot,
                       const int32_t *batch) {
  for (int i = 0; i < n; i++) {
    real *row = a + (int64_t)i * w + col;
    for (int j = 0; j < n_onehot; j++) row[j] = 0;
    row[batch[i]] = 1;
  }
}

real *nn_mlp_forward(const clue_arena *params, clue_arena *bufs, const nn_mlp *m,
                     const real *x, const int32_t *batch, int n, int64_t n_global,
                     const nn_mode *mode, nn_mlp_cache *c) {
  int w0 = layer_in_width(m, 0);
  clue_prof_push(CLUE_PROF_ACT);
  for (int i = 0; i < n; i++)
    memcpy(c->x[0] + (int64_t)i * w0, x + (int64_t)i * m->in, (size_t)m->in * sizeof(real));
  if (m->n_onehot) put_onehot(c->x[0], n, w0, m->in, m->n_onehot, batch);
  for (int l = 0; l < m->depth; l++) {
    int64_t count = (int64_t)n * m->width;
    real *act = c->act[l];
    nn_linear_forward(params, &m->lin[l], c->x[l], n, act);
    nn_leaky_relu_forward(act, count);
    /* h: BN output (or the activation), then dropout, written into x[l+1]. */
    int wn = layer_in_width(m, l + 1);
    real *h = c->dy; /* scratch (n × width) */
    if (m->batchnorm) {
      if (mode->train)
        nn_batchnorm_forward_train(params, bufs, &m->bn[l], act, n, n_global, h,
                                   &c->bn[l], mode->comm);
      else
        nn_batchnorm_forward_eval(params, bufs, &m->bn[l], act, n, h);
    } else {
      memcpy(h, act, (size_t)count * sizeof(real));
    }
    if (mode->train)
      nn_dropout_forward(h, n, m->width, m->dropout, &mode->rng, m->id * 64 + (uint64_t)l,
                         c->mask[l]);
    for (int i = 0; i < n; i++)
      memcpy(c->x[l + 1] + (int64_t)i * wn, h + (int64_t)i * m->width,
             (size_t)m->width * sizeof(real));
    if (m->onehot_every && m->n_onehot)
      put_onehot(c->x[l + 1], n, wn, m->width, m->n_onehot, batch);
  }
  clue_prof_pop();
  return c->x[m->depth];
}

void nn_mlp_backward(clue_arena *params, const nn_mlp *m, nn_mlp_cache *c,
                     const real *dout, int n, int64_t n_global, real *dx,
                     const nn_mode *mode) {
  /* g: gradient of x[l+1] (n × layer_in_width(l+1)); starts as dout. */
  const real *g = dout;
  int gw = layer_in_width(m, m->depth);
  clue_prof_push(CLUE_PROF_ACT);
  for (int l = m->depth - 1; l >= 0; l--) {
    int64_t count = (int64_t)n * m->width;
    real *d = c->dy; /* (n × width): gradient of the layer's hidden output */
    for (int i = 0; i < n; i++)
      for (int j = 0; j < m->width; j++) {
        int64_t k = (int64_t)i * m->width + j;
        d[k] = g[(int64_t)i * gw + j] * c->mask[l][k];
      }
    if (m->batchnorm) {
      /* d_act = BN backward(d): computed into dx scratch, then moved to d. */
      memset(c->dx, 0, (size_t)count * sizeof(real));
      nn_batchnorm_backward(params, &m->bn[l], &c->bn[l], d, n, n_global, c->dx,
                            mode->comm);
      memcpy(d, c->dx, (size_t)count * sizeof(real));
    }
    nn_leaky_relu_backward(c->act[l], d, count);
    int win = layer_in_width(m, l);
    memset(c->dx, 0, (size_t)n * win * sizeof(real));
    nn_linear_backward(params, &m->lin[l], c->x[l], d, n, c->dx);
    g = c->dx;
    gw = win;
    if (l > 0) {
      /* Move the gradient out of dx so the next layer can reuse the scratch. */
      real *keep = c->x[l]; /* x[l] is no longer needed: reuse it as storage */
      memcpy(keep, c->dx, (size_t)n * win * sizeof(real));
      g = keep;
    }
  }
  if (dx)
    for (int i = 0; i < n; i++)
      for (int j = 0; j < m->in; j++) dx[(int64_t)i * m->in + j] += g[(int64_t)i * gw + j];
  clue_prof_pop();
}
