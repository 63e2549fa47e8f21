/* report_map.c — scatter maps rasterised to PNG (see report.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/png.h"
#include "clue/report.h"
#include "clue/rng.h"

/* 20 colours a reader can tell apart (hues of a qualitative scheme, chosen
 * for clue; then lighter and darker variants). */
static const char *const PALETTE[] = {
    "#1f6fb4", "#f07f0c", "#2c9e3a", "#d22a2c", "#8e62bc", "#8a5548", "#e079c0",
    "#7d7d7d", "#b8bb21", "#16bccd", "#9fc4e6", "#f9b978", "#97d98b", "#f79a98",
    "#c3aed8", "#c59d94", "#f5b4d1", "#c4c4c4", "#dada8c", "#9ddae4"};
#define N_PALETTE ((int)(sizeof PALETTE / sizeof PALETTE[0]))

const char *report_palette(int i) { return PALETTE[(i % N_PALETTE + N_PALETTE) % N_PALETTE]; }

static void rgb_of(const char *hex, uint8_t *c) {
  unsigned v = (unsigned)strtoul(hex + 1, NULL, 16);
  c[0] = (uint8_t)(v >> 16), c[1] = (uint8_t)(v >> 8), c[2] = (uint8_t)v;
}

/* Paints a filled disc of radius r at (x, y). */
static void disc(uint8_t *img, int S, double x, double y, double r, const uint8_t *c) {
  int x0 = (int)floor(x - r), x1 = (int)ceil(x + r), y0 = (int)floor(y - r), y1 = (int)ceil(y + r);
  for (int j = y0 < 0 ? 0 : y0; j <= y1 && j < S; j++)
    for (int i = x0 < 0 ? 0 : x0; i <= x1 && i < S; i++) {
      double dx = i + 0.5 - x, dy = j + 0.5 - y;
      if (dx * dx + dy * dy <= r * r) memcpy(img + ((size_t)j * S + i) * 3, c, 3);
    }
}

int report_map_img(clue_strbuf *b, const float *xy, const int32_t *code, int64_t n, int S,
                   uint64_t seed, const char *alt, clue_err *err) {
  float lo[2] = {INFINITY, INFINITY}, hi[2] = {-INFINITY, -INFINITY};
  for (int64_t i = 0; i < n; i++)
    for (int a = 0; a < 2; a++) {
      if (xy[2 * i + a] < lo[a]) lo[a] = xy[2 * i + a];
      if (xy[2 * i + a] > hi[a]) hi[a] = xy[2 * i + a];
    }
  double span = fmax(hi[0] - lo[0], hi[1] - lo[1]);
  if (!(span > 0)) span = 1;
  double scale = (S - 16) / span, r = n > 50000 ? 1.0 : n > 5000 ? 1.6 : 2.6;
  uint8_t *img = malloc((size_t)S * S * 3);
  int64_t *order = malloc((size_t)(n + 1) * sizeof *order);
  if (!img || !order) {
    free(img), free(order);
    return clue_fail(err, CLUE_ENOMEM, "out of memory for a %d x %d map", S, S);
  }
  memset(img, 255, (size_t)S * S * 3);
  for (int64_t i = 0; i < n; i++) order[i] = i;
  clue_rng g = clue_rng_stream(seed, CLUE_RNG_REPORT, 1u << 20, 0); /* drawing order */
  for (int64_t i = n - 1; i > 0; i--) {
    int64_t j = (int64_t)clue_rng_below(&g, (uint64_t)i + 1);
    int64_t t = order[i];
    order[i] = order[j], order[j] = t;
  }
  double ox = 8 + ((S - 16) - (hi[0] - lo[0]) * scale) / 2;
  double oy = 8 + ((S - 16) - (hi[1] - lo[1]) * scale) / 2;
  for (int64_t q = 0; q < n; q++) {
    int64_t i = order[q];
    uint8_t c[3];
    rgb_of(code[i] >= 0 ? report_palette(code[i]) : "#bbbbbb", c);
    disc(img, S, ox + (xy[2 * i] - lo[0]) * scale, S - (oy + (xy[2 * i + 1] - lo[1]) * scale), r,
         c);
  }
  free(order);
  uint8_t *png = NULL;
  size_t size = 0;
  int rc = clue_png_encode_rgb(img, S, S, &png, &size, err);
  free(img);
  if (rc) return rc;
  clue_sb_printf(b, "<img class='map' width='%d' height='%d' alt='", S, S);
  clue_sb_html(b, alt);
  clue_sb_printf(b, "' src='data:image/png;base64,");
  clue_sb_base64(b, png, size);
  clue_sb_printf(b, "'/>");
  free(png);
  return CLUE_OK;
}
