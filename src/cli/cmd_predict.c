/* cmd_predict.c — `clue predict`: for cells measured in one modality, the
 * profile of another modality that the trained model expects for them: the
 * source modality's encoders give the cell's latent block of the target
 * modality (the cross-encoder's posterior mean), the target decoder turns it
 * into expected values (eval mode). Each rank predicts a block of the cells,
 * in rounds of a bounded number of rows, and writes its rows of a dense X. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/calib.h"
#include "clue/checkpoint.h"
#include "clue/refcells.h"
#include "clue/cli.h"
#include "clue/h5ad.h"
#include "clue/h5ad_write.h"
#include "clue/rowdist.h"

_Static_assert(sizeof(real) == sizeof(float), "the program is built with real = float");

typedef struct predict_args {
  const char *checkpoint, *from, *to, *cells, *out, *features, *batch, *where, *layer;
  double counts; /* library size of --counts; 0: normalised values */
  bool log1p;    /* --log1p: E[log1p(normalised counts)] */
  bool raw;      /* --raw: no calibration */
  int neighbours; /* --neighbours K: reference cells averaged in (0: none) */
  int chunk;
} predict_args;

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue predict --checkpoint RUN/checkpoint.h5 --from MOD --to MOD\n"
          "                    --cells FILE.h5ad --out OUT.h5ad [options]\n"
          "\n"
          "For cells measured in modality --from (raw counts of the same features as in\n"
          "training), the profile of modality --to that the model expects: the cell's\n"
          "--to block from the --from encoders (posterior means, normalised as in\n"
          "training), decoded (eval mode).\n"
          "OUT.h5ad: X dense float32, cells x the decoded --to features (or --features);\n"
          "obs copied from FILE. Values: counts (nb) as expression per 10,000 counts\n"
          "(mu / library size x 1e4), or per --counts L; binary (bernoulli) as the\n"
          "probability of a nonzero value; normal as the expected value. The decoder's\n"
          "batch is the cell's own (the training config's data.batch_key column) when\n"
          "the model knows it, else --batch, else the mean over the model's batches.\n"
          "A modality of a MuData file is named FILE.h5mu:MOD.\n"
          "\n"
          "options:\n"
          "  --checkpoint FILE   written by clue train (required)\n"
          "  --from MOD          the modality the cells are measured in (required)\n"
          "  --to MOD            the modality to predict (required)\n"
          "  --cells FILE        the cells' --from counts (required)\n"
          "  --out FILE          output .h5ad (required)\n"
          "  --features LIST     only these --to features: names separated by commas, or\n"
          "                      @FILE with one name per line\n"
          "  --counts L          expected counts at library size L instead of per 1e4 (nb)\n"
          "  --log1p             (nb) E[log1p(counts / L x 1e4)] for the counts the\n"
          "                      decoder gives at library size L (--counts, or the\n"
          "                      training cells' mean): the prediction to compare with\n"
          "                      log1p-normalised data\n"
          "  --neighbours K      blend the values with the mean measured profiles of\n"
          "                      the K nearest reference cells (cells of the run\n"
          "                      measured in both, kept in the checkpoint) in the\n"
          "                      embedding of --from and in its encoder input, with\n"
          "                      the weights fitted at the end of training (on the\n"
          "                      validation cells, at K = 15) (default 15; 0: the\n"
          "                      model's values alone); --log1p values, probabilities,\n"
          "                      normal values\n"
          "  --raw               the decoder's values as they are: without the\n"
          "                      calibration fitted at the end of training on the cells\n"
          "                      measured in both modalities (applied to --log1p values,\n"
          "                      probabilities and normal values) nor reference cells\n"
          "  --batch NAME        the batch for cells whose own is unknown to the model\n"
          "  --layer NAME        where the counts are (default: the training config's)\n"
          "  --where COL=VALUE   only cells whose obs column COL reads VALUE\n"
          "  --chunk N           cells per rank and round (default 1024)\n"
          "  -h, --help          this help\n");
}


