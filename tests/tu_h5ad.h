/* tu_h5ad.h — the AnnData fixtures of the reader tests: written once per test
 * program by tests/h5ad_fixtures.py (Debian's /usr/bin/python3 with anndata
 * and h5py) into the scratch folder, and the formulas of their values. */
#ifndef CLUE_TU_H5AD_H
#define CLUE_TU_H5AD_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clue/comm.h"
#include "clue/config.h"
#include "testutil.h"

#define TU_N_OBS 40
#define TU_N_VAR 13
#define TU_N_VAR2 5

/* Value of cell i, feature j of the first modality (h5ad_fixtures.py val). */
static inline double tu_val(int i, int j) {
  if (i % 9 == 4) return 0;
  return (i * 7 + j * 3) % 5 == 0 ? i + 2 * j + 1 : 0;
}

/* Value of global cell i, feature j of the second modality (val2). */
static inline double tu_val2(int i, int j) {
  return (i * 3 + j) % 4 != 1 ? i + j + 2 : 0;
}

/* Cell number of a fixture cell name "cNN" (−1 if it is not one). */
static inline int tu_cell(const char *name) {
  if (name[0] != 'c') return -1;
  return atoi(name + 1);
}

/* Collective over MPI_COMM_WORLD. The folder holding the fixtures (written
 * by rank 0 on first use), or NULL after a visible SKIP line when Python,
 * anndata or h5py is missing. */
static inline const char *tu_h5ad_fixtures(void) {
  static char dir[4096];
  static int state = 0; /* 0 = not tried, 1 = ready, -1 = unavailable */
  if (state == 0) {
    int rank = 0;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    snprintf(dir, sizeof dir, "%s", tu_path("fixtures"));
    int ok = 0;
    if (rank == 0) {
      const char *src = getenv("CLUE_SOURCE_DIR");
      char script[4096], cmd[8192];
      if (src && *src)
        snprintf(script, sizeof script, "%s/tests/h5ad_fixtures.py", src);
      else
        snprintf(script, sizeof script, "%s", __FILE__);
      if (!(src && *src)) { /* tests/tu_h5ad.h → tests/h5ad_fixtures.py */
        char *slash = strrchr(script, '/');
        if (slash)
          snprintf(slash + 1, sizeof script - (size_t)(slash + 1 - script),
                   "h5ad_fixtures.py");
      }
      struct stat st;
      if (stat("/usr/bin/python3", &st) == 0) {
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' > '%s.log' 2>&1", script,
                 dir, dir);
        ok = system(cmd) == 0;
      }
      if (!ok)
        printf(
            "SKIP: cannot write the AnnData fixtures (needs /usr/bin/python3 with "
            "anndata and h5py; see %s.log)\n",
            dir);
      fflush(stdout);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    state = ok ? 1 : -1;
  }
  return state == 1 ? dir : NULL;
}

/* "<fixtures>/<name>" in a static ring of buffers. */
static inline const char *tu_fixture(const char *name) {
  static char ring[8][4096];
  static int next = 0;
  char *p = ring[next];
  next = (next + 1) % 8;
  snprintf(p, 4096, "%s/%s", tu_h5ad_fixtures(), name);
  return p;
}

/* A config of the pairing fixtures: modalities rna (pair_rna.h5ad, cells
 * c00..c29) and adt (pair_adt.h5ad, c39..c10), NB, batch_key "batch". */
static inline clue_config tu_pair_config(void) {
  clue_config cfg;
  clue_config_defaults(&cfg);
  const char *names[2] = {"rna", "adt"}, *files[2] = {"pair_rna.h5ad", "pair_adt.h5ad"};
  for (int k = 0; k < 2; k++) {
    clue_modality_config *m = &cfg.mod[cfg.n_mod++];
    snprintf(m->name, sizeof m->name, "%s", names[k]);
    snprintf(m->file, sizeof m->file, "%s", tu_fixture(files[k]));
    snprintf(m->layer, sizeof m->layer, "X");
    m->likelihood = CLUE_LIK_NB;
  }
  snprintf(cfg.batch_key, sizeof cfg.batch_key, "batch");
  return cfg;
}

#endif
