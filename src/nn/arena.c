/* arena.c — one allocation for all parameters, with named views. */
#include "clue/arena.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tensors start on 16-value boundaries so that each one is aligned for SIMD. */
#define ARENA_ALIGN 16

int clue_arena_add(clue_arena *a, const char *name, int64_t rows, int64_t cols,
                   clue_err *err) {
  if (a->w) return clue_fail(err, CLUE_EINVAL, "arena: %s added after allocation", name);
  if (clue_arena_find(a, name) >= 0)
    return clue_fail(err, CLUE_EINVAL, "arena: duplicate tensor name %s", name);
  if (a->n_tensors == a->cap) {
    int cap = a->cap ? 2 * a->cap : 32;
    clue_tensor *t = realloc(a->t, (size_t)cap * sizeof *t);
    if (!t) return clue_fail(err, CLUE_ENOMEM, "arena: out of memory");
    a->t = t;
    a->cap = cap;
  }
  clue_tensor *t = &a->t[a->n_tensors];
  memset(t, 0, sizeof *t);
  snprintf(t->name, sizeof t->name, "%s", name);
  t->rows = rows;
  t->cols = cols;
  t->offset = a->n;
  int64_t size = rows * cols;
  a->n += (size + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN;
  return a->n_tensors++;
}

int clue_arena_alloc(clue_arena *a, clue_err *err) {
  size_t bytes = (size_t)(a->n > 0 ? a->n : 1) * sizeof(real);
  bytes = (bytes + 63) / 64 * 64;
  a->w = aligned_alloc(64, bytes);
  a->g = aligned_alloc(64, bytes);
  if (!a->w || !a->g) {
    free(a->w);
    free(a->g);
    a->w = a->g = NULL;
    return clue_fail(err, CLUE_ENOMEM, "arena: out of memory for %lld parameters",
                     (long long)a->n);
  }
  memset(a->w, 0, bytes);
  memset(a->g, 0, bytes);
  return CLUE_OK;
}

/* Moves *buf (n values) into to, or into a buffer of its own (to = NULL). */
static int move_values(real **buf, bool *borrowed, real *to, int64_t n, const char *what,
                       clue_err *err) {
  size_t bytes = (size_t)n * sizeof(real);
  real *own = NULL;
  if (!to) {
    if (!*borrowed) return CLUE_OK;
    own = aligned_alloc(64, (bytes + 64) / 64 * 64);
    if (!own)
      return clue_fail(err, CLUE_ENOMEM, "arena: out of memory for %lld %s", (long long)n,
                       what);
    to = own;
  }
  if (to == *buf) return CLUE_OK;
  if (*buf) memcpy(to, *buf, bytes);
  if (!*borrowed) free(*buf);
  *buf = to;
  *borrowed = own == NULL;
  return CLUE_OK;
}

int clue_arena_use_grad(clue_arena *a, real *g, clue_err *err) {
  return move_values(&a->g, &a->g_borrowed, g, a->n, "gradients", err);
}

int clue_arena_use_weights(clue_arena *a, real *w, clue_err *err) {
  return move_values(&a->w, &a->w_borrowed, w, a->n, "weights", err);
}

void clue_arena_adopt_weights(clue_arena *a, real *w) {
  if (a->w == w) return;
  if (!a->w_borrowed) free(a->w);
  a->w = w;
  a->w_borrowed = true;
}

void clue_arena_release(clue_arena *a) {
  if (!a->w_borrowed) free(a->w);
  if (!a->g_borrowed) free(a->g);
  free(a->t);
  memset(a, 0, sizeof *a);
}

void clue_arena_zero_grad(clue_arena *a) {
  memset(a->g, 0, (size_t)a->n * sizeof(real));
}

int clue_arena_find(const clue_arena *a, const char *name) {
  for (int i = 0; i < a->n_tensors; i++)
    if (!strcmp(a->t[i].name, name)) return i;
  return -1;
}
