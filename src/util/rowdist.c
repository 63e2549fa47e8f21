/* rowdist.c — all-to-all exchange of rows into contiguous output blocks. */
#include "clue/rowdist.h"

#include <stdlib.h>
#include <string.h>

void clue_block_range(int64_t n_total, int size, int rank, int64_t *begin, int64_t *end) {
  int64_t base = n_total / size, extra = n_total % size;
  *begin = rank * base + (rank < extra ? rank : extra);
  *end = *begin + base + (rank < extra ? 1 : 0);
}

int clue_block_owner(int64_t pos, int64_t n_total, int size) {
  int64_t base = n_total / size, extra = n_total % size;
  int64_t cut = extra * (base + 1);
  if (pos < cut) return (int)(pos / (base + 1));
  return (int)(extra + (pos - cut) / (base > 0 ? base : 1));
}

int clue_rows_redistribute(const clue_comm *comm, const float *rows, const int64_t *dest,
                           int64_t n_local, int w, int64_t n_total, float **out,
                           int64_t *out_begin, int64_t *out_n, clue_err *err) {
  int P = comm->size, rc = CLUE_OK;
  int64_t begin, end;
  clue_block_range(n_total, P, comm->rank, &begin, &end);
  *out_begin = begin;
  *out_n = end - begin;
  int *scount = calloc((size_t)P, sizeof *scount), *rcount = calloc((size_t)P, sizeof *rcount);
  int *sdisp = calloc((size_t)P, sizeof *sdisp), *rdisp = calloc((size_t)P, sizeof *rdisp);
  /* destinations and values travel in two exchanges with the same counts */
  int64_t *sidx = malloc((size_t)(n_local + 1) * sizeof *sidx);
  float *sval = malloc((size_t)(n_local * w + 1) * sizeof *sval);
  int64_t *ridx = malloc((size_t)(*out_n + 1) * sizeof *ridx);
  float *rval = malloc((size_t)(*out_n * w + 1) * sizeof *rval);
  *out = malloc((size_t)(*out_n * w + 1) * sizeof **out);
  if (!scount || !rcount || !sdisp || !rdisp || !sidx || !sval || !ridx || !rval ||
      !*out)
    rc = clue_fail(err, CLUE_ENOMEM, "out of memory redistributing %lld rows",
                   (long long)n_local);
  rc = clue_comm_agree(comm, rc, err);
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < n_local; i++) scount[clue_block_owner(dest[i], n_total, P)]++;
    for (int r = 1; r < P; r++) sdisp[r] = sdisp[r - 1] + scount[r - 1];
    int *fill = calloc((size_t)P, sizeof *fill);
    for (int64_t i = 0; i < n_local; i++) {
      int r = clue_block_owner(dest[i], n_total, P);
      int64_t at = sdisp[r] + fill[r]++;
      sidx[at] = dest[i];
      memcpy(sval + at * w, rows + i * w, (size_t)w * sizeof(float));
    }
    free(fill);
    MPI_Alltoall(scount, 1, MPI_INT, rcount, 1, MPI_INT, comm->comm);
    for (int r = 1; r < P; r++) rdisp[r] = rdisp[r - 1] + rcount[r - 1];
    MPI_Alltoallv(sidx, scount, sdisp, MPI_INT64_T, ridx, rcount, rdisp, MPI_INT64_T,
                  comm->comm);
    MPI_Datatype row_type;
    MPI_Type_contiguous(w, MPI_FLOAT, &row_type);
    MPI_Type_commit(&row_type);
    MPI_Alltoallv(sval, scount, sdisp, row_type, rval, rcount, rdisp, row_type, comm->comm);
    MPI_Type_free(&row_type);
    for (int64_t i = 0; i < *out_n; i++)
      memcpy(*out + (ridx[i] - begin) * w, rval + i * w, (size_t)w * sizeof(float));
  }
  free(scount);
  free(rcount);
  free(sdisp);
  free(rdisp);
  free(sidx);
  free(sval);
  free(ridx);
  free(rval);
  if (rc) {
    free(*out);
    *out = NULL;
  }
  return rc;
}
