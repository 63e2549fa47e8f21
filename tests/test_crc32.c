/* test_crc32.c — clue_crc32 against the standard check value and against a
 * bit-at-a-time CRC written from the definition, for every length and alignment
 * that exercises the eight-byte steps and the tail, and in pieces. */
#include <string.h>

#include "clue/crc32.h"
#include "testutil.h"

/* The definition: reflected CRC-32, polynomial 0xEDB88320, one bit per step. */
static uint32_t crc_bitwise(const unsigned char *p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; i++) {
    c ^= p[i];
    for (int k = 0; k < 8; k++) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
  }
  return ~c;
}

static void test_check_value(void **state) {
  (void)state;
  assert_int_equal(clue_crc32(0, "123456789", 9), 0xCBF43926u);
  assert_int_equal(clue_crc32(0, "", 0), 0);
}

static void test_matches_definition(void **state) {
  (void)state;
  unsigned char buf[300];
  for (int i = 0; i < 300; i++) buf[i] = (unsigned char)(i * 151 + 7);
  for (size_t off = 0; off < 8; off++)
    for (size_t n = 0; n + off <= 280; n++)
      assert_int_equal(clue_crc32(0, buf + off, n), crc_bitwise(buf + off, n));
}

static void test_in_pieces(void **state) {
  (void)state;
  unsigned char buf[1000];
  for (int i = 0; i < 1000; i++) buf[i] = (unsigned char)(i * i + 3);
  uint32_t whole = clue_crc32(0, buf, sizeof buf);
  for (size_t cut = 0; cut <= sizeof buf; cut += 13) {
    uint32_t c = clue_crc32(0, buf, cut);
    assert_int_equal(clue_crc32(c, buf + cut, sizeof buf - cut), whole);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_check_value),
      cmocka_unit_test(test_matches_definition),
      cmocka_unit_test(test_in_pieces),
  };
  return TU_RUN(tests);
}
