/* report_embed.h — the "Embedding map" section of `clue report`: the cells of
 * every .h5ad file of a folder (each a modality of one embedding), a fixed
 * random subsample above a size, their joint UMAP (umap.h) drawn coloured by
 * modality, label and batch, and the confusion matrix of leave-modality-out
 * label transfer. */
#ifndef CLUE_REPORT_EMBED_H
#define CLUE_REPORT_EMBED_H

#include <stdint.h>

#include "clue/comm.h"
#include "clue/error.h"
#include "clue/strbuf.h"

typedef struct report_embed_args {
  const char *dir;        /* folder of .h5ad files */
  const char *key;        /* obsm key (X_clue) */
  const char *label;      /* obs column of cell labels, or NULL: "cell_type" if present */
  const char *batch_key;  /* obs column of batches, or NULL: none */
  int64_t max_cells;      /* above: a fixed random subsample of this many */
  uint64_t seed;          /* of the subsample and the UMAP */
  int neighbors;          /* UMAP neighbours */
  int k_vote;             /* neighbours of the label votes */
  int map_px;             /* size of each map (px) */
  bool progress;
} report_embed_args;

/* Collective. Appends the section to html and its numbers to js (rank 0; each
 * JSON member ends with ","), and to *shown the number of cells drawn. Files
 * that cannot be read (no obsm key, …) are named in the section and left out;
 * fails only when memory or MPI fail. */
int report_embed_section(const report_embed_args *a, const clue_comm *comm, clue_strbuf *html,
                         clue_strbuf *js, int64_t *shown, clue_err *err);

#endif
