/* refcells.h — reference cells kept in a checkpoint: cells of the run measured
 * in two or more modalities (at most train.reference_cells, a seeded draw), each
 * with its embedding from every modality it was measured in, its encoder inputs
 * and its measured decoder targets. `clue predict` blends the model's (calibrated) prediction
 * with the mean measured profile of a cell's nearest reference cells in two
 * spaces of its own modality: the joint embedding, and the encoder's input (the
 * modality's fixed PCA/LSI representation). The blend's weights are fitted per
 * ordered pair at the end of training (clue_train_blend of train.h).
 *
 * Embeddings are the posterior means of clue_model_embed scaled to unit norm
 * (nearest = largest cosine). Targets are the rows of clue_prep_decode_target:
 * counts (nb), ones (bernoulli), standardised values (normal); their values
 * in prediction units come from clue_refcells_add_measured. */
#ifndef CLUE_REFCELLS_H
#define CLUE_REFCELLS_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/csr.h"
#include "clue/error.h"
#include "clue/prep.h"
#include "clue/strings.h"


/* The prediction of `to` from `from` written by clue predict:
 *   (1 − w_embedding − w_input) · model + w_embedding · mean over the nearest in
 *   the embedding + w_input · mean over the nearest in the input,
 * the weights ≥ 0 with a sum ≤ 1, fitted by least squares over every value of
 * n_cells bridge cells (validation cells when `validation`), each cell left
 * out of its own neighbours and of the calibration lines (calib.h:
 * clue_calib_apply_left_out), at k = CLUE_BLEND_NEIGHBOURS. n_cells = 0:
 * not fitted; clue predict then uses w_embedding = 0.5, w_input = 0. */
typedef struct clue_blend {
  double w_embedding, w_input;
  int64_t n_cells;
  bool validation;
} clue_blend;

/* The neighbours per space that the blend is fitted with (clue predict's
 * default --neighbours). */
#define CLUE_BLEND_NEIGHBOURS 15

typedef struct clue_refcells {
  int n_mod;
  int64_t n;                 /* cells */
  int dim;                   /* embedding width (K·d) */
  clue_strings *names;       /* (n) cell names */
  uint8_t *present;          /* (n × n_mod) 1 where the cell was measured in modality k */
  float *emb[CLUE_MAX_MOD];  /* (n × dim) embedding from modality k alone; zero rows
                                where absent */
  clue_csr *target[CLUE_MAX_MOD]; /* (n × F_k) decoder targets; empty rows where absent */
  int in_dim[CLUE_MAX_MOD];  /* R_k, the width of modality k's encoder input */
  float *input[CLUE_MAX_MOD];/* (n × R_k) encoder inputs; zero rows where absent; NULL in
                                checkpoints older than the blend (then w_input is 0) */
  clue_blend blend[CLUE_MAX_MOD][CLUE_MAX_MOD]; /* [from][to] */
} clue_refcells;

/* The neighbour spaces of clue_refcells_mean. */
typedef enum clue_refspace {
  CLUE_REF_EMBEDDING, /* the joint embedding from `from` (cosine) */
  CLUE_REF_INPUT      /* the encoder input of `from` (Euclidean) */
} clue_refspace;

void clue_refcells_free(clue_refcells *r);

/* Not collective. acc (F) += w × the measured values (calib.h) of row `row` of
 * the decoder target t of a modality with preprocessing p; touches only the
 * nonzeros for nb and bernoulli. */
void clue_refcells_add_measured(const clue_prep *p, const clue_csr *t, int64_t row, double w,
                                float *acc);

/* Rows of x (n × dim) scaled to unit norm into out (which may be x); zero rows
 * stay zero. The embeddings of reference cells and of queries go through it. */
void clue_unit_rows(const float *x, int64_t n, int dim, float *out);

/* Not collective. For n query cells of modality `from` with points q in space
 * s (EMBEDDING: n × dim posterior means, any norm; INPUT: n × R_from encoder
 * inputs): out (n × F_to) = the mean measured profile of `to` (prediction
 * units) of the k reference cells measured in both that are nearest to each;
 * exclude (n, or NULL): a reference index that is not a neighbour of that
 * query (−1: none). *n_ref: how many reference cells were candidates (0: none,
 * out untouched). Exact neighbours (knn.h), ties by the smaller reference
 * index. Fails with CLUE_EFORMAT for INPUT when r has no inputs. */
int clue_refcells_mean(const clue_refcells *r, const clue_prep *p_to, int from, int to,
                       clue_refspace s, int k, const float *q, const int64_t *exclude,
                       int64_t n, float *out, int64_t *n_ref, clue_err *err);

/* The blend's weights minimising Σ ‖r − w₁·d₁ − w₂·d₂‖² over w ≥ 0, w₁ + w₂ ≤ 1,
 * given g = {Σd₁·d₁, Σd₁·d₂, Σd₂·d₂} and b = {Σd₁·r, Σd₂·r} (d: a neighbour
 * mean minus the model's value, r: the measured minus the model's value). A
 * direction with Σd·d = 0 gets weight 0. */
void clue_blend_solve(const double g[3], const double b[2], double *w1, double *w2);

#endif
