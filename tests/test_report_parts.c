/* test_report_parts.c — the pieces clue report is built from, on cases with
 * known answers: the JSON reader (values, escapes, key order, truncated and
 * malformed text with the byte of the fault, the nesting limit), the text
 * buffer (HTML and JSON escaping, base64 against RFC 4648's vectors), and
 * the PNG writer (Adler-32 of "Wikipedia" = 0x11E60398; the chunks' lengths
 * and CRCs, the IHDR fields, and the stored deflate blocks giving back the
 * filtered rows byte for byte, over several blocks). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clue/crc32.h"
#include "clue/json.h"
#include "clue/png.h"
#include "clue/strbuf.h"
#include "testutil.h"

static clue_json *parse(const char *text, int want) {
  clue_json *v = NULL;
  clue_err err;
  assert_int_equal(clue_json_parse(text, strlen(text), &v, &err), want);
  return v;
}

static void test_json_values(void **state) {
  (void)state;
  clue_json *v = parse(" {\"b\": [1, -2.5e3, true, null], \"a\": \"x\\\"\\n\\u0041\\u00e9\","
                       " \"o\": {\"k\": false}} \n", CLUE_OK);
  assert_int_equal(v->type, CLUE_JSON_OBJECT);
  assert_int_equal(v->n, 3);
  assert_string_equal(v->keys[0], "b"); /* file order kept */
  const clue_json *b = clue_json_get(v, "b");
  assert_int_equal(b->n, 4);
  assert_true(clue_json_num(b->items[1], NULL, 0) == -2500);
  assert_true(b->items[2]->type == CLUE_JSON_BOOL && b->items[2]->boolean);
  assert_int_equal(b->items[3]->type, CLUE_JSON_NULL);
  assert_string_equal(clue_json_str(v, "a"), "x\"\nA?");
  assert_false(clue_json_get(v, "o")->items[0]->boolean);
  assert_null(clue_json_get(v, "missing"));
  assert_true(isnan(clue_json_num(v, "a", NAN))); /* not a number: the fallback */
  clue_json_free(v);
}

static void test_json_faults(void **state) {
  (void)state;
  clue_json *v = NULL;
  clue_err err;
  const char *cut = "{\"epoch\": 3, \"train\": {\"gen\": 1.5"; /* a line cut mid-write */
  assert_int_equal(clue_json_parse(cut, strlen(cut), &v, &err), CLUE_EFORMAT);
  assert_null(v);
  assert_non_null(strstr(err.msg, "at byte 33"));
  const char *bad[] = {"{\"a\" 1}", "[1,]", "{\"a\": tru}", "\"tab\there\"", "1 2", "", "{'a': 1}",
                       "[1] x", "\"\\q\""};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    assert_int_equal(clue_json_parse(bad[i], strlen(bad[i]), &v, &err), CLUE_EFORMAT);
    assert_null(v);
  }
  char deep[200];
  memset(deep, '[', 100);
  memset(deep + 100, ']', 100);
  assert_int_equal(clue_json_parse(deep, 200, &v, &err), CLUE_EFORMAT);
  assert_non_null(strstr(err.msg, "nested too deeply"));
  clue_json_free(parse("[[[[[[[[[[1]]]]]]]]]]", CLUE_OK));
}

static void test_strbuf(void **state) {
  (void)state;
  clue_strbuf b = {0};
  assert_string_equal(clue_sb_text(&b), "");
  clue_sb_html(&b, "<a href='x'>&\"");
  assert_string_equal(clue_sb_text(&b), "&lt;a href=&#39;x&#39;&gt;&amp;&quot;");
  clue_sb_free(&b);
  clue_sb_json_string(&b, "q\"\\\n\x01");
  clue_sb_printf(&b, " ");
  clue_sb_json_number(&b, NAN);
  assert_string_equal(clue_sb_text(&b), "\"q\\\"\\\\\\u000a\\u0001\" null");
  clue_sb_free(&b);
  const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
  const char *out[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
  for (int i = 0; i < 7; i++) {
    clue_sb_base64(&b, (const unsigned char *)in[i], strlen(in[i]));
    assert_string_equal(clue_sb_text(&b), out[i]);
    clue_sb_free(&b);
  }
  for (int i = 0; i < 5000; i++) clue_sb_printf(&b, "%d,", i % 10); /* growth */
  assert_int_equal(b.n, 10000);
  assert_false(b.failed);
  clue_sb_free(&b);
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_png(void **state) {
  (void)state;
  assert_int_equal(clue_adler32(1, (const uint8_t *)"Wikipedia", 9), 0x11E60398u);
  int W = 150, H = 200; /* 90,200 filtered bytes: two stored blocks */
  uint8_t *rgb = malloc((size_t)W * H * 3), *png = NULL;
  for (int i = 0; i < W * H * 3; i++) rgb[i] = (uint8_t)(i * 7 + i / 3);
  size_t size = 0;
  clue_err err;
  assert_int_equal(clue_png_encode_rgb(rgb, W, H, &png, &size, &err), CLUE_OK);
  assert_memory_equal(png, "\x89PNG\r\n\x1a\n", 8);
  size_t at = 8;
  const uint8_t *idat = NULL;
  uint32_t idat_len = 0;
  int chunks = 0;
  while (at + 12 <= size) { /* every chunk: length, type, data, CRC of type + data */
    uint32_t len = be32(png + at);
    assert_true(at + 12 + len <= size);
    assert_int_equal(be32(png + at + 8 + len), clue_crc32(0, png + at + 4, len + 4));
    if (!memcmp(png + at + 4, "IHDR", 4)) {
      assert_int_equal(be32(png + at + 8), (uint32_t)W);
      assert_int_equal(be32(png + at + 12), (uint32_t)H);
      assert_int_equal(png[at + 16], 8); /* depth */
      assert_int_equal(png[at + 17], 2); /* RGB */
    }
    if (!memcmp(png + at + 4, "IDAT", 4)) idat = png + at + 8, idat_len = len;
    at += 12 + len;
    chunks++;
  }
  assert_int_equal(at, size);
  assert_int_equal(chunks, 3);
  assert_non_null(idat);
  assert_int_equal((idat[0] * 256 + idat[1]) % 31, 0); /* zlib header check bits */
  size_t row = (size_t)W * 3 + 1, raw = row * H, got = 0, p = 2;
  uint8_t *back = malloc(raw);
  for (int last = 0; !last;) { /* stored blocks: header, LEN, NLEN, bytes */
    last = idat[p] & 1;
    assert_int_equal(idat[p] >> 1 & 3, 0);
    unsigned len = idat[p + 1] | idat[p + 2] << 8, nlen = idat[p + 3] | idat[p + 4] << 8;
    assert_int_equal(len ^ 0xffff, nlen);
    memcpy(back + got, idat + p + 5, len);
    got += len, p += 5 + len;
  }
  assert_int_equal(got, raw);
  assert_int_equal(p + 4, idat_len);
  assert_int_equal(be32(idat + p), clue_adler32(1, back, raw));
  for (int y = 0; y < H; y++) {
    assert_int_equal(back[y * row], 0); /* filter: none */
    assert_memory_equal(back + y * row + 1, rgb + (size_t)y * W * 3, (size_t)W * 3);
  }
  assert_int_equal(clue_png_encode_rgb(rgb, 0, 5, &png, &size, &err), CLUE_EINVAL);
  free(back), free(rgb), free(png);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {cmocka_unit_test(test_json_values),
                                     cmocka_unit_test(test_json_faults),
                                     cmocka_unit_test(test_strbuf), cmocka_unit_test(test_png)};
  return TU_RUN(tests);
}
