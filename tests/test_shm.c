/* test_shm.c — the node window's slots and its barrier in two halves (shm.h):
 * values written before an arrival are seen by every rank after waiting for it,
 * rounds after rounds that reuse the slots; a rank that arrives late holds the
 * others' wait until it arrives, but not their arrival; waiting for an arrival
 * already made returns at once; clue_shm_sync works between them.
 * CLUE_TEST_NP: 1 2 3 4
 * CLUE_TEST_TIMEOUT: 60 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clue/shm.h"
#include "testutil.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static clue_shm *window(const clue_comm *c, int64_t bytes) {
  clue_err err;
  clue_shm *s = NULL;
  TU_OK(clue_shm_new(c, bytes, &s, &err), &err);
  /* one machine: the window is made whenever there are several ranks */
  assert_true((s != NULL) == (c->size > 1));
  return s;
}

/* Every round each rank fills its slot with values of (round, rank), arrives,
 * waits, checks every slot, then arrives "done reading" and waits for it before
 * the next round writes: no rank may see a half-written or stale slot. */
static void test_rounds(void **state) {
  (void)state;
  clue_comm c = tu_world();
  const int64_t n = 50000;
  clue_shm *s = window(&c, n * (int64_t)sizeof(int32_t));
  if (!s) return;
  uint64_t done = 0;
  for (int round = 0; round < 40; round++) {
    clue_shm_wait(s, done);
    int32_t *mine = clue_shm_slot(s, c.rank);
    for (int64_t i = 0; i < n; i++) mine[i] = round * 1000 + c.rank * 10 + (int32_t)(i % 7);
    uint64_t written = clue_shm_arrive(s);
    assert_int_equal(written, 2 * (uint64_t)round + 1);
    clue_shm_wait(s, written);
    int64_t bad = 0;
    for (int q = 0; q < c.size; q++) {
      const int32_t *v = clue_shm_slot(s, q);
      for (int64_t i = 0; i < n; i++) bad += v[i] != round * 1000 + q * 10 + (int32_t)(i % 7);
    }
    assert_int_equal(bad, 0);
    done = clue_shm_arrive(s);
  }
  clue_shm_wait(s, done);
  clue_shm_free(s);
}

/* The last rank sleeps before arriving: the others arrive at once and go on, but
 * their wait lasts until it arrives; a second wait for the same arrival does
 * not wait; clue_shm_sync after the arrivals is a whole barrier still. */
static void test_late_rank(void **state) {
  (void)state;
  clue_comm c = tu_world();
  clue_shm *s = window(&c, 64);
  if (!s) return;
  int late = c.size - 1;
  const double nap = 0.2;
  double t0 = now();
  if (c.rank == late) {
    struct timespec ts = {0, (long)(nap * 1e9)};
    nanosleep(&ts, NULL);
  }
  uint64_t a = clue_shm_arrive(s);
  double arrived = now() - t0;
  clue_shm_wait(s, a);
  double waited = now() - t0;
  if (c.rank != late) {
    assert_true(arrived < nap / 2); /* arriving does not wait */
    assert_true(waited >= nap * 0.9);
  }
  double t1 = now();
  clue_shm_wait(s, a); /* made already: returns at once */
  clue_shm_wait(s, 0);
  assert_true(now() - t1 < nap / 2);
  if (c.rank == 0) {
    struct timespec ts = {0, (long)(nap * 1e9)};
    nanosleep(&ts, NULL);
    *(int *)clue_shm_slot(s, 0) = 42;
  }
  double t2 = now();
  clue_shm_sync(s);
  if (c.rank != 0) assert_true(now() - t2 >= nap * 0.9);
  assert_int_equal(*(int *)clue_shm_slot(s, 0), 42);
  clue_shm_sync(s);
  clue_shm_free(s);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_rounds),
      cmocka_unit_test(test_late_rank),
  };
  return TU_RUN(tests);
}
