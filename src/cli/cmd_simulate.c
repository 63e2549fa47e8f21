/* cmd_simulate.c — `clue simulate`: options, progress on rank 0, and a summary
 * saying which data set was written where. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clue/cli.h"
#include "clue/sim.h"

static void usage(FILE *out) {
  sim_options d;
  sim_options_defaults(&d);
  fprintf(out,
          "usage: clue simulate [options]          (mpirun -n N clue simulate ... in parallel)\n"
          "\n"
          "Writes a synthetic multi-modal single-cell data set drawn from a latent-factor\n"
          "model: cell types are clusters in a %d-dimensional latent space, batches shift\n"
          "every feature, counts are negative binomial. The data do not depend on the\n"
          "number of ranks. Without options: a data set of the shape of bmmc_cite_600\n"
          "(600 cells, RNA 1000 genes + ADT 134 proteins, all paired, 2 batches, 80/20\n"
          "train/test split) in the folder 'simulated'.\n"
          "\n"
          "output:\n"
          "  --out PATH           folder for one <mod>.h5ad per modality, or FILE.h5mu\n"
          "                       (default: simulated)\n"
          "  --format h5ad|h5mu   default: h5mu when --out ends in .h5mu, else h5ad\n"
          "shape:\n"
          "  --like NAME          start from the shape of a shared data set (default\n"
          "                       bmmc_cite_600); one of: %s\n"
          "  --cells N            number of cells (default %lld)\n"
          "  --rna GENES          RNA modality with GENES genes\n"
          "  --atac PEAKS         ATAC modality with PEAKS peaks\n"
          "  --adt PROTEINS       ADT modality with PROTEINS proteins\n"
          "                       (giving any of these three replaces the preset's\n"
          "                       modalities; at least two are needed)\n"
          "  --paired FRACTION    fraction of cells measured in every modality; the others\n"
          "                       are measured in one modality (default %g)\n"
          "  --batches B          number of batches (default %d)\n"
          "  --cell-types K       number of cell types (default %d)\n"
          "  --split FRACTION     fraction of cells with obs 'split' == test (default %g)\n"
          "model:\n"
          "  --seed S             random seed (default %llu)\n"
          "  --latent-dim D       latent dimension (default %d)\n"
          "  --batch-effect SD    sd of the per-feature batch shift, log scale (default %g)\n"
          "  --rna-density F      expected fraction of nonzero RNA counts (default %g)\n"
          "  --atac-density F     expected fraction of nonzero ATAC counts (default %g)\n"
          "  --adt-density F      expected fraction of nonzero ADT counts (default %g)\n"
          "  --atac-binary        ATAC as 0/1 instead of counts\n"
          "  --quiet              no progress lines\n"
          "  -h, --help           this help\n"
          "\n"
          "Every file has obs 'cell_type', 'batch', 'split' (categorical), var names,\n"
          "X = counts (csr_matrix, float32) and obsm['X_latent'] = the true latent\n"
          "position of each cell; cells measured in several modalities have the same\n"
          "obs name in each file.\n",
          d.latent_dim, sim_preset_names(), (long long)d.n_cells, d.paired, d.n_batches,
          d.n_types, d.test_fraction, (unsigned long long)d.seed, d.latent_dim,
          d.batch_effect, d.density[SIM_RNA], d.density[SIM_ATAC], d.density[SIM_ADT]);
}

enum {
  OPT_OUT = 256, OPT_FORMAT, OPT_LIKE, OPT_CELLS, OPT_RNA, OPT_ATAC, OPT_ADT, OPT_PAIRED,
  OPT_BATCHES, OPT_TYPES, OPT_SPLIT, OPT_SEED, OPT_LATENT, OPT_BATCH_EFFECT,
  OPT_RNA_DENSITY, OPT_ATAC_DENSITY, OPT_ADT_DENSITY, OPT_ATAC_BINARY, OPT_QUIET
};

static const struct option OPTIONS[] = {
    {"out", required_argument, NULL, OPT_OUT},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"like", required_argument, NULL, OPT_LIKE},
    {"cells", required_argument, NULL, OPT_CELLS},
    {"rna", required_argument, NULL, OPT_RNA},
    {"atac", required_argument, NULL, OPT_ATAC},
    {"adt", required_argument, NULL, OPT_ADT},
    {"paired", required_argument, NULL, OPT_PAIRED},
    {"batches", required_argument, NULL, OPT_BATCHES},
    {"cell-types", required_argument, NULL, OPT_TYPES},
    {"split", required_argument, NULL, OPT_SPLIT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"latent-dim", required_argument, NULL, OPT_LATENT},
    {"batch-effect", required_argument, NULL, OPT_BATCH_EFFECT},
    {"rna-density", required_argument, NULL, OPT_RNA_DENSITY},
    {"atac-density", required_argument, NULL, OPT_ATAC_DENSITY},
    {"adt-density", required_argument, NULL, OPT_ADT_DENSITY},
    {"atac-binary", no_argument, NULL, OPT_ATAC_BINARY},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const char *option_name(int id) {
  for (const struct option *o = OPTIONS; o->name; o++)
    if (o->val == id) return o->name;
  return "?";
}

static int parse_number(int id, const char *text, double *v, clue_err *err) {
  char *end = NULL;
  *v = strtod(text, &end);
  if (!text[0] || *end || !isfinite(*v))
    return clue_fail(err, CLUE_EUSAGE, "--%s: '%s' is not a number", option_name(id), text);
  return CLUE_OK;
}

/* A whole number in [lo, hi]; accepts 1e6. */
static int parse_count(int id, const char *text, double lo, double hi, int64_t *v,
                       clue_err *err) {
  double x;
  int rc = parse_number(id, text, &x, err);
  if (rc) return rc;
  if (x != floor(x) || x < lo || x > hi)
    return clue_fail(err, CLUE_EUSAGE, "--%s: '%s' is not a whole number in [%.0f, %.0f]",
                     option_name(id), text, lo, hi);
  *v = (int64_t)x;
  return CLUE_OK;
}

