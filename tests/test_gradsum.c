/* test_gradsum.c — sums of gradient buffers over the ranks (gradsum.h), through
 * the node's shared memory and through MPI_Allreduce: every rank gets the exact
 * sum (small integers, exact in float), for lengths that are not multiples of the
 * slice blocks, 1 and 0 values, and calls in a row that reuse the window while the
 * values change; the two paths give the same bits on data with rounding; and
 * arenas whose gradients live in the window are summed in place; the sharded
 * update (each rank sums and updates one slice of the one copy of the weights
 * that every rank reads) gives bitwise the weights of the whole update on every
 * rank, and gathering
 * the optimiser state gives rank 0 the whole state.
 * CLUE_TEST_NP: 1 2 3 4 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/gradsum.h"
#include "clue/optim.h"
#include "clue/rng.h"
#include "testutil.h"

static void fill(real *b, int64_t n, int rank, int call) {
  for (int64_t i = 0; i < n; i++) b[i] = (real)((i * 7 + rank * 13 + call) % 101) - 50;
}

static void check_sums(bool shared) {
  clue_err err;
  clue_comm c = tu_world();
  clue_gradsum *g = NULL;
  const int64_t n_max = 100003;
  TU_OK(clue_gradsum_new(&c, n_max, shared, &g, &err), &err);
  /* on this one machine the shared path is taken whenever asked (size > 1) */
  assert_true(clue_gradsum_shared(g) == (shared && c.size > 1));
  static const int64_t lens[] = {100003, 1, 0, 17, 4096, 33333, 100003};
  real *b = malloc(sizeof(real) * (size_t)n_max);
  for (size_t q = 0; q < sizeof lens / sizeof lens[0]; q++) {
    int64_t n = lens[q];
    int call = (int)q;
    fill(b, n, c.rank, call);
    clue_gradsum_sum(g, b, n);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
      double want = 0;
      for (int r = 0; r < c.size; r++) want += ((i * 7 + r * 13 + call) % 101) - 50;
      bad += b[i] != (real)want;
    }
    assert_int_equal(bad, 0);
  }
  free(b);
  clue_gradsum_free(g);
}

static void test_shared(void **state) {
  (void)state;
  check_sums(true);
}

static void test_mpi(void **state) {
  (void)state;
  check_sums(false);
}

/* Random values (sums round): both paths give the same bits on every rank. */
static void test_paths_agree(void **state) {
  (void)state;
  clue_err err;
  clue_comm c = tu_world();
  int64_t n = 54321;
  clue_gradsum *gs = NULL, *gm = NULL;
  TU_OK(clue_gradsum_new(&c, n, true, &gs, &err), &err);
  TU_OK(clue_gradsum_new(&c, n, false, &gm, &err), &err);
  real *a = malloc(sizeof(real) * (size_t)n), *b = malloc(sizeof(real) * (size_t)n);
  clue_rng r = clue_rng_stream(3, CLUE_RNG_TEST, 7, (uint64_t)c.rank);
  for (int64_t i = 0; i < n; i++) a[i] = b[i] = (real)(clue_rng_normal(&r) * 1e3);
  clue_gradsum_sum(gs, a, n);
  clue_gradsum_sum(gm, b, n);
  /* For two ranks both add rank 0 + rank 1; beyond, MPI's order may differ:
   * then within a float rounding of the sum of magnitudes. */
  int64_t bad = 0;
  for (int64_t i = 0; i < n; i++)
    bad += c.size <= 2 ? memcmp(&a[i], &b[i], sizeof(real)) != 0
                       : fabs((double)a[i] - (double)b[i]) > 1e-3 * (1 + fabs((double)b[i]));
  assert_int_equal(bad, 0);
  /* every rank holds the same bits */
  real first = a[0], last = a[n - 1];
  clue_comm_bcast(&c, &first, sizeof first, 0);
  clue_comm_bcast(&c, &last, sizeof last, 0);
  assert_true(first == a[0] && last == a[n - 1]);
  free(a);
  free(b);
  clue_gradsum_free(gs);
  clue_gradsum_free(gm);
}

