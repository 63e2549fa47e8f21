/* test_simulate.c — the simulator: files written by N ranks equal (every
 * dataset and attribute) those written by one rank; paired fraction, split and
 * densities within binomial/statistical bounds; counts are integers (0/1 for
 * binary ATAC); paired cells share name and latent position across modalities;
 * cell types are recoverable from the RNA counts; bad options are refused.
 *
 * CLUE_TEST_NP: 1 2 3 */
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/sim.h"
#include "testutil.h"

/* ---- comparing two HDF5 files object by object (rank 0) ---- */

static hid_t utf8_vlen(void) {
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, H5T_VARIABLE);
  H5Tset_cset(t, H5T_CSET_UTF8);
  return t;
}

/* Reads n values of the object (dataset when is_attr is false) into new memory,
 * strings as a char* array; *is_str tells which. */
static void *read_values(hid_t obj, bool is_attr, hid_t ftype, int64_t n, bool *is_str) {
  *is_str = H5Tget_class(ftype) == H5T_STRING;
  hid_t mt = *is_str ? utf8_vlen() : H5Tget_native_type(ftype, H5T_DIR_ASCEND);
  size_t size = H5Tget_size(mt);
  void *buf = calloc((size_t)n + 1, size);
  herr_t st = n == 0 ? 0
              : is_attr ? H5Aread(obj, mt, buf)
                        : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
  assert_true(st >= 0);
  H5Tclose(mt);
  return buf;
}

static void expect_same_values(hid_t a, hid_t b, bool is_attr, const char *what) {
  hid_t ta = is_attr ? H5Aget_type(a) : H5Dget_type(a);
  hid_t tb = is_attr ? H5Aget_type(b) : H5Dget_type(b);
  hid_t sa = is_attr ? H5Aget_space(a) : H5Dget_space(a);
  hid_t sb = is_attr ? H5Aget_space(b) : H5Dget_space(b);
  int64_t n = H5Sget_simple_extent_npoints(sa);
  if (n != H5Sget_simple_extent_npoints(sb) || H5Tequal(ta, tb) <= 0)
    print_error("%s: shape or type differs\n", what);
  assert_int_equal(n, H5Sget_simple_extent_npoints(sb));
  assert_true(H5Tequal(ta, tb) > 0);
  bool str_a, str_b;
  void *va = read_values(a, is_attr, ta, n, &str_a);
  void *vb = read_values(b, is_attr, tb, n, &str_b);
  if (str_a) {
    for (int64_t i = 0; i < n; i++) assert_string_equal(((char **)va)[i], ((char **)vb)[i]);
    for (int64_t i = 0; i < n; i++) {
      H5free_memory(((char **)va)[i]);
      H5free_memory(((char **)vb)[i]);
    }
  } else {
    hid_t mt = H5Tget_native_type(ta, H5T_DIR_ASCEND);
    if (memcmp(va, vb, (size_t)n * H5Tget_size(mt)) != 0) print_error("%s differs\n", what);
    assert_memory_equal(va, vb, (size_t)n * H5Tget_size(mt));
    H5Tclose(mt);
  }
  free(va);
  free(vb);
  H5Sclose(sa);
  H5Sclose(sb);
  H5Tclose(ta);
  H5Tclose(tb);
}

typedef struct compare_ctx {
  hid_t other;
  int64_t objects;
} compare_ctx;

static herr_t compare_attr(hid_t obj, const char *name, const H5A_info_t *info, void *data) {
  (void)info;
  hid_t twin = *(hid_t *)data;
  hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
  hid_t b = H5Aopen(twin, name, H5P_DEFAULT);
  if (b < 0) print_error("attribute %s missing\n", name);
  assert_true(b >= 0);
  expect_same_values(a, b, true, name);
  H5Aclose(a);
  H5Aclose(b);
  return 0;
}

static herr_t compare_object(hid_t root, const char *name, const H5O_info_t *info,
                             void *data) {
  compare_ctx *c = data;
  c->objects++;
  hid_t a = H5Oopen(root, name, H5P_DEFAULT);
  hid_t b = H5Oopen(c->other, name, H5P_DEFAULT);
  if (b < 0) print_error("object %s missing\n", name);
  assert_true(b >= 0);
  if (info->type == H5O_TYPE_DATASET) expect_same_values(a, b, false, name);
  H5O_info_t ib;
  H5Oget_info2(b, &ib, H5O_INFO_NUM_ATTRS);
  assert_int_equal(ib.num_attrs, info->num_attrs);
  H5Aiterate2(a, H5_INDEX_NAME, H5_ITER_INC, NULL, compare_attr, &b);
  H5Oclose(a);
  H5Oclose(b);
  return 0;
}

