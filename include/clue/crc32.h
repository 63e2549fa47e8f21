/* crc32.h — CRC-32 (IEEE 802.3 polynomial, the same value as zlib's crc32) of a
 * byte buffer, for the checksums of checkpoint files and of their datasets. */
#ifndef CLUE_CRC32_H
#define CLUE_CRC32_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0. */
uint32_t clue_crc32(uint32_t crc, const void *data, size_t n);

#endif
