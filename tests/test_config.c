/* test_config.c — the run configuration: defaults, the example configs, YAML
 * round trips, `--set` overrides, one case per kind of error (with the file,
 * line, key path and allowed values in the message), the validation rules, and
 * robustness of the loader against arbitrary bytes. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clue/config.h"
#include "testutil.h"

/* ---- helpers ---------------------------------------------------------- */

/* Defaults, then the YAML text named "t.yaml" with paths under /base. */
static int load(const char *yaml, clue_config *cfg, clue_err *err) {
  clue_config_defaults(cfg);
  clue_err_clear(err);
  return clue_config_load_string(yaml, "/base", "t.yaml", cfg, err);
}

/* Fails unless msg contains every non-NULL want[i]. */
static void expect_parts(const char *name, const char *msg, const char *const *want, int n) {
  for (int i = 0; i < n; i++) {
    if (want[i] && !strstr(msg, want[i])) {
      print_error("case %s: message \"%s\" lacks \"%s\"\n", name, msg, want[i]);
      fail();
    }
  }
}

static void write_file(const char *path, const char *text, size_t len) {
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(text, 1, len, f), len);
  assert_int_equal(fclose(f), 0);
}

/* Equal as settings and as bytes (the path they came from aside). */
static void assert_same(const clue_config *a, const clue_config *b) {
  assert_true(clue_config_equal(a, b));
  clue_config *x = malloc(sizeof *x), *y = malloc(sizeof *y);
  assert_non_null(x);
  assert_non_null(y);
  memcpy(x, a, sizeof *x);
  memcpy(y, b, sizeof *y);
  memset(x->path, 0, sizeof x->path);
  memset(y->path, 0, sizeof y->path);
  assert_memory_equal(x, y, sizeof *x);
  free(x);
  free(y);
}

/* The repository's folder: $CLUE_SOURCE_DIR, else two levels above this file. */
static const char *source_dir(void) {
  static char dir[4096];
  const char *env = getenv("CLUE_SOURCE_DIR");
  if (env && *env) return env;
  snprintf(dir, sizeof dir, "%s", __FILE__);
  for (int i = 0; i < 2; i++) {
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
  }
  return dir;
}

/* ---- defaults --------------------------------------------------------- */

static void test_defaults(void **state) {
  (void)state;
  clue_config c;
  clue_config_defaults(&c);
  assert_int_equal(c.version, 1);
  assert_string_equal(c.path, "");
  assert_int_equal(c.n_mod, 0);
  assert_string_equal(c.h5mu_file, "");
  assert_string_equal(c.batch_key, "");
  assert_string_equal(c.split_key, "");
  assert_string_equal(c.test_value, "test");
  assert_false(c.allow_unpaired);
  assert_int_equal(c.latent_dim, 50);
  assert_int_equal(c.encoder.depth, 2);
  assert_int_equal(c.encoder.width, 256);
  assert_int_equal(c.decoder.depth, 2);
  assert_int_equal(c.decoder.width, 256);
  assert_int_equal(c.discriminator.depth, 2);
  assert_int_equal(c.discriminator.width, 256);
  assert_true(c.dropout == 0.2);
  assert_true(c.normalize_u);
  assert_true(c.lam_data == 1.0 && c.lam_kl == 1.0);
  assert_true(c.lam_align == 0.02 && c.lam_cross == 0.02 && c.lam_cos == 0.02);
  assert_true(c.lam_real_cross == 0.0);
  assert_int_equal(c.batch_size, 128);
  assert_true(c.lr == 2e-3);
  assert_int_equal(c.optimizer, CLUE_OPT_RMSPROP);
  assert_int_equal(c.max_epochs, CLUE_AUTO);
  assert_int_equal(c.max_steps, 0);
  assert_int_equal(c.align_burnin, CLUE_AUTO);
  assert_int_equal(c.patience, CLUE_AUTO);
  assert_int_equal(c.reduce_lr_patience, CLUE_AUTO);
  assert_true(c.val_split == 0.1);
  assert_true(c.seed == 0);
  assert_int_equal(c.checkpoint_every, 1);
  assert_true(c.early_stopping);
  assert_int_equal(c.embed_cells, CLUE_CELLS_ALL);
  assert_string_equal(c.out_dir, "runs/clue");

  /* A modality created by name gets the per-modality defaults. */
  clue_err err;
  TU_OK(clue_config_set(&c, "data.modalities.rna=", &err), &err);
  assert_int_equal(c.n_mod, 1);
  assert_string_equal(c.mod[0].name, "rna");
  assert_string_equal(c.mod[0].file, "");
  assert_string_equal(c.mod[0].layer, "X");
  assert_int_equal(c.mod[0].likelihood, CLUE_LIK_NB);
  assert_int_equal(c.mod[0].preprocess, CLUE_PREP_PCA);
  assert_int_equal(c.mod[0].normalize, CLUE_NORM_LOG1P);
  assert_int_equal(c.mod[0].features, CLUE_AUTO);
  assert_int_equal(c.mod[0].n_components, 100);
  assert_true(c.mod[0].weight == 1.0);
}

/* An empty text (or only comments) gives the defaults; validation then asks
 * for modalities. */
static void test_empty(void **state) {
  (void)state;
  clue_config d, c;
  clue_err err;
  clue_config_defaults(&d);
  const char *texts[] = {"", "# only a comment\n", "---\n", "~\n", "\n\n"};
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    TU_OK(load(texts[i], &c, &err), &err);
    assert_same(&c, &d);
  }
  write_file(tu_path("empty.yaml"), "", 0);
  clue_config_defaults(&c);
  TU_OK(clue_config_load(tu_path("empty.yaml"), &c, &err), &err);
  assert_string_equal(c.path, tu_path("empty.yaml"));
  assert_same(&c, &d);
  assert_int_equal(clue_config_validate(&c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "empty.yaml: data.modalities: missing"));
}