/* Two arenas attached to the window: their gradients move into this rank's slot
 * (values kept), repeated in-place sums give the exact sums with the same bits as
 * the copying path, a sum of another buffer still works, and freeing the sums
 * gives the arenas buffers of their own back with the summed values. Their
 * weights become one copy that every rank reads, with rank 0's values (here
 * each rank had its own before), and every rank keeps those when freed. */
static void test_attached_arenas(void **state) {
  (void)state;
  clue_err err;
  clue_comm c = tu_world();
  clue_arena a = {0}, b = {0};
  TU_OK(clue_arena_add(&a, "big", 300, 77, &err) < 0, &err);
  TU_OK(clue_arena_add(&b, "small", 5, 1, &err) < 0, &err);
  TU_OK(clue_arena_alloc(&a, &err), &err);
  TU_OK(clue_arena_alloc(&b, &err), &err);
  clue_gradsum *g = NULL, *copy = NULL;
  TU_OK(clue_gradsum_new(&c, a.n + b.n, true, &g, &err), &err);
  TU_OK(clue_gradsum_new(&c, a.n, true, &copy, &err), &err);
  fill(a.g, a.n, c.rank, 0);
  fill(a.w, a.n, c.rank, 7);
  clue_arena *both[2] = {&a, &b};
  TU_OK(clue_gradsum_attach(g, both, 2, &err), &err);
  assert_true(a.g_borrowed == (c.size > 1) && b.g_borrowed == (c.size > 1));
  assert_true(a.w_borrowed == (c.size > 1) && b.w_borrowed == (c.size > 1));
  int64_t moved = 0; /* the weights are rank 0's */
  for (int64_t i = 0; i < a.n; i++) moved += a.w[i] != (real)(((i * 7 + 7) % 101) - 50);
  assert_int_equal(moved, 0);
  clue_comm_barrier(&c);
  if (c.rank == c.size - 1) a.w[3] = 1234.5f; /* one copy: every rank sees this */
  clue_comm_barrier(&c);
  assert_true(a.w[3] == (real)1234.5f);
  real *ref = malloc(sizeof(real) * (size_t)a.n);
  int64_t bad = 0;
  for (int64_t i = 0; i < a.n; i++) bad += a.g[i] != (real)(((i * 7 + c.rank * 13) % 101) - 50);
  assert_int_equal(bad, 0); /* attaching kept the values */
  for (int call = 1; call <= 3; call++) {
    clue_rng r = clue_rng_stream(5, CLUE_RNG_TEST, (uint64_t)call, (uint64_t)c.rank);
    for (int64_t i = 0; i < a.n; i++) ref[i] = a.g[i] = (real)(clue_rng_normal(&r) * 1e2);
    fill(b.g, b.n, c.rank, call);
    clue_gradsum_sum(g, a.g, a.n);
    clue_gradsum_sum(g, b.g, b.n);
    clue_gradsum_sum(copy, ref, a.n);
    bad = 0;
    for (int64_t i = 0; i < a.n; i++) bad += memcmp(&a.g[i], &ref[i], sizeof(real)) != 0;
    for (int64_t i = 0; i < b.n; i++) {
      double want = 0;
      for (int q = 0; q < c.size; q++) want += ((i * 7 + q * 13 + call) % 101) - 50;
      bad += b.g[i] != (real)want;
    }
    assert_int_equal(bad, 0);
  }
  /* another buffer: not in the slot, still summed exactly */
  real other[9];
  fill(other, 9, c.rank, 4);
  clue_gradsum_sum(g, other, 9);
  for (int64_t i = 0; i < 9; i++) {
    double want = 0;
    for (int q = 0; q < c.size; q++) want += ((i * 7 + q * 13 + 4) % 101) - 50;
    assert_true(other[i] == (real)want);
  }
  real kept = a.g[a.n - 1], kept_w = a.w[a.n - 1];
  clue_gradsum_free(g);
  assert_false(a.g_borrowed);
  assert_false(b.g_borrowed);
  assert_false(a.w_borrowed);
  assert_true(a.g[a.n - 1] == kept);
  assert_true(a.w[a.n - 1] == kept_w);
  clue_gradsum_free(copy);
  free(ref);
  clue_arena_release(&a);
  clue_arena_release(&b);
}

