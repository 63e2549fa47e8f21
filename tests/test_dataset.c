/* test_dataset.c — the dataset loader on 1 to 4 ranks: the same cells, in the
 * same order, with the same values as a one-process read (per-cell checksums
 * gathered to every rank), on every shared data set and on generated
 * partially paired fixtures (separate .h5ad files, .h5mu with and without
 * obsmap); each rank holds the names, batch codes and file rows of its own
 * cells only (gathered here to compare); train/test selection; batch codes merged across modalities; each
 * rank reads its shard's bytes (plus its block of indptr) and no more; more
 * ranks than cells. test_pairing.c checks the pairing against a sequential
 * reference on random files.
 *
 * CLUE_TEST_NP: 1 2 3 4
 */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/dataset.h"
#include "testutil.h"
#include "tu_h5ad.h"

static void add_mod(clue_config *cfg, const char *name, const char *file,
                    clue_likelihood lik) {
  clue_modality_config *m = &cfg->mod[cfg->n_mod++];
  snprintf(m->name, sizeof m->name, "%s", name);
  snprintf(m->file, sizeof m->file, "%s", file ? file : "");
  snprintf(m->layer, sizeof m->layer, "X");
  m->likelihood = lik;
}

static clue_config pair_config(const char *rna, const char *adt) {
  clue_config cfg;
  clue_config_defaults(&cfg);
  add_mod(&cfg, "rna", rna ? tu_fixture(rna) : NULL, CLUE_LIK_NB);
  add_mod(&cfg, "adt", adt ? tu_fixture(adt) : NULL, CLUE_LIK_NB);
  snprintf(cfg.split_key, sizeof cfg.split_key, "split");
  snprintf(cfg.batch_key, sizeof cfg.batch_key, "batch");
  return cfg;
}

/* A checksum of cell c's rows in every modality (−(k+1) when absent). */
static double cell_checksum(const clue_dataset *d, int64_t c) {
  double s = 0;
  int64_t i = c - d->local_begin;
  for (int k = 0; k < d->n_mod; k++) {
    int64_t r = d->local_row[i * d->n_mod + k];
    if (r < 0) {
      s -= k + 1;
      continue;
    }
    const clue_csr *x = d->mod[k].x;
    for (int64_t j = x->indptr[r]; j < x->indptr[r + 1]; j++)
      s += (k + 1) * ((x->indices[j] + 1) * (double)x->data[j] + 0.001 * x->indices[j]);
    s += 1000.0 * (k + 1) * (double)(x->indptr[r + 1] - x->indptr[r]);
  }
  return s;
}

/* Collective over comm: every cell's checksum on every rank (n_cells). */
static double *all_checksums(const clue_dataset *d, const clue_comm *comm) {
  double *s = calloc((size_t)d->n_cells + 1, sizeof *s);
  for (int64_t c = d->local_begin; c < d->local_end; c++) s[c] = cell_checksum(d, c);
  clue_comm_sum_double(comm, s, (size_t)d->n_cells);
  return s;
}

/* Every cell's name, batch code and file rows, gathered from the ranks that
 * hold them (the dataset keeps only its own cells' metadata). */
typedef struct view {
  clue_strings *names; /* (n_cells) */
  int32_t *batch;      /* (n_cells) */
  int64_t *file_row;   /* (n_cells × n_mod) */
} view;

