/* calib.h — a predicted profile on the scale it is compared on, and its
 * correction fitted on the cells measured in both modalities (the bridge).
 *
 * Values ("prediction units") of a target modality with likelihood
 *   nb         E[log1p(X / L × 1e4)] for X the counts the decoder gives at
 *              library size L (the log1p-normalised scale of most analyses);
 *   bernoulli  the probability of a nonzero value;
 *   normal     the expected value, in the input's units.
 * Their measured counterpart for a cell: log1p(x / Σx × 1e4) over the decoded
 * features (Σx = 0: zeros), the indicator x > 0, the value itself.
 *
 * The decoder alone predicts these values with a bias per feature (the
 * cross-encoded latent values are shrunk towards the prior, so rare features
 * come out too high and profiles too flat or too sharp). The calibration of
 * the pair (from, to) is, per target feature f, the least-squares line
 * y ≈ a_f + b_f · p over the bridge cells (p: the values predicted from `from`,
 * y: measured), with b_f kept ≥ 0 (the prediction's order of cells is kept) and
 * b_f = 0 when p does not vary; applied as clamp(a_f + b_f · p, lo_f, hi_f),
 * [lo_f, hi_f] the range of y on those cells. */
#ifndef CLUE_CALIB_H
#define CLUE_CALIB_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/model.h"
#include "clue/prep.h"

typedef struct clue_calib {
  int64_t n_feat;          /* the target's decoded features */
  int64_t n_cells;         /* bridge cells of the fit */
  bool validation;         /* they are validation cells only (not trained on) */
  double library;          /* nb: L of the fitted values; otherwise 0 */
  double *a, *b, *lo, *hi; /* (n_feat) */
  double *p_mean, *p_var;  /* (n_feat) mean and variance of p over the fit's cells */
  bool has_fit_stats;      /* p_mean, p_var are set (a fit of this process, not a
                              checkpoint's) */
} clue_calib;

/* A calibration with room for n_feat features (values zero). */
clue_calib *clue_calib_new(int64_t n_feat, clue_err *err);
void clue_calib_free(clue_calib *c);

/* In place, v (n × n_feat values): the calibrated values. */
void clue_calib_apply(const clue_calib *c, int64_t n, float *v);

/* In place, v (n × n_feat values of cells that were among the fit's, y their
 * measured values): the calibrated values each cell gets from the line fitted
 * without it (closed form of least squares left one out: y − e / (1 − h), e the
 * residual, h the cell's leverage), clipped as clue_calib_apply does. Needs
 * c->has_fit_stats. */
void clue_calib_apply_left_out(const clue_calib *c, int64_t n, const float *y, float *v);

/* The sums of one fit over the cells added on this rank. */
typedef struct clue_calib_sums {
  int64_t n_feat, n_cells;
  double *sum; /* (4 × n_feat) Σp, Σy, Σp², Σp·y */
  double *ext; /* (2 × n_feat) max of −y, max of y */
} clue_calib_sums;

clue_calib_sums *clue_calib_sums_new(int64_t n_feat, clue_err *err);
void clue_calib_sums_free(clue_calib_sums *s);

/* One cell: predicted values p and measured values y (n_feat each). */
void clue_calib_sums_add(clue_calib_sums *s, const float *p, const float *y);

/* Collective. The fit from the sums of every rank (s is summed in place);
 * *out NULL when no rank added a cell. */
int clue_calib_fit(clue_calib_sums *s, double library, const clue_comm *comm,
                   clue_calib **out, clue_err *err);

/* The measured values of row `row` of a decoder target t (clue_prep_decode_target
 * of the target's counts) into y (p->n_decoded). */
void clue_calib_measured(const clue_prep *p, const clue_csr *t, int64_t row, float *y);

/* In place, v (n × F of modality k): the expected profiles of
 * clue_model_expected for batches b → values in prediction units, nb at
 * library size lib. */
void clue_prediction_values(const clue_model *m, int k, const clue_prep *p, int64_t n,
                            const int32_t *b, double lib, float *v);

/* Not collective. The latent values the decoder of modality `to` reads for n
 * cells measured in `from` (encoder inputs x, n × R_from): the `to` block of
 * the cells' unit-norm samples (posterior means, normalised as in training),
 * z (n × d). emb is scratch of n × K·d floats. */
int clue_model_cross_block(const clue_model *m, clue_work *w, int from, int to, const real *x,
                           int64_t n, float *emb, real *z, clue_err *err);

#endif
