/* test_fastmath.c — the float build's vectorisable exp/log/log1p/softplus/sigmoid
 * (include/clue/fastmath.h) against double-precision libm over the whole float
 * range of each domain, and their special values.
 *
 * Error unit: ulp of the correctly rounded float result (|got − exact| divided by
 * the spacing of floats at |exact|; exact = double libm). The inputs are every
 * float whose bit pattern is a multiple of a stride (≈ 2 million per sign and
 * function), plus a dense sweep of [−2, 2] where the ranges meet. Bounds asserted,
 * and the maxima measured when they were set (printed by the test; with FMA /
 * without FMA, i.e. -march=native / a portable build):
 *   fm_expf           ≤ 2 ulp  (0.88 / 1.17)  where e^x is a normal float
 *   fm_logf           ≤ 2 ulp  (0.89 / 0.92)  on normal positive floats
 *   fm_log1pf         ≤ 4 ulp  (2.31 / 2.31)  on (−1, FLT_MAX]
 *   softplus          ≤ 4 ulp  (3.13 / 3.13)  where the result is normal
 *   sigmoid           ≤ 4 ulp  (2.11 / 2.19)  where the result is normal
 * and the double log and log1p of the per-count likelihood work, against
 * long-double libm over every binade of the normal doubles (log1p: x ≥ 0):
 *   fm_log            ≤ 2 ulp  (1.12 / 1.18)
 *   fm_log1p          ≤ 4 ulp  (2.21 / 2.21)
 * The sweeps take about two seconds. */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/fastmath.h"
#include "testutil.h"

#define STRIDE 509u /* a prime: every exponent and many mantissas are visited */

/* |got − exact| in ulp of the float nearest to exact. */
static double ulp_error(float got, double exact) {
  if (isnan(exact)) return isnan(got) ? 0 : INFINITY;
  if (isinf(exact)) return got == (float)exact ? 0 : INFINITY;
  float e = (float)exact;
  double a = fabs(exact);
  double spacing = (double)nextafterf(fabsf(e), INFINITY) - fabs((double)e);
  if (a < FLT_MIN) spacing = (double)FLT_TRUE_MIN;
  return fabs((double)got - exact) / spacing;
}

typedef struct sweep {
  double worst;
  float at;
  long n;
} sweep;

static void note(sweep *s, float x, double err) {
  s->n++;
  if (err > s->worst || isnan(err)) {
    s->worst = isnan(err) ? INFINITY : err;
    s->at = x;
  }
}

/* Calls visit(x) for every float x of one sign whose bits are a multiple of
 * STRIDE, and for 200,001 points of [−2, 2]. */
static void for_floats(void (*visit)(float, void *), void *ctx) {
  for (uint32_t b = 0; b < 0x7f800000u; b += STRIDE) {
    float x;
    memcpy(&x, &b, sizeof x);
    visit(x, ctx);
    visit(-x, ctx);
  }
  for (int i = -100000; i <= 100000; i++) visit((float)i * 2e-5f, ctx);
}

static void visit_exp(float x, void *ctx) {
  double e = exp((double)x);
  if (e >= FLT_MIN && e <= FLT_MAX) note(ctx, x, ulp_error(fm_expf(x), e));
}

static void visit_log(float x, void *ctx) {
  if (x >= FLT_MIN) note(ctx, x, ulp_error(fm_logf(x), log((double)x)));
}

static void visit_log1p(float x, void *ctx) {
  if (x > -1) note(ctx, x, ulp_error(fm_log1pf(x), log1p((double)x)));
}

typedef struct sp_ctx {
  sweep sp, sig;
} sp_ctx;

