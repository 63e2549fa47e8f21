/* png.c — uncompressed RGB PNG encoder (see png.h). */
#include "clue/png.h"

#include <stdlib.h>
#include <string.h>

#include "clue/crc32.h"

#define STORED_MAX 65535 /* bytes of one stored deflate block */

uint32_t clue_adler32(uint32_t adler, const uint8_t *d, size_t n) {
  uint32_t a = adler & 0xffff, b = adler >> 16;
  while (n > 0) {
    size_t m = n < 5552 ? n : 5552; /* no overflow before the modulo */
    for (size_t i = 0; i < m; i++) a += d[i], b += a;
    a %= 65521, b %= 65521;
    d += m, n -= m;
  }
  return b << 16 | a;
}

static uint8_t *put32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
  return p + 4;
}

/* A chunk of `type` with len bytes of data at p (already in place after the
 * 8 bytes of length and type); returns the end. */
static uint8_t *close_chunk(uint8_t *start, const char *type, size_t len) {
  put32(start, (uint32_t)len);
  memcpy(start + 4, type, 4);
  uint32_t crc = clue_crc32(0, start + 4, len + 4);
  return put32(start + 8 + len, crc);
}

int clue_png_encode_rgb(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *size,
                        clue_err *err) {
  if (width <= 0 || height <= 0 || width > 1 << 14 || height > 1 << 14)
    return clue_fail(err, CLUE_EINVAL, "PNG of %d x %d pixels: sizes 1..16384 only", width,
                     height);
  size_t row = (size_t)width * 3 + 1, raw = row * (size_t)height;
  size_t blocks = (raw + STORED_MAX - 1) / STORED_MAX;
  size_t zlen = 2 + raw + 5 * blocks + 4;
  size_t total = 8 + (12 + 13) + (12 + zlen) + 12;
  uint8_t *png = malloc(total), *filtered = malloc(raw);
  if (!png || !filtered) {
    free(png), free(filtered);
    return clue_fail(err, CLUE_ENOMEM, "out of memory for a %d x %d PNG", width, height);
  }
  for (int y = 0; y < height; y++) {
    filtered[(size_t)y * row] = 0;
    memcpy(filtered + (size_t)y * row + 1, rgb + (size_t)y * width * 3, (size_t)width * 3);
  }
  uint8_t *p = png;
  memcpy(p, "\x89PNG\r\n\x1a\n", 8);
  p += 8;
  uint8_t *ihdr = p, *d = p + 8;
  d = put32(d, (uint32_t)width);
  d = put32(d, (uint32_t)height);
  d[0] = 8, d[1] = 2, d[2] = 0, d[3] = 0, d[4] = 0; /* depth 8, RGB, deflate, filter 0, no interlace */
  p = close_chunk(ihdr, "IHDR", 13);
  uint8_t *idat = p;
  d = p + 8;
  *d++ = 0x78, *d++ = 0x01; /* zlib header: deflate, 32K window, no dictionary */
  for (size_t at = 0; at < raw; at += STORED_MAX) {
    size_t n = raw - at < STORED_MAX ? raw - at : STORED_MAX;
    *d++ = at + n == raw ? 1 : 0; /* BFINAL, BTYPE 00 */
    *d++ = (uint8_t)n, *d++ = (uint8_t)(n >> 8);
    *d++ = (uint8_t)~n, *d++ = (uint8_t)(~n >> 8);
    memcpy(d, filtered + at, n);
    d += n;
  }
  d = put32(d, clue_adler32(1, filtered, raw));
  p = close_chunk(idat, "IDAT", zlen);
  p = close_chunk(p, "IEND", 0);
  free(filtered);
  *out = png;
  *size = (size_t)(p - png);
  return CLUE_OK;
}
