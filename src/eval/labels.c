/* labels.c — kNN votes and label scores (see labels.h). */
#include "clue/labels.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

int clue_vote(const int32_t *labels, const double *d2, int k, int n_labels, double *weight,
              double *conf) {
  memset(weight, 0, (size_t)n_labels * sizeof *weight);
  bool exact = false;
  for (int j = 0; j < k; j++)
    if (labels[j] >= 0 && labels[j] < n_labels && d2[j] <= 0) exact = true;
  double total = 0;
  for (int j = 0; j < k; j++) {
    if (labels[j] < 0 || labels[j] >= n_labels) continue;
    double w = exact ? (d2[j] <= 0 ? 1.0 : 0.0) : 1 / sqrt(d2[j]);
    weight[labels[j]] += w;
    total += w;
  }
  int best = -1;
  for (int c = 0; c < n_labels; c++)
    if (weight[c] > 0 && (best < 0 || weight[c] > weight[best])) best = c;
  *conf = best >= 0 ? weight[best] / total : 0;
  return best;
}

int64_t clue_label_count(const int32_t *truth, const int32_t *pred, int64_t n, int n_labels,
                         int64_t *counts) {
  int64_t rows = 0;
  for (int64_t i = 0; i < n; i++) {
    int t = truth[i], p = pred[i];
    if (t < 0 || t >= n_labels) continue;
    rows++;
    if (p == t) {
      counts[3 * t]++;
      continue;
    }
    counts[3 * t + 2]++;
    if (p >= 0 && p < n_labels) counts[3 * p + 1]++;
  }
  return rows;
}

void clue_label_scores(const int64_t *counts, int n_labels, int64_t n_rows, double *accuracy,
                       double *macro_f1) {
  int64_t right = 0;
  double f1 = 0;
  int present = 0;
  for (int c = 0; c < n_labels; c++) {
    int64_t tp = counts[3 * c], fp = counts[3 * c + 1], fn = counts[3 * c + 2];
    right += tp;
    if (tp + fp + fn == 0) continue;
    present++;
    f1 += tp > 0 ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0;
  }
  *accuracy = n_rows > 0 ? (double)right / (double)n_rows : NAN;
  *macro_f1 = present > 0 ? f1 / present : NAN;
}
