/* main.c — the `clue` program: MPI set-up, command dispatch, help and version. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clue/blas_core.h"
#include "clue/cli.h"
#include "clue/h5ad.h"
#include "clue/h5ad_write.h"

typedef struct command {
  const char *name;
  int (*run)(int argc, char **argv, const clue_comm *comm);
  const char *summary;
} command;

static const command COMMANDS[] = {
    {"train", cli_train, "train a CLUE model on the cells of a config (MPI-parallel)"},
    {"embed", cli_embed, "embed cells from each modality alone with a trained model"},
    {"match", cli_match, "match cells across two modalities (snn matching, top-k)"},
    {"eval", cli_eval, "FOSCTTM, matching score and partner recall of two embeddings"},
    {"predict", cli_predict, "the missing modality's expected profile for cells of another"},
    {"transfer", cli_transfer, "carry obs labels over to other cells by a kNN vote in the embedding"},
    {"umap", cli_umap, "a 2-D UMAP layout of an embedding (obsm/X_umap) for plots"},
    {"report", cli_report_command, "one self-contained HTML page about a run: curves, map, figures"},
    {"simulate", cli_simulate, "write a synthetic multi-modal data set of any size"},
    {"info", cli_info, "describe an .h5ad or .h5mu file"},
};
#define N_COMMANDS (sizeof COMMANDS / sizeof COMMANDS[0])

static void print_usage(FILE *out) {
  fprintf(out,
          "clue %s — Cross-Linked Unified Embedding of single-cell multi-omics data\n"
          "\n"
          "usage: clue <command> [options]      (run under mpirun/srun for many ranks)\n"
          "\n"
          "commands:\n",
          CLUE_VERSION);
  for (size_t i = 0; i < N_COMMANDS; i++)
    fprintf(out, "  %-9s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
  fprintf(out,
          "\n"
          "`clue <command> --help` describes a command's options.\n"
          "`clue --version` prints the version.\n");
}

int main(int argc, char **argv) {
  clue_blas_fix_core(argv); /* before anything else: may re-execute the program */
  MPI_Init(&argc, &argv);
  h5ad_quiet_errors();
  clue_comm comm = clue_comm_world();
  int status = 0;
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    if (comm.rank == 0) print_usage(stdout);
    status = argc < 2 ? 2 : 0;
  } else if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    char blas[CLUE_BLAS_LINE_MAX];
    if (comm.rank == 0)
      printf("clue %s (git %s); %s\n", CLUE_VERSION, CLUE_GIT_REV,
             clue_blas_describe(blas, sizeof blas));
  } else {
    const command *cmd = NULL;
    for (size_t i = 0; i < N_COMMANDS; i++)
      if (!strcmp(argv[1], COMMANDS[i].name)) cmd = &COMMANDS[i];
    if (!cmd) {
      if (comm.rank == 0) {
        fprintf(stderr, "clue: error: unknown command '%s'\n\n", argv[1]);
        print_usage(stderr);
      }
      status = 2;
    } else {
      status = cmd->run(argc - 1, argv + 1, &comm);
    }
  }
  /* An output file that failed to close (disk full) leaves HDF5 in a state in
   * which its shutdown inside MPI_Finalize crashes: every rank then leaves with
   * the error status (already reported) without finalising. */
  int poisoned = h5ad_writer_close_failed();
  MPI_Allreduce(MPI_IN_PLACE, &poisoned, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (poisoned) {
    fflush(NULL);
    _exit(status ? status : 1);
  }
  MPI_Finalize();
  return status;
}
