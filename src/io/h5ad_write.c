/* h5ad_write.c — the AnnData writer: obs and var by rank 0 in serial mode; obsm
 * arrays and X (csr_matrix) by every rank in parallel mode, each rank writing
 * only its own rows, so that no rank ever holds the whole matrix.
 *
 * X is written in rounds (h5ad_writer_x_csr_append): each round the ranks'
 * blocks tile the next rows in rank order, the ranks exchange their numbers of
 * values to learn their offsets, data and indices (chunked, extendible) grow by
 * the round's total, and every rank writes its slice collectively. indptr
 * (int64, n_obs + 1) is allocated at its final size from the start. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/h5ad_write.h"
#include "h5ad_write_internal.h"

/* The most bytes one rank writes in one H5Dwrite (MPI counts are int). */
#define PIECE_BYTES ((int64_t)1 << 28)
/* Chunk length (values) of X/data and X/indices: between these bounds, set from
 * the first round's total. */
#define CHUNK_MIN 1024
#define CHUNK_MAX (1 << 20)

static void object_path(const h5ad_writer *w, const char *rel, char *buf, size_t size) {
  if (!strcmp(w->group, "/"))
    snprintf(buf, size, "/%s", rel);
  else
    snprintf(buf, size, "%s/%s", w->group, rel);
}

int h5w_anndata_new(h5w_file *file, bool owns_file, const char *group, int64_t n_obs,
                    int64_t n_vars, h5ad_writer **out, clue_err *err) {
  *out = NULL;
  h5ad_writer *w = clue_calloc(1, sizeof *w, err);
  int rc = w ? CLUE_OK : CLUE_ENOMEM;
  if (w) {
    w->file = file;
    w->owns_file = owns_file;
    snprintf(w->group, sizeof w->group, "%s", group);
    if (!strcmp(group, "/"))
      snprintf(w->where, sizeof w->where, "%s", file->path);
    else
      snprintf(w->where, sizeof w->where, "%s %s", file->path, group + 1);
    w->n_obs = n_obs;
    w->n_vars = n_vars;
  }
  if (rc == CLUE_OK && file->comm.rank == 0) {
    hid_t g = !strcmp(group, "/") ? H5Gopen2(file->fid, "/", H5P_DEFAULT)
                                  : H5Gcreate2(file->fid, group, H5P_DEFAULT, H5P_DEFAULT,
                                               H5P_DEFAULT);
    if (g < 0) rc = h5w_fail(err, CLUE_EIO, "cannot create group %s", group);
    if (rc == CLUE_OK) rc = h5w_encoding(g, "anndata", "0.1.0", err);
    if (rc == CLUE_OK) rc = h5w_empty_dicts(g, true, err);
    if (g >= 0) H5Gclose(g);
    if (rc) clue_err_prefix(err, "%s", w->where);
  }
  rc = clue_comm_agree(&file->comm, rc, err);
  if (rc) {
    h5w_anndata_free(w);
    return rc;
  }
  *out = w;
  return CLUE_OK;
}

void h5w_anndata_free(h5ad_writer *w) {
  if (!w) return;
  free(w->obsm);
  free(w->obsmap);
  clue_strings_free(w->var_names);
  free(w);
}

int h5ad_writer_create(const char *path, int64_t n_obs, int64_t n_vars,
                       const char *const *protect, const clue_comm *comm,
                       h5ad_writer **out, clue_err *err) {
  *out = NULL;
  int64_t shape[2] = {n_obs, n_vars};
  clue_comm_bcast(comm, shape, sizeof shape, 0);
  if (shape[0] < 0 || shape[1] < 0)
    return clue_fail(err, CLUE_EINVAL, "%s: negative shape %lld × %lld", path,
                     (long long)shape[0], (long long)shape[1]);
  h5w_file *f = NULL;
  int rc = h5w_file_create(path, 0, protect, comm, &f, err);
  if (rc) return rc;
  rc = h5w_anndata_new(f, true, "/", shape[0], shape[1], out, err);
  if (rc) h5w_file_abort(f);
  return rc;
}

