/* optim.c — RMSprop and Adam over an arena. */
#include "clue/optim.h"
#include "clue/prof.h"

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

#if defined(__AVX__) && !defined(CLUE_REAL_DOUBLE)
#include <immintrin.h>
#define OPTIM_SIMD 8
/* The loops below in 8-float AVX vectors for i < n − n mod 8. Each lane does the
 * scalar code's operations in the same order with IEEE sqrt and division, so the
 * results are bit-identical to the scalar loops (which do the tail). The compiler
 * does not vectorise the scalar loops itself: sqrtf may set errno. */

static int64_t rmsprop_simd(int64_t n, real al, real lr, real eps, real *w, const real *g,
                            real *v) {
  __m256 val = _mm256_set1_ps(al), v1al = _mm256_set1_ps(1 - al);
  __m256 vlr = _mm256_set1_ps(lr), veps = _mm256_set1_ps(eps);
  int64_t i = 0;
  for (; i + OPTIM_SIMD <= n; i += OPTIM_SIMD) {
    __m256 gi = _mm256_loadu_ps(g + i);
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(val, _mm256_loadu_ps(v + i)),
                              _mm256_mul_ps(_mm256_mul_ps(v1al, gi), gi));
    _mm256_storeu_ps(v + i, vi);
    __m256 den = _mm256_add_ps(_mm256_sqrt_ps(vi), veps);
    __m256 upd = _mm256_div_ps(_mm256_mul_ps(vlr, gi), den);
    _mm256_storeu_ps(w + i, _mm256_sub_ps(_mm256_loadu_ps(w + i), upd));
  }
  return i;
}

static int64_t adam_simd(int64_t n, real b1, real b2, real step, real rc2, real eps, real *w,
                         const real *g, real *m, real *v) {
  __m256 vb1 = _mm256_set1_ps(b1), v1b1 = _mm256_set1_ps(1 - b1);
  __m256 vb2 = _mm256_set1_ps(b2), v1b2 = _mm256_set1_ps(1 - b2);
  __m256 vstep = _mm256_set1_ps(step), vrc2 = _mm256_set1_ps(rc2), veps = _mm256_set1_ps(eps);
  int64_t i = 0;
  for (; i + OPTIM_SIMD <= n; i += OPTIM_SIMD) {
    __m256 gi = _mm256_loadu_ps(g + i);
    __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)),
                              _mm256_mul_ps(v1b1, gi));
    __m256 vi = _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)),
                              _mm256_mul_ps(_mm256_mul_ps(v1b2, gi), gi));
    _mm256_storeu_ps(m + i, mi);
    _mm256_storeu_ps(v + i, vi);
    __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), vrc2), veps);
    __m256 upd = _mm256_div_ps(_mm256_mul_ps(vstep, mi), den);
    _mm256_storeu_ps(w + i, _mm256_sub_ps(_mm256_loadu_ps(w + i), upd));
  }
  return i;
}
#else
static int64_t rmsprop_simd(int64_t n, real al, real lr, real eps, real *w, const real *g,
                            real *v) {
  (void)n, (void)al, (void)lr, (void)eps, (void)w, (void)g, (void)v;
  return 0;
}
static int64_t adam_simd(int64_t n, real b1, real b2, real step, real rc2, real eps, real *w,
                         const real *g, real *m, real *v) {
  (void)n, (void)b1, (void)b2, (void)step, (void)rc2, (void)eps, (void)w, (void)g, (void)m,
      (void)v;
  return 0;
}
#endif

void clue_optim_step(clue_optim *o, clue_arena *a) { clue_optim_step_range(o, a, 0, o->n); }

static void step_values(clue_optim *o, clue_arena *a, int64_t b, int64_t e, bool clear);

void clue_optim_step_range(clue_optim *o, clue_arena *a, int64_t b, int64_t e) {
  o->t++;
  step_values(o, a, b, e, false);
}

void clue_optim_step_ranges(clue_optim *o, clue_arena *a, const int64_t *b, const int64_t *e,
                            int n_ranges, bool clear_grad) {
  o->t++;
  for (int i = 0; i < n_ranges; i++) step_values(o, a, b[i], e[i], clear_grad);
}

/* n values of step o->t from w, g, v (and m: Adam). */
static void step_block(const clue_optim *o, int64_t n, real *w, const real *g, real *v,
                       real *m) {
  if (o->kind == CLUE_OPT_RMSPROP) {
    real al = (real)o->alpha, lr = (real)o->lr, eps = (real)o->eps;
    for (int64_t i = rmsprop_simd(n, al, lr, eps, w, g, v); i < n; i++) {
      v[i] = al * v[i] + (1 - al) * g[i] * g[i];
      w[i] -= lr * g[i] / (r_sqrt(v[i]) + eps);
    }
    return;
  }
  real b1 = (real)o->beta1, b2 = (real)o->beta2, eps = (real)o->eps;
  double c1 = 1 - pow(o->beta1, (double)o->t), c2 = 1 - pow(o->beta2, (double)o->t);
  real step = (real)(o->lr / c1), rc2 = (real)(1 / sqrt(c2));
  for (int64_t i = adam_simd(n, b1, b2, step, rc2, eps, w, g, m, v); i < n; i++) {
    m[i] = b1 * m[i] + (1 - b1) * g[i];
    v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i];
    w[i] -= step * m[i] / (r_sqrt(v[i]) * rc2 + eps);
  }
}

/* Values [b, e) of step o->t; with clear, in blocks whose gradients are zeroed
 * while still in cache. */
static void step_values(clue_optim *o, clue_arena *a, int64_t b, int64_t e, bool clear) {
  enum { BLOCK = 2048 }; /* a multiple of the vector width: the same bits as one call */
  clue_prof_push(CLUE_PROF_OPTIM);
  for (int64_t i = b; i < e; i += BLOCK) {
    int64_t n = e - i < BLOCK ? e - i : BLOCK;
    step_block(o, n, a->w + i, a->g + i, o->v + i, o->m ? o->m + i : NULL);
    if (clear) memset(a->g + i, 0, (size_t)n * sizeof(real));
  }
  clue_prof_pop();
}
