/* test_train_ranks64.c — what each rank computes, in the float64 build of the
 * network code: the losses of a training step on 1 and on P ranks (and the
 * validation losses after that one update) must agree to a relative 1e-6. The only
 * float32 left in this build is the preprocessing's output (encoder inputs, fitted
 * with sums reduced in a rank-dependent order: ~1e-9 apart in the step's losses,
 * ~2e-7 after RMSprop's first update), so agreement to 1e-6 rules out any
 * difference in sharding, BatchNorm statistics, loss normalisation or random
 * streams, which shows at 1e-3 or more.
 * CLUE_TEST_REAL64
 * CLUE_TEST_NP: 2 3 4
 * CLUE_TEST_SLOW
 * CLUE_TEST_TIMEOUT: 600 */
#include "trainutil.h"

static const char *KEYS[] = {"gen",    "dsc",    "nll_rna", "nll_adt",
                             "kl_rna", "kl_adt", "cos",     "joint_cross_rna",
                             "joint_cross_adt", "elbo_rna", "elbo_adt"};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))

static void test_one_step_float64(void **state) {
  (void)state;
  const char *data = tu_shared_dataset("bmmc_cite_600");
  if (!data) skip();
  tr_compare_ranks(data, "one_step64", "train.max_steps=1", 1, 1e-6, KEYS, N_KEYS);
}

/* The Multiome config: an NB decoder (RNA) and a Bernoulli one (ATAC), whose split
 * output layers take the two ways of clue_work_split_outputs. */
static const char *KEYS_MULTIOME[] = {"gen",         "dsc",      "nll_rna",
                                      "nll_atac",    "kl_rna",   "kl_atac",
                                      "cos",         "joint_cross_rna", "joint_cross_atac"};
#define N_KEYS_MULTIOME ((int)(sizeof KEYS_MULTIOME / sizeof KEYS_MULTIOME[0]))

static void test_one_step_multiome_float64(void **state) {
  (void)state;
  const char *data = tu_shared_dataset("bmmc_multiome_500");
  if (!data) skip();
  tr_compare_ranks_config("multiome", "atac", data, "one_step_multiome64", "train.max_steps=1",
                          1, 1e-6, KEYS_MULTIOME, N_KEYS_MULTIOME);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_one_step_float64),
                                     cmocka_unit_test(test_one_step_multiome_float64)};
  return TU_RUN(tests);
}
