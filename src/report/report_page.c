/* report_page.c — the frame of the report page and its sections built from
 * run.json, config.yaml and log.jsonl (see report.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clue/report.h"

static const char *CSS =
    "body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;"
    "margin:0 auto;max-width:1180px;padding:0 18px 40px;color:#1d232a;background:#fff}"
    "h1{font-size:22px;margin:22px 0 2px}h2{font-size:18px;margin:30px 0 8px;"
    "border-bottom:2px solid #1f6fb4;padding-bottom:3px}h3{font-size:15px;margin:16px 0 6px}"
    ".sub{color:#5b6670;margin:0 0 10px}table{border-collapse:collapse;margin:6px 0 10px}"
    "td,th{border:1px solid #d5dbe0;padding:3px 8px;text-align:left;vertical-align:top}"
    "th{background:#f1f4f7}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    ".note{background:#fff4d6;border-left:4px solid #f0a30c;padding:6px 10px;margin:8px 0}"
    ".charts{display:flex;flex-wrap:wrap;gap:10px}.chart{background:#fff;border:1px solid #e3e7eb}"
    ".grid{stroke:#edf0f2}.frame{fill:none;stroke:#9aa5ae}.tick{font-size:11px;fill:#46505a}"
    ".ctitle{font-size:13px;font-weight:600;fill:#1d232a}.mark{font-size:10px}"
    ".maps{display:flex;flex-wrap:wrap;gap:14px}.map{border:1px solid #e3e7eb}"
    ".legend{font-size:12px;max-width:440px;columns:2}.sw{display:inline-block;width:10px;"
    "height:10px;margin-right:5px;border-radius:50%}pre{background:#f6f8fa;padding:8px;"
    "overflow:auto;font-size:12px}details{margin:6px 0}.cm td{padding:2px 5px;font-size:11px}"
    "footer{color:#7a8590;font-size:12px;margin-top:30px}";

void report_page_begin(clue_strbuf *b, const char *title, const char *subtitle) {
  clue_sb_printf(b, "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
                    "<meta name='viewport' content='width=device-width,initial-scale=1'>"
                    "<title>");
  clue_sb_html(b, title);
  clue_sb_printf(b, "</title><style>%s</style></head><body>\n<h1>", CSS);
  clue_sb_html(b, title);
  clue_sb_printf(b, "</h1><p class='sub'>");
  clue_sb_html(b, subtitle);
  clue_sb_printf(b, "</p>\n");
}

void report_page_end(clue_strbuf *b) {
  clue_sb_printf(b, "<footer>Written by clue report: one file, nothing fetched from the "
                    "network. The numbers are also in report.json beside this page."
                    "</footer>\n</body></html>\n");
}

void report_note(clue_strbuf *b, const char *text) {
  clue_sb_printf(b, "<p class='note'>");
  clue_sb_html(b, text);
  clue_sb_printf(b, "</p>\n");
}

/* A table row: name, value (escaped). */
static void row(clue_strbuf *b, const char *name, const char *value) {
  clue_sb_printf(b, "<tr><th>");
  clue_sb_html(b, name);
  clue_sb_printf(b, "</th><td>");
  clue_sb_html(b, value);
  clue_sb_printf(b, "</td></tr>");
}

/* The mean of a log column over the epochs where it is finite (NAN: none). */
static double col_mean(const report_log *l, const char *name) {
  int c = l ? report_log_col(l, name) : -1;
  double s = 0;
  int n = 0;
  for (int r = 0; c >= 0 && r < l->n_rows; r++) {
    double v = l->v[(size_t)r * l->n_cols + c];
    if (isfinite(v)) s += v, n++;
  }
  return n ? s / n : NAN;
}

