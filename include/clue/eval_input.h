/* eval_input.h — the embeddings that `clue eval` and `clue match` compare: two
 * AnnData objects (an .h5ad file, or "FILE.h5mu:MOD" for a modality of an .h5mu)
 * with a dense obsm array each; cells selected by an obs column value, paired by
 * obs names, labelled by batch, and loaded row-distributed (each rank reads a
 * contiguous slice of the file and the rows travel to the rank that owns them,
 * so no rank holds more than its block plus its slice). */
#ifndef CLUE_EVAL_INPUT_H
#define CLUE_EVAL_INPUT_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/comm.h"
#include "clue/config.h"
#include "clue/error.h"
#include "clue/h5ad.h"
#include "clue/strings.h"

/* One input AnnData object. */
typedef struct eval_side {
  char path[CLUE_PATH_MAX];  /* as given on the command line */
  char file[CLUE_PATH_MAX];  /* the file part (without ":MOD") */
  char label[CLUE_NAME_MAX]; /* short name: MOD, or the file name without .h5ad */
  h5ad_file *f;
  clue_strings *names;       /* (n_obs) obs names */
  int64_t n_obs;
  int64_t dim;               /* columns of obsm/<key> */
} eval_side;

/* Collective. Opens `path`, reads its obs names and checks that obsm/<key> exists
 * (listing the obsm keys that do when it does not) and is a dense numeric array;
 * fills s. On failure s holds nothing to free. */
int eval_side_open(const char *path, const char *key, const clue_comm *comm, eval_side *s,
                   clue_err *err);

/* Collective. Closes the object (a zeroed s is allowed). */
void eval_side_close(eval_side *s);

/* A --where COLUMN=VALUE selection. */
typedef struct eval_where {
  char column[256];
  char value[256];
} eval_where;

/* Parses "COLUMN=VALUE" (both non-empty). */
int eval_where_parse(const char *text, eval_where *w, clue_err *err);

/* Not collective. *mask (n_obs bytes, malloc'd) marks the rows whose obs column
 * w->column reads w->value (as text: category, number or string). When the file
 * has no such column, *mask is NULL and *found false (nothing is excluded). */
int eval_where_mask(eval_side *s, const eval_where *w, uint8_t **mask, bool *found,
                    clue_err *err);

/* Not collective. The rows of s with mask set (mask NULL = every row), ascending. */
int eval_rows_selected(const eval_side *s, const uint8_t *mask, int64_t **rows, int64_t *n,
                       clue_err *err);

/* Not collective. Pairs cells by obs name: for each selected row of a, in a's
 * order, whose name is a selected row of b, rows_a[i] and rows_b[i] are the two
 * rows of cell i. Fails when names repeat within a file, or when no cell pairs
 * (the message shows a name from each file). */
int eval_pair_by_names(const eval_side *a, const uint8_t *mask_a, const eval_side *b,
                       const uint8_t *mask_b, int64_t **rows_a, int64_t **rows_b,
                       int64_t *n, clue_err *err);

/* Collective. Loads the rows rows[0..n) (distinct file rows, any order) of
 * obsm/<key>: this rank receives its block [*begin, *begin + *count) of the list
 * (the equal split of rowdist.h) as a (*count × s->dim) array. Fails naming the
 * file and the cell when a value is not finite. */
int eval_load_rows(eval_side *s, const char *key, const int64_t *rows, int64_t n,
                   const clue_comm *comm, float **out, int64_t *begin, int64_t *count,
                   clue_err *err);

/* Not collective. Batch codes shared by both sides: the obs column `key` of each
 * file, read as text labels at rows rows_a[0..na) and rows_b[0..nb), mapped to
 * codes 0, 1, … in order of first appearance (a first). Fails naming the file
 * and the cell when a label is missing, or when a file lacks the column. */
int eval_batch_codes(eval_side *a, const int64_t *rows_a, int64_t na, eval_side *b,
                     const int64_t *rows_b, int64_t nb, const char *key, int32_t **codes_a,
                     int32_t **codes_b, int *n_batches, clue_err *err);

/* Not collective. Fails (naming `what`, e.g. "--json") when `path` exists and is
 * the file of a or of b (same device and inode): outputs never overwrite inputs. */
int eval_check_output(const char *path, const char *what, const eval_side *a,
                      const eval_side *b, clue_err *err);

#endif
