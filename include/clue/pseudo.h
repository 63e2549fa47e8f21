/* pseudo.h — partners for the training cells that miss a modality
 * (train.pseudo), so that unimodal cells join the cross-reconstruction and
 * cosine terms that otherwise only paired cells feed.
 *
 * For every pair of modalities (a, b), the training cells observed in a but not
 * in b (set A) are embedded from a, and, by method:
 *   mnn     the cells observed in b but not in a (set B) are embedded from b; a
 *           cell of A and a cell of B are partners when each is among the other's
 *           k nearest neighbours (cosine distance: L2-normalised embeddings), the
 *           nearest such for each cell: A's cells get a partner in b, B's in a.
 *   bridge  the training cells observed in both are embedded from a; an A cell's
 *           partner in b is the nearest of them (the bridge as a dictionary).
 * The embeddings are the model's current posterior means (eval mode), so a
 * pairing is redone as training goes (clue_pseudo_refresh). The plan then uses a
 * cell's partner in place of a random filler, as if the cell were observed in
 * that modality, in a share of its minibatches (clue_plan_set_pseudo).
 *
 * Cells are global dataset indices; each rank keeps the partners of its own
 * cells only. The search is the exact all-pairs scan of knn.h, split over the
 * ranks (O(|A| · |B| · K·d / P) time, O((|A| + |B|) / P · K·d) memory). */
#ifndef CLUE_PSEUDO_H
#define CLUE_PSEUDO_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/config.h"
#include "clue/dataset.h"
#include "clue/error.h"
#include "clue/model.h"
#include "clue/plan.h"

typedef struct clue_pseudo {
  int n_mod;
  int64_t local_begin, n_local; /* this rank's cells */
  int64_t *partner;  /* (n_local × n_mod): the cell giving modality k to local cell
                        c, at (c − local_begin) · n_mod + k; −1: none */
  int64_t n_pairs;   /* (cell, modality) partners over all ranks */
  int64_t n_wanting; /* (cell, modality) training entries missing, over all ranks */
  int64_t step;      /* training step the partners were found at (−1: none yet) */
} clue_pseudo;

/* Partners for the cells of d (none yet). */
int clue_pseudo_new(const clue_dataset *d, clue_pseudo **out, clue_err *err);
void clue_pseudo_free(clue_pseudo *ps);

/* Collective. Finds the partners anew with the model's current weights (eval
 * mode; w: any work of the model, used for embedding only) for the training
 * cells of plan p, by cfg->method (not off) and cfg->k, and records `step`. */
int clue_pseudo_refresh(clue_pseudo *ps, const clue_pseudo_config *cfg, const clue_model *m,
                        clue_work *w, const clue_dataset *d, const clue_inputs *in,
                        const clue_plan *p, int64_t step, const clue_comm *comm,
                        clue_err *err);

/* The chance that a partnered cell is paired with its partner in a minibatch
 * at training step `step`: 0 before the first pairing, then cfg->weight ramped
 * linearly over cfg->ramp steps from that pairing (first_step: its step). */
double clue_pseudo_weight(const clue_pseudo_config *cfg, int64_t first_step, int64_t step);

/* Collective. Every rank's partners as (cell, modality, partner) triples in
 * ascending cell order, on rank 0 (*triples malloc'd, *n of them; NULL, 0 on
 * the other ranks). */
int clue_pseudo_gather(const clue_pseudo *ps, const clue_comm *comm, int64_t **triples,
                       int64_t *n, clue_err *err);

/* Not collective. Replaces this rank's partners by those of `triples` (n
 * triples as clue_pseudo_gather gives) that concern its cells; checks every
 * triple (cell and partner in [0, n_cells), modality in range) and fails naming
 * `what` otherwise. n_pairs becomes n. */
int clue_pseudo_set(clue_pseudo *ps, const int64_t *triples, int64_t n, int64_t n_cells,
                    int64_t step, const char *what, clue_err *err);

#endif
