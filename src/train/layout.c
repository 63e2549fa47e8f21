/* layout.c — how the ranks of a training run share the work (see layout.h). */
#include "clue/layout.h"

#include <stdio.h>

static clue_comm view(MPI_Comm c) {
  clue_comm v = {.comm = c};
  MPI_Comm_rank(c, &v.rank);
  MPI_Comm_size(c, &v.size);
  return v;
}

int clue_layout_new(const clue_comm *comm, clue_layout *l, clue_err *err) {
  *l = (clue_layout){.world = *comm, .nodes = 1, .per_node = comm->size, .node = *comm,
                     .across = clue_comm_self(), .own_node = MPI_COMM_NULL,
                     .own_across = MPI_COMM_NULL};
  if (comm->size == 1) return CLUE_OK;
  MPI_Comm node;
  clue_comm_node(comm, &node);
  clue_comm nv = view(node);
  int leader = nv.rank == 0, size[2] = {nv.size, -nv.size};
  MPI_Allreduce(MPI_IN_PLACE, &leader, 1, MPI_INT, MPI_SUM, comm->comm);
  MPI_Allreduce(MPI_IN_PLACE, size, 2, MPI_INT, MPI_MAX, comm->comm);
  l->nodes = leader;
  l->per_node = size[0] == -size[1] ? size[0] : 0;
  if (l->nodes == 1 || l->per_node < 2) { /* one node, or the whole-model path */
    MPI_Comm_free(&node);
    return CLUE_OK;
  }
  MPI_Comm across;
  if (MPI_Comm_split(comm->comm, nv.rank, comm->rank, &across) != MPI_SUCCESS) {
    MPI_Comm_free(&node);
    return clue_fail(err, CLUE_EMPI, "cannot make the communicators of %d nodes", l->nodes);
  }
  l->hybrid = l->owns = true;
  l->own_node = node, l->own_across = across;
  l->node = nv;
  l->across = view(across);
  return CLUE_OK;
}

int clue_layout_split_work(const clue_layout *l, clue_work *w, const clue_model *m, int B,
                           bool outputs, bool encoders, clue_err *err) {
  if (l->nodes > 1 && !l->hybrid) return CLUE_OK; /* the whole-model path */
  int rc = outputs ? clue_work_split_outputs(w, m, &l->node, B, err) : CLUE_OK;
  if (!rc && encoders) rc = clue_work_split_encoders(w, m, &l->node, B, err);
  if (!rc && l->hybrid) clue_work_set_nodes(w, l->nodes, &l->across);
  return rc;
}

int clue_layout_gradsum_new(const clue_layout *l, int64_t n_max, bool use_shared,
                            clue_gradsum **out, clue_err *err) {
  bool within = l->nodes == 1 || l->hybrid;
  int rc = clue_gradsum_new(l->hybrid ? &l->node : &l->world, n_max, use_shared && within, out,
                            err);
  if (rc || !l->hybrid || clue_gradsum_set_nodes(*out, &l->world, &l->across)) return rc;
  clue_gradsum_free(*out); /* no window: every sum over every rank with MPI */
  *out = NULL;
  return clue_gradsum_new(&l->world, n_max, false, out, err);
}

void clue_layout_free(clue_layout *l) {
  if (!l->owns) return;
  MPI_Comm_free(&l->own_node);
  MPI_Comm_free(&l->own_across);
  l->owns = false;
}

void clue_layout_describe(const clue_layout *l, bool outputs, bool encoders, char *buf,
                          size_t size) {
  const char *emu = clue_ranks_per_node_emulated() ? ", emulated by CLUE_RANKS_PER_NODE" : "";
  char split[128];
  snprintf(split, sizeof split, "%s%s%s", outputs ? "decoder output layers split" : "",
           outputs && encoders ? ", " : "", encoders ? "each encoder on one rank" : "");
  if (l->node.size == 1 && l->nodes == 1) {
    buf[0] = '\0';
  } else if (l->hybrid) {
    snprintf(buf, size, " (%d nodes x %d ranks%s: %s within each node; across nodes each rank "
                        "sums its slice of the gradients with the same rank of the others)",
             l->nodes, l->per_node, emu, split[0] ? split : "every layer on every rank");
  } else if (l->nodes > 1) {
    snprintf(buf, size, " (%d nodes%s%s: every rank runs every layer, whole-model gradient "
                        "sums with MPI_Allreduce)", l->nodes,
             l->per_node ? "" : " of unequal sizes", emu);
  } else if (split[0]) {
    snprintf(buf, size, " (one node%s: %s)", emu, split);
  } else {
    buf[0] = '\0';
  }
}