static int parse_args(int argc, char **argv, predict_args *a, const clue_comm *comm) {
  static const struct option opts[] = {
      {"checkpoint", required_argument, 0, 'k'}, {"from", required_argument, 0, 'f'},
      {"to", required_argument, 0, 't'},         {"cells", required_argument, 0, 'c'},
      {"out", required_argument, 0, 'o'},        {"features", required_argument, 0, 'F'},
      {"counts", required_argument, 0, 'n'},     {"batch", required_argument, 0, 'b'},
      {"layer", required_argument, 0, 'l'},      {"where", required_argument, 0, 'w'},
      {"chunk", required_argument, 0, 'C'},      {"log1p", no_argument, 0, 'L'},
      {"raw", no_argument, 0, 'r'},              {"neighbours", required_argument, 0, 'N'},
      {"help", no_argument, 0, 'h'},
      {0, 0, 0, 0}};
  int c;
  optind = 1;
  opterr = 0;
  char msg[300], *end;
  while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
    switch (c) {
      case 'k': a->checkpoint = optarg; break;
      case 'f': a->from = optarg; break;
      case 't': a->to = optarg; break;
      case 'c': a->cells = optarg; break;
      case 'o': a->out = optarg; break;
      case 'F': a->features = optarg; break;
      case 'b': a->batch = optarg; break;
      case 'l': a->layer = optarg; break;
      case 'w': a->where = optarg; break;
      case 'L': a->log1p = true; break;
      case 'r': a->raw = true; break;
      case 'N': {
        long v;
        if (!cli_int_arg("--neighbours", optarg, 0, 1000, &v, msg, sizeof msg))
          return cli_usage_error(comm, "predict", usage, msg);
        a->neighbours = (int)v;
        break;
      }
      case 'n':
        a->counts = strtod(optarg, &end);
        if (*end || !*optarg || !(a->counts > 0) || !isfinite(a->counts)) {
          snprintf(msg, sizeof msg, "--counts %s: expected a positive number", optarg);
          return cli_usage_error(comm, "predict", usage, msg);
        }
        break;
      case 'C': {
        long v;
        if (!cli_int_arg("--chunk", optarg, 1, 1 << 20, &v, msg, sizeof msg))
          return cli_usage_error(comm, "predict", usage, msg);
        a->chunk = (int)v;
        break;
      }
      case 'h':
        if (comm->rank == 0) usage(stdout);
        return 0;
      default:
        snprintf(msg, sizeof msg, "unknown or incomplete option '%s'", argv[optind - 1]);
        return cli_usage_error(comm, "predict", usage, msg);
    }
  }
  if (optind < argc) {
    snprintf(msg, sizeof msg, "unexpected argument '%s'", argv[optind]);
    return cli_usage_error(comm, "predict", usage, msg);
  }
  const char *need[5][2] = {{"--checkpoint", a->checkpoint}, {"--from", a->from},
                            {"--to", a->to}, {"--cells", a->cells}, {"--out", a->out}};
  for (int i = 0; i < 5; i++)
    if (!need[i][1]) {
      snprintf(msg, sizeof msg, "%s is required", need[i][0]);
      return cli_usage_error(comm, "predict", usage, msg);
    }
  if (!strcmp(a->from, a->to)) return cli_usage_error(comm, "predict", usage, "--from and --to name the same modality");
  return -1;
}

/* ---- what the run needs ------------------------------------------------------ */

typedef struct job {
  clue_ckpt ck;
  clue_config cfg;     /* the training config (from the checkpoint) */
  int from, to;        /* modality indices */
  h5ad_file *f;        /* the cells */
  char file[CLUE_PATH_MAX], group[CLUE_NAME_MAX + 8];
  int64_t *rows, n;    /* selected file rows, ascending */
  int32_t *batch;      /* (n) the decoder's batch per cell; −1: the mean over batches */
  int64_t n_own, n_given, n_mean; /* how the batches were chosen */
  int64_t *feat, n_feat; /* output features: indices among the decoded --to features */
  clue_strings *feat_names;
  const clue_calib *calib; /* applied to the values, or NULL */
  int neighbours;          /* reference cells averaged in per cell (0: none) */
  double w_embedding, w_input; /* the blend's weights (refcells.h) */
  int64_t n_ref;           /* reference cells measured in --from and --to */
} job;

static void job_free(job *j) {
  h5ad_close(j->f);
  free(j->rows);
  free(j->batch);
  free(j->feat);
  clue_strings_free(j->feat_names);
  clue_ckpt_release(&j->ck);
}

static int modality_index(const clue_ckpt *ck, const char *opt, const char *name, int *k,
                          clue_err *err) {
  const clue_model_spec *s = &ck->model->spec;
  for (int i = 0; i < s->n_mod; i++)
    if (!strcmp(s->names[i], name)) {
      *k = i;
      return CLUE_OK;
    }
  char list[CLUE_K * (CLUE_NAME_MAX + 2)] = "";
  for (int i = 0; i < s->n_mod; i++) {
    if (i) strcat(list, ", ");
    strcat(list, s->names[i]);
  }
  return clue_fail(err, CLUE_EUSAGE, "%s %s: the model has the modalities %s", opt, name, list);
}

