/* refcells_build.c — at the end of `clue train`: the reference cells of the
 * checkpoint (refcells.h), gathered in global cell order on rank 0. */
#include <stdlib.h>
#include <string.h>

#include "clue/refcells.h"
#include "clue/rng.h"
#include "clue/train.h"

/* Salt of the keyed draw of the reference cells (clue_keyed_draw). */
#define REFCELLS_SALT 0x72656663656c6cULL

/* Modalities local cell c was measured in. */
static int measured_in(const clue_dataset *d, int64_t c) {
  int n = 0;
  for (int k = 0; k < d->n_mod; k++) n += d->local_row[(c - d->local_begin) * d->n_mod + k] >= 0;
  return n;
}

/* A byte buffer filled front to back (its size known beforehand). */
typedef struct packer {
  char *p;
} packer;

static void put(packer *b, const void *x, size_t n) {
  if (n) memcpy(b->p, x, n);
  b->p += n;
}

static void take(const char **p, void *x, size_t n) {
  if (n) memcpy(x, *p, n);
  *p += n;
}

/* This rank's drawn cells (their local indices `cells`) packed for the others:
 * n; each name (length, bytes with the NUL); presence (n × K); per modality the unit-norm
 * embeddings (n × dim), the encoder inputs (n × R_k) and the target rows (nnz per row,
 * indices, data). */
static int pack(const clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                const int64_t *cells, int64_t n, char **out, int64_t *bytes, clue_err *err) {
  const clue_model *m = ck->model;
  int K = d->n_mod, dim = m->spec.n_mod * m->spec.latent_dim;
  int64_t size = (int64_t)sizeof(int64_t) + n * K;
  for (int64_t i = 0; i < n; i++)
    size += (int64_t)sizeof(int64_t) + (int64_t)strlen(d->local_names->s[cells[i] - d->local_begin]) + 1;
  for (int k = 0; k < K; k++) {
    size += n * (dim + m->spec.enc_in[k]) * (int64_t)sizeof(float) + n * (int64_t)sizeof(int64_t);
    for (int64_t i = 0; i < n; i++) {
      int64_t r = d->local_row[(cells[i] - d->local_begin) * K + k];
      if (r >= 0) size += (in->target[k]->indptr[r + 1] - in->target[k]->indptr[r]) * 8;
    }
  }
  int R_max = 1;
  for (int k = 0; k < K; k++) R_max = m->spec.enc_in[k] > R_max ? m->spec.enc_in[k] : R_max;
  char *buf = clue_malloc((size_t)size + 1, err);
  float *emb = clue_malloc((size_t)(n * dim + 1) * sizeof *emb, err);
  real *x = clue_malloc((size_t)(n * R_max + 1) * sizeof *x, err);
  float *row = clue_calloc((size_t)dim + 1, sizeof *row, err);
  float *vin = clue_malloc((size_t)R_max * sizeof *vin, err);
  clue_work *w = NULL;
  int rc = buf && emb && x && row && vin ? clue_work_new(m, 256, &w, err) : CLUE_ENOMEM;
  packer b = {buf};
  if (rc == CLUE_OK) put(&b, &n, sizeof n);
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++) {
    const char *s = d->local_names->s[cells[i] - d->local_begin];
    int64_t len = (int64_t)strlen(s) + 1; /* with its NUL */
    put(&b, &len, sizeof len);
    put(&b, s, (size_t)len);
  }
  for (int64_t i = 0; rc == CLUE_OK && i < n; i++)
    for (int k = 0; k < K; k++) {
      uint8_t has = d->local_row[(cells[i] - d->local_begin) * K + k] >= 0;
      put(&b, &has, 1);
    }
  for (int k = 0; rc == CLUE_OK && k < K; k++) {
    int R = m->spec.enc_in[k];
    int64_t nk = 0;
    for (int64_t i = 0; i < n; i++) { /* the rows measured in k, together */
      int64_t r = d->local_row[(cells[i] - d->local_begin) * K + k];
      if (r >= 0) memcpy(x + nk++ * R, in->enc[k] + r * R, (size_t)R * sizeof *x);
    }
    rc = clue_model_embed(m, w, k, x, nk, emb, err);
    if (rc == CLUE_OK) clue_unit_rows(emb, nk, dim, emb);
    for (int64_t i = 0, j = 0; rc == CLUE_OK && i < n; i++) {
      bool has = d->local_row[(cells[i] - d->local_begin) * K + k] >= 0;
      put(&b, has ? emb + j++ * dim : row, (size_t)dim * sizeof *row); /* row: zeros */
    }
    for (int64_t i = 0, j = 0; rc == CLUE_OK && i < n; i++) {
      bool has = d->local_row[(cells[i] - d->local_begin) * K + k] >= 0;
      for (int64_t r = 0; r < R; r++) vin[r] = has ? (float)x[j * R + r] : 0;
      j += has;
      put(&b, vin, (size_t)R * sizeof *vin);
    }
    const clue_csr *t = in->target[k];
    for (int64_t i = 0; i < n; i++) {
      int64_t r = d->local_row[(cells[i] - d->local_begin) * K + k];
      int64_t nnz = r >= 0 ? t->indptr[r + 1] - t->indptr[r] : 0;
      put(&b, &nnz, sizeof nnz);
    }
    for (int64_t i = 0; i < n; i++) {
      int64_t r = d->local_row[(cells[i] - d->local_begin) * K + k];
      if (r < 0) continue;
      int64_t o = t->indptr[r], nnz = t->indptr[r + 1] - o;
      put(&b, t->indices + o, (size_t)nnz * sizeof *t->indices);
      put(&b, t->data + o, (size_t)nnz * sizeof *t->data);
    }
  }
  clue_work_free(w);
  free(emb), free(x), free(row), free(vin);
  if (rc) {
    free(buf);
    return rc;
  }
  *out = buf, *bytes = size;
  return CLUE_OK;
}