typedef struct sim_cli {
  sim_options o;
  char out[CLUE_PATH_MAX];
  int format; /* -1 = from the name */
  bool quiet, help, custom;
} sim_cli;

static int set_option(sim_cli *c, int id, const char *arg, bool *mods_given, clue_err *err) {
  int64_t n = 0;
  double x = 0;
  int rc = CLUE_OK;
  switch (id) {
  case OPT_OUT:
    if (snprintf(c->out, sizeof c->out, "%s", arg) >= (int)sizeof c->out || !arg[0])
      rc = clue_fail(err, CLUE_EUSAGE, "--out: empty or too long");
    break;
  case OPT_FORMAT:
    if (!strcmp(arg, "h5ad")) c->format = SIM_FORMAT_H5AD;
    else if (!strcmp(arg, "h5mu")) c->format = SIM_FORMAT_H5MU;
    else rc = clue_fail(err, CLUE_EUSAGE, "--format: '%s' is not h5ad or h5mu", arg);
    break;
  case OPT_LIKE: break; /* applied first */
  case OPT_CELLS: rc = parse_count(id, arg, 1, 4294967295.0, &c->o.n_cells, err); break;
  case OPT_RNA: case OPT_ATAC: case OPT_ADT: {
    int mod = id == OPT_RNA ? SIM_RNA : id == OPT_ATAC ? SIM_ATAC : SIM_ADT;
    if (!*mods_given) memset(c->o.n_features, 0, sizeof c->o.n_features);
    *mods_given = true;
    rc = parse_count(id, arg, 0, 2147483647.0, &c->o.n_features[mod], err);
    break;
  }
  case OPT_BATCHES: case OPT_TYPES: case OPT_LATENT:
    rc = parse_count(id, arg, 1, id == OPT_LATENT ? 1000 : 10000, &n, err);
    if (id == OPT_BATCHES) c->o.n_batches = (int)n;
    else if (id == OPT_TYPES) c->o.n_types = (int)n;
    else c->o.latent_dim = (int)n;
    break;
  case OPT_SEED:
    rc = parse_count(id, arg, 0, 9007199254740992.0, &n, err);
    c->o.seed = (uint64_t)n;
    break;
  case OPT_ATAC_BINARY: c->o.atac_binary = true; break;
  case OPT_QUIET: c->quiet = true; break;
  case 'h': c->help = true; break;
  default:
    rc = parse_number(id, arg, &x, err);
    if (rc) break;
    if (id == OPT_PAIRED) c->o.paired = x;
    else if (id == OPT_SPLIT) c->o.test_fraction = x;
    else if (id == OPT_BATCH_EFFECT) c->o.batch_effect = x;
    else if (id == OPT_RNA_DENSITY) c->o.density[SIM_RNA] = x;
    else if (id == OPT_ATAC_DENSITY) c->o.density[SIM_ATAC] = x;
    else if (id == OPT_ADT_DENSITY) c->o.density[SIM_ADT] = x;
  }
  bool shape = id == OPT_CELLS || id == OPT_RNA || id == OPT_ATAC || id == OPT_ADT ||
               id == OPT_BATCHES || id == OPT_TYPES || id == OPT_PAIRED || id == OPT_SPLIT;
  if (shape) c->custom = true;
  return rc;
}

