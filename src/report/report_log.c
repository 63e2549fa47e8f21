/* report_log.c — RUN/log.jsonl as columns per epoch (see report.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/json.h"
#include "clue/report.h"

int report_log_col(const report_log *l, const char *name) {
  for (int c = 0; c < l->n_cols; c++)
    if (!strcmp(l->cols[c], name)) return c;
  return -1;
}

/* The column of name, added (NAN in earlier rows) when new; −1 out of memory. */
static int col_add(report_log *l, const char *name) {
  int c = report_log_col(l, name);
  if (c >= 0) return c;
  char **cols = realloc(l->cols, (size_t)(l->n_cols + 1) * sizeof *cols);
  if (!cols) return -1;
  l->cols = cols;
  double *v = malloc((size_t)(l->n_rows + 1) * (size_t)(l->n_cols + 1) * sizeof *v);
  if (!v || !(l->cols[l->n_cols] = strdup(name))) return free(v), -1;
  for (int r = 0; r < l->n_rows; r++) {
    memcpy(v + (size_t)r * (l->n_cols + 1), l->v + (size_t)r * l->n_cols,
           (size_t)l->n_cols * sizeof *v);
    v[(size_t)r * (l->n_cols + 1) + l->n_cols] = NAN;
  }
  free(l->v);
  l->v = v;
  return l->n_cols++;
}

/* Adds a row of NANs; false when out of memory. */
static bool row_add(report_log *l, const char *event) {
  double *v = realloc(l->v, (size_t)(l->n_rows + 1) * (size_t)(l->n_cols + 1) * sizeof *v);
  char **ev = realloc(l->event, (size_t)(l->n_rows + 1) * sizeof *ev);
  if (v) l->v = v;
  if (ev) l->event = ev;
  if (!v || !ev || !(l->event[l->n_rows] = strdup(event ? event : ""))) return false;
  for (int c = 0; c < l->n_cols; c++) l->v[(size_t)l->n_rows * l->n_cols + c] = NAN;
  l->n_rows++;
  return true;
}

/* The numbers of object o (prefix "train." etc.) into the last row. */
static bool put_numbers(report_log *l, const clue_json *o, const char *prefix) {
  for (int i = 0; i < o->n; i++) {
    const clue_json *x = o->items[i];
    char name[256];
    snprintf(name, sizeof name, "%s%s", prefix, o->keys[i]);
    if (x->type == CLUE_JSON_OBJECT && !prefix[0]) {
      char sub[256];
      snprintf(sub, sizeof sub, "%s.", o->keys[i]);
      if (!put_numbers(l, x, sub)) return false;
    } else if (x->type == CLUE_JSON_NUMBER) {
      int c = col_add(l, name);
      if (c < 0) return false;
      l->v[(size_t)(l->n_rows - 1) * l->n_cols + c] = x->number;
    }
  }
  return true;
}

static void bad_line(report_log *l, int line, const char *msg) {
  if (!l->bad_lines++) {
    l->first_bad_line = line;
    snprintf(l->first_bad_msg, sizeof l->first_bad_msg, "%s", msg);
  }
}

int report_log_read(const char *path, report_log *l, clue_err *err) {
  memset(l, 0, sizeof *l);
  FILE *f = fopen(path, "rb");
  if (!f) return clue_fail(err, CLUE_EIO, "cannot open %s", path);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  int no = 0, rc = CLUE_OK;
  while (rc == CLUE_OK && (len = getline(&line, &cap, f)) >= 0) {
    no++;
    clue_json *v = NULL;
    clue_err e;
    if (len == 0 || (len == 1 && line[0] == '\n')) continue;
    if (clue_json_parse(line, (size_t)len, &v, &e) || v->type != CLUE_JSON_OBJECT ||
        !isfinite(clue_json_num(v, "epoch", NAN))) {
      bad_line(l, no, v ? "not an epoch record" : e.msg);
    } else if (!row_add(l, clue_json_str(v, "event")) || !put_numbers(l, v, "")) {
      rc = clue_fail(err, CLUE_ENOMEM, "out of memory reading %s", path);
    }
    clue_json_free(v);
  }
  free(line);
  fclose(f);
  if (rc) report_log_free(l);
  return rc;
}

void report_log_free(report_log *l) {
  for (int c = 0; c < l->n_cols; c++) free(l->cols[c]);
  for (int r = 0; r < l->n_rows; r++) free(l->event[r]);
  free(l->cols), free(l->v), free(l->event);
  memset(l, 0, sizeof *l);
}
