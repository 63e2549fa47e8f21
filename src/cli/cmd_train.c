/* cmd_train.c — `clue train`: options, run folder, then the training loop. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/blas_core.h"
#include "clue/cli.h"
#include "clue/train.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: clue train --config FILE [--set KEY=VALUE]... [--resume | --overwrite] [--quiet]\n"
          "\n"
          "Trains a CLUE model on the training cells of the config (cells whose\n"
          "data.split_key column is not data.test_value) and fills output.dir with:\n"
          "  config.yaml     the resolved configuration (every key, absolute paths)\n"
          "  run.json        the run's record: ranks, threads, data shapes, status\n"
          "  report.html     the run's page (clue report; report.json beside it)\n"
          "  log.jsonl       one JSON object per epoch: every loss term (train and\n"
          "                  validation), learning rate, seconds, cells/s\n"
          "  checkpoint.h5   model, preprocessing, optimiser and position (best weights\n"
          "                  at the end); `clue embed --checkpoint` reads it\n"
          "\n"
          "options:\n"
          "  --config FILE      YAML config (see configs/ and docs/config.md)\n"
          "  --set KEY=VALUE    override a config key, e.g. --set train.max_epochs=50\n"
          "                     or --set data.modalities.rna.file=rna.h5ad (repeatable)\n"
          "  --resume           continue from output.dir/checkpoint.h5 if it exists\n"
          "                     (same or different number of ranks)\n"
          "  --overwrite        start a new run even if output.dir holds one\n"
          "  --quiet            no per-epoch lines (log.jsonl is still written)\n"
          "  -h, --help         this help\n"
          "\n"
          "Cells measured in one modality only (an atlas beside a small paired\n"
          "\"bridge\") train with the method's fillers and, by default:\n"
          "  train.paired_fraction: 0.5  half of each minibatch from the paired cells\n"
          "  train.pseudo.method: mnn    unimodal cells of different modalities paired\n"
          "                              by mutual nearest neighbours in the embedding\n"
          "                              (.k .weight .start .every .ramp .max_cells)\n"
          "Neither does anything when every cell is paired (docs/bridge.md).\n"
          "\n"
          "Run on many ranks with `mpirun -np P clue train ...` or `srun clue train ...`.\n"
          "SIGTERM or SIGUSR1 make every rank stop at the next step with a checkpoint\n"
          "(exit status 75): rerun with --resume to continue.\n");
}

int cli_train(int argc, char **argv, const clue_comm *comm) {
  static const struct option opts[] = {{"config", required_argument, 0, 'c'},
                                       {"set", required_argument, 0, 's'},
                                       {"resume", no_argument, 0, 'r'},
                                       {"quiet", no_argument, 0, 'q'},
                                       {"overwrite", no_argument, 0, 'w'},
                                       {"help", no_argument, 0, 'h'},
                                       {0, 0, 0, 0}};
  const char *config = NULL;
  char **sets = calloc((size_t)argc + 1, sizeof *sets);
  int n_sets = 0, c;
  clue_train_opts to = {0};
  clue_err err;
  clue_err_clear(&err);
  optind = 1;
  opterr = 0;
  while ((c = getopt_long(argc, argv, "c:s:rqwh", opts, NULL)) != -1) {
    switch (c) {
      case 'c': config = optarg; break;
      case 's': sets[n_sets++] = optarg; break;
      case 'r': to.resume = true; break;
      case 'q': to.quiet = true; break;
      case 'w': to.overwrite = true; break;
      case 'h':
        if (comm->rank == 0) usage(stdout);
        free(sets);
        return 0;
      default:
        if (comm->rank == 0) {
          fprintf(stderr, "clue train: error: unknown or incomplete option '%s'\n\n",
                  argv[optind - 1]);
          usage(stderr);
        }
        free(sets);
        return 2;
    }
  }
  if (!config) {
    if (comm->rank == 0) {
      fprintf(stderr, "clue train: error: --config FILE is required\n\n");
      usage(stderr);
    }
    free(sets);
    return 2;
  }
  clue_config cfg;
  int threads = 1;
  int rc = cli_load_config(comm, config, sets, n_sets, &cfg, &err);
  free(sets);
  if (!rc) rc = cli_setup_runtime(comm, &threads, &err);
  to.threads = threads;
  if (rc) return cli_report(comm, "train", rc, &err);
  cli_config_absolute_paths(&cfg);
  if (comm->rank == 0) {
    rc = cli_mkdir_p(cfg.out_dir, &err);
    char *yaml = rc ? NULL : clue_config_to_yaml(&cfg);
    char path[CLUE_PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/config.yaml", cfg.out_dir);
    if (!rc) rc = yaml ? cli_write_file_atomic(path, yaml, &err)
                       : clue_fail(&err, CLUE_ENOMEM, "out of memory");
    free(yaml);
    char blas[CLUE_BLAS_LINE_MAX];
    if (!rc && !to.quiet)
      printf("clue train: %d rank%s x %d thread%s, %s; run folder %s\n", comm->size,
             comm->size > 1 ? "s" : "", threads, threads > 1 ? "s" : "",
             clue_blas_describe(blas, sizeof blas), cfg.out_dir);
  }
  rc = clue_comm_agree(comm, rc, &err);
  if (!rc) rc = clue_train_run(&cfg, &to, comm, &err);
  if (!rc) { /* the run's page; a failure to write it is only a warning */
    cli_report_opts ro;
    cli_report_opts_default(&ro);
    ro.run_dir = cfg.out_dir;
    ro.quiet = to.quiet;
    ro.silent_warnings = true;
    int warnings = 0;
    clue_err rerr;
    if (cli_report_write(&ro, comm, &warnings, &rerr) && comm->rank == 0)
      fprintf(stderr, "clue train: warning: report not written: %s\n", rerr.msg);
  }
  return cli_report(comm, "train", rc, &err);
}