/* Rank 0: names "0", "1", ... (anndata's default index). */
static char **default_names(int64_t n, char **pool, clue_err *err) {
  char **s = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *s, err);
  *pool = clue_malloc((size_t)(n > 0 ? n : 1) * 21, err);
  if (!s || !*pool) {
    free(s);
    free(*pool);
    *pool = NULL;
    return NULL;
  }
  for (int64_t i = 0; i < n; i++) {
    s[i] = *pool + 21 * i;
    snprintf(s[i], 21, "%lld", (long long)i);
  }
  return s;
}

/* Rank 0: inside an .h5mu, the modality's obs names must be the global names
 * that obsmap sends to them. */
static int check_mod_names(const h5ad_writer *w, const clue_strings *names,
                           const clue_strings *global, clue_err *err) {
  for (int64_t g = 0; g < global->n; g++) {
    uint32_t r = w->obsmap[g];
    if (r > 0 && strcmp(names->s[r - 1], global->s[g]) != 0)
      return clue_fail(err, CLUE_EINVAL,
                       "%s: obs name of row %lld ('%s') differs from the global obs name "
                       "'%s' that obsmap maps to it",
                       w->where, (long long)r - 1, names->s[r - 1], global->s[g]);
  }
  return CLUE_OK;
}

static int write_obs_rank0(h5ad_writer *w, const clue_strings *names,
                           h5ad_column *const *columns, int n_columns, clue_err *err) {
  if (!names || names->n != w->n_obs)
    return clue_fail(err, CLUE_EINVAL, "%s: obs index has %lld names, expected %lld",
                     w->where, names ? (long long)names->n : 0LL, (long long)w->n_obs);
  int rc = h5w_check_columns(columns, n_columns, w->n_obs, w->where, err);
  if (rc) return rc;
  if (w->mu) {
    rc = check_mod_names(w, names, h5mu_writer_global_names(w->mu), err);
    if (rc) return rc;
  }
  hid_t g = H5Gopen2(w->file->fid, w->group, H5P_DEFAULT);
  if (g < 0) return h5w_fail(err, CLUE_EIO, "%s: cannot open %s", w->where, w->group);
  rc = h5w_dataframe(g, "obs", (const char *const *)names->s, names->n, columns, n_columns,
                     err);
  H5Gclose(g);
  if (rc) clue_err_prefix(err, "%s", w->where);
  return rc;
}

int h5ad_writer_obs(h5ad_writer *w, const clue_strings *names,
                    h5ad_column *const *columns, int n_columns, clue_err *err) {
  if (w->wrote_obs) return clue_fail(err, CLUE_EINVAL, "%s: obs written twice", w->where);
  int rc = h5w_serial(w->file, err);
  if (rc) return rc;
  if (w->file->comm.rank == 0) rc = write_obs_rank0(w, names, columns, n_columns, err);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc == CLUE_OK) w->wrote_obs = true;
  return rc;
}

static int write_var_rank0(h5ad_writer *w, const clue_strings *names, clue_err *err) {
  int64_t n = names ? names->n : 0;
  if (n != w->n_vars)
    return clue_fail(err, CLUE_EINVAL, "%s: var index has %lld names, expected %lld",
                     w->where, (long long)n, (long long)w->n_vars);
  if (w->mu) {
    w->var_names = n > 0 ? clue_strings_from((const char *const *)names->s, n, err)
                         : clue_strings_new(0, err);
    if (!w->var_names) return err->code;
  }
  hid_t g = H5Gopen2(w->file->fid, w->group, H5P_DEFAULT);
  if (g < 0) return h5w_fail(err, CLUE_EIO, "%s: cannot open %s", w->where, w->group);
  int rc = h5w_dataframe(g, "var", n > 0 ? (const char *const *)names->s : NULL, n, NULL,
                         0, err);
  H5Gclose(g);
  if (rc) clue_err_prefix(err, "%s", w->where);
  return rc;
}

int h5ad_writer_var(h5ad_writer *w, const clue_strings *names, clue_err *err) {
  if (w->wrote_var) return clue_fail(err, CLUE_EINVAL, "%s: var written twice", w->where);
  int rc = h5w_serial(w->file, err);
  if (rc) return rc;
  if (w->file->comm.rank == 0) rc = write_var_rank0(w, names, err);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc == CLUE_OK) w->wrote_var = true;
  return rc;
}

