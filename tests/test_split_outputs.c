/* test_split_outputs.c — decoders' output layers split by features over the
 * ranks (clue_work_split_outputs) against the same layers whole on each rank.
 * CLUE_TEST_NP: 1 2 3 4
 * CLUE_TEST_REAL64
 *
 * Every rank holds the same small K = 3 model (NB, Bernoulli and Normal
 * decoders; 45, 37 and 21 features, so that slices are uneven and, on 3 and 4
 * ranks, some are empty) and its own minibatch (its own encoder inputs and
 * targets; the same pattern of observed modalities, so that the global counts
 * are P times a rank's). A generator step through a work whose output layers are split must
 * give the losses and, summed over the ranks, the parameter gradients of the
 * same step through a work whose layers are whole, but for the order of
 * floating-point sums (float64: relative 1e-10 of each tensor's largest entry);
 * each rank writes only its own rows of the split layers' gradients. Both ways
 * of a split layer run: the likelihoods on every rank's rows for this rank's
 * features (targets cross; NB combines its softmax over the ranks), and on
 * this rank's rows (output-layer values cross). Training steps through
 * whole and split layers, with every kind of gradient sum, give the same
 * weights; ranks running each other's tiles of the weight gradients give
 * bitwise the weights of each running its own. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clue/gradsum.h"
#include "clue/model.h"
#include "clue/optim.h"
#include "clue/rng.h"
#include "clue/train.h"
#include "testutil.h"
#include "tu_model.h"

#define ROWS 7
#define TARGET_ROWS 12

typedef struct fixture {
  clue_model *m;
  clue_work *whole, *split;
  clue_minibatch *mb;
  clue_csr *target[3];
  clue_comm comm;
} fixture;

/* Position i of the minibatch has modality k when OBS[i][k]. */
static const int OBS[ROWS][3] = {{1, 1, 1}, {1, 0, 1}, {0, 1, 1}, {1, 1, 0},
                                 {1, 1, 1}, {0, 0, 1}, {1, 1, 1}};

static void fill_rows(fixture *fx) {
  clue_minibatch *mb = fx->mb;
  const clue_model_spec *s = &fx->m->spec;
  clue_rng r = clue_rng_stream(21, CLUE_RNG_TEST, 5, (uint64_t)fx->comm.rank);
  memset(mb->n_obs, 0, sizeof mb->n_obs);
  memset(mb->n_pair, 0, sizeof mb->n_pair);
  mb->n_joint = ROWS;
  for (int k = 0; k < 3; k++) {
    clue_mod_rows *rows = &mb->mod[k];
    rows->n = ROWS;
    rows->target = fx->target[k];
    for (int i = 0; i < ROWS; i++) {
      rows->pos[i] = i;
      rows->trow[i] = OBS[i][k] ? i : ROWS + (i + k) % (TARGET_ROWS - ROWS);
      rows->batch[i] = (int32_t)((i + k) % 2);
      for (int c = 0; c < s->enc_in[k]; c++)
        rows->enc_in[i * s->enc_in[k] + c] = (real)clue_rng_normal(&r);
    }
  }
  int P = fx->comm.size; /* every rank has the pattern: the global counts are P times */
  mb->B = ROWS * P;
  for (int i = 0; i < ROWS; i++) {
    mb->joint_pos[i] = i;
    mb->joint_batch[i] = (int32_t)(i % 2);
    for (int k = 0; k < 3; k++) {
      mb->joint_row[i * CLUE_K + k] = OBS[i][k] ? i : -1;
      if (OBS[i][k]) mb->mod[k].batch[i] = mb->joint_batch[i];
      mb->n_obs[k] += P * OBS[i][k];
      for (int j = 0; j < 3; j++) mb->n_pair[k][j] += P * (OBS[i][k] && OBS[i][j]);
    }
  }
}

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  clue_err err;
  clue_model_spec s;
  const char *names[3] = {"rna", "atac", "adt"};
  clue_likelihood lik[3] = {CLUE_LIK_NB, CLUE_LIK_BERNOULLI, CLUE_LIK_NORMAL};
  int enc_in[3] = {6, 5, 4}, n_feat[3] = {45, 37, 21};
  tu_model_spec(&s, 3, names, lik, enc_in, n_feat, (clue_mlp_config){2, 9},
                (clue_mlp_config){1, 7}, (clue_mlp_config){1, 5});
  fx->comm = tu_world();
  TU_OK(clue_model_new(&s, 17, &fx->m, &err), &err); /* the same weights on every rank */
  TU_OK(clue_work_new(fx->m, ROWS, &fx->whole, &err), &err);
  /* as clue train: room for the global batch, so that the decoders'
   * likelihood runs on this rank's features of every rank's rows */
  TU_OK(clue_work_new(fx->m, ROWS * fx->comm.size, &fx->split, &err), &err);
  TU_OK(clue_work_split_outputs(fx->split, fx->m, &fx->comm, ROWS * fx->comm.size, &err),
        &err);
  TU_OK(clue_minibatch_new(3, enc_in, ROWS, &fx->mb, &err), &err);
  for (int k = 0; k < 3; k++) {
    fx->target[k] = tu_random_targets(lik[k], TARGET_ROWS, n_feat[k],
                                      (uint64_t)(40 + 3 * fx->comm.rank + k), 9);
    clue_csr *t = fx->target[k]; /* CSR need not be sorted: even rows reversed */
    for (int64_t r = 0; r < t->n_rows; r += 2)
      for (int64_t a = t->indptr[r], b = t->indptr[r + 1] - 1; a < b; a++, b--) {
        int32_t i = t->indices[a];
        float v = t->data[a];
        t->indices[a] = t->indices[b];
        t->data[a] = t->data[b];
        t->indices[b] = i;
        t->data[b] = v;
      }
  }
  fill_rows(fx);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  for (int k = 0; k < 3; k++) clue_csr_free(fx->target[k]);
  clue_minibatch_free(fx->mb);
  clue_work_free(fx->split);
  clue_work_free(fx->whole);
  clue_model_free(fx->m);
  free(fx);
  return 0;
}

