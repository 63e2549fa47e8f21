/* test_plan.c — the training plan on 1 to 3 ranks: the minibatches (cells,
 * modality rows with their counts, filler cells, batches, counts) gathered over
 * ranks equal a one-process plan row for row, each rank computing an equal block
 * of positions whatever rank holds the cells; each epoch visits distinct training
 * cells; validation and training cells are disjoint; fillers are training cells
 * having the modality. The same with mixed minibatches (clue_plan_mix: a fixed
 * number of paired cells in each) and with pseudo-partners
 * (clue_plan_set_pseudo: a partnered cell takes its partner's row, counted as
 * observed, with the given chance; never in validation blocks).
 *
 * CLUE_TEST_NP: 1 2 3
 */
#include <stdlib.h>
#include <string.h>

#include "clue/dataset.h"
#include "clue/plan.h"
#include "clue/rowdist.h"
#include "testutil.h"
#include "tu_h5ad.h"

#define FIELDS 6
#define BATCH 8

/* What a plan does beyond the uniform default. */
typedef struct plan_mode {
  double mix;      /* clue_plan_mix fraction (0: off) */
  double pseudo_w; /* chance of taking a partner (0: no partners) */
} plan_mode;

typedef struct rows {
  int64_t *v; /* FIELDS per record */
  int64_t n, cap;
} rows;

static void push(rows *r, int64_t a, int64_t b, int64_t c, int64_t d, int64_t e, int64_t f) {
  if (r->n == r->cap) {
    r->cap = r->cap ? 2 * r->cap : 256;
    r->v = realloc(r->v, (size_t)r->cap * FIELDS * sizeof *r->v);
    assert_non_null(r->v);
  }
  int64_t *x = r->v + r->n++ * FIELDS;
  x[0] = a, x[1] = b, x[2] = c, x[3] = d, x[4] = e, x[5] = f;
}

static int cmp_rec(const void *a, const void *b) {
  const int64_t *x = a, *y = b;
  for (int i = 0; i < FIELDS; i++)
    if (x[i] != y[i]) return (x[i] > y[i]) - (x[i] < y[i]);
  return 0;
}


/* Inputs whose encoder value of each row is its global cell (targets: the
 * shard's counts). */
static clue_inputs make_inputs(const clue_dataset *d) {
  clue_inputs in = {0};
  in.n_mod = 2;
  for (int k = 0; k < 2; k++) {
    in.enc_in[k] = 1;
    in.enc[k] = calloc((size_t)d->mod[k].x->n_rows + 1, sizeof(float));
    in.target[k] = d->mod[k].x;
    for (int64_t c = d->local_begin; c < d->local_end; c++) {
      int64_t row = d->local_row[(c - d->local_begin) * d->n_mod + k];
      if (row >= 0) in.enc[k][row] = (float)c;
    }
  }
  return in;
}

static void free_inputs(clue_inputs *in) {
  for (int k = 0; k < 2; k++) free(in->enc[k]);
}

/* A checksum of target row q of mb's modality k. */
static int64_t row_sum(const clue_minibatch *mb, int k, int q) {
  const clue_csr *x = mb->mod[k].target;
  int64_t r = mb->mod[k].trow[q], s = 1000 * (x->indptr[r + 1] - x->indptr[r]);
  for (int64_t j = x->indptr[r]; j < x->indptr[r + 1]; j++)
    s += (x->indices[j] + 1) * (int64_t)x->data[j];
  return s;
}

/* The test's partner of cell c for modality k: the next training cell after c
 * (cyclically) having k, for even cells missing k; −1 otherwise. The same on
 * every rank: it reads the one-process dataset `all`. */
static int64_t test_partner(const clue_dataset *all, const clue_plan *p, int64_t c, int k) {
  int64_t n = all->n_cells;
  if (c % 2 || all->local_row[c * 2 + k] >= 0) return -1;
  for (int64_t s = 1; s < n; s++) {
    int64_t q = (c + s) % n;
    if (all->local_row[q * 2 + k] >= 0 && clue_plan_is_train(p, q)) return q;
  }
  return -1;
}

/* The dataset of tu_pair_config on this process alone (every cell local). */
static clue_dataset *load_alone(void);

