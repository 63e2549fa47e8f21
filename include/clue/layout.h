/* layout.h — how the ranks of a training run share the work.
 *
 *   one node      the decoder output layers split by features and the encoders
 *                 given each to one rank, over every rank, through a window of
 *                 node-shared memory (clue_work_split_*, clue_gradsum);
 *   hybrid        several nodes with the same number of ranks (≥ 2) each: the
 *                 same within each node, for its share of the minibatch's rows,
 *                 and data parallel across the nodes: rank r of every node holds
 *                 the same slice of the layers and sums its gradients with
 *                 theirs (`across`, one rank per node);
 *   whole model   nodes of unequal sizes, or one rank per node: every rank runs
 *                 every layer on its own rows and the gradients of the whole
 *                 model are summed with MPI_Allreduce.
 *
 * Nodes are those of MPI_COMM_TYPE_SHARED, or emulated with CLUE_RANKS_PER_NODE
 * (comm.h). */
#ifndef CLUE_LAYOUT_H
#define CLUE_LAYOUT_H

#include <stdbool.h>

#include "clue/comm.h"
#include "clue/error.h"
#include "clue/gradsum.h"
#include "clue/model.h"

typedef struct clue_layout {
  clue_comm world;  /* every rank (the communicator it was made for) */
  int nodes;        /* nodes the ranks span */
  int per_node;     /* ranks on each node when all nodes have as many, else 0 */
  bool hybrid;      /* several nodes, layers split within each */
  clue_comm node;   /* the ranks that split the layers: this node's (hybrid) or all */
  clue_comm across; /* hybrid: rank node.rank of every node; else this rank alone */
  bool owns;        /* own_node and own_across are this layout's to free */
  MPI_Comm own_node, own_across;
} clue_layout;

/* Collective. The layout of comm's ranks. CLUE_EMPI when a communicator cannot
 * be made. */
int clue_layout_new(const clue_comm *comm, clue_layout *out, clue_err *err);

/* Collective. Splits w's decoder output layers (outputs) and encoders (encoders)
 * over the ranks that share them: every rank on one node, each node's ranks in
 * the hybrid layout (clue_work_set_nodes); nothing on the whole-model path. B:
 * the global batch. */
int clue_layout_split_work(const clue_layout *l, clue_work *w, const clue_model *m, int B,
                           bool outputs, bool encoders, clue_err *err);

/* Collective. Gradient sums of up to n_max values for this layout: through the
 * node's window when use_shared (and, hybrid, each slice across the nodes);
 * with MPI_Allreduce over every rank on the whole-model path, without
 * use_shared, or when no window can be made. */
int clue_layout_gradsum_new(const clue_layout *l, int64_t n_max, bool use_shared,
                            clue_gradsum **out, clue_err *err);

/* Collective. Frees the layout's communicators (a zeroed layout is allowed). */
void clue_layout_free(clue_layout *l);

/* A phrase for the first line of clue train and run.json, e.g. " (2 nodes x 2
 * ranks: ...)"; "" for one rank. outputs/encoders: whether the split of each
 * is in place. */
void clue_layout_describe(const clue_layout *l, bool outputs, bool encoders, char *buf,
                          size_t size);

#endif
