/* plan.c — train/validation split, epoch order, fillers and minibatch assembly,
 * computed from keyed permutations instead of per-cell arrays. */
#include "clue/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/rng.h"
#include "clue/rowdist.h"

/* Local row of cell c in modality k, or −1 when c is not this rank's. */
static int64_t local_row(const clue_dataset *d, int64_t c, int k) {
  if (c < d->local_begin || c >= d->local_end) return -1;
  return d->local_row[(c - d->local_begin) * d->n_mod + k];
}

bool clue_plan_is_train(const clue_plan *p, int64_t c) {
  return (int64_t)clue_perm_forward(&p->split, (uint64_t)c) >= p->n_val;
}

/* Whether training cell c of this rank belongs to a range (see build_range). */
typedef bool (*cell_test)(const clue_dataset *d, int64_t c, int arg);

static bool has_modality(const clue_dataset *d, int64_t c, int k) {
  return local_row(d, c, k) >= 0;
}

/* Group 0: observed in two or more modalities; group 1: the others. */
static bool in_group(const clue_dataset *d, int64_t c, int g) {
  int seen = 0;
  for (int k = 0; k < d->n_mod; k++) seen += local_row(d, c, k) >= 0;
  return (seen >= 2) == (g == 0);
}

/* Collective. This rank's training cells passing test(·, arg), ascending, in
 * *local, and every rank's range of the global list in *begin (n_ranks + 1). */
static int build_range(clue_plan *p, const clue_dataset *d, cell_test test, int arg,
                       const clue_comm *comm, int64_t **begin, int64_t **local,
                       int64_t *n_total, clue_err *err) {
  int64_t n_local = d->local_end - d->local_begin, n = 0;
  *local = clue_malloc((size_t)(n_local + 1) * sizeof(int64_t), err);
  *begin = clue_calloc((size_t)comm->size + 1, sizeof(int64_t), err);
  int rc = (*local && *begin) ? CLUE_OK : CLUE_ENOMEM;
  if ((rc = clue_comm_agree(comm, rc, err))) return rc;
  for (int64_t c = d->local_begin; c < d->local_end; c++)
    if (test(d, c, arg) && clue_plan_is_train(p, c)) (*local)[n++] = c;
  MPI_Allgather(&n, 1, MPI_INT64_T, *begin + 1, 1, MPI_INT64_T, comm->comm);
  for (int r = 0; r < comm->size; r++) (*begin)[r + 1] += (*begin)[r];
  *n_total = (*begin)[comm->size];
  return CLUE_OK;
}

/* This rank's pool of modality k and every rank's pool range. */
static int build_pool(clue_plan *p, const clue_dataset *d, int k, const clue_comm *comm,
                      clue_err *err) {
  return build_range(p, d, has_modality, k, comm, &p->pool_begin[k], &p->local_pool[k],
                     &p->n_pool[k], err);
}

/* Bytes of one packed row of modality k with nnz values: batch code, encoder
 * input, value count, then the values' columns and values. */
static int64_t row_bytes(const clue_plan *p, int k, int64_t nnz) {
  return 4 + 4 * (int64_t)p->enc_in[k] + 4 + 8 * nnz;
}

/* Collective. Buffers for the rows of one minibatch, sized by the longest row
 * of any rank: B rows per modality at most reach a rank. */
