/* crc32.c — CRC-32 (reflected, polynomial 0xEDB88320), eight bytes per step
 * ("slicing by 8": table[k][b] is the CRC contribution of byte b followed by k
 * zero bytes, so eight lookups advance the CRC over eight bytes at once). */
#include "clue/crc32.h"

typedef struct crc_tables {
  uint32_t t[8][256];
} crc_tables;

static void crc_tables_fill(crc_tables *ct) {
  for (uint32_t i = 0; i < 256; i++) {
    uint32_t c = i;
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
    ct->t[0][i] = c;
  }
  for (int k = 1; k < 8; k++)
    for (int i = 0; i < 256; i++)
      ct->t[k][i] = (ct->t[k - 1][i] >> 8) ^ ct->t[0][ct->t[k - 1][i] & 0xFF];
}

uint32_t clue_crc32(uint32_t crc, const void *data, size_t n) {
  static crc_tables ct;
  static int ready = 0; /* idempotent lazy init: every thread computes the same tables */
  if (!ready) {
    crc_tables_fill(&ct);
    ready = 1;
  }
  const unsigned char *p = data;
  crc = ~crc;
  for (; n >= 8; n -= 8, p += 8) {
    uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                         (uint32_t)p[3] << 24);
    crc = ct.t[7][lo & 0xFF] ^ ct.t[6][(lo >> 8) & 0xFF] ^ ct.t[5][(lo >> 16) & 0xFF] ^
          ct.t[4][lo >> 24] ^ ct.t[3][p[4]] ^ ct.t[2][p[5]] ^ ct.t[1][p[6]] ^ ct.t[0][p[7]];
  }
  for (; n > 0; n--, p++) crc = ct.t[0][(crc ^ *p) & 0xFF] ^ (crc >> 8);
  return ~crc;
}