static herr_t count_object(hid_t root, const char *name, const H5O_info_t *info, void *data) {
  (void)root;
  (void)name;
  (void)info;
  (*(int64_t *)data)++;
  return 0;
}

/* Every object, attribute and value of a is in b, and b has no other object. */
static void expect_same_file(const char *pa, const char *pb) {
  hid_t a = H5Fopen(pa, H5F_ACC_RDONLY, H5P_DEFAULT);
  hid_t b = H5Fopen(pb, H5F_ACC_RDONLY, H5P_DEFAULT);
  assert_true(a >= 0 && b >= 0);
  compare_ctx c = {.other = b, .objects = 0};
  assert_true(H5Ovisit2(a, H5_INDEX_NAME, H5_ITER_INC, compare_object, &c,
                        H5O_INFO_BASIC | H5O_INFO_NUM_ATTRS) >= 0);
  int64_t in_b = 0;
  H5Ovisit2(b, H5_INDEX_NAME, H5_ITER_INC, count_object, &in_b, H5O_INFO_BASIC);
  assert_int_equal(c.objects, in_b);
  assert_true(c.objects > 20);
  H5Fclose(a);
  H5Fclose(b);
}

/* ---- reading parts of a written file (rank 0) ---- */

static void *read_dataset(hid_t f, const char *path, hid_t mtype, size_t elem, int64_t *n) {
  hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
  if (d < 0) print_error("missing %s\n", path);
  assert_true(d >= 0);
  hid_t s = H5Dget_space(d);
  *n = H5Sget_simple_extent_npoints(s);
  void *buf = calloc((size_t)*n + 1, elem);
  if (*n > 0) assert_true(H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) >= 0);
  H5Sclose(s);
  H5Dclose(d);
  return buf;
}

static sim_options small_options(void) {
  sim_options o;
  sim_options_defaults(&o);
  o.like[0] = '\0';
  o.n_cells = 900;
  o.n_features[SIM_RNA] = 300;
  o.n_features[SIM_ATAC] = 500;
  o.n_features[SIM_ADT] = 20;
  o.paired = 0.6;
  o.n_batches = 3;
  o.n_types = 5;
  o.seed = 42;
  o.density[SIM_ATAC] = 0.05;
  return o;
}

/* The data do not depend on the number of ranks: all ranks vs rank 0 alone. */
static void test_rank_independence(void **state) {
  (void)state;
  clue_comm world = tu_world(), self = clue_comm_self();
  clue_err err;
  sim_options o = small_options();
  sim_summary *s = calloc(1, sizeof *s);
  TU_OK(sim_write(&o, tu_path("all.h5mu"), SIM_FORMAT_H5MU, &world, NULL, NULL, s, &err),
        &err);
  TU_OK(sim_write(&o, tu_path("all_h5ad"), SIM_FORMAT_H5AD, &world, NULL, NULL, s, &err), &err);
  if (world.rank == 0) {
    TU_OK(sim_write(&o, tu_path("one.h5mu"), SIM_FORMAT_H5MU, &self, NULL, NULL, s, &err),
          &err);
    TU_OK(sim_write(&o, tu_path("one_h5ad"), SIM_FORMAT_H5AD, &self, NULL, NULL, s, &err),
          &err);
    expect_same_file(tu_path("all.h5mu"), tu_path("one.h5mu"));
    const char *mods[3] = {"rna", "atac", "adt"};
    for (int m = 0; m < 3; m++) {
      char a[64], b[64];
      snprintf(a, sizeof a, "all_h5ad/%s.h5ad", mods[m]);
      snprintf(b, sizeof b, "one_h5ad/%s.h5ad", mods[m]);
      expect_same_file(tu_path(a), tu_path(b));
    }
  }
  clue_comm_barrier(&world);
  free(s);
}