/* Every rank. The checkpoint, its config and the two modalities. */
static int load_model(const predict_args *a, job *j, clue_err *err) {
  int rc = clue_ckpt_load(a->checkpoint, &j->ck, err);
  if (rc) return rc;
  clue_config_defaults(&j->cfg);
  rc = clue_config_load_string(j->ck.config_yaml, "", a->checkpoint, &j->cfg, err);
  if (!rc) rc = modality_index(&j->ck, "--from", a->from, &j->from, err);
  if (!rc) rc = modality_index(&j->ck, "--to", a->to, &j->to, err);
  return rc;
}

/* Collective. Opens the cells and checks their features against the model's. */
static int open_cells(const predict_args *a, job *j, const clue_comm *comm, clue_err *err) {
  const char *colon = strrchr(a->cells, ':');
  bool mu = colon && strstr(a->cells, ".h5mu:") == colon - 5;
  snprintf(j->file, sizeof j->file, "%.*s", mu ? (int)(colon - a->cells) : (int)strlen(a->cells),
           a->cells);
  if (mu) snprintf(j->group, sizeof j->group, "mod/%s", colon + 1);
  int rc = h5ad_open(j->file, j->group, comm, &j->f, err);
  if (rc) return rc;
  const clue_prep *p = j->ck.prep[j->from];
  if (h5ad_n_vars(j->f) != p->n_input)
    return clue_fail(err, CLUE_EDATA,
                     "%s has %lld features; the model's %s was trained on %lld (the same "
                     "features, in the same order, are needed)",
                     a->cells, (long long)h5ad_n_vars(j->f), a->from, (long long)p->n_input);
  if (!p->var_names) return CLUE_OK; /* a checkpoint that predates stored names */
  clue_strings *names = NULL;
  rc = h5ad_read_var_names(j->f, &names, err);
  for (int64_t i = 0; rc == CLUE_OK && i < names->n; i++)
    if (strcmp(names->s[i], p->var_names->s[i]))
      rc = clue_fail(err, CLUE_EDATA,
                     "%s: feature %lld is '%s' where the model's %s has '%s' (the same "
                     "features, in the same order, are needed)",
                     a->cells, (long long)i + 1, names->s[i], a->from, p->var_names->s[i]);
  clue_strings_free(names);
  return rc;
}

/* Not collective. The selected rows (--where), ascending. */
static int select_rows(const predict_args *a, job *j, clue_err *err) {
  int64_t n = h5ad_n_obs(j->f);
  j->rows = clue_malloc((size_t)(n + 1) * sizeof *j->rows, err);
  if (!j->rows) return CLUE_ENOMEM;
  h5ad_column *c = NULL;
  char col[256] = "", val[256] = "", label[512];
  if (a->where) {
    const char *eq = strchr(a->where, '=');
    if (!eq || eq == a->where || !eq[1])
      return clue_fail(err, CLUE_EUSAGE, "--where %s: expected COLUMN=VALUE", a->where);
    snprintf(col, sizeof col, "%.*s", (int)(eq - a->where), a->where);
    snprintf(val, sizeof val, "%s", eq + 1);
    int rc = h5ad_read_obs_column(j->f, col, &c, err);
    if (rc) return clue_err_prefix(err, "--where");
  }
  for (int64_t i = 0; i < n; i++) {
    if (c) h5ad_column_label(c, i, label, sizeof label);
    if (!c || !strcmp(label, val)) j->rows[j->n++] = i;
  }
  h5ad_column_free(c);
  if (j->n == 0) return clue_fail(err, CLUE_EDATA, "%s: no cell has %s", a->cells, a->where);
  return CLUE_OK;
}

