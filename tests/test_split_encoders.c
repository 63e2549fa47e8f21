/* test_split_encoders.c — encoders given each to one rank of the node
 * (clue_work_split_encoders) against encoders run by every rank on its own rows.
 * CLUE_TEST_NP: 1 2 3 4
 * CLUE_TEST_REAL64
 *
 * Every rank holds the same small K = 2 model (NB and Normal decoders;
 * encoders with BatchNorm and dropout) and its own minibatch. With K·K = 4
 * encoders the split is made on 2 and 4 ranks (each rank one or two
 * encoders) and not on 1 or 3, where the split work must run as the plain one.
 * A discriminator step and a generator step (training and evaluation mode)
 * through the split work give the losses, the BatchNorm running statistics
 * and, summed over the ranks, the gradients of the plain work, but for the
 * order of floating-point sums (float64: relative 1e-10 of each tensor's
 * largest entry); an encoder's gradient is written only on the rank that runs
 * it. Training steps with the sums sharded through the node's window (each
 * encoder's tensors then updated by its rank alone, never summed) give the
 * weights of plain steps with MPI_Allreduce sums, and leave every gradient
 * zero. A pass with more rows than the split was made for gives NaN losses on
 * every rank. */
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

#define ROWS 6
#define TARGET_ROWS 10
#define K 2

typedef struct fixture {
  clue_model_spec spec;
  clue_minibatch *mb;
  clue_csr *target[K];
  clue_comm comm;
} fixture;

/* Position i of the minibatch has modality k when OBS[i][k]. */
static const int OBS[ROWS][K] = {{1, 1}, {1, 0}, {0, 1}, {1, 1}, {1, 1}, {0, 1}};

static void fill_rows(fixture *fx) {
  clue_minibatch *mb = fx->mb;
  clue_rng r = clue_rng_stream(31, CLUE_RNG_TEST, 5, (uint64_t)fx->comm.rank);
  int P = fx->comm.size;
  memset(mb->n_obs, 0, sizeof mb->n_obs);
  memset(mb->n_pair, 0, sizeof mb->n_pair);
  mb->B = ROWS * P;
  mb->n_joint = ROWS;
  for (int k = 0; k < K; k++) {
    clue_mod_rows *rows = &mb->mod[k];
    rows->n = ROWS;
    rows->target = fx->target[k];
    for (int i = 0; i < ROWS; i++) {
      rows->pos[i] = fx->comm.rank * ROWS + i; /* rank q: the q-th block of positions */
      rows->trow[i] = OBS[i][k] ? i : ROWS + (i + k) % (TARGET_ROWS - ROWS);
      rows->batch[i] = (int32_t)((i + k) % 2);
      for (int c = 0; c < fx->spec.enc_in[k]; c++)
        rows->enc_in[i * fx->spec.enc_in[k] + c] = (real)clue_rng_normal(&r);
    }
  }
  for (int i = 0; i < ROWS; i++) {
    mb->joint_pos[i] = fx->comm.rank * ROWS + i;
    mb->joint_batch[i] = (int32_t)(i % 2);
    for (int k = 0; k < K; k++) {
      mb->joint_row[i * CLUE_K + k] = OBS[i][k] ? i : -1;
      if (OBS[i][k]) mb->mod[k].batch[i] = mb->joint_batch[i];
      mb->n_obs[k] += P * OBS[i][k];
      for (int j = 0; j < K; j++) mb->n_pair[k][j] += P * (OBS[i][k] && OBS[i][j]);
    }
  }
}

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  clue_err err;
  const char *names[K] = {"rna", "adt"};
  clue_likelihood lik[K] = {CLUE_LIK_NB, CLUE_LIK_NORMAL};
  int enc_in[K] = {6, 4}, n_feat[K] = {23, 11};
  tu_model_spec(&fx->spec, K, names, lik, enc_in, n_feat, (clue_mlp_config){2, 9},
                (clue_mlp_config){1, 7}, (clue_mlp_config){1, 5});
  fx->comm = tu_world();
  TU_OK(clue_minibatch_new(K, enc_in, ROWS + 1, &fx->mb, &err), &err);
  for (int k = 0; k < K; k++)
    fx->target[k] = tu_random_targets(lik[k], TARGET_ROWS, n_feat[k],
                                      (uint64_t)(60 + 3 * fx->comm.rank + k), 7);
  fill_rows(fx);
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  for (int k = 0; k < K; k++) clue_csr_free(fx->target[k]);
  clue_minibatch_free(fx->mb);
  free(fx);
  return 0;
}

static void assert_close(double a, double b, double scale, const char *what) {
  if (fabs(a - b) <= 1e-10 * scale + 1e-300) return;
  print_error("%s: split %.17g, plain %.17g\n", what, a, b);
  fail();
}

