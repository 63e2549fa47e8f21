/* plan.c — train/validation split, epoch order, fillers and minibatch assembly. */
#include "clue/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/rng.h"

/* Fisher–Yates shuffle of a[0..n) from one stream. */
static void shuffle(int64_t *a, int64_t n, clue_rng *r) {
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)clue_rng_below(r, (uint64_t)i + 1);
    int64_t t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

int clue_plan_new(const clue_dataset *d, int batch_size, double val_split, uint64_t seed,
                  clue_plan **out, clue_err *err) {
  *out = NULL;
  clue_plan *p = clue_calloc(1, sizeof *p, err);
  if (!p) return CLUE_ENOMEM;
  p->n_mod = d->n_mod;
  p->B = batch_size;
  p->seed = seed;
  p->n_cells = d->n_cells;
  p->order_epoch = -1;
  int64_t n = d->n_cells;
  int64_t n_val = (int64_t)llround(val_split * (double)n);
  if (n_val > n - 1) n_val = n - 1;
  if (n_val < 0) n_val = 0;
  int64_t *perm = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *perm, err);
  p->train = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *p->train, err);
  p->val = clue_malloc((size_t)(n_val > 0 ? n_val : 1) * sizeof *p->val, err);
  p->order = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *p->order, err);
  if (!perm || !p->train || !p->val || !p->order) goto fail;
  for (int64_t i = 0; i < n; i++) perm[i] = i;
  clue_rng r = clue_rng_stream(seed, CLUE_RNG_SPLIT, 0, 0);
  shuffle(perm, n, &r);
  p->n_val = n_val;
  p->n_train = n - n_val;
  memcpy(p->val, perm, (size_t)n_val * sizeof *perm);
  memcpy(p->train, perm + n_val, (size_t)p->n_train * sizeof *perm);
  qsort(p->val, (size_t)n_val, sizeof *p->val, cmp_i64);
  qsort(p->train, (size_t)p->n_train, sizeof *p->train, cmp_i64);
  free(perm);
  perm = NULL;
  for (int k = 0; k < d->n_mod; k++) {
    p->pool[k] = clue_malloc((size_t)(p->n_train > 0 ? p->n_train : 1) * sizeof(int64_t), err);
    if (!p->pool[k]) goto fail;
    for (int64_t i = 0; i < p->n_train; i++) {
      int64_t c = p->train[i];
      if (d->file_row[c * d->n_mod + k] >= 0) p->pool[k][p->n_pool[k]++] = c;
    }
  }
  *out = p;
  return CLUE_OK;
fail:
  free(perm);
  clue_plan_free(p);
  return CLUE_ENOMEM;
}

void clue_plan_free(clue_plan *p) {
  if (!p) return;
  free(p->train);
  free(p->val);
  free(p->order);
  for (int k = 0; k < CLUE_K; k++) free(p->pool[k]);
  free(p);
}

int64_t clue_plan_steps_per_epoch(const clue_plan *p) {
  return p->n_train > p->B ? p->n_train / p->B : 1;
}

int64_t clue_plan_val_batches(const clue_plan *p) {
  return (p->n_val + p->B - 1) / p->B;
}

int64_t clue_plan_filler(const clue_plan *p, int64_t epoch, int64_t c, int k) {
  if (p->n_pool[k] == 0) return -1;
  clue_rng r = clue_rng_stream(p->seed, CLUE_RNG_FILLER, (uint64_t)epoch,
                               (uint64_t)c * CLUE_K + (uint64_t)k);
  return p->pool[k][clue_rng_below(&r, (uint64_t)p->n_pool[k])];
}

static void draw_order(clue_plan *p, int64_t epoch) {
  if (p->order_epoch == epoch) return;
  memcpy(p->order, p->train, (size_t)p->n_train * sizeof *p->order);
  clue_rng r = clue_rng_stream(p->seed, CLUE_RNG_PERMUTE, (uint64_t)epoch, 0);
  shuffle(p->order, p->n_train, &r);
  p->order_epoch = epoch;
}

/* Local row of cell c in modality k, or −1 when c is not this rank's. */
static int64_t local_row(const clue_dataset *d, int64_t c, int k) {
  if (c < d->local_begin || c >= d->local_end) return -1;
  return d->local_row[(c - d->local_begin) * d->n_mod + k];
}

int clue_plan_fill(clue_plan *p, const clue_dataset *d, const clue_inputs *in,
                   int64_t epoch, int64_t step, int validation, clue_minibatch *mb) {
  const int64_t *cells;
  int64_t n;
  if (validation) {
    cells = p->val + step * p->B;
    n = p->n_val - step * p->B;
  } else {
    draw_order(p, epoch);
    cells = p->order + step * p->B;
    n = p->n_train - step * p->B;
  }
  if (n > p->B) n = p->B;
  int K = p->n_mod, B = (int)n;
  mb->B = B;
  memset(mb->n_obs, 0, sizeof mb->n_obs);
  memset(mb->n_pair, 0, sizeof mb->n_pair);
  for (int k = 0; k < K; k++) mb->mod[k].n = 0;
  mb->n_joint = 0;
  for (int i = 0; i < B; i++) {
    int64_t c = cells[i];
    int has[CLUE_K];
    for (int k = 0; k < K; k++) {
      has[k] = d->file_row[c * K + k] >= 0;
      mb->n_obs[k] += has[k];
    }
    for (int a = 0; a < K; a++)
      for (int b = 0; b < K; b++) mb->n_pair[a][b] += has[a] && has[b];
    int joint = c >= d->local_begin && c < d->local_end;
    int j = mb->n_joint;
    if (joint) {
      mb->joint_pos[j] = i;
      mb->joint_batch[j] = d->batch[c];
      mb->n_joint++;
    }
    for (int k = 0; k < K; k++) {
      int64_t src = has[k] ? c : clue_plan_filler(p, epoch, c, k);
      if (joint) mb->joint_row[j * CLUE_K + k] = -1;
      int64_t row = src >= 0 ? local_row(d, src, k) : -1;
      if (row < 0) continue;
      clue_mod_rows *r = &mb->mod[k];
      int q = r->n++;
      r->pos[q] = i;
      r->trow[q] = row;
      r->batch[q] = d->batch[src];
      r->target = in->target[k];
      int R = in->enc_in[k];
      for (int c2 = 0; c2 < R; c2++) r->enc_in[(int64_t)q * R + c2] = (real)in->enc[k][row * R + c2];
      if (joint && has[k]) mb->joint_row[j * CLUE_K + k] = q;
    }
  }
  return B;
}