/* Not collective. The decoder's batch of each selected cell. */
static int choose_batches(const predict_args *a, job *j, clue_err *err) {
  const clue_strings *known = j->ck.batch_names;
  int32_t given = -1;
  if (a->batch) {
    for (int64_t b = 0; b < known->n && given < 0; b++)
      if (!strcmp(known->s[b], a->batch)) given = (int32_t)b;
    if (given < 0)
      return clue_fail(err, CLUE_EUSAGE, "--batch %s: the model knows %lld batch%s (%s%s%s)",
                       a->batch, (long long)known->n, known->n == 1 ? "" : "es", known->s[0],
                       known->n > 1 ? ", " : "", known->n > 1 ? known->s[1] : "");
  }
  j->batch = clue_malloc((size_t)j->n * sizeof *j->batch + 1, err);
  if (!j->batch) return CLUE_ENOMEM;
  h5ad_column *c = NULL;
  const char *key = j->cfg.batch_key;
  if (known->n == 1) { /* one batch: nothing to choose */
    for (int64_t i = 0; i < j->n; i++) j->batch[i] = 0;
    j->n_own = j->n;
    return CLUE_OK;
  }
  clue_err ignore;
  if (key[0] && h5ad_read_obs_column(j->f, key, &c, &ignore) != CLUE_OK) c = NULL;
  char label[512];
  for (int64_t i = 0; i < j->n; i++) {
    int32_t b = -1;
    if (c) {
      h5ad_column_label(c, j->rows[i], label, sizeof label);
      for (int64_t q = 0; label[0] && q < known->n && b < 0; q++)
        if (!strcmp(known->s[q], label)) b = (int32_t)q;
    }
    if (b >= 0) j->n_own++;
    else if (given >= 0) b = given, j->n_given++;
    else j->n_mean++;
    j->batch[i] = b;
  }
  h5ad_column_free(c);
  return CLUE_OK;
}

/* Collective. The names of the decoded --to features: kept in the checkpoint,
 * or (older checkpoints) read from the training config's file of --to. */
static int decoded_names(const predict_args *a, job *j, const clue_comm *comm,
                         clue_strings **out, clue_err *err) {
  const clue_prep *p = j->ck.prep[j->to];
  clue_strings *all = NULL;
  const clue_strings *names = p->var_names;
  int rc = CLUE_OK;
  if (!names) {
    const clue_modality_config *mc = &j->cfg.mod[j->to];
    char group[CLUE_NAME_MAX + 8] = "";
    if (j->cfg.h5mu_file[0]) snprintf(group, sizeof group, "mod/%s", mc->name);
    const char *file = j->cfg.h5mu_file[0] ? j->cfg.h5mu_file : mc->file;
    h5ad_file *t = NULL;
    rc = h5ad_open(file, group, comm, &t, err);
    if (rc == CLUE_OK) rc = h5ad_read_var_names(t, &all, err);
    if (rc == CLUE_OK && all->n != p->n_input)
      rc = clue_fail(err, CLUE_EDATA, "%s has %lld features, not the model's %lld", file,
                     (long long)all->n, (long long)p->n_input);
    h5ad_close(t);
    if (rc)
      return clue_err_prefix(err, "%s predates kept feature names, and the names of %s "
                             "could not be read from the training data", a->checkpoint, a->to);
    names = all;
  }
  const char **v = clue_malloc((size_t)p->n_decoded * sizeof *v, err);
  if (v) {
    for (int64_t i = 0; i < p->n_decoded; i++) v[i] = names->s[p->decoded[i]];
    *out = clue_strings_from(v, p->n_decoded, err);
  }
  free(v);
  clue_strings_free(all);
  return v && *out ? CLUE_OK : CLUE_ENOMEM;
}

/* The names of --features (commas, or @FILE with one per line), malloc'd. */
static int requested_names(const char *spec, clue_strings **out, clue_err *err) {
  char *text = NULL;
  if (spec[0] == '@') {
    FILE *f = fopen(spec + 1, "r");
    if (!f) return clue_fail(err, CLUE_EIO, "--features %s: cannot read %s", spec, spec + 1);
    size_t cap = 0;
    ssize_t len = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (len < 0) text = strdup("");
  } else {
    text = strdup(spec);
  }
  if (!text) return clue_fail(err, CLUE_ENOMEM, "out of memory reading --features");
  const char *sep = spec[0] == '@' ? "\r\n" : ",";
  const char **v = NULL;
  int64_t n = 0, cap = 0;
  for (char *save = NULL, *t = strtok_r(text, sep, &save); t; t = strtok_r(NULL, sep, &save)) {
    while (*t == ' ' || *t == '\t') t++;
    if (!*t) continue;
    if (n == cap) {
      cap = cap ? 2 * cap : 64;
      const char **g = realloc(v, (size_t)cap * sizeof *v);
      if (!g) break;
      v = g;
    }
    v[n++] = t;
  }
  *out = n > 0 ? clue_strings_from(v, n, err) : NULL;
  int rc = n == 0 ? clue_fail(err, CLUE_EUSAGE, "--features %s: no feature names", spec)
                  : *out ? CLUE_OK : CLUE_ENOMEM;
  free(v);
  free(text);
  return rc;
}

