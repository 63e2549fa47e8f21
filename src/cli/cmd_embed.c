/* cmd_embed.c — `clue embed`: embed the cells of each modality from that
 * modality alone with a trained model (eval mode), each rank its own shard,
 * and write <out>/<modality>.h5ad with obsm/X_clue in input cell order. */
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/checkpoint.h"
#include "clue/cli.h"
#include "clue/dataset.h"
#include "clue/h5ad_write.h"
#include "clue/rowdist.h"

_Static_assert(sizeof(real) == sizeof(float), "the program is built with real = float");

typedef struct embed_args {
  const char *checkpoint, *out, *config, *cells, *key;
  char **sets;
  int n_sets;
  bool report; /* --report: refresh the run's page with these cells */
} embed_args;

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue embed --checkpoint RUN/checkpoint.h5 --out DIR [options]\n"
          "\n"
          "Embeds every selected cell of each modality from that modality alone (the\n"
          "K·d posterior means of its encoders, eval mode) and writes DIR/<modality>.h5ad\n"
          "with obsm/X_clue (float32), obs copied from the input (cells in input order).\n"
          "Cells never seen in training (query data) work: the stored preprocessing is\n"
          "applied to them.\n"
          "\n"
          "options:\n"
          "  --checkpoint FILE  checkpoint written by clue train (required)\n"
          "  --out DIR          output folder (required; created if missing)\n"
          "  --config FILE      data to embed (default: the config stored in the\n"
          "                     checkpoint, i.e. the training data)\n"
          "  --set KEY=VALUE    override a config key (repeatable), e.g.\n"
          "                     --set data.modalities.rna.file=query_rna.h5ad\n"
          "  --cells all|train|test  which cells (default: embed.cells of the config)\n"
          "  --key NAME         obsm key to write (default X_clue)\n"
          "  --report           refresh the run's page (the checkpoint's folder,\n"
          "                     report.html) with a map of these cells\n"
          "  -h, --help         this help\n");
}

static int parse_args(int argc, char **argv, embed_args *a, const clue_comm *comm) {
  static const struct option opts[] = {
      {"checkpoint", required_argument, 0, 'k'}, {"out", required_argument, 0, 'o'},
      {"config", required_argument, 0, 'c'},     {"set", required_argument, 0, 's'},
      {"cells", required_argument, 0, 'C'},      {"key", required_argument, 0, 'K'},
      {"report", no_argument, 0, 'R'},           {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "k:o:c:s:C:K:h", opts, NULL)) != -1) {
    switch (c) {
      case 'k': a->checkpoint = optarg; break;
      case 'o': a->out = optarg; break;
      case 'c': a->config = optarg; break;
      case 's': a->sets[a->n_sets++] = optarg; break;
      case 'C': a->cells = optarg; break;
      case 'K': a->key = optarg; break;
      case 'R': a->report = true; break;
      case 'h':
        if (comm->rank == 0) usage(stdout);
        return 0;
      default:
        if (comm->rank == 0) {
          fprintf(stderr, "clue embed: error: unknown or incomplete option '%s'\n\n",
                  argv[optind - 1]);
          usage(stderr);
        }
        return 2;
    }
  }
  if (!a->checkpoint || !a->out) {
    if (comm->rank == 0) {
      fprintf(stderr, "clue embed: error: --checkpoint and --out are required\n\n");
      usage(stderr);
    }
    return 2;
  }
  return -1; /* continue */
}

/* The config of the cells to embed: --config, else the checkpoint's; then --set. */
static int embed_config(const embed_args *a, const clue_ckpt *ck, const clue_comm *comm,
                        clue_config *cfg, clue_err *err) {
  int rc = CLUE_OK;
  if (a->config) return cli_load_config(comm, a->config, a->sets, a->n_sets, cfg, err);
  if (comm->rank == 0) {
    clue_config_defaults(cfg);
    rc = clue_config_load_string(ck->config_yaml, "", a->checkpoint, cfg, err);
    for (int i = 0; !rc && i < a->n_sets; i++)
      if ((rc = clue_config_set(cfg, a->sets[i], err))) clue_err_prefix(err, "--set %s", a->sets[i]);
    if (!rc) rc = clue_config_validate(cfg, err);
  }
  rc = clue_comm_agree(comm, rc, err);
  if (!rc) clue_config_bcast(comm, cfg);
  return rc;
}

static int check_modalities(const clue_config *cfg, const clue_ckpt *ck, const char *path,
                            clue_err *err) {
  const clue_model_spec *s = &ck->model->spec;
  if (cfg->n_mod != s->n_mod)
    return clue_fail(err, CLUE_ECONFIG, "the config has %d modalities, the model in %s has %d",
                     cfg->n_mod, path, s->n_mod);
  for (int k = 0; k < s->n_mod; k++)
    if (strcmp(cfg->mod[k].name, s->names[k]))
      return clue_fail(err, CLUE_ECONFIG,
                       "modality %d is '%s' in the config but '%s' in the model %s "
                       "(names and order must match the training config)",
                       k + 1, cfg->mod[k].name, s->names[k], path);
  return CLUE_OK;
}