/* Partners of d's local cells (test_partner), malloc'd. */
static int64_t *make_partners(const clue_dataset *d, const clue_plan *p) {
  clue_dataset *all = load_alone();
  int64_t n = d->local_end - d->local_begin;
  int64_t *partner = malloc((size_t)(2 * n + 1) * sizeof *partner);
  assert_non_null(partner);
  for (int64_t i = 0; i < n; i++)
    for (int k = 0; k < 2; k++) partner[2 * i + k] = test_partner(all, p, d->local_begin + i, k);
  clue_dataset_free(all);
  return partner;
}

/* Records of this rank's part of the minibatches of two epochs and of the
 * validation blocks: (key, position, modality, source cell, batch, row checksum),
 * joint entries (key, position, 9, observed rows, batch, 0) and, on the lowest
 * rank only, the counts (key, −1, n_obs[0], n_obs[1], n_pair, B). Checks that
 * the rank computes exactly its block of positions. */
static rows plan_rows(const clue_dataset *d, const clue_comm *comm, const plan_mode *mode) {
  clue_err err;
  clue_plan *p = NULL;
  clue_inputs in = make_inputs(d);
  assert_int_equal(clue_plan_new(d, &in, BATCH, 0.2, 11, comm, &p, &err), CLUE_OK);
  assert_int_equal(clue_plan_mix(p, d, mode->mix, comm, &err), CLUE_OK);
  int64_t *partner = mode->pseudo_w > 0 ? make_partners(d, p) : NULL;
  clue_plan_set_pseudo(p, partner, mode->pseudo_w);
  clue_minibatch *mb = NULL;
  assert_int_equal(clue_minibatch_new(2, in.enc_in, BATCH, &mb, &err), CLUE_OK);
  rows out = {0};
  for (int64_t pass = 0; pass < 3; pass++) {
    int val = pass == 2;
    int64_t n_blocks = val ? clue_plan_val_batches(p) : clue_plan_steps_per_epoch(p);
    for (int64_t s = 0; s < n_blocks; s++) {
      int64_t key = pass * 1000 + s;
      int n = clue_plan_fill(p, d, &in, pass, s, val, comm, mb);
      assert_int_equal(n, mb->B);
      int64_t b, e;
      clue_block_range(n, comm->size, comm->rank, &b, &e);
      assert_int_equal(mb->n_joint, e - b);
      if (comm->rank == 0)
        push(&out, key, -1, mb->n_obs[0], mb->n_obs[1], mb->n_pair[0][1], n);
      for (int k = 0; k < 2; k++)
        for (int q = 0; q < mb->mod[k].n; q++) {
          assert_true(mb->mod[k].pos[q] >= b && mb->mod[k].pos[q] < e);
          push(&out, key, mb->mod[k].pos[q], k, (int64_t)mb->mod[k].enc_in[q],
               mb->mod[k].batch[q], row_sum(mb, k, q));
        }
      for (int j = 0; j < mb->n_joint; j++) {
        int64_t seen = 0;
        for (int k = 0; k < 2; k++) seen = 2 * seen + (mb->joint_row[j * CLUE_K + k] >= 0);
        push(&out, key, mb->joint_pos[j], 9, seen, mb->joint_batch[j],
             p->cells[mb->joint_pos[j]]);
      }
    }
  }
  free(partner);
  clue_minibatch_free(mb);
  free_inputs(&in);
  clue_plan_free(p);
  return out;
}

static clue_dataset *load_alone(void) {
  clue_config cfg = tu_pair_config();
  clue_comm self = clue_comm_self();
  clue_err err;
  clue_dataset *d = NULL;
  assert_int_equal(clue_dataset_load(&cfg, CLUE_CELLS_ALL, &self, &d, &err), CLUE_OK);
  return d;
}

/* Collective: every rank's records on rank 0, sorted. */
static rows gather_rows(rows mine, const clue_comm *comm) {
  int n = (int)(mine.n * FIELDS);
  int *counts = calloc((size_t)comm->size, sizeof *counts);
  int *disp = calloc((size_t)comm->size, sizeof *disp);
  MPI_Gather(&n, 1, MPI_INT, counts, 1, MPI_INT, 0, comm->comm);
  int total = 0;
  for (int r = 0; r < comm->size; r++) disp[r] = total, total += counts[r];
  rows all = {.n = total / FIELDS, .cap = total / FIELDS};
  all.v = malloc((size_t)(total + 1) * sizeof *all.v);
  MPI_Gatherv(mine.v, n, MPI_INT64_T, all.v, counts, disp, MPI_INT64_T, 0, comm->comm);
  if (comm->rank == 0) qsort(all.v, (size_t)all.n, FIELDS * sizeof *all.v, cmp_rec);
  free(counts);
  free(disp);
  free(mine.v);
  return all;
}

