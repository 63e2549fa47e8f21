/* optim.h — optimisers over a whole clue_arena (one state buffer each, same
 * layout as the parameters, so a checkpoint saves it in one write).
 *   RMSprop (PyTorch's): v = α·v + (1 − α)·g²;  w −= lr · g / (sqrt(v) + eps)
 *   Adam: m = β1·m + (1 − β1)·g; v = β2·v + (1 − β2)·g²; bias-corrected step. */
#ifndef CLUE_OPTIM_H
#define CLUE_OPTIM_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/arena.h"
#include "clue/config.h"
#include "clue/error.h"

typedef struct clue_optim {
  clue_optimizer kind;
  double lr;
  double alpha;        /* RMSprop smoothing, 0.99 */
  double beta1, beta2; /* Adam, 0.9 / 0.999 */
  double eps;          /* 1e-8 */
  int64_t n;           /* values (the arena's n) */
  int64_t t;           /* steps taken */
  real *m;             /* (n) Adam first moment (NULL for RMSprop) */
  real *v;             /* (n) second moment */
} clue_optim;

/* State for an arena of n values, zeroed. */
int clue_optim_init(clue_optim *o, clue_optimizer kind, double lr, int64_t n,
                    clue_err *err);
void clue_optim_release(clue_optim *o);

/* One update of a->w from a->g. */
void clue_optim_step(clue_optim *o, clue_arena *a);

/* One update of a->w[b, e) from a->g[b, e), counting one step: each rank of a
 * sharded update calls it once for its slice. With b a multiple of 16 the values
 * are bitwise those of clue_optim_step over the whole arena. */
void clue_optim_step_range(clue_optim *o, clue_arena *a, int64_t b, int64_t e);

/* One step over several disjoint ranges [b[i], e[i]) of the arena (the step
 * count advances once): bitwise clue_optim_step there. With clear_grad, the
 * gradients of those ranges are zero afterwards (zeroed as they are read, so
 * that the next step need not zero them in a pass of its own). */
void clue_optim_step_ranges(clue_optim *o, clue_arena *a, const int64_t *b, const int64_t *e,
                            int n_ranges, bool clear_grad);

#endif
