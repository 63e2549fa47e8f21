/* report_eval.c — the figures of a `clue eval --json` file (see report.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clue/report.h"

static const struct {
  const char *key, *meaning;
} MEANING[] = {
    {"n", "paired test cells compared"},
    {"foscttm", "FOSCTTM, mean of both directions: for each cell, the share of the other "
                "modality's cells closer to it than its true partner (lower is better; random "
                "0.5)"},
    {"foscttm_ab", "FOSCTTM from the first file's cells to the second's"},
    {"foscttm_ba", "FOSCTTM from the second file's cells to the first's"},
    {"match", "matching score, mean of both directions: probability that the snn matching "
              "puts on each cell's true partner (higher is better)"},
    {"match_ab", "matching score, first file to second"},
    {"match_ba", "matching score, second file to first"},
    {"top1_ab", "share of the first file's cells whose nearest cell of the second is the partner"},
    {"top1_ba", "share of the second file's cells whose nearest cell of the first is the partner"},
    {"top5_ab", "share with the partner among the 5 nearest (first to second)"},
    {"top5_ba", "share with the partner among the 5 nearest (second to first)"},
    {"asw_label", "label silhouette, (ASW + 1) / 2 (higher: labels apart)"},
    {"asw_batch", "batch mixing within labels, 1 − |ASW| (higher: batches mixed)"},
    {"asw_modality", "modality mixing within labels, 1 − |ASW| (higher: modalities mixed)"},
    {"graph_connectivity", "share of each label's cells in its largest kNN-connected piece, "
                           "mean over labels"},
    {"transfer_accuracy", "leave-modality-out label transfer: accuracy over all files"},
    {"transfer_macro_f1", "leave-modality-out label transfer: macro-F1 over all files"},
    {"cells", "cells in the label measures"},
    {"labels", "distinct labels"},
    {"dim", "embedding dimensions"}};

static const char *meaning(const char *key) {
  for (size_t i = 0; i < sizeof MEANING / sizeof MEANING[0]; i++)
    if (!strcmp(MEANING[i].key, key)) return MEANING[i].meaning;
  return "";
}

static void transfer_table(clue_strbuf *b, const clue_json *t) {
  clue_sb_printf(b, "<h3>Label transfer per file (leave-modality-out)</h3><table><tr><th>file"
                    "</th><th>cells</th><th>accuracy</th><th>macro-F1</th></tr>");
  for (int i = 0; i < t->n; i++) {
    clue_sb_printf(b, "<tr><td>");
    clue_sb_html(b, t->keys[i]);
    clue_sb_printf(b, "</td><td class='n'>%.0f</td><td class='n'>%.4f</td><td class='n'>%.4f"
                      "</td></tr>",
                   clue_json_num(t->items[i], "cells", NAN),
                   clue_json_num(t->items[i], "accuracy", NAN),
                   clue_json_num(t->items[i], "macro_f1", NAN));
  }
  clue_sb_printf(b, "</table>\n");
}

void report_section_eval(clue_strbuf *b, clue_strbuf *js, const clue_json *e, const char *path) {
  clue_sb_printf(b, "<h2>Evaluation</h2>\n");
  if (!e) {
    report_note(b, path ? "The evaluation file could not be read (see the warning)."
                        : "No evaluation: run clue eval with --json and give the file to "
                          "clue report --eval.");
    return;
  }
  clue_sb_printf(b, "<p>From <code>");
  clue_sb_html(b, path);
  clue_sb_printf(b, "</code>.</p><table><tr><th>figure</th><th>value</th><th>meaning</th></tr>");
  const clue_json *transfer = NULL;
  for (int i = 0; i < e->n; i++) {
    const clue_json *v = e->items[i];
    if (!strcmp(e->keys[i], "transfer") && v->type == CLUE_JSON_OBJECT) transfer = v;
    if (v->type != CLUE_JSON_NUMBER) continue;
    clue_sb_printf(b, "<tr><th>");
    clue_sb_html(b, e->keys[i]);
    clue_sb_printf(b, "</th><td class='n'>%.4g</td><td>", v->number);
    clue_sb_html(b, meaning(e->keys[i]));
    clue_sb_printf(b, "</td></tr>");
  }
  clue_sb_printf(b, "</table>\n");
  if (transfer) transfer_table(b, transfer);
  clue_sb_printf(js, "  \"eval_file\": ");
  clue_sb_json_string(js, path);
  clue_sb_printf(js, ",\n");
}
