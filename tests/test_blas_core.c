/* test_blas_core.c — the choice of OpenBLAS kernels (blas_core.h): which
 * kernels are forced for which CPU and library choice, and the line that
 * describes them. (tests/test_blas_core.sh checks the re-execution itself.) */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "clue/blas_core.h"
#include "testutil.h"

static const clue_cpu_flags NONE = {false, false}, AVX2 = {true, false}, AVX512 = {true, true};

static void test_fallback_is_replaced(void **state) {
  (void)state;
  assert_string_equal(clue_blas_core_for("Prescott", AVX512), "SkylakeX");
  assert_string_equal(clue_blas_core_for("Prescott", AVX2), "Haswell");
  /* AVX-512 without AVX2 + FMA does not occur; the AVX-512 kernels need only it */
  assert_string_equal(clue_blas_core_for("Prescott", (clue_cpu_flags){false, true}),
                      "SkylakeX");
}

static void test_own_choices_stand(void **state) {
  (void)state;
  assert_null(clue_blas_core_for("Prescott", NONE)); /* an old CPU: Prescott is right */
  const char *known[] = {"Haswell", "SkylakeX", "Cooperlake", "Zen", "Sandybridge", "Nehalem"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    assert_null(clue_blas_core_for(known[i], AVX512));
  assert_null(clue_blas_core_for("prescott", AVX512)); /* only the library's exact name */
  assert_null(clue_blas_core_for(NULL, AVX512));
}

/* The line names the library and the kernels in use; with CLUE_BLAS_FORCED set
 * to those kernels it says clue set them. */
static void test_describe(void **state) {
  (void)state;
  char buf[CLUE_BLAS_LINE_MAX];
  const char *line = clue_blas_describe(buf, sizeof buf);
  assert_ptr_equal(line, buf);
  assert_true(strncmp(buf, "OpenBLAS ", 9) == 0);
  assert_non_null(strstr(buf, " kernels"));
  const char *core = openblas_get_corename();
  assert_non_null(strstr(buf, core));
  setenv("CLUE_BLAS_FORCED", core, 1);
  clue_blas_describe(buf, sizeof buf);
  assert_non_null(strstr(buf, "set by clue"));
  unsetenv("CLUE_BLAS_FORCED");
  clue_blas_describe(buf, sizeof buf);
  assert_null(strstr(buf, "set by clue"));
  char small[12]; /* truncated, still a string */
  clue_blas_describe(small, sizeof small);
  assert_int_equal(strlen(small), sizeof small - 1);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_fallback_is_replaced),
      cmocka_unit_test(test_own_choices_stand),
      cmocka_unit_test(test_describe),
  };
  return TU_RUN(tests);
}