/* Two copies of the model (the same weights) and a work for each: plain, and
 * with the encoders split (room for the global batch, as in clue train). */
static void models(fixture *fx, clue_model **m, clue_work **w) {
  clue_err err;
  int P = fx->comm.size;
  for (int i = 0; i < 2; i++) {
    TU_OK(clue_model_new(&fx->spec, 17, &m[i], &err), &err);
    TU_OK(clue_work_new(m[i], ROWS * P, &w[i], &err), &err);
  }
  TU_OK(clue_work_split_encoders(w[1], m[1], &fx->comm, ROWS * P, &err), &err);
  bool split = P == 2 || P == 4;
  for (int e = 0; e < K * K; e++)
    assert_int_equal(clue_work_encoder_owner(w[1], e / K, e % K), split ? e % P : -1);
}

static void free_models(clue_model **m, clue_work **w) {
  for (int i = 0; i < 2; i++) {
    clue_work_free(w[i]);
    clue_model_free(m[i]);
  }
}

/* Values [b, e) of x and y agree to 1e-10 of the largest |y| there. */
static void arrays_close(const real *x, const real *y, int64_t b, int64_t e, const char *what) {
  double scale = 0;
  for (int64_t i = b; i < e; i++) scale = fmax(scale, fabs(y[i]));
  for (int64_t i = b; i < e; i++) {
    char at[200];
    snprintf(at, sizeof at, "%s[%lld]", what, (long long)(i - b));
    assert_close(x[i], y[i], scale, at);
  }
}

static void test_steps_match(void **state) {
  fixture *fx = *state;
  clue_err err;
  clue_model *m[2];
  clue_work *w[2];
  models(fx, m, w);
  clue_loss_weights lw = tu_all_terms();
  const clue_arena *a = &m[0]->gen;
  for (int train = 1; train >= 0; train--) {
    clue_pass p = {.seed = 5, .pass = 4, .disc_noise = 0.1, .train = train};
    clue_losses ld[2], lg[2];
    for (int i = 0; i < 2; i++) {
      TU_OK(clue_model_d_step(m[i], w[i], fx->mb, &lw, &p, &fx->comm, &ld[i], &err), &err);
      p.pass = 5;
      TU_OK(clue_model_g_step(m[i], w[i], fx->mb, &lw, &p, &fx->comm, &lg[i], &err), &err);
      p.pass = 4;
    }
    assert_close(ld[1].dsc, ld[0].dsc, fabs(ld[0].dsc), "discriminator loss");
    assert_close(lg[1].gen, lg[0].gen, fabs(lg[0].gen), "generator loss");
    for (int k = 0; k < K; k++) {
      assert_close(lg[1].kl[k], lg[0].kl[k], fabs(lg[0].kl[k]), "KL");
      assert_close(lg[1].cos[k], lg[0].cos[k], fabs(lg[0].cos[k]), "cosine");
    }
    /* the running statistics, updated by the training passes on every rank */
    arrays_close(m[1]->buf.w, m[0]->buf.w, 0, m[0]->buf.n, "running statistics");
    if (!train) break;
    /* an encoder's gradient only where it runs */
    for (int e = 0; e < K * K; e++) {
      int q = clue_work_encoder_owner(w[1], e / K, e % K);
      const nn_linear *l = &m[1]->enc[e / K][e % K].lin[1];
      const real *g = clue_arena_g(&m[1]->gen, l->w);
      int64_t nonzero = 0;
      for (int64_t i = 0; i < clue_arena_size(&m[1]->gen, l->w); i++) nonzero += g[i] != 0;
      if (q >= 0 && q != fx->comm.rank)
        assert_int_equal(nonzero, 0);
      else
        assert_true(nonzero > 0);
    }
    clue_comm_sum_double(&fx->comm, (double *)m[0]->gen.g, (size_t)a->n);
    clue_comm_sum_double(&fx->comm, (double *)m[1]->gen.g, (size_t)a->n);
    for (int t = 0; t < a->n_tensors; t++)
      arrays_close(m[1]->gen.g, m[0]->gen.g, a->t[t].offset,
                   a->t[t].offset + clue_arena_size(a, t), a->t[t].name);
  }
  free_models(m, w);
}

/* Three training steps: plain with MPI_Allreduce sums, split with sharded sums
 * through the window (clue_train_split_grads declares each encoder owned). */