/* One generator step through w; the gradients (this rank's) into g. */
static clue_losses step(fixture *fx, clue_work *w, bool train, real *g) {
  clue_err err;
  clue_losses l;
  clue_loss_weights lw = tu_all_terms();
  clue_pass p = {.seed = 5, .pass = 3, .disc_noise = 0, .train = train};
  TU_OK(clue_model_g_step(fx->m, w, fx->mb, &lw, &p, &fx->comm, &l, &err), &err);
  memcpy(g, fx->m->gen.g, (size_t)fx->m->gen.n * sizeof(real));
  return l;
}

static void assert_close(double a, double b, double scale, const char *what) {
  if (fabs(a - b) <= 1e-10 * scale + 1e-300) return;
  print_error("%s: split %.17g, whole %.17g\n", what, a, b);
  fail();
}

static void split_matches_whole(fixture *fx, bool local) {
  clue_model *m = fx->m;
  const clue_arena *a = &m->gen;
  int P = fx->comm.size, r = fx->comm.rank;
  assert_true(clue_work_outputs_split(fx->split) == (P > 1));
  for (int k = 0; k < 3; k++) { /* targets exchanged; rows when set off */
    assert_true(clue_work_output_local(fx->split, k) == (P > 1));
    clue_work_set_output_local(fx->split, k, local);
    assert_true(clue_work_output_local(fx->split, k) == (P > 1 && local));
  }
  real *gw = malloc((size_t)a->n * sizeof(real)), *gs = malloc((size_t)a->n * sizeof(real));
  for (int train = 1; train >= 0; train--) {
    clue_losses lw = step(fx, fx->whole, train, gw);
    clue_losses ls = step(fx, fx->split, train, gs);
    assert_close(ls.gen, lw.gen, fabs(lw.gen), "generator loss");
    for (int k = 0; k < 3; k++) {
      assert_close(ls.nll[k], lw.nll[k], fabs(lw.nll[k]), "self NLL");
      assert_close(ls.joint_cross[k], lw.joint_cross[k], fabs(lw.joint_cross[k]), "cross NLL");
      assert_close(ls.real_cross[k], lw.real_cross[k], fabs(lw.real_cross[k]), "real cross");
    }
    if (!train) break;
    /* this rank's rows of the split layers only */
    for (int k = 0; k < 3; k++) {
      int F = m->spec.n_feat[k], f0 = clue_out_slice_begin(F, P, r),
          f1 = clue_out_slice_begin(F, P, r + 1), in = m->dec_loc[k].in;
      const real *dw = gs + a->t[m->dec_loc[k].w].offset;
      const real *db = gs + a->t[m->dec_loc[k].b].offset;
      int64_t outside = 0;
      for (int f = 0; f < F; f++) {
        if (P > 1 && f >= f0 && f < f1) continue;
        outside += db[f] != 0 && P > 1;
        for (int c = 0; c < in; c++) outside += dw[(int64_t)f * in + c] != 0 && P > 1;
      }
      assert_int_equal(outside, 0);
    }
    clue_comm_sum_double(&fx->comm, (double *)gw, (size_t)a->n);
    clue_comm_sum_double(&fx->comm, (double *)gs, (size_t)a->n);
    int64_t nonzero = 0;
    for (int t = 0; t < a->n_tensors; t++) {
      int64_t off = a->t[t].offset, size = clue_arena_size(a, t);
      double scale = 0;
      for (int64_t i = 0; i < size; i++) scale = fmax(scale, fabs(gw[off + i]));
      for (int64_t i = 0; i < size; i++) {
        char what[160];
        snprintf(what, sizeof what, "gradient of %s[%lld]", a->t[t].name, (long long)i);
        assert_close(gs[off + i], gw[off + i], scale, what);
        nonzero += gw[off + i] != 0;
      }
    }
    assert_true(nonzero > a->n / 2); /* the comparison is not of zeros */
  }
  free(gw);
  free(gs);
}

