/* silhouette.c — distance sums by group over a ring of ranks, and silhouette
 * widths (see silhouette.h). */
#include "clue/silhouette.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SIL_TILE_ROWS 256
#define SIL_TILE_COLS 512

/* A block of rows as it travels: x (float), ids, scopes, groups. */
typedef struct block {
  int64_t n;
  float *x;
  int64_t *id;
  int32_t *scope, *group;
} block;

static size_t block_bytes(int64_t n, int64_t dim) {
  return (size_t)n * ((size_t)dim * sizeof(float) + sizeof(int64_t) + 2 * sizeof(int32_t));
}

/* Views of a packed buffer of n rows. */
static block block_at(char *buf, int64_t n, int64_t dim) {
  block b = {.n = n};
  b.x = (float *)buf;
  b.id = (int64_t *)(buf + (size_t)n * dim * sizeof(float));
  b.scope = (int32_t *)((char *)b.id + (size_t)n * sizeof(int64_t));
  b.group = b.scope + n;
  return b;
}

static void block_pack(char *buf, const sil_points *p) {
  block b = block_at(buf, p->n, p->dim);
  memcpy(b.x, p->x, (size_t)p->n * p->dim * sizeof(float));
  memcpy(b.id, p->id, (size_t)p->n * sizeof(int64_t));
  for (int64_t i = 0; i < p->n; i++) b.scope[i] = p->scope ? p->scope[i] : 0;
  memcpy(b.group, p->group, (size_t)p->n * sizeof(int32_t));
}

/* Workspace of the tiles. */
typedef struct tiles {
  double *q, *qn;   /* this rank's rows (n × dim) as float64, their squared norms */
  double *r, *rn;   /* the visiting block's (up to nmax) */
  double *g;        /* (SIL_TILE_ROWS × SIL_TILE_COLS) inner products */
} tiles;

/* Adds the distances between this rank's rows and block v to sums. */
static void scan_block(const sil_points *p, const block *v, tiles *t, double *sums) {
  int64_t d = p->dim, G = p->n_groups;
  for (int64_t j = 0; j < v->n; j++) {
    double s = 0;
    for (int64_t c = 0; c < d; c++) {
      t->r[j * d + c] = v->x[j * d + c];
      s += t->r[j * d + c] * t->r[j * d + c];
    }
    t->rn[j] = s;
  }
  for (int64_t i0 = 0; i0 < p->n; i0 += SIL_TILE_ROWS)
    for (int64_t j0 = 0; j0 < v->n; j0 += SIL_TILE_COLS) {
      int64_t ni = p->n - i0 < SIL_TILE_ROWS ? p->n - i0 : SIL_TILE_ROWS;
      int64_t nj = v->n - j0 < SIL_TILE_COLS ? v->n - j0 : SIL_TILE_COLS;
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)ni, (int)nj, (int)d, 1.0,
                  t->q + i0 * d, (int)d, t->r + j0 * d, (int)d, 0.0, t->g, (int)nj);
      for (int64_t i = 0; i < ni; i++) {
        int64_t gi = i0 + i;
        int32_t si = p->scope ? p->scope[gi] : 0;
        if (p->group[gi] < 0) continue;
        double *row = sums + gi * G;
        for (int64_t j = 0; j < nj; j++) {
          int64_t gj = j0 + j;
          int32_t q = v->group[gj];
          if (q < 0 || v->scope[gj] != si || v->id[gj] == p->id[gi]) continue;
          double d2 = t->qn[gi] + t->rn[gj] - 2 * t->g[i * nj + j];
          row[q] += d2 > 0 ? sqrt(d2) : 0;
        }
      }
    }
}