static int alloc_exchange(clue_plan *p, const clue_inputs *in, const clue_comm *comm,
                          clue_err *err) {
  int64_t longest[CLUE_K] = {0};
  for (int k = 0; k < p->n_mod; k++) {
    p->enc_in[k] = in->enc_in[k];
    const clue_csr *x = in->target[k];
    for (int64_t r = 0; r < x->n_rows; r++) {
      int64_t len = x->indptr[r + 1] - x->indptr[r];
      if (len > longest[k]) longest[k] = len;
    }
  }
  clue_comm_max_int64(comm, longest, CLUE_K);
  int64_t B = p->B, bytes = 0;
  int rc = CLUE_OK;
  for (int k = 0; k < p->n_mod; k++) {
    bytes += B * row_bytes(p, k, longest[k]);
    if (!(p->rows[k] = clue_csr_new(B, in->target[k]->n_cols, B * longest[k] + 1, err)))
      rc = CLUE_ENOMEM;
  }
  if (bytes > INT32_MAX && comm->size > 1)
    rc = clue_fail(err, CLUE_EINVAL, "a minibatch of %lld rows holds %lld bytes of counts: "
                   "more than one exchange can move (lower train.batch_size)",
                   (long long)B, (long long)bytes);
  int P = comm->size;
  p->send = clue_malloc((size_t)bytes + 1, err);
  p->recv = P > 1 ? clue_malloc((size_t)bytes + 1, err) : NULL; /* one rank: read in place */
  p->scount = clue_calloc((size_t)P, sizeof(int), err);
  p->sdisp = clue_calloc((size_t)P, sizeof(int), err);
  p->rcount = clue_calloc((size_t)P, sizeof(int), err);
  p->rdisp = clue_calloc((size_t)P, sizeof(int), err);
  p->src = clue_malloc((size_t)B * CLUE_K * sizeof *p->src, err);
  p->src_cell = clue_malloc((size_t)B * CLUE_K * sizeof *p->src_cell, err);
  p->cursor = clue_calloc((size_t)P, sizeof *p->cursor, err);
  bool have = p->send && (P == 1 || p->recv) && p->scount && p->sdisp && p->rcount &&
              p->rdisp && p->src && p->src_cell && p->cursor;
  if (!rc && !have)
    rc = CLUE_ENOMEM;
  return clue_comm_agree(comm, rc, err);
}

int clue_plan_new(const clue_dataset *d, const clue_inputs *in, int batch_size,
                  double val_split, uint64_t seed, const clue_comm *comm, clue_plan **out,
                  clue_err *err) {
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
  p->pseudo_cell = clue_malloc((size_t)batch_size * CLUE_K * sizeof *p->pseudo_cell, err);
  p->mix = clue_malloc((size_t)batch_size * (1 + 2 * CLUE_K) * sizeof *p->mix, err);
  rc = (p->cells && p->has && p->pseudo_cell && p->mix) ? CLUE_OK : CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  for (int k = 0; rc == CLUE_OK && k < d->n_mod; k++) rc = build_pool(p, d, k, comm, err);
  if (rc == CLUE_OK) rc = alloc_exchange(p, in, comm, err);
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
  for (int g = 0; g < 2; g++) {
    free(p->group_begin[g]);
    free(p->local_group[g]);
  }
  free(p->mix);
  free(p->pseudo_cell);
  free(p->cells);
  free(p->has);
  for (int k = 0; k < CLUE_K; k++) clue_csr_free(p->rows[k]);
  free(p->send);
  free(p->recv);
  free(p->scount);
  free(p->sdisp);
  free(p->rcount);
  free(p->rdisp);
  free(p->src);
  free(p->src_cell);
  free(p->cursor);
  free(p);
}

int clue_plan_mix(clue_plan *p, const clue_dataset *d, double fraction, const clue_comm *comm,
                  clue_err *err) {
  if (!(fraction > 0) || p->B < 2) return CLUE_OK;
  int rc = CLUE_OK;
  for (int g = 0; g < 2 && !rc; g++)
    rc = build_range(p, d, in_group, g, comm, &p->group_begin[g], &p->local_group[g],
                     &p->n_group[g], err);
  if (rc || p->n_group[0] == 0 || p->n_group[1] == 0) return rc;
  int64_t paired = llround(fraction * p->B);
  if (paired < 1) paired = 1;
  if (paired > p->B - 1) paired = p->B - 1;
  p->B_group[0] = (int)paired;
  p->B_group[1] = p->B - (int)paired;
  p->group_key[0] = p->group_key[1] = UINT64_MAX;
  return CLUE_OK;
}