/* Three training steps (each: discriminator and generator, sums, RMSprop) of
 * three copies of the model: whole output layers with MPI_Allreduce sums; split
 * layers with MPI_Allreduce sums (every row of the split layers summed, so that
 * each step must zero all their rows again); split layers with sharded sums
 * through the node's window (split rows neither summed nor zeroed but on their
 * owner; the per-(feature, batch) tensors split by columns, summed only when a
 * likelihood ran on whole rows). With on_rows, decoder 0's likelihood runs on
 * whole rows (its columns read from their owners, then summed), the others' on
 * the ranks' slices. Each update leaves every gradient zero (the next step
 * zeroes none). The weights after the steps agree to 1e-7 of each tensor's
 * largest (RMSprop divides by the root of the squared gradients: where those
 * are small, rounding differences of 1e-16 grow to 1e-9 in three steps). */
static void train_steps(fixture *fx, bool on_rows) {
  clue_err err;
  for (int k = 0; k < 3; k++) clue_work_set_output_local(fx->split, k, !(on_rows && k == 0));
  clue_model *mm[3];
  for (int i = 0; i < 3; i++) TU_OK(clue_model_new(&fx->m->spec, 17, &mm[i], &err), &err);
  clue_work *ww[3] = {fx->whole, fx->split, fx->split};
  clue_optim od[3], og[3];
  for (int i = 0; i < 3; i++) {
    TU_OK(clue_optim_init(&od[i], CLUE_OPT_RMSPROP, 1e-2, mm[i]->disc.n, &err), &err);
    TU_OK(clue_optim_init(&og[i], CLUE_OPT_RMSPROP, 1e-2, mm[i]->gen.n, &err), &err);
  }
  clue_gradsum *gs = NULL;
  clue_arena *arenas[2] = {&mm[2]->gen, &mm[2]->disc};
  TU_OK(clue_gradsum_new(&fx->comm, mm[2]->gen.n + mm[2]->disc.n, true, &gs, &err), &err);
  TU_OK(clue_gradsum_attach(gs, arenas, 2, &err), &err);
  TU_OK(clue_train_split_grads(gs, mm[2], fx->split, &err), &err);
  clue_loss_weights lw = tu_all_terms();
  for (int step = 0; step < 3; step++)
    for (int i = 0; i < 3; i++) {
      clue_pass p = {.seed = 5, .pass = 2 * (uint64_t)step, .disc_noise = 0, .train = true};
      clue_losses l;
      TU_OK(clue_train_step_gs(mm[i], ww[i], fx->mb, &lw, &p, &od[i], &og[i], i == 2 ? gs : NULL,
                               &fx->comm, &l, &err),
            &err);
      /* the update zeroed every gradient as it read it: the next step zeroes none */
      assert_true(mm[i]->gen_grad_zero);
      int64_t nonzero = 0;
      for (int64_t j = 0; j < mm[i]->gen.n; j++) nonzero += mm[i]->gen.g[j] != 0;
      assert_int_equal(nonzero, 0);
    }
  { /* a work used for steps before gives the losses of a new one (nothing cached
       from the weights of an earlier pass, e.g. the per-(feature, batch) terms) */
    clue_work *nw;
    TU_OK(clue_work_new(mm[1], ROWS * fx->comm.size, &nw, &err), &err);
    TU_OK(clue_work_split_outputs(nw, mm[1], &fx->comm, ROWS * fx->comm.size, &err), &err);
    clue_pass p = {.seed = 5, .pass = 11, .disc_noise = 0, .train = false};
    clue_losses lu, ln;
    TU_OK(clue_model_g_step(mm[1], fx->split, fx->mb, &lw, &p, &fx->comm, &lu, &err), &err);
    TU_OK(clue_model_g_step(mm[1], nw, fx->mb, &lw, &p, &fx->comm, &ln, &err), &err);
    assert_close(lu.gen, ln.gen, fabs(ln.gen), "loss through a used work");
    clue_work_free(nw);
  }
  const clue_arena *a = &mm[0]->gen;
  double moved = 0;
  for (int t = 0; t < a->n_tensors; t++) {
    int64_t off = a->t[t].offset, size = clue_arena_size(a, t);
    double scale = 0;
    for (int64_t i = 0; i < size; i++) scale = fmax(scale, fabs(a->w[off + i]));
    for (int i = 1; i < 3; i++)
      for (int64_t j = 0; j < size; j++) {
        double x = mm[i]->gen.w[off + j], y = a->w[off + j];
        if (fabs(x - y) > 1e-7 * scale) {
          print_error("model %d: %s[%lld] %.17g, whole %.17g\n", i, a->t[t].name,
                      (long long)j, x, y);
          fail();
        }
      }
  }
  clue_model *fresh;
  TU_OK(clue_model_new(&fx->m->spec, 17, &fresh, &err), &err);
  for (int64_t i = 0; i < a->n; i++) moved = fmax(moved, fabs(a->w[i] - fresh->gen.w[i]));
  assert_true(moved > 1e-3); /* the steps did move the weights */
  clue_model_free(fresh);
  TU_OK(clue_work_share_tiles(fx->split, NULL, false, &err), &err); /* gs goes */
  for (int k = 0; k < 3; k++) clue_work_set_output_local(fx->split, k, true);
  clue_gradsum_free(gs);
  for (int i = 0; i < 3; i++) {
    clue_optim_release(&od[i]);
    clue_optim_release(&og[i]);
    clue_model_free(mm[i]);
  }
}