/* Collective. Writes rows [row0, row0 + n) of dataset d — 1-D when n_cols is 0,
 * else 2-D with n_cols columns — from buf, in pieces of at most PIECE_BYTES per
 * rank; every rank takes part in every piece (n may be 0). */
static int write_rows(hid_t d, hid_t mtype, size_t elem, int64_t n_cols, int64_t row0,
                      int64_t n, const void *buf, const clue_comm *comm, clue_err *err) {
  int64_t width = n_cols > 0 ? n_cols : 1;
  int64_t per = PIECE_BYTES / (int64_t)elem / width;
  if (per < 1) per = 1;
  int64_t pieces = (n + per - 1) / per;
  clue_comm_max_int64(comm, &pieces, 1);
  hid_t dxpl = H5Pcreate(H5P_DATASET_XFER);
  H5Pset_dxpl_mpio(dxpl, H5FD_MPIO_COLLECTIVE);
  hid_t fs = H5Dget_space(d);
  int rc = fs < 0 ? h5w_fail(err, CLUE_EIO, "cannot get a dataspace") : CLUE_OK;
  static const char dummy[16];
  for (int64_t p = 0; p < pieces; p++) {
    int64_t lo = p * per, cnt = n - lo < per ? n - lo : per;
    if (cnt < 0) cnt = 0;
    hsize_t one = 1, total = (hsize_t)(cnt * width);
    hid_t ms = H5Screate_simple(1, total > 0 ? &total : &one, NULL);
    if (total > 0) {
      hsize_t start[2] = {(hsize_t)(row0 + lo), 0}, count[2] = {(hsize_t)cnt, (hsize_t)width};
      H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    } else {
      H5Sselect_none(fs);
      H5Sselect_none(ms);
    }
    const void *src = total > 0 ? (const char *)buf + (size_t)(lo * width) * elem : dummy;
    if (rc == CLUE_OK && H5Dwrite(d, mtype, ms, fs, dxpl, src) < 0)
      rc = h5w_fail(err, CLUE_EIO, "cannot write rows %lld..%lld", (long long)(row0 + lo),
                    (long long)(row0 + lo + cnt));
    H5Sclose(ms);
  }
  if (fs >= 0) H5Sclose(fs);
  H5Pclose(dxpl);
  return rc;
}

/* Every rank: the row ranges of all ranks must lie in [0, n_obs) and not overlap. */
static int check_row_blocks(const h5ad_writer *w, int64_t row_begin, int64_t n_local,
                            const char *what, clue_err *err) {
  const clue_comm *c = &w->file->comm;
  int64_t mine[2] = {row_begin, n_local};
  int64_t *all = clue_malloc((size_t)c->size * sizeof mine, err);
  int rc = clue_comm_agree(c, all ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(all);
    return rc;
  }
  MPI_Allgather(mine, 2, MPI_INT64_T, all, 2, MPI_INT64_T, c->comm);
  for (int r = 0; r < c->size && rc == CLUE_OK; r++) {
    int64_t b = all[2 * r], n = all[2 * r + 1];
    if (n < 0 || (n > 0 && (b < 0 || b + n > w->n_obs)))
      rc = clue_fail(err, CLUE_EINVAL, "%s: %s: rank %d gives rows [%lld, %lld) outside [0, %lld)",
                     w->where, what, r, (long long)b, (long long)(b + n), (long long)w->n_obs);
    for (int q = 0; q < r && rc == CLUE_OK && n > 0; q++) {
      int64_t bq = all[2 * q], nq = all[2 * q + 1];
      if (nq > 0 && b < bq + nq && bq < b + n)
        rc = clue_fail(err, CLUE_EINVAL, "%s: %s: the rows of ranks %d and %d overlap",
                       w->where, what, q, r);
    }
  }
  free(all);
  return rc;
}

static h5w_obsm_key *find_obsm(h5ad_writer *w, const char *key) {
  for (int i = 0; i < w->n_obsm; i++)
    if (!strcmp(w->obsm[i].key, key)) return &w->obsm[i];
  return NULL;
}

/* Rank 0, serial: creates the dense float32 array `rel` ("obsm/<key>" or "X")
 * at its final size (contiguous, allocated at once so that the parallel writes
 * only fill it). */
