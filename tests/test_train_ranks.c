/* test_train_ranks.c — the same config on 1 and on P ranks gives the same losses
 * up to the order of floating-point reductions. Rank 0 first trains alone
 * (MPI_COMM_SELF), then every rank trains together, and the logs are compared:
 *   - one step (losses of step 1, then validation after one update): relative
 *     1e-4 — float32 sums in another order differ by ~1e-6; any difference in
 *     data, sharding, BatchNorm statistics or random streams is of order 1e-2..1;
 *   - three epochs: relative 2e-2 — RMSprop's first updates are ±lr·10 for every
 *     parameter, whatever the gradient's size, so the sign of near-zero gradients
 *     (float noise) moves some weights by a full step; differences then grow to
 *     ~1e-3 by epoch 3 while the losses themselves fall by 10×.
 * CLUE_TEST_NP: 2 3 4
 * CLUE_TEST_SLOW
 * CLUE_TEST_TIMEOUT: 900 */
#include "trainutil.h"

#define EPOCHS 3

static const char *KEYS[] = {"gen", "dsc", "nll_rna", "nll_adt", "kl_rna", "kl_adt",
                             "joint_cross_rna", "cos"};
#define N_KEYS ((int)(sizeof KEYS / sizeof KEYS[0]))
/* the large terms, for the three-epoch curve (small terms such as the KL or the
 * discriminator loss wander by a few percent between runs) */
static const char *MAIN[] = {"gen", "nll_rna", "nll_adt", "joint_cross_rna", "joint_cross_adt"};
#define N_MAIN ((int)(sizeof MAIN / sizeof MAIN[0]))

static void test_one_step(void **state) {
  (void)state;
  const char *data = tu_shared_dataset("bmmc_cite_600");
  if (!data) skip();
  tr_compare_ranks(data, "one_step", "train.max_steps=1", 1, 1e-4, KEYS, N_KEYS);
}

static void test_three_epochs(void **state) {
  (void)state;
  const char *data = tu_shared_dataset("bmmc_cite_600");
  if (!data) skip();
  tr_compare_ranks(data, "three_epochs", "train.max_epochs=3", EPOCHS, 2e-2, MAIN, N_MAIN);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_one_step),
                                     cmocka_unit_test(test_three_epochs)};
  return TU_RUN(tests);
}
