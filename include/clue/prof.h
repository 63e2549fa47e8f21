/* prof.h — cheap exclusive-time accounting of a training step, for benchmarks.
 *
 * A fixed set of named sections (GEMM, likelihood, BatchNorm, ...). Code marks a
 * section with clue_prof_push(id) ... clue_prof_pop(); time is charged to the
 * innermost open section only (a BatchNorm reduction inside BatchNorm counts as
 * a collective, not as BatchNorm), and time outside every section is charged to
 * CLUE_PROF_OTHER, so the sections always add up to the wall time between
 * clue_prof_reset and clue_prof_read.
 *
 * The accounting is one process-wide record (a profiler is process-wide by
 * nature; ranks are processes, so each rank has its own). It is off unless a
 * benchmark calls clue_prof_enable(true): then a push/pop costs one load and a
 * predicted branch. It is not thread-safe: call it from the thread that runs the
 * step (OpenBLAS's own threads never call it). */
#ifndef CLUE_PROF_H
#define CLUE_PROF_H

#include <stdbool.h>
#include <stdint.h>

/* X(name, label) */
#define CLUE_PROF_TABLE(X)                                           \
  X(CLUE_PROF_OTHER, "other")          /* outside every section */   \
  X(CLUE_PROF_GEMM, "gemm")            /* OpenBLAS sgemm/dgemm */    \
  X(CLUE_PROF_LIK, "likelihood")       /* NB/Bernoulli/Normal rows */ \
  X(CLUE_PROF_LIK_TERMS, "lik_terms")  /* per-(feature, batch) terms */ \
  X(CLUE_PROF_BN, "batchnorm")         /* BatchNorm element-wise */  \
  X(CLUE_PROF_ACT, "act_dropout")      /* LeakyReLU, dropout, copies in stacks */ \
  X(CLUE_PROF_BIAS, "bias")            /* bias broadcast / bias gradient */ \
  X(CLUE_PROF_LIBSIZE, "libsize")      /* sparse library-size layer */ \
  X(CLUE_PROF_OPTIM, "optimizer")      /* RMSprop / Adam */          \
  X(CLUE_PROF_ALLREDUCE, "allreduce")  /* gradient allreduce */      \
  X(CLUE_PROF_COLL, "small_coll")      /* BatchNorm / loss reductions */ \
  X(CLUE_PROF_XCHG, "exchange")        /* output-layer rows between ranks */ \
  X(CLUE_PROF_IO, "io_fill")           /* minibatch assembly */

typedef enum {
#define CLUE_PROF_ENUM(name, label) name,
  CLUE_PROF_TABLE(CLUE_PROF_ENUM)
#undef CLUE_PROF_ENUM
  CLUE_PROF_N
} clue_prof_id;

#define CLUE_PROF_DEPTH 16

typedef struct clue_prof {
  bool on;
  int depth;                        /* open sections */
  int overflow;                     /* pushes beyond CLUE_PROF_DEPTH */
  clue_prof_id stack[CLUE_PROF_DEPTH];
  double mark;                      /* time of the last push/pop (s) */
  double seconds[CLUE_PROF_N];      /* exclusive time per section */
  int64_t calls[CLUE_PROF_N];       /* pushes per section */
  double gemm_flops;                /* 2·m·n·k of every GEMM */
  double allreduce_bytes;           /* bytes of every gradient allreduce (per rank) */
  double coll_bytes;                /* bytes of every small collective */
} clue_prof;

/* The process-wide record. */
extern clue_prof clue_prof_state;

/* Turns the accounting on or off (off by default); resets it. */
void clue_prof_enable(bool on);

/* Zeroes every accumulator and starts charging CLUE_PROF_OTHER now. */
void clue_prof_reset(void);

/* Closes the time up to now into the accumulators and copies them to out. */
void clue_prof_read(clue_prof *out);

/* Label of a section ("gemm"). */
const char *clue_prof_label(clue_prof_id id);

/* Seconds since an arbitrary origin (monotonic clock). */
double clue_prof_now(void);

void clue_prof_push_slow(clue_prof_id id);
void clue_prof_pop_slow(void);

/* Opens section id (charges the time so far to the enclosing section). */
static inline void clue_prof_push(clue_prof_id id) {
  if (clue_prof_state.on) clue_prof_push_slow(id);
}

/* Closes the innermost section. */
static inline void clue_prof_pop(void) {
  if (clue_prof_state.on) clue_prof_pop_slow();
}

/* Counts the flops of a GEMM (m × n × k). */
static inline void clue_prof_gemm(int64_t m, int64_t n, int64_t k) {
  if (clue_prof_state.on) clue_prof_state.gemm_flops += 2.0 * (double)m * (double)n * (double)k;
}

/* Counts the bytes of a gradient allreduce (big = true) or a small collective. */
static inline void clue_prof_bytes(bool big, double bytes) {
  if (!clue_prof_state.on) return;
  if (big)
    clue_prof_state.allreduce_bytes += bytes;
  else
    clue_prof_state.coll_bytes += bytes;
}

#endif