/* Fractions and densities of a larger set, checked in the file. */
static void test_statistics(void **state) {
  (void)state;
  clue_comm world = tu_world();
  clue_err err;
  sim_options o = small_options();
  o.n_cells = 4000;
  o.paired = 0.3;
  o.test_fraction = 0.25;
  sim_summary *s = calloc(1, sizeof *s);
  const char *path = tu_path("stats.h5mu");
  TU_OK(sim_write(&o, path, SIM_FORMAT_H5MU, &world, NULL, NULL, s, &err), &err);
  if (world.rank == 0) {
    /* binomial bounds: 5 standard deviations */
    double sd_pair = sqrt(o.n_cells * 0.3 * 0.7), sd_test = sqrt(o.n_cells * 0.25 * 0.75);
    assert_true(fabs((double)s->n_paired - 0.3 * o.n_cells) < 5 * sd_pair);
    assert_true(fabs((double)s->n_test - 0.25 * o.n_cells) < 5 * sd_test);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    int64_t n;
    uint32_t *maps[3];
    const char *mods[3] = {"rna", "atac", "adt"};
    for (int m = 0; m < 3; m++) {
      char p[64];
      snprintf(p, sizeof p, "/obsmap/%s", mods[m]);
      maps[m] = read_dataset(f, p, H5T_NATIVE_UINT32, 4, &n);
      assert_int_equal(n, o.n_cells);
    }
    int64_t paired = 0, in_mod[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
      int k = (maps[0][i] > 0) + (maps[1][i] > 0) + (maps[2][i] > 0);
      assert_true(k == 1 || k == 3); /* in every modality or in exactly one */
      paired += k == 3;
      for (int m = 0; m < 3; m++) in_mod[m] += maps[m][i] > 0;
    }
    assert_int_equal(paired, s->n_paired);
    for (int m = 0; m < 3; m++) {
      assert_int_equal(in_mod[m], s->n_obs[m]);
      /* unpaired cells are spread over the three modalities */
      double expect = paired + (o.n_cells - paired) / 3.0;
      assert_true(fabs(in_mod[m] - expect) < 5 * sqrt((o.n_cells - paired) * 2.0 / 9.0));
      char p[64];
      snprintf(p, sizeof p, "/mod/%s/X/data", mods[m]);
      float *x = read_dataset(f, p, H5T_NATIVE_FLOAT, 4, &n);
      assert_int_equal(n, s->nnz[m]);
      for (int64_t j = 0; j < n; j++) assert_true(x[j] >= 1 && x[j] == floorf(x[j]));
      free(x);
      double density = (double)s->nnz[m] / (double)s->n_obs[m] / (double)o.n_features[m];
      if (fabs(density / o.density[m] - 1) > 0.15)
        print_error("%s density %.4f, target %.4f\n", mods[m], density, o.density[m]);
      assert_true(fabs(density / o.density[m] - 1) <= 0.15);
      free(maps[m]);
    }
    /* split: codes 0 = train, 1 = test */
    int32_t *split = read_dataset(f, "/obs/split/codes", H5T_NATIVE_INT32, 4, &n);
    int64_t tests = 0;
    for (int64_t i = 0; i < n; i++) tests += split[i] == 1;
    assert_int_equal(tests, s->n_test);
    free(split);
    H5Fclose(f);
  }
  free(s);
}

