/* optim.c — RMSprop and Adam over an arena. */
#include "clue/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int clue_optim_init(clue_optim *o, clue_optimizer kind, double lr, int64_t n,
                    clue_err *err) {
  memset(o, 0, sizeof *o);
  o->kind = kind;
  o->lr = lr;
  o->alpha = 0.99;
  o->beta1 = 0.9;
  o->beta2 = 0.999;
  o->eps = 1e-8;
  o->n = n;
  o->v = clue_calloc((size_t)(n > 0 ? n : 1), sizeof(real), err);
  if (!o->v) return CLUE_ENOMEM;
  if (kind == CLUE_OPT_ADAM) {
    o->m = clue_calloc((size_t)(n > 0 ? n : 1), sizeof(real), err);
    if (!o->m) {
      clue_optim_release(o);
      return CLUE_ENOMEM;
    }
  }
  return CLUE_OK;
}

void clue_optim_release(clue_optim *o) {
  free(o->m);
  free(o->v);
  o->m = o->v = NULL;
}

void clue_optim_step(clue_optim *o, clue_arena *a) {
  o->t++;
  real *w = a->w, *g = a->g, *v = o->v;
  if (o->kind == CLUE_OPT_RMSPROP) {
    real al = (real)o->alpha, lr = (real)o->lr, eps = (real)o->eps;
    for (int64_t i = 0; i < o->n; i++) {
      v[i] = al * v[i] + (1 - al) * g[i] * g[i];
      w[i] -= lr * g[i] / (r_sqrt(v[i]) + eps);
    }
    return;
  }
  real b1 = (real)o->beta1, b2 = (real)o->beta2, eps = (real)o->eps;
  double c1 = 1 - pow(o->beta1, (double)o->t), c2 = 1 - pow(o->beta2, (double)o->t);
  real step = (real)(o->lr / c1), rc2 = (real)(1 / sqrt(c2));
  real *m = o->m;
  for (int64_t i = 0; i < o->n; i++) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    w[i] -= step * m[i] / (r_sqrt(v[i]) * rc2 + eps);
  }
}
