/* test_bad_inputs.c — the dataset loader on broken inputs, table-driven: each
 * case must fail with its code and message text, identically on every rank
 * (no hang, no crash), or load when the input is acceptable. The same broken
 * files go through `clue info` in test_bad_inputs.sh.
 *
 * CLUE_TEST_NP: 1 2 3
 */
#include <stdlib.h>
#include <string.h>

#include "clue/dataset.h"
#include "testutil.h"
#include "tu_h5ad.h"

typedef struct bad_case {
  const char *what;
  const char *rna, *adt; /* fixture files (NULL with h5mu) */
  const char *h5mu;
  const char *layer;   /* rna's layer, NULL = X */
  clue_likelihood lik; /* rna's likelihood */
  const char *split_key, *batch_key, *test_value;
  clue_cells cells;
  bool allow_unpaired;
  const char *adt_name; /* modality name of the second one (h5mu), NULL = adt */
  int code;             /* expected status */
  const char *text[3];  /* expected in the message */
} bad_case;

/* Unset fields: likelihood nb, all cells, no split/batch key, status CLUE_OK. */
/* clang-format off */
static const bad_case CASES[] = {
    {.what = "missing file", .rna = "does_not_exist.h5ad", .adt = "ok_small.h5ad",
     .code = CLUE_EIO,
     .text = {"modality rna", "does_not_exist.h5ad", "No such file or directory"}},
    {.what = "not HDF5", .rna = "bad_text.h5ad", .adt = "ok_small.h5ad",
     .code = CLUE_EFORMAT, .text = {"bad_text.h5ad is not an HDF5 file"}},
    {.what = "anndata < 0.8", .rna = "ok_small.h5ad", .adt = "bad_old.h5ad",
     .code = CLUE_EFORMAT,
     .text = {"bad_old.h5ad", "anndata < 0.8", "re-save it with a current anndata"}},
    {.what = "unknown encoding", .rna = "bad_coo.h5ad", .adt = "ok_small.h5ad",
     .code = CLUE_EFORMAT,
     .text = {"bad_coo.h5ad", "X has encoding-type 'coo_matrix'"}},
    {.what = "indptr decreasing", .rna = "bad_indptr_decr.h5ad", .adt = "ok_small.h5ad",
     .code = CLUE_EFORMAT,
     .text = {"bad_indptr_decr.h5ad", "X/indptr decreases at row 7 (17 then 16)"}},
    {.what = "indptr/data mismatch", .rna = "bad_indptr_end.h5ad",
     .adt = "ok_small.h5ad", .code = CLUE_EFORMAT,
     .text = {"bad_indptr_end.h5ad", "X/indptr ends at 93 but X/data holds 94 values"}},
    {.what = "shape mismatch", .rna = "bad_shape.h5ad", .adt = "ok_small.h5ad",
     .code = CLUE_EFORMAT,
     .text = {"bad_shape.h5ad", "X has shape 41 × 13 but obs has 40 rows"}},
    {.what = "index out of range", .rna = "bad_idx_range.h5ad", .adt = "ok_small.h5ad",
     .code = CLUE_EFORMAT,
     .text = {"bad_idx_range.h5ad",
              "X/indices holds column 17 in row 19, outside [0, 13)"}},
    {.what = "negative count", .rna = "bad_negative.h5ad", .adt = "ok_small.h5ad",
     .code = CLUE_EDATA,
     .text = {"bad_negative.h5ad", "X holds a negative value (-2) for cell 'c01'",
              "nb likelihood needs raw counts"}},
    {.what = "negative, normal likelihood", .rna = "bad_negative.h5ad",
     .adt = "ok_small.h5ad", .lik = CLUE_LIK_NORMAL},
    {.what = "NaN count", .rna = "bad_nan.h5ad", .adt = "ok_small.h5ad",
     .lik = CLUE_LIK_NORMAL, .code = CLUE_EDATA,
     .text = {"bad_nan.h5ad", "X holds a non-finite value (nan) for cell 'c01'"}},
    {.what = "duplicated obs names", .rna = "ok_small.h5ad", .adt = "bad_dup.h5ad",
     .code = CLUE_EDATA,
     .text = {"adt (", "bad_dup.h5ad", "obs name 'c03' appears twice (rows 3 and 17)"}},
    {.what = "no shared cell", .rna = "ok_small.h5ad", .adt = "bad_suffix.h5ad",
     .code = CLUE_EDATA,
     .text = {"shares no cell", "'c00' vs 'c00-1'", "data.allow_unpaired"}},
    {.what = "no shared cell, allowed", .rna = "ok_small.h5ad", .adt = "bad_suffix.h5ad",
     .allow_unpaired = true},
    {.what = "empty test selection", .rna = "pair_rna.h5ad", .adt = "pair_adt.h5ad",
     .split_key = "split", .test_value = "nomatch", .cells = CLUE_CELLS_TEST,
     .code = CLUE_EDATA,
     .text = {"no cell selected", "split == 'nomatch'", "values seen include 'test'"}},
    {.what = "test cells without split key", .rna = "pair_rna.h5ad",
     .adt = "pair_adt.h5ad", .cells = CLUE_CELLS_TEST, .code = CLUE_ECONFIG,
     .text = {"data.split_key is not set"}},
    {.what = "missing split column", .rna = "pair_rna.h5ad", .adt = "pair_adt.h5ad",
     .split_key = "sample", .cells = CLUE_CELLS_TRAIN, .code = CLUE_EFORMAT,
     .text = {"data.split_key 'sample' is not an obs column", "pair_rna.h5ad",
              "(columns: split, batch)"}},
    {.what = "missing batch column", .rna = "pair_rna.h5ad", .adt = "pair_adt.h5ad",
     .batch_key = "donor", .code = CLUE_EFORMAT,
     .text = {"data.batch_key 'donor' is not an obs column", "(columns: split, batch)"}},
    {.what = "missing layer", .rna = "pair_rna.h5ad", .adt = "pair_adt.h5ad",
     .layer = "counts", .code = CLUE_EFORMAT,
     .text = {"pair_rna.h5ad has no layer 'counts' (layers: none)"}},
    {.what = "missing modality in .h5mu", .h5mu = "pair.h5mu", .adt_name = "atac",
     .code = CLUE_EFORMAT,
     .text = {"pair.h5mu has no mod/atac (modalities in the file: adt, rna)"}},
};
/* clang-format on */