static void test_names(void **state) {
  (void)state;
  assert_string_equal(clue_likelihood_name(CLUE_LIK_NB), "nb");
  assert_string_equal(clue_likelihood_name(CLUE_LIK_BERNOULLI), "bernoulli");
  assert_string_equal(clue_likelihood_name(CLUE_LIK_NORMAL), "normal");
  assert_string_equal(clue_preprocess_name(CLUE_PREP_PCA), "pca");
  assert_string_equal(clue_preprocess_name(CLUE_PREP_LSI), "lsi");
  assert_string_equal(clue_preprocess_name(CLUE_PREP_NONE), "none");
  assert_string_equal(clue_normalize_name(CLUE_NORM_LOG1P), "log1p");
  assert_string_equal(clue_normalize_name(CLUE_NORM_CLR), "clr");
  assert_string_equal(clue_normalize_name(CLUE_NORM_NONE), "none");
  assert_string_equal(clue_optimizer_name(CLUE_OPT_RMSPROP), "rmsprop");
  assert_string_equal(clue_optimizer_name(CLUE_OPT_ADAM), "adam");
  assert_string_equal(clue_cells_name(CLUE_CELLS_ALL), "all");
  assert_string_equal(clue_cells_name(CLUE_CELLS_TRAIN), "train");
  assert_string_equal(clue_cells_name(CLUE_CELLS_TEST), "test");
  assert_string_equal(clue_likelihood_name((clue_likelihood)7), "?");

  clue_config c;
  clue_err err;
  TU_OK(load("data: {modalities: {rna: {}, adt: {}, atac: {}}}", &c, &err), &err);
  assert_int_equal(clue_config_find_modality(&c, "rna"), 0);
  assert_int_equal(clue_config_find_modality(&c, "adt"), 1);
  assert_int_equal(clue_config_find_modality(&c, "atac"), 2);
  assert_int_equal(clue_config_find_modality(&c, "ATAC"), -1);
  assert_int_equal(clue_config_find_modality(&c, ""), -1);
}

/* ---- the example configs ---------------------------------------------- */

static void load_example(const char *name, clue_config *c) {
  char path[4096];
  clue_err err;
  snprintf(path, sizeof path, "%s/configs/%s", source_dir(), name);
  clue_config_defaults(c);
  TU_OK(clue_config_load(path, c, &err), &err);
  TU_OK(clue_config_validate(c, &err), &err);
  /* The data files named must exist wherever the shared data does. */
  const char *shared = getenv("CLUE_SHARED_DATA");
  struct stat st;
  if (!shared || stat(shared, &st) != 0 || c->h5mu_file[0]) return;
  for (int m = 0; m < c->n_mod; m++) {
    if (stat(c->mod[m].file, &st) != 0) {
      print_error("%s: %s does not exist\n", name, c->mod[m].file);
      fail();
    }
  }
}

static void assert_cite_hparams(const clue_config *c) {
  assert_int_equal(c->latent_dim, 20);
  assert_int_equal(c->encoder.depth, 2);
  assert_int_equal(c->encoder.width, 512);
  assert_int_equal(c->decoder.depth, 1);
  assert_int_equal(c->decoder.width, 128);
  assert_int_equal(c->discriminator.depth, 2);
  assert_int_equal(c->discriminator.width, 128);
  assert_true(c->lam_align == 2.0 && c->lam_cross == 2.0 && c->lam_cos == 1.0);
  assert_true(c->lam_kl == 1.0 && c->lam_data == 1.0 && c->dropout == 0.2);
  assert_int_equal(c->n_mod, 2);
  assert_string_equal(c->mod[0].name, "rna");
  assert_string_equal(c->mod[1].name, "adt");
  assert_int_equal(c->mod[0].normalize, CLUE_NORM_LOG1P);
  assert_int_equal(c->mod[1].normalize, CLUE_NORM_CLR);
  assert_int_equal(c->mod[1].likelihood, CLUE_LIK_NB);
  assert_string_equal(c->split_key, "split");
  assert_string_equal(c->test_value, "test");
  assert_true(c->mod[0].file[0] == '/' && strstr(c->mod[0].file, "/rna.h5ad"));
}

static void test_examples(void **state) {
  (void)state;
  clue_config c;
  load_example("cite.yaml", &c);
  assert_cite_hparams(&c);
  assert_string_equal(c.batch_key, "batch");
  assert_non_null(strstr(c.mod[0].file, "/configs/../../shared/data/bmmc_cite_600/rna.h5ad"));
  assert_non_null(strstr(c.out_dir, "/configs/../runs/cite"));

  load_example("multiome.yaml", &c);
  assert_int_equal(c.latent_dim, 50);
  assert_int_equal(c.encoder.depth, 2);
  assert_int_equal(c.encoder.width, 512);
  assert_int_equal(c.decoder.depth, 1);
  assert_int_equal(c.decoder.width, 256);
  assert_int_equal(c.discriminator.depth, 1);
  assert_int_equal(c.discriminator.width, 256);
  assert_true(c.lam_kl == 0.3 && c.lam_align == 0.02 && c.lam_cross == 1.0 && c.lam_cos == 0.02);
  assert_int_equal(c.n_mod, 2);
  assert_string_equal(c.mod[1].name, "atac");
  assert_int_equal(c.mod[1].likelihood, CLUE_LIK_BERNOULLI);
  assert_int_equal(c.mod[1].preprocess, CLUE_PREP_LSI);
  assert_string_equal(c.batch_key, "batch");

  const char *cite_like[] = {"cd8_cite.yaml", "pbmc1k_cite.yaml", "eccite_pbmc.yaml"};
  for (int i = 0; i < 3; i++) {
    load_example(cite_like[i], &c);
    assert_cite_hparams(&c);
    assert_string_equal(c.batch_key, "");
  }

  load_example("atlas_h5mu.yaml", &c);
  assert_true(c.h5mu_file[0] == '/' && strstr(c.h5mu_file, "/configs/atlas.h5mu"));
  assert_int_equal(c.n_mod, 2);
  assert_string_equal(c.mod[0].file, "");
  assert_string_equal(c.mod[1].layer, "counts");
  assert_string_equal(c.split_key, "");
}

/* ---- round trips ------------------------------------------------------ */

/* Every key differs from its default; names needing quotes are included. */
static const char *all_keys_yaml =
    "version: 1\n"
    "data:\n"
    "  modalities:\n"
    "    gex: {file: rna.h5ad, layer: counts, likelihood: normal, preprocess: none,\n"
    "          normalize: none, features: all, n_components: 7, weight: 0.5}\n"
    "    \"peaks\": {file: /abs/atac.h5ad, layer: X, likelihood: bernoulli, preprocess: lsi,\n"
    "              normalize: log1p, features: 3000, n_components: 50, weight: 2}\n"
    "    prot-1:\n"
    "      file: ./sub/../adt.h5ad\n"
    "      likelihood: nb\n"
    "      preprocess: pca\n"
    "      normalize: clr\n"
    "      features: 12\n"
    "      n_components: 11\n"
    "      weight: 0\n"
    "  file: multi.h5mu\n"
    "  batch_key: \"donor: id #1\"\n"
    "  split_key: fold\n"
    "  test_value: 'yes'\n"
    "  allow_unpaired: true\n"
    "model: {latent_dim: 7, encoder: {depth: 3, width: 33}, decoder: {depth: 4, width: 17},\n"
    "        discriminator: {depth: 5, width: 9}, dropout: 0.35, normalize_u: false}\n"
    "loss: {data: 0.5, kl: 0.3, align: 0.12345678901234568, cross: 1e-3, real_cross: 0.25,\n"
    "       cos: 3}\n"
    "train: {batch_size: 77, lr: 1.5e-4, optimizer: adam, max_epochs: 300,\n"
    "        max_steps: 9000000000, align_burnin: 0, patience: 4, reduce_lr_patience: 2,\n"
    "        val_split: 0, seed: 18446744073709551615, checkpoint_every: 5,\n"
    "        early_stopping: false}\n"
    "embed: {cells: test}\n"
    "output: {dir: out/x}\n";

