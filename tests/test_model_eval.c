/* test_model_eval.c — clue_model_embed: evaluation mode (BatchNorm running
 * statistics, no dropout), deterministic, (n × NMOD·d) output, independent of how
 * rows are grouped into chunks, the same posterior means as a generator step in
 * evaluation mode, and no side effect on the model.
 *
 * The reference is a plain double-precision forward of the encoders written here
 * from the parameters in the arenas: for each block j,
 *   h ← BN_eval(LeakyReLU_0.2(h·Wᵀ + b)) per layer, mean_j = h·W_locᵀ + b_loc,
 * BN_eval(a) = γ·(a − running_mean)/sqrt(running_var + 1e-5) + β.
 * Tolerance 1e-5 (relative, floor 1): the program runs in float32 (2^-24
 * rounding through two layers of width 8 and the head). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/model/model_internal.h"
#include "clue/model.h"
#include "clue/rng.h"
#include "testutil.h"
#include "tu_model.h"

#define NMOD 2
#define CAP 4     /* work capacity: embedding of N rows runs in chunks of CAP */
#define N 10    /* rows to embed */
#define NCELL 12

typedef struct fixture {
  clue_model *m;
  clue_work *w;
  clue_minibatch *mb;
  clue_csr *target[NMOD];
  clue_comm comm;
  real *x[NMOD]; /* (N × R_k) encoder inputs */
} fixture;

static const int ENC_IN[NMOD] = {5, 4}, N_FEAT[NMOD] = {7, 5};

/* Minibatch of CAP positions, every modality observed; position i uses the
 * encoder input row `first + i` of x[k]. */
static void fill_minibatch(fixture *fx, int first) {
  clue_minibatch *mb = fx->mb;
  memset(mb->n_obs, 0, sizeof mb->n_obs);
  memset(mb->n_pair, 0, sizeof mb->n_pair);
  for (int k = 0; k < NMOD; k++) {
    clue_mod_rows *rows = &mb->mod[k];
    rows->n = CAP;
    rows->target = fx->target[k];
    for (int i = 0; i < CAP; i++) {
      rows->pos[i] = i;
      rows->trow[i] = first + i;
      rows->batch[i] = (int32_t)((first + i) % 2);
      memcpy(rows->enc_in + (int64_t)i * ENC_IN[k], fx->x[k] + (int64_t)(first + i) * ENC_IN[k],
             sizeof(real) * (size_t)ENC_IN[k]);
    }
  }
  mb->n_joint = CAP;
  for (int i = 0; i < CAP; i++) {
    mb->joint_pos[i] = i;
    mb->joint_batch[i] = (int32_t)((first + i) % 2);
    for (int k = 0; k < NMOD; k++) {
      mb->joint_row[i * CLUE_K + k] = i;
      mb->n_obs[k]++;
      for (int j = 0; j < NMOD; j++) mb->n_pair[k][j]++;
    }
  }
}

static int setup(void **state) {
  fixture *fx = calloc(1, sizeof *fx);
  clue_err err;
  clue_model_spec s;
  const char *names[NMOD] = {"rna", "adt"};
  clue_likelihood lik[NMOD] = {CLUE_LIK_NB, CLUE_LIK_NORMAL};
  tu_model_spec(&s, NMOD, names, lik, ENC_IN, N_FEAT, (clue_mlp_config){2, 8},
                (clue_mlp_config){1, 6}, (clue_mlp_config){1, 5});
  TU_OK(clue_model_new(&s, 5, &fx->m, &err), &err);
  TU_OK(clue_work_new(fx->m, CAP, &fx->w, &err), &err);
  TU_OK(clue_minibatch_new(NMOD, ENC_IN, CAP, &fx->mb, &err), &err);
  clue_rng r = clue_rng_stream(8, CLUE_RNG_TEST, 2, 0);
  for (int k = 0; k < NMOD; k++) {
    fx->target[k] = tu_random_targets(lik[k], NCELL, N_FEAT[k], 20 + k, 9);
    fx->x[k] = malloc(sizeof(real) * (size_t)(N * ENC_IN[k]));
    for (int i = 0; i < N * ENC_IN[k]; i++) fx->x[k][i] = (real)(0.3 + clue_rng_normal(&r));
  }
  /* BatchNorm affine parameters away from 1 / 0 */
  for (int k = 0; k < NMOD; k++)
    for (int j = 0; j < NMOD; j++)
      for (int l = 0; l < fx->m->enc[k][j].depth; l++) {
        real *g = clue_arena_w(&fx->m->gen, fx->m->enc[k][j].bn[l].gamma);
        real *b = clue_arena_w(&fx->m->gen, fx->m->enc[k][j].bn[l].beta);
        for (int c = 0; c < fx->m->enc[k][j].width; c++) {
          g[c] = (real)(1 + 0.3 * clue_rng_normal(&r));
          b[c] = (real)(0.3 * clue_rng_normal(&r));
        }
      }
  fx->comm = clue_comm_self();
  /* Two training-mode generator steps move the running statistics off 0 / 1. */
  clue_loss_weights lw;
  memset(&lw, 0, sizeof lw);
  lw.data = lw.kl = lw.cross = lw.cos = lw.align = 1;
  for (int k = 0; k < NMOD; k++) lw.mod_weight[k] = 1;
  for (int step = 0; step < 2; step++) {
    fill_minibatch(fx, 2 + 3 * step);
    clue_pass p = {.seed = 3, .pass = (uint64_t)step, .disc_noise = 0, .train = true};
    clue_losses l;
    TU_OK(clue_model_g_step(fx->m, fx->w, fx->mb, &lw, &p, &fx->comm, &l, &err), &err);
  }
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fixture *fx = *state;
  for (int k = 0; k < NMOD; k++) {
    clue_csr_free(fx->target[k]);
    free(fx->x[k]);
  }
  clue_minibatch_free(fx->mb);
  clue_work_free(fx->w);
  clue_model_free(fx->m);
  free(fx);
  return 0;
}