static void build(const bad_case *b, clue_config *cfg) {
  clue_config_defaults(cfg);
  cfg->n_mod = 2;
  const char *names[2] = {"rna", b->adt_name ? b->adt_name : "adt"};
  const char *files[2] = {b->rna, b->adt};
  for (int k = 0; k < 2; k++) {
    clue_modality_config *m = &cfg->mod[k];
    snprintf(m->name, sizeof m->name, "%s", names[k]);
    if (files[k]) snprintf(m->file, sizeof m->file, "%s", tu_fixture(files[k]));
    snprintf(m->layer, sizeof m->layer, "%s", k == 0 && b->layer ? b->layer : "X");
    m->likelihood = k == 0 ? b->lik : CLUE_LIK_NB;
  }
  if (b->h5mu) snprintf(cfg->h5mu_file, sizeof cfg->h5mu_file, "%s", tu_fixture(b->h5mu));
  if (b->split_key) snprintf(cfg->split_key, sizeof cfg->split_key, "%s", b->split_key);
  if (b->batch_key) snprintf(cfg->batch_key, sizeof cfg->batch_key, "%s", b->batch_key);
  if (b->test_value)
    snprintf(cfg->test_value, sizeof cfg->test_value, "%s", b->test_value);
  cfg->allow_unpaired = b->allow_unpaired;
}

static void test_bad_inputs(void **state) {
  (void)state;
  if (!tu_h5ad_fixtures()) skip();
  clue_comm world = tu_world();
  int failures = 0;
  for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
    const bad_case *b = &CASES[c];
    clue_config cfg;
    build(b, &cfg);
    clue_err err;
    clue_err_clear(&err);
    clue_dataset *d = NULL;
    int rc = clue_dataset_load(&cfg, b->cells, &world, &d, &err);
    /* Every rank must report the same status and message. */
    uint64_t h = clue_hash_string(err.msg);
    int64_t v[4] = {rc, -rc, (int64_t)(h >> 1), -(int64_t)(h >> 1)};
    clue_comm_max_int64(&world, v, 4);
    bool same = v[0] == rc && v[1] == -rc && v[2] == (int64_t)(h >> 1) &&
                v[3] == -(int64_t)(h >> 1);
    bool ok = same && rc == b->code && (rc != CLUE_OK || d != NULL);
    for (int t = 0; ok && t < 3 && b->text[t]; t++)
      ok = strstr(err.msg, b->text[t]) != NULL;
    if (rc == CLUE_OK && b->allow_unpaired) ok = ok && d->n_cells == 2 * TU_N_OBS;
    if (world.rank == 0)
      printf("%-4s %-32s -> %d %s\n", ok ? "ok" : "FAIL", b->what, rc,
             rc ? err.msg : "(loaded)");
    failures += !ok;
    clue_dataset_free(d);
  }
  assert_int_equal(failures, 0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_bad_inputs)};
  return TU_RUN(tests);
}