static void assert_all_keys(const clue_config *c) {
  assert_int_equal(c->n_mod, 3);
  const clue_modality_config *g = &c->mod[0], *p = &c->mod[1], *a = &c->mod[2];
  assert_string_equal(g->name, "gex");
  assert_string_equal(g->file, "/base/rna.h5ad");
  assert_string_equal(g->layer, "counts");
  assert_int_equal(g->likelihood, CLUE_LIK_NORMAL);
  assert_int_equal(g->preprocess, CLUE_PREP_NONE);
  assert_int_equal(g->normalize, CLUE_NORM_NONE);
  assert_int_equal(g->features, 0);
  assert_int_equal(g->n_components, 7);
  assert_true(g->weight == 0.5);
  assert_string_equal(p->name, "peaks");
  assert_string_equal(p->file, "/abs/atac.h5ad");
  assert_int_equal(p->likelihood, CLUE_LIK_BERNOULLI);
  assert_int_equal(p->preprocess, CLUE_PREP_LSI);
  assert_int_equal(p->features, 3000);
  assert_int_equal(p->n_components, 50);
  assert_true(p->weight == 2.0);
  assert_string_equal(a->name, "prot-1");
  assert_string_equal(a->file, "/base/sub/../adt.h5ad");
  assert_string_equal(a->layer, "X");
  assert_int_equal(a->normalize, CLUE_NORM_CLR);
  assert_int_equal(a->features, 12);
  assert_int_equal(a->n_components, 11);
  assert_true(a->weight == 0.0);
  assert_string_equal(c->h5mu_file, "/base/multi.h5mu");
  assert_string_equal(c->batch_key, "donor: id #1");
  assert_string_equal(c->split_key, "fold");
  assert_string_equal(c->test_value, "yes");
  assert_true(c->allow_unpaired);
  assert_int_equal(c->latent_dim, 7);
  assert_int_equal(c->encoder.depth, 3);
  assert_int_equal(c->encoder.width, 33);
  assert_int_equal(c->decoder.depth, 4);
  assert_int_equal(c->decoder.width, 17);
  assert_int_equal(c->discriminator.depth, 5);
  assert_int_equal(c->discriminator.width, 9);
  assert_true(c->dropout == 0.35 && !c->normalize_u);
  assert_true(c->lam_data == 0.5 && c->lam_kl == 0.3 && c->lam_align == 0.12345678901234568);
  assert_true(c->lam_cross == 1e-3 && c->lam_real_cross == 0.25 && c->lam_cos == 3.0);
  assert_int_equal(c->batch_size, 77);
  assert_true(c->lr == 1.5e-4);
  assert_int_equal(c->optimizer, CLUE_OPT_ADAM);
  assert_int_equal(c->max_epochs, 300);
  assert_true(c->max_steps == 9000000000LL);
  assert_int_equal(c->align_burnin, 0);
  assert_int_equal(c->patience, 4);
  assert_int_equal(c->reduce_lr_patience, 2);
  assert_true(c->val_split == 0.0);
  assert_true(c->seed == UINT64_MAX);
  assert_int_equal(c->checkpoint_every, 5);
  assert_false(c->early_stopping);
  assert_int_equal(c->embed_cells, CLUE_CELLS_TEST);
  assert_string_equal(c->out_dir, "/base/out/x");
}

/* to_yaml → load gives back an equal config, and writing it again gives the
 * same text. */
static void round_trip(const clue_config *c) {
  clue_err err;
  char *text = clue_config_to_yaml(c);
  assert_non_null(text);
  clue_config back;
  clue_config_defaults(&back);
  int rc = clue_config_load_string(text, NULL, "written", &back, &err);
  if (rc) print_error("%s\n---\n%s", err.msg, text);
  TU_OK(rc, &err);
  assert_same(c, &back);
  char *again = clue_config_to_yaml(&back);
  assert_non_null(again);
  assert_string_equal(text, again);
  free(again);
  free(text);
}

static void test_round_trip(void **state) {
  (void)state;
  clue_config c;
  clue_err err;
  clue_config_defaults(&c);
  round_trip(&c);
  char *text = clue_config_to_yaml(&c);
  assert_non_null(strstr(text, "max_epochs: auto"));
  assert_non_null(strstr(text, "modalities: {}"));
  assert_non_null(strstr(text, "  encoder:\n    depth: 2"));
  free(text);

  TU_OK(load(all_keys_yaml, &c, &err), &err);
  assert_all_keys(&c);
  round_trip(&c);
  text = clue_config_to_yaml(&c);
  assert_non_null(strstr(text, "features: all"));
  assert_non_null(strstr(text, "batch_key: \"donor: id #1\""));

  /* Through a file in another folder: the paths are absolute, so nothing moves. */
  write_file(tu_path("written.yaml"), text, strlen(text));
  free(text);
  clue_config back;
  clue_config_defaults(&back);
  TU_OK(clue_config_load(tu_path("written.yaml"), &back, &err), &err);
  assert_same(&c, &back);

  /* Loading on top of a config overrides only what the text names. */
  TU_OK(clue_config_load_string("model: {latent_dim: 9}\ndata: {modalities: {gex: {weight: 4}}}",
                                NULL, NULL, &back, &err), &err);
  assert_int_equal(back.latent_dim, 9);
  assert_true(back.mod[0].weight == 4.0);
  assert_int_equal(back.mod[0].n_components, 7);
  assert_int_equal(back.n_mod, 3);
  assert_false(clue_config_equal(&c, &back));

  /* Programmatic odd text round-trips too (quotes, backslashes, controls). */
  clue_config_defaults(&c);
  snprintf(c.batch_key, sizeof c.batch_key, "a\"b\\c d");
  snprintf(c.test_value, sizeof c.test_value, "null");
  snprintf(c.split_key, sizeof c.split_key, "-x");
  TU_OK(clue_config_set(&c, "data.modalities.auto.file=/x.h5ad", &err), &err);
  TU_OK(clue_config_set(&c, "data.modalities.true.file=/y.h5ad", &err), &err);
  round_trip(&c);
}

/* ---- paths ------------------------------------------------------------ */