int sil_distance_sums(const sil_points *p, const clue_comm *comm, double *sums, int64_t *counts,
                      clue_err *err) {
  int P = comm->size, S = p->n_scopes > 0 ? p->n_scopes : 1, G = p->n_groups;
  int64_t d = p->dim, nmax = p->n;
  clue_comm_max_int64(comm, &nmax, 1);
  int64_t *all_n = clue_malloc((size_t)P * sizeof *all_n, err);
  size_t cap = block_bytes(nmax, d);
  char *cur = clue_malloc(cap + 1, err), *next = clue_malloc(cap + 1, err);
  tiles t = {0};
  t.q = clue_malloc((size_t)(p->n * d + 1) * sizeof(double), err);
  t.qn = clue_malloc((size_t)(p->n + 1) * sizeof(double), err);
  t.r = clue_malloc((size_t)(nmax * d + 1) * sizeof(double), err);
  t.rn = clue_malloc((size_t)(nmax + 1) * sizeof(double), err);
  t.g = clue_malloc((size_t)SIL_TILE_ROWS * SIL_TILE_COLS * sizeof(double), err);
  int rc = all_n && cur && next && t.q && t.qn && t.r && t.rn && t.g ? CLUE_OK : CLUE_ENOMEM;
  if (rc == CLUE_OK && cap > INT32_MAX)
    rc = clue_fail(err, CLUE_EINVAL, "%lld rows of %lld values on one rank: too many for one "
                   "message (use more ranks)", (long long)nmax, (long long)d);
  if ((rc = clue_comm_agree(comm, rc, err))) goto done;
  MPI_Allgather(&p->n, 1, MPI_INT64_T, all_n, 1, MPI_INT64_T, comm->comm);
  memset(sums, 0, (size_t)p->n * G * sizeof *sums);
  memset(counts, 0, (size_t)S * G * sizeof *counts);
  for (int64_t i = 0; i < p->n; i++) {
    double s = 0;
    for (int64_t c = 0; c < d; c++) {
      t.q[i * d + c] = p->x[i * d + c];
      s += t.q[i * d + c] * t.q[i * d + c];
    }
    t.qn[i] = s;
    if (p->group[i] >= 0) counts[(int64_t)(p->scope ? p->scope[i] : 0) * G + p->group[i]]++;
  }
  clue_comm_sum_int64(comm, counts, (size_t)S * G);
  block_pack(cur, p);
  int left = (comm->rank + P - 1) % P, right = (comm->rank + 1) % P;
  for (int step = 0; step < P; step++) {
    int b = (comm->rank + step) % P, nb = (b + 1) % P;
    block v = block_at(cur, all_n[b], d);
    scan_block(p, &v, &t, sums);
    if (step == P - 1) break;
    MPI_Sendrecv(cur, (int)block_bytes(all_n[b], d), MPI_BYTE, left, 11, next,
                 (int)block_bytes(all_n[nb], d), MPI_BYTE, right, 11, comm->comm,
                 MPI_STATUS_IGNORE);
    char *tmp = cur;
    cur = next;
    next = tmp;
  }
done:
  free(all_n), free(cur), free(next);
  free(t.q), free(t.qn), free(t.r), free(t.rn), free(t.g);
  return rc;
}

void sil_widths(const sil_points *p, const double *sums, const int64_t *counts, double *s) {
  int G = p->n_groups;
  for (int64_t i = 0; i < p->n; i++) {
    s[i] = NAN;
    int a = p->group[i];
    if (a < 0) continue;
    const int64_t *cnt = counts + (int64_t)(p->scope ? p->scope[i] : 0) * G;
    int present = 0;
    for (int q = 0; q < G; q++) present += cnt[q] > 0;
    if (present < 2) continue;
    if (cnt[a] < 2) {
      s[i] = 0;
      continue;
    }
    double own = sums[i * G + a] / (double)(cnt[a] - 1), other = INFINITY;
    for (int q = 0; q < G; q++)
      if (q != a && cnt[q] > 0 && sums[i * G + q] / (double)cnt[q] < other)
        other = sums[i * G + q] / (double)cnt[q];
    double m = own > other ? own : other;
    s[i] = m > 0 ? (other - own) / m : 0;
  }
}