/* Paired cells: same obs name and latent position in each .h5ad; binary ATAC. */
static void test_paired_cells(void **state) {
  (void)state;
  clue_comm world = tu_world();
  clue_err err;
  sim_options o = small_options();
  o.atac_binary = true;
  o.n_features[SIM_ADT] = 0;
  sim_summary *s = calloc(1, sizeof *s);
  TU_OK(sim_write(&o, tu_path("pairs"), SIM_FORMAT_H5AD, &world, NULL, NULL, s, &err), &err);
  if (world.rank == 0) {
    hid_t fr = H5Fopen(tu_path("pairs/rna.h5ad"), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t fa = H5Fopen(tu_path("pairs/atac.h5ad"), H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fr >= 0 && fa >= 0);
    int64_t nr, na, n;
    hid_t vs = utf8_vlen();
    char **names_r = read_dataset(fr, "/obs/_index", vs, sizeof(char *), &nr);
    char **names_a = read_dataset(fa, "/obs/_index", vs, sizeof(char *), &na);
    float *zr = read_dataset(fr, "/obsm/X_latent", H5T_NATIVE_FLOAT, 4, &n);
    assert_int_equal(n, nr * o.latent_dim);
    float *za = read_dataset(fa, "/obsm/X_latent", H5T_NATIVE_FLOAT, 4, &n);
    float *xa = read_dataset(fa, "/X/data", H5T_NATIVE_FLOAT, 4, &n);
    for (int64_t j = 0; j < n; j++) assert_true(xa[j] == 1.0f);
    int64_t shared = 0;
    for (int64_t i = 0, j = 0; i < nr && j < na;) { /* both in global order */
      int c = strcmp(names_r[i], names_a[j]);
      if (c == 0) {
        assert_memory_equal(zr + i * o.latent_dim, za + j * o.latent_dim,
                            (size_t)o.latent_dim * sizeof(float));
        shared++;
        i++;
        j++;
      } else if (c < 0) {
        i++;
      } else {
        j++;
      }
    }
    assert_int_equal(shared, s->n_paired);
    assert_int_equal(nr + na - shared, o.n_cells);
    for (int64_t i = 0; i < nr; i++) H5free_memory(names_r[i]);
    for (int64_t i = 0; i < na; i++) H5free_memory(names_a[i]);
    free(names_r);
    free(names_a);
    free(zr);
    free(za);
    free(xa);
    H5Tclose(vs);
    H5Fclose(fr);
    H5Fclose(fa);
  }
  free(s);
}

/* Cell types are recoverable from the counts: nearest type mean of log1p
 * normalised RNA profiles (leave-one-out) is right for most cells. */
static void test_structure(void **state) {
  (void)state;
  clue_err err;
  sim_options o;
  sim_options_defaults(&o); /* bmmc_cite_600 shape */
  sim_model *m = NULL;
  TU_OK(sim_model_new(&o, &m, &err), &err);
  clue_csr *x = NULL;
  TU_OK(sim_generate(m, SIM_RNA, 0, o.n_cells, &x, NULL, &err), &err);
  int64_t n = x->n_rows, g = x->n_cols;
  int K = o.n_types;
  double *prof = calloc((size_t)(n * g), sizeof *prof);
  double *mean = calloc((size_t)(K * g), sizeof *mean);
  int *type = calloc((size_t)n, sizeof *type), *count = calloc((size_t)K, sizeof *count);
  for (int64_t i = 0; i < n; i++) {
    sim_cell c;
    sim_cell_get(m, i, &c);
    type[i] = c.type;
    count[c.type]++;
    double lib = 0;
    for (int64_t k = x->indptr[i]; k < x->indptr[i + 1]; k++) lib += x->data[k];
    for (int64_t k = x->indptr[i]; k < x->indptr[i + 1]; k++)
      prof[i * g + x->indices[k]] = log1p(1e4 * x->data[k] / lib);
    for (int64_t j = 0; j < g; j++) mean[type[i] * g + j] += prof[i * g + j];
  }
  int64_t right = 0;
  for (int64_t i = 0; i < n; i++) {
    int best = -1;
    double best_d = INFINITY;
    for (int t = 0; t < K; t++) {
      int cnt = count[t] - (t == type[i]);
      if (cnt <= 0) continue;
      double d = 0;
      for (int64_t j = 0; j < g; j++) {
        double mu = (mean[t * g + j] - (t == type[i] ? prof[i * g + j] : 0)) / cnt;
        d += (prof[i * g + j] - mu) * (prof[i * g + j] - mu);
      }
      if (d < best_d) {
        best_d = d;
        best = t;
      }
    }
    right += best == type[i];
  }
  double acc = (double)right / n;
  print_message("nearest type mean accuracy %.3f (chance about %.2f)\n", acc, 1.0 / K);
  assert_true(acc > 0.8);
  free(prof);
  free(mean);
  free(type);
  free(count);
  clue_csr_free(x);
  sim_model_free(m);
}

static void test_bad_options(void **state) {
  (void)state;
  clue_err err;
  sim_options o;
  sim_options_defaults(&o);
  TU_OK(sim_options_check(&o, &err), &err);
  sim_options b = o;
  b.n_features[SIM_ADT] = 0;
  assert_int_equal(sim_options_check(&b, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "two modalities"));
  b = o;
  b.paired = 1.5;
  assert_int_equal(sim_options_check(&b, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "--paired"));
  b = o;
  b.density[SIM_RNA] = 0;
  assert_int_equal(sim_options_check(&b, &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "--rna-density"));
  b = o;
  b.n_cells = 0;
  assert_int_equal(sim_options_check(&b, &err), CLUE_EINVAL);
  assert_int_equal(sim_options_like(&b, "nope", &err), CLUE_EINVAL);
  assert_non_null(strstr(err.msg, "bmmc_cite_600"));
  TU_OK(sim_options_like(&b, "bmmc_multiome_500", &err), &err);
  assert_int_equal(b.n_features[SIM_ATAC], 600);
  assert_int_equal(b.n_features[SIM_ADT], 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rank_independence), cmocka_unit_test(test_statistics),
      cmocka_unit_test(test_paired_cells),      cmocka_unit_test(test_structure),
      cmocka_unit_test(test_bad_options),
  };
  return TU_RUN(tests);
}