static void test_paths(void **state) {
  (void)state;
  clue_config c;
  clue_err err;
  char sub[4096], cwd[4096], want[8192];
  snprintf(sub, sizeof sub, "%s/sub", tu_tmpdir());
  mkdir(sub, 0755);
  const char *yaml = "data:\n  modalities:\n    rna: {file: rna.h5ad}\n"
                     "    adt: {file: /abs/adt.h5ad}\n    atac: {file: ./x/./atac.h5ad}\n"
                     "output: {dir: ../out}\n";
  write_file(tu_path("sub/c.yaml"), yaml, strlen(yaml));
  clue_config_defaults(&c);
  TU_OK(clue_config_load(tu_path("sub/c.yaml"), &c, &err), &err);
  snprintf(want, sizeof want, "%s/rna.h5ad", sub);
  assert_string_equal(c.mod[0].file, want);
  assert_string_equal(c.mod[1].file, "/abs/adt.h5ad");
  snprintf(want, sizeof want, "%s/x/atac.h5ad", sub);
  assert_string_equal(c.mod[2].file, want);
  snprintf(want, sizeof want, "%s/../out", sub);
  assert_string_equal(c.out_dir, want);

  /* A relative config path: still relative to the file, made absolute. */
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(tu_tmpdir()), 0);
  clue_config d;
  clue_config_defaults(&d);
  TU_OK(clue_config_load("./sub/c.yaml", &d, &err), &err);
  assert_string_equal(d.path, "./sub/c.yaml");
  assert_same(&c, &d);
  clue_config_defaults(&d);
  TU_OK(clue_config_load("sub//c.yaml", &d, &err), &err);
  assert_same(&c, &d);

  /* --set: relative to the current folder. */
  TU_OK(clue_config_set(&d, "data.modalities.rna.file=./y/rna.h5ad", &err), &err);
  snprintf(want, sizeof want, "%s/y/rna.h5ad", tu_tmpdir());
  assert_string_equal(d.mod[0].file, want);
  TU_OK(clue_config_set(&d, "output.dir=runs/a", &err), &err);
  snprintf(want, sizeof want, "%s/runs/a", tu_tmpdir());
  assert_string_equal(d.out_dir, want);
  TU_OK(clue_config_set(&d, "data.file=/abs/a.h5mu", &err), &err);
  assert_string_equal(d.h5mu_file, "/abs/a.h5mu");
  TU_OK(clue_config_set(&d, "data.file=", &err), &err);
  assert_string_equal(d.h5mu_file, "");
  assert_int_equal(chdir(cwd), 0);

  /* load_string without a base folder keeps relative paths as written. */
  clue_config_defaults(&c);
  TU_OK(clue_config_load_string("data: {file: a/b.h5mu}", NULL, NULL, &c, &err), &err);
  assert_string_equal(c.h5mu_file, "a/b.h5mu");
  clue_config_defaults(&c);
  TU_OK(clue_config_load_string("data: {file: a/b.h5mu}", "/r/./s/", NULL, &c, &err), &err);
  assert_string_equal(c.h5mu_file, "/r/s/a/b.h5mu");
}

/* ---- --set ------------------------------------------------------------ */

