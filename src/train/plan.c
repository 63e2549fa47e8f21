/* plan.c — train/validation split, epoch order, fillers and minibatch assembly,
 * computed from keyed permutations instead of per-cell arrays. */
#include "clue/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/rng.h"

/* Local row of cell c in modality k, or −1 when c is not this rank's. */
static int64_t local_row(const clue_dataset *d, int64_t c, int k) {
  if (c < d->local_begin || c >= d->local_end) return -1;
  return d->local_row[(c - d->local_begin) * d->n_mod + k];
}

static bool is_train(const clue_plan *p, int64_t c) {
  return (int64_t)clue_perm_forward(&p->split, (uint64_t)c) >= p->n_val;
}

/* This rank's pool of modality k and every rank's pool range. */
static int build_pool(clue_plan *p, const clue_dataset *d, int k, const clue_comm *comm,
                      clue_err *err) {
  int64_t n_local = d->local_end - d->local_begin, n = 0;
  p->local_pool[k] = clue_malloc((size_t)(n_local + 1) * sizeof(int64_t), err);
  p->pool_begin[k] = clue_calloc((size_t)comm->size + 1, sizeof(int64_t), err);
  int rc = (p->local_pool[k] && p->pool_begin[k]) ? CLUE_OK : CLUE_ENOMEM;
  if ((rc = clue_comm_agree(comm, rc, err))) return rc;
  for (int64_t c = d->local_begin; c < d->local_end; c++)
    if (local_row(d, c, k) >= 0 && is_train(p, c)) p->local_pool[k][n++] = c;
  MPI_Allgather(&n, 1, MPI_INT64_T, p->pool_begin[k] + 1, 1, MPI_INT64_T, comm->comm);
  for (int r = 0; r < comm->size; r++) p->pool_begin[k][r + 1] += p->pool_begin[k][r];
  p->n_pool[k] = p->pool_begin[k][comm->size];
  return CLUE_OK;
}

int clue_plan_new(const clue_dataset *d, int batch_size, double val_split, uint64_t seed,
                  const clue_comm *comm, clue_plan **out, clue_err *err) {
  *out = NULL;
  clue_plan *p = clue_calloc(1, sizeof *p, err);
  int rc = p ? CLUE_OK : CLUE_ENOMEM;
  if ((rc = clue_comm_agree(comm, rc, err))) {
    free(p);
    return rc;
  }
  p->n_mod = d->n_mod;
  p->B = batch_size;
  p->seed = seed;
  p->n_cells = d->n_cells;
  p->n_ranks = comm->size;
  p->rank = comm->rank;
  p->order_epoch = -1;
  int64_t n = d->n_cells;
  int64_t n_val = (int64_t)llround(val_split * (double)n);
  if (n_val > n - 1) n_val = n - 1;
  if (n_val < 0) n_val = 0;
  p->n_val = n_val;
  p->n_train = n - n_val;
  p->split = clue_perm_make((uint64_t)n, seed, CLUE_RNG_SPLIT, 0);
  p->cells = clue_malloc((size_t)batch_size * sizeof *p->cells, err);
  p->has = clue_malloc((size_t)batch_size * CLUE_K, err);
  rc = (p->cells && p->has) ? CLUE_OK : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++) rc = build_pool(p, d, k, comm, err);
  if (rc) {
    clue_plan_free(p);
    return rc;
  }
  *out = p;
  return CLUE_OK;
}

void clue_plan_free(clue_plan *p) {
  if (!p) return;
  for (int k = 0; k < CLUE_K; k++) {
    free(p->pool_begin[k]);
    free(p->local_pool[k]);
  }
  free(p->cells);
  free(p->has);
  free(p);
}

int64_t clue_plan_steps_per_epoch(const clue_plan *p) {
  return p->n_train > p->B ? p->n_train / p->B : 1;
}

int64_t clue_plan_val_batches(const clue_plan *p) {
  return (p->n_val + p->B - 1) / p->B;
}

int64_t clue_plan_train_cell(clue_plan *p, int64_t epoch, int64_t pos) {
  if (p->order_epoch != epoch) {
    p->order = clue_perm_make((uint64_t)p->n_train, p->seed, CLUE_RNG_PERMUTE, (uint64_t)epoch);
    p->order_epoch = epoch;
  }
  uint64_t u = clue_perm_forward(&p->order, (uint64_t)pos);
  return (int64_t)clue_perm_inverse(&p->split, (uint64_t)p->n_val + u);
}

