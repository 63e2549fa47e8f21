/* refcells.h — reference cells kept in a checkpoint: cells of the run measured
 * in two or more modalities (at most train.reference_cells, a seeded draw), each
 * with its embedding from every modality it was measured in and its measured
 * decoder targets. `clue predict` averages the measured profiles of a cell's
 * nearest reference cells in the embedding of its own modality with the
 * model's (calibrated) prediction.
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


typedef struct clue_refcells {
  int n_mod;
  int64_t n;                 /* cells */
  int dim;                   /* embedding width (K·d) */
  clue_strings *names;       /* (n) cell names */
  uint8_t *present;          /* (n × n_mod) 1 where the cell was measured in modality k */
  float *emb[CLUE_MAX_MOD];  /* (n × dim) embedding from modality k alone; zero rows
                                where absent */
  clue_csr *target[CLUE_MAX_MOD]; /* (n × F_k) decoder targets; empty rows where absent */
} clue_refcells;

void clue_refcells_free(clue_refcells *r);

/* Not collective. acc (F) += w × the measured values (calib.h) of row `row` of
 * the decoder target t of a modality with preprocessing p; touches only the
 * nonzeros for nb and bernoulli. */
void clue_refcells_add_measured(const clue_prep *p, const clue_csr *t, int64_t row, double w,
                                float *acc);

/* Rows of x (n × dim) scaled to unit norm into out (which may be x); zero rows
 * stay zero. The embeddings of reference cells and of queries go through it. */
void clue_unit_rows(const float *x, int64_t n, int dim, float *out);

/* Not collective. For n query cells with embeddings q (n × dim, posterior means,
 * any norm) from modality `from`: out (n × F_to) = the mean measured profile of
 * `to` (prediction units) of the k reference cells measured in both that are
 * nearest in the embedding from `from`; *n_ref: how many reference cells were
 * candidates (0: none, out untouched). Exact neighbours (knn.h), ties by the
 * smaller reference index. */
int clue_refcells_mean(const clue_refcells *r, const clue_prep *p_to, int from, int to, int k,
                       const float *q, int64_t n, float *out, int64_t *n_ref, clue_err *err);

#endif
