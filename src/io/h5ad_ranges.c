/* h5ad_ranges.c — the one collective read every rank-local matrix read goes
 * through: a union of row ranges of a 1-D or 2-D dataset, as hyperslabs.
 *
 * HDF5 1.10 builds a hyperslab union by OR-ing blocks one at a time in time
 * that grows faster than quadratically with the number of blocks (40,000
 * blocks take a minute), so the union is built by merging halves with
 * H5Scombine_select (n log n: a million blocks in a few seconds). Large reads
 * are split into rounds of at most f->read_limit elements; every rank makes as
 * many H5Dread calls as the busiest rank, with empty selections when it has
 * nothing left, as collective I/O requires.
 *
 * Keep the ranks' ranges from nesting: with 3 or more ranks, Open MPI 4.1's
 * OMPIO collective read (fcoll dynamic, dynamic_gen2, vulcan) returns zeros
 * past the end of a rank's range that lies strictly inside another rank's
 * range, without an error (found by test_h5ad_obs_ranges.c; romio321 and
 * fcoll two_phase are correct). The ranges clue reads never nest: rows of
 * different ranks are disjoint, so their indptr ranges share at most an end. */
#include <stdlib.h>

#include "h5ad_internal.h"

/* The union of blocks lo..hi-1 (rows start[i], count[i] × width) of fs. */
static hid_t select_blocks(hid_t fs, const hsize_t *start, const hsize_t *count,
                           int64_t lo, int64_t hi, hsize_t width) {
  if (hi - lo == 1) {
    hid_t s = H5Scopy(fs);
    if (s < 0) return -1;
    hsize_t st[2] = {start[lo], 0}, ct[2] = {count[lo], width};
    if (H5Sselect_hyperslab(s, H5S_SELECT_SET, st, NULL, ct, NULL) < 0) {
      H5Sclose(s);
      return -1;
    }
    return s;
  }
  int64_t mid = lo + (hi - lo) / 2;
  hid_t a = select_blocks(fs, start, count, lo, mid, width);
  hid_t b = a < 0 ? -1 : select_blocks(fs, start, count, mid, hi, width);
  hid_t u = (a >= 0 && b >= 0) ? H5Scombine_select(a, H5S_SELECT_OR, b) : -1;
  if (a >= 0) H5Sclose(a);
  if (b >= 0) H5Sclose(b);
  return u;
}

/* The blocks of one round: up to `room` rows from the cursor (range *ri, rows
 * already taken *ro). Returns the number of blocks; *rows gets the row count. */
static int64_t next_round(const int64_t *begin, const int64_t *end, int64_t n_ranges,
                          int64_t *ri, int64_t *ro, int64_t room, hsize_t *start,
                          hsize_t *count, int64_t *rows) {
  int64_t nb = 0;
  *rows = 0;
  while (*ri < n_ranges && room > 0) {
    int64_t left = end[*ri] - begin[*ri] - *ro;
    if (left <= 0) {
      (*ri)++;
      *ro = 0;
      continue;
    }
    int64_t take = left < room ? left : room;
    start[nb] = (hsize_t)(begin[*ri] + *ro);
    count[nb] = (hsize_t)take;
    nb++;
    *rows += take;
    room -= take;
    *ro += take;
  }
  return nb;
}

/* Checks the ranges against the dataset's shape; 0 when fine. */
static int check_ranges(hid_t fs, int64_t width, const int64_t *begin, const int64_t *end,
                        int64_t n_ranges, const char *what, clue_err *err) {
  hsize_t dims[2] = {0, 0};
  int nd = H5Sget_simple_extent_ndims(fs);
  if (nd < 1 || nd > 2 || H5Sget_simple_extent_dims(fs, dims, NULL) != nd)
    return clue_fail(err, CLUE_EFORMAT, "%s: expected a 1-D or 2-D array", what);
  if ((nd == 1 && width != 1) || (nd == 2 && (int64_t)dims[1] != width))
    return clue_fail(err, CLUE_EFORMAT, "%s: unexpected number of columns", what);
  int64_t prev = 0;
  for (int64_t i = 0; i < n_ranges; i++) {
    if (begin[i] < prev || end[i] < begin[i] || end[i] > (int64_t)dims[0])
      return clue_fail(err, CLUE_EFORMAT,
                       "%s: range [%lld, %lld) is outside the %lld stored rows or out "
                       "of order",
                       what, (long long)begin[i], (long long)end[i], (long long)dims[0]);
    prev = end[i];
  }
  return CLUE_OK;
}