static int create_dense_rank0(h5ad_writer *w, const char *rel, int64_t n_cols,
                              clue_err *err) {
  char path[CLUE_PATH_MAX];
  object_path(w, rel, path, sizeof path);
  int rc = CLUE_OK;
  if (H5Lexists(w->file->fid, path, H5P_DEFAULT) > 0)
    rc = clue_fail(err, CLUE_EINVAL, "%s: %s already exists", w->where, rel);
  hsize_t dims[2] = {(hsize_t)w->n_obs, (hsize_t)n_cols};
  hid_t sp = H5Screate_simple(2, dims, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  hid_t d = -1;
  if (rc == CLUE_OK) {
    d = H5Dcreate2(w->file->fid, path, H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) rc = h5w_fail(err, CLUE_EIO, "%s: cannot create %s", w->where, rel);
  }
  if (rc == CLUE_OK) rc = h5w_encoding(d, "array", "0.2.0", err);
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(sp);
  return rc;
}

/* Collective. Rows [row_begin, row_begin + n_local) of the dense array `rel`
 * (created before), in parallel. */
static int write_dense_rows(h5ad_writer *w, const char *rel, int64_t n_cols, int64_t row_begin,
                            int64_t n_local, const float *local, clue_err *err) {
  int rc = h5w_parallel(w->file, err);
  if (rc) return rc;
  char path[CLUE_PATH_MAX];
  object_path(w, rel, path, sizeof path);
  hid_t d = H5Dopen2(w->file->fid, path, H5P_DEFAULT);
  if (d < 0) rc = h5w_fail(err, CLUE_EIO, "%s: cannot open %s", w->where, path);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc) {
    if (d >= 0) H5Dclose(d);
    return rc;
  }
  rc = write_rows(d, H5T_NATIVE_FLOAT, sizeof(float), n_cols > 0 ? n_cols : 1, row_begin,
                  n_cols > 0 ? n_local : 0, local, &w->file->comm, err);
  H5Dclose(d);
  if (rc) clue_err_prefix(err, "%s: %s", w->where, rel);
  return clue_comm_agree(&w->file->comm, rc, err);
}

/* Every rank: key and width agree, rows and buffer are sensible. */
static int check_obsm_args(h5ad_writer *w, const char *key, int64_t n_cols,
                           int64_t row_begin, int64_t n_local, const float *local,
                           clue_err *err) {
  int rc = h5w_check_key(key, "obsm", err);
  if (rc == CLUE_OK && n_cols < 0)
    rc = clue_fail(err, CLUE_EINVAL, "%s: obsm/%s: negative width", w->where, key);
  if (rc == CLUE_OK && n_local > 0 && n_cols > 0 && !local)
    rc = clue_fail(err, CLUE_EINVAL, "%s: obsm/%s: no values given", w->where, key);
  h5w_obsm_key *known = rc == CLUE_OK ? find_obsm(w, key) : NULL;
  if (known && known->n_cols != n_cols)
    rc = clue_fail(err, CLUE_EINVAL, "%s: obsm/%s has %lld columns, not %lld", w->where, key,
                   (long long)known->n_cols, (long long)n_cols);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc) return rc;
  int64_t width[2] = {n_cols, -n_cols};
  clue_comm_max_int64(&w->file->comm, width, 2);
  if (width[0] != -width[1])
    return clue_fail(err, CLUE_EINVAL, "%s: obsm/%s: ranks disagree on the width", w->where,
                     key);
  return check_row_blocks(w, row_begin, n_local, key, err);
}

int h5ad_writer_obsm(h5ad_writer *w, const char *key, int64_t n_cols, int64_t row_begin,
                     int64_t n_local, const float *local, clue_err *err) {
  int rc = check_obsm_args(w, key, n_cols, row_begin, n_local, local, err);
  if (rc) return rc;
  char rel[CLUE_NAME_MAX * 4 + 8];
  snprintf(rel, sizeof rel, "obsm/%s", key);
  if (!find_obsm(w, key)) {
    h5w_obsm_key *grown = realloc(w->obsm, (size_t)(w->n_obsm + 1) * sizeof *grown);
    rc = clue_comm_agree(&w->file->comm, grown ? CLUE_OK : CLUE_ENOMEM, err);
    if (grown) w->obsm = grown;
    if (rc) return clue_fail(err, CLUE_ENOMEM, "out of memory");
    rc = h5w_serial(w->file, err);
    if (rc) return rc;
    if (w->file->comm.rank == 0) rc = create_dense_rank0(w, rel, n_cols, err);
    rc = clue_comm_agree(&w->file->comm, rc, err);
    if (rc) return rc;
    snprintf(w->obsm[w->n_obsm].key, sizeof w->obsm[0].key, "%s", key);
    w->obsm[w->n_obsm++].n_cols = n_cols;
  }
  return write_dense_rows(w, rel, n_cols, row_begin, n_local, local, err);
}

