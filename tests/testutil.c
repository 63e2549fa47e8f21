/* testutil.c — MPI around CMocka groups, shared data and scratch folders. */
#include "testutil.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clue/blas_core.h"
#include "clue/h5ad.h"

int tu_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
                 int *argc, char ***argv) {
  clue_blas_fix_core(*argv); /* the kernels the program runs with (may re-execute) */
  MPI_Init(argc, argv);
  h5ad_quiet_errors();
  int failed = _cmocka_run_group_tests(name, tests, n, NULL, NULL);
  int any = 0;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return any;
}

clue_comm tu_world(void) { return clue_comm_world(); }

const char *tu_shared_dataset(const char *dataset) {
  static char path[4096];
  const char *root = getenv("CLUE_SHARED_DATA");
  char fallback[4096];
  if (!root || !*root) {
    const char *src = getenv("CLUE_SOURCE_DIR");
    snprintf(fallback, sizeof fallback, "%s/../shared/data", src ? src : ".");
    root = fallback;
  }
  snprintf(path, sizeof path, "%s/%s", root, dataset);
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    printf("SKIP: shared data set %s not found (looked in %s)\n", dataset, root);
    fflush(stdout);
    return NULL;
  }
  return path;
}

static int mkdir_p(const char *path) {
  char buf[4096];
  snprintf(buf, sizeof buf, "%s", path);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
  return 0;
}

const char *tu_tmpdir(void) {
  static char dir[4096];
  if (dir[0]) return dir;
  const char *env = getenv("CLUE_TEST_TMP");
  if (env && *env)
    snprintf(dir, sizeof dir, "%s", env);
  else
    snprintf(dir, sizeof dir, "/tmp/clue-test-%ld", (long)getpid());
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Bcast(dir, (int)sizeof dir, MPI_CHAR, 0, MPI_COMM_WORLD);
  mkdir_p(dir);
  if (initialized) MPI_Barrier(MPI_COMM_WORLD);
  return dir;
}

const char *tu_path(const char *name) {
  static char ring[8][4096];
  static int next = 0;
  char *p = ring[next];
  next = (next + 1) % 8;
  snprintf(p, 4096, "%s/%s", tu_tmpdir(), name);
  return p;
}
