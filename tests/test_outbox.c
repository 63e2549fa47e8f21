/* test_outbox.c — records addressed to ranks (clue_outbox, clue_comm_exchange):
 * every record arrives once, from the right rank, in the order sent, records of
 * different sizes and empty ranks included; a question-and-answer round returns
 * each rank's answers in the order asked; clue_comm_agree_first reports the
 * failing rank with the smallest key, unprefixed, on every rank.
 *
 * CLUE_TEST_NP: 1 2 3 4
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/outbox.h"
#include "testutil.h"

/* Record j from rank `from` to rank `to`: (from, to, j, len) then len bytes. */
static int rec_len(int from, int to, int j) { return (from * 7 + to * 3 + j) % 11; }

static void test_deliver(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  clue_outbox box;
  TU_OK(clue_outbox_init(&box, &c, &err), &err);
  for (int round = 0; round < 2; round++) { /* the outbox is reusable */
    for (int to = 0; to < c.size; to++)
      for (int j = 0; j < (c.rank + to + round) % 4 * 50; j++) { /* some pairs send none */
        int32_t h[4] = {c.rank, to, j, rec_len(c.rank, to, j)};
        clue_outbox_put(&box, to, h, sizeof h);
        for (int b = 0; b < h[3]; b++) {
          char v = (char)(c.rank + j + b);
          clue_outbox_put(&box, to, &v, 1);
        }
      }
    char *in = NULL;
    int64_t len = 0, *from = calloc((size_t)c.size, sizeof *from);
    TU_OK(clue_outbox_deliver(&box, &c, &in, &len, from, &err), &err);
    int64_t at = 0;
    for (int r = 0; r < c.size; r++) {
      int64_t end = at + from[r];
      for (int j = 0; j < (r + c.rank + round) % 4 * 50; j++) {
        int32_t h[4];
        clue_inbox_take(in, &at, h, sizeof h);
        assert_int_equal(h[0], r);
        assert_int_equal(h[1], c.rank);
        assert_int_equal(h[2], j);
        assert_int_equal(h[3], rec_len(r, c.rank, j));
        for (int b = 0; b < h[3]; b++) {
          char v;
          clue_inbox_take(in, &at, &v, 1);
          assert_int_equal(v, (char)(r + j + b));
        }
      }
      assert_int_equal(at, end);
    }
    assert_int_equal(at, len);
    free(in);
    free(from);
  }
  clue_outbox_free(&box);
}

/* The answer to "x": x * 10 + the answering rank, written (rank + 1) times. */
static void answer(void *ctx, const char *req, clue_outbox *out, int asker) {
  int me = *(const int *)ctx;
  int64_t x;
  memcpy(&x, req, sizeof x);
  for (int t = 0; t <= me; t++) {
    int64_t v = x * 10 + me;
    clue_outbox_put(out, asker, &v, sizeof v);
  }
  (void)asker;
}

static void test_ask(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  clue_outbox box;
  TU_OK(clue_outbox_init(&box, &c, &err), &err);
  int n = 37 + c.rank;
  for (int64_t x = 0; x < n; x++) clue_outbox_put(&box, (int)((x * 5) % c.size), &x, sizeof x);
  char *a = NULL;
  int64_t *at = calloc((size_t)c.size, sizeof *at);
  TU_OK(clue_outbox_ask(&box, sizeof(int64_t), answer, &c.rank, &c, &a, at, &err), &err);
  for (int64_t x = 0; x < n; x++) { /* walk the questions again, in order */
    int h = (int)((x * 5) % c.size);
    for (int t = 0; t <= h; t++) {
      int64_t v;
      clue_inbox_take(a, &at[h], &v, sizeof v);
      assert_int_equal(v, x * 10 + h);
    }
  }
  free(a);
  free(at);
  clue_outbox_free(&box);
}

static void test_agree_first(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_err err;
  /* every rank fails; the key is smallest on the last rank */
  int rc = clue_fail(&err, CLUE_EDATA, "item %d", 100 - c.rank);
  rc = clue_comm_agree_first(&c, 100 - c.rank, rc, &err);
  assert_int_equal(rc, CLUE_EDATA);
  char want[64];
  snprintf(want, sizeof want, "item %d", 100 - (c.size - 1));
  assert_string_equal(err.msg, want);
  /* only rank 0 fails: its message and code, whatever the others' keys */
  rc = c.rank == 0 ? clue_fail(&err, CLUE_EFORMAT, "only rank 0") : CLUE_OK;
  rc = clue_comm_agree_first(&c, c.rank == 0 ? 5 : 1, rc, &err);
  assert_int_equal(rc, CLUE_EFORMAT);
  assert_string_equal(err.msg, "only rank 0");
  assert_int_equal(clue_comm_agree_first(&c, c.rank, CLUE_OK, &err), CLUE_OK);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_deliver),
      cmocka_unit_test(test_ask),
      cmocka_unit_test(test_agree_first),
  };
  return TU_RUN(tests);
}
