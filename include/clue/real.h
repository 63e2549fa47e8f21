/* real.h — the floating-point type of the network code (nn/, model/, train/).
 *
 * `real` is float in the program. The gradient tests compile the same sources a
 * second time with CLUE_REAL_DOUBLE so that finite differences can be checked to
 * tight tolerances. Math in those files goes through the r_* names below. */
#ifndef CLUE_REAL_H
#define CLUE_REAL_H

#include <cblas.h>
#include <math.h>

#ifdef CLUE_REAL_DOUBLE
typedef double real;
#define CLUE_REAL_NAME "float64"
#define r_exp exp
#define r_log log
#define r_log1p log1p
#define r_expm1 expm1
#define r_sqrt sqrt
#define r_fabs fabs
#define r_lgamma lgamma
#define r_tanh tanh
#define r_pow pow
#define cblas_rgemm cblas_dgemm
#define cblas_rgemv cblas_dgemv
#define cblas_raxpy cblas_daxpy
#define cblas_rscal cblas_dscal
#define cblas_rdot cblas_ddot
#define MPI_REAL_T MPI_DOUBLE
#define H5T_NATIVE_REAL H5T_NATIVE_DOUBLE
#else
typedef float real;
#define CLUE_REAL_NAME "float32"
#define r_exp expf
#define r_log logf
#define r_log1p log1pf
#define r_expm1 expm1f
#define r_sqrt sqrtf
#define r_fabs fabsf
#define r_lgamma lgammaf
#define r_tanh tanhf
#define r_pow powf
#define cblas_rgemm cblas_sgemm
#define cblas_rgemv cblas_sgemv
#define cblas_raxpy cblas_saxpy
#define cblas_rscal cblas_sscal
#define cblas_rdot cblas_sdot
#define MPI_REAL_T MPI_FLOAT
#define H5T_NATIVE_REAL H5T_NATIVE_FLOAT
#endif

#endif