static int parse(int argc, char **argv, sim_cli *c, clue_err *err) {
  memset(c, 0, sizeof *c);
  sim_options_defaults(&c->o);
  snprintf(c->out, sizeof c->out, "simulated");
  c->format = -1;
  /* Pass 1: --like sets the base shape wherever it appears. */
  opterr = 0;
  optind = 1;
  int id;
  while ((id = getopt_long(argc, argv, ":h", OPTIONS, NULL)) != -1)
    if (id == OPT_LIKE && sim_options_like(&c->o, optarg, err)) {
      clue_err_prefix(err, "--like");
      return err->code = CLUE_EUSAGE;
    }
  optind = 1;
  bool mods_given = false;
  while ((id = getopt_long(argc, argv, ":h", OPTIONS, NULL)) != -1) {
    if (id == '?')
      return clue_fail(err, CLUE_EUSAGE, "unknown option '%s' (see clue simulate --help)",
                       argv[optind - 1]);
    if (id == ':')
      return clue_fail(err, CLUE_EUSAGE, "option '%s' needs a value", argv[optind - 1]);
    int rc = set_option(c, id, optarg, &mods_given, err);
    if (rc) return rc;
  }
  if (optind < argc)
    return clue_fail(err, CLUE_EUSAGE, "unexpected argument '%s' (see clue simulate --help)",
                     argv[optind]);
  if (c->help) return CLUE_OK;
  size_t len = strlen(c->out);
  bool mu_name = len > 5 && !strcmp(c->out + len - 5, ".h5mu");
  bool ad_name = len > 5 && !strcmp(c->out + len - 5, ".h5ad");
  if (c->format < 0) c->format = mu_name ? SIM_FORMAT_H5MU : SIM_FORMAT_H5AD;
  if (c->format == SIM_FORMAT_H5AD && (mu_name || ad_name))
    return clue_fail(err, CLUE_EUSAGE,
                     "--out %s: with --format h5ad, --out names a folder that gets one "
                     "<modality>.h5ad per modality", c->out);
  if (c->custom) c->o.like[0] = '\0';
  if (sim_options_check(&c->o, err)) return err->code = CLUE_EUSAGE;
  return CLUE_OK;
}

typedef struct progress_state {
  double start, last;
  bool tty;
} progress_state;