static void test_train_steps(void **state) {
  fixture *fx = *state;
  clue_err err;
  clue_model *m[2];
  clue_work *w[2];
  models(fx, m, w);
  clue_optim od[2], og[2];
  for (int i = 0; i < 2; i++) {
    TU_OK(clue_optim_init(&od[i], CLUE_OPT_RMSPROP, 1e-2, m[i]->disc.n, &err), &err);
    TU_OK(clue_optim_init(&og[i], CLUE_OPT_RMSPROP, 1e-2, m[i]->gen.n, &err), &err);
  }
  clue_gradsum *gs = NULL;
  clue_arena *arenas[2] = {&m[1]->gen, &m[1]->disc};
  TU_OK(clue_gradsum_new(&fx->comm, m[1]->gen.n + m[1]->disc.n, true, &gs, &err), &err);
  TU_OK(clue_gradsum_attach(gs, arenas, 2, &err), &err);
  TU_OK(clue_train_split_grads(gs, m[1], w[1], &err), &err);
  if (clue_work_encoder_owner(w[1], 0, 0) >= 0) /* the encoders are not summed */
    assert_true(clue_gradsum_summed(gs, m[1]->gen.g, m[1]->gen.n, true) < m[1]->gen.n);
  clue_loss_weights lw = tu_all_terms();
  for (int step = 0; step < 3; step++)
    for (int i = 0; i < 2; i++) {
      clue_pass p = {.seed = 5, .pass = 2 * (uint64_t)step, .disc_noise = 0, .train = true};
      clue_losses l;
      TU_OK(clue_train_step_gs(m[i], w[i], fx->mb, &lw, &p, &od[i], &og[i], i ? gs : NULL,
                               &fx->comm, &l, &err),
            &err);
      int64_t nonzero = 0;
      for (int64_t j = 0; j < m[i]->gen.n; j++) nonzero += m[i]->gen.g[j] != 0;
      assert_int_equal(nonzero, 0);
    }
  const clue_arena *a = &m[0]->gen;
  for (int t = 0; t < a->n_tensors; t++) { /* RMSprop: see test_split_outputs.c */
    int64_t b = a->t[t].offset, e = b + clue_arena_size(a, t);
    double scale = 0;
    for (int64_t i = b; i < e; i++) scale = fmax(scale, fabs(a->w[i]));
    for (int64_t i = b; i < e; i++)
      if (fabs(m[1]->gen.w[i] - a->w[i]) > 1e-7 * scale) {
        print_error("%s[%lld]: split %.17g, plain %.17g\n", a->t[t].name,
                    (long long)(i - b), (double)m[1]->gen.w[i], (double)a->w[i]);
        fail();
      }
  }
  /* rank 0 gathers the optimiser state: whole there, as the plain one's */
  clue_train_gather_state(gs, m[1], &od[1], &og[1]);
  if (fx->comm.rank == 0)
    for (int64_t i = 0; i < a->n; i++)
      if (fabs(og[1].v[i] - og[0].v[i]) > 1e-6 * (fabs(og[0].v[i]) + 1e-12)) {
        print_error("optimiser state [%lld]: split %.17g, plain %.17g\n", (long long)i,
                    (double)og[1].v[i], (double)og[0].v[i]);
        fail();
      }
  clue_gradsum_free(gs);
  for (int i = 0; i < 2; i++) {
    clue_optim_release(&od[i]);
    clue_optim_release(&og[i]);
  }
  free_models(m, w);
}

/* A split made for fewer rows than a pass brings: NaN losses on every rank, and
 * the generator step fails alike everywhere. */
static void test_beyond_bounds(void **state) {
  fixture *fx = *state;
  int P = fx->comm.size;
  if (P != 2 && P != 4) skip(); /* nothing is split */
  clue_err err;
  clue_model *m;
  clue_work *small;
  TU_OK(clue_model_new(&fx->spec, 17, &m, &err), &err);
  TU_OK(clue_work_new(m, ROWS * P, &small, &err), &err);
  TU_OK(clue_work_split_encoders(small, m, &fx->comm, P, &err), &err); /* a row per rank */
  assert_true(clue_work_encoder_owner(small, 0, 0) == 0);
  clue_losses l;
  clue_loss_weights lw = tu_all_terms();
  clue_pass p = {.seed = 5, .pass = 3, .disc_noise = 0, .train = true};
  assert_int_equal(clue_model_d_step(m, small, fx->mb, &lw, &p, &fx->comm, &l, &err),
                   CLUE_ENUMERIC);
  assert_int_equal(clue_model_g_step(m, small, fx->mb, &lw, &p, &fx->comm, &l, &err),
                   CLUE_ENUMERIC);
  assert_true(isnan(l.kl[0]) && isnan(l.kl[1]));
  clue_work_free(small);
  clue_model_free(m);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_steps_match, setup, teardown),
      cmocka_unit_test_setup_teardown(test_train_steps, setup, teardown),
      cmocka_unit_test_setup_teardown(test_beyond_bounds, setup, teardown),
  };
  return TU_RUN(tests);
}