int64_t clue_plan_val_cell(const clue_plan *p, int64_t pos) {
  return (int64_t)clue_perm_inverse(&p->split, (uint64_t)pos);
}

int64_t clue_plan_filler_index(const clue_plan *p, int64_t epoch, int64_t c, int k) {
  if (p->n_pool[k] == 0) return -1;
  clue_rng r = clue_rng_stream(p->seed, CLUE_RNG_FILLER, (uint64_t)epoch,
                               (uint64_t)c * CLUE_K + (uint64_t)k);
  return (int64_t)clue_rng_below(&r, (uint64_t)p->n_pool[k]);
}

/* The cell at global pool index j of modality k if this rank holds it, else −1. */
static int64_t local_filler(const clue_plan *p, int k, int64_t j) {
  const int64_t *b = p->pool_begin[k];
  if (j < 0 || j < b[p->rank] || j >= b[p->rank + 1]) return -1;
  return p->local_pool[k][j - b[p->rank]];
}

/* Cells of the minibatch and, agreed over ranks, which modalities each has
 * (only the rank holding a cell knows). */
static int gather_cells(clue_plan *p, const clue_dataset *d, int64_t epoch, int64_t step,
                        int validation, const clue_comm *comm) {
  int64_t n = (validation ? p->n_val : p->n_train) - step * p->B;
  if (n > p->B) n = p->B;
  int K = p->n_mod;
  for (int64_t i = 0; i < n; i++) {
    int64_t pos = step * p->B + i;
    int64_t c = validation ? clue_plan_val_cell(p, pos) : clue_plan_train_cell(p, epoch, pos);
    p->cells[i] = c;
    for (int k = 0; k < K; k++) p->has[i * K + k] = local_row(d, c, k) >= 0;
  }
  if (comm->size > 1)
    MPI_Allreduce(MPI_IN_PLACE, p->has, (int)(n * K), MPI_UNSIGNED_CHAR, MPI_MAX, comm->comm);
  return (int)n;
}

int clue_plan_fill(clue_plan *p, const clue_dataset *d, const clue_inputs *in,
                   int64_t epoch, int64_t step, int validation, const clue_comm *comm,
                   clue_minibatch *mb) {
  int K = p->n_mod, B = gather_cells(p, d, epoch, step, validation, comm);
  mb->B = B;
  memset(mb->n_obs, 0, sizeof mb->n_obs);
  memset(mb->n_pair, 0, sizeof mb->n_pair);
  for (int k = 0; k < K; k++) mb->mod[k].n = 0;
  mb->n_joint = 0;
  for (int i = 0; i < B; i++) {
    int64_t c = p->cells[i];
    const unsigned char *has = p->has + (int64_t)i * K;
    for (int k = 0; k < K; k++) mb->n_obs[k] += has[k];
    for (int a = 0; a < K; a++)
      for (int b = 0; b < K; b++) mb->n_pair[a][b] += has[a] && has[b];
    int joint = c >= d->local_begin && c < d->local_end;
    int j = mb->n_joint;
    if (joint) {
      mb->joint_pos[j] = i;
      mb->joint_batch[j] = d->local_batch[c - d->local_begin];
      mb->n_joint++;
    }
    for (int k = 0; k < K; k++) {
      int64_t src = has[k] ? c : local_filler(p, k, clue_plan_filler_index(p, epoch, c, k));
      if (joint) mb->joint_row[j * CLUE_K + k] = -1;
      int64_t row = src >= 0 ? local_row(d, src, k) : -1;
      if (row < 0) continue;
      clue_mod_rows *r = &mb->mod[k];
      int q = r->n++;
      r->pos[q] = i;
      r->trow[q] = row;
      r->batch[q] = d->local_batch[src - d->local_begin];
      r->target = in->target[k];
      int R = in->enc_in[k];
      for (int c2 = 0; c2 < R; c2++) r->enc_in[(int64_t)q * R + c2] = (real)in->enc[k][row * R + c2];
      if (joint && has[k]) mb->joint_row[j * CLUE_K + k] = q;
    }
  }
  return B;
}
