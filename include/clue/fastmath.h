/* fastmath.h — branch-free float exp/log/log1p and the softplus/sigmoid built on
 * them, written so that GCC vectorises the loops that call them (no calls, no
 * branches, no errno), for the element-wise likelihood work of the float build.
 *
 * Method (our own): exp by x = n·ln2 + r, |r| ≤ ln2/2 (Cody–Waite split of ln2),
 * e^r by its Taylor polynomial of degree 7 (truncation ≤ 7.3e-9 relative), 2^n
 * put into the exponent bits. log by x = m·2^e with m in [√½, √2),
 * log m = 2·atanh(s), s = (m − 1)/(m + 1), series to s^9 (truncation ≤ 2e-9).
 * log1p(x) = log(u)·x/(u − 1) with u = 1 + x (exact for the rounding of u).
 *
 * Accuracy (tests/test_fastmath.c, against double-precision libm over the whole
 * float range of each domain; bound asserted, maximum measured with/without FMA):
 * fm_expf ≤ 2 ulp (0.9/1.2) where e^x is a normal float; fm_logf ≤ 2 ulp (0.9) on
 * normal positive x; fm_log1pf ≤ 4 ulp (2.3) on (−1, ∞); softplus ≤ 4 ulp (3.1)
 * and sigmoid ≤ 4 ulp (2.2) where the result is a normal float. Outside: fm_expf
 * underflows gradually below −87.3 (subnormal results, 0 below −103.9) and
 * overflows to +inf above 88.72; fm_logf(0) = −inf, fm_logf(x < 0) = NaN,
 * fm_logf(+inf) = +inf; subnormal x are not supported by fm_logf (wrong values;
 * the network code never passes them); NaN propagates everywhere.
 *
 * Double precision (fm_log, fm_log1p), for the per-count work of the negative
 * binomial, which stays in double: the same log with the series to s^21, ≤ 2 ulp
 * on normal positive doubles; log1p ≤ 4 ulp for x ≥ 0; nothing else handled.
 *
 * The rf_* names are what the network code calls: these functions in the float
 * build, double-precision libm in the float64 test build (CLUE_REAL_DOUBLE), so
 * the finite-difference gradient checks keep exact elementary functions. */
#ifndef CLUE_FASTMATH_H
#define CLUE_FASTMATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "clue/real.h"

typedef union fm_bits {
  float f;
  int32_t i;
} fm_bits;

static inline float fm_from_bits(int32_t i) {
  fm_bits b;
  b.i = i;
  return b.f;
}

static inline int32_t fm_to_bits(float f) {
  fm_bits b;
  b.f = f;
  return b.i;
}

/* a·b + c, fused when the target has FMA (one rounding; the build's ISO C mode
 * does not contract a·b + c by itself), else two operations. */
#ifdef __FMA__
#define FM_FMA(a, b, c) fmaf((a), (b), (c))
#else
#define FM_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* cond ? a : b without a branch. Both values are computed before the choice
 * (a plain ?: whose arm holds arithmetic is not if-converted by GCC under the
 * default -ftrapping-math, which stops vectorisation). */
static inline float fm_select(int cond, float a, float b) {
  int32_t m = -(int32_t)(cond != 0);
  return fm_from_bits((fm_to_bits(a) & m) | (fm_to_bits(b) & ~m));
}

/* e^x: ≤ 2 ulp while e^x is a normal float; gradual underflow below −87.3
 * (0 below −103.9), +inf above 88.72. */
