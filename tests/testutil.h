/* testutil.h — what every CMocka test program needs: MPI set-up around a group
 * of tests, the shared data folder (or a visible skip), a scratch folder. */
#ifndef CLUE_TESTUTIL_H
#define CLUE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "clue/comm.h"
#include "clue/error.h"

/* Runs a CMocka group between MPI_Init and MPI_Finalize; returns the number of
 * failed tests (0 = pass), agreed over ranks so that every rank exits alike. */
int tu_run_group(const char *name, const struct CMUnitTest *tests, size_t n,
                 int *argc, char ***argv);
#define TU_RUN(tests) tu_run_group(#tests, tests, sizeof(tests) / sizeof((tests)[0]), &argc, &argv)

/* The shared data folder ($CLUE_SHARED_DATA, else ../shared/data from the source
 * tree) if `dataset` exists in it, as "<folder>/<dataset>"; NULL otherwise (after
 * printing a visible "SKIP" line). The returned string is static. */
const char *tu_shared_dataset(const char *dataset);

/* A scratch folder for this test program ($CLUE_TEST_TMP or /tmp/clue-test-<pid>),
 * created if needed; rank 0's name is used by every rank. Static string. */
const char *tu_tmpdir(void);

/* "<tmpdir>/<name>" in a static ring of buffers. */
const char *tu_path(const char *name);

/* Asserts that rc is CLUE_OK, printing err's message when not. */
#define TU_OK(rc, err)                                                   \
  do {                                                                   \
    int tu_rc_ = (rc);                                                   \
    if (tu_rc_ != CLUE_OK) {                                             \
      print_error("%s:%d: code %d: %s\n", __FILE__, __LINE__, tu_rc_,    \
                  (err)->msg);                                           \
      fail();                                                            \
    }                                                                    \
  } while (0)

/* Asserts that |a − b| ≤ tol · max(1, |a|, |b|). */
#define TU_CLOSE(a, b, tol)                                                     \
  do {                                                                          \
    double tu_a_ = (double)(a), tu_b_ = (double)(b);                            \
    double tu_s_ = fabs(tu_a_) > fabs(tu_b_) ? fabs(tu_a_) : fabs(tu_b_);       \
    if (tu_s_ < 1) tu_s_ = 1;                                                   \
    if (!(fabs(tu_a_ - tu_b_) <= (tol) * tu_s_)) {                              \
      print_error("%s:%d: %s = %.10g vs %s = %.10g (tol %g)\n", __FILE__,       \
                  __LINE__, #a, tu_a_, #b, tu_b_, (double)(tol));               \
      fail();                                                                   \
    }                                                                           \
  } while (0)

/* The world communicator view. */
clue_comm tu_world(void);

#endif