static void on_progress(void *ctx, int mod, int64_t done, int64_t total) {
  progress_state *s = ctx;
  double now = MPI_Wtime();
  bool last = done == total;
  if (!last && now - s->last < (s->tty ? 0.5 : 10.0)) return;
  s->last = now;
  double rate = done / (now - s->start > 1e-9 ? now - s->start : 1e-9);
  fprintf(stderr, "%s  %-4s %12lld / %lld cells  %.0f cells/s%s", s->tty ? "\r" : "",
          sim_modality_name(mod), (long long)done, (long long)total, rate,
          s->tty && !last ? "" : "\n");
  fflush(stderr);
  if (last) s->start = now;
}

static double file_mb(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 ? (double)st.st_size / 1e6 : 0;
}

static void print_summary(const clue_comm *comm, const sim_cli *c, const sim_summary *s,
                          double seconds) {
  const sim_options *o = &c->o;
  if (o->like[0])
    cli_print(comm, "clue simulate: wrote a synthetic data set of the shape of %s (seed %llu)\n",
              o->like, (unsigned long long)o->seed);
  else
    cli_print(comm, "clue simulate: wrote a custom synthetic data set (seed %llu)\n",
              (unsigned long long)o->seed);
  cli_print(comm, "  %lld cells, %d batches, %d cell types, %lld in every modality (%.1f%%)\n",
            (long long)o->n_cells, o->n_batches, o->n_types, (long long)s->n_paired,
            100.0 * s->n_paired / o->n_cells);
  for (int m = 0; m < SIM_N_MOD; m++) {
    if (o->n_features[m] == 0) continue;
    double dens = s->n_obs[m] ? (double)s->nnz[m] / s->n_obs[m] / o->n_features[m] : 0;
    cli_print(comm, "  %-6s %s: %lld cells x %lld %s, %.1f%% nonzero%s\n",
              sim_modality_name(m), s->path[m], (long long)s->n_obs[m],
              (long long)o->n_features[m], sim_feature_kind(m), 100 * dens,
              m == SIM_ATAC && o->atac_binary ? " (binary)" : "");
  }
  cli_print(comm, "  obs: cell_type, batch, split (%lld train / %lld test); "
            "obsm: X_latent (the true latent position)\n",
            (long long)(o->n_cells - s->n_test), (long long)s->n_test);
  double mb = 0;
  for (int m = 0; m < SIM_N_MOD; m++)
    if (o->n_features[m] > 0 && (c->format == SIM_FORMAT_H5AD || mb == 0))
      mb += file_mb(s->path[m]);
  cli_print(comm, "  %.1f MB in %.1f s on %d rank%s (%.0f cells/s)\n", mb, seconds,
            comm->size, comm->size > 1 ? "s" : "", o->n_cells / (seconds > 1e-9 ? seconds : 1e-9));
}

int cli_simulate(int argc, char **argv, const clue_comm *comm) {
  clue_err err;
  clue_err_clear(&err);
  sim_cli c;
  int rc = parse(argc, argv, &c, &err);
  if (rc) return cli_report(comm, "simulate", rc, &err);
  if (c.help) {
    if (comm->rank == 0) usage(stdout);
    return 0;
  }
  progress_state ps = {.start = MPI_Wtime(), .last = MPI_Wtime(), .tty = cli_stderr_is_tty()};
  double t0 = MPI_Wtime();
  sim_summary *sum = calloc(1, sizeof *sum);
  if (!sum) {
    clue_fail(&err, CLUE_ENOMEM, "out of memory");
    return cli_report(comm, "simulate", CLUE_ENOMEM, &err);
  }
  rc = sim_write(&c.o, c.out, (sim_format)c.format, comm, c.quiet ? NULL : on_progress, &ps,
                 sum, &err);
  if (rc == CLUE_OK) print_summary(comm, &c, sum, MPI_Wtime() - t0);
  free(sum);
  return cli_report(comm, "simulate", rc, &err);
}
