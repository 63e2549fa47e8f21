/* blas_core.h — which OpenBLAS kernels run the GEMMs.
 *
 * OpenBLAS built for many CPUs (DYNAMIC_ARCH, as Debian's) picks its kernels
 * when it loads, by the CPU's model number. A release older than the CPU does
 * not know the model and falls back to its generic "Prescott" kernels (SSE3):
 * Debian 12's 0.3.21 does so on Sapphire/Emerald Rapids, where its sgemm then
 * runs at a fifth of the speed of its AVX-512 kernels. The choice can only be
 * forced before the library loads, through the environment variable
 * OPENBLAS_CORETYPE; clue_blas_fix_core does that by re-executing the program
 * once. A user's own OPENBLAS_CORETYPE is always left alone. */
#ifndef CLUE_BLAS_CORE_H
#define CLUE_BLAS_CORE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct clue_cpu_flags {
  bool avx2_fma; /* AVX2 and FMA */
  bool avx512;   /* AVX-512 F, BW, DQ, VL and CD (what OpenBLAS's SkylakeX kernels use) */
} clue_cpu_flags;

/* This CPU's flags (as the compiler's run-time check sees them, OS support
 * included). */
clue_cpu_flags clue_cpu_flags_here(void);

/* The kernels to force when OpenBLAS chose `chosen` on a CPU with `cpu`:
 * "SkylakeX" (AVX-512) or "Haswell" (AVX2 + FMA) when `chosen` is its
 * fallback "Prescott" and the CPU can do better; NULL when its choice stands. */
const char *clue_blas_core_for(const char *chosen, clue_cpu_flags cpu);

/* To be called first in main, before MPI_Init. When OPENBLAS_CORETYPE is unset,
 * the library was built for many CPUs and clue_blas_core_for names kernels,
 * sets OPENBLAS_CORETYPE (and CLUE_BLAS_FORCED, so that it happens once) and
 * re-executes this program with the same arguments; otherwise, under valgrind
 * (which a re-executed program would leave), or when the re-execution fails,
 * returns and the program runs on as it is. */
void clue_blas_fix_core(char **argv);

/* Room for the line of clue_blas_describe, its terminating NUL included. */
#define CLUE_BLAS_LINE_MAX 160

/* One line on the kernels in use, for a run's header and `clue --version`, in
 * buf: "OpenBLAS 0.3.21, SkylakeX kernels (set by clue: the library took this
 * CPU for Prescott)" and the like. Returns buf. */
const char *clue_blas_describe(char *buf, size_t size);

#endif