enum { WHOLE, BY_ROWS, BY_COLS }; /* how a tensor is split */

/* Whether value i of arena a lies in a row or column of a split tensor (how[t])
 * that rank r does not own; *in_split: whether it lies in a split tensor. */
static bool foreign_part(const clue_gradsum *g, const clue_arena *a, const int *how, int64_t i,
                         int r, bool *in_split) {
  for (int t = 0; t < a->n_tensors; t++) {
    const clue_tensor *x = &a->t[t];
    if (i < x->offset || i >= x->offset + x->rows * x->cols) continue;
    *in_split = how[t] != WHOLE;
    int64_t at = how[t] == BY_ROWS ? (i - x->offset) / x->cols : (i - x->offset) % x->cols;
    int64_t n = how[t] == BY_ROWS ? x->rows : x->cols;
    return how[t] != WHOLE &&
           (at < clue_gradsum_slice(g, n, r) || at >= clue_gradsum_slice(g, n, r + 1));
  }
  *in_split = false;
  return false;
}

/* Sharded RMSprop / Adam steps against the whole update on summed gradients;
 * with split, two tensors are split by rows and one by columns (each rank
 * computes its rows or columns whole, zeros elsewhere): those are not summed,
 * their owner updates them. On odd
 * steps every rank writes every column of the column-split tensor, as a
 * likelihood on whole rows does, and the update sums them (sum_cols). */
