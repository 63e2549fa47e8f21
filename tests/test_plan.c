/* test_plan.c — the training plan on 1 to 3 ranks: the minibatches (cells,
 * modality rows with their counts, filler cells, batches, counts) gathered over
 * ranks equal a one-process plan row for row, each rank computing an equal block
 * of positions whatever rank holds the cells; each epoch visits distinct training
 * cells; validation and training cells are disjoint; fillers are training cells
 * having the modality.
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

static clue_config plan_config(void) {
  clue_config cfg;
  clue_config_defaults(&cfg);
  const char *names[2] = {"rna", "adt"}, *files[2] = {"pair_rna.h5ad", "pair_adt.h5ad"};
  for (int k = 0; k < 2; k++) {
    clue_modality_config *m = &cfg.mod[cfg.n_mod++];
    snprintf(m->name, sizeof m->name, "%s", names[k]);
    snprintf(m->file, sizeof m->file, "%s", tu_fixture(files[k]));
    snprintf(m->layer, sizeof m->layer, "X");
    m->likelihood = CLUE_LIK_NB;
  }
  snprintf(cfg.batch_key, sizeof cfg.batch_key, "batch");
  return cfg;
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

/* Records of this rank's part of the minibatches of two epochs and of the
 * validation blocks: (key, position, modality, source cell, batch, row checksum),
 * joint entries (key, position, 9, observed rows, batch, 0) and, on the lowest
 * rank only, the counts (key, −1, n_obs[0], n_obs[1], n_pair, B). Checks that
 * the rank computes exactly its block of positions. */
static rows plan_rows(const clue_dataset *d, const clue_comm *comm) {
  clue_err err;
  clue_plan *p = NULL;
  clue_inputs in = make_inputs(d);
  assert_int_equal(clue_plan_new(d, &in, BATCH, 0.2, 11, comm, &p, &err), CLUE_OK);
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
        push(&out, key, mb->joint_pos[j], 9, seen, mb->joint_batch[j], 0);
      }
    }
  }
  clue_minibatch_free(mb);
  free_inputs(&in);
  clue_plan_free(p);
  return out;
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

/* One-process checks on the reference plan's records. */
static void check_reference(const rows *r, const clue_dataset *d) {
  int64_t n = d->n_cells;
  int *seen = calloc((size_t)n * 3, sizeof *seen); /* per pass: times seen as a cell */
  for (int64_t i = 0; i < r->n; i++) {
    const int64_t *x = r->v + i * FIELDS;
    if (x[1] < 0 || x[2] == 9) continue;
    assert_true(d->local_row[x[3] * 2 + x[2]] >= 0); /* the row's cell has the modality */
  }
  clue_inputs in = make_inputs(d);
  clue_err err;
  clue_comm self = clue_comm_self();
  clue_plan *p = NULL;
  assert_int_equal(clue_plan_new(d, &in, BATCH, 0.2, 11, &self, &p, &err), CLUE_OK);
  for (int64_t i = 0; i < r->n; i++) { /* each row is its cell's (or filler's) data */
    const int64_t *x = r->v + i * FIELDS;
    if (x[1] < 0 || x[2] == 9) continue;
    int pass = (int)(x[0] / 1000), k = (int)x[2];
    int64_t pos = x[0] % 1000 * BATCH + x[1], src = x[3];
    int64_t c = pass == 2 ? clue_plan_val_cell(p, pos) : clue_plan_train_cell(p, pass, pos);
    bool has = d->local_row[c * 2 + k] >= 0;
    int64_t want = has ? c : p->local_pool[k][clue_plan_filler_index(p, pass, c, k)];
    assert_int_equal(src, want);
    const clue_csr *m = d->mod[k].x;
    int64_t row = d->local_row[src * 2 + k], sum = 1000 * (m->indptr[row + 1] - m->indptr[row]);
    for (int64_t j = m->indptr[row]; j < m->indptr[row + 1]; j++)
      sum += (m->indices[j] + 1) * (int64_t)m->data[j];
    assert_int_equal(x[5], sum);
    assert_int_equal(x[4], d->local_batch[src]);
  }
  for (int pass = 0; pass < 3; pass++) {
    int64_t m = pass == 2 ? p->n_val : clue_plan_steps_per_epoch(p) * BATCH;
    for (int64_t pos = 0; pos < m; pos++) {
      int64_t c = pass == 2 ? clue_plan_val_cell(p, pos) : clue_plan_train_cell(p, pass, pos);
      assert_true(c >= 0 && c < n);
      seen[pass * n + c]++;
      assert_int_equal(seen[pass * n + c], 1); /* distinct within an epoch */
    }
  }
  for (int64_t c = 0; c < n; c++) { /* validation and training are disjoint */
    assert_false(seen[2 * n + c] && (seen[c] || seen[n + c]));
    for (int k = 0; k < 2; k++) { /* fillers: training cells with the modality */
      int64_t j = clue_plan_filler_index(p, 0, c, k);
      int64_t f = p->local_pool[k][j];
      assert_true(d->local_row[f * 2 + k] >= 0);
      assert_int_equal(seen[2 * n + f], 0);
    }
  }
  assert_int_equal(p->n_val, 8); /* round(0.2 · 40) */
  free(seen);
  free_inputs(&in);
  clue_plan_free(p);
}

static void test_same_on_any_ranks(void **state) {
  (void)state;
  if (!tu_h5ad_fixtures()) skip();
  clue_config cfg = plan_config();
  clue_comm world = tu_world(), self = clue_comm_self();
  clue_err err;
  clue_dataset *d = NULL;
  assert_int_equal(clue_dataset_load(&cfg, CLUE_CELLS_ALL, &world, &d, &err), CLUE_OK);
  rows all = gather_rows(plan_rows(d, &world), &world);
  clue_dataset_free(d);
  if (world.rank == 0) {
    clue_dataset *d1 = NULL;
    assert_int_equal(clue_dataset_load(&cfg, CLUE_CELLS_ALL, &self, &d1, &err), CLUE_OK);
    rows ref = gather_rows(plan_rows(d1, &self), &self);
    check_reference(&ref, d1);
    assert_int_equal(all.n, ref.n);
    for (int64_t i = 0; i < ref.n; i++)
      for (int f = 0; f < FIELDS; f++)
        assert_int_equal(all.v[i * FIELDS + f], ref.v[i * FIELDS + f]);
    free(ref.v);
    clue_dataset_free(d1);
  }
  free(all.v);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_same_on_any_ranks),
  };
  return TU_RUN(tests);
}