static void test_split_train_steps(void **state) {
  train_steps(*state, false);
  train_steps(*state, true);
}

/* Tiles of the split layers' weight gradients run by other ranks (decode.c):
 * two copies of the model, each with its split work and sharded sums; in one
 * the ranks take each other's tiles (the last rank naps before each of its own,
 * so the others take some), in the other each runs its own only. Tiles of 16 features
 * (several per slice). After two training steps the weights and the losses are
 * bitwise the same, and some rank did run tiles of another. */
static void test_split_tiles_taken(void **state) {
  fixture *fx = *state;
  int P = fx->comm.size, r = fx->comm.rank;
  if (P == 1) skip(); /* nothing is split */
  clue_err err;
  clue_model *mm[2];
  clue_work *ww[2];
  clue_gradsum *gs[2];
  clue_optim od[2], og[2];
  for (int i = 0; i < 2; i++) {
    TU_OK(clue_model_new(&fx->m->spec, 17, &mm[i], &err), &err);
    TU_OK(clue_work_new(mm[i], ROWS * P, &ww[i], &err), &err);
    TU_OK(clue_work_split_outputs(ww[i], mm[i], &fx->comm, ROWS * P, &err), &err);
    TU_OK(clue_optim_init(&od[i], CLUE_OPT_RMSPROP, 1e-2, mm[i]->disc.n, &err), &err);
    TU_OK(clue_optim_init(&og[i], CLUE_OPT_RMSPROP, 1e-2, mm[i]->gen.n, &err), &err);
    clue_arena *arenas[2] = {&mm[i]->gen, &mm[i]->disc};
    TU_OK(clue_gradsum_new(&fx->comm, mm[i]->gen.n + mm[i]->disc.n, true, &gs[i], &err), &err);
    TU_OK(clue_gradsum_attach(gs[i], arenas, 2, &err), &err);
    TU_OK(clue_train_split_grads(gs[i], mm[i], ww[i], &err), &err);
  }
  clue_work_set_tiles(ww[0], 16, r == P - 1 ? 50000 : 0); /* the last slices are never empty */
  clue_work_set_tiles(ww[1], 16, 0);
  TU_OK(clue_work_share_tiles(ww[1], NULL, false, &err), &err); /* its own tiles only */
  clue_loss_weights lw = tu_all_terms();
  clue_losses l[2];
  for (int step = 0; step < 2; step++)
    for (int i = 0; i < 2; i++) {
      clue_pass p = {.seed = 5, .pass = 2 * (uint64_t)step, .disc_noise = 0, .train = true};
      TU_OK(clue_train_step_gs(mm[i], ww[i], fx->mb, &lw, &p, &od[i], &og[i], gs[i],
                               &fx->comm, &l[i], &err),
            &err);
    }
  assert_true(l[0].gen == l[1].gen);
  int64_t differ = 0;
  for (int64_t j = 0; j < mm[0]->gen.n; j++) differ += mm[0]->gen.w[j] != mm[1]->gen.w[j];
  for (int64_t j = 0; j < mm[0]->disc.n; j++) differ += mm[0]->disc.w[j] != mm[1]->disc.w[j];
  assert_int_equal(differ, 0);
  double taken[2] = {(double)clue_work_tiles_taken(ww[0]), (double)clue_work_tiles_taken(ww[1])};
  clue_comm_sum_double(&fx->comm, taken, 2);
  assert_true(taken[0] >= 1);
  assert_true(taken[1] == 0);
  for (int i = 0; i < 2; i++) {
    clue_gradsum_free(gs[i]);
    clue_optim_release(&od[i]);
    clue_optim_release(&og[i]);
    clue_work_free(ww[i]);
    clue_model_free(mm[i]);
  }
}

