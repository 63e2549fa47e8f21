/* report_chart.c — SVG line charts (see report.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "clue/report.h"

#define PAD_L 64
#define PAD_R 12
#define PAD_T 26
#define PAD_B 58

typedef struct axis {
  double lo, hi;
  bool log;
} axis;

static double tr(const axis *a, double v) { return a->log ? log10(v) : v; }

/* Pixel of value v on an axis spanning [p0, p1] pixels. */
static double px(const axis *a, double v, double p0, double p1) {
  double l = tr(a, a->lo), h = tr(a, a->hi);
  return p0 + (tr(a, v) - l) / (h - l) * (p1 - p0);
}

/* The range of the finite values (positive only on a log axis). */
static void range(const report_series *s, int n, bool ys, bool log, axis *a) {
  a->lo = INFINITY, a->hi = -INFINITY, a->log = log;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < s[i].n; j++) {
      double v = ys ? s[i].y[j] : s[i].x[j];
      if (!isfinite(v) || (log && v <= 0)) continue;
      if (v < a->lo) a->lo = v;
      if (v > a->hi) a->hi = v;
    }
  if (!(a->lo <= a->hi)) a->lo = log ? 1 : 0, a->hi = log ? 10 : 1;
  if (a->hi == a->lo) a->lo = log ? a->lo / 2 : a->lo - 1, a->hi = log ? a->hi * 2 : a->hi + 1;
  if (!log && ys) { /* a little air above and below */
    double m = 0.05 * (a->hi - a->lo);
    a->lo -= m, a->hi += m;
  }
}

static bool want_log(const report_series *s, int n, int force) {
  if (force) return force > 0;
  double lo = INFINITY, hi = 0;
  for (int i = 0; i < n; i++)
    for (int j = 0; j < s[i].n; j++) {
      double v = s[i].y[j];
      if (!isfinite(v)) continue;
      if (v <= 0) return false;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  return hi > 0 && hi / lo > 100;
}

/* A "nice" step near span / 5 (1, 2 or 5 times a power of ten). */
static double nice_step(double span) {
  double raw = span / 5, p = pow(10, floor(log10(raw))), f = raw / p;
  return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void ticks_y(clue_strbuf *b, const axis *a, int W, int H) {
  double y0 = H - PAD_B, y1 = PAD_T;
  if (a->log) {
    for (double e = floor(log10(a->lo)); e <= ceil(log10(a->hi)); e++) {
      double v = pow(10, e);
      if (v < a->lo * 0.999 || v > a->hi * 1.001) continue;
      double y = px(a, v, y0, y1);
      clue_sb_printf(b, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' class='grid'/>"
                        "<text x='%d' y='%.1f' class='tick' text-anchor='end'>%g</text>",
                     PAD_L, W - PAD_R, y, y, PAD_L - 4, y + 4, v);
    }
    return;
  }
  double st = nice_step(a->hi - a->lo);
  for (double v = ceil(a->lo / st) * st; v <= a->hi; v += st) {
    double y = px(a, v, y0, y1);
    clue_sb_printf(b, "<line x1='%d' x2='%d' y1='%.1f' y2='%.1f' class='grid'/>"
                      "<text x='%d' y='%.1f' class='tick' text-anchor='end'>%.4g</text>",
                   PAD_L, W - PAD_R, y, y, PAD_L - 4, y + 4, fabs(v) < st * 1e-6 ? 0 : v);
  }
}

static void ticks_x(clue_strbuf *b, const axis *a, int W, int H) {
  double st = nice_step(a->hi - a->lo);
  if (st < 1) st = 1;
  for (double v = ceil(a->lo / st) * st; v <= a->hi; v += st) {
    double x = px(a, v, PAD_L, W - PAD_R);
    clue_sb_printf(b, "<text x='%.1f' y='%d' class='tick' text-anchor='middle'>%g</text>", x,
                   H - PAD_B + 14, v);
  }
}

static void line(clue_strbuf *b, const report_series *s, const axis *ax, const axis *ay, int W,
                 int H) {
  bool open = false;
  for (int j = 0; j < s->n; j++) {
    double y = s->y[j];
    bool ok = isfinite(y) && isfinite(s->x[j]) && (!ay->log || y > 0);
    if (!ok) {
      if (open) clue_sb_printf(b, "'/>");
      open = false;
      continue;
    }
    double X = px(ax, s->x[j], PAD_L, W - PAD_R), Y = px(ay, y, H - PAD_B, PAD_T);
    if (!open)
      clue_sb_printf(b, "<polyline fill='none' stroke='%s' stroke-width='1.6'%s points='",
                     s->colour, s->dashed ? " stroke-dasharray='5 3'" : "");
    clue_sb_printf(b, "%.1f,%.1f ", X, Y);
    open = true;
  }
  if (open) clue_sb_printf(b, "'/>");
}

void report_chart_svg(clue_strbuf *b, const char *title, const char *x_label,
                      const report_series *s, int n, const report_marker *m, int n_markers,
                      int W, int H, int force) {
  axis ax, ay;
  range(s, n, false, false, &ax);
  range(s, n, true, want_log(s, n, force), &ay);
  clue_sb_printf(b, "<svg width='%d' height='%d' "
                    "viewBox='0 0 %d %d' class='chart'><title>", W, H, W, H);
  clue_sb_html(b, title);
  clue_sb_printf(b, "</title><text x='%d' y='16' class='ctitle'>", PAD_L);
  clue_sb_html(b, title);
  clue_sb_printf(b, "%s</text>", ay.log ? " (log scale)" : "");
  ticks_y(b, &ay, W, H);
  ticks_x(b, &ax, W, H);
  clue_sb_printf(b, "<rect x='%d' y='%d' width='%d' height='%d' class='frame'/>", PAD_L, PAD_T,
                 W - PAD_L - PAD_R, H - PAD_T - PAD_B);
  for (int i = 0; i < n_markers; i++) {
    if (!(m[i].x >= ax.lo && m[i].x <= ax.hi)) continue;
    double x = px(&ax, m[i].x, PAD_L, W - PAD_R);
    clue_sb_printf(b, "<line x1='%.1f' x2='%.1f' y1='%d' y2='%d' stroke='%s' "
                      "stroke-dasharray='2 3'/><text x='%.1f' y='%d' class='mark' fill='%s'>",
                   x, x, PAD_T, H - PAD_B, m[i].colour, x + 3, PAD_T + 10 + 11 * (i % 3),
                   m[i].colour);
    clue_sb_html(b, m[i].label);
    clue_sb_printf(b, "</text>");
  }
  for (int i = 0; i < n; i++) line(b, &s[i], &ax, &ay, W, H);
  clue_sb_printf(b, "<text x='%d' y='%d' class='tick' text-anchor='middle'>", (W + PAD_L) / 2,
                 H - PAD_B + 28);
  clue_sb_html(b, x_label);
  clue_sb_printf(b, "</text>");
  for (int i = 0, x = PAD_L + 4; i < n; i++) { /* legend along the bottom */
    clue_sb_printf(b, "<line x1='%d' x2='%d' y1='%d' y2='%d' stroke='%s' stroke-width='2'%s/>"
                      "<text x='%d' y='%d' class='tick'>", x, x + 14, H - 10, H - 10, s[i].colour,
                   s[i].dashed ? " stroke-dasharray='5 3'" : "", x + 17, H - 6);
    clue_sb_html(b, s[i].label);
    clue_sb_printf(b, "</text>");
    x += 24 + 7 * (int)strlen(s[i].label);
  }
  clue_sb_printf(b, "</svg>\n");
}