/* The plain forward: posterior means of n rows of source k, out (n × NMOD·d). */
static void reference_embed(const clue_model *m, int k, const real *x, int n, double *out) {
  int d = m->spec.latent_dim, Kd = NMOD * d;
  const clue_arena *a = &m->gen, *bufs = &m->buf;
  for (int j = 0; j < NMOD; j++) {
    const nn_mlp *e = &m->enc[k][j];
    assert_int_equal(e->n_onehot, 0);
    assert_true(e->batchnorm);
    for (int i = 0; i < n; i++) {
      double h[64], t[64];
      int w = e->in;
      for (int c = 0; c < w; c++) h[c] = x[(int64_t)i * e->in + c];
      for (int l = 0; l < e->depth; l++) {
        const nn_linear *lin = &e->lin[l];
        const real *W = clue_arena_w(a, lin->w), *b = clue_arena_w(a, lin->b);
        const nn_batchnorm *bn = &e->bn[l];
        const real *g = clue_arena_w(a, bn->gamma), *be = clue_arena_w(a, bn->beta);
        const real *rm = clue_arena_w(bufs, bn->run_mean), *rv = clue_arena_w(bufs, bn->run_var);
        for (int o = 0; o < lin->out; o++) {
          double s = b[o];
          for (int c = 0; c < w; c++) s += (double)W[(int64_t)o * lin->in + c] * h[c];
          s = s > 0 ? s : 0.2 * s;
          t[o] = g[o] * (s - rm[o]) / sqrt((double)rv[o] + 1e-5) + be[o];
        }
        w = lin->out;
        memcpy(h, t, sizeof(double) * (size_t)w);
      }
      const nn_linear *loc = &m->enc_loc[k][j];
      const real *W = clue_arena_w(a, loc->w), *b = clue_arena_w(a, loc->b);
      for (int o = 0; o < d; o++) {
        double s = b[o];
        for (int c = 0; c < w; c++) s += (double)W[(int64_t)o * loc->in + c] * h[c];
        out[(int64_t)i * Kd + j * d + o] = s;
      }
    }
  }
}

static real *copy_arena(const clue_arena *a) {
  real *c = malloc(sizeof(real) * (size_t)a->n);
  memcpy(c, a->w, sizeof(real) * (size_t)a->n);
  return c;
}

static void test_embed_matches_reference(void **state) {
  fixture *fx = *state;
  clue_err err;
  int Kd = NMOD * fx->m->spec.latent_dim;
  /* the setup's training steps moved the running statistics */
  const real *rm = clue_arena_w(&fx->m->buf, fx->m->enc[0][1].bn[0].run_mean);
  assert_true(rm[0] != 0);
  for (int k = 0; k < NMOD; k++) {
    /* (N × K·d) written in full (NaN-filled before), nothing past it */
    float *out = malloc(sizeof(float) * (N * Kd + 4));
    double *ref = malloc(sizeof(double) * N * Kd);
    for (int i = 0; i < N * Kd + 4; i++) out[i] = i < N * Kd ? NAN : -777.0f;
    TU_OK(clue_model_embed(fx->m, fx->w, k, fx->x[k], N, out, &err), &err);
    reference_embed(fx->m, k, fx->x[k], N, ref);
    for (int i = 0; i < N * Kd; i++) TU_CLOSE(out[i], ref[i], 1e-5);
    for (int i = N * Kd; i < N * Kd + 4; i++) assert_true(out[i] == -777.0f);
    free(out);
    free(ref);
  }
}

