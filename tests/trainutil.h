/* trainutil.h — helpers for tests that train: a config for a shared data set and
 * reading numbers back from a run's log.jsonl. */
#ifndef CLUE_TRAINUTIL_H
#define CLUE_TRAINUTIL_H

#include <math.h>
#include <stdio.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>

#include "clue/config.h"
#include "clue/train.h"
#include "testutil.h"

/* Loads configs/<name>.yaml from the source tree and points it at the shared
 * data set `dataset` (modalities rna and `second`), writing to out_dir. */
static inline void tr_config(clue_config *cfg, const char *name, const char *dataset,
                             const char *second, const char *out_dir) {
  clue_err err;
  char path[4096], set[4400];
  const char *src = getenv("CLUE_SOURCE_DIR");
  snprintf(path, sizeof path, "%s/configs/%s.yaml", src ? src : ".", name);
  clue_config_defaults(cfg);
  TU_OK(clue_config_load(path, cfg, &err), &err);
  snprintf(set, sizeof set, "data.modalities.rna.file=%s/rna.h5ad", dataset);
  TU_OK(clue_config_set(cfg, set, &err), &err);
  snprintf(set, sizeof set, "data.modalities.%s.file=%s/%s.h5ad", second, dataset, second);
  TU_OK(clue_config_set(cfg, set, &err), &err);
  snprintf(set, sizeof set, "output.dir=%s", out_dir);
  TU_OK(clue_config_set(cfg, set, &err), &err);
}

/* Value of "key": number inside the "section": {...} object of log line `epoch`
 * (1-based) of <dir>/log.jsonl; NAN when absent. */
static inline double tr_log_value(const char *dir, int epoch, const char *section,
                                  const char *key) {
  char path[4200], line[16384], pat[256];
  snprintf(path, sizeof path, "%s/log.jsonl", dir);
  FILE *f = fopen(path, "r");
  if (!f) return NAN;
  double v = NAN;
  int n = 0;
  while (fgets(line, sizeof line, f)) {
    if (++n != epoch) continue;
    snprintf(pat, sizeof pat, "\"%s\": {", section);
    char *s = strstr(line, pat);
    if (!s) break;
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    char *k = strstr(s, pat);
    char *end = strchr(s, '}');
    if (k && (!end || k < end)) v = strtod(k + strlen(pat), NULL);
    break;
  }
  fclose(f);
  return v;
}

/* Number of lines (epochs) in <dir>/log.jsonl. */
static inline int tr_log_epochs(const char *dir) {
  char path[4200], line[16384];
  snprintf(path, sizeof path, "%s/log.jsonl", dir);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  int n = 0;
  while (fgets(line, sizeof line, f)) n++;
  fclose(f);
  return n;
}

/* Trains configs/<config>.yaml (modalities rna and `second`) on data, limited by
 * the `limit` assignment. */
static inline void tr_run_config(const char *config, const char *second, const char *data,
                                 const char *dir, const char *limit, const clue_comm *comm) {
  clue_config cfg;
  clue_err err;
  tr_config(&cfg, config, data, second, dir);
  TU_OK(clue_config_set(&cfg, limit, &err), &err);
  TU_OK(clue_config_set(&cfg, "train.batch_size=64", &err), &err);
  TU_OK(clue_config_validate(&cfg, &err), &err);
  clue_train_opts o = {.quiet = true, .overwrite = true};
  if (comm->rank == 0) mkdir(dir, 0755);
  TU_OK(clue_train_run(&cfg, &o, comm, &err), &err);
}

/* Trains the cite config on data, limited by the `limit` assignment. */
static inline void tr_run(const char *data, const char *dir, const char *limit,
                          const clue_comm *comm) {
  tr_run_config("cite", "adt", data, dir, limit, comm);
}

/* Trains configs/<config>.yaml on rank 0 alone, then on every rank, and asserts
 * (on rank 0) that the logged losses `keys` of both runs agree to a relative tol. */
static inline void tr_compare_ranks_config(const char *config, const char *second,
                                           const char *data, const char *name,
                                           const char *limit, int epochs, double tol,
                                           const char *const *keys, int n_keys) {
  clue_comm world = clue_comm_world();
  char one[4200], many[4200];
  snprintf(one, sizeof one, "%s_one", tu_path(name));
  snprintf(many, sizeof many, "%s_all", tu_path(name));
  if (world.rank == 0) {
    clue_comm self = clue_comm_self();
    tr_run_config(config, second, data, one, limit, &self);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  tr_run_config(config, second, data, many, limit, &world);
  if (world.rank != 0) return;
  assert_int_equal(tr_log_epochs(one), epochs);
  assert_int_equal(tr_log_epochs(many), epochs);
  double worst = 0;
  for (int e = 1; e <= epochs; e++)
    for (int i = 0; i < n_keys; i++)
      for (int v = 0; v < 2; v++) {
        const char *sec = v ? "val" : "train";
        double a = tr_log_value(one, e, sec, keys[i]), b = tr_log_value(many, e, sec, keys[i]);
        double rel = fabs(a - b) / fmax(fabs(a), 1e-3);
        if (rel > worst) worst = rel;
        if (rel > tol)
          print_error("%s: epoch %d %s %s: 1 rank %.8g, %d ranks %.8g\n", name, e, sec,
                      keys[i], a, world.size, b);
        assert_true(rel <= tol);
      }
  print_message("  %s: %d ranks vs 1: largest relative difference %.2e (tolerance %.0e)\n",
                name, world.size, worst, tol);
}

/* tr_compare_ranks_config with the cite config (modalities rna and adt). */
static inline void tr_compare_ranks(const char *data, const char *name, const char *limit,
                                    int epochs, double tol, const char *const *keys,
                                    int n_keys) {
  tr_compare_ranks_config("cite", "adt", data, name, limit, epochs, tol, keys, n_keys);
}

#endif