/* Collective. The output features: all decoded --to features, or --features. */
static int choose_features(const predict_args *a, job *j, const clue_comm *comm,
                           clue_err *err) {
  clue_strings *names = NULL, *want = NULL;
  int rc = decoded_names(a, j, comm, &names, err);
  if (rc) return rc;
  if (!a->features) {
    j->feat_names = names;
    j->n_feat = names->n;
    j->feat = clue_malloc((size_t)j->n_feat * sizeof *j->feat, err);
    for (int64_t i = 0; j->feat && i < j->n_feat; i++) j->feat[i] = i;
    return j->feat ? CLUE_OK : CLUE_ENOMEM;
  }
  clue_strmap *map = clue_strmap_new(names->n, err);
  rc = map ? requested_names(a->features, &want, err) : CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < names->n; i++)
    rc = clue_strmap_put(map, names->s[i], i, NULL, err) < 0 ? CLUE_ENOMEM : CLUE_OK;
  if (rc == CLUE_OK && !(j->feat = clue_malloc((size_t)want->n * sizeof *j->feat, err)))
    rc = CLUE_ENOMEM;
  for (int64_t i = 0; rc == CLUE_OK && i < want->n; i++) {
    j->feat[i] = clue_strmap_get(map, want->s[i]);
    if (j->feat[i] < 0)
      rc = clue_fail(err, CLUE_EDATA,
                     "--features: '%s' is not among the %lld features the model decodes for "
                     "%s (%s, %s, ...)",
                     want->s[i], (long long)names->n, a->to, names->s[0],
                     names->n > 1 ? names->s[1] : "");
  }
  if (rc == CLUE_OK) {
    j->n_feat = want->n;
    j->feat_names = want;
    want = NULL;
  }
  clue_strmap_free(map);
  clue_strings_free(want);
  clue_strings_free(names);
  return rc;
}

/* ---- the prediction ------------------------------------------------------------ */

/* Buffers of one round of `cap` cells. */
typedef struct round_buf {
  float *enc, *emb, *prof, *prof_in, *acc, *out;
  real *z;
  int32_t *b;
} round_buf;

static void round_free(round_buf *r) {
  free(r->enc), free(r->emb), free(r->prof), free(r->prof_in), free(r->acc), free(r->out);
  free(r->z), free(r->b);
}

static int round_alloc(const job *j, int64_t cap, round_buf *r, clue_err *err) {
  const clue_model_spec *s = &j->ck.model->spec;
  int64_t R = s->enc_in[j->from], Kd = (int64_t)s->n_mod * s->latent_dim, F = s->n_feat[j->to];
  r->enc = clue_malloc((size_t)(cap * R + 1) * sizeof *r->enc, err);
  r->emb = clue_malloc((size_t)(cap * Kd + 1) * sizeof *r->emb, err);
  r->prof = clue_malloc((size_t)(cap * F + 1) * sizeof *r->prof, err);
  r->prof_in = clue_malloc((size_t)(cap * F + 1) * sizeof *r->prof_in, err);
  r->acc = clue_malloc((size_t)(cap * F + 1) * sizeof *r->acc, err);
  r->out = clue_malloc((size_t)(cap * j->n_feat + 1) * sizeof *r->out, err);
  r->z = clue_malloc((size_t)(cap * s->latent_dim + 1) * sizeof *r->z, err);
  r->b = clue_malloc((size_t)(cap + 1) * sizeof *r->b, err);
  return r->enc && r->emb && r->prof && r->prof_in && r->acc && r->out && r->z && r->b ? CLUE_OK
                                                                          : CLUE_ENOMEM;
}

/* In place, v (n × F: the decoder's expected profiles for batches b) in the
 * output's units: nb expected counts per 1e4 (or --counts), or with --log1p
 * prediction units (calib.h) at library size lib; bernoulli and normal:
 * prediction units. */
static void to_values(const predict_args *a, const job *j, int64_t n, const int32_t *b,
                      double lib, float *v) {
  const clue_prep *p = j->ck.prep[j->to];
  if (p->likelihood == CLUE_LIK_NB && !a->log1p) {
    double scale = a->counts > 0 ? a->counts : 1e4;
    for (int64_t i = 0; i < n * p->n_decoded; i++) v[i] = (float)(v[i] * scale);
  } else {
    clue_prediction_values(j->ck.model, j->to, p, n, b, lib, v);
  }
}

/* In place, r->acc (n × F, the model's values): the blend with the mean
 * measured profiles of the nearest reference cells (refcells.h). */