/* Cells and stored values per modality in one rank's packed block at p. */
static void block_totals(const char *p, const clue_model_spec *s, int64_t *n, int64_t *nnz) {
  int K = s->n_mod, dim = s->n_mod * s->latent_dim;
  int64_t nr, len;
  take(&p, &nr, sizeof nr);
  for (int64_t i = 0; i < nr; i++) take(&p, &len, sizeof len), p += len;
  p += nr * K;
  for (int k = 0; k < K; k++) {
    p += nr * (dim + s->enc_in[k]) * (int64_t)sizeof(float);
    int64_t row_nnz, sum = 0;
    for (int64_t i = 0; i < nr; i++) take(&p, &row_nnz, sizeof row_nnz), sum += row_nnz;
    nnz[k] += sum;
    p += sum * 8;
  }
  *n += nr;
}

/* One rank's packed block at p into ref from cell c0 on; names[c0…] point
 * into the block (each name is packed with its NUL). Returns the cells read. */
static int64_t block_read(const char *p, clue_refcells *ref, int64_t c0, const char **names) {
  int K = ref->n_mod, dim = ref->dim;
  int64_t nr, len;
  take(&p, &nr, sizeof nr);
  for (int64_t i = 0; i < nr; i++) take(&p, &len, sizeof len), names[c0 + i] = p, p += len;
  take(&p, ref->present + c0 * K, (size_t)(nr * K));
  for (int k = 0; k < K; k++) {
    clue_csr *t = ref->target[k];
    take(&p, ref->emb[k] + c0 * dim, (size_t)(nr * dim) * sizeof(float));
    take(&p, ref->input[k] + c0 * ref->in_dim[k], (size_t)(nr * ref->in_dim[k]) * sizeof(float));
    for (int64_t i = 0; i < nr; i++) {
      int64_t row_nnz;
      take(&p, &row_nnz, sizeof row_nnz);
      t->indptr[c0 + i + 1] = t->indptr[c0 + i] + row_nnz;
    }
    for (int64_t i = 0; i < nr; i++) {
      int64_t b = t->indptr[c0 + i], e = t->indptr[c0 + i + 1];
      take(&p, t->indices + b, (size_t)(e - b) * sizeof *t->indices);
      take(&p, t->data + b, (size_t)(e - b) * sizeof *t->data);
    }
  }
  return nr;
}

/* Every rank's packed block (in rank order, so in global cell order) into a
 * new clue_refcells. */