/* A split work run through a communicator of another size runs its layers
 * whole: after a split step, two steps through it on MPI_COMM_SELF give the
 * gradients of the whole work on MPI_COMM_SELF (every row of the layers written
 * and zeroed again, not only this rank's). */
static void test_split_work_other_comm(void **state) {
  fixture *fx = *state;
  clue_model *m = fx->m;
  const clue_arena *a = &m->gen;
  if (fx->comm.size == 1) skip(); /* the same communicator size: nothing to test */
  real *gw = malloc((size_t)a->n * sizeof(real)), *gs = malloc((size_t)a->n * sizeof(real));
  step(fx, fx->split, true, gs); /* split: this rank's rows */
  clue_comm world = fx->comm, self = {MPI_COMM_SELF, 0, 1};
  fx->comm = self;
  step(fx, fx->split, true, gs);
  step(fx, fx->split, true, gs);
  step(fx, fx->whole, true, gw);
  fx->comm = world;
  for (int64_t i = 0; i < a->n; i++) assert_true(gs[i] == gw[i]);
  free(gw);
  free(gs);
}

/* A split work sized for fewer rows than a step brings: the losses are NaN (on
 * every rank alike, so the step fails everywhere) and this rank's rows of the
 * output layers' gradients, which no backward wrote, are zero (the step zeroed
 * them), not what the buffer held before. */
static void test_split_beyond_bounds(void **state) {
  fixture *fx = *state;
  clue_model *m = fx->m;
  int P = fx->comm.size, r = fx->comm.rank;
  if (P == 1) skip(); /* nothing is split */
  clue_err err;
  clue_work *small;
  TU_OK(clue_work_new(m, ROWS * P, &small, &err), &err);
  TU_OK(clue_work_split_outputs(small, m, &fx->comm, 1, &err), &err); /* room for 1 row */
  for (int64_t i = 0; i < m->gen.n; i++) m->gen.g[i] = 1;
  clue_losses l;
  clue_loss_weights lw = tu_all_terms();
  clue_pass p = {.seed = 5, .pass = 3, .disc_noise = 0, .train = true};
  assert_int_equal(clue_model_g_step(m, small, fx->mb, &lw, &p, &fx->comm, &l, &err),
                   CLUE_ENUMERIC);
  assert_true(isnan(l.nll[0]) && isnan(l.nll[1]) && isnan(l.nll[2]));
  for (int k = 0; k < 3; k++) {
    int F = m->spec.n_feat[k], f0 = clue_out_slice_begin(F, P, r),
        f1 = clue_out_slice_begin(F, P, r + 1), in = m->dec_loc[k].in;
    const real *dw = clue_arena_g(&m->gen, m->dec_loc[k].w);
    const real *db = clue_arena_g(&m->gen, m->dec_loc[k].b);
    for (int f = f0; f < f1; f++) {
      assert_true(db[f] == 0);
      for (int c = 0; c < in; c++) assert_true(dw[(int64_t)f * in + c] == 0);
    }
  }
  clue_work_free(small);
}

/* Likelihoods on every rank's rows for this rank's features: the rows' targets
 * cross (and NB's two per-row statistics). */
static void test_split_local(void **state) { split_matches_whole(*state, true); }

/* Likelihoods on this rank's rows: the output-layer values of the rows cross. */
static void test_split_rows(void **state) { split_matches_whole(*state, false); }

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_split_local, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_rows, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_train_steps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_tiles_taken, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_beyond_bounds, setup, teardown),
      cmocka_unit_test_setup_teardown(test_split_work_other_comm, setup, teardown),
  };
  return TU_RUN(tests);
}