static inline float fm_expf(float x) {
  const float log2e = 1.44269504088896341f;
  const float ln2_hi = 0.693145751953125f;   /* 12 significant bits: n·ln2_hi is exact */
  const float ln2_lo = 1.42860682030941723e-6f;
  const float magic = 12582912.0f;           /* 1.5·2^23: adding it rounds to an integer */
  /* Clamped so that n stays in [−150, 129]; 2^n is applied as 2^(n/2)·2^(n − n/2),
   * two normal scales, so overflow to inf and underflow to 0 happen by rounding. */
  float xc = fm_select(x < -104.0f, -104.0f, x);
  xc = fm_select(xc > 89.0f, 89.0f, xc);
  float t = FM_FMA(xc, log2e, magic);
  int32_t n = fm_to_bits(t) - fm_to_bits(magic);
  float nf = t - magic;
  float r = FM_FMA(-nf, ln2_hi, xc);
  r = FM_FMA(-nf, ln2_lo, r);
  float p = 1.0f / 5040;
  p = FM_FMA(p, r, 1.0f / 720);
  p = FM_FMA(p, r, 1.0f / 120);
  p = FM_FMA(p, r, 1.0f / 24);
  p = FM_FMA(p, r, 1.0f / 6);
  p = FM_FMA(p, r, 0.5f);
  p = FM_FMA(p, r, 1.0f);
  p = FM_FMA(p, r, 1.0f);
  int32_t n1 = n >> 1;
  return p * fm_from_bits((int32_t)((uint32_t)(n1 + 127) << 23)) *
         fm_from_bits((int32_t)((uint32_t)(n - n1 + 127) << 23));
}

/* log x for normal x > 0 (≤ 2 ulp); −inf at 0, NaN below, +inf at +inf. */
static inline float fm_logf(float x) {
  const float ln2_hi = 0.693145751953125f, ln2_lo = 1.42860682030941723e-6f;
  int32_t i = fm_to_bits(x);
  int32_t e = (i - 0x3f3504f3) >> 23; /* 0x3f3504f3 = √½: m = x·2^−e in [√½, √2) */
  float m = fm_from_bits((int32_t)((uint32_t)i - ((uint32_t)e << 23)));
  float f = m - 1.0f; /* exact */
  float s = f / (m + 1.0f);
  float z = s * s;
  /* log m = 2s + s·z·q(z) = f − s·(f − z·q(z)), since 2s = f − s·f */
  float q = 2.0f / 9;
  q = FM_FMA(q, z, 2.0f / 7);
  q = FM_FMA(q, z, 2.0f / 5);
  q = FM_FMA(q, z, 2.0f / 3);
  float lm = FM_FMA(-s, FM_FMA(-z, q, f), f);
  float ef = (float)e;
  float y = FM_FMA(ef, ln2_hi, FM_FMA(ef, ln2_lo, lm));
  float bad = fm_select(x == 0, -INFINITY, NAN);
  y = fm_select(x > 0, y, bad);
  return fm_select(x < INFINITY, y, x); /* +inf stays +inf; NaN stays NaN */
}

/* log(1 + x) for x > −1 (≤ 4 ulp), accurate for tiny x. */
static inline float fm_log1pf(float x) {
  float u = 1.0f + x;
  float c = u - 1.0f;
  float y = fm_logf(u) * (x / fm_select(c != 0, c, 1.0f));
  return fm_select(c != 0, y, x);
}

/* log(1 + e^x), accurate on the whole line. */
static inline float fm_softplusf(float x) {
  return fm_select(x > 0, x, 0.0f) + fm_log1pf(fm_expf(-fabsf(x)));
}

/* 1 / (1 + e^−x). */
static inline float fm_sigmoidf(float x) {
  float e = fm_expf(-fabsf(x));
  return fm_select(x >= 0, 1.0f, e) / (1.0f + e);
}

/* softplus(x), and sigmoid(x) in *sig, from one exponential: with e = e^−|x| in
 * (0, 1], log1p(e) = 2·atanh(s), s = e/(2 + e) ≤ 1/3, by its series to s^15
 * (truncation ≤ 1.4e-9 relative). */
static inline float fm_softplus_sigmoidf(float x, float *sig) {
  float e = fm_expf(-fabsf(x));
  *sig = fm_select(x >= 0, 1.0f, e) / (1.0f + e);
  float s = e / (2.0f + e);
  float z = s * s;
  float q = 2.0f / 15;
  q = FM_FMA(q, z, 2.0f / 13);
  q = FM_FMA(q, z, 2.0f / 11);
  q = FM_FMA(q, z, 2.0f / 9);
  q = FM_FMA(q, z, 2.0f / 7);
  q = FM_FMA(q, z, 2.0f / 5);
  q = FM_FMA(q, z, 2.0f / 3);
  q = FM_FMA(q, z, 2.0f);
  return FM_FMA(s, q, fm_select(x > 0, x, 0.0f));
}

