/* ckpt_header.c — the 512-byte text header in front of a checkpoint's HDF5 data,
 * carrying the size and CRC-32 of everything after it.
 *
 * HDF5 trusts the metadata it parses: a few damaged bytes in an object header can
 * crash the library before any of our per-dataset checksums is read. Loading
 * therefore checks the whole file against this header first and hands HDF5 only a
 * file whose bytes are exactly those that were written. HDF5 (and h5py) see the
 * header as a 512-byte user block and open the file as usual. */
#include "clue/checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/crc32.h"

static const char ckpt_magic[] = "clue checkpoint\n";

int clue_ckpt_header_format(char head[CLUE_CKPT_HEADER_BYTES], uint64_t data_bytes,
                            uint32_t data_crc) {
  memset(head, 0, CLUE_CKPT_HEADER_BYTES);
  int n = snprintf(head, CLUE_CKPT_HEADER_BYTES, "%sdata_bytes %llu\ndata_crc32 %08x\n",
                   ckpt_magic, (unsigned long long)data_bytes, (unsigned)data_crc);
  return n > 0 && n < CLUE_CKPT_HEADER_BYTES ? 0 : -1;
}

/* Parses a header: 0 and the two fields, or -1 when it is not byte for byte the
 * header this clue writes for them (a field missing or altered, a different case
 * of a hex digit, a byte of the padding that is not zero). */
static int header_parse(const char *head, uint64_t *data_bytes, uint32_t *data_crc) {
  size_t m = sizeof ckpt_magic - 1;
  if (memcmp(head, ckpt_magic, m) != 0 || !memchr(head, '\0', CLUE_CKPT_HEADER_BYTES))
    return -1;
  unsigned long long bytes = 0;
  unsigned crc = 0;
  if (sscanf(head + m, "data_bytes %llu\ndata_crc32 %8x\n", &bytes, &crc) != 2) return -1;
  char canon[CLUE_CKPT_HEADER_BYTES];
  if (clue_ckpt_header_format(canon, bytes, crc) != 0) return -1;
  if (memcmp(canon, head, CLUE_CKPT_HEADER_BYTES) != 0) return -1;
  *data_bytes = bytes;
  *data_crc = crc;
  return 0;
}

/* CRC-32 of the rest of an open file, read in blocks; -1 on a read error. */
static int crc_of_rest(FILE *fp, uint64_t *n_read, uint32_t *crc) {
  enum { BLOCK = 1 << 20 };
  unsigned char *buf = malloc(BLOCK);
  if (!buf) return -1;
  uint32_t c = 0;
  uint64_t total = 0;
  size_t got;
  while ((got = fread(buf, 1, BLOCK, fp)) > 0) {
    c = clue_crc32(c, buf, got);
    total += got;
  }
  int bad = ferror(fp);
  free(buf);
  *n_read = total;
  *crc = c;
  return bad ? -1 : 0;
}

int clue_ckpt_verify_file(const char *path, bool *has_header, clue_err *err) {
  *has_header = false;
  FILE *fp = fopen(path, "rb");
  if (!fp) return clue_fail(err, CLUE_EIO, "cannot read checkpoint %s: %s", path, strerror(errno));
  char head[CLUE_CKPT_HEADER_BYTES];
  size_t got = fread(head, 1, sizeof head, fp);
  static const char hdf5_sig[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  int rc = CLUE_OK;
  uint64_t want_bytes = 0, have_bytes = 0;
  uint32_t want_crc = 0, have_crc = 0;
  if (got >= sizeof hdf5_sig && memcmp(head, hdf5_sig, sizeof hdf5_sig) == 0) {
    rc = CLUE_OK; /* written before the header existed: only per-dataset checks */
  } else if (got < sizeof head || header_parse(head, &want_bytes, &want_crc) != 0) {
    rc = clue_fail(err, CLUE_EFORMAT,
                   "%s: not a clue checkpoint (%s)", path,
                   got == 0 ? "empty file" : "its header is missing or damaged");
  } else if (crc_of_rest(fp, &have_bytes, &have_crc) != 0) {
    rc = clue_fail(err, CLUE_EIO, "cannot read checkpoint %s: read error", path);
  } else if (have_bytes != want_bytes) {
    rc = clue_fail(err, CLUE_EFORMAT,
                   "%s: checkpoint is truncated or extended: %llu bytes after the header, "
                   "written with %llu",
                   path, (unsigned long long)have_bytes, (unsigned long long)want_bytes);
  } else if (have_crc != want_crc) {
    rc = clue_fail(err, CLUE_EFORMAT,
                   "%s: checkpoint is corrupted (CRC-32 of the file %08x, written %08x)", path,
                   (unsigned)have_crc, (unsigned)want_crc);
  } else {
    *has_header = true;
  }
  fclose(fp);
  return rc;
}