/* Collective over comm. */
static view gather_view(const clue_dataset *d, const clue_comm *comm) {
  int64_t n = d->n_cells, nl = d->local_end - d->local_begin, K = d->n_mod;
  assert_int_equal(d->local_names->n, nl);
  int64_t *num = calloc((size_t)(n * (K + 1)) + 1, sizeof *num); /* batch, rows + 1 */
  int *len = calloc((size_t)n + 1, sizeof *len);
  for (int64_t i = 0; i < nl; i++) {
    int64_t c = d->local_begin + i;
    num[c * (K + 1)] = d->local_batch[i];
    for (int k = 0; k < K; k++) num[c * (K + 1) + 1 + k] = d->local_file_row[i * K + k] + 1;
    len[c] = (int)strlen(d->local_names->s[i]) + 1;
  }
  clue_comm_sum_int64(comm, num, (size_t)(n * (K + 1)));
  MPI_Allreduce(MPI_IN_PLACE, len, (int)n, MPI_INT, MPI_SUM, comm->comm);
  int total = 0, *counts = calloc((size_t)comm->size, sizeof *counts);
  int *disp = calloc((size_t)comm->size, sizeof *disp);
  for (int64_t c = 0; c < n; c++) total += len[c];
  for (int r = 0; r < comm->size; r++)
    for (int64_t c = d->rank_begin[r]; c < d->rank_begin[r + 1]; c++) counts[r] += len[c];
  for (int r = 1; r < comm->size; r++) disp[r] = disp[r - 1] + counts[r - 1];
  char *mine = malloc((size_t)counts[comm->rank] + 1), *all = malloc((size_t)total + 1);
  for (int64_t i = 0, at = 0; i < nl; i++) {
    memcpy(mine + at, d->local_names->s[i], (size_t)len[d->local_begin + i]);
    at += len[d->local_begin + i];
  }
  MPI_Allgatherv(mine, counts[comm->rank], MPI_CHAR, all, counts, disp, MPI_CHAR, comm->comm);
  const char **ptr = calloc((size_t)n + 1, sizeof *ptr);
  for (int64_t c = 0, at = 0; c < n; c++) ptr[c] = all + at, at += len[c];
  clue_err err;
  view v = {.names = clue_strings_from(ptr, n, &err)};
  v.batch = calloc((size_t)n + 1, sizeof *v.batch);
  v.file_row = calloc((size_t)(n * K) + 1, sizeof *v.file_row);
  for (int64_t c = 0; c < n; c++) {
    v.batch[c] = (int32_t)num[c * (K + 1)];
    for (int k = 0; k < K; k++) v.file_row[c * K + k] = num[c * (K + 1) + 1 + k] - 1;
  }
  free(num), free(len), free(counts), free(disp), free(mine), free(all), free(ptr);
  return v;
}

static void view_free(view *v) {
  clue_strings_free(v->names);
  free(v->batch);
  free(v->file_row);
}

/* A one-process reference (rank 0 only): checksums and cell names. */
typedef struct reference {
  int rc;
  int64_t n;
  double *sum;
  clue_strings *names;
  int32_t *batch;
} reference;

static reference reference_load(const clue_config *cfg, clue_cells cells) {
  reference ref = {0};
  if (tu_world().rank != 0) return ref;
  clue_comm self = clue_comm_self();
  clue_err err;
  clue_dataset *d = NULL;
  ref.rc = clue_dataset_load(cfg, cells, &self, &d, &err);
  if (ref.rc) {
    print_error("reference load: %s\n", err.msg);
    return ref;
  }
  ref.n = d->n_cells;
  ref.sum = all_checksums(d, &self);
  view v = gather_view(d, &self);
  ref.names = v.names;
  ref.batch = v.batch;
  free(v.file_row);
  clue_dataset_free(d);
  return ref;
}

/* Rank 0: the parallel load equals the reference, cell by cell. */
static void compare(const reference *ref, const clue_dataset *d, const view *v,
                    const double *sum) {
  if (tu_world().rank != 0) return;
  assert_int_equal(ref->rc, CLUE_OK);
  assert_int_equal(ref->n, d->n_cells);
  for (int64_t c = 0; c < d->n_cells; c++) {
    assert_string_equal(ref->names->s[c], v->names->s[c]);
    assert_int_equal(ref->batch[c], v->batch[c]);
    TU_CLOSE(ref->sum[c], sum[c], 1e-12);
  }
}

static void reference_free(reference *ref) {
  free(ref->sum);
  free(ref->batch);
  clue_strings_free(ref->names);
}

/* The shard is a partition of the cells, and owners agree with it. */
static void check_partition(const clue_dataset *d, const clue_comm *comm) {
  assert_int_equal(d->n_ranks, comm->size);
  assert_int_equal(d->rank_begin[0], 0);
  assert_int_equal(d->rank_begin[comm->size], d->n_cells);
  assert_int_equal(d->local_begin, d->rank_begin[comm->rank]);
  assert_int_equal(d->local_end, d->rank_begin[comm->rank + 1]);
  for (int r = 0; r < comm->size; r++)
    assert_true(d->rank_begin[r] <= d->rank_begin[r + 1]);
  for (int64_t c = 0; c < d->n_cells; c++) {
    int o = clue_dataset_owner(d, c);
    assert_true(d->rank_begin[o] <= c && c < d->rank_begin[o + 1]);
  }
}