static void visit_softplus(float x, void *ctx) {
  sp_ctx *c = ctx;
  float sig;
  float sp = fm_softplus_sigmoidf(x, &sig);
  double xs = x;
  double esp = xs > 0 ? xs + log1p(exp(-xs)) : log1p(exp(xs));
  double esig = xs >= 0 ? 1 / (1 + exp(-xs)) : exp(xs) / (1 + exp(xs));
  if (esp >= FLT_MIN) {
    note(&c->sp, x, ulp_error(sp, esp));
    note(&c->sp, x, ulp_error(fm_softplusf(x), esp));
  }
  if (esig >= FLT_MIN) {
    note(&c->sig, x, ulp_error(sig, esig));
    note(&c->sig, x, ulp_error(fm_sigmoidf(x), esig));
  }
}

static void report(const char *what, const sweep *s, double bound) {
  printf("  %-9s max error %.2f ulp at x = %.9g over %ld points (bound %.0f)\n", what, s->worst,
         (double)s->at, s->n, bound);
  assert_true(s->n > 1000000);
  assert_true(s->worst <= bound);
}

static void test_exp(void **state) {
  (void)state;
  sweep s = {0};
  for_floats(visit_exp, &s);
  report("exp", &s, 2);
}

static void test_log(void **state) {
  (void)state;
  sweep s = {0};
  for_floats(visit_log, &s);
  report("log", &s, 2);
}

static void test_log1p(void **state) {
  (void)state;
  sweep s = {0};
  for_floats(visit_log1p, &s);
  /* the smallest arguments, where log1p(x) = x */
  for (float x = 1e-30f; x < 1e-3f; x *= 1.37f) {
    note(&s, x, ulp_error(fm_log1pf(x), log1p((double)x)));
    note(&s, -x, ulp_error(fm_log1pf(-x), log1p(-(double)x)));
  }
  report("log1p", &s, 4);
}

static void test_softplus_sigmoid(void **state) {
  (void)state;
  sp_ctx c;
  memset(&c, 0, sizeof c);
  for_floats(visit_softplus, &c);
  report("softplus", &c.sp, 4);
  report("sigmoid", &c.sig, 4);
}

static void test_special_values(void **state) {
  (void)state;
  assert_true(fm_expf(0) == 1.0f);
  /* gradual underflow: subnormal results within 1e-3 relative down to e^−95 */
  for (float x = -87.5f; x > -95; x -= 0.25f) {
    double e = exp((double)x);
    assert_true(fm_expf(x) > 0 && fabs(fm_expf(x) - e) <= 1e-3 * e);
  }
  assert_true(fm_expf(-105.0f) == 0.0f);
  assert_true(isinf(fm_expf(88.8f)) && fm_expf(88.7f) < INFINITY);
  assert_true(fm_expf(-1e30f) == 0.0f);
  assert_true(fm_expf(-INFINITY) == 0.0f);
  assert_true(isinf(fm_expf(89.0f)) && fm_expf(89.0f) > 0);
  assert_true(isinf(fm_expf(INFINITY)));
  assert_true(isnan(fm_expf(NAN)));
  assert_true(fm_logf(1.0f) == 0.0f);
  assert_true(isinf(fm_logf(0.0f)) && fm_logf(0.0f) < 0);
  assert_true(isnan(fm_logf(-1.0f)));
  assert_true(isinf(fm_logf(INFINITY)) && fm_logf(INFINITY) > 0);
  assert_true(isnan(fm_logf(NAN)));
  assert_true(fm_log1pf(0.0f) == 0.0f);
  assert_true(isinf(fm_log1pf(-1.0f)) && fm_log1pf(-1.0f) < 0);
  assert_true(isnan(fm_log1pf(NAN)));
  float sig;
  assert_true(fm_softplus_sigmoidf(1e4f, &sig) == 1e4f && sig == 1.0f);
  assert_true(fm_softplus_sigmoidf(-1e4f, &sig) == 0.0f && sig == 0.0f);
  assert_true(isnan(fm_softplus_sigmoidf(NAN, &sig)) && isnan(sig));
  assert_true(fm_select(1, 2.0f, 3.0f) == 2.0f && fm_select(0, 2.0f, 3.0f) == 3.0f);
  assert_true(isnan(fm_select(1, NAN, 3.0f)));
}

