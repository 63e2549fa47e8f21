/* arena.h — all parameters of a network in one allocation, with named views;
 * gradients (and optimiser state) in buffers of the same layout, so that an
 * allreduce or a checkpoint is one contiguous operation.
 *
 * Use: register every tensor with clue_arena_add (recording the returned index),
 * then clue_arena_alloc once, then get pointers with clue_arena_w / clue_arena_g. */
#ifndef CLUE_ARENA_H
#define CLUE_ARENA_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/error.h"
#include "clue/real.h"

#define CLUE_TENSOR_NAME_MAX 96

typedef struct clue_tensor {
  char name[CLUE_TENSOR_NAME_MAX]; /* e.g. "enc.rna.adt.l0.weight" */
  int64_t offset;                  /* into w / g */
  int64_t rows, cols;              /* shape (vectors: rows = n, cols = 1) */
} clue_tensor;

typedef struct clue_arena {
  int64_t n;      /* total values */
  real *w;        /* (n) parameter values */
  real *g;        /* (n) gradients: the arena's own, or borrowed (g_borrowed) */
  bool g_borrowed; /* g belongs to someone else (clue_arena_use_grad) */
  bool w_borrowed; /* w belongs to someone else (clue_arena_use_weights) */
  int n_tensors;
  int cap;
  clue_tensor *t; /* (n_tensors) */
} clue_arena;

/* Registers a rows × cols tensor; returns its index (≥ 0) or a negative code.
 * Must come before clue_arena_alloc. Names must be unique. */
int clue_arena_add(clue_arena *a, const char *name, int64_t rows, int64_t cols,
                   clue_err *err);

/* Allocates w and g (zeroed) for every registered tensor. */
int clue_arena_alloc(clue_arena *a, clue_err *err);

/* Frees the buffers and the tensor table (the struct itself is the caller's). */
void clue_arena_release(clue_arena *a);

/* Moves the gradients into g (a->n values owned by the caller, who keeps it alive
 * while the arena uses it), copying the current ones; g = NULL gives the arena a
 * buffer of its own again. On failure nothing changes. */
int clue_arena_use_grad(clue_arena *a, real *g, clue_err *err);

/* The same for the parameter values w. */
int clue_arena_use_weights(clue_arena *a, real *w, clue_err *err);

/* Takes w (a->n values owned by the caller, kept alive while the arena uses it)
 * as the parameter values, WITHOUT copying: w must hold them already (another
 * process sharing w put them there). Frees the arena's own buffer. */
void clue_arena_adopt_weights(clue_arena *a, real *w);

/* Values / gradients of tensor i. */
static inline real *clue_arena_w(const clue_arena *a, int i) { return a->w + a->t[i].offset; }
static inline real *clue_arena_g(const clue_arena *a, int i) { return a->g + a->t[i].offset; }

/* Number of values of tensor i. */
static inline int64_t clue_arena_size(const clue_arena *a, int i) {
  return a->t[i].rows * a->t[i].cols;
}

/* Sets every gradient to zero. */
void clue_arena_zero_grad(clue_arena *a);

/* Index of the tensor called name, or -1. */
int clue_arena_find(const clue_arena *a, const char *name);

/* The first tensor of `a` whose entries in vals (an arena-shaped buffer of a->n
 * values: a->w, a->g, optimiser state, a snapshot) hold a NaN, an infinity or a
 * value beyond ±max_abs (HUGE_VAL: non-finite values only); -1 when there is
 * none. *at (may be NULL) gets the entry's offset within that tensor. One fast
 * pass when all is well (src/nn/arena_finite.c). */
int clue_arena_find_nonfinite(const clue_arena *a, const real *vals, double max_abs,
                              int64_t *at);

/* The same over the entries [b, e) of vals only (a rank's slice). */
int clue_arena_find_nonfinite_range(const clue_arena *a, const real *vals, double max_abs,
                                    int64_t b, int64_t e, int64_t *at);

#endif