static void test_set(void **state) {
  (void)state;
  clue_config c;
  clue_err err;
  TU_OK(load("data: {modalities: {rna: {file: r.h5ad}}}", &c, &err), &err);
  TU_OK(clue_config_set(&c, "model.encoder.width=1024", &err), &err);
  assert_int_equal(c.encoder.width, 1024);
  assert_int_equal(c.encoder.depth, 2);
  TU_OK(clue_config_set(&c, " train.seed = 42 ", &err), &err);
  assert_true(c.seed == 42);
  TU_OK(clue_config_set(&c, "train.max_epochs=10", &err), &err);
  assert_int_equal(c.max_epochs, 10);
  TU_OK(clue_config_set(&c, "train.max_epochs=auto", &err), &err);
  assert_int_equal(c.max_epochs, CLUE_AUTO);
  TU_OK(clue_config_set(&c, "data.split_key=split", &err), &err);
  TU_OK(clue_config_set(&c, "data.split_key=", &err), &err);
  assert_string_equal(c.split_key, "");
  TU_OK(clue_config_set(&c, "model={latent_dim: 9, decoder: {depth: 1}}", &err), &err);
  assert_int_equal(c.latent_dim, 9);
  assert_int_equal(c.decoder.depth, 1);
  assert_int_equal(c.decoder.width, 256);
  TU_OK(clue_config_set(&c, "model.normalize_u=false", &err), &err);
  assert_false(c.normalize_u);
  TU_OK(clue_config_set(&c, "data.test_value=\"true\"", &err), &err);
  assert_string_equal(c.test_value, "true");

  /* An existing modality is changed in place; a new one is appended. */
  TU_OK(clue_config_set(&c, "data.modalities.rna.likelihood=bernoulli", &err), &err);
  assert_int_equal(c.n_mod, 1);
  assert_int_equal(c.mod[0].likelihood, CLUE_LIK_BERNOULLI);
  assert_string_equal(c.mod[0].file, "/base/r.h5ad");
  TU_OK(clue_config_set(&c, "data.modalities.adt.normalize=clr", &err), &err);
  assert_int_equal(c.n_mod, 2);
  assert_string_equal(c.mod[1].name, "adt");
  assert_int_equal(c.mod[1].normalize, CLUE_NORM_CLR);
  assert_int_equal(c.mod[1].n_components, 100);
  TU_OK(clue_config_set(&c, "data.modalities.atac={file: /d/atac.h5ad, preprocess: lsi}", &err),
        &err);
  assert_int_equal(c.n_mod, 3);
  assert_string_equal(c.mod[2].file, "/d/atac.h5ad");
  assert_int_equal(c.mod[2].preprocess, CLUE_PREP_LSI);
  TU_OK(clue_config_set(&c, "data.modalities.adt.features=all", &err), &err);
  assert_int_equal(c.mod[1].features, 0);

  /* Errors leave the config as it was and name the key. */
  struct { const char *set, *want1, *want2; } bad[] = {
      {"model.latent_dim", "malformed override", "key.path=value"},
      {"=3", "malformed", NULL},
      {"model..width=3", "malformed", NULL},
      {"model.encoder.width.=3", "malformed", NULL},
      {"data.modalities.r/na.file=x", "malformed", NULL},
      {"model.encoder.width=abc", "model.encoder.width: got abc, not an integer",
       "allowed: an integer from 1 to 65536"},
      {"model.encoder.widht=3", "unknown key model.encoder.widht", "did you mean width?"},
      {"model.encoder=3", "model.encoder: got a single value 3", "mapping"},
      {"model.encodr.width=3", "unknown key model.encodr", "did you mean encoder?"},
      {"trian.lr=1", "unknown key trian", "did you mean train?"},
      {"data.modalities.rna.lik=nb", "unknown key data.modalities.rna.lik",
       "allowed keys here: file, layer, likelihood"},
      {"data.modalities.rna.likelihood=poisson", "data.modalities.rna.likelihood: got poisson",
       "one of nb, bernoulli, normal"},
      {"train.lr=0", "train.lr: 0 is out of range", "a number > 0"},
      {"model.dropout=[0.1]", "model.dropout: got a list", NULL},
      {"model.dropout=\"0.1\"", "without quotes", NULL},
      {"model.dropout=0.1: x", "model.dropout: got a mapping", NULL},
      {"data.test_value='open", "value, column", "YAML syntax error"},
      {"early_stopping=false", "unknown key early_stopping", "train.early_stopping"},
      {"version=2", "version: 2 is out of range", "allowed: 1"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    clue_config before;
    memcpy(&before, &c, sizeof c);
    clue_err_clear(&err);
    int rc = clue_config_set(&c, bad[i].set, &err);
    if (rc != CLUE_ECONFIG) print_error("--set %s: rc %d (%s)\n", bad[i].set, rc, err.msg);
    assert_int_equal(rc, CLUE_ECONFIG);
    const char *want[] = {bad[i].want1, bad[i].want2};
    expect_parts(bad[i].set, err.msg, want, 2);
    assert_null(strstr(err.msg, "t.yaml"));
    assert_memory_equal(&before, &c, sizeof c);
  }

  /* Up to CLUE_MAX_MOD modalities; one more is refused. */
  char a[64];
  for (int m = c.n_mod; m < CLUE_MAX_MOD; m++) {
    snprintf(a, sizeof a, "data.modalities.m%d.file=/m%d.h5ad", m, m);
    TU_OK(clue_config_set(&c, a, &err), &err);
  }
  assert_int_equal(c.n_mod, CLUE_MAX_MOD);
  assert_int_equal(clue_config_set(&c, "data.modalities.extra.file=/e.h5ad", &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "too many modalities"));
  assert_int_equal(c.n_mod, CLUE_MAX_MOD);
}

/* ---- the error suite -------------------------------------------------- */

typedef struct bad_case {
  const char *name;
  const char *yaml;
  const char *want[4]; /* substrings of the message */
} bad_case;

static const bad_case bad_cases[] = {
    {"syntax: unclosed list", "model:\n  latent_dim: [1, 2\n",
     {"t.yaml:3:1:", "YAML syntax error", "flow sequence", "line 2"}},
    {"syntax: tab indent", "model:\n\tlatent_dim: 3\n", {"t.yaml:2:1:", "YAML syntax error", "YAML indents with spaces only"}},
    {"syntax: bad indentation", "model:\n  latent_dim: 3\n decoder: {}\n",
     {"t.yaml:3:", "YAML syntax error"}},
    {"unknown key", "model:\n  latent_dimm: 3\n",
     {"t.yaml:2:", "unknown key model.latent_dimm", "did you mean latent_dim?",
      "allowed keys here: latent_dim, encoder, decoder"}},
    {"unknown section", "modle:\n  latent_dim: 3\n",
     {"t.yaml:1:", "unknown key modle", "did you mean model?", "version, data, model, loss"}},
    {"misplaced key", "train:\n  dropout: 0.3\n",
     {"t.yaml:2:", "unknown key train.dropout", "did you mean model.dropout?"}},
    {"unknown modality key", "data:\n  modalities:\n    rna: {file: a.h5ad, likelyhood: nb}\n",
     {"t.yaml:3:", "data.modalities.rna.likelyhood", "did you mean likelihood?"}},
    {"modality outside modalities", "data:\n  rna: {file: a.h5ad}\n",
     {"t.yaml:2:", "unknown key data.rna", "modalities go under data.modalities"}},
    {"modality key at data level", "data:\n  likelihood: nb\n",
     {"unknown key data.likelihood", "did you mean data.modalities.<name>.likelihood?"}},
    {"dotted key", "model.latent_dim: 3\n", {"t.yaml:1:", "nested keys"}},
    {"mapping for a number", "model:\n  encoder:\n    width: {a: 1}\n",
     {"t.yaml:3:", "model.encoder.width: got a mapping", "allowed: an integer from 1 to 65536"}},
    {"list for a number", "train:\n  lr: [1]\n", {"t.yaml:2:", "train.lr: got a list", "> 0"}},
    {"text for an integer", "train:\n  batch_size: abc\n",
     {"t.yaml:2:", "train.batch_size: got abc, not an integer", "from 1 to 1048576"}},
    {"fraction for an integer", "model:\n  latent_dim: 1.5\n",
     {"t.yaml:2:", "model.latent_dim: got 1.5, not an integer", "from 1 to 4096"}},
    {"hex for an integer", "model:\n  latent_dim: 0x10\n", {"not an integer"}},
    {"quoted number", "model:\n  latent_dim: \"20\"\n",
     {"t.yaml:2:", "model.latent_dim: got the text \"20\"", "without quotes"}},
    {"text for a number", "loss: {kl: high}\n", {"loss.kl: got high, not a number", "a number >= 0"}},
    {"infinity", "loss: {kl: .inf}\n", {"loss.kl: got .inf"}},
    {"yes for a bool", "model:\n  normalize_u: yes\n",
     {"t.yaml:2:", "model.normalize_u: got yes", "true or false", "yes/no/on/off"}},
    {"number for a bool", "train: {early_stopping: 1}\n",
     {"train.early_stopping: got 1; allowed: true or false"}},
    {"quoted bool", "train: {early_stopping: \"true\"}\n", {"train.early_stopping"}},
    {"missing number", "model:\n  latent_dim:\n", {"t.yaml:2:", "model.latent_dim: no value given"}},
    {"dropout 1", "model:\n  dropout: 1\n",
     {"t.yaml:2:", "model.dropout: 1 is out of range", "allowed: a number in [0, 1)"}},
    {"negative dropout", "model: {dropout: -0.1}\n", {"model.dropout: -0.1 is out of range"}},
    {"negative width", "model:\n  decoder: {width: -5}\n",
     {"t.yaml:2:", "model.decoder.width: -5 is out of range", "from 1 to 65536"}},
    {"depth 0", "model: {encoder: {depth: 0}}\n", {"model.encoder.depth: 0 is out of range", "1 to 16"}},
    {"val_split 1", "train: {val_split: 1}\n", {"train.val_split: 1 is out of range", "[0, 1)"}},
    {"lr 0", "train: {lr: 0}\n", {"train.lr: 0 is out of range", "a number > 0"}},
    {"negative lr", "train: {lr: -1e-3}\n", {"train.lr: -1e-3 is out of range"}},
    {"batch_size 0", "train: {batch_size: 0}\n", {"train.batch_size: 0 is out of range"}},
    {"auto where not allowed", "train: {batch_size: auto}\n", {"train.batch_size: got auto"}},
    {"-1 for an auto key", "train: {patience: -1}\n",
     {"train.patience: -1 is out of range", "auto or an integer from 1"}},
    {"n_components 0", "data: {modalities: {rna: {n_components: 0}}}\n",
     {"data.modalities.rna.n_components: 0 is out of range"}},
    {"negative weight", "data: {modalities: {rna: {weight: -1}}}\n",
     {"data.modalities.rna.weight: -1 is out of range", ">= 0"}},
    {"features 0", "data: {modalities: {rna: {features: 0}}}\n",
     {"data.modalities.rna.features", "auto, all or an integer >= 1"}},
    {"huge integer", "train: {max_steps: 99999999999999999999}\n",
     {"train.max_steps: 99999999999999999999 is out of range"}},
    {"negative seed", "train: {seed: -1}\n", {"train.seed: -1 is out of range"}},
    {"seed above 2^64", "train: {seed: 18446744073709551616}\n", {"train.seed", "out of range"}},
    {"version 2", "version: 2\nmodel: {bogus: 1}\n",
     {"t.yaml:1:", "version: 2 is out of range", "allowed: 1"}},
    {"duplicate key", "model:\n  latent_dim: 3\n  latent_dim: 4\n",
     {"t.yaml:3:", "duplicate key model.latent_dim", "first given at line 2"}},
    {"duplicate section", "model: {}\nloss: {}\nmodel: {}\n", {"t.yaml:3:", "duplicate key model"}},
    {"duplicate modality", "data:\n  modalities:\n    rna: {file: a}\n    rna: {file: b}\n",
     {"t.yaml:4:", "duplicate key data.modalities.rna"}},
    {"unknown likelihood", "data:\n  modalities:\n    rna: {likelihood: poisson}\n",
     {"t.yaml:3:", "data.modalities.rna.likelihood: got poisson",
      "allowed: one of nb, bernoulli, normal"}},
    {"unknown preprocess", "data: {modalities: {rna: {preprocess: PCA}}}\n",
     {"one of pca, lsi, none"}},
    {"unknown normalize", "data: {modalities: {rna: {normalize: log}}}\n",
     {"one of log1p, clr, none"}},
    {"unknown optimizer", "train:\n  optimizer: sgd\n",
     {"t.yaml:2:", "train.optimizer: got sgd", "one of rmsprop, adam"}},
    {"unknown cells", "embed: {cells: some}\n", {"embed.cells", "one of all, train, test"}},
    {"too many modalities",
     "data:\n  modalities:\n    m1: {}\n    m2: {}\n    m3: {}\n    m4: {}\n    m5: {}\n"
     "    m6: {}\n    m7: {}\n    m8: {}\n    m9: {}\n",
     {"t.yaml:11:", "too many modalities", "at most 8"}},
    {"modality name too long",
     "data:\n  modalities:\n    "
     "abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghij: {}\n",
     {"t.yaml:3:", "data.modalities: the name", "1 to 63 letters"}},
    {"modality name with a space", "data: {modalities: {\"r na\": {}}}\n",
     {"the name \"r na\" is not allowed"}},
    {"batch_key too long",
     "data: {batch_key: abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcd}\n",
     {"data.batch_key: 64 characters is too long", "at most 63"}},
    {"control character", "data: {batch_key: \"a\\tb\"}\n", {"data.batch_key: contains a control"}},
    {"NUL character", "data: {batch_key: \"a\\0b\"}\n", {"data.batch_key: the value contains a NUL"}},
    {"alias", "model:\n  latent_dim: &d 5\n  decoder: {width: *d}\n",
     {"t.yaml:3:", "aliases (*d) are not supported"}},
    {"tag", "version: !!int 1\n", {"t.yaml:1:", "tags (tag:yaml.org,2002:int) are not supported"}},
    {"two documents", "version: 1\n---\nversion: 1\n", {"t.yaml:2:", "second YAML document"}},
    {"top-level value", "hello\n", {"top level: got a single value hello", "mapping"}},
    {"top-level list", "- a\n- b\n", {"top level: got a list"}},
    {"complex key", "? [a]\n: 1\n", {"t.yaml:1:", "a key must be a single value"}},
    {"modalities as a list", "data:\n  modalities: [rna, adt]\n",
     {"t.yaml:2:", "data.modalities: got a list", "rna: {file: rna.h5ad}"}},
    {"modality as a value", "data: {modalities: {rna: r.h5ad}}\n",
     {"data.modalities.rna: got a single value", "file, layer"}},
    {"section as a value", "model: 5\n", {"t.yaml:1:", "model: got a single value 5"}},
    {"non-UTF-8", "version: 1\nmodel: {latent_dim: 1\xff}\n",
     {"t.yaml:2:", "YAML syntax error", "UTF-8"}},
};

static void test_errors(void **state) {
  (void)state;
  clue_config d, c;
  clue_config_defaults(&d);
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const bad_case *b = &bad_cases[i];
    clue_err err;
    int rc = load(b->yaml, &c, &err);
    if (rc != CLUE_ECONFIG) {
      print_error("case %s: rc %d, message \"%s\"\n", b->name, rc, err.msg);
      fail();
    }
    expect_parts(b->name, err.msg, b->want, 4);
    assert_same(&c, &d); /* nothing half-applied */
  }
}

