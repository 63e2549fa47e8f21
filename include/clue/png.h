/* png.h — PNG images written by clue itself (no zlib): 8-bit RGB, filter 0,
 * the pixel data in stored (uncompressed) deflate blocks. Every PNG reader
 * opens them; they are larger than compressed ones (3 bytes a pixel). */
#ifndef CLUE_PNG_H
#define CLUE_PNG_H

#include <stddef.h>
#include <stdint.h>

#include "clue/error.h"

/* The PNG file of a width × height RGB image (rgb: height rows of width × 3
 * bytes, top row first) in a new buffer *out of *size bytes (free with free()). */
int clue_png_encode_rgb(const uint8_t *rgb, int width, int height, uint8_t **out, size_t *size,
                        clue_err *err);

/* The Adler-32 checksum of zlib streams (start with 1). */
uint32_t clue_adler32(uint32_t adler, const uint8_t *data, size_t n);

#endif
