/* labels.h — labels carried across by a vote of nearest neighbours, and the
 * scores of predicted labels against known ones (accuracy, macro-F1), from
 * counts that add up over ranks. Labels are codes 0 … n_labels − 1; a negative
 * code means "no label". */
#ifndef CLUE_LABELS_H
#define CLUE_LABELS_H

#include <stdint.h>

/* The distance-weighted vote of k neighbours of one cell, nearest first:
 * labels[j] their labels (negative: the neighbour does not vote), d2[j] their
 * squared distances. Each voter weighs 1 / distance; when some voters are at
 * distance 0, they alone vote, with weight 1 each (as scikit-learn's
 * KNeighborsClassifier with weights="distance"). Returns the label of the
 * largest total weight (ties: the smallest label) and its share of the total
 * weight in *conf; −1 and *conf = 0 when nobody votes. `weight` is workspace
 * of n_labels doubles. */
int clue_vote(const int32_t *labels, const double *d2, int k, int n_labels, double *weight,
              double *conf);

/* Adds to counts (3 · n_labels: true positives, false positives, false
 * negatives of each label) the n rows with truth[i] ≥ 0; a row whose pred is
 * negative counts as a false negative of its truth only. Returns the rows
 * counted. */
int64_t clue_label_count(const int32_t *truth, const int32_t *pred, int64_t n, int n_labels,
                         int64_t *counts);

/* From counts of clue_label_count (summed over ranks) and the rows counted:
 * accuracy (share of rows with pred == truth) and macro-F1, the mean F1 over
 * the labels present in the truth or the predictions (scikit-learn's
 * f1_score(average="macro"); F1 = 0 for a label never right). */
void clue_label_scores(const int64_t *counts, int n_labels, int64_t n_rows, double *accuracy,
                       double *macro_f1);

#endif