static int blend(const job *j, round_buf *r, int64_t n, clue_err *err) {
  const clue_refcells *ref = j->ck.refcells;
  const clue_prep *p = j->ck.prep[j->to];
  int64_t F = p->n_decoded, n_ref = 0;
  double we = j->w_embedding, wi = j->w_input, wm = 1 - we - wi;
  int rc = CLUE_OK; /* a space of weight 0 is not searched */
  if (we > 0)
    rc = clue_refcells_mean(ref, p, j->from, j->to, CLUE_REF_EMBEDDING, j->neighbours, r->emb,
                            NULL, n, r->prof, &n_ref, err);
  if (!rc && wi > 0)
    rc = clue_refcells_mean(ref, p, j->from, j->to, CLUE_REF_INPUT, j->neighbours, r->enc, NULL,
                            n, r->prof_in, &n_ref, err);
  for (int64_t i = 0; !rc && i < n * F; i++)
    r->acc[i] = (float)(wm * r->acc[i] + (we > 0 ? we * r->prof[i] : 0) +
                        (wi > 0 ? wi * r->prof_in[i] : 0));
  return rc;
}

/* The --to values of n cells (counts x) into r->acc (n × F): with each cell's
 * own or given batch, or the mean over the model's batches. */
static int profiles(const predict_args *a, const job *j, clue_work *w, const clue_csr *x,
                    const int32_t *batch, int64_t n, round_buf *r, clue_err *err) {
  const clue_model *m = j->ck.model;
  int nb = m->spec.n_batches;
  int64_t F = m->spec.n_feat[j->to];
  int rc = clue_prep_encode_input(j->ck.prep[j->from], x, r->enc, err);
  if (!rc) rc = clue_model_cross_block(m, w, j->from, j->to, r->enc, n, r->emb, r->z, err);
  bool mean = false;
  for (int64_t i = 0; i < n; i++) {
    mean |= batch[i] < 0;
    r->b[i] = batch[i] < 0 ? 0 : batch[i];
  }
  if (!rc) rc = clue_model_expected(m, w, j->to, r->z, r->b, n, r->acc, err);
  double lib = a->counts > 0 ? a->counts : j->ck.prep[j->to]->library_mean;
  if (!rc) to_values(a, j, n, r->b, lib, r->acc);
  for (int q = 0; !rc && mean && q < nb; q++) { /* the cells without a batch */
    for (int64_t i = 0; i < n; i++) r->b[i] = q;
    rc = clue_model_expected(m, w, j->to, r->z, r->b, n, r->prof, err);
    if (!rc) to_values(a, j, n, r->b, lib, r->prof);
    for (int64_t i = 0; !rc && i < n; i++) {
      if (batch[i] >= 0) continue;
      float *acc = r->acc + i * F;
      const float *p = r->prof + i * F;
      for (int64_t f = 0; f < F; f++) acc[f] = (q == 0 ? 0 : acc[f]) + p[f] / (float)nb;
    }
  }
  if (!rc && j->calib) clue_calib_apply(j->calib, n, r->acc);
  return rc || j->neighbours == 0 ? rc : blend(j, r, n, err);
}

/* r->out (n × n_feat): the chosen features of r->acc. */
static void output_values(const job *j, int64_t n, round_buf *r) {
  int64_t F = j->ck.prep[j->to]->n_decoded;
  for (int64_t i = 0; i < n; i++)
    for (int64_t c = 0; c < j->n_feat; c++) r->out[i * j->n_feat + c] = r->acc[i * F + j->feat[c]];
}

/* Collective. This rank's block of the selected cells, in rounds: read,
 * predict, write its rows of X. */
static int predict_rows(const predict_args *a, job *j, h5ad_writer *out, const clue_comm *comm,
                        clue_err *err) {
  int64_t b, e;
  clue_block_range(j->n, comm->size, comm->rank, &b, &e);
  int64_t cap = a->chunk, rounds = (e - b + cap - 1) / cap;
  clue_comm_max_int64(comm, &rounds, 1);
  clue_work *w = NULL;
  round_buf r = {0};
  int rc = clue_work_new(j->ck.model, 256, &w, err);
  if (!rc) rc = round_alloc(j, cap, &r, err);
  rc = clue_comm_agree(comm, rc, err);
  const char *layer = a->layer ? a->layer : j->cfg.mod[j->from].layer;
  for (int64_t q = 0; rc == CLUE_OK && q < rounds; q++) {
    int64_t r0 = b + q * cap, n = r0 < e ? (e - r0 < cap ? e - r0 : cap) : 0;
    clue_csr *x = NULL;
    rc = h5ad_read_rows(j->f, layer, j->rows + (n > 0 ? r0 : 0), n, &x, err);
    if (rc == CLUE_OK && n > 0) rc = profiles(a, j, w, x, j->batch + r0, n, &r, err);
    if (rc == CLUE_OK) output_values(j, n, &r);
    clue_csr_free(x);
    rc = clue_comm_agree(comm, rc, err);
    if (rc == CLUE_OK) rc = h5ad_writer_x_dense(out, n > 0 ? r0 : 0, n, r.out, err);
  }
  round_free(&r);
  clue_work_free(w);
  return rc;
}

