/* runtime.c — process set-up shared by the commands that compute: OpenBLAS
 * threads per rank, and the SLURM/MPI consistency check. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clue/cli.h"

/* Ranks of this job on this node. */
static int local_ranks(const clue_comm *comm) {
  MPI_Comm node;
  clue_comm_node(comm, &node);
  int n = 1;
  MPI_Comm_size(node, &n);
  MPI_Comm_free(&node);
  return n;
}

int cli_setup_runtime(const clue_comm *comm, int *threads, clue_err *err) {
  const char *ntasks = getenv("SLURM_NTASKS");
  if (ntasks && atoi(ntasks) > 1 && comm->size == 1 && getenv("SLURM_STEP_ID"))
    return clue_fail(err, CLUE_EMPI,
                     "SLURM started %s tasks but MPI sees a world of 1 rank: each task would "
                     "run the whole job alone. Launch with `srun --mpi=pmix` (or pmi2; see "
                     "`srun --mpi=list`) or with mpirun inside the allocation",
                     ntasks);
  int n = local_ranks(comm);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
  const char *cpus = getenv("SLURM_CPUS_PER_TASK");
  int t;
  if (getenv("OPENBLAS_NUM_THREADS") || getenv("OMP_NUM_THREADS")) {
    t = openblas_get_num_threads();
  } else {
    t = cpus && atoi(cpus) > 0 ? atoi(cpus) : (int)(cores / (n > 0 ? n : 1));
    if (t < 1) t = 1;
    openblas_set_num_threads(t);
  }
  if (threads) *threads = t;
  return CLUE_OK;
}

void cli_absolute_path(char *path, size_t size) {
  if (!path[0] || path[0] == '/') return;
  char cwd[CLUE_PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) return;
  char joined[2 * CLUE_PATH_MAX + 2];
  const char *p = path;
  while (p[0] == '.' && p[1] == '/') p += 2;
  snprintf(joined, sizeof joined, "%s/%s", cwd, p);
  char *real = realpath(joined, NULL);
  snprintf(path, size, "%s", real ? real : joined);
  free(real);
}

void cli_config_absolute_paths(clue_config *cfg) {
  for (int k = 0; k < cfg->n_mod; k++)
    cli_absolute_path(cfg->mod[k].file, sizeof cfg->mod[k].file);
  cli_absolute_path(cfg->h5mu_file, sizeof cfg->h5mu_file);
  cli_absolute_path(cfg->out_dir, sizeof cfg->out_dir);
}