/* Fixture values; rna (modality 0) holds cells [lo0, hi0), adt [lo1, hi1). */
static void check_values_in(const clue_dataset *d, int lo0, int hi0, int lo1, int hi1) {
  for (int64_t c = d->local_begin; c < d->local_end; c++) {
    int64_t i = c - d->local_begin;
    int g = tu_cell(d->local_names->s[i]);
    for (int k = 0; k < 2; k++) {
      int64_t r = d->local_row[i * 2 + k];
      bool has = k == 0 ? (lo0 <= g && g < hi0) : (lo1 <= g && g < hi1);
      assert_int_equal(r >= 0, has);
      assert_int_equal(d->local_file_row[i * 2 + k] >= 0, has);
      if (!has) continue;
      const clue_csr *x = d->mod[k].x;
      double row[16] = {0};
      for (int64_t j = x->indptr[r]; j < x->indptr[r + 1]; j++)
        row[x->indices[j]] = x->data[j];
      for (int j = 0; j < (k ? TU_N_VAR2 : TU_N_VAR); j++)
        assert_true(row[j] == (k ? tu_val2(g, j) : tu_val(g, j)));
    }
  }
}

/* The paired fixtures: rna holds c00..c29, adt c10..c39. */
static void check_fixture_values(const clue_dataset *d) {
  check_values_in(d, 0, 30, 10, 40);
}

/* Loads cfg on the world and checks it against a one-process load; *v (when
 * not NULL) receives the gathered metadata of every cell. */
static clue_dataset *load_and_compare(const clue_config *cfg, clue_cells cells, view *vout) {
  clue_comm world = tu_world();
  reference ref = reference_load(cfg, cells);
  clue_err err;
  clue_dataset *d = NULL;
  int rc = clue_dataset_load(cfg, cells, &world, &d, &err);
  TU_OK(rc, &err);
  double *sum = all_checksums(d, &world);
  view v = gather_view(d, &world);
  check_partition(d, &world);
  compare(&ref, d, &v, sum);
  free(sum);
  reference_free(&ref);
  if (vout)
    *vout = v;
  else
    view_free(&v);
  return d;
}

static void check_batches(const clue_dataset *d, const view *v) {
  const char *names[] = {"b0", "b1", "b2", "nan"};
  assert_int_equal(d->n_batches, 4);
  for (int b = 0; b < 4; b++) assert_string_equal(d->batch_names->s[b], names[b]);
  for (int64_t c = 0; c < d->n_cells; c++) {
    int g = tu_cell(v->names->s[c]);
    assert_int_equal(v->batch[c], g == 3 ? 3 : g % 3);
  }
}

static void test_partial_files(void **state) {
  (void)state;
  if (!tu_h5ad_fixtures()) skip();
  clue_config cfg = pair_config("pair_rna.h5ad", "pair_adt.h5ad");
  view v;
  clue_dataset *d = load_and_compare(&cfg, CLUE_CELLS_ALL, &v);
  assert_int_equal(d->n_cells, TU_N_OBS);
  for (int64_t c = 0; c < d->n_cells; c++) /* rna's order, then adt-only cells */
    assert_int_equal(tu_cell(v.names->s[c]), c < 30 ? c : 39 - (c - 30));
  assert_int_equal(d->mod[0].n_cells, 30);
  assert_int_equal(d->mod[1].n_cells, 30);
  assert_int_equal(d->mod[1].n_features, TU_N_VAR2);
  assert_string_equal(d->mod[1].var_names->s[4], "p04");
  check_batches(d, &v);
  check_fixture_values(d);
  view_free(&v);
  clue_dataset_free(d);
  const clue_cells which[] = {CLUE_CELLS_TRAIN, CLUE_CELLS_TEST};
  for (int t = 0; t < 2; t++) {
    d = load_and_compare(&cfg, which[t], &v);
    assert_int_equal(d->n_cells, t ? 8 : 32);
    for (int64_t c = 0; c < d->n_cells; c++)
      assert_int_equal(tu_cell(v.names->s[c]) % 5 == 0, t == 1);
    view_free(&v);
    assert_int_equal(d->n_batches, 4); /* codes do not depend on the selection */
    check_fixture_values(d);
    clue_dataset_free(d);
  }
}

static void test_h5mu(void **state) {
  (void)state;
  if (!tu_h5ad_fixtures()) skip();
  const char *files[] = {"pair.h5mu", "pair_noobsmap.h5mu"};
  for (int k = 0; k < 2; k++) {
    clue_config cfg = pair_config(NULL, NULL);
    snprintf(cfg.h5mu_file, sizeof cfg.h5mu_file, "%s", tu_fixture(files[k]));
    view v;
    clue_dataset *d = load_and_compare(&cfg, CLUE_CELLS_ALL, &v);
    assert_int_equal(d->n_cells, TU_N_OBS);
    for (int64_t c = 0; c < d->n_cells; c++) /* obsmap: global order */
      assert_int_equal(tu_cell(v.names->s[c]), k == 0 || c < 30 ? c : 39 - (c - 30));
    check_batches(d, &v);
    view_free(&v);
    check_fixture_values(d);
    clue_dataset_free(d);
  }
}