int64_t clue_plan_steps_per_epoch(const clue_plan *p) {
  if (p->B_group[0] > 0) {
    int64_t a = p->n_group[0] / p->B_group[0], b = p->n_group[1] / p->B_group[1];
    int64_t spe = a > b ? a : b;
    return spe > 0 ? spe : 1;
  }
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

/* Position i of a mixed minibatch: its group (*g) and its index among the
 * group's positions; the B_group[0] paired positions are spread evenly. */
static int64_t mix_slot(const clue_plan *p, int64_t i, int *g) {
  int64_t before = i * p->B_group[0] / p->B, after = (i + 1) * p->B_group[0] / p->B;
  *g = after > before ? 0 : 1;
  return *g == 0 ? before : i - before;
}

/* Entry q of the sequence of group g's cells in an epoch (one keyed order of
 * the group after another): the global cell if this rank holds it, else −1. */
static int64_t group_cell(clue_plan *p, int g, int64_t epoch, int64_t q) {
  int64_t n = p->n_group[g];
  uint64_t key = ((uint64_t)epoch << 32) | (uint64_t)(q / n);
  if (p->group_key[g] != key) {
    uint32_t purpose = g == 0 ? CLUE_RNG_PERMUTE_PAIRED : CLUE_RNG_PERMUTE_UNPAIRED;
    p->group_order[g] = clue_perm_make((uint64_t)n, p->seed, purpose, key);
    p->group_key[g] = key;
  }
  int64_t j = (int64_t)clue_perm_forward(&p->group_order[g], (uint64_t)(q % n));
  const int64_t *b = p->group_begin[g];
  if (j < b[p->rank] || j >= b[p->rank + 1]) return -1;
  return p->local_group[g][j - b[p->rank]];
}

void clue_plan_set_pseudo(clue_plan *p, const int64_t *partner, double weight) {
  p->partner = partner;
  p->pseudo_w = partner ? weight : 0;
}

static bool pseudo_on(const clue_plan *p) { return p->partner && p->pseudo_w > 0; }

/* On the rank holding cell c: its partner for modality k if it takes it in this
 * minibatch, else −1. */
static int64_t draw_partner(const clue_plan *p, const clue_dataset *d, int64_t epoch,
                            int64_t step, int64_t c, int k) {
  int64_t q = p->partner[(c - d->local_begin) * d->n_mod + k];
  if (q < 0) return -1;
  clue_rng r = clue_rng_stream(p->seed, CLUE_RNG_PSEUDO, ((uint64_t)epoch << 32) | (uint64_t)step,
                               (uint64_t)c * CLUE_K + (uint64_t)k);
  return clue_rng_uniform(&r) < p->pseudo_w ? q : -1;
}

/* gather_cells for a training minibatch with mixed groups or pseudo-partners:
 * the rank holding each position's cell names it, its modalities and the
 * partners it takes, agreed in one allreduce. */
static int gather_agreed(clue_plan *p, const clue_dataset *d, int64_t epoch, int64_t step,
                         const clue_comm *comm) {
  int K = p->n_mod, B = p->B;
  bool mixed = p->B_group[0] > 0, pseudo = pseudo_on(p);
  if (!mixed) {
    int64_t left = p->n_train - step * p->B;
    B = (int)(left < B ? left : B);
  }
  int64_t *m = p->mix, *has = m + B, *partner = has + (int64_t)B * K;
  for (int i = 0; i < B; i++) {
    int64_t c;
    if (mixed) {
      int g;
      int64_t slot = mix_slot(p, i, &g);
      c = group_cell(p, g, epoch, step * p->B_group[g] + slot);
    } else {
      c = clue_plan_train_cell(p, epoch, step * p->B + i);
    }
    bool mine = c >= d->local_begin && c < d->local_end;
    m[i] = mine ? c : -1;
    for (int k = 0; k < K; k++) {
      has[i * K + k] = mine && local_row(d, c, k) >= 0;
      partner[i * K + k] = mine && pseudo && !has[i * K + k]
                               ? draw_partner(p, d, epoch, step, c, k) : -1;
    }
  }
  if (comm->size > 1)
    MPI_Allreduce(MPI_IN_PLACE, m, B * (1 + 2 * K), MPI_INT64_T, MPI_MAX, comm->comm);
  for (int i = 0; i < B; i++) {
    p->cells[i] = m[i];
    for (int k = 0; k < K; k++) {
      p->pseudo_cell[i * K + k] = partner[i * K + k];
      p->has[i * K + k] = has[i * K + k] || partner[i * K + k] >= 0;
    }
  }
  p->pseudo_live = pseudo;
  return B;
}

/* Cells of the minibatch and, agreed over ranks, which modalities each has
 * (only the rank holding a cell knows). */
static int gather_cells(clue_plan *p, const clue_dataset *d, int64_t epoch, int64_t step,
                        int validation, const clue_comm *comm) {
  p->pseudo_live = false;
  if (!validation && (p->B_group[0] > 0 || pseudo_on(p)))
    return gather_agreed(p, d, epoch, step, comm);
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

/* Which rank holds the row of each (position, modality) and, on that rank, the
 * row's cell: the cell itself when it has the modality, else its filler. */
static void find_sources(clue_plan *p, const clue_dataset *d, int64_t epoch, int B) {
  int K = p->n_mod;
  for (int i = 0; i < B; i++) {
    int64_t c = p->cells[i];
    for (int k = 0; k < K; k++) {
      int *src = &p->src[i * K + k];
      int64_t *cell = &p->src_cell[i * K + k];
      if (p->has[i * K + k]) {
        int64_t q = p->pseudo_live ? p->pseudo_cell[i * K + k] : -1;
        *cell = q >= 0 ? q : c;
        *src = clue_dataset_owner(d, *cell);
        continue;
      }
      int64_t j = clue_plan_filler_index(p, epoch, c, k);
      *src = -1;
      *cell = -1;
      if (j < 0) continue;
      *src = clue_range_owner(p->pool_begin[k], p->n_ranks, j);
      *cell = local_filler(p, k, j);
    }
  }
}

/* Packs the rows this rank holds for the positions of rank r (in position and
 * modality order) at p->send + at; returns the bytes written. */
static int64_t pack_rows(const clue_plan *p, const clue_dataset *d, const clue_inputs *in,
                         int B, int r, int64_t at) {
  int K = p->n_mod;
  int64_t b, e, start = at;
  clue_block_range(B, p->n_ranks, r, &b, &e);
  for (int64_t i = b; i < e; i++)
    for (int k = 0; k < K; k++) {
      if (p->src[i * K + k] != p->rank) continue;
      int64_t c = p->src_cell[i * K + k], row = local_row(d, c, k);
      const clue_csr *x = in->target[k];
      int32_t head[2] = {d->local_batch[c - d->local_begin],
                         (int32_t)(x->indptr[row + 1] - x->indptr[row])};
      memcpy(p->send + at, &head[0], 4);
      memcpy(p->send + at + 4, in->enc[k] + row * p->enc_in[k], 4 * (size_t)p->enc_in[k]);
      at += 4 + 4 * (int64_t)p->enc_in[k];
      memcpy(p->send + at, &head[1], 4);
      memcpy(p->send + at + 4, x->indices + x->indptr[row], 4 * (size_t)head[1]);
      memcpy(p->send + at + 4 + 4 * head[1], x->data + x->indptr[row], 4 * (size_t)head[1]);
      at += 4 + 8 * (int64_t)head[1];
    }
  return at - start;
}

/* Unpacks one row of modality k from *from into mb and the plan's row buffer. */
static int unpack_row(clue_plan *p, const char **from, int k, int pos, clue_minibatch *mb) {
  clue_mod_rows *r = &mb->mod[k];
  clue_csr *x = p->rows[k];
  int q = r->n++, R = p->enc_in[k];
  int32_t batch, nnz;
  memcpy(&batch, *from, 4);
  for (int j = 0; j < R; j++) {
    float v;
    memcpy(&v, *from + 4 + 4 * j, 4);
    r->enc_in[(int64_t)q * R + j] = (real)v;
  }
  *from += 4 + 4 * (int64_t)R;
  memcpy(&nnz, *from, 4);
  int64_t at = x->indptr[q];
  memcpy(x->indices + at, *from + 4, 4 * (size_t)nnz);
  memcpy(x->data + at, *from + 4 + 4 * nnz, 4 * (size_t)nnz);
  *from += 4 + 8 * (int64_t)nnz;
  x->indptr[q + 1] = at + nnz;
  r->pos[q] = pos;
  r->trow[q] = q;
  r->batch[q] = batch;
  r->target = x;
  return q;
}

/* Collective. Every rank sends the rows it holds to the ranks computing their
 * positions; returns where the received rows start (rdisp[r]: rank r's). */
static const char *exchange_rows(clue_plan *p, const clue_dataset *d, const clue_inputs *in,
                                 int B, const clue_comm *comm) {
  int P = p->n_ranks;
  int64_t at = 0;
  for (int r = 0; r < P; r++) {
    p->sdisp[r] = (int)at;
    p->scount[r] = (int)pack_rows(p, d, in, B, r, at);
    at += p->scount[r];
  }
  if (P == 1) { /* the rows stay where they were packed */
    p->rdisp[0] = 0;
    return p->send;
  }
  MPI_Alltoall(p->scount, 1, MPI_INT, p->rcount, 1, MPI_INT, comm->comm);
  for (int r = 0, to = 0; r < P; r++) p->rdisp[r] = to, to += p->rcount[r];
  MPI_Alltoallv(p->send, p->scount, p->sdisp, MPI_BYTE, p->recv, p->rcount, p->rdisp,
                MPI_BYTE, comm->comm);
  return p->recv;
}

int clue_plan_fill(clue_plan *p, const clue_dataset *d, const clue_inputs *in,
                   int64_t epoch, int64_t step, int validation, const clue_comm *comm,
                   clue_minibatch *mb) {
  int K = p->n_mod, B = gather_cells(p, d, epoch, step, validation, comm);
  find_sources(p, d, epoch, B);
  const char *received = exchange_rows(p, d, in, B, comm);
  mb->B = B;
  memset(mb->n_obs, 0, sizeof mb->n_obs);
  memset(mb->n_pair, 0, sizeof mb->n_pair);
  for (int k = 0; k < K; k++) {
    mb->mod[k].n = 0;
    p->rows[k]->indptr[0] = 0;
  }
  mb->n_joint = 0;
  for (int i = 0; i < B; i++) {
    const unsigned char *has = p->has + (int64_t)i * K;
    for (int k = 0; k < K; k++) mb->n_obs[k] += has[k];
    for (int a = 0; a < K; a++)
      for (int b = 0; b < K; b++) mb->n_pair[a][b] += has[a] && has[b];
  }
  int64_t b, e;
  clue_block_range(B, p->n_ranks, p->rank, &b, &e);
  for (int r = 0; r < p->n_ranks; r++) p->cursor[r] = received + p->rdisp[r];
  for (int64_t i = b; i < e; i++) {
    const unsigned char *has = p->has + i * K;
    int j = mb->n_joint++;
    mb->joint_pos[j] = (int)i;
    mb->joint_batch[j] = 0;
    bool batch_set = false;
    for (int k = 0; k < K; k++) {
      mb->joint_row[j * CLUE_K + k] = -1;
      int src = p->src[i * K + k];
      if (src < 0) continue;
      int q = unpack_row(p, &p->cursor[src], k, (int)i, mb);
      if (!has[k]) continue;
      mb->joint_row[j * CLUE_K + k] = q;
      if (!batch_set) mb->joint_batch[j] = mb->mod[k].batch[q];
      batch_set = true;
    }
  }
  return B;
}
