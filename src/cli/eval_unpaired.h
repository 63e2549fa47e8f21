/* eval_unpaired.h — `clue eval --label COL`: the measures that need no pairing
 * (unpaired.h) over the cells of every file given, each file a modality. */
#ifndef CLUE_EVAL_UNPAIRED_H
#define CLUE_EVAL_UNPAIRED_H

#include <stddef.h>

#include "clue/comm.h"
#include "clue/config.h"
#include "clue/error.h"
#include "clue/unpaired.h"

typedef struct eval_unpaired_args {
  const char *const *files;
  int n_files;              /* ≤ UNPAIRED_MAX_MODS */
  const char *key, *where, *label, *batch_key;
  int k;                    /* neighbours of the graph and the votes */
} eval_unpaired_args;

typedef struct eval_unpaired {
  unpaired_result r;
  int64_t n_cells, dim;
  int n_labels, n_batches;
  char mod[UNPAIRED_MAX_MODS][CLUE_NAME_MAX]; /* each file's short name */
  int64_t cells[UNPAIRED_MAX_MODS];
} eval_unpaired;

/* Collective. Reads the files' selected cells, labels (a missing or empty
 * label: the cell is left out of the label measures) and batches (a missing
 * batch is an error), and computes every measure. */
int eval_unpaired_run(const eval_unpaired_args *a, const clue_comm *comm, eval_unpaired *out,
                      clue_err *err);

/* Rank 0 prints the table. */
void eval_unpaired_print(const eval_unpaired_args *a, const eval_unpaired *o,
                         const clue_comm *comm);

/* Appends the JSON keys (each line "  \"key\": value,") at buf + at; returns
 * the new length. */
size_t eval_unpaired_json(const eval_unpaired_args *a, const eval_unpaired *o, char *buf,
                          size_t at, size_t size);

#endif
