/* blas_core.c — OpenBLAS's kernels for this CPU (see blas_core.h). */
#include "clue/blas_core.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Set in the environment of the re-executed program: the kernels clue forced. */
#define FORCED_VAR "CLUE_BLAS_FORCED"

clue_cpu_flags clue_cpu_flags_here(void) {
  clue_cpu_flags f = {0};
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  f.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
             __builtin_cpu_supports("avx512cd");
#endif
  return f;
}

const char *clue_blas_core_for(const char *chosen, clue_cpu_flags cpu) {
  if (!chosen || strcmp(chosen, "Prescott") != 0) return NULL;
  if (cpu.avx512) return "SkylakeX";
  if (cpu.avx2_fma) return "Haswell";
  return NULL;
}

/* The library's build string names DYNAMIC_ARCH when it holds kernels for
 * many CPUs (only then does OPENBLAS_CORETYPE choose among them). */
static bool many_cores(void) {
  const char *config = openblas_get_config();
  return config && strstr(config, "DYNAMIC_ARCH") != NULL;
}

/* Under valgrind (its preloaded library in LD_PRELOAD) a re-executed program
 * would run on outside it. */
static bool under_valgrind(void) {
  const char *preload = getenv("LD_PRELOAD");
  return preload && strstr(preload, "vgpreload") != NULL;
}

void clue_blas_fix_core(char **argv) {
  if (getenv("OPENBLAS_CORETYPE") || getenv(FORCED_VAR) || under_valgrind() || !many_cores())
    return;
  const char *core = clue_blas_core_for(openblas_get_corename(), clue_cpu_flags_here());
  if (!core) return;
  /* the program's own path, not /proc/self/exe: the process keeps its name */
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0 || n >= (ssize_t)sizeof self - 1) return;
  self[n] = '\0';
  if (setenv("OPENBLAS_CORETYPE", core, 1) || setenv(FORCED_VAR, core, 1)) return;
  execv(self, argv);
  /* Not re-executed: run on with the kernels loaded, and say so. */
  unsetenv("OPENBLAS_CORETYPE");
  setenv(FORCED_VAR, "", 1);
}

/* "OpenBLAS 0.3.21" from the build string's first two words. */
static void library_name(char *buf, size_t size) {
  const char *config = openblas_get_config();
  int n = 0, spaces = 0;
  while (config && config[n] && !(config[n] == ' ' && ++spaces == 2)) n++;
  snprintf(buf, size, "%.*s", n, config ? config : "");
}

const char *clue_blas_describe(char *buf, size_t size) {
  char lib[64];
  library_name(lib, sizeof lib);
  const char *core = openblas_get_corename();
  const char *forced = getenv(FORCED_VAR);
  const char *better = clue_blas_core_for(core, clue_cpu_flags_here());
  if (forced && forced[0] && !strcmp(forced, core))
    snprintf(buf, size, "%s, %s kernels (set by clue: the library took this CPU for Prescott)",
             lib, core);
  else if (better && many_cores())
    snprintf(buf, size,
             "%s, %s kernels (slow here: this CPU can run %s; set OPENBLAS_CORETYPE=%s)", lib,
             core, better, better);
  else if (better)
    snprintf(buf, size, "%s, %s kernels (slow here: this CPU can run %s, but this OpenBLAS "
             "holds only the kernels of one CPU type)", lib, core, better);
  else
    snprintf(buf, size, "%s, %s kernels", lib, core);
  return buf;
}