static int unpack(const clue_ckpt *ck, const char *data, const int64_t *bytes, int P,
                  clue_refcells **out, clue_err *err) {
  const clue_model_spec *s = &ck->model->spec;
  int K = s->n_mod, dim = s->n_mod * s->latent_dim;
  int64_t n = 0, nnz[CLUE_MAX_MOD] = {0}, at = 0;
  for (int r = 0; r < P; at += bytes[r++]) block_totals(data + at, s, &n, nnz);
  clue_refcells *ref = clue_calloc(1, sizeof *ref, err);
  const char **names = clue_calloc((size_t)n + 1, sizeof *names, err);
  int rc = ref && names ? CLUE_OK : CLUE_ENOMEM;
  if (!rc) ref->n_mod = K, ref->n = n, ref->dim = dim;
  if (!rc && !(ref->present = clue_malloc((size_t)(n * K + 1), err))) rc = CLUE_ENOMEM;
  for (int k = 0; !rc && k < K; k++) {
    ref->in_dim[k] = s->enc_in[k];
    ref->emb[k] = clue_malloc((size_t)(n * dim + 1) * sizeof(float), err);
    ref->input[k] = clue_malloc((size_t)(n * s->enc_in[k] + 1) * sizeof(float), err);
    ref->target[k] = clue_csr_new(n, s->n_feat[k], nnz[k], err);
    if (!ref->emb[k] || !ref->input[k] || !ref->target[k]) rc = CLUE_ENOMEM;
  }
  at = 0;
  for (int64_t r = 0, c0 = 0; !rc && r < P; at += bytes[r++])
    c0 += block_read(data + at, ref, c0, names);
  if (!rc && !(ref->names = clue_strings_from(names, n, err))) rc = CLUE_ENOMEM;
  free(names);
  if (rc) {
    clue_refcells_free(ref);
    return rc;
  }
  *out = ref;
  return CLUE_OK;
}

/* own (the local cells): the reference index of each drawn cell (`cells`, n
 * of them, ascending), −1 elsewhere; the cells before this rank's come from the
 * blocks of the lower ranks in `data`. */
static void own_indices(const clue_ckpt *ck, const clue_dataset *d, const char *data,
                        const int64_t *bytes, int rank, const int64_t *cells, int64_t n,
                        int64_t *own) {
  int64_t before = 0, nnz[CLUE_MAX_MOD] = {0}, at = 0;
  for (int r = 0; r < rank; at += bytes[r++]) block_totals(data + at, &ck->model->spec, &before, nnz);
  for (int64_t c = d->local_begin; c < d->local_end; c++) own[c - d->local_begin] = -1;
  for (int64_t i = 0; i < n; i++) own[cells[i] - d->local_begin] = before + i;
}

int clue_train_refcells(clue_ckpt *ck, const clue_dataset *d, const clue_inputs *in,
                        uint64_t seed, int64_t max_cells, const clue_comm *comm,
                        int64_t **own, clue_err *err) {
  clue_refcells_free(ck->refcells);
  ck->refcells = NULL;
  if (own) *own = NULL;
  int64_t total = 0, n = 0, local = d->local_end - d->local_begin;
  for (int64_t c = d->local_begin; c < d->local_end; c++) total += measured_in(d, c) >= 2;
  clue_comm_sum_int64(comm, &total, 1);
  if (total == 0) return CLUE_OK;
  int64_t *cells = clue_malloc((size_t)(local + 1) * sizeof *cells, err);
  int rc = cells ? CLUE_OK : CLUE_ENOMEM;
  for (int64_t c = d->local_begin; rc == CLUE_OK && c < d->local_end; c++)
    if (measured_in(d, c) >= 2 && clue_keyed_draw(seed, REFCELLS_SALT, c, total, max_cells))
      cells[n++] = c;
  char *mine = NULL;
  int64_t bytes = 0;
  if (rc == CLUE_OK) rc = pack(ck, d, in, cells, n, &mine, &bytes, err);
  rc = clue_comm_agree(comm, rc, err);
  int P = comm->size;
  char **send = clue_calloc((size_t)P, sizeof *send, err);
  int64_t *send_bytes = clue_calloc((size_t)P, sizeof *send_bytes, err);
  int64_t *recv_bytes = clue_calloc((size_t)P, sizeof *recv_bytes, err);
  int64_t *mine_idx = own ? clue_malloc((size_t)(local + 1) * sizeof *mine_idx, err) : NULL;
  if (rc == CLUE_OK && (!send || !send_bytes || !recv_bytes || (own && !mine_idx))) rc = CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  void *recv = NULL;
  if (rc == CLUE_OK) {
    for (int r = 0; r < P; r++) send[r] = mine, send_bytes[r] = bytes; /* to every rank */
    rc = clue_comm_exchange(comm, send, send_bytes, &recv, recv_bytes, err);
  }
  if (rc == CLUE_OK) rc = unpack(ck, recv, recv_bytes, P, &ck->refcells, err);
  if (rc == CLUE_OK && own) own_indices(ck, d, recv, recv_bytes, comm->rank, cells, n, mine_idx);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK && own) *own = mine_idx, mine_idx = NULL;
  free(recv), free(mine), free(send), free(send_bytes), free(recv_bytes), free(cells), free(mine_idx);
  return rc;
}