/* Bytes a rank read: its shard's data and indices (exactly), plus indptr. */
static void check_bytes(const clue_dataset *d) {
  int64_t shard = 0, indptr = 0;
  for (int k = 0; k < d->n_mod; k++) {
    const h5ad_matrix_info *in = &d->mod[k].info;
    shard += clue_csr_nnz(d->mod[k].x) * (in->data_bytes + in->index_bytes);
    indptr +=
        (h5ad_n_obs(d->mod[k].file) + 1 + 2 * d->mod[k].x->n_rows) * in->indptr_bytes;
  }
  printf("rank %d: read %lld bytes; shard %lld bytes + indptr at most %lld\n",
         tu_world().rank, (long long)d->bytes_read, (long long)shard, (long long)indptr);
  assert_true(d->bytes_read >= shard);
  assert_true(d->bytes_read - shard <= 0.05 * (double)shard + (double)indptr);
}

/* The .h5ad files of a shared data set, rna first. */
static int dataset_files(const char *dir, char files[][4096], char names[][64]) {
  DIR *dp = opendir(dir);
  int n = 0;
  struct dirent *e;
  while (dp && (e = readdir(dp)) && n < 4) {
    size_t len = strlen(e->d_name);
    if (len < 6 || strcmp(e->d_name + len - 5, ".h5ad")) continue;
    snprintf(files[n], 4096, "%s/%s", dir, e->d_name);
    snprintf(names[n], 64, "%.*s", (int)(len - 5), e->d_name);
    n++;
  }
  if (dp) closedir(dp);
  for (int i = 0; i < n; i++) /* rna first, the rest by name */
    for (int j = i + 1; j < n; j++)
      if (strcmp(names[j], "rna") == 0 ||
          (strcmp(names[i], "rna") && strcmp(names[j], names[i]) < 0)) {
        char t[4096];
        memcpy(t, files[i], 4096);
        memcpy(files[i], files[j], 4096);
        memcpy(files[j], t, 4096);
        memcpy(t, names[i], 64);
        memcpy(names[i], names[j], 64);
        memcpy(names[j], t, 64);
      }
  return n;
}

static void test_shared_data(void **state) {
  (void)state;
  const char *sets[] = {"bmmc_cite_600", "bmmc_multiome_500", "pbmc1k_cite_747",
                        "cd8_cite_1774", "eccite_pbmc_500"};
  int done = 0;
  for (int s = 0; s < 5; s++) {
    const char *dir = tu_shared_dataset(sets[s]);
    if (!dir) continue;
    char files[4][4096], names[4][64];
    int n = dataset_files(dir, files, names);
    assert_true(n >= 2);
    clue_config cfg;
    clue_config_defaults(&cfg);
    for (int k = 0; k < n; k++)
      add_mod(&cfg, names[k], files[k],
              strcmp(names[k], "atac") ? CLUE_LIK_NB : CLUE_LIK_BERNOULLI);
    snprintf(cfg.split_key, sizeof cfg.split_key, "split");
    clue_dataset *d = load_and_compare(&cfg, CLUE_CELLS_ALL, NULL);
    assert_true(d->n_cells > 0);
    for (int k = 0; k < n; k++) assert_int_equal(d->mod[k].n_cells, d->n_cells);
    check_bytes(d);
    clue_dataset_free(d);
    d = load_and_compare(&cfg, CLUE_CELLS_TEST, NULL);
    assert_true(d->n_cells > 0);
    clue_dataset_free(d);
    done++;
  }
  if (!done) skip();
}

/* One selected cell on up to 4 ranks: the others hold none and still work. */
static void test_more_ranks_than_cells(void **state) {
  (void)state;
  if (!tu_h5ad_fixtures()) skip();
  clue_config cfg = pair_config("tiny_rna.h5ad", "tiny_adt.h5ad");
  view v;
  clue_dataset *d = load_and_compare(&cfg, CLUE_CELLS_TEST, &v);
  assert_int_equal(d->n_cells, 1);
  assert_string_equal(v.names->s[0], "c00");
  view_free(&v);
  int64_t mine = d->local_end - d->local_begin, total = mine;
  clue_comm world = tu_world();
  clue_comm_sum_int64(&world, &total, 1);
  assert_int_equal(total, 1);
  for (int k = 0; k < 2; k++) assert_int_equal(d->mod[k].x->n_rows, mine);
  check_values_in(d, 0, 3, 0, 3);
  clue_dataset_free(d);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_partial_files),
      cmocka_unit_test(test_h5mu),
      cmocka_unit_test(test_shared_data),
      cmocka_unit_test(test_more_ranks_than_cells),
  };
  return TU_RUN(tests);
}