/* Deterministic; no side effect on parameters or running statistics; a row's
 * embedding does not depend on the other rows (so no batch statistics) nor on
 * the chunking; n = 0 writes nothing. */
static void test_embed_properties(void **state) {
  fixture *fx = *state;
  clue_err err;
  int Kd = NMOD * fx->m->spec.latent_dim;
  real *gen0 = copy_arena(&fx->m->gen), *buf0 = copy_arena(&fx->m->buf);
  for (int k = 0; k < NMOD; k++) {
    float a[N * 2 * 3], b[N * 2 * 3], one[2 * 3];
    assert_int_equal(Kd, 2 * 3);
    TU_OK(clue_model_embed(fx->m, fx->w, k, fx->x[k], N, a, &err), &err);
    TU_OK(clue_model_embed(fx->m, fx->w, k, fx->x[k], N, b, &err), &err);
    assert_memory_equal(a, b, sizeof a);
    for (int i = 0; i < N; i++) {
      TU_OK(clue_model_embed(fx->m, fx->w, k, fx->x[k] + (int64_t)i * ENC_IN[k], 1, one, &err),
            &err);
      for (int c = 0; c < Kd; c++) TU_CLOSE(one[c], a[i * Kd + c], 1e-6);
    }
    /* rows 3..9 on their own: chunks start at a different row */
    TU_OK(clue_model_embed(fx->m, fx->w, k, fx->x[k] + 3 * ENC_IN[k], N - 3, b, &err), &err);
    for (int i = 0; i < (N - 3) * Kd; i++) TU_CLOSE(b[i], a[3 * Kd + i], 1e-6);
    float sentinel = 12345;
    TU_OK(clue_model_embed(fx->m, fx->w, k, fx->x[k], 0, &sentinel, &err), &err);
    assert_true(sentinel == 12345);
  }
  assert_memory_equal(gen0, fx->m->gen.w, sizeof(real) * (size_t)fx->m->gen.n);
  assert_memory_equal(buf0, fx->m->buf.w, sizeof(real) * (size_t)fx->m->buf.n);
  free(gen0);
  free(buf0);
}

/* A generator step in eval mode computes the same posterior means for the same
 * rows, and (validation) leaves the running statistics alone. */
static void test_embed_equals_eval_step(void **state) {
  fixture *fx = *state;
  clue_err err;
  int Kd = NMOD * fx->m->spec.latent_dim;
  clue_loss_weights lw;
  memset(&lw, 0, sizeof lw);
  lw.data = lw.kl = lw.cross = lw.cos = lw.align = 1;
  for (int k = 0; k < NMOD; k++) lw.mod_weight[k] = 1;
  real *buf0 = copy_arena(&fx->m->buf);
  for (int first = 0; first + CAP <= N; first += 3) {
    fill_minibatch(fx, first);
    clue_pass p = {.seed = 9, .pass = 100 + (uint64_t)first, .disc_noise = 0, .train = false};
    clue_losses l1, l2;
    TU_OK(clue_model_g_step(fx->m, fx->w, fx->mb, &lw, &p, &fx->comm, &l1, &err), &err);
    float *means = malloc(sizeof(float) * NMOD * CAP * Kd);
    for (int k = 0; k < NMOD; k++)
      for (int i = 0; i < CAP * Kd; i++) means[k * CAP * Kd + i] = (float)fx->w->mean[k][i];
    TU_OK(clue_model_g_step(fx->m, fx->w, fx->mb, &lw, &p, &fx->comm, &l2, &err), &err);
    assert_true(l1.gen == l2.gen && isfinite(l1.gen));
    for (int k = 0; k < NMOD; k++) {
      float out[CAP * 2 * 3];
      TU_OK(clue_model_embed(fx->m, fx->w, k, fx->x[k] + (int64_t)first * ENC_IN[k], CAP, out,
                             &err),
            &err);
      for (int i = 0; i < CAP * Kd; i++) TU_CLOSE(out[i], means[k * CAP * Kd + i], 1e-6);
    }
    free(means);
  }
  assert_memory_equal(buf0, fx->m->buf.w, sizeof(real) * (size_t)fx->m->buf.n);
  free(buf0);
}

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_embed_matches_reference, setup, teardown),
      cmocka_unit_test_setup_teardown(test_embed_properties, setup, teardown),
      cmocka_unit_test_setup_teardown(test_embed_equals_eval_step, setup, teardown),
  };
  return TU_RUN(tests);
}