/* One collective H5Dread of the given blocks (nb may be 0). */
static int read_round(hid_t dset, hid_t fs, hid_t dxpl, hid_t mem_type, int64_t width,
                      const hsize_t *start, const hsize_t *count, int64_t nb,
                      int64_t rows, void *ptr) {
  hid_t sel, ms;
  unsigned char dummy[16];
  if (nb > 0) {
    sel = select_blocks(fs, start, count, 0, nb, (hsize_t)width);
    hsize_t n = (hsize_t)(rows * width);
    ms = H5Screate_simple(1, &n, NULL);
  } else {
    sel = H5Scopy(fs);
    if (sel >= 0) H5Sselect_none(sel);
    hsize_t one = 1;
    ms = H5Screate_simple(1, &one, NULL);
    if (ms >= 0) H5Sselect_none(ms);
    ptr = dummy;
  }
  /* Every rank calls H5Dread, even when its selection could not be built. */
  if (sel < 0 || ms < 0) {
    hid_t none = H5Scopy(fs);
    hsize_t one = 1;
    hid_t m1 = H5Screate_simple(1, &one, NULL);
    H5Sselect_none(none);
    H5Sselect_none(m1);
    H5Dread(dset, mem_type, m1, none, dxpl, dummy);
    H5Sclose(none);
    H5Sclose(m1);
    if (sel >= 0) H5Sclose(sel);
    if (ms >= 0) H5Sclose(ms);
    return -1;
  }
  herr_t st = H5Dread(dset, mem_type, ms, sel, dxpl, ptr);
  H5Sclose(sel);
  H5Sclose(ms);
  return st < 0 ? -1 : 0;
}

int h5ad__read_ranges(h5ad_file *f, hid_t dset, const char *what, hid_t mem_type,
                      size_t elem_size, int64_t width, const int64_t *begin,
                      const int64_t *end, int64_t n_ranges, void *buf, clue_err *err) {
  hid_t fs = H5Dget_space(dset);
  hid_t ft = H5Dget_type(dset);
  int rc = (fs < 0 || ft < 0)
               ? clue_fail(err, CLUE_EFORMAT, "%s: cannot read the dataset", what)
               : check_ranges(fs, width, begin, end, n_ranges, what, err);
  int64_t total = 0;
  for (int64_t i = 0; rc == CLUE_OK && i < n_ranges; i++) total += end[i] - begin[i];
  if (rc != CLUE_OK) total = 0;
  int64_t room = f->read_limit / (width > 0 ? width : 1);
  if (room < 1) room = 1;
  int64_t rounds = (total + room - 1) / room;
  MPI_Allreduce(MPI_IN_PLACE, &rounds, 1, MPI_INT64_T, MPI_MAX, f->comm.comm);
  int64_t max_blocks = n_ranges + 1;
  hsize_t *start = clue_malloc((size_t)max_blocks * sizeof *start, err);
  hsize_t *count = clue_malloc((size_t)max_blocks * sizeof *count, err);
  if (rc == CLUE_OK && (!start || !count)) rc = CLUE_ENOMEM;
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  size_t file_elem = ft >= 0 ? H5Tget_size(ft) : 0;
  int64_t ri = 0, ro = 0;
  unsigned char *ptr = buf;
  for (int64_t r = 0; r < rounds; r++) {
    int64_t rows = 0, nb = 0;
    if (rc == CLUE_OK)
      nb = next_round(begin, end, n_ranges, &ri, &ro, room, start, count, &rows);
    if (fs < 0) continue; /* the dataset is unreadable here, as on every rank */
    if (read_round(dset, fs, dxpl, mem_type, width, start, count, nb, rows, ptr) < 0) {
      if (rc == CLUE_OK)
        rc = clue_fail(err, CLUE_EIO, "%s: reading %lld rows failed", what,
                       (long long)rows);
      continue;
    }
    ptr += (size_t)(rows * width) * elem_size;
    f->bytes_read += rows * width * (int64_t)file_elem;
  }
  H5Pclose(dxpl);
  free(start);
  free(count);
  if (ft >= 0) H5Tclose(ft);
  if (fs >= 0) H5Sclose(fs);
  return rc;
}