int h5ad_writer_x_dense(h5ad_writer *w, int64_t row_begin, int64_t n_local, const float *local,
                        clue_err *err) {
  int rc = CLUE_OK;
  if (w->x_started && !w->x_dense)
    rc = clue_fail(err, CLUE_EINVAL, "%s: X is being written as csr_matrix", w->where);
  if (rc == CLUE_OK && n_local > 0 && w->n_vars > 0 && !local)
    rc = clue_fail(err, CLUE_EINVAL, "%s: X: no values given", w->where);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc == CLUE_OK) rc = check_row_blocks(w, row_begin, n_local, "X", err);
  if (rc) return rc;
  if (!w->x_started) {
    rc = h5w_serial(w->file, err);
    if (rc) return rc;
    if (w->file->comm.rank == 0) rc = create_dense_rank0(w, "X", w->n_vars, err);
    rc = clue_comm_agree(&w->file->comm, rc, err);
    if (rc) return rc;
    w->x_started = w->x_dense = true;
  }
  rc = write_dense_rows(w, "X", w->n_vars, row_begin, n_local, local, err);
  int64_t rows = n_local;
  clue_comm_sum_int64(&w->file->comm, &rows, 1);
  w->x_rows += rows;
  return rc;
}

/* Rank 0, serial: X/indptr (int64, n_obs + 1) at its final size, indptr[0] = 0;
 * the ranks fill the rest. */
