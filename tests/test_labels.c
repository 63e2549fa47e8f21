/* test_labels.c — the kNN vote and the label scores (labels.h) on cases worked
 * out by hand: weights 1/distance, neighbours at distance 0 voting alone, ties
 * to the smaller label, neighbours without a label, nobody voting; accuracy and
 * macro-F1 (over the labels in the truth or the predictions) of a small table,
 * and counts that add up when split in parts (as over ranks). */
#include <math.h>

#include "clue/labels.h"
#include "testutil.h"

static void test_vote_weights(void **state) {
  (void)state;
  double w[4], conf;
  /* distances 1, 2, 4 → weights 1, 0.5, 0.25: label 2 (0.25 + 0.5 = 0.75) loses to 0 (1) */
  int32_t lab[3] = {0, 2, 2};
  double d2[3] = {1, 4, 16};
  assert_int_equal(clue_vote(lab, d2, 3, 4, w, &conf), 0);
  assert_true(fabs(conf - 1.0 / 1.75) < 1e-12);
  /* distances 1, 1.25, 1.25 → label 2 wins with 1.6 of 2.6 */
  double d2b[3] = {1, 1.5625, 1.5625};
  assert_int_equal(clue_vote(lab, d2b, 3, 4, w, &conf), 2);
  assert_true(fabs(conf - 1.6 / 2.6) < 1e-12);
}

static void test_vote_edges(void **state) {
  (void)state;
  double w[3], conf;
  int32_t lab[4] = {1, 2, 2, 0};
  double d2[4] = {0, 0, 1e-6, 1e-8}; /* two at distance 0 vote alone: a tie, 1 wins */
  assert_int_equal(clue_vote(lab, d2, 4, 3, w, &conf), 1);
  assert_true(fabs(conf - 0.5) < 1e-12);
  int32_t none[3] = {-1, -1, 5}; /* no label, and a label out of range */
  double d2n[3] = {1, 2, 3};
  assert_int_equal(clue_vote(none, d2n, 3, 3, w, &conf), -1);
  assert_true(conf == 0);
  int32_t some[3] = {-1, 2, -1}; /* only the labelled neighbour votes */
  assert_int_equal(clue_vote(some, d2n, 3, 3, w, &conf), 2);
  assert_true(conf == 1);
}

/* truth  0 0 0 1 1 2 −1   pred  0 1 0 1 −1 1 2
 * label 0: tp 2, fp 0, fn 1 → F1 4/5; label 1: tp 1, fp 2, fn 1 → 2/5;
 * label 2: tp 0, fp 0, fn 1 → 0. accuracy 3/6, macro-F1 (0.8 + 0.4 + 0) / 3. */
static void test_scores(void **state) {
  (void)state;
  int32_t truth[7] = {0, 0, 0, 1, 1, 2, -1}, pred[7] = {0, 1, 0, 1, -1, 1, 2};
  int64_t counts[12] = {0};
  assert_int_equal(clue_label_count(truth, pred, 7, 4, counts), 6);
  double acc, f1;
  clue_label_scores(counts, 4, 6, &acc, &f1);
  assert_true(fabs(acc - 0.5) < 1e-12);
  assert_true(fabs(f1 - 1.2 / 3) < 1e-12); /* label 3 absent everywhere: not averaged */
  int64_t parts[12] = {0}; /* the same counts from two halves */
  int64_t n = clue_label_count(truth, pred, 3, 4, parts) +
              clue_label_count(truth + 3, pred + 3, 4, 4, parts);
  assert_int_equal(n, 6);
  assert_memory_equal(parts, counts, sizeof counts);
  int64_t empty[12] = {0};
  clue_label_scores(empty, 4, 0, &acc, &f1);
  assert_true(isnan(acc) && isnan(f1));
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_vote_weights),
                                     cmocka_unit_test(test_vote_edges),
                                     cmocka_unit_test(test_scores)};
  return TU_RUN(tests);
}