/* Errors that need a file: NUL bytes, size limit, missing file, a folder. */
static void test_file_errors(void **state) {
  (void)state;
  clue_config c;
  clue_err err;
  clue_config_defaults(&c);
  write_file(tu_path("nul.yaml"), "version: 1\nmodel: {latent_dim: 3\0}\n", 34);
  assert_int_equal(clue_config_load(tu_path("nul.yaml"), &c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "nul.yaml:2:"));
  assert_non_null(strstr(err.msg, "YAML syntax error"));

  size_t big = (1u << 20) + 10;
  char *text = malloc(big);
  assert_non_null(text);
  memset(text, '#', big);
  write_file(tu_path("big.yaml"), text, big);
  free(text);
  assert_int_equal(clue_config_load(tu_path("big.yaml"), &c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "larger than"));

  assert_int_equal(clue_config_load(tu_path("absent.yaml"), &c, &err), CLUE_EIO);
  assert_non_null(strstr(err.msg, "absent.yaml"));
  assert_int_equal(clue_config_load(tu_tmpdir(), &c, &err), CLUE_EIO);
  assert_non_null(strstr(err.msg, "not a regular file"));

  write_file(tu_path("bad.yaml"), "model:\n  encoder: {width: wide}\n", 31);
  assert_int_equal(clue_config_load(tu_path("bad.yaml"), &c, &err), CLUE_ECONFIG);
  char want[4200];
  snprintf(want, sizeof want, "%s:2: model.encoder.width: got wide", tu_path("bad.yaml"));
  assert_non_null(strstr(err.msg, want));
  clue_config d;
  clue_config_defaults(&d);
  assert_same(&c, &d);
}

