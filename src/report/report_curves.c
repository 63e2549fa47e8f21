/* report_curves.c — the training curves of log.jsonl (see report.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/report.h"

#define CHART_W 560
#define CHART_H 290
#define MAX_SERIES 32
#define MAX_MARKERS 40

typedef struct curves {
  const report_log *log;
  double *epoch;            /* (n_rows) */
  report_series s[MAX_SERIES];
  double *y[MAX_SERIES];    /* owned columns */
  int n;
  report_marker m[MAX_MARKERS];
  int n_markers;
} curves;

/* Adds the log column `name` as a series (skipped when absent or never finite
 * and nonzero). */
static void add(curves *c, const char *name, const char *label, const char *colour,
                bool dashed) {
  const report_log *l = c->log;
  int col = report_log_col(l, name);
  if (col < 0 || c->n == MAX_SERIES) return;
  double *y = malloc((size_t)(l->n_rows + 1) * sizeof *y);
  if (!y) return;
  bool any = false;
  for (int r = 0; r < l->n_rows; r++) {
    y[r] = l->v[(size_t)r * l->n_cols + col];
    any |= isfinite(y[r]) && y[r] != 0;
  }
  if (!any) return free(y);
  c->y[c->n] = y;
  c->s[c->n++] = (report_series){.label = label, .x = c->epoch, .y = y, .n = l->n_rows,
                                 .colour = colour, .dashed = dashed};
}

static void flush(curves *c, clue_strbuf *b, const char *title, int force) {
  if (c->n > 0)
    report_chart_svg(b, title, "epoch", c->s, c->n, c->m, c->n_markers, CHART_W, CHART_H, force);
  for (int i = 0; i < c->n; i++) free(c->y[i]);
  c->n = 0;
}

/* Modality names from the "train.nll_<m>" columns, in log order. */
static int modalities(const report_log *l, const char *mods[], int max) {
  int n = 0;
  for (int c = 0; c < l->n_cols && n < max; c++)
    if (!strncmp(l->cols[c], "train.nll_", 10)) mods[n++] = l->cols[c] + 10;
  return n;
}

static void marker(curves *c, double x, const char *label, const char *colour) {
  if (c->n_markers < MAX_MARKERS && isfinite(x) && x > 0)
    c->m[c->n_markers++] = (report_marker){.x = x, .label = label, .colour = colour};
}

static void markers(curves *c, const clue_json *run) {
  const report_log *l = c->log;
  double last = l->n_rows ? c->epoch[l->n_rows - 1] : 0;
  double burn = clue_json_num(run, "align_burnin", NAN);
  if (burn <= last) marker(c, burn, "alignment burn-in ends", "#8e62bc");
  for (int r = 0; r < l->n_rows; r++) {
    if (!strcmp(l->event[r], "lr reduced")) marker(c, c->epoch[r], "lr reduced", "#d22a2c");
    if (!strcmp(l->event[r], "early stop")) marker(c, c->epoch[r], "early stop", "#7d7d7d");
  }
  marker(c, clue_json_num(run, "best_epoch", NAN), "best (kept)", "#2c9e3a");
  const clue_json *res = clue_json_get(run, "resumed_at");
  for (int i = 0; res && res->type == CLUE_JSON_ARRAY && i < res->n; i++)
    marker(c, clue_json_num(res->items[i], NULL, NAN), "resumed", "#f07f0c");
}

static void per_modality(curves *c, clue_strbuf *b, const char *term, const char *title,
                         const char *mods[], int n_mods) {
  char names[2 * 8][96], labels[2 * 8][96];
  for (int k = 0; k < n_mods && k < 8; k++)
    for (int v = 0; v < 2; v++) {
      snprintf(names[2 * k + v], 96, "%s.%s_%s", v ? "val" : "train", term, mods[k]);
      snprintf(labels[2 * k + v], 96, "%s %s", mods[k], v ? "val" : "train");
      add(c, names[2 * k + v], labels[2 * k + v], report_palette(k), v == 1);
    }
  flush(c, b, title, 0);
}

static void json_last(clue_strbuf *js, const report_log *l) {
  clue_sb_printf(js, "  \"log\": {\"epochs\": %d, \"bad_lines\": %d, \"last\": {", l->n_rows,
                 l->bad_lines);
  for (int c = 0; c < l->n_cols; c++) {
    clue_sb_printf(js, "%s", c ? ", " : "");
    clue_sb_json_string(js, l->cols[c]);
    clue_sb_printf(js, ": ");
    clue_sb_json_number(js, l->n_rows ? l->v[(size_t)(l->n_rows - 1) * l->n_cols + c] : NAN);
  }
  clue_sb_printf(js, "}},\n");
}

void report_section_curves(clue_strbuf *b, clue_strbuf *js, const clue_json *run,
                           const report_log *l) {
  clue_sb_printf(b, "<h2>Training curves</h2>\n");
  if (!l || l->n_rows == 0) {
    report_note(b, "No training curves: log.jsonl is missing or holds no complete epoch.");
    return;
  }
  if (l->bad_lines) {
    char t[512];
    snprintf(t, sizeof t, "log.jsonl: %d line%s could not be read and %s left out (first: line "
                          "%d, %s) — a run killed while writing leaves such a line.",
             l->bad_lines, l->bad_lines == 1 ? "" : "s", l->bad_lines == 1 ? "is" : "are",
             l->first_bad_line, l->first_bad_msg);
    report_note(b, t);
  }
  curves c = {.log = l};
  c.epoch = malloc((size_t)(l->n_rows + 1) * sizeof *c.epoch);
  if (!c.epoch) return;
  int ce = report_log_col(l, "epoch");
  for (int r = 0; r < l->n_rows; r++) c.epoch[r] = l->v[(size_t)r * l->n_cols + ce];
  markers(&c, run);
  const char *mods[8];
  int n_mods = modalities(l, mods, 8);
  clue_sb_printf(b, "<p>Per epoch, means over its steps; solid: training cells, dashed: "
                    "validation cells.</p><div class='charts'>\n");
  add(&c, "train.gen", "train", "#1f6fb4", false);
  add(&c, "val.gen", "val", "#1f6fb4", true);
  flush(&c, b, "generator loss (total)", 0);
  add(&c, "train.dsc", "train", "#d22a2c", false);
  add(&c, "val.dsc", "val", "#d22a2c", true);
  flush(&c, b, "discriminator loss", 0);
  per_modality(&c, b, "nll", "reconstruction (negative log-likelihood)", mods, n_mods);
  per_modality(&c, b, "kl", "KL divergence", mods, n_mods);
  per_modality(&c, b, "joint_cross", "joint cross reconstruction", mods, n_mods);
  per_modality(&c, b, "real_cross", "real cross reconstruction", mods, n_mods);
  per_modality(&c, b, "cos", "cosine alignment", mods, n_mods);
  add(&c, "lr", "learning rate", "#8a5548", false);
  flush(&c, b, "learning rate", 1);
  add(&c, "cells_per_s", "cells/s", "#16bccd", false);
  flush(&c, b, "training speed (cells per second)", -1);
  clue_sb_printf(b, "</div>\n");
  free(c.epoch);
  json_last(js, l);
}