static int create_indptr(h5ad_writer *w, hid_t g, clue_err *err) {
  hsize_t n_ptr = (hsize_t)w->n_obs + 1;
  hid_t sp = H5Screate_simple(1, &n_ptr, NULL);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  hid_t d = H5Dcreate2(g, "indptr", H5T_STD_I64LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
  int rc = d < 0 ? h5w_fail(err, CLUE_EIO, "%s: cannot create X/indptr", w->where) : CLUE_OK;
  if (rc == CLUE_OK) {
    int64_t first = 0;
    hsize_t start = 0, one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    H5Sselect_hyperslab(sp, H5S_SELECT_SET, &start, NULL, &one, NULL);
    if (H5Dwrite(d, H5T_NATIVE_INT64, ms, sp, H5P_DEFAULT, &first) < 0)
      rc = h5w_fail(err, CLUE_EIO, "%s: cannot write X/indptr", w->where);
    H5Sclose(ms);
  }
  if (d >= 0) H5Dclose(d);
  H5Pclose(dcpl);
  H5Sclose(sp);
  return rc;
}

/* Rank 0, serial: the X group, data and indices empty and extendible, indptr at
 * its final size. */
static int create_x_rank0(h5ad_writer *w, int64_t first_round_nnz, clue_err *err) {
  char path[CLUE_PATH_MAX];
  object_path(w, "X", path, sizeof path);
  hid_t g = h5w_group(w->file->fid, path, "csr_matrix", "0.1.0", err);
  if (g < 0) return clue_err_prefix(err, "%s", w->where);
  hsize_t shape_dim = 2;
  int64_t shape[2] = {w->n_obs, w->n_vars};
  hid_t ssp = H5Screate_simple(1, &shape_dim, NULL);
  hid_t a = H5Acreate2(g, "shape", H5T_STD_I64LE, ssp, H5P_DEFAULT, H5P_DEFAULT);
  int rc = CLUE_OK;
  if (a < 0 || H5Awrite(a, H5T_NATIVE_INT64, shape) < 0)
    rc = h5w_fail(err, CLUE_EIO, "%s: cannot write X shape", w->where);
  if (a >= 0) H5Aclose(a);
  H5Sclose(ssp);
  hsize_t zero = 0, unlimited = H5S_UNLIMITED;
  hsize_t chunk = (hsize_t)(first_round_nnz < CHUNK_MIN   ? CHUNK_MIN
                            : first_round_nnz > CHUNK_MAX ? CHUNK_MAX
                                                          : first_round_nnz);
  hid_t sp = H5Screate_simple(1, &zero, &unlimited);
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(dcpl, 1, &chunk);
  H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_EARLY);
  H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
  const char *names[2] = {"data", "indices"};
  hid_t types[2] = {H5T_IEEE_F32LE, H5T_STD_I32LE};
  for (int i = 0; i < 2 && rc == CLUE_OK; i++) {
    hid_t d = H5Dcreate2(g, names[i], types[i], sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (d < 0) rc = h5w_fail(err, CLUE_EIO, "%s: cannot create X/%s", w->where, names[i]);
    if (d >= 0) H5Dclose(d);
  }
  H5Pclose(dcpl);
  H5Sclose(sp);
  if (rc == CLUE_OK) rc = create_indptr(w, g, err);
  H5Gclose(g);
  return rc;
}

/* Every rank: checks the round's blocks (all ranks' row starts, rows and values,
 * gathered) and returns this rank's value offset and the round's totals. */
static int plan_round(h5ad_writer *w, int64_t row_begin, const clue_csr *local,
                      int64_t *offset, int64_t *round_rows, int64_t *round_nnz,
                      clue_err *err) {
  const clue_comm *c = &w->file->comm;
  int rc = CLUE_OK;
  if (!local)
    rc = clue_fail(err, CLUE_EINVAL, "%s: X: no matrix given", w->where);
  else if (local->n_cols != w->n_vars)
    rc = clue_fail(err, CLUE_EINVAL, "%s: X block has %lld columns, expected %lld", w->where,
                   (long long)local->n_cols, (long long)w->n_vars);
  else if (w->n_vars > INT32_MAX)
    rc = clue_fail(err, CLUE_EINVAL, "%s: X has more than 2^31 columns", w->where);
  else if (clue_csr_validate(local, "X block", err))
    rc = clue_err_prefix(err, "%s", w->where);
  rc = clue_comm_agree(c, rc, err);
  if (rc) return rc;
  int64_t mine[3] = {row_begin, local->n_rows, clue_csr_nnz(local)};
  int64_t *all = clue_malloc((size_t)c->size * sizeof mine, err);
  rc = clue_comm_agree(c, all ? CLUE_OK : CLUE_ENOMEM, err);
  if (rc) {
    free(all);
    return rc;
  }
  MPI_Allgather(mine, 3, MPI_INT64_T, all, 3, MPI_INT64_T, c->comm);
  int64_t next = w->x_rows, nnz = 0;
  for (int r = 0; r < c->size && rc == CLUE_OK; r++) {
    int64_t b = all[3 * r], n = all[3 * r + 1];
    if (n > 0 && b != next)
      rc = clue_fail(err, CLUE_EINVAL,
                     "%s: X: rank %d gives rows from %lld, expected %lld (the blocks must "
                     "follow each other in rank order)",
                     w->where, r, (long long)b, (long long)next);
    if (r == c->rank) *offset = w->x_nnz + nnz;
    next += n;
    nnz += all[3 * r + 2];
  }
  free(all);
  if (rc == CLUE_OK && next > w->n_obs)
    rc = clue_fail(err, CLUE_EINVAL, "%s: X: rows up to %lld given, but X has %lld rows",
                   w->where, (long long)next, (long long)w->n_obs);
  *round_rows = next - w->x_rows;
  *round_nnz = nnz;
  return rc;
}

/* Every rank, parallel: grows data/indices and writes this rank's slices. */
static int write_round(h5ad_writer *w, int64_t row_begin, const clue_csr *local,
                       int64_t offset, int64_t new_nnz, clue_err *err) {
  const clue_comm *c = &w->file->comm;
  char path[CLUE_PATH_MAX];
  const char *names[3] = {"X/data", "X/indices", "X/indptr"};
  hid_t d[3] = {-1, -1, -1};
  int rc = CLUE_OK;
  for (int i = 0; i < 3 && rc == CLUE_OK; i++) {
    object_path(w, names[i], path, sizeof path);
    d[i] = H5Dopen2(w->file->fid, path, H5P_DEFAULT);
    if (d[i] < 0) rc = h5w_fail(err, CLUE_EIO, "%s: cannot open %s", w->where, path);
  }
  hsize_t size = (hsize_t)new_nnz;
  for (int i = 0; i < 2 && rc == CLUE_OK; i++)
    if (H5Dset_extent(d[i], &size) < 0)
      rc = h5w_fail(err, CLUE_EIO, "%s: cannot grow %s", w->where, names[i]);
  int64_t n = local->n_rows, nnz = clue_csr_nnz(local);
  int64_t *ptr = clue_malloc((size_t)(n > 0 ? n : 1) * sizeof *ptr, err);
  if (!ptr && rc == CLUE_OK) rc = CLUE_ENOMEM;
  rc = clue_comm_agree(c, rc, err);
  if (rc == CLUE_OK) {
    for (int64_t i = 0; i < n; i++) ptr[i] = offset + local->indptr[i + 1];
    rc = write_rows(d[0], H5T_NATIVE_FLOAT, sizeof(float), 0, offset, nnz, local->data, c, err);
    int rc2 = write_rows(d[1], H5T_NATIVE_INT32, sizeof(int32_t), 0, offset, nnz,
                         local->indices, c, err);
    int rc3 = write_rows(d[2], H5T_NATIVE_INT64, sizeof(int64_t), 0, row_begin + 1, n, ptr,
                         c, err);
    if (rc == CLUE_OK) rc = rc2 ? rc2 : rc3;
    if (rc) clue_err_prefix(err, "%s: X", w->where);
  }
  free(ptr);
  for (int i = 0; i < 3; i++)
    if (d[i] >= 0) H5Dclose(d[i]);
  return clue_comm_agree(c, rc, err);
}

int h5ad_writer_x_csr_append(h5ad_writer *w, int64_t row_begin, const clue_csr *local,
                             clue_err *err) {
  if (w->x_dense) return clue_fail(err, CLUE_EINVAL, "%s: X is being written dense", w->where);
  int64_t offset = 0, round_rows = 0, round_nnz = 0;
  int rc = plan_round(w, row_begin, local, &offset, &round_rows, &round_nnz, err);
  if (rc) return rc;
  if (!w->x_started) {
    rc = h5w_serial(w->file, err);
    if (rc) return rc;
    if (w->file->comm.rank == 0) rc = create_x_rank0(w, round_nnz, err);
    rc = clue_comm_agree(&w->file->comm, rc, err);
    if (rc) return rc;
    w->x_started = true;
  }
  rc = h5w_parallel(w->file, err);
  if (rc) return rc;
  rc = write_round(w, row_begin, local, offset, w->x_nnz + round_nnz, err);
  if (rc) return rc;
  w->x_rows += round_rows;
  w->x_nnz += round_nnz;
  return CLUE_OK;
}

int h5ad_writer_x_csr(h5ad_writer *w, int64_t row_begin, const clue_csr *local,
                      clue_err *err) {
  if (w->x_started)
    return clue_fail(err, CLUE_EINVAL, "%s: X written twice", w->where);
  int rc = h5ad_writer_x_csr_append(w, row_begin, local, err);
  if (rc == CLUE_OK && w->x_rows != w->n_obs)
    rc = clue_fail(err, CLUE_EINVAL, "%s: the X blocks of all ranks cover %lld of %lld rows",
                   w->where, (long long)w->x_rows, (long long)w->n_obs);
  return rc;
}

int h5ad_writer_uns_string(h5ad_writer *w, const char *key, const char *value,
                           clue_err *err) {
  int rc = h5w_check_key(key, "uns", err);
  if (rc == CLUE_OK && !value)
    rc = clue_fail(err, CLUE_EINVAL, "%s: uns/%s: no value", w->where, key);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc == CLUE_OK) rc = h5w_serial(w->file, err);
  if (rc) return rc;
  if (w->file->comm.rank == 0) {
    char path[CLUE_PATH_MAX];
    object_path(w, "uns", path, sizeof path);
    hid_t g = H5Gopen2(w->file->fid, path, H5P_DEFAULT);
    if (g < 0) rc = h5w_fail(err, CLUE_EIO, "%s: cannot open %s", w->where, path);
    if (rc == CLUE_OK && H5Lexists(g, key, H5P_DEFAULT) > 0)
      rc = clue_fail(err, CLUE_EINVAL, "%s: uns/%s written twice", w->where, key);
    if (rc == CLUE_OK) {
      hid_t t = H5Tcopy(H5T_C_S1);
      H5Tset_size(t, H5T_VARIABLE);
      H5Tset_cset(t, H5T_CSET_UTF8);
      hid_t sp = H5Screate(H5S_SCALAR);
      hid_t d = H5Dcreate2(g, key, t, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
      if (d < 0 || H5Dwrite(d, t, H5S_ALL, H5S_ALL, H5P_DEFAULT, &value) < 0)
        rc = h5w_fail(err, CLUE_EIO, "%s: cannot write uns/%s", w->where, key);
      if (rc == CLUE_OK) rc = h5w_encoding(d, "string", "0.2.0", err);
      if (d >= 0) H5Dclose(d);
      H5Sclose(sp);
      H5Tclose(t);
    }
    if (g >= 0) H5Gclose(g);
  }
  return clue_comm_agree(&w->file->comm, rc, err);
}

/* Rank 0, serial: an obs or var dataframe with names "0", "1", ... */
static int default_frame(h5ad_writer *w, const char *name, int64_t n,
                         const char *const *names, clue_err *err) {
  char *pool = NULL;
  char **own = NULL;
  if (!names) {
    own = default_names(n, &pool, err);
    if (!own) return err->code;
    names = (const char *const *)own;
  }
  hid_t g = H5Gopen2(w->file->fid, w->group, H5P_DEFAULT);
  int rc = g < 0 ? h5w_fail(err, CLUE_EIO, "%s: cannot open %s", w->where, w->group) : CLUE_OK;
  if (rc == CLUE_OK) rc = h5w_dataframe(g, name, names, n, NULL, 0, err);
  if (g >= 0) H5Gclose(g);
  free(own);
  free(pool);
  return rc;
}

/* Rank 0: inside an .h5mu the default obs names are the global names of the
 * modality's cells; elsewhere "0", "1", ... */
static int default_obs(h5ad_writer *w, clue_err *err) {
  if (!w->mu) return default_frame(w, "obs", w->n_obs, NULL, err);
  const clue_strings *global = h5mu_writer_global_names(w->mu);
  const char **names = clue_calloc((size_t)(w->n_obs > 0 ? w->n_obs : 1), sizeof *names, err);
  if (!names) return err->code;
  for (int64_t g = 0; g < global->n; g++)
    if (w->obsmap[g] > 0) names[w->obsmap[g] - 1] = global->s[g];
  int rc = default_frame(w, "obs", w->n_obs, names, err);
  free(names);
  return rc;
}

int h5w_anndata_finish(h5ad_writer *w, clue_err *err) {
  int rc = CLUE_OK;
  if (w->x_started && w->x_rows != w->n_obs)
    rc = clue_fail(err, CLUE_EINVAL, "%s: X has %lld of its %lld rows written", w->where,
                   (long long)w->x_rows, (long long)w->n_obs);
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc || (w->wrote_obs && w->wrote_var)) return rc;
  rc = h5w_serial(w->file, err);
  if (rc) return rc;
  if (w->file->comm.rank == 0) {
    if (!w->wrote_obs) rc = default_obs(w, err);
    if (rc == CLUE_OK && !w->wrote_var) rc = default_frame(w, "var", w->n_vars, NULL, err);
  }
  rc = clue_comm_agree(&w->file->comm, rc, err);
  if (rc == CLUE_OK) w->wrote_obs = w->wrote_var = true;
  return rc;
}

int h5ad_writer_commit(h5ad_writer *w, clue_err *err) {
  if (!w->owns_file)
    return clue_fail(err, CLUE_EINVAL, "%s: a modality of an .h5mu is finished with "
                     "h5mu_writer_end_mod, not committed", w->where);
  int rc = h5w_anndata_finish(w, err);
  if (rc) {
    h5ad_writer_abort(w);
    return rc;
  }
  rc = h5w_file_commit(w->file, NULL, err);
  h5w_anndata_free(w);
  return rc;
}

void h5ad_writer_abort(h5ad_writer *w) {
  if (!w) return;
  if (w->owns_file)
    h5w_file_abort(w->file);
  else
    h5mu_writer_forget(w->mu, w);
  h5w_anndata_free(w);
}