static int cmp_i64(const void *a, const void *b) {
  int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
  return (x > y) - (x < y);
}

/* Collective. Output order of modality k: the selected cells having it, by row
 * in its file. out_rows (n_out) = those file rows, on every rank; out_idx
 * (this rank's cells) = output index of each, −1 without the modality. */
static int output_order(const clue_dataset *d, int k, const clue_comm *comm,
                        int64_t **out_rows, int64_t *n_out, int64_t **out_idx,
                        clue_err *err) {
  int K = d->n_mod, P = comm->size;
  int64_t nl = d->local_end - d->local_begin, n = d->mod[k].n_cells, m = 0;
  int64_t *mine = clue_malloc((size_t)(nl + 1) * sizeof *mine, err);
  int *counts = clue_malloc((size_t)P * sizeof *counts, err);
  int *disp = clue_malloc((size_t)P * sizeof *disp, err);
  *out_idx = clue_malloc((size_t)(nl + 1) * sizeof **out_idx, err);
  *out_rows = clue_malloc((size_t)(n + 1) * sizeof **out_rows, err);
  int rc = (mine && counts && disp && *out_idx && *out_rows) ? CLUE_OK : CLUE_ENOMEM;
  if ((rc = clue_comm_agree(comm, rc, err)) == CLUE_OK) {
    for (int64_t i = 0; i < nl; i++)
      if (d->local_file_row[i * K + k] >= 0) mine[m++] = d->local_file_row[i * K + k];
    int mi = (int)m;
    MPI_Allgather(&mi, 1, MPI_INT, counts, 1, MPI_INT, comm->comm);
    for (int r = 0, at = 0; r < P; r++) disp[r] = at, at += counts[r];
    MPI_Allgatherv(mine, mi, MPI_INT64_T, *out_rows, counts, disp, MPI_INT64_T, comm->comm);
    qsort(*out_rows, (size_t)n, sizeof **out_rows, cmp_i64);
    for (int64_t i = 0; i < nl; i++) {
      int64_t r = d->local_file_row[i * K + k];
      const int64_t *at = r >= 0 ? bsearch(&r, *out_rows, (size_t)n, sizeof r, cmp_i64) : NULL;
      (*out_idx)[i] = at ? at - *out_rows : -1;
    }
    *n_out = n;
  }
  free(mine);
  free(counts);
  free(disp);
  return rc;
}

/* Embeds this rank's rows of modality k: (rows × K·d) and their output indices. */
static int embed_local(const clue_ckpt *ck, clue_work *w, const clue_dataset *d, int k,
                       const int64_t *out_idx, float **emb, int64_t **dest, clue_err *err) {
  const clue_csr *x = d->mod[k].x;
  int R = ck->prep[k]->n_components, Kd = ck->model->spec.n_mod * ck->model->spec.latent_dim;
  float *enc = clue_malloc((size_t)(x->n_rows * R + 1) * sizeof *enc, err);
  *emb = clue_malloc((size_t)(x->n_rows * Kd + 1) * sizeof **emb, err);
  *dest = clue_malloc((size_t)(x->n_rows + 1) * sizeof **dest, err);
  if (!enc || !*emb || !*dest) {
    free(enc);
    return CLUE_ENOMEM;
  }
  int rc = clue_prep_encode_input(ck->prep[k], x, enc, err);
  if (!rc) rc = clue_model_embed(ck->model, w, k, enc, x->n_rows, *emb, err);
  free(enc);
  int64_t r = 0;
  for (int64_t i = 0; i < d->local_end - d->local_begin; i++)
    if (d->local_row[i * d->n_mod + k] >= 0) (*dest)[r++] = out_idx[i];
  return rc;
}

static int write_modality(const embed_args *a, const clue_ckpt *ck, const clue_dataset *d,
                          int k, const float *block, int64_t begin, int64_t n_block,
                          const int64_t *out_rows, int64_t n_out, const clue_comm *comm,
                          clue_err *err) {
  int Kd = ck->model->spec.n_mod * ck->model->spec.latent_dim;
  char path[CLUE_PATH_MAX + CLUE_NAME_MAX + 16];
  snprintf(path, sizeof path, "%s/%s.h5ad", a->out, d->mod[k].name);
  const char *protect[CLUE_K + 2];
  int np = 0;
  for (int j = 0; j < d->n_mod; j++) protect[np++] = h5ad_path(d->mod[j].file);
  protect[np] = NULL;
  h5ad_writer *w = NULL;
  int rc = h5ad_writer_create(path, n_out, 0, protect, comm, &w, err);
  if (rc) return rc;
  rc = cli_copy_obs(w, d->mod[k].file, out_rows, n_out, comm, err);
  clue_strings *none = NULL;
  if (!rc && comm->rank == 0 && !(none = clue_strings_new(0, err))) rc = CLUE_ENOMEM;
  rc = clue_comm_agree(comm, rc, err);
  if (!rc) rc = h5ad_writer_var(w, none, err);
  clue_strings_free(none);
  if (!rc) rc = h5ad_writer_obsm(w, a->key, Kd, begin, n_block, block, err);
  if (!rc) {
    char note[CLUE_PATH_MAX + 128];
    snprintf(note, sizeof note, "clue %s embed of modality %s with %s", CLUE_VERSION,
             d->mod[k].name, a->checkpoint);
    rc = h5ad_writer_uns_string(w, "clue", note, err);
  }
  if (rc) {
    h5ad_writer_abort(w);
    return rc;
  }
  return h5ad_writer_commit(w, err);
}