/* The joint record of (key, position) in the sorted records: its cell, and
 * its seen bits (2: modality 0 observed, 1: modality 1). */
static const int64_t *joint_of(const rows *r, int64_t key, int64_t pos) {
  for (int64_t i = 0; i < r->n; i++) {
    const int64_t *x = r->v + i * FIELDS;
    if (x[0] == key && x[1] == pos && x[2] == 9) return x;
  }
  fail_msg("no joint record for key %lld, position %lld", (long long)key, (long long)pos);
  return NULL;
}

/* Checksum of local row `row` of modality matrix m (as row_sum). */
static int64_t matrix_row_sum(const clue_csr *m, int64_t row) {
  int64_t sum = 1000 * (m->indptr[row + 1] - m->indptr[row]);
  for (int64_t j = m->indptr[row]; j < m->indptr[row + 1]; j++)
    sum += (m->indices[j] + 1) * (int64_t)m->data[j];
  return sum;
}

/* Each row of the records is its cell's, its partner's (taken: the seen bit
 * set) or its filler's, with that cell's counts and batch. Returns the number
 * of partnered (cell, modality) rows of training minibatches and how many took
 * their partner. */
static void check_sources(const rows *r, const clue_dataset *d, clue_plan *p,
                          const plan_mode *mode, int64_t *partnered, int64_t *taken) {
  *partnered = *taken = 0;
  for (int64_t i = 0; i < r->n; i++) {
    const int64_t *x = r->v + i * FIELDS;
    if (x[1] < 0 || x[2] == 9) continue;
    int pass = (int)(x[0] / 1000), k = (int)x[2];
    const int64_t *joint = joint_of(r, x[0], x[1]);
    int64_t c = joint[5], src = x[3];
    bool has = d->local_row[c * 2 + k] >= 0, bit = (joint[3] >> (1 - k)) & 1;
    int64_t q = mode->pseudo_w > 0 && pass < 2 ? test_partner(d, p, c, k) : -1;
    int64_t want = p->local_pool[k][clue_plan_filler_index(p, pass, c, k)];
    if (has) want = c;
    if (!has && q >= 0) {
      ++*partnered;
      if (bit) want = q, ++*taken;
    }
    assert_int_equal(bit, has || (q >= 0 && src == q));
    assert_int_equal(src, want);
    assert_int_equal(x[5], matrix_row_sum(d->mod[k].x, d->local_row[src * 2 + k]));
    assert_int_equal(x[4], d->local_batch[src]);
  }
}

/* Within a pass, the cells of [begin, end) positions of the group: distinct. */
static void check_epoch_cells(const rows *r, const clue_dataset *d, clue_plan *p,
                              const plan_mode *mode) {
  int64_t n = d->n_cells;
  int *seen = calloc((size_t)n * 3, sizeof *seen); /* per pass: times seen as a cell */
  int64_t spe = clue_plan_steps_per_epoch(p);
  for (int64_t i = 0; i < r->n; i++) {
    const int64_t *x = r->v + i * FIELDS;
    if (x[2] != 9) continue;
    int pass = (int)(x[0] / 1000);
    int64_t c = x[5], pos = x[0] % 1000 * BATCH + x[1];
    bool paired = d->local_row[c * 2] >= 0 && d->local_row[c * 2 + 1] >= 0;
    if (mode->mix == 0 || pass == 2) /* the uniform order */
      assert_int_equal(c, pass == 2 ? clue_plan_val_cell(p, pos) : clue_plan_train_cell(p, pass, pos));
    int g = paired ? 0 : 1; /* a group that fills its share at most once per epoch */
    bool once = mode->mix == 0 || pass == 2 || spe * p->B_group[g] <= p->n_group[g];
    seen[pass * n + c]++;
    if (once) assert_int_equal(seen[pass * n + c], 1);
  }
  for (int64_t c = 0; c < n; c++) { /* validation and training are disjoint */
    assert_false(seen[2 * n + c] && (seen[c] || seen[n + c]));
    for (int k = 0; k < 2; k++) { /* fillers: training cells with the modality */
      int64_t f = p->local_pool[k][clue_plan_filler_index(p, 0, c, k)];
      assert_true(d->local_row[f * 2 + k] >= 0);
      assert_int_equal(seen[2 * n + f], 0);
    }
  }
  free(seen);
}