/* ---- the command --------------------------------------------------------------- */

/* The calibration of the run's values (calib.h): the checkpoint's for the
 * pair, unless --raw, the values are not in prediction units (nb without
 * --log1p) or are at another library size than the fit's. */
static const clue_calib *choose_calibration(const predict_args *a, const job *j) {
  const clue_calib *c = j->ck.calib[j->from][j->to];
  const clue_prep *p = j->ck.prep[j->to];
  if (a->raw || !c) return NULL;
  if (p->likelihood != CLUE_LIK_NB) return c;
  double lib = a->counts > 0 ? a->counts : p->library_mean;
  return a->log1p && fabs(lib - c->library) <= 1e-9 * c->library ? c : NULL;
}

static void calibration_note(const predict_args *a, const job *j, char *buf, size_t size) {
  const clue_calib *c = j->ck.calib[j->from][j->to];
  if (j->calib)
    snprintf(buf, size, "calibrated on %lld %scells measured in both", (long long)c->n_cells,
             c->validation ? "validation " : "");
  else if (a->raw)
    snprintf(buf, size, "not calibrated (--raw)");
  else if (!c)
    snprintf(buf, size, "not calibrated (the checkpoint has no calibration for the pair)");
  else if (!a->log1p)
    snprintf(buf, size, "not calibrated (calibrated values: --log1p)");
  else
    snprintf(buf, size, "not calibrated (the calibration is at library size %g)", c->library);
}

/* The reference cells averaged in (refcells.h): --neighbours, when the values
 * are in prediction units and the checkpoint has reference cells of the pair. */
static void choose_neighbours(const predict_args *a, job *j) {
  const clue_refcells *r = j->ck.refcells;
  const clue_prep *p = j->ck.prep[j->to];
  j->n_ref = 0;
  for (int64_t c = 0; r && c < r->n; c++)
    j->n_ref += r->present[c * r->n_mod + j->from] && r->present[c * r->n_mod + j->to];
  bool units = p->likelihood != CLUE_LIK_NB || a->log1p;
  j->neighbours = units && j->n_ref > 0 && !a->raw ? a->neighbours : 0;
  const clue_blend *b = r ? &r->blend[j->from][j->to] : NULL;
  bool fitted = b && b->n_cells > 0;
  j->w_embedding = fitted ? b->w_embedding : 0.5;
  j->w_input = fitted ? b->w_input : 0;
}

static void neighbours_note(const predict_args *a, const job *j, char *buf, size_t size) {
  const clue_prep *p = j->ck.prep[j->to];
  const clue_blend *b = j->ck.refcells ? &j->ck.refcells->blend[j->from][j->to] : NULL;
  char fit[160] = "weights not fitted in this checkpoint";
  if (b && b->n_cells > 0)
    snprintf(fit, sizeof fit, "weights fitted on %lld %scells measured in both",
             (long long)b->n_cells, b->validation ? "validation " : "");
  if (j->neighbours > 0)
    snprintf(buf, size,
             "blended %.3f model + %.3f the mean measured profile of the %d nearest of %lld "
             "reference cells in the embedding from %s + %.3f the same in its encoder input "
             "(%s)",
             1 - j->w_embedding - j->w_input, j->w_embedding,
             j->neighbours < j->n_ref ? j->neighbours : (int)j->n_ref, (long long)j->n_ref,
             a->from, j->w_input, fit);
  else if (a->raw)
    snprintf(buf, size, "no reference cells (--raw)");
  else if (a->neighbours == 0)
    snprintf(buf, size, "no reference cells (--neighbours 0)");
  else if (p->likelihood == CLUE_LIK_NB && !a->log1p)
    snprintf(buf, size, "no reference cells (they average --log1p values)");
  else
    snprintf(buf, size, "no reference cells (the checkpoint has none measured in both)");
}