/* ---- validation ------------------------------------------------------- */

#define TWO_MODS "data:\n  modalities:\n    rna: {file: r.h5ad}\n    adt: {file: a.h5ad}\n"

typedef struct rule_case {
  const char *name;
  const char *yaml;
  const char *want; /* NULL: valid */
} rule_case;

static const rule_case rule_cases[] = {
    {"two modalities", TWO_MODS, NULL},
    {"no modalities", "", "data.modalities: missing; CLUE needs at least 2"},
    {"one modality", "data: {modalities: {rna: {file: r.h5ad}}}", "only 1 modality given"},
    {"missing file", "data: {modalities: {rna: {file: r.h5ad}, adt: {}}}",
     "data.modalities.adt.file: missing"},
    {"h5mu form", "data: {file: a.h5mu, modalities: {rna: {}, atac: {preprocess: lsi, "
                  "likelihood: bernoulli}}}", NULL},
    {"file and data.file", "data: {file: a.h5mu, modalities: {rna: {file: r.h5ad}, adt: {}}}",
     "data.modalities.rna.file and data.file are both set"},
    {"h5mu as a modality file", "data: {modalities: {rna: {file: r.h5mu}, adt: {file: a.h5ad}}}",
     "data.modalities.rna.file: /base/r.h5mu is a MuData file"},
    {"h5ad as data.file", "data: {file: x.h5ad, modalities: {rna: {}, adt: {}}}",
     "data.file: /base/x.h5ad is an AnnData file"},
    {"lsi with normal", TWO_MODS "    atac: {file: t.h5ad, preprocess: lsi, likelihood: normal}\n",
     "data.modalities.atac.preprocess: lsi needs counts"},
    {"lsi with bernoulli", TWO_MODS "    atac: {file: t.h5ad, preprocess: lsi, likelihood: bernoulli}\n",
     NULL},
    {"lsi with clr", TWO_MODS "    atac: {file: t.h5ad, preprocess: lsi, normalize: clr}\n",
     "data.modalities.atac.normalize: lsi does its own TF-IDF"},
    {"features with normal", TWO_MODS "    pcs: {file: p.h5ad, likelihood: normal, features: 50}\n",
     "data.modalities.pcs.features: choosing the top 50 features needs counts"},
    {"all features with normal", TWO_MODS "    pcs: {file: p.h5ad, likelihood: normal, features: all}\n",
     NULL},
    {"n_components = features", TWO_MODS "    x: {file: x.h5ad, features: 50, n_components: 50}\n",
     "data.modalities.x.n_components: 50 must be below features (50)"},
    {"n_components < features", TWO_MODS "    x: {file: x.h5ad, features: 50, n_components: 49}\n",
     NULL},
    {"n_components >= features with lsi",
     TWO_MODS "    x: {file: x.h5ad, preprocess: lsi, features: 50, n_components: 100}\n", NULL},
    {"empty layer", TWO_MODS "    x: {file: x.h5ad, layer: \"\"}\n",
     "data.modalities.x.layer: empty"},
    {"no loss trains decoders", TWO_MODS "loss: {data: 0, cross: 0, real_cross: 0}\n",
     "loss: data, cross and real_cross are all 0"},
    {"only real_cross", TWO_MODS "loss: {data: 0, cross: 0, real_cross: 1}\n", NULL},
    {"split without test value", TWO_MODS "  split_key: split\n  test_value:\n",
     "data.test_value: empty while data.split_key is set"},
    {"early stopping without validation", TWO_MODS "train: {val_split: 0}\n",
     "train.early_stopping: needs validation cells"},
    {"no validation, no early stopping", TWO_MODS "train: {val_split: 0, early_stopping: false}\n",
     NULL},
    {"burn-in beyond the end", TWO_MODS "train: {max_epochs: 10, align_burnin: 50}\n",
     "train.align_burnin: 50 exceeds train.max_epochs (10)"},
    {"burn-in to the end", TWO_MODS "train: {max_epochs: 10, align_burnin: 10}\n", NULL},
    {"empty output dir", TWO_MODS "output: {dir: \"\"}\n", "output.dir: empty"},
};

static void test_validate(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof rule_cases / sizeof rule_cases[0]; i++) {
    const rule_case *r = &rule_cases[i];
    clue_config c;
    clue_err err;
    int rc = load(r->yaml, &c, &err);
    if (rc) print_error("case %s: %s\n", r->name, err.msg);
    TU_OK(rc, &err);
    clue_err_clear(&err);
    rc = clue_config_validate(&c, &err);
    if (!r->want) {
      if (rc) print_error("case %s: %s\n", r->name, err.msg);
      TU_OK(rc, &err);
      continue;
    }
    assert_int_equal(rc, CLUE_ECONFIG);
    expect_parts(r->name, err.msg, &r->want, 1);
  }

  /* Values set in code are range-checked too. */
  clue_config c;
  clue_err err;
  TU_OK(load(TWO_MODS, &c, &err), &err);
  TU_OK(clue_config_validate(&c, &err), &err);
  c.dropout = 2;
  assert_int_equal(clue_config_validate(&c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "model.dropout: 2 is out of range"));
  c.dropout = 0.2;
  c.lr = NAN;
  assert_int_equal(clue_config_validate(&c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "train.lr"));
  c.lr = 1e-3;
  c.mod[1].likelihood = (clue_likelihood)7;
  assert_int_equal(clue_config_validate(&c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "data.modalities.adt.likelihood: 7 is out of range"));
  c.mod[1].likelihood = CLUE_LIK_NB;
  snprintf(c.mod[1].name, sizeof c.mod[1].name, "rna");
  assert_int_equal(clue_config_validate(&c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "rna is given twice"));
  c.n_mod = CLUE_MAX_MOD + 1;
  assert_int_equal(clue_config_validate(&c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "data.modalities"));

  /* A file-backed config names its file in validation messages. */
  write_file(tu_path("one.yaml"), "data: {modalities: {rna: {file: r.h5ad}}}\n", 42);
  clue_config_defaults(&c);
  TU_OK(clue_config_load(tu_path("one.yaml"), &c, &err), &err);
  assert_int_equal(clue_config_validate(&c, &err), CLUE_ECONFIG);
  char want[4200];
  snprintf(want, sizeof want, "%s: data.modalities: only 1 modality", tu_path("one.yaml"));
  assert_non_null(strstr(err.msg, want));
}