static int embed_modality(const embed_args *a, const clue_ckpt *ck, clue_work *w,
                          const clue_dataset *d, int k, const clue_comm *comm, clue_err *err) {
  int64_t *out_rows = NULL, *out_idx = NULL, *dest = NULL, n_out = 0, begin = 0, n_block = 0;
  float *emb = NULL, *block = NULL;
  int Kd = ck->model->spec.n_mod * ck->model->spec.latent_dim;
  int rc = output_order(d, k, comm, &out_rows, &n_out, &out_idx, err);
  if (!rc) rc = embed_local(ck, w, d, k, out_idx, &emb, &dest, err);
  rc = clue_comm_agree(comm, rc, err);
  if (!rc)
    rc = clue_rows_redistribute(comm, emb, dest, d->mod[k].x->n_rows, Kd, n_out, &block,
                                &begin, &n_block, err);
  if (!rc) rc = write_modality(a, ck, d, k, block, begin, n_block, out_rows, n_out, comm, err);
  if (!rc)
    cli_print(comm, "  %-10s %lld cells -> %s/%s.h5ad (obsm/%s, %d dims)\n", d->mod[k].name,
              (long long)n_out, a->out, d->mod[k].name, a->key, Kd);
  free(out_rows);
  free(out_idx);
  free(dest);
  free(emb);
  free(block);
  return rc;
}

static int run(embed_args *a, const clue_comm *comm, clue_err *err) {
  clue_ckpt ck;
  int rc = clue_ckpt_load(a->checkpoint, &ck, err);
  rc = clue_comm_agree(comm, rc, err);
  if (rc) return rc;
  clue_config cfg;
  clue_dataset *d = NULL;
  clue_work *w = NULL;
  rc = embed_config(a, &ck, comm, &cfg, err);
  if (!rc && a->cells) {
    if (!strcmp(a->cells, "all")) cfg.embed_cells = CLUE_CELLS_ALL;
    else if (!strcmp(a->cells, "train")) cfg.embed_cells = CLUE_CELLS_TRAIN;
    else if (!strcmp(a->cells, "test")) cfg.embed_cells = CLUE_CELLS_TEST;
    else rc = clue_fail(err, CLUE_EUSAGE, "--cells %s: expected all, train or test", a->cells);
  }
  if (!rc) rc = check_modalities(&cfg, &ck, a->checkpoint, err);
  if (!rc) rc = cli_setup_runtime(comm, NULL, err);
  if (!rc) rc = clue_dataset_load(&cfg, cfg.embed_cells, comm, &d, err);
  if (!rc && comm->rank == 0) rc = cli_mkdir_p(a->out, err);
  rc = clue_comm_agree(comm, rc, err);
  if (!rc) rc = clue_work_new(ck.model, 256, &w, err);
  rc = clue_comm_agree(comm, rc, err);
  if (!rc)
    cli_print(comm, "clue embed: %lld %s cells, %d modalities, model %s\n",
              (long long)d->n_cells, clue_cells_name(cfg.embed_cells), d->n_mod, a->checkpoint);
  for (int k = 0; !rc && k < d->n_mod; k++) rc = embed_modality(a, &ck, w, d, k, comm, err);
  clue_work_free(w);
  clue_dataset_free(d);
  clue_ckpt_release(&ck);
  return rc;
}

int cli_embed(int argc, char **argv, const clue_comm *comm) {
  embed_args a = {.key = "X_clue"};
  a.sets = calloc((size_t)argc + 1, sizeof *a.sets);
  int status = parse_args(argc, argv, &a, comm);
  if (status >= 0) {
    free(a.sets);
    return status;
  }
  clue_err err;
  clue_err_clear(&err);
  int rc = run(&a, comm, &err);
  if (rc == CLUE_OK && a.report) {
    char dir[CLUE_PATH_MAX];
    snprintf(dir, sizeof dir, "%s", a.checkpoint);
    cli_report_opts ro;
    cli_report_opts_default(&ro);
    ro.run_dir = dirname(dir);
    ro.embed = a.out;
    ro.key = a.key;
    int warnings = 0;
    rc = cli_report_write(&ro, comm, &warnings, &err);
  }
  free(a.sets);
  return cli_report(comm, "embed", rc, &err);
}
