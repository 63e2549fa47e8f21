/* test_pairing.c — the distributed pairing, selection, batch coding and
 * partition of the dataset loader against a sequential reference written here
 * (whole columns read by one process, clue_pairing_from_names/_from_obsmap, the
 * batch rule spelled out, clue_partition_weighted over every selected cell), on
 * random files (tests/pairing_fixtures.py): three modalities with overlapping
 * random name sets and batch columns of three kinds, and .h5mu files with and
 * without obsmap whose global obs holds the batch column. Broken variants must
 * fail with the message a sequential pass gives, the same on any number of ranks.
 *
 * CLUE_TEST_NP: 1 2 3 4
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clue/dataset.h"
#include "testutil.h"

/* ---- fixtures ---- */

static const char *fixtures(void) {
  static char dir[4096];
  static int state = 0;
  if (state == 0) {
    snprintf(dir, sizeof dir, "%s", tu_path("pairing"));
    int ok = 0;
    if (tu_world().rank == 0) {
      const char *src = getenv("CLUE_SOURCE_DIR");
      char cmd[8192];
      struct stat st;
      if (src && stat("/usr/bin/python3", &st) == 0) {
        snprintf(cmd, sizeof cmd,
                 "/usr/bin/python3 '%s/tests/pairing_fixtures.py' '%s' > '%s.log' 2>&1", src,
                 dir, dir);
        ok = system(cmd) == 0;
      }
      if (!ok) printf("SKIP: cannot write the pairing fixtures (see %s.log)\n", dir);
      fflush(stdout);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    state = ok ? 1 : -1;
  }
  return state == 1 ? dir : NULL;
}

static const char *fx(const char *name) {
  static char ring[8][4096];
  static int next = 0;
  char *p = ring[next];
  next = (next + 1) % 8;
  snprintf(p, 4096, "%s/%s", fixtures(), name);
  return p;
}

/* mods: "a=a.h5ad,b=b.h5ad" style list of name=file (file empty for an .h5mu). */
static clue_config make_config(const char *h5mu, const char *const *names,
                               const char *const *files, int n) {
  clue_config cfg;
  clue_config_defaults(&cfg);
  for (int k = 0; k < n; k++) {
    clue_modality_config *m = &cfg.mod[cfg.n_mod++];
    snprintf(m->name, sizeof m->name, "%s", names[k]);
    snprintf(m->file, sizeof m->file, "%s", files ? fx(files[k]) : "");
    snprintf(m->layer, sizeof m->layer, "X");
    m->likelihood = CLUE_LIK_NB;
  }
  if (h5mu) snprintf(cfg.h5mu_file, sizeof cfg.h5mu_file, "%s", fx(h5mu));
  snprintf(cfg.split_key, sizeof cfg.split_key, "split");
  snprintf(cfg.batch_key, sizeof cfg.batch_key, "batch");
  return cfg;
}

/* ---- the sequential reference ---- */

typedef struct reference {
  int n_mod;
  clue_pairing *p;
  int64_t *grow;        /* (p->n_cells) global row or −1 */
  h5ad_column *col[CLUE_MAX_MOD + 1]; /* batch/split column per source, global last */
  h5ad_file *file[CLUE_MAX_MOD + 1];
} reference;

/* Label of paired cell c from the sources of `key` (global first). */
static void ref_label(const reference *r, int64_t c, char *buf) {
  const h5ad_column *g = r->col[CLUE_MAX_MOD];
  if (g && r->grow[c] >= 0) {
    h5ad_column_label(g, r->grow[c], buf, 512);
    return;
  }
  for (int k = 0; k < r->n_mod; k++) {
    int64_t row = r->p->row[c * r->n_mod + k];
    if (row >= 0 && r->col[k]) {
      h5ad_column_label(r->col[k], row, buf, 512);
      return;
    }
  }
  fail_msg("cell %lld has no source", (long long)c);
}

static bool has_col(h5ad_file *f, const char *key) {
  clue_strings *cols = NULL;
  clue_err err;
  TU_OK(h5ad_obs_column_names(f, &cols, &err), &err);
  bool found = false;
  for (int64_t i = 0; i < cols->n; i++) found = found || !strcmp(cols->s[i], key);
  clue_strings_free(cols);
  return found;
}

static void ref_read_key(reference *r, const char *key) {
  clue_err err;
  for (int s = 0; s <= CLUE_MAX_MOD; s++) {
    h5ad_column_free(r->col[s]);
    r->col[s] = NULL;
  }
  h5ad_file *g = r->file[CLUE_MAX_MOD];
  if (g && has_col(g, key)) {
    TU_OK(h5ad_read_obs_column(g, key, &r->col[CLUE_MAX_MOD], &err), &err);
    return;
  }
  for (int k = 0; k < r->n_mod; k++)
    if (has_col(r->file[k], key)) TU_OK(h5ad_read_obs_column(r->file[k], key, &r->col[k], &err), &err);
}

static void ref_pair(reference *r, const clue_config *cfg) {
  clue_comm self = clue_comm_self();
  clue_err err;
  r->n_mod = cfg->n_mod;
  clue_strings *names[CLUE_MAX_MOD] = {0};
  const char *what[CLUE_MAX_MOD];
  for (int k = 0; k < cfg->n_mod; k++) {
    char group[64] = "";
    if (cfg->h5mu_file[0]) snprintf(group, sizeof group, "mod/%s", cfg->mod[k].name);
    TU_OK(h5ad_open(cfg->h5mu_file[0] ? cfg->h5mu_file : cfg->mod[k].file, group, &self,
                    &r->file[k], &err), &err);
    TU_OK(h5ad_read_obs_names(r->file[k], &names[k], &err), &err);
    what[k] = cfg->mod[k].name;
  }
  bool by_map = false;
  int64_t *maps[CLUE_MAX_MOD] = {0}, n = 0;
  clue_strings *gn = NULL;
  if (cfg->h5mu_file[0]) {
    TU_OK(h5ad_open(cfg->h5mu_file, "", &self, &r->file[CLUE_MAX_MOD], &err), &err);
    TU_OK(h5mu_read_obs_names(cfg->h5mu_file, &gn, &err), &err);
    by_map = true;
    for (int k = 0; k < cfg->n_mod; k++) {
      TU_OK(h5mu_read_obsmap(cfg->h5mu_file, cfg->mod[k].name, &maps[k], &n, &err), &err);
      by_map = by_map && maps[k];
    }
  }
  if (by_map)
    TU_OK(clue_pairing_from_obsmap(gn, maps, cfg->n_mod, &r->p, &err), &err);
  else
    TU_OK(clue_pairing_from_names(names, cfg->n_mod, what, &r->p, &err), &err);
  r->grow = calloc((size_t)r->p->n_cells + 1, sizeof *r->grow);
  for (int64_t c = 0, i = 0; c < r->p->n_cells; c++) {
    r->grow[c] = -1;
    if (by_map) {
      while (i < gn->n) {
        bool any = false;
        for (int k = 0; k < cfg->n_mod; k++) any = any || maps[k][i] > 0;
        if (any) break;
        i++;
      }
      r->grow[c] = i++;
    } else if (gn) {
      for (int64_t g = 0; g < gn->n; g++)
        if (!strcmp(gn->s[g], r->p->names->s[c])) r->grow[c] = g;
    }
  }
  for (int k = 0; k < cfg->n_mod; k++) {
    clue_strings_free(names[k]);
    free(maps[k]);
  }
  clue_strings_free(gn);
}

/* Batch codes of every paired cell: categories in source order, then other
 * labels by first cell, unused dropped, "nan" last. */
static int32_t *ref_batches(reference *r, clue_strings **batch_names) {
  int64_t n = r->p->n_cells;
  char **set = calloc(1024, sizeof *set);
  int n_set = 0;
  int64_t *code = calloc((size_t)n + 1, sizeof *code);
  for (int s = -1; s < r->n_mod; s++) {
    h5ad_column *c = r->col[s < 0 ? CLUE_MAX_MOD : s];
    if (!c || c->kind != H5AD_COL_CATEGORICAL) continue;
    for (int64_t j = 0; j < c->categories->n; j++) {
      bool dup = false;
      for (int q = 0; q < n_set; q++) dup = dup || !strcmp(set[q], c->categories->s[j]);
      if (!dup) set[n_set++] = strdup(c->categories->s[j]);
    }
  }
  char lab[512];
  for (int64_t c = 0; c < n; c++) {
    ref_label(r, c, lab);
    code[c] = -1;
    if (!lab[0]) continue;
    for (int q = 0; q < n_set && code[c] < 0; q++)
      if (!strcmp(set[q], lab)) code[c] = q;
    if (code[c] < 0) {
      set[n_set] = strdup(lab);
      code[c] = n_set++;
    }
  }
  int *newc = calloc((size_t)n_set + 2, sizeof *newc);
  for (int64_t c = 0; c < n; c++) newc[code[c] >= 0 ? code[c] : n_set] = 1;
  const char *bn[1024];
  int nb = 0;
  for (int q = 0; q <= n_set; q++)
    if (newc[q]) {
      bn[nb] = q < n_set ? set[q] : "nan";
      newc[q] = nb++;
    }
  int32_t *out = calloc((size_t)n + 1, sizeof *out);
  for (int64_t c = 0; c < n; c++) out[c] = newc[code[c] >= 0 ? code[c] : n_set];
  clue_err err;
  *batch_names = clue_strings_from(bn, nb, &err);
  for (int q = 0; q < n_set; q++) free(set[q]);
  free(set);
  free(code);
  free(newc);
  return out;
}

static void ref_free(reference *r) {
  clue_pairing_free(r->p);
  free(r->grow);
  for (int s = 0; s <= CLUE_MAX_MOD; s++) {
    h5ad_column_free(r->col[s]);
    h5ad_close(r->file[s]);
  }
}

/* ---- the comparison ---- */

/* The rows each rank read (random file orders: the ranks' rows interleave in
 * every file) equal a one-process read of the whole matrix. */
static void check_values(const clue_dataset *d, const reference *r) {
  clue_err err;
  for (int k = 0; k < d->n_mod; k++) {
    int64_t n = h5ad_n_obs(r->file[k]);
    int64_t *all = malloc((size_t)n * sizeof *all);
    for (int64_t i = 0; i < n; i++) all[i] = i;
    clue_csr *whole = NULL;
    TU_OK(h5ad_read_rows(r->file[k], "X", all, n, &whole, &err), &err);
    const clue_csr *x = d->mod[k].x;
    for (int64_t i = 0; i < d->local_end - d->local_begin; i++) {
      int64_t fr = d->local_file_row[i * d->n_mod + k], lr = d->local_row[i * d->n_mod + k];
      assert_int_equal(fr >= 0, lr >= 0);
      if (fr < 0) continue;
      int64_t len = x->indptr[lr + 1] - x->indptr[lr];
      assert_int_equal(len, whole->indptr[fr + 1] - whole->indptr[fr]);
      assert_memory_equal(x->indices + x->indptr[lr], whole->indices + whole->indptr[fr],
                          (size_t)len * sizeof *x->indices);
      assert_memory_equal(x->data + x->indptr[lr], whole->data + whole->indptr[fr],
                          (size_t)len * sizeof *x->data);
    }
    clue_csr_free(whole);
    free(all);
  }
}

static void check_load(const clue_config *cfg, clue_cells cells) {
  reference r = {0};
  ref_pair(&r, cfg);
  int64_t n = r.p->n_cells, nm = cfg->n_mod;
  uint8_t *keep = calloc((size_t)n + 1, 1);
  char lab[512];
  ref_read_key(&r, "split");
  for (int64_t c = 0; c < n; c++) {
    ref_label(&r, c, lab);
    bool test = !strcmp(lab, cfg->test_value);
    keep[c] = cells == CLUE_CELLS_ALL || (cells == CLUE_CELLS_TEST) == test;
  }
  ref_read_key(&r, "batch");
  clue_strings *bnames = NULL;
  int32_t *batch = ref_batches(&r, &bnames);
  /* the selection and its weights */
  clue_comm self = clue_comm_self(), world = tu_world();
  clue_err err;
  int64_t *nnz[CLUE_MAX_MOD];
  for (int k = 0; k < nm; k++) TU_OK(h5ad_read_row_nnz(r.file[k], "X", &nnz[k], &err), &err);
  int64_t *sel = calloc((size_t)n + 1, sizeof *sel), *w = calloc((size_t)n + 1, sizeof *w);
  int64_t ns = 0;
  for (int64_t c = 0; c < n; c++) {
    if (!keep[c]) continue;
    for (int k = 0; k < nm; k++) {
      int64_t row = r.p->row[c * nm + k];
      if (row >= 0) w[ns] += nnz[k][row];
    }
    sel[ns++] = c;
  }
  int64_t *b = calloc((size_t)world.size, sizeof *b), *e = calloc((size_t)world.size, sizeof *e);
  clue_partition_weighted(ns, w, world.size, b, e);
  (void)self;
  /* the distributed load */
  clue_dataset *d = NULL;
  TU_OK(clue_dataset_load(cfg, cells, &world, &d, &err), &err);
  assert_int_equal(d->n_cells, ns);
  assert_int_equal(d->n_batches, bnames->n);
  for (int64_t j = 0; j < bnames->n; j++) assert_string_equal(d->batch_names->s[j], bnames->s[j]);
  for (int q = 0; q < world.size; q++) assert_int_equal(d->rank_begin[q], b[q]);
  for (int64_t i = 0; i < d->local_end - d->local_begin; i++) {
    int64_t c = sel[d->local_begin + i];
    assert_string_equal(d->local_names->s[i], r.p->names->s[c]);
    assert_int_equal(d->local_batch[i], batch[c]);
    for (int k = 0; k < nm; k++)
      assert_int_equal(d->local_file_row[i * nm + k], r.p->row[c * nm + k]);
  }
  check_values(d, &r);
  for (int k = 0; k < nm; k++) {
    int64_t have = 0;
    for (int64_t j = 0; j < ns; j++) have += r.p->row[sel[j] * nm + k] >= 0;
    assert_int_equal(d->mod[k].n_cells, have);
    free(nnz[k]);
  }
  clue_dataset_free(d);
  clue_strings_free(bnames);
  free(batch), free(keep), free(sel), free(w), free(b), free(e);
  ref_free(&r);
}

static void test_three_modalities(void **state) {
  (void)state;
  if (!fixtures()) skip();
  const char *names[] = {"a", "b", "c"}, *files[] = {"a.h5ad", "b.h5ad", "c.h5ad"};
  clue_config cfg = make_config(NULL, names, files, 3);
  const clue_cells which[] = {CLUE_CELLS_ALL, CLUE_CELLS_TRAIN, CLUE_CELLS_TEST};
  for (int t = 0; t < 3; t++) check_load(&cfg, which[t]);
  /* another order of the modalities: another pairing order and batch source */
  const char *names2[] = {"c", "b", "a"}, *files2[] = {"c.h5ad", "b.h5ad", "a.h5ad"};
  cfg = make_config(NULL, names2, files2, 3);
  check_load(&cfg, CLUE_CELLS_TRAIN);
}

static void test_h5mu(void **state) {
  (void)state;
  if (!fixtures()) skip();
  const char *names[] = {"a", "b"};
  const char *mu[] = {"ab.h5mu", "ab_noobsmap.h5mu"};
  for (int i = 0; i < 2; i++) {
    clue_config cfg = make_config(mu[i], names, NULL, 2);
    check_load(&cfg, CLUE_CELLS_ALL);
    check_load(&cfg, CLUE_CELLS_TEST);
  }
}

/* The expected message of a broken variant, from expect_errors.txt. */
static void expected_message(const char *name, char *out, size_t size) {
  FILE *f = fopen(fx("expect_errors.txt"), "r");
  assert_non_null(f);
  char line[8192];
  out[0] = '\0';
  while (fgets(line, sizeof line, f)) {
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = '\0';
    if (strcmp(line, name)) continue;
    tab[strcspn(tab + 1, "\n") + 1] = '\0';
    snprintf(out, size, "%s", tab + 1);
  }
  fclose(f);
  assert_true(out[0]);
}

static void expect_failure(const clue_config *cfg, const char *name) {
  char want[8192];
  expected_message(name, want, sizeof want);
  clue_comm world = tu_world();
  clue_err err;
  clue_dataset *d = NULL;
  assert_int_not_equal(clue_dataset_load(cfg, CLUE_CELLS_ALL, &world, &d, &err), CLUE_OK);
  assert_null(d);
  if (!strstr(err.msg, want)) fail_msg("%s: got '%s', want '%s'", name, err.msg, want);
  /* the same message on any number of ranks: no rank named */
  if (!strncmp(err.msg, "rank ", 5)) fail_msg("%s: a rank is named: %s", name, err.msg);
}

static void test_errors(void **state) {
  (void)state;
  if (!fixtures()) skip();
  const char *names[] = {"a", "b", "c"};
  const char *dup_b[] = {"a.h5ad", "dup_b.h5ad", "dup_c.h5ad"};
  clue_config cfg = make_config(NULL, names, dup_b, 3);
  expect_failure(&cfg, "dup_b"); /* b's duplicate comes first, though c has one too */
  const char *dup_c[] = {"a.h5ad", "b.h5ad", "dup_c.h5ad"};
  cfg = make_config(NULL, names, dup_c, 3);
  expect_failure(&cfg, "dup_c");
  const char *nos[] = {"a.h5ad", "b.h5ad", "c_nobatch.h5ad"};
  cfg = make_config(NULL, names, nos, 3);
  expect_failure(&cfg, "nosource");
  const char *ab[] = {"a", "b"};
  const char *mu[][2] = {{"obsmap_dup.h5mu", "obsmap_dup"},
                         {"obsmap_range.h5mu", "obsmap_range"},
                         {"global_dup.h5mu", "global_dup"}};
  for (int i = 0; i < 3; i++) {
    cfg = make_config(mu[i][0], ab, NULL, 2);
    expect_failure(&cfg, mu[i][1]);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_three_modalities),
      cmocka_unit_test(test_h5mu),
      cmocka_unit_test(test_errors),
  };
  return TU_RUN(tests);
}
