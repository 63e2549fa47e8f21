/* metrics.c — FOSCTTM, partner recall and the matching score (see metrics.h). */
#include "clue/metrics.h"

#include <math.h>
#include <stdlib.h>

double metrics_foscttm(const int64_t *closer, int64_t n_local, int64_t n_total,
                       const clue_comm *comm) {
  int64_t s = 0;
  for (int64_t i = 0; i < n_local; i++) s += closer[i];
  clue_comm_sum_int64(comm, &s, 1);
  if (n_total <= 0) return NAN;
  return (double)s / ((double)n_total * (double)n_total);
}

double metrics_recall_at(const int64_t *closer, int64_t n_local, int64_t n_total, int k,
                         const clue_comm *comm) {
  int64_t s = 0;
  for (int64_t i = 0; i < n_local; i++) s += closer[i] < k;
  clue_comm_sum_int64(comm, &s, 1);
  if (n_total <= 0) return NAN;
  return (double)s / (double)n_total;
}

int metrics_paired_compute(const knn_points *a, const knn_points *b, const clue_comm *comm,
                           metrics_paired *out, clue_err *err) {
  knn_opts o = {.pair_counts = true};
  knn_result *r = NULL;
  int rc = knn_scan(a, b, &o, comm, &r, err);
  if (rc) return rc;
  int64_t n = a->n_total;
  out->n = n;
  out->foscttm_ab = metrics_foscttm(r->row_closer, r->n_rows, n, comm);
  out->foscttm_ba = metrics_foscttm(r->col_closer, r->n_cols, n, comm);
  out->foscttm = 0.5 * (out->foscttm_ab + out->foscttm_ba);
  out->top1_ab = metrics_recall_at(r->row_closer, r->n_rows, n, 1, comm);
  out->top5_ab = metrics_recall_at(r->row_closer, r->n_rows, n, 5, comm);
  out->top1_ba = metrics_recall_at(r->col_closer, r->n_cols, n, 1, comm);
  out->top5_ba = metrics_recall_at(r->col_closer, r->n_cols, n, 5, comm);
  out->stats = r->stats;
  knn_result_free(r);
  return CLUE_OK;
}

double metrics_match_row(const clue_csr *m, int64_t row, int64_t col) {
  double total = 0, hit = 0;
  for (int64_t p = m->indptr[row]; p < m->indptr[row + 1]; p++) {
    double v = m->data[p] > 0 ? m->data[p] : 0;
    total += v;
    if (m->indices[p] == col) hit += v;
  }
  return total > 0 ? hit / total : 0;
}

int metrics_match_score(const clue_csr *rows, const int64_t *partner, const clue_comm *comm,
                        double *score, clue_err *err) {
  int rc = CLUE_OK;
  double *v = clue_malloc((size_t)rows->n_rows * sizeof *v, err);
  if (!v) rc = CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < rows->n_rows; i++) {
    if (partner[i] < 0 || partner[i] >= rows->n_cols)
      rc = clue_fail(err, CLUE_EINVAL,
                     "matching score: partner column %lld of row %lld is outside [0, %lld)",
                     (long long)partner[i], (long long)i, (long long)rows->n_cols);
    else
      v[i] = metrics_match_row(rows, i, partner[i]);
  }
  int n_local = (int)rows->n_rows;
  int *counts = NULL, *displ = NULL;
  double *all = NULL;
  int64_t total = rows->n_rows;
  clue_comm_sum_int64(comm, &total, 1);
  if (rc == CLUE_OK && total == 0)
    rc = clue_fail(err, CLUE_EINVAL, "matching score: no cells to score");
  if (rc == CLUE_OK && comm->rank == 0) {
    counts = clue_malloc(sizeof(int) * (size_t)comm->size, err);
    displ = clue_malloc(sizeof(int) * (size_t)comm->size, err);
    all = clue_malloc(sizeof(double) * (size_t)total, err);
    if (!counts || !displ || !all) rc = CLUE_ENOMEM;
  }
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) {
    MPI_Gather(&n_local, 1, MPI_INT, counts, 1, MPI_INT, 0, comm->comm);
    if (comm->rank == 0)
      for (int p = 0, at = 0; p < comm->size; p++) {
        displ[p] = at;
        at += counts[p];
      }
    MPI_Gatherv(v, n_local, MPI_DOUBLE, all, counts, displ, MPI_DOUBLE, 0, comm->comm);
    double s = 0;
    if (comm->rank == 0) {
      for (int64_t i = 0; i < total; i++) s += all[i];
      s /= (double)total;
    }
    clue_comm_bcast(comm, &s, sizeof s, 0);
    *score = s;
  }
  free(v);
  free(counts);
  free(displ);
  free(all);
  return rc;
}