/* ---- double precision ---- */

/* |got − exact| in ulp of the double nearest to exact (exact: long double). */
static double ulp_error_d(double got, long double exact) {
  double e = (double)exact;
  long double spacing = (long double)nextafter(fabs(e), INFINITY) - fabsl((long double)e);
  return (double)(fabsl((long double)got - exact) / spacing);
}

typedef struct sweep_d {
  double worst, at;
  long n;
} sweep_d;

static void note_d(sweep_d *s, double x, double err) {
  s->n++;
  if (err > s->worst || isnan(err)) {
    s->worst = isnan(err) ? INFINITY : err;
    s->at = x;
  }
}

static void report_d(const char *what, const sweep_d *s, double bound) {
  printf("  %-9s max error %.2f ulp at x = %.17g over %ld points (bound %.0f)\n", what,
         s->worst, s->at, s->n, bound);
  assert_true(s->n > 1000000);
  assert_true(s->worst <= bound);
}

/* Positive normal doubles whose bits step by a large odd stride (about 2
 * million), and 200,001 points of (0, 4]. */
static void for_doubles(void (*visit)(double, void *), void *ctx) {
  const uint64_t stride = 4611686018427ull; /* odd */
  for (uint64_t b = 0x0010000000000000ull; b < 0x7ff0000000000000ull; b += stride) {
    double x;
    memcpy(&x, &b, sizeof x);
    visit(x, ctx);
  }
  for (int i = 1; i <= 200001; i++) visit((double)i * 2e-5, ctx);
}

static void visit_log_d(double x, void *ctx) { note_d(ctx, x, ulp_error_d(fm_log(x), logl(x))); }

static void visit_log1p_d(double x, void *ctx) {
  note_d(ctx, x, ulp_error_d(fm_log1p(x), log1pl(x)));
}

/* The double log, over every binade of the normal doubles (log1p: x ≥ 0, where
 * the likelihood calls it), against long-double libm. */
static void test_log_double(void **state) {
  (void)state;
  sweep_d s = {0}, p = {0};
  for_doubles(visit_log_d, &s);
  for (double x = 0.999; x < 1.001; x += 1e-9) note_d(&s, x, ulp_error_d(fm_log(x), logl(x)));
  report_d("log (d)", &s, 2);
  for_doubles(visit_log1p_d, &p);
  for (double x = 1e-300; x < 1e-2; x *= 1.37) note_d(&p, x, ulp_error_d(fm_log1p(x), log1pl(x)));
  note_d(&p, 0, fm_log1p(0) == 0 ? 0 : INFINITY);
  report_d("log1p (d)", &p, 4);
}

/* The functions inside a loop (the way the likelihood calls them, vectorised by
 * the compiler) give the same values as called one at a time. */
static void test_loop_equals_scalar(void **state) {
  (void)state;
  enum { N = 4099 };
  static float x[N], e[N], l[N], s[N], g[N];
  for (int i = 0; i < N; i++) x[i] = (float)(i - N / 2) * 0.037f;
  for (int i = 0; i < N; i++) {
    e[i] = fm_expf(x[i]);
    l[i] = fm_logf(fabsf(x[i]) + 1e-3f);
    s[i] = fm_softplus_sigmoidf(x[i], &g[i]);
  }
  for (int i = 0; i < N; i += 97) {
    volatile float xi = x[i];
    float gi;
    assert_true(e[i] == fm_expf(xi));
    assert_true(l[i] == fm_logf(fabsf(xi) + 1e-3f));
    assert_true(s[i] == fm_softplus_sigmoidf(xi, &gi) && g[i] == gi);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exp),
      cmocka_unit_test(test_log),
      cmocka_unit_test(test_log1p),
      cmocka_unit_test(test_softplus_sigmoid),
      cmocka_unit_test(test_special_values),
      cmocka_unit_test(test_log_double),
      cmocka_unit_test(test_loop_equals_scalar),
  };
  return TU_RUN(tests);
}