/* Mixed minibatches: exactly B_group[0] paired cells (counts of the lowest
 * rank's record, with no partner taken) in every training minibatch. */
static void check_mix(const rows *r, const clue_plan *p, const plan_mode *mode) {
  if (mode->mix == 0) return;
  assert_true(p->B_group[0] > 0 && p->B_group[0] < BATCH);
  for (int64_t i = 0; i < r->n; i++) {
    const int64_t *x = r->v + i * FIELDS;
    if (x[1] == -1 && x[0] / 1000 < 2 && mode->pseudo_w == 0)
      assert_int_equal(x[4], p->B_group[0]); /* n_pair */
  }
}

/* One-process checks on the reference plan's records. */
static void check_reference(const rows *r, const clue_dataset *d, const plan_mode *mode) {
  clue_inputs in = make_inputs(d);
  clue_err err;
  clue_comm self = clue_comm_self();
  clue_plan *p = NULL;
  assert_int_equal(clue_plan_new(d, &in, BATCH, 0.2, 11, &self, &p, &err), CLUE_OK);
  assert_int_equal(clue_plan_mix(p, d, mode->mix, &self, &err), CLUE_OK);
  int64_t partnered, taken;
  check_sources(r, d, p, mode, &partnered, &taken);
  if (mode->pseudo_w == 1) assert_true(taken == partnered && taken > 0);
  if (mode->pseudo_w > 0 && mode->pseudo_w < 1) assert_true(taken > 0 && taken < partnered);
  if (mode->pseudo_w == 0) assert_int_equal(partnered, 0);
  check_epoch_cells(r, d, p, mode);
  check_mix(r, p, mode);
  assert_int_equal(p->n_val, 8); /* round(0.2 · 40) */
  free_inputs(&in);
  clue_plan_free(p);
}

/* The plan of `mode` on every rank gathered equals the one-process plan,
 * which passes check_reference. */
static void same_on_any_ranks(const plan_mode *mode) {
  if (!tu_h5ad_fixtures()) skip();
  clue_config cfg = tu_pair_config();
  clue_comm world = tu_world(), self = clue_comm_self();
  clue_err err;
  clue_dataset *d = NULL;
  assert_int_equal(clue_dataset_load(&cfg, CLUE_CELLS_ALL, &world, &d, &err), CLUE_OK);
  rows all = gather_rows(plan_rows(d, &world, mode), &world);
  clue_dataset_free(d);
  if (world.rank == 0) {
    clue_dataset *d1 = load_alone();
    rows ref = gather_rows(plan_rows(d1, &self, mode), &self);
    check_reference(&ref, d1, mode);
    assert_int_equal(all.n, ref.n);
    for (int64_t i = 0; i < ref.n; i++)
      for (int f = 0; f < FIELDS; f++)
        assert_int_equal(all.v[i * FIELDS + f], ref.v[i * FIELDS + f]);
    free(ref.v);
    clue_dataset_free(d1);
  }
  free(all.v);
}

static void test_same_on_any_ranks(void **state) {
  (void)state;
  same_on_any_ranks(&(plan_mode){0, 0});
}

static void test_mixed_same_on_any_ranks(void **state) {
  (void)state;
  same_on_any_ranks(&(plan_mode){0.5, 0});
}

/* (One call per test: a failed check on rank 0 must not leave the other
 * ranks in a collective that rank 0 skips.) */
static void test_partners_same_on_any_ranks(void **state) {
  (void)state;
  same_on_any_ranks(&(plan_mode){0, 1});
}

static void test_partners_mixed_same_on_any_ranks(void **state) {
  (void)state;
  same_on_any_ranks(&(plan_mode){0.5, 0.5});
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_on_any_ranks),
      cmocka_unit_test(test_mixed_same_on_any_ranks),
      cmocka_unit_test(test_partners_same_on_any_ranks),
      cmocka_unit_test(test_partners_mixed_same_on_any_ranks),
  };
  return TU_RUN(tests);
}