static void sharded_update(clue_optimizer kind, bool split) {
  clue_err err;
  clue_comm c = tu_world();
  clue_arena a = {0}, ref = {0};
  const char *names[6] = {"w", "s1", "m", "s2", "c", "z"};
  int64_t rows[6] = {301, 50, 19, 130, 13, 5}, cols[6] = {77, 33, 1, 8, 150, 1};
  int how[6] = {WHOLE, split ? BY_ROWS : WHOLE, WHOLE, split ? BY_ROWS : WHOLE,
                split ? BY_COLS : WHOLE, WHOLE};
  for (clue_arena *x = &a; x; x = x == &a ? &ref : NULL) {
    for (int t = 0; t < 6; t++) TU_OK(clue_arena_add(x, names[t], rows[t], cols[t], &err) < 0, &err);
    TU_OK(clue_arena_alloc(x, &err), &err);
  }
  clue_rng r0 = clue_rng_stream(8, CLUE_RNG_TEST, 0, 0); /* the same weights on every rank */
  for (int64_t i = 0; i < a.n; i++) a.w[i] = ref.w[i] = (real)clue_rng_normal(&r0);
  clue_gradsum *g = NULL, *copy = NULL; /* copy: the same order of the sum, not attached */
  TU_OK(clue_gradsum_new(&c, a.n, true, &g, &err), &err);
  TU_OK(clue_gradsum_new(&c, a.n, true, &copy, &err), &err);
  clue_arena *one[1] = {&a};
  TU_OK(clue_gradsum_attach(g, one, 1, &err), &err);
  bool sharded = clue_gradsum_shared(g);
  for (int t = 0; t < 6; t++) {
    if (how[t] == BY_ROWS) TU_OK(clue_gradsum_split_rows(g, &a, t, &err), &err);
    if (how[t] == BY_COLS) TU_OK(clue_gradsum_split_cols(g, &a, t, &err), &err);
  }
  int64_t n_rows = split && sharded ? 50 * 33 + 130 * 8 : 0, n_cols = split && sharded ? 13 * 150 : 0;
  assert_int_equal(clue_gradsum_summed(g, a.g, a.n, false), a.n - n_rows - n_cols);
  assert_int_equal(clue_gradsum_summed(g, a.g, a.n, true), a.n - n_rows);
  clue_optim oa, oref;
  TU_OK(clue_optim_init(&oa, kind, 0.01, a.n, &err), &err);
  TU_OK(clue_optim_init(&oref, kind, 0.01, a.n, &err), &err);
  int sliced_steps = 0;
  for (int step = 0; step < 4; step++) {
    bool sum_cols = step % 2 == 1;
    clue_rng r = clue_rng_stream(9, CLUE_RNG_TEST, (uint64_t)step, (uint64_t)c.rank);
    clue_rng whole = clue_rng_stream(10, CLUE_RNG_TEST, (uint64_t)step, 0); /* split parts */
    for (int64_t i = 0; i < a.n; i++) {
      bool in_split;
      bool foreign = foreign_part(g, &a, how, i, c.rank, &in_split);
      bool every_col = sum_cols && in_split && a.t[4].offset <= i && i < a.t[5].offset;
      real v = (real)clue_rng_normal(in_split && sharded && !every_col ? &whole : &r);
      ref.g[i] = a.g[i] = foreign && sharded && !every_col ? 0 : v;
    }
    clue_gradsum_sum(copy, ref.g, ref.n);
    clue_optim_step(&oref, &ref);
    const int64_t *b, *e;
    int parts = clue_gradsum_sum_parts(g, a.g, a.n, sum_cols, &b, &e);
    if (parts) { /* odd steps zero the gradients as they are read */
      clue_optim_step_ranges(&oa, &a, b, e, parts, step % 2 == 1);
      clue_gradsum_share(g);
      sliced_steps++;
      int64_t nonzero = 0; /* sums and sharing zeroed the rest (other ranks' parts were) */
      for (int64_t i = 0; i < a.n; i++) nonzero += a.g[i] != 0;
      if (step % 2 == 1) assert_int_equal(nonzero, 0);
    } else {
      clue_gradsum_sum(g, a.g, a.n);
      clue_optim_step(&oa, &a);
    }
    int64_t bad = 0; /* every rank reads every rank's parts, split ones too */
    for (int64_t i = 0; i < a.n; i++) bad += memcmp(&a.w[i], &ref.w[i], sizeof(real)) != 0;
    assert_int_equal(bad, 0);
  }
  assert_int_equal(sliced_steps, c.size > 1 ? 4 : 0);
  assert_memory_equal(a.w, ref.w, sizeof(real) * (size_t)a.n);
  clue_gradsum_gather(g, a.g, oa.v, a.n);
  if (oa.m) clue_gradsum_gather(g, a.g, oa.m, a.n);
  if (c.rank == 0) {
    assert_memory_equal(oa.v, oref.v, sizeof(real) * (size_t)a.n);
    if (oa.m) assert_memory_equal(oa.m, oref.m, sizeof(real) * (size_t)a.n);
  }
  clue_optim_release(&oa);
  clue_optim_release(&oref);
  clue_gradsum_free(g);
  clue_gradsum_free(copy);
  clue_arena_release(&a);
  clue_arena_release(&ref);
}

static void test_sharded_update(void **state) {
  (void)state;
  for (int split = 0; split < 2; split++) {
    sharded_update(CLUE_OPT_RMSPROP, split);
    sharded_update(CLUE_OPT_ADAM, split);
  }
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared),
      cmocka_unit_test(test_mpi),
      cmocka_unit_test(test_paths_agree),
      cmocka_unit_test(test_sharded_update),
      cmocka_unit_test(test_attached_arenas),
  };
  return TU_RUN(tests);
}
