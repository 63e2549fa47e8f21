/* report.h — the pieces of `clue report`: one self-contained HTML page per
 * run (inline CSS, SVG charts and PNG images as data URIs; no script, font or
 * image fetched from anywhere) and a JSON file with every number it shows.
 *
 *   report_log    RUN/log.jsonl as columns of numbers per epoch (every loss
 *                 term, train and validation), events and bad lines
 *   report_chart  SVG line charts (linear or log scale, vertical markers)
 *   report_map    scatter maps rasterised to PNG (colour per category, legend)
 *   report_page   the page's frame and sections (cmd_report.c puts them together) */
#ifndef CLUE_REPORT_H
#define CLUE_REPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "clue/error.h"
#include "clue/json.h"
#include "clue/strbuf.h"

/* ---- log.jsonl ---- */

typedef struct report_log {
  int n_rows;            /* epochs read (lines that parsed) */
  int n_cols;
  char **cols;           /* (n_cols) "lr", "seconds", "train.gen", "val.nll_rna", … */
  double *v;             /* (n_rows × n_cols); NAN where a line lacks a column */
  char **event;          /* (n_rows) the line's "event" ("" none) */
  int bad_lines;         /* lines that did not parse (a run killed mid-write) */
  int first_bad_line;    /* 1-based, 0 none */
  char first_bad_msg[256];
} report_log;

/* Reads path. A missing file fails with CLUE_EIO; lines that do not parse are
 * counted and skipped. */
int report_log_read(const char *path, report_log *out, clue_err *err);

/* The column index of name, or −1. */
int report_log_col(const report_log *l, const char *name);

void report_log_free(report_log *l);

/* ---- charts ---- */

typedef struct report_series {
  const char *label;
  const double *x, *y;   /* n points; non-finite y values are gaps */
  int n;
  const char *colour;    /* CSS colour */
  bool dashed;
} report_series;

typedef struct report_marker {
  double x;
  const char *label;
  const char *colour;
} report_marker;

/* Appends an SVG line chart (width × height px) of the series with a legend,
 * axes with ticks, and vertical markers. The y axis is logarithmic when every
 * finite value is positive and they span more than two decades (or log_y is
 * forced with force = 1; force = −1 keeps it linear). */
void report_chart_svg(clue_strbuf *b, const char *title, const char *x_label,
                      const report_series *s, int n_series, const report_marker *m,
                      int n_markers, int width, int height, int force);

/* ---- maps ---- */

/* The i-th colour of the categorical palette (cycles after 20), "#rrggbb". */
const char *report_palette(int i);

/* Appends an <img> of a PNG (size × size px) scatter of n points xy (n × 2),
 * each drawn in the palette colour of its code (codes < 0: grey), later points
 * over earlier ones in a fixed shuffled order so no category hides another. */
int report_map_img(clue_strbuf *b, const float *xy, const int32_t *code, int64_t n, int size,
                   uint64_t seed, const char *alt, clue_err *err);

/* ---- the page ---- */

/* The start of the page (inline CSS) with its heading; report_page_end closes it. */
void report_page_begin(clue_strbuf *b, const char *title, const char *subtitle);
void report_page_end(clue_strbuf *b);

/* A highlighted line saying what is missing or odd (HTML-escaped). */
void report_note(clue_strbuf *b, const char *text);

/* "Run": status, layout, data shapes, schedule (from run.json, which may be
 * NULL), the config text collapsed (may be NULL), figures from the log. The
 * numbers shown are added to js as JSON members ("run", …, each ending ","). */
void report_section_run(clue_strbuf *b, clue_strbuf *js, const clue_json *run,
                        const char *config_text, const report_log *log);

/* "Training curves": every loss term of the log, train (solid) and validation
 * (dashed), per modality, against epochs; markers for the alignment burn-in,
 * learning-rate reductions, the best epoch, early stop and resumes. */
void report_section_curves(clue_strbuf *b, clue_strbuf *js, const clue_json *run,
                           const report_log *log);

/* "Evaluation": the figures of a `clue eval --json` file with their meaning. */
void report_section_eval(clue_strbuf *b, clue_strbuf *js, const clue_json *eval,
                         const char *path);

#endif