/* ---- robustness ------------------------------------------------------- */

static uint64_t fz_state = 0x9e3779b97f4a7c15ULL;
static uint64_t fz_next(void) { /* xorshift64* */
  fz_state ^= fz_state >> 12;
  fz_state ^= fz_state << 25;
  fz_state ^= fz_state >> 27;
  return fz_state * 0x2545f4914f6cdd1dULL;
}

/* Loads text; it must either load (and then round-trip) or fail with a
 * config message. Never a crash or another code. */
static void fuzz_one(const char *text) {
  clue_config c;
  clue_err err;
  int rc = load(text, &c, &err);
  if (rc != CLUE_OK && rc != CLUE_ECONFIG) {
    print_error("rc %d (%s) for input:\n%s\n", rc, err.msg, text);
    fail();
  }
  if (rc != CLUE_OK) {
    assert_true(err.msg[0] != '\0');
    return;
  }
  clue_config_validate(&c, &err);
  round_trip(&c);
}

static void test_fuzz(void **state) {
  (void)state;
  /* Mutations of a valid config. */
  size_t base_len = strlen(all_keys_yaml);
  char buf[4096];
  static const char alphabet[] = "{}[]:,-?&*!|>'\"%@`# \n\t.0123456789aeltrux~\\";
  for (int it = 0; it < 3000; it++) {
    memcpy(buf, all_keys_yaml, base_len + 1);
    size_t len = base_len;
    int edits = 1 + (int)(fz_next() % 6);
    for (int e = 0; e < edits; e++) {
      size_t at = (size_t)(fz_next() % len);
      uint64_t r = fz_next();
      char ch = (r >> 8) % 4 == 0 ? (char)(1 + (r >> 16) % 255)
                                  : alphabet[(r >> 16) % (sizeof alphabet - 1)];
      if (r % 3 == 0 && len + 1 < sizeof buf) { /* insert */
        memmove(buf + at + 1, buf + at, len - at + 1);
        buf[at] = ch;
        len++;
      } else if (r % 3 == 1 && len > 1) { /* delete */
        memmove(buf + at, buf + at + 1, len - at);
        len--;
      } else {
        buf[at] = ch;
      }
    }
    fuzz_one(buf);
  }
  /* Random short texts over YAML's punctuation. */
  for (int it = 0; it < 2000; it++) {
    size_t len = 1 + (size_t)(fz_next() % 120);
    for (size_t i = 0; i < len; i++) buf[i] = alphabet[fz_next() % (sizeof alphabet - 1)];
    buf[len] = '\0';
    fuzz_one(buf);
  }
  /* Random --set assignments over known and unknown paths. */
  static const char *paths[] = {"model.latent_dim", "model.encoder", "data.modalities.rna",
                                "data.modalities.rna.file", "train.lr", "data", "x.y",
                                "data.modalities", "train.seed", "embed.cells", ""};
  for (int it = 0; it < 2000; it++) {
    const char *p = paths[fz_next() % (sizeof paths / sizeof paths[0])];
    int n = snprintf(buf, sizeof buf, "%s=", p);
    size_t len = (size_t)(fz_next() % 24);
    for (size_t i = 0; i < len; i++) buf[n + (int)i] = alphabet[fz_next() % (sizeof alphabet - 1)];
    buf[n + (int)len] = '\0';
    clue_config c;
    clue_err err;
    clue_config_defaults(&c);
    int rc = clue_config_set(&c, buf, &err);
    assert_true(rc == CLUE_OK || rc == CLUE_ECONFIG);
    if (rc == CLUE_OK) round_trip(&c);
  }
}

/* Hostile shapes: deep nesting, alias bombs, huge values, huge mappings. */
static void test_hostile(void **state) {
  (void)state;
  clue_config c;
  clue_err err;
  size_t n = 200000;
  char *t = malloc(3 * n + 64);
  assert_non_null(t);

  memset(t, '[', n);
  t[n] = '\0';
  assert_int_equal(load(t, &c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "nested deeper than 32"));

  for (size_t i = 0; i < n / 4; i++) memcpy(t + 4 * i, "{a: ", 4);
  t[n] = '\0';
  assert_int_equal(load(t, &c, &err), CLUE_ECONFIG);

  const char *bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
                     "c: &c [*b, *b, *b, *b, *b, *b]\nd: [*c, *c, *c, *c, *c, *c]\n";
  assert_int_equal(load(bomb, &c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "aliases"));

  int o = snprintf(t, 64, "data: {batch_key: ");
  memset(t + o, 'b', n);
  snprintf(t + o + n, 64, "}\n");
  assert_int_equal(load(t, &c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "data.batch_key: 200000 characters is too long"));
  assert_true(strlen(err.msg) < 300);

  o = snprintf(t, 64, "data: {modalities: {rna: {file: ");
  memset(t + o, 'f', n);
  snprintf(t + o + n, 64, "}}}\n");
  assert_int_equal(load(t, &c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "data.modalities.rna.file: the path is longer than 4095"));

  o = snprintf(t, 64, "[");
  for (size_t i = 0; i < n / 2; i++) o += snprintf(t + o, 8, "1,");
  snprintf(t + o, 8, "1]");
  assert_int_equal(load(t, &c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "more than 100000 YAML values"));

  o = snprintf(t, 64, "model: {");
  for (size_t i = 0; i < 20000; i++) o += snprintf(t + o, 32, "k%zu: 1, ", i);
  snprintf(t + o, 8, "}");
  assert_int_equal(load(t, &c, &err), CLUE_ECONFIG);
  assert_non_null(strstr(err.msg, "unknown key model.k0"));
  free(t);
}

static void test_bcast(void **state) {
  (void)state;
  clue_comm comm = tu_world();
  clue_config c, d;
  clue_err err;
  TU_OK(load(all_keys_yaml, &c, &err), &err);
  memcpy(&d, &c, sizeof c);
  clue_config_bcast(&comm, &c);
  assert_same(&c, &d);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults),   cmocka_unit_test(test_empty),
      cmocka_unit_test(test_names),      cmocka_unit_test(test_examples),
      cmocka_unit_test(test_round_trip), cmocka_unit_test(test_paths),
      cmocka_unit_test(test_set),        cmocka_unit_test(test_errors),
      cmocka_unit_test(test_file_errors), cmocka_unit_test(test_validate),
      cmocka_unit_test(test_fuzz),       cmocka_unit_test(test_hostile),
      cmocka_unit_test(test_bcast),
  };
  return TU_RUN(tests);
}
