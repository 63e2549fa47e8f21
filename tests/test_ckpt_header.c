/* test_ckpt_header.c — the whole-file check in front of a checkpoint's HDF5 data:
 * an intact file passes; any changed byte, a truncation, an extension, an empty
 * file or a damaged header is refused before HDF5 would parse anything. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/checkpoint.h"
#include "clue/crc32.h"
#include "testutil.h"

enum { DATA = 3000 };

/* Writes header + data (data_bytes of it) to name; returns the path. */
static const char *write_ckpt(const char *name, const unsigned char *data, size_t n,
                              size_t header_claims) {
  char head[CLUE_CKPT_HEADER_BYTES];
  assert_int_equal(clue_ckpt_header_format(head, header_claims, clue_crc32(0, data, n)), 0);
  const char *path = tu_path(name);
  FILE *f = fopen(path, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(head, 1, sizeof head, f), sizeof head);
  assert_int_equal(fwrite(data, 1, n, f), n);
  fclose(f);
  return path;
}

static void fill(unsigned char *data) {
  for (int i = 0; i < DATA; i++) data[i] = (unsigned char)(i * 37 + 11);
}

static void test_intact_passes(void **state) {
  (void)state;
  unsigned char data[DATA];
  fill(data);
  const char *path = write_ckpt("good.h5", data, DATA, DATA);
  bool has = false;
  clue_err err;
  TU_OK(clue_ckpt_verify_file(path, &has, &err), &err);
  assert_true(has);
  /* the header is readable text */
  FILE *f = fopen(path, "rb");
  char line[64];
  assert_non_null(fgets(line, sizeof line, f));
  assert_string_equal(line, "clue checkpoint\n");
  fclose(f);
}

/* Every single changed byte, in the header or the data, is refused. */
static void test_any_changed_byte_refused(void **state) {
  (void)state;
  unsigned char data[DATA];
  fill(data);
  const char *path = write_ckpt("flip.h5", data, DATA, DATA);
  FILE *f = fopen(path, "rb");
  size_t size = CLUE_CKPT_HEADER_BYTES + DATA;
  unsigned char *orig = malloc(size);
  assert_int_equal(fread(orig, 1, size, f), size);
  fclose(f);
  int refused = 0, tried = 0;
  for (size_t off = 0; off < size; off += 7) {
    unsigned char *bad = malloc(size);
    memcpy(bad, orig, size);
    bad[off] ^= (unsigned char)(1u << (off % 8));
    const char *p = tu_path("flip_one.h5");
    FILE *g = fopen(p, "wb");
    fwrite(bad, 1, size, g);
    fclose(g);
    free(bad);
    bool has = true;
    clue_err err;
    int rc = clue_ckpt_verify_file(p, &has, &err);
    tried++;
    if (rc == CLUE_EFORMAT && strstr(err.msg, "flip_one.h5")) refused++;
  }
  free(orig);
  assert_int_equal(refused, tried);
}

static void expect_refused(const char *path, const char *text) {
  bool has = true;
  clue_err err;
  assert_int_equal(clue_ckpt_verify_file(path, &has, &err), CLUE_EFORMAT);
  if (!strstr(err.msg, text)) fail_msg("message '%s' lacks '%s'", err.msg, text);
  assert_false(has);
}

static void test_size_and_header_refused(void **state) {
  (void)state;
  unsigned char data[DATA];
  fill(data);
  expect_refused(write_ckpt("short.h5", data, DATA - 100, DATA),
                 "truncated or extended: 2900 bytes after the header, written with 3000");
  expect_refused(write_ckpt("long.h5", data, DATA, DATA - 1), "truncated or extended");
  const char *empty = tu_path("empty.h5");
  fclose(fopen(empty, "wb"));
  expect_refused(empty, "not a clue checkpoint (empty file)");
  /* a header cut short, and one with a nonzero byte in its padding */
  const char *cut = tu_path("cut.h5");
  FILE *f = fopen(cut, "wb");
  fputs("clue checkpoint\ndata_bytes 3000\n", f);
  fclose(f);
  expect_refused(cut, "its header is missing or damaged");
  char head[CLUE_CKPT_HEADER_BYTES];
  clue_ckpt_header_format(head, DATA, clue_crc32(0, data, DATA));
  head[CLUE_CKPT_HEADER_BYTES - 1] = 'x';
  const char *pad = tu_path("pad.h5");
  f = fopen(pad, "wb");
  fwrite(head, 1, sizeof head, f);
  fwrite(data, 1, DATA, f);
  fclose(f);
  expect_refused(pad, "its header is missing or damaged");
  /* the same CRC in upper case is not the header this clue wrote */
  clue_ckpt_header_format(head, DATA, 0xabcdef12u);
  for (char *p = strstr(head, "abcdef12"); p && *p != '\n'; p++)
    if (*p >= 'a' && *p <= 'f') *p = (char)(*p - 'a' + 'A');
  const char *upper = tu_path("upper.h5");
  f = fopen(upper, "wb");
  fwrite(head, 1, sizeof head, f);
  fwrite(data, 1, DATA, f);
  fclose(f);
  expect_refused(upper, "its header is missing or damaged");
}

/* A file that starts with the HDF5 signature predates the header: it passes
 * here (HDF5 and the per-dataset checksums judge it), marked as headerless. */
static void test_headerless_hdf5_passes(void **state) {
  (void)state;
  const char *path = tu_path("old.h5");
  FILE *f = fopen(path, "wb");
  fwrite("\x89HDF\r\n\x1a\n rest of an old checkpoint", 1, 32, f);
  fclose(f);
  bool has = true;
  clue_err err;
  TU_OK(clue_ckpt_verify_file(path, &has, &err), &err);
  assert_false(has);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_intact_passes),
      cmocka_unit_test(test_any_changed_byte_refused),
      cmocka_unit_test(test_size_and_header_refused),
      cmocka_unit_test(test_headerless_hdf5_passes),
  };
  return TU_RUN(tests);
}
