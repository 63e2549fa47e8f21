/* test_train.c — a short training run on the shared bmmc_cite_600 data lowers
 * every loss term; the same seed gives identical numbers, another seed
 * different ones; the run folder holds config, log and checkpoint.
 * CLUE_TEST_TIMEOUT: 600 */
#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clue/checkpoint.h"
#include "clue/train.h"
#include "trainutil.h"

#define EPOCHS 6

/* The KL part alone may rise in early epochs while the reconstruction falls;
 * the self ELBO (reconstruction + KL) is the loss term. */
static const char *KEYS[] = {"gen", "nll_rna", "nll_adt", "elbo_rna", "elbo_adt",
                             "joint_cross_rna", "joint_cross_adt", "cos"};
#define N_KEYS (sizeof KEYS / sizeof KEYS[0])

static void train(const char *dataset, const char *dir, const char *seed) {
  clue_config cfg;
  clue_err err;
  tr_config(&cfg, "cite", dataset, "adt", dir);
  char set[64];
  snprintf(set, sizeof set, "train.seed=%s", seed);
  TU_OK(clue_config_set(&cfg, set, &err), &err);
  TU_OK(clue_config_set(&cfg, "train.max_epochs=6", &err), &err);
  TU_OK(clue_config_validate(&cfg, &err), &err);
  clue_train_opts o = {.resume = false, .quiet = true, .overwrite = true};
  clue_comm comm = clue_comm_self();
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  assert_int_equal(system(cmd), 0);
  mkdir(dir, 0755);
  TU_OK(clue_train_run(&cfg, &o, &comm, &err), &err);
}

static void test_losses_fall_and_seeds(void **state) {
  (void)state;
  const char *data = tu_shared_dataset("bmmc_cite_600");
  if (!data) skip();
  char a[4200], b[4200], c[4200];
  snprintf(a, sizeof a, "%s", tu_path("seed0_a"));
  snprintf(b, sizeof b, "%s", tu_path("seed0_b"));
  snprintf(c, sizeof c, "%s", tu_path("seed1"));
  train(data, a, "0");
  assert_int_equal(tr_log_epochs(a), EPOCHS);
  for (size_t i = 0; i < N_KEYS; i++) {
    double first = tr_log_value(a, 1, "train", KEYS[i]);
    double last = tr_log_value(a, EPOCHS, "train", KEYS[i]);
    print_message("  %-16s epoch 1 %10.4f  epoch %d %10.4f\n", KEYS[i], first, EPOCHS, last);
    assert_true(isfinite(first) && isfinite(last));
    assert_true(last < first);
  }
  /* the adversarial game moves the discriminator towards chance (ln 2) */
  double d1 = tr_log_value(a, 1, "train", "dsc"), dn = tr_log_value(a, EPOCHS, "train", "dsc");
  assert_true(fabs(dn - log(2.0)) < fabs(d1 - log(2.0)));
  struct stat st;
  char path[4300];
  snprintf(path, sizeof path, "%s/checkpoint.h5", a);
  assert_int_equal(stat(path, &st), 0);

  train(data, b, "0");
  train(data, c, "1");
  int differ = 0;
  for (int e = 1; e <= EPOCHS; e++)
    for (size_t i = 0; i < N_KEYS; i++) {
      double x = tr_log_value(a, e, "train", KEYS[i]), y = tr_log_value(b, e, "train", KEYS[i]);
      double z = tr_log_value(c, e, "train", KEYS[i]);
      assert_true(x == y); /* bitwise the same run */
      differ += x != z;
      double vx = tr_log_value(a, e, "val", KEYS[i]), vy = tr_log_value(b, e, "val", KEYS[i]);
      assert_true(vx == vy);
    }
  assert_true(differ > (int)N_KEYS * EPOCHS / 2);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_losses_fall_and_seeds)};
  return TU_RUN(tests);
}