static void describe(const predict_args *a, const job *j, char *buf, size_t size) {
  const clue_prep *p = j->ck.prep[j->to];
  const char *what = p->likelihood == CLUE_LIK_BERNOULLI ? "probability of a nonzero value"
                     : p->likelihood == CLUE_LIK_NORMAL  ? "expected value"
                     : a->log1p                  ? "expected log1p of the counts per 10,000"
                     : a->counts > 0             ? "expected counts at library size"
                                                 : "expected counts per 10,000";
  char lib[96] = "";
  if (p->likelihood == CLUE_LIK_NB && a->log1p)
    snprintf(lib, sizeof lib, " at library size %g", a->counts > 0 ? a->counts : p->library_mean);
  else if (p->likelihood == CLUE_LIK_NB && a->counts > 0)
    snprintf(lib, sizeof lib, " %g", a->counts);
  char cal[160], ref[400];
  calibration_note(a, j, cal, sizeof cal);
  neighbours_note(a, j, ref, sizeof ref);
  snprintf(buf, size,
           "%s%s of %s from %s with %s; decoder batch: %lld cells their own, %lld --batch %s, "
           "%lld the mean over the model's %lld batches; %s; %s",
           what, lib, a->to, a->from, a->checkpoint, (long long)j->n_own, (long long)j->n_given,
           a->batch ? a->batch : "(none)", (long long)j->n_mean,
           (long long)j->ck.batch_names->n, cal, ref);
}

static int run(const predict_args *a, int argc, char **argv, const clue_comm *comm,
               clue_err *err) {
  job j;
  memset(&j, 0, sizeof j);
  double t0 = MPI_Wtime();
  int rc = load_model(a, &j, err);
  rc = clue_comm_agree_first(comm, 0, rc, err);
  if (rc == CLUE_OK && a->log1p && j.ck.prep[j.to]->likelihood != CLUE_LIK_NB)
    rc = clue_fail(err, CLUE_EUSAGE, "--log1p: %s is modelled as %s, not counts (nb)", a->to,
                   clue_likelihood_name(j.ck.prep[j.to]->likelihood));
  if (rc == CLUE_OK && a->log1p && !(a->counts > 0) && !(j.ck.prep[j.to]->library_mean > 0))
    rc = clue_fail(err, CLUE_EUSAGE, "--log1p: %s predates the library size kept in "
                   "checkpoints: give one with --counts L", a->checkpoint);
  if (rc == CLUE_OK) j.calib = choose_calibration(a, &j);
  if (rc == CLUE_OK) choose_neighbours(a, &j);
  if (rc == CLUE_OK) rc = open_cells(a, &j, comm, err);
  if (rc == CLUE_OK) rc = select_rows(a, &j, err);
  if (rc == CLUE_OK) rc = choose_batches(a, &j, err);
  rc = clue_comm_agree_first(comm, 0, rc, err);
  if (rc == CLUE_OK) rc = choose_features(a, &j, comm, err);
  rc = clue_comm_agree_first(comm, 0, rc, err);
  h5ad_writer *w = NULL;
  const char *protect[] = {j.file, a->checkpoint, NULL};
  if (rc == CLUE_OK) rc = h5ad_writer_create(a->out, j.n, j.n_feat, protect, comm, &w, err);
  if (rc == CLUE_OK) rc = cli_copy_obs(w, j.f, j.rows, j.n, comm, err);
  if (rc == CLUE_OK) rc = h5ad_writer_var(w, j.feat_names, err);
  if (rc == CLUE_OK) rc = predict_rows(a, &j, w, comm, err);
  char note[CLUE_PATH_MAX + 1024];
  describe(a, &j, note, sizeof note);
  if (rc == CLUE_OK) rc = h5ad_writer_uns_string(w, "clue_predict", note, err);
  rc = cli_writer_finish(w, "predict", argc, argv, rc, err);
  if (rc == CLUE_OK)
    cli_print(comm, "clue predict: %lld cells x %lld %s features -> %s (%.1f s)\n  %s\n",
              (long long)j.n, (long long)j.n_feat, a->to, a->out, MPI_Wtime() - t0, note);
  job_free(&j);
  return rc;
}

int cli_predict(int argc, char **argv, const clue_comm *comm) {
  predict_args a = {.chunk = 1024, .neighbours = 15};
  int st = parse_args(argc, argv, &a, comm);
  if (st >= 0) return st;
  clue_err err;
  clue_err_clear(&err);
  int rc = cli_setup_runtime(comm, NULL, &err);
  if (rc == CLUE_OK) rc = run(&a, argc, argv, comm, &err);
  return cli_report(comm, "predict", rc, &err);
}
