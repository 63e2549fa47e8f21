/* cli.h — the `clue` commands. Each takes the arguments after the command name
 * (argv[0] is the command name) and returns a process exit status (see
 * clue_exit_status). MPI is initialised before and finalised after. Only rank 0
 * prints, except for errors that only one rank sees. */
#ifndef CLUE_CLI_H
#define CLUE_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "clue/comm.h"
#include "clue/config.h"
#include "clue/error.h"
#include "clue/h5ad.h"
#include "clue/h5ad_write.h"

int cli_train(int argc, char **argv, const clue_comm *comm);
int cli_embed(int argc, char **argv, const clue_comm *comm);
int cli_match(int argc, char **argv, const clue_comm *comm);
int cli_eval(int argc, char **argv, const clue_comm *comm);
int cli_simulate(int argc, char **argv, const clue_comm *comm);
int cli_info(int argc, char **argv, const clue_comm *comm);
int cli_transfer(int argc, char **argv, const clue_comm *comm);
int cli_predict(int argc, char **argv, const clue_comm *comm);
int cli_report_command(int argc, char **argv, const clue_comm *comm);
int cli_umap(int argc, char **argv, const clue_comm *comm);

/* ---- shared by the commands (src/cli/common.c) ---- */

/* Prints "clue <command>: error: <message>" to stderr, once (rank 0, or the
 * calling rank when only_me), and returns clue_exit_status(code). */
int cli_report(const clue_comm *comm, const char *command, int code,
               const clue_err *err);

/* Collective. Builds the run config: defaults, then the YAML file `config_path`
 * (may be NULL), then each "a.b=v" of sets[0..n_sets), then validation. Rank 0
 * parses; the result is broadcast. */
int cli_load_config(const clue_comm *comm, const char *config_path,
                    char *const *sets, int n_sets, clue_config *cfg, clue_err *err);

/* Rank 0 prints "clue <command>: error: <msg>", a blank line and the usage
 * (usage(stderr)). Returns 2, the exit status of a bad command line. */
int cli_usage_error(const clue_comm *comm, const char *command, void (*usage)(FILE *),
                    const char *msg);

/* Parses option `opt`'s value v as an integer in [lo, hi] into *out; otherwise
 * writes "<opt> <v>: expected an integer in lo..hi" into msg (size bytes) and
 * returns false. */
bool cli_int_arg(const char *opt, const char *v, long lo, long hi, long *out, char *msg,
                 size_t size);

/* printf on rank 0 only (stdout, flushed). */
void cli_print(const clue_comm *comm, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* True when stderr is a terminal (for live progress lines). */
bool cli_stderr_is_tty(void);

/* Creates a folder and its parents (mode 0755); fails naming the path. */
int cli_mkdir_p(const char *path, clue_err *err);

/* Writes `text` to `path` through a temporary file renamed into place. */
int cli_write_file_atomic(const char *path, const char *text, clue_err *err);

/* Collective. Checks that SLURM and MPI agree on the number of tasks, and sets
 * OpenBLAS threads per rank (unless OPENBLAS_NUM_THREADS/OMP_NUM_THREADS is set):
 * SLURM_CPUS_PER_TASK, else cores / ranks on this node. *threads gets the count. */
int cli_setup_runtime(const clue_comm *comm, int *threads, clue_err *err);

/* Collective. Writes obs of w from rows rows[0..n) of src's obs (index and every
 * categorical, numeric, bool and string column); rank 0 reads, every rank calls. */
int cli_copy_obs(h5ad_writer *w, h5ad_file *src, const int64_t *rows, int64_t n,
                 const clue_comm *comm, clue_err *err);

/* Collective. cli_copy_obs with further columns after the input's (rank 0's
 * `extra`, each of n rows; an input column of the same name is left out). */
int cli_copy_obs_extra(h5ad_writer *w, h5ad_file *src, const int64_t *rows, int64_t n,
                       h5ad_column *const *extra, int n_extra, const clue_comm *comm,
                       clue_err *err);

/* Collective. Ends an output that went well so far (rc == CLUE_OK): writes
 * uns/clue_command ("clue <command> <argv[1..]>") and uns/clue_version, then
 * commits it (renamed into place); otherwise aborts it (its temporary is
 * removed). Returns the first failure, or CLUE_OK. */
int cli_writer_finish(h5ad_writer *w, const char *command, int argc, char **argv, int rc,
                      clue_err *err);

/* The output of input `label` among n_inputs: `out` itself for one input,
 * else out/<label>.h5ad (out a folder). */
void cli_output_path(const char *out, int n_inputs, const char *label, char *path, size_t size);

/* Makes a relative path absolute against the current folder (in place). */
void cli_absolute_path(char *path, size_t size);

/* Makes the data and output paths of cfg absolute, so that the resolved config
 * works from any folder. */
void cli_config_absolute_paths(clue_config *cfg);

/* ---- the run report (src/cli/cmd_report.c), also written by train, embed and eval ---- */

typedef struct cli_report_opts {
  const char *run_dir;   /* the run folder (run.json, config.yaml, log.jsonl) */
  const char *embed;     /* folder of embedded .h5ad files, or NULL */
  const char *eval;      /* clue eval --json file, or NULL */
  const char *out;       /* the page, or NULL: RUN_DIR/report.html */
  const char *key, *label, *batch_key;
  int64_t max_cells;
  int neighbors;
  uint64_t seed;
  bool quiet;            /* no lines on stdout */
  bool silent_warnings;  /* count warnings without printing them */
} cli_report_opts;

/* The defaults of clue report's options (key X_clue, 200,000 cells, 15 neighbours). */
void cli_report_opts_default(cli_report_opts *o);

/* Collective. Writes the page and its JSON (rank 0), saying on the page what is
 * missing; *warnings counts what was missing or unreadable. Fails when the run
 * folder does not exist, when nothing at all can be shown, or on I/O, memory
 * or MPI failures. */
int cli_report_write(const cli_report_opts *o, const clue_comm *comm, int *warnings,
                     clue_err *err);

#endif