static void run_status(clue_strbuf *b, const clue_json *run) {
  char t[768];
  const char *st = clue_json_str(run, "status"), *why = clue_json_str(run, "reason");
  snprintf(t, sizeof t, "%s%s%s", st ? st : "?", why && why[0] ? ": " : "", why ? why : "");
  row(b, "status", t);
  int starts = (int)clue_json_num(run, "starts", 1);
  snprintf(t, sizeof t, "%d start%s (%d resume%s)", starts, starts == 1 ? "" : "s", starts - 1,
           starts == 2 ? "" : "s");
  row(b, "starts", t);
  snprintf(t, sizeof t, "%.0f ranks x %.0f BLAS thread(s) per rank%s",
           clue_json_num(run, "ranks", NAN), clue_json_num(run, "threads_per_rank", NAN),
           clue_json_str(run, "layout") ? clue_json_str(run, "layout") : "");
  row(b, "layout", t);
  row(b, "BLAS", clue_json_str(run, "blas") ? clue_json_str(run, "blas") : "?");
  snprintf(t, sizeof t, "%.0f epochs, %.0f steps of %.0f cells (%.0f steps per epoch); "
                        "best epoch %.0f; learning rate now %g",
           clue_json_num(run, "epoch", NAN), clue_json_num(run, "step", NAN),
           clue_json_num(run, "batch_size", NAN), clue_json_num(run, "steps_per_epoch", NAN),
           clue_json_num(run, "best_epoch", NAN), clue_json_num(run, "lr", NAN));
  row(b, "progress", t);
  snprintf(t, sizeof t, "%.1f s training in all starts; %.1f s wall time of the last start",
           clue_json_num(run, "train_seconds", NAN),
           clue_json_num(run, "wall_seconds_this_start", NAN));
  row(b, "time", t);
  snprintf(t, sizeof t, "clue %s (%s), record of %s",
           clue_json_str(run, "clue_version") ? clue_json_str(run, "clue_version") : "?",
           clue_json_str(run, "git_rev") ? clue_json_str(run, "git_rev") : "?",
           clue_json_str(run, "updated") ? clue_json_str(run, "updated") : "?");
  row(b, "program", t);
}

static void run_data(clue_strbuf *b, const clue_json *run) {
  const clue_json *d = clue_json_get(run, "data"), *mods = clue_json_get(d, "modalities");
  double cells = clue_json_num(d, "cells", NAN), all = clue_json_num(d, "cells_all_modalities", NAN);
  clue_sb_printf(b, "<p>%.0f training cells (%.0f for steps, %.0f held out for validation): "
                    "%.0f measured in every modality, %.0f in fewer.</p>",
                 cells, clue_json_num(d, "cells_train", NAN), clue_json_num(d, "cells_val", NAN),
                 all, cells - all);
  clue_sb_printf(b, "<table><tr><th>modality</th><th>cells</th><th>features</th>"
                    "<th>decoded</th><th>encoder input</th><th>likelihood</th><th>file</th></tr>");
  for (int i = 0; mods && mods->type == CLUE_JSON_ARRAY && i < mods->n; i++) {
    const clue_json *m = mods->items[i];
    clue_sb_printf(b, "<tr><td>");
    clue_sb_html(b, clue_json_str(m, "name"));
    clue_sb_printf(b, "</td><td class='n'>%.0f</td><td class='n'>%.0f</td><td class='n'>%.0f"
                      "</td><td class='n'>%.0f</td><td>",
                   clue_json_num(m, "cells", NAN), clue_json_num(m, "features", NAN),
                   clue_json_num(m, "decoded", NAN), clue_json_num(m, "components", NAN));
    clue_sb_html(b, clue_json_str(m, "likelihood"));
    clue_sb_printf(b, "</td><td>");
    clue_sb_html(b, clue_json_str(m, "file"));
    clue_sb_printf(b, "</td></tr>");
  }
  clue_sb_printf(b, "</table>\n");
}

void report_section_run(clue_strbuf *b, clue_strbuf *js, const clue_json *run,
                        const char *config_text, const report_log *log) {
  clue_sb_printf(b, "<h2>Run</h2>\n");
  double cps = col_mean(log, "cells_per_s");
  if (run) {
    clue_sb_printf(b, "<table>");
    run_status(b, run);
    char t[64];
    snprintf(t, sizeof t, "%.0f", cps);
    if (isfinite(cps)) row(b, "cells per second (mean over epochs)", t);
    clue_sb_printf(b, "</table>\n");
    run_data(b, run);
  } else {
    report_note(b, "run.json is missing: the run was made by a clue that did not record it, "
                   "or training has not started. Status, layout and data shapes are unknown.");
  }
  if (config_text) {
    clue_sb_printf(b, "<details><summary>config.yaml (the resolved configuration)</summary><pre>");
    clue_sb_html(b, config_text);
    clue_sb_printf(b, "</pre></details>\n");
  } else {
    report_note(b, "config.yaml is missing from the run folder.");
  }
  clue_sb_printf(js, "  \"cells_per_s_mean\": ");
  clue_sb_json_number(js, cps);
  clue_sb_printf(js, ",\n");
}