/* ---- double precision, for the per-count work of the likelihood ---- */

static inline double fm_from_bits_d(int64_t i) {
  double d;
  memcpy(&d, &i, sizeof d);
  return d;
}

static inline int64_t fm_to_bits_d(double d) {
  int64_t i;
  memcpy(&i, &d, sizeof i);
  return i;
}

#ifdef __FMA__
#define FM_FMA_D(a, b, c) fma((a), (b), (c))
#else
#define FM_FMA_D(a, b, c) ((a) * (b) + (c))
#endif

/* log x for normal positive doubles (≤ 2 ulp; tests/test_fastmath.c), the same
 * method as fm_logf with the series to s^21 (truncation ≤ 4e-17 relative);
 * nothing else is handled (0, subnormals, negatives, inf, NaN give wrong values). */
static inline double fm_log(double x) {
  const double ln2_hi = 6.93147180369123816490e-01; /* 33 significant bits: e·ln2_hi exact */
  const double ln2_lo = 1.90821492927058770002e-10;
  const int64_t magic = 0x4338000000000000; /* 1.5·2^52: integer k → double k */
  int64_t i = fm_to_bits_d(x);
  int64_t e = (i - 0x3fe6a09e667f3bcd) >> 52; /* √½: m = x·2^−e in [√½, √2) */
  double m = fm_from_bits_d((int64_t)((uint64_t)i - ((uint64_t)e << 52)));
  double f = m - 1.0; /* exact */
  double s = f / (m + 1.0);
  double z = s * s;
  double q = 2.0 / 21;
  q = FM_FMA_D(q, z, 2.0 / 19);
  q = FM_FMA_D(q, z, 2.0 / 17);
  q = FM_FMA_D(q, z, 2.0 / 15);
  q = FM_FMA_D(q, z, 2.0 / 13);
  q = FM_FMA_D(q, z, 2.0 / 11);
  q = FM_FMA_D(q, z, 2.0 / 9);
  q = FM_FMA_D(q, z, 2.0 / 7);
  q = FM_FMA_D(q, z, 2.0 / 5);
  q = FM_FMA_D(q, z, 2.0 / 3);
  double lm = FM_FMA_D(-s, FM_FMA_D(-z, q, f), f); /* 2s + s·z·q, as in fm_logf */
  double ef = fm_from_bits_d(magic + e) - 6755399441055744.0;
  return FM_FMA_D(ef, ln2_hi, FM_FMA_D(ef, ln2_lo, lm));
}

/* log(1 + x) for x ≥ 0 with 1 + x a normal double (≤ 4 ulp), accurate for tiny x. */
static inline double fm_log1p(double x) {
  double u = 1.0 + x;
  double c = u - 1.0;
  double y = fm_log(u) * (x / (c != 0 ? c : 1.0));
  return c != 0 ? y : x;
}

#ifdef CLUE_REAL_DOUBLE
static inline double rf_select(int cond, double a, double b) { return cond ? a : b; }
static inline double rf_softplus_sigmoid(double x, double *sig) {
  double e = exp(-fabs(x));
  *sig = (x >= 0 ? 1.0 : e) / (1.0 + e);
  return (x > 0 ? x : 0) + log1p(e);
}
static inline double rf_exp(double x) { return exp(x); }
static inline double rf_log(double x) { return log(x); }
static inline double rf_log1p(double x) { return log1p(x); }
static inline double rf_softplus(double x) { return (x > 0 ? x : 0) + log1p(exp(-fabs(x))); }
static inline double rf_sigmoid(double x) {
  double e = exp(-fabs(x));
  return (x >= 0 ? 1.0 : e) / (1.0 + e);
}
#else
static inline float rf_select(int cond, float a, float b) { return fm_select(cond, a, b); }
static inline float rf_exp(float x) { return fm_expf(x); }
static inline float rf_log(float x) { return fm_logf(x); }
static inline float rf_log1p(float x) { return fm_log1pf(x); }
static inline float rf_softplus(float x) { return fm_softplusf(x); }
static inline float rf_sigmoid(float x) { return fm_sigmoidf(x); }
static inline float rf_softplus_sigmoid(float x, float *sig) {
  return fm_softplus_sigmoidf(x, sig);
}
#endif

#endif
